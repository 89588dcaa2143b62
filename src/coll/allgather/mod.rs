//! Allgather algorithms: every rank ends with every rank's block, in rank order.

pub(crate) mod ring;
