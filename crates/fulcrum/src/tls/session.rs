//! Resumption bound to the client-certificate policy a session was made
//! under, as OpenSSL's session ID context (`sid_ctx`) does: a resumed
//! session skips client-certificate verification, so once the client CA
//! bundle changes, sessions from before must not resume. Every session-ID
//! key and every ticket carries a context (the SHA-256 of the CA bundle);
//! a reload changes it, and old sessions fall back to a full handshake.
//! Instances with the same bundle compute the same context, so shared
//! ticket keys still resume across them.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ProducesTickets, StoresServerSessions};

const CONTEXT_LEN: usize = 32;

/// The current context; swapped when the client CA reloads.
#[derive(Debug)]
pub struct SessionContext(ArcSwap<[u8; CONTEXT_LEN]>);

impl SessionContext {
    pub fn new(ca_pem: &[u8]) -> Self {
        Self(ArcSwap::from_pointee(digest(ca_pem)))
    }

    pub fn set(&self, ca_pem: &[u8]) {
        self.0.store(Arc::new(digest(ca_pem)));
    }

    fn get(&self) -> [u8; CONTEXT_LEN] {
        **self.0.load()
    }
}

fn digest(bytes: &[u8]) -> [u8; CONTEXT_LEN] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; CONTEXT_LEN];
    out.copy_from_slice(d.as_ref());
    out
}

/// A ticketer whose tickets only open under the context they were sealed in.
#[derive(Debug)]
pub struct BoundTickets {
    pub inner: Arc<dyn ProducesTickets>,
    pub context: Arc<SessionContext>,
}

impl ProducesTickets for BoundTickets {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.inner.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut bound = Vec::with_capacity(CONTEXT_LEN + plain.len());
        bound.extend_from_slice(&self.context.get());
        bound.extend_from_slice(plain);
        self.inner.encrypt(&bound)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        let mut plain = self.inner.decrypt(ticket)?;
        if plain.len() < CONTEXT_LEN || plain[..CONTEXT_LEN] != self.context.get() {
            return None;
        }
        plain.drain(..CONTEXT_LEN);
        Some(plain)
    }
}

/// A session-ID cache whose entries are keyed under the current context.
#[derive(Debug)]
pub struct BoundCache {
    pub inner: Arc<dyn StoresServerSessions>,
    pub context: Arc<SessionContext>,
}

impl BoundCache {
    fn key(&self, id: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(CONTEXT_LEN + id.len());
        key.extend_from_slice(&self.context.get());
        key.extend_from_slice(id);
        key
    }
}

impl StoresServerSessions for BoundCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(self.key(&key), value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.get(&self.key(key))
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.take(&self.key(key))
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_open_only_under_their_context() {
        let context = Arc::new(SessionContext::new(b"ca one"));
        let tickets = BoundTickets {
            inner: rustls::crypto::aws_lc_rs::Ticketer::new().unwrap(),
            context: context.clone(),
        };
        let sealed = tickets.encrypt(b"session state").unwrap();
        assert_eq!(tickets.decrypt(&sealed).unwrap(), b"session state");
        context.set(b"ca two");
        assert_eq!(tickets.decrypt(&sealed), None);
        context.set(b"ca one");
        assert_eq!(tickets.decrypt(&sealed).unwrap(), b"session state");
    }

    #[test]
    fn cached_sessions_are_found_only_under_their_context() {
        let context = Arc::new(SessionContext::new(b"ca one"));
        let cache = BoundCache {
            inner: rustls::server::ServerSessionMemoryCache::new(16),
            context: context.clone(),
        };
        assert!(cache.put(b"id".to_vec(), b"state".to_vec()));
        assert_eq!(cache.get(b"id").unwrap(), b"state");
        context.set(b"ca two");
        assert_eq!(cache.get(b"id"), None);
        assert_eq!(cache.take(b"id"), None);
    }
}
