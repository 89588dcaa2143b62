//! `MPI_Reduce`: the root gets the reduction of every rank's vector.
//!
//! Algorithms: [`binomial`] (short vectors) and [`reduce_scatter_gather`] (long).
//! Invariant: only the root's receive buffer is written; the other ranks' buffers
//! are only read, in-place or not.

mod binomial;
mod reduce_scatter_gather;
mod shared_memory;

use bytemuck::Pod;

use super::op::Reduction;
use super::select::{self, Algorithm, Collective};
use super::wrong_len;
use super::{Form, Plan};
use crate::comm::Comm;
use crate::engine::schedule::Buf;
use crate::error::{Rank, Result};
use crate::request::{Request, Scope};

impl Comm {
    /// Reduces `send` from every rank with `op` into `recv` of rank `root`
    /// (`MPI_Reduce`). `recv` is only used at the root (other ranks may pass an empty
    /// slice), where it is as long as `send`.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut sum = [0u64; 2];
    /// world.reduce(&[1, world.rank() as u64], &mut sum, oxmpi::Op::Sum, 0)?;
    /// if world.rank() == 0 {
    ///     let n = world.size() as u64;
    ///     assert_eq!(sum, [n, n * (n - 1) / 2]);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn reduce<T: Pod, O: Reduction<T>>(
        &self,
        send: &[T],
        recv: &mut [T],
        op: O,
        root: Rank,
    ) -> Result<()> {
        let plan = self.reduce_plan(Some(send), recv, op, root, Form::Blocking)?;
        let (root, bytes) = (root as usize, size_of_val(send));
        self.run_plan(plan, Collective::Reduce, |m, op| {
            let op = op.expect("a reduction has an operation");
            shared_memory::run(
                m,
                Some(bytemuck::cast_slice(send)),
                bytemuck::cast_slice_mut(recv),
                bytes,
                op,
                root,
            )
        })
    }

    /// [`Comm::reduce`] with `buf` as input on every rank and, at the root, as output
    /// too (`MPI_Reduce` with `MPI_IN_PLACE` at the root); the other ranks' `buf` is
    /// left as it was.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut worst = [world.rank() as f32];
    /// world.reduce_in_place(&mut worst, oxmpi::Op::Max, 0)?;
    /// if world.rank() == 0 {
    ///     assert_eq!(worst[0], (world.size() - 1) as f32);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn reduce_in_place<T: Pod, O: Reduction<T>>(
        &self,
        buf: &mut [T],
        op: O,
        root: Rank,
    ) -> Result<()> {
        let plan = self.reduce_plan(None, buf, op, root, Form::Blocking)?;
        let (root, bytes) = (root as usize, size_of_val(buf));
        self.run_plan(plan, Collective::Reduce, |m, op| {
            let op = op.expect("a reduction has an operation");
            shared_memory::run(m, None, bytemuck::cast_slice_mut(buf), bytes, op, root)
        })
    }

    /// Starts [`Comm::reduce`] (`MPI_Ireduce`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let (mine, mut least) = ([world.rank()], [0i32]);
    /// oxmpi::scope(|s| world.ireduce(s, &mine, &mut least, oxmpi::Op::Min, 0)?.wait())?;
    /// assert_eq!(least[0], 0);
    /// # Ok(()) }
    /// ```
    pub fn ireduce<'s, T: Pod, O: Reduction<T>>(
        &self,
        scope: &'s Scope<'s, '_>,
        send: &'s [T],
        recv: &'s mut [T],
        op: O,
        root: Rank,
    ) -> Result<Request<'s>> {
        let plan = self.reduce_plan(Some(send), recv, op, root, Form::Nonblocking)?;
        self.start_plan_in(scope, plan)
    }

    /// Starts [`Comm::reduce_in_place`] (`MPI_Ireduce` with `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut x = [1.0f64];
    /// oxmpi::scope(|s| world.ireduce_in_place(s, &mut x, oxmpi::Op::Sum, 0)?.wait())?;
    /// if world.rank() == 0 {
    ///     assert_eq!(x[0], world.size() as f64);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn ireduce_in_place<'s, T: Pod, O: Reduction<T>>(
        &self,
        scope: &'s Scope<'s, '_>,
        buf: &'s mut [T],
        op: O,
        root: Rank,
    ) -> Result<Request<'s>> {
        let plan = self.reduce_plan(None, buf, op, root, Form::Nonblocking)?;
        self.start_plan_in(scope, plan)
    }

    fn reduce_plan<T: Pod, O: Reduction<T>>(
        &self,
        send: Option<&[T]>,
        recv: &mut [T],
        op: O,
        root: Rank,
        form: Form,
    ) -> Result<Plan<'_>> {
        let root = self.check_root(root)?;
        let is_root = self.rank() as usize == root;
        let count = send.map_or(recv.len(), <[T]>::len);
        if is_root && recv.len() != count {
            return Err(wrong_len(
                "reduce",
                "the root's receive buffer",
                recv.len(),
                count,
                "as many as the send buffer",
            ));
        }
        let esz = size_of::<T>();
        let commutative = op.is_commutative();
        if let Some(venue) = self.on_node(form, Collective::Reduce, count * esz, count * esz)? {
            return Ok(Plan::Node {
                venue,
                op: Some(op.into_combine()),
                learned: false,
            });
        }
        if let Some(venue) =
            self.learned_on_node(form, Collective::Reduce, count * esz, count * esz)?
        {
            return Ok(Plan::Node {
                venue,
                op: Some(op.into_combine()),
                learned: true,
            });
        }
        let alg = select::choose(
            Collective::Reduce,
            count * esz,
            self.size() as usize,
            commutative,
        )?;
        let input = if send.is_some() { Buf::Send } else { Buf::Recv };
        let mut s = self.schedule(Collective::Reduce, alg, send.unwrap_or(&[]), recv);
        s.set_op(op.into_combine());
        match alg {
            Algorithm::Binomial => binomial::build(&mut s, input, count * esz, root, commutative),
            Algorithm::ReduceScatterGather => {
                reduce_scatter_gather::build(&mut s, input, count, esz, root, commutative)
            }
            other => unreachable!("{other:?} is not a reduce algorithm"),
        }
        Ok(Plan::Schedule(Box::new(s)))
    }
}
