//! `MPI_Barrier`: no rank leaves before every rank has entered.
//!
//! Algorithms: [`dissemination`] and [`linear`] (fan-in/fan-out). Invariant: a barrier moves no user data, only
//! empty messages on the communicator's collective context.

mod dissemination;
mod linear;
mod shared_memory;

use super::select::{self, Algorithm, Collective};
use super::{Form, Plan};
use crate::comm::Comm;
use crate::error::Result;
use crate::request::{Request, Scope};

impl Comm {
    /// Blocks until every rank of the communicator has called it (`MPI_Barrier`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// universe.world().barrier()?;
    /// # Ok(()) }
    /// ```
    pub fn barrier(&self) -> Result<()> {
        let plan = self.barrier_plan(Form::Blocking)?;
        self.run_plan(plan, Collective::Barrier, |m, _| shared_memory::run(m))
    }

    /// Starts a barrier (`MPI_Ibarrier`): the request completes once every rank has
    /// started it.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// oxmpi::scope(|s| -> oxmpi::Result<()> {
    ///     let arrived = world.ibarrier(s)?;
    ///     // ... work that does not need the others ...
    ///     arrived.wait()?;
    ///     Ok(())
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn ibarrier<'s>(&self, scope: &'s Scope<'s, '_>) -> Result<Request<'s>> {
        let plan = self.barrier_plan(Form::Nonblocking)?;
        self.start_plan_in(scope, plan)
    }

    fn barrier_plan(&self, form: Form) -> Result<Plan<'_>> {
        if let Some(venue) = self.on_node(form, Collective::Barrier, 0, 0)? {
            return Ok(Plan::Node {
                venue,
                op: None,
                learned: false,
            });
        }
        let alg = select::choose(Collective::Barrier, 0, self.size() as usize, true)?;
        let mut s = self.schedule::<u8, u8>(Collective::Barrier, alg, &[], &mut []);
        match alg {
            Algorithm::Dissemination => dissemination::build(&mut s),
            Algorithm::Linear => linear::build(&mut s),
            other => unreachable!("{other:?} is not a barrier algorithm"),
        }
        Ok(Plan::Schedule(Box::new(s)))
    }
}
