//! Reads a budget source on a thread of its own, so a read that blocks (a hung mount under the
//! budget file, a FIFO in a sensor's place, a wedged sensor or GPU driver) is a failure seen by
//! the poller after a timeout, not a poller stuck for good: the budget loop keeps running, puts
//! the safe budget in force and reports it, and recovers when the read returns.

use super::{BudgetSource, Reading, SourceError};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

type Answer = (Result<Reading, SourceError>, String);

/// A source whose reads run on a `dvtd-budget-read` thread, at most one at a time.
pub struct Watched {
    timeout: Duration,
    describe: String,
    /// The source, until the reader thread takes it (started on the first read, so a
    /// supervisor built only to check a configuration starts no thread).
    source: Option<Box<dyn BudgetSource>>,
    requests: Option<Sender<()>>,
    answers: Option<Receiver<Answer>>,
    /// When the read now in flight was asked for.
    asked: Option<Instant>,
}

impl Watched {
    /// Wraps `source`; a read that has not returned after `timeout` counts as stale.
    pub fn new(source: Box<dyn BudgetSource>, timeout: Duration) -> Self {
        Self {
            timeout,
            describe: source.describe(),
            source: Some(source),
            requests: None,
            answers: None,
            asked: None,
        }
    }

    fn start(&mut self) -> Result<(), SourceError> {
        let Some(mut source) = self.source.take() else {
            return Ok(());
        };
        let (req_tx, req_rx) = mpsc::channel::<()>();
        let (ans_tx, ans_rx) = mpsc::channel::<Answer>();
        let spawned = std::thread::Builder::new()
            .name("dvtd-budget-read".into())
            .spawn(move || {
                // Ends when the poller is dropped (a reload replaced it).
                for () in req_rx.iter() {
                    let r = source.read();
                    if ans_tx.send((r, source.describe())).is_err() {
                        return;
                    }
                }
            });
        match spawned {
            Ok(_) => {
                self.requests = Some(req_tx);
                self.answers = Some(ans_rx);
                Ok(())
            }
            Err(e) => Err(SourceError::Missing(format!(
                "{}: cannot start its reader thread: {e}",
                self.describe
            ))),
        }
    }
}

impl BudgetSource for Watched {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn read(&mut self) -> Result<Reading, SourceError> {
        self.start()?;
        let (Some(requests), Some(answers)) = (&self.requests, &self.answers) else {
            return Err(SourceError::Missing(format!(
                "{}: its reader thread did not start",
                self.describe
            )));
        };
        let asked = match self.asked {
            Some(t) => t,
            None => {
                if requests.send(()).is_err() {
                    return Err(SourceError::Missing(format!(
                        "{}: its reader thread ended",
                        self.describe
                    )));
                }
                *self.asked.insert(Instant::now())
            }
        };
        match answers.recv_timeout(self.timeout.saturating_sub(asked.elapsed())) {
            Ok((r, describe)) => {
                self.asked = None;
                self.describe = describe;
                r
            }
            Err(RecvTimeoutError::Timeout) => Err(SourceError::Stale(format!(
                "{}: a read has not returned for {:.1} s (blocked in the kernel or the driver)",
                self.describe,
                asked.elapsed().as_secs_f64()
            ))),
            // The source panicked.
            Err(RecvTimeoutError::Disconnected) => Err(SourceError::Missing(format!(
                "{}: its reader thread ended",
                self.describe
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Budget;
    use std::sync::mpsc::Receiver;
    use std::sync::Mutex;

    /// Answers each read only when the test lets it.
    struct Gate(Mutex<Receiver<()>>);

    impl BudgetSource for Gate {
        fn describe(&self) -> String {
            "gate".into()
        }
        fn read(&mut self) -> Result<Reading, SourceError> {
            let _ = self.0.lock().unwrap().recv();
            Ok(Reading {
                budget: Some(Budget::Watts(7.0)),
                power_watts: Some(3.0),
            })
        }
    }

    #[test]
    fn a_blocked_read_is_stale_after_the_timeout_and_its_answer_is_used_later() {
        let (open, gate) = mpsc::channel();
        let mut w = Watched::new(Box::new(Gate(Mutex::new(gate))), Duration::from_millis(50));
        let t0 = Instant::now();
        let e = w.read().unwrap_err();
        assert!(
            matches!(e, SourceError::Stale(ref m) if m.contains("gate: a read has not returned"))
        );
        assert!(t0.elapsed() >= Duration::from_millis(50));
        // Still blocked: answered at once, without asking the source again.
        let t1 = Instant::now();
        assert!(w.read().is_err());
        assert!(t1.elapsed() < Duration::from_millis(40));
        open.send(()).unwrap();
        let r = (0..200)
            .find_map(|_| {
                std::thread::sleep(Duration::from_millis(10));
                w.read().ok()
            })
            .expect("the answer once the read returns");
        assert_eq!(r.power_watts, Some(3.0));
    }
}
