//! Bootstrap: how a rank learns who it is and finds its peers (PMI-1 client).
pub mod wire;
