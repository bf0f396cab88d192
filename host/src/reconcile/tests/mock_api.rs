//! A mocked API server for the reconcile tests: a `kube::Client` over a `tower::service_fn` that
//! records every request and answers it as the test says (as controller-rs tests its reconcile,
//! without a cluster). What the reconcile *asks* is the subject of these tests; that the answers
//! are the API server's is proven by the end-to-end tests against a real one.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use kube::client::Body;
use serde_json::{Value, json};

/// One request the reconcile made.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The URL path, e.g. `/apis/apps/v1/namespaces/ns/deployments/demo-hat`.
    pub path: String,
    pub body: Value,
}

impl Request {
    /// A server-side apply of a child (not the parent's status).
    pub fn is_child_apply(&self) -> bool {
        self.method == "PATCH" && !self.path.ends_with("/status") && !self.is_event()
    }

    pub fn is_status_write(&self) -> bool {
        self.method == "PATCH" && self.path.ends_with("/status")
    }

    pub fn is_delete(&self) -> bool {
        self.method == "DELETE"
    }

    pub fn is_event(&self) -> bool {
        self.path.contains("/events.k8s.io/")
    }

    /// The resource plural and name: `deployments/demo-hat`.
    pub fn target(&self) -> String {
        let mut parts = self.path.rsplit('/');
        let name = parts.next().unwrap_or_default();
        let plural = parts.next().unwrap_or_default();
        format!("{plural}/{name}")
    }
}

/// How the mock answers: an HTTP status and a JSON body.
pub type Answer = (u16, Value);

/// The requests made so far, shared with the client's service.
#[derive(Clone, Default)]
pub struct Requests(Arc<Mutex<Vec<Request>>>);

impl Requests {
    /// Every request made so far, and forgets them.
    pub fn take(&self) -> Vec<Request> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// A client whose requests go to `answer`, and the record of them.
pub fn client(
    answer: impl Fn(&Request) -> Answer + Send + Sync + 'static,
) -> (kube::Client, Requests) {
    let requests = Requests::default();
    let answer = Arc::new(answer);
    let recorded = requests.clone();
    let service = tower::service_fn(move |request: http::Request<Body>| {
        let (answer, recorded) = (Arc::clone(&answer), recorded.clone());
        async move {
            let (parts, body) = request.into_parts();
            let bytes = body
                .collect_bytes()
                .await
                .expect("request bodies are readable");
            let request = Request {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let (status, body) = answer(&request);
            recorded.0.lock().unwrap().push(request);
            let response = http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(
                    serde_json::to_vec(&body).expect("JSON serializes"),
                ))
                .expect("a valid response");
            Ok::<_, Infallible>(response)
        }
    });
    (kube::Client::new(service, "default"), requests)
}

/// What a working API server answers: the object written, with a UID and resource version as
/// the server would add; a Status for a delete.
pub fn accept(request: &Request) -> Answer {
    match request.method.as_str() {
        "DELETE" => (
            200,
            json!({ "kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200 }),
        ),
        "POST" => (201, request.body.clone()),
        _ => {
            let mut object = request.body.clone();
            object["metadata"]["uid"] = json!(format!("uid-{}", request.target()));
            object["metadata"]["resourceVersion"] = json!("1");
            (200, object)
        }
    }
}

/// An API server error, as Kubernetes writes one.
pub fn failure(code: u16, message: &str) -> Answer {
    (
        code,
        json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": message, "reason": "InternalError", "code": code,
        }),
    )
}
