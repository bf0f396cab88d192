//! Leader election over a `coordination.k8s.io/v1` Lease, so several replicas can run and only
//! one reconciles.
//!
//! The protocol is client-go's (`tools/leaderelection`), which every Kubernetes controller
//! speaks, so its Leases read the same in `kubectl get lease`:
//! - a candidate reads the Lease; it takes it when nobody holds it, or when the record has not
//!   changed for the holder's `leaseDurationSeconds` *as timed by the candidate's own clock*
//!   (so clock skew between nodes does not matter); every write carries the `resourceVersion`
//!   it read, so of two candidates racing for the same record only one wins;
//! - the leader renews every retry period; when it has not renewed for the renew deadline it
//!   steps down and stops writing at once. The renew deadline is shorter than the lease duration,
//!   and a renewal is timed from *before* its request was sent, so the old leader has stopped
//!   before any candidate can have seen its last record expire;
//! - on a graceful stop the leader releases the Lease (empty holder, 1 s duration) after its last
//!   write, so a standby takes over at once instead of after the lease duration.
//!
//! kube-rs has no leader election; `kube-lease-manager` (which fits kube 5) keeps reporting
//! leadership while it cannot reach the API server, which breaks "a leader that loses its lease
//! stops writing", hence this module.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tracing::{debug, info, warn};

/// How long leadership lasts and how often it is renewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long a candidate waits after the last change it saw before taking the Lease.
    pub lease_duration: Duration,
    /// How long a leader keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// Pause between attempts to take or renew.
    pub retry_period: Duration,
}

impl Default for LeaseTimings {
    /// client-go's defaults, used by kube-controller-manager and most operators.
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Which Lease, who is asking, and how fast.
#[derive(Clone, Debug)]
pub struct ElectionSettings {
    pub lease_name: String,
    pub namespace: String,
    /// Unique per process: a restarted pod must not believe it still holds its predecessor's lease.
    pub identity: String,
    pub timings: LeaseTimings,
}

/// A request about the Lease failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("reading Lease {namespace}/{name}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing Lease {namespace}/{name}")]
    Write {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// How [`Elector::hold`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Held {
    /// Asked to stop: the Lease was released (or releasing failed, logged).
    Released,
    /// Leadership is gone: not renewed within the renew deadline, or the Lease names another
    /// holder. Writing must stop now.
    Lost(String),
}

/// What a candidate does with the Lease it read.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// There is no Lease: create it, holding it.
    Create,
    /// Nobody holds it, or its holder stopped renewing: take it over.
    Take,
    /// This candidate holds it: renew.
    Renew,
    /// Another candidate holds it and renewed recently: wait.
    Wait { holder: String },
}

/// Decides from the Lease as read, and the instant this candidate first saw that exact record.
/// Pure, so the rules are tested without a cluster.
fn decide(
    spec: Option<&LeaseSpec>,
    identity: &str,
    unchanged_since: Instant,
    now: Instant,
) -> Decision {
    let Some(spec) = spec else {
        return Decision::Create;
    };
    let holder = spec
        .holder_identity
        .as_deref()
        .filter(|holder| !holder.is_empty());
    match holder {
        Some(holder) if holder == identity => Decision::Renew,
        Some(holder) => {
            // The holder's own promise, not this candidate's setting: a replica started with a
            // shorter duration must not cut a longer-leased leader short.
            let duration =
                Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(1) as u64);
            if now < unchanged_since + duration {
                Decision::Wait {
                    holder: holder.to_owned(),
                }
            } else {
                Decision::Take
            }
        }
        None => Decision::Take,
    }
}

/// The record as last read: its `resourceVersion` changes with every write (renewals too), so
/// it tells whether the holder is alive.
struct Observed {
    lease: Lease,
    since: Instant,
}

/// One candidate for the Lease.
pub struct Elector {
    api: Api<Lease>,
    settings: ElectionSettings,
    observed: Option<Observed>,
}

impl Elector {
    pub fn new(client: kube::Client, settings: ElectionSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.settings.identity
    }

    /// Waits until this candidate holds the Lease, retrying every retry period (API errors are
    /// logged and retried); `standing_by` is called whenever another replica is seen leading.
    /// Returns the instant the winning request was sent, from which the renew deadline runs.
    pub async fn campaign(&mut self, standing_by: impl Fn()) -> Instant {
        let mut waiting_for: Option<String> = None;
        loop {
            let sent = Instant::now();
            match self.try_acquire_or_renew().await {
                Ok(Ok(())) => {
                    info!(lease = %self.lease_ref(), identity = %self.settings.identity, "became leader");
                    return sent;
                }
                Ok(Err(holder)) => {
                    standing_by();
                    if waiting_for.as_deref() != Some(holder.as_str()) {
                        info!(lease = %self.lease_ref(), %holder, "standing by: another replica leads");
                        waiting_for = Some(holder);
                    }
                }
                Err(error) => {
                    warn!(lease = %self.lease_ref(), error = %crate::error_text::error_chain(&error), "leader election: cannot reach the Lease; retrying");
                }
            }
            tokio::time::sleep(self.settings.timings.retry_period).await;
        }
    }

    /// Keeps renewing the Lease until `until` resolves (then releases it) or leadership is lost.
    /// `renewed` is the instant the last successful request was sent ([`Self::campaign`]'s
    /// result).
    pub async fn hold(&mut self, mut renewed: Instant, until: impl Future<Output = ()>) -> Held {
        let timings = self.settings.timings;
        let mut until = std::pin::pin!(until);
        loop {
            tokio::select! {
                () = &mut until => {
                    self.release().await;
                    return Held::Released;
                }
                () = tokio::time::sleep(timings.retry_period) => {}
            }
            let Some(left) = timings.renew_deadline.checked_sub(renewed.elapsed()) else {
                return Held::Lost(format!(
                    "not renewed within the renew deadline ({:?})",
                    timings.renew_deadline
                ));
            };
            let sent = Instant::now();
            // A hung request must not keep a leader leading past its deadline.
            match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                Ok(Ok(Ok(()))) => {
                    debug!(lease = %self.lease_ref(), "renewed");
                    renewed = sent;
                }
                Ok(Ok(Err(holder))) => {
                    return Held::Lost(format!("the Lease is now held by {holder}"));
                }
                Ok(Err(error)) => {
                    warn!(lease = %self.lease_ref(), error = %crate::error_text::error_chain(&error), "renewing the Lease failed; retrying until the renew deadline");
                }
                Err(_elapsed) => {
                    return Held::Lost(format!(
                        "not renewed within the renew deadline ({:?})",
                        timings.renew_deadline
                    ));
                }
            }
        }
    }

    /// One round of the protocol: `Ok(Ok(()))` this candidate holds the Lease now,
    /// `Ok(Err(holder))` another one does.
    async fn try_acquire_or_renew(&mut self) -> Result<Result<(), String>, LeaderError> {
        let now = Instant::now();
        let current = self
            .api
            .get_opt(&self.settings.lease_name)
            .await
            .map_err(|source| self.read_error(source))?;
        let unchanged_since = match (&self.observed, &current) {
            (Some(observed), Some(lease))
                if observed.lease.metadata.resource_version == lease.metadata.resource_version =>
            {
                observed.since
            }
            _ => now,
        };
        if let Some(lease) = &current {
            self.observed = Some(Observed {
                lease: lease.clone(),
                since: unchanged_since,
            });
        }
        let decision = decide(
            current.as_ref().and_then(|lease| lease.spec.as_ref()),
            &self.settings.identity,
            unchanged_since,
            now,
        );
        let stamp = MicroTime(Timestamp::now());
        let written = match decision {
            Decision::Wait { holder } => return Ok(Err(holder)),
            Decision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.settings.lease_name.clone()),
                        namespace: Some(self.settings.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.record(stamp.clone(), stamp, 0)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Decision::Take | Decision::Renew => {
                let mut lease = current.expect("a decision to take or renew has a Lease");
                let old = lease.spec.take().unwrap_or_default();
                lease.spec = Some(self.next_record(old, decision, stamp));
                // Carries the resourceVersion that was read: a conflict means another
                // candidate wrote in between, and this round is lost.
                self.api
                    .replace(&self.settings.lease_name, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(lease) => {
                self.observed = Some(Observed {
                    lease,
                    since: Instant::now(),
                });
                Ok(Ok(()))
            }
            Err(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists() => {
                debug!(lease = %self.lease_ref(), "lost a race for the Lease");
                Ok(Err("another candidate (won a concurrent write)".to_owned()))
            }
            Err(source) => Err(LeaderError::Write {
                namespace: self.settings.namespace.clone(),
                name: self.settings.lease_name.clone(),
                source,
            }),
        }
    }

    /// The record this candidate writes over `old` when it renews (same acquire time) or takes
    /// (one more transition).
    fn next_record(&self, old: LeaseSpec, decision: Decision, stamp: MicroTime) -> LeaseSpec {
        let transitions = old.lease_transitions.unwrap_or(0);
        if decision == Decision::Renew {
            self.record(
                old.acquire_time.unwrap_or(stamp.clone()),
                stamp,
                transitions,
            )
        } else {
            self.record(stamp.clone(), stamp, transitions + 1)
        }
    }

    /// Hands the Lease over: empty holder and a 1 s duration, so a standby takes it at once.
    /// Only written when this candidate still holds the record it last wrote.
    async fn release(&mut self) {
        let Some(observed) = self.observed.take() else {
            return;
        };
        let mut lease = observed.lease;
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return;
        }
        let stamp = MicroTime(Timestamp::now());
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(stamp);
        match self
            .api
            .replace(&self.settings.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!(lease = %self.lease_ref(), "released the Lease"),
            Err(error) => {
                warn!(lease = %self.lease_ref(), error = %crate::error_text::error_chain(&error), "could not release the Lease; a standby takes over when it expires")
            }
        }
    }

    fn record(&self, acquired: MicroTime, renewed: MicroTime, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.settings.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.settings.timings.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(acquired),
            renew_time: Some(renewed),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    fn lease_ref(&self) -> String {
        format!("{}/{}", self.settings.namespace, self.settings.lease_name)
    }

    fn read_error(&self, source: kube::Error) -> LeaderError {
        LeaderError::Read {
            namespace: self.settings.namespace.clone(),
            name: self.settings.lease_name.clone(),
            source,
        }
    }
}

/// A process-unique identity: `<name>_<random>`, where name is the pod's (or else the host's)
/// name.
pub fn identity(pod_name: Option<&str>, host_name: Option<&str>) -> String {
    use std::hash::{BuildHasher, Hasher};
    let name = pod_name
        .or(host_name.filter(|h| !h.is_empty()))
        .unwrap_or("reconciler-host");
    // RandomState is seeded from the OS's random source: enough to tell two processes apart.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{name}_{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(seconds),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_missing_lease_is_created() {
        let now = Instant::now();
        assert_eq!(decide(None, "me", now, now), Decision::Create);
    }

    #[test]
    fn the_holder_renews() {
        let now = Instant::now();
        assert_eq!(
            decide(Some(&held_by("me", 15)), "me", now, now),
            Decision::Renew
        );
    }

    #[test]
    fn a_live_holder_is_waited_for_until_its_record_is_stale_by_the_local_clock() {
        let seen = Instant::now();
        let lease = held_by("other", 15);
        assert_eq!(
            decide(Some(&lease), "me", seen, seen + Duration::from_secs(14)),
            Decision::Wait {
                holder: "other".into()
            }
        );
        assert_eq!(
            decide(Some(&lease), "me", seen, seen + Duration::from_secs(15)),
            Decision::Take
        );
    }

    #[test]
    fn the_holders_duration_counts_not_the_candidates() {
        let seen = Instant::now();
        assert_eq!(
            decide(
                Some(&held_by("other", 60)),
                "me",
                seen,
                seen + Duration::from_secs(30)
            ),
            Decision::Wait {
                holder: "other".into()
            }
        );
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let now = Instant::now();
        let released = LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            ..LeaseSpec::default()
        };
        assert_eq!(decide(Some(&released), "me", now, now), Decision::Take);
        let empty = LeaseSpec {
            holder_identity: Some(String::new()),
            ..LeaseSpec::default()
        };
        assert_eq!(decide(Some(&empty), "me", now, now), Decision::Take);
    }

    #[test]
    fn identities_differ_between_processes_with_the_same_name() {
        assert_ne!(identity(Some("pod"), None), identity(Some("pod"), None));
        assert!(identity(Some("pod"), Some("node")).starts_with("pod_"));
        assert!(identity(None, Some("node")).starts_with("node_"));
        assert!(identity(None, Some("")).starts_with("reconciler-host_"));
    }
}
