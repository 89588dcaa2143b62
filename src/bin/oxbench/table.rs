//! OSU-format result tables: `# ` comment lines, a `# Size  <label>` column line, then
//! one `size value` row per message size, as the OSU micro-benchmarks print them and
//! `shared/tools/compare-mpi` parses them.
//!
//! Invariant: only rank 0 prints; every other rank's table is silent, so a test may
//! call [`Table::row`] on every rank.

use oxmpi::Comm;

/// A table being printed, one row per measured size.
pub struct Table {
    /// Width of the value column: the label's width, so values line up under it.
    width: usize,
    /// Whether this rank prints (rank 0 only).
    print: bool,
}

impl Table {
    /// Starts a table: prints `# OSU-style <title>`, a `# ` line per note, and the
    /// column line `# Size  <label>` (rank 0 only).
    pub fn new(world: &Comm, title: &str, notes: &[String], label: &str) -> Table {
        let table = Table {
            width: label.len(),
            print: world.rank() == 0,
        };
        if table.print {
            println!(
                "# OSU-style {title} (oxbench {}, {} ranks)",
                env!("CARGO_PKG_VERSION"),
                world.size()
            );
            for note in notes {
                println!("# {note}");
            }
            println!("# Size  {label}");
        }
        table
    }

    /// Prints the row `size value`, the value with three decimals under the label (as
    /// `shared/tools/mpibench.c` prints its own: two, as the OSU benchmarks print, would
    /// round a 0.13 us latency by up to 4%).
    pub fn row(&self, size: usize, value: f64) {
        if self.print {
            println!("{}", self.format_row(size, value));
        }
    }

    fn format_row(&self, size: usize, value: f64) -> String {
        // "# Size" is 6 wide and followed by 2 spaces: a 7-wide size column, a space,
        // then the value right-aligned under the label.
        format!("{size:<7} {value:>w$.3}", w = self.width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_line_up_under_the_header() {
        let t = Table {
            width: "Latency (us)".len(),
            print: false,
        };
        let header = "# Size  Latency (us)";
        let row = t.format_row(8, 12.3456);
        assert_eq!(row, "8             12.346");
        assert_eq!(row.len(), header.len());
        assert_eq!(
            t.format_row(16 << 20, 1.0)
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["16777216", "1.000"]
        );
    }
}
