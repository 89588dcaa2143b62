//! The PMI-1 server as a pure state machine: one request line from one rank in,
//! reply lines (to that rank, or to every rank when a barrier completes) out.
//!
//! It knows nothing of sockets; `pmi_conn` frames lines and `job` routes them.
//! Invariants: every request gets exactly one reply except `abort` and `oxmpi_lost`
//! (none) and `barrier_in` (its reply waits for the whole round); the key-value space never
//! holds more than [`KVS_BUDGET`] bytes; nothing a rank sends can make it panic.

use std::collections::HashMap;

use oxmpi::bootstrap::rank_list::{self, Range};
use oxmpi::bootstrap::waits::{self, Clash, Pending, Wait};
use oxmpi::bootstrap::wire::{Line, valid_token};

/// Longest kvsname, key and value we advertise in `maxes` and enforce in `put`.
pub const KVSNAME_MAX: usize = 256;
/// See [`KVSNAME_MAX`].
pub const KEYLEN_MAX: usize = 64;
/// See [`KVSNAME_MAX`].
pub const VALLEN_MAX: usize = 1024;
/// Most bytes of keys plus values (and [`ENTRY_COST`] per entry) the key-value space
/// holds before `put` fails.
pub const KVS_BUDGET: usize = 64 << 20;
/// What an entry of the key-value space costs beyond its key and value (the map's
/// own memory), counted against [`KVS_BUDGET`].
const ENTRY_COST: usize = 100;

/// A rank asked the job to end (`cmd=abort`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abort {
    /// The rank that called abort.
    pub rank: usize,
    /// Its `exitcode` (1 when missing or unreadable).
    pub code: i32,
    /// Its text (`message=`, as MPICH sends it, or `msg=`), if any and not empty.
    pub msg: Option<String>,
    /// oxmpi's abort on a failure it reported itself (`oxmpi_failed=1`: a panic, a
    /// lost peer), not the program's.
    pub failed: bool,
}

/// What handling one request produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Lines to send, each to one rank.
    pub replies: Vec<(usize, Line)>,
    /// Set when the request was `abort`.
    pub abort: Option<Abort>,
}

#[derive(Debug, Default, Clone, Copy)]
struct RankState {
    initialized: bool,
    /// It said it is finalizing (`oxmpi_finalizing`).
    finalizing: bool,
    /// It said it finalizes because its program is ending (`ending=1`: it dropped its
    /// `Universe` unfinalized, as a `main` returning an error does).
    ending: bool,
    finalized: bool,
    in_barrier: bool,
    /// It said it lost a peer (`oxmpi_lost`): its own end is likely a consequence.
    lost_a_peer: bool,
    /// The peer it named, if a rank of the job.
    lost_peer: Option<usize>,
    /// The idle spell its last question about silent peers said it is blocked in
    /// (`idle=`), unless the answer told it something new, which may end its wait.
    idle: Option<u64>,
    /// How many ranks that finalized without a connection to it it has been told of.
    told: usize,
}

impl RankState {
    /// On its way out: it sent `finalize`, or said it is finalizing.
    fn leaving(&self) -> bool {
        self.finalized || self.finalizing
    }
}

/// The PMI-1 state of a whole job.
#[derive(Debug)]
pub struct PmiServer {
    kvsname: String,
    ranks: Vec<RankState>,
    /// key -> (value, rank that put it).
    kvs: HashMap<String, (String, usize)>,
    kvs_bytes: usize,
    in_barrier: usize,
    /// The ranks each rank finalized without a connection to (`oxmpi_finalizing`),
    /// ascending.
    unlinked: Vec<Vec<Range>>,
    /// Ranks that ended without finalize, in the order oxrun saw them end.
    lost: Vec<usize>,
    /// The collectives each rank last said it waits in (`oxmpi_silent waits=`).
    waits: Vec<Vec<Wait>>,
    /// What each blocked rank last said it waits for.
    pending: Vec<Blocked>,
}

/// What a blocked rank said it waits for (with `idle=` on its `oxmpi_silent`).
#[derive(Debug, Clone, Default)]
struct Blocked {
    /// Point-to-point operations (`on=`).
    pending: Vec<Pending>,
    /// How many more it did not name (`on_more=`).
    more: usize,
    /// It waits at the end of an `oxmpi::scope` for what the scope's closure left in
    /// flight (`scope_end=1`).
    scope_end: bool,
}

impl PmiServer {
    /// A server for `size` ranks with key-value space `kvsname`, holding
    /// `PMI_process_mapping = mapping` if it fits a value ([`VALLEN_MAX`]; a longer
    /// one, of hundreds of nodes of uneven sizes, would make every client's `get`
    /// fail, where without it they treat every rank as on another node).
    pub fn new(size: usize, kvsname: String, mapping: String) -> PmiServer {
        let mut kvs = HashMap::new();
        let mut kvs_bytes = 0;
        if mapping.len() <= VALLEN_MAX {
            kvs_bytes = mapping.len();
            kvs.insert("PMI_process_mapping".to_owned(), (mapping, usize::MAX));
        }
        PmiServer {
            kvsname,
            ranks: vec![RankState::default(); size],
            kvs,
            kvs_bytes,
            in_barrier: 0,
            unlinked: vec![Vec::new(); size],
            lost: Vec::new(),
            waits: vec![Vec::new(); size],
            pending: vec![Blocked::default(); size],
        }
    }

    /// `rank`'s process ended: without finalize, its peers will wait for it in vain
    /// (`oxmpi_silent` tells them).
    pub fn ended(&mut self, rank: usize) {
        if !self.ranks[rank].finalized && !self.lost.contains(&rank) {
            self.lost.push(rank);
        }
    }

    /// Whether `rank` sent `init`.
    pub fn initialized(&self, rank: usize) -> bool {
        self.ranks[rank].initialized
    }

    /// Whether `rank` sent `finalize`.
    pub fn finalized(&self, rank: usize) -> bool {
        self.ranks[rank].finalized
    }

    /// Whether `rank` is on its way out: it sent `finalize`, or said it is finalizing.
    pub fn leaving(&self, rank: usize) -> bool {
        self.ranks[rank].leaving()
    }

    /// Ends the barrier for every rank that `which` picks and that waits in it on its
    /// way out ([`leaving`]), with a failure: the job failed, so the ranks it waits
    /// for may never come, and such a rank still has its own end to reach (what its
    /// program prints after finalizing). Returns the replies to send.
    ///
    /// [`leaving`]: PmiServer::leaving
    pub fn release_leaving(&mut self, which: impl Fn(usize) -> bool) -> Vec<(usize, Line)> {
        let mut out = Vec::new();
        for (r, state) in self.ranks.iter_mut().enumerate() {
            if state.in_barrier && state.leaving() && which(r) {
                state.in_barrier = false;
                self.in_barrier -= 1;
                out.push((
                    r,
                    reply("barrier_out", &[("rc", "-1"), ("msg", "job_failed")]),
                ));
            }
        }
        out
    }

    /// Whether `rank` finalizes because its program is ending (it dropped its
    /// `Universe` unfinalized).
    pub fn ending(&self, rank: usize) -> bool {
        self.ranks[rank].ending
    }

    /// Whether `rank` said it lost a peer (`oxmpi_lost`).
    pub fn lost_a_peer(&self, rank: usize) -> bool {
        self.ranks[rank].lost_a_peer
    }

    /// The peer `rank` said it lost, if it named a rank of the job.
    pub fn lost_peer(&self, rank: usize) -> Option<usize> {
        self.ranks[rank].lost_peer
    }

    /// Whether `rank` entered the current barrier round.
    pub fn in_barrier(&self, rank: usize) -> bool {
        self.ranks[rank].in_barrier
    }

    /// Number of ranks waiting in the current barrier round.
    pub fn waiting_in_barrier(&self) -> usize {
        self.in_barrier
    }

    /// Handles one request line from `rank`.
    pub fn handle(&mut self, rank: usize, req: &Line) -> Outcome {
        let mut out = Outcome::default();
        let one = |out: &mut Outcome, line: Line| out.replies.push((rank, line));
        match req.cmd() {
            "init" => {
                let ok = req.get("pmi_version") == Some("1");
                if ok {
                    self.ranks[rank].initialized = true;
                }
                one(
                    &mut out,
                    reply(
                        "response_to_init",
                        &[
                            ("pmi_version", "1"),
                            ("pmi_subversion", "1"),
                            // oxrun's extensions are spoken here (`oxmpi_*`).
                            ("oxmpi", "1"),
                            ("rc", if ok { "0" } else { "-1" }),
                        ],
                    ),
                );
            }
            "get_maxes" => one(
                &mut out,
                reply(
                    "maxes",
                    &[
                        ("kvsname_max", &KVSNAME_MAX.to_string()),
                        ("keylen_max", &KEYLEN_MAX.to_string()),
                        ("vallen_max", &VALLEN_MAX.to_string()),
                        ("rc", "0"),
                    ],
                ),
            ),
            "get_appnum" => one(&mut out, reply("appnum", &[("appnum", "0"), ("rc", "0")])),
            "get_my_kvsname" => one(
                &mut out,
                reply("my_kvsname", &[("kvsname", &self.kvsname), ("rc", "0")]),
            ),
            "get_universe_size" => one(
                &mut out,
                reply(
                    "universe_size",
                    &[("size", &self.ranks.len().to_string()), ("rc", "0")],
                ),
            ),
            "put" => {
                let line = match self.put(rank, req) {
                    Ok(()) => reply("put_result", &[("rc", "0"), ("msg", "success")]),
                    Err(msg) => reply("put_result", &[("rc", "-1"), ("msg", msg)]),
                };
                one(&mut out, line);
            }
            "get" => {
                let line = match self.get(req) {
                    Ok(value) => reply(
                        "get_result",
                        &[("rc", "0"), ("value", value), ("msg", "success")],
                    ),
                    Err(msg) => reply("get_result", &[("rc", "-1"), ("msg", &msg)]),
                };
                one(&mut out, line);
            }
            "barrier_in" => {
                if self.ranks[rank].in_barrier {
                    one(
                        &mut out,
                        reply(
                            "barrier_out",
                            &[("rc", "-1"), ("msg", "already_in_barrier")],
                        ),
                    );
                } else {
                    self.ranks[rank].in_barrier = true;
                    self.in_barrier += 1;
                    if self.in_barrier == self.ranks.len() {
                        self.in_barrier = 0;
                        for (r, state) in self.ranks.iter_mut().enumerate() {
                            state.in_barrier = false;
                            out.replies.push((r, reply("barrier_out", &[("rc", "0")])));
                        }
                    }
                }
            }
            "oxmpi_finalizing" => {
                let line = match self.finalizing(rank, req) {
                    Ok(()) => reply("oxmpi_finalizing_result", &[("rc", "0")]),
                    Err(msg) => reply("oxmpi_finalizing_result", &[("rc", "-1"), ("msg", msg)]),
                };
                one(&mut out, line);
            }
            "oxmpi_silent" => {
                let line = match req.get("from").unwrap_or("0").parse() {
                    Ok(0) => {
                        // What the rank waits in now (a malformed list: nothing).
                        let waits = req.get("waits").unwrap_or("");
                        self.waits[rank] = waits::decode(waits).unwrap_or_default();
                        let mut line = self.silent(rank, 0);
                        let clash = self.clash(rank);
                        if let Some(clash) = clash {
                            let _ = line.push("clash", &clash.encode());
                        }
                        // An answer with news may end the wait: not a blocked rank's.
                        let told = self.unlinked_from(rank).count();
                        let news = told > self.ranks[rank].told
                            || clash.is_some()
                            || line.get("lost").is_some();
                        self.ranks[rank].told = told;
                        self.ranks[rank].idle = req
                            .get("idle")
                            .and_then(|i| i.parse().ok())
                            .filter(|_| !news);
                        let blocked =
                            |key| req.get(key).filter(|_| self.ranks[rank].idle.is_some());
                        self.pending[rank] = Blocked {
                            pending: waits::decode_pending(blocked("on").unwrap_or(""))
                                .unwrap_or_default(),
                            more: blocked("on_more").and_then(|m| m.parse().ok()).unwrap_or(0),
                            scope_end: blocked("scope_end") == Some("1"),
                        };
                        line
                    }
                    Ok(from) => self.silent(rank, from),
                    Err(_) => reply("oxmpi_silent_result", &[("rc", "-1"), ("msg", "bad_from")]),
                };
                one(&mut out, line);
            }
            "finalize" => {
                self.ranks[rank].finalized = true;
                one(&mut out, reply("finalize_ack", &[("rc", "0")]));
            }
            "oxmpi_lost" => {
                let size = self.ranks.len();
                let state = &mut self.ranks[rank];
                state.lost_a_peer = true;
                state.lost_peer = req
                    .get("peer")
                    .and_then(|p| p.parse().ok())
                    .filter(|&p: &usize| p < size && p != rank);
            }
            "abort" => {
                let code = match req.get("exitcode") {
                    None => 1,
                    Some(c) => c.parse().unwrap_or(1),
                };
                let text = req.get("message").or_else(|| req.get("msg"));
                out.abort = Some(Abort {
                    rank,
                    code,
                    msg: text.filter(|t| !t.trim().is_empty()).map(str::to_owned),
                    failed: req.get("oxmpi_failed") == Some("1"),
                });
            }
            other => {
                let cmd = format!("{other}_result");
                let mut line = Line::new(&cmd);
                let _ = line.push("rc", "-1");
                let _ = line.push("msg", "unknown_command");
                one(&mut out, line);
            }
        }
        out
    }

    fn put(&mut self, rank: usize, req: &Line) -> Result<(), &'static str> {
        if req.get("kvsname") != Some(self.kvsname.as_str()) {
            return Err("unknown_kvsname");
        }
        let (Some(key), Some(value)) = (req.get("key"), req.get("value")) else {
            return Err("missing_key_or_value");
        };
        if key.is_empty() || key.len() > KEYLEN_MAX {
            return Err("invalid_key_length");
        }
        if value.len() > VALLEN_MAX {
            return Err("value_too_long");
        }
        if !valid_token(key) || !valid_token(value) {
            // The wire format cannot give it back in a `get_result`.
            return Err("key_or_value_not_sendable");
        }
        match self.kvs.get_mut(key) {
            Some((old, _)) if old == value => Ok(()),
            Some((old, owner)) if *owner == rank => {
                let bytes = self.kvs_bytes - old.len() + value.len();
                if bytes > KVS_BUDGET {
                    return Err("kvs_full");
                }
                self.kvs_bytes = bytes;
                value.clone_into(old);
                Ok(())
            }
            Some(_) => Err("key_put_by_another_rank_with_a_different_value"),
            None => {
                let bytes = key.len() + value.len() + ENTRY_COST;
                if self.kvs_bytes + bytes > KVS_BUDGET {
                    return Err("kvs_full");
                }
                self.kvs_bytes += bytes;
                self.kvs.insert(key.to_owned(), (value.to_owned(), rank));
                Ok(())
            }
        }
    }

    /// `rank` finalizes without a connection to the ranks listed (more of them than
    /// it listed before, if any).
    fn finalizing(&mut self, rank: usize, req: &Line) -> Result<(), &'static str> {
        self.ranks[rank].finalizing = true;
        self.ranks[rank].ending |= req.get("ending") == Some("1");
        self.ranks[rank].idle = None;
        self.pending[rank] = Blocked::default();
        // It waits in no collective any more (and asks nothing more while it finalizes).
        self.waits[rank].clear();
        let text = req.get("unlinked").unwrap_or("");
        let ranges = rank_list::decode(text, self.ranks.len()).ok_or("malformed_rank_list")?;
        let known = &mut self.unlinked[rank];
        let (Some(&(first, _)), Some(&(_, end))) = (ranges.first(), known.last()) else {
            known.extend(ranges);
            return Ok(());
        };
        if first <= end {
            return Err("ranks_not_after_those_listed_before");
        }
        known.extend(ranges);
        Ok(())
    }

    /// Whether `rank` last said it waits in a collective (with its last question about
    /// silent peers).
    pub fn waits_in_collective(&self, rank: usize) -> bool {
        !self.waits[rank].is_empty()
    }

    /// Another rank that last said it waits in a different collective under the name
    /// of one `rank` waits in, and that collective.
    fn clash(&self, rank: usize) -> Option<Clash> {
        let others = self
            .waits
            .iter()
            .enumerate()
            .filter(|&(r, w)| r != rank && !w.is_empty())
            .map(|(r, w)| (r, w.as_slice()));
        waits::first_clash(&self.waits[rank], others)
    }

    /// The ranks that finalized without a connection to `rank`, ascending.
    fn unlinked_from(&self, rank: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.ranks.len())
            .filter(move |&r| r != rank && rank_list::contains(&self.unlinked[r], rank))
    }

    /// The idle spell `rank` last said it is blocked in, with nothing of its own on
    /// the way to its peers (`idle=` on its last `oxmpi_silent`), unless the answer
    /// told it something new (a peer finalized, a clash, a lost rank).
    pub fn idle_spell(&self, rank: usize) -> Option<u64> {
        self.ranks[rank].idle
    }

    /// What blocked `rank` last said it has pending, for a report: its point-to-point
    /// operations (the blocking probe it waits in, the receives it posted, the sends
    /// that wait for theirs), then the collectives it runs ("none named" where it named
    /// none), and where it waits at the end of an `oxmpi::scope`, that.
    pub fn pending_of(&self, rank: usize) -> String {
        let Blocked {
            pending,
            more,
            scope_end,
        } = &self.pending[rank];
        let what: Vec<String> = pending
            .iter()
            .map(Pending::describe)
            .chain((*more > 0).then(|| format!("{more} more receives and sends")))
            .chain(self.waits[rank].iter().map(Wait::describe))
            .chain(scope_end.then(|| {
                "at the end of an oxmpi::scope whose closure returned without waiting".to_owned()
            }))
            .collect();
        if what.is_empty() {
            return "none named".to_owned();
        }
        what.join(", ")
    }

    /// Whether `rank` waits in the finalize fence: it said it is finalizing and
    /// entered the barrier.
    pub fn in_fence(&self, rank: usize) -> bool {
        let state = &self.ranks[rank];
        state.finalizing && state.in_barrier
    }

    /// The answer to `oxmpi_silent` from `rank`: the ranks from `from` on that
    /// finalized without a connection to it, as many as fit a line, and the first
    /// other rank that ended without finalize, if any (`lost`).
    fn silent(&self, rank: usize, from: usize) -> Line {
        let silent: Vec<usize> = self.unlinked_from(rank).filter(|&r| r >= from).collect();
        let (text, n) = rank_list::encode(&silent);
        let mut line = reply("oxmpi_silent_result", &[("rc", "0"), ("ranks", &text)]);
        if let Some(next) = silent.get(n) {
            let _ = line.push("next", &next.to_string());
        }
        if let Some(lost) = self.lost.iter().find(|&&r| r != rank) {
            let _ = line.push("lost", &lost.to_string());
        }
        line
    }

    fn get(&self, req: &Line) -> Result<&str, String> {
        if req.get("kvsname") != Some(self.kvsname.as_str()) {
            return Err("unknown_kvsname".to_owned());
        }
        let Some(key) = req.get("key") else {
            return Err("missing_key".to_owned());
        };
        match self.kvs.get(key) {
            Some((value, _)) => Ok(value),
            None if key.len() <= KEYLEN_MAX && !key.contains('=') => {
                Err(format!("key_{key}_not_found"))
            }
            None => Err("key_not_found".to_owned()),
        }
    }
}

/// Builds a reply; every token here is either ours or was checked to be encodable,
/// but a refused pair is skipped rather than trusted to never happen.
fn reply(cmd: &str, pairs: &[(&str, &str)]) -> Line {
    let mut line = Line::new(cmd);
    for (k, v) in pairs {
        let _ = line.push(k, v);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(n: usize) -> PmiServer {
        PmiServer::new(n, "oxmpi_test".into(), "(vector,(0,1,4))".into())
    }

    fn req(text: &str) -> Line {
        Line::parse(text).unwrap()
    }

    fn only_reply(out: Outcome, rank: usize) -> String {
        assert_eq!(out.replies.len(), 1, "{out:?}");
        assert_eq!(out.replies[0].0, rank);
        out.replies[0].1.to_string()
    }

    #[test]
    fn init_and_queries() {
        let mut s = server(4);
        assert!(!s.initialized(2));
        let r = only_reply(
            s.handle(2, &req("cmd=init pmi_version=1 pmi_subversion=1")),
            2,
        );
        assert_eq!(
            r,
            "cmd=response_to_init pmi_version=1 pmi_subversion=1 oxmpi=1 rc=0\n"
        );
        assert!(s.initialized(2));
        let r = only_reply(
            s.handle(1, &req("cmd=init pmi_version=2 pmi_subversion=0")),
            1,
        );
        assert!(r.ends_with("rc=-1\n"));
        assert!(!s.initialized(1));
        assert_eq!(
            only_reply(s.handle(0, &req("cmd=get_maxes")), 0),
            "cmd=maxes kvsname_max=256 keylen_max=64 vallen_max=1024 rc=0\n"
        );
        assert_eq!(
            only_reply(s.handle(0, &req("cmd=get_appnum")), 0),
            "cmd=appnum appnum=0 rc=0\n"
        );
        assert_eq!(
            only_reply(s.handle(0, &req("cmd=get_my_kvsname")), 0),
            "cmd=my_kvsname kvsname=oxmpi_test rc=0\n"
        );
        assert_eq!(
            only_reply(s.handle(3, &req("cmd=get_universe_size")), 3),
            "cmd=universe_size size=4 rc=0\n"
        );
    }

    #[test]
    fn put_get_and_conflicts() {
        let mut s = server(2);
        let ok = "cmd=put_result rc=0 msg=success\n";
        assert_eq!(
            only_reply(
                s.handle(0, &req("cmd=put kvsname=oxmpi_test key=a value=1")),
                0
            ),
            ok
        );
        // Same value from another rank is fine; a different one is not.
        assert_eq!(
            only_reply(
                s.handle(1, &req("cmd=put kvsname=oxmpi_test key=a value=1")),
                1
            ),
            ok
        );
        let r = only_reply(
            s.handle(1, &req("cmd=put kvsname=oxmpi_test key=a value=2")),
            1,
        );
        assert!(r.starts_with("cmd=put_result rc=-1 msg="), "{r}");
        // The owner may change its own key.
        assert_eq!(
            only_reply(
                s.handle(0, &req("cmd=put kvsname=oxmpi_test key=a value=3")),
                0
            ),
            ok
        );
        assert_eq!(
            only_reply(s.handle(1, &req("cmd=get kvsname=oxmpi_test key=a")), 1),
            "cmd=get_result rc=0 value=3 msg=success\n"
        );
        assert_eq!(
            only_reply(s.handle(1, &req("cmd=get kvsname=oxmpi_test key=zz")), 1),
            "cmd=get_result rc=-1 msg=key_zz_not_found\n"
        );
        assert_eq!(
            only_reply(
                s.handle(
                    0,
                    &req("cmd=get kvsname=oxmpi_test key=PMI_process_mapping")
                ),
                0
            ),
            "cmd=get_result rc=0 value=(vector,(0,1,4)) msg=success\n"
        );
        let r = only_reply(s.handle(0, &req("cmd=put kvsname=other key=b value=1")), 0);
        assert!(r.contains("rc=-1"), "{r}");
        let r = only_reply(s.handle(0, &req("cmd=get kvsname=other key=a")), 0);
        assert!(r.contains("rc=-1"), "{r}");
        let long_key = format!("cmd=put kvsname=oxmpi_test key={} value=1", "k".repeat(65));
        assert!(only_reply(s.handle(0, &req(&long_key)), 0).contains("rc=-1"));
        let long_val = format!(
            "cmd=put kvsname=oxmpi_test key=k value={}",
            "v".repeat(1025)
        );
        assert!(only_reply(s.handle(0, &req(&long_val)), 0).contains("rc=-1"));
        assert!(
            only_reply(
                s.handle(0, &req("cmd=put kvsname=oxmpi_test key=k value=a=b")),
                0
            )
            .contains("rc=-1")
        );
        assert!(
            only_reply(s.handle(0, &req("cmd=put kvsname=oxmpi_test key=k")), 0).contains("rc=-1")
        );
        // An empty value is a value.
        assert_eq!(
            only_reply(
                s.handle(0, &req("cmd=put kvsname=oxmpi_test key=e value=")),
                0
            ),
            ok
        );
        assert_eq!(
            only_reply(s.handle(1, &req("cmd=get kvsname=oxmpi_test key=e")), 1),
            "cmd=get_result rc=0 value= msg=success\n"
        );
    }

    #[test]
    fn barrier_rounds() {
        let mut s = server(3);
        for round in 0..3 {
            assert!(
                s.handle(0, &req("cmd=barrier_in")).replies.is_empty(),
                "round {round}"
            );
            assert!(s.handle(2, &req("cmd=barrier_in")).replies.is_empty());
            assert_eq!(s.waiting_in_barrier(), 2);
            assert!(s.in_barrier(2) && !s.in_barrier(1));
            // Entering twice in one round is refused, and does not count.
            let r = only_reply(s.handle(2, &req("cmd=barrier_in")), 2);
            assert!(r.contains("rc=-1"));
            let out = s.handle(1, &req("cmd=barrier_in"));
            let to: Vec<usize> = out.replies.iter().map(|(r, _)| *r).collect();
            assert_eq!(to, vec![0, 1, 2]);
            for (_, l) in &out.replies {
                assert_eq!(l.to_string(), "cmd=barrier_out rc=0\n");
            }
            assert_eq!(s.waiting_in_barrier(), 0);
        }
    }

    #[test]
    fn a_failed_job_ends_the_barrier_of_leaving_ranks_only() {
        let mut s = server(3);
        // Rank 1 finalizes (and says so), rank 2 waits in an ordinary barrier.
        assert_eq!(
            only_reply(s.handle(1, &req("cmd=oxmpi_finalizing unlinked=")), 1),
            "cmd=oxmpi_finalizing_result rc=0\n"
        );
        assert!(s.leaving(1) && !s.leaving(2) && !s.leaving(0));
        assert!(s.handle(1, &req("cmd=barrier_in")).replies.is_empty());
        assert!(s.handle(2, &req("cmd=barrier_in")).replies.is_empty());
        // Those not picked stay.
        assert!(s.release_leaving(|r| r == 0).is_empty());
        let out = s.release_leaving(|_| true);
        let lines: Vec<(usize, String)> = out.iter().map(|(r, l)| (*r, l.to_string())).collect();
        assert_eq!(
            lines,
            vec![(1, "cmd=barrier_out rc=-1 msg=job_failed\n".to_owned())]
        );
        assert!(!s.in_barrier(1) && s.in_barrier(2));
        assert_eq!(s.waiting_in_barrier(), 1);
        // Nothing more to release until a leaving rank enters again.
        assert!(s.release_leaving(|_| true).is_empty());
    }

    #[test]
    fn single_rank_barrier_completes_at_once() {
        let mut s = server(1);
        assert_eq!(
            only_reply(s.handle(0, &req("cmd=barrier_in")), 0),
            "cmd=barrier_out rc=0\n"
        );
    }

    #[test]
    fn finalize_abort_unknown() {
        let mut s = server(2);
        assert_eq!(
            only_reply(s.handle(1, &req("cmd=finalize")), 1),
            "cmd=finalize_ack rc=0\n"
        );
        assert!(s.finalized(1) && !s.finalized(0));
        let out = s.handle(0, &req("cmd=abort exitcode=7 msg=bad_input"));
        assert!(out.replies.is_empty());
        assert_eq!(
            out.abort,
            Some(Abort {
                rank: 0,
                code: 7,
                msg: Some("bad_input".into()),
                failed: false,
            })
        );
        let oxmpi = s.handle(0, &req("cmd=abort exitcode=101 oxmpi_failed=1"));
        assert!(oxmpi.abort.is_some_and(|a| a.failed && a.code == 101));
        let mpich = "cmd=abort exitcode=3 message=application called MPI_Abort(MPI_COMM_WORLD, 3) - process 1";
        assert_eq!(
            s.handle(1, &req(mpich)).abort,
            Some(Abort {
                rank: 1,
                code: 3,
                msg: Some("application called MPI_Abort(MPI_COMM_WORLD, 3) - process 1".into()),
                failed: false,
            })
        );
        let mut text = |line| s.handle(1, &req(line)).abort.unwrap().msg;
        assert_eq!(
            text("cmd=abort exitcode=3 message=gone"),
            Some("gone".into())
        );
        assert_eq!(text("cmd=abort exitcode=3 message= "), None);
        assert_eq!(text("cmd=abort exitcode=3"), None);
        assert_eq!(s.handle(1, &req("cmd=abort")).abort.unwrap().code, 1);
        assert_eq!(
            s.handle(1, &req("cmd=abort exitcode=x"))
                .abort
                .unwrap()
                .code,
            1
        );
        assert_eq!(
            only_reply(s.handle(1, &req("cmd=spawn nprocs=2")), 1),
            "cmd=spawn_result rc=-1 msg=unknown_command\n"
        );
    }

    #[test]
    fn a_blocked_rank_s_spell_and_what_it_has_pending() {
        let mut s = server(3);
        s.handle(
            1,
            &req("cmd=oxmpi_silent from=0 waits=3.0.7.0 idle=42 on=p*.*,r0.5,s2.1 on_more=9"),
        );
        assert_eq!(s.idle_spell(1), Some(42));
        assert_eq!(
            s.pending_of(1),
            "a probe for a message from any rank (any tag), a receive from rank 0 (tag 5), a send to rank 2 (tag 1), 9 more receives and sends, barrier #7 on context 3"
        );
        // At the end of a scope; said with every question, so one without it clears
        // it.
        s.handle(
            1,
            &req("cmd=oxmpi_silent from=0 idle=42 on=s2.1 scope_end=1"),
        );
        assert_eq!(
            s.pending_of(1),
            "a send to rank 2 (tag 1), at the end of an oxmpi::scope whose closure returned without waiting"
        );
        s.handle(1, &req("cmd=oxmpi_silent from=0 idle=43 on=s2.1"));
        assert_eq!(s.pending_of(1), "a send to rank 2 (tag 1)");
        s.handle(1, &req("cmd=oxmpi_silent from=0 idle=44 scope_end=1"));
        assert_eq!(
            s.pending_of(1),
            "at the end of an oxmpi::scope whose closure returned without waiting"
        );
        // Not blocked (no idle=): what it has pending is not named.
        s.handle(1, &req("cmd=oxmpi_silent from=0 on=r0.5"));
        assert_eq!(
            (s.idle_spell(1), s.pending_of(1).as_str()),
            (None, "none named")
        );
        // An answer with news (rank 2 finalized without a link to rank 1): not blocked.
        s.handle(2, &req("cmd=oxmpi_finalizing unlinked=1"));
        s.handle(1, &req("cmd=oxmpi_silent from=0 idle=43"));
        assert_eq!(s.idle_spell(1), None);
        s.handle(1, &req("cmd=oxmpi_silent from=0 idle=44"));
        assert_eq!(s.idle_spell(1), Some(44), "told before: no news");
    }

    #[test]
    fn a_finalizing_rank_says_whether_its_program_is_ending() {
        let mut s = server(2);
        s.handle(1, &req("cmd=oxmpi_silent from=0 waits=3.0.7.2"));
        assert!(s.waits_in_collective(1));
        s.handle(0, &req("cmd=oxmpi_finalizing unlinked="));
        s.handle(1, &req("cmd=oxmpi_finalizing unlinked= ending=1"));
        assert!(s.leaving(0) && !s.ending(0));
        assert!(s.leaving(1) && s.ending(1));
        // What it last said it waits in is over.
        assert!(!s.waits_in_collective(1));
    }

    #[test]
    fn finalizing_ranks_without_connections_are_reported_to_those_they_skipped() {
        let mut s = server(4);
        let ok = "cmd=oxmpi_finalizing_result rc=0\n";
        assert_eq!(
            only_reply(s.handle(3, &req("cmd=oxmpi_finalizing unlinked=0-1")), 3),
            ok
        );
        assert_eq!(
            only_reply(s.handle(2, &req("cmd=oxmpi_finalizing unlinked=0")), 2),
            ok
        );
        assert_eq!(
            only_reply(s.handle(2, &req("cmd=oxmpi_finalizing unlinked=1")), 2),
            ok
        );
        let silent =
            |s: &mut PmiServer, r: usize, line: &str| only_reply(s.handle(r, &req(line)), r);
        assert_eq!(
            silent(&mut s, 0, "cmd=oxmpi_silent"),
            "cmd=oxmpi_silent_result rc=0 ranks=2-3\n"
        );
        assert_eq!(
            silent(&mut s, 1, "cmd=oxmpi_silent from=3"),
            "cmd=oxmpi_silent_result rc=0 ranks=3\n"
        );
        assert_eq!(
            silent(&mut s, 3, "cmd=oxmpi_silent from=0"),
            "cmd=oxmpi_silent_result rc=0 ranks=\n"
        );
        for bad in [
            "cmd=oxmpi_finalizing unlinked=0",
            "cmd=oxmpi_finalizing unlinked=4",
            "cmd=oxmpi_finalizing unlinked=x",
        ] {
            assert!(silent(&mut s, 2, bad).contains("rc=-1"), "{bad}");
        }
        assert!(silent(&mut s, 0, "cmd=oxmpi_silent from=x").contains("rc=-1"));
    }

    #[test]
    fn ranks_in_different_collectives_under_one_name_are_told() {
        let mut s = server(4);
        let ask = |s: &mut PmiServer, r: usize, waits: &str| {
            only_reply(
                s.handle(r, &req(&format!("cmd=oxmpi_silent from=0{waits}"))),
                r,
            )
        };
        // Rank 0 waits in collective 7 of context 3, incarnation 1a, as code 2; rank 1
        // in the same collective; rank 2 in the same number of another incarnation
        // (a later communicator given the context): no clash.
        assert_eq!(
            ask(&mut s, 0, " waits=3.1a.7.2"),
            "cmd=oxmpi_silent_result rc=0 ranks=
"
        );
        assert_eq!(
            ask(&mut s, 1, " waits=3.1a.7.2,5.0.1.4"),
            "cmd=oxmpi_silent_result rc=0 ranks=
"
        );
        assert_eq!(
            ask(&mut s, 2, " waits=3.1b.7.9"),
            "cmd=oxmpi_silent_result rc=0 ranks=
"
        );
        // Rank 3 waits there as code 9: told of rank 0's, and rank 0 of its at the
        // next question.
        assert_eq!(
            ask(&mut s, 3, " waits=3.1a.7.9"),
            "cmd=oxmpi_silent_result rc=0 ranks= clash=0.3.1a.7.2\n"
        );
        assert_eq!(
            ask(&mut s, 0, " waits=3.1a.7.2"),
            "cmd=oxmpi_silent_result rc=0 ranks= clash=3.3.1a.7.9\n"
        );
        // A question without words (the rank waits in no collective now) forgets its
        // last ones; a malformed list counts as none.
        assert_eq!(ask(&mut s, 3, ""), "cmd=oxmpi_silent_result rc=0 ranks=\n");
        assert_eq!(
            ask(&mut s, 0, " waits=3.1a.7.2"),
            "cmd=oxmpi_silent_result rc=0 ranks=\n"
        );
        assert_eq!(
            ask(&mut s, 3, " waits=3.1a.7"),
            "cmd=oxmpi_silent_result rc=0 ranks=\n"
        );
        assert_eq!(
            ask(&mut s, 0, " waits=3.1a.7.2"),
            "cmd=oxmpi_silent_result rc=0 ranks=\n"
        );
    }

    #[test]
    fn ranks_that_ended_without_finalize_are_reported_as_lost() {
        let mut s = server(4);
        s.handle(3, &req("cmd=finalize"));
        s.ended(3);
        let ask =
            |s: &mut PmiServer, r: usize| only_reply(s.handle(r, &req("cmd=oxmpi_silent")), r);
        assert_eq!(ask(&mut s, 0), "cmd=oxmpi_silent_result rc=0 ranks=\n");
        s.ended(2);
        s.ended(1);
        s.ended(2);
        assert_eq!(
            ask(&mut s, 0),
            "cmd=oxmpi_silent_result rc=0 ranks= lost=2\n"
        );
        // A rank is not told of itself.
        assert_eq!(
            ask(&mut s, 2),
            "cmd=oxmpi_silent_result rc=0 ranks= lost=1\n"
        );
        // A rank that lost a peer says so, and gets no answer.
        assert!(!s.lost_a_peer(0));
        assert_eq!(
            s.handle(0, &req("cmd=oxmpi_lost peer=2")),
            Outcome::default()
        );
        assert!(s.lost_a_peer(0) && !s.lost_a_peer(1));
        assert_eq!((s.lost_peer(0), s.lost_peer(1)), (Some(2), None));
        // A peer that is no rank of the job is not kept.
        s.handle(1, &req("cmd=oxmpi_lost peer=9"));
        assert!(s.lost_a_peer(1) && s.lost_peer(1).is_none());
    }

    #[test]
    fn a_long_silent_list_goes_on_in_the_next_answer() {
        let n = 20_000;
        let mut s = server(n);
        for r in (1..n).step_by(2) {
            s.handle(r, &req("cmd=oxmpi_finalizing unlinked=0"));
        }
        let mut from = 0;
        let mut seen = Vec::new();
        loop {
            let out = s.handle(0, &req(&format!("cmd=oxmpi_silent from={from}")));
            let line = &out.replies[0].1;
            let ranges = rank_list::decode(line.get("ranks").unwrap(), n).unwrap();
            seen.extend(ranges.into_iter().flat_map(|(a, b)| a..=b));
            match line.get("next") {
                Some(next) => from = next.parse().unwrap(),
                None => break,
            }
        }
        assert_eq!(seen, (1..n).step_by(2).collect::<Vec<_>>());
    }

    #[test]
    fn kvs_budget_is_enforced() {
        let mut s = server(1);
        let value = "v".repeat(VALLEN_MAX);
        let mut refused = false;
        for i in 0..(KVS_BUDGET / VALLEN_MAX + 10) {
            let r = s.handle(
                0,
                &req(&format!(
                    "cmd=put kvsname=oxmpi_test key=k{i} value={value}"
                )),
            );
            if r.replies[0].1.get("rc") == Some("-1") {
                assert_eq!(r.replies[0].1.get("msg"), Some("kvs_full"));
                refused = true;
                break;
            }
        }
        assert!(refused);
        assert!(s.kvs_bytes <= KVS_BUDGET);
    }

    #[test]
    fn a_mapping_longer_than_a_value_is_not_offered() {
        let long = format!("(vector,{})", "(1,1,1),".repeat(200));
        let mut s = PmiServer::new(1, "oxmpi_test".into(), long);
        let r = s.handle(
            0,
            &req("cmd=get kvsname=oxmpi_test key=PMI_process_mapping"),
        );
        assert_eq!(r.replies[0].1.get("rc"), Some("-1"));
    }

    #[test]
    fn re_puts_count_against_the_budget_too() {
        let mut s = server(1);
        let put = |s: &mut PmiServer, i: usize, value: &str| {
            let r = s.handle(
                0,
                &req(&format!(
                    "cmd=put kvsname=oxmpi_test key=k{i} value={value}"
                )),
            );
            r.replies[0].1.get("rc") == Some("0")
        };
        // Keys with one-byte values, then each grown to the longest value: the budget
        // (entries counted too) stops the growth, not only new keys.
        let keys = KVS_BUDGET / (VALLEN_MAX / 2);
        let short = (0..keys).take_while(|&i| put(&mut s, i, "v")).count();
        assert_eq!(short, keys, "short values fit");
        let long = "v".repeat(VALLEN_MAX);
        let grown = (0..keys).take_while(|&i| put(&mut s, i, &long)).count();
        assert!(grown < keys, "every key grew past the budget");
        assert!(s.kvs_bytes <= KVS_BUDGET);
    }

    #[test]
    fn values_a_get_could_not_return_are_refused() {
        let mut s = server(1);
        for c in ['\t', '\r'] {
            let text = format!("cmd=put kvsname=oxmpi_test key=k value=a{c}b");
            let r = s.handle(0, &req(&text));
            assert_eq!(r.replies[0].1.get("rc"), Some("-1"), "{text:?}");
        }
        assert!(!s.kvs.contains_key("k"));
    }
}
