//! Which collectives a rank waits in, as one PMI value, and the launcher's word that
//! another rank waits in a different one under the same number; and which
//! point-to-point operations a blocked rank waits for ([`Pending`]), for the
//! launcher's report of a deadlocked job.
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

impl Wait {
    /// The collective for a report: its name, its number on its communicator
    /// (counted from 0, oxmpi's own collectives included) and the communicator's
    /// collective context.
    ///
    /// ```
    /// use oxmpi::bootstrap::waits::Wait;
    /// let w = Wait { ctx: 3, incarnation: 1, seq: 7, code: 11 };
    /// assert_eq!(w.describe(), "alltoallv #7 on context 3");
    /// ```
    pub fn describe(&self) -> String {
        let name = crate::coll::select::Collective::from_route_code(self.code)
            .map_or("a collective", |(c, _)| c.name());
        format!("{name} #{} on context {}", self.seq, self.ctx)
    }
}

/// A point-to-point operation a blocked rank waits for (user communicators only: a
/// collective's own messages are named by its [`Wait`]), by world ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// A receive from a rank (`None`: any) with a tag (`None`: any).
    Recv {
        /// The sender, if one.
        from: Option<usize>,
        /// The tag, if one.
        tag: Option<i32>,
    },
    /// A blocking probe for a message from a rank (`None`: any) with a tag (`None`:
    /// any).
    Probe {
        /// The sender, if one.
        from: Option<usize>,
        /// The tag, if one.
        tag: Option<i32>,
    },
    /// A send to a rank that waits for its receive (a long or synchronous one).
    Send {
        /// The receiver.
        to: usize,
        /// The message's tag.
        tag: i32,
    },
}

/// What a rank blocked with nothing of its own on the way to a peer tells the
/// launcher with its question (see [`crate::bootstrap`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blocked {
    /// Its idle spell (`idle=`).
    pub(crate) spell: u64,
    /// The point-to-point operations it waits for (`on=`, `on_more=`).
    pub(crate) pending: Vec<Pending>,
    /// It waits at the end of an [`oxmpi::scope`](crate::scope) for operations its
    /// closure did not wait for (`scope_end=1`): left in flight on purpose, or by a
    /// closure that returned before waiting (by `?` on an error, say), whose value
    /// comes out only once they complete.
    pub(crate) scope_end: bool,
}

/// The most [`Pending`] operations a rank names.
pub const MAX_PENDING: usize = 8;

impl Pending {
    /// As a PMI word: `rFROM.TAG` (`*` for any), `pFROM.TAG` or `sTO.TAG`.
    ///
    /// ```
    /// use oxmpi::bootstrap::waits::Pending;
    /// let any = Pending::Recv { from: None, tag: Some(5) };
    /// assert_eq!(any.encode(), "r*.5");
    /// assert_eq!(Pending::decode("r*.5"), Some(any));
    /// let probe = Pending::Probe { from: Some(3), tag: None };
    /// assert_eq!(probe.encode(), "p3.*");
    /// assert_eq!(Pending::decode("p3.*"), Some(probe));
    /// assert_eq!(Pending::Send { to: 2, tag: 0 }.encode(), "s2.0");
    /// assert_eq!(Pending::decode("s*.0"), None);
    /// ```
    pub fn encode(&self) -> String {
        let any = |v: Option<String>| v.unwrap_or_else(|| "*".into());
        let matching = |kind: char, from: Option<usize>, tag: Option<i32>| {
            format!(
                "{kind}{}.{}",
                any(from.map(|f| f.to_string())),
                any(tag.map(|t| t.to_string()))
            )
        };
        match *self {
            Pending::Recv { from, tag } => matching('r', from, tag),
            Pending::Probe { from, tag } => matching('p', from, tag),
            Pending::Send { to, tag } => format!("s{to}.{tag}"),
        }
    }

    /// The word of [`Pending::encode`]; `None` if malformed.
    pub fn decode(word: &str) -> Option<Pending> {
        fn some<T: std::str::FromStr>(v: &str) -> Option<Option<T>> {
            if v == "*" {
                Some(None)
            } else {
                v.parse().ok().map(Some)
            }
        }
        let (who, tag) = word.get(1..)?.split_once('.')?;
        match word.as_bytes()[0] {
            b'r' => Some(Pending::Recv {
                from: some(who)?,
                tag: some(tag)?,
            }),
            b'p' => Some(Pending::Probe {
                from: some(who)?,
                tag: some(tag)?,
            }),
            b's' => Some(Pending::Send {
                to: who.parse().ok()?,
                tag: tag.parse().ok()?,
            }),
            _ => None,
        }
    }

    /// For a report.
    ///
    /// ```
    /// use oxmpi::bootstrap::waits::Pending;
    /// let r = Pending::Recv { from: Some(1), tag: None };
    /// assert_eq!(r.describe(), "a receive from rank 1 (any tag)");
    /// let p = Pending::Probe { from: None, tag: Some(4) };
    /// assert_eq!(p.describe(), "a probe for a message from any rank (tag 4)");
    /// ```
    pub fn describe(&self) -> String {
        let matching = |what: &str, from: Option<usize>, tag: Option<i32>| {
            format!(
                "{what} from {} ({})",
                from.map_or_else(|| "any rank".into(), |f| format!("rank {f}")),
                tag.map_or_else(|| "any tag".into(), |t| format!("tag {t}"))
            )
        };
        match *self {
            Pending::Recv { from, tag } => matching("a receive", from, tag),
            Pending::Probe { from, tag } => matching("a probe for a message", from, tag),
            Pending::Send { to, tag } => format!("a send to rank {to} (tag {tag})"),
        }
    }
}

/// `pending` as a PMI value (comma-separated words), at most [`MAX_PENDING`].
pub fn encode_pending(pending: &[Pending]) -> String {
    join_words(pending, MAX_PENDING, Pending::encode)
}

/// The operations of [`encode_pending`]; `None` if any is malformed.
///
/// ```
/// use oxmpi::bootstrap::waits::{Pending, decode_pending, encode_pending};
/// let p = [Pending::Recv { from: Some(0), tag: Some(5) }, Pending::Send { to: 3, tag: 1 }];
/// assert_eq!(decode_pending(&encode_pending(&p)), Some(p.to_vec()));
/// assert_eq!(decode_pending(""), Some(vec![]));
/// assert_eq!(decode_pending("x1.2"), None);
/// ```
pub fn decode_pending(text: &str) -> Option<Vec<Pending>> {
    split_words(text, MAX_PENDING, Pending::decode)
}

/// The first `most` of `items`, each as a word, comma-separated (one PMI value).
fn join_words<T>(items: &[T], most: usize, word: impl Fn(&T) -> String) -> String {
    let words: Vec<String> = items.iter().take(most).map(word).collect();
    words.join(",")
}

/// The first `most` words of a [`join_words`] value, each read by `word`; `None` if
/// any is malformed.
fn split_words<T>(text: &str, most: usize, word: impl Fn(&str) -> Option<T>) -> Option<Vec<T>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').take(most).map(word).collect()
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
    join_words(waits, MAX_WAITS, |w| {
        format!("{}.{:x}.{}.{}", w.ctx, w.incarnation, w.seq, w.code)
    })
}

/// The words of [`encode`]; `None` if any is malformed.
pub fn decode(text: &str) -> Option<Vec<Wait>> {
    split_words(text, MAX_WAITS, |word| {
        let mut parts = word.split('.');
        let w = Wait {
            ctx: parts.next()?.parse().ok()?,
            incarnation: u64::from_str_radix(parts.next()?, 16).ok()?,
            seq: parts.next()?.parse().ok()?,
            code: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(w)
    })
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
