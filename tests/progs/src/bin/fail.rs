//! A rank that fails: `fail exit R CODE` makes rank R exit with CODE after init,
//! `fail kill R` makes rank R kill itself with SIGKILL, `fail abort R CODE` makes it
//! call abort, `fail killearly R` kills rank R before it starts oxmpi (while the others
//! set up shared memory), `fail lateinit R` has rank R sleep a minute before it
//! starts oxmpi (the others wait in init, their node's segment created), `fail killinit R US` has rank R killed by a thread of its own
//! US microseconds after it calls init (anywhere in init or after it), `fail panic R` makes rank R panic (nothing in flight),
//! `fail panicscope R` makes rank R panic inside a scope with a receive in flight,
//! `fail catchop R` makes rank R catch the panic of a reduction operation and go on, `fail split OP` has every rank call collective OP with counts
//! that send rank 0 to the node's shared-memory area and the others to messages
//! (`fail split OP reversed`: the other way round; an allreduce, and from three ranks
//! a bcast, meets in the area at any count, so there the ranks disagree inside it),
//! `fail other A B N [nonblocking] [last]` has rank 0 (`last`: the last rank) call
//! collective A and the others B (blocking, or the nonblocking form waited for) on N
//! u32 elements,
//! `fail finalize R WAIT` makes rank R finalize at
//! once and `fail return R WAIT` makes its `main` return the error of a send to a rank
//! that does not exist, while the others wait for it: WAIT is `rank` (a receive from
//! R), `any` (from any source), `asleep` (from any source, but rank 0 sleeps
//! outside oxmpi instead), `anysub` (rank 0 from any source on a communicator
//! of rank 0 and R, the others from rank 0), `probe` (a probe for R's message), `barrier`,
//! `allreduce`, `ssend` (a synchronous send to R), `bigsend` (a 1 MiB send to R) or
//! `testloop` (a loop of tests of a receive from R). `fail quiet R WAIT` is `finalize`
//! without the collective every mode starts with, so R never exchanged a message with
//! anyone (over TCP it has no connection to tell the waiters on). `fail lost R WAIT`
//! kills rank R with SIGKILL while the others, in return-errors mode and ignoring
//! SIGTERM (so the launcher's teardown leaves them time), wait for it as WAIT says
//! (also `alltoall`, `dup`, `split` and `server`: rank 0 receives from any source
//! while the others keep sending to it): each must get `PeerLost`, print "rank X: lost
//! rank P" (R, or a survivor that exited before) and exit 1. `fail lost R WAIT exit`:
//! rank R exits 0 without finalize instead; `fail lost R WAIT END abort`: the
//! survivors call abort(1) instead of exiting.
//! `fail deadlock WHAT` deadlocks the job: `recvrecv` has ranks 0 and 1 each receive
//! from the other first (the rest wait in a barrier), `sendsend` has them each send
//! the other 1 MiB first (too long to go without its receive), `probeprobe` has rank 0
//! probe for a message from rank 1 (tag 5) and rank 1 for one from any rank (tag 7),
//! on a communicator of the world's ranks in reverse order, `vecvec` the same with
//! `recv_vec` (which probes to learn the length), `scope` has rank 0 start a 1 MiB
//! send to rank 1 (tag 5) in an `oxmpi::scope` whose closure then fails (a receive
//! from a rank out of range) while rank 1 receives from rank 0 (tag 6), `alltoallv`
//! has rank 0's counts expect a block from rank 1 that rank 1's send none of (every
//! rank then calls a barrier). `fail deadlock asleep` does not: rank 0 waits for rank 1, which sleeps
//! first, then sleeps itself (outside oxmpi) while the others wait for it.
//! `fail stuck R`: rank R sleeps while the others wait in a barrier.
//! `fail withdrawn R` (3 ranks, return-errors mode, SIGTERM ignored): rank 0 sends 1 MiB
//! to rank 1, which sees it arrive but does not receive it yet; rank R (2) dies, rank
//! 0's send fails, and rank 0 overwrites its buffer; only then does rank 1 receive,
//! and it prints what it got (it must not be the overwritten bytes).
//! Every rank first writes "PID JOB_ID" to DIR/pid.RANK (DIR:
//! the OXMPI_TEST_PIDDIR variable); the surviving ranks then block in a receive that
//! never completes, so the launcher must end them.

fn kill_self() -> ! {
    // SAFETY: kill(2) on our own pid; SIGKILL does not return.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    unreachable!("SIGKILL returned")
}

/// Collective `op` where rank 0's data (16 B) is within the shared-memory area's limit
/// for it (on 2 ranks, and for reduce, gather and scatter on more) and the others'
/// (40 000 B) is not, or if `reversed` the other way round (an allreduce has no such
/// limit: its ranks disagree inside the area).
fn split_paths(world: &oxmpi::Comm, op: &str, reversed: bool) -> oxmpi::Result<()> {
    let n = if (world.rank() == 0) != reversed {
        4
    } else {
        10_000
    };
    collective(world, op, n)
}

/// Blocking collective `op` on `n` u32 elements (per block for the gather, scatter
/// and alltoall family), rooted at rank 0.
fn collective(world: &oxmpi::Comm, op: &str, n: usize) -> oxmpi::Result<()> {
    let size = world.size() as usize;
    let sum = oxmpi::Op::Sum;
    match op {
        "allreduce" => world.allreduce(&vec![1u32; n], &mut vec![0; n], sum),
        "bcast" => world.bcast(&mut vec![0u32; n], 0),
        "reduce" => world.reduce(&vec![1u32; n], &mut vec![0; n], sum, 0),
        "gather" => world.gather(&vec![1u32; n], &mut vec![0; n * size], 0),
        "scatter" => world.scatter(&vec![1u32; n * size], &mut vec![0; n], 0),
        "allgather" => world.allgather(&vec![1u32; n], &mut vec![0; n * size]),
        "alltoall" => world.alltoall(&vec![1u32; n * size], &mut vec![0; n * size]),
        "barrier" => world.barrier(),
        _ => panic!("unknown collective {op}"),
    }
}

/// Rank `odd` calls collective `first` and the other ranks `second`, each on `n` u32
/// elements (per block for gather, scatter and alltoall), blocking or (`nonblocking`)
/// started and waited for; a rank whose collective returns (a bcast's root in the
/// node's area, say) then waits for a message nobody sends.
fn other_collectives(
    world: &oxmpi::Comm,
    (first, second): (&str, &str),
    n: usize,
    (nonblocking, odd): (bool, i32),
) -> oxmpi::Result<()> {
    let op = if world.rank() == odd { first } else { second };
    let (mut buf, mut out) = (vec![1u32; n], vec![0u32; n]);
    let sum = oxmpi::Op::Sum;
    if nonblocking {
        oxmpi::scope(|s| {
            let req = match op {
                "barrier" => world.ibarrier(s)?,
                "bcast" => world.ibcast(s, &mut buf, 0)?,
                "reduce" => world.ireduce(s, &buf, &mut out, sum, 0)?,
                "allreduce" => world.iallreduce(s, &buf, &mut out, sum)?,
                _ => panic!("no nonblocking {op} here"),
            };
            req.wait().map(drop)
        })?;
    } else {
        collective(world, op, n)?;
    }
    // Then it waits for a message that never comes, from a rank that is still there
    // (rank 0 from rank 1: a receive from itself alone would fail at once as a
    // deadlock, and the job could end with that, or with its finalize, before the
    // others found the mismatch).
    let from = if world.rank() == 0 { 1 } else { 0 };
    world.recv(&mut [0u8], from, 99).map(drop)
}

/// Rank `victim` finalizes early (or returns an error from a bad send); the others wait
/// for it as `wait` says, which must fail rather than hang.
fn wait_for_departed(
    universe: oxmpi::Universe,
    how: &str,
    victim: i32,
    wait: &str,
) -> oxmpi::Result<()> {
    let world = universe.world();
    // `anysub`: rank 0 and the victim share a communicator; rank 0 waits on it for a
    // message from any source, the others for a message from rank 0.
    let sub = if wait == "anysub" {
        let pair = world.rank() == 0 || world.rank() == victim;
        world.split(if pair { 0 } else { 1 }, 0)?
    } else {
        None
    };
    // In the modes where rank 0 waits for the victim together with a live rank, the
    // victim leaves once rank 0 is (all but) in that wait.
    let paired = matches!(wait, "sendrecv_to" | "sendrecv_from" | "waitall_from");
    if world.rank() == victim {
        if paired {
            world.recv(&mut [0u8], 0, 996)?;
        }
        if how == "return" {
            world.send(&[0u8], world.size() + 5, 0)?;
        }
        return universe.finalize();
    }
    let mut buf = vec![0u8; 1 << 20];
    match wait {
        "rank" => world.recv(&mut buf[..8], victim, 999).map(drop)?,
        // Rank 0 waits for the victim; the others finalize, and wait there.
        "bystanders" if world.rank() == 0 => world.recv(&mut buf[..8], victim, 999).map(drop)?,
        "bystanders" => {}
        "any" => world
            .recv(&mut buf[..8], oxmpi::ANY_SOURCE, 999)
            .map(drop)?,
        // Rank 0 sleeps outside oxmpi, the others wait for a message from any source.
        "asleep" if world.rank() == 0 => std::thread::sleep(std::time::Duration::from_secs(1000)),
        "asleep" => world
            .recv(&mut buf[..8], oxmpi::ANY_SOURCE, 999)
            .map(drop)?,
        "anysub" if world.rank() == 0 => {
            let sub = sub.expect("rank 0 is in the pair");
            sub.recv(&mut buf[..8], oxmpi::ANY_SOURCE, 999).map(drop)?
        }
        "anysub" => world.recv(&mut buf[..8], 0, 999).map(drop)?,
        "probe" => world.probe(victim, 999).map(drop)?,
        "barrier" => world.barrier()?,
        "allreduce" => world.allreduce(&[1u32; 3], &mut [0u32; 3], oxmpi::Op::Sum)?,
        "ssend" => world.ssend(&buf[..8], victim, 999)?,
        "bigsend" => world.send(&buf, victim, 999)?,
        "testloop" => oxmpi::scope(|s| -> oxmpi::Result<()> {
            let mut r = world.irecv(s, &mut buf[..8], victim, 999)?;
            while r.test()?.is_none() {}
            Ok(())
        })?,
        // Rank 0 sends a long message and receives in one call, one side to or from
        // the victim, the other to or from the third rank, which first waits for rank
        // 0 itself: the victim's side fails, and so must the call, whichever side
        // rank 0 waits for first.
        "sendrecv_to" | "sendrecv_from" | "waitall_from" => {
            let third = 3 - victim;
            if world.rank() == 0 {
                let (to, from) = if wait == "sendrecv_to" {
                    (victim, third)
                } else {
                    (third, victim)
                };
                let (out, into) = buf.split_at_mut(8);
                world.send(&[0u8], victim, 996)?;
                if wait == "waitall_from" {
                    oxmpi::scope(|s| -> oxmpi::Result<()> {
                        let sent = world.isend(s, into, to, 998)?;
                        let got = world.irecv(s, out, from, 998)?;
                        oxmpi::wait_all(vec![sent, got]).map(drop)
                    })?
                } else {
                    world.sendrecv(into, to, 998, out, from, 998).map(drop)?
                }
            } else {
                world.recv(&mut buf[..8], 0, 997).map(drop)?
            }
        }
        _ => panic!("unknown wait {wait}"),
    }
    universe.finalize()
}

/// The ranks deadlock as `what` says (or, `asleep`, only seem to: see the module
/// documentation).
fn deadlock(universe: oxmpi::Universe, what: &str) -> oxmpi::Result<()> {
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size() as usize);
    let nap = |secs: f64| std::thread::sleep(std::time::Duration::from_secs_f64(secs));
    match what {
        "recvrecv" if rank < 2 => world.recv(&mut [0u8; 4], 1 - rank, 5).map(drop)?,
        "recvrecv" => world.barrier()?,
        "sendsend" if rank < 2 => world.send(&vec![0u8; 1 << 20], 1 - rank, 5)?,
        "sendsend" => world.barrier()?,
        "probeprobe" | "vecvec" => {
            // On the world's ranks in reverse order: the report names world ranks.
            let rev = world.split(0, -rank)?.expect("colour 0");
            let one = size as i32 - 2;
            match (what, rank) {
                ("probeprobe", 0) => rev.probe(one, 5).map(drop)?,
                ("probeprobe", 1) => rev.probe(oxmpi::ANY_SOURCE, 7).map(drop)?,
                ("vecvec", 0) => rev.recv_vec::<u8>(one, 5).map(drop)?,
                ("vecvec", 1) => rev.recv_vec::<u8>(oxmpi::ANY_SOURCE, 7).map(drop)?,
                _ => world.barrier()?,
            }
        }
        "scope" if rank == 0 => {
            // The closure returns an error (a receive from a rank out of range) while
            // its send waits for a receive that rank 1 never posts: the scope waits.
            let long = vec![0u8; 1 << 20];
            oxmpi::scope(|s| -> oxmpi::Result<()> {
                let _sent = world.isend(s, &long, 1, 5)?;
                world.recv(&mut [0u8; 4], size as i32, 6)?;
                Ok(())
            })?
        }
        "scope" if rank == 1 => world.recv(&mut [0u8; 4], 0, 6).map(drop)?,
        "scope" => world.barrier()?,
        "alltoallv" => {
            // One u32 to every rank, except that rank 1 sends rank 0 nothing while
            // rank 0 expects one.
            let mut counts = vec![1usize; size];
            if rank == 1 {
                counts[0] = 0;
            }
            let displs: Vec<usize> = (0..size).collect();
            let mut recv = vec![0u32; size];
            world.alltoallv(
                &vec![rank as u32; size],
                &counts,
                &displs,
                &mut recv,
                &vec![1; size],
                &displs,
            )?;
            world.barrier()?
        }
        "asleep" => {
            // Rank 0 waits long enough to say it is blocked, and is then released;
            // its old word must not count once it sleeps and the others wait.
            if rank == 0 {
                world.recv(&mut [0u8], 1, 5)?;
                nap(3.0);
                for r in 1..size {
                    world.send(&[1u8], r as i32, 6)?;
                }
            } else {
                if rank == 1 {
                    nap(0.7);
                    world.send(&[1u8], 0, 5)?;
                }
                world.recv(&mut [0u8], 0, 6)?;
            }
        }
        _ => panic!("unknown deadlock {what}"),
    }
    universe.finalize()
}

/// Rank `victim` dies; the others wait for it as `wait` says and must be told.
fn wait_for_lost(
    universe: oxmpi::Universe,
    victim: i32,
    wait: &str,
    end: Option<&str>,
    give_up: Option<&str>,
) -> oxmpi::Result<()> {
    let world = universe.world();
    let rank = world.rank();
    // Return mode from the environment (OXMPI_ERRORS=return) where the test sets it,
    // else through the API.
    if std::env::var_os("OXMPI_ERRORS").is_none() {
        universe.set_error_mode(oxmpi::ErrorMode::Return)?;
    }
    // SAFETY: ignoring a signal installs no handler.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    // Everyone is ready for the failure before it comes (a survivor may still be
    // finishing this barrier when another one has learnt of the failure and exited).
    let ready = world.barrier();
    if rank == victim {
        match end {
            Some("exit") => std::process::exit(0),
            _ => kill_self(),
        }
    }
    let size = world.size() as usize;
    let mut buf = vec![0u8; 1 << 20];
    let got = ready.and_then(|()| match wait {
        "rank" => world.recv(&mut buf[..8], victim, 999).map(drop),
        "any" => world.recv(&mut buf[..8], oxmpi::ANY_SOURCE, 999).map(drop),
        "probe" => world.probe(victim, 999).map(drop),
        "barrier" => world.barrier(),
        "allreduce" => world.allreduce(&[1u32; 3], &mut [0u32; 3], oxmpi::Op::Sum),
        "alltoall" => world.alltoall(&vec![1u8; 4096 * size], &mut vec![0u8; 4096 * size]),
        "bigsend" => world.send(&buf, victim, 999),
        "testloop" => oxmpi::scope(|s| -> oxmpi::Result<()> {
            let mut r = world.irecv(s, &mut buf[..8], victim, 999)?;
            while r.test()?.is_none() {}
            Ok(())
        }),
        // Rank 0 receives from any source in a loop that the others keep busy: it never
        // goes idle, and must learn of the dead rank all the same.
        "server" if rank == 0 => loop {
            world.recv(&mut buf[..8], oxmpi::ANY_SOURCE, 5)?;
        },
        "server" => loop {
            world.send(&buf[..8], 0, 5)?;
        },
        "dup" => world.dup().map(drop),
        "split" => world.split(rank % 2, -rank).map(drop),
        _ => panic!("unknown wait {wait}"),
    });
    match got {
        // The victim, or a survivor that learnt of it first and exited.
        Err(oxmpi::Error::PeerLost { peer, .. }) if peer != rank => {
            println!("rank {rank}: lost rank {peer}");
            // Later calls fail at once too.
            assert!(matches!(world.barrier(), Err(oxmpi::Error::JobFailed(_))));
            // As a program that gives up on an error would: the launcher must still
            // name the victim, not this rank.
            if give_up == Some("abort") {
                world.abort(1)
            }
            std::process::exit(1)
        }
        other => panic!("rank {rank}: {wait} for lost rank {victim} gave {other:?}"),
    }
}

/// Waits, without calling oxmpi, until another rank created `DIR/name` (DIR:
/// OXMPI_TEST_PIDDIR).
fn wait_for_file(name: &str) {
    let dir = std::env::var("OXMPI_TEST_PIDDIR").expect("OXMPI_TEST_PIDDIR");
    let path = std::path::Path::new(&dir).join(name);
    while !path.exists() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Creates the empty file `DIR/name` (DIR: OXMPI_TEST_PIDDIR).
fn create_file(name: &str) {
    let dir = std::env::var("OXMPI_TEST_PIDDIR").expect("OXMPI_TEST_PIDDIR");
    std::fs::write(std::path::Path::new(&dir).join(name), b"").expect("a file");
}

/// `fail withdrawn R`: see the module documentation.
fn withdrawn(universe: oxmpi::Universe, victim: i32) -> oxmpi::Result<()> {
    universe.set_error_mode(oxmpi::ErrorMode::Return)?;
    // SAFETY: ignoring a signal installs no handler.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    let world = universe.world();
    let rank = world.rank();
    world.barrier()?;
    let mut buf = vec![0x5au8; 1 << 20];
    match rank {
        0 => {
            let sent = world.send(&buf, 1, 7);
            println!("rank 0: the send gave {sent:?}");
            // The buffer is the program's again: it writes other data there.
            buf.fill(0xee);
            create_file("overwritten");
            // Alive until rank 1 has tried to read it.
            wait_for_file("received");
        }
        1 => {
            while world.iprobe(0, 7)?.is_none() {}
            create_file("arrived");
            wait_for_file("overwritten");
            buf.fill(0);
            // Streamed, the message would wait for its broken sender for ever.
            if !oxmpi::large_receives().single_copy_permitted {
                println!("rank 1: no single copy here");
                create_file("received");
                std::process::exit(1)
            }
            match world.recv(&mut buf, 0, 7) {
                Ok(_) if buf.iter().all(|&b| b == 0x5a) => println!("rank 1: got the message"),
                Ok(_) => println!("rank 1: got the overwritten buffer"),
                Err(oxmpi::Error::PeerLost { peer, detail, .. }) => {
                    println!("rank 1: lost rank {peer}: {detail}")
                }
                Err(e) => println!("rank 1: {e}"),
            }
            create_file("received");
        }
        _ if rank == victim => {
            wait_for_file("arrived");
            kill_self()
        }
        _ => {}
    }
    std::process::exit(1)
}

fn main() -> oxmpi::Result<()> {
    let rank: i32 = std::env::var("PMI_RANK")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let args: Vec<String> = std::env::args().collect();
    let how = args.get(1).map(String::as_str).unwrap_or("exit");
    let victim: i32 = match how {
        "split" | "other" | "deadlock" => -1,
        _ => args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0),
    };
    let code: i32 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(3);
    if let Ok(dir) = std::env::var("OXMPI_TEST_PIDDIR") {
        let job = std::env::var("OXMPI_JOB_ID").unwrap_or_default();
        // Written whole or not at all: the launcher may kill us at any moment.
        let tmp = format!("{dir}/.pid.{rank}");
        std::fs::write(&tmp, format!("{} {job}", std::process::id())).expect("pid file");
        std::fs::rename(&tmp, format!("{dir}/pid.{rank}")).expect("pid file");
    }
    if how == "killearly" && rank == victim {
        kill_self();
    }
    if how == "envapart" && rank == victim {
        // The victim alone sets a shared-memory variable (args 3 and 4) otherwise.
        // SAFETY: no other thread runs yet that could read the environment.
        unsafe { std::env::set_var(&args[3], &args[4]) };
    }
    if how == "lateinit" && rank == victim {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
    if how == "killinit" && rank == victim {
        let delay = std::time::Duration::from_micros(code as u64);
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            kill_self()
        });
    }
    let universe = oxmpi::init()?;
    let world = universe.world();
    // Every rank is up before anyone fails.
    if how != "quiet" {
        world.dup()?;
    }
    if how == "stuck" {
        // Rank R never comes to the barrier the others wait in.
        if rank == victim {
            std::thread::sleep(std::time::Duration::from_secs(1000));
        }
        world.barrier()?;
        return universe.finalize();
    }
    if how == "split" {
        let flag = |f: &str| args[3..].iter().any(|a| a == f);
        split_paths(&world, &args[2], flag("reversed"))?;
    }
    if how == "other" {
        let n = args[4].parse().expect("a count");
        let flag = |word: &str| args[5..].iter().any(|a| a == word);
        let odd = if flag("last") { world.size() - 1 } else { 0 };
        other_collectives(&world, (&args[2], &args[3]), n, (flag("nonblocking"), odd))?;
    }
    if how == "deadlock" {
        return deadlock(universe, &args[2]);
    }
    if how == "withdrawn" {
        return withdrawn(universe, victim);
    }
    if how == "lost" {
        let arg = |i: usize| args.get(i).map(String::as_str);
        return wait_for_lost(universe, victim, &args[3], arg(4), arg(5));
    }
    if matches!(how, "finalize" | "return" | "quiet") {
        return wait_for_departed(universe, how, victim, &args[3]);
    }
    if how == "catchop" {
        // A reduction operation that panics on rank R inside an allreduce, caught by
        // the program there, which then carries on as if nothing happened.
        let boom = oxmpi::Op::commutative(move |input: &[u32], inout: &mut [u32]| {
            assert!(rank != victim, "deliberate panic in an operation");
            inout[0] += input[0];
        });
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            world.allreduce(&[1u32], &mut [0u32], boom)
        }));
        assert_eq!(caught.is_err(), rank == victim);
        world.barrier()?;
        return universe.finalize();
    }
    if rank == victim {
        match how {
            "exit" => std::process::exit(code),
            "kill" => kill_self(),
            // Killed by its thread (in the receive below, when init was quicker).
            "killinit" => {}
            "abort" => world.abort(code),
            "panic" => panic!("deliberate panic"),
            "panicscope" => {
                let mut never = [0u8; 8];
                oxmpi::scope(|s| {
                    let _r = world.irecv(s, &mut never, oxmpi::ANY_SOURCE, 998);
                    panic!("deliberate panic with a receive in flight");
                })
            }
            _ => panic!("unknown mode {how}"),
        }
    }
    let mut never = [0u8];
    world.recv(&mut never, oxmpi::ANY_SOURCE, 999)?;
    universe.finalize()
}
