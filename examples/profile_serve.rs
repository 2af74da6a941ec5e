//! `lethe serve`'s server without the sandbox, for profilers:
//!
//! ```sh
//! cargo build --release --bins --example profile_serve
//! target/release/lethe-mock-provider --listen 127.0.0.1:0 &
//! valgrind --tool=callgrind target/release/examples/profile_serve http://MOCK_ADDR
//! ```
//!
//! then send N requests over one keep-alive connection to the address it prints, stop it with
//! SIGTERM, and subtract a run with fewer requests. The sandbox sets the file-size limit to
//! zero and lets no file be opened, so a profiler inside a locked-down `lethe serve` cannot
//! write its output; everything else (the built-in default configuration with the given
//! OpenAI upstream, the wiping allocator, the runtime, the server) is as `lethe serve` has it.

// A benchmark driver: a wrong argument is a crash.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::Write;
use std::sync::Arc;

use lethe::config::{Config, Overrides};
use lethe::server::{shutdown_signal, Server};

#[global_allocator]
static ALLOCATOR: lethe::alloc::WipingMimalloc = lethe::alloc::WipingMimalloc;

fn main() {
    let upstream = std::env::args()
        .nth(1)
        .expect("the OpenAI upstream's base URL");
    let overrides = Overrides {
        listen: Some("127.0.0.1:0".into()),
        openai_upstream: Some(upstream),
        ..Overrides::default()
    };
    let config = Arc::new(Config::default_config(&overrides).unwrap());
    lethe::alloc::prepare();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let server = Server::bind(config, None).await.unwrap();
        // The line `lethe serve` prints, as it prints it.
        let addr = server.local_addr().unwrap();
        let _ = writeln!(std::io::stderr(), "lethe: serving on http://{addr}");
        server.serve(shutdown_signal()).await;
    });
}
