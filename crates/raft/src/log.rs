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
//! The log is the journal: entry `i`'s records are journal batch `i`, in
//! the journal's own keys and chunks, so everything that reads a journal
//! (recovery, the snapshotter, the change feed) reads a replica's log
//! with `JournalReader::over`. What Raft adds lives in the `raft` tree:
//! `e | index (u64 BE)` → the entry's log id and kind (an entry exists
//! when this key does; its batch is written first and removed last),
//! `m/vote`, `m/committed` and `m/purged`.
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

use boxoffice_store::journal::{
    batch_key, open_sled, parse_batch_key, JournalReader, OpenError, CHUNK_BYTES,
};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{EntryPayload, RaftLogReader, StorageIOError};
use tokio::sync::oneshot;

use crate::{Batch, Entry, LogId, Node, NodeId, Shard, StorageError};

type Vote = openraft::Vote<NodeId>;

/// The tree of what Raft adds to the journal.
const RAFT_TREE: &str = "raft";
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
    /// Failpoint for tests: once set, the committed id kept stays where it
    /// is, as when a crash comes before its lazy write.
    pub freeze_committed: Arc<AtomicBool>,
}

/// A replica's Raft log: a cheap handle, cloned for openraft's readers.
#[derive(Clone)]
pub struct LogStore {
    /// The journal's keys (batch `i`: entry `i`'s records).
    db: sled::Db,
    freeze_committed: Arc<AtomicBool>,
    /// Entries' log ids and kinds, the vote, the committed and purged ids.
    raft: sled::Tree,
    shared: Arc<Shared>,
}

/// What the `raft` tree keeps of an entry.
#[derive(serde::Serialize, serde::Deserialize)]
struct EntryMeta {
    log_id: LogId,
    kind: Kind,
}

#[derive(serde::Serialize, serde::Deserialize)]
enum Kind {
    Blank,
    /// Its records are journal batch `log_id.index`.
    Normal,
    Membership(openraft::Membership<NodeId, Node>),
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
    /// ends once every clone of the store is dropped. Journal batches
    /// after the last entry (written by an append a crash cut short) are
    /// removed first.
    pub fn open(dir: &Path, config: LogConfig) -> Result<LogStore, OpenError> {
        let (db, data_file) = open_sled(dir)?;
        let raft = db.open_tree(RAFT_TREE).map_err(OpenError::Read)?;
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            tx,
            failed: AtomicBool::new(false),
        });
        let store = LogStore {
            db,
            freeze_committed: config.freeze_committed.clone(),
            raft,
            shared,
        };
        if store.raft.is_empty() && store.db.first().map_err(OpenError::Read)?.is_some() {
            // A lone server's journal: its batches are no Raft entries,
            // and "orphans" below would be every one of them.
            return Err(OpenError::Corrupt {
                batch: 0,
                message: format!(
                    "{} holds a lone server's journal, not a replica's log: \
                     a replica starts from an empty data directory",
                    dir.display()
                ),
            });
        }
        store.remove_orphans().map_err(|e| OpenError::Corrupt {
            batch: 0,
            message: e.to_string(),
        })?;
        let syncer_db = store.db.clone();
        let syncer_shared = Arc::downgrade(&store.shared);
        std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || syncer(syncer_db, data_file, rx, syncer_shared, config))
            .map_err(|source| OpenError::DataFile {
                path: dir.to_owned(),
                source,
            })?;
        Ok(store)
    }

    /// Reads the log as a journal: batch `i` holds entry `i`'s records.
    pub fn journal_reader(&self) -> JournalReader {
        JournalReader::over(self.db.clone())
    }

    fn remove_orphans(&self) -> io::Result<()> {
        let next = match self.last_meta()? {
            Some(meta) => meta.log_id.index + 1,
            None => 0,
        };
        let mut batch = sled::Batch::default();
        for k in self.db.range(&batch_key(next, 0)[..]..).keys() {
            let k = k.map_err(io_error)?;
            if parse_batch_key(&k).is_some() {
                batch.remove(k);
            }
        }
        self.db.apply_batch(batch).map_err(io_error)
    }

    fn check(&self) -> io::Result<()> {
        if self.shared.failed.load(Ordering::SeqCst) {
            return Err(failed());
        }
        Ok(())
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
        match self.raft.get(key).map_err(io_error)? {
            Some(bytes) => postcard::from_bytes(&bytes)
                .map(Some)
                .map_err(|e| corrupt(format!("{}: {e}", String::from_utf8_lossy(key)))),
            None => Ok(None),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> io::Result<()> {
        self.check()?;
        self.raft.insert(key, encode(value)).map_err(io_error)?;
        Ok(())
    }

    fn last_meta(&self) -> io::Result<Option<EntryMeta>> {
        match self.raft.range(&entry_key(0)[..]..ENTRIES_END).next_back() {
            Some(item) => {
                let (k, v) = item.map_err(io_error)?;
                Ok(Some(decode_meta(&k, &v)?))
            }
            None => Ok(None),
        }
    }

    /// The records of journal batch `index`; an error if there are none
    /// (a batch is never empty: one removed under a reader must not read
    /// as an entry with no records).
    fn records(&self, index: u64) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        let lo = batch_key(index, 0);
        let hi = batch_key(index + 1, 0);
        for (expected, item) in self.db.range(&lo[..]..&hi[..]).enumerate() {
            let (k, v) = item.map_err(io_error)?;
            if parse_batch_key(&k).map(|(_, c)| c as usize) != Some(expected) {
                return Err(corrupt(format!("entry {index}: a chunk out of order")));
            }
            bytes.extend_from_slice(&v);
        }
        if bytes.is_empty() {
            return Err(corrupt(format!("entry {index}'s records are missing")));
        }
        Ok(bytes)
    }

    /// The entries with indexes in `[start, end)` (`end: None`: to the
    /// last one), in order.
    fn read(&self, start: u64, end: Option<u64>) -> io::Result<Vec<Entry>> {
        let lo = entry_key(start);
        let hi = end.map(entry_key);
        let hi: &[u8] = hi.as_ref().map_or(ENTRIES_END, |hi| &hi[..]);
        let mut entries = Vec::new();
        for item in self.raft.range(&lo[..]..hi) {
            let (k, v) = item.map_err(io_error)?;
            let meta = decode_meta(&k, &v)?;
            let payload = match meta.kind {
                Kind::Blank => EntryPayload::Blank,
                Kind::Normal => EntryPayload::Normal(Batch {
                    records: self.records(meta.log_id.index)?,
                }),
                Kind::Membership(m) => EntryPayload::Membership(m),
            };
            entries.push(Entry {
                log_id: meta.log_id,
                payload,
            });
        }
        Ok(entries)
    }

    /// Removes entries `[from, to)`: their metadata first (with `also`,
    /// in the same batch), their batches after (a batch without its entry
    /// is an orphan `open` removes).
    fn remove(&self, from: u64, to: Option<u64>, also: Option<(&[u8], Vec<u8>)>) -> io::Result<()> {
        self.check()?;
        let mut metas = sled::Batch::default();
        if let Some((key, value)) = also {
            metas.insert(key, value);
        }
        let lo = entry_key(from);
        let hi = to.map(entry_key);
        let hi: &[u8] = hi.as_ref().map_or(ENTRIES_END, |hi| &hi[..]);
        for k in self.raft.range(&lo[..]..hi).keys() {
            metas.remove(k.map_err(io_error)?);
        }
        self.raft.apply_batch(metas).map_err(io_error)?;
        let mut batches = sled::Batch::default();
        let lo = batch_key(from, 0);
        let range = match to {
            Some(to) => self.db.range(&lo[..]..&batch_key(to, 0)[..]),
            None => self.db.range(&lo[..]..),
        };
        for k in range.keys() {
            let k = k.map_err(io_error)?;
            if parse_batch_key(&k).is_some() {
                batches.remove(k);
            }
        }
        self.db.apply_batch(batches).map_err(io_error)
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
        let last = self.last_meta().map_err(read)?.map(|m| m.log_id);
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
        self.put_meta(VOTE, vote).map_err(write)?;
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
        if self.freeze_committed.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.put_meta(COMMITTED, &committed)
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
        let write = |e: io::Error| StorageError::from(StorageIOError::write_logs(&e));
        self.check().map_err(write)?;
        let mut batches = sled::Batch::default();
        let mut metas = sled::Batch::default();
        for entry in entries {
            let index = entry.log_id.index;
            let kind = match entry.payload {
                EntryPayload::Blank => Kind::Blank,
                EntryPayload::Normal(batch) => {
                    for (i, chunk) in batch.records.chunks(CHUNK_BYTES).enumerate() {
                        batches.insert(&batch_key(index, i as u32)[..], chunk);
                    }
                    Kind::Normal
                }
                EntryPayload::Membership(m) => Kind::Membership(m),
            };
            let meta = EntryMeta {
                log_id: entry.log_id,
                kind,
            };
            metas.insert(&entry_key(index)[..], encode(&meta));
        }
        // The records first: an entry exists once its metadata does.
        self.db
            .apply_batch(batches)
            .map_err(io_error)
            .map_err(write)?;
        self.raft
            .apply_batch(metas)
            .map_err(io_error)
            .map_err(write)?;
        self.shared
            .tx
            .send(Waiter::Appended(callback))
            .map_err(|_| write(failed()))
    }

    /// Removes the entries from `log_id` on, durably before it returns
    /// (a conflicting entry must not come back after a restart).
    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let write = |e: io::Error| StorageError::from(StorageIOError::write_logs(&e));
        self.remove(log_id.index, None, None).map_err(write)?;
        self.sync().await.map_err(write)
    }

    /// Removes the entries up to `log_id` and remembers it as the last
    /// purged (in the same batch as their metadata): kept with the next sync (lost, the entries come back,
    /// which is only a longer log).
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let write = |e: io::Error| StorageError::from(StorageIOError::write_logs(&e));
        let purged = Some((PURGED, encode(&log_id)));
        self.remove(0, log_id.index.checked_add(1), purged)
            .map_err(write)
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("postcard encodes our Raft types into a Vec")
}

fn decode_meta(k: &[u8], v: &[u8]) -> io::Result<EntryMeta> {
    let index =
        parse_entry_key(k).ok_or_else(|| corrupt(format!("a log key of {} bytes", k.len())))?;
    let meta: EntryMeta = postcard::from_bytes(v)
        .map_err(|e| corrupt(format!("entry {index} does not decode: {e}")))?;
    if meta.log_id.index != index {
        return Err(corrupt(format!(
            "entry {index} holds the log id of {}",
            meta.log_id.index
        )));
    }
    Ok(meta)
}

fn entry_key(index: u64) -> [u8; 9] {
    let mut k = [0; 9];
    k[0] = ENTRY;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

fn parse_entry_key(k: &[u8]) -> Option<u64> {
    if k.len() != 9 || k[0] != ENTRY {
        return None;
    }
    Some(u64::from_be_bytes(k[1..].try_into().ok()?))
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
