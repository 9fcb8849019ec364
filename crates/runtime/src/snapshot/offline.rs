//! Snapshots of a stopped data directory: `boxoffice snapshot create
//! --data-dir` and `boxoffice snapshot restore`, and the repair of a
//! restore a crash interrupted (which every start-up runs first).

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Context};

use crate::auth::admission::ADMISSION_KEY_FILE;
use crate::auth::issuer::ISSUER_KEY_FILE;
use crate::auth::receipt::PAYMENT_KEY_FILE;
use crate::data_dir;
use crate::idempotency::TTL_SECS_DEFAULT as IDEMPOTENCY_TTL_SECS_DEFAULT;
use crate::journal::Store;
use crate::mail::TICKET_KEY_FILE;
use crate::recovery;
use crate::snapshot;

/// `boxoffice snapshot create --data-dir`: a snapshot of a stopped data
/// directory (the lock keeps a running server out), at the end of its
/// journal. Returns the header written.
pub fn create(
    data_dir: &Path,
    out: &Path,
    answers: &dyn recovery::Answers,
    now_ms: u64,
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<snapshot::Header> {
    if !data_dir.join(data_dir::JOURNAL_DIR).exists() {
        bail!("{} holds no boxoffice journal", data_dir.display());
    }
    let _lock = data_dir::lock(data_dir)
        .context("stop the server first, or ask it with --server (admin API)")?;
    let store = Store::open(&data_dir.join(data_dir::JOURNAL_DIR))?;
    let (header, bytes) = recovery::take_snapshot(
        data_dir,
        &store.reader(),
        answers,
        IDEMPOTENCY_TTL_SECS_DEFAULT * 1000,
        None,
        now_ms,
        progress,
    )?;
    snapshot::write_atomic(out, &bytes)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(header)
}

/// `boxoffice snapshot restore`: checks `file`, builds a fresh data
/// directory beside `data_dir` holding only that snapshot, and swaps it
/// in when complete. A non-empty `data_dir` is replaced only with `force`,
/// and never while a server holds it.
pub fn restore(file: &Path, data_dir: &Path, force: bool) -> anyhow::Result<snapshot::Header> {
    repair_interrupted_restore(data_dir)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut snap = snapshot::decode(&bytes).with_context(|| format!("{}", file.display()))?;
    snap.restore()
        .with_context(|| format!("{}", file.display()))?;
    let non_empty = std::fs::read_dir(data_dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if non_empty && !force {
        bail!(
            "{} is not empty: restoring replaces everything in it; pass --force to do that",
            data_dir.display()
        );
    }
    let _lock = if non_empty {
        Some(data_dir::lock(data_dir)?)
    } else {
        None
    };
    let name = data_dir
        .file_name()
        .context("the data directory needs a name")?
        .to_string_lossy()
        .into_owned();
    let parent = data_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = parent.join(format!(".{name}.restoring"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("cannot clear {}", tmp.display()))?;
    }
    std::fs::create_dir_all(tmp.join(snapshot::DIR))?;
    snapshot::write_atomic(
        &snapshot::path_for(&tmp, snap.header.journal_position),
        &bytes,
    )?;
    // Keys are not in the snapshot (a secret stays out of backup files):
    // the directory being replaced keeps its own, or the tickets already
    // in fans' emails would stop verifying at the door (and, on the demo
    // issuer and payment secret, tokens and receipts already handed out;
    // and the waiting rooms' admissions fans hold).
    for file in [
        TICKET_KEY_FILE,
        ISSUER_KEY_FILE,
        PAYMENT_KEY_FILE,
        ADMISSION_KEY_FILE,
    ] {
        let key = data_dir.join(file);
        if key.exists() {
            let copied = tmp.join(file);
            std::fs::copy(&key, &copied)
                .with_context(|| format!("cannot keep {}", key.display()))?;
            File::open(&copied)?.sync_all()?;
        }
    }
    // The lineage goes on: the tickets mailed for the bookings the
    // snapshot holds still admit. A file from before lineages has none:
    // the directory replaced keeps its own (tickets still name their
    // bookings), or the server begins one at its first start.
    match &snap.header.lineage {
        Some(lineage) => data_dir::Lineage::parse(lineage)?.write(&tmp)?,
        None => {
            if let Some(lineage) = data_dir::Lineage::load(data_dir)? {
                lineage.write(&tmp)?;
            }
        }
    }
    File::open(&tmp)?.sync_all()?;
    // Swap: the old directory moves aside, the new one takes its name, and
    // only then is the old one removed. A crash in between leaves either
    // the old directory in place or the new one (and a leftover to clean).
    let old = parent.join(format!(".{name}.replaced"));
    if data_dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        std::fs::rename(data_dir, &old)
            .with_context(|| format!("cannot move {} aside", data_dir.display()))?;
    }
    std::fs::rename(&tmp, data_dir)
        .with_context(|| format!("cannot move the restored data into {}", data_dir.display()))?;
    File::open(parent)?.sync_all()?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(snap.header)
}

/// The names a restore uses beside `data_dir`: the directory being built,
/// and the old directory moved aside during the swap.
fn restore_names(data_dir: &Path) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let name = data_dir.file_name()?.to_string_lossy().into_owned();
    let parent = data_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Some((
        parent.join(format!(".{name}.restoring")),
        parent.join(format!(".{name}.replaced")),
    ))
}

/// Finishes or undoes a restore that a crash interrupted, so the data
/// directory is the old state or the new one, never missing or mixed: a
/// half-built new directory is dropped; if the crash fell between moving
/// the old directory aside and moving the new one in, the old one comes
/// back.
pub fn repair_interrupted_restore(data_dir: &Path) -> anyhow::Result<()> {
    let Some((restoring, replaced)) = restore_names(data_dir) else {
        return Ok(());
    };
    if replaced.exists() {
        if data_dir.exists() {
            std::fs::remove_dir_all(&replaced)
                .with_context(|| format!("cannot remove {}", replaced.display()))?;
        } else {
            tracing::warn!(dir = %data_dir.display(), "a restore was interrupted mid-swap; putting the old data back");
            std::fs::rename(&replaced, data_dir)
                .with_context(|| format!("cannot move {} back", replaced.display()))?;
        }
    }
    if restoring.exists() {
        std::fs::remove_dir_all(&restoring)
            .with_context(|| format!("cannot remove {}", restoring.display()))?;
    }
    Ok(())
}
