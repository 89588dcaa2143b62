//! oxbench through oxrun: the tables are in the OSU format compare-mpi parses, the
//! data arrives intact (`-c`), extra ranks sit out, and bad arguments are one clear
//! error with exit status 2. Nothing here asserts on the measured values.

mod common;

use common::Job;

/// The rows of an OSU table after checking its header: `(size, value)` pairs.
fn rows(out: &str, label: &str) -> Vec<(usize, f64)> {
    let (comments, rows): (Vec<&str>, Vec<&str>) = out.lines().partition(|l| l.starts_with('#'));
    assert!(comments[0].starts_with("# OSU-style "), "title line: {out}");
    assert_eq!(
        comments.last(),
        Some(&format!("# Size  {label}").as_str()),
        "{out}"
    );
    rows.iter()
        .map(|row| match row.split_whitespace().collect::<Vec<_>>()[..] {
            [size, value] => (size.parse().expect("size"), value.parse().expect("value")),
            _ => panic!("row {row:?} is not `size value`"),
        })
        .collect()
}

#[test]
fn latency_and_bw_tables_with_validation() {
    // Sizes around the eager limit (64 KiB) take both protocols.
    let sizes: Vec<usize> = [0].into_iter().chain((0..=17).map(|p| 1 << p)).collect();
    for (test, label) in [("latency", "Latency (us)"), ("bw", "Bandwidth (MB/s)")] {
        for n in [2, 3] {
            let out = Job::new(n, "oxbench")
                .args([test, "-m", "0:131072", "-i", "20", "-c"])
                .success();
            let rows = rows(&out, label);
            assert_eq!(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                sizes,
                "{test} on {n} ranks: {out}"
            );
            assert!(
                rows.iter()
                    .all(|&(size, v)| v.is_finite() && (v > 0.0 || size == 0)),
                "{out}"
            );
        }
    }
}

/// A window of messages below the split size whose copy the receiver shares with the
/// sender (a chunk per message, each end claiming the next) arrives intact, read
/// always (no streamed messages among them) or as learned.
#[test]
fn windows_shared_a_message_a_chunk_arrive_intact() {
    for (split, single_copy) in [("65536", "1"), ("131072", "")] {
        let out = Job::new(2, "oxbench")
            .args(["bw", "-m", "32768:131072", "-i", "200", "-c"])
            .env("OXMPI_SHM_SPLIT", split)
            .env("OXMPI_SHM_SINGLE_COPY", single_copy)
            .success();
        let sizes: Vec<usize> = rows(&out, "Bandwidth (MB/s)").iter().map(|r| r.0).collect();
        assert_eq!(sizes, [32768, 65536, 131072], "{out}");
    }
}

#[test]
fn defaults_sweep_to_one_mebibyte() {
    let out = Job::new(2, "oxbench")
        .args(["bw", "-i", "20", "-x", "0"])
        .success();
    let sizes: Vec<usize> = rows(&out, "Bandwidth (MB/s)").iter().map(|r| r.0).collect();
    assert_eq!(sizes, (0..=20).map(|p| 1 << p).collect::<Vec<_>>());
}

#[test]
fn bad_arguments_exit_2_with_one_message() {
    for (n, args, says) in [
        (1, &["latency"][..], "latency needs at least 2 ranks"),
        (2, &["bw", "-m", "9:3"], "MIN (9) is larger than MAX (3)"),
        (2, &["latency", "-i", "0"], "at least 1"),
        (2, &["pingpong"], "unrecognized subcommand"),
        (4, &["alltoall", "-m", "4611686018427387904"], "too large"),
    ] {
        let out = Job::new(n, "oxbench").args(args).output();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.matches(says).count(), 1, "{args:?}: {stderr}");
    }
    // Sizes no buffer can hold: a clear error on every rank, not a panic.
    let out = Job::new(2, "oxbench")
        .args(["latency", "-m", &usize::MAX.to_string()])
        .output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("cannot allocate") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

/// `oxrun -n 2 oxbench latency | head -3`: rank 0, printing into the closed pipe, ends
/// as `yes` would, killed by SIGPIPE, which oxrun reports once before it exits with
/// 128 + 13; no panic ("failed printing to stdout"). Enough iterations that the job
/// cannot end before the reader goes.
#[test]
fn a_closed_stdout_ends_the_job_as_it_ends_yes() {
    use std::io::{BufRead, BufReader};
    let mut child = Job::new(2, "oxbench")
        .args(["latency", "-i", "100000"])
        .spawn_piped();
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("a line");
    assert!(first.starts_with("# OSU-style Latency Test"), "{first}");
    drop(stdout);
    let out = child.wait_with_output().expect("oxrun ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(128 + libc::SIGPIPE), "{stderr}");
    assert_eq!(
        stderr.matches("killed by signal 13 (SIGPIPE)").count(),
        1,
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
