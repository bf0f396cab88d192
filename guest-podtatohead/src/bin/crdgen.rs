//! Prints the PodTatoHead CustomResourceDefinition derived from the spec types, as YAML.
//! `make crd` writes it to deploy/crd/podtatohead.yaml; a test fails when that file drifts.

use kube::CustomResourceExt;

fn main() {
    let crd = guest_podtatohead::spec::PodTatoHead::crd();
    print!(
        "{}",
        serde_saphyr::to_string(&crd).expect("CRD serializes to YAML")
    );
}
