//! The API server's own count of the requests that change something, from its `/metrics`
//! (`apiserver_request_total`): how a test shows that a tool wrote nothing, whoever would have
//! written.

/// The requests that change objects of `resources` (plural names: `deployments`), counted since
/// the API server started, as `(persisted, dry runs)`.
pub async fn write_requests(client: &kube::Client, resources: &[&str]) -> (u64, u64) {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(request).await.expect("/metrics");
    let (mut persisted, mut dry_runs) = (0, 0);
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|pair| pair.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let writes = [
            "POST",
            "PUT",
            "PATCH",
            "APPLY",
            "DELETE",
            "DELETECOLLECTION",
        ];
        if !writes.contains(&label("verb").as_str())
            || !resources.contains(&label("resource").as_str())
        {
            continue;
        }
        let count = value.trim().parse::<f64>().unwrap_or_default() as u64;
        if label("dry_run").contains("All") {
            dry_runs += count;
        } else {
            persisted += count;
        }
    }
    (persisted, dry_runs)
}
