//! The API server's own count of the requests made to it, by verb and resource.

use std::collections::BTreeMap;

use kube::Client;

/// The API server's request counters by verb (its `apiserver_request_total`), for the kinds the
/// host touches.
pub async fn request_counts(client: &Client) -> BTreeMap<String, f64> {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(request).await.unwrap();
    let mut counts = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let label = |name: &str| {
            line.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default()
                .to_string()
        };
        let resource = label("resource");
        if !matches!(
            resource.as_str(),
            "deployments" | "services" | "configmaps" | "potatoheads" | "events"
        ) {
            continue;
        }
        let subresource = label("subresource");
        let key = if subresource.is_empty() {
            format!("{} {resource}", label("verb"))
        } else {
            format!("{} {resource}/{subresource}", label("verb"))
        };
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *counts.entry(key).or_insert(0.0) += value;
    }
    counts
}
