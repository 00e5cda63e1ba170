//! lvs-common: everything the lvs-agents binaries share.
//!
//! One concern per module: `ocf` is the resource-agent runtime, `ipvs` the
//! IPVS generic-netlink client, `net` addresses/links/ARP, `probe` health
//! checks, `daemon` the background health processes. Only `ipvs`, `net` and
//! `probe` talk to the kernel or the network.

pub mod agent;
pub mod metrics;
pub mod reals;
pub mod status;
pub mod sync;

pub use lvs_daemon as daemon;
pub use lvs_daemon::block_on;
pub use lvs_ipvs as ipvs;
pub use lvs_net as net;
pub use lvs_ocf as ocf;
pub use lvs_ocf::{Error, Result};
pub use lvs_probe as probe;

/// The OCF error, as every module here still uses it.
pub mod error {
    pub use lvs_ocf::{Error, Result};
}
