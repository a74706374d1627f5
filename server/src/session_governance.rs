//! Session dispatch of the governance requests (SPEC.md §8). Room rules
//! live in the room state machine; this file only resolves users, checks
//! request shapes and routes — or, for per-user data (notifications, room
//! log) and the audit trail, reads the store.

use std::sync::Arc;

use confab_protocol::{ErrorCode, Request, RoomId, ServerMsg, UserId, UserRef};
use confab_store::Store;
use tokio::sync::oneshot;

use super::{check_room_name, check_topic, storage_error, Session};
use crate::auth;
use crate::outbound::Conn;
use crate::room::Command;
use crate::shard::{MarkList, ReplyTo, ShardCmd};
use crate::views;

/// Unread notifications pushed to a connection when it authenticates.
const UNREAD_ON_CONNECT: u32 = 50;

impl Session {
    /// Routes one governance request. `Err` is answered as an ERROR.
    pub(super) async fn governance(
        &mut self,
        req_id: u32,
        user: UserId,
        username: String,
        req: Request,
    ) -> Result<(), ErrorCode> {
        let conn = &self.conn;
        let reply = || ReplyTo {
            conn: conn.clone(),
            req_id,
        };
        let router = &self.shared.router;
        let apply = |room: RoomId, cmd: Command| ShardCmd::Apply {
            room,
            cmd,
            reply: reply(),
        };
        match req {
            Request::Invite { room, user: target } => {
                let (target, target_name) = resolve(self.shared.store.as_ref(), &target).await?;
                router
                    .send(
                        room,
                        apply(
                            room,
                            Command::Invite {
                                by: user,
                                target,
                                target_name,
                            },
                        ),
                    )
                    .await
            }
            Request::RespondInvite { room, accept } => {
                router
                    .send(
                        room,
                        apply(
                            room,
                            Command::RespondInvite {
                                user,
                                username,
                                accept,
                            },
                        ),
                    )
                    .await
            }
            Request::RequestJoin { room } => {
                router
                    .send(room, apply(room, Command::RequestJoin { user, username }))
                    .await
            }
            Request::DecideRequest {
                room,
                user: target,
                approve,
            } => {
                router
                    .send(
                        room,
                        apply(
                            room,
                            Command::Decide {
                                by: user,
                                target,
                                approve,
                            },
                        ),
                    )
                    .await
            }
            Request::Kick { room, user: target } => {
                router
                    .send(room, apply(room, Command::Kick { by: user, target }))
                    .await
            }
            Request::Ban { room, user: target } => {
                let (target, target_name) = resolve(self.shared.store.as_ref(), &target).await?;
                router
                    .send(
                        room,
                        apply(
                            room,
                            Command::Ban {
                                by: user,
                                target,
                                target_name,
                            },
                        ),
                    )
                    .await
            }
            Request::Unban { room, user: target } => {
                router
                    .send(room, apply(room, Command::Unban { by: user, target }))
                    .await
            }
            Request::SetRole {
                room,
                user: target,
                role,
            } => {
                router
                    .send(
                        room,
                        apply(
                            room,
                            Command::SetRole {
                                by: user,
                                target,
                                role,
                            },
                        ),
                    )
                    .await
            }
            Request::UpdateRoom { room, name, topic } => {
                let name = check_room_name(&name)?;
                check_topic(&topic)?;
                router
                    .send(
                        room,
                        apply(
                            room,
                            Command::Update {
                                by: user,
                                name,
                                topic,
                            },
                        ),
                    )
                    .await
            }
            Request::ListJoinRequests { room } => {
                router
                    .send(
                        room,
                        ShardCmd::Marks {
                            room,
                            user,
                            which: MarkList::JoinRequests,
                            reply: reply(),
                        },
                    )
                    .await
            }
            Request::ListBans { room } => {
                router
                    .send(
                        room,
                        ShardCmd::Marks {
                            room,
                            user,
                            which: MarkList::Bans,
                            reply: reply(),
                        },
                    )
                    .await
            }
            Request::ListNotifications {
                before,
                limit,
                unread_only,
            } => {
                check_limit(limit)?;
                let (store, conn) = (self.shared.store.clone(), self.conn.clone());
                tokio::spawn(async move {
                    list_notifications(store, conn, req_id, user, before, limit, unread_only).await
                });
                Ok(())
            }
            Request::MarkRead { up_to } => {
                let (store, conn) = (self.shared.store.clone(), self.conn.clone());
                tokio::spawn(async move {
                    match store.mark_read(user, up_to).await {
                        Ok(unread) => conn.reply(req_id, &ServerMsg::UnreadCount { unread }),
                        Err(e) => {
                            storage_error(&conn, req_id, e);
                            false
                        }
                    }
                });
                Ok(())
            }
            Request::RoomLog => {
                let (store, conn) = (self.shared.store.clone(), self.conn.clone());
                tokio::spawn(async move {
                    match store.room_log(user).await {
                        Ok(entries) => {
                            let items = entries.into_iter().map(views::room_log_item).collect();
                            conn.reply(req_id, &ServerMsg::RoomLogList { items })
                        }
                        Err(e) => {
                            storage_error(&conn, req_id, e);
                            false
                        }
                    }
                });
                Ok(())
            }
            Request::RoomAudit {
                room,
                before,
                limit,
            } => {
                check_limit(limit)?;
                let (tx, rx) = oneshot::channel();
                router
                    .send(
                        room,
                        ShardCmd::CheckAdmin {
                            room,
                            user,
                            reply: tx,
                        },
                    )
                    .await?;
                let (store, conn) = (self.shared.store.clone(), self.conn.clone());
                tokio::spawn(async move {
                    match rx.await {
                        Ok(Ok(())) => audit_page(store, conn, req_id, room, before, limit).await,
                        Ok(Err(code)) => {
                            conn.error(req_id, code, code.default_message());
                        }
                        Err(_) => {
                            conn.error(
                                req_id,
                                ErrorCode::ShuttingDown,
                                ErrorCode::ShuttingDown.default_message(),
                            );
                        }
                    }
                });
                Ok(())
            }
            other => {
                tracing::error!(
                    request = other.name(),
                    "request reached governance dispatch by mistake"
                );
                Err(ErrorCode::Internal)
            }
        }
    }

    /// Pushes the user's unread notifications (oldest first) right after
    /// the connection authenticated, so nothing waits for a poll.
    pub(super) fn push_unread_notifications(&self, user: UserId) {
        let (store, conn) = (self.shared.store.clone(), self.conn.clone());
        tokio::spawn(async move {
            match store.notifications(user, 0, UNREAD_ON_CONNECT, true).await {
                Ok(mut unread) => {
                    unread.reverse();
                    for n in &unread {
                        conn.reply(0, &ServerMsg::Notification(views::notification(n)));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not load unread notifications"),
            }
        });
    }
}

fn check_limit(limit: u32) -> Result<(), ErrorCode> {
    if (1..=200).contains(&limit) {
        Ok(())
    } else {
        Err(ErrorCode::InvalidPaging)
    }
}

/// Resolves a user named by id or username to (id, username).
async fn resolve(store: &dyn Store, who: &UserRef) -> Result<(UserId, String), ErrorCode> {
    let found = match who {
        UserRef::Id(id) => store.user_by_id(*id).await,
        UserRef::Name(name) => match auth::normalize_username(name) {
            Ok(name) => store.user_by_name(&name).await,
            Err(_) => return Err(ErrorCode::NoSuchUser),
        },
    };
    match found {
        Ok(Some(u)) => Ok((u.id, u.username)),
        Ok(None) => Err(ErrorCode::NoSuchUser),
        Err(e) => {
            tracing::warn!(error = %e, "user lookup failed");
            Err(ErrorCode::StorageUnavailable)
        }
    }
}

async fn list_notifications(
    store: Arc<dyn Store>,
    conn: Arc<Conn>,
    req_id: u32,
    user: UserId,
    before: u64,
    limit: u32,
    unread_only: bool,
) {
    let page = store
        .notifications(user, before, limit + 1, unread_only)
        .await;
    let unread = store.unread_count(user).await;
    match (page, unread) {
        (Ok(mut items), Ok(unread)) => {
            let has_more = items.len() > limit as usize;
            items.truncate(limit as usize);
            let items = items.iter().map(views::notification).collect();
            conn.reply(
                req_id,
                &ServerMsg::NotificationList {
                    unread,
                    has_more,
                    items,
                },
            );
        }
        (Err(e), _) | (_, Err(e)) => storage_error(&conn, req_id, e),
    }
}

async fn audit_page(
    store: Arc<dyn Store>,
    conn: Arc<Conn>,
    req_id: u32,
    room: RoomId,
    before: u64,
    limit: u32,
) {
    match store.audit(room, before, limit + 1).await {
        Ok(mut records) => {
            let has_more = records.len() > limit as usize;
            records.truncate(limit as usize);
            let items = records.into_iter().map(views::audit_item).collect();
            conn.reply(
                req_id,
                &ServerMsg::AuditPage {
                    room,
                    has_more,
                    items,
                },
            );
        }
        Err(e) => storage_error(&conn, req_id, e),
    }
}
