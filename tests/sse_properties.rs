//! The SSE codec's contract:
//!
//! * split invariance: decoding with the input pushed in arbitrary pieces (including one byte at
//!   a time, inside UTF-8 characters and between `\r` and `\n`) gives the same items and the same
//!   error or end as decoding it in one push;
//! * the bytes held after draining never exceed the limit;
//! * encode then decode gives the events back, whatever the cuts, with line breaks inside `data`
//!   normalised to `\n` (SSE cannot carry a `\r` inside a value).
//!
//! Inputs are built from fragments that stress line handling and fields, plus arbitrary bytes.

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use lethe::alloc::Wiped;
use lethe::proxy::sse::{encode, encode_comment, Decoder, Event, Item, SseError};
use proptest::prelude::*;

const FRAGMENTS: &[&[u8]] = &[
    b"data",
    b"data:",
    b"data: ",
    b"event: ",
    b"event:delta",
    b"id: ",
    b"id",
    b"retry: ",
    b"retry:12",
    b"foo: ",
    b":",
    b": ping",
    b" ",
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b"\r\r",
    b"\r\n\r\n",
    b"\xEF\xBB\xBF",
    b"\xEF\xBB",
    b"\0",
    b"x",
    b"hello world",
    b"{\"delta\":\"hi\"}",
    "é✓𝄞".as_bytes(),
    b"\xC3",
    b"\xFF",
    b"0123456789",
];

fn input() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        4 => prop::sample::select(FRAGMENTS).prop_map(<[u8]>::to_vec),
        1 => prop::collection::vec(any::<u8>(), 0..8),
    ];
    prop::collection::vec(fragment, 0..40).prop_map(|parts| parts.concat())
}

/// Piece lengths, cycled over the input; zero makes an empty push.
fn lens() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..12, 1..8)
        .prop_filter("some progress", |l| l.iter().any(|&n| n > 0))
}

fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..48, Just(1 << 20)]
}

fn pieces<'a>(bytes: &'a [u8], lens: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    for &l in lens.iter().cycle() {
        if at >= bytes.len() {
            break;
        }
        let end = (at + l).min(bytes.len());
        out.push(&bytes[at..end]);
        at = end;
    }
    out
}

/// Pushes `pieces` one by one, draining after each (events are kept as copies and given back
/// to the decoder, as the stream body does) and checking the bound: the items, then the error
/// or the result of `finish`.
fn decode(pieces: &[&[u8]], max: usize) -> (Vec<Item>, Result<(), SseError>) {
    let mut d = Decoder::new(max);
    let mut items = Vec::new();
    for piece in pieces {
        d.push(piece);
        loop {
            match d.next() {
                Ok(Some(Item::Event(e))) => {
                    items.push(Item::Event(e.clone()));
                    d.recycle(e);
                }
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => return (items, Err(e)),
            }
        }
        assert!(d.buffered() <= max, "buffered {} > {max}", d.buffered());
    }
    (items, d.finish())
}

/// An item as plain values (`None` for a comment): `event`, `data`, `id`, `retry`.
type Plain = Option<(Option<String>, String, Option<String>, Option<u64>)>;

/// Items as plain values, so a failure shows them (`Event`'s `Debug` shows sizes only).
fn plain(items: &[Item]) -> Vec<Plain> {
    items
        .iter()
        .map(|item| match item {
            Item::Comment => None,
            Item::Event(e) => Some((e.event.clone(), e.data.to_string(), e.id.clone(), e.retry)),
        })
        .collect()
}

fn event() -> impl Strategy<Value = Event> {
    (
        prop::option::of("[^\r\n]{1,12}"),
        prop_oneof![
            any::<String>(),
            "(\r\n|[\r\n]|[^\r\n]{1,6}|: |data: |\u{FEFF}| ){0,12}",
        ],
        prop::option::of("[^\r\n\0]{0,12}"),
        prop::option::of(any::<u64>()),
    )
        .prop_map(|(event, data, id, retry)| Event {
            event,
            data: Wiped::new(data),
            id,
            retry,
        })
}

/// What decoding gives back for `e`: line breaks in data become `\n`.
fn normalised(e: &Event) -> Event {
    Event {
        event: e.event.clone(),
        data: Wiped::new(e.data.replace("\r\n", "\n").replace('\r', "\n")),
        id: e.id.clone(),
        retry: e.retry,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn split_decoding_equals_one_push(input in input(), lens in lens(), max in limit()) {
        let (whole_items, whole_end) = decode(&[&input], max);
        let (items, end) = decode(&pieces(&input, &lens), max);
        prop_assert_eq!(plain(&items), plain(&whole_items));
        prop_assert_eq!(end, whole_end);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        let (items, end) = decode(&bytes, max);
        prop_assert_eq!(plain(&items), plain(&whole_items));
        prop_assert_eq!(end, whole_end);
    }

    #[test]
    fn arbitrary_bytes_split_anywhere(input in prop::collection::vec(any::<u8>(), 0..200), lens in lens(), max in limit()) {
        let (whole_items, whole_end) = decode(&[&input], max);
        let (items, end) = decode(&pieces(&input, &lens), max);
        prop_assert_eq!(plain(&items), plain(&whole_items));
        prop_assert_eq!(end, whole_end);
    }

    #[test]
    fn encode_then_decode_round_trips(events in prop::collection::vec(event(), 0..6), comments in prop::collection::vec(any::<bool>(), 6), lens in lens()) {
        let mut out = Vec::new();
        let mut expected = Vec::new();
        for (e, &comment) in events.iter().zip(&comments) {
            encode(e, &mut out);
            expected.push(Item::Event(normalised(e)));
            if comment {
                encode_comment(&mut out);
                expected.push(Item::Comment);
            }
        }
        let (items, end) = decode(&pieces(&out, &lens), 1 << 20);
        prop_assert_eq!(end, Ok(()));
        prop_assert_eq!(plain(&items), plain(&expected));
    }

    #[test]
    fn decoded_events_re_encode_exactly(input in input()) {
        // A decoded event has no `\r` in its data: re-encoding and decoding is the identity.
        let (items, _) = decode(&[&input], 1 << 20);
        let mut out = Vec::new();
        for item in &items {
            match item {
                Item::Event(e) => encode(e, &mut out),
                Item::Comment => encode_comment(&mut out),
            }
        }
        let (again, end) = decode(&[&out], 1 << 20);
        prop_assert_eq!(end, Ok(()));
        prop_assert_eq!(plain(&again), plain(&items));
    }
}
