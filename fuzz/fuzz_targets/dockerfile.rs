//! Dockerfile parsing, ARG/ENV resolution, shell-word expansion, .dockerignore patterns.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    builder::fuzzing::dockerfile(data);
});
