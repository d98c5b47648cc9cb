//! libFuzzer target: arbitrary bytes as a fetched `records` blob. See `strait_fuzz::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strait_fuzz::check(data));
