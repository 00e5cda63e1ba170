//! The OCF resource-agent runtime.
//!
//! An agent hands [`run`] its declaration and one function that performs
//! start/stop/monitor/reload/validate-all on typed parameters. The runtime
//! does everything the OCF API and heartbeat v1 ask of the process around
//! that: reading the action and parameters, meta-data, usage, logging,
//! exit reasons and exit codes.

pub mod error;
pub mod exit;
pub mod log;
pub mod man;
pub mod metadata;
pub mod params;
pub mod spec;

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

pub use exit::ExitCode;
pub use params::Params;
pub use spec::{ActionSpec, AgentSpec, Heartbeat, ParamKind, ParamSpec, STANDARD_ACTIONS};

pub use error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Monitor,
    Reload,
    ValidateAll,
}

impl Action {
    fn parse(word: &str) -> Option<Action> {
        Some(match word {
            "start" => Action::Start,
            "stop" => Action::Stop,
            // heartbeat v1 and LSB say status; OCF says monitor.
            "monitor" | "status" => Action::Monitor,
            "reload" | "reload-agent" => Action::Reload,
            "validate-all" => Action::ValidateAll,
            _ => return None,
        })
    }
}

/// What an action found: for monitor, whether the resource runs; other
/// actions return `Running` on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Running,
    NotRunning,
}

/// Everything an agent needs to perform one action.
#[derive(Debug)]
pub struct Context {
    pub action: Action,
    pub params: Params,
    /// `OCF_RESOURCE_INSTANCE`, or the positional arguments under heartbeat.
    pub instance: String,
    /// Recurring-monitor interval; zero for probes and other actions.
    pub interval: Duration,
    /// How long the cluster manager gives this action.
    pub timeout: Duration,
    /// `OCF_CHECK_LEVEL` (0, or 10/20 for deeper monitors).
    pub check_level: u32,
    /// Called by heartbeat v1 with positional arguments.
    pub heartbeat: bool,
}

impl Context {
    /// A probe is a one-off monitor the cluster manager runs to learn state.
    pub fn is_probe(&self) -> bool {
        self.action == Action::Monitor && self.interval.is_zero()
    }
}

/// Runs one agent call in this process and returns its exit code.
pub fn run<F>(spec: &AgentSpec, handler: F) -> std::process::ExitCode
where
    F: FnOnce(&Context) -> Result<Outcome>,
{
    run_with(spec, handler, None)
}

/// One action at a time per resource instance, for agents that keep a
/// daemon (two starts must not run two daemons, nor a start race a
/// stop). The daemon layer provides it; the runtime only calls it.
pub trait ActionLock {
    /// Waits at most `wait` for the instance's lock, held until the
    /// returned guard drops (`None`: nothing to hold).
    fn lock(&self, agent: &str, instance: &str, wait: Duration) -> Result<Option<Box<dyn std::any::Any>>>;
    /// After a stop that succeeded under the lock: its file goes.
    fn remove(&self, agent: &str, instance: &str);
}

/// [`run`], with actions serialised by `lock` when given.
pub fn run_with<F>(spec: &AgentSpec, handler: F, lock: Option<&dyn ActionLock>) -> std::process::ExitCode
where
    F: FnOnce(&Context) -> Result<Outcome>,
{
    // args_os/vars_os: args()/vars() panic on a non-UTF-8 value, even in a
    // variable that has nothing to do with us, and stop must never abort.
    let args: Vec<OsString> = std::env::args_os().collect();
    let input = Input::from_os(&args, std::env::vars_os());
    let code = execute_input(spec, &input, handler, lock, &mut std::io::stdout().lock(), &mut std::io::stderr().lock());
    std::process::ExitCode::from(code)
}

/// Arguments and environment as text. What is not UTF-8 is remembered,
/// not fatal: it is a configuration error of that parameter or argument
/// only, and stop goes on without it.
#[derive(Debug, Default)]
struct Input {
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Indices into `args` that were not UTF-8 (kept there lossily).
    bad_args: Vec<usize>,
    /// `OCF_RESKEY_<name>` variables whose value was not UTF-8.
    bad_params: Vec<String>,
}

impl Input {
    fn from_os(args: &[OsString], vars: impl IntoIterator<Item = (OsString, OsString)>) -> Input {
        let mut input = Input::default();
        for (i, a) in args.iter().enumerate() {
            if a.to_str().is_none() {
                input.bad_args.push(i);
            }
            input.args.push(a.to_string_lossy().into_owned());
        }
        for (k, v) in vars {
            // A variable whose name is not UTF-8 cannot be one of ours.
            let Ok(k) = k.into_string() else { continue };
            match v.into_string() {
                Ok(v) => input.env.push((k, v)),
                Err(_) => {
                    if let Some(name) = k.strip_prefix("OCF_RESKEY_") {
                        input.bad_params.push(name.to_string());
                    }
                }
            }
        }
        input
    }
}

/// [`run`] with its inputs and outputs passed in, for tests.
pub fn execute<F>(
    spec: &AgentSpec,
    args: &[String],
    env: &[(String, String)],
    handler: F,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8
where
    F: FnOnce(&Context) -> Result<Outcome>,
{
    let input = Input { args: args.to_vec(), env: env.to_vec(), ..Input::default() };
    execute_input(spec, &input, handler, None, out, err)
}

fn execute_input<F>(
    spec: &AgentSpec,
    input: &Input,
    handler: F,
    serialise: Option<&dyn ActionLock>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8
where
    F: FnOnce(&Context) -> Result<Outcome>,
{
    let (args, env) = (&input.args, &input.env);
    let getenv = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let Some(word) = args.get(1..).and_then(|a| a.last()) else {
        let _ = err.write_all(usage(spec).as_bytes());
        return ExitCode::ErrArgs as u8;
    };
    if input.bad_args.contains(&(args.len() - 1)) {
        let _ = writeln!(err, "the action is not valid UTF-8");
        let _ = err.write_all(usage(spec).as_bytes());
        return ExitCode::ErrUnimplemented as u8;
    }
    match word.as_str() {
        "meta-data" => {
            return match metadata::render(spec) {
                Ok(xml) => {
                    let _ = out.write_all(xml.as_bytes());
                    ExitCode::Success as u8
                }
                Err(e) => {
                    let _ = writeln!(err, "{e}");
                    ExitCode::ErrGeneric as u8
                }
            };
        }
        "usage" | "help" | "--help" | "-h" => {
            let _ = out.write_all(usage(spec).as_bytes());
            return ExitCode::Success as u8;
        }
        "--man" => {
            let _ = out.write_all(man::render(spec).as_bytes());
            return ExitCode::Success as u8;
        }
        "--version" | "version" => {
            let _ = writeln!(out, "{} {}", spec.binary(), env!("CARGO_PKG_VERSION"));
            return ExitCode::Success as u8;
        }
        _ => {}
    }
    let positional = &args[1..args.len() - 1];
    let heartbeat = !positional.is_empty();
    let instance = if heartbeat { positional.join("::") } else { getenv("OCF_RESOURCE_INSTANCE").unwrap_or_default() };
    log::init(spec.name, &instance, |k| getenv(k));

    let Some(action) = Action::parse(word) else {
        tracing::error!("action '{word}' is not implemented");
        let _ = err.write_all(usage(spec).as_bytes());
        return ExitCode::ErrUnimplemented as u8;
    };
    let ms = |k: &str| getenv(k).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_millis);
    let default_timeout = spec.action_timeout_s(if action == Action::Monitor { "monitor" } else { word }).unwrap_or(20);
    let raw: Result<Vec<(String, String)>> = if heartbeat {
        (spec.heartbeat.map)(positional).map(|v| v.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    } else {
        Ok(Params::from_env_vars(env.iter().cloned()))
    };
    let raw = raw.and_then(|raw| {
        // Stop goes on without what is not UTF-8 (as with any invalid
        // value); every other action refuses it.
        let bad_arg = input.bad_args.iter().find(|i| (1..args.len() - 1).contains(*i));
        let bad_param = input.bad_params.iter().find(|n| spec.param(n).is_some());
        let problem = match (bad_arg, bad_param) {
            (Some(i), _) if heartbeat => Some(format!("argument {i} is not valid UTF-8")),
            (_, Some(name)) if !heartbeat => Some(format!("parameter '{name}': the value is not valid UTF-8")),
            _ => None,
        };
        match problem {
            Some(p) if action == Action::Stop => tracing::warn!("{p}; left out"),
            Some(p) => return Err(Error::Configured(p)),
            None => {}
        }
        Ok(raw)
    });
    let parsed = raw.and_then(|raw| {
        if action == Action::Stop {
            // Stop cleans up whatever runs, even if the parameters no longer
            // check out (they did at start, or it could not have started).
            Ok(Params::parse_lenient(spec, &raw))
        } else {
            Params::parse(spec, &raw)
        }
    });
    let result = match parsed {
        Err(e) => Err(e),
        Ok((params, unknown)) => {
            for name in unknown {
                tracing::info!("ignoring unknown parameter '{name}'");
            }
            let ctx = Context {
                action,
                params,
                instance,
                interval: ms("OCF_RESKEY_CRM_meta_interval").unwrap_or_default(),
                timeout: ms("OCF_RESKEY_CRM_meta_timeout").unwrap_or(Duration::from_secs(default_timeout.into())),
                check_level: getenv("OCF_CHECK_LEVEL").and_then(|v| v.trim().parse().ok()).unwrap_or(0),
                heartbeat,
            };
            tracing::debug!("{word} with {:?}", ctx.params);
            // One action at a time per instance: two starts must not run
            // two daemons, nor a start race a stop. Waiting counts against
            // the action's timeout.
            let lock = match serialise {
                Some(l) if action != Action::ValidateAll => {
                    l.lock(spec.name, &ctx.instance, ctx.timeout.saturating_sub(Duration::from_secs(1)))
                }
                _ => Ok(None),
            };
            let result = lock.and_then(|held| {
                let r = handler(&ctx);
                let stopped = r.is_ok() || matches!(r, Err(Error::Configured(_)));
                if let (Action::Stop, true, Some(l), Some(_)) = (action, stopped, serialise, &held) {
                    l.remove(spec.name, &ctx.instance);
                }
                r
            });
            match result {
                // Parameters an agent cannot make sense of name nothing it
                // could have started. Failing here would get the node fenced
                // for a configuration mistake.
                Err(Error::Configured(e)) if action == Action::Stop => {
                    tracing::warn!("stop with invalid parameters ({e}): nothing can be running");
                    Ok(Outcome::NotRunning)
                }
                other => other,
            }
        }
    };
    finish(action, heartbeat, result, &getenv, out, err)
}

fn finish(
    action: Action,
    heartbeat: bool,
    result: Result<Outcome>,
    getenv: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    // heartbeat's ResourceManager reads status from text, not exit codes:
    // "running" means ours, anything without "running"/"OK" means not.
    if heartbeat && action == Action::Monitor {
        let running = matches!(result, Ok(Outcome::Running));
        let _ = writeln!(out, "{}", if running { "running" } else { "stopped" });
    }
    match result {
        Ok(Outcome::Running) => ExitCode::Success as u8,
        Ok(Outcome::NotRunning) if action == Action::Monitor => {
            // LSB status says 3 for stopped; OCF monitor says 7.
            if heartbeat {
                3
            } else {
                ExitCode::NotRunning as u8
            }
        }
        Ok(Outcome::NotRunning) => ExitCode::Success as u8,
        Err(e) => {
            tracing::error!("{e}");
            let prefix = getenv("OCF_EXIT_REASON_PREFIX").unwrap_or_else(|| "ocf-exit-reason:".to_string());
            // One line: Pacemaker takes the reason from it.
            let _ = writeln!(err, "{prefix}{}", log::one_line(&e.to_string()));
            ExitCode::from(&e) as u8
        }
    }
}

/// The usage text shown for `--help`, `usage` and bad invocations.
pub fn usage(spec: &AgentSpec) -> String {
    let bin = spec.binary();
    let mut s = format!(
        "usage: {bin} {{start|stop|monitor|reload|validate-all|meta-data|usage}}\n\
         \x20      {bin} {pos} {{start|stop|status}}   (heartbeat resource.d form)\n\n\
         ocf:lvs:{name} - {short}\n\n\
         Parameters are read from OCF_RESKEY_<name>:\n",
        pos = spec.heartbeat.usage,
        name = spec.name,
        short = spec.shortdesc,
    );
    for p in spec.params {
        let mut tags = vec![p.content_type().to_string()];
        if p.required {
            tags.push("required".into());
        }
        if let Some(d) = p.default {
            tags.push(format!("default {d}"));
        }
        if let ParamKind::Select(c) = p.kind {
            tags.push(c.join("|"));
        }
        s.push_str(&format!("  {:<20} {} [{}]\n", p.name, p.shortdesc, tags.join(", ")));
    }
    s
}

/// Convenience for handlers: an error unless the action is one of `ok`.
pub fn unsupported(action: Action) -> Error {
    Error::Unimplemented(format!("{action:?}").to_lowercase())
}

#[cfg(test)]
mod tests;
