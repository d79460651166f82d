//! Progress of a long command: a bar on a terminal, a log line every ten seconds otherwise.
//! pg-copy, cdc-sync `run` and `resync`, mart-build `run`, and log-ingest `pull` and `replay`
//! show theirs through it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// What a command is doing, as it goes.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

type Status = Box<dyn Fn() -> String + Send + Sync>;

struct Inner {
    /// `copying`, `replicating`: the log line's message.
    what: &'static str,
    /// Steps in all (units, marts), when known.
    total: Option<u64>,
    done: AtomicU64,
    started: Instant,
    /// The current state, read at every tick.
    status: Status,
    bar: Option<ProgressBar>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Inner {
    fn line(&self) -> String {
        let status = (self.status)();
        let done = self.done.load(Ordering::Relaxed);
        let steps = match self.total {
            Some(t) => format!("{done}/{t}"),
            None if done > 0 => done.to_string(),
            None => String::new(),
        };
        match (steps.is_empty(), status.is_empty()) {
            (true, _) => status,
            (false, true) => steps,
            (false, false) => format!("{steps} · {status}"),
        }
    }
}

/// Whether progress goes to a terminal (stderr): a bar there, log lines otherwise.
pub fn stderr_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

impl Progress {
    /// Starts showing progress: a bar when `terminal`, else an info line every ten seconds.
    /// `status` says where the command is (rows copied, changes applied); `total` is the
    /// number of steps, when known.
    pub fn start(
        what: &'static str,
        total: Option<u64>,
        terminal: bool,
        status: impl Fn() -> String + Send + Sync + 'static,
    ) -> Progress {
        let bar = terminal.then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b
        });
        let inner = Arc::new(Inner {
            what,
            total,
            done: AtomicU64::new(0),
            started: Instant::now(),
            status: Box::new(status),
            bar,
            task: Mutex::new(None),
        });
        let weak = Arc::downgrade(&inner);
        let every = if inner.bar.is_some() {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(10)
        };
        let handle = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                match &inner.bar {
                    Some(b) => {
                        b.set_message(format!("{} {}", inner.what, inner.line()));
                        b.tick();
                    }
                    None => tracing::info!(
                        progress = %inner.line(),
                        elapsed_s = inner.started.elapsed().as_secs(),
                        "{}", inner.what
                    ),
                }
            }
        });
        *inner.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Progress { inner }
    }

    /// A progress that shows nothing (tests, library callers).
    pub fn hidden() -> Progress {
        Progress {
            inner: Arc::new(Inner {
                what: "",
                total: None,
                done: AtomicU64::new(0),
                started: Instant::now(),
                status: Box::new(String::new),
                bar: None,
                task: Mutex::new(None),
            }),
        }
    }

    /// One step done; `line` says what it was (printed above the bar on a terminal).
    pub fn step(&self, line: Option<String>) {
        self.inner.done.fetch_add(1, Ordering::Relaxed);
        if let (Some(b), Some(l)) = (&self.inner.bar, line) {
            b.println(l);
        }
    }

    /// Whether a bar is shown (a terminal).
    pub fn on_terminal(&self) -> bool {
        self.inner.bar.is_some()
    }

    /// Stops showing progress.
    pub fn finish(&self) {
        if let Some(t) = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            t.abort();
        }
        if let Some(b) = &self.inner.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_say_steps_and_status() {
        let p = Progress::start("copying", Some(3), false, || "12 rows".into());
        assert_eq!(p.inner.line(), "0/3 · 12 rows");
        p.step(None);
        assert_eq!(p.inner.line(), "1/3 · 12 rows");
        p.finish();
        let open = Progress::start("replicating", None, false, String::new);
        assert_eq!(open.inner.line(), "");
        open.step(None);
        assert_eq!(open.inner.line(), "1");
        open.finish();
    }
}
