//! Shared by the collective test programs (included with `#[path]`): deterministic
//! inputs, serial reference reductions, the element types and operations exercised,
//! and the sizes every algorithm runs at.
//!
//! Invariant: every rank can compute every other rank's input, so each rank checks
//! its result against a reference it computes alone.
#![allow(dead_code)]

use std::fmt::Debug;

use bytemuck::{Pod, Zeroable};
use oxmpi::Collective;

/// Element counts every algorithm runs at: empty, one, odd, and one past 1 MiB of
/// 4-byte elements (`big` is only used where the program says so).
pub fn counts(big: bool) -> Vec<usize> {
    let mut c = vec![0, 1, 7, 1001];
    if big {
        c.push((1 << 18) + 3);
    }
    c
}

/// A value no test input has: every byte 0x37.
pub fn sentinel<T: Pod>() -> T {
    let mut v = T::zeroed();
    bytemuck::bytes_of_mut(&mut v).fill(0x37);
    v
}

/// A well-mixed hash of its arguments.
pub fn mix(a: u64, b: u64, c: u64) -> u64 {
    let mut h = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ c;
    h ^= h >> 29;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^ (h >> 32)
}

/// The element types the reductions are checked on.
pub trait Num: Pod + PartialEq + PartialOrd + Debug + Send + Sync + 'static {
    const NAME: &'static str;
    fn from_i64(v: i64) -> Self;
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn truth(self) -> bool;
    fn from_truth(t: bool) -> Self {
        Self::from_i64(t as i64)
    }
    /// For floats, where `h` says so, a value whose Min and Max depend on the order
    /// of a naive comparison: a NaN (of `h`'s sign and payload), -0 or +0.
    fn special(h: u64) -> Option<Self>;
    /// The NaN the library gives where every operand of a Min or Max is one.
    fn quiet_nan() -> Self;
}

macro_rules! int {
    ($($t:ty),*) => {$(
        impl Num for $t {
            const NAME: &'static str = stringify!($t);
            fn from_i64(v: i64) -> $t { v as $t }
            fn add(self, o: $t) -> $t { self.wrapping_add(o) }
            fn mul(self, o: $t) -> $t { self.wrapping_mul(o) }
            fn truth(self) -> bool { self != 0 }
            fn special(_: u64) -> Option<$t> { None }
            fn quiet_nan() -> $t { unreachable!("integers have no NaN") }
        }
    )*};
}
int!(i8, i32, u64);

macro_rules! float {
    ($($t:ty: $bits:ty),*) => {$(
        impl Num for $t {
            const NAME: &'static str = stringify!($t);
            fn from_i64(v: i64) -> $t { v as $t }
            fn add(self, o: $t) -> $t { self + o }
            fn mul(self, o: $t) -> $t { self * o }
            fn truth(self) -> bool { self != 0.0 }
            fn special(h: u64) -> Option<$t> {
                match h % 12 {
                    0 => {
                        let payload = ((h >> 8) & 0xff) as $bits;
                        let sign = if h & 16 == 0 { 0 } else { (-0.0 as $t).to_bits() };
                        Some(<$t>::from_bits(<$t>::NAN.to_bits() | payload | sign))
                    }
                    1 => Some(-0.0),
                    2 => Some(0.0),
                    _ => None,
                }
            }
            fn quiet_nan() -> $t { <$t>::NAN }
        }
    )*};
}
float!(f32: u32, f64: u64);

/// The built-in operations, with the inputs that keep their float results exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sum,
    Prod,
    Min,
    Max,
    LAnd,
    LOr,
    LXor,
    BAnd,
    BOr,
    BXor,
}

pub const ARITH_AND_LOGICAL: [Kind; 7] = [
    Kind::Sum,
    Kind::Prod,
    Kind::Min,
    Kind::Max,
    Kind::LAnd,
    Kind::LOr,
    Kind::LXor,
];
pub const BITWISE: [Kind; 3] = [Kind::BAnd, Kind::BOr, Kind::BXor];

/// Rank `rank`'s element `i` for operation `kind`.
pub fn input<T: Num>(kind: Kind, rank: usize, i: usize) -> T {
    let h = mix(rank as u64, i as u64, kind as u64);
    if matches!(kind, Kind::Min | Kind::Max)
        && let Some(special) = T::special(h >> 20)
    {
        return special;
    }
    let v = match kind {
        Kind::Sum | Kind::Min | Kind::Max => (h % 201) as i64 - 100,
        Kind::Prod => [1, -1, 2, 1][(h % 4) as usize],
        Kind::LAnd => (!h.is_multiple_of(8)) as i64 * ((h >> 8) % 5) as i64,
        Kind::LOr | Kind::LXor => h.is_multiple_of(3) as i64 * 3,
        Kind::BAnd | Kind::BOr | Kind::BXor => (h >> 7) as i64 & 0x7f,
    };
    T::from_i64(v)
}

/// `a ⊕ b` for `kind`, computed independently of the library.
#[allow(clippy::eq_op)] // `x != x`: the NaN test of a generic float
pub fn apply<T: Num>(kind: Kind, a: T, b: T) -> T {
    let bits = |x: T| {
        bytemuck::bytes_of(&x)
            .iter()
            .rev()
            .fold(0u64, |acc, &byte| acc << 8 | byte as u64)
    };
    let from_bits = |v: u64| {
        let mut out = T::zeroed();
        let n = size_of::<T>();
        bytemuck::bytes_of_mut(&mut out).copy_from_slice(&v.to_le_bytes()[..n]);
        out
    };
    match kind {
        Kind::Sum => a.add(b),
        Kind::Prod => a.mul(b),
        // A NaN loses to a number, and of equal values (-0 and +0) Min takes the one
        // with its sign bit set, Max the other.
        Kind::Min | Kind::Max => {
            let (a_nan, b_nan) = (a != a, b != b);
            let negative = |x: T| bits(x) >> (8 * size_of::<T>() - 1) == 1;
            if a_nan && b_nan {
                T::quiet_nan()
            } else if a_nan || b_nan {
                if a_nan { b } else { a }
            } else if a == b {
                if negative(a) == (kind == Kind::Min) {
                    a
                } else {
                    b
                }
            } else if (b < a) == (kind == Kind::Min) {
                b
            } else {
                a
            }
        }
        Kind::LAnd => T::from_truth(a.truth() && b.truth()),
        Kind::LOr => T::from_truth(a.truth() || b.truth()),
        Kind::LXor => T::from_truth(a.truth() != b.truth()),
        Kind::BAnd => from_bits(bits(a) & bits(b)),
        Kind::BOr => from_bits(bits(a) | bits(b)),
        Kind::BXor => from_bits(bits(a) ^ bits(b)),
    }
}

/// Rank `rank`'s whole input vector.
pub fn vector<T: Num>(kind: Kind, rank: usize, count: usize) -> Vec<T> {
    (0..count).map(|i| input(kind, rank, i)).collect()
}

/// The reduction over `ranks` (in order) of everyone's vector.
pub fn reference<T: Num>(kind: Kind, ranks: std::ops::Range<usize>, count: usize) -> Vec<T> {
    let mut acc: Option<Vec<T>> = None;
    for r in ranks {
        let v = vector(kind, r, count);
        acc = Some(match acc {
            None => v,
            Some(a) => a.iter().zip(&v).map(|(&x, &y)| apply(kind, x, y)).collect(),
        });
    }
    acc.unwrap_or_default()
}

/// Two affine maps with one slope, `x -> a x + b` and `x -> a x + c` (wrapping):
/// composing them is associative but not commutative, the test of rank order. 24
/// bytes, a size that divides none of the powers of two the library cuts vectors at
/// (pieces, tiles), so an element cut in two there shows.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct Affine {
    pub a: u64,
    pub b: u64,
    pub c: u64,
}

impl Affine {
    pub fn of(rank: usize, i: usize) -> Affine {
        Affine {
            a: mix(rank as u64, i as u64, 77) | 1,
            b: mix(rank as u64, i as u64, 78),
            c: mix(rank as u64, i as u64, 79),
        }
    }
    /// First `self`, then `next`.
    pub fn then(self, next: Affine) -> Affine {
        Affine {
            a: next.a.wrapping_mul(self.a),
            b: next.a.wrapping_mul(self.b).wrapping_add(next.b),
            c: next.a.wrapping_mul(self.c).wrapping_add(next.c),
        }
    }
    pub fn vector(rank: usize, count: usize) -> Vec<Affine> {
        (0..count).map(|i| Affine::of(rank, i)).collect()
    }
    pub fn reference(ranks: std::ops::Range<usize>, count: usize) -> Vec<Affine> {
        (0..count)
            .map(|i| {
                ranks
                    .clone()
                    .map(|r| Affine::of(r, i))
                    .reduce(Affine::then)
                    .unwrap_or(Affine { a: 1, b: 0, c: 0 })
            })
            .collect()
    }
}

/// Composition of affine maps as a non-commutative user operation (`inout = in ∘ inout`).
pub fn compose()
-> oxmpi::Op::User<impl Fn(&[Affine], &mut [Affine]) + Send + Sync + Clone + 'static> {
    oxmpi::Op::non_commutative(|input: &[Affine], inout: &mut [Affine]| {
        for (y, &x) in inout.iter_mut().zip(input) {
            *y = x.then(*y);
        }
    })
}

/// Runs `body` once per algorithm of `coll`, forcing it, and checks that the forced
/// algorithm ran (in at least one of the calls: it gives way to another where it
/// cannot apply an operation, or where the node's area cannot be used); back to
/// automatic after.
pub fn each_algorithm(coll: Collective, mut body: impl FnMut(&str)) {
    let mut algs: Vec<&str> = coll.algorithms();
    algs.push("auto");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    // One rank has no one to run an algorithm with; the area needs every rank on one
    // node and shared memory.
    let alone = var("PMI_SIZE").parse::<u32>().unwrap_or(1) <= 1;
    let area = var("OXMPI_TRANSPORT") != "tcp" && var("OXMPI_LOCAL_SIZE") == var("PMI_SIZE");
    for alg in algs {
        oxmpi::set_algorithm(coll, Some(alg)).expect("a known algorithm");
        let before = coll.runs(alg);
        body(alg);
        let may_give_way = alg == "auto" || alone || alg == "shared_memory" && !area;
        assert!(
            coll.runs(alg) > before || may_give_way,
            "{coll:?} forced to {alg} never ran it"
        );
    }
    oxmpi::set_algorithm(coll, None).expect("auto");
}

/// Asserts that `got` has the bits of `want` (so NaNs compare, and -0 differs from
/// +0), naming the case and the first differing element.
pub fn check<T: Pod + Debug>(got: &[T], want: &[T], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let bits = bytemuck::bytes_of::<T>;
    if bytemuck::cast_slice::<T, u8>(got) == bytemuck::cast_slice::<T, u8>(want) {
        return;
    }
    if let Some(i) = (0..got.len()).find(|&i| bits(&got[i]) != bits(&want[i])) {
        panic!(
            "{what}: element {i} of {} is {:?}, expected {:?}",
            got.len(),
            got[i],
            want[i]
        );
    }
}
