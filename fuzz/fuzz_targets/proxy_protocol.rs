//! Any bytes: the PROXY protocol parser must not panic, must not claim more
//! than it was given, and whatever addresses it returns must survive a
//! re-encode in both versions.
#![no_main]

use fulcrum_wire::proxy_protocol::{self, Transport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some((header, consumed))) = proxy_protocol::parse(data) else {
        return;
    };
    assert!(consumed <= data.len(), "consumed {consumed} of {} bytes", data.len());
    let Some((source, destination)) = header.addresses else {
        return;
    };

    let v1 = proxy_protocol::encode_v1(source, destination);
    match proxy_protocol::parse(&v1) {
        Ok(Some((again, n))) => {
            assert_eq!(n, v1.len());
            assert_eq!(again.addresses, Some((source, destination)));
        }
        other => panic!("re-encoded v1 {v1:?} did not parse: {other:?}"),
    }

    let transport = header.transport.unwrap_or(Transport::Stream);
    let v2 = proxy_protocol::encode_v2(source, destination, transport);
    match proxy_protocol::parse(&v2) {
        Ok(Some((again, n))) => {
            assert_eq!(n, v2.len());
            assert_eq!(again.addresses, Some((source, destination)));
            assert_eq!(again.transport, Some(transport));
        }
        other => panic!("re-encoded v2 {v2:?} did not parse: {other:?}"),
    }
});
