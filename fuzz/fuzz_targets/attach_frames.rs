//! The multiplexed attach stream decoder and the detach-key scanner.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    engine::fuzzing::attach_frames(data);
});
