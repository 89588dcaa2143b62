//! Collective operations through oxrun: every operation, every algorithm (forced in
//! turn inside each job), on the rank counts below, over shared memory, TCP and a
//! mix of both (two simulated nodes), checked against serial references by the test
//! programs `coll_reductions`, `coll_data` and `coll_mixed` (tests/progs); and
//! `coll_stress`'s seeded random sequences of all of them.

mod common;

use common::{Job, VARIANTS, Variant, printed_numbers};

/// Rank counts every collective runs at: powers of two and not, up to oversubscribed.
const RANKS: [usize; 9] = [1, 2, 3, 4, 5, 7, 8, 9, 16];

/// The transport variants collectives run under: shared memory (with and without
/// `membarrier` fences), TCP, and both.
fn variants() -> impl Iterator<Item = &'static Variant> {
    VARIANTS.iter().filter(|v| {
        matches!(
            v.name,
            "shared memory" | "publishers fence" | "tcp" | "two simulated nodes"
        )
    })
}

/// Runs `prog op` on every rank count and variant; the program prints `ok op`.
fn suite(prog: &str, op: &str) {
    for variant in variants() {
        for n in RANKS {
            let out = Job::new(n, prog).args([op]).variant(variant).success();
            assert!(
                out.contains(&format!("ok {op}")),
                "{prog} {op} on {n} ranks over {}: {out}",
                variant.name
            );
        }
    }
}

#[test]
fn allreduce() {
    suite("coll_reductions", "allreduce");
}

#[test]
fn reduce() {
    suite("coll_reductions", "reduce");
}

#[test]
fn reduce_scatter() {
    suite("coll_reductions", "reduce_scatter");
}

#[test]
fn reduce_scatter_block() {
    suite("coll_reductions", "reduce_scatter_block");
}

#[test]
fn scan() {
    suite("coll_reductions", "scan");
}

#[test]
fn exscan() {
    suite("coll_reductions", "exscan");
}

#[test]
fn barrier() {
    suite("coll_data", "barrier");
}

#[test]
fn bcast() {
    suite("coll_data", "bcast");
}

#[test]
fn gather_and_gatherv() {
    suite("coll_data", "gather");
    suite("coll_data", "gatherv");
}

#[test]
fn scatter_and_scatterv() {
    suite("coll_data", "scatter");
    suite("coll_data", "scatterv");
}

#[test]
fn allgather_and_allgatherv() {
    suite("coll_data", "allgather");
    suite("coll_data", "allgatherv");
}

#[test]
fn alltoall_and_alltoallv() {
    suite("coll_data", "alltoall");
    suite("coll_data", "alltoallv");
}

/// Where the node allows no single copies nothing is lent, so an alltoall forced
/// through the area goes in several pieces at every rank count.
#[test]
fn alltoall_in_pieces_without_single_copies() {
    for n in [3, 4, 8] {
        let out = Job::new(n, "coll_data")
            .args(["alltoall"])
            .env("OXMPI_SHM_SINGLE_COPY", "0")
            .success();
        assert!(out.contains("ok alltoall"), "{n} ranks: {out}");
    }
}

/// A 2-rank collective beyond the area's fixed limits (an allreduce of 16 KiB or
/// more, a bcast of more than 32 KiB, ...) goes the way rank 0 learns is faster:
/// its first calls of a size through the area, the next as messages, four to a
/// decision (`coll/learned.rs`, `engine/two_ways.rs`), then the faster with bursts of
/// the other. oxbench's `-c` checks every result, so 60 calls of 16-64 KiB and 7 of
/// each larger size (oxbench runs a tenth of the iterations there) check both ways,
/// whole vectors and pieces, the ranks in step, one collective after the other.
#[test]
fn two_rank_collectives_learn_their_way_with_every_result_right() {
    for op in [
        "allreduce",
        "bcast",
        "reduce",
        "gather",
        "scatter",
        "allgather",
        "alltoall",
    ] {
        let out = Job::new(2, "oxbench")
            .args([op, "-m", "16384:262144", "-i", "60", "-x", "0", "-c"])
            .success();
        let sizes = common::table_sizes(&out);
        assert_eq!(
            sizes,
            ["16384", "32768", "65536", "131072", "262144"],
            "{op}: {out}"
        );
    }
}

/// Alltoalls and allgathers among 3 and 4 ranks lend their send buffers, and a buffer
/// lent again and again goes onto huge pages part way (`transport/shm/huge_pages.rs`:
/// after 16 MiB a region, the 8th call here): oxbench's `-c` writes new contents
/// before every call and checks every result, before the collapse and after it.
#[test]
fn lent_collective_buffers_moved_onto_huge_pages_keep_every_result_right() {
    for n in [3, 4] {
        for op in ["alltoall", "allgather"] {
            let out = Job::new(n, "oxbench")
                .args([op, "-m", "1048576:1048576", "-i", "300", "-x", "0", "-c"])
                .success();
            assert!(
                out.lines().any(|l| l.starts_with("1048576")),
                "{op} on {n} ranks: {out}"
            );
        }
    }
}

/// Identical 2-rank allreduces give the same bits whichever way rank 0 sends each
/// (the area or messages): float results that depend on the operands' order (Min of
/// a NaN and a number) or on which NaN passes on (sums of NaNs), from 16 KiB, where
/// the messages go by recursive doubling, and from 1 MiB, by the ring. Before, the
/// area passed on a NaN's sign that recursive doubling made canonical, and the ring
/// put rank 1's operand first for half the vector.
#[test]
fn two_rank_learned_allreduce_gives_the_same_bits_either_way() {
    let out = Job::new(2, "coll_reductions")
        .args(["learned_ways"])
        .success();
    assert!(out.contains("ok learned_ways"), "{out}");
}

/// A collective's mid-size messages go eagerly, whatever the receiver asks of
/// point-to-point ones of that size: `coll_mid_eager` interleaves the two, and the
/// receiver reads some point-to-point messages while it tries that way. Without the
/// rule, 45-135 of the 600 collective messages were read.
#[test]
fn collectives_send_mid_size_messages_eagerly_unasked() {
    for len in ["6000", "8192"] {
        let out = Job::new(2, "coll_mid_eager").args([len]).success();
        assert!(out.contains("coll_mid_eager ok"), "{out}");
        let counts = printed_numbers(&out, "point-to-point reads ", ", collectives' reads ");
        // None read: the kernel forbids it, and nothing is asked.
        if counts[0] > 0 {
            assert_eq!(counts[1], 0, "{len} B: {out}");
        }
    }
}

/// Nonblocking collectives beside point-to-point traffic, on dup and split
/// communicators, and argument errors.
#[test]
fn mixed_traffic_subcommunicators_and_errors() {
    suite("coll_mixed", "mixed");
}

/// A seeded random sequence of every collective on five communicators (the world, a
/// duplicate, halves, the world reversed, the node's ranks), of sizes from empty to
/// past the area's buffers, blocking and nonblocking, some with point-to-point
/// messages on the same communicator in flight (`coll_stress`): the ways a collective
/// goes follow one another in orders the per-operation suites never make. A seed per
/// rank count.
#[test]
fn random_sequences_of_collectives_on_several_communicators() {
    for variant in variants() {
        for n in RANKS {
            let seed = (n * 31).to_string();
            let out = Job::new(n, "coll_stress")
                .args(["300", &seed])
                .variant(variant)
                .success();
            assert!(
                out.contains(&format!("coll stress ok on {n} ranks")),
                "coll_stress on {n} ranks over {}: {out}",
                variant.name
            );
        }
    }
}

/// Ranks that disagree on counts in collectives over the node's shared-memory area
/// all get an error (none hangs), on one node at several rank counts.
#[test]
fn disagreeing_counts_over_shared_memory_are_errors() {
    for n in [2, 3, 8] {
        let out = Job::new(n, "coll_mixed").args(["disagree"]).success();
        assert!(out.contains("ok disagree"), "{n} ranks: {out}");
    }
}

/// Ranks that disagree on counts in collectives that go as messages, and carry on
/// after the error: none waits forever, and they stay in step.
#[test]
fn disagreeing_counts_over_messages_end_no_rank_waiting() {
    for n in [2, 3, 4, 5] {
        let out = Job::new(n, "coll_mixed")
            .args(["disagree_messages"])
            .env("OXMPI_TRANSPORT", "tcp")
            .success();
        assert!(out.contains("ok disagree_messages"), "{n} ranks: {out}");
    }
}

/// Ranks that disagree on the count of a collective whose algorithm splits the vector
/// into a block per rank (forced: ring and Rabenseifner allreduce, reduce-scatter-
/// gather reduce, scatter-allgather bcast), one rank's count below the rank count,
/// so some of its blocks are empty where the others' are not: none waits for a
/// message that never comes (each such call waited until `--timeout`), the call
/// fails on some rank, and later collectives agree. As messages over shared memory
/// and over TCP, on powers of two and not, and in return-errors mode.
#[test]
fn disagreeing_counts_that_empty_a_block_end_no_rank_waiting() {
    let algs = [
        ("allreduce", "ring"),
        ("allreduce", "rabenseifner"),
        ("reduce", "reduce_scatter_gather"),
        ("bcast", "scatter_allgather"),
    ];
    for (op, alg) in algs {
        let var = format!("OXMPI_COLL_{}", op.to_uppercase());
        for (transport, n) in [
            ("auto", 2),
            ("auto", 3),
            ("tcp", 4),
            ("tcp", 5),
            ("auto", 7),
        ] {
            for errors in ["fatal", "return"] {
                let out = Job::new(n, "coll_mixed")
                    .args(["disagree_split", op])
                    .env(&var, alg)
                    .env("OXMPI_TRANSPORT", transport)
                    .env("OXMPI_ERRORS", errors)
                    .timeout(30)
                    .success();
                assert!(
                    out.contains("ok disagree_split"),
                    "{op} by {alg}, {n} ranks over {transport}, errors {errors}: {out}"
                );
            }
        }
    }
}

/// Ranks that disagree on a collective's count where one side's is 0 (the last
/// rank's count, 0 against 3 or 100000 elements, both ways), by every collective that
/// takes one count, and by the v-variants and reduce-scatter with the last rank's
/// entry of the counts so (alltoallv keeps its exception, see the README):
/// none waits for a message that never comes (most waited until `--timeout`, some
/// returned `Ok` on every rank), the call fails on some rank and later collectives
/// agree, or, where the counts put the ranks on different algorithms or on the
/// node's area beside messages, the job ends at once with a report of the
/// disagreement. Over shared memory and TCP, on powers of two and not, both error
/// modes.
#[test]
fn disagreeing_counts_of_zero_end_no_rank_waiting() {
    let ops = [
        "bcast",
        "reduce",
        "allreduce",
        "scan",
        "exscan",
        "gather",
        "scatter",
        "allgather",
        "alltoall",
        "reduce_scatter_block",
        "gatherv",
        "scatterv",
        "allgatherv",
        "reduce_scatter",
    ];
    for op in ops {
        for (transport, n) in [("auto", 2), ("tcp", 3), ("tcp", 4), ("auto", 5)] {
            for errors in ["fatal", "return"] {
                let out = Job::new(n, "coll_mixed")
                    .args(["disagree_zero", op])
                    .env("OXMPI_TRANSPORT", transport)
                    .env("OXMPI_ERRORS", errors)
                    .timeout(30)
                    .output();
                let stdout = String::from_utf8_lossy(&out.stdout);
                let stderr = String::from_utf8_lossy(&out.stderr);
                let passed = out.status.success() && stdout.contains("ok disagree_zero");
                let reported = out.status.code() == Some(1)
                    && stderr.contains("disagree")
                    && !stderr.contains("timed out");
                assert!(
                    passed || reported,
                    "{op}, {n} ranks over {transport}, errors {errors}: {:?}\n{stdout}\n{stderr}",
                    out.status
                );
            }
        }
    }
}

/// Ranks whose alltoallv counts disagree on a block one side makes empty: rank 0
/// sends rank 1 data where rank 1 expects none (every rank returned `Ok`, rank 1
/// without the data). Rank 1 finds the message unreceived as it waits with a later
/// collective of the communicator running, and the job ends with a report naming
/// both (without the check, this job hangs). (Where the receiver expects data that is
/// not sent, or the block is long enough to go by rendezvous, the ranks still wait
/// until `--timeout`: the README's exception.)
#[test]
fn an_alltoallv_block_sent_where_none_is_expected_ends_the_job() {
    let cases = [
        ("auto", 2, ""),
        ("auto", 3, ""),
        ("tcp", 2, ""),
        ("tcp", 4, ""),
        // Seen first while the (nonblocking) alltoallv still ran, then again.
        ("auto", 3, "nonblocking"),
        ("tcp", 3, "nonblocking"),
    ];
    for (transport, n, how) in cases {
        let out = Job::new(n, "coll_mixed")
            .args(["alltoallv_dropped", how])
            .env("OXMPI_TRANSPORT", transport)
            .timeout(30)
            .output();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = format!(
            "{n} ranks over {transport} {how}: {:?}\n{stderr}",
            out.status
        );
        assert_eq!(out.status.code(), Some(1), "{what}");
        assert!(
            stderr.contains("rank 1: alltoallv: rank 0 sent rank 1 a message in it"),
            "{what}"
        );
    }
}

/// Ranks late in the first collective of a communicator, then in the first of the
/// next one given the same context ids, tell the launcher what they wait in each
/// time: the words about the first are not taken for a disagreement in the second
/// (each communicator has its own incarnation), on the node's area and over TCP.
#[test]
fn late_ranks_in_reused_contexts_are_no_disagreement() {
    for transport in ["auto", "tcp"] {
        let out = Job::new(3, "coll_mixed")
            .args(["late_reused"])
            .env("OXMPI_TRANSPORT", transport)
            .output();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.matches("ok late_reused").count() == 3,
            "{transport}: {:?}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Ranks whose disagreeing counts put them on either side of a limit of the
/// selection table run different algorithms, each waiting for messages the other
/// never sends: the job ends at once with a report naming both ways, where it waited
/// until `--timeout`.
#[test]
fn disagreeing_counts_that_select_different_algorithms_end_the_job() {
    for (op, theirs, ours) in [
        ("allreduce", "rabenseifner", "recursive_doubling"),
        ("allgather", "ring", "bruck"),
    ] {
        let out = Job::new(4, "coll_mixed")
            .args(["disagree_algorithms", op])
            .env("OXMPI_TRANSPORT", "tcp")
            .output();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let named = stderr.contains(&format!("{op}: rank 3 runs it by {theirs} where rank "))
            || stderr.contains(&format!(
                "runs it by {ours} where rank 3 runs it by {theirs}"
            ));
        assert!(
            out.status.code() == Some(1) && named,
            "{op}: {:?}\nstderr:\n{stderr}",
            out.status
        );
    }
}

/// A rank whose arguments fail their checks in a collective (it alone: it takes no
/// part) goes on to another while the others wait in the first: into an allreduce
/// that meets in the node's area beside ranks waiting for its messages (allgatherv,
/// scan), or into a nonblocking barrier, as messages, beside ranks waiting for it in
/// the area (allreduce). The job ends with a report naming both collectives, where
/// it waited until `--timeout`.
#[test]
fn a_rank_skipping_a_collective_into_the_area_ends_the_job() {
    for (op, messages) in [
        ("allgatherv", "allgatherv"),
        ("scan", "scan"),
        ("allreduce", "barrier"),
    ] {
        let out = Job::new(3, "coll_mixed")
            .args(["one_rank_error", op])
            .output();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let named = stderr.contains(&format!("calls {messages} (as messages)"))
            && stderr.contains("calls allreduce in the shared-memory area");
        assert!(
            out.status.code() == Some(1)
                && stdout.contains(&format!("rank 1: {op}: Err(invalid argument: "))
                && named,
            "{op}: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        );
    }
}

/// Two ranks deep in learned allreduces, whose ways rank 0 decides for runs of calls
/// that the ranks then take without meeting, disagree on a count, out of step with
/// each other's runs; none waits. Where rank 0's run goes through the area, both
/// ranks get the disagreement as an error; where it goes as messages, the ranks are
/// on either side of the area, which nothing can put back in step: the job ends
/// with a report naming the disagreement.
#[test]
fn disagreeing_counts_in_learned_allreduces_end_no_rank_waiting() {
    let out = Job::new(2, "coll_mixed")
        .args(["disagree_learned"])
        .output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors = (0..2).all(|rank| {
        stdout.contains(&format!("rank {rank}: invalid argument: allreduce:"))
            && stdout.contains("the ranks disagree on the counts")
    });
    let ended =
        stderr.contains("the ranks disagree on the counts") && stderr.contains("ending the job");
    assert!(
        out.status.success() && errors || !out.status.success() && ended,
        "{:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}

/// Two ranks whose first learned calls disagree on the counts (another size class
/// on each) both meet for rank 0's decision: each gets the disagreement as an error
/// there, and they stay in step (`coll/learned.rs`).
#[test]
fn disagreeing_counts_in_first_learned_calls_are_errors_on_both_ranks() {
    let out = Job::new(2, "coll_mixed")
        .args(["disagree_learned_fresh"])
        .success();
    assert_eq!(out.matches("ok disagree_learned_fresh").count(), 2, "{out}");
}

/// Ranks deep in alltoalls too large for the area, which go by lent copies or in
/// pieces as rank 0 decides runs of calls (pieces then meet once, without waiting
/// for loans), disagree on a block size: rank 0's blocks few enough to go through
/// the area without lending (30 000 bytes), of the same size class as the others'
/// 64 KiB (3 ranks, 60 000 and 70 000 bytes; 4 ranks, 70 000) or of another (4 ranks,
/// 60 000). After 6 calls the next is deterministically one that its run sends in
/// pieces (the first run is 4 lent calls, the second 4 in pieces); after 29 and 202,
/// as learned. Every rank gets an error, none waits, they stay in step, and in the
/// 48 agreeing alltoalls after, whose runs may be out of step, each call fails on
/// every rank or succeeds on every rank with every block right, and all succeed
/// from the 24th on. Two earlier versions failed it: one took one collective number
/// on a rank in the area where the others took two (every later collective out of
/// step), the next let ranks out of step copy from one another (some succeeded where
/// others failed) and then ended the job. Where the node allows no single copies the
/// alltoalls go as messages.
#[test]
fn disagreeing_counts_in_alltoall_runs_are_errors_on_every_rank() {
    for n in [3, 4] {
        for other in ["30000", "60000", "70000"] {
            for calls in ["6", "29", "202"] {
                let out = Job::new(n, "coll_mixed")
                    .args(["disagree_alltoall_runs", other, calls])
                    .timeout(60)
                    .success();
                assert_eq!(
                    out.matches("ok disagree_alltoall_runs").count(),
                    n,
                    "{n} ranks, {other} after {calls}: {out}"
                );
            }
        }
    }
}

/// Ranks that finish the last collective early finalize while others still wait in
/// it for a late rank: nobody takes that for a rank that left without its part.
#[test]
fn ranks_leaving_a_collective_early_are_not_taken_for_missing_ones() {
    let ops = [
        "bcast",
        "allreduce",
        "reduce",
        "gather",
        "allgather",
        "alltoall",
        "barrier",
    ];
    for n in [3, 4, 5] {
        for op in ops {
            for order in [&["stagger", op][..], &["stagger", op, "reversed"]] {
                let out = Job::new(n, "coll_mixed").args(order).success();
                assert!(out.contains("ok stagger"), "{n} ranks, {order:?}: {out}");
            }
        }
    }
}

/// An unknown algorithm name in the environment is a clear configuration error.
#[test]
fn unknown_algorithm_in_environment_is_reported() {
    let out = Job::new(2, "coll_mixed")
        .env("OXMPI_COLL_ALLREDUCE", "bogus")
        .output();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("OXMPI_COLL_ALLREDUCE")
            && stderr.contains("recursive_doubling, rabenseifner, ring"),
        "stderr: {stderr}"
    );
}

/// A reduction's received operands below `KEEP_WHOLE` (1 MiB) are its own single
/// copies, not shared with the sender (whose core would then hold half of them);
/// larger ones, and a plain receive, share the copy where splits are asked for.
#[test]
fn a_reduction_keeps_its_operands_copy_whole_below_a_mebibyte() {
    let out = Job::new(2, "coll_reductions")
        .args(["copies"])
        .env("OXMPI_SHM_SINGLE_COPY", "1")
        .env("OXMPI_SHM_SPLIT", "8192")
        .success();
    if !out.contains("after reduce of 131072 bytes: single copy 1,") {
        // Only where the kernel lets ranks read each other's memory.
        assert!(out.contains("single copy 0, split 0"), "{out}");
        return;
    }
    for line in [
        "after reduce of 131072 bytes: single copy 1, split 0",
        "after reduce of 2097152 bytes: single copy 1, split 1",
        "after receive of 131072 bytes: single copy 1, split 2",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
}
