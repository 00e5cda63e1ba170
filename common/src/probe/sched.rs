//! Running many checks: each real is checked by its own lightweight task
//! (not a thread), all sharing one semaphore that bounds how many checks
//! are in flight. A hung real holds one task and one permit for at most
//! the timeout; the others go on. Works on a current-thread runtime.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::{check, Check, Outcome, Target};
use crate::error::{Error, Result};

/// One real to check, with the caller's key for it.
#[derive(Debug, Clone)]
pub struct Job<K> {
    pub key: K,
    pub target: Target,
    pub check: Arc<Check>,
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct Report<K> {
    pub key: K,
    pub outcome: Outcome,
    pub started: Instant,
    pub elapsed: Duration,
}

#[derive(Debug, Clone)]
pub struct Scheduler {
    limit: Arc<Semaphore>,
    timeout: Duration,
}

async fn one<K>(limit: &Semaphore, job: &Job<K>, timeout: Duration) -> (Outcome, Instant, Duration) {
    // The semaphore is never closed, so acquire only fails if it were.
    let _permit = limit.acquire().await.ok();
    let started = Instant::now();
    let outcome = check(&job.target, &job.check, timeout).await;
    (outcome, started, started.elapsed())
}

impl Scheduler {
    /// At most `max_concurrent` checks in flight; each bounded by `timeout`.
    pub fn new(max_concurrent: usize, timeout: Duration) -> Result<Scheduler> {
        if max_concurrent == 0 || timeout.is_zero() {
            return Err(Error::configured("probe concurrency and timeout must be above zero"));
        }
        Ok(Scheduler { limit: Arc::new(Semaphore::new(max_concurrent)), timeout })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Checks every job once, concurrently; reports in the jobs' order.
    pub async fn round<K>(&self, jobs: &[Job<K>]) -> Vec<Report<K>>
    where
        K: Clone + Send + Sync + 'static,
    {
        let mut set = JoinSet::new();
        for (i, job) in jobs.iter().enumerate() {
            let job = job.clone();
            let limit = self.limit.clone();
            let timeout = self.timeout;
            set.spawn(async move { (i, one(&limit, &job, timeout).await) });
        }
        let mut slots: Vec<Option<(Outcome, Instant, Duration)>> = vec![None; jobs.len()];
        while let Some(joined) = set.join_next().await {
            if let Ok((i, result)) = joined {
                slots[i] = Some(result);
            }
        }
        jobs.iter()
            .zip(slots)
            .map(|(job, slot)| {
                let (outcome, started, elapsed) =
                    slot.unwrap_or_else(|| (Outcome::Down("check task failed".into()), Instant::now(), Duration::ZERO));
                Report { key: job.key.clone(), outcome, started, elapsed }
            })
            .collect()
    }

    /// Checks every job every `interval` until the receiver is dropped
    /// (or this future is dropped, which stops every check). First checks
    /// are spread over the first interval so thousands of reals do not
    /// all connect in the same millisecond.
    pub async fn run<K>(&self, jobs: Vec<Job<K>>, interval: Duration, tx: mpsc::Sender<Report<K>>) -> Result<()>
    where
        K: Clone + Send + Sync + 'static,
    {
        if interval.is_zero() {
            return Err(Error::configured("check interval must be above zero"));
        }
        let n = jobs.len().max(1) as u32;
        let mut set = JoinSet::new();
        for (i, job) in jobs.into_iter().enumerate() {
            let limit = self.limit.clone();
            let timeout = self.timeout;
            let tx = tx.clone();
            let offset = interval / n * i as u32;
            set.spawn(async move {
                tokio::time::sleep(offset).await;
                let mut ticks = tokio::time::interval(interval);
                // A slow check delays only its own real's next check.
                ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    let (outcome, started, elapsed) = one(&limit, &job, timeout).await;
                    let report = Report { key: job.key.clone(), outcome, started, elapsed };
                    if tx.send(report).await.is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        while set.join_next().await.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(key: u32, spec: &str) -> Job<u32> {
        Job { key, target: Target::new("127.0.0.1".parse().unwrap(), 9), check: Arc::new(Check::parse(spec).unwrap()) }
    }

    #[test]
    fn zero_settings_are_refused() {
        assert!(matches!(Scheduler::new(0, Duration::from_secs(1)), Err(Error::Configured(_))));
        assert!(matches!(Scheduler::new(1, Duration::ZERO), Err(Error::Configured(_))));
    }

    #[tokio::test]
    async fn round_keeps_order() {
        let s = Scheduler::new(2, Duration::from_secs(1)).unwrap();
        let jobs: Vec<_> = (0..10).map(|i| job(i, if i % 2 == 0 { "on" } else { "off" })).collect();
        let reports = s.round(&jobs).await;
        assert_eq!(reports.len(), 10);
        for (i, r) in reports.iter().enumerate() {
            assert_eq!(r.key, i as u32);
            assert_eq!(r.outcome.is_up(), i % 2 == 0);
        }
    }

    #[tokio::test]
    async fn run_reports_until_the_receiver_goes() {
        let s = Scheduler::new(4, Duration::from_secs(1)).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let jobs = vec![job(1, "on"), job(2, "off")];
        let runner = s.run(jobs, Duration::from_millis(20), tx);
        let reader = async move {
            let mut seen = [0u32; 3];
            while seen[1] < 3 || seen[2] < 3 {
                let r = rx.recv().await.unwrap();
                assert_eq!(r.outcome.is_up(), r.key == 1);
                seen[r.key as usize] += 1;
            }
            // rx dropped here: the runner must end.
        };
        let (ran, ()) =
            tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(runner, reader) }).await.unwrap();
        ran.unwrap();
        assert!(matches!(
            s.run(Vec::<Job<u32>>::new(), Duration::ZERO, mpsc::channel(1).0).await,
            Err(Error::Configured(_))
        ));
    }
}
