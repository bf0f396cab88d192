//! A real Kubernetes control plane on loopback: etcd, kube-apiserver and optionally
//! kube-controller-manager (garbage collection, Deployments → ReplicaSets), started from the
//! binaries that `hack/control-plane-bins.sh` provides (building and caching them on first use,
//! or taking them from `$KUBEBUILDER_ASSETS`).
//!
//! Every process gets SIGTERM when the thread that started it exits (`PR_SET_PDEATHSIG`), so a
//! test binary that ends, panics or is killed never leaves servers behind.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};

mod files;
mod processes;

use files::{control_plane_bins, kubeconfig_yaml, remove_stale_dirs};
use processes::{free_port, run_quietly};

/// What to start besides etcd and kube-apiserver.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Also run kube-controller-manager (garbage collector, namespace, deployment and replicaset
    /// controllers). Its deployment controller rewrites Deployment status, so tests that mark
    /// Deployments ready by hand run without it.
    pub controller_manager: bool,
}

/// A running control plane.
pub struct ControlPlane {
    /// Scratch folder with data, keys, logs and the kubeconfig.
    pub dir: PathBuf,
    /// A kubeconfig for a cluster-admin user (token in group system:masters).
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    /// `http://127.0.0.1:<port>` (empty for an existing cluster).
    pub etcd: String,
    processes: Mutex<Vec<Process>>,
}

/// One server process, with what it takes to start it again after a stop.
struct Process {
    name: String,
    program: std::ffi::OsString,
    args: Vec<std::ffi::OsString>,
    /// `None` while stopped.
    child: Option<Child>,
}

const ADMIN_TOKEN: &str = "e2e-admin-token";
const DIR_PREFIX: &str = "wasm-reconciler-e2e-";

impl ControlPlane {
    /// Starts a control plane and waits until the API server is ready. Blocking; must not be
    /// called from inside an async runtime. Its processes stop when this value is dropped or the
    /// calling thread exits. A server that exits during start-up (seen once in CI: the API server
    /// exited, most likely because a port chosen for it was taken before it bound it) gets two
    /// more tries with fresh ports and folders.
    pub fn start(options: Options) -> anyhow::Result<Self> {
        const ATTEMPTS: u32 = 3;
        let mut attempt = 1;
        loop {
            match Self::start_once(options) {
                Err(error) if attempt < ATTEMPTS && error.is::<ExitedDuringStartUp>() => {
                    eprintln!("control plane, attempt {attempt} of {ATTEMPTS}: {error:#}");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn start_once(options: Options) -> anyhow::Result<Self> {
        let bins = control_plane_bins()?;
        remove_stale_dirs();
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;

        let sa_key = dir.join("sa.key");
        let sa_pub = dir.join("sa.pub");
        run_quietly(
            Command::new("openssl")
                .args(["genrsa", "-out"])
                .arg(&sa_key)
                .arg("2048"),
        )?;
        run_quietly(
            Command::new("openssl")
                .args(["rsa", "-pubout", "-in"])
                .arg(&sa_key)
                .arg("-out")
                .arg(&sa_pub),
        )?;
        let tokens = dir.join("tokens.csv");
        fs::write(
            &tokens,
            format!("{ADMIN_TOKEN},admin,admin,\"system:masters\"\n"),
        )?;

        let etcd_port = free_port()?;
        let etcd_peer_port = free_port()?;
        let api_port = free_port()?;
        let server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = dir.join("kubeconfig");
        let plane = ControlPlane {
            dir: dir.clone(),
            kubeconfig,
            server,
            etcd: format!("http://127.0.0.1:{etcd_port}"),
            processes: Mutex::new(Vec::new()),
        };
        let etcd_url = plane.etcd.clone();
        plane.spawn(
            "etcd",
            Command::new(bins.join("etcd"))
                .arg("--data-dir")
                .arg(dir.join("etcd"))
                .arg(format!("--listen-client-urls={etcd_url}"))
                .arg(format!("--advertise-client-urls={etcd_url}"))
                .arg(format!(
                    "--listen-peer-urls=http://127.0.0.1:{etcd_peer_port}"
                )),
        )?;
        plane.spawn(
            "kube-apiserver",
            Command::new(bins.join("kube-apiserver"))
                .arg(format!("--etcd-servers={etcd_url}"))
                .arg(format!("--secure-port={api_port}"))
                .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
                .arg(format!("--cert-dir={}", dir.join("certs").display()))
                .arg(format!("--token-auth-file={}", tokens.display()))
                .arg("--authorization-mode=RBAC")
                .arg(format!("--service-account-key-file={}", sa_pub.display()))
                .arg(format!(
                    "--service-account-signing-key-file={}",
                    sa_key.display()
                ))
                .arg("--service-account-issuer=https://kubernetes.default.svc")
                // A /16: every Service takes a cluster IP, and a /24 runs out after ~250.
                .arg("--service-cluster-ip-range=10.96.0.0/16")
                .arg("--disable-admission-plugins=ServiceAccount"),
        )?;
        plane.wait_for_serving_cert(Duration::from_secs(60))?;
        fs::write(
            &plane.kubeconfig,
            kubeconfig_yaml(&plane.server, &plane.ca_file(), ADMIN_TOKEN, "default"),
        )?;
        plane.wait_ready(Duration::from_secs(90))?;
        if options.controller_manager {
            plane.spawn(
                "kube-controller-manager",
                Command::new(bins.join("kube-controller-manager"))
                    .arg(format!("--kubeconfig={}", plane.kubeconfig.display()))
                    .arg("--controllers=garbagecollector,namespace,deployment,replicaset")
                    .args([
                        "--leader-elect=false",
                        "--use-service-account-credentials=false",
                    ])
                    .args(["--bind-address=127.0.0.1", "--secure-port=0", "--port=0"]),
            )?;
        }
        Ok(plane)
    }

    /// Uses an existing cluster instead of starting one (the envtest `USE_EXISTING_CLUSTER`
    /// convention): the kubeconfig from `$KUBECONFIG` or `~/.kube/config`.
    pub fn existing() -> anyhow::Result<Self> {
        let kubeconfig = std::env::var_os("KUBECONFIG")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kube/config"))
            })
            .context("USE_EXISTING_CLUSTER needs KUBECONFIG or ~/.kube/config")?;
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-existing", std::process::id()));
        fs::create_dir_all(&dir)?;
        Ok(ControlPlane {
            dir,
            kubeconfig,
            server: String::new(),
            etcd: String::new(),
            processes: Mutex::new(Vec::new()),
        })
    }

    /// A client authenticated as cluster-admin.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig readable");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("kubeconfig valid");
        kube::Client::try_from(config).expect("client builds")
    }

    /// Applies a CustomResourceDefinition from a YAML file and waits until it is established.
    pub async fn install_crd(&self, path: &Path) -> anyhow::Result<()> {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let crd: CustomResourceDefinition = serde_saphyr::from_str(&text)?;
        let name = crd.metadata.name.clone().context("CRD has a name")?;
        let api: Api<CustomResourceDefinition> = Api::all(self.client().await);
        api.patch(
            &name,
            &PatchParams::apply("e2e-harness").force(),
            &Patch::Apply(&crd),
        )
        .await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let crd = api.get(&name).await?;
            let established = crd.status.and_then(|s| s.conditions).is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
            if established {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("CRD {name} not established after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `future` to completion on a runtime of its own (for callers outside one).
    pub fn block_on<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    fn spawn(&self, name: &str, command: &mut Command) -> anyhow::Result<()> {
        let mut process = Process {
            name: name.to_string(),
            program: command.get_program().to_owned(),
            args: command.get_args().map(ToOwned::to_owned).collect(),
            child: None,
        };
        self.launch(&mut process)?;
        self.processes.lock().expect("process list").push(process);
        Ok(())
    }

    fn launch(&self, process: &mut Process) -> anyhow::Result<()> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", process.name)))?;
        let mut command = Command::new(&process.program);
        command.args(&process.args);
        // SAFETY: prctl is async-signal-safe; this runs in the forked child before exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", process.name))?;
        process.child = Some(child);
        Ok(())
    }

    /// The process id of server `name`, while it runs.
    pub fn pid(&self, name: &str) -> Option<u32> {
        let processes = self.processes.lock().expect("process list");
        let process = processes.iter().find(|p| p.name == name)?;
        process.child.as_ref().map(Child::id)
    }

    /// Stops server `name` (`etcd`, `kube-apiserver`, `kube-controller-manager`): SIGTERM, and
    /// SIGKILL after 10 s. [`Self::resume`] starts it again with the same flags and data.
    pub fn stop(&self, name: &str) {
        let mut processes = self.processes.lock().expect("process list");
        let process = processes
            .iter_mut()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no process {name}"));
        if let Some(mut child) = process.child.take() {
            terminate(&mut child, Duration::from_secs(10));
        }
    }

    /// Starts a stopped server again. The process belongs to the calling thread (it gets SIGTERM
    /// when that thread exits), so call it from a thread that lives as long as the plane, as
    /// [`DedicatedPlane::resume`] does.
    pub fn resume(&self, name: &str) -> anyhow::Result<()> {
        let mut processes = self.processes.lock().expect("process list");
        let process = processes
            .iter_mut()
            .find(|p| p.name == name)
            .with_context(|| format!("no process {name}"))?;
        if process.child.is_none() {
            self.launch(process)?;
        }
        Ok(())
    }

    /// Waits until the API server answers `/readyz` with `ok`; fails early when one of the
    /// plane's servers exited.
    pub async fn wait_until_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let client = self.client().await;
        loop {
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .expect("request builds");
            if client
                .request_text(request)
                .await
                .is_ok_and(|body| body.trim() == "ok")
            {
                return Ok(());
            }
            self.check_still_starting(deadline, "kube-apiserver's /readyz")?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Moves etcd's history past every resourceVersion a client has seen (writes a marker key)
    /// and compacts it up to there (through etcd's HTTP gateway), so that watches resuming from
    /// an older resourceVersion get `410 Gone`. Returns the compacted revision.
    pub async fn compact_etcd(&self) -> anyhow::Result<i64> {
        let address = self
            .etcd
            .strip_prefix("http://")
            .context("no etcd of our own (existing cluster)")?;
        // key "/e2e-marker", value "x", base64-encoded as the gateway wants.
        let put = etcd_post(
            address,
            "/v3/kv/put",
            r#"{"key":"L2UyZS1tYXJrZXI=","value":"eA=="}"#,
        )
        .await?;
        let revision: i64 = put["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .with_context(|| format!("no revision in {put}"))?;
        etcd_post(
            address,
            "/v3/kv/compaction",
            &format!(r#"{{"revision":"{revision}","physical":true}}"#),
        )
        .await?;
        Ok(revision)
    }

    /// The API server's self-signed serving certificate followed by the CA that signed it
    /// (kube-apiserver writes both into `--cert-dir` when given no certificate).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("certs/apiserver.crt")
    }

    fn wait_for_serving_cert(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.ca_file().exists() {
            self.check_still_starting(deadline, "kube-apiserver's serving certificate")?;
            std::thread::sleep(Duration::from_millis(50));
        }
        // The file is written in one go, but give the writer a moment to close it.
        std::thread::sleep(Duration::from_millis(100));
        Ok(())
    }

    fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        self.block_on(self.wait_until_ready(timeout))
    }

    /// Fails when a process died or the deadline passed while waiting for something.
    fn check_still_starting(&self, deadline: Instant, waiting_for: &str) -> anyhow::Result<()> {
        if let Some((name, status)) = self.exited_process() {
            // The folder goes when the plane is dropped: keep the end of the log in the error.
            let log = fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            return Err(ExitedDuringStartUp {
                process: format!("{name} ({status})"),
                log_tail: tail,
            }
            .into());
        }
        if Instant::now() > deadline {
            bail!(
                "gave up waiting for {waiting_for}; logs in {}",
                self.dir.display()
            );
        }
        Ok(())
    }

    /// The name and exit status of a process that has exited.
    fn exited_process(&self) -> Option<(String, String)> {
        let mut processes = self.processes.lock().expect("process list");
        processes.iter_mut().find_map(|p| {
            let child = p.child.as_mut()?;
            match child.try_wait() {
                Ok(Some(status)) => Some((p.name.clone(), status.to_string())),
                _ => None,
            }
        })
    }
}

/// A server of the plane exited while the plane was starting.
#[derive(Debug)]
struct ExitedDuringStartUp {
    process: String,
    log_tail: String,
}

impl std::fmt::Display for ExitedDuringStartUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} exited during start-up; the end of its log:\n{}",
            self.process, self.log_tail
        )
    }
}

impl std::error::Error for ExitedDuringStartUp {}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let mut processes = self.processes.lock().expect("process list");
        // Reverse start order: the controller manager and API server before etcd.
        for process in processes.iter_mut().rev() {
            if let Some(mut child) = process.child.take() {
                terminate(&mut child, Duration::from_secs(10));
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// SIGTERM, then SIGKILL if it is still running after `grace`; reaps it.
fn terminate(child: &mut Child, grace: Duration) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `POST path` with a JSON body to etcd's HTTP gateway; the JSON answer.
async fn etcd_post(address: &str, path: &str, body: &str) -> anyhow::Result<serde_json::Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("malformed answer from etcd: {response}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("etcd {path}: {head} {body}");
    }
    // Chunked or not, the JSON object is the one between the first '{' and the last '}'.
    let json = body
        .find('{')
        .zip(body.rfind('}'))
        .map(|(start, end)| &body[start..=end])
        .with_context(|| format!("no JSON in etcd's answer: {body}"))?;
    Ok(serde_json::from_str(json)?)
}
