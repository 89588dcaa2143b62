//! `MPI_Allgather`: every rank ends with every rank's block, in rank order.
//!
//! Algorithms: [`recursive_doubling`] (short blocks, any block sizes laid out in
//! order), [`bruck`] (short equal blocks, any rank count) and [`ring`] (long blocks,
//! any layout); allgatherv and the allreduce/bcast algorithms reuse them.
//! Invariant: a rank's own block is in place in the receive buffer before an
//! algorithm starts (except Bruck's, which takes it from its source).

pub(crate) mod bruck;
pub(crate) mod recursive_doubling;
pub(crate) mod ring;

use bytemuck::Pod;

use super::blocks::Blocks;
use super::select::{self, Algorithm, Collective};
use super::wrong_len;
use crate::comm::Comm;
use crate::engine::schedule::{Buf, Schedule, Span};
use crate::error::{Error, Result};
use crate::request::{Request, Scope};

impl Comm {
    /// Gathers `send` of every rank into `recv` of every rank, block `i` from rank `i`
    /// (`MPI_Allgather`). Every rank sends as many elements; `recv` holds `size`
    /// times that.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut ranks = vec![0i32; world.size() as usize];
    /// world.allgather(&[world.rank()], &mut ranks)?;
    /// assert_eq!(ranks, (0..world.size()).collect::<Vec<_>>());
    /// # Ok(()) }
    /// ```
    pub fn allgather<T: Pod>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
        let sched = self.allgather_schedule(Some(send), recv)?;
        self.run_blocking(sched)
    }

    /// [`Comm::allgather`] where each rank's block is already in place in `buf`, at
    /// block `rank` (`MPI_Allgather` with `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut squares = vec![0u64; world.size() as usize];
    /// squares[world.rank() as usize] = (world.rank() as u64).pow(2);
    /// world.allgather_in_place(&mut squares)?;
    /// assert_eq!(squares.last(), Some(&((world.size() as u64 - 1).pow(2))));
    /// # Ok(()) }
    /// ```
    pub fn allgather_in_place<T: Pod>(&self, buf: &mut [T]) -> Result<()> {
        let sched = self.allgather_schedule(None, buf)?;
        self.run_blocking(sched)
    }

    /// Starts [`Comm::allgather`] (`MPI_Iallgather`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut all = vec![0u8; world.size() as usize];
    /// oxmpi::scope(|s| world.iallgather(s, &[1u8], &mut all)?.wait())?;
    /// assert!(all.iter().all(|&x| x == 1));
    /// # Ok(()) }
    /// ```
    pub fn iallgather<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        send: &'s [T],
        recv: &'s mut [T],
    ) -> Result<Request<'s>> {
        let sched = self.allgather_schedule(Some(send), recv)?;
        self.start_in(scope, sched)
    }

    /// Starts [`Comm::allgather_in_place`] (`MPI_Iallgather` with `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut all = vec![1u32; world.size() as usize];
    /// oxmpi::scope(|s| world.iallgather_in_place(s, &mut all)?.wait())?;
    /// # Ok(()) }
    /// ```
    pub fn iallgather_in_place<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        buf: &'s mut [T],
    ) -> Result<Request<'s>> {
        let sched = self.allgather_schedule(None, buf)?;
        self.start_in(scope, sched)
    }

    fn allgather_schedule<T: Pod>(&self, send: Option<&[T]>, recv: &mut [T]) -> Result<Schedule> {
        let (rank, size) = (self.rank() as usize, self.size() as usize);
        let count = match send {
            Some(send) => send.len(),
            None if recv.len() % size == 0 => recv.len() / size,
            None => {
                return Err(Error::InvalidArgument(format!(
                    "allgather_in_place: the buffer holds {} elements, not a multiple of the {size} ranks",
                    recv.len()
                )));
            }
        };
        if recv.len() != count * size {
            let why = format!("{count} per rank x {size} ranks");
            return Err(wrong_len(
                "allgather",
                "the receive buffer",
                recv.len(),
                count * size,
                &why,
            ));
        }
        let block = count * size_of::<T>();
        let alg = select::choose(Collective::Allgather, block, size, true)?;
        let blocks = Blocks::equal(size, block);
        let mine = if send.is_some() {
            Span::new(Buf::Send, 0, block)
        } else {
            blocks.span(Buf::Recv, rank)
        };
        let mut s = self.schedule(send.unwrap_or(&[]), recv);
        if alg == Algorithm::Bruck {
            bruck::build(&mut s, mine, block);
            return Ok(s);
        }
        s.copy(mine, blocks.span(Buf::Recv, rank));
        match alg {
            Algorithm::RecursiveDoubling => recursive_doubling::build(&mut s, Buf::Recv, &blocks),
            Algorithm::Ring => ring::build(&mut s, Buf::Recv, &blocks),
            other => unreachable!("{other:?} is not an allgather algorithm"),
        }
        Ok(s)
    }
}
