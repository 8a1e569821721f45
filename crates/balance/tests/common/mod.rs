//! Shared helpers for the integration tests: the committed test-vector
//! format (`tests/vectors/*.txt`) and endpoint sets.

#![allow(dead_code)] // Each test binary uses a different subset.

use fulcrum_balance::hash::request_hash;
use fulcrum_balance::{Balancer, PickContext};

/// The message every vector mismatch carries.
pub const BREAKING: &str = "committed consistent-hashing test vector mismatch. Changing these \
     vectors (or the code so that they no longer match) is a BREAKING CHANGE: every fulcrum \
     instance in a fleet, and every version during a rolling upgrade, must send the same \
     request to the same endpoint, and instances built from different tables would not. \
     Only regenerate the vectors for a deliberate, documented, fleet-wide migration";

/// One `set` block of a vector file.
#[derive(Debug, Default)]
pub struct VectorSet {
    pub name: String,
    /// `key value` lines other than `endpoint`, `sample` and `set`.
    pub fields: Vec<(String, String)>,
    /// `endpoint <key> <weight>`, in file order.
    pub endpoints: Vec<(String, u32)>,
    /// `sample <request key> <endpoint key>`.
    pub samples: Vec<(String, String)>,
}

impl VectorSet {
    pub fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("set {}: no field {name}", self.name))
    }

    pub fn number(&self, name: &str) -> u64 {
        let v = self.field(name);
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        }
        .unwrap_or_else(|e| panic!("set {}: field {name} = {v}: {e}", self.name))
    }

    pub fn keys(&self) -> Vec<&str> {
        self.endpoints.iter().map(|(k, _)| k.as_str()).collect()
    }

    pub fn weights(&self) -> Vec<u32> {
        self.endpoints.iter().map(|&(_, w)| w).collect()
    }
}

/// Parses a vector file: `#` comments, blank lines, `set <name>` starting a
/// block, then `<field> <value...>` lines.
pub fn parse(text: &str) -> Vec<VectorSet> {
    let mut sets: Vec<VectorSet> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let field = words.next().unwrap_or_default();
        let rest: Vec<&str> = words.collect();
        if field == "set" {
            sets.push(VectorSet {
                name: rest.join(" "),
                ..VectorSet::default()
            });
            continue;
        }
        let set = sets
            .last_mut()
            .expect("a field before the first `set` line");
        match (field, rest.as_slice()) {
            ("endpoint", [key, weight]) => set
                .endpoints
                .push(((*key).into(), weight.parse().expect("weight"))),
            ("sample", [request, endpoint]) => {
                set.samples.push(((*request).into(), (*endpoint).into()))
            }
            (_, [value]) => set.fields.push((field.into(), (*value).into())),
            _ => panic!("malformed vector line: {line}"),
        }
    }
    assert!(!sets.is_empty(), "no vector sets");
    sets
}

/// Checks the `sample` lines of `set` against `lb`, built over `keys`.
pub fn check_samples(lb: &dyn Balancer, keys: &[&str], set: &VectorSet) {
    let load = vec![0u64; keys.len()];
    assert_eq!(set.samples.len(), 20, "set {}", set.name);
    for (request, expected) in &set.samples {
        let ctx = PickContext::new(0, &load).with_hash(Some(request_hash(request.as_bytes())));
        let got = lb.pick(&ctx).map(|i| keys[i]);
        assert_eq!(
            got,
            Some(expected.as_str()),
            "{BREAKING}. Set {}, request key {request}",
            set.name
        );
    }
}

/// `n` endpoint keys `"10.0.{i / 256}.{i % 256}:80"`.
pub fn endpoint_keys(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.0.{}.{}:80", i / 256, i % 256))
        .collect()
}
