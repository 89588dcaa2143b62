//! Where the process's one engine lives, and who may touch it.
//!
//! oxmpi offers `MPI_THREAD_FUNNELED`: the thread that called `init` makes every call.
//! That rule is what lets the engine sit in a plain cell instead of behind a lock, so
//! a message costs no atomic read-modify-write for locking. Invariants: the engine is
//! reached only from the owning thread (the one whose thread-local role says so) and
//! never re-entrantly (the role says "busy" during a call), so at most one
//! `&mut Engine` exists at any time. Every call asks one thread-local byte: an earlier
//! build compared a thread-local id against the slot's owner and kept a separate
//! busy flag, three loads where one does (`oxbench latency` of 8 B, docs/benchmarks.md).

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicBool, Ordering};

use super::Engine;
use crate::error::Error;

struct Slot {
    /// Whether an engine is installed (by whichever thread owns it) or a thread is
    /// initializing one ([`Claim`]).
    taken: AtomicBool,
    engine: UnsafeCell<Option<Engine>>,
}

// SAFETY: `engine` is only accessed by the thread whose role is `OWNER` (set only by
// the thread that won `taken`), and that thread never re-enters (see `access`); other
// threads only read `taken`.
unsafe impl Sync for Slot {}

static SLOT: Slot = Slot {
    taken: AtomicBool::new(false),
    engine: UnsafeCell::new(None),
};

/// This thread's role: not the owner, the owner between calls, the owner in a call.
const OUTSIDE: u8 = 0;
const OWNER: u8 = 1;
const BUSY: u8 = 2;

// A `const`-initialized `Cell<u8>` has no destructor, so the role stays readable while
// the thread's thread-locals are destroyed: a `Universe` kept in a thread-local of the
// user's is dropped then, and finalizes through `uninstall` (with a destructor, `get`
// would panic there and abort the process).
thread_local! {
    static ROLE: Cell<u8> = const { Cell::new(OUTSIDE) };
}

/// Gives the owner its role back when an access ends. Ends the job when the access
/// ends by unwinding (a user's reduction operation panicked, say): the call's buffers
/// may still be posted in the engine, and a caller that caught the panic would free
/// them while the engine, or a peer copying into them, still writes there. An access
/// by a destructor while the thread was unwinding already ([`with_engine_in_drop`]: a
/// communicator dropped on the way frees its context) ends normally: the panic is not
/// the call's, and a program may catch it and carry on. (A call of the program's own
/// from a destructor while it unwinds still ends the job: every call would otherwise
/// ask whether the thread unwinds, which cost 16-256 B `bw` 2%.)
struct Busy {
    /// Whether the thread was unwinding when the access began.
    unwinding: bool,
}

impl Drop for Busy {
    #[inline]
    fn drop(&mut self) {
        if std::thread::panicking() && !self.unwinding {
            end_job_unwinding();
        }
        ROLE.set(OWNER);
    }
}

/// Ends the job from a [`Busy`] dropped by unwinding (kept out of every call's path).
#[cold]
#[inline(never)]
fn end_job_unwinding() {
    // SAFETY: called while the access that made the role `BUSY` unwinds, on the owning
    // thread; the frames that borrowed the engine have unwound already.
    if let Some(engine) = unsafe { &mut *SLOT.engine.get() } {
        let why = format!(
            "rank {} panicked inside an oxmpi call; ending the job",
            engine.core.me
        );
        engine.abort_job(101, &why, true);
    }
}

/// Runs `f` with the engine slot, on the owning thread only. `f`'s own failure comes
/// back as is (one `Result`, not two: this is on every call's path).
/// `IN_DROP`: a destructor's access, which asks whether the thread unwinds already
/// (see [`Busy`]).
#[inline]
fn access<const IN_DROP: bool, R>(
    f: impl FnOnce(&mut Option<Engine>) -> Result<R, Error>,
) -> Result<R, Error> {
    if ROLE.get() != OWNER {
        return Err(refusal());
    }
    ROLE.set(BUSY);
    let _busy = Busy {
        unwinding: IN_DROP && std::thread::panicking(),
    };
    // SAFETY: this thread owns the slot (its role) and is not inside another access
    // (the role was not `BUSY`), so this is the only reference to the engine.
    let slot = unsafe { &mut *SLOT.engine.get() };
    f(slot)
}

/// Why a thread that is not the idle owner may not reach the engine.
#[cold]
fn refusal() -> Error {
    if ROLE.get() == BUSY {
        Error::InvalidArgument("oxmpi was called from inside an oxmpi call".into())
    } else if SLOT.taken.load(Ordering::Acquire) {
        Error::WrongThread
    } else {
        Error::NotInitialized
    }
}

/// Runs `f` on the engine.
pub(crate) fn with_engine<R>(f: impl FnOnce(&mut Engine) -> Result<R, Error>) -> Result<R, Error> {
    access::<false, _>(|slot| installed(slot, f))
}

/// [`with_engine`] for a destructor, which may run while the thread unwinds from a
/// panic that is not oxmpi's (see [`Busy`]).
pub(crate) fn with_engine_in_drop<R>(
    f: impl FnOnce(&mut Engine) -> Result<R, Error>,
) -> Result<R, Error> {
    access::<true, _>(|slot| installed(slot, f))
}

#[inline(always)]
fn installed<R>(
    slot: &mut Option<Engine>,
    f: impl FnOnce(&mut Engine) -> Result<R, Error>,
) -> Result<R, Error> {
    match slot {
        Some(engine) => f(engine),
        None => Err(Error::NotInitialized),
    }
}

/// The process's one initialization in progress: taken at the start of `init`, before
/// anything is set up, so that two threads calling it at once do not both start (both
/// would speak to the launcher over the one PMI descriptor, and the loser close it).
/// Given back when dropped, unless [`install`] consumed it.
pub(crate) struct Claim(());

impl Drop for Claim {
    fn drop(&mut self) {
        SLOT.taken.store(false, Ordering::Release);
    }
}

/// Claims the slot for an `init` on this thread: `AlreadyInitialized` while another
/// engine is installed or another thread is initializing.
pub(crate) fn claim() -> Result<Claim, Error> {
    match ROLE.get() {
        OUTSIDE => {}
        BUSY => return Err(refusal()),
        _ => return Err(Error::AlreadyInitialized),
    }
    SLOT.taken
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .map_err(|_| Error::AlreadyInitialized)?;
    Ok(Claim(()))
}

/// Installs the engine under `claim`, making this thread its owner.
pub(crate) fn install(claim: Claim, engine: Engine) {
    // The slot stays taken: the engine now holds it.
    std::mem::forget(claim);
    ROLE.set(OWNER);
    // Cannot fail: this thread is now the idle owner.
    let _ = access::<false, _>(|slot| {
        *slot = Some(engine);
        Ok(())
    });
}

/// Removes the engine and gives up ownership.
pub(crate) fn uninstall() -> Option<Engine> {
    let engine = access::<false, _>(|slot| Ok(slot.take())).ok().flatten();
    if engine.is_some() {
        ROLE.set(OUTSIDE);
        SLOT.taken.store(false, Ordering::Release);
    }
    engine
}

/// Whether a call from this thread reaches the engine: the thread owns it and is not
/// inside a call already (one from inside, such as a reduction's closure calling a
/// collective, is refused).
pub(crate) fn callable_here() -> bool {
    ROLE.get() == OWNER
}

/// [`callable_here`], with the reason a call from here is refused: for a call that
/// must not change its communicator's state before it first reaches the engine.
pub(crate) fn ensure_callable() -> Result<(), Error> {
    if callable_here() {
        Ok(())
    } else {
        Err(refusal())
    }
}

/// Whether an engine is installed, or being initialized (by any thread).
pub(crate) fn is_running() -> bool {
    SLOT.taken.load(Ordering::Acquire)
}
