//! The flags of `run` (each with an environment variable), validated into the settings the rest
//! of the host uses. Nothing else in the host reads the environment.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::guest_rules::{GuestRuleArgs, RuleError};
use super::rollback_args::{RollbackArgs, RollbackError};
use crate::config::{GuestSource, RunSettings};
use crate::leader::{ElectionSettings, LeaseTimings};
use crate::reconcile::placement::ProtectedNamespaces;
use crate::sandbox::CompileCacheConfig;

/// Flags of `reconciler-host run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The guest component (.wasm) that decides what each parent's children are.
    #[arg(
        long,
        env = "RECONCILER_GUEST",
        required_unless_present = "guests",
        conflicts_with = "guests"
    )]
    pub guest: Option<PathBuf>,
    /// A folder of guests (what a ConfigMap with one key per guest mounts): every *.wasm in it
    /// reconciles the parent kind it declares, with its settings from NAME.yaml beside
    /// NAME.wasm; files that appear, change or go while the host runs start, swap or stop their
    /// reconciler.
    #[arg(long, env = "RECONCILER_GUESTS")]
    pub guests: Option<PathBuf>,
    /// The guest's configuration, JSON text (contract 0.2 guests), with one guest (--guest);
    /// each guest of a folder takes its own from `config` in NAME.yaml.
    #[arg(
        long,
        env = "RECONCILER_GUEST_CONFIG",
        conflicts_with = "guests",
        value_parser = super::guest_rules::parse_guest_config
    )]
    pub guest_config: Option<String>,
    /// Only watch and reconcile this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Let the children of cluster-scoped parents be written to this protected namespace
    /// (kube-system, kube-public, kube-node-lease, or the host's own: POD_NAMESPACE); repeat or
    /// separate with commas. By default none of them is.
    #[arg(
        long = "allow-protected-namespace",
        env = "RECONCILER_ALLOW_PROTECTED_NAMESPACES",
        value_delimiter = ','
    )]
    pub allow_protected_namespaces: Vec<String>,
    /// Field manager for server-side apply; also the value of the children's
    /// app.kubernetes.io/managed-by label, which the host's watches select on.
    #[arg(
        long,
        env = "RECONCILER_FIELD_MANAGER",
        default_value = "wasm-reconciler"
    )]
    pub field_manager: String,
    /// Most memory all guest calls running at once may use together, in MiB: each call reserves
    /// --guest-memory-mib of it before it starts and waits while the budget is taken. The
    /// default fits the shipped pod's 512Mi limit with room for the host's caches.
    #[arg(
        long,
        env = "RECONCILER_GUEST_MEMORY_BUDGET_MIB",
        default_value_t = 256
    )]
    pub guest_memory_budget_mib: usize,
    /// How often every parent is reconciled even when nothing changed (e.g. 10m, 1h).
    #[arg(long, env = "RECONCILER_RESYNC", default_value = "10m", value_parser = humantime::parse_duration)]
    pub resync: Duration,
    /// Most parents reconciled at the same time, by all guests together (shared fairly between
    /// them).
    #[arg(long, env = "RECONCILER_CONCURRENCY", default_value_t = 32)]
    pub concurrency: u16,
    /// Most parents of a guest reconciled at the same time to bring them onto a newly swapped
    /// guest (at most --concurrency); the next goes when one finishes, so the sweep goes at the
    /// API server's pace and leaves the rest of --concurrency to changes.
    #[arg(long, env = "RECONCILER_SWAP_CONCURRENCY", default_value_t = 2)]
    pub swap_concurrency: u16,
    /// How often the guest file is checked for changes even without a file-system event
    /// (e.g. 10s); file events and SIGHUP trigger a check at once.
    #[arg(long, env = "RECONCILER_GUEST_POLL_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub guest_poll_interval: Duration,
    /// Folder for compiled guests, so restarts and swaps back to a known guest skip compiling
    /// [default: $XDG_CACHE_HOME/wasm-reconciler/compiled-guests, else
    /// ~/.cache/wasm-reconciler/compiled-guests].
    #[arg(long, env = "RECONCILER_COMPILE_CACHE_DIR")]
    pub compile_cache_dir: Option<PathBuf>,
    /// Most MiB the compile cache may hold; the least recently used compiled guests are removed
    /// beyond it. Keep it well under the cache volume's size (the shipped Deployment's emptyDir
    /// is 256Mi).
    #[arg(long, env = "RECONCILER_COMPILE_CACHE_MAX_MIB", default_value_t = 128)]
    pub compile_cache_max_mib: u64,
    /// Address of the HTTP endpoint serving /metrics, /healthz and /readyz (port 0: any free
    /// port, logged at start).
    #[arg(
        long,
        env = "RECONCILER_METRICS_BIND_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_bind_address: std::net::SocketAddr,
    /// This replica's name, reported in the Events it publishes (set from the pod name with the
    /// downward API).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Accept a new guest file that reconciles another parent kind: the host then restarts its
    /// controller in-process for the new kind (children of the old kind are left alone).
    #[arg(long, env = "RECONCILER_ALLOW_PARENT_KIND_CHANGE")]
    pub allow_parent_kind_change: bool,
    /// Compile guests every time; keep no compile cache.
    #[arg(long, env = "RECONCILER_NO_COMPILE_CACHE")]
    pub no_compile_cache: bool,
    /// For profiling guests: write /tmp/perf-<pid>.map so that `perf` names JIT-compiled guest
    /// functions.
    #[arg(long, env = "RECONCILER_GUEST_PERFMAP")]
    pub guest_perf_map: bool,
    #[command(flatten)]
    pub rules: GuestRuleArgs,
    #[command(flatten)]
    pub rollback: RollbackArgs,
    #[command(flatten)]
    pub leader_election: LeaderElectionArgs,
}

/// Flags of leader election (`--leader-elect…`).
#[derive(Debug, Args)]
pub struct LeaderElectionArgs {
    /// Run as one of several replicas: only the holder of a coordination.k8s.io/v1 Lease
    /// reconciles, the others stand by to take over.
    #[arg(long = "leader-elect", env = "RECONCILER_LEADER_ELECT")]
    pub enabled: bool,
    /// Name of the Lease [default: the field manager].
    #[arg(
        long = "leader-elect-lease-name",
        env = "RECONCILER_LEADER_ELECT_LEASE_NAME"
    )]
    pub lease_name: Option<String>,
    /// Namespace of the Lease (set from the pod's namespace with the downward API)
    /// [default: --namespace, when set].
    #[arg(long = "leader-elect-namespace", env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long a standby waits, after the leader's last renewal it saw, before taking over.
    #[arg(long = "leader-elect-lease-duration", env = "RECONCILER_LEADER_ELECT_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,
    /// How long a leader keeps reconciling without renewing its Lease; then it stops writing.
    #[arg(long = "leader-elect-renew-deadline", env = "RECONCILER_LEADER_ELECT_RENEW_DEADLINE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub renew_deadline: Duration,
    /// Pause between attempts to take or renew the Lease.
    #[arg(long = "leader-elect-retry-period", env = "RECONCILER_LEADER_ELECT_RETRY_PERIOD", default_value = "2s", value_parser = humantime::parse_duration)]
    pub retry_period: Duration,
}

/// A flag value that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "--field-manager {0:?} must be a valid label value (1-63 letters, digits, '-', '_', '.', starting and ending alphanumeric)"
    )]
    FieldManager(String),
    #[error(transparent)]
    Rules(#[from] RuleError),
    #[error(transparent)]
    Rollback(#[from] RollbackError),
    #[error(
        "--guest-memory-budget-mib ({budget}) must hold at least one call's \
         --guest-memory-mib ({per_call}) and be at most 1048576"
    )]
    GuestMemoryBudget { budget: usize, per_call: usize },
    #[error("--resync must be at least 1s, not {0:?}")]
    Resync(Duration),
    #[error(
        "--compile-cache-max-mib must be between 1 and 1048576, not {0} (to keep no cache, use --no-compile-cache)"
    )]
    CompileCacheMax(u64),
    #[error("give the guest with --guest FILE or a folder of guests with --guests DIR")]
    NoGuest,
    #[error(
        "--allow-protected-namespace {0:?} names no protected namespace; the protected ones are \
         {1} (the host's own comes from POD_NAMESPACE or --leader-elect-namespace)"
    )]
    NotProtected(String, String),
    #[error("--concurrency must be at least 1")]
    Concurrency,
    #[error("--swap-concurrency must be at least 1")]
    SwapConcurrency,
    #[error("--guest-poll-interval must be at least 1s, not {0:?}")]
    GuestPollInterval(Duration),
    #[error(
        "--leader-elect needs the Lease's namespace: set --leader-elect-namespace (or POD_NAMESPACE \
         from the downward API), or --namespace"
    )]
    LeaderElectNamespace,
    #[error(
        "leader election needs whole seconds with lease duration > renew deadline > retry period \
         >= 1s (a leader must stop before a standby may take over), not {0:?}"
    )]
    LeaderElectTimings(LeaseTimings),
}

impl RunArgs {
    /// Checks every flag and turns them into settings.
    ///
    /// # Errors
    /// The first flag whose value cannot work, saying what would.
    pub fn validate(self) -> Result<RunSettings, ConfigError> {
        if !is_label_value(&self.field_manager) {
            return Err(ConfigError::FieldManager(self.field_manager));
        }
        let rules = self.rules.validate()?;
        let rollback = self.rollback.validate()?;
        let per_call = rules.limits.max_memory_bytes >> 20;
        if self.guest_memory_budget_mib < per_call || self.guest_memory_budget_mib > 1 << 20 {
            return Err(ConfigError::GuestMemoryBudget {
                budget: self.guest_memory_budget_mib,
                per_call,
            });
        }
        if self.resync < Duration::from_secs(1) {
            return Err(ConfigError::Resync(self.resync));
        }
        if self.concurrency == 0 {
            return Err(ConfigError::Concurrency);
        }
        if self.swap_concurrency == 0 {
            return Err(ConfigError::SwapConcurrency);
        }
        if self.guest_poll_interval < Duration::from_secs(1) {
            return Err(ConfigError::GuestPollInterval(self.guest_poll_interval));
        }
        let protected_namespaces = protected_namespaces(
            self.leader_election.lease_namespace.as_deref(),
            &self.allow_protected_namespaces,
        )?;
        let leader_election = self.leader_election.validate(
            self.namespace.as_deref(),
            self.pod_name.as_deref(),
            &self.field_manager,
        )?;
        if !(1..=1 << 20).contains(&self.compile_cache_max_mib) {
            return Err(ConfigError::CompileCacheMax(self.compile_cache_max_mib));
        }
        let compile_cache = if self.no_compile_cache {
            None
        } else {
            self.compile_cache_dir
                .or_else(default_compile_cache_dir)
                .map(|dir| CompileCacheConfig {
                    dir,
                    max_bytes: self.compile_cache_max_mib << 20,
                })
        };
        Ok(RunSettings {
            guests: match (self.guest, self.guests) {
                (Some(file), _) => GuestSource::File {
                    path: file,
                    config: self.guest_config.filter(|config| config != "null"),
                },
                (None, Some(folder)) => GuestSource::Folder(folder),
                // clap requires one of the two.
                (None, None) => return Err(ConfigError::NoGuest),
            },
            // WATCH_NAMESPACE="" means all namespaces (the Operator SDK convention).
            namespace: self.namespace.filter(|ns| !ns.is_empty()),
            protected_namespaces,
            field_manager: self.field_manager,
            rules,
            guest_memory_budget_bytes: self.guest_memory_budget_mib << 20,
            resync: self.resync,
            concurrency: self.concurrency,
            // The sweep's reconciles take --concurrency slots like any other.
            swap_concurrency: self.swap_concurrency.min(self.concurrency),
            guest_poll_interval: self.guest_poll_interval,
            metrics_bind_address: self.metrics_bind_address,
            pod_name: self.pod_name.filter(|name| !name.is_empty()),
            allow_parent_kind_change: self.allow_parent_kind_change,
            compile_cache,
            guest_perf_map: self.guest_perf_map,
            leader_election,
            rollback,
        })
    }
}

/// The namespaces no cluster-scoped parent's child may be written to: Kubernetes' own and the
/// host's (where its pod and Lease live), minus those `allowed`.
///
/// # Errors
/// [`ConfigError::NotProtected`] for an `allowed` entry that is not protected anyway.
fn protected_namespaces(
    host_namespace: Option<&str>,
    allowed: &[String],
) -> Result<ProtectedNamespaces, ConfigError> {
    let every_protected = ProtectedNamespaces::new(host_namespace, &[]);
    if let Some(unknown) = allowed.iter().find(|ns| !every_protected.contains(ns)) {
        return Err(ConfigError::NotProtected(
            unknown.clone(),
            every_protected.describe(),
        ));
    }
    Ok(ProtectedNamespaces::new(host_namespace, allowed))
}

impl LeaderElectionArgs {
    fn validate(
        self,
        watch_namespace: Option<&str>,
        pod_name: Option<&str>,
        field_manager: &str,
    ) -> Result<Option<ElectionSettings>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        let timings = LeaseTimings {
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        };
        let whole_seconds = |d: Duration| d.subsec_nanos() == 0 && d >= Duration::from_secs(1);
        // The Lease stores whole seconds; the deadline must end before a standby may take over.
        if !whole_seconds(timings.lease_duration)
            || timings.lease_duration <= timings.renew_deadline
            || timings.renew_deadline <= timings.retry_period
            || timings.retry_period < Duration::from_secs(1)
        {
            return Err(ConfigError::LeaderElectTimings(timings));
        }
        let namespace = self
            .lease_namespace
            .filter(|ns| !ns.is_empty())
            .or_else(|| {
                watch_namespace
                    .filter(|ns| !ns.is_empty())
                    .map(str::to_owned)
            })
            .ok_or(ConfigError::LeaderElectNamespace)?;
        Ok(Some(ElectionSettings {
            lease_name: self
                .lease_name
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| field_manager.to_owned()),
            namespace,
            identity: crate::leader::identity(
                pod_name.filter(|name| !name.is_empty()),
                std::env::var("HOSTNAME").ok().as_deref(),
            ),
            timings,
        }))
    }
}

/// `$XDG_CACHE_HOME/wasm-reconciler/compiled-guests`, else `$HOME/.cache/…`; none without either.
pub fn default_compile_cache_dir() -> Option<PathBuf> {
    let cache_home = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".cache"))
        })?;
    Some(cache_home.join("wasm-reconciler/compiled-guests"))
}

fn is_label_value(value: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !value.is_empty()
        && value.len() <= 63
        && alnum(value.chars().next())
        && alnum(value.chars().last())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<RunSettings, ConfigError> {
        let cli =
            Cli::try_parse_from([&["reconciler-host", "run", "--guest", "g.wasm"], args].concat())
                .unwrap();
        match cli.command {
            Command::Run(run) => run.validate(),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn defaults_are_sensible() {
        let settings = parse(&[]).unwrap();
        assert_eq!(settings.field_manager, "wasm-reconciler");
        assert_eq!(settings.rules.limits.timeout, Duration::from_secs(2));
        assert_eq!(settings.rules.limits.max_memory_bytes, 64 << 20);
        assert_eq!(settings.rules.timeout_ceiling, Duration::from_secs(2));
        assert_eq!(settings.namespace, None);
        assert_eq!(settings.guest_poll_interval, Duration::from_secs(10));
        assert!(settings.leader_election.is_none());
    }

    #[test]
    fn leader_election_finds_its_namespace_and_checks_its_timings() {
        let settings = parse(&["--leader-elect", "--namespace", "team"])
            .unwrap()
            .leader_election
            .unwrap();
        assert_eq!(settings.namespace, "team");
        assert_eq!(settings.lease_name, "wasm-reconciler");
        assert_eq!(settings.timings, LeaseTimings::default());
        let named = parse(&[
            "--leader-elect",
            "--leader-elect-namespace",
            "ops",
            "--leader-elect-lease-name",
            "potatoes",
        ])
        .unwrap()
        .leader_election
        .unwrap();
        assert_eq!(
            (named.namespace.as_str(), named.lease_name.as_str()),
            ("ops", "potatoes")
        );
        assert_eq!(
            parse(&["--leader-elect"]).unwrap_err(),
            ConfigError::LeaderElectNamespace
        );
        for timings in [
            ["--leader-elect-renew-deadline", "15s"],
            ["--leader-elect-retry-period", "10s"],
            ["--leader-elect-lease-duration", "15500ms"],
            ["--leader-elect-retry-period", "500ms"],
        ] {
            let args = [&["--leader-elect", "--namespace", "a"][..], &timings[..]].concat();
            assert!(
                matches!(parse(&args), Err(ConfigError::LeaderElectTimings(_))),
                "{timings:?}"
            );
        }
    }

    #[test]
    fn the_compile_cache_can_be_moved_bounded_or_turned_off() {
        let moved = parse(&["--compile-cache-dir", "/var/cache/guests"]).unwrap();
        assert_eq!(
            moved.compile_cache,
            Some(CompileCacheConfig {
                dir: "/var/cache/guests".into(),
                max_bytes: 128 << 20,
            })
        );
        let smaller =
            parse(&["--compile-cache-dir", "/c", "--compile-cache-max-mib", "32"]).unwrap();
        assert_eq!(smaller.compile_cache.unwrap().max_bytes, 32 << 20);
        assert!(matches!(
            parse(&["--compile-cache-max-mib", "0"]),
            Err(ConfigError::CompileCacheMax(0))
        ));
        assert_eq!(parse(&["--no-compile-cache"]).unwrap().compile_cache, None);
    }

    #[test]
    fn an_empty_namespace_means_all_namespaces() {
        assert_eq!(parse(&["--namespace", ""]).unwrap().namespace, None);
        assert_eq!(
            parse(&["--namespace", "a"]).unwrap().namespace.as_deref(),
            Some("a")
        );
    }

    #[test]
    fn unusable_values_are_refused_with_the_flag_name() {
        assert!(matches!(
            parse(&["--field-manager", "not a label"]),
            Err(ConfigError::FieldManager(_))
        ));
        assert!(matches!(
            parse(&["--guest-timeout", "0s"]),
            Err(ConfigError::Rules(RuleError::GuestTimeout(_)))
        ));
        assert!(matches!(
            parse(&[
                "--guest-memory-mib",
                "128",
                "--guest-memory-budget-mib",
                "100"
            ]),
            Err(ConfigError::GuestMemoryBudget {
                budget: 100,
                per_call: 128
            })
        ));
        assert_eq!(
            parse(&[]).unwrap().guest_memory_budget_bytes,
            256 << 20,
            "the default budget"
        );
        assert!(matches!(
            parse(&["--guest-memory-mib", "0"]),
            Err(ConfigError::Rules(RuleError::GuestMemory(0)))
        ));
        assert!(matches!(
            parse(&["--resync", "10ms"]),
            Err(ConfigError::Resync(_))
        ));
        assert!(
            parse(&["--concurrency", "0"])
                .unwrap_err()
                .to_string()
                .contains("--concurrency")
        );
        assert_eq!(
            parse(&["--swap-concurrency", "0"]).unwrap_err(),
            ConfigError::SwapConcurrency
        );
        assert_eq!(parse(&[]).unwrap().swap_concurrency, 2, "the default");
        assert_eq!(
            parse(&["--concurrency", "1"]).unwrap().swap_concurrency,
            1,
            "never more than --concurrency"
        );
    }

    #[test]
    fn one_guest_file_or_one_folder_of_guests() {
        assert_eq!(
            parse(&[]).unwrap().guests,
            GuestSource::File {
                path: "g.wasm".into(),
                config: None
            }
        );
        let run = |args: &[&str]| Cli::try_parse_from([&["reconciler-host", "run"], args].concat());
        let folder = match run(&["--guests", "/guests"]).unwrap().command {
            Command::Run(args) => args.validate().unwrap().guests,
            other => panic!("parsed as {other:?}"),
        };
        assert_eq!(folder, GuestSource::Folder("/guests".into()));
        let both = run(&["--guest", "g.wasm", "--guests", "/guests"]).unwrap_err();
        assert!(both.to_string().contains("cannot be used with"), "{both}");
        let neither = run(&[]).unwrap_err();
        assert!(neither.to_string().contains("--guest"), "{neither}");
    }
}
