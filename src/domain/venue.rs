//! Venue layouts and event definitions: immutable once built, shared by every
//! section of an event through an `Arc`.
//!
//! These types are only ever built by `crate::layout` from a validated
//! layout file, so code here may assume what that validation established:
//! names are valid, rows are non-empty, seat ids are unique, categories
//! exist. Order matters: sections and rows are listed nearest the stage
//! first, and seats in a row from one end of the row to the other, so two
//! seats next to each other in `Row` are adjacent in the hall.

use std::collections::HashMap;
use std::sync::Arc;

/// Limits an event puts on every hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most seats (or standing places) one hold may claim.
    pub seats_per_hold_max: u32,
    /// How long a hold lasts before its seats return to free.
    pub hold_ttl_ms: u64,
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
    /// ISO 4217 code, e.g. `KRW`.
    pub currency: String,
    pub categories: Vec<Category>,
    pub limits: Limits,
    pub sections: Vec<Arc<SectionLayout>>,
}

impl EventDef {
    pub fn section(&self, id: &str) -> Option<&Arc<SectionLayout>> {
        self.sections.iter().find(|s| s.id == id)
    }

    pub fn capacity(&self) -> u64 {
        self.sections.iter().map(|s| u64::from(s.capacity())).sum()
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
            SectionKind::Seated(map) => map.seats.len() as u32,
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
    },
}

#[derive(Debug)]
pub struct SeatMap {
    /// Nearest the stage first.
    pub rows: Vec<Row>,
    /// Every seat of the section, row by row; a seat's index here is its
    /// identity inside the process and in the journal.
    pub seats: Vec<Seat>,
    index: HashMap<String, u32>,
}

impl SeatMap {
    /// Builds the map; `rows` must be non-empty and seat ids unique (the
    /// layout parser checks both and reports them as input errors).
    pub fn new(rows: Vec<Row>, seats: Vec<Seat>) -> SeatMap {
        let index: HashMap<String, u32> = seats
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i as u32))
            .collect();
        assert_eq!(index.len(), seats.len(), "seat ids are unique");
        assert!(!rows.is_empty());
        let mut next = 0;
        for row in &rows {
            assert_eq!(row.first, next, "rows cover the seats in order");
            assert!(row.len > 0);
            next += row.len;
        }
        assert_eq!(next as usize, seats.len());
        SeatMap { rows, seats, index }
    }

    /// The index of a seat id such as `A/12/7`.
    pub fn lookup(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub label: String,
    /// Index of the row's first seat in `SeatMap::seats`.
    pub first: u32,
    pub len: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Seat {
    /// `section/row/number`, e.g. `A/12/7`.
    pub id: String,
    pub row: u32,
    pub category: u8,
    pub x: f32,
    pub y: f32,
}
