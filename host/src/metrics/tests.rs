use std::sync::Arc;

use super::*;

fn a_guest() -> GuestLabels {
    GuestLabels {
        name: "g".into(),
        version: "1".into(),
        digest: "d".into(),
    }
}

fn guest(metrics: &Arc<Metrics>, name: &str) -> GuestMetrics {
    GuestMetrics::new(metrics, name)
}

#[test]
fn counters_show_up_with_bounded_labels_and_the_guest() {
    let metrics = Arc::new(Metrics::default());
    let g = guest(&metrics, "potatohead");
    g.reconcile_finished(ReconcileResult::Success, 0.01);
    g.children(ChildAction::Applied, 13);
    g.guest_failed(GuestFailureKind::Timeout);
    let text = metrics.encode();
    for line in [
        "reconciler_reconciles_total{result=\"success\",guest=\"potatohead\"} 1",
        "reconciler_children_total{action=\"applied\",guest=\"potatohead\"} 13",
        "reconciler_guest_failures_total{kind=\"timeout\",guest=\"potatohead\"} 1",
        "reconciler_reconcile_duration_seconds_count{guest=\"potatohead\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing in:\n{text}");
    }
}

#[test]
fn guest_info_holds_each_guests_active_code_once() {
    let metrics = Arc::new(Metrics::default());
    let code = |digest: &str| GuestLabels {
        digest: digest.into(),
        ..a_guest()
    };
    let first = guest(&metrics, "first");
    first.set_active_guest(code("sha256:aa"));
    first.set_active_guest(code("sha256:bb"));
    guest(&metrics, "second").set_active_guest(code("sha256:cc"));
    let text = metrics.encode();
    assert!(
        text.contains("digest=\"sha256:bb\",guest=\"first\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("digest=\"sha256:cc\",guest=\"second\"} 1"),
        "{text}"
    );
    assert!(!text.contains("digest=\"sha256:aa\""), "{text}");
    metrics.forget_guest("first");
    let text = metrics.encode();
    assert!(!text.contains("guest=\"first\"} 1"), "{text}");
    assert!(text.contains("guest=\"second\"} 1"), "{text}");
}

#[test]
fn ready_needs_a_role_synced_caches_and_a_guest() {
    let metrics = Arc::new(Metrics::default());
    let g = guest(&metrics, "g");
    g.set_active_guest(a_guest());
    g.set_caches_synced(true);
    assert!(!metrics.ready(), "role unknown");
    metrics.set_leadership(Leadership::NotElecting);
    assert!(metrics.ready());
    g.set_caches_synced(false);
    assert!(!metrics.ready(), "caches not synced");
    g.set_caches_synced(true);
    g.set_parent_watch_failing(true);
    assert!(!metrics.ready(), "parent watch failing");
    g.set_parent_watch_failing(false);
    assert!(metrics.ready());
    let no_guest = Metrics::default();
    no_guest.set_leadership(Leadership::NotElecting);
    assert!(!no_guest.ready(), "no guest");
    // A standby loads its guests only when it leads: no guest is its normal state, not a failure.
    no_guest.set_leadership(Leadership::Standby);
    let (ready, report) = no_guest.readiness();
    assert!(ready, "{report}");
    assert_eq!(report, "[+]standing by for the leader Lease\n");
}

#[test]
fn readyz_reports_each_guest_and_is_ready_only_when_all_are() {
    let metrics = Arc::new(Metrics::default());
    metrics.set_leadership(Leadership::NotElecting);
    let healthy = guest(&metrics, "healthy");
    healthy.set_active_guest(a_guest());
    healthy.set_caches_synced(true);
    let broken = guest(&metrics, "broken");
    broken.set_active_guest(a_guest());
    broken.set_waiting(Some("its parent kind is not served".into()));
    let (ready, report) = metrics.readiness();
    assert!(!ready, "{report}");
    assert!(report.contains("[+]guest healthy ok"), "{report}");
    assert!(
        report.contains("[-]guest broken not ready: its parent kind is not served"),
        "{report}"
    );
    metrics.forget_guest("broken");
    let (ready, report) = metrics.readiness();
    assert!(ready, "{report}");
    assert!(!report.contains("broken"), "{report}");
    // Its controller, stopping after the supervisor forgot it, does not bring it back.
    broken.set_caches_synced(false);
    broken.set_parent_watch_failing(false);
    broken.set_parent_probe(None);
    let (ready, report) = metrics.readiness();
    assert!(ready, "{report}");
    assert!(!report.contains("broken"), "{report}");
}

#[test]
fn a_standby_is_ready_without_caches_and_reports_it() {
    let metrics = Arc::new(Metrics::default());
    guest(&metrics, "g").set_active_guest(a_guest());
    metrics.set_leadership(Leadership::Standby);
    assert!(metrics.ready());
    assert!(metrics.encode().contains("reconciler_leader 0"));
    metrics.set_leadership(Leadership::Leader);
    assert!(!metrics.ready(), "a leader needs its caches");
    assert!(metrics.encode().contains("reconciler_leader 1"));
}

#[test]
fn parent_counts_come_from_each_guests_probe_at_scrape_time() {
    let metrics = Arc::new(Metrics::default());
    let g = guest(&metrics, "g");
    g.set_active_guest(a_guest());
    assert!(
        metrics
            .encode()
            .contains("reconciler_queue_depth{guest=\"g\"} 0")
    );
    g.set_parent_probe(Some(Box::new(|| ParentCounts {
        waiting: 7,
        with_state: 3,
    })));
    let text = metrics.encode();
    assert!(
        text.contains("reconciler_queue_depth{guest=\"g\"} 7"),
        "{text}"
    );
    assert!(
        text.contains("reconciler_parent_states{guest=\"g\"} 3"),
        "{text}"
    );
}

#[test]
fn in_flight_counts_per_guest() {
    let metrics = Arc::new(Metrics::default());
    let (a, b) = (guest(&metrics, "a"), guest(&metrics, "b"));
    let running = a.in_flight();
    assert_eq!(a.reconciles_in_flight(), 1);
    assert_eq!(b.reconciles_in_flight(), 0, "another guest's reconcile");
    drop(running);
    assert_eq!(a.reconciles_in_flight(), 0);
}

#[test]
fn durations_declare_their_unit_and_process_metrics_are_standard() {
    let metrics = Arc::new(Metrics::default());
    let g = guest(&metrics, "g");
    g.reconcile_finished(ReconcileResult::Success, 0.01);
    g.guest_called(0.001);
    let text = metrics.encode();
    for line in [
        "# UNIT reconciler_reconcile_duration_seconds seconds",
        "# UNIT reconciler_guest_call_duration_seconds seconds",
        "# TYPE process_cpu_seconds counter",
        "# TYPE process_resident_memory_bytes gauge",
        "# TYPE process_open_fds gauge",
        "# TYPE process_start_time_seconds gauge",
    ] {
        assert!(text.contains(line), "{line} missing in:\n{text}");
    }
    assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
}

#[test]
fn label_values_are_snake_case() {
    for value in [
        ReconcileResult::InvalidSpec.as_str(),
        ReconcileResult::PolicyViolation.as_str(),
        GuestFailureKind::InvalidOutput.as_str(),
        ChildAction::Unchanged.as_str(),
        ReloadResult::Swapped.as_str(),
        RefusalReason::DuplicateParentKind.as_str(),
    ] {
        assert!(
            value.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{value}"
        );
    }
}

// Attack: 2 000 junk files in the folder kept 2 000 refusal series after they were gone.
#[test]
fn a_refused_file_that_goes_takes_its_series_with_it() {
    let metrics = Arc::new(Metrics::default());
    for i in 0..50 {
        metrics.guest_refused(&format!("junk{i}"), RefusalReason::Unusable);
        metrics.guest_refused(&format!("junk{i}"), RefusalReason::Settings);
    }
    assert_eq!(
        metrics
            .encode()
            .matches("reconciler_guest_refusals_total{")
            .count(),
        100
    );
    for i in 0..50 {
        metrics.forget_refusals(&format!("junk{i}"));
    }
    assert!(
        !metrics
            .encode()
            .contains("reconciler_guest_refusals_total{")
    );
}

#[test]
fn a_guest_whose_child_watch_fails_is_not_ready_saying_which_kind() {
    let metrics = Arc::new(Metrics::default());
    metrics.set_leadership(Leadership::NotElecting);
    let g = guest(&metrics, "g");
    g.set_active_guest(a_guest());
    g.set_caches_synced(true);
    let failing = Arc::new(std::sync::Mutex::new(vec!["Widget.x.io/v1".to_string()]));
    let probe = Arc::clone(&failing);
    g.set_child_watch_probe(Some(Box::new(move || probe.lock().unwrap().clone())));
    let (ready, report) = metrics.readiness();
    assert!(!ready, "{report}");
    assert!(
        report.contains("[-]guest g not ready: the watch of child kind Widget.x.io/v1 is failing"),
        "{report}"
    );
    failing.lock().unwrap().clear();
    assert!(metrics.ready());
}
