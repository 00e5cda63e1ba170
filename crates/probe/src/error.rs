//! What can go wrong declaring or running checks, converted once into the
//! OCF error. A check that fails is not an error: it is a
//! [`crate::CheckOutcome::Down`].

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A check declared wrongly (kind, option, regex, status list, name).
    #[error("{0}")]
    Invalid(String),
    /// The scheduler itself failed (a check task died).
    #[error("{0}")]
    Failed(String),
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }

    pub fn failed(msg: impl Into<String>) -> Error {
        Error::Failed(msg.into())
    }
}

/// Once, here: what each error means to the cluster manager.
impl From<Error> for lvs_ocf::Error {
    fn from(e: Error) -> lvs_ocf::Error {
        match e {
            Error::Invalid(m) => lvs_ocf::Error::Configured(m),
            Error::Failed(m) => lvs_ocf::Error::Generic(m),
        }
    }
}
