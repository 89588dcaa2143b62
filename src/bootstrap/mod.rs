//! Bootstrap: how a rank learns who it is and finds its peers.
//!
//! Under a launcher (oxrun, or MPICH's Hydra) the rank speaks PMI-1 over `PMI_FD`;
//! without one it is a singleton, rank 0 of 1. Node locality comes from the launcher
//! (`PMI_process_mapping`, every rank's node), never from comparing host names. The per-job secret comes from `OXMPI_JOB_SECRET`, or is made by rank 0
//! and shared through the key-value space when the launcher does not provide one.
//!
//! oxrun extends PMI-1 with two commands for finalize: a rank about to finalize says
//! so and names the ranks it has no connection to (`cmd=oxmpi_finalizing
//! unlinked=RANKS`: they get no goodbye from it, see `engine::finalized`; should the
//! job fail, oxrun ends its finalize fence with `barrier_out rc=-1` instead of killing
//! it), and a rank that has waited long asks
//! which ranks finalized without a connection to it (`cmd=oxmpi_silent from=RANK`,
//! answered with `ranks=RANKS` and, when the list goes on, `next=RANK`; and with
//! `lost=RANK` once some other rank has ended without finalize; its first line also
//! says which collectives the rank waits in, `waits=WORDS`, answered with
//! `clash=PEER.WORD` when another rank waits in a different one under the name of one
//! of them, see [`waits`]; and, from a blocking wait with nothing of the rank's on its
//! way to a peer, its idle spell, `idle=SPELL`, a number that changes whenever the
//! rank moves, and what it has pending, `on=WORDS` (see [`waits::Pending`]), with
//! `scope_end=1` where it waits at the end of an `oxmpi::scope` for what the scope's
//! closure left in flight: oxrun ends a job whose every rank stays blocked, see
//! `launcher/src/deadlock.rs`); and a rank that lost a peer in return-errors mode says
//! so (`cmd=oxmpi_lost peer=RANK`, no answer), so that its own end, which may follow at
//! once, is not taken for the cause. oxmpi's
//! own abort on a failure it reported itself (a panic, a lost peer) carries
//! `oxmpi_failed=1`, so that oxrun does not report it as the program's. RANKS as in
//! [`rank_list`]. A rank uses them only under oxrun (its answer to `init` carries
//! `oxmpi=1`), and stops when the launcher answers `rc` other than 0.

mod pmi;
pub mod rank_list;
pub mod waits;
pub mod wire;

use std::collections::HashMap;

use crate::error::{Error, Result};
use pmi::PmiClient;

/// The launcher's answer about peers that will never send this rank anything.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Silent {
    /// Ranks that finalized without a connection to this one.
    pub finalized: Vec<usize>,
    /// A rank that ended without finalize (the first the launcher saw).
    pub lost: Option<usize>,
    /// A rank that waits in another collective under the name of one this rank said
    /// it waits in.
    pub clash: Option<waits::Clash>,
}

/// What this process knows about the job.
pub(crate) struct Bootstrap {
    pub rank: usize,
    pub size: usize,
    /// Node id of every rank.
    pub nodes: Vec<u32>,
    /// The launcher says ranks outnumber cores on this node.
    pub oversubscribed: bool,
    /// Per-job random id (names shared-memory segments).
    pub job_id: String,
    pmi: Option<PmiClient>,
    /// Whether the launcher takes oxrun's finalize extension.
    extension: bool,
    /// A singleton's own key-value space.
    local_kvs: HashMap<String, String>,
}

fn env_usize(var: &str) -> Result<Option<usize>> {
    match std::env::var(var) {
        Err(_) => Ok(None),
        Ok(v) => v
            .parse()
            .map(Some)
            .map_err(|_| Error::Bootstrap(format!("{var}={v:?} is not a non-negative integer"))),
    }
}

/// Parses PMI's `(vector,(first_node,node_count,ranks_per_node),...)` into a node id
/// per rank. As in MPICH, whose Hydra sends `(vector,(0,1,1))` for any number of
/// ranks on one host, the blocks repeat from the first until every rank has a node,
/// and ranks beyond `size` are ignored.
pub(crate) fn parse_process_mapping(text: &str, size: usize) -> Option<Vec<u32>> {
    let body = text.trim().strip_prefix("(vector,")?.strip_suffix(')')?;
    let mut blocks = Vec::new();
    for block in body
        .split("),")
        .map(|b| b.trim_matches(|c| c == '(' || c == ')' || c == ','))
    {
        let nums: Vec<u32> = block
            .split(',')
            .map(|n| n.trim().parse().ok())
            .collect::<Option<_>>()?;
        let [first, count, per_node] = nums[..] else {
            return None;
        };
        blocks.push((first, first.checked_add(count)?, per_node));
    }
    // Blocks that place no rank are left out (one of 4 billion empty nodes took each
    // pass as many steps), and without any other a pass would repeat forever.
    blocks.retain(|&(first, end, per_node)| first != end && per_node != 0);
    if blocks.is_empty() {
        return None;
    }
    let mut nodes = Vec::with_capacity(size);
    for &(first, end, per_node) in blocks.iter().cycle() {
        for node in first..end {
            for _ in 0..per_node {
                if nodes.len() == size {
                    return Some(nodes);
                }
                nodes.push(node);
            }
        }
    }
    unreachable!("the blocks cycle until every rank has a node")
}

/// Fills `buf` with random bytes from the kernel, or where it gives none (extremely
/// unlikely) with bytes drawn from the time and the process id, still different for
/// every job.
pub(crate) fn random_bytes(buf: &mut [u8]) {
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == buf.len() as isize {
        return;
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut seed = t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 40);
    for chunk in buf.chunks_mut(8) {
        // splitmix64: distinct seeds give distinct outputs.
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    random_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes 32 hex digits into the 16-byte job secret.
pub(crate) fn parse_secret(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// `text` as a part of a shared-memory name: letters, digits, `-` and `_` (others
/// become `_`), at most 64 of them.
fn name_part(text: &str) -> String {
    text.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether the node of `rank` holds more of the job's ranks (`nodes`: each rank's
/// node) than `cpus`.
fn more_local_ranks_than(nodes: &[u32], rank: usize, cpus: usize) -> bool {
    nodes.iter().filter(|&&n| n == nodes[rank]).count() > cpus
}

/// The most ranks a job may have (per-rank tables are built at start-up).
const MAX_RANKS: usize = 1 << 20;

impl Bootstrap {
    /// Connects to the launcher named by the environment, or becomes a singleton.
    pub(crate) fn from_env() -> Result<Bootstrap> {
        let Some(fd) = env_usize("PMI_FD")? else {
            return Ok(Bootstrap {
                rank: 0,
                size: 1,
                nodes: vec![0],
                oversubscribed: false,
                job_id: random_hex(8),
                pmi: None,
                extension: false,
                local_kvs: HashMap::new(),
            });
        };
        let rank = env_usize("PMI_RANK")?
            .ok_or_else(|| Error::Bootstrap("PMI_FD is set but PMI_RANK is not".into()))?;
        let size = env_usize("PMI_SIZE")?
            .ok_or_else(|| Error::Bootstrap("PMI_FD is set but PMI_SIZE is not".into()))?;
        if size == 0 || rank >= size {
            return Err(Error::Bootstrap(format!(
                "PMI_RANK={rank} does not fit PMI_SIZE={size}"
            )));
        }
        if size > MAX_RANKS {
            return Err(Error::Bootstrap(format!(
                "PMI_SIZE={size} is more ranks than oxmpi supports ({MAX_RANKS})"
            )));
        }
        let fd = i32::try_from(fd)
            .map_err(|_| Error::Bootstrap(format!("PMI_FD={fd} is out of range")))?;
        let mut pmi = PmiClient::connect(fd)?;
        let nodes = match pmi.get("PMI_process_mapping")? {
            Some(m) => parse_process_mapping(&m, size),
            None => None,
        }
        // Without a usable map, treat every rank as remote: slower, never wrong.
        .unwrap_or_else(|| (0..size as u32).collect());
        // oxrun's variables count only under oxrun: a launcher started from inside an
        // oxrun rank passes them on to its own ranks. Elsewhere the key-value space's
        // name, the same for every rank of a job, names it, and the node counts as
        // oversubscribed when it has more of the job's ranks than this rank may use
        // CPUs.
        let extension = pmi.is_oxrun();
        let job_id = std::env::var("OXMPI_JOB_ID")
            .ok()
            .filter(|_| extension)
            .unwrap_or_else(|| name_part(pmi.kvsname()));
        let oversubscribed = if extension {
            match crate::settings::text("OXMPI_OVERSUBSCRIBED")?.as_deref() {
                None | Some("0") => false,
                Some("1") => true,
                Some(other) => {
                    let expected = "0 or 1 (oxrun sets it)";
                    return Err(Error::config("OXMPI_OVERSUBSCRIBED", other, expected));
                }
            }
        } else {
            let cpus = std::thread::available_parallelism().map_or(1, usize::from);
            more_local_ranks_than(&nodes, rank, cpus)
        };
        Ok(Bootstrap {
            rank,
            size,
            nodes,
            oversubscribed,
            job_id,
            pmi: Some(pmi),
            extension,
            local_kvs: HashMap::new(),
        })
    }

    /// Publishes `key` = `value` for the other ranks (visible after [`Bootstrap::fence`]).
    pub(crate) fn put(&mut self, key: &str, value: &str) -> Result<()> {
        match self.pmi.as_mut() {
            Some(p) => p.put(key, value),
            None => {
                self.local_kvs.insert(key.into(), value.into());
                Ok(())
            }
        }
    }

    /// Waits until every rank has reached the fence (and so put its keys).
    pub(crate) fn fence(&mut self) -> Result<()> {
        if let Some(p) = self.pmi.as_mut() {
            p.barrier_enter()?;
            p.barrier_done(None)?;
        }
        Ok(())
    }

    /// Enters a fence without waiting; poll with [`Bootstrap::fence_poll`].
    pub(crate) fn fence_enter(&mut self) -> Result<()> {
        match self.pmi.as_mut() {
            Some(p) => p.barrier_enter(),
            None => Ok(()),
        }
    }

    /// Whether the fence entered with [`Bootstrap::fence_enter`] is complete, waiting
    /// up to `timeout` for it.
    pub(crate) fn fence_poll(&mut self, timeout: std::time::Duration) -> Result<bool> {
        match self.pmi.as_mut() {
            Some(p) => p.barrier_done(Some(timeout)),
            None => Ok(true),
        }
    }

    /// The value another rank put under `key`.
    pub(crate) fn get(&mut self, key: &str) -> Result<String> {
        let v = match self.pmi.as_mut() {
            Some(p) => p.get(key)?,
            None => self.local_kvs.get(key).cloned(),
        };
        v.ok_or_else(|| Error::Bootstrap(format!("no rank published {key}")))
    }

    /// The per-job secret that TCP peers prove they know. Collective: call it on every
    /// rank at the same point, before the fence that follows the address exchange.
    pub(crate) fn secret_before_fence(&mut self) -> Result<Option<[u8; 16]>> {
        // oxrun hands every rank the secret; under another launcher (even one started
        // from an oxrun rank, whose variable its ranks on this node would inherit and
        // those on other nodes not) rank 0 makes one.
        if self.extension
            && let Ok(hex) = std::env::var("OXMPI_JOB_SECRET")
        {
            return parse_secret(&hex)
                .map(Some)
                .ok_or_else(|| Error::config("OXMPI_JOB_SECRET", hex, "32 hexadecimal digits"));
        }
        if self.rank == 0 {
            let hex = random_hex(16);
            self.put("oxmpi-secret", &hex)?;
            return Ok(parse_secret(&hex));
        }
        Ok(None)
    }

    /// Completes [`Bootstrap::secret_before_fence`] after the fence.
    pub(crate) fn secret_after_fence(&mut self, early: Option<[u8; 16]>) -> Result<[u8; 16]> {
        if let Some(s) = early {
            return Ok(s);
        }
        let hex = self.get("oxmpi-secret")?;
        parse_secret(&hex)
            .ok_or_else(|| Error::Bootstrap("rank 0 published a malformed job secret".into()))
    }

    /// Tells the launcher this rank finished cleanly.
    pub(crate) fn finalize(&mut self) -> Result<()> {
        match self.pmi.as_mut() {
            Some(p) => p.finalize(),
            None => Ok(()),
        }
    }

    /// Tells the launcher that this rank is finalizing without a connection to the
    /// ranks `unlinked` (ascending), if it takes the extension.
    pub(crate) fn announce_finalizing(&mut self, unlinked: &[usize], ending: bool) -> Result<()> {
        if let Some(p) = self.pmi.as_mut().filter(|_| self.extension) {
            self.extension = p.finalizing(unlinked, ending)?;
        }
        Ok(())
    }

    /// The ranks that finalized without a connection to this one, a rank that ended
    /// without finalize, and a rank in another collective under the name of one of
    /// `waits` (the collectives this rank waits in), as far as the launcher knows;
    /// `None` if it cannot tell (no launcher, or one without the extension). `idle`:
    /// what a blocking wait with nothing on its way out says of itself, which the
    /// launcher uses to tell and report a deadlocked job.
    pub(crate) fn silent_peers(
        &mut self,
        waits: &[waits::Wait],
        idle: Option<waits::Blocked>,
    ) -> Result<Option<Silent>> {
        let Some(p) = self.pmi.as_mut().filter(|_| self.extension) else {
            return Ok(None);
        };
        let silent = p.silent(self.size, waits, idle)?;
        self.extension = silent.is_some();
        Ok(silent)
    }

    /// Whether the launcher can say which ranks finalized without a connection to
    /// this one ([`Bootstrap::silent_peers`]).
    pub(crate) fn tells_silent_peers(&self) -> bool {
        self.pmi.is_some() && self.extension
    }

    /// Whether a launcher started this process (else it is a singleton).
    pub(crate) fn has_launcher(&self) -> bool {
        self.pmi.is_some()
    }

    /// Tells the launcher (oxrun) that this rank lost `peer` (it ended, or finalized
    /// while this rank needed it), so that it reports the peer's end rather than this
    /// rank's as the job's failure.
    pub(crate) fn report_lost(&mut self, peer: usize) {
        if let Some(p) = self.pmi.as_mut().filter(|_| self.extension) {
            p.lost(peer);
        }
    }

    /// Asks the launcher to end the whole job with `code`; `failed`: on a failure
    /// oxmpi reported itself (a panic, a lost peer), not the program's own abort.
    pub(crate) fn abort(&mut self, code: i32, failed: bool) {
        if let Some(p) = self.pmi.as_mut() {
            p.abort(code, failed && self.extension);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kvsname_becomes_a_safe_name_part() {
        assert_eq!(name_part("kvs_4242_0"), "kvs_4242_0");
        assert_eq!(name_part("a/b c"), "a_b_c");
        assert_eq!(name_part(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn a_node_is_oversubscribed_with_more_of_its_ranks_than_cpus() {
        let nodes = [0, 0, 0, 1, 1];
        assert!(more_local_ranks_than(&nodes, 1, 2));
        assert!(!more_local_ranks_than(&nodes, 1, 3));
        assert!(
            !more_local_ranks_than(&nodes, 4, 2),
            "node 1 holds two ranks"
        );
        assert!(!more_local_ranks_than(&[0], 0, 1));
    }

    #[test]
    fn process_mapping_forms() {
        assert_eq!(
            parse_process_mapping("(vector,(0,1,4))", 4),
            Some(vec![0, 0, 0, 0])
        );
        assert_eq!(
            parse_process_mapping("(vector,(0,2,2))", 4),
            Some(vec![0, 0, 1, 1])
        );
        assert_eq!(
            parse_process_mapping("(vector,(0,2,2),(2,1,1))", 5),
            Some(vec![0, 0, 1, 1, 2])
        );
        // Repeated (MPICH's Hydra on one host) and cut short.
        assert_eq!(
            parse_process_mapping("(vector,(0,1,1))", 4),
            Some(vec![0, 0, 0, 0])
        );
        assert_eq!(
            parse_process_mapping("(vector,(0,2,1))", 5),
            Some(vec![0, 1, 0, 1, 0])
        );
        assert_eq!(
            parse_process_mapping("(vector,(0,1,4))", 3),
            Some(vec![0, 0, 0])
        );
        assert_eq!(parse_process_mapping("(vector,(0,0,4))", 3), None);
        assert_eq!(parse_process_mapping("(vector,(0,2,0))", 3), None);
        // An empty block of 4 billion nodes beside one that places ranks: left out (a
        // debug build took seconds walking it on every pass).
        assert_eq!(
            parse_process_mapping("(vector,(0,4294967295,0),(7,1,1))", 3),
            Some(vec![7, 7, 7])
        );
        assert_eq!(parse_process_mapping("garbage", 1), None);
        assert_eq!(parse_process_mapping("(vector,(0,x,1))", 1), None);
    }

    #[test]
    fn secrets() {
        assert_eq!(
            parse_secret("000102030405060708090a0b0c0d0e0f").unwrap()[15],
            15
        );
        assert!(parse_secret("xyz").is_none());
        assert_eq!(random_hex(16).len(), 32);
        assert!(parse_secret(&random_hex(16)).is_some());
    }
}
