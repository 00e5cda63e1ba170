//! Links, addresses, routes, gratuitous ARP / unsolicited NA, sysctls.
