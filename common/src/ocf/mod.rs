//! The OCF resource-agent runtime.
