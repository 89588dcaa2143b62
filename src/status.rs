//! What a completed receive reports (`MPI_Status`), and the source/tag selectors of a
//! receive, wildcards included.

use crate::error::{Error, Rank, Result, Tag};

/// The largest tag a message may carry (`MPI_TAG_UB`).
pub const TAG_UB: Tag = i32::MAX;

/// Which sender a receive accepts.
///
/// Plain ranks convert into `Source` (`comm.recv(&mut buf, 3, 0)`); the wildcard is
/// [`ANY_SOURCE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// Only messages from this rank of the communicator.
    Rank(Rank),
    /// Messages from any rank (`MPI_ANY_SOURCE`).
    Any,
}

/// Which tags a receive accepts: a plain tag converts into `TagSel`; the wildcard is
/// [`ANY_TAG`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagSel {
    /// Only messages with this tag.
    Tag(Tag),
    /// Messages with any tag (`MPI_ANY_TAG`).
    Any,
}

/// Receive from any rank (`MPI_ANY_SOURCE`).
pub const ANY_SOURCE: Source = Source::Any;

/// The null rank (`MPI_PROC_NULL`): a send to it, or a receive or probe from it,
/// completes at once and moves nothing, as at the edges of a grid that does not wrap
/// around. A receive's status says source `PROC_NULL`, tag -1 (`MPI_ANY_TAG`) and 0
/// bytes, and its buffer is left as it was. The tag must still be valid.
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// use oxmpi::PROC_NULL;
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// let (rank, size) = (world.rank(), world.size());
/// // A shift to the right along a line of ranks: the ends talk to nobody.
/// let right = if rank + 1 < size { rank + 1 } else { PROC_NULL };
/// let left = if rank > 0 { rank - 1 } else { PROC_NULL };
/// let mut got = [-1i32];
/// let status = world.sendrecv(&[rank], right, 0, &mut got, left, 0)?;
/// if rank == 0 {
///     assert_eq!((status.source, status.bytes, got[0]), (PROC_NULL, 0, -1));
/// } else {
///     assert_eq!(got[0], rank - 1);
/// }
/// # Ok(()) }
/// ```
pub const PROC_NULL: Rank = -2;
/// Receive with any tag (`MPI_ANY_TAG`).
pub const ANY_TAG: TagSel = TagSel::Any;

impl Source {
    /// Whether this is [`PROC_NULL`].
    #[inline]
    pub(crate) fn is_null(self) -> bool {
        self == Source::Rank(PROC_NULL)
    }
}

impl From<Rank> for Source {
    fn from(r: Rank) -> Source {
        Source::Rank(r)
    }
}

impl From<Tag> for TagSel {
    fn from(t: Tag) -> TagSel {
        TagSel::Tag(t)
    }
}

/// The envelope of a received message (`MPI_Status`).
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// world.send(&[1u32, 2, 3], 0, 5)?;
/// let (data, status) = world.recv_vec::<u32>(oxmpi::ANY_SOURCE, oxmpi::ANY_TAG)?;
/// assert_eq!((status.source, status.tag, status.count::<u32>()), (0, 5, 3));
/// assert_eq!(data, [1, 2, 3]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The sender's rank in the communicator.
    pub source: Rank,
    /// The message's tag.
    pub tag: Tag,
    /// The message's size in bytes.
    pub bytes: usize,
}

impl Status {
    /// What a receive or probe from [`PROC_NULL`] reports.
    pub(crate) fn proc_null() -> Status {
        Status {
            source: PROC_NULL,
            tag: -1,
            bytes: 0,
        }
    }

    /// Number of whole `T` elements in the message (`MPI_Get_count`); 0 for a
    /// zero-sized `T`, as MPI counts a datatype of size zero.
    ///
    /// ```
    /// let status = oxmpi::Status { source: 0, tag: 0, bytes: 10 };
    /// assert_eq!(status.count::<u32>(), 2);
    /// assert_eq!(status.count::<u16>(), 5);
    /// assert_eq!(status.count::<()>(), 0);
    /// ```
    pub fn count<T>(&self) -> usize {
        match std::mem::size_of::<T>() {
            0 => 0,
            n => self.bytes / n,
        }
    }

    /// This status, or [`Error::PartialElement`] when the message it describes is not
    /// a whole number of `elem_size`-byte elements (a receive into a buffer of that
    /// element type: the bytes that arrived are in the buffer, but the last element
    /// is only partly written).
    #[inline]
    pub(crate) fn whole(self, elem_size: usize) -> Result<Status> {
        match is_whole(self.bytes, elem_size) {
            true => Ok(self),
            false => Err(partial_element(&self, elem_size)),
        }
    }
}

/// Whether `bytes` is a multiple of `elem_size` (sizes of zero-sized types count as
/// 1).
#[inline]
pub(crate) fn is_whole(bytes: usize, elem_size: usize) -> bool {
    // Element sizes are nearly always powers of two: a mask, not a division.
    if elem_size.is_power_of_two() {
        bytes & (elem_size - 1) == 0
    } else {
        bytes.is_multiple_of(elem_size.max(1))
    }
}

/// The error of the message `status` describes, when it is not a whole number of
/// `elem_size`-byte elements.
#[cold]
pub(crate) fn partial_element(status: &Status, elem_size: usize) -> Error {
    Error::PartialElement {
        source_rank: status.source,
        tag: status.tag,
        bytes: status.bytes,
        elem_size: elem_size.max(1),
    }
}
