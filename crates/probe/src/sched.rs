//! Running many checks. A round checks every real once; continuous
//! checking keeps one timer queue for all reals and spawns a task only
//! for a check that is due, so ten thousand reals cost ten thousand queue
//! entries, not ten thousand parked tasks. Works on a current-thread
//! runtime.
//!
//! Checks in flight are bounded twice. The caller's ceiling caps open
//! sockets. Below it, an adaptive bound keeps this process from taking on
//! more checks than its CPU can serve: a check waiting for the CPU is
//! still on the clock, so an overloaded checker would time out healthy
//! reals (congestion collapse). The bound starts small, grows while the
//! runtime keeps up, and shrinks when the runtime's own timers fire late
//! or passing checks queue (take well over their unqueued time, for our
//! CPU or at a backend at capacity); then checks wait before they start,
//! where waiting costs nothing, and memory stays small.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio::time::{Instant as TokioInstant, Sleep};

use super::{check_until, Check, CheckOutcome, Target};
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
    pub outcome: CheckOutcome,
    pub started: Instant,
    pub elapsed: Duration,
}

#[derive(Debug, Clone)]
pub struct Scheduler {
    max_concurrent: usize,
    timeout: Duration,
    /// Checks running now, for whoever watches (metrics).
    in_flight: Arc<AtomicUsize>,
}

/// The adaptive bound never goes below this (nor above the ceiling).
const FLOOR: usize = 16;
/// Where the adaptive bound starts: a burst of thousands of checks at
/// start would all be in flight before the first late timer showed.
const INITIAL: usize = 64;
/// How often the runtime's lateness is sampled while checks are busy.
const TICK: Duration = Duration::from_millis(10);
/// How often the bound may change.
const ADJUST: Duration = Duration::from_millis(100);
/// The scheduler's timer moves at most this often: moving tokio's
/// earliest timer wakes its driver (an eventfd write and an epoll event),
/// so at a thousand checks a second checks due within a few milliseconds
/// of each other start on one wake.
const GRAIN: Duration = Duration::from_millis(4);

/// The adaptive bound on checks in flight.
#[derive(Debug)]
struct Limit {
    current: usize,
    ceiling: usize,
    /// Lateness the runtime may show before the bound shrinks.
    target: Duration,
    /// Worst lateness seen since the last adjustment.
    worst: Duration,
    /// How long checks that passed took, since the last adjustment.
    took: Vec<Duration>,
    /// What a passing check takes when nothing queues: the lowest median
    /// so far. It drifts up while the bound is at its floor, where our
    /// own load cannot be the cause: a backend that became slower for
    /// good becomes the new normal.
    base: Option<Duration>,
    /// A due check waited for the bound since the last adjustment.
    blocked: bool,
    adjusted: TokioInstant,
}

/// Passing checks needed in a period to judge their latency.
const SAMPLES: usize = 8;

impl Limit {
    fn new(ceiling: usize, timeout: Duration, now: TokioInstant) -> Limit {
        Limit {
            current: INITIAL.min(ceiling),
            ceiling,
            // A check waits for the CPU a few times (connect, request,
            // response, close); together that should stay a small part
            // of its timeout.
            target: (timeout / 20).clamp(Duration::from_millis(5), Duration::from_millis(250)),
            worst: Duration::ZERO,
            took: Vec::new(),
            base: None,
            blocked: false,
            adjusted: now,
        }
    }

    fn saw(&mut self, late: Duration) {
        self.worst = self.worst.max(late);
    }

    /// Only passing checks say how long a check takes: a timeout is a
    /// dead real, a refusal is quicker than any answer.
    fn finished(&mut self, outcome: &CheckOutcome, took: Duration) {
        if outcome.is_up() && self.took.len() < 4096 {
            self.took.push(took);
        }
    }

    /// Whether checks now take more than twice what they take unqueued,
    /// and more than `target` beyond it: then more in flight only means
    /// more waiting (for our CPU, or for a backend or network already at
    /// capacity) and more memory. A few milliseconds more are no harm:
    /// shrinking for them would start checks late for nothing.
    fn queueing(&mut self) -> bool {
        if self.took.len() < SAMPLES {
            return false;
        }
        let mid = self.took.len() / 2;
        let median = *self.took.select_nth_unstable(mid).1;
        let base = self.base.unwrap_or(median);
        let drift = if self.current <= FLOOR { base / 16 } else { Duration::ZERO };
        self.base = Some(median.min(base + drift));
        median > base * 2 && median > base + self.target
    }

    /// The bound now, adjusted at most every ADJUST: down in proportion
    /// to how late the runtime is (at most halved), down by a quarter
    /// while checks queue, up by a quarter while due checks wait and
    /// neither holds.
    fn bound(&mut self, now: TokioInstant) -> usize {
        if now.duration_since(self.adjusted) >= ADJUST {
            let was = self.current;
            let floor = FLOOR.min(self.ceiling);
            let queueing = self.queueing();
            if self.worst > self.target {
                let scaled = self.current as f64 * self.target.as_secs_f64() / self.worst.as_secs_f64();
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "below current: worst > target"
                )]
                let scaled = scaled as usize;
                self.current = scaled.max(self.current / 2).max(floor);
            } else if queueing {
                self.current = (self.current * 3 / 4).max(floor);
            } else if self.blocked && self.worst <= self.target / 2 {
                self.current = (self.current + self.current / 4 + 1).min(self.ceiling);
            }
            if self.current != was {
                tracing::debug!(
                    "checks in flight: at most {} (runtime late by {:?}, unqueued check {:?})",
                    self.current,
                    self.worst,
                    self.base
                );
            }
            self.worst = Duration::ZERO;
            self.took.clear();
            self.blocked = false;
            self.adjusted = now;
        }
        self.current
    }
}

/// A check that finished: which job, when it was due, what it found.
type Done<K> = (usize, TokioInstant, Report<K>);

/// Checks in flight and the bound on them.
struct Flight<K> {
    jobs: Arc<[Job<K>]>,
    timeout: Duration,
    running: JoinSet<Done<K>>,
    in_flight: Arc<AtomicUsize>,
    limit: Limit,
    /// Timer for sampling the runtime's lateness, armed while busy.
    probe: Pin<Box<Sleep>>,
    probing: bool,
    /// Timer for the next due check: one timer moved along (see GRAIN).
    next: Pin<Box<Sleep>>,
}

enum Woke<K> {
    Finished(std::result::Result<Done<K>, JoinError>),
    Other,
}

impl<K: Clone + Send + Sync + 'static> Flight<K> {
    fn new(jobs: Arc<[Job<K>]>, sched: &Scheduler) -> Flight<K> {
        let now = TokioInstant::now();
        Flight {
            jobs,
            timeout: sched.timeout,
            running: JoinSet::new(),
            in_flight: sched.in_flight.clone(),
            limit: Limit::new(sched.max_concurrent, sched.timeout, now),
            probe: Box::pin(tokio::time::sleep_until(now + TICK)),
            probing: false,
            next: Box::pin(tokio::time::sleep_until(now)),
        }
    }

    /// Starts the checks due by `now` while the bound allows. Every check
    /// started here takes `now` as its start: the clock is read once per
    /// batch, not per check (in a VM whose clock has no vDSO every reading
    /// is a system call).
    fn start_due(&mut self, due: &mut BinaryHeap<Reverse<(TokioInstant, usize)>>, now: TokioInstant) {
        while let Some(&Reverse((at, i))) = due.peek() {
            if at > now {
                break;
            }
            if self.running.len() >= self.limit.bound(now) {
                self.limit.blocked = true;
                break;
            }
            due.pop();
            let (jobs, timeout) = (self.jobs.clone(), self.timeout);
            self.running.spawn(async move {
                let job = &jobs[i];
                let outcome = check_until(&job.target, &job.check, timeout, now + timeout).await;
                let elapsed = TokioInstant::now().saturating_duration_since(now);
                (i, now, Report { key: job.key.clone(), outcome, started: now.into_std(), elapsed })
            });
        }
        self.in_flight.store(self.running.len(), Ordering::Relaxed);
    }

    /// Waits for a check to finish, the next due time (while there is
    /// room), or a lateness sample; returns what woke it and the time
    /// (for a finished check, when it finished: no second clock read).
    async fn wait(&mut self, next_due: Option<TokioInstant>) -> (Woke<K>, TokioInstant) {
        let next = next_due.filter(|_| self.running.len() < self.limit.current);
        // Below the floor the bound cannot shrink, so nothing to sample.
        let busy = self.running.len() > FLOOR;
        if busy && !self.probing {
            self.probe.as_mut().reset(TokioInstant::now() + TICK);
        }
        self.probing = busy;
        if let Some(at) = next {
            let set = self.next.deadline();
            let at = if self.next.is_elapsed() { at.max(set + GRAIN) } else { at.min(set) };
            if at != set {
                self.next.as_mut().reset(at);
            }
        }
        tokio::select! {
            () = &mut self.next, if next.is_some() => (Woke::Other, TokioInstant::now()),
            () = &mut self.probe, if self.probing => {
                let now = TokioInstant::now();
                self.limit.saw(now.saturating_duration_since(self.probe.deadline()));
                self.probe.as_mut().reset(now + TICK);
                (Woke::Other, now)
            }
            Some(done) = self.running.join_next(), if !self.running.is_empty() => {
                self.in_flight.store(self.running.len(), Ordering::Relaxed);
                let now = match &done {
                    Ok((_, fired, report)) => {
                        self.limit.finished(&report.outcome, report.elapsed);
                        *fired + report.elapsed
                    }
                    Err(_) => TokioInstant::now(),
                };
                (Woke::Finished(done), now)
            }
        }
    }
}

impl Scheduler {
    /// At most `max_concurrent` checks in flight; each bounded by `timeout`.
    pub fn new(max_concurrent: usize, timeout: Duration) -> Result<Scheduler> {
        if max_concurrent == 0 || timeout.is_zero() {
            return Err(Error::invalid("probe concurrency and timeout must be above zero"));
        }
        Ok(Scheduler { max_concurrent, timeout, in_flight: Arc::default() })
    }

    /// Keeps the number of checks running in `gauge`.
    pub fn counting_in(mut self, gauge: Arc<AtomicUsize>) -> Scheduler {
        self.in_flight = gauge;
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Checks every job once, concurrently; reports in the jobs' order.
    pub async fn round<K>(&self, jobs: &[Job<K>]) -> Vec<Report<K>>
    where
        K: Clone + Send + Sync + 'static,
    {
        let mut now = TokioInstant::now();
        let mut due: BinaryHeap<_> = (0..jobs.len()).map(|i| Reverse((now, i))).collect();
        let mut flight = Flight::new(jobs.into(), self);
        let mut slots: Vec<Option<Report<K>>> = vec![None; jobs.len()];
        loop {
            flight.start_due(&mut due, now);
            if due.is_empty() && flight.running.is_empty() {
                break;
            }
            let woke;
            (woke, now) = flight.wait(due.peek().map(|r| r.0 .0)).await;
            // A check task that panicked leaves its slot empty.
            if let Woke::Finished(Ok((i, _, report))) = woke {
                slots[i] = Some(report);
            }
        }
        jobs.iter()
            .zip(slots)
            .map(|(job, slot)| {
                slot.unwrap_or_else(|| Report {
                    key: job.key.clone(),
                    outcome: CheckOutcome::Down("check task failed".into()),
                    started: Instant::now(),
                    elapsed: Duration::ZERO,
                })
            })
            .collect()
    }

    /// Checks every job every `interval` until the receiver is dropped
    /// (or this future is dropped, which stops every check). First checks
    /// are spread over the first interval so thousands of reals do not
    /// all connect in the same millisecond. A real's next check is due one
    /// interval after its last one started, or at once if that check took
    /// longer; when the machine cannot keep up, the adaptive bound makes
    /// checks start late rather than time out.
    pub async fn run<K>(&self, jobs: Vec<Job<K>>, interval: Duration, tx: mpsc::Sender<Report<K>>) -> Result<()>
    where
        K: Clone + Send + Sync + 'static,
    {
        if interval.is_zero() {
            return Err(Error::invalid("check interval must be above zero"));
        }
        if jobs.is_empty() {
            tx.closed().await;
            return Ok(());
        }
        let begin = TokioInstant::now();
        let count = u32::try_from(jobs.len()).unwrap_or(u32::MAX);
        let step = interval / count;
        let mut due: BinaryHeap<_> =
            (0..count).zip(0..jobs.len()).map(|(n, i)| Reverse((begin + step * n, i))).collect();
        let mut flight = Flight::new(jobs.into(), self);
        let mut now = begin;
        loop {
            flight.start_due(&mut due, now);
            let woke;
            (woke, now) = flight.wait(due.peek().map(|r| r.0 .0)).await;
            if let Woke::Finished(done) = woke {
                let (i, fired, report) = done.map_err(|e| Error::failed(format!("a health check task failed: {e}")))?;
                match tx.try_send(report) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(report)) => {
                        if tx.send(report).await.is_err() {
                            return Ok(());
                        }
                        // Waited for the receiver: `now` is stale.
                        now = TokioInstant::now();
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
                }
                due.push(Reverse(((fired + interval).max(now), i)));
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
        assert!(matches!(Scheduler::new(0, Duration::from_secs(1)), Err(Error::Invalid(_))));
        assert!(matches!(Scheduler::new(1, Duration::ZERO), Err(Error::Invalid(_))));
    }

    #[tokio::test]
    async fn round_keeps_order() {
        let s = Scheduler::new(2, Duration::from_secs(1)).unwrap();
        let jobs: Vec<_> = (0..10).map(|i| job(i, if i % 2 == 0 { "on" } else { "off" })).collect();
        let reports = s.round(&jobs).await;
        assert_eq!(reports.len(), 10);
        for (i, r) in reports.iter().enumerate() {
            assert_eq!(r.key, u32::try_from(i).unwrap());
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
            Err(Error::Invalid(_))
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

    #[test]
    fn the_bound_grows_while_on_time_and_shrinks_when_late() {
        let t0 = TokioInstant::now();
        let step = |n: u32| t0 + ADJUST * n;
        let mut l = Limit::new(1000, Duration::from_secs(1), t0);
        assert_eq!(l.target, Duration::from_millis(50));
        assert_eq!(l.bound(t0), INITIAL);
        // Not blocked: no reason to grow.
        assert_eq!(l.bound(step(1)), INITIAL);
        l.blocked = true;
        l.saw(Duration::from_millis(2));
        assert_eq!(l.bound(step(2)), INITIAL + INITIAL / 4 + 1);
        // Changes at most once per ADJUST.
        l.blocked = true;
        assert_eq!(l.bound(step(2) + ADJUST / 2), 81);
        // Late by twice the target: halved, however blocked.
        l.blocked = true;
        l.saw(Duration::from_millis(100));
        assert_eq!(l.bound(step(3)), 40);
        // Far too late: still at most halved, and never below the floor.
        for n in 4..20 {
            l.saw(Duration::from_secs(1));
            l.bound(step(n));
        }
        assert_eq!(l.current, FLOOR);
        // Back on time: grows to the ceiling and stops there.
        for n in 20..80 {
            l.blocked = true;
            l.bound(step(n));
        }
        assert_eq!(l.current, 1000);
        // Passing checks take 10 ms unqueued, then 100 ms (over twice, and
        // over the 50 ms target beyond): a quarter less.
        let ms = Duration::from_millis;
        let passing = |l: &mut Limit, took: Duration| (0..SAMPLES).for_each(|_| l.finished(&CheckOutcome::Up, took));
        passing(&mut l, ms(10));
        l.blocked = true;
        assert_eq!(l.bound(step(80)), 1000);
        passing(&mut l, ms(100));
        l.finished(&CheckOutcome::Down("timeout after 1s".into()), Duration::from_secs(1));
        assert_eq!(l.bound(step(81)), 750);
        // 50 ms is five times as long but only 40 ms more: tolerated.
        // Failures say nothing.
        passing(&mut l, ms(50));
        (0..100).for_each(|_| l.finished(&CheckOutcome::Down("timeout after 1s".into()), Duration::from_secs(1)));
        assert_eq!(l.bound(step(82)), 750);
        // At the floor the backend, not our load, is slow: the normal drifts up.
        l.current = FLOOR;
        for n in 83..120 {
            passing(&mut l, ms(100));
            l.bound(step(n));
        }
        assert!(l.base.unwrap() > ms(15), "{:?}", l.base);
        assert_eq!(Limit::new(8, Duration::from_secs(1), t0).bound(t0), 8);
        assert_eq!(Limit::new(8, Duration::from_secs(60), t0).target, Duration::from_millis(250));
    }

    /// What the HTTP checks of the tests below talk to.
    enum Backend {
        /// Accepts and never answers: each check holds its slot for the
        /// whole timeout, costing no CPU.
        Silent,
        /// Answers one connection at a time, each after this long: a
        /// backend at capacity, where more in flight only queues.
        Serial(Duration),
    }

    /// 400 reals checked every 100 ms (timeout 1 s): of the checks started
    /// at `from` or later, the most in flight at once and how many passed
    /// and failed, while `hog` blocks the runtime that long at a time.
    async fn most_in_flight(
        backend: Backend,
        hog: Option<Duration>,
        from: Duration,
        until: Duration,
    ) -> (usize, usize, usize) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut held = JoinSet::new();
        held.spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut conns = Vec::new();
            while let Ok((mut c, _)) = listener.accept().await {
                match backend {
                    Backend::Silent => conns.push(c),
                    Backend::Serial(each) => {
                        let mut buf = [0u8; 1024];
                        let _ = c.read(&mut buf).await;
                        tokio::time::sleep(each).await;
                        let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").await;
                    }
                }
            }
        });
        if let Some(hog) = hog {
            held.spawn(async move {
                loop {
                    std::thread::sleep(hog);
                    tokio::task::yield_now().await;
                }
            });
        }
        let check = Arc::new(Check::parse("http").unwrap());
        let jobs: Vec<_> = (0..400)
            .map(|key| Job { key, target: Target::new("127.0.0.1".parse().unwrap(), port), check: check.clone() })
            .collect();
        let s = Scheduler::new(400, Duration::from_secs(1)).unwrap();
        let (tx, mut rx) = mpsc::channel(1024);
        let t0 = Instant::now();
        let runner = s.run(jobs, Duration::from_millis(100), tx);
        let reader = async move {
            let (mut spans, mut passed, mut failed) = (Vec::new(), 0, 0);
            // Ends at `until` even when no report comes.
            let end = TokioInstant::from_std(t0 + until);
            while let Ok(Some(r)) = tokio::time::timeout_at(end, rx.recv()).await {
                if r.started >= t0 + from {
                    spans.push((r.started, r.started + r.elapsed));
                    if r.outcome.is_up() {
                        passed += 1;
                    } else {
                        failed += 1;
                    }
                }
                if t0.elapsed() >= until {
                    break;
                }
            }
            (spans, passed, failed)
        };
        let (spans, passed, failed) = tokio::select! {
            _ = runner => panic!("run ended"),
            counted = reader => counted,
        };
        let most =
            spans.iter().map(|&(start, _)| spans.iter().filter(|&&(s, e)| s <= start && start < e).count()).max();
        (most.unwrap_or(0), passed, failed)
    }

    #[tokio::test]
    async fn run_takes_on_fewer_checks_when_the_runtime_is_late() {
        let (from, until) = (Duration::from_millis(1000), Duration::from_millis(3000));
        // On time: the bound grows from INITIAL towards the ceiling.
        let (free, passed, _) = most_in_flight(Backend::Silent, None, Duration::ZERO, until).await;
        assert!(free > INITIAL * 2, "on time, most in flight: {free}");
        assert_eq!(passed, 0);
        // A runtime late by 80 ms a turn (target 50 ms): the bound falls
        // to the floor and checks wait to start instead of timing out.
        let (late, passed, failed) =
            most_in_flight(Backend::Silent, Some(Duration::from_millis(80)), from, until).await;
        assert!(late <= FLOOR * 2, "late, most in flight: {late}");
        // ...and checks still run (none started would pass the line above):
        // measured 17 timed out in the window; half the floor is the bound.
        assert_eq!(passed, 0);
        assert!(failed >= 8, "late, checks that started and timed out: {failed}");
    }

    #[tokio::test]
    async fn run_does_not_queue_checks_at_a_backend_at_capacity() {
        // 200 answers a second can serve 400 reals only every 2 s; with
        // all 400 in flight each would wait 2 s and time out.
        let serial = Backend::Serial(Duration::from_millis(5));
        let (most, passed, failed) =
            most_in_flight(serial, None, Duration::from_millis(1500), Duration::from_millis(3500)).await;
        assert!(most < INITIAL, "most in flight: {most}");
        assert!(passed > 100 && failed == 0, "passed {passed}, failed {failed}");
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
