//! Accounts: REGISTER, LOGIN and LOGOUT, and the session tokens they hand
//! out. Password hashing runs within the KDF's budget (`crate::auth::kdf`),
//! after the brute-force limits have let the attempt through
//! (`crate::auth::guard`).

use confab_protocol::{check_initial_members, AuditAction, ErrorCode, ServerMsg, UserId, UserRef};
use confab_store::{AccountOutcome, AccountWrite, AuditEntry, StoreError, WriteOp};

use super::{storage_error, Auth, Session};
use crate::auth::{self, KdfError};
use crate::persist::batch::WriteRequest;
use crate::state::{Ended, Ticket};

impl Session {
    pub(super) async fn register(&mut self, req_id: u32, username: String, password: String) {
        if self.auth.is_some() {
            return self.error(req_id, ErrorCode::AlreadyAuthenticated);
        }
        let username = match auth::normalize_username(&username) {
            Ok(u) => u,
            Err(code) => return self.error(req_id, code),
        };
        if let Err(code) = auth::check_password_rules(&password) {
            return self.error(req_id, code);
        }
        if let Err(refusal) = self.state.guard.register(self.peer) {
            return self.refused(req_id, refusal);
        }
        let hash = match self.state.kdf.hash(password).await {
            Ok(h) => h,
            Err(e) => return self.kdf_error(req_id, e),
        };
        // The account and its first session in one durable write, committed
        // together with every other registration and login waiting.
        let ticket = self.state.sessions.ticket();
        let (token, token_hash) = auth::new_token();
        let (now, expires_at) = self.session_times();
        let write = AccountWrite::Register {
            username: username.clone(),
            password_hash: hash,
            token_hash,
            now,
            expires_at,
        };
        match self.state.accounts.write(write).await {
            Ok(AccountOutcome::Registered(user)) => {
                tracing::info!(
                    user = user.0,
                    username = username.as_str(),
                    "account registered"
                );
                self.welcome(req_id, user, username, token, token_hash, ticket)
                    .await
            }
            Ok(AccountOutcome::UsernameTaken) | Err(StoreError::Conflict(_)) => {
                self.error(req_id, ErrorCode::UsernameTaken)
            }
            Ok(other) => {
                tracing::error!(outcome = ?other, "a registration answered as another write");
                self.error(req_id, ErrorCode::Internal)
            }
            Err(e) => storage_error(&self.conn, req_id, e),
        }
    }

    /// When a session starting now expires.
    fn session_times(&self) -> (u64, u64) {
        let now = self.state.clock.now_ms();
        let ttl = self.state.config.session_ttl_hours.get().as_millis() as u64;
        (now, now + ttl)
    }

    pub(super) async fn login(&mut self, req_id: u32, username: String, password: String) {
        if self.auth.is_some() {
            return self.error(req_id, ErrorCode::AlreadyAuthenticated);
        }
        // A name that breaks the rules names no account; it still costs a
        // hash and counts against the address (not against any username).
        let name = auth::normalize_username(&username).ok();
        let guard = &self.state.guard;
        if let Err(refusal) = guard.check_login(self.peer, name.as_deref()) {
            return self.refused(req_id, refusal);
        }
        let record = match &name {
            Some(name) => {
                let lookup = self.state.store.user_by_name(name);
                match crate::metrics::query("user_by_name", lookup).await {
                    Ok(r) => r,
                    Err(e) => return storage_error(&self.conn, req_id, e),
                }
            }
            None => None,
        };
        let phc: std::sync::Arc<str> = match &record {
            Some(r) => r.password_hash.as_str().into(),
            None => self.state.dummy_hash.clone(),
        };
        let verified = match self.state.kdf.verify(password, phc).await {
            Ok(v) => v,
            Err(e) => return self.kdf_error(req_id, e),
        };
        if !(verified && record.is_some()) {
            guard.failed_login(self.peer, name.as_deref());
        }
        match record {
            Some(user) if verified => {
                tracing::info!(target: "confab::audit", action = "login", actor = user.id.0, "audit");
                self.audit_login(user.id);
                self.start_session(req_id, user.id, user.username).await
            }
            _ => {
                tracing::info!(username = username.as_str(), "login failed");
                crate::metrics::auth_failed("invalid_credentials");
                self.error(req_id, ErrorCode::InvalidCredentials)
            }
        }
    }

    /// Answers a login or registration a brute-force limit refused.
    pub(super) fn refused(&self, req_id: u32, refusal: auth::guard::Refusal) {
        tracing::info!(
            peer = %self.peer,
            limit = refusal.limit.label(),
            retry_after_s = refusal.retry_after.as_secs(),
            "login or registration refused"
        );
        self.conn
            .error_retry(req_id, ErrorCode::TooManyAttempts, refusal.retry_after);
    }

    /// Answers a login or registration whose password could not be hashed.
    pub(super) fn kdf_error(&self, req_id: u32, e: KdfError) {
        match e {
            KdfError::Busy { retry_after } => {
                self.conn
                    .error_retry(req_id, ErrorCode::Overloaded, retry_after);
            }
            KdfError::Failed => {
                tracing::error!("password hashing failed");
                self.error(req_id, ErrorCode::Internal)
            }
        }
    }

    /// Appends a server-wide `login` audit row (no room), through the same
    /// ordered pipeline as every other write.
    fn audit_login(&self, user: UserId) {
        let entry = AuditEntry {
            at: self.state.clock.now_ms(),
            actor: user,
            action: AuditAction::Login,
            room: None,
            target: None,
            detail: String::new(),
        };
        self.state
            .batch
            .submit(WriteRequest::new(vec![WriteOp::Audit(entry)]));
    }

    /// Creates a session token (committed with the other account writes
    /// waiting), answers SESSION and attaches the connection.
    async fn start_session(&mut self, req_id: u32, user: UserId, username: String) {
        // Before the session exists: a CHANGE_PASSWORD of the same user
        // committing after it deletes it (SessionRegistry, "Revocation races").
        let ticket = self.state.sessions.ticket();
        let (token, token_hash) = auth::new_token();
        let (now, expires_at) = self.session_times();
        let write = AccountWrite::Session {
            user,
            token_hash,
            now,
            expires_at,
        };
        if let Err(e) = self.state.accounts.write(write).await {
            return storage_error(&self.conn, req_id, e);
        }
        self.welcome(req_id, user, username, token, token_hash, ticket)
            .await
    }

    /// Answers SESSION for a durable session and attaches the connection.
    async fn welcome(
        &mut self,
        req_id: u32,
        user: UserId,
        username: String,
        token: String,
        token_hash: [u8; 32],
        ticket: Ticket,
    ) {
        self.conn.reply(
            req_id,
            &ServerMsg::Session {
                user,
                username: username.clone(),
                token: token.into(),
            },
        );
        self.auth = Some(Auth {
            user,
            username,
            token_hash,
        });
        self.attach(std::sync::Arc::from(Vec::new()), ticket).await;
    }

    /// Ends the session everywhere: every connection using its token
    /// closes. Returns `false`: this connection ends too.
    pub(super) async fn logout(&mut self, req_id: u32) -> bool {
        let Some(auth) = &self.auth else { return true };
        let delete = self.state.store.delete_session(&auth.token_hash);
        if let Err(e) = crate::metrics::query("delete_session", delete).await {
            storage_error(&self.conn, req_id, e);
            return true;
        }
        tracing::info!(user = auth.user.0, "logout");
        self.conn.reply(req_id, &ServerMsg::Ok);
        self.end_sessions(auth.user, auth.token_hash, Ended::This);
        self.conn
            .close(ErrorCode::LoggedOut, "the session was logged out");
        false
    }

    /// Closes the connections of the sessions `which` names (their rows
    /// already deleted from the store) on this node and, in cluster mode,
    /// on every other (`UserPush::Revoke`); how many closed here.
    pub(super) fn end_sessions(&self, user: UserId, token_hash: [u8; 32], which: Ended) -> usize {
        let closed = self.state.sessions.end(user, &token_hash, which);
        if let Some(relay) = &self.state.relay {
            relay.push(crate::cluster::wire::UserPush::Revoke {
                user,
                token_hash,
                others: which == Ended::AllBut,
            });
        }
        closed
    }

    /// Resolves a user named by id or username to (id, username), for
    /// INVITE and BAN (the shards never wait on the store).
    /// CREATE_ROOM's initial members (SPEC.md §5.3.2), resolved in the
    /// order named: more than the limit is `TOO_MANY_MEMBERS` before any
    /// lookup; then, entry by entry, an unknown user `NO_SUCH_USER`, the
    /// caller `CANNOT_TARGET_SELF`, a user named before `DUPLICATE_MEMBER`.
    pub(super) async fn initial_members(
        &self,
        caller: UserId,
        named: &[UserRef],
    ) -> Result<Vec<(UserId, String)>, ErrorCode> {
        check_initial_members(named).map_err(|r| r.code)?;
        let mut members: Vec<(UserId, String)> = Vec::with_capacity(named.len());
        for who in named {
            let (id, username) = self.resolve(who).await?;
            if id == caller {
                return Err(ErrorCode::CannotTargetSelf);
            }
            if members.iter().any(|(m, _)| *m == id) {
                return Err(ErrorCode::DuplicateMember);
            }
            members.push((id, username));
        }
        Ok(members)
    }

    pub(super) async fn resolve(&self, who: &UserRef) -> Result<(UserId, String), ErrorCode> {
        let store = &self.state.store;
        let found = match who {
            UserRef::Id(id) => crate::metrics::query("user_by_id", store.user_by_id(*id)).await,
            UserRef::Name(name) => match auth::normalize_username(name) {
                Ok(name) => crate::metrics::query("user_by_name", store.user_by_name(&name)).await,
                Err(_) => return Err(ErrorCode::NoSuchUser),
            },
        };
        match found {
            Ok(Some(u)) => Ok((u.id, u.username)),
            Ok(None) => Err(ErrorCode::NoSuchUser),
            Err(e) => {
                crate::metrics::query_error();
                tracing::warn!(error = %e, "user lookup failed");
                Err(ErrorCode::StorageUnavailable)
            }
        }
    }
}
