//! Throughput of the local reduction kernels (`oxmpi::reduce_local`, the very loops
//! the collectives run) against `memcpy` of the same bytes, the floor a kernel that
//! reads two vectors and writes one can approach. Criterion reports GB/s of the
//! in-out vector; compare each kernel's figure with `memcpy` in the same run.
//!
//! `cargo bench --bench reduce_kernels`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use oxmpi::{Op, ValueIndex};

/// Vector sizes in bytes: in L1, in L2, and past the last-level cache.
const SIZES: [usize; 3] = [16 << 10, 256 << 10, 16 << 20];

fn kernel<T: bytemuck::Pod, O: Op::Reduction<T> + Copy>(
    c: &mut Criterion,
    name: &str,
    op: O,
    one: T,
) {
    let mut group = c.benchmark_group(name);
    for bytes in SIZES {
        let n = bytes / size_of::<T>();
        let input = vec![one; n];
        let mut inout = vec![one; n];
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(BenchmarkId::from_parameter(bytes), |b| {
            b.iter(|| {
                oxmpi::reduce_local(black_box(&input), black_box(&mut inout), op)
                    .expect("equal lengths")
            })
        });
    }
    group.finish();
}

fn memcpy(c: &mut Criterion) {
    let mut group = c.benchmark_group("memcpy");
    for bytes in SIZES {
        let src = vec![1u8; bytes];
        let mut dst = vec![0u8; bytes];
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(BenchmarkId::from_parameter(bytes), |b| {
            b.iter(|| dst.copy_from_slice(black_box(&src)))
        });
    }
    group.finish();
}

fn kernels(c: &mut Criterion) {
    memcpy(c);
    kernel(c, "sum_f32", Op::Sum, 1.0f32);
    kernel(c, "sum_f64", Op::Sum, 1.0f64);
    kernel(c, "sum_i32", Op::Sum, 1i32);
    kernel(c, "max_f32", Op::Max, 1.0f32);
    kernel(c, "min_i64", Op::Min, 1i64);
    kernel(c, "prod_f64", Op::Prod, 1.0f64);
    kernel(c, "bxor_u64", Op::BitXor, 1u64);
    kernel(c, "land_i32", Op::LogicalAnd, 1i32);
    kernel(c, "minloc_f64", Op::MinLoc, ValueIndex::new(1.0f64, 1i32));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = kernels
}
criterion_main!(benches);
