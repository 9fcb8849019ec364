//! Fixtures shared by the benches: events of a given shape, built through
//! the same `boxoffice.event/1` parser the server uses.

#![allow(dead_code)] // each bench uses a different part

use std::sync::Arc;

use boxoffice::domain::{EventDef, FanId, Section};
use boxoffice::layout::EventSpec;

/// An event document: `sections` seated sections (`S0`, `S1`, ...) of
/// `rows` rows of `per_row` seats, one category, at most `per_hold_max`
/// seats per hold, holds living `ttl_secs`.
pub fn event_json(
    id: &str,
    sections: usize,
    rows: u32,
    per_row: u32,
    per_hold_max: u32,
    ttl_secs: u64,
) -> String {
    let rows: Vec<serde_json::Value> = (0..rows)
        .map(|r| serde_json::json!({"label": (r + 1).to_string(), "seats": per_row, "x": 0.0, "y": r as f32}))
        .collect();
    let sections: Vec<serde_json::Value> = (0..sections)
        .map(|s| serde_json::json!({"id": format!("S{s}"), "name": format!("Section {s}"), "category": "R", "rows": rows}))
        .collect();
    serde_json::json!({
        "format": "boxoffice.event/1", "id": id, "name": "Bench", "starts_at": "2026-12-24T10:00:00Z",
        "currency": "KRW", "hold_ttl_secs": ttl_secs, "seats_per_hold_max": per_hold_max,
        "categories": [{"id": "R", "name": "R seat", "price": 150000}],
        "venue": {"name": "Bench hall", "sections": sections}
    })
    .to_string()
}

/// The event of [`event_json`], built.
pub fn event(json: &str) -> Arc<EventDef> {
    Arc::new(
        EventSpec::from_json(json.as_bytes())
            .expect("bench events parse")
            .build()
            .expect("bench events are valid"),
    )
}

/// The fan of every hold the benches make.
pub fn fan() -> FanId {
    static FAN: std::sync::OnceLock<FanId> = std::sync::OnceLock::new();
    FAN.get_or_init(|| "fan-1".into()).clone()
}

/// One empty seated section of `rows` × `per_row` seats, up to 8 seats a
/// hold, 10-minute holds.
pub fn section(rows: u32, per_row: u32) -> Section {
    let def = event(&event_json("b", 1, rows, per_row, 8, 600));
    Section::new(Arc::clone(&def.sections[0]), def.limits)
}

/// Holds every third seat of the front half of `s`, so that a search for
/// 4 together walks past rows with free seats but no block of 4.
pub fn fragment_front_half(s: &mut Section) {
    let fan = fan();
    let cap = s.layout().capacity();
    let mut seat = 0;
    while seat < cap / 2 {
        let change = s
            .decide_hold_seats(&[seat], &fan, 0, 1)
            .expect("a free seat");
        s.apply(&change).expect("a decided change applies");
        seat += 3;
    }
}

/// Holds every seat of the first `rows` rows of `s` (8 seats a hold), as
/// a sale in progress leaves the front of a section: full rows that a
/// search for the best seats walks past.
pub fn fill_front_rows(s: &mut Section, rows: u32) {
    let boxoffice::domain::SectionKind::Seated(map) = &s.layout().kind else {
        panic!("a seated section")
    };
    let end = map.rows[rows as usize - 1].first + map.rows[rows as usize - 1].len;
    let seats: Vec<u32> = (0..end).collect();
    let fan = fan();
    for chunk in seats.chunks(8) {
        let change = s.decide_hold_seats(chunk, &fan, 0, 1).expect("free seats");
        s.apply(&change).expect("a decided change applies");
    }
}
