//! Filesystem helpers shared by the engine: the one atomic-write path, private files, the
//! no-replace rename, tree copy.
//!
//! Every file pubdeck replaces or creates in place goes through [`Staged`]: a temporary file
//! in the destination's directory (named [`TEMP_PREFIX`]…), fsynced, renamed over (or, with
//! [`Replace::No`], next to) the destination, then the directory fsynced, so a reader sees
//! the old content or the whole new content and a crash loses neither.
//!
//! pubdeck is Linux-only (`renameat2(RENAME_NOREPLACE)` here, `PR_SET_PDEATHSIG` in `build`);
//! ARCHITECTURE.md says so.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// File names starting with this are writes in progress (never listed, never a store key).
pub const TEMP_PREFIX: &str = ".pubdeck-tmp-";

/// Whether a commit may replace an existing destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    Yes,
    /// An existing destination is an `AlreadyExists` error and stays untouched.
    No,
}

/// A file being written beside its destination; [`Staged::commit`] puts it in place.
/// Dropped without committing, it is removed.
pub struct Staged {
    tmp: tempfile::NamedTempFile,
}

impl Staged {
    /// A new, empty (mode 0600) temporary file in `dest`'s directory, created if missing.
    pub fn beside(dest: &Path) -> io::Result<Staged> {
        Staged::beside_with(dest, Sharing::Private)
    }

    /// [`Staged::beside`], readable as `sharing` says.
    pub fn beside_with(dest: &Path, sharing: Sharing) -> io::Result<Staged> {
        let dir = parent_dir(dest);
        fs::create_dir_all(dir)?;
        let mut b = tempfile::Builder::new();
        b.prefix(TEMP_PREFIX);
        if sharing == Sharing::Umask {
            // Created with 0666 less the umask, as any file a program writes.
            b.permissions(fs::Permissions::from_mode(0o666));
        }
        let tmp = b.tempfile_in(dir)?;
        Ok(Staged { tmp })
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    pub fn set_mode(&self, mode: u32) -> io::Result<()> {
        self.tmp
            .as_file()
            .set_permissions(fs::Permissions::from_mode(mode))
    }

    /// fsyncs the file, renames it to `dest` (never over an existing one with
    /// [`Replace::No`]) and fsyncs the directory.
    pub fn commit(self, dest: &Path, replace: Replace) -> io::Result<()> {
        self.commit_with(dest, replace, Durability::Each)
    }

    /// [`Staged::commit`], with the fsyncs left to one [`sync_filesystem`] later when
    /// `durability` is [`Durability::Deferred`] (readers still see the old or the whole new
    /// content; only a crash before that sync may lose it).
    pub fn commit_with(
        self,
        dest: &Path,
        replace: Replace,
        durability: Durability,
    ) -> io::Result<()> {
        if durability == Durability::Each {
            self.tmp.as_file().sync_all()?;
        }
        match replace {
            Replace::Yes => self.tmp.persist(dest).map(|_| ()).map_err(|e| e.error)?,
            Replace::No => self
                .tmp
                .persist_noclobber(dest)
                .map(|_| ())
                .map_err(|e| e.error)?,
        }
        if durability == Durability::Each {
            sync_dir(parent_dir(dest))?;
        }
        Ok(())
    }
}

/// When writes reach the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every commit is fsynced (file and directory) before it returns.
    #[default]
    Each,
    /// Commits are not fsynced; the writer calls [`sync_filesystem`] once before relying on
    /// them (many small writes whose whole is marked done only afterwards, as the demo's).
    Deferred,
}

/// Flushes every write of the file system holding `path` to disk (`syncfs`).
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let dir = File::open(path)?;
    // SAFETY: `syncfs` takes a file descriptor that `dir` keeps open for the call.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Who may read a file pubdeck writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// 0600: keys, tokens, config, journals and anything else of the user's alone.
    Private,
    /// 0666 less the process's umask: objects of a store others may share (`file://`).
    Umask,
}

/// Replaces `path` with `bytes` atomically, keeping the permissions of an existing file
/// (a new one is 0600).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, bytes, Durability::Each)
}

/// [`write_atomic`] with the given [`Durability`].
pub fn write_atomic_with(path: &Path, bytes: &[u8], durability: Durability) -> io::Result<()> {
    write_atomic_as(path, bytes, durability, Sharing::Private)
}

/// [`write_atomic_with`]; a new file is readable as `sharing` says.
pub fn write_atomic_as(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
    sharing: Sharing,
) -> io::Result<()> {
    let mode = fs::metadata(path).ok().map(|m| m.permissions().mode());
    let mut staged = Staged::beside_with(path, sharing)?;
    staged.file().write_all(bytes)?;
    if let Some(mode) = mode {
        staged.set_mode(mode)?;
    }
    staged.commit_with(path, Replace::Yes, durability)
}

/// Creates `path` with `bytes` atomically; an existing `path` is `AlreadyExists` and stays.
pub fn create_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    create_atomic_with(path, bytes, Durability::Each)
}

/// [`create_atomic`] with the given [`Durability`].
pub fn create_atomic_with(path: &Path, bytes: &[u8], durability: Durability) -> io::Result<()> {
    create_atomic_as(path, bytes, durability, Sharing::Private)
}

/// [`create_atomic_with`], readable as `sharing` says.
pub fn create_atomic_as(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
    sharing: Sharing,
) -> io::Result<()> {
    let mut staged = Staged::beside_with(path, sharing)?;
    staged.file().write_all(bytes)?;
    staged.commit_with(path, Replace::No, durability)
}

/// Creates `path` with `mode` and `bytes` (fsynced), refusing to overwrite an existing file
/// (`AlreadyExists`). Secrets use 0600.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    sync_dir(parent_dir(path))
}

/// Bytes an unprivileged writer may still use on the file system holding `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("a path with a NUL byte"))?;
    // SAFETY: statvfs writes into the zeroed struct we pass and reads the NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Whether `e` or any error it was caused by is "no space left" (or a quota exceeded).
pub fn is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>()
            && (io.kind() == io::ErrorKind::StorageFull
                || matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)))
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// fsyncs a directory so a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Renames `from` to `to` (files or directories) without ever replacing an existing `to`
/// (`renameat2(RENAME_NOREPLACE)`); an existing `to` is `AlreadyExists`. On a file system
/// without it, checks first (a small race window), then renames.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes());
    let (Ok(f), Ok(t)) = (c(from), c(to)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD makes them relative to the cwd.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return sync_dir(parent_dir(to));
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EINVAL) {
        if fs::symlink_metadata(to).is_ok() {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        fs::rename(from, to)?;
        return sync_dir(parent_dir(to));
    }
    Err(err)
}

/// Copies a tree (files, directories, symlinks as symlinks) keeping permission bits.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(from)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from)?, to)
    } else if ft.is_dir() {
        fs::create_dir(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        fs::set_permissions(to, meta.permissions())
    } else {
        fs::copy(from, to).map(|_| ())
    }
}

/// Every directory of the tree at `root`, `root` first; never follows a symlink (a `root`
/// that is a symlink or a file has none).
fn dirs_of(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if fs::symlink_metadata(root).is_ok_and(|m| m.is_dir()) {
        out.push(root.to_path_buf());
    }
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = fs::read_dir(&out[i]) {
            for e in rd.flatten() {
                // DirEntry::file_type does not follow symlinks.
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

/// Sets the mode of `p` itself, never of what a symlink points to.
fn chmod_no_follow(p: &Path, f: impl Fn(u32) -> u32) -> io::Result<()> {
    let m = fs::symlink_metadata(p)?;
    if m.file_type().is_symlink() {
        return Ok(());
    }
    let mode = m.permissions().mode();
    let new = f(mode);
    if new != mode {
        fs::set_permissions(p, fs::Permissions::from_mode(new))?;
    }
    Ok(())
}

/// Makes every directory of a tree writable by its owner so it can be removed (builds and
/// installs leave read-only trees). Never follows a symlink, so nothing outside the tree
/// changes.
pub fn make_writable(root: &Path) {
    for d in dirs_of(root) {
        let _ = chmod_no_follow(&d, |m| m | 0o700);
    }
}

/// Removes the tree at `root` (read-only or not) without following any symlink; a missing
/// `root` is fine.
pub fn remove_tree(root: &Path) -> io::Result<()> {
    match fs::symlink_metadata(root) {
        Ok(m) if m.is_dir() => {
            make_writable(root);
            fs::remove_dir_all(root)
        }
        Ok(_) => fs::remove_file(root),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes an installed tree read-only (files and directories lose every write bit), as Nix
/// keeps its store. Never follows a symlink.
pub fn make_read_only(root: &Path) -> io::Result<()> {
    let mut files = Vec::new();
    let dirs = dirs_of(root);
    for d in &dirs {
        for e in fs::read_dir(d)?.flatten() {
            if e.file_type().is_ok_and(|t| t.is_file()) {
                files.push(e.path());
            }
        }
    }
    if fs::symlink_metadata(root).is_ok_and(|m| m.is_file()) {
        files.push(root.to_path_buf());
    }
    for f in files {
        chmod_no_follow(&f, |m| m & !0o222)?;
    }
    // Directories last, deepest first, so the walk above could still read them.
    for d in dirs.iter().rev() {
        chmod_no_follow(d, |m| m & !0o222)?;
    }
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_keeps_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, "old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        // no temp files left behind
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    /// Deferred durability changes when writes reach the disk, not what a reader sees: the
    /// same atomic replace and no-replace create, no temp files, then one flush.
    #[test]
    fn deferred_commits_are_as_atomic_and_flush_once() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/f");
        create_atomic_with(&p, b"first", Durability::Deferred).unwrap();
        let e = create_atomic_with(&p, b"second", Durability::Deferred).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&p).unwrap(), "first");
        write_atomic_with(&p, b"third", Durability::Deferred).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "third");
        assert_eq!(fs::read_dir(d.path().join("sub")).unwrap().count(), 1);
        sync_filesystem(d.path()).unwrap();
        let gone = sync_filesystem(&d.path().join("missing")).unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn create_atomic_never_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/f");
        create_atomic(&p, b"first").unwrap();
        let e = create_atomic(&p, b"second").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&p).unwrap(), "first");
        assert_eq!(fs::read_dir(d.path().join("sub")).unwrap().count(), 1);
    }

    #[test]
    fn staged_files_vanish_unless_committed() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("x");
        let mut s = Staged::beside(&dest).unwrap();
        s.file().write_all(b"half").unwrap();
        assert!(
            s.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(TEMP_PREFIX)
        );
        drop(s);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn rename_noreplace_refuses_an_existing_destination() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        let e = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        fs::remove_dir(&b).unwrap();
        rename_noreplace(&a, &b).unwrap();
        assert!(b.is_dir() && !a.exists());
    }

    #[test]
    fn read_only_and_removal_never_follow_symlinks() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("f"), "x").unwrap();
        let tree = d.path().join("tree");
        fs::create_dir_all(tree.join("sub")).unwrap();
        fs::write(tree.join("sub/file"), "y").unwrap();
        symlink(&outside, tree.join("link")).unwrap();
        make_read_only(&tree).unwrap();
        let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&tree.join("sub/file")) & 0o222, 0);
        assert_eq!(mode(&tree) & 0o222, 0);
        assert_ne!(
            mode(&outside) & 0o200,
            0,
            "the link's target keeps its mode"
        );
        assert_ne!(mode(&outside.join("f")) & 0o200, 0);
        // Removing the tree: the target stays, with its mode.
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o500)).unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert!(outside.join("f").exists());
        assert_eq!(mode(&outside), 0o500);
        // A root that is itself a symlink: only the link goes.
        let link_root = d.path().join("link-root");
        symlink(&outside, &link_root).unwrap();
        remove_tree(&link_root).unwrap();
        assert!(outside.join("f").exists());
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn private_file_is_0600_and_not_overwritten() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("secret");
        write_new(&p, b"s", 0o600).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let err = write_new(&p, b"t", 0o600).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&p).unwrap(), "s");
    }
}
