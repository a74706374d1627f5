//! Accounts: input rules, password hashing and session tokens.
//!
//! Passwords are hashed with argon2id (PHC string format). Hashing is
//! deliberately slow and memory-hard, so callers run it on the blocking
//! pool (`tokio::task::spawn_blocking`), never on an async worker thread.
//! Session tokens are 32 random bytes shown to the client once, as hex; the
//! store keeps only their SHA-256.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use confab_protocol::ErrorCode;
use sha2::{Digest, Sha256};

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
}

fn argon2(params: KdfParams) -> Result<Argon2<'static>, ErrorCode> {
    let p = Params::new(params.memory_kib, params.iterations, 1, None)
        .map_err(|_| ErrorCode::Internal)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
}

/// Hashes a password into a PHC string. Blocking: call on the blocking pool.
pub fn hash_password(password: &str, params: KdfParams) -> Result<String, ErrorCode> {
    let salt = SaltString::generate(&mut OsRng);
    argon2(params)?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| ErrorCode::Internal)
}

/// Checks a password against a stored PHC string (whose own parameters
/// apply). Blocking: call on the blocking pool.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the username does not exist, so that a
/// login for an unknown user costs as much as one with a wrong password.
pub fn dummy_hash(params: KdfParams) -> String {
    hash_password("confab-dummy-password", params).unwrap_or_default()
}

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

    const CHEAP: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
    };

    #[test]
    fn hashes_verify_only_the_right_password_and_are_salted() {
        let a = hash_password("correct horse", CHEAP).unwrap();
        let b = hash_password("correct horse", CHEAP).unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify_password("correct horse", &a));
        assert!(!verify_password("wrong horse", &a));
        assert!(!verify_password("correct horse", "not a phc string"));
    }

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
