//! Budgets the guests of a process share, handed out fairly between them: the guest memory of
//! calls running at once (`--guest-memory-budget-mib`, in MiB) and the parents reconciled at
//! once (`--concurrency`).
//!
//! A semaphore is first come, first served, so a guest with a backlog of slow calls would queue
//! them all ahead of another guest's one call. To keep that from starving the others, each guest
//! sends one request at a time into the shared queue (its `turn`); the rest of its requests wait
//! in its own queue. Waiting guests are therefore served in turn, one request each.
//!
//! Taking turns is not enough when one guest's calls are slow: each call it starts holds its
//! permits until it ends, so a guest looping to its deadline on every call would soon hold the
//! whole budget, and the others would wait for its deadlines. So while other guests share the
//! budget, one guest may hold at most three quarters of it ([`held_at_most`]); a guest alone may
//! use all of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

/// Permits all guests of the process share.
#[derive(Clone)]
pub struct SharedBudget {
    permits: Arc<Semaphore>,
    total: usize,
    /// Guests holding a share now.
    guests: Arc<AtomicUsize>,
}

impl SharedBudget {
    pub fn new(permits: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits)),
            total: permits,
            guests: Arc::default(),
        }
    }

    /// Every permit of the budget.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Permits held now.
    pub fn in_use(&self) -> usize {
        self.total.saturating_sub(self.permits.available_permits())
    }

    /// The memory budget of guest calls: `bytes` as MiB permits.
    pub fn of_memory(bytes: usize) -> Self {
        Self::new(bytes >> 20)
    }

    /// One guest's share: its own queue in front of the common budget.
    pub fn share(&self) -> BudgetShare {
        self.guests.fetch_add(1, Ordering::AcqRel);
        BudgetShare {
            budget: Arc::clone(&self.permits),
            total: self.total,
            turn: Arc::new(Mutex::new(())),
            own: Arc::new(Semaphore::new(held_at_most(self.total))),
            member: Arc::new(Member(Arc::clone(&self.guests))),
        }
    }
}

/// The most permits of `total` one guest may hold while others share the budget: three
/// quarters, at least one.
pub fn held_at_most(total: usize) -> usize {
    (total - total / 4).max(1)
}

/// Counts a guest as sharing the budget while any clone of its share lives.
struct Member(Arc<AtomicUsize>);

impl Drop for Member {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A guest's access to a [`SharedBudget`].
#[derive(Clone)]
pub struct BudgetShare {
    budget: Arc<Semaphore>,
    /// Every permit of the budget: no reservation may wait for more.
    total: usize,
    turn: Arc<Mutex<()>>,
    /// This guest's cap while other guests share the budget.
    own: Arc<Semaphore>,
    member: Arc<Member>,
}

/// Permits held until dropped.
pub struct Reservation {
    _shared: OwnedSemaphorePermit,
    _own: Option<OwnedSemaphorePermit>,
}

impl BudgetShare {
    /// Waits for `bytes` of a memory budget (rounded up to whole MiB, and at most the whole
    /// budget: a request for more than exists would wait forever, and the fair queue would make
    /// every later request wait behind it); released when the reservation drops.
    pub async fn reserve_memory(&self, bytes: usize) -> Reservation {
        let permits = bytes.div_ceil(1 << 20).min(self.total);
        self.reserve(u32::try_from(permits).unwrap_or(u32::MAX))
            .await
    }

    /// Waits for `permits` of the budget (within this guest's cap while other guests share it);
    /// released when the reservation drops.
    pub async fn reserve(&self, permits: u32) -> Reservation {
        let _turn = self.turn.lock().await;
        let shared_with_others = self.member.0.load(Ordering::Acquire) > 1;
        let own = if shared_with_others {
            let capped = permits.min(u32::try_from(held_at_most(self.total)).unwrap_or(u32::MAX));
            Some(
                Arc::clone(&self.own)
                    .acquire_many_owned(capped)
                    .await
                    .expect("a guest's cap is never closed"),
            )
        } else {
            None
        };
        let shared = Arc::clone(&self.budget)
            .acquire_many_owned(permits)
            .await
            .expect("the guest memory budget is never closed");
        Reservation {
            _shared: shared,
            _own: own,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Guest A has taken the whole budget and queued ten more calls; guest B's one call must be
    /// served as soon as one of A's finishes, not after A's whole backlog.
    #[tokio::test]
    async fn a_guest_with_a_backlog_cannot_starve_another() {
        let budget = SharedBudget::of_memory(2 << 20);
        let (a, b) = (budget.share(), budget.share());
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let running = vec![
            a.reserve_memory(1 << 20).await,
            a.reserve_memory(1 << 20).await,
        ];
        let mut backlog = Vec::new();
        for i in 0..10 {
            let (a, order) = (a.clone(), Arc::clone(&order));
            backlog.push(tokio::spawn(async move {
                let _permit = a.reserve_memory(1 << 20).await;
                order.lock().unwrap().push(format!("a{i}"));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }));
            tokio::task::yield_now().await;
        }
        let b_done = {
            let order = Arc::clone(&order);
            tokio::spawn(async move {
                let _permit = b.reserve_memory(1 << 20).await;
                order.lock().unwrap().push("b".to_string());
            })
        };
        tokio::task::yield_now().await;
        drop(running);
        b_done.await.unwrap();
        for call in backlog {
            call.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        let b_at = order.iter().position(|c| c == "b").unwrap();
        assert!(b_at <= 1, "B waited behind {b_at} of A's calls: {order:?}");
    }

    // Attack: `memory-mib: 300` with a 256 MiB budget waited for more permits than exist, and
    // every guest queued behind it forever.
    #[tokio::test]
    async fn a_reservation_larger_than_the_budget_takes_the_whole_budget_instead_of_waiting_forever()
     {
        let budget = SharedBudget::of_memory(4 << 20);
        let (a, b) = (budget.share(), budget.share());
        let whole = tokio::time::timeout(Duration::from_secs(1), a.reserve_memory(300 << 20))
            .await
            .expect("served at once");
        drop(whole);
        let _served = tokio::time::timeout(Duration::from_secs(1), b.reserve_memory(1 << 20))
            .await
            .expect("the other guest is served after it");
    }

    // Attack: a guest whose every call runs to a long deadline took every slot, one turn at a
    // time, and the other guests waited for its deadlines.
    #[tokio::test]
    async fn a_slow_guest_cannot_hold_the_last_quarter_while_others_share_the_budget() {
        let budget = SharedBudget::new(8);
        let (slow, other) = (budget.share(), budget.share());
        let mut held = Vec::new();
        for _ in 0..6 {
            held.push(slow.reserve(1).await);
        }
        let seventh = tokio::time::timeout(Duration::from_millis(100), slow.reserve(1)).await;
        assert!(seventh.is_err(), "the slow guest took more than 6 of 8");
        let served = tokio::time::timeout(Duration::from_millis(100), other.reserve(2)).await;
        assert!(served.is_ok(), "the other guest waited for the slow one");
        assert_eq!(held_at_most(4), 3);
        assert_eq!(held_at_most(1), 1);
        drop(other);
        drop(served);
        let alone = tokio::time::timeout(Duration::from_millis(100), slow.reserve(2)).await;
        assert!(alone.is_ok(), "a guest alone may use the rest");
    }

    #[tokio::test]
    async fn a_guest_alone_may_use_the_whole_budget() {
        let budget = SharedBudget::of_memory(3 << 20);
        let a = budget.share();
        let held = [
            a.reserve_memory(1 << 20).await,
            a.reserve_memory(1 << 20).await,
            a.reserve_memory(1 << 20).await,
        ];
        assert_eq!(held.len(), 3);
        assert_eq!(budget.permits.available_permits(), 0);
    }

    #[tokio::test]
    async fn in_use_counts_the_permits_held_until_they_are_released() {
        let budget = SharedBudget::new(4);
        let share = budget.share();
        assert_eq!((budget.total(), budget.in_use()), (4, 0));
        let held = share.reserve(3).await;
        assert_eq!(budget.in_use(), 3);
        drop(held);
        assert_eq!(budget.in_use(), 0);
    }
}
