//! Nonblocking operations (MPI's request handling): [`scope`], [`Request`], and
//! [`wait_all`], [`wait_any`], [`wait_some`], [`test_any`].
//!
//! A nonblocking call borrows its buffer for the lifetime of a [`Scope`], and the
//! scope does not end before every request started in it has completed, whether the
//! request was waited on, dropped or leaked with `mem::forget` (the pattern of
//! `std::thread::scope`). That is what keeps the library from ever writing into a
//! buffer that is gone, in safe code.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use crate::engine::{self, requests::ReqId};
use crate::error::Result;
use crate::status::Status;

/// The region in which nonblocking operations may borrow buffers; see [`scope`].
pub struct Scope<'s, 'env: 's> {
    live: RefCell<Vec<ReqId>>,
    _scope: PhantomData<&'s mut &'s ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

/// Runs `f` with a [`Scope`] for nonblocking operations and waits, before returning,
/// for every request started in it.
///
/// Buffers handed to `isend`/`irecv` must be declared outside the closure.
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
        live: RefCell::new(Vec::new()),
        _scope: PhantomData,
        _env: PhantomData,
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
    let live = std::mem::take(&mut *scope.live.borrow_mut());
    for id in live {
        // A failure of a request nobody waited for has no one to report to; a fatal
        // one ends the job inside `with`. What matters is that it is finished.
        let _ = engine::with(|e| e.wait(id));
    }
    match result {
        Ok(r) => r,
        Err(panic) => resume_unwind(panic),
    }
}

impl<'s> Scope<'s, '_> {
    pub(crate) fn register(&'s self, id: ReqId) -> Request<'s> {
        self.live.borrow_mut().push(id);
        Request {
            id,
            live: Some(&self.live),
            done: None,
        }
    }
}

/// An operation in flight (`MPI_Request`). Complete it with [`Request::wait`] or
/// [`Request::test`]; dropping it leaves the operation running until its scope ends.
#[must_use = "a request does nothing unless waited on or tested"]
pub struct Request<'s> {
    id: ReqId,
    /// The scope's list of unfinished requests, which this one leaves on completion.
    live: Option<&'s RefCell<Vec<ReqId>>>,
    done: Option<Status>,
}

impl<'s> Request<'s> {
    fn finish(&mut self, status: Status) -> Status {
        if let Some(live) = self.live.take() {
            let mut live = live.borrow_mut();
            if let Some(i) = live.iter().rposition(|&r| r == self.id) {
                live.swap_remove(i);
            }
        }
        self.done = Some(status);
        status
    }

    /// Blocks until the operation completes (`MPI_Wait`).
    pub fn wait(mut self) -> Result<Status> {
        self.wait_mut()
    }

    fn wait_mut(&mut self) -> Result<Status> {
        if let Some(s) = self.done {
            return Ok(s);
        }
        let id = self.id;
        let result = engine::with(|e| e.wait(id));
        match result {
            Ok(s) => Ok(self.finish(s)),
            Err(err) => {
                self.finish(Status::empty());
                Err(err)
            }
        }
    }

    /// Progresses once and reports whether the operation has completed (`MPI_Test`).
    pub fn test(&mut self) -> Result<Option<Status>> {
        if let Some(s) = self.done {
            return Ok(Some(s));
        }
        let id = self.id;
        match engine::with(|e| e.test(id)) {
            Ok(Some(s)) => Ok(Some(self.finish(s))),
            Ok(None) => Ok(None),
            Err(err) => {
                self.finish(Status::empty());
                Err(err)
            }
        }
    }

    fn is_complete(&self) -> bool {
        self.done.is_some() || engine::with(|e| Ok(e.core.reqs.is_done(self.id))).unwrap_or(true)
    }
}

/// Waits for every request (`MPI_Waitall`); returns their statuses in order. All
/// requests are completed even if one fails; the first failure is returned.
pub fn wait_all(requests: Vec<Request<'_>>) -> Result<Vec<Status>> {
    let mut statuses = Vec::with_capacity(requests.len());
    let mut first_err = None;
    for r in requests {
        match r.wait() {
            Ok(s) => statuses.push(s),
            Err(e) => {
                statuses.push(Status::empty());
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(statuses),
    }
}

/// Waits until one of the requests completes (`MPI_Waitany`), takes it out of its
/// slot and returns its index and status; `None` when every slot is empty.
pub fn wait_any(requests: &mut [Option<Request<'_>>]) -> Result<Option<(usize, Status)>> {
    if requests.iter().all(Option::is_none) {
        return Ok(None);
    }
    loop {
        if let Some(hit) = test_any(requests)? {
            return Ok(Some(hit));
        }
        let ids: Vec<ReqId> = requests.iter().flatten().map(|r| r.id).collect();
        engine::with(|e| e.wait_until(|e| ids.iter().any(|&id| e.core.reqs.is_done(id))))?;
    }
}

/// Progresses once and, if one of the requests has completed, takes it out of its
/// slot and returns its index and status (`MPI_Testany`).
pub fn test_any(requests: &mut [Option<Request<'_>>]) -> Result<Option<(usize, Status)>> {
    engine::with(|e| e.progress().map(|_| ()))?;
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
/// empty).
pub fn wait_some(requests: &mut [Option<Request<'_>>]) -> Result<Vec<(usize, Status)>> {
    let mut out = Vec::new();
    let Some(first) = wait_any(requests)? else {
        return Ok(out);
    };
    out.push(first);
    for (i, slot) in requests.iter_mut().enumerate() {
        if slot.as_ref().is_some_and(Request::is_complete) {
            out.push((i, slot.take().expect("checked").wait()?));
        }
    }
    Ok(out)
}
