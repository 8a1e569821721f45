//! Session tickets sealed with keys from a file, so every fulcrum instance
//! behind one VIP (anycast, ECMP) resumes the sessions of the others: the
//! file's first key encrypts new tickets, every key decrypts, and rotating is
//! rewriting the file (new key first, the previous one kept second until the
//! tickets it sealed have expired). NGINX's `ssl_session_ticket_key` and
//! HAProxy's `tls-ticket-keys` work the same way.
//!
//! File format: one key per line, the base64 of 48 random bytes (a 16-byte
//! key name, then a 32-byte AES-256-GCM key); `#` comments and blank lines
//! are ignored. Make one with `openssl rand -base64 48`.
//! Ticket format: key name (16) || nonce (12) || AES-256-GCM(state) || tag
//! (16), the key name as associated data.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use rustls::server::ProducesTickets;

const NAME_LEN: usize = 16;
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// How long a client may keep using a ticket (a hint to it; the keys decide
/// what is really accepted). NGINX and HAProxy default to about this.
const LIFETIME_SECS: u32 = 12 * 3600;

struct TicketKey {
    name: [u8; NAME_LEN],
    key: LessSafeKey,
}

/// The keys of one file; swapped whole on reload.
pub struct KeyFileTicketer {
    keys: ArcSwap<Vec<TicketKey>>,
}

impl std::fmt::Debug for KeyFileTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFileTicketer")
            .field("keys", &self.keys.load().len())
            .finish()
    }
}

impl KeyFileTicketer {
    pub fn load(path: &Path) -> Result<Self, String> {
        Ok(Self {
            keys: ArcSwap::from_pointee(read_keys(path)?),
        })
    }

    /// Re-reads the file; on error the keys in use stay.
    pub fn reload(&self, path: &Path) -> Result<usize, String> {
        let keys = read_keys(path)?;
        let n = keys.len();
        self.keys.store(Arc::new(keys));
        Ok(n)
    }
}

/// Parses a key file; every problem names the file and line.
fn read_keys(path: &Path) -> Result<Vec<TicketKey>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("{}:{}", path.display(), i + 1);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(line)
            .map_err(|e| format!("{at}: not base64 ({e})"))?;
        if bytes.len() != NAME_LEN + KEY_LEN {
            return Err(format!(
                "{at}: a key is {} bytes (16-byte name + 32-byte AES-256 key), this one is {}; make one with `openssl rand -base64 48`",
                NAME_LEN + KEY_LEN,
                bytes.len()
            ));
        }
        let mut name = [0u8; NAME_LEN];
        name.copy_from_slice(&bytes[..NAME_LEN]);
        let key = UnboundKey::new(&AES_256_GCM, &bytes[NAME_LEN..])
            .map_err(|_| format!("{at}: unusable AES-256 key"))?;
        keys.push(TicketKey {
            name,
            key: LessSafeKey::new(key),
        });
    }
    if keys.is_empty() {
        return Err(format!(
            "{} holds no key; add a line made with `openssl rand -base64 48`",
            path.display()
        ));
    }
    Ok(keys)
}

impl ProducesTickets for KeyFileTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        LIFETIME_SECS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let keys = self.keys.load();
        let current = keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let mut sealed = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        sealed.extend_from_slice(&current.name);
        sealed.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&current.name),
                &mut body,
            )
            .ok()?;
        sealed.extend_from_slice(&body);
        Some(sealed)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() < NAME_LEN + NONCE_LEN + TAG_LEN {
            return None;
        }
        let (name, rest) = ticket.split_at(NAME_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let keys = self.keys.load();
        // A ticket from an unknown (retired) key is not an error: the client
        // simply gets a full handshake.
        let key = keys.iter().find(|k| k.name == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = sealed.to_vec();
        let plain_len = key
            .key
            .open_in_place(nonce, Aad::from(name), &mut body)
            .ok()?
            .len();
        body.truncate(plain_len);
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_line(seed: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([seed; 48])
    }

    fn file(lines: &[String]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "fulcrum-ticket-keys-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::write(&path, lines.join("\n")).unwrap();
        path
    }

    #[test]
    fn first_key_seals_every_key_opens_and_rotation_retires() {
        let old = file(&[key_line(1)]);
        let a = KeyFileTicketer::load(&old).unwrap();
        let ticket = a.encrypt(b"session state").unwrap();
        assert_eq!(a.decrypt(&ticket).unwrap(), b"session state");
        // Another instance with the same file opens it.
        let b = KeyFileTicketer::load(&old).unwrap();
        assert_eq!(b.decrypt(&ticket).unwrap(), b"session state");
        // Rotation: a new first key; the old one still opens old tickets.
        let rotated = file(&["# rotated".into(), key_line(2), String::new(), key_line(1)]);
        assert_eq!(b.reload(&rotated), Ok(2));
        assert_eq!(b.decrypt(&ticket).unwrap(), b"session state");
        let new_ticket = b.encrypt(b"new").unwrap();
        assert_eq!(&new_ticket[..16], &[2u8; 16]);
        assert!(
            a.decrypt(&new_ticket).is_none(),
            "a does not have key 2 yet"
        );
        // Retired: the old key is gone.
        let retired = file(&[key_line(2)]);
        b.reload(&retired).unwrap();
        assert!(b.decrypt(&ticket).is_none());
        // Tampering is detected.
        let mut bad = new_ticket.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(b.decrypt(&bad).is_none());
        assert!(b.decrypt(&new_ticket[..20]).is_none());
        for p in [old, rotated, retired] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn bad_files_are_refused_with_file_and_line() {
        let short = file(&["# c".into(), "c2hvcnQ=".into()]);
        let err = KeyFileTicketer::load(&short).unwrap_err();
        assert!(err.contains(":2: a key is 48 bytes"), "{err}");
        let empty = file(&["# nothing".into()]);
        assert!(
            KeyFileTicketer::load(&empty)
                .unwrap_err()
                .contains("holds no key")
        );
        let garbage = file(&["not base64!".into()]);
        assert!(
            KeyFileTicketer::load(&garbage)
                .unwrap_err()
                .contains(":1: not base64")
        );
        // A failed reload keeps the keys in use.
        let good = file(&[key_line(3)]);
        let t = KeyFileTicketer::load(&good).unwrap();
        let ticket = t.encrypt(b"x").unwrap();
        assert!(t.reload(&garbage).is_err());
        assert_eq!(t.decrypt(&ticket).unwrap(), b"x");
        for p in [short, empty, garbage, good] {
            let _ = std::fs::remove_file(p);
        }
    }
}
