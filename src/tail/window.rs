//! What `--since` and `--until` name: a cursor or a time ([`Moment`]), as
//! the stream positions `tail` reads between. Checked before connecting;
//! every refusal is exit code 2.

use flowtape_core::clock::Moment;
use flowtape_core::cursor::Cursor;

use super::TailError;

/// The stretch of the stream `tail` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Resume after this position (events from `--since` on).
    pub since: Option<Cursor>,
    /// Stop before this position (events before `--until`), then exit.
    pub until: Option<Cursor>,
    /// After the history, go on live (`--follow`; not with `until`).
    pub follow: bool,
}

impl Window {
    /// Reads `--since` and `--until` as of `now_ms` (ms since the epoch);
    /// `follow` is `--follow`.
    pub fn parse(
        since: Option<&str>,
        until: Option<&str>,
        follow: bool,
        now_ms: i64,
    ) -> Result<Window, TailError> {
        let moment = |flag: &str, text: &str| {
            Moment::parse(text, now_ms).map_err(|e| TailError::BadTime(format!("{flag}: {e}")))
        };
        let since = since.map(|t| moment("--since", t)).transpose()?;
        let until = until.map(|t| moment("--until", t)).transpose()?;
        if let (Some(s), Some(u)) = (since, until) {
            if u.start() <= s.after().successor() {
                return Err(TailError::BadTime(format!(
                    "--until ({u}) is not after --since ({s}): nothing lies between them"
                )));
            }
        }
        Ok(Window {
            since: since.map(Moment::after),
            until: until.map(Moment::start),
            follow,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtape_core::clock::parse_time;

    // 2026-12-07 13:00 ET.
    const NOW: i64 = 1_796_666_400_000;

    fn err(since: Option<&str>, until: Option<&str>) -> String {
        match Window::parse(since, until, false, NOW) {
            Err(e @ TailError::BadTime(_)) => {
                assert_eq!(e.exit_code(), 2);
                e.to_string()
            }
            other => panic!("{since:?}..{until:?} gave {other:?}"),
        }
    }

    #[test]
    fn times_and_cursors_become_positions() {
        let at = |t: &str| parse_time(t, NOW).unwrap_or_else(|e| panic!("{e}")) as u64;
        let w = Window::parse(Some("09:30"), Some("10:00"), false, NOW).unwrap_or_default();
        assert_eq!(w.since, Some(Cursor::new(at("09:30") - 1, u64::MAX)));
        assert_eq!(w.until, Some(Cursor::new(at("10:00"), 0)));
        let c = Cursor::new(NOW as u64 - 60_000, 2);
        let w = Window::parse(Some(&c.to_string()), None, true, NOW).unwrap_or_default();
        assert_eq!(
            w,
            Window {
                since: Some(c),
                until: None,
                follow: true,
            }
        );
        let w = Window::parse(None, None, false, NOW).unwrap_or_default();
        assert_eq!(w, Window::default());
    }

    #[test]
    fn bad_windows_are_refused_with_exit_code_2() {
        assert!(err(Some("10:00"), Some("09:30")).contains("is not after --since"));
        assert!(err(Some("10:00"), Some("10:00")).contains("is not after --since"));
        assert!(err(Some("13:30"), None).starts_with("--since: "));
        assert!(err(Some("13:30"), None).contains("in the future"));
        let e = err(Some("09:30"), Some("half past ten"));
        assert!(e.starts_with("--until: "), "{e}");
        assert!(e.contains("HH:MM"), "{e}");
    }
}
