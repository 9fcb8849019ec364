//! Public ids of holds and bookings.
//!
//! An id carries its event and section, so that a confirm, release or cancel
//! is routed straight to the one actor that owns it without a global lookup,
//! and a random secret, so that ids are bearer tokens nobody can guess:
//! `demo.A.h2a.5f1c9e0b7d3a8642` is hold 0x2a of section `A` of event `demo`.

use std::fmt;

/// Longest event or section name, in bytes.
pub const NAME_LEN_MAX: usize = 32;

/// Event and section names: 1 to 32 of `[A-Za-z0-9_-]`. The dot is the id
/// separator, so it can never appear in a name.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_LEN_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The (event, section) ids of one section, allocated once and shared by
/// everything that names the section: its journal records, its email keys.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SectionName {
    pub event: Box<str>,
    pub section: Box<str>,
}

impl SectionName {
    pub fn new(event: &str, section: &str) -> SectionName {
        SectionName {
            event: event.into(),
            section: section.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Hold,
    Booking,
}

impl RefKind {
    fn tag(self) -> char {
        match self {
            RefKind::Hold => 'h',
            RefKind::Booking => 'b',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("malformed id: expected EVENT.SECTION.{0}SEQ.SECRET")]
    Malformed(char),
}

/// A parsed id: which event and section, which sequence number inside the
/// section, and the secret that proves the caller was given the id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ref {
    pub event: String,
    pub section: String,
    pub seq: u64,
    pub secret: u64,
}

impl Ref {
    fn parse(kind: RefKind, s: &str) -> Result<Ref, IdError> {
        let err = || IdError::Malformed(kind.tag());
        if s.len() > 2 * NAME_LEN_MAX + 40 {
            return Err(err());
        }
        let mut parts = s.split('.');
        let (Some(event), Some(section), Some(seq), Some(secret), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(err());
        };
        if !is_valid_name(event) || !is_valid_name(section) {
            return Err(err());
        }
        let seq = seq.strip_prefix(kind.tag()).ok_or_else(err)?;
        if seq.is_empty() || seq.len() > 16 || secret.len() != 16 {
            return Err(err());
        }
        // from_str_radix accepts a leading '+'; ids never have one.
        if !seq
            .bytes()
            .chain(secret.bytes())
            .all(|b| b.is_ascii_hexdigit())
        {
            return Err(err());
        }
        let seq = u64::from_str_radix(seq, 16).map_err(|_| err())?;
        let secret = u64::from_str_radix(secret, 16).map_err(|_| err())?;
        Ok(Ref {
            event: event.to_owned(),
            section: section.to_owned(),
            seq,
            secret,
        })
    }

    fn fmt(&self, kind: RefKind, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_id(f, kind, &self.event, &self.section, self.seq, self.secret)
    }
}

/// The one spelling of an id.
fn write_id(
    out: &mut impl fmt::Write,
    kind: RefKind,
    event: &str,
    section: &str,
    seq: u64,
    secret: u64,
) -> fmt::Result {
    write!(out, "{event}.{section}.{}{seq:x}.{secret:016x}", kind.tag())
}

macro_rules! ref_type {
    ($name:ident, $kind:expr) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(pub Ref);

        impl $name {
            pub fn new(event: &str, section: &str, seq: u64, secret: u64) -> Self {
                debug_assert!(is_valid_name(event) && is_valid_name(section));
                $name(Ref {
                    event: event.to_owned(),
                    section: section.to_owned(),
                    seq,
                    secret,
                })
            }
            /// The id's text, without building a ref first.
            pub fn id(event: &str, section: &str, seq: u64, secret: u64) -> String {
                let mut out = String::with_capacity(event.len() + section.len() + 36);
                write_id(&mut out, $kind, event, section, seq, secret)
                    .expect("writing to a String cannot fail");
                out
            }
            pub fn parse(s: &str) -> Result<Self, IdError> {
                Ref::parse($kind, s).map($name)
            }
            pub fn event(&self) -> &str {
                &self.0.event
            }
            pub fn section(&self) -> &str {
                &self.0.section
            }
            pub fn seq(&self) -> u64 {
                self.0.seq
            }
            pub fn secret(&self) -> u64 {
                self.0.secret
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt($kind, f)
            }
        }
    };
}

ref_type!(HoldRef, RefKind::Hold);
ref_type!(BookingRef, RefKind::Booking);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = HoldRef::new("demo", "A", 0x2a, 0x5f1c9e0b7d3a8642);
        assert_eq!(h.to_string(), "demo.A.h2a.5f1c9e0b7d3a8642");
        assert_eq!(
            HoldRef::id("demo", "A", 0x2a, 0x5f1c9e0b7d3a8642),
            h.to_string()
        );
        assert_eq!(HoldRef::parse(&h.to_string()), Ok(h));
        let b = BookingRef::new("ev-1", "FLOOR", 0, 1);
        assert_eq!(b.to_string(), "ev-1.FLOOR.b0.0000000000000001");
        assert_eq!(BookingRef::parse(&b.to_string()), Ok(b));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "demo.A.h2a",
            "demo.A.b2a.5f1c9e0b7d3a8642",
            "demo.A.h2a.5f1c9e0b7d3a864",
            "demo.A.h.5f1c9e0b7d3a8642",
            "demo.A.h+2a.5f1c9e0b7d3a8642",
            "demo.A.h2a.5f1c9e0b7d3a864z",
            "de mo.A.h2a.5f1c9e0b7d3a8642",
            "demo..h2a.5f1c9e0b7d3a8642",
            "demo.A.h2a.5f1c9e0b7d3a8642.x",
            "demo.A.h11111111111111111.5f1c9e0b7d3a8642",
        ] {
            assert_eq!(HoldRef::parse(bad), Err(IdError::Malformed('h')), "{bad:?}");
        }
    }

    #[test]
    fn names() {
        assert!(is_valid_name("demo_2026-11"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a.b"));
        assert!(!is_valid_name("a/b"));
        assert!(!is_valid_name(&"x".repeat(33)));
    }
}
