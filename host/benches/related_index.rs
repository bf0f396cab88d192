//! Benchmark (not a test): the memory of the related-object reverse index, per (parent,
//! reference) pair. Records PAIRS parents (default 100 000) each reading one ConfigMap by name,
//! and as many reading by a label selector, through the host's own `RelatedCaches`, and counts
//! the bytes allocated for them (a counting global allocator). Target: at most 1 KiB per pair.
//! Then forgets every parent, and reports what is still held (target: nothing).
//!
//! Run: `cargo bench -p reconciler-host --bench related_index`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::ObjectRef;
use reconciler_host::cluster::related::{Reading, Selection, kind_key, selector};
use reconciler_host::cluster::{ChildCaches, RelatedCaches, WatchScope};

/// The system allocator, counting the bytes held.
struct Counting;

static HELD: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let pairs: usize = std::env::var("PAIRS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(100_000);
    println!("CPU: {}", cpu_model());
    // A client that is never used: the caches need one to exist, the index does not.
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let scope = WatchScope {
        client,
        namespace: None,
        managed_by: "wasm-reconciler".into(),
    };
    let related = RelatedCaches::new(scope.clone(), ChildCaches::new(scope));
    let parent_kind = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "podtato.example.com",
        "v1alpha1",
        "PotatoHead",
    ));
    let config_maps: std::sync::Arc<str> =
        kind_key(&GroupVersionKind::gvk("", "v1", "ConfigMap")).into();

    for (what, selection) in [
        ("by name", None),
        ("by label selector", Some("team=platform,tier in (web,db)")),
    ] {
        let uids: Vec<String> = (0..pairs).map(|i| format!("{what}-{i:036}")).collect();
        let before = HELD.load(Ordering::Relaxed);
        for (i, uid) in uids.iter().enumerate() {
            let namespace = format!("team-{}", i % 100);
            let reading = Reading {
                kind: std::sync::Arc::clone(&config_maps),
                namespace: Some(namespace.clone()),
                selection: match selection {
                    None => Selection::Names(vec![format!("settings-{}", i % 1000)]),
                    Some(text) => Selection::Labels(selector::parse(text).unwrap()),
                },
            };
            let parent =
                ObjectRef::<DynamicObject>::new_with(&format!("ph-{i}"), parent_kind.clone())
                    .within(&namespace);
            related.record_reader(uid, parent, &[reading]);
        }
        let held = HELD.load(Ordering::Relaxed) - before;
        let (parents, recorded) = related.readers();
        println!(
            "{what}: {recorded} pairs of {parents} parents in the index, {:.0} bytes per pair (target <= 1024)",
            held as f64 / pairs as f64
        );
        for uid in &uids {
            related.forget_reader(uid);
        }
        let left = HELD.load(Ordering::Relaxed) - before;
        println!(
            "{what}: after forgetting every parent, {} bytes still held",
            left
        );
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
