//! Point-to-point communication (MPI's chapter 3) as methods of [`Comm`]: blocking
//! `send`/`ssend`/`recv`/`recv_vec`/`probe`/`sendrecv`/`sendrecv_replace` and
//! nonblocking `isend`/`issend`/`irecv` within a [`crate::Scope`]. Each takes
//! [`PROC_NULL`] for a peer, and then moves nothing.
//!
//! Buffers are slices of plain-old-data types (`bytemuck::Pod`); sizes travel in
//! bytes. Invariant: a receive never writes past its buffer; a message that does not
//! fit is reported as [`Error::Truncated`](crate::Error::Truncated) and nothing of it is written. A message
//! that fits but is not a whole number of the buffer's elements (7 bytes into `[u32]`)
//! is written and reported as [`Error::PartialElement`](crate::Error::PartialElement).
//! A buffer of a zero-sized type (`[()]`) holds no bytes, so a message that is not
//! empty is truncated; `recv_vec`, whose vector is sized by the message, reports it as
//! [`Error::ZeroSizedElement`](crate::Error::ZeroSizedElement) instead. A receive that
//! fails in any of these ways has taken its message off the queue.

use bytemuck::Pod;

use crate::comm::Comm;
use crate::engine::requests::ReqId;
use crate::engine::{self, Probing, Started, matching::Pattern};
use crate::error::{Error, Rank, Result, Tag};
use crate::request::{Request, Scope};
use crate::status::{PROC_NULL, Source, Status, TagSel, is_whole, partial_element};
use crate::userbuf::{UserBuf, UserBufMut};

impl Comm {
    #[inline]
    pub(crate) fn pattern(&self, source: Source, tag: TagSel) -> Result<Pattern> {
        let from = match source {
            Source::Rank(r) => Some(self.world_rank(r)?),
            Source::Any => None,
        };
        Ok(Pattern::new(
            self.p2p_ctx(),
            source,
            Comm::check_tag_sel(tag)?,
            from,
        ))
    }

    /// A receive or probe from [`PROC_NULL`]: its status, at once (the tag checked);
    /// `None` for any other source.
    #[inline]
    pub(crate) fn from_null(source: Source, tag: TagSel) -> Result<Option<Status>> {
        if !source.is_null() {
            return Ok(None);
        }
        Comm::check_tag_sel(tag)?;
        Ok(Some(Status::proc_null()))
    }

    /// Starts a send: its request, or [`ReqId::DONE`] when it completed at once (to
    /// [`PROC_NULL`], at once). The
    /// error boxed, so that the result travels in two registers: returned through
    /// memory it cost the caller a store-forwarding stall (docs/benchmarks.md).
    fn post_send(
        &self,
        buf: &[u8],
        dest: Rank,
        tag: Tag,
        sync: bool,
    ) -> std::result::Result<ReqId, Box<Error>> {
        let start = || {
            if dest == PROC_NULL {
                Comm::check_tag(tag)?;
                return Ok(ReqId::DONE);
            }
            let peer = self.world_rank(dest)?;
            let tag = Comm::check_tag(tag)?;
            let (ctx, me) = (self.p2p_ctx(), self.rank());
            // SAFETY: send/ssend wait for the operation before they return;
            // isend/issend hand it to a scope that `buf` is borrowed for.
            let buf = unsafe { UserBuf::new(buf) };
            engine::with(|e| {
                Ok(e.start_send(ctx, me, peer, tag, buf, sync)?
                    .unwrap_or(ReqId::DONE))
            })
        };
        start().map_err(Box::new)
    }

    /// Starts a receive for a request (one is made also when the message was here
    /// already); the error boxed, as in [`Comm::post_send`].
    fn post_recv(pattern: Pattern, buf: UserBufMut) -> std::result::Result<ReqId, Box<Error>> {
        engine::with(|e| e.start_recv_request(pattern, buf)).map_err(Box::new)
    }

    /// Sends `buf` to rank `dest` with `tag` (`MPI_Send`). Returns once the buffer
    /// may be reused: small messages are on their way, large ones were received.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// world.send(&[1.5f64, 2.5], world.rank(), 0)?;
    /// let mut got = [0.0f64; 2];
    /// world.recv(&mut got, world.rank(), 0)?;
    /// assert_eq!(got, [1.5, 2.5]);
    /// # Ok(()) }
    /// ```
    pub fn send<T: Pod>(&self, buf: &[T], dest: Rank, tag: Tag) -> Result<()> {
        self.blocking_send(bytemuck::cast_slice(buf), dest, tag, false)
    }

    /// Sends `buf` and returns only once the receiver has matched it (`MPI_Ssend`).
    pub fn ssend<T: Pod>(&self, buf: &[T], dest: Rank, tag: Tag) -> Result<()> {
        self.blocking_send(bytemuck::cast_slice(buf), dest, tag, true)
    }

    fn blocking_send(&self, buf: &[u8], dest: Rank, tag: Tag, sync: bool) -> Result<()> {
        match self.post_send(buf, dest, tag, sync)? {
            ReqId::DONE => Ok(()),
            id => engine::with(|e| e.wait_send(Some(id), &[])),
        }
    }

    /// Receives a message matching `source` and `tag` into `buf` (`MPI_Recv`).
    /// Wildcards: [`crate::ANY_SOURCE`], [`crate::ANY_TAG`]. A message larger than
    /// `buf` is an [`Error::Truncated`](crate::Error::Truncated); one that is not a whole number of `T` is an
    /// [`Error::PartialElement`](crate::Error::PartialElement) (its bytes are in `buf`).
    /// A buffer of a zero-sized type holds no bytes: any message but an empty one is
    /// truncated.
    pub fn recv<T: Pod>(
        &self,
        buf: &mut [T],
        source: impl Into<Source>,
        tag: impl Into<TagSel>,
    ) -> Result<Status> {
        let (source, tag) = (source.into(), tag.into());
        if let Some(status) = Comm::from_null(source, tag)? {
            return Ok(status);
        }
        // SAFETY: the receive is waited for before this call returns.
        let buf = unsafe { UserBufMut::new(bytemuck::cast_slice_mut(buf)) };
        // The pattern is built inside the engine call, where it is posted: built
        // before it, it was stored in parts and read back whole, and that read
        // waited for this rank's last send to leave the core (docs/benchmarks.md).
        engine::with(|e| e.recv(self.pattern(source, tag)?, buf))?.whole(size_of::<T>())
    }

    /// Receives a message of any size matching `source` and `tag` into a new vector
    /// (probe, allocate, receive in one step, without a race with other receives).
    ///
    /// The message is taken off the queue whatever the outcome. One that is not a
    /// whole number of `T` is an [`Error::PartialElement`](crate::Error::PartialElement).
    /// With a zero-sized `T` (such as `()`), an empty message is an empty vector and
    /// any other an [`Error::ZeroSizedElement`](crate::Error::ZeroSizedElement)
    /// naming the type and the size (its data is not received).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// world.send(b"variable length", world.rank(), 3)?;
    /// let (text, status) = world.recv_vec::<u8>(oxmpi::ANY_SOURCE, 3)?;
    /// assert_eq!((&text[..], status.bytes), (&b"variable length"[..], 15));
    ///
    /// // No vector of `()` holds 4 bytes.
    /// world.send(&[7u32], world.rank(), 4)?;
    /// let wrong = world.recv_vec::<()>(oxmpi::ANY_SOURCE, 4);
    /// assert!(matches!(wrong, Err(oxmpi::Error::ZeroSizedElement { bytes: 4, .. })));
    /// # Ok(()) }
    /// ```
    pub fn recv_vec<T: Pod>(
        &self,
        source: impl Into<Source>,
        tag: impl Into<TagSel>,
    ) -> Result<(Vec<T>, Status)> {
        let (source, tag) = (source.into(), tag.into());
        if let Some(status) = Comm::from_null(source, tag)? {
            return Ok((Vec::new(), status));
        }
        let pattern = self.pattern(source, tag)?;
        let elem = size_of::<T>().max(1);
        engine::with(|e| {
            let msg = e.mprobe(&pattern, Probing::Receive)?;
            let size = msg.size();
            if size_of::<T>() == 0 && size > 0 {
                // Take the message anyway, into no bytes: refused as too long (its
                // data is dropped, not received), so nothing is left half done.
                // SAFETY: an empty buffer; nothing is ever written through it.
                return Err(
                    match e.recv_matched(msg, unsafe { UserBufMut::new(&mut []) }) {
                        Err(Error::Truncated {
                            source_rank, tag, ..
                        }) => zero_sized_element::<T>(source_rank, tag, size),
                        Err(other) => other,
                        Ok(status) => zero_sized_element::<T>(status.source, status.tag, size),
                    },
                );
            }
            if !is_whole(size, elem) {
                // Take the message anyway (into scratch) so nothing is left half done.
                let mut scratch = vec![0u8; size];
                // SAFETY: received before `scratch` is dropped.
                let status = e.recv_matched(msg, unsafe { UserBufMut::new(&mut scratch) })?;
                return Err(partial_element(&status, elem));
            }
            let mut out = vec![T::zeroed(); size / elem];
            // SAFETY: received before `out` is returned or dropped.
            let into = unsafe { UserBufMut::new(bytemuck::cast_slice_mut(&mut out)) };
            let status = e.recv_matched(msg, into)?;
            Ok((out, status))
        })
    }

    /// Waits for a message matching `source` and `tag` and returns its envelope
    /// without receiving it (`MPI_Probe`).
    pub fn probe(&self, source: impl Into<Source>, tag: impl Into<TagSel>) -> Result<Status> {
        let (source, tag) = (source.into(), tag.into());
        if let Some(status) = Comm::from_null(source, tag)? {
            return Ok(status);
        }
        let pattern = self.pattern(source, tag)?;
        engine::with(|e| e.probe(&pattern))
    }

    /// The envelope of a matching message if one has arrived (`MPI_Iprobe`). A
    /// `source` that has finalized gets `None`, as in MPI: a program may ask so
    /// whether anything of it is left.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// assert!(world.iprobe(oxmpi::ANY_SOURCE, 4)?.is_none());
    /// world.send(&[1u16, 2, 3], world.rank(), 4)?;
    /// let status = loop {
    ///     if let Some(status) = world.iprobe(oxmpi::ANY_SOURCE, 4)? {
    ///         break status;
    ///     }
    /// };
    /// assert_eq!(status.count::<u16>(), 3);
    /// # Ok(()) }
    /// ```
    pub fn iprobe(
        &self,
        source: impl Into<Source>,
        tag: impl Into<TagSel>,
    ) -> Result<Option<Status>> {
        let (source, tag) = (source.into(), tag.into());
        if let Some(status) = Comm::from_null(source, tag)? {
            return Ok(Some(status));
        }
        let pattern = self.pattern(source, tag)?;
        engine::with(|e| e.iprobe(&pattern))
    }

    /// Sends `send` to `dest` and receives into `recv` from `source` at once, without
    /// deadlock however the ranks pair up (`MPI_Sendrecv`). The receive fails as in
    /// [`Comm::recv`].
    #[allow(clippy::too_many_arguments)]
    pub fn sendrecv<S: Pod, R: Pod>(
        &self,
        send: &[S],
        dest: Rank,
        send_tag: Tag,
        recv: &mut [R],
        source: impl Into<Source>,
        recv_tag: impl Into<TagSel>,
    ) -> Result<Status> {
        let (source, recv_tag) = (source.into(), recv_tag.into());
        let null_recv = Comm::from_null(source, recv_tag)?;
        let pattern = match null_recv {
            Some(_) => None,
            None => Some(self.pattern(source, recv_tag)?),
        };
        let send_tag = Comm::check_tag(send_tag)?;
        let peer = match dest {
            PROC_NULL => None,
            _ => Some(self.world_rank(dest)?),
        };
        let (ctx, me) = (self.p2p_ctx(), self.rank());
        // SAFETY: both operations are waited for before this call returns.
        let (out, into) = unsafe {
            (
                UserBuf::new(bytemuck::cast_slice(send)),
                UserBufMut::new(bytemuck::cast_slice_mut(recv)),
            )
        };
        engine::with(|e| {
            let r = match (pattern, null_recv) {
                (Some(pattern), _) => e.start_recv(pattern, into)?,
                (None, status) => Started::Done(Ok(status.unwrap_or_else(Status::proc_null))),
            };
            let s = match peer {
                Some(peer) => e.start_send(ctx, me, peer, send_tag, out, false)?,
                None => None,
            };
            let pending = match r {
                Started::Pending(id) => Some(id),
                Started::Done(_) => None,
            };
            // A failure of the job on either side ends the call at once: the other
            // may wait for a live peer that waits for this rank.
            match e.wait_send(s, pending.as_slice()) {
                Err(err) if err.is_fatal() => Err(err),
                sent => {
                    let got = match r {
                        Started::Done(got) => got,
                        Started::Pending(id) => e.wait(id),
                    };
                    sent?;
                    got
                }
            }
        })?
        .whole(size_of::<R>())
    }

    /// Sends `buf` to `dest` and receives into it from `source` (`MPI_Sendrecv_replace`):
    /// what goes out is `buf` as it was when the call began (copied aside), and the
    /// message received must fit in it, as in [`Comm::recv`].
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let (rank, size) = (world.rank(), world.size());
    /// // Pass a value around the ring.
    /// let mut buf = [rank; 3];
    /// let from = (rank + size - 1) % size;
    /// world.sendrecv_replace(&mut buf, (rank + 1) % size, 0, from, 0)?;
    /// assert_eq!(buf, [from; 3]);
    /// # Ok(()) }
    /// ```
    pub fn sendrecv_replace<T: Pod>(
        &self,
        buf: &mut [T],
        dest: Rank,
        send_tag: Tag,
        source: impl Into<Source>,
        recv_tag: impl Into<TagSel>,
    ) -> Result<Status> {
        let out = buf.to_vec();
        self.sendrecv(&out, dest, send_tag, buf, source, recv_tag)
    }

    /// Starts sending `buf` (`MPI_Isend`); the buffer stays borrowed until the request
    /// completes or the scope ends.
    pub fn isend<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        buf: &'s [T],
        dest: Rank,
        tag: Tag,
    ) -> Result<Request<'s>> {
        let id = self.post_send(bytemuck::cast_slice(buf), dest, tag, false)?;
        Ok(scope.adopt_send(id))
    }

    /// Starts a synchronous send (`MPI_Issend`): completes once the receiver matched it.
    pub fn issend<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        buf: &'s [T],
        dest: Rank,
        tag: Tag,
    ) -> Result<Request<'s>> {
        let id = self.post_send(bytemuck::cast_slice(buf), dest, tag, true)?;
        Ok(scope.adopt_send(id))
    }

    /// Starts receiving into `buf` (`MPI_Irecv`); the buffer stays borrowed until the
    /// request completes or the scope ends. Completing it fails as [`Comm::recv`] does.
    pub fn irecv<'s, T: Pod>(
        &self,
        scope: &'s Scope<'s, '_>,
        buf: &'s mut [T],
        source: impl Into<Source>,
        tag: impl Into<TagSel>,
    ) -> Result<Request<'s>> {
        let (source, tag) = (source.into(), tag.into());
        if let Some(status) = Comm::from_null(source, tag)? {
            let id = engine::with(|e| Ok(e.finished(Ok(status))))?;
            return Ok(scope.adopt_recv(id, size_of::<T>()));
        }
        let pattern = self.pattern(source, tag)?;
        if size_of::<T>() > u32::MAX as usize {
            // A request keeps its element size in 32 bits (see `Scope::adopt_recv`).
            return Err(Error::InvalidArgument(format!(
                "irecv: elements of {} bytes; nonblocking receives take elements below 4 GiB",
                size_of::<T>()
            )));
        }
        // SAFETY: the scope adopts the receive, and `buf` is borrowed for the scope.
        let into = unsafe { UserBufMut::new(bytemuck::cast_slice_mut(buf)) };
        let id = Comm::post_recv(pattern, into)?;
        Ok(scope.adopt_recv(id, size_of::<T>()))
    }
}

/// The error of a message of `bytes` bytes (not 0) received as a vector of zero-sized
/// `T`.
#[cold]
fn zero_sized_element<T>(source_rank: Rank, tag: Tag, bytes: usize) -> Error {
    Error::ZeroSizedElement {
        source_rank,
        tag,
        bytes,
        type_name: std::any::type_name::<T>(),
    }
}
