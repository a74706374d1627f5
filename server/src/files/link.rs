//! Signed file links: `GET /api/files/{id}?expires=<unix seconds>&sig=<hex>`
//! for clients that cannot send a bearer token (a browser's `<img>`).
//!
//! `sig` is HMAC-SHA256, keyed with the server's link secret, over the
//! ASCII text `"<id>:<expires>"` (decimal, no padding), in lowercase hex.
//! The secret is 32 random bytes in `DATA_DIR/file-link.key`, created with
//! mode 0600 on first start and kept across restarts (links stay valid);
//! deleting the file invalidates every link at the next start. A link is
//! valid until `expires` (server clock) and only for its file; it grants
//! what the file's room membership would, to whoever holds it.

use std::io::Write;
use std::path::Path;

use ring::hmac;

/// Why a link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefused {
    /// `expires` is in the past.
    Expired,
    /// The signature does not match (tampered id, expiry or signature).
    BadSignature,
}

/// The link secret.
pub struct LinkKey(hmac::Key);

const SECRET_LEN: usize = 32;

impl LinkKey {
    /// Reads the secret at `path`, or creates it (0600) if there is none.
    pub fn load_or_create(path: &Path) -> std::io::Result<LinkKey> {
        match std::fs::read(path) {
            Ok(bytes) if bytes.len() == SECRET_LEN => return Ok(LinkKey::from_secret(&bytes)),
            Ok(bytes) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} holds {} bytes, not a {SECRET_LEN}-byte secret; remove it to make a new one (every file link then ends)",
                        path.display(),
                        bytes.len()
                    ),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut secret = [0u8; SECRET_LEN];
        argon2::password_hash::rand_core::RngCore::fill_bytes(
            &mut argon2::password_hash::rand_core::OsRng,
            &mut secret,
        );
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        file.write_all(&secret)?;
        file.sync_all()?;
        Ok(LinkKey::from_secret(&secret))
    }

    pub fn from_secret(secret: &[u8]) -> LinkKey {
        LinkKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn message(id: u64, expires: u64) -> String {
        format!("{id}:{expires}")
    }

    /// The signature of a link to `id` valid until `expires`.
    pub fn sign(&self, id: u64, expires: u64) -> String {
        hex::encode(hmac::sign(&self.0, Self::message(id, expires).as_bytes()))
    }

    /// Checks a link at `now` (Unix seconds): the signature first, in
    /// constant time, then the expiry.
    pub fn verify(&self, id: u64, expires: u64, sig: &str, now: u64) -> Result<(), LinkRefused> {
        let sig = hex::decode(sig).map_err(|_| LinkRefused::BadSignature)?;
        hmac::verify(&self.0, Self::message(id, expires).as_bytes(), &sig)
            .map_err(|_| LinkRefused::BadSignature)?;
        if expires < now {
            return Err(LinkRefused::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_holds_for_its_file_until_it_expires() {
        let key = LinkKey::from_secret(b"0123456789abcdef0123456789abcdef");
        let sig = key.sign(7, 1_000);
        assert_eq!(sig.len(), 64);
        assert_eq!(key.verify(7, 1_000, &sig, 999), Ok(()));
        assert_eq!(key.verify(7, 1_000, &sig, 1_000), Ok(()));
        assert_eq!(key.verify(7, 1_000, &sig, 1_001), Err(LinkRefused::Expired));
        assert_eq!(
            key.verify(8, 1_000, &sig, 0),
            Err(LinkRefused::BadSignature)
        );
        assert_eq!(
            key.verify(7, 2_000, &sig, 0),
            Err(LinkRefused::BadSignature)
        );
        assert_eq!(
            key.verify(7, 1_000, "zz", 0),
            Err(LinkRefused::BadSignature)
        );
        let other = LinkKey::from_secret(b"another secret");
        assert_eq!(
            other.verify(7, 1_000, &sig, 0),
            Err(LinkRefused::BadSignature)
        );
    }

    /// The construction as SPEC.md §13 gives it, so that a client or a
    /// proxy can check it: HMAC-SHA256 over "<id>:<expires>" (RFC 4231
    /// test case 2's key and a known digest).
    #[test]
    fn the_signature_is_hmac_sha256_over_id_colon_expires() {
        let key = LinkKey::from_secret(b"Jefe");
        let expected = hex::encode(hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, b"Jefe"),
            b"42:1700000000",
        ));
        assert_eq!(key.sign(42, 1_700_000_000), expected);
        // RFC 4231 §4.3: the primitive itself.
        let rfc = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, b"Jefe"),
            b"what do ya want for nothing?",
        );
        assert_eq!(
            hex::encode(rfc),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_secret_is_created_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file-link.key");
        let first = LinkKey::load_or_create(&path).unwrap().sign(1, 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(LinkKey::load_or_create(&path).unwrap().sign(1, 2), first);
        std::fs::write(&path, b"short").unwrap();
        assert!(LinkKey::load_or_create(&path).is_err());
    }
}
