//! What an agent declares about itself: parameters, actions, heartbeat form.
//!
//! Everything user-facing (meta-data, usage, man page, heartbeat mapping,
//! type checks) is derived from one `AgentSpec`, so they cannot disagree.

use crate::Result;

/// The value type of a parameter.
#[derive(Debug, Clone, Copy)]
pub enum ParamKind {
    String,
    /// Whole number within an inclusive range.
    Integer {
        min: i64,
        max: i64,
    },
    /// `ocf_is_true` words: yes/true/1/on, no/false/0/off.
    Boolean,
    /// One of a fixed set of words. Advertised as `string` in meta-data
    /// because the OCF 1.0 DTD that ocf-tester validates against lacks
    /// `select`; the choices are listed in the long description.
    Select(&'static [&'static str]),
}

#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: ParamKind,
    pub required: bool,
    pub unique: bool,
    pub default: Option<&'static str>,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
}

impl ParamSpec {
    const fn new(name: &'static str, kind: ParamKind, shortdesc: &'static str) -> Self {
        ParamSpec { name, kind, required: false, unique: false, default: None, shortdesc, longdesc: "" }
    }
    pub const fn string(name: &'static str, shortdesc: &'static str) -> Self {
        Self::new(name, ParamKind::String, shortdesc)
    }
    pub const fn integer(name: &'static str, min: i64, max: i64, shortdesc: &'static str) -> Self {
        Self::new(name, ParamKind::Integer { min, max }, shortdesc)
    }
    pub const fn boolean(name: &'static str, shortdesc: &'static str) -> Self {
        Self::new(name, ParamKind::Boolean, shortdesc)
    }
    pub const fn select(name: &'static str, choices: &'static [&'static str], shortdesc: &'static str) -> Self {
        Self::new(name, ParamKind::Select(choices), shortdesc)
    }
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub const fn unique(mut self) -> Self {
        self.unique = true;
        self
    }
    pub const fn default(mut self, value: &'static str) -> Self {
        self.default = Some(value);
        self
    }
    pub const fn long(mut self, text: &'static str) -> Self {
        self.longdesc = text;
        self
    }

    /// The type word meta-data advertises.
    pub fn content_type(&self) -> &'static str {
        match self.kind {
            ParamKind::String | ParamKind::Select(_) => "string",
            ParamKind::Integer { .. } => "integer",
            ParamKind::Boolean => "boolean",
        }
    }
}

/// An action as advertised in meta-data.
#[derive(Debug, Clone, Copy)]
pub struct ActionSpec {
    pub name: &'static str,
    pub timeout_s: u32,
    pub interval_s: Option<u32>,
    pub depth: Option<u32>,
}

impl ActionSpec {
    pub const fn new(name: &'static str, timeout_s: u32) -> Self {
        ActionSpec { name, timeout_s, interval_s: None, depth: None }
    }
    pub const fn every(mut self, interval_s: u32) -> Self {
        self.interval_s = Some(interval_s);
        self
    }
    pub const fn depth(mut self, depth: u32) -> Self {
        self.depth = Some(depth);
        self
    }
}

/// Maps heartbeat v1's positional arguments (`resource.d/name a b start`,
/// where haresources said `name::a::b`) to parameter assignments.
pub type PositionalMap = fn(&[String]) -> Result<Vec<(&'static str, String)>>;

#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    /// How the positional form reads, e.g. `ip[/prefix[/nic[/broadcast]]]`.
    pub usage: &'static str,
    pub map: PositionalMap,
}

#[derive(Debug, Clone, Copy)]
pub struct AgentSpec {
    /// OCF type name, e.g. `vip` (provider is always `lvs`).
    pub name: &'static str,
    pub version: &'static str,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
    pub params: &'static [ParamSpec],
    pub actions: &'static [ActionSpec],
    pub heartbeat: Heartbeat,
}

impl AgentSpec {
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Default timeout of an action, from the declaration.
    pub fn action_timeout_s(&self, name: &str) -> Option<u32> {
        self.actions.iter().find(|a| a.name == name).map(|a| a.timeout_s)
    }

    /// The binary name, e.g. `lvs-vip`.
    pub fn binary(&self) -> String {
        format!("lvs-{}", self.name)
    }
}

/// The actions every lvs agent implements, with timeouts suitable for
/// agents that finish in milliseconds; agents override where they wait.
pub const STANDARD_ACTIONS: &[ActionSpec] = &[
    ActionSpec::new("start", 20),
    ActionSpec::new("stop", 20),
    ActionSpec::new("monitor", 20).every(10),
    ActionSpec::new("monitor", 20).every(30).depth(10),
    ActionSpec::new("reload", 20),
    ActionSpec::new("validate-all", 20),
    ActionSpec::new("meta-data", 5),
];

/// Positional mapping for agents whose heartbeat arguments are simply
/// their parameters in a fixed order (`lvs-service tcp:1.2.3.4:80::wrr`).
pub fn positional_in_order(names: &'static [&'static str], args: &[String]) -> Result<Vec<(&'static str, String)>> {
    if args.len() > names.len() {
        return Err(crate::Error::Args(format!(
            "too many positional arguments: expected at most {} ({})",
            names.len(),
            names.join("::")
        )));
    }
    Ok(names.iter().zip(args).filter(|(_, v)| !v.is_empty()).map(|(n, v)| (*n, v.clone())).collect())
}
