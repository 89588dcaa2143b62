//! oxmpi: MPI-style message passing for HPC.
#![warn(missing_docs)]

pub mod bootstrap;
