//! The congestion control of oxmpi's TCP connections (`OXMPI_TCP_CONGESTION`).
//!
//! BBR, the system's choice on some machines, paces what it sends and keeps its
//! window near twice the product of the bandwidth and the shortest round trip it saw.
//! Between ranks that round trip is a few microseconds, and `ss -ti` of a 1 MiB
//! ping-pong over loopback showed windows of 14-24 segments of 64 KiB: a message of
//! 1 MiB or more waited for acknowledgements on its way. With cubic (the kernel's own
//! default), the same binary, interleaved: latency of 1-4 MiB in 0.63-0.67 of the
//! time, reno 0.62-0.68, 128-512 KiB 0.83-0.98; windows of 64 messages of 256 KiB-1 MiB
//! 1.21-1.32x the MB/s with cubic, 1.08-1.49x with reno; in the VM's slow minutes,
//! when copies set the time, no change (docs/benchmarks.md, thirty-ninth session).
//! So by default a rank whose system uses BBR moves its connections to cubic, or to
//! reno where this process may not choose cubic
//! (`net.ipv4.tcp_allowed_congestion_control` lists what an unprivileged process may;
//! reno is always there); any other choice of the system's stays.
//!
//! The rank sets the algorithm on its listener, whose accepted connections inherit
//! it, and [`Tcp`](super::Tcp) sets the same on the connections it opens; where the
//! system's choice stays, neither is touched (a route's own choice, `ip route ...
//! congctl`, then holds both ways).

use socket2::SockRef;

use crate::error::{Error, Result};
use crate::settings;

/// The variable.
const VAR: &str = "OXMPI_TCP_CONGESTION";
/// What the variable accepts, for errors.
const EXPECTED: &str = "auto, system, or a congestion control this process may use (a name of 1-15 printable ASCII characters)";
/// Longest name the kernel takes (`TCP_CA_NAME_MAX` less its NUL).
const NAME_MAX: usize = 15;

/// Which congestion control the connections use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Congestion {
    /// Cubic, or reno, instead of BBR; the system's choice otherwise.
    Auto,
    /// The system's choice.
    System,
    /// This algorithm (checked with the kernel when read).
    Named(String),
}

impl Congestion {
    /// From `OXMPI_TCP_CONGESTION` (unset: [`Congestion::Auto`]). A name is tried on
    /// a socket of its own at once (of `host`'s family, the rank's listening
    /// address), so one the kernel refuses is an error from `init` whichever
    /// transports the job uses.
    pub(crate) fn from_env(host: std::net::IpAddr) -> Result<Congestion> {
        let choice = parse(settings::text(VAR)?)?;
        if let Congestion::Named(name) = &choice {
            let domain = socket2::Domain::for_address(std::net::SocketAddr::new(host, 0));
            let probe = socket2::Socket::new(domain, socket2::Type::STREAM, None)
                .map_err(|e| Error::io("opening a socket to check OXMPI_TCP_CONGESTION", e))?;
            probe
                .set_tcp_congestion(name.as_bytes())
                .map_err(|e| refused(name, &e))?;
        }
        Ok(choice)
    }

    /// Sets the algorithm on `listener`, whose accepted connections inherit it, and
    /// returns it (`None`: the system's choice stays), for the connections the rank
    /// opens.
    pub(crate) fn apply(&self, listener: &std::net::TcpListener) -> Result<Option<Vec<u8>>> {
        let socket = SockRef::from(listener);
        match self {
            Congestion::System => Ok(None),
            Congestion::Named(name) => socket
                .set_tcp_congestion(name.as_bytes())
                .map(|()| Some(name.as_bytes().to_vec()))
                .map_err(|e| refused(name, &e)),
            Congestion::Auto => {
                if !algorithm(&socket).is_some_and(|a| a.starts_with(b"bbr")) {
                    return Ok(None);
                }
                // The first the kernel lets this process use; BBR stays if neither.
                Ok([&b"cubic"[..], b"reno"]
                    .into_iter()
                    .find(|instead| socket.set_tcp_congestion(instead).is_ok())
                    .map(<[u8]>::to_vec))
            }
        }
    }
}

/// The congestion control of `socket`, if the kernel says.
pub(crate) fn algorithm(socket: &SockRef<'_>) -> Option<Vec<u8>> {
    let mut name = socket.tcp_congestion().ok()?;
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    name.truncate(end);
    Some(name)
}

/// The setting from the variable's value.
fn parse(value: Option<String>) -> Result<Congestion> {
    let Some(value) = value else {
        return Ok(Congestion::Auto);
    };
    match value.as_str() {
        "auto" => Ok(Congestion::Auto),
        "system" => Ok(Congestion::System),
        name if !name.is_empty()
            && name.len() <= NAME_MAX
            && name.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Congestion::Named(name.to_owned()))
        }
        _ => Err(Error::config(VAR, value, EXPECTED)),
    }
}

/// The error for a name the kernel refused, with the names it offers.
fn refused(name: &str, e: &std::io::Error) -> Error {
    let list = |what: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/tcp_{what}_congestion_control"))
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into())
    };
    Error::config(
        VAR,
        name,
        format!(
            "{EXPECTED} (the kernel refused it: {e}; available: {}; allowed without privilege: {})",
            list("available"),
            list("allowed")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> std::net::TcpListener {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap()
    }

    /// The algorithm of a connection `listener` accepts.
    fn accepted(listener: &std::net::TcpListener) -> Vec<u8> {
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, _) = listener.accept().unwrap();
        algorithm(&SockRef::from(&stream)).unwrap()
    }

    #[test]
    fn the_variable_s_values() {
        let some = |v: &str| parse(Some(v.into()));
        assert_eq!(parse(None).unwrap(), Congestion::Auto);
        assert_eq!(some("auto").unwrap(), Congestion::Auto);
        assert_eq!(some("system").unwrap(), Congestion::System);
        assert_eq!(some("reno").unwrap(), Congestion::Named("reno".into()));
        for bad in ["", "two words", "a-name-much-too-long", "tab\t"] {
            let e = some(bad).unwrap_err().to_string();
            assert!(
                e.contains(VAR) && e.contains("auto, system"),
                "{bad:?}: {e}"
            );
        }
    }

    /// Reno is always available and allowed: accepted connections inherit it, and
    /// the rank's own connections are told to take it.
    #[test]
    fn a_named_algorithm_is_what_accepted_connections_use() {
        let l = listener();
        let chosen = Congestion::Named("reno".into()).apply(&l).unwrap();
        assert_eq!(chosen.as_deref(), Some(&b"reno"[..]));
        assert_eq!(accepted(&l), b"reno");
    }

    #[test]
    fn an_algorithm_the_kernel_refuses_is_an_error_naming_the_variable() {
        let e = Congestion::Named("no-such-cc".into())
            .apply(&listener())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(VAR) && e.contains("no-such-cc") && e.contains("reno"),
            "{e}"
        );
    }

    /// By default BBR gives way to cubic or reno; any other choice stays, and so does
    /// everything with `system`: then nothing is set on the rank's own connections.
    #[test]
    fn by_default_bbr_gives_way() {
        let l = listener();
        if SockRef::from(&l).set_tcp_congestion(b"bbr").is_ok() {
            let chosen = Congestion::Auto.apply(&l).unwrap().expect("reno at least");
            assert!(chosen == b"cubic" || chosen == b"reno", "{chosen:?}");
            assert_eq!(accepted(&l), chosen);
            let kept = listener();
            SockRef::from(&kept).set_tcp_congestion(b"bbr").unwrap();
            assert_eq!(Congestion::System.apply(&kept).unwrap(), None);
            assert_eq!(accepted(&kept), b"bbr");
        } else {
            eprintln!("this kernel has no bbr: only the other choices are tested");
        }
        let reno = listener();
        SockRef::from(&reno).set_tcp_congestion(b"reno").unwrap();
        assert_eq!(Congestion::Auto.apply(&reno).unwrap(), None);
        assert_eq!(accepted(&reno), b"reno");
    }
}
