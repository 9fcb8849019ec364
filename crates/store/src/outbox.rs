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
//! entry points at its booking (shared with the section), its section's
//! name (shared by the section's keys), its event and its layout, and
//! copies nothing.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::domain::{
    Booking, BookingStatus, Change, EventDef, Section, SectionLayout, SectionName,
};

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
        match (self.key.kind, self.booking.status) {
            (MailKind::Cancellation, BookingStatus::Cancelled { at_ms }) => at_ms,
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

/// One email owed: what to render (less the key, which the outbox keys it
/// by) and where its sending stands.
#[derive(Debug, Clone)]
pub struct Slot {
    pub booking: Arc<Booking>,
    pub def: Arc<EventDef>,
    pub layout: Arc<SectionLayout>,
    pub state: SlotState,
    pub attempts: u32,
    pub next_at_ms: u64,
    pub last_error: Option<String>,
}

impl Slot {
    fn new(entry: MailEntry, state: SlotState, attempts: u32, next_at_ms: u64) -> Slot {
        Slot {
            booking: entry.booking,
            def: entry.def,
            layout: entry.layout,
            state,
            attempts,
            next_at_ms,
            last_error: None,
        }
    }

    pub fn entry(&self, key: &MailKey) -> MailEntry {
        MailEntry {
            key: key.clone(),
            booking: Arc::clone(&self.booking),
            def: Arc::clone(&self.def),
            layout: Arc::clone(&self.layout),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryError {
    #[error("no such outbox entry (it may have been sent)")]
    NotFound,
    #[error("the entry is not a dead letter; it is still being tried")]
    NotDead,
}

#[derive(Debug, Default)]
pub struct Outbox {
    slots: FxHashMap<MailKey, Slot>,
    /// (next_at_ms, key) of pending slots; stale entries are skipped.
    schedule: BinaryHeap<Reverse<(u64, MailKey)>>,
    dead: usize,
}

impl Outbox {
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// Queues a new entry, due at once. A second add of the same key (a
    /// replayed change) keeps the first.
    pub fn add(&mut self, entry: MailEntry, now_ms: u64) {
        if self.slots.contains_key(&entry.key) {
            return;
        }
        let key = entry.key.clone();
        self.schedule.push(Reverse((now_ms, key.clone())));
        self.slots
            .insert(key, Slot::new(entry, SlotState::Pending, 0, now_ms));
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
        if self.slots.contains_key(&entry.key) {
            return;
        }
        let key = entry.key.clone();
        let state = if dead {
            self.dead += 1;
            SlotState::Dead
        } else {
            self.schedule.push(Reverse((next_at_ms, key.clone())));
            SlotState::Pending
        };
        let mut slot = Slot::new(entry, state, attempts, next_at_ms);
        slot.last_error = last_error;
        self.slots.insert(key, slot);
    }

    /// Every slot, in key order.
    pub fn slots(&self) -> Vec<(&MailKey, &Slot)> {
        let mut all: Vec<(&MailKey, &Slot)> = self.slots.iter().collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all
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
            let Some(Reverse((at, key))) = self.schedule.pop() else {
                break;
            };
            if let Some(slot) = self.slots.get_mut(&key) {
                if slot.state == SlotState::Pending && slot.next_at_ms == at {
                    slot.state = SlotState::Sending;
                    out.push(slot.entry(&key));
                }
            }
        }
        out
    }

    /// Applies what happened to `key`. Unknown keys are ignored: the
    /// outcome of an entry that is gone changes nothing.
    pub fn apply(&mut self, key: &MailKey, outcome: &MailOutcome) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let was_dead = slot.state == SlotState::Dead;
        match outcome {
            MailOutcome::Sent { .. } => {
                self.slots.remove(key);
            }
            MailOutcome::Failed {
                attempts,
                error,
                next_at_ms,
            } => {
                slot.state = SlotState::Pending;
                slot.attempts = *attempts;
                slot.last_error = Some(error.clone());
                slot.next_at_ms = *next_at_ms;
                self.schedule.push(Reverse((*next_at_ms, key.clone())));
            }
            MailOutcome::Dead { attempts, error } => {
                slot.state = SlotState::Dead;
                slot.attempts = *attempts;
                slot.last_error = Some(error.clone());
            }
            MailOutcome::Requeued { at_ms } => {
                slot.state = SlotState::Pending;
                slot.attempts = 0;
                slot.next_at_ms = *at_ms;
                self.schedule.push(Reverse((*at_ms, key.clone())));
            }
        }
        let is_dead = self
            .slots
            .get(key)
            .is_some_and(|s| s.state == SlotState::Dead);
        match (was_dead, is_dead) {
            (false, true) => self.dead += 1,
            (true, false) => self.dead -= 1,
            _ => {}
        }
    }

    /// Checks that `key` may be requeued.
    pub fn check_retry(&self, key: &MailKey) -> Result<(), RetryError> {
        match self.slots.get(key) {
            None => Err(RetryError::NotFound),
            Some(s) if s.state != SlotState::Dead => Err(RetryError::NotDead),
            Some(_) => Ok(()),
        }
    }

    pub fn get(&self, key: &MailKey) -> Option<&Slot> {
        self.slots.get(key)
    }

    /// Entries not yet sent, dead ones included.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn dead_len(&self) -> usize {
        self.dead
    }

    /// Slots in key order, optionally only dead (or only live) ones, at
    /// most `limit`.
    pub fn list(&self, dead: Option<bool>, limit: usize) -> Vec<(&MailKey, &Slot)> {
        let mut found: Vec<(&MailKey, &Slot)> = self
            .slots
            .iter()
            .filter(|(_, s)| dead.is_none_or(|d| (s.state == SlotState::Dead) == d))
            .collect();
        if found.len() > limit && limit > 0 {
            found.select_nth_unstable_by(limit - 1, |a, b| a.0.cmp(b.0));
        }
        found.truncate(limit);
        found.sort_unstable_by(|a, b| a.0.cmp(b.0));
        found
    }

    /// Recounts and panics on disagreement (tests, debug builds).
    pub fn check_invariants(&self) {
        let dead = self
            .slots
            .values()
            .filter(|s| s.state == SlotState::Dead)
            .count();
        assert_eq!(dead, self.dead, "dead-letter count");
        for (k, s) in &self.slots {
            assert_eq!(k.booking, s.booking.seq);
            if s.state == SlotState::Pending {
                assert!(
                    self.schedule
                        .iter()
                        .any(|Reverse((at, key))| key == k && *at == s.next_at_ms),
                    "pending {k} is scheduled"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BookingStatus, Claim, Limits, SectionKind};

    fn entry(booking: u64) -> MailEntry {
        let layout = Arc::new(SectionLayout {
            id: "F".into(),
            name: "Floor".into(),
            kind: SectionKind::Standing {
                capacity: 10,
                category: 0,
                area: None,
            },
            category_count: 1,
        });
        MailEntry {
            key: MailKey::new("demo", "F", booking, MailKind::Confirmation),
            booking: Arc::new(Booking {
                seq: booking,
                secret: 1,
                hold_seq: 0,
                fan: "fan".into(),
                claim: Claim::Quantity(1),
                email: "a@b.c".into(),
                lang: crate::domain::Lang::En,
                payment_ref: "p".into(),
                confirmed_at_ms: 0,
                status: BookingStatus::Confirmed,
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
}
