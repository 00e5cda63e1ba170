//! What the daemons report in their state files, and reading all of them
//! back (for `lvsctl status`). One definition for writer and readers.

#![forbid(unsafe_code)]

pub mod metrics;

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One real server as the realservers daemon sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RealState {
    pub real: String,
    pub up: bool,
    /// The weight it should have in the kernel now; None: not in the table.
    pub weight: Option<u32>,
    pub last_result: String,
    /// Unix time of the last state change.
    pub since: u64,
    /// Consecutive successes and failures (what rise and fall count).
    pub successes: u32,
    pub failures: u32,
    /// Every check since the daemon started, for metrics.
    #[serde(default)]
    pub checks: crate::metrics::CheckStats,
}

/// The realservers daemon's state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RealserversState {
    pub service: String,
    /// Unix time this state was written. Past 1,000 reals it is rewritten
    /// only every few intervals; the file's mtime shows the daemon is alive.
    pub updated: u64,
    pub interval_s: u64,
    pub healthy: usize,
    pub reals: Vec<RealState>,
    pub last_error: Option<String>,
    /// Checks finished since the daemon started.
    #[serde(default)]
    pub checks_total: u64,
    /// Checks finished per second since the previous routine pass.
    #[serde(default)]
    pub checks_per_second: f64,
    #[serde(default)]
    pub checks_in_flight: usize,
}

/// The sorry daemon's state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SorryState {
    pub service: String,
    pub fallback: String,
    /// Whether the fallback is in the service now.
    pub active: bool,
    /// Other destinations with weight > 0 at the last check.
    pub serving: usize,
    pub last_error: Option<String>,
}

/// Every daemon state found in `dir` (normally /run/lvs-agents).
#[derive(Debug, Default)]
pub struct AllStates {
    pub realservers: Vec<(String, RealserversState)>,
    pub sorry: Vec<(String, SorryState)>,
}

pub fn read_all(dir: &Path) -> AllStates {
    let mut all = AllStates::default();
    let Ok(entries) = std::fs::read_dir(dir) else { return all };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".state") else { continue };
        let Ok(text) = std::fs::read(e.path()) else { continue };
        if let Some(inst) = stem.strip_prefix("realservers-") {
            if let Ok(s) = serde_json::from_slice(&text) {
                all.realservers.push((lvs_daemon::decode(inst), s));
            }
        } else if let Some(inst) = stem.strip_prefix("sorry-") {
            if let Ok(s) = serde_json::from_slice(&text) {
                all.sorry.push((lvs_daemon::decode(inst), s));
            }
        }
    }
    all.realservers.sort_by(|a, b| a.0.cmp(&b.0));
    all.sorry.sort_by(|a, b| a.0.cmp(&b.0));
    all
}
