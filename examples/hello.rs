//! Every rank says hello: `oxrun -n 4 target/release/examples/hello` prints
//! `hello from rank R of N on HOST`, one line per rank.

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    println!(
        "hello from rank {} of {} on {}",
        world.rank(),
        world.size(),
        host.trim()
    );
    universe.finalize()
}
