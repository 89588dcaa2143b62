//! Per-rank blocks of a buffer: where each rank's part lies, in bytes.
//!
//! A [`Blocks`] is the layout a collective agrees on across ranks (equal blocks, an
//! even split of one vector, or the counts and displacements of a v-variant).
//! Invariant: offsets and lengths are whole elements, and every rank that builds the
//! blocks of one collective builds the same ones.

use std::ops::Range;

use crate::engine::schedule::{Buf, Span};

/// One block per rank: byte offset and length within a buffer.
#[derive(Debug, Clone)]
pub(crate) struct Blocks {
    at: Vec<(usize, usize)>,
}

impl Blocks {
    /// `n` blocks of `len` bytes, back to back.
    pub(crate) fn equal(n: usize, len: usize) -> Blocks {
        Blocks {
            at: (0..n).map(|i| (i * len, len)).collect(),
        }
    }

    /// `count` elements of `esz` bytes split into `n` contiguous blocks whose sizes
    /// differ by at most one element (the larger ones first).
    pub(crate) fn split(count: usize, n: usize, esz: usize) -> Blocks {
        let (base, extra) = (count / n, count % n);
        let at = (0..n)
            .map(|i| {
                let first = i * base + i.min(extra);
                let len = base + usize::from(i < extra);
                (first * esz, len * esz)
            })
            .collect();
        Blocks { at }
    }

    /// Blocks from element `counts` and `displs` (a v-variant's layout). An empty
    /// block touches no memory, so its displacement may lie anywhere (as in MPI): it
    /// is placed at the start.
    pub(crate) fn varying(counts: &[usize], displs: &[usize], esz: usize) -> Blocks {
        Blocks {
            at: counts
                .iter()
                .zip(displs)
                .map(|(&c, &d)| if c == 0 { (0, 0) } else { (d * esz, c * esz) })
                .collect(),
        }
    }

    /// Blocks from element `counts`, back to back.
    pub(crate) fn packed(counts: &[usize], esz: usize) -> Blocks {
        let mut off = 0;
        let at = counts
            .iter()
            .map(|&c| {
                let b = (off, c * esz);
                off += c * esz;
                b
            })
            .collect();
        Blocks { at }
    }

    /// Number of blocks.
    pub(crate) fn len(&self) -> usize {
        self.at.len()
    }

    /// Length of block `i` in bytes.
    pub(crate) fn bytes(&self, i: usize) -> usize {
        self.at[i].1
    }

    /// Block `i` of buffer `buf`.
    pub(crate) fn span(&self, buf: Buf, i: usize) -> Span {
        let (off, len) = self.at[i];
        Span::new(buf, off, len)
    }

    /// Blocks `range` of `buf` as one span; those that are not empty must be
    /// contiguous and in order (an empty block may lie anywhere: see
    /// [`Blocks::varying`]).
    pub(crate) fn run(&self, buf: Buf, range: Range<usize>) -> Span {
        let mut full = self.at[range].iter().filter(|&&(_, len)| len > 0);
        let Some(&(start, len)) = full.next() else {
            return Span::new(buf, 0, 0);
        };
        let end = full.fold(start + len, |end, &(off, len)| {
            debug_assert_eq!(off, end, "blocks of a run are contiguous");
            off + len
        });
        Span::new(buf, start, end - start)
    }

    /// `n` blocks, block `q` being the run of blocks `group(q)` of `self` (which must be
    /// contiguous and in order): the segments of the participants of a fold.
    pub(crate) fn grouped(&self, n: usize, group: impl Fn(usize) -> Range<usize>) -> Blocks {
        let at = (0..n)
            .map(|q| {
                let run = self.run(Buf::Send, group(q));
                (run.off, run.len)
            })
            .collect();
        Blocks { at }
    }

    /// Sum of the block lengths in bytes.
    pub(crate) fn total(&self) -> usize {
        self.at.iter().map(|&(_, len)| len).sum()
    }

    /// The same blocks renumbered from rank-relative to rank order: block `i` of the
    /// result is block `i - root` (mod the count) of `self`.
    pub(crate) fn rotated(&self, root: usize) -> Blocks {
        let n = self.len();
        Blocks {
            at: (0..n).map(|i| self.at[(i + n - root) % n]).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_even_and_covers_everything() {
        let b = Blocks::split(10, 4, 4);
        let lens: Vec<usize> = (0..4).map(|i| b.bytes(i)).collect();
        assert_eq!(lens, [12, 12, 8, 8]);
        assert_eq!(b.run(Buf::Recv, 0..4), Span::new(Buf::Recv, 0, 40));
        assert_eq!(b.span(Buf::Recv, 2), Span::new(Buf::Recv, 24, 8));
    }

    #[test]
    fn split_with_fewer_elements_than_blocks_leaves_empty_blocks() {
        let b = Blocks::split(2, 5, 8);
        assert_eq!(
            (0..5).map(|i| b.bytes(i)).collect::<Vec<_>>(),
            [8, 8, 0, 0, 0]
        );
    }

    #[test]
    fn empty_blocks_lie_anywhere_and_runs_pass_over_them() {
        // Block 1 is empty at a displacement far past any buffer.
        let b = Blocks::varying(&[2, 0, 3, 0], &[0, 1 << 40, 2, 5], 4);
        assert_eq!(b.span(Buf::Recv, 1), Span::new(Buf::Recv, 0, 0));
        assert_eq!(b.run(Buf::Recv, 0..4), Span::new(Buf::Recv, 0, 20));
        assert_eq!(b.run(Buf::Recv, 1..2), Span::new(Buf::Recv, 0, 0));
        assert_eq!(b.run(Buf::Recv, 1..3), Span::new(Buf::Recv, 8, 12));
    }

    #[test]
    fn packed_and_rotated() {
        let b = Blocks::packed(&[1, 0, 3], 2);
        assert_eq!(b.span(Buf::Send, 2), Span::new(Buf::Send, 2, 6));
        let r = b.rotated(1);
        assert_eq!(r.span(Buf::Send, 1), b.span(Buf::Send, 0));
        assert_eq!(r.span(Buf::Send, 0), b.span(Buf::Send, 2));
    }
}
