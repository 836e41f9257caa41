//! A layer blob (plain, gzip or zstd tar) applied to an empty directory: no panic, nothing written outside it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    image_store::fuzzing::unpack_layer(data);
});
