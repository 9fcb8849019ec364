//! The Raft log in sled, with group commit.
//!
//! openraft calls the log store from one task, one call at a time, so
//! writes (appends, truncations, purges, votes) reach sled in the order
//! openraft made them, and are readable as soon as the call returns. What
//! makes them durable is the syncer thread: it takes every request queued
//! since its last round, flushes sled once and `fdatasync`s its data file
//! once, and only then tells each waiter: an append's `LogFlushed` (which
//! openraft counts towards a majority only then), a vote's or a
//! truncation's caller. Many appends share one sync as many records share
//! one in the journal.
//!
//! Keys: `e | index (u64 BE) | chunk (u32 BE)` for an entry (postcard,
//! cut into `CHUNK_BYTES` chunks, so sled never moves one into a blob file
//! it writes without syncing), `m/vote`, `m/committed` and `m/purged` for
//! the rest.
//!
//! Invariants:
//! - only the syncer flushes sled (spacejam/sled#1308);
//! - a write after a failed sync is refused (fail-stop): what openraft
//!   was told is durable is all that may ever count.

use std::fs::File;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use boxoffice_store::journal::{open_sled, OpenError, CHUNK_BYTES};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{RaftLogReader, StorageIOError};
use tokio::sync::oneshot;

use crate::{Entry, LogId, NodeId, Shard, StorageError};

type Vote = openraft::Vote<NodeId>;

const ENTRY: u8 = b'e';
/// Above every entry key, below every meta key.
const ENTRIES_END: &[u8] = &[ENTRY + 1];
const VOTE: &[u8] = b"m/vote";
const COMMITTED: &[u8] = b"m/committed";
const PURGED: &[u8] = b"m/purged";

#[derive(Debug, Clone, Default)]
pub struct LogConfig {
    /// Failpoint for tests: once set, every sync fails, as on a broken
    /// or full disk.
    pub fail_syncs: Arc<AtomicBool>,
}

/// A replica's Raft log: a cheap handle, cloned for openraft's readers.
#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    shared: Arc<Shared>,
}

struct Shared {
    tx: mpsc::Sender<Waiter>,
    failed: AtomicBool,
}

/// Who waits for the next sync.
enum Waiter {
    /// openraft, for an append.
    Appended(LogFlushed<Shard>),
    /// A vote's or a truncation's caller.
    Caller(oneshot::Sender<io::Result<()>>),
}

impl Waiter {
    fn finish(self, result: &io::Result<()>) {
        let result = match result {
            Ok(()) => Ok(()),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        match self {
            Waiter::Appended(flushed) => flushed.log_io_completed(result),
            // A caller that went away needs no answer.
            Waiter::Caller(tx) => drop(tx.send(result)),
        }
    }
}

impl LogStore {
    /// Opens (or creates) the log in `dir` and starts its syncer, which
    /// ends once every clone of the store is dropped.
    pub fn open(dir: &Path, config: LogConfig) -> Result<LogStore, OpenError> {
        let (db, data_file) = open_sled(dir)?;
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            tx,
            failed: AtomicBool::new(false),
        });
        let syncer_db = db.clone();
        let syncer_shared = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || syncer(syncer_db, data_file, rx, syncer_shared, config))
            .map_err(|source| OpenError::DataFile {
                path: dir.to_owned(),
                source,
            })?;
        Ok(LogStore { db, shared })
    }

    fn write(&self, batch: sled::Batch) -> io::Result<()> {
        if self.shared.failed.load(Ordering::SeqCst) {
            return Err(failed());
        }
        self.db.apply_batch(batch).map_err(io_error)
    }

    /// Waits until everything written so far is on stable storage.
    async fn sync(&self) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .tx
            .send(Waiter::Caller(tx))
            .map_err(|_| failed())?;
        rx.await.map_err(|_| failed())?
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
        match self.db.get(key).map_err(io_error)? {
            Some(bytes) => postcard::from_bytes(&bytes)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            None => Ok(None),
        }
    }

    /// The entries with indexes in `[start, end)` (`end: None`: to the
    /// last one), in order.
    fn read(&self, start: u64, end: Option<u64>) -> io::Result<Vec<Entry>> {
        let lo = entry_key(start, 0);
        let hi = end.map(|end| entry_key(end, 0));
        let hi: &[u8] = hi.as_ref().map_or(ENTRIES_END, |hi| &hi[..]);
        let range = self.db.range(&lo[..]..hi);
        let mut entries = Vec::new();
        let mut current: Option<(u64, u32, Vec<u8>)> = None;
        for item in range {
            let (k, value) = item.map_err(io_error)?;
            let (index, chunk) = parse_entry_key(&k)
                .ok_or_else(|| corrupt(format!("a log key of {} bytes", k.len())))?;
            match &mut current {
                Some((i, c, buf)) if *i == index => {
                    if chunk != *c + 1 {
                        return Err(corrupt(format!("entry {index}: chunk {chunk} after {c}")));
                    }
                    *c = chunk;
                    buf.extend_from_slice(&value);
                }
                _ => {
                    if let Some((i, _, buf)) = current.take() {
                        entries.push(decode_entry(i, &buf)?);
                    }
                    if chunk != 0 {
                        return Err(corrupt(format!("entry {index} starts at chunk {chunk}")));
                    }
                    current = Some((index, 0, value.to_vec()));
                }
            }
        }
        if let Some((i, _, buf)) = current {
            entries.push(decode_entry(i, &buf)?);
        }
        Ok(entries)
    }

    fn last_index(&self) -> io::Result<Option<u64>> {
        let lo = entry_key(0, 0);
        let last = self.db.range(&lo[..]..ENTRIES_END).next_back();
        match last {
            Some(item) => {
                let (k, _) = item.map_err(io_error)?;
                let (index, _) = parse_entry_key(&k)
                    .ok_or_else(|| corrupt(format!("a log key of {} bytes", k.len())))?;
                Ok(Some(index))
            }
            None => Ok(None),
        }
    }

    /// A batch removing every entry key in `range`.
    fn removal(&self, from: &[u8], to: &[u8]) -> io::Result<sled::Batch> {
        let mut batch = sled::Batch::default();
        for k in self.db.range(from..to).keys() {
            batch.remove(k.map_err(io_error)?);
        }
        Ok(batch)
    }
}

fn syncer(
    db: sled::Db,
    data_file: File,
    rx: mpsc::Receiver<Waiter>,
    shared: std::sync::Weak<Shared>,
    config: LogConfig,
) {
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        waiting.extend(rx.try_iter());
        let failed_before = shared
            .upgrade()
            .is_some_and(|s| s.failed.load(Ordering::SeqCst));
        let result = if failed_before {
            Err(failed())
        } else if config.fail_syncs.load(Ordering::SeqCst) {
            Err(io::Error::other("failpoint: the Raft log's sync fails"))
        } else {
            db.flush()
                .map_err(io_error)
                .and_then(|_| data_file.sync_data())
        };
        if let Err(error) = &result {
            if !failed_before {
                tracing::error!(%error, "the Raft log failed to sync; it refuses everything from now on");
            }
            if let Some(s) = shared.upgrade() {
                s.failed.store(true, Ordering::SeqCst);
            }
        }
        for w in waiting {
            w.finish(&result);
        }
    }
}

impl RaftLogReader<Shard> for LogStore {
    async fn try_get_log_entries<RB>(&mut self, range: RB) -> Result<Vec<Entry>, StorageError>
    where
        RB: RangeBounds<u64> + Clone + std::fmt::Debug + Send,
    {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.checked_add(1),
            Bound::Excluded(&e) => Some(e),
            Bound::Unbounded => None,
        };
        if end.is_some_and(|end| end <= start) {
            return Ok(Vec::new());
        }
        self.read(start, end)
            .map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<Shard> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<Shard>, StorageError> {
        let read = |e: io::Error| StorageError::from(StorageIOError::read_logs(&e));
        let purged: Option<LogId> = self.meta(PURGED).map_err(read)?;
        let last = match self.last_index().map_err(read)? {
            Some(index) => self
                .read(index, Some(index + 1))
                .map_err(read)?
                .pop()
                .map(|e| e.log_id),
            None => None,
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last.or(purged),
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let write = |e: io::Error| StorageError::from(StorageIOError::write_vote(&e));
        let mut batch = sled::Batch::default();
        batch.insert(VOTE, encode(vote));
        self.write(batch).map_err(write)?;
        self.sync().await.map_err(write)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.meta(VOTE)
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    /// Kept with the next sync, not waited for: openraft may lose it (a
    /// restarted replica then applies less at once, never more than was
    /// committed).
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        batch.insert(COMMITTED, encode(&committed));
        self.write(batch)
            .map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let committed: Option<Option<LogId>> = self
            .meta(COMMITTED)
            .map_err(|e| StorageError::from(StorageIOError::read(&e)))?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<Shard>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = encode(&entry);
            for (i, chunk) in bytes.chunks(CHUNK_BYTES).enumerate() {
                batch.insert(&entry_key(entry.log_id.index, i as u32)[..], chunk);
            }
        }
        self.write(batch)
            .map_err(|e| StorageError::from(StorageIOError::write_logs(&e)))?;
        self.shared
            .tx
            .send(Waiter::Appended(callback))
            .map_err(|_| StorageIOError::write_logs(&failed()).into())
    }

    /// Removes the entries from `log_id` on, durably before it returns
    /// (a conflicting entry must not come back after a restart).
    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let write = |e: io::Error| StorageError::from(StorageIOError::write_logs(&e));
        let batch = self
            .removal(&entry_key(log_id.index, 0), ENTRIES_END)
            .map_err(write)?;
        self.write(batch).map_err(write)?;
        self.sync().await.map_err(write)
    }

    /// Removes the entries up to `log_id`, and remembers it as the last
    /// purged, in one sled batch: kept with the next sync (lost, both come
    /// back together, which is only a longer log).
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let write = |e: io::Error| StorageError::from(StorageIOError::write_logs(&e));
        let end = log_id
            .index
            .checked_add(1)
            .map_or(ENTRIES_END.to_vec(), |i| entry_key(i, 0).to_vec());
        let mut batch = self.removal(&entry_key(0, 0), &end).map_err(write)?;
        batch.insert(PURGED, encode(&log_id));
        self.write(batch).map_err(write)
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("postcard encodes our Raft types into a Vec")
}

fn decode_entry(index: u64, bytes: &[u8]) -> io::Result<Entry> {
    let entry: Entry = postcard::from_bytes(bytes)
        .map_err(|e| corrupt(format!("entry {index} does not decode: {e}")))?;
    if entry.log_id.index != index {
        return Err(corrupt(format!(
            "entry {index} holds the log id of {}",
            entry.log_id.index
        )));
    }
    Ok(entry)
}

fn entry_key(index: u64, chunk: u32) -> [u8; 13] {
    let mut k = [0; 13];
    k[0] = ENTRY;
    k[1..9].copy_from_slice(&index.to_be_bytes());
    k[9..].copy_from_slice(&chunk.to_be_bytes());
    k
}

fn parse_entry_key(k: &[u8]) -> Option<(u64, u32)> {
    if k.len() != 13 || k[0] != ENTRY {
        return None;
    }
    Some((
        u64::from_be_bytes(k[1..9].try_into().ok()?),
        u32::from_be_bytes(k[9..].try_into().ok()?),
    ))
}

fn failed() -> io::Error {
    io::Error::other("the Raft log failed to write and refuses further writes")
}

fn corrupt(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn io_error(e: sled::Error) -> io::Error {
    match e {
        sled::Error::Io(io) => io,
        other => io::Error::other(other.to_string()),
    }
}
