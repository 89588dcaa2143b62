//! Communicators (MPI's groups-and-communicators chapter): [`Comm`] with rank, size,
//! [`Comm::dup`], [`Comm::split`] and [`Comm::abort`].
//!
//! A communicator is a context-id pair plus the world rank of each of its ranks.
//! Handles are cheap clones of one shared communicator; its context ids are released
//! when the last handle goes. Invariant: every rank of a communicator agrees on its
//! context ids and on the order of its collectives (the collective tag sequence).

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::coll::learned::Runs;
use crate::coll::select::{Algorithm, Collective};
use crate::engine::{self, context, context::ContextIds, context::MASK_WORDS, schedule};
use crate::error::{Error, Rank, Result, Tag};
use crate::status::{TAG_UB, TagSel};

struct Inner {
    pair: u32,
    rank: Rank,
    size: i32,
    /// World rank of each rank of this communicator.
    group: Arc<[u32]>,
    /// Sequence number of the next collective (its tag).
    coll_seq: AtomicU32,
    /// The same on every member, and another on a later communicator given the same
    /// context ids: with a collective's context and number, its name among all of the
    /// job's collectives ([`crate::bootstrap::waits`]).
    incarnation: u64,
    /// The slot in the node's collective area of each rank, if the ranks are exactly
    /// those of one node (found at the first collective that asks).
    node: OnceLock<Option<Box<[usize]>>>,
    /// The ways of this communicator's next learned collectives, decided in runs
    /// (`coll/learned.rs`).
    learned_runs: Mutex<Runs>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.pair == 0 {
            return;
        }
        if engine::callable_here() {
            let _ = engine::with_in_drop(|e| {
                e.drop_pair(self.pair);
                Ok(())
            });
        } else if engine::is_running() {
            // On another thread, or inside an oxmpi call: the owner releases it later.
            engine::orphan_pair(self.pair);
        }
        // After finalize there is nothing left to release.
    }
}

/// A communicator: a group of ranks and a private channel among them
/// (`MPI_Comm`).
///
/// Cloning gives another handle to the same communicator. `Comm` is `Send` but not
/// `Sync`: one thread at a time uses a handle.
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// let evens_and_odds = world.split(world.rank() % 2, world.rank())?.expect("has a color");
/// assert!(evens_and_odds.size() <= world.size());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Comm {
    inner: Arc<Inner>,
    _not_sync: PhantomData<Cell<()>>,
}

impl std::fmt::Debug for Comm {
    /// The rank, the size and the context ids (not the group, which may be long).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Comm")
            .field("rank", &self.inner.rank)
            .field("size", &self.inner.size)
            .field("context", &self.inner.pair)
            .finish_non_exhaustive()
    }
}

/// The color of a [`Comm::split`]: ranks with the same color form one new
/// communicator; [`Color::Undefined`] ranks get none (`MPI_UNDEFINED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    /// Join the communicator of this color (non-negative).
    Of(i32),
    /// Join no new communicator.
    Undefined,
}

impl From<i32> for Color {
    fn from(c: i32) -> Color {
        Color::Of(c)
    }
}

/// A split's color word for [`Color::Undefined`].
const UNDEFINED: i32 = -1;
/// A split's color word for a negative color, which every rank refuses.
const NEGATIVE: i32 = i32::MIN;

/// The incarnation of the communicator of ranks of colour `color` split from one of
/// incarnation `parent` by its collective number `number`: every member computes the
/// same, and communicators split from the same parent at other numbers or with other
/// colours, or from other parents, get others (but with chance 2^-64), and none
/// gets its parent's.
fn incarnation(parent: u64, number: u32, color: i32) -> u64 {
    // splitmix64's finalizer, a bijection, over the parent's and then over the split.
    let mix = |mut h: u64| {
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    };
    // The constant (the golden ratio's bits) keeps a child from sharing its parent's
    // incarnation: without it the world's (0) and its first split's word (0) gave
    // its first child 0 too, the world's own.
    let split = u64::from(number) << 32 | u64::from(color as u32);
    mix(mix(parent) ^ split ^ 0x9e37_79b9_7f4a_7c15)
}

/// What each rank contributes to a split: its color, key and free context ids.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SplitEntry {
    color: i32,
    key: i32,
    free: [u64; MASK_WORDS],
}

impl Comm {
    pub(crate) fn world(rank: usize, size: usize) -> Comm {
        Comm::new((0, 0), rank as Rank, (0..size as u32).collect())
    }

    fn new((pair, incarnation): (u32, u64), rank: Rank, group: Arc<[u32]>) -> Comm {
        let size = group.len() as i32;
        Comm {
            inner: Arc::new(Inner {
                pair,
                rank,
                size,
                group,
                coll_seq: AtomicU32::new(0),
                incarnation,
                node: OnceLock::new(),
                learned_runs: Mutex::new(Runs::default()),
            }),
            _not_sync: PhantomData,
        }
    }

    /// This process's rank in the communicator (`MPI_Comm_rank`).
    pub fn rank(&self) -> Rank {
        self.inner.rank
    }

    /// Number of ranks in the communicator (`MPI_Comm_size`).
    pub fn size(&self) -> i32 {
        self.inner.size
    }

    /// Context id of point-to-point traffic.
    pub(crate) fn p2p_ctx(&self) -> u32 {
        self.inner.pair * 2
    }

    /// The world rank of each rank of this communicator.
    pub(crate) fn group(&self) -> &[u32] {
        &self.inner.group
    }

    /// World rank of `rank`, which must be valid.
    // This and the tag checks are inlined: a `Result` of theirs came back through
    // memory (`Error` is 32 bytes), and every receive read it back with a wider load
    // than the stores that wrote it (`bw` of 1-64 B 1.12-1.13x the message rate in
    // the fast phase; docs/benchmarks.md).
    #[inline]
    pub(crate) fn world_rank(&self, rank: Rank) -> Result<usize> {
        if rank < 0 || rank >= self.inner.size {
            return Err(Error::InvalidRank {
                rank,
                size: self.inner.size,
            });
        }
        Ok(self.inner.group[rank as usize] as usize)
    }

    #[inline]
    pub(crate) fn check_tag(tag: Tag) -> Result<Tag> {
        if !(0..=TAG_UB).contains(&tag) {
            return Err(Error::InvalidTag { tag });
        }
        Ok(tag)
    }

    #[inline]
    pub(crate) fn check_tag_sel(tag: TagSel) -> Result<TagSel> {
        if let TagSel::Tag(t) = tag {
            Comm::check_tag(t)?;
        }
        Ok(tag)
    }

    /// Where the messages of the next collective, `coll` run by `alg`, go; every rank
    /// must call this once per collective, in the same order.
    pub(crate) fn next_coll_route(&self, coll: Collective, alg: Algorithm) -> schedule::Route {
        let seq = self.take_coll_seq();
        self.coll_route(seq, coll, alg)
    }

    /// Where the messages of collective number `seq`, `coll` run by `alg`, go.
    pub(crate) fn coll_route(&self, seq: u32, coll: Collective, alg: Algorithm) -> schedule::Route {
        schedule::Route::new(
            (self.inner.pair * 2 + 1, self.inner.incarnation),
            seq,
            coll.route_code(alg),
            (self.inner.rank as usize, Arc::clone(&self.inner.group)),
            Collective::clash_report,
        )
    }

    /// Uses up the next collective's tag without sending anything (for a collective
    /// that meets in the node's area instead); returns its number.
    pub(crate) fn skip_coll_route(&self) -> u32 {
        self.take_coll_seq()
    }

    /// The next collective's number. Only the thread that owns the engine takes one,
    /// so a load and a store do: a locked add would also drain this core's store
    /// buffer, making the next collective wait for the last one's published lines to
    /// reach the other cores. A call from another thread, or from inside a call (a
    /// reduction's closure), fails at its first access to the engine, and must not
    /// use up the number of the owner's next collective.
    fn take_coll_seq(&self) -> u32 {
        let seq = self.inner.coll_seq.load(Ordering::Relaxed);
        if engine::callable_here() {
            self.inner
                .coll_seq
                .store(seq.wrapping_add(1), Ordering::Relaxed);
        }
        seq
    }

    /// The blocking `coll` that just ended, successfully if `ok`: if its way was
    /// learned (`coll/learned.rs`), rank 0 learns from its time.
    pub(crate) fn learned_call_done(&self, coll: Collective, ok: bool) {
        let way = self.learned_runs().take_way(coll);
        if let Some(way) = way {
            way.done(ok);
        }
    }

    /// The ways of this communicator's next learned collectives (`coll/learned.rs`).
    pub(crate) fn learned_runs(&self) -> MutexGuard<'_, Runs> {
        // Nothing panics while holding it, so the lock is never poisoned; were it,
        // its runs are still whole.
        self.inner
            .learned_runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Each rank's index in the node's collective area, if this communicator's ranks
    /// are exactly the ranks of one node (and more than one): then its short blocking
    /// collectives may meet there (see `src/coll/shared_memory.rs`).
    #[inline(always)]
    pub(crate) fn node_indices(&self) -> Result<Option<&[usize]>> {
        if let Some(found) = self.inner.node.get() {
            return Ok(found.as_deref());
        }
        let found = if self.inner.size < 2 {
            None
        } else {
            engine::with(|e| Ok(e.net.node_indices(&self.inner.group)))?
        };
        Ok(self
            .inner
            .node
            .get_or_init(|| found.map(Vec::into_boxed_slice))
            .as_deref())
    }

    /// A new communicator with the same ranks and a private channel (`MPI_Comm_dup`).
    /// Collective over this communicator. A process holds at most 4096 communicators
    /// at once, the world included; past that every rank gets
    /// [`Error::TooManyCommunicators`] (see [`Comm::split`]).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let library_comm = world.dup()?;
    /// assert_eq!((library_comm.rank(), library_comm.size()), (world.rank(), world.size()));
    /// # Ok(()) }
    /// ```
    pub fn dup(&self) -> Result<Comm> {
        let comm = self.split(0, self.rank())?;
        Ok(comm.expect("every rank has color 0"))
    }

    /// Partitions the ranks by `color`, ordering each part by `key` then by rank here
    /// (`MPI_Comm_split`). Returns `None` for [`Color::Undefined`]. Collective over this
    /// communicator; context ids are agreed among the ranks, without a server.
    ///
    /// A negative color is an [`Error::InvalidArgument`] on every rank, naming the rank
    /// that gave it (the ranks still meet, so none waits for it). Where no pair of
    /// context ids is free on every rank (the ranks' live communicators hold all 4096
    /// between them), every rank gets [`Error::TooManyCommunicators`] (a dropped
    /// communicator gives its pair back once nothing pending uses it).
    pub fn split(&self, color: impl Into<Color>, key: i32) -> Result<Option<Comm>> {
        // A negative color travels as NEGATIVE, the color in the key's place.
        let (color, key) = match color.into() {
            Color::Of(c) if c < 0 => (NEGATIVE, c),
            Color::Of(c) => (c, key),
            Color::Undefined => (UNDEFINED, key),
        };
        let free = engine::with(|e| Ok(e.free_pairs()))?;
        let mine = SplitEntry { color, key, free };
        // The allgather below is this communicator's collective of this number on
        // every rank.
        let number = self.inner.coll_seq.load(Ordering::Relaxed);
        let mut all = vec![
            SplitEntry {
                color: 0,
                key: 0,
                free: [0; MASK_WORDS]
            };
            self.size() as usize
        ];
        self.allgather(std::slice::from_ref(&mine), &mut all)?;
        if let Some((r, e)) = all.iter().enumerate().find(|(_, e)| e.color == NEGATIVE) {
            return Err(Error::InvalidArgument(format!(
                "split: rank {r} gave color {}, which is negative (Color::Undefined joins no communicator)",
                e.key
            )));
        }
        let mut common = [u64::MAX; MASK_WORDS];
        for entry in &all {
            for (c, f) in common.iter_mut().zip(entry.free) {
                *c &= f;
            }
        }
        let pair = ContextIds::lowest(&common).ok_or(Error::TooManyCommunicators {
            limit: context::PAIRS,
        })?;
        if color < 0 {
            return Ok(None);
        }
        let mut members: Vec<(i32, usize)> = all
            .iter()
            .enumerate()
            .filter(|(_, e)| e.color == color)
            .map(|(r, e)| (e.key, r))
            .collect();
        members.sort();
        let my_rank = members
            .iter()
            .position(|&(_, r)| r == self.rank() as usize)
            .expect("own entry");
        let group: Arc<[u32]> = members.iter().map(|&(_, r)| self.inner.group[r]).collect();
        engine::with(|e| {
            e.ctx_ids.claim(pair);
            e.core.register_group(pair, Arc::clone(&group))
        })?;
        let incarnation = incarnation(self.inner.incarnation, number, color);
        Ok(Some(Comm::new((pair, incarnation), my_rank as Rank, group)))
    }

    /// The ranks of this communicator on this rank's node, ordered by `key` then by
    /// rank here (`MPI_Comm_split_type` with `MPI_COMM_TYPE_SHARED`): the ranks that
    /// can share memory with it, whichever transport the job uses. Nodes are the
    /// launcher's (oxrun's `--simulate-nodes` makes several on one machine). Collective
    /// over this communicator.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let node = world.split_shared(0)?;
    /// assert!(node.size() >= 1 && node.size() <= world.size());
    /// # Ok(()) }
    /// ```
    pub fn split_shared(&self, key: i32) -> Result<Comm> {
        let node = engine::with(|e| Ok(e.node_id()))?;
        let color = i32::try_from(node)
            .map_err(|_| Error::InvalidArgument(format!("node id {node} is out of range")))?;
        let comm = self.split(color, key)?;
        Ok(comm.expect("a node's color is never undefined"))
    }

    /// Ends the whole job with `code` (`MPI_Abort`): reports this rank and code to the
    /// launcher, which stops every rank (oxrun exits with `code` modulo 256, or 1
    /// where that is 0).
    pub fn abort(&self, code: i32) -> ! {
        let world = self.inner.group[self.inner.rank as usize];
        let why = format!("rank {world} called abort with code {code}");
        let _ = engine::with(|e| -> Result<()> { e.abort_job(code, &why, false) });
        // Not initialized (or finalized): nobody else to tell.
        crate::error::report(&why);
        engine::exit_aborted(code)
    }
}

#[cfg(test)]
mod tests {
    use super::incarnation;

    #[test]
    fn incarnations_differ_from_parents_siblings_and_ancestors() {
        let world = 0;
        let mut seen = vec![world];
        // Chains of first children (the dup that is its parent's first collective),
        // and splits at other numbers and colours.
        let mut parent = world;
        for _ in 0..8 {
            parent = incarnation(parent, 0, 0);
            seen.push(parent);
        }
        for number in 0..4 {
            for color in [-1, 0, 1, 7] {
                seen.push(incarnation(world, number, color));
                seen.push(incarnation(seen[1], number, color));
            }
        }
        let mut unique = seen.clone();
        unique.sort_unstable();
        unique.dedup();
        // The chain's first two links are also the (0, 0) splits below: each seen twice.
        assert_eq!(unique.len(), seen.len() - 2);
    }
}
