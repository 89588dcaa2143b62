//! oxmpi under a launcher other than oxrun. This test is the launcher: a minimal PMI-1
//! server, as MPICH's Hydra speaks it (no oxmpi extensions in its answer to `init`,
//! and `PMI_process_mapping` in its compact form, which repeats its blocks:
//! `(vector,(0,1,1))` for every rank on one host). The ranks run `comm_split`, whose
//! `split_shared` check compares the node oxmpi found for each rank with the one the
//! test names in `OXMPI_NODE_ID`.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// The key-value space and the barrier the ranks share.
#[derive(Default)]
struct Kvs {
    values: HashMap<String, String>,
    arrived: usize,
    generation: u64,
}

/// One job of the fake launcher.
struct Job {
    size: usize,
    /// Unique, as Hydra's (`kvs_PID_...`): oxmpi names its segments after it.
    kvsname: String,
    mapping: String,
    kvs: (Mutex<Kvs>, Condvar),
}

/// `cmd=X k=v ...` as its words.
fn fields(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

/// Answers one rank's PMI lines until it closes its end.
fn serve(stream: UnixStream, job: &Job) {
    let (size, kvs) = (job.size, &job.kvs);
    let mut out = stream.try_clone().expect("clone PMI socket");
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let f = fields(&line);
        let reply = match f.get("cmd").copied().unwrap_or("") {
            "init" => "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0".to_owned(),
            "get_my_kvsname" => format!("cmd=my_kvsname kvsname={} rc=0", job.kvsname),
            "get" if f.get("key") == Some(&"PMI_process_mapping") => {
                format!("cmd=get_result rc=0 msg=success value={}", job.mapping)
            }
            "get" => {
                let values = &kvs.0.lock().unwrap().values;
                match values.get(f.get("key").copied().unwrap_or("")) {
                    Some(v) => format!("cmd=get_result rc=0 msg=success value={v}"),
                    None => "cmd=get_result rc=-1 msg=key_not_found".to_owned(),
                }
            }
            "put" => {
                let (k, v) = (f.get("key").copied(), f.get("value").copied());
                let mut state = kvs.0.lock().unwrap();
                state
                    .values
                    .insert(k.unwrap_or("").into(), v.unwrap_or("").into());
                "cmd=put_result rc=0 msg=success".to_owned()
            }
            "barrier_in" => {
                let mut state = kvs.0.lock().unwrap();
                let generation = state.generation;
                state.arrived += 1;
                if state.arrived == size {
                    state.arrived = 0;
                    state.generation += 1;
                    kvs.1.notify_all();
                } else {
                    while state.generation == generation {
                        state = kvs.1.wait(state).unwrap();
                    }
                }
                "cmd=barrier_out rc=0".to_owned()
            }
            "finalize" => "cmd=finalize_ack rc=0".to_owned(),
            other => panic!("the fake launcher does not know cmd={other} ({line})"),
        };
        if out.write_all(format!("{reply}\n").as_bytes()).is_err() {
            return;
        }
    }
}

/// A job of `size` ranks for the fake launcher, with `mapping`.
fn new_job(size: usize, mapping: &str) -> Arc<Job> {
    static JOBS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = JOBS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Arc::new(Job {
        size,
        kvsname: format!("kvs_{}_{n}_fake", std::process::id()),
        mapping: mapping.to_owned(),
        kvs: (Mutex::new(Kvs::default()), Condvar::new()),
    })
}

/// Starts rank `rank` of `job` running `comm_split`, told it is on node `node`, and
/// the thread that answers its PMI lines.
fn start_rank(job: &Arc<Job>, rank: usize, node: usize) -> (Child, JoinHandle<()>) {
    let (ours, theirs) = UnixStream::pair().expect("socket pair");
    let fd = theirs.as_raw_fd();
    let mut cmd = Command::new(common::program("comm_split"));
    cmd.env("PMI_FD", "3")
        .env("PMI_RANK", rank.to_string())
        .env("PMI_SIZE", job.size.to_string())
        .env("OXMPI_NODE_ID", node.to_string())
        .stdout(Stdio::piped());
    // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl) on a
    // descriptor this process owns.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("start a rank");
    drop(theirs);
    let job = Arc::clone(job);
    (child, std::thread::spawn(move || serve(ours, &job)))
}

/// Starts `size` ranks of `comm_split` under the fake launcher with `mapping`, rank
/// `r` told it is on node `node(r)`; returns rank 0's output once all succeeded.
fn run(size: usize, mapping: &str, node: impl Fn(usize) -> usize) -> String {
    common::build();
    let job = new_job(size, mapping);
    let (children, servers): (Vec<Child>, Vec<_>) = (0..size)
        .map(|rank| start_rank(&job, rank, node(rank)))
        .unzip();
    let start = Instant::now();
    let mut outputs = Vec::new();
    for mut child in children {
        while child.try_wait().expect("wait").is_none() {
            if start.elapsed() > Duration::from_secs(u64::from(common::HANG_GUARD_SECS)) {
                let _ = child.kill();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let out = child.wait_with_output().expect("rank output");
        assert!(out.status.success(), "a rank failed: {out:?}");
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    for s in servers {
        s.join().expect("PMI server thread");
    }
    let left: Vec<_> = std::fs::read_dir("/dev/shm")
        .expect("/dev/shm")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(&job.kvsname))
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "the job left {left:?} in /dev/shm");
    outputs.swap_remove(0)
}

#[test]
fn one_host_in_hydras_compact_mapping_is_one_node() {
    let out = run(3, "(vector,(0,1,1))", |_| 0);
    assert!(out.contains("split ok on 3 ranks"), "{out}");
}

#[test]
fn mapping_blocks_repeat_over_several_nodes() {
    // Two nodes taking ranks in turn (0,1,0,1,0), and two blocks of two.
    let out = run(5, "(vector,(0,2,1))", |r| r % 2);
    assert!(out.contains("split ok on 5 ranks"), "{out}");
    let out = run(4, "(vector,(0,2,2))", |r| r / 2);
    assert!(out.contains("split ok on 4 ranks"), "{out}");
}

#[test]
fn a_segment_left_by_a_rank_killed_in_init_goes_with_a_later_job() {
    common::build();
    // Rank 0 of a 2-rank job creates its node's segment before the fence, where it
    // waits for rank 1, which never starts; killed there, it leaves the segment in
    // /dev/shm (this launcher cleans nothing). Its PMI thread stays in the barrier.
    let job = new_job(2, "(vector,(0,1,2))");
    let (mut child, _server) = start_rank(&job, 0, 0);
    let path = Path::new("/dev/shm").join(format!("oxmpi-{}-n0", job.kvsname));
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(u64::from(common::HANG_GUARD_SECS)),
            "rank 0 never created {path:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("kill rank 0");
    child.wait().expect("reap rank 0");
    assert!(path.exists(), "the killed job's segment is left behind");
    // A later job on the node removes it once it is old enough: made so here.
    let age = Duration::from_secs(120);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(SystemTime::now() - age))
        .expect("age the segment");
    let out = run(2, "(vector,(0,1,2))", |_| 0);
    assert!(out.contains("split ok on 2 ranks"), "{out}");
    let left = path.exists();
    let _ = std::fs::remove_file(&path);
    assert!(!left, "a later job left the stale segment {path:?}");
}
