//! Single-copy transfers between processes (`process_vm_readv` and `_writev`, Linux
//! cross-memory attach), and the start-up probe that tells whether the kernel lets
//! this rank use them (Yama's ptrace_scope, seccomp in containers and missing
//! capabilities all forbid it).

use std::sync::atomic::{AtomicU64, Ordering};

/// Every rank exposes a known value for a peer to read, and a word beside it for the
/// peer to write (nothing reads that word).
static PROBE: [AtomicU64; 2] = [AtomicU64::new(PROBE_VALUE), AtomicU64::new(0)];
const PROBE_VALUE: u64 = 0x6f78_6d70_6963_6d61;

/// Address of this process's probe words.
pub(crate) fn probe_addr() -> u64 {
    PROBE.as_ptr() as u64
}

/// Reads `dst.len()` bytes at `addr` in process `pid` into `dst`. `Ok(false)` when
/// the kernel refuses cross-memory access (the caller falls back to copying through
/// shared memory); `Err` for a failure in the middle of a transfer.
pub(crate) fn read(pid: u64, addr: u64, dst: &mut [u8]) -> std::io::Result<bool> {
    transfer(dst.as_mut_ptr(), addr, dst.len(), |local, remote| {
        // SAFETY: `local` covers memory we own exclusively (`dst`); the kernel checks
        // `remote` against the other process's mappings and fails cleanly if invalid.
        unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) }
    })
}

/// Reads several buffers of process `pid`, each `(address there, destination here)`,
/// in as few system calls as the kernel allows. Results as for [`read`] (after a
/// partial transfer the rest is read buffer by buffer).
pub(crate) fn read_many(pid: u64, parts: &mut [(u64, &mut [u8])]) -> std::io::Result<bool> {
    for group in parts.chunks_mut(IOV_MAX) {
        let local: Vec<libc::iovec> = group
            .iter_mut()
            .map(|(_, dst)| libc::iovec {
                iov_base: dst.as_mut_ptr().cast(),
                iov_len: dst.len(),
            })
            .collect();
        let remote: Vec<libc::iovec> = group
            .iter()
            .map(|(addr, dst)| libc::iovec {
                iov_base: *addr as usize as *mut libc::c_void,
                iov_len: dst.len(),
            })
            .collect();
        // SAFETY: every local iovec covers a destination we hold exclusively; the
        // kernel checks the remote ones against the other process's mappings.
        let n = unsafe {
            libc::process_vm_readv(
                pid as libc::pid_t,
                local.as_ptr(),
                local.len() as libc::c_ulong,
                remote.as_ptr(),
                remote.len() as libc::c_ulong,
                0,
            )
        };
        let total: usize = group.iter().map(|(_, dst)| dst.len()).sum();
        if n >= 0 && n as usize == total {
            continue;
        }
        // Refused, interrupted or partial: buffer by buffer from where it stopped.
        let mut done = n.max(0) as usize;
        for (addr, dst) in group.iter_mut() {
            let skip = done.min(dst.len());
            done -= skip;
            if skip < dst.len() && !read(pid, *addr + skip as u64, &mut dst[skip..])? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Most buffers one `process_vm_readv` takes (Linux's `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

/// Writes `src` at `addr` in process `pid`: bytes of a receive buffer there that the
/// caller's protocol gives to this process alone. Results as for [`read`].
pub(crate) fn write(pid: u64, addr: u64, src: &[u8]) -> std::io::Result<bool> {
    transfer(src.as_ptr().cast_mut(), addr, src.len(), |local, remote| {
        // SAFETY: the kernel only reads `local` (our `src`); it checks `remote` against
        // the other process's mappings and fails cleanly if invalid.
        unsafe { libc::process_vm_writev(pid as libc::pid_t, &local, 1, &remote, 1, 0) }
    })
}

/// Moves `len` bytes between `ptr` here and `addr` in another process with `call` (one
/// `process_vm_*` system call), retrying after interruptions and partial transfers.
fn transfer(
    ptr: *mut u8,
    addr: u64,
    len: usize,
    mut call: impl FnMut(libc::iovec, libc::iovec) -> isize,
) -> std::io::Result<bool> {
    let mut done = 0usize;
    while done < len {
        let local = libc::iovec {
            iov_base: ptr.wrapping_add(done).cast(),
            iov_len: len - done,
        };
        let remote = libc::iovec {
            iov_base: (addr as usize + done) as *mut libc::c_void,
            iov_len: len - done,
        };
        let n = call(local, remote);
        if n < 0 {
            let err = std::io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EPERM | libc::ENOSYS | libc::EACCES) if done == 0 => Ok(false),
                Some(libc::EINTR) => continue,
                _ => Err(err),
            };
        }
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "process_vm_readv/writev moved nothing",
            ));
        }
        done += n as usize;
    }
    Ok(true)
}

/// Whether this process may read `pid`'s probe value at `addr` and write the word
/// after it.
pub(crate) fn probe(pid: u64, addr: u64) -> bool {
    let mut got = [0u8; 8];
    matches!(read(pid, addr, &mut got), Ok(true))
        && u64::from_ne_bytes(got) == PROBE[0].load(Ordering::Relaxed)
        && matches!(write(pid, addr + 8, &got), Ok(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory_or_reports_refusal() {
        let src = vec![7u8; 100_000];
        let mut dst = vec![0u8; 100_000];
        match read(std::process::id() as u64, src.as_ptr() as u64, &mut dst) {
            Ok(true) => assert_eq!(src, dst),
            Ok(false) => eprintln!("process_vm_readv is forbidden here; the fallback is used"),
            Err(e) => panic!("unexpected failure: {e}"),
        }
        let _ = probe(std::process::id() as u64, probe_addr());
    }

    #[test]
    fn reads_many_buffers_at_once() {
        let src: Vec<Vec<u8>> = (0..1500u32)
            .map(|i| vec![i as u8; (i % 7) as usize * 100])
            .collect();
        let mut dst: Vec<Vec<u8>> = src.iter().map(|s| vec![0u8; s.len()]).collect();
        let mut parts: Vec<(u64, &mut [u8])> = src
            .iter()
            .zip(dst.iter_mut())
            .map(|(s, d)| (s.as_ptr() as u64, d.as_mut_slice()))
            .collect();
        match read_many(std::process::id() as u64, &mut parts) {
            Ok(true) => assert_eq!(src, dst),
            Ok(false) => eprintln!("process_vm_readv is forbidden here"),
            Err(e) => panic!("unexpected failure: {e}"),
        }
    }

    #[test]
    fn writes_own_memory_or_reports_refusal() {
        let src: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut dst = vec![0u8; 100_000];
        match write(std::process::id() as u64, dst.as_mut_ptr() as u64, &src) {
            Ok(true) => assert_eq!(src, dst),
            Ok(false) => eprintln!("process_vm_writev is forbidden here"),
            Err(e) => panic!("unexpected failure: {e}"),
        }
    }
}
