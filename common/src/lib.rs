//! lvs-common: everything the lvs-agents binaries share.
//!
//! One concern per module: `ocf` is the resource-agent runtime, `ipvs` the
//! IPVS generic-netlink client, `net` addresses/links/ARP, `probe` health
//! checks, `daemon` the background health processes. Only `ipvs`, `net` and
//! `probe` talk to the kernel or the network.

pub mod error;
pub mod ipvs;
pub mod net;
pub mod ocf;

pub use error::{Error, Result};
