//! Which collectives a rank waits in, as one PMI value, and the launcher's word that
//! another rank waits in a different one under the same number.
//!
//! Ranks that call different collectives at the same point of a communicator, and
//! that only wait to receive in them (a bcast's reader beside ranks in a barrier that
//! sends it nothing), never see each other's messages. A rank that has waited long
//! enough to ask the launcher for silent peers (see [`crate::bootstrap`]) also says
//! which collectives it waits in (`waits=`); the launcher keeps each rank's latest
//! words and answers a rank one of whose collectives another rank waits in as a
//! different collective (`clash=`). A collective is named by its communicator's
//! collective context, the communicator's incarnation (every member computes the same
//! one, and a later communicator given the same context has another), its number on
//! the communicator and its code; ranks that were ever in different collectives
//! under the same name called different collectives there, so an old word can be
//! compared with a new one.

/// One collective a rank waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// The communicator's collective context id.
    pub ctx: u32,
    /// The communicator's incarnation.
    pub incarnation: u64,
    /// The collective's number on the communicator.
    pub seq: u32,
    /// Which collective it is, and how it runs.
    pub code: u8,
}

impl Wait {
    /// Whether `other` names the same collective (context, incarnation, number),
    /// whatever its code.
    pub fn same_name(&self, other: &Wait) -> bool {
        (self.ctx, self.incarnation, self.seq) == (other.ctx, other.incarnation, other.seq)
    }

    /// Whether `other` is another collective under this one's name.
    pub fn clashes(&self, other: &Wait) -> bool {
        self.same_name(other) && self.code != other.code
    }
}

/// The most words a rank sends; it waits in one blocking collective and a few
/// nonblocking ones at a time, and the line stays short.
pub const MAX_WAITS: usize = 32;

/// `waits` as a PMI value: `CTX.INCARNATION.SEQ.CODE` (the incarnation in hex),
/// comma-separated; at most [`MAX_WAITS`] of them.
///
/// ```
/// use oxmpi::bootstrap::waits::{Wait, encode, decode};
/// let w = Wait { ctx: 3, incarnation: 0xabc, seq: 7, code: 2 };
/// assert_eq!(encode(&[w]), "3.abc.7.2");
/// assert_eq!(decode("3.abc.7.2"), Some(vec![w]));
/// assert_eq!(decode(""), Some(vec![]));
/// assert_eq!(decode("3.abc.7"), None);
/// ```
pub fn encode(waits: &[Wait]) -> String {
    let words: Vec<String> = waits
        .iter()
        .take(MAX_WAITS)
        .map(|w| format!("{}.{:x}.{}.{}", w.ctx, w.incarnation, w.seq, w.code))
        .collect();
    words.join(",")
}

/// The words of [`encode`]; `None` if any is malformed.
pub fn decode(text: &str) -> Option<Vec<Wait>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',')
        .take(MAX_WAITS)
        .map(|word| {
            let mut parts = word.split('.');
            let w = Wait {
                ctx: parts.next()?.parse().ok()?,
                incarnation: u64::from_str_radix(parts.next()?, 16).ok()?,
                seq: parts.next()?.parse().ok()?,
                code: parts.next()?.parse().ok()?,
            };
            parts.next().is_none().then_some(w)
        })
        .collect()
}

/// The launcher's word that world rank `peer` waits in `theirs`, another collective
/// under the name of one this rank waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clash {
    /// The other rank, by world rank.
    pub peer: usize,
    /// The collective it waits in.
    pub theirs: Wait,
}

impl Clash {
    /// As a PMI value: `PEER.` then the other rank's word.
    ///
    /// ```
    /// use oxmpi::bootstrap::waits::{Clash, Wait};
    /// let theirs = Wait { ctx: 3, incarnation: 1, seq: 7, code: 9 };
    /// let clash = Clash { peer: 5, theirs };
    /// assert_eq!(clash.encode(), "5.3.1.7.9");
    /// assert_eq!(Clash::decode("5.3.1.7.9"), Some(clash));
    /// assert_eq!(Clash::decode("5.3.1.7"), None);
    /// ```
    pub fn encode(&self) -> String {
        format!("{}.{}", self.peer, encode(&[self.theirs]))
    }

    /// The value of [`Clash::encode`]; `None` if malformed.
    pub fn decode(text: &str) -> Option<Clash> {
        let (peer, word) = text.split_once('.')?;
        match decode(word)?.as_slice() {
            [theirs] => Some(Clash {
                peer: peer.parse().ok()?,
                theirs: *theirs,
            }),
            _ => None,
        }
    }
}

/// The first of `mine` that a word of another rank in `others` (world rank, its
/// words) clashes with: that rank and its word.
///
/// ```
/// use oxmpi::bootstrap::waits::{Clash, Wait, first_clash};
/// let w = |incarnation, code| Wait { ctx: 3, incarnation, seq: 0, code };
/// let others = [(1, vec![w(1, 5)]), (2, vec![w(2, 9)])];
/// // The same name with another code clashes; another incarnation does not.
/// assert_eq!(first_clash(&[w(2, 4)], others.iter().map(|(r, v)| (*r, v.as_slice()))),
///            Some(Clash { peer: 2, theirs: w(2, 9) }));
/// assert_eq!(first_clash(&[w(1, 5)], others.iter().map(|(r, v)| (*r, v.as_slice()))), None);
/// ```
pub fn first_clash<'a>(
    mine: &[Wait],
    others: impl Iterator<Item = (usize, &'a [Wait])> + Clone,
) -> Option<Clash> {
    mine.iter().find_map(|m| {
        others.clone().find_map(|(peer, theirs)| {
            theirs
                .iter()
                .find(|t| m.clashes(t))
                .map(|&theirs| Clash { peer, theirs })
        })
    })
}
