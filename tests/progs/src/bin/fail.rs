//! A rank that fails: `fail exit R CODE` makes rank R exit with CODE after init,
//! `fail kill R` makes rank R kill itself with SIGKILL, `fail abort R CODE` makes it
//! call abort, `fail killearly R` kills rank R before it starts oxmpi (while the others
//! set up shared memory), `fail panicscope R` makes rank R panic inside a scope with a
//! receive in flight. Every rank first writes "PID JOB_ID" to DIR/pid.RANK (DIR:
//! the OXMPI_TEST_PIDDIR variable); the surviving ranks then block in a receive that
//! never completes, so the launcher must end them.

fn kill_self() -> ! {
    // SAFETY: kill(2) on our own pid; SIGKILL does not return.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    unreachable!("SIGKILL returned")
}

fn main() -> oxmpi::Result<()> {
    let rank: i32 = std::env::var("PMI_RANK")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let args: Vec<String> = std::env::args().collect();
    let how = args.get(1).map(String::as_str).unwrap_or("exit");
    let victim: i32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0);
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
    let universe = oxmpi::init()?;
    let world = universe.world();
    // Every rank is up before anyone fails.
    world.dup()?;
    if rank == victim {
        match how {
            "exit" => std::process::exit(code),
            "kill" => kill_self(),
            "abort" => world.abort(code),
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
