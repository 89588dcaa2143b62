//! Ring allgather: in step k every rank passes the block it received in step k-1 to
//! its right neighbour. `size - 1` steps, each moving one block per rank: optimal in
//! bandwidth, linear in latency, any rank count.

use crate::engine::schedule::{Buf, Route, Schedule, Span, Step};
use crate::userbuf::{UserBuf, UserBufMut};

/// Builds the schedule for blocks of `block` bytes over `size` ranks; `recv` holds
/// `size` blocks.
pub(crate) fn schedule(
    route: Route,
    send: UserBuf,
    recv: UserBufMut,
    block: usize,
    size: usize,
) -> Schedule {
    let rank = route.rank;
    let mut s = Schedule::new(route, send, recv);
    let at = |b: usize| Span::new(Buf::Recv, b * block, block);
    s.push(Step::Copy {
        src: Span::new(Buf::Send, 0, block),
        dst: at(rank),
    });
    let (left, right) = ((rank + size - 1) % size, (rank + 1) % size);
    for k in 0..size.saturating_sub(1) {
        let out = (rank + size - k) % size;
        let inc = (rank + size - k - 1) % size;
        s.push(Step::Send {
            peer: right,
            span: at(out),
        });
        s.push(Step::Recv {
            peer: left,
            span: at(inc),
        });
        s.push(Step::Fence);
    }
    s
}
