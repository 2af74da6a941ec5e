//! Lethe: a zero-log edge appliance that scrubs PII and secrets out of LLM traffic.
//!
//! # Architecture
//!
//! ```text
//! client ──▶ proxy (route, policy, request scrub) ──▶ provider
//!        ◀── response scrub (JSON or SSE, StreamScrubber per choice/block) ◀──
//! ```
//!
//! [`scrub`] is the heart of it and touches no I/O: it is fuzzed, benchmarked and
//! property-tested on its own. [`cli`] holds the command-line entry points built on it.
//! [`proxy`] holds the proxy's pieces that touch no I/O either, such as the Server-Sent Events
//! decoder and encoder that carry streamed responses through the scrubber.
//!
//! # The zero-log contract
//!
//! No byte of content reaches disk, stdout/stderr (other than the scrubbed output the user asked
//! for), metrics, error messages or panic messages. Buffers that held content are wiped when they
//! are dropped. What cannot be scrubbed is not passed on.

pub mod cli;
pub mod proxy;
pub mod scrub;
