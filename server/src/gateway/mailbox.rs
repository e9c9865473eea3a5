//! A small many-producer, one-consumer queue, for the queues every client
//! connection holds (its send queue, its reader's commands).
//!
//! tokio's `mpsc` channels allocate a cache-padded channel and a block of 32
//! slots when they are created: about 1 KiB per channel, in every connection,
//! idle or not. A mailbox is a mutex-guarded `VecDeque` that allocates
//! nothing until it is used, and two [`Notify`]s: one wakes the receiver,
//! one wakes senders waiting for room. Pushes and pops are a lock each; the
//! lock is only ever contended by one connection's own producers and its
//! consumer.
//!
//! Semantics follow `mpsc`: the receiver gets `None` once it has taken
//! everything and every sender is gone; senders fail once the receiver is
//! gone (and what was queued is dropped with it). Two additions serve the
//! gateway's fan-out: a sender can queue many items under one lock without
//! waking the receiver and wake it later ([`Sender::push_quiet`],
//! [`Sender::wake`]), and either side can take items off the front, under
//! one lock, while they pass a test ([`Queue::pop_front_while`]), so
//! whoever writes a client's socket takes its queue in order.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

struct Shared<T> {
    state: Mutex<State<T>>,
    /// The receiver waits on this.
    ready: Notify,
    /// Senders waiting for room wait on this.
    room: Notify,
    capacity: usize,
}

struct State<T> {
    items: VecDeque<T>,
    senders: usize,
    receiver_gone: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why an item could not be queued now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TrySendError<T> {
    /// The mailbox holds `capacity` items.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

/// The sending side; cheap to clone.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving side.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// A mailbox holding at most `capacity` items (`usize::MAX`: unbounded).
pub(crate) fn mailbox<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            senders: 1,
            receiver_gone: false,
        }),
        ready: Notify::new(),
        room: Notify::new(),
        capacity: capacity.max(1),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

impl<T> Sender<T> {
    /// Queues `item` if there is room.
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let mut state = self.shared.lock();
        if state.receiver_gone {
            return Err(TrySendError::Closed(item));
        }
        if state.items.len() >= self.shared.capacity {
            return Err(TrySendError::Full(item));
        }
        state.items.push_back(item);
        drop(state);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Queues `item`, waiting for room; gives it back if the receiver is gone.
    pub(crate) async fn send(&self, mut item: T) -> Result<(), T> {
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(back)) => return Err(back),
                Err(TrySendError::Full(back)) => item = back,
            }
            room.await;
        }
    }

    /// Whether the receiver is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.lock().receiver_gone
    }

    /// Queues `items` without waking the receiver (unbounded mailboxes only:
    /// the capacity is not checked); [`Sender::wake`] wakes it later. False,
    /// and nothing queued, if the receiver is gone.
    pub(crate) fn push_quiet(&self, items: impl IntoIterator<Item = T>) -> bool {
        let mut state = self.shared.lock();
        if state.receiver_gone {
            return false;
        }
        state.items.extend(items);
        true
    }

    /// Wakes the receiver (once, however often it is called before it runs).
    pub(crate) fn wake(&self) {
        self.shared.ready.notify_one();
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.shared.lock().items.is_empty()
    }
}

/// Either end of a mailbox, taking items off the front.
pub(crate) trait Queue<T> {
    /// Takes items off the front, in order, into `put`, while `take`
    /// accepts the next one.
    fn pop_front_while(&self, take: impl FnMut(&T) -> bool, put: impl FnMut(T));
}

impl<T> Queue<T> for Sender<T> {
    fn pop_front_while(&self, take: impl FnMut(&T) -> bool, put: impl FnMut(T)) {
        self.shared.pop_front_while(take, put);
    }
}

impl<T> Queue<T> for Receiver<T> {
    fn pop_front_while(&self, take: impl FnMut(&T) -> bool, put: impl FnMut(T)) {
        self.shared.pop_front_while(take, put);
    }
}

impl<T> Shared<T> {
    fn pop_front_while(&self, mut take: impl FnMut(&T) -> bool, mut put: impl FnMut(T)) {
        let mut state = self.lock();
        let mut taken = false;
        while state.items.front().is_some_and(&mut take) {
            if let Some(item) = state.items.pop_front() {
                put(item);
                taken = true;
            }
        }
        drop(state);
        // Only a bounded mailbox has senders waiting for room.
        if taken && self.capacity != usize::MAX {
            self.room.notify_waiters();
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders -= 1;
        let last = state.senders == 0;
        drop(state);
        if last {
            self.shared.ready.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    /// The next item, or `None` once empty with every sender gone.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        loop {
            // A notification between the check and the wait is kept as a
            // permit by `notify_one`, so none is lost.
            let notified = self.shared.ready.notified();
            {
                let mut state = self.shared.lock();
                if let Some(item) = state.items.pop_front() {
                    drop(state);
                    self.shared.room.notify_waiters();
                    return Some(item);
                }
                if state.senders == 0 {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// The next item if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        let item = self.shared.lock().items.pop_front();
        if item.is_some() {
            self.shared.room.notify_waiters();
        }
        item
    }

    /// Waits until something is queued or a sender wakes the receiver; false
    /// once nothing is queued and every sender is gone. A wake-up may find
    /// nothing queued (the item was taken by a sender, or the wake was for
    /// something else).
    pub(crate) async fn wait(&mut self) -> bool {
        let notified = self.shared.ready.notified();
        {
            let state = self.shared.lock();
            if !state.items.is_empty() {
                return true;
            }
            if state.senders == 0 {
                return false;
            }
        }
        notified.await;
        true
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut state = self.shared.lock();
            state.receiver_gone = true;
            std::mem::take(&mut state.items)
        };
        // Dropped outside the lock.
        drop(items);
        self.shared.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn items_arrive_in_order_and_none_once_every_sender_is_gone() {
        let (tx, mut rx) = mailbox(usize::MAX);
        let tx2 = tx.clone();
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx2.try_send(2), Ok(()));
        let waiter = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(x) = rx.recv().await {
                got.push(x);
            }
            got
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(tx.try_send(3), Ok(()));
        drop(tx);
        drop(tx2);
        assert_eq!(waiter.await.ok(), Some(vec![1, 2, 3]));
    }

    #[tokio::test]
    async fn a_full_mailbox_makes_send_wait_and_a_gone_receiver_fails_it() {
        let (tx, mut rx) = mailbox(1);
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
        let sender = tokio::spawn(async move { tx.send(2).await.map(|()| tx) });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!sender.is_finished(), "send must wait for room");
        assert_eq!(rx.try_recv(), Some(1));
        let tx = match sender.await {
            Ok(Ok(tx)) => tx,
            _ => panic!("send failed"),
        };
        assert_eq!(rx.recv().await, Some(2));
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.try_send(3), Err(TrySendError::Closed(3)));
        assert_eq!(tx.send(4).await, Err(4));
    }
}
