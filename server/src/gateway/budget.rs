//! The gateway's memory budget: the bytes queued for all clients together
//! ([`GatewayConfig::max_queued_bytes`](super::GatewayConfig::max_queued_bytes)).
//!
//! Every client's send queue reserves its bytes here as well as in its own
//! queue, with one compare-and-swap on a shared counter, so the total never
//! exceeds the budget. A reservation that would exceed it first makes room,
//! in the reserving task: it closes the clients with the most bytes queued
//! (4008, [`CLOSE_MEMORY_BUDGET_REASON`](flowtape_core::protocol::CLOSE_MEMORY_BUDGET_REASON)),
//! whose queues are dropped at once, until the total is at the low-water
//! mark, an eighth of the budget below it. A client with nothing queued is
//! never closed for the budget.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::metrics::GatewayMetrics;

/// A client the budget can close to free memory.
pub(crate) trait Evictable: Send + Sync {
    /// The bytes closing it would free: what its queue holds, or 0 if it is
    /// already closing.
    fn evictable_bytes(&self) -> usize;
    /// Closes it for the budget and drops its queue; false if it was
    /// already closing.
    fn evict(&self) -> bool;
}

/// The bytes queued for every client of one gateway, and the clients.
pub(crate) struct MemoryBudget {
    limit: usize,
    /// Eviction brings the total down to this.
    low_water: usize,
    /// Holds the count (`queued_bytes`), so that `/metrics` reads it as is.
    metrics: Arc<GatewayMetrics>,
    clients: Mutex<Clients>,
    /// One eviction at a time: a second reservation over the budget waits
    /// for the first one's eviction, and usually finds room then.
    evicting: Mutex<()>,
}

#[derive(Default)]
struct Clients {
    next_id: u64,
    by_id: HashMap<u64, Weak<dyn Evictable>>,
}

/// A client's place in the budget's list; see [`MemoryBudget::register`].
#[derive(Debug)]
pub(crate) struct ClientId(u64);

impl MemoryBudget {
    /// A budget of `limit` queued bytes, counted in `metrics`.
    pub(crate) fn new(limit: usize, metrics: Arc<GatewayMetrics>) -> MemoryBudget {
        metrics
            .max_queued_bytes
            .store(limit as u64, Ordering::Relaxed);
        MemoryBudget {
            limit,
            low_water: limit - limit / 8,
            metrics,
            clients: Mutex::new(Clients::default()),
            evicting: Mutex::new(()),
        }
    }

    fn clients(&self) -> MutexGuard<'_, Clients> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lists a client as one the budget may close; [`MemoryBudget::deregister`]
    /// takes it off again. A client whose `Weak` is not yet (or no longer)
    /// alive is skipped.
    pub(crate) fn register(&self, client: Weak<dyn Evictable>) -> ClientId {
        let mut clients = self.clients();
        let id = clients.next_id;
        clients.next_id += 1;
        clients.by_id.insert(id, client);
        ClientId(id)
    }

    pub(crate) fn deregister(&self, id: &ClientId) {
        self.clients().by_id.remove(&id.0);
    }

    /// The bytes queued for all clients.
    pub(crate) fn queued(&self) -> usize {
        self.metrics.queued_bytes.load(Ordering::Relaxed) as usize
    }

    /// Counts `bytes` more queued, closing the clients furthest behind first
    /// if that would exceed the budget; false if there is still no room (the
    /// caller's own client may be among those closed).
    pub(crate) fn reserve(&self, bytes: usize) -> bool {
        self.try_add(bytes) || {
            self.make_room(bytes);
            self.try_add(bytes)
        }
    }

    /// `bytes` queued bytes have left their queue.
    pub(crate) fn release(&self, bytes: usize) {
        self.metrics
            .queued_bytes
            .fetch_sub(bytes as u64, Ordering::Relaxed);
    }

    fn try_add(&self, bytes: usize) -> bool {
        let total = &self.metrics.queued_bytes;
        let mut before = total.load(Ordering::Relaxed);
        loop {
            let after = before.saturating_add(bytes as u64);
            if after > self.limit as u64 {
                return false;
            }
            match total.compare_exchange_weak(before, after, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => before = now,
            }
        }
    }

    /// Closes clients, most bytes queued first, until the total with `bytes`
    /// more is at the low-water mark (or nothing more can be freed).
    fn make_room(&self, bytes: usize) {
        let _one_at_a_time = self.evicting.lock().unwrap_or_else(|p| p.into_inner());
        // Another reservation's eviction may have made room meanwhile.
        if self.queued().saturating_add(bytes) <= self.limit {
            return;
        }
        let mut closed = 0u64;
        loop {
            // Out of the lock before anything is done with them: the last
            // reference to a client, dropped, takes it off the list.
            let clients: Vec<Arc<dyn Evictable>> = self
                .clients()
                .by_id
                .values()
                .filter_map(Weak::upgrade)
                .collect();
            let queued: Vec<usize> = clients.iter().map(|c| c.evictable_bytes()).collect();
            let excess = (self.queued() + bytes).saturating_sub(self.low_water);
            let victims = victims(&queued, excess);
            let before = closed;
            for i in victims {
                if self.queued() + bytes <= self.low_water {
                    break;
                }
                if clients[i].evict() {
                    closed += 1;
                    self.metrics
                        .budget_disconnects
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            // What a closed client's writer has taken off its queue and is
            // writing stays counted until written: look again, without the
            // clients closed by now, until at the mark or nobody is left.
            if self.queued() + bytes <= self.low_water || closed == before {
                break;
            }
        }
        if closed > 0 {
            tracing::warn!(
                closed,
                queued = self.queued(),
                budget = self.limit,
                "gateway memory budget exceeded: closed the clients furthest behind"
            );
        }
    }
}

/// Which clients to close, in order, to free `excess` bytes, given the
/// bytes each client could free: the largest first (each close frees the
/// most, so the fewest clients are closed, and a client's queue is largest
/// when it is furthest behind), ties in list order, never one with nothing
/// queued. All of them if together they hold less than `excess`.
fn victims(queued: &[usize], excess: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..queued.len()).filter(|&i| queued[i] > 0).collect();
    order.sort_by(|&a, &b| queued[b].cmp(&queued[a]));
    let mut freed = 0usize;
    let mut chosen = Vec::new();
    for i in order {
        if freed >= excess {
            break;
        }
        freed += queued[i];
        chosen.push(i);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    #[test]
    fn the_largest_queues_go_first_and_only_as_many_as_needed() {
        assert_eq!(victims(&[10, 50, 0, 30, 50], 60), vec![1, 4]);
        assert_eq!(victims(&[10, 50, 0, 30, 50], 101), vec![1, 4, 3]);
        assert_eq!(victims(&[10, 50, 0, 30, 50], 1), vec![1]);
    }

    #[test]
    fn nothing_is_chosen_without_excess_and_an_empty_queue_never() {
        assert_eq!(victims(&[10, 50], 0), Vec::<usize>::new());
        assert_eq!(victims(&[0, 0, 7], 1_000), vec![2]);
        assert_eq!(victims(&[], 1_000), Vec::<usize>::new());
    }

    /// A client that frees its bytes when closed, except `stuck` of them
    /// (what its writer is writing, which its queue cannot tell apart).
    struct Client {
        queued: AtomicUsize,
        stuck: usize,
        closed: AtomicBool,
        budget: Arc<MemoryBudget>,
    }

    impl Evictable for Client {
        fn evictable_bytes(&self) -> usize {
            if self.closed.load(Ordering::Relaxed) {
                0
            } else {
                self.queued.load(Ordering::Relaxed)
            }
        }

        fn evict(&self) -> bool {
            if self.closed.swap(true, Ordering::Relaxed) {
                return false;
            }
            let freed = self.queued.load(Ordering::Relaxed) - self.stuck;
            self.queued.fetch_sub(freed, Ordering::Relaxed);
            self.budget.release(freed);
            true
        }
    }

    fn client(budget: &Arc<MemoryBudget>, queued: usize, stuck: usize) -> Arc<Client> {
        assert!(budget.reserve(queued));
        let c = Arc::new(Client {
            queued: AtomicUsize::new(queued),
            stuck,
            closed: AtomicBool::new(false),
            budget: budget.clone(),
        });
        let weak: Weak<dyn Evictable> = Arc::downgrade(&c) as Weak<dyn Evictable>;
        budget.register(weak);
        c
    }

    fn closed(c: &Client) -> bool {
        c.closed.load(Ordering::Relaxed)
    }

    #[test]
    fn a_reservation_over_the_budget_closes_the_largest_queues_down_to_the_low_water_mark() {
        let metrics = Arc::new(GatewayMetrics::default());
        let budget = Arc::new(MemoryBudget::new(800, metrics.clone()));
        let reader = client(&budget, 10, 0);
        let big = client(&budget, 400, 0);
        let middle = client(&budget, 250, 0);
        let small = client(&budget, 100, 0);
        assert_eq!(budget.queued(), 760);
        assert!(budget.reserve(40), "up to the budget needs no room");
        assert!(budget.reserve(0));
        // Over it: the largest queue goes, which is enough for the
        // reservation and the low-water mark (700).
        assert!(budget.reserve(30));
        assert!(closed(&big));
        assert!(!closed(&middle) && !closed(&small) && !closed(&reader));
        assert_eq!(budget.queued(), 430);
        assert_eq!(metrics.budget_disconnects.load(Ordering::Relaxed), 1);
        assert_eq!(metrics.max_queued_bytes.load(Ordering::Relaxed), 800);
    }

    #[test]
    fn bytes_a_closed_client_cannot_free_make_the_next_largest_go_too() {
        let metrics = Arc::new(GatewayMetrics::default());
        let budget = Arc::new(MemoryBudget::new(800, metrics.clone()));
        let reader = client(&budget, 10, 0);
        // Most of its queue is being written: closing it frees 50.
        let writing = client(&budget, 500, 450);
        let next = client(&budget, 280, 0);
        let small = client(&budget, 5, 0);
        assert!(budget.reserve(100));
        assert!(closed(&writing) && closed(&next));
        assert!(!closed(&reader) && !closed(&small));
        assert_eq!(budget.queued(), 565);
        assert_eq!(metrics.budget_disconnects.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_client_already_gone_is_skipped() {
        let metrics = Arc::new(GatewayMetrics::default());
        let budget = Arc::new(MemoryBudget::new(100, metrics.clone()));
        // Its bytes are still counted (its writer is finishing), but nothing
        // can close it any more.
        drop(client(&budget, 60, 0));
        let live = client(&budget, 30, 0);
        assert!(budget.reserve(20));
        assert!(closed(&live));
        assert_eq!(budget.queued(), 80);
        assert_eq!(metrics.budget_disconnects.load(Ordering::Relaxed), 1);
    }
}
