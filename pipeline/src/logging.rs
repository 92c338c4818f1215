//! tracing setup shared by the binaries: human-readable lines on stderr, level from `RUST_LOG`
//! or the `-v` count.
//!
//! No log line carries a secret: broker URLs are logged through
//! [`redact_url`](crate::broker::redact_url), and lapin and amq-protocol are held at `debug`
//! whatever `RUST_LOG` says, because at `trace` they print whole AMQP frames (`Debug`), and the
//! frame that logs in (`connection.start-ok`) carries the password.

use std::io::IsTerminal as _;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, fmt};

/// Installs a stderr subscriber. `verbosity` 0 = info, 1 = debug, 2+ = trace; `RUST_LOG` wins
/// when set (except that lapin and amq-protocol never log below `debug`). Calling it twice is
/// harmless (the second call does nothing).
pub fn init(verbosity: u8) {
    let default = match verbosity {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // lapin logs every recovered error at error level; keep its noise at warn unless asked.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},lapin=warn,amq_protocol=warn")));
    let _ = tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                // Colour codes only on a terminal: logs in files, pipes and containers stay
                // greppable.
                .with_ansi(std::io::stderr().is_terminal())
                .with_filter(filter),
        )
        .with(no_protocol_frames())
        .try_init();
}

/// The ceiling that keeps AMQP frames (with the login's password) out of every log. A target
/// prefix: `amq_protocol` covers `amq_protocol_tcp`, `amq_protocol_uri`, ...
pub fn no_protocol_frames() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("lapin", LevelFilter::DEBUG)
        .with_target("amq_protocol", LevelFilter::DEBUG)
}
