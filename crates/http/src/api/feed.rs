//! The change feed's wire format: one journal record of an event as the
//! JSON other services read (`GET /v1/events/{event}/changes`).
//!
//! Each change names what happened (`kind`), where, to whom and when. Hold
//! and booking ids go out as their numbers in the section, never with
//! their secrets: the feed is read by services, not by the fans who may
//! act on a hold. Email outcomes and event documents are not changes of
//! a sale and are left out.

use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::rfc3339_ms;
use crate::domain::{EventDef, SectionKind};
use crate::journal::{ChangeRecord, ClaimRecord, Record, RoomChangeRecord};

/// One durable change of an event, as the change feed sends it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedEntryDto {
    /// Its journal position, `<batch>.<record>`: the stream's `id`.
    pub position: String,
    pub event: String,
    #[serde(flatten)]
    pub change: FeedChangeDto,
}

/// What changed. Holds and bookings are numbered per section (`hold`,
/// `booking`); times are RFC 3339 in UTC.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FeedChangeDto {
    /// The event was created.
    EventCreated { at: String },
    /// A fan held seats (`seats`, by id) or standing places.
    Hold {
        section: String,
        hold: u64,
        fan: String,
        seats: Option<Vec<String>>,
        quantity: u32,
        at: String,
        expires_at: String,
    },
    /// Its fan released a hold.
    Release {
        section: String,
        hold: u64,
        at: String,
    },
    /// A hold expired unconfirmed.
    Expiry {
        section: String,
        hold: u64,
        at: String,
    },
    /// A hold was paid and became booking `booking`.
    Confirm {
        section: String,
        hold: u64,
        booking: u64,
        email: String,
        payment_ref: String,
        at: String,
    },
    /// A booking was cancelled (by its fan or support).
    Cancel {
        section: String,
        booking: u64,
        at: String,
    },
    /// A door admitted place `place` (from 1) of a booking.
    CheckIn {
        section: String,
        booking: u64,
        place: u32,
        at: String,
    },
    /// An operator moved the sale phases: the new `sale_phases` list.
    SalePhases {
        #[schema(value_type = Object)]
        sale_phases: serde_json::Value,
        at: String,
    },
    /// An operator switched the waiting room on or changed it
    /// (`enabled: true`), or switched it off.
    WaitingRoom {
        enabled: bool,
        rate_per_sec: Option<u32>,
        active_max: Option<u32>,
        paused: Option<bool>,
        at: String,
    },
    /// A fan joined the waiting room.
    QueueJoin { fan: String, at: String },
    /// The pre-queue was shuffled at the opening with `seed`.
    QueueShuffle { seed: u64, at: String },
    /// Fans were admitted up to queue number `through`.
    QueueAdmit { through: u64, at: String },
    /// An admission (queue number `number`) ran out unused.
    QueueExpire { number: u64 },
    /// A fan's booking ended its admission.
    QueueDone { number: u64 },
}

impl FeedChangeDto {
    /// Its `kind`, as the stream's `event:` names it.
    pub fn kind(&self) -> &'static str {
        match self {
            FeedChangeDto::EventCreated { .. } => "event-created",
            FeedChangeDto::Hold { .. } => "hold",
            FeedChangeDto::Release { .. } => "release",
            FeedChangeDto::Expiry { .. } => "expiry",
            FeedChangeDto::Confirm { .. } => "confirm",
            FeedChangeDto::Cancel { .. } => "cancel",
            FeedChangeDto::CheckIn { .. } => "check-in",
            FeedChangeDto::SalePhases { .. } => "sale-phases",
            FeedChangeDto::WaitingRoom { .. } => "waiting-room",
            FeedChangeDto::QueueJoin { .. } => "queue-join",
            FeedChangeDto::QueueShuffle { .. } => "queue-shuffle",
            FeedChangeDto::QueueAdmit { .. } => "queue-admit",
            FeedChangeDto::QueueExpire { .. } => "queue-expire",
            FeedChangeDto::QueueDone { .. } => "queue-done",
        }
    }
}

/// The event a record belongs to, if it is a change of one (email
/// outcomes are not).
pub fn event_of(record: &Record) -> Option<std::borrow::Cow<'_, str>> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    match record {
        Record::EventCreated { spec_json, .. } => serde_json::from_str::<Id>(spec_json)
            .ok()
            .map(|d| d.id.into()),
        Record::Section { event, .. }
        | Record::SalePhasesMoved { event, .. }
        | Record::WaitingRoomSet { event, .. }
        | Record::WaitingRoom { event, .. } => Some(event.as_str().into()),
        Record::Mail { .. } => None,
    }
}

/// `record`, a change of event `def`, as the feed sends it; `None` for
/// what the feed leaves out.
pub fn feed_change(def: &EventDef, record: Record) -> Option<FeedChangeDto> {
    Some(match record {
        Record::EventCreated { at_ms, .. } => FeedChangeDto::EventCreated {
            at: rfc3339_ms(at_ms),
        },
        Record::Section {
            section, change, ..
        } => section_change(def, section, change),
        Record::SalePhasesMoved {
            phases_json, at_ms, ..
        } => FeedChangeDto::SalePhases {
            sale_phases: serde_json::from_str(&phases_json).unwrap_or(serde_json::Value::Null),
            at: rfc3339_ms(at_ms),
        },
        Record::WaitingRoomSet {
            settings, at_ms, ..
        } => FeedChangeDto::WaitingRoom {
            enabled: settings.is_some(),
            rate_per_sec: settings.map(|s| s.rate_per_sec),
            active_max: settings.and_then(|s| s.active_max),
            paused: settings.map(|s| s.paused),
            at: rfc3339_ms(at_ms),
        },
        Record::WaitingRoom { change, .. } => match change {
            RoomChangeRecord::Joined { fan, at_ms } => FeedChangeDto::QueueJoin {
                fan: fan.to_string(),
                at: rfc3339_ms(at_ms),
            },
            RoomChangeRecord::Shuffled { seed, at_ms } => FeedChangeDto::QueueShuffle {
                seed,
                at: rfc3339_ms(at_ms),
            },
            RoomChangeRecord::Admitted { through, at_ms, .. } => FeedChangeDto::QueueAdmit {
                through,
                at: rfc3339_ms(at_ms),
            },
            RoomChangeRecord::Expired { number } => FeedChangeDto::QueueExpire { number },
            RoomChangeRecord::Done { number } => FeedChangeDto::QueueDone { number },
        },
        Record::Mail { .. } => return None,
    })
}

fn section_change(def: &EventDef, section: String, change: ChangeRecord) -> FeedChangeDto {
    match change {
        ChangeRecord::HoldCreated {
            hold,
            claim,
            created_at_ms,
            expires_at_ms,
            ..
        } => hold_change(def, section, hold, "", claim, created_at_ms, expires_at_ms),
        ChangeRecord::HoldCreatedBy {
            hold,
            fan,
            claim,
            created_at_ms,
            expires_at_ms,
            ..
        } => hold_change(
            def,
            section,
            hold,
            &fan,
            claim,
            created_at_ms,
            expires_at_ms,
        ),
        ChangeRecord::HoldReleased { hold, at_ms } => FeedChangeDto::Release {
            section,
            hold,
            at: rfc3339_ms(at_ms),
        },
        ChangeRecord::HoldExpired { hold, at_ms } => FeedChangeDto::Expiry {
            section,
            hold,
            at: rfc3339_ms(at_ms),
        },
        ChangeRecord::HoldConfirmed {
            hold,
            booking,
            email,
            payment_ref,
            at_ms,
            ..
        }
        | ChangeRecord::HoldConfirmedIn {
            hold,
            booking,
            email,
            payment_ref,
            at_ms,
            ..
        } => FeedChangeDto::Confirm {
            section,
            hold,
            booking,
            email,
            payment_ref,
            at: rfc3339_ms(at_ms),
        },
        ChangeRecord::BookingCancelled { booking, at_ms } => FeedChangeDto::Cancel {
            section,
            booking,
            at: rfc3339_ms(at_ms),
        },
        ChangeRecord::TicketCheckedIn {
            booking,
            place,
            at_ms,
        } => FeedChangeDto::CheckIn {
            section,
            booking,
            place,
            at: rfc3339_ms(at_ms),
        },
    }
}

fn hold_change(
    def: &EventDef,
    section: String,
    hold: u64,
    fan: &str,
    claim: ClaimRecord,
    created_at_ms: u64,
    expires_at_ms: u64,
) -> FeedChangeDto {
    let (seats, quantity) = match claim {
        ClaimRecord::Seats(seats) => {
            let map = def.section(&section).and_then(|l| match &l.kind {
                SectionKind::Seated(map) => Some(map),
                SectionKind::Standing { .. } => None,
            });
            let ids = match map {
                Some(map) => seats
                    .iter()
                    .filter(|&&i| i < map.len())
                    .map(|&i| map.seat_id(i))
                    .collect(),
                None => Vec::new(),
            };
            (Some(ids), seats.len() as u32)
        }
        ClaimRecord::Quantity(n) => (None, n),
    };
    FeedChangeDto::Hold {
        section,
        hold,
        fan: fan.to_owned(),
        seats,
        quantity,
        at: rfc3339_ms(created_at_ms),
        expires_at: rfc3339_ms(expires_at_ms),
    }
}
