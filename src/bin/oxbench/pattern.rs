//! Message contents for validation (`-c`): a sender fills its buffer with the pattern
//! of a seed (the step, the message), and the receiver checks that exactly that
//! pattern arrived.
//!
//! Invariant: patterns of different seeds differ at every byte (for seeds less than
//! 251 apart), and a pattern shifted by fewer than 251 bytes differs from itself, so a
//! stale, reordered or misplaced message is caught, not just a corrupted one.

use crate::Failure;

/// Byte `i` of the pattern of `seed`.
fn byte(seed: u64, i: usize) -> u8 {
    (((seed % 251) as usize * 131 + i % 251) % 251) as u8
}

/// Fills `buf` with the pattern of `seed`.
pub fn fill(buf: &mut [u8], seed: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = byte(seed, i);
    }
}

/// Checks that `buf` holds the pattern of `seed`; the error names `what` was checked
/// and the first wrong byte.
pub fn check(buf: &[u8], seed: u64, what: &str) -> Result<(), Failure> {
    match buf.iter().enumerate().find(|&(i, &b)| b != byte(seed, i)) {
        None => Ok(()),
        Some((i, &got)) => Err(Failure::Run(format!(
            "validation failed: {what}: byte {i} of {} is {got}, expected {}",
            buf.len(),
            byte(seed, i)
        ))),
    }
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
        for i in 0..600 {
            for d in 1..251u64 {
                assert_ne!(byte(0, i), byte(d, i));
                assert_ne!(byte(3, i), byte(3, i + d as usize));
            }
        }
    }
}
