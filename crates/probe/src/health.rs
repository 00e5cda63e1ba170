//! Rise/fall: turns a stream of check outcomes into up/down state changes.
//! Pure: the caller passes `now`, so tests need no clock.
//!
//! Semantics (chosen, documented here and in the agent):
//! - `fall` consecutive failures take an up real down; any success resets
//!   the failure count (ldirectord's `failurecount`, keepalived's
//!   `retry` + 1).
//! - `rise` consecutive successes bring a down real back up; any failure
//!   resets the success count.
//! - Initial state `Up`: the real starts up and needs `fall` failures.
//! - Initial state `Down` (keepalived's "alpha"): the real starts down and
//!   the first success ever brings it up at once, whatever `rise` is, so a
//!   freshly started pool is served within one interval; `rise` applies to
//!   every later recovery. Failures before that first success change nothing.

use std::time::Instant;

use super::CheckOutcome;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initial {
    Up,
    /// Down until the first successful check.
    Down,
}

/// A change of state, returned once when it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Up,
    /// With the reason of the failure that tipped it.
    Down(String),
}

#[derive(Debug, Clone)]
pub struct Health {
    rise: u32,
    fall: u32,
    up: bool,
    successes: u32,
    failures: u32,
    /// No success seen yet while started `Down`.
    alpha: bool,
    last: Option<CheckOutcome>,
    changed: Instant,
}

impl Health {
    pub fn new(rise: u32, fall: u32, initial: Initial, now: Instant) -> Result<Health> {
        if rise == 0 || fall == 0 {
            return Err(Error::invalid(format!("rise ({rise}) and fall ({fall}) must be at least 1")));
        }
        Ok(Health {
            rise,
            fall,
            up: initial == Initial::Up,
            successes: 0,
            failures: 0,
            alpha: initial == Initial::Down,
            last: None,
            changed: now,
        })
    }

    /// Records one outcome; returns the transition if the state changed.
    pub fn record(&mut self, outcome: &CheckOutcome, now: Instant) -> Option<Transition> {
        self.last = Some(outcome.clone());
        match outcome {
            CheckOutcome::Up => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                if !self.up && (self.alpha || self.successes >= self.rise) {
                    self.alpha = false;
                    self.up = true;
                    self.changed = now;
                    return Some(Transition::Up);
                }
                None
            }
            CheckOutcome::Down(reason) => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                if self.up && self.failures >= self.fall {
                    self.up = false;
                    self.changed = now;
                    return Some(Transition::Down(reason.clone()));
                }
                None
            }
        }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }
    pub fn successes(&self) -> u32 {
        self.successes
    }
    pub fn failures(&self) -> u32 {
        self.failures
    }
    pub fn last(&self) -> Option<&CheckOutcome> {
        self.last.as_ref()
    }
    /// When the state last changed (creation time if never).
    pub fn last_change(&self) -> Instant {
        self.changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Runs outcomes ('+' up, '-' down) and renders transitions: 'U', 'D' or '.'.
    fn run(rise: u32, fall: u32, initial: Initial, seq: &str) -> (String, bool) {
        let t0 = Instant::now();
        let mut h = Health::new(rise, fall, initial, t0).unwrap();
        let mut out = String::new();
        for (i, c) in seq.chars().enumerate() {
            let o = if c == '+' { CheckOutcome::Up } else { CheckOutcome::Down(format!("fail {i}")) };
            let now = t0 + Duration::from_secs(i as u64 + 1);
            match h.record(&o, now) {
                Some(Transition::Up) => {
                    assert_eq!(h.last_change(), now);
                    out.push('U')
                }
                Some(Transition::Down(r)) => {
                    assert_eq!(r, format!("fail {i}"));
                    assert_eq!(h.last_change(), now);
                    out.push('D')
                }
                None => out.push('.'),
            }
        }
        (out, h.is_up())
    }

    #[test]
    fn table() {
        use Initial::{Down, Up};
        let table: &[(u32, u32, Initial, &str, &str, bool)] = &[
            // rise, fall, initial, outcomes, transitions, final state
            (1, 1, Up, "", "", true),
            (1, 1, Up, "+++", "...", true),
            (1, 1, Up, "-", "D", false),
            (1, 1, Up, "-+-+", "DUDU", true),
            (1, 3, Up, "--+--", ".....", true),
            (1, 3, Up, "---", "..D", false),
            (1, 3, Up, "----", "..D.", false),
            (2, 1, Up, "-+", "D.", false),
            (2, 1, Up, "-++", "D.U", true),
            (2, 1, Up, "-+-++", "D...U", true),
            (3, 2, Up, "--+++--", ".D..U.D", false),
            // alpha: the first success ever is enough, then rise applies.
            (3, 1, Down, "", "", false),
            (3, 1, Down, "+", "U", true),
            (3, 1, Down, "---+", "...U", true),
            (3, 1, Down, "+-+++", "UD..U", true),
            (3, 2, Down, "+--++-+++", "U.D.....U", true),
            (3, 2, Down, "+--+++", "U.D..U", true),
            (1, 1, Down, "-", ".", false),
        ];
        for &(rise, fall, initial, seq, want, up) in table {
            let (got, is_up) = run(rise, fall, initial, seq);
            assert_eq!((got.as_str(), is_up), (want, up), "rise={rise} fall={fall} {initial:?} {seq}");
        }
    }

    #[test]
    fn counters_and_last() {
        let t0 = Instant::now();
        let mut h = Health::new(2, 3, Initial::Up, t0).unwrap();
        assert!(h.last().is_none());
        h.record(&CheckOutcome::Down("x".into()), t0);
        h.record(&CheckOutcome::Down("y".into()), t0);
        assert_eq!((h.successes(), h.failures()), (0, 2));
        assert_eq!(h.last(), Some(&CheckOutcome::Down("y".into())));
        h.record(&CheckOutcome::Up, t0);
        assert_eq!((h.successes(), h.failures()), (1, 0));
        assert_eq!(h.last_change(), t0);
    }

    #[test]
    fn zero_thresholds_are_configured_errors() {
        assert!(matches!(Health::new(0, 1, Initial::Up, Instant::now()), Err(Error::Invalid(_))));
        assert!(matches!(Health::new(1, 0, Initial::Down, Instant::now()), Err(Error::Invalid(_))));
    }
}
