//! Admission tokens: what a fan admitted by an event's waiting room sends
//! with each hold (`Boxoffice-Admission`).
//!
//! A token is `BXA1.<payload>.<mac>` (`signed::MacKey`): the payload
//! names the event, the fan, its queue number and when the admission
//! ends; the key is the server's admission key (`admission.key` in the
//! data directory, so tokens outlive a restart).
//! The token proves what the room said when it was issued; the room
//! itself is asked too (an admission that ended in a booking ends early),
//! and reissues the token whenever the fan asks where it stands.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::signed::{MacKey, SignedError, KEY_LEN};

const PREFIX: &str = "BXA1";
/// Longest token `verify` looks at; real ones are under 300 bytes.
pub const TOKEN_LEN_MAX: usize = 1024;
/// The file in a data directory that holds the admission key.
pub const ADMISSION_KEY_FILE: &str = "admission.key";

/// What an admission token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admission {
    /// Event id.
    pub e: String,
    /// The fan (its token's `sub`).
    pub f: String,
    /// Its queue number.
    pub n: u64,
    /// When the admission ends, in milliseconds since the epoch.
    pub x: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("not an admission token")]
    Malformed,
    #[error("the admission token's signature does not match")]
    BadSignature,
}

#[derive(Clone, Debug)]
pub struct AdmissionKey(MacKey);

impl AdmissionKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> AdmissionKey {
        AdmissionKey(MacKey::from_bytes(bytes))
    }

    /// The key in `dir/admission.key`, made from fresh randomness (and
    /// synced) on first use.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<AdmissionKey> {
        let bytes = crate::data_dir::load_or_create_secret(dir, ADMISSION_KEY_FILE, KEY_LEN)?;
        Ok(AdmissionKey::from_bytes(
            bytes.try_into().expect("KEY_LEN bytes"),
        ))
    }

    pub fn sign(&self, admission: &Admission) -> String {
        self.0.sign(PREFIX, admission)
    }

    /// Checks the signature in constant time, then decodes the payload.
    /// Whether it is this fan's, for this event and still valid is the
    /// caller's to check.
    pub fn verify(&self, token: &str) -> Result<Admission, AdmissionError> {
        self.0
            .verify(PREFIX, token, TOKEN_LEN_MAX)
            .map_err(|e| match e {
                SignedError::BadSignature => AdmissionError::BadSignature,
                SignedError::Malformed | SignedError::Payload(_) => AdmissionError::Malformed,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission() -> Admission {
        Admission {
            e: "demo".into(),
            f: "fan-1".into(),
            n: 41,
            x: 1_800_000_000_000,
        }
    }

    #[test]
    fn a_signed_admission_verifies_with_its_key_only() {
        let key = AdmissionKey::from_bytes([7; KEY_LEN]);
        let token = key.sign(&admission());
        assert!(token.starts_with("BXA1."));
        assert_eq!(key.verify(&token), Ok(admission()));
        let other = AdmissionKey::from_bytes([8; KEY_LEN]);
        assert_eq!(other.verify(&token), Err(AdmissionError::BadSignature));
    }

    #[test]
    fn every_altered_character_is_refused() {
        let key = AdmissionKey::from_bytes([7; KEY_LEN]);
        let token = key.sign(&admission());
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).unwrap();
            if altered != token {
                assert!(key.verify(&altered).is_err(), "altered at {i}: {altered}");
            }
        }
        assert_eq!(key.verify(""), Err(AdmissionError::Malformed));
        assert_eq!(
            key.verify(&"A".repeat(TOKEN_LEN_MAX + 1)),
            Err(AdmissionError::Malformed)
        );
    }
}
