//! The OpenAPI 3.1 document, built from the route list (see `routes`) and the schemas below.
use crate::routes::{Auth, Route};
use serde_json::{Map, Value, json};

fn obj(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

fn list_of(item: &str) -> Value {
    obj(
        &["data", "next_cursor"],
        json!({
            "data": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
            "next_cursor": {"type": ["string", "null"], "description": "pass as `cursor` for the next page"}
        }),
    )
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

const TIME: &str = "RFC 3339 UTC time";

fn time() -> Value {
    json!({"type": "string", "format": "date-time", "description": TIME})
}
fn opt_time() -> Value {
    json!({"type": ["string", "null"], "format": "date-time", "description": TIME})
}
fn string() -> Value {
    json!({"type": "string"})
}
fn opt_string() -> Value {
    json!({"type": ["string", "null"]})
}
fn int() -> Value {
    json!({"type": "integer"})
}
fn opt_int() -> Value {
    json!({"type": ["integer", "null"]})
}
fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}
fn metadata() -> Value {
    json!({"type": "object", "description": "free-form JSON object (at most 16 KiB)"})
}

fn nonce() -> Value {
    json!({"type": "string", "maxLength": 256, "description": "echoed inside the signed answer"})
}

fn event_type_names() -> Value {
    let mut names = vec![json!("*")];
    names.extend(
        keygate_store::outbound::EVENT_TYPES
            .iter()
            .map(|t| json!(t)),
    );
    Value::Array(names)
}

pub fn schemas() -> Map<String, Value> {
    let validation_codes = json!([
        "VALID",
        "GRACE_PERIOD",
        "NOT_FOUND",
        "EXPIRED",
        "SUSPENDED",
        "REVOKED",
        "NOT_ACTIVATED",
        "TOO_MANY_ACTIVATIONS",
        "FEATURE_MISSING",
        "PRODUCT_MISMATCH",
        "QUOTA_EXCEEDED",
        "NO_SEAT_AVAILABLE"
    ]);
    let policy_props = json!({
        "product_id": string(),
        "name": string(),
        "duration_seconds": {"type": ["integer", "null"], "description": "fixed term from issue; null = perpetual"},
        "expiry": {"type": "string", "enum": ["fixed", "subscription"]},
        "trial_seconds": {"type": ["integer", "null"], "description": "licenses start as trials of this length"},
        "grace_seconds": {"type": "integer", "description": "after expiry, validation still passes with GRACE_PERIOD"},
        "max_activations": {"type": ["integer", "null"], "description": "node-locked: distinct machines; null = unlimited"},
        "require_activation": {"type": "boolean", "description": "validation with a fingerprint needs it activated (default: max_activations is set)"},
        "floating": {"type": ["object", "null"], "properties": {"max_seats": int(), "lease_seconds": int()}},
        "quota": {"type": ["object", "null"], "properties": {"limit": opt_int(), "period_seconds": opt_int()},
                  "description": "usage per period (null period = lifetime); null limit = pay-per-use"},
        "features": strings(),
        "seats_from_quantity": {"type": "boolean"},
        "perpetual_offline": {"type": "boolean", "description": "signed license files may outlive the license's expiry"},
        "metadata": metadata(),
    });
    let mut policy = policy_props.clone();
    for (k, v) in [
        ("id", string()),
        ("created_at", time()),
        ("updated_at", time()),
    ] {
        policy[k] = v;
    }
    let overrides = json!({"type": "object", "properties": {
        "add_features": strings(), "remove_features": strings(),
        "max_activations": opt_int(), "max_seats": opt_int(), "quota_limit": opt_int()
    }});
    let license = obj(
        &[
            "id",
            "key",
            "status",
            "expired",
            "policy_id",
            "product_id",
            "starts_at",
            "expires_at",
            "features",
        ],
        json!({
            "id": string(), "key": string(),
            "status": {"type": "string", "enum": ["active", "suspended", "revoked"]},
            "expired": {"type": "boolean"},
            "policy_id": string(), "product_id": string(),
            "customer_id": opt_string(), "subscription_id": opt_string(),
            "starts_at": time(), "expires_at": opt_time(), "grace_until": opt_time(),
            "features": strings(),
            "max_activations": opt_int(), "max_seats": opt_int(),
            "quota": {"type": ["object", "null"], "properties": {
                "limit": opt_int(), "used": int(), "period_seconds": opt_int(), "resets_at": opt_time()}},
            "overrides": overrides,
            "metadata": metadata(), "created_at": time(), "updated_at": time(),
        }),
    );
    let activation = obj(
        &["id", "license_id", "fingerprint"],
        json!({"id": string(), "license_id": string(), "fingerprint": string(), "name": opt_string(),
               "platform": opt_string(), "created_at": time(), "last_seen_at": time()}),
    );
    let account = obj(
        &["id", "name"],
        json!({"id": string(), "name": string(), "created_at": time()}),
    );
    let api_key = obj(
        &["id", "name", "prefix"],
        json!({"id": string(), "name": string(), "prefix": string(), "created_at": time(), "revoked_at": opt_time()}),
    );
    let product = obj(
        &["id", "code", "name"],
        json!({"id": string(), "code": string(), "name": string(), "metadata": metadata(),
               "created_at": time(), "updated_at": time()}),
    );
    let customer = obj(
        &["id"],
        json!({"id": string(), "email": opt_string(), "name": opt_string(),
               "external_ids": {"type": "object", "additionalProperties": {"type": "string"},
                                "description": "platform ids, e.g. {\"stripe\": \"cus_...\"}"},
               "metadata": metadata(), "created_at": time(), "updated_at": time()}),
    );
    let mut map = Map::new();
    let mut put = |name: &str, v: Value| {
        map.insert(name.to_string(), v);
    };
    put(
        "Error",
        obj(
            &["error"],
            json!({"error": obj(&["code", "message"], json!({"code": {"type": "string", "description": "stable UPPER_SNAKE_CASE code"}, "message": string()}))}),
        ),
    );
    put(
        "Health",
        obj(
            &["status"],
            json!({"status": string(), "database": string()}),
        ),
    );
    put("AccountInput", obj(&["name"], json!({"name": string()})));
    put("Account", account);
    put(
        "AccountCreated",
        obj(
            &["account", "api_key"],
            json!({"account": r("Account"), "api_key": {"type": "string", "description": "kg_sk_...; shown only once"}}),
        ),
    );
    put("ApiKeyInput", obj(&["name"], json!({"name": string()})));
    let mut created_key = api_key.clone();
    created_key["properties"]["api_key"] =
        json!({"type": "string", "description": "shown only once"});
    put("ApiKey", api_key);
    put("ApiKeyCreated", created_key);
    put("ApiKeyList", list_of("ApiKey"));
    put(
        "ProductInput",
        obj(
            &["code", "name"],
            json!({"code": string(), "name": string(), "metadata": metadata()}),
        ),
    );
    put(
        "ProductPatch",
        obj(
            &[],
            json!({"code": string(), "name": string(), "metadata": metadata()}),
        ),
    );
    put("Product", product);
    put("ProductList", list_of("Product"));
    put(
        "PolicyInput",
        obj(&["product_id", "name"], policy_props.clone()),
    );
    put("PolicyPatch", obj(&[], policy_props));
    put(
        "Policy",
        obj(&["id", "product_id", "name", "expiry", "features"], policy),
    );
    put("PolicyList", list_of("Policy"));
    let customer_input = json!({"email": opt_string(), "name": opt_string(),
        "external_ids": {"type": "object", "additionalProperties": {"type": "string"}}, "metadata": metadata()});
    put("CustomerInput", obj(&[], customer_input.clone()));
    put("CustomerPatch", obj(&[], customer_input));
    put("Customer", customer);
    put("CustomerList", list_of("Customer"));
    put(
        "LicenseInput",
        obj(
            &["policy_id"],
            json!({"policy_id": string(), "customer_id": opt_string(),
                   "key": {"type": "string", "description": "bring your own key (16-256 printable characters); generated when absent"},
                   "starts_at": time(), "expires_at": opt_time(), "overrides": overrides.clone(),
                   "quantity": opt_int(), "metadata": metadata()}),
        ),
    );
    put(
        "LicensePatch",
        obj(
            &[],
            json!({"policy_id": string(), "customer_id": opt_string(), "expires_at": opt_time(),
                   "overrides": overrides, "quantity": opt_int(), "metadata": metadata()}),
        ),
    );
    put("License", license);
    put("LicenseList", list_of("License"));
    put(
        "ExtendInput",
        obj(
            &[],
            json!({"seconds": {"type": "integer", "description": "required for extend"}}),
        ),
    );
    put("Activation", activation);
    put("ActivationList", list_of("Activation"));
    put(
        "ValidateInput",
        obj(
            &["key"],
            json!({"key": string(), "fingerprint": string(),
                   "product": {"type": "string", "description": "product code or id the license must be for"},
                   "features": strings(),
                   "nonce": nonce(),
                   "session": {"type": "string", "description": "floating licenses: NO_SEAT_AVAILABLE unless this session holds a seat or one is free"}}),
        ),
    );
    put(
        "Validation",
        obj(
            &["valid", "code", "license", "ts"],
            json!({"valid": {"type": "boolean"}, "code": {"type": "string", "enum": validation_codes},
                   "message": string(),
                   "license": {"oneOf": [r("License"), {"type": "null"}]},
                   "nonce": string(), "ts": time()}),
        ),
    );
    put(
        "ActivateInput",
        obj(
            &["key", "fingerprint"],
            json!({"key": string(), "fingerprint": string(), "name": opt_string(), "platform": opt_string(), "nonce": nonce()}),
        ),
    );
    put(
        "DeactivateInput",
        obj(
            &["key", "fingerprint"],
            json!({"key": string(), "fingerprint": string()}),
        ),
    );
    put(
        "SeatInput",
        obj(
            &["key", "session"],
            json!({"key": string(), "session": string(), "nonce": nonce()}),
        ),
    );
    put(
        "SeatLease",
        obj(
            &["lease_expires_at"],
            json!({"license_id": string(), "session": string(), "lease_expires_at": time(),
                   "seats_used": int(), "max_seats": opt_int()}),
        ),
    );
    put(
        "UsageInput",
        obj(
            &["key", "amount"],
            json!({"key": string(), "feature": string(), "amount": {"type": "integer", "minimum": 1},
                   "mode": {"type": "string", "enum": ["prepay", "postpay"], "default": "prepay"}}),
        ),
    );
    put(
        "UsageOutcome",
        obj(
            &["used", "remaining"],
            json!({"used": int(), "remaining": opt_int(), "overdraft": int()}),
        ),
    );
    put(
        "AuditEntry",
        obj(
            &[
                "id",
                "actor_type",
                "action",
                "object_type",
                "object_id",
                "created_at",
            ],
            json!({"id": string(), "actor_type": string(), "actor_id": opt_string(), "action": string(),
                   "object_type": string(), "object_id": string(), "license_id": opt_string(),
                   "customer_id": opt_string(), "before": {}, "after": {}, "created_at": time()}),
        ),
    );
    put("AuditList", list_of("AuditEntry"));
    let public_key = obj(
        &["key_id", "public_key", "alg"],
        json!({"key_id": string(), "public_key": {"type": "string", "description": "base64 of the 32-byte Ed25519 public key"},
               "alg": {"type": "string", "enum": ["ed25519"]}, "created_at": time(), "retired_at": opt_time()}),
    );
    put("PublicKey", public_key);
    let mapping = obj(
        &["external_id", "policy_id"],
        json!({"external_id": {"type": "string", "description": "the platform's product / price / plan / variant id"}, "policy_id": string()}),
    );
    let integration_options = json!({"type": "object", "description": "renewal: extend | new_license; grace_seconds; platform settings: PayPal webhook_id and certificate_pem, tolerance_seconds",
        "properties": {"renewal": {"type": "string", "enum": ["extend", "new_license"]}, "grace_seconds": int()}});
    let api_credentials = json!({"type": "object", "additionalProperties": string(),
        "description": "platform API credentials by name (stripe secret_key; paypal client_id, client_secret; ...); stored sealed, never shown"});
    put("Mapping", mapping);
    put(
        "IntegrationInput",
        obj(
            &["provider"],
            json!({"provider": {"type": "string", "enum": keygate_billing::names()},
            "name": string(), "secrets": {"type": "array", "items": string(), "description": "webhook secrets; several during a rotation; stored sealed, never shown (Chargebee: \"username:password\")"},
            "options": integration_options.clone(), "mappings": {"type": "array", "items": r("Mapping")},
            "api_credentials": api_credentials.clone()}),
        ),
    );
    put(
        "IntegrationPatch",
        obj(
            &[],
            json!({"name": string(), "secrets": {"type": "array", "items": string()}, "options": integration_options.clone(), "mappings": {"type": "array", "items": r("Mapping")},
            "api_credentials": api_credentials}),
        ),
    );
    put(
        "Integration",
        obj(
            &["id", "provider", "webhook_url", "mappings", "options"],
            json!({"id": string(), "provider": string(), "name": string(),
            "webhook_url": {"type": "string", "description": "configure this URL on the platform"},
            "keygen_url": {"type": "string", "description": "platforms with remote key generation (MyCommerce, FastSpring): the key generator URL to give the shop"},
            "mappings": {"type": "array", "items": r("Mapping")}, "options": integration_options, "secrets_count": int(),
            "api_credentials": {"type": "array", "items": string(), "description": "the names of the API credentials set (values never shown)"},
            "created_at": time(), "updated_at": time()}),
        ),
    );
    put("IntegrationList", list_of("Integration"));
    put(
        "WebhookFailure",
        obj(
            &["id", "code", "message", "received_at"],
            json!({"id": string(), "integration_id": string(), "code": string(), "message": string(), "received_at": time()}),
        ),
    );
    put("WebhookFailureList", list_of("WebhookFailure"));
    put(
        "WebhookReceipt",
        obj(
            &["received", "events"],
            json!({"received": int(), "processed": strings(),
            "events": {"type": "array", "items": obj(&[], json!({"id": string(), "provider_event_id": string(), "type": string(), "status": string(), "duplicate": {"type": "boolean"}}))}}),
        ),
    );
    put(
        "WebhookEvent",
        obj(
            &["id", "integration_id", "provider_event_id", "status"],
            json!({"id": string(), "integration_id": string(), "provider": string(),
            "provider_event_id": string(), "event_type": string(), "kind": string(), "occurred_at": time(), "received_at": time(),
            "verified": {"type": "boolean"}, "status": {"type": "string", "enum": ["pending", "applied", "ignored", "failed"]},
            "actions": {"type": "array"}, "error": {"type": ["object", "null"], "properties": {"code": string(), "message": string()}},
            "attempts": int(), "applied_at": opt_time(), "event": {"type": "object", "description": "the normalized billing event"},
            "raw_payload": {"type": "string", "description": "the body as received (single reads only)"}}),
        ),
    );
    put("WebhookEventList", list_of("WebhookEvent"));
    put(
        "Subscription",
        obj(
            &["id", "integration_id", "external_id", "status"],
            json!({"id": string(), "integration_id": string(), "provider": string(),
            "external_id": string(), "customer_id": opt_string(), "status": string(), "current_period_end": opt_time(),
            "last_event_at": opt_time(), "state": {"type": "object"}, "created_at": time(), "updated_at": time()}),
        ),
    );
    put("SubscriptionList", list_of("Subscription"));
    put(
        "PublicKeys",
        obj(
            &["account_id", "current", "keys"],
            json!({"account_id": string(), "current": r("PublicKey"),
                   "keys": {"type": "array", "items": r("PublicKey")}}),
        ),
    );
    let event_types = json!({"type": "array", "items": {"type": "string", "enum": event_type_names()},
        "description": "the events to receive, or [\"*\"] for all"});
    let endpoint_props = json!({"id": string(), "url": string(), "description": opt_string(),
        "event_types": event_types.clone(), "enabled": {"type": "boolean"},
        "disabled_reason": {"type": ["string", "null"], "description": "why it was disabled (e.g. it answered 410 Gone)"},
        "previous_secret_expires_at": {"type": ["string", "null"], "format": "date-time",
            "description": "after a rotation, the previous secret signs too until then"},
        "created_at": time(), "updated_at": time()});
    put(
        "EndpointInput",
        obj(
            &["url", "event_types"],
            json!({"url": {"type": "string", "description": "http(s); private, loopback and link-local addresses are refused unless KEYGATE_OUTBOUND_ALLOW_PRIVATE"},
                   "event_types": event_types.clone(), "description": opt_string(),
                   "enabled": {"type": "boolean", "default": true}}),
        ),
    );
    put(
        "EndpointPatch",
        obj(
            &[],
            json!({"url": string(), "event_types": event_types, "description": opt_string(),
                   "enabled": {"type": "boolean", "description": "true also clears disabled_reason"}}),
        ),
    );
    put(
        "Endpoint",
        obj(
            &["id", "url", "event_types", "enabled"],
            endpoint_props.clone(),
        ),
    );
    let mut created = endpoint_props;
    created["secret"] = json!({"type": "string", "description": "whsec_<base64>: the Standard Webhooks signing secret, shown only in this answer"});
    put(
        "EndpointCreated",
        obj(&["id", "url", "event_types", "enabled", "secret"], created),
    );
    put("EndpointList", list_of("Endpoint"));
    let attempt = obj(
        &["attempted_at", "duration_ms"],
        json!({"attempted_at": time(), "status_code": opt_int(), "error": {"type": ["string", "null"], "description": "CODE: text (PRIVATE_ADDRESS, TIMEOUT, CONNECT_FAILED, HTTP_STATUS, GONE, ...)"},
               "response_body": {"type": ["string", "null"], "description": "the first KiB of the answer"}, "duration_ms": int()}),
    );
    put(
        "Delivery",
        obj(
            &[
                "id",
                "endpoint_id",
                "event_type",
                "status",
                "attempts",
                "payload",
            ],
            json!({"id": {"type": "string", "description": "the message id, sent as webhook-id"},
                   "endpoint_id": string(), "event_type": string(),
                   "status": {"type": "string", "enum": ["pending", "succeeded", "failed"]},
                   "attempts": int(), "next_attempt_at": opt_time(), "last_status": opt_int(),
                   "last_error": opt_string(), "last_attempt_at": opt_time(),
                   "created_at": time(), "updated_at": time(),
                   "payload": obj(&["type", "timestamp", "data"], json!({"type": string(), "timestamp": time(), "data": {}})),
                   "attempt_log": {"type": "array", "items": attempt}}),
        ),
    );
    put("DeliveryList", list_of("Delivery"));
    put(
        "LicenseFileInput",
        obj(
            &["key"],
            json!({"key": string(), "fingerprint": {"type": "string", "description": "bind the file to this machine"},
                   "ttl_seconds": {"type": "integer", "description": "how long the file is valid offline (default 30 days), bounded by the license's expiry unless the policy has perpetual_offline"}}),
        ),
    );
    state_limits(&mut map);
    map
}

/// The bounds the API enforces, stated where a client reads them (kept apart from the
/// shapes above so each rule is listed once, next to the constant that enforces it).
fn state_limits(schemas: &mut Map<String, Value>) {
    use keygate_domain::limits::{
        MAX_COUNT, MAX_DURATION_SECONDS, MAX_FEATURES, MAX_METADATA_BYTES, MAX_METADATA_DEPTH,
        MAX_NAME_CHARS,
    };
    let name = json!({"minLength": 1, "maxLength": MAX_NAME_CHARS});
    let duration = json!({"minimum": 1, "maximum": MAX_DURATION_SECONDS});
    let count = json!({"minimum": 1, "maximum": MAX_COUNT});
    let features = json!({"maxItems": MAX_FEATURES, "items": {"maxLength": 64, "pattern": "^[A-Za-z0-9_.:-]+$"}});
    let metadata = json!({
        "description": format!("free-form JSON object (at most {} KiB serialized, nested at most {MAX_METADATA_DEPTH} levels)", MAX_METADATA_BYTES / 1024)});
    let mut rules: Vec<(&str, &[&str], Value)> = Vec::new();
    for schema in [
        "AccountInput",
        "ApiKeyInput",
        "ProductInput",
        "ProductPatch",
        "PolicyInput",
        "PolicyPatch",
        "CustomerInput",
        "CustomerPatch",
        "IntegrationInput",
        "IntegrationPatch",
    ] {
        rules.push((schema, &["name"], name.clone()));
    }
    for schema in [
        "ProductInput",
        "ProductPatch",
        "PolicyInput",
        "PolicyPatch",
        "CustomerInput",
        "CustomerPatch",
        "LicenseInput",
        "LicensePatch",
    ] {
        rules.push((schema, &["metadata"], metadata.clone()));
    }
    for schema in ["ProductInput", "ProductPatch"] {
        rules.push((
            schema,
            &["code"],
            json!({"minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_.-]+$"}),
        ));
    }
    for schema in ["PolicyInput", "PolicyPatch"] {
        rules.push((schema, &["features"], features.clone()));
        rules.push((schema, &["duration_seconds"], duration.clone()));
        rules.push((schema, &["trial_seconds"], duration.clone()));
        rules.push((
            schema,
            &["grace_seconds"],
            json!({"minimum": 0, "maximum": MAX_DURATION_SECONDS}),
        ));
        rules.push((schema, &["max_activations"], count.clone()));
        rules.push((schema, &["floating", "max_seats"], count.clone()));
        rules.push((schema, &["floating", "lease_seconds"], duration.clone()));
        rules.push((
            schema,
            &["quota", "limit"],
            json!({"minimum": 0, "maximum": MAX_COUNT}),
        ));
        rules.push((schema, &["quota", "period_seconds"], duration.clone()));
    }
    for schema in ["LicenseInput", "LicensePatch"] {
        rules.push((schema, &["overrides", "add_features"], features.clone()));
        rules.push((schema, &["overrides", "remove_features"], features.clone()));
        rules.push((schema, &["overrides", "max_activations"], count.clone()));
        rules.push((schema, &["overrides", "max_seats"], count.clone()));
        rules.push((
            schema,
            &["overrides", "quota_limit"],
            json!({"minimum": 0, "maximum": MAX_COUNT}),
        ));
    }
    rules.push((
        "LicenseInput",
        &["key"],
        json!({"minLength": 16, "maxLength": 256}),
    ));
    rules.push(("ExtendInput", &["seconds"], duration.clone()));
    rules.push(("ValidateInput", &["nonce"], json!({"maxLength": 256})));
    for schema in ["ActivateInput", "DeactivateInput"] {
        rules.push((
            schema,
            &["fingerprint"],
            json!({"minLength": 1, "maxLength": 255}),
        ));
    }
    rules.push((
        "ActivateInput",
        &["name"],
        json!({"maxLength": MAX_NAME_CHARS}),
    ));
    rules.push((
        "ActivateInput",
        &["platform"],
        json!({"maxLength": MAX_NAME_CHARS}),
    ));
    rules.push((
        "SeatInput",
        &["session"],
        json!({"minLength": 1, "maxLength": 255}),
    ));
    rules.push((
        "LicenseFileInput",
        &["ttl_seconds"],
        json!({"minimum": 60, "maximum": 315_360_000}),
    ));
    for schema in ["EndpointInput", "EndpointPatch"] {
        rules.push((schema, &["url"], json!({"maxLength": 2048})));
        rules.push((schema, &["description"], json!({"maxLength": 1000})));
    }
    for (schema, path, extra) in rules {
        let mut at = &mut schemas[schema];
        for part in path {
            at = &mut at["properties"][*part];
        }
        for (k, v) in extra.as_object().into_iter().flatten() {
            match (at.get_mut(k), v) {
                (Some(Value::Object(existing)), Value::Object(more)) => {
                    existing.extend(more.clone());
                }
                _ => at[k] = v.clone(),
            }
        }
    }
}

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect()
}

/// Bodies of the routes that read their body raw instead of through a schema.
fn raw_request_body(route: &Route) -> Option<Value> {
    match (route.method, route.path) {
        ("POST", "/v1/webhooks/{provider}/{integration_id}") => Some(json!({
            "required": false,
            "description": "the platform's payload exactly as sent (verified on these bytes by the platform's scheme)",
            "content": {"application/json": {"schema": {}}}
        })),
        ("POST", "/v1/keygen/{provider}/{integration_id}") => Some(json!({
            "required": false,
            "description": "the shop's key generator call exactly as sent (MyCommerce: the Key Generator SDK's fields; FastSpring: the remote license generator's parameters with security_request_hash)",
            "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": {"type": "string"}}}}
        })),
        ("POST", "/v1/licenses/{id}/actions/{action}") => Some(json!({
            "required": false,
            "description": "only `extend` reads it: {\"seconds\": N}",
            "content": {"application/json": {"schema": r("ExtendInput")}}
        })),
        _ => None,
    }
}

fn json_answer(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": r(schema)}}})
}

/// The routes whose answers carry `Keygate-Signature` (over the exact body bytes).
fn signs_answer(route: &Route) -> bool {
    matches!(
        route.path,
        "/v1/licenses/validate" | "/v1/licenses/activate" | "/v1/licenses/checkout"
    )
}

/// Every success an operation answers: the route's own, then the others it may give.
fn successes(route: &Route) -> Vec<(u16, Value)> {
    let (status, schema) = route.response;
    let main = match (route.path, schema) {
        (_, Some(s)) => json_answer("success", s),
        ("/v1/licenses/file" | "/metrics" | "/v1/keygen/{provider}/{integration_id}", None) => {
            json!({"description": "success (keygen: the license keys, one per line)",
            "content": {"text/plain": {"schema": {"type": "string"}}}})
        }
        ("/openapi.json", None) => json!({"description": "this document",
            "content": {"application/json": {"schema": {"type": "object"}}}}),
        (_, None) => json!({"description": "success"}),
    };
    let mut out = vec![(status, main)];
    match (route.method, route.path) {
        ("POST", "/v1/licenses/activate") => out.push((
            200,
            json_answer("the machine was already activated: its activation", "Activation"),
        )),
        ("POST", "/v1/webhooks/{provider}/{integration_id}") => out.push((
            202,
            json_answer(
                "a batch where only some events applied: `processed` lists them, the others are `failed` in the inbox",
                "WebhookReceipt",
            ),
        )),
        _ => {}
    }
    if signs_answer(route) || (route.method == "POST" && route.auth == Auth::ApiKey) {
        for (_, answer) in &mut out {
            let headers = &mut answer["headers"];
            if signs_answer(route) {
                headers["Keygate-Signature"] = json!({"description": "Ed25519 signature of the body (see the licfile crate)", "schema": {"type": "string"}});
            } else {
                headers["Idempotent-Replayed"] = json!({"description": "`true` when this answer replays an earlier request with the same Idempotency-Key", "schema": {"type": "string", "enum": ["true"]}});
            }
        }
    }
    out
}

/// Every error status an operation can answer, derived from what the route takes: each one is
/// listed with the error envelope, so an undocumented status is a contract violation.
pub fn error_statuses(route: &Route) -> std::collections::BTreeSet<u16> {
    let mut s = std::collections::BTreeSet::new();
    let writes = matches!(route.method, "POST" | "PATCH" | "DELETE");
    let takes_body = route.request.is_some() || raw_request_body(route).is_some();
    let idempotent = route.method == "POST" && route.auth == Auth::ApiKey;
    if route.auth != Auth::Public {
        s.insert(401);
    }
    if route.auth == Auth::RootToken {
        s.insert(403); // OPERATOR_DISABLED
    }
    if route.path.contains('{') {
        s.extend([400, 404]); // an id that cannot be one (e.g. a NUL in it), NOT_FOUND
    }
    if !route.query.is_empty() {
        s.extend([400, 422]); // INVALID_QUERY, INVALID_FILTER
    }
    if takes_body || idempotent {
        // MALFORMED_JSON / INVALID_BODY, REQUEST_TIMEOUT (a body sent too slowly),
        // PAYLOAD_TOO_LARGE, INVALID_FIELD
        s.extend([400, 408, 413, 422]);
    }
    if idempotent {
        s.insert(409); // IDEMPOTENCY_KEY_IN_USE while the first request runs
    }
    if writes && route.auth == Auth::ApiKey {
        s.extend([409, 422]); // uniqueness conflicts, references to missing objects
    }
    if !matches!(route.path, "/healthz" | "/metrics" | "/openapi.json") {
        s.insert(503); // UNAVAILABLE: the database is busy
    }
    if route.request.is_some() {
        s.insert(415); // UNSUPPORTED_MEDIA_TYPE
    }
    if route.rate_limit().is_some() {
        s.insert(429);
    }
    match (route.method, route.path) {
        // The license key is the credential: unknown key, or a license that refuses.
        ("POST", "/v1/licenses/activate" | "/v1/licenses/checkout" | "/v1/licenses/usage") => {
            s.extend([403, 404, 409, 422]);
        }
        ("POST", "/v1/licenses/deactivate" | "/v1/licenses/checkin") => {
            s.extend([404, 422]);
        }
        ("POST", "/v1/licenses/file") => {
            s.extend([403, 404, 422]);
        }
        // Refused signatures (401) and payloads (400) from the platform.
        ("POST", "/v1/webhooks/{provider}/{integration_id}") => {
            s.extend([400, 401, 404, 413, 422]);
        }
        // Refused calls (401), malformed ones (400), not enabled (404), unmapped (422).
        ("POST", "/v1/keygen/{provider}/{integration_id}") => {
            s.extend([400, 401, 404, 413, 422]);
        }
        _ => {}
    }
    s
}

/// What an error status means, with every code the API answers it with (from the one list).
fn error_description(status: u16) -> String {
    let meaning = match status {
        400 => "malformed request",
        401 => "missing or wrong credentials or signature",
        403 => {
            "refused: the operator endpoint is off, or the license's validation code (SUSPENDED, EXPIRED, ...)"
        }
        404 => "the object or route does not exist (in this account)",
        408 => "the request was not sent in time",
        409 => {
            "conflict: a unique value taken, a limit reached, or the Idempotency-Key's first request still running"
        }
        413 => {
            "the body is over 1 MiB (a larger Content-Length is refused before the body is read)"
        }
        415 => "a Content-Type that is not JSON",
        422 => "well-formed but not acceptable",
        429 => {
            "too many requests from this address (client endpoints) or for this integration (webhooks)"
        }
        503 => "the database is busy or does not answer: retry",
        _ => "error",
    };
    let codes: Vec<&str> = keygate_domain::ErrorCode::ALL
        .iter()
        .filter(|c| c.status() == status)
        .map(|c| c.as_str())
        .collect();
    if codes.is_empty() {
        meaning.to_string()
    } else {
        format!("{meaning}: {}", codes.join(", "))
    }
}

/// The `responses` object of an operation.
fn responses(route: &Route) -> Map<String, Value> {
    let mut out = Map::new();
    for (status, answer) in successes(route) {
        out.insert(status.to_string(), answer);
    }
    for status in error_statuses(route) {
        let mut answer = json_answer(&error_description(status), "Error");
        if status == 429 {
            answer["headers"] = json!({"Retry-After": {"description": "seconds until a request is accepted again", "schema": {"type": "integer", "minimum": 1}}});
        }
        out.insert(status.to_string(), answer);
    }
    out
}

pub fn document(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    for route in routes {
        let mut op = Map::new();
        op.insert("summary".into(), json!(route.summary));
        op.insert("tags".into(), json!([route.tag]));
        op.insert(
            "operationId".into(),
            json!(format!("{} {}", route.method.to_lowercase(), route.path)),
        );
        let mut params = path_params(route.path);
        params.extend(route.query.iter().map(|(name, description)| {
            let schema = if *name == "limit" {
                json!({"type": "integer", "minimum": crate::text_guard::LIMIT_RANGE.start(), "maximum": crate::text_guard::LIMIT_RANGE.end()})
            } else {
                json!({"type": "string"})
            };
            json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
        }));
        if route.method == "POST" && route.auth == Auth::ApiKey {
            params.push(json!({"name": "Idempotency-Key", "in": "header", "required": false,
                "description": "a retry with the same key and body answers the first answer again (header Idempotent-Replayed: true); the same key with another body: 422 IDEMPOTENCY_KEY_REUSED",
                "schema": {"type": "string", "maxLength": 255}}));
        }
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        if let Some(schema) = route.request {
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": r(schema)}}}),
            );
        } else if let Some(body) = raw_request_body(route) {
            op.insert("requestBody".into(), body);
        }
        op.insert("responses".into(), Value::Object(responses(route)));
        match route.auth {
            Auth::Public => {
                op.insert("security".into(), json!([]));
            }
            Auth::ApiKey => {
                op.insert("security".into(), json!([{"apiKey": []}]));
            }
            Auth::RootToken => {
                op.insert("security".into(), json!([{"rootToken": []}]));
            }
        }
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method.to_lowercase()] = Value::Object(op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Keygate",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Self-hosted software licensing with a built-in subscription gateway."
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "an account API key, kg_sk_..."},
                "rootToken": {"type": "http", "scheme": "bearer", "description": "KEYGATE_ROOT_TOKEN"}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_referenced_schema_exists() {
        let doc = document(&crate::routes::all());
        let text = doc.to_string();
        let schemas = schemas();
        for piece in text.split("#/components/schemas/").skip(1) {
            let name: String = piece.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(
                schemas.contains_key(&name),
                "schema {name} is referenced but missing"
            );
        }
    }

    #[test]
    fn every_status_is_listed_with_its_body() {
        let doc = document(&crate::routes::all());
        let op = |method: &str, path: &str| doc["paths"][path][method].clone();
        let activate = op("post", "/v1/licenses/activate");
        for status in ["200", "201"] {
            assert_eq!(
                activate["responses"][status]["content"]["application/json"]["schema"],
                r("Activation"),
                "activate {status}"
            );
        }
        let webhook = op("post", "/v1/webhooks/{provider}/{integration_id}");
        for status in ["200", "202"] {
            assert_eq!(
                webhook["responses"][status]["content"]["application/json"]["schema"],
                r("WebhookReceipt")
            );
        }
        assert!(webhook["requestBody"]["content"]["application/json"].is_object());
        assert!(webhook["responses"]["401"].is_object() && webhook["responses"]["400"].is_object());
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                assert!(
                    !responses.contains_key("default"),
                    "{method} {path}: a catch-all hides statuses"
                );
                for (status, answer) in responses {
                    if !status.starts_with('2') {
                        assert_eq!(
                            answer["content"]["application/json"]["schema"],
                            r("Error"),
                            "{method} {path} {status}"
                        );
                    }
                }
                if op["security"] != json!([]) {
                    assert!(responses.contains_key("401"), "{method} {path}: no 401");
                }
            }
        }
        let validate = op("post", "/v1/licenses/validate");
        assert!(validate["responses"]["429"]["headers"]["Retry-After"].is_object());
        assert!(validate["responses"]["200"]["headers"]["Keygate-Signature"].is_object());
        let limit = doc["paths"]["/v1/licenses"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap()
            .clone();
        assert_eq!(limit["schema"]["maximum"], 200);
    }

    #[test]
    fn documents_every_route() {
        let routes = crate::routes::all();
        let doc = document(&routes);
        for r in &routes {
            assert!(
                doc["paths"][r.path][r.method.to_lowercase()].is_object(),
                "{} {} missing",
                r.method,
                r.path
            );
        }
    }
}
