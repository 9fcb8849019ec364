//! The journal: every change is written ahead to sled, and made durable,
//! before anyone is told it happened.
//!
//! Section actors encode their records on their own threads and hand them
//! to the one flusher thread through a bounded crossbeam channel. The
//! flusher takes everything waiting (up to `batch_records_max`), writes it
//! as one sled batch, flushes sled, `fdatasync`s sled's data file, and only
//! then completes every waiting [`Receipt`]: a 2xx means on stable storage.
//!
//! Architecture invariants:
//! - only the flusher thread writes to or flushes sled (sled 0.34.7 can
//!   deadlock on concurrent `flush_async`, spacejam/sled#1308; sled's own
//!   periodic flusher is turned off);
//! - sled's `flush()` only `sync_file_range`s (spacejam/sled#1351), so the
//!   flusher also `fdatasync`s the data file;
//! - no batch chunk exceeds `CHUNK_BYTES`, so sled never moves a value into
//!   a separate blob file, which it writes without any sync;
//! - after the first failed write the journal refuses everything
//!   (fail-stop): memory may be ahead of disk, so nothing more may be
//!   acknowledged.

pub mod record;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

pub use record::{
    decode_all, encode, encode_into, room_record, ChangeRecord, ClaimRecord, IdemTag,
    MailKindRecord, MailOutcomeRecord, Record, RoomChangeRecord, RoomSettingsRecord,
};

/// Largest value the journal hands sled. sled 0.34 writes any page above
/// segment_size / 4 (128 KiB by default) as a blob file without fsync, and
/// a leaf page holds up to 17 values before it splits: 17 × 4 KiB stays
/// well below, so every byte lands in the data file we sync.
pub const CHUNK_BYTES: usize = 4 << 10;

/// How long `Store::open` waits for sled to let go of a store this
/// process closed.
pub const SLED_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Most old journal keys one compaction step removes while the flusher is
/// idle.
pub const COMPACT_KEYS_PER_STEP: usize = 1024;

#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// Most records in one group commit.
    pub batch_records_max: usize,
    /// Capacity of the queue in front of the flusher.
    pub queue_capacity: usize,
    /// `fdatasync` sled's data file after every flush. Off only for
    /// measuring what it costs.
    pub sync_data: bool,
    /// Failpoint for tests: every write after this many batches (in this
    /// run) fails, as a full or broken disk would.
    pub fail_after_batches: Option<u64>,
    /// Failpoint for tests: the flusher panics at its first write.
    pub panic_at_write: bool,
    /// Failpoint for tests: every group commit takes this much longer, as
    /// on a slow disk.
    pub write_delay: std::time::Duration,
    /// Failpoint for tests: every group commit waits this long with its
    /// batch in sled (readable beside the flusher) but not yet flushed,
    /// synced or durable.
    pub unsynced_delay: std::time::Duration,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            batch_records_max: 4096,
            queue_capacity: 65_536,
            sync_data: true,
            fail_after_batches: None,
            panic_at_write: false,
            write_delay: std::time::Duration::ZERO,
            unsynced_delay: std::time::Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    #[error("the journal failed to write and refuses further changes")]
    Failed,
    #[error("the journal is closed")]
    Closed,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the journal in {path}: {source}")]
    Sled { path: PathBuf, source: sled::Error },
    #[error("cannot open sled's data file {path} for syncing: {source}")]
    DataFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("journal batch {batch} is corrupt: {message}")]
    Corrupt { batch: u64, message: String },
    #[error("reading the journal failed: {0}")]
    Read(sled::Error),
}

/// Counters the flusher keeps, for benches and metrics.
#[derive(Debug)]
pub struct JournalStats {
    pub batches: AtomicU64,
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub flush_ns: AtomicU64,
    /// Seconds per group commit (write + flush + fdatasync).
    pub flush_seconds: prometheus::Histogram,
    /// Records per group commit.
    pub batch_records: prometheus::Histogram,
}

impl Default for JournalStats {
    fn default() -> Self {
        let h = |name: &str, help: &str, buckets: Vec<f64>| {
            prometheus::Histogram::with_opts(
                prometheus::HistogramOpts::new(name, help).buckets(buckets),
            )
            .expect("a valid histogram")
        };
        JournalStats {
            batches: AtomicU64::new(0),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            flush_ns: AtomicU64::new(0),
            flush_seconds: h(
                "boxoffice_journal_flush_seconds",
                "Time of one group commit: sled write, flush and fdatasync",
                prometheus::exponential_buckets(0.000_1, 2.0, 14).expect("valid buckets"),
            ),
            batch_records: h(
                "boxoffice_journal_batch_records",
                "Records per group commit",
                prometheus::exponential_buckets(1.0, 2.0, 14).expect("valid buckets"),
            ),
        }
    }
}

/// One encoded record and whoever waits for it to be durable.
struct Entry {
    bytes: Vec<u8>,
    done: Option<Done>,
    note: Option<Note>,
}

/// Whoever waits for a record: told its batch's position once it is
/// durable, or that the journal failed.
enum Done {
    /// The sending half of a [`Receipt`].
    Receipt(oneshot::Sender<Result<u64, JournalError>>),
    /// Called where the batch's outcome is learnt (see
    /// [`Journal::append_noted_then`]).
    Then(Then),
}

/// What [`Journal::append_noted_then`] calls once its record is durable
/// (or the journal failed).
pub type Then = Box<dyn FnOnce(Result<u64, JournalError>) + Send>;

impl Done {
    fn finish(self, result: Result<u64, JournalError>) {
        match self {
            // The requester may have gone (a client hung up): the change
            // is durable all the same.
            Done::Receipt(tx) => {
                let _ = tx.send(result);
            }
            Done::Then(then) => then(result),
        }
    }
}

/// Something a record's writer wants handed on once the record is
/// durable (a section's seat change, for the view it publishes). The
/// journal only carries it, in the record's order, and never looks
/// inside.
pub type Note = Box<dyn std::any::Any + Send>;

/// One durable batch as the flusher hands it on (see
/// [`Journal::durable_batches`]): the position after it, and the notes of
/// its records in journal order.
pub struct DurableBatch {
    pub position: u64,
    pub notes: Vec<Note>,
}

/// Where the flusher makes a batch durable: this process's sled store
/// ([`Store`], a lone server), or a majority of a shard's replicas (the
/// Raft log of `boxoffice-raft`). Only the flusher calls it.
pub trait Sink: Send + 'static {
    /// Makes `bytes` (whole encoded records) durable as the next batch,
    /// then calls `done` with its position, or with the error (which
    /// fails the journal for good). `done` runs once per batch, in the
    /// order the batches were submitted, on any thread; a sink may keep
    /// several batches in flight, and block here while it has as many as
    /// it takes.
    fn submit(&mut self, bytes: Vec<u8>, config: &JournalConfig, done: Completion);

    /// Returns once every submitted batch's `done` has run.
    fn drain(&mut self) {}

    /// Removes up to `max` keys of batches below `below` (covered by a
    /// durable snapshot) and returns how many; called while the flusher
    /// is idle. A sink that compacts itself removes nothing.
    fn compact(&mut self, below: u64, max: usize) -> std::io::Result<usize>;
}

/// What a [`Sink`] calls with a batch's outcome.
pub type Completion = Box<dyn FnOnce(std::io::Result<u64>) + Send>;

impl Sink for Store {
    /// One batch at a time: durable (or failed) before this returns.
    fn submit(&mut self, bytes: Vec<u8>, config: &JournalConfig, done: Completion) {
        done(self.write(&bytes, config.sync_data, config.unsynced_delay))
    }

    fn compact(&mut self, below: u64, max: usize) -> std::io::Result<usize> {
        compact_step(&self.db, below, max).map_err(io_error)
    }
}

/// What the flusher's queue carries.
enum Queued {
    Record(Entry),
    /// Sent by `close`: write what came before, then end.
    Stop,
}

/// A pending durability promise: resolves to the batch position once the
/// record is on stable storage.
pub type Receipt = oneshot::Receiver<Result<u64, JournalError>>;

struct Shared {
    tx: Sender<Queued>,
    /// No more appends: a write failed, or the journal is closing.
    failed: AtomicBool,
    /// A write failed: no batch after it may be acknowledged, even one
    /// its sink made durable (what decided it may stand on the failed
    /// one).
    broken: AtomicBool,
    capacity: usize,
    stats: JournalStats,
    /// Position after the last durable batch: every batch below it is on
    /// stable storage (what a snapshot may read up to).
    durable: AtomicU64,
    /// Batches below this are covered by a durable snapshot and may be
    /// dropped; the flusher removes them a little at a time.
    compact_below: AtomicU64,
    /// Where durable batches are handed on, once someone asked.
    durable_tx: std::sync::Mutex<Option<Sender<DurableBatch>>>,
    /// Reads beside the flusher (the change feed); taken when the
    /// flusher ends, so no handle keeps sled open after it.
    reader: std::sync::Mutex<Option<JournalReader>>,
}

/// A cheap, clonable handle for appending records.
#[derive(Clone)]
pub struct Journal {
    shared: Arc<Shared>,
}

/// The journal's sled store before the flusher starts: replay it, then
/// `start` it.
pub struct Store {
    db: sled::Db,
    dir: PathBuf,
    data_file: File,
    next_batch: u64,
}

impl Store {
    /// Opens (or creates) the store in `dir` (see [`open_sled`]).
    pub fn open(dir: &Path) -> Result<Store, OpenError> {
        let (db, data_file) = open_sled(dir)?;
        Ok(Store {
            db,
            dir: dir.to_owned(),
            data_file,
            next_batch: 0,
        })
    }

    /// Closes and opens the store again, keeping its next position: frees
    /// what a replay left in sled's page cache. sled keeps every page a
    /// read pulled in, and `cache_capacity` (counted in on-disk bytes)
    /// does not bound it in practice: after replaying a 1,000,000-record
    /// tail the server held 26 MB of journal pages it would never read
    /// again (benches/snapshot.rs; the reopen takes ~3 ms). Every
    /// `JournalReader` of this store must be dropped first, or the open
    /// waits for them and fails.
    pub fn reopen(self) -> Result<Store, OpenError> {
        let Store {
            db,
            dir,
            data_file,
            next_batch,
        } = self;
        drop((db, data_file));
        let mut store = Store::open(&dir)?;
        store.advance_to(next_batch);
        Ok(store)
    }

    /// Never hands out a batch position below `position` (after loading a
    /// snapshot that reaches there, new batches must come after it).
    pub fn advance_to(&mut self, position: u64) {
        self.next_batch = self.next_batch.max(position);
    }

    /// A read-only view of the journal that stays valid after `start`
    /// (sled allows reads beside the one writer).
    pub fn reader(&self) -> JournalReader {
        JournalReader {
            db: self.db.clone(),
        }
    }

    /// Writes one batch durably: one sled batch, one flush, one fdatasync.
    fn write(
        &mut self,
        bytes: &[u8],
        sync_data: bool,
        unsynced_delay: std::time::Duration,
    ) -> Result<u64, std::io::Error> {
        let batch = self.next_batch;
        let mut b = sled::Batch::default();
        for (i, chunk) in bytes.chunks(CHUNK_BYTES).enumerate() {
            b.insert(&batch_key(batch, i as u32)[..], chunk);
        }
        self.db.apply_batch(b).map_err(io_error)?;
        if !unsynced_delay.is_zero() {
            std::thread::sleep(unsynced_delay);
        }
        self.db.flush().map_err(io_error)?;
        if sync_data {
            self.data_file.sync_data()?;
        }
        self.next_batch += 1;
        Ok(batch)
    }

    /// Starts the flusher thread and returns the append handle and the
    /// thread, which ends once every `Journal` clone is dropped and the
    /// queue is drained.
    pub fn start(self, config: JournalConfig) -> (Journal, JoinHandle<()>) {
        let (position, reader) = (self.next_batch, self.reader());
        Journal::start(Box::new(self), position, Some(reader), config)
    }
}

/// A read-only handle on the journal, for replays beside the flusher (the
/// snapshotter). Only ever reads batches the flusher has made durable.
#[derive(Clone)]
pub struct JournalReader {
    db: sled::Db,
}

impl JournalReader {
    /// A reader of a sled store that someone else writes in the
    /// journal's format (a shard's Raft log: batch `i` is entry `i`).
    pub fn over(db: sled::Db) -> JournalReader {
        JournalReader { db }
    }

    /// Replays batches in `[start, end)` (`end: None`: to the last one) and
    /// returns the position after the last batch seen.
    pub fn replay_range<E: From<OpenError>>(
        &self,
        start: u64,
        end: Option<u64>,
        f: impl FnMut(u64, Record) -> Result<(), E>,
    ) -> Result<u64, E> {
        replay_range(&self.db, start, end, f)
    }

    pub fn first_batch(&self) -> Result<Option<u64>, OpenError> {
        match self.db.first().map_err(OpenError::Read)? {
            Some((k, _)) => Ok(parse_batch_key(&k).map(|(b, _)| b)),
            None => Ok(None),
        }
    }
}

fn replay_range<E: From<OpenError>>(
    db: &sled::Db,
    start: u64,
    end: Option<u64>,
    mut f: impl FnMut(u64, Record) -> Result<(), E>,
) -> Result<u64, E> {
    let mut next = start;
    let mut current: Option<(u64, u32, Vec<u8>)> = None;
    let finish = |batch: u64, bytes: &[u8], f: &mut dyn FnMut(u64, Record) -> Result<(), E>| {
        let records = decode_all(bytes).map_err(|e| OpenError::Corrupt {
            batch,
            message: e.to_string(),
        })?;
        for r in records {
            f(batch, r)?;
        }
        Ok::<(), E>(())
    };
    let range = match end {
        Some(end) => db.range(batch_key(start, 0)..batch_key(end, 0)),
        None => db.range(batch_key(start, 0)..),
    };
    for item in range {
        let (k, value) = item.map_err(OpenError::Read)?;
        let Some((batch, chunk)) = parse_batch_key(&k) else {
            return Err(OpenError::Corrupt {
                batch: next,
                message: format!("unexpected key of {} bytes", k.len()),
            }
            .into());
        };
        match &mut current {
            Some((b, c, buf)) if *b == batch => {
                if chunk != *c + 1 {
                    return Err(OpenError::Corrupt {
                        batch,
                        message: format!("chunk {chunk} follows chunk {c}"),
                    }
                    .into());
                }
                *c = chunk;
                buf.extend_from_slice(&value);
            }
            _ => {
                if let Some((b, _, buf)) = current.take() {
                    finish(b, &buf, &mut f)?;
                }
                if chunk != 0 {
                    return Err(OpenError::Corrupt {
                        batch,
                        message: format!("batch starts at chunk {chunk}"),
                    }
                    .into());
                }
                current = Some((batch, 0, value.to_vec()));
            }
        }
        next = batch + 1;
    }
    if let Some((b, _, buf)) = current.take() {
        finish(b, &buf, &mut f)?;
    }
    Ok(next)
}

/// Removes up to `max` journal keys below batch `below`; returns how many.
/// Only the flusher calls it (it is a write).
fn compact_step(db: &sled::Db, below: u64, max: usize) -> Result<usize, sled::Error> {
    let mut batch = sled::Batch::default();
    let mut n = 0;
    for item in db.range(..batch_key(below, 0)).keys().take(max) {
        batch.remove(item?);
        n += 1;
    }
    if n > 0 {
        db.apply_batch(batch)?;
        db.flush()?;
    }
    Ok(n)
}

/// sled's error for a store whose file lock is held (it words it, with
/// the OS error inside, as an `Other` IO error).
fn is_lock_held(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock"))
}

fn io_error(e: sled::Error) -> std::io::Error {
    match e {
        sled::Error::Io(io) => io,
        other => std::io::Error::other(other.to_string()),
    }
}

/// The sled key of chunk `chunk` of batch `batch`: whoever writes a
/// store in the journal's format (a Raft log) writes these.
pub fn batch_key(batch: u64, chunk: u32) -> [u8; 12] {
    let mut k = [0; 12];
    k[..8].copy_from_slice(&batch.to_be_bytes());
    k[8..].copy_from_slice(&chunk.to_be_bytes());
    k
}

/// The batch and chunk a journal key names; `None` for any other key.
pub fn parse_batch_key(k: &[u8]) -> Option<(u64, u32)> {
    if k.len() != 12 {
        return None;
    }
    Some((
        u64::from_be_bytes(k[..8].try_into().ok()?),
        u32::from_be_bytes(k[8..].try_into().ok()?),
    ))
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn flusher(
    sink: Box<dyn Sink>,
    rx: Receiver<Queued>,
    shared: std::sync::Weak<Shared>,
    config: JournalConfig,
) {
    /// However the flusher ends (a panic too): whoever takes the durable
    /// batches learns there are no more, and sled is closed once the
    /// readers given out are done.
    struct Ended<'a>(&'a std::sync::Weak<Shared>);
    impl Drop for Ended<'_> {
        fn drop(&mut self) {
            if let Some(s) = self.0.upgrade() {
                lock(&s.durable_tx).take();
                lock(&s.reader).take();
            }
        }
    }
    let _ended = Ended(&shared);
    write_batches(sink, rx, &shared, config);
}

fn write_batches(
    mut sink: Box<dyn Sink>,
    rx: Receiver<Queued>,
    shared: &std::sync::Weak<Shared>,
    config: JournalConfig,
) {
    let mut written = 0u64;
    // Batches below this are already removed (or never existed).
    let mut compacted = 0u64;
    loop {
        let Some((batch, stopping)) = next_batch(&rx, &mut *sink, shared, &mut compacted, &config)
        else {
            break;
        };
        if shared
            .upgrade()
            .is_some_and(|s| s.broken.load(Ordering::SeqCst))
        {
            // A write failed (perhaps while this batch gathered): nothing
            // more goes to the sink.
            for e in batch {
                if let Some(done) = e.done {
                    done.finish(Err(JournalError::Failed));
                }
            }
            if !stopping {
                refuse_queued(&rx);
            }
            break;
        }
        if config.panic_at_write {
            panic!("failpoint: the flusher panics at its first write");
        }
        if !config.write_delay.is_zero() {
            std::thread::sleep(config.write_delay);
        }
        let mut bytes = Vec::with_capacity(batch.iter().map(|e| e.bytes.len()).sum());
        for e in &batch {
            bytes.extend_from_slice(&e.bytes);
        }
        let submitted = Submitted {
            records: batch.len(),
            bytes: bytes.len(),
            entries: batch,
            started: Instant::now(),
            shared: shared.clone(),
        };
        if config.fail_after_batches.is_some_and(|n| written >= n) {
            submitted.finish(Err(std::io::Error::other(
                "failpoint: journal write refused",
            )));
        } else {
            sink.submit(bytes, &config, Box::new(move |r| submitted.finish(r)));
        }
        written += 1;
        if stopping {
            break;
        }
    }
    sink.drain();
}

/// The next batch: the first record to come (compacting old batches
/// while none does), and what else is queued, up to the batch's size;
/// whether a stop came with it. `None` once stopped with nothing queued.
fn next_batch(
    rx: &Receiver<Queued>,
    sink: &mut dyn Sink,
    shared: &std::sync::Weak<Shared>,
    compacted: &mut u64,
    config: &JournalConfig,
) -> Option<(Vec<Entry>, bool)> {
    use crossbeam_channel::RecvTimeoutError;
    let first = loop {
        let below = shared
            .upgrade()
            .map_or(0, |s| s.compact_below.load(Ordering::Relaxed));
        // Compaction pending: remove a slice of old batches whenever the
        // queue is idle, so commits never wait behind it; otherwise wake
        // now and then to notice new compaction work.
        let idle = if below > *compacted { 5 } else { 50 };
        match rx.recv_timeout(std::time::Duration::from_millis(idle)) {
            Ok(Queued::Record(e)) => break e,
            Ok(Queued::Stop) | Err(RecvTimeoutError::Disconnected) => return None,
            Err(RecvTimeoutError::Timeout) if below > *compacted => {
                match sink.compact(below, COMPACT_KEYS_PER_STEP) {
                    Ok(n) if n < COMPACT_KEYS_PER_STEP => *compacted = below,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::error!(%error, "journal compaction failed; old batches stay");
                        *compacted = below;
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    };
    let mut batch = Vec::with_capacity(config.batch_records_max.min(1024));
    batch.push(first);
    while batch.len() < config.batch_records_max {
        match rx.try_recv() {
            Ok(Queued::Stop) => return Some((batch, true)),
            Ok(Queued::Record(e)) => batch.push(e),
            Err(_) => break,
        }
    }
    Some((batch, false))
}

/// After a failed write: refuses what is still queued or racing in,
/// until `close` sends its stop marker (or every handle is gone):
/// shutdown must not wait for senders that live as long as it does.
fn refuse_queued(rx: &Receiver<Queued>) {
    for queued in rx.iter() {
        let Queued::Record(e) = queued else {
            return;
        };
        if let Some(done) = e.done {
            done.finish(Err(JournalError::Failed));
        }
    }
}

/// A batch handed to the sink, and whoever waits for its records.
struct Submitted {
    entries: Vec<Entry>,
    records: usize,
    bytes: usize,
    started: Instant,
    shared: std::sync::Weak<Shared>,
}

impl Submitted {
    /// Tells everyone waiting for the batch's records its outcome (in
    /// the order batches were submitted: the sink's promise).
    fn finish(self, result: std::io::Result<u64>) {
        let elapsed = self.started.elapsed();
        let shared = self.shared.upgrade();
        if let Some(s) = &shared {
            s.stats.batches.fetch_add(1, Ordering::Relaxed);
            s.stats.flush_seconds.observe(elapsed.as_secs_f64());
            s.stats.batch_records.observe(self.records as f64);
            s.stats
                .records
                .fetch_add(self.records as u64, Ordering::Relaxed);
            s.stats
                .bytes
                .fetch_add(self.bytes as u64, Ordering::Relaxed);
            s.stats
                .flush_ns
                .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        }
        let broken_before = shared
            .as_ref()
            .is_some_and(|s| s.broken.load(Ordering::SeqCst));
        match result {
            Ok(position) if !broken_before => {
                let handed_on = shared.as_ref().and_then(|s| {
                    s.durable.store(position + 1, Ordering::Release);
                    lock(&s.durable_tx).clone()
                });
                let mut notes = Vec::new();
                for e in self.entries {
                    if let Some(done) = e.done {
                        done.finish(Ok(position));
                    }
                    if let (Some(note), Some(_)) = (e.note, &handed_on) {
                        notes.push(note);
                    }
                }
                if let Some(tx) = handed_on {
                    // Unbounded: the receiver only applies notes to
                    // memory, and the flusher must never wait for it.
                    let _ = tx.send(DurableBatch {
                        position: position + 1,
                        notes,
                    });
                }
            }
            outcome => {
                if let Err(error) = outcome {
                    if !broken_before {
                        tracing::error!(%error, records = self.records, "journal write failed; refusing all further changes");
                    }
                }
                if let Some(s) = &shared {
                    s.broken.store(true, Ordering::SeqCst);
                    s.failed.store(true, Ordering::SeqCst);
                }
                for e in self.entries {
                    if let Some(done) = e.done {
                        done.finish(Err(JournalError::Failed));
                    }
                }
            }
        }
    }
}

impl Journal {
    /// Starts a flusher that writes to `sink` from batch `position` on
    /// (`reader`: what reads the batches it writes, for the change feed
    /// and the snapshotter). The thread ends once every `Journal` clone is
    /// dropped and the queue is drained.
    pub fn start(
        sink: Box<dyn Sink>,
        position: u64,
        reader: Option<JournalReader>,
        config: JournalConfig,
    ) -> (Journal, JoinHandle<()>) {
        assert!(config.batch_records_max >= 1 && config.queue_capacity >= 1);
        let (tx, rx) = crossbeam_channel::bounded(config.queue_capacity);
        let shared = Arc::new(Shared {
            tx,
            failed: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            capacity: config.queue_capacity,
            stats: JournalStats::default(),
            durable: AtomicU64::new(position),
            compact_below: AtomicU64::new(0),
            durable_tx: std::sync::Mutex::new(None),
            reader: std::sync::Mutex::new(reader),
        });
        let weak = Arc::downgrade(&shared);
        let thread = std::thread::Builder::new()
            .name("journal-flusher".into())
            .spawn(move || flusher(sink, rx, weak, config))
            .expect("spawn the journal flusher");
        (Journal { shared }, thread)
    }

    /// Queues an encoded record (see [`record::encode`]); the receipt
    /// resolves once it is durable.
    pub fn append(&self, bytes: Vec<u8>) -> Result<Receipt, JournalError> {
        self.append_noted(bytes, None)
    }

    /// Queues an encoded record with a note for whoever takes the durable
    /// batches ([`Journal::durable_batches`]).
    pub fn append_noted(
        &self,
        bytes: Vec<u8>,
        note: Option<Note>,
    ) -> Result<Receipt, JournalError> {
        assert!(!bytes.is_empty(), "records are framed, never empty");
        let (done, receipt) = oneshot::channel();
        self.push(Entry {
            bytes,
            done: Some(Done::Receipt(done)),
            note,
        })?;
        Ok(receipt)
    }

    /// Queues an encoded record with a note, and `then` to be called with
    /// its batch's position once it is durable (or with the failure): on
    /// the thread that learns it (the flusher's for a lone store, the
    /// sink's ack thread for a replicated one), in the record's order, so
    /// it must only hand the news on (a channel send), never wait. Whoever
    /// waits for the change is woken by that thread, none in between.
    /// Refused (`Err`), `then` is dropped uncalled.
    pub fn append_noted_then(
        &self,
        bytes: Vec<u8>,
        note: Option<Note>,
        then: Then,
    ) -> Result<(), JournalError> {
        assert!(!bytes.is_empty(), "records are framed, never empty");
        self.push(Entry {
            bytes,
            done: Some(Done::Then(then)),
            note,
        })
    }

    /// [`Journal::append_unacked`] with a note.
    pub fn append_unacked_noted(
        &self,
        bytes: Vec<u8>,
        note: Option<Note>,
    ) -> Result<(), JournalError> {
        self.push(Entry {
            bytes,
            done: None,
            note,
        })
    }

    /// Queues a record nobody waits for (an expiry). Later receipts still
    /// imply it is durable: the journal is written in order.
    pub fn append_unacked(&self, bytes: Vec<u8>) -> Result<(), JournalError> {
        self.append_unacked_noted(bytes, None)
    }

    /// Every batch made durable from now on, in order, with its records'
    /// notes: for the one reader that publishes views of durable state.
    /// A second call takes the batches from the first. The channel ends
    /// when the flusher does; before anyone asks, notes are dropped.
    pub fn durable_batches(&self) -> Receiver<DurableBatch> {
        let (tx, rx) = crossbeam_channel::unbounded();
        *lock(&self.shared.durable_tx) = Some(tx);
        rx
    }

    fn push(&self, entry: Entry) -> Result<(), JournalError> {
        if self.is_failed() {
            return Err(JournalError::Failed);
        }
        match self.shared.tx.try_send(Queued::Record(entry)) {
            Ok(()) => Ok(()),
            // Callers check `has_room` before deciding a change, so a full
            // queue here is a race between sections: wait for the flusher
            // rather than lose a change that is already applied in memory.
            Err(TrySendError::Full(queued)) => self
                .shared
                .tx
                .send(queued)
                .map_err(|_| JournalError::Closed),
            Err(TrySendError::Disconnected(_)) => Err(JournalError::Closed),
        }
    }

    /// Asks the flusher to write what is queued and stop, releasing sled
    /// (and its file lock) once the thread ends. Later appends fail.
    pub fn close(&self) {
        self.shared.failed.store(true, Ordering::SeqCst);
        let _ = self.shared.tx.send(Queued::Stop);
    }

    /// Position after the last durable batch: a snapshot may read every
    /// batch below it.
    pub fn durable_position(&self) -> u64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    /// Reads the journal beside the flusher; read only below
    /// `durable_position`, which is what is on stable storage. `None`
    /// once the flusher has ended.
    pub fn reader(&self) -> Option<JournalReader> {
        lock(&self.shared.reader).clone()
    }

    /// Lets the flusher drop batches below `position` (covered by a
    /// durable snapshot), a little at a time when it is idle.
    pub fn compact_below(&self, position: u64) {
        self.shared
            .compact_below
            .fetch_max(position, Ordering::Relaxed);
    }

    /// Batches below this may be removed by compaction at any moment.
    pub fn compacting_below(&self) -> u64 {
        self.shared.compact_below.load(Ordering::Relaxed)
    }

    /// Whether the queue has room to take a new change without waiting.
    /// Sections refuse work (503) when it has not, instead of queueing.
    pub fn has_room(&self) -> bool {
        self.room() > 0
    }

    /// How many more records the queue takes before it counts as full
    /// (three quarters of its capacity: the rest absorbs races between
    /// sections that checked at once).
    pub fn room(&self) -> usize {
        (self.shared.capacity / 4 * 3).saturating_sub(self.shared.tx.len())
    }

    pub fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> &JournalStats {
        &self.shared.stats
    }
}

/// Opens (or creates) a sled store in `dir` the way every durable store
/// of ours needs it: only its owner flushes (spacejam/sled#1308), its
/// directory and names synced, and its data file open for `fdatasync`
/// (sled's own flush only `sync_file_range`s, spacejam/sled#1351).
///
/// sled 0.34 lets go of its file lock only when its IO threads have
/// finished with a dropped `Db`, a little after the drop
/// (spacejam/sled#1234, #1289), so opening a store this process just
/// closed can find it locked. Another process is kept out earlier, by
/// the data directory's own lock, so a locked store here is our own
/// closing one: wait for it, up to `SLED_LOCK_WAIT`.
pub fn open_sled(dir: &Path) -> Result<(sled::Db, File), OpenError> {
    let config = sled::Config::new()
        .path(dir)
        .cache_capacity(64 << 20)
        .mode(sled::Mode::HighThroughput)
        // Only the store's owner flushes (spacejam/sled#1308).
        .flush_every_ms(None);
    // sled makes its directory and files without syncing any name.
    crate::data_dir::create_dir_durable(dir).map_err(|source| OpenError::DataFile {
        path: dir.to_owned(),
        source,
    })?;
    let waited = Instant::now();
    let db = loop {
        match config.open() {
            Ok(db) => break db,
            Err(source) if is_lock_held(&source) && waited.elapsed() < SLED_LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(source) => {
                return Err(OpenError::Sled {
                    path: dir.to_owned(),
                    source,
                })
            }
        }
    };
    let data_path = dir.join("db");
    let data_file = File::open(&data_path).map_err(|source| OpenError::DataFile {
        path: data_path,
        source,
    })?;
    sync_files_and_names(dir).map_err(|source| OpenError::DataFile {
        path: dir.to_owned(),
        source,
    })?;
    Ok((db, data_file))
}

/// Syncs every file sled keeps in `dir` (its `conf`, written once when
/// the store is made and never synced by sled; its data file; its own
/// snapshots) and then `dir` itself, so the names are durable too: after
/// this a power cut finds the store as it was opened.
fn sync_files_and_names(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            File::open(entry.path())?.sync_all()?;
        }
    }
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that keeps every batch in flight until the test completes
    /// it, as a replicated sink keeps batches waiting for their commits.
    struct Held(Arc<std::sync::Mutex<Vec<Completion>>>);

    impl Sink for Held {
        fn submit(&mut self, _bytes: Vec<u8>, _config: &JournalConfig, done: Completion) {
            lock(&self.0).push(done);
        }

        fn compact(&mut self, _below: u64, _max: usize) -> std::io::Result<usize> {
            Ok(0)
        }
    }

    #[test]
    fn a_batch_after_a_failed_one_is_never_acknowledged() {
        let held = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (journal, thread) = Journal::start(
            Box::new(Held(held.clone())),
            7,
            None,
            JournalConfig {
                batch_records_max: 1,
                ..JournalConfig::default()
            },
        );
        let submitted = |n: usize| {
            let waited = Instant::now();
            while lock(&held).len() < n {
                assert!(waited.elapsed() < std::time::Duration::from_secs(5));
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        };
        let first = journal.append(vec![1]).unwrap();
        submitted(1);
        let second = journal.append(vec![2]).unwrap();
        let third = journal.append(vec![3]).unwrap();
        submitted(3);
        let mut done: Vec<Completion> = lock(&held).drain(..).collect();
        let (c3, c2, c1) = (
            done.pop().unwrap(),
            done.pop().unwrap(),
            done.pop().unwrap(),
        );
        // The first is durable; the second fails; the third reached the
        // disk all the same, and still must not be acknowledged.
        c1(Ok(7));
        c2(Err(std::io::Error::other("the disk is gone")));
        c3(Ok(9));
        assert_eq!(first.blocking_recv().unwrap(), Ok(7));
        assert_eq!(second.blocking_recv().unwrap(), Err(JournalError::Failed));
        assert_eq!(third.blocking_recv().unwrap(), Err(JournalError::Failed));
        assert_eq!(journal.durable_position(), 8);
        assert!(journal.is_failed());
        assert!(journal.append(vec![4]).is_err());
        journal.close();
        drop(journal);
        thread.join().unwrap();
    }

    /// Every record of the store, with its batch, and the position after
    /// the last batch.
    fn records(store: &Store) -> (Vec<(u64, Record)>, u64) {
        let mut seen = Vec::new();
        let next = store
            .reader()
            .replay_range(0, None, |b, r| {
                seen.push((b, r));
                Ok::<(), OpenError>(())
            })
            .unwrap();
        (seen, next)
    }

    /// Appends `r` and waits until it is durable.
    fn append_durably(journal: &Journal, r: &Record) {
        journal
            .append(encode(r))
            .unwrap()
            .blocking_recv()
            .unwrap()
            .unwrap();
    }

    fn rec(i: u64) -> Record {
        Record::EventCreated {
            spec_json: "x".repeat((i as usize * 7919) % 50_000),
            at_ms: i,
            idem: None,
        }
    }

    #[test]
    fn records_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let (journal, thread) = store.start(JournalConfig::default());
            let receipts: Vec<Receipt> = (0..200)
                .map(|i| journal.append(encode(&rec(i))).unwrap())
                .collect();
            for r in receipts {
                r.blocking_recv().unwrap().unwrap();
            }
            assert!(journal.stats().batches.load(Ordering::Relaxed) <= 200);
            drop(journal);
            thread.join().unwrap();
        }
        let (seen, next) = records(&Store::open(dir.path()).unwrap());
        let seen: Vec<Record> = seen.into_iter().map(|(_, r)| r).collect();
        assert_eq!(seen, (0..200).map(rec).collect::<Vec<_>>());
        assert!(next >= 1);
    }

    #[test]
    fn a_reopened_store_keeps_its_position_and_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let write = |store: Store, from: u64| {
            let (journal, thread) = store.start(JournalConfig::default());
            for i in from..from + 10 {
                append_durably(&journal, &rec(i));
            }
            drop(journal);
            thread.join().unwrap();
        };
        write(Store::open(dir.path()).unwrap(), 0);
        let mut store = Store::open(dir.path()).unwrap();
        let (seen, end) = records(&store);
        assert_eq!(seen.len(), 10);
        // Beyond what the journal holds, as after loading a snapshot.
        let next = end + 5;
        store.advance_to(next);
        let store = store.reopen().unwrap();
        write(store, 10);
        let (seen, _) = records(&Store::open(dir.path()).unwrap());
        let (batches, records): (Vec<u64>, Vec<Record>) = seen.into_iter().unzip();
        assert_eq!(records, (0..20).map(rec).collect::<Vec<_>>());
        assert!(batches[10..].iter().all(|&b| b >= next));
    }

    #[test]
    fn big_records_are_chunked_below_the_blob_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let big = Record::EventCreated {
            spec_json: "y".repeat(1 << 20),
            at_ms: 1,
            idem: None,
        };
        {
            let (journal, thread) = Store::open(dir.path())
                .unwrap()
                .start(JournalConfig::default());
            append_durably(&journal, &big);
            drop(journal);
            thread.join().unwrap();
        }
        let blobs = dir.path().join("blobs");
        let blob_count = std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0);
        assert_eq!(blob_count, 0, "sled wrote blob files");
        let (seen, _) = records(&Store::open(dir.path()).unwrap());
        assert_eq!(seen, vec![(0, big)]);
    }

    #[test]
    fn a_failed_write_stops_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, thread) = Store::open(dir.path()).unwrap().start(JournalConfig {
            fail_after_batches: Some(1),
            ..JournalConfig::default()
        });
        append_durably(&journal, &rec(1));
        let r = journal
            .append(encode(&rec(2)))
            .unwrap()
            .blocking_recv()
            .unwrap();
        assert_eq!(r, Err(JournalError::Failed));
        assert!(journal.is_failed());
        assert_eq!(
            journal.append(encode(&rec(3))).err(),
            Some(JournalError::Failed)
        );
        // A failed journal still shuts down while handles to it live on.
        let alive = journal.clone();
        journal.close();
        thread.join().unwrap();
        drop(alive);
        // Only the acknowledged record is there.
        let (seen, _) = records(&Store::open(dir.path()).unwrap());
        assert_eq!(seen, vec![(0, rec(1))]);
    }

    #[test]
    fn second_open_of_the_same_directory_fails() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let second = Store::open(dir.path());
        assert!(matches!(second, Err(OpenError::Sled { .. })));
    }
}
