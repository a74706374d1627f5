//! Secrets a frame carries: passwords and session tokens.

/// A secret as a frame carries it: a password (REGISTER, LOGIN,
/// CHANGE_PASSWORD) or a session token (SESSION). `Debug` never shows it,
/// so a logged frame cannot leak one; the text is read with
/// [`Secret::as_str`] or [`Secret::into_string`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// A password in REGISTER, LOGIN and CHANGE_PASSWORD.
pub type Password = Secret;

/// A session token in SESSION, the reply to REGISTER and LOGIN.
pub type SessionToken = Secret;

impl Secret {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Secret(text)
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Self {
        Secret(text.to_owned())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_text() {
        let token = SessionToken::from("0123456789abcdef");
        assert_eq!(format!("{token:?}"), "<redacted>");
        assert_eq!(token.as_str(), "0123456789abcdef");
    }
}
