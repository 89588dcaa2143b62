//! Failing ranks end the job promptly with a report naming the rank and the cause, a
//! non-zero status, and no processes left behind.

mod common;

use std::path::Path;
use std::process::Output;

use common::Job;

/// The (pid, job id) every rank wrote.
fn pids_in(dir: &Path) -> Vec<(i32, String)> {
    std::fs::read_dir(dir)
        .expect("pid dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pid."))
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).expect("pid file");
            let (pid, job) = text.trim().split_once(' ').expect("pid and job id");
            (pid.parse().expect("pid"), job.to_owned())
        })
        .collect()
}

/// What job `job` has in /dev/shm.
fn segments_of(job: &str) -> Vec<std::ffi::OsString> {
    std::fs::read_dir("/dev/shm")
        .expect("/dev/shm")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(job))
        .map(|e| e.file_name())
        .collect()
}

/// Whether `pid` still runs (a zombie does not: after oxrun is killed, its ranks
/// are reaped by whoever inherits them, maybe late).
fn running(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
    !state.is_some_and(|s| s.starts_with('Z') || s.starts_with('X'))
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks whether the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Runs `fail ARGS` on `n` ranks; returns (exit code, stderr) after checking that
/// every rank's process is gone.
fn run_failing(n: usize, args: &[&str]) -> (Option<i32>, String) {
    run_failing_with(n, args, "auto")
}

/// As [`run_failing`], with `OXMPI_TRANSPORT` set to `transport`.
fn run_failing_with(n: usize, args: &[&str], transport: &str) -> (Option<i32>, String) {
    let out = run_failing_job(Job::new(n, "fail"), n, args, transport);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `job` (of `fail ARGS` on `n` ranks) over `transport` and checks that every
/// rank's process is gone and nothing of the job is left in /dev/shm.
fn run_failing_job(job: Job, n: usize, args: &[&str], transport: &str) -> Output {
    let dir = tempdir();
    let out = job
        .args(args)
        .env("OXMPI_TEST_PIDDIR", dir.to_str().unwrap())
        .env("OXMPI_TRANSPORT", transport)
        .output();
    let pids = pids_in(&dir);
    // A rank killed during start-up may take the others down before they all start.
    if matches!(args[0], "killearly" | "killinit") {
        assert!(!pids.is_empty() && pids.len() <= n);
    } else {
        assert_eq!(pids.len(), n, "every rank wrote its pid");
    }
    for (pid, job) in pids {
        assert!(!alive(pid), "rank process {pid} outlived the job");
        let left = segments_of(&job);
        assert!(left.is_empty(), "the job left {left:?} in /dev/shm");
    }
    std::fs::remove_dir_all(&dir).ok();
    out
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "oxmpi-fail-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn a_rank_exiting_with_code_3_ends_the_job() {
    for (n, victim) in [(2, "1"), (4, "2"), (7, "0")] {
        let (code, err) = run_failing(n, &["exit", victim, "3"]);
        assert_eq!(code, Some(3), "{err}");
        assert!(
            err.contains(&format!("rank {victim} ")) && err.contains("exited with code 3"),
            "{err}"
        );
    }
}

#[test]
fn a_rank_killed_by_sigkill_ends_the_job() {
    for (n, victim) in [(2, "0"), (4, "1"), (16, "9")] {
        let (code, err) = run_failing(n, &["kill", victim]);
        assert_eq!(code, Some(137), "{err}");
        assert!(
            err.contains(&format!("rank {victim} ")) && err.contains("signal 9"),
            "{err}"
        );
    }
}

#[test]
fn abort_ends_the_job_with_its_code() {
    let (code, err) = run_failing(3, &["abort", "2", "7"]);
    assert_eq!(code, Some(7), "{err}");
    assert!(err.contains("rank 2") && err.contains("abort"), "{err}");
}

/// Without a launcher (a singleton), an abort exits with its code modulo 256, or 1
/// where that is 0, as oxrun reports it: an abort never looks like success (256 and
/// -256 exited with 0).
#[test]
fn an_abort_without_a_launcher_never_exits_with_success() {
    common::build();
    for (code, status) in [("7", 7), ("256", 1), ("-256", 1), ("259", 3), ("0", 1)] {
        let out = std::process::Command::new(common::bin_dir().join("fail"))
            .args(["abort", "0", code])
            .env_remove("PMI_FD")
            .output()
            .expect("fail runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "abort({code}): {err}");
        assert!(
            err.contains(&format!("called abort with code {code}")),
            "{err}"
        );
    }
}

/// Ranks of one node that set `OXMPI_TRANSPORT` or `OXMPI_SHM_RING_KB` apart fail
/// during init, naming the variable, whichever rank differs (the node's first, which
/// makes the shared memory, or another): a rank talking TCP left the others waiting
/// for ever for it to join the node's shared memory, and a rank with other rings
/// waited for ever for room for a frame that could never fit the ring it wrote into.
#[test]
fn ranks_of_a_node_that_set_shared_memory_apart_fail_at_once() {
    for (var, value, victim) in [
        ("OXMPI_SHM_RING_KB", "4", "0"),
        ("OXMPI_SHM_RING_KB", "4", "2"),
        ("OXMPI_TRANSPORT", "tcp", "0"),
        ("OXMPI_TRANSPORT", "tcp", "1"),
    ] {
        let (code, err) = run_failing(3, &["envapart", victim, var, value]);
        let what = format!("{var}={value} on rank {victim}: {err}");
        assert_eq!(code, Some(1), "{what}");
        assert!(err.contains(var) && err.contains("alike"), "{what}");
    }
}

#[test]
fn a_missing_program_is_a_clear_error() {
    common::build();
    let out = std::process::Command::new(common::bin_dir().join("oxrun"))
        .args(["-n", "2", "/nonexistent/oxmpi-program"])
        .output()
        .expect("oxrun");
    assert_eq!(out.status.code(), Some(127));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/oxmpi-program"), "{err}");
}

#[test]
fn oxrun_killed_during_start_up_leaves_nothing_in_dev_shm() {
    use std::time::{Duration, Instant};
    let dir = tempdir();
    let mut oxrun = Job::new(2, "fail")
        .args(["lateinit", "1"])
        .env("OXMPI_TEST_PIDDIR", dir.to_str().unwrap())
        .spawn();
    // Rank 1 sleeps before init; rank 0 waits in init with the node's segment made.
    let until = Instant::now() + Duration::from_secs(120);
    let (pids, job) = loop {
        let pids = pids_in(&dir);
        if let [(_, job), _] = &pids[..]
            && !segments_of(job).is_empty()
        {
            let job = job.clone();
            break (pids, job);
        }
        assert!(Instant::now() < until, "the job never made its segment");
        std::thread::sleep(Duration::from_millis(10));
    };
    oxrun.kill().expect("SIGKILL to oxrun");
    oxrun.wait().expect("oxrun reaped");
    // The ranks die with oxrun (their parent-death signal); oxrun's guard then
    // removes the segment.
    let until = Instant::now() + Duration::from_secs(60);
    while (pids.iter().any(|&(pid, _)| running(pid)) || !segments_of(&job).is_empty())
        && Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    for (pid, _) in &pids {
        assert!(!running(*pid), "rank process {pid} outlived oxrun");
    }
    let left = segments_of(&job);
    assert!(left.is_empty(), "oxrun killed left {left:?} in /dev/shm");
    std::fs::remove_dir_all(&dir).ok();
}

/// More ranks than the open-file limit allows is a clear error before any rank
/// starts (it was "Too many open files" for the first rank beyond it).
#[test]
fn too_low_an_open_file_limit_is_a_clear_error() {
    let oxrun = common::bin_dir().join("oxrun");
    let hello = common::program("examples/hello");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 40 && exec {} -n 12 {}",
            oxrun.display(),
            hello.display()
        ))
        .output()
        .expect("sh");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("ulimit -n") && err.contains("12 ranks need"),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "no rank ran"
    );
}

/// A program a rank starts does not inherit the rank's connection to the launcher.
#[test]
fn a_rank_s_child_does_not_speak_for_it() {
    for n in [1, 3] {
        let out = Job::new(n, "spawn_child").success();
        assert!(out.contains(&format!("spawn ok on {n} ranks")), "{out}");
    }
}

/// What a rank started (the program behind a wrapper script) does not outlive oxrun
/// killed with SIGKILL: its guard ends the ranks' process groups.
#[test]
fn oxrun_killed_takes_what_its_ranks_started_with_it() {
    use std::time::{Duration, Instant};
    let dir = tempdir();
    let script = format!("sleep 300 & echo $! > {}/$$; wait", dir.display());
    let mut oxrun = std::process::Command::new(common::bin_dir().join("oxrun"))
        .args(["-n", "2", "sh", "-c", &script])
        .spawn()
        .expect("oxrun");
    let until = Instant::now() + Duration::from_secs(60);
    let children: Vec<i32> = loop {
        let pids: Vec<i32> = std::fs::read_dir(&dir)
            .expect("pid dir")
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        if pids.len() == 2 {
            break pids;
        }
        assert!(
            Instant::now() < until,
            "the ranks never started their children"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    oxrun.kill().expect("SIGKILL to oxrun");
    oxrun.wait().expect("oxrun reaped");
    let until = Instant::now() + Duration::from_secs(60);
    while children.iter().any(|&pid| running(pid)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    for pid in &children {
        assert!(
            !running(*pid),
            "process {pid} a rank started outlived oxrun"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_dev_shm_too_small_for_the_segment_is_a_clear_error() {
    // A private /dev/shm of 1 MiB, in a mount namespace: 2 ranks need 5.5 MiB.
    let private = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /dev/shm"])
        .status();
    if !private.is_ok_and(|s| s.success()) {
        eprintln!("not run: no mount namespace with its own /dev/shm here");
        return;
    }
    common::build();
    let script = "mount -t tmpfs -o size=1m tmpfs /dev/shm && exec \"$0\" \"$@\"";
    let out = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", script])
        .arg(common::bin_dir().join("oxrun"))
        .args(["--timeout", "60", "-n", "2"])
        .arg(common::program("examples/hello"))
        .output()
        .expect("unshare");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("rank 0 ")
            && err.contains("reserving")
            && err.contains("/dev/shm")
            && err.contains("No space left on device"),
        "{err}"
    );
}

#[test]
fn a_rank_killed_while_the_others_set_up_shared_memory_leaves_nothing() {
    for (n, victim) in [(2, "1"), (4, "0"), (4, "3")] {
        let (code, err) = run_failing(n, &["killearly", victim]);
        assert_eq!(code, Some(137), "{err}");
        assert!(
            err.contains(&format!("rank {victim} ")) && err.contains("signal 9"),
            "{err}"
        );
    }
}

#[test]
fn a_rank_killed_at_any_point_of_init_ends_the_job_and_leaves_nothing() {
    // The kill lands somewhere in init (the launcher's key exchange, segments being
    // created, mapped, unlinked, rings touched) or just after it, wherever a delay
    // takes it on this machine; each outcome must be the same.
    for (n, victim, delay_us, transport) in [
        (2, "1", "0", "auto"),
        (3, "0", "300", "auto"),
        (4, "2", "1000", "auto"),
        (4, "3", "2000", "auto"),
        (5, "1", "4000", "auto"),
        (2, "0", "8000", "auto"),
        (3, "2", "500", "tcp"),
        (3, "1", "2000", "tcp"),
    ] {
        let (code, err) = run_failing_with(n, &["killinit", victim, delay_us], transport);
        let what = format!("{transport}, delay {delay_us} us");
        assert_eq!(code, Some(137), "{what}: {err}");
        assert!(
            err.contains(&format!("rank {victim} ")) && err.contains("signal 9"),
            "{what}: {err}"
        );
    }
}

#[test]
fn a_panic_ends_the_job_while_others_wait_for_the_panicking_rank() {
    for (n, victim) in [(2, "1"), (5, "0")] {
        let (code, err) = run_failing(n, &["panic", victim]);
        assert_eq!(code, Some(101), "{err}");
        assert!(
            err.contains(&format!("rank {victim} panicked")) && err.contains("deliberate panic"),
            "{err}"
        );
        // oxrun does not take oxmpi's abort on the panic for the program's.
        assert!(
            err.contains(&format!(
                "oxrun: rank {victim} failed with code 101 (oxmpi's message above)"
            )) && !err.contains("called abort"),
            "{err}"
        );
    }
}

/// A rank that finalizes early (or whose `main` returns an error) while others wait
/// for it: they fail at once naming it, instead of waiting for the timeout.
#[test]
fn waiting_for_a_rank_that_finalized_fails_instead_of_hanging() {
    let cases = [
        (2, "finalize", "1", "rank"),
        (2, "finalize", "0", "any"),
        (3, "finalize", "1", "anysub"),
        (4, "return", "2", "anysub"),
        (3, "finalize", "2", "probe"),
        (5, "finalize", "3", "barrier"),
        (4, "finalize", "0", "allreduce"),
        (3, "finalize", "1", "ssend"),
        (3, "finalize", "1", "bigsend"),
        (3, "return", "1", "rank"),
        (4, "return", "2", "bystanders"),
        (4, "return", "2", "allreduce"),
        (2, "finalize", "1", "testloop"),
        // Waited for together with a request of a live rank that waits for this one.
        (3, "finalize", "1", "sendrecv_to"),
        (3, "finalize", "2", "sendrecv_from"),
        (3, "return", "2", "sendrecv_from"),
        (3, "finalize", "2", "waitall_from"),
        // Over TCP the waiters learn of these from the launcher: the victim has no
        // connection to say goodbye on.
        (2, "quiet", "1", "rank"),
        (2, "quiet", "0", "any"),
        (3, "quiet", "2", "probe"),
        (2, "quiet", "1", "testloop"),
        (3, "quiet", "1", "ssend"),
        (3, "quiet", "1", "bigsend"),
        (4, "quiet", "3", "allreduce"),
    ];
    for transport in ["auto", "tcp"] {
        for (n, how, victim, wait) in cases {
            let (code, err) = run_failing_with(n, &[how, victim, wait], transport);
            let what = format!("{how} {victim} {wait} on {n} ranks over {transport}: {err}");
            assert_eq!(code, Some(1), "{what}");
            // A receive from any source on a communicator of two names the other rank.
            assert!(
                err.contains(&format!("rank {victim} has finalized")),
                "{what}"
            );
            if matches!(wait, "barrier" | "allreduce") {
                // Said of the collective, also where it goes as messages (TCP).
                assert!(err.contains(": a collective "), "{what}");
            }
            let blamed = err.contains(&format!("oxrun: rank {victim} (pid"));
            if how == "return" {
                // The victim's error is the cause: oxrun names the victim, whose own
                // finalize, ended by the failure it caused, adds nothing.
                assert!(
                    blamed && err.contains("out of range") && !err.contains("finalize failed"),
                    "{what}"
                );
            }
            if how == "finalize" {
                // The victim finalized itself: its finalize fails because the job did,
                // and oxrun names the rank that found it gone.
                assert!(!blamed, "{what}");
            }
        }
    }
}

/// A rank that dies while the others, in return-errors mode and ignoring SIGTERM, wait
/// for it: each gets `PeerLost` instead of waiting until the launcher kills it, also
/// over shared memory and over TCP without a connection to the dead rank (a rank
/// whose wait goes idle asks the launcher, which names a rank that ended without
/// finalize); and the launcher names the rank that died, not a survivor that exited
/// right after.
#[test]
fn ranks_waiting_for_a_dead_rank_get_peer_lost_in_return_mode() {
    let waits = [
        "rank",
        "any",
        "probe",
        "barrier",
        "allreduce",
        "alltoall",
        "bigsend",
        "testloop",
        "dup",
        "split",
        "server",
    ];
    // How the victim ends, the status and cause oxrun reports, and how the survivors
    // give up (exit 1, or abort 1: the victim is named all the same).
    let ends = [
        ("kill", 137, "killed by signal 9", "exit"),
        ("exit", 1, "exited without calling finalize", "exit"),
        ("kill", 137, "killed by signal 9", "abort"),
    ];
    for transport in ["auto", "tcp"] {
        for (wait, (end, code, cause, give_up)) in waits.into_iter().zip(ends.iter().cycle()) {
            // The grace only bounds a failure of this test: the survivors give up as
            // soon as they are told.
            let mut job = Job::new(3, "fail").env("OXRUN_KILL_GRACE_MS", "60000");
            if transport == "tcp" {
                // The mode from the environment (through the API on shared memory).
                job = job.env("OXMPI_ERRORS", "return");
            }
            let args = ["lost", "1", wait, end, give_up];
            let out = run_failing_job(job, 3, &args, transport);
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            let what = format!("{wait} ({end}, {give_up}) over {transport}: {stdout}{stderr}");
            assert_eq!(out.status.code(), Some(*code), "{what}");
            assert!(
                stderr.contains("oxrun: rank 1 ") && stderr.contains(cause),
                "{what}"
            );
            for survivor in [0, 2] {
                assert!(
                    stdout.contains(&format!("rank {survivor}: lost rank ")),
                    "{what}"
                );
            }
            // The first to learn of it can only have lost the dead rank.
            assert!(stdout.contains("lost rank 1"), "{what}");
        }
    }
}

/// A send whose wait fails in return-errors mode (another rank died) gives its buffer
/// back to the program, which may write there at once: a receiver that reads it only
/// afterwards (single copy) must fail, not take the program's new bytes as the
/// message. Read alone, and with the copy split with the sender.
#[test]
fn a_buffer_given_back_after_a_failure_is_not_read_as_the_message() {
    for split in ["0", "65536"] {
        let job = Job::new(3, "fail")
            .env("OXRUN_KILL_GRACE_MS", "60000")
            .env("OXMPI_SHM_SINGLE_COPY", "1")
            .env("OXMPI_SHM_SPLIT", split);
        let out = run_failing_job(job, 3, &["withdrawn", "2"], "auto");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let what = format!(
            "split {split}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(137), "{what}");
        assert!(
            stdout.contains("rank 0: the send gave Err(rank 0: lost peer rank 2: "),
            "{what}"
        );
        if stdout.contains("rank 1: no single copy here") {
            println!("not run: this kernel forbids single copy");
            return;
        }
        assert!(
            stdout.contains("rank 1: lost rank 0: it failed and gave its program back"),
            "{what}"
        );
    }
}

/// A panic that unwinds out of an oxmpi call ends the job even where the program
/// catches it: the call's buffers may still be in use.
#[test]
fn a_caught_panic_inside_an_oxmpi_call_ends_the_job() {
    let (code, err) = run_failing(2, &["catchop", "1"]);
    assert_eq!(code, Some(101), "{err}");
    assert!(
        err.contains("rank 1 panicked inside an oxmpi call"),
        "{err}"
    );
}

#[test]
fn a_panic_with_operations_in_flight_ends_the_job() {
    let (code, err) = run_failing(3, &["panicscope", "1"]);
    assert_eq!(code, Some(101), "{err}");
    assert!(err.contains("rank 1") && err.contains("in flight"), "{err}");
}

/// Ranks that call different collectives as the same one, as messages (each would
/// wait for messages the other never sends), end the job with a report naming both
/// collectives instead of waiting until the launcher's timeout: blocking and
/// nonblocking, over shared memory (counts too long for the node's area on 2 ranks;
/// from 3 ranks a bcast meets in the area, and its root returns and waits elsewhere)
/// and over TCP (short ones, from 3 ranks, where every rank waits to receive; on 8
/// ranks a bcast's reader beside ranks in a barrier that sends it nothing, which the
/// launcher tells apart from what they said they wait in). The report of the rank
/// that found it comes before oxrun's line about its abort.
#[test]
fn ranks_in_different_collectives_end_the_job() {
    let cases = [
        (2, "auto", "bcast reduce 100000"),
        (2, "auto", "reduce bcast 1000000"),
        (2, "auto", "allreduce bcast 100000 nonblocking"),
        (3, "tcp", "barrier allreduce 4"),
        (4, "tcp", "allreduce alltoall 3"),
        (3, "tcp", "bcast allreduce 1 nonblocking"),
        (8, "tcp", "bcast barrier 4 last"),
        (8, "tcp", "bcast barrier 4 nonblocking last"),
        (3, "auto", "bcast reduce 100000"),
    ];
    for (n, transport, case) in cases {
        let args: Vec<&str> = ["other"].into_iter().chain(case.split(' ')).collect();
        let (first, second) = (args[1], args[2]);
        let (code, err) = run_failing_with(n, &args, transport);
        assert!(
            code.is_some_and(|c| c != 0),
            "{n} ranks, {case}: {code:?} {err}"
        );
        assert!(
            err.contains(&format!("calls {first}")) && err.contains(&format!("calls {second}")),
            "{n} ranks, {case}: {err}"
        );
        assert!(
            err.contains("same collectives") && !err.contains("timed out"),
            "{n} ranks, {case}: {err}"
        );
        // The rank's reason comes before oxrun's line about its abort.
        let abort = err
            .find("(oxmpi's message above)")
            .or_else(|| err.find("called abort"));
        let why = err.find("oxmpi: rank");
        assert!(
            abort.is_none_or(|a| why.is_some_and(|w| w < a)),
            "{n} ranks, {case}: {err}"
        );
    }
}

/// A job that times out while some ranks wait in a collective for one that never
/// comes: oxrun's report names those that said they wait (with their questions about
/// silent peers), so the rank that did not stands out; and one whose program ended
/// while the others wait for each other: named as in finalize as its program ends.
#[test]
fn a_timeout_names_the_ranks_waiting_in_a_collective() {
    // Rank 2 never joins the others' collective; rank 1's `main` returns an error,
    // and it waits in finalize while rank 2 waits for a message from any source and
    // rank 0 sleeps (its error printed after the report).
    let cases = [
        (
            4,
            ["stuck", "2", ""],
            "0-3 (of them, 0,1,3 last said they wait in a collective)",
        ),
        // Rank 0 sleeps outside oxmpi meanwhile: not a deadlock.
        (
            3,
            ["return", "1", "asleep"],
            "0-2 (of them, in finalize as their programs end: 1)",
        ),
    ];
    for transport in ["auto", "tcp"] {
        for (n, args, report) in cases {
            let out = Job::new(n, "fail")
                .args(args.iter().filter(|a| !a.is_empty()))
                .env("OXMPI_TRANSPORT", transport)
                .timeout(2)
                .output();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let what = format!("{args:?} over {transport}: {stderr}");
            assert_eq!(out.status.code(), Some(124), "{what}");
            assert!(
                stderr.contains(&format!("ranks still running: {report}")),
                "{what}"
            );
            if args[0] == "return" {
                assert!(stderr.contains("out of range"), "{what}");
            }
        }
    }
}

/// A job whose ranks all wait for one another, with nothing on its way to any, ends
/// within seconds (not at `--timeout`, nor never without one) with exit status 1 and
/// a report naming what each rank waits in (the ranks that wait alike together) and
/// the ranks in finalize as their programs end, whose errors still print. A rank that waited long
/// enough to say so, was released, and then sleeps outside oxmpi while the others
/// wait for it is not taken for a deadlock.
#[test]
fn a_deadlocked_job_ends_with_a_report_of_the_waiting_ranks() {
    let one = |r: usize, what: &str| format!("rank {r} waits, pending: {what}");
    // Ranks 0 and 1, each waiting as said.
    let two = |zero: &str, first: &str| format!("{}; {}", one(0, zero), one(1, first));
    let recvs = two(
        "a receive from rank 1 (tag 5)",
        "a receive from rank 0 (tag 5)",
    );
    let sends = two("a send to rank 1 (tag 5)", "a send to rank 0 (tag 5)");
    let probes = two(
        "a probe for a message from rank 1 (tag 5)",
        "a probe for a message from any rank (tag 7)",
    );
    // `recv_vec` probes for the length, but its rank waits to receive.
    let vec_recvs = two(
        "a receive from rank 1 (tag 5)",
        "a receive from any rank (tag 7)",
    );
    // The send left to the end of its scope, by a closure that failed.
    let scope = two(
        "a send to rank 1 (tag 5), at the end of an oxmpi::scope whose closure returned without waiting",
        "a receive from rank 0 (tag 6)",
    );
    // The world's collectives, counted from 0 (every mode starts with a dup).
    let (barrier, alltoallv) = ("barrier #1 on context 1", "alltoallv #1 on context 1");
    let cases = [
        (2, "deadlock recvrecv", recvs.clone()),
        (3, "deadlock recvrecv", format!("{recvs}; {}", one(2, barrier))),
        (2, "deadlock sendsend", sends.clone()),
        (2, "deadlock probeprobe", probes.clone()),
        // The split of the probes' communicator took the world's collective #1.
        (
            3,
            "deadlock probeprobe",
            format!("{probes}; {}", one(2, "barrier #2 on context 1")),
        ),
        (2, "deadlock vecvec", vec_recvs),
        (2, "deadlock scope", scope.clone()),
        (3, "deadlock scope", format!("{scope}; {}", one(2, barrier))),
        (
            4,
            "deadlock sendsend",
            format!("{sends}; ranks 2,3 wait, pending: {barrier}"),
        ),
        (
            2,
            "deadlock alltoallv",
            format!("{}; {}", one(0, alltoallv), one(1, "barrier #2 on context 1")),
        ),
        (
            4,
            "deadlock alltoallv",
            format!(
                "{}; ranks 1-3 wait, pending: barrier #2 on context 1",
                one(0, alltoallv)
            ),
        ),
        (
            3,
            "return 1 any",
            "ranks 0,2 wait, pending: a receive from any rank (tag 999); in finalize as their programs end: 1"
                .to_owned(),
        ),
    ];
    for transport in ["auto", "tcp"] {
        for (n, case, waiting) in &cases {
            let n = *n;
            let args: Vec<&str> = case.split(' ').collect();
            let start = std::time::Instant::now();
            // The timeout only keeps a job that is not ended as deadlocked from hanging.
            let out = run_failing_job(Job::new(n, "fail").timeout(60), n, &args, transport);
            let (code, err) = (out.status.code(), String::from_utf8_lossy(&out.stderr));
            let what = format!("{case} on {n} ranks over {transport}: {err}");
            assert_eq!(code, Some(1), "{what}");
            let report =
                "oxrun: job deadlocked: for 1 s no rank moved and nothing was on its way to any: ";
            assert!(err.contains(&format!("{report}{waiting}\n")), "{what}");
            if args[0] == "return" {
                // The rank whose `main` returned, released from its finalize, prints why.
                assert!(err.contains("out of range"), "{what}");
            }
            assert!(start.elapsed().as_secs() < 20, "{what}");
        }
        let (code, err) = run_failing_with(3, &["deadlock", "asleep"], transport);
        assert_eq!(code, Some(0), "asleep over {transport}: {err}");
    }
}

/// Ranks whose counts put some of them in the node's shared-memory area and others on
/// messages for the same collective (each side of a selection limit) end the job with
/// a report of the disagreement instead of waiting for each other forever. An
/// allreduce, and from three ranks a bcast, meets in the area at any count (in pieces
/// beyond a large buffer), so those cases disagree inside it: one rank's whole vector
/// against pieces. There only the readers of a bcast learn of it, and return the error from
/// `main`, which prints it after finalizing, while the root (which returned) fails
/// waiting for them: oxrun must let them finish finalizing rather than kill them with
/// the job.
#[test]
fn ranks_split_between_shared_memory_and_messages_end_the_job() {
    let cases = [
        (2, "allreduce"),
        (2, "bcast"),
        (2, "reduce"),
        (2, "gather"),
        (2, "scatter"),
        (2, "allgather"),
        (2, "alltoall"),
        (3, "reduce"),
        (3, "gather"),
        (4, "scatter"),
        (2, "bcast reversed"),
        (2, "allreduce reversed"),
        (3, "gather reversed"),
        (3, "scatter reversed"),
        (2, "gather reversed"),
        (4, "bcast"),
        (3, "allreduce reversed"),
    ];
    for (n, case) in cases {
        let args: Vec<&str> = ["split"].into_iter().chain(case.split(' ')).collect();
        let op = args[1];
        let (code, err) = run_failing(n, &args);
        assert!(
            code.is_some_and(|c| c != 0),
            "{n} ranks, {case}: {code:?} {err}"
        );
        assert!(
            err.contains(op) && err.contains("disagree") && !err.contains("timed out"),
            "{n} ranks, {case}: {err}"
        );
    }
}
