//! The bench's view of the PotatoHeads' statuses: a watch started before the phase it times, so
//! that its initial LIST (1000 custom resources read from etcd, work the floor does not do) does
//! not load the server while the host is being measured against it.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::runtime::watcher::{self, Event, watcher};

/// Per PotatoHead: its generation, and the generation its status was written for.
type Generations = HashMap<String, (Option<i64>, Option<i64>)>;

pub struct StatusWatch {
    seen: tokio::sync::watch::Receiver<Generations>,
    task: tokio::task::JoinHandle<()>,
}

impl StatusWatch {
    /// Starts watching `namespace` and returns once the initial list is in.
    pub async fn start(client: &Client, namespace: &str) -> StatusWatch {
        let api = e2e::potatohead_api(client, namespace);
        let mut events = watcher(api, watcher::Config::default()).boxed();
        let (send, seen) = tokio::sync::watch::channel(Generations::new());
        let (listed, is_listed) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut listed = Some(listed);
            while let Some(event) = events.next().await {
                let event = event.expect("the bench's PotatoHead watch");
                send.send_modify(|seen| match event {
                    Event::Init => seen.clear(),
                    Event::InitApply(object) | Event::Apply(object) => {
                        let observed = object.data["status"]["observedGeneration"].as_i64();
                        let name = object.metadata.name.unwrap_or_default();
                        seen.insert(name, (object.metadata.generation, observed));
                    }
                    Event::Delete(object) => {
                        seen.remove(&object.metadata.name.unwrap_or_default());
                    }
                    Event::InitDone => {
                        if let Some(listed) = listed.take() {
                            let _ = listed.send(());
                        }
                    }
                });
            }
        });
        is_listed
            .await
            .expect("the bench's PotatoHead watch listed");
        StatusWatch { seen, task }
    }

    /// Waits until `parents` PotatoHeads are at `generation` or later with a status written for
    /// it.
    pub async fn wait_for(&mut self, parents: usize, generation: i64) {
        let done = |seen: &Generations| {
            seen.values()
                .filter(|(current, observed)| {
                    current.is_some_and(|g| g >= generation) && observed == current
                })
                .count()
        };
        let waited = tokio::time::timeout(
            Duration::from_secs(600),
            self.seen.wait_for(|seen| done(seen) >= parents),
        )
        .await
        .is_ok();
        assert!(
            waited,
            "{} of {parents} statuses written for generation {generation}",
            done(&self.seen.borrow())
        );
    }
}

impl Drop for StatusWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
