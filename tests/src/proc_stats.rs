//! What a process costs, read from /proc: resident memory now and at its peak, CPU time used.

use std::fs;

/// The machine's CPU model (`model name` in /proc/cpuinfo), printed beside every benchmark
/// result: the same benchmark gives different ratios on different CPUs.
pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Resident memory of `pid`, in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:") * 1024
}

/// The most resident memory `pid` has had, in bytes (`VmHWM`).
pub fn peak_rss_bytes(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:") * 1024
}

/// User plus system CPU time `pid` has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at the state, field 3;
    // utime and stime are fields 14 and 15.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / ticks_per_second()
}

/// CPU time of the whole machine since boot, in seconds: (busy, busy + idle), summed over all
/// cores (`/proc/stat`). Two readings give how saturated the machine was between them.
pub fn machine_cpu_seconds() -> (f64, f64) {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let idle: u64 = ticks.iter().skip(3).take(2).sum();
    let all: u64 = ticks.iter().take(8).sum();
    let per_second = ticks_per_second();
    ((all - idle) as f64 / per_second, all as f64 / per_second)
}

/// The unit of /proc's CPU times.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

fn status_kib(pid: u32, field: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_model_is_read_from_proc() {
        let model = cpu_model();
        assert!(!model.is_empty() && model != "unknown", "{model:?}");
        assert!(!model.contains(':'), "{model:?}");
    }

    #[test]
    fn this_process_has_memory_and_uses_cpu() {
        let pid = std::process::id();
        let started = cpu_seconds(pid);
        let (machine_busy_before, machine_all_before) = machine_cpu_seconds();
        let mut x = 0u64;
        let until = std::time::Instant::now() + std::time::Duration::from_millis(300);
        while std::time::Instant::now() < until {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(cpu_seconds(pid) > started, "300 ms of spinning counted");
        assert!(rss_bytes(pid) > 0);
        assert!(peak_rss_bytes(pid) >= rss_bytes(pid));
        let (busy, all) = machine_cpu_seconds();
        let busy = busy - machine_busy_before;
        let all = all - machine_all_before;
        // The spinning alone kept one core busy for 300 ms (counted in 10 ms ticks).
        assert!(busy >= 0.25, "machine busy {busy} s while this test spun");
        // On a machine busy on every core the two deltas are the same count of ticks, and the
        // differences of large second counts round apart by far less than one 10 ms tick.
        assert!(
            all + 0.001 >= busy,
            "busy {busy} s within {all} s of all cores"
        );
    }
}
