//! `MPI_Scatterv`: the root hands each rank a block of any length from wherever it
//! lies in its buffer.
//!
//! Only the root knows the counts, so the one algorithm is the linear scatter
//! ([`super::scatter::linear`]). Invariant: the counts and displacements are checked
//! at the root, where they are significant.

use bytemuck::Pod;

use super::blocks::Blocks;
use super::scatter::linear;
use super::select::{self, Collective};
use super::{check_layout, wrong_len};
use crate::comm::Comm;
use crate::engine::schedule::{Buf, Schedule, Span};
use crate::error::{Rank, Result};
use crate::request::{Request, Scope};

impl Comm {
    /// Sends `counts[i]` elements of `send` at rank `root`, from element
    /// `displs[i]`, to `recv` of rank `i` (`MPI_Scatterv`). `send`, `counts` and
    /// `displs` are used at the root only (others may pass empty slices);
    /// `recv.len()` must equal this rank's count.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let (rank, size) = (world.rank() as usize, world.size() as usize);
    /// // Rank i gets i + 1 elements.
    /// let counts: Vec<usize> = (1..=size).collect();
    /// let displs: Vec<usize> = (0..size).map(|i| i * (i + 1) / 2).collect();
    /// let all: Vec<u32> = (0..(size * (size + 1) / 2) as u32).collect();
    /// let mut mine = vec![0u32; rank + 1];
    /// world.scatterv(&all, &counts, &displs, &mut mine, 0)?;
    /// assert_eq!(mine[0] as usize, displs[rank]);
    /// # Ok(()) }
    /// ```
    pub fn scatterv<T: Pod>(
        &self,
        send: &[T],
        counts: &[usize],
        displs: &[usize],
        recv: &mut [T],
        root: Rank,
    ) -> Result<()> {
        let sched = self.scatterv_schedule(Some(send), counts, displs, recv, root)?;
        self.run_beside(sched, Collective::Scatterv)
    }

    /// [`Comm::scatterv`] where the root keeps its own block in place at
    /// `displs[root]` (`MPI_Scatterv` with `MPI_IN_PLACE` at the root): `buf` is the
    /// send buffer at the root and the receive block elsewhere.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let size = world.size() as usize;
    /// let (counts, displs): (Vec<usize>, Vec<usize>) = (vec![1; size], (0..size).collect());
    /// let mut buf: Vec<u8> = if world.rank() == 0 { (0..size as u8).collect() } else { vec![0] };
    /// world.scatterv_in_place(&mut buf, &counts, &displs, 0)?;
    /// if world.rank() != 0 {
    ///     assert_eq!(buf[0], world.rank() as u8);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn scatterv_in_place<T: Pod>(
        &self,
        buf: &mut [T],
        counts: &[usize],
        displs: &[usize],
        root: Rank,
    ) -> Result<()> {
        let sched = self.scatterv_schedule(None, counts, displs, buf, root)?;
        self.run_beside(sched, Collective::Scatterv)
    }

    /// Starts [`Comm::scatterv`] (`MPI_Iscatterv`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let size = world.size() as usize;
    /// let (counts, displs): (Vec<usize>, Vec<usize>) = (vec![1; size], vec![0; size]);
    /// let mut mine = [0u16];
    /// oxmpi::scope(|s| world.iscatterv(s, &[8u16], &counts, &displs, &mut mine, 0)?.wait())?;
    /// assert_eq!(mine[0], 8);
    /// # Ok(()) }
    /// ```
    pub fn iscatterv<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        send: &'s [T],
        counts: &[usize],
        displs: &[usize],
        recv: &'s mut [T],
        root: Rank,
    ) -> Result<Request<'s>> {
        let sched = self.scatterv_schedule(Some(send), counts, displs, recv, root)?;
        self.start_in(scope, sched)
    }

    /// Starts [`Comm::scatterv_in_place`] (`MPI_Iscatterv` with `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let size = world.size() as usize;
    /// let (counts, displs): (Vec<usize>, Vec<usize>) = (vec![1; size], (0..size).collect());
    /// let mut buf = vec![2i32; if world.rank() == 0 { size } else { 1 }];
    /// oxmpi::scope(|s| world.iscatterv_in_place(s, &mut buf, &counts, &displs, 0)?.wait())?;
    /// assert_eq!(buf[0], 2);
    /// # Ok(()) }
    /// ```
    pub fn iscatterv_in_place<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        buf: &'s mut [T],
        counts: &[usize],
        displs: &[usize],
        root: Rank,
    ) -> Result<Request<'s>> {
        let sched = self.scatterv_schedule(None, counts, displs, buf, root)?;
        self.start_in(scope, sched)
    }

    fn scatterv_schedule<T: Pod>(
        &self,
        send: Option<&[T]>,
        counts: &[usize],
        displs: &[usize],
        recv: &mut [T],
        root: Rank,
    ) -> Result<Schedule> {
        let root = self.check_root(root)?;
        let (rank, size) = (self.rank() as usize, self.size() as usize);
        let esz = size_of::<T>();
        let is_root = rank == root;
        if is_root {
            let len = send.map_or(recv.len(), <[T]>::len);
            check_layout("scatterv", "send buffer", len, counts, displs, size, false)?;
            if send.is_some() && recv.len() != counts[root] {
                return Err(wrong_len(
                    "scatterv",
                    "the root's receive buffer",
                    recv.len(),
                    counts[root],
                    "counts[root]",
                ));
            }
        }
        let alg = select::choose(Collective::Scatterv, 0, size, true)?;
        let blocks = if is_root {
            Blocks::varying(counts, displs, esz)
        } else {
            Blocks::equal(size, 0)
        };
        let (input, mine) = match (send, is_root) {
            (None, true) => (Buf::Recv, blocks.span(Buf::Recv, root)),
            _ => (Buf::Send, Span::new(Buf::Recv, 0, size_of_val(recv))),
        };
        let mut s = self.schedule(Collective::Scatterv, alg, send.unwrap_or(&[]), recv);
        linear::build(&mut s, input, &blocks, root, mine);
        Ok(s)
    }
}
