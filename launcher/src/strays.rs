//! Processes the ranks start that leave their rank's process group (`setsid`, a
//! daemon's double fork): oxrun makes itself their subreaper, so that when their
//! parent ends they become oxrun's children instead of init's, and the end of the job
//! ends them too. Killing a rank's process group reaches the rest. Those that end
//! during the job are reaped as they go (at most every `job::REAP_GAP`, each look a
//! scan of /proc), so they do not pile up as zombies.
//!
//! Invariant: only oxrun's own children are signalled, found in the kernel's list of
//! each of oxrun's threads' children or by their parent pid in `/proc`; ranks are excluded by pid while they are still oxrun's (zombie) children,
//! and so is the guard that cleans /dev/shm (`shm_cleanup::Guard`).

use std::io;
use std::time::{Duration, Instant};

/// Makes oxrun the subreaper of everything its ranks start.
pub fn adopt_orphans() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes plain integers.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends SIGKILL to every child of oxrun that is not one of `keep` (the ranks and
/// the guard). Their own children come to oxrun as they die, for [`end_strays`].
pub fn kill_strays(keep: &[libc::pid_t]) {
    kill(&strays(keep));
}

/// Reaps every child of oxrun that is not one of `keep` and has ended, so that those
/// that end during the job do not pile up as zombies.
pub fn reap_ended(keep: &[libc::pid_t]) {
    for pid in strays(keep) {
        reaped(pid);
    }
}

/// Once every rank is reaped: kills and reaps every child of oxrun that is not one of
/// `keep`, over and over (each one killed hands its own children to oxrun), until
/// none is left or `within` has passed.
pub fn end_strays(within: Duration, keep: &[libc::pid_t]) {
    let until = Instant::now() + within;
    loop {
        let strays = strays(keep);
        if strays.is_empty() || Instant::now() >= until {
            return;
        }
        kill(&strays);
        for pid in strays {
            while !reaped(pid) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// oxrun's children that are not one of `keep`.
fn strays(keep: &[libc::pid_t]) -> Vec<libc::pid_t> {
    let mut strays = children();
    strays.retain(|pid| !keep.contains(pid));
    strays
}

/// Sends SIGKILL to each of `pids`, oxrun's own unreaped children.
fn kill(pids: &[libc::pid_t]) {
    for &pid in pids {
        // SAFETY: kill takes plain integers; `pid` is our own child, unreaped, so the
        // number is not anyone else's.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Reaps child `pid` if it has ended (or is no longer ours).
fn reaped(pid: libc::pid_t) -> bool {
    let mut status = 0;
    // SAFETY: waitpid on our own child with a valid status pointer.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) != 0 }
}

/// The pids of oxrun's children, zombies included.
fn children() -> Vec<libc::pid_t> {
    listed_children().unwrap_or_else(scanned_children)
}

/// oxrun's children as the kernel lists them per thread (`/proc/self/task/*/children`,
/// where it is built with them): a few small reads where a scan of /proc reads one
/// file per process on the machine (1-2 ms of a 2-rank job's start-up and end).
fn listed_children() -> Option<Vec<libc::pid_t>> {
    let mut pids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let list = std::fs::read_to_string(task.ok()?.path().join("children")).ok()?;
        pids.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<libc::pid_t>().ok()),
        );
    }
    Some(pids)
}

/// oxrun's children, found by their parent pid in every process's `/proc/PID/stat`.
fn scanned_children() -> Vec<libc::pid_t> {
    let me = std::process::id() as libc::pid_t;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|&pid| parent_of(pid) == Some(me))
        .collect()
}

/// `read` applied to the fields of `/proc/PID/stat` after the command (state,
/// parent pid, ...).
fn with_stat<T>(
    pid: libc::pid_t,
    read: impl FnOnce(std::str::SplitWhitespace<'_>) -> Option<T>,
) -> Option<T> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so the
    // fields start after the last ')'.
    read(stat[stat.rfind(')')? + 1..].split_whitespace())
}

/// The parent pid of `pid`, from `/proc/PID/stat`.
fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    with_stat(pid, |mut f| f.nth(1)?.parse().ok())
}

/// Whether `pid` is a process that still runs (not gone, not a zombie).
pub fn running(pid: libc::pid_t) -> bool {
    with_stat(pid, |mut f| {
        f.next().map(|state| !matches!(state, "Z" | "X"))
    })
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_found_by_its_parent_pid() {
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        let pid = child.id() as libc::pid_t;
        assert!(children().contains(&pid));
        assert!(scanned_children().contains(&pid));
        // Where the kernel lists children per thread, both ways agree.
        if let Some(listed) = listed_children() {
            assert!(listed.contains(&pid));
        }
        assert_eq!(parent_of(pid), Some(std::process::id() as libc::pid_t));
        assert_eq!(parent_of(1), Some(0));
        // (Not `kill_strays`: the harness's other tests may have children too.)
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!children().contains(&pid));
    }
}
