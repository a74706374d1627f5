//! Slash commands: the words after `/` parsed into a [`Slash`], or a
//! message saying what is wrong (unknown command, missing argument).
//! Pure: no room or user is looked up here.

use confab_sdk::Seq;

/// Every slash command, with its usage line and what it does: `/help`
/// prints this table, Tab completes its names.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("accept", "/accept ROOM", "accept an invitation"),
    ("audit", "/audit", "the current room's audit trail (admins)"),
    ("away", "/away [off]", "show as away, or back"),
    ("ban", "/ban USER", "ban a user from the room (admins)"),
    ("bans", "/bans", "the room's bans (admins)"),
    (
        "create",
        "/create NAME [--private] [TOPIC]",
        "create a room (quote a NAME with spaces)",
    ),
    ("decline", "/decline ROOM", "decline an invitation"),
    (
        "delete",
        "/delete [#SEQ]",
        "delete your last message, or message #SEQ",
    ),
    ("deny", "/deny USER", "deny a join request (admins)"),
    ("deop", "/deop USER", "make an admin a member again (owner)"),
    ("dm", "/dm USER", "open a direct chat"),
    (
        "edit",
        "/edit [#SEQ] TEXT",
        "edit your last message, or message #SEQ",
    ),
    ("help", "/help", "this list"),
    (
        "invite",
        "/invite USER",
        "invite a user to the room (admins)",
    ),
    ("join", "/join ROOM", "join a room by id or name"),
    ("kick", "/kick USER", "remove a member (admins)"),
    ("leave", "/leave [ROOM]", "leave the current room, or ROOM"),
    ("log", "/log", "every room you were ever in"),
    (
        "logout",
        "/logout",
        "end the session, forget the token, quit",
    ),
    ("notifications", "/notifications", "your notifications"),
    ("op", "/op USER", "make a member an admin (owner)"),
    (
        "password",
        "/password",
        "change your password (asked without echo)",
    ),
    (
        "profile",
        "/profile [USER] | /profile set name|bio|email [VALUE]",
        "show or change a profile",
    ),
    ("quit", "/quit", "leave the client (Ctrl-C too)"),
    ("read", "/read", "mark the room and your notifications read"),
    ("rename", "/rename NAME", "rename the room (admins)"),
    ("request", "/request ROOM", "ask to join a private room"),
    ("requests", "/requests", "pending join requests (admins)"),
    (
        "approve",
        "/approve USER",
        "approve a join request (admins)",
    ),
    ("rooms", "/rooms", "every room you can see"),
    (
        "search",
        "/search TEXT",
        "rooms whose name or topic contains TEXT",
    ),
    ("sticker", "/sticker [ID]", "send a sticker, or list them"),
    (
        "upload",
        "/upload PATH",
        "send a file (image, PDF, zip or text)",
    ),
    (
        "download",
        "/download ID [PATH]",
        "save a file of a message (#ID after its name)",
    ),
    ("topic", "/topic TEXT", "set the room's topic (admins)"),
    ("unban", "/unban USER", "lift a ban (admins)"),
];

/// Which profile field `/profile set` changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileField {
    Name,
    Bio,
    Email,
}

/// A message to edit or delete: the user's last one, or by seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Last,
    Seq(Seq),
}

/// A parsed slash command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slash {
    Join(String),
    Leave(Option<String>),
    Create {
        name: String,
        topic: String,
        private: bool,
    },
    Rooms,
    Search(String),
    Dm(String),
    Invite(String),
    Accept(String),
    Decline(String),
    Request(String),
    Requests,
    Approve(String),
    Deny(String),
    Kick(String),
    Ban(String),
    Unban(String),
    Bans,
    Op(String),
    Deop(String),
    Rename(String),
    Topic(String),
    Edit(Which, String),
    Delete(Which),
    Sticker(Option<String>),
    /// Upload the file at this path and send it to the room.
    Upload(String),
    /// Save file `id` to a path (the state machine fills in the file's
    /// own name when none is given and the file is in a loaded message).
    Download(u64, Option<String>),
    Notifications,
    Read,
    Log,
    Audit,
    Away(bool),
    Profile(Option<String>),
    SetProfile(ProfileField, String),
    Password,
    Logout,
    Help,
    Quit,
}

impl Slash {
    /// Whether the command acts on the room being shown.
    pub fn needs_room(&self) -> bool {
        matches!(
            self,
            Slash::Leave(None)
                | Slash::Invite(_)
                | Slash::Requests
                | Slash::Approve(_)
                | Slash::Deny(_)
                | Slash::Kick(_)
                | Slash::Ban(_)
                | Slash::Unban(_)
                | Slash::Bans
                | Slash::Op(_)
                | Slash::Deop(_)
                | Slash::Rename(_)
                | Slash::Topic(_)
                | Slash::Edit(..)
                | Slash::Delete(_)
                | Slash::Sticker(Some(_))
                | Slash::Upload(_)
                | Slash::Audit
                | Slash::Profile(Some(_))
        )
    }
}

/// Splits on white space, keeping "double-quoted words" together.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            c => {
                current.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(current);
    }
    out
}

fn usage(name: &str) -> String {
    let line = COMMANDS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or("", |(_, u, _)| *u);
    format!("usage: {line}")
}

/// `#12` as a seq.
fn seq_arg(word: &str) -> Option<Seq> {
    word.strip_prefix('#')?.parse().ok().map(Seq)
}

/// Parses `line` (without its leading `/`).
pub fn parse(line: &str) -> Result<Slash, String> {
    let line = line.trim();
    let (name, rest) = match line.split_once(char::is_whitespace) {
        Some((n, r)) => (n, r.trim()),
        None => (line, ""),
    };
    let name = name.to_ascii_lowercase();
    let args = words(rest);
    // One argument, required.
    let one = |make: fn(String) -> Slash| -> Result<Slash, String> {
        match args.as_slice() {
            [a] => Ok(make(a.clone())),
            _ => Err(usage(&name)),
        }
    };
    // The rest of the line, required.
    let text = |make: fn(String) -> Slash| -> Result<Slash, String> {
        if rest.is_empty() {
            Err(usage(&name))
        } else {
            Ok(make(rest.to_owned()))
        }
    };
    // A room's name: the words, quotes taken off.
    let room = |make: fn(String) -> Slash| -> Result<Slash, String> {
        if args.is_empty() {
            Err(usage(&name))
        } else {
            Ok(make(args.join(" ")))
        }
    };
    let none = |cmd: Slash| -> Result<Slash, String> {
        if args.is_empty() {
            Ok(cmd)
        } else {
            Err(usage(&name))
        }
    };
    match name.as_str() {
        "join" | "j" => room(Slash::Join),
        "leave" | "part" => Ok(Slash::Leave((!args.is_empty()).then(|| args.join(" ")))),
        "create" => {
            let private = args.iter().any(|a| a == "--private" || a == "-p");
            let mut plain = args.iter().filter(|a| *a != "--private" && *a != "-p");
            let name = plain.next().ok_or_else(|| usage("create"))?.clone();
            let topic = plain.cloned().collect::<Vec<_>>().join(" ");
            Ok(Slash::Create {
                name,
                topic,
                private,
            })
        }
        "rooms" => Ok(if rest.is_empty() {
            Slash::Rooms
        } else {
            Slash::Search(rest.to_owned())
        }),
        "search" => text(Slash::Search),
        "dm" | "msg" => one(Slash::Dm),
        "invite" => one(Slash::Invite),
        "accept" => room(Slash::Accept),
        "decline" => room(Slash::Decline),
        "request" => room(Slash::Request),
        "requests" => none(Slash::Requests),
        "approve" => one(Slash::Approve),
        "deny" => one(Slash::Deny),
        "kick" => one(Slash::Kick),
        "ban" => one(Slash::Ban),
        "unban" => one(Slash::Unban),
        "bans" => none(Slash::Bans),
        "op" => one(Slash::Op),
        "deop" => one(Slash::Deop),
        "rename" => text(Slash::Rename),
        "topic" => Ok(Slash::Topic(rest.to_owned())),
        "edit" if seq_arg(rest).is_some() => Err(usage("edit")),
        "edit" => {
            let (which, body) = match rest.split_once(char::is_whitespace) {
                Some((first, body)) if seq_arg(first).is_some() => {
                    (Which::Seq(seq_arg(first).unwrap_or(Seq(0))), body.trim())
                }
                _ => (Which::Last, rest),
            };
            if body.is_empty() {
                Err(usage("edit"))
            } else {
                Ok(Slash::Edit(which, body.to_owned()))
            }
        }
        "delete" => match args.as_slice() {
            [] => Ok(Slash::Delete(Which::Last)),
            [a] => seq_arg(a)
                .map(|s| Slash::Delete(Which::Seq(s)))
                .ok_or_else(|| usage("delete")),
            _ => Err(usage("delete")),
        },
        "sticker" => match args.as_slice() {
            [] => Ok(Slash::Sticker(None)),
            [id] => Ok(Slash::Sticker(Some(id.trim_matches(':').to_owned()))),
            _ => Err(usage("sticker")),
        },
        "upload" if rest.is_empty() => Err(usage("upload")),
        "upload" => Ok(Slash::Upload(rest.trim_matches('"').to_owned())),
        "download" => {
            let id = args
                .first()
                .and_then(|a| a.trim_start_matches('#').parse::<u64>().ok());
            match (id, args.len()) {
                (Some(id), 1) => Ok(Slash::Download(id, None)),
                (Some(id), 2) => Ok(Slash::Download(id, Some(args[1].clone()))),
                _ => Err(usage("download")),
            }
        }
        "notifications" | "notifs" => none(Slash::Notifications),
        "read" => none(Slash::Read),
        "log" => none(Slash::Log),
        "audit" => none(Slash::Audit),
        "away" => match args.as_slice() {
            [] => Ok(Slash::Away(true)),
            [a] if a == "off" || a == "back" => Ok(Slash::Away(false)),
            _ => Err(usage("away")),
        },
        "profile" => match args.first().map(String::as_str) {
            None => Ok(Slash::Profile(None)),
            Some("set") => {
                let field = match args.get(1).map(String::as_str) {
                    Some("name") => ProfileField::Name,
                    Some("bio") => ProfileField::Bio,
                    Some("email") => ProfileField::Email,
                    _ => return Err(usage("profile")),
                };
                Ok(Slash::SetProfile(field, args[2..].join(" ")))
            }
            Some(user) if args.len() == 1 => Ok(Slash::Profile(Some(user.to_owned()))),
            Some(_) => Err(usage("profile")),
        },
        "password" | "passwd" => none(Slash::Password),
        "logout" => none(Slash::Logout),
        "help" | "?" => Ok(Slash::Help),
        "quit" | "exit" | "q" => none(Slash::Quit),
        "" => Err("type a command after /, or /help".to_owned()),
        other => Err(format!("unknown command /{other}: /help lists them")),
    }
}

/// Command names starting with `prefix`, in order.
pub fn complete(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = COMMANDS
        .iter()
        .map(|(n, _, _)| n.to_string())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_with_their_arguments() {
        assert_eq!(parse("join general"), Ok(Slash::Join("general".into())));
        assert_eq!(parse("JOIN #3"), Ok(Slash::Join("#3".into())));
        assert_eq!(
            parse(r#"create "weekend trip" --private bikes and tents"#),
            Ok(Slash::Create {
                name: "weekend trip".into(),
                topic: "bikes and tents".into(),
                private: true
            })
        );
        assert_eq!(
            parse("edit #12 fixed typo"),
            Ok(Slash::Edit(Which::Seq(Seq(12)), "fixed typo".into()))
        );
        assert_eq!(
            parse("edit 12 apples"),
            Ok(Slash::Edit(Which::Last, "12 apples".into()))
        );
        assert_eq!(parse("delete"), Ok(Slash::Delete(Which::Last)));
        assert_eq!(parse("delete #4"), Ok(Slash::Delete(Which::Seq(Seq(4)))));
        assert_eq!(parse("away off"), Ok(Slash::Away(false)));
        assert_eq!(
            parse("profile set bio likes tea"),
            Ok(Slash::SetProfile(ProfileField::Bio, "likes tea".into()))
        );
        assert_eq!(
            parse("sticker :wave:"),
            Ok(Slash::Sticker(Some("wave".into())))
        );
        assert_eq!(parse("rooms"), Ok(Slash::Rooms));
        assert_eq!(parse("leave"), Ok(Slash::Leave(None)));
    }

    #[test]
    fn unknown_commands_and_missing_arguments_say_so() {
        assert_eq!(
            parse("frobnicate now"),
            Err("unknown command /frobnicate: /help lists them".into())
        );
        assert_eq!(parse("kick"), Err("usage: /kick USER".into()));
        assert_eq!(parse("kick a b"), Err("usage: /kick USER".into()));
        assert_eq!(parse("join"), Err("usage: /join ROOM".into()));
        assert_eq!(parse("edit #3"), Err("usage: /edit [#SEQ] TEXT".into()));
        assert_eq!(parse("delete 3"), Err("usage: /delete [#SEQ]".into()));
        assert_eq!(parse("bans now"), Err("usage: /bans".into()));
        assert!(parse("").is_err());
    }

    #[test]
    fn every_listed_command_parses_or_asks_for_its_arguments() {
        for (name, _, _) in COMMANDS {
            match parse(name) {
                Ok(_) => {}
                Err(e) => assert!(e.starts_with("usage: /"), "/{name}: {e}"),
            }
        }
    }

    #[test]
    fn completion_of_command_names() {
        assert_eq!(complete("de"), vec!["decline", "delete", "deny", "deop"]);
        assert_eq!(complete("kic"), vec!["kick"]);
        assert!(complete("zz").is_empty());
    }
}
