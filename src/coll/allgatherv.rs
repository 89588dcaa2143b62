//! `MPI_Allgatherv`: every rank ends with every rank's block, blocks of any length
//! placed where each receiver says.
//!
//! Algorithms: allgather's [`recursive_doubling`] and [`ring`]. The counts must agree
//! on every rank but the displacements are each receiver's own, so recursive
//! doubling, whose messages span several blocks, runs on a packed copy when this
//! rank's blocks are not laid out back to back in rank order. Invariant: message
//! sizes depend only on the counts, never on displacements.

use bytemuck::Pod;

use super::allgather::{recursive_doubling, ring};
use super::blocks::Blocks;
use super::select::{self, Algorithm, Collective};
use super::{check_layout, wrong_len};
use crate::comm::Comm;
use crate::engine::schedule::{Buf, Schedule, Span};
use crate::error::Result;
use crate::request::{Request, Scope};

impl Comm {
    /// Gathers `send` of every rank into `recv` of every rank, rank `i`'s
    /// `counts[i]` elements at element `displs[i]` (`MPI_Allgatherv`). Counts agree
    /// on all ranks; blocks may not overlap.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let (rank, size) = (world.rank() as usize, world.size() as usize);
    /// let counts: Vec<usize> = (0..size).map(|i| i % 2).collect(); // odd ranks send one
    /// let displs: Vec<usize> = (0..size).map(|i| i / 2).collect();
    /// let mut odds = vec![0usize; size / 2];
    /// world.allgatherv(&vec![rank; rank % 2], &mut odds, &counts, &displs)?;
    /// assert!(odds.iter().all(|r| r % 2 == 1));
    /// # Ok(()) }
    /// ```
    pub fn allgatherv<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        counts: &[usize],
        displs: &[usize],
    ) -> Result<()> {
        let sched = self.allgatherv_schedule(Some(send), recv, counts, displs)?;
        self.run_beside(sched, Collective::Allgatherv)
    }

    /// [`Comm::allgatherv`] where each rank's block is already in place in `buf` at
    /// `displs[rank]` (`MPI_Allgatherv` with `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let size = world.size() as usize;
    /// let (counts, displs): (Vec<usize>, Vec<usize>) = (vec![1; size], (0..size).collect());
    /// let mut buf = vec![0i32; size];
    /// buf[world.rank() as usize] = world.rank();
    /// world.allgatherv_in_place(&mut buf, &counts, &displs)?;
    /// assert_eq!(buf, (0..world.size()).collect::<Vec<_>>());
    /// # Ok(()) }
    /// ```
    pub fn allgatherv_in_place<T: Pod>(
        &self,
        buf: &mut [T],
        counts: &[usize],
        displs: &[usize],
    ) -> Result<()> {
        let sched = self.allgatherv_schedule(None, buf, counts, displs)?;
        self.run_beside(sched, Collective::Allgatherv)
    }

    /// Starts [`Comm::allgatherv`] (`MPI_Iallgatherv`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let size = world.size() as usize;
    /// let (counts, displs): (Vec<usize>, Vec<usize>) = (vec![1; size], (0..size).collect());
    /// let mut all = vec![0u8; size];
    /// oxmpi::scope(|s| world.iallgatherv(s, &[4u8], &mut all, &counts, &displs)?.wait())?;
    /// assert!(all.iter().all(|&x| x == 4));
    /// # Ok(()) }
    /// ```
    pub fn iallgatherv<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        send: &'s [T],
        recv: &'s mut [T],
        counts: &[usize],
        displs: &[usize],
    ) -> Result<Request<'s>> {
        let sched = self.allgatherv_schedule(Some(send), recv, counts, displs)?;
        self.start_in(scope, sched)
    }

    /// Starts [`Comm::allgatherv_in_place`] (`MPI_Iallgatherv` with `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let size = world.size() as usize;
    /// let (counts, displs): (Vec<usize>, Vec<usize>) = (vec![1; size], (0..size).collect());
    /// let mut buf = vec![6u16; size];
    /// oxmpi::scope(|s| world.iallgatherv_in_place(s, &mut buf, &counts, &displs)?.wait())?;
    /// # Ok(()) }
    /// ```
    pub fn iallgatherv_in_place<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        buf: &'s mut [T],
        counts: &[usize],
        displs: &[usize],
    ) -> Result<Request<'s>> {
        let sched = self.allgatherv_schedule(None, buf, counts, displs)?;
        self.start_in(scope, sched)
    }

    fn allgatherv_schedule<T: Pod>(
        &self,
        send: Option<&[T]>,
        recv: &mut [T],
        counts: &[usize],
        displs: &[usize],
    ) -> Result<Schedule> {
        let (rank, size) = (self.rank() as usize, self.size() as usize);
        check_layout(
            "allgatherv",
            "receive buffer",
            recv.len(),
            counts,
            displs,
            size,
            true,
        )?;
        if let Some(send) = send
            && send.len() != counts[rank]
        {
            return Err(wrong_len(
                "allgatherv",
                "the send buffer",
                send.len(),
                counts[rank],
                "counts[rank]",
            ));
        }
        let esz = size_of::<T>();
        let total: usize = counts.iter().sum::<usize>() * esz;
        let alg = select::choose(Collective::Allgatherv, total / size.max(1), size, true)?;
        let placed = Blocks::varying(counts, displs, esz);
        let mine = if send.is_some() {
            Span::new(Buf::Send, 0, counts[rank] * esz)
        } else {
            placed.span(Buf::Recv, rank)
        };
        let mut s = self.schedule(Collective::Allgatherv, alg, send.unwrap_or(&[]), recv);
        s.copy(mine, placed.span(Buf::Recv, rank));
        match alg {
            Algorithm::Ring => ring::build(&mut s, Buf::Recv, &placed, mine),
            Algorithm::RecursiveDoubling => {
                let mut next = 0;
                let in_order = counts.iter().zip(displs).all(|(&c, &d)| {
                    let at_next = c == 0 || d == next;
                    next += c;
                    at_next
                });
                if in_order {
                    recursive_doubling::build(&mut s, Buf::Recv, &placed, mine);
                } else {
                    let packed = Blocks::packed(counts, esz);
                    let tmp = s.temp(total);
                    s.copy(placed.span(Buf::Recv, rank), packed.span(tmp, rank));
                    recursive_doubling::build(&mut s, tmp, &packed, mine);
                    for i in (0..size).filter(|&i| i != rank) {
                        s.copy(packed.span(tmp, i), placed.span(Buf::Recv, i));
                    }
                }
            }
            other => unreachable!("{other:?} is not an allgatherv algorithm"),
        }
        Ok(s)
    }
}
