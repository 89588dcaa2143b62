//! Failures, timeouts and signals: one report line, the right exit status, and no
//! process left behind.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;

/// Ranks other than `failing` write their pid to `dir/pid.R` and sleep; `failing`
/// waits for those files, then runs `then`. A pid file appears whole (written under
/// another name, then renamed): the job may end, and its ranks be killed, as soon as
/// the last one appears.
fn sleepers_and(dir: &std::path::Path, n: usize, failing: usize, then: &str) -> String {
    format!(
        "if [ $PMI_RANK = {failing} ]; then \
           while [ $(ls {d} | grep -c '^pid[.]') -lt {others} ]; do sleep 0.01; done; {then}; \
         else echo $$ > {d}/tmp.$PMI_RANK && mv {d}/tmp.$PMI_RANK {d}/pid.$PMI_RANK; \
           exec sleep 1001; fi",
        d = dir.display(),
        others = n - 1,
    )
}

/// Every process whose pid is in `dir` is gone (or goes soon: a SIGKILLed
/// grandchild may still be on its way out when oxrun returns).
fn assert_all_gone(dir: &std::path::Path) {
    let pids = pids_in(dir);
    assert!(!pids.is_empty());
    let start = std::time::Instant::now();
    for pid in pids {
        while alive(pid, "sleep 1001") {
            assert!(start.elapsed() < HANG_GUARD, "pid {pid} survived the job");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

#[test]
fn a_rank_exiting_3_ends_the_job_with_3() {
    let dir = scratch("exit3");
    let script = sleepers_and(&dir, 4, 2, "exit 3");
    let run = run_job(oxrun(&["-n", "4", "sh", "-c", &script]));
    assert_eq!(run.code(), 3, "{run:?}");
    let lines = run.oxrun_lines();
    assert_eq!(lines.len(), 1, "{run:?}");
    assert!(lines[0].starts_with("oxrun: rank 2 (pid "), "{run:?}");
    assert!(lines[0].ends_with(") exited with code 3"), "{run:?}");
    assert_all_gone(&dir);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_rank_killed_by_sigkill_ends_the_job_with_137() {
    let dir = scratch("kill9");
    let script = sleepers_and(&dir, 3, 1, "kill -9 $$");
    let run = run_job(oxrun(&["-n", "3", "sh", "-c", &script]));
    assert_eq!(run.code(), 137, "{run:?}");
    let lines = run.oxrun_lines();
    assert_eq!(lines.len(), 1, "{run:?}");
    assert!(lines[0].starts_with("oxrun: rank 1 (pid "), "{run:?}");
    assert!(
        lines[0].ends_with(") killed by signal 9 (SIGKILL)"),
        "{run:?}"
    );
    assert_all_gone(&dir);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ranks_ignoring_sigterm_are_killed_after_the_grace() {
    let dir = scratch("ignoreterm");
    let script = format!("trap '' TERM; {}", sleepers_and(&dir, 3, 0, "exit 5"));
    let run = run_job(oxrun(&["-n", "3", "sh", "-c", &script]));
    assert_eq!(run.code(), 5, "{run:?}");
    assert_eq!(run.oxrun_lines().len(), 1, "{run:?}");
    assert_all_gone(&dir);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn timeout_stops_the_job() {
    let dir = scratch("timeout");
    let script = format!(
        "if [ $PMI_RANK = 0 ]; then exit 0; fi; echo $$ > {d}/pid.$PMI_RANK; exec sleep 1001",
        d = dir.display()
    );
    let run = run_job(oxrun(&["--timeout", "1", "-n", "3", "sh", "-c", &script]));
    assert_eq!(run.code(), 124, "{run:?}");
    let lines = run.oxrun_lines();
    assert_eq!(lines.len(), 1, "{run:?}");
    // Rank 0 has normally ended by then; on a very busy machine it may not have.
    let running = lines[0]
        .strip_prefix("oxrun: job timed out after 1 s; ranks still running: ")
        .unwrap_or_else(|| panic!("{run:?}"));
    assert!(running == "1,2" || running == "0-2", "{run:?}");
    assert_all_gone(&dir);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn background_grandchildren_do_not_outlive_the_job() {
    let dir = scratch("grandchild");
    let script = format!(
        "sleep 1001 & echo $! > {d}/pid.$PMI_RANK; echo started",
        d = dir.display()
    );
    let run = run_job(oxrun(&["-n", "2", "sh", "-c", &script]));
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(run.stdout, "started\nstarted\n");
    assert_all_gone(&dir);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn processes_that_leave_their_process_group_do_not_outlive_the_job() {
    let dir = scratch("stray");
    // Each rank starts a process in a session of its own, and a daemon whose parent
    // exits at once, and ends when both are running.
    let script = dir.join("strays.sh");
    std::fs::write(
        &script,
        format!(
            "setsid sh -c 'echo $$ > {d}/pid.a$PMI_RANK; exec sleep 1001' &\n\
             setsid sh -c \"sh -c 'echo \\$\\$ > {d}/pid.b$PMI_RANK; exec sleep 1001' & exit 0\"\n\
             while [ ! -s {d}/pid.a$PMI_RANK ] || [ ! -s {d}/pid.b$PMI_RANK ]; do sleep 0.01; done\n\
             echo started\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let run = run_job(oxrun(&["-n", "2", "sh", script.to_str().unwrap()]));
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(run.stdout, "started\nstarted\n");
    assert_eq!(pids_in(&dir).len(), 4);
    assert_all_gone(&dir);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn processes_that_come_to_oxrun_and_end_are_reaped_during_the_job() {
    // The rank leaves 20 orphans that end at once (they come to oxrun, their
    // subreaper), then waits until oxrun has no zombie child left.
    let script = "for i in $(seq 20); do (sh -c 'exit 0' &); done; \
        for i in $(seq 400); do \
          n=$(cat /proc/[0-9]*/stat 2>/dev/null | awk -v pp=$PPID '$4 == pp && $3 == \"Z\"' | wc -l); \
          [ $n = 0 ] && break; sleep 0.05; done; \
        echo zombies=$n";
    let run = run_job(oxrun(&["-n", "1", "sh", "-c", script]));
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(run.stdout, "zombies=0\n");
}

/// Starts oxrun, waits until every rank printed "ready", sends `signal` to oxrun.
fn signal_after_ready(n: usize, script: &str, signals: &[i32]) -> Run {
    let mut cmd = oxrun(&["--tag-output", "-n", &n.to_string(), "bash", "-c", script]);
    // Only the signals sent here may escalate, never the grace running out.
    cmd.env("OXRUN_KILL_GRACE_MS", "3600000");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut ready = 0;
    while ready < n {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "oxrun ended early: {seen}"
        );
        ready += usize::from(line.ends_with("ready\n"));
        seen.push_str(&line);
    }
    let pid = child.id() as libc::pid_t;
    let mut err_seen = String::new();
    for (i, &sig) in signals.iter().enumerate() {
        // SAFETY: plain kill on our own child.
        unsafe { libc::kill(pid, sig) };
        if i + 1 < signals.len() {
            // Wait for oxrun to acknowledge before sending the next one.
            let mut line = String::new();
            stderr.read_line(&mut line).unwrap();
            err_seen.push_str(&line);
        }
    }
    let status = wait_guarded(&mut child);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    std::io::Read::read_to_string(&mut stderr, &mut err_seen).unwrap();
    Run {
        status,
        stdout: seen + &rest,
        stderr: err_seen,
    }
}

#[test]
fn sigterm_and_sigquit_to_oxrun_reach_every_rank() {
    for (sig, name) in [(libc::SIGTERM, "TERM"), (libc::SIGQUIT, "QUIT")] {
        let script =
            format!("trap 'echo got {name}; exit 0' {name}; echo ready; sleep 1001 & wait");
        let run = signal_after_ready(3, &script, &[sig]);
        assert_eq!(run.code(), 128 + sig, "{run:?}");
        let mut got: Vec<&str> = run
            .stdout
            .lines()
            .filter(|l| l.ends_with(&format!("got {name}")))
            .collect();
        got.sort();
        let want: Vec<String> = (0..3).map(|r| format!("[{r}] got {name}")).collect();
        assert_eq!(got, want, "{run:?}");
        assert!(
            run.stderr.contains(&format!("oxrun: received SIG{name}")),
            "{run:?}"
        );
    }
}

#[test]
fn second_sigint_kills() {
    let script = "trap 'echo got INT' INT; echo ready; while true; do sleep 1001 & wait; done";
    let run = signal_after_ready(2, script, &[libc::SIGINT, libc::SIGINT]);
    assert_eq!(run.code(), 130, "{run:?}");
    assert!(run.stderr.contains("killing all ranks"), "{run:?}");
}

#[test]
fn missing_program_starts_nothing() {
    let run = run_job(oxrun(&["-n", "4", "oxrun-no-such-program"]));
    assert_eq!(run.code(), 127, "{run:?}");
    assert_eq!(
        run.stderr,
        "oxrun: cannot run 'oxrun-no-such-program': not found in PATH\n"
    );
    assert_eq!(run.stdout, "");
    let run = run_job(oxrun(&["-n", "1", "./no/such/file"]));
    assert_eq!(run.code(), 127, "{run:?}");
}

#[test]
fn non_executable_program() {
    let dir = scratch("noexec");
    let file = dir.join("data.txt");
    std::fs::write(&file, "echo hi\n").unwrap();
    let run = run_job(oxrun(&["-n", "2", file.to_str().unwrap()]));
    assert_eq!(run.code(), 126, "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "oxrun: cannot run '{}': permission denied\n",
            file.display()
        )
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A copy of `/bin/true` changed by `patch`, executable, in `dir`.
fn patched_true(dir: &std::path::Path, name: &str, patch: impl FnOnce(&mut Vec<u8>)) -> String {
    use std::os::unix::fs::PermissionsExt;
    let mut bytes = std::fs::read("/bin/true").unwrap();
    patch(&mut bytes);
    let file = dir.join(name);
    std::fs::write(&file, bytes).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    file.to_str().unwrap().to_owned()
}

#[test]
fn a_binary_this_machine_cannot_run_is_refused_before_it_starts() {
    let dir = scratch("foreign");
    // Another machine's program (e_machine of AArch64 here, x86-64 on AArch64): the
    // ranks' execvp would run it with /bin/sh ("Syntax error", exit 2).
    let foreign = patched_true(&dir, "foreign", |b| {
        let other: u16 = if cfg!(target_arch = "aarch64") {
            62
        } else {
            183
        };
        b[18..20].copy_from_slice(&other.to_le_bytes());
    });
    let run = run_job(oxrun(&["-n", "2", &foreign]));
    assert_eq!(run.code(), 126, "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "oxrun: cannot run '{foreign}': a binary this machine does not run (exec format error)\n"
        )
    );
    // A program whose loader is missing: the exec fails as if the program were.
    let loaderless = patched_true(&dir, "loaderless", |b| {
        let (at, len) = ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"]
            .iter()
            .find_map(|l| {
                let at = b.windows(l.len()).position(|w| w == l.as_bytes())?;
                Some((at, l.len()))
            })
            .expect("/bin/true names a loader");
        let mut name = b"/nonexistent/ld.so".to_vec();
        name.resize(len, 0);
        b[at..at + len].copy_from_slice(&name);
    });
    let run = run_job(oxrun(&["-n", "2", &loaderless]));
    assert_eq!(run.code(), 127, "{run:?}");
    assert!(
        run.stderr
            .contains("its interpreter '/nonexistent/ld.so': no such file or directory"),
        "{run:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn programs_without_pmi_may_exit_0() {
    let run = run_job(oxrun(&["-n", "2", "true"]));
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(run.stderr, "");
}

#[test]
fn help_and_version() {
    let run1 = run_job(oxrun(&["--help"]));
    assert_eq!(run1.code(), 0);
    assert!(run1.stdout.contains("--tag-output") && run1.stdout.contains("Exit status"));
    let run2 = run_job(oxrun(&["--version"]));
    assert_eq!(run2.code(), 0);
    assert!(run2.stdout.starts_with("oxrun "));
    let run3 = run_job(oxrun(&["--np", "2"]));
    assert_eq!(run3.code(), 2, "{run3:?}");
}

#[test]
fn ranks_die_with_oxrun() {
    let dir = scratch("pdeathsig");
    let script = format!(
        "echo $$ > {d}/tmp.$PMI_RANK && mv {d}/tmp.$PMI_RANK {d}/pid.$PMI_RANK && exec sleep 1001",
        d = dir.display()
    );
    let mut cmd = oxrun(&["-n", "3", "sh", "-c", &script]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    while pids_in(&dir).len() < 3 {
        assert!(child.try_wait().unwrap().is_none(), "oxrun ended early");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    wait_guarded(&mut child);
    let start = std::time::Instant::now();
    for pid in pids_in(&dir) {
        while alive(pid, "sleep 1001") {
            assert!(start.elapsed() < HANG_GUARD, "rank {pid} outlived oxrun");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn works_when_started_with_sigchld_ignored() {
    use std::os::unix::process::CommandExt;
    let mut cmd = oxrun(&["-n", "2", "sh", "-c", "exit 3"]);
    // SAFETY: signal() is async-signal-safe; it only sets a disposition that exec
    // keeps, as a careless parent of oxrun would.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGCHLD, libc::SIG_IGN);
            Ok(())
        });
    }
    let run = run_job(cmd);
    assert_eq!(run.code(), 3, "{run:?}");
}

/// Started with SIGINT ignored (a shell's background job) or SIGHUP ignored
/// (`nohup`), oxrun ignores that signal as its ranks do, instead of forwarding a
/// signal they ignore and then waiting out the kill grace; the others still work.
#[test]
fn signals_inherited_as_ignored_stay_ignored() {
    use std::os::unix::process::CommandExt;
    for ignored in [libc::SIGINT, libc::SIGHUP] {
        let mut cmd = oxrun(&["-n", "2", "sh", "-c", "echo ready; sleep 1001"]);
        cmd.env("OXRUN_KILL_GRACE_MS", "3600000");
        // SAFETY: signal() is async-signal-safe; the disposition survives exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::signal(ignored, libc::SIG_IGN);
                Ok(())
            });
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        for _ in 0..2 {
            let mut line = String::new();
            assert!(stdout.read_line(&mut line).unwrap() > 0);
        }
        let pid = child.id() as libc::pid_t;
        // SAFETY: plain kill on our own child.
        unsafe { libc::kill(pid, ignored) };
        // SIGTERM, not ignored, still ends the job at once (the ranks do not
        // ignore it either). Had oxrun taken the ignored one, it would have
        // reported that first.
        std::thread::sleep(std::time::Duration::from_millis(200));
        // SAFETY: plain kill on our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = wait_guarded(&mut child);
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{ignored}: {err}");
        assert!(
            err.starts_with("oxrun: received SIGTERM"),
            "{ignored}: {err}"
        );
    }
}

/// The state letter of process `pid` (`T`: stopped), `None` once it is gone.
fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// Waits until every process in `pids` is in (or, with `!stopped`, out of) the stopped
/// state `T`.
fn wait_for_state(pids: &[i32], stopped: bool) {
    let start = std::time::Instant::now();
    while !pids.iter().all(|&p| (state(p) == Some('T')) == stopped) {
        let states: Vec<_> = pids.iter().map(|&p| state(p)).collect();
        assert!(start.elapsed() < HANG_GUARD, "states {states:?}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Ctrl-Z (SIGTSTP to oxrun) stops the ranks as well as oxrun (they are in process
/// groups of their own, which the terminal does not reach), and SIGCONT continues
/// them all, also when oxrun was started with SIGCONT ignored (which still continues
/// oxrun, but keeps it from reading the signal).
#[test]
fn sigtstp_stops_the_ranks_and_sigcont_continues_them() {
    for ignore_sigcont in [false, true] {
        stop_and_continue(ignore_sigcont);
    }
}

fn stop_and_continue(ignore_sigcont: bool) {
    use std::os::unix::process::CommandExt;
    let mut cmd = oxrun(&["-n", "2", "bash", "-c", "echo ready $$; exec sleep 1001"]);
    if ignore_sigcont {
        // SAFETY: signal() is async-signal-safe; the disposition survives exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGCONT, libc::SIG_IGN);
                Ok(())
            });
        }
    }
    let mut child = stopped_for(cmd, std::time::Duration::ZERO);
    // SAFETY: plain kill on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_guarded(&mut child);
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{status:?}");
}

/// Starts `cmd`, a job of 2 ranks that each print "ready PID", then stops it with
/// Ctrl-Z (SIGTSTP to oxrun) once both have, keeps it stopped for `pause` after
/// oxrun and the ranks all are, and continues it (SIGCONT to oxrun) until they all
/// run again.
fn stopped_for(mut cmd: Command, pause: std::time::Duration) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let ranks = pids_after(&mut stdout, "ready ", 2);
    pause_job(child.id() as i32, &ranks, pause);
    child
}

/// Reads lines from `out` until `n` of them said `word` then a process id; returns
/// those ids.
fn pids_after(out: &mut impl BufRead, word: &str, n: usize) -> Vec<i32> {
    let mut pids = Vec::new();
    while pids.len() < n {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "oxrun ended early");
        if let Some(pid) = line.trim().strip_prefix(word) {
            pids.push(pid.parse().unwrap());
        }
    }
    pids
}

/// Stops the job of oxrun `oxrun_pid` with Ctrl-Z (SIGTSTP to oxrun), keeps it stopped
/// for `pause` after oxrun and `ranks` all are, and continues it (SIGCONT to oxrun)
/// until they all run again.
fn pause_job(oxrun_pid: i32, ranks: &[i32], pause: std::time::Duration) {
    let all: Vec<i32> = ranks.iter().copied().chain([oxrun_pid]).collect();
    // SAFETY: plain kill on our own child.
    unsafe { libc::kill(oxrun_pid, libc::SIGTSTP) };
    wait_for_state(&all, true);
    std::thread::sleep(pause);
    // SAFETY: as above.
    unsafe { libc::kill(oxrun_pid, libc::SIGCONT) };
    wait_for_state(&all, false);
}

/// Time the job spends stopped by Ctrl-Z does not count towards `--timeout`: a job
/// stopped for longer than its timeout still finishes once continued.
#[test]
fn time_stopped_does_not_count_towards_the_timeout() {
    let cmd = oxrun(&[
        "-n",
        "2",
        "--timeout",
        "3",
        "bash",
        "-c",
        "trap 'exit 0' USR1; echo ready $$; sleep 1001 & wait",
    ]);
    // Stopped for longer than the whole timeout.
    let mut child = stopped_for(cmd, std::time::Duration::from_secs(4));
    // SAFETY: plain kill on our own child. Passed on; the ranks end with 0.
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
    let status = wait_guarded(&mut child);
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}: {err}");
}

/// Time the job spends stopped by Ctrl-Z does not count towards the kill grace
/// either: ranks that clean up after SIGTERM, stopped meanwhile for longer than the
/// grace (2 s), still finish their cleanup once continued instead of being killed.
#[test]
fn time_stopped_does_not_count_towards_the_kill_grace() {
    let script = "trap 'echo ready $$; sleep 1.5; echo cleaned; exit 0' TERM; \
                  echo up $$; sleep 1001 & wait";
    let mut cmd = oxrun(&["-n", "2", "bash", "-c", script]);
    cmd.env("OXRUN_KILL_GRACE_MS", "2000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    pids_after(&mut stdout, "up ", 2);
    // SAFETY: plain kill on our own child. Forwarded; the grace starts.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    // Stopped while cleaning up, for longer than the whole grace.
    let ranks = pids_after(&mut stdout, "ready ", 2);
    pause_job(child.id() as i32, &ranks, std::time::Duration::from_secs(3));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = wait_guarded(&mut child);
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{status:?}");
    assert_eq!(rest.matches("cleaned").count(), 2, "{rest}");
}

/// Ctrl-Z also stops oxrun while it waits at the end for a slow reader (its ranks
/// have ended), and the output still all comes once it is continued.
#[test]
fn sigtstp_stops_oxrun_waiting_for_its_reader() {
    use std::io::Read;
    let mut cmd = oxrun(&["-n", "1", "bash", "-c", "echo $$; exec seq 1 100000"]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let rank: i32 = line.trim().parse().unwrap();
    // The rank has written everything (less than oxrun holds) and ended (a zombie
    // until oxrun's end): oxrun holds the rest of its output, and waits for this
    // reader.
    let start = std::time::Instant::now();
    while state(rank) != Some('Z') {
        assert!(start.elapsed() < HANG_GUARD, "the rank never ended");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let oxrun_pid = child.id() as i32;
    // SAFETY: plain kill on our own child.
    unsafe { libc::kill(oxrun_pid, libc::SIGTSTP) };
    wait_for_state(&[oxrun_pid], true);
    // SAFETY: as above.
    unsafe { libc::kill(oxrun_pid, libc::SIGCONT) };
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest.lines().count(), 100_000);
    let status = wait_guarded(&mut child);
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// SIGUSR1 and SIGUSR2 are passed on to every rank, without ending the job.
#[test]
fn sigusr1_and_sigusr2_are_forwarded_to_every_rank() {
    for (name, signal) in [("USR1", libc::SIGUSR1), ("USR2", libc::SIGUSR2)] {
        let script =
            format!("trap 'echo got {name}; exit 0' {name}; echo ready; sleep 1001 & wait");
        let run = signal_after_ready(3, &script, &[signal]);
        assert_eq!(run.code(), 0, "{name}: {run:?}");
        let got = run
            .stdout
            .lines()
            .filter(|l| l.ends_with(&format!("got {name}")))
            .count();
        assert_eq!(got, 3, "{name}: {run:?}");
        assert!(!run.stderr.contains("oxrun: received"), "{name}: {run:?}");
    }
}
