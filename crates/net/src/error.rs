//! What can go wrong changing the host's networking, converted once into
//! the OCF error.

use std::io;

use nix::errno::Errno;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel's errno answer to an rtnetlink request.
    #[error("{context}: {}", Errno::from_raw(*.errno))]
    Kernel { context: String, errno: i32 },
    /// A socket, sysctl or other file operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// Anything else that went wrong (an address gone during duplicate
    /// detection, a reply we cannot use).
    #[error("{0}")]
    Failed(String),
}

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }

    pub fn failed(msg: impl Into<String>) -> Error {
        Error::Failed(msg.into())
    }

    /// The kernel's errno behind this error, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error(),
            Error::Failed(_) => None,
        }
    }
}

/// Once, here: what each error means to the cluster manager.
impl From<Error> for lvs_ocf::Error {
    fn from(e: Error) -> lvs_ocf::Error {
        match e {
            Error::Kernel { context, errno } => lvs_ocf::Error::Netlink { context, errno },
            Error::Io { context, source } => lvs_ocf::Error::Io { context, source },
            Error::Failed(m) => lvs_ocf::Error::Generic(m),
        }
    }
}
