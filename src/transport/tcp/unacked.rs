//! How many bytes written to a TCP socket its peer has not acknowledged yet.

use std::os::fd::AsRawFd;

/// Bytes in `socket`'s send queue: written by this process but not yet acknowledged
/// by the peer (`SIOCOUTQ`); `None` if the kernel cannot tell.
pub(super) fn unacked(socket: &impl AsRawFd) -> Option<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int through the pointer, which points
    // to `n`; the descriptor is a socket `socket` keeps open.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    (rc == 0).then_some(n.max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn counts_what_the_peer_has_not_acknowledged() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut out = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (peer, _) = listener.accept().unwrap();
        assert_eq!(unacked(&out), Some(0));
        // The peer reads nothing: once its receive buffer is full, the rest waits here
        // unacknowledged.
        out.set_nonblocking(true).unwrap();
        let chunk = vec![7u8; 1 << 16];
        let mut written = 0;
        while let Ok(n) = out.write(&chunk) {
            written += n;
        }
        assert!(written > 0);
        assert!(unacked(&out).is_some_and(|n| n > 0 && n <= written));
        drop(peer);
        assert_eq!(unacked(&listener), None, "a listener has no send queue");
    }
}
