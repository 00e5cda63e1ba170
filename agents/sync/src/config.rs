//! `ocf:lvs:sync`: the declaration, the configuration it reads, what it
//! records, and the pure decisions (start plan, monitor verdict, what stop
//! may remove). Here rather than in the binary so that `lvsctl lint` runs
//! exactly this validation and `lvsctl status` can name a daemon's owner.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use lvs_ipvs::{SyncDaemon, SyncState};
use lvs_ocf::{self as ocf, spec::positional_in_order, AgentSpec, Heartbeat, ParamSpec, Params};
use lvs_ocf::{Error, Result};

/// The kernel's defaults for what the parameters leave unset
/// (net/netfilter/ipvs/ip_vs_sync.c, start_sync_thread).
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
pub const DEFAULT_PORT: u16 = 8848;
pub const DEFAULT_TTL: u8 = 1;
/// The kernel clamps `maxlen` into [1 (master) or 1024 (backup),
/// 65535 - IP and UDP headers]; the declared bounds keep it out of that
/// clamp for both states, so the kernel runs exactly what was asked.
pub const MAXLEN_MIN: i64 = 1024;
pub const MAXLEN_MAX_V4: i64 = 65535 - 20 - 8;
pub const MAXLEN_MAX_V6: i64 = 65535 - 40 - 8;

pub static SPEC: AgentSpec = AgentSpec {
    name: "sync",
    version: "1.0",
    shortdesc: "IPVS connection synchronisation daemons",
    longdesc: "Runs the kernel's IPVS connection-synchronisation daemons (what ipvsadm \
        --start-daemon does), so that the director taking over already holds the connections \
        the active one was forwarding, each bound to the same real server. A master daemon \
        multicasts the state of the connections this director forwards; a backup daemon \
        installs what it receives into this director's connection table. role=both (the \
        default) runs both on this node, which the kernel allows: run the resource as a clone \
        on every director, and the active one sends while the standby receives, whichever way \
        the group moves. Start is idempotent and refuses to disturb a daemon it did not start \
        that runs with other parameters (the kernel allows one master and one backup per \
        network namespace); an identical one is used but left running at stop. Start records \
        what it started in /run/lvs-agents; stop removes exactly those daemons, whatever the \
        parameters say by then, and never one it did not start. Monitor compares the kernel's \
        daemons with the record and the parameters: a recorded daemon running with other \
        settings is an error. Kernel daemons cannot be edited: reload stops and starts the \
        daemons whose parameters changed (a gap of milliseconds in which no sync message is \
        sent). The agent sets no sysctl; net.ipv4.vs.sync_threshold, sync_period, \
        sync_refresh_period, sync_retries, sync_persist_mode and sync_version decide what is \
        sent and how often (see the README); start refuses role=both while \
        net.ipv4.vs.backup_only=1, which switches IPVS off wherever a backup daemon runs, the \
        active director included. heartbeat v1 form: lvs-sync::interface[::syncid[::role]].",
    params: &[
        ParamSpec::string("interface", "Multicast interface").required().long(
            "The interface the sync messages are sent from and received on (a name shorter than \
                16 bytes, as the kernel takes), e.g. a dedicated link between the directors. It \
                must exist at start.",
        ),
        ParamSpec::integer("syncid", 0, 255, "Sync ID").default("0").long(
            "Marks the messages of one director pair (0-255). A master stamps its messages with \
                it; a backup takes only messages with its syncid, or every message when it is 0. \
                Give each director pair on a shared link its own.",
        ),
        ParamSpec::select("role", &["both", "master", "backup"], "Which daemons run here").default("both").long(
            "both: a master and a backup daemon on this node (recommended, as a clone on every \
                director: the master sends only connections this node forwards, so the active \
                director sends and the standby receives); master: send only; backup: receive \
                only.",
        ),
        ParamSpec::string("mcast_group", "Multicast group")
            .long("The multicast group of the sync messages, IPv4 or IPv6 (kernel default 224.0.0.81)."),
        ParamSpec::integer("mcast_port", 1, 65535, "UDP port")
            .long("UDP port of the sync messages, 1-65535 (kernel default 8848)."),
        ParamSpec::integer("mcast_ttl", 1, 255, "Multicast TTL")
            .long("TTL (hop limit) of the sync messages, 1-255 (kernel default 1: the local link only)."),
        ParamSpec::integer("maxlen", MAXLEN_MIN, MAXLEN_MAX_V4, "Maximum message length").long(
            "Largest sync message payload in bytes, 1024-65507 (65487 with an IPv6 group). \
                Kernel default when unset: 1472 for a master (1500 less IPv4 and UDP headers; \
                1452 with IPv6), the interface MTU (at least 1500) less the headers for a backup.",
        ),
    ],
    actions: ocf::STANDARD_ACTIONS,
    heartbeat: Heartbeat { usage: "interface[::syncid[::role]]", map: positional },
};

fn positional(args: &[String]) -> Result<Vec<(&'static str, String)>> {
    positional_in_order(&["interface", "syncid", "role"], args)
}

/// Which daemons a resource runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Both,
    Master,
    Backup,
}

impl Role {
    pub fn states(self) -> &'static [SyncState] {
        match self {
            Role::Both => &[SyncState::Master, SyncState::Backup],
            Role::Master => &[SyncState::Master],
            Role::Backup => &[SyncState::Backup],
        }
    }
}

/// The configuration, checked: the daemons the parameters ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub role: Role,
    /// One per state of `role`, options the kernel defaults left `None`.
    pub daemons: Vec<SyncDaemon>,
}

/// The kernel's rules for an interface name (dev_valid_name): 1-15 bytes,
/// not `.` or `..`, no `/`, `:` or white space.
pub fn check_interface(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() >= 16
        || name == "."
        || name == ".."
        || name.chars().any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace());
    if bad {
        return Err(Error::configured(format!(
            "interface '{name}' is not a valid interface name (1-15 bytes, no '/', ':' or white space)"
        )));
    }
    Ok(())
}

impl Config {
    /// What `validate-all` checks (and `lvsctl lint` runs): everything but
    /// whether the interface exists on this node.
    pub fn from_params(p: &Params) -> Result<Config> {
        let interface = p.str("interface").unwrap_or_default();
        if interface.is_empty() {
            return Err(Error::configured("required parameter 'interface' is not set"));
        }
        check_interface(interface)?;
        let role = match p.str("role").unwrap_or("both") {
            "both" => Role::Both,
            "master" => Role::Master,
            "backup" => Role::Backup,
            other => return Err(Error::configured(format!("role '{other}': expected both, master or backup"))),
        };
        let int = |name: &str, min: i64, max: i64| -> Result<Option<i64>> {
            match p.int(name) {
                Some(v) if !(min..=max).contains(&v) => {
                    Err(Error::configured(format!("{name}={v} is out of range {min}-{max}")))
                }
                other => Ok(other),
            }
        };
        // In range, so it fits.
        fn fit<T: TryFrom<i64>>(name: &str, v: Option<i64>) -> Result<Option<T>> {
            v.map(|v| T::try_from(v).map_err(|_| Error::configured(format!("{name}={v} is out of range")))).transpose()
        }
        let syncid: u8 = fit("syncid", int("syncid", 0, 255)?)?.unwrap_or(0);
        let group = match p.str("mcast_group") {
            None => None,
            Some(g) => {
                let ip: IpAddr = g
                    .trim()
                    .parse()
                    .map_err(|_| Error::configured(format!("mcast_group '{g}' is not an IP address")))?;
                if !ip.is_multicast() {
                    return Err(Error::configured(format!("mcast_group {ip} is not a multicast address")));
                }
                Some(ip)
            }
        };
        let max = if matches!(group, Some(IpAddr::V6(_))) { MAXLEN_MAX_V6 } else { MAXLEN_MAX_V4 };
        let maxlen = fit("maxlen", int("maxlen", MAXLEN_MIN, max)?)?;
        let port = fit("mcast_port", int("mcast_port", 1, 65535)?)?;
        let ttl = fit("mcast_ttl", int("mcast_ttl", 1, 255)?)?;
        let daemons = role
            .states()
            .iter()
            .map(|&state| SyncDaemon {
                state,
                mcast_ifn: interface.to_string(),
                syncid,
                sync_maxlen: maxlen,
                mcast_group: group,
                mcast_port: port,
                mcast_ttl: ttl,
            })
            .collect();
        Ok(Config { role, daemons })
    }
}

/// `d` as `ipvsadm -L --daemon` prints it, unset options left out.
/// Every `ocf:lvs:sync` resource's record in `run_dir`: (instance, record).
/// Unreadable or foreign files are skipped.
pub fn records(run_dir: &std::path::Path) -> Vec<(String, Record)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(run_dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_prefix("sync-").and_then(|n| n.strip_suffix(".record")) else { continue };
        let Ok(text) = std::fs::read_to_string(e.path()) else { continue };
        if let Ok(r) = serde_json::from_str::<Record>(&text) {
            out.push((lvs_daemon::decode(stem), r));
        }
    }
    out
}

pub fn describe(d: &SyncDaemon) -> String {
    let mut s = format!("{} sync daemon (mcast={}, syncid={}", d.state, d.mcast_ifn, d.syncid);
    if let Some(v) = d.sync_maxlen {
        s.push_str(&format!(", maxlen={v}"));
    }
    if let Some(v) = d.mcast_group {
        s.push_str(&format!(", group={v}"));
    }
    if let Some(v) = d.mcast_port {
        s.push_str(&format!(", port={v}"));
    }
    if let Some(v) = d.mcast_ttl {
        s.push_str(&format!(", ttl={v}"));
    }
    s.push(')');
    s
}

/// Whether the kernel's daemon `have` is what `want` asks for: unset
/// options stand for the kernel's defaults, and an unset maxlen accepts
/// whatever the kernel derived from the interface.
pub fn matches(want: &SyncDaemon, have: &SyncDaemon) -> bool {
    differences(want, have).is_empty()
}

/// How `have` differs from `want`, in words (see [`matches`]).
pub fn differences(want: &SyncDaemon, have: &SyncDaemon) -> Vec<String> {
    let mut d = Vec::new();
    if want.state != have.state {
        d.push(format!("state is {}, expected {}", have.state, want.state));
    }
    if want.mcast_ifn != have.mcast_ifn {
        d.push(format!("interface is {}, expected {}", have.mcast_ifn, want.mcast_ifn));
    }
    if want.syncid != have.syncid {
        d.push(format!("syncid is {}, expected {}", have.syncid, want.syncid));
    }
    if want.sync_maxlen.is_some() && want.sync_maxlen != have.sync_maxlen {
        d.push(format!("maxlen is {:?}, expected {:?}", have.sync_maxlen, want.sync_maxlen));
    }
    let group = |d: &SyncDaemon| d.mcast_group.unwrap_or(IpAddr::V4(DEFAULT_GROUP));
    if group(want) != group(have) {
        d.push(format!("group is {}, expected {}", group(have), group(want)));
    }
    let port = |d: &SyncDaemon| d.mcast_port.unwrap_or(DEFAULT_PORT);
    if port(want) != port(have) {
        d.push(format!("port is {}, expected {}", port(have), port(want)));
    }
    let ttl = |d: &SyncDaemon| d.mcast_ttl.unwrap_or(DEFAULT_TTL);
    if ttl(want) != ttl(have) {
        d.push(format!("ttl is {}, expected {}", ttl(have), ttl(want)));
    }
    d
}

/// Two requests for the same daemon: equal once the kernel's defaults are
/// filled in (an explicit mcast_port=8848 is the default, not a change).
pub fn same_request(a: &SyncDaemon, b: &SyncDaemon) -> bool {
    a.sync_maxlen == b.sync_maxlen && matches(a, b)
}

/// A daemon as records keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedDaemon {
    pub state: String,
    pub interface: String,
    pub syncid: u8,
    pub maxlen: Option<u16>,
    pub group: Option<IpAddr>,
    pub port: Option<u16>,
    pub ttl: Option<u8>,
}

impl From<&SyncDaemon> for RecordedDaemon {
    fn from(d: &SyncDaemon) -> Self {
        RecordedDaemon {
            state: d.state.to_string(),
            interface: d.mcast_ifn.clone(),
            syncid: d.syncid,
            maxlen: d.sync_maxlen,
            group: d.mcast_group,
            port: d.mcast_port,
            ttl: d.mcast_ttl,
        }
    }
}

impl RecordedDaemon {
    pub fn daemon(&self) -> Option<SyncDaemon> {
        Some(SyncDaemon {
            state: self.state.parse().ok()?,
            mcast_ifn: self.interface.clone(),
            syncid: self.syncid,
            sync_maxlen: self.maxlen,
            mcast_group: self.group,
            mcast_port: self.port,
            mcast_ttl: self.ttl,
        })
    }
}

/// One daemon a resource uses: what it asked for, what the kernel ran,
/// and whether this resource started it (and so may stop it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub requested: RecordedDaemon,
    /// As the kernel listed it after the start; `None` while a start is
    /// under way (the record is written before the kernel is asked).
    pub kernel: Option<RecordedDaemon>,
    /// Started by this resource. An identical daemon found running is used
    /// but not owned: stop leaves it.
    pub owned: bool,
}

impl Entry {
    pub fn state(&self) -> Option<SyncState> {
        self.requested.state.parse().ok()
    }

    /// Whether `have` is the daemon this entry stands for: exactly what the
    /// kernel listed after the start, or, before that was read, what was
    /// asked for.
    pub fn is(&self, have: &SyncDaemon) -> bool {
        match (&self.kernel, self.requested.daemon()) {
            (Some(k), _) => k.daemon().as_ref() == Some(have),
            (None, Some(req)) => matches(&req, have),
            (None, None) => false,
        }
    }
}

/// What a sync resource keeps in its record file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub daemons: Vec<Entry>,
}

impl Record {
    pub fn entry(&self, state: SyncState) -> Option<&Entry> {
        self.daemons.iter().find(|e| e.state() == Some(state))
    }

    /// Replaces (or adds) the entry for its state.
    pub fn put(&mut self, e: Entry) {
        self.daemons.retain(|x| x.state() != e.state());
        self.daemons.push(e);
    }

    pub fn remove(&mut self, state: SyncState) {
        self.daemons.retain(|x| x.state() != Some(state));
    }
}

/// One step of a start or reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Already running as asked; `owned` says whether this resource
    /// started it.
    Keep { have: SyncDaemon, owned: bool },
    /// Nothing runs in this state: start it.
    Start(SyncDaemon),
    /// This resource's daemon runs with other parameters: stop it, start
    /// this one.
    Replace(SyncDaemon),
    /// This resource's daemon in a state the role no longer asks for.
    Stop(SyncState),
}

/// What start (and reload) must do to get from `kernel` to `want`; an
/// error, before anything is touched, when a daemon this resource did not
/// start holds a state with other parameters.
pub fn plan(want: &[SyncDaemon], record: &Record, kernel: &[SyncDaemon]) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    for w in want {
        let step = match kernel.iter().find(|k| k.state == w.state) {
            None => Step::Start(w.clone()),
            Some(k) => {
                let ours = record.entry(w.state).filter(|e| e.owned && e.is(k));
                match ours {
                    Some(e) if e.requested.daemon().is_some_and(|r| same_request(&r, w)) => {
                        Step::Keep { have: k.clone(), owned: true }
                    }
                    Some(_) => Step::Replace(w.clone()),
                    None if matches(w, k) => Step::Keep { have: k.clone(), owned: false },
                    None => {
                        return Err(Error::generic(format!(
                            "a {} not started by this resource already runs ({}); the kernel allows one {} \
                             sync daemon per network namespace: stop it (ipvsadm --stop-daemon {}) or \
                             configure this resource like it",
                            describe(k),
                            differences(w, k).join(", "),
                            w.state,
                            w.state
                        )))
                    }
                }
            }
        };
        steps.push(step);
    }
    for e in record.daemons.iter().filter(|e| e.owned) {
        let Some(state) = e.state() else { continue };
        if want.iter().any(|w| w.state == state) {
            continue;
        }
        if kernel.iter().any(|k| k.state == state && e.is(k)) {
            steps.push(Step::Stop(state));
        }
    }
    Ok(steps)
}

/// The states stop may remove: daemons this resource started and that
/// still run exactly as it started them. One someone replaced by hand
/// (another daemon in the same state) is not ours and stays.
pub fn to_stop(record: &Record, kernel: &[SyncDaemon]) -> Vec<SyncState> {
    record
        .daemons
        .iter()
        .filter(|e| e.owned)
        .filter_map(|e| {
            let state = e.state()?;
            kernel.iter().any(|k| k.state == state && e.is(k)).then_some(state)
        })
        .collect()
}

/// What monitor answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Running,
    NotRunning,
    /// Up, but not as recorded or configured: OCF_ERR_GENERIC.
    Wrong(String),
}

/// Monitor: running means the daemons this resource recorded are in the
/// kernel as recorded, and the parameters ask for exactly those. With no
/// record (or none of its daemons left) it is not running, whatever other
/// daemons run: a daemon this resource did not start is not its business,
/// and stop must leave monitor answering "not running".
pub fn judge(want: &[SyncDaemon], record: Option<&Record>, kernel: &[SyncDaemon]) -> Verdict {
    let Some(record) = record.filter(|r| !r.daemons.is_empty()) else { return Verdict::NotRunning };
    let mut problems = Vec::new();
    let mut present = 0;
    let mut missing = Vec::new();
    for e in &record.daemons {
        let Some(state) = e.state() else { continue };
        match kernel.iter().find(|k| k.state == state) {
            None => missing.push(state),
            Some(k) if e.is(k) => present += 1,
            Some(k) => {
                let was = e.kernel.as_ref().or(Some(&e.requested)).and_then(RecordedDaemon::daemon);
                problems.push(format!(
                    "the {state} sync daemon now runs as {}, not as this resource started it ({})",
                    describe(k),
                    was.map(|w| describe(&w)).unwrap_or_default()
                ))
            }
        }
    }
    if present == 0 && problems.is_empty() {
        return Verdict::NotRunning;
    }
    for state in missing {
        problems.push(format!("the {state} sync daemon this resource started is gone"));
    }
    for w in want {
        match record.entry(w.state) {
            None => problems.push(format!(
                "the parameters ask for a {} sync daemon, which this resource did not start (reload or restart applies it)",
                w.state
            )),
            Some(e) => {
                if let Some(req) = e.requested.daemon().filter(|r| !same_request(r, w)) {
                    problems.push(format!(
                        "the {} sync daemon runs with {}; the parameters ask for {} (reload or restart applies them)",
                        w.state,
                        describe(&req),
                        describe(w)
                    ));
                }
            }
        }
    }
    for e in &record.daemons {
        if let Some(state) = e.state().filter(|s| !want.iter().any(|w| w.state == *s)) {
            problems.push(format!("a {state} sync daemon runs that role no longer asks for"));
        }
    }
    if problems.is_empty() {
        Verdict::Running
    } else {
        Verdict::Wrong(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config> {
        Config::from_params(&Params::from_pairs(&SPEC, pairs)?)
    }

    fn d(state: SyncState, ifn: &str, syncid: u8) -> SyncDaemon {
        SyncDaemon::new(state, ifn, syncid)
    }

    /// A daemon as the kernel lists it: every option filled in.
    fn kernel_of(want: &SyncDaemon) -> SyncDaemon {
        SyncDaemon {
            sync_maxlen: want.sync_maxlen.or(Some(1472)),
            mcast_group: want.mcast_group.or(Some(IpAddr::V4(DEFAULT_GROUP))),
            mcast_port: want.mcast_port.or(Some(DEFAULT_PORT)),
            mcast_ttl: want.mcast_ttl.or(Some(DEFAULT_TTL)),
            ..want.clone()
        }
    }

    fn owned(req: &SyncDaemon, kernel: &SyncDaemon) -> Entry {
        Entry { requested: RecordedDaemon::from(req), kernel: Some(RecordedDaemon::from(kernel)), owned: true }
    }

    #[test]
    fn parameters_build_the_daemons() {
        let c = config(&[("interface", "eth1")]).unwrap();
        assert_eq!(c.role, Role::Both);
        assert_eq!(c.daemons, vec![d(SyncState::Master, "eth1", 0), d(SyncState::Backup, "eth1", 0)]);
        let c = config(&[
            ("interface", "eth1"),
            ("syncid", "255"),
            ("role", "backup"),
            ("mcast_group", "ff02::81"),
            ("mcast_port", "9000"),
            ("mcast_ttl", "3"),
            ("maxlen", "65487"),
        ])
        .unwrap();
        assert_eq!(c.daemons.len(), 1);
        let b = &c.daemons[0];
        assert_eq!(
            (b.state, b.syncid, b.mcast_port, b.mcast_ttl, b.sync_maxlen),
            (SyncState::Backup, 255, Some(9000), Some(3), Some(65487))
        );
        assert_eq!(b.mcast_group, Some("ff02::81".parse().unwrap()));
        let c = config(&[("interface", "eth1"), ("role", "master"), ("maxlen", "65507")]).unwrap();
        assert_eq!(c.daemons[0].state, SyncState::Master);
        assert_eq!(c.daemons[0].sync_maxlen, Some(65507));
    }

    #[test]
    fn bounds_and_nonsense_are_configuration_errors() {
        for pairs in [
            vec![],
            vec![("interface", "")],
            vec![("interface", "0123456789abcdef")],
            vec![("interface", "eth0:1")],
            vec![("interface", "a/b")],
            vec![("interface", "a b")],
            vec![("interface", "..")],
            vec![("interface", "eth0"), ("syncid", "256")],
            vec![("interface", "eth0"), ("syncid", "-1")],
            vec![("interface", "eth0"), ("role", "primary")],
            vec![("interface", "eth0"), ("mcast_group", "10.0.0.1")],
            vec![("interface", "eth0"), ("mcast_group", "2001:db8::1")],
            vec![("interface", "eth0"), ("mcast_group", "nonsense")],
            vec![("interface", "eth0"), ("mcast_port", "0")],
            vec![("interface", "eth0"), ("mcast_port", "65536")],
            vec![("interface", "eth0"), ("mcast_ttl", "0")],
            vec![("interface", "eth0"), ("mcast_ttl", "256")],
            vec![("interface", "eth0"), ("maxlen", "1023")],
            vec![("interface", "eth0"), ("maxlen", "65508")],
            vec![("interface", "eth0"), ("maxlen", "65500"), ("mcast_group", "ff02::81")],
        ] {
            match config(&pairs) {
                Err(Error::Configured(_)) => {}
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
        // The longest name the kernel takes.
        assert!(config(&[("interface", "0123456789abcde")]).is_ok());
    }

    #[test]
    fn heartbeat_form() {
        let a: Vec<String> = ["eth1", "5", "master"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            positional(&a).unwrap(),
            vec![("interface", "eth1".into()), ("syncid", "5".into()), ("role", "master".into())]
        );
    }

    #[test]
    fn unset_options_match_the_kernels_defaults_only() {
        let want = d(SyncState::Master, "eth1", 5);
        let have = kernel_of(&want);
        assert!(matches(&want, &have));
        let mut other = have.clone();
        other.mcast_ttl = Some(2);
        assert_eq!(differences(&want, &other), vec!["ttl is 2, expected 1".to_string()]);
        other = have.clone();
        other.syncid = 6;
        other.mcast_port = Some(9000);
        assert_eq!(differences(&want, &other).len(), 2);
        let mut strict = want.clone();
        strict.sync_maxlen = Some(2000);
        assert!(!matches(&strict, &have), "an explicit maxlen must be the kernel's");
        let mut explicit = want.clone();
        explicit.mcast_port = Some(DEFAULT_PORT);
        assert!(same_request(&want, &explicit), "the default spelled out is no change");
        assert!(!same_request(&want, &strict));
    }

    #[test]
    fn start_plans_starts_keeps_and_refuses_foreign_daemons() {
        let m = d(SyncState::Master, "eth1", 5);
        let b = d(SyncState::Backup, "eth1", 5);
        let none = Record::default();
        assert_eq!(
            plan(&[m.clone(), b.clone()], &none, &[]).unwrap(),
            vec![Step::Start(m.clone()), Step::Start(b.clone())]
        );
        // Ours, as recorded: kept (start is idempotent).
        let (km, kb) = (kernel_of(&m), kernel_of(&b));
        let rec = Record { daemons: vec![owned(&m, &km), owned(&b, &kb)] };
        assert_eq!(
            plan(&[m.clone(), b.clone()], &rec, &[km.clone(), kb.clone()]).unwrap(),
            vec![Step::Keep { have: km.clone(), owned: true }, Step::Keep { have: kb.clone(), owned: true }]
        );
        // A foreign identical daemon is used, not owned.
        assert_eq!(
            plan(std::slice::from_ref(&m), &none, std::slice::from_ref(&km)).unwrap(),
            vec![Step::Keep { have: km.clone(), owned: false }]
        );
        // A foreign daemon with other parameters: refused, nothing planned.
        let mut foreign = kb.clone();
        foreign.syncid = 9;
        match plan(&[m.clone(), b.clone()], &none, &[foreign.clone()]) {
            Err(Error::Generic(e)) => {
                assert!(e.contains("syncid is 9, expected 5") && e.contains("--stop-daemon backup"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        // Our own daemon, parameters changed since: replaced.
        let mut m7 = m.clone();
        m7.syncid = 7;
        assert_eq!(
            plan(&[m7.clone()], &rec, &[km.clone(), kb.clone()]).unwrap(),
            vec![Step::Replace(m7), Step::Stop(SyncState::Backup)]
        );
    }

    #[test]
    fn stop_removes_only_what_it_started() {
        let m = d(SyncState::Master, "eth1", 5);
        let b = d(SyncState::Backup, "eth1", 5);
        let (km, kb) = (kernel_of(&m), kernel_of(&b));
        let rec = Record { daemons: vec![owned(&m, &km)] };
        assert_eq!(
            to_stop(&rec, &[km.clone(), kb.clone()]),
            vec![SyncState::Master],
            "a backup it did not start stays"
        );
        // Someone replaced our master with another: not ours any more.
        let mut other = km.clone();
        other.mcast_ttl = Some(4);
        assert!(to_stop(&rec, &[other]).is_empty());
        // Adopted (not owned): stays.
        let adopted = Record { daemons: vec![Entry { owned: false, ..owned(&m, &km) }] };
        assert!(to_stop(&adopted, std::slice::from_ref(&km)).is_empty());
        // A start cut short (no kernel view yet): the daemon matching the request is ours.
        let cut = Record { daemons: vec![Entry { kernel: None, ..owned(&m, &km) }] };
        assert_eq!(to_stop(&cut, std::slice::from_ref(&km)), vec![SyncState::Master]);
        assert!(to_stop(&Record::default(), &[km]).is_empty());
    }

    #[test]
    fn monitor_verdicts() {
        let m = d(SyncState::Master, "eth1", 5);
        let b = d(SyncState::Backup, "eth1", 5);
        let (km, kb) = (kernel_of(&m), kernel_of(&b));
        let want = [m.clone(), b.clone()];
        let rec = Record { daemons: vec![owned(&m, &km), owned(&b, &kb)] };
        assert_eq!(judge(&want, Some(&rec), &[km.clone(), kb.clone()]), Verdict::Running);
        assert_eq!(judge(&want, None, &[km.clone(), kb.clone()]), Verdict::NotRunning, "not ours without a record");
        assert_eq!(judge(&want, Some(&rec), &[]), Verdict::NotRunning);
        match judge(&want, Some(&rec), std::slice::from_ref(&km)) {
            Verdict::Wrong(e) => assert!(e.contains("backup sync daemon this resource started is gone"), "{e}"),
            other => panic!("{other:?}"),
        }
        let mut changed = kb.clone();
        changed.mcast_ttl = Some(9);
        match judge(&want, Some(&rec), &[km.clone(), changed]) {
            Verdict::Wrong(e) => assert!(e.contains("now runs as backup sync daemon") && e.contains("ttl=9"), "{e}"),
            other => panic!("{other:?}"),
        }
        // Parameters edited since start.
        let mut m6 = m.clone();
        m6.syncid = 6;
        match judge(&[m6], Some(&rec), &[km.clone(), kb.clone()]) {
            Verdict::Wrong(e) => assert!(e.contains("parameters ask for") && e.contains("role no longer asks"), "{e}"),
            other => panic!("{other:?}"),
        }
        // Only one of ours gone and the other replaced by a stranger: still an error, not "not running".
        let mut stranger = kb.clone();
        stranger.syncid = 1;
        assert!(matches!(judge(&want, Some(&rec), &[stranger]), Verdict::Wrong(_)));
    }

    #[test]
    fn records_round_trip() {
        let mut m = d(SyncState::Master, "eth1", 5);
        m.mcast_group = Some("ff02::81".parse().unwrap());
        m.sync_maxlen = Some(2000);
        let r = RecordedDaemon::from(&m);
        assert_eq!(r.daemon(), Some(m.clone()));
        let rec = Record { daemons: vec![owned(&m, &kernel_of(&m))] };
        let text = serde_json::to_string(&rec).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), rec);
    }
}
