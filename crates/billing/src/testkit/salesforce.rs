//! Salesforce: Outbound Messages (SOAP 1.1) from a Flow on Opportunity, authenticated by the
//! URL token; the step bodies are JSON descriptions of the messages, rendered to the SOAP
//! envelope Salesforce sends by [`render`].

use super::{Delivery, Ids, Kit, MONTH, Settings, SignedHeaders, Steps, first_secret};
use crate::{Secrets, Timestamp};
use serde_json::{Value, json};

pub struct SalesforceKit;

const TOKEN: &str = "sf-outbound-token-for-tests-0123456789";
pub const ORGANIZATION_ID: &str = "00DKG0000000001AAA";
const RECORD: &str = "006KG0000000001AAA";
const ACCOUNT: &str = "001KG0000000001AAA";

/// The options of the kit's integration (the docs page's example).
pub fn options() -> Value {
    json!({
        "organization_id": ORGANIZATION_ID,
        "sobject": "Opportunity",
        "fields": {"email": "Contact_Email__c", "name": "Contact_Name__c",
                   "product_code": "Product_Code__c", "quantity": "Seats__c",
                   "term_end": "Term_End__c", "status": "License_Status__c",
                   "customer_id": "AccountId"},
        "status_values": {"active": ["Active"], "cancelled": ["Cancelled"],
                          "refunded": ["Refunded"]}
    })
}

impl Kit for SalesforceKit {
    fn settings(&self) -> Settings {
        Settings {
            secrets: vec![TOKEN.into()],
            options: options(),
        }
    }

    /// Salesforce signs nothing: the token goes in the URL (`token=...`).
    fn sign(
        &self,
        secrets: &Secrets,
        _body: &[u8],
        _now: Timestamp,
    ) -> Result<SignedHeaders, String> {
        first_secret(secrets)?;
        Ok(vec![
            ("content-type".into(), "text/xml; charset=utf-8".into()),
            ("soapaction".into(), "\"\"".into()),
        ])
    }

    fn ids(&self) -> Ids {
        Ids {
            mapping: "KG-PRO",
            customer: ACCOUNT,
            subscription: RECORD,
        }
    }

    fn steps(&self, start: i64, failed_at: i64) -> Option<Steps> {
        Some(salesforce_steps(start, failed_at))
    }

    /// The SOAP envelope, with the token in the URL.
    fn deliver(&self, secrets: &Secrets, body: &Value, now: Timestamp) -> Result<Delivery, String> {
        let xml = render(body, &secrets.options).into_bytes();
        Ok(Delivery {
            headers: self.sign(secrets, &xml, now)?,
            body: xml,
            query: query(secrets)?,
        })
    }
}

/// The URL query that authenticates a message under `secrets`.
pub fn query(secrets: &Secrets) -> Result<String, String> {
    Ok(format!("token={}", first_secret(secrets)?))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The SOAP envelope Salesforce sends for a step body
/// `{"notifications": [{"id", "record", "account", "email", "name", "product", "seats",
/// "term_end", "status": "active|cancelled|refunded", "modified"}]}`, with the field names,
/// status values, sObject type and org id of the integration's `options` (so `keygate
/// simulate` speaks to the vendor's own integration).
pub fn render(body: &Value, options: &Value) -> String {
    let defaults = self::options();
    let opt = |pointer: &str| {
        options
            .pointer(pointer)
            .or_else(|| defaults.pointer(pointer))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let status_value = |outcome: &str| {
        let pointer = format!("/status_values/{outcome}/0");
        opt(&pointer)
    };
    let org = opt("/organization_id");
    let mut out = String::from(concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        "\n",
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" "#,
        r#"xmlns:xsd="http://www.w3.org/2001/XMLSchema" "#,
        r#"xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
        "\n <soapenv:Body>\n",
        r#"  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">"#,
        "\n"
    ));
    out.push_str(&format!(
        "   <OrganizationId>{}</OrganizationId>\n",
        escape(&org)
    ));
    out.push_str("   <ActionId>04kKG0000000001AAA</ActionId>\n");
    out.push_str("   <SessionId xsi:nil=\"true\"/>\n");
    out.push_str("   <EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/62.0/00DKG0000000001</EnterpriseUrl>\n");
    out.push_str("   <PartnerUrl>https://example.my.salesforce.com/services/Soap/u/62.0/00DKG0000000001</PartnerUrl>\n");
    for n in body["notifications"].as_array().into_iter().flatten() {
        let text = |k: &str| n[k].as_str().unwrap_or("").to_string();
        let mut fields: Vec<(String, Option<String>)> = vec![
            ("Id".into(), Some(text("record"))),
            (opt("/fields/customer_id"), Some(text("account"))),
            ("Name".into(), Some("Example Corp - Keygate Pro".into())),
            ("StageName".into(), Some("Closed Won".into())),
            (opt("/fields/email"), Some(text("email"))),
            (opt("/fields/name"), Some(text("name"))),
            (opt("/fields/product_code"), Some(text("product"))),
            (
                opt("/fields/quantity"),
                Some(format!("{}.0", n["seats"].as_i64().unwrap_or(1))),
            ),
            (opt("/fields/term_end"), Some(text("term_end"))),
            (opt("/fields/status"), Some(status_value(&text("status")))),
            ("Description".into(), None),
            ("SystemModstamp".into(), Some(text("modified"))),
        ];
        fields.retain(|(name, _)| !name.is_empty());
        out.push_str("   <Notification>\n");
        out.push_str(&format!("    <Id>{}</Id>\n", escape(&text("id"))));
        out.push_str(&format!(
            "    <sObject xsi:type=\"sf:{}\" xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\">\n",
            escape(&opt("/sobject"))
        ));
        for (name, value) in fields {
            match value {
                None => out.push_str(&format!("     <sf:{name} xsi:nil=\"true\"/>\n")),
                Some(v) => out.push_str(&format!("     <sf:{name}>{}</sf:{name}>\n", escape(&v))),
            }
        }
        out.push_str("    </sObject>\n   </Notification>\n");
    }
    out.push_str("  </notifications>\n </soapenv:Body>\n</soapenv:Envelope>\n");
    out
}

/// A DateTime as Salesforce writes it (`2026-01-01T00:00:00.000Z`).
fn sf_time(seconds: i64) -> String {
    let text = super::rfc(seconds);
    text.replace('Z', ".000Z")
}

fn notification(id: &str, status: &str, seats: i64, term_end: i64, modified: i64) -> Value {
    json!({"id": id, "record": RECORD, "account": ACCOUNT, "email": "ann@example.com",
           "name": "Ann Example", "product": "KG-PRO", "seats": seats,
           "term_end": sf_time(term_end), "status": status, "modified": sf_time(modified)})
}

fn message(notifications: Vec<Value>) -> Value {
    json!({"notifications": notifications})
}

fn salesforce_steps(now: i64, failed_at: i64) -> Steps {
    let p1 = now + MONTH;
    let p2 = now + 2 * MONTH;
    Steps {
        created: vec![message(vec![notification(
            "04lKG00000000A1AAA",
            "active",
            1,
            p1,
            now - 100,
        )])],
        // The contract's term end moves: the license's expiry follows.
        renewed: vec![message(vec![notification(
            "04lKG00000000A2AAA",
            "active",
            1,
            p2,
            now - 90,
        )])],
        // Two notifications of the same record in one message (a retry batched with a newer
        // change): the newer one wins whatever the order.
        quantity: vec![message(vec![
            notification("04lKG00000000A4AAA", "active", 5, p2, now - 80),
            notification("04lKG00000000A3AAA", "active", 3, p2, now - 85),
        ])],
        // Salesforce records no payments: no failed or recovered step.
        failed: Vec::new(),
        recovered: Vec::new(),
        cancelled: vec![message(vec![notification(
            "04lKG00000000A5AAA",
            "cancelled",
            5,
            p2,
            failed_at + 2,
        )])],
        refunded: vec![message(vec![notification(
            "04lKG00000000A6AAA",
            "refunded",
            5,
            p2,
            failed_at + 3,
        )])],
        cancel_ends_at: p2,
    }
}
