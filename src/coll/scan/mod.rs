//! `MPI_Scan` (inclusive prefix reduction); exscan.rs reuses its schedule.
//!
//! Algorithm: [`recursive_doubling`]. Invariant: rank `r`'s result combines the
//! inputs of ranks `0..=r` (exclusive: `0..r`) in rank order.

pub(crate) mod recursive_doubling;

use bytemuck::Pod;

use super::op::Reduction;
use super::select::{self, Collective};
use super::wrong_len;
use crate::comm::Comm;
use crate::engine::schedule::{Buf, Schedule};
use crate::error::Result;
use crate::request::{Request, Scope};

impl Comm {
    /// Puts into `recv` of rank `r` the reduction with `op` of `send` over ranks
    /// `0..=r`, in rank order (`MPI_Scan`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut upto = [0u32];
    /// world.scan(&[1], &mut upto, oxmpi::Op::Sum)?;
    /// assert_eq!(upto[0], world.rank() as u32 + 1);
    /// # Ok(()) }
    /// ```
    pub fn scan<T: Pod, O: Reduction<T>>(&self, send: &[T], recv: &mut [T], op: O) -> Result<()> {
        let sched = self.scan_schedule(Some(send), recv, op, false)?;
        self.run_beside(sched, Collective::Scan)
    }

    /// [`Comm::scan`] with `buf` as input and output (`MPI_Scan` with
    /// `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut x = [world.rank() as i64];
    /// world.scan_in_place(&mut x, oxmpi::Op::Max)?;
    /// assert_eq!(x[0], world.rank() as i64);
    /// # Ok(()) }
    /// ```
    pub fn scan_in_place<T: Pod, O: Reduction<T>>(&self, buf: &mut [T], op: O) -> Result<()> {
        let sched = self.scan_schedule(None, buf, op, false)?;
        self.run_beside(sched, Collective::Scan)
    }

    /// Starts [`Comm::scan`] (`MPI_Iscan`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut upto = [0.0f32];
    /// oxmpi::scope(|s| world.iscan(s, &[0.5f32], &mut upto, oxmpi::Op::Sum)?.wait())?;
    /// assert_eq!(upto[0], 0.5 * (world.rank() + 1) as f32);
    /// # Ok(()) }
    /// ```
    pub fn iscan<'s, T: Pod, O: Reduction<T>>(
        &self,
        scope: &'s Scope<'s, '_>,
        send: &'s [T],
        recv: &'s mut [T],
        op: O,
    ) -> Result<Request<'s>> {
        let sched = self.scan_schedule(Some(send), recv, op, false)?;
        self.start_in(scope, sched)
    }

    /// Starts [`Comm::scan_in_place`] (`MPI_Iscan` with `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut x = [1u8];
    /// oxmpi::scope(|s| world.iscan_in_place(s, &mut x, oxmpi::Op::BitAnd)?.wait())?;
    /// assert_eq!(x[0], 1);
    /// # Ok(()) }
    /// ```
    pub fn iscan_in_place<'s, T: Pod, O: Reduction<T>>(
        &self,
        scope: &'s Scope<'s, '_>,
        buf: &'s mut [T],
        op: O,
    ) -> Result<Request<'s>> {
        let sched = self.scan_schedule(None, buf, op, false)?;
        self.start_in(scope, sched)
    }

    /// The schedule of an inclusive or `exclusive` scan of `send` (or, if `None`, of
    /// `recv` in place).
    pub(super) fn scan_schedule<T: Pod, O: Reduction<T>>(
        &self,
        send: Option<&[T]>,
        recv: &mut [T],
        op: O,
        exclusive: bool,
    ) -> Result<Schedule> {
        let (coll, name) = if exclusive {
            (Collective::Exscan, "exscan")
        } else {
            (Collective::Scan, "scan")
        };
        if let Some(send) = send
            && send.len() != recv.len()
        {
            return Err(wrong_len(
                name,
                "the receive buffer",
                recv.len(),
                send.len(),
                "as many as the send buffer",
            ));
        }
        let bytes = size_of_val(recv);
        let alg = select::choose(coll, bytes, self.size() as usize, op.is_commutative())?;
        let input = if send.is_some() { Buf::Send } else { Buf::Recv };
        let mut s = self.schedule(coll, alg, send.unwrap_or(&[]), recv);
        s.set_op(op.into_combine());
        recursive_doubling::build(&mut s, input, bytes, exclusive);
        Ok(s)
    }
}
