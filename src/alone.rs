//! Running one unit test in a process of its own, for tests that change what the
//! whole process shares (a signal's action, the descriptor limit) or that would abort
//! it on failure: the test is marked `#[ignore]` and run by another through here.

use std::process::{Child, Command, Stdio};

/// The test binary run for the ignored test `test` (its full path) alone; set up
/// anything the child needs before [`passes`].
pub(crate) fn command(test: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary"));
    cmd.args(["--ignored", "--exact", test]);
    cmd
}

/// Runs `cmd` and asserts that its one test passed. Returns what it wrote on
/// standard error.
pub(crate) fn passes(mut cmd: Command) -> String {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test binary runs");
    passed(child)
}

/// Waits for `child`, a [`command`] spawned with its output piped, and asserts that
/// its one test passed. Returns what it wrote on standard error.
pub(crate) fn passed(child: Child) -> String {
    let out = child.wait_with_output().expect("the test binary runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{:?}: {text}{errors}",
        out.status
    );
    errors
}
