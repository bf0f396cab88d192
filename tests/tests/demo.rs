//! `make demo` as a user runs it: `hack/demo.sh` starts its own control plane, installs the CRD,
//! starts the host and applies the sample; the test checks what the user is shown, then runs
//! every command the demo prints for the user to try, exactly as printed, and checks that each
//! does what the demo says. A command added to the demo without a check here fails the test.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::deploy::kubectl;
use e2e::paths::{
    host_binary, local_control_plane_binary, podtatohead_guest, potatohead_guest, workspace_root,
};
use e2e::{CONVERGE, eventually, image_of};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};

/// What the demo prints once everything runs (non-interactive mode).
const RUNNING: &str = "demo running; close standard input to stop";

/// `hack/demo.sh` in its own process group, stopped (SIGTERM to the group: the script's trap
/// stops the host and the control plane) when dropped.
struct Demo {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Demo {
    fn start() -> Self {
        let mut child = Command::new("bash")
            .arg(workspace_root().join("hack/demo.sh"))
            .current_dir(workspace_root())
            .env("DEMO_NONINTERACTIVE", "1")
            .env("RECONCILER_HOST_BIN", host_binary())
            .env("LOCAL_CONTROL_PLANE_BIN", local_control_plane_binary())
            .env("POTATOHEAD_GUEST_WASM", potatohead_guest())
            .env("PODTATOHEAD_GUEST_WASM", podtatohead_guest())
            .env("KUBECTL", kubectl())
            // Tests run side by side: any free port.
            .env("DEMO_METRICS_ADDRESS", "127.0.0.1:0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("starting hack/demo.sh");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Self {
            child,
            stdout,
            stderr,
        }
    }

    fn output(&self) -> String {
        format!(
            "--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }

    /// Waits until the demo printed `RUNNING`; panics if it exits first.
    fn wait_until_running(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let stdout = self.stdout.lock().unwrap().clone();
            if stdout.contains(RUNNING) {
                return stdout;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the demo exited ({status}) before running:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the demo did not start within {timeout:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Closes standard input, as the test's "Ctrl-C", and waits for the demo to clean up.
    fn stop(mut self) -> std::process::ExitStatus {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the demo did not stop:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: kill(2) on our own child's process group.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGTERM) };
            let _ = self.child.wait();
        }
    }
}

fn collect(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let mut text = sink.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    text
}

/// The commands the demo printed for the user: `export` lines and `kubectl` lines, without their
/// trailing `# comment`.
fn printed_commands(stdout: &str) -> (Vec<String>, Vec<String>) {
    let block = stdout
        .split("In another shell")
        .nth(1)
        .expect("the demo prints commands to try");
    let mut exports = Vec::new();
    let mut commands = Vec::new();
    for line in block.lines().map(str::trim) {
        let command = line.split("  # ").next().unwrap().trim().to_string();
        if command.starts_with("export ") {
            exports.push(command);
        } else if command.starts_with("kubectl ") {
            commands.push(command);
        }
    }
    (exports, commands)
}

/// Runs one printed command in a shell where the printed exports were typed first.
fn shell(exports: &[String], command: &str) -> Command {
    let mut shell = Command::new("bash");
    shell
        .arg("-c")
        .arg(format!("{}\nexec {command}", exports.join("\n")))
        .env_remove("KUBECONFIG");
    shell
}

fn run(exports: &[String], command: &str) -> String {
    let output = shell(exports, command).output().unwrap();
    assert!(
        output.status.success(),
        "`{command}` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `kubectl get … -w` never ends by itself: reads until a line starts with `prefix`.
fn watch_until(exports: &[String], command: &str, prefix: &str) -> String {
    let mut child = shell(exports, command)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = collect(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen = loop {
        let text = stdout.lock().unwrap().clone();
        if text.lines().any(|l| l.starts_with(prefix)) || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    seen
}

async fn client_for(kubeconfig: &Path) -> Client {
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    Client::try_from(config).unwrap()
}

/// The PotatoHead `demo`'s Deployments (`demo-…`) and their images.
async fn deployment_images(deployments: &Api<Deployment>) -> Result<Vec<(String, String)>, String> {
    let list = deployments
        .list(&Default::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(list
        .iter()
        .filter(|d| d.name_any().starts_with("demo-"))
        .map(|d| (d.name_any(), image_of(d)))
        .collect())
}

/// The Events table of `kubectl describe`, one message per line.
fn event_lines(describe: &str) -> Vec<String> {
    describe
        .split("Events:")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().to_string())
        .collect()
}

/// Waits until every part of the demo PotatoHead has `GREETING=greeting` (from its ConfigMap).
async fn greetings_are(deployments: &Api<Deployment>, greeting: &str) {
    eventually(
        CONVERGE,
        &format!("every part has GREETING={greeting}"),
        || async {
            let list = deployments
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            let greetings: Vec<Option<String>> = list
                .items
                .iter()
                .filter(|d| d.name_any().starts_with("demo-"))
                .map(|d| {
                    d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
                        .env
                        .iter()
                        .flatten()
                        .find(|v| v.name == "GREETING")?
                        .value
                        .clone()
                })
                .collect();
            match greetings.len() == 6 && greetings.iter().all(|g| g.as_deref() == Some(greeting)) {
                true => Ok(()),
                false => Err(format!("{greetings:?}")),
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_shows_what_the_host_made_and_every_command_it_prints_does_what_it_says() {
    if std::env::var("USE_EXISTING_CLUSTER").is_ok_and(|v| v == "true") {
        eprintln!("skipped: the demo starts a control plane of its own");
        return;
    }
    let mut demo = Demo::start();
    let shown = demo.wait_until_running(Duration::from_secs(300));

    // What a user must see: for the PotatoHead six Deployments, six Services, the ConfigMap, the
    // status; for the talk's PodTatoHead, served by the same host, four of each.
    let count = |prefix: &str| shown.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("deployment.apps/demo-"), 6, "{shown}");
    assert_eq!(count("service/demo-"), 6, "{shown}");
    assert_eq!(count("deployment.apps/podtato-"), 4, "{shown}");
    assert_eq!(count("service/podtato-"), 4, "{shown}");
    assert!(
        shown.lines().any(
            |l| l.starts_with("podtatohead.crd.demo.com/podtatohead-sample ")
                && l.contains(" 0/4 ")
        ),
        "the PodTatoHead's status column: {shown}"
    );
    assert_eq!(count("configmap/demo-service-discovery"), 1, "{shown}");
    let entry_service = shown
        .lines()
        .find(|l| l.starts_with("service/demo-entry "))
        .unwrap();
    assert!(entry_service.contains("LoadBalancer"), "{entry_service}");
    assert!(
        shown
            .lines()
            .filter(|l| l.starts_with("service/demo-") && !l.starts_with("service/demo-entry "))
            .all(|l| l.contains("ClusterIP")),
        "{shown}"
    );
    for status_line in [
        "status:",
        "observedGeneration: 1",
        "summary: 0/6",
        "type: Ready",
    ] {
        assert!(
            shown.contains(status_line),
            "{status_line} not shown:\n{shown}"
        );
    }

    let (exports, commands) = printed_commands(&shown);
    let kubeconfig = exports
        .iter()
        .find_map(|e| e.strip_prefix("export KUBECONFIG="))
        .map(PathBuf::from)
        .expect("the demo prints its KUBECONFIG");
    assert!(
        exports.iter().any(|e| e.starts_with("export PATH=")),
        "the demo puts its kubectl first on the PATH: {exports:?}"
    );
    let client = client_for(&kubeconfig).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let describe = commands
        .iter()
        .find(|c| c.starts_with("kubectl describe potatohead demo"))
        .expect("the demo prints a describe command")
        .clone();

    for command in &commands {
        if command.starts_with("kubectl get potatoheads -w") {
            let seen = watch_until(&exports, command, "demo ");
            assert!(seen.lines().any(|l| l.starts_with("demo ")), "{seen}");
        } else if command.starts_with("kubectl describe potatohead demo") {
            let text = run(&exports, command);
            assert!(
                text.contains("Summary:") || text.contains("summary"),
                "{text}"
            );
            assert!(
                event_lines(&text).iter().any(|l| l.ends_with(
                    "created ConfigMap demo-service-discovery, Deployment demo-entry, Deployment \
                     demo-hat, Deployment demo-left-arm, Deployment demo-left-leg, Deployment \
                     demo-right-arm, Deployment demo-right-leg, Service demo-entry, Service \
                     demo-hat, Service demo-left-arm, Service demo-left-leg, Service \
                     demo-right-arm, Service demo-right-leg"
                )),
                "the first creation's Event lists all 13 children by kind, then name:\n{text}"
            );
        } else if command.contains(r#""tag":"0.3.1""#) {
            run(&exports, command);
            eventually(CONVERGE, "every part runs the new tag", || async {
                let images = deployment_images(&deployments).await?;
                match images.iter().all(|(_, i)| i.ends_with(":0.3.1")) && images.len() == 6 {
                    true => Ok(()),
                    false => Err(format!("{images:?}")),
                }
            })
            .await;
        } else if command.starts_with("kubectl create configmap demo-settings") {
            run(&exports, command);
        } else if command.contains(r#""configRef":{"name":"demo-settings"}"#) {
            run(&exports, command);
            greetings_are(&deployments, "hello").await;
        } else if command.starts_with("kubectl patch configmap demo-settings") {
            run(&exports, command);
            greetings_are(&deployments, "bonjour").await;
        } else if command == "kubectl delete deployment demo-hat" {
            let before = deployments.get("demo-hat").await.unwrap().uid();
            run(&exports, command);
            eventually(CONVERGE, "demo-hat comes back", || async {
                match deployments
                    .get_opt("demo-hat")
                    .await
                    .map_err(|e| e.to_string())?
                {
                    Some(d) if d.uid() != before => Ok(()),
                    other => Err(format!("{:?}", other.map(|d| d.uid()))),
                }
            })
            .await;
            // The Event of this creation names what was created this time: demo-hat alone.
            eventually(
                CONVERGE,
                "an Event for the recreated Deployment",
                || async {
                    let text = run(&exports, &describe);
                    match event_lines(&text)
                        .iter()
                        .any(|l| l.ends_with("created Deployment demo-hat"))
                    {
                        true => Ok(()),
                        false => Err(text),
                    }
                },
            )
            .await;
        } else if command.contains(r#""path":"/spec/parts/5""#) {
            run(&exports, command);
            eventually(CONVERGE, "right-leg is pruned, the rest stays", || async {
                let names: Vec<String> = deployment_images(&deployments)
                    .await?
                    .into_iter()
                    .map(|(name, _)| name)
                    .collect();
                let service = services
                    .get_opt("demo-right-leg")
                    .await
                    .map_err(|e| e.to_string())?;
                match names.len() == 5
                    && !names.contains(&"demo-right-leg".into())
                    && service.is_none()
                {
                    true => Ok(()),
                    false => Err(format!("{names:?}, service left: {}", service.is_some())),
                }
            })
            .await;
            eventually(CONVERGE, "an Event for the pruned part", || async {
                let text = run(&exports, &describe);
                match event_lines(&text).iter().any(|l| {
                    l.ends_with("deleted Deployment demo-right-leg, Service demo-right-leg (no longer desired)")
                }) {
                    true => Ok(()),
                    false => Err(text),
                }
            })
            .await;
        } else if command == "kubectl get podtatoheads" {
            let text = run(&exports, command);
            assert!(
                text.lines().any(|l| l.starts_with("podtatohead-sample ")),
                "{text}"
            );
        } else if command == "kubectl scale deployment podtato-main --replicas=3" {
            run(&exports, command);
            eventually(CONVERGE, "podtato-main back at 1 replica", || async {
                let replicas = deployments
                    .get("podtato-main")
                    .await
                    .map_err(|e| e.to_string())?
                    .spec
                    .and_then(|s| s.replicas);
                match replicas {
                    Some(1) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            })
            .await;
        } else if command == "kubectl get potatohead demo -o yaml" {
            let text = run(&exports, command);
            assert!(text.contains("kind: PotatoHead"), "{text}");
            assert!(text.contains("summary: 0/5"), "{text}");
        } else {
            panic!("the demo prints `{command}` and no check here says what it should do: add one");
        }
    }
    assert_eq!(commands.len(), 11, "{commands:?}");

    let status = demo.stop();
    assert!(status.success(), "the demo ended with {status}");
}
