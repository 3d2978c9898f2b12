//! Salesforce Outbound Messaging: the SOAP 1.1 `notifications` envelope, read by namespace and
//! local name so any prefix (`soapenv:`, `soap:`, none) reads the same. A DTD is refused
//! (roxmltree's default), so no entity is ever expanded: only XML's five predefined entities
//! and character references are.

use crate::BillingError;
use roxmltree::{Document, Node, ParsingOptions};

pub const SOAP_ENVELOPE: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const OUTBOUND: &str = "http://soap.sforce.com/2005/09/outbound";
pub const SOBJECT: &str = "urn:sobject.enterprise.soap.sforce.com";
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Salesforce's limit per message (`maxOccurs="100"` in the WSDL it generates).
pub const MAX_NOTIFICATIONS: usize = 100;

/// One `notifications` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    pub organization_id: String,
    pub action_id: Option<String>,
    pub enterprise_url: Option<String>,
    pub partner_url: Option<String>,
    pub notifications: Vec<Notification>,
}

/// One `Notification`: its own id (the same on every retry of it) and the sObject's fields
/// the outbound message was set up to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: String,
    /// The local part of `xsi:type` (`Opportunity` for `sf:Opportunity`).
    pub sobject_type: String,
    /// Field name → value; `None` for `xsi:nil="true"`.
    pub fields: Vec<(String, Option<String>)>,
}

impl Notification {
    /// A field's value: `None` when absent or nil; blank counts as absent.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
}

fn malformed(message: impl Into<String>) -> BillingError {
    BillingError::malformed(message)
}

fn child<'a, 'i>(node: Node<'a, 'i>, ns: &str, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| {
        c.is_element() && c.tag_name().name() == name && c.tag_name().namespace() == Some(ns)
    })
}

fn text_of(node: Node<'_, '_>) -> Option<String> {
    if nil(node) {
        return None;
    }
    let text: String = node
        .children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn nil(node: Node<'_, '_>) -> bool {
    matches!(node.attribute((XSI, "nil")), Some("true" | "1"))
}

fn required_text(node: Node<'_, '_>, ns: &str, name: &str) -> Result<String, BillingError> {
    child(node, ns, name)
        .and_then(text_of)
        .ok_or_else(|| malformed(format!("`{name}` is missing")))
}

/// Reads a `notifications` message. Not XML, a DTD, another SOAP body, a notification without
/// its `Id` or `sObject`, or more than [`MAX_NOTIFICATIONS`]: `MALFORMED_PAYLOAD`.
pub fn parse(body: &[u8]) -> Result<OutboundMessage, BillingError> {
    let text = std::str::from_utf8(body).map_err(|_| malformed("the body is not UTF-8"))?;
    let options = ParsingOptions {
        allow_dtd: false,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, options)
        .map_err(|e| malformed(format!("not a SOAP message: {e}")))?;
    let envelope = doc.root_element();
    if envelope.tag_name().name() != "Envelope"
        || envelope.tag_name().namespace() != Some(SOAP_ENVELOPE)
    {
        return Err(malformed("not a SOAP 1.1 envelope"));
    }
    let body = child(envelope, SOAP_ENVELOPE, "Body").ok_or_else(|| malformed("no SOAP Body"))?;
    let message = child(body, OUTBOUND, "notifications")
        .ok_or_else(|| malformed("the SOAP Body holds no Salesforce `notifications`"))?;
    let mut notifications = Vec::new();
    for node in message
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "Notification")
        .filter(|c| c.tag_name().namespace() == Some(OUTBOUND))
    {
        if notifications.len() == MAX_NOTIFICATIONS {
            return Err(malformed(format!(
                "more than {MAX_NOTIFICATIONS} notifications in one message"
            )));
        }
        notifications.push(notification(node)?);
    }
    Ok(OutboundMessage {
        organization_id: required_text(message, OUTBOUND, "OrganizationId")?,
        action_id: child(message, OUTBOUND, "ActionId").and_then(text_of),
        enterprise_url: child(message, OUTBOUND, "EnterpriseUrl").and_then(text_of),
        partner_url: child(message, OUTBOUND, "PartnerUrl").and_then(text_of),
        notifications,
    })
}

fn notification(node: Node<'_, '_>) -> Result<Notification, BillingError> {
    let id = required_text(node, OUTBOUND, "Id")?;
    let sobject = child(node, OUTBOUND, "sObject")
        .ok_or_else(|| malformed("a Notification has no sObject"))?;
    // `xsi:type` is a QName (`sf:Opportunity`): its prefix is the document's, only the local
    // part names the object.
    let sobject_type = sobject
        .attribute((XSI, "type"))
        .map(|t| t.rsplit(':').next().unwrap_or(t).to_string())
        .ok_or_else(|| malformed("an sObject has no xsi:type"))?;
    let fields = sobject
        .children()
        .filter(|c| c.is_element())
        .map(|c| (c.tag_name().name().to_string(), text_of(c)))
        .collect();
    Ok(Notification {
        id,
        sobject_type,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00DKG0000000001AAA</OrganizationId>
   <ActionId>04kKG0000000001AAA</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/60.0/00DKG0000000001</EnterpriseUrl>
   <PartnerUrl>https://example.my.salesforce.com/services/Soap/u/60.0/00DKG0000000001</PartnerUrl>
   <Notification>
    <Id>04lKG0000000001AAA</Id>
    <sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>006KG0000000001AAA</sf:Id>
     <sf:StageName>Closed Won</sf:StageName>
     <sf:Description xsi:nil="true"/>
     <sf:Name>Ann &amp; Co</sf:Name>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"#;

    #[test]
    fn reads_the_envelope_whatever_the_prefixes() {
        let m = parse(MESSAGE.as_bytes()).unwrap();
        assert_eq!(m.organization_id, "00DKG0000000001AAA");
        assert_eq!(m.action_id.as_deref(), Some("04kKG0000000001AAA"));
        assert_eq!(m.notifications.len(), 1);
        let n = &m.notifications[0];
        assert_eq!(n.id, "04lKG0000000001AAA");
        assert_eq!(n.sobject_type, "Opportunity");
        assert_eq!(n.field("StageName"), Some("Closed Won"));
        assert_eq!(n.field("Name"), Some("Ann & Co"));
        assert_eq!(n.field("Description"), None);
        assert_eq!(n.field("Nope"), None);

        let other = MESSAGE
            .replace("soapenv:", "S:")
            .replace("xmlns:soapenv=", "xmlns:S=")
            .replace(
                "<notifications xmlns=\"http://soap.sforce.com/2005/09/outbound\">",
                "<o:notifications xmlns:o=\"http://soap.sforce.com/2005/09/outbound\">",
            )
            .replace("</notifications>", "</o:notifications>");
        // Children of a prefixed `notifications` without a prefix are in no namespace: only
        // the prefixed envelope changes here, so re-prefix them too.
        let other = other
            .replace("<OrganizationId>", "<o:OrganizationId>")
            .replace("</OrganizationId>", "</o:OrganizationId>")
            .replace("<Notification>", "<o:Notification>")
            .replace("</Notification>", "</o:Notification>")
            .replace("<Id>", "<o:Id>")
            .replace("</Id>", "</o:Id>")
            .replace("<sObject ", "<o:sObject ")
            .replace("</sObject>", "</o:sObject>");
        let m2 = parse(other.as_bytes()).unwrap();
        assert_eq!(m2.notifications, m.notifications);
        assert_eq!(m2.organization_id, m.organization_id);
    }

    #[test]
    fn refuses_dtds_other_bodies_and_floods() {
        let dtd = format!(
            "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\">]>{}",
            &MESSAGE[MESSAGE.find("<soapenv:Envelope").unwrap()..]
        );
        assert_eq!(
            parse(dtd.as_bytes()).unwrap_err().code(),
            "MALFORMED_PAYLOAD"
        );
        for bad in [
            "not xml",
            "<a/>",
            "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body/></soapenv:Envelope>",
        ] {
            assert_eq!(
                parse(bad.as_bytes()).unwrap_err().code(),
                "MALFORMED_PAYLOAD",
                "{bad}"
            );
        }
        let no_id = MESSAGE.replace("<Id>04lKG0000000001AAA</Id>", "");
        assert!(parse(no_id.as_bytes()).is_err());
        let one = &MESSAGE[MESSAGE.find("<Notification>").unwrap()
            ..MESSAGE.find("</Notification>").unwrap() + "</Notification>".len()];
        let flood = MESSAGE.replace(one, &one.repeat(MAX_NOTIFICATIONS + 1));
        assert!(parse(flood.as_bytes()).is_err());
        let hundred = MESSAGE.replace(one, &one.repeat(MAX_NOTIFICATIONS));
        assert_eq!(parse(hundred.as_bytes()).unwrap().notifications.len(), 100);
        assert!(parse(&[0xff, 0xfe]).is_err());
    }
}
