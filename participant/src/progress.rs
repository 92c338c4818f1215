//! Progress reporting for the bulk commands (`producer enroll`, `consumer collect`): an indicatif
//! bar when stderr is a terminal, otherwise a plain line every few seconds (logs and CI output
//! must not fill with carriage-return animations).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often the plain (non-terminal) mode prints a line.
const PLAIN_INTERVAL: Duration = Duration::from_secs(2);

/// Counts work done against an optional total and shows it on stderr.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    /// Starts reporting `label` (e.g. "participants") out of `total` when known.
    pub fn new(label: &str, total: Option<u64>) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(total) => ProgressBar::new(total),
                None => ProgressBar::new_spinner(),
            };
            let template = format!(
                "{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {label} ({{per_sec}}, eta {{eta}}) {{msg}}"
            );
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            label: label.to_owned(),
            total,
            done: 0,
            started: now,
            last_line: now,
        }
    }

    /// Adds `n` units of work done.
    pub fn inc(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.inc(n),
            None if self.last_line.elapsed() >= PLAIN_INTERVAL => {
                self.last_line = Instant::now();
                eprintln!("progress: {}", self.line());
            }
            None => {}
        }
    }

    /// Prints a message above the bar (or as a plain line).
    pub fn println(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }

    /// Units done so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Removes the bar.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = self.done as f64 / secs;
        match self.total {
            Some(total) => format!("{}/{} {} ({:.1}/s)", self.done, total, self.label, rate),
            None => format!("{} {} ({:.1}/s)", self.done, self.label, rate),
        }
    }
}
