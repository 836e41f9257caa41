//! The Engine API's request decoders: create bodies, update bodies, queries and filters.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    engine::fuzzing::api_request(data);
});
