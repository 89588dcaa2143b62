//! `MPI_Reduce_scatter_block`: reduce-scatter with the same count for every rank.
//!
//! The algorithms are reduce-scatter's, with equal counts. Invariant: the counts are
//! derived from the buffer lengths, so they agree wherever the lengths do.

use bytemuck::Pod;

use super::op::Reduction;
use super::select::Collective;
use crate::comm::Comm;
use crate::engine::schedule::Schedule;
use crate::error::{Error, Result};
use crate::request::{Request, Scope};

impl Comm {
    /// Reduces `send` (`size` blocks as long as `recv`) from every rank with `op` and
    /// leaves block `rank` of the result in `recv` (`MPI_Reduce_scatter_block`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let size = world.size() as usize;
    /// // Everyone contributes its rank to every block.
    /// let send = vec![world.rank() as i64; 2 * size];
    /// let mut mine = [0i64; 2];
    /// world.reduce_scatter_block(&send, &mut mine, oxmpi::Op::Sum)?;
    /// let n = size as i64;
    /// assert_eq!(mine, [n * (n - 1) / 2; 2]);
    /// # Ok(()) }
    /// ```
    pub fn reduce_scatter_block<T: Pod, O: Reduction<T>>(
        &self,
        send: &[T],
        recv: &mut [T],
        op: O,
    ) -> Result<()> {
        let sched = self.reduce_scatter_block_schedule(Some(send), recv, op)?;
        self.run_beside(sched, Collective::ReduceScatterBlock)
    }

    /// [`Comm::reduce_scatter_block`] with `buf` holding the whole input and
    /// receiving this rank's block at its start (`MPI_Reduce_scatter_block` with
    /// `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut buf = vec![1u16; world.size() as usize];
    /// world.reduce_scatter_block_in_place(&mut buf, oxmpi::Op::Sum)?;
    /// assert_eq!(buf[0], world.size() as u16);
    /// # Ok(()) }
    /// ```
    pub fn reduce_scatter_block_in_place<T: Pod, O: Reduction<T>>(
        &self,
        buf: &mut [T],
        op: O,
    ) -> Result<()> {
        let sched = self.reduce_scatter_block_schedule(None, buf, op)?;
        self.run_beside(sched, Collective::ReduceScatterBlock)
    }

    /// Starts [`Comm::reduce_scatter_block`] (`MPI_Ireduce_scatter_block`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let send = vec![1u32; world.size() as usize];
    /// let mut mine = [0u32];
    /// oxmpi::scope(|s| world.ireduce_scatter_block(s, &send, &mut mine, oxmpi::Op::Sum)?.wait())?;
    /// assert_eq!(mine[0], world.size() as u32);
    /// # Ok(()) }
    /// ```
    pub fn ireduce_scatter_block<'s, T: Pod, O: Reduction<T>>(
        &self,
        scope: &'s Scope<'s, '_>,
        send: &'s [T],
        recv: &'s mut [T],
        op: O,
    ) -> Result<Request<'s>> {
        let sched = self.reduce_scatter_block_schedule(Some(send), recv, op)?;
        self.start_in(scope, sched)
    }

    /// Starts [`Comm::reduce_scatter_block_in_place`] (`MPI_Ireduce_scatter_block`
    /// with `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut buf = vec![1i8; world.size() as usize];
    /// oxmpi::scope(|s| world.ireduce_scatter_block_in_place(s, &mut buf, oxmpi::Op::Max)?.wait())?;
    /// assert_eq!(buf[0], 1);
    /// # Ok(()) }
    /// ```
    pub fn ireduce_scatter_block_in_place<'s, T: Pod, O: Reduction<T>>(
        &self,
        scope: &'s Scope<'s, '_>,
        buf: &'s mut [T],
        op: O,
    ) -> Result<Request<'s>> {
        let sched = self.reduce_scatter_block_schedule(None, buf, op)?;
        self.start_in(scope, sched)
    }

    fn reduce_scatter_block_schedule<T: Pod, O: Reduction<T>>(
        &self,
        send: Option<&[T]>,
        recv: &mut [T],
        op: O,
    ) -> Result<Schedule> {
        let size = self.size() as usize;
        let count = match send {
            Some(_) => recv.len(),
            None if recv.len().is_multiple_of(size) => recv.len() / size,
            None => {
                return Err(Error::InvalidArgument(format!(
                    "reduce_scatter_block_in_place: the buffer holds {} elements, not a multiple of the {size} ranks",
                    recv.len()
                )));
            }
        };
        self.reduce_scatter_schedule(
            Collective::ReduceScatterBlock,
            send,
            recv,
            &vec![count; size],
            op,
        )
    }
}
