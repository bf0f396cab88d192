//! The flags of rollback by itself (`--rollback-*`), validated into the rule the host applies
//! after every hot swap (`reconcile/rollback.rs`, where the rule is explained).

use std::time::Duration;

use clap::Args;

use crate::reconcile::rollback::RollbackRule;

/// Flags of the rollback rule.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// How long after a hot swap the new guest is watched and rolled back to the previous one if
    /// it is clearly worse on the same parents (see docs/rolling-out.md); 0s: never roll back.
    #[arg(long, env = "RECONCILER_ROLLBACK_WINDOW", default_value = "10m", value_parser = humantime::parse_duration)]
    pub rollback_window: Duration,
    /// Fewest parents that must newly fail with the new guest (failing where they did not with
    /// the previous one) for it to be rolled back.
    #[arg(long, env = "RECONCILER_ROLLBACK_MIN_FAILURES", default_value_t = 5)]
    pub rollback_min_failures: usize,
    /// Smallest share (0 to 1) of the parents reconciled with the new guest that must newly fail
    /// for it to be rolled back.
    #[arg(
        long,
        env = "RECONCILER_ROLLBACK_FAILURE_RATIO",
        default_value_t = 0.25
    )]
    pub rollback_failure_ratio: f64,
}

/// A rollback flag that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RollbackError {
    #[error(
        "--rollback-min-failures must be at least 1, not 0 (to never roll back, set --rollback-window 0s)"
    )]
    MinFailures,
    #[error("--rollback-failure-ratio must be above 0 and at most 1, not {0}")]
    Ratio(String),
}

impl RollbackArgs {
    /// The rule these flags say.
    ///
    /// # Errors
    /// The first flag whose value cannot work.
    pub fn validate(&self) -> Result<RollbackRule, RollbackError> {
        if self.rollback_min_failures == 0 {
            return Err(RollbackError::MinFailures);
        }
        let ratio = self.rollback_failure_ratio;
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(RollbackError::Ratio(ratio.to_string()));
        }
        Ok(RollbackRule {
            window: self.rollback_window,
            min_failures: self.rollback_min_failures,
            failure_ratio: ratio,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(min_failures: usize, ratio: f64) -> RollbackArgs {
        RollbackArgs {
            rollback_window: Duration::from_secs(60),
            rollback_min_failures: min_failures,
            rollback_failure_ratio: ratio,
        }
    }

    #[test]
    fn the_rule_needs_a_failure_and_a_ratio_within_zero_and_one() {
        assert_eq!(args(0, 0.5).validate(), Err(RollbackError::MinFailures));
        assert_eq!(
            args(1, 0.0).validate(),
            Err(RollbackError::Ratio("0".into()))
        );
        assert_eq!(
            args(1, 1.5).validate(),
            Err(RollbackError::Ratio("1.5".into()))
        );
        assert_eq!(
            args(1, f64::NAN).validate(),
            Err(RollbackError::Ratio("NaN".into()))
        );
        assert_eq!(args(3, 1.0).validate().unwrap().min_failures, 3);
    }
}
