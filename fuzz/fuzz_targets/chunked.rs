//! Any bytes as a chunked response body, split into two reads at a point
//! the input chooses: the decoder must not panic and must decode the same
//! however the bytes arrive (`codec::properties::chunked`).
#![no_main]

use fulcrum::http::upstream::codec::properties;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let split = usize::from(first) * body.len() / 255;
    properties::chunked(body, split);
});
