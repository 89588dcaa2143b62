//! Where this process may run, as a key local ranks compare: ranks with the same CPU
//! affinity mask get the same key, so a waiter can count the awake ranks that compete
//! for its CPUs (those bound to its core, or every unbound rank) without knowing how
//! the launcher, or anything else, bound them.

/// A key of this process's CPU affinity mask (never 0: 0 means "not published").
pub(crate) fn key() -> u64 {
    // SAFETY: cpu_set_t is plain data, all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a writable cpu_set_t of the size passed.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        // Unknown: as if unbound (every such rank shares one key).
        return 1;
    }
    let cpus = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET only reads the initialised set, index below CPU_SETSIZE.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) });
    of_cpus(cpus)
}

/// The key of the mask holding `cpus` (FNV-1a over their indices).
fn of_cpus(cpus: impl Iterator<Item = usize>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for cpu in cpus {
        h = (h ^ cpu as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_masks_equal_keys_and_keys_are_never_zero() {
        assert_eq!(of_cpus([0, 1].into_iter()), of_cpus([0, 1].into_iter()));
        assert_ne!(of_cpus([0].into_iter()), of_cpus([1].into_iter()));
        assert_ne!(of_cpus([0].into_iter()), of_cpus([0, 1].into_iter()));
        assert_ne!(key(), 0);
    }
}
