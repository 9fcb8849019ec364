//! The REST API's wire format, with no HTTP framework in it: request and
//! answer types ([`dto`]) and the answer of every change ([`answer`],
//! [`event_created`]).
//!
//! Architecture invariant: the status and body of a change's answer are
//! decided here and nowhere else. The handlers answer with them, and
//! recovery renders the answers it remembers for `Idempotency-Key`
//! retries with them, so a retry after a restart gets the very bytes the
//! first request got.

pub mod dto;
pub mod feed;

use bytes::Bytes;

use crate::domain::{CategoryCounts, EventDef, Outcome, SalePhases, SectionLayout};

/// A change's answer: status and JSON body (empty for `204`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// The answer to the change that had `outcome` in a section of `def`.
pub fn answer(def: &EventDef, layout: &SectionLayout, outcome: &Outcome) -> Answer {
    match outcome {
        Outcome::Held(h) => Answer {
            status: 201,
            body: dto::to_json(&dto::hold_dto(def, layout, h)),
        },
        Outcome::Released => Answer {
            status: 204,
            body: Bytes::new(),
        },
        // A confirmation creates a booking; a cancellation changes one.
        Outcome::Confirmed(b) => Answer {
            status: 201,
            body: dto::to_json(&dto::booking_dto(def, layout, b)),
        },
        Outcome::Cancelled(b) => Answer {
            status: 200,
            body: dto::to_json(&dto::booking_dto(def, layout, b)),
        },
        Outcome::CheckedIn {
            booking,
            place,
            at_ms,
        } => Answer {
            status: 200,
            body: dto::to_json(&dto::check_in_dto(def, layout, booking, *place, *at_ms)),
        },
    }
}

/// The API's rendering of the answers a replay remembers (recovery asks,
/// so that it knows nothing of the wire types).
#[derive(Debug)]
pub struct ApiAnswers;

impl crate::recovery::Answers for ApiAnswers {
    fn change(&self, def: &EventDef, layout: &SectionLayout, outcome: &Outcome) -> (u16, Bytes) {
        let a = answer(def, layout, outcome);
        (a.status, a.body)
    }

    fn event_created(
        &self,
        def: &EventDef,
        phases: &SalePhases,
        per_section: &[Vec<CategoryCounts>],
    ) -> (u16, Bytes) {
        let a = event_created(def, phases, per_section);
        (a.status, a.body)
    }
}

/// The answer to creating `def`, whose sections' counts (per category, in
/// layout order) are `per_section`: all free, since nothing can change
/// between an event's creation and its answer.
pub fn event_created(
    def: &EventDef,
    phases: &SalePhases,
    per_section: &[Vec<CategoryCounts>],
) -> Answer {
    Answer {
        status: 201,
        body: dto::to_json(&dto::event_detail(def, phases, per_section)),
    }
}
