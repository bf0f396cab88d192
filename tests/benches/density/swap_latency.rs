//! Phase 4 of the density bench: does a hot swap of one guest pause the others? At a steady pace
//! (one round every 1 s, then every 500 ms, near what this machine's API server can apply) one
//! parent of every other guest gets a new tag; the latency of each change is the time from its
//! patch to its `Ready` condition reporting the new generation (seen through a watch per kind).
//! Measured in windows without a swap and with the swapped guest's file replaced every 3 s
//! (alternating two builds of the same decision: the swap's sweep over that guest's parents
//! changes no child, but writes each parent's status, whose `reconciler` names the new digest).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};

/// One parent: (kind number, name).
type Key = (usize, String);

#[derive(Default)]
struct Tracker {
    /// The latest generation each parent's `Ready` condition reported, and when it was seen.
    observed: HashMap<Key, (i64, Instant)>,
    /// Changes sent and not yet reported: the generation they made, and when they were sent.
    pending: HashMap<Key, (i64, Instant)>,
    latencies: Vec<Duration>,
}

impl Tracker {
    fn observe(&mut self, key: Key, generation: i64, at: Instant) {
        if let Some((target, sent)) = self.pending.get(&key)
            && generation >= *target
        {
            self.latencies.push(at.saturating_duration_since(*sent));
            self.pending.remove(&key);
        }
        self.observed.insert(key, (generation, at));
    }

    fn sent(&mut self, key: Key, target: i64, sent: Instant) {
        match self.observed.get(&key) {
            Some((generation, at)) if *generation >= target => {
                self.latencies.push(at.saturating_duration_since(sent));
            }
            _ => {
                self.pending.insert(key, (target, sent));
            }
        }
    }
}

/// A window's latencies.
pub struct Window {
    pub samples: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} changes: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            self.samples,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3
        )
    }
}

/// The parents' APIs by kind number, and the driver's position.
pub struct Load {
    apis: Vec<(usize, Api<DynamicObject>)>,
    per_kind: usize,
    round: usize,
    tracker: Arc<Mutex<Tracker>>,
    watches: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Load {
    fn drop(&mut self) {
        for watch in &self.watches {
            watch.abort();
        }
    }
}

impl Load {
    /// Watches the parents of `apis` (each `per_kind` parents `kNN-pIII`).
    pub fn start(apis: Vec<(usize, Api<DynamicObject>)>, per_kind: usize) -> Self {
        let tracker = Arc::new(Mutex::new(Tracker::default()));
        let watches = apis
            .iter()
            .map(|(n, api)| {
                let (n, api, tracker) = (*n, api.clone(), Arc::clone(&tracker));
                tokio::spawn(async move {
                    let mut events = watcher(api, watcher::Config::default())
                        .applied_objects()
                        .boxed();
                    while let Some(Ok(object)) = events.next().await {
                        let Some(generation) = ready_generation(&object) else {
                            continue;
                        };
                        let name = object.metadata.name.clone().unwrap_or_default();
                        tracker
                            .lock()
                            .unwrap()
                            .observe((n, name), generation, Instant::now());
                    }
                })
            })
            .collect();
        Self {
            apis,
            per_kind,
            round: 0,
            tracker,
            watches,
        }
    }

    /// Sends one change per kind every `pace` for `length`, replacing `swapped` with the next of
    /// `builds` every 3 s when given; waits for every change to be reported.
    pub async fn window(
        &mut self,
        pace: Duration,
        length: Duration,
        swap: Option<(&Path, &[Vec<u8>])>,
    ) -> Window {
        self.tracker.lock().unwrap().latencies.clear();
        let started = Instant::now();
        let mut tick = tokio::time::interval(pace);
        let mut swaps = 0;
        let mut next_swap = Instant::now();
        while started.elapsed() < length {
            tick.tick().await;
            if let Some((path, builds)) = swap
                && Instant::now() >= next_swap
            {
                next_swap += Duration::from_secs(3);
                swaps += 1;
                let tmp = path.with_extension("swap");
                std::fs::write(&tmp, &builds[swaps % builds.len()]).unwrap();
                std::fs::rename(&tmp, path).unwrap();
            }
            self.send_round().await;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.tracker.lock().unwrap().pending.is_empty() {
            assert!(
                Instant::now() < deadline,
                "changes not reported within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut latencies = self.tracker.lock().unwrap().latencies.clone();
        latencies.sort();
        let at = |q: f64| latencies[((q * latencies.len() as f64).ceil() as usize).max(1) - 1];
        Window {
            samples: latencies.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: *latencies.last().unwrap(),
        }
    }

    /// One parent of every kind gets the other tag.
    async fn send_round(&mut self) {
        let i = self.round % self.per_kind;
        let tag = if (self.round / self.per_kind).is_multiple_of(2) {
            "0.3.1"
        } else {
            "0.3.0"
        };
        self.round += 1;
        let patch = serde_json::json!({ "spec": { "tag": tag } });
        let sends = self.apis.iter().map(|(n, api)| {
            let name = format!("k{n:02}-p{i:03}");
            let patch = &patch;
            async move {
                let sent = Instant::now();
                let patched = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .unwrap();
                (
                    (*n, name),
                    patched.metadata.generation.unwrap_or_default(),
                    sent,
                )
            }
        });
        for (key, generation, sent) in futures::future::join_all(sends).await {
            self.tracker.lock().unwrap().sent(key, generation, sent);
        }
    }
}

/// The generation the parent's `Ready` condition reports.
fn ready_generation(object: &DynamicObject) -> Option<i64> {
    object.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?["observedGeneration"]
        .as_i64()
}

/// `component` with a custom section appended: another file digest, the same decision.
pub fn rebuilt(component: &[u8], label: &str) -> Vec<u8> {
    let name = b"density-bench-build";
    let mut payload = vec![u8::try_from(name.len()).unwrap()];
    payload.extend_from_slice(name);
    payload.extend_from_slice(label.as_bytes());
    let mut bytes = component.to_vec();
    bytes.push(0); // custom section
    let mut size = payload.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            bytes.push(byte);
            break;
        }
        bytes.push(byte | 0x80);
    }
    bytes.extend_from_slice(&payload);
    bytes
}
