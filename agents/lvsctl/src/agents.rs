//! The agents as lvsctl sees them: each one's declaration (`SPEC`, from
//! which meta-data, usage, man page and heartbeat mapping are generated)
//! and the checks its `validate-all` runs, called here, not copied.

use lvs_ocf::{AgentSpec, Params, Result};

/// One agent: its declaration and its offline checks.
pub struct Agent {
    pub spec: &'static AgentSpec,
    /// What `validate-all` checks, less what needs this node's kernel or
    /// interfaces.
    pub check: fn(&Params) -> Result<()>,
}

/// Every agent, by the name after `ocf:lvs:`.
pub static AGENTS: [Agent; 5] = [
    Agent { spec: &lvs_vip::SPEC, check: lvs_vip::check },
    Agent { spec: &lvs_service::SPEC, check: lvs_service::check },
    Agent { spec: &lvs_realservers::SPEC, check: lvs_realservers::check },
    Agent { spec: &lvs_sorry::SPEC, check: lvs_sorry::check },
    Agent { spec: &lvs_sync::SPEC, check: lvs_sync::check },
];

/// The agent `ocf:lvs:<name>`.
pub fn agent(name: &str) -> Option<&'static Agent> {
    AGENTS.iter().find(|a| a.spec.name == name)
}
