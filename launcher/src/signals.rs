//! Signals as readable events: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1,
//! SIGUSR2, SIGTSTP and SIGCONT are blocked for the whole process and read from a `signalfd`
//! inside the event loop, except those oxrun inherited as ignored (it and its ranks
//! ignore them then). A blocked SIGCONT still continues oxrun; the loop then passes it
//! on.
//!
//! Invariant: [`block`] runs before any thread or process is started (first thing in a
//! guard's `main`, after the checks in oxrun's), so every thread inherits the mask and
//! no handled signal is ever delivered asynchronously; ranks get an empty mask back in
//! `spawn` before `exec`. Until then, from the start of `main`, [`block_all_but_ending`]
//! holds back the others, and the [`ENDING`] signals keep the disposition oxrun
//! inherited: Ctrl-C ends oxrun during a slow check (a large hwloc topology, a hung
//! file system) at once, with nothing started yet to tear down.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// The signals oxrun reads from its signalfd.
pub const HANDLED: [libc::c_int; 9] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGCHLD,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTSTP,
    libc::SIGCONT,
];

/// Handled signals that are only passed on to the ranks (as Open MPI's mpirun does),
/// without ending the job. SIGTSTP is passed on and then stops oxrun itself.
pub const FORWARDED: [libc::c_int; 4] =
    [libc::SIGUSR1, libc::SIGUSR2, libc::SIGTSTP, libc::SIGCONT];

/// Handled signals that end the job; before [`block`], they end oxrun as they would any
/// program. SIGQUIT (`Ctrl-\`) is among them, so the ranks get it too (and dump core
/// where the limits allow, to see where a hung job stood): the ranks are in process
/// groups of their own, which the terminal's signal does not reach.
pub const ENDING: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// Whether `sig` is ignored (inherited so: `nohup` ignores SIGHUP, a shell's
/// background job SIGINT).
fn ignored(sig: libc::c_int) -> bool {
    let mut old = MaybeUninit::<libc::sigaction>::uninit();
    // SAFETY: a null new action only reads the current one into `old`.
    let rc = unsafe { libc::sigaction(sig, std::ptr::null(), old.as_mut_ptr()) };
    // SAFETY: sigaction filled `old` when it returned 0.
    rc == 0 && unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN
}

/// The handled signals, less those oxrun inherited as ignored: those it leaves
/// ignored (the kernel drops them), as the ranks do, which inherit the same, so
/// oxrun under `nohup` or as a background job behaves as any program there would.
fn handled_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given; sigaddset only writes
    // into that initialised set, with valid signal numbers.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for sig in HANDLED {
            if sig == libc::SIGCHLD || !ignored(sig) {
                libc::sigaddset(set.as_mut_ptr(), sig);
            }
        }
        set.assume_init()
    }
}

/// Blocks the handled signals in the calling thread (call before spawning threads or
/// processes).
///
/// Also restores SIGCHLD's default disposition: an ignored SIGCHLD, inherited across
/// exec from whoever started oxrun, would make the kernel reap ranks on its own and
/// hide their exit status.
pub fn block() -> io::Result<()> {
    block_set(handled_set())
}

/// Blocks the handled signals but the [`ENDING`] ones, for the checks before anything
/// starts (then call [`block`]). Also restores SIGCHLD's default, as [`block`] does.
pub fn block_all_but_ending() -> io::Result<()> {
    let mut set = handled_set();
    for sig in ENDING {
        // SAFETY: `set` is an initialised sigset and `sig` a valid signal number.
        unsafe { libc::sigdelset(&mut set, sig) };
    }
    block_set(set)
}

/// Restores SIGCHLD's default and adds `set` to the calling thread's mask.
fn block_set(set: libc::sigset_t) -> io::Result<()> {
    // SAFETY: installing the default disposition for SIGCHLD, no handler involved.
    if unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    add_to_mask(&set)
}

/// Blocks `sig` in the calling thread only (other threads, and the processes the
/// main thread starts, keep their masks).
pub fn block_in_this_thread(sig: libc::c_int) -> io::Result<()> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set, and sigaddset writes a valid signal
    // number into it.
    let set = unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), sig);
        set.assume_init()
    };
    add_to_mask(&set)
}

/// Adds `set` to the calling thread's signal mask.
fn add_to_mask(set: &libc::sigset_t) -> io::Result<()> {
    // SAFETY: `set` is an initialised sigset; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// A nonblocking signalfd for the handled signals.
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    /// Opens the signalfd (the signals must already be blocked, see [`block`]).
    pub fn new() -> io::Result<SignalFd> {
        let set = handled_set();
        // SAFETY: `set` is an initialised sigset; -1 asks for a new descriptor.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: signalfd just returned this descriptor and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalFd { fd })
    }

    /// The next pending signal number, or `None` when none is pending.
    pub fn next(&self) -> io::Result<Option<libc::c_int>> {
        let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        loop {
            // SAFETY: `info` is a writable buffer of exactly `size` bytes.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), info.as_mut_ptr().cast(), size) };
            if n == size as isize {
                // SAFETY: the kernel filled the whole struct.
                return Ok(Some(unsafe { info.assume_init() }.ssi_signo as libc::c_int));
            }
            if n >= 0 {
                return Err(io::Error::other("short read from signalfd"));
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(None),
                _ => return Err(err),
            }
        }
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Stops oxrun itself, as SIGTSTP would have had it not been blocked for the
/// signalfd (SIGCONT continues it), and returns how long it was stopped.
pub fn stop_self() -> Duration {
    let stopped = Instant::now();
    // SAFETY: raise takes a plain signal number; SIGSTOP stops the whole process and
    // cannot be blocked. It returns once SIGCONT has continued the process.
    unsafe { libc::raise(libc::SIGSTOP) };
    stopped.elapsed()
}
