//! Shared by the integration tests: builds `oxrun` and the test programs once, and
//! runs jobs through `oxrun` with a hang guard.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

/// Rank counts the multi-process tests run at.
pub const RANK_COUNTS: [usize; 6] = [1, 2, 3, 4, 7, 16];

/// Seconds after which oxrun ends a job that hangs (a guard, never a measurement).
pub const HANG_GUARD_SECS: u32 = 240;

/// Directory holding this profile's binaries (`target/debug` or `target/release`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .to_path_buf()
}

/// Builds oxrun, the test programs and the examples in this test's profile, once.
pub fn build() {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "-q",
            "-p",
            "oxrun",
            "-p",
            "oxmpi-testprogs",
            "-p",
            "oxmpi",
            "--bins",
            "--examples",
        ]);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
        let status = cmd.status().expect("running cargo build");
        assert!(status.success(), "building the test programs failed");
    });
}

/// Path of a test program (from `tests/progs`) or, with `examples/` prefix, an example.
pub fn program(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// A job to run through oxrun.
pub struct Job {
    cmd: Command,
    ranks: usize,
}

/// Jobs of this many ranks or more run one at a time (the test harness runs tests in
/// parallel, and a 2-core machine has room for one big job).
const BIG_JOB: usize = 5;

fn big_job_slot() -> MutexGuard<'static, ()> {
    static SLOT: Mutex<()> = Mutex::new(());
    SLOT.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Job {
    /// `oxrun -n N PROGRAM`, with a timeout guard.
    pub fn new(n: usize, prog: &str) -> Job {
        build();
        let mut cmd = Command::new(bin_dir().join("oxrun"));
        cmd.arg("--timeout").arg(HANG_GUARD_SECS.to_string());
        cmd.arg("-n").arg(n.to_string()).arg(program(prog));
        Job { cmd, ranks: n }
    }

    /// Adds program arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(mut self, args: I) -> Job {
        self.cmd.args(args);
        self
    }

    /// Sets an environment variable for oxrun (and so every rank).
    pub fn env(mut self, key: &str, value: &str) -> Job {
        self.cmd.env(key, value);
        self
    }

    /// Runs the job to its end.
    pub fn output(mut self) -> Output {
        let _slot = (self.ranks >= BIG_JOB).then(big_job_slot);
        self.cmd.output().expect("starting oxrun")
    }

    /// Runs the job and asserts it succeeded; returns its stdout.
    pub fn success(self) -> String {
        let desc = format!("{:?}", self.cmd);
        let out = self.output();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{desc} failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        );
        stdout
    }
}

/// Values of `OXMPI_TRANSPORT` the point-to-point suites run under.
pub const TRANSPORTS: [&str; 2] = ["auto", "tcp"];
