//! The section actor: applies commands to one `Section`, journals the
//! changes, and replies once they are durable.
//!
//! Every change goes one way: [`Command`] → decide (the domain validates
//! it against the section and returns a `Change`) → apply (memory moves)
//! → journal (the record is queued for the next group commit, with the
//! answer) → once durable, the journal's flusher hands the answer to the
//! request's own channel and the email the change owes, if any, to the
//! mailer. Expiries take the same path with no answer: nobody waits for
//! them.
//!
//! The actor does not wait for durability: it moves on to the next
//! command while earlier changes are being flushed, which is what lets
//! many fans share one group commit, and the answer goes from the flusher
//! straight to the HTTP worker that asked, not back through this actor's
//! thread. Later commands see earlier changes before they are durable;
//! that is safe because the journal is written in order, so an answer
//! that depends on an earlier change is released only after that change
//! is durable too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::fan_bookings::FanBookings;
use super::fan_holds::HoldNote;
use super::fan_lists::{self, FanRef};
use super::ledger::FanLedger;
use super::payments::PaymentRefs;
use super::views::{SeatBoard, SeatNote, FREE, HELD, SOLD};
use crate::clock::Clock;
use crate::domain::{
    Addressee, BookingRead, Caller, Change, Claim, CommandError, EventDef, FanId, Hold, HoldView,
    Outcome, PlacesMoved, Seats, Section, SectionName, TicketBinding,
};
use crate::journal::{encode, IdemTag, Journal, Note, Record};
use crate::mail::{Enqueue, MailEntry};

/// Most expiries one sweep step journals. A step runs before every
/// command and on every tick; when more are due, the next step is a
/// message to the actor itself, so the fans' messages go in between.
pub const EXPIRIES_PER_STEP_MAX: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SectionError {
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The section's inbox or the journal queue is full: try again soon.
    #[error("section is overloaded")]
    Overloaded,
    /// The journal failed or is shutting down: nothing can be made durable.
    #[error("section is unavailable")]
    Unavailable,
}

/// Counters a section keeps for metrics, read without a message to the
/// actor. (What readers see of its seats is its [`SeatBoard`].)
#[derive(Debug, Default)]
pub struct SectionStats {
    /// Changes applied since start, by kind (`CHANGE_KINDS`).
    changes: [AtomicU64; CHANGE_KINDS.len()],
}

/// Names of the change counters, in `SectionStats::changes` order.
pub const CHANGE_KINDS: [&str; 6] = ["hold", "release", "expiry", "confirm", "cancel", "check_in"];

impl SectionStats {
    fn count_change(&self, change: &Change) {
        let i = match change {
            Change::HoldCreated { .. } => 0,
            Change::HoldReleased { .. } => 1,
            Change::HoldExpired { .. } => 2,
            Change::HoldConfirmed { .. } => 3,
            Change::BookingCancelled { .. } => 4,
            Change::TicketCheckedIn { .. } => 5,
        };
        self.changes[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Changes applied since start, in `CHANGE_KINDS` order.
    pub fn changes(&self) -> [u64; CHANGE_KINDS.len()] {
        std::array::from_fn(|i| self.changes[i].load(Ordering::Relaxed))
    }
}

#[derive(Debug, Clone)]
pub struct SectionSettings {
    /// Most requests in flight per section (queued or awaiting durability),
    /// however low its latency.
    pub mailbox_capacity: usize,
    /// Most requests in flight to all sections at once, however low their
    /// latency.
    pub process_inflight_max: usize,
    /// The mean latency (mailbox, decision, group commit) above which the
    /// limits on requests in flight drop.
    pub latency_target: Duration,
    /// How often a section looks for expired holds.
    pub sweep_interval: Duration,
    /// Failpoint for tests: a section panics at the first change it
    /// applies, before journaling it.
    pub panic_on_change: bool,
}

/// Fewest requests in flight a section's limit allows: a hot section
/// keeps a batch's worth for its group commits.
const SECTION_LIMIT_MIN: u32 = 8;
/// Where a section's limit starts, before latency has said anything.
const SECTION_LIMIT_INITIAL: u32 = 256;
/// Fewest requests in flight the process's limit allows: its probe runs
/// there, and a busy server's normal load (hundreds of connections) must
/// pass a probe unrefused; at ~20,000 changes a second, 256 in flight
/// queue about 13 ms. The sections' own limits cut finer.
const PROCESS_LIMIT_MIN: u32 = 256;
/// Where the process's limit starts.
const PROCESS_LIMIT_INITIAL: u32 = 1024;

impl SectionSettings {
    /// How each section's [`Limiter`](super::Limiter) moves.
    pub fn section_limit(&self) -> super::LimitSettings {
        super::LimitSettings {
            target: self.latency_target,
            min: SECTION_LIMIT_MIN,
            max: u32::try_from(self.mailbox_capacity).unwrap_or(u32::MAX),
            initial: SECTION_LIMIT_INITIAL,
        }
    }

    /// How the process's [`Limiter`](super::Limiter) moves.
    pub fn process_limit(&self) -> super::LimitSettings {
        super::LimitSettings {
            target: self.latency_target,
            min: PROCESS_LIMIT_MIN,
            max: u32::try_from(self.process_inflight_max).unwrap_or(u32::MAX),
            initial: PROCESS_LIMIT_INITIAL,
        }
    }
}

/// Where every section actor's work goes: the journal, the clock it
/// reads, the mailer its bookings' emails go to.
#[derive(Clone)]
pub struct Outlets {
    pub journal: Journal,
    pub clock: Arc<dyn Clock>,
    pub mail: Option<Recipient<Enqueue>>,
    /// Payment references used, server-wide.
    pub payments: Arc<PaymentRefs>,
}

/// Where a section stands in its event, and what it shares with the
/// event's other sections.
pub struct InEvent {
    /// Its position among the event's sections.
    pub ix: u32,
    /// Places per fan across the event's sections.
    pub ledger: Arc<FanLedger>,
    /// Each fan's bookings across the event's sections.
    pub bookings: Arc<FanBookings>,
}

/// What to hold.
#[derive(Debug, Clone)]
pub enum WhatToHold {
    /// Seat indices in the section's seat map.
    Seats(Vec<u32>),
    /// Best available seats together, or standing places.
    Best(u32),
}

/// What a verified receipt says was paid for a hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub amount: u64,
    pub currency: String,
    /// Unique per payment: books once.
    pub reference: String,
}

/// Every change a client can ask of a section: the closed set the actor
/// decides, applies, journals and answers, one way for all. Each names
/// who asks: holds are a fan's own; a booking may be cancelled by its fan
/// or by support.
#[derive(Debug, Clone)]
pub enum Command {
    Hold {
        what: WhatToHold,
        fan: FanId,
    },
    Release {
        hold: u64,
        secret: u64,
        fan: FanId,
    },
    Confirm {
        hold: u64,
        secret: u64,
        fan: FanId,
        /// Where the booking's emails go, in which language.
        to: Addressee,
        payment: Payment,
    },
    Cancel {
        booking: u64,
        secret: u64,
        by: Caller,
    },
    /// A door scanner checks in the ticket of place `place` (from 1) of
    /// `booking`, whose seat (an index into the seat map) the ticket
    /// names in a seated section. The ticket's signature is checked
    /// before: it proves the place was sold, the booking's secret is not
    /// needed; `binding` ties it to this booking, not only its number.
    CheckIn {
        booking: u64,
        place: u32,
        seat: Option<u32>,
        binding: TicketBinding,
    },
}

/// Asks a section for a change; answered on `reply` with its outcome once
/// durable (by the journal's flusher), or at once when refused. The
/// `Idempotency-Key` rides into the change's journal record, so the
/// answer can be rebuilt after a restart.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ChangeRequest {
    pub command: Command,
    pub idem: Option<IdemTag>,
    /// Its places within the in-flight limits, given back once answered.
    pub admitted: Option<super::limit::Admitted>,
    pub reply: tokio::sync::oneshot::Sender<Result<Outcome, SectionError>>,
}

/// The change requests one HTTP worker made of this section during one
/// turn of its runtime, handed over as one message: one wake-up of the
/// section's arbiter for all of them (see `actors::handoff`). Decided in
/// order, each exactly as if it had come alone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ChangeBatch(pub Vec<ChangeRequest>);

/// A fan's hold: live, or the booking it became.
#[derive(Message)]
#[rtype(result = "Result<HoldView, SectionError>")]
pub struct GetHold {
    pub hold: u64,
    pub secret: u64,
    pub fan: FanId,
}

/// A booking, for its fan or support.
#[derive(Message)]
#[rtype(result = "Result<BookingRead, SectionError>")]
pub struct GetBooking {
    pub booking: u64,
    pub secret: u64,
    pub by: Caller,
}

/// Some of one fan's bookings, read at once (its list: one message per
/// section, however many of its bookings are there).
#[derive(Message)]
#[rtype(result = "Result<Vec<Option<BookingRead>>, SectionError>")]
pub struct GetBookings {
    /// Each booking's number and secret, in the order answered.
    pub bookings: Vec<(u64, u64)>,
    pub fan: FanId,
}

/// Some of one fan's holds, each if still live (its list of live holds:
/// one message per section).
#[derive(Message)]
#[rtype(result = "Result<Vec<Option<Hold>>, SectionError>")]
pub struct GetHolds {
    /// Each hold's number and secret; the answer keeps their order.
    pub holds: Vec<(u64, u64)>,
    pub fan: FanId,
}

/// The next step of an expiry sweep that found more due than one step
/// takes (sent by the actor to itself).
#[derive(Message)]
#[rtype(result = "()")]
struct Sweep;

/// A change decided and applied, for the journal.
struct Applied {
    record: Vec<u8>,
    note: Option<Note>,
    outcome: Outcome,
    /// The email it owes, handed to the mailer once durable.
    mail: Option<MailEntry>,
    moved: Option<PlacesMoved>,
}

pub struct SectionActor {
    /// The event this section belongs to (its emails render from it).
    def: Arc<EventDef>,
    /// The (event, section) ids, shared by the section's journal records
    /// and email keys.
    name: Arc<SectionName>,
    /// Where the emails of durable bookings and cancellations go.
    mail: Option<Recipient<Enqueue>>,
    section: Section,
    /// Places per fan and bookings per fan across the event's sections,
    /// shared by them all.
    in_event: InEvent,
    payments: Arc<PaymentRefs>,
    journal: Journal,
    clock: Arc<dyn Clock>,
    /// Draws the secrets in hold and booking ids.
    rng: StdRng,
    stats: Arc<SectionStats>,
    /// What readers see of the section; moved by the notes on its
    /// records once they are durable.
    board: Arc<SeatBoard>,
    /// How often idle sections look for expired holds.
    sweep_interval: Duration,
    /// Inbox bound; the registry's in-flight counter keeps below it.
    mailbox_capacity: usize,
    /// Failpoint for tests: panic at the first change applied.
    panic_on_change: bool,
}

impl SectionActor {
    pub fn new(
        def: Arc<EventDef>,
        section: Section,
        in_event: InEvent,
        stats: Arc<SectionStats>,
        board: Arc<SeatBoard>,
        outlets: Outlets,
        settings: &SectionSettings,
    ) -> SectionActor {
        let Outlets {
            journal,
            clock,
            mail,
            payments,
        } = outlets;
        let name = Arc::new(SectionName::new(&def.id, &section.layout().id));
        // Id secrets are what keeps one fan from reading or releasing
        // another's hold: always from the OS, never from a setting.
        let rng = StdRng::from_os_rng();
        SectionActor {
            def,
            name,
            mail,
            section,
            in_event,
            payments,
            journal,
            clock,
            rng,
            stats,
            board,
            sweep_interval: settings.sweep_interval,
            mailbox_capacity: settings.mailbox_capacity,
            panic_on_change: settings.panic_on_change,
        }
    }

    pub fn section(&self) -> &Section {
        &self.section
    }

    /// Refuses work the journal cannot take: failed (fail-stop) or full.
    fn ready(&self) -> Result<(), SectionError> {
        if self.journal.is_failed() {
            return Err(SectionError::Unavailable);
        }
        if !self.journal.has_room() {
            return Err(SectionError::Overloaded);
        }
        Ok(())
    }

    /// Decides `command` and applies the change: the one path of every
    /// change a client asks for, up to the journal (the handler queues
    /// the record). Refused, nothing moved.
    fn run(&mut self, command: Command, idem: Option<IdemTag>) -> Result<Applied, SectionError> {
        self.ready()?;
        self.expire_step();
        let now = self.clock.now_ms();
        let s = &self.section;
        let change = match command {
            Command::Hold {
                what: WhatToHold::Seats(seats),
                fan,
            } => s.decide_hold_seats(&seats, &fan, now, self.rng.random())?,
            Command::Hold {
                what: WhatToHold::Best(n),
                fan,
            } => s.decide_hold_best(n, &fan, now, self.rng.random())?,
            Command::Release { hold, secret, fan } => s.decide_release(hold, secret, &fan, now)?,
            Command::Confirm {
                hold,
                secret,
                fan,
                to,
                payment,
            } => {
                let booking_secret = self.rng.random();
                let reference = payment.reference.clone();
                let change =
                    s.decide_confirm(hold, secret, &fan, to, reference, now, booking_secret)?;
                self.check_payment(hold, &payment)?;
                change
            }
            Command::Cancel {
                booking,
                secret,
                by,
            } => s.decide_cancel(booking, secret, &by, now)?,
            Command::CheckIn {
                booking,
                place,
                seat,
                binding,
            } => s.decide_check_in(booking, place, seat, binding, now)?,
        };
        let moved = self.section.places_moved(&change);
        if let Some(PlacesMoved::Taken { fan, places }) = &moved {
            // Refused, the change is dropped: nothing was applied.
            self.in_event.ledger.take(fan, *places)?;
        }
        let (record, note) = self.apply(&change, idem);
        if self.panic_on_change {
            panic!("failpoint: a section panics with a change applied but not journaled");
        }
        let outcome = self
            .section
            .outcome(&change)
            .expect("a change just applied has an outcome");
        let mail = match self.mail {
            Some(_) => MailEntry::owed(&self.def, &self.name, &self.section, &change),
            None => None,
        };
        Ok(Applied {
            record,
            note,
            outcome,
            mail,
            moved,
        })
    }

    /// Checks that `payment` pays exactly live hold `hold`'s total, then
    /// claims its reference (last: a refused confirmation uses nothing).
    fn check_payment(&self, hold: u64, payment: &Payment) -> Result<(), CommandError> {
        let claim = &self.section.hold(hold).expect("a hold just decided").claim;
        let due = self.def.price_of(self.section.layout(), claim);
        if payment.currency != self.def.currency {
            return Err(CommandError::WrongCurrency {
                due: self.def.currency.clone(),
                paid: payment.currency.clone(),
            });
        }
        if payment.amount != due {
            return Err(CommandError::WrongAmount {
                due,
                paid: payment.amount,
            });
        }
        if !self.payments.claim(&payment.reference) {
            return Err(CommandError::PaymentAlreadyUsed);
        }
        Ok(())
    }

    /// Applies a decided change and returns the change's journal record,
    /// ready to queue, with the note that moves the section's board once
    /// the record is durable.
    fn apply(&mut self, change: &Change, idem: Option<IdemTag>) -> (Vec<u8>, Option<Note>) {
        let record = encode(&Record::Section {
            event: self.name.event.to_string(),
            section: self.name.section.to_string(),
            change: change.into(),
            idem,
        });
        let moved = self.seats_moved(change);
        let hold = self.hold_note(change);
        self.section
            .apply(change)
            .expect("a change this section decided applies to it");
        self.stats.count_change(change);
        let note = moved.map(|(seats, to)| {
            Box::new(SeatNote {
                board: Arc::clone(&self.board),
                seats,
                to,
                counts: self.section.counts(),
                hold,
            }) as Note
        });
        (record, note)
    }

    /// The hold `change` (not applied yet) creates or ends, for its
    /// fan's list once durable.
    fn hold_note(&self, change: &Change) -> Option<HoldNote> {
        let (fan, created_at_ms, seq, secret, live) = match change {
            Change::HoldCreated {
                hold,
                secret,
                fan,
                created_at_ms,
                ..
            } => (fan_lists::tag(fan), *created_at_ms, *hold, *secret, true),
            Change::HoldReleased { hold, .. }
            | Change::HoldExpired { hold, .. }
            | Change::HoldConfirmed { hold, .. } => {
                let h = self.section.hold(*hold)?;
                (
                    fan_lists::tag(&h.fan),
                    h.created_at_ms,
                    h.seq,
                    h.secret,
                    false,
                )
            }
            Change::BookingCancelled { .. } | Change::TicketCheckedIn { .. } => return None,
        };
        Some(HoldNote {
            fan,
            at: FanRef {
                made_at_ms: created_at_ms,
                section: self.in_event.ix,
                seq,
                secret,
            },
            live,
        })
    }

    /// The seats `change` (not applied yet) moves and the state they all
    /// end in; `None` when it moves none (a check-in).
    fn seats_moved(&self, change: &Change) -> Option<(Seats, u8)> {
        let s = &self.section;
        let (claim, to) = match change {
            Change::HoldCreated { claim, .. } => (claim, HELD),
            Change::HoldReleased { hold, .. } | Change::HoldExpired { hold, .. } => {
                (&s.hold(*hold)?.claim, FREE)
            }
            Change::HoldConfirmed { hold, .. } => (&s.hold(*hold)?.claim, SOLD),
            Change::BookingCancelled { booking, .. } => (&s.booking(*booking)?.claim, FREE),
            Change::TicketCheckedIn { .. } => return None,
        };
        let seats = match claim {
            Claim::Seats(seats) => seats.clone(),
            Claim::Quantity(_) => Seats::default(),
        };
        Some((seats, to))
    }

    /// Expires up to `EXPIRIES_PER_STEP_MAX` holds whose time has come,
    /// and no more than the journal queue has room for: a sweep never
    /// waits on a full queue (the next tick tries again). Returns whether
    /// more may be due.
    fn expire_step(&mut self) -> bool {
        if self.journal.is_failed() {
            return false;
        }
        let max = EXPIRIES_PER_STEP_MAX.min(self.journal.room());
        if max == 0 {
            return false;
        }
        let due = self.section.decide_expiries(self.clock.now_ms(), max);
        let more = due.len() == max;
        for change in &due {
            let moved = self.section.places_moved(change);
            let (record, note) = self.apply(change, None);
            if self.journal.append_unacked_noted(record, note).is_err() {
                return false;
            }
            self.give_back(moved);
        }
        more
    }

    /// Returns the places a change just queued freed to the event's fan
    /// ledger (see `ledger.rs` for why queued is soon enough).
    fn give_back(&self, moved: Option<PlacesMoved>) {
        if let Some(PlacesMoved::Freed { fan, places }) = moved {
            self.in_event.ledger.give_back(&fan, places);
        }
    }

    /// A sweep: one step, and the next one queued behind whatever waits
    /// in the mailbox when more are due.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.expire_step() {
            cov_mark::hit!(sweep_continues_after_a_step);
            ctx.notify(Sweep);
        }
    }
}

impl Actor for SectionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
        // Holds that expired while the server was down go first.
        self.sweep(ctx);
        ctx.run_interval(self.sweep_interval, |act, ctx| act.sweep(ctx));
    }
}

impl Handler<Sweep> for SectionActor {
    type Result = ();

    fn handle(&mut self, _: Sweep, ctx: &mut Context<Self>) {
        self.sweep(ctx);
    }
}

impl Handler<ChangeRequest> for SectionActor {
    type Result = ();

    fn handle(&mut self, msg: ChangeRequest, _: &mut Context<Self>) {
        self.change(msg);
    }
}

impl Handler<ChangeBatch> for SectionActor {
    type Result = ();

    fn handle(&mut self, msg: ChangeBatch, _: &mut Context<Self>) {
        for request in msg.0 {
            self.change(request);
        }
    }
}

impl SectionActor {
    /// Decides one change and hands its record to the journal, with what
    /// answers the worker once the record is durable.
    fn change(&mut self, msg: ChangeRequest) {
        let ChangeRequest {
            command,
            idem,
            admitted,
            reply,
        } = msg;
        let Applied {
            record,
            note,
            outcome,
            mail,
            moved,
        } = match self.run(command, idem) {
            Ok(applied) => applied,
            Err(refused) => {
                let _ = reply.send(Err(refused));
                return;
            }
        };
        let mailer = mail.as_ref().and(self.mail.clone());
        let booked = match &outcome {
            Outcome::Confirmed(b) => Some((
                Arc::clone(&self.in_event.bookings),
                Arc::clone(&b.fan),
                FanRef {
                    made_at_ms: b.confirmed_at_ms,
                    section: self.in_event.ix,
                    seq: b.seq,
                    secret: b.secret,
                },
            )),
            _ => None,
        };
        // Called by the journal's flusher once the change is durable (or
        // the journal failed): the answer goes from there to the worker.
        let answer: crate::journal::Then = Box::new(move |durable| {
            // The change's latency ends here: given back now, not when the
            // HTTP worker next polls the answer.
            drop(admitted);
            if durable.is_err() {
                let _ = reply.send(Err(SectionError::Unavailable));
                return;
            }
            // Only now: no email for a booking a crash could still erase.
            // Nothing waits for the mailer.
            if let (Some(to), Some(entry)) = (mailer, mail) {
                to.do_send(Enqueue(entry));
            }
            // Listed before its fan hears of it: a list asked for after
            // the answer has it.
            if let Some((bookings, fan, at)) = booked {
                bookings.add(&fan, at);
            }
            let _ = reply.send(Ok(outcome));
        });
        // Memory moved first; if the journal refuses now, it has failed and
        // refuses every later request too (fail-stop), so the unjournaled
        // change is never shown as done: `answer` is dropped uncalled, and
        // the worker, its channel closed, answers 503.
        if self.journal.append_noted_then(record, note, answer).is_ok() {
            self.give_back(moved);
        }
    }
}

impl Handler<GetHold> for SectionActor {
    type Result = Result<HoldView, SectionError>;

    fn handle(&mut self, msg: GetHold, _: &mut Context<Self>) -> Self::Result {
        self.expire_step();
        Ok(self.section.hold_view(msg.hold, msg.secret, &msg.fan)?)
    }
}

impl Handler<GetBooking> for SectionActor {
    type Result = Result<BookingRead, SectionError>;

    fn handle(&mut self, msg: GetBooking, _: &mut Context<Self>) -> Self::Result {
        Ok(self
            .section
            .read_booking(msg.booking, msg.secret, &msg.by)?)
    }
}

impl Handler<GetBookings> for SectionActor {
    type Result = Result<Vec<Option<BookingRead>>, SectionError>;

    /// Each booking if it is the fan's (`None`: another fan's whose tag
    /// is the same).
    fn handle(&mut self, msg: GetBookings, _: &mut Context<Self>) -> Self::Result {
        let by = Caller::Fan(msg.fan);
        Ok(msg
            .bookings
            .into_iter()
            .map(|(seq, secret)| self.section.read_booking(seq, secret, &by).ok())
            .collect())
    }
}

impl Handler<GetHolds> for SectionActor {
    type Result = Result<Vec<Option<Hold>>, SectionError>;

    fn handle(&mut self, msg: GetHolds, _: &mut Context<Self>) -> Self::Result {
        Ok(msg
            .holds
            .into_iter()
            .map(|(seq, secret)| self.section.find_hold(seq, secret, &msg.fan).ok().cloned())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fan_holds::FanHolds;
    use super::*;
    use crate::clock::ManualClock;
    use crate::journal::{JournalConfig, Store};
    use crate::layout::EventSpec;

    /// Section `S` of 10 rows of 100 seats; holds last 60 s.
    fn event() -> Arc<EventDef> {
        let rows: Vec<serde_json::Value> = (0..10)
            .map(|r| serde_json::json!({"label": (r + 1).to_string(), "seats": 100, "x": 0.0, "y": r}))
            .collect();
        let doc = serde_json::json!({
            "format": "boxoffice.event/1", "id": "ev", "name": "Ev", "starts_at": "2026-12-24T10:00:00Z",
            "currency": "KRW", "hold_ttl_secs": 60, "seats_per_hold_max": 4,
            "categories": [{"id": "R", "name": "R", "price": 1}],
            "venue": {"name": "V", "sections": [{"id": "S", "name": "S", "category": "R", "rows": rows}]}
        });
        let spec = EventSpec::from_json(doc.to_string().as_bytes()).unwrap();
        Arc::new(spec.build().unwrap())
    }

    /// A wave of expiries larger than one step is swept in several steps,
    /// each queued behind other messages, until every due hold is gone;
    /// a read sent meanwhile is answered.
    #[test]
    fn a_wave_of_expiries_is_swept_in_steps() {
        cov_mark::check!(sweep_continues_after_a_step);
        let dir = tempfile::tempdir().unwrap();
        let (journal, flusher) = Store::open(dir.path())
            .unwrap()
            .start(JournalConfig::default());
        let def = event();
        let mut section = Section::new(Arc::clone(&def.sections[0]), def.limits);
        let holds = EXPIRIES_PER_STEP_MAX as u32 * 3 + 7;
        for seat in 0..holds {
            let change = section
                .decide_hold_seats(&[seat], &"fan".into(), 0, 1)
                .unwrap();
            section.apply(&change).unwrap();
        }
        let clock = Arc::new(ManualClock::new(3_600_000));
        let stats = Arc::new(SectionStats::default());
        // The fan's list of live holds has them all, and loses each as
        // its expiry is durable.
        let listed = Arc::new(FanHolds::new([&section]));
        let board = Arc::new(
            SeatBoard::new(
                section.seat_states(),
                section.counts(),
                journal.durable_position(),
            )
            .with_fan_holds(Arc::clone(&listed)),
        );
        let (publisher, _) = super::super::views::Publisher::start(
            journal.durable_batches(),
            journal.durable_position(),
        );
        // One fan holds every seat, over its limit of one: the ledger
        // counts what is there, and gets every place back as it expires.
        let ledger = Arc::new(FanLedger::new(Some(1), [&section]));
        assert_eq!(ledger.owned("fan"), holds);
        assert_eq!(listed.newest("fan", usize::MAX).len(), holds as usize);
        actix::System::new().block_on(async {
            let settings = SectionSettings {
                mailbox_capacity: 64,
                process_inflight_max: 64,
                latency_target: Duration::from_millis(10),
                sweep_interval: Duration::from_secs(3600),
                panic_on_change: false,
            };
            let outlets = Outlets {
                journal: journal.clone(),
                clock,
                mail: None,
                payments: Arc::default(),
            };
            let actor = SectionActor::new(
                Arc::clone(&def),
                section,
                InEvent {
                    ix: 0,
                    ledger: Arc::clone(&ledger),
                    bookings: Arc::default(),
                },
                Arc::clone(&stats),
                Arc::clone(&board),
                outlets,
                &settings,
            )
            .start();
            let before = board.view();
            assert_eq!(before.states.len(), 1000);
            assert_eq!(before.counts.total.held, holds);
            let mut position = publisher.position();
            for _ in 0..100 {
                if board.view().counts.total.held == 0 {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(50), position.changed()).await;
            }
            assert_eq!(
                stats.changes()[2],
                u64::from(holds),
                "every due hold expired"
            );
            // The published view shows them once durable: every seat free.
            let after = board.view();
            assert_eq!(after.counts.total.held, 0);
            assert!(after.states.bytes().all(|s| s == b'f'));
            assert!(after.position > before.position);
            assert_eq!(ledger.owned("fan"), 0);
            assert!(listed.newest("fan", usize::MAX).is_empty());
            drop(actor);
        });
        journal.close();
        flusher.join().unwrap();
    }
}
