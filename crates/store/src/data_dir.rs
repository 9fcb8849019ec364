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

/// The file naming the data directory's [`Lineage`].
pub const LINEAGE_FILE: &str = "lineage";

/// The life of the state a data directory holds: begun (a random id, and
/// when) the first time a server starts on it, carried by its snapshots
/// (a restore goes on with it), begun anew after a fresh start. Tickets
/// name it, so a ticket of another life (a fresh volume that reuses an
/// event's id and the ticket key) admits nothing here; tickets from
/// before lineages name none, and admit only bookings made before it
/// began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lineage {
    pub id: u64,
    pub since_ms: u64,
}

impl Lineage {
    /// The lineage of `dir`, if it has one.
    pub fn load(dir: &Path) -> anyhow::Result<Option<Lineage>> {
        let path = dir.join(LINEAGE_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Lineage::parse(text.trim())
                .map(Some)
                .with_context(|| format!("{}: expected \"<16 hex digits> <ms>\"", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// The lineage of `dir`, begun at `now_ms` if it has none yet (then
    /// `true`: see [`Lineage::after`]).
    pub fn load_or_create(dir: &Path, now_ms: u64) -> anyhow::Result<(Lineage, bool)> {
        if let Some(l) = Lineage::load(dir)? {
            return Ok((l, false));
        }
        let mut id = [0u8; 8];
        rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut id)
            .map_err(|e| anyhow::anyhow!("no randomness for the lineage: {e}"))?;
        let lineage = Lineage {
            id: u64::from_le_bytes(id),
            since_ms: now_ms,
        };
        lineage.write(dir)?;
        Ok((lineage, true))
    }

    /// Writes it into `dir` whole: temporary file, synced, renamed.
    pub fn write(self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(LINEAGE_FILE);
        let tmp = dir.join(format!("{LINEAGE_FILE}.tmp"));
        let mut f =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(format!("{} {}\n", self.id_hex(), self.since_ms).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        File::open(dir)?.sync_all()?;
        Ok(())
    }

    /// `<16 hex digits> <since_ms>`.
    pub fn parse(text: &str) -> anyhow::Result<Lineage> {
        let (id, since) = text.split_once(' ').context("two fields")?;
        Ok(Lineage {
            id: u64::from_be_bytes(from_hex(id, 8)?.try_into().expect("8 bytes")),
            since_ms: since.parse().context("a time in milliseconds")?,
        })
    }

    /// The id as tickets and snapshots carry it: 16 hex digits.
    pub fn id_hex(self) -> String {
        format!("{:016x}", self.id)
    }

    /// As a snapshot's header carries it: `<id> <since_ms>`.
    pub fn header(self) -> String {
        format!("{} {}", self.id_hex(), self.since_ms)
    }

    /// A lineage begun at this start, on a data directory that holds
    /// bookings already (its first start since lineages): it must begin
    /// after the newest of them was confirmed, whatever this machine's
    /// clock says, or their tickets from before lineages would admit
    /// nobody. Written back when moved.
    pub fn after(self, newest_confirmed_ms: Option<u64>, dir: &Path) -> anyhow::Result<Lineage> {
        match newest_confirmed_ms {
            Some(t) if t >= self.since_ms => {
                let moved = Lineage {
                    since_ms: t + 1,
                    ..self
                };
                moved.write(dir)?;
                Ok(moved)
            }
            _ => Ok(self),
        }
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
    fn a_lineage_is_begun_once_and_read_back() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(Lineage::load(t.path()).unwrap(), None);
        let (l, begun) = Lineage::load_or_create(t.path(), 42).unwrap();
        assert_eq!((l.since_ms, begun), (42, true));
        assert_eq!(Lineage::load_or_create(t.path(), 99).unwrap(), (l, false));
        assert_eq!(Lineage::parse(&l.header()).unwrap(), l);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            Lineage::load_or_create(other.path(), 42).unwrap().0.id,
            l.id
        );
        // Begun on bookings confirmed later than this clock says: after
        // them, and kept so.
        assert_eq!(l.after(None, t.path()).unwrap(), l);
        assert_eq!(l.after(Some(41), t.path()).unwrap(), l);
        let moved = l.after(Some(50), t.path()).unwrap();
        assert_eq!((moved.id, moved.since_ms), (l.id, 51));
        assert_eq!(Lineage::load(t.path()).unwrap(), Some(moved));
        for bad in ["", "zz 1", "0123456789abcdef", "0123456789abcdef x", "01 1"] {
            assert!(Lineage::parse(bad).is_err(), "{bad:?}");
        }
        std::fs::write(t.path().join(LINEAGE_FILE), "garbage").unwrap();
        assert!(Lineage::load(t.path()).is_err());
    }

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
