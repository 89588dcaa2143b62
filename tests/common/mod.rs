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
    launcher_args: Vec<String>,
    program: PathBuf,
    args: Vec<std::ffi::OsString>,
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
        Job {
            cmd: Command::new(bin_dir().join("oxrun")),
            ranks: n,
            launcher_args: vec![
                "--timeout".into(),
                HANG_GUARD_SECS.to_string(),
                "-n".into(),
                n.to_string(),
            ],
            program: program(prog),
            args: Vec::new(),
        }
    }

    /// Ends the job after `secs` seconds instead of the hang guard's (for a job that
    /// takes a fraction of a second unless it hangs, so a hang fails the test soon).
    pub fn timeout(mut self, secs: u32) -> Job {
        self.launcher_args[1] = secs.to_string();
        self
    }

    /// Runs the job in `variant` (its environment and launcher flags).
    pub fn variant(mut self, variant: &Variant) -> Job {
        for (k, v) in variant.env {
            self.cmd.env(k, v);
        }
        self.launcher_args
            .extend(variant.launcher.iter().map(|a| a.to_string()));
        self
    }

    /// Adds oxrun flags.
    pub fn launcher(mut self, flags: &[&str]) -> Job {
        self.launcher_args
            .extend(flags.iter().map(|f| f.to_string()));
        self
    }

    /// Adds program arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(mut self, args: I) -> Job {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for oxrun (and so every rank).
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Job {
        self.cmd.env(key, value);
        self
    }

    /// Runs the job to its end.
    pub fn output(mut self) -> Output {
        self.cmd
            .args(&self.launcher_args)
            .arg(&self.program)
            .args(&self.args);
        let _slot = (self.ranks >= BIG_JOB).then(big_job_slot);
        self.cmd.output().expect("starting oxrun")
    }

    /// Starts the job and returns oxrun's process (output discarded).
    pub fn spawn(self) -> std::process::Child {
        self.spawn_with(std::process::Stdio::null)
    }

    /// Starts the job with oxrun's stdout and stderr piped to the caller.
    pub fn spawn_piped(self) -> std::process::Child {
        self.spawn_with(std::process::Stdio::piped)
    }

    fn spawn_with(mut self, out: fn() -> std::process::Stdio) -> std::process::Child {
        self.cmd
            .args(&self.launcher_args)
            .arg(&self.program)
            .args(&self.args)
            .stdout(out())
            .stderr(out())
            .spawn()
            .expect("starting oxrun")
    }

    /// Runs the job and asserts it succeeded; returns its stdout.
    pub fn success(self) -> String {
        let desc = format!(
            "oxrun {:?} {:?} {:?}",
            self.launcher_args, self.program, self.args
        );
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

/// A way of running a job: environment and launcher flags.
pub struct Variant {
    pub name: &'static str,
    pub env: &'static [(&'static str, &'static str)],
    pub launcher: &'static [&'static str],
}

/// The transport configurations the point-to-point suites run under.
pub const VARIANTS: [Variant; 7] = [
    Variant {
        name: "shared memory",
        env: &[],
        launcher: &[],
    },
    Variant {
        name: "tcp",
        env: &[("OXMPI_TRANSPORT", "tcp")],
        launcher: &[],
    },
    Variant {
        name: "shared memory without single copy",
        env: &[("OXMPI_SHM_SINGLE_COPY", "0")],
        launcher: &[],
    },
    Variant {
        name: "split copies",
        // Every large message goes by single copy (none streamed where the receiver
        // would find that faster) and is split, oversubscribed or not.
        env: &[("OXMPI_SHM_SPLIT", "8192"), ("OXMPI_SHM_SINGLE_COPY", "1")],
        launcher: &[],
    },
    Variant {
        name: "publishers fence",
        // As on a node without `membarrier`: wakers fence (collectives) or leave the
        // window a sleeper's first sleep covers (point to point).
        env: &[("OXMPI_SHM_MEMBARRIER", "0")],
        launcher: &[],
    },
    Variant {
        name: "tiny rings",
        env: &[
            ("OXMPI_SHM_RING_KB", "4"),
            ("OXMPI_EAGER_LIMIT", "1024"),
            ("OXMPI_SHM_CHUNK", "1000"),
            ("OXMPI_SHM_SINGLE_COPY", "0"),
        ],
        launcher: &[],
    },
    Variant {
        name: "two simulated nodes",
        env: &[],
        launcher: &["--simulate-nodes", "2"],
    },
];

/// The numbers a test program printed on the line of `out` that starts with `prefix`,
/// separated by `sep`; fails the test, showing `out`, where there is no such line.
pub fn printed_numbers(out: &str, prefix: &str, sep: &str) -> Vec<u64> {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} printed: {out}"))
        .split(sep)
        .map(|n| n.parse().unwrap())
        .collect()
}

/// The sizes of the rows of the OSU table in `out` (oxbench's), in order.
pub fn table_sizes(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}
