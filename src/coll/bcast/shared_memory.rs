//! Broadcast over the node's collective area: the root writes the vector into its
//! slot, every other rank copies it out (see `coll/shared_memory.rs`).
//!
//! Cost: one copy in and one copy out per rank; the root never waits for the others
//! except before reusing its slot.

use crate::coll::shared_memory::Meeting;
use crate::error::Result;

pub(crate) fn run(m: &mut Meeting<'_>, buf: &mut [u8], root: usize) -> Result<()> {
    let (rank, _) = m.rank_size();
    if rank == root {
        m.write(buf.len(), |slot| slot.copy_from_slice(buf))?;
        m.publish(true);
        return Ok(());
    }
    m.publish(false);
    m.wait_for(root)?;
    buf.copy_from_slice(m.read(root, buf.len())?);
    Ok(())
}
