//! Fixtures shared by the integration tests: network namespaces, veth pairs, agent runners.
