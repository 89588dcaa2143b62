//! Reduce over the node's collective area: every rank writes its vector; the root
//! waits for all and combines them in rank order (see `coll/shared_memory.rs`).
//!
//! Cost: one arrival per rank; `p` vectors read and `p - 1` combines at the root.

use crate::coll::allreduce::shared_memory::combine_all;
use crate::coll::shared_memory::Meeting;
use crate::copy::copy;
use crate::engine::schedule::Combine;
use crate::error::Result;

/// Reduces `input` (or, if `None`, `recv` in place) of every rank into the root's
/// `recv`; `count_bytes` is the vector's length.
pub(crate) fn run(
    m: &mut Meeting<'_>,
    input: Option<&[u8]>,
    recv: &mut [u8],
    count_bytes: usize,
    op: &dyn Combine,
    root: usize,
) -> Result<()> {
    m.write(count_bytes, |slot| {
        copy(slot, input.unwrap_or_else(|| &recv[..count_bytes]))
    })?;
    m.publish(false);
    if m.rank_size().0 != root {
        return Ok(());
    }
    m.wait_all()?;
    combine_all(m, input, recv, op)
}
