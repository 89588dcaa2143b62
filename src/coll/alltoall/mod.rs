//! `MPI_Alltoall`: block `j` of rank `i`'s send buffer becomes block `i` of rank
//! `j`'s receive buffer.
//!
//! Algorithms: [`bruck`] (very short blocks), [`linear`] (medium) and [`pairwise`]
//! (long); alltoallv reuses the last two. Invariant: the in-place form first copies
//! the buffer aside (except for Bruck, which reads it whole before writing), so no
//! block is overwritten before it is sent.

pub(crate) mod bruck;
pub(crate) mod linear;
pub(crate) mod pairwise;
mod shared_memory;

use bytemuck::Pod;

use super::blocks::Blocks;
use super::select::{Algorithm, Collective};
use super::{Form, Plan};
use crate::comm::Comm;
use crate::engine::schedule::{Buf, Span};
use crate::error::{Error, Result};
use crate::request::{Request, Scope};

impl Comm {
    /// Sends block `j` of `send` to rank `j` and receives rank `i`'s block `rank`
    /// into block `i` of `recv` (`MPI_Alltoall`). `send` and `recv` have the same
    /// length, a multiple of the communicator size.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let (rank, size) = (world.rank() as u32, world.size() as u32);
    /// // To rank j: 100 * rank + j.
    /// let out: Vec<u32> = (0..size).map(|j| 100 * rank + j).collect();
    /// let mut got = vec![0u32; size as usize];
    /// world.alltoall(&out, &mut got)?;
    /// assert_eq!(got, (0..size).map(|i| 100 * i + rank).collect::<Vec<_>>());
    /// # Ok(()) }
    /// ```
    pub fn alltoall<T: Pod>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
        let plan = self.alltoall_plan(Some(send), recv, Form::Blocking)?;
        let block = size_of_val(recv) / self.size() as usize;
        self.run_plan(plan, Collective::Alltoall, |m, _| {
            shared_memory::run(
                m,
                Some(bytemuck::cast_slice(send)),
                bytemuck::cast_slice_mut(recv),
                block,
            )
        })
    }

    /// [`Comm::alltoall`] with `buf` as both send and receive buffer
    /// (`MPI_Alltoall` with `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut buf = vec![world.rank(); world.size() as usize];
    /// world.alltoall_in_place(&mut buf)?;
    /// assert_eq!(buf, (0..world.size()).collect::<Vec<_>>());
    /// # Ok(()) }
    /// ```
    pub fn alltoall_in_place<T: Pod>(&self, buf: &mut [T]) -> Result<()> {
        let plan = self.alltoall_plan(None, buf, Form::Blocking)?;
        let block = size_of_val(buf) / self.size() as usize;
        self.run_plan(plan, Collective::Alltoall, |m, _| {
            shared_memory::run(m, None, bytemuck::cast_slice_mut(buf), block)
        })
    }

    /// Starts [`Comm::alltoall`] (`MPI_Ialltoall`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let out = vec![1u8; world.size() as usize];
    /// let mut got = vec![0u8; world.size() as usize];
    /// oxmpi::scope(|s| world.ialltoall(s, &out, &mut got)?.wait())?;
    /// assert_eq!(got, out);
    /// # Ok(()) }
    /// ```
    pub fn ialltoall<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        send: &'s [T],
        recv: &'s mut [T],
    ) -> Result<Request<'s>> {
        let plan = self.alltoall_plan(Some(send), recv, Form::Nonblocking)?;
        self.start_plan_in(scope, plan)
    }

    /// Starts [`Comm::alltoall_in_place`] (`MPI_Ialltoall` with `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut buf = vec![7i64; world.size() as usize];
    /// oxmpi::scope(|s| world.ialltoall_in_place(s, &mut buf)?.wait())?;
    /// # Ok(()) }
    /// ```
    pub fn ialltoall_in_place<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        buf: &'s mut [T],
    ) -> Result<Request<'s>> {
        let plan = self.alltoall_plan(None, buf, Form::Nonblocking)?;
        self.start_plan_in(scope, plan)
    }

    fn alltoall_plan<T: Pod>(
        &self,
        send: Option<&[T]>,
        recv: &mut [T],
        form: Form,
    ) -> Result<Plan<'_>> {
        let size = self.size() as usize;
        if let Some(send) = send
            && send.len() != recv.len()
        {
            return Err(Error::InvalidArgument(format!(
                "alltoall: the send buffer holds {} elements and the receive buffer {}; they must be equal",
                send.len(),
                recv.len()
            )));
        }
        if !recv.len().is_multiple_of(size) {
            return Err(Error::InvalidArgument(format!(
                "alltoall: the buffers hold {} elements, not a multiple of the {size} ranks",
                recv.len()
            )));
        }
        let block = recv.len() / size * size_of::<T>();
        // Through the area, a piece of every block at a time.
        let slot = shared_memory::piece(block, size) * size;
        if let Some(venue) = self.on_node(form, Collective::Alltoall, block, slot)? {
            return Ok(Plan::Node {
                venue,
                op: None,
                learned: false,
            });
        }
        if let Some(venue) = self.learned_on_node(form, Collective::Alltoall, block, slot)? {
            return Ok(Plan::Node {
                venue,
                op: None,
                learned: true,
            });
        }
        let alg = self.choose_linked(Collective::Alltoall, block)?;
        let mut s = self.schedule(Collective::Alltoall, alg, send.unwrap_or(&[]), recv);
        let input = match send {
            Some(_) => Buf::Send,
            None if alg == Algorithm::Bruck => Buf::Recv,
            None => {
                let copy = s.temp(block * size);
                s.copy(
                    Span::new(Buf::Recv, 0, block * size),
                    Span::new(copy, 0, block * size),
                );
                copy
            }
        };
        let blocks = Blocks::equal(size, block);
        match alg {
            Algorithm::Bruck => bruck::build(&mut s, input, block),
            Algorithm::Linear => linear::build(&mut s, input, &blocks, &blocks),
            Algorithm::Pairwise => pairwise::build(&mut s, input, &blocks, &blocks),
            other => unreachable!("{other:?} is not an alltoall algorithm"),
        }
        Ok(Plan::Schedule(Box::new(s)))
    }
}
