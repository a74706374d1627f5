//! Small enumerations with stable numbers and names (SPEC.md §5.3.1,
//! §5.8.1, §8.11): one home for each code, used by the codec, the server,
//! both stores, the spool and the HTTP layer.
//!
//! Two kinds:
//! - **closed** ([`Role`](crate::Role), [`Visibility`](crate::Visibility),
//!   [`AuditAction`]): a value outside the table is an error;
//! - **open** ([`NotificationKind`], [`LeaveReason`]): SPEC.md says
//!   receivers MUST accept values they do not know, so those decode to an
//!   `Unknown(n)` variant that re-encodes to the same byte.

use crate::msg::{Role, Visibility};

/// Defines an open `u8` enumeration: known values with their SPEC names,
/// plus `Unknown(u8)` for values a later version may send.
macro_rules! open_code {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this version does not know (kept as sent).
            Unknown(u8),
        }

        impl $name {
            /// Every known value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire byte.
            pub const fn code(self) -> u8 {
                match self {
                    $( $name::$variant => $code, )+
                    $name::Unknown(n) => n,
                }
            }

            /// The value of a wire byte; unknown bytes are kept.
            pub const fn from_code(n: u8) -> $name {
                match n {
                    $( $code => $name::$variant, )+
                    n => $name::Unknown(n),
                }
            }

            /// The stable snake_case name (SPEC.md's JSON form); `None` for
            /// an unknown value.
            pub const fn name(self) -> Option<&'static str> {
                match self {
                    $( $name::$variant => Some($text), )+
                    $name::Unknown(_) => None,
                }
            }

            /// The known value with this name.
            pub fn from_name(s: &str) -> Option<$name> {
                match s {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }
    };
}

open_code! {
    /// What a notification is about (SPEC.md §5.8.1); who receives each
    /// kind and when is in §8.9.
    NotificationKind {
        /// `actor` invited you to `room`.
        Invited = 1 => "invited",
        /// `actor` asks to join `room`, which you administer.
        JoinRequest = 2 => "join_request",
        RequestApproved = 3 => "request_approved",
        RequestDenied = 4 => "request_denied",
        Kicked = 5 => "kicked",
        Banned = 6 => "banned",
        Unbanned = 7 => "unbanned",
        /// Your role in `room` changed (see the room's ROLE_CHANGED event).
        RoleChanged = 8 => "role_changed",
        /// `room` terminated and you, its last member, were removed.
        RoomTerminated = 9 => "room_terminated",
        /// `actor` mentioned you (`@username`) in a message in `room`,
        /// sent at `at`.
        Mentioned = 10 => "mentioned",
    }
}

open_code! {
    /// A user's presence (SPEC.md §5.10): from all of their connections.
    Presence {
        /// No connection open.
        Offline = 0 => "offline",
        /// At least one connection open, not away.
        Online = 1 => "online",
        /// At least one connection open, and the user set SET_AWAY.
        Away = 2 => "away",
    }
}

open_code! {
    /// How a user's last membership of a room ended (ROOM_LOG, §5.8.1).
    LeaveReason {
        /// Still a member.
        Active = 0 => "active",
        Left = 1 => "left",
        Kicked = 2 => "kicked",
        Banned = 3 => "banned",
        /// The room terminated with the user as its last, non-admin member.
        Terminated = 4 => "terminated",
    }
}

/// Defines a closed enumeration of stable snake_case names.
macro_rules! named {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable snake_case name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// The value with this name.
            pub fn from_name(s: &str) -> Option<$name> {
                match s {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named! {
    /// An audited action (SPEC.md §8.11). On the wire an AuditItem carries
    /// the name as a string, and clients accept names they do not know.
    AuditAction {
        RoomCreated => "room_created",
        MemberJoined => "member_joined",
        MemberLeft => "member_left",
        Invited => "invited",
        InviteDeclined => "invite_declined",
        JoinRequested => "join_requested",
        RequestApproved => "request_approved",
        RequestDenied => "request_denied",
        MemberKicked => "member_kicked",
        MemberBanned => "member_banned",
        MemberUnbanned => "member_unbanned",
        RoleChanged => "role_changed",
        RoomUpdated => "room_updated",
        OwnershipTransferred => "ownership_transferred",
        RoomTerminated => "room_terminated",
        /// An admin deleted another member's message (DELETE_MESSAGE).
        MessageDeleted => "message_deleted",
        /// Server-wide (no room): a successful login.
        Login => "login",
    }
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: &'static [Role] = &[Role::Member, Role::Admin, Role::Owner];

    /// The wire byte.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The role of a wire byte (`None`: not a role).
    pub const fn from_code(n: u8) -> Option<Role> {
        match n {
            0 => Some(Role::Member),
            1 => Some(Role::Admin),
            2 => Some(Role::Owner),
            _ => None,
        }
    }

    /// `"member"`, `"admin"` or `"owner"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn from_name(s: &str) -> Option<Role> {
        Role::ALL.iter().copied().find(|r| r.as_str() == s)
    }
}

impl Visibility {
    pub const ALL: &'static [Visibility] = &[Visibility::Public, Visibility::Private];

    /// The wire byte.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The visibility of a wire byte (`None`: not a visibility).
    pub const fn from_code(n: u8) -> Option<Visibility> {
        match n {
            0 => Some(Visibility::Public),
            1 => Some(Visibility::Private),
            _ => None,
        }
    }

    /// `"public"` or `"private"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }

    pub fn from_name(s: &str) -> Option<Visibility> {
        Visibility::ALL.iter().copied().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Visibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_codes_round_trip_and_keep_unknown_bytes() {
        for k in NotificationKind::ALL {
            assert_eq!(NotificationKind::from_code(k.code()), *k);
            assert_eq!(NotificationKind::from_name(k.name().unwrap()), Some(*k));
        }
        assert_eq!(
            NotificationKind::from_code(200),
            NotificationKind::Unknown(200)
        );
        assert_eq!(NotificationKind::Unknown(200).code(), 200);
        assert_eq!(NotificationKind::Unknown(200).name(), None);
        for r in LeaveReason::ALL {
            assert_eq!(LeaveReason::from_code(r.code()), *r);
        }
        assert_eq!(LeaveReason::Terminated.code(), 4);
        assert_eq!(LeaveReason::from_name("kicked"), Some(LeaveReason::Kicked));
    }

    #[test]
    fn closed_codes_refuse_what_they_do_not_know() {
        for r in Role::ALL {
            assert_eq!(Role::from_code(r.code()), Some(*r));
            assert_eq!(Role::from_name(r.as_str()), Some(*r));
        }
        assert_eq!(Role::from_code(3), None);
        assert_eq!(Visibility::from_code(2), None);
        assert_eq!(Visibility::from_name("private"), Some(Visibility::Private));
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::from_name(a.as_str()), Some(*a));
        }
        assert_eq!(AuditAction::from_name("nope"), None);
    }
}
