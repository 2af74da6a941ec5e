//! Allocator benchmark cases, shared by `alloc.rs` (Lethe's zeroing allocator) and
//! `alloc_plain.rs` (plain mimalloc); each target installs its own global allocator.
//!
//! * `alloc_free/N`: allocate N bytes, fill them (a buffer is allocated to be written), free.
//! * `vec_grow`: a `Vec` grown by 100-byte appends to 16 KiB (reallocations on the way).
//! * `json_scrub`: the end-to-end benchmark's ~1 KB chat request parsed into a JSON value,
//!   every string scrubbed with the default policy, serialised again: a request's allocations.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use lethe::scrub::{Policy, Scrubber};
use serde_json::Value;

const REQUEST: &str = r#"{"model":"gpt-4o-mini","temperature":0.2,"max_tokens":400,"messages":[{"role":"system","content":"You are a friendly support assistant for an online furniture shop. Answer briefly, be polite, never invent order details and ask for missing information when you need it."},{"role":"user","content":"Hi, I ordered a walnut desk lamp from your shop last Tuesday (order 88412) and it arrived with a cracked shade and a loose switch. I would like a replacement rather than a refund if you still have the lamp in stock, otherwise a refund to the original payment method is fine. You can reach me at jane.doe@example.com or on my mobile (415) 555-0132 during the day. I paid with my card 4111 1111 1111 1111. Please tell me whether I need to send the broken lamp back first, and if so, whether you will email me a prepaid return label. Thanks a lot for your help!"}]}"#;

fn configured(
    c: &mut Criterion,
    name: String,
) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group
}

/// The cases that go through the global allocator, named `{allocator}/…`.
pub fn allocator_cases(c: &mut Criterion, allocator: &str) {
    let mut group = configured(c, format!("{allocator}/alloc_free"));
    for size in [64usize, 1024, 16 * 1024, 256 * 1024] {
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            b.iter(|| black_box(vec![1u8; black_box(size)]));
        });
    }
    group.finish();

    let mut group = configured(c, format!("{allocator}/vec_grow"));
    let chunk = [7u8; 100];
    group.bench_function("16KiB_by_100B", |b| {
        b.iter(|| {
            let mut v = Vec::new();
            while v.len() < 16 * 1024 {
                v.extend_from_slice(black_box(&chunk));
            }
            black_box(v)
        });
    });
    group.finish();

    let scrubber = Scrubber::new(&Policy::default()).expect("default policy");
    let mut group = configured(c, format!("{allocator}/json_scrub"));
    group.throughput(Throughput::Bytes(REQUEST.len() as u64));
    group.bench_function("chat_request_1KB", |b| {
        b.iter(|| {
            let mut value: Value = serde_json::from_str(black_box(REQUEST)).unwrap();
            scrub_strings(&mut value, &scrubber);
            black_box(serde_json::to_vec(&value).unwrap())
        });
    });
    group.finish();
}

fn scrub_strings(value: &mut Value, scrubber: &Scrubber) {
    match value {
        Value::String(text) => {
            if let std::borrow::Cow::Owned(new) = scrubber.scrub(text).text {
                *text = new;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_strings(v, scrubber)),
        Value::Object(map) => map.values_mut().for_each(|v| scrub_strings(v, scrubber)),
        _ => {}
    }
}

/// The wipe alone, whichever allocator is installed: `lethe::alloc::wipe` against `zeroize`'s
/// volatile per-element writes.
#[allow(dead_code)]
pub fn wipe_cases(c: &mut Criterion) {
    use zeroize::Zeroize;
    let mut group = configured(c, "wipe".to_owned());
    for size in [64usize, 4096] {
        let mut buf = vec![1u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("memset_barrier", size), &size, |b, _| {
            b.iter(|| lethe::alloc::wipe(black_box(&mut buf)));
        });
        group.bench_with_input(BenchmarkId::new("zeroize", size), &size, |b, _| {
            b.iter(|| black_box(&mut buf[..]).zeroize());
        });
    }
    group.finish();
}
