//! MPI matching: the posted-receive queue and the unexpected-message queue.
//!
//! Invariants: a message is compared with posted receives in the order they were
//! posted, and a receive with unexpected messages in the order they arrived, so the
//! first match is always the oldest (MPI's non-overtaking rule, given transports that
//! keep each sender's frames in order). A large message is only ever queued as its
//! announcement (RTS); eager credits ([`super::credits`]) bound the eager data here.
//!
//! Both queues are kept by sender ([`super::bins`]), so that a receive naming its
//! source never walks past other senders' messages: one queue in arrival order made
//! receiving a flood from several ranks sender by sender quadratic (100 000 8-byte
//! messages from 3 ranks: 4-7 s, now 0.02 s).

use super::bins::{Bins, Found};
use super::requests::ReqId;
use crate::status::{Source, Status, TagSel};
pub(crate) use crate::transport::frame::Envelope;
use crate::transport::frame::RemoteBuf;

/// A posted receive's selectors, packed into two words. Its four 32-bit fields
/// were built with narrower stores than the wide loads that copy a pattern into the
/// posted queue, and such a load waits until every older store has left the core,
/// this rank's last send into a peer's ring among them (store-forwarding,
/// docs/benchmarks.md). Two words are built, passed and copied as two words.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pattern {
    /// The context (low half) and the world rank of the only sender that can match
    /// (high half; [`Pattern::ANY_WORLD`]: any source).
    ctx_from: u64,
    /// The sender's communicator rank (low half) and the tag (high half), each
    /// [`Pattern::ANY`] for any.
    src_tag: u64,
}

impl Pattern {
    /// Any source or any tag (valid ones are never negative).
    const ANY: i32 = -1;
    const ANY_WORLD: u32 = u32::MAX;

    /// Messages in context `ctx` from `src` (world rank `from`, `None` for any
    /// source) with tags `tag`.
    #[inline]
    pub(crate) fn new(ctx: u32, src: Source, tag: TagSel, from: Option<usize>) -> Pattern {
        let from = from.map_or(Self::ANY_WORLD, |w| w as u32);
        let src = match src {
            Source::Rank(r) => r,
            Source::Any => Self::ANY,
        };
        let tag = match tag {
            TagSel::Tag(t) => t,
            TagSel::Any => Self::ANY,
        };
        Pattern {
            ctx_from: u64::from(ctx) | u64::from(from) << 32,
            src_tag: u64::from(src as u32) | u64::from(tag as u32) << 32,
        }
    }

    /// The context the receive listens on.
    #[inline]
    pub(crate) fn ctx(&self) -> u32 {
        self.ctx_from as u32
    }

    /// The tag it matches (`None`: any).
    pub(crate) fn tag(&self) -> Option<i32> {
        let tag = (self.src_tag >> 32) as u32 as i32;
        (tag != Self::ANY).then_some(tag)
    }

    /// World rank of the only sender that can match (`None`: any source).
    #[inline]
    pub(crate) fn from(&self) -> Option<usize> {
        let from = (self.ctx_from >> 32) as u32;
        (from != Self::ANY_WORLD).then_some(from as usize)
    }

    #[inline]
    pub(crate) fn matches(&self, env: &Envelope) -> bool {
        let (src, tag) = (
            self.src_tag as u32 as i32,
            (self.src_tag >> 32) as u32 as i32,
        );
        self.ctx() == env.ctx
            && (src == Self::ANY || src == env.src)
            && (tag == Self::ANY || tag == env.tag)
    }
}

/// Bytes of an unexpected eager message: small ones inline (no allocation), larger ones
/// on the heap.
#[derive(Debug)]
pub(crate) enum Stored {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

/// Largest payload stored inline.
const INLINE: usize = 48;

impl Stored {
    pub(crate) fn new(data: &[u8]) -> Stored {
        if data.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..data.len()].copy_from_slice(data);
            Stored::Inline {
                len: data.len() as u8,
                bytes,
            }
        } else {
            Stored::Heap(data.into())
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Stored::Inline { len, bytes } => &bytes[..*len as usize],
            Stored::Heap(b) => b,
        }
    }
}

/// A message that arrived before its receive was posted.
#[derive(Debug)]
pub(crate) struct Unexpected {
    /// World rank of the sender.
    pub peer: usize,
    pub env: Envelope,
    pub body: Body,
}

#[derive(Debug)]
pub(crate) enum Body {
    /// A small message, copied. `sync`: the sender's request id to acknowledge.
    Eager { data: Stored, sync: Option<u64> },
    /// A large message's announcement (`buffered`: see
    /// [`crate::transport::frame::flags::BUFFERED`]).
    Rts {
        sreq: u64,
        size: usize,
        remote: Option<RemoteBuf>,
        buffered: bool,
    },
}

impl Unexpected {
    /// Size of the message in bytes.
    /// Its envelope, as a receive or probe reports it.
    pub(crate) fn status(&self) -> Status {
        Status {
            source: self.env.src,
            tag: self.env.tag,
            bytes: self.size(),
        }
    }

    pub(crate) fn size(&self) -> usize {
        match &self.body {
            Body::Eager { data, .. } => data.as_slice().len(),
            Body::Rts { size, .. } => *size,
        }
    }

    /// The eager credit this message holds until a receive takes it: an eager
    /// message's length, or a buffered offer's size (a plain announcement holds none).
    pub(crate) fn credit(&self) -> Option<usize> {
        match &self.body {
            Body::Eager { data, .. } => Some(data.as_slice().len()),
            Body::Rts { size, buffered, .. } => buffered.then_some(*size),
        }
    }
}

/// Both queues, each kept by sender ([`Bins`]): a receive from one source looks only
/// at that source's messages, and a message only at the receives that name its sender
/// or any source.
#[derive(Default)]
pub(crate) struct Matcher {
    /// Posted receives: bin 0 for any source, world rank + 1 for one.
    posted: Bins<(Pattern, ReqId)>,
    /// Unexpected messages by sender's world rank.
    unexpected: Bins<Unexpected>,
}

/// The posted queue's bin for receives from `from` (`None`: any source).
#[inline]
fn posted_bin(from: Option<usize>) -> usize {
    from.map_or(0, |w| w + 1)
}

impl Matcher {
    pub(crate) fn new() -> Matcher {
        Matcher::default()
    }

    /// Removes and returns the oldest posted receive matching `env`, sent by world
    /// rank `peer`.
    #[inline]
    pub(crate) fn take_posted(&mut self, peer: usize, env: &Envelope) -> Option<ReqId> {
        if self.posted.is_empty() {
            return None;
        }
        let matches = |(p, _): &(Pattern, ReqId)| p.matches(env);
        // The sender's receives are searched only up to the oldest any-source match.
        let any = self.posted.find_in(posted_bin(None), matches);
        let limit = any.map_or(u64::MAX, Found::arrived);
        let named = self
            .posted
            .find_in_before(posted_bin(Some(peer)), limit, matches);
        Some(self.posted.remove(named.or(any)?).1)
    }

    /// Queues a posted receive. Inlined: a pattern passed by reference was read
    /// with a wider load than the stores that built it (see [`Pattern`]).
    #[inline]
    pub(crate) fn post(&mut self, pattern: Pattern, id: ReqId) {
        self.posted.push(posted_bin(pattern.from()), (pattern, id));
    }

    /// Removes the posted receives `doomed` picks (by pattern and id); returns their
    /// ids.
    pub(crate) fn take_posted_where(
        &mut self,
        doomed: impl Fn(&Pattern, ReqId) -> bool,
    ) -> Vec<ReqId> {
        let mut taken = Vec::new();
        self.posted
            .take_where(|(p, id)| doomed(p, *id), |(_, id)| taken.push(id));
        taken
    }

    /// Whether any receive is posted.
    pub(crate) fn has_posted(&self) -> bool {
        !self.posted.is_empty()
    }

    /// Every posted receive's pattern, oldest first within each sender's queue.
    pub(crate) fn posted_patterns(&self) -> impl Iterator<Item = &Pattern> {
        self.posted.iter().map(|(p, _)| p)
    }

    /// Whether a posted receive satisfies `test` (by pattern and id).
    pub(crate) fn any_posted(&self, test: impl Fn(&Pattern, ReqId) -> bool) -> bool {
        self.posted.iter().any(|(p, id)| test(p, *id))
    }

    /// Whether any message waits unmatched.
    #[inline]
    pub(crate) fn has_unexpected(&self) -> bool {
        !self.unexpected.is_empty()
    }

    pub(crate) fn push_unexpected(&mut self, msg: Unexpected) {
        self.unexpected.push(msg.peer, msg);
    }

    /// How many messages were ever queued unmatched.
    pub(crate) fn queued(&self) -> u64 {
        self.unexpected.arrivals()
    }

    /// The unexpected messages still waiting of those queued after the first `since`
    /// ([`Matcher::queued`] then).
    pub(crate) fn queued_since(&self, since: u64) -> impl Iterator<Item = &Unexpected> {
        self.unexpected.pushed_since(since)
    }

    /// Where the oldest unexpected message `pattern` matches is.
    #[inline]
    fn find_unexpected(&self, pattern: &Pattern) -> Option<Found> {
        let matches = |u: &Unexpected| pattern.matches(&u.env);
        match pattern.from() {
            Some(peer) => self.unexpected.find_in(peer, matches),
            None => self.unexpected.find_oldest(matches),
        }
    }

    /// The oldest unexpected message `pattern` matches, left in place.
    pub(crate) fn peek_unexpected(&self, pattern: &Pattern) -> Option<&Unexpected> {
        let found = self.find_unexpected(pattern)?;
        Some(self.unexpected.get(found))
    }

    /// Removes and returns the oldest unexpected message `pattern` matches.
    pub(crate) fn take_unexpected(&mut self, pattern: &Pattern) -> Option<Unexpected> {
        let found = self.find_unexpected(pattern)?;
        Some(self.unexpected.remove(found))
    }

    /// Removes and returns the oldest unexpected message `pattern` matches if it is an
    /// eager one (a large one needs a request for its rendezvous).
    #[inline]
    pub(crate) fn take_unexpected_eager(&mut self, pattern: &Pattern) -> Option<Unexpected> {
        let found = self.find_unexpected(pattern)?;
        if !matches!(self.unexpected.get(found).body, Body::Eager { .. }) {
            return None;
        }
        Some(self.unexpected.remove(found))
    }

    /// The unexpected announcement of send request `sreq` of `peer`, if no receive
    /// has taken it yet.
    pub(crate) fn unexpected_rts(&mut self, peer: usize, sreq: u64) -> Option<&mut Unexpected> {
        self.unexpected.find_newest_in_mut(
            peer,
            |u| matches!(u.body, Body::Rts { sreq: s, .. } if s == sreq),
        )
    }

    /// Removes the unexpected messages `doomed` picks; returns how many.
    pub(crate) fn drop_unexpected_where(
        &mut self,
        mut doomed: impl FnMut(&Unexpected) -> bool,
    ) -> usize {
        let mut dropped = 0;
        self.unexpected.take_where(&mut doomed, |_| dropped += 1);
        dropped
    }

    /// Drops every unexpected message (at finalize: nobody will receive them).
    pub(crate) fn clear_unexpected(&mut self) {
        self.unexpected.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(src: i32, tag: i32) -> Envelope {
        Envelope { ctx: 0, src, tag }
    }

    fn eager(src: i32, tag: i32, byte: u8) -> Unexpected {
        Unexpected {
            peer: src as usize,
            env: env(src, tag),
            body: Body::Eager {
                data: Stored::new(&[byte]),
                sync: None,
            },
        }
    }

    #[test]
    fn oldest_match_first_with_wildcards() {
        let mut m = Matcher::new();
        m.push_unexpected(eager(1, 5, 1));
        m.push_unexpected(eager(2, 6, 2));
        m.push_unexpected(eager(1, 6, 3));
        let any = Pattern::new(0, Source::Any, TagSel::Tag(6), None);
        assert_eq!(m.peek_unexpected(&any).unwrap().env, env(2, 6));
        let first = m.take_unexpected(&any).unwrap();
        assert_eq!(first.env, env(2, 6));
        let from1 = Pattern::new(0, Source::Rank(1), TagSel::Any, Some(1));
        assert_eq!(m.take_unexpected(&from1).unwrap().env, env(1, 5));
        assert_eq!(m.take_unexpected(&from1).unwrap().env, env(1, 6));
        assert!(m.take_unexpected(&from1).is_none());
        let other_ctx = Pattern::new(2, Source::Any, TagSel::Any, None);
        m.push_unexpected(eager(1, 5, 1));
        assert!(m.take_unexpected(&other_ctx).is_none());
    }

    #[test]
    fn stored_bytes_round_trip_inline_and_on_the_heap() {
        for len in [0, 1, 47, 48, 49, 1000] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            assert_eq!(Stored::new(&data).as_slice(), &data[..]);
        }
        assert!(matches!(Stored::new(&[1; 48]), Stored::Inline { .. }));
        assert!(matches!(Stored::new(&[1; 49]), Stored::Heap(_)));
    }

    #[test]
    fn posted_in_order() {
        let mut m = Matcher::new();
        let p = Pattern::new(0, Source::Any, TagSel::Any, None);
        m.post(p, ReqId(1));
        m.post(p, ReqId(2));
        assert_eq!(m.take_posted(3, &env(3, 3)), Some(ReqId(1)));
        assert_eq!(m.take_posted(3, &env(3, 3)), Some(ReqId(2)));
        assert!(m.take_posted(3, &env(3, 3)).is_none());
    }

    #[test]
    fn posted_receives_for_one_source_and_for_any_keep_their_order() {
        let mut m = Matcher::new();
        let from3 = Pattern::new(0, Source::Rank(3), TagSel::Any, Some(3));
        let any = Pattern::new(0, Source::Any, TagSel::Any, None);
        let tag7 = Pattern::new(0, Source::Rank(3), TagSel::Tag(7), Some(3));
        m.post(tag7, ReqId(0));
        m.post(from3, ReqId(1));
        m.post(any, ReqId(2));
        m.post(from3, ReqId(3));
        assert_eq!(m.take_posted(4, &env(4, 1)), Some(ReqId(2)), "any source");
        m.post(any, ReqId(4));
        assert_eq!(m.take_posted(3, &env(3, 1)), Some(ReqId(1)));
        assert_eq!(m.take_posted(3, &env(3, 1)), Some(ReqId(3)));
        assert_eq!(m.take_posted(3, &env(3, 1)), Some(ReqId(4)));
        assert!(m.take_posted(3, &env(3, 1)).is_none());
        assert_eq!(m.take_posted(3, &env(3, 7)), Some(ReqId(0)));
        assert!(!m.has_posted());
    }
}
