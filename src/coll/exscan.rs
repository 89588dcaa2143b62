//! `MPI_Exscan`: the exclusive prefix reduction, built by scan's schedule.
//!
//! Invariant: rank 0's receive buffer is left as it was (MPI leaves it undefined).

use bytemuck::Pod;

use super::op::Reduction;
use super::select::Collective;
use crate::comm::Comm;
use crate::error::Result;
use crate::request::{Request, Scope};

impl Comm {
    /// Puts into `recv` of rank `r > 0` the reduction with `op` of `send` over ranks
    /// `0..r`, in rank order (`MPI_Exscan`); rank 0's `recv` is left unchanged.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// // Offsets of each rank's 10 items in a global numbering.
    /// let mut first = [0u64];
    /// world.exscan(&[10], &mut first, oxmpi::Op::Sum)?;
    /// assert_eq!(first[0], 10 * world.rank() as u64);
    /// # Ok(()) }
    /// ```
    pub fn exscan<T: Pod, O: Reduction<T>>(&self, send: &[T], recv: &mut [T], op: O) -> Result<()> {
        let sched = self.scan_schedule(Some(send), recv, op, true)?;
        self.run_beside(sched, Collective::Exscan)
    }

    /// [`Comm::exscan`] with `buf` as input and output (`MPI_Exscan` with
    /// `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut x = [3i32];
    /// world.exscan_in_place(&mut x, oxmpi::Op::Sum)?;
    /// assert_eq!(x[0], if world.rank() == 0 { 3 } else { 3 * world.rank() });
    /// # Ok(()) }
    /// ```
    pub fn exscan_in_place<T: Pod, O: Reduction<T>>(&self, buf: &mut [T], op: O) -> Result<()> {
        let sched = self.scan_schedule(None, buf, op, true)?;
        self.run_beside(sched, Collective::Exscan)
    }

    /// Starts [`Comm::exscan`] (`MPI_Iexscan`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut before = [0u32];
    /// oxmpi::scope(|s| world.iexscan(s, &[1u32], &mut before, oxmpi::Op::Sum)?.wait())?;
    /// assert_eq!(before[0], world.rank() as u32);
    /// # Ok(()) }
    /// ```
    pub fn iexscan<'s, T: Pod, O: Reduction<T>>(
        &self,
        scope: &'s Scope<'s, '_>,
        send: &'s [T],
        recv: &'s mut [T],
        op: O,
    ) -> Result<Request<'s>> {
        let sched = self.scan_schedule(Some(send), recv, op, true)?;
        self.start_in(scope, sched)
    }

    /// Starts [`Comm::exscan_in_place`] (`MPI_Iexscan` with `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut x = [2u64];
    /// oxmpi::scope(|s| world.iexscan_in_place(s, &mut x, oxmpi::Op::Prod)?.wait())?;
    /// assert_eq!(x[0], if world.rank() == 0 { 2 } else { 1 << world.rank() });
    /// # Ok(()) }
    /// ```
    pub fn iexscan_in_place<'s, T: Pod, O: Reduction<T>>(
        &self,
        scope: &'s Scope<'s, '_>,
        buf: &'s mut [T],
        op: O,
    ) -> Result<Request<'s>> {
        let sched = self.scan_schedule(None, buf, op, true)?;
        self.start_in(scope, sched)
    }
}
