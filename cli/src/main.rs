//! `confab`, the binary: parses the command line and hands over to
//! `confab_cli` (the library, so that tests drive its parts directly).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use confab_cli::connect::Target;
use confab_cli::exit::{self, Failure};
use confab_cli::script::{self, PasswordFrom};
use confab_cli::tui;

/// Terminal client for the Confab chat server.
///
/// Without a command, opens the full-screen chat UI. Exit codes: 0 ok,
/// 1 other error, 2 bad usage, 3 server unreachable, 4 not logged in or
/// session expired, 5 not found, 6 refused by the server.
#[derive(Debug, Parser)]
#[command(name = "confab", version)]
struct Cli {
    /// Server URL: confab://host:port, confabs://host:port (TLS),
    /// ws://host:port/ws or wss://host:port/ws. For a cluster, its nodes
    /// comma-separated (confab://h:7400,confab://h:7401): the first that
    /// answers is used; after losing it, the same node is tried first,
    /// then the next after each failed attempt. Defaults to the stored
    /// session's server(s), else confab://127.0.0.1:7400.
    #[arg(long, env = "CONFAB_URL", global = true, value_name = "URL[,URL…]")]
    url: Option<String>,
    /// Trust this PEM certificate (a self-signed server's, or a private
    /// CA) for confabs:// and wss://.
    #[arg(long, global = true, value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// Trust exactly the server certificate with this SHA-256 fingerprint.
    #[arg(long, global = true, value_name = "SHA256")]
    fingerprint: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Log in and store the session token (mode 0600) for later commands.
    Login(Credentials),
    /// Create an account, log in and store the session token.
    Register(Credentials),
    /// End the stored session on the server and remove it from disk.
    Logout,
    /// Send TEXT to ROOM (by id, #id or name).
    Send {
        room: String,
        /// The message; several words are joined with spaces.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
        /// Print the acknowledgement (room, seq, time) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print ROOM's recent events, then new ones as they come, until
    /// interrupted.
    Tail {
        room: String,
        /// How many past events to print first.
        #[arg(long, short = 'n', default_value_t = 10)]
        lines: u32,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// List your rooms with their unread counts.
    Rooms {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Print ROOM's last events, oldest first.
    History {
        room: String,
        /// How many events.
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: u32,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct Credentials {
    /// The username (asked for when left out).
    username: Option<String>,
    /// Read the password from the first line of standard input instead of
    /// the terminal.
    #[arg(long)]
    password_stdin: bool,
}

impl Credentials {
    fn source(&self) -> PasswordFrom {
        if self.password_stdin {
            PasswordFrom::Stdin
        } else {
            PasswordFrom::Terminal
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let target = Target {
        url: cli.url,
        ca_cert: cli.ca_cert,
        fingerprint: cli.fingerprint,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("confab: cannot start: {e}");
            return ExitCode::from(exit::Kind::Other.code());
        }
    };
    match runtime.block_on(run(target, cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("confab: {failure}");
            failure.exit_code()
        }
    }
}

async fn run(target: Target, command: Option<Command>) -> Result<(), Failure> {
    match command {
        None => tui::run(&target).await,
        Some(Command::Login(c)) | Some(Command::Register(c))
            if c.username.is_none() && c.password_stdin =>
        {
            Err(Failure::usage(
                "--password-stdin needs the username as an argument",
            ))
        }
        Some(Command::Login(c)) => credentials(&target, c, false).await,
        Some(Command::Register(c)) => credentials(&target, c, true).await,
        Some(Command::Logout) => script::logout(&target).await,
        Some(Command::Send { room, text, json }) => {
            script::send(&target, &room, &text.join(" "), json).await
        }
        Some(Command::Tail { room, lines, json }) => {
            script::tail(&target, &room, lines, json).await
        }
        Some(Command::Rooms { json }) => script::rooms(&target, json).await,
        Some(Command::History { room, limit, json }) => {
            script::history(&target, &room, limit, json).await
        }
    }
}

async fn credentials(target: &Target, c: Credentials, register: bool) -> Result<(), Failure> {
    let source = c.source();
    let username = script::ask_username(c.username)?;
    let password = script::read_password(source, "password: ")?;
    let stored = script::login(target, &username, &password, register).await?;
    eprintln!("logged in to {} as {}", stored.url, stored.username);
    Ok(())
}
