//! The cases of `alloc_cases.rs` on plain mimalloc, the baseline for `benches/alloc.rs`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "alloc_cases.rs"]
mod cases;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut criterion::Criterion) {
    cases::allocator_cases(c, "mimalloc");
}

criterion::criterion_group!(benches, bench);
criterion::criterion_main!(benches);
