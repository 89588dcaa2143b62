//! Nonblocking operations (MPI's request handling): [`scope`], [`Request`], and
//! [`wait_all`], [`wait_any`], [`wait_some`], [`test_any`].
//!
//! A nonblocking call borrows its buffer for the lifetime of a [`Scope`], and the
//! scope does not end before every request started in it has completed, whether the
//! request was waited on, dropped or leaked with `mem::forget` (the pattern of
//! `std::thread::scope`). That is what keeps the library from ever writing into a
//! buffer that is gone, in safe code.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use crate::engine::{self, requests::ReqId};
use crate::error::{Error, Result};
use crate::status::{Status, is_whole, partial_element};

/// The region in which nonblocking operations may borrow buffers; see [`scope`].
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// let me = world.rank();
/// let mut got = [0u16; 3];
/// oxmpi::scope(|s: &oxmpi::Scope<'_, '_>| -> oxmpi::Result<()> {
///     let r = world.irecv(s, &mut got, me, 5)?;
///     world.send(&[1u16, 2, 3], me, 5)?;
///     r.wait()?;
///     Ok(())
/// })?;
/// assert_eq!(got, [1, 2, 3]);
/// # Ok(()) }
/// ```
pub struct Scope<'s, 'env: 's> {
    /// Operations started in the scope that may still be in flight.
    live: RefCell<Vec<ReqId>>,
    prune_at: Cell<usize>,
    _scope: PhantomData<&'s mut &'s ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

impl std::fmt::Debug for Scope<'_, '_> {
    /// How many operations started in it may still be in flight.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("live", &self.live.borrow().len())
            .finish()
    }
}

/// Runs `f` with a [`Scope`] for nonblocking operations and waits, before returning,
/// for every request started in it.
///
/// Buffers handed to `isend`/`irecv` must be declared outside the closure. If `f`
/// panics while operations are still in flight, the job ends (with status 101): the
/// buffers those operations write cannot be released, and waiting for them could
/// hang. If `f` returns (an error by `?`, say) with operations in flight, the scope
/// waits for them before it passes on what `f` returned; should they never complete,
/// oxrun's report of the deadlocked job names them as waited for "at the end of an
/// oxmpi::scope whose closure returned without waiting".
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// let (rank, size) = (world.rank(), world.size());
/// let out = [rank as u64; 4];
/// let mut inbox = [0u64; 4];
/// oxmpi::scope(|s| -> oxmpi::Result<()> {
///     let r = world.irecv(s, &mut inbox, (rank + size - 1) % size, 7)?;
///     let w = world.isend(s, &out, (rank + 1) % size, 7)?;
///     oxmpi::wait_all(vec![r, w])?;
///     Ok(())
/// })?;
/// assert_eq!(inbox[0], ((rank + size - 1) % size) as u64);
/// # Ok(()) }
/// ```
pub fn scope<'env, F, R>(f: F) -> R
where
    F: for<'s> FnOnce(&'s Scope<'s, 'env>) -> R,
{
    let scope = Scope {
        // Sized for the ids it collects before it first prunes: no regrowth until then.
        live: RefCell::new(Vec::with_capacity(PRUNE_AT)),
        prune_at: Cell::new(PRUNE_AT),
        _scope: PhantomData,
        _env: PhantomData,
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
    let live = std::mem::take(&mut *scope.live.borrow_mut());
    if result.is_err() {
        // Unwinding out of the scope would free buffers that operations still in flight
        // may write; waiting for them could hang (the panic may be why they never
        // complete). End the job instead.
        let in_flight = live
            .iter()
            .filter(|&&id| !engine::with(|e| Ok(e.core.reqs.is_done(id))).unwrap_or(true))
            .count();
        if in_flight > 0 {
            let why = format!(
                "a panic unwound out of oxmpi::scope with {in_flight} operation(s) still in flight; ending the job"
            );
            let _ = engine::with(|e| -> Result<()> { e.abort_job(101, &why, true) });
            crate::error::report(&why);
            std::process::exit(101);
        }
    }
    if !live.is_empty() {
        // A failure of a request nobody waited for has no one to report to; a fatal
        // one ends the job inside `with` (or breaks the engine, which then writes
        // nothing more). What matters is that nothing is left in flight.
        let _ = engine::with(|e| {
            e.waiting_at_scope_end(|e| {
                // Ids already collected (most, once the caller waited) need nothing.
                for &id in &live {
                    if e.core.reqs.get(id).is_none() {
                        continue;
                    }
                    if let Err(err) = e.wait_among(id, &live)
                        && err.is_fatal()
                    {
                        return Err(err);
                    }
                }
                Ok(())
            })
        });
    }
    match result {
        Ok(r) => r,
        Err(panic) => resume_unwind(panic),
    }
}

impl<'s> Scope<'s, '_> {
    /// A request for the operation `id`, which the scope will wait for. Always
    /// inlined, as is [`Scope::register_elements`]: a request built in a call of its
    /// own came back through memory, and the caller's copy of it waited for the stores
    /// of the message just sent (the 1-64 B message rate went up 2-10%).
    #[inline(always)]
    pub(crate) fn register(&'s self, id: ReqId) -> Request<'s> {
        self.register_elements(id, 1)
    }

    /// As [`Scope::register`], for a receive into `elem_size`-byte elements.
    #[inline(always)]
    fn register_elements(&'s self, id: ReqId, elem_size: u32) -> Request<'s> {
        let mut live = self.live.borrow_mut();
        if live.len() >= self.prune_at.get() {
            // Forget the ids the engine forgot (waited for, or freed and complete), so a
            // long-lived scope lists only what is in flight or still to be collected: a
            // finished operation nobody waited for is collected at the scope's end.
            let _ = engine::with(|e| {
                live.retain(|&id| e.core.reqs.get(id).is_some());
                Ok(())
            });
            self.prune_at.set((live.len() * 2).max(PRUNE_AT));
        }
        live.push(id);
        Request {
            state: State::Pending(id, elem_size),
            _scope: PhantomData,
        }
    }

    /// A request for a send that may have finished as it started ([`ReqId::DONE`]).
    #[inline]
    pub(crate) fn adopt_send(&'s self, id: ReqId) -> Request<'s> {
        match id {
            ReqId::DONE => Request {
                state: State::Done,
                _scope: PhantomData,
            },
            id => self.register(id),
        }
    }

    /// A request for a receive into `elem_size`-byte elements.
    #[inline]
    pub(crate) fn adopt_recv(&'s self, id: ReqId, elem_size: usize) -> Request<'s> {
        self.register_elements(id, elem_size_u32(elem_size))
    }
}

/// `elem_size` as a request keeps it (`irecv` refuses elements of 4 GiB or more).
fn elem_size_u32(elem_size: usize) -> u32 {
    debug_assert!(u32::try_from(elem_size).is_ok());
    elem_size as u32
}

/// Ids a scope collects before it first forgets finished ones.
const PRUNE_AT: usize = 64;

enum State {
    /// In flight; with the element size of a receive's buffer (1 for every other
    /// operation): a message that is not a whole number of elements completes as
    /// [`Error::PartialElement`]. (Kept here, where the variant has room, so that a
    /// request is no larger than it was: the 1-64 B message rate lost 14% when the
    /// request grew by a word.)
    Pending(ReqId, u32),
    /// Finished with an empty status: a send that completed as it started.
    Done,
    /// Its outcome was reported ([`Request::test`]); asked again, it reports an empty
    /// status, and [`wait_any`] and its kin pass over it, as MPI over a null request.
    Reported,
    /// Failed; the error until someone takes it (boxed, so that a request stays two
    /// words and moves in registers: see docs/benchmarks.md).
    Failed(Box<Error>),
}

// Two words, so that a request moves in registers.
const _: () = assert!(size_of::<Request<'static>>() == 16);

/// An operation in flight (`MPI_Request`). Complete it with [`Request::wait`] or
/// [`Request::test`]; dropping it leaves the operation running until its scope ends,
/// which waits for it and until then keeps its outcome; [`Request::free`] has it
/// forgotten as soon as it completes.
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// let me = world.rank();
/// let mut got = [0.0f64; 2];
/// let status = oxmpi::scope(|s| {
///     let request: oxmpi::Request<'_> = world.irecv(s, &mut got, me, 0)?;
///     world.send(&[0.5f64, 1.5], me, 0)?;
///     request.wait()
/// })?;
/// assert_eq!((status.source, status.count::<f64>()), (me, 2));
/// # Ok(()) }
/// ```
#[must_use = "a request does nothing unless waited on or tested"]
pub struct Request<'s> {
    state: State,
    _scope: PhantomData<&'s ()>,
}

impl std::fmt::Debug for Request<'_> {
    /// Where the operation stands: in flight, finished, reported, or failed (with the
    /// error).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.state {
            State::Pending(..) => f.write_str("Request(in flight)"),
            State::Done => f.write_str("Request(finished)"),
            State::Reported => f.write_str("Request(reported)"),
            State::Failed(e) => write!(f, "Request(failed: {e})"),
        }
    }
}

impl Request<'_> {
    /// Blocks until the operation completes (`MPI_Wait`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let me = world.rank();
    /// let mut got = [0u8; 4];
    /// oxmpi::scope(|s| -> oxmpi::Result<()> {
    ///     let send = world.isend(s, b"ping", me, 1)?;
    ///     let status = world.irecv(s, &mut got, me, 1)?.wait()?;
    ///     assert_eq!(status.bytes, 4);
    ///     send.wait()?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(&got, b"ping");
    /// # Ok(()) }
    /// ```
    pub fn wait(mut self) -> Result<Status> {
        self.wait_mut()
    }

    fn wait_mut(&mut self) -> Result<Status> {
        match std::mem::replace(&mut self.state, State::Reported) {
            State::Done | State::Reported => Ok(Status::empty()),
            State::Failed(e) => Err(*e),
            State::Pending(id, elem_size) => {
                engine::with(|e| e.wait(id)).and_then(|s| s.whole(elem_size as usize))
            }
        }
    }

    /// Cancels a receive that has not matched a message yet (`MPI_Cancel`, then
    /// `MPI_Wait` and `MPI_Test_cancelled`): returns `Ok(None)` when it was cancelled
    /// (nothing was written into its buffer, and no message will be), or waits for it
    /// as [`Request::wait`] does and returns its status when it had matched already.
    /// A send is not cancelled (MPI 4.1 deprecates that), nor a nonblocking
    /// collective (MPI forbids it): they are waited for.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let me = world.rank();
    /// let (mut listen, mut got) = ([0u8; 4], [0u8; 4]);
    /// oxmpi::scope(|s| -> oxmpi::Result<()> {
    ///     // A receive for a message that never comes: the scope could not end.
    ///     let listener = world.irecv(s, &mut listen, oxmpi::ANY_SOURCE, 99)?;
    ///     assert!(listener.cancel()?.is_none());
    ///     // One that matched already completes instead.
    ///     world.send(b"late", me, 7)?;
    ///     let matched = world.irecv(s, &mut got, me, 7)?;
    ///     assert_eq!(matched.cancel()?.map(|status| status.bytes), Some(4));
    ///     Ok(())
    /// })?;
    /// assert_eq!((&listen, &got), (&[0u8; 4], b"late"));
    /// # Ok(()) }
    /// ```
    pub fn cancel(mut self) -> Result<Option<Status>> {
        if let State::Pending(id, _) = self.state
            && engine::with(|e| Ok(e.cancel(id)))?
        {
            self.state = State::Reported;
            return Ok(None);
        }
        self.wait_mut().map(Some)
    }

    /// Lets the operation run without anyone waiting for it (`MPI_Request_free`): its
    /// scope still waits for it before it ends (its buffer is borrowed until then),
    /// but its outcome is forgotten as soon as it completes, so a long-lived scope of
    /// freed requests does not hold one entry per operation (a dropped request's stays
    /// until the scope ends: about 62 bytes each).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let me = world.rank();
    /// let data = [7u32];
    /// let mut got = [0u32];
    /// oxmpi::scope(|s| -> oxmpi::Result<()> {
    ///     for _ in 0..1000 {
    ///         world.issend(s, &data, me, 0)?.free();
    ///         world.recv(&mut got, me, 0)?;
    ///     }
    ///     Ok(())
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn free(self) {
        if let State::Pending(id, _) = self.state {
            let _ = engine::with(|e| {
                e.core.reqs.detach(id);
                Ok(())
            });
        }
    }

    /// Progresses once and reports whether the operation has completed (`MPI_Test`).
    /// After it reported completion (or failure) once, it reports an empty status. An
    /// error that is not the operation's own (the call came from another thread than
    /// the one that initialized oxmpi, the job failed) leaves the request pending.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let me = world.rank();
    /// let mut got = [0u32];
    /// oxmpi::scope(|s| -> oxmpi::Result<()> {
    ///     let mut request = world.irecv(s, &mut got, me, 2)?;
    ///     // Nothing was sent yet.
    ///     assert!(request.test()?.is_none());
    ///     world.send(&[9u32], me, 2)?;
    ///     // Work can go on between tests; here there is none.
    ///     while request.test()?.is_none() {}
    ///     Ok(())
    /// })?;
    /// assert_eq!(got, [9]);
    /// # Ok(()) }
    /// ```
    pub fn test(&mut self) -> Result<Option<Status>> {
        let State::Pending(id, elem_size) = self.state else {
            return self.wait_mut().map(Some);
        };
        match engine::with(|e| e.test(id))? {
            None => Ok(None),
            Some(result) => {
                self.state = State::Reported;
                result.and_then(|status| status.whole(elem_size as usize).map(Some))
            }
        }
    }

    /// Whether the request has completed and its outcome was not reported yet.
    fn is_complete(&self) -> bool {
        match self.state {
            State::Done | State::Failed(_) => true,
            State::Reported => false,
            State::Pending(id, _) => engine::with(|e| Ok(e.core.reqs.is_done(id))).unwrap_or(true),
        }
    }
}

/// Waits for every request (`MPI_Waitall`); returns their statuses in order. All
/// requests are completed even if one fails; the failure with the lowest index is
/// returned, and the other requests' outcomes are lost: [`wait_all_results`] keeps
/// each of them.
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// let me = world.rank();
/// // Buffers of nonblocking calls live outside the scope.
/// let outbox: Vec<[i64; 2]> = (0..3).map(|tag| [tag, -1]).collect();
/// let mut inbox = [[0i64; 2]; 3];
/// oxmpi::scope(|s| -> oxmpi::Result<()> {
///     let mut requests = Vec::new();
///     for (tag, slot) in inbox.iter_mut().enumerate() {
///         requests.push(world.irecv(s, slot, me, tag as i32)?);
///     }
///     for (tag, out) in outbox.iter().enumerate() {
///         requests.push(world.isend(s, out, me, tag as i32)?);
///     }
///     let statuses = oxmpi::wait_all(requests)?;
///     assert_eq!(statuses[2].tag, 2);
///     Ok(())
/// })?;
/// assert_eq!(inbox, [[0, -1], [1, -1], [2, -1]]);
/// # Ok(()) }
/// ```
pub fn wait_all(requests: Vec<Request<'_>>) -> Result<Vec<Status>> {
    let mut first = FirstFailure {
        // Statuses in place from the start (most requests are often done already).
        statuses: vec![Status::empty(); requests.len()],
        failure: None,
    };
    wait_each(requests, &mut first)?;
    match first.failure {
        Some((_, e)) => Err(e),
        None => Ok(first.statuses),
    }
}

/// Waits for every request and returns each one's own outcome, in order: `MPI_Waitall`
/// as it answers `MPI_ERR_IN_STATUS`, with the error of each status. The outer `Err`
/// is a failure of the job itself (a lost peer, in [`crate::ErrorMode::Return`]),
/// after which no request's outcome is known.
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// let me = world.rank();
/// let (mut small, mut large) = ([0u8; 2], [0u8; 8]);
/// let results = oxmpi::scope(|s| -> oxmpi::Result<_> {
///     let a = world.irecv(s, &mut small, me, 1)?;
///     let b = world.irecv(s, &mut large, me, 2)?;
///     world.send(b"too long", me, 1)?;
///     world.send(b"fits", me, 2)?;
///     oxmpi::wait_all_results(vec![a, b])
/// })?;
/// assert!(matches!(results[0], Err(oxmpi::Error::Truncated { buffer_bytes: 2, .. })));
/// assert_eq!(results[1].as_ref().map(|s| s.bytes).ok(), Some(4));
/// assert_eq!(&large[..4], b"fits");
/// # Ok(()) }
/// ```
pub fn wait_all_results(requests: Vec<Request<'_>>) -> Result<Vec<Result<Status>>> {
    let mut results: Vec<Result<Status>> =
        (0..requests.len()).map(|_| Ok(Status::empty())).collect();
    wait_each(requests, &mut results)?;
    Ok(results)
}

/// Where [`wait_each`] reports the requests that completed with a status and those
/// that failed (two calls, so that a status travels in registers: a
/// `Result<Status>` built for one call and read back by the next stalled every
/// receive of a window on the stores that built it).
trait Outcomes {
    fn done(&mut self, index: usize, status: Status);
    fn failed(&mut self, index: usize, error: Error);
}

/// [`wait_all`]'s outcomes: the statuses, and the failure with the lowest index.
struct FirstFailure {
    statuses: Vec<Status>,
    failure: Option<(usize, Error)>,
}

impl Outcomes for FirstFailure {
    fn done(&mut self, index: usize, status: Status) {
        self.statuses[index] = status;
    }

    fn failed(&mut self, index: usize, error: Error) {
        if self.failure.as_ref().is_none_or(|(at, _)| index < *at) {
            self.failure = Some((index, error));
        }
    }
}

impl Outcomes for Vec<Result<Status>> {
    fn done(&mut self, index: usize, status: Status) {
        self[index] = Ok(status);
    }

    fn failed(&mut self, index: usize, error: Error) {
        self[index] = Err(error);
    }
}

/// Completes every request, reporting those with a status or a failure to
/// `outcomes` (a send done as it started has neither: its empty status is what the
/// caller starts from). A failure of the job itself ends the wait at once and is
/// returned (the engine's error policy applies).
fn wait_each(requests: Vec<Request<'_>>, outcomes: &mut impl Outcomes) -> Result<()> {
    let mut pending = Vec::new();
    let n = requests.len();
    for (i, mut r) in requests.into_iter().enumerate() {
        match std::mem::replace(&mut r.state, State::Done) {
            State::Failed(e) => outcomes.failed(i, *e),
            State::Done | State::Reported => {}
            State::Pending(id, elem_size) => {
                if pending.is_empty() {
                    // Room for the rest at once rather than regrowing.
                    pending.reserve(n - i);
                }
                pending.push((i, id, elem_size));
            }
        }
    }
    if pending.is_empty() {
        return Ok(());
    }
    // Each wait also ends at a failure of the job among the others (a request
    // waited for first may need a live peer that waits for this rank).
    let ids: Vec<ReqId> = if pending.len() > 1 {
        pending.iter().map(|&(_, id, _)| id).collect()
    } else {
        Vec::new()
    };
    // One visit to the engine for all of them.
    engine::with(|e| {
        for &(i, id, elem_size) in &pending {
            match e.wait_among(id, &ids) {
                Ok(s) if is_whole(s.bytes, elem_size as usize) => outcomes.done(i, s),
                Ok(s) => outcomes.failed(i, partial_element(&s, elem_size as usize)),
                // The job failed: report it at once (the engine's policy applies).
                Err(err) if err.is_fatal() => return Err(err),
                Err(err) => outcomes.failed(i, err),
            }
        }
        Ok(())
    })
}

/// Waits until one of the requests completes (`MPI_Waitany`), takes it out of its
/// slot and returns its index and status; `None` when every slot is empty or holds a
/// request whose completion [`Request::test`] reported already (passed over, as MPI
/// passes over null requests). When the request that completed failed, its error is
/// returned and its slot is left empty as well, so the one slot that changed names
/// it (MPI returns its index).
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// let me = world.rank();
/// let (mut a, mut b) = ([0u8], [0u8]);
/// oxmpi::scope(|s| -> oxmpi::Result<()> {
///     let mut slots = [
///         Some(world.irecv(s, &mut a, me, 10)?),
///         Some(world.irecv(s, &mut b, me, 20)?),
///     ];
///     world.send(&[2u8], me, 20)?;
///     let (index, status) = oxmpi::wait_any(&mut slots)?.expect("a request is left");
///     assert_eq!((index, status.tag), (1, 20));
///     assert!(slots[1].is_none());
///     world.send(&[1u8], me, 10)?;
///     assert_eq!(oxmpi::wait_any(&mut slots)?.map(|(i, _)| i), Some(0));
///     // Every slot is empty now.
///     assert!(oxmpi::wait_any(&mut slots)?.is_none());
///     Ok(())
/// })?;
/// assert_eq!((a, b), ([1], [2]));
/// # Ok(()) }
/// ```
pub fn wait_any(requests: &mut [Option<Request<'_>>]) -> Result<Option<(usize, Status)>> {
    let null = |r: &Request<'_>| matches!(r.state, State::Reported);
    if requests.iter().all(|r| r.as_ref().is_none_or(null)) {
        return Ok(None);
    }
    loop {
        if let Some(hit) = test_any(requests)? {
            return Ok(Some(hit));
        }
        let ids: Vec<ReqId> = requests
            .iter()
            .flatten()
            .filter_map(|r| match r.state {
                State::Pending(id, _) => Some(id),
                State::Done | State::Reported | State::Failed(_) => None,
            })
            .collect();
        engine::with(|e| e.wait_any_of(&ids))?;
    }
}

/// Progresses once and, if one of the requests has completed, takes it out of its
/// slot and returns its index and status (`MPI_Testany`). A failed request is taken
/// out too, and its error returned, as in [`wait_any`]. `Ok(None)` says that no
/// request has completed, and also comes when every slot is empty (where
/// `MPI_Testany` sets its flag with `MPI_UNDEFINED`): a loop that tests until one
/// completes should stop once the slots are empty.
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// let me = world.rank();
/// let mut got = [0u64];
/// oxmpi::scope(|s| -> oxmpi::Result<()> {
///     let mut slots = [Some(world.irecv(s, &mut got, me, 3)?)];
///     assert!(oxmpi::test_any(&mut slots)?.is_none());
///     world.send(&[42u64], me, 3)?;
///     let mut hit = None;
///     while hit.is_none() {
///         hit = oxmpi::test_any(&mut slots)?;
///     }
///     assert_eq!(hit.map(|(i, _)| i), Some(0));
///     Ok(())
/// })?;
/// assert_eq!(got, [42]);
/// # Ok(()) }
/// ```
pub fn test_any(requests: &mut [Option<Request<'_>>]) -> Result<Option<(usize, Status)>> {
    engine::with(|e| e.poll())?;
    for (i, slot) in requests.iter_mut().enumerate() {
        if slot.as_ref().is_some_and(Request::is_complete) {
            let status = slot.take().expect("checked").wait()?;
            return Ok(Some((i, status)));
        }
    }
    Ok(None)
}

/// Waits until at least one request completes, then takes out every completed one
/// (`MPI_Waitsome`); returns their indices and statuses (empty when all slots are
/// empty). A request that failed is reported alone: when others completed with it,
/// they are returned and the failed one stays in its slot, for the next call to
/// report, which empties its slot as [`wait_any`] does (a failure of the job itself
/// is reported at once).
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// let me = world.rank();
/// let mut inbox = [[0u8]; 4];
/// oxmpi::scope(|s| -> oxmpi::Result<()> {
///     let mut slots = Vec::new();
///     for (tag, slot) in inbox.iter_mut().enumerate() {
///         slots.push(Some(world.irecv(s, slot, me, tag as i32)?));
///     }
///     for tag in [1, 3] {
///         world.send(&[tag as u8], me, tag)?;
///     }
///     let mut done: Vec<usize> = Vec::new();
///     while done.len() < 2 {
///         done.extend(oxmpi::wait_some(&mut slots)?.into_iter().map(|(i, _)| i));
///     }
///     done.sort();
///     assert_eq!(done, [1, 3]);
///     for tag in [0, 2] {
///         world.send(&[tag as u8], me, tag)?;
///     }
///     while !oxmpi::wait_some(&mut slots)?.is_empty() {}
///     Ok(())
/// })?;
/// assert_eq!(inbox, [[0], [1], [2], [3]]);
/// # Ok(()) }
/// ```
pub fn wait_some(requests: &mut [Option<Request<'_>>]) -> Result<Vec<(usize, Status)>> {
    let mut out = Vec::new();
    let Some(first) = wait_any(requests)? else {
        return Ok(out);
    };
    out.push(first);
    take_completed(requests, &mut out)?;
    Ok(out)
}

/// Progresses once and takes out every request that has completed
/// (`MPI_Testsome`); returns their indices and statuses, empty when none has
/// completed (or every slot is empty). A failed request is reported as by
/// [`wait_some`].
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// let me = world.rank();
/// let mut inbox = [[0u8]; 3];
/// oxmpi::scope(|s| -> oxmpi::Result<()> {
///     let mut slots = Vec::new();
///     for (tag, slot) in inbox.iter_mut().enumerate() {
///         slots.push(Some(world.irecv(s, slot, me, tag as i32)?));
///     }
///     assert!(oxmpi::test_some(&mut slots)?.is_empty());
///     world.send(&[2u8], me, 2)?;
///     let mut done = Vec::new();
///     while done.is_empty() {
///         done = oxmpi::test_some(&mut slots)?;
///     }
///     assert_eq!(done[0].0, 2);
///     for tag in [0, 1] {
///         world.send(&[tag as u8], me, tag)?;
///     }
///     oxmpi::wait_all(slots.into_iter().flatten().collect())?;
///     Ok(())
/// })?;
/// assert_eq!(inbox, [[0], [1], [2]]);
/// # Ok(()) }
/// ```
pub fn test_some(requests: &mut [Option<Request<'_>>]) -> Result<Vec<(usize, Status)>> {
    let mut out = Vec::new();
    let Some(first) = test_any(requests)? else {
        return Ok(out);
    };
    out.push(first);
    take_completed(requests, &mut out)?;
    Ok(out)
}

/// Takes every completed request out of `requests` into `out` (after a first one
/// was taken): a failed one stays in its slot, for the next call to report (a
/// failure of the job itself is returned at once).
fn take_completed(
    requests: &mut [Option<Request<'_>>],
    out: &mut Vec<(usize, Status)>,
) -> Result<()> {
    for (i, slot) in requests.iter_mut().enumerate() {
        if slot.as_ref().is_some_and(Request::is_complete) {
            let mut r = slot.take().expect("checked");
            match r.wait_mut() {
                Ok(status) => out.push((i, status)),
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => {
                    r.state = State::Failed(Box::new(e));
                    *slot = Some(r);
                }
            }
        }
    }
    Ok(())
}

/// Progresses once and, if every request has completed, takes them all out of their
/// slots and returns their statuses in order (`MPI_Testall`); otherwise returns
/// `Ok(None)` and leaves every slot as it was. Empty slots, and requests whose
/// outcome [`Request::test`] reported already, count as completed with an empty
/// status, as null requests do in MPI. Where requests failed, every slot is emptied
/// all the same and the failure with the lowest index is returned, as by
/// [`wait_all`].
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// let me = world.rank();
/// let mut inbox = [[0u16]; 2];
/// let [a, b] = &mut inbox;
/// oxmpi::scope(|s| -> oxmpi::Result<()> {
///     let mut slots = [Some(world.irecv(s, a, me, 0)?), Some(world.irecv(s, b, me, 1)?)];
///     world.send(&[5u16], me, 0)?;
///     assert!(oxmpi::test_all(&mut slots)?.is_none());
///     assert!(slots.iter().all(Option::is_some), "nothing taken");
///     world.send(&[6u16], me, 1)?;
///     let statuses = loop {
///         if let Some(statuses) = oxmpi::test_all(&mut slots)? {
///             break statuses;
///         }
///     };
///     assert_eq!(statuses.iter().map(|s| s.tag).collect::<Vec<_>>(), [0, 1]);
///     Ok(())
/// })?;
/// assert_eq!(inbox, [[5], [6]]);
/// # Ok(()) }
/// ```
pub fn test_all(requests: &mut [Option<Request<'_>>]) -> Result<Option<Vec<Status>>> {
    engine::with(|e| e.poll())?;
    let null_or_complete = |r: &Request<'_>| matches!(r.state, State::Reported) || r.is_complete();
    if !requests.iter().flatten().all(null_or_complete) {
        return Ok(None);
    }
    let mut statuses = Vec::with_capacity(requests.len());
    let mut failure = None;
    for slot in requests.iter_mut() {
        match slot.take().map_or(Ok(Status::empty()), Request::wait) {
            Ok(status) => statuses.push(status),
            Err(e) => {
                failure.get_or_insert(e);
                statuses.push(Status::empty());
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(Some(statuses)),
    }
}
