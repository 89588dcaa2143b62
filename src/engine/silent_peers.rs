//! Peers that finalized without saying goodbye to this rank, and peers that died.
//!
//! A finalizing rank says goodbye only on links it has (see [`super::finalized`]):
//! over TCP, a peer it never exchanged a message with hears nothing, and would wait
//! for ever for a message from it. So a finalizing rank also tells the launcher which
//! ranks it has no link to (oxrun's finalize extension, see [`crate::bootstrap`]),
//! and a rank whose wait has been idle for [`FIRST_ASK`] asks the launcher which
//! ranks finalized without a link to it, then again at doubling intervals up to
//! [`MAX_GAP`] while the wait stays idle. Nothing can come from such a rank: it never
//! sent this rank anything (every send opens or answers a connection, which makes a
//! link), and once finalizing it writes at most the hello that answers a connection
//! of this rank's, never a frame that completes anything. So what only it could
//! complete fails as if its goodbye had arrived.
//!
//! The same answer names a rank that ended without finalize, once the launcher saw
//! one end: the asking rank then fails with [`Error::PeerLost`] (its wait may never
//! end otherwise: a peer on shared memory, or one over TCP it has no connection to,
//! can die without this rank noticing). In return-errors mode the program gets that
//! error rather than waiting until the launcher's teardown kills it. The question
//! also says which collectives the rank runs, and the answer may name a rank that
//! runs another one under the same name (see `clash.rs`). A blocking wait about to
//! sleep also says, where nothing of the rank's own is on its way to a peer, which
//! idle spell it is in ([`Watch::spell`]): the launcher ends a job whose every rank
//! stays blocked through the same window (`launcher/src/deadlock.rs`). A loop of
//! `test` calls never says so: the program may do anything between two calls.
//!
//! Every rank under oxrun asks; a wait
//! counts its idle time from its start and reads the clock only before it sleeps
//! (after its spin and yield phases), a loop of `test` calls every
//! [`POLLS_PER_CLOCK`] idle calls. Any progress counts as activity, also traffic that
//! does not concern the wait; so a rank that never idles that long (a wait fed by
//! other traffic, a server loop of short waits) asks once [`MAX_GAP`] has passed
//! since it last asked, reading the clock every [`MOVES_PER_CLOCK`] moving passes.
//! The launcher keeps each finalizing rank's list as
//! ranges and scans every rank's list per question: fine for the jobs one machine
//! runs, quadratic in the rank count for very large ones.

use std::time::{Duration, Instant};

use super::Engine;
use super::context;
use super::matching::Pattern;
use super::requests::Op;
use crate::bootstrap::waits::{Blocked, Pending};
use crate::error::{Error, Rank, Result};

/// Idle time of a wait before its first question to the launcher.
const FIRST_ASK: Duration = Duration::from_millis(100);
/// Longest interval between questions while a wait stays idle.
const MAX_GAP: Duration = Duration::from_secs(1);
/// Idle `test` calls between clock reads.
const POLLS_PER_CLOCK: u32 = 1024;
/// Progress passes that moved something between clock reads (a wait that keeps
/// receiving other traffic never goes idle).
const MOVES_PER_CLOCK: u32 = 1024;

/// What a blocking probe waits for, as a deadlock report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probing {
    /// A probe (`probe`, `mprobe`).
    Probe,
    /// A receive that probes first to learn the message's length (`recv_vec`).
    Receive,
}

/// When an idle rank next asks the launcher for peers that finalized without a link
/// to it, or died.
pub(crate) struct Watch {
    /// Whether this rank asks at all (the launcher can tell).
    enabled: bool,
    /// When the rank went idle (at the first clock read since it last moved).
    since: Option<Instant>,
    /// Idle time at which it asks next.
    next: Duration,
    /// Idle `test` calls since the last clock read.
    polls: u32,
    /// Passes that moved something since the last clock read.
    moves: u32,
    /// When this rank last asked, or was first seen on the clock since: a rank that
    /// keeps moving (a server loop of short waits fed by other ranks' traffic) still
    /// asks every [`MAX_GAP`].
    busy_mark: Option<Instant>,
    /// Waits started and answers that taught the rank something: with `moves`, the
    /// current idle spell ([`Watch::spell`]).
    turns: u32,
    /// What the blocking probe this rank waits in matches, and what for, if it waits
    /// in one (named among its pending operations, [`Engine::waiting_to_probe`]).
    probing: Option<(Pattern, Probing)>,
    /// The rank waits at the end of an `oxmpi::scope` for operations its closure
    /// left in flight ([`Engine::waiting_at_scope_end`]).
    scope_end: bool,
}

impl Watch {
    pub(crate) fn new(enabled: bool) -> Watch {
        Watch {
            enabled,
            since: None,
            next: FIRST_ASK,
            polls: 0,
            moves: 0,
            busy_mark: None,
            turns: 0,
            probing: None,
            scope_end: false,
        }
    }

    /// The current idle spell. The launcher is told it with every question a blocking
    /// wait asks before it sleeps with nothing of its own on the way to its peers
    /// (`idle=`): two questions with the same spell mean that nothing moved in
    /// between, and once every rank of the job has been in one spell for a while,
    /// nothing ever will (see `launcher/src/deadlock.rs`).
    pub(crate) fn spell(&self) -> u64 {
        // Counted apart so that a pass that moved adds nothing to count it: the moves
        // are counted anyway (a ping-pong of 1 B-1 KiB took 1.04x the time with a
        // spell counter of its own, 16 interleaved rounds each way).
        u64::from(self.turns) << 32 | u64::from(self.moves)
    }

    /// An answer taught the rank something (a peer finalized): a new spell, so that
    /// the launcher does not take the question for one of a rank that stays blocked.
    pub(crate) fn learnt(&mut self) {
        self.turns = self.turns.wrapping_add(1);
    }

    /// A wait starts: its idle time counts from now on.
    pub(crate) fn start(&mut self) {
        self.turns = self.turns.wrapping_add(1);
        self.since = None;
        self.next = FIRST_ASK;
        self.polls = 0;
    }

    /// Something moved: the rank is not idle. Whether to ask all the same: [`MAX_GAP`]
    /// has passed since the rank last asked or was first seen on the clock after
    /// that (read every [`MOVES_PER_CLOCK`] calls).
    #[inline]
    pub(crate) fn moved(&mut self) -> bool {
        if self.since.is_some() {
            self.start();
        }
        self.moves = self.moves.wrapping_add(1);
        self.enabled && self.moves.is_multiple_of(MOVES_PER_CLOCK) && self.busy_due(Instant::now())
    }

    /// A wait is about to sleep: whether to ask first.
    pub(crate) fn due_before_sleep(&mut self) -> bool {
        if !self.enabled {
            return false;
        }
        self.due_either(Instant::now())
    }

    /// A `test` call moved nothing: whether to ask.
    #[inline]
    pub(crate) fn due_after_poll(&mut self) -> bool {
        if !self.enabled {
            return false;
        }
        self.polls += 1;
        self.polls.is_multiple_of(POLLS_PER_CLOCK) && self.due_either(Instant::now())
    }

    /// Whether to ask by either clock: idle time, or time since the last question
    /// (idle spells that other traffic keeps cutting short never reach the first).
    fn due_either(&mut self, now: Instant) -> bool {
        if self.due(now) {
            // A question answers for the busy clock too.
            self.busy_mark = Some(now);
            return true;
        }
        self.busy_due(now)
    }

    /// Whether [`MAX_GAP`] has passed since the busy mark (set now if unset), moving
    /// the mark to now if so.
    fn busy_due(&mut self, now: Instant) -> bool {
        let mark = *self.busy_mark.get_or_insert(now);
        if now - mark < MAX_GAP {
            return false;
        }
        self.busy_mark = Some(now);
        true
    }

    fn due(&mut self, now: Instant) -> bool {
        let idle = now - *self.since.get_or_insert(now);
        if idle < self.next {
            return false;
        }
        // The idle time doubles between questions until they are MAX_GAP apart.
        self.next = idle + idle.clamp(FIRST_ASK, MAX_GAP);
        true
    }
}

impl Engine {
    /// Asks the launcher which ranks finalized without a link to this one and fails
    /// what only they could complete. Returns whether it learnt of any; fails with
    /// [`Error::PeerLost`] when the launcher saw a rank end without finalize, and
    /// with [`Error::CollectiveMismatch`] when it says another rank runs a different
    /// collective under the name of one this rank runs (told with the question, see
    /// `clash.rs`).
    pub(crate) fn ask_for_silent_peers(&mut self) -> Result<bool> {
        self.ask(None)
    }

    /// [`Engine::ask_for_silent_peers`] from a blocking wait about to sleep: also says
    /// that the rank is blocked, in its current idle spell, where nothing of its own
    /// is on the way to a peer (sent but not yet taken in: the launcher counts on
    /// every message sent before a spell having arrived where it goes).
    pub(crate) fn ask_while_blocked(&mut self) -> Result<bool> {
        let idle = self.quiet().then(|| Blocked {
            spell: self.silent.spell(),
            pending: self.pending(),
            scope_end: self.silent.scope_end,
        });
        self.ask(idle)
    }

    /// The point-to-point operations of user communicators this rank waits for (the
    /// launcher names them in its report of a deadlocked job): a blocking probe,
    /// posted receives, and sends that wait for their receive (the question carries
    /// [`MAX_PENDING`](crate::bootstrap::waits::MAX_PENDING) of them and the count of
    /// the others).
    fn pending(&self) -> Vec<Pending> {
        let core = &self.core;
        let probe = self
            .silent
            .probing
            .filter(|(p, _)| !context::is_collective(p.ctx()))
            .map(|(p, probing)| {
                let (from, tag) = (p.from(), p.tag());
                match probing {
                    Probing::Probe => Pending::Probe { from, tag },
                    Probing::Receive => Pending::Recv { from, tag },
                }
            });
        let receives = core
            .matcher
            .posted_patterns()
            .filter(|p| !context::is_collective(p.ctx()))
            .map(|p| Pending::Recv {
                from: p.from(),
                tag: p.tag(),
            });
        let user_send = |op: &Op| matches!(op, Op::Send(s) if !context::is_collective(s.env.ctx));
        let sends =
            core.reqs
                .ids_where(user_send)
                .into_iter()
                .filter_map(|id| match core.reqs.get(id) {
                    Some(Op::Send(s)) => Some(Pending::Send {
                        to: s.peer,
                        tag: s.env.tag,
                    }),
                    _ => None,
                });
        probe.into_iter().chain(receives).chain(sends).collect()
    }

    /// Runs `wait`, a blocking probe's wait for a message matching `pattern`, with the
    /// probe named among this rank's pending operations, as `probing` says.
    pub(super) fn waiting_to_probe<R>(
        &mut self,
        pattern: &Pattern,
        probing: Probing,
        wait: impl FnOnce(&mut Engine) -> R,
    ) -> R {
        let outer = self.silent.probing.replace((*pattern, probing));
        let waited = wait(self);
        self.silent.probing = outer;
        waited
    }

    /// Runs `wait`, the end of an `oxmpi::scope` waiting for operations its closure
    /// left in flight, with the rank's report saying so: a closure that returned
    /// before waiting for them (by `?` on an error, say) is a likely cause of a
    /// deadlock there, and what it returned comes out only once the wait ends.
    pub(crate) fn waiting_at_scope_end<R>(&mut self, wait: impl FnOnce(&mut Engine) -> R) -> R {
        let outer = std::mem::replace(&mut self.silent.scope_end, true);
        let waited = wait(self);
        self.silent.scope_end = outer;
        waited
    }

    /// Whether nothing of this rank's waits to go: no frame in the outbox or the
    /// transports' queues.
    pub(super) fn sends_nothing(&self) -> bool {
        self.core.outbox.is_empty() && self.net.sends_nothing()
    }

    /// Whether nothing of this rank's is on its way to a peer or waits to go (see
    /// [`Engine::ask_while_blocked`]): [`Engine::sends_nothing`], every byte written
    /// to a socket acknowledged, no copy of its own or a helper's under way.
    fn quiet(&self) -> bool {
        let core = &self.core;
        self.sends_nothing()
            && core.pulls.is_empty()
            && core.helps.is_empty()
            && core.shared.is_empty()
            && self.net.settled()
    }

    fn ask(&mut self, idle: Option<Blocked>) -> Result<bool> {
        if self.core.finalizing {
            // Waiting in the finalize fence: the PMI connection belongs to it, and a
            // finalizing rank fails nothing.
            return Ok(false);
        }
        let waits = self.waits();
        let silent = {
            let mut boot = self
                .boot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            boot.silent_peers(&waits, idle)?
        };
        let Some(silent) = silent else {
            self.silent = Watch::new(false);
            return Ok(false);
        };
        if let Some(peer) = silent.lost {
            return Err(Error::PeerLost {
                rank: self.core.me as Rank,
                peer: peer as Rank,
                detail: format!("rank {peer} ended without finalize (the launcher saw it end)"),
            });
        }
        if let Some(e) = silent.clash.and_then(|c| self.told_apart(c)) {
            return Err(e);
        }
        let mut learnt = false;
        for peer in silent.finalized {
            if peer != self.core.me && !self.core.finalized.has(peer) {
                self.core.peer_finalized(peer);
                learnt = true;
            }
        }
        if learnt {
            self.silent.learnt();
        }
        Ok(learnt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_after_the_first_idle_spell_then_at_doubling_gaps() {
        let mut w = Watch::new(true);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert!(!w.due(t0) && !w.due(at(99)));
        assert!(w.due(at(100)) && !w.due(at(150)));
        assert!(w.due(at(200)) && !w.due(at(350)));
        assert!(w.due(at(400)));
        assert!(w.due(at(5000)) && !w.due(at(5999)) && w.due(at(6000)));
        w.moved();
        assert!(w.since.is_none() && w.next == FIRST_ASK);
    }

    #[test]
    fn a_wait_that_keeps_moving_asks_once_a_gap() {
        let mut w = Watch::new(true);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert!(!w.busy_due(t0) && !w.busy_due(at(999)));
        assert!(w.busy_due(at(1000)) && !w.busy_due(at(1999)) && w.busy_due(at(2000)));
        // Moves read the clock only every MOVES_PER_CLOCK calls; a new wait keeps the
        // mark (a loop of short waits is as busy as one long one).
        let mut w = Watch::new(true);
        for _ in 0..MOVES_PER_CLOCK - 1 {
            assert!(!w.moved());
        }
        assert!(w.busy_mark.is_none());
        assert!(!w.moved(), "the first clock read only sets the mark");
        let mark = w.busy_mark;
        w.start();
        assert!(mark.is_some() && w.busy_mark == mark);
    }

    #[test]
    fn the_spell_changes_with_every_wait_move_and_lesson() {
        let mut w = Watch::new(true);
        let mut last = w.spell();
        let mut changed = |w: &Watch| {
            let new = w.spell() != last;
            last = w.spell();
            new
        };
        w.start();
        assert!(changed(&w));
        assert!(
            !w.due_before_sleep() && !changed(&w),
            "idle time alone keeps it"
        );
        w.moved();
        assert!(changed(&w));
        w.learnt();
        assert!(changed(&w));
        for _ in 0..2 * POLLS_PER_CLOCK {
            w.due_after_poll();
        }
        assert!(!changed(&w), "idle test calls keep it");
    }

    #[test]
    fn a_disabled_watch_never_asks() {
        let mut w = Watch::new(false);
        for _ in 0..4 * POLLS_PER_CLOCK {
            assert!(!w.due_after_poll() && !w.moved());
        }
        assert!(!w.due_before_sleep());
    }
}
