//! `MPI_Allreduce`: every rank ends with the reduction of every rank's vector.
//!
//! Algorithms: [`shared_memory`] (short vectors, ranks of one node, blocking),
//! [`recursive_doubling`] (short vectors), [`linear`] (short vectors on ranks sharing
//! cores), [`rabenseifner`] (medium and long), [`ring`] (long, commutative
//! operations). Invariant: every algorithm
//! computes each element once per operand order and hands out copies, so all ranks
//! get identical bits, and the same inputs on the same number of ranks give the same
//! bits on every run.

mod linear;
mod rabenseifner;
mod recursive_doubling;
mod ring;
pub(crate) mod shared_memory;

use bytemuck::Pod;

use super::op::Reduction;
use super::select::{self, Algorithm, Collective};
use super::wrong_len;
use super::{Form, Plan};
use crate::comm::Comm;
use crate::engine::schedule::Buf;
use crate::error::Result;
use crate::request::{Request, Scope};

impl Comm {
    /// Reduces `send` from every rank with `op` and puts the result into `recv` on
    /// every rank (`MPI_Allreduce`). `send` and `recv` have the same length on every
    /// rank. Every rank gets bit-identical results, and the same inputs on the same
    /// number of ranks give the same bits on every run.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut total = [0.0f64; 3];
    /// world.allreduce(&[1.0, 2.0, 3.0], &mut total, oxmpi::Op::Sum)?;
    /// let n = world.size() as f64;
    /// assert_eq!(total, [n, 2.0 * n, 3.0 * n]);
    /// # Ok(()) }
    /// ```
    pub fn allreduce<T: Pod, O: Reduction<T>>(
        &self,
        send: &[T],
        recv: &mut [T],
        op: O,
    ) -> Result<()> {
        let plan = self.allreduce_plan(Some(send), recv, op, Form::Blocking)?;
        self.run_plan(plan, Collective::Allreduce, |m, op| {
            let op = op.expect("a reduction has an operation");
            shared_memory::run(
                m,
                Some(bytemuck::cast_slice(send)),
                bytemuck::cast_slice_mut(recv),
                size_of::<T>(),
                op,
            )
        })
    }

    /// [`Comm::allreduce`] with `buf` as both input and output (`MPI_Allreduce` with
    /// `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut hits = [world.rank() as u32 + 1];
    /// world.allreduce_in_place(&mut hits, oxmpi::Op::Max)?;
    /// assert_eq!(hits[0], world.size() as u32);
    /// # Ok(()) }
    /// ```
    pub fn allreduce_in_place<T: Pod, O: Reduction<T>>(&self, buf: &mut [T], op: O) -> Result<()> {
        let plan = self.allreduce_plan(None, buf, op, Form::Blocking)?;
        self.run_plan(plan, Collective::Allreduce, |m, op| {
            let op = op.expect("a reduction has an operation");
            shared_memory::run(m, None, bytemuck::cast_slice_mut(buf), size_of::<T>(), op)
        })
    }

    /// Starts [`Comm::allreduce`] (`MPI_Iallreduce`); the buffers stay borrowed until
    /// the request completes or the scope ends.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let local = [2i64; 4];
    /// let mut global = [0i64; 4];
    /// oxmpi::scope(|s| -> oxmpi::Result<()> {
    ///     let req = world.iallreduce(s, &local, &mut global, oxmpi::Op::Sum)?;
    ///     // ... overlap independent work here ...
    ///     req.wait()?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(global, [2 * world.size() as i64; 4]);
    /// # Ok(()) }
    /// ```
    pub fn iallreduce<'s, T: Pod, O: Reduction<T>>(
        &self,
        scope: &'s Scope<'s, '_>,
        send: &'s [T],
        recv: &'s mut [T],
        op: O,
    ) -> Result<Request<'s>> {
        let plan = self.allreduce_plan(Some(send), recv, op, Form::Nonblocking)?;
        self.start_plan_in(scope, plan)
    }

    /// Starts [`Comm::allreduce_in_place`] (`MPI_Iallreduce` with `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut x = [1u8];
    /// oxmpi::scope(|s| world.iallreduce_in_place(s, &mut x, oxmpi::Op::BitOr)?.wait())?;
    /// assert_eq!(x[0], 1);
    /// # Ok(()) }
    /// ```
    pub fn iallreduce_in_place<'s, T: Pod, O: Reduction<T>>(
        &self,
        scope: &'s Scope<'s, '_>,
        buf: &'s mut [T],
        op: O,
    ) -> Result<Request<'s>> {
        let plan = self.allreduce_plan(None, buf, op, Form::Nonblocking)?;
        self.start_plan_in(scope, plan)
    }

    /// The plan of an allreduce of `send` (or, if `None`, of `recv` in place).
    fn allreduce_plan<T: Pod, O: Reduction<T>>(
        &self,
        send: Option<&[T]>,
        recv: &mut [T],
        op: O,
        form: Form,
    ) -> Result<Plan<'_>> {
        if let Some(send) = send
            && send.len() != recv.len()
        {
            return Err(wrong_len(
                "allreduce",
                "the receive buffer",
                recv.len(),
                send.len(),
                "as many as the send buffer",
            ));
        }
        let (count, esz) = (recv.len(), size_of::<T>());
        let piece = (count * esz).min(shared_memory::piece_len(esz));
        if let Some(venue) = self.on_node(form, Collective::Allreduce, count * esz, piece)? {
            let plan = Plan::Node {
                venue,
                op: Some(op.into_combine()),
                learned: false,
            };
            return Ok(plan);
        }
        if let Some(venue) =
            self.learned_on_node(form, Collective::Allreduce, count * esz, piece)?
        {
            let plan = Plan::Node {
                venue,
                op: Some(op.into_combine()),
                learned: true,
            };
            return Ok(plan);
        }
        let alg = select::choose_allreduce(
            count,
            esz,
            self.size() as usize,
            op.is_commutative(),
            self.tcp_among()?,
        )?;
        let input = if send.is_some() { Buf::Send } else { Buf::Recv };
        let mut s = self.schedule(Collective::Allreduce, alg, send.unwrap_or(&[]), recv);
        s.set_op(op.into_combine());
        match alg {
            Algorithm::RecursiveDoubling => recursive_doubling::build(&mut s, input, count * esz),
            Algorithm::Rabenseifner => rabenseifner::build(&mut s, input, count, esz),
            Algorithm::Ring => ring::build(&mut s, input, count, esz),
            Algorithm::Linear => linear::build(&mut s, input, count * esz),
            other => unreachable!("{other:?} is not an allreduce algorithm"),
        }
        Ok(Plan::Schedule(Box::new(s)))
    }
}
