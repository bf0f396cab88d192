//! `reconciler-host render`: a guest author's inner loop. Runs a guest offline for one parent
//! exactly as the controller would: the same call with the same observed state, the same planning
//! step (`reconcile::plan`: output policy, host-owned fields on each child) and the same status
//! computation. What it cannot do without a cluster: resolve kinds (a declared child kind is taken
//! as namespaced unless it is one of Kubernetes' own cluster-scoped kinds, with kube's guessed
//! plural; the parent is namespaced unless `--cluster-scoped` says otherwise) and the take-over
//! check against existing objects. Exit code 0: rendered; 1: the guest said no; 2: unusable input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::cli::{OutputFormat, RenderArgs, default_compile_cache_dir};
use crate::cluster::{ParentRef, ResolvedKind, display_gvk};
use crate::reconcile::active_guest::status_stamp;
use crate::reconcile::placement::{Placement, ProtectedNamespaces};
use crate::reconcile::plan::plan;
use crate::reconcile::policy::PolicyViolation;
use crate::reconcile::status::{self, Outcome, next_status};
use crate::sandbox::{
    CompileCacheConfig, GuestEngine, GuestError, GuestFile, GuestLimits, LoadedGuest, NO_CONFIG,
    Observation,
};

/// `render`: prints what the controller would apply; exit 0 rendered, 1 the guest said no, 2
/// unusable input.
pub fn run(args: &RenderArgs) -> ExitCode {
    // A panic is a bug in the host, never a verdict on the input: reported, exit 2, not 101.
    let rendered = std::panic::catch_unwind(|| render_files(args)).unwrap_or_else(|panic| {
        Err(anyhow::anyhow!(
            "the host failed while rendering (a bug in reconciler-host): {}",
            crate::reconcile::panic_message(panic.as_ref())
        ))
    });
    match rendered {
        Ok(rendered) => {
            print!(
                "{}",
                match args.output {
                    OutputFormat::Yaml => rendered.to_yaml(),
                    OutputFormat::Json => rendered.to_json() + "\n",
                }
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            let verdict = error
                .downcast_ref::<RenderError>()
                .is_some_and(RenderError::is_guest_verdict);
            ExitCode::from(if verdict { 1 } else { 2 })
        }
    }
}

/// `render`'s work: read the files, load the guest, render.
fn render_files(args: &RenderArgs) -> anyhow::Result<Rendered> {
    let parent = read_parent(&args.parent)?;
    let children = read_children(&args.children)?;
    let engine = GuestEngine::new(
        default_compile_cache_dir()
            .map(CompileCacheConfig::new)
            .as_ref(),
    )?;
    let file = GuestFile::read(&args.guest)?;
    let config = args.guest_config.as_deref().unwrap_or(NO_CONFIG);
    let guest = engine.load_configured(&file, GuestLimits::default(), config)?;
    Ok(render(
        &guest,
        parent,
        args.cluster_scoped,
        children,
        &args.field_manager,
        &status::now(),
    )?)
}

/// Namespace given to a parent file that names none, as `kubectl apply` would.
const DEFAULT_NAMESPACE: &str = "default";
/// UID given to a parent file that has none (objects from the API server always have one).
const PLACEHOLDER_UID: &str = "00000000-0000-0000-0000-000000000000";

/// Why nothing was rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML or JSON")]
    Parse {
        path: PathBuf,
        // Boxed: saphyr's error carries the snippet and location (136 bytes and more).
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
    #[error("the parent is a {found}, but the guest reconciles {expected}")]
    WrongParentKind { found: String, expected: String },
    /// The guest judged the spec invalid (its verdict, not a failure).
    #[error("the guest rejected the spec: {0}")]
    InvalidSpec(String),
    #[error(transparent)]
    Guest(GuestError),
    #[error("the guest's output breaks the host's rules: {0}")]
    Policy(#[from] PolicyViolation),
}

impl RenderError {
    /// True when the guest ran and said no (invalid spec, failure, rule broken); false when the
    /// input could not be used.
    pub fn is_guest_verdict(&self) -> bool {
        matches!(
            self,
            RenderError::InvalidSpec(_) | RenderError::Guest(_) | RenderError::Policy(_)
        )
    }
}

/// What the controller would apply and write.
#[derive(Debug)]
pub struct Rendered {
    /// The children, as applied (host-owned fields included).
    pub children: Vec<Value>,
    /// The parent's identity and the status the host would write.
    pub parent: Value,
}

impl Rendered {
    /// One YAML stream: each child, then the parent with its status.
    pub fn to_yaml(&self) -> String {
        let mut text = String::new();
        for object in self.children.iter().chain([&self.parent]) {
            text.push_str("---\n");
            text.push_str(&serde_saphyr::to_string(object).expect("JSON values serialize to YAML"));
        }
        text
    }

    /// A `v1` `List` of the children and the parent, as `kubectl get -o json` prints lists.
    pub fn to_json(&self) -> String {
        let items: Vec<&Value> = self.children.iter().chain([&self.parent]).collect();
        serde_json::to_string_pretty(&json!({ "apiVersion": "v1", "kind": "List", "items": items }))
            .expect("JSON values serialize")
    }
}

/// Reads one parent object from a YAML or JSON file.
///
/// # Errors
/// [`RenderError::Read`], [`RenderError::Parse`], or [`RenderError::Input`] when the file does
/// not hold exactly one object.
pub fn read_parent(path: &Path) -> Result<Value, RenderError> {
    let mut objects = read_objects(path)?;
    if objects.len() != 1 {
        return Err(RenderError::Input {
            path: path.into(),
            reason: format!(
                "expected exactly one parent object, found {}",
                objects.len()
            ),
        });
    }
    Ok(objects.remove(0))
}

/// Reads observed children: each path is a YAML/JSON file (several documents, or a `List`) or
/// a folder of such files (`.yaml`, `.yml`, `.json`, in name order).
///
/// # Errors
/// The first file that cannot be read or parsed.
pub fn read_children(paths: &[PathBuf]) -> Result<Vec<Value>, RenderError> {
    let mut children = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|source| RenderError::Read {
                path: path.clone(),
                source,
            })?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
                })
                .collect();
            files.sort();
            for file in files {
                children.extend(read_objects(&file)?);
            }
        } else {
            children.extend(read_objects(path)?);
        }
    }
    Ok(children)
}

/// Every object in a YAML/JSON file; the items of a `List` count as objects.
fn read_objects(path: &Path) -> Result<Vec<Value>, RenderError> {
    let text = std::fs::read_to_string(path).map_err(|source| RenderError::Read {
        path: path.into(),
        source,
    })?;
    let documents: Vec<Value> =
        serde_saphyr::from_str_multiple(&text).map_err(|source| RenderError::Parse {
            path: path.into(),
            source: Box::new(source),
        })?;
    let mut objects = Vec::new();
    for value in documents {
        match value {
            Value::Null => {}
            Value::Object(_) if value["kind"] == "List" => {
                objects.extend(value["items"].as_array().cloned().unwrap_or_default());
            }
            Value::Object(_) => objects.push(value),
            other => {
                return Err(RenderError::Input {
                    path: path.into(),
                    reason: format!("a document is not an object: {other}"),
                });
            }
        }
    }
    Ok(objects)
}

/// Runs `guest` for `parent` (of a cluster-scoped kind if `cluster_scoped`) with `observed`
/// children and returns what the controller would apply and write; `field_manager` is the host's (`--field-manager`), `now` the time stamped on
/// changed conditions.
///
/// # Errors
/// A [`RenderError`]: the parent is of another kind, or the guest rejected the spec, failed, or
/// broke the output policy.
pub fn render(
    guest: &LoadedGuest,
    mut parent: Value,
    cluster_scoped: bool,
    observed: Vec<Value>,
    field_manager: &str,
    now: &Value,
) -> Result<Rendered, RenderError> {
    let (owner, namespace, generation) =
        as_from_the_api_server(guest, &mut parent, cluster_scoped)?;
    let observation = Observation::new(
        parent.to_string(),
        observed.iter().map(Value::to_string).collect(),
        !parent["metadata"]["deletionTimestamp"].is_null(),
    );
    let decision = guest
        .reconcile(
            &observation,
            &match &namespace {
                Some(namespace) => format!("{namespace}/{}", owner.name),
                None => owner.name.clone(),
            },
        )
        .map_err(|error| match error {
            GuestError::InvalidSpec(reason) => RenderError::InvalidSpec(reason),
            other => RenderError::Guest(other),
        })?;
    // Offline, the host's own namespace is unknown: Kubernetes' own are protected.
    let protected = ProtectedNamespaces::default();
    let planned = plan(
        decision,
        &owner,
        Placement::of(namespace.as_deref(), &protected),
        &guessed_kinds(guest),
        field_manager,
    )?;
    let status = next_status(
        parent.get("status"),
        &Outcome::Reconciled {
            guest_status: planned.status,
        },
        generation,
        &status_stamp(guest),
        now,
    );
    Ok(Rendered {
        children: planned.children.into_iter().map(|c| c.object).collect(),
        parent: json!({
            "apiVersion": owner.api_version,
            "kind": owner.kind,
            "metadata": { "name": owner.name, "namespace": namespace },
            "status": status,
        }),
    })
}

/// The guest's child kinds as the controller would resolve them, without a cluster: namespaced
/// unless Kubernetes serves them cluster-scoped, with kube's guessed plural.
fn guessed_kinds(guest: &LoadedGuest) -> Vec<Arc<ResolvedKind>> {
    guest
        .manifest()
        .children
        .iter()
        .map(|gvk| {
            Arc::new(ResolvedKind {
                gvk: gvk.clone(),
                resource: ApiResource::from_gvk(gvk),
                namespaced: !crate::cluster::kinds::is_builtin_cluster_scoped(gvk),
            })
        })
        .collect()
}

/// Checks the parent's kind and fills in what every parent from the API server has (namespace,
/// UID, generation); returns the parent as its children's owner, its namespace and generation.
fn as_from_the_api_server(
    guest: &LoadedGuest,
    parent: &mut Value,
    cluster_scoped: bool,
) -> Result<(ParentRef, Option<String>, Option<i64>), RenderError> {
    let expected = &guest.manifest().parent;
    let text = |value: &Value| value.as_str().unwrap_or_default().to_string();
    let api_version = text(&parent["apiVersion"]);
    let kind = text(&parent["kind"]);
    let found = match api_version.split_once('/') {
        Some((group, version)) => GroupVersionKind::gvk(group, version, &kind),
        None => GroupVersionKind::gvk("", &api_version, &kind),
    };
    if found != *expected {
        return Err(RenderError::WrongParentKind {
            found: display_gvk(&found),
            expected: display_gvk(expected),
        });
    }
    let metadata = &mut parent["metadata"];
    if cluster_scoped {
        if let Some(map) = metadata.as_object_mut() {
            map.remove("namespace");
        }
    } else if metadata["namespace"].is_null() {
        metadata["namespace"] = json!(DEFAULT_NAMESPACE);
    }
    for (field, default) in [("uid", json!(PLACEHOLDER_UID)), ("generation", json!(1))] {
        if metadata[field].is_null() {
            metadata[field] = default;
        }
    }
    let owner = ParentRef {
        api_version,
        kind,
        name: text(&metadata["name"]),
        uid: text(&metadata["uid"]),
    };
    Ok((
        owner,
        metadata["namespace"].as_str().map(str::to_owned),
        metadata["generation"].as_i64(),
    ))
}
