//! The HTTP answer to a delivery the platform reads: most platforms only look at the status,
//! some need a body (FastSpring's processed ids, 2Checkout's read receipt, Braintree's
//! challenge answer). A platform says what it needs through
//! [`Provider::acknowledge`](crate::Provider::acknowledge); the server sends it as is.

use serde::Serialize;

/// What Keygate did with one event of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// Keygate's inbox id.
    pub id: String,
    pub provider_event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// `applied`, `ignored`, `failed`, `pending`.
    pub status: String,
    pub duplicate: bool,
}

/// An HTTP answer: status, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Ack {
    /// Keygate's own receipt, 200 with `{"received", "processed", "events"}` (`processed`: the
    /// platform ids of the events that did not fail).
    pub fn receipt(receipts: &[Receipt]) -> Ack {
        Ack::receipt_with_status(200, receipts)
    }

    pub fn receipt_with_status(status: u16, receipts: &[Receipt]) -> Ack {
        let processed: Vec<&str> = receipts
            .iter()
            .filter(|r| r.status != "failed")
            .map(|r| r.provider_event_id.as_str())
            .collect();
        let body = serde_json::json!({
            "received": receipts.len(),
            "processed": processed,
            "events": receipts,
        });
        Ack {
            status,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
        }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Ack {
        Ack {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(id: &str, status: &str) -> Receipt {
        Receipt {
            id: format!("we_{id}"),
            provider_event_id: id.into(),
            event_type: "t".into(),
            status: status.into(),
            duplicate: false,
        }
    }

    #[test]
    fn receipt_lists_what_was_processed() {
        let ack = Ack::receipt(&[receipt("a", "applied"), receipt("b", "failed")]);
        assert_eq!((ack.status, ack.content_type), (200, "application/json"));
        let body: serde_json::Value = serde_json::from_slice(&ack.body).unwrap();
        assert_eq!(body["received"], 2);
        assert_eq!(body["processed"], serde_json::json!(["a"]));
        assert_eq!(body["events"][1]["type"], "t");
        assert_eq!(body["events"][1]["status"], "failed");
        assert_eq!(body["events"][0]["duplicate"], false);
        assert_eq!(body["events"][0]["id"], "we_a");
        assert_eq!(
            Ack::text(200, "x").content_type,
            "text/plain; charset=utf-8"
        );
    }
}
