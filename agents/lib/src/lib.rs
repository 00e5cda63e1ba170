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
