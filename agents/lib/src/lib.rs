//! The resource agents, one module each: its declaration (`SPEC`, from
//! which meta-data, usage, man page and heartbeat mapping are generated),
//! its configuration checks and its actions. Each agent binary is one
//! line calling its module's `main`; `lvsctl lint` calls [`check`], the
//! same checks `validate-all` runs.

pub mod realservers;
pub mod service;
pub mod sorry;
pub mod sync;
pub mod vip;

use lvs_common::ocf::{AgentSpec, Params};
use lvs_common::Result;

/// One agent as lvsctl sees it: its declaration and its offline checks.
pub struct Agent {
    pub spec: &'static AgentSpec,
    /// What `validate-all` checks, less what needs this node's kernel or
    /// interfaces.
    pub check: fn(&Params) -> Result<()>,
}

/// Every agent, by the name after `ocf:lvs:`.
pub static AGENTS: [Agent; 5] = [
    Agent { spec: &vip::SPEC, check: vip::check },
    Agent { spec: &service::SPEC, check: service::check },
    Agent { spec: &realservers::SPEC, check: realservers::check },
    Agent { spec: &sorry::SPEC, check: sorry::check },
    Agent { spec: &sync::SPEC, check: sync::check },
];

/// The agent `ocf:lvs:<name>`.
pub fn agent(name: &str) -> Option<&'static Agent> {
    AGENTS.iter().find(|a| a.spec.name == name)
}
