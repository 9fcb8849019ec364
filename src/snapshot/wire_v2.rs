//! `boxoffice.snapshot/2`, frozen: the body as it was before tickets
//! checked in and emails had languages. Read only, converted to the
//! current types: a `/2` section has no check-ins, and its bookings are
//! English. Never change these types: files in the field decode
//! with them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::wire::{
    AnswerSnap, Body, BookingSnap, ClaimSnap, EndedSnap, EventSnap, HoldSnap, LangSnap, MailSnap,
    SectionSnap,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyV2 {
    pub events: Vec<EventSnapV2>,
    pub idempotency: Vec<AnswerSnap>,
    pub outbox: Vec<MailSnap>,
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
    pub holds: Vec<HoldSnap>,
    pub bookings: Vec<BookingSnapV2>,
    pub ended: Vec<EndedSnap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingSnapV2 {
    pub seq: u64,
    pub secret: u64,
    pub hold_seq: u64,
    pub fan: Arc<str>,
    pub claim: ClaimSnap,
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
            claim: b.claim,
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
                            holds: s.holds,
                            bookings: s.bookings.into_iter().map(BookingSnap::from).collect(),
                            ended: s.ended,
                            check_ins: Vec::new(),
                        })
                        .collect(),
                })
                .collect(),
            idempotency: b.idempotency,
            outbox: b.outbox,
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
                        claim: ClaimSnap::Seats(vec![3, 4]),
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
