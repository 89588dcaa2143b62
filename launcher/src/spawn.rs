//! Starting one rank: fork/exec with pipes for its output, a socketpair for PMI, its
//! own process group, a parent-death signal and its core binding.
//!
//! Invariants: the child runs only async-signal-safe calls between fork and exec (no
//! allocation: everything it needs is computed here first); exactly one descriptor
//! crosses exec without close-on-exec besides stdio, the rank's own PMI end; a rank
//! dies with SIGKILL when oxrun's main thread dies, including when oxrun died before
//! the child could ask for that; the guard that ends the ranks' process groups
//! should oxrun be killed (`shm_cleanup::Guard`) has the rank's pid before the rank
//! runs its program, since the child itself writes it there. Ranks must be spawned
//! from the main thread, because the parent-death signal follows the thread that
//! forked.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ChildStderr, ChildStdin, ChildStdout, Command, Stdio};

/// How to start one rank.
pub struct RankCommand<'a> {
    /// Absolute path of the program.
    pub program: &'a Path,
    /// `argv[0]` as the user wrote it.
    pub argv0: &'a OsStr,
    /// The program's arguments.
    pub args: &'a [OsString],
    /// Working directory.
    pub cwd: &'a Path,
    /// Variables to set (applied in order), given the PMI fd number the rank will see.
    pub env: &'a dyn Fn(i32) -> Vec<(OsString, OsString)>,
    /// Inherited variables to remove.
    pub env_remove: &'a [&'a str],
    /// Affinity mask to apply, if bound.
    pub cpuset: Option<libc::cpu_set_t>,
    /// A network namespace to enter (an open namespace file).
    pub netns: Option<RawFd>,
    /// Give the rank a pipe as stdin (rank 0) instead of /dev/null.
    pub stdin: bool,
    /// The open-file limit to give back to the rank, when oxrun raised its own
    /// (see [`raise_fd_limit`]).
    pub nofile: Option<libc::rlimit>,
    /// Where the rank writes its pid, a line, before it runs its program: the
    /// guard's input (`shm_cleanup::Guard::feed`), if there is a guard.
    pub guard: Option<RawFd>,
}

/// A started rank: its pid and oxrun's ends of its pipes and PMI socket.
#[derive(Debug)]
pub struct Spawned {
    /// Process id, also its process group id.
    pub pid: libc::pid_t,
    /// oxrun's end of the PMI socketpair (close-on-exec, blocking).
    pub pmi: UnixStream,
    /// The rank's stdout.
    pub stdout: ChildStdout,
    /// The rank's stderr.
    pub stderr: ChildStderr,
    /// The rank's stdin, when asked for.
    pub stdin: Option<ChildStdin>,
}

/// What the child does between fork and exec. Plain data, so it is `Copy` and the
/// closure holding it allocates nothing.
#[derive(Clone, Copy)]
struct ChildSetup {
    pmi_fd: libc::c_int,
    parent: libc::pid_t,
    cpuset: Option<libc::cpu_set_t>,
    nofile: Option<libc::rlimit>,
    netns: Option<RawFd>,
    guard: Option<RawFd>,
}

impl ChildSetup {
    /// Runs in the child after fork. Only async-signal-safe calls, no allocation
    /// (`io::Error::last_os_error` and `from_raw_os_error` do not allocate).
    fn apply(&self) -> io::Result<()> {
        // SAFETY: every call below is async-signal-safe and gets valid arguments:
        // an initialised empty sigset, plain integers (a namespace fd oxrun keeps open
        // until the rank has started), and an rlimit and a cpu_set_t that live in
        // `self` for the duration of the calls.
        unsafe {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            // pthread_sigmask returns its error instead of setting errno.
            let rc = libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // oxrun may have died before PR_SET_PDEATHSIG took effect.
            if libc::getppid() != self.parent {
                libc::_exit(137);
            }
            if libc::fcntl(self.pmi_fd, libc::F_SETFD, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(limit) = &self.nofile
                && libc::setrlimit(libc::RLIMIT_NOFILE, limit) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if let Some(set) = &self.cpuset
                && libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if let Some(fd) = self.netns
                && libc::setns(fd, libc::CLONE_NEWNET) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // Last, so that a child that fails its set-up is never the guard's.
            if let Some(fd) = self.guard {
                tell_guard(fd);
            }
        }
        Ok(())
    }
}

/// Writes this process's pid and a newline to `fd` (the guard's input) in one
/// `write`, which a pipe keeps whole, with `SIGPIPE` ignored meanwhile: a guard that
/// is gone cannot be told, and the rank starts all the same (oxrun, still there,
/// cleans up at the end of the job). Written by the child so that no moment exists
/// in which the rank runs its program and could start others while the guard does
/// not know its process group: were oxrun told the pid after `spawn` returned and
/// killed before it passed it on, what the rank started outlived the job. Written
/// last before exec, after every step that can fail; should exec itself fail
/// (rare: oxrun found the program first), the guard knows a pid that has ended, as
/// it knows those of ranks that ended before oxrun was killed.
///
/// # Safety
///
/// Only async-signal-safe calls, no allocation (between fork and exec).
unsafe fn tell_guard(fd: RawFd) {
    // SAFETY: sigaction with a zeroed (SIG_IGN, empty mask) action and a valid place
    // for the old one; getpid and write with a buffer of `len` bytes; all
    // async-signal-safe.
    unsafe {
        let mut ignore: libc::sigaction = std::mem::zeroed();
        ignore.sa_sigaction = libc::SIG_IGN;
        let mut before: libc::sigaction = std::mem::zeroed();
        let ignored = libc::sigaction(libc::SIGPIPE, &ignore, &mut before) == 0;
        let (line, start) = pid_line(libc::getpid());
        libc::write(fd, line[start..].as_ptr().cast(), line.len() - start);
        if ignored {
            libc::sigaction(libc::SIGPIPE, &before, std::ptr::null_mut());
        }
    }
}

/// `pid` in decimal and a newline at the end of a buffer, and where the line starts
/// in it, made without allocating.
fn pid_line(pid: libc::pid_t) -> ([u8; 16], usize) {
    let mut line = [0u8; 16];
    let mut start = line.len() - 1;
    line[start] = b'\n';
    let mut rest = pid.unsigned_abs();
    loop {
        start -= 1;
        line[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            return (line, start);
        }
    }
}

/// Starts one rank. Returns once the program was exec'd (or failed to be).
pub fn spawn(rc: &RankCommand<'_>) -> io::Result<Spawned> {
    // Both ends close-on-exec; the child clears the flag on its own end only.
    let (ours, theirs) = UnixStream::pair()?;
    let setup = ChildSetup {
        pmi_fd: theirs.as_raw_fd(),
        parent: std::process::id() as libc::pid_t,
        cpuset: rc.cpuset,
        nofile: rc.nofile,
        netns: rc.netns,
        guard: rc.guard,
    };
    let mut cmd = Command::new(rc.program);
    cmd.arg0(rc.argv0)
        .args(rc.args)
        .current_dir(rc.cwd)
        .stdin(if rc.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for var in rc.env_remove {
        cmd.env_remove(var);
    }
    cmd.envs((rc.env)(setup.pmi_fd));
    // SAFETY: `ChildSetup::apply` makes only async-signal-safe calls and does not
    // allocate, as required between fork and exec.
    unsafe {
        cmd.pre_exec(move || setup.apply());
    }
    let mut child = cmd.spawn()?;
    drop(theirs);
    let take = |what| io::Error::other(format!("no {what} pipe"));
    Ok(Spawned {
        pid: child.id() as libc::pid_t,
        pmi: ours,
        stdout: child.stdout.take().ok_or_else(|| take("stdout"))?,
        stderr: child.stderr.take().ok_or_else(|| take("stderr"))?,
        stdin: child.stdin.take(),
    })
}

/// Raises oxrun's soft limit on open files when `ranks` need more than it allows
/// (three descriptors each, plus a margin), up to the hard limit. Returns the old
/// limit, which ranks get back, or `None` when nothing changed; an error, before any
/// rank starts, when even the hard limit is too low.
pub fn raise_fd_limit(ranks: usize) -> Result<Option<libc::rlimit>, String> {
    let need = (3 * ranks + 64) as libc::rlim_t;
    // SAFETY: rlimit is plain data, filled by getrlimit.
    let mut old: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `old` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) } != 0 || old.rlim_cur >= need {
        return Ok(None);
    }
    if old.rlim_max < need {
        return Err(format!(
            "{ranks} ranks need {need} open files (3 a rank and 64), and the limit is {}: raise it (ulimit -n)",
            old.rlim_max
        ));
    }
    let new = libc::rlimit {
        rlim_cur: need.min(old.rlim_max),
        rlim_max: old.rlim_max,
    };
    // SAFETY: `new` is a valid rlimit.
    Ok((unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0).then_some(old))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_lines_are_decimal_and_end_in_a_newline() {
        for (pid, want) in [
            (0, "0\n"),
            (7, "7\n"),
            (4_194_304, "4194304\n"),
            (i32::MAX, "2147483647\n"),
        ] {
            let (line, start) = pid_line(pid);
            assert_eq!(&line[start..], want.as_bytes());
        }
    }

    /// The rank's pid is in the guard's pipe once `spawn` returns, that is once the
    /// program runs: the child wrote it before exec (the program cannot reach the
    /// pipe, which is close-on-exec).
    #[test]
    fn a_rank_tells_the_guard_its_pid_before_its_program_runs() {
        use std::io::Read;
        let (mut from_ranks, to_guard) = io::pipe().expect("pipe");
        let env = |_| Vec::new();
        let cmd = RankCommand {
            program: Path::new("/bin/true"),
            argv0: OsStr::new("true"),
            args: &[],
            cwd: Path::new("/"),
            env: &env,
            env_remove: &[],
            cpuset: None,
            netns: None,
            stdin: false,
            nofile: None,
            guard: Some(to_guard.as_raw_fd()),
        };
        let spawned = spawn(&cmd).expect("spawn /bin/true");
        // The child's copy of the write end closed at exec: reading ends at once
        // with what it wrote before.
        drop(to_guard);
        let mut got = String::new();
        from_ranks.read_to_string(&mut got).expect("read the pipe");
        let mut status = 0;
        // SAFETY: our own child, a valid status pointer.
        unsafe { libc::waitpid(spawned.pid, &mut status, 0) };
        assert!(!got.is_empty(), "nothing in the guard's pipe");
        assert_eq!(got, format!("{}\n", spawned.pid));
    }
}
