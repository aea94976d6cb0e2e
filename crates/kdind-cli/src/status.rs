//! Step lines for people: a spinner on a terminal, plain lines elsewhere (CI, pipes), nothing
//! with `-q`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use kdind::progress::Progress;

enum Mode {
    Quiet,
    Plain,
    Spinner,
}

/// The [`Progress`] the CLI hands to the library.
pub struct Status {
    mode: Mode,
    current: Mutex<Option<(Instant, Option<ProgressBar>)>>,
}

impl Status {
    pub fn new(quiet: bool) -> Self {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() && !ci {
            Mode::Spinner
        } else {
            Mode::Plain
        };
        Self {
            mode,
            current: Mutex::new(None),
        }
    }

    /// Removes a spinner before an error is printed.
    pub fn clear(&self) {
        if let Some((_, Some(bar))) = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            bar.finish_and_clear();
        }
    }
}

fn elapsed(start: Instant) -> String {
    let secs = start.elapsed().as_secs_f64();
    if secs >= 60.0 {
        format!("{}m{:02}s", secs as u64 / 60, secs as u64 % 60)
    } else {
        format!("{secs:.1}s")
    }
}

impl Progress for Status {
    fn start(&self, title: &str) {
        let bar = match self.mode {
            Mode::Quiet => None,
            Mode::Plain => {
                eprintln!(" • {title} ...");
                None
            }
            Mode::Spinner => {
                let bar = ProgressBar::new_spinner();
                bar.set_style(
                    ProgressStyle::with_template(" {spinner} {msg} {elapsed:.dim}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_message(title.to_owned());
                bar.enable_steady_tick(Duration::from_millis(100));
                Some(bar)
            }
        };
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), bar));
    }

    fn finish(&self, title: &str, ok: bool) {
        let Some((start, bar)) = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        if !matches!(self.mode, Mode::Quiet) {
            let mark = if ok { "✓" } else { "✗" };
            eprintln!(" {mark} {title} ({})", elapsed(start));
        }
    }

    fn note(&self, line: &str) {
        if !matches!(self.mode, Mode::Quiet) {
            eprintln!("{line}");
        }
    }
}
