//! Solves Laplace's equation on an N x N grid by Jacobi iteration, the rows split in
//! blocks over the ranks: each step exchanges the edge rows with the neighbours
//! (halo exchange, `sendrecv`), and every few steps the ranks agree on the largest
//! change (`allreduce` with `Max`). Ranks left without rows (more ranks than rows)
//! drop out through `split`; the grid is gathered to rank 0 (`gatherv`) at the end.
//!
//! The top edge is held at 1, the other edges at 0. Every point's update reads the
//! same values in the same order whatever the number of ranks, so the line rank 0
//! prints is the same, bit for bit, for any `-n`.
//!
//! `oxrun -n 4 target/release/examples/jacobi [N] [MAX_STEPS]`

use oxmpi::{Color, Comm, Op};

/// Stop once no point changes by more than this in a step.
const TOLERANCE: f64 = 1e-6;
/// Steps between checks of the largest change.
const CHECK_EVERY: usize = 10;

/// The first row and the number of rows of `rank` among `size` ranks, for `n` rows:
/// blocks as even as they go, the first `n % size` ranks one row longer.
fn rows_of(rank: usize, size: usize, n: usize) -> (usize, usize) {
    let (base, extra) = (n / size, n % size);
    (
        rank * base + rank.min(extra),
        base + usize::from(rank < extra),
    )
}

/// This rank's rows with a halo row above and below: `(rows + 2) x n` values.
struct Block {
    n: usize,
    rows: usize,
    cells: Vec<f64>,
}

impl Block {
    /// Rows `first..first + rows` of the grid, zero inside, with the top edge (1.0)
    /// in the halo above the grid's first row.
    fn new(first: usize, rows: usize, n: usize) -> Block {
        let mut cells = vec![0.0; (rows + 2) * n];
        if first == 0 {
            cells[..n].fill(1.0);
        }
        Block { n, rows, cells }
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.cells[i * self.n..(i + 1) * self.n]
    }

    /// Fills the halo rows from the neighbours (`None` at the grid's edges, whose
    /// halo holds the fixed boundary).
    fn exchange(&mut self, comm: &Comm, up: Option<i32>, down: Option<i32>) -> oxmpi::Result<()> {
        let (n, rows) = (self.n, self.rows);
        // Send the first row up and receive the halo below from the rank beneath,
        // then the other way round; a rank at an edge only sends or only receives.
        for (to, from, send_row, recv_row) in [(up, down, 1, rows + 1), (down, up, rows, 0)] {
            let (before, after) = self.cells.split_at_mut(recv_row.max(send_row) * n);
            let (send, recv) = if send_row < recv_row {
                (&before[send_row * n..(send_row + 1) * n], &mut after[..n])
            } else {
                (&after[..n], &mut before[recv_row * n..(recv_row + 1) * n])
            };
            match (to, from) {
                (Some(to), Some(from)) => {
                    comm.sendrecv(send, to, 0, recv, from, 0)?;
                }
                (Some(to), None) => comm.send(send, to, 0)?,
                (None, Some(from)) => {
                    comm.recv(recv, from, 0)?;
                }
                (None, None) => {}
            }
        }
        Ok(())
    }

    /// One Jacobi step into `next` (same shape); returns the largest change.
    fn step(&self, next: &mut Block) -> f64 {
        let n = self.n;
        let mut largest = 0.0f64;
        for i in 1..=self.rows {
            let (above, here, below) = (self.row(i - 1), self.row(i), self.row(i + 1));
            let out = &mut next.cells[i * n..(i + 1) * n];
            // The left and right edges stay 0: columns 0 and n-1 are boundary.
            for j in 1..n - 1 {
                let v = 0.25 * (above[j] + below[j] + here[j - 1] + here[j + 1]);
                largest = largest.max((v - here[j]).abs());
                out[j] = v;
            }
        }
        largest
    }
}

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().ok());
    let n = args.next().flatten().unwrap_or(128).max(3);
    let max_steps = args.next().flatten().unwrap_or(20_000);
    // The grid's interior rows (the top and bottom rows are boundary).
    let interior = n - 2;
    let in_grid = (world.rank() as usize) < interior;
    let Some(comm) = world.split(
        if in_grid {
            Color::Of(0)
        } else {
            Color::Undefined
        },
        0,
    )?
    else {
        // More ranks than rows: nothing to do here.
        return universe.finalize();
    };
    let (rank, size) = (comm.rank() as usize, comm.size() as usize);
    let (first, rows) = rows_of(rank, size, interior);
    let up = (rank > 0).then(|| rank as i32 - 1);
    let down = (rank + 1 < size).then(|| rank as i32 + 1);
    let mut now = Block::new(first, rows, n);
    let mut next = Block::new(first, rows, n);
    let (mut steps, mut change) = (0, f64::INFINITY);
    while steps < max_steps && change > TOLERANCE {
        now.exchange(&comm, up, down)?;
        let local = now.step(&mut next);
        std::mem::swap(&mut now, &mut next);
        steps += 1;
        if steps % CHECK_EVERY == 0 || steps == max_steps {
            let mut largest = [0.0f64];
            comm.allreduce(&[local], &mut largest, Op::Max)?;
            change = largest[0];
        }
    }
    // Rank 0 gathers the interior rows, in order, and sums them.
    let counts: Vec<usize> = (0..size)
        .map(|r| rows_of(r, size, interior).1 * n)
        .collect();
    let displs: Vec<usize> = (0..size)
        .map(|r| rows_of(r, size, interior).0 * n)
        .collect();
    let mine = &now.cells[n..(rows + 1) * n];
    let mut grid = if rank == 0 {
        vec![0.0; interior * n]
    } else {
        Vec::new()
    };
    comm.gatherv(mine, &mut grid, &counts, &displs, 0)?;
    if rank == 0 {
        let sum: f64 = grid.iter().sum();
        let centre = grid[(interior / 2) * n + n / 2];
        println!(
            "jacobi {n}x{n}: {steps} steps, largest change {change:e}, sum {sum:e} ({:016x}), centre {centre:.6}",
            sum.to_bits()
        );
    }
    universe.finalize()
}
