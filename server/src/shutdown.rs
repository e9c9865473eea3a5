//! Graceful shutdown, as one signal every long-running task listens to.
//!
//! [`ShutdownTrigger::trigger`] (called on SIGINT/SIGTERM, or by a test) flips
//! a watch channel; every task holds a [`Shutdown`] and checks
//! [`Shutdown::is_triggered`] between units of work or awaits
//! [`Shutdown::wait`] in a `select!`. Tasks then finish their current unit —
//! commit, acknowledge, send close frames — and return, and the owner joins
//! them, so "stopped" means "drained".

use tokio::sync::watch;

/// Fires the shutdown signal.
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

/// Listens for the shutdown signal; cheap to clone.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// A linked trigger and listener.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown is triggered (or the trigger is dropped).
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        // An error means the trigger is gone, which also means "stop".
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_reaches_every_listener() {
        let (trigger, a) = channel();
        let b = a.clone();
        assert!(!a.is_triggered());
        let waiter = tokio::spawn(async move { b.wait().await });
        trigger.trigger();
        assert!(waiter.await.is_ok());
        assert!(a.is_triggered());
        assert!(trigger.subscribe().is_triggered());
    }
}
