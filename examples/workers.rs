//! A worker pool: rank 0 hands out tasks (numbers to factor) one at a time to
//! whichever worker asks, with ANY_SOURCE, until all are done; then tells every
//! worker to stop. `oxrun -n 4 target/release/examples/workers [TASKS]`

const WORK: i32 = 1;
const RESULT: i32 = 2;
const STOP: i32 = 3;

/// Sum of the prime factors of `n` (with multiplicity): something to compute.
fn sum_of_prime_factors(mut n: u64) -> u64 {
    let (mut sum, mut p) = (0, 2);
    while p * p <= n {
        while n.is_multiple_of(p) {
            sum += p;
            n /= p;
        }
        p += 1;
    }
    if n > 1 { sum + n } else { sum }
}

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let size = world.size();
    let tasks: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    if size < 2 {
        eprintln!("workers needs at least 2 ranks");
        world.abort(2);
    }
    if world.rank() == 0 {
        let inputs: Vec<u64> = (0..tasks).map(|i| 1_000_003 + i * 7919).collect();
        let mut next = 0usize;
        let mut total = 0u64;
        let mut per_worker = vec![0u64; size as usize];
        // Prime each worker with one task (or a stop if there is none).
        for w in 1..size {
            if next < inputs.len() {
                world.send(&[inputs[next]], w, WORK)?;
                next += 1;
            } else {
                world.send::<u64>(&[], w, STOP)?;
            }
        }
        let mut outstanding = (size as usize - 1).min(inputs.len());
        while outstanding > 0 {
            let mut answer = [0u64];
            let status = world.recv(&mut answer, oxmpi::ANY_SOURCE, RESULT)?;
            total += answer[0];
            per_worker[status.source as usize] += 1;
            if next < inputs.len() {
                world.send(&[inputs[next]], status.source, WORK)?;
                next += 1;
            } else {
                world.send::<u64>(&[], status.source, STOP)?;
                outstanding -= 1;
            }
        }
        let expected: u64 = inputs.iter().map(|&n| sum_of_prime_factors(n)).sum();
        println!(
            "workers: {tasks} tasks, total {total}, per worker {:?}",
            &per_worker[1..]
        );
        if total != expected {
            eprintln!("workers: wrong total, expected {expected}");
            world.abort(1);
        }
    } else {
        loop {
            let mut task = [0u64];
            let status = world.recv(&mut task, 0, oxmpi::ANY_TAG)?;
            if status.tag == STOP {
                break;
            }
            world.send(&[sum_of_prime_factors(task[0])], 0, RESULT)?;
        }
    }
    universe.finalize()
}
