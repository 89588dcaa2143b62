//! Collective operations (MPI's chapter 5), each a schedule of the engine's
//! point-to-point steps plus local work, so the blocking and nonblocking forms share
//! one implementation.

pub(crate) mod allgather;

use bytemuck::Pod;

use crate::comm::Comm;
use crate::engine::{self, schedule::Schedule};
use crate::error::{Error, Result};
use crate::userbuf::{UserBuf, UserBufMut};

impl Comm {
    /// Runs `sched` to completion.
    fn run_blocking(&self, sched: Schedule) -> Result<()> {
        engine::with(|e| {
            let id = e.start_schedule(sched)?;
            e.wait(id).map(|_| ())
        })
    }

    /// Gathers `send` from every rank into `recv` on every rank, in rank order
    /// (`MPI_Allgather`).
    pub(crate) fn allgather_into<T: Pod>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
        let size = self.size() as usize;
        if recv.len() != send.len() * size {
            return Err(Error::InvalidArgument(format!(
                "allgather: receive buffer holds {} elements, needs {} ({} per rank x {size} ranks)",
                recv.len(),
                send.len() * size,
                send.len()
            )));
        }
        let block = std::mem::size_of_val(send);
        let sched = allgather::ring::schedule(
            self.next_coll_route(),
            UserBuf::new(bytemuck::cast_slice(send)),
            UserBufMut::new(bytemuck::cast_slice_mut(recv)),
            block,
            size,
        );
        self.run_blocking(sched)
    }
}
