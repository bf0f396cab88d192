//! The sweep after a hot swap: every parent of the guest is reconciled again with the new guest,
//! a few at a time.
//!
//! Why not kube-runtime's `reconcile_all_on`: it queues every parent at once, and each of those
//! reconciles writes the parent's status (`status.reconciler` names the new code), so a swap of
//! a guest with many parents would send that many writes to the API server in one burst, and
//! every other guest's reconciles would queue behind them (measured in docs/benchmarks.md, "Many
//! guests in one host"). The sweep instead keeps at most `--swap-concurrency` of its parents in
//! flight, letting the next one go when one finishes: it goes at the pace the API server answers,
//! and changes to any parent keep their own way in beside it. A new swap during a sweep starts it
//! over (every parent needs the newest guest).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::mpsc::UnboundedSender;
use kube::api::DynamicObject;
use kube::discovery::ApiResource;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::info;

use crate::metrics::GuestMetrics;

/// How often a sweep waiting for a free place checks for parents deleted before their turn came
/// (kube-runtime never reconciles those, so their places would otherwise stay taken).
const DELETED_CHECK: Duration = Duration::from_secs(1);

/// The sweeps of one controller's parents.
pub struct Sweep {
    /// Bumped by every request; the sweeping task follows it.
    requests: watch::Sender<u64>,
    /// Places for parents the sweep sent and whose reconcile has not finished.
    places: Arc<Semaphore>,
    in_flight: Mutex<HashMap<ObjectRef<DynamicObject>, OwnedSemaphorePermit>>,
    /// Where the sweep's progress is shown (`swap_sweep_remaining`).
    metrics: GuestMetrics,
}

impl Sweep {
    /// A sweep keeping at most `in_flight` parents (at least one) in flight.
    #[must_use]
    pub fn new(in_flight: usize, metrics: GuestMetrics) -> Arc<Self> {
        Arc::new(Self {
            requests: watch::Sender::new(0),
            places: Arc::new(Semaphore::new(in_flight.max(1))),
            in_flight: Mutex::default(),
            metrics,
        })
    }

    /// Asks for every parent to be reconciled again; a sweep in progress starts over.
    pub fn request(&self) {
        self.requests.send_modify(|n| *n += 1);
    }

    /// A reconcile of `parent` finished: its place, if the sweep sent it, goes to the next parent.
    pub fn finished(&self, parent: &ObjectRef<DynamicObject>) {
        self.in_flight.lock().expect("sweep lock").remove(parent);
    }

    /// Sends the parents of `parents` to `controller` at each request, paced, until the
    /// controller's end drops the receiver.
    pub async fn run(
        self: Arc<Self>,
        parents: Store<DynamicObject>,
        kind: ApiResource,
        controller: UnboundedSender<ObjectRef<DynamicObject>>,
    ) {
        let mut requests = self.requests.subscribe();
        self.metrics.set_swap_sweep_remaining(0);
        // Requests are counted, so one made before this task first ran is not missed.
        let mut done = 0;
        while requests.wait_for(|asked| *asked > done).await.is_ok() {
            loop {
                done = *requests.borrow_and_update();
                let started = Instant::now();
                let all = parents.state();
                let mut sent = 0;
                self.metrics.set_swap_sweep_remaining(all.len());
                for parent in &all {
                    let parent = ObjectRef::from_obj_with(parent.as_ref(), kind.clone());
                    let place = tokio::select! {
                        biased;
                        _ = requests.changed() => break,
                        place = self.free_place(&parents) => place,
                    };
                    self.in_flight
                        .lock()
                        .expect("sweep lock")
                        .insert(parent.clone(), place);
                    if controller.unbounded_send(parent).is_err() {
                        return;
                    }
                    sent += 1;
                    self.metrics.set_swap_sweep_remaining(all.len() - sent);
                }
                if sent == all.len() {
                    info!(
                        parents = sent,
                        took_ms = started.elapsed().as_secs_f64() * 1e3,
                        "every parent sent to be reconciled with the new guest"
                    );
                    break;
                }
                // A newer request came while sweeping: start over with the newest guest.
            }
        }
    }

    /// A place for one more parent, once one is free.
    async fn free_place(&self, parents: &Store<DynamicObject>) -> OwnedSemaphorePermit {
        loop {
            let waiting = Arc::clone(&self.places).acquire_owned();
            match tokio::time::timeout(DELETED_CHECK, waiting).await {
                Ok(place) => return place.expect("the sweep never closes its semaphore"),
                Err(_) => self
                    .in_flight
                    .lock()
                    .expect("sweep lock")
                    .retain(|parent, _| parents.get(parent).is_some()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    use crate::metrics::Metrics;

    fn sweep(in_flight: usize) -> (Arc<Sweep>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let sweep = Sweep::new(in_flight, GuestMetrics::new(&metrics, "g"));
        (sweep, metrics)
    }

    fn remaining(metrics: &Metrics) -> Option<f64> {
        metrics
            .encode()
            .lines()
            .find(|l| l.starts_with("reconciler_swap_sweep_remaining{guest=\"g\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    fn kind() -> ApiResource {
        ApiResource {
            group: "demo.example.com".into(),
            version: "v1".into(),
            api_version: "demo.example.com/v1".into(),
            kind: "Thing".into(),
            plural: "things".into(),
        }
    }

    fn parent(name: &str) -> DynamicObject {
        DynamicObject::new(name, &kind()).within("default")
    }

    fn store_of(names: &[&str]) -> (Writer<DynamicObject>, Store<DynamicObject>) {
        let mut writer = Writer::new(kind());
        for name in names {
            writer.apply_watcher_event(&Event::Apply(parent(name)));
        }
        let store = writer.as_reader();
        (writer, store)
    }

    async fn next(
        sent: &mut futures::channel::mpsc::UnboundedReceiver<ObjectRef<DynamicObject>>,
    ) -> Option<ObjectRef<DynamicObject>> {
        tokio::time::timeout(Duration::from_millis(200), sent.next())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn a_sweep_keeps_at_most_its_places_in_flight_and_sends_the_next_as_one_finishes() {
        let (_writer, store) = store_of(&["a", "b", "c", "d", "e"]);
        let (sweep, metrics) = sweep(2);
        let (to_controller, mut sent) = futures::channel::mpsc::unbounded();
        tokio::spawn(Arc::clone(&sweep).run(store, kind(), to_controller));
        assert!(next(&mut sent).await.is_none(), "nothing is sent unasked");
        assert_eq!(remaining(&metrics), Some(0.0));

        sweep.request();
        let first = next(&mut sent).await.expect("first parent");
        let second = next(&mut sent).await.expect("second parent");
        assert!(
            next(&mut sent).await.is_none(),
            "a third parent was sent while two were in flight"
        );
        assert_eq!(remaining(&metrics), Some(3.0), "5 parents, 2 sent");
        sweep.finished(&first);
        let third = next(&mut sent)
            .await
            .expect("third parent after one finished");
        sweep.finished(&second);
        sweep.finished(&third);
        let fourth = next(&mut sent).await.expect("fourth");
        let fifth = next(&mut sent).await.expect("fifth");
        sweep.finished(&fifth);
        let mut names: Vec<String> = [first, second, third, fourth, fifth]
            .iter()
            .map(|p| p.name.clone())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b", "c", "d", "e"]);
        assert!(next(&mut sent).await.is_none(), "one request, one sweep");
        assert_eq!(remaining(&metrics), Some(0.0));
    }

    #[tokio::test]
    async fn a_parent_deleted_before_its_reconcile_gives_its_place_back() {
        let (mut writer, store) = store_of(&["a", "b"]);
        let (sweep, _metrics) = sweep(1);
        let (to_controller, mut sent) = futures::channel::mpsc::unbounded();
        tokio::spawn(Arc::clone(&sweep).run(store, kind(), to_controller));
        sweep.request();
        let first = next(&mut sent).await.expect("first parent");
        // Deleted before the controller reconciled it: no `finished` ever comes.
        writer.apply_watcher_event(&Event::Delete(parent(&first.name)));
        let second = tokio::time::timeout(DELETED_CHECK * 3, sent.next())
            .await
            .expect("the deleted parent's place was never given back")
            .expect("second parent");
        assert_ne!(first.name, second.name);
    }

    #[tokio::test]
    async fn a_request_during_a_sweep_starts_it_over() {
        let (_writer, store) = store_of(&["a", "b", "c"]);
        let (sweep, _metrics) = sweep(1);
        let (to_controller, mut sent) = futures::channel::mpsc::unbounded();
        tokio::spawn(Arc::clone(&sweep).run(store, kind(), to_controller));
        sweep.request();
        let first = next(&mut sent).await.expect("first parent");
        sweep.request();
        sweep.finished(&first);
        // The new sweep sends all three again, the first one included.
        let mut names = Vec::new();
        while let Some(parent) = next(&mut sent).await {
            names.push(parent.name.clone());
            sweep.finished(&parent);
        }
        assert_eq!(names.len(), 3, "sent after the second request: {names:?}");
        names.sort();
        assert_eq!(names, ["a", "b", "c"]);
    }
}
