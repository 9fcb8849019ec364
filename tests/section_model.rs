//! Property test: a section, driven by random commands with clock jumps and
//! restarts (replay of the journal records), against a plain model.
//!
//! Three fans share the section: a fan's holds and bookings answer that fan
//! only (another is told there is no such hold or booking), and support
//! may cancel any booking.
//!
//! After every step: `check_invariants`, and the section and the model agree
//! on every seat's state and every answer. A restart rebuilds the section
//! from the encoded records alone, as start-up does, and must give back the
//! same section.

use std::collections::BTreeMap;
use std::sync::Arc;

use boxoffice::domain::{
    Caller, Change, Claim, CommandError, FanId, Section, SectionKind, TicketBinding,
};
use boxoffice::journal::{decode_all, encode_into, ChangeRecord, Record};
use boxoffice::layout::EventSpec;
use boxoffice::snapshot::wire::SectionSnap;
use proptest::prelude::*;

/// Section → its snapshot record → postcard bytes → back: what a
/// snapshot file does to each section.
fn snapshot_round_trip(def: &boxoffice::domain::EventDef, s: &Section) -> Section {
    let snap = SectionSnap::from_parts(&s.layout().id, &s.parts());
    let bytes = postcard::to_stdvec(&snap).unwrap();
    let mut back: SectionSnap = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, snap);
    let parts = back.take_parts(s.layout()).expect("parts fit the layout");
    Section::from_parts(Arc::clone(s.layout()), def.limits, parts).expect("a snapshot restores")
}

const TTL_MS: u64 = 60_000;
const MAX: u32 = 4;

fn event(standing: bool) -> Arc<boxoffice::domain::EventDef> {
    let section = if standing {
        serde_json::json!({"id": "F", "name": "Floor", "category": "R", "standing": {"capacity": 9}})
    } else {
        serde_json::json!({"id": "A", "name": "A", "category": "R", "rows": [
            {"label": "1", "seats": 5, "x": 0.0, "y": 0.0},
            {"label": "2", "seats": 6, "x": 0.0, "y": 1.0},
            {"label": "3", "seats": 4, "x": 0.0, "y": 2.0}]})
    };
    let spec: EventSpec = serde_json::from_value(serde_json::json!({
        "format": "boxoffice.event/1", "id": "t", "name": "T", "starts_at": "2026-12-24T10:00:00Z",
        "currency": "KRW", "hold_ttl_secs": TTL_MS / 1000, "seats_per_hold_max": MAX,
        "categories": [{"id": "R", "name": "R", "price": 1}],
        "venue": {"name": "V", "sections": [section]}
    }))
    .unwrap();
    Arc::new(spec.build().unwrap())
}

/// The fans of the test, by the index ops carry.
const FANS: [&str; 3] = ["a", "b", "c"];

fn fan(i: usize) -> FanId {
    FANS[i].into()
}

/// Each op names the fan who sends it; a cancel may come from support
/// (`None`).
#[derive(Debug, Clone)]
enum Op {
    HoldSeats(Vec<u32>, usize),
    HoldBest(u32, usize),
    Release(usize, usize),
    Confirm(usize, usize),
    Cancel(usize, Option<usize>),
    /// A wrong secret must never work.
    ConfirmWrongSecret(usize),
    /// A door scans place `.1` (0 and past the booking's places: no such
    /// ticket) of the `.0`th booking.
    CheckIn(usize, u32),
    Advance(u64),
    Restart,
}

fn op(seats: u32) -> impl Strategy<Value = Op> {
    let who = || 0..FANS.len();
    prop_oneof![
        3 => (prop::collection::vec(0..seats, 0..6), who()).prop_map(|(s, f)| Op::HoldSeats(s, f)),
        3 => (0u32..7, who()).prop_map(|(n, f)| Op::HoldBest(n, f)),
        2 => (any::<usize>(), who()).prop_map(|(i, f)| Op::Release(i, f)),
        3 => (any::<usize>(), who()).prop_map(|(i, f)| Op::Confirm(i, f)),
        1 => (any::<usize>(), prop::option::of(who())).prop_map(|(i, f)| Op::Cancel(i, f)),
        1 => any::<usize>().prop_map(Op::ConfirmWrongSecret),
        2 => (any::<usize>(), 0u32..6).prop_map(|(i, p)| Op::CheckIn(i, p)),
        2 => prop_oneof![Just(1_000u64), Just(30_000), Just(TTL_MS), Just(TTL_MS + 1)].prop_map(Op::Advance),
        1 => Just(Op::Restart),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Free,
    Held(u64),
    Sold(u64),
}

/// The model: seats as a flat array (or a standing count), holds and
/// bookings as plain maps.
#[derive(Debug, Default)]
struct Model {
    seats: Vec<Place>,
    capacity: u32,
    holds: BTreeMap<u64, (u64, Vec<u32>, u32, u64)>, // seq -> (secret, seats, quantity, expires_at)
    bookings: BTreeMap<u64, (u64, Vec<u32>, u32, bool)>, // seq -> (secret, seats, quantity, cancelled)
    expired: BTreeMap<u64, u64>,                         // hold seq -> secret
    /// Whose each hold is (live or ended), by hold; and each booking.
    hold_fans: BTreeMap<u64, usize>,
    booking_fans: BTreeMap<u64, usize>,
    /// (booking, place) -> when it checked in.
    check_ins: BTreeMap<(u64, u32), u64>,
}

impl Model {
    fn standing_used(&self) -> u32 {
        self.holds.values().map(|h| h.2).sum::<u32>()
            + self
                .bookings
                .values()
                .filter(|b| !b.3)
                .map(|b| b.2)
                .sum::<u32>()
    }
}

struct Harness {
    def: Arc<boxoffice::domain::EventDef>,
    section: Section,
    log: Vec<u8>,
    now: u64,
    model: Model,
    secret: u64,
}

impl Harness {
    fn new(standing: bool) -> Harness {
        let def = event(standing);
        let section = Section::new(Arc::clone(&def.sections[0]), def.limits);
        let mut model = Model::default();
        match &def.sections[0].kind {
            SectionKind::Seated(map) => model.seats = vec![Place::Free; map.len() as usize],
            SectionKind::Standing { capacity, .. } => model.capacity = *capacity,
        }
        Harness {
            def,
            section,
            log: Vec::new(),
            now: 1_000_000,
            model,
            secret: 1,
        }
    }

    fn commit(&mut self, change: Change) {
        encode_into(
            &Record::Section {
                event: "t".into(),
                section: self.section.layout().id.clone(),
                change: ChangeRecord::from(&change),
                idem: None,
            },
            &mut self.log,
        );
        self.section.apply(&change).expect("decided changes apply");
    }

    fn next_secret(&mut self) -> u64 {
        self.secret = self
            .secret
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.secret
    }

    /// What the actor does before every command.
    fn expire(&mut self) {
        for c in self.section.decide_expiries(self.now, usize::MAX) {
            self.commit(c);
        }
        let now = self.now;
        let due: Vec<u64> = self
            .model
            .holds
            .iter()
            .filter(|(_, h)| h.3 <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            let (secret, seats, _, _) = self.model.holds.remove(&k).unwrap();
            for s in seats {
                self.model.seats[s as usize] = Place::Free;
            }
            self.model.expired.insert(k, secret);
        }
    }

    fn nth_hold(&self, i: usize) -> Option<(u64, u64)> {
        let all: Vec<(u64, u64)> = self
            .model
            .holds
            .iter()
            .map(|(k, h)| (*k, h.0))
            .chain(self.model.expired.iter().map(|(k, s)| (*k, *s)))
            .collect();
        (!all.is_empty()).then(|| all[i % all.len()])
    }

    fn step(&mut self, op: &Op) {
        self.expire();
        match op {
            Op::HoldSeats(seats, f) => {
                let secret = self.next_secret();
                let got = self
                    .section
                    .decide_hold_seats(seats, &fan(*f), self.now, secret);
                if self.model.seats.is_empty() {
                    assert_eq!(got, Err(CommandError::StandingSection));
                    return;
                }
                let mut sorted = seats.clone();
                sorted.sort();
                sorted.dedup();
                let expected_ok = !seats.is_empty()
                    && seats.len() <= MAX as usize
                    && sorted.len() == seats.len()
                    && seats
                        .iter()
                        .all(|&s| self.model.seats[s as usize] == Place::Free);
                match got {
                    Ok(change) => {
                        assert!(expected_ok, "hold of {seats:?} accepted against the model");
                        let Change::HoldCreated { hold, .. } = change else {
                            panic!()
                        };
                        self.commit(change);
                        self.model.hold_fans.insert(hold, *f);
                        for &s in seats {
                            self.model.seats[s as usize] = Place::Held(hold);
                        }
                        self.model.holds.insert(
                            hold,
                            (secret, seats.clone(), seats.len() as u32, self.now + TTL_MS),
                        );
                    }
                    Err(e) => {
                        assert!(!expected_ok, "hold of {seats:?} refused: {e:?}");
                        if let CommandError::SeatsUnavailable(taken) = e {
                            let mut want: Vec<u32> = seats
                                .iter()
                                .copied()
                                .filter(|&s| self.model.seats[s as usize] != Place::Free)
                                .collect();
                            want.sort();
                            let mut taken = taken;
                            taken.sort();
                            assert_eq!(taken, want);
                        }
                    }
                }
            }
            Op::HoldBest(n, f) => {
                let secret = self.next_secret();
                let got = self
                    .section
                    .decide_hold_best(*n, &fan(*f), self.now, secret);
                if *n == 0 || *n > MAX {
                    assert!(matches!(
                        got,
                        Err(CommandError::Empty | CommandError::TooMany { .. })
                    ));
                    return;
                }
                if self.model.seats.is_empty() {
                    let free = self.model.capacity - self.model.standing_used();
                    match got {
                        Ok(change) => {
                            assert!(*n <= free);
                            let Change::HoldCreated {
                                hold, ref claim, ..
                            } = change
                            else {
                                panic!()
                            };
                            assert_eq!(claim, &Claim::Quantity(*n));
                            self.commit(change);
                            self.model.hold_fans.insert(hold, *f);
                            self.model
                                .holds
                                .insert(hold, (secret, vec![], *n, self.now + TTL_MS));
                        }
                        Err(e) => assert_eq!(
                            e,
                            CommandError::NotEnoughPlaces {
                                wanted: *n,
                                available: free
                            }
                        ),
                    }
                    return;
                }
                let SectionKind::Seated(map) = &self.def.sections[0].kind else {
                    panic!()
                };
                // The model's view: free runs per row, nearest the stage first.
                let mut first_row_with_block = None;
                let mut largest = 0;
                for (ri, row) in map.rows.iter().enumerate() {
                    let mut run = 0;
                    for i in row.first..row.first + row.len {
                        if self.model.seats[i as usize] == Place::Free {
                            run += 1;
                            largest = largest.max(run);
                            if run >= *n && first_row_with_block.is_none() {
                                first_row_with_block = Some(ri);
                            }
                        } else {
                            run = 0;
                        }
                    }
                }
                match (got, first_row_with_block) {
                    (Ok(change), Some(row)) => {
                        let Change::HoldCreated {
                            hold, ref claim, ..
                        } = change
                        else {
                            panic!()
                        };
                        let Claim::Seats(seats) = claim.clone() else {
                            panic!()
                        };
                        assert_eq!(seats.len() as u32, *n);
                        assert!(
                            seats.windows(2).all(|w| w[1] == w[0] + 1),
                            "adjacent: {seats:?}"
                        );
                        assert!(
                            seats.iter().all(|&s| map.row_of(s) as usize == row),
                            "nearest row first"
                        );
                        assert!(seats
                            .iter()
                            .all(|&s| self.model.seats[s as usize] == Place::Free));
                        self.commit(change);
                        self.model.hold_fans.insert(hold, *f);
                        for &s in seats.iter() {
                            self.model.seats[s as usize] = Place::Held(hold);
                        }
                        self.model
                            .holds
                            .insert(hold, (secret, seats.to_vec(), *n, self.now + TTL_MS));
                    }
                    (Err(e), None) => assert_eq!(
                        e,
                        CommandError::NoAdjacentBlock {
                            wanted: *n,
                            largest
                        }
                    ),
                    (got, want) => panic!("best {n}: got {got:?}, model says row {want:?}"),
                }
            }
            Op::Release(i, f) => {
                let Some((hold, secret)) = self.nth_hold(*i) else {
                    return;
                };
                let got = self
                    .section
                    .decide_release(hold, secret, FANS[*f], self.now);
                if self.model.hold_fans[&hold] != *f {
                    assert_eq!(got, Err(CommandError::HoldNotFound), "another fan's hold");
                    return;
                }
                if let Some((_, seats, _, _)) = self.model.holds.remove(&hold) {
                    self.commit(got.expect("live hold releases"));
                    for s in seats {
                        self.model.seats[s as usize] = Place::Free;
                    }
                } else {
                    assert!(
                        matches!(
                            got,
                            Err(CommandError::HoldExpired
                                | CommandError::HoldReleased
                                | CommandError::HoldConfirmed { .. })
                        ),
                        "{got:?}"
                    );
                }
            }
            Op::Confirm(i, _) | Op::ConfirmWrongSecret(i) => {
                let Some((hold, secret)) = self.nth_hold(*i) else {
                    return;
                };
                let wrong = matches!(op, Op::ConfirmWrongSecret(_));
                let secret = if wrong { secret ^ 1 } else { secret };
                let owner = self.model.hold_fans[&hold];
                let f = match op {
                    Op::Confirm(_, f) => *f,
                    _ => owner,
                };
                let bsecret = self.next_secret();
                let got = self.section.decide_confirm(
                    hold,
                    secret,
                    FANS[f],
                    "a@b.c".into(),
                    "p".into(),
                    self.now,
                    bsecret,
                );
                if wrong || f != owner {
                    assert_eq!(got, Err(CommandError::HoldNotFound));
                    return;
                }
                if let Some((_, seats, qty, _)) = self.model.holds.remove(&hold) {
                    let change = got.expect("live hold confirms");
                    let Change::HoldConfirmed { booking, .. } = change else {
                        panic!()
                    };
                    self.commit(change);
                    self.model.booking_fans.insert(booking, owner);
                    for &s in &seats {
                        self.model.seats[s as usize] = Place::Sold(booking);
                    }
                    self.model
                        .bookings
                        .insert(booking, (bsecret, seats, qty, false));
                } else if self.model.expired.contains_key(&hold) {
                    // Expired, or released/confirmed earlier (which the
                    // model also keeps in `expired` only when it expired).
                    assert!(got.is_err());
                } else {
                    assert!(got.is_err());
                }
            }
            Op::Cancel(i, who) => {
                let all: Vec<u64> = self.model.bookings.keys().copied().collect();
                if all.is_empty() {
                    return;
                }
                let b = all[i % all.len()];
                let (secret, seats, _, cancelled) = self.model.bookings[&b].clone();
                let by = match who {
                    Some(f) => Caller::Fan(fan(*f)),
                    None => Caller::Support,
                };
                let got = self.section.decide_cancel(b, secret, &by, self.now);
                if who.is_some_and(|f| f != self.model.booking_fans[&b]) {
                    assert_eq!(
                        got,
                        Err(CommandError::BookingNotFound),
                        "another fan's booking"
                    );
                    return;
                }
                let used = self
                    .model
                    .check_ins
                    .keys()
                    .any(|&(booking, _)| booking == b);
                if cancelled {
                    assert_eq!(got, Err(CommandError::BookingCancelled));
                } else if used && who.is_some() {
                    assert_eq!(got, Err(CommandError::BookingUsed), "a used booking");
                } else {
                    self.commit(got.expect("confirmed booking cancels"));
                    for s in seats {
                        self.model.seats[s as usize] = Place::Free;
                    }
                    self.model.bookings.get_mut(&b).unwrap().3 = true;
                }
            }
            Op::CheckIn(i, place) => {
                let all: Vec<u64> = self.model.bookings.keys().copied().collect();
                if all.is_empty() {
                    return;
                }
                let b = all[i % all.len()];
                let (_, seats, quantity, cancelled) = self.model.bookings[&b].clone();
                let seat = (!seats.is_empty()).then(|| {
                    let k = (*place as usize).clamp(1, seats.len());
                    seats[k - 1]
                });
                // (Which booking a ticket names has a test of its own.)
                let any = TicketBinding::Unbound {
                    confirmed_before_ms: u64::MAX,
                };
                let got = self.section.decide_check_in(b, *place, seat, any, self.now);
                let key = (b, *place);
                if !(1..=quantity).contains(place) {
                    assert_eq!(got, Err(CommandError::TicketNotFound));
                } else if cancelled {
                    assert_eq!(got, Err(CommandError::TicketCancelled));
                } else if let Some(&at_ms) = self.model.check_ins.get(&key) {
                    assert_eq!(got, Err(CommandError::AlreadyCheckedIn { at_ms }));
                } else {
                    self.commit(got.expect("a sold place checks in"));
                    self.model.check_ins.insert(key, self.now);
                }
            }
            Op::Advance(ms) => {
                self.now += ms;
                // The sweep timer, as the actor runs it.
                self.expire();
            }
            Op::Restart => {
                let mut replayed = Section::new(Arc::clone(&self.def.sections[0]), self.def.limits);
                for r in decode_all(&self.log).expect("the log decodes") {
                    let Record::Section { change, .. } = r else {
                        panic!()
                    };
                    replayed
                        .apply(&Change::from(change))
                        .expect("replay applies");
                }
                assert_eq!(replayed.seat_states(), self.section.seat_states());
                assert_eq!(replayed.counts(), self.section.counts());
                let mut a: Vec<_> = replayed.holds().cloned().collect();
                let mut b: Vec<_> = self.section.holds().cloned().collect();
                a.sort_by_key(|h| h.seq);
                b.sort_by_key(|h| h.seq);
                assert_eq!(a, b);
                let mut a: Vec<_> = replayed.bookings().cloned().collect();
                let mut b: Vec<_> = self.section.bookings().cloned().collect();
                a.sort_by_key(|h| h.seq);
                b.sort_by_key(|h| h.seq);
                assert_eq!(a, b);
                assert_eq!(replayed.parts(), self.section.parts());
                // A snapshot of the same state rebuilds it exactly too.
                let restored = snapshot_round_trip(&self.def, &self.section);
                assert_eq!(restored.parts(), self.section.parts());
                assert_eq!(restored.seat_states(), self.section.seat_states());
                assert_eq!(restored.counts(), self.section.counts());
                self.section = replayed;
            }
        }
    }

    fn check(&self) {
        self.section.check_invariants();
        let counts = self.section.counts().total;
        if self.model.seats.is_empty() {
            let held: u32 = self.model.holds.values().map(|h| h.2).sum();
            let sold: u32 = self
                .model
                .bookings
                .values()
                .filter(|b| !b.3)
                .map(|b| b.2)
                .sum();
            assert_eq!((counts.held, counts.sold), (held, sold));
            assert_eq!(counts.free + counts.held + counts.sold, self.model.capacity);
        } else {
            let states: String = self
                .model
                .seats
                .iter()
                .map(|p| match p {
                    Place::Free => 'f',
                    Place::Held(_) => 'h',
                    Place::Sold(_) => 's',
                })
                .collect();
            assert_eq!(self.section.seat_states(), states);
            // Invariant 1: no seat in two live holds or bookings.
            let mut owners = vec![0u32; self.model.seats.len()];
            for h in self.section.holds() {
                if let Claim::Seats(s) = &h.claim {
                    s.iter().for_each(|&i| owners[i as usize] += 1);
                }
            }
            for b in self.section.bookings() {
                if let (Claim::Seats(s), true) = (&b.claim, b.status.is_confirmed()) {
                    s.iter().for_each(|&i| owners[i as usize] += 1);
                }
            }
            assert!(owners.iter().all(|&n| n <= 1), "a seat with two owners");
        }
        // Every place checks in once, when the model says.
        for (&(b, place), &at) in &self.model.check_ins {
            assert_eq!(self.section.checked_in(b, place), Some(at));
        }
        assert_eq!(
            self.section.parts().check_ins.len(),
            self.model.check_ins.len()
        );
        // Invariant 3: nothing live past its expiry.
        assert!(self.section.holds().all(|h| h.expires_at_ms > self.now));
        // Every hold and booking is its fan's.
        for h in self.section.holds() {
            assert_eq!(&*h.fan, FANS[self.model.hold_fans[&h.seq]]);
        }
        for b in self.section.bookings() {
            assert_eq!(&*b.fan, FANS[self.model.booking_fans[&b.seq]]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn seated_section_matches_model(ops in prop::collection::vec(op(15), 1..80)) {
        let mut h = Harness::new(false);
        for op in &ops {
            h.step(op);
            h.check();
        }
    }

    #[test]
    fn standing_section_matches_model(ops in prop::collection::vec(op(1), 1..80)) {
        let mut h = Harness::new(true);
        for op in &ops {
            h.step(op);
            h.check();
        }
    }
}
