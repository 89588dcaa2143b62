//! A rank that starts a program of its own that uses oxmpi: the child inherits the
//! launcher's variables but not the rank's connection to the launcher (it is
//! close-on-exec), so its init fails with a clear error instead of speaking for the
//! rank (which once completed the others' finalize on the rank's behalf). The job
//! itself goes on and ends normally.

use oxmpi_testprogs::{arg, check};

fn main() -> oxmpi::Result<()> {
    if arg(1, "") == "child" {
        match oxmpi::init() {
            Ok(_) => println!("child: init succeeded"),
            Err(e) => println!("child: init failed: {e}"),
        }
        return Ok(());
    }
    let universe = oxmpi::init()?;
    let world = universe.world();
    if world.rank() == 0 {
        let out = std::process::Command::new(std::env::current_exe().expect("own path"))
            .arg("child")
            .output()
            .expect("start the child");
        let said = String::from_utf8_lossy(&out.stdout);
        check(
            &world,
            said.contains("init failed") && said.contains("PMI_FD"),
            || format!("the child said {said:?}"),
        );
    }
    world.barrier()?;
    if world.rank() == 0 {
        println!("spawn ok on {} ranks", world.size());
    }
    universe.finalize()
}
