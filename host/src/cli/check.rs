//! `reconciler-host check`: whether a guest file, or every guest in a folder, is usable by this
//! host, and what each declares. Exit code 0: usable; 1: not.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::{KindAllowlist, display_gvk};
use crate::error_text::error_chain;
use crate::guest::{
    GuestEngine, GuestFile, GuestInterfaces, GuestLimits, GuestManifest, LoadError, WIT_PACKAGE,
};
use crate::reconcilers::settings as guest_settings;

/// `check`: prints the report of a guest file, or of every `*.wasm` in a folder; exit 0 when
/// every guest is usable, 1 when one is not.
pub fn run(path: &Path) -> ExitCode {
    let engine = match GuestEngine::new(None) {
        Ok(engine) => engine,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            return ExitCode::FAILURE;
        }
    };
    if !path.is_dir() {
        let (text, usable) = check_file(&engine, path).text(path);
        print!("{text}");
        return if usable {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    match check_folder(&engine, path) {
        Ok(text) => {
            print!("{}", text.0);
            if text.1 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!(
                "error: cannot read the guest folder {}: {error}",
                path.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// What a folder adds to a usable guest's check: its settings file (`NAME.yaml`, see
/// `reconcilers/settings.rs`), whose allowed child kinds the guest must keep to, and that no guest
/// earlier in name order reconciles the same parent kind. Appends the settings to `report`.
fn check_in_folder(
    path: &Path,
    manifest: &GuestManifest,
    parents: &mut Vec<(String, PathBuf)>,
    report: &mut String,
) -> Result<(), String> {
    let settings = guest_settings::load(path, GuestLimits::default(), &KindAllowlist::default())
        .map_err(|error| error_chain(&error))?;
    report.push_str(&format!(
        "settings:      {}{}\n",
        guest_settings::summary(&settings),
        settings
            .file
            .as_ref()
            .map(|file| format!(" (from {})", file.display()))
            .unwrap_or_default()
    ));
    settings
        .allowed_child_kinds
        .check(&manifest.children)
        .map_err(|reason| format!("{reason} (its settings file)"))?;
    let parent = display_gvk(&manifest.parent);
    if let Some((_, first)) = parents.iter().find(|(kind, _)| *kind == parent) {
        return Err(format!("{} already reconciles {parent}", first.display()));
    }
    parents.push((parent, path.to_path_buf()));
    Ok(())
}

/// One file's outcome: a report, or why it could not even be compiled.
enum Checked {
    Report(CheckReport),
    Unusable(LoadError),
}

impl Checked {
    /// The text for `path` and whether the guest is usable.
    fn text(&self, path: &Path) -> (String, bool) {
        match self {
            Checked::Report(report) => (report.to_text(path), report.verdict.is_ok()),
            Checked::Unusable(error) => (
                format!(
                    "file:          {}\nverdict:       unusable: {}\n",
                    path.display(),
                    error_chain(error)
                ),
                false,
            ),
        }
    }
}

fn check_file(engine: &Arc<GuestEngine>, path: &Path) -> Checked {
    match inspect(engine, path) {
        Ok(report) => Checked::Report(report),
        Err(error) => Checked::Unusable(error),
    }
}

/// Every `*.wasm` in `folder`, in name order: each one's report, then a summary. Two guests for
/// one parent kind: the first in name order is usable, the later one refused, as a host serving
/// the folder would refuse it.
fn check_folder(engine: &Arc<GuestEngine>, folder: &Path) -> std::io::Result<(String, bool)> {
    let files = crate::reconcilers::guest_files(folder)?;
    let mut text = String::new();
    let mut parents: Vec<(String, PathBuf)> = Vec::new();
    let mut usable_count = 0;
    for path in &files {
        let checked = check_file(engine, path);
        let (mut report, mut usable) = checked.text(path);
        if let Checked::Report(CheckReport {
            verdict: Ok(manifest),
            ..
        }) = &checked
            && let Err(refusal) = check_in_folder(path, manifest, &mut parents, &mut report)
        {
            report.push_str(&format!("in a folder:   refused: {refusal}\n"));
            usable = false;
        }
        usable_count += usize::from(usable);
        text.push_str(&report);
        text.push('\n');
    }
    let all = files.len();
    text.push_str(&format!(
        "folder:        {}: {all} guest{}, {usable_count} usable\n",
        folder.display(),
        if all == 1 { "" } else { "s" }
    ));
    Ok((text, all > 0 && usable_count == all))
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
