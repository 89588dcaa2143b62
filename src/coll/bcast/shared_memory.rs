//! Broadcast over the node's collective area: the root writes the vector into its
//! slot, every other rank copies it out (see `coll/shared_memory.rs`). A vector larger
//! than a large buffer goes in pieces of one buffer each, one collective number per
//! piece, so the root fills the next buffers while the others copy out the first.
//!
//! Cost: one copy in and one copy out per rank; the root never waits for the others
//! except before reusing a slot or buffer.

use crate::coll::shared_memory::{LARGE, Meeting};
use crate::copy::copy;
use crate::error::{Error, Result};

#[inline(always)]
pub(crate) fn run(m: &mut Meeting<'_>, buf: &mut [u8], root: usize) -> Result<()> {
    let (rank, _) = m.rank_size();
    let total = buf.len();
    m.set_shape(total, 1);
    if rank == root {
        let mut off = 0;
        loop {
            let len = (total - off).min(LARGE);
            if off > 0 {
                m.next_piece(len);
            }
            m.write(len, |slot| copy(slot, &buf[off..off + len]))?;
            m.publish(true);
            off += len.max(1);
            if off >= total {
                return Ok(());
            }
        }
    }
    // The first piece says how long the root's vector is; a rank expecting another
    // length still takes part in every piece the root sends (so all ranks number the
    // collectives after this one alike), copies what fits, and then fails.
    let mut theirs = total;
    let mut off = 0;
    loop {
        if off > 0 {
            m.next_piece((theirs - off).min(LARGE));
        }
        m.publish(false);
        m.wait_for(root)?;
        let (piece, root_total) = m.read_unchecked(root)?;
        theirs = root_total;
        let fits = piece.len().min(total.saturating_sub(off));
        if fits > 0 {
            copy(&mut buf[off..off + fits], &piece[..fits]);
        }
        off += piece.len().max(1);
        if off >= theirs {
            break;
        }
    }
    if theirs != total {
        return Err(Error::InvalidArgument(format!(
            "bcast: the root sends {theirs} bytes where rank {rank} expects {total} (the ranks disagree on the counts)"
        )));
    }
    Ok(())
}
