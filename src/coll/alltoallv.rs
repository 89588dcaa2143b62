//! `MPI_Alltoallv`: every rank sends a block of any length to every rank, each taken
//! from and placed where the sender and receiver say.
//!
//! Algorithms: alltoall's [`linear`] and [`pairwise`], one message per non-empty
//! block. Invariant: rank `i`'s send count for `j` must equal `j`'s receive count for
//! `i` (checked as the messages arrive); receive blocks never overlap; the in-place
//! form copies the buffer aside first.

use bytemuck::Pod;

use super::alltoall::{linear, pairwise};
use super::blocks::Blocks;
use super::check_layout;
use super::select::{self, Algorithm, Collective};
use crate::comm::Comm;
use crate::engine::schedule::{Buf, Schedule, Span};
use crate::error::{Error, Result};
use crate::request::{Request, Scope};

/// One side of an alltoallv: counts and displacements, in elements.
struct Layout<'a> {
    counts: &'a [usize],
    displs: &'a [usize],
}

impl Comm {
    /// Sends `send_counts[j]` elements of `send` from element `send_displs[j]` to
    /// rank `j`, and receives `recv_counts[i]` elements from rank `i` into `recv` at
    /// element `recv_displs[i]` (`MPI_Alltoallv`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let (rank, size) = (world.rank() as usize, world.size() as usize);
    /// // Rank i sends j + 1 copies of i to rank j, so everyone receives rank + 1 from each.
    /// let send_counts: Vec<usize> = (1..=size).collect();
    /// let send_displs: Vec<usize> = (0..size).map(|j| j * (j + 1) / 2).collect();
    /// let send = vec![rank as u8; size * (size + 1) / 2];
    /// let recv_counts = vec![rank + 1; size];
    /// let recv_displs: Vec<usize> = (0..size).map(|i| i * (rank + 1)).collect();
    /// let mut recv = vec![0u8; size * (rank + 1)];
    /// world.alltoallv(&send, &send_counts, &send_displs, &mut recv, &recv_counts, &recv_displs)?;
    /// assert_eq!(recv[recv_displs[size - 1]], size as u8 - 1);
    /// # Ok(()) }
    /// ```
    pub fn alltoallv<T: Pod>(
        &self,
        send: &[T],
        send_counts: &[usize],
        send_displs: &[usize],
        recv: &mut [T],
        recv_counts: &[usize],
        recv_displs: &[usize],
    ) -> Result<()> {
        let sends = Layout {
            counts: send_counts,
            displs: send_displs,
        };
        let recvs = Layout {
            counts: recv_counts,
            displs: recv_displs,
        };
        let sched = self.alltoallv_schedule(Some((send, sends)), recv, recvs)?;
        self.run_beside(sched, Collective::Alltoallv)
    }

    /// [`Comm::alltoallv`] with `buf` as both send and receive buffer, laid out by
    /// `counts` and `displs` both ways (`MPI_Alltoallv` with `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let size = world.size() as usize;
    /// let (counts, displs): (Vec<usize>, Vec<usize>) = (vec![1; size], (0..size).collect());
    /// let mut buf = vec![world.rank(); size];
    /// world.alltoallv_in_place(&mut buf, &counts, &displs)?;
    /// assert_eq!(buf, (0..world.size()).collect::<Vec<_>>());
    /// # Ok(()) }
    /// ```
    pub fn alltoallv_in_place<T: Pod>(
        &self,
        buf: &mut [T],
        counts: &[usize],
        displs: &[usize],
    ) -> Result<()> {
        let sched = self.alltoallv_schedule(None, buf, Layout { counts, displs })?;
        self.run_beside(sched, Collective::Alltoallv)
    }

    /// Starts [`Comm::alltoallv`] (`MPI_Ialltoallv`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let size = world.size() as usize;
    /// let (counts, displs): (Vec<usize>, Vec<usize>) = (vec![1; size], (0..size).collect());
    /// let out = vec![3u32; size];
    /// let mut got = vec![0u32; size];
    /// oxmpi::scope(|s| world.ialltoallv(s, &out, &counts, &displs, &mut got, &counts, &displs)?.wait())?;
    /// assert_eq!(got, out);
    /// # Ok(()) }
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn ialltoallv<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        send: &'s [T],
        send_counts: &[usize],
        send_displs: &[usize],
        recv: &'s mut [T],
        recv_counts: &[usize],
        recv_displs: &[usize],
    ) -> Result<Request<'s>> {
        let sends = Layout {
            counts: send_counts,
            displs: send_displs,
        };
        let recvs = Layout {
            counts: recv_counts,
            displs: recv_displs,
        };
        let sched = self.alltoallv_schedule(Some((send, sends)), recv, recvs)?;
        self.start_in(scope, sched)
    }

    /// Starts [`Comm::alltoallv_in_place`] (`MPI_Ialltoallv` with `MPI_IN_PLACE`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let size = world.size() as usize;
    /// let (counts, displs): (Vec<usize>, Vec<usize>) = (vec![1; size], (0..size).collect());
    /// let mut buf = vec![1i16; size];
    /// oxmpi::scope(|s| world.ialltoallv_in_place(s, &mut buf, &counts, &displs)?.wait())?;
    /// # Ok(()) }
    /// ```
    pub fn ialltoallv_in_place<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        buf: &'s mut [T],
        counts: &[usize],
        displs: &[usize],
    ) -> Result<Request<'s>> {
        let sched = self.alltoallv_schedule(None, buf, Layout { counts, displs })?;
        self.start_in(scope, sched)
    }

    fn alltoallv_schedule<T: Pod>(
        &self,
        send: Option<(&[T], Layout)>,
        recv: &mut [T],
        recvs: Layout,
    ) -> Result<Schedule> {
        let size = self.size() as usize;
        let esz = size_of::<T>();
        check_layout(
            "alltoallv",
            "receive buffer",
            recv.len(),
            recvs.counts,
            recvs.displs,
            size,
            true,
        )?;
        if let Some((send, sends)) = &send {
            check_layout(
                "alltoallv",
                "send buffer",
                send.len(),
                sends.counts,
                sends.displs,
                size,
                false,
            )?;
            let rank = self.rank() as usize;
            let (out, back) = (sends.counts[rank], recvs.counts[rank]);
            if out != back {
                return Err(Error::InvalidArgument(format!(
                    "alltoallv: rank {rank} sends itself {out} elements but expects {back} from itself (sendcounts[{rank}] and recvcounts[{rank}] must agree)"
                )));
            }
        }
        // Only the selection reads this: sends may overlap, so their counts may add up
        // past any buffer (elements of no size, say), and the sum saturates.
        let out_bytes = send
            .as_ref()
            .map_or(recvs.counts, |(_, l)| l.counts)
            .iter()
            .fold(0usize, |t, &c| t.saturating_add(c))
            .saturating_mul(esz);
        let alg = select::choose(Collective::Alltoallv, out_bytes / size.max(1), size, true)?;
        let recv_blocks = Blocks::varying(recvs.counts, recvs.displs, esz);
        let (mut s, input, send_blocks) = match send {
            Some((send, sends)) => {
                let blocks = Blocks::varying(sends.counts, sends.displs, esz);
                (
                    self.schedule(Collective::Alltoallv, alg, send, recv),
                    Buf::Send,
                    blocks,
                )
            }
            None => {
                let len = size_of_val(recv);
                let mut s = self.schedule::<T, T>(Collective::Alltoallv, alg, &[], recv);
                let copy = s.temp(len);
                s.copy(Span::new(Buf::Recv, 0, len), Span::new(copy, 0, len));
                (s, copy, recv_blocks.clone())
            }
        };
        match alg {
            Algorithm::Linear => linear::build(&mut s, input, &send_blocks, &recv_blocks),
            Algorithm::Pairwise => pairwise::build(&mut s, input, &send_blocks, &recv_blocks),
            other => unreachable!("{other:?} is not an alltoallv algorithm"),
        }
        Ok(s)
    }
}
