//! Carrying out a slash command against the server: users and rooms
//! named by the user looked up (members, bans, join requests,
//! invitations), the request made, and what to show returned as
//! [`Update`]s.

use confab_sdk::{
    Client, Error, ProfileUpdate, RichText, Role, RoomId, RoomInfo, UserEntry, UserId, UserRef,
    Visibility,
};

use super::command::{ProfileField, Slash, Which, COMMANDS};
use super::effect::{Panel, Update};
use crate::connect::{parse_room_id, resolve_room};
use crate::files::{content_type_of, http_api};
use crate::show::human_size;
use crate::show::{clock, rfc3339, role_name};

fn need(room: Option<RoomId>) -> Result<RoomId, Error> {
    // The state machine refuses room commands without a room; this is
    // the backstop.
    room.ok_or_else(|| Error::Server {
        code: confab_sdk::ErrorCode::RoomNotFound.into(),
        message: "no room selected".to_owned(),
        retry_after: None,
    })
}

/// A user named in a list (members, bans, join requests), by username.
fn find_user<'a>(
    mut names: impl Iterator<Item = (UserId, &'a str)>,
    wanted: &str,
    what: &str,
) -> Result<UserId, Error> {
    let wanted = wanted.trim_start_matches('@');
    names
        .find(|(_, n)| n.eq_ignore_ascii_case(wanted))
        .map(|(id, _)| id)
        .ok_or_else(|| Error::Server {
            code: confab_sdk::ErrorCode::NoSuchUser.into(),
            message: format!("{wanted} is not {what}"),
            retry_after: None,
        })
}

async fn member_id(client: &Client, room: RoomId, name: &str) -> Result<UserId, Error> {
    let members = client.members(room).await?;
    find_user(
        members.iter().map(|m| (m.user, m.username.as_str())),
        name,
        "a member of this room",
    )
}

fn entry_lines(users: &[UserEntry]) -> Vec<String> {
    if users.is_empty() {
        return vec!["(none)".to_owned()];
    }
    users
        .iter()
        .map(|u| format!("{}  since {}", u.username, rfc3339(u.at)))
        .collect()
}

fn room_lines(rooms: &[RoomInfo], total: u32) -> Vec<String> {
    let mut lines: Vec<String> = rooms
        .iter()
        .map(|r| {
            let vis = match r.visibility {
                Visibility::Public => "public",
                Visibility::Private => "private",
            };
            format!(
                "#{:<5} {:<24} {vis:<7} {:>4} members  {}",
                r.id.0, r.name, r.member_count, r.topic
            )
        })
        .collect();
    lines.push(format!("{total} rooms; /join ROOM to join one"));
    lines
}

async fn room_by_invitation(client: &Client, name: &str) -> Result<RoomId, Error> {
    if let Some(id) = parse_room_id(name) {
        return Ok(id);
    }
    let page = client.notifications(None, 200, false).await?;
    page.items
        .iter()
        .find(|n| {
            n.kind == confab_sdk::NotificationKind::Invited
                && n.room_name.eq_ignore_ascii_case(name)
        })
        .map(|n| n.room)
        .ok_or_else(|| Error::Server {
            code: confab_sdk::ErrorCode::NotInvited.into(),
            message: format!("no invitation to a room named {name:?}"),
            retry_after: None,
        })
}

async fn room_by_name(client: &Client, name: &str) -> Result<RoomId, Error> {
    if let Some(id) = parse_room_id(name) {
        return Ok(id);
    }
    match resolve_room(client, name).await {
        Ok(room) => Ok(room.id),
        Err(f) => Err(Error::Server {
            code: confab_sdk::ErrorCode::RoomNotFound.into(),
            message: f.message,
            retry_after: None,
        }),
    }
}

fn done(text: impl Into<String>) -> Vec<Update> {
    vec![Update::Done(text.into())]
}

pub async fn slash(
    client: &Client,
    room: Option<RoomId>,
    cmd: Slash,
) -> Result<Vec<Update>, Error> {
    Ok(match cmd.clone() {
        Slash::Join(name) => {
            let id = room_by_name(client, &name).await?;
            vec![Update::Entered(client.join_room(id).await?)]
        }
        Slash::Leave(name) => {
            let id = match name {
                Some(n) => room_by_name(client, &n).await?,
                None => need(room)?,
            };
            client.leave_room(id).await?;
            vec![Update::Left(id)]
        }
        Slash::Create {
            name,
            topic,
            private,
        } => {
            let vis = if private {
                Visibility::Private
            } else {
                Visibility::Public
            };
            vec![Update::Entered(
                client.create_room(&name, &topic, vis).await?,
            )]
        }
        Slash::Rooms | Slash::Search(_) => {
            let query = match &cmd {
                Slash::Search(q) => q.as_str(),
                _ => "",
            };
            let page = client.list_rooms(query, 0, 200).await?;
            vec![Update::Panel(Panel {
                title: if query.is_empty() {
                    "Rooms".to_owned()
                } else {
                    format!("Rooms matching {query:?}")
                },
                lines: room_lines(&page.rooms, page.total),
            })]
        }
        Slash::Dm(user) => {
            let info = client
                .open_direct(UserRef::name(user.trim_start_matches('@')))
                .await?;
            vec![Update::Entered(info)]
        }
        Slash::Invite(user) => {
            client
                .invite(need(room)?, UserRef::name(user.trim_start_matches('@')))
                .await?;
            done(format!("invited {user}"))
        }
        Slash::Accept(name) => {
            let id = room_by_invitation(client, &name).await?;
            vec![Update::Entered(client.accept_invite(id).await?)]
        }
        Slash::Decline(name) => {
            let id = room_by_invitation(client, &name).await?;
            client.decline_invite(id).await?;
            done("invitation declined")
        }
        Slash::Request(name) => {
            let id = room_by_name(client, &name).await?;
            client.request_join(id).await?;
            done("join request sent: the room's admins decide")
        }
        Slash::Requests => {
            let users = client.join_requests(need(room)?).await?;
            vec![Update::Panel(Panel {
                title: "Join requests (/approve USER, /deny USER)".to_owned(),
                lines: entry_lines(&users),
            })]
        }
        Slash::Approve(user) | Slash::Deny(user) => {
            let approve = matches!(cmd, Slash::Approve(_));
            let room = need(room)?;
            let users = client.join_requests(room).await?;
            let id = find_user(
                users.iter().map(|u| (u.user, u.username.as_str())),
                &user,
                "asking to join",
            )?;
            client.decide_request(room, id, approve).await?;
            done(if approve {
                format!("{user} may join")
            } else {
                format!("{user}'s request denied")
            })
        }
        Slash::Kick(user) => {
            let room = need(room)?;
            let id = member_id(client, room, &user).await?;
            client.kick(room, id).await?;
            done(format!("kicked {user}"))
        }
        Slash::Ban(user) => {
            client
                .ban(need(room)?, UserRef::name(user.trim_start_matches('@')))
                .await?;
            done(format!("banned {user}"))
        }
        Slash::Unban(user) => {
            let room = need(room)?;
            let bans = client.bans(room).await?;
            let id = find_user(
                bans.iter().map(|u| (u.user, u.username.as_str())),
                &user,
                "banned here",
            )?;
            client.unban(room, id).await?;
            done(format!("unbanned {user}"))
        }
        Slash::Bans => {
            let users = client.bans(need(room)?).await?;
            vec![Update::Panel(Panel {
                title: "Bans (/unban USER)".to_owned(),
                lines: entry_lines(&users),
            })]
        }
        Slash::Op(user) | Slash::Deop(user) => {
            let role = if matches!(cmd, Slash::Op(_)) {
                Role::Admin
            } else {
                Role::Member
            };
            let room = need(room)?;
            let id = member_id(client, room, &user).await?;
            client.set_role(room, id, role).await?;
            done(format!("{user} is now {}", role_name(role)))
        }
        Slash::Rename(name) | Slash::Topic(name) => {
            let room = need(room)?;
            let info = client
                .my_rooms()
                .await?
                .into_iter()
                .find(|r| r.id == room)
                .ok_or(Error::Disconnected)?;
            let (new_name, topic) = match &cmd {
                Slash::Rename(_) => (name.as_str(), info.topic.as_str()),
                _ => (info.name.as_str(), name.as_str()),
            };
            client.update_room(room, new_name, topic).await?;
            done("room updated")
        }
        Slash::Edit(which, text) => {
            let Which::Seq(seq) = which else {
                return Ok(vec![Update::Failed(
                    "you have no message here to edit".into(),
                )]);
            };
            client.edit_message(need(room)?, seq, &text).await?;
            vec![]
        }
        Slash::Delete(which) => {
            let Which::Seq(seq) = which else {
                return Ok(vec![Update::Failed(
                    "you have no message here to delete".into(),
                )]);
            };
            client.delete_message(need(room)?, seq).await?;
            vec![]
        }
        Slash::Sticker(None) => {
            let stickers = client.list_stickers().await?;
            let mut lines = Vec::new();
            for s in &stickers {
                lines.push(format!("{}  ({}): /sticker {}", s.id, s.name, s.id));
                lines.extend(s.art.lines().map(|l| format!("    {l}")));
            }
            vec![
                Update::Stickers(stickers),
                Update::Panel(Panel {
                    title: "Stickers".to_owned(),
                    lines,
                }),
            ]
        }
        Slash::Sticker(Some(id)) => {
            client.send_sticker(need(room)?, &id).await?;
            vec![]
        }
        Slash::Upload(path) => {
            let room = need(room)?;
            let bytes = tokio::fs::read(&path).await?;
            let name = std::path::Path::new(&path)
                .file_name()
                .map_or_else(|| path.clone(), |n| n.to_string_lossy().into_owned());
            let stored = http_api(client)?
                .upload(room, &name, content_type_of(&name), bytes)
                .await?;
            client
                .send_files(room, &RichText::new(), &[stored.id])
                .await?;
            vec![Update::Done(format!(
                "sent {name} ({}) as file #{}",
                human_size(stored.size),
                stored.id
            ))]
        }
        Slash::Download(id, path) => {
            let path = path.unwrap_or_else(|| format!("file-{id}"));
            let api = http_api(client)?;
            let mut out = tokio::fs::File::create(&path).await?;
            let written = match api.download_to(id, &mut out).await {
                Ok(n) => n,
                Err(e) => {
                    // Leave nothing half-written (or empty) behind.
                    drop(out);
                    let _ = tokio::fs::remove_file(&path).await;
                    return Err(e);
                }
            };
            vec![Update::Done(format!(
                "saved file #{id} to {path} ({})",
                human_size(written)
            ))]
        }
        Slash::Notifications => {
            let page = client.notifications(None, 50, false).await?;
            let mut lines: Vec<String> = page
                .items
                .iter()
                .map(|n| {
                    format!(
                        "{} {} {} {} in {} (#{})",
                        if n.read { " " } else { "•" },
                        clock(n.at),
                        n.actor_name,
                        n.kind.name().unwrap_or("?"),
                        n.room_name,
                        n.room.0
                    )
                })
                .collect();
            if lines.is_empty() {
                lines.push("(none)".to_owned());
            }
            vec![
                Update::NotificationsUnread(page.unread),
                Update::Panel(Panel {
                    title: format!("Notifications ({} unread; /read marks them)", page.unread),
                    lines,
                }),
            ]
        }
        Slash::Read => {
            let mut out = Vec::new();
            if let Some(room) = room {
                let last = client
                    .history(room, None, 1)
                    .await?
                    .events
                    .first()
                    .map(|e| e.seq);
                if let Some(seq) = last {
                    client.set_read_marker(room, seq).await?;
                }
            }
            let page = client.notifications(None, 1, false).await?;
            if let Some(newest) = page.items.first() {
                out.push(Update::NotificationsUnread(
                    client.mark_read(newest.id).await?,
                ));
            }
            out.push(Update::Done("marked read".to_owned()));
            out
        }
        Slash::Log => {
            let items = client.room_log().await?;
            let lines = items
                .iter()
                .map(|i| {
                    format!(
                        "#{:<5} {:<24} joined {}  {}",
                        i.room.id.0,
                        i.room.name,
                        rfc3339(i.first_joined_at),
                        match i.left_at {
                            None => "member".to_owned(),
                            Some(at) =>
                                format!("{} {}", i.reason.name().unwrap_or("left"), rfc3339(at)),
                        }
                    )
                })
                .collect();
            vec![Update::Panel(Panel {
                title: "Room log".to_owned(),
                lines,
            })]
        }
        Slash::Audit => {
            let page = client.room_audit(need(room)?, None, 100).await?;
            let lines = page
                .items
                .iter()
                .map(|a| {
                    let target = if a.target_name.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", a.target_name)
                    };
                    format!(
                        "{} {} {}{target} {}",
                        rfc3339(a.at),
                        if a.actor_name.is_empty() {
                            "system"
                        } else {
                            &a.actor_name
                        },
                        a.action,
                        a.detail
                    )
                })
                .collect();
            vec![Update::Panel(Panel {
                title: "Audit trail".to_owned(),
                lines,
            })]
        }
        Slash::Away(away) => {
            client.set_away(away).await?;
            done(if away { "you are away" } else { "you are back" })
        }
        Slash::Profile(user) => {
            let id = match user {
                None => client
                    .session()
                    .map(|s| s.user)
                    .ok_or(Error::Disconnected)?,
                Some(name) => member_id(client, need(room)?, &name).await?,
            };
            let p = client.profile(id).await?;
            let mut lines = vec![format!("username: {}", p.username)];
            lines.push(format!(
                "display name: {}",
                p.display_name.as_deref().unwrap_or("(none)")
            ));
            lines.push(format!("bio: {}", p.bio));
            if let Some(email) = &p.email {
                lines.push(format!("email: {email}"));
            }
            vec![Update::Panel(Panel {
                title: format!("Profile of {}", p.username),
                lines,
            })]
        }
        Slash::SetProfile(field, value) => {
            let me = client
                .session()
                .map(|s| s.user)
                .ok_or(Error::Disconnected)?;
            let current = client.profile(me).await?;
            let mut update = ProfileUpdate {
                display_name: current.display_name,
                bio: current.bio,
                email: current.email,
            };
            let value = (!value.is_empty()).then_some(value);
            match field {
                ProfileField::Name => update.display_name = value,
                ProfileField::Bio => update.bio = value.unwrap_or_default(),
                ProfileField::Email => update.email = value,
            }
            client.update_profile(update).await?;
            done("profile saved")
        }
        Slash::Logout => {
            let _ = client.logout().await;
            vec![Update::LoggedOut]
        }
        Slash::Help => vec![Update::Panel(help())],
        // Handled by the state machine itself.
        Slash::Password | Slash::Quit => vec![],
    })
}

/// The `/help` panel.
pub fn help() -> Panel {
    let mut lines: Vec<String> = COMMANDS
        .iter()
        .map(|(_, usage, what)| format!("{usage:<40} {what}"))
        .collect();
    lines.sort();
    lines.extend([
        String::new(),
        "Enter sends · Alt+Enter new line · Up/Down input history · Tab completes".to_owned(),
        "Alt+Up/Alt+Down or Ctrl-P/Ctrl-N switch rooms · PageUp/PageDown scroll · Esc closes this"
            .to_owned(),
        "Ctrl-C quits · //text sends a message starting with /".to_owned(),
    ]);
    Panel {
        title: "Commands".to_owned(),
        lines,
    }
}
