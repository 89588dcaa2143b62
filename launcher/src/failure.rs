//! The first thing that went wrong in a job: the one line oxrun reports about it and
//! the exit status it decides.
//!
//! Invariant: exit statuses follow the shell (a code passes through, a signal S is
//! 128+S) and are never 0 for a failure: an abort code that is 0 modulo 256 becomes 1.

use crate::exit_status::RankExit;
use crate::pmi_server::Abort;

/// Why a job is being torn down.
#[derive(Debug)]
pub enum Failure {
    /// A rank exited non-zero or was killed by a signal.
    Exit {
        rank: usize,
        pid: i32,
        exit: RankExit,
    },
    /// A rank exited 0 after PMI init without PMI finalize.
    NoFinalize { rank: usize, pid: i32 },
    /// A rank called PMI abort.
    Abort(Abort),
    /// A rank sent a line that is not PMI.
    Malformed { rank: usize, why: String },
    /// A rank ended while others wait for it in a PMI barrier.
    BarrierStuck { rank: usize, pid: i32 },
    /// `--timeout` expired (`after` as the user wrote it) with these ranks running,
    /// of which `waiting` last told oxrun that they wait in a collective, and `ending`
    /// that they finalize as their programs end (a `main` returning an error prints
    /// it once the finalize ends).
    Timeout {
        after: String,
        running: Vec<usize>,
        waiting: Vec<usize>,
        ending: Vec<usize>,
    },
    /// Every rank waited with nothing on its way to it (see `deadlock.rs`): `blocked`
    /// in waits, each with what it said it has pending, and `ending` and `finalizing`
    /// in the finalize fence (`ending`: as their programs end, a `main` returning an
    /// error prints it once released).
    Deadlock {
        blocked: Vec<(usize, String)>,
        ending: Vec<usize>,
        finalizing: Vec<usize>,
    },
    /// oxrun received this signal and forwarded it.
    Signal(i32),
    /// oxrun could not start or watch the job (already reported where it happened).
    Launch,
}

impl Failure {
    /// The rank it names, if one.
    pub fn rank(&self) -> Option<usize> {
        match self {
            Failure::Exit { rank, .. }
            | Failure::NoFinalize { rank, .. }
            | Failure::Malformed { rank, .. }
            | Failure::BarrierStuck { rank, .. } => Some(*rank),
            Failure::Abort(a) => Some(a.rank),
            Failure::Timeout { .. }
            | Failure::Deadlock { .. }
            | Failure::Signal(_)
            | Failure::Launch => None,
        }
    }

    /// oxrun's exit status.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Exit { exit, .. } => exit.shell_status(),
            Failure::Abort(a) => match a.code & 0xff {
                0 => 1,
                c => c,
            },
            Failure::Timeout { .. } => 124,
            Failure::Signal(s) => 128 + s,
            Failure::NoFinalize { .. }
            | Failure::Malformed { .. }
            | Failure::BarrierStuck { .. }
            | Failure::Deadlock { .. }
            | Failure::Launch => 1,
        }
    }

    /// The line to print on stderr, if it is reported here.
    pub fn report(&self) -> Option<String> {
        Some(match self {
            Failure::Exit { rank, pid, exit } => format!("oxrun: rank {rank} (pid {pid}) {exit}"),
            Failure::NoFinalize { rank, pid } => {
                format!("oxrun: rank {rank} (pid {pid}) exited without calling finalize")
            }
            Failure::Abort(a) if a.failed => format!(
                "oxrun: rank {} failed with code {} (oxmpi's message above)",
                a.rank, a.code
            ),
            Failure::Abort(a) => match &a.msg {
                Some(msg) => format!(
                    "oxrun: rank {} called abort with code {}: {}",
                    a.rank,
                    a.code,
                    printable(msg)
                ),
                None => format!("oxrun: rank {} called abort with code {}", a.rank, a.code),
            },
            Failure::Malformed { rank, why } => {
                format!("oxrun: rank {rank} sent a malformed PMI line: {why}")
            }
            Failure::BarrierStuck { rank, pid } => format!(
                "oxrun: rank {rank} (pid {pid}) ended while other ranks wait for it in a PMI barrier"
            ),
            Failure::Timeout {
                after,
                running,
                waiting,
                ending,
            } => {
                let mut text = format!(
                    "oxrun: job timed out after {after} s; ranks still running: {}",
                    rank_list(running)
                );
                let mut of_them = Vec::new();
                if !waiting.is_empty() {
                    of_them.push(format!(
                        "{} last said they wait in a collective",
                        rank_list(waiting)
                    ));
                }
                if !ending.is_empty() {
                    of_them.push(format!(
                        "in finalize as their programs end: {}",
                        rank_list(ending)
                    ));
                }
                if !of_them.is_empty() {
                    text += &format!(" (of them, {})", of_them.join("; "));
                }
                text
            }
            Failure::Deadlock {
                blocked,
                ending,
                finalizing,
            } => {
                let secs = crate::deadlock::WINDOW.as_secs_f64();
                let mut text = format!(
                    "oxrun: job deadlocked: for {secs} s no rank moved and nothing was on its way to any: {}",
                    waits_of(blocked)
                );
                if !ending.is_empty() {
                    text += &format!("; in finalize as their programs end: {}", rank_list(ending));
                }
                if !finalizing.is_empty() {
                    text += &format!("; in finalize: {}", rank_list(finalizing));
                }
                text
            }
            Failure::Signal(_) | Failure::Launch => return None,
        })
    }
}

/// The most groups of ranks that wait alike a deadlock report names.
const MOST_GROUPS: usize = 8;

/// Ranks and what each has pending, those alike together, in rank order of their
/// first: "rank 0 waits, pending: X; ranks 1-3 wait, pending: Y".
fn waits_of(blocked: &[(usize, String)]) -> String {
    let mut groups: Vec<(Vec<usize>, &str)> = Vec::new();
    for (rank, what) in blocked {
        match groups.iter_mut().find(|(_, w)| w == what) {
            Some((ranks, _)) => ranks.push(*rank),
            None => groups.push((vec![*rank], what)),
        }
    }
    let mut parts: Vec<String> = groups
        .iter()
        .take(MOST_GROUPS)
        .map(|(ranks, what)| {
            let (who, wait) = if ranks.len() == 1 {
                ("rank", "waits")
            } else {
                ("ranks", "wait")
            };
            format!("{who} {} {wait}, pending: {what}", rank_list(ranks))
        })
        .collect();
    if groups.len() > MOST_GROUPS {
        parts.push(format!("{} more groups", groups.len() - MOST_GROUPS));
    }
    parts.join("; ")
}

/// Sorted ranks as ranges: "0-3,5,7,8".
pub fn rank_list(ranks: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ranks.len() {
        let mut j = i;
        while j + 1 < ranks.len() && ranks[j + 1] == ranks[j] + 1 {
            j += 1;
        }
        parts.push(match j - i {
            0 => ranks[i].to_string(),
            1 => format!("{},{}", ranks[i], ranks[j]),
            _ => format!("{}-{}", ranks[i], ranks[j]),
        });
        i = j + 1;
    }
    parts.join(",")
}

/// A rank's text fit for oxrun's one report line: control characters (a carriage
/// return, a terminal escape) written as escapes, the rest as it is.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_lists() {
        assert_eq!(rank_list(&[0, 1, 2, 3, 5, 7, 8]), "0-3,5,7,8");
        assert_eq!(rank_list(&[4]), "4");
        assert_eq!(rank_list(&[]), "");
    }

    #[test]
    fn exit_codes() {
        let abort = |code| {
            Failure::Abort(Abort {
                rank: 0,
                code,
                msg: None,
                failed: false,
            })
            .exit_code()
        };
        assert_eq!(abort(7), 7);
        assert_eq!(abort(0), 1);
        assert_eq!(abort(256), 1);
        assert_eq!(abort(-1), 255);
        let text = Failure::Abort(Abort {
            rank: 2,
            code: 3,
            msg: Some("MPI_Abort(comm, 3)\r\u{1b}[2J é".into()),
            failed: false,
        });
        assert_eq!(
            text.report().unwrap(),
            "oxrun: rank 2 called abort with code 3: MPI_Abort(comm, 3)\\r\\u{1b}[2J é"
        );
        let panicked = Failure::Abort(Abort {
            rank: 1,
            code: 101,
            msg: None,
            failed: true,
        });
        assert_eq!(panicked.exit_code(), 101);
        assert_eq!(
            panicked.report().unwrap(),
            "oxrun: rank 1 failed with code 101 (oxmpi's message above)"
        );
        let timeout = |waiting: Vec<usize>, ending: Vec<usize>| Failure::Timeout {
            after: "2.5".into(),
            running: vec![0, 1, 2, 4],
            waiting,
            ending,
        };
        assert_eq!(timeout(vec![], vec![]).exit_code(), 124);
        assert_eq!(
            timeout(vec![], vec![]).report().unwrap(),
            "oxrun: job timed out after 2.5 s; ranks still running: 0-2,4"
        );
        assert_eq!(
            timeout(vec![1, 2, 4], vec![]).report().unwrap(),
            "oxrun: job timed out after 2.5 s; ranks still running: 0-2,4 (of them, 1,2,4 last said they wait in a collective)"
        );
        assert_eq!(
            timeout(vec![0, 2], vec![1]).report().unwrap(),
            "oxrun: job timed out after 2.5 s; ranks still running: 0-2,4 (of them, 0,2 last said they wait in a collective; in finalize as their programs end: 1)"
        );
        let recv = "a receive from any rank (tag 5)".to_owned();
        let deadlock = Failure::Deadlock {
            blocked: vec![
                (0, recv.clone()),
                (1, "barrier #2 on context 1".into()),
                (3, recv),
            ],
            ending: vec![2],
            finalizing: vec![4],
        };
        assert_eq!(deadlock.exit_code(), 1);
        assert_eq!(
            deadlock.report().unwrap(),
            "oxrun: job deadlocked: for 1 s no rank moved and nothing was on its way to any: ranks 0,3 wait, pending: a receive from any rank (tag 5); rank 1 waits, pending: barrier #2 on context 1; in finalize as their programs end: 2; in finalize: 4"
        );
        let many: Vec<(usize, String)> = (0..10).map(|r| (r, format!("wait {r}"))).collect();
        assert!(waits_of(&many).ends_with("rank 7 waits, pending: wait 7; 2 more groups"));
        assert_eq!(Failure::Signal(libc::SIGINT).exit_code(), 130);
        assert_eq!(Failure::Signal(libc::SIGINT).report(), None);
        let exit = RankExit::Signal {
            signal: 9,
            core_dumped: false,
        };
        let f = Failure::Exit {
            rank: 1,
            pid: 42,
            exit,
        };
        assert_eq!(f.exit_code(), 137);
        assert_eq!(
            f.report().unwrap(),
            "oxrun: rank 1 (pid 42) killed by signal 9 (SIGKILL)"
        );
    }
}
