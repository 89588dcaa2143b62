//! Reduction operations (MPI's `MPI_Op`), named `Op::Sum`, `Op::Max`, …: each is its
//! own type, and [`Reduction`] says which element types it applies to, so a
//! meaningless combination (a bitwise operation on floats) does not compile.
//!
//! ```compile_fail
//! # fn main() -> oxmpi::Result<()> {
//! # let universe = oxmpi::init()?;
//! # let world = universe.world();
//! let mut x = [1.5f32];
//! world.allreduce_in_place(&mut x, oxmpi::Op::BitAnd)?; // error: floats have no bits to AND
//! # Ok(()) }
//! ```
//!
//! Integer arithmetic wraps on overflow (as C's unsigned arithmetic does); floats
//! follow IEEE 754. Logical operations treat non-zero as true and give 1 or 0. User
//! operations are closures, commutative or not: a non-commutative one is applied in
//! rank order. Invariant: every operation is deterministic, so the same operands in
//! the same order give the same bits on every rank.

use bytemuck::Pod;

use super::kernels::{Elementwise, UserKernel};
use super::value_index::ValueIndex;
use crate::engine::schedule::Combine;

mod sealed {
    /// Keeps the element and operation traits closed: oxmpi decides what applies.
    pub trait Sealed {}
}
use sealed::Sealed;

/// Element types with `+`, `*`, minimum and maximum: every primitive integer and
/// float.
///
/// ```
/// use oxmpi::Op::Arithmetic;
/// assert_eq!(u8::sum(250, 10), 4); // integers wrap
/// assert_eq!(f64::product(1.5, 2.0), 3.0);
/// ```
pub trait Arithmetic: Pod + PartialOrd + Sealed {
    /// `a + b` (wrapping for integers).
    ///
    /// ```
    /// assert_eq!(<i32 as oxmpi::Op::Arithmetic>::sum(2, 3), 5);
    /// ```
    fn sum(a: Self, b: Self) -> Self;
    /// `a * b` (wrapping for integers).
    ///
    /// ```
    /// assert_eq!(<f32 as oxmpi::Op::Arithmetic>::product(2.0, 3.0), 6.0);
    /// ```
    fn product(a: Self, b: Self) -> Self;
    /// The lesser of `a` and `b`; for floats IEEE 754's `minimumNumber` (C's
    /// `fmin`) with -0 below +0: a NaN loses to any number (two NaNs give NaN), as in
    /// [`MinLoc`]. So it commutes and associates on every value, and a reduction's
    /// result does not depend on the order its algorithm combines in.
    ///
    /// ```
    /// use oxmpi::Op::Arithmetic;
    /// assert_eq!(i8::lesser(-3, 2), -3);
    /// assert_eq!(f64::lesser(f64::NAN, 1.0), 1.0);
    /// assert!(f32::lesser(0.0, -0.0).is_sign_negative());
    /// ```
    fn lesser(a: Self, b: Self) -> Self;
    /// The greater of `a` and `b`; for floats IEEE 754's `maximumNumber` (C's
    /// `fmax`) with +0 above -0 (see [`Arithmetic::lesser`]).
    ///
    /// ```
    /// use oxmpi::Op::Arithmetic;
    /// assert_eq!(u16::greater(7, 9), 9);
    /// assert_eq!(f32::greater(1.0, f32::NAN), 1.0);
    /// assert!(f64::greater(-0.0, 0.0).is_sign_positive());
    /// ```
    fn greater(a: Self, b: Self) -> Self;
}

/// Element types with logical and/or/xor (non-zero is true): every primitive integer
/// and float.
///
/// ```
/// use oxmpi::Op::Logical;
/// assert!(0.5f64.truth() && !0u8.truth());
/// assert_eq!(i16::from_truth(true), 1);
/// ```
pub trait Logical: Pod + Sealed {
    /// Whether the value counts as true.
    ///
    /// ```
    /// assert!(oxmpi::Op::Logical::truth(-3i64));
    /// ```
    fn truth(self) -> bool;
    /// 1 for true, 0 for false.
    ///
    /// ```
    /// assert_eq!(<f32 as oxmpi::Op::Logical>::from_truth(false), 0.0);
    /// ```
    fn from_truth(t: bool) -> Self;
}

/// Element types with bitwise and/or/xor: every primitive integer.
///
/// ```
/// fn flags<T: oxmpi::Op::Bitwise>(a: T, b: T) -> T {
///     a | b
/// }
/// assert_eq!(flags(0b01u8, 0b10), 0b11);
/// ```
pub trait Bitwise:
    Pod
    + Sealed
    + std::ops::BitAnd<Output = Self>
    + std::ops::BitOr<Output = Self>
    + std::ops::BitXor<Output = Self>
{
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl Sealed for $t {}
        impl Arithmetic for $t {
            #[inline]
            fn sum(a: $t, b: $t) -> $t { a.wrapping_add(b) }
            #[inline]
            fn product(a: $t, b: $t) -> $t { a.wrapping_mul(b) }
            #[inline]
            fn lesser(a: $t, b: $t) -> $t { a.min(b) }
            #[inline]
            fn greater(a: $t, b: $t) -> $t { a.max(b) }
        }
        impl Logical for $t {
            #[inline]
            fn truth(self) -> bool { self != 0 }
            #[inline]
            fn from_truth(t: bool) -> $t { t as $t }
        }
        impl Bitwise for $t {}
    )*};
}
integer!(
    i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize
);

macro_rules! float {
    ($($t:ty),*) => {$(
        impl Sealed for $t {}
        impl Arithmetic for $t {
            #[inline]
            fn sum(a: $t, b: $t) -> $t { a + b }
            #[inline]
            fn product(a: $t, b: $t) -> $t { a * b }
            // A NaN loses to a number (each NaN operand is replaced by the other
            // operand); equal numbers other than ±0 have the same bits, so OR (AND)
            // of the bits picks -0 (+0) where the two zeros meet. Selects only, so
            // the kernels stay vector code.
            #[inline]
            fn lesser(a: $t, b: $t) -> $t {
                let a = if a.is_nan() { b } else { a };
                let b = if b.is_nan() { a } else { b };
                let r = if a == b {
                    <$t>::from_bits(a.to_bits() | b.to_bits())
                } else if b < a {
                    b
                } else {
                    a
                };
                if r.is_nan() { <$t>::NAN } else { r }
            }
            #[inline]
            fn greater(a: $t, b: $t) -> $t {
                let a = if a.is_nan() { b } else { a };
                let b = if b.is_nan() { a } else { b };
                let r = if a == b {
                    <$t>::from_bits(a.to_bits() & b.to_bits())
                } else if b > a {
                    b
                } else {
                    a
                };
                if r.is_nan() { <$t>::NAN } else { r }
            }
        }
        impl Logical for $t {
            #[inline]
            fn truth(self) -> bool { self != 0.0 }
            #[inline]
            fn from_truth(t: bool) -> $t { if t { 1.0 } else { 0.0 } }
        }
    )*};
}
float!(f32, f64);

/// An operation that reduces elements of type `T`. Implemented by the operations of
/// this module for the element types they make sense on; see each one.
///
/// ```
/// fn total<O: oxmpi::Op::Reduction<u64>>(world: &oxmpi::Comm, x: u64, op: O) -> oxmpi::Result<u64> {
///     let mut out = [0];
///     world.allreduce(&[x], &mut out, op)?;
///     Ok(out[0])
/// }
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// assert_eq!(total(&universe.world(), 3, oxmpi::Op::Sum)?, 3);
/// # Ok(()) }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot reduce elements of type `{T}`",
    note = "arithmetic (Sum, Prod, Min, Max) and logical operations take primitive integers and floats, bitwise operations integers only, MinLoc/MaxLoc `ValueIndex` pairs; anything else needs `Op::commutative` or `Op::non_commutative`"
)]
pub trait Reduction<T: Pod>: Sealed + Send + Sync + 'static {
    /// Whether `a ⊕ b == b ⊕ a`; a non-commutative operation is applied in rank order.
    fn is_commutative(&self) -> bool;
    /// The kernel a schedule applies.
    #[doc(hidden)]
    fn into_combine(self) -> Box<dyn Combine>;
}

macro_rules! builtin {
    ($(#[$doc:meta])* $name:ident: $bound:ident, |$a:ident, $b:ident| $f:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name;
        impl Sealed for $name {}
        impl<T: $bound> Reduction<T> for $name {
            fn is_commutative(&self) -> bool {
                true
            }
            fn into_combine(self) -> Box<dyn Combine> {
                Box::new(Elementwise::new(|$a: T, $b: T| $f))
            }
        }
    };
}

builtin!(
    /// Sum (`MPI_SUM`), on every primitive integer (wrapping) and float.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut n = [1u64];
    /// world.allreduce_in_place(&mut n, oxmpi::Op::Sum)?;
    /// assert_eq!(n[0], world.size() as u64);
    /// # Ok(()) }
    /// ```
    Sum: Arithmetic, |a, b| T::sum(a, b)
);
builtin!(
    /// Product (`MPI_PROD`), on every primitive integer (wrapping) and float.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let mut x = [2.0f64];
    /// universe.world().allreduce_in_place(&mut x, oxmpi::Op::Prod)?;
    /// assert_eq!(x[0], 2f64.powi(universe.world().size()));
    /// # Ok(()) }
    /// ```
    Prod: Arithmetic, |a, b| T::product(a, b)
);
builtin!(
    /// Minimum (`MPI_MIN`), on every primitive integer and float (for floats a NaN
    /// loses to any number and -0 is below +0: [`Arithmetic::lesser`]).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut x = [10 - world.rank()];
    /// world.allreduce_in_place(&mut x, oxmpi::Op::Min)?;
    /// assert_eq!(x[0], 11 - world.size());
    /// # Ok(()) }
    /// ```
    Min: Arithmetic, |a, b| T::lesser(a, b)
);
builtin!(
    /// Maximum (`MPI_MAX`), on every primitive integer and float (for floats a NaN
    /// loses to any number and +0 is above -0: [`Arithmetic::greater`]).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut x = [world.rank() as f32];
    /// world.allreduce_in_place(&mut x, oxmpi::Op::Max)?;
    /// assert_eq!(x[0], (world.size() - 1) as f32);
    /// # Ok(()) }
    /// ```
    Max: Arithmetic, |a, b| T::greater(a, b)
);
builtin!(
    /// Logical and (`MPI_LAND`): 1 if both are non-zero, else 0.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let mut all_ok = [1u8];
    /// universe.world().allreduce_in_place(&mut all_ok, oxmpi::Op::LogicalAnd)?;
    /// assert_eq!(all_ok[0], 1);
    /// # Ok(()) }
    /// ```
    LogicalAnd: Logical, |a, b| T::from_truth(a.truth() & b.truth())
);
builtin!(
    /// Logical or (`MPI_LOR`): 1 if either is non-zero, else 0.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let mut any_failed = [0i32];
    /// universe.world().allreduce_in_place(&mut any_failed, oxmpi::Op::LogicalOr)?;
    /// assert_eq!(any_failed[0], 0);
    /// # Ok(()) }
    /// ```
    LogicalOr: Logical, |a, b| T::from_truth(a.truth() | b.truth())
);
builtin!(
    /// Logical exclusive or (`MPI_LXOR`): 1 if exactly one is non-zero, else 0.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let mut odd = [1.0f64];
    /// universe.world().allreduce_in_place(&mut odd, oxmpi::Op::LogicalXor)?;
    /// assert_eq!(odd[0], (universe.world().size() % 2) as f64);
    /// # Ok(()) }
    /// ```
    LogicalXor: Logical, |a, b| T::from_truth(a.truth() ^ b.truth())
);
builtin!(
    /// Bitwise and (`MPI_BAND`), on every primitive integer.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let mut flags = [0b1011u32];
    /// universe.world().allreduce_in_place(&mut flags, oxmpi::Op::BitAnd)?;
    /// assert_eq!(flags[0], 0b1011);
    /// # Ok(()) }
    /// ```
    BitAnd: Bitwise, |a, b| a & b
);
builtin!(
    /// Bitwise or (`MPI_BOR`), on every primitive integer.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// let mut seen = [1u64 << world.rank()];
    /// world.allreduce_in_place(&mut seen, oxmpi::Op::BitOr)?;
    /// assert_eq!(seen[0], (1u64 << world.size()) - 1);
    /// # Ok(()) }
    /// ```
    BitOr: Bitwise, |a, b| a | b
);
builtin!(
    /// Bitwise exclusive or (`MPI_BXOR`), on every primitive integer.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let mut parity = [0xffu8];
    /// universe.world().allreduce_in_place(&mut parity, oxmpi::Op::BitXor)?;
    /// assert_eq!(parity[0], if universe.world().size() % 2 == 1 { 0xff } else { 0 });
    /// # Ok(()) }
    /// ```
    BitXor: Bitwise, |a, b| a ^ b
);

/// The smallest value and its index (`MPI_MINLOC`) on [`ValueIndex`] pairs; of equal
/// values, the smallest index wins (a NaN loses to any number).
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// use oxmpi::{Op, ValueIndex};
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// let mut best = [ValueIndex::new(1.0f32, world.rank())];
/// world.allreduce_in_place(&mut best, Op::MinLoc)?;
/// let (value, rank): (f32, i32) = best[0].into();
/// assert_eq!((value, rank), (1.0, 0)); // a tie everywhere: rank 0 wins
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinLoc;

/// The largest value and its index (`MPI_MAXLOC`) on [`ValueIndex`] pairs; of equal
/// values, the smallest index wins (a NaN loses to any number).
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// use oxmpi::{Op, ValueIndex};
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// let mut best = [ValueIndex::new(world.rank() as i64, world.rank() as i64)];
/// world.allreduce_in_place(&mut best, Op::MaxLoc)?;
/// let last = (world.size() - 1) as i64;
/// let (value, index): (i64, i64) = best[0].into();
/// assert_eq!((value, index), (last, last));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxLoc;

impl Sealed for MinLoc {}
impl Sealed for MaxLoc {}

/// Of `a` and `b`, the pair whose value `wins` over the other's. Where a value is
/// unequal to itself (a NaN), it loses to a number, as C's `fmin` and `fmax` pass
/// over NaN. Of two equal values (which may differ in bits: -0 and +0) or two NaNs,
/// the pair with the smaller index wins, and of equal indices the one with the
/// smaller bytes: the order is total, so the operation commutes and associates to
/// the same bits, and the index returned is always that of the value returned.
#[inline]
#[allow(clippy::eq_op)] // `v == v`: the NaN test of a generic float
fn located<V: Pod + PartialOrd, I: Pod + Ord>(
    a: ValueIndex<V, I>,
    b: ValueIndex<V, I>,
    wins: impl Fn(V, V) -> bool,
) -> ValueIndex<V, I> {
    let (va, vb) = (a.value, b.value);
    let (ia, ib) = (a.index, b.index);
    let a_first = || ia < ib || ia == ib && bytes_first(va, vb);
    let a_wins = if wins(va, vb) {
        true
    } else if wins(vb, va) {
        false
    } else if va == vb || va != va && vb != vb {
        a_first()
    } else {
        // One NaN, one number.
        va == va
    };
    if a_wins { a } else { b }
}

/// Whether `a`'s bytes come first of the two, or equal `b`'s, in a fixed total
/// order: as one integer where they fit 8 bytes (a byte-wise comparison of slices
/// calls `memcmp`, and even one of 16-byte integers halved the speed of a MinLoc of
/// `f64` pairs whose values and indices all tie), else byte by byte.
#[inline]
fn bytes_first<V: Pod>(a: V, b: V) -> bool {
    let (x, y) = (bytemuck::bytes_of(&a), bytemuck::bytes_of(&b));
    if x.len() > 8 {
        return x <= y;
    }
    let widen = |s: &[u8]| {
        let mut k = [0u8; 8];
        k[..s.len()].copy_from_slice(s);
        u64::from_ne_bytes(k)
    };
    widen(x) <= widen(y)
}

impl<V: Pod + PartialOrd, I: Pod + Ord> Reduction<ValueIndex<V, I>> for MinLoc {
    fn is_commutative(&self) -> bool {
        true
    }
    fn into_combine(self) -> Box<dyn Combine> {
        Box::new(Elementwise::new(|a: ValueIndex<V, I>, b| {
            located(a, b, |x: V, y: V| x < y)
        }))
    }
}

impl<V: Pod + PartialOrd, I: Pod + Ord> Reduction<ValueIndex<V, I>> for MaxLoc {
    fn is_commutative(&self) -> bool {
        true
    }
    fn into_combine(self) -> Box<dyn Combine> {
        Box::new(Elementwise::new(|a: ValueIndex<V, I>, b| {
            located(a, b, |x: V, y: V| x > y)
        }))
    }
}

/// A user-defined operation (`MPI_Op_create`), made by [`commutative`] or
/// [`non_commutative`].
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// let hypot = oxmpi::Op::commutative(|a: &[f64], b: &mut [f64]| {
///     for (y, x) in b.iter_mut().zip(a) {
///         *y = x.hypot(*y);
///     }
/// });
/// assert!(oxmpi::Op::Reduction::<f64>::is_commutative(&hypot));
/// let mut v = [3.0f64];
/// universe.world().allreduce_in_place(&mut v, hypot)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct User<F> {
    f: F,
    commutative: bool,
}

impl<F> std::fmt::Debug for User<F> {
    /// Whether it commutes (the closure has nothing to show).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("commutative", &self.commutative)
            .finish_non_exhaustive()
    }
}

impl<F> Sealed for User<F> {}

impl<T: Pod, F: Fn(&[T], &mut [T]) + Send + Sync + 'static> Reduction<T> for User<F> {
    fn is_commutative(&self) -> bool {
        self.commutative
    }
    fn into_combine(self) -> Box<dyn Combine> {
        Box::new(UserKernel::new(self.f, self.commutative))
    }
}

/// A commutative user operation from `f(input, inout)`, which must set
/// `inout[i] = input[i] ⊕ inout[i]` for every `i` (`MPI_Op_create` with
/// `commute = true`). oxmpi may combine operands in any grouping and order, so every
/// rank gets the same bits from `allreduce` only if `f` gives the same bits whichever
/// order its operands come in (one that commutes only up to rounding may leave the
/// ranks with results a rounding apart).
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// let gcd = oxmpi::Op::commutative(|a: &[u64], b: &mut [u64]| {
///     for (y, &x) in b.iter_mut().zip(a) {
///         let (mut p, mut q) = (x, *y);
///         while q != 0 {
///             (p, q) = (q, p % q);
///         }
///         *y = p;
///     }
/// });
/// let mut g = [12 * (world.rank() as u64 + 1)];
/// world.allreduce_in_place(&mut g, gcd)?;
/// assert_eq!(g[0], 12);
/// # Ok(()) }
/// ```
pub fn commutative<T: Pod, F: Fn(&[T], &mut [T]) + Send + Sync + 'static>(f: F) -> User<F> {
    User {
        f,
        commutative: true,
    }
}

/// A non-commutative (but associative) user operation from `f(input, inout)`, which
/// must set `inout[i] = input[i] ⊕ inout[i]`; oxmpi applies it in rank order, the
/// left operand from the lower ranks (`MPI_Op_create` with `commute = false`).
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// // 2x2 matrix products, row-major: the result is M0 · M1 · … in rank order.
/// let matmul = oxmpi::Op::non_commutative(|a: &[[i64; 4]], b: &mut [[i64; 4]]| {
///     for (y, x) in b.iter_mut().zip(a) {
///         *y = [x[0] * y[0] + x[1] * y[2], x[0] * y[1] + x[1] * y[3],
///               x[2] * y[0] + x[3] * y[2], x[2] * y[1] + x[3] * y[3]];
///     }
/// });
/// let mut m = [[1, world.rank() as i64, 0, 1]];
/// world.allreduce_in_place(&mut m, matmul)?;
/// let n = world.size() as i64;
/// assert_eq!(m[0], [1, n * (n - 1) / 2, 0, 1]);
/// # Ok(()) }
/// ```
pub fn non_commutative<T: Pod, F: Fn(&[T], &mut [T]) + Send + Sync + 'static>(f: F) -> User<F> {
    User {
        f,
        commutative: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `f` gives the same bits whichever order its operands come in, and however three
    /// are grouped, for every pair and triple of `values`.
    fn commutes_and_associates<T: Copy + std::fmt::Debug>(
        values: &[T],
        f: impl Fn(T, T) -> T,
        bits: impl Fn(T) -> Vec<u8>,
    ) {
        for &x in values {
            for &y in values {
                let (xy, yx) = (f(x, y), f(y, x));
                assert_eq!(bits(xy), bits(yx), "{x:?}, {y:?}: {xy:?} against {yx:?}");
                for &z in values {
                    let (left, right) = (f(f(x, y), z), f(x, f(y, z)));
                    assert_eq!(bits(left), bits(right), "{x:?}, {y:?}, {z:?}");
                }
            }
        }
    }

    #[test]
    fn float_lesser_and_greater_pass_over_nans_and_order_zeros_in_any_order() {
        let nan = f32::from_bits(0xffc0_0001);
        let values = [
            f32::NAN,
            nan,
            -0.0,
            0.0,
            1.0,
            -1.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        let bits = |x: f32| x.to_bits().to_ne_bytes().to_vec();
        commutes_and_associates(&values, f32::lesser, bits);
        commutes_and_associates(&values, f32::greater, bits);
        assert_eq!(f32::lesser(0.0, -0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f32::greater(-0.0, 0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(
            (f64::lesser(2.0, f64::NAN), f64::greater(f64::NAN, 2.0)),
            (2.0, 2.0)
        );
        assert_eq!(f32::lesser(nan, f32::NAN).to_bits(), f32::NAN.to_bits());
        assert_eq!(
            (f64::lesser(2.0, -3.5), f64::greater(2.0, -3.5)),
            (-3.5, 2.0)
        );
        assert_eq!((i64::lesser(-4, 9), u8::greater(3, 250)), (-4, 250));
    }

    #[test]
    fn minloc_and_maxloc_commute_and_associate_on_nans_zeros_and_ties() {
        let mut pairs = Vec::new();
        for v in [f64::NAN, -f64::NAN, -0.0, 0.0, 1.0, -1.0] {
            for i in [0, 1, 2] {
                pairs.push(ValueIndex::new(v, i));
            }
        }
        let bits = |p: ValueIndex<f64, i32>| bytemuck::bytes_of(&p).to_vec();
        let min = |a, b| located(a, b, |x: f64, y: f64| x < y);
        let max = |a, b| located(a, b, |x: f64, y: f64| x > y);
        commutes_and_associates(&pairs, min, bits);
        commutes_and_associates(&pairs, max, bits);
        let (value, index): (f64, i32) =
            min(ValueIndex::new(0.0, 2), ValueIndex::new(-0.0, 1)).into();
        assert_eq!((value.to_bits(), index), ((-0.0f64).to_bits(), 1));
        let (value, index): (f64, i32) =
            max(ValueIndex::new(f64::NAN, 0), ValueIndex::new(-5.0, 2)).into();
        assert_eq!((value, index), (-5.0, 2));
    }
}
