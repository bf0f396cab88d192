//! What a diff runs against: the guest, loaded and admitted as `run` would admit it (its settings
//! file beside it, the same flags); its kinds resolved against the API server; the host's child
//! caches and the related caches listed, exactly as a controller lists them; the parents; and a
//! reconcile context over all of it that previews and never writes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use kube::api::{DynamicObject, ListParams};
use kube::runtime::reflector::store::Writer;

use super::DiffArgs;
use crate::cli::default_compile_cache_dir;
use crate::cluster::{ChildCaches, RelatedCaches, ResolvedKind, WatchScope};
use crate::controller::GuestKinds;
use crate::guests::GuestSpec;
use crate::guests::admission::admit_alone;
use crate::metrics::{GuestMetrics, Metrics};
use crate::reconcile::budget::SharedBudget;
use crate::reconcile::events::EventPublisher;
use crate::reconcile::parent_state::ParentStates;
use crate::reconcile::rollback::RollbackWatch;
use crate::reconcile::shadow::CandidateSlot;
use crate::reconcile::{ActiveGuest, Context, GuestSlot, Settings};
use crate::sandbox::{CompileCacheConfig, GuestEngine, GuestFile, LoadedGuest};

/// Longest the caches may take to list before the diff gives up.
const LIST_TIMEOUT: Duration = Duration::from_secs(120);
/// Parents asked of the API server per list page.
const PAGE: u32 = 500;
/// The memory the guest calls of a diff may use at once (as `run`'s default budget).
const GUEST_MEMORY_BUDGET: usize = 256 << 20;

/// A guest ready to preview, and the parents to preview it on.
pub struct Session {
    pub ctx: Arc<Context>,
    pub guest: Arc<ActiveGuest>,
    pub parents: Vec<DynamicObject>,
}

impl Session {
    /// Loads the guest, resolves its kinds, lists the caches and the parents.
    ///
    /// # Errors
    /// Whatever would stop `run` from serving the guest (an unusable or refused guest, a kind
    /// the API server does not serve, a broken scope rule), an unreachable API server, caches
    /// that do not list.
    pub async fn open(args: &DiffArgs) -> anyhow::Result<Self> {
        let rules = args.rules.validate()?;
        let spec = GuestSpec::load(&args.guest, &rules)?
            .with_config_flag(args.guest_config.clone().filter(|c| c != "null"))?;
        let engine = GuestEngine::new(
            default_compile_cache_dir()
                .map(CompileCacheConfig::new)
                .as_ref(),
        )?;
        let file = GuestFile::read_capped(&spec.path, rules.max_file_bytes)?;
        let guest = engine.load_configured(&file, spec.settings.limits, spec.config())?;
        admit_alone(&rules, guest.manifest(), &spec.settings)?;
        let client = kube::Client::try_default().await.context(
            "connecting to Kubernetes (in-cluster service account, KUBECONFIG or ~/.kube/config)",
        )?;
        let namespace = args.namespace.as_deref();
        let kinds = GuestKinds::resolve(&client, &guest, &spec, namespace).await?;
        let scope = WatchScope {
            client: client.clone(),
            namespace: args.namespace.clone(),
            managed_by: args.field_manager.clone(),
        };
        let children = ChildCaches::new(scope.clone());
        let related = RelatedCaches::new(scope, Arc::clone(&children));
        list_caches(&children, &related, &kinds).await?;
        let parents = list_parents(&client, &kinds.parent, args).await?;
        let active = ActiveGuest::new(Arc::new(guest), kinds.children, kinds.related);
        let ctx = context(args, client, kinds.parent, children, related, active);
        Ok(Self {
            guest: ctx.slot.current(),
            ctx: Arc::new(ctx),
            parents,
        })
    }
}

/// Starts the watches of the guest's child and related kinds and waits until each has listed.
async fn list_caches(
    children: &Arc<ChildCaches>,
    related: &Arc<RelatedCaches>,
    kinds: &GuestKinds,
) -> anyhow::Result<()> {
    let user = kinds.parent.display_name();
    related.retain_kinds(&user, &kinds.related);
    related.start_watching(&user, &kinds.related);
    let started = Instant::now();
    loop {
        let listed = children
            .watch_kinds(&user, &kinds.children, Duration::from_millis(500))
            .await;
        let failing = children.failing(&kinds.children);
        if !failing.is_empty() {
            bail!(
                "the watch of {} fails (is the host's account allowed to list and watch it?)",
                failing.join(", ")
            );
        }
        if listed.is_ok() && related.synced(&kinds.related) {
            return Ok(());
        }
        if started.elapsed() > LIST_TIMEOUT {
            let pending = listed.err().unwrap_or_else(|| names(&kinds.related));
            bail!("the caches of {pending} did not list within {LIST_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every parent of the guest's kind the flags select, in `namespace/name` order.
async fn list_parents(
    client: &kube::Client,
    kind: &ResolvedKind,
    args: &DiffArgs,
) -> anyhow::Result<Vec<DynamicObject>> {
    let api = kind.api(client, args.namespace.as_deref());
    let mut params = ListParams::default().limit(PAGE);
    if let Some(selector) = &args.selector {
        params = params.labels(selector);
    }
    let mut parents = Vec::new();
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|e| anyhow!(crate::error_text::api_error_text(&e)))
            .with_context(|| format!("listing the {} parents", kind.display_name()))?;
        parents.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    let key = |p: &DynamicObject| (p.metadata.namespace.clone(), p.metadata.name.clone());
    parents.sort_by_key(key);
    Ok(parents)
}

/// A reconcile context for previews: the same caches, guest, field manager and rules as a
/// controller's; nothing in it is used to write.
fn context(
    args: &DiffArgs,
    client: kube::Client,
    parent_kind: ResolvedKind,
    children: Arc<ChildCaches>,
    related: Arc<RelatedCaches>,
    active: ActiveGuest,
) -> Context {
    let parents = Writer::new(parent_kind.resource.clone()).as_reader();
    let metrics = GuestMetrics::new(&Arc::new(Metrics::default()), "diff");
    Context {
        events: EventPublisher::new(client.clone(), args.field_manager.clone(), None),
        parent_states: ParentStates::new(parents, parent_kind.resource.clone()),
        client,
        slot: Arc::new(GuestSlot::new(active)),
        // `diff` previews one guest: it has no candidate beside it.
        candidate: Arc::new(CandidateSlot::new(metrics.clone())),
        rollback: Arc::new(RollbackWatch::new(Default::default())),
        parent_kind,
        children,
        related,
        settings: Settings {
            field_manager: args.field_manager.clone(),
            resync: Duration::from_secs(600),
            protected_namespaces: Default::default(),
        },
        metrics,
        guest_memory: SharedBudget::of_memory(GUEST_MEMORY_BUDGET).share(),
        reconcile_slots: SharedBudget::new(usize::from(args.concurrency)).share(),
        claims: Default::default(),
        stopping: tokio::sync::watch::channel(false).1,
    }
}

fn names(kinds: &[Arc<ResolvedKind>]) -> String {
    kinds
        .iter()
        .map(|k| k.display_name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The guest a diff previews, for the summary line.
pub fn describe(guest: &LoadedGuest) -> String {
    let manifest = guest.manifest();
    format!(
        "{} {} ({})",
        manifest.name,
        manifest.version,
        guest.digest()
    )
}
