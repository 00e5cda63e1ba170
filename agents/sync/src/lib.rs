//! `ocf:lvs:sync` — the kernel's IPVS connection-synchronisation daemons
//! (IPVS_CMD_NEW_DAEMON / DEL_DAEMON / GET_DAEMON). It owns the daemons it
//! started and nothing else: a daemon started by hand (ipvsadm
//! --start-daemon) or by another resource is never stopped here.
//!
//! The declaration, the parameter checks and the decisions (start plan,
//! monitor verdict, what stop removes) live in [`config`], where
//! `lvsctl lint` and `lvsctl status` use the same code.

#![forbid(unsafe_code)]

pub use crate::config::SPEC;
use lvs_daemon::Instance;
use lvs_ipvs::{Connector, Ipvs, SyncDaemon, SyncState};
use lvs_ocf::{self as ocf, Action, Context, Outcome};
pub mod config;
use crate::config::{self as sync, describe, Config, Entry, Record, RecordedDaemon, Role, Step, Verdict};
use lvs_net as net;
use lvs_ocf::Error;
use lvs_ocf::Result;

/// The checks validate-all makes that need no kernel: all but the
/// interface's existence.
pub fn check(p: &ocf::Params) -> Result<()> {
    Config::from_params(p).map(drop)
}

/// The agent's binary: every action, as Pacemaker and heartbeat call it.
pub fn main() -> std::process::ExitCode {
    ocf::run(&SPEC, |ctx| act(ctx, &Instance::new(SPEC.name, base_name(&ctx.instance)), &Connector::Kernel))
}

/// One action on `kernel`'s sync daemons, with `instance`'s record (one
/// per resource and node: a clone's `:N` left out of its name).
pub fn act(ctx: &Context, instance: &Instance, kernel: &Connector) -> Result<Outcome> {
    if ctx.action == Action::Stop {
        // The record alone: parameters edited into anything (or nothing)
        // must not leave a daemon of ours running.
        return stop(instance, kernel);
    }
    let cfg = Config::from_params(&ctx.params)?;
    match ctx.action {
        Action::ValidateAll => {
            interface_exists(&cfg)?;
            Ok(Outcome::Running)
        }
        Action::Start => {
            interface_exists(&cfg)?;
            converge(&cfg, instance, false, kernel)
        }
        Action::Reload => converge(&cfg, instance, true, kernel),
        Action::Monitor => monitor(&cfg, instance, kernel),
        Action::Stop => stop(instance, kernel),
    }
}

/// The instance without a clone's `:N`: a node runs one master and one
/// backup daemon at most, so one record per resource and node, whichever
/// instance number the cluster manager gives a clone's copy on this node
/// from one action to the next.
fn base_name(instance: &str) -> &str {
    match instance.rsplit_once(':') {
        Some((base, n))
            if !base.is_empty() && !base.ends_with(':') && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            base
        }
        _ => instance,
    }
}

/// The kernel answers ENODEV for an interface it does not know; say so
/// before asking it, as a configuration error (like vip's `nic`).
fn interface_exists(cfg: &Config) -> Result<()> {
    let Some(ifn) = cfg.daemons.first().map(|d| d.mcast_ifn.as_str()) else { return Ok(()) };
    match nix::net::if_::if_nametoindex(ifn) {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::configured(format!("interface {ifn} does not exist on this node"))),
    }
}

fn record(instance: &Instance) -> Option<Record> {
    instance.load_record::<Record>()
}

fn sysctl(name: &str) -> String {
    net::read_sysctl(&format!("net.ipv4.vs.{name}")).unwrap_or_else(|_| "?".into())
}

/// Logs the sysctls that decide what is synced and how often, and refuses
/// the one setting that makes a backup daemon switch the director off.
fn check_sysctls(cfg: &Config) -> Result<()> {
    let names = ["sync_version", "sync_threshold", "sync_refresh_period", "sync_retries", "sync_persist_mode"];
    let values: Vec<String> = names.iter().map(|n| format!("{n}={}", sysctl(n).replace('\t', " "))).collect();
    tracing::info!("net.ipv4.vs: {}", values.join(", "));
    if cfg.role == Role::Both && sysctl("backup_only") == "1" {
        return Err(Error::generic(
            "net.ipv4.vs.backup_only=1 switches IPVS off while a backup sync daemon runs, and role=both \
             runs one on the active director too: set net.ipv4.vs.backup_only=0, or run role=master \
             where the service runs and role=backup elsewhere",
        ));
    }
    Ok(())
}

/// Start (and reload): makes the kernel run the daemons the parameters ask
/// for, keeping those already right, starting the missing ones, replacing
/// this resource's own where parameters changed, and refusing, before
/// touching anything, when a daemon it did not start holds a state with
/// other parameters. A reload of a resource that is not up starts nothing.
fn converge(cfg: &Config, instance: &Instance, reload: bool, kernel: &Connector) -> Result<Outcome> {
    let mut rec = record(instance).unwrap_or_default();
    if reload && (rec.daemons.is_empty() || !kernel.loaded()) {
        tracing::info!("not running; nothing to reload");
        return Ok(Outcome::NotRunning);
    }
    let ipvs = kernel.connect()?;
    let ipvs = &*ipvs;
    check_sysctls(cfg)?;
    let kernel = ipvs.daemons()?;
    let steps = sync::plan(&cfg.daemons, &rec, &kernel)?;
    let want = |state: SyncState| cfg.daemons.iter().find(|d| d.state == state);
    for step in steps {
        match step {
            Step::Keep { have, owned } => {
                if !owned {
                    tracing::warn!(
                        "using the {} that was already running, not started by this resource: stop will leave it",
                        describe(&have)
                    );
                } else {
                    tracing::info!("{} is already running", describe(&have));
                }
                let requested = want(have.state).unwrap_or(&have);
                rec.put(Entry {
                    requested: RecordedDaemon::from(requested),
                    kernel: Some(RecordedDaemon::from(&have)),
                    owned,
                });
                instance.save_record(&rec);
            }
            Step::Start(w) => start_one(ipvs, instance, &mut rec, &w)?,
            Step::Replace(w) => {
                stop_one(ipvs, w.state)?;
                rec.remove(w.state);
                instance.save_record(&rec);
                tracing::info!("the {} sync daemon's parameters changed: starting it again", w.state);
                start_one(ipvs, instance, &mut rec, &w)?;
            }
            Step::Stop(state) => {
                stop_one(ipvs, state)?;
                rec.remove(state);
                instance.save_record(&rec);
            }
        }
    }
    Ok(Outcome::Running)
}

/// Starts one daemon, recording it first: a start cut short still leaves
/// stop a record to work from.
fn start_one(ipvs: &dyn Ipvs, instance: &Instance, rec: &mut Record, w: &SyncDaemon) -> Result<()> {
    rec.put(Entry { requested: RecordedDaemon::from(w), kernel: None, owned: true });
    instance.save_record(rec);
    if let Err(e) = ipvs.start_daemon(w) {
        rec.remove(w.state);
        instance.save_record(rec);
        return Err(match e.errno() {
            Some(nix::libc::ENODEV) => {
                Error::configured(format!("interface {} does not exist on this node", w.mcast_ifn))
            }
            Some(nix::libc::EEXIST) => Error::generic(format!(
                "{e}: another {} sync daemon was started meanwhile; it is not this resource's and stays",
                w.state
            )),
            _ => e.into(),
        });
    }
    let have = ipvs.daemons()?.into_iter().find(|d| d.state == w.state);
    match &have {
        Some(k) => tracing::info!("started the {}", describe(k)),
        None => tracing::warn!("the kernel does not list the {} sync daemon just started", w.state),
    }
    rec.put(Entry { requested: RecordedDaemon::from(w), kernel: have.as_ref().map(RecordedDaemon::from), owned: true });
    instance.save_record(rec);
    Ok(())
}

fn stop_one(ipvs: &dyn Ipvs, state: SyncState) -> Result<()> {
    match ipvs.stop_daemon(state) {
        Ok(()) => tracing::info!("stopped the {state} sync daemon"),
        Err(e) if e.is_not_found() => tracing::info!("the {state} sync daemon is not running"),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Stops the daemons this resource started, as recorded, and no other.
fn stop(instance: &Instance, kernel: &Connector) -> Result<Outcome> {
    let Some(rec) = record(instance) else {
        tracing::info!("nothing recorded: no sync daemon of this resource runs");
        return Ok(Outcome::NotRunning);
    };
    if !kernel.loaded() {
        instance.forget_record();
        return Ok(Outcome::NotRunning);
    }
    let ipvs = kernel.connect()?;
    let ipvs = &*ipvs;
    let kernel = ipvs.daemons()?;
    let mine = sync::to_stop(&rec, &kernel);
    for e in &rec.daemons {
        let Some(state) = e.state() else { continue };
        if mine.contains(&state) {
            continue;
        }
        match kernel.iter().find(|k| k.state == state) {
            Some(k) if !e.owned => tracing::info!("leaving the {} it found running", describe(k)),
            Some(k) => tracing::warn!("leaving the {}: not the daemon this resource started", describe(k)),
            None => tracing::info!("the {state} sync daemon is already gone"),
        }
    }
    for state in mine {
        stop_one(ipvs, state)?;
    }
    instance.forget_record();
    Ok(Outcome::NotRunning)
}

fn monitor(cfg: &Config, instance: &Instance, kernel: &Connector) -> Result<Outcome> {
    if !kernel.loaded() {
        return Ok(Outcome::NotRunning);
    }
    let Some(rec) = record(instance).filter(|r| !r.daemons.is_empty()) else { return Ok(Outcome::NotRunning) };
    let kernel = kernel.connect()?.daemons()?;
    match sync::judge(&cfg.daemons, Some(&rec), &kernel) {
        Verdict::Running => Ok(Outcome::Running),
        Verdict::NotRunning => Ok(Outcome::NotRunning),
        Verdict::Wrong(why) => Err(Error::generic(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(action: &str, params: &[(&str, &str)]) -> (u8, String) {
        let args = vec!["lvs-sync".to_string(), action.to_string()];
        let mut env: Vec<(String, String)> = vec![
            ("OCF_RESOURCE_INSTANCE".into(), format!("unit-test-{}", std::process::id())),
            ("HA_LOGFACILITY".into(), "none".into()),
        ];
        env.extend(params.iter().map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.to_string())));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let handle = |ctx: &Context| act(ctx, &Instance::new(SPEC.name, base_name(&ctx.instance)), &Connector::Kernel);
        let code = ocf::execute(&SPEC, &args, &env, handle, &mut out, &mut err);
        (code, String::from_utf8_lossy(&err).into_owned())
    }

    #[test]
    fn bad_input_is_a_configuration_error_with_a_reason() {
        for params in [
            vec![],
            vec![("interface", "lo"), ("syncid", "300")],
            vec![("interface", "lo"), ("role", "primary")],
            vec![("interface", "0123456789abcdef")],
            vec![("interface", "lo"), ("mcast_group", "10.0.0.1")],
            vec![("interface", "no-such-if-9")],
        ] {
            let (code, err) = call("validate-all", &params);
            assert_eq!(code, 6, "{params:?}: {err}");
            assert!(err.contains("ocf-exit-reason:"), "{params:?}: {err}");
        }
        assert_eq!(call("validate-all", &[("interface", "lo")]).0, 0);
    }

    #[test]
    fn a_clones_instance_number_does_not_split_the_record() {
        assert_eq!(base_name("sync:0"), "sync");
        assert_eq!(base_name("sync:12"), "sync");
        assert_eq!(base_name("sync"), "sync");
        assert_eq!(base_name("a:b"), "a:b");
        assert_eq!(base_name(":0"), ":0");
        assert_eq!(base_name("eth1::5"), "eth1::5");
    }

    #[test]
    fn stop_and_monitor_without_a_record_touch_nothing() {
        // No record for this instance: nothing of it can run, whatever the
        // parameters (none at all, here).
        assert_eq!(call("stop", &[]).0, 0);
        assert_eq!(call("monitor", &[("interface", "lo")]).0, 7);
    }
}
