//! The event file format (`boxoffice.event/1`): a versioned JSON document
//! holding an event and its venue layout, as shipped in `snapshots/`, sent
//! to `POST /v1/events` and kept in the journal's `EventCreated` record.
//!
//! This is a compatibility boundary: the serde types here are the wire
//! format and stay separate from the domain types, and [`EventSpec::build`]
//! is the only way from one to the other. It validates everything (parse,
//! don't validate), so the domain can assert instead of check.
//! `snapshots/README.md` documents the format.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;
use crate::domain::{
    is_valid_name, Category, EventDef, Limits, MapArea, RoomSettings, Row, SalePhase, SalePhases,
    SeatMap, SectionKind, SectionLayout,
};

pub const FORMAT: &str = "boxoffice.event/1";

pub const SECTIONS_PER_EVENT_MAX: usize = 512;
pub const CATEGORIES_PER_EVENT_MAX: usize = 32;
pub const ROWS_PER_SECTION_MAX: usize = 1_000;
pub const SEATS_PER_ROW_MAX: u32 = 1_000;
pub const SEATS_PER_SECTION_MAX: usize = 100_000;
pub const SEATS_PER_EVENT_MAX: u64 = 2_000_000;
pub const SEATS_PER_HOLD_MAX: u32 = 16;
pub const HOLD_TTL_SECS_MIN: u64 = 10;
pub const HOLD_TTL_SECS_MAX: u64 = 3_600;
pub const TEXT_LEN_MAX: usize = 200;
pub const TICKETS_PER_FAN_MAX: u32 = 1_000;
pub const SALE_PHASES_MAX: usize = 16;
pub const MEMBERSHIPS_PER_PHASE_MAX: usize = 16;
pub const MEMBERSHIP_LEN_MAX: usize = 64;
/// Highest category price in minor units (10^12: a trillion won). With at
/// most `SEATS_PER_HOLD_MAX` seats per booking, totals stay far from
/// `u64::MAX`, so price arithmetic never overflows.
pub const PRICE_MINOR_MAX: u64 = 1_000_000_000_000;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// Always `boxoffice.event/1`.
    pub format: String,
    /// 1-32 of `[A-Za-z0-9_-]`.
    pub id: String,
    pub name: String,
    /// RFC 3339 in UTC, e.g. `2026-12-24T10:00:00Z`.
    pub starts_at: String,
    /// ISO 4217 code, e.g. `KRW`.
    pub currency: String,
    pub hold_ttl_secs: u64,
    pub seats_per_hold_max: u32,
    /// Most places one fan may own of the event: held plus booked, across
    /// all sections. Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tickets_per_fan_max: Option<u32>,
    /// When the event is on sale, and to whom. Absent or empty: always.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sale_phases: Vec<SalePhaseSpec>,
    /// A waiting room in front of the sale from the start. Absent: none
    /// (an operator may switch one on later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<WaitingRoomSpec>,
    pub categories: Vec<CategorySpec>,
    pub venue: VenueSpec,
}

/// One sale phase, e.g. a fan-club presale or the general sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SalePhaseSpec {
    pub name: String,
    /// RFC 3339 in UTC.
    pub opens_at: String,
    /// RFC 3339 in UTC, after `opens_at`; absent: open until the show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes_at: Option<String>,
    /// The memberships (as the fan's token lists them) this phase admits;
    /// absent or empty: everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memberships: Vec<String>,
}

impl SalePhaseSpec {
    /// The document form of a validated phase.
    pub fn of(p: &SalePhase) -> SalePhaseSpec {
        SalePhaseSpec {
            name: p.name.clone(),
            opens_at: rfc3339(p.opens_at_ms),
            closes_at: p.closes_at_ms.map(rfc3339),
            memberships: p.memberships.clone(),
        }
    }
}

/// A whole number written `4` or `4.0`: JSON Schema calls both an
/// integer, and so do the clients generated from our OpenAPI document.
pub fn whole_number<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error;
    let n = serde_json::Number::deserialize(d)?;
    let whole = match (n.as_u64(), n.as_f64()) {
        (Some(u), _) => Some(u),
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&f) => {
            Some(f as u64)
        }
        _ => None,
    };
    whole
        .and_then(|u| T::try_from(u).ok())
        .ok_or_else(|| D::Error::custom(format!("{n} is not a whole number in range")))
}

/// [`whole_number`], or absent (`null`).
pub fn whole_number_opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    #[derive(Deserialize)]
    struct Whole<T: TryFrom<u64>>(#[serde(deserialize_with = "whole_number")] T);
    Ok(Option::<Whole<T>>::deserialize(d)?.map(|w| w.0))
}

/// Most fans a waiting room admits a second.
pub const ROOM_RATE_MAX: u32 = 100_000;
/// Most fans admitted and still shopping a cap may allow.
pub const ROOM_ACTIVE_MAX: u32 = 10_000_000;
/// Longest an admission may stay valid: a day.
pub const ROOM_ADMISSION_TTL_SECS_MAX: u64 = 86_400;

/// An event's waiting room, as an operator sets it (`PUT
/// /v1/events/{event}/waiting-room`): fans queue, and are admitted in
/// queue order at `rate_per_sec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitingRoomSpec {
    /// `false` switches the waiting room off (its queue is dropped; the
    /// other fields are then ignored).
    pub enabled: bool,
    /// When fans may start joining, RFC 3339 in UTC; absent: at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_opens_at: Option<String>,
    /// The opening: fans who joined before it are shuffled, and admission
    /// starts. Absent: when the first sale phase opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<String>,
    /// Fans admitted per second, 1-100,000.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 100_000)]
    pub rate_per_sec: u32,
    /// Most fans admitted and still shopping at once, 1-10,000,000;
    /// absent: no cap.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_number_opt"
    )]
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub active_max: Option<u32>,
    /// How long an admission stays valid, 1-86,400 seconds.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 86_400)]
    pub admission_ttl_secs: u64,
    /// Admission stopped for now; joining goes on.
    #[serde(default)]
    pub paused: bool,
}

impl WaitingRoomSpec {
    /// The document form of a running room's settings.
    pub fn of(s: &RoomSettings) -> WaitingRoomSpec {
        WaitingRoomSpec {
            enabled: true,
            queue_opens_at: (s.queue_opens_at_ms > 0).then(|| rfc3339(s.queue_opens_at_ms)),
            opens_at: Some(rfc3339(s.opens_at_ms)),
            rate_per_sec: s.rate_per_sec,
            active_max: s.active_max,
            admission_ttl_secs: s.admission_ttl_ms / 1000,
            paused: s.paused,
        }
    }

    /// Validates the spec against the event's sale `phases` (errors name
    /// the field under `path`) and builds its settings; `None`: off.
    pub fn build(
        &self,
        path: &str,
        phases: &SalePhases,
    ) -> Result<Option<RoomSettings>, LayoutError> {
        if !self.enabled {
            return Ok(None);
        }
        let opens_at_ms = match &self.opens_at {
            Some(t) => parse_ms(&format!("{path}.opens_at"), t)?,
            None => match phases.0.iter().map(|p| p.opens_at_ms).min() {
                Some(ms) => ms,
                None => {
                    return fail(
                        format!("{path}.opens_at"),
                        "the event has no sale phase to open with: give opens_at",
                    )
                }
            },
        };
        let queue_opens_at_ms = match &self.queue_opens_at {
            Some(t) => parse_ms(&format!("{path}.queue_opens_at"), t)?,
            None => 0,
        };
        if queue_opens_at_ms > opens_at_ms {
            return fail(
                format!("{path}.queue_opens_at"),
                "must not be after opens_at",
            );
        }
        if !(1..=ROOM_RATE_MAX).contains(&self.rate_per_sec) {
            return fail(
                format!("{path}.rate_per_sec"),
                format!("must be 1-{ROOM_RATE_MAX}"),
            );
        }
        if self
            .active_max
            .is_some_and(|m| !(1..=ROOM_ACTIVE_MAX).contains(&m))
        {
            return fail(
                format!("{path}.active_max"),
                format!("must be 1-{ROOM_ACTIVE_MAX}"),
            );
        }
        if !(1..=ROOM_ADMISSION_TTL_SECS_MAX).contains(&self.admission_ttl_secs) {
            return fail(
                format!("{path}.admission_ttl_secs"),
                format!("must be 1-{ROOM_ADMISSION_TTL_SECS_MAX}"),
            );
        }
        Ok(Some(RoomSettings {
            queue_opens_at_ms,
            opens_at_ms,
            rate_per_sec: self.rate_per_sec,
            active_max: self.active_max,
            admission_ttl_ms: self.admission_ttl_secs * 1000,
            paused: self.paused,
        }))
    }
}

/// An RFC 3339 time as milliseconds since the epoch.
fn parse_ms(path: &str, s: &str) -> Result<u64, LayoutError> {
    humantime::parse_rfc3339(s)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| u64::try_from(d.as_millis()).ok())
        .map_or_else(
            || {
                fail(
                    path,
                    "must be an RFC 3339 time in UTC after 1970, e.g. 2026-12-24T10:00:00Z",
                )
            },
            Ok,
        )
}

/// Validates sale phases (`path` names the list in errors) and builds
/// them.
pub fn build_phases(path: &str, specs: &[SalePhaseSpec]) -> Result<SalePhases, LayoutError> {
    if specs.len() > SALE_PHASES_MAX {
        return fail(path, format!("at most {SALE_PHASES_MAX} phases"));
    }
    let mut phases = Vec::with_capacity(specs.len());
    for (i, p) in specs.iter().enumerate() {
        let path = format!("{path}[{i}]");
        check_text(&format!("{path}.name"), &p.name)?;
        let opens_at_ms = parse_ms(&format!("{path}.opens_at"), &p.opens_at)?;
        let closes_at_ms = match &p.closes_at {
            None => None,
            Some(c) => {
                let ms = parse_ms(&format!("{path}.closes_at"), c)?;
                if ms <= opens_at_ms {
                    return fail(format!("{path}.closes_at"), "must be after opens_at");
                }
                Some(ms)
            }
        };
        if p.memberships.len() > MEMBERSHIPS_PER_PHASE_MAX {
            return fail(
                format!("{path}.memberships"),
                format!("at most {MEMBERSHIPS_PER_PHASE_MAX} memberships"),
            );
        }
        for (j, m) in p.memberships.iter().enumerate() {
            if m.is_empty()
                || m.len() > MEMBERSHIP_LEN_MAX
                || !m.bytes().all(|b| b.is_ascii_graphic())
            {
                return fail(
                    format!("{path}.memberships[{j}]"),
                    format!("must be 1-{MEMBERSHIP_LEN_MAX} printable ASCII characters, no spaces"),
                );
            }
        }
        phases.push(SalePhase {
            name: p.name.clone(),
            opens_at_ms,
            closes_at_ms,
            memberships: p.memberships.clone(),
        });
    }
    Ok(SalePhases(phases))
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategorySpec {
    pub id: String,
    pub name: String,
    /// In the currency's minor unit.
    pub price: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VenueSpec {
    pub name: String,
    /// The venue's IANA time zone, e.g. `Asia/Seoul`: times meant for
    /// people (emails) are shown in it. Absent: UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Where the stage is drawn on the map (in the seats' coordinates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<AreaSpec>,
    /// Nearest the stage first.
    pub sections: Vec<SectionSpec>,
}

/// A rectangle on the venue's map, in the seats' coordinates: `x` and `y`
/// are its corner with the smallest coordinates. Only drawn: nothing is
/// decided by it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AreaSpec {
    pub x: f32,
    pub y: f32,
    #[schema(exclusive_minimum = 0)]
    pub width: f32,
    #[schema(exclusive_minimum = 0)]
    pub height: f32,
}

impl AreaSpec {
    pub fn of(a: &MapArea) -> AreaSpec {
        AreaSpec {
            x: a.x,
            y: a.y,
            width: a.width,
            height: a.height,
        }
    }

    fn build(&self, path: &str) -> Result<MapArea, LayoutError> {
        let sizes = [("width", self.width), ("height", self.height)];
        if !self.x.is_finite() || !self.y.is_finite() {
            return fail(path, "coordinates must be finite numbers");
        }
        if let Some((name, _)) = sizes.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return fail(format!("{path}.{name}"), "must be a finite number above 0");
        }
        Ok(MapArea {
            x: self.x,
            y: self.y,
            width: self.width,
            height: self.height,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionSpec {
    pub id: String,
    pub name: String,
    /// Default category of the section's rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Rows, nearest the stage first. Exactly one of `rows` and `standing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<RowSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standing: Option<StandingSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RowSpec {
    /// 1-8 of `[A-Za-z0-9]`.
    pub label: String,
    /// Number of seats; they are numbered `first_number`, `first_number+1`, ...
    pub seats: u32,
    #[serde(default = "one")]
    pub first_number: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Map position of the row's first seat.
    pub x: f32,
    pub y: f32,
    /// Step from one seat to the next on the map.
    #[serde(default = "unit")]
    pub dx: f32,
    #[serde(default)]
    pub dy: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StandingSpec {
    pub capacity: u32,
    /// Where the standing area is drawn on the map; absent: it is listed,
    /// not drawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<AreaSpec>,
}

fn one() -> u32 {
    1
}
fn unit() -> f32 {
    1.0
}

/// What is wrong with an event file, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct LayoutError {
    pub path: String,
    pub message: String,
}

fn fail<T>(path: impl Into<String>, message: impl Into<String>) -> Result<T, LayoutError> {
    Err(LayoutError {
        path: path.into(),
        message: message.into(),
    })
}

fn check_text(path: &str, s: &str) -> Result<(), LayoutError> {
    if s.trim().is_empty() || s.len() > TEXT_LEN_MAX || s.chars().any(char::is_control) {
        return fail(
            path,
            format!("must be 1-{TEXT_LEN_MAX} bytes of printable text"),
        );
    }
    Ok(())
}

impl EventSpec {
    /// Parses an event file. Syntax and type errors come back as
    /// `serde_json::Error`; the caller decides how to report them.
    pub fn from_json(bytes: &[u8]) -> Result<EventSpec, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("event specs always serialize")
    }

    /// The event's sale phases (validated by [`EventSpec::build`]).
    pub fn phases(&self) -> Result<SalePhases, LayoutError> {
        build_phases("sale_phases", &self.sale_phases)
    }

    /// The waiting room the document starts the event with (validated by
    /// [`EventSpec::build`]).
    pub fn room(&self) -> Result<Option<RoomSettings>, LayoutError> {
        match &self.waiting_room {
            None => Ok(None),
            Some(room) => room.build("waiting_room", &self.phases()?),
        }
    }

    /// The document as it is journaled: a waiting room that opens with
    /// the first sale phase says when, so that moving the phases later
    /// does not move (or unmake) the room's opening.
    pub fn settled(&self) -> Result<EventSpec, LayoutError> {
        let mut spec = self.clone();
        if let (Some(room), Some(settings)) = (&mut spec.waiting_room, self.room()?) {
            room.opens_at = Some(rfc3339(settings.opens_at_ms));
        }
        Ok(spec)
    }

    /// Validates the spec and builds the immutable event definition. The
    /// sale phases are checked here too, but kept apart (they can move):
    /// [`EventSpec::phases`].
    pub fn build(&self) -> Result<EventDef, LayoutError> {
        if self.format != FORMAT {
            return fail(
                "format",
                format!("unsupported format {:?}, expected {FORMAT:?}", self.format),
            );
        }
        if !is_valid_name(&self.id) {
            return fail("id", "must be 1-32 of A-Z, a-z, 0-9, '_' and '-'");
        }
        check_text("name", &self.name)?;
        check_text("venue.name", &self.venue.name)?;
        if let Some(tz) = &self.venue.time_zone {
            if jiff::tz::TimeZone::get(tz).is_err() {
                return fail(
                    "venue.time_zone",
                    "must be an IANA time zone, e.g. Asia/Seoul",
                );
            }
        }
        if humantime::parse_rfc3339(&self.starts_at).is_err() {
            return fail(
                "starts_at",
                "must be an RFC 3339 time in UTC, e.g. 2026-12-24T10:00:00Z",
            );
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return fail("currency", "must be an ISO 4217 code such as KRW");
        }
        if !(HOLD_TTL_SECS_MIN..=HOLD_TTL_SECS_MAX).contains(&self.hold_ttl_secs) {
            return fail(
                "hold_ttl_secs",
                format!("must be {HOLD_TTL_SECS_MIN}..={HOLD_TTL_SECS_MAX}"),
            );
        }
        if !(1..=SEATS_PER_HOLD_MAX).contains(&self.seats_per_hold_max) {
            return fail(
                "seats_per_hold_max",
                format!("must be 1..={SEATS_PER_HOLD_MAX}"),
            );
        }
        if self
            .tickets_per_fan_max
            .is_some_and(|n| !(1..=TICKETS_PER_FAN_MAX).contains(&n))
        {
            return fail(
                "tickets_per_fan_max",
                format!("must be 1..={TICKETS_PER_FAN_MAX}"),
            );
        }
        self.phases()?;
        self.room()?;
        if self.categories.is_empty() || self.categories.len() > CATEGORIES_PER_EVENT_MAX {
            return fail(
                "categories",
                format!("must have 1-{CATEGORIES_PER_EVENT_MAX} entries"),
            );
        }
        let mut categories = Vec::new();
        let mut category_ix = HashMap::new();
        for (i, c) in self.categories.iter().enumerate() {
            let path = format!("categories[{i}]");
            if !is_valid_name(&c.id) {
                return fail(
                    format!("{path}.id"),
                    "must be 1-32 of A-Z, a-z, 0-9, '_' and '-'",
                );
            }
            check_text(&format!("{path}.name"), &c.name)?;
            if category_ix.insert(c.id.clone(), i as u8).is_some() {
                return fail(
                    format!("{path}.id"),
                    format!("duplicate category {:?}", c.id),
                );
            }
            if c.price > PRICE_MINOR_MAX {
                return fail(
                    format!("{path}.price"),
                    format!("must be at most {PRICE_MINOR_MAX} (minor units)"),
                );
            }
            categories.push(Category {
                id: c.id.clone(),
                name: c.name.clone(),
                price_minor: c.price,
            });
        }
        let lookup = |path: String, id: Option<&String>| -> Result<u8, LayoutError> {
            match id {
                None => fail(path, "no category given (set it on the row or the section)"),
                Some(id) => match category_ix.get(id) {
                    Some(&ix) => Ok(ix),
                    None => fail(path, format!("unknown category {id:?}")),
                },
            }
        };

        let sections_in = &self.venue.sections;
        if sections_in.is_empty() || sections_in.len() > SECTIONS_PER_EVENT_MAX {
            return fail(
                "venue.sections",
                format!("must have 1-{SECTIONS_PER_EVENT_MAX} entries"),
            );
        }
        let mut section_ids = HashSet::new();
        let mut total: u64 = 0;
        let mut sections = Vec::new();
        for (si, s) in sections_in.iter().enumerate() {
            let path = format!("venue.sections[{si}]");
            if !is_valid_name(&s.id) {
                return fail(
                    format!("{path}.id"),
                    "must be 1-32 of A-Z, a-z, 0-9, '_' and '-'",
                );
            }
            if !section_ids.insert(s.id.as_str()) {
                return fail(
                    format!("{path}.id"),
                    format!("duplicate section {:?}", s.id),
                );
            }
            check_text(&format!("{path}.name"), &s.name)?;
            let kind = match (&s.rows, &s.standing) {
                (Some(rows), None) => SectionKind::Seated(build_rows(&path, s, rows, &lookup)?),
                (None, Some(st)) => {
                    if st.capacity == 0 || u64::from(st.capacity) > SEATS_PER_EVENT_MAX {
                        return fail(
                            format!("{path}.standing.capacity"),
                            format!("must be 1..={SEATS_PER_EVENT_MAX}"),
                        );
                    }
                    SectionKind::Standing {
                        capacity: st.capacity,
                        category: lookup(format!("{path}.category"), s.category.as_ref())?,
                        area: st
                            .area
                            .map(|a| a.build(&format!("{path}.standing.area")))
                            .transpose()?,
                    }
                }
                _ => return fail(path, "needs exactly one of `rows` and `standing`"),
            };
            let layout = SectionLayout {
                id: s.id.clone(),
                name: s.name.clone(),
                kind,
                category_count: categories.len() as u8,
            };
            total += u64::from(layout.capacity());
            if total > SEATS_PER_EVENT_MAX {
                return fail(
                    "venue.sections",
                    format!("more than {SEATS_PER_EVENT_MAX} places"),
                );
            }
            sections.push(Arc::new(layout));
        }
        Ok(EventDef {
            id: self.id.clone(),
            name: self.name.clone(),
            starts_at: self.starts_at.clone(),
            venue_name: self.venue.name.clone(),
            time_zone: self.venue.time_zone.clone(),
            currency: self.currency.clone(),
            categories,
            limits: Limits {
                seats_per_hold_max: self.seats_per_hold_max,
                hold_ttl_ms: self.hold_ttl_secs * 1000,
                tickets_per_fan_max: self.tickets_per_fan_max,
            },
            sections,
            stage: self
                .venue
                .stage
                .map(|a| a.build("venue.stage"))
                .transpose()?,
        })
    }
}

/// Finds a category's index by id, reporting `path` when it is missing.
type CategoryLookup<'a> = dyn Fn(String, Option<&String>) -> Result<u8, LayoutError> + 'a;

fn build_rows(
    path: &str,
    s: &SectionSpec,
    rows_in: &[RowSpec],
    lookup: &CategoryLookup,
) -> Result<SeatMap, LayoutError> {
    if rows_in.is_empty() || rows_in.len() > ROWS_PER_SECTION_MAX {
        return fail(
            format!("{path}.rows"),
            format!("must have 1-{ROWS_PER_SECTION_MAX} rows"),
        );
    }
    let mut labels = HashSet::new();
    let mut rows = Vec::with_capacity(rows_in.len());
    let mut seats = 0u32;
    for (ri, r) in rows_in.iter().enumerate() {
        let rpath = format!("{path}.rows[{ri}]");
        if r.label.is_empty()
            || r.label.len() > 8
            || !r.label.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return fail(format!("{rpath}.label"), "must be 1-8 of A-Z, a-z, 0-9");
        }
        if !labels.insert(r.label.as_str()) {
            return fail(
                format!("{rpath}.label"),
                format!("duplicate row {:?}", r.label),
            );
        }
        if r.seats == 0 || r.seats > SEATS_PER_ROW_MAX {
            return fail(
                format!("{rpath}.seats"),
                format!("must be 1..={SEATS_PER_ROW_MAX}"),
            );
        }
        if r.first_number == 0 || r.first_number > 100_000 {
            return fail(format!("{rpath}.first_number"), "must be 1..=100000");
        }
        if ![r.x, r.y, r.dx, r.dy].iter().all(|v| v.is_finite()) {
            return fail(rpath, "coordinates must be finite numbers");
        }
        let category = lookup(
            format!("{rpath}.category"),
            r.category.as_ref().or(s.category.as_ref()),
        )?;
        if seats as usize + r.seats as usize > SEATS_PER_SECTION_MAX {
            return fail(
                format!("{path}.rows"),
                format!("more than {SEATS_PER_SECTION_MAX} seats"),
            );
        }
        rows.push(Row {
            label: r.label.clone(),
            first: seats,
            len: r.seats,
            first_number: r.first_number,
            category,
            x: r.x,
            y: r.y,
            dx: r.dx,
            dy: r.dy,
        });
        seats += r.seats;
    }
    Ok(SeatMap::new(&s.id, rows))
}

/// The demo event served by `boxoffice serve` on first start, compiled in so
/// the binary needs no files beside it.
pub const DEMO_EVENT_JSON: &str = include_str!("../../../snapshots/demo-arena.event.json");

/// How `boxoffice serve` makes its demo event.
#[derive(Debug, Clone, Copy)]
pub struct DemoSettings {
    pub hold_ttl_secs: u64,
    /// The general sale opens this long after the presale.
    pub presale_secs: u64,
    /// 0: no limit.
    pub tickets_per_fan_max: u32,
}

/// The demo event as `boxoffice serve` creates it at `now_ms`: a
/// `fanclub` presale opens at once and the general sale later, so a fan
/// who is not a member sees the countdown.
pub fn demo_event(now_ms: u64, settings: DemoSettings) -> EventSpec {
    let mut spec =
        EventSpec::from_json(DEMO_EVENT_JSON.as_bytes()).expect("the built-in demo event parses");
    spec.hold_ttl_secs = settings.hold_ttl_secs;
    spec.tickets_per_fan_max = Some(settings.tickets_per_fan_max).filter(|&n| n > 0);
    let presale_secs = settings.presale_secs;
    // Whole seconds: the phases read as an organiser would write them.
    let opens_at_ms = now_ms - now_ms % 1000;
    spec.sale_phases = vec![
        SalePhaseSpec {
            name: "Fan-club presale".into(),
            opens_at: rfc3339(opens_at_ms),
            closes_at: None,
            memberships: vec!["fanclub".into()],
        },
        SalePhaseSpec {
            name: "General sale".into(),
            opens_at: rfc3339(opens_at_ms + presale_secs * 1000),
            closes_at: None,
            memberships: vec![],
        },
    ];
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> serde_json::Value {
        serde_json::json!({
            "format": FORMAT, "id": "t", "name": "Test", "starts_at": "2026-12-24T10:00:00Z",
            "currency": "KRW", "hold_ttl_secs": 60, "seats_per_hold_max": 4,
            "categories": [{"id": "R", "name": "R seat", "price": 150000}],
            "venue": {"name": "Hall", "sections": [
                {"id": "A", "name": "A", "category": "R", "rows": [
                    {"label": "1", "seats": 3, "x": 0.0, "y": 0.0},
                    {"label": "2", "seats": 2, "first_number": 10, "x": 0.0, "y": 1.0}]},
                {"id": "F", "name": "Floor", "category": "R", "standing": {"capacity": 5}}]}
        })
    }

    fn check_err(mutate: impl FnOnce(&mut serde_json::Value), path: &str) {
        let mut v = small();
        mutate(&mut v);
        let spec: EventSpec = serde_json::from_value(v).expect("well-typed");
        let err = spec.build().expect_err("must be refused");
        assert_eq!(err.path, path, "{err}");
    }

    #[test]
    fn builds_small_event() {
        let spec: EventSpec = serde_json::from_value(small()).unwrap();
        let def = spec.build().unwrap();
        assert_eq!(def.capacity(), 10);
        let SectionKind::Seated(map) = &def.section("A").unwrap().kind else {
            panic!()
        };
        let ids: Vec<String> = (0..map.len()).map(|i| map.seat_id(i)).collect();
        assert_eq!(ids, ["A/1/1", "A/1/2", "A/1/3", "A/2/10", "A/2/11"]);
        assert_eq!(map.lookup("A/2/11"), Some(4));
        assert_eq!(map.lookup("A/2/12"), None);
        for bad in [
            "F/1/1", "A/1/0", "A/1/x", "A/1/", "A/1/1/1", "A/9/1", "A/2/9", "A", "",
        ] {
            assert_eq!(map.lookup(bad), None, "{bad}");
        }
        for i in 0..map.len() {
            assert_eq!(map.lookup(&map.seat_id(i)), Some(i));
        }
        // Seat 4 is row 2's second: one step (dx = 1) from its first.
        assert_eq!(map.position(4), (1.0, 1.0));
        assert_eq!(map.position(0), (0.0, 0.0));
        assert_eq!((map.row_of(2), map.row_of(3)), (0, 1));
        assert_eq!(map.category(4), 0);
    }

    #[test]
    fn refuses_bad_specs_naming_the_field() {
        check_err(|v| v["format"] = "boxoffice.event/2".into(), "format");
        check_err(|v| v["id"] = "a.b".into(), "id");
        check_err(|v| v["starts_at"] = "tomorrow".into(), "starts_at");
        check_err(
            |v| v["venue"]["time_zone"] = "Mars/Olympus_Mons".into(),
            "venue.time_zone",
        );
        check_err(|v| v["currency"] = "won".into(), "currency");
        check_err(|v| v["hold_ttl_secs"] = 1.into(), "hold_ttl_secs");
        check_err(|v| v["seats_per_hold_max"] = 0.into(), "seats_per_hold_max");
        check_err(|v| v["categories"] = serde_json::json!([]), "categories");
        check_err(
            |v| v["categories"][0]["price"] = u64::MAX.into(),
            "categories[0].price",
        );
        check_err(
            |v| v["venue"]["sections"][1]["id"] = "A".into(),
            "venue.sections[1].id",
        );
        check_err(
            |v| v["venue"]["sections"][0]["rows"][1]["label"] = "1".into(),
            "venue.sections[0].rows[1].label",
        );
        check_err(
            |v| v["venue"]["sections"][0]["rows"][0]["category"] = "Z".into(),
            "venue.sections[0].rows[0].category",
        );
        check_err(
            |v| v["venue"]["sections"][1]["rows"] = serde_json::json!([]),
            "venue.sections[1]",
        );
        check_err(
            |v| v["venue"]["sections"][0]["rows"][0]["seats"] = 0.into(),
            "venue.sections[0].rows[0].seats",
        );
    }

    #[test]
    fn sale_phases_and_the_fan_limit_are_checked_and_kept() {
        let mut v = small();
        v["tickets_per_fan_max"] = 4.into();
        v["sale_phases"] = serde_json::json!([
            {"name": "Presale", "opens_at": "2026-12-01T11:00:00Z",
             "closes_at": "2026-12-02T11:00:00.250Z", "memberships": ["fanclub", "tier:gold"]},
            {"name": "General sale", "opens_at": "2026-12-03T11:00:00Z"}]);
        let spec: EventSpec = serde_json::from_value(v.clone()).unwrap();
        let def = spec.build().unwrap();
        assert_eq!(def.limits.tickets_per_fan_max, Some(4));
        let phases = spec.phases().unwrap();
        assert_eq!(phases.0[0].opens_at_ms, 1_796_122_800_000);
        assert_eq!(phases.0[0].closes_at_ms, Some(1_796_209_200_250));
        assert_eq!(phases.0[1].memberships, Vec::<String>::new());
        // Rendered back as given, and the document round-trips.
        let back: Vec<SalePhaseSpec> = phases.0.iter().map(SalePhaseSpec::of).collect();
        assert_eq!(back, spec.sale_phases);
        let again = EventSpec::from_json(spec.to_json().as_bytes()).unwrap();
        assert_eq!(again.sale_phases, spec.sale_phases);
        assert_eq!(again.tickets_per_fan_max, Some(4));
        // A document from before phases: always on sale, no fan limit, and
        // written back without the new fields.
        let old: EventSpec = serde_json::from_value(small()).unwrap();
        assert!(old.phases().unwrap().0.is_empty());
        assert_eq!(old.build().unwrap().limits.tickets_per_fan_max, None);
        assert!(!old.to_json().contains("sale_phases"));
        assert!(!old.to_json().contains("tickets_per_fan_max"));

        let phase = |p: serde_json::Value| {
            move |v: &mut serde_json::Value| v["sale_phases"] = serde_json::json!([p])
        };
        check_err(
            |v| v["tickets_per_fan_max"] = 0.into(),
            "tickets_per_fan_max",
        );
        check_err(
            phase(serde_json::json!({"name": "P", "opens_at": "soon"})),
            "sale_phases[0].opens_at",
        );
        check_err(
            phase(serde_json::json!({"name": "P", "opens_at": "1969-12-31T23:59:59Z"})),
            "sale_phases[0].opens_at",
        );
        check_err(
            phase(
                serde_json::json!({"name": "P", "opens_at": "2026-12-01T11:00:00Z",
                "closes_at": "2026-12-01T11:00:00Z"}),
            ),
            "sale_phases[0].closes_at",
        );
        check_err(
            phase(serde_json::json!({"name": " ", "opens_at": "2026-12-01T11:00:00Z"})),
            "sale_phases[0].name",
        );
        check_err(
            phase(
                serde_json::json!({"name": "P", "opens_at": "2026-12-01T11:00:00Z",
                "memberships": ["fan club"]}),
            ),
            "sale_phases[0].memberships[0]",
        );
        check_err(
            |v| {
                let p = serde_json::json!({"name": "P", "opens_at": "2026-12-01T11:00:00Z"});
                v["sale_phases"] = serde_json::Value::Array(vec![p; SALE_PHASES_MAX + 1]);
            },
            "sale_phases",
        );
    }

    #[test]
    fn demo_event_is_a_real_arena() {
        let spec = EventSpec::from_json(DEMO_EVENT_JSON.as_bytes()).unwrap();
        let def = spec.build().unwrap();
        assert_eq!(def.id, "demo");
        let seated: u64 = def
            .sections
            .iter()
            .filter(|s| matches!(s.kind, SectionKind::Seated(_)))
            .map(|s| u64::from(s.capacity()))
            .sum();
        assert!((14_000..=16_000).contains(&seated), "{seated} seats");
        assert!((18..=24).contains(&def.sections.len()));
        assert!((3..=4).contains(&def.categories.len()));
        assert!(def
            .sections
            .iter()
            .any(|s| matches!(s.kind, SectionKind::Standing { .. })));
    }

    /// The page draws the arena from these coordinates: two sections whose
    /// seats came within a seat of each other would be drawn as one block
    /// (as the first demo layout's lower bowl was, its rows wider than
    /// their wedge near the stage).
    #[test]
    fn demo_sections_are_drawn_apart() {
        let spec = EventSpec::from_json(DEMO_EVENT_JSON.as_bytes()).unwrap();
        // Seats by the unit square they fall in; only neighbouring squares
        // can hold seats closer than one unit.
        type Seat = (usize, f32, f32);
        let mut cells: std::collections::HashMap<(i32, i32), Vec<Seat>> = Default::default();
        for (k, section) in spec.venue.sections.iter().enumerate() {
            for row in section.rows.iter().flatten() {
                for i in 0..row.seats {
                    let (x, y) = (row.x + i as f32 * row.dx, row.y + i as f32 * row.dy);
                    cells
                        .entry((x.floor() as i32, y.floor() as i32))
                        .or_default()
                        .push((k, x, y));
                }
            }
        }
        let mut nearest = f32::INFINITY;
        for (&(cx, cy), seats) in &cells {
            for (ox, oy) in (-1..=1).flat_map(|ox| (-1..=1).map(move |oy| (ox, oy))) {
                for &(a, ax, ay) in seats {
                    for &(b, bx, by) in cells.get(&(cx + ox, cy + oy)).into_iter().flatten() {
                        if a != b {
                            nearest = nearest.min((ax - bx).hypot(ay - by));
                        }
                    }
                }
            }
        }
        // A row's seats are 0.55 apart and its rows 1.0: an aisle is wider.
        assert!(nearest >= 1.0, "seats of two sections {nearest} apart");

        // The floor and the stage are drawn as rectangles: clear of every
        // seat and of each other.
        let def = spec.build().unwrap();
        let floor = def
            .sections
            .iter()
            .find_map(|s| match s.kind {
                SectionKind::Standing { area, .. } => area,
                SectionKind::Seated(_) => None,
            })
            .expect("the floor is drawn");
        let stage = def.stage.expect("the stage is drawn");
        let gap = |a: &MapArea, x: f32, y: f32| {
            let dx = (a.x - x).max(x - (a.x + a.width)).max(0.0);
            let dy = (a.y - y).max(y - (a.y + a.height)).max(0.0);
            dx.hypot(dy)
        };
        for seats in cells.values() {
            for &(_, x, y) in seats {
                assert!(gap(&floor, x, y) >= 1.0, "seat at ({x}, {y}) on the floor");
                assert!(gap(&stage, x, y) >= 1.0, "seat at ({x}, {y}) on the stage");
            }
        }
        assert!(
            stage.y + stage.height < floor.y,
            "the stage overlaps the floor"
        );
    }

    #[test]
    fn map_areas_must_be_finite_and_not_empty() {
        let mut v = small();
        v["venue"]["stage"] =
            serde_json::json!({"x": -2.0, "y": -3.0, "width": 4.0, "height": 1.0});
        v["venue"]["sections"][1]["standing"]["area"] =
            serde_json::json!({"x": 0.0, "y": 3.0, "width": 3.0, "height": 2.0});
        let spec: EventSpec = serde_json::from_value(v).expect("well-typed");
        let def = spec.build().expect("valid");
        assert_eq!(
            def.stage,
            Some(MapArea {
                x: -2.0,
                y: -3.0,
                width: 4.0,
                height: 1.0
            })
        );
        assert!(matches!(
            def.sections[1].kind,
            SectionKind::Standing {
                area: Some(MapArea { width: 3.0, .. }),
                ..
            }
        ));
        // Both round-trip through the document the journal keeps.
        let again = EventSpec::from_json(spec.to_json().as_bytes()).unwrap();
        assert_eq!(again.venue.stage, spec.venue.stage);

        check_err(
            |v| v["venue"]["stage"] = serde_json::json!({"x": 0, "y": 0, "width": 0, "height": 1}),
            "venue.stage.width",
        );
        check_err(
            |v| {
                v["venue"]["sections"][1]["standing"]["area"] =
                    serde_json::json!({"x": 0, "y": 0, "width": 1, "height": -2})
            },
            "venue.sections[1].standing.area.height",
        );
        // 1e39 is past f32: it arrives as infinity.
        check_err(
            |v| {
                v["venue"]["stage"] =
                    serde_json::json!({"x": 1e39, "y": 0, "width": 1, "height": 1})
            },
            "venue.stage",
        );
        let mut v = small();
        v["venue"]["stage"] = serde_json::json!({"x": 0, "y": 0, "width": 1, "height": 1, "z": 0});
        assert!(
            serde_json::from_value::<EventSpec>(v).is_err(),
            "unknown fields are refused"
        );
    }
}
