//! IPVS generic-netlink client (family "IPVS").
