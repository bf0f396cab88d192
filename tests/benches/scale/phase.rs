//! One timed phase of the bench: its wall time, the CPU it cost the servers and this process, and
//! (with `API_SERVER_PROFILES`) the API server's CPU profile of it.

use std::time::{Duration, Instant};

use e2e::ControlPlane;
use kube::Client;

use crate::api_profile::ApiServerProfiles;
use crate::server_cpu::{CpuReading, CpuUse};

/// What one phase took.
pub struct PhaseRun {
    pub time: Duration,
    /// This process's own CPU, seconds: the floor client's, in a floor's phase.
    pub client_cpu: f64,
    pub servers: CpuUse,
}

/// Measures the phases of one control plane.
pub struct Phases<'a> {
    plane: &'a ControlPlane,
    profiles: ApiServerProfiles,
}

impl<'a> Phases<'a> {
    pub fn new(plane: &'a ControlPlane, client: &Client) -> Phases<'a> {
        Phases {
            plane,
            profiles: ApiServerProfiles::from_env(client),
        }
    }

    /// Runs `work` as phase `name`.
    pub async fn measure(&self, name: &str, work: impl Future<Output = ()>) -> PhaseRun {
        let me = std::process::id();
        let profile = self.profiles.phase(name);
        let client_before = e2e::proc_stats::cpu_seconds(me);
        let servers_before = CpuReading::now(self.plane);
        let started = Instant::now();
        work.await;
        let run = PhaseRun {
            time: started.elapsed(),
            client_cpu: e2e::proc_stats::cpu_seconds(me) - client_before,
            servers: CpuReading::now(self.plane).since(&servers_before),
        };
        // After the readings: waiting for the profile's last slice is not part of the phase.
        profile.finish().await;
        run
    }
}

/// The mean time of a floor's two runs, the one this bench compares the host against.
pub fn mean_seconds(before: &PhaseRun, after: &PhaseRun) -> f64 {
    (before.time.as_secs_f64() + after.time.as_secs_f64()) / 2.0
}
