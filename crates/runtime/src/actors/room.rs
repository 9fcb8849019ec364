//! One event's waiting room, live: `domain::WaitingRoom` behind a lock,
//! every change journaled in the order it is applied, and a ticker that
//! opens the room, admits fans by rate and expires unused admissions.
//!
//! A change is decided, queued to the journal and applied under the
//! room's lock, so the journal holds the room's changes in exactly the
//! order they were applied. A join is answered once it is durable. An
//! admission is shown (to the fan, in the public serving number) only
//! once its record is durable: `durable_serving` trails the room's
//! serving number until the ticker's receipt comes back, so no fan holds
//! an admission a crash could take away.
//!
//! Switching the room off retires this handle under its lock: a change
//! decided on a handle is journaled only while it is the event's room,
//! so a replay never meets a change to a room that is off.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::clock::Clock;
use crate::domain::{FanId, FanKey, RoomChange, RoomError, RoomSettings, Standing, WaitingRoom};
use crate::journal::{encode, room_record, Journal, Receipt};

/// How often the ticker looks for fans to admit and admissions to expire.
pub const TICK: Duration = Duration::from_millis(50);
/// Most expiries one tick journals.
const EXPIRIES_PER_TICK_MAX: usize = 4_096;
/// The window the admission rate is measured over.
const RATE_WINDOW_MS: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomFailure {
    #[error(transparent)]
    Refused(#[from] RoomError),
    /// The room was switched off (or replaced) meanwhile.
    #[error("the waiting room is off")]
    Off,
    /// The journal's queue is nearly full: refused before anything was
    /// decided, so sales keep the room they need.
    #[error("the journal is busy")]
    Busy,
    #[error("the journal is unavailable")]
    Unavailable,
}

/// What everyone may know of a room: the same for every fan, cheap to
/// read and to cache.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoomView {
    pub settings: RoomSettings,
    /// The first queue number not yet admitted (durably).
    pub serving: u64,
    /// Fans who joined.
    pub joined: u64,
    /// Admissions valid now.
    pub active: u32,
    pub shuffle_seed: Option<u64>,
    /// Fans admitted per second over the last ten seconds.
    pub admitted_per_sec: f64,
}

/// Where one fan stands, as shown: never an admission that is not durable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FanStanding {
    pub standing: Standing,
    pub view: RoomView,
}

/// Upper bounds, in seconds, of the buckets of the admitted fans' waits.
pub const WAIT_BUCKETS_S: [u64; 11] = [1, 5, 10, 30, 60, 120, 300, 600, 1_800, 3_600, 7_200];

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct RoomStats {
    pub joined: AtomicU64,
    pub admitted: AtomicU64,
    pub expired: AtomicU64,
    pub done: AtomicU64,
    /// Admitted fans by how long they waited (from their join, or the
    /// opening if later): one count per bucket of `WAIT_BUCKETS_S`, then
    /// the rest.
    pub waits: [AtomicU64; WAIT_BUCKETS_S.len() + 1],
    /// The admitted fans' waits added up, in milliseconds.
    pub waited_ms: AtomicU64,
}

impl RoomStats {
    fn waited(&self, ms: u64) {
        let i = WAIT_BUCKETS_S
            .iter()
            .position(|&b| ms <= b * 1000)
            .unwrap_or(WAIT_BUCKETS_S.len());
        self.waits[i].fetch_add(1, Ordering::Relaxed);
        self.waited_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

struct Live {
    room: WaitingRoom,
    /// The serving number whose admissions are durable.
    durable_serving: u64,
    /// The shuffle is durable: until then fans are shown the pre-queue
    /// and nobody the seed (a crash before it would draw another).
    durable_shuffle: bool,
    /// A change was queued whose durability nobody will hear of (the
    /// journal failed): nothing more is shown as durable.
    failed: bool,
    /// Switched off or replaced: nothing more is journaled through it.
    retired: bool,
    /// (at_ms, durable serving) samples, oldest first, for the measured
    /// rate.
    samples: VecDeque<(u64, u64)>,
}

pub struct RoomHandle {
    pub event: String,
    live: Mutex<Live>,
    journal: Journal,
    clock: Arc<dyn Clock>,
    pub stats: RoomStats,
}

impl RoomHandle {
    pub fn new(
        event: &str,
        room: WaitingRoom,
        journal: Journal,
        clock: Arc<dyn Clock>,
    ) -> Arc<RoomHandle> {
        let serving = room.serving();
        let shuffled = room.shuffle_seed().is_some();
        Arc::new(RoomHandle {
            event: event.to_owned(),
            live: Mutex::new(Live {
                room,
                durable_serving: serving,
                durable_shuffle: shuffled,
                failed: false,
                retired: false,
                samples: VecDeque::new(),
            }),
            journal,
            clock,
            stats: RoomStats::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Journals `change`, then applies it (the caller holds the lock).
    fn commit(&self, live: &mut Live, change: &RoomChange) -> Result<Receipt, RoomFailure> {
        if live.retired {
            return Err(RoomFailure::Off);
        }
        let bytes = encode(&room_record(&self.event, change, self.clock.now_ms()));
        let receipt = self.journal.append(bytes).map_err(|_| {
            live.failed = true;
            RoomFailure::Unavailable
        })?;
        if let Err(e) = live.room.apply(change) {
            // Decide and apply disagree: a bug. The journal has the change,
            // so the next start fails loudly on it rather than guessing.
            tracing::error!(event = %self.event, error = %e, "waiting room change did not apply");
        }
        match change {
            RoomChange::Joined { .. } => self.stats.joined.fetch_add(1, Ordering::Relaxed),
            RoomChange::Expired { .. } => self.stats.expired.fetch_add(1, Ordering::Relaxed),
            RoomChange::Done { .. } => self.stats.done.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        Ok(receipt)
    }

    /// The opening, if it has come and the pre-queue is not shuffled yet,
    /// with a seed from the operating system's randomness.
    fn open_if_due(&self, live: &mut Live, now_ms: u64) -> Result<Option<Receipt>, RoomFailure> {
        match live.room.decide_opening(now_ms, rand::random()) {
            Some(change) => self.commit(live, &change).map(Some),
            None => Ok(None),
        }
    }

    /// `fan` joins (again: keeps its place); answered once durable (the
    /// shuffle too, when this join is the one that found it due). While
    /// the journal's queue is nearly full, a join is refused (`Busy`)
    /// before anything is decided: holds of admitted fans come first.
    pub async fn join(&self, fan: &FanId) -> Result<FanStanding, RoomFailure> {
        if !self.journal.has_room() {
            return Err(RoomFailure::Busy);
        }
        let (receipt, shuffled) = {
            let mut live = self.lock();
            let now = self.clock.now_ms();
            let shuffle = self.open_if_due(&mut live, now)?;
            let shuffled = shuffle.is_some();
            let join = match live.room.decide_join(fan, now)? {
                Some(change) => Some(self.commit(&mut live, &change)?),
                None => None,
            };
            // The journal is written in order: the later receipt covers
            // the earlier record.
            (join.or(shuffle), shuffled)
        };
        if let Some(receipt) = receipt {
            self.durable(receipt).await?;
        }
        if shuffled {
            let mut live = self.lock();
            live.durable_shuffle = !live.failed;
        }
        self.standing(fan).ok_or(RoomFailure::Off)
    }

    /// Where `fan` stands, if it joined; an admission not yet durable is
    /// shown as the head of the queue.
    pub fn standing(&self, fan: &str) -> Option<FanStanding> {
        let live = self.lock();
        let standing = match live.room.standing(&FanKey::of(fan))? {
            _ if !live.durable_shuffle => Standing::PreQueue,
            Standing::Admitted { number, .. } if number >= live.durable_serving => {
                Standing::Waiting { number, ahead: 0 }
            }
            Standing::Waiting { number, .. } => Standing::Waiting {
                number,
                ahead: number.saturating_sub(live.durable_serving),
            },
            s => s,
        };
        Some(FanStanding {
            standing,
            view: view(&live),
        })
    }

    pub fn view(&self) -> RoomView {
        view(&self.lock())
    }

    /// Whether `fan` holds the durable admission `number`, valid at
    /// `now_ms`.
    pub fn admits(&self, fan: &str, number: u64, now_ms: u64) -> bool {
        let live = self.lock();
        number < live.durable_serving
            && matches!(
                live.room.standing(&FanKey::of(fan)),
                Some(Standing::Admitted { number: n, expires_at_ms }) if n == number && now_ms < expires_at_ms
            )
    }

    /// `fan`'s admission ended in a booking: its place under the cap
    /// frees. Not waited for: nobody's answer depends on it.
    pub fn done(&self, fan: &str) {
        let mut live = self.lock();
        let now = self.clock.now_ms();
        if let Ok(change) = live.room.decide_done(&FanKey::of(fan), now) {
            if let Err(e) = self.commit(&mut live, &change) {
                tracing::debug!(event = %self.event, error = %e, "admission not ended");
            }
        }
    }

    /// New settings for a running room; answered once durable.
    pub async fn set(&self, settings: RoomSettings) -> Result<(), RoomFailure> {
        let receipt = {
            let mut live = self.lock();
            let change = live.room.decide_settings(settings)?;
            self.commit(&mut live, &change)?
        };
        self.durable(receipt).await
    }

    /// Retires the room and journals `record` (its switch-off) under its
    /// lock, so no change of this room is journaled after it.
    pub fn retire_with(&self, record: Vec<u8>) -> Result<Receipt, RoomFailure> {
        let mut live = self.lock();
        let receipt = self
            .journal
            .append(record)
            .map_err(|_| RoomFailure::Unavailable)?;
        live.retired = true;
        Ok(receipt)
    }

    pub fn is_retired(&self) -> bool {
        self.lock().retired
    }

    /// One tick: the opening when due, the fans whose turn has come, and
    /// the admissions unused past their time; admissions are shown once
    /// durable.
    pub async fn tick(&self) {
        let (receipt, serving, shuffled) = {
            let mut live = self.lock();
            if live.failed || !self.journal.has_room() {
                return;
            }
            let now = self.clock.now_ms();
            let mut last = match self.open_if_due(&mut live, now) {
                Ok(r) => r,
                Err(_) => return,
            };
            if let Some(change) = live.room.decide_admission(now) {
                let before = live.room.serving();
                match self.commit(&mut live, &change) {
                    Ok(r) => {
                        let admitted = live.room.serving() - before;
                        self.stats.admitted.fetch_add(admitted, Ordering::Relaxed);
                        let opens_s = live.room.settings().opens_at_ms / 1000;
                        for n in before..live.room.serving() {
                            let from_s = live
                                .room
                                .joined_s(n)
                                .map_or(opens_s, |j| opens_s.max(u64::from(j)));
                            self.stats.waited(now.saturating_sub(from_s * 1000));
                        }
                        last = Some(r);
                    }
                    Err(_) => return,
                }
            }
            let max = EXPIRIES_PER_TICK_MAX.min(self.journal.room());
            for change in live.room.decide_expiries(now, max) {
                match self.commit(&mut live, &change) {
                    Ok(r) => last = Some(r),
                    Err(_) => return,
                }
            }
            (
                last,
                live.room.serving(),
                live.room.shuffle_seed().is_some(),
            )
        };
        if let Some(receipt) = receipt {
            if self.durable(receipt).await.is_err() {
                return;
            }
        }
        let mut live = self.lock();
        if live.failed {
            return;
        }
        live.durable_serving = live.durable_serving.max(serving);
        live.durable_shuffle |= shuffled;
        let now = self.clock.now_ms();
        let durable_serving = live.durable_serving;
        live.samples.push_back((now, durable_serving));
        while live
            .samples
            .front()
            .is_some_and(|&(at, _)| at + RATE_WINDOW_MS < now)
        {
            live.samples.pop_front();
        }
    }

    /// Ticks until the room is retired (or its arbiter stops).
    pub async fn run(self: Arc<Self>) {
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if self.is_retired() {
                return;
            }
            self.tick().await;
        }
    }
}

impl RoomHandle {
    /// Waits for `receipt`; a journal that failed marks the room failed,
    /// so nothing after it is shown as durable.
    async fn durable(&self, receipt: Receipt) -> Result<(), RoomFailure> {
        match receipt.await {
            Ok(Ok(_)) => Ok(()),
            _ => {
                self.lock().failed = true;
                Err(RoomFailure::Unavailable)
            }
        }
    }
}

fn view(live: &Live) -> RoomView {
    let admitted_per_sec = match (live.samples.front(), live.samples.back()) {
        (Some(&(t0, s0)), Some(&(t1, s1))) if t1 > t0 => {
            (s1 - s0) as f64 * 1000.0 / (t1 - t0) as f64
        }
        _ => 0.0,
    };
    RoomView {
        settings: *live.room.settings(),
        serving: live.durable_serving,
        joined: live.room.len(),
        active: live.room.active(),
        shuffle_seed: live.room.shuffle_seed().filter(|_| live.durable_shuffle),
        admitted_per_sec,
    }
}
