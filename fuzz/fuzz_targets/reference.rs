//! Image reference parsing, and that canonical and familiar forms parse back the same.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    image_store::fuzzing::reference(data);
});
