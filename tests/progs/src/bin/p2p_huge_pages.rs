//! Memory lent again and again for single copies goes onto huge pages, and every
//! message lent from it arrives as sent: rank 0 sends rank 1 one 8 MiB buffer 26
//! times (each 2 MiB region inside it lends 52 MiB: two tries of the library's, at 16
//! MiB and 48), writing new contents into it before each send, so a collapse that lost
//! a write shows; rank 1 checks every message. Rank 0 then prints the huge pages in
//! the mappings the buffer lies in, from /proc/self/smaps, whether this system can
//! collapse memory at all, and whether it puts memory on huge pages itself.

use oxmpi_testprogs::{check, pattern, seed};

const LEN: usize = 8 << 20;
const ROUNDS: u64 = 26;
const REGION: usize = 2 << 20;

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let rank = world.rank();
    assert_eq!(world.size(), 2, "p2p_huge_pages runs on 2 ranks");
    let mut buf = vec![0u8; LEN];
    for round in 0..ROUNDS {
        let want = pattern(seed(0, 1, LEN, round), LEN);
        if rank == 0 {
            buf.copy_from_slice(&want);
            world.send(&buf, 1, 0)?;
        } else {
            world.recv(&mut buf, 0, 0)?;
            check(&world, buf == want, || format!("message {round} is wrong"));
        }
    }
    if rank == 0 {
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        let malloc_huge = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("hugetlb"));
        println!(
            "huge pages in the buffer's mappings: {} kB; collapse possible: {}; always huge: {}; single copy permitted: {}",
            huge_kib(buf.as_ptr() as usize, LEN),
            !mode.contains("[never]") && can_collapse(),
            mode.contains("[always]") || malloc_huge,
            oxmpi::large_receives().single_copy_permitted
        );
    }
    world.barrier()?;
    if rank == 0 {
        println!("huge_pages ok");
    }
    universe.finalize()
}

/// KiB of huge pages in the mappings of this process that `[addr, addr + len)` lies in.
fn huge_kib(addr: usize, len: usize) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("/proc/self/smaps");
    let mut inside = false;
    let mut total = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-')
            && let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        {
            inside = lo < addr + len && addr < hi;
        } else if inside && let Some(kib) = line.strip_prefix("AnonHugePages:") {
            total += kib
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap_or(0);
        }
    }
    total
}

/// Whether the kernel collapses a region of fresh anonymous memory into a huge page.
fn can_collapse() -> bool {
    let mut v = vec![1u8; 2 * REGION];
    let base = (v.as_mut_ptr() as usize).next_multiple_of(REGION);
    // SAFETY: the region lies inside `v`, which this function owns; MADV_COLLAPSE
    // keeps its contents.
    unsafe { libc::madvise(base as *mut libc::c_void, REGION, libc::MADV_COLLAPSE) == 0 }
}
