//! stripe webhooks: verify + parse of arbitrary bodies, signed and unsigned.
#![no_main]
libfuzzer_sys::fuzz_target!(|body: &[u8]| keygate_fuzz::provider_target("stripe", body));
