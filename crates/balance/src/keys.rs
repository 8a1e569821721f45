//! Endpoint keys for the hashing policies: a stable string per endpoint (the
//! server passes its address, `"10.0.0.1:8080"`) from which every instance
//! derives the same ring, table or scores.
//!
//! The hashing balancers visit endpoints in **key order** (bytewise), never
//! in the caller's order, so the result is a function of the set of
//! (key, weight) pairs alone: two instances that list the same endpoints in
//! a different order (service discovery rarely promises an order) still
//! agree. Keys must therefore be unique, or two endpoints would be
//! indistinguishable and their order would leak back in.

use crate::BuildError;

/// Indices into `keys`, sorted by key; an error for a repeated key or for
/// more than `u32::MAX` endpoints (the tables store indices as `u32`).
pub(crate) fn key_order(keys: &[&str]) -> Result<Vec<usize>, BuildError> {
    if u32::try_from(keys.len()).is_err() {
        return Err(BuildError::TooManyEndpoints { len: keys.len() });
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_unstable_by_key(|&i| keys[i]);
    if let Some(pair) = order.windows(2).find(|w| keys[w[0]] == keys[w[1]]) {
        return Err(BuildError::DuplicateKey {
            key: keys[pair[0]].to_owned(),
        });
    }
    Ok(order)
}

/// `"0"`, `"1"`, ...: the keys [`crate::build`] uses for the hashing
/// policies, which only know weights.
pub(crate) fn index_keys(len: usize) -> Vec<String> {
    (0..len).map(|i| i.to_string()).collect()
}

/// Index `i` as stored in a table: `key_order` has checked that every index
/// fits `u32`, so the conversion is lossless.
pub(crate) fn compact(i: usize) -> u32 {
    debug_assert!(u32::try_from(i).is_ok());
    i as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_bytewise_and_rejects_duplicates() {
        let keys = ["10.0.0.2:80", "10.0.0.10:80", "10.0.0.1:80"];
        // '1' < '2' and ':' (0x3A) > '0' (0x30): "10.0.0.1:" > "10.0.0.10".
        assert_eq!(key_order(&keys), Ok(vec![1, 2, 0]));
        assert_eq!(key_order(&[]), Ok(vec![]));
        assert_eq!(
            key_order(&["b", "a", "b"]),
            Err(BuildError::DuplicateKey { key: "b".into() })
        );
    }
}
