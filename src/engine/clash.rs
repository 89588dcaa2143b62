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
//! other's: those finish, and no collective of theirs hangs. Ranks whose collectives
//! only receive (a bcast's reader beside ranks in a barrier that sends it nothing)
//! hold none either: each, once idle long enough to ask the launcher for silent
//! peers, also tells it which collectives it runs, and the launcher answers one
//! that another rank runs as a different collective under the same name
//! ([`crate::bootstrap::waits`]).
//!
//! Every message a collective sends a rank is one that rank's part of it receives.
//! So a message of a collective this rank has finished (numbered before one it runs
//! on the same communicator) that waits unreceived shows the ranks disagree on what
//! it sends: an alltoallv's counts, whose empty blocks send nothing, on one side
//! only.

use super::Engine;
use super::requests::{Op, ReqId, Requests};
use super::schedule::{Disagreement, Route};
use crate::bootstrap::waits::{Clash, Wait};
use crate::error::{Error, Rank, Result};

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

    /// A collective started (its route must be compared with every message that
    /// waits) or ended (a message of it that waits is now one of a finished one).
    pub(super) fn collectives_changed(&mut self) {
        self.clash.seen = None;
    }

    /// The collectives this rank runs, as the launcher compares them with the other
    /// ranks'.
    pub(super) fn waits(&self) -> Vec<Wait> {
        running(&self.clash.driving, &self.colls, &self.core.reqs)
            .map(Route::wait)
            .collect()
    }

    /// The error of the launcher's word that world rank `clash.peer` runs another
    /// collective under the name of one this rank runs (`None` if this rank runs none
    /// of that name).
    pub(super) fn told_apart(&self, clash: Clash) -> Option<Error> {
        let (route, mine) = running(&self.clash.driving, &self.colls, &self.core.reqs)
            .map(|r| (r, r.wait()))
            .find(|(_, w)| w.same_name(&clash.theirs))?;
        let peer = route.group.iter().position(|&w| w as usize == clash.peer)?;
        let disagreement = Disagreement::SameNumber {
            mine: mine.code,
            theirs: clash.theirs.code,
        };
        Some(Error::CollectiveMismatch {
            rank: route.group[route.rank] as Rank,
            peer: clash.peer as Rank,
            detail: (route.report)(disagreement, (route.rank, peer)),
        })
    }

    /// Fails (a fatal error) if a message queued unmatched since the last look was
    /// sent in another collective under the number of one this rank runs, or in a
    /// collective of the communicator of one this rank runs that it has finished
    /// (numbered before, and not running here): every message a collective sends a
    /// rank is one that rank's part of it receives, so the two disagree on what it
    /// sends (an alltoallv's counts, whose empty blocks send nothing).
    pub(super) fn check_clashes(&mut self) -> Result<()> {
        let queued = self.core.matcher.queued();
        let since = match self.clash.seen {
            Some(seen) if seen == queued => return Ok(()),
            Some(seen) => seen,
            None => 0,
        };
        self.clash.seen = Some(queued);
        let running = || running(&self.clash.driving, &self.colls, &self.core.reqs);
        for u in self.core.matcher.queued_since(since) {
            let disagreement = running().find_map(|route| {
                if let Some((mine, theirs)) = route.clash(&u.env) {
                    return Some((route, Disagreement::SameNumber { mine, theirs }));
                }
                let theirs = route.earlier(&u.env)?;
                let finished = !running().any(|r| r.same_number(&u.env));
                finished.then_some((route, Disagreement::Finished { theirs }))
            });
            if let Some((route, disagreement)) = disagreement {
                let peer = u.env.src as usize;
                return Err(Error::CollectiveMismatch {
                    rank: route.group[route.rank] as Rank,
                    peer: u.peer as Rank,
                    detail: (route.report)(disagreement, (route.rank, peer)),
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
        Route::new((7, 1), seq, kind, (0, Arc::from([0u32, 1])), |_, _| {
            String::new()
        })
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
