//! CSV export of the filtered tape.
//!
//! One row per event, oldest first, with every schema field (numbers in full
//! precision, missing values empty) plus the New York time for spreadsheets.
//! Files are named after the New York time of the export, never overwrite an
//! existing file, and are written to a temporary name first and renamed.

use std::io::Write;
use std::path::{Path, PathBuf};

use flowtape_core::date;
use flowtape_core::event::FlowEvent;

use crate::format;

const HEADER: &str =
    "id,time_ny,ts,sym,occ,expiry,strike,right,side,size,price,premium,kind,legs,exchanges,\
spot,otm,dte,oi,vol,vol_oi,iv,bid,ask,tags,sentiment,score";

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot export to {path}: {source}")]
pub struct ExportError {
    pub path: String,
    pub source: std::io::Error,
}

/// Quotes a CSV field if it needs it (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// One CSV line (without the newline).
pub fn csv_line(e: &FlowEvent) -> String {
    let tags: Vec<&str> = e.tags.iter().map(|t| t.name()).collect();
    let exchanges: Vec<String> = e.exchanges.iter().map(|x| x.to_string()).collect();
    let sentiment = match e.sentiment {
        flowtape_core::event::Sentiment::Bull => "bull",
        flowtape_core::event::Sentiment::Bear => "bear",
        flowtape_core::event::Sentiment::Neutral => "neutral",
    };
    let cells = [
        field(&e.id),
        format!("{} {}", date::market_date(e.ts), format::time_ms(e.ts)),
        e.ts.to_string(),
        field(&e.sym),
        field(&e.occ),
        field(&e.expiry),
        e.strike.to_string(),
        e.right.letter().to_string(),
        e.side.code().to_string(),
        e.size.to_string(),
        e.price.to_string(),
        e.premium.to_string(),
        e.kind.name().to_string(),
        e.legs.to_string(),
        field(&exchanges.join(" ")),
        opt(e.spot),
        opt(e.otm),
        e.dte.to_string(),
        opt(e.oi),
        e.vol.to_string(),
        opt(e.vol_oi()),
        opt(e.iv),
        opt(e.bid),
        opt(e.ask),
        field(&tags.join(" ")),
        sentiment.to_string(),
        e.score.to_string(),
    ];
    cells.join(",")
}

/// Writes `events` to a new CSV file in `dir`, named for `now_ms`. Returns its path.
pub fn export<'a>(
    dir: &Path,
    events: impl Iterator<Item = &'a FlowEvent>,
    now_ms: i64,
) -> Result<PathBuf, ExportError> {
    let err = |path: &Path| {
        let path = path.display().to_string();
        move |source| ExportError { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let dir = dir.canonicalize().map_err(err(dir))?;
    let stamp = format!(
        "{}-{}",
        date::market_date(now_ms).compact(),
        format::time_s(now_ms).replace(':', "")
    );
    let mut path = dir.join(format!("flowtape-{stamp}.csv"));
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = dir.join(format!("flowtape-{stamp}-{n}.csv"));
    }
    let tmp = path.with_extension("csv.tmp");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(err(&tmp))?);
    writeln!(out, "{HEADER}").map_err(err(&tmp))?;
    for e in events {
        writeln!(out, "{}", csv_line(e)).map_err(err(&tmp))?;
    }
    out.flush().map_err(err(&tmp))?;
    drop(out);
    std::fs::rename(&tmp, &path).map_err(err(&path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{sample_events, t0};

    #[test]
    fn exports_every_event_with_a_header_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let events = sample_events();
        let a = export(dir.path(), events.iter(), t0()).unwrap_or_else(|e| panic!("{e}"));
        let b = export(dir.path(), events.iter(), t0()).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(a, b);
        assert!(
            a.file_name()
                .is_some_and(|n| n.to_string_lossy() == "flowtape-20241220-101500.csv"),
            "{a:?}"
        );
        let text = std::fs::read_to_string(&a).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), events.len() + 1);
        assert_eq!(lines[0], HEADER);
        let cols = HEADER.split(',').count();
        assert!(lines.iter().all(|l| l.split(',').count() == cols), "{text}");
        assert!(
            lines[2].contains(",NVDA,") && lines[2].contains("unusual golden"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("plain"), "plain");
    }
}
