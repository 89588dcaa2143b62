//! `--node-netns`: simulated nodes in network namespaces of their own, so that ranks on
//! different nodes talk over a real link (a veth pair, a bridge) instead of loopback.
//!
//! Each entry names a namespace as `ip netns` does (a file under `/var/run/netns`, or
//! a path) and the address that node's ranks listen on. oxrun opens every namespace
//! before starting a rank; each rank enters its node's namespace between fork and exec
//! and gets the address as `OXMPI_HOST_ADDR`. Invariants: one entry per simulated node,
//! in node order; the files stay open until every rank has started; opening one never
//! blocks (a FIFO or a device named by mistake is refused, not waited on).

use std::fs::{File, OpenOptions};
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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
            // A name is shown with the file it stands for; a path as it is.
            let (path, shown) = if name.contains('/') {
                (PathBuf::from(&name), format!("'{name}'"))
            } else {
                let path = PathBuf::from(NETNS_DIR).join(&name);
                let shown = format!("'{name}' ({})", path.display());
                (path, shown)
            };
            let file = match open_file(&path) {
                Ok(Ok(file)) => file,
                Ok(Err(kind)) => {
                    return Err(format!("{shown} is not a network namespace but {kind}"));
                }
                Err(e) => return Err(format!("cannot open network namespace {shown}: {e}")),
            };
            if !is_network_namespace(&file) {
                return Err(format!("{shown} is not a network namespace"));
            }
            Ok(NodeNet {
                name,
                addr: addr.to_string(),
                file,
            })
        })
        .collect()
}

/// Opens `path` for reading if it is a regular file, which a namespace file is (under
/// `/var/run/netns` or `/proc/PID/ns`); anything else comes back as what it is
/// ("a FIFO", "a directory", ...) without being opened, or, should it have been
/// swapped for one in between, opened without blocking and closed again.
fn open_file(path: &Path) -> io::Result<Result<File, &'static str>> {
    if let Some(kind) = not_a_file(&std::fs::metadata(path)?) {
        return Ok(Err(kind));
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    Ok(match not_a_file(&file.metadata()?) {
        Some(kind) => Err(kind),
        None => Ok(file),
    })
}

/// What `meta` describes when it is not a regular file.
fn not_a_file(meta: &std::fs::Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() || t.is_block_device() {
        Some("a device")
    } else {
        Some("something else")
    }
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
    fn a_fifo_a_device_or_a_directory_is_refused_without_opening_it() {
        let dir = std::env::temp_dir().join(format!("oxrun-netns-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo only reads the NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for (path, kind) in [
            (fifo.to_str().unwrap(), "a FIFO"),
            ("/dev/null", "a device"),
            (dir.to_str().unwrap(), "a directory"),
        ] {
            let err = open(parse(&format!("{path}=10.0.0.1")).unwrap()).unwrap_err();
            assert!(
                err.contains(&format!("is not a network namespace but {kind}")),
                "{err}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
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
