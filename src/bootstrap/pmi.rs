//! PMI-1 client over the socket the launcher passed in `PMI_FD`.
//!
//! Requests and replies alternate strictly (one outstanding request at a time), except
//! for the barrier, which may be entered and then polled without blocking so a rank in
//! finalize keeps draining its connections while it waits for the others.

use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::waits::{self, Wait};
use super::wire::{Line, MAX_LINE};
use super::{Silent, rank_list};
use crate::error::{Error, Result};

pub(crate) struct PmiClient {
    stream: UnixStream,
    pending: Vec<u8>,
    kvsname: String,
    /// The launcher is oxrun: its answer to `init` says `oxmpi=1`, so it takes
    /// oxrun's extensions (`oxmpi_*` commands).
    oxrun: bool,
}

fn fail(what: impl std::fmt::Display) -> Error {
    Error::Bootstrap(what.to_string())
}

impl PmiClient {
    /// Takes over `fd` and performs `cmd=init`, once per process: the descriptor is
    /// closed when the client goes, and its number may belong to another file by a
    /// second call.
    pub(crate) fn connect(fd: RawFd) -> Result<PmiClient> {
        static TAKEN: AtomicBool = AtomicBool::new(false);
        if TAKEN.swap(true, Ordering::Relaxed) {
            return Err(fail(format!(
                "PMI_FD={fd} was taken by an earlier init in this process; oxmpi can be initialized once"
            )));
        }
        // The fd must be an open socket: check before taking ownership of it.
        // SAFETY: fcntl(F_GETFD) only inspects the descriptor.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags < 0 {
            return Err(fail(format!("PMI_FD={fd} is not an open file descriptor")));
        }
        // SAFETY: `stat` is plain data, for which all-zero bytes are a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat fills `st` for an open descriptor (checked above).
        if unsafe { libc::fstat(fd, &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            return Err(fail(format!(
                "PMI_FD={fd} is not a socket (a program started by a rank inherits its launcher's variables, not its connection)"
            )));
        }
        // Programs this rank starts must not inherit the connection: one that uses
        // oxmpi would speak PMI on it as this rank.
        // SAFETY: fcntl(F_SETFD) only sets the descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
            return Err(fail(format!("PMI_FD={fd}: cannot mark it close-on-exec")));
        }
        // SAFETY: a socket the launcher handed this process for PMI (checked to be a
        // socket, and claimed once per process above), which nothing else in the
        // process uses; we become its only owner.
        let stream = unsafe { UnixStream::from_raw_fd(fd) };
        let mut c = PmiClient {
            stream,
            pending: Vec::new(),
            kvsname: String::new(),
            oxrun: false,
        };
        let mut init = Line::new("init");
        init.push("pmi_version", "1")
            .and_then(|l| l.push("pmi_subversion", "1"))
            .map_err(fail)?;
        let reply = c.call(&init, "response_to_init")?;
        if reply.get("rc") != Some("0") {
            return Err(fail(format!(
                "the launcher refused PMI version 1.1: {reply}"
            )));
        }
        c.oxrun = reply.get("oxmpi") == Some("1");
        let reply = c.call(&Line::new("get_my_kvsname"), "my_kvsname")?;
        c.kvsname = reply
            .get("kvsname")
            .ok_or_else(|| fail("my_kvsname reply without kvsname"))?
            .to_owned();
        Ok(c)
    }

    /// The job's key-value space name, as the launcher gave it.
    pub(crate) fn kvsname(&self) -> &str {
        &self.kvsname
    }

    /// Whether the launcher is oxrun, which takes the `oxmpi_*` commands (another
    /// launcher, say Hydra run from inside an oxrun rank, would not answer them even
    /// though the rank sees oxrun's `OXMPI_JOB_ID`).
    pub(crate) fn is_oxrun(&self) -> bool {
        self.oxrun
    }

    fn write_line(&mut self, line: &Line) -> Result<()> {
        self.stream
            .write_all(line.to_string().as_bytes())
            .map_err(|e| fail(format!("writing to the launcher failed: {e}")))
    }

    /// Reads one line; `None` if the socket is non-blocking and nothing is there yet.
    fn read_line(&mut self) -> Result<Option<Line>> {
        loop {
            if let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.pending.drain(..=nl).collect();
                let text = String::from_utf8(raw)
                    .map_err(|_| fail("the launcher sent a non-UTF-8 line"))?;
                return Line::parse(&text).map(Some).map_err(fail);
            }
            if self.pending.len() > MAX_LINE {
                return Err(fail("the launcher sent an over-long line"));
            }
            let mut chunk = [0u8; 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(fail("the launcher closed the PMI connection")),
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(fail(format!("reading from the launcher failed: {e}"))),
            }
        }
    }

    fn expect(&mut self, cmd: &str) -> Result<Line> {
        let line = self
            .read_line()?
            .ok_or_else(|| fail("no reply from the launcher"))?;
        if line.cmd() != cmd {
            return Err(fail(format!(
                "expected cmd={cmd} from the launcher, got {line}"
            )));
        }
        Ok(line)
    }

    fn call(&mut self, req: &Line, reply: &str) -> Result<Line> {
        self.write_line(req)?;
        self.expect(reply)
    }

    pub(crate) fn put(&mut self, key: &str, value: &str) -> Result<()> {
        let mut l = Line::new("put");
        l.push("kvsname", &self.kvsname.clone())
            .and_then(|l| l.push("key", key))
            .and_then(|l| l.push("value", value))
            .map_err(fail)?;
        let reply = self.call(&l, "put_result")?;
        match reply.get("rc") {
            Some("0") => Ok(()),
            _ => Err(fail(format!("put {key} failed: {reply}"))),
        }
    }

    /// The value of `key`, or `None` if nobody put it.
    pub(crate) fn get(&mut self, key: &str) -> Result<Option<String>> {
        let mut l = Line::new("get");
        l.push("kvsname", &self.kvsname.clone())
            .and_then(|l| l.push("key", key))
            .map_err(fail)?;
        let reply = self.call(&l, "get_result")?;
        match reply.get("rc") {
            Some("0") => Ok(Some(reply.get("value").unwrap_or("").to_owned())),
            _ => Ok(None),
        }
    }

    /// Enters the barrier; complete it with [`PmiClient::barrier_done`].
    pub(crate) fn barrier_enter(&mut self) -> Result<()> {
        self.write_line(&Line::new("barrier_in"))
    }

    /// Whether every rank has entered the barrier, waiting up to `timeout` for it
    /// (`None`: as long as it takes).
    pub(crate) fn barrier_done(&mut self, timeout: Option<Duration>) -> Result<bool> {
        let timeout = timeout.map(|t| t.max(Duration::from_micros(1)));
        self.stream
            .set_read_timeout(timeout)
            .map_err(|e| fail(format!("PMI socket: {e}")))?;
        let line = self.read_line();
        self.stream
            .set_read_timeout(None)
            .map_err(|e| fail(format!("PMI socket: {e}")))?;
        match line? {
            None => Ok(false),
            Some(l) if l.cmd() == "barrier_out" => match l.get("rc") {
                Some("0") | None => Ok(true),
                // oxrun's word for a job another rank has failed.
                _ if l.get("msg") == Some("job_failed") => Err(Error::JobFailed(
                    "another rank failed (the launcher's report names it), and the launcher \
                     ended this rank's finalize"
                        .into(),
                )),
                _ => Err(fail(format!(
                    "the launcher ended this rank's barrier unfinished ({}): the job failed",
                    l.get("msg").unwrap_or("no reason given")
                ))),
            },
            Some(l) => Err(fail(format!(
                "expected cmd=barrier_out from the launcher, got {l}"
            ))),
        }
    }

    /// Tells the launcher (oxrun's extension, `cmd=oxmpi_finalizing`) that this rank
    /// is finalizing and has no connection to the ranks `unlinked` (ascending): they
    /// get no goodbye from it; and whether its program is `ending` (`ending=1`: it
    /// dropped its `Universe` unfinalized, as a `main` returning an error does).
    /// Returns whether the launcher took it (another launcher answers that it does
    /// not know the command).
    pub(crate) fn finalizing(&mut self, unlinked: &[usize], ending: bool) -> Result<bool> {
        let mut rest = unlinked;
        loop {
            let (text, n) = rank_list::encode(rest);
            let mut l = Line::new("oxmpi_finalizing");
            l.push("unlinked", &text).map_err(fail)?;
            if ending {
                l.push("ending", "1").map_err(fail)?;
            }
            let reply = self.call(&l, "oxmpi_finalizing_result")?;
            if reply.get("rc") != Some("0") {
                return Ok(false);
            }
            rest = &rest[n..];
            if rest.is_empty() {
                return Ok(true);
            }
        }
    }

    /// The ranks that finalized without a connection to this one (they told the
    /// launcher with [`PmiClient::finalizing`]), a rank that ended without finalize,
    /// and a rank that waits in another collective under the name of one of `waits`;
    /// `None` if the launcher does not know the extension (`cmd=oxmpi_silent`).
    /// `idle`: the idle spell of a blocking wait with nothing on its way out, and the
    /// point-to-point operations it waits for.
    pub(crate) fn silent(
        &mut self,
        size: usize,
        waits: &[Wait],
        idle: Option<waits::Blocked>,
    ) -> Result<Option<Silent>> {
        let mut silent = Silent::default();
        let mut from = 0;
        loop {
            let mut l = Line::new("oxmpi_silent");
            l.push("from", &from.to_string()).map_err(fail)?;
            // The first line says what this rank waits in now (none: it waits in no
            // collective), and its answer whether another rank waits in another one.
            if from == 0 && !waits.is_empty() {
                l.push("waits", &waits::encode(waits)).map_err(fail)?;
            }
            // And, from a blocking wait with nothing on its way out, its idle spell and
            // what it waits for.
            if let Some(blocked) = idle.as_ref().filter(|_| from == 0) {
                let pending = &blocked.pending;
                l.push("idle", &blocked.spell.to_string()).map_err(fail)?;
                if !pending.is_empty() {
                    l.push("on", &waits::encode_pending(pending))
                        .map_err(fail)?;
                }
                let more = pending.len().saturating_sub(waits::MAX_PENDING);
                if more > 0 {
                    l.push("on_more", &more.to_string()).map_err(fail)?;
                }
                if blocked.scope_end {
                    l.push("scope_end", "1").map_err(fail)?;
                }
            }
            let reply = self.call(&l, "oxmpi_silent_result")?;
            if let Some(text) = reply.get("clash") {
                let clash = waits::Clash::decode(text)
                    .filter(|c| c.peer < size)
                    .ok_or_else(|| fail(format!("the launcher sent a bad clash: {reply}")))?;
                silent.clash = silent.clash.or(Some(clash));
            }
            if reply.get("rc") != Some("0") {
                return Ok(None);
            }
            let text = reply.get("ranks").unwrap_or("");
            let ranges = rank_list::decode(text, size)
                .ok_or_else(|| fail(format!("the launcher sent a malformed rank list: {reply}")))?;
            silent
                .finalized
                .extend(ranges.into_iter().flat_map(|(a, b)| a..=b));
            match reply.get("lost").map(str::parse::<usize>) {
                None => {}
                Some(Ok(lost)) if lost < size => silent.lost = silent.lost.or(Some(lost)),
                Some(_) => return Err(fail(format!("the launcher sent a bad lost rank: {reply}"))),
            }
            match reply.get("next").map(str::parse::<usize>) {
                None => return Ok(Some(silent)),
                Some(Ok(next)) if next > from && next < size => from = next,
                Some(_) => return Err(fail(format!("the launcher sent a bad next rank: {reply}"))),
            }
        }
    }

    pub(crate) fn finalize(&mut self) -> Result<()> {
        self.call(&Line::new("finalize"), "finalize_ack")
            .map(|_| ())
    }

    /// Tells the launcher that this rank lost `peer` (`cmd=oxmpi_lost`; the peer ended,
    /// or finalized while this rank needed it): if this rank ends now, the peer's end
    /// is the cause to report. Does not wait for an answer.
    pub(crate) fn lost(&mut self, peer: usize) {
        let mut l = Line::new("oxmpi_lost");
        let _ = l.push("peer", &peer.to_string());
        let _ = self.write_line(&l);
    }

    /// Asks the launcher to end the job with `code`; `failed` (oxrun's extension):
    /// not the program's abort but oxmpi's, on a failure it has reported itself
    /// (`oxmpi_failed=1`). Does not wait for an answer.
    pub(crate) fn abort(&mut self, code: i32, failed: bool) {
        let mut l = Line::new("abort");
        let _ = l.push("exitcode", &code.to_string());
        if failed {
            let _ = l.push("oxmpi_failed", "1");
        }
        let _ = self.write_line(&l);
    }
}
