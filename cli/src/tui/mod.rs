//! The full-screen UI.
//!
//! - [`app`] and [`keys`]: the state machine — server events, effect
//!   outcomes and keys in; state and [`effect::Effect`]s out. No I/O.
//! - [`render`]: the screen as a pure function of the state.
//! - [`room`]: a room's loaded events, edits and deletions applied.
//! - [`effect`] and [`slash`]: the only parts that talk to the server, one
//!   effect at a time in the order asked (so messages keep their order).
//! - this module: the loop that feeds terminal keys, SDK events and effect
//!   outcomes to the state machine, and draws after each.

pub mod app;
pub mod command;
pub mod effect;
pub mod input;
mod keys;
pub mod markup;
pub mod render;
pub mod room;
pub mod slash;
#[cfg(test)]
mod tests;

use std::io::IsTerminal;

use confab_sdk::Client;
use crossterm::event::Event as TermEvent;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use crossterm::ExecutableCommand;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::sync::mpsc;

use self::app::App;
use self::effect::{execute, Effect, Update};
use crate::connect::Target;
use crate::exit::{Failure, Kind};
use crate::script::{self, PasswordFrom};
use crate::session;

/// Connects with the stored session, logging in first (on the terminal)
/// when there is none or it no longer works.
async fn connect_or_login(target: &Target) -> Result<Client, Failure> {
    match target.connect_stored(true).await {
        Ok((client, _)) => return Ok(client),
        Err(f) if f.kind == Kind::Auth && std::io::stdin().is_terminal() => {
            eprintln!(
                "{}",
                f.message
                    .replace("run `confab login` again", "log in again")
            );
        }
        Err(f) => return Err(f),
    }
    let username = script::ask_username(None)?;
    let password = script::read_password(PasswordFrom::Terminal, "password: ")?;
    script::login(target, &username, &password, false).await?;
    Ok(target.connect_stored(true).await?.0)
}

/// Puts the terminal back as it was (also on a panic).
fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = std::io::stdout().execute(LeaveAlternateScreen);
    let _ = std::io::stdout().execute(crossterm::cursor::Show);
}

/// Runs the UI until the user quits.
pub async fn run(target: &Target) -> Result<(), Failure> {
    let client = connect_or_login(target).await?;
    let me = client
        .session()
        .ok_or_else(|| Failure::new(Kind::Auth, "not logged in"))?;
    let url = target.url(session::load().as_ref());
    let app = App::new(me.user, &me.username, &url);

    enable_raw_mode()?;
    std::io::stdout().execute(EnterAlternateScreen)?;
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        default_hook(info);
    }));
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    let result = event_loop(&mut terminal, client.clone(), app).await;
    restore_terminal();
    client.close().await;
    result
}

async fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<std::io::Stdout>>,
    client: Client,
    mut app: App,
) -> Result<(), Failure> {
    // crossterm's reader blocks: it gets a thread of its own.
    let (keys_tx, mut keys) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while let Ok(ev) = crossterm::event::read() {
            if keys_tx.send(ev).is_err() {
                break;
            }
        }
    });
    // One worker runs the effects in order.
    let (work, mut queue) = mpsc::unbounded_channel::<Effect>();
    let (updates_tx, mut updates) = mpsc::unbounded_channel::<Update>();
    let worker = client.clone();
    tokio::spawn(async move {
        while let Some(effect) = queue.recv().await {
            for update in execute(&worker, effect).await {
                if updates_tx.send(update).is_err() {
                    return;
                }
            }
        }
    });
    let mut events = client.events();
    let mut stream_open = true;
    let _ = work.send(Effect::LoadRooms);
    app.page = page_for(terminal.size()?.height);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        terminal.draw(|frame| render::render(frame, &app))?;
        if app.quit {
            return Ok(());
        }
        let effects = tokio::select! {
            key = keys.recv() => match key {
                Some(TermEvent::Key(k)) => app.on_key(k),
                Some(TermEvent::Paste(text)) => {
                    for c in text.chars() {
                        app.editor.insert(c);
                    }
                    vec![]
                }
                Some(TermEvent::Resize(_, h)) => {
                    app.page = page_for(h);
                    vec![]
                }
                Some(_) => vec![],
                // The terminal is gone.
                None => return Ok(()),
            },
            event = events.next(), if stream_open => match event {
                Some(e) => app.on_event(e),
                None => {
                    stream_open = false;
                    app.on_stream_end();
                    vec![]
                }
            },
            _ = tick.tick() => app.on_tick(),
            Some(update) = updates.recv() => {
                if update == Update::LoggedOut {
                    session::remove()?;
                }
                app.apply(update)
            }
        };
        for effect in effects {
            if effect != Effect::Quit {
                let _ = work.send(effect);
            }
        }
    }
}

/// How often [`App::on_tick`] runs: within SPEC.md's 2-4 s for renewing
/// a typing notice.
const TICK: std::time::Duration = std::time::Duration::from_secs(3);

/// PageUp's step for a terminal `height` rows high.
fn page_for(height: u16) -> usize {
    usize::from(height.saturating_sub(4)).max(1)
}
