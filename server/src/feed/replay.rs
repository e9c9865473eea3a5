//! Replay of recorded prints from NDJSON.
//!
//! One [`Print`] per line in its serde JSON form (`docs/replay.md`). Blank
//! lines and lines starting with `#` are skipped; a UTF-8 byte-order mark at
//! the start of the file and `\r\n` line ends are accepted. A line that is not
//! UTF-8, not a print, a print with a non-positive price or a zero size, or
//! longer than [`MAX_LINE_BYTES`] is reported as a [`SourceError`] with its
//! 1-based line number, and reading goes on with the next line. A read error
//! from the underlying reader is reported the same way and ends the replay.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::{PrintSource, SourceError};
use flowtape_core::event::Print;

/// The longest line read; a longer one is skipped as malformed (a print is
/// about 200 bytes, so this only trips on a file that is not a replay).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// A replay file that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open replay file {path}: {source}")]
pub struct OpenError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Reads prints from NDJSON, one per line.
pub struct ReplayReader<R> {
    input: R,
    line: u64,
    buf: Vec<u8>,
    done: bool,
}

impl ReplayReader<BufReader<File>> {
    /// Opens a replay file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| OpenError {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(ReplayReader::new(BufReader::new(file)))
    }
}

impl<R: BufRead> ReplayReader<R> {
    pub fn new(input: R) -> Self {
        ReplayReader {
            input,
            line: 0,
            buf: Vec::with_capacity(256),
            done: false,
        }
    }

    /// Skips the rest of a line over [`MAX_LINE_BYTES`] and reports it.
    fn skip_long_line(&mut self) -> SourceError {
        if !self.buf.ends_with(b"\n") {
            if let Err(e) = self.input.skip_until(b'\n') {
                self.done = true;
                return self.error(format!("read error, replay stops here: {e}"));
            }
        }
        self.error(format!("line is longer than {MAX_LINE_BYTES} bytes"))
    }

    fn error(&self, reason: impl Into<String>) -> SourceError {
        SourceError {
            line: self.line,
            reason: reason.into(),
        }
    }
}

impl<R: BufRead + Send> PrintSource for ReplayReader<R> {
    fn next_print(&mut self) -> Option<Result<Print, SourceError>> {
        while !self.done {
            self.buf.clear();
            let limit = MAX_LINE_BYTES as u64 + 1;
            match (&mut self.input)
                .take(limit)
                .read_until(b'\n', &mut self.buf)
            {
                Ok(0) => self.done = true,
                Ok(_) => {
                    self.line += 1;
                    if self.buf.len() > MAX_LINE_BYTES {
                        return Some(Err(self.skip_long_line()));
                    }
                    let bytes = match self.buf.strip_prefix(b"\xEF\xBB\xBF") {
                        Some(rest) if self.line == 1 => rest,
                        _ => &self.buf[..],
                    };
                    let text = match std::str::from_utf8(bytes) {
                        Ok(text) => text.trim(),
                        Err(e) => return Some(Err(self.error(format!("not UTF-8: {e}")))),
                    };
                    if text.is_empty() || text.starts_with('#') {
                        continue;
                    }
                    return Some(parse_line(text).map_err(|reason| self.error(reason)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.done = true;
                    self.line += 1;
                    return Some(Err(
                        self.error(format!("read error, replay stops here: {e}"))
                    ));
                }
            }
        }
        None
    }
}

fn parse_line(text: &str) -> Result<Print, String> {
    let print: Print = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if !(print.price.is_finite() && print.price > 0.0) {
        return Err(format!("price must be positive, got {}", print.price));
    }
    if print.size == 0 {
        return Err("size must be at least 1".to_string());
    }
    Ok(print)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{run_paced, FeedEnd, Pace};
    use std::io::Cursor;

    const GOOD: &str = concat!(
        r#"{"occ":"SPY260515C00600000","price":1.25,"size":3,"exchange":302,"conditions":[209],"#,
        r#""ts_ns":1778679000000000000,"seq":1,"bid":1.24,"ask":1.25,"spot":598.1,"oi":1200}"#,
    );
    const MINIMAL: &str = concat!(
        r#"{"occ":"O:AAPL260515P00250000","price":0.5,"size":1,"exchange":308,"#,
        r#""ts_ns":1778679000000500000,"seq":2}"#,
    );

    fn read_all<R: BufRead + Send>(mut r: ReplayReader<R>) -> Vec<Result<Print, SourceError>> {
        std::iter::from_fn(|| r.next_print()).collect()
    }

    #[test]
    fn reads_prints_and_skips_comments_and_blank_lines() {
        let text = format!("\u{feff}# recorded by flowtape\n\n{GOOD}\r\n   \n{MINIMAL}");
        let got = read_all(ReplayReader::new(Cursor::new(text)));
        assert_eq!(got.len(), 2);
        let first = got[0].as_ref().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.contract.osi(), "SPY260515C00600000");
        assert_eq!((first.size, first.exchange, first.oi), (3, 302, Some(1200)));
        let second = got[1].as_ref().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(second.contract.underlying(), "AAPL");
        assert_eq!(
            (second.bid, second.spot, second.conditions.len()),
            (None, None, 0)
        );
    }

    #[test]
    fn malformed_lines_name_their_line_number() {
        let bad_price = GOOD.replace("\"price\":1.25", "\"price\":-1");
        let text = format!("{GOOD}\n{{\"occ\":\n{bad_price}\n{GOOD}\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"\xff\xfe not utf-8\n");
        let got = read_all(ReplayReader::new(Cursor::new(bytes)));
        let errors: Vec<&SourceError> = got.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(got.iter().filter(|r| r.is_ok()).count(), 2);
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [2, 3, 5]);
        assert!(errors[0].reason.contains("EOF"), "{}", errors[0].reason);
        assert!(errors[1].reason.contains("price must be positive"));
        assert!(errors[2].reason.contains("UTF-8"));
        assert!(errors[0].to_string().starts_with("line 2: "));
    }

    #[test]
    fn an_overlong_line_is_skipped_whole() {
        let text = format!("{}\n{GOOD}\n", "x".repeat(3 * MAX_LINE_BYTES));
        let got = read_all(ReplayReader::new(Cursor::new(text)));
        assert_eq!(got.len(), 2);
        assert!(got[0]
            .as_ref()
            .is_err_and(|e| e.line == 1 && e.reason.contains("longer than")));
        assert!(got[1].as_ref().is_ok_and(|p| p.seq == 1));
    }

    #[test]
    fn opening_a_missing_file_names_the_path() {
        let err = ReplayReader::open("/nonexistent/prints.ndjson")
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("/nonexistent/prints.ndjson")));
    }

    #[tokio::test]
    async fn the_driver_skips_a_malformed_line_and_delivers_the_rest() {
        let text = format!("{GOOD}\nnot json\n{MINIMAL}\n");
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let reader = ReplayReader::new(Cursor::new(text));
        let stats = run_paced(reader, Pace::AsFastAsPossible, tx, std::future::pending()).await;
        assert_eq!(
            (stats.prints, stats.malformed, stats.end),
            (2, 1, FeedEnd::Exhausted)
        );
        let mut seqs = Vec::new();
        while let Some(batch) = rx.recv().await {
            seqs.extend(batch.iter().map(|p| p.seq));
        }
        assert_eq!(seqs, [1, 2]);
    }

    #[test]
    fn the_documented_examples_parse() {
        let doc = include_str!("../../../docs/replay.md");
        let examples: Vec<&str> = doc.lines().filter(|l| l.starts_with("{\"occ\"")).collect();
        assert_eq!(examples.len(), 5);
        let got = read_all(ReplayReader::new(Cursor::new(examples.join("\n"))));
        assert!(got.iter().all(Result::is_ok), "{got:?}");
    }

    #[test]
    fn the_shipped_sample_replays_cleanly() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../assets/sample-prints.ndjson"
        );
        let reader = ReplayReader::open(path).unwrap_or_else(|e| panic!("{e}"));
        let got = read_all(reader);
        let malformed: Vec<String> = got
            .iter()
            .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
            .collect();
        assert_eq!(malformed, Vec::<String>::new());
        let prints: Vec<&Print> = got.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert!(prints.len() >= 10_000, "{}", prints.len());
        assert!(
            prints.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns),
            "time order"
        );
        assert!(prints
            .iter()
            .all(|p| p.bid.is_some() && p.ask.is_some() && p.spot.is_some() && p.oi.is_some()));
    }
}
