//! Venue layouts and event definitions: immutable once built, shared by every
//! section of an event through an `Arc`.
//!
//! These types are only ever built by `boxoffice::layout` from a validated
//! layout file, so code here may assume what that validation established:
//! names are valid, rows are non-empty, seat ids are unique, categories
//! exist. Order matters: sections and rows are listed nearest the stage
//! first, and seats in a row from one end of the row to the other, so two
//! seats next to each other in `Row` are adjacent in the hall.

use std::collections::HashMap;
use std::sync::Arc;

use super::Claim;

/// Limits an event puts on every hold, and on every fan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most seats (or standing places) one hold may claim.
    pub seats_per_hold_max: u32,
    /// How long a hold lasts before its seats return to free.
    pub hold_ttl_ms: u64,
    /// Most places one fan may own of the event (held plus booked, across
    /// all sections); `None`: no limit.
    pub tickets_per_fan_max: Option<u32>,
}

/// A rectangle on the venue's map, in the seats' coordinates: `(x, y)` is
/// its corner with the smallest coordinates. Drawn for places that have no
/// seats to draw (a standing floor) and for the stage; nothing is decided
/// by it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapArea {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub id: String,
    pub name: String,
    /// Price in the currency's minor unit (KRW has none: 1 = ₩1).
    pub price_minor: u64,
}

#[derive(Debug)]
pub struct EventDef {
    pub id: String,
    pub name: String,
    /// RFC 3339 start of the show, as given.
    pub starts_at: String,
    pub venue_name: String,
    /// The venue's IANA time zone; `None`: UTC.
    pub time_zone: Option<String>,
    /// ISO 4217 code, e.g. `KRW`.
    pub currency: String,
    pub categories: Vec<Category>,
    pub limits: Limits,
    pub sections: Vec<Arc<SectionLayout>>,
    /// Where the stage is drawn on the map, when the layout says.
    pub stage: Option<MapArea>,
}

impl EventDef {
    pub fn section(&self, id: &str) -> Option<&Arc<SectionLayout>> {
        self.sections.iter().find(|s| s.id == id)
    }

    pub fn capacity(&self) -> u64 {
        self.sections.iter().map(|s| u64::from(s.capacity())).sum()
    }

    /// What `claim` in section `layout` costs: its places' category
    /// prices, in the currency's minor unit (no overflow: prices and
    /// places per hold are bounded by `layout`'s validation).
    pub fn price_of(&self, layout: &SectionLayout, claim: &Claim) -> u64 {
        let price = |category: u8| self.categories[usize::from(category)].price_minor;
        match (claim, &layout.kind) {
            (Claim::Seats(seats), SectionKind::Seated(map)) => {
                seats.iter().map(|&s| price(map.category(s))).sum()
            }
            (Claim::Quantity(n), SectionKind::Standing { category, .. }) => {
                price(*category) * u64::from(*n)
            }
            _ => 0,
        }
    }
}

#[derive(Debug)]
pub struct SectionLayout {
    pub id: String,
    pub name: String,
    pub kind: SectionKind,
    /// Number of categories of the event; counts are kept per category.
    pub category_count: u8,
}

impl SectionLayout {
    pub fn capacity(&self) -> u32 {
        match &self.kind {
            SectionKind::Seated(map) => map.len(),
            SectionKind::Standing { capacity, .. } => *capacity,
        }
    }
}

#[derive(Debug)]
pub enum SectionKind {
    Seated(SeatMap),
    /// General admission: a capacity and no seat ids.
    Standing {
        capacity: u32,
        category: u8,
        /// Where the standing area is drawn on the map, when the layout says.
        area: Option<MapArea>,
    },
}

#[derive(Debug)]
pub struct SeatMap {
    /// The section's id: the first part of every seat id.
    section: String,
    /// Nearest the stage first.
    pub rows: Vec<Row>,
    /// Seats in all rows. A seat is its index, row by row: its identity
    /// inside the process and in the journal. Nothing is stored per seat
    /// (at a million seats that would be most of the memory): the id
    /// (`section/row label/number`), category and map position follow
    /// from the seat's row, found by a binary search over `rows`.
    seat_count: u32,
    /// Row label → row index.
    row_index: HashMap<String, u32>,
}

impl SeatMap {
    /// Builds the map; `rows` must be non-empty, follow each other without
    /// gaps from seat 0, and have unique labels (the layout parser checks
    /// all of it and reports them as input errors).
    pub fn new(section: &str, rows: Vec<Row>) -> SeatMap {
        assert!(!rows.is_empty());
        let mut next = 0;
        for row in &rows {
            assert_eq!(row.first, next, "rows cover the seats in order");
            assert!(row.len > 0);
            next += row.len;
        }
        let row_index: HashMap<String, u32> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.label.clone(), i as u32))
            .collect();
        assert_eq!(row_index.len(), rows.len(), "row labels are unique");
        SeatMap {
            section: section.to_owned(),
            rows,
            seat_count: next,
            row_index,
        }
    }

    /// Number of seats.
    pub fn len(&self) -> u32 {
        self.seat_count
    }

    pub fn is_empty(&self) -> bool {
        self.seat_count == 0
    }

    /// The index of seat `i`'s row. `i` must be a seat of this map.
    pub fn row_of(&self, i: u32) -> u32 {
        debug_assert!(i < self.seat_count);
        (self.rows.partition_point(|r| r.first <= i) - 1) as u32
    }

    /// Seat `i`'s row.
    pub fn row(&self, i: u32) -> &Row {
        &self.rows[self.row_of(i) as usize]
    }

    /// Seat `i`'s price category (an index into the event's categories).
    pub fn category(&self, i: u32) -> u8 {
        self.row(i).category
    }

    /// Seat `i`'s position on the map.
    pub fn position(&self, i: u32) -> (f32, f32) {
        let row = self.row(i);
        row.position(i - row.first)
    }

    /// Every seat in order: its category and position on the map.
    pub fn seats(&self) -> impl Iterator<Item = (u8, (f32, f32))> + '_ {
        self.rows
            .iter()
            .flat_map(|r| (0..r.len).map(move |k| (r.category, r.position(k))))
    }

    /// The id of seat `i`, such as `A/12/7`.
    pub fn seat_id(&self, i: u32) -> String {
        let row = self.row(i);
        format!(
            "{}/{}/{}",
            self.section,
            row.label,
            row.first_number + (i - row.first)
        )
    }

    /// The index of a seat id such as `A/12/7`.
    pub fn lookup(&self, id: &str) -> Option<u32> {
        let mut parts = id.split('/');
        let (section, label, number) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || section != self.section {
            return None;
        }
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let number: u32 = number.parse().ok()?;
        let row = &self.rows[*self.row_index.get(label)? as usize];
        let k = number.checked_sub(row.first_number)?;
        (k < row.len).then_some(row.first + k)
    }
}

/// One row of seats. Its seats are `first..first + len` in the map,
/// numbered from `first_number`, all of one category, on a straight line
/// on the map from (x, y) in steps of (dx, dy).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub label: String,
    /// Index of the row's first seat in the map.
    pub first: u32,
    pub len: u32,
    /// Number of the row's first seat; the others follow one by one.
    pub first_number: u32,
    /// Price category of every seat in the row.
    pub category: u8,
    pub x: f32,
    pub y: f32,
    pub dx: f32,
    pub dy: f32,
}

impl Row {
    /// The position of the row's `k`-th seat on the map.
    pub fn position(&self, k: u32) -> (f32, f32) {
        let k = k as f32;
        (self.x + self.dx * k, self.y + self.dy * k)
    }
}
