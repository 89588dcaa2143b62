//! [`ValueIndex`]: a value paired with an index, the element type of
//! [`Op::MinLoc`](crate::Op::MinLoc) and [`Op::MaxLoc`](crate::Op::MaxLoc).
//!
//! The pair is packed, so it has no padding and is plain old data for any value and
//! index types. Invariant: its layout is `value` then `index`, with no gap.

use bytemuck::{Pod, Zeroable};

/// A value and the index it came from (MPI's `MPI_FLOAT_INT`, `MPI_DOUBLE_INT`,
/// `MPI_2INT`, … for `MPI_MINLOC`/`MPI_MAXLOC`). The index is an `i32` unless chosen
/// otherwise.
///
/// The struct is packed: read its fields by value (`let v = pair.value;`), not by
/// reference.
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// use oxmpi::{Op, ValueIndex};
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// let temperature = 20.5 + world.rank() as f64;
/// let mut coldest = [ValueIndex::default()];
/// world.allreduce(&[ValueIndex::new(temperature, world.rank())], &mut coldest, Op::MinLoc)?;
/// let (value, rank) = coldest[0].into();
/// assert_eq!((value, rank), (20.5, 0));
/// # Ok(()) }
/// ```
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Pod, Zeroable)]
pub struct ValueIndex<V, I = i32> {
    /// The value compared.
    pub value: V,
    /// Where it came from (a rank, an array index).
    pub index: I,
}

impl<V: Pod, I: Pod> ValueIndex<V, I> {
    /// The pair `(value, index)`.
    ///
    /// ```
    /// let p = oxmpi::ValueIndex::new(2.5f32, 7);
    /// let (value, index): (f32, i32) = p.into();
    /// assert_eq!((value, index), (2.5, 7));
    /// ```
    pub fn new(value: V, index: I) -> ValueIndex<V, I> {
        ValueIndex { value, index }
    }
}

impl<V: Pod, I: Pod> From<ValueIndex<V, I>> for (V, I) {
    fn from(p: ValueIndex<V, I>) -> (V, I) {
        (p.value, p.index)
    }
}
