//! `--node-netns`: simulated nodes in network namespaces of their own, so that ranks on
//! different nodes talk over a real link (a veth pair, a bridge) instead of loopback.
//!
//! Each entry names a namespace as `ip netns` does (a file under `/var/run/netns`, or
//! a path) and the address that node's ranks listen on. oxrun opens every namespace
//! before starting a rank; each rank enters its node's namespace between fork and exec
//! and gets the address as `OXMPI_HOST_ADDR`. Invariant: one entry per simulated node,
//! in node order; the files stay open until every rank has started.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;

/// Where `ip netns add NAME` puts a namespace.
const NETNS_DIR: &str = "/var/run/netns";

/// One simulated node's network namespace.
#[derive(Debug)]
pub struct NodeNet {
    /// The namespace as given (for messages).
    pub name: String,
    /// The address the node's ranks listen on, as text for `OXMPI_HOST_ADDR`.
    pub addr: String,
    file: File,
}

impl NodeNet {
    /// The open namespace file, for `setns` in the child.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// The namespaces of `--node-netns SPEC` (`NS=ADDR[,NS=ADDR...]`, e.g.
/// `oxa=10.77.0.1,oxb=10.77.0.2`), opened; `simulate_nodes`, when given, must count
/// as many. Every error names the entry or the namespace at fault.
pub fn for_nodes(spec: &str, simulate_nodes: Option<u32>) -> Result<Vec<NodeNet>, String> {
    let nodes = parse(spec)?;
    if let Some(k) = simulate_nodes.filter(|&k| k as usize != nodes.len()) {
        return Err(format!(
            "names {} namespaces for --simulate-nodes {k}",
            nodes.len()
        ));
    }
    open(nodes)
}

/// Parses the entries of a `--node-netns` value (the syntax only).
fn parse(spec: &str) -> Result<Vec<(String, IpAddr)>, String> {
    spec.split(',')
        .map(|entry| {
            let (name, addr) = entry
                .split_once('=')
                .ok_or_else(|| format!("'{entry}' is not NAMESPACE=ADDRESS"))?;
            if name.is_empty() {
                return Err(format!("'{entry}' names no namespace"));
            }
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("'{addr}' (in '{entry}') is not an IP address"))?;
            if addr.is_unspecified() {
                return Err(format!("'{entry}': ranks need an address to be reached at"));
            }
            Ok((name.to_owned(), addr))
        })
        .collect()
}

/// Opens every namespace of `nodes` (from [`parse`]).
fn open(nodes: Vec<(String, IpAddr)>) -> Result<Vec<NodeNet>, String> {
    nodes
        .into_iter()
        .map(|(name, addr)| {
            let path = if name.contains('/') {
                PathBuf::from(&name)
            } else {
                PathBuf::from(NETNS_DIR).join(&name)
            };
            let file = File::open(&path).map_err(|e| {
                format!(
                    "cannot open network namespace '{name}' ({}): {e}",
                    path.display()
                )
            })?;
            if !is_network_namespace(&file) {
                return Err(format!(
                    "'{name}' ({}) is not a network namespace",
                    path.display()
                ));
            }
            Ok(NodeNet {
                name,
                addr: addr.to_string(),
                file,
            })
        })
        .collect()
}

/// `NS_GET_NSTYPE` (linux/nsfs.h: `_IO(0xb7, 0x3)`): the type of a namespace file.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Whether `file` is a namespace file of a network namespace.
fn is_network_namespace(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: NS_GET_NSTYPE takes no argument; on any other file it fails cleanly.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
    kind == libc::CLONE_NEWNET
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_entries_are_named() {
        for (spec, says) in [
            ("a=10.0.0.1,b", "'b' is not NAMESPACE=ADDRESS"),
            ("=10.0.0.1", "names no namespace"),
            ("a=10.0.0", "'10.0.0' (in 'a=10.0.0') is not an IP address"),
            ("a=0.0.0.0", "need an address"),
        ] {
            let err = parse(spec).unwrap_err();
            assert!(err.contains(says), "{spec}: {err}");
        }
        assert_eq!(
            parse("a=::1").unwrap()[0].1,
            "::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_file_that_is_no_network_namespace_is_refused() {
        let err = open(parse("/etc/hostname=10.0.0.1").unwrap()).unwrap_err();
        assert!(err.contains("is not a network namespace"), "{err}");
        let err = open(parse("/proc/self/ns/uts=10.0.0.1").unwrap()).unwrap_err();
        assert!(err.contains("is not a network namespace"), "{err}");
        assert!(open(parse("/proc/self/ns/net=10.0.0.1").unwrap()).is_ok());
    }

    #[test]
    fn a_missing_namespace_is_named() {
        let err = open(parse("oxrun-no-such-namespace=10.0.0.1").unwrap()).unwrap_err();
        assert!(
            err.contains("oxrun-no-such-namespace") && err.contains(NETNS_DIR),
            "{err}"
        );
    }
}
