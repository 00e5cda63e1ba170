//! The OCF actions of an agent that keeps a daemon (sorry, realservers),
//! once: stop ends the daemon before removing what the resource put into
//! the kernel, start checks what it can and waits for the daemon's first
//! round, reload hands the daemon new parameters, monitor asks whether
//! it lives and then what the agent knows more.

use std::time::Duration;

use lvs_ocf::{Action, Context, Outcome, Params, Result};

use crate::{Instance, Supervisor};

/// What differs between daemon agents.
pub trait DaemonAgent {
    /// The parameters, checked for meaning.
    type Config;

    fn config(&self, p: &Params) -> Result<Self::Config>;

    /// How often the daemon writes its state (monitor's freshness bound).
    fn interval(&self, cfg: &Self::Config) -> Duration;

    /// Before the daemon starts: what start can check and record itself.
    fn before_start(&self, cfg: &Self::Config, instance: &Instance) -> Result<()>;

    /// Before the daemon gets new parameters.
    fn before_reload(&self, _cfg: &Self::Config, _instance: &Instance) {}

    /// After the daemon has gone: remove what this resource put into the
    /// kernel, from the record and `ran_with` (the parameters of the
    /// daemon's last start or reload) as much as from what `p` says now.
    fn after_stop(&self, p: &Params, ran_with: Option<&Params>, instance: &Instance) -> Result<()>;

    /// Monitor past a live, fresh daemon.
    fn monitor(&self, _cfg: &Self::Config, _ctx: &Context, _instance: &Instance) -> Result<Outcome> {
        Ok(Outcome::Running)
    }
}

/// One action of daemon agent `agent` (declared by `spec`).
pub fn act<A: DaemonAgent>(
    agent: &A,
    spec: &lvs_ocf::AgentSpec,
    ctx: &Context,
    instance: &Instance,
) -> Result<Outcome> {
    if ctx.action == Action::Stop {
        // What the daemon ran with, read before stopping it removes the
        // file; then the daemon goes first, whatever the parameters say now.
        let ran_with = instance.read_params(spec).ok();
        let sup = Supervisor { instance, name: &ctx.instance, updated_every: Duration::ZERO };
        sup.stop(ctx.timeout)?;
        agent.after_stop(&ctx.params, ran_with.as_ref(), instance)?;
        return Ok(Outcome::NotRunning);
    }
    let cfg = agent.config(&ctx.params)?;
    let sup = Supervisor { instance, name: &ctx.instance, updated_every: agent.interval(&cfg) };
    match ctx.action {
        Action::ValidateAll => Ok(Outcome::Running),
        Action::Start => {
            agent.before_start(&cfg, instance)?;
            sup.start(&ctx.params, ctx.timeout.saturating_sub(Duration::from_secs(2)))?;
            Ok(Outcome::Running)
        }
        Action::Reload => {
            agent.before_reload(&cfg, instance);
            sup.reload(&ctx.params)
        }
        Action::Monitor => match sup.monitor()? {
            Outcome::Running => agent.monitor(&cfg, ctx, instance),
            other => Ok(other),
        },
        Action::Stop => Ok(Outcome::NotRunning),
    }
}
