use std::sync::Arc;

use super::*;

#[test]
fn ready_needs_a_role_synced_caches_and_a_guest() {
    let readiness = Arc::new(Readiness::default());
    let g = readiness.guest("g");
    g.set_loaded("0.2.0");
    g.set_caches_synced(true);
    assert!(!readiness.ready(), "role unknown");
    readiness.set_leadership(Leadership::NotElecting);
    assert!(readiness.ready());
    g.set_caches_synced(false);
    assert!(!readiness.ready(), "caches not synced");
    g.set_caches_synced(true);
    g.set_parent_watch_failing(true);
    assert!(!readiness.ready(), "parent watch failing");
    g.set_parent_watch_failing(false);
    assert!(readiness.ready());
    let no_guest = Readiness::default();
    no_guest.set_leadership(Leadership::NotElecting);
    assert!(!no_guest.ready(), "no guest");
    // A standby loads its guests only when it leads: no guest is its normal state, not a failure.
    no_guest.set_leadership(Leadership::Standby);
    let (ready, report) = no_guest.report();
    assert!(ready, "{report}");
    assert_eq!(report, "[+]standing by for the leader Lease\n");
}

#[test]
fn readyz_reports_each_guest_and_is_ready_only_when_all_are() {
    let readiness = Arc::new(Readiness::default());
    readiness.set_leadership(Leadership::NotElecting);
    let healthy = readiness.guest("healthy");
    healthy.set_loaded("0.2.0");
    healthy.set_caches_synced(true);
    let broken = readiness.guest("broken");
    broken.set_loaded("0.2.0");
    broken.set_waiting(Some("its parent kind is not served".into()));
    let (ready, report) = readiness.report();
    assert!(!ready, "{report}");
    assert!(
        report.contains("[+]guest healthy ok (contract 0.2.0)"),
        "{report}"
    );
    assert!(
        report.contains("[-]guest broken not ready: its parent kind is not served"),
        "{report}"
    );
    readiness.forget("broken");
    let (ready, report) = readiness.report();
    assert!(ready, "{report}");
    assert!(!report.contains("broken"), "{report}");
    // Its controller, stopping after the supervisor forgot it, does not bring it back.
    broken.set_caches_synced(false);
    broken.set_parent_watch_failing(false);
    broken.set_child_watch_probe(None);
    let (ready, report) = readiness.report();
    assert!(ready, "{report}");
    assert!(!report.contains("broken"), "{report}");
}

#[test]
fn a_standby_is_ready_without_caches_and_reports_it() {
    let readiness = Arc::new(Readiness::default());
    readiness.guest("g").set_loaded("0.2.0");
    readiness.set_leadership(Leadership::Standby);
    assert!(readiness.ready());
    assert!(!Leadership::Standby.reconciles());
    readiness.set_leadership(Leadership::Leader);
    assert!(!readiness.ready(), "a leader needs its caches");
    assert!(Leadership::Leader.reconciles());
}

#[test]
fn a_guest_whose_child_watch_fails_is_not_ready_saying_which_kind() {
    let readiness = Arc::new(Readiness::default());
    readiness.set_leadership(Leadership::NotElecting);
    let g = readiness.guest("g");
    g.set_loaded("0.2.0");
    g.set_caches_synced(true);
    let failing = Arc::new(std::sync::Mutex::new(vec!["Widget.x.io/v1".to_string()]));
    let probe = Arc::clone(&failing);
    g.set_child_watch_probe(Some(Box::new(move || probe.lock().unwrap().clone())));
    let (ready, report) = readiness.report();
    assert!(!ready, "{report}");
    assert!(
        report.contains("[-]guest g not ready: the watch of child kind Widget.x.io/v1 is failing"),
        "{report}"
    );
    failing.lock().unwrap().clear();
    assert!(readiness.ready());
}
