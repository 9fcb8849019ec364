//! The server's own snapshots: a thread (at low priority) that replays the
//! durable journal from the last snapshot into a fresh state (the very
//! code start-up runs, `recovery::take_snapshot`), writes the file, prunes
//! old ones and tells the journal what it may drop.
//!
//! This is the snapshot layer above `recovery`; the file format below it
//! (`snapshot`, `snapshot::wire`) knows nothing of recovery.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

use crate::clock::Clock;
use crate::journal::{Journal, JournalReader};
use crate::mail::MAILER_NICE;
use crate::recovery;
use crate::snapshot;
use crate::threads;

/// When the server snapshots itself.
#[derive(Debug, Clone)]
pub struct SnapshotSettings {
    /// After this many journal records since the last snapshot.
    pub every_records: u64,
    /// And at least this often while anything changed.
    pub every: Duration,
    /// Snapshots kept in `<data-dir>/snapshots`; the journal keeps what
    /// the oldest of them needs.
    pub keep: usize,
    /// The answers a replay remembers, as the API renders them (a
    /// snapshot keeps them).
    pub answers: &'static dyn recovery::Answers,
}

/// After a start that replayed at least `every_records` journal records
/// past its snapshot, writes a snapshot of the state just recovered
/// (`recovered`, with the answers `idem` restored), so the next start
/// does not replay them again: a server killed again and again before
/// its automatic snapshot could finish (which replays that tail once
/// more, at low priority) would otherwise replay ever more at each start.
/// Returns the journal position of the newest snapshot on disk. A
/// snapshot that cannot be written is logged, not fatal: the journal
/// still holds everything.
pub fn snapshot_long_replay(
    data_dir: &Path,
    recovered: &recovery::Recovered,
    idem: &crate::idempotency::IdempotencyStore,
    idem_ttl_ms: u64,
    every_records: u64,
    now_ms: u64,
) -> u64 {
    let last = recovered.snapshot.unwrap_or(0);
    if recovered.records < every_records || recovered.position <= last {
        return last;
    }
    // A snapshot without the lineage would end every ticket mailed so far
    // at its restore: none rather than that.
    let lineage = match crate::data_dir::Lineage::load(data_dir) {
        Ok(l) => l,
        Err(error) => {
            tracing::error!(
                error = format!("{error:#}"),
                "no snapshot after the long replay"
            );
            return last;
        }
    };
    let started = std::time::Instant::now();
    let (header, bytes) = recovery::encode_snapshot(
        &recovered.state,
        idem,
        idem_ttl_ms,
        recovered.position,
        now_ms,
        lineage,
    );
    let path = snapshot::path_for(data_dir, header.journal_position);
    match write(data_dir, &path, &bytes) {
        Ok(()) => {
            tracing::info!(
                path = %path.display(),
                position = header.journal_position,
                replayed = recovered.records,
                bytes = bytes.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "snapshot of the long replay written"
            );
            header.journal_position
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "cannot write the snapshot of the long replay");
            last
        }
    }
}

/// Writes a snapshot file at `path` in `data_dir`'s snapshot directory,
/// made durably first: whole or not at all, its name synced.
fn write(data_dir: &Path, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::data_dir::create_dir_durable(&data_dir.join(snapshot::DIR))?;
    snapshot::write_atomic(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

enum SnapshotRequest {
    Take(tokio::sync::oneshot::Sender<Result<snapshot::Header, String>>),
    /// A last snapshot (if anything changed), then stop: graceful shutdown.
    FinalAndStop,
}

/// The snapshotter thread: takes snapshots of the live server in the
/// background (a replay of the durable journal, so no section stops),
/// prunes old ones and lets the journal drop what they cover.
pub struct Snapshotter {
    tx: crossbeam_channel::Sender<SnapshotRequest>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Snapshotter {
    /// Starts the thread over the data directory `data_dir`, whose newest
    /// snapshot (if any) is at `last_position`; `reader` reads the journal
    /// beside the flusher, and `journal` says how far it is durable.
    pub fn start(
        data_dir: &Path,
        reader: JournalReader,
        journal: Journal,
        clock: Arc<dyn Clock>,
        idem_ttl_ms: u64,
        settings: SnapshotSettings,
        last_position: u64,
    ) -> Snapshotter {
        let (tx, rx) = crossbeam_channel::bounded::<SnapshotRequest>(16);
        let mut worker = SnapshotWorker {
            data_dir: data_dir.to_owned(),
            reader,
            journal,
            clock,
            idem_ttl_ms,
            settings,
            last_position,
            last_records: 0,
            last_at: std::time::Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("snapshotter".into())
            .spawn(move || {
                // Background work: the sections come first.
                threads::lower_priority(MAILER_NICE);
                worker.compact();
                loop {
                    match rx.recv_timeout(Duration::from_millis(200)) {
                        Ok(SnapshotRequest::Take(reply)) => {
                            let _ = reply.send(worker.take().map_err(|e| format!("{e:#}")));
                        }
                        Ok(SnapshotRequest::FinalAndStop) => {
                            if worker.journal.durable_position() > worker.last_position {
                                if let Err(e) = worker.take() {
                                    tracing::error!(error = %format!("{e:#}"), "shutdown snapshot failed");
                                }
                            }
                            break;
                        }
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                            if worker.due() {
                                if let Err(e) = worker.take() {
                                    tracing::error!(error = %format!("{e:#}"), "automatic snapshot failed");
                                }
                            }
                        }
                    }
                }
            })
            .expect("spawn the snapshotter");
        Snapshotter {
            tx,
            thread: std::sync::Mutex::new(Some(thread)),
        }
    }

    /// Takes a snapshot now and waits for it.
    pub async fn take(&self) -> Result<snapshot::Header, String> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx
            .try_send(SnapshotRequest::Take(reply))
            .map_err(|_| "the snapshotter is busy or stopped".to_owned())?;
        rx.await.map_err(|_| "the snapshotter stopped".to_owned())?
    }

    /// Takes a last snapshot if anything changed, then stops the thread.
    /// Call once the journal has drained.
    pub fn stop_with_snapshot(&self) {
        let _ = self.tx.send(SnapshotRequest::FinalAndStop);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

struct SnapshotWorker {
    data_dir: std::path::PathBuf,
    reader: JournalReader,
    journal: Journal,
    clock: Arc<dyn Clock>,
    idem_ttl_ms: u64,
    settings: SnapshotSettings,
    last_position: u64,
    last_records: u64,
    last_at: std::time::Instant,
}

impl SnapshotWorker {
    fn records(&self) -> u64 {
        self.journal
            .stats()
            .records
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn due(&self) -> bool {
        let changed = self.journal.durable_position() > self.last_position;
        changed
            && (self.records() - self.last_records >= self.settings.every_records
                || self.last_at.elapsed() >= self.settings.every)
    }

    /// Snapshots everything durable now, unless nothing changed since the
    /// last snapshot (then that one is the answer).
    fn take(&mut self) -> anyhow::Result<snapshot::Header> {
        let started = std::time::Instant::now();
        let records = self.records();
        let end = self.journal.durable_position();
        if end <= self.last_position {
            // Only the header is needed: no reason to read and check the
            // whole file (it was checked when written or loaded). It must
            // carry the lineage too (one restored from before lineages
            // does not), or its restore would end every ticket mailed.
            let lineage = crate::data_dir::Lineage::load(&self.data_dir)?.map(|l| l.header());
            if let Some((_, path)) = snapshot::list(&self.data_dir)?.first() {
                if let Ok(h) = snapshot::read_header(path) {
                    if h.journal_position == self.last_position && h.lineage == lineage {
                        return Ok(h);
                    }
                }
            }
        }
        let (header, bytes) = recovery::take_snapshot(
            &self.data_dir,
            &self.reader,
            self.settings.answers,
            self.idem_ttl_ms,
            Some(end),
            self.clock.now_ms(),
            &mut |_| {},
        )?;
        let path = snapshot::path_for(&self.data_dir, header.journal_position);
        write(&self.data_dir, &path, &bytes)?;
        let size = bytes.len();
        // The replayed copy of the state and its encoding are gone now;
        // without this their pages stay resident (glibc keeps them in this
        // thread's arena), and RSS ratchets up by a state per snapshot.
        drop(bytes);
        recovery::release_freed_memory();
        self.last_position = header.journal_position;
        self.last_records = records;
        self.last_at = std::time::Instant::now();
        tracing::info!(
            path = %path.display(),
            position = header.journal_position,
            bytes = size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "snapshot written"
        );
        self.prune()?;
        self.compact();
        Ok(header)
    }

    fn prune(&self) -> anyhow::Result<()> {
        let listed = snapshot::list(&self.data_dir)?;
        for (_, path) in listed.iter().skip(self.settings.keep.max(1)) {
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
        Ok(())
    }

    /// The journal keeps what the oldest kept snapshot needs, so that any
    /// of them can still start the server.
    fn compact(&self) {
        let listed = snapshot::list(&self.data_dir).unwrap_or_default();
        let oldest = listed
            .iter()
            .take(self.settings.keep.max(1))
            .map(|(p, _)| *p)
            .min();
        if let Some(below) = oldest.map(|o| o.min(self.last_position)) {
            self.journal.compact_below(below);
        }
    }
}
