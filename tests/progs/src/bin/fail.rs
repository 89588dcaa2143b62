//! A rank that fails: `fail exit R CODE` makes rank R exit with CODE after init,
//! `fail kill R` makes rank R kill itself with SIGKILL, `fail abort R CODE` makes it
//! call abort. Every rank first writes its pid to DIR/pid.RANK (DIR = argument 4 or
//! the OXMPI_TEST_PIDDIR variable), then the others block in a receive that never
//! completes, so the launcher must end them.

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let rank = world.rank();
    let args: Vec<String> = std::env::args().collect();
    let how = args.get(1).map(String::as_str).unwrap_or("exit");
    let victim: i32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0);
    let code: i32 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(3);
    if let Ok(dir) = std::env::var("OXMPI_TEST_PIDDIR") {
        std::fs::write(format!("{dir}/pid.{rank}"), std::process::id().to_string())
            .expect("writing pid file");
    }
    // Everyone has written its pid before anyone fails.
    world.dup()?;
    if rank == victim {
        match how {
            "exit" => std::process::exit(code),
            // SAFETY: kill(2) on our own pid; SIGKILL does not return.
            "kill" => unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            },
            "abort" => world.abort(code),
            _ => panic!("unknown mode {how}"),
        }
    }
    let mut never = [0u8];
    world.recv(&mut never, oxmpi::ANY_SOURCE, 999)?;
    universe.finalize()
}
