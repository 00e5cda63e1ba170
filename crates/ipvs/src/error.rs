//! What can go wrong talking IPVS, typed: the kernel's refusals that
//! callers treat differently (already there, not there) apart from other
//! errnos, a value that names no IPVS object, a kernel without IPVS, and a
//! reply that does not decode. Converted once into the OCF error.

use std::io;

use nix::errno::Errno;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// EEXIST: the service, destination or sync daemon is already there.
    #[error("{context}: {}", Errno::EEXIST)]
    Exists { context: String },
    /// ESRCH (service, sync daemon) or ENOENT (destination): not there.
    #[error("{context}: {}", Errno::from_raw(*.errno))]
    NotFound { context: String, errno: i32 },
    /// Any other errno the kernel answered with.
    #[error("{context}: {}", Errno::from_raw(*.errno))]
    Kernel { context: String, errno: i32 },
    /// A value that does not describe an IPVS object (syntax, range).
    #[error("{0}")]
    Invalid(String),
    /// The kernel has no IPVS, or not the scheduler or engine asked for.
    #[error("{0}")]
    Unavailable(String),
    /// The socket or a /proc file failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A reply (or a /proc line) we cannot read, or a request we cannot build.
    #[error("{0}")]
    Decode(String),
}

impl Error {
    /// The kernel's answer `errno` to the request described by `context`.
    pub fn kernel(context: impl Into<String>, errno: i32) -> Error {
        let context = context.into();
        match errno {
            libc::EEXIST => Error::Exists { context },
            libc::ESRCH | libc::ENOENT => Error::NotFound { context, errno },
            _ => Error::Kernel { context, errno },
        }
    }

    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }

    pub fn decode(msg: impl Into<String>) -> Error {
        Error::Decode(msg.into())
    }

    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }

    pub fn is_exists(&self) -> bool {
        matches!(self, Error::Exists { .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// The kernel's errno behind this error, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Exists { .. } => Some(libc::EEXIST),
            Error::NotFound { errno, .. } | Error::Kernel { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Once, here: what each IPVS error means to the cluster manager.
impl From<Error> for lvs_ocf::Error {
    fn from(e: Error) -> lvs_ocf::Error {
        match e {
            Error::Invalid(m) => lvs_ocf::Error::Configured(m),
            Error::Unavailable(m) => lvs_ocf::Error::Installed(m),
            Error::Decode(m) => lvs_ocf::Error::Generic(m),
            Error::Io { context, source } => lvs_ocf::Error::Io { context, source },
            e @ (Error::Exists { .. } | Error::NotFound { .. } | Error::Kernel { .. }) => {
                let errno = e.errno().unwrap_or(libc::EIO);
                let context = match e {
                    Error::Exists { context } | Error::NotFound { context, .. } | Error::Kernel { context, .. } => {
                        context
                    }
                    _ => String::new(),
                };
                lvs_ocf::Error::Netlink { context, errno }
            }
        }
    }
}
