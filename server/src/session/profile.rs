//! Profiles and password changes (SPEC.md §5.2.4, §5.2.5): GET_PROFILE,
//! UPDATE_PROFILE and CHANGE_PASSWORD. Both writes are account writes:
//! they go through the account writer's group commit
//! (`crate::persist::accounts`), not the room batch writer or the spool.

use std::sync::Arc;

use confab_protocol::{ErrorCode, PasswordChange, Profile, ProfileUpdate, ServerMsg, UserId};
use confab_store::{AccountOutcome, AccountWrite, StoreError};

use super::validate::{check_bio, check_display_name, check_email};
use super::{storage_error, Session};
use crate::auth;
use crate::limit::LimitKind;
use crate::shard::ShardCmd;
use crate::state::{Ended, ServerState};

/// After a change of `user`'s profile (UPDATE_PROFILE, or an avatar set or
/// cleared over HTTP): reads it as stored and has the shards tell the
/// members of the user's rooms (PROFILE_CHANGED, coalesced on their tick).
/// Returns the whole profile, the email included, for the user's own
/// answer; `None` for an unknown user (nothing is pushed).
pub(crate) async fn announce_profile(
    state: &ServerState,
    user: UserId,
) -> Result<Option<Profile>, StoreError> {
    let read = state.store.profile(user);
    let Some(profile) = crate::metrics::query("profile", read).await? else {
        return Ok(None);
    };
    let public = Arc::new(profile.public());
    // Cluster mode: the other nodes' shards tell the rooms they serve.
    if let Some(relay) = &state.relay {
        relay.push(crate::cluster::wire::UserPush::Profile(profile.public()));
    }
    state
        .router
        .send_all(|| ShardCmd::ProfileChanged {
            user,
            profile: public.clone(),
        })
        .await;
    Ok(Some(profile))
}

impl Session {
    /// GET_PROFILE: any authenticated user may read any user's profile;
    /// the email only in their own.
    pub(super) async fn get_profile(&self, req_id: u32, caller: UserId, target: UserId) {
        let read = self.state.store.profile(target);
        match crate::metrics::query("profile", read).await {
            Ok(Some(p)) => {
                let shown = if target == caller { p } else { p.public() };
                self.conn.reply(req_id, &ServerMsg::Profile(shown));
            }
            Ok(None) => self.error(req_id, ErrorCode::NoSuchUser),
            Err(e) => storage_error(&self.conn, req_id, e),
        }
    }

    /// UPDATE_PROFILE: the caller's profile replaced, answered with it as
    /// stored; the members of the caller's rooms are told (coalesced) on
    /// the shards' tick.
    pub(super) async fn update_profile(&self, req_id: u32, user: UserId, update: ProfileUpdate) {
        let checked = (|| {
            let display_name = update
                .display_name
                .as_deref()
                .map(check_display_name)
                .transpose()?;
            check_bio(&update.bio)?;
            let email = update.email.as_deref().map(check_email).transpose()?;
            Ok::<_, ErrorCode>((display_name, email))
        })();
        let (display_name, email) = match checked {
            Ok(v) => v,
            Err(code) => return self.error(req_id, code),
        };
        if let Err(wait) = self.state.limits.check(LimitKind::Profile, user) {
            self.conn
                .error_retry(req_id, ErrorCode::ProfileRateLimited, wait);
            return;
        }
        let write = AccountWrite::UpdateProfile {
            user,
            display_name,
            bio: update.bio,
            email,
        };
        match self.state.accounts.write(write).await {
            Ok(AccountOutcome::Updated) => {}
            Ok(_) => return self.error(req_id, ErrorCode::NoSuchUser),
            Err(e) => return storage_error(&self.conn, req_id, e),
        }
        match announce_profile(&self.state, user).await {
            Ok(Some(profile)) => {
                self.conn.reply(req_id, &ServerMsg::Profile(profile));
            }
            Ok(None) => self.error(req_id, ErrorCode::NoSuchUser),
            Err(e) => storage_error(&self.conn, req_id, e),
        }
    }

    /// CHANGE_PASSWORD: the current password checked like a login (the
    /// failed-login limits count a wrong one), the new one hashed within
    /// the KDF's budget; then the new hash and the end of every other
    /// session of the user commit together, and their connections close
    /// with PASSWORD_CHANGED. The caller's session stays.
    pub(super) async fn change_password(&self, req_id: u32, change: PasswordChange) {
        let Some(auth) = &self.auth else {
            return self.error(req_id, ErrorCode::NotAuthenticated);
        };
        let (user, keep) = (auth.user, auth.token_hash);
        let username = auth.username.as_str();
        if let Err(code) = auth::check_password_rules(&change.new) {
            return self.error(req_id, code);
        }
        let guard = &self.state.guard;
        if let Err(refusal) = guard.check_login(self.peer, Some(username)) {
            return self.refused(req_id, refusal);
        }
        let lookup = self.state.store.user_by_id(user);
        let record = match crate::metrics::query("user_by_id", lookup).await {
            Ok(Some(r)) => r,
            Ok(None) => return self.error(req_id, ErrorCode::InvalidToken),
            Err(e) => return storage_error(&self.conn, req_id, e),
        };
        let phc: Arc<str> = record.password_hash.into();
        match self.state.kdf.verify(change.current, phc).await {
            Ok(true) => {}
            Ok(false) => {
                guard.failed_login(self.peer, Some(username));
                crate::metrics::password_change(false);
                tracing::info!(user = user.0, "password change refused: wrong password");
                return self.error(req_id, ErrorCode::InvalidCredentials);
            }
            Err(e) => return self.kdf_error(req_id, e),
        }
        let hash = match self.state.kdf.hash(change.new).await {
            Ok(h) => h,
            Err(e) => return self.kdf_error(req_id, e),
        };
        let write = AccountWrite::ChangePassword {
            user,
            password_hash: hash,
            keep,
        };
        match self.state.accounts.write(write).await {
            Ok(AccountOutcome::Updated) => {}
            Ok(_) => return self.error(req_id, ErrorCode::InvalidToken),
            Err(e) => return storage_error(&self.conn, req_id, e),
        }
        crate::metrics::password_change(true);
        self.conn.reply(req_id, &ServerMsg::Ok);
        let closed = self.end_sessions(user, keep, Ended::AllBut);
        tracing::info!(
            user = user.0,
            connections_closed = closed,
            "password changed; other sessions ended"
        );
    }
}
