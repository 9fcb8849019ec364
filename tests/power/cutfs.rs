//! A power-cut filesystem, in the manner of LazyFS: a FUSE filesystem
//! kept in this process's memory, mounted by the test, that treats as
//! durable only what `fsync`/`fdatasync` made durable, and on a power cut
//! drops everything else, as a disk without power would.
//!
//! The rules, which the unit tests of `tests/power_cut.rs` check:
//! - a file's data is durable up to its last `fsync` or `fdatasync`
//!   (`sync_file_range` never reaches a FUSE filesystem: not durable);
//! - a name (a create, a rename, an unlink, a mkdir) is durable only once
//!   its directory was synced (`fsync` of the directory); a rename across
//!   directories needs both;
//! - on a cut, every file's data is what it was at its last sync (empty
//!   if never synced), every directory's entries what they were at its
//!   last sync, and whatever no durable name reaches is gone;
//! - with `tear`, the last unsynced write of each file is kept in part (a
//!   random prefix of it, possibly none or all), as a disk that was
//!   writing it when the power went.
//!
//! The kernel is told to cache nothing (every lookup and attribute asked
//! each time; no writeback cache, so every `write` reaches us in order),
//! and a cut is applied unmounted: the mount after it starts cold.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// Nothing cached in the kernel: every lookup and attribute is asked.
const TTL: Duration = Duration::ZERO;

#[derive(Debug, Clone)]
enum Body {
    File {
        data: Vec<u8>,
        /// The data as of the last sync.
        synced: Vec<u8>,
        /// Byte ranges written or cut since the last sync.
        dirty: Vec<(usize, usize)>,
        /// The last write since the last sync: (offset, bytes).
        last_write: Option<(usize, Vec<u8>)>,
    },
    Dir {
        entries: BTreeMap<OsString, u64>,
        /// The entries as of the last sync.
        synced: BTreeMap<OsString, u64>,
    },
}

#[derive(Debug, Clone)]
struct Node {
    body: Body,
    perm: u16,
    mtime: SystemTime,
}

/// What the filesystem holds, and what it counted.
#[derive(Debug)]
pub struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    /// Calls of `fsync` on files and on directories.
    pub file_syncs: u64,
    pub dir_syncs: u64,
    /// Files and directories open (opened or created, not yet released).
    open: u64,
}

/// What a cut dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CutReport {
    /// Bytes of file data that were written but not synced.
    pub bytes_dropped: u64,
    /// Names created, renamed or removed without a directory sync.
    pub names_reverted: u64,
    /// Files and directories no durable name reaches any more.
    pub nodes_dropped: u64,
    /// Bytes of last writes kept in part (with `tear`).
    pub bytes_torn_in: u64,
}

/// Detaches the cut filesystems no process serves any more, and says how
/// many. A test that is killed (SIGKILL, a CI timeout) cannot unmount its
/// own: the mount stays in the temporary directory, dead (every access
/// answers ENOTCONN, "Transport endpoint is not connected"). A live mount,
/// of this process or another, answers, and is left alone.
pub fn sweep_dead_mounts() -> usize {
    use std::os::unix::ffi::OsStrExt;
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return 0;
    };
    let mut swept = 0;
    for line in mounts.lines() {
        // id parent major:minor root mount-point options ... - type source ...
        let Some((mine, theirs)) = line.split_once(" - ") else {
            continue;
        };
        let mut theirs = theirs.split(' ');
        let (Some(kind), Some(source)) = (theirs.next(), theirs.next()) else {
            continue;
        };
        let Some(point) = mine.split(' ').nth(4) else {
            continue;
        };
        if !kind.starts_with("fuse") || source != "cutfs" {
            continue;
        }
        // mountinfo writes a space, tab, newline or backslash as \ooo.
        let point = unescape_octal(point);
        let dead = std::fs::metadata(OsStr::from_bytes(&point))
            .is_err_and(|e| e.raw_os_error() == Some(libc::ENOTCONN));
        let Ok(path) = std::ffi::CString::new(point) else {
            continue;
        };
        // SAFETY: a NUL-terminated path; MNT_DETACH only unlinks the
        // mount from the tree.
        if dead && unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } == 0 {
            swept += 1;
        }
    }
    swept
}

fn unescape_octal(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push(d.iter().fold(0u8, |n, c| n.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The filesystem: shared by its mounts and the test that cuts it.
#[derive(Clone)]
pub struct CutFs(Arc<Mutex<State>>);

/// A mount of it; unmounted when dropped.
pub struct Mounted(Option<fuser::BackgroundSession>, CutFs);

/// How long an unmount waits for the kernel to release what was closed.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Mounted {
    /// The kernel releases a closed file after `close` returns (FUSE's
    /// RELEASE is sent asynchronously), and a mount with a release still
    /// to come is busy: unmounting then fails with EBUSY and leaves it
    /// mounted. So wait until everything opened was released.
    fn wait_released(&self) {
        let started = std::time::Instant::now();
        while self.1.state().open > 0 && started.elapsed() < RELEASE_WAIT {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    pub fn unmount(mut self) {
        self.wait_released();
        if let Some(s) = self.0.take() {
            match s.umount_and_join() {
                Ok(()) => {}
                // The kernel ended the connection rather than closing it
                // (a request of the dead server still in flight at the
                // unmount, seen once in 130 cuts): it is unmounted all
                // the same, and the state is ours, not the kernel's.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => {
                    eprintln!("cutfs: the unmount aborted the connection: {e}")
                }
                Err(e) => panic!("unmount the power-cut filesystem: {e}"),
            }
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.0.is_some() {
            self.wait_released();
        }
        if let Some(s) = self.0.take() {
            let _ = s.umount_and_join();
        }
    }
}

impl Default for CutFs {
    fn default() -> Self {
        Self::new()
    }
}

impl CutFs {
    /// An empty filesystem whose root is durable.
    pub fn new() -> CutFs {
        let mut nodes = HashMap::new();
        nodes.insert(
            1,
            Node {
                body: Body::Dir {
                    entries: BTreeMap::new(),
                    synced: BTreeMap::new(),
                },
                perm: 0o755,
                mtime: SystemTime::now(),
            },
        );
        CutFs(Arc::new(Mutex::new(State {
            nodes,
            next_ino: 2,
            file_syncs: 0,
            open: 0,
            dir_syncs: 0,
        })))
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Mounts it on `dir` (an empty directory), having detached the dead
    /// mounts of tests killed before ([`sweep_dead_mounts`]).
    pub fn mount(&self, dir: &Path) -> Mounted {
        sweep_dead_mounts();
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("cutfs".into()),
            fuser::MountOption::DefaultPermissions,
        ];
        let session = fuser::spawn_mount(Fs(self.clone()), dir, &config)
            .unwrap_or_else(|e| panic!("mount the power-cut filesystem on {}: {e}", dir.display()));
        Mounted(Some(session), self.clone())
    }

    /// The power goes: everything not synced is dropped; with `tear`
    /// (given a source of random numbers), each file's last unsynced
    /// write is kept in part. Apply it unmounted.
    pub fn cut(&self, mut tear: Option<&mut dyn FnMut() -> u64>) -> CutReport {
        let mut st = self.state();
        let mut report = CutReport::default();
        for node in st.nodes.values_mut() {
            match &mut node.body {
                Body::File {
                    data,
                    synced,
                    dirty,
                    last_write,
                } => {
                    report.bytes_dropped += dirty.iter().map(|&(a, b)| (b - a) as u64).sum::<u64>();
                    let mut kept = synced.clone();
                    if let (Some(rng), Some((at, bytes))) = (tear.as_mut(), last_write.take()) {
                        let n = (rng() % (bytes.len() as u64 + 1)) as usize;
                        if n > 0 {
                            if kept.len() < at + n {
                                kept.resize(at + n, 0);
                            }
                            kept[at..at + n].copy_from_slice(&bytes[..n]);
                            report.bytes_torn_in += n as u64;
                        }
                    }
                    *data = kept;
                    dirty.clear();
                    *last_write = None;
                }
                Body::Dir { entries, synced } => {
                    let changed = entries
                        .iter()
                        .filter(|(k, v)| synced.get(*k) != Some(v))
                        .count()
                        + synced.keys().filter(|k| !entries.contains_key(*k)).count();
                    report.names_reverted += changed as u64;
                    *entries = synced.clone();
                }
            }
        }
        // Whatever no durable name reaches is gone.
        let mut reached = std::collections::HashSet::new();
        let mut todo = vec![1u64];
        while let Some(ino) = todo.pop() {
            if !reached.insert(ino) {
                continue;
            }
            if let Some(Node {
                body: Body::Dir { entries, .. },
                ..
            }) = st.nodes.get(&ino)
            {
                todo.extend(entries.values().copied());
            }
        }
        let before = st.nodes.len();
        st.nodes.retain(|ino, _| reached.contains(ino));
        report.nodes_dropped = (before - st.nodes.len()) as u64;
        report
    }
}

impl State {
    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let n = self.nodes.get(&ino)?;
        let (kind, size, nlink) = match &n.body {
            Body::File { data, .. } => (FileType::RegularFile, data.len() as u64, 1),
            Body::Dir { entries, .. } => {
                let subdirs = entries
                    .values()
                    .filter(|i| {
                        matches!(
                            self.nodes.get(i),
                            Some(Node {
                                body: Body::Dir { .. },
                                ..
                            })
                        )
                    })
                    .count() as u32;
                (FileType::Directory, 4096, 2 + subdirs)
            }
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: n.mtime,
            mtime: n.mtime,
            ctime: n.mtime,
            crtime: n.mtime,
            kind,
            perm: n.perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn entries_mut(&mut self, ino: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        match self.nodes.get_mut(&ino).map(|n| &mut n.body) {
            Some(Body::Dir { entries, .. }) => Ok(entries),
            Some(_) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        match self.nodes.get(&parent).map(|n| &n.body) {
            Some(Body::Dir { entries, .. }) => entries.get(name).copied().ok_or(Errno::ENOENT),
            Some(_) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn add(&mut self, parent: u64, name: &OsStr, body: Body, perm: u16) -> Result<u64, Errno> {
        if self.child(parent, name).is_ok() {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                body,
                perm,
                mtime: SystemTime::now(),
            },
        );
        self.entries_mut(parent)?.insert(name.to_owned(), ino);
        Ok(ino)
    }

    fn file(&mut self, ino: u64) -> Result<&mut Body, Errno> {
        match self.nodes.get_mut(&ino) {
            Some(
                n @ Node {
                    body: Body::File { .. },
                    ..
                },
            ) => {
                n.mtime = SystemTime::now();
                Ok(&mut n.body)
            }
            Some(_) => Err(Errno::EISDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn write(&mut self, ino: u64, at: usize, bytes: &[u8]) -> Result<(), Errno> {
        let Body::File {
            data,
            dirty,
            last_write,
            ..
        } = self.file(ino)?
        else {
            unreachable!("a file")
        };
        if data.len() < at + bytes.len() {
            data.resize(at + bytes.len(), 0);
        }
        data[at..at + bytes.len()].copy_from_slice(bytes);
        dirty.push((at, at + bytes.len()));
        *last_write = Some((at, bytes.to_vec()));
        Ok(())
    }

    fn truncate(&mut self, ino: u64, size: usize) -> Result<(), Errno> {
        let Body::File { data, dirty, .. } = self.file(ino)? else {
            unreachable!("a file")
        };
        let old = data.len();
        data.resize(size, 0);
        dirty.push((size.min(old), size.max(old)));
        Ok(())
    }

    fn sync(&mut self, ino: u64) -> Result<(), Errno> {
        match self.nodes.get_mut(&ino).map(|n| &mut n.body) {
            Some(Body::File {
                data,
                synced,
                dirty,
                last_write,
            }) => {
                synced.resize(data.len(), 0);
                for (a, b) in dirty.drain(..) {
                    let b = b.min(data.len());
                    if a < b {
                        synced[a..b].copy_from_slice(&data[a..b]);
                    }
                }
                *last_write = None;
                self.file_syncs += 1;
                Ok(())
            }
            Some(Body::Dir { entries, synced }) => {
                *synced = entries.clone();
                self.dir_syncs += 1;
                Ok(())
            }
            None => Err(Errno::ENOENT),
        }
    }
}

fn new_file() -> Body {
    Body::File {
        data: Vec::new(),
        synced: Vec::new(),
        dirty: Vec::new(),
        last_write: None,
    }
}

struct Fs(CutFs);

impl Fs {
    fn st(&self) -> MutexGuard<'_, State> {
        self.0.state()
    }
}

impl Filesystem for Fs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let st = self.st();
        match st.child(parent.0, name) {
            Ok(ino) => reply.entry(&TTL, &st.attr(ino).expect("a node"), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.st().attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = self.st();
        if let Some(size) = size {
            if let Err(e) = st.truncate(ino.0, size as usize) {
                return reply.error(e);
            }
        }
        if let (Some(mode), Some(n)) = (mode, st.nodes.get_mut(&ino.0)) {
            n.perm = (mode & 0o7777) as u16;
        }
        match st.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let mut st = self.st();
        match st.add(parent.0, name, new_file(), (mode & !umask & 0o7777) as u16) {
            Ok(ino) => reply.entry(&TTL, &st.attr(ino).expect("made"), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut st = self.st();
        let body = Body::Dir {
            entries: BTreeMap::new(),
            synced: BTreeMap::new(),
        };
        match st.add(parent.0, name, body, (mode & !umask & 0o7777) as u16) {
            Ok(ino) => reply.entry(&TTL, &st.attr(ino).expect("made"), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = self.st();
        match st.child(parent.0, name) {
            Ok(ino) if matches!(st.nodes[&ino].body, Body::Dir { .. }) => {
                reply.error(Errno::EISDIR)
            }
            Ok(_) => {
                st.entries_mut(parent.0).expect("a directory").remove(name);
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = self.st();
        match st.child(parent.0, name) {
            Ok(ino) => match &st.nodes[&ino].body {
                Body::Dir { entries, .. } if !entries.is_empty() => reply.error(Errno::ENOTEMPTY),
                Body::Dir { .. } => {
                    st.entries_mut(parent.0).expect("a directory").remove(name);
                    reply.ok()
                }
                Body::File { .. } => reply.error(Errno::ENOTDIR),
            },
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut st = self.st();
        let ino = match st.child(parent.0, name) {
            Ok(ino) => ino,
            Err(e) => return reply.error(e),
        };
        if flags.contains(RenameFlags::RENAME_EXCHANGE)
            || flags.contains(RenameFlags::RENAME_WHITEOUT)
        {
            return reply.error(Errno::EINVAL);
        }
        if let Ok(old) = st.child(newparent.0, newname) {
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return reply.error(Errno::EEXIST);
            }
            if let Body::Dir { entries, .. } = &st.nodes[&old].body {
                if !entries.is_empty() {
                    return reply.error(Errno::ENOTEMPTY);
                }
            }
        }
        if let Err(e) = st.entries_mut(newparent.0) {
            return reply.error(e);
        }
        st.entries_mut(parent.0).expect("a directory").remove(name);
        st.entries_mut(newparent.0)
            .expect("a directory")
            .insert(newname.to_owned(), ino);
        reply.ok()
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut st = self.st();
        match st.nodes.get(&ino.0) {
            Some(_) => {
                st.open += 1;
                reply.opened(FileHandle(0), FopenFlags::empty())
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.st();
        st.open = st.open.saturating_sub(1);
        reply.ok()
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.st().open += 1;
        reply.opened(FileHandle(0), FopenFlags::empty())
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let mut st = self.st();
        st.open = st.open.saturating_sub(1);
        reply.ok()
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let st = self.st();
        match st.nodes.get(&ino.0).map(|n| &n.body) {
            Some(Body::File { data, .. }) => {
                let at = (offset as usize).min(data.len());
                let end = (at + size as usize).min(data.len());
                reply.data(&data[at..end])
            }
            Some(_) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.st().write(ino.0, offset as usize, data) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // A close is no sync.
        reply.ok()
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.st().sync(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let st = self.st();
        let Some(Body::Dir { entries, .. }) = st.nodes.get(&ino.0).map(|n| &n.body) else {
            return reply.error(Errno::ENOTDIR);
        };
        let mut all = vec![
            (ino.0, FileType::Directory, OsString::from(".")),
            (1, FileType::Directory, OsString::from("..")),
        ];
        for (name, &child) in entries {
            let kind = match st.nodes.get(&child).map(|n| &n.body) {
                Some(Body::Dir { .. }) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            all.push((child, kind, name.clone()));
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok()
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.st().sync(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Plenty of room: 64 GiB in 4 KiB blocks.
        reply.statfs(1 << 24, 1 << 24, 1 << 24, 1 << 20, 1 << 20, 4096, 255, 4096)
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = self.st();
        match st.add(parent.0, name, new_file(), (mode & !umask & 0o7777) as u16) {
            Ok(ino) => {
                st.open += 1;
                reply.created(
                    &TTL,
                    &st.attr(ino).expect("made"),
                    Generation(0),
                    FileHandle(0),
                    FopenFlags::empty(),
                )
            }
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // Plain allocation only: it extends the file with zeros.
        if mode != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let mut st = self.st();
        let end = (offset + length) as usize;
        let len = match st.nodes.get(&ino.0).map(|n| &n.body) {
            Some(Body::File { data, .. }) => data.len(),
            _ => return reply.error(Errno::EBADF),
        };
        if end > len {
            if let Err(e) = st.truncate(ino.0, end) {
                return reply.error(e);
            }
        }
        reply.ok()
    }
}
