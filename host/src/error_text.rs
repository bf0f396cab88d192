//! Errors as one log line: an error and its causes, an API server error without kube's debug dump,
//! several failures summarised.

/// An error and its causes on one line (`error: cause: cause`), for logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A Kubernetes API error in one short line: the server's message and status code, without the
/// debug dump of the whole Status object kube's `Display` adds.
pub fn api_error_text(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => error_chain(other),
    }
}

/// Several failures in one line: the first few in full, then how many more.
pub fn summarize_failures(failures: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = failures[..failures.len().min(SHOWN)].join("; ");
    if failures.len() > SHOWN {
        text.push_str(&format!("; and {} more", failures.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn many_failures_are_summarized() {
        let failures: Vec<String> = (1..=5).map(|n| format!("f{n}")).collect();
        assert_eq!(
            super::summarize_failures(&failures),
            "f1; f2; f3; and 2 more"
        );
        assert_eq!(super::summarize_failures(&failures[..2]), "f1; f2");
    }
}
