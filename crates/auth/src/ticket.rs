//! Signed ticket tokens: what the QR code in a confirmation email carries
//! and what a door scanner verifies offline.
//!
//! A token is `BXT1.<payload>.<mac>`: the payload is base64url (no padding)
//! of a small JSON object naming the booking and its seats, the mac is
//! base64url of HMAC-SHA256 over `BXT1.<payload>` with the server's ticket
//! key. Anyone with the key can check a ticket without asking the server;
//! nobody without it can make one. (A scanner that must also refuse
//! cancelled bookings asks the server for the booking's status.)
//!
//! A ticket names its booking twice over: by number (`b`), which a fresh
//! start or a restore of an older snapshot hands out again, and by the
//! booking's tag (`k`, from its secret) and the data directory's lineage
//! (`d`), which it does not. The door checks all three, so a ticket of a
//! booking that was lost admits nobody into the booking that now has its
//! number. Tickets mailed before tickets carried `k` and `d` still verify,
//! and admit only bookings confirmed before the lineage began.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::signed::{MacKey, SignedError};
use crate::data_dir::Lineage;
use crate::domain::{booking_tag, TicketBinding};

const PREFIX: &str = "BXT1";
pub use super::signed::KEY_LEN;
/// Longest token `verify` looks at; real ones are a few hundred bytes.
pub const TOKEN_LEN_MAX: usize = 4096;

/// What a ticket says. A ticket is one place of a booking: its number
/// `n` (1..=places) and, in a seated section, its seat. (Emails before
/// tickets were per place carry one ticket for the whole booking: its
/// seat ids, or a quantity for a standing one, and no `n`; they still
/// verify.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ticket {
    /// Event id.
    pub e: String,
    /// Section id.
    pub s: String,
    /// Booking number within the section (the public part of its id).
    pub b: u64,
    /// The place within the booking, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// The place's seat id, in a seated section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seat: Option<String>,
    /// A whole-booking ticket's seats.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seats: Vec<String>,
    /// A whole-booking ticket's standing places.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qty: Option<u32>,
    /// The booking's tag (`domain::booking_tag`), 16 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<String>,
    /// The data directory's lineage (`data_dir::Lineage`), 16 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
}

impl Ticket {
    /// One ticket per place of booking `booking` (whose secret is
    /// `secret`) of `event`/`section`, in the data directory of lineage
    /// `lineage`: a seat each (`seats`), or places 1..=`quantity` when
    /// standing.
    pub fn per_place(
        event: &str,
        section: &str,
        (booking, secret): (u64, u64),
        lineage: Lineage,
        seats: &[String],
        quantity: u32,
    ) -> Vec<Ticket> {
        let k = format!("{:016x}", booking_tag(secret));
        let d = lineage.id_hex();
        let place = |n: u32, seat: Option<String>| Ticket {
            e: event.to_owned(),
            s: section.to_owned(),
            b: booking,
            n: Some(n),
            seat,
            seats: Vec::new(),
            qty: None,
            k: Some(k.clone()),
            d: Some(d.clone()),
        };
        if seats.is_empty() {
            (1..=quantity).map(|n| place(n, None)).collect()
        } else {
            (1..)
                .zip(seats)
                .map(|(n, seat)| place(n, Some(seat.clone())))
                .collect()
        }
    }

    /// What ties this ticket to its booking, in the data directory of
    /// lineage `here`; `None` when it is of another lineage, or its tag
    /// does not parse: it admits nothing here.
    pub fn binding(&self, here: Lineage) -> Option<TicketBinding> {
        if self.d.as_deref().is_some_and(|d| d != here.id_hex()) {
            return None;
        }
        match &self.k {
            Some(k) if k.len() == 16 => u64::from_str_radix(k, 16).ok().map(TicketBinding::Booking),
            Some(_) => None,
            None => Some(TicketBinding::Unbound {
                confirmed_before_ms: here.since_ms,
            }),
        }
    }

    /// What a person reads for the place: its seat id, or its number
    /// in the section (`FLOOR, place 2`).
    pub fn place(&self) -> String {
        match (&self.seat, self.n) {
            (Some(seat), _) => seat.clone(),
            (None, Some(n)) => format!("{}, place {n}", self.s),
            (None, None) => format!("{}, whole booking", self.s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("not a boxoffice ticket (expected BXT1.<payload>.<mac>)")]
    Malformed,
    #[error("the ticket's signature does not match: forged, altered or from another server")]
    BadSignature,
    #[error("the ticket's content does not decode: {0}")]
    Payload(String),
}

/// The file in a data directory that holds its ticket key (64 hex digits).
pub const TICKET_KEY_FILE: &str = "ticket.key";

#[derive(Clone, Debug)]
pub struct TicketKey(MacKey);

impl TicketKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> TicketKey {
        TicketKey(MacKey::from_bytes(bytes))
    }

    /// Parses 64 hex digits.
    pub fn from_hex(hex: &str) -> Result<TicketKey, String> {
        let bytes = crate::data_dir::from_hex(hex.trim(), KEY_LEN).map_err(|e| e.to_string())?;
        Ok(TicketKey::from_bytes(
            bytes.try_into().expect("KEY_LEN bytes"),
        ))
    }

    /// The key in `dir/ticket.key`, made from fresh randomness (and synced)
    /// on first use, so tickets issued before a restart still verify.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<TicketKey> {
        let bytes = crate::data_dir::load_or_create_secret(dir, TICKET_KEY_FILE, KEY_LEN)?;
        Ok(TicketKey::from_bytes(
            bytes.try_into().expect("KEY_LEN bytes"),
        ))
    }

    pub fn sign(&self, ticket: &Ticket) -> String {
        self.0.sign(PREFIX, ticket)
    }

    /// Checks the signature in constant time, then decodes the ticket.
    pub fn verify(&self, token: &str) -> Result<Ticket, TicketError> {
        self.0
            .verify(PREFIX, token, TOKEN_LEN_MAX)
            .map_err(|e| match e {
                SignedError::Malformed => TicketError::Malformed,
                SignedError::BadSignature => TicketError::BadSignature,
                SignedError::Payload(m) => TicketError::Payload(m),
            })
    }
}

/// What makes and checks the tickets of this data directory: the key
/// that signs them and the lineage they name.
#[derive(Clone, Debug)]
pub struct Tickets {
    pub key: TicketKey,
    pub lineage: Lineage,
}

impl Tickets {
    /// The tickets of one booking (number and secret), a place each.
    pub fn of_booking(
        &self,
        event: &str,
        section: &str,
        booking: (u64, u64),
        seats: &[String],
        quantity: u32,
    ) -> Vec<Ticket> {
        Ticket::per_place(event, section, booking, self.lineage, seats, quantity)
    }

    pub fn sign(&self, ticket: &Ticket) -> String {
        self.key.sign(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        Ticket {
            e: "demo".into(),
            s: "A".into(),
            b: 42,
            n: None,
            seat: None,
            seats: vec!["A/1/1".into(), "A/1/2".into()],
            qty: None,
            k: None,
            d: None,
        }
    }

    const LINEAGE: Lineage = Lineage {
        id: 0x0123_4567_89ab_cdef,
        since_ms: 1_000,
    };

    /// A place each, numbered from 1, naming its seat when seated; each
    /// signs to a token of its own.
    #[test]
    fn one_ticket_per_place() {
        let seats = vec!["A/1/1".to_owned(), "A/1/2".to_owned()];
        let seated = Ticket::per_place("demo", "A", (7, 77), LINEAGE, &seats, 2);
        assert_eq!(seated.len(), 2);
        assert_eq!(
            (seated[1].n, seated[1].seat.as_deref()),
            (Some(2), Some("A/1/2"))
        );
        assert_eq!(seated[0].place(), "A/1/1");
        let standing = Ticket::per_place("demo", "FLOOR", (8, 88), LINEAGE, &[], 3);
        assert_eq!(standing.len(), 3);
        assert_eq!(standing[2].place(), "FLOOR, place 3");
        let key = TicketKey::from_bytes([7; KEY_LEN]);
        let tokens: Vec<String> = standing.iter().map(|t| key.sign(t)).collect();
        assert_ne!(tokens[0], tokens[1]);
        assert_eq!(key.verify(&tokens[2]), Ok(standing[2].clone()));
    }

    /// A ticket names its booking's tag and its lineage: in its own
    /// lineage it binds to the tag; in another it binds to nothing; one
    /// from before either binds to bookings confirmed before the lineage
    /// began.
    #[test]
    fn a_ticket_binds_to_its_booking_in_its_lineage_only() {
        let t = &Ticket::per_place("demo", "A", (7, 77), LINEAGE, &["A/1/1".into()], 1)[0];
        assert_eq!(t.d.as_deref(), Some("0123456789abcdef"));
        assert_eq!(
            t.binding(LINEAGE),
            Some(TicketBinding::Booking(booking_tag(77)))
        );
        let fresh = Lineage {
            id: 0xfeed,
            since_ms: 1_000,
        };
        assert_eq!(t.binding(fresh), None);
        assert_eq!(
            ticket().binding(LINEAGE),
            Some(TicketBinding::Unbound {
                confirmed_before_ms: 1_000
            })
        );
        let mut bad = t.clone();
        bad.k = Some("not hex at all!!".into());
        assert_eq!(bad.binding(LINEAGE), None);
        // Signed, every part of it is covered by the signature.
        let key = TicketKey::from_bytes([7; KEY_LEN]);
        assert_eq!(key.verify(&key.sign(t)).as_ref(), Ok(t));
    }

    #[test]
    fn a_signed_ticket_verifies_with_its_key_only() {
        let key = TicketKey::from_bytes([7; KEY_LEN]);
        let token = key.sign(&ticket());
        assert!(token.starts_with("BXT1."));
        assert_eq!(key.verify(&token), Ok(ticket()));
        let other = TicketKey::from_bytes([8; KEY_LEN]);
        assert_eq!(other.verify(&token), Err(TicketError::BadSignature));
    }

    #[test]
    fn every_altered_character_is_refused() {
        let key = TicketKey::from_bytes([7; KEY_LEN]);
        let token = key.sign(&ticket());
        for i in 0..token.len() {
            let mut t = token.clone().into_bytes();
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(t).unwrap();
            assert!(key.verify(&t).is_err(), "altered at {i}: {t}");
        }
        assert_eq!(key.verify("hello"), Err(TicketError::Malformed));
        assert_eq!(key.verify(""), Err(TicketError::Malformed));
    }

    #[test]
    fn keys_parse_from_hex_and_persist() {
        assert!(TicketKey::from_hex("00").is_err());
        assert!(TicketKey::from_hex(&"zz".repeat(32)).is_err());
        // Two keys are the same when they sign alike.
        let t = ticket();
        let k = TicketKey::from_hex(&"ab".repeat(32)).unwrap();
        assert_eq!(k.sign(&t), TicketKey::from_bytes([0xab; 32]).sign(&t));
        let dir = tempfile::tempdir().unwrap();
        let a = TicketKey::load_or_create(dir.path()).unwrap();
        let b = TicketKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.sign(&t), b.sign(&t));
        assert_ne!(a.sign(&t), k.sign(&t));
    }
}
