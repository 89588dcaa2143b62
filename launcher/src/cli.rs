//! Command line of `oxrun`: the flags an Open MPI user expects, parsed with clap.
//!
//! Invariant: everything from PROGRAM on reaches the program untouched, even words that
//! look like flags. [`normalize_argv`] finds where PROGRAM starts and puts a `--` in
//! front of it, and only rewrites Open MPI's single-dash long options (`-np 4`,
//! `-wdir /tmp`) that come before it.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser, ValueEnum};

const ABOUT: &str = "Start an oxmpi job: N copies of PROGRAM on this machine, as ranks 0..N-1.";

const LONG_ABOUT: &str = "\
Start an oxmpi job: N copies of PROGRAM on this machine, as ranks 0..N-1.

oxrun serves the PMI-1 wire protocol to its ranks (so oxmpi programs, and MPICH
programs built with simple PMI, find each other), forwards their output line by
line, passes its own standard input to rank 0, pins ranks to cores, and makes sure
no rank outlives the job: when one rank fails, the others are stopped.

Output lines arrive whole, also where stdout and stderr are one file (2>&1); a line
longer than 64 KiB may be cut at a multiple of 64 KiB when another rank's line has
to come between two pieces. The start of a line whose end has not come for 0.5 s
(a prompt before the rank reads its answer) is passed on as it is; another rank's
line between that and its end puts the end on a line of its own. A reader that stops reading oxrun's output holds the
ranks' output back (they wait as they would writing to it directly), never oxrun:
--timeout and signals still end the job. At the end oxrun waits until its reader
has taken all of the output, unless a signal or --timeout ends the wait.";

const AFTER_LONG_HELP: &str = "\
Examples:
  oxrun -n 4 ./target/release/examples/hello
  oxrun -np 8 --tag-output --report-bindings ./solver input.dat
  oxrun -n 2 -x RUST_LOG=debug -x HOME --wdir /scratch/run1 ./app --steps 100
  oxrun -n 16 --timeout 60 ./stress        (16 ranks on 2 cores: 8 per core)
  oxrun -n 4 --node-netns a=10.0.0.1,b=10.0.0.2 ./app   (2 nodes, linked by `ip`)

Each rank's environment is oxrun's own, plus the -x variables, plus:
  PMI_FD, PMI_RANK, PMI_SIZE, PMI_SPAWNED=0     PMI-1 connection to oxrun
  OXMPI_NODE_ID, OXMPI_LOCAL_RANK, OXMPI_LOCAL_SIZE
  OXMPI_BINDING          core:<index> or none
  OXMPI_OVERSUBSCRIBED   1 when there are more ranks than cores (unbound
                         ranks: than CPUs), else 0
  OXMPI_JOB_ID           16 random hex digits, the same for every rank of a job
  OXMPI_JOB_SECRET       32 random hex digits; ranks prove job membership with it
  OXMPI_HOST_ADDR        address this node's ranks listen on (127.0.0.1, or
                         the node's address from --node-netns)
  GLIBC_TUNABLES         where OXMPI_OVERSUBSCRIBED=1, with glibc.pthread.rseq=0
                         added (no restartable sequences: a tenth of each hand-
                         over of a core), unless it sets that tunable already

A rank fails when it exits non-zero, is killed by a signal, or exits after PMI
init without PMI finalize (a program that never speaks PMI may simply exit 0).
On the first failure oxrun prints one line naming the rank and the cause, sends
SIGTERM to every other rank, SIGKILL after a grace period (2 s, or
OXRUN_KILL_GRACE_MS milliseconds), and exits with the failing rank's status.
Ranks already finalizing get no SIGTERM: their finalize fails at once, so what
they print after it (an error main returns) still comes out within the grace.
A deadlocked oxmpi job fails too: once every rank has waited in an oxmpi call,
in finalize or ended after finalizing through the same second, with nothing on
its way to any of them (oxrun tells in 2 to 4 s), none can go on, and oxrun
reports a deadlocked job, naming what each rank has pending (a receive from rank
R, a probe, a send to R, a collective; and, where it waits at the end of an
oxmpi::scope whose closure returned without waiting, that) and the ranks in finalize.
SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to oxrun are forwarded to all ranks; a
second SIGINT kills them. SIGUSR1 and SIGUSR2 are passed on without ending the job, and so
is SIGTSTP (Ctrl-Z), which then stops oxrun too; SIGCONT (fg, bg) continues both,
and the time stopped does not count towards --timeout or the kill grace (and at
most 2 s of each stop towards the ranks' own TCP timeouts). Sent to
the background (bg), the job keeps running, and rank 0 gets what is typed on the
terminal once oxrun is back in the foreground (fg); started in the background,
rank 0 sees end of file at once (as in a shell script's background job). A
signal oxrun was started with ignored (nohup, a shell's background job) stays
ignored, by oxrun and by the ranks. Once every rank has ended, whatever they
started is killed, in their process groups or outside them (setsid, daemons:
oxrun is their subreaper). If oxrun itself is killed (SIGKILL), the ranks die
with it, and a small process it starts first (oxrun-shm-guard) kills what they
started in their process groups and removes what they had in /dev/shm once
they are gone.

Exit status:
  0        every rank exited 0
  N        the first failing rank exited with code N, or called abort with N
           (modulo 256; 1 where that is 0)
  128+S    the first failing rank was killed by signal S, or oxrun received S
  1        a rank exited without finalize, sent a malformed PMI line, the job
           deadlocked, or oxrun could not start the job
  2        bad command line (including a --wdir that does not exist) or a bad
           OXRUN_KILL_GRACE_MS
  124      --timeout expired
  126      PROGRAM (or its #! interpreter or ELF loader) is not executable, or
           is a binary this machine does not run (another machine's, an object
           file, one cut short)
  127      PROGRAM (or its #! interpreter or ELF loader) was not found";

/// How ranks are pinned to processors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BindTo {
    /// Rank i runs on core i (all hardware threads of that core).
    Core,
    /// Ranks may run anywhere the kernel puts them.
    None,
}

/// The parsed command line.
#[derive(Debug, Parser)]
#[command(
    name = "oxrun",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP,
    override_usage = "oxrun [OPTIONS] -n <N> PROGRAM [ARGS]...",
    max_term_width = 100
)]
pub struct Cli {
    /// Number of ranks to start (Open MPI's `-np N` works too)
    #[arg(
        short = 'n',
        long = "np",
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=65536),
        allow_negative_numbers = true
    )]
    pub np: u32,

    /// Export VAR with oxrun's value, or set VAR=VAL, in every rank; repeatable
    ///
    /// An unset VAR is not exported, and the variables oxrun sets itself (below)
    /// are refused, each with a warning.
    #[arg(
        short = 'x',
        value_name = "VAR[=VAL]",
        action = clap::ArgAction::Append,
        verbatim_doc_comment
    )]
    pub export: Vec<OsString>,

    /// Working directory of the ranks [default: oxrun's own]
    ///
    /// A relative PROGRAM path (one with a '/') is looked up from here, and the
    /// ranks' PWD names it.
    #[arg(long, value_name = "DIR", verbatim_doc_comment)]
    pub wdir: Option<PathBuf>,

    #[arg(long, help = "Prefix every output line of rank R with \"[R] \"")]
    pub tag_output: bool,

    /// Pin rank i to core i mod cores (all its hardware threads), or not at all
    ///
    /// Default: core. With more ranks than cores, ranks share the cores
    /// round-robin and see OXMPI_OVERSUBSCRIBED=1; `none` lets the scheduler
    /// move them (better when only a few ranks are busy at a time).
    #[arg(
        long,
        value_enum,
        value_name = "core|none",
        hide_possible_values = true,
        verbatim_doc_comment
    )]
    pub bind_to: Option<BindTo>,

    /// Print each rank's binding on stderr, one line per rank
    #[arg(long)]
    pub report_bindings: bool,

    /// Accepted for Open MPI compatibility; oversubscription is always allowed
    #[arg(long)]
    pub oversubscribe: bool,

    /// Spread the ranks over K simulated nodes on this machine, in blocks
    ///
    /// Each simulated node has its own node id, so ranks on different ones talk
    /// over TCP as on a cluster: for trying multi-node behaviour on one machine.
    /// With more nodes than ranks, each rank is a node of its own.
    #[arg(
        long,
        value_name = "K",
        value_parser = clap::value_parser!(u32).range(1..=65536),
        allow_negative_numbers = true,
        verbatim_doc_comment
    )]
    pub simulate_nodes: Option<u32>,

    /// Put simulated node i in network namespace NSi, its ranks listening on ADDRi
    ///
    /// One entry per node (implies --simulate-nodes with as many). NS is a name
    /// under /var/run/netns (`ip netns add NS`) or a path; ranks on different
    /// nodes then talk over whatever links the namespaces (a veth pair, a bridge)
    /// instead of loopback. Needs the right to enter them (root).
    #[arg(long, value_name = "NS=ADDR,...", verbatim_doc_comment)]
    pub node_netns: Option<String>,

    /// Stop the job if it has not finished after SECS seconds (exit status 124)
    ///
    /// The report names the ranks still running, those of them that last said they
    /// wait in a collective (an oxmpi rank says so once idle for 0.1 s), so a rank
    /// the others wait for stands out, and those in finalize as their programs end
    /// (a `main` that returned an error prints it once the job ends).
    #[arg(
        long,
        value_name = "SECS",
        verbatim_doc_comment,
        value_parser = parse_timeout,
        allow_negative_numbers = true
    )]
    pub timeout: Option<Timeout>,

    /// The program every rank runs; searched in PATH when it has no '/'.
    #[arg(value_name = "PROGRAM", required = true)]
    pub program: OsString,

    /// Arguments passed to PROGRAM unchanged
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<OsString>,
}

/// A `--timeout` value: the duration, and the text the user gave for messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeout {
    /// How long the job may run.
    pub duration: Duration,
    /// The value as written on the command line, e.g. `"30"` or `"0.5"`.
    pub text: String,
}

fn parse_timeout(s: &str) -> Result<Timeout, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(secs > 0.0 && secs.is_finite() && secs < 1e9) {
        return Err(format!("'{s}' is not a positive number of seconds"));
    }
    Ok(Timeout {
        duration: Duration::from_secs_f64(secs),
        text: s.to_owned(),
    })
}

impl Cli {
    /// Parses oxrun's own `argv` (after [`normalize_argv`]); exits on bad usage.
    pub fn parse_argv(argv: Vec<OsString>) -> Cli {
        Cli::try_parse_from(normalize_argv(argv)).unwrap_or_else(|e| {
            if let Some(what) = unknown_option(&e) {
                eprintln!("oxrun: {what}");
                std::process::exit(2);
            }
            e.exit()
        })
    }
}

/// What to say of an option oxrun does not know, in place of clap's tip to pass it
/// after `--` (which would make it PROGRAM); `None` for other errors.
fn unknown_option(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(option)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let hint = match e.get(ContextKind::SuggestedArg) {
        Some(ContextValue::String(like)) => format!("did you mean '{like}'? "),
        _ => String::new(),
    };
    Some(format!(
        "unknown option '{option}' ({hint}oxrun's options, before PROGRAM, are in 'oxrun --help')"
    ))
}

/// Rewrites Open MPI spellings clap would not accept and fences off PROGRAM.
///
/// Before PROGRAM, a single-dash word naming one of oxrun's long options (`-np`,
/// `-wdir`, `-tag-output`, also with `=VALUE`) becomes its double-dash form. The first
/// word that is neither an option nor the value of one is PROGRAM; a `--` is inserted
/// before it so clap hands it and everything after it over unparsed.
pub fn normalize_argv(argv: Vec<OsString>) -> Vec<OsString> {
    let cmd = Cli::command();
    let mut out = Vec::with_capacity(argv.len() + 1);
    let mut words = argv.into_iter();
    if let Some(argv0) = words.next() {
        out.push(argv0);
    }
    let mut expect_value = false;
    while let Some(word) = words.next() {
        if expect_value {
            expect_value = false;
            out.push(word);
            continue;
        }
        // Options are told by their ASCII names: a value attached to one need not be
        // UTF-8 (`--wdir=DIR`, `-xNAME=VALUE`).
        let text = word.to_string_lossy().into_owned();
        let text = text.as_str();
        if text == "--" {
            out.push(word);
            out.extend(words);
            break;
        }
        if let Some(long) = text.strip_prefix("--") {
            let name = long.split_once('=').map_or(long, |(n, _)| n);
            expect_value = !long.contains('=') && long_takes_value(&cmd, name);
            out.push(word);
        } else if let Some(rest) = text.strip_prefix('-').filter(|r| !r.is_empty()) {
            let name = rest.split_once('=').map_or(rest, |(n, _)| n);
            if name.len() > 1 && cmd.get_arguments().any(|a| a.get_long() == Some(name)) {
                // Open MPI style single-dash long option.
                expect_value = !rest.contains('=') && long_takes_value(&cmd, name);
                let mut long = OsString::from("-");
                long.push(&word);
                out.push(long);
            } else {
                // A short option, maybe with its value attached (`-n4`, `-xFOO=1`).
                let short = rest.chars().next();
                expect_value = rest.chars().count() == 1
                    && cmd
                        .get_arguments()
                        .any(|a| a.get_short() == short && a.get_action().takes_values());
                out.push(word);
            }
        } else {
            out.push(OsString::from("--"));
            out.push(word);
            out.extend(words);
            break;
        }
    }
    out
}

fn long_takes_value(cmd: &clap::Command, name: &str) -> bool {
    cmd.get_arguments()
        .any(|a| a.get_long() == Some(name) && a.get_action().takes_values())
}

/// Splits a `-x` word into the variable name and, when given, its value.
pub fn split_export(word: &OsStr) -> (OsString, Option<OsString>) {
    use std::os::unix::ffi::OsStrExt;
    let bytes = word.as_bytes();
    match bytes.iter().position(|&b| b == b'=') {
        Some(i) => (
            OsStr::from_bytes(&bytes[..i]).to_owned(),
            Some(OsStr::from_bytes(&bytes[i + 1..]).to_owned()),
        ),
        None => (word.to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    fn parse(words: &[&str]) -> Cli {
        Cli::try_parse_from(normalize_argv(argv(words))).unwrap()
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn single_dash_np_and_program_args_untouched() {
        let cli = parse(&[
            "oxrun",
            "-np",
            "3",
            "prog",
            "-np",
            "5",
            "--tag-output",
            "--",
        ]);
        assert_eq!(cli.np, 3);
        assert!(!cli.tag_output);
        assert_eq!(cli.program, "prog");
        assert_eq!(cli.args, argv(&["-np", "5", "--tag-output", "--"]));
    }

    #[test]
    fn spellings_of_n() {
        assert_eq!(parse(&["oxrun", "-n", "2", "p"]).np, 2);
        assert_eq!(parse(&["oxrun", "-n2", "p"]).np, 2);
        assert_eq!(parse(&["oxrun", "--np", "4", "p"]).np, 4);
        assert_eq!(parse(&["oxrun", "--np=4", "p"]).np, 4);
        assert_eq!(parse(&["oxrun", "-np=5", "p"]).np, 5);
        assert!(Cli::try_parse_from(normalize_argv(argv(&["oxrun", "-n", "0", "p"]))).is_err());
        assert!(Cli::try_parse_from(normalize_argv(argv(&["oxrun", "p"]))).is_err());
    }

    #[test]
    fn negative_numbers_are_invalid_values_not_unknown_options() {
        // Not clap's "unexpected argument" with a tip to write `-- -1`, which would
        // make -1 the program.
        for words in [
            &["oxrun", "-n", "-1", "p"][..],
            &["oxrun", "-n", "2", "--timeout", "-5", "p"],
            &["oxrun", "-n", "2", "--simulate-nodes", "-2", "p"],
        ] {
            let err = Cli::try_parse_from(normalize_argv(argv(words))).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{words:?}"
            );
        }
    }

    #[test]
    fn options_with_values_before_program() {
        let cli = parse(&[
            "oxrun",
            "-x",
            "A=1",
            "-xB",
            "--wdir",
            "/tmp",
            "-bind-to",
            "none",
            "--timeout",
            "1.5",
            "-n",
            "1",
            "--",
            "echo",
            "hi",
        ]);
        assert_eq!(cli.export, argv(&["A=1", "B"]));
        assert_eq!(cli.wdir, Some(PathBuf::from("/tmp")));
        assert_eq!(cli.bind_to, Some(BindTo::None));
        assert_eq!(cli.timeout.unwrap().duration, Duration::from_millis(1500));
        assert_eq!(cli.program, "echo");
        assert_eq!(cli.args, argv(&["hi"]));
    }

    /// A value attached to an option need not be UTF-8; a word that is not UTF-8 and
    /// no option is PROGRAM.
    #[test]
    fn attached_values_that_are_not_utf8() {
        use std::os::unix::ffi::OsStringExt;
        let bytes = |b: &[u8]| OsString::from_vec(b.to_vec());
        let parse_bytes = |words: &[&[u8]]| {
            let words = words.iter().map(|w| bytes(w)).collect();
            Cli::try_parse_from(normalize_argv(words)).unwrap()
        };
        for wdir in [&b"--wdir=/tmp/d\xff"[..], b"-wdir=/tmp/d\xff"] {
            let cli = parse_bytes(&[b"oxrun", wdir, b"-n1", b"p"]);
            assert_eq!(cli.wdir, Some(PathBuf::from(bytes(b"/tmp/d\xff"))));
            assert_eq!(cli.program, "p");
        }
        let cli = parse_bytes(&[b"oxrun", b"-xV=\xff", b"-n1", b"p"]);
        assert_eq!(cli.export, vec![bytes(b"V=\xff")]);
        let cli = parse_bytes(&[b"oxrun", b"-n1", b"pr\xffg", b"-x"]);
        assert_eq!(cli.program, bytes(b"pr\xffg"));
        assert_eq!(cli.args, argv(&["-x"]));
    }

    #[test]
    fn unknown_option_is_an_error_not_a_program() {
        for bogus in ["--bogus", "-q", "--bogus=1"] {
            let err = Cli::try_parse_from(normalize_argv(argv(&["oxrun", "-n", "1", bogus, "p"])))
                .unwrap_err();
            let name = bogus.split('=').next().unwrap();
            assert_eq!(
                unknown_option(&err).unwrap(),
                format!(
                    "unknown option '{name}' (oxrun's options, before PROGRAM, are in 'oxrun --help')"
                )
            );
        }
        // A near miss is named.
        let err = Cli::try_parse_from(normalize_argv(argv(&[
            "oxrun", "-n", "1", "--timout", "5", "p",
        ])))
        .unwrap_err();
        assert_eq!(
            unknown_option(&err).unwrap(),
            "unknown option '--timout' (did you mean '--timeout'? oxrun's options, before PROGRAM, are in 'oxrun --help')"
        );
        // Other errors keep clap's words.
        let err = Cli::try_parse_from(normalize_argv(argv(&["oxrun", "p"]))).unwrap_err();
        assert_eq!(unknown_option(&err), None);
    }

    #[test]
    fn bad_timeouts() {
        for t in ["0", "-1", "abc", "inf", "NaN"] {
            assert!(parse_timeout(t).is_err(), "{t}");
        }
    }

    #[test]
    fn export_split() {
        assert_eq!(
            split_export(OsStr::new("A=b=c")),
            ("A".into(), Some("b=c".into()))
        );
        assert_eq!(split_export(OsStr::new("A")), ("A".into(), None));
        assert_eq!(
            split_export(OsStr::new("A=")),
            ("A".into(), Some("".into()))
        );
    }
}
