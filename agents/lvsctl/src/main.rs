//! `lvsctl`: what an operator asks a director. `status` is the kernel
//! table as `ipvsadm -Ln` prints it, with each real server's health as the
//! lvs-agents daemons see it.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand, ValueEnum};

mod agents;
mod doctor;
mod import;
mod lint;
mod man;
use lvs_ipvs::{
    conns, destination_line, listing, parse_addr_port, service_line, timeouts_line, Columns, Connector, ServiceKey,
    SyncDaemon, Table,
};
use lvs_status::{read_all, AllStates, RealState};
use lvs_sync::config::describe;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(name = "lvsctl", version, about = "Operate an lvs-agents director")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The IPVS table with health state (up/down, last check, since when),
    /// then the sync daemons and the ocf:lvs:sync resource that runs each.
    Status {
        /// Machine-readable output.
        #[arg(long, conflicts_with = "watch")]
        json: bool,
        /// Redraw in place every --interval seconds, like `watch -d`:
        /// lines that changed since the last screen in reverse video (a
        /// real's age, which changes every second, does not count).
        /// Ctrl-C ends it.
        #[arg(long)]
        watch: bool,
        /// Seconds between screens with --watch.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600), requires = "watch")]
        interval: u64,
        /// Where the daemons keep their state.
        #[arg(long, default_value = "/run/lvs-agents", env = "LVS_RUN_DIR")]
        run_dir: PathBuf,
    },
    /// The IPVS table exactly as `ipvsadm -Ln` prints it, or with
    /// --stats, --rate, --timeout or --connections what `ipvsadm -Ln` prints
    /// with those options. Counters, rates and timeouts come from IPVS
    /// netlink; connections from /proc/net/ip_vs_conn (netlink has none).
    List {
        /// Counters per service and real: connections, packets, bytes.
        #[arg(long, group = "view")]
        stats: bool,
        /// The kernel's rate estimates: connections, packets and bytes per second.
        #[arg(long, group = "view")]
        rate: bool,
        /// Counters in full instead of shortened to K, M, G, T.
        #[arg(long, conflicts_with_all = ["timeout", "connections"])]
        exact: bool,
        /// The connection timeouts (tcp tcpfin udp), in seconds.
        #[arg(long, group = "view")]
        timeout: bool,
        /// The connection table (`ipvsadm -Lnc`).
        #[arg(short = 'c', long, group = "view")]
        connections: bool,
        /// With --connections: the persistence engine's columns too.
        #[arg(long, requires = "connections")]
        persistent_conn: bool,
        /// Only this service (tcp:10.0.0.100:80, fwmark:7); like ipvsadm
        /// -t/-u/-f, the version line is left out.
        #[arg(long, conflicts_with = "timeout")]
        service: Option<String>,
        /// Only this real server (10.0.0.11:80, [2001:db8::11]:80).
        #[arg(long, conflicts_with = "timeout")]
        real: Option<String>,
    },
    /// Translate ldirectord.cf or keepalived.conf into configuration for
    /// the lvs agents, writing out the old daemon's defaults where the file
    /// relies on them. Port names are looked up in /etc/services and host
    /// names resolved now, each said in a note (LVSCTL_NO_RESOLVE=1:
    /// reported instead); a file that is not UTF-8 is read as Latin-1.
    /// Exit 0: all translated; 3: some directives were unsupported (listed
    /// with line numbers); 2: unreadable input.
    Import {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Crm)]
        format: Format,
        /// What the file is; detected from its content when omitted.
        #[arg(long, value_enum)]
        kind: Option<ImportKind>,
    },
    /// What this director's IPVS services need from the kernel around them
    /// (forwarding, redirects, the connection table's size, sync daemons,
    /// the VIP held here and by nobody else), each problem with the command
    /// that fixes it; with --realserver VIP, what a DR or TUN real server
    /// needs (the VIP on lo, arp_ignore/arp_announce, rp_filter on tunl0).
    /// Exit 0: clean; 1: warnings; 2: errors.
    Doctor {
        /// Check this host as a real server of VIP instead.
        #[arg(long, value_name = "VIP")]
        realserver: Option<std::net::IpAddr>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Where the agents keep their state (sync resources' records).
        #[arg(long, default_value = "/run/lvs-agents", env = "LVS_RUN_DIR")]
        run_dir: PathBuf,
    },
    /// The IPVS counters and the health daemons' state as Prometheus
    /// metrics (text format 0.0.4), for node_exporter's textfile
    /// collector: `lvsctl metrics > DIR/lvs.prom.tmp && mv DIR/lvs.prom.tmp
    /// DIR/lvs.prom`. The same names as a realservers resource's
    /// metrics_listen serves. Exit 1 (after printing the daemons' part)
    /// when the kernel table cannot be read.
    Metrics {
        /// Where the daemons keep their state.
        #[arg(long, default_value = "/run/lvs-agents", env = "LVS_RUN_DIR")]
        run_dir: PathBuf,
    },
    /// Check the lvs primitives of a `crm configure` text or a file of
    /// `pcs resource create` commands, offline, with each agent's own
    /// validate-all checks (less those needing this node's kernel or
    /// interfaces), and ids and unique values used twice. Exit 0: clean;
    /// 1: problems.
    Lint { file: PathBuf },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Crm,
    Pcs,
}

#[derive(Clone, Copy, ValueEnum)]
enum ImportKind {
    Ldirectord,
    Keepalived,
}

/// Health of each real by (service, real endpoint), from the daemons.
fn health_index(states: &AllStates) -> HashMap<(String, String), (&str, &RealState)> {
    let mut idx = HashMap::new();
    for (inst, s) in &states.realservers {
        for r in &s.reals {
            idx.insert((s.service.clone(), r.real.clone()), (inst.as_str(), r));
        }
    }
    idx
}

fn ago(t: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let s = now.saturating_sub(t);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

fn text(table: &Table, states: &AllStates) -> String {
    let idx = health_index(states);
    let sorry: HashMap<(String, String), bool> =
        states.sorry.iter().map(|(_, s)| ((s.service.clone(), s.fallback.clone()), s.active)).collect();
    let mut out = format!(
        "IP Virtual Server version {} (size={})\n\
         Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn  Health\n",
        table.info.version_string(),
        table.info.conn_tab_size
    );
    for e in &table.entries {
        out.push_str(&service_line(&e.service));
        out.push('\n');
        let svc = e.service.key.to_string();
        for d in &e.destinations {
            let ep = d.endpoint().to_string();
            let health = match (idx.get(&(svc.clone(), ep.clone())), sorry.get(&(svc.clone(), ep.clone()))) {
                (Some((inst, r)), _) => {
                    format!("{} for {} ({}; {})", if r.up { "up" } else { "DOWN" }, ago(r.since), r.last_result, inst)
                }
                (None, Some(_)) => "sorry server (all reals down)".to_string(),
                (None, None) => "unmanaged".to_string(),
            };
            out.push_str(&format!("{}  {health}\n", destination_line(d)));
        }
        // Reals a daemon took out of the table (quiescent=false) are
        // still the operator's business.
        for (inst, st) in states.realservers.iter().filter(|(_, st)| st.service == svc) {
            for r in st.reals.iter().filter(|r| !e.destinations.iter().any(|d| d.endpoint().to_string() == r.real)) {
                out.push_str(&format!(
                    "  -> {:<28} (not in the table)            {} for {} ({}; {inst})\n",
                    r.real,
                    if r.up { "up" } else { "DOWN" },
                    ago(r.since),
                    r.last_result
                ));
            }
        }
    }
    for (inst, s) in &states.realservers {
        if let Some(err) = &s.last_error {
            out.push_str(&format!("! {inst}: {err}\n"));
        }
    }
    out
}

fn json_status(table: &Table, states: &AllStates) -> Value {
    let idx = health_index(states);
    let services: Vec<Value> = table
        .entries
        .iter()
        .map(|e| {
            let svc = e.service.key.to_string();
            let health = |ep: &str| {
                idx.get(&(svc.clone(), ep.to_string())).map(|(inst, r)| {
                    json!({"resource": inst, "up": r.up, "last_result": r.last_result, "since": r.since,
                           "successes": r.successes, "failures": r.failures})
                })
            };
            let mut dests: Vec<Value> = e
                .destinations
                .iter()
                .map(|d| {
                    let ep = d.endpoint().to_string();
                    json!({"address": ep, "in_table": true, "forward": d.forward.to_string(), "weight": d.weight,
                           "active_conns": d.active_conns, "inactive_conns": d.inactive_conns, "health": health(&ep)})
                })
                .collect();
            for (_, st) in states.realservers.iter().filter(|(_, st)| st.service == svc) {
                for r in st.reals.iter().filter(|r| !e.destinations.iter().any(|d| d.endpoint().to_string() == r.real))
                {
                    dests.push(json!({"address": r.real, "in_table": false, "health": health(&r.real)}));
                }
            }
            json!({"service": svc, "scheduler": e.service.scheduler, "persistent": e.service.is_persistent(),
                   "timeout": e.service.timeout, "destinations": dests})
        })
        .collect();
    let sorry: Vec<Value> = states
        .sorry
        .iter()
        .map(|(inst, s)| json!({"resource": inst, "service": s.service, "fallback": s.fallback, "active": s.active}))
        .collect();
    json!({"version": table.info.version_string(), "services": services, "sorry": sorry})
}

/// The kernel's sync daemons, each with the `ocf:lvs:sync` resource that
/// started (or uses) it, from the records in `run_dir`.
fn sync_owners(daemons: &[SyncDaemon], run_dir: &std::path::Path) -> Vec<(SyncDaemon, Option<String>)> {
    let records = lvs_sync::config::records(run_dir);
    daemons
        .iter()
        .map(|d| {
            let owner = records.iter().find(|(_, r)| r.daemons.iter().any(|e| e.is(d))).map(|(n, _)| n.clone());
            (d.clone(), owner)
        })
        .collect()
}

fn sync_text(daemons: &[(SyncDaemon, Option<String>)]) -> String {
    let mut out = String::new();
    if !daemons.is_empty() {
        out.push_str("Sync daemons:\n");
    }
    for (d, owner) in daemons {
        let owner = owner.as_deref().map(|o| format!("  ({o})")).unwrap_or_else(|| "  (unmanaged)".into());
        out.push_str(&format!("  {}{owner}\n", describe(d)));
    }
    out
}

fn sync_json(daemons: &[(SyncDaemon, Option<String>)]) -> Value {
    Value::Array(
        daemons
            .iter()
            .map(|(d, owner)| {
                json!({"state": d.state.to_string(), "interface": d.mcast_ifn, "syncid": d.syncid,
                       "maxlen": d.sync_maxlen, "group": d.mcast_group.map(|g| g.to_string()),
                       "port": d.mcast_port, "ttl": d.mcast_ttl, "resource": owner})
            })
            .collect(),
    )
}

/// The status screen as [`text`] and [`sync_text`] print it, or the error
/// that kept it from being read.
fn status_screen(run_dir: &std::path::Path) -> String {
    match Connector::Kernel.connect().and_then(|c| Ok((c.table()?, c.daemons()?))) {
        Ok((table, daemons)) => {
            let states = read_all(run_dir);
            format!("{}{}", text(&table, &states), sync_text(&sync_owners(&daemons, run_dir)))
        }
        Err(e) => format!("lvsctl: {e}\n"),
    }
}

/// A line as compared between screens: without the ages ("up for 4s"),
/// which change every second.
fn without_ages(line: &str) -> String {
    let mut out = Vec::new();
    let mut words = line.split(' ').peekable();
    while let Some(w) = words.next() {
        out.push(w);
        let age = |a: &&str| {
            a.strip_suffix(['s', 'm', 'h']).is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        };
        if w == "for" && words.peek().is_some_and(age) {
            words.next();
        }
    }
    out.join(" ")
}

/// `lvsctl status --watch`: redraws until killed.
fn watch(every: Duration, run_dir: &std::path::Path) -> ! {
    let mut before: Option<Vec<String>> = None;
    loop {
        let screen = status_screen(run_dir);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut out = format!(
            "\x1b[H\x1b[1mEvery {}s: lvsctl status\x1b[0m  (at {:02}:{:02}:{:02} UTC)\x1b[K\n\x1b[K\n",
            every.as_secs(),
            now / 3600 % 24,
            now / 60 % 60,
            now % 60
        );
        let lines: Vec<String> = screen.lines().map(without_ages).collect();
        for (line, stable) in screen.lines().zip(&lines) {
            let changed = before.as_ref().is_some_and(|b| !b.contains(stable));
            if changed {
                out.push_str(&format!("\x1b[7m{line}\x1b[0m\x1b[K\n"));
            } else {
                out.push_str(&format!("{line}\x1b[K\n"));
            }
        }
        out.push_str("\x1b[J");
        let mut stdout = std::io::stdout().lock();
        // Nobody reads any more (a closed pipe, a gone terminal): done.
        if std::io::Write::write_all(&mut stdout, out.as_bytes())
            .and_then(|_| std::io::Write::flush(&mut stdout))
            .is_err()
        {
            std::process::exit(0);
        }
        drop(stdout);
        before = Some(lines);
        std::thread::sleep(every);
    }
}

struct ListArgs {
    stats: bool,
    rate: bool,
    exact: bool,
    timeout: bool,
    connections: bool,
    persistent_conn: bool,
    service: Option<String>,
    real: Option<String>,
}

/// `lvsctl list`: exit 0, or 2 when a filter does not parse or the kernel
/// cannot be read.
fn list(a: ListArgs, mut table: Table) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("lvsctl: {msg}");
        ExitCode::from(2)
    };
    let service = match a.service.as_deref().map(str::parse::<ServiceKey>).transpose() {
        Ok(s) => s,
        Err(e) => return fail(format!("--service: {e}")),
    };
    let real = match a.real.as_deref().map(parse_addr_port).transpose() {
        Ok(r) => r.map(|(ip, port)| std::net::SocketAddr::new(ip, port)),
        Err(e) => return fail(format!("--real: {e}")),
    };
    if a.timeout {
        return match Connector::Kernel.connect().and_then(|c| c.timeouts()) {
            Ok(t) => {
                print!("{}", timeouts_line(&t));
                ExitCode::SUCCESS
            }
            Err(e) => fail(e.to_string()),
        };
    }
    if a.connections {
        let conns = match conns::read() {
            Ok((c, 0)) => c,
            Ok((c, skipped)) => {
                eprintln!("lvsctl: {skipped} lines of {} did not parse and are not listed", conns::CONN_FILE);
                c
            }
            Err(e) => return fail(e.to_string()),
        };
        let of_service = |c: &conns::Connection| match &service {
            None => true,
            Some(ServiceKey::Addr { protocol, addr, port }) => {
                (c.protocol == protocol.listing_name() || c.protocol == "IP")
                    && c.virtual_addr == std::net::SocketAddr::new(*addr, *port)
            }
            Some(ServiceKey::FwMark { .. }) => false,
        };
        if let Some(ServiceKey::FwMark { .. }) = &service {
            return fail("--service: connection entries name addresses, not firewall marks: filter by --real".into());
        }
        let shown: Vec<conns::Connection> =
            conns.into_iter().filter(|c| of_service(c) && real.is_none_or(|r| c.destination == r)).collect();
        print!("{}", conns::listing(&shown, a.persistent_conn));
        return ExitCode::SUCCESS;
    }
    if let Some(r) = real {
        for e in &mut table.entries {
            e.destinations.retain(|d| d.endpoint() == r);
        }
    }
    let columns = if a.stats {
        Columns::Stats
    } else if a.rate {
        Columns::Rate
    } else {
        Columns::Table
    };
    if let Some(k) = &service {
        if table.get(k).is_none() {
            return fail(format!("no service {k} in the table"));
        }
    }
    print!("{}", listing(&table, columns, a.exact, service.as_ref()));
    ExitCode::SUCCESS
}

fn read(file: &PathBuf) -> Result<String, ExitCode> {
    std::fs::read_to_string(file).map_err(|e| {
        eprintln!("lvsctl: {}: {e}", file.display());
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    // The man page, from the same declaration as --help (rpm/build installs it).
    if std::env::args().nth(1).as_deref() == Some("--man") {
        print!("{}", man::render(&<Cli as clap::CommandFactory>::command()));
        return ExitCode::SUCCESS;
    }
    let cli = Cli::parse();
    match &cli.command {
        Cmd::Import { file, format, kind } => {
            let (text, latin1) = match std::fs::read(file) {
                Ok(b) => import::decode(&b),
                Err(e) => {
                    eprintln!("lvsctl: {}: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
            let kind = match kind {
                Some(ImportKind::Ldirectord) => import::Kind::Ldirectord,
                Some(ImportKind::Keepalived) => import::Kind::Keepalived,
                None => import::detect(&text),
            };
            let mut im = match kind {
                import::Kind::Ldirectord => import::ldirectord(&text),
                import::Kind::Keepalived => import::keepalived(&text),
            };
            if latin1 {
                im.notes.push("the file is not UTF-8: read as Latin-1".into());
            }
            print!("{}", import::render(&im, matches!(format, Format::Pcs), &file.display().to_string()));
            for (line, t) in &im.unsupported {
                eprintln!("lvsctl: {}:{line}: unsupported: {t}", file.display());
            }
            return if im.unsupported.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(3) };
        }
        Cmd::Lint { file } => {
            let text = match read(file) {
                Ok(t) => t,
                Err(c) => return c,
            };
            let problems = lint::lint(&text);
            for p in &problems {
                println!("{}: {p}", file.display());
            }
            return if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) };
        }
        Cmd::Doctor { realserver, json, run_dir } => {
            let findings = match realserver {
                Some(vip) => doctor::judge_realserver(&doctor::gather_realserver(*vip)),
                None => doctor::judge(&doctor::gather(run_dir)),
            };
            let (text, status) = doctor::report(&findings, *json);
            print!("{text}");
            return ExitCode::from(status);
        }
        Cmd::Status { watch: true, interval, run_dir, .. } => watch(Duration::from_secs(*interval), run_dir),
        Cmd::Metrics { run_dir } => {
            let mut e = lvs_status::metrics::Exposition::default();
            let kernel = Connector::Kernel.connect().and_then(|c| c.table());
            if let Ok(t) = &kernel {
                e.ipvs(t);
            }
            e.daemons(&read_all(run_dir));
            print!("{}", e.render());
            return match kernel {
                Ok(_) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("lvsctl: {err}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let got = Connector::Kernel.connect().and_then(|c| Ok((c.table()?, c.daemons()?)));
    let (table, daemons) = match got {
        Ok(t) => t,
        Err(e) => {
            eprintln!("lvsctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Cmd::Import { .. } | Cmd::Lint { .. } | Cmd::Doctor { .. } | Cmd::Metrics { .. } => {}
        Cmd::List { stats, rate, exact, timeout, connections, persistent_conn, service, real } => {
            return list(ListArgs { stats, rate, exact, timeout, connections, persistent_conn, service, real }, table);
        }
        Cmd::Status { json, run_dir, .. } => {
            let states = read_all(&run_dir);
            let sync = sync_owners(&daemons, &run_dir);
            if json {
                let mut v = json_status(&table, &states);
                v["sync_daemons"] = sync_json(&sync);
                println!("{v:#}");
            } else {
                print!("{}{}", text(&table, &states), sync_text(&sync));
            }
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::without_ages;

    #[test]
    fn a_line_compares_without_its_age() {
        let a = "  -> 192.168.7.10:80              Masq    0      0          20          DOWN for 1s (down: refused; reals)";
        let b = "  -> 192.168.7.10:80              Masq    0      0          20          DOWN for 12m (down: refused; reals)";
        assert_eq!(without_ages(a), without_ages(b));
        // Anything else that changes is a change.
        let c = "  -> 192.168.7.10:80              Masq    1      0          20          DOWN for 1s (down: refused; reals)";
        assert_ne!(without_ages(a), without_ages(c));
        // "for" followed by something else is kept.
        assert_eq!(without_ages("wait for it"), "wait for it");
        // Free text (a check's reason) may hold any character.
        assert_eq!(without_ages("waited for café and for 5é"), "waited for café and for 5é");
    }
}
