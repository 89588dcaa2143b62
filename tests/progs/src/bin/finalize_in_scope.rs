//! Finalize inside a scope, with a large receive (rank 0) and its send (rank 1) still
//! in flight: an erroneous program in MPI, but safe code here. The receive's split
//! copy has the sender write into rank 0's buffer (`process_vm_writev`); once
//! finalize and the scope have returned, nothing may write there any more. Rank 0
//! fills its buffer after the scope, waits, and prints how many bytes changed since.

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    // Large enough that its single copy is split between the two ends.
    let n = 64 << 20;
    if world.rank() == 0 {
        let mut buf = vec![0u8; n];
        oxmpi::scope(|s| -> oxmpi::Result<()> {
            let _in_flight = world.irecv(s, &mut buf, 1, 0)?;
            // Its outcome does not matter here (the sender may leave first).
            let _ = universe.finalize();
            Ok(())
        })?;
        buf.fill(0xAA);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let changed = buf.iter().filter(|&&b| b != 0xAA).count();
        println!("changed after the scope: {changed}");
    } else {
        let data = vec![0x55u8; n];
        oxmpi::scope(|s| -> oxmpi::Result<()> {
            let _in_flight = world.isend(s, &data, 0, 0)?;
            let _ = universe.finalize();
            Ok(())
        })?;
    }
    Ok(())
}
