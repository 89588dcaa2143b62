//! `MPI_Gather`: the root collects one equal block from every rank, in rank order.
//!
//! Algorithms: [`binomial`] (short blocks) and [`linear`] (long blocks; also
//! gatherv's). Invariant: only the root's receive buffer is written.

pub(crate) mod binomial;
pub(crate) mod linear;
mod shared_memory;

use bytemuck::Pod;

use super::blocks::Blocks;
use super::select::{Algorithm, Collective};
use super::wrong_len;
use super::{Form, Plan};
use crate::comm::Comm;
use crate::engine::schedule::{Buf, Span};
use crate::error::{Error, Rank, Result};
use crate::request::{Request, Scope};

impl Comm {
    /// Gathers `send` of every rank into `recv` of rank `root`, block `i` from rank
    /// `i` (`MPI_Gather`). Every rank sends as many elements; `recv` (used at the root
    /// only; others may pass an empty slice) holds `size` times that.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut ranks = vec![0i32; if world.rank() == 0 { world.size() as usize } else { 0 }];
    /// world.gather(&[world.rank()], &mut ranks, 0)?;
    /// if world.rank() == 0 {
    ///     assert_eq!(ranks, (0..world.size()).collect::<Vec<_>>());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn gather<T: Pod>(&self, send: &[T], recv: &mut [T], root: Rank) -> Result<()> {
        let plan = self.gather_plan(Some(send), recv, root, Form::Blocking)?;
        let (root, block) = (root as usize, size_of_val(send));
        self.run_plan(plan, Collective::Gather, |m, _| {
            shared_memory::run(
                m,
                Some(bytemuck::cast_slice(send)),
                bytemuck::cast_slice_mut(recv),
                block,
                root,
            )
        })
    }

    /// [`Comm::gather`] where the root's own block is already in place in its
    /// receive buffer (`MPI_Gather` with `MPI_IN_PLACE` at the root): `buf` is the
    /// whole receive buffer at the root and the send block elsewhere.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let (rank, size) = (world.rank(), world.size() as usize);
    /// let mut buf = if rank == 0 { vec![0u16; size] } else { vec![rank as u16] };
    /// world.gather_in_place(&mut buf, 0)?;
    /// if rank == 0 {
    ///     assert_eq!(buf, (0..size as u16).collect::<Vec<_>>());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn gather_in_place<T: Pod>(&self, buf: &mut [T], root: Rank) -> Result<()> {
        let plan = self.gather_plan(None, buf, root, Form::Blocking)?;
        let block = match self.rank() == root {
            true => size_of_val(buf) / self.size() as usize,
            false => size_of_val(buf),
        };
        let root = root as usize;
        self.run_plan(plan, Collective::Gather, |m, _| {
            shared_memory::run(m, None, bytemuck::cast_slice_mut(buf), block, root)
        })
    }

    /// Starts [`Comm::gather`] (`MPI_Igather`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut all = vec![0u8; world.size() as usize];
    /// oxmpi::scope(|s| world.igather(s, &[7u8], &mut all, 0)?.wait())?;
    /// # Ok(()) }
    /// ```
    pub fn igather<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        send: &'s [T],
        recv: &'s mut [T],
        root: Rank,
    ) -> Result<Request<'s>> {
        let plan = self.gather_plan(Some(send), recv, root, Form::Nonblocking)?;
        self.start_plan_in(scope, plan)
    }

    /// Starts [`Comm::gather_in_place`] (`MPI_Igather` with `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut buf = vec![1u32; if world.rank() == 0 { world.size() as usize } else { 1 }];
    /// oxmpi::scope(|s| world.igather_in_place(s, &mut buf, 0)?.wait())?;
    /// # Ok(()) }
    /// ```
    pub fn igather_in_place<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        buf: &'s mut [T],
        root: Rank,
    ) -> Result<Request<'s>> {
        let plan = self.gather_plan(None, buf, root, Form::Nonblocking)?;
        self.start_plan_in(scope, plan)
    }

    fn gather_plan<T: Pod>(
        &self,
        send: Option<&[T]>,
        recv: &mut [T],
        root: Rank,
        form: Form,
    ) -> Result<Plan<'_>> {
        let root = self.check_root(root)?;
        let (rank, size) = (self.rank() as usize, self.size() as usize);
        let count = match send {
            Some(send) => send.len(),
            None if rank == root => {
                if !recv.len().is_multiple_of(size) {
                    return Err(Error::InvalidArgument(format!(
                        "gather_in_place: the root's buffer holds {} elements, not a multiple of the {size} ranks",
                        recv.len()
                    )));
                }
                recv.len() / size
            }
            None => recv.len(),
        };
        if rank == root && recv.len() != count * size {
            let why = format!("{count} per rank x {size} ranks");
            return Err(wrong_len(
                "gather",
                "the root's receive buffer",
                recv.len(),
                count * size,
                &why,
            ));
        }
        let block = count * size_of::<T>();
        if let Some(venue) = self.on_node(form, Collective::Gather, block, block)? {
            return Ok(Plan::Node {
                venue,
                op: None,
                learned: false,
            });
        }
        if let Some(venue) = self.learned_on_node(form, Collective::Gather, block, block)? {
            return Ok(Plan::Node {
                venue,
                op: None,
                learned: true,
            });
        }
        let alg = self.choose_linked(Collective::Gather, block)?;
        let mine = match (send, rank == root) {
            (Some(_), _) => Span::new(Buf::Send, 0, block),
            (None, true) => Span::new(Buf::Recv, root * block, block),
            (None, false) => Span::new(Buf::Recv, 0, block),
        };
        let mut s = self.schedule(Collective::Gather, alg, send.unwrap_or(&[]), recv);
        match alg {
            Algorithm::Binomial => binomial::build(&mut s, mine, block, root),
            Algorithm::Linear => linear::build(&mut s, mine, &Blocks::equal(size, block), root),
            other => unreachable!("{other:?} is not a gather algorithm"),
        }
        Ok(Plan::Schedule(Box::new(s)))
    }
}
