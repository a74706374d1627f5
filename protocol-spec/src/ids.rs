//! Domain identifiers. Newtypes so that a room id can never be passed where a
//! user id or a sequence number is expected.

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub u64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A room's id, assigned by the server, never reused.
    RoomId
);
id_type!(
    /// A user's id, assigned at registration, never reused.
    UserId
);
id_type!(
    /// A per-room event sequence number. The first event of a room is 1;
    /// 0 means "before the first event".
    Seq
);

/// Milliseconds since the Unix epoch (UTC), as stamped by the server.
pub type Millis = u64;
