//! `reconciler-host check`: whether a guest file, or every guest in a folder, would serve in a
//! host run with the same flags, and what each declares. The verdict comes from the host's own
//! admission (`guests/admission.rs`): a folder's guests are judged in name order against the ones
//! before them, as `run --guests` judges them. Exit code 0: every guest usable; 1: not; 2: a flag
//! cannot work.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::CheckArgs;
use crate::cluster::display_gvk;
use crate::error_text::error_chain;
use crate::guests::folder::{self, MAX_GUESTS};
use crate::guests::settings as guest_settings;
use crate::guests::{GuestSpec, HostRules, Refusal, Roster, SettingsError};
use crate::sandbox::{
    GuestEngine, GuestFile, GuestInterfaces, GuestLimits, LoadError, LoadedGuest, describe_config,
};

/// `check`: prints the report of a guest file, or of every `*.wasm` in a folder; exit 0 when
/// every guest is usable, 1 when one is not, 2 when a flag cannot work.
pub fn run(args: &CheckArgs) -> ExitCode {
    let rules = match args.rules.validate() {
        Ok(rules) => rules,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let engine = match GuestEngine::new(None) {
        Ok(engine) => engine,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            return ExitCode::FAILURE;
        }
    };
    let path = args.guest.as_path();
    let roster = Roster::default();
    if !path.is_dir() {
        let (text, usable) = check_guest(
            &engine,
            &rules,
            &roster,
            path,
            None,
            args.guest_config.clone().filter(|c| c != "null"),
        );
        print!("{text}");
        return exit_code(usable);
    }
    if args.guest_config.is_some() {
        eprintln!(
            "error: --guest-config is for one guest file; each guest of a folder takes its \
             configuration from `config` in NAME.yaml"
        );
        return ExitCode::from(2);
    }
    match check_folder(&engine, &rules, path) {
        Ok((text, usable)) => {
            print!("{text}");
            exit_code(usable)
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

fn exit_code(usable: bool) -> ExitCode {
    if usable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One guest's report and whether it would serve: read (unless the folder listing found it
/// unreadable), compiled, described, then its settings, its configuration (`config_flag`, or
/// the settings' `config`) and admission beside the guests before it in `roster`.
fn check_guest(
    engine: &Arc<GuestEngine>,
    rules: &HostRules,
    roster: &Roster,
    path: &Path,
    unreadable: Option<&str>,
    config_flag: Option<String>,
) -> (String, bool) {
    let unusable = |reason: String| {
        (
            format!(
                "file:          {}\nverdict:       unusable: {reason}\n",
                path.display()
            ),
            false,
        )
    };
    if let Some(reason) = unreadable {
        return unusable(reason.to_owned());
    }
    let report = match inspect(engine, path, rules.max_file_bytes) {
        Ok(report) => report,
        Err(error) => return unusable(error_chain(&error)),
    };
    let mut text = report.to_text(path);
    let guest = match report.verdict {
        Ok(guest) => guest,
        Err(error) => {
            text.push_str(&format!(
                "verdict:       unusable: {}\n",
                error_chain(&error)
            ));
            return (text, false);
        }
    };
    let verdict = GuestSpec::load(path, rules)
        .and_then(|spec| spec.with_config_flag(config_flag))
        .map_err(Refused::from)
        .and_then(|spec| {
            let settings = &spec.settings;
            text.push_str(&format!(
                "settings:      {}{}\n",
                guest_settings::summary(settings),
                settings
                    .file
                    .as_ref()
                    .map(|file| format!(" (from {})", file.display()))
                    .unwrap_or_default()
            ));
            text.push_str(&format!(
                "config:        {}\n",
                describe_config(spec.config())
            ));
            let guest = guest.configured(spec.config())?;
            roster.admit(rules, &spec.name, guest.manifest(), settings)?;
            Ok(())
        });
    match verdict {
        Ok(()) => {
            text.push_str("verdict:       usable by this host\n");
            (text, true)
        }
        Err(Refused::Admission(refusal)) => {
            text.push_str(&format!(
                "verdict:       refused: {}\n",
                error_chain(&refusal)
            ));
            (text, false)
        }
        Err(Refused::Load(error)) => {
            text.push_str(&format!(
                "verdict:       unusable: {}\n",
                error_chain(&error)
            ));
            (text, false)
        }
    }
}

/// Why a guest that compiled and described itself would not serve.
#[derive(Debug, thiserror::Error)]
enum Refused {
    /// Its settings, or admission beside the other guests.
    #[error(transparent)]
    Admission(#[from] Refusal),
    /// It refused its configuration (with its own message), or the call failed.
    #[error(transparent)]
    Load(#[from] LoadError),
}

impl From<SettingsError> for Refused {
    fn from(error: SettingsError) -> Self {
        Self::Admission(error.into())
    }
}

/// Every guest in `folder`, in name order: each one's report, then a summary.
fn check_folder(
    engine: &Arc<GuestEngine>,
    rules: &HostRules,
    folder: &Path,
) -> std::io::Result<(String, bool)> {
    let listing = folder::list(folder)?;
    let roster = Roster::default();
    let mut text = String::new();
    let mut usable_count = 0;
    for entry in &listing.guests {
        let (report, usable) = check_guest(
            engine,
            rules,
            &roster,
            &entry.path,
            entry.unreadable.as_deref(),
            None,
        );
        usable_count += usize::from(usable);
        text.push_str(&report);
        text.push('\n');
    }
    let all = listing.guests.len() + listing.over_limit;
    if listing.over_limit > 0 {
        text.push_str(&format!(
            "refused:       {} more guest files: a host serves at most {MAX_GUESTS}\n",
            listing.over_limit
        ));
    }
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
    /// The linked guest (not configured yet), or why linking or describing failed.
    pub verdict: Result<LoadedGuest, LoadError>,
}

/// Reads, compiles (uncached, so the time is the real one), links and describes the guest.
///
/// # Errors
/// A [`LoadError`] when the file cannot even be compiled (unreadable, not WebAssembly, a core
/// module, not a valid component); later failures are in [`CheckReport::verdict`].
pub fn inspect(
    engine: &Arc<GuestEngine>,
    path: &Path,
    max_file_bytes: u64,
) -> Result<CheckReport, LoadError> {
    let file = GuestFile::read_capped(path, max_file_bytes)?;
    let started = Instant::now();
    let compiled = engine.compile(&file)?;
    let compile = started.elapsed();
    let interfaces = engine.interfaces(&compiled);
    let verdict = engine.link(&file, compiled, GuestLimits::default());
    Ok(CheckReport {
        size: file.bytes.len(),
        digest: file.digest,
        compile,
        interfaces,
        verdict,
    })
}

impl CheckReport {
    /// The report as people read it, up to the verdict (which the caller adds).
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
        if let Ok(guest) = &self.verdict {
            let manifest = guest.manifest();
            let children: Vec<String> = manifest.children.iter().map(display_gvk).collect();
            let related: Vec<String> = manifest.related.iter().map(display_gvk).collect();
            text.push_str(&format!(
                "guest:         {} {}\nWIT package:   {}\nparent kind:   {}\nchild kinds:   {}\nrelated kinds: {}\n",
                manifest.name,
                manifest.version,
                manifest.contract.package(),
                display_gvk(&manifest.parent),
                if children.is_empty() {
                    "(none)".into()
                } else {
                    children.join(", ")
                },
                if related.is_empty() {
                    "(none)".into()
                } else {
                    related.join(", ")
                },
            ));
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
