//! Which algorithm runs a collective: the table measured on this machine (see
//! `docs/collectives.md`), unless `OXMPI_COLL_<OP>` or [`set_algorithm`] forces one.
//!
//! Invariant: the choice depends only on what every rank of the call agrees on (the
//! operation, its total bytes, the communicator size, whether the reduction commutes,
//! and whether the communicator's traffic crosses TCP, which all its ranks see alike)
//! and on process-wide settings every rank must make alike, so all ranks of a
//! collective run the same algorithm. Ranks that break it (their counts disagree)
//! see it: the algorithm goes into the tags of the collective's messages
//! ([`Collective::route_code`]).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use super::shared_memory::WHOLE;
use crate::engine::schedule::Disagreement;
use crate::error::{Error, Result};

/// The collective operations, to name one when choosing its algorithm.
///
/// ```
/// use oxmpi::Collective;
/// assert_eq!(Collective::Allreduce.env_var(), "OXMPI_COLL_ALLREDUCE");
/// assert!(Collective::Allreduce.algorithms().contains(&"ring"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Collective {
    /// [`crate::Comm::barrier`]
    Barrier,
    /// [`crate::Comm::bcast`]
    Bcast,
    /// [`crate::Comm::reduce`]
    Reduce,
    /// [`crate::Comm::allreduce`]
    Allreduce,
    /// [`crate::Comm::gather`]
    Gather,
    /// [`crate::Comm::gatherv`]
    Gatherv,
    /// [`crate::Comm::scatter`]
    Scatter,
    /// [`crate::Comm::scatterv`]
    Scatterv,
    /// [`crate::Comm::allgather`]
    Allgather,
    /// [`crate::Comm::allgatherv`]
    Allgatherv,
    /// [`crate::Comm::alltoall`]
    Alltoall,
    /// [`crate::Comm::alltoallv`]
    Alltoallv,
    /// [`crate::Comm::reduce_scatter`]
    ReduceScatter,
    /// [`crate::Comm::reduce_scatter_block`]
    ReduceScatterBlock,
    /// [`crate::Comm::scan`]
    Scan,
    /// [`crate::Comm::exscan`]
    Exscan,
}

/// The algorithms, by the names `OXMPI_COLL_<OP>` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Dissemination,
    Binomial,
    ScatterAllgather,
    ReduceScatterGather,
    RecursiveDoubling,
    RecursiveHalving,
    Rabenseifner,
    Ring,
    Bruck,
    Pairwise,
    Linear,
    SharedMemory,
}

use Algorithm::*;

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Dissemination => "dissemination",
            Binomial => "binomial",
            ScatterAllgather => "scatter_allgather",
            ReduceScatterGather => "reduce_scatter_gather",
            RecursiveDoubling => "recursive_doubling",
            RecursiveHalving => "recursive_halving",
            Rabenseifner => "rabenseifner",
            Ring => "ring",
            Bruck => "bruck",
            Pairwise => "pairwise",
            Linear => "linear",
            SharedMemory => "shared_memory",
        }
    }
}

const COUNT: usize = 16;

/// Bits of a [`Collective::route_code`] that hold the collective's code; the three
/// bits above hold the algorithm's index among the collective's candidates.
const COLL_BITS: u32 = 5;
const COLL_MASK: u8 = (1 << COLL_BITS) - 1;
const _: () = assert!(COUNT <= 1 << COLL_BITS && MOST_CANDIDATES <= 1 << (8 - COLL_BITS));

impl Collective {
    /// Every collective, in declaration order.
    ///
    /// ```
    /// for c in oxmpi::Collective::ALL {
    ///     println!("{}: {}", c.env_var(), c.algorithms().join(", "));
    /// }
    /// ```
    pub const ALL: [Collective; COUNT] = [
        Collective::Barrier,
        Collective::Bcast,
        Collective::Reduce,
        Collective::Allreduce,
        Collective::Gather,
        Collective::Gatherv,
        Collective::Scatter,
        Collective::Scatterv,
        Collective::Allgather,
        Collective::Allgatherv,
        Collective::Alltoall,
        Collective::Alltoallv,
        Collective::ReduceScatter,
        Collective::ReduceScatterBlock,
        Collective::Scan,
        Collective::Exscan,
    ];

    /// The collective whose code (`c as u8`) a rank published, in the node's area or
    /// in the tag of a collective's messages.
    pub(crate) fn from_code(code: u8) -> Option<Collective> {
        Collective::ALL.get(usize::from(code)).copied()
    }

    /// The report of communicator rank `peer` calling the collective of code
    /// `theirs` where rank `me` calls this one, as the same collective of their
    /// communicator (`where_` says where each runs it: the peer, then this rank).
    pub(crate) fn other_called(
        self,
        (me, peer): (usize, usize),
        theirs: u8,
        (theirs_where, ours_where): (&str, &str),
    ) -> String {
        let op = self.name();
        let other = Collective::from_code(theirs).map_or("an unknown collective", |c| c.name());
        format!(
            "{op}: rank {peer} calls {other}{theirs_where} where rank {me} calls {op}{ours_where} (every rank of a communicator must call the same collectives in the same order)"
        )
    }

    /// The code of this collective run as messages by `alg`, which its messages'
    /// tags carry (`engine/schedule.rs`): the collective's code, and above it which of
    /// its algorithms runs, so that ranks running it in ways whose messages differ
    /// (their counts disagree and put them on either side of a limit of the table, or
    /// they forced different algorithms) see it, each instead of waiting for messages
    /// the other never sends (`engine/clash.rs`). Alltoall's and alltoallv's linear
    /// and pairwise exchanges share a code: both exchange one message each way
    /// between every pair, so ranks running either meet (alltoallv's ranks choose by
    /// their own send totals).
    pub(crate) fn route_code(self, alg: Algorithm) -> u8 {
        let alg = match (self, alg) {
            (Collective::Alltoall | Collective::Alltoallv, Pairwise) => Linear,
            _ => alg,
        };
        let index = self
            .candidates()
            .iter()
            .position(|&a| a == alg)
            .expect("a collective runs its own algorithms");
        self as u8 | (index as u8) << COLL_BITS
    }

    /// The collective and algorithm of a [`Collective::route_code`].
    pub(crate) fn from_route_code(code: u8) -> Option<(Collective, Algorithm)> {
        let coll = Collective::from_code(code & COLL_MASK)?;
        Some((
            coll,
            *coll.candidates().get(usize::from(code >> COLL_BITS))?,
        ))
    }

    /// The report of what a message of communicator rank `peer` shows about the
    /// collectives it runs against those rank `me` runs, by their route codes
    /// ([`Collective::route_code`]).
    pub(crate) fn clash_report(disagreement: Disagreement, (me, peer): (usize, usize)) -> String {
        let (mine, theirs) = match disagreement {
            Disagreement::SameNumber { mine, theirs } => (mine, theirs),
            Disagreement::Finished { theirs } => {
                let op =
                    Collective::from_route_code(theirs).map_or("a collective", |(c, _)| c.name());
                return format!(
                    "{op}: rank {peer} sent rank {me} a message in it, which rank {me} finished without one from rank {peer} (the ranks disagree on what it sends: their counts differ; an alltoallv sends nothing for a block its counts make empty)"
                );
            }
        };
        let (coll, ours) = Collective::from_route_code(mine).expect("a route's own code");
        if ours == SharedMemory {
            // This rank meets in the area; the peer sent messages.
            return match Collective::from_route_code(theirs) {
                Some((other, _)) if other == coll => format!(
                    "{}: rank {peer} runs it as messages where rank {me} meets in the shared-memory area (the ranks disagree on its counts, or call it blocking and nonblocking)",
                    coll.name()
                ),
                _ => coll.other_called(
                    (me, peer),
                    theirs & COLL_MASK,
                    (" (as messages)", " in the shared-memory area"),
                ),
            };
        }
        match Collective::from_route_code(theirs) {
            Some((other, alg)) if other == coll => format!(
                "{}: rank {peer} runs it by {} where rank {me} runs it by {} (the ranks disagree on its counts, which select the algorithm, or forced different algorithms)",
                coll.name(),
                alg.name(),
                ours.name()
            ),
            _ => coll.other_called((me, peer), theirs & COLL_MASK, ("", "")),
        }
    }

    /// Whether the operation sends and expects nothing for a block its counts make
    /// empty (see [`crate::engine::schedule::Schedule::skip_empty_transfers`]): an
    /// alltoallv alone, whose empty blocks (a sparse exchange) would otherwise cost an
    /// empty message each, up to `p - 1` per rank and call more than its data needs.
    /// The other collectives with counts per rank keep their empty transfers, which
    /// cost at most the messages of the same call without empty blocks.
    pub(crate) fn drops_empty_blocks(self) -> bool {
        self == Collective::Alltoallv
    }

    /// The operation's name in lower case (`"reduce_scatter_block"`).
    ///
    /// ```
    /// assert_eq!(oxmpi::Collective::ReduceScatterBlock.name(), "reduce_scatter_block");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Collective::Barrier => "barrier",
            Collective::Bcast => "bcast",
            Collective::Reduce => "reduce",
            Collective::Allreduce => "allreduce",
            Collective::Gather => "gather",
            Collective::Gatherv => "gatherv",
            Collective::Scatter => "scatter",
            Collective::Scatterv => "scatterv",
            Collective::Allgather => "allgather",
            Collective::Allgatherv => "allgatherv",
            Collective::Alltoall => "alltoall",
            Collective::Alltoallv => "alltoallv",
            Collective::ReduceScatter => "reduce_scatter",
            Collective::ReduceScatterBlock => "reduce_scatter_block",
            Collective::Scan => "scan",
            Collective::Exscan => "exscan",
        }
    }

    /// The variable that forces this operation's algorithm (`OXMPI_COLL_BCAST`).
    ///
    /// ```
    /// assert_eq!(oxmpi::Collective::Bcast.env_var(), "OXMPI_COLL_BCAST");
    /// ```
    pub fn env_var(self) -> String {
        format!("OXMPI_COLL_{}", self.name().to_uppercase())
    }

    /// The names of this operation's algorithms, as `OXMPI_COLL_<OP>` and
    /// [`set_algorithm`] take them.
    ///
    /// ```
    /// assert_eq!(
    ///     oxmpi::Collective::Barrier.algorithms(),
    ///     ["dissemination", "linear", "shared_memory"]
    /// );
    /// ```
    pub fn algorithms(self) -> Vec<&'static str> {
        self.candidates().iter().map(|a| a.name()).collect()
    }

    /// How many calls of this operation ran `algorithm` in this process so far (0 for
    /// a name it does not have): for tests that force an algorithm to check that it
    /// ran.
    ///
    /// ```
    /// assert_eq!(oxmpi::Collective::Scan.runs("bubble"), 0);
    /// ```
    #[doc(hidden)]
    pub fn runs(self, algorithm: &str) -> u32 {
        self.candidates()
            .iter()
            .position(|a| a.name() == algorithm)
            .map_or(0, |i| RUNS[self.index()][i].load(Ordering::Relaxed))
    }

    fn candidates(self) -> &'static [Algorithm] {
        match self {
            Collective::Barrier => &[Dissemination, Linear, SharedMemory],
            Collective::Bcast => &[Binomial, ScatterAllgather, Linear, SharedMemory],
            Collective::Reduce => &[Binomial, ReduceScatterGather, SharedMemory],
            Collective::Allreduce => &[RecursiveDoubling, Rabenseifner, Ring, Linear, SharedMemory],
            Collective::Gather | Collective::Scatter => &[Binomial, Linear, SharedMemory],
            Collective::Gatherv | Collective::Scatterv => &[Linear],
            Collective::Allgather => &[RecursiveDoubling, Bruck, Ring, SharedMemory],
            Collective::Allgatherv => &[RecursiveDoubling, Ring],
            Collective::Alltoall => &[Bruck, Pairwise, Linear, SharedMemory],
            Collective::Alltoallv => &[Pairwise, Linear],
            Collective::ReduceScatter | Collective::ReduceScatterBlock => &[RecursiveHalving, Ring],
            Collective::Scan | Collective::Exscan => &[RecursiveDoubling],
        }
    }

    fn index(self) -> usize {
        Collective::ALL
            .iter()
            .position(|&c| c == self)
            .expect("every collective is listed")
    }

    /// The algorithm called `name`, or an error listing the valid names.
    fn parse(self, name: &str) -> std::result::Result<Option<Algorithm>, String> {
        if name == "auto" {
            return Ok(None);
        }
        match self.candidates().iter().find(|a| a.name() == name) {
            Some(&a) => Ok(Some(a)),
            None => Err(format!("one of: auto, {}", self.algorithms().join(", "))),
        }
    }
}

/// No algorithm forced: the table decides.
const AUTO: u8 = u8::MAX;

/// The forced algorithm of each collective (an index into its candidates), or AUTO.
static FORCED: [AtomicU8; COUNT] = [const { AtomicU8::new(AUTO) }; COUNT];

/// The most algorithms one collective has.
const MOST_CANDIDATES: usize = 5;

/// How many calls of each collective each of its algorithms ran in this process
/// (indexed like its candidates), for tests that force one ([`Collective::runs`]).
static RUNS: [[AtomicU32; MOST_CANDIDATES]; COUNT] =
    [const { [const { AtomicU32::new(0) }; MOST_CANDIDATES] }; COUNT];

/// Counts a call of `coll` that runs `alg`; returns `alg`. Only the engine's owner
/// selects, so a load and a store do (a locked add would drain the store buffer).
#[inline(always)]
fn ran(coll: Collective, alg: Algorithm) -> Algorithm {
    if let Some(i) = coll.candidates().iter().position(|&c| c == alg) {
        let runs = &RUNS[coll.index()][i];
        runs.store(
            runs.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }
    alg
}

/// The `OXMPI_COLL_*` variables, read once: `Err` holds (variable, value, expected).
static ENV: OnceLock<std::result::Result<(), (String, String, String)>> = OnceLock::new();

fn read_env() -> std::result::Result<(), (String, String, String)> {
    // Other variables, whatever their bytes, are none of oxmpi's business.
    for (var, value) in std::env::vars_os() {
        let Some(op) = var.to_str().and_then(|v| v.strip_prefix("OXMPI_COLL_")) else {
            continue;
        };
        let var = var.to_string_lossy().into_owned();
        let Ok(value) = value.into_string() else {
            let expected = "an algorithm's name (this value is not UTF-8)".to_string();
            return Err((var, String::from("?"), expected));
        };
        let Some(&coll) = Collective::ALL
            .iter()
            .find(|c| c.name().eq_ignore_ascii_case(op))
        else {
            let known: Vec<String> = Collective::ALL.iter().map(|c| c.env_var()).collect();
            return Err((
                var,
                value,
                format!("a variable oxmpi knows: {}", known.join(", ")),
            ));
        };
        match coll.parse(value.trim()) {
            Ok(alg) => store(coll, alg),
            Err(expected) => return Err((var, value, expected)),
        }
    }
    Ok(())
}

/// Reads the `OXMPI_COLL_*` variables (once per process): one naming an unknown
/// collective or algorithm is an [`Error::Config`].
#[inline(always)]
pub(crate) fn env() -> Result<()> {
    match ENV.get_or_init(read_env) {
        Ok(()) => Ok(()),
        Err((var, value, expected)) => Err(Error::config(var, value, expected)),
    }
}

fn store(coll: Collective, alg: Option<Algorithm>) {
    let idx = alg.map_or(AUTO, |a| {
        coll.candidates()
            .iter()
            .position(|&c| c == a)
            .expect("a candidate") as u8
    });
    FORCED[coll.index()].store(idx, Ordering::Relaxed);
}

/// Forces the algorithm of `coll` in this process (as `OXMPI_COLL_<OP>` does), or
/// with `None` or `Some("auto")` returns it to the measured table. Every rank must
/// make the same choice before its next call of that collective. An unknown name is
/// an [`Error::InvalidArgument`] listing the valid ones (see
/// [`Collective::algorithms`]).
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// use oxmpi::{Collective, Op};
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// oxmpi::set_algorithm(Collective::Allreduce, Some("ring"))?;
/// let mut x = [1.0f64; 8];
/// world.allreduce_in_place(&mut x, Op::Sum)?;
/// oxmpi::set_algorithm(Collective::Allreduce, None)?;
/// assert!(oxmpi::set_algorithm(Collective::Allreduce, Some("bubble")).is_err());
/// # Ok(()) }
/// ```
pub fn set_algorithm(coll: Collective, name: Option<&str>) -> Result<()> {
    env()?;
    let alg = coll.parse(name.unwrap_or("auto")).map_err(|expected| {
        Error::InvalidArgument(format!(
            "{} has no algorithm {:?}: expected {expected}",
            coll.name(),
            name.unwrap_or("")
        ))
    })?;
    store(coll, alg);
    Ok(())
}

/// Whether `alg` combines operands of `coll` in rank order (a non-commutative
/// operation needs that).
fn keeps_rank_order(coll: Collective, alg: Algorithm) -> bool {
    !matches!(
        (coll, alg),
        (
            Collective::Allreduce | Collective::ReduceScatter | Collective::ReduceScatterBlock,
            Ring
        )
    )
}

/// The algorithm for `coll` moving `bytes` (the whole vector, or one rank's block
/// for the gather/scatter/alltoall family) among `size` ranks, as a schedule of
/// messages. A forced algorithm that cannot apply a non-commutative operation in rank
/// order gives way to the table, and so does a forced `shared_memory` where the
/// collective cannot run over the node's area (see [`on_node`]).
pub(crate) fn choose(
    coll: Collective,
    bytes: usize,
    size: usize,
    commutative: bool,
) -> Result<Algorithm> {
    let alg = forced(coll, commutative)?.unwrap_or_else(|| table(coll, bytes, size, commutative));
    Ok(ran(coll, alg))
}

/// The algorithm forced for `coll` as a schedule of messages, if one is and it can
/// apply the operation (see [`choose`]).
fn forced(coll: Collective, commutative: bool) -> Result<Option<Algorithm>> {
    env()?;
    let forced = FORCED[coll.index()].load(Ordering::Relaxed);
    if forced != AUTO {
        let alg = coll.candidates()[forced as usize];
        if alg != SharedMemory && (commutative || keeps_rank_order(coll, alg)) {
            return Ok(Some(alg));
        }
    }
    Ok(None)
}

/// [`choose`] for an allreduce of `count` elements of `esz` bytes, where `tcp_eager` is
/// the TCP eager limit if the communicator's traffic crosses TCP (`None` otherwise).
/// On a pair of ranks over TCP a vector just beyond the eager limit goes by
/// Rabenseifner's halves, each sent eagerly, instead of recursive doubling's one
/// rendezvous (a round trip more before the data moves): 64 KiB over loopback TCP in
/// 42 us against 76 (medians of 5 interleaved rounds, `oxbench allreduce` with each
/// algorithm forced; ring 39 us, but it cannot keep rank order). Once a half needs a
/// rendezvous too, the single exchange wins again (128-512 KiB: recursive doubling
/// 111-320 us, Rabenseifner 139-441); from 1 MiB the table's ring holds over TCP
/// as well (1-2 MiB 0.82-0.87 of recursive doubling's time). On 3-8 ranks over TCP
/// Rabenseifner takes the ring's place (from 256 KiB in the table): 256 KiB-1 MiB
/// in 0.71-0.81 of its time on 4 ranks, 512 KiB-1 MiB 0.71-0.73 on 8 (256 KiB 1.02),
/// medians of 7 interleaved rounds, each algorithm forced.
pub(crate) fn choose_allreduce(
    count: usize,
    esz: usize,
    size: usize,
    commutative: bool,
    tcp_eager: Option<usize>,
) -> Result<Algorithm> {
    let coll = Collective::Allreduce;
    if let Some(alg) = forced(coll, commutative)? {
        return Ok(ran(coll, alg));
    }
    let bytes = count * esz;
    let alg = table(coll, bytes, size, commutative);
    Ok(ran(
        coll,
        match tcp_eager {
            Some(eager)
                if size == 2
                    && alg == RecursiveDoubling
                    && bytes > eager
                    && count.div_ceil(2) * esz <= eager =>
            {
                Rabenseifner
            }
            Some(_) if (3..=8).contains(&size) && alg == Ring => Rabenseifner,
            _ => alg,
        },
    ))
}

/// [`choose`] for a collective without a reduction (bcast, gather, allgather,
/// alltoall), where `over_tcp` says whether the communicator's traffic crosses TCP;
/// there the measured [`tcp_table`] comes before the table.
pub(crate) fn choose_linked(
    coll: Collective,
    bytes: usize,
    size: usize,
    over_tcp: bool,
) -> Result<Algorithm> {
    if let Some(alg) = forced(coll, true)? {
        return Ok(ran(coll, alg));
    }
    let alg = over_tcp
        .then(|| tcp_table(coll, bytes, size))
        .flatten()
        .unwrap_or_else(|| table(coll, bytes, size, true));
    Ok(ran(coll, alg))
}

/// Where TCP, among ranks sharing cores, changes the table's choice: every hop is a
/// round of system calls, so a root or sender that talks to every rank itself beats
/// algorithms that forward or pair up. Medians of 3 interleaved rounds of `oxbench`
/// over loopback TCP, each algorithm forced (docs/collectives.md):
/// - bcast: the root sending to every rank (linear) against the binomial tree, whose
///   inner ranks each wait for a message before they forward it: on 4 ranks at every
///   size (1 B-8 KiB 0.90-1.00 of the tree's time, 16 KiB-1 MiB 0.60-0.78), on 8 from
///   32 KiB (0.69-0.94; below, 1.0-1.3);
/// - alltoall: everything posted at once (linear) against pairwise exchange, 64 KiB-
///   1 MiB blocks, on 3, 4 and 8 ranks: pairwise took 1.15-1.30x, 1.18-1.40x and
///   1.40-1.65x the time (the table picks pairwise from 256 KiB, measured over
///   shared memory);
/// - gather: every rank sending to the root (linear) against the binomial tree, on 4
///   ranks at every block size (binomial 1.1-2.1x linear's time, the table's choice
///   below 4 KiB; `oxbench gather -i 2000`, 3 rounds); on 8 ranks the table's choice
///   held (linear 2.0-2.6x binomial's time below 4 KiB, 0.41-0.85 from 8 KiB);
/// - allgather: recursive doubling from 64 KiB blocks (the table's ring took
///   1.06-1.38x its time on 4 ranks but at 128 KiB 0.88, 1.12-2.0x on 8;
///   `benches/tune_collectives.py 4,8 allgather 3 200` with `OXMPI_TRANSPORT=tcp`),
///   and Bruck below 16 KiB (where the table has it below 1 KiB; from 512 B the ring
///   took 1.4-1.7x its time on 4 ranks and 1.6-1.9x on 8, recursive doubling
///   1.0-1.13x; `oxbench allgather -i 2000`, 3 rounds).
///
/// Beyond 8 ranks (not measured) the table stands.
fn tcp_table(coll: Collective, bytes: usize, size: usize) -> Option<Algorithm> {
    const K: usize = 1024;
    match (coll, size) {
        (Collective::Bcast, 3..=4) => Some(Linear),
        (Collective::Bcast, 5..=8) if bytes >= 32 * K => Some(Linear),
        (Collective::Alltoall, 3..=8) | (Collective::Gather, 3..=4) => Some(Linear),
        (Collective::Allgather, 3..=8) if bytes >= 64 * K => Some(RecursiveDoubling),
        (Collective::Allgather, 3..=8) if bytes < 16 * K => Some(Bruck),
        _ => None,
    }
}

/// Whether a blocking `coll` of `bytes` (keyed as for [`choose`]) among `size` ranks
/// that all share one node, whose data fits the area's slots or whose ranks lend
/// their buffers (`lend`, see [`lend`]), meets in the node's collective area rather
/// than running a schedule: when forced to `shared_memory`, or lending, or below the
/// measured size limits, unless another algorithm is forced.
#[inline(always)]
pub(crate) fn on_node(coll: Collective, bytes: usize, size: usize, lend: bool) -> Result<bool> {
    env()?;
    let forced = FORCED[coll.index()].load(Ordering::Relaxed);
    let meets = if forced != AUTO {
        coll.candidates()[forced as usize] == SharedMemory
    } else {
        lend || table_on_node(coll, bytes, size)
    };
    if meets {
        ran(coll, SharedMemory);
    }
    Ok(meets)
}

/// Whether `coll` meets in the area in pieces only where the node allows single
/// copies: an allreduce on 2 ranks longer than a slot. Where it does not, recursive
/// doubling, streaming through the rings, took 0.71-0.97 of the pieces' time at 64
/// KiB-1 MiB (8 rounds, both phases of the Intel Xeon VM; at 128 KiB and less in the
/// fast phase 1.03-1.26), so it goes as messages without learning.
pub(crate) fn pieces_need_single_copy(coll: Collective, bytes: usize, size: usize) -> bool {
    coll == Collective::Allreduce && size == 2 && bytes > WHOLE
}

/// Counts a call of `coll` that meets in the area as rank 0 learned
/// (`learned.rs`).
pub(crate) fn ran_as_learned(coll: Collective) {
    ran(coll, SharedMemory);
}

/// The shortest 2-rank allreduce whose way is learned: below it the meeting in which
/// rank 0 says which way a call goes costs more than the better way could save (8
/// KiB: recursive doubling 0.83-1.16 of the area's time, one line crossing in
/// 0.13-0.15 us; 16 KiB 0.56-1.02, learned 0.80; docs/collectives.md).
const LEARNED_ALLREDUCE: usize = 16 * 1024;

/// Where a 2-rank `coll` has rank 0 learn whether the area or messages are faster
/// (`learned.rs`): from these `bytes` (as the table counts them) up; below, the area
/// beat messages in both phases of every machine measured, and a meeting to decide
/// would cost as much as a call (see `table_on_node`).
fn learned_from(coll: Collective) -> Option<usize> {
    match coll {
        Collective::Allreduce => Some(LEARNED_ALLREDUCE),
        Collective::Bcast | Collective::Gather | Collective::Reduce => Some(WHOLE + 1),
        Collective::Allgather => Some(ALLGATHER_TWO + 1),
        Collective::Alltoall => Some(ALLTOALL_TWO + 1),
        Collective::Scatter => Some(SCATTER_TWO + 1),
        _ => None,
    }
}

/// Whether a `coll` of `bytes` (as the table counts them) on `size` ranks that the
/// table sends to messages ([`on_node`], which reads the environment first) has rank
/// 0 learn instead whether the area or messages are faster (`learned.rs`): on 2 ranks
/// from [`learned_from`] on, not where an algorithm is forced.
#[inline(always)]
pub(crate) fn learns(coll: Collective, bytes: usize, size: usize) -> bool {
    size == 2
        && learned_from(coll).is_some_and(|from| bytes >= from)
        && FORCED[coll.index()].load(Ordering::Relaxed) == AUTO
}

/// The most one rank contributes to an alltoall through the area (a single piece in
/// a large buffer, see `alltoall/shared_memory.rs`); beyond, from three ranks, the
/// ranks lend their buffers where the node allows single copies (and rank 0 decides,
/// as it learns, whether all copy from the lent buffers or go in pieces through the
/// area), and send messages where it does not. Measured (docs/collectives.md), area
/// over lent time: 128 KiB per rank on 4 and 8 ranks 0.40-0.44 where a cache line
/// crosses between the cores in 0.06 us (a lent copy pins every page it reads),
/// 0.84-0.95 where it takes 0.25 us; 256 KiB in two pieces (of the 128 KiB large
/// buffers then) 0.51-0.59 and 0.99-1.25.
/// Without single copies, pieces through the area did not beat messages (4 ranks,
/// 32 KiB-1 MiB blocks: 0.88-2.1 of their time).
const ALLTOALL_AREA: usize = 128 * 1024;

/// Whether a collective over the area has its ranks lend their buffers, to be copied
/// from directly, instead of copying data through the area (where the node allows
/// single copies): an alltoall or allgather among 3 ranks or more too large for the
/// area. So such a collective never mixes ranks that meet in the area with ranks that
/// send messages, whatever their counts. Measured (docs/collectives.md), with ranks
/// sharing cores: alltoall on 4-8 ranks, 16-32 KiB blocks, 0.4-0.7x the time of
/// pairwise messages (at 4 KiB blocks on 6-8 ranks data through the area beat both);
/// allgather on 4-8 ranks, 64 KiB-1 MiB blocks, 0.46-0.86x the time of messages. An
/// allreduce is never lent: on 2 ranks with a core each, 64 KiB-1 MiB, pieces through
/// the area took 0.45-0.92 of the lent time where a cache line crosses between the
/// cores in 0.06 us and, where it takes 0.25 us, 0.43-1.08 in three sets of rounds
/// and 1.16-1.49 in a fourth, once the area's copies no longer used `rep movsb`
/// (`copy.rs`); on 4 and 8 ranks lending took 1.2-1.8x the time of pieces already
/// before. A broadcast lent to 3 readers was slower than one
/// in pieces through the area (1.1-1.3x at 64 KiB-1 MiB): the root idles while the
/// others copy, and they all pin the same pages.
pub(crate) fn lend(coll: Collective, bytes: usize, size: usize) -> bool {
    match coll {
        Collective::Alltoall => size > 2 && bytes * size > ALLTOALL_AREA,
        Collective::Allgather => size > 2 && bytes > WHOLE,
        _ => false,
    }
}

/// The longest 2-rank allgather block that always goes through the area (beyond,
/// rank 0 learns, see [`learns`]). On the Intel Xeon VM 16-64 KiB blocks as messages
/// (recursive doubling, each block read once by the other rank) took 0.63-0.81 of the
/// area's two copies' time at `73b8a11` (6 interleaved rounds); 4-8 KiB tied.
const ALLGATHER_TWO: usize = 8 * 1024;

/// The longest 2-rank alltoall block that always goes through the area (beyond, rank
/// 0 learns): on the Intel Xeon VM 4-32 KiB blocks through the area took 0.58-0.95 of
/// the messages' time in the fast phase but 1.10-1.61 in the slow one.
const ALLTOALL_TWO: usize = 2048;

/// The longest 2-rank scatter block that always goes through the area (beyond, rank 0
/// learns): on the Intel Xeon VM 2-8 KiB blocks through the area took 0.58-0.91 of
/// the messages' time in the fast phase but 1.12-1.48 in the slow one.
const SCATTER_TWO: usize = 1024;

/// The most a scatter among three ranks or more puts through the area in all: what a
/// small slot holds. Beyond, the root's copy of every block into a large buffer costs
/// more than handing the blocks out as messages while the other ranks run (4 and 8
/// ranks: 2-4 KiB in all 0.46-0.60 of the messages' time, 8 KiB 1.63-1.66).
const SCATTER_WHOLE: usize = 4096;

/// The measured limits of the shared-memory path (docs/collectives.md), for data that
/// fits the area. From three ranks (sharing cores here) it wins wherever the data fits
/// (for a bcast or allreduce of any size, piece by piece), except for a scatter
/// beyond [`SCATTER_WHOLE`]: each rank is woken at most once per collective (per
/// piece). On two ranks with a core each a short collective costs a cache-line
/// handoff each way where a message costs its software path, and up to the limits
/// of [`learned_from`] the area won in both phases of the Intel Xeon VM (area over
/// messages: bcast of 1-2 KiB 0.31-0.37 fast, 0.73-1.19 slow; gather of 1-2 KiB
/// blocks 0.36-0.39 and 0.86-0.90, of 32 KiB 0.32-0.34 and 1.07; scatter of 256 B-1
/// KiB blocks 0.28-0.45 and 0.56-0.96). Beyond them every 2-rank collective here may
/// meet in the area, and rank 0 learns whether it should ([`learns`]): in one phase
/// of that VM longer bcasts in pieces through the area took 1.45-3.3 times the
/// messages' time and in the other 0.50-0.93, and the AMD EPYC VMs (Zen 5, Zen 3)
/// had the area ahead in both of theirs (docs/benchmarks.md).
fn table_on_node(coll: Collective, bytes: usize, size: usize) -> bool {
    if size == 2
        && let Some(from) = learned_from(coll)
    {
        return bytes < from;
    }
    match coll {
        Collective::Barrier | Collective::Bcast | Collective::Allreduce => true,
        Collective::Allgather | Collective::Reduce | Collective::Gather => bytes <= WHOLE,
        Collective::Alltoall => bytes * size <= ALLTOALL_AREA,
        Collective::Scatter => bytes * size <= SCATTER_WHOLE,
        _ => false,
    }
}

/// The measured table (docs/collectives.md says how it was measured: oxbench with
/// each algorithm forced, 2, 4 and 8 ranks on this 2-core machine). `bytes` is the
/// whole vector for bcast and the reductions, one rank's block for the others.
fn table(coll: Collective, bytes: usize, size: usize, commutative: bool) -> Algorithm {
    const K: usize = 1024;
    match coll {
        // From 8 ranks (oversubscribed here) waking each rank twice beats waking it
        // log2(p) times; past 64 the fan-in to rank 0 would dominate.
        Collective::Barrier => {
            if (8..=64).contains(&size) {
                Linear
            } else {
                Dissemination
            }
        }
        // With ranks sharing cores, total work decides, and binomial trees do the
        // least; scatter-allgather and reduce-scatter-gather stay available by name.
        Collective::Bcast => Binomial,
        Collective::Reduce => Binomial,
        Collective::Allreduce => {
            if (8..=64).contains(&size) && bytes * size <= 1024 * K {
                // As for the barrier: two wake-ups per rank beat log2(p) rounds, as
                // long as rank 0's share (a vector from every rank) stays small.
                Linear
            } else if bytes < 16 * K || (size == 2 && bytes < 1024 * K) {
                // Two ranks: one exchange and a local reduction; with the 4 KiB
                // shared-memory eager limit, splitting the vector (Rabenseifner) only
                // adds rendezvous round trips (np=2, 16-256 KiB: 1.3-3x slower), and
                // a ring, with half the copying and reducing per rank, wins only from
                // 1 MiB (256/512 KiB: 0.71/0.76 of its time; 1 MiB 1.16), both
                // combining the partner's data where it lands.
                RecursiveDoubling
            } else if bytes < 256 * K || !commutative {
                Rabenseifner
            } else {
                Ring
            }
        }
        Collective::Gather => {
            if bytes < 4 * K {
                Binomial
            } else {
                Linear
            }
        }
        Collective::Scatter | Collective::Gatherv | Collective::Scatterv => Linear,
        Collective::Allgather => {
            if bytes < K {
                Bruck
            } else {
                Ring
            }
        }
        Collective::Allgatherv => {
            if bytes < K {
                RecursiveDoubling
            } else {
                Ring
            }
        }
        Collective::Alltoall | Collective::Alltoallv => {
            if bytes < 256 * K {
                Linear
            } else {
                Pairwise
            }
        }
        Collective::ReduceScatter | Collective::ReduceScatterBlock => {
            if commutative && (size == 2 || bytes >= 128 * K) {
                Ring
            } else {
                RecursiveHalving
            }
        }
        Collective::Scan | Collective::Exscan => RecursiveDoubling,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collective_is_found_in_all_by_its_number() {
        // The node's area publishes `c as u8` and names what it finds through `ALL`.
        for (i, c) in Collective::ALL.into_iter().enumerate() {
            assert_eq!(c as usize, i);
        }
        assert!(Collective::ALL.len() < 64, "the area holds six bits of it");
    }

    #[test]
    fn route_codes_tell_algorithms_apart_unless_their_messages_agree() {
        for c in Collective::ALL {
            for &alg in c.candidates() {
                let code = c.route_code(alg);
                let (back, back_alg) = Collective::from_route_code(code).expect("decodes");
                assert_eq!(back, c);
                let same = back_alg == alg || matches!((back_alg, alg), (Linear, Pairwise));
                assert!(same, "{c:?} {alg:?}");
            }
        }
        let a = Collective::Allreduce;
        let report = Collective::clash_report(
            Disagreement::SameNumber {
                mine: a.route_code(RecursiveDoubling),
                theirs: a.route_code(Rabenseifner),
            },
            (0, 3),
        );
        assert!(
            report.starts_with(
                "allreduce: rank 3 runs it by rabenseifner where rank 0 runs it by recursive_doubling"
            ),
            "{report}"
        );
        let other = Collective::clash_report(
            Disagreement::SameNumber {
                mine: a.route_code(Ring),
                theirs: Collective::Bcast.route_code(Binomial),
            },
            (1, 2),
        );
        assert!(
            other.contains("rank 2 calls bcast where rank 1 calls allreduce"),
            "{other}"
        );
        let area = Collective::clash_report(
            Disagreement::SameNumber {
                mine: a.route_code(SharedMemory),
                theirs: a.route_code(RecursiveDoubling),
            },
            (0, 1),
        );
        assert!(
            area.starts_with(
                "allreduce: rank 1 runs it as messages where rank 0 meets in the shared-memory area"
            ),
            "{area}"
        );
        let t = Collective::Alltoall;
        assert_eq!(t.route_code(Linear), t.route_code(Pairwise));
        assert_ne!(t.route_code(Linear), t.route_code(Bruck));
    }

    #[test]
    fn every_collective_has_its_own_variable_and_a_default() {
        for c in Collective::ALL {
            assert!(c.candidates().len() <= MOST_CANDIDATES, "{c:?}");
            assert_eq!(Collective::ALL[c.index()], c);
            assert!(!c.algorithms().is_empty());
            assert!(c.candidates().contains(&table(c, 1, 4, true)));
            assert!(c.candidates().contains(&table(c, 1 << 22, 9, false)));
        }
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let err = Collective::Allreduce.parse("fastest").unwrap_err();
        assert_eq!(
            err,
            "one of: auto, recursive_doubling, rabenseifner, ring, linear, shared_memory"
        );
        assert_eq!(Collective::Allreduce.parse("ring"), Ok(Some(Ring)));
        assert_eq!(Collective::Allreduce.parse("auto"), Ok(None));
    }

    #[test]
    fn over_tcp_allreduce_splits_where_halves_go_eagerly_or_rings_lose() {
        let eager = 64 * 1024 - 40;
        let pick = |bytes: usize, tcp: Option<usize>| {
            choose_allreduce(bytes / 4, 4, 2, false, tcp).expect("no forced algorithm")
        };
        assert_eq!(pick(32 * 1024, Some(eager)), RecursiveDoubling);
        assert_eq!(pick(eager, Some(eager)), RecursiveDoubling);
        assert_eq!(pick(64 * 1024, Some(eager)), Rabenseifner);
        assert_eq!(pick(2 * eager, Some(eager)), Rabenseifner);
        // An odd count's larger half no longer fits.
        assert_eq!(
            choose_allreduce(eager / 2 + 1, 4, 2, true, Some(eager)).expect("auto"),
            RecursiveDoubling
        );
        assert_eq!(pick(128 * 1024, Some(eager)), RecursiveDoubling);
        assert_eq!(pick(64 * 1024, None), RecursiveDoubling, "shared memory");
        let many = |size, tcp| choose_allreduce(1 << 18, 4, size, true, tcp).expect("auto");
        assert_eq!(many(4, None), Ring, "shared memory");
        assert_eq!(many(8, Some(eager)), Rabenseifner);
        assert_eq!(many(16, Some(eager)), Ring, "not measured beyond 8");
        assert_eq!(
            choose_allreduce(16 * 1024, 4, 4, true, Some(eager)).expect("auto"),
            table(Collective::Allreduce, 64 * 1024, 4, true),
            "only a pair"
        );
    }

    #[test]
    fn over_tcp_the_measured_rows_come_first() {
        let bcast = |bytes, size, tcp| {
            choose_linked(Collective::Bcast, bytes, size, tcp).expect("no forced algorithm")
        };
        assert_eq!(bcast(1, 4, true), Linear);
        assert_eq!(bcast(1 << 20, 3, true), Linear);
        assert_eq!(bcast(1, 8, true), Binomial);
        assert_eq!(bcast(32 * 1024, 8, true), Linear);
        assert_eq!(bcast(1 << 20, 16, true), Binomial, "not measured beyond 8");
        assert_eq!(bcast(1 << 20, 4, false), Binomial, "shared memory");
        assert_eq!(
            bcast(1, 2, true),
            Binomial,
            "two ranks: one message either way"
        );
        let alltoall = |bytes, size, tcp| {
            choose_linked(Collective::Alltoall, bytes, size, tcp).expect("no forced algorithm")
        };
        assert_eq!(alltoall(1 << 20, 8, true), Linear);
        assert_eq!(alltoall(1 << 20, 8, false), Pairwise, "shared memory");
        assert_eq!(
            alltoall(1 << 20, 16, true),
            Pairwise,
            "not measured beyond 8"
        );
    }

    #[test]
    fn order_breaking_algorithms_give_way_for_non_commutative_ops() {
        assert!(!keeps_rank_order(Collective::Allreduce, Ring));
        assert!(keeps_rank_order(Collective::Allreduce, Rabenseifner));
        assert_ne!(table(Collective::Allreduce, 1 << 24, 4, false), Ring);
    }
}
