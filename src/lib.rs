//! oxmpi: MPI-style message passing for HPC, in Rust.
//!
//! Ranked processes, started by the `oxrun` launcher, exchange point-to-point and
//! collective messages over shared memory (same node) and TCP (across nodes). The API
//! follows the MPI standard's chapters: [`environment`] (init, finalize, timing),
//! [`Comm`] (communicators), point-to-point methods on [`Comm`], [`request`]
//! (nonblocking operations), and collectives.
//!
//! ```
//! # fn main() -> oxmpi::Result<()> {
//! let universe = oxmpi::init()?;
//! let world = universe.world();
//! let (rank, size) = (world.rank(), world.size());
//! let right = (rank + 1) % size;
//! let left = (rank + size - 1) % size;
//! let mut token = [0u32];
//! world.sendrecv(&[rank as u32], right, 0, &mut token, left, 0)?;
//! assert_eq!(token[0], left as u32);
//! # Ok(()) }
//! ```
#![warn(missing_docs, missing_debug_implementations)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

// Lengths and offsets travel as 64-bit numbers (frame headers, the shared segment's
// offers and loans) and are used as `usize`; a narrower `usize` would truncate them.
#[cfg(not(target_pointer_width = "64"))]
compile_error!("oxmpi supports 64-bit targets only (message lengths are 64-bit)");

#[cfg(test)]
mod alone;
pub mod bootstrap;
mod coll;
mod comm;
mod copy;
mod engine;
pub mod environment;
mod error;
mod message;
mod point_to_point;
mod prefetch;
pub mod request;
mod settings;
mod status;
mod transport;
mod userbuf;

pub use coll::op as Op;
pub use coll::{Collective, ValueIndex, reduce_local, set_algorithm};
pub use comm::{Color, Comm};
#[doc(hidden)]
pub use engine::large_receives::{LargeReceives, large_receives};
pub use environment::{ErrorMode, Threading, Universe, init, wtick, wtime};
pub use error::{ConfigError, Error, Rank, Result, Tag};
pub use message::Message;
pub use request::{
    Request, Scope, scope, test_all, test_any, test_some, wait_all, wait_all_results, wait_any,
    wait_some,
};
pub use status::{ANY_SOURCE, ANY_TAG, PROC_NULL, Source, Status, TAG_UB, TagSel};
