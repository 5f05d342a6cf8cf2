#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wsat_fuzz::host_flood(data));
