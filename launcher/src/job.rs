//! The job: every rank's process, PMI connection and output pipes, driven by one mio
//! event loop until all ranks have ended, with teardown on the first failure.
//!
//! Child exits (SIGCHLD through the signalfd), PMI requests, output, signals to oxrun,
//! `--timeout` and the kill grace all arrive as events or poll timeouts: oxrun sleeps
//! while the ranks compute. Invariants:
//! - the first failure alone is reported and decides the exit status; ranks ended by
//!   the teardown are not reported;
//! - a rank's exit is observed with `WNOWAIT`, so its pid (and process group id)
//!   stays reserved as a zombie until [`Job::finish`]: oxrun never signals a process
//!   group that is not one of its ranks';
//! - when every rank has ended, each rank's process group is killed (no leftover
//!   grandchildren), and so is every process that left its group and came to oxrun
//!   as their subreaper ([`strays`]); output still arriving is taken in for up to
//!   [`DRAIN`] and written out however long oxrun's reader takes (unless it goes
//!   away, oxrun is signalled or `--timeout` passes), and only then the ranks are
//!   reaped, and whatever is still oxrun's is killed and reaped.

use std::ffi::OsString;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::unix::pipe::Receiver;
use mio::{Events, Interest, Poll, Token};

use crate::binding::Plan;
use crate::cli::Timeout;
use crate::deadlock::Stillness;
use crate::exit_status::{RankExit, signal_name};
use crate::failure::Failure;
use crate::layout::Layout;
use crate::netns::NodeNet;
use crate::output::{Kind, LineBuffer, Output};
use crate::pmi_conn::{Next, PmiConn};
use crate::pmi_server::{Abort, Outcome, PmiServer};
use crate::rank_env::{self, JobIdentity, RankInfo};
use crate::shm_cleanup::{self, Guard};
use crate::signals::{self, FORWARDED, SignalFd};
use crate::spawn::{self, RankCommand};
use crate::stdin_forward;
use crate::strays;
use crate::writer_thread::{self, ThreadWriter, Turns};

/// How long output is still forwarded after every rank has ended (a process that
/// escaped its rank's process group may hold a pipe open).
pub const DRAIN: Duration = Duration::from_secs(1);
/// Least time between two reaps of processes that ended after coming to oxrun as
/// their subreaper.
const REAP_GAP: Duration = Duration::from_millis(250);

/// How long a rank that said it lost a peer, and ended, waits to be blamed while the
/// peer may still be dying (a killed process closes its sockets before it ends).
const LOST_PEER_WAIT: Duration = Duration::from_millis(200);

/// Reads from one output pipe before other sources get their turn.
const READS_PER_TURN: usize = 4;
/// How soon the event loop looks again at output streams left unread while oxrun's
/// own output was backlogged.
const OUTPUT_RETRY: Duration = Duration::from_millis(5);
/// Requests from one rank handled before other sources get their turn.
const LINES_PER_TURN: usize = 64;
/// Bounds on reads and requests when taking in what a rank left behind as it exited
/// (a dead rank's pipe and socket hold little; the bound is against a grandchild
/// that keeps writing).
const DRAIN_READS: usize = 64;
const DRAIN_LINES: usize = 1 << 16;

const SIGNAL_TOKEN: Token = Token(usize::MAX);

/// Everything needed to run a job.
#[derive(Debug)]
pub struct JobSpec {
    /// Absolute path of the program.
    pub program: PathBuf,
    /// `argv[0]` as the user wrote it.
    pub argv0: OsString,
    /// Program arguments.
    pub args: Vec<OsString>,
    /// Working directory of the ranks.
    pub cwd: PathBuf,
    /// `-x` variables with their values.
    pub exports: Vec<(OsString, OsString)>,
    /// Placement of ranks on nodes.
    pub layout: Layout,
    /// Per simulated node, its network namespace (`--node-netns`; empty: all in
    /// oxrun's, listening on loopback).
    pub node_nets: Vec<NodeNet>,
    /// Bindings of this node's ranks, by local rank.
    pub plan: Plan,
    /// Job id and secret.
    pub identity: JobIdentity,
    /// `--tag-output`.
    pub tag_output: bool,
    /// `--timeout`.
    pub timeout: Option<Timeout>,
    /// Time between SIGTERM and SIGKILL in a teardown.
    pub kill_grace: Duration,
}

#[derive(Debug)]
struct Stream {
    rx: Receiver,
    lb: LineBuffer,
}

#[derive(Debug)]
struct Rank {
    pid: libc::pid_t,
    /// Set once the process has ended (it stays a zombie until `finish`).
    exit: Option<RankExit>,
    pmi: Option<PmiConn>,
    streams: [Option<Stream>; 2],
}

/// A rank's failure that a peer on its way out caused ([`Job::awaiting`]).
#[derive(Debug)]
struct Awaiting {
    failure: Failure,
    /// The peer the failing rank said it lost (it finalized while needed).
    peer: usize,
    /// When the failure is reported anyway.
    until: Instant,
}

/// A running job.
#[derive(Debug)]
pub struct Job {
    poll: Poll,
    ranks: Vec<Rank>,
    pmi: PmiServer,
    out: Output<ThreadWriter>,
    signals: SignalFd,
    failure: Option<Failure>,
    /// `--timeout` expiry, while nothing failed yet.
    deadline: Option<Instant>,
    /// `--timeout` expiry, for the wait for the output at the end.
    timeout_at: Option<Instant>,
    timeout_text: String,
    kill_grace: Duration,
    /// When the teardown escalates to SIGKILL.
    kill_at: Option<Instant>,
    /// Set once every rank has ended: the end of output draining.
    drain_until: Option<Instant>,
    /// While taking in what ranks that ended at once sent: the failures it showed
    /// (an abort, a malformed line), reported only as those ranks are handled in
    /// blame order ([`Job::check_exits`]).
    held: Option<Vec<Failure>>,
    /// Ranks some rank said it lost that were given [`LOST_PEER_WAIT`] to be seen
    /// ending: each is waited for once, however many ranks name it.
    lost_waited: Vec<usize>,
    /// A rank failed because a peer finalized while it needed the peer (a `main` that
    /// returned an error finalizes on its way out, and the others find it gone): the
    /// failure waits for the peer, released from its finalize, to end, at most the
    /// grace a teardown gives it. If the peer fails, it is blamed: its error is the
    /// cause.
    awaiting: Option<Awaiting>,
    /// Which ranks are blocked, to tell a deadlocked job (`deadlock.rs`).
    stillness: Stillness,
    /// When to reap the processes that came to oxrun as their subreaper and ended
    /// ([`strays::reap_ended`]), and when it last did.
    reap_at: Option<Instant>,
    last_reap: Instant,
    /// Sources with data left after their turn.
    retry: Vec<Token>,
    /// Output streams left unread while oxrun's own output is backlogged.
    stalled: Vec<Token>,
    external_signals: u32,
    /// The job's [`Guard`], a child of oxrun that is not a stray.
    guard: Option<Guard>,
}

fn token(rank: usize, which: usize) -> Token {
    Token(rank * 3 + which)
}

/// Once every rank has ended: the first pending signal that ends oxrun (not one only
/// passed on to the ranks, nor SIGCHLD), if any. SIGTSTP stops oxrun meanwhile, and
/// the time it spent stopped is added to `stopped`.
fn ending_signal(signals: &SignalFd, stopped: &mut Duration) -> Option<i32> {
    while let Ok(Some(sig)) = signals.next() {
        if sig == libc::SIGTSTP {
            *stopped += signals::stop_self();
        } else if sig != libc::SIGCHLD && !FORWARDED.contains(&sig) {
            return Some(sig);
        }
    }
    None
}

/// Runs the job to its end and returns oxrun's exit status.
pub fn run(spec: JobSpec) -> i32 {
    let mut job = match Job::new(&spec) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("oxrun: cannot set up the event loop: {e}");
            return 1;
        }
    };
    if let Err(e) = strays::adopt_orphans() {
        eprintln!(
            "oxrun: warning: processes the ranks start outside their process group may outlive the job: {e}"
        );
    }
    job.guard = Guard::start(&spec.identity.id)
        .inspect_err(|e| {
            eprintln!(
                "oxrun: warning: cannot start the guard that cleans /dev/shm should oxrun be killed: {e}"
            );
        })
        .ok();
    job.start(&spec);
    job.event_loop();
    job.finish(&spec.identity.id)
}

impl Job {
    fn new(spec: &JobSpec) -> io::Result<Job> {
        let poll = Poll::new()?;
        let signals = SignalFd::new()?;
        poll.registry().register(
            &mut SourceFd(&signals.as_raw_fd()),
            SIGNAL_TOKEN,
            Interest::READABLE,
        )?;
        let size = spec.layout.size();
        // Lines stay whole where stdout and stderr are one file (`2>&1`): the output
        // writes both kinds to stdout's writer, in order (the writers still take
        // turns, should the other one ever get bytes).
        let one_file = writer_thread::same_file(1, 2);
        let turns = one_file.then(Turns::default);
        let out = Output::new(
            spec.tag_output,
            one_file,
            ThreadWriter::start(1, turns.clone())?,
            ThreadWriter::start(2, turns)?,
        );
        let timeout_at = spec.timeout.as_ref().map(|t| Instant::now() + t.duration);
        Ok(Job {
            poll,
            ranks: Vec::with_capacity(size),
            pmi: PmiServer::new(size, spec.identity.kvsname(), spec.layout.process_mapping()),
            out,
            signals,
            failure: None,
            deadline: timeout_at,
            timeout_at,
            timeout_text: spec
                .timeout
                .as_ref()
                .map_or_else(String::new, |t| t.text.clone()),
            kill_grace: spec.kill_grace,
            kill_at: None,
            drain_until: None,
            retry: Vec::new(),
            stalled: Vec::new(),
            external_signals: 0,
            guard: None,
            held: None,
            lost_waited: Vec::new(),
            awaiting: None,
            stillness: Stillness::new(size),
            reap_at: None,
            last_reap: Instant::now(),
        })
    }

    /// Spawns every rank (from the main thread: see `spawn`); each tells the guard its
    /// pid itself.
    fn start(&mut self, spec: &JobSpec) {
        let nofile = match spawn::raise_fd_limit(spec.layout.size()) {
            Ok(old) => old,
            Err(e) => {
                self.out.message(&format!("oxrun: {e}"));
                self.fail(Failure::Launch);
                return;
            }
        };
        let mut stdin0 = None;
        for rank in 0..spec.layout.size() {
            let binding = &spec.plan.bindings[rank];
            let net = spec.node_nets.get(spec.layout.node(rank) as usize);
            let env = |pmi_fd| {
                let info = RankInfo {
                    rank,
                    layout: &spec.layout,
                    binding,
                    oversubscribed: spec.plan.oversubscribed,
                    identity: &spec.identity,
                    pmi_fd,
                    host_addr: net.map_or("127.0.0.1", |n| &n.addr),
                };
                rank_env::rank_env(&info, &spec.exports)
            };
            let cmd = RankCommand {
                program: &spec.program,
                argv0: &spec.argv0,
                args: &spec.args,
                cwd: &spec.cwd,
                env: &env,
                env_remove: &rank_env::REMOVED,
                cpuset: binding.cpuset(),
                netns: net.map(NodeNet::fd),
                stdin: rank == 0,
                nofile,
                guard: self.guard.as_ref().map(Guard::feed),
            };
            let spawned = match spawn::spawn(&cmd) {
                Ok(s) => s,
                Err(e) => {
                    let within = net.map_or(String::new(), |n| {
                        format!(" in network namespace '{}'", n.name)
                    });
                    self.out
                        .message(&format!("oxrun: cannot start rank {rank}{within}: {e}"));
                    self.fail(Failure::Launch);
                    return;
                }
            };
            stdin0 = stdin0.or(spawned.stdin);
            self.ranks.push(Rank {
                pid: spawned.pid,
                exit: None,
                pmi: None,
                streams: [None, None],
            });
            if let Err(e) = self.watch(rank, spawned.pmi, spawned.stdout, spawned.stderr) {
                self.out
                    .message(&format!("oxrun: cannot watch rank {rank}: {e}"));
                self.fail(Failure::Launch);
                return;
            }
        }
        if let Some(stdin) = stdin0
            && let Err(e) = stdin_forward::start(stdin)
        {
            self.out
                .message(&format!("oxrun: cannot forward stdin: {e}"));
            self.fail(Failure::Launch);
        }
        // Exits that happened before the signalfd was read.
        self.check_exits();
    }

    fn watch(
        &mut self,
        rank: usize,
        pmi: std::os::unix::net::UnixStream,
        stdout: std::process::ChildStdout,
        stderr: std::process::ChildStderr,
    ) -> io::Result<()> {
        let registry = self.poll.registry();
        pmi.set_nonblocking(true)?;
        let mut conn = PmiConn::new(mio::net::UnixStream::from_std(pmi));
        registry.register(
            conn.stream_mut(),
            token(rank, 0),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.ranks[rank].pmi = Some(conn);
        for (kind, rx) in [
            (Kind::Stdout, Receiver::from(stdout)),
            (Kind::Stderr, Receiver::from(stderr)),
        ] {
            let mut rx = rx;
            rx.set_nonblocking(true)?;
            registry.register(&mut rx, token(rank, 1 + kind as usize), Interest::READABLE)?;
            self.ranks[rank].streams[kind as usize] = Some(Stream {
                rx,
                lb: LineBuffer::new(rank, kind),
            });
        }
        Ok(())
    }

    fn event_loop(&mut self) {
        let mut events = Events::with_capacity(256);
        let mut ready = Vec::new();
        while !self.done() {
            let timeout = if !self.retry.is_empty() {
                Some(Duration::ZERO)
            } else {
                let timer = self
                    .next_timer()
                    .map(|t| t.saturating_duration_since(Instant::now()));
                if self.stalled.is_empty() {
                    timer
                } else {
                    // Look again soon whether the output writers caught up.
                    Some(timer.map_or(OUTPUT_RETRY, |t| t.min(OUTPUT_RETRY)))
                }
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                self.out.message(&format!("oxrun: event loop failed: {e}"));
                self.fail(Failure::Launch);
                return;
            }
            ready.extend(events.iter().map(|e| e.token()));
            ready.append(&mut self.retry);
            for t in ready.drain(..) {
                self.dispatch(t);
            }
            self.out.flush();
            if !self.stalled.is_empty() && !self.out.backlogged() {
                self.retry.append(&mut self.stalled);
            }
            self.on_timers(Instant::now());
            self.check_all_ended();
        }
    }

    fn dispatch(&mut self, t: Token) {
        if t == SIGNAL_TOKEN {
            self.on_signals();
            return;
        }
        let rank = t.0 / 3;
        match t.0 % 3 {
            0 => self.service_pmi(rank, false),
            1 => self.pump(rank, Kind::Stdout, false),
            _ => self.pump(rank, Kind::Stderr, false),
        }
    }

    /// Forwards output of one stream. `draining`: the rank just ended, take in
    /// everything it left (bounded) rather than one turn's worth.
    fn pump(&mut self, rank: usize, kind: Kind, draining: bool) {
        let Job {
            ranks,
            out,
            poll,
            retry,
            stalled,
            ..
        } = self;
        let slot = &mut ranks[rank].streams[kind as usize];
        let Some(stream) = slot.as_mut() else { return };
        if out.backlogged() && !draining {
            // oxrun's reader is behind: leave the rank's output in its pipe (the rank
            // waits for the reader as it would without oxrun) until it catches up. Once
            // per stream, however many times its pipe becomes readable meanwhile.
            let t = token(rank, 1 + kind as usize);
            if !stalled.contains(&t) {
                stalled.push(t);
            }
            // The end of an unfinished line may be in the pipe now.
            stream.lb.more_to_read();
            return;
        }
        let turn = if draining {
            DRAIN_READS
        } else {
            READS_PER_TURN
        };
        let mut ended = false;
        for i in 0.. {
            if i == turn {
                retry.push(token(rank, 1 + kind as usize));
                break;
            }
            match stream.lb.read_from(&mut stream.rx) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(_) => out.take_lines(&mut stream.lb),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    stream.lb.drained(Instant::now());
                    break;
                }
                Err(_) => {
                    ended = true;
                    break;
                }
            }
        }
        if ended && let Some(mut stream) = slot.take() {
            out.finish(&mut stream.lb);
            let _ = poll.registry().deregister(&mut stream.rx);
        }
        out.flush();
        if out.broken(kind) {
            // Nobody reads oxrun's output any more: closing the pipe lets the rank
            // get SIGPIPE, as it would writing to the reader directly.
            if let Some(mut stream) = slot.take() {
                let _ = poll.registry().deregister(&mut stream.rx);
            }
        }
    }

    /// Serves one rank's PMI requests. `draining`: the rank just ended, take in
    /// everything it sent (bounded) so a last `finalize` or `abort` is seen.
    fn service_pmi(&mut self, rank: usize, draining: bool) {
        let mut budget = if draining {
            DRAIN_LINES
        } else {
            LINES_PER_TURN
        };
        loop {
            let Some(conn) = self.ranks[rank].pmi.as_mut() else {
                return;
            };
            conn.flush();
            if conn.backlogged() && !draining {
                // Resumed by the socket's next writable event.
                return;
            }
            if budget == 0 {
                if !draining {
                    self.retry.push(token(rank, 0));
                }
                return;
            }
            match conn.next_line() {
                Next::Line(line) => {
                    budget -= 1;
                    // Read before the answer goes out: the rank's next look may follow it.
                    let now = Instant::now();
                    let outcome = self.pmi.handle(rank, &line);
                    self.route(outcome);
                    match line.cmd() {
                        "barrier_in" => {
                            self.check_barrier();
                            if self.failure.is_some() || self.awaiting.is_some() {
                                self.release_leaving();
                            }
                            if self.pmi.in_fence(rank) {
                                self.stillness.still(rank, now);
                                self.check_deadlock();
                            }
                        }
                        // The first line of a question says whether the rank is blocked.
                        "oxmpi_silent" if line.get("from").is_none_or(|f| f == "0") => {
                            let spell = self.pmi.idle_spell(rank);
                            self.stillness.word(rank, spell, now);
                            self.check_deadlock();
                        }
                        "oxmpi_finalizing" => self.stillness.word(rank, None, now),
                        _ => {}
                    }
                }
                Next::WouldBlock => return,
                Next::Closed => {
                    self.close_pmi(rank);
                    return;
                }
                Next::Malformed(why) => {
                    self.close_pmi(rank);
                    self.fail(Failure::Malformed { rank, why });
                    return;
                }
            }
        }
    }

    fn close_pmi(&mut self, rank: usize) {
        if let Some(mut conn) = self.ranks[rank].pmi.take() {
            let _ = self.poll.registry().deregister(conn.stream_mut());
        }
    }

    fn route(&mut self, outcome: Outcome) {
        for (to, line) in outcome.replies {
            if let Some(conn) = self.ranks.get_mut(to).and_then(|r| r.pmi.as_mut()) {
                conn.send(&line);
            }
        }
        if let Some(abort) = outcome.abort {
            // The rank wrote why it gives up before it asked to abort: that line goes
            // out before oxrun's own.
            if self.failure.is_none() {
                self.pump(abort.rank, Kind::Stderr, false);
                self.pump(abort.rank, Kind::Stdout, false);
            }
            self.fail(Failure::Abort(abort));
        }
    }

    fn on_signals(&mut self) {
        let mut child = false;
        loop {
            match self.signals.next() {
                Ok(Some(libc::SIGCHLD)) => child = true,
                Ok(Some(libc::SIGTSTP)) => self.suspend(),
                Ok(Some(sig)) if FORWARDED.contains(&sig) => self.signal_all(sig),
                Ok(Some(sig)) => self.on_external_signal(sig),
                Ok(None) | Err(_) => break,
            }
        }
        if child {
            self.check_exits();
            // Maybe a process that came to oxrun as their subreaper ended: reaped at
            // most every REAP_GAP (each look is a scan of /proc).
            self.reap_at
                .get_or_insert(Instant::now().max(self.last_reap + REAP_GAP));
        }
    }

    /// Ctrl-Z (SIGTSTP, which reaches oxrun's process group and not the ranks'): the
    /// ranks stop, then oxrun. SIGCONT (`fg`, `bg`) continues oxrun, which continues
    /// them (also when oxrun ignores SIGCONT and never reads it). The time the job
    /// spent stopped does not count towards `--timeout`, the kill grace or the drain
    /// at the end (as a suspended job's time does not count towards its limit under
    /// Slurm): each is put off by as much.
    fn suspend(&mut self) {
        self.signal_all(libc::SIGTSTP);
        let stopped = signals::stop_self();
        self.signal_all(libc::SIGCONT);
        for at in [
            &mut self.deadline,
            &mut self.timeout_at,
            &mut self.kill_at,
            &mut self.drain_until,
        ]
        .into_iter()
        .flatten()
        .chain(self.awaiting.as_mut().map(|a| &mut a.until))
        {
            *at += stopped;
        }
    }

    fn on_external_signal(&mut self, sig: i32) {
        self.external_signals += 1;
        let name = signal_name(sig).unwrap_or("a signal");
        if self.drain_until.is_some() {
            // Every rank has ended already: just stop waiting for stray output, and
            // for the reader at the end beyond the drain.
            self.drain_until = Some(Instant::now());
            self.failure.get_or_insert(Failure::Signal(sig));
        } else if self.failure.is_none() {
            self.out.message(&format!(
                "oxrun: received {name}, forwarding it to all ranks"
            ));
            self.failure = Some(Failure::Signal(sig));
            self.signal_all(sig);
            self.kill_at = Some(Instant::now() + self.kill_grace);
        } else {
            let when = if self.external_signals > 1 {
                "again"
            } else {
                "while stopping the job"
            };
            self.out
                .message(&format!("oxrun: received {name} {when}, killing all ranks"));
            self.signal_all(libc::SIGKILL);
            self.kill_at = None;
        }
    }

    /// Looks for ranks that ended, without reaping them; of those that ended at once,
    /// the likeliest cause of a failure comes first: not a rank that said it lost a
    /// peer (what it sent before it ended is read first), then by
    /// [`RankExit::blame_order`].
    fn check_exits(&mut self) {
        let mut ended: Vec<(usize, RankExit)> = (0..self.ranks.len())
            .filter(|&rank| self.ranks[rank].exit.is_none())
            .filter_map(|rank| Some((rank, self.has_ended(rank)?)))
            .collect();
        self.held = Some(Vec::new());
        for &(rank, _) in &ended {
            self.service_pmi(rank, true);
        }
        // A rank that lost a peer may end before the peer is seen to: a killed process
        // closes its connections before it can be waited for. Blame goes to the peer
        // if it ends within a moment.
        if self.failure.is_none() {
            let mut lost: Vec<usize> = ended
                .iter()
                .filter_map(|&(rank, _)| self.pmi.lost_peer(rank))
                // One on its way out ends once released (see `awaiting`).
                .filter(|&peer| !self.lost_waited.contains(&peer) && !self.pmi.leaving(peer))
                .collect();
            lost.sort_unstable();
            lost.dedup();
            // One moment for all of them: oxrun handles nothing else meanwhile.
            let until = Instant::now() + LOST_PEER_WAIT;
            for peer in lost {
                self.lost_waited.push(peer);
                if self.ranks[peer].exit.is_none()
                    && !ended.iter().any(|&(r, _)| r == peer)
                    && let Some(exit) =
                        self.await_end(peer, until.saturating_duration_since(Instant::now()))
                {
                    self.service_pmi(peer, true);
                    ended.push((peer, exit));
                }
            }
        }
        let mut held = self.held.take().unwrap_or_default();
        ended.sort_by_key(|&(rank, exit)| (self.pmi.lost_a_peer(rank), exit.blame_order(), rank));
        for (rank, exit) in ended {
            // What the rank sent before it ended comes first (an abort names it).
            let (mine, rest) = held.into_iter().partition(|f| f.rank() == Some(rank));
            held = rest;
            for failure in mine {
                self.fail(failure);
            }
            self.on_exit(rank, exit);
        }
        for failure in held {
            self.fail(failure);
        }
    }

    /// How `rank` ended, if it has (it stays to be reaped).
    fn has_ended(&self, rank: usize) -> Option<RankExit> {
        // SAFETY: siginfo_t is plain data; all-zero means "no child changed state".
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: `info` is a writable siginfo_t; the pid is our own child.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                self.ranks[rank].pid as libc::id_t,
                &mut info,
                flags,
            )
        };
        // SAFETY: waitid filled `info` (or left it zeroed); si_pid and si_status are
        // the fields it sets for a child that ended.
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        (rc == 0 && pid != 0).then(|| RankExit::from_wait(info.si_code, status))
    }

    /// [`Job::has_ended`], looking again every millisecond for at most `wait`.
    fn await_end(&self, rank: usize, wait: Duration) -> Option<RankExit> {
        let until = Instant::now() + wait;
        loop {
            if let Some(exit) = self.has_ended(rank) {
                return Some(exit);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn on_exit(&mut self, rank: usize, exit: RankExit) {
        // What it said and printed before it ended comes first.
        self.service_pmi(rank, true);
        self.pump(rank, Kind::Stdout, true);
        self.pump(rank, Kind::Stderr, true);
        self.ranks[rank].exit = Some(exit);
        self.pmi.ended(rank);
        if self.failure.is_some() {
            return;
        }
        if exit.success() && self.awaiting.as_ref().is_some_and(|a| a.peer == rank) {
            // It ended well: the failure it caused is the one to report.
            self.settle();
            return;
        }
        let pid = self.ranks[rank].pid;
        if !exit.success() {
            self.fail(Failure::Exit { rank, pid, exit });
        } else if self.pmi.initialized(rank) && !self.pmi.finalized(rank) {
            self.fail(Failure::NoFinalize { rank, pid });
        } else {
            self.check_barrier();
            self.stillness.still(rank, Instant::now());
            self.check_deadlock();
        }
    }

    /// Ends a job whose every rank waits with nothing on its way to it (see
    /// `deadlock.rs`), naming where they wait. Ranks in finalize as their programs
    /// end are released by the teardown and print their errors.
    fn check_deadlock(&mut self) {
        if self.failure.is_some()
            || self.awaiting.is_some()
            || !self.stillness.deadlocked(Instant::now())
        {
            return;
        }
        let blocked = self
            .stillness
            .blocked()
            .into_iter()
            .map(|r| (r, self.pmi.pending_of(r)))
            .collect();
        let (ending, finalizing) = (0..self.ranks.len())
            .filter(|&r| self.ranks[r].exit.is_none() && self.pmi.in_fence(r))
            .partition(|&r| self.pmi.ending(r));
        self.fail(Failure::Deadlock {
            blocked,
            ending,
            finalizing,
        });
    }

    /// A barrier that some ranks wait in can never complete once a rank that is not
    /// in it has ended: fail instead of hanging.
    fn check_barrier(&mut self) {
        if self.failure.is_some() || self.pmi.waiting_in_barrier() == 0 {
            return;
        }
        let stuck = (0..self.ranks.len())
            .find(|&r| self.ranks[r].exit.is_some() && !self.pmi.in_barrier(r));
        if let Some(rank) = stuck {
            let pid = self.ranks[rank].pid;
            self.fail(Failure::BarrierStuck { rank, pid });
        }
    }

    /// Records the first failure, reports it, and starts the teardown (or holds it,
    /// see [`Job::held`]).
    fn fail(&mut self, failure: Failure) {
        if let Some(held) = self.held.as_mut() {
            held.push(failure);
            return;
        }
        if self.failure.is_some() {
            return;
        }
        if let Some(awaited) = self.awaiting.as_ref().map(|a| a.peer) {
            match failure.rank() {
                // The peer failed too: its failure is the cause.
                Some(rank) if rank == awaited => self.awaiting = None,
                // Another rank that needed the peer.
                Some(rank) if self.pmi.lost_peer(rank) == Some(awaited) => return,
                _ => return self.settle(),
            }
        } else if let Some(peer) = self.leaving_cause(&failure) {
            self.awaiting = Some(Awaiting {
                failure,
                peer,
                until: Instant::now() + self.kill_grace,
            });
            self.release_leaving();
            return;
        }
        self.tear_down(failure);
    }

    /// The peer that `failure`'s rank said it lost, if any, still running, and on its
    /// way out because its program is ending (a `main` returning an error finalizes
    /// as it drops its `Universe`; a program that calls finalize itself and then
    /// fails fails because the job failed, not the other way round).
    fn leaving_cause(&self, failure: &Failure) -> Option<usize> {
        let rank = match failure {
            Failure::Abort(Abort { rank, .. }) | Failure::Exit { rank, .. } => *rank,
            _ => return None,
        };
        let peer = self.pmi.lost_peer(rank)?;
        (self.ranks[peer].exit.is_none() && self.pmi.ending(peer)).then_some(peer)
    }

    /// Reports the failure held back in [`Job::awaiting`], if any and nothing else
    /// (a signal) ended the job meanwhile, and tears down.
    fn settle(&mut self) {
        if let Some(a) = self.awaiting.take()
            && self.failure.is_none()
        {
            self.tear_down(a.failure);
        }
    }

    /// Reports the job's first failure and starts the teardown.
    fn tear_down(&mut self, failure: Failure) {
        if let Some(text) = failure.report() {
            self.out.message(&text);
        }
        self.failure = Some(failure);
        // A rank that finalizes is on its way out: it may still print why it gave up
        // (a `main` returning an error prints it after finalizing), so it gets the
        // grace period to end on its own, released from the finalize fence.
        self.signal_where(libc::SIGTERM, |rank| !self.pmi.leaving(rank));
        self.release_leaving();
        self.kill_at = Some(Instant::now() + self.kill_grace);
    }

    /// Once the job failed, ends the fence of every rank that waits in it on its way
    /// out (see [`PmiServer::release_leaving`]); while a failure waits for the rank
    /// that caused it ([`Job::awaiting`]), that rank's alone (another rank released
    /// would fail because of it, and be taken for a cause).
    fn release_leaving(&mut self) {
        let only = match (&self.failure, &self.awaiting) {
            (None, Some(a)) => Some(a.peer),
            _ => None,
        };
        let replies = self.pmi.release_leaving(|r| only.is_none_or(|p| p == r));
        self.route(Outcome {
            replies,
            abort: None,
        });
    }

    /// Sends `sig` to the process group of every rank (the leaders of ended ranks are
    /// still zombies, so their group ids are still theirs).
    fn signal_all(&self, sig: i32) {
        self.signal_where(sig, |_| true);
    }

    /// [`Job::signal_all`] for the ranks `which` picks.
    fn signal_where(&self, sig: i32, which: impl Fn(usize) -> bool) {
        for (rank, r) in self.ranks.iter().enumerate() {
            if which(rank) {
                // SAFETY: kill takes plain integers; -pid names the rank's own group.
                unsafe { libc::kill(-r.pid, sig) };
            }
        }
    }

    fn on_timers(&mut self, now: Instant) {
        if self.awaiting.as_ref().is_some_and(|a| now >= a.until) {
            self.settle();
        }
        if let Some(d) = self.deadline
            && now >= d
        {
            self.deadline = None;
            if self.drain_until.is_none() {
                let running: Vec<usize> = (0..self.ranks.len())
                    .filter(|&r| self.ranks[r].exit.is_none())
                    .collect();
                let of_them =
                    |f: &dyn Fn(usize) -> bool| running.iter().copied().filter(|&r| f(r)).collect();
                let waiting = of_them(&|r| self.pmi.waits_in_collective(r));
                let ending = of_them(&|r| self.pmi.ending(r) && self.pmi.in_barrier(r));
                self.fail(Failure::Timeout {
                    after: self.timeout_text.clone(),
                    running,
                    waiting,
                    ending,
                });
            }
        }
        if let Some(k) = self.kill_at
            && now >= k
        {
            self.kill_at = None;
            self.signal_all(libc::SIGKILL);
        }
        if self.reap_at.is_some_and(|r| now >= r) {
            self.reap_at = None;
            self.last_reap = now;
            strays::reap_ended(&self.not_strays());
        }
        if self.partial_due().is_some_and(|due| due <= now) {
            for stream in self
                .ranks
                .iter_mut()
                .flat_map(|r| r.streams.iter_mut().flatten())
            {
                self.out.take_stale(&mut stream.lb, now);
            }
            self.out.flush();
        }
    }

    /// When the first unfinished line of the ranks' output goes out as it is; none
    /// while oxrun's reader is behind (the line's end may wait in its pipe).
    fn partial_due(&self) -> Option<Instant> {
        if self.out.backlogged() {
            return None;
        }
        self.ranks
            .iter()
            .flat_map(|r| r.streams.iter().flatten())
            .filter_map(|s| s.lb.due())
            .min()
    }

    /// oxrun's children that are not strays: every rank (ended ones too: they stay
    /// unreaped until the end) and the guard.
    fn not_strays(&self) -> Vec<libc::pid_t> {
        let guard = self.guard.as_ref().map(Guard::pid);
        self.ranks.iter().map(|r| r.pid).chain(guard).collect()
    }

    fn next_timer(&self) -> Option<Instant> {
        let deadline = self.deadline.filter(|_| self.failure.is_none());
        [
            deadline,
            self.awaiting.as_ref().map(|a| a.until),
            self.kill_at,
            self.drain_until,
            self.reap_at,
            self.partial_due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Once every rank has ended: kill what is left in their process groups and start
    /// the output drain.
    fn check_all_ended(&mut self) {
        if self.drain_until.is_none() && self.ranks.iter().all(|r| r.exit.is_some()) {
            self.signal_all(libc::SIGKILL);
            strays::kill_strays(&self.not_strays());
            self.kill_at = None;
            self.deadline = None;
            self.drain_until = Some(Instant::now() + DRAIN);
        }
    }

    fn done(&self) -> bool {
        match self.drain_until {
            None => false,
            Some(until) => {
                Instant::now() >= until
                    || self
                        .ranks
                        .iter()
                        .all(|r| r.streams.iter().all(Option::is_none))
            }
        }
    }

    /// Flushes what is left, reaps every rank, removes what they left of job `job_id`
    /// in /dev/shm, ends the guard, and returns the exit status.
    fn finish(mut self, job_id: &str) -> i32 {
        let keep = self.not_strays();
        // What the ranks left in their pipes (left there while oxrun's reader was
        // behind) is taken in too.
        for rank in 0..self.ranks.len() {
            for kind in [Kind::Stdout, Kind::Stderr] {
                self.pump(rank, kind, true);
            }
        }
        for rank in &mut self.ranks {
            for stream in rank.streams.iter_mut().filter_map(Option::take) {
                let mut stream = stream;
                self.out.finish(&mut stream.lb);
            }
        }
        // Everything is written, however slowly the reader reads (the ranks writing
        // themselves would wait as long), unless the reader goes away, oxrun is
        // signalled, or `--timeout` passes (a signal or the timeout is then the exit
        // status, unless the job failed already). A job a signal or `--timeout`
        // ended waits only up to DRAIN.
        let (signals, timeout_at) = (&self.signals, self.timeout_at);
        let ended_early = matches!(
            self.failure,
            Some(Failure::Signal(_) | Failure::Timeout { .. })
        );
        let give_up_at = Instant::now() + DRAIN;
        // Time spent stopped by Ctrl-Z, which puts off both of those limits.
        let mut stopped = Duration::ZERO;
        let mut cut = None;
        let mut stop = || {
            if ended_early && Instant::now() >= give_up_at + stopped {
                return true;
            }
            if cut.is_none() {
                cut = ending_signal(signals, &mut stopped)
                    .map(Failure::Signal)
                    .or_else(|| {
                        timeout_at
                            .filter(|&t| Instant::now() >= t + stopped)
                            .map(|_| Failure::Timeout {
                                after: self.timeout_text.clone(),
                                running: Vec::new(),
                                waiting: Vec::new(),
                                ending: Vec::new(),
                            })
                    });
            }
            cut.is_some()
        };
        for w in self.out.into_writers(&mut stop) {
            w.close(&mut stop);
        }
        if self.failure.is_none() {
            self.failure = cut;
        }
        for r in &self.ranks {
            if r.exit.is_none() {
                // Only after an event loop failure.
                // SAFETY: kill takes plain integers; -pid names the rank's own group.
                unsafe { libc::kill(-r.pid, libc::SIGKILL) };
            }
            let mut status = 0;
            // SAFETY: waitpid on our own child with a valid status pointer.
            while unsafe { libc::waitpid(r.pid, &mut status, 0) } < 0
                && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
            {}
        }
        strays::end_strays(DRAIN, &keep);
        shm_cleanup::remove_segments(job_id);
        if let Some(guard) = self.guard.take() {
            guard.finish();
        }
        self.failure.as_ref().map_or(0, Failure::exit_code)
    }
}
