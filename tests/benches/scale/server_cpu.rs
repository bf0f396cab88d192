//! Where the CPU went in a phase: the API server's, etcd's, and how busy the whole machine was.
//! With two cores shared by everything, a phase whose machine is ~100 % busy is bound by
//! throughput, and the API server's CPU per phase says how much work each client gave it.

use e2e::proc_stats::{cpu_seconds, machine_cpu_seconds};

/// CPU counters at one moment.
pub struct CpuReading {
    api_server: f64,
    etcd: f64,
    machine_busy: f64,
    machine_all: f64,
}

/// CPU used between two readings.
pub struct CpuUse {
    pub api_server: f64,
    pub etcd: f64,
    /// Busy share of all cores, 0–1.
    pub machine_busy: f64,
}

impl CpuReading {
    pub fn now(plane: &e2e::ControlPlane) -> CpuReading {
        let of = |name: &str| plane.pid(name).map_or(0.0, cpu_seconds);
        let (machine_busy, machine_all) = machine_cpu_seconds();
        CpuReading {
            api_server: of("kube-apiserver"),
            etcd: of("etcd"),
            machine_busy,
            machine_all,
        }
    }

    pub fn since(&self, earlier: &CpuReading) -> CpuUse {
        CpuUse {
            api_server: self.api_server - earlier.api_server,
            etcd: self.etcd - earlier.etcd,
            machine_busy: (self.machine_busy - earlier.machine_busy)
                / (self.machine_all - earlier.machine_all).max(f64::EPSILON),
        }
    }
}

impl std::fmt::Display for CpuUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "API server {:.1} s, etcd {:.1} s; machine {:.0} % busy",
            self.api_server,
            self.etcd,
            self.machine_busy * 100.0
        )
    }
}
