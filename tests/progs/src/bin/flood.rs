//! Backpressure: every other rank sends rank 0 100 000 small messages while rank 0 is
//! busy elsewhere; rank 0 then receives them all, in order per sender. Rank 0's memory
//! must stay bounded by the unexpected-message budget (run with a small
//! `OXMPI_UNEXPECTED_BYTES`), not grow with the flood.
//!
//! Arguments: the order rank 0 receives in, and the message length in bytes (default
//! 1024). Orders:
//! - `round-robin` (the default): one message from each sender in turn;
//! - `by-sender`: all of rank 1's, then all of rank 2's, ...: each receive names a
//!   sender whose messages wait among everyone else's;
//! - `mixed`: every third receive from any source, the others naming senders in turn
//!   in runs of 1000.

use oxmpi_testprogs::{check, max_rss_kib};

const MESSAGES: u64 = 100_000;

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let mut args = std::env::args().skip(1);
    let order = args.next().unwrap_or_else(|| "round-robin".into());
    let len: usize = args.next().map_or(1024, |l| l.parse().expect("a length"));
    let senders = (size - 1).max(1) as u64;
    let per_sender = MESSAGES / senders;
    let fill = |i: u64, src: i32| (i % 251) as u8 ^ (src as u8).wrapping_mul(16);
    if rank == 0 {
        let before = max_rss_kib();
        // Busy elsewhere while the flood arrives (not a timing assumption: the test
        // holds however the ranks are scheduled).
        std::thread::sleep(std::time::Duration::from_millis(500));
        let mut buf = vec![0u8; len];
        let sources: Vec<i32> = if size == 1 {
            vec![0]
        } else {
            (1..size).collect()
        };
        // Messages received so far from each sender.
        let mut got = vec![0u64; size as usize];
        let start = std::time::Instant::now();
        for k in 0..per_sender * senders {
            let left = |s: &&i32| got[**s as usize] < per_sender;
            let named = match order.as_str() {
                "round-robin" => Some(sources[(k % senders) as usize]),
                "by-sender" => sources.iter().find(left).copied(),
                "mixed" if k % 3 == 0 => None,
                "mixed" => {
                    let turn = (k / 1000) as usize % sources.len();
                    let mut from_turn = sources.iter().cycle().skip(turn).take(sources.len());
                    from_turn.find(left).copied()
                }
                other => panic!("unknown order {other}"),
            };
            if size == 1 {
                world.send(&vec![fill(k, 0); len], 0, 0)?;
            }
            let from = named.map_or(oxmpi::ANY_SOURCE, oxmpi::Source::from);
            let status = world.recv(&mut buf, from, 0)?;
            let src = status.source;
            let i = got[src as usize];
            got[src as usize] += 1;
            check(&world, buf.iter().all(|&b| b == fill(i, src)), || {
                format!("message {i} from {src} (asked for {named:?})")
            });
        }
        let grown_mib = (max_rss_kib() - before) / 1024;
        println!(
            "flood: {} messages of {len} bytes received in {:.2} s, peak memory grew by {grown_mib} MiB",
            per_sender * senders,
            start.elapsed().as_secs_f64()
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
        let mut msg = vec![0u8; len];
        for i in 0..per_sender {
            msg.fill(fill(i, rank));
            world.send(&msg, 0, 0)?;
        }
    }
    universe.finalize()
}
