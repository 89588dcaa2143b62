//! Shared helpers for oxrun's integration tests: running oxrun with a hang guard, a
//! PMI-1 client written in bash, scratch directories and process checks.
//!
//! Tests never assert on elapsed time; [`HANG_GUARD`] only turns a hang into a failure.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Longest any single oxrun run may take before the test calls it a hang.
pub const HANG_GUARD: Duration = Duration::from_secs(120);

/// What an oxrun run produced.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The exit code (panics when oxrun itself died of a signal).
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("oxrun died: {self:?}"))
    }

    /// stdout lines, sorted (ranks run concurrently).
    pub fn sorted_lines(&self) -> Vec<String> {
        let mut v: Vec<String> = self.stdout.lines().map(str::to_owned).collect();
        v.sort();
        v
    }

    /// stderr lines that oxrun itself wrote.
    pub fn oxrun_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("oxrun:"))
            .collect()
    }
}

/// An oxrun command with the given arguments.
pub fn oxrun(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oxrun"));
    cmd.args(args);
    cmd.env("OXRUN_KILL_GRACE_MS", "500");
    cmd
}

/// Runs `cmd` with `stdin` as input and collects everything.
pub fn run_job_with_input(mut cmd: Command, stdin: &[u8]) -> Run {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start oxrun");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let run = collect(child);
    let _ = writer.join();
    run
}

/// Runs `cmd` with an empty stdin.
pub fn run_job(cmd: Command) -> Run {
    run_job_with_input(cmd, b"")
}

/// Waits for `child` under the hang guard, collecting whatever of its stdout and
/// stderr is still piped to us.
pub fn collect(mut child: Child) -> Run {
    let out = child.stdout.take();
    let err = child.stderr.take();
    let out_t = thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(mut out) = out {
            let _ = out.read_to_end(&mut s);
        }
        s
    });
    let err_t = thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(mut err) = err {
            let _ = err.read_to_end(&mut s);
        }
        s
    });
    let status = wait_guarded(&mut child);
    Run {
        status,
        stdout: String::from_utf8_lossy(&out_t.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap()).into_owned(),
    }
}

/// Waits for `child`, killing it and failing the test after [`HANG_GUARD`].
pub fn wait_guarded(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > HANG_GUARD {
            let _ = child.kill();
            panic!("oxrun hung (killed after {HANG_GUARD:?})");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A bash script for `bash -c` that defines `pmi REQUEST` (sends one line and puts
/// the reply in `$REPLY`) and `pmi_send REQUEST` (no reply expected), then runs `body`.
pub fn pmi_script(body: &str) -> String {
    format!(
        r#"set -e
pmi_send() {{ printf '%s\n' "$1" >&$PMI_FD; }}
pmi() {{ pmi_send "$1"; IFS= read -r REPLY <&$PMI_FD; }}
{body}"#
    )
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oxrun-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The pids written as files `pid.*` in `dir`.
pub fn pids_in(dir: &Path) -> Vec<i32> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().ok()?;
            name.starts_with("pid.").then(|| {
                std::fs::read_to_string(e.path())
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap()
            })
        })
        .collect()
}

/// Whether a process with this pid still exists and runs `marker` in its command line
/// (a reused pid belongs to someone else).
pub fn alive(pid: i32, marker: &str) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            // A zombie has an empty command line and is not running anything.
            cmdline.contains(marker)
        }
        Err(_) => false,
    }
}

/// Waits (under the hang guard) until `dir` holds `n` files.
pub fn wait_for_files(dir: &Path, n: usize) {
    let start = Instant::now();
    while std::fs::read_dir(dir).unwrap().count() < n {
        assert!(
            start.elapsed() < HANG_GUARD,
            "ranks never wrote their files"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// A rank count that oxrun must find oversubscribed: one more than the CPUs of its
/// affinity mask (which it inherits from the test), whose cores or CPUs it counts.
/// Not `available_parallelism`, which a cgroup's CPU quota can make smaller.
pub fn more_ranks_than_cores() -> usize {
    // SAFETY: `set` is a plain bit set the call fills; zeroed, it is a valid empty one.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the size passed is `set`'s own; pid 0 is this thread.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(
        rc,
        0,
        "sched_getaffinity: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `set` was filled by the kernel above.
    let cpus = unsafe { libc::CPU_COUNT(&set) } as usize;
    cpus.max(1) + 1
}
