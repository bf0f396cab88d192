//! Harness for the end-to-end tests: a real kube-apiserver + etcd (and optionally
//! kube-controller-manager) on free loopback ports (the `local-control-plane` crate), the real
//! `reconciler-host` binary, and the real guest `.wasm`.

pub mod api_writes;
pub mod cluster;
pub mod deploy;
pub mod folder;
pub mod host;
pub mod operator;
pub mod paths;
pub mod planes;
pub mod proc_stats;
pub mod prometheus;
pub mod rollout;
pub mod scenario;

pub use cluster::{
    TestNamespace, by_name, create_sample_potatohead, events_about, eventually, image_of,
    podtatohead_api, potatohead_api, ready_condition, ready_reason, sample_podtatohead,
    sample_potatohead,
};
pub use host::{CHILDREN_APPLIED, CHILDREN_PRUNED, HostProcess, metric_value};
pub use local_control_plane::{ControlPlane, Options};
pub use planes::{DedicatedPlane, shared_plane};
pub use scenario::{CONVERGE, Scenario, reconciled_by};
