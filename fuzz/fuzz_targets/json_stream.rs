//! libFuzzer target: natter::proto::fuzzing::json_stream (see src/proto/fuzzing.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| natter::proto::fuzzing::json_stream(data));
