//! An API server in-process, for the I/O layer's own logic (retries, budgets, the executor's
//! loop): kube's real Client sends through a Service that answers from a script and keeps
//! every request it was sent. What only a real server shows is tested against one (tests/it).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use super::Cluster;

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A status and a JSON body.
    Json(u16, Value),
    /// No answer, ever: the attempt's timeout has to cut it.
    Silence,
}

impl Answer {
    /// The API server's Status for a failure.
    pub fn status(code: u16, reason: &str, message: &str) -> Self {
        Answer::Json(
            code,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "reason": reason, "message": message, "code": code}),
        )
    }

    /// A workflow's metadata, as a metadata-only read or patch answers.
    pub fn metadata(labels: Value, annotations: Value) -> Self {
        Answer::Json(
            200,
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                   "metadata": {"name": "play", "namespace": "ns", "resourceVersion": "7",
                                "labels": labels, "annotations": annotations}}),
        )
    }
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub body: Value,
}

#[derive(Default)]
pub struct Server {
    script: Mutex<VecDeque<Answer>>,
    seen: Mutex<Vec<Seen>>,
}

impl Server {
    /// What the server was sent, /readyz aside.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn answer(&self, request: Request<kube::client::Body>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_string();
        // A server that is up: what the retry policy asks after a 401 or 403.
        if path == "/readyz" {
            return respond(200, Bytes::from_static(b"ok"));
        }
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let header = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Seen {
                method: parts.method.to_string(),
                path: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or(path),
                content_type: header("content-type"),
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            });
        let next = self
            .script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        match next {
            Some(Answer::Json(code, value)) => respond(code, Bytes::from(value.to_string())),
            Some(Answer::Silence) => std::future::pending().await,
            None => panic!(
                "the script has no answer left for {} {}",
                parts.method, parts.uri
            ),
        }
    }
}

fn respond(code: u16, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = http::StatusCode::from_u16(code).unwrap();
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A Cluster whose every request the returned server answers, in the order of `script`, with
/// `timeout` as each operation's budget.
pub fn cluster(script: Vec<Answer>, timeout: Duration) -> (Cluster, Arc<Server>) {
    let server = Arc::new(Server {
        script: Mutex::new(script.into()),
        seen: Mutex::default(),
    });
    let answering = server.clone();
    let service = tower::service_fn(move |request| {
        let server = answering.clone();
        async move { Ok::<_, std::convert::Infallible>(server.answer(request).await) }
    });
    let client = kube::Client::new(service, "ns");
    let config = kube::Config::new("http://api.test".parse().unwrap());
    (Cluster::with_client(client, config, timeout), server)
}
