//! Where each rank runs: its node id, its rank among the ranks of that node, and the
//! `PMI_process_mapping` string that tells MPICH-style clients the same thing.
//!
//! Invariant: node ids are the only source of locality (never host names), and the
//! mapping string describes every rank explicitly, in rank order, so a reader never
//! has to rely on MPICH's "repeat the vector" rule.

use std::fmt::Write as _;

/// The placement of all ranks of a job on nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    node_of_rank: Vec<u32>,
    local_rank: Vec<u32>,
    local_size: Vec<u32>,
}

impl Layout {
    /// All `size` ranks on node 0.
    pub fn single_node(size: usize) -> Layout {
        Layout::from_nodes(vec![0; size])
    }

    /// `size` ranks spread over `nodes` nodes in contiguous blocks whose sizes differ
    /// by at most one.
    pub fn blocks(size: usize, nodes: usize) -> Layout {
        let nodes = nodes.clamp(1, size.max(1));
        Layout::from_nodes((0..size).map(|r| (r * nodes / size) as u32).collect())
    }

    /// A layout from the node id of every rank, in rank order.
    pub fn from_nodes(node_of_rank: Vec<u32>) -> Layout {
        let nodes = node_of_rank
            .iter()
            .map(|&n| n as usize + 1)
            .max()
            .unwrap_or(0);
        let mut count = vec![0u32; nodes];
        let mut local_rank = Vec::with_capacity(node_of_rank.len());
        for &n in &node_of_rank {
            local_rank.push(count[n as usize]);
            count[n as usize] += 1;
        }
        let local_size = node_of_rank.iter().map(|&n| count[n as usize]).collect();
        Layout {
            node_of_rank,
            local_rank,
            local_size,
        }
    }

    /// Number of ranks in the job.
    pub fn size(&self) -> usize {
        self.node_of_rank.len()
    }

    /// Node id of `rank`.
    pub fn node(&self, rank: usize) -> u32 {
        self.node_of_rank[rank]
    }

    /// Index of `rank` among the ranks of its node.
    pub fn local_rank(&self, rank: usize) -> u32 {
        self.local_rank[rank]
    }

    /// Number of ranks on the node of `rank`.
    pub fn local_size(&self, rank: usize) -> u32 {
        self.local_size[rank]
    }

    /// The value of the `PMI_process_mapping` key.
    pub fn process_mapping(&self) -> String {
        process_mapping(&self.node_of_rank)
    }
}

/// MPICH's vector form of a rank-to-node map: `(vector,(start,count,per_node),...)`,
/// where each triple says "`count` consecutive nodes from `start` hold `per_node`
/// consecutive ranks each", the triples following each other in rank order.
///
/// One node with 4 ranks is `(vector,(0,1,4))`; 4 ranks over 2 nodes in blocks is
/// `(vector,(0,2,2))`; round robin is `(vector,(0,2,1),(0,2,1))`.
pub fn process_mapping(node_of_rank: &[u32]) -> String {
    // Runs of consecutive ranks on one node: (node, ranks).
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &n in node_of_rank {
        match runs.last_mut() {
            Some((node, len)) if *node == n => *len += 1,
            _ => runs.push((n, 1)),
        }
    }
    // Merge runs of equal length on consecutive nodes: (start, count, per_node).
    let mut triples: Vec<(u32, u32, u32)> = Vec::new();
    for (node, len) in runs {
        match triples.last_mut() {
            Some((start, count, per))
                if *per == len && node.checked_sub(*start) == Some(*count) =>
            {
                *count += 1
            }
            _ => triples.push((node, 1, len)),
        }
    }
    let mut s = String::from("(vector");
    for (start, count, per) in triples {
        let _ = write!(s, ",({start},{count},{per})");
    }
    s.push(')');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_node() {
        assert_eq!(process_mapping(&[0; 4]), "(vector,(0,1,4))");
        assert_eq!(process_mapping(&[0]), "(vector,(0,1,1))");
        let l = Layout::single_node(3);
        assert_eq!(l.process_mapping(), "(vector,(0,1,3))");
        assert_eq!((l.node(2), l.local_rank(2), l.local_size(2)), (0, 2, 3));
    }

    #[test]
    fn blocks_over_nodes() {
        assert_eq!(process_mapping(&[0, 0, 1, 1]), "(vector,(0,2,2))");
        assert_eq!(
            process_mapping(&[0, 0, 0, 1, 1, 1, 2, 2, 2]),
            "(vector,(0,3,3))"
        );
        // Uneven blocks: 3 on node 0, 2 on node 1.
        assert_eq!(
            process_mapping(&[0, 0, 0, 1, 1]),
            "(vector,(0,1,3),(1,1,2))"
        );
    }

    #[test]
    fn round_robin_and_irregular() {
        assert_eq!(process_mapping(&[0, 1, 0, 1]), "(vector,(0,2,1),(0,2,1))");
        assert_eq!(
            process_mapping(&[0, 1, 2, 0, 1, 2]),
            "(vector,(0,3,1),(0,3,1))"
        );
        assert_eq!(process_mapping(&[1, 1, 0, 0]), "(vector,(1,1,2),(0,1,2))");
        assert_eq!(
            process_mapping(&[2, 3, 3, 0]),
            "(vector,(2,1,1),(3,1,2),(0,1,1))"
        );
    }

    #[test]
    fn blocks_spread_ranks_evenly() {
        let l = Layout::blocks(7, 3);
        let nodes: Vec<u32> = (0..7).map(|r| l.node(r)).collect();
        assert_eq!(nodes, [0, 0, 0, 1, 1, 2, 2]);
        assert_eq!((l.local_rank(4), l.local_size(4)), (1, 2));
        assert_eq!(
            Layout::blocks(2, 5).size(),
            2,
            "more nodes than ranks: one rank each"
        );
        assert_eq!(l.process_mapping(), "(vector,(0,1,3),(1,2,2))");
    }

    #[test]
    fn local_ranks_multi_node() {
        let l = Layout::from_nodes(vec![0, 1, 0, 1, 1]);
        let got: Vec<_> = (0..l.size())
            .map(|r| (l.node(r), l.local_rank(r), l.local_size(r)))
            .collect();
        assert_eq!(
            got,
            vec![(0, 0, 2), (1, 0, 3), (0, 1, 2), (1, 1, 3), (1, 2, 3)]
        );
    }

    /// Expands a mapping back to node ids the way MPICH reads it, to check round trips.
    fn expand(mapping: &str) -> Vec<u32> {
        let body = mapping
            .strip_prefix("(vector,")
            .unwrap()
            .strip_suffix(')')
            .unwrap();
        let mut out = Vec::new();
        for t in body.split("),(") {
            let t = t.trim_matches(['(', ')']);
            let v: Vec<u32> = t.split(',').map(|x| x.parse().unwrap()).collect();
            for node in v[0]..v[0] + v[1] {
                out.extend(std::iter::repeat_n(node, v[2] as usize));
            }
        }
        out
    }

    #[test]
    fn round_trips() {
        let layouts: [&[u32]; 5] = [
            &[0, 0, 1, 1, 2, 2, 0],
            &[0, 1, 2, 3, 4, 5, 6, 7],
            &[5, 5, 5, 4, 4, 4],
            &[0, 0, 0, 1, 2, 2, 2, 3, 3],
            &[1, 0, 1, 0, 1, 0, 1],
        ];
        for nodes in layouts {
            assert_eq!(expand(&process_mapping(nodes)), nodes, "{nodes:?}");
        }
    }
}
