//! The shared-memory path of short blocking collectives: when a communicator's ranks
//! are exactly the ranks of one node, its blocking collectives whose per-rank data fits
//! the area ([`WHOLE`] bytes, or pieces of [`LARGE`] bytes for a bcast, an allreduce
//! or an alltoall) meet in the node's collective area
//! (`src/transport/shm/area.rs`) instead of exchanging messages. Where a collective's
//! data does not fit but the node allows single copies, its ranks may instead *lend*
//! their buffers: a slot then holds the buffer's process and address
//! ([`Meeting::lend`]), the others copy from it directly ([`Meeting::copy_lent`]),
//! and the lender keeps the buffer unchanged until every rank has published a later
//! collective number that says it finished copying (ranks that see a lent slot where
//! they expected data publish that number too, before they fail).
//!
//! Protocol of collective number `s` (every local rank takes part in every collective
//! over the area, so all number them alike): a rank with data to contribute first
//! waits until every rank has moved past the last collective that used the slot or
//! large buffer it writes (then nobody still reads it), writes, and publishes `s` in
//! its slot's sequence word with a release store; a rank without data publishes at
//! once. Then it
//! waits for the sequence words of the ranks whose data it needs to reach `s`, reads
//! their slots and computes its result locally (reductions combine the ranks' vectors
//! in rank order, so every rank gets the same bits and non-commutative operations
//! work). A rank enters `s` only after it stopped reading the slots of `s - 1`.
//!
//! Waking: after publishing, a rank fences (`Shm::wake_sleepers`: a full fence, or
//! only a compiler fence where sleepers fence every CPU with `membarrier`) and, if
//! some local rank sleeps, reads every sequence word; if all have reached `s` (it
//! completed the arrival), or if others wait for its data alone (a root's), it wakes
//! the sleepers. A rank going to sleep sets its doorbell, fences, and re-checks what
//! it waits for, so of a sleeper and the rank completing its condition at least one
//! sees the other.
//!
//! Cost: a cache-line handoff per rank instead of log2(p) message rounds, and each
//! waiting rank is woken at most once per collective, which matters most when ranks
//! outnumber cores. Errors: a rank whose slot holds a different length or shape than
//! this rank expects (the ranks disagree on counts), or whose sequence word says it
//! entered another collective (each rank publishes which one), fails the collective
//! with an error; it still takes part in the protocol, so no rank is left waiting
//! (ranks in different collectives stay in step only where those take as many
//! collective numbers; see docs/collectives.md).

use super::Form;
use super::select::{self, Collective};
use crate::comm::Comm;
use crate::engine::finalized::Finalized;
use crate::engine::two_ways::{self, TwoWays};
use crate::engine::{self, Engine};
use crate::error::{Error, Rank, Result};
use crate::prefetch;
use crate::transport::frame::RemoteBuf;
use crate::transport::shm::area::{Area, Arrival, LARGE_DEPTH, Large, Room, SMALL, Ticket};
use crate::transport::shm::segment::LINE;

pub(crate) use crate::transport::shm::area::LARGE;

/// The most a rank contributes through the area to a collective that does not go in
/// pieces (the selection's limits were measured against it): larger data is lent or
/// goes as messages. Pieces of a bcast, allreduce or alltoall fill whole large
/// buffers, whose fewer meetings per byte pay off there (4 ranks, 64 KiB-1 MiB:
/// bcast 0.57-0.87, allreduce 0.77-0.88 of the time with 32 KiB pieces;
/// docs/collectives.md).
pub(crate) const WHOLE: usize = 32 * 1024;

/// Where a collective meets: the area index of each communicator rank, and the room
/// this rank's data needs.
#[derive(Clone, Copy)]
pub(crate) struct Venue<'c> {
    slots: &'c [usize],
    room: Room,
    /// How the meeting's later pieces take the large region ([`large_room`]).
    large: Large,
    /// The ranks lend their buffers instead of writing data ([`Meeting::lend`]).
    lend: bool,
}

impl Venue<'_> {
    /// The same ranks, meeting with at most a small slot's data each.
    pub(crate) fn small(self) -> Self {
        Venue {
            room: Room::Slot,
            lend: false,
            ..self
        }
    }
}

/// One collective over the node's area, from this rank's side.
pub(crate) struct Meeting<'a> {
    eng: &'a mut Engine,
    area: Area,
    ticket: Ticket,
    /// Area index of each communicator rank.
    slots: &'a [usize],
    /// World rank of each communicator rank (for reports).
    group: &'a [u32],
    rank: usize,
    op: Collective,
    /// The operation's shape, for operations that go in pieces (else 0): its length
    /// and element size, so that ranks disagreeing on either notice at the first piece.
    shape: u64,
    /// How its pieces take the large region.
    large: Large,
    /// See [`Meeting::lends`].
    lend: bool,
    /// The collective number this rank last wrote for (0: none).
    wrote: u64,
    /// The communicator, and the number of this collective on it (its tag, unused;
    /// see [`Meeting::wait_shared`]).
    comm: &'a Comm,
    number: u32,
}

/// How `coll`'s data larger than a small slot takes the large region, on a
/// communicator of `size` ranks.
///
/// Where the ranks that write run ahead of those that read, who never write back,
/// the next stretch of a window of the region ([`Room::Ahead`]) rather than one of
/// the few large buffers in turn, so that a broadcast's root fills dozens of 8-32 KiB
/// broadcasts before it waits for the readers, instead of four, and a reduce's or
/// gather's other ranks fill as many before the root reads them. Against four buffers
/// in turn (A/B, 4-5 interleaved rounds, 4 and 8 ranks on 2 cores): bcast of 8-32 KiB
/// in 0.44-0.62 of the time, reduce 0.66-0.99, gather 0.72-0.98; 64-256 KiB
/// unchanged. The window holds what a reader can take from its caches: a broadcast's
/// root writes [`LARGE`] ahead at most (over 1 MiB the 8-rank bcast took 1.01-1.07x
/// the time, over the whole region 1.11-1.22x at 64-256 KiB), the writers of a reduce
/// or gather [`AHEAD_DATA`] together (each over 512 KiB, 8 ranks took 1.17-1.25x the
/// time at 16-32 KiB). docs/collectives.md.
///
/// An alltoall's pieces among 3 ranks or more go round two large buffers, not all
/// four: one piece is a meeting of all ranks, which have all entered it before any
/// writes the piece after the next, so two never wait, and the buffers' lines stay in
/// the caches (8 ranks, 64-128 KiB blocks in pieces, 0.74-0.75 of the time; 4 ranks,
/// 512 KiB 0.82, 16-256 KiB within the noise; A/B of 8-10 interleaved rounds). On 2
/// ranks, with a core each, two buffers took 0.81-1.33 of the time at 64 KiB-1 MiB
/// (10 rounds): no clear change, so they go round all four, as other collectives do.
///
/// So do an allreduce's pieces among 3 ranks or more once the ranks' vectors come to
/// [`TWO_BUFFERS_FROM`] together (`bytes` is the vector): a piece is two meetings of
/// all ranks, and each rank has waited at the second for every rank's reading of the
/// buffer the next piece takes, so no piece after the first waits to write. (The
/// first may, after a collective whose writers ran ahead, a bcast's root say: its
/// buffer may then have been read two collectives back rather than four.)
///
/// Inlined: every short blocking call asks it, with the collective a constant there
/// (a reader of a 4-rank bcast of 8 B ran 29 instructions fewer per call, callgrind).
#[inline(always)]
fn large_room(coll: Collective, size: usize, bytes: usize) -> Large {
    match coll {
        Collective::Bcast => Large::Ahead(LARGE),
        Collective::Reduce | Collective::Gather => {
            Large::Ahead(AHEAD_DATA / size.saturating_sub(1).max(1))
        }
        Collective::Alltoall if size > 2 => Large::InTurn(2),
        Collective::Allreduce if size > 2 && size * bytes >= TWO_BUFFERS_FROM => Large::InTurn(2),
        _ => Large::InTurn(LARGE_DEPTH),
    }
}

/// The ranks' vectors together from which an allreduce's pieces go round two large
/// buffers ([`large_room`]): the area's share of the caches halves. Against four,
/// measured within one job alternating blocks of 20-50 calls of each way (medians of
/// 30-40 blocks each, three to six jobs; docs/benchmarks.md): 8 ranks, 512 KiB in
/// 0.72-0.80 of the time, 1 MiB 0.76-0.97, 256-384 KiB 0.92-1.02; 4 ranks, 512 KiB-1
/// MiB 0.92-0.97; with less together no gain (4 ranks, 128-256 KiB 0.99-1.02, 64 KiB
/// 1.02-1.08, where A/A jobs read 0.91-1.06).
const TWO_BUFFERS_FROM: usize = 2 * 1024 * 1024;

/// What the ranks running ahead in a reduce or gather may leave for the root
/// together ([`large_room`]).
const AHEAD_DATA: usize = 1024 * 1024;

/// Read access to the slots of the collective a meeting just moved past, lent to the
/// writer of the next one (other ranks keep those slots until this rank publishes).
pub(crate) struct Earlier<'e> {
    area: Area,
    slots: &'e [usize],
    seq: u64,
}

impl Earlier<'_> {
    /// What `rank` wrote then (its length checked by the caller at the time).
    pub(crate) fn read(&self, rank: usize) -> &[u8] {
        // SAFETY: every rank published `seq` having written for it (the meeting waited
        // for all and read each before moving on), and this rank has not published
        // the next collective yet: an `Earlier` lives only inside
        // `Meeting::next_piece_from`'s fill, before the publish.
        unsafe { self.area.read(self.slots[rank], self.seq).0 }
    }
}

const LEN_BITS: u64 = (1 << 48) - 1;
const ESZ_BITS: u64 = (1 << 15) - 1;
/// Set in a slot's shape when the slot says where the rank's buffer lies (for ranks
/// that copy from it directly) instead of holding data.
const DIRECT: u64 = 1 << 63;

/// Where a rank's buffer lies, written in its slot instead of data when the ranks
/// lend their buffers: the others copy from `src`; `note`, a word for the others
/// (what an alltoall's rank 0 decided); `collapsed`, nonzero where lending put some
/// of the lender's memory on huge pages first (`transport/shm/huge_pages.rs`).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Loan {
    pid: u64,
    src: u64,
    note: u64,
    collapsed: u64,
}

impl Loan {
    /// The word the lender added ([`Meeting::lend`]).
    pub(crate) fn note(&self) -> u64 {
        self.note
    }

    /// Whether the lender put memory on huge pages as it lent, which held it up for
    /// up to milliseconds: a call not to time.
    pub(crate) fn collapsed(&self) -> bool {
        self.collapsed != 0
    }

    /// Whether the lender lent nothing to copy from ([`Meeting::lend_nothing`]).
    pub(crate) fn is_empty(&self) -> bool {
        self.pid == 0
    }

    /// The buffer the others copy from.
    pub(crate) fn source(&self) -> RemoteBuf {
        RemoteBuf {
            pid: self.pid,
            addr: self.src,
        }
    }
}

/// Bytes a rank writes to describe its buffers for direct copies.
pub(crate) const DESCRIPTOR: usize = size_of::<Loan>();

/// An operation's shape: its length (below 2^48 bytes) and element size.
fn shape(total: usize, esz: usize) -> u64 {
    (total as u64 & LEN_BITS) | ((esz as u64 & ESZ_BITS) << 48)
}

impl Comm {
    /// Where `coll` meets in the node's area, if it runs there for this call: it is
    /// blocking, the communicator's ranks are one node's, the selection says so, and
    /// `slot_bytes` (the most any rank writes) fits, or the ranks lend their buffers
    /// instead ([`select::lend`]); see also [`Comm::learned_on_node`]. `table_bytes` is
    /// what the selection table is keyed by. Inlined, as are the calls below it that
    /// return a `Result`: returned through memory and read back with wide loads, each
    /// such result waited for the last collective's published line to leave this core
    /// (a store-forwarding stall, docs/benchmarks.md).
    #[inline(always)]
    pub(super) fn on_node(
        &self,
        form: Form,
        coll: Collective,
        table_bytes: usize,
        slot_bytes: usize,
    ) -> Result<Option<Venue<'_>>> {
        if form == Form::Nonblocking {
            return Ok(None);
        }
        let Some(slots) = self.node_indices()? else {
            return Ok(None);
        };
        let n = slots.len();
        let lends = select::lend(coll, table_bytes, n);
        let lend = lends && engine::with(|e| Ok(e.net.node_single_copy()))?;
        let slot_bytes = if lend { DESCRIPTOR } else { slot_bytes };
        if slot_bytes > LARGE {
            return Ok(None);
        }
        let large = large_room(coll, n, table_bytes);
        let venue = Venue {
            slots,
            room: Room::for_bytes(slot_bytes, large),
            large,
            lend,
        };
        Ok(select::on_node(coll, table_bytes, n, lend)?.then_some(venue))
    }

    /// Where a blocking `coll` that [`Comm::on_node`] sends to messages meets in the
    /// node's area after all, as rank 0 learns is faster (`coll/learned.rs`): on 2
    /// ranks beyond the table's limits ([`select::learns`]), where `slot_bytes` fits
    /// and, for an allreduce in pieces, the node allows single copies. Out of line and
    /// asked only after `on_node`, so that the short calls carry none of it.
    #[cold]
    #[inline(never)]
    pub(super) fn learned_on_node(
        &self,
        form: Form,
        coll: Collective,
        table_bytes: usize,
        slot_bytes: usize,
    ) -> Result<Option<Venue<'_>>> {
        if form == Form::Nonblocking {
            return Ok(None);
        }
        let Some(slots) = self.node_indices()? else {
            return Ok(None);
        };
        let n = slots.len();
        if !select::learns(coll, table_bytes, n) || slot_bytes > LARGE {
            return Ok(None);
        }
        if select::pieces_need_single_copy(coll, table_bytes, n)
            && !engine::with(|e| Ok(e.net.node_single_copy()))?
        {
            return Ok(None);
        }
        let large = large_room(coll, n, table_bytes);
        let venue = Venue {
            slots,
            room: Room::for_bytes(slot_bytes, large),
            large,
            lend: false,
        };
        let area = self.learned_way(coll, venue, table_bytes)?;
        if area {
            select::ran_as_learned(coll);
        }
        Ok(area.then_some(venue))
    }

    /// Runs one collective over the node's area, at `venue` (from [`Comm::on_node`]).
    pub(crate) fn meet<R>(
        &self,
        op: Collective,
        venue: Venue<'_>,
        f: impl FnOnce(&mut Meeting<'_>) -> Result<R>,
    ) -> Result<R> {
        // The collective's tag goes unused, so that ranks that run it as messages
        // (disagreeing) and ranks that meet here number later collectives alike.
        let number = self.skip_coll_route();
        engine::with(|eng| {
            let (area, ticket) = eng
                .net
                .area(venue.room)
                .expect("a communicator on one node has shared memory");
            let mut m = Meeting {
                eng,
                area,
                ticket,
                slots: venue.slots,
                group: self.group(),
                rank: self.rank() as usize,
                op,
                shape: 0,
                large: venue.large,
                lend: venue.lend,
                wrote: 0,
                comm: self,
                number,
            };
            f(&mut m)
        })
    }
}

/// The fatal error this communicator rank `me` reports when it and rank `peer` run
/// collective `op` on either side of the node's area (`me_in_area`: this rank met in
/// the area, the peer sends messages; else the other way round); `group` maps both
/// to world ranks. Nothing can put such ranks back in step, so the job ends.
pub(crate) fn split_paths(
    group: &[u32],
    op: &str,
    (me, peer): (usize, usize),
    me_in_area: bool,
) -> Error {
    let (in_area, on_messages) = if me_in_area { (me, peer) } else { (peer, me) };
    Error::CollectiveMismatch {
        rank: group[me] as Rank,
        peer: group[peer] as Rank,
        detail: format!(
            "{op}: the ranks disagree on the counts: rank {in_area} meets in the shared-memory area where rank {on_messages} sends messages"
        ),
    }
}

/// This rank's side of a blocking collective run as messages on a communicator of
/// one node's ranks: one that could meet in the node's area but that the selection
/// sent to messages on this rank, or one that never meets there. It still takes the
/// collective's number and publishes it, flagged as messages: a rank that meets in
/// the area in the same collective (the ranks disagree on the counts, which put them
/// on either side of a selection limit) then fails reading this rank's slot instead
/// of waiting for its data, and this rank, while it waits for messages that such a
/// rank never sends, finds it there ([`Beside::apart`]) instead of waiting forever; so does a rank
/// beside one that runs another collective as messages under the same number (each
/// may only wait to receive, so that no message of the other's comes).
pub(crate) struct Beside<'c> {
    area: Area,
    slots: &'c [usize],
    rank: usize,
    op: Collective,
    seq: u64,
}

impl<'c> Beside<'c> {
    /// Enters the next collective over the area as rank `rank` of a communicator
    /// whose ranks have area indices `slots`, running it as messages.
    pub(crate) fn enter(
        eng: &mut Engine,
        slots: &'c [usize],
        rank: usize,
        op: Collective,
    ) -> Beside<'c> {
        let (area, ticket) = eng
            .net
            .area(Room::Slot)
            .expect("a communicator on one node has shared memory");
        // Nothing is written: the flagged number alone needs no free slot.
        area.publish(slots[rank], ticket.seq, op as u8, true, false);
        // A rank asleep until every rank enters this number (to reuse a slot) wakes.
        eng.net
            .wake_local(|| Meeting::all_reached(area, slots, ticket.seq));
        Beside {
            area,
            slots,
            rank,
            op,
            seq: ticket.seq,
        }
    }

    /// A rank that will never send this rank's messages of this collective, if any:
    /// one that meets in the area in it, or runs another collective under its
    /// number; with how, and which collective it entered.
    pub(crate) fn apart(&self) -> Option<(usize, Arrival, u8)> {
        (0..self.slots.len()).find_map(|r| match self.area.arrival(self.slots[r], self.seq) {
            Some((how, what))
                if r != self.rank && (how == Arrival::InArea || what != self.op as u8) =>
            {
                Some((r, how, what))
            }
            _ => None,
        })
    }

    /// The fatal error of this rank, whose communicator's world ranks are `group`,
    /// beside rank `other`, which took part as `how` in collective `what` ([`Beside::apart`]).
    pub(crate) fn error(&self, group: &[u32], (other, how, what): (usize, Arrival, u8)) -> Error {
        if what == self.op as u8 {
            return split_paths(group, self.op.name(), (self.rank, other), false);
        }
        let (theirs, ours) = match how {
            Arrival::InArea => (" in the shared-memory area", " (as messages)"),
            Arrival::ViaMessages => ("", ""),
        };
        Error::CollectiveMismatch {
            rank: group[self.rank] as Rank,
            peer: group[other] as Rank,
            detail: self
                .op
                .other_called((self.rank, other), what, (theirs, ours)),
        }
    }
}

impl<'a> Meeting<'a> {
    /// [`Engine::wait_shared`], watching for messages sent under this collective's
    /// number on the communicator: a rank that sent them runs a collective as
    /// messages where this one meets in the area (a nonblocking one, which never
    /// publishes in the area, or one it reached by skipping the one the others wait
    /// in here: its own arguments failed their checks), and would wait for this
    /// rank's messages while this rank waits for its data here. The engine ends the
    /// job with a report naming both (`engine/clash.rs`).
    fn wait_shared(
        &mut self,
        ready: &dyn Fn() -> bool,
        all_in: Option<u64>,
        stuck: &dyn Fn(&Finalized) -> Option<usize>,
    ) -> Result<()> {
        let (comm, number, op) = (self.comm, self.number, self.op);
        let watch = || comm.coll_route(number, op, select::Algorithm::SharedMemory);
        self.eng.wait_shared(ready, all_in, stuck, &watch)
    }

    /// Whether every rank has entered collective `seq`.
    fn all_reached(area: Area, slots: &[usize], seq: u64) -> bool {
        slots.iter().all(|&l| area.entered(l, seq))
    }

    /// Waits (progressing the engine) until every rank has entered collective `seq`,
    /// and notes that in the books.
    fn wait_all_reached(&mut self, seq: u64) -> Result<()> {
        let (area, slots, group) = (self.area, self.slots, self.group);
        if !Self::all_reached(area, slots, seq) {
            // A rank that finalized before entering never will.
            let stuck = |f: &Finalized| {
                if !f.any() {
                    return None;
                }
                (0..slots.len())
                    .find(|&r| f.has(group[r] as usize) && !area.entered(slots[r], seq))
                    .map(|r| group[r] as usize)
            };
            let ready = || Self::all_reached(area, slots, seq);
            self.wait_shared(&ready, Some(seq), &stuck)?;
        }
        self.eng.net.all_entered(seq);
        Ok(())
    }

    /// Writes this rank's contribution (`len` bytes, produced by `fill`) into its slot.
    pub(crate) fn write(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<()> {
        debug_assert!(self.ticket.free_after < self.ticket.seq);
        if self.ticket.free_after > 0 {
            // Often everyone is further on than needed: learning that once saves this
            // check (a read of every rank's line) for the next few collectives.
            let recent = self.ticket.seq - 1;
            if Self::all_reached(self.area, self.slots, recent) {
                self.eng.net.all_entered(recent);
            } else {
                self.wait_all_reached(self.ticket.free_after)?;
            }
        }
        // SAFETY: every rank has entered the collective after the last use of the slot
        // or buffer we write (waited for above, or known from the books).
        unsafe {
            self.area
                .write(self.slots[self.rank], &self.ticket, (len, self.shape), fill)
        };
        self.wrote = self.ticket.seq;
        Ok(())
    }

    /// Announces that this rank entered the collective (with its data, if it wrote
    /// any). `source`: other ranks wait for this rank's data alone (a root's).
    pub(crate) fn publish(&mut self, source: bool) {
        let (area, slots, seq) = (self.area, self.slots, self.ticket.seq);
        area.publish(
            slots[self.rank],
            seq,
            self.op as u8,
            false,
            self.wrote == seq,
        );
        self.eng
            .net
            .wake_local(|| source || Self::all_reached(area, slots, seq));
        if source {
            // A root runs ahead of the ranks that read it: it asks for the line it
            // writes next, owned, while they still read older ones, so that its next
            // write need not wait for the line to leave their core (4 ranks on 2
            // cores, bcast of 1-32 B: 0.83-0.88 of the time where a cache line takes
            // 0.2-0.27 us between the cores, no change where it takes 0.06 us).
            area.prefetch_write(slots[self.rank], seq + 1);
        } else if self.eng.policy.spins() {
            // While it waits, a rank with a core of its own fetches the line it writes
            // next: 2 ranks, 4-32 B allreduce in 0.87-0.93 of the time (A/B, 16 rounds
            // each way). Among ranks sharing cores it cost 4-rank allreduce 5-10%.
            area.prefetch(slots[self.rank], seq + 1);
        }
    }

    /// Waits until every rank has published.
    pub(crate) fn wait_all(&mut self) -> Result<()> {
        self.wait_all_reached(self.ticket.seq)
    }

    /// Fails unless every rank (all of which have published) entered this
    /// collective, for operations that read nothing from the others (reading checks
    /// it for the rank read).
    pub(crate) fn all_entered_same(&self) -> Result<()> {
        (0..self.slots.len()).try_for_each(|r| self.check_entered(r))
    }

    /// [`Meeting::entered_same`], with the common case (`rank` entered this very
    /// collective in the area and has not moved on) told by one load and compare.
    #[inline]
    fn check_entered(&self, rank: usize) -> Result<()> {
        if self
            .area
            .entered_as(self.slots[rank], self.ticket.seq, self.op as u8)
        {
            return Ok(());
        }
        self.entered_same(rank)
    }

    /// Waits until `rank` has published.
    pub(crate) fn wait_for(&mut self, rank: usize) -> Result<()> {
        let (area, l, seq) = (self.area, self.slots[rank], self.ticket.seq);
        let ready = move || area.entered(l, seq);
        if ready() {
            return Ok(());
        }
        let world = self.group[rank] as usize;
        let stuck = |f: &Finalized| f.has(world).then_some(world);
        // Not published as a wait for every rank: readers of a broadcast that kept
        // their core while the others on it waited for the root too ran 2-8% slower.
        self.wait_shared(&ready, None, &stuck)
    }

    /// What `rank` (which has published) wrote, checked to be `len` bytes of an
    /// operation of the same shape as this rank's.
    #[inline(always)]
    pub(crate) fn read(&self, rank: usize, len: usize) -> Result<&[u8]> {
        let (data, theirs) = self.raw(rank)?;
        // The shape holds the length, the element size and whether the rank lent its
        // buffer: one compare stands for three of `disagreement`'s checks.
        if theirs == self.shape && data.len() == len {
            return Ok(data);
        }
        self.disagreement(rank, len, data.len(), theirs)
    }

    /// Why `rank`'s `got` bytes of an operation of shape `theirs` are not the `len`
    /// bytes of this rank's shape that [`Meeting::read`] expected.
    #[cold]
    #[inline(never)]
    fn disagreement<'m>(
        &self,
        rank: usize,
        len: usize,
        got: usize,
        theirs: u64,
    ) -> Result<&'m [u8]> {
        let disagree = |what: &str, theirs: u64, ours: u64| {
            Err(Error::InvalidArgument(format!(
                "{}: rank {rank} {what} {theirs} bytes where rank {} has {ours} (the ranks disagree on the counts)",
                self.op.name(),
                self.rank
            )))
        };
        let ours = self.shape;
        if (theirs ^ ours) & DIRECT != 0 {
            let how = |shape| {
                if shape & DIRECT != 0 {
                    "lends its buffer"
                } else {
                    "copies data"
                }
            };
            return Err(Error::InvalidArgument(format!(
                "{}: rank {rank} {} where rank {} {} (the ranks disagree on the counts)",
                self.op.name(),
                how(theirs),
                self.rank,
                how(ours)
            )));
        }
        if theirs & LEN_BITS != ours & LEN_BITS {
            return disagree("has a vector of", theirs & LEN_BITS, ours & LEN_BITS);
        }
        let esz = |shape: u64| (shape >> 48) & ESZ_BITS;
        if esz(theirs) != esz(ours) {
            return disagree("has elements of", esz(theirs), esz(ours));
        }
        // The shapes agree, so the lengths do not.
        disagree("contributed", got as u64, len as u64)
    }

    /// What `rank` (which has published) wrote, its length unchecked, and the length
    /// of the operation it belongs to (see [`Meeting::set_shape`]).
    pub(crate) fn read_unchecked(&self, rank: usize) -> Result<(&[u8], usize)> {
        let (data, shape) = self.raw(rank)?;
        Ok((data, (shape & LEN_BITS) as usize))
    }

    /// Fails if `rank` (which has published) runs this collective as messages
    /// instead ([`Beside`]), or entered another collective than this rank (the ranks
    /// call different collectives, or in a different order).
    #[cold]
    fn entered_same(&self, rank: usize) -> Result<()> {
        match self.area.arrival(self.slots[rank], self.ticket.seq) {
            // Fatal, as on the messages side: that rank may already have returned
            // from the collective (an eager send), so nothing can put the two back in
            // step.
            Some((Arrival::ViaMessages, what)) if what == self.op as u8 => Err(split_paths(
                self.group,
                self.op.name(),
                (self.rank, rank),
                true,
            )),
            Some((Arrival::ViaMessages, what)) => Err(Error::CollectiveMismatch {
                rank: self.group[self.rank] as Rank,
                peer: self.group[rank] as Rank,
                detail: self.other_collective(
                    rank,
                    what,
                    " (as messages)",
                    " in the shared-memory area",
                ),
            }),
            Some((Arrival::InArea, what)) if what != self.op as u8 => Err(Error::InvalidArgument(
                self.other_collective(rank, what, "", ""),
            )),
            // Entered this operation, or moved on (then it entered it too).
            _ => Ok(()),
        }
    }

    /// The report of `rank` calling the collective it published as `what` (`theirs`
    /// and `ours` say where each side runs it).
    fn other_collective(&self, rank: usize, what: u8, theirs: &str, ours: &str) -> String {
        self.op
            .other_called((self.rank, rank), what, (theirs, ours))
    }

    /// What `rank` wrote, and the shape of its operation; an error if it runs this
    /// collective as messages instead ([`Beside`]), entered another one, or wrote
    /// nothing for it.
    #[inline(always)]
    fn raw(&self, rank: usize) -> Result<(&[u8], u64)> {
        let (l, seq) = (self.slots[rank], self.ticket.seq);
        if !self.area.entered_with_data(l, seq, self.op as u8) {
            self.check_readable(rank)?;
        }
        // SAFETY: callers read only ranks they waited for (`wait_all`, `wait_for`),
        // which wrote for this collective (checked above), and the slice borrows the
        // meeting, which must be borrowed mutably to publish or move on: the bytes are
        // dropped before this rank enters the next collective.
        Ok(unsafe { self.area.read(l, seq) })
    }

    /// [`Meeting::entered_same`], and `rank` wrote for this collective (ranks that
    /// disagree on the counts or the root read ranks that did not: their slots hold
    /// what they wrote a lap of the slots earlier).
    #[cold]
    #[inline(never)]
    fn check_readable(&self, rank: usize) -> Result<()> {
        self.entered_same(rank)?;
        if self.area.wrote_nothing(self.slots[rank], self.ticket.seq) {
            return Err(Error::InvalidArgument(format!(
                "{}: rank {rank} contributed nothing where rank {} reads its data (the ranks disagree on the counts or the root)",
                self.op.name(),
                self.rank
            )));
        }
        Ok(())
    }

    /// Whether the ranks lend their buffers in this collective, to be copied from
    /// directly ([`Meeting::lend`], [`Meeting::copy_lent`]), as every rank that
    /// agrees on the counts decided alike ([`select::lend`]).
    pub(crate) fn lends(&self) -> bool {
        self.lend
    }

    /// Writes where `src` lies, and `note` for the others ([`Loan::note`]), instead of
    /// data (after [`Meeting::set_shape`]), so that other ranks copy from `src`
    /// directly. It must stay as it is until every rank says, in a later collective,
    /// that it has finished copying.
    pub(crate) fn lend(&mut self, src: &[u8], note: u64) -> Result<()> {
        let (here, collapsed) = RemoteBuf::lent(src.as_ptr() as usize, src.len());
        self.write_loan(Loan {
            pid: here.pid,
            src: here.addr,
            note,
            collapsed: u64::from(collapsed),
        })
    }

    /// Writes a loan of nothing ([`Loan::is_empty`]) where the ranks lend: a rank that
    /// takes part in such a collective but copies from nobody and lets nobody copy
    /// from it (it goes on another way, as it knows the others do). A rank out of
    /// step, which expects loans to copy from, finds one here and fails reading it.
    pub(crate) fn lend_nothing(&mut self) -> Result<()> {
        self.write_loan(bytemuck::Zeroable::zeroed())
    }

    fn write_loan(&mut self, loan: Loan) -> Result<()> {
        self.shape |= DIRECT;
        self.write(DESCRIPTOR, |slot| {
            slot.copy_from_slice(bytemuck::bytes_of(&loan));
        })
    }

    /// Where the buffers `rank` (which has published) lent lie, and the length of its
    /// operation; `None` if it wrote data instead.
    pub(crate) fn lent(&self, rank: usize) -> Option<(Loan, usize)> {
        let (data, shape) = self.raw(rank).ok()?;
        (shape & DIRECT != 0 && data.len() == DESCRIPTOR).then(|| {
            (
                bytemuck::pod_read_unaligned(data),
                (shape & LEN_BITS) as usize,
            )
        })
    }

    /// Copies bytes `offset..offset + dst.len()` of the buffer `rank` lent (at
    /// `remote`, from [`Loan::source`]) into `dst`.
    pub(crate) fn copy_lent(
        &self,
        rank: usize,
        remote: &RemoteBuf,
        offset: usize,
        dst: &mut [u8],
    ) -> Result<()> {
        self.eng
            .net
            .read_local(self.slots[rank], remote, offset, dst)
    }

    /// Ends a collective in which this rank lent its buffer: says in the next
    /// collective number that it has finished copying from the others, and waits
    /// until every rank has said so (then nobody copies from its buffer any more).
    pub(crate) fn close_loan(&mut self) -> Result<()> {
        self.next_piece(0);
        // An empty contribution, not what the slot held a lap ago: a rank that reads
        // it as data (ranks out of step after an error on one of them: an alltoall's
        // others may have gone on in pieces) fails instead of copying stale bytes.
        // Published even if that fails, so that no rank waits for this one.
        let wrote = self.write(0, |_| {});
        self.publish(false);
        wrote.and_then(|()| self.wait_all())
    }

    /// Asks for the lines of what every other rank (all of which have published)
    /// wrote in its small slot, all at once, where the ranks have a core each (they
    /// spin): a rank that then reads them in order waited for one line after another
    /// from the other core. 2 ranks, allreduce of 256 B-4 KiB in 0.85-0.98 of the time,
    /// 128 B 0.93-1.00, 8-64 B 0.99-1.03; 8 KiB (in a large buffer) 1.08-1.12x, and
    /// among ranks sharing cores 4 KiB 1.06-1.08x, so neither asks (docs/benchmarks.md).
    pub(crate) fn fetch_others(&self) {
        if !self.eng.policy.spins() {
            return;
        }
        for r in (0..self.slots.len()).filter(|&r| r != self.rank) {
            if let Ok((data, _)) = self.raw(r)
                && data.len() <= SMALL
            {
                for line in data.chunks(LINE) {
                    prefetch::read(line.as_ptr());
                }
            }
        }
    }

    /// Reads what every other rank (all of which have published) wrote, in rank
    /// order, each checked as by [`Meeting::read`] to be `len` bytes, and hands it to
    /// `take` (this rank's own data is at hand: reading back the line it just
    /// published can cost a transfer between cores). On a disagreement, releases any
    /// rank that lent its buffer instead and fails.
    pub(crate) fn read_each(
        &mut self,
        len: usize,
        mut take: impl FnMut(usize, &[u8]),
    ) -> Result<()> {
        for r in (0..self.slots.len()).filter(|&r| r != self.rank) {
            match self.read(r, len) {
                Ok(theirs) => take(r, theirs),
                Err(e) => {
                    self.release_lenders();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// After reading data failed: if some rank lent its buffer instead (it expects
    /// other counts), takes part in the collective number in which the lenders wait
    /// for everyone, so none of them waits forever.
    pub(crate) fn release_lenders(&mut self) {
        let size = self.slots.len();
        if (0..size).any(|r| self.lent(r).is_some()) {
            self.next_piece(0);
            self.publish(false);
        }
    }

    /// Sets the length in bytes and the element size of the whole operation this
    /// rank's pieces belong to.
    pub(crate) fn set_shape(&mut self, total: usize, esz: usize) {
        self.shape = shape(total, esz);
    }

    /// Moves on to the next collective (as [`Meeting::next_piece`]) and writes this
    /// rank's `len` bytes for it with `fill`, which may read what every rank wrote for
    /// the collective just left (all of which this rank has waited for).
    pub(crate) fn next_piece_from(
        &mut self,
        bytes: usize,
        len: usize,
        fill: impl FnOnce(&mut [u8], &Earlier<'_>),
    ) -> Result<()> {
        let earlier = Earlier {
            area: self.area,
            slots: self.slots,
            seq: self.ticket.seq,
        };
        self.next_piece(bytes);
        self.write(len, |slot| fill(slot, &earlier))
    }

    /// Moves on to the next collective over the area, for a pipeline of pieces that
    /// every rank runs alike; `bytes`: the most any rank writes in it.
    pub(crate) fn next_piece(&mut self, bytes: usize) {
        let (_, ticket) = self
            .eng
            .net
            .area(Room::for_bytes(bytes, self.large))
            .expect("a meeting has shared memory");
        self.ticket = ticket;
    }

    /// What this rank learned of an alltoall's two ways on communicators of this
    /// one's size (see `alltoall/shared_memory.rs`).
    pub(crate) fn alltoall_ways(&mut self) -> &mut TwoWays {
        two_ways::keyed(&mut self.eng.alltoall_ways, self.slots.len())
    }

    /// The communicator the collective runs on.
    pub(crate) fn comm(&self) -> &'a Comm {
        self.comm
    }

    /// The world rank of communicator rank `rank` (for reports).
    pub(crate) fn world_rank(&self, rank: usize) -> Rank {
        self.group[rank] as Rank
    }

    /// This rank in the communicator, and the communicator's size.
    pub(crate) fn rank_size(&self) -> (usize, usize) {
        (self.rank, self.slots.len())
    }
}
