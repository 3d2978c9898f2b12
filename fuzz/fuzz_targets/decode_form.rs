//! The form decoder (`application/x-www-form-urlencoded`, for platforms that post forms):
//! arbitrary bytes must decode or be refused, and decoded fields, encoded again with every
//! byte escaped, must decode to the same fields in the same order.
#![no_main]
use keygate_billing::Form;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(form) = Form::parse(data) else {
        return;
    };
    let mut encoded = Vec::new();
    for (i, (name, value)) in form.fields().iter().enumerate() {
        if i > 0 {
            encoded.push(b'&');
        }
        for b in name.bytes() {
            encoded.extend(format!("%{b:02X}").bytes());
        }
        encoded.push(b'=');
        for b in value.bytes() {
            encoded.extend(format!("%{b:02X}").bytes());
        }
    }
    let again = Form::parse(&encoded).expect("escaped UTF-8 decodes");
    // A field with an empty name and value encodes to "=", which decodes to ("", "").
    assert_eq!(
        again.fields(),
        form.fields(),
        "fields changed in an encode/decode round trip"
    );
    for (name, value) in form.fields() {
        assert_eq!(form.get_all(name).next(), form.get(name));
        assert!(form.get_all(name).any(|v| v == value));
    }
});
