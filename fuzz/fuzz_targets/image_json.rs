//! Manifest, index and image config JSON, as read from registries, archives and the store.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    image_store::fuzzing::image_json(data);
    registry_client::fuzzing::registry_json(data);
});
