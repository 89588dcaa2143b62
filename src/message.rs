//! Matched probes (`MPI_Mprobe`, `MPI_Improbe`, `MPI_Mrecv`): a probe that takes the
//! message it finds off the queue, so that no other receive can take it before the
//! program receives it, into a buffer sized from the status.
//!
//! Invariant: a [`Message`] holds its message until [`Message::recv`] takes it; one
//! dropped unreceived has its data dropped and its sender answered as a receive
//! would (acknowledged, given its credit back), so no sender waits for it forever.

use std::marker::PhantomData;

use bytemuck::Pod;

use crate::comm::Comm;
use crate::engine::{self, Probing, matching::Unexpected};
use crate::error::Result;
use crate::status::{Source, Status, TagSel};
use crate::userbuf::UserBufMut;

/// A message a matched probe took off the queue (`MPI_Message`), to be received with
/// [`Message::recv`]. It stays on the thread of the probe, as every oxmpi call does.
/// A probe of [`crate::PROC_NULL`] gives a message of nothing
/// (`MPI_MESSAGE_NO_PROC`), whose receive writes nothing.
pub struct Message {
    msg: Option<Unexpected>,
    status: Status,
    _funneled: PhantomData<*const ()>,
}

impl std::fmt::Debug for Message {
    /// Its envelope.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("status", &self.status)
            .finish()
    }
}

impl Message {
    fn new(msg: Option<Unexpected>, status: Status) -> Message {
        Message {
            msg,
            status,
            _funneled: PhantomData,
        }
    }

    /// Receives the message into `buf` (`MPI_Mrecv`); fails as [`Comm::recv`] does (a
    /// message larger than `buf` is an [`crate::Error::Truncated`], and is gone).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// world.send(&[4u16, 5, 6], world.rank(), 8)?;
    /// let (message, status) = world.mprobe(oxmpi::ANY_SOURCE, oxmpi::ANY_TAG)?;
    /// // No other receive can take it now; size the buffer from its status.
    /// let mut buf = vec![0u16; status.count::<u16>()];
    /// let got = message.recv(&mut buf)?;
    /// assert_eq!((got.tag, buf), (8, vec![4, 5, 6]));
    /// # Ok(()) }
    /// ```
    pub fn recv<T: Pod>(mut self, buf: &mut [T]) -> Result<Status> {
        let Some(msg) = self.msg.take() else {
            return Ok(self.status);
        };
        // SAFETY: the receive is waited for before this call returns.
        let into = unsafe { UserBufMut::new(bytemuck::cast_slice_mut(buf)) };
        engine::with(|e| e.recv_matched(msg, into))?.whole(size_of::<T>())
    }
}

impl Drop for Message {
    /// Drops a message that was never received: its data is dropped and its sender
    /// answered (errors are ignored: after finalize there is nobody to answer).
    fn drop(&mut self) {
        if let Some(msg) = self.msg.take() {
            // SAFETY: an empty buffer; nothing is ever written through it.
            let nowhere = unsafe { UserBufMut::new(&mut []) };
            let _ = engine::with(|e| e.recv_matched(msg, nowhere));
        }
    }
}

impl Comm {
    /// Waits for a message matching `source` and `tag` and takes it off the queue
    /// (`MPI_Mprobe`): only [`Message::recv`] can receive it then, even where other
    /// receives or probes of this rank would match it.
    pub fn mprobe(
        &self,
        source: impl Into<Source>,
        tag: impl Into<TagSel>,
    ) -> Result<(Message, Status)> {
        let (source, tag) = (source.into(), tag.into());
        if let Some(status) = Comm::from_null(source, tag)? {
            return Ok((Message::new(None, status), status));
        }
        let pattern = self.pattern(source, tag)?;
        let msg = engine::with(|e| e.mprobe(&pattern, Probing::Probe))?;
        let status = msg.status();
        Ok((Message::new(Some(msg), status), status))
    }

    /// [`Comm::mprobe`] without waiting (`MPI_Improbe`): `None` when no matching
    /// message has arrived.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// assert!(world.improbe(oxmpi::ANY_SOURCE, 3)?.is_none());
    /// world.send(b"abc", world.rank(), 3)?;
    /// let (message, status) = loop {
    ///     if let Some(found) = world.improbe(oxmpi::ANY_SOURCE, 3)? {
    ///         break found;
    ///     }
    /// };
    /// // A plain probe no longer sees it.
    /// assert!(world.iprobe(oxmpi::ANY_SOURCE, 3)?.is_none());
    /// let mut buf = vec![0u8; status.bytes];
    /// message.recv(&mut buf)?;
    /// assert_eq!(buf, b"abc");
    /// # Ok(()) }
    /// ```
    pub fn improbe(
        &self,
        source: impl Into<Source>,
        tag: impl Into<TagSel>,
    ) -> Result<Option<(Message, Status)>> {
        let (source, tag) = (source.into(), tag.into());
        if let Some(status) = Comm::from_null(source, tag)? {
            return Ok(Some((Message::new(None, status), status)));
        }
        let pattern = self.pattern(source, tag)?;
        let msg = engine::with(|e| e.improbe(&pattern))?;
        Ok(msg.map(|msg| {
            let status = msg.status();
            (Message::new(Some(msg), status), status)
        }))
    }
}
