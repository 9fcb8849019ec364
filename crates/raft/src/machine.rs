//! The replicated state machine: a shard's events, sections, outbox and
//! remembered answers, built by applying committed log entries with the
//! store's `Replay`, the code a restart replays the journal with.
//!
//! Its snapshot is the store's snapshot (`boxoffice.snapshot/4`, which
//! checks itself) with Raft's metadata in front, in one file,
//! `raft-snapshot`, written atomically:
//!
//! ```text
//! boxoffice.raft-snapshot/1\n | meta length (u32 LE) | crc32 of meta (u32 LE)
//!   | meta (postcard: last log id, membership, snapshot id) | snapshot
//! ```
//!
//! The same bytes travel to a replica that lags behind the leader's
//! purged log, which checks them as it would a file of its own before
//! anything of its state is replaced.
//!
//! Invariants:
//! - the state is the snapshot's plus exactly the entries after it, in
//!   order; an entry that does not apply stops the replica (an error to
//!   openraft), it is never skipped;
//! - a snapshot's journal position is its last log index plus one, and
//!   a file whose two disagree is refused.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use boxoffice_store::clock::Clock;
use boxoffice_store::idempotency::{Answer, IdempotencyStore};
use boxoffice_store::journal::{decode_all, JournalReader};
use boxoffice_store::recovery::{encode_snapshot, Answers, Remember, Replay, State};
use boxoffice_store::snapshot;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError, StoredMembership};

use crate::{Applied, Entry, LogId, Node, NodeId, Shard, StorageError};

type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
type Membership = StoredMembership<NodeId, Node>;

const MAGIC: &[u8] = b"boxoffice.raft-snapshot/1\n";
/// The snapshot file in the machine's directory.
pub const SNAPSHOT_FILE: &str = "raft-snapshot";
/// Most bytes of Raft metadata a snapshot file may claim.
const META_BYTES_MAX: usize = 1 << 20;

pub struct MachineConfig {
    /// Where the snapshot file lives.
    pub dir: PathBuf,
    /// Renders the answers that changes carry, to remember them.
    pub answers: Arc<dyn Answers + Send + Sync>,
    pub clock: Arc<dyn Clock>,
    /// How long an answer is remembered for retries.
    pub idem_ttl_ms: u64,
}

/// The state machine: a cheap handle (openraft's worker applies through
/// one; readers look through others).
#[derive(Clone)]
pub struct Machine {
    config: Arc<MachineConfig>,
    inner: Arc<Mutex<Inner>>,
    /// The newest snapshot on disk; held while one is written, so a build
    /// never replaces a newer installed one.
    current: Arc<Mutex<Option<SnapshotMeta>>>,
}

struct Inner {
    state: State,
    idem: Arc<IdempotencyStore>,
    last_applied: Option<LogId>,
    membership: Membership,
    /// Set once this replica leads and its sections own the state (see
    /// [`Machine::take_for_serving`]): entries are then the sections' own
    /// records, already applied, and snapshots are built from disk
    /// through this reader.
    serving: Option<JournalReader>,
}

/// What a replica that now leads starts its sections from.
pub struct Taken {
    pub state: State,
    /// The answers remembered for retries, oldest first.
    pub answers: Vec<Answer>,
    /// The journal position after the last entry applied.
    pub position: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("{path}: {message}")]
    Snapshot { path: PathBuf, message: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Machine {
    /// The machine of `config.dir`: its snapshot's state if there is one
    /// (openraft then applies the committed entries after it), else empty.
    pub fn open(config: MachineConfig) -> Result<Machine, MachineError> {
        boxoffice_store::data_dir::create_dir_durable(&config.dir)?;
        let path = config.dir.join(SNAPSHOT_FILE);
        let (inner, current) = match std::fs::read(&path) {
            Ok(bytes) => {
                let (meta, inner) =
                    load(&config, &bytes).map_err(|message| MachineError::Snapshot {
                        path: path.clone(),
                        message,
                    })?;
                (inner, Some(meta))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                Inner {
                    state: State::default(),
                    idem: fresh_answers(&config),
                    last_applied: None,
                    membership: Membership::default(),
                    serving: None,
                },
                None,
            ),
            Err(e) => return Err(e.into()),
        };
        Ok(Machine {
            config: Arc::new(config),
            inner: Arc::new(Mutex::new(inner)),
            current: Arc::new(Mutex::new(current)),
        })
    }

    /// The last entry applied.
    pub fn last_applied(&self) -> Option<LogId> {
        lock(&self.inner).last_applied
    }

    /// Hands the state as applied so far to this replica's sections,
    /// which lead from now on: later entries are their own records (not
    /// applied again here), and snapshots are built from the newest
    /// snapshot file and `reader` (the log read as a journal), as a lone
    /// server's snapshotter builds them. For good: a replica that stops
    /// leading starts again from its disk.
    pub fn take_for_serving(&self, reader: JournalReader) -> Taken {
        let mut inner = lock(&self.inner);
        let state = std::mem::take(&mut inner.state);
        let mut answers = inner.idem.answers(0);
        answers.sort_by_key(|a| a.at_ms);
        inner.idem = fresh_answers(&self.config);
        inner.serving = Some(reader);
        Taken {
            state,
            answers,
            position: position(inner.last_applied),
        }
    }

    /// Calls `f` with the state as applied so far.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&lock(&self.inner).state)
    }

    /// The state encoded as a snapshot of the store's format, with every
    /// answer remembered, at a fixed time: two replicas that applied the
    /// same entries give the same bytes.
    pub fn encoded(&self) -> Vec<u8> {
        let inner = lock(&self.inner);
        let position = position(inner.last_applied);
        let (_, bytes) = encode_snapshot(
            &inner.state,
            &inner.idem,
            self.config.idem_ttl_ms,
            position,
            0,
            None,
        );
        bytes
    }

    fn path(&self) -> PathBuf {
        self.config.dir.join(SNAPSHOT_FILE)
    }
}

/// The journal position after `last`: where a replay would go on.
fn position(last: Option<LogId>) -> u64 {
    last.map_or(0, |l| l.index + 1)
}

fn fresh_answers(config: &MachineConfig) -> Arc<IdempotencyStore> {
    IdempotencyStore::new(config.idem_ttl_ms, usize::MAX, None)
}

/// A snapshot file's Raft metadata and the store's snapshot after it.
fn parse(bytes: &[u8]) -> Result<(SnapshotMeta, &[u8]), String> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or("not a boxoffice.raft-snapshot/1 file")?;
    if rest.len() < 8 {
        return Err("cut short in its header".into());
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    let rest = &rest[8..];
    if len > META_BYTES_MAX || len > rest.len() {
        return Err(format!(
            "claims {len} bytes of metadata, has {}",
            rest.len()
        ));
    }
    let (meta_bytes, body) = rest.split_at(len);
    if crc32fast::hash(meta_bytes) != crc {
        return Err("its metadata fails its checksum".into());
    }
    let meta: SnapshotMeta =
        postcard::from_bytes(meta_bytes).map_err(|e| format!("metadata: {e}"))?;
    Ok((meta, body))
}

fn assemble(meta: &SnapshotMeta, body: &[u8]) -> Vec<u8> {
    let meta_bytes = postcard::to_allocvec(meta).expect("postcard encodes a snapshot's meta");
    let mut out = Vec::with_capacity(MAGIC.len() + 8 + meta_bytes.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(meta_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&meta_bytes).to_le_bytes());
    out.extend_from_slice(&meta_bytes);
    out.extend_from_slice(body);
    out
}

/// Rebuilds a machine's state from a snapshot file's bytes, checking
/// everything before anything is used.
fn load(config: &MachineConfig, bytes: &[u8]) -> Result<(SnapshotMeta, Inner), String> {
    let (meta, body) = parse(bytes)?;
    let mut snap = snapshot::decode(body).map_err(|e| e.to_string())?;
    let expected = position(meta.last_log_id);
    if snap.header.journal_position != expected {
        return Err(format!(
            "its state reaches position {}, its Raft metadata {expected}",
            snap.header.journal_position
        ));
    }
    let restored = snap.restore().map_err(|e| e.to_string())?;
    let idem = fresh_answers(config);
    let remember = Remember {
        store: &idem,
        answers: &*config.answers,
        now_ms: config.clock.now_ms(),
        ttl_ms: config.idem_ttl_ms,
    };
    let mut replay = Replay::new(State::default(), remember);
    replay.load_snapshot(&snap, restored)?;
    let state = replay.into_state();
    let inner = Inner {
        state,
        idem,
        last_applied: meta.last_log_id,
        membership: meta.last_membership.clone(),
        serving: None,
    };
    Ok((meta, inner))
}

/// Writes a snapshot file unless a newer one is already there.
fn store_snapshot(
    current: &Mutex<Option<SnapshotMeta>>,
    path: &Path,
    meta: &SnapshotMeta,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut current = lock(current);
    if current
        .as_ref()
        .is_some_and(|c| c.last_log_id > meta.last_log_id)
    {
        return Ok(());
    }
    snapshot::write_atomic(path, bytes)?;
    *current = Some(meta.clone());
    Ok(())
}

/// A snapshot being built: the state encoded when it was asked for, or
/// (while the sections own the state) rebuilt from disk off the
/// machine's worker.
pub struct Builder {
    meta: SnapshotMeta,
    body: Body,
    path: PathBuf,
    current: Arc<Mutex<Option<SnapshotMeta>>>,
}

enum Body {
    Encoded(Vec<u8>),
    FromDisk {
        config: Arc<MachineConfig>,
        reader: JournalReader,
    },
}

impl RaftSnapshotBuilder<Shard> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Shard>, StorageError> {
        let signature = self.meta.signature();
        let failed = |message: String| {
            StorageError::from(StorageIOError::write_snapshot(
                Some(signature.clone()),
                &std::io::Error::other(message),
            ))
        };
        let body = match &self.body {
            Body::Encoded(bytes) => bytes.clone(),
            Body::FromDisk { config, reader } => {
                let (config, reader) = (config.clone(), reader.clone());
                let (path, upto) = (self.path.clone(), self.meta.last_log_id);
                tokio::task::spawn_blocking(move || from_disk(&config, &path, &reader, upto))
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .map_err(failed)?
            }
        };
        let bytes = assemble(&self.meta, &body);
        store_snapshot(&self.current, &self.path, &self.meta, &bytes)
            .map_err(|e| StorageIOError::write_snapshot(Some(self.meta.signature()), &e))?;
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

/// The state up to `upto`, rebuilt from the snapshot file at `path` (if
/// any) and the journal after it, encoded: what a lone server's
/// snapshotter does, for a replica whose sections own the live state.
fn from_disk(
    config: &MachineConfig,
    path: &Path,
    reader: &JournalReader,
    upto: Option<LogId>,
) -> Result<Vec<u8>, String> {
    let inner = match std::fs::read(path) {
        Ok(bytes) => load(config, &bytes)?.1,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Inner {
            state: State::default(),
            idem: fresh_answers(config),
            last_applied: None,
            membership: Membership::default(),
            serving: None,
        },
        Err(e) => return Err(e.to_string()),
    };
    let remember = Remember {
        store: &inner.idem,
        answers: &*config.answers,
        now_ms: config.clock.now_ms(),
        ttl_ms: config.idem_ttl_ms,
    };
    let mut replay = Replay::new(inner.state, remember);
    let (start, end) = (position(inner.last_applied), position(upto));
    if start < end {
        reader
            .replay_range(start, Some(end), |batch, record| {
                replay.apply(batch, record)
            })
            .map_err(|e| e.to_string())?;
    }
    let state = replay.into_inner();
    let (_, body) = encode_snapshot(
        &state,
        &inner.idem,
        config.idem_ttl_ms,
        end,
        config.clock.now_ms(),
        None,
    );
    Ok(body)
}

impl RaftStateMachine<Shard> for Machine {
    type SnapshotBuilder = Builder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), StorageError> {
        let inner = lock(&self.inner);
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let config = self.config.clone();
        let mut inner = lock(&self.inner);
        let inner = &mut *inner;
        let idem = inner.idem.clone();
        let serving = inner.serving.is_some();
        let remember = Remember {
            store: &idem,
            answers: &*config.answers,
            now_ms: config.clock.now_ms(),
            ttl_ms: config.idem_ttl_ms,
        };
        let mut replay = Replay::new(std::mem::take(&mut inner.state), remember);
        let mut answers = Vec::new();
        let mut failed = None;
        for entry in entries {
            let log_id = entry.log_id;
            let applied = match entry.payload {
                EntryPayload::Blank => Ok(()),
                // The sections applied their own records before proposing.
                EntryPayload::Normal(_) if serving => Ok(()),
                EntryPayload::Normal(batch) => decode_all(&batch.records)
                    .map_err(|e| e.to_string())
                    .and_then(|records| {
                        records.into_iter().try_for_each(|r| {
                            replay.apply(log_id.index, r).map_err(|e| e.to_string())
                        })
                    }),
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(log_id), m);
                    Ok(())
                }
            };
            if let Err(message) = applied {
                tracing::error!(%log_id, %message, "a committed entry does not apply; the replica stops");
                failed = Some(StorageIOError::apply(
                    log_id,
                    &std::io::Error::other(message),
                ));
                break;
            }
            inner.last_applied = Some(log_id);
            answers.push(Applied {
                position: log_id.index + 1,
            });
        }
        inner.state = replay.into_inner();
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(answers),
        }
    }

    async fn get_snapshot_builder(&mut self) -> Builder {
        let inner = lock(&self.inner);
        let now_ms = self.config.clock.now_ms();
        let body = match &inner.serving {
            Some(reader) => Body::FromDisk {
                config: self.config.clone(),
                reader: reader.clone(),
            },
            None => {
                inner.idem.prune(now_ms);
                let (_, body) = encode_snapshot(
                    &inner.state,
                    &inner.idem,
                    self.config.idem_ttl_ms,
                    position(inner.last_applied),
                    now_ms,
                    None,
                );
                Body::Encoded(body)
            }
        };
        let last = inner.last_applied;
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: inner.membership.clone(),
            snapshot_id: format!(
                "{}-{}-{now_ms}",
                last.map_or(0, |l| l.leader_id.term),
                position(last)
            ),
        };
        Builder {
            meta,
            body,
            path: self.path(),
            current: self.current.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let (config, current, path) = (self.config.clone(), self.current.clone(), self.path());
        let given = meta.clone();
        // Decoding, rebuilding and writing a stadium's state is seconds of
        // work: off the runtime's workers.
        let installed = tokio::task::spawn_blocking(move || {
            let (loaded_meta, inner) = load(&config, &bytes)?;
            if loaded_meta.last_log_id != given.last_log_id {
                return Err(format!(
                    "it holds the state up to {:?}, not {:?}",
                    loaded_meta.last_log_id, given.last_log_id
                ));
            }
            store_snapshot(&current, &path, &given, &bytes)
                .map_err(|e| format!("writing it: {e}"))?;
            Ok(inner)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        match installed {
            Ok(inner) => {
                *lock(&self.inner) = inner;
                Ok(())
            }
            Err(message) => {
                tracing::error!(snapshot = %meta, %message, "refusing a snapshot sent to this replica");
                Err(StorageError::from(StorageIOError::read_snapshot(
                    Some(meta.signature()),
                    &std::io::Error::new(std::io::ErrorKind::InvalidData, message),
                )))
            }
        }
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Shard>>, StorageError> {
        // Held while the file is read: a snapshot written meanwhile would
        // not match the metadata.
        let current = lock(&self.current);
        let Some(meta) = current.clone() else {
            return Ok(None);
        };
        let read = |e: std::io::Error| {
            StorageError::from(StorageIOError::read_snapshot(Some(meta.signature()), &e))
        };
        let bytes = std::fs::read(self.path()).map_err(read)?;
        drop(current);
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
