//! `MPI_Allgather`: every rank ends with every rank's block, in rank order.
//!
//! Algorithms: [`recursive_doubling`] (short blocks, any block sizes laid out in
//! order), [`bruck`] (short equal blocks, any rank count) and [`ring`] (long blocks,
//! any layout); allgatherv and the allreduce/bcast algorithms reuse them.
//! Invariant: a rank's own block is in place in the receive buffer before an
//! algorithm starts (except Bruck's, which takes it from its source).
//!
//! A message of a rank's own block alone goes out from where the block came from (the
//! send buffer, unless in place), not from the copy in the receive buffer: the peer
//! reads that message straight from this rank's memory (a single copy), and lines this
//! core has just written must first leave its cache for the peer's, where lines only
//! read can be shared; the next call's copy then needs them back. On 2 ranks (one
//! exchange), `oxbench allgather` of 64 KiB-1 MiB took 0.45-0.83 of the time (6
//! interleaved rounds), where it had taken 2.4x Open MPI's time at 64 KiB (blocks up to
//! 32 KiB meet in the area, and longer ones on more ranks are lent there).

pub(crate) mod bruck;
pub(crate) mod recursive_doubling;
pub(crate) mod ring;
mod shared_memory;

use bytemuck::Pod;

use super::blocks::Blocks;
use super::select::{Algorithm, Collective};
use super::wrong_len;
use super::{Form, Plan};
use crate::comm::Comm;
use crate::engine::schedule::{Buf, Span};
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
        let plan = self.allgather_plan(Some(send), recv, Form::Blocking)?;
        self.run_plan(plan, Collective::Allgather, |m, _| {
            shared_memory::run(
                m,
                Some(bytemuck::cast_slice(send)),
                bytemuck::cast_slice_mut(recv),
                size_of_val(send),
            )
        })
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
        let plan = self.allgather_plan(None, buf, Form::Blocking)?;
        let block = size_of_val(buf) / self.size() as usize;
        self.run_plan(plan, Collective::Allgather, |m, _| {
            shared_memory::run(m, None, bytemuck::cast_slice_mut(buf), block)
        })
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
        let plan = self.allgather_plan(Some(send), recv, Form::Nonblocking)?;
        self.start_plan_in(scope, plan)
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
        let plan = self.allgather_plan(None, buf, Form::Nonblocking)?;
        self.start_plan_in(scope, plan)
    }

    fn allgather_plan<T: Pod>(
        &self,
        send: Option<&[T]>,
        recv: &mut [T],
        form: Form,
    ) -> Result<Plan<'_>> {
        let (rank, size) = (self.rank() as usize, self.size() as usize);
        let count = match send {
            Some(send) => send.len(),
            None if recv.len().is_multiple_of(size) => recv.len() / size,
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
        if let Some(venue) = self.on_node(form, Collective::Allgather, block, block)? {
            return Ok(Plan::Node {
                venue,
                op: None,
                learned: false,
            });
        }
        if let Some(venue) = self.learned_on_node(form, Collective::Allgather, block, block)? {
            return Ok(Plan::Node {
                venue,
                op: None,
                learned: true,
            });
        }
        let alg = self.choose_linked(Collective::Allgather, block)?;
        let blocks = Blocks::equal(size, block);
        let mine = if send.is_some() {
            Span::new(Buf::Send, 0, block)
        } else {
            blocks.span(Buf::Recv, rank)
        };
        let mut s = self.schedule(Collective::Allgather, alg, send.unwrap_or(&[]), recv);
        if alg == Algorithm::Bruck {
            bruck::build(&mut s, mine, block);
            return Ok(Plan::Schedule(Box::new(s)));
        }
        s.copy(mine, blocks.span(Buf::Recv, rank));
        match alg {
            Algorithm::RecursiveDoubling => {
                recursive_doubling::build(&mut s, Buf::Recv, &blocks, mine)
            }
            Algorithm::Ring => ring::build(&mut s, Buf::Recv, &blocks, mine),
            other => unreachable!("{other:?} is not an allgather algorithm"),
        }
        Ok(Plan::Schedule(Box::new(s)))
    }
}
