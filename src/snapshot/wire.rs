//! The snapshot's serialized types (`boxoffice.snapshot/2`): a
//! compatibility boundary, kept apart from the domain and converted by
//! hand. Any change of shape is a new `FORMAT` (postcard is not
//! self-describing); the older formats' types stay, frozen, in
//! `wire_v1.rs`, and are converted to these on reading.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::{
    Booking, BookingStatus, Claim, Hold, HoldEnd, SectionKind, SectionLayout, SectionParts,
};
use crate::mail::MailKind;

/// The JSON header: what the file is, at which journal position, and
/// counts to check the body against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always `boxoffice.snapshot/1`.
    pub format: String,
    pub created_at: String,
    pub created_at_ms: u64,
    /// The journal batch the snapshot reaches up to (exclusive): replay
    /// resumes there.
    pub journal_position: u64,
    pub events: Vec<HeaderEvent>,
    pub idempotency_answers: u64,
    pub outbox_entries: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderEvent {
    pub id: String,
    pub sections: u64,
    pub capacity: u64,
    pub held: u64,
    pub sold: u64,
    pub holds: u64,
    pub bookings: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    pub events: Vec<EventSnap>,
    pub idempotency: Vec<AnswerSnap>,
    pub outbox: Vec<MailSnap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSnap {
    /// The `boxoffice.event/1` document the event was created from.
    pub spec_json: String,
    pub created_at_ms: u64,
    /// In layout order.
    pub sections: Vec<SectionSnap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionSnap {
    pub id: String,
    pub next_hold: u64,
    pub next_booking: u64,
    pub holds: Vec<HoldSnap>,
    pub bookings: Vec<BookingSnap>,
    pub ended: Vec<EndedSnap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldSnap {
    pub seq: u64,
    pub secret: u64,
    /// The fan it belongs to (`sub` of its token); shared with the hold,
    /// so capturing copies no fan.
    pub fan: Arc<str>,
    pub claim: ClaimSnap,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingSnap {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndSnap {
    Released,
    Expired,
    Confirmed { booking: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndedSnap {
    pub seq: u64,
    /// The hold's secret xor its fan's `domain::fan_tag`: the end of a hold
    /// answers only the fan who held it.
    pub secret: u64,
    pub end: EndSnap,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerSnap {
    pub key: String,
    pub fingerprint: [u8; 32],
    pub status: u16,
    pub body: Vec<u8>,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailSnap {
    pub event: String,
    pub section: String,
    pub booking: u64,
    pub kind: MailKindSnap,
    pub attempts: u32,
    pub next_at_ms: u64,
    pub last_error: Option<String>,
    pub dead: bool,
}

/// What a hold or booking claims. Encoded as the journal's claim record
/// is (postcard: variant index, then contents), but its own type: the two
/// formats change on their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClaimSnap {
    Seats(Vec<u32>),
    Quantity(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MailKindSnap {
    Confirmation,
    Cancellation,
}

impl From<MailKind> for MailKindSnap {
    fn from(k: MailKind) -> MailKindSnap {
        match k {
            MailKind::Confirmation => MailKindSnap::Confirmation,
            MailKind::Cancellation => MailKindSnap::Cancellation,
        }
    }
}

impl From<MailKindSnap> for MailKind {
    fn from(k: MailKindSnap) -> MailKind {
        match k {
            MailKindSnap::Confirmation => MailKind::Confirmation,
            MailKindSnap::Cancellation => MailKind::Cancellation,
        }
    }
}

fn claim_snap(c: &Claim) -> ClaimSnap {
    match c {
        Claim::Seats(s) => ClaimSnap::Seats(s.to_vec()),
        Claim::Quantity(n) => ClaimSnap::Quantity(*n),
    }
}

fn claim(c: &ClaimSnap) -> Claim {
    match c {
        ClaimSnap::Seats(s) => Claim::Seats(s.clone().into()),
        ClaimSnap::Quantity(n) => Claim::Quantity(*n),
    }
}

impl SectionSnap {
    pub fn from_parts(id: &str, p: &SectionParts) -> SectionSnap {
        SectionSnap {
            id: id.to_owned(),
            next_hold: p.next_hold,
            next_booking: p.next_booking,
            holds: p
                .holds
                .iter()
                .map(|h| HoldSnap {
                    seq: h.seq,
                    secret: h.secret,
                    fan: Arc::clone(&h.fan),
                    claim: claim_snap(&h.claim),
                    created_at_ms: h.created_at_ms,
                    expires_at_ms: h.expires_at_ms,
                })
                .collect(),
            bookings: p
                .bookings
                .iter()
                .map(|b| BookingSnap {
                    seq: b.seq,
                    secret: b.secret,
                    hold_seq: b.hold_seq,
                    fan: Arc::clone(&b.fan),
                    claim: claim_snap(&b.claim),
                    email: b.email.clone(),
                    payment_ref: b.payment_ref.clone(),
                    confirmed_at_ms: b.confirmed_at_ms,
                    cancelled_at_ms: match b.status {
                        BookingStatus::Confirmed => None,
                        BookingStatus::Cancelled { at_ms } => Some(at_ms),
                    },
                })
                .collect(),
            ended: p
                .ended
                .iter()
                .map(|&(seq, secret, end)| EndedSnap {
                    seq,
                    secret,
                    end: match end {
                        HoldEnd::Released => EndSnap::Released,
                        HoldEnd::Expired => EndSnap::Expired,
                        HoldEnd::Confirmed { booking } => EndSnap::Confirmed { booking },
                    },
                })
                .collect(),
        }
    }

    /// Back to domain parts; claims must fit the layout's kind (the
    /// section checks the rest).
    pub fn to_parts(&self, layout: &SectionLayout) -> Result<SectionParts, String> {
        let seated = matches!(layout.kind, SectionKind::Seated(_));
        let check = |c: &ClaimSnap| match (c, seated) {
            (ClaimSnap::Seats(_), true) | (ClaimSnap::Quantity(_), false) => Ok(claim(c)),
            _ => Err("a claim does not match the section's kind".to_owned()),
        };
        Ok(SectionParts {
            next_hold: self.next_hold,
            next_booking: self.next_booking,
            holds: self
                .holds
                .iter()
                .map(|h| {
                    Ok(Hold {
                        seq: h.seq,
                        secret: h.secret,
                        fan: Arc::clone(&h.fan),
                        claim: check(&h.claim)?,
                        created_at_ms: h.created_at_ms,
                        expires_at_ms: h.expires_at_ms,
                    })
                })
                .collect::<Result<_, String>>()?,
            bookings: self
                .bookings
                .iter()
                .map(|b| {
                    Ok(Booking {
                        seq: b.seq,
                        secret: b.secret,
                        hold_seq: b.hold_seq,
                        fan: Arc::clone(&b.fan),
                        claim: check(&b.claim)?,
                        email: b.email.clone(),
                        payment_ref: b.payment_ref.clone(),
                        confirmed_at_ms: b.confirmed_at_ms,
                        status: match b.cancelled_at_ms {
                            None => BookingStatus::Confirmed,
                            Some(at_ms) => BookingStatus::Cancelled { at_ms },
                        },
                    })
                })
                .collect::<Result<_, String>>()?,
            ended: self
                .ended
                .iter()
                .map(|e| {
                    (
                        e.seq,
                        e.secret,
                        match e.end {
                            EndSnap::Released => HoldEnd::Released,
                            EndSnap::Expired => HoldEnd::Expired,
                            EndSnap::Confirmed { booking } => HoldEnd::Confirmed { booking },
                        },
                    )
                })
                .collect(),
        })
    }
}
