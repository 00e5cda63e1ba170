//! Fixtures shared by the integration tests: network namespaces, veth pairs,
//! packet capture, and running our agents the way a cluster manager does.

pub mod agent;
pub mod cluster;
pub mod fake;
pub mod group;
pub mod inproc;
pub mod sniff;
pub mod topo;
