//! A rank blocked in a receive uses almost no CPU: rank 0 waits about two seconds for
//! a message from the last rank (which sleeps first) and reports the CPU time it used
//! against the wall time it waited. Everyone else waits in a receive too.

use oxmpi_testprogs::check;

fn cpu_seconds() -> f64 {
    // SAFETY: `rusage` is plain data, for which all-zero bytes are a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct for this process.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let last = size - 1;
    if size == 1 {
        println!("idle ok: nothing to wait for on 1 rank");
        return universe.finalize();
    }
    if rank == last {
        std::thread::sleep(std::time::Duration::from_secs(2));
        for r in 0..last {
            world.send(&[1u8], r, 0)?;
        }
    } else {
        let (cpu0, wall0) = (cpu_seconds(), oxmpi::wtime());
        let mut got = [0u8];
        world.recv(&mut got, last, 0)?;
        let (cpu, wall) = (cpu_seconds() - cpu0, oxmpi::wtime() - wall0);
        let ratio = cpu / wall;
        if rank == 0 {
            println!("idle: rank 0 waited {wall:.3} s using {cpu:.3} s of CPU (ratio {ratio:.3})");
        }
        check(&world, wall > 1.0, || {
            format!("the wait was too short to judge ({wall:.3} s)")
        });
        check(&world, ratio < 0.2, || {
            format!("a blocked receive burned CPU: {cpu:.3} s in {wall:.3} s")
        });
    }
    if rank == 0 {
        println!("idle ok on {size} ranks");
    }
    universe.finalize()
}
