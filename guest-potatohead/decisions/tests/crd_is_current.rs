//! The committed CRD must be exactly what the spec types generate: edit the types, then run
//! `make crd` to refresh deploy/crd/potatohead.yaml.

use kube::CustomResourceExt;

#[test]
fn committed_crd_matches_the_spec_types() {
    let generated =
        serde_saphyr::to_string(&potatohead_decisions::spec::PotatoHead::crd()).unwrap();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/crd/potatohead.yaml"
    );
    let committed = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    assert!(
        committed == generated,
        "deploy/crd/potatohead.yaml is out of date with guest-potatohead/decisions/src/spec.rs: run `make crd`"
    );
}
