//! What the library tells people while it works.
//!
//! Long work is a series of named steps. The library announces each step through [`Progress`];
//! the binary decides how it looks (a spinner on a terminal, plain lines in CI, nothing with
//! `-q`). Diagnostics go through `tracing` instead and never through here.

use std::future::Future;

/// Receives step announcements.
pub trait Progress: Send + Sync {
    /// A step begins.
    fn start(&self, title: &str);
    /// The step that began last ended; `ok` is false when it failed.
    fn finish(&self, title: &str, ok: bool);
    /// A line people should see that is not a step, such as a result.
    fn note(&self, line: &str);
}

/// Shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _title: &str) {}
    fn finish(&self, _title: &str, _ok: bool) {}
    fn note(&self, _line: &str) {}
}

/// Runs one step: announces it, awaits it, and reports how it ended.
pub async fn step<T, E, F>(progress: &dyn Progress, title: &str, work: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    progress.start(title);
    let result = work.await;
    progress.finish(title, result.is_ok());
    result
}
