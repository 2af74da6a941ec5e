//! Placeholders restore to the original text, streamed restoring equals one-shot restoring, and
//! streamed placeholder scrubbing numbers like one-shot scrubbing.
#![no_main]

use lethe::scrub::{restore, StreamRestorer, Style, Vault};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((lens, payload)) = lethe_fuzz::split(data) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(payload) else {
        return;
    };
    let s = lethe_fuzz::scrubber(Some(Style::Placeholder));
    let mut vault = Vault::new();
    let scrubbed = s.scrub_in(text, &mut vault);

    // Streamed scrubbing with a fresh vault gives the same text and the same numbering.
    let mut stream_vault = Vault::new();
    let mut stream = s.stream();
    let mut streamed = String::new();
    for delta in lethe_fuzz::str_pieces(text, &lens) {
        streamed.push_str(stream.push(delta, &mut stream_vault));
    }
    streamed.push_str(stream.finish(&mut stream_vault));
    assert_eq!(
        streamed, scrubbed.text,
        "stream output differs from one-shot"
    );

    // Streamed restoring equals one-shot restoring, whatever the cuts.
    let restored = restore(&scrubbed.text, &vault);
    let mut restorer = StreamRestorer::new();
    let mut streamed = String::new();
    for delta in lethe_fuzz::str_pieces(&scrubbed.text, &lens) {
        streamed.push_str(restorer.push(delta, &vault));
    }
    streamed.push_str(restorer.finish(&vault));
    assert_eq!(streamed, restored, "stream restore differs from one-shot");

    // A text that already spells a placeholder the vault knows (`[EMAIL_1]` next to an address)
    // cannot round-trip: restoring cannot tell the literal from the placeholder.
    if restore(text, &vault) != text {
        return;
    }
    assert_eq!(restored, text, "restore does not give back the original");
});
