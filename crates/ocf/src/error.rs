//! The agents' error: what every layer's own error is converted into,
//! once.
//!
//! Each variant says which OCF exit code it becomes; the mapping lives in
//! `ocf::exit` and nowhere else.

use std::io;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The parameters are wrong (OCF_ERR_CONFIGURED): fixing the CIB fixes it.
    #[error("{0}")]
    Configured(String),
    /// The action or its arguments are malformed (OCF_ERR_ARGS).
    #[error("{0}")]
    Args(String),
    /// A kernel feature, module or tool is missing (OCF_ERR_INSTALLED).
    #[error("{0}")]
    Installed(String),
    /// Not allowed: usually not root (OCF_ERR_PERM).
    #[error("{0}")]
    Perm(String),
    /// The action is not implemented by this agent (OCF_ERR_UNIMPLEMENTED).
    #[error("action '{0}' is not implemented")]
    Unimplemented(String),
    /// Anything that went wrong at run time (OCF_ERR_GENERIC).
    #[error("{0}")]
    Generic(String),
    /// An I/O error, with what we were doing when it happened.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A netlink request the kernel refused; `errno` is the kernel's answer.
    #[error("{context}: {}", nix::errno::Errno::from_raw(*.errno))]
    Netlink { context: String, errno: i32 },
}

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    pub fn configured(msg: impl Into<String>) -> Self {
        Error::Configured(msg.into())
    }

    pub fn generic(msg: impl Into<String>) -> Self {
        Error::Generic(msg.into())
    }

    pub fn installed(msg: impl Into<String>) -> Self {
        Error::Installed(msg.into())
    }

    /// The kernel errno behind this error, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Netlink { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
