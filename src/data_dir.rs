//! The data directory: what lives in it, and its lock (one writer per
//! directory: a server, or an offline tool, never two at once).

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Context};

/// The journal's sled store, under the data directory.
pub const JOURNAL_DIR: &str = "journal";
/// The lock file.
pub const LOCK_FILE: &str = "LOCK";

/// Locks `dir` for this process, for as long as the file is kept open.
/// Fails at once, naming the directory, when another process holds it.
pub fn lock(dir: &Path) -> anyhow::Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "the data directory {} is in use by another boxoffice process (one writer per directory)",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}
