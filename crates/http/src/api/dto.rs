//! Wire types of the REST API, and their rendering from domain values.
//!
//! A compatibility boundary: these types change only in ways old clients
//! survive, and they are converted from domain values by hand here, in
//! the one place both the handlers and recovery render from.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::rfc3339_ms;
use crate::domain::{
    Booking, BookingRead, BookingRef, CategoryCounts, Claim, EventDef, Hold, HoldRef, HoldView,
    SalePhases, SectionCounts, SectionKind, SectionLayout,
};
use crate::layout::{AreaSpec, SalePhaseSpec, WaitingRoomSpec};
use crate::mail::{seat_name, OutboxList, Tickets};
use crate::snapshot::{Header, SnapshotError};

/// New sale phases for an event on sale.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SalePhasesRequest {
    /// Replaces every phase; empty: always on sale, to everyone.
    pub sale_phases: Vec<SalePhaseSpec>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// The section to hold in; a hold never spans sections.
    pub section: String,
    /// Explicit seat ids (`section/row/number`), all or none. Exactly one
    /// of `seats` and `quantity`.
    #[serde(default)]
    pub seats: Option<Vec<String>>,
    /// Best available N seats together (same row, adjacent, nearest the
    /// stage first), or N standing places.
    #[serde(default, deserialize_with = "crate::layout::whole_number_opt")]
    pub quantity: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    pub email: String,
    /// The payment service's receipt for this hold: a JWT naming the
    /// hold, its `total_price` as `amount`, its `currency`, and the
    /// payment's unique `ref` (which the booking keeps as `payment_ref`).
    pub receipt: String,
}

/// A ticket scanned at the door.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInRequest {
    /// The ticket's token: what its QR code encodes (`BXT1.…`).
    pub token: String,
}

/// A ticket checked in: what the door shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckInDto {
    pub event: String,
    pub section: String,
    /// The booking's number in its section (the public part of its id).
    pub booking: u64,
    /// The ticket's place in its booking, from 1.
    pub place: u32,
    /// The seat id, in a seated section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seat: Option<String>,
    /// What the door reads out: `Row 3, Seat 4` or `Floor, place 2`.
    pub label: String,
    /// The place's price category.
    pub category: String,
    pub checked_in_at: String,
}

/// The body of a cancellation; it may also be empty.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {}

#[derive(Debug, Serialize, ToSchema)]
pub struct HoldDto {
    pub id: String,
    pub event: String,
    pub section: String,
    /// Seat ids; empty for a standing section.
    pub seats: Vec<String>,
    /// Number of places held.
    pub quantity: u32,
    /// `held` while it lasts; `confirmed` once it became a booking.
    #[schema(example = "held")]
    pub status: &'static str,
    /// The booking it became; only when `confirmed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<String>,
    /// Only when `held`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Only when `held`: when its places return to sale unless confirmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    pub currency: String,
    /// What the fan pays to confirm: the places' category prices, in the
    /// currency's minor unit. The payment receipt names this amount.
    pub total_price: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BookingDto {
    pub id: String,
    pub event: String,
    pub section: String,
    pub seats: Vec<String>,
    pub quantity: u32,
    pub email: String,
    /// The language of the booking's emails (`en`, `ko`): the fan's
    /// token's `locale`, else the confirm's `Accept-Language`, else `en`.
    pub language: String,
    pub payment_ref: String,
    /// `confirmed` or `cancelled`.
    pub status: String,
    pub confirmed_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<String>,
    pub currency: String,
    /// Sum of the seats' category prices, in the currency's minor unit.
    pub total_price: u64,
    /// One ticket per place, for the fan's own read of a confirmed
    /// booking (what an app shows at the door).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tickets: Option<Vec<TicketDto>>,
}

/// A fan's live holds of one event, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyHoldsDto {
    /// At most 50, newest first.
    pub holds: Vec<HoldDto>,
}

/// A fan's bookings of one event, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyBookingsDto {
    /// At most 50, newest first; without tickets (read a booking by its
    /// `id` for them).
    pub bookings: Vec<BookingDto>,
    /// How many bookings the fan has of the event in all.
    pub total: usize,
}

/// One place's ticket: its signed token is what its QR code encodes.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketDto {
    /// The seat id, or the place's number in a standing section.
    pub place: String,
    pub token: String,
    /// When a door checked the ticket in; absent until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_in_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Availability {
    pub capacity: u32,
    pub free: u32,
    pub held: u32,
    pub sold: u32,
}

impl From<CategoryCounts> for Availability {
    fn from(c: CategoryCounts) -> Availability {
        Availability {
            capacity: c.capacity(),
            free: c.free,
            held: c.held,
            sold: c.sold,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventSummary {
    pub id: String,
    pub name: String,
    pub starts_at: String,
    pub venue: String,
    pub currency: String,
    #[serde(flatten)]
    pub availability: Availability,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryDto {
    pub id: String,
    pub name: String,
    pub price: u64,
    #[serde(flatten)]
    pub availability: Availability,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SectionSummary {
    pub id: String,
    pub name: String,
    /// `seated` or `standing`.
    pub kind: String,
    #[serde(flatten)]
    pub availability: Availability,
    /// Availability per category present in the section.
    pub categories: Vec<SectionCategoryDto>,
    /// A standing section's place on the map, when the layout gives one
    /// (a seated section is drawn from its seats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area: Option<AreaSpec>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SectionCategoryDto {
    pub category: String,
    #[serde(flatten)]
    pub availability: Availability,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    pub summary: EventSummary,
    pub hold_ttl_secs: u64,
    pub seats_per_hold_max: u32,
    /// Most places one fan may own of the event, held plus booked, across
    /// sections; absent: no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tickets_per_fan_max: Option<u32>,
    /// When the event is on sale, and to whom; empty: always, to everyone.
    pub sale_phases: Vec<SalePhaseSpec>,
    pub categories: Vec<CategoryDto>,
    pub sections: Vec<SectionSummary>,
    /// Where the stage is on the map, when the layout gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<AreaSpec>,
}

/// A section's seats in columns: `ids[i]`, `category[i]`, `x[i]`, `y[i]`
/// and `states[i]` describe seat i. States are one character per seat:
/// `f` free, `h` held, `s` sold. Standing sections have no seats.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeatMapDto {
    pub event: String,
    pub section: String,
    pub kind: String,
    #[serde(flatten)]
    pub availability: Availability,
    /// Category ids, indexed by the numbers in `category`.
    pub categories: Vec<String>,
    pub ids: Vec<String>,
    pub category: Vec<u8>,
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub states: String,
}

/// A section's whole state, first on its seat stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeatStatesDto<'a> {
    /// The journal position this state stands at (the event's `id`).
    pub position: u64,
    /// The section's counts.
    pub availability: Availability,
    /// One of `f` (free), `h` (held), `s` (sold) per seat, in the order of
    /// the seat map's `ids`; empty for a standing section.
    pub states: &'a str,
}

/// What changed in a section between two positions of its seat stream:
/// each seat (an index into the seat map's `ids`) that changed, under the
/// state it is in now (`free`, `held`, `sold`), and the counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeatChangesDto {
    /// The journal position this stands at (the event's `id`).
    pub position: u64,
    /// The position of the section's previous `changes`: at most the
    /// stream's previous `id` (a stream that started with the whole state
    /// may get changes it had already; each names the seat's state now,
    /// so applying them again changes nothing).
    pub since: u64,
    /// The section's counts.
    pub availability: Availability,
    pub free: Vec<u32>,
    pub held: Vec<u32>,
    pub sold: Vec<u32>,
}

pub fn kind_name(layout: &SectionLayout) -> &'static str {
    match layout.kind {
        SectionKind::Seated(_) => "seated",
        SectionKind::Standing { .. } => "standing",
    }
}

/// Seat ids of a claim, and the number of places.
pub fn claim_seats(layout: &SectionLayout, claim: &Claim) -> (Vec<String>, u32) {
    match (claim, &layout.kind) {
        (Claim::Seats(seats), SectionKind::Seated(map)) => (
            seats.iter().map(|&s| map.seat_id(s)).collect(),
            seats.len() as u32,
        ),
        (claim, _) => (Vec::new(), claim.count()),
    }
}

pub fn hold_dto(def: &EventDef, layout: &SectionLayout, h: &Hold) -> HoldDto {
    let (seats, quantity) = claim_seats(layout, &h.claim);
    HoldDto {
        id: HoldRef::id(&def.id, &layout.id, h.seq, h.secret),
        event: def.id.clone(),
        section: layout.id.clone(),
        seats,
        quantity,
        status: "held",
        booking_id: None,
        created_at: Some(rfc3339_ms(h.created_at_ms)),
        expires_at: Some(rfc3339_ms(h.expires_at_ms)),
        currency: def.currency.clone(),
        total_price: def.price_of(layout, &h.claim),
    }
}

/// A hold as its fan reads it back: live, or the booking it became.
pub fn hold_view_dto(def: &EventDef, layout: &SectionLayout, view: &HoldView) -> HoldDto {
    let (hold, secret, b) = match view {
        HoldView::Live(h) => return hold_dto(def, layout, h),
        HoldView::Confirmed {
            hold,
            secret,
            booking,
        } => (*hold, *secret, booking),
    };
    let (seats, quantity) = claim_seats(layout, &b.claim);
    HoldDto {
        id: HoldRef::id(&def.id, &layout.id, hold, secret),
        event: def.id.clone(),
        section: layout.id.clone(),
        seats,
        quantity,
        status: "confirmed",
        booking_id: Some(BookingRef::id(&def.id, &layout.id, b.seq, b.secret)),
        created_at: None,
        expires_at: None,
        currency: def.currency.clone(),
        total_price: def.price_of(layout, &b.claim),
    }
}

/// A booking as its own fan reads it: with a ticket per place while it
/// stands (a cancelled booking's tickets are void, and not shown), and
/// when each checked in.
pub fn booking_dto_with_tickets(
    def: &EventDef,
    layout: &SectionLayout,
    read: &BookingRead,
    key: &Tickets,
) -> BookingDto {
    let b = &read.booking;
    let mut dto = booking_dto(def, layout, b);
    if b.status.is_confirmed() {
        let tickets = key.of_booking(
            &def.id,
            &layout.id,
            (b.seq, b.secret),
            &dto.seats,
            dto.quantity,
        );
        dto.tickets = Some(
            tickets
                .iter()
                .zip(&read.checked_in)
                .map(|(t, at)| TicketDto {
                    place: t.place(),
                    token: key.sign(t),
                    checked_in_at: at.map(rfc3339_ms),
                })
                .collect(),
        );
    }
    dto
}

/// Place `place` (from 1) of booking `b`, checked in at `at_ms`.
pub fn check_in_dto(
    def: &EventDef,
    layout: &SectionLayout,
    b: &Booking,
    place: u32,
    at_ms: u64,
) -> CheckInDto {
    let (seat, label, category) = match (&b.claim, &layout.kind) {
        (Claim::Seats(seats), SectionKind::Seated(map)) => {
            let i = seats[place as usize - 1];
            let id = map.seat_id(i);
            let label = seat_name(&id);
            (Some(id), label, map.category(i))
        }
        (_, SectionKind::Standing { category, .. }) => {
            (None, format!("{}, place {place}", layout.name), *category)
        }
        (_, SectionKind::Seated(_)) => unreachable!("a seated booking claims seats"),
    };
    CheckInDto {
        event: def.id.clone(),
        section: layout.id.clone(),
        booking: b.seq,
        place,
        seat,
        label,
        category: def
            .categories
            .get(usize::from(category))
            .map_or_else(String::new, |c| c.name.clone()),
        checked_in_at: rfc3339_ms(at_ms),
    }
}

pub fn booking_dto(def: &EventDef, layout: &SectionLayout, b: &Booking) -> BookingDto {
    let (seats, quantity) = claim_seats(layout, &b.claim);
    let (status, cancelled_at) = match b.status.cancelled_at() {
        None => ("confirmed", None),
        Some(at_ms) => ("cancelled", Some(rfc3339_ms(at_ms))),
    };
    BookingDto {
        id: BookingRef::id(&def.id, &layout.id, b.seq, b.secret),
        event: def.id.clone(),
        section: layout.id.clone(),
        seats,
        quantity,
        email: b.email().to_owned(),
        language: b.lang().tag().to_owned(),
        payment_ref: b.payment_ref().to_owned(),
        status: status.to_owned(),
        confirmed_at: rfc3339_ms(b.confirmed_at_ms),
        cancelled_at,
        currency: def.currency.clone(),
        total_price: def.price_of(layout, &b.claim),
        tickets: None,
    }
}

/// An event's detail from each section's counts per category (in layout
/// order, as `Section::counts` and the published section stats give them).
pub fn event_detail(
    def: &EventDef,
    phases: &SalePhases,
    per_section: &[Vec<CategoryCounts>],
) -> EventDetail {
    let categories = def
        .categories
        .iter()
        .enumerate()
        .map(|(i, c)| CategoryDto {
            id: c.id.clone(),
            name: c.name.clone(),
            price: c.price_minor,
            availability: per_section
                .iter()
                .map(|s| s[i])
                .sum::<CategoryCounts>()
                .into(),
        })
        .collect();
    let sections = def
        .sections
        .iter()
        .zip(per_section)
        .map(|(s, counts)| SectionSummary {
            id: s.id.clone(),
            name: s.name.clone(),
            kind: kind_name(s).to_owned(),
            availability: counts.iter().copied().sum::<CategoryCounts>().into(),
            categories: counts
                .iter()
                .enumerate()
                .filter(|(_, c)| c.capacity() > 0)
                .map(|(i, c)| SectionCategoryDto {
                    category: def.categories[i].id.clone(),
                    availability: (*c).into(),
                })
                .collect(),
            area: match &s.kind {
                SectionKind::Standing { area, .. } => area.as_ref().map(AreaSpec::of),
                SectionKind::Seated(_) => None,
            },
        })
        .collect();
    EventDetail {
        summary: EventSummary {
            id: def.id.clone(),
            name: def.name.clone(),
            starts_at: def.starts_at.clone(),
            venue: def.venue_name.clone(),
            currency: def.currency.clone(),
            availability: per_section
                .iter()
                .flatten()
                .copied()
                .sum::<CategoryCounts>()
                .into(),
        },
        hold_ttl_secs: def.limits.hold_ttl_ms / 1000,
        seats_per_hold_max: def.limits.seats_per_hold_max,
        tickets_per_fan_max: def.limits.tickets_per_fan_max,
        sale_phases: phases.0.iter().map(SalePhaseSpec::of).collect(),
        categories,
        sections,
        stage: def.stage.as_ref().map(AreaSpec::of),
    }
}

/// A section's seat map: every seat's id, category, position and state
/// (`states`, one character a seat, as `Section::seat_states` gives it).
pub fn seat_map(
    def: &EventDef,
    layout: &SectionLayout,
    states: &str,
    counts: &SectionCounts,
) -> SeatMapDto {
    let mut dto = SeatMapDto {
        event: def.id.clone(),
        section: layout.id.clone(),
        kind: kind_name(layout).to_owned(),
        availability: counts.total.into(),
        categories: def.categories.iter().map(|c| c.id.clone()).collect(),
        ids: Vec::new(),
        category: Vec::new(),
        x: Vec::new(),
        y: Vec::new(),
        states: states.to_owned(),
    };
    if let SectionKind::Seated(map) = &layout.kind {
        dto.ids = (0..map.len()).map(|i| map.seat_id(i)).collect();
        for (category, (x, y)) in map.seats() {
            dto.category.push(category);
            dto.x.push(x);
            dto.y.push(y);
        }
    }
    dto
}

/// A JSON body at its length: answers given with an Idempotency-Key are
/// kept (a sale keeps a million), and a serializer's buffer has up to
/// twice the room. Shrinking in place is nearly free.
pub fn to_json<T: Serialize>(value: &T) -> bytes::Bytes {
    let mut body = json_text(value).into_bytes();
    body.shrink_to_fit();
    bytes::Bytes::from(body)
}

/// A wire type as JSON text. They hold strings, numbers and sequences,
/// which serde_json cannot fail on; were one ever to, the answer is
/// `null` and an error in the log, not a panic on a request's thread.
pub fn json_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        tracing::error!(error = %e, "a wire type did not serialize");
        "null".to_owned()
    })
}

/// One email still owed, as operators see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxEntryDto {
    /// `event.section.b<booking>.<kind>`; no secret.
    pub id: String,
    /// `confirmation` or `cancellation`.
    pub kind: String,
    pub email: String,
    /// `pending`, `sending` or `dead`.
    pub state: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (pending entries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxListDto {
    /// Entries waiting to be sent (or being sent), in all.
    pub pending: usize,
    /// Dead letters, in all.
    pub dead: usize,
    /// The entries asked for, by id, at most `limit`.
    pub entries: Vec<OutboxEntryDto>,
}

pub fn outbox_list_dto(list: &OutboxList) -> OutboxListDto {
    OutboxListDto {
        pending: list.pending,
        dead: list.dead,
        entries: list.items.iter().map(outbox_entry_dto).collect(),
    }
}

pub fn outbox_entry_dto(item: &crate::mail::OutboxItem) -> OutboxEntryDto {
    use crate::mail::SlotState;
    OutboxEntryDto {
        id: item.id.clone(),
        kind: item.kind.as_str().to_owned(),
        email: item.email.clone(),
        state: match item.state {
            SlotState::Pending => "pending",
            SlotState::Sending => "sending",
            SlotState::Dead => "dead",
        }
        .to_owned(),
        attempts: item.attempts,
        next_attempt_at: (item.state == SlotState::Pending).then(|| rfc3339_ms(item.next_at_ms)),
        last_error: item.last_error.clone(),
    }
}

/// One snapshot file of the data directory, as operators see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotFileDto {
    /// The journal position it reaches (its name).
    pub position: u64,
    pub bytes: u64,
    /// The file's header (`boxoffice.snapshot/3`), or `{"error": …}` when
    /// it does not read; the checksum is not checked by a listing.
    #[schema(value_type = Object)]
    pub header: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotListDto {
    /// Newest first.
    pub snapshots: Vec<SnapshotFileDto>,
}

pub fn snapshot_file_dto(
    position: u64,
    bytes: u64,
    header: Result<Header, SnapshotError>,
) -> SnapshotFileDto {
    let header = match header {
        Ok(h) => serde_json::to_value(h).unwrap_or_default(),
        Err(e) => serde_json::json!({"error": e.to_string()}),
    };
    SnapshotFileDto {
        position,
        bytes,
        header,
    }
}

/// An event's waiting room as everyone may see it: the same for every
/// fan, so cheap to serve and to cache (a second). The default is a room
/// switched off.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct WaitingRoomDto {
    pub event: String,
    pub enabled: bool,
    /// How it runs (what `PUT` set); absent when off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<WaitingRoomSpec>,
    /// The first queue number not yet admitted: a fan with number `n`
    /// has `n - serving` fans ahead.
    pub serving: u64,
    /// Fans who joined.
    pub joined: u64,
    /// Fans who joined and are not admitted yet.
    pub waiting: u64,
    /// Admissions valid now (the ones under `active_max`).
    pub active: u32,
    /// Fans admitted per second, measured over the last ten seconds.
    pub admitted_per_sec: f64,
    /// The seed the pre-queue was shuffled with, once it was (decimal:
    /// anyone can redo the shuffle and check the order).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shuffle_seed: Option<String>,
}

/// Where a fan stands in an event's waiting room.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueStandingDto {
    pub event: String,
    /// `pre-queue` (joined before the opening: the number comes with the
    /// shuffle), `waiting`, `admitted`, `expired` (admitted, not used in
    /// time) or `done` (admitted, booked).
    pub state: &'static str,
    /// Its queue number, from 0; absent in the pre-queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<u64>,
    pub serving: u64,
    /// Fans ahead, while waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ahead: Option<u64>,
    /// While waiting: fans ahead over the admission rate (as measured,
    /// else as set); absent while admission is paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_wait_secs: Option<u64>,
    /// The opening: the pre-queue is shuffled, and admission starts.
    pub opens_at: String,
    /// Once admitted: the token to send with each hold, in the
    /// `Boxoffice-Admission` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission_expires_at: Option<String>,
}
