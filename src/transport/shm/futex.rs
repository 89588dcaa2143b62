//! Futex wait and wake on a 32-bit word in shared memory (process-shared: never
//! `FUTEX_PRIVATE_FLAG`, since the sleeper and the waker are different processes).

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `word` holds `expected`, for at most `timeout`. Returns on a wake, a
/// timeout, a signal, or at once if the word no longer holds `expected`.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call; the kernel
    // only reads it and the timespec.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0,
        );
    }
}

/// Wakes every process sleeping on `word`.
pub(crate) fn wake(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE does not dereference the
    // remaining arguments.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            0usize,
            0usize,
            0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    #[test]
    fn wake_ends_a_wait_and_a_changed_word_does_not_sleep() {
        let word = Arc::new(AtomicU32::new(1));
        let (woken, told) = std::sync::mpsc::channel();
        {
            let word = Arc::clone(&word);
            // Never times out in the test: only the wake below ends it.
            std::thread::spawn(move || {
                while word.load(Ordering::Acquire) == 1 {
                    wait(&word, 1, Duration::from_secs(3600));
                }
                woken.send(()).unwrap();
            });
        }
        std::thread::sleep(Duration::from_millis(20));
        word.store(0, Ordering::Release);
        wake(&word);
        assert!(
            told.recv_timeout(Duration::from_secs(20)).is_ok(),
            "the wake did not end the wait"
        );
        // Word differs from expected: returns immediately.
        wait(&word, 7, Duration::from_secs(3600));
    }

    /// A wait sleeps: over 100 ms on an unchanged word it returns a handful of times
    /// (its timeouts, a rare spurious wake-up), not the millions a spin would.
    #[test]
    fn a_wait_sleeps_until_its_timeout() {
        let word = AtomicU32::new(1);
        let start = std::time::Instant::now();
        let mut returns = 0;
        while start.elapsed() < Duration::from_millis(100) {
            wait(&word, 1, Duration::from_millis(30));
            returns += 1;
        }
        assert!(returns < 50, "{returns} returns in 100 ms");
    }
}
