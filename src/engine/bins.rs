//! Items kept in bins (one per sender, say), each bin in arrival order, and every item
//! numbered in the order it arrived across all bins.
//!
//! A search that can only match in one bin looks at that bin alone; one that may
//! match in any bin takes the first match of each occupied bin and keeps the one that
//! arrived first. Either way the answer is the oldest match, as one queue in arrival
//! order would give, without walking past the items of other bins.

use std::collections::VecDeque;

/// Items' room an emptied bin keeps.
const KEPT: usize = 256;

/// Where a search found an item: its bin, its place there and its arrival number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    bin: usize,
    index: usize,
    arrived: u64,
}

/// Bins of items in arrival order.
#[derive(Debug)]
pub(crate) struct Bins<T> {
    /// Each item with its arrival number, by bin.
    bins: Vec<VecDeque<(u64, T)>>,
    /// The bins that hold something, in no particular order.
    occupied: Vec<usize>,
    /// Each occupied bin's place in `occupied` (stale for the others).
    slot: Vec<usize>,
    /// Items ever pushed (the next one's arrival number).
    arrivals: u64,
}

impl Found {
    /// The item's arrival number.
    pub(crate) fn arrived(self) -> u64 {
        self.arrived
    }
}

impl<T> Default for Bins<T> {
    fn default() -> Bins<T> {
        Bins {
            bins: Vec::new(),
            occupied: Vec::new(),
            slot: Vec::new(),
            arrivals: 0,
        }
    }
}

impl<T> Bins<T> {
    /// Adds `item` at the back of `bin`.
    #[inline(always)]
    pub(crate) fn push(&mut self, bin: usize, item: T) {
        if bin >= self.bins.len() {
            self.bins.resize_with(bin + 1, VecDeque::new);
            self.slot.resize(bin + 1, 0);
        }
        let queue = &mut self.bins[bin];
        if queue.is_empty() {
            self.slot[bin] = self.occupied.len();
            self.occupied.push(bin);
        }
        queue.push_back((self.arrivals, item));
        self.arrivals += 1;
    }

    /// How many items were ever pushed.
    pub(crate) fn arrivals(&self) -> u64 {
        self.arrivals
    }

    /// Whether no bin holds anything.
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.occupied.is_empty()
    }

    /// The oldest item of `bin` that `test` picks.
    #[inline(always)]
    pub(crate) fn find_in(&self, bin: usize, test: impl FnMut(&T) -> bool) -> Option<Found> {
        self.find_in_before(bin, u64::MAX, test)
    }

    /// The oldest item of `bin` that `test` picks, if it arrived before arrival number
    /// `limit`: the search stops at the first item that did not.
    #[inline(always)]
    pub(crate) fn find_in_before(
        &self,
        bin: usize,
        limit: u64,
        mut test: impl FnMut(&T) -> bool,
    ) -> Option<Found> {
        let queue = self.bins.get(bin)?;
        let mut items = queue.iter().take_while(|(n, _)| *n < limit);
        // Most searches take the oldest item: the first is looked at before the loop.
        let (arrived, first) = items.next()?;
        if test(first) {
            return Some(Found {
                bin,
                index: 0,
                arrived: *arrived,
            });
        }
        let index = 1 + items.position(|(_, item)| test(item))?;
        Some(Found {
            bin,
            index,
            arrived: queue[index].0,
        })
    }

    /// The oldest item of any bin that `test` picks. Each bin is searched only up to
    /// the oldest match found so far.
    pub(crate) fn find_oldest(&self, mut test: impl FnMut(&T) -> bool) -> Option<Found> {
        let mut best: Option<Found> = None;
        for &bin in &self.occupied {
            let limit = best.map_or(u64::MAX, |b| b.arrived);
            if let Some(found) = self.find_in_before(bin, limit, &mut test) {
                best = Some(found);
            }
        }
        best
    }

    /// The item found.
    pub(crate) fn get(&self, found: Found) -> &T {
        &self.bins[found.bin][found.index].1
    }

    /// Removes the item found (nothing else was removed since).
    #[inline(always)]
    pub(crate) fn remove(&mut self, found: Found) -> T {
        let queue = &mut self.bins[found.bin];
        let (_, item) = if found.index == 0 {
            queue.pop_front()
        } else {
            queue.remove(found.index)
        }
        .expect("found in this bin");
        if queue.is_empty() {
            self.vacated(found.bin);
        }
        item
    }

    /// Takes emptied `bin` off the occupied list, and gives back the room a burst
    /// left it (each sender's queue would otherwise keep its own peak for good, where
    /// one queue kept only the largest total).
    fn vacated(&mut self, bin: usize) {
        if self.bins[bin].capacity() > KEPT {
            self.bins[bin].shrink_to(KEPT);
        }
        let at = self.slot[bin];
        self.occupied.swap_remove(at);
        if let Some(&moved) = self.occupied.get(at) {
            self.slot[moved] = at;
        }
    }

    /// The newest item of `bin` that `test` picks, to change in place.
    pub(crate) fn find_newest_in_mut(
        &mut self,
        bin: usize,
        mut test: impl FnMut(&T) -> bool,
    ) -> Option<&mut T> {
        let queue = self.bins.get_mut(bin)?;
        queue
            .iter_mut()
            .rev()
            .map(|(_, item)| item)
            .find(|item| test(item))
    }

    /// Every item, bin by bin.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        let bins = self.occupied.iter().map(|&bin| &self.bins[bin]);
        bins.flat_map(|queue| queue.iter().map(|(_, item)| item))
    }

    /// The items still here of those pushed after the first `since`
    /// ([`Bins::arrivals`] then).
    pub(crate) fn pushed_since(&self, since: u64) -> impl Iterator<Item = &T> {
        let bins = self.occupied.iter().map(|&bin| &self.bins[bin]);
        bins.flat_map(move |queue| {
            let newer = queue.iter().rev().take_while(move |(n, _)| *n >= since);
            newer.map(|(_, item)| item)
        })
    }

    /// Removes the items `doomed` picks and hands each to `taken`, oldest first within
    /// each bin. `doomed` sees every item exactly once (callers act on what they
    /// doom, acknowledging a message, say).
    pub(crate) fn take_where(
        &mut self,
        mut doomed: impl FnMut(&T) -> bool,
        mut taken: impl FnMut(T),
    ) {
        for &bin in &self.occupied {
            let queue = &mut self.bins[bin];
            for (n, item) in std::mem::take(queue) {
                if doomed(&item) {
                    taken(item);
                } else {
                    queue.push_back((n, item));
                }
            }
        }
        let bins = &self.bins;
        self.occupied.retain(|&bin| !bins[bin].is_empty());
        for (at, &bin) in self.occupied.iter().enumerate() {
            self.slot[bin] = at;
        }
    }

    /// Removes every item.
    pub(crate) fn clear(&mut self) {
        for bin in self.occupied.drain(..) {
            self.bins[bin].clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reference: one queue in arrival order.
    struct Model(VecDeque<(usize, u32)>);

    impl Model {
        fn oldest(&self, bin: Option<usize>, test: impl Fn(u32) -> bool) -> Option<u32> {
            let picks = |&&(b, v): &&(usize, u32)| bin.is_none_or(|x| x == b) && test(v);
            self.0.iter().find(picks).map(|&(_, v)| v)
        }

        fn remove(&mut self, v: u32) {
            let i = self.0.iter().position(|&(_, x)| x == v).unwrap();
            self.0.remove(i);
        }
    }

    /// A small deterministic generator (xorshift).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn finds_what_one_queue_in_arrival_order_would() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut bins = Bins::default();
        let mut model = Model(VecDeque::new());
        let mut next = 0u32;
        for step in 0..20_000 {
            match rng.below(5) {
                0 | 1 => {
                    let bin = rng.below(6) as usize;
                    bins.push(bin, next);
                    model.0.push_back((bin, next));
                    next += 1;
                }
                kind => {
                    // Pick by a residue, so that matches skip over items.
                    let (m, r) = (rng.below(3) as u32 + 1, rng.below(3) as u32);
                    let test = |v: u32| v % m == r % m;
                    let bin = (kind != 4).then(|| rng.below(6) as usize);
                    let found = match bin {
                        Some(bin) => bins.find_in(bin, |&v| test(v)),
                        None => bins.find_oldest(|&v| test(v)),
                    };
                    let want = model.oldest(bin, test);
                    assert_eq!(found.map(|f| *bins.get(f)), want, "step {step}");
                    if let Some(f) = found
                        && rng.below(3) != 0
                    {
                        model.remove(bins.remove(f));
                    }
                }
            }
            assert_eq!(bins.is_empty(), model.0.is_empty());
        }
        assert!(next > 5000 && model.0.len() < next as usize);
        let mut left: Vec<u32> = bins.iter().copied().collect();
        left.sort_unstable();
        let mut want: Vec<u32> = model.0.iter().map(|&(_, v)| v).collect();
        want.sort_unstable();
        assert_eq!(left, want);
    }

    #[test]
    fn a_search_before_a_limit_stops_there() {
        let mut bins = Bins::default();
        bins.push(3, 'a');
        bins.push(0, 'b');
        bins.push(3, 'c');
        let b = bins.find_in(0, |_| true).unwrap();
        assert_eq!(b.arrived(), 1);
        assert_eq!(bins.find_in_before(3, 1, |&c| c == 'c'), None);
        let c = bins.find_in_before(3, 3, |&c| c == 'c').unwrap();
        assert_eq!((*bins.get(c), c.arrived()), ('c', 2));
        assert_eq!(bins.find_in_before(3, 0, |_| true), None);
        assert_eq!(bins.find_in(7, |_| true), None);
    }

    /// A search over all bins looks in each only as far as the best match so far.
    #[test]
    fn an_oldest_search_stops_each_bin_at_the_best_match_so_far() {
        let mut bins = Bins::default();
        bins.push(1, 0u32);
        for v in 1..1000 {
            bins.push(2, v);
        }
        let mut looked = 0;
        let found = bins.find_oldest(|&v| {
            looked += 1;
            v == 0 || v % 2 == 1
        });
        assert_eq!(found.map(|f| *bins.get(f)), Some(0));
        assert!(looked <= 2, "looked at {looked} items");
    }

    #[test]
    fn an_emptied_bin_gives_back_the_room_of_a_burst() {
        let mut bins = Bins::default();
        for v in 0..100_000u32 {
            bins.push(3, v);
        }
        while let Some(f) = bins.find_in(3, |_| true) {
            bins.remove(f);
        }
        assert!(
            bins.bins[3].capacity() <= KEPT,
            "{}",
            bins.bins[3].capacity()
        );
    }

    #[test]
    fn many_senders_come_and_go() {
        let mut bins = Bins::default();
        for round in 0..3u32 {
            for bin in 0..500 {
                bins.push(bin, round * 1000 + bin as u32);
            }
        }
        for want in 0..1500u32 {
            let f = bins.find_oldest(|_| true).unwrap();
            assert_eq!(bins.remove(f), want / 500 * 1000 + want % 500);
        }
        assert!(bins.is_empty());
    }

    #[test]
    fn taking_and_clearing_leave_no_occupied_bin_behind() {
        let mut bins = Bins::default();
        for v in 0..12u32 {
            bins.push((v % 3) as usize, v);
        }
        assert_eq!(bins.arrivals(), 12);
        let mut since: Vec<u32> = bins.pushed_since(9).copied().collect();
        since.sort_unstable();
        assert_eq!(since, [9, 10, 11]);
        let (mut taken, mut seen) = (Vec::new(), Vec::new());
        let doomed = |&v: &u32| {
            seen.push(v);
            v % 3 == 1 || v == 5
        };
        bins.take_where(doomed, |v| taken.push(v));
        taken.sort_unstable();
        assert_eq!(taken, [1, 4, 5, 7, 10]);
        seen.sort_unstable();
        assert_eq!(seen, (0..12).collect::<Vec<_>>(), "each item seen once");
        assert_eq!(bins.find_in(1, |_| true), None);
        assert_eq!(bins.find_oldest(|&v| v > 5).map(|f| *bins.get(f)), Some(6));
        *bins.find_newest_in_mut(2, |_| true).unwrap() = 100;
        assert!(bins.iter().any(|&v| v == 100));
        bins.clear();
        assert!(bins.is_empty() && bins.find_oldest(|_| true).is_none());
        bins.push(1, 1);
        assert!(!bins.is_empty());
        assert_eq!(bins.arrivals(), 13);
    }
}
