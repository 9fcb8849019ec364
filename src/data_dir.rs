//! The data directory: what lives in it, and its lock (one writer per
//! directory: a server, or an offline tool, never two at once).

use std::fs::File;
use std::io::Write;
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

/// Creates `dir` and its missing parents, and makes their names durable:
/// once a new directory is made, its parent is synced, or a power cut can
/// take the directory back with everything in it. `dir`'s own parent is
/// synced even when `dir` was there already (a crash may have come
/// between its creation and that sync).
pub fn create_dir_durable(dir: &Path) -> std::io::Result<()> {
    let mut made = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        made.push(d);
        at = d.parent();
    }
    std::fs::create_dir_all(dir)?;
    // `data`'s parent is the working directory.
    let parent_of = |d: &Path| {
        d.parent().map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".").to_owned()
            } else {
                p.to_owned()
            }
        })
    };
    let mut parents: Vec<_> = made.iter().rev().filter_map(|d| parent_of(d)).collect();
    if made.is_empty() {
        parents.extend(parent_of(dir));
    }
    for p in parents {
        File::open(&p)?.sync_all()?;
    }
    Ok(())
}

/// A secret of `len` random bytes kept in `dir/name` as hex (the ticket
/// key, the demo issuer's key, the demo payment secret): read if the file
/// exists, else made and written whole (temporary file with mode 0600,
/// synced, renamed into place, directory synced), so a crash leaves the
/// old state or the new key, never half a key.
pub fn load_or_create_secret(dir: &Path, name: &str, len: usize) -> anyhow::Result<Vec<u8>> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => from_hex(text.trim(), len).with_context(|| format!("{}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = vec![0u8; len];
            rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut key)
                .map_err(|e| anyhow::anyhow!("no randomness for {name}: {e}"))?;
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            create_dir_durable(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let tmp = dir.join(format!("{name}.tmp"));
            let mut f =
                File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
            f.write_all(hex.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            File::open(dir)?.sync_all()?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// `len` bytes from exactly `2 * len` hex digits.
pub fn from_hex(text: &str, len: usize) -> anyhow::Result<Vec<u8>> {
    if text.len() != 2 * len || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("expected {} hex digits", 2 * len);
    }
    (0..len)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).context("expected hex digits"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_missing_directories_and_takes_existing_ones() {
        let t = tempfile::tempdir().unwrap();
        let deep = t.path().join("a/b/c");
        create_dir_durable(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_durable(&deep).unwrap();
        let file = t.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(create_dir_durable(&file.join("under-a-file")).is_err());
    }
}
