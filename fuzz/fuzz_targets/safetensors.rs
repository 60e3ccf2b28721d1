#![no_main]

include!("../targets.rs");
include!("../model_targets.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| model_targets::safetensors(data));
