//! The local half of a reduction: element-wise loops over typed slices, and the
//! adapter that applies a user's function.
//!
//! Each built-in operation is a [`Elementwise`] kernel over a function of two elements
//! known at compile time, so every loop is a straight zip the compiler vectorises.
//! Invariants: the left operand of `⊕` is always the one the schedule names as left
//! (non-commutative operations are applied in rank order); byte ranges are reinterpreted
//! as elements in place when aligned, and through an aligned copy when not (a
//! temporary's address is only guaranteed byte alignment).

use std::marker::PhantomData;

use bytemuck::Pod;

use crate::engine::schedule::Combine;

/// An aligned copy of `bytes` as elements of `T`.
fn aligned_copy<T: Pod>(bytes: &[u8]) -> Vec<T> {
    let mut copy = vec![T::zeroed(); bytes.len() / size_of::<T>().max(1)];
    bytemuck::cast_slice_mut(&mut copy).copy_from_slice(bytes);
    copy
}

/// Runs `f` on `bytes` as elements of `T`.
fn with_elems<T: Pod, R>(bytes: &[u8], f: impl FnOnce(&[T]) -> R) -> R {
    match bytemuck::try_cast_slice(bytes) {
        Ok(elems) => f(elems),
        Err(_) => f(&aligned_copy(bytes)),
    }
}

/// Runs `f` on `bytes` as mutable elements of `T`.
fn with_elems_mut<T: Pod, R>(bytes: &mut [u8], f: impl FnOnce(&mut [T]) -> R) -> R {
    match bytemuck::try_cast_slice_mut(bytes) {
        Ok(elems) => f(elems),
        Err(_) => {
            let mut copy = aligned_copy(bytes);
            let r = f(&mut copy);
            bytes.copy_from_slice(bytemuck::cast_slice(&copy));
            r
        }
    }
}

/// Runs `body`, a loop the compiler vectorises, compiled for the widest vectors the
/// processor has: AVX-512 (F), else AVX2, else the baseline's 128-bit SSE2. The same
/// operations on the same elements, so the same bits whichever runs. `cargo bench
/// --bench reduce_kernels` here (an Intel Xeon with AVX-512), f32 sum in GiB/s, SSE2 /
/// AVX2 / AVX-512, before NaNs were settled in the loop ([`settled`]): 16 KiB (in L1)
/// 21.6 / 35.2 / 55.6, 256 KiB (in L2) 16.4 / 20.8 / 25.6 (`memcpy` 26.5-28.7); 16 MiB
/// alike (memory-bound). With AVX-512 BW, DQ and VL enabled as well the loops ran
/// slower (38 GiB/s in L1).
#[inline(always)]
fn vectorised<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        use std::is_x86_feature_detected as has;
        if has!("avx512f") {
            // SAFETY: the processor has AVX-512 F.
            return unsafe { with_avx512(body) };
        }
        if has!("avx2") {
            // SAFETY: the processor has AVX2.
            return unsafe { with_avx2(body) };
        }
    }
    body()
}

/// `body`, inlined into a function compiled for AVX-512.
///
/// # Safety
///
/// The processor must have AVX-512 F.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[target_feature(enable = "avx512f")]
unsafe fn with_avx512<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// `body`, inlined into a function compiled for AVX2.
///
/// # Safety
///
/// The processor must have AVX2.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[target_feature(enable = "avx2")]
unsafe fn with_avx2<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// A built-in operation: `f(left, right)` on every pair of elements.
pub(crate) struct Elementwise<T, F> {
    f: F,
    _elem: PhantomData<fn(T) -> T>,
}

impl<T, F> Elementwise<T, F> {
    pub(crate) fn new(f: F) -> Elementwise<T, F> {
        Elementwise {
            f,
            _elem: PhantomData,
        }
    }
}

/// `x`, or the one quiet NaN (`f32::NAN`, `f64::NAN`) where `x` is a float NaN: which
/// operand's NaN an add or multiply passes on depends on the order the compiler put
/// its operands in, which differs between the in-place kernels (two ranks computing
/// the same element, one into each operand, got NaNs of other signs), so every
/// float result is settled as it is computed. Integers, and the other types, are as
/// they are (the type tests fold away). Its cost, in the same loop: about a quarter
/// of a kernel's speed in L1, none measurable in L2 and beyond (`reduce_kernels`); a
/// separate pass over the result, as before, read it all once more.
#[inline(always)]
fn settled<T: Pod>(x: T) -> T {
    use std::any::TypeId;
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        let v: f32 = bytemuck::cast(x);
        return bytemuck::cast(if v.is_nan() { f32::NAN } else { v });
    }
    if TypeId::of::<T>() == TypeId::of::<f64>() {
        let v: f64 = bytemuck::cast(x);
        return bytemuck::cast(if v.is_nan() { f64::NAN } else { v });
    }
    x
}

impl<T: Pod, F: Fn(T, T) -> T + Send + Sync> Elementwise<T, F> {
    /// `inout[i] = f(input[i], inout[i])`.
    #[inline(always)]
    fn right_inout(&self, input: &[T], inout: &mut [T]) {
        for (o, &a) in inout.iter_mut().zip(input) {
            *o = settled((self.f)(a, *o));
        }
    }

    /// `inout[i] = f(inout[i], input[i])`.
    #[inline(always)]
    fn left_inout(&self, inout: &mut [T], input: &[T]) {
        for (o, &b) in inout.iter_mut().zip(input) {
            *o = settled((self.f)(*o, b));
        }
    }

    /// `out[i] = f(left[i], right[i])`.
    #[inline(always)]
    fn to(&self, left: &[T], right: &[T], out: &mut [T]) {
        for (o, (&a, &b)) in out.iter_mut().zip(left.iter().zip(right)) {
            *o = settled((self.f)(a, b));
        }
    }
}

impl<T: Pod, F: Fn(T, T) -> T + Send + Sync> Combine for Elementwise<T, F> {
    fn combine(&self, input: &[u8], inout: &mut [u8], in_is_left: bool) {
        with_elems(input, |input| {
            with_elems_mut(inout, |inout| {
                if in_is_left {
                    vectorised(|| self.right_inout(input, inout))
                } else {
                    vectorised(|| self.left_inout(inout, input))
                }
            })
        })
    }

    fn combine_to(&self, left: &[u8], right: &[u8], out: &mut [u8]) {
        with_elems(left, |left| {
            with_elems(right, |right| {
                with_elems_mut(out, |out| vectorised(|| self.to(left, right, out)))
            })
        })
    }
}

/// A user's function `f(input, inout)` computing `inout[i] = input[i] ⊕ inout[i]`
/// (MPI's convention for user operations).
pub(crate) struct UserKernel<T, F> {
    f: F,
    commutative: bool,
    _elem: PhantomData<fn(T) -> T>,
}

impl<T, F> UserKernel<T, F> {
    pub(crate) fn new(f: F, commutative: bool) -> UserKernel<T, F> {
        UserKernel {
            f,
            commutative,
            _elem: PhantomData,
        }
    }
}

impl<T: Pod, F: Fn(&[T], &mut [T]) + Send + Sync> Combine for UserKernel<T, F> {
    fn combine(&self, input: &[u8], inout: &mut [u8], in_is_left: bool) {
        with_elems(input, |input| {
            with_elems_mut(inout, |inout: &mut [T]| {
                if in_is_left || self.commutative {
                    (self.f)(input, inout);
                } else {
                    // inout ⊕ input, with inout on the left: compute into a copy of
                    // the right operand.
                    let mut right = input.to_vec();
                    (self.f)(inout, &mut right);
                    inout.copy_from_slice(&right);
                }
            })
        })
    }

    fn combine_to(&self, left: &[u8], right: &[u8], out: &mut [u8]) {
        out.copy_from_slice(right);
        with_elems(left, |left| with_elems_mut(out, |out| (self.f)(left, out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elementwise_keeps_operand_order() {
        let k = Elementwise::new(|a: i32, b: i32| 10 * a + b);
        let (x, mut y) = ([1i32, 2], [3i32, 4]);
        k.combine(
            bytemuck::cast_slice(&x),
            bytemuck::cast_slice_mut(&mut y),
            true,
        );
        assert_eq!(y, [13, 24]);
        let mut y = [3i32, 4];
        k.combine(
            bytemuck::cast_slice(&x),
            bytemuck::cast_slice_mut(&mut y),
            false,
        );
        assert_eq!(y, [31, 42]);
        let mut out = [0i32; 2];
        k.combine_to(
            bytemuck::cast_slice(&x),
            bytemuck::cast_slice(&[3i32, 4]),
            bytemuck::cast_slice_mut(&mut out),
        );
        assert_eq!(out, [13, 24]);
    }

    #[test]
    fn float_nans_come_out_as_the_one_quiet_nan_whichever_kernel() {
        let k = Elementwise::new(|a: f32, b: f32| a + b);
        let neg = f32::from_bits(0xffc0_0001);
        let (x, y) = ([neg, 1.0, neg], [1.0, f32::NAN, 2.0]);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        let want = [f32::NAN.to_bits(), f32::NAN.to_bits(), f32::NAN.to_bits()];
        for in_is_left in [true, false] {
            let mut inout = y;
            k.combine(
                bytemuck::cast_slice(&x),
                bytemuck::cast_slice_mut(&mut inout),
                in_is_left,
            );
            assert_eq!(bits(&inout), want);
        }
        let mut out = [0f32; 3];
        k.combine_to(
            bytemuck::cast_slice(&x),
            bytemuck::cast_slice(&y),
            bytemuck::cast_slice_mut(&mut out),
        );
        assert_eq!(bits(&out), want);
        let k = Elementwise::new(|a: f64, b: f64| a * b);
        let mut inout = [2.0f64];
        k.combine(
            bytemuck::bytes_of(&-f64::NAN),
            bytemuck::cast_slice_mut(&mut inout),
            true,
        );
        assert_eq!(inout[0].to_bits(), f64::NAN.to_bits());
        // Integers pass through as computed.
        let k = Elementwise::new(|a: u32, b: u32| a | b);
        let mut inout = [0xffc0_0001u32];
        k.combine(
            bytemuck::bytes_of(&0u32),
            bytemuck::cast_slice_mut(&mut inout),
            true,
        );
        assert_eq!(inout, [0xffc0_0001]);
    }

    #[test]
    fn misaligned_bytes_are_handled() {
        let k = Elementwise::new(|a: u64, b: u64| a + b);
        let mut raw = [0u8; 17];
        let x = 5u64.to_ne_bytes();
        raw[1..9].copy_from_slice(&x);
        k.combine(&x, &mut raw[1..9], true);
        assert_eq!(u64::from_ne_bytes(raw[1..9].try_into().unwrap()), 10);
    }

    #[test]
    fn user_kernel_non_commutative_order() {
        let concat = |a: &[u32], b: &mut [u32]| {
            for (o, &x) in b.iter_mut().zip(a) {
                *o += x * 10;
            }
        };
        let k = UserKernel::new(concat, false);
        let mut y = [2u32];
        k.combine(
            bytemuck::cast_slice(&[1u32]),
            bytemuck::cast_slice_mut(&mut y),
            false,
        );
        assert_eq!(y, [21]);
        let mut y = [2u32];
        k.combine(
            bytemuck::cast_slice(&[1u32]),
            bytemuck::cast_slice_mut(&mut y),
            true,
        );
        assert_eq!(y, [12]);
    }
}
