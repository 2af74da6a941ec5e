//! The proxy's sans-I/O building blocks: the Server-Sent Events codec in [`sse`].
pub mod sse;
