//! The seat allocator's pure core: venues, events, sections, holds, bookings.
//!
//! Architecture invariant: nothing in `domain` does I/O, reads a clock, draws
//! randomness or knows about actix, sled, tokio or serde. Time and secrets
//! come in as arguments, so every function here is deterministic and can be
//! unit-, property- and bench-tested at memory speed. The crate's manifest
//! keeps it so: it depends on hashing and collections only, and on no
//! other crate of the workspace (everything else depends on it). The
//! `boxoffice` crate re-exports it as `boxoffice::domain`.
//!
//! A section is changed in two steps, in the manner of event sourcing:
//! `Section::decide_*` validates a command against the current state and
//! returns a [`Change`] (or a domain error), and [`Section::apply`] applies a
//! `Change`. The live path runs both; journal replay runs only `apply`, so
//! what was decided once is reproduced exactly after a restart.

mod ids;
mod lang;
mod sale;
mod section;
mod venue;
mod waiting_room;

pub use ids::{is_valid_name, BookingRef, HoldRef, SectionName};
pub use lang::Lang;
pub use sale::{take_places, Admission, SalePhase, SalePhases};
pub use section::{
    booking_tag, ended_check, fan_tag, Addressee, Booking, BookingRead, BookingStatus,
    BookingTexts, Caller, CategoryCounts, Change, Claim, CommandError, FanId, Hold, HoldEnd,
    HoldView, Outcome, PlacesMoved, Seats, Section, SectionCounts, SectionParts, TicketBinding,
    EMAIL_LEN_MAX, FAN_ID_LEN_MAX, PAYMENT_REF_LEN_MAX,
};
pub use venue::{Category, EventDef, Limits, MapArea, Row, SeatMap, SectionKind, SectionLayout};
pub use waiting_room::{
    shuffle, AdmissionPart, FanKey, RoomApplyError, RoomChange, RoomError, RoomParts, RoomSettings,
    Standing, WaitingRoom,
};
