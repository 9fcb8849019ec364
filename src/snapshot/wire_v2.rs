//! `boxoffice.snapshot/2`, frozen: the body as it was before tickets
//! checked in. Read only, converted to the current types: a `/2` section
//! has no check-ins. Never change these types: files in the field decode
//! with them.

use serde::{Deserialize, Serialize};

use super::wire::{
    AnswerSnap, Body, BookingSnap, EndedSnap, EventSnap, HoldSnap, MailSnap, SectionSnap,
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
    pub bookings: Vec<BookingSnap>,
    pub ended: Vec<EndedSnap>,
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
                            bookings: s.bookings,
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
    use crate::snapshot::wire::ClaimSnap;

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
                    bookings: vec![BookingSnap {
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
        assert_eq!(s.bookings, v2.events[0].sections[0].bookings);
        assert!(s.check_ins.is_empty());
        // The current format does not read a `/2` body: the versions are
        // told apart by the header, never guessed.
        assert!(postcard::from_bytes::<Body>(&bytes).is_err());
    }
}
