//! A rank's process group, held by a process file descriptor (`pidfd`) so that
//! signalling it can never reach another process that got the same number later.
//!
//! A process group lives as long as one process is in it, and its number stays taken
//! that long; once the group is empty the number is free, and the next process given
//! it may lead a group of its own (a shell's job). Killing by number a group that
//! ended meanwhile kills that one. A pidfd names the process itself (the kernel's
//! `struct pid`, not its number), and with `PIDFD_SIGNAL_PROCESS_GROUP` (Linux 6.9)
//! a signal through it reaches the group that process led, even after the leader
//! has been reaped, and nobody else. Where the kernel has neither, or no pidfd could
//! be opened (no descriptor left), a group is killed by number, as before.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `pidfd_send_signal`'s flag: the signal goes to the process group that the
/// pidfd's process leads (`linux/pidfd.h`).
const PIDFD_SIGNAL_PROCESS_GROUP: libc::c_uint = 1 << 2;

/// The leader of a process group, watched through a pidfd where the kernel gives one.
#[derive(Debug)]
pub struct GroupLeader {
    pid: libc::pid_t,
    fd: Option<OwnedFd>,
}

impl GroupLeader {
    /// Watches `pid`, which leads its own process group. Taken while the process has
    /// not been reaped (alive or a zombie), the pidfd is that process's for good; for
    /// a process reaped already there is none (`ESRCH`), and the group is killed by
    /// number.
    pub fn watch(pid: libc::pid_t) -> GroupLeader {
        // SAFETY: pidfd_open takes plain integers and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
        let fd = (fd >= 0).then(|| {
            // SAFETY: the descriptor was just opened and nothing else owns it.
            unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) }
        });
        GroupLeader { pid, fd }
    }

    /// Sends SIGKILL to every process of the group, through the pidfd where the
    /// kernel can; else by number (`killpg`), which is right as long as the group
    /// has not ended (the number is still the group's).
    pub fn kill_group(&self) {
        if let Some(fd) = &self.fd {
            match send(fd, libc::SIGKILL, PIDFD_SIGNAL_PROCESS_GROUP) {
                // Sent, or the group is empty: nothing of it is left to kill.
                Ok(()) => return,
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return,
                // The kernel has no such flag (before 6.9): by number.
                Err(_) => {}
            }
        }
        // SAFETY: killpg takes plain integers; a group that is gone is ESRCH.
        unsafe { libc::killpg(self.pid, libc::SIGKILL) };
    }

    /// Whether the leader has ended (a zombie, or reaped).
    pub fn ended(&self) -> bool {
        let Some(fd) = &self.fd else {
            return !crate::strays::running(self.pid);
        };
        let mut poll = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no waiting.
        match unsafe { libc::poll(&mut poll, 1, 0) } {
            0 => false,
            1.. => true,
            // Interrupted, say: ask /proc instead.
            _ => !crate::strays::running(self.pid),
        }
    }
}

/// `pidfd_send_signal(fd, sig, NULL, flags)`.
fn send(fd: &OwnedFd, sig: libc::c_int, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: a descriptor we own, a plain signal number, no siginfo (NULL), flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            flags,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// Whether this kernel signals process groups through pidfds.
    fn groups_by_pidfd() -> bool {
        let me = GroupLeader::watch(std::process::id() as libc::pid_t);
        // Signal 0 checks the call and sends nothing; this process leads no group
        // (ESRCH) unless run alone. A kernel without the flag refuses it (EINVAL).
        me.fd.as_ref().is_some_and(|fd| {
            send(fd, 0, PIDFD_SIGNAL_PROCESS_GROUP)
                .map_or_else(|e| e.raw_os_error() == Some(libc::ESRCH), |()| true)
        })
    }

    /// Waits (at most a minute: this is no timing test) until `pid` no longer runs.
    fn ends(pid: libc::pid_t) -> bool {
        let until = Instant::now() + Duration::from_secs(60);
        while crate::strays::running(pid) {
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    #[test]
    fn a_group_is_killed_after_its_leader_was_reaped() {
        // A leader that starts a `sleep` in its group, says its pid and ends.
        let mut leader = Command::new("sh")
            .args(["-c", "sleep 300 & echo $!"])
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let watched = GroupLeader::watch(leader.id() as libc::pid_t);
        let mut line = String::new();
        BufReader::new(leader.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let sleeper: libc::pid_t = line.trim().parse().unwrap();
        leader.wait().unwrap();
        assert!(watched.ended());
        assert!(crate::strays::running(sleeper));
        watched.kill_group();
        assert!(ends(sleeper), "the sleep in the group still runs");
    }

    #[test]
    fn a_group_that_ended_is_not_mistaken_for_a_new_one_with_its_number() {
        if !groups_by_pidfd() {
            eprintln!("not run: this kernel signals no process group through a pidfd");
            return;
        }
        let mut first = Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = first.id() as libc::pid_t;
        let watched = GroupLeader::watch(pid);
        first.kill().unwrap();
        first.wait().unwrap();
        // The number is free: a new process takes it (clone3 with set_tid, which
        // needs CAP_SYS_ADMIN) and leads a group of its own, as a shell's job would.
        let Some(second) = child_with_pid(pid) else {
            eprintln!("not run: cannot start a process with a chosen pid here (needs root)");
            return;
        };
        assert!(watched.ended());
        watched.kill_group();
        // A SIGKILL sent above ends it before the SIGTERM, and says so in its status.
        // SAFETY: plain integers; `second` is this test's own unreaped child.
        unsafe { libc::kill(second, libc::SIGTERM) };
        let mut status = 0;
        // SAFETY: our own child, a valid status pointer.
        while unsafe { libc::waitpid(second, &mut status, 0) } < 0 {}
        assert!(libc::WIFSIGNALED(status));
        assert_eq!(
            libc::WTERMSIG(status),
            libc::SIGTERM,
            "the new group with the old number was killed"
        );
    }

    /// Starts a child with pid `pid` that leads a process group of its own and waits
    /// to be killed; `None` where the kernel refuses the pid.
    fn child_with_pid(pid: libc::pid_t) -> Option<libc::pid_t> {
        let tids = [pid];
        // SAFETY: clone_args is plain integers, all-zero valid.
        let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
        args.exit_signal = libc::SIGCHLD as u64;
        args.set_tid = tids.as_ptr() as u64;
        args.set_tid_size = 1;
        // SAFETY: clone3 as fork (no shared memory, no new stack): the child runs
        // only async-signal-safe system calls below and never returns.
        let r = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const libc::clone_args,
                std::mem::size_of::<libc::clone_args>(),
            )
        };
        if r == 0 {
            // SAFETY: in the child: plain system calls, then _exit.
            unsafe {
                libc::setpgid(0, 0);
                loop {
                    libc::pause();
                }
            }
        }
        if r < 0 {
            return None;
        }
        let child = r as libc::pid_t;
        assert_eq!(child, pid);
        // Its own group whichever runs first (the parent may set a child's group).
        // SAFETY: plain integers, our own child.
        unsafe { libc::setpgid(child, child) };
        Some(child)
    }
}
