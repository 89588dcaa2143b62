//! Message contents for validation (`-c`): a sender fills its buffer with the pattern
//! of a seed (the step, the message), and the receiver checks that exactly that
//! pattern arrived.
//!
//! Invariant: patterns of different seeds differ at every byte (for seeds less than
//! 251 apart), and a pattern shifted by fewer than 251 bytes differs from itself, so a
//! stale, reordered or misplaced message is caught, not just a corrupted one.

use crate::Failure;

/// Length of the pattern's period.
const PERIOD: usize = 251;

/// One period of the pattern of `seed`: the numbers 0 to 250 counting up, wrapping
/// around, from a point that `seed` picks. The pattern repeats it.
fn period(seed: u64) -> [u8; PERIOD] {
    let start = (seed % PERIOD as u64) as usize * 131;
    std::array::from_fn(|i| ((start + i) % PERIOD) as u8)
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
        let base = of(3);
        for d in 1..251 {
            assert!(
                of(3 + d).iter().zip(&base).all(|(a, b)| a != b),
                "seed {}",
                3 + d
            );
            assert!(
                base[d as usize..].iter().zip(&base).all(|(a, b)| a != b),
                "shift {d}"
            );
        }
        assert_eq!(of(3), of(3 + 251));
    }
}
