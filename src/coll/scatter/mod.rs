//! `MPI_Scatter`: the root hands block `i` of its buffer to rank `i`.
//!
//! Algorithms: [`binomial`] (short blocks) and [`linear`] (long blocks; also
//! scatterv's). Invariant: only the root's send buffer is read.

pub(crate) mod binomial;
pub(crate) mod linear;
mod shared_memory;

use bytemuck::Pod;

use super::blocks::Blocks;
use super::select::{self, Algorithm, Collective};
use super::wrong_len;
use super::{Form, Plan};
use crate::comm::Comm;
use crate::engine::schedule::{Buf, Span};
use crate::error::{Error, Rank, Result};
use crate::request::{Request, Scope};

impl Comm {
    /// Sends block `i` of `send` at rank `root` to `recv` of rank `i` (`MPI_Scatter`).
    /// `send` (used at the root only; others may pass an empty slice) holds `size`
    /// blocks as long as `recv`.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let work: Vec<u32> = if world.rank() == 0 { (0..2 * world.size() as u32).collect() } else { vec![] };
    /// let mut mine = [0u32; 2];
    /// world.scatter(&work, &mut mine, 0)?;
    /// let r = world.rank() as u32;
    /// assert_eq!(mine, [2 * r, 2 * r + 1]);
    /// # Ok(()) }
    /// ```
    pub fn scatter<T: Pod>(&self, send: &[T], recv: &mut [T], root: Rank) -> Result<()> {
        let plan = self.scatter_plan(Some(send), recv, root, Form::Blocking)?;
        let (root, block) = (root as usize, size_of_val(recv));
        self.run_plan(plan, Collective::Scatter, |m, _| {
            shared_memory::run(
                m,
                bytemuck::cast_slice(send),
                Some(bytemuck::cast_slice_mut(recv)),
                block,
                root,
            )
        })
    }

    /// [`Comm::scatter`] where the root keeps its own block in place (`MPI_Scatter`
    /// with `MPI_IN_PLACE` at the root): `buf` is the whole send buffer at the root
    /// and the receive block elsewhere.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let size = world.size() as usize;
    /// let mut buf: Vec<u8> = if world.rank() == 0 { (0..size as u8).collect() } else { vec![0] };
    /// world.scatter_in_place(&mut buf, 0)?;
    /// assert_eq!(buf[0], if world.rank() == 0 { 0 } else { world.rank() as u8 });
    /// # Ok(()) }
    /// ```
    pub fn scatter_in_place<T: Pod>(&self, buf: &mut [T], root: Rank) -> Result<()> {
        let plan = self.scatter_plan(None, buf, root, Form::Blocking)?;
        let is_root = self.rank() == root;
        let root = root as usize;
        self.run_plan(plan, Collective::Scatter, |m, _| {
            if is_root {
                let block = size_of_val(buf) / m.rank_size().1;
                shared_memory::run(m, bytemuck::cast_slice(buf), None, block, root)
            } else {
                let block = size_of_val(buf);
                shared_memory::run(m, &[], Some(bytemuck::cast_slice_mut(buf)), block, root)
            }
        })
    }

    /// Starts [`Comm::scatter`] (`MPI_Iscatter`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let all = vec![5i16; world.size() as usize];
    /// let mut mine = [0i16];
    /// oxmpi::scope(|s| world.iscatter(s, &all, &mut mine, 0)?.wait())?;
    /// assert_eq!(mine[0], 5);
    /// # Ok(()) }
    /// ```
    pub fn iscatter<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        send: &'s [T],
        recv: &'s mut [T],
        root: Rank,
    ) -> Result<Request<'s>> {
        let plan = self.scatter_plan(Some(send), recv, root, Form::Nonblocking)?;
        self.start_plan_in(scope, plan)
    }

    /// Starts [`Comm::scatter_in_place`] (`MPI_Iscatter` with `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut buf = vec![3u32; if world.rank() == 0 { world.size() as usize } else { 1 }];
    /// oxmpi::scope(|s| world.iscatter_in_place(s, &mut buf, 0)?.wait())?;
    /// assert_eq!(buf[0], 3);
    /// # Ok(()) }
    /// ```
    pub fn iscatter_in_place<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        buf: &'s mut [T],
        root: Rank,
    ) -> Result<Request<'s>> {
        let plan = self.scatter_plan(None, buf, root, Form::Nonblocking)?;
        self.start_plan_in(scope, plan)
    }

    fn scatter_plan<T: Pod>(
        &self,
        send: Option<&[T]>,
        recv: &mut [T],
        root: Rank,
        form: Form,
    ) -> Result<Plan<'_>> {
        let root = self.check_root(root)?;
        let (rank, size) = (self.rank() as usize, self.size() as usize);
        let is_root = rank == root;
        let count = match send {
            Some(_) => recv.len(),
            None if is_root => {
                if !recv.len().is_multiple_of(size) {
                    return Err(Error::InvalidArgument(format!(
                        "scatter_in_place: the root's buffer holds {} elements, not a multiple of the {size} ranks",
                        recv.len()
                    )));
                }
                recv.len() / size
            }
            None => recv.len(),
        };
        if let Some(send) = send
            && is_root
            && send.len() != count * size
        {
            let why = format!("{count} per rank x {size} ranks");
            return Err(wrong_len(
                "scatter",
                "the root's send buffer",
                send.len(),
                count * size,
                &why,
            ));
        }
        let block = count * size_of::<T>();
        if let Some(venue) = self.on_node(form, Collective::Scatter, block, block * size)? {
            return Ok(Plan::Node {
                venue,
                op: None,
                learned: false,
            });
        }
        if let Some(venue) = self.learned_on_node(form, Collective::Scatter, block, block * size)? {
            return Ok(Plan::Node {
                venue,
                op: None,
                learned: true,
            });
        }
        let alg = select::choose(Collective::Scatter, block, size, true)?;
        let (input, mine) = match (send, is_root) {
            (Some(_), _) => (Buf::Send, Span::new(Buf::Recv, 0, block)),
            (None, true) => (Buf::Recv, Span::new(Buf::Recv, root * block, block)),
            (None, false) => (Buf::Send, Span::new(Buf::Recv, 0, block)),
        };
        let mut s = self.schedule(Collective::Scatter, alg, send.unwrap_or(&[]), recv);
        match alg {
            Algorithm::Binomial => binomial::build(&mut s, input, block, root, mine),
            Algorithm::Linear => {
                linear::build(&mut s, input, &Blocks::equal(size, block), root, mine)
            }
            other => unreachable!("{other:?} is not a scatter algorithm"),
        }
        Ok(Plan::Schedule(Box::new(s)))
    }
}
