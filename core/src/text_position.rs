//! Where a byte offset falls in a text, as people count: 1-based line and
//! column (columns in characters), for errors that point into a config file.

/// 1-based line and column of byte `offset` in `text` (an offset past the
/// end counts as the end; one inside a character counts from its start).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.chars().count(), |i| before[i + 1..].chars().count())
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::line_col;

    #[test]
    fn lines_and_columns_count_from_one_in_characters() {
        let text = "a = 1\nbé = x\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 4), (1, 5));
        assert_eq!(line_col(text, 6), (2, 1));
        // "bé = " is 6 bytes and 5 characters.
        assert_eq!(line_col(text, 12), (2, 6));
        // Inside the "é", and past the end.
        assert_eq!(line_col(text, 8), (2, 2));
        assert_eq!(line_col(text, 99), (3, 1));
    }
}
