//! Budgets the guests of a process share, handed out fairly between them: the guest memory of
//! calls running at once (`--guest-memory-budget-mib`, in MiB) and the parents reconciled at
//! once (`--concurrency`).
//!
//! A semaphore is first come, first served, so a guest with a backlog of slow calls would queue
//! them all ahead of another guest's one call. To keep that from starving the others, each guest
//! sends one request at a time into the shared queue (its `turn`); the rest of its requests wait
//! in its own queue. Waiting guests are therefore served in turn, one request each, while a guest
//! alone can still use the whole budget.

use std::sync::Arc;

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

/// Permits all guests of the process share.
#[derive(Clone)]
pub struct SharedBudget(Arc<Semaphore>);

impl SharedBudget {
    pub fn new(permits: usize) -> Self {
        Self(Arc::new(Semaphore::new(permits)))
    }

    /// The memory budget of guest calls: `bytes` as MiB permits.
    pub fn of_memory(bytes: usize) -> Self {
        Self::new(bytes >> 20)
    }

    /// One guest's share: its own queue in front of the common budget.
    pub fn share(&self) -> BudgetShare {
        BudgetShare {
            budget: Arc::clone(&self.0),
            turn: Arc::new(Mutex::new(())),
        }
    }
}

/// A guest's access to a [`SharedBudget`].
#[derive(Clone)]
pub struct BudgetShare {
    budget: Arc<Semaphore>,
    turn: Arc<Mutex<()>>,
}

impl BudgetShare {
    /// Waits for `bytes` of a memory budget (rounded up to whole MiB); released when the
    /// reservation drops.
    pub async fn reserve_memory(&self, bytes: usize) -> OwnedSemaphorePermit {
        self.reserve(u32::try_from(bytes.div_ceil(1 << 20)).unwrap_or(u32::MAX))
            .await
    }

    /// Waits for `permits` of the budget; released when the reservation drops.
    pub async fn reserve(&self, permits: u32) -> OwnedSemaphorePermit {
        let _turn = self.turn.lock().await;
        Arc::clone(&self.budget)
            .acquire_many_owned(permits)
            .await
            .expect("the guest memory budget is never closed")
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
        assert_eq!(budget.0.available_permits(), 0);
    }
}
