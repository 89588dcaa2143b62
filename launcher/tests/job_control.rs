//! Job control on a terminal: oxrun as a shell's job, stopped with Ctrl-Z and sent on
//! in the background with `bg`, keeps running (its stdin thread must not stop it by
//! reading the terminal from there), and passes on input again after `fg`.
//!
//! The terminal is a pseudo-terminal whose session is led by `bash` with job control
//! on (`set -m`), as in an interactive shell; the test types Ctrl-Z on its master side.

mod common;

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// A new pseudo-terminal: its master side and the path of its other side; `None`
/// where there is none to have (no /dev/ptmx).
fn open_pty() -> Option<(File, String)> {
    // SAFETY: posix_openpt takes plain flags and returns a new descriptor or -1.
    let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        eprintln!("not run: no pseudo-terminal here ({e})");
        return None;
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let master = unsafe { File::from_raw_fd(fd) };
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: grantpt and unlockpt take the master's descriptor; ptsname_r writes at
    // most `name.len()` bytes, NUL included, into `name`.
    unsafe {
        assert_eq!(libc::grantpt(fd), 0);
        assert_eq!(libc::unlockpt(fd), 0);
        assert_eq!(libc::ptsname_r(fd, name.as_mut_ptr(), name.len()), 0);
    }
    // SAFETY: ptsname_r succeeded, so `name` holds a NUL-terminated string.
    let slave = unsafe { CStr::from_ptr(name.as_ptr()) };
    Some((master, slave.to_str().unwrap().to_owned()))
}

/// Starts `bash -c script` as the leader of a new session whose controlling terminal
/// is `tty`, with it as stdin, stdout and stderr.
fn bash_on_terminal(tty: &str, script: &str) -> Child {
    let open = || OpenOptions::new().read(true).write(true).open(tty).unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .env("OXRUN", env!("CARGO_BIN_EXE_oxrun"))
        .env("OXRUN_KILL_GRACE_MS", "500")
        .stdin(Stdio::from(open()))
        .stdout(Stdio::from(open()))
        .stderr(Stdio::from(open()));
    // SAFETY: setsid and ioctl are async-signal-safe and take plain integers.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().expect("start bash")
}

/// Waits, under the hang guard, until `done` holds; `what` names it in the failure.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < HANG_GUARD, "never happened: {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// The whole contents of `path`, or "" while it does not exist.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Kills what is left should the test fail half-way: oxrun (its ranks die with it)
/// and the shell.
struct Cleanup {
    bash: Child,
    oxrun: Option<i32>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(pid) = self.oxrun {
            // SAFETY: kill takes plain integers; oxrun is stopped from being reaped
            // (and its pid reused) by the shell, which is still alive here.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.bash.kill();
        let _ = self.bash.wait();
    }
}

#[test]
fn a_job_sent_to_the_background_keeps_running_and_ends_on_sigterm() {
    let Some((mut master, tty)) = open_pty() else {
        return;
    };
    let dir = scratch("job-control");
    let d = dir.display();
    // The rank says "before" until the test makes `go`, then "after", through oxrun's
    // output: only a running oxrun forwards them. It also passes on a line of input.
    let rank = format!(
        "echo $PPID > {d}/oxrun.tmp && mv {d}/oxrun.tmp {d}/oxrun.pid; \
         echo $$ > {d}/rank.tmp && mv {d}/rank.tmp {d}/rank.pid; \
         while :; do if [ -e {d}/go ]; then echo after; else echo before; fi; sleep 0.05; \
         done & read line; echo \"got $line\"; wait"
    );
    let script = format!(
        r#"set -m
"$OXRUN" -n 1 sh -c '{rank}' > {d}/out
touch {d}/stopped
bg %1
touch {d}/in-background
until [ -e {d}/fg ]; do sleep 0.05; done
fg %1
echo $? > {d}/status.tmp && mv {d}/status.tmp {d}/status
"#
    );
    let mut job = Cleanup {
        bash: bash_on_terminal(&tty, &script),
        oxrun: None,
    };
    let (oxrun_pid, rank_pid) = (dir.join("oxrun.pid"), dir.join("rank.pid"));
    wait_until("the rank started", || read(&oxrun_pid).ends_with('\n'));
    job.oxrun = Some(read(&oxrun_pid).trim().parse().unwrap());
    wait_until("the rank started", || read(&rank_pid).ends_with('\n'));
    let rank: i32 = read(&rank_pid).trim().parse().unwrap();
    let out = dir.join("out");
    wait_until("the rank's output", || read(&out).contains("before\n"));

    // Ctrl-Z, typed on the terminal: the shell sees its job stop, then sends it on.
    master.write_all(b"\x1a").unwrap();
    wait_until("the job stopped", || dir.join("stopped").exists());
    wait_until("bg", || dir.join("in-background").exists());

    // oxrun runs in the background: what the rank says now still comes out.
    std::fs::write(dir.join("go"), "").unwrap();
    wait_until("output after bg", || {
        read(&out).matches("after\n").count() >= 3
    });

    // Back in the foreground, it passes on what is typed (queued until then).
    std::fs::write(dir.join("fg"), "").unwrap();
    master.write_all(b"typed\n").unwrap();
    wait_until("input after fg", || read(&out).contains("got typed\n"));

    // And it still acts on signals: SIGTERM ends the job.
    // SAFETY: kill takes plain integers; oxrun is the shell's job, not yet reaped.
    assert_eq!(unsafe { libc::kill(job.oxrun.unwrap(), libc::SIGTERM) }, 0);
    let status = dir.join("status");
    wait_until("the job ended", || read(&status).ends_with('\n'));
    assert_eq!(read(&status).trim(), "143", "output: {}", read(&out));
    job.oxrun = None;
    assert!(!alive(rank, &d.to_string()), "rank {rank} outlived the job");
    drop(job);
    drop(master);
    std::fs::remove_dir_all(&dir).unwrap();
}
