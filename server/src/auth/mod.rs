//! Accounts: input rules, password hashing and session tokens.
//!
//! Passwords are hashed with argon2id (PHC string format) by [`Kdf`]:
//! deliberately slow and memory-hard, so it runs on the blocking pool with
//! a fixed number of workers and reused memory (`kdf.rs`). [`LoginGuard`]
//! limits failed logins and registrations (`guard.rs`).
//! Session tokens are 32 random bytes shown to the client once, as hex; the
//! store keeps only their SHA-256.

pub mod guard;
pub mod kdf;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use confab_protocol::ErrorCode;
use sha2::{Digest, Sha256};

pub use guard::{GuardLimits, LoginGuard};
pub use kdf::{Kdf, KdfError, KdfLimits, KdfParams};

/// The password a login for an unknown user is checked against, so that
/// it costs what a wrong password costs (timing reveals no usernames).
pub const DUMMY_PASSWORD: &str = "confab-dummy-password";

/// Lowercases a username and checks SPEC.md §5.2: 3-32 characters of
/// `a-z 0-9 _ - .`.
pub fn normalize_username(raw: &str) -> Result<String, ErrorCode> {
    let name = raw.trim().to_ascii_lowercase();
    let ok_len = (3..=32).contains(&name.len());
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b));
    if ok_len && ok_chars {
        Ok(name)
    } else {
        Err(ErrorCode::InvalidUsername)
    }
}

/// Passwords are 8-256 bytes; anything else is allowed.
pub fn check_password_rules(password: &str) -> Result<(), ErrorCode> {
    if (8..=256).contains(&password.len()) {
        Ok(())
    } else {
        Err(ErrorCode::InvalidPassword)
    }
}

/// SHA-256 of a session token: the only form the store keeps.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh session token (64 hex characters) and its hash.
pub fn new_token() -> (String, [u8; 32]) {
    let mut raw = [0u8; 32];
    OsRng.fill_bytes(&mut raw);
    let token = hex::encode(raw);
    let hash = token_hash(&token);
    (token, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(normalize_username(" Alice_1 ").unwrap(), "alice_1");
        assert_eq!(normalize_username("ab"), Err(ErrorCode::InvalidUsername));
        assert_eq!(
            normalize_username(&"a".repeat(33)),
            Err(ErrorCode::InvalidUsername)
        );
        assert_eq!(
            normalize_username("bad name"),
            Err(ErrorCode::InvalidUsername)
        );
        assert_eq!(normalize_username("émile"), Err(ErrorCode::InvalidUsername));
    }

    #[test]
    fn password_length_rules() {
        assert_eq!(
            check_password_rules("short"),
            Err(ErrorCode::InvalidPassword)
        );
        assert!(check_password_rules("longenough").is_ok());
        assert_eq!(
            check_password_rules(&"x".repeat(257)),
            Err(ErrorCode::InvalidPassword)
        );
    }

    #[test]
    fn tokens_are_random_and_hash_deterministically() {
        let (t1, h1) = new_token();
        let (t2, _) = new_token();
        assert_eq!(t1.len(), 64);
        assert_ne!(t1, t2);
        assert_eq!(token_hash(&t1), h1);
    }
}
