//! `MPI_Barrier`: no rank leaves before every rank has entered.
//!
//! Algorithms: [`dissemination`] and [`linear`] (fan-in/fan-out). Invariant: a barrier moves no user data, only
//! empty messages on the communicator's collective context.

mod dissemination;
mod linear;

use super::select::{self, Algorithm, Collective};
use crate::comm::Comm;
use crate::engine::schedule::Schedule;
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
        let sched = self.barrier_schedule()?;
        self.run_blocking(sched)
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
        let sched = self.barrier_schedule()?;
        self.start_in(scope, sched)
    }

    fn barrier_schedule(&self) -> Result<Schedule> {
        let alg = select::choose(Collective::Barrier, 0, self.size() as usize, true)?;
        let mut s = self.schedule::<u8, u8>(&[], &mut []);
        match alg {
            Algorithm::Dissemination => dissemination::build(&mut s),
            Algorithm::Linear => linear::build(&mut s),
            other => unreachable!("{other:?} is not a barrier algorithm"),
        }
        Ok(s)
    }
}
