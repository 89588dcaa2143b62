//! `oxrun`, the launcher of oxmpi jobs: checks the command line and the program, plans
//! bindings, then hands over to [`job`], whose exit status becomes oxrun's.
//!
//! Invariant: nothing is started until every check that can fail early has passed
//! (bad flags: 2, missing program: 127, non-executable: 126).

#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

mod binding;
mod cli;
mod deadlock;
mod elf;
mod exit_status;
mod failure;
mod job;
mod layout;
mod netns;
mod output;
mod pidfd;
mod pmi_conn;
mod pmi_server;
mod program;
mod rank_env;
mod shm_cleanup;
mod signals;
mod spawn;
mod stdin_forward;
mod strays;
mod writer_thread;

use std::ffi::OsString;
use std::time::Duration;

use cli::Cli;
use layout::Layout;

/// Default time between SIGTERM and SIGKILL in a teardown.
const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(2);

fn main() {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let guard = argv.get(1).is_some_and(|a| a == shm_cleanup::GUARD_ARG);
    // First, before any thread exists: see `signals`. A job's guard blocks them all as
    // oxrun does (it ends when oxrun has gone); oxrun lets SIGINT, SIGTERM and SIGHUP
    // end it during its checks, and blocks them too once it starts the job.
    let blocked = if guard {
        signals::block()
    } else {
        signals::block_all_but_ending()
    };
    if let Err(e) = blocked {
        eprintln!("oxrun: cannot block signals: {e}");
        std::process::exit(1);
    }
    if guard {
        let job = argv.get(2).and_then(|j| j.to_str());
        std::process::exit(shm_cleanup::guard_main(job));
    }
    let cli = Cli::parse_argv(argv);
    std::process::exit(launch(cli));
}

fn launch(cli: Cli) -> i32 {
    let here = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("oxrun: cannot find the current directory: {e}");
            return 1;
        }
    };
    let cwd = match &cli.wdir {
        None => here,
        Some(dir) => {
            let dir = here.join(dir);
            match std::fs::metadata(&dir) {
                Ok(m) if m.is_dir() && enterable(&dir) => dir,
                Ok(m) if m.is_dir() => {
                    eprintln!("oxrun: --wdir '{}': permission denied", dir.display());
                    return 2;
                }
                Ok(_) => {
                    eprintln!("oxrun: --wdir '{}': not a directory", dir.display());
                    return 2;
                }
                Err(e) => {
                    eprintln!("oxrun: --wdir '{}': {}", dir.display(), io_reason(&e));
                    return 2;
                }
            }
        }
    };
    let program = match program::resolve(&cli.program, std::env::var_os("PATH").as_deref(), &cwd) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("oxrun: {e}");
            return e.exit_code();
        }
    };
    let mut exports = match exports(&cli.export) {
        Ok(e) => e,
        Err(msg) => {
            eprintln!("oxrun: {msg}");
            return 2;
        }
    };
    // The ranks start in --wdir: PWD says so (as a shell's cd would), not oxrun's,
    // unless the command line exports a PWD of its own.
    if cli.wdir.is_some() && !exports.iter().any(|(name, _)| name == "PWD") {
        let pwd = std::fs::canonicalize(&cwd).unwrap_or_else(|_| cwd.clone());
        exports.push(("PWD".into(), pwd.into_os_string()));
    }

    let kill_grace = match kill_grace() {
        Ok(g) => g,
        Err(msg) => {
            eprintln!("oxrun: {msg}");
            return 2;
        }
    };
    let node_nets = match cli.node_netns.as_deref() {
        None => Vec::new(),
        Some(spec) => match netns::for_nodes(spec, cli.simulate_nodes) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("oxrun: --node-netns: {e}");
                return 2;
            }
        },
    };
    let nodes = match node_nets.len() {
        0 => cli.simulate_nodes.map(|k| k as usize),
        n => Some(n),
    };
    let layout = match nodes {
        Some(k) => Layout::blocks(cli.np as usize, k),
        None => Layout::single_node(cli.np as usize),
    };
    // Every rank runs on this machine (simulated nodes share it), so bindings are
    // planned for all of them.
    let local = layout.size();
    let allowed = binding::allowed_pus();
    let cores = if binding::needs_topology(cli.bind_to, cli.report_bindings) {
        match binding::load_cores(&allowed) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("oxrun: warning: {e}; running unbound");
                None
            }
        }
    } else {
        None
    };
    let plan = binding::plan(local, cli.bind_to, cores.as_deref(), allowed.len());
    if cli.report_bindings {
        for rank in 0..layout.size() {
            eprintln!("{}", plan.bindings[rank].report(rank));
        }
    }
    let identity = match rank_env::JobIdentity::generate() {
        Ok(id) => id,
        Err(e) => {
            eprintln!("oxrun: cannot draw a job id: {e}");
            return 1;
        }
    };
    // Threads and processes start from here: the event loop reads every signal.
    if let Err(e) = signals::block() {
        eprintln!("oxrun: cannot block signals: {e}");
        return 1;
    }
    job::run(job::JobSpec {
        program,
        argv0: cli.program,
        args: cli.args,
        cwd,
        exports,
        layout,
        node_nets,
        plan,
        identity,
        tag_output: cli.tag_output,
        timeout: cli.timeout,
        kill_grace,
    })
}

/// The `-x` words as (name, value) pairs; `-x VAR` takes oxrun's own value.
fn exports(words: &[OsString]) -> Result<Vec<(OsString, OsString)>, String> {
    let mut out = Vec::new();
    for word in words {
        let (name, value) = cli::split_export(word);
        if name.is_empty() {
            return Err(format!("-x '{}': no variable name", word.to_string_lossy()));
        }
        if !valid_name(&name) {
            return Err(format!(
                "-x '{}': not a variable name (letters, digits and '_', not starting with a digit)",
                name.to_string_lossy().escape_debug()
            ));
        }
        if rank_env::SET_BY_OXRUN.iter().any(|v| name == *v) {
            eprintln!(
                "oxrun: warning: -x {}: oxrun sets it for every rank; ignored",
                name.to_string_lossy()
            );
            continue;
        }
        match value.or_else(|| std::env::var_os(&name)) {
            Some(v) => out.push((name, v)),
            None => eprintln!(
                "oxrun: warning: -x {}: not set in oxrun's environment, not exported",
                name.to_string_lossy()
            ),
        }
    }
    Ok(out)
}

/// Whether `name` is a portable environment variable name.
fn valid_name(name: &std::ffi::OsStr) -> bool {
    let b = name.as_encoded_bytes();
    !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Whether this process may enter (search) directory `dir`.
fn enterable(dir: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access only reads the NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// `OXRUN_KILL_GRACE_MS` (milliseconds), or the default; anything else is an error.
fn kill_grace() -> Result<Duration, String> {
    match std::env::var("OXRUN_KILL_GRACE_MS") {
        Err(_) => Ok(DEFAULT_KILL_GRACE),
        Ok(v) => v.trim().parse().map(Duration::from_millis).map_err(|_| {
            format!("OXRUN_KILL_GRACE_MS={v:?}: expected a whole number of milliseconds")
        }),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}
