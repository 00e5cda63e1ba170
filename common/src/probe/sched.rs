//! Running many checks. A round checks every real at once, each in its
//! own lightweight task (not a thread). Continuous checking keeps one
//! timer queue for all reals and spawns a task only for a check that is
//! due, so ten thousand reals cost ten thousand queue entries, not ten
//! thousand parked tasks. Either way a bound on checks in flight caps the
//! open sockets, and a hung real holds one slot for at most the timeout
//! while the others go on. Works on a current-thread runtime.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

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
    max_concurrent: usize,
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
        Ok(Scheduler { limit: Arc::new(Semaphore::new(max_concurrent)), max_concurrent, timeout })
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
    /// all connect in the same millisecond. A real's next check is due one
    /// interval after its last one started, or at once if that check took
    /// longer: when the machine cannot keep up, checks come late rather
    /// than piling up until they time out.
    pub async fn run<K>(&self, jobs: Vec<Job<K>>, interval: Duration, tx: mpsc::Sender<Report<K>>) -> Result<()>
    where
        K: Clone + Send + Sync + 'static,
    {
        if interval.is_zero() {
            return Err(Error::configured("check interval must be above zero"));
        }
        if jobs.is_empty() {
            tx.closed().await;
            return Ok(());
        }
        let jobs: Arc<[Job<K>]> = jobs.into();
        let begin = tokio::time::Instant::now();
        let step = interval / jobs.len() as u32;
        let mut due: BinaryHeap<Reverse<(tokio::time::Instant, usize)>> =
            (0..jobs.len()).map(|i| Reverse((begin + step * i as u32, i))).collect();
        let mut running = JoinSet::new();
        loop {
            let now = tokio::time::Instant::now();
            while running.len() < self.max_concurrent {
                match due.peek() {
                    Some(&Reverse((at, i))) if at <= now => {
                        due.pop();
                        let (jobs, timeout) = (jobs.clone(), self.timeout);
                        running.spawn(async move {
                            let job = &jobs[i];
                            let started = Instant::now();
                            let outcome = check(&job.target, &job.check, timeout).await;
                            let report = Report { key: job.key.clone(), outcome, started, elapsed: started.elapsed() };
                            (i, now, report)
                        });
                    }
                    _ => break,
                }
            }
            // With every slot taken, only a finished check can make room.
            let next = due.peek().map(|r| r.0 .0).filter(|_| running.len() < self.max_concurrent);
            tokio::select! {
                _ = tokio::time::sleep_until(next.unwrap_or(now)), if next.is_some() => {}
                Some(done) = running.join_next(), if !running.is_empty() => {
                    let (i, fired, report) = done.map_err(|e| Error::generic(format!("a health check task failed: {e}")))?;
                    if tx.send(report).await.is_err() {
                        return Ok(());
                    }
                    due.push(Reverse(((fired + interval).max(tokio::time::Instant::now()), i)));
                }
            }
        }
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

    #[tokio::test(start_paused = true)]
    async fn run_spreads_first_checks_and_keeps_the_cadence() {
        let s = Scheduler::new(8, Duration::from_secs(1)).unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let interval = Duration::from_millis(300);
        let jobs: Vec<_> = (0..3).map(|i| job(i, "on")).collect();
        let t0 = tokio::time::Instant::now();
        let runner = s.run(jobs, interval, tx);
        let reader = async move {
            let mut at: Vec<Vec<Duration>> = vec![Vec::new(); 3];
            while at.iter().any(|v| v.len() < 4) {
                let r = rx.recv().await.unwrap();
                at[r.key as usize].push(t0.elapsed());
            }
            at
        };
        let at = tokio::select! {
            _ = runner => panic!("run ended"),
            at = reader => at,
        };
        for (i, times) in at.iter().enumerate() {
            // First checks 100 ms apart, then one every 300 ms per real.
            let first = Duration::from_millis(100 * i as u64);
            assert!(times[0] >= first && times[0] < first + Duration::from_millis(5), "real {i}: {times:?}");
            for w in times.windows(2) {
                let gap = w[1] - w[0];
                assert!(gap >= interval && gap < interval + Duration::from_millis(5), "real {i}: {times:?}");
            }
        }
    }

    #[tokio::test]
    async fn run_keeps_checks_in_flight_under_the_bound() {
        // Each check takes 100 ms and all are due at once: two at a time.
        let s = Scheduler::new(2, Duration::from_secs(5)).unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let jobs: Vec<_> = (0..6).map(|i| job(i, r#"external command='/bin/sh -c "sleep 0.1"'"#)).collect();
        let runner = s.run(jobs, Duration::from_millis(10), tx);
        let reader = async move {
            let mut spans = Vec::new();
            while spans.len() < 12 {
                let r = rx.recv().await.unwrap();
                assert!(r.outcome.is_up(), "{:?}", r.outcome);
                spans.push((r.started, r.started + r.elapsed));
            }
            spans
        };
        let spans = tokio::select! {
            _ = runner => panic!("run ended"),
            spans = reader => spans,
        };
        let most = spans
            .iter()
            .map(|&(start, _)| spans.iter().filter(|&&(s, e)| s <= start && start < e).count())
            .max()
            .unwrap();
        assert_eq!(most, 2, "checks in flight at once: {most}");
    }

    #[tokio::test]
    async fn run_without_jobs_waits_for_the_receiver() {
        let s = Scheduler::new(2, Duration::from_secs(1)).unwrap();
        let (tx, rx) = mpsc::channel::<Report<u32>>(1);
        let runner = s.run(Vec::new(), Duration::from_secs(1), tx);
        tokio::pin!(runner);
        assert!(tokio::time::timeout(Duration::from_millis(50), &mut runner).await.is_err(), "ended early");
        drop(rx);
        tokio::time::timeout(Duration::from_secs(1), runner).await.unwrap().unwrap();
    }
}
