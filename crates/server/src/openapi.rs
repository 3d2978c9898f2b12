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
                   "key": {"type": "string", "description": "bring your own key (16-256 chars); generated when absent"},
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
                   "nonce": {"type": "string", "description": "echoed inside the answer (at most 256 chars)"},
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
            json!({"key": string(), "fingerprint": string(), "name": string(), "platform": string()}),
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
            json!({"key": string(), "session": string()}),
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
            json!({"key": string(), "feature": string(), "amount": int(),
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
    let features = json!({"maxItems": MAX_FEATURES, "items": {"maxLength": 64}});
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
        }
        let (status, schema) = route.response;
        let ok = match schema {
            Some(s) => {
                json!({"description": "success", "content": {"application/json": {"schema": r(s)}}})
            }
            None => json!({"description": "success"}),
        };
        let error = json!({"description": "error", "content": {"application/json": {"schema": r("Error")}}});
        let mut responses = json!({status.to_string(): ok, "default": error});
        if route.request.is_some() || route.path.starts_with("/v1/webhooks/") {
            responses["413"] = json!({"description": "PAYLOAD_TOO_LARGE: the body is over 1 MiB (a larger Content-Length is refused before the body is read)", "content": {"application/json": {"schema": r("Error")}}});
        }
        if route.request.is_some() {
            responses["415"] = json!({"description": "UNSUPPORTED_MEDIA_TYPE: a Content-Type that is not JSON", "content": {"application/json": {"schema": r("Error")}}});
        }
        if route.rate_limit().is_some() {
            responses["429"] = json!({"description": "RATE_LIMITED: too many requests from this address (client endpoints) or for this integration (webhooks)",
                "headers": {"Retry-After": {"description": "seconds until a request is accepted again", "schema": {"type": "integer", "minimum": 1}}},
                "content": {"application/json": {"schema": r("Error")}}});
        }
        op.insert("responses".into(), responses);
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
