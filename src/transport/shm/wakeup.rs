//! Waking a rank that sleeps in its socket poller instead of on its futex.
//!
//! A rank with both shared-memory and TCP peers cannot sleep on its futex (a TCP
//! arrival would not wake it) nor in its poller alone (a futex wake would not reach
//! it). It sleeps in the poller, with one more socket in it: a datagram socket bound to
//! an abstract name derived from the job and its rank. A shared-memory sender that
//! finds its doorbell saying "asleep in the poller" sends one byte there. Abstract
//! names live in the network namespace, which ranks of one node share, and leave
//! nothing in the file system.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

fn address(job: &str, rank: usize) -> io::Result<SocketAddr> {
    SocketAddr::from_abstract_name(format!("oxmpi-{job}-wake-{rank}"))
}

/// The socket a rank is woken through.
pub(crate) struct WakeSocket {
    sock: UnixDatagram,
}

impl WakeSocket {
    /// Binds world rank `rank`'s wake-up address.
    pub(crate) fn bind(job: &str, rank: usize) -> io::Result<WakeSocket> {
        let sock = UnixDatagram::bind_addr(&address(job, rank)?)?;
        sock.set_nonblocking(true)?;
        Ok(WakeSocket { sock })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Discards pending wake-ups.
    pub(crate) fn drain(&self) {
        let mut byte = [0u8; 16];
        while self.sock.recv(&mut byte).is_ok() {}
    }
}

/// Sends wake-ups.
pub(crate) struct Kicker {
    sock: Option<UnixDatagram>,
}

impl Kicker {
    pub(crate) fn new() -> Kicker {
        Kicker { sock: None }
    }

    /// Wakes world rank `rank` of `job` if it sleeps in its poller. Failures are
    /// ignored: a full socket already holds a wake-up, and a rank that is gone no
    /// longer needs one.
    pub(crate) fn kick(&mut self, job: &str, rank: usize) {
        if self.sock.is_none() {
            self.sock = UnixDatagram::unbound()
                .and_then(|s| s.set_nonblocking(true).map(|_| s))
                .ok();
        }
        if let (Some(sock), Ok(addr)) = (&self.sock, address(job, rank)) {
            let _ = sock.send_to_addr(&[1], &addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kick_arrives_and_drains() {
        let job = format!("test{}", std::process::id());
        let w = WakeSocket::bind(&job, 3).unwrap();
        let mut k = Kicker::new();
        k.kick(&job, 3);
        k.kick(&job, 4); // nobody there: ignored
        let mut buf = [0u8; 4];
        assert_eq!(w.sock.recv(&mut buf).unwrap(), 1);
        k.kick(&job, 3);
        w.drain();
        assert!(w.sock.recv(&mut buf).is_err());
    }
}
