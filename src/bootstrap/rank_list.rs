//! Sets of ranks as one PMI value: ascending ranges such as `0-3,5,9-12` (empty: no
//! rank). oxrun's finalize extension carries them (see [`crate::bootstrap`]): a
//! finalizing rank names the ranks it has no connection to, and a rank that waits
//! long asks which ranks finalized without a connection to it.

/// Longest list put in one line: with the command and the other pairs it stays well
/// within [`super::wire::MAX_LINE`]. Longer sets go in several lines.
pub const MAX_TEXT: usize = 3072;

/// An inclusive range of ranks.
pub type Range = (usize, usize);

/// Writes the leading ranks of `ranks` (ascending, no repeats) as ranges while the
/// text stays within [`MAX_TEXT`]; returns the text and how many ranks it holds.
///
/// ```
/// use oxmpi::bootstrap::rank_list::encode;
/// assert_eq!(encode(&[0, 1, 2, 3, 5, 9, 10]), ("0-3,5,9-10".to_owned(), 7));
/// assert_eq!(encode(&[]), (String::new(), 0));
/// ```
pub fn encode(ranks: &[usize]) -> (String, usize) {
    let mut text = String::new();
    let mut taken = 0;
    while taken < ranks.len() {
        let first = ranks[taken];
        let run = ranks[taken..]
            .iter()
            .enumerate()
            .take_while(|&(i, &r)| r == first + i)
            .count();
        let last = first + run - 1;
        let item = if run == 1 {
            first.to_string()
        } else {
            format!("{first}-{last}")
        };
        let comma = usize::from(!text.is_empty());
        if text.len() + comma + item.len() > MAX_TEXT {
            break;
        }
        if comma == 1 {
            text.push(',');
        }
        text.push_str(&item);
        taken += run;
    }
    (text, taken)
}

/// Reads a list [`encode`] wrote: ranges ascending and apart, every rank below
/// `size`. `None` if the text is anything else.
///
/// ```
/// use oxmpi::bootstrap::rank_list::decode;
/// assert_eq!(decode("0-3,5", 8), Some(vec![(0, 3), (5, 5)]));
/// assert_eq!(decode("5,0-3", 8), None);
/// assert_eq!(decode("7-9", 8), None);
/// ```
pub fn decode(text: &str, size: usize) -> Option<Vec<Range>> {
    let mut out: Vec<Range> = Vec::new();
    if text.is_empty() {
        return Some(out);
    }
    for item in text.split(',') {
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
            None => {
                let r = item.parse().ok()?;
                (r, r)
            }
        };
        let after_last = out.last().is_none_or(|&(_, end)| a > end);
        if a > b || b >= size || !after_last {
            return None;
        }
        out.push((a, b));
    }
    Some(out)
}

/// Whether `rank` is in `ranges` (ascending, as [`decode`] returns them).
///
/// ```
/// use oxmpi::bootstrap::rank_list::contains;
/// assert!(contains(&[(0, 3), (5, 5)], 5) && !contains(&[(0, 3), (5, 5)], 4));
/// ```
pub fn contains(ranges: &[Range], rank: usize) -> bool {
    let i = ranges.partition_point(|&(_, end)| end < rank);
    ranges.get(i).is_some_and(|&(start, _)| start <= rank)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_membership() {
        let ranks: Vec<usize> = (0..200).filter(|r| r % 7 != 3 && r % 11 != 0).collect();
        let (text, n) = encode(&ranks);
        assert_eq!(n, ranks.len());
        let ranges = decode(&text, 200).unwrap();
        for r in 0..200 {
            assert_eq!(contains(&ranges, r), ranks.contains(&r), "rank {r}");
        }
    }

    #[test]
    fn long_sets_are_cut_at_a_whole_range() {
        let every_other: Vec<usize> = (0..100_000).step_by(2).collect();
        let (text, n) = encode(&every_other);
        assert!(text.len() <= MAX_TEXT && n > 100 && n < every_other.len());
        let ranges = decode(&text, 100_000).unwrap();
        assert_eq!(ranges.len(), n);
        assert_eq!(
            ranges.last(),
            Some(&(every_other[n - 1], every_other[n - 1]))
        );
    }

    #[test]
    fn refuses_malformed_lists() {
        for bad in ["x", "1-", "-1", "3-1", "1,1", "2-4,3", "1,,2", "8"] {
            assert_eq!(decode(bad, 8), None, "{bad:?}");
        }
    }
}
