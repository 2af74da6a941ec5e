//! Lethe: a zero-log edge appliance that scrubs PII and secrets out of LLM traffic.
//!
//! # Architecture
//!
//! ```text
//! client ──TLS 1.3 / loopback HTTP──▶ server (limits, timeouts, drain)
//!                                       │
//!                                       ▼
//!   proxy::route    path + model ──▶ upstream route (OpenAI | Anthropic), else a JSON 404
//!   proxy::policy   operator floor ⊕ X-PII-* / X-Compliance-Mode headers
//!   proxy::json     request body ──▶ every text value scrubbed ──▶ proxy::upstream (fallback)
//!   answer          JSON ──▶ proxy::json ──▶ client
//!                   SSE  ──▶ proxy::sse ──▶ proxy::events (a StreamScrubber per choice/block)
//!                        ──▶ proxy::sse ──▶ client
//! ```
//!
//! [`config`] reads everything once at start-up; [`dns`] configures name resolution once;
//! [`metrics`] names what is measured and sends it to StatsD, numbers and closed-set tags only;
//! [`sandbox`] then locks the process down before it serves; [`server`] owns the listener;
//! [`proxy`] handles one request. [`scrub`] is the heart of it and touches no I/O: it is
//! fuzzed, benchmarked and property-tested on its own, like [`proxy::sse`] and
//! [`proxy::events`]. [`cli`] maps the command line onto all of it; [`notify`] tells systemd
//! when Lethe is ready, alive and stopping.
//!
//! # The zero-log contract
//!
//! No byte of content reaches disk, stdout/stderr (other than the scrubbed output the user asked
//! for), metrics, error messages or panic messages. Buffers that held content are wiped when they
//! are dropped (the global allocator, [`alloc`], zeroes every block it frees). What cannot be
//! scrubbed is not passed on.

pub mod alloc;
pub mod cli;
pub mod config;
pub mod dns;
pub mod metrics;
pub mod notify;
pub mod proxy;
pub mod sandbox;
pub mod scrub;
pub mod server;

/// One step of a xorshift64 generator: the tests' cheap, reproducible source of random inputs.
#[cfg(test)]
pub(crate) fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
