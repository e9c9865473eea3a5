//! "Did you mean …?": the nearest valid word to a mistyped one.
//!
//! Distance is the optimal-string-alignment edit distance, case-insensitive:
//! inserting, deleting or replacing a character, or swapping two neighbouring
//! characters, each count one edit.

/// Edit distance between `a` and `b`, ignoring ASCII case.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    // Three rolling rows of the dynamic-programming table: i-2, i-1, i.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut row: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        row[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(row[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            row[j] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut row);
    }
    prev[b.len()]
}

/// The candidate closest to `word` within `max` edits, and fewer edits than
/// `word` has characters (so a one-letter word is never "corrected" into an
/// unrelated one). Ties go to the earlier candidate.
pub fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    max: usize,
) -> Option<&'a str> {
    let len = word.chars().count();
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= max && *d < len)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Like [`nearest`], but a word of three or more characters that abbreviates a
/// candidate (`prem` → `premium`), or that a candidate abbreviates
/// (`expiry` → `exp`), is preferred over edit distance.
pub fn nearest_or_abbreviated<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
    max: usize,
) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    let abbreviated = candidates
        .clone()
        .into_iter()
        .find(|c| lower.len() >= 3 && (c.starts_with(lower.as_str()) || lower.starts_with(c)));
    abbreviated.or_else(|| nearest(word, candidates, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("premum", "premium"), 1);
        assert_eq!(distance("SWEP", "sweep"), 1);
        assert_eq!(distance("sewep", "sweep"), 1);
        assert_eq!(distance("golen", "golden"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn nearest_respects_limits_and_order() {
        let fields = ["premium", "size", "price", "strike"];
        assert_eq!(nearest("premum", fields, 2), Some("premium"));
        assert_eq!(nearest("sise", fields, 2), Some("size"));
        assert_eq!(nearest("volume", fields, 2), None);
        assert_eq!(nearest("x", ["aa", "ask"], 2), None);
        assert_eq!(nearest_or_abbreviated("prem", fields, 2), Some("premium"));
        assert_eq!(
            nearest_or_abbreviated("expiry", ["side", "exp", "sym"], 1),
            Some("exp")
        );
        assert_eq!(
            nearest_or_abbreviated("sid", ["side", "exp", "sym"], 1),
            Some("side")
        );
    }
}
