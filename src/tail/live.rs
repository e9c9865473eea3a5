//! The live stream for `tail`: the shared client ([`client::run`])
//! subscribed with a backfill, or with `since` to resume exactly after a
//! position (after the history pages, for `--follow`), printing each event
//! until `--limit`, stdout closing, or the client giving up. Server notices
//! go to stderr.

use std::io::Write;

use flowtape_core::filter::Filter;
use flowtape_core::protocol::{ErrorCode, ServerMessage};
use tokio::sync::mpsc;

use super::print::{Printed, Printer};
use super::TailError;
use crate::client::{self, ClientEvent, ClientOptions};

/// Streams matching events until the limit, the end of the stream or a failure.
pub(super) async fn follow<W: Write>(
    opts: ClientOptions,
    filter: &Filter,
    printer: &mut Printer<'_, W>,
) -> Result<(), TailError> {
    let (_cmd_tx, cmd_rx) = mpsc::channel(1);
    let (ev_tx, mut ev_rx) = mpsc::channel(1024);
    let client = tokio::spawn(client::run(opts, cmd_rx, ev_tx));
    let result = pump(&mut ev_rx, filter, printer).await;
    client.abort();
    result
}

async fn pump<W: Write>(
    ev_rx: &mut mpsc::Receiver<ClientEvent>,
    filter: &Filter,
    printer: &mut Printer<'_, W>,
) -> Result<(), TailError> {
    while let Some(ev) = ev_rx.recv().await {
        match ev {
            ClientEvent::Events(items) => {
                for item in items.iter().filter(|i| filter.matches(&i.event)) {
                    if printer.print(&item.event, item.raw.as_deref())? == Printed::Enough {
                        printer.flush()?;
                        return Ok(());
                    }
                }
                printer.flush()?;
            }
            ClientEvent::Server(m) => match *m {
                ServerMessage::Error { code, message, .. } => match code {
                    ErrorCode::BadFilter
                    | ErrorCode::Unauthorized
                    | ErrorCode::BadCursor
                    | ErrorCode::BadField => {
                        return Err(TailError::Server(format!("{message} ({code:?})")));
                    }
                    _ => eprintln!("flowtape tail: server: {message} ({code:?})"),
                },
                ServerMessage::Status { notice, lost, .. } => {
                    // A loss always comes with its notice; a bare one is said too.
                    if let Some(n) = notice.or_else(|| lost.map(|l| l.notice())) {
                        eprintln!("flowtape tail: {n}");
                    }
                }
                _ => {}
            },
            ClientEvent::Connected { .. }
            | ClientEvent::Connecting { .. }
            | ClientEvent::Subscribed { .. } => {}
            ClientEvent::Disconnected { server, reason } => {
                eprintln!("flowtape tail: {server}: {reason}; retrying");
            }
            ClientEvent::Failed { reason } => return Err(TailError::Connection(reason)),
        }
    }
    Ok(())
}
