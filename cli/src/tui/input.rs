//! The input line: text with a cursor, the history of what was sent
//! (Up/Down), multi-line input (Alt+Enter), and Tab completion. Pure: keys
//! in, [`Edit`] out.

/// How many sent lines the history keeps.
const HISTORY: usize = 200;

/// What a key did to the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Enter: the text, taken out of the input (and kept in the history
    /// unless masked).
    Submit(String),
    /// The text or cursor changed.
    Changed,
    /// Nothing to do (Up at the oldest entry, Backspace at the start…).
    Nothing,
}

/// A Tab completion in progress: pressing Tab again cycles the candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Completion {
    /// Byte offset where the completed word starts.
    start: usize,
    candidates: Vec<String>,
    index: usize,
}

/// The input line's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Editor {
    text: String,
    /// Byte offset of the cursor, always on a char boundary.
    cursor: usize,
    history: Vec<String>,
    /// The history entry shown, while browsing with Up/Down.
    browsing: Option<usize>,
    /// What was typed before browsing started, restored past the newest.
    draft: String,
    completion: Option<Completion>,
    /// Shown as `*` and kept out of the history (passwords).
    pub masked: bool,
}

impl Editor {
    #[cfg(test)]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text as shown: `*` for each character when masked.
    pub fn shown(&self) -> String {
        if self.masked {
            "*".repeat(self.text.chars().count())
        } else {
            self.text.clone()
        }
    }

    /// Replaces the text (cursor at its end).
    pub fn set(&mut self, text: &str) {
        self.text = text.to_owned();
        self.cursor = self.text.len();
        self.completion = None;
    }

    pub fn insert(&mut self, c: char) -> Edit {
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
        self.completion = None;
        Edit::Changed
    }

    pub fn newline(&mut self) -> Edit {
        self.insert('\n')
    }

    fn prev_boundary(&self) -> Option<usize> {
        self.text[..self.cursor]
            .char_indices()
            .last()
            .map(|(i, _)| i)
    }

    fn next_boundary(&self) -> Option<usize> {
        self.text[self.cursor..]
            .chars()
            .next()
            .map(|c| self.cursor + c.len_utf8())
    }

    pub fn backspace(&mut self) -> Edit {
        self.completion = None;
        match self.prev_boundary() {
            Some(i) => {
                self.text.replace_range(i..self.cursor, "");
                self.cursor = i;
                Edit::Changed
            }
            None => Edit::Nothing,
        }
    }

    pub fn delete(&mut self) -> Edit {
        self.completion = None;
        match self.next_boundary() {
            Some(end) => {
                self.text.replace_range(self.cursor..end, "");
                Edit::Changed
            }
            None => Edit::Nothing,
        }
    }

    /// Ctrl-W: removes the word before the cursor.
    pub fn delete_word(&mut self) -> Edit {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end();
        let start = trimmed.rfind(char::is_whitespace).map_or(0, |i| {
            i + trimmed[i..].chars().next().map_or(1, char::len_utf8)
        });
        if start == self.cursor {
            return Edit::Nothing;
        }
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
        self.completion = None;
        Edit::Changed
    }

    /// Ctrl-U: clears the input.
    pub fn clear(&mut self) -> Edit {
        if self.text.is_empty() {
            return Edit::Nothing;
        }
        self.set("");
        Edit::Changed
    }

    /// Moves the cursor. A completion in progress ends: its word was the
    /// one before the old cursor.
    fn move_to(&mut self, cursor: usize) -> Edit {
        self.cursor = cursor;
        self.completion = None;
        Edit::Changed
    }

    pub fn left(&mut self) -> Edit {
        match self.prev_boundary() {
            Some(i) => self.move_to(i),
            None => Edit::Nothing,
        }
    }

    pub fn right(&mut self) -> Edit {
        match self.next_boundary() {
            Some(i) => self.move_to(i),
            None => Edit::Nothing,
        }
    }

    pub fn home(&mut self) -> Edit {
        self.move_to(self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1))
    }

    pub fn end(&mut self) -> Edit {
        let end = self.text[self.cursor..]
            .find('\n')
            .map_or(self.text.len(), |i| self.cursor + i);
        self.move_to(end)
    }

    /// Enter: hands the text over and empties the input.
    pub fn submit(&mut self) -> Edit {
        let text = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        self.completion = None;
        if text.trim().is_empty() {
            return Edit::Nothing;
        }
        if !self.masked && self.history.last() != Some(&text) {
            self.history.push(text.clone());
            if self.history.len() > HISTORY {
                self.history.remove(0);
            }
        }
        Edit::Submit(text)
    }

    /// Up: the previous history entry.
    pub fn older(&mut self) -> Edit {
        let next = match self.browsing {
            None if self.history.is_empty() => return Edit::Nothing,
            None => {
                self.draft = self.text.clone();
                self.history.len() - 1
            }
            Some(0) => return Edit::Nothing,
            Some(i) => i - 1,
        };
        self.browsing = Some(next);
        let entry = self.history[next].clone();
        self.set(&entry);
        Edit::Changed
    }

    /// Down: the next history entry, then what was being typed.
    pub fn newer(&mut self) -> Edit {
        match self.browsing {
            None => Edit::Nothing,
            Some(i) if i + 1 < self.history.len() => {
                self.browsing = Some(i + 1);
                let entry = self.history[i + 1].clone();
                self.set(&entry);
                Edit::Changed
            }
            Some(_) => {
                self.browsing = None;
                let draft = std::mem::take(&mut self.draft);
                self.set(&draft);
                Edit::Changed
            }
        }
    }

    /// Tab: completes the word before the cursor. A word after a leading
    /// `/` completes from `commands`, any other from `names` (an `@` in
    /// front is kept). Pressing Tab again cycles the candidates.
    pub fn complete(&mut self, commands: &dyn Fn(&str) -> Vec<String>, names: &[String]) -> Edit {
        if let Some(c) = &mut self.completion {
            if c.candidates.len() > 1 {
                c.index = (c.index + 1) % c.candidates.len();
                let (start, word) = (c.start, c.candidates[c.index].clone());
                self.replace_word(start, &word);
                return Edit::Changed;
            }
        }
        // After the last whitespace, which may be wider than one byte.
        let start = self.text[..self.cursor]
            .char_indices()
            .rfind(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = &self.text[start..self.cursor];
        let (start, candidates) = if start == 0 && word.starts_with('/') {
            let found = commands(&word[1..]);
            (1, found)
        } else {
            let (start, prefix) = match word.strip_prefix('@') {
                Some(rest) => (start + 1, rest),
                None => (start, word),
            };
            let lower = prefix.to_lowercase();
            let mut found: Vec<String> = names
                .iter()
                .filter(|n| n.to_lowercase().starts_with(&lower))
                .cloned()
                .collect();
            found.sort();
            found.dedup();
            (start, found)
        };
        if candidates.is_empty() {
            return Edit::Nothing;
        }
        let first = candidates[0].clone();
        let single = candidates.len() == 1;
        self.replace_word(start, &first);
        if single && self.cursor == self.text.len() {
            // A unique completion ends the word.
            self.text.push(' ');
            self.cursor += 1;
        }
        self.completion = (!single).then_some(Completion {
            start,
            candidates,
            index: 0,
        });
        Edit::Changed
    }

    /// Replaces the text from `start` to the cursor with `word`, keeping
    /// the completion in progress.
    fn replace_word(&mut self, start: usize, word: &str) {
        self.text.replace_range(start..self.cursor, word);
        self.cursor = start + word.len();
    }

    /// The cursor as (line, column in characters), for the terminal cursor.
    pub fn cursor_position(&self) -> (usize, usize) {
        let before = &self.text[..self.cursor];
        let line = before.matches('\n').count();
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count());
        (line, col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> Editor {
        let mut e = Editor::default();
        for c in text.chars() {
            e.insert(c);
        }
        e
    }

    fn no_commands(_: &str) -> Vec<String> {
        Vec::new()
    }

    #[test]
    fn typing_editing_and_submitting() {
        let mut e = typed("helo");
        e.left();
        e.insert('l');
        assert_eq!(e.text(), "hello");
        e.home();
        e.delete();
        e.end();
        e.backspace();
        assert_eq!(e.text(), "ell");
        assert_eq!(e.submit(), Edit::Submit("ell".into()));
        assert_eq!(e.text(), "");
        assert_eq!(e.submit(), Edit::Nothing, "an empty line sends nothing");
    }

    #[test]
    fn multibyte_characters_move_as_one() {
        let mut e = typed("añ😀");
        assert_eq!(e.backspace(), Edit::Changed);
        assert_eq!(e.text(), "añ");
        e.left();
        assert_eq!(e.cursor_position(), (0, 1));
    }

    #[test]
    fn history_goes_back_and_returns_to_the_draft() {
        let mut e = typed("first");
        e.submit();
        for c in "second".chars() {
            e.insert(c);
        }
        e.submit();
        for c in "draft".chars() {
            e.insert(c);
        }
        e.older();
        assert_eq!(e.text(), "second");
        e.older();
        assert_eq!(e.text(), "first");
        assert_eq!(e.older(), Edit::Nothing);
        e.newer();
        e.newer();
        assert_eq!(e.text(), "draft");
        assert_eq!(e.newer(), Edit::Nothing);
    }

    #[test]
    fn multi_line_input_keeps_its_line_breaks() {
        let mut e = typed("one");
        e.newline();
        e.insert('2');
        assert_eq!(e.cursor_position(), (1, 1));
        assert_eq!(e.submit(), Edit::Submit("one\n2".into()));
    }

    #[test]
    fn masked_input_stays_out_of_the_history() {
        let mut e = Editor {
            masked: true,
            ..Editor::default()
        };
        for c in "s3cret!".chars() {
            e.insert(c);
        }
        assert_eq!(e.shown(), "*******");
        assert_eq!(e.submit(), Edit::Submit("s3cret!".into()));
        assert_eq!(e.older(), Edit::Nothing);
    }

    #[test]
    fn tab_completes_names_and_cycles() {
        let names = vec!["alice".to_owned(), "albert".to_owned(), "bob".to_owned()];
        let mut e = typed("hi @b");
        e.complete(&no_commands, &names);
        assert_eq!(e.text(), "hi @bob ");
        let mut e = typed("al");
        e.complete(&no_commands, &names);
        assert_eq!(e.text(), "albert");
        e.complete(&no_commands, &names);
        assert_eq!(e.text(), "alice");
        e.complete(&no_commands, &names);
        assert_eq!(e.text(), "albert");
        let mut e = typed("zed");
        assert_eq!(e.complete(&no_commands, &names), Edit::Nothing);
    }

    #[test]
    fn moving_the_cursor_ends_a_completion() {
        // Found by the random-keys test: Tab, Home, Tab cycled the old
        // completion with the cursor before its word and panicked.
        let names = vec!["alice".to_owned(), "albert".to_owned()];
        let mut e = typed("hi al");
        e.complete(&no_commands, &names);
        assert_eq!(e.text(), "hi albert");
        e.home();
        e.complete(&no_commands, &names);
        assert_eq!(e.text(), "alberthi albert");
        let mut e = typed("x al");
        e.complete(&no_commands, &names);
        e.left();
        // The word before the cursor is now "alber": a fresh completion.
        e.complete(&no_commands, &names);
        assert_eq!(e.text(), "x albertt");
        // A word after a two-byte whitespace (U+0085).
        let mut e = typed("é\u{85}al");
        e.complete(&no_commands, &names);
        assert_eq!(e.text(), "é\u{85}albert");
    }

    #[test]
    fn tab_completes_commands_at_the_start() {
        let mut e = typed("/kic");
        e.complete(&crate::tui::command::complete, &[]);
        assert_eq!(e.text(), "/kick ");
    }

    #[test]
    fn delete_word_and_clear() {
        let mut e = typed("one two  ");
        e.delete_word();
        assert_eq!(e.text(), "one ");
        e.clear();
        assert_eq!(e.text(), "");
        assert_eq!(e.clear(), Edit::Nothing);
    }
}
