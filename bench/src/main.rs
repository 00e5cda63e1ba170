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
    /// Backend stopped -> weight 0 in the kernel: lvs-agents vs ldirectord
    /// vs keepalived, interval 1 s, timeout 1 s (run in the lab VM).
    FailureDetection {
        #[arg(long, default_value_t = 20)]
        reps: usize,
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
    },
    /// Services x destinations from nothing: our client vs `ipvsadm -R`,
    /// ldirectord and keepalived (run in the lab VM).
    IpvsProgramming {
        #[arg(long, default_value_t = 1000)]
        services: usize,
        #[arg(long, default_value_t = 10)]
        dests: usize,
        /// How long a daemon peer may take before its row says how far it got.
        #[arg(long, default_value_t = 300)]
        peer_limit: u64,
    },
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

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cores} cores, {cpu}")
}

fn agent_calls(calls: usize) -> Result<(), String> {
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
        Ok(())
    })();
    let _ = sh(&["ip", "netns", "del", NS]);
    result
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let r = match cli.bench {
        Bench::AgentCalls => agent_calls(cli.calls),
        Bench::FailureDetection { reps } => lab::failure_detection(reps),
        Bench::HealthScale { reals, seconds, check, silent, ldirectord } => {
            lab::health_scale(&lab::Scale { reals, seconds, check, silent_pct: silent, ldirectord })
        }
        Bench::IpvsProgramming { services, dests, peer_limit } => {
            lab::ipvs_programming(services, dests, Duration::from_secs(peer_limit))
        }
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lvs-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
