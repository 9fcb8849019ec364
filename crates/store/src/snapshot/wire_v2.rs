//! `boxoffice.snapshot/2`, frozen: the body as it was before tickets
//! checked in and emails had languages. Read only, converted to the
//! current types: a `/2` section has no check-ins, and its bookings are
//! English. Every type a `/2` body holds is copied here, none borrowed
//! from `wire.rs`, so that the current format may change freely. Never
//! change these types: files in the field decode with them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::wire::{
    AnswerSnap, Body, BookingSnap, ClaimSnap, EndSnap, EndedSnap, EventSnap, HoldSnap, LangSnap,
    MailKindSnap, MailSnap, SectionSnap,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyV2 {
    pub events: Vec<EventSnapV2>,
    pub idempotency: Vec<AnswerSnapV2>,
    pub outbox: Vec<MailSnapV2>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldSnapV2 {
    pub seq: u64,
    pub secret: u64,
    pub fan: Arc<str>,
    pub claim: ClaimSnapV2,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndSnapV2 {
    Released,
    Expired,
    Confirmed { booking: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndedSnapV2 {
    pub seq: u64,
    pub secret: u64,
    pub end: EndSnapV2,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerSnapV2 {
    pub key: String,
    pub fingerprint: [u8; 32],
    pub status: u16,
    pub body: Vec<u8>,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailSnapV2 {
    pub event: String,
    pub section: String,
    pub booking: u64,
    pub kind: MailKindSnapV2,
    pub attempts: u32,
    pub next_at_ms: u64,
    pub last_error: Option<String>,
    pub dead: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClaimSnapV2 {
    Seats(Vec<u32>),
    Quantity(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MailKindSnapV2 {
    Confirmation,
    Cancellation,
}

impl From<ClaimSnapV2> for ClaimSnap {
    fn from(c: ClaimSnapV2) -> ClaimSnap {
        match c {
            ClaimSnapV2::Seats(s) => ClaimSnap::Seats(s),
            ClaimSnapV2::Quantity(n) => ClaimSnap::Quantity(n),
        }
    }
}

impl From<HoldSnapV2> for HoldSnap {
    fn from(h: HoldSnapV2) -> HoldSnap {
        HoldSnap {
            seq: h.seq,
            secret: h.secret,
            fan: h.fan,
            claim: h.claim.into(),
            created_at_ms: h.created_at_ms,
            expires_at_ms: h.expires_at_ms,
        }
    }
}

impl From<EndedSnapV2> for EndedSnap {
    fn from(e: EndedSnapV2) -> EndedSnap {
        EndedSnap {
            seq: e.seq,
            secret: e.secret,
            end: match e.end {
                EndSnapV2::Released => EndSnap::Released,
                EndSnapV2::Expired => EndSnap::Expired,
                EndSnapV2::Confirmed { booking } => EndSnap::Confirmed { booking },
            },
        }
    }
}

impl From<AnswerSnapV2> for AnswerSnap {
    fn from(a: AnswerSnapV2) -> AnswerSnap {
        AnswerSnap {
            key: a.key,
            fingerprint: a.fingerprint,
            status: a.status,
            body: a.body,
            at_ms: a.at_ms,
        }
    }
}

impl From<MailSnapV2> for MailSnap {
    fn from(m: MailSnapV2) -> MailSnap {
        MailSnap {
            event: m.event,
            section: m.section,
            booking: m.booking,
            kind: match m.kind {
                MailKindSnapV2::Confirmation => MailKindSnap::Confirmation,
                MailKindSnapV2::Cancellation => MailKindSnap::Cancellation,
            },
            attempts: m.attempts,
            next_at_ms: m.next_at_ms,
            last_error: m.last_error,
            dead: m.dead,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSnapV2 {
    pub spec_json: String,
    pub created_at_ms: u64,
    pub sections: Vec<SectionSnapV2>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionSnapV2 {
    pub id: String,
    pub next_hold: u64,
    pub next_booking: u64,
    pub holds: Vec<HoldSnapV2>,
    pub bookings: Vec<BookingSnapV2>,
    pub ended: Vec<EndedSnapV2>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingSnapV2 {
    pub seq: u64,
    pub secret: u64,
    pub hold_seq: u64,
    pub fan: Arc<str>,
    pub claim: ClaimSnapV2,
    pub email: String,
    pub payment_ref: String,
    pub confirmed_at_ms: u64,
    pub cancelled_at_ms: Option<u64>,
}

impl From<BookingSnapV2> for BookingSnap {
    fn from(b: BookingSnapV2) -> BookingSnap {
        BookingSnap {
            seq: b.seq,
            secret: b.secret,
            hold_seq: b.hold_seq,
            fan: b.fan,
            claim: b.claim.into(),
            email: b.email,
            lang: LangSnap::En,
            payment_ref: b.payment_ref,
            confirmed_at_ms: b.confirmed_at_ms,
            cancelled_at_ms: b.cancelled_at_ms,
        }
    }
}

impl From<BodyV2> for Body {
    fn from(b: BodyV2) -> Body {
        Body {
            events: b
                .events
                .into_iter()
                .map(|e| EventSnap {
                    spec_json: e.spec_json,
                    created_at_ms: e.created_at_ms,
                    sections: e
                        .sections
                        .into_iter()
                        .map(|s| SectionSnap {
                            id: s.id,
                            next_hold: s.next_hold,
                            next_booking: s.next_booking,
                            holds: s.holds.into_iter().map(HoldSnap::from).collect(),
                            bookings: s.bookings.into_iter().map(BookingSnap::from).collect(),
                            ended: s.ended.into_iter().map(EndedSnap::from).collect(),
                            check_ins: Vec::new(),
                        })
                        .collect(),
                })
                .collect(),
            idempotency: b.idempotency.into_iter().map(AnswerSnap::from).collect(),
            outbox: b.outbox.into_iter().map(MailSnap::from).collect(),
            rooms: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `/2` body, as a `/2` server wrote it, reads as the same
    /// sections with no check-ins.
    #[test]
    fn a_v2_body_reads_with_no_check_ins() {
        let v2 = BodyV2 {
            events: vec![EventSnapV2 {
                spec_json: "{}".into(),
                created_at_ms: 1,
                sections: vec![SectionSnapV2 {
                    id: "A".into(),
                    next_hold: 1,
                    next_booking: 1,
                    holds: vec![],
                    bookings: vec![BookingSnapV2 {
                        seq: 0,
                        secret: 9,
                        hold_seq: 0,
                        fan: "fan-1".into(),
                        claim: ClaimSnapV2::Seats(vec![3, 4]),
                        email: "a@b.c".into(),
                        payment_ref: "p".into(),
                        confirmed_at_ms: 2,
                        cancelled_at_ms: None,
                    }],
                    ended: vec![],
                }],
            }],
            idempotency: vec![],
            outbox: vec![],
        };
        let bytes = postcard::to_stdvec(&v2).unwrap();
        let body = Body::from(postcard::from_bytes::<BodyV2>(&bytes).unwrap());
        let s = &body.events[0].sections[0];
        let v2_booking = v2.events[0].sections[0].bookings[0].clone();
        assert_eq!(s.bookings, vec![BookingSnap::from(v2_booking)]);
        assert_eq!(s.bookings[0].lang, LangSnap::En);
        assert!(s.check_ins.is_empty());
        // The current format does not read a `/2` body: the versions are
        // told apart by the header, never guessed.
        assert!(postcard::from_bytes::<Body>(&bytes).is_err());
    }
}
