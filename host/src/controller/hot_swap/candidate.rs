//! The guest's shadow candidate (`NAME.candidate.wasm` beside `NAME.wasm`), followed by the hot
//! swap: each time the hot swap looks at the guest's files it looks at the candidate's too, and
//! loads, admits and resolves a new candidate exactly as it would a new guest, beside the active
//! guest and without taking its kinds from it (`Roster::check`). An admitted candidate goes into
//! the controller's candidate slot and the sweep sends every parent to be reconciled, so each is
//! judged once; a refused one is said once and leaves no candidate. Promotion is replacing the
//! guest's file with the candidate's: the hot swap swaps it in, and the candidate, gone or now
//! the active code, leaves the slot.

use std::sync::Arc;

use tracing::{info, warn};

use super::{HotSwap, NEW_KINDS_SYNC_TIMEOUT, SwapError};
use crate::cluster::display_gvk;
use crate::error_text::error_chain;
use crate::guests::candidate_path;
use crate::reconcile::ActiveGuest;
use crate::sandbox::GuestFile;

/// What a candidate was last judged on: its digest and configuration, and the active guest's
/// digest (a new active guest judges the same candidate again).
pub(super) type CandidateKey = (String, String, String);

/// Who the candidate's child kinds are watched for in the shared caches, beside `user`, the
/// active guest's controller.
pub(in crate::controller) fn candidate_user(user: &str) -> String {
    format!("{user} (shadow candidate)")
}

impl HotSwap {
    /// Brings the candidate slot in line with the candidate file: loads a new one, drops one
    /// that went or became the active code, says once why one is refused.
    pub(super) async fn follow_candidate(&self) {
        let path = candidate_path(&self.spec.path);
        let active = self.slot.current();
        if !path.exists() {
            *self.candidate_seen.lock().expect("lock") = None;
            self.retire_candidate(&active, "the candidate file is gone");
            return;
        }
        let cap = self.rules.max_file_bytes;
        let (spec, rules) = (self.spec.clone(), self.rules.clone());
        let read = tokio::task::spawn_blocking(move || {
            let file = GuestFile::read_capped(&path, cap)?;
            let config = spec
                .config_now(&rules)
                .map_err(|error| SwapError::Refused(error.into()))?;
            Ok::<_, SwapError>((file, config))
        })
        .await
        .map_err(SwapError::Task)
        .and_then(|read| read);
        let (file, config) = match read {
            Ok(read) => read,
            Err(error) => {
                let key = (
                    String::new(),
                    error.to_string(),
                    active.guest.digest().to_owned(),
                );
                self.refuse_candidate(&active, key, &error);
                return;
            }
        };
        let key = (
            file.digest.clone(),
            config.clone(),
            active.guest.digest().to_owned(),
        );
        if self.candidate_seen.lock().expect("lock").as_ref() == Some(&key) {
            return;
        }
        if file.digest == active.guest.digest() && config == active.guest.config() {
            *self.candidate_seen.lock().expect("lock") = Some(key);
            self.retire_candidate(&active, "the candidate is the active guest now");
            return;
        }
        match self.load_candidate(file, config, &active).await {
            Ok(candidate) => {
                *self.candidate_seen.lock().expect("lock") = Some(key);
                info!(
                    active = %active.summary(),
                    candidate = %candidate.summary(),
                    "shadow candidate admitted: it decides beside the active guest on every reconcile, and nothing it decides is written; judging every parent"
                );
                let kinds = candidate.child_kinds.clone();
                self.candidate.replace(Some(candidate));
                self.children
                    .retain_kinds(&candidate_user(&active.user()), &kinds);
                self.sweep.request();
            }
            Err(error) => self.refuse_candidate(&active, key, &error),
        }
    }

    /// Says once why the candidate `key` is refused, and leaves no candidate.
    fn refuse_candidate(&self, active: &ActiveGuest, key: CandidateKey, error: &SwapError) {
        let mut seen = self.candidate_seen.lock().expect("lock");
        if seen.as_ref() == Some(&key) {
            return;
        }
        *seen = Some(key);
        drop(seen);
        warn!(
            path = %candidate_path(&self.spec.path).display(),
            active = %active.summary(),
            error = %error_chain(error),
            "refused the shadow candidate; the active guest keeps serving, with no candidate beside it"
        );
        self.retire_candidate(active, "refused");
    }

    /// Empties the candidate slot and stops the watches only the candidate needed.
    fn retire_candidate(&self, active: &ActiveGuest, why: &str) {
        if let Some(previous) = self.candidate.replace(None) {
            info!(candidate = %previous.guest.summary(), %why, "the shadow candidate left");
        }
        self.children
            .retain_kinds(&candidate_user(&active.user()), &[]);
    }

    /// Loads and checks a candidate as [`HotSwap::load_and_check`] does a new guest, without
    /// taking the active guest's place in the roster.
    async fn load_candidate(
        &self,
        file: GuestFile,
        config: String,
        active: &ActiveGuest,
    ) -> Result<ActiveGuest, SwapError> {
        let guest = self.load(file, config).await?;
        let (candidate_parent, active_parent) =
            (&guest.manifest().parent, &active.guest.manifest().parent);
        if candidate_parent != active_parent {
            return Err(SwapError::CandidateParentKind {
                candidate: display_gvk(candidate_parent),
                active: display_gvk(active_parent),
            });
        }
        self.roster.check(
            &self.rules,
            &self.spec.name,
            guest.manifest(),
            &self.spec.settings,
        )?;
        let child_kinds = self
            .resolve(&guest.manifest().children, &active.child_kinds)
            .await?;
        super::scopes::check(
            &self.parent_kind,
            &child_kinds,
            &self.spec.settings.allowed_child_kinds,
            self.namespace.as_deref(),
        )?;
        self.children
            .watch_kinds(
                &candidate_user(&active.user()),
                &child_kinds,
                NEW_KINDS_SYNC_TIMEOUT,
            )
            .await
            .map_err(SwapError::Sync)?;
        let related_kinds = self
            .resolve(&guest.manifest().related, &active.related_kinds)
            .await?;
        Ok(ActiveGuest::new(
            Arc::new(guest),
            child_kinds,
            related_kinds,
        ))
    }
}
