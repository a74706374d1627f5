//! Drawing: the whole screen as a pure function of [`App`], so that the
//! golden-buffer tests draw it on ratatui's `TestBackend`.
//!
//! ```text
//! rooms | messages (header, entries, pending sends) | members
//! status line
//! input (one row per line of the input)
//! ```
//! Narrow terminals drop the members pane, then the rooms pane.

use confab_sdk::{Color as Palette, Presence, Role, Span as Format, Style as Format2};
use ratatui::layout::{Constraint, Direction, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;
use unicode_width::UnicodeWidthChar;

use super::app::{App, Body, Conn, Entry, OutState};
use crate::show::clock;

/// Widths of the side panes.
const ROOMS_WIDTH: u16 = 20;
const MEMBERS_WIDTH: u16 = 18;
/// The input grows with its lines up to this many rows.
const MAX_INPUT_ROWS: u16 = 5;

fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

/// Draws the whole screen.
pub fn render(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if area.width == 0 || area.height == 0 {
        return;
    }
    let input_lines = app.editor.shown().split('\n').count() as u16;
    let input_rows = input_lines
        .clamp(1, MAX_INPUT_ROWS)
        .min(area.height.saturating_sub(1).max(1));
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Min(0),
            Constraint::Length(1),
            Constraint::Length(input_rows),
        ])
        .split(area);
    let (main, status, input) = (rows[0], rows[1], rows[2]);

    let show_rooms = main.width >= 50;
    let show_members = main.width >= 80;
    let mut constraints = Vec::new();
    if show_rooms {
        constraints.push(Constraint::Length(ROOMS_WIDTH));
    }
    constraints.push(Constraint::Min(1));
    if show_members {
        constraints.push(Constraint::Length(MEMBERS_WIDTH));
    }
    let cols = Layout::default()
        .direction(Direction::Horizontal)
        .constraints(constraints)
        .split(main);
    let mut i = 0;
    if show_rooms {
        rooms_pane(frame, app, cols[0]);
        i = 1;
    }
    messages_pane(frame, app, cols[i]);
    if show_members {
        members_pane(frame, app, cols[i + 1]);
    }
    status_line(frame, app, status);
    input_line(frame, app, input);
}

fn rooms_pane(frame: &mut Frame, app: &App, area: Rect) {
    let block = Block::new().borders(Borders::RIGHT).border_style(dim());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let mut lines = vec![Line::styled(
        "Rooms",
        Style::new().add_modifier(Modifier::BOLD),
    )];
    let mut direct_heading = false;
    for room in &app.rooms {
        if room.is_direct() && !direct_heading {
            direct_heading = true;
            lines.push(Line::styled(
                "Direct",
                Style::new().add_modifier(Modifier::BOLD),
            ));
        }
        let badge = match (room.mentioned, room.unread) {
            (true, n) => format!(" @{n}"),
            (false, 0) => String::new(),
            (false, n) => format!(" {n}"),
        };
        let title = fit(
            &room.title(),
            width.saturating_sub(badge.chars().count() + 1),
        );
        let pad = width.saturating_sub(title.chars().count() + 1 + badge.chars().count());
        let text = format!(" {title}{}{badge}", " ".repeat(pad));
        let mut style = Style::new();
        if room.mentioned {
            style = style.fg(Color::Magenta).add_modifier(Modifier::BOLD);
        } else if room.unread > 0 {
            style = style.add_modifier(Modifier::BOLD);
        }
        if app.current == Some(room.info.id) {
            style = style.add_modifier(Modifier::REVERSED);
        }
        lines.push(Line::styled(text, style));
    }
    if app.rooms.is_empty() {
        lines.push(Line::styled(" (none: /join)", dim()));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn members_pane(frame: &mut Frame, app: &App, area: Rect) {
    let block = Block::new().borders(Borders::LEFT).border_style(dim());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(room) = app.current_room() else {
        return;
    };
    let mut lines = vec![Line::styled(
        format!("Members ({})", room.members.len()),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    let mut members: Vec<_> = room.members.iter().collect();
    members.sort_by(|a, b| b.role.cmp(&a.role).then(a.username.cmp(&b.username)));
    for m in members {
        let presence = m.presence.unwrap_or(if m.online {
            Presence::Online
        } else {
            Presence::Offline
        });
        let (dot, colour) = match presence {
            Presence::Online => ("●", Color::Green),
            Presence::Away => ("◐", Color::Yellow),
            _ => ("○", Color::DarkGray),
        };
        let role = match m.role {
            Role::Owner => "~",
            Role::Admin => "@",
            Role::Member => " ",
        };
        lines.push(Line::from(vec![
            Span::styled(dot, Style::new().fg(colour)),
            Span::raw(format!(" {role}")),
            Span::raw(fit(&m.username, (inner.width as usize).saturating_sub(3))),
        ]));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// `text` cut to `width` characters, with `…` when cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(width - 1).collect();
    out.push('…');
    out
}

fn messages_pane(frame: &mut Frame, app: &App, area: Rect) {
    if area.height == 0 {
        return;
    }
    let width = area.width.max(1) as usize;
    let header_area = Rect { height: 1, ..area };
    let body = Rect {
        y: area.y + 1,
        height: area.height - 1,
        ..area
    };
    if let Some(panel) = &app.panel {
        frame.render_widget(
            Paragraph::new(Line::styled(
                fit(
                    &format!("{} (PageUp/PageDown, Esc closes)", panel.title),
                    width,
                ),
                Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED),
            )),
            header_area,
        );
        let lines: Vec<Line> = panel
            .lines
            .iter()
            .skip(app.panel_scroll)
            .flat_map(|l| wrap(Line::raw(l.clone()), width))
            .collect();
        frame.render_widget(Paragraph::new(lines), body);
        return;
    }
    let Some(room) = app.current_room() else {
        frame.render_widget(
            Paragraph::new(vec![
                Line::raw("No room selected."),
                Line::raw("/join ROOM, /create NAME, /dm USER, /rooms, /help"),
            ]),
            area,
        );
        return;
    };
    let mut header = vec![Span::styled(
        room.title(),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if !room.info.topic.is_empty() {
        header.push(Span::raw(format!(" — {}", room.info.topic)));
    }
    if !room.typing.is_empty() {
        let who: Vec<&str> = room.typing.keys().map(String::as_str).collect();
        header.push(Span::styled(
            format!("  {} typing…", who.join(", ")),
            Style::new().fg(Color::Yellow),
        ));
    }
    frame.render_widget(
        Paragraph::new(Line::from(header)).style(Style::new().add_modifier(Modifier::REVERSED)),
        header_area,
    );

    let mut lines: Vec<Line> = Vec::new();
    if room.has_more {
        lines.push(Line::styled("… PageUp for older messages", dim()));
    }
    for entry in room.entries.values() {
        for line in entry_lines(app, entry) {
            lines.extend(wrap(line, width));
        }
    }
    for out in app.outgoing.iter().filter(|o| o.room == room.info.id) {
        let (note, style) = match &out.state {
            OutState::Sending => (" (sending…)".to_owned(), dim()),
            OutState::Queued => (
                " (queued: offline)".to_owned(),
                Style::new().fg(Color::Yellow),
            ),
            OutState::Failed(why) => (format!(" (failed: {why})"), Style::new().fg(Color::Red)),
        };
        let line = Line::from(vec![
            Span::styled(
                format!("      {}: ", app.username),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::raw(out.text.replace('\n', " ⏎ ")),
            Span::styled(note, style),
        ]);
        lines.extend(wrap(line, width));
    }
    let height = body.height as usize;
    let scroll = room.scroll.min(lines.len().saturating_sub(height));
    let end = lines.len() - scroll;
    let start = end.saturating_sub(height);
    let shown: Vec<Line> = lines.drain(start..end).collect();
    frame.render_widget(Paragraph::new(shown), body);
}

/// The ratatui colour for a palette colour (SPEC.md §5.11.2: ANSI order).
pub fn colour(c: Palette) -> Option<Color> {
    Some(match c {
        Palette::Black => Color::Black,
        Palette::Red => Color::Red,
        Palette::Green => Color::Green,
        Palette::Yellow => Color::Yellow,
        Palette::Blue => Color::Blue,
        Palette::Magenta => Color::Magenta,
        Palette::Cyan => Color::Cyan,
        Palette::White => Color::Gray,
        Palette::BrightBlack => Color::DarkGray,
        Palette::BrightRed => Color::LightRed,
        Palette::BrightGreen => Color::LightGreen,
        Palette::BrightYellow => Color::LightYellow,
        Palette::BrightBlue => Color::LightBlue,
        Palette::BrightMagenta => Color::LightMagenta,
        Palette::BrightCyan => Color::LightCyan,
        Palette::BrightWhite => Color::White,
        Palette::Unknown(_) => return None,
    })
}

/// The style of the text at byte `at`, from every span over it.
fn style_at(spans: &[Format], at: usize) -> Style {
    let mut style = Style::new();
    for s in spans
        .iter()
        .filter(|s| (s.start as usize) <= at && at < s.end as usize)
    {
        style = match &s.style {
            Format2::Bold => style.add_modifier(Modifier::BOLD),
            Format2::Italic => style.add_modifier(Modifier::ITALIC),
            Format2::Strikethrough => style.add_modifier(Modifier::CROSSED_OUT),
            Format2::Code | Format2::CodeBlock => style.fg(Color::Cyan),
            Format2::Link(_) => style.fg(Color::Blue).add_modifier(Modifier::UNDERLINED),
            Format2::Color(c) => match colour(*c) {
                Some(c) => style.fg(c),
                None => style,
            },
            Format2::Unknown { .. } => style,
        };
    }
    style
}

/// A message's text as styled lines: runs of equal style, broken at line
/// breaks, each link followed by its URL when the text is not the URL.
pub fn styled_text(text: &str, spans: &[Format]) -> Vec<Vec<Span<'static>>> {
    let mut bounds: Vec<usize> = vec![0, text.len()];
    for s in spans {
        bounds.push((s.start as usize).min(text.len()));
        bounds.push((s.end as usize).min(text.len()));
    }
    bounds.retain(|b| text.is_char_boundary(*b));
    bounds.sort_unstable();
    bounds.dedup();
    let mut lines = vec![Vec::new()];
    for pair in bounds.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let style = style_at(spans, a);
        for (i, part) in text[a..b].split('\n').enumerate() {
            if i > 0 {
                lines.push(Vec::new());
            }
            if !part.is_empty() {
                if let Some(line) = lines.last_mut() {
                    line.push(Span::styled(part.to_owned(), style));
                }
            }
        }
        for s in spans.iter().filter(|s| s.end as usize == b) {
            if let Format2::Link(url) = &s.style {
                let shown = text.get(s.start as usize..b).unwrap_or("");
                if shown != url {
                    if let Some(line) = lines.last_mut() {
                        line.push(Span::styled(format!(" <{url}>"), dim()));
                    }
                }
            }
        }
    }
    lines
}

/// `parts` with every `needle` (the user's own @name) in bold magenta.
fn highlight(parts: Vec<Span<'static>>, needle: &str) -> Vec<Span<'static>> {
    let mut out = Vec::new();
    for part in parts {
        let mut rest: &str = &part.content;
        while let Some(at) = rest.find(needle) {
            if at > 0 {
                out.push(Span::styled(rest[..at].to_owned(), part.style));
            }
            out.push(Span::styled(
                needle.to_owned(),
                part.style.fg(Color::Magenta).add_modifier(Modifier::BOLD),
            ));
            rest = &rest[at + needle.len()..];
        }
        if !rest.is_empty() {
            out.push(Span::styled(rest.to_owned(), part.style));
        }
    }
    out
}

/// The lines of one entry, before wrapping.
fn entry_lines(app: &App, entry: &Entry) -> Vec<Line<'static>> {
    let prefix = vec![
        Span::styled(format!("#{:<3} ", entry.seq.0), dim()),
        Span::styled(format!("{} ", clock(entry.at)), dim()),
    ];
    let sender = Span::styled(
        format!("{}: ", entry.sender_name),
        Style::new()
            .fg(if entry.sender == app.me {
                Color::Green
            } else {
                Color::LightBlue
            })
            .add_modifier(Modifier::BOLD),
    );
    match &entry.body {
        Body::Notice(text) => {
            let mut spans = prefix;
            spans.push(Span::styled(format!("* {text}"), dim()));
            vec![Line::from(spans)]
        }
        Body::Tombstone => {
            let mut spans = prefix;
            spans.push(sender);
            spans.push(Span::styled(
                "(message deleted)",
                dim().add_modifier(Modifier::ITALIC),
            ));
            vec![Line::from(spans)]
        }
        Body::Message {
            sticker: Some(id), ..
        } => {
            let mut spans = prefix;
            spans.push(sender);
            let sticker = app.stickers.get(id);
            spans.push(Span::styled(
                format!(":{id}:"),
                Style::new().fg(Color::Yellow),
            ));
            let mut lines = vec![Line::from(spans)];
            if let Some(s) = sticker {
                lines.extend(
                    s.art.lines().map(|l| {
                        Line::styled(format!("      {l}"), Style::new().fg(Color::Yellow))
                    }),
                );
            }
            lines
        }
        Body::Message {
            text,
            spans: formats,
            edited,
            files,
            ..
        } => {
            let mut out = Vec::new();
            let mention = format!("@{}", app.username);
            for (i, parts) in styled_text(text, formats).into_iter().enumerate() {
                let mut parts = highlight(parts, &mention);
                let mut spans = if i == 0 {
                    let mut s = prefix.clone();
                    s.push(sender.clone());
                    s
                } else {
                    vec![Span::raw("      ")]
                };
                spans.append(&mut parts);
                out.push(spans);
            }
            // A message of files alone shows its first file on the
            // sender's line (an empty text makes one empty line).
            let mut files = files.iter().map(crate::show::file_label);
            if text.is_empty() {
                if let (Some(first), Some(label)) = (out.first_mut(), files.next()) {
                    first.push(Span::styled(label, Style::new().fg(Color::Cyan)));
                }
            }
            for label in files {
                out.push(vec![
                    Span::raw("      "),
                    Span::styled(label, Style::new().fg(Color::Cyan)),
                ]);
            }
            if *edited {
                if let Some(last) = out.last_mut() {
                    last.push(Span::styled(" (edited)", dim()));
                }
            }
            out.into_iter().map(Line::from).collect()
        }
    }
}

/// Breaks a line into lines at most `width` columns wide; continuation
/// lines are indented by two columns.
pub fn wrap(line: Line<'static>, width: usize) -> Vec<Line<'static>> {
    let width = width.max(3);
    let mut lines: Vec<Line<'static>> = Vec::new();
    let mut current: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for span in line.spans {
        let mut piece = String::new();
        for c in span.content.chars() {
            let w = c.width().unwrap_or(0);
            if used + w > width {
                if !piece.is_empty() {
                    current.push(Span::styled(std::mem::take(&mut piece), span.style));
                }
                lines.push(Line::from(std::mem::take(&mut current)));
                current.push(Span::raw("  "));
                used = 2;
            }
            piece.push(c);
            used += w;
        }
        if !piece.is_empty() {
            current.push(Span::styled(piece, span.style));
        }
    }
    lines.push(Line::from(current));
    lines
}

fn status_line(frame: &mut Frame, app: &App, area: Rect) {
    let (state, colour) = match &app.conn {
        Conn::Connected => ("connected", Color::Green),
        Conn::Reconnecting => ("reconnecting…", Color::Yellow),
        Conn::Disconnected(_) => ("disconnected", Color::Red),
    };
    let mut spans = vec![
        Span::styled(
            format!("[{state}]"),
            Style::new().fg(colour).add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!(" {} ", app.username)),
    ];
    let unread = app.unread_total();
    if unread > 0 {
        spans.push(Span::styled(
            format!("[{unread} unread]"),
            Style::new().fg(Color::Black).bg(Color::Yellow),
        ));
        spans.push(Span::raw(" "));
    }
    if app.notifications_unread > 0 {
        spans.push(Span::styled(
            format!("[{} notifications]", app.notifications_unread),
            Style::new().fg(Color::Black).bg(Color::Cyan),
        ));
        spans.push(Span::raw(" "));
    }
    if let Some((text, is_error)) = &app.status {
        let style = if *is_error {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        spans.push(Span::styled(text.replace('\n', " "), style));
    }
    frame.render_widget(
        Paragraph::new(Line::from(spans)).style(Style::new().bg(Color::Reset)),
        area,
    );
}

fn input_line(frame: &mut Frame, app: &App, area: Rect) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let prompt = if app.editor.masked {
        "password> "
    } else {
        "> "
    };
    let shown = app.editor.shown();
    let all: Vec<&str> = shown.split('\n').collect();
    let (row, col) = app.editor.cursor_position();
    // Keep the cursor's row in view when the input has more rows than fit.
    let rows = area.height as usize;
    let first = (row + 1).saturating_sub(rows);
    let lines: Vec<Line> = all
        .iter()
        .enumerate()
        .skip(first)
        .take(rows)
        .map(|(i, l)| {
            let lead = if i == 0 { prompt } else { "  " };
            Line::from(vec![Span::styled(lead, dim()), Span::raw((*l).to_owned())])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
    let lead = if row == 0 { prompt.len() } else { 2 };
    let x = area.x as usize + lead + col;
    let y = area.y as usize + row - first;
    if x < (area.x + area.width) as usize {
        frame.set_cursor_position(Position::new(x as u16, y as u16));
    }
}
