//! Any bytes: the ClientHello inspector must not panic, and a complete hello
//! must not change when more bytes follow it.
#![no_main]

use fulcrum_wire::client_hello;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(hello)) = client_hello::parse(data) else {
        return;
    };
    let mut more = data.to_vec();
    more.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x01, 0x00]);
    assert_eq!(client_hello::parse(&more), Ok(Some(hello)));
});
