//! The point-to-point suite: each test program runs through oxrun at every rank count
//! and over every transport selection.

mod common;

use common::{Job, RANK_COUNTS, VARIANTS, printed_numbers};

fn suite(prog: &str, expect: &str) {
    for variant in &VARIANTS {
        for n in RANK_COUNTS {
            let out = Job::new(n, prog).variant(variant).success();
            assert!(
                out.contains(&format!("{expect} ok on {n} ranks")),
                "{prog} on {n} ranks ({}): unexpected output {out:?}",
                variant.name
            );
        }
    }
}

/// Large messages received each way over a job's ranks, from the lines `p2p_allpairs`
/// prints: (single copy, split, streamed), and whether any rank's start-up found the
/// single copy permitted.
fn large_receives(out: &str) -> ((u64, u64, u64), bool) {
    let (mut sum, mut permitted) = ((0, 0, 0), false);
    for line in out
        .lines()
        .filter(|l| l.starts_with("large receives of rank"))
    {
        let counts: Vec<u64> = line
            .split(", ")
            .map(|part| part.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        sum.0 += counts[0];
        sum.1 += counts[1];
        sum.2 += counts[2];
        permitted |= counts[3] == 1;
    }
    (sum, permitted)
}

/// Every large message `p2p_allpairs` on `n` ranks receives when `sizes` of its sizes
/// go by rendezvous between ranks: each from every other rank twice (nonblocking, then
/// sendrecv), and two (65537 B and 8 MiB) from itself.
fn large_messages(n: u64, sizes: u64) -> u64 {
    n * (2 + sizes * 2 * (n - 1))
}

/// Every size between every pair, on every transport; each large message is counted
/// once, and goes the way the variant asks for.
#[test]
fn all_pairs_exchange_every_size() {
    for variant in &VARIANTS {
        for n in RANK_COUNTS {
            let out = Job::new(n, "p2p_allpairs").variant(variant).success();
            assert!(out.contains(&format!("allpairs ok on {n} ranks")), "{out}");
            let ((single, split, streamed), permitted) = large_receives(&out);
            let what = format!("{} on {n} ranks: {out}", variant.name);
            // 65537 B and 8 MiB; 4096 B too under the tiny rings' 1 KiB eager limit.
            let sizes = if variant.name == "tiny rings" { 3 } else { 2 };
            let large = large_messages(n as u64, sizes);
            assert_eq!(single + split + streamed, large, "{what}");
            match variant.name {
                "tcp" | "shared memory without single copy" | "tiny rings" => {
                    assert_eq!((single, split), (0, 0), "{what}");
                }
                // Every large message between ranks is split where the kernel allows.
                "split copies" if permitted => {
                    assert_eq!((single, split), (0, large - n as u64 * 2), "{what}");
                }
                _ => {}
            }
        }
    }
}

/// A large message whose sender is itself to read one of the receiver's is read by the
/// receiver alone (the sender's core is busy with that); one whose sender has nothing
/// to read has its copy shared. With `OXMPI_SHM_SPLIT` set, both are shared.
#[test]
fn a_copy_is_not_shared_with_a_sender_busy_reading_ours() {
    for (split, want) in [(None, [(0, 1), (1, 0)]), (Some("131072"), [(0, 1), (0, 1)])] {
        let mut job = Job::new(2, "p2p_busy_sender");
        if let Some(split) = split {
            job = job.env("OXMPI_SHM_SPLIT", split);
        }
        let out = job.success();
        assert!(out.contains("busy_sender ok"), "{out}");
        // The kernel forbids single copies (all streamed), or by default on a node
        // with fewer cores than ranks, where no copy is shared.
        if out.contains("permitted false")
            || (split.is_none() && out.contains("rank 0: single copy 1"))
        {
            continue;
        }
        for (rank, (single, shared)) in want.iter().enumerate() {
            let line = format!("rank {rank}: single copy {single}, split {shared},");
            assert!(
                out.contains(&line),
                "OXMPI_SHM_SPLIT={split:?}, {line}: {out}"
            );
        }
    }
}

/// Where the kernel forbids reading another process's memory (a seccomp filter here,
/// as in containers), start-up finds out and large messages are streamed, even with
/// the single copy asked for.
#[test]
fn a_kernel_that_forbids_single_copy_gets_messages_streamed() {
    let program = common::program("p2p_allpairs");
    for single_copy in ["auto", "1"] {
        for n in [2, 3] {
            let out = Job::new(n, "no_single_copy")
                .args([&program])
                .env("OXMPI_SHM_SINGLE_COPY", single_copy)
                .success();
            assert!(out.contains(&format!("allpairs ok on {n} ranks")), "{out}");
            let streamed = large_messages(n as u64, 2);
            let want = ((0, 0, streamed), false);
            assert_eq!(large_receives(&out), want, "{single_copy}: {out}");
        }
    }
}

/// Mid-size messages that all arrive before their receives are posted: the receiver
/// reads those offered for reading into its unexpected queue at once, and learns from
/// those reads as from others, so its size class is tried eagerly again in bursts
/// (or goes eagerly, where that is faster) rather than offered for good. Rounds of 8
/// messages (40 rounds); the first round has its first four messages eager, the rest
/// offered (see `engine::rendezvous`).
#[test]
fn a_class_whose_messages_arrive_before_their_receives_is_still_learned() {
    for len in ["6000", "8192"] {
        let out = Job::new(2, "p2p_late_receives").args([len]).success();
        assert!(out.contains("late_receives ok on 2 ranks"), "{out}");
        let reads = printed_numbers(&out, "read per round of 8: ", " ");
        assert_eq!(reads.len(), 40, "{out}");
        // None read: the kernel forbids it, or the ranks share cores (no learning).
        if reads.iter().sum::<u64>() > 0 {
            let later: u64 = reads[1..].iter().sum();
            assert!(
                later < 39 * 8,
                "{len} B, all offered after the first round: {out}"
            );
        }
    }
}

#[test]
fn ordering_is_kept_per_sender_and_tags_match_out_of_order() {
    suite("p2p_order", "order");
}

#[test]
fn sends_up_to_the_eager_limit_complete_before_their_receives_are_posted() {
    suite("p2p_head_to_head", "head_to_head");
}

#[test]
fn blocking_receives_take_messages_off_the_ring_or_hand_over() {
    suite("p2p_blocking_recv", "blocking_recv");
}

#[test]
fn wildcards_and_master_worker() {
    suite("p2p_wildcards", "wildcards");
}

#[test]
fn waiting_for_only_oneself_is_a_deadlock_error() {
    suite("p2p_self_deadlock", "self");
}

/// Two threads of every rank calling `init` at once: one gets the universe, and the
/// job works (both threads went on to speak PMI over the one descriptor before).
#[test]
fn init_called_from_two_threads_at_once_starts_once() {
    for variant in VARIANTS
        .iter()
        .filter(|v| ["shared memory", "two simulated nodes"].contains(&v.name))
    {
        for n in [1, 3] {
            let out = Job::new(n, "init_race").variant(variant).success();
            assert!(
                out.contains(&format!("init race ok on {n} ranks")),
                "{}: {out}",
                variant.name
            );
        }
    }
}

/// A universe kept in a thread-local finalizes when the thread's thread-locals are
/// destroyed: at a spawned thread's exit, and at process exit for the main thread's.
/// (Its finalize reached oxmpi's own thread-locals, destroyed before it, and the
/// panic there aborted the rank.)
#[test]
fn a_universe_in_a_thread_local_finalizes_at_thread_exit() {
    for variant in VARIANTS
        .iter()
        .filter(|v| ["shared memory", "tcp"].contains(&v.name))
    {
        for mode in ["thread", "main"] {
            for n in [1, 2, 3] {
                let out = Job::new(n, "tls_universe")
                    .variant(variant)
                    .args([mode])
                    .success();
                assert!(
                    out.contains(&format!("tls universe ok on {n} ranks")),
                    "{} {mode}: {out}",
                    variant.name
                );
            }
        }
    }
}

#[test]
fn truncation_is_an_error_and_writes_nothing() {
    suite("p2p_truncate", "truncate");
}

#[test]
fn probe_then_receive_unknown_sizes() {
    suite("p2p_probe", "probe");
}

#[test]
fn ssend_waits_for_the_matching_receive() {
    suite("p2p_ssend", "ssend");
}

#[test]
fn a_receive_matching_an_arrived_message_answers_its_sender_at_once() {
    // Not with tiny rings, where a message longer than the ring waits for its
    // receiver, nor with split copies, where the sender's half of the copy ends with
    // the receiver's FIN, which comes with its next call (MPI's progress rule lets a
    // send wait for that).
    let waits_for_the_receiver = ["tiny rings", "split copies"];
    for variant in VARIANTS
        .iter()
        .filter(|v| !waits_for_the_receiver.contains(&v.name))
    {
        let out = Job::new(2, "p2p_answered").variant(variant).success();
        assert!(
            out.contains("answered ok on 2 ranks"),
            "{}: {out:?}",
            variant.name
        );
    }
}

#[test]
fn the_null_rank_as_a_peer() {
    suite("p2p_proc_null", "proc_null");
}

#[test]
fn dup_and_split() {
    suite("comm_split", "split");
}

#[test]
fn nonblocking_requests() {
    suite("p2p_nonblocking", "nonblocking");
}

#[test]
fn examples_run() {
    let mut jacobi = Vec::new();
    for n in [1, 2, 3, 4, 7, 16] {
        let hello = Job::new(n, "examples/hello").success();
        for r in 0..n {
            assert!(
                hello.contains(&format!("hello from rank {r} of {n} on ")),
                "{hello}"
            );
        }
        assert_eq!(hello.lines().count(), n);
        Job::new(n, "examples/ring").args(["5"]).success();
        Job::new(n, "examples/pi").args(["1000000"]).success();
        if n > 1 {
            Job::new(n, "examples/workers").args(["200"]).success();
        }
        // 10 interior rows: on 16 ranks, 6 have none and drop out.
        jacobi.push(Job::new(n, "examples/jacobi").args(["12", "400"]).success());
    }
    // The same bits whatever the number of ranks.
    assert!(jacobi[0].starts_with("jacobi 12x12: "), "{jacobi:?}");
    assert!(jacobi.iter().all(|out| *out == jacobi[0]), "{jacobi:?}");
}

#[test]
fn unknown_transport_is_a_clear_error() {
    let out = Job::new(2, "examples/hello")
        .env("OXMPI_TRANSPORT", "carrier-pigeon")
        .output();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OXMPI_TRANSPORT") && err.contains("carrier-pigeon") && err.contains("tcp"),
        "{err}"
    );
}

#[test]
fn bad_shared_memory_settings_are_clear_errors() {
    for (var, value, expected) in [
        ("OXMPI_SHM_SPLIT", "100", "at least 8192"),
        ("OXMPI_SHM_RING_KB", "3", "power of two"),
        ("OXMPI_EAGER_LIMIT", "100000000", "at most"),
        ("OXMPI_SHM_SINGLE_COPY", "yes", "0, 1 or auto"),
        ("OXMPI_SHM_MEMBARRIER", "yes", "0 or 1"),
    ] {
        let out = Job::new(2, "examples/hello").env(var, value).output();
        assert!(!out.status.success(), "{var}={value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(var) && err.contains(value) && err.contains(expected),
            "{var}={value}: {err}"
        );
    }
}

/// Every variable is checked by init whichever transport the job uses, and a value
/// that is not UTF-8 is an error, not taken for unset.
#[test]
fn every_setting_is_checked_whatever_the_transport() {
    use std::os::unix::ffi::OsStrExt;
    let not_utf8 = std::ffi::OsStr::from_bytes(b"tc\xffp");
    // (transport, variable, value, what the error says is expected)
    let cases: [(&str, &str, &std::ffi::OsStr, &str); 9] = [
        ("tcp", "OXMPI_SHM_RING_KB", "garbage".as_ref(), "integer"),
        ("tcp", "OXMPI_SHM_RING_KB", "3".as_ref(), "power of two"),
        ("tcp", "OXMPI_SHM_CHUNK", "-5".as_ref(), "integer"),
        ("auto", "OXMPI_COLL_ALLREDUCE", "bubble".as_ref(), "ring"),
        (
            "auto",
            "OXMPI_YIELDS",
            "4294967296".as_ref(),
            "at most 4294967295",
        ),
        (
            "auto",
            "OXMPI_SHM_RING_KB",
            "9007199254740992".as_ref(),
            "from 4 to",
        ),
        ("auto", "OXMPI_ERRORS", not_utf8, "not UTF-8"),
        // Checked with the kernel, though these ranks talk over shared memory.
        (
            "auto",
            "OXMPI_TCP_CONGESTION",
            "no-such-cc".as_ref(),
            "available: ",
        ),
        (
            "tcp",
            "OXMPI_TCP_CONGESTION",
            "two words".as_ref(),
            "auto, system",
        ),
    ];
    for (transport, var, value, expected) in cases {
        let out = Job::new(2, "examples/hello")
            .env("OXMPI_TRANSPORT", transport)
            .env(var, value)
            .output();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}={value:?} was accepted: {err}");
        assert!(err.contains(var) && err.contains(expected), "{var}: {err}");
    }
    // A rank started alone (oxrun sets this variable itself) reads it too.
    let out = std::process::Command::new(common::program("examples/hello"))
        .env("OXMPI_HOST_ADDR", "not-an-ip")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("OXMPI_HOST_ADDR"),
        "{err}"
    );
    // Other variables are not oxmpi's business, whatever their bytes.
    Job::new(2, "coll_mixed")
        .env("NOT_OXMPI", not_utf8)
        .success();
}

/// Long messages over TCP arrive whole under each congestion control setting: the
/// default (which moves BBR's connections to cubic or reno), the system's, and one
/// named (reno: every kernel has it, and lets every process use it).
#[test]
fn tcp_under_each_congestion_setting() {
    for setting in ["auto", "system", "reno"] {
        let out = Job::new(2, "oxbench")
            .args([
                "latency",
                "-m",
                "1048576:4194304",
                "-i",
                "30",
                "-x",
                "0",
                "-c",
            ])
            .env("OXMPI_TRANSPORT", "tcp")
            .env("OXMPI_TCP_CONGESTION", setting)
            .success();
        let sizes = common::table_sizes(&out);
        assert_eq!(sizes, ["1048576", "2097152", "4194304"], "{setting}: {out}");
    }
}

/// Every ring size the variable accepts works with the other settings left at their
/// defaults (which shrink to what a small ring carries).
#[test]
fn small_rings_work_without_other_settings() {
    for kb in ["4", "8", "16"] {
        let out = Job::new(2, "p2p_allpairs")
            .env("OXMPI_SHM_RING_KB", kb)
            .output();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "OXMPI_SHM_RING_KB={kb}: {err}");
    }
}

#[test]
fn stress_random_sizes_and_peers() {
    suite("shm_stress", "stress");
}

#[test]
fn a_blocked_receive_sleeps() {
    for variant in &VARIANTS {
        for n in [2, 3, 16] {
            let out = Job::new(n, "idle_wait").variant(variant).success();
            assert!(
                out.contains(&format!("idle ok on {n} ranks")),
                "{}: {out}",
                variant.name
            );
        }
    }
}

#[test]
fn a_flood_of_small_messages_keeps_memory_bounded() {
    for variant in &VARIANTS {
        for n in [2, 4] {
            let out = Job::new(n, "flood")
                .variant(variant)
                .env("OXMPI_UNEXPECTED_BYTES", "1048576")
                .success();
            assert!(
                out.contains(&format!("flood ok on {n} ranks")),
                "{}: {out}",
                variant.name
            );
        }
    }
}

/// A flood of tiny messages from several senders is received sender by sender, and
/// with every third receive from any source: each sender's messages come in order,
/// and a receive naming one sender takes its oldest message from among everyone
/// else's (the default budget lets tens of thousands wait at once).
#[test]
fn a_flood_received_sender_by_sender_comes_in_order() {
    for variant in &VARIANTS {
        for (n, order) in [(3, "by-sender"), (5, "by-sender"), (4, "mixed")] {
            let out = Job::new(n, "flood")
                .variant(variant)
                .args([order, "8"])
                .success();
            assert!(
                out.contains(&format!("flood ok on {n} ranks")),
                "{} {order}: {out}",
                variant.name
            );
        }
    }
}

/// Requests freed in a long-lived scope are forgotten once they complete: memory
/// stays flat over 500 000 of them.
#[test]
fn freed_requests_are_forgotten_once_complete() {
    for n in [1, 2] {
        let out = Job::new(n, "freed_requests").success();
        assert!(out.contains(&format!("freed ok on {n} ranks")), "{out}");
    }
}

/// A rank that finalizes inside a scope with a large receive in flight (its sender
/// doing the same) gets nothing written into the buffer once the scope has ended:
/// the sender's half of the split copy lands before finalize returns. (It landed
/// after the scope in 3 of 18 runs before.)
#[test]
fn nothing_writes_a_receive_buffer_after_finalize_in_its_scope() {
    let mut checked = 0;
    for _ in 0..12 {
        let out = Job::new(2, "finalize_in_scope").output();
        let out = String::from_utf8_lossy(&out.stdout);
        if let Some(changed) = out
            .lines()
            .find_map(|l| l.strip_prefix("changed after the scope: "))
        {
            assert_eq!(changed, "0", "bytes written after the scope ended");
            checked += 1;
        }
    }
    assert!(checked > 0, "rank 0 never got past its scope");
}

/// Over TCP, the crossing of the test above at a rank with more connections than it
/// reads on every progress call: the frames that wait in one connection until the
/// earlier ones come on the other are read once they have (they were never read again,
/// and the job hung).
#[test]
fn crossing_tcp_connections_at_a_rank_with_many_connections() {
    for n in [7, 9] {
        let out = Job::new(n, "tcp_crossing_crowded")
            .env("OXMPI_TRANSPORT", "tcp")
            .success();
        assert!(out.contains(&format!("crowded ok on {n} ranks")), "{out}");
    }
}

/// Over TCP, two ranks that both send first each open a connection; the higher then
/// moves to the lower's, and a backlog it sends while the lower rank computes arrives
/// in order, part on each connection.
#[test]
fn crossing_tcp_connections_keep_a_backlog_in_order() {
    for n in [2, 4] {
        let out = Job::new(n, "p2p_crossing")
            .env("OXMPI_TRANSPORT", "tcp")
            .success();
        assert!(out.contains(&format!("crossing ok on {n} ranks")), "{out}");
    }
}

/// What `p2p_huge_pages` printed: KiB of huge pages in the mappings of rank 0's lent
/// buffer, and whether the system can collapse memory, puts memory on huge pages
/// itself, and lets the ranks read each other's memory.
fn huge_pages(out: &str) -> (u64, bool, bool, bool) {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("huge pages in the buffer's mappings: "))
        .unwrap_or_else(|| panic!("no huge pages line: {out}"));
    let parts: Vec<&str> = line.split("; ").collect();
    let flag = |i: usize| parts[i].ends_with("true");
    let kib = parts[0].trim_end_matches(" kB").parse().unwrap();
    (kib, flag(1), flag(2), flag(3))
}

/// A buffer lent for single copies again and again is put on huge pages where the
/// kernel can collapse memory (Linux 6.1, transparent huge pages not `never`), and
/// stays on small ones with `OXMPI_SHM_HUGE_PAGES=0`; every message lent from it
/// arrives as the program last wrote it either way.
#[test]
fn memory_lent_again_and_again_goes_onto_huge_pages() {
    let out = Job::new(2, "p2p_huge_pages").success();
    assert!(out.contains("huge_pages ok"), "{out}");
    let (kib, possible, _, permitted) = huge_pages(&out);
    if possible && permitted {
        assert!(kib > 0, "no huge pages under the lent buffer: {out}");
    }
    let out = Job::new(2, "p2p_huge_pages")
        .env("OXMPI_SHM_HUGE_PAGES", "0")
        .success();
    assert!(out.contains("huge_pages ok"), "{out}");
    let (kib, _, always, _) = huge_pages(&out);
    if !always {
        assert_eq!(kib, 0, "huge pages with OXMPI_SHM_HUGE_PAGES=0: {out}");
    }
}
