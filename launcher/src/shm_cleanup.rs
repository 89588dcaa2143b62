//! Removes what a job's ranks may have left in /dev/shm.
//!
//! oxmpi names each node's shared-memory segment `oxmpi-<job id>-n<node>` and unlinks
//! it as soon as every local rank has mapped it, so normally nothing is left. A rank
//! that dies before mapping it (killed during start-up) leaves the name behind; the
//! launcher, which chose the job id, removes any such name once every rank is gone.
//! When oxrun itself is killed with SIGKILL during start-up, its ranks die with it
//! (their parent-death signal) and it cannot clean up: a [`Guard`], a small process
//! of its own started before the ranks, does it then, and first ends the ranks'
//! process groups, as oxrun would at the end of a job: what a rank started (the
//! program behind a wrapper script) would otherwise outlive it. Invariant: only names
//! of this job are touched, and only once the ranks oxrun started have ended.

use std::io::{self, BufRead};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pidfd::GroupLeader;

/// The first argument that makes oxrun's executable run as a job's [`Guard`]
/// (`oxrun --shm-guard JOB`; not an option of the launcher).
pub const GUARD_ARG: &str = "--shm-guard";

/// How long a guard waits for the ranks to end once oxrun is gone (they get SIGKILL
/// as it dies, so this bounds only ranks stuck in the kernel).
const GUARD_WAIT: Duration = Duration::from_secs(10);

/// Removes `/dev/shm/oxmpi-<job>-*`.
pub fn remove_segments(job: &str) {
    remove_in(Path::new("/dev/shm"), job);
}

fn remove_in(dir: &Path, job: &str) {
    let prefix = format!("oxmpi-{job}-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// oxrun's side of the process that removes the job's segments once oxrun is gone,
/// however it went. The guard reads the pids of the ranks from a pipe, into which
/// each rank writes its own before it runs its program (`spawn::spawn`); the pipe's
/// end (oxrun was killed: at a normal end oxrun kills the guard first) tells it to
/// end the ranks' process groups, wait for those ranks to end and then remove the
/// job's names from /dev/shm.
#[derive(Debug)]
pub struct Guard {
    child: Child,
    feed: ChildStdin,
}

impl Guard {
    /// Starts the guard of `job`: oxrun's own executable, in a process group of its
    /// own (a Ctrl-C to oxrun's group does not end it), with nothing of the
    /// terminal.
    pub fn start(job: &str) -> io::Result<Guard> {
        let mut child = Command::new("/proc/self/exe")
            .arg0("oxrun-shm-guard")
            .args([GUARD_ARG, job])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let Some(feed) = child.stdin.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("no pipe to the guard"));
        };
        Ok(Guard { child, feed })
    }

    /// The guard's pid (one of oxrun's children that is not a stray).
    pub fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// The guard's input, where each rank writes its pid (close-on-exec: a rank
    /// writes there between fork and exec).
    pub fn feed(&self) -> RawFd {
        self.feed.as_raw_fd()
    }

    /// Ends the guard at the end of a job (every rank reaped, the segments removed):
    /// nothing is left for it to do, so it is killed and reaped at once (letting it
    /// notice the end of its input and look at /dev/shm again took 1-3 ms of every
    /// job's end).
    pub fn finish(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The guard process (`oxrun --shm-guard JOB`): reads rank pids from stdin until it
/// ends, kills the ranks' process groups (through pidfds: see `pidfd`), waits until those ranks have ended (at
/// most [`GUARD_WAIT`]), removes the job's segments, and returns the exit status.
pub fn guard_main(job: Option<&str>) -> i32 {
    let Some(job) = job.filter(|j| !j.is_empty() && !j.contains('/')) else {
        return 2;
    };
    // Each pid is watched as it comes, while its rank runs (it writes the line
    // before its program starts), so that its group is killed below even if the
    // number is another process's by then.
    let ranks: Vec<GroupLeader> = io::stdin()
        .lock()
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| line.trim().parse().ok().filter(|&p| p > 0))
        .map(GroupLeader::watch)
        .collect();
    // oxrun is gone: each rank leads a process group, which what it started is
    // still in; the ranks themselves get SIGKILL as oxrun dies.
    for rank in &ranks {
        rank.kill_group();
    }
    let until = Instant::now() + GUARD_WAIT;
    while ranks.iter().any(|r| !r.ended()) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    remove_segments(job);
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_this_jobs_names() {
        let dir = std::env::temp_dir().join(format!("oxrun-shm-cleanup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["oxmpi-abc-n0", "oxmpi-abc-n1", "oxmpi-abcd-n0", "other"] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        remove_in(&dir, "abc");
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        left.sort();
        assert_eq!(left, ["other", "oxmpi-abcd-n0"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
