//! `MPI_Gatherv`: the root collects a block of any length from every rank, placed
//! where it says.
//!
//! Only the root knows the counts, so the one algorithm is the linear gather
//! ([`super::gather::linear`]). Invariant: the counts and displacements are checked
//! at the root, where they are significant; the root's receive blocks never overlap.

use bytemuck::Pod;

use super::blocks::Blocks;
use super::gather::linear;
use super::select::{self, Collective};
use super::{check_layout, wrong_len};
use crate::comm::Comm;
use crate::engine::schedule::{Buf, Schedule, Span};
use crate::error::{Rank, Result};
use crate::request::{Request, Scope};

impl Comm {
    /// Gathers `send` of every rank into `recv` of rank `root`, rank `i`'s block of
    /// `counts[i]` elements at element `displs[i]` (`MPI_Gatherv`). `recv`, `counts`
    /// and `displs` are used at the root only (others may pass empty slices); blocks
    /// may not overlap, and `counts[i]` must equal rank `i`'s send length.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let (rank, size) = (world.rank() as usize, world.size() as usize);
    /// // Rank i sends i + 1 copies of i.
    /// let mine = vec![rank as u32; rank + 1];
    /// let counts: Vec<usize> = (1..=size).collect();
    /// let displs: Vec<usize> = (0..size).map(|i| i * (i + 1) / 2).collect();
    /// let mut all = vec![0u32; size * (size + 1) / 2];
    /// world.gatherv(&mine, &mut all, &counts, &displs, 0)?;
    /// if rank == 0 {
    ///     assert_eq!(all.last(), Some(&(size as u32 - 1)));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn gatherv<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        counts: &[usize],
        displs: &[usize],
        root: Rank,
    ) -> Result<()> {
        let sched = self.gatherv_schedule(Some(send), recv, counts, displs, root)?;
        self.run_beside(sched, Collective::Gatherv)
    }

    /// [`Comm::gatherv`] where the root's own block is already in place at
    /// `displs[root]` (`MPI_Gatherv` with `MPI_IN_PLACE` at the root): `buf` is the
    /// receive buffer at the root and the send block elsewhere.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let size = world.size() as usize;
    /// let (counts, displs): (Vec<usize>, Vec<usize>) = ((0..size).map(|_| 1).collect(), (0..size).collect());
    /// let mut buf = if world.rank() == 0 { vec![9u8; size] } else { vec![9u8] };
    /// world.gatherv_in_place(&mut buf, &counts, &displs, 0)?;
    /// # Ok(()) }
    /// ```
    pub fn gatherv_in_place<T: Pod>(
        &self,
        buf: &mut [T],
        counts: &[usize],
        displs: &[usize],
        root: Rank,
    ) -> Result<()> {
        let sched = self.gatherv_schedule(None, buf, counts, displs, root)?;
        self.run_beside(sched, Collective::Gatherv)
    }

    /// Starts [`Comm::gatherv`] (`MPI_Igatherv`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let size = world.size() as usize;
    /// let (counts, displs): (Vec<usize>, Vec<usize>) = (vec![1; size], (0..size).collect());
    /// let mut all = vec![0i8; size];
    /// oxmpi::scope(|s| world.igatherv(s, &[1i8], &mut all, &counts, &displs, 0)?.wait())?;
    /// # Ok(()) }
    /// ```
    pub fn igatherv<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        send: &'s [T],
        recv: &'s mut [T],
        counts: &[usize],
        displs: &[usize],
        root: Rank,
    ) -> Result<Request<'s>> {
        let sched = self.gatherv_schedule(Some(send), recv, counts, displs, root)?;
        self.start_in(scope, sched)
    }

    /// Starts [`Comm::gatherv_in_place`] (`MPI_Igatherv` with `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let size = world.size() as usize;
    /// let (counts, displs): (Vec<usize>, Vec<usize>) = (vec![1; size], (0..size).collect());
    /// let mut buf = vec![0u64; if world.rank() == 0 { size } else { 1 }];
    /// oxmpi::scope(|s| world.igatherv_in_place(s, &mut buf, &counts, &displs, 0)?.wait())?;
    /// # Ok(()) }
    /// ```
    pub fn igatherv_in_place<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        buf: &'s mut [T],
        counts: &[usize],
        displs: &[usize],
        root: Rank,
    ) -> Result<Request<'s>> {
        let sched = self.gatherv_schedule(None, buf, counts, displs, root)?;
        self.start_in(scope, sched)
    }

    fn gatherv_schedule<T: Pod>(
        &self,
        send: Option<&[T]>,
        recv: &mut [T],
        counts: &[usize],
        displs: &[usize],
        root: Rank,
    ) -> Result<Schedule> {
        let root = self.check_root(root)?;
        let (rank, size) = (self.rank() as usize, self.size() as usize);
        let esz = size_of::<T>();
        let is_root = rank == root;
        if is_root {
            check_layout(
                "gatherv",
                "receive buffer",
                recv.len(),
                counts,
                displs,
                size,
                true,
            )?;
            if let Some(send) = send
                && send.len() != counts[root]
            {
                return Err(wrong_len(
                    "gatherv",
                    "the root's send buffer",
                    send.len(),
                    counts[root],
                    "counts[root]",
                ));
            }
        }
        let alg = select::choose(Collective::Gatherv, 0, size, true)?;
        let blocks = if is_root {
            Blocks::varying(counts, displs, esz)
        } else {
            Blocks::equal(size, 0)
        };
        let mine = match (send, is_root) {
            (Some(send), _) => Span::new(Buf::Send, 0, size_of_val(send)),
            (None, true) => blocks.span(Buf::Recv, root),
            (None, false) => Span::new(Buf::Recv, 0, size_of_val(recv)),
        };
        let mut s = self.schedule(Collective::Gatherv, alg, send.unwrap_or(&[]), recv);
        linear::build(&mut s, mine, &blocks, root);
        Ok(s)
    }
}
