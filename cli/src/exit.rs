//! Exit codes: one per kind of failure, so that a script can tell a
//! server it cannot reach from a session it must renew from a request the
//! server refused (README "Terminal client" lists them).

use std::fmt;
use std::process::ExitCode;

use confab_sdk::{Error, ErrorCode};

/// What went wrong, as a script sees it: each kind has its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 1: anything not listed below (an I/O error writing the session
    /// file, an unexpected reply).
    Other,
    /// 2: the command line is wrong (also clap's own code for bad flags).
    Usage,
    /// 3: the server cannot be reached, or the connection was lost.
    Unreachable,
    /// 4: not logged in, or the stored session expired or was revoked:
    /// run `confab login`.
    Auth,
    /// 5: no such room (or a name that several rooms have), user or
    /// message.
    NotFound,
    /// 6: the server refused the request (not a member, not an admin,
    /// rate limited, …); its code and message are printed.
    Refused,
}

impl Kind {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Kind::Other => 1,
            Kind::Usage => 2,
            Kind::Unreachable => 3,
            Kind::Auth => 4,
            Kind::NotFound => 5,
            Kind::Refused => 6,
        }
    }
}

/// A failure of a command: its kind and what to tell the user.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: Kind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Kind::Usage, message)
    }

    pub fn not_logged_in() -> Failure {
        Failure::new(Kind::Auth, "not logged in: run `confab login` first")
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.kind.code())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let kind = classify(&e);
        let message = match (&e, kind) {
            (_, Kind::Auth) if is_session_gone(&e) => {
                "your session has expired or was revoked: run `confab login` again".to_owned()
            }
            _ => describe(&e),
        };
        Failure::new(kind, message)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::new(Kind::Other, e.to_string())
    }
}

/// Which kind of failure an SDK error is.
pub fn classify(e: &Error) -> Kind {
    match e {
        Error::Server { code, .. } | Error::Closed { code, .. } => match code.known() {
            Some(
                ErrorCode::NotAuthenticated
                | ErrorCode::InvalidToken
                | ErrorCode::InvalidCredentials
                | ErrorCode::TooManyAttempts
                | ErrorCode::LoggedOut
                | ErrorCode::PasswordChanged,
            ) => Kind::Auth,
            Some(
                ErrorCode::RoomNotFound
                | ErrorCode::NoSuchUser
                | ErrorCode::MessageNotFound
                | ErrorCode::NoSuchRequest,
            ) => Kind::NotFound,
            _ if matches!(e, Error::Closed { .. }) => Kind::Unreachable,
            _ => Kind::Refused,
        },
        Error::Timeout
        | Error::Io(_)
        | Error::Disconnected
        | Error::Tls(_)
        | Error::WebSocket(_)
        | Error::Framing(_) => Kind::Unreachable,
        Error::UnsupportedScheme(_) | Error::InvalidUrl { .. } => Kind::Usage,
        _ => Kind::Other,
    }
}

/// Whether `e` says the session token no longer works.
pub fn is_session_gone(e: &Error) -> bool {
    match e {
        Error::Server { code, .. } | Error::Closed { code, .. } => matches!(
            code.known(),
            Some(ErrorCode::InvalidToken | ErrorCode::LoggedOut | ErrorCode::PasswordChanged)
        ),
        _ => false,
    }
}

/// A one-line description for people: a server error as its stable name
/// and the server's message.
pub fn describe(e: &Error) -> String {
    match e {
        Error::Server { code, message, .. } | Error::Closed { code, message } => match code.known()
        {
            Some(known) => format!("{}: {message}", known.name()),
            None => format!("error {}: {message}", code.as_u16()),
        },
        Error::Io(io) => format!("cannot reach the server: {io}"),
        Error::Timeout => "the server did not answer in time".to_owned(),
        other => other.to_string(),
    }
}
