//! Backpressure: every other rank sends rank 0 100 000 small messages (1 KiB) while
//! rank 0 is busy elsewhere; rank 0 then receives them all, in order per sender. Rank
//! 0's memory must stay bounded by the unexpected-message budget (run with a small
//! `OXMPI_UNEXPECTED_BYTES`), not grow with the flood.

use oxmpi_testprogs::{check, max_rss_kib};

const MESSAGES: u64 = 100_000;
const LEN: usize = 1024;

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let senders = (size - 1).max(1) as u64;
    let per_sender = MESSAGES / senders;
    if rank == 0 {
        let before = max_rss_kib();
        // Busy elsewhere while the flood arrives (not a timing assumption: the test
        // holds however the ranks are scheduled).
        std::thread::sleep(std::time::Duration::from_millis(500));
        let mut buf = vec![0u8; LEN];
        for i in 0..per_sender {
            for s in 1..size.max(2) {
                let src = if size == 1 { 0 } else { s };
                if size == 1 {
                    world.send(&vec![(i % 251) as u8; LEN], 0, 0)?;
                }
                world.recv(&mut buf, src, 0)?;
                check(&world, buf.iter().all(|&b| b == (i % 251) as u8), || {
                    format!("message {i} from {src}")
                });
            }
        }
        let grown_mib = (max_rss_kib() - before) / 1024;
        println!(
            "flood: {} messages of {LEN} bytes, peak memory grew by {grown_mib} MiB",
            per_sender * senders
        );
        let budget_mib = std::env::var("OXMPI_UNEXPECTED_BYTES")
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .map_or(64, |b| b >> 20);
        check(&world, grown_mib < 32 + budget_mib, || {
            format!("memory grew by {grown_mib} MiB")
        });
        println!("flood ok on {size} ranks");
    } else {
        let mut msg = vec![0u8; LEN];
        for i in 0..per_sender {
            msg.fill((i % 251) as u8);
            world.send(&msg, 0, 0)?;
        }
    }
    universe.finalize()
}
