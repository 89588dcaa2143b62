//! Barrier over the node's collective area: every rank announces its arrival and
//! waits until all have (see `coll/shared_memory.rs`), then checks that all of them
//! entered a barrier.
//!
//! Cost: one store per rank and one wake-up of the sleepers by the last to arrive.

use crate::coll::shared_memory::Meeting;
use crate::error::Result;

pub(crate) fn run(m: &mut Meeting<'_>) -> Result<()> {
    m.publish(false);
    m.wait_all()?;
    m.all_entered_same()
}
