//! The one error type of the public API, with messages a user can act on.
//!
//! Every fallible call returns `Result<_, Error>`. Usage errors (a bad rank, a buffer
//! too small) are always returned; transport failures (a dead peer, a malformed frame)
//! end the job by default (see [`crate::environment::ErrorMode`]).

use std::fmt;
use std::io;

/// A rank number within a communicator (`MPI_Comm_rank`).
pub type Rank = i32;
/// A message tag (`MPI_TAG`): any value in `0..=TAG_UB`.
pub type Tag = i32;

/// Everything that can go wrong in an oxmpi call.
///
/// Its `Debug` form is its message, as its `Display` form: that is what a `main`
/// returning [`crate::Result`] prints after `Error: ` when it fails (the fields are
/// public for a program that looks at them).
///
/// ```
/// let e = oxmpi::Error::InvalidRank { rank: 4, size: 4 };
/// assert_eq!(format!("{e:?}"), "rank 4 is out of range for a communicator of size 4");
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A call was made before [`crate::init`] or after the universe was finalized.
    #[error(
        "oxmpi is not initialized (call oxmpi::init() first and keep the Universe alive; no call works after finalize)"
    )]
    NotInitialized,
    /// [`crate::init`] was called after this process finalized (as `MPI_Init` after
    /// `MPI_Finalize`).
    #[error("oxmpi was finalized in this process and cannot be initialized again")]
    Finalized,
    /// A call came from another thread than the one that called [`crate::init`]
    /// (oxmpi offers `MPI_THREAD_FUNNELED`).
    #[error("oxmpi calls must come from the thread that called oxmpi::init (MPI_THREAD_FUNNELED)")]
    WrongThread,
    /// [`crate::init`] was called while a universe is alive, or while another thread
    /// was in `init`.
    #[error("oxmpi is already initialized in this process")]
    AlreadyInitialized,
    /// A destination or source rank outside the communicator.
    #[error("rank {rank} is out of range for a communicator of size {size}")]
    InvalidRank {
        /// The rank given.
        rank: Rank,
        /// The communicator's size.
        size: i32,
    },
    /// A negative tag (other than the receive wildcard) or one above [`crate::TAG_UB`].
    #[error("tag {tag} is invalid (tags run from 0 to {})", crate::TAG_UB)]
    InvalidTag {
        /// The tag given.
        tag: Tag,
    },
    /// A message arrived that is larger than the receive buffer; nothing was written.
    #[error(
        "message truncated: {message_bytes} bytes from rank {source_rank} (tag {tag}) do not fit in a buffer of {buffer_bytes} bytes"
    )]
    Truncated {
        /// Sender's rank in the communicator.
        source_rank: Rank,
        /// The message's tag.
        tag: Tag,
        /// Size of the message that arrived.
        message_bytes: usize,
        /// Size of the buffer it was to go into.
        buffer_bytes: usize,
    },
    /// A received message's size is not a whole number of elements of the buffer type.
    #[error(
        "message of {bytes} bytes from rank {source_rank} with tag {tag} is not a whole number of {elem_size}-byte elements"
    )]
    PartialElement {
        /// The sender's rank in the communicator.
        source_rank: Rank,
        /// The message's tag.
        tag: Tag,
        /// Size of the message.
        bytes: usize,
        /// Size of one element of the receive type.
        elem_size: usize,
    },
    /// A message of one byte or more was to be received as a vector of a zero-sized
    /// type such as `()` ([`crate::Comm::recv_vec`]): no number of such elements holds
    /// those bytes. The message was taken off the queue and its data dropped. (An
    /// empty message is received as an empty vector.)
    #[error(
        "message of {bytes} bytes from rank {source_rank} with tag {tag} cannot be received as elements of the zero-sized type {type_name} (only an empty message can)"
    )]
    ZeroSizedElement {
        /// The sender's rank in the communicator.
        source_rank: Rank,
        /// The message's tag.
        tag: Tag,
        /// Size of the message.
        bytes: usize,
        /// The receive's element type.
        type_name: &'static str,
    },
    /// Buffers, counts or roots that do not agree with each other or with the call.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A new communicator needs a pair of context ids free on every rank of its
    /// parent, and the communicators still alive on those ranks hold all `limit`
    /// pairs between them (MPICH fails alike at about 2000 communicators).
    #[error(
        "no communicator can be made: no context id is free on every rank, the live communicators hold all {limit} between them (drop those no longer used)"
    )]
    TooManyCommunicators {
        /// The communicators a process can hold at once, the world included.
        limit: usize,
    },
    /// The job itself failed: an earlier call failed that way (return-errors mode), or
    /// the launcher ended the job while this rank waited in its start or finalize (for
    /// another rank's failure). No further communication is possible.
    #[error("the job failed, no further communication is possible: {0}")]
    JobFailed(String),
    /// A peer process died or closed its connection before the job finished.
    #[error("rank {rank}: lost peer rank {peer}: {detail}")]
    PeerLost {
        /// This process's rank in the world.
        rank: Rank,
        /// The lost peer's rank in the world.
        peer: Rank,
        /// What was observed.
        detail: String,
    },
    /// A rank waits for a peer that has finalized (its program ended): a receive only
    /// that peer could match, a send it never received, a collective it never joined.
    /// Waiting would never end, so the job ends instead.
    #[error("rank {rank}: {detail}")]
    PeerFinalized {
        /// This process's rank in the world.
        rank: Rank,
        /// The finalized peer's rank in the world (-1: every other rank).
        peer: Rank,
        /// What this rank waits for, and who finalized.
        detail: String,
    },
    /// A blocking call waits for something only this rank itself could do while it
    /// waits: a receive or probe for a message from itself that it never sent, a send
    /// to itself too large to buffer with no receive posted. It would wait forever.
    #[error("deadlock: {0}")]
    Deadlock(String),
    /// Ranks of a communicator called different collectives at the same point, or
    /// the same one with counts that send them different ways (the shared-memory area
    /// and messages): messages one rank sent can never be taken in step again, so it
    /// is fatal (`detail` names both ranks, by communicator rank, and their calls).
    #[error("rank {rank}: {detail}")]
    CollectiveMismatch {
        /// This process's rank in the world.
        rank: Rank,
        /// The other rank's rank in the world.
        peer: Rank,
        /// What each rank called.
        detail: String,
    },
    /// A peer sent something that breaks the wire protocol.
    #[error("rank {rank}: protocol error from peer rank {peer}: {detail}")]
    Protocol {
        /// This process's rank in the world.
        rank: Rank,
        /// The offending peer's rank in the world (-1 if unknown).
        peer: Rank,
        /// What was wrong.
        detail: String,
    },
    /// The launcher's bootstrap service failed or answered nonsense.
    #[error("bootstrap (PMI) failed: {0}")]
    Bootstrap(String),
    /// An `OXMPI_*` environment variable holds a value oxmpi does not understand.
    #[error("{0}")]
    Config(Box<ConfigError>),
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What oxmpi was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// A setting oxmpi does not understand (boxed in [`Error::Config`], so that every
/// `Result` stays small).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value:?} is not valid: {expected}")]
pub struct ConfigError {
    /// The variable.
    pub var: String,
    /// Its value.
    pub value: String,
    /// What would have been accepted.
    pub expected: String,
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Shorthand for results of oxmpi calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error boxed inside oxmpi (so that a result fits two registers) comes out whole.
impl From<Box<Error>> for Error {
    fn from(boxed: Box<Error>) -> Error {
        *boxed
    }
}

impl Error {
    /// An [`Error::Io`] with a description of what was being done.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// An [`Error::Config`].
    pub(crate) fn config(
        var: impl Into<String>,
        value: impl Into<String>,
        expected: impl Into<String>,
    ) -> Error {
        Error::Config(Box::new(ConfigError {
            var: var.into(),
            value: value.into(),
            expected: expected.into(),
        }))
    }

    /// True for failures of the job itself (a lost peer, a protocol violation, a broken
    /// bootstrap), as opposed to mistakes in the call's arguments.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::PeerLost { .. }
                | Error::PeerFinalized { .. }
                | Error::CollectiveMismatch { .. }
                | Error::Protocol { .. }
                | Error::Bootstrap(_)
                | Error::Io { .. }
                | Error::JobFailed(_)
        )
    }
}

/// Prints `oxmpi: {msg}` on standard error in one write, so that a rank killed right
/// after (the launcher ends the job on the first failure) does not leave half a line.
pub(crate) fn report(msg: impl std::fmt::Display) {
    use std::io::Write;
    let line = format!("oxmpi: {msg}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}
