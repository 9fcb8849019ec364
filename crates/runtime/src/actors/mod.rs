//! Section actors and the registry that routes requests to them.
//!
//! Architecture invariants:
//! - one actor per (event, section) owns that section's state; nothing else
//!   reads or writes it (readers see the views it publishes once durable,
//!   [`SeatBoard`]);
//! - an actor answers a change only after the journal says it is durable;
//! - what is in flight is bounded, per section and for the process, by
//!   limits that follow latency ([`Limiter`]): past them a request is
//!   answered `Overloaded` at once instead of queueing.

mod fan_bookings;
mod fan_holds;
mod fan_lists;
mod handoff;
mod ledger;
mod limit;
mod payments;
mod registry;
mod room;
mod section;
mod views;

pub use fan_bookings::FanBookings;
pub use fan_holds::FanHolds;
pub use fan_lists::FanRef;
pub use ledger::FanLedger;
pub use limit::{LimitSettings, Limiter};
pub use payments::PaymentRefs;
pub use registry::{
    EventEntry, Registry, RegistryError, RoomSwitchError, SectionHandle, ADMISSION_REFUSALS,
};
pub use room::{FanStanding, RoomFailure, RoomHandle, RoomStats, RoomView, WAIT_BUCKETS_S};
pub use section::{
    ChangeRequest, Command, GetBooking, GetBookings, GetHold, GetHolds, Payment, SectionActor,
    SectionError, SectionSettings, SectionStats, WhatToHold, CHANGE_KINDS, EXPIRIES_PER_STEP_MAX,
};
pub use views::{
    Publication, Publisher, SeatBoard, SeatsPublished, Start, Subscription, FREE, HELD,
    ROUND_INTERVAL, SOLD, STREAM_BUFFER,
};
