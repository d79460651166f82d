//! Progress of a run: a bar with rows, MB and rows/s on a terminal, a log line every 10 s otherwise.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::extract::Counters;
use crate::UnitOutcome;

#[derive(Clone)]
pub struct Reporter {
    inner: Arc<Inner>,
}

struct Inner {
    counters: Arc<Counters>,
    units_total: usize,
    units_done: AtomicUsize,
    started: Instant,
    bar: Option<ProgressBar>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Inner {
    fn line(&self) -> String {
        let rows = self.counters.rows.load(Ordering::Relaxed);
        let mb = self.counters.bytes.load(Ordering::Relaxed) as f64 / 1e6;
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        format!(
            "units {}/{} · {rows} rows · {mb:.1} MB · {:.0} rows/s",
            self.units_done.load(Ordering::Relaxed),
            self.units_total,
            rows as f64 / secs
        )
    }
}

/// Starts reporting; call `finish` at the end.
pub fn start(counters: Arc<Counters>, bar: bool, units_total: usize) -> Reporter {
    let bar = bar.then(|| {
        let b = ProgressBar::new_spinner();
        b.set_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                .expect("valid template"),
        );
        b
    });
    let inner = Arc::new(Inner {
        counters,
        units_total,
        units_done: AtomicUsize::new(0),
        started: Instant::now(),
        bar,
        task: std::sync::Mutex::new(None),
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
                    b.set_message(inner.line());
                    b.tick();
                }
                None => tracing::info!(progress = %inner.line(), "copying"),
            }
        }
    });
    *inner.task.lock().expect("not poisoned") = Some(handle);
    Reporter { inner }
}

impl Reporter {
    pub fn unit_done(&self, o: &UnitOutcome) {
        self.inner.units_done.fetch_add(1, Ordering::Relaxed);
        if let Some(b) = &self.inner.bar {
            let status = if o.error.is_some() { "failed" } else { "done" };
            b.println(format!(
                "{status:>6} {} ({} rows)",
                o.unit.label(),
                o.rows_loaded
            ));
        }
    }

    pub fn finish(&self) {
        if let Some(t) = self.inner.task.lock().expect("not poisoned").take() {
            t.abort();
        }
        if let Some(b) = &self.inner.bar {
            b.finish_and_clear();
        }
    }
}
