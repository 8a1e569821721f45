//! Any bytes as an origin's response head: `codec::parse_response_head`
//! must not panic and must keep the promises in `codec::properties`.
#![no_main]

use fulcrum::http::upstream::codec::properties;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| properties::response_head(data));
