//! Arbitrary bytes cut anywhere through `Utf8Input`, then a stream: the decoder must hand over
//! exactly the input, and the stream must equal one-shot scrubbing, or the input is not UTF-8.
#![no_main]

use lethe::scrub::{Utf8Input, Vault};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((lens, bytes)) = lethe_fuzz::split(data) else {
        return;
    };
    let valid = std::str::from_utf8(bytes);
    let s = lethe_fuzz::scrubber(None);

    let mut utf8 = Utf8Input::new();
    let mut vault = Vault::new();
    let mut stream = s.stream();
    let mut decoded = String::new();
    let mut out = String::new();
    let mut result = Ok(());
    for piece in lethe_fuzz::byte_pieces(bytes, &lens) {
        result = utf8.feed(piece, &mut |delta| {
            decoded.push_str(delta);
            out.push_str(stream.push(delta, &mut vault));
        });
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = utf8.finish();
    }
    match (valid, result) {
        (Ok(text), Ok(())) => {
            assert_eq!(decoded, text, "decoded text differs from the input");
            out.push_str(stream.finish(&mut vault));
            assert_eq!(
                out,
                s.scrub(text).text,
                "stream output differs from one-shot"
            );
        }
        (Err(_), Err(_)) => {
            // Whatever was handed over before the error is a prefix of the valid part.
            let good = &bytes[..valid.map_or_else(|e| e.valid_up_to(), str::len)];
            assert!(
                good.starts_with(decoded.as_bytes()),
                "decoded more than the valid prefix"
            );
        }
        (Ok(_), Err(e)) => panic!("valid UTF-8 rejected: {e}"),
        (Err(e), Ok(())) => panic!("invalid UTF-8 accepted: {e}"),
    }
});
