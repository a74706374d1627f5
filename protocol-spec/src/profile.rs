//! Profiles (SPEC.md §5.2.5): what a user shows others besides their
//! username, and what UPDATE_PROFILE sets.

use bytes::{BufMut, BytesMut};

use crate::ids::UserId;
use crate::wire::{put_opt_str, put_str, put_varint, Reader};
use crate::DecodeError;

/// Most characters (Unicode scalar values) in a display name.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;
/// Most characters (Unicode scalar values) in a bio.
pub const MAX_BIO_CHARS: usize = 500;
/// Most bytes in an email address (RFC 5321's path limit less its
/// angle brackets).
pub const MAX_EMAIL_BYTES: usize = 254;

/// A user's profile: the reply to GET_PROFILE and UPDATE_PROFILE
/// (PROFILE), and each entry of PROFILE_CHANGED.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Profile {
    pub user: UserId,
    pub username: String,
    /// Shown instead of the username where set.
    pub display_name: Option<String>,
    /// Free text; empty when the user wrote none.
    pub bio: String,
    /// Only ever sent to the user themself: absent from others' profiles
    /// and from PROFILE_CHANGED.
    pub email: Option<String>,
    /// The file id of the user's avatar, an image they uploaded over HTTP
    /// (`PUT /api/me/avatar`, SPEC.md §13.6) that any authenticated user
    /// may fetch; `None`: no avatar.
    pub avatar: Option<u64>,
}

impl Profile {
    /// The fields in wire order (a PROFILE payload, or a nested
    /// PROFILE_CHANGED entry).
    pub fn encode_fields(&self, buf: &mut BytesMut) {
        put_varint(buf, self.user.0);
        put_str(buf, &self.username);
        put_opt_str(buf, self.display_name.as_deref());
        put_str(buf, &self.bio);
        put_opt_str(buf, self.email.as_deref());
        match self.avatar {
            None => buf.put_u8(0),
            Some(file) => {
                buf.put_u8(1);
                put_varint(buf, file);
            }
        }
    }

    pub fn decode_fields(r: &mut Reader<'_>) -> Result<Profile, DecodeError> {
        Ok(Profile {
            user: UserId(r.varint()?),
            username: r.str()?,
            display_name: r.opt_str()?,
            bio: r.str()?,
            email: r.opt_str()?,
            avatar: if r.bool()? { Some(r.varint()?) } else { None },
        })
    }

    /// What others may see: the profile without the email.
    pub fn public(&self) -> Profile {
        Profile {
            email: None,
            ..self.clone()
        }
    }

    /// The most bytes this profile takes as a nested list entry (its byte
    /// count included): what a sender budgets per entry when it splits a
    /// list over frames.
    pub fn encoded_len(&self) -> usize {
        let text = |s: &Option<String>| 1 + s.as_ref().map_or(0, |s| 10 + s.len());
        10 + (10 + self.username.len())
            + text(&self.display_name)
            + (10 + self.bio.len())
            + text(&self.email)
            + 11
            + 10
    }
}

/// UPDATE_PROFILE's payload: the caller's whole editable profile, which
/// replaces the stored one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProfileUpdate {
    /// `None` clears it (the username is shown).
    pub display_name: Option<String>,
    /// Empty clears it.
    pub bio: String,
    /// `None` clears it.
    pub email: Option<String>,
}

impl ProfileUpdate {
    pub fn encode_fields(&self, buf: &mut BytesMut) {
        put_opt_str(buf, self.display_name.as_deref());
        put_str(buf, &self.bio);
        put_opt_str(buf, self.email.as_deref());
    }

    pub fn decode_fields(r: &mut Reader<'_>) -> Result<ProfileUpdate, DecodeError> {
        Ok(ProfileUpdate {
            display_name: r.opt_str()?,
            bio: r.str()?,
            email: r.opt_str()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_len_bounds_the_nested_entry() {
        let p = Profile {
            user: UserId(u64::MAX),
            username: "someone".into(),
            display_name: Some("Ünïcode".into()),
            bio: "x".repeat(500),
            email: None,
            avatar: Some(u64::MAX),
        };
        let mut buf = BytesMut::new();
        crate::wire::put_nested(&mut buf, |b| p.encode_fields(b));
        assert!(
            buf.len() <= p.encoded_len(),
            "{} > {}",
            buf.len(),
            p.encoded_len()
        );
    }
}
