//! The guest's `log` import: messages routed to `tracing` with the guest's and parent's names,
//! each cut at 4 KiB, at most 256 per call, and rate-limited across all calls of the process
//! (a token bucket), so no guest can flood the host's logs however many parents there are.
//! Control characters (newlines, carriage returns, terminal escapes) are escaped, so a guest
//! cannot forge whole host log lines in the text format or drive the reader's terminal.

use std::sync::Mutex;
use std::time::Instant;

use super::GuestError;

/// A message longer than this is cut.
const MAX_MESSAGE_BYTES: usize = 4096;
/// Messages a single call may log; the rest are dropped with one warning.
const MAX_MESSAGES_PER_CALL: u32 = 256;
/// Sustained guest messages per second, all calls together.
const RATE_PER_SECOND: f64 = 200.0;
/// Messages that may be logged at once after a quiet period.
const BURST: f64 = 2000.0;

/// The process-wide token bucket for guest messages.
pub struct LogBudget {
    bucket: Mutex<(f64, Instant)>,
}

impl Default for LogBudget {
    fn default() -> Self {
        Self {
            bucket: Mutex::new((BURST, Instant::now())),
        }
    }
}

impl LogBudget {
    fn take(&self) -> bool {
        self.take_at(Instant::now())
    }

    fn take_at(&self, now: Instant) -> bool {
        let mut bucket = self.bucket.lock().expect("log budget lock poisoned");
        let (tokens, last) = *bucket;
        let refilled = (tokens
            + now.saturating_duration_since(last).as_secs_f64() * RATE_PER_SECOND)
            .min(BURST);
        let allowed = refilled >= 1.0;
        *bucket = (
            if allowed { refilled - 1.0 } else { refilled },
            now.max(last),
        );
        allowed
    }
}

/// Logging state of one guest call.
pub struct CallLog {
    pub guest_name: String,
    pub parent_key: String,
    pub budget: std::sync::Arc<LogBudget>,
    messages: u32,
    rate_limited: bool,
}

impl CallLog {
    pub fn new(guest_name: String, parent_key: String, budget: std::sync::Arc<LogBudget>) -> Self {
        Self {
            guest_name,
            parent_key,
            budget,
            messages: 0,
            rate_limited: false,
        }
    }

    /// Logs one guest message, or drops it (warning once per call) when over a limit.
    pub fn log(&mut self, level: tracing::Level, mut message: String) {
        let (guest, parent) = (&self.guest_name, &self.parent_key);
        self.messages = self.messages.saturating_add(1);
        if self.messages > MAX_MESSAGES_PER_CALL {
            if self.messages == MAX_MESSAGES_PER_CALL + 1 {
                tracing::warn!(%guest, %parent, "guest logged more than {MAX_MESSAGES_PER_CALL} messages in one call; dropping the rest");
            }
            return;
        }
        if !self.budget.take() {
            if !self.rate_limited {
                self.rate_limited = true;
                tracing::warn!(%guest, %parent, "guests log more than {RATE_PER_SECOND} messages per second; dropping messages");
            }
            return;
        }
        if message.len() > MAX_MESSAGE_BYTES {
            message.truncate(message.floor_char_boundary(MAX_MESSAGE_BYTES));
            message.push_str("… (truncated)");
        }
        let message = escape_controls(&message);
        // `tracing`'s macros take their level as a constant: one call site per level.
        match level {
            tracing::Level::TRACE => tracing::trace!(%guest, %parent, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(%guest, %parent, "{message}"),
            tracing::Level::INFO => tracing::info!(%guest, %parent, "{message}"),
            tracing::Level::WARN => tracing::warn!(%guest, %parent, "{message}"),
            _ => tracing::error!(%guest, %parent, "{message}"),
        }
    }
}

/// Most bytes of an error message a guest returns (`invalid-spec`, `transient`): it becomes the
/// parent's `Ready` message, an Event note (1 KiB at most) and a log field.
pub const MAX_GUEST_ERROR_BYTES: usize = 1024;

/// A guest's own `reconcile-error` (any contract version) as the host's error, its message
/// bounded once here: it reaches the status, an Event and the logs.
pub fn guest_failure(invalid_spec: bool, reason: &str) -> GuestError {
    let reason = guest_text(reason, MAX_GUEST_ERROR_BYTES);
    if invalid_spec {
        GuestError::InvalidSpec(reason)
    } else {
        GuestError::Transient(reason)
    }
}

/// Text a guest wrote, made safe to log and store: control characters escaped, cut to
/// `max_bytes` on a character boundary (`…` marks the cut).
pub fn guest_text(text: &str, max_bytes: usize) -> String {
    let escaped = escape_controls(text);
    if escaped.len() <= max_bytes {
        return escaped.into_owned();
    }
    let mut cut = escaped[..escaped.floor_char_boundary(max_bytes.saturating_sub(3))].to_string();
    cut.push('…');
    cut
}

/// `message` with every control character written as an escape (`\n`, `\u{1b}`); the rest,
/// including non-ASCII text, unchanged.
fn escape_controls(message: &str) -> std::borrow::Cow<'_, str> {
    if !message.chars().any(char::is_control) {
        return message.into();
    }
    message
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().collect()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn control_characters_are_escaped_so_no_line_can_be_forged() {
        let forged = "ok\n2026-12-01T00:00:00Z  INFO reconciler_host: leader elected\r\u{1b}[2J";
        let escaped = escape_controls(forged);
        assert!(!escaped.chars().any(char::is_control), "{escaped}");
        assert!(escaped.contains("ok\\n2026"), "{escaped}");
        assert_eq!(escape_controls("grün ✓"), "grün ✓");
    }

    #[test]
    fn guest_error_text_is_bounded_and_escaped() {
        let huge = "é".repeat(2 << 20);
        let cut = guest_text(&huge, MAX_GUEST_ERROR_BYTES);
        assert!(cut.len() <= MAX_GUEST_ERROR_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert_eq!(guest_text("a\nb", 64), "a\\nb");
    }

    #[test]
    fn the_budget_allows_a_burst_then_the_sustained_rate() {
        let budget = LogBudget::default();
        let start = Instant::now();
        let burst = (0..3000).filter(|_| budget.take_at(start)).count();
        assert_eq!(burst, BURST as usize);
        // One second later, about RATE_PER_SECOND more.
        let later = start + Duration::from_secs(1);
        let refilled = (0..1000).filter(|_| budget.take_at(later)).count();
        assert_eq!(refilled, RATE_PER_SECOND as usize);
    }

    #[test]
    fn a_call_stops_logging_after_its_cap() {
        let mut log = CallLog::new("g".into(), "ns/p".into(), Default::default());
        for _ in 0..(MAX_MESSAGES_PER_CALL + 10) {
            log.log(tracing::Level::DEBUG, "x".into());
        }
        // Only the capped messages took tokens from the shared budget.
        let left = log.budget.bucket.lock().unwrap().0;
        assert!(
            (BURST - left - MAX_MESSAGES_PER_CALL as f64).abs() < 1.0,
            "{left}"
        );
    }
}
