//! Where the process's one engine lives, and who may touch it.
//!
//! oxmpi offers `MPI_THREAD_FUNNELED`: the thread that called `init` makes every call.
//! That rule is what lets the engine sit in a plain cell instead of behind a lock, so
//! a message costs no atomic read-modify-write for locking. Invariants: the engine is
//! reached only from the owning thread (checked on every access against a
//! thread-local id) and never re-entrantly (checked with a thread-local flag), so at
//! most one `&mut Engine` exists at any time.

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicU64, Ordering};

use super::Engine;
use crate::error::Error;

struct Slot {
    /// Thread id of the owner; 0 when no engine is installed.
    owner: AtomicU64,
    engine: UnsafeCell<Option<Engine>>,
}

// SAFETY: `engine` is only accessed by the thread whose id is in `owner`, and that
// thread never re-enters (see `access`); other threads only read `owner`.
unsafe impl Sync for Slot {}

static SLOT: Slot = Slot {
    owner: AtomicU64::new(0),
    engine: UnsafeCell::new(None),
};

thread_local! {
    static THREAD_ID: Cell<u64> = const { Cell::new(0) };
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

fn thread_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    THREAD_ID.with(|id| {
        if id.get() == 0 {
            id.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        id.get()
    })
}

/// Clears the busy flag when an access ends. Ends the job when it ends by unwinding
/// (a user's reduction operation panicked, say): the call's buffers may still be
/// posted in the engine, and a caller that caught the panic would free them while
/// the engine, or a peer copying into them, still writes there.
struct Busy;

impl Drop for Busy {
    #[inline]
    fn drop(&mut self) {
        if std::thread::panicking() {
            end_job_unwinding();
        }
        BUSY.with(|b| b.set(false));
    }
}

/// Ends the job from a [`Busy`] dropped by unwinding (kept out of every call's path).
#[cold]
#[inline(never)]
fn end_job_unwinding() {
    // SAFETY: called while the access that set the busy flag unwinds, on the owning
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
fn access<R>(
    claim: bool,
    f: impl FnOnce(&mut Option<Engine>) -> Result<R, Error>,
) -> Result<R, Error> {
    let me = thread_id();
    let owner = SLOT.owner.load(Ordering::Acquire);
    if owner != me {
        if owner == 0 && claim {
            SLOT.owner
                .compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire)
                .map_err(|_| Error::WrongThread)?;
        } else if owner == 0 {
            return Err(Error::NotInitialized);
        } else {
            return Err(Error::WrongThread);
        }
    }
    if BUSY.with(|b| b.replace(true)) {
        return Err(Error::InvalidArgument(
            "oxmpi was called from inside an oxmpi call".into(),
        ));
    }
    let _busy = Busy;
    // SAFETY: this thread owns the slot (checked above) and is not inside another
    // access (the busy flag), so this is the only reference to the engine.
    let slot = unsafe { &mut *SLOT.engine.get() };
    f(slot)
}

/// Runs `f` on the engine.
pub(crate) fn with_engine<R>(f: impl FnOnce(&mut Engine) -> Result<R, Error>) -> Result<R, Error> {
    access(false, |slot| match slot {
        Some(engine) => f(engine),
        None => Err(Error::NotInitialized),
    })
}

/// Installs the engine, making this thread its owner.
pub(crate) fn install(engine: Engine) -> Result<(), Error> {
    access(true, |slot| {
        if slot.is_some() {
            return Err(Error::AlreadyInitialized);
        }
        *slot = Some(engine);
        Ok(())
    })
}

/// Removes the engine and gives up ownership.
pub(crate) fn uninstall() -> Option<Engine> {
    let engine = access(false, |slot| Ok(slot.take())).ok().flatten();
    if engine.is_some() {
        SLOT.owner.store(0, Ordering::Release);
    }
    engine
}

/// Whether this thread owns the engine.
pub(crate) fn owned_here() -> bool {
    SLOT.owner.load(Ordering::Acquire) == thread_id()
}

/// Whether an engine is installed (by any thread).
pub(crate) fn is_running() -> bool {
    SLOT.owner.load(Ordering::Acquire) != 0
}
