//! The real `reconciler-host` binary, run as a child process of a test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::paths::host_binary;
use local_control_plane::ControlPlane;

/// A running `reconciler-host run`. Stopped (SIGTERM, then waited for) when dropped; when the
/// test is failing, the tail of its log is printed.
pub struct HostProcess {
    child: Child,
    log: PathBuf,
}

impl HostProcess {
    /// Starts `reconciler-host run --guest <guest> <args…>` as the plane's admin.
    pub fn start(plane: &ControlPlane, guest: &Path, args: &[&str]) -> HostProcess {
        Self::start_with_kubeconfig(plane, &plane.kubeconfig, guest, args)
    }

    /// Same as [`Self::start`] with another user's kubeconfig.
    pub fn start_with_kubeconfig(
        plane: &ControlPlane,
        kubeconfig: &Path,
        guest: &Path,
        args: &[&str],
    ) -> HostProcess {
        let mut all = vec!["run".to_string(), "--guest".to_string()];
        all.push(guest.display().to_string());
        all.extend(args.iter().map(|a| a.to_string()));
        Self::spawn(plane, kubeconfig, &all, &[])
    }

    /// `reconciler-host <args…>` with extra environment variables (which may override the
    /// default `RUST_LOG=info,reconciler_host=debug`), authenticated by
    /// `kubeconfig`, its metrics on a free loopback port.
    pub fn spawn(
        plane: &ControlPlane,
        kubeconfig: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> HostProcess {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = plane.dir.join(format!("reconciler-host-{n}.log"));
        let file = fs::File::create(&log).expect("host log file");
        let child = Command::new(host_binary())
            .args(args)
            // Hosts run side by side in tests: take any free port (read back with metrics_address).
            .args(["--metrics-bind-address", "127.0.0.1:0"])
            .env("RUST_LOG", "info,reconciler_host=debug")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file clone"))
            .stderr(file)
            .spawn()
            .expect("reconciler-host starts");
        HostProcess { child, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the host logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address of the host's /metrics, /healthz and /readyz, from its start-up log line.
    pub async fn metrics_address(&self) -> std::net::SocketAddr {
        crate::eventually(
            std::time::Duration::from_secs(20),
            "host logs its metrics address",
            || async {
                let log = self.log();
                let line = log
                    .lines()
                    .find(|l| l.contains("serving /metrics"))
                    .ok_or("not logged yet")?;
                // Text logs say `address=…`, JSON logs `"address":"…"`.
                let address = line
                    .split("address=")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .or_else(|| {
                        line.split("\"address\":\"")
                            .nth(1)
                            .and_then(|rest| rest.split('"').next())
                    });
                address
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| format!("no address in {line:?}"))
            },
        )
        .await
    }

    /// `GET path` on the host's HTTP endpoint: (status code, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.metrics_address().await)
            .await
            .expect("connect");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .expect("read response");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// The current value of one counter series from `/metrics`, e.g. [`CHILDREN_APPLIED`]; 0
    /// before it first moves (a labelled series appears only then).
    pub async fn counter(&self, series: &str) -> f64 {
        let (_, metrics) = self.http_get("/metrics").await;
        metric_value(&metrics, series).unwrap_or(0.0)
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit; its exit status, or
    /// `None` if it is still running.
    pub fn terminate(&mut self, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Kills the process with SIGKILL (no clean-up, like a node dying) and reaps it.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Resident memory of the process, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        crate::proc_stats::rss_bytes(self.child.id())
    }

    /// The most resident memory the process has had, in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        crate::proc_stats::peak_rss_bytes(self.child.id())
    }

    /// CPU time (user + system) the process has used, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        crate::proc_stats::cpu_seconds(self.child.id())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        // The host stops within its 15 s grace period; never let a stuck one hang the tests.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            eprintln!(
                "reconciler-host {} ignored SIGTERM for 20 s; killing it",
                self.child.id()
            );
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- last lines of {} ----", self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Children the host has applied.
pub const CHILDREN_APPLIED: &str = r#"reconciler_children_total{action="applied"}"#;
/// Children the host has pruned.
pub const CHILDREN_PRUNED: &str = r#"reconciler_children_total{action="pruned"}"#;

/// The value of a series in Prometheus text, summed over the series that carry at least the
/// given labels (so over every guest when the `guest` label is not given), e.g.
/// `metric_value(text, r#"reconciler_reconciles_total{result="success"}"#)`; `None` when no
/// series matches.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    let (name, wanted) = split_series(series);
    let matching: Vec<f64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (line_name, labels) = split_series(series);
            (line_name == name && wanted.iter().all(|label| labels.contains(label)))
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// `name{a="1",b="2"}` into the name and its `a="1"` labels (values hold no commas here).
fn split_series(series: &str) -> (&str, Vec<&str>) {
    match series.split_once('{') {
        Some((name, labels)) => (
            name,
            labels
                .trim_end_matches('}')
                .split(',')
                .filter(|l| !l.is_empty())
                .collect(),
        ),
        None => (series, Vec::new()),
    }
}
