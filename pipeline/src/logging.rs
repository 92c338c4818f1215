//! tracing setup shared by the binaries: human-readable lines on stderr, level from `RUST_LOG`
//! or the `-v` count.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Installs a stderr subscriber. `verbosity` 0 = info, 1 = debug, 2+ = trace; `RUST_LOG` wins
/// when set. Calling it twice is harmless (the second call does nothing).
pub fn init(verbosity: u8) {
    let default = match verbosity {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // lapin logs every recovered error at error level; keep its noise at warn unless asked.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},lapin=warn,amq_protocol=warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        // Colour codes only on a terminal: logs in files, pipes and containers stay greppable.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
