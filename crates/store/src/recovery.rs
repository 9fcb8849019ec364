//! Recovery: the whole state rebuilt from the newest usable snapshot and
//! the journal after it. Start-up, the snapshotter and the offline
//! `snapshot create` all run it, so a snapshot is exactly what a restart
//! would have rebuilt.
//!
//! [`Replay`] applies one journal record at a time to a [`State`] (events,
//! their sections, the outbox, remembered idempotent answers); it is the
//! only code that turns records back into state. The answers a record's
//! change gave are rendered by whoever recovers ([`Answers`]: the API's
//! own rendering), so recovery knows nothing of the API's wire types.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::domain::{
    CategoryCounts, Change, EventDef, Outcome, RoomChange, RoomSettings, SalePhases, Section,
    SectionLayout, SectionName, WaitingRoom,
};
use crate::idempotency::IdempotencyStore;
use crate::journal::{IdemTag, JournalReader, OpenError, Record};
use crate::layout::{build_phases, EventSpec, SalePhaseSpec};
use crate::outbox::{MailEntry, MailKey, Outbox};
use crate::snapshot;

/// One event as recovery rebuilt it.
pub struct RecoveredEvent {
    pub def: Arc<EventDef>,
    pub created_at_ms: u64,
    /// The document it was created from (snapshots keep it).
    pub spec_json: String,
    /// Its sale phases as last moved (`spec_json` has them too).
    pub phases: SalePhases,
    /// In layout order.
    pub sections: Vec<Section>,
    /// Its waiting room, while switched on.
    pub room: Option<WaitingRoom>,
    /// Section id → index in `sections`: a record finds its section
    /// without a scan (a stadium has a hundred).
    index: HashMap<String, usize>,
    /// Each section's (event, section) ids, shared by its outbox keys.
    names: Vec<Arc<SectionName>>,
}

impl RecoveredEvent {
    fn new(
        def: Arc<EventDef>,
        created_at_ms: u64,
        spec_json: String,
        phases: SalePhases,
        sections: Vec<Section>,
        room: Option<WaitingRoom>,
    ) -> RecoveredEvent {
        let index = sections
            .iter()
            .enumerate()
            .map(|(i, s)| (s.layout().id.clone(), i))
            .collect();
        let names = sections
            .iter()
            .map(|s| Arc::new(SectionName::new(&def.id, &s.layout().id)))
            .collect();
        RecoveredEvent {
            def,
            created_at_ms,
            spec_json,
            phases,
            sections,
            room,
            index,
            names,
        }
    }

    fn section_index(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }
}

/// Everything recovery rebuilds, before any actor starts.
#[derive(Default)]
pub struct State {
    pub events: BTreeMap<String, RecoveredEvent>,
    pub outbox: Outbox,
}

impl State {
    /// When the newest booking was confirmed, if there is one.
    pub fn newest_confirmed_ms(&self) -> Option<u64> {
        let sections = self.events.values().flat_map(|e| &e.sections);
        sections
            .flat_map(|s| s.bookings())
            .map(|b| b.confirmed_at_ms)
            .max()
    }
}

/// What [`recover`] rebuilt, and from where.
pub struct Recovered {
    pub state: State,
    /// Journal records replayed after the snapshot.
    pub records: u64,
    /// Journal position of the snapshot recovery started from, if any.
    pub snapshot: Option<u64>,
    /// Position after the last batch replayed (or the snapshot's).
    pub position: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("journal batch {batch}: {message}")]
    Invalid { batch: u64, message: String },
    #[error("snapshot {path}: {message}")]
    Snapshot { path: String, message: String },
    #[error("the journal starts at batch {first}, but no usable snapshot reaches it (snapshots: {tried})")]
    Gap { first: u64, tried: String },
}

/// Applies journal records, in order, to a [`State`].
pub struct Replay<'a> {
    state: State,
    remember: Remember<'a>,
}

/// The answer a change gave its client, as the API renders it (status
/// and body): what a replay remembers under the change's
/// `Idempotency-Key`, so a retry after a restart gets it again.
pub trait Answers: Sync + std::fmt::Debug {
    /// The answer to the change that had `outcome` in a section of `def`.
    fn change(&self, def: &EventDef, layout: &SectionLayout, outcome: &Outcome) -> (u16, Bytes);
    /// The answer to creating `def`, whose sections' counts (per
    /// category, in layout order) are `per_section`.
    fn event_created(
        &self,
        def: &EventDef,
        phases: &SalePhases,
        per_section: &[Vec<CategoryCounts>],
    ) -> (u16, Bytes);
}

/// What a replay does with the answers its records carry: renders each
/// (`answers`) and remembers in `store` those younger than `ttl_ms` at
/// `now_ms`.
#[derive(Clone, Copy)]
pub struct Remember<'a> {
    pub store: &'a IdempotencyStore,
    pub answers: &'a dyn Answers,
    pub now_ms: u64,
    pub ttl_ms: u64,
}

impl<'a> Replay<'a> {
    pub fn new(state: State, remember: Remember<'a>) -> Self {
        Replay { state, remember }
    }

    /// The state replayed, its tables no larger than what they hold now
    /// that nothing more is added at once.
    pub fn into_state(mut self) -> State {
        self.state.outbox.shrink_to_fit();
        self.state
    }

    /// The state as replayed so far, left as it is: for whoever applies
    /// a few records at a time and goes on (a replicated state machine),
    /// where [`Replay::into_state`]'s trim would cost every step.
    pub fn into_inner(self) -> State {
        self.state
    }

    fn fresh(&self, tag: &IdemTag) -> bool {
        let r = &self.remember;
        r.now_ms < tag.at_ms.saturating_add(r.ttl_ms)
    }

    /// Remembers `answer` as the first answer to the request `tag` names.
    fn remember(&self, tag: &IdemTag, (status, body): (u16, Bytes)) {
        self.remember
            .store
            .restore(&tag.key, tag.fingerprint, status, body, tag.at_ms);
    }

    /// Applies one record of journal batch `batch`. A record that does not
    /// fit the state (an unknown event, a change that does not apply) is
    /// an error naming the batch, never a guess.
    pub fn apply(&mut self, batch: u64, record: Record) -> Result<(), ReplayError> {
        let invalid = |message: String| ReplayError::Invalid { batch, message };
        match record {
            Record::EventCreated {
                spec_json,
                at_ms,
                idem: tag,
            } => {
                let spec = EventSpec::from_json(spec_json.as_bytes())
                    .map_err(|e| invalid(format!("event spec: {e}")))?;
                let def = Arc::new(
                    spec.build()
                        .map_err(|e| invalid(format!("event spec: {e}")))?,
                );
                let phases = spec
                    .phases()
                    .map_err(|e| invalid(format!("event spec: {e}")))?;
                let room = spec
                    .room()
                    .map_err(|e| invalid(format!("event spec: {e}")))?
                    .map(WaitingRoom::new);
                if self.state.events.contains_key(&def.id) {
                    return Err(invalid(format!("event {:?} created twice", def.id)));
                }
                let sections: Vec<Section> = def
                    .sections
                    .iter()
                    .map(|l| Section::new(Arc::clone(l), def.limits))
                    .collect();
                if let Some(tag) = tag.filter(|t| self.fresh(t)) {
                    let counts: Vec<_> = sections.iter().map(|s| s.counts().by_category).collect();
                    let answer = self.remember.answers.event_created(&def, &phases, &counts);
                    self.remember(&tag, answer);
                }
                self.state.events.insert(
                    def.id.clone(),
                    RecoveredEvent::new(Arc::clone(&def), at_ms, spec_json, phases, sections, room),
                );
            }
            Record::Section {
                event,
                section,
                change,
                idem: tag,
            } => {
                let fresh_tag = tag.filter(|t| self.fresh(t));
                let e = self
                    .state
                    .events
                    .get_mut(&event)
                    .ok_or_else(|| invalid(format!("change to unknown event {event:?}")))?;
                let i = e.section_index(&section).ok_or_else(|| {
                    invalid(format!("change to unknown section {event}/{section}"))
                })?;
                let s = &mut e.sections[i];
                let change = Change::from(change);
                s.apply(&change)
                    .map_err(|e| invalid(format!("{event}/{section}: {e}")))?;
                // The booking change is its email's outbox entry.
                if let Some(entry) = MailEntry::owed(&e.def, &e.names[i], s, &change) {
                    self.state.outbox.add(entry, self.remember.now_ms);
                }
                if let Some(tag) = fresh_tag {
                    if let Some(outcome) = s.outcome(&change) {
                        let answer = self.remember.answers.change(&e.def, s.layout(), &outcome);
                        self.remember(&tag, answer);
                    }
                }
            }
            Record::Mail {
                event,
                section,
                booking,
                kind,
                outcome,
            } => {
                let key = MailKey::new(&event, &section, booking, kind.into());
                self.state.outbox.apply(&key, &outcome.into());
            }
            Record::SalePhasesMoved {
                event,
                phases_json,
                at_ms: _,
            } => {
                let e = self
                    .state
                    .events
                    .get_mut(&event)
                    .ok_or_else(|| invalid(format!("phases of unknown event {event:?}")))?;
                let bad = |m: String| invalid(format!("phases of {event:?}: {m}"));
                let specs: Vec<SalePhaseSpec> =
                    serde_json::from_str(&phases_json).map_err(|err| bad(err.to_string()))?;
                e.phases =
                    build_phases("sale_phases", &specs).map_err(|err| bad(err.to_string()))?;
                // The document a snapshot keeps carries the phases as moved.
                let mut spec = EventSpec::from_json(e.spec_json.as_bytes())
                    .map_err(|err| bad(err.to_string()))?;
                spec.sale_phases = specs;
                e.spec_json = spec.to_json();
            }
            Record::WaitingRoomSet {
                event,
                settings,
                at_ms: _,
            } => {
                let e =
                    self.state.events.get_mut(&event).ok_or_else(|| {
                        invalid(format!("waiting room of unknown event {event:?}"))
                    })?;
                let bad = |m: String| invalid(format!("waiting room of {event:?}: {m}"));
                match (settings.map(RoomSettings::from), &mut e.room) {
                    (None, room) => *room = None,
                    (Some(s), Some(room)) => room
                        .apply(&RoomChange::Settings(s))
                        .map_err(|err| bad(err.to_string()))?,
                    (Some(s), room @ None) => {
                        s.check().map_err(|err| bad(err.to_string()))?;
                        *room = Some(WaitingRoom::new(s));
                    }
                }
            }
            Record::WaitingRoom { event, change } => {
                let room = self
                    .state
                    .events
                    .get_mut(&event)
                    .and_then(|e| e.room.as_mut())
                    .ok_or_else(|| invalid(format!("change to no waiting room of {event:?}")))?;
                room.apply(&RoomChange::from(change))
                    .map_err(|err| invalid(format!("waiting room of {event:?}: {err}")))?;
            }
        }
        Ok(())
    }

    /// Puts a checked snapshot's state (`restored`, from `snap`) in place
    /// of an empty start.
    pub fn load_snapshot(
        &mut self,
        snap: &snapshot::Snapshot,
        restored: snapshot::Restored,
    ) -> Result<(), String> {
        for e in restored.events {
            self.state.events.insert(
                e.def.id.clone(),
                RecoveredEvent::new(
                    e.def,
                    e.created_at_ms,
                    e.spec_json,
                    e.phases,
                    e.sections,
                    e.room,
                ),
            );
        }
        // Oldest first: the store expires answers in the order it got them.
        let mut answers: Vec<_> = snap.body.idempotency.iter().collect();
        answers.sort_by_key(|a| a.at_ms);
        let r = self.remember;
        for a in answers {
            if r.now_ms < a.at_ms.saturating_add(r.ttl_ms) {
                r.store.restore(
                    &a.key,
                    a.fingerprint,
                    a.status,
                    Bytes::from(a.body.clone()),
                    a.at_ms,
                );
            }
        }
        for m in &snap.body.outbox {
            let e = self
                .state
                .events
                .get(&m.event)
                .ok_or_else(|| format!("outbox entry for unknown event {:?}", m.event))?;
            let i = e.section_index(&m.section).ok_or_else(|| {
                format!("outbox entry for unknown section {}/{}", m.event, m.section)
            })?;
            let section = &e.sections[i];
            let booking = section.booking_shared(m.booking).ok_or_else(|| {
                format!(
                    "outbox entry for unknown booking {}/{}/{}",
                    m.event, m.section, m.booking
                )
            })?;
            let entry = MailEntry::new(
                &e.def,
                &e.names[i],
                section.layout(),
                booking,
                m.kind.into(),
            );
            self.state.outbox.restore(
                entry,
                m.attempts,
                m.next_at_ms,
                m.last_error.clone(),
                m.dead,
            );
        }
        Ok(())
    }
}

/// Hands memory freed by recovery (at start-up, and in the snapshotter)
/// back to the OS. Decoding a snapshot and replaying the journal allocate
/// and free a copy of the state; glibc keeps
/// freed memory mapped (below the heap top, in per-thread arenas) unless
/// asked, and a server that just recovered a stadium would carry that copy
/// as resident memory for its whole life.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the OS; it touches no
    // memory the program owns.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How often, in records replayed, recovery reports its progress.
pub const PROGRESS_EVERY: u64 = 4_096;

/// `report` at most once a second: progress for people watching a long
/// replay, not a log line per `PROGRESS_EVERY` records.
pub fn at_most_every_second(mut report: impl FnMut(u64)) -> impl FnMut(u64) {
    let mut last = std::time::Instant::now();
    move |records| {
        if last.elapsed() >= std::time::Duration::from_secs(1) {
            last = std::time::Instant::now();
            report(records);
        }
    }
}

/// Rebuilds every event and section from the newest usable snapshot and
/// the journal after it, up to batch `end` (all of it: `None`), and the
/// remembered idempotent answers younger than `idem_ttl_ms` at `now_ms`.
/// `progress` hears the records replayed so far, every `PROGRESS_EVERY`.
pub fn recover(
    data_dir: &Path,
    store: &JournalReader,
    remember: Remember<'_>,
    end: Option<u64>,
    progress: &mut dyn FnMut(u64),
) -> Result<Recovered, ReplayError> {
    let mut replay = Replay::new(State::default(), remember);
    let mut records = 0u64;

    // The newest snapshot that reads, checks and rebuilds; a damaged one
    // is skipped (logged) in favour of an older one.
    let mut start = 0;
    let mut snapshot_pos = None;
    let mut tried = Vec::new();
    let listed = snapshot::list(data_dir).map_err(|e| ReplayError::Snapshot {
        path: data_dir.join(snapshot::DIR).display().to_string(),
        message: e.to_string(),
    })?;
    for (_, path) in listed {
        let loaded = snapshot::read(&path).and_then(|mut snap| {
            let restored = snap.restore()?;
            Ok((snap, restored))
        });
        match loaded {
            Ok((snap, restored)) => {
                replay
                    .load_snapshot(&snap, restored)
                    .map_err(|message| ReplayError::Snapshot {
                        path: path.display().to_string(),
                        message,
                    })?;
                start = snap.header.journal_position;
                snapshot_pos = Some(start);
                break;
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "skipping an unusable snapshot");
                tried.push(format!("{}: {e}", path.display()));
            }
        }
    }
    let first = store.first_batch()?;
    if snapshot_pos.is_none() && !tried.is_empty() && first != Some(0) {
        // Snapshots exist, none loads, and the journal alone does not
        // reach back to the start: starting would silently lose data.
        return Err(ReplayError::Gap {
            first: first.unwrap_or(0),
            tried: tried.join("; "),
        });
    }
    if let Some(first) = first {
        if first > start {
            return Err(ReplayError::Gap {
                first,
                tried: if tried.is_empty() {
                    "none".into()
                } else {
                    tried.join("; ")
                },
            });
        }
    }

    let position = store.replay_range(start, end, |batch, record| {
        records += 1;
        if records.is_multiple_of(PROGRESS_EVERY) {
            progress(records);
        }
        replay.apply(batch, record)
    })?;
    Ok(Recovered {
        state: replay.into_state(),
        records,
        snapshot: snapshot_pos,
        position,
    })
}

/// Replays the data directory's newest snapshot and the journal up to
/// `end` (all of it: `None`) into a fresh state, and encodes it: a
/// snapshot is a function of the journal alone. Runs beside a live
/// server too (the snapshotter), reading only durable batches.
pub fn take_snapshot(
    data_dir: &Path,
    reader: &JournalReader,
    answers: &dyn Answers,
    idem_ttl_ms: u64,
    end: Option<u64>,
    now_ms: u64,
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<(snapshot::Header, Vec<u8>)> {
    // Answers are kept for one TTL before the newest one: a pure function
    // of the journal (no wall clock), and bounded, so snapshots do not
    // carry every answer ever given. Whoever loads the snapshot drops
    // what is stale by its own clock.
    let idem = IdempotencyStore::new(idem_ttl_ms, usize::MAX, None);
    let remember = Remember {
        store: &idem,
        answers,
        now_ms: 0,
        ttl_ms: idem_ttl_ms,
    };
    let recovered = recover(data_dir, reader, remember, end, progress)?;
    let position = end.unwrap_or(recovered.position).max(recovered.position);
    Ok(encode_snapshot(
        &recovered.state,
        &idem,
        idem_ttl_ms,
        position,
        now_ms,
        crate::data_dir::Lineage::load(data_dir)?,
    ))
}

/// Encodes `state`, recovered up to journal `position`, with the
/// answers `idem` remembers: those within one TTL of the newest (a pure
/// function of the journal when `idem` kept every answer; whoever loads
/// the snapshot drops what is stale by its own clock), and the data
/// directory's `lineage`.
pub fn encode_snapshot(
    state: &State,
    idem: &IdempotencyStore,
    idem_ttl_ms: u64,
    position: u64,
    now_ms: u64,
    lineage: Option<crate::data_dir::Lineage>,
) -> (snapshot::Header, Vec<u8>) {
    let mut answers = idem.answers(0);
    if let Some(newest) = answers.iter().map(|a| a.at_ms).max() {
        answers.retain(|a| a.at_ms.saturating_add(idem_ttl_ms) > newest);
    }
    let (header, body) = snapshot::capture(
        state.events.values().map(|e| snapshot::EventState {
            spec_json: &e.spec_json,
            def: &e.def,
            created_at_ms: e.created_at_ms,
            sections: &e.sections,
            room: e.room.as_ref(),
        }),
        &answers,
        &state.outbox,
        position,
        now_ms,
        lineage,
    );
    let bytes = snapshot::encode(&header, &body);
    (header, bytes)
}
