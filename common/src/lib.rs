//! lvs-common: everything the lvs-agents binaries share.
//!
//! One concern per module: `ocf` is the resource-agent runtime, `ipvs` the
//! IPVS generic-netlink client, `net` addresses/links/ARP, `probe` health
//! checks, `daemon` the background health processes. Only `ipvs`, `net` and
//! `probe` talk to the kernel or the network.

pub mod agent;
pub mod daemon;
pub mod error;
pub mod ipvs;
pub mod metrics;
pub mod net;
pub mod ocf;
pub mod probe;
pub mod reals;
pub mod status;
pub mod sync;

pub use error::{Error, Result};

/// Runs a future to completion on a single-threaded runtime: agent calls
/// are short and sequential, and a current-thread runtime starts in
/// microseconds where a multi-threaded one spawns workers.
pub fn block_on<F: std::future::Future>(fut: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))?;
    Ok(rt.block_on(fut))
}
