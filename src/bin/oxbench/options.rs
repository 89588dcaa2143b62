//! The flags every oxbench test shares (`-m`, `-i`, `-x`, `-c`), the size sweep they
//! describe, and the timed loop that runs a test's step at each size.
//!
//! Iteration counts follow `shared/tools/mpibench.c`, so that `compare-mpi` measures
//! oxmpi and the system MPIs on the same work: sizes above 64 KiB run `ITERS/10 + 1`
//! iterations, and the warm-up is a tenth of the iterations plus one unless `-x` says
//! otherwise. Invariant: the same arguments give every rank the same sizes and counts.

use std::str::FromStr;

use clap::Args;

use crate::Failure;

/// Sizes above this many bytes run a tenth of the iterations (as mpibench does).
pub const LARGE_MESSAGE: usize = 64 * 1024;

/// Flags shared by every test.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Message sizes in bytes: from MIN (default 1; 0 allowed), doubling, up to MAX
    #[arg(
        short = 'm',
        long = "message-size",
        value_name = "[MIN:]MAX",
        default_value = "1048576"
    )]
    pub sizes: SizeRange,

    /// Timed iterations per size up to 64 KiB; larger sizes run ITERS/10+1
    #[arg(
        short = 'i',
        long = "iterations",
        value_name = "ITERS",
        default_value_t = 10_000,
        value_parser = at_least_one
    )]
    pub iters: usize,

    /// Untimed warm-up iterations per size [default: a tenth of the iterations, plus one;
    /// bw: one window]
    #[arg(short = 'x', long = "warmup", value_name = "WARMUP")]
    pub warmup: Option<usize>,

    /// Check the size and content of every message received and fail on a mismatch
    /// (the checks are then part of the timings)
    #[arg(short = 'c', long = "validation")]
    pub validate: bool,
}

impl Common {
    /// Warm-up and timed iterations at `size` bytes.
    pub fn counts(&self, size: usize) -> Counts {
        let iters = if size > LARGE_MESSAGE {
            self.iters / 10 + 1
        } else {
            self.iters
        };
        Counts {
            warmup: self.warmup.unwrap_or(iters / 10 + 1),
            iters,
        }
    }

    /// A `# ` note for the table header describing these counts.
    pub fn describe_counts(&self) -> String {
        let warmup = match self.warmup {
            Some(w) => w.to_string(),
            None => "iterations/10+1".into(),
        };
        format!(
            "iterations {} ({} above {} bytes), warm-up {warmup}{}",
            self.iters,
            self.iters / 10 + 1,
            LARGE_MESSAGE,
            if self.validate {
                ", validating data"
            } else {
                ""
            }
        )
    }
}

/// Parses a count that must be positive.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a whole number of at least 1, not {s:?}")),
    }
}

/// `-m [MIN:]MAX`: the smallest and largest message size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeRange {
    /// The smallest size, if given; each test has its own default.
    pub min: Option<usize>,
    /// The largest size.
    pub max: usize,
}

impl SizeRange {
    /// The sizes of the sweep: from MIN (or `default_min`), doubling (0 is followed
    /// by 1), while not above MAX.
    pub fn sizes(&self, default_min: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut n = self.min.unwrap_or(default_min);
        while n <= self.max {
            out.push(n);
            n = match n {
                0 => 1,
                _ => match n.checked_mul(2) {
                    Some(next) => next,
                    None => break,
                },
            };
        }
        out
    }
}

impl FromStr for SizeRange {
    type Err = String;

    fn from_str(s: &str) -> Result<SizeRange, String> {
        let bytes = |what: &str, v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| format!("{what} {v:?} is not a number of bytes"))
        };
        let range = match s.split_once(':') {
            None => SizeRange {
                min: None,
                max: bytes("MAX", s)?,
            },
            Some((min, max)) => SizeRange {
                min: Some(bytes("MIN", min)?),
                max: bytes("MAX", max)?,
            },
        };
        match range.min {
            Some(min) if min > range.max => {
                Err(format!("MIN ({min}) is larger than MAX ({})", range.max))
            }
            _ => Ok(range),
        }
    }
}

/// How often a test runs its step at one size: untimed warm-up steps first, then
/// timed ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Untimed steps.
    pub warmup: usize,
    /// Timed steps.
    pub iters: usize,
}

impl Counts {
    /// Runs `step(i)` for every `i` in `0..warmup + iters` and returns the seconds
    /// from the start of the first timed step to the end of the last one.
    pub fn time(&self, mut step: impl FnMut(usize) -> Result<(), Failure>) -> Result<f64, Failure> {
        let mut start = oxmpi::wtime();
        for i in 0..self.warmup + self.iters {
            if i == self.warmup {
                start = oxmpi::wtime();
            }
            step(i)?;
        }
        Ok(oxmpi::wtime() - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_range_forms() {
        assert_eq!(
            "4096".parse(),
            Ok(SizeRange {
                min: None,
                max: 4096
            })
        );
        assert_eq!(
            "0:8".parse(),
            Ok(SizeRange {
                min: Some(0),
                max: 8
            })
        );
        assert!(
            "9:8"
                .parse::<SizeRange>()
                .unwrap_err()
                .contains("larger than MAX")
        );
        assert!(
            "x".parse::<SizeRange>()
                .unwrap_err()
                .contains("not a number")
        );
        assert!("1:".parse::<SizeRange>().is_err());
    }

    #[test]
    fn sweep_doubles_from_min() {
        let r = |s: &str| s.parse::<SizeRange>().unwrap();
        assert_eq!(r("8").sizes(1), [1, 2, 4, 8]);
        assert_eq!(r("0:4").sizes(1), [0, 1, 2, 4]);
        assert_eq!(r("3:20").sizes(1), [3, 6, 12]);
        assert_eq!(r("2").sizes(4), Vec::<usize>::new());
        assert_eq!(r(&usize::MAX.to_string()).sizes(1 << 62).len(), 2);
    }

    #[test]
    fn counts_follow_mpibench() {
        let opts = Common {
            sizes: "1".parse().unwrap(),
            iters: 1000,
            warmup: None,
            validate: false,
        };
        assert_eq!(
            opts.counts(65536),
            Counts {
                warmup: 101,
                iters: 1000
            }
        );
        assert_eq!(
            opts.counts(65537),
            Counts {
                warmup: 11,
                iters: 101
            }
        );
        let opts = Common {
            warmup: Some(3),
            ..opts
        };
        assert_eq!(
            opts.counts(1 << 20),
            Counts {
                warmup: 3,
                iters: 101
            }
        );
    }

    #[test]
    fn timed_loop_runs_warmup_then_iterations() {
        let mut seen = Vec::new();
        let secs = Counts {
            warmup: 2,
            iters: 3,
        }
        .time(|i| {
            seen.push(i);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [0, 1, 2, 3, 4]);
        assert!(secs >= 0.0);
    }
}
