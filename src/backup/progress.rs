//! Progress on stderr for steps that take longer than a second: bytes, parts and rate, at most
//! once a second, never on stdout (which `--json` owns).

use std::cell::Cell;
use std::time::{Duration, Instant};

pub struct Progress {
    quiet: bool,
    step_start: Cell<Instant>,
    last: Cell<Instant>,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let now = Instant::now();
        Self {
            quiet,
            step_start: Cell::new(now),
            last: Cell::new(now),
        }
    }

    /// A new step starts (the one-second clock restarts).
    pub fn step(&self) {
        let now = Instant::now();
        self.step_start.set(now);
        self.last.set(now);
    }

    /// Reports `bytes` (and `parts`) done in the current step, when it has run over a second.
    pub fn tick(&self, what: &str, bytes: u64, parts: u64) {
        if self.quiet {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.last.get()) < Duration::from_secs(1) {
            return;
        }
        self.last.set(now);
        let secs = now
            .duration_since(self.step_start.get())
            .as_secs_f64()
            .max(0.001);
        let mib = bytes as f64 / (1024.0 * 1024.0);
        eprintln!(
            "{what}: {mib:.1} MiB, {parts} part(s), {:.1} MiB/s",
            mib / secs
        );
    }
}
