//! The real `reconciler-host` binary, run as a child process of a test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::control_plane::ControlPlane;
use crate::paths::host_binary;

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
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = plane.dir.join(format!("reconciler-host-{n}.log"));
        let file = fs::File::create(&log).expect("host log file");
        let child = Command::new(host_binary())
            .arg("run")
            .arg("--guest")
            .arg(guest)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,reconciler_host=debug")
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

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
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
