//! Segments that earlier jobs left in /dev/shm, removed by the next job on the node.
//!
//! A segment's name stays in /dev/shm until every local rank has mapped it (see
//! [`super::segment`]). oxrun removes the names of a job that failed before that; under
//! another launcher nobody does, so a rank killed during init left its node's
//! segment behind. The node's first rank of every later job therefore removes, before
//! it creates its own, each `oxmpi-*` name in /dev/shm that belongs to this user, was
//! created more than [`STALE_AFTER`] ago, and whose creator no longer runs or never
//! got as far as writing the segment's header (it was killed between creating the
//! name and that, a few system calls). A job whose init went well has removed its name
//! long before that, so what is removed belongs to a job that can no longer finish its
//! init. A process id names the creator only in its own PID namespace: where /dev/shm
//! is shared between containers that each have their own, a live creator in another
//! one could look dead from here, so its segment is kept (the header says in which
//! namespace the creator ran).
//!
//! Invariants: nothing of another user is touched; a segment whose creator still runs
//! (or whose process id now belongs to another process), or ran in another PID
//! namespace, is kept; a name that vanishes
//! or cannot be read meanwhile is skipped, never an error (cleaning is a courtesy to
//! earlier jobs, and must not fail this one).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::segment::{CREATOR, CREATOR_NAMESPACE, MAGIC, PREFIX};

/// How old a segment name must be before it counts as left behind: far longer than
/// any init takes.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// Removes the stale oxmpi segments in `dir` (see the module documentation), as of
/// `now`; returns how many.
pub(crate) fn remove_stale(dir: &Path, now: SystemTime) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let namespace = pid_namespace();
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
        .filter(|e| is_stale(&e.path(), me, namespace, now))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Whether `path` is an oxmpi name of user `me`, created before `now - STALE_AFTER`
/// by a process of PID namespace `namespace` that no longer runs, or that never wrote
/// the segment's header.
fn is_stale(path: &Path, me: u32, namespace: u64, now: SystemTime) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    let old = meta
        .modified()
        .ok()
        .and_then(|m| now.duration_since(m).ok())
        .is_some_and(|age| age > STALE_AFTER);
    if !meta.is_file() || meta.uid() != me || !old {
        return false;
    }
    let mut head = [0u8; CREATOR_NAMESPACE + 8];
    match File::open(path).and_then(|mut f| f.read_exact(&mut head)) {
        Ok(()) => {}
        // Shorter than a header: never sized, so no header.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return true,
        Err(_) => return false,
    }
    let word = |off: usize| u64::from_ne_bytes(head[off..off + 8].try_into().expect("8 bytes"));
    // The creator writes its process id before the magic word.
    if word(0) != MAGIC {
        return true;
    }
    if word(CREATOR_NAMESPACE) != namespace {
        return false;
    }
    let Ok(pid) = libc::pid_t::try_from(word(CREATOR)) else {
        return false;
    };
    // SAFETY: signal 0 only asks whether the process exists.
    pid > 0
        && unsafe { libc::kill(pid, 0) } != 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// This process's PID namespace: the inode of `/proc/self/ns/pid`, or 0 where that
/// cannot be read (no /proc; then every creator counts as one of this namespace).
pub(super) fn pid_namespace() -> u64 {
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A file at `dir/name` that starts with `magic` and creator `pid` of this PID
    /// namespace, last written `age` ago.
    fn segment_file(dir: &Path, name: &str, magic: u64, pid: u64, age: Duration) {
        segment_file_in(dir, name, magic, (pid, pid_namespace()), age);
    }

    /// As [`segment_file`], with the creator's PID namespace.
    fn segment_file_in(dir: &Path, name: &str, magic: u64, (pid, ns): (u64, u64), age: Duration) {
        let path = dir.join(name);
        let mut head = vec![0u8; CREATOR_NAMESPACE + 8];
        head[..8].copy_from_slice(&magic.to_ne_bytes());
        head[CREATOR..CREATOR + 8].copy_from_slice(&pid.to_ne_bytes());
        head[CREATOR_NAMESPACE..].copy_from_slice(&ns.to_ne_bytes());
        let mut f = File::create(&path).unwrap();
        f.write_all(&head).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    // Files and processes: not under Miri's isolation.
    #[cfg_attr(miri, ignore)]
    fn only_old_names_of_dead_or_headerless_creators_go() {
        let dir = std::env::temp_dir().join(format!("oxmpi-stale-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dead = {
            let mut child = std::process::Command::new("true").spawn().unwrap();
            let pid = child.id();
            child.wait().unwrap();
            u64::from(pid)
        };
        let alive = u64::from(std::process::id());
        let old = STALE_AFTER * 2;
        segment_file(&dir, "oxmpi-a-n0", MAGIC, dead, old);
        segment_file(&dir, "oxmpi-b-n0", MAGIC, alive, old);
        segment_file(&dir, "oxmpi-c-n0", MAGIC, dead, Duration::ZERO);
        // No header: its creator died before it wrote one.
        segment_file(&dir, "oxmpi-d-n0", 0, 0, old);
        segment_file(&dir, "other-e-n0", MAGIC, dead, old);
        segment_file(&dir, "oxmpi-f-n0", 0, 0, Duration::ZERO);
        File::create(dir.join("oxmpi-g-n0"))
            .unwrap()
            .set_modified(SystemTime::now() - old)
            .unwrap();
        // A creator in another PID namespace (a container sharing /dev/shm): its
        // process id says nothing here.
        let elsewhere = pid_namespace() + 1;
        segment_file_in(&dir, "oxmpi-h-n0", MAGIC, (dead, elsewhere), old);
        assert_eq!(remove_stale(&dir, SystemTime::now()), 3);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "other-e-n0",
                "oxmpi-b-n0",
                "oxmpi-c-n0",
                "oxmpi-f-n0",
                "oxmpi-h-n0"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_missing_directory_removes_nothing() {
        let dir = Path::new("/nonexistent-oxmpi-stale-dir");
        assert_eq!(remove_stale(dir, SystemTime::now()), 0);
    }
}
