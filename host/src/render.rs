//! `reconciler-host render`: a guest author's inner loop. Runs a guest offline for one parent
//! exactly as the controller would: the same call with the same observed state, the same output
//! policy, the same host-owned fields on each child (owner reference, managed-by label, digest
//! annotation) and the same status computation. What it cannot do without a cluster: resolve
//! kinds (every declared child kind is taken as namespaced, with kube's guessed plural) and the
//! take-over check against existing objects.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::active::status_stamp;
use crate::apply::{ParentRef, prepare};
use crate::bindings::Observed;
use crate::guest::{GuestError, LoadedGuest};
use crate::kinds::{ResolvedKind, display_gvk};
use crate::policy::{self, PolicyViolation};
use crate::status::{Outcome, next_status};

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

/// Runs `guest` for `parent` with `observed` children and returns what the controller would
/// apply and write; `field_manager` is the host's (`--field-manager`), `now` the time stamped on
/// changed conditions.
///
/// # Errors
/// A [`RenderError`]: the parent is of another kind, or the guest rejected the spec, failed, or
/// broke the output policy.
pub fn render(
    guest: &LoadedGuest,
    mut parent: Value,
    observed: Vec<Value>,
    field_manager: &str,
    now: &Value,
) -> Result<Rendered, RenderError> {
    let manifest = guest.manifest();
    let expected = &manifest.parent;
    let api_version = parent["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kind = parent["kind"].as_str().unwrap_or_default().to_string();
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
    // What every parent from the API server has.
    let metadata = &mut parent["metadata"];
    for (field, default) in [
        ("namespace", json!(DEFAULT_NAMESPACE)),
        ("uid", json!(PLACEHOLDER_UID)),
        ("generation", json!(1)),
    ] {
        if metadata[field].is_null() {
            metadata[field] = default;
        }
    }
    let namespace = parent["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = parent["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let uid = parent["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let generation = parent["metadata"]["generation"].as_i64();

    let call = Observed {
        parent: parent.to_string(),
        children: observed.iter().map(Value::to_string).collect(),
        finalizing: !parent["metadata"]["deletionTimestamp"].is_null(),
    };
    let desired = guest
        .reconcile(&call, &format!("{namespace}/{name}"))
        .map_err(|error| match error {
            GuestError::InvalidSpec(reason) => RenderError::InvalidSpec(reason),
            other => RenderError::Guest(other),
        })?;

    let kinds: Vec<Arc<ResolvedKind>> = manifest
        .children
        .iter()
        .map(|gvk| {
            Arc::new(ResolvedKind {
                gvk: gvk.clone(),
                resource: ApiResource::from_gvk(gvk),
                namespaced: true,
            })
        })
        .collect();
    let children = policy::check(&desired.children, &namespace, &kinds)?;
    let guest_status = desired
        .status
        .as_deref()
        .map(policy::check_status)
        .transpose()?;

    let owner = ParentRef {
        api_version,
        kind: kind.clone(),
        name: name.clone(),
        uid,
    };
    let children = children
        .into_iter()
        .map(|child| {
            let mut object = child.object;
            prepare(&mut object, &owner, field_manager);
            object
        })
        .collect();
    let status = next_status(
        parent.get("status"),
        &Outcome::Reconciled { guest_status },
        generation,
        &status_stamp(guest),
        now,
    );
    Ok(Rendered {
        children,
        parent: json!({
            "apiVersion": owner.api_version,
            "kind": kind,
            "metadata": { "name": name, "namespace": namespace },
            "status": status,
        }),
    })
}
