//! Section actors and the registry that routes requests to them.
//!
//! Architecture invariants:
//! - one actor per (event, section) owns that section's state; nothing else
//!   reads or writes it (the HTTP layer only reads published counters);
//! - an actor answers a change only after the journal says it is durable;
//! - every actor's inbox is bounded (`mailbox_capacity`): a saturated
//!   section answers `Overloaded` at once instead of queueing.

mod ledger;
mod payments;
mod registry;
mod section;

pub use ledger::FanLedger;
pub use payments::PaymentRefs;
pub use registry::{EventEntry, Registry, RegistryError, SectionHandle, ADMISSION_REFUSALS};
pub use section::{
    ChangeRequest, Command, GetBooking, GetHold, GetSeats, Payment, SeatsView, SectionActor,
    SectionError, SectionSettings, SectionStats, WhatToHold, CHANGE_KINDS, EXPIRIES_PER_STEP_MAX,
};
