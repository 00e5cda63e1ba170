//! "Make the kernel look like this, touching only mine": the operations
//! that bring the destinations a caller owns to a desired state.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::model::Destination;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestOp {
    Add(Destination),
    Edit(Destination),
    Delete(SocketAddr),
}

impl DestOp {
    pub fn endpoint(&self) -> SocketAddr {
        match self {
            DestOp::Add(d) | DestOp::Edit(d) => d.endpoint(),
            DestOp::Delete(ep) => *ep,
        }
    }
}

/// Scope and flow label are not part of a destination's identity.
fn plain(ep: &SocketAddr) -> SocketAddr {
    SocketAddr::new(ep.ip(), ep.port())
}

/// Computes what turns `current` (the kernel's destinations of one service)
/// into one where the endpoints in `owned` are exactly `desired`.
/// Destinations outside `owned` are never added, changed or deleted, so
/// agents sharing a service cannot undo each other.
///
/// Order: additions, then changes, then deletions, so a service never
/// passes through an empty pool while its members are replaced.
pub fn reconcile(
    current: &[Destination],
    owned: &BTreeSet<SocketAddr>,
    desired: &[Destination],
) -> Result<Vec<DestOp>> {
    let owned: BTreeSet<SocketAddr> = owned.iter().map(plain).collect();
    let mut wanted: BTreeMap<SocketAddr, &Destination> = BTreeMap::new();
    for d in desired {
        let ep = d.endpoint();
        if !owned.contains(&ep) {
            return Err(Error::invalid(format!("destination {ep} is wanted but not owned by this caller")));
        }
        if wanted.insert(ep, d).is_some() {
            return Err(Error::invalid(format!("destination {ep} is listed more than once")));
        }
    }
    let now: BTreeMap<SocketAddr, &Destination> = current.iter().map(|d| (d.endpoint(), d)).collect();

    let mut adds = Vec::new();
    let mut edits = Vec::new();
    for d in desired {
        match now.get(&d.endpoint()) {
            None => adds.push(DestOp::Add(d.clone())),
            Some(c) if !c.same_settings(d) => edits.push(DestOp::Edit(d.clone())),
            Some(_) => {}
        }
    }
    let deletes = current
        .iter()
        .map(Destination::endpoint)
        .filter(|ep| owned.contains(ep) && !wanted.contains_key(ep))
        .map(DestOp::Delete);

    Ok(adds.into_iter().chain(edits).chain(deletes).collect())
}
