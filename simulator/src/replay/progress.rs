//! Progress display of a running replay: an indicatif bar when stderr is a
//! terminal, periodic plain lines otherwise (CI logs, pipes, an
//! experiment's process logs: no escape codes there), or nothing.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Counters;

/// How a replay shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar if stderr is a terminal, else plain lines.
    #[default]
    Auto,
    /// An indicatif progress bar on stderr (plain lines if stderr is not
    /// a terminal).
    Bar,
    /// A plain line on stderr every few seconds.
    Lines,
    /// Nothing until the summary.
    Off,
}

impl ProgressMode {
    /// Resolves the mode against the actual stderr: a bar only on a
    /// terminal (`Auto` and `Bar` both give plain lines otherwise, so a
    /// file or pipe never receives cursor movements or colour codes).
    pub fn resolve(self) -> Self {
        match self {
            Self::Auto | Self::Bar if std::io::stderr().is_terminal() => Self::Bar,
            Self::Auto | Self::Bar => Self::Lines,
            other => other,
        }
    }
}

/// Runs until `done` resolves, drawing the progress of `counters`.
pub(super) async fn show(
    mode: ProgressMode,
    label: String,
    total: u64,
    line_interval: Duration,
    counters: Arc<Counters>,
    done: tokio::sync::oneshot::Receiver<()>,
) {
    let started = Instant::now();
    let status = |c: &Counters| {
        let dispatched = c.dispatched.load(Ordering::Relaxed);
        let completed = c.completed.load(Ordering::Relaxed);
        let errors = c.errors.load(Ordering::Relaxed);
        (
            completed,
            format!(
                "in flight {}, errors {errors}",
                dispatched.saturating_sub(completed)
            ),
        )
    };
    match mode.resolve() {
        ProgressMode::Off | ProgressMode::Auto => {
            let _ = done.await;
        }
        ProgressMode::Bar => {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix}[{elapsed_precise}] {wide_bar} {pos}/{len} done, {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            if !label.is_empty() {
                bar.set_prefix(format!("{label} "));
            }
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tokio::pin!(done);
            loop {
                tokio::select! {
                    _ = &mut done => break,
                    _ = tick.tick() => {
                        let (completed, msg) = status(&counters);
                        bar.set_position(completed);
                        bar.set_message(msg);
                    }
                }
            }
            let (completed, msg) = status(&counters);
            bar.finish_and_clear();
            crate::note!(
                "{label}{completed}/{total} done, {msg} in {:.1} s",
                started.elapsed().as_secs_f64(),
                label = if label.is_empty() {
                    String::new()
                } else {
                    format!("[{label}] ")
                },
            );
        }
        ProgressMode::Lines => {
            let mut tick = tokio::time::interval(line_interval);
            tick.tick().await; // the first tick is immediate
            tokio::pin!(done);
            loop {
                tokio::select! {
                    _ = &mut done => break,
                    _ = tick.tick() => {
                        let (completed, msg) = status(&counters);
                        crate::note!(
                            "{label}{:>6.1}s: {completed}/{total} done, {msg}",
                            started.elapsed().as_secs_f64(),
                            label = if label.is_empty() { String::new() } else { format!("[{label}] ") },
                        );
                    }
                }
            }
        }
    }
}
