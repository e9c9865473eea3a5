//! Open interest from a snapshot file (`--oi-file`).
//!
//! The options feed does not carry open interest; it is published once a day
//! (OCC, or a vendor's snapshot endpoint). The file is CSV, one contract per
//! line: `occ,oi`, where `occ` is any accepted OSI form (`AAPL241220C00190000`,
//! the padded form, or `O:AAPL241220C00190000`) and `oi` a whole number of
//! contracts. A first line whose first field is `occ` is a header. Blank lines
//! and lines starting with `#` are skipped. A bad line is skipped, counted and
//! reported with its line number; it never stops the load. A contract listed
//! twice takes its later value.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::feed::SourceError;
use flowtape_core::occ::Contract;

/// Open interest per contract.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpenInterest {
    by_contract: HashMap<Contract, u64>,
}

/// The file could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot read open interest file {path}: {source}")]
pub struct OiError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl OpenInterest {
    /// Parses CSV text; returns the table and the lines that were skipped.
    pub fn parse(text: &str) -> (OpenInterest, Vec<SourceError>) {
        let mut by_contract = HashMap::new();
        let mut bad = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line_no = i as u64 + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split(',').map(str::trim);
            let (occ, oi) = (fields.next().unwrap_or(""), fields.next());
            if line_no == 1 && occ.eq_ignore_ascii_case("occ") {
                continue;
            }
            let parsed = match (oi, fields.next()) {
                (Some(oi), None) => parse_line(occ, oi),
                (None, _) => Err("expected two fields, `occ,oi`".to_string()),
                (Some(_), Some(_)) => Err("expected two fields, `occ,oi`, found more".to_string()),
            };
            match parsed {
                Ok((contract, oi)) => {
                    by_contract.insert(contract, oi);
                }
                Err(reason) => bad.push(SourceError {
                    line: line_no,
                    reason,
                }),
            }
        }
        (OpenInterest { by_contract }, bad)
    }

    /// Reads a snapshot file, logging each skipped line (the first few, then a count).
    pub fn load(path: &Path) -> Result<OpenInterest, OiError> {
        let text = std::fs::read_to_string(path).map_err(|source| OiError {
            path: path.to_path_buf(),
            source,
        })?;
        let (table, bad) = Self::parse(&text);
        for e in bad.iter().take(20) {
            tracing::warn!(file = %path.display(), line = e.line, "skipping open interest line: {}", e.reason);
        }
        tracing::info!(
            file = %path.display(),
            contracts = table.len(),
            skipped = bad.len(),
            "loaded open interest"
        );
        Ok(table)
    }

    pub fn get(&self, contract: &Contract) -> Option<u64> {
        self.by_contract.get(contract).copied()
    }

    pub fn len(&self) -> usize {
        self.by_contract.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_contract.is_empty()
    }
}

fn parse_line(occ: &str, oi: &str) -> Result<(Contract, u64), String> {
    let contract = Contract::parse(occ).map_err(|e| e.to_string())?;
    let oi = oi
        .parse::<u64>()
        .map_err(|_| format!("open interest {oi:?} is not a whole number"))?;
    Ok((contract, oi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(s: &str) -> Contract {
        Contract::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn reads_every_form_with_or_without_header_and_reports_bad_lines() {
        let text = "occ,oi\n\
                    AAPL241220C00190000,1200\n\
                    \n\
                    # a comment\n\
                    O:SPY241220P00500000, 35\n\
                    NOTASYMBOL,5\n\
                    MSFT241220C00400000,-3\n\
                    MSFT241220C00400000\n\
                    TSLA241220C00250000,1,2\n";
        let (t, bad) = OpenInterest::parse(text);
        assert_eq!(t.get(&contract("AAPL241220C00190000")), Some(1200));
        assert_eq!(t.get(&contract("SPY241220P00500000")), Some(35));
        assert_eq!(t.get(&contract("MSFT241220C00400000")), None);
        assert_eq!(t.len(), 2);
        let lines: Vec<u64> = bad.iter().map(|e| e.line).collect();
        assert_eq!(lines, [6, 7, 8, 9]);
        assert!(bad[1].reason.contains("\"-3\""), "{}", bad[1].reason);

        let (t, bad) = OpenInterest::parse("AAPL241220C00190000,7\n");
        assert_eq!((t.len(), bad.len()), (1, 0));
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let err = OpenInterest::load(Path::new("/nonexistent/oi.csv")).err();
        assert!(err.is_some_and(|e| e.to_string().contains("/nonexistent/oi.csv")));
    }
}
