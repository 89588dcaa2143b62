//! The frame every transport carries: a fixed 40-byte [`Header`] followed by
//! `payload` bytes, and the outgoing-frame descriptor the engine hands a transport.
//!
//! The layout is `#[repr(C)]`, free of padding and little-endian on the wire (oxmpi
//! refuses to build on big-endian hosts rather than mix byte orders). Transports read
//! `kind` and `payload` (for framing and to route [`Kind::Data`] straight into the
//! receiver's buffer) and may use `seq` (TCP numbers frames in it); the matching
//! fields belong to the engine.

use bytemuck::{Pod, Zeroable};

#[cfg(target_endian = "big")]
compile_error!("oxmpi's wire format is little-endian; big-endian hosts are not supported");

/// What a frame means. The meaning of [`Header::a`] and [`Header::b`] depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// A whole message inline. `a`: the sender's request id; with [`flags::SYNC`] the
    /// receiver answers [`Kind::SyncAck`] once the message is matched.
    Eager = 1,
    /// Request to send a large message. `a`: sender's request id, `b`: message size.
    Rts = 2,
    /// The receiver matched an RTS. `a`: sender's request id, `b`: receiver's request
    /// id. With [`flags::TRUNCATE`] the receiver refuses the data (its buffer is too
    /// small) and the sender completes without sending it.
    Cts = 3,
    /// A piece of a large message. `a`: receiver's request id, `b`: byte offset.
    Data = 4,
    /// A synchronous eager send was matched. `a`: sender's request id.
    SyncAck = 5,
    /// The receiver pulled a large message itself (single-copy): the sender may
    /// complete. `a`: sender's request id; the payload, if any, names more of them
    /// (native-endian `u64`s, messages read together).
    Fin = 6,
    /// The receiver matched eager messages: `a` bytes of eager credit come back.
    Credit = 7,
    /// The receiver of a single-copy message asks its sender to copy part of it too
    /// (shared memory, see `transport::shm::split`). `a`: sender's request id, `b`:
    /// the copy's generation; the payload is a [`HelpRequest`].
    Help = 8,
    /// The sender copied `b` chunks of the shared copy of generation `a`.
    Helped = 9,
    /// The sender has begun to finalize: nothing more comes from it, so a receive
    /// that only it could match, or a send it never matched, can never complete.
    Bye = 10,
}

impl Kind {
    pub(crate) fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Eager,
            2 => Kind::Rts,
            3 => Kind::Cts,
            4 => Kind::Data,
            5 => Kind::SyncAck,
            6 => Kind::Fin,
            7 => Kind::Credit,
            8 => Kind::Help,
            9 => Kind::Helped,
            10 => Kind::Bye,
            _ => return None,
        })
    }
}

/// Bits of [`Header::flags`].
pub(crate) mod flags {
    /// On [`super::Kind::Cts`]: the receiver's buffer is too small; send no data.
    pub const TRUNCATE: u8 = 1;
    /// On [`super::Kind::Rts`]: the payload holds a [`super::RemoteBuf`] the receiver
    /// may read directly with a single copy.
    pub const SINGLE_COPY: u8 = 2;
    /// On [`super::Kind::Eager`]: a synchronous send; acknowledge the match.
    pub const SYNC: u8 = 4;
    /// On a single-copy [`super::Kind::Rts`]: a message within the eager limit, its
    /// credit spent, offered for reading because the receiver asked for its size: a
    /// receiver with no receive for it reads it into its unexpected queue at once,
    /// so that the send completes as an eager one would.
    pub const BUFFERED: u8 = 8;
}

/// The fixed part of every frame.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable, PartialEq, Eq)]
pub(crate) struct Header {
    /// A [`Kind`] as a byte.
    pub kind: u8,
    /// Bits from [`flags`].
    pub flags: u8,
    /// The transport's own: TCP numbers the frames that must reach the engine in
    /// order here (`transport::tcp::order`); 0 elsewhere.
    pub seq: u16,
    /// Communicator context id (matching).
    pub ctx: u32,
    /// Sender's rank in the communicator (matching).
    pub src: i32,
    /// Message tag (matching).
    pub tag: i32,
    /// Bytes of payload that follow this header.
    pub payload: u64,
    /// Kind-specific, see [`Kind`].
    pub a: u64,
    /// Kind-specific, see [`Kind`].
    pub b: u64,
}

/// Size of a [`Header`] on the wire.
pub(crate) const HEADER_LEN: usize = std::mem::size_of::<Header>();
const _: () = assert!(HEADER_LEN == 40);

impl Header {
    pub(crate) fn new(kind: Kind) -> Header {
        Header {
            kind: kind as u8,
            ..Header::default()
        }
    }

    /// The header of a plain eager message (no request id: the send completed as it
    /// started) of `len` bytes with the envelope `env`.
    #[inline(always)]
    pub(crate) fn eager(env: Envelope, len: usize) -> Header {
        Header {
            kind: Kind::Eager as u8,
            ctx: env.ctx,
            src: env.src,
            tag: env.tag,
            payload: len as u64,
            ..Header::default()
        }
    }

    pub(crate) fn kind(&self) -> Option<Kind> {
        Kind::from_u8(self.kind)
    }

    /// The envelope the header carries (what [`Header::eager`] was given).
    #[inline(always)]
    pub(crate) fn envelope(&self) -> Envelope {
        Envelope {
            ctx: self.ctx,
            src: self.src,
            tag: self.tag,
        }
    }
}

/// What a receive matches a message by: communicator context, sender's rank in the
/// communicator, tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub ctx: u32,
    pub src: i32,
    pub tag: i32,
}

/// Where a sender's large-message buffer lives, for a receiver that can read another
/// process's memory (`process_vm_readv`). Carried as the payload of a single-copy RTS.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable, PartialEq, Eq)]
pub(crate) struct RemoteBuf {
    pub pid: u64,
    pub addr: u64,
}

impl RemoteBuf {
    /// The `len` bytes at `addr` in this process, lent to another process's
    /// `process_vm_*` call: counted towards backing the regions lent most by huge
    /// pages ([`huge_pages`](super::shm::huge_pages)) before anyone is told of them;
    /// with whether that tried to put some on huge pages just now (see
    /// [`huge_pages::lent`](super::shm::huge_pages::lent)). The pid is read once:
    /// `getpid` is a system call, which every large send made before (a forked child
    /// does not use oxmpi).
    pub(crate) fn lent(addr: usize, len: usize) -> (RemoteBuf, bool) {
        static PID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let collapsed = super::shm::huge_pages::lent(addr, len);
        let here = RemoteBuf {
            pid: *PID.get_or_init(|| u64::from(std::process::id())),
            addr: addr as u64,
        };
        (here, collapsed)
    }
}

/// Where the receiver of a shared single-copy message wants it, and how the copy is
/// cut into chunks. Carried as the payload of [`Kind::Help`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable, PartialEq, Eq)]
pub(crate) struct HelpRequest {
    pub dest: RemoteBuf,
    pub chunk: u64,
    /// The number of the message's first chunk among those of the copy (the messages
    /// of a copy shared at once are numbered one after the other).
    pub first: u64,
}

/// The payload of an outgoing frame.
pub(crate) enum Payload {
    /// No payload.
    Empty,
    /// Bytes in a user's send buffer, valid until the transport reports the frame's
    /// token as sent (the engine keeps the send request alive until then).
    User(crate::userbuf::UserBuf),
    /// Where a single-copy message lies in the sender's memory.
    Remote(RemoteBuf),
    /// Where the receiver of a shared copy wants the sender's chunks.
    Help(HelpRequest),
    /// Request ids of the frame's receiver beyond the one in the header (a FIN for
    /// several sends).
    Names(Vec<u64>),
}

impl Payload {
    pub(crate) fn len(&self) -> usize {
        match self {
            Payload::Empty => 0,
            Payload::User(u) => u.len(),
            Payload::Remote(r) => std::mem::size_of_val(r),
            Payload::Help(h) => std::mem::size_of_val(h),
            Payload::Names(n) => size_of_val(n.as_slice()),
        }
    }

    /// The payload bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Payload::Empty => &[],
            Payload::User(u) => u.as_slice(),
            Payload::Remote(r) => bytemuck::bytes_of(r),
            Payload::Help(h) => bytemuck::bytes_of(h),
            Payload::Names(n) => bytemuck::cast_slice(n),
        }
    }
}

/// A frame queued for a peer. When `token` is set, the transport reports it through
/// [`super::Sink::sent`] once the payload has left the user's buffer.
pub(crate) struct OutFrame {
    pub hdr: Header,
    pub payload: Payload,
    pub token: Option<u64>,
}

impl OutFrame {
    /// A plain eager message ([`Header::eager`]) of the bytes in `buf`.
    pub(crate) fn eager(env: Envelope, buf: crate::userbuf::UserBuf) -> OutFrame {
        OutFrame {
            hdr: Header::eager(env, buf.len()),
            payload: Payload::User(buf),
            token: None,
        }
    }
}
