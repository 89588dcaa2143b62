//! Output forwarding, tagging, stdin, environment and working directory of ranks.

mod common;

use common::*;

fn echo_ranks(n: usize) {
    let run = run_job(oxrun(&[
        "-n",
        &n.to_string(),
        "sh",
        "-c",
        "echo rank $PMI_RANK of $PMI_SIZE",
    ]));
    assert_eq!(run.code(), 0, "{run:?}");
    let mut expected: Vec<String> = (0..n).map(|r| format!("rank {r} of {n}")).collect();
    expected.sort();
    assert_eq!(run.sorted_lines(), expected);
    assert_eq!(run.stderr, "");
}

#[test]
fn one_rank() {
    echo_ranks(1);
}

#[test]
fn three_ranks() {
    echo_ranks(3);
}

#[test]
fn sixteen_ranks() {
    echo_ranks(16);
}

#[test]
fn tag_output_prefixes_stdout_and_stderr() {
    let run = run_job(oxrun(&[
        "--tag-output",
        "-n",
        "3",
        "sh",
        "-c",
        "echo out $PMI_RANK; echo err $PMI_RANK >&2",
    ]));
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(
        run.sorted_lines(),
        vec!["[0] out 0", "[1] out 1", "[2] out 2"]
    );
    let mut err: Vec<&str> = run.stderr.lines().collect();
    err.sort();
    assert_eq!(err, vec!["[0] err 0", "[1] err 1", "[2] err 2"]);
}

/// Open MPI's spellings: `-np N`, and `--oversubscribe` (accepted: oversubscription is
/// always allowed); the program's own flags after it are passed on untouched.
#[test]
fn single_dash_np_and_program_flags_untouched() {
    let run = run_job(oxrun(&[
        "--oversubscribe",
        "-np",
        "2",
        "sh",
        "-c",
        "echo \"$@\"",
        "sh",
        "-np",
        "5",
        "--tag-output",
    ]));
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(
        run.sorted_lines(),
        vec!["-np 5 --tag-output", "-np 5 --tag-output"]
    );
}

#[test]
fn exported_variables() {
    let mut cmd = oxrun(&[
        "-x",
        "OXRUN_TEST_A",
        "-x",
        "OXRUN_TEST_B=set by -x",
        "-x",
        "PMI_RANK=99",
        "-n",
        "2",
        "sh",
        "-c",
        "echo \"$PMI_RANK:$OXRUN_TEST_A:$OXRUN_TEST_B\"",
    ]);
    cmd.env("OXRUN_TEST_A", "from oxrun");
    let run = run_job(cmd);
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(
        run.sorted_lines(),
        vec!["0:from oxrun:set by -x", "1:from oxrun:set by -x"]
    );
}

#[test]
fn rank_environment() {
    let run = run_job(oxrun(&[
        "-n",
        "2",
        "sh",
        "-c",
        "echo $PMI_RANK $PMI_SIZE $PMI_SPAWNED $OXMPI_NODE_ID $OXMPI_LOCAL_RANK $OXMPI_LOCAL_SIZE \
         $OXMPI_HOST_ADDR ${#OXMPI_JOB_ID} ${#OXMPI_JOB_SECRET} $OXMPI_JOB_ID",
    ]));
    assert_eq!(run.code(), 0, "{run:?}");
    let lines = run.sorted_lines();
    let fields: Vec<Vec<&str>> = lines.iter().map(|l| l.split(' ').collect()).collect();
    assert_eq!(
        fields[0][..9],
        ["0", "2", "0", "0", "0", "2", "127.0.0.1", "16", "32"]
    );
    assert_eq!(
        fields[1][..9],
        ["1", "2", "0", "0", "1", "2", "127.0.0.1", "16", "32"]
    );
    assert_eq!(fields[0][9], fields[1][9], "one job id per job");
}

#[test]
fn oversubscribed_ranks_share_cores_round_robin() {
    let n = more_ranks_than_cores();
    let run = run_job(oxrun(&[
        "-n",
        &n.to_string(),
        "sh",
        "-c",
        "echo $PMI_RANK $OXMPI_OVERSUBSCRIBED $OXMPI_BINDING",
    ]));
    assert_eq!(run.code(), 0, "{run:?}");
    let lines = run.sorted_lines();
    assert_eq!(lines.len(), n, "{run:?}");
    let binding = |rank: usize| {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{rank} 1 ")))
            .unwrap_or_else(|| panic!("rank {rank} oversubscribed: {run:?}"));
        line.rsplit(' ').next().unwrap().to_owned()
    };
    // Without a readable topology every rank runs unbound. With one, the ranks take
    // the cores in turn: with `cores` distinct ones (fewer than the ranks, which
    // outnumber the PUs), rank i gets the core of rank i mod cores.
    if binding(0) != "none" {
        let all: Vec<String> = (0..n).map(binding).collect();
        assert!(all.iter().all(|b| b.starts_with("core:")), "{run:?}");
        let mut distinct = all.clone();
        distinct.sort();
        distinct.dedup();
        let cores = distinct.len();
        assert!(cores < n, "{run:?}");
        for (i, b) in all.iter().enumerate() {
            assert_eq!(*b, all[i % cores], "rank {i}: {run:?}");
        }
    }
}

/// Ranks that share cores start with glibc's restartable sequences off, added to
/// the tunables they inherit; a setting of their own is kept, and ranks with cores
/// of their own get the tunables as they are.
#[test]
fn ranks_sharing_cores_start_without_restartable_sequences() {
    let tunables = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["sh", "-c", "echo \"$OXMPI_OVERSUBSCRIBED $GLIBC_TUNABLES\""]);
        let mut cmd = oxrun(&all);
        cmd.env("GLIBC_TUNABLES", "glibc.malloc.check=3");
        let run = run_job(cmd);
        assert_eq!(run.code(), 0, "{run:?}");
        let mut lines = run.sorted_lines();
        lines.dedup();
        lines
    };
    let n = more_ranks_than_cores().to_string();
    assert_eq!(
        tunables(&["-n", &n]),
        ["1 glibc.malloc.check=3:glibc.pthread.rseq=0"]
    );
    assert_eq!(
        tunables(&["-x", "GLIBC_TUNABLES=glibc.pthread.rseq=1", "-n", &n]),
        ["1 glibc.pthread.rseq=1"]
    );
    assert_eq!(tunables(&["-n", "1"]), ["0 glibc.malloc.check=3"]);
}

/// Ranks bound to cores run there: each one's CPU affinity (as the kernel has it) is
/// its own core's, narrower than oxrun's. Where the machine shows its topology, ranks
/// no more than the cores are bound.
#[test]
fn bound_ranks_run_on_their_own_cores() {
    let n = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(4);
    let run = run_job(oxrun(&[
        "-n",
        &n.to_string(),
        "sh",
        "-c",
        "echo $PMI_RANK $OXMPI_BINDING $(grep Cpus_allowed_list /proc/self/status | cut -f2)",
    ]));
    assert_eq!(run.code(), 0, "{run:?}");
    let lines = run.sorted_lines();
    assert_eq!(lines.len(), n, "{run:?}");
    let topology = std::path::Path::new("/sys/devices/system/cpu/cpu0/topology").exists();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let all_cpus = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim();
    let mut allowed: Vec<&str> = Vec::new();
    for line in &lines {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "{run:?}");
        if fields[1] == "none" {
            assert!(!topology, "unbound although the topology is there: {run:?}");
            assert_eq!(fields[2], all_cpus, "{run:?}");
            continue;
        }
        assert!(fields[1].starts_with("core:"), "{run:?}");
        if n > 1 {
            assert_ne!(
                fields[2], all_cpus,
                "bound but free to run anywhere: {run:?}"
            );
        }
        allowed.push(fields[2]);
    }
    let mut distinct = allowed.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), allowed.len(), "ranks share a core: {run:?}");
}

#[test]
fn report_bindings() {
    let run = run_job(oxrun(&[
        "--report-bindings",
        "-n",
        "1",
        "sh",
        "-c",
        "echo $OXMPI_BINDING",
    ]));
    assert_eq!(run.code(), 0, "{run:?}");
    let report: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("[oxrun] rank 0 "))
        .collect();
    assert_eq!(report.len(), 1, "{run:?}");
    if run.stdout.trim() == "none" {
        assert!(report[0].contains("not bound"), "{run:?}");
    } else {
        assert!(run.stdout.starts_with("core:"), "{run:?}");
        assert!(report[0].contains("bound to core"), "{run:?}");
    }

    // More ranks than PUs: bound all the same (or unbound for want of a topology),
    // without a warning; `none` unbinds.
    let n = more_ranks_than_cores().to_string();
    let run = run_job(oxrun(&[
        "--report-bindings",
        "--bind-to",
        "core",
        "-n",
        &n,
        "true",
    ]));
    assert_eq!(run.code(), 0, "{run:?}");
    assert!(!run.stderr.contains("warning"), "{run:?}");
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("[oxrun] rank 1 "))
        .unwrap_or_else(|| panic!("no report for rank 1: {run:?}"));
    assert!(
        line.contains("bound to core") || line.contains("hardware topology unavailable"),
        "{run:?}"
    );
    let run = run_job(oxrun(&[
        "--report-bindings",
        "--bind-to",
        "none",
        "-n",
        &n,
        "true",
    ]));
    assert_eq!(run.code(), 0, "{run:?}");
    assert!(
        run.stderr
            .contains("[oxrun] rank 1 not bound (--bind-to none)"),
        "{run:?}"
    );
}

#[test]
fn working_directory() {
    let dir = scratch("wdir");
    std::fs::write(dir.join("script.sh"), "#!/bin/sh\npwd\n").unwrap();
    std::fs::set_permissions(
        dir.join("script.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    // A relative program path is found from --wdir.
    let run = run_job(oxrun(&["--wdir", d, "-n", "2", "./script.sh"]));
    assert_eq!(run.code(), 0, "{run:?}");
    let canonical = dir.canonicalize().unwrap();
    assert_eq!(run.stdout.lines().count(), 2, "{run:?}");
    assert!(
        run.stdout
            .lines()
            .all(|l| std::path::Path::new(l).canonicalize().unwrap() == canonical)
    );
    // PWD names it too (it named oxrun's directory), for programs that are no shell.
    let run = run_job(oxrun(&["--wdir", d, "-n", "1", "printenv", "PWD"]));
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(
        run.stdout.trim_end(),
        canonical.to_str().unwrap(),
        "{run:?}"
    );
    // An exported PWD is the user's to set.
    let run = run_job(oxrun(&[
        "--wdir",
        d,
        "-x",
        "PWD=/mine",
        "-n",
        "1",
        "printenv",
        "PWD",
    ]));
    assert_eq!(run.stdout.trim_end(), "/mine", "{run:?}");

    let missing = dir.join("missing");
    let run = run_job(oxrun(&[
        "--wdir",
        missing.to_str().unwrap(),
        "-n",
        "1",
        "true",
    ]));
    assert_eq!(run.code(), 2, "{run:?}");
    assert!(
        run.stderr.contains("--wdir") && run.stderr.contains("no such directory"),
        "{run:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn stdin_goes_to_rank_0_only() {
    let run = run_job_with_input(
        oxrun(&[
            "--tag-output",
            "-n",
            "3",
            "sh",
            "-c",
            "while read -r l; do echo \"got $l\"; done; echo eof",
        ]),
        b"alpha\nbeta\n",
    );
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(
        run.sorted_lines(),
        vec![
            "[0] eof",
            "[0] got alpha",
            "[0] got beta",
            "[1] eof",
            "[2] eof"
        ]
    );
}

#[test]
fn a_prompt_without_newline_comes_out_before_the_rank_reads_its_answer() {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let mut child = oxrun(&[
        "--timeout",
        "60",
        "-n",
        "1",
        "sh",
        "-c",
        "printf 'prompt: '; read -r x; echo \"got $x\"",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = child.stdout.take().unwrap();
    // Read until the prompt is there: it was held until its line ended, that is
    // until after the answer it asks for (oxrun's --timeout ends the wait).
    let mut seen = Vec::new();
    let mut byte = [0u8];
    while !seen.ends_with(b"prompt: ") {
        assert_eq!(output.read(&mut byte).unwrap(), 1, "output ended: {seen:?}");
        seen.push(byte[0]);
    }
    input.write_all(b"42\n").unwrap();
    drop(input);
    output.read_to_end(&mut seen).unwrap();
    assert!(wait_guarded(&mut child).success());
    assert_eq!(String::from_utf8_lossy(&seen), "prompt: got 42\n");
}

#[test]
fn long_lines_arrive_whole() {
    // A 200 000-byte line with newline, then a 100 000-byte line without one.
    let run = run_job(oxrun(&[
        "-n",
        "1",
        "sh",
        "-c",
        "head -c 200000 /dev/zero | tr '\\0' a; echo; head -c 100000 /dev/zero | tr '\\0' b",
    ]));
    assert_eq!(run.code(), 0, "{run:?}");
    let expected = format!("{}\n{}", "a".repeat(200_000), "b".repeat(100_000));
    assert!(
        run.stdout == expected,
        "output differs (len {})",
        run.stdout.len()
    );
}

#[test]
fn long_lines_with_tags_split_only_at_64k() {
    let run = run_job(oxrun(&[
        "--tag-output",
        "-n",
        "3",
        "sh",
        "-c",
        "head -c 150000 /dev/zero | tr '\\0' x; echo; echo short",
    ]));
    assert_eq!(run.code(), 0, "{run:?}");
    // Each rank's long line comes out whole or in pieces of exactly 64 KiB.
    for r in 0..3 {
        let prefix = format!("[{r}] ");
        let pieces: Vec<usize> = run
            .stdout
            .lines()
            .filter(|l| l.starts_with(&prefix) && l.ends_with('x'))
            .map(|l| l.len() - prefix.len())
            .collect();
        assert_eq!(pieces.iter().sum::<usize>(), 150_000, "rank {r}");
        for p in &pieces[..pieces.len() - 1] {
            assert_eq!(p % (64 << 10), 0, "rank {r}: pieces {pieces:?}");
        }
        assert!(run.stdout.contains(&format!("[{r}] short\n")));
    }
}

#[test]
fn interleaving_stress_keeps_lines_intact() {
    let script = "i=0; while [ $i -lt 1000 ]; do \
                  echo \"rank $PMI_RANK line $i ................................................ end\"; \
                  i=$((i+1)); done";
    for tag in [false, true] {
        let mut args = vec!["-n", "8"];
        if tag {
            args.push("--tag-output");
        }
        args.extend(["sh", "-c", script]);
        let run = run_job(oxrun(&args));
        assert_eq!(run.code(), 0, "{:?}", run.stderr);
        let mut seen = vec![vec![false; 1000]; 8];
        for line in run.stdout.lines() {
            let line = if tag {
                let (prefix, rest) = line.split_once("] ").expect("tag");
                let r: usize = prefix[1..].parse().unwrap();
                assert!(rest.starts_with(&format!("rank {r} ")), "{line}");
                rest
            } else {
                line
            };
            let words: Vec<&str> = line.split(' ').collect();
            assert_eq!(words.len(), 6, "mangled line {line:?}");
            assert_eq!(
                (words[0], words[2], words[5]),
                ("rank", "line", "end"),
                "{line:?}"
            );
            let r: usize = words[1].parse().unwrap();
            let i: usize = words[3].parse().unwrap();
            assert!(!seen[r][i], "duplicate {line:?}");
            seen[r][i] = true;
        }
        assert!(seen.iter().flatten().all(|&s| s), "lines missing");
    }
}

#[test]
fn output_of_a_failing_job_is_all_there() {
    let run = run_job(oxrun(&[
        "-n",
        "2",
        "sh",
        "-c",
        "i=0; while [ $i -lt 500 ]; do echo \"$PMI_RANK $i\"; i=$((i+1)); done; \
         printf 'last words'; exit $((PMI_RANK + 4))",
    ]));
    assert!(run.code() == 4 || run.code() == 5, "{run:?}");
    let whole = run
        .stdout
        .lines()
        .filter(|l| !l.contains("last words"))
        .count();
    // The rank that failed first wrote everything; the other may have been stopped.
    assert!(whole >= 500, "{whole}");
    assert!(run.stdout.contains("last words"));
}

#[test]
fn closed_stdout_reaches_the_ranks() {
    use std::io::{BufRead, BufReader};
    // Like `yes | head -1`: the ranks get SIGPIPE instead of running forever.
    let mut cmd = oxrun(&["-n", "2", "yes"]);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "y\n");
    drop(stdout);
    let run = collect(child);
    assert_eq!(run.code(), 128 + libc::SIGPIPE, "{run:?}");
    assert!(
        run.stderr.contains("killed by signal 13 (SIGPIPE)"),
        "{run:?}"
    );
}

/// A reader that keeps oxrun's stdout open but stops reading (a paused terminal, a
/// stuck pipe) holds the ranks' output back, not oxrun: `--timeout` still ends the
/// job, and so does a signal.
#[test]
fn a_reader_that_stops_reading_does_not_stop_oxrun() {
    for how in ["timeout", "signal"] {
        let mut args = vec!["-n", "2"];
        if how == "timeout" {
            args.extend(["--timeout", "1"]);
        }
        args.push("yes");
        let mut cmd = oxrun(&args);
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // Hold the pipe open without reading it.
        let stdout = child.stdout.take().unwrap();
        if how == "signal" {
            // Let the pipe fill first.
            std::thread::sleep(std::time::Duration::from_millis(500));
            // SAFETY: kill takes plain integers; the pid is our child's.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        let run = collect(child);
        drop(stdout);
        let expected = if how == "timeout" {
            124
        } else {
            128 + libc::SIGTERM
        };
        assert_eq!(run.code(), expected, "{how}: {run:?}");
    }
}

/// A reader slower than the job gets all of its output: oxrun waits for it at the
/// end, as the ranks would writing to it themselves (it used to give up after a
/// second and drop what it held).
#[test]
fn a_slow_reader_gets_all_the_output() {
    use std::io::Read;
    let mut cmd = oxrun(&["-n", "2", "seq", "1", "200000"]);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // The ranks write 2.7 MB, more than oxrun and the pipes hold: they end only once
    // reading starts, however the processes are scheduled. Two seconds make the
    // reader start later than the job would end with nobody reading at all.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let mut all = String::new();
    stdout.read_to_string(&mut all).unwrap();
    let run = collect(child);
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(all.lines().count(), 400_000, "lines lost");
    assert_eq!(all.lines().filter(|l| *l == "200000").count(), 2);
}

/// With stdout and stderr one pipe (`2>&1`), lines from the two streams never mix
/// within a line.
#[test]
fn stdout_and_stderr_into_one_pipe_keep_lines_whole() {
    // oxrun writes each stream in batches far above PIPE_BUF, which the kernel
    // writes in pieces: two writers at once would mix them mid-line.
    let dots = ".".repeat(200);
    let script =
        format!("yes \"rank $PMI_RANK {dots} end\" | head -n 50000 >&$((PMI_RANK % 2 + 1))");
    let (all, status) = into_one_pipe(oxrun(&["-n", "2", "sh", "-c", &script]));
    assert!(status.success());
    let mut counts = [0; 2];
    for line in all.lines() {
        let r = (0..2)
            .find(|r| line == format!("rank {r} {dots} end"))
            .unwrap_or_else(|| panic!("a mixed line: {line:?}"));
        counts[r] += 1;
    }
    assert_eq!(counts, [50_000, 50_000]);
}

/// Runs `cmd` (no stdin) with its stdout and stderr into one pipe (`2>&1`), and
/// returns all it wrote there and how it ended.
fn into_one_pipe(mut cmd: std::process::Command) -> (String, std::process::ExitStatus) {
    use std::io::Read;
    let (mut rx, tx) = std::io::pipe().unwrap();
    cmd.stdin(std::process::Stdio::null())
        .stdout(tx.try_clone().unwrap())
        .stderr(tx);
    let mut child = cmd.spawn().unwrap();
    // The pipe's write ends live in `cmd` too: dropped, so the read sees the end.
    drop(cmd);
    let mut all = String::new();
    rx.read_to_string(&mut all).unwrap();
    (all, child.wait().unwrap())
}

/// With stdout and stderr one pipe, a rank's last line without newline on one stream
/// ends before another rank's line on the other, and before oxrun's report (both
/// were glued onto it: "[0] partial[1] line").
#[test]
fn one_pipe_ends_a_last_line_without_newline_before_the_other_stream() {
    // Rank 0 leaves a stdout line unfinished and exits; rank 1 then writes a line to
    // stderr once rank 0 has ended (oxrun keeps it a zombie until the job ends), and
    // fails.
    let script = r#"if [ $PMI_RANK = 0 ]; then printf 'partial'; echo $$ > "$1/r0"; exit 0; fi
until [ -s "$1/r0" ] && grep -q '^State:[[:space:]]*Z' "/proc/$(cat "$1/r0")/status"; do
  sleep 0.01
done
echo "line" >&2; exit 3"#;
    let dir = scratch("one_pipe");
    let mut cmd = oxrun(&["--tag-output", "-n", "2", "sh", "-c", script, "sh"]);
    cmd.arg(&dir);
    let (all, status) = into_one_pipe(cmd);
    assert_eq!(status.code(), Some(3), "{all}");
    let mut lines: Vec<&str> = all.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 3, "{all:?}");
    assert_eq!(lines[..2], ["[0] partial", "[1] line"], "{all:?}");
    assert!(lines[2].starts_with("oxrun: rank 1 "), "{all:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Settings that cannot work are refused before anything starts (status 2), naming
/// what is wrong.
#[test]
fn unusable_settings_are_refused() {
    /// Flags, environment, and what the report must name.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 3] = [
        (&["-x", "A B=1"], &[], "not a variable name"),
        (&["-x", "A\nB=1"], &[], "not a variable name"),
        (&[], &[("OXRUN_KILL_GRACE_MS", "-5")], "OXRUN_KILL_GRACE_MS"),
    ];
    for (flags, env, needle) in cases {
        let mut args = flags.to_vec();
        args.extend(["-n", "2", "true"]);
        let mut cmd = oxrun(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let run = run_job(cmd);
        assert_eq!(run.code(), 2, "{flags:?}: {run:?}");
        assert!(run.stderr.contains(needle), "{flags:?}: {run:?}");
    }
}

/// A `--node-netns` entry naming a FIFO, a device or a directory is refused before
/// anything starts, instead of oxrun waiting forever to open the FIFO (deaf to Ctrl-C).
#[test]
fn a_node_namespace_that_is_no_namespace_file_is_refused_at_once() {
    let dir = scratch("netns-fifo");
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo only reads the NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let started = dir.join("started");
    let mark = format!("touch {}", started.display());
    for (path, kind) in [
        (fifo.to_str().unwrap(), "a FIFO"),
        ("/dev/null", "a device"),
        (dir.to_str().unwrap(), "a directory"),
    ] {
        let flag = format!("{path}=10.9.9.1");
        // run_job's hang guard turns a hang into a failure.
        let run = run_job(oxrun(&[
            "--node-netns",
            &flag,
            "-n",
            "1",
            "sh",
            "-c",
            &mark,
        ]));
        assert_eq!(run.code(), 2, "{path}: {run:?}");
        let says = format!("oxrun: --node-netns: '{path}' is not a network namespace but {kind}");
        assert_eq!(run.oxrun_lines(), vec![says.as_str()], "{run:?}");
        assert!(!started.exists(), "a rank started: {run:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `-x` cannot override what oxrun sets for each rank: it says so.
#[test]
fn exporting_a_launcher_variable_is_a_warning() {
    let run = run_job(oxrun(&[
        "-x",
        "PMI_RANK=7",
        "-n",
        "1",
        "sh",
        "-c",
        "echo $PMI_RANK",
    ]));
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(run.stdout, "0\n");
    assert!(
        run.stderr
            .contains("-x PMI_RANK: oxrun sets it for every rank; ignored"),
        "{run:?}"
    );
}
