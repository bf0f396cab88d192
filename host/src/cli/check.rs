//! `reconciler-host check`: whether a guest file is usable by this host, and what it declares.
//! Exit code 0: usable; 1: not.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::display_gvk;
use crate::error_text::error_chain;
use crate::guest::{
    GuestEngine, GuestFile, GuestInterfaces, GuestLimits, GuestManifest, LoadError, WIT_PACKAGE,
};

/// `check`: prints the report; exit 0 usable, 1 not.
pub fn run(path: &Path) -> ExitCode {
    let engine = match GuestEngine::new(None) {
        Ok(engine) => engine,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            return ExitCode::FAILURE;
        }
    };
    match inspect(&engine, path) {
        Ok(report) => {
            print!("{}", report.to_text(path));
            if report.verdict.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            println!(
                "file:          {}\nverdict:       unusable: {}",
                path.display(),
                error_chain(&error)
            );
            ExitCode::FAILURE
        }
    }
}

/// What `check` found out about a guest file.
pub struct CheckReport {
    pub size: usize,
    pub digest: String,
    /// Time to compile the file to machine code (no compile cache).
    pub compile: Duration,
    pub interfaces: GuestInterfaces,
    /// The guest's self-description, or why linking or describing failed.
    pub verdict: Result<GuestManifest, LoadError>,
}

/// Reads, compiles (uncached, so the time is the real one), links and describes the guest.
///
/// # Errors
/// A [`LoadError`] when the file cannot even be compiled (unreadable, not WebAssembly, a core
/// module, not a valid component); later failures are in [`CheckReport::verdict`].
pub fn inspect(engine: &Arc<GuestEngine>, path: &Path) -> Result<CheckReport, LoadError> {
    let file = GuestFile::read(path)?;
    let started = Instant::now();
    let compiled = engine.compile(&file)?;
    let compile = started.elapsed();
    let interfaces = engine.interfaces(&compiled);
    let verdict = engine
        .link(&file, compiled, GuestLimits::default())
        .map(|guest| guest.manifest().clone());
    Ok(CheckReport {
        size: file.bytes.len(),
        digest: file.digest,
        compile,
        interfaces,
        verdict,
    })
}

impl CheckReport {
    /// The report as people read it.
    pub fn to_text(&self, path: &Path) -> String {
        let mut text = format!(
            "file:          {}\nsize:          {} bytes ({:.0} KiB; {:.0}% of a ConfigMap as base64)\ndigest:        {}\ncompile time:  {:.0} ms\nexports:       {}\nimports:       {}\n",
            path.display(),
            self.size,
            self.size as f64 / 1024.0,
            // binaryData is base64 (4 bytes per 3); a ConfigMap holds 1 MiB in all.
            (self.size as f64 * 4.0 / 3.0) / 1_048_576.0 * 100.0,
            self.digest,
            self.compile.as_secs_f64() * 1e3,
            list(&self.interfaces.exports),
            list(&self.interfaces.imports),
        );
        match &self.verdict {
            Ok(manifest) => {
                let children: Vec<String> = manifest.children.iter().map(display_gvk).collect();
                text.push_str(&format!(
                    "guest:         {} {}\nWIT package:   {WIT_PACKAGE}\nparent kind:   {}\nchild kinds:   {}\nverdict:       usable by this host\n",
                    manifest.name,
                    manifest.version,
                    display_gvk(&manifest.parent),
                    if children.is_empty() { "(none)".into() } else { children.join(", ") },
                ));
            }
            Err(error) => {
                text.push_str(&format!(
                    "verdict:       unusable: {}\n",
                    error_chain(error)
                ));
            }
        }
        text
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(", ")
    }
}
