//! Gather over the node's collective area: every rank but the root writes its block;
//! the root waits for all and copies the blocks out (see `coll/shared_memory.rs`).
//!
//! Cost: one arrival per rank; `p` blocks copied out at the root.

use crate::coll::shared_memory::Meeting;
use crate::copy::copy;
use crate::error::Result;

/// Gathers each rank's block of `block` bytes into the root's `recv`, in rank order.
/// The block is `send`, or if `None` (in place) the root's block of `recv` at the
/// root and the start of `recv` elsewhere.
pub(crate) fn run(
    m: &mut Meeting<'_>,
    send: Option<&[u8]>,
    recv: &mut [u8],
    block: usize,
    root: usize,
) -> Result<()> {
    let rank = m.rank_size().0;
    if rank != root {
        m.write(block, |slot| {
            copy(slot, send.unwrap_or_else(|| &recv[..block]))
        })?;
        m.publish(false);
        return Ok(());
    }
    // Nobody reads the root's slot: it publishes without data.
    m.publish(false);
    m.wait_all()?;
    if let Some(send) = send {
        copy(&mut recv[root * block..(root + 1) * block], send);
    }
    m.read_each(block, |r, theirs| {
        copy(&mut recv[r * block..(r + 1) * block], theirs);
    })
}
