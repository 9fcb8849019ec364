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

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct RoomStats {
    pub joined: AtomicU64,
    pub admitted: AtomicU64,
    pub expired: AtomicU64,
    pub done: AtomicU64,
}

struct Live {
    room: WaitingRoom,
    /// The serving number whose admissions are durable.
    durable_serving: u64,
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
        Arc::new(RoomHandle {
            event: event.to_owned(),
            live: Mutex::new(Live {
                room,
                durable_serving: serving,
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
        let receipt = self
            .journal
            .append(bytes)
            .map_err(|_| RoomFailure::Unavailable)?;
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

    /// `fan` joins (again: keeps its place); answered once durable.
    pub async fn join(&self, fan: &FanId) -> Result<FanStanding, RoomFailure> {
        let receipt = {
            let mut live = self.lock();
            let now = self.clock.now_ms();
            self.open_if_due(&mut live, now)?;
            match live.room.decide_join(fan, now)? {
                Some(change) => Some(self.commit(&mut live, &change)?),
                None => None,
            }
        };
        if let Some(receipt) = receipt {
            durable(receipt).await?;
        }
        self.standing(fan).ok_or(RoomFailure::Off)
    }

    /// Where `fan` stands, if it joined; an admission not yet durable is
    /// shown as the head of the queue.
    pub fn standing(&self, fan: &str) -> Option<FanStanding> {
        let live = self.lock();
        let standing = match live.room.standing(&FanKey::of(fan))? {
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
        durable(receipt).await
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
        let (receipt, serving) = {
            let mut live = self.lock();
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
                        last = Some(r);
                    }
                    Err(_) => return,
                }
            }
            for change in live.room.decide_expiries(now, EXPIRIES_PER_TICK_MAX) {
                match self.commit(&mut live, &change) {
                    Ok(r) => last = Some(r),
                    Err(_) => return,
                }
            }
            (last, live.room.serving())
        };
        if let Some(receipt) = receipt {
            if durable(receipt).await.is_err() {
                return;
            }
        }
        let mut live = self.lock();
        live.durable_serving = live.durable_serving.max(serving);
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
        shuffle_seed: live.room.shuffle_seed(),
        admitted_per_sec,
    }
}

async fn durable(receipt: Receipt) -> Result<(), RoomFailure> {
    match receipt.await {
        Ok(Ok(_)) => Ok(()),
        _ => Err(RoomFailure::Unavailable),
    }
}
