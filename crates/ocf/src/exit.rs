//! OCF exit codes and the one place where errors become them.

use crate::Error;

/// Exit codes from the OCF resource agent API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    Success = 0,
    ErrGeneric = 1,
    ErrArgs = 2,
    ErrUnimplemented = 3,
    ErrPerm = 4,
    ErrInstalled = 5,
    ErrConfigured = 6,
    NotRunning = 7,
}

impl From<&Error> for ExitCode {
    fn from(e: &Error) -> Self {
        match e {
            Error::Configured(_) => ExitCode::ErrConfigured,
            Error::Args(_) => ExitCode::ErrArgs,
            Error::Installed(_) => ExitCode::ErrInstalled,
            Error::Perm(_) => ExitCode::ErrPerm,
            Error::Unimplemented(_) => ExitCode::ErrUnimplemented,
            Error::Generic(_) | Error::Io { .. } | Error::Netlink { .. } => {
                // EPERM from the kernel means we lack CAP_NET_ADMIN.
                if matches!(e.errno(), Some(libc::EPERM) | Some(libc::EACCES)) {
                    ExitCode::ErrPerm
                } else {
                    ExitCode::ErrGeneric
                }
            }
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_kind_has_its_ocf_code() {
        let cases = [
            (Error::configured("x"), 6),
            (Error::Args("x".into()), 2),
            (Error::installed("x"), 5),
            (Error::Perm("x".into()), 4),
            (Error::Unimplemented("x".into()), 3),
            (Error::generic("x"), 1),
            (Error::Netlink { context: "add".into(), errno: libc::EEXIST }, 1),
            (Error::Netlink { context: "add".into(), errno: libc::EPERM }, 4),
            (Error::io("open", std::io::Error::from_raw_os_error(libc::EACCES)), 4),
            (Error::io("open", std::io::Error::from_raw_os_error(libc::ENOENT)), 1),
        ];
        for (err, code) in cases {
            assert_eq!(ExitCode::from(&err) as u8, code, "{err:?}");
        }
    }
}
