//! The environment contract between oxrun and a rank: which variables each rank gets,
//! and the per-job identity (id and secret) they carry.
//!
//! Invariant: launcher variables are set last, so neither oxrun's inherited
//! environment nor `-x` can override them; the job id and secret come from the
//! kernel's random source and are the same for every rank of one job.
//!
//! Ranks of an oversubscribed node also start with glibc's restartable sequences
//! off ([`without_rseq`]), unless the rank's `GLIBC_TUNABLES` (inherited or
//! exported) sets them either way.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::binding::Binding;
use crate::layout::Layout;

/// Inherited variables that belong to another launcher's PMI and would mislead a
/// client into dialling it instead of oxrun.
pub const REMOVED: [&str; 2] = ["PMI_PORT", "PMI_ID"];

/// The variables oxrun sets for every rank (after `-x` exports, which cannot
/// override them).
pub const SET_BY_OXRUN: [&str; 12] = [
    "PMI_FD",
    "PMI_RANK",
    "PMI_SIZE",
    "PMI_SPAWNED",
    "OXMPI_NODE_ID",
    "OXMPI_LOCAL_RANK",
    "OXMPI_LOCAL_SIZE",
    "OXMPI_OVERSUBSCRIBED",
    "OXMPI_BINDING",
    "OXMPI_JOB_ID",
    "OXMPI_JOB_SECRET",
    "OXMPI_HOST_ADDR",
];

/// glibc's tunable that registers each thread's restartable-sequences area with the
/// kernel (glibc 2.35 and later; older ones ignore it).
const RSEQ_TUNABLE: &[u8] = b"glibc.pthread.rseq=";

/// The `GLIBC_TUNABLES` of a rank that shares its core: `current` with restartable
/// sequences turned off, or `None` to leave it as it is, where it already sets them.
///
/// Ranks that share cores hand them over at every short collective, and the kernel
/// updates a thread's registered area each time it switches to it. On the 2-core
/// VM of the thirty-second session that was a tenth of a switch: an 8-rank barrier
/// took 0.91 of the time without, allreduce of 4 B 0.92, alltoall of 64 B blocks
/// 0.88 (10 interleaved rounds; 4 ranks, a switch per core and call, 0.97-0.98).
/// glibc's `sched_getcpu` then asks the vDSO (a system call on some architectures),
/// and libraries that use the area see it unregistered and do without, or register
/// their own. Whatever a rank starts inherits the setting.
pub fn without_rseq(current: Option<&OsStr>) -> Option<OsString> {
    let mut value = current.map_or_else(Vec::new, |v| v.as_bytes().to_vec());
    let sets_rseq = value
        .split(|&b| b == b':')
        .any(|t| t.starts_with(RSEQ_TUNABLE));
    if sets_rseq {
        return None;
    }
    if !value.is_empty() && !value.ends_with(b":") {
        value.push(b':');
    }
    value.extend_from_slice(RSEQ_TUNABLE);
    value.push(b'0');
    Some(OsString::from_vec(value))
}

/// What identifies one job to its ranks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobIdentity {
    /// `OXMPI_JOB_ID`: 16 hex digits.
    pub id: String,
    /// `OXMPI_JOB_SECRET`: 32 hex digits.
    pub secret: String,
}

impl JobIdentity {
    /// Draws a fresh id and secret.
    pub fn generate() -> io::Result<JobIdentity> {
        let mut bytes = [0u8; 24];
        fill_random(&mut bytes)?;
        Ok(JobIdentity {
            id: hex(&bytes[..8]),
            secret: hex(&bytes[8..]),
        })
    }

    /// The PMI key-value space name of the job.
    pub fn kvsname(&self) -> String {
        format!("oxmpi_{}", self.id)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a writable buffer of the length passed.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n > 0 {
            filled += n as usize;
            continue;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ENOSYS) => {
                return std::fs::File::open("/dev/urandom")?.read_exact(rest);
            }
            _ => return Err(err),
        }
    }
    Ok(())
}

/// Everything a rank needs to know about itself, besides oxrun's environment.
#[derive(Debug)]
pub struct RankInfo<'a> {
    /// Rank in the job.
    pub rank: usize,
    /// The job's placement of ranks.
    pub layout: &'a Layout,
    /// This rank's binding.
    pub binding: &'a Binding,
    /// Whether this node runs more ranks than it has cores.
    pub oversubscribed: bool,
    /// The job's identity.
    pub identity: &'a JobIdentity,
    /// The rank's end of its PMI socket, as numbered in the rank.
    pub pmi_fd: i32,
    /// Address this node's ranks listen on.
    pub host_addr: &'a str,
}

/// The variables oxrun sets for one rank, in the order they must be applied:
/// `-x` exports first, then `GLIBC_TUNABLES` where the node is oversubscribed
/// ([`without_rseq`], from the exported value or else oxrun's), launcher variables
/// last.
pub fn rank_env(
    info: &RankInfo<'_>,
    exports: &[(OsString, OsString)],
) -> Vec<(OsString, OsString)> {
    let tunables = info
        .oversubscribed
        .then(|| {
            let exported = exports.iter().rev().find(|(k, _)| k == "GLIBC_TUNABLES");
            match exported {
                Some((_, v)) => without_rseq(Some(v)),
                None => without_rseq(std::env::var_os("GLIBC_TUNABLES").as_deref()),
            }
        })
        .flatten()
        .map(|v| (OsString::from("GLIBC_TUNABLES"), v));
    let r = info.rank;
    let l = info.layout;
    // In the order of SET_BY_OXRUN.
    let values = [
        info.pmi_fd.to_string(),
        r.to_string(),
        l.size().to_string(),
        "0".to_owned(),
        l.node(r).to_string(),
        l.local_rank(r).to_string(),
        l.local_size(r).to_string(),
        u8::from(info.oversubscribed).to_string(),
        info.binding.env_value(),
        info.identity.id.clone(),
        info.identity.secret.clone(),
        info.host_addr.to_owned(),
    ];
    exports
        .iter()
        .cloned()
        .chain(tunables)
        .chain(
            SET_BY_OXRUN
                .into_iter()
                .zip(values)
                .map(|(k, v)| (k.into(), v.into())),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binding::Unbound;

    #[test]
    fn identity_shape() {
        let a = JobIdentity::generate().unwrap();
        let b = JobIdentity::generate().unwrap();
        assert_eq!(a.id.len(), 16);
        assert_eq!(a.secret.len(), 32);
        assert!(
            a.id.chars()
                .chain(a.secret.chars())
                .all(|c| c.is_ascii_hexdigit())
        );
        assert_ne!(a, b);
        assert_eq!(a.kvsname(), format!("oxmpi_{}", a.id));
    }

    /// The environment `rank_env` gives rank `rank` of a single node of `size`
    /// ranks, unbound, with `exports`.
    fn env_of(
        size: usize,
        rank: usize,
        oversubscribed: bool,
        exports: &[(OsString, OsString)],
    ) -> Vec<(OsString, OsString)> {
        let layout = Layout::single_node(size);
        let identity = JobIdentity {
            id: "0123456789abcdef".into(),
            secret: "s".repeat(32),
        };
        let binding = Binding::Unbound(Unbound::Requested);
        let info = RankInfo {
            rank,
            layout: &layout,
            binding: &binding,
            oversubscribed,
            identity: &identity,
            pmi_fd: 9,
            host_addr: "127.0.0.1",
        };
        rank_env(&info, exports)
    }

    /// The value `key` ends up with in `env` (the last setting wins).
    fn last(env: &[(OsString, OsString)], key: &str) -> Option<OsString> {
        env.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    #[test]
    fn launcher_variables_come_last() {
        let env = env_of(
            3,
            2,
            true,
            &[("PMI_RANK".into(), "7".into()), ("A".into(), "b".into())],
        );
        let last = |k: &str| last(&env, k);
        assert_eq!(last("PMI_RANK"), Some("2".into()));
        assert_eq!(last("A"), Some("b".into()));
        assert_eq!(last("PMI_FD"), Some("9".into()));
        assert_eq!(last("OXMPI_LOCAL_RANK"), Some("2".into()));
        assert_eq!(last("OXMPI_LOCAL_SIZE"), Some("3".into()));
        assert_eq!(last("OXMPI_OVERSUBSCRIBED"), Some("1".into()));
        assert_eq!(last("OXMPI_BINDING"), Some("none".into()));
        assert_eq!(last("OXMPI_NODE_ID"), Some("0".into()));
        assert_eq!(last("PMI_SPAWNED"), Some("0".into()));
        assert_eq!(
            last("GLIBC_TUNABLES"),
            without_rseq(std::env::var_os("GLIBC_TUNABLES").as_deref()),
            "oversubscribed: restartable sequences off unless oxrun's tunables set them"
        );
    }

    #[test]
    fn restartable_sequences_off_unless_the_tunables_set_them() {
        let off = |v: Option<&str>| without_rseq(v.map(OsStr::new));
        assert_eq!(off(None), Some("glibc.pthread.rseq=0".into()));
        assert_eq!(off(Some("")), Some("glibc.pthread.rseq=0".into()));
        assert_eq!(
            off(Some("glibc.malloc.check=3")),
            Some("glibc.malloc.check=3:glibc.pthread.rseq=0".into())
        );
        assert_eq!(
            off(Some("glibc.malloc.check=3:")),
            Some("glibc.malloc.check=3:glibc.pthread.rseq=0".into())
        );
        assert_eq!(off(Some("glibc.pthread.rseq=1")), None);
        assert_eq!(off(Some("glibc.malloc.check=3:glibc.pthread.rseq=0")), None);
        // Another tunable whose name merely contains the word is no setting of it.
        assert_eq!(
            off(Some("x.glibc.pthread.rseq=1")),
            Some("x.glibc.pthread.rseq=1:glibc.pthread.rseq=0".into())
        );
    }

    #[test]
    fn an_exported_setting_of_the_tunables_is_amended_or_kept() {
        let tunables = |oversubscribed, exported: &str| {
            let env = env_of(
                2,
                0,
                oversubscribed,
                &[("GLIBC_TUNABLES".into(), exported.into())],
            );
            last(&env, "GLIBC_TUNABLES")
        };
        assert_eq!(
            tunables(true, "glibc.malloc.check=3"),
            Some("glibc.malloc.check=3:glibc.pthread.rseq=0".into())
        );
        assert_eq!(
            tunables(true, "glibc.pthread.rseq=1"),
            Some("glibc.pthread.rseq=1".into())
        );
        assert_eq!(
            tunables(false, "glibc.malloc.check=3"),
            Some("glibc.malloc.check=3".into())
        );
    }
}
