//! Helpers shared by the test programs that the integration tests start through
//! oxrun: deterministic message contents and a failure path that names the rank.

use oxmpi::Comm;

/// Deterministic bytes for a message identified by `seed`, `len` long.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A seed naming one message: sender, receiver, size class and sequence number.
pub fn seed(src: i32, dst: i32, size: usize, seq: u64) -> u64 {
    ((src as u64) << 48) ^ ((dst as u64) << 32) ^ ((size as u64) << 8) ^ seq
}

/// The rank paired with `rank` of `size`: rank 2k with 2k+1 and the other way round;
/// with an odd count the last rank is paired with itself.
pub fn partner(rank: i32, size: i32) -> i32 {
    if size % 2 == 1 && rank == size - 1 {
        rank
    } else {
        rank ^ 1
    }
}

/// The peak memory of this process so far, in KiB.
pub fn max_rss_kib() -> i64 {
    // SAFETY: `rusage` is plain data, for which all-zero bytes are a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct for this process.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss
}

/// Ends the job with a message naming this rank when `cond` is false.
#[track_caller]
pub fn check(comm: &Comm, cond: bool, what: impl FnOnce() -> String) {
    if !cond {
        let loc = std::panic::Location::caller();
        eprintln!("CHECK FAILED on rank {} at {loc}: {}", comm.rank(), what());
        comm.abort(99);
    }
}

/// The first argument of the program, or `default`.
pub fn arg(i: usize, default: &str) -> String {
    std::env::args()
        .nth(i)
        .unwrap_or_else(|| default.to_string())
}

/// Each rank sends its rank to the next and checks that it got the previous one's
/// (a ring exchange with `sendrecv`), then a barrier: the job works.
pub fn ring_exchange(world: &Comm) -> oxmpi::Result<()> {
    let (rank, size) = (world.rank(), world.size());
    let mut got = [0i32];
    world.sendrecv(
        &[rank],
        (rank + 1) % size,
        1,
        &mut got,
        (rank + size - 1) % size,
        1,
    )?;
    assert_eq!(got[0], (rank + size - 1) % size, "ring exchange");
    world.barrier()
}
