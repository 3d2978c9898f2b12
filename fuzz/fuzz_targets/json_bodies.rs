//! The API's JSON request bodies: the first byte picks a request shape, the rest is the body.
//! Deserialized as the server does (serde_json, unknown fields refused), then through the
//! domain's checks; what deserializes must serialize back to the same value where the type
//! round-trips.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some((selector, body)) = data.split_first() {
        keygate_fuzz::json_body_target(*selector, body);
    }
});
