//! Ranks that run different collectives as the same collective of a communicator
//! (rank 0 a bcast where rank 1 runs a reduce, say), or one collective by algorithms
//! whose messages differ (their counts disagree). Over messages, each would wait for
//! messages the other never sends; instead the job ends with a report naming both.
//!
//! A collective's messages carry its number on the communicator and the code of
//! which collective it is and how it runs ([`Route`]). A message of another collective under the
//! number of one this rank runs lands among the unexpected messages, since no
//! receive of this rank's collective matches it; a rank with nothing left to progress
//! looks there before it waits any longer. It looks only at the messages queued since
//! its last look, unless the collectives it runs changed since (a message may have
//! come before its collective started here). The ranks of a collective whose
//! messages all go one way (a bcast's root beside a reduce's root) never hold each
//! other's: those finish, and no collective of theirs hangs.
//!
//! Ranks that only wait to receive in their mismatched collectives (a bcast's reader
//! beside ranks in a barrier that sends it nothing) hold no message of the other's
//! either. So a rank whose wait in a collective has been idle a while (when it asks
//! the launcher for silent peers: after 100 ms, then at doubling gaps of at most a
//! second, see `silent_peers.rs`) tells every other rank of the communicator which
//! collective it waits in ([`Kind::Waiting`]), and a rank compares what it was told,
//! as it compares the messages, with the collectives it runs. Each rank keeps the
//! latest word of each peer on each communicator, for [`KEPT_FOR`] (the peer repeats
//! it while it waits), so a word about a collective long finished is never compared
//! with a later one that shares its number.
//!
//! [`Kind::Waiting`]: crate::transport::frame::Kind::Waiting

use std::time::{Duration, Instant};

use super::Engine;
use super::matching::Envelope;
use super::protocol::control;
use super::requests::{Op, ReqId, Requests};
use super::schedule::Route;
use crate::error::{Error, Rank, Result};
use crate::transport::frame::Kind;

/// How long a peer's word that it waits in a collective counts (it says it again at
/// least every second while it waits).
const KEPT_FOR: Duration = Duration::from_secs(5);

/// A peer's word that it waits in a collective.
struct Waiting {
    /// Its world rank.
    peer: usize,
    /// The collective's context, the peer's rank in the communicator and the route's
    /// tag, as its messages would carry them.
    env: Envelope,
    /// The collective's whole number.
    seq: u32,
    at: Instant,
}

/// What other ranks said they wait in, kept by the engine's core (which reads the
/// frames).
#[derive(Default)]
pub(crate) struct Told {
    waits: Vec<Waiting>,
    /// Whether a word came since the last look.
    fresh: bool,
}

impl Told {
    /// World rank `peer` waits in collective number `seq` of the route `env` holds.
    pub(crate) fn waiting(&mut self, peer: usize, env: Envelope, seq: u32) {
        self.waits
            .retain(|w| !(w.peer == peer && w.env.ctx == env.ctx));
        self.waits.push(Waiting {
            peer,
            env,
            seq,
            at: Instant::now(),
        });
        self.fresh = true;
    }

    /// The communicator of collective context `ctx` is gone here: a later one given
    /// the context starts its numbers over.
    pub(crate) fn forget(&mut self, ctx: u32) {
        self.waits.retain(|w| w.env.ctx != ctx);
    }
}

/// The collectives this rank runs: the blocking one it waits in, if any, and the
/// nonblocking ones in flight (`colls`).
fn running<'a>(
    driving: &'a Option<Route>,
    colls: &'a [ReqId],
    reqs: &'a Requests,
) -> impl Iterator<Item = &'a Route> {
    let nonblocking = colls.iter().filter_map(|&id| match reqs.get(id) {
        Some(Op::Coll(sched)) => Some(sched.route()),
        _ => None,
    });
    driving.iter().chain(nonblocking)
}

/// What this rank has looked at.
#[derive(Default)]
pub(crate) struct Watch {
    /// The blocking collective this rank drives, if it waits in one.
    driving: Option<Route>,
    /// How many messages had been queued unmatched at the last look ([`None`]: look
    /// at all of them next time: the collectives to compare with changed).
    seen: Option<u64>,
}

impl Engine {
    /// Watches, besides the nonblocking collectives in flight, the blocking one
    /// whose schedule takes `route` (or none) for messages of another collective.
    pub(crate) fn watch_driving(&mut self, route: Option<Route>) {
        if route.is_some() {
            self.clash.seen = None;
        }
        self.clash.driving = route;
    }

    /// A collective was started (its route must be compared with every message
    /// that waits).
    pub(super) fn collective_started(&mut self) {
        self.clash.seen = None;
    }

    /// A wait (or a loop of tests) has been idle a while, long enough to ask the
    /// launcher for silent peers: asks, and says which collectives this rank waits
    /// in ([`Engine::say_waiting`]). Returns whether it learnt of silent peers.
    pub(super) fn idle_a_while(&mut self) -> Result<bool> {
        let learnt = self.ask_for_silent_peers()?;
        self.say_waiting();
        self.flush_outbox()?;
        Ok(learnt)
    }

    /// Tells every other rank of the communicator of each collective this rank runs
    /// (the blocking one it waits in, the nonblocking ones in flight) that it waits in
    /// it, but the ranks known to have finalized.
    fn say_waiting(&mut self) {
        for route in running(&self.clash.driving, &self.colls, &self.core.reqs) {
            for (r, &world) in route.group.iter().enumerate() {
                let world = world as usize;
                if r == route.rank || self.core.finalized.has(world) {
                    continue;
                }
                let mut frame = control(Kind::Waiting, u64::from(route.seq), 0);
                frame.hdr.ctx = route.ctx;
                frame.hdr.src = route.rank as i32;
                frame.hdr.tag = route.tag;
                self.core.outbox.push((world, frame));
            }
        }
    }

    /// Fails (a fatal error) if a message queued unmatched since the last look was
    /// sent in another collective under the number of one this rank runs, or a peer
    /// said it waits in another collective under that number.
    pub(super) fn check_clashes(&mut self) -> Result<()> {
        self.check_told()?;
        let queued = self.core.matcher.queued();
        let since = match self.clash.seen {
            Some(seen) if seen == queued => return Ok(()),
            Some(seen) => seen,
            None => 0,
        };
        self.clash.seen = Some(queued);
        for route in running(&self.clash.driving, &self.colls, &self.core.reqs) {
            let clash = self
                .core
                .matcher
                .queued_since(since)
                .find_map(|u| Some((u, route.clash(&u.env)?)));
            if let Some((u, (mine, theirs))) = clash {
                let peer = u.env.src as usize;
                return Err(Error::CollectiveMismatch {
                    rank: route.group[route.rank] as Rank,
                    peer: u.peer as Rank,
                    detail: (route.report)(mine, theirs, (route.rank, peer)),
                });
            }
        }
        Ok(())
    }

    /// [`Engine::check_clashes`] for what peers said they wait in, when a word came or
    /// the collectives to compare with changed since the last look.
    fn check_told(&mut self) -> Result<()> {
        let told = &mut self.core.told;
        if !told.fresh && self.clash.seen.is_some() {
            return Ok(());
        }
        told.fresh = false;
        let now = Instant::now();
        told.waits.retain(|w| now - w.at < KEPT_FOR);
        for route in running(&self.clash.driving, &self.colls, &self.core.reqs) {
            let clash = told
                .waits
                .iter()
                // The same collective of the same communicator: the peer is its
                // member at the rank it gave (a communicator given a context again
                // may hold other ranks).
                .filter(|w| {
                    w.seq == route.seq
                        && route.group.get(w.env.src as usize) == Some(&(w.peer as u32))
                })
                .find_map(|w| Some((w, route.clash(&w.env)?)));
            if let Some((w, (mine, theirs))) = clash {
                return Err(Error::CollectiveMismatch {
                    rank: route.group[route.rank] as Rank,
                    peer: w.peer as Rank,
                    detail: (route.report)(mine, theirs, (route.rank, w.env.src as usize)),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::matching::Envelope;

    fn route(seq: u32, kind: u8) -> Route {
        Route::new(7, seq, kind, (0, Arc::from([0u32, 1])), |_, _, _| {
            String::new()
        })
    }

    #[test]
    fn a_peer_s_latest_word_on_each_communicator_is_kept() {
        let mut told = Told::default();
        let env = |ctx, seq| Envelope {
            ctx,
            src: 1,
            tag: route(seq, 3).tag,
        };
        told.waiting(4, env(7, 10), 10);
        told.waiting(4, env(9, 2), 2);
        told.waiting(5, env(7, 10), 10);
        // A later word of peer 4 on context 7 replaces its earlier one.
        told.waiting(4, env(7, 11), 11);
        let words = |t: &Told| {
            let mut w: Vec<_> = t.waits.iter().map(|w| (w.peer, w.env.ctx, w.seq)).collect();
            w.sort();
            w
        };
        assert_eq!(words(&told), [(4, 7, 11), (4, 9, 2), (5, 7, 10)]);
        assert!(told.fresh);
        told.forget(7);
        assert_eq!(words(&told), [(4, 9, 2)]);
    }

    #[test]
    fn only_another_collective_under_the_same_number_clashes() {
        let mine = route(41, 3);
        let env = |r: &Route, ctx| Envelope {
            ctx,
            src: 1,
            tag: r.tag,
        };
        assert_eq!(mine.clash(&env(&mine, 7)), None, "the same collective");
        assert_eq!(mine.clash(&env(&route(42, 5), 7)), None, "the next one");
        assert_eq!(
            mine.clash(&env(&route(41, 5), 8)),
            None,
            "another communicator"
        );
        assert_eq!(mine.clash(&env(&route(41, 5), 7)), Some((3, 5)));
        // The number wraps within the tag, which stays a valid one.
        let late = route(u32::MAX, 63);
        assert!(late.tag >= 0);
        assert_eq!(
            late.clash(&env(&route(u32::MAX, 0), 7)).map(|c| c.1),
            Some(0)
        );
    }
}
