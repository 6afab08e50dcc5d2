//! Query strings (`protocol::query`): pairs, values, percent-coding, a
//! call's shape (`CallParams`) and what a balancer forwards, plus the
//! workers' option bounds (`protocol::limits`). Never a panic; encoding
//! then decoding gives the text back; a call shape that parses is written
//! and read back the same.
#![no_main]

use protocol::query::{
    forward_call_params, percent_decode, percent_encode_into, query_pairs, query_value, CallParams,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let query = String::from_utf8_lossy(data);
    for (k, v) in query_pairs(&query) {
        let _ = protocol::limits::check_worker_option(&k, &v);
    }
    let _ = query_value(&query, "name");
    let _ = percent_decode(&query);

    let mut encoded = String::new();
    percent_encode_into(&query, &mut encoded);
    assert_eq!(percent_decode(&encoded), query, "percent-coding round trip");

    let mut forwarded = String::new();
    forward_call_params(&query, &mut forwarded);
    if let Ok(shape) = CallParams::parse(&query) {
        let mut written = String::new();
        shape.append_to(&mut written);
        assert_eq!(
            CallParams::parse(&written),
            Ok(shape),
            "{written:?} does not read back"
        );
    }
});
