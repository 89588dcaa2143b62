//! How a rank ended, in words and as the exit status oxrun passes on.
//!
//! Invariant: the mapping to oxrun's own exit status is the shell's: a code passes
//! through unchanged, a signal S becomes 128+S.

use std::fmt;

/// The end of one process, as `waitid` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankExit {
    /// It called `exit(code)`.
    Code(i32),
    /// It was killed by `signal`, and maybe dumped core.
    Signal { signal: i32, core_dumped: bool },
}

impl RankExit {
    /// Classifies `waitid`'s `si_code` and `si_status`.
    pub fn from_wait(si_code: i32, si_status: i32) -> RankExit {
        match si_code {
            libc::CLD_EXITED => RankExit::Code(si_status),
            libc::CLD_DUMPED => RankExit::Signal {
                signal: si_status,
                core_dumped: true,
            },
            _ => RankExit::Signal {
                signal: si_status,
                core_dumped: false,
            },
        }
    }

    /// Whether it exited with code 0.
    pub fn success(self) -> bool {
        self == RankExit::Code(0)
    }

    /// Among ranks seen ending at once, which to take for the cause of the failure
    /// first (lowest first): a death by a signal, then an exit with an error code,
    /// then a clean exit (which fails only without finalize). Ranks in return-errors
    /// mode often exit with an error within a millisecond of the peer that died.
    pub fn blame_order(self) -> u8 {
        match self {
            RankExit::Signal { .. } => 0,
            RankExit::Code(0) => 2,
            RankExit::Code(_) => 1,
        }
    }

    /// The status a shell would show: the code, or 128 + the signal.
    pub fn shell_status(self) -> i32 {
        match self {
            RankExit::Code(c) => c,
            RankExit::Signal { signal, .. } => 128 + signal,
        }
    }
}

impl fmt::Display for RankExit {
    /// "exited with code 3", "killed by signal 9 (SIGKILL)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RankExit::Code(c) => write!(f, "exited with code {c}"),
            RankExit::Signal {
                signal,
                core_dumped,
            } => {
                write!(f, "killed by signal {signal}")?;
                match (signal_name(signal), core_dumped) {
                    (Some(name), true) => write!(f, " ({name}, core dumped)"),
                    (Some(name), false) => write!(f, " ({name})"),
                    (None, true) => write!(f, " (core dumped)"),
                    (None, false) => Ok(()),
                }
            }
        }
    }
}

/// The conventional name of a Linux signal number, e.g. `SIGKILL` for 9.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSTKFLT => "SIGSTKFLT",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        libc::SIGPWR => "SIGPWR",
        libc::SIGSYS => "SIGSYS",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_status() {
        let e = RankExit::from_wait(libc::CLD_EXITED, 3);
        assert_eq!(e.to_string(), "exited with code 3");
        assert_eq!(e.shell_status(), 3);
        assert!(!e.success());
        assert!(RankExit::Code(0).success());
        let k = RankExit::from_wait(libc::CLD_KILLED, 9);
        assert_eq!(k.to_string(), "killed by signal 9 (SIGKILL)");
        assert!(k.blame_order() < RankExit::Code(1).blame_order());
        assert!(RankExit::Code(1).blame_order() < RankExit::Code(0).blame_order());
        assert_eq!(k.shell_status(), 137);
        let d = RankExit::from_wait(libc::CLD_DUMPED, 11);
        assert_eq!(d.to_string(), "killed by signal 11 (SIGSEGV, core dumped)");
        assert_eq!(
            RankExit::from_wait(libc::CLD_KILLED, 40).to_string(),
            "killed by signal 40"
        );
    }
}
