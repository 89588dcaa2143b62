//! Transports: move frames between this process and its peers.
//!
//! A transport knows peers by world rank and frames by [`frame::Header::kind`] and
//! length (and its own [`frame::Header::seq`]); tags and communicators are the
//! engine's business. Each transport hands a peer's frames that take part in matching
//! (eager, request to send), its clear-to-send and its goodbye to the engine in the
//! order the peer handed them in (the engine's non-overtaking rule rests on that; TCP
//! numbers them, since they may travel two connections), and always takes what
//! arrives: the engine bounds what it buffers with eager credits, so no transport ever
//! has to hold frames back for want of room. The engine drives transports through
//! [`Transport`] and receives what arrives through [`Sink`]; [`Network`](network::Network) routes each
//! peer to one transport.

pub(crate) mod frame;
pub(crate) mod loopback;
pub(crate) mod network;
pub(crate) mod shm;
pub(crate) mod tcp;

use crate::error::Result;
use crate::userbuf::UserBufMut;
use frame::{Header, OutFrame};

/// What a transport delivers into (the engine's matching and protocol layer).
pub(crate) trait Sink {
    /// A complete frame other than [`frame::Kind::Data`] arrived from `peer`.
    fn frame(&mut self, peer: usize, hdr: &Header, payload: &[u8]) -> Result<()>;
    /// Where the payload of the data frame `hdr` from `peer` goes: exactly
    /// `hdr.payload` bytes, or an error when the frame names no live receive.
    fn data_dest(&mut self, peer: usize, hdr: &Header) -> Result<UserBufMut>;
    /// All of the data frame `hdr` has been written to [`Sink::data_dest`].
    fn data_done(&mut self, peer: usize, hdr: &Header) -> Result<()>;
    /// The payload of a queued frame carrying `token` has left the user's buffer.
    fn sent(&mut self, token: u64) -> Result<()>;
}

/// One way of reaching peers.
pub(crate) trait Transport {
    /// Sends `frame` to `peer`, or queues it behind earlier frames to that peer.
    /// Returns true when the payload has already left the user's buffer; otherwise the
    /// frame's token (if any) is reported through [`Sink::sent`] later.
    fn send(&mut self, peer: usize, frame: OutFrame) -> Result<bool>;
    /// Gives the frame just queued for `peer` (the last [`Transport::send`] returned
    /// false) the token to report when its payload has left the user's buffer.
    fn tag_last(&mut self, peer: usize, token: u64);
    /// Moves whatever can move without blocking. Returns whether anything happened.
    fn progress(&mut self, sink: &mut dyn Sink) -> Result<bool>;
    /// Largest message this transport carries inline (eagerly).
    fn eager_limit(&self) -> usize;
}
