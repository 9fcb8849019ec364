//! `boxoffice.snapshot/1`, frozen: the body as it was before holds and
//! bookings named their fan. Read only, converted to the current types
//! (through `/2`'s, which it differs from only in its sections):
//! every hold and booking of a v1 file belongs to the anonymous fan `""`
//! (the fan the journal gives holds made before fans were known), and the
//! ended holds' secrets are masked with its tag, as v2 keeps them.
//! Never change these types: files in the field decode with them.

use serde::{Deserialize, Serialize};

use super::wire::Body;
use super::wire_v2::{
    AnswerSnapV2 as AnswerSnap, BodyV2, BookingSnapV2, ClaimSnapV2 as ClaimSnap,
    EndedSnapV2 as EndedSnap, EventSnapV2, HoldSnapV2 as HoldSnap, MailSnapV2 as MailSnap,
    SectionSnapV2,
};
use crate::domain::fan_tag;

/// The fan of everything a v1 snapshot holds.
const ANONYMOUS: &str = "";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyV1 {
    pub events: Vec<EventSnapV1>,
    pub idempotency: Vec<AnswerSnap>,
    pub outbox: Vec<MailSnap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSnapV1 {
    pub spec_json: String,
    pub created_at_ms: u64,
    pub sections: Vec<SectionSnapV1>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionSnapV1 {
    pub id: String,
    pub next_hold: u64,
    pub next_booking: u64,
    pub holds: Vec<HoldSnapV1>,
    pub bookings: Vec<BookingSnapV1>,
    pub ended: Vec<EndedSnap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldSnapV1 {
    pub seq: u64,
    pub secret: u64,
    pub claim: ClaimSnap,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingSnapV1 {
    pub seq: u64,
    pub secret: u64,
    pub hold_seq: u64,
    pub claim: ClaimSnap,
    pub email: String,
    pub payment_ref: String,
    pub confirmed_at_ms: u64,
    pub cancelled_at_ms: Option<u64>,
}

impl From<BodyV1> for Body {
    fn from(b: BodyV1) -> Body {
        Body::from(BodyV2::from(b))
    }
}

impl From<BodyV1> for BodyV2 {
    fn from(b: BodyV1) -> BodyV2 {
        let tag = fan_tag(ANONYMOUS);
        BodyV2 {
            events: b
                .events
                .into_iter()
                .map(|e| EventSnapV2 {
                    spec_json: e.spec_json,
                    created_at_ms: e.created_at_ms,
                    sections: e
                        .sections
                        .into_iter()
                        .map(|s| SectionSnapV2 {
                            id: s.id,
                            next_hold: s.next_hold,
                            next_booking: s.next_booking,
                            holds: s
                                .holds
                                .into_iter()
                                .map(|h| HoldSnap {
                                    seq: h.seq,
                                    secret: h.secret,
                                    fan: ANONYMOUS.into(),
                                    claim: h.claim,
                                    created_at_ms: h.created_at_ms,
                                    expires_at_ms: h.expires_at_ms,
                                })
                                .collect(),
                            bookings: s
                                .bookings
                                .into_iter()
                                .map(|b| BookingSnapV2 {
                                    seq: b.seq,
                                    secret: b.secret,
                                    hold_seq: b.hold_seq,
                                    fan: ANONYMOUS.into(),
                                    claim: b.claim,
                                    email: b.email,
                                    payment_ref: b.payment_ref,
                                    confirmed_at_ms: b.confirmed_at_ms,
                                    cancelled_at_ms: b.cancelled_at_ms,
                                })
                                .collect(),
                            ended: s
                                .ended
                                .into_iter()
                                .map(|e| EndedSnap {
                                    secret: e.secret ^ tag,
                                    ..e
                                })
                                .collect(),
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
    use crate::domain::{CommandError, Limits, Section, SectionKind, SectionLayout};
    use crate::snapshot::wire_v2::EndSnapV2 as EndSnap;
    use std::sync::Arc;

    /// A v1 section becomes the anonymous fan's: its live hold, its
    /// booking and its ended hold all answer that fan (the ended one
    /// through the masked secret), and no one else.
    #[test]
    fn a_v1_section_reads_as_the_anonymous_fans() {
        let v1 = BodyV1 {
            events: vec![EventSnapV1 {
                spec_json: String::new(),
                created_at_ms: 0,
                sections: vec![SectionSnapV1 {
                    id: "F".into(),
                    next_hold: 3,
                    next_booking: 1,
                    holds: vec![HoldSnapV1 {
                        seq: 2,
                        secret: 22,
                        claim: ClaimSnap::Quantity(1),
                        created_at_ms: 0,
                        expires_at_ms: 60_000,
                    }],
                    bookings: vec![BookingSnapV1 {
                        seq: 0,
                        secret: 100,
                        hold_seq: 0,
                        claim: ClaimSnap::Quantity(2),
                        email: "a@b.c".into(),
                        payment_ref: "p".into(),
                        confirmed_at_ms: 0,
                        cancelled_at_ms: None,
                    }],
                    ended: vec![
                        EndedSnap {
                            seq: 0,
                            secret: 10,
                            end: EndSnap::Confirmed { booking: 0 },
                        },
                        EndedSnap {
                            seq: 1,
                            secret: 11,
                            end: EndSnap::Released,
                        },
                    ],
                }],
            }],
            idempotency: vec![],
            outbox: vec![],
        };
        let bytes = postcard::to_stdvec(&v1).unwrap();
        let back: BodyV1 = postcard::from_bytes(&bytes).unwrap();
        let mut body = Body::from(back);
        let layout = Arc::new(SectionLayout {
            id: "F".into(),
            name: "Floor".into(),
            kind: SectionKind::Standing {
                capacity: 10,
                category: 0,
                area: None,
            },
            category_count: 1,
        });
        let limits = Limits {
            seats_per_hold_max: 4,
            hold_ttl_ms: 60_000,
            tickets_per_fan_max: None,
        };
        let parts = body.events[0].sections[0].take_parts(&layout).unwrap();
        let s = Section::from_parts(layout, limits, parts).unwrap();
        assert_eq!(&*s.find_hold(2, 22, ANONYMOUS).unwrap().fan, ANONYMOUS);
        assert_eq!(
            s.find_hold(1, 11, ANONYMOUS),
            Err(CommandError::HoldReleased)
        );
        assert_eq!(s.find_hold(1, 11, "fan-1"), Err(CommandError::HoldNotFound));
        assert_eq!(s.find_hold(2, 22, "fan-1"), Err(CommandError::HoldNotFound));
        assert_eq!(&*s.booking(0).unwrap().fan, ANONYMOUS);
    }
}
