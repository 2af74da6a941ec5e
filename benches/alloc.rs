//! What zeroing on free costs: the cases of `alloc_cases.rs` with Lethe's allocator
//! ([`lethe::alloc::WipingMimalloc`]). `benches/alloc_plain.rs` runs the same cases on plain
//! mimalloc; compare the two with
//!
//! ```sh
//! taskset -c 1 cargo bench --bench alloc --bench alloc_plain
//! ```
//!
//! Benchmark names start with the allocator (`wiping/…`, `mimalloc/…`). This target also
//! compares the wipe itself (`memset` plus a compiler barrier) with `zeroize` on a slice.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "alloc_cases.rs"]
mod cases;

#[global_allocator]
static ALLOCATOR: lethe::alloc::WipingMimalloc = lethe::alloc::WipingMimalloc;

fn bench(c: &mut criterion::Criterion) {
    cases::allocator_cases(c, "wiping");
    cases::wipe_cases(c);
}

criterion::criterion_group!(benches, bench);
criterion::criterion_main!(benches);
