//! The progress engine: one per process, driven by the calling thread.
//!
//! It owns the request table, the matching queues and the transports, and turns API
//! calls into frames and arriving frames into completed requests. Nothing runs in the
//! background: every blocking call progresses the engine until its request completes
//! (spinning, yielding, then sleeping per [`wait::WaitPolicy`]). Invariant: the engine
//! is reached only through [`with`], on the thread that called init ([`owner`]), so
//! raw buffer views are never dereferenced by two threads at once.

mod bins;
mod blocking_recv;
mod blocking_send;
mod clash;
pub(crate) mod context;
pub(crate) mod credits;
pub(crate) mod finalized;
pub(crate) mod large_receives;
pub(crate) mod matching;
mod owner;
pub(crate) mod protocol;
mod rendezvous;
pub(crate) mod requests;
pub(crate) mod schedule;
mod self_deadlock;
mod silent_peers;
pub(crate) mod two_ways;
pub(crate) mod wait;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::bootstrap::Bootstrap;
use crate::error::{Error, Result};
use crate::status::Status;
use crate::transport::frame::{Envelope, Header, Kind, OutFrame, Payload, RemoteBuf, flags};
use crate::transport::network::Network;
use crate::transport::shm::Pulled;
use crate::userbuf::{UserBuf, UserBufMut};
use context::ContextIds;
use finalized::Finalized;
use large_receives::Way;
use matching::{Body, Pattern, Stored, Unexpected};
use protocol::{Core, Pull, SharedPull};
use requests::{Op, RecvOp, RecvPhase, ReqId, SendOp, SendPhase};
use schedule::{Route, Schedule};
use wait::{Idle, Step, WaitPolicy};

use crate::environment::ErrorMode;

/// What starting an operation gave: its result at once, or a request in flight.
pub(crate) enum Started {
    Done(Result<Status>),
    Pending(ReqId),
}

impl Started {
    /// Collects the result of `id` if it already finished.
    pub(crate) fn settle(e: &mut Engine, id: ReqId) -> Started {
        if e.core.reqs.is_done(id) {
            Started::Done(e.core.reqs.take_done(id).expect("done"))
        } else {
            Started::Pending(id)
        }
    }
}

/// The one engine of this process.
pub(crate) struct Engine {
    pub core: Core,
    pub net: Network,
    pub boot: Arc<Mutex<Bootstrap>>,
    pub policy: WaitPolicy,
    pub ctx_ids: ContextIds,
    pub error_mode: ErrorMode,
    /// Set by a fatal failure in return-errors mode: the engine no longer progresses.
    broken: Option<String>,
    /// Collective schedules in flight.
    colls: Vec<ReqId>,
    /// What was looked at for ranks that run other collectives than this one.
    clash: clash::Watch,
    /// When an idle rank asks the launcher for peers that finalized without a link,
    /// or died.
    silent: silent_peers::Watch,
    /// What this rank learned, as rank 0 of alltoalls whose ranks lend their
    /// buffers, of lent copies (first) against pieces through the area, per
    /// communicator size.
    pub alltoall_ways: Vec<(usize, two_ways::TwoWays)>,
    /// What this rank learned, as rank 0 of 2-rank collectives whose way is learned,
    /// of the area (first) against messages, per collective (by the code the
    /// collectives give it, `coll/learned.rs`).
    learned_ways: Vec<(u8, two_ways::TwoWays)>,
}

/// Least eager credit a peer gets, however small the budget or large the job.
const MIN_CREDIT: usize = 256 * 1024;

/// The eager credit each peer gets in a job of `size` ranks with `unexpected_budget`
/// bytes for unexpected messages: its share, but never so little that eager sends of
/// the largest eager size stop working.
pub(crate) fn credit_per_peer(unexpected_budget: usize, size: usize) -> u64 {
    (unexpected_budget / size).max(MIN_CREDIT) as u64
}

/// Passes that moved nothing before a blocking wait asks whether only this rank could
/// end it (see `self_deadlock`).
const SELF_DEADLOCK_PASSES: u32 = 64;

/// How long a rank that lost a peer waits for the launcher to end the job.
const LAUNCHER_GRACE: Duration = Duration::from_secs(5);

/// How many times a rank with a core of its own looks at what it waits for in the
/// collective area before it progresses the engine too ([`Engine::wait_shared`]).
const FIRST_LOOKS: u32 = 16;

/// Exits this process after an abort with `code`: with `code` (the system keeps it
/// modulo 256, as the launcher reports it), or 1 where that would be 0, so that an
/// abort never looks like success (also without a launcher).
pub(crate) fn exit_aborted(code: i32) -> ! {
    std::process::exit(if code & 0xff == 0 { 1 } else { code })
}

/// Runs `f` on the engine. A fatal failure ends the job here unless the error mode is
/// [`ErrorMode::Return`].
///
/// After a fatal failure in [`ErrorMode::Return`] the engine is broken: every later
/// call fails at once and nothing progresses any more, so no transport ever writes
/// into a receive buffer whose call already returned with the failure. Where a peer
/// writes into this rank's memory itself (a split single copy in progress) the
/// failure ends the job in either mode. Peers that read this rank's send buffers
/// (single copy) are told the buffers are withdrawn, and a read that may have seen
/// the program's later data fails there.
pub(crate) fn with<R>(f: impl FnOnce(&mut Engine) -> Result<R>) -> Result<R> {
    owner::with_engine(|eng| guarded(eng, f))
}

/// [`with`] for a destructor, which may run while the thread unwinds from a panic
/// that is not oxmpi's (a communicator dropped on the way): that does not end the
/// job as a panic inside the call does.
pub(crate) fn with_in_drop<R>(f: impl FnOnce(&mut Engine) -> Result<R>) -> Result<R> {
    owner::with_engine_in_drop(|eng| guarded(eng, f))
}

/// `f` on the engine, under the error policy of [`with`].
#[inline(always)]
fn guarded<R>(eng: &mut Engine, f: impl FnOnce(&mut Engine) -> Result<R>) -> Result<R> {
    if let Some(why) = &eng.broken {
        return Err(Error::JobFailed(why.clone()));
    }
    let result = f(eng);
    if let Err(e) = &result
        && e.is_fatal()
    {
        eng.broken = Some(e.to_string());
        eng.failed(e, eng.error_mode == ErrorMode::Fatal);
    }
    result
}

pub(crate) use context::orphan_pair;
pub(crate) use owner::{callable_here, claim, ensure_callable, install, is_running, uninstall};
pub(crate) use silent_peers::Probing;

/// Tells the launcher when `err` says a peer was lost or finalized while this rank
/// needed it: the program may end at once, and the peer's end is the cause to report.
fn report_cause(boot: &Mutex<Bootstrap>, err: &Error) {
    let peer = match err {
        Error::PeerLost { peer, .. } | Error::PeerFinalized { peer, .. } => *peer,
        _ => return,
    };
    if let Ok(peer) = usize::try_from(peer) {
        boot.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .report_lost(peer);
    }
}

impl Engine {
    pub(crate) fn new(
        boot: Arc<Mutex<Bootstrap>>,
        net: Network,
        policy: WaitPolicy,
        unexpected_budget: usize,
        error_mode: ErrorMode,
    ) -> Engine {
        let (rank, size, tells_silent) = {
            let b = boot.lock().unwrap_or_else(PoisonError::into_inner);
            (b.rank, b.size, b.tells_silent_peers())
        };
        let silent = silent_peers::Watch::new(tells_silent);
        let mut core = Core::new(rank, size, credit_per_peer(unexpected_budget, size));
        large_receives::single_copy_permitted(net.node_single_copy());
        core.rendezvous = net
            .learns_rendezvous()
            .then(|| rendezvous::Learner::new(net.read_requests()));
        Engine {
            core,
            net,
            boot,
            policy,
            ctx_ids: ContextIds::new(),
            error_mode,
            broken: None,
            colls: Vec::new(),
            clash: clash::Watch::default(),
            silent,
            alltoall_ways: Vec::new(),
            learned_ways: Vec::new(),
        }
    }

    /// What this rank learned of the area against messages in the learned collective
    /// of code `coll` (see the field `learned_ways`).
    pub(crate) fn learned_ways(&mut self, coll: u8) -> &mut two_ways::TwoWays {
        two_ways::keyed(&mut self.learned_ways, coll)
    }

    /// Reports a fatal failure and ends the job.
    pub(crate) fn die(&mut self, err: &Error) -> ! {
        let lost_peer = matches!(err, Error::PeerLost { .. });
        if lost_peer
            && self
                .boot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .size
                > 1
        {
            // A lost peer has usually died, and the launcher has seen it die too and is
            // about to end the job naming the real cause. Give it the time to; report
            // and abort ourselves only if it does not.
            std::thread::sleep(LAUNCHER_GRACE);
        }
        report_cause(&self.boot, err);
        self.abort_job(1, &format!("{err}; ending the job"), true)
    }

    /// Ends the whole job with `code`: asks the launcher to stop every rank, then
    /// exits. `why` is printed if `failure` (the launcher only knows the code), or
    /// when no launcher reports the abort itself.
    pub(crate) fn abort_job(&mut self, code: i32, why: &str, failure: bool) -> ! {
        let mut boot = self.boot.lock().unwrap_or_else(PoisonError::into_inner);
        // Printed first: the launcher's SIGTERM may end this process right after it
        // hears of the abort.
        if failure || !boot.has_launcher() {
            crate::error::report(why);
        }
        boot.abort(code, failure);
        exit_aborted(code)
    }

    /// Moves everything that can move without blocking. Returns whether anything did.
    pub(crate) fn progress(&mut self) -> Result<bool> {
        if let Some(l) = self.core.rendezvous.as_mut() {
            l.pass();
        }
        let got = self.net.progress(&mut self.core);
        if let Some(l) = self.core.rendezvous.as_mut() {
            l.pass_over();
        }
        let mut moved = got?;
        if !self.core.takes.is_empty() {
            self.run_takes()?;
            moved = true;
        }
        if !self.core.pulls.is_empty() {
            self.run_pulls()?;
            moved = true;
        }
        if !self.core.helps.is_empty() {
            let mut helps = std::mem::take(&mut self.core.helps);
            // One report per copy: the Help frames of a copy of several messages come
            // one after the other.
            let mut copied: Option<(usize, u64, u64)> = None;
            for help in helps.drain(..) {
                let chunks = self
                    .net
                    .help(help.peer, help.generation, help.src, &help.request)?;
                match copied.as_mut() {
                    Some((peer, generation, n))
                        if (*peer, *generation) == (help.peer, help.generation) =>
                    {
                        *n += chunks;
                    }
                    _ => {
                        let last = copied.replace((help.peer, help.generation, chunks));
                        if let Some((peer, generation, n)) = last {
                            self.core.helped(peer, generation, n);
                        }
                    }
                }
            }
            if let Some((peer, generation, n)) = copied {
                self.core.helped(peer, generation, n);
            }
            keep_room(&mut self.core.helps, helps);
            moved = true;
        }
        moved |= self.flush_outbox()?;
        if !self.colls.is_empty() {
            moved |= self.advance_schedules()?;
        }
        Ok(moved)
    }

    /// The single-copy reads the last frames asked for: those large enough one by one,
    /// each copy shared with its sender (unless kept whole, see [`KEEP_WHOLE`]); the
    /// others together, one batch per sender, the batch's copy shared too where it is
    /// large enough (see [`Network::splits`]), else in one system call (a read alone,
    /// as in a ping-pong, straight into its buffer, with no lists built). The vector
    /// of pulls goes back with its room ([`keep_room`]).
    fn run_pulls(&mut self) -> Result<()> {
        let mut pulls = std::mem::take(&mut self.core.pulls);
        // A finalizing rank starts no split copy: its sender would write into a buffer
        // that may be gone once finalize returns (see `finalize_fence`).
        let splits = !self.core.finalizing;
        let mut i = 0;
        while i < pulls.len() {
            let (peer, len) = (pulls[i].peer, pulls[i].dest.len());
            if splits
                && !kept_whole(&pulls[i])
                && self.net.splits(peer, std::iter::once(len), || {
                    reads_ours(&self.core.reqs, peer)
                })
            {
                let pull = pulls.remove(i);
                self.split_pulls(peer, vec![pull])?;
            } else {
                i += 1;
            }
        }
        pulls.sort_by_key(|p: &Pull| p.peer);
        while let Some(first) = pulls.first() {
            let peer = first.peer;
            let n = pulls.iter().take_while(|p| p.peer == peer).count();
            let lens = pulls[..n].iter().map(|p| p.dest.len());
            let shared = !pulls[..n].iter().any(kept_whole);
            let busy = || reads_ours(&self.core.reqs, peer);
            if splits && n > 1 && shared && self.net.splits(peer, lens, busy) {
                self.split_pulls(peer, pulls.drain(..n).collect())?;
                continue;
            }
            let pulled = if n == 1 {
                self.net.pull_one(peer, &first.remote, first.dest)?
            } else {
                let parts: Vec<_> = pulls[..n].iter().map(|p| (p.remote, p.dest)).collect();
                // The learner times reads done together by the call; one alone, from
                // its match like a stream (see `rendezvous`).
                let start = self.core.rendezvous.is_some().then(Instant::now);
                let pulled = self.net.pull_many(peer, &parts)?;
                if let (Some(start), Some(l), true) = (start, self.core.rendezvous.as_mut(), pulled)
                {
                    let reads: Vec<_> = pulls[..n].iter().map(|p| (p.rreq, p.dest.len())).collect();
                    l.finished_together(&reads, start.elapsed());
                }
                pulled
            };
            if pulled {
                (0..n).for_each(|_| large_receives::count(Way::SingleCopy));
            }
            self.core.finish_pulls(pulls.drain(..n), pulled);
        }
        keep_room(&mut self.core.pulls, pulls);
        Ok(())
    }

    /// Reads `pulls`, all from `peer`, sharing the copy with it (none kept whole): one
    /// message in halves, several (a bandwidth test's window of 64 KiB messages, read
    /// in one system call, left the sender's core idle) a message a claim.
    fn split_pulls(&mut self, peer: usize, pulls: Vec<Pull>) -> Result<()> {
        let parts: Vec<_> = pulls.iter().map(|p| (p.remote, p.dest, p.sreq)).collect();
        let start = Instant::now();
        match self.net.pull(peer, &parts)? {
            // Not returned: the caller would get back buffers the sender may still
            // write into (see `with`).
            Pulled::FailedShared(e) => self.die(&e),
            Pulled::Refused => self.core.finish_pulls(pulls, false),
            Pulled::Done => {
                pulls.iter().for_each(|_| large_receives::count(Way::Split));
                self.core.finish_split(pulls, start);
            }
            Pulled::Shared {
                generation,
                awaiting,
            } => {
                pulls.iter().for_each(|_| large_receives::count(Way::Split));
                self.core.shared.push(SharedPull {
                    pulls,
                    start,
                    generation,
                    awaiting,
                });
            }
        }
        Ok(())
    }

    /// Reads the messages offered [`flags::BUFFERED`] that found no receive into the
    /// unexpected queue, where they wait as eager ones do, and lets their senders
    /// complete. One the kernel refuses to read stays an offer (its sender then
    /// waits for the receive, which streams it as any other). Each read is a mid-size
    /// arrival the learner times and counts, as it does an eager message copied into
    /// the queue (see `rendezvous`).
    fn run_takes(&mut self) -> Result<()> {
        let mut takes = std::mem::take(&mut self.core.takes);
        for (peer, sreq) in takes.drain(..) {
            // A receive posted since the offer arrived has taken it already.
            let Some(msg) = self.core.matcher.unexpected_rts(peer, sreq) else {
                continue;
            };
            let Body::Rts {
                size,
                remote: Some(remote),
                ..
            } = msg.body
            else {
                continue;
            };
            // Only a message within the shared-memory eager limit is offered so: one
            // over TCP, or of a size no sender offers (the size is the peer's word),
            // stays an offer rather than have its claimed size allocated here.
            if !self.net.within_eager_limit(peer, size) {
                continue;
            }
            let clock = self
                .core
                .rendezvous
                .as_ref()
                .and_then(|l| l.take_clock(size));
            let mut data = vec![0u8; size].into_boxed_slice();
            // SAFETY: `data` outlives the read, which is done when `pull_one` returns,
            // and nothing else refers to it meanwhile.
            let dest = unsafe { UserBufMut::new(&mut data) };
            if self.net.pull_one(peer, &remote, dest)? {
                if let (Some(start), Some(l)) = (clock, self.core.rendezvous.as_mut()) {
                    l.taken(size, start);
                }
                large_receives::count(Way::SingleCopy);
                msg.body = Body::Eager {
                    data: Stored::Heap(data),
                    sync: None,
                };
                self.core
                    .outbox
                    .push((peer, protocol::control(Kind::Fin, sreq, 0)));
            }
        }
        keep_room(&mut self.core.takes, takes);
        Ok(())
    }

    /// Sends the control frames waiting in the outbox; whether there were any. The
    /// check is inline: every receive asks, and the outbox is nearly always empty.
    #[inline]
    fn flush_outbox(&mut self) -> Result<bool> {
        if self.core.outbox.is_empty() {
            return Ok(false);
        }
        self.send_outbox()?;
        Ok(true)
    }

    /// [`Engine::flush_outbox`]'s sending, kept out of line.
    #[inline(never)]
    fn send_outbox(&mut self) -> Result<()> {
        let mut frames = std::mem::take(&mut self.core.outbox);
        for (peer, frame) in frames.drain(..) {
            let token = frame.token;
            if self.net.send(peer, frame)?
                && let Some(t) = token
            {
                transport_sent(&mut self.core, t)?;
            }
        }
        keep_room(&mut self.core.outbox, frames);
        Ok(())
    }

    /// Progresses until `done` holds, waiting politely when nothing moves, but gives
    /// up when `alarm` holds, which is asked only when the rank is about to sleep (it
    /// would otherwise wait long). Returns whether `done` held.
    pub(crate) fn wait_until_or(
        &mut self,
        mut done: impl FnMut(&mut Engine) -> bool,
        alarm: &dyn Fn() -> bool,
    ) -> Result<bool> {
        let raised = std::cell::Cell::new(false);
        let recheck = || {
            raised.set(alarm());
            raised.get()
        };
        self.wait_loop(|e| raised.get() || done(e), &recheck)?;
        Ok(!raised.get())
    }

    /// Progresses until `ready` holds, where `ready` looks only at shared memory that
    /// other local ranks write (the collective area) and wake this rank after. Fails
    /// if `stuck` names a rank that has finalized without doing its part (what it did
    /// before it said so is visible by the time its Bye has arrived).
    /// `all_in`: `ready` waits for every local rank to enter that collective over the
    /// area, which is published while this rank waits, when it shares its CPU with
    /// other ranks (see [`Network::mark_area_wait`]). `watch`: the route under which
    /// no message may come while this rank waits (the collective's own number, which
    /// it does not send under): one that does is a clash (`clash.rs`). Made only once
    /// the first looks are over, so that a short wait pays nothing for it.
    pub(crate) fn wait_shared(
        &mut self,
        ready: &dyn Fn() -> bool,
        all_in: Option<u64>,
        stuck: &dyn Fn(&Finalized) -> Option<usize>,
        watch: &dyn Fn() -> Route,
    ) -> Result<()> {
        // A rank with a core of its own first watches `ready` alone for a moment: a
        // progress pass per look took longer than the line it waits for takes to
        // come from the other core (2 ranks, fast phase: allreduce of 4-128 B
        // 0.83-0.87 of the time, barrier 0.86, alltoall of 1-128 B 0.88-0.96; 16 looks
        // did as well as 64 or 256; docs/benchmarks.md).
        if self.policy.spins() {
            for _ in 0..FIRST_LOOKS {
                if ready() {
                    return Ok(());
                }
                std::hint::spin_loop();
            }
        }
        let _mark = all_in
            .filter(|_| self.policy.shares_cores())
            .and_then(|seq| self.net.mark_area_wait(seq));
        self.watch_driving(Some(watch()));
        let waited = self.wait_loop(|e| ready() || stuck(&e.core.finalized).is_some(), ready);
        self.watch_driving(None);
        waited?;
        match stuck(&self.core.finalized) {
            Some(peer) if !ready() => {
                let what = format!("a collective waits for rank {peer} to join it");
                Err(self.core.finalized_error(Some(peer), &what))
            }
            _ => Ok(()),
        }
    }

    /// Progresses until `done` holds; a rank about to sleep runs `recheck` once it can
    /// be woken, and stays awake if it holds.
    fn wait_loop(
        &mut self,
        done: impl FnMut(&mut Engine) -> bool,
        recheck: &dyn Fn() -> bool,
    ) -> Result<()> {
        self.wait_loop_stalled(done, recheck, |_| false)
    }

    /// Progresses until `done` holds, waiting politely when nothing moves; also ends
    /// when `stalled` holds, which is asked
    /// only after a progress pass that moved nothing: nothing of this rank's own is
    /// in flight then (a message to itself, say), so only peers could still end the
    /// wait.
    pub(crate) fn wait_until_or_stalled(
        &mut self,
        done: impl FnMut(&mut Engine) -> bool,
        stalled: impl FnMut(&mut Engine) -> bool,
    ) -> Result<()> {
        self.wait_loop_stalled(done, &|| false, stalled)
    }

    /// The loop behind every wait: progress, then spin, yield or sleep by the wait
    /// policy while nothing moves.
    fn wait_loop_stalled(
        &mut self,
        mut done: impl FnMut(&mut Engine) -> bool,
        recheck: &dyn Fn() -> bool,
        mut stalled: impl FnMut(&mut Engine) -> bool,
    ) -> Result<()> {
        let mut idle = Idle::new();
        // Idle time counts from this wait on (the last one may have ended idle).
        self.silent.start();
        loop {
            let moved = self.progress()?;
            // Counted before `done`: in a loop of short waits, each one ends with the
            // pass that moved.
            if moved && self.silent.moved() {
                self.ask_for_silent_peers()?;
            }
            if done(self) {
                return Ok(());
            }
            if moved {
                idle.reset();
                continue;
            }
            if stalled(self) {
                return Ok(());
            }
            self.check_clashes()?;
            let net = &self.net;
            match idle.next(&self.policy, |cores| net.crowded(cores)) {
                Step::Spin => std::hint::spin_loop(),
                Step::Yield => std::thread::yield_now(),
                Step::Sleep(_) if self.silent.due_before_sleep() && self.ask_while_blocked()? => {}
                Step::Sleep(d) => self.net.block(d, recheck)?,
            }
        }
    }

    /// Starts sending `buf` to world rank `peer` with the given envelope. Returns
    /// `None` when the send finished at once (a small message written straight into
    /// the transport: the buffer may be reused), else the request to wait for.
    #[inline]
    pub(crate) fn start_send(
        &mut self,
        ctx: u32,
        src: i32,
        peer: usize,
        tag: i32,
        buf: UserBuf,
        sync: bool,
    ) -> Result<Option<ReqId>> {
        if self.core.finalized.has(peer) {
            let what = if context::is_collective(ctx) {
                format!("a collective sends to rank {peer}")
            } else {
                format!("a send to rank {peer} was started")
            };
            return Err(self.core.finalized_error(Some(peer), &what));
        }
        let len = buf.len();
        let env = Envelope { ctx, src, tag };
        // A collective's mid-size messages go eagerly whatever the receiver asks: a
        // schedule posts its receives up front and its sends wait for no answer, so an
        // eager send frees the sender at once where an offer holds it until the read
        // (the asked way is learned from ping-pongs and windows of point-to-point).
        let asks = !context::is_collective(ctx);
        let eager = self.net.sends_eagerly(peer, len, asks) && self.core.credits.spend(peer, len);
        if !eager || sync {
            return self.start_send_tracked(env, peer, buf, eager, sync);
        }
        // The common case, kept small enough to inline: a plain eager message needs a
        // request only if the transport has to queue it.
        if self.net.send_eager(peer, env, buf)? {
            return Ok(None);
        }
        let id = self.core.reqs.insert(Op::Send(SendOp {
            peer,
            env,
            buf,
            phase: SendPhase::Eager {
                written: false,
                acked: true,
            },
        }));
        self.net.tag_last(peer, id.0);
        Ok(Some(id))
    }

    /// The sends that always need a request: a synchronous eager one (`eager`, its
    /// credit spent) or a rendezvous. A rendezvous within the eager limit (a mid-size
    /// message its receiver asked to read), not synchronous, spends credit and is
    /// offered [`flags::BUFFERED`]: it completes without its receive posted, as it
    /// would have eagerly, so that whether a program's sends wait for their receives
    /// does not depend on what the receivers have learned.
    #[inline(never)]
    fn start_send_tracked(
        &mut self,
        env: Envelope,
        peer: usize,
        buf: UserBuf,
        eager: bool,
        sync: bool,
    ) -> Result<Option<ReqId>> {
        let len = buf.len();
        let mut hdr = Header::eager(env, 0);
        if eager {
            hdr.payload = len as u64;
            // The acknowledgement names the request.
            hdr.flags |= flags::SYNC;
            let id = self.core.reqs.insert(Op::Send(SendOp {
                peer,
                env,
                buf,
                phase: SendPhase::Eager {
                    written: false,
                    acked: false,
                },
            }));
            hdr.a = id.0;
            let frame = OutFrame {
                hdr,
                payload: Payload::User(buf),
                token: Some(id.0),
            };
            if self.net.send(peer, frame)? {
                transport_sent(&mut self.core, id.0)?;
            }
            return Ok(Some(id));
        }
        let single_copy = self.net.single_copy(peer);
        let phase = if single_copy {
            SendPhase::AwaitFin
        } else {
            SendPhase::AwaitCts
        };
        let id = self.core.reqs.insert(Op::Send(SendOp {
            peer,
            env,
            buf,
            phase,
        }));
        hdr.kind = Kind::Rts as u8;
        hdr.a = id.0;
        hdr.b = len as u64;
        let frame = if single_copy {
            hdr.flags |= flags::SINGLE_COPY;
            if !sync && self.net.within_eager_limit(peer, len) && self.core.credits.spend(peer, len)
            {
                hdr.flags |= flags::BUFFERED;
            }
            let (remote, _) = RemoteBuf::lent(buf.addr(), buf.len());
            hdr.payload = std::mem::size_of::<RemoteBuf>() as u64;
            OutFrame {
                hdr,
                payload: Payload::Remote(remote),
                token: None,
            }
        } else {
            OutFrame {
                hdr,
                payload: Payload::Empty,
                token: None,
            }
        };
        self.net.send(peer, frame)?;
        Ok(Some(id))
    }

    /// Starts a receive into `buf` for messages matching `pattern`. An eager message
    /// that has already arrived is received at once, without a request.
    #[inline]
    pub(crate) fn start_recv(&mut self, pattern: Pattern, buf: UserBufMut) -> Result<Started> {
        self.start_recv_keeping(pattern, buf, false)
    }

    /// [`Engine::start_recv`], for data this rank reads as soon as it lands where
    /// `keep` (see [`RecvOp::keep`]).
    #[inline]
    pub(crate) fn start_recv_keeping(
        &mut self,
        pattern: Pattern,
        buf: UserBufMut,
        keep: bool,
    ) -> Result<Started> {
        // Often nothing waits unmatched (receives posted ahead of their messages): then
        // the receive goes straight to the posted queue.
        let queued = self.core.matcher.has_unexpected();
        if queued && let Some(got) = self.core.recv_now(&pattern, buf) {
            // Acknowledgements and credit go out now, not at the next progress.
            self.flush_outbox()?;
            return Ok(Started::Done(got));
        }
        if let Some(peer) = pattern.from()
            && self.core.finalized.has(peer)
            && self.core.matcher.peek_unexpected(&pattern).is_none()
        {
            let what = finalized::awaited(context::is_collective(pattern.ctx()), peer);
            return Err(self.core.finalized_error(Some(peer), &what));
        }
        let id = self.core.reqs.insert(Op::Recv(RecvOp {
            buf,
            phase: RecvPhase::Posted,
            keep,
        }));
        if !queued {
            self.core.matcher.post(pattern, id);
            return Ok(Started::Pending(id));
        }
        // It may have matched a message that completes it at once (or refuses a
        // large one that does not fit), or a large one to read or have sent.
        self.core.post_recv(pattern, id);
        self.answer_matched()?;
        Ok(Started::settle(self, id))
    }

    /// What a receive that just matched an arrived message owes its sender, done now
    /// rather than at the next progress (the sender waits for it, while this rank may
    /// compute before it waits, as after an `irecv`): the single-copy read of a large
    /// message, the answer that has one sent, a synchronous send's acknowledgement,
    /// credit. Its errors are failures of the job (the engine is broken from then
    /// on), so the request its caller leaves unreturned is never completed into a
    /// freed buffer.
    fn answer_matched(&mut self) -> Result<()> {
        if !self.core.pulls.is_empty() {
            self.run_pulls()?;
        }
        self.flush_outbox()?;
        Ok(())
    }

    /// [`Engine::start_recv`] for a nonblocking receive: always a request, a finished
    /// one when the message was here already.
    pub(crate) fn start_recv_request(
        &mut self,
        pattern: Pattern,
        buf: UserBufMut,
    ) -> Result<ReqId> {
        match self.start_recv(pattern, buf)? {
            Started::Pending(id) => Ok(id),
            Started::Done(result) => Ok(self.finished(result)),
        }
    }

    /// Cancels request `id` if it is a receive still waiting for its message: takes it
    /// off the posted queue (nothing was or will be written into its buffer) and
    /// returns `true`; `false` where it matched a message already (or is no receive:
    /// a send, a collective), so that it completes as it would have.
    pub(crate) fn cancel(&mut self, id: ReqId) -> bool {
        let posted = matches!(
            self.core.reqs.get(id),
            Some(Op::Recv(r)) if matches!(r.phase, RecvPhase::Posted)
        );
        if !posted
            || self
                .core
                .matcher
                .take_posted_where(|_, posted| posted == id)
                .is_empty()
        {
            return false;
        }
        self.core.reqs.complete(id, Ok(Status::empty()));
        let _ = self.core.reqs.take_done(id);
        true
    }

    /// A request that has finished with `result` already.
    pub(crate) fn finished(&mut self, result: Result<Status>) -> ReqId {
        self.core.reqs.insert(Op::done(result))
    }

    /// Receives a message already taken off the unexpected queue into `buf`.
    pub(crate) fn recv_matched(&mut self, msg: Unexpected, buf: UserBufMut) -> Result<Status> {
        let id = self.core.reqs.insert(Op::Recv(RecvOp {
            buf,
            phase: RecvPhase::Posted,
            keep: false,
        }));
        self.core.deliver_unexpected(id, msg);
        self.answer_matched()?;
        self.wait(id)
    }

    /// Starts a schedule as a request.
    pub(crate) fn start_schedule(&mut self, sched: Schedule) -> Result<ReqId> {
        let id = self.core.reqs.insert(Op::Coll(Box::new(sched)));
        self.colls.push(id);
        self.collectives_changed();
        self.advance_one(id)?;
        Ok(id)
    }

    fn advance_schedules(&mut self) -> Result<bool> {
        let mut moved = false;
        for id in self.colls.clone() {
            moved |= self.advance_one(id)?;
        }
        Ok(moved)
    }

    /// Advances one schedule; returns whether it finished.
    fn advance_one(&mut self, id: ReqId) -> Result<bool> {
        let Some(op) = self.core.reqs.get_mut(id) else {
            return Ok(false);
        };
        let Op::Coll(mut sched) = std::mem::replace(op, Op::Done(Ok(Status::empty()))) else {
            unreachable!("colls lists only schedules");
        };
        let outcome = sched.advance(self);
        let op = self
            .core
            .reqs
            .get_mut(id)
            .expect("schedule slot stays reserved");
        match outcome {
            Ok(None) => {
                *op = Op::Coll(sched);
                Ok(false)
            }
            Ok(Some(result)) => {
                self.core.reqs.complete(id, result);
                self.colls.retain(|c| *c != id);
                self.collectives_changed();
                Ok(true)
            }
            Err(e) => {
                *op = Op::done(Err(Error::InvalidArgument(format!(
                    "collective failed: {e}"
                ))));
                self.colls.retain(|c| *c != id);
                Err(e)
            }
        }
    }

    /// The launcher's node id of this rank.
    pub(crate) fn node_id(&self) -> u32 {
        let boot = self
            .boot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        boot.nodes[boot.rank]
    }

    /// Blocks until request `id` completes and returns its result.
    #[inline]
    pub(crate) fn wait(&mut self, id: ReqId) -> Result<Status> {
        self.wait_among(id, &[])
    }

    /// [`Engine::wait`] for request `id` while the caller waits for the requests
    /// `among` as well, one after another (a `sendrecv`'s other operation, the rest of
    /// a `wait_all`'s list): this wait also ends when one of those has failed in a
    /// way that ends the job, and returns that failure (taking it: the failed request
    /// is gone). `id` may need a live peer that itself waits for this rank, and the
    /// failure would otherwise never be seen (the job waited until `--timeout`).
    #[inline]
    pub(crate) fn wait_among(&mut self, id: ReqId, among: &[ReqId]) -> Result<Status> {
        // Often done already (a window of receives after its first wait): one lookup,
        // inlined, so that the status reaches the caller in registers.
        match self.core.reqs.take_done(id) {
            Some(result) => result,
            None => self.wait_pending(id, among),
        }
    }

    /// [`Engine::wait_among`] for a request that has not completed yet.
    #[inline(never)]
    fn wait_pending(&mut self, id: ReqId, among: &[ReqId]) -> Result<Status> {
        // Waiting for this one request, the rank sends nothing meanwhile: any message
        // of its own to itself is queued already and meets the receive in the first
        // progress pass, so an orphaned any-source receive can fail at once (a wait
        // for any of several must wait until it stalls instead).
        // Once a pass moves nothing, a request only this rank could complete never
        // will (see `self_deadlock`). Which requests those are does not change, so one
        // pass asks: the 64th that moved nothing, by when most waits have ended (the
        // question at the first cost 256-byte ping-pongs 9%). A failure among the
        // others is looked for on passes that moved nothing, once per failure of the
        // job anywhere (and at the first: one may have come before this wait).
        let mut stalls = 0u32;
        let mut seen = None;
        let mut failed = None;
        self.wait_until_or_stalled(
            |e| e.core.reqs.is_done(id) || e.core.fail_orphaned_any_source(id),
            |e| {
                stalls += 1;
                if stalls == SELF_DEADLOCK_PASSES && e.core.fail_self_deadlock(id) {
                    return true;
                }
                let now = e.core.reqs.fatal_failures();
                if seen != Some(now) {
                    seen = Some(now);
                    failed = among
                        .iter()
                        .copied()
                        .find(|&other| other != id && e.core.reqs.failed_fatally(other));
                }
                failed.is_some()
            },
        )?;
        match (self.core.reqs.take_done(id), failed) {
            (Some(result), _) => result,
            (None, Some(other)) => match self.core.reqs.take_done(other) {
                Some(Err(e)) => Err(e),
                _ => unreachable!("request {other:?} failed"),
            },
            (None, None) => unreachable!("a wait ends with its request done"),
        }
    }

    /// Waits until one of requests `ids` has completed (`wait_any`). When every one of
    /// them is one only this rank could complete (see `self_deadlock`), the first
    /// fails with [`Error::Deadlock`] instead, as a wait for it alone would.
    pub(crate) fn wait_any_of(&mut self, ids: &[ReqId]) -> Result<()> {
        let mut stalls = 0u32;
        self.wait_until_or_stalled(
            |e| ids.iter().any(|&id| e.core.reqs.is_done(id)),
            |e| {
                stalls += 1;
                ids.iter().any(|&id| e.core.fail_orphaned_any_source(id))
                    || stalls == SELF_DEADLOCK_PASSES
                        && ids.iter().all(|&id| e.core.only_self_could_complete(id))
                        && ids.first().is_some_and(|&id| e.core.fail_self_deadlock(id))
            },
        )
    }

    /// Progresses once; returns the result if request `id` has completed (the outer
    /// error: progress itself failed, and the request is as it was).
    pub(crate) fn test(&mut self, id: ReqId) -> Result<Option<Result<Status>>> {
        if !self.core.reqs.is_done(id) {
            self.poll()?;
        }
        Ok(self.core.reqs.take_done(id))
    }

    /// Progresses once for a call that returns whatever happened (`test`): a loop of
    /// them that stays idle asks the launcher for silent peers like a wait does.
    pub(crate) fn poll(&mut self) -> Result<()> {
        if self.progress()? {
            if self.silent.moved() {
                self.ask_for_silent_peers()?;
            }
        } else if self.silent.due_after_poll() {
            self.ask_for_silent_peers()?;
        }
        Ok(())
    }

    /// The envelope of the oldest message matching `pattern`, if one has arrived.
    pub(crate) fn iprobe(&mut self, pattern: &Pattern) -> Result<Option<Status>> {
        if let Some(s) = self.peek(pattern) {
            return Ok(Some(s));
        }
        self.progress()?;
        Ok(self.peek(pattern))
    }

    fn peek(&self, pattern: &Pattern) -> Option<Status> {
        self.core
            .matcher
            .peek_unexpected(pattern)
            .map(Unexpected::status)
    }

    /// [`Engine::iprobe`] that takes the message it finds off the unexpected queue.
    pub(crate) fn improbe(&mut self, pattern: &Pattern) -> Result<Option<Unexpected>> {
        if self.iprobe(pattern)?.is_none() {
            return Ok(None);
        }
        Ok(self.core.matcher.take_unexpected(pattern))
    }

    /// Waits for a message matching `pattern` to arrive (`MPI_Probe`).
    pub(crate) fn probe(&mut self, pattern: &Pattern) -> Result<Status> {
        self.probe_for(pattern, Probing::Probe)
    }

    /// [`Engine::probe`], waiting as `probing` says (named so in a deadlock report).
    fn probe_for(&mut self, pattern: &Pattern, probing: Probing) -> Result<Status> {
        // A probe for what only this rank could send fails once a pass moves nothing.
        let mut hopeless = false;
        if self.core.matcher.peek_unexpected(pattern).is_none() {
            self.waiting_to_probe(pattern, probing, |e| {
                e.wait_until_or_stalled(
                    |e| {
                        e.core.matcher.peek_unexpected(pattern).is_some()
                            || e.core.finalized.silent(pattern)
                    },
                    |e| {
                        hopeless = e.core.probes_self(pattern);
                        hopeless
                    },
                )
            })?;
        }
        match self.peek(pattern) {
            Some(status) => Ok(status),
            None if hopeless => Err(Error::Deadlock(
                "a probe waits for a message that only this rank itself could send, and none is on its way".into(),
            )),
            None => Err(self.core.orphaned_error(
                pattern.ctx(),
                pattern.from(),
                "a probe waits for a message",
            )),
        }
    }

    /// Waits for a message matching `pattern` and takes it off the unexpected queue;
    /// `probing`: for a matched probe, or for a receive of a length it learns so.
    pub(crate) fn mprobe(&mut self, pattern: &Pattern, probing: Probing) -> Result<Unexpected> {
        self.probe_for(pattern, probing)?;
        Ok(self
            .core
            .matcher
            .take_unexpected(pattern)
            .expect("probed above"))
    }

    /// Ends this process's part in the job: waits (progressing) until every rank has
    /// reached finalize, then tells the launcher. A failure of the job meanwhile comes
    /// back to the program (whose output after finalize the launcher waits for), but
    /// as in [`with`]: with a split copy still open the job ends (its helper may yet
    /// write into a receive buffer the program frees once finalize has returned), the
    /// buffers peers may still read from are withdrawn, and a lost peer is reported to
    /// the launcher.
    /// Finalizes (see [`Engine::finalize_fence`]); `dropped`: the program is ending
    /// without having finalized.
    pub(crate) fn finalize(mut self, dropped: bool) -> Result<()> {
        let result = self.finalize_fence(dropped);
        if let Err(e) = &result
            && e.is_fatal()
        {
            self.failed(e, false);
        }
        result
    }

    /// What a failure of the job `e` does as the call that met it returns: ends the
    /// job if `end` or if a peer helping with a split copy may still write into a
    /// receive buffer of ours, which the caller would free on return; else withdraws
    /// the buffers of sends and collectives not finished, which peers of this node
    /// may still be reading, and tells the launcher of a lost or finalized peer.
    fn failed(&mut self, e: &Error, end: bool) {
        if end || !self.core.shared.is_empty() {
            self.die(e);
        }
        self.net.withdraw();
        report_cause(&self.boot, e);
    }

    /// Whether a failure of the job ended this engine's communication (see `broken`).
    pub(crate) fn broken(&self) -> bool {
        self.broken.is_some()
    }

    fn finalize_fence(&mut self, dropped: bool) -> Result<()> {
        if let Some(why) = self.broken.take() {
            return Err(Error::JobFailed(why));
        }
        self.core.finalizing = true;
        self.core.matcher.clear_unexpected();
        // What we owe peers (answers, reads, copies) goes to the transports first
        // (progress may leave frames a schedule queued in the outbox: they go too, so
        // that every peer this rank ever sends to counts as linked below), then a Bye
        // to every peer behind everything else we sent it.
        self.progress()?;
        self.flush_outbox()?;
        // A sender helping with a split copy writes into a receive buffer of ours,
        // which the program may free once finalize has returned (finalizing inside a
        // scope with the receive in flight): wait for its report of the last chunk.
        // That comes before the fence can end (the sender progresses in its own fence
        // until this rank enters), and no split copy starts from here on.
        self.wait_loop(|e| e.core.shared.is_empty(), &|| false)?;
        let (linked, unlinked): (Vec<usize>, Vec<usize>) = (0..self.core.finalized.size())
            .filter(|&p| p != self.core.me)
            .partition(|&p| self.net.linked(p));
        let boot = Arc::clone(&self.boot);
        let lock_boot = || boot.lock().unwrap_or_else(PoisonError::into_inner);
        // The unlinked get no goodbye: the launcher tells them (see `silent_peers`).
        // And the launcher learns that this rank is on its way out: should the job
        // fail meanwhile, it ends the fence below for this rank instead of killing it,
        // so that what the program prints after finalizing is not lost. It learns
        // that before any peer does: a peer that sees the goodbye may end the job
        // (its receive from any source can never be matched now), and a rank the
        // launcher did not know to be leaving was killed before it printed why it
        // gave up (`ranks_split_between_shared_memory_and_messages_end_the_job`,
        // 4 runs in 120 with four jobs at once).
        lock_boot().announce_finalizing(&unlinked, dropped)?;
        self.core.say_bye(linked);
        self.flush_outbox()?;
        // Peers close their connections once every rank is in the fence, which may be
        // before this rank sees the fence end.
        self.net.set_closing();
        // What still waits to go (frames queued for a ring or a socket) goes before the
        // fence, from which on the launcher counts this rank as sending nothing new
        // (its check for a deadlocked job, `launcher/src/deadlock.rs`); for a while at
        // most: a peer that reads no more may leave it queued, and it then goes from
        // the fence once the peer makes room. Bytes in the kernel not yet acknowledged
        // are not waited for: a peer's delayed acknowledgement took 40 ms, in every
        // job over TCP (a 4-rank `ring` in 90 ms against 45).
        let until = Instant::now() + FENCE_DRAIN;
        while !self.sends_nothing() && Instant::now() < until {
            if !self.progress()? {
                self.net.block(DRAIN_NAP, &|| false)?;
            }
        }
        lock_boot().fence_enter()?;
        loop {
            // The lock is not held while progressing: a send may need the bootstrap
            // to find a peer's address.
            self.progress()?;
            if lock_boot().fence_poll(Duration::from_millis(1))? {
                break;
            }
        }
        lock_boot().finalize()
    }
}

/// The longest a finalizing rank waits for what it sent to be on its way before the
/// fence, and its naps meanwhile.
const FENCE_DRAIN: Duration = Duration::from_secs(1);
const DRAIN_NAP: Duration = Duration::from_millis(1);

/// Single copies shorter than this whose data the receiver reads as soon as it lands
/// (a reduction's operands, [`RecvOp::keep`](requests::RecvOp::keep)) are not shared
/// with the sender: the half the sender copied would be in its core's cache, and the
/// reduction would fetch it from there line by line. Measured (2 ranks, each way
/// forced with `OXMPI_SHM_SPLIT=0`, 6-8 interleaved rounds): reduce of 128 / 256 / 512
/// KiB in 0.64 / 0.71 / 0.85 of the shared copy's time, but 1 / 2 / 4 MiB in
/// 1.09 / 1.24 / 1.18 (past the L2 cache the data is fetched from farther anyway, and
/// the sender's idle core halves the copy); recursive-doubling allreduce of 128 KiB-1
/// MiB 0.84-0.94, 2-4 MiB 0.97-1.02 (both ranks copy at once there, so neither idles).
pub(crate) const KEEP_WHOLE: usize = 1024 * 1024;

/// Whether `peer` has a message of this rank's to read (an offer of ours awaits its
/// FIN): then its core is busy with that, and a copy shared with it would wait for its
/// help or cost it the Help frame, the claims and its report (see
/// [`Network::splits`]). A 2-rank alltoall of 128 KiB-1 MiB blocks (an exchange, each
/// rank reading the other's block) took 0.77-0.95 of the time with such copies not
/// shared; a scatter, whose root is idle, 1.09-1.20 with none shared. Asked only of
/// copies long enough to share.
pub(super) fn reads_ours(reqs: &requests::Requests, peer: usize) -> bool {
    reqs.any(
        |op| matches!(op, Op::Send(s) if s.peer == peer && matches!(s.phase, SendPhase::AwaitFin)),
    )
}

/// Whether `pull` stays this rank's own copy ([`KEEP_WHOLE`]).
fn kept_whole(pull: &Pull) -> bool {
    pull.keep && pull.dest.len() < KEEP_WHOLE
}

/// Puts `spent`, a queue of the core's taken out and worked off, back in `slot` with
/// its room, unless something was queued there meanwhile: so that the next message
/// (most queue a frame, a read or a help or two) allocates nothing. With the outbox,
/// pulls and batch lists allocated anew, a ping-pong of 8-64 KiB took 1.03-1.14x the
/// time.
fn keep_room<T>(slot: &mut Vec<T>, mut spent: Vec<T>) {
    if slot.is_empty() {
        spent.clear();
        *slot = spent;
    }
}

/// Forwards a transport's "sent" report to the protocol layer.
fn transport_sent(core: &mut Core, token: u64) -> Result<()> {
    crate::transport::Sink::sent(core, token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::network::Route;
    use crate::transport::tcp::Tcp;
    use std::io::Write;

    /// Run by [`an_offer_to_read_over_tcp_allocates_nothing`] in a process of its own:
    /// rank 1, over TCP, offers rank 0 a message of a petabyte "to read in its memory,
    /// within the eager limit" (an RTS with [`flags::SINGLE_COPY`] and
    /// [`flags::BUFFERED`], which no rank sends over TCP). An offer spends its size in
    /// eager credit, so this one is a protocol error, and rank 0 allocates nothing for
    /// it. (Within the credit, nothing can read it over TCP: it would stay an offer.)
    #[test]
    #[ignore = "run by an_offer_to_read_over_tcp_allocates_nothing"]
    fn an_offer_to_read_a_petabyte_over_tcp() {
        let mut boot = Bootstrap::from_env().unwrap();
        (boot.rank, boot.size, boot.nodes) = (0, 2, vec![0, 1]);
        let own = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = own.local_addr().unwrap();
        let secret = [3u8; 16];
        let resolver = Box::new(|_| unreachable!("rank 0 opens nothing"));
        let budget = 64 << 20;
        let credit = credit_per_peer(budget, 2);
        let tcp = Tcp::new(0, 2, secret, own.into(), None, credit, resolver).unwrap();
        let net = Network::new(0, vec![Route::Loopback, Route::Tcp], None, Some(tcp));
        let policy = WaitPolicy::from_env(false).unwrap();
        let boot = Arc::new(Mutex::new(boot));
        let mut eng = Engine::new(boot, net, policy, budget, ErrorMode::Return);
        // Rank 1's hello (magic and protocol version, secret, rank, size, no flags)...
        let mut bytes = b"OXMPI\x03\0\0".to_vec();
        bytes.extend_from_slice(&secret);
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.extend_from_slice(&[0; 8]);
        // ...and its offer, its first numbered frame.
        let remote = RemoteBuf {
            pid: u64::from(std::process::id()),
            addr: 4096,
        };
        let mut rts = Header::new(Kind::Rts);
        rts.flags = flags::SINGLE_COPY | flags::BUFFERED;
        rts.src = 1;
        rts.a = 7;
        rts.b = 1 << 50;
        rts.payload = std::mem::size_of::<RemoteBuf>() as u64;
        bytes.extend_from_slice(bytemuck::bytes_of(&rts));
        bytes.extend_from_slice(bytemuck::bytes_of(&remote));
        let mut peer = std::net::TcpStream::connect(addr).unwrap();
        peer.write_all(&bytes).unwrap();
        let start = Instant::now();
        let detail = loop {
            match eng.progress() {
                Ok(_) => assert!(start.elapsed() < Duration::from_secs(20), "no offer came"),
                Err(Error::Protocol {
                    peer: 1, detail, ..
                }) => break detail,
                Err(e) => panic!("expected a protocol error, got {e}"),
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert!(detail.contains("past its credit"), "{detail}");
        assert!(eng.core.takes.is_empty() && !eng.core.matcher.has_unexpected());
    }

    #[test]
    fn an_offer_to_read_over_tcp_allocates_nothing() {
        crate::alone::passes(crate::alone::command(
            "engine::tests::an_offer_to_read_a_petabyte_over_tcp",
        ));
    }
}
