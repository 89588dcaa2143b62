//! `MPI_Reduce_scatter`: the vector is reduced over all ranks and rank `i` keeps the
//! `counts[i]` elements of block `i`.
//!
//! Algorithms: [`recursive_halving`] (any operation; also the first half of
//! Rabenseifner's allreduce and reduce) and [`ring`] (commutative operations; also
//! the first half of the ring allreduce). Invariant: the result is written to the
//! start of the receive buffer only after the input is no longer read (the in-place
//! form reads its input from the same buffer).

pub(crate) mod recursive_halving;
pub(crate) mod ring;

use bytemuck::Pod;

use super::blocks::Blocks;
use super::fold::Fold;
use super::op::Reduction;
use super::select::{self, Algorithm, Collective};
use super::wrong_len;
use crate::comm::Comm;
use crate::engine::schedule::{Buf, Schedule, Span};
use crate::error::{Error, Result};
use crate::request::{Request, Scope};
use recursive_halving::{Halved, Order, bit_reverse};

impl Comm {
    /// Reduces `send` from every rank with `op` and leaves block `rank` of the result
    /// (`counts[rank]` elements, blocks back to back in rank order) in `recv`
    /// (`MPI_Reduce_scatter`). `send` holds the sum of `counts` elements.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let (rank, size) = (world.rank() as usize, world.size() as usize);
    /// let counts: Vec<usize> = (1..=size).collect(); // rank i keeps i + 1 sums
    /// let ones = vec![1u32; size * (size + 1) / 2];
    /// let mut mine = vec![0u32; rank + 1];
    /// world.reduce_scatter(&ones, &mut mine, &counts, oxmpi::Op::Sum)?;
    /// assert!(mine.iter().all(|&x| x == size as u32));
    /// # Ok(()) }
    /// ```
    pub fn reduce_scatter<T: Pod, O: Reduction<T>>(
        &self,
        send: &[T],
        recv: &mut [T],
        counts: &[usize],
        op: O,
    ) -> Result<()> {
        let sched =
            self.reduce_scatter_schedule(Collective::ReduceScatter, Some(send), recv, counts, op)?;
        self.run_beside(sched, Collective::ReduceScatter)
    }

    /// [`Comm::reduce_scatter`] with `buf` holding the whole input and receiving this
    /// rank's block at its start (`MPI_Reduce_scatter` with `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let size = world.size() as usize;
    /// let mut buf = vec![2.0f64; size];
    /// world.reduce_scatter_in_place(&mut buf, &vec![1; size], oxmpi::Op::Prod)?;
    /// assert_eq!(buf[0], 2f64.powi(size as i32));
    /// # Ok(()) }
    /// ```
    pub fn reduce_scatter_in_place<T: Pod, O: Reduction<T>>(
        &self,
        buf: &mut [T],
        counts: &[usize],
        op: O,
    ) -> Result<()> {
        let sched =
            self.reduce_scatter_schedule(Collective::ReduceScatter, None, buf, counts, op)?;
        self.run_beside(sched, Collective::ReduceScatter)
    }

    /// Starts [`Comm::reduce_scatter`] (`MPI_Ireduce_scatter`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let size = world.size() as usize;
    /// let send = vec![1i32; size];
    /// let mut mine = [0i32];
    /// oxmpi::scope(|s| world.ireduce_scatter(s, &send, &mut mine, &vec![1; size], oxmpi::Op::Sum)?.wait())?;
    /// assert_eq!(mine[0], size as i32);
    /// # Ok(()) }
    /// ```
    pub fn ireduce_scatter<'s, T: Pod, O: Reduction<T>>(
        &self,
        scope: &'s Scope<'s, '_>,
        send: &'s [T],
        recv: &'s mut [T],
        counts: &[usize],
        op: O,
    ) -> Result<Request<'s>> {
        let sched =
            self.reduce_scatter_schedule(Collective::ReduceScatter, Some(send), recv, counts, op)?;
        self.start_in(scope, sched)
    }

    /// Starts [`Comm::reduce_scatter_in_place`] (`MPI_Ireduce_scatter` with
    /// `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let size = world.size() as usize;
    /// let mut buf = vec![1u64; size];
    /// oxmpi::scope(|s| world.ireduce_scatter_in_place(s, &mut buf, &vec![1; size], oxmpi::Op::Sum)?.wait())?;
    /// assert_eq!(buf[0], size as u64);
    /// # Ok(()) }
    /// ```
    pub fn ireduce_scatter_in_place<'s, T: Pod, O: Reduction<T>>(
        &self,
        scope: &'s Scope<'s, '_>,
        buf: &'s mut [T],
        counts: &[usize],
        op: O,
    ) -> Result<Request<'s>> {
        let sched =
            self.reduce_scatter_schedule(Collective::ReduceScatter, None, buf, counts, op)?;
        self.start_in(scope, sched)
    }

    /// The schedule of a reduce-scatter of `send` (or, if `None`, of `recv` in place)
    /// into blocks of `counts` elements; `coll` names the caller for selection.
    pub(super) fn reduce_scatter_schedule<T: Pod, O: Reduction<T>>(
        &self,
        coll: Collective,
        send: Option<&[T]>,
        recv: &mut [T],
        counts: &[usize],
        op: O,
    ) -> Result<Schedule> {
        let (rank, size) = (self.rank() as usize, self.size() as usize);
        let name = coll.name();
        if counts.len() != size {
            return Err(Error::InvalidArgument(format!(
                "{name}: {} counts given, needs one per rank ({size})",
                counts.len()
            )));
        }
        let Some(total) = counts.iter().try_fold(0usize, |t, &c| t.checked_add(c)) else {
            return Err(Error::InvalidArgument(format!(
                "{name}: the counts add up to more than any buffer can hold"
            )));
        };
        // reduce_scatter_block takes no counts: its one count is the receive buffer's.
        let sum = match coll {
            Collective::ReduceScatterBlock => "the receive buffer's length times the ranks",
            _ => "the sum of the counts",
        };
        match send {
            Some(send) if send.len() != total => {
                return Err(wrong_len(name, "the send buffer", send.len(), total, sum));
            }
            Some(_) if recv.len() != counts[rank] => {
                return Err(wrong_len(
                    name,
                    "the receive buffer",
                    recv.len(),
                    counts[rank],
                    "this rank's count",
                ));
            }
            None if recv.len() != total => {
                return Err(wrong_len(name, "the buffer", recv.len(), total, sum));
            }
            _ => {}
        }
        let esz = size_of::<T>();
        let commutative = op.is_commutative();
        let alg = select::choose(coll, total * esz, size, commutative)?;
        let input = if send.is_some() { Buf::Send } else { Buf::Recv };
        let mut s = self.schedule(coll, alg, send.unwrap_or(&[]), recv);
        s.set_op(op.into_combine());
        let blocks = Blocks::packed(counts, esz);
        let len = counts[rank] * esz;
        // In place, the result's home overlaps the input: build it aside, then move it.
        let out = match send {
            Some(_) => Span::new(Buf::Recv, 0, len),
            None => Span::new(s.temp(len), 0, len),
        };
        match alg {
            Algorithm::Ring => ring::build(&mut s, input, &blocks, out, None),
            Algorithm::RecursiveHalving => halving(&mut s, input, &blocks, out, commutative),
            other => unreachable!("{other:?} is not a {name} algorithm"),
        }
        s.copy(out, Span::new(Buf::Recv, 0, len));
        Ok(s)
    }
}

/// Recursive halving over the fold's participants, each segment being the blocks of
/// the ranks a participant stands for; then each rank's block goes to `out`.
fn halving(s: &mut Schedule, input: Buf, blocks: &Blocks, out: Span, commutative: bool) {
    let rank = s.rank();
    let fold = Fold::new(s.size());
    let segs = blocks.grouped(fold.pof2, |q| fold.ranks(q));
    let work = s.temp(blocks.total());
    let order = if commutative {
        Order::Halving
    } else {
        Order::Doubling
    };
    match recursive_halving::build(s, &fold, input, work, &segs, order) {
        Halved::Extra { partner } => {
            s.fence();
            s.recv(partner, out);
        }
        Halved::Participant {
            q, absorbed, held, ..
        } => {
            if held != q {
                // Doubling leaves participant q with segment bitrev(q): swap into place.
                debug_assert_eq!(held, bit_reverse(q, fold.pof2.trailing_zeros()));
                let peer = fold.rank_of(held);
                s.send(peer, segs.span(work, held));
                s.recv(peer, segs.span(work, q));
                s.fence();
            }
            if let Some(lower) = absorbed {
                s.send(lower, blocks.span(work, lower));
            }
            s.copy(blocks.span(work, rank), out);
        }
    }
}
