//! `cargo run --release -p lvs-bench -- <benchmark>`: measures lvs-agents
//! and the peer tool in the same run and prints them side by side. It
//! prints figures; it asserts nothing (targets are for people to read).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

mod lab;

#[derive(Parser)]
#[command(about = "Benchmarks of lvs-agents against their peers")]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
    /// Calls per measured command.
    #[arg(long, default_value_t = 200, global = true)]
    calls: usize,
}

#[derive(Subcommand)]
enum Bench {
    /// Agent call latency: lvs-vip vs ocf:heartbeat:IPaddr2 on the same VIP,
    /// in a private network namespace (root).
    AgentCalls,
    /// A real fails -> weight 0 in the kernel: lvs-agents vs ldirectord vs
    /// keepalived, each with a connect check every 1 s, timeout 1 s, one
    /// failure enough; failures at a random phase (run in the lab VM).
    FailureDetection {
        #[command(flatten)]
        detection: Detection,
    },
    /// N reals checked every second: CPU, checks made, CPU per check and
    /// peak RSS of our daemon vs keepalived's checker, optionally
    /// ldirectord (run in the lab VM).
    HealthScale {
        #[arg(long, default_value_t = 1000)]
        reals: usize,
        /// Length of the measured window.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long, value_enum, default_value_t = lab::ScaleCheck::Connect)]
        check: lab::ScaleCheck,
        /// Percentage of reals that never answer (their checks time out).
        #[arg(long, default_value_t = 0)]
        silent: usize,
        /// Also measure ldirectord (fork=yes).
        #[arg(long)]
        ldirectord: bool,
        /// Only our daemon (to compare two builds of ours, run each one's
        /// lvs-bench in turn).
        #[arg(long, conflicts_with = "ldirectord")]
        ours_only: bool,
    },
    /// Services x destinations from nothing: our client vs `ipvsadm -R`,
    /// ldirectord and keepalived (run in the lab VM).
    IpvsProgramming(Programming),
    /// bench/RESULTS.md from the JSON files benchmarks wrote (--json):
    /// tables with n, median, p90, min and max, the settings, machine,
    /// commit and command of each.
    Results {
        #[arg(long, default_value = "bench/results")]
        dir: PathBuf,
    },
    /// Every benchmark above in one run, then one table (metric, ours,
    /// peer, ratio) with the machine description (run in the lab VM).
    All {
        #[command(flatten)]
        detection: Detection,
        /// Reals for the health-check rows (connect and HTTP).
        #[arg(long, default_value_t = 10000)]
        reals: usize,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[command(flatten)]
        programming: Programming,
    },
}

#[derive(clap::Args)]
struct Detection {
    /// Failures per tool and kind.
    #[arg(long, default_value_t = 50)]
    reps: usize,
    /// Seed of the failures' phases (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Which failures (both by default).
    #[arg(long, value_enum, num_args = 1.., default_values_t = [lab::Failure::Refused, lab::Failure::Blackhole])]
    failure: Vec<lab::Failure>,
    /// Also write every sample, the settings, machine and commit here
    /// (bench/results/failure-detection.json; `lvs-bench results` renders
    /// bench/RESULTS.md from such files).
    #[arg(long)]
    json: Option<PathBuf>,
}

impl Detection {
    fn run(&self) -> Result<Vec<Row>, String> {
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| u64::try_from(d.as_nanos() & u128::from(u64::MAX)).unwrap_or(1))
        });
        lab::failure_detection(self.reps, seed, &self.failure, self.json.as_deref())
    }
}

#[derive(clap::Args)]
struct Programming {
    #[arg(long, default_value_t = 1000)]
    services: usize,
    #[arg(long, default_value_t = 10)]
    dests: usize,
    /// How long a daemon peer may take before its row says how far it got.
    #[arg(long, default_value_t = 300)]
    peer_limit: u64,
}

impl Programming {
    fn run(&self) -> Result<Vec<Row>, String> {
        lab::ipvs_programming(self.services, self.dests, Duration::from_secs(self.peer_limit))
    }
}

/// One line of the summary: a metric, our figure, the peer's, and how many
/// times better ours is (above 1: ours is better; None: no ratio).
pub(crate) struct Row {
    pub(crate) metric: String,
    pub(crate) ours: String,
    pub(crate) peer: String,
    pub(crate) ratio: Option<f64>,
}

impl Row {
    /// A metric where less is better (time, CPU, memory): peer / ours.
    pub(crate) fn lower(metric: String, ours: (f64, String), peer: (f64, String)) -> Row {
        let ratio = (ours.0 > 0.0 && peer.0 > 0.0).then(|| peer.0 / ours.0);
        Row { metric, ours: ours.1, peer: peer.1, ratio }
    }

    /// A metric where more is better (throughput): ours / peer.
    pub(crate) fn higher(metric: String, ours: (f64, String), peer: (f64, String)) -> Row {
        let ratio = (ours.0 > 0.0 && peer.0 > 0.0).then(|| ours.0 / peer.0);
        Row { metric, ours: ours.1, peer: peer.1, ratio }
    }
}

fn print_summary(title: &str, rows: &[Row]) {
    println!();
    println!("{title}");
    println!("machine: {}", machine());
    let w = rows.iter().map(|r| r.metric.len()).max().unwrap_or(6).max(6);
    let wo = rows.iter().map(|r| r.ours.len()).max().unwrap_or(4).max(4);
    let wp = rows.iter().map(|r| r.peer.len()).max().unwrap_or(4).max(4);
    println!("{:<w$}  {:>wo$}  {:<wp$}  ratio (>1: ours better)", "metric", "ours", "peer");
    for r in rows {
        let ratio = r.ratio.map(|x| format!("{x:.2}x")).unwrap_or_else(|| "-".into());
        println!("{:<w$}  {:>wo$}  {:<wp$}  {ratio}", r.metric, r.ours, r.peer);
    }
}

/// Median and 95th percentile of repeated runs of one command.
pub(crate) struct Figures {
    pub(crate) median: Duration,
    pub(crate) p95: Duration,
}

fn measure(calls: usize, mut make: impl FnMut() -> Command) -> Result<Figures, String> {
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let mut cmd = make();
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let start = Instant::now();
        let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
        times.push(start.elapsed());
        if status.code().is_none() {
            return Err(format!("{cmd:?} was killed"));
        }
    }
    times.sort();
    Ok(Figures { median: times[times.len() / 2], p95: times[(times.len() * 95 / 100).min(times.len() - 1)] })
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

pub(crate) fn sh(args: &[&str]) -> Result<(), String> {
    let st = Command::new(args[0]).args(&args[1..]).status().map_err(|e| format!("{args:?}: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{args:?} failed"))
    }
}

pub(crate) fn our_bin(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe.parent().ok_or("no target dir")?.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{} missing: cargo build --release --workspace", path.display()))
    }
}

/// The commit measured, as git says in the working directory ("unknown"
/// outside a checkout), with "+changes" when the tree differs from it.
pub(crate) fn commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git").args(args).stderr(Stdio::null()).output().ok().filter(|o| o.status.success())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(o) => {
            let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|o| !o.stdout.is_empty());
            if dirty {
                format!("{id}+changes")
            } else {
                id
            }
        }
        None => "unknown".into(),
    }
}

/// bench/RESULTS.md from the JSON files in `dir`.
fn results(dir: &std::path::Path) -> Result<String, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = String::from(
        "# Benchmark results\n\nGenerated by `lvs-bench results` from the JSON files in bench/results/ (each written by \
         the command shown); do not edit by hand. Times in milliseconds. The lab VM is emulated (qemu TCG, no KVM): \
         compare tools within a table, not with other machines.\n",
    );
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        let s = |k: &str| doc[k].as_str().unwrap_or("?").to_string();
        out.push_str(&format!(
            "\n## {}\n\n{}.\n\n- command: `{}`\n- commit: {}\n- machine: {}\n\n",
            s("title"),
            s("settings"),
            s("command"),
            s("commit"),
            s("machine")
        ));
        out.push_str(
            "| failure | tool | n | median | p90 | min | max | median / lvs-agents median (above 1: ours faster; \
             95 % bootstrap range) |\n|---|---|---|---|---|---|---|---|\n",
        );
        let samples = doc["samples"].as_array().cloned().unwrap_or_default();
        let sorted = |v: &serde_json::Value| {
            let mut ms: Vec<f64> = v["ms"].as_array().into_iter().flatten().filter_map(|x| x.as_f64()).collect();
            ms.sort_by(f64::total_cmp);
            ms
        };
        let at = |v: &[f64], q: usize| v[(v.len() * q / 100).min(v.len() - 1)];
        for row in &samples {
            let v = sorted(row);
            if v.is_empty() {
                continue;
            }
            let ours = samples
                .iter()
                .find(|r| r["failure"] == row["failure"] && r["tool"] == "lvs-agents")
                .map(sorted)
                .filter(|o| !o.is_empty());
            let ratio = match ours {
                Some(o) if row["tool"] != "lvs-agents" && at(&o, 50) > 0.0 => {
                    let (lo, hi) = ratio_range(&v, &o);
                    format!("{:.2}x ({lo:.2}-{hi:.2})", at(&v, 50) / at(&o, 50))
                }
                _ => String::new(),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {ratio} |\n",
                row["failure"].as_str().unwrap_or("?"),
                row["tool"].as_str().unwrap_or("?"),
                v.len(),
                at(&v, 50),
                at(&v, 90),
                v[0],
                v[v.len() - 1]
            ));
        }
    }
    Ok(out)
}

/// The 2.5th and 97.5th percentiles of median(peer) / median(ours) over
/// 2,000 resamples of both (with replacement; a fixed seed, so the same
/// files give the same table).
fn ratio_range(peer: &[f64], ours: &[f64]) -> (f64, f64) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut pick = |n: usize| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        usize::try_from(state.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64).expect("below n")
    };
    let mut median_of = |v: &[f64]| {
        let mut r: Vec<f64> = (0..v.len()).map(|_| v[pick(v.len())]).collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    let mut ratios: Vec<f64> = (0..2000)
        .filter_map(|_| {
            let (p, o) = (median_of(peer), median_of(ours));
            (o > 0.0).then_some(p / o)
        })
        .collect();
    if ratios.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    ratios.sort_by(f64::total_cmp);
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "q in 0..1: an index")]
    let at = |q: f64| ratios[((ratios.len() as f64 * q) as usize).min(ratios.len() - 1)];
    (at(0.025), at(0.975))
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    let dmi =
        |f: &str| std::fs::read_to_string(format!("/sys/class/dmi/id/{f}")).unwrap_or_default().trim().to_string();
    let clock =
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource").unwrap_or_default();
    format!(
        "{cores} cores, {cpu}, {} {}, Linux {kernel}, clocksource {}",
        dmi("sys_vendor"),
        dmi("product_name"),
        clock.trim()
    )
}

fn agent_calls(calls: usize) -> Result<Vec<Row>, String> {
    const NS: &str = "lvs-bench";
    const IPADDR2: &str = "/usr/lib/ocf/resource.d/heartbeat/IPaddr2";
    let vip = our_bin("lvs-vip")?;
    if !std::path::Path::new(IPADDR2).is_file() {
        return Err("IPaddr2 missing: apt-get install resource-agents".into());
    }
    let _ = sh(&["ip", "netns", "del", NS]);
    sh(&["ip", "netns", "add", NS])?;
    let result = (|| {
        sh(&["ip", "-n", NS, "link", "add", "bench0", "type", "veth", "peer", "name", "bench1"])?;
        sh(&["ip", "-n", NS, "link", "set", "bench0", "up"])?;
        sh(&["ip", "-n", NS, "link", "set", "bench1", "up"])?;
        sh(&["ip", "-n", NS, "addr", "add", "192.0.2.1/24", "dev", "bench0"])?;
        // Enter the namespace once, so every measured child starts in it
        // without `ip netns exec` adding its own cost.
        let f = std::fs::File::open(format!("/run/netns/{NS}")).map_err(|e| e.to_string())?;
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns: {e}"))?;
        let params = [("ip", "192.0.2.100"), ("cidr_netmask", "24"), ("nic", "bench0")];
        let ocf = |bin: &str, action: &str| {
            let mut c = Command::new(bin);
            c.arg(action)
                .env("OCF_ROOT", "/usr/lib/ocf")
                .env("OCF_RESOURCE_INSTANCE", "bench")
                .env("HA_LOGFACILITY", "none")
                .env("OCF_RESKEY_CRM_meta_interval", "10000");
            for (k, v) in params {
                c.env(format!("OCF_RESKEY_{k}"), v);
            }
            c
        };
        let vip_s = vip.to_string_lossy().into_owned();
        let st = ocf(&vip_s, "start").env("OCF_RESKEY_arp_count", "0").status().map_err(|e| e.to_string())?;
        if !st.success() {
            return Err("lvs-vip start failed".into());
        }
        const LDIRECTORD: &str = "/usr/lib/ocf/resource.d/heartbeat/ldirectord";
        let md = |bin: &str| measure(calls, || ocf(bin, "meta-data"));
        let mut rows = vec![
            ("spawn /bin/true (floor)".to_string(), measure(calls, || Command::new("/bin/true"))?, None),
            (
                "vip monitor vs IPaddr2".to_string(),
                measure(calls, || ocf(&vip_s, "monitor"))?,
                Some(measure(calls, || ocf(IPADDR2, "monitor"))?),
            ),
            ("vip meta-data vs IPaddr2".to_string(), md(&vip_s)?, Some(md(IPADDR2)?)),
        ];
        // The IPVS agents' meta-data against the ldirectord OCF agent's.
        for agent in ["service", "realservers", "sorry"] {
            let ours = our_bin(&format!("lvs-{agent}"))?.to_string_lossy().into_owned();
            let peer = if std::path::Path::new(LDIRECTORD).is_file() { Some(md(LDIRECTORD)?) } else { None };
            rows.push((format!("{agent} meta-data vs ldirectord"), md(&ours)?, peer));
        }
        let mut summary = Vec::new();
        for (name, ours, peer) in &rows {
            if let Some(p) = peer {
                let f = |x: &Figures| (x.median.as_secs_f64(), ms(x.median));
                let (metric, who) = name.split_once(" vs ").unwrap_or((name, "peer"));
                let peer = f(p);
                summary.push(Row::lower(format!("{metric}, median"), f(ours), (peer.0, format!("{who} {}", peer.1))));
            }
        }
        println!("machine: {}", machine());
        println!("agent call latency, {calls} calls each, VIP 192.0.2.100/24 on a veth in a private netns");
        println!("{:<34} {:>22} {:>22} {:>8}", "metric", "ours med / p95", "peer med / p95", "ratio");
        for (name, ours, peer) in rows {
            let o = format!("{} / {}", ms(ours.median), ms(ours.p95));
            match peer {
                Some(p) => println!(
                    "{name:<34} {o:>22} {:>22} {:>7.1}x",
                    format!("{} / {}", ms(p.median), ms(p.p95)),
                    p.median.as_secs_f64() / ours.median.as_secs_f64()
                ),
                None => println!("{name:<34} {o:>22} {:>22} {:>8}", "", ""),
            }
        }
        Ok(summary)
    })();
    let _ = sh(&["ip", "netns", "del", NS]);
    result
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let r = match cli.bench {
        Bench::Results { dir } => {
            return match results(&dir) {
                Ok(text) => {
                    print!("{text}");
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("lvs-bench: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Bench::AgentCalls => agent_calls(cli.calls).map(|rows| ("agent call latency", rows)),
        Bench::FailureDetection { detection } => detection.run().map(|rows| ("failure detection", rows)),
        Bench::HealthScale { reals, seconds, check, silent, ldirectord, ours_only } => {
            lab::health_scale(&lab::Scale { reals, seconds, check, silent_pct: silent, ldirectord, ours_only })
                .map(|rows| ("health checks at scale", rows))
        }
        Bench::IpvsProgramming(p) => p.run().map(|rows| ("IPVS programming", rows)),
        Bench::All { detection, reals, seconds, programming } => (|| {
            let mut rows = agent_calls(cli.calls)?;
            rows.extend(detection.run()?);
            rows.extend(programming.run()?);
            for check in [lab::ScaleCheck::Connect, lab::ScaleCheck::Http] {
                let scale = lab::Scale { reals, seconds, check, silent_pct: 0, ldirectord: false, ours_only: false };
                rows.extend(lab::health_scale(&scale)?);
            }
            Ok(("all benchmarks", rows))
        })(),
    };
    match r {
        Ok((title, rows)) => {
            print_summary(&format!("summary: {title}"), &rows);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lvs-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ratio_range;

    #[test]
    fn the_ratio_range_holds_the_true_ratio_and_tells_a_gap_from_noise() {
        let ours: Vec<f64> = (0..50).map(|i| 100.0 + f64::from(i) * 20.0).collect();
        let same = ratio_range(&ours, &ours);
        assert!(same.0 < 1.0 && same.1 > 1.0, "{same:?}");
        let twice: Vec<f64> = ours.iter().map(|x| x * 2.0).collect();
        let (lo, hi) = ratio_range(&twice, &ours);
        assert!(lo > 1.2 && hi < 3.3 && lo < 2.0 && hi > 2.0, "{lo} {hi}");
        // Reproducible: the same samples, the same range.
        assert_eq!(ratio_range(&twice, &ours), (lo, hi));
    }
}
