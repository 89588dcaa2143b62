//! Message contents for validation (`-c`): a sender fills its buffer with the pattern
//! of a seed (the step, the message), and the receiver checks that exactly that
//! pattern arrived.
//!
//! Invariant: patterns of different seeds below 251 * 250 differ at every byte where
//! the seeds lie in the same run of 251 (the seeds of one step of a test on up to 15
//! ranks, or of neighbouring steps), and at all but one byte in every 251 otherwise;
//! a pattern shifted by fewer than 251 bytes differs from itself. So a stale,
//! reordered or misplaced message of two bytes or more is caught, not just a corrupted
//! one, also among the 256 blocks of a 16-rank alltoall (whose seeds, one pattern per
//! seed modulo 251, once repeated).

use crate::Failure;

/// Length of the pattern's period.
const PERIOD: usize = 251;

/// One period of the pattern of `seed`: the numbers 0 to 250 modulo 251, from a point
/// that `seed` picks, in steps of a size that `seed` picks too (1 for seeds below 251).
/// The pattern repeats it.
fn period(seed: u64) -> [u8; PERIOD] {
    let p = PERIOD as u64;
    let start = seed % p * 131;
    let step = seed / p % (p - 1) + 1;
    std::array::from_fn(|i| ((start + i as u64 * step) % p) as u8)
}

/// Fills `buf` with the pattern of `seed`.
pub fn fill(buf: &mut [u8], seed: u64) {
    let period = period(seed);
    for chunk in buf.chunks_mut(PERIOD) {
        chunk.copy_from_slice(&period[..chunk.len()]);
    }
}

/// Checks that `buf` holds the pattern of `seed`; the error names `what` was checked
/// and the first wrong byte.
pub fn check(buf: &[u8], seed: u64, what: &str) -> Result<(), Failure> {
    let period = period(seed);
    let Some((k, chunk)) = buf
        .chunks(PERIOD)
        .enumerate()
        .find(|(_, c)| *c != &period[..c.len()])
    else {
        return Ok(());
    };
    let (j, got) = chunk
        .iter()
        .enumerate()
        .find(|&(j, &b)| b != period[j])
        .expect("the chunk differs");
    Err(Failure::Run(format!(
        "validation failed: {what}: byte {} of {} is {got}, expected {}",
        k * PERIOD + j,
        buf.len(),
        period[j]
    )))
}

/// Checks that a message of `expected` bytes arrived as `got` bytes.
pub fn check_len(got: usize, expected: usize, what: &str) -> Result<(), Failure> {
    if got == expected {
        Ok(())
    } else {
        Err(Failure::Run(format!(
            "validation failed: {what}: {got} bytes arrived, expected {expected}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_then_check() {
        let mut buf = vec![0u8; 1000];
        fill(&mut buf, 7);
        assert!(check(&buf, 7, "x").is_ok());
        assert!(check(&buf, 8, "x").is_err());
        buf[999] ^= 1;
        let Err(Failure::Run(msg)) = check(&buf, 7, "message 3") else {
            panic!("corruption missed")
        };
        assert!(msg.contains("message 3: byte 999 of 1000"), "{msg}");
    }

    #[test]
    fn seeds_and_shifts_differ_everywhere() {
        let of = |seed| {
            let mut v = vec![0u8; 1000];
            fill(&mut v, seed);
            v
        };
        // Seeds of one run of 251 (0-250, 1757-2007, ...): every byte differs.
        for run in [0, 7] {
            let first = run * 251;
            let base = of(first);
            for d in 1..251 {
                assert!(
                    of(first + d).iter().zip(&base).all(|(a, b)| a != b),
                    "seed {}",
                    first + d
                );
                assert!(
                    base[d as usize..].iter().zip(&base).all(|(a, b)| a != b),
                    "shift {d} of seed {first}"
                );
            }
        }
        // Seeds of other runs: every byte but one in each period, at most.
        let base = of(3);
        for other in [251, 254, 400, 251 * 250 - 1] {
            let same = of(other).iter().zip(&base).filter(|(a, b)| a == b).count();
            assert!(same <= 1000usize.div_ceil(PERIOD), "seed {other}: {same}");
        }
    }

    /// The 256 blocks of one step of a 16-rank alltoall (seeds `step * 256 + k`) all
    /// differ, from two bytes on: they once had 251 patterns among them.
    #[test]
    fn the_blocks_of_a_16_rank_alltoall_differ() {
        for step in [0u64, 1, 977, 1 << 40] {
            let blocks: std::collections::HashSet<[u8; 2]> = (0..256)
                .map(|k| {
                    let mut b = [0u8; 2];
                    fill(&mut b, step * 256 + k);
                    b
                })
                .collect();
            assert_eq!(blocks.len(), 256, "step {step}");
        }
    }
}
