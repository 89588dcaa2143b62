//! The environment contract between oxrun and a rank: which variables each rank gets,
//! and the per-job identity (id and secret) they carry.
//!
//! Invariant: launcher variables are set last, so neither oxrun's inherited
//! environment nor `-x` can override them; the job id and secret come from the
//! kernel's random source and are the same for every rank of one job.

use std::ffi::OsString;
use std::io::{self, Read};

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
/// `-x` exports first, launcher variables last.
pub fn rank_env(
    info: &RankInfo<'_>,
    exports: &[(OsString, OsString)],
) -> Vec<(OsString, OsString)> {
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

    #[test]
    fn launcher_variables_come_last() {
        let layout = Layout::single_node(3);
        let id = JobIdentity {
            id: "0123456789abcdef".into(),
            secret: "s".repeat(32),
        };
        let binding = Binding::Unbound(Unbound::Requested);
        let info = RankInfo {
            rank: 2,
            layout: &layout,
            binding: &binding,
            oversubscribed: true,
            identity: &id,
            pmi_fd: 9,
            host_addr: "127.0.0.1",
        };
        let env = rank_env(
            &info,
            &[("PMI_RANK".into(), "7".into()), ("A".into(), "b".into())],
        );
        let last = |k: &str| {
            env.iter()
                .rev()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(last("PMI_RANK"), Some("2".into()));
        assert_eq!(last("A"), Some("b".into()));
        assert_eq!(last("PMI_FD"), Some("9".into()));
        assert_eq!(last("OXMPI_LOCAL_RANK"), Some("2".into()));
        assert_eq!(last("OXMPI_LOCAL_SIZE"), Some("3".into()));
        assert_eq!(last("OXMPI_OVERSUBSCRIBED"), Some("1".into()));
        assert_eq!(last("OXMPI_BINDING"), Some("none".into()));
        assert_eq!(last("OXMPI_NODE_ID"), Some("0".into()));
        assert_eq!(last("PMI_SPAWNED"), Some("0".into()));
    }
}
