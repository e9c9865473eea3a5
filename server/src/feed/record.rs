//! Recording: writes prints from any source as an NDJSON replay file.
//!
//! The output is exactly what [`super::ReplayReader`] reads back
//! (`docs/replay.md`): one print's JSON per line. This is how
//! `assets/sample-prints.ndjson` is made from the simulator.

use std::io::Write;

use super::PrintSource;

/// Recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot write the recording: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot encode print {seq}: {source}")]
    Encode {
        seq: u64,
        #[source]
        source: serde_json::Error,
    },
}

/// Writes up to `count` prints from `source` to `out`, one JSON object per
/// line, and returns how many were written (fewer if the source ran out).
/// Records the source cannot read are skipped and not counted. Each print is
/// written with several small writes, so give it a buffered writer; `out` is
/// flushed before returning.
pub fn record<S: PrintSource + ?Sized, W: Write>(
    source: &mut S,
    count: u64,
    out: &mut W,
) -> Result<u64, RecordError> {
    let mut written = 0;
    while written < count {
        let Some(next) = source.next_print() else {
            break;
        };
        let Ok(print) = next else { continue };
        serde_json::to_writer(&mut *out, &print).map_err(|source| {
            match source.io_error_kind() {
                Some(_) => RecordError::Io(source.into()),
                None => RecordError::Encode {
                    seq: print.seq,
                    source,
                },
            }
        })?;
        out.write_all(b"\n")?;
        written += 1;
    }
    out.flush()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{ReplayReader, SimConfig, SimMarket};

    #[test]
    fn a_recording_replays_to_the_same_prints() {
        let config = SimConfig {
            seed: 9,
            ..SimConfig::default()
        };
        let mut sim = SimMarket::new(config.clone()).unwrap_or_else(|e| panic!("{e}"));
        let mut bytes = Vec::new();
        let written = record(&mut sim, 500, &mut bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(written, 500);
        let mut replay = ReplayReader::new(bytes.as_slice());
        let mut again = SimMarket::new(config).unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..500 {
            let read = replay.next_print().and_then(Result::ok);
            let generated = again.next_print().and_then(Result::ok);
            assert!(read.is_some());
            assert_eq!(read, generated);
        }
        assert!(replay.next_print().is_none());
    }

    #[test]
    fn a_finite_source_ends_the_recording_early() {
        let mut replay = ReplayReader::new(&b"# nothing here\n"[..]);
        let mut out = Vec::new();
        assert_eq!(record(&mut replay, 10, &mut out).ok(), Some(0));
        assert!(out.is_empty());
    }
}
