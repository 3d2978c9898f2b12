//! License files: arbitrary text through the parser and verifier; and any JSON object issued
//! as a file, which must verify and give the same payload back, and stop verifying once altered.
#![no_main]
use keygate_licfile::{canonical_bytes, issue_file, parse_file, verify_file};
use serde_json::Value;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let ring = keygate_fuzz::key_ring();
    let text = String::from_utf8_lossy(data);
    let _ = parse_file(&text);
    let _ = verify_file(&text, &ring, keygate_fuzz::NOW_SECONDS, None);
    let _ = verify_file(&text, &ring, keygate_fuzz::NOW_SECONDS, Some("machine-1"));

    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    // Canonical form is a fixed point.
    let canonical = canonical_bytes(&value);
    let reparsed: Value = serde_json::from_slice(&canonical).expect("canonical bytes are JSON");
    assert_eq!(
        canonical_bytes(&reparsed),
        canonical,
        "canonical form is not stable"
    );
    if !value.is_object() {
        return;
    }

    let file = issue_file(keygate_fuzz::signing_key(), &value);
    let (payload, _kid) = parse_file(&file).expect("an issued file parses");
    assert_eq!(
        canonical_bytes(&payload),
        canonical_bytes(&value),
        "payload changed"
    );
    let issued_at = value.get("issued_at").and_then(Value::as_i64);
    let valid_until = value.get("valid_until").and_then(Value::as_i64);
    let fingerprint = match value.get("fingerprint") {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(f)) => Some(Some(f.as_str())),
        Some(_) => None,
    };
    if let (Some(issued), Some(until), Some(fp)) = (issued_at, valid_until, fingerprint)
        && issued < until
    {
        let verified = verify_file(&file, &ring, issued, fp)
            .unwrap_or_else(|e| panic!("an issued file does not verify: {e}"));
        assert_eq!(canonical_bytes(&verified.payload), canonical_bytes(&value));
        assert_eq!((verified.issued_at, verified.valid_until), (issued, until));
    }

    // One character of the base64 changed: refused, or (never, in practice) the same payload.
    let lines: Vec<&str> = file.lines().collect();
    let body_len: usize = lines[1..lines.len() - 1].iter().map(|l| l.len()).sum();
    if body_len == 0 {
        return;
    }
    let target = crc32fast_index(data, body_len);
    let mut seen = 0;
    let mut altered = String::with_capacity(file.len());
    for (i, line) in lines.iter().enumerate() {
        if i > 0 && i < lines.len() - 1 && target >= seen && target < seen + line.len() {
            let at = target - seen;
            let old = line.as_bytes()[at];
            let new = if old == b'A' { 'B' } else { 'A' };
            altered.push_str(&line[..at]);
            altered.push(new);
            altered.push_str(&line[at + 1..]);
        } else {
            altered.push_str(line);
        }
        seen += if i > 0 && i < lines.len() - 1 {
            line.len()
        } else {
            0
        };
        if i + 1 < lines.len() {
            altered.push('\n');
        }
    }
    if let Ok(v) = verify_file(
        &altered,
        &ring,
        issued_at.unwrap_or(0),
        fingerprint.flatten(),
    ) {
        assert_eq!(
            canonical_bytes(&v.payload),
            canonical_bytes(&value),
            "an altered file verified"
        );
    }
});

fn crc32fast_index(data: &[u8], len: usize) -> usize {
    data.iter()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(*b as usize))
        % len
}
