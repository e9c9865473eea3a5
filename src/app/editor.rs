//! A one-line text editor for the filter line and the watchlist editor.
//!
//! The cursor is a char index, so multi-byte input never splits a character.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Text and a cursor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineEditor {
    text: String,
    cursor: usize,
}

/// The longest line accepted; longer input is ignored rather than grown without bound.
pub const MAX_LINE: usize = 1024;

impl LineEditor {
    pub fn with_text(text: &str) -> LineEditor {
        let mut e = LineEditor::default();
        e.set(text);
        e
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The cursor, in chars from the start.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Replaces the text and puts the cursor at its end.
    pub fn set(&mut self, text: &str) {
        self.text = text.chars().take(MAX_LINE).collect();
        self.cursor = self.text.chars().count();
    }

    fn byte_at(&self, char_idx: usize) -> usize {
        self.text
            .char_indices()
            .nth(char_idx)
            .map_or(self.text.len(), |(b, _)| b)
    }

    /// Applies an editing key. Returns whether the text changed.
    pub fn edit(&mut self, key: &KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let len = self.text.chars().count();
        match key.code {
            KeyCode::Char('u') if ctrl => {
                let changed = !self.text.is_empty();
                self.set("");
                changed
            }
            KeyCode::Char('a') if ctrl => {
                self.cursor = 0;
                false
            }
            KeyCode::Char('e') if ctrl => {
                self.cursor = len;
                false
            }
            KeyCode::Char(c) if !ctrl && !c.is_control() && len < MAX_LINE => {
                let b = self.byte_at(self.cursor);
                self.text.insert(b, c);
                self.cursor += 1;
                true
            }
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                let b = self.byte_at(self.cursor);
                self.text.remove(b);
                true
            }
            KeyCode::Delete if self.cursor < len => {
                let b = self.byte_at(self.cursor);
                self.text.remove(b);
                true
            }
            KeyCode::Left => {
                self.cursor = self.cursor.saturating_sub(1);
                false
            }
            KeyCode::Right => {
                self.cursor = (self.cursor + 1).min(len);
                false
            }
            KeyCode::Home => {
                self.cursor = 0;
                false
            }
            KeyCode::End => {
                self.cursor = len;
                false
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn edits_at_the_cursor() {
        let mut e = LineEditor::with_text("AAPL");
        e.edit(&k(KeyCode::Left));
        e.edit(&k(KeyCode::Char('é')));
        assert_eq!(e.text(), "AAPéL");
        e.edit(&k(KeyCode::Backspace));
        e.edit(&k(KeyCode::Home));
        e.edit(&k(KeyCode::Delete));
        assert_eq!(e.text(), "APL");
        assert_eq!(e.cursor(), 0);
        assert!(!e.edit(&k(KeyCode::Backspace)));
        e.edit(&KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert_eq!(e.text(), "");
    }
}
