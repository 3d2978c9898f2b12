{**
 * Keygate for PrestaShop: delivery status under the configuration form.
 *
 * @license MIT
 *}
<div class="panel">
  <h3><i class="icon-cogs"></i> {l s='Deliveries' d='Modules.Keygate.Admin'}</h3>
  {if !$keygate_configured}
    <p class="alert alert-warning">{l s='Not configured: no event is sent until the webhook URL and the signing secret are saved.' d='Modules.Keygate.Admin'}</p>
  {/if}
  <p>{l s='Waiting for delivery or a retry:' d='Modules.Keygate.Admin'} <strong>{$keygate_stats.pending|intval}</strong></p>
  <p>{l s='Given up after every retry:' d='Modules.Keygate.Admin'} <strong>{$keygate_stats.dead|intval}</strong></p>
  {if $keygate_stats.last_error}
    <p>{l s='Last error:' d='Modules.Keygate.Admin'} <code>{$keygate_stats.last_error|escape:'htmlall':'UTF-8'}</code></p>
  {/if}
  <p>{l s='Failed deliveries are retried when the next order event happens, and by this URL (call it from cron every few minutes):' d='Modules.Keygate.Admin'}</p>
  <pre>{$keygate_cron_url|escape:'htmlall':'UTF-8'}</pre>
  {if $keygate_stats.dead > 0}
    <form method="post" action="{$keygate_retry_action|escape:'htmlall':'UTF-8'}">
      <button type="submit" name="submitKeygateRetry" class="btn btn-default">{l s='Retry the given-up events' d='Modules.Keygate.Admin'}</button>
    </form>
  {/if}
</div>
