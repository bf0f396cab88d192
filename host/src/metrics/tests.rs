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
        failing: 2,
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
    assert!(
        text.contains("reconciler_parents_failing{guest=\"g\"} 2"),
        "{text}"
    );
}

#[test]
fn readiness_and_the_shared_budgets_come_from_the_host_probe_at_scrape_time() {
    let metrics = Metrics::default();
    let text = metrics.encode();
    assert!(text.contains("reconciler_ready 0"), "no probe yet: {text}");
    metrics.set_host_probe(Box::new(|| HostCounts {
        ready: true,
        guest_memory_budget_bytes: 256 << 20,
        guest_memory_in_use_bytes: 64 << 20,
        reconcile_slots: 32,
        reconcile_slots_in_use: 5,
    }));
    let text = metrics.encode();
    for line in [
        "reconciler_ready 1",
        "reconciler_guest_memory_budget_bytes 268435456",
        "reconciler_guest_memory_in_use_bytes 67108864",
        "reconciler_reconcile_slots 32",
        "reconciler_reconcile_slots_in_use 5",
    ] {
        assert!(text.contains(line), "{line} missing from {text}");
    }
}

#[test]
fn a_failing_parent_watch_is_one_until_it_works_again_and_gone_with_the_guest() {
    let metrics = Arc::new(Metrics::default());
    let g = guest(&metrics, "g");
    g.set_active_guest(a_guest());
    g.set_parent_watch_failing(true);
    assert!(
        metrics
            .encode()
            .contains("reconciler_parent_watch_failing{guest=\"g\"} 1")
    );
    g.set_parent_watch_failing(false);
    assert!(
        metrics
            .encode()
            .contains("reconciler_parent_watch_failing{guest=\"g\"} 0")
    );
    metrics.forget_guest("g");
    assert!(
        !metrics
            .encode()
            .contains("reconciler_parent_watch_failing{")
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
fn the_leader_gauge_says_whether_this_replica_reconciles() {
    let metrics = Arc::new(Metrics::default());
    metrics.set_leader(false);
    assert!(metrics.encode().contains("reconciler_leader 0"));
    metrics.set_leader(true);
    assert!(metrics.encode().contains("reconciler_leader 1"));
}
