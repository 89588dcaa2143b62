//! Computes pi by integrating 4/(1+x^2) over [0,1] with the midpoint rule: each rank
//! sums its share of the intervals, the workers send partial sums to rank 0, which
//! checks the result. `oxrun -n 4 target/release/examples/pi [INTERVALS]`

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let n: u64 = match std::env::args().nth(1) {
        None => 10_000_000,
        Some(a) => a.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
            oxmpi::Error::InvalidArgument(format!(
                "pi: INTERVALS must be a positive integer, not {a:?}"
            ))
        })?,
    };
    let h = 1.0 / n as f64;
    let partial: f64 = (rank as u64..n)
        .step_by(size as usize)
        .map(|i| {
            let x = h * (i as f64 + 0.5);
            4.0 / (1.0 + x * x)
        })
        .sum::<f64>()
        * h;
    if rank == 0 {
        let mut pi = partial;
        for _ in 1..size {
            let mut part = [0f64];
            world.recv(&mut part, oxmpi::ANY_SOURCE, 0)?;
            pi += part[0];
        }
        let err = (pi - std::f64::consts::PI).abs();
        println!("pi is approximately {pi:.16}, error {err:.3e}");
        // The midpoint rule's own error here is about h^2/12; the sum's rounding
        // grows about as the square root of the number of terms.
        let tolerance = h * h / 6.0 + (n as f64).sqrt() * 4.0 * f64::EPSILON;
        if err.is_nan() || err > tolerance {
            eprintln!("pi: the error is above {tolerance:.3e}");
            world.abort(1);
        }
    } else {
        world.send(&[partial], 0, 0)?;
    }
    universe.finalize()
}
