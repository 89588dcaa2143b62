//! `MPI_Bcast`: the root's buffer is copied to every rank.
//!
//! Algorithms: [`binomial`] (short buffers, few cores) and [`scatter_allgather`]
//! (long buffers). Invariant: only the root's buffer is read; every other rank's is
//! only written.

mod binomial;
mod linear;
mod scatter_allgather;
mod shared_memory;

use bytemuck::Pod;

use super::select::{Algorithm, Collective};
use super::{Form, Plan};
use crate::comm::Comm;
use crate::error::{Rank, Result};
use crate::request::{Request, Scope};

impl Comm {
    /// Copies `buf` of rank `root` into `buf` of every other rank (`MPI_Bcast`).
    /// Every rank passes a buffer of the same length.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut config = if world.rank() == 0 { [4u32, 16, 64] } else { [0; 3] };
    /// world.bcast(&mut config, 0)?;
    /// assert_eq!(config, [4, 16, 64]);
    /// # Ok(()) }
    /// ```
    pub fn bcast<T: Pod>(&self, buf: &mut [T], root: Rank) -> Result<()> {
        let plan = self.bcast_plan(buf, root, Form::Blocking)?;
        let root = root as usize;
        self.run_plan(plan, Collective::Bcast, |m, _| {
            shared_memory::run(m, bytemuck::cast_slice_mut(buf), root)
        })
    }

    /// Starts [`Comm::bcast`] (`MPI_Ibcast`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut seed = [if world.rank() == 0 { 42u64 } else { 0 }];
    /// oxmpi::scope(|s| world.ibcast(s, &mut seed, 0)?.wait())?;
    /// assert_eq!(seed[0], 42);
    /// # Ok(()) }
    /// ```
    pub fn ibcast<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        buf: &'s mut [T],
        root: Rank,
    ) -> Result<Request<'s>> {
        let plan = self.bcast_plan(buf, root, Form::Nonblocking)?;
        self.start_plan_in(scope, plan)
    }

    fn bcast_plan<T: Pod>(&self, buf: &mut [T], root: Rank, form: Form) -> Result<Plan<'_>> {
        let root = self.check_root(root)?;
        let bytes = size_of_val(buf);
        let piece = bytes.min(super::shared_memory::LARGE);
        if let Some(venue) = self.on_node(form, Collective::Bcast, bytes, piece)? {
            return Ok(Plan::Node {
                venue,
                op: None,
                learned: false,
            });
        }
        if let Some(venue) = self.learned_on_node(form, Collective::Bcast, bytes, piece)? {
            return Ok(Plan::Node {
                venue,
                op: None,
                learned: true,
            });
        }
        let alg = self.choose_linked(Collective::Bcast, bytes)?;
        let mut s = self.schedule::<u8, T>(Collective::Bcast, alg, &[], buf);
        match alg {
            Algorithm::Binomial => binomial::build(&mut s, bytes, root),
            Algorithm::ScatterAllgather => scatter_allgather::build(&mut s, bytes, root),
            Algorithm::Linear => linear::build(&mut s, bytes, root),
            other => unreachable!("{other:?} is not a bcast algorithm"),
        }
        Ok(Plan::Schedule(Box::new(s)))
    }
}
