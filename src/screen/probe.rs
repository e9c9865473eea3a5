//! Asking the terminal whether it has left/right margins (DECLRMM), once at
//! startup.
//!
//! [`ask_margins`] writes a DECRQM query for mode 69 followed by a primary
//! device attributes query (DA1, which every terminal answers, so its answer
//! ends the wait) and reads the answers from the terminal within a short
//! timeout. It must run in raw mode and before anything else reads the
//! terminal's input; input typed in that moment is consumed with the
//! answers. No answer, or none before the timeout, means no margins (tmux
//! does not have them and does not answer for mode 69). [`parse`] reads the
//! answers.

use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// DECRQM for mode 69 (DECLRMM), then DA1.
pub const QUERY: &[u8] = b"\x1b[?69$p\x1b[c";

/// How long the terminal has to answer (its answers cross the link once).
pub const TIMEOUT: Duration = Duration::from_millis(500);

/// What the answers so far say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The DA1 answer has not arrived.
    Waiting,
    /// Everything arrived; whether mode 69 can be set and reset.
    Done { margins: bool },
}

/// Reads the terminal's answers in `input` (all bytes so far). The DECRPM
/// answer is `CSI ? 69 ; Ps $ y`, where `Ps` 1 or 2 (set or reset) means the
/// mode exists and can be changed; the DA1 answer `CSI ? … c` comes last.
pub fn parse(input: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(input);
    let Some(da1) = csi_answers(&text).position(|a| a.ends_with('c')) else {
        return Answer::Waiting;
    };
    let margins = csi_answers(&text)
        .take(da1)
        .any(|a| a == "69;1$y" || a == "69;2$y");
    Answer::Done { margins }
}

/// The bodies of the private-mode answers (`CSI ? body`) in `text`.
fn csi_answers(text: &str) -> impl Iterator<Item = &str> {
    text.split("\x1b[?").skip(1).filter_map(|rest| {
        let end = rest.find(|c: char| c.is_ascii_alphabetic())?;
        Some(&rest[..=end])
    })
}

/// Asks the terminal (`out`, answering on standard input) whether it has
/// left/right margins. Any failure to ask or read means no.
pub fn ask_margins(out: &mut impl Write) -> bool {
    match ask(out) {
        Ok(margins) => margins,
        Err(e) => {
            tracing::debug!("asking the terminal for left/right margins: {e}");
            false
        }
    }
}

fn ask(out: &mut impl Write) -> io::Result<bool> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        return Ok(false);
    }
    out.write_all(QUERY)?;
    out.flush()?;
    let fd = stdin.as_fd();
    let deadline = Instant::now() + TIMEOUT;
    let mut input = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::debug!("the terminal did not answer DA1 in {TIMEOUT:?}");
            return Ok(false);
        }
        let timeout = rustix::event::Timespec::try_from(left).map_err(io::Error::other)?;
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        if rustix::event::poll(&mut fds, Some(&timeout))? == 0 {
            continue;
        }
        let mut chunk = [0u8; 256];
        // Straight from the descriptor: nothing past the answers is buffered
        // away from the terminal's event reader.
        let n = rustix::io::read(fd, &mut chunk)?;
        if n == 0 {
            return Ok(false);
        }
        input.extend_from_slice(&chunk[..n]);
        if let Answer::Done { margins } = parse(&input) {
            return Ok(margins);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xterm_answers_reset_and_has_margins() {
        assert_eq!(
            parse(b"\x1b[?69;2$y\x1b[?64;1;2;6;9;15;18;21;22c"),
            Answer::Done { margins: true }
        );
        assert_eq!(
            parse(b"\x1b[?69;1$y\x1b[?1;2c"),
            Answer::Done { margins: true }
        );
    }

    #[test]
    fn tmux_answers_only_da1_and_has_none() {
        assert_eq!(parse(b"\x1b[?1;2c"), Answer::Done { margins: false });
    }

    #[test]
    fn unknown_or_permanent_mode_has_none() {
        for answer in ["0", "3", "4"] {
            let input = format!("\x1b[?69;{answer}$y\x1b[?62c");
            assert_eq!(
                parse(input.as_bytes()),
                Answer::Done { margins: false },
                "{answer}"
            );
        }
    }

    #[test]
    fn waits_for_da1_and_ignores_keys_typed_meanwhile() {
        assert_eq!(parse(b""), Answer::Waiting);
        assert_eq!(parse(b"\x1b[?69;2$y"), Answer::Waiting);
        assert_eq!(parse(b"\x1b[?69;2"), Answer::Waiting);
        assert_eq!(
            parse(b"jj\x1b[?69;2$yq\x1b[?62;22c"),
            Answer::Done { margins: true }
        );
    }
}
