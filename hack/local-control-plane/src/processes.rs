//! Free ports and one-shot commands.

use std::net::TcpListener;
use std::process::Command;

use anyhow::{Context, bail};

/// A port free now, from below the kernel's ephemeral range (32768 and up by default): a port
/// the kernel handed out (`bind` to port 0) can be taken by any outgoing connection in the moment
/// between this check and the server's own `bind`.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    // Spread processes (test binaries, the bench's helper) apart; step through within one.
    let start = std::process::id().wrapping_mul(7919);
    for _ in 0..COUNT {
        let step = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = (FIRST + start.wrapping_add(step.wrapping_mul(101)) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port in {FIRST}-{}", FIRST + COUNT - 1)
}

pub(crate) fn run_quietly(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
