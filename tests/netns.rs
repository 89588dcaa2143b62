//! Simulated nodes in network namespaces of their own (`oxrun --node-netns`), linked
//! by a veth pair: ranks on different nodes talk over a real link (MTU 1500) instead
//! of loopback. Needs root and `ip` (iproute2, which ci/setup installs); elsewhere the
//! tests that need the namespaces say so and pass.

mod common;

use std::process::Command;

use common::Job;

/// Two namespaces joined by a veth pair, removed on drop.
struct Link {
    names: [String; 2],
    addrs: [String; 2],
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Link {
    /// Creates the pair (`tag` tells apart the tests running at once), or says why
    /// it cannot: where no namespace can be made (not root, no `ip`, a container
    /// without the right); once one could, anything else failing fails the test.
    fn create(tag: u32) -> Option<Link> {
        let pid = std::process::id();
        let names = [format!("oxt{pid}-{tag}a"), format!("oxt{pid}-{tag}b")];
        let net = format!("10.{}.{}", 200 + tag, pid % 250);
        let addrs = [format!("{net}.1"), format!("{net}.2")];
        let [a, b] = &names;
        let (va, vb) = (format!("v{pid}-{tag}a"), format!("v{pid}-{tag}b"));
        if !ip(&["netns", "add", a]) {
            eprintln!("not run: cannot make a network namespace here (needs root and ip)");
            return None;
        }
        // From here on, drop removes what was made.
        let link = Link {
            names: names.clone(),
            addrs,
        };
        let ok = ip(&["netns", "add", b])
            && ip(&[
                "link", "add", &va, "netns", a, "type", "veth", "peer", "name", &vb, "netns", b,
            ])
            && ip(&[
                "-n",
                a,
                "addr",
                "add",
                &format!("{}/24", link.addrs[0]),
                "dev",
                &va,
            ])
            && ip(&[
                "-n",
                b,
                "addr",
                "add",
                &format!("{}/24", link.addrs[1]),
                "dev",
                &vb,
            ])
            && [(a, &va), (b, &vb)].iter().all(|(ns, dev)| {
                ip(&["-n", ns, "link", "set", dev, "up"])
                    && ip(&["-n", ns, "link", "set", "lo", "up"])
            });
        assert!(ok, "setting up namespaces {a} and {b} failed");
        Some(link)
    }

    /// The `--node-netns` value.
    fn flag(&self) -> String {
        format!(
            "{}={},{}={}",
            self.names[0], self.addrs[0], self.names[1], self.addrs[1]
        )
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Removing a namespace removes its end of the pair, and so the pair.
        for ns in &self.names {
            if std::path::Path::new("/run/netns").join(ns).exists() {
                ip(&["netns", "del", ns]);
            }
        }
    }
}

#[test]
fn ranks_on_namespaced_nodes_exchange_over_the_link() {
    let Some(link) = Link::create(1) else { return };
    let flag = link.flag();
    // Shared memory within a node, TCP over the veth pair between them; then TCP
    // everywhere (within a node over the namespace's own loopback).
    for (prog, args, n, expect) in [
        ("p2p_allpairs", &[][..], 4, "allpairs ok on 4 ranks"),
        ("p2p_order", &[], 3, "order ok on 3 ranks"),
        ("shm_stress", &[], 4, "stress ok on 4 ranks"),
        ("coll_data", &["bcast", "alltoall"], 5, "ok bcast alltoall"),
        ("coll_stress", &["300", "5"], 5, "coll stress ok on 5 ranks"),
    ] {
        for tcp in [false, true] {
            let mut job = Job::new(n, prog)
                .launcher(&["--node-netns", &flag])
                .args(args);
            if tcp {
                job = job.env("OXMPI_TRANSPORT", "tcp");
            }
            let out = job.success();
            assert!(
                out.contains(expect),
                "{prog} on {n} ranks (tcp: {tcp}): {out}"
            );
        }
    }
}

#[test]
fn each_node_listens_on_its_own_address_inside_its_namespace() {
    let Some(link) = Link::create(2) else { return };
    common::build();
    // Not an oxmpi program: each rank reports what oxrun gave it and what interfaces
    // it sees.
    let report = "echo \"rank $PMI_RANK node $OXMPI_NODE_ID addr $OXMPI_HOST_ADDR sees \
                  $(ip -o -4 addr show | grep -o '10\\.[0-9.]*/24')\"";
    let out = Command::new(common::bin_dir().join("oxrun"))
        .args(["--timeout", "60", "--node-netns", &link.flag(), "-n", "4"])
        .args(["sh", "-c", report])
        .output()
        .expect("oxrun");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (rank, node) in [(0, 0), (1, 0), (2, 1), (3, 1)] {
        let addr = &link.addrs[node];
        let want = format!("rank {rank} node {node} addr {addr} sees {addr}/24");
        assert!(stdout.contains(&want), "{want:?} not in {stdout}");
    }
}

#[test]
fn bad_node_namespaces_are_clear_errors() {
    common::build();
    let oxrun = common::bin_dir().join("oxrun");
    let hello = common::program("examples/hello");
    for (flags, says) in [
        (
            vec!["--node-netns", "oxrun-no-such-ns=10.9.9.1"],
            "cannot open network namespace 'oxrun-no-such-ns'",
        ),
        (
            vec!["--node-netns", "a=10.9.9.1,b"],
            "'b' is not NAMESPACE=ADDRESS",
        ),
        (
            vec!["--node-netns", "a=not-an-ip"],
            "'not-an-ip' (in 'a=not-an-ip') is not an IP address",
        ),
        (
            vec![
                "--simulate-nodes",
                "3",
                "--node-netns",
                "a=10.9.9.1,b=10.9.9.2",
            ],
            "names 2 namespaces for --simulate-nodes 3",
        ),
    ] {
        let out = Command::new(&oxrun)
            .args(&flags)
            .args(["-n", "2"])
            .arg(&hello)
            .output()
            .expect("oxrun");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(says), "{flags:?}: {err}");
    }
}
