//! The registry: which events exist, and the address of every section's
//! actor. Requests are routed here by (event, section); ids carry both, so
//! no request needs a global lookup beyond this map.
//!
//! Actors are started here, once per section, spread round-robin over one
//! arbiter per core, never inside actix-web's per-worker app factory (that
//! would start a copy of every section per worker).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use actix::prelude::*;

use super::fan_bookings::FanBookings;
use super::fan_holds::FanHolds;
use super::ledger::FanLedger;
use super::limit::{Admitted, Limiter};
use super::payments::PaymentRefs;
use super::room::{RoomFailure, RoomHandle};
use super::section::{
    ChangeRequest, Command, InEvent, Outlets, SectionActor, SectionError, SectionSettings,
    SectionStats,
};
use super::views::{Publisher, SeatBoard};
use crate::clock::Clock;
use crate::domain::{
    Admission, EventDef, Outcome, RoomSettings, SalePhases, Section, SectionLayout, WaitingRoom,
};
use crate::journal::{encode, IdemTag, Journal, Record};
use crate::layout::{EventSpec, SalePhaseSpec};
use crate::mail::Enqueue;

/// Why a waiting room was not switched or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomSwitchError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Room(#[from] RoomFailure),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("event {0:?} exists already")]
    EventExists(String),
    #[error("no event {0:?}")]
    NoEvent(String),
    #[error("the journal is unavailable")]
    Unavailable,
}

/// Longest a read waits for the views to catch up with the journal
/// before it answers with what they show (a publisher that far behind is
/// a bug, and an older view is still durable).
const CATCH_UP_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// Routes to one section's actor, with its event, layout, counters and
/// published view: everything a request needs to ask the section, read
/// it, and render its answer.
pub struct SectionHandle {
    pub def: Arc<EventDef>,
    pub layout: Arc<SectionLayout>,
    pub stats: Arc<SectionStats>,
    /// The section as last published (durable only).
    pub board: Arc<SeatBoard>,
    /// Its actor, and the arbiter thread it runs on (for changes).
    route: super::handoff::Route,
    /// What may be in flight to this section.
    limit: Arc<Limiter>,
    /// What may be in flight to every section of the process.
    process: Arc<Limiter>,
    /// Requests refused because the section (or the process) was
    /// saturated.
    shed: AtomicU64,
}

impl SectionHandle {
    /// A place in flight within the section's limit and the process's,
    /// or `Overloaded` at once when either is reached (see [`Limiter`]).
    fn admit(&self) -> Result<Admitted, SectionError> {
        let Some(section) = self.limit.try_acquire() else {
            self.shed.fetch_add(1, Ordering::Relaxed);
            return Err(SectionError::Overloaded);
        };
        let Some(process) = self.process.try_acquire() else {
            drop(section.quiet());
            self.shed.fetch_add(1, Ordering::Relaxed);
            return Err(SectionError::Overloaded);
        };
        Ok(Admitted { section, process })
    }

    /// Asks the section (a read), within the in-flight limits. A read's
    /// latency is no sample for them: what it waits on after the actor
    /// answers is the HTTP worker, which no limit here can shorten.
    pub async fn ask<M, T>(&self, msg: M) -> Result<T, SectionError>
    where
        M: Message<Result = Result<T, SectionError>> + Send + 'static,
        T: Send + 'static,
        SectionActor: Handler<M>,
    {
        let Admitted { section, process } = self.admit()?;
        let _quiet = (section.quiet(), process.quiet());
        match self.route.actor.send(msg).await {
            Ok(answer) => answer,
            Err(_) => Err(SectionError::Unavailable),
        }
    }

    /// Asks the section for a change; its outcome, once durable. The
    /// permits travel with the change and are given back as it is
    /// answered: their latency is the section's queue, decision and group
    /// commit. The answer comes on a channel of its own, from the actor
    /// when refused and from the journal's flusher once durable; sent
    /// without waiting for room in the mailbox, as the permits already
    /// bound what is in it.
    pub async fn change(
        &self,
        command: Command,
        idem: Option<IdemTag>,
    ) -> Result<Outcome, SectionError> {
        let admitted = self.admit()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        super::handoff::send(
            &self.route,
            ChangeRequest {
                command,
                idem,
                admitted: Some(admitted),
                reply,
            },
        );
        // A stopped actor, or a journal that failed, drops the channel.
        answer.await.unwrap_or(Err(SectionError::Unavailable))
    }

    /// Requests in flight right now.
    pub fn inflight(&self) -> usize {
        self.limit.in_flight() as usize
    }

    /// The section's limit on requests in flight, as it stands.
    pub fn limit(&self) -> u32 {
        self.limit.limit()
    }

    /// Requests refused since start because the section was saturated.
    pub fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }
}

/// Why the sale phases refused holds, in `EventEntry::refused_by_phase`
/// order.
pub const ADMISSION_REFUSALS: [&str; 3] = ["not_open", "membership_required", "closed"];

pub struct EventEntry {
    pub def: Arc<EventDef>,
    pub created_at_ms: u64,
    /// The sale phases as last moved, and the journal position of that
    /// move (0: as started), so that of two moves racing to durability the
    /// later one in the journal wins here too.
    phases: RwLock<(u64, Arc<SalePhases>)>,
    /// Places per fan across the sections (the fan limit).
    pub ledger: Arc<FanLedger>,
    /// Each fan's bookings across the sections ("My tickets").
    pub bookings: Arc<FanBookings>,
    /// Each fan's live holds across the sections.
    pub holds: Arc<FanHolds>,
    refused_by_phase: [AtomicU64; 3],
    /// Its waiting room, while switched on.
    room: RwLock<Option<Arc<RoomHandle>>>,
    sections: Vec<Arc<SectionHandle>>,
    index: HashMap<String, usize>,
}

impl EventEntry {
    /// The sale phases in force.
    pub fn phases(&self) -> Arc<SalePhases> {
        Arc::clone(&self.phases.read().unwrap_or_else(|e| e.into_inner()).1)
    }

    /// May a fan, member of what `is_member` says, hold now? Refusals
    /// are counted by kind (`ADMISSION_REFUSALS`).
    pub fn admit(&self, now_ms: u64, is_member: &dyn Fn(&str) -> bool) -> Admission {
        let admission = self.phases().admit(now_ms, is_member);
        let i = match admission {
            Admission::Open => return admission,
            Admission::NotYet { .. } => 0,
            Admission::MembershipRequired { .. } => 1,
            Admission::Closed => 2,
        };
        self.refused_by_phase[i].fetch_add(1, Ordering::Relaxed);
        admission
    }

    /// Holds refused by the sale phases since start, in
    /// `ADMISSION_REFUSALS` order.
    pub fn refused_by_phase(&self) -> [u64; 3] {
        std::array::from_fn(|i| self.refused_by_phase[i].load(Ordering::Relaxed))
    }

    /// Puts `phases`, journaled at `position`, in force, unless a later
    /// move already is.
    fn move_phases(&self, position: u64, phases: Arc<SalePhases>) {
        let mut current = self.phases.write().unwrap_or_else(|e| e.into_inner());
        if position > current.0 {
            *current = (position, phases);
        }
    }

    /// Its waiting room, if switched on.
    pub fn room(&self) -> Option<Arc<RoomHandle>> {
        self.room.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn section(&self, id: &str) -> Option<&Arc<SectionHandle>> {
        self.index.get(id).map(|&i| &self.sections[i])
    }

    /// In layout order.
    pub fn sections(&self) -> &[Arc<SectionHandle>] {
        &self.sections
    }
}

/// An event id claimed for creation; the claim ends when this drops,
/// however the creation ended.
struct Creating {
    registry: Arc<Registry>,
    id: String,
}

impl Creating {
    /// Claims `id`, unless the event exists or is being created.
    fn claim(registry: &Arc<Registry>, id: &str) -> Result<Creating, RegistryError> {
        let mut creating = registry.creating.lock().unwrap_or_else(|e| e.into_inner());
        if registry.get(id).is_some() || !creating.insert(id.to_owned()) {
            return Err(RegistryError::EventExists(id.to_owned()));
        }
        Ok(Creating {
            registry: Arc::clone(registry),
            id: id.to_owned(),
        })
    }
}

impl Drop for Creating {
    fn drop(&mut self) {
        self.registry
            .creating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

pub struct Registry {
    events: RwLock<BTreeMap<String, Arc<EventEntry>>>,
    /// Event ids being created right now, so two creations of one id race
    /// to one winner.
    creating: Mutex<HashSet<String>>,
    arbiters: Mutex<Vec<Arbiter>>,
    /// The arbiters' threads, in the same order, for handing changes over.
    threads: Vec<super::handoff::Thread>,
    next_arbiter: AtomicUsize,
    journal: Journal,
    clock: Arc<dyn Clock>,
    settings: SectionSettings,
    /// The mailer, handed to every section for its bookings' emails.
    mail: Option<Recipient<Enqueue>>,
    /// Payment references used, by every event's bookings.
    payments: Arc<PaymentRefs>,
    /// What may be in flight to all sections at once.
    process: Arc<Limiter>,
    /// Publishes every section's durable state (its thread ends with the
    /// journal's flusher).
    publisher: Publisher,
}

impl Registry {
    /// Starts `arbiters` arbiter threads for the section actors.
    pub fn new(
        journal: Journal,
        clock: Arc<dyn Clock>,
        settings: SectionSettings,
        arbiters: usize,
        mail: Option<Recipient<Enqueue>>,
    ) -> Registry {
        assert!(arbiters >= 1 && settings.mailbox_capacity >= 1);
        let (publisher, _thread) =
            Publisher::start(journal.durable_batches(), journal.durable_position());
        let arbiters: Vec<Arbiter> = (0..arbiters)
            .map(|i| {
                let arbiter = Arbiter::new();
                arbiter.spawn_fn(move || crate::threads::name_current(&format!("sections-{i}")));
                arbiter
            })
            .collect();
        Registry {
            publisher,
            events: RwLock::new(BTreeMap::new()),
            creating: Mutex::new(HashSet::new()),
            threads: arbiters
                .iter()
                .map(|a| super::handoff::Thread::new(a.handle()))
                .collect(),
            arbiters: Mutex::new(arbiters),
            next_arbiter: AtomicUsize::new(0),
            journal,
            clock,
            mail,
            payments: Arc::default(),
            process: Arc::new(Limiter::new(settings.process_limit())),
            settings,
        }
    }

    /// The limit on requests in flight to all sections at once.
    pub fn process_limit(&self) -> &Limiter {
        &self.process
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The thread that publishes durable state, and how far it has come.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Waits (up to `CATCH_UP_WAIT_MAX`) until the published views hold
    /// every change durable now, so a fan who was told of a change sees
    /// it in the next read (a round of the publisher at most, 25 ms).
    pub async fn caught_up(&self) {
        let durable = self.journal.durable_position();
        let mut position = self.publisher.position();
        if *position.borrow() >= durable {
            return;
        }
        let _ = tokio::time::timeout(CATCH_UP_WAIT_MAX, position.wait_for(|p| *p >= durable)).await;
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn get(&self, event: &str) -> Option<Arc<EventEntry>> {
        self.events
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(event)
            .cloned()
    }

    /// A section of an event, if both exist.
    pub fn section(&self, event: &str, section: &str) -> Option<Arc<SectionHandle>> {
        self.get(event)?.section(section).cloned()
    }

    pub fn events(&self) -> Vec<Arc<EventEntry>> {
        self.events
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Starts the events recovery rebuilt, then gives back to the OS what
    /// recovery freed and starting them did not take again (their indexes
    /// built from the sections: fans' lists and counts, payment
    /// references, seat boards).
    pub fn start_recovered(
        &self,
        events: impl IntoIterator<Item = crate::recovery::RecoveredEvent>,
    ) -> Result<(), RegistryError> {
        for e in events {
            self.start_event(e.def, e.phases, e.sections, e.room, e.created_at_ms)?;
        }
        crate::recovery::release_freed_memory();
        Ok(())
    }

    /// Starts the actors of an event whose sections are already built
    /// (fresh, or replayed from the journal). `Unavailable` once the
    /// registry is shutting down (a journaled event starts on the next
    /// start-up).
    pub fn start_event(
        &self,
        def: Arc<EventDef>,
        phases: SalePhases,
        sections: Vec<Section>,
        room: Option<WaitingRoom>,
        created_at_ms: u64,
    ) -> Result<Arc<EventEntry>, RegistryError> {
        assert_eq!(def.sections.len(), sections.len());
        let ledger = Arc::new(FanLedger::new(def.limits.tickets_per_fan_max, &sections));
        let bookings = Arc::new(FanBookings::new(&sections));
        let holds = Arc::new(FanHolds::new(&sections));
        for section in &sections {
            self.payments.add_bookings(section);
        }
        let mut handles = Vec::with_capacity(sections.len());
        let arbiters = self.arbiters.lock().unwrap_or_else(|e| e.into_inner());
        if arbiters.is_empty() {
            return Err(RegistryError::Unavailable);
        }
        for (in_event, section) in (0..).zip(sections) {
            let ix = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % arbiters.len();
            let arbiter = &arbiters[ix];
            let stats = Arc::new(SectionStats::default());
            // The section is durable as it stands: replayed, or new (no
            // change of it can be durable before its event is).
            let board = Arc::new(
                SeatBoard::new(
                    section.seat_states(),
                    section.counts(),
                    self.journal.durable_position(),
                )
                .with_fan_holds(Arc::clone(&holds)),
            );
            let layout = Arc::clone(section.layout());
            let actor = SectionActor::new(
                Arc::clone(&def),
                section,
                InEvent {
                    ix: in_event,
                    ledger: Arc::clone(&ledger),
                    bookings: Arc::clone(&bookings),
                },
                Arc::clone(&stats),
                Arc::clone(&board),
                Outlets {
                    journal: self.journal.clone(),
                    clock: Arc::clone(&self.clock),
                    mail: self.mail.clone(),
                    payments: Arc::clone(&self.payments),
                },
                &self.settings,
            );
            let addr = SectionActor::start_in_arbiter(&arbiter.handle(), move |_| actor);
            handles.push(Arc::new(SectionHandle {
                def: Arc::clone(&def),
                layout,
                stats,
                board,
                route: super::handoff::Route {
                    thread: self.threads[ix].clone(),
                    actor: addr,
                },
                limit: Arc::new(Limiter::new(self.settings.section_limit())),
                process: Arc::clone(&self.process),
                shed: AtomicU64::new(0),
            }));
        }
        let room = room.map(|room| {
            let handle =
                RoomHandle::new(&def.id, room, self.journal.clone(), Arc::clone(&self.clock));
            self.run_room(&arbiters, &handle);
            handle
        });
        drop(arbiters);
        let index = handles
            .iter()
            .enumerate()
            .map(|(i, h)| (h.layout.id.clone(), i))
            .collect();
        let entry = Arc::new(EventEntry {
            def: Arc::clone(&def),
            created_at_ms,
            phases: RwLock::new((0, Arc::new(phases))),
            ledger,
            bookings,
            holds,
            refused_by_phase: Default::default(),
            room: RwLock::new(room),
            sections: handles,
            index,
        });
        self.events
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(def.id.clone(), Arc::clone(&entry));
        Ok(entry)
    }

    /// Creates a new event: journals it, then starts its sections. The
    /// spec must already have been built into `def` (validated).
    ///
    /// Once the record is queued, the rest runs in a task of its own: a
    /// caller that goes away (a client that hangs up) cannot leave an event
    /// that is in the journal but not started, nor an id stuck "being
    /// created".
    pub async fn create_event(
        self: &Arc<Self>,
        spec: &EventSpec,
        def: EventDef,
        idem: Option<IdemTag>,
    ) -> Result<Arc<EventEntry>, RegistryError> {
        let claim = Creating::claim(self, &def.id)?;
        let phases = spec.phases().expect("a built spec has valid phases");
        let spec = spec.settled().expect("a built spec has a valid room");
        let room = spec
            .room()
            .expect("a built spec has a valid room")
            .map(WaitingRoom::new);
        let now = self.clock.now_ms();
        let bytes = encode(&Record::EventCreated {
            spec_json: spec.to_json(),
            at_ms: now,
            idem,
        });
        let receipt = self
            .journal
            .append(bytes)
            .map_err(|_| RegistryError::Unavailable)?;
        let registry = Arc::clone(self);
        let task = actix_rt::spawn(async move {
            let _claim = claim;
            match receipt.await {
                Ok(Ok(_)) => {}
                _ => return Err(RegistryError::Unavailable),
            }
            let def = Arc::new(def);
            let sections = def
                .sections
                .iter()
                .map(|l| Section::new(Arc::clone(l), def.limits))
                .collect();
            registry.start_event(def, phases, sections, room, now)
        });
        task.await.unwrap_or(Err(RegistryError::Unavailable))
    }

    /// Moves the sale phases of an event on sale: journals the new ones,
    /// and puts them in force once durable (in a task of its own, like
    /// [`Registry::create_event`]).
    pub async fn move_phases(
        &self,
        event: &str,
        phases: SalePhases,
    ) -> Result<Arc<EventEntry>, RegistryError> {
        let entry = self
            .get(event)
            .ok_or_else(|| RegistryError::NoEvent(event.to_owned()))?;
        let specs: Vec<SalePhaseSpec> = phases.0.iter().map(SalePhaseSpec::of).collect();
        let bytes = encode(&Record::SalePhasesMoved {
            event: event.to_owned(),
            phases_json: serde_json::to_string(&specs).expect("phases serialize"),
            at_ms: self.clock.now_ms(),
        });
        let receipt = self
            .journal
            .append(bytes)
            .map_err(|_| RegistryError::Unavailable)?;
        let task = actix_rt::spawn(async move {
            match receipt.await {
                Ok(Ok(position)) => {
                    entry.move_phases(position, Arc::new(phases));
                    Ok(entry)
                }
                _ => Err(RegistryError::Unavailable),
            }
        });
        task.await.unwrap_or(Err(RegistryError::Unavailable))
    }

    /// Runs `room`'s ticker on the next arbiter.
    fn run_room(&self, arbiters: &[Arbiter], room: &Arc<RoomHandle>) {
        let arbiter = &arbiters[self.next_arbiter.fetch_add(1, Ordering::Relaxed) % arbiters.len()];
        arbiter.spawn(Arc::clone(room).run());
    }

    /// Switches an event's waiting room on with `settings`, changes how
    /// it runs, or (`None`) switches it off; answered once durable.
    pub async fn set_waiting_room(
        &self,
        event: &str,
        settings: Option<RoomSettings>,
    ) -> Result<Arc<EventEntry>, RoomSwitchError> {
        let entry = self
            .get(event)
            .ok_or_else(|| RegistryError::NoEvent(event.to_owned()))?;
        let record = |settings: Option<RoomSettings>| {
            encode(&Record::WaitingRoomSet {
                event: event.to_owned(),
                settings: settings.map(Into::into),
                at_ms: self.clock.now_ms(),
            })
        };
        // Under the slot's lock nothing waits; a running room's new
        // settings are journaled by the room itself, after it.
        let receipt = {
            let mut slot = entry.room.write().unwrap_or_else(|e| e.into_inner());
            match (settings, slot.clone()) {
                (None, None) => None,
                (None, Some(room)) => {
                    let receipt = room.retire_with(record(None))?;
                    *slot = None;
                    Some(Ok(receipt))
                }
                (Some(s), Some(room)) => Some(Err((room, s))),
                (Some(s), None) => {
                    s.check().map_err(RoomFailure::from)?;
                    let arbiters = self.arbiters.lock().unwrap_or_else(|e| e.into_inner());
                    if arbiters.is_empty() {
                        return Err(RegistryError::Unavailable.into());
                    }
                    let receipt = self
                        .journal
                        .append(record(Some(s)))
                        .map_err(|_| RegistryError::Unavailable)?;
                    let room = RoomHandle::new(
                        event,
                        WaitingRoom::new(s),
                        self.journal.clone(),
                        Arc::clone(&self.clock),
                    );
                    self.run_room(&arbiters, &room);
                    *slot = Some(room);
                    Some(Ok(receipt))
                }
            }
        };
        let receipt = match receipt {
            None => return Ok(entry),
            Some(Err((room, s))) => {
                room.set(s).await?;
                return Ok(entry);
            }
            Some(Ok(receipt)) => receipt,
        };
        match receipt.await {
            Ok(Ok(_)) => Ok(entry),
            _ => Err(RegistryError::Unavailable.into()),
        }
    }

    /// Stops every arbiter (and so every section actor), waits for them,
    /// then closes the journal: what is queued is written, then the flusher
    /// ends and lets go of sled.
    pub fn shutdown(&self) {
        self.events
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let arbiters: Vec<Arbiter> = self
            .arbiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for a in &arbiters {
            a.stop();
        }
        for a in arbiters {
            let _ = a.join();
        }
        self.journal.close();
    }
}
