//! The binomial tree rooted at a given rank, shared by the tree algorithms (bcast,
//! reduce, gather, scatter).
//!
//! Ranks are numbered relative to the root, `v = (rank - root) mod size`. Relative
//! rank `v` owns the subtree `[v, v + span)` (cut at `size`), where `span` is the
//! lowest set bit of `v` (the next power of two at or above `size` for the root); its
//! parent is `v - span` and its children are `v + m` for each power of two `m < span`
//! with `v + m < size`, the child's subtree spanning `m`. Invariant: subtrees are
//! contiguous runs of relative ranks, so a subtree's data is one span in relative
//! order.

/// This rank's place in the binomial tree rooted at `root`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tree {
    rank: usize,
    size: usize,
    /// Relative rank.
    pub v: usize,
    span: usize,
}

/// A child of this rank in the tree.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Child {
    pub rank: usize,
    /// Its relative rank minus ours: where its subtree starts in ours.
    pub offset: usize,
    /// Number of ranks in its subtree.
    pub ranks: usize,
}

impl Tree {
    pub(crate) fn new(rank: usize, size: usize, root: usize) -> Tree {
        let v = (rank + size - root) % size;
        let span = if v == 0 {
            size.next_power_of_two()
        } else {
            v & v.wrapping_neg()
        };
        Tree {
            rank,
            size,
            v,
            span,
        }
    }

    /// The parent's rank (`None` at the root).
    pub(crate) fn parent(&self) -> Option<usize> {
        (self.v != 0).then(|| (self.rank + self.size - self.span) % self.size)
    }

    /// Number of ranks in this rank's subtree, itself included.
    pub(crate) fn ranks(&self) -> usize {
        self.span.min(self.size - self.v)
    }

    /// The children, nearest (smallest subtree) first.
    pub(crate) fn children(&self) -> impl DoubleEndedIterator<Item = Child> + use<> {
        let Tree {
            rank,
            size,
            v,
            span,
        } = *self;
        let count = (0..span.trailing_zeros())
            .take_while(|&b| v + (1 << b) < size)
            .count();
        (0..count).map(move |b| {
            let m = 1 << b;
            Child {
                rank: (rank + m) % size,
                offset: m,
                ranks: m.min(size - v - m),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rank_but_the_root_has_one_parent_that_lists_it() {
        for size in 1..20 {
            for root in 0..size {
                let mut seen = vec![0; size];
                for rank in 0..size {
                    let t = Tree::new(rank, size, root);
                    for c in t.children() {
                        seen[c.rank] += 1;
                        assert_eq!(Tree::new(c.rank, size, root).parent(), Some(rank));
                        assert_eq!(Tree::new(c.rank, size, root).ranks(), c.ranks);
                    }
                    assert_eq!(t.parent().is_none(), rank == root);
                    assert_eq!(1 + t.children().map(|c| c.ranks).sum::<usize>(), t.ranks());
                }
                seen[root] += 1;
                assert!(
                    seen.iter().all(|&n| n == 1),
                    "size {size} root {root}: {seen:?}"
                );
            }
        }
    }
}
