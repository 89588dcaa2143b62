//! The first 40 bytes on every TCP connection: who is calling, and proof that the
//! caller belongs to this job (the per-job secret from the launcher).
//!
//! The acceptor reads nothing else from a connection until a hello with the right
//! magic, secret and job size, from a rank other than its own, has arrived; anything
//! else closes the connection.

use bytemuck::{Pod, Zeroable};

/// The wire protocol's version is the sixth byte (3: one connection per pair, frames
/// that take part in matching are numbered, see `order.rs`).
const MAGIC: [u8; 8] = *b"OXMPI\x03\0\0";

/// A connection's opening message.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct Hello {
    magic: [u8; 8],
    secret: [u8; 16],
    rank: u32,
    size: u32,
    /// Zero (reserved for connection flags).
    reserved: [u8; 8],
}

pub(crate) const HELLO_LEN: usize = std::mem::size_of::<Hello>();
const _: () = assert!(HELLO_LEN == 40);

impl Hello {
    /// The hello of world rank `rank` of a job of `size`.
    pub(crate) fn new(secret: [u8; 16], rank: usize, size: usize) -> Hello {
        Hello {
            magic: MAGIC,
            secret,
            rank: rank as u32,
            size: size as u32,
            reserved: [0; 8],
        }
    }

    /// Checks a received hello at world rank `me` of a job of `size`; returns the
    /// caller's world rank (never `me`: a rank reaches itself in memory).
    pub(crate) fn verify(
        bytes: &[u8],
        secret: &[u8; 16],
        me: usize,
        size: usize,
    ) -> Result<usize, String> {
        let h: Hello = bytemuck::pod_read_unaligned(&bytes[..HELLO_LEN]);
        if h.magic != MAGIC {
            return Err("not an oxmpi connection (bad magic)".into());
        }
        // Compare without an early exit, so timing says nothing about the secret.
        let diff = h
            .secret
            .iter()
            .zip(secret)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err("wrong job secret".into());
        }
        if h.size as usize != size || h.rank as usize >= size {
            return Err(format!(
                "rank {} of {} does not belong to a job of {size}",
                h.rank, h.size
            ));
        }
        if h.rank as usize == me {
            return Err(format!("the caller says it is rank {me}, this rank itself"));
        }
        if h.reserved != [0; 8] {
            return Err(format!("unknown connection flags {:?}", h.reserved));
        }
        Ok(h.rank as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_own_job_and_rejects_others() {
        let secret = [7u8; 16];
        let h = Hello::new(secret, 3, 4);
        assert_eq!(Hello::verify(bytemuck::bytes_of(&h), &secret, 0, 4), Ok(3));
        let mut flagged = h;
        flagged.reserved[0] = 1;
        assert!(Hello::verify(bytemuck::bytes_of(&flagged), &secret, 0, 4).is_err());
        assert!(Hello::verify(bytemuck::bytes_of(&h), &[8u8; 16], 0, 4).is_err());
        assert!(Hello::verify(bytemuck::bytes_of(&h), &secret, 0, 3).is_err());
        let mut junk = bytemuck::bytes_of(&h).to_vec();
        junk[0] = b'G';
        assert!(Hello::verify(&junk, &secret, 0, 4).is_err());
        let own = Hello::verify(bytemuck::bytes_of(&h), &secret, 3, 4);
        assert!(own.is_err_and(|why| why.contains("this rank itself")));
    }
}
