//! The outbox: which confirmation and cancellation emails still have to be
//! sent, and which gave up (dead letters). Pure state, no I/O.
//!
//! An entry is born from the journal record of the booking change itself
//! (a `HoldConfirmed` or `BookingCancelled`), so there is never a durable
//! booking without its queued email, nor an email for a change that was
//! not durable. What happens to it afterwards (sent, failed and when to try
//! again, dead, requeued by an operator) is a [`MailOutcome`], journaled
//! and then applied here, live and on replay alike.
//!
//! Bounded by construction: one entry per booking change, and bookings are
//! bounded by the seats on sale. Small by construction too, since a sale
//! can leave a hundred thousand emails waiting for a slow mail server: an
//! entry is 24 bytes in one hash table (its booking, shared with the
//! section; when it is due; its attempts), its section's name, event and
//! layout are kept once per section, and the rare last error aside.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::sync::Arc;

use hashbrown::HashTable;
use rustc_hash::FxHashMap;

use crate::domain::{Booking, Change, EventDef, Section, SectionLayout, SectionName};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MailKind {
    Confirmation,
    Cancellation,
}

impl MailKind {
    /// The email `change` owes its booking, if any: decided here, once,
    /// for the live path and for replay.
    pub fn of(change: &Change) -> Option<(u64, MailKind)> {
        match change {
            Change::HoldConfirmed { booking, .. } => Some((*booking, MailKind::Confirmation)),
            Change::BookingCancelled { booking, .. } => Some((*booking, MailKind::Cancellation)),
            Change::HoldCreated { .. }
            | Change::HoldReleased { .. }
            | Change::HoldExpired { .. }
            | Change::TicketCheckedIn { .. } => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Confirmation => "confirmation",
            MailKind::Cancellation => "cancellation",
        }
    }
}

/// Whether an address is one the mailer can send to, as SMTP takes it:
/// what the API checks before a booking takes it, and what a snapshot's
/// bookings must hold.
pub fn can_send_to(email: &str) -> bool {
    email.parse::<lettre::Address>().is_ok()
}

/// Names one email: `demo.A.b2a.confirmation` (the booking number in hex,
/// as in booking ids). Carries no secret, so it is safe in logs and admin
/// listings. Ordered by event, section, booking, kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MailKey {
    pub name: Arc<SectionName>,
    pub booking: u64,
    pub kind: MailKind,
}

impl fmt::Display for MailKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.b{:x}.{}",
            self.name.event,
            self.name.section,
            self.booking,
            self.kind.as_str()
        )
    }
}

impl MailKey {
    pub fn new(event: &str, section: &str, booking: u64, kind: MailKind) -> MailKey {
        MailKey {
            name: Arc::new(SectionName::new(event, section)),
            booking,
            kind,
        }
    }

    pub fn event(&self) -> &str {
        &self.name.event
    }

    pub fn section(&self) -> &str {
        &self.name.section
    }

    /// Parses the `Display` form; `None` for anything else.
    pub fn parse(s: &str) -> Option<MailKey> {
        let mut parts = s.split('.');
        let (event, section, booking, kind) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some()
            || !crate::domain::is_valid_name(event)
            || !crate::domain::is_valid_name(section)
        {
            return None;
        }
        let digits = booking.strip_prefix('b')?;
        if digits.is_empty()
            || digits.len() > 16
            || !digits
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        let kind = match kind {
            "confirmation" => MailKind::Confirmation,
            "cancellation" => MailKind::Cancellation,
            _ => return None,
        };
        Some(MailKey::new(
            event,
            section,
            u64::from_str_radix(digits, 16).ok()?,
            kind,
        ))
    }
}

/// Everything needed to render one email.
#[derive(Debug, Clone)]
pub struct MailEntry {
    pub key: MailKey,
    /// The booking as its change left it, shared with the section that
    /// owns it (a booking cancelled meanwhile is copied by the section, so
    /// this stays as it was).
    pub booking: Arc<Booking>,
    pub def: Arc<EventDef>,
    pub layout: Arc<SectionLayout>,
}

impl MailEntry {
    /// The email `change`, just applied to `section` (of event `def`,
    /// named `name`), owes: live once the change is durable, and on
    /// replay, so both queue the same email.
    pub fn owed(
        def: &Arc<EventDef>,
        name: &Arc<SectionName>,
        section: &Section,
        change: &Change,
    ) -> Option<MailEntry> {
        let (booking, kind) = MailKind::of(change)?;
        let booking = section.booking_shared(booking)?;
        Some(MailEntry::new(def, name, section.layout(), booking, kind))
    }

    pub fn new(
        def: &Arc<EventDef>,
        name: &Arc<SectionName>,
        layout: &Arc<SectionLayout>,
        booking: &Arc<Booking>,
        kind: MailKind,
    ) -> MailEntry {
        MailEntry {
            key: MailKey {
                name: Arc::clone(name),
                booking: booking.seq,
                kind,
            },
            booking: Arc::clone(booking),
            def: Arc::clone(def),
            layout: Arc::clone(layout),
        }
    }

    /// When the booking was confirmed (or cancelled): the email's Date, so
    /// that a resend is the same message.
    pub fn at_ms(&self) -> u64 {
        match (self.key.kind, self.booking.status.cancelled_at()) {
            (MailKind::Cancellation, Some(at_ms)) => at_ms,
            _ => self.booking.confirmed_at_ms,
        }
    }
}

/// What happened to an entry; journaled, then applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailOutcome {
    /// The server's final 250 arrived.
    Sent { at_ms: u64 },
    /// Attempt `attempts` failed; try again at `next_at_ms`.
    Failed {
        attempts: u32,
        error: String,
        next_at_ms: u64,
    },
    /// Gave up after `attempts`; waits for an operator.
    Dead { attempts: u32, error: String },
    /// An operator asked for a dead letter to be tried again.
    Requeued { at_ms: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Waiting for `next_at_ms`.
    Pending,
    /// A send is in flight (never journaled: after a crash it is pending).
    Sending,
    Dead,
}

/// One email owed, as read: what to render (less the key) and where its
/// sending stands. Borrowed from the outbox, which keeps it smaller.
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    pub booking: &'a Arc<Booking>,
    pub def: &'a Arc<EventDef>,
    pub layout: &'a Arc<SectionLayout>,
    pub state: SlotState,
    pub attempts: u32,
    pub next_at_ms: u64,
    pub last_error: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryError {
    #[error("no such outbox entry (it may have been sent)")]
    NotFound,
    #[error("the entry is not a dead letter; it is still being tried")]
    NotDead,
}

/// The section an entry's booking is of: its name, event and layout, kept
/// once and named by its index in `Outbox::origins`.
#[derive(Debug)]
struct Origin {
    name: Arc<SectionName>,
    def: Arc<EventDef>,
    layout: Arc<SectionLayout>,
}

/// An entry's key inside the outbox: its origin's index for the section's
/// name (16 bytes where a `MailKey` with its `Arc` is 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Id {
    origin: u32,
    booking: u64,
    kind: MailKind,
}

/// One email owed, as kept: 24 bytes, since a sale can leave a hundred
/// thousand waiting (the booking is the section's own, shared; its last
/// error, rare, is kept aside in `Outbox::errors`).
#[derive(Debug)]
struct Owed {
    booking: Arc<Booking>,
    next_at_ms: u64,
    origin: u32,
    /// Attempts so far; the mailer gives up long before 65,535
    /// (`--mail-attempts-max` is at most 1,000).
    attempts: u16,
    kind: MailKind,
    state: SlotState,
}

impl Owed {
    fn id(&self) -> Id {
        Id {
            origin: self.origin,
            booking: self.booking.seq,
            kind: self.kind,
        }
    }
}

fn hash(id: &Id) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(id)
}

#[derive(Debug, Default)]
pub struct Outbox {
    origins: Vec<Origin>,
    origin_of: FxHashMap<Arc<SectionName>, u32>,
    owed: HashTable<Owed>,
    /// (next_at_ms, id) of pending entries; stale ones are skipped.
    schedule: BinaryHeap<Reverse<(u64, Id)>>,
    /// The last error of each entry that has failed.
    errors: FxHashMap<Id, Box<str>>,
    dead: usize,
}

impl Outbox {
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// The id of `key`, if its section is known here.
    fn id(&self, key: &MailKey) -> Option<Id> {
        Some(Id {
            origin: *self.origin_of.get(&*key.name)?,
            booking: key.booking,
            kind: key.kind,
        })
    }

    fn key(&self, id: Id) -> MailKey {
        MailKey {
            name: Arc::clone(&self.origins[id.origin as usize].name),
            booking: id.booking,
            kind: id.kind,
        }
    }

    /// The id `entry` gets, its section's origin kept (once) if new. An
    /// event's definition never changes, so the first entry of a section
    /// names its event and layout for all.
    fn intern(&mut self, entry: &MailEntry) -> Id {
        let origin = match self.origin_of.get(&*entry.key.name) {
            Some(&o) => o,
            None => {
                let o = u32::try_from(self.origins.len()).expect("fewer than 2^32 sections");
                self.origins.push(Origin {
                    name: Arc::clone(&entry.key.name),
                    def: Arc::clone(&entry.def),
                    layout: Arc::clone(&entry.layout),
                });
                self.origin_of.insert(Arc::clone(&entry.key.name), o);
                o
            }
        };
        Id {
            origin,
            booking: entry.key.booking,
            kind: entry.key.kind,
        }
    }

    fn find(&self, id: Id) -> Option<&Owed> {
        self.owed.find(hash(&id), |o| o.id() == id)
    }

    fn slot<'a>(&'a self, owed: &'a Owed, id: Id) -> Slot<'a> {
        let origin = &self.origins[owed.origin as usize];
        Slot {
            booking: &owed.booking,
            def: &origin.def,
            layout: &origin.layout,
            state: owed.state,
            attempts: u32::from(owed.attempts),
            next_at_ms: owed.next_at_ms,
            last_error: self.errors.get(&id).map(|e| &**e),
        }
    }

    fn insert(&mut self, entry: MailEntry, state: SlotState, attempts: u32, next_at_ms: u64) {
        let id = self.intern(&entry);
        if self.find(id).is_some() {
            return;
        }
        if state == SlotState::Pending {
            self.schedule.push(Reverse((next_at_ms, id)));
        }
        self.owed.insert_unique(
            hash(&id),
            Owed {
                booking: entry.booking,
                next_at_ms,
                origin: id.origin,
                attempts: u16::try_from(attempts).unwrap_or(u16::MAX),
                kind: id.kind,
                state,
            },
            |o| hash(&o.id()),
        );
    }

    /// Queues a new entry, due at once. A second add of the same key (a
    /// replayed change) keeps the first.
    pub fn add(&mut self, entry: MailEntry, now_ms: u64) {
        self.insert(entry, SlotState::Pending, 0, now_ms);
    }

    /// Puts back an entry as a snapshot kept it (a sending entry is kept
    /// as pending: its send may not have finished).
    pub fn restore(
        &mut self,
        entry: MailEntry,
        attempts: u32,
        next_at_ms: u64,
        last_error: Option<String>,
        dead: bool,
    ) {
        let id = self.intern(&entry);
        if self.find(id).is_some() {
            return;
        }
        let state = if dead {
            self.dead += 1;
            SlotState::Dead
        } else {
            SlotState::Pending
        };
        if let Some(error) = last_error {
            self.errors.insert(id, error.into_boxed_str());
        }
        self.insert(entry, state, attempts, next_at_ms);
    }

    /// Gives back what growing left unused, once a replay or restore has
    /// added everything it owed.
    pub fn shrink_to_fit(&mut self) {
        self.owed.shrink_to_fit(|o| hash(&o.id()));
        self.schedule.shrink_to_fit();
        self.errors.shrink_to_fit();
    }

    /// Every entry, in key order.
    pub fn slots(&self) -> Vec<(MailKey, Slot<'_>)> {
        self.list(None, usize::MAX)
    }

    /// When the entry due first is due (it may be stale: an entry sent or
    /// rescheduled since leaves its old time until `take_due` skips it).
    pub fn oldest_due_at(&self) -> Option<u64> {
        self.schedule.peek().map(|Reverse((at, _))| *at)
    }

    /// Up to `max` pending entries whose time has come, now marked as
    /// sending, oldest due first.
    pub fn take_due(&mut self, now_ms: u64, max: usize) -> Vec<MailEntry> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(Reverse((at, _))) = self.schedule.peek() else {
                break;
            };
            if *at > now_ms {
                break;
            }
            let Some(Reverse((at, id))) = self.schedule.pop() else {
                break;
            };
            let Some(owed) = self.owed.find_mut(hash(&id), |o| o.id() == id) else {
                continue;
            };
            if owed.state == SlotState::Pending && owed.next_at_ms == at {
                owed.state = SlotState::Sending;
                let booking = Arc::clone(&owed.booking);
                let origin = &self.origins[id.origin as usize];
                out.push(MailEntry {
                    key: MailKey {
                        name: Arc::clone(&origin.name),
                        booking: id.booking,
                        kind: id.kind,
                    },
                    booking,
                    def: Arc::clone(&origin.def),
                    layout: Arc::clone(&origin.layout),
                });
            }
        }
        out
    }

    /// Applies what happened to `key`. Unknown keys are ignored: the
    /// outcome of an entry that is gone changes nothing.
    pub fn apply(&mut self, key: &MailKey, outcome: &MailOutcome) {
        let Some(id) = self.id(key) else {
            return;
        };
        let Some(was_dead) = self.find(id).map(|o| o.state == SlotState::Dead) else {
            return;
        };
        let attempts = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
        if let MailOutcome::Sent { .. } = outcome {
            if let Ok(found) = self.owed.find_entry(hash(&id), |o| o.id() == id) {
                found.remove();
            }
            self.errors.remove(&id);
        } else if let Some(owed) = self.owed.find_mut(hash(&id), |o| o.id() == id) {
            match outcome {
                MailOutcome::Sent { .. } => {}
                MailOutcome::Failed {
                    attempts: n,
                    error,
                    next_at_ms,
                } => {
                    owed.state = SlotState::Pending;
                    owed.attempts = attempts(*n);
                    owed.next_at_ms = *next_at_ms;
                    self.errors.insert(id, error.as_str().into());
                    self.schedule.push(Reverse((*next_at_ms, id)));
                }
                MailOutcome::Dead { attempts: n, error } => {
                    owed.state = SlotState::Dead;
                    owed.attempts = attempts(*n);
                    self.errors.insert(id, error.as_str().into());
                }
                MailOutcome::Requeued { at_ms } => {
                    owed.state = SlotState::Pending;
                    owed.attempts = 0;
                    owed.next_at_ms = *at_ms;
                    self.schedule.push(Reverse((*at_ms, id)));
                }
            }
        }
        let is_dead = self.find(id).is_some_and(|o| o.state == SlotState::Dead);
        match (was_dead, is_dead) {
            (false, true) => self.dead += 1,
            (true, false) => self.dead -= 1,
            _ => {}
        }
    }

    /// Checks that `key` may be requeued.
    pub fn check_retry(&self, key: &MailKey) -> Result<(), RetryError> {
        match self.id(key).and_then(|id| self.find(id)) {
            None => Err(RetryError::NotFound),
            Some(o) if o.state != SlotState::Dead => Err(RetryError::NotDead),
            Some(_) => Ok(()),
        }
    }

    pub fn get(&self, key: &MailKey) -> Option<Slot<'_>> {
        let id = self.id(key)?;
        Some(self.slot(self.find(id)?, id))
    }

    /// Entries not yet sent, dead ones included.
    pub fn len(&self) -> usize {
        self.owed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owed.is_empty()
    }

    pub fn dead_len(&self) -> usize {
        self.dead
    }

    /// Entries in key order, optionally only dead (or only live) ones, at
    /// most `limit`.
    pub fn list(&self, dead: Option<bool>, limit: usize) -> Vec<(MailKey, Slot<'_>)> {
        let mut found: Vec<(MailKey, &Owed)> = self
            .owed
            .iter()
            .filter(|o| dead.is_none_or(|d| (o.state == SlotState::Dead) == d))
            .map(|o| (self.key(o.id()), o))
            .collect();
        if found.len() > limit && limit > 0 {
            found.select_nth_unstable_by(limit - 1, |a, b| a.0.cmp(&b.0));
        }
        found.truncate(limit);
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        found
            .into_iter()
            .map(|(key, o)| (key, self.slot(o, o.id())))
            .collect()
    }

    /// Recounts and panics on disagreement (tests, debug builds).
    pub fn check_invariants(&self) {
        let dead = self
            .owed
            .iter()
            .filter(|o| o.state == SlotState::Dead)
            .count();
        assert_eq!(dead, self.dead, "dead-letter count");
        assert_eq!(
            self.origins.len(),
            self.origin_of.len(),
            "one origin a name"
        );
        for o in &self.owed {
            let id = o.id();
            assert_eq!(self.find(id).map(Owed::id), Some(id), "found by its id");
            assert_eq!(self.id(&self.key(id)), Some(id), "its key names it");
            if o.state == SlotState::Pending {
                assert!(
                    self.schedule
                        .iter()
                        .any(|Reverse((at, s))| *s == id && *at == o.next_at_ms),
                    "pending {} is scheduled",
                    self.key(id)
                );
            }
        }
        for id in self.errors.keys() {
            assert!(self.find(*id).is_some(), "an error of an entry owed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BookingStatus, BookingTexts, Claim, Limits, SectionKind};

    fn entry(booking: u64) -> MailEntry {
        entry_of("F", booking)
    }

    fn entry_of(section: &str, booking: u64) -> MailEntry {
        let layout = Arc::new(SectionLayout {
            id: section.into(),
            name: "Floor".into(),
            kind: SectionKind::Standing {
                capacity: 10,
                category: 0,
                area: None,
            },
            category_count: 1,
        });
        MailEntry {
            key: MailKey::new("demo", section, booking, MailKind::Confirmation),
            booking: Arc::new(Booking {
                seq: booking,
                secret: 1,
                hold_seq: 0,
                fan: "fan".into(),
                claim: Claim::Quantity(1),
                texts: BookingTexts::new("a@b.c", crate::domain::Lang::En, "p"),
                confirmed_at_ms: 0,
                status: BookingStatus::CONFIRMED,
            }),
            def: Arc::new(EventDef {
                id: "demo".into(),
                name: "Demo".into(),
                starts_at: "2026-12-24T10:00:00Z".into(),
                venue_name: "Hall".into(),
                time_zone: None,
                currency: "KRW".into(),
                categories: vec![],
                limits: Limits {
                    seats_per_hold_max: 4,
                    hold_ttl_ms: 1,
                    tickets_per_fan_max: None,
                },
                sections: vec![Arc::clone(&layout)],
                stage: None,
            }),
            layout,
        }
    }

    #[test]
    fn keys_round_trip_and_refuse_garbage() {
        let k = entry(42).key;
        assert_eq!(k.to_string(), "demo.F.b2a.confirmation");
        assert_eq!(MailKey::parse("demo.F.b2a.confirmation"), Some(k));
        for bad in [
            "",
            "demo.F.42.confirmation",
            "demo.F.b.confirmation",
            "demo.F.b42.invoice",
            "demo.F.b42.confirmation.x",
            "de mo.F.b42.confirmation",
            "demo.F.b99999999999999999.confirmation",
            "demo.F.bA.confirmation",
        ] {
            assert_eq!(MailKey::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_entry_is_sent_retried_dead_and_requeued() {
        let mut o = Outbox::new();
        o.add(entry(1), 100);
        o.add(entry(1), 200); // a replayed duplicate changes nothing
        o.add(entry(2), 150);
        assert_eq!(o.take_due(99, 8).len(), 0);
        let due: Vec<u64> = o.take_due(150, 8).iter().map(|e| e.key.booking).collect();
        assert_eq!(due, [1, 2]);
        // In flight: not handed out twice.
        assert!(o.take_due(10_000, 8).is_empty());
        o.apply(&entry(1).key, &MailOutcome::Sent { at_ms: 0 });
        o.apply(
            &entry(2).key,
            &MailOutcome::Failed {
                attempts: 1,
                error: "451".into(),
                next_at_ms: 500,
            },
        );
        o.check_invariants();
        assert_eq!(o.len(), 1);
        assert!(o.take_due(499, 8).is_empty());
        assert_eq!(o.take_due(500, 8).len(), 1);
        assert_eq!(o.check_retry(&entry(2).key), Err(RetryError::NotDead));
        o.apply(
            &entry(2).key,
            &MailOutcome::Dead {
                attempts: 2,
                error: "550".into(),
            },
        );
        assert_eq!(o.dead_len(), 1);
        assert!(o.take_due(u64::MAX, 8).is_empty());
        assert_eq!(o.list(Some(true), 10).len(), 1);
        assert_eq!(o.list(Some(false), 10).len(), 0);
        assert_eq!(o.check_retry(&entry(2).key), Ok(()));
        assert_eq!(o.check_retry(&entry(1).key), Err(RetryError::NotFound));
        o.apply(&entry(2).key, &MailOutcome::Requeued { at_ms: 900 });
        o.check_invariants();
        assert_eq!(o.dead_len(), 0);
        let again = o.take_due(900, 8);
        assert_eq!(again.len(), 1);
        assert_eq!(o.get(&entry(2).key).unwrap().attempts, 0);
        // Outcomes for entries that are gone are ignored.
        o.apply(&entry(1).key, &MailOutcome::Sent { at_ms: 0 });
        o.check_invariants();
    }

    #[test]
    fn an_entry_is_small_and_found_by_any_key_that_names_it() {
        // What a hundred thousand owed emails cost: the entry itself
        // (its booking is the section's), plus its hash slot.
        assert!(
            std::mem::size_of::<Owed>() <= 24,
            "{}",
            std::mem::size_of::<Owed>()
        );
        let mut o = Outbox::new();
        for (section, booking) in [("B", 2), ("A", 7), ("B", 1), ("A", 3)] {
            o.add(entry_of(section, booking), 10);
        }
        o.restore(entry_of("C", 1), 3, 50, Some("451 try later".into()), true);
        o.check_invariants();
        assert_eq!(o.origins.len(), 3, "one origin a section");
        let keys: Vec<String> = o.slots().iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(
            keys,
            [
                "demo.A.b3.confirmation",
                "demo.A.b7.confirmation",
                "demo.B.b1.confirmation",
                "demo.B.b2.confirmation",
                "demo.C.b1.confirmation",
            ]
        );
        // A key parsed from text (its own Arc) finds the same entry.
        let parsed = MailKey::parse("demo.C.b1.confirmation").unwrap();
        let slot = o.get(&parsed).unwrap();
        assert_eq!(
            (
                slot.state,
                slot.attempts,
                slot.last_error,
                slot.layout.id.as_str()
            ),
            (SlotState::Dead, 3, Some("451 try later"), "C")
        );
        assert_eq!(
            o.get(&MailKey::parse("demo.Z.b1.confirmation").unwrap())
                .map(|s| s.attempts),
            None
        );
        assert_eq!(o.check_retry(&parsed), Ok(()));
        o.apply(&parsed, &MailOutcome::Sent { at_ms: 60 });
        o.check_invariants();
        assert!(o.get(&parsed).is_none());
        assert!(o.errors.is_empty(), "a sent entry's error goes with it");
        let due: Vec<String> = o
            .take_due(10, 10)
            .iter()
            .map(|e| e.key.to_string())
            .collect();
        assert_eq!(due.len(), 4);
        o.shrink_to_fit();
        o.check_invariants();
    }
}
