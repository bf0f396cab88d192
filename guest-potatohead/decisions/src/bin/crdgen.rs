//! Prints the PotatoHead CustomResourceDefinition derived from the spec types, as YAML.
//! `make crd` writes it to deploy/crd/potatohead.yaml; a test fails when that file drifts.

use kube::CustomResourceExt;

fn main() {
    let crd = potatohead_decisions::spec::PotatoHead::crd();
    print!(
        "{}",
        serde_saphyr::to_string(&crd).expect("CRD serializes to YAML")
    );
}
