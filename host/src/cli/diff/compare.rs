//! One parent's diff: the guest previewed on the parent and its live children (the reconcile's own
//! steps up to the writes, `reconcile::preview`), then each planned child the planning step does
//! not already know to be as desired asked of the API server as a server-side apply with
//! `dryRun=All` under the host's field manager, so what would change is the server's own answer.
//! The children the plan drops are the ones a reconcile would prune; the status is computed as a
//! reconcile computes it.

use kube::ResourceExt;
use kube::api::{DynamicObject, Patch, PatchParams};
use serde::Serialize;
use serde_json::{Value, json};

use crate::cluster::{kinds, object_name};
use crate::error_text::api_error_text;
use crate::reconcile::active_guest::status_stamp;
use crate::reconcile::field_changes::{FieldChange, changes};
use crate::reconcile::json_match::is_satisfied;
use crate::reconcile::plan::PlannedChild;
use crate::reconcile::status::{Outcome, needs_write, next_status};
use crate::reconcile::{ActiveGuest, Context, Preview, preview};

/// What the guest would change for one parent.
#[derive(Debug, Serialize)]
pub struct ParentDiff {
    /// `namespace/name`, or `name` for a cluster-scoped parent.
    pub parent: String,
    #[serde(flatten)]
    pub outcome: Verdict,
}

/// The children and status that would change, or why nothing would be written.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum Verdict {
    /// The guest decided and its output would be applied.
    Decided {
        children: Vec<ChildChange>,
        /// Planned children already as desired.
        unchanged: usize,
        /// The status fields that would change (none for a kind Kubernetes serves).
        status: Vec<FieldChange>,
        /// The parent is being deleted: a reconcile applies and prunes nothing.
        finalizing: bool,
    },
    /// The reconcile would end without writing children: the guest rejected the spec or failed,
    /// its output or requirements break the host's rules, or the API server would refuse an
    /// apply.
    Failed { reason: String },
}

/// One child that would be created, changed or pruned.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildChange {
    pub action: Action,
    /// `Deployment.apps/v1`.
    pub kind: String,
    /// Empty for a cluster-scoped child.
    pub namespace: String,
    pub name: String,
    /// The fields a change would change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    /// The object a create would create, as the API server answered the dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Create,
    Change,
    Prune,
}

impl ParentDiff {
    /// Whether anything would change, or the guest would fail, for this parent.
    pub fn differs(&self) -> bool {
        match &self.outcome {
            Verdict::Decided {
                children, status, ..
            } => !children.is_empty() || !status.is_empty(),
            Verdict::Failed { .. } => true,
        }
    }
}

/// The diff of `guest` for `parent`; `now` is the time a changed condition would be stamped with.
pub async fn diff_parent(
    ctx: &Context,
    guest: &ActiveGuest,
    parent: &DynamicObject,
    now: &Value,
) -> ParentDiff {
    let key = match parent.namespace() {
        Some(namespace) => format!("{namespace}/{}", parent.name_any()),
        None => parent.name_any(),
    };
    let outcome = match preview(ctx, parent, guest).await {
        Ok(preview) => decided(ctx, guest, parent, preview, now)
            .await
            .unwrap_or_else(|reason| Verdict::Failed { reason }),
        Err(failure) => Verdict::Failed {
            reason: failure.to_string(),
        },
    };
    ParentDiff {
        parent: key,
        outcome,
    }
}

/// The children and status that `preview` would change.
///
/// # Errors
/// The API server's refusal of a child, which would fail the reconcile.
async fn decided(
    ctx: &Context,
    guest: &ActiveGuest,
    parent: &DynamicObject,
    preview: Preview,
    now: &Value,
) -> Result<Verdict, String> {
    let Preview { observed, plan } = preview;
    let status = if kinds::is_builtin(&ctx.parent_kind.gvk) {
        Vec::new()
    } else {
        let current = parent.data.get("status").filter(|s| !s.is_null());
        let next = next_status(
            current,
            &Outcome::Reconciled {
                guest_status: plan.status.clone(),
            },
            parent.metadata.generation,
            &status_stamp(&guest.guest),
            now,
        );
        if needs_write(current, &next) {
            changes(current.unwrap_or(&json!({})), &next)
        } else {
            Vec::new()
        }
    };
    if observed.finalizing {
        return Ok(Verdict::Decided {
            children: Vec::new(),
            unchanged: 0,
            status,
            finalizing: true,
        });
    }
    let mut children = Vec::new();
    let mut unchanged = 0;
    // Cluster-scoped children first, as they are applied: a Namespace before what it holds.
    let (cluster_scoped, namespaced): (Vec<&PlannedChild>, Vec<&PlannedChild>) =
        plan.children.iter().partition(|c| !c.kind.namespaced);
    for child in cluster_scoped.into_iter().chain(namespaced) {
        let live = observed
            .child(&child.kind, &child.namespace, &child.name)
            .map(|o| &o.object);
        if live.is_some_and(|live| is_satisfied(&child.object, live)) {
            unchanged += 1;
            continue;
        }
        match child_change(ctx, child, live.map(AsRef::as_ref), &children).await? {
            Some(change) => children.push(change),
            None => unchanged += 1,
        }
    }
    for child in &observed.children {
        let (namespace, name) = object_name(&child.object.metadata);
        if !plan.wants(&child.kind, &namespace, &name) {
            children.push(ChildChange {
                action: Action::Prune,
                kind: child.kind.display_name(),
                namespace,
                name,
                fields: Vec::new(),
                object: None,
            });
        }
    }
    Ok(Verdict::Decided {
        children,
        unchanged,
        status,
        finalizing: false,
    })
}

/// What applying `child` would do to `live` (`None`: it does not exist), by the API server's
/// dry run; `None` when nothing the host's field manager sets would change. `earlier` are the
/// changes planned before it (a Namespace this plan creates cannot hold a dry-run object yet).
///
/// # Errors
/// The API server's refusal.
async fn child_change(
    ctx: &Context,
    child: &PlannedChild,
    live: Option<&DynamicObject>,
    earlier: &[ChildChange],
) -> Result<Option<ChildChange>, String> {
    let change = |action, fields, object| ChildChange {
        action,
        kind: child.kind.display_name(),
        namespace: child.namespace.clone(),
        name: child.name.clone(),
        fields,
        object,
    };
    let answer = match dry_run_apply(ctx, child).await {
        Ok(answer) => comparable(answer),
        Err(kube::Error::Api(status))
            if status.code == 404 && live.is_none() && creates_namespace(earlier, child) =>
        {
            // The server cannot dry-run an object in a namespace that only the same plan
            // creates: shown as planned.
            return Ok(Some(change(
                Action::Create,
                Vec::new(),
                Some(child.object.clone()),
            )));
        }
        Err(error) => {
            return Err(format!(
                "the API server would refuse {}: {}",
                child.to_text(),
                api_error_text(&error)
            ));
        }
    };
    let Some(live) = live else {
        return Ok(Some(change(Action::Create, Vec::new(), Some(answer))));
    };
    let before = comparable(serde_json::to_value(live).expect("objects serialize"));
    let fields = changes(&before, &answer);
    Ok((!fields.is_empty()).then(|| change(Action::Change, fields, None)))
}

/// Whether `earlier` creates the Namespace `child` lives in.
fn creates_namespace(earlier: &[ChildChange], child: &PlannedChild) -> bool {
    earlier.iter().any(|c| {
        c.action == Action::Create && c.kind == "Namespace.v1" && c.name == child.namespace
    })
}

/// Server-side apply of `child` as the host would send it, with `dryRun=All`: validated,
/// defaulted and admitted by the API server, and not persisted.
async fn dry_run_apply(ctx: &Context, child: &PlannedChild) -> Result<Value, kube::Error> {
    let api = child.kind.api(&ctx.client, child.namespace());
    let params = PatchParams::apply(&ctx.settings.field_manager)
        .force()
        .dry_run();
    let answer = api
        .patch(&child.name, &params, &Patch::Apply(&child.object))
        .await?;
    Ok(serde_json::to_value(answer).expect("objects serialize"))
}

/// `object` without what changes on every write or belongs to other writers: the status (the
/// child's own controller's) and the server's bookkeeping.
fn comparable(mut object: Value) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
            "selfLink",
        ] {
            metadata.remove(field);
        }
    }
    object
}
