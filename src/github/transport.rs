//! The HTTP under GitHub's client: hyper and rustls with ring, as the Kubernetes client links
//! them, behind a trait so that the client's own logic (pages, ETags, limits, retries) is tested
//! in-process against answers of any shape.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderMap;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::GitHub;
use super::limits::Attempt;
use crate::budget::CONNECT_TIMEOUT;
use crate::error::{Error, Result};

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(super) type Body = UnsyncBoxBody<Bytes, BoxError>;
pub(super) type Reply = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

/// Sends one request; the answer's body is read by the client, under its own time limit.
pub(super) trait Transport: Send + Sync {
    fn send(&self, request: Request<Full<Bytes>>) -> Reply;
}

/// The most of one answer read: GitHub's largest page (100 pull requests) is a few MiB. An
/// answer past it is no page of GitHub's, and is refused rather than held in memory.
const ANSWER_LIMIT: usize = 16 << 20;

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

impl Transport for HttpClient {
    fn send(&self, request: Request<Full<Bytes>>) -> Reply {
        let answer = self.request(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| body.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
        })
    }
}

/// The client for `api_url`: https with the system's CAs, or plain http (a test's server).
pub(super) fn https(api_url: &str) -> Result<HttpClient> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.enforce_http(false);
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::failed(format!("cannot set up TLS for GitHub: {e}")))?
    .with_root_certificates(trusted_roots(api_url)?)
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

impl GitHub {
    /// Sends one request and reads its answer, within `timeout` each. A failure is worth trying
    /// again, but for an answer larger than any of GitHub's.
    pub(super) async fn send(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
        what: &str,
    ) -> std::result::Result<(StatusCode, HeaderMap, String), Attempt> {
        let seconds = timeout.as_secs_f32().ceil();
        let response = match tokio::time::timeout(timeout, self.http.send(request)).await {
            Err(_) => {
                return Err(Attempt::Transient(format!(
                    "GitHub did not answer {what} within {seconds}s"
                )));
            }
            Ok(Err(err)) => {
                return Err(Attempt::Transient(format!(
                    "cannot reach GitHub for {what}: {}",
                    error_chain(&*err)
                )));
            }
            Ok(Ok(response)) => response,
        };
        let (parts, body) = response.into_parts();
        match tokio::time::timeout(timeout, Limited::new(body, ANSWER_LIMIT).collect()).await {
            Ok(Ok(body)) => Ok((
                parts.status,
                parts.headers,
                String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            )),
            Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => {
                Err(Attempt::Final(Error::failed(format!(
                    "GitHub's answer to {what} is larger than {} MiB, which no page of its API is; check --github-api-url",
                    ANSWER_LIMIT >> 20
                ))))
            }
            Ok(Err(err)) => Err(Attempt::Transient(format!(
                "GitHub's answer to {what} broke off: {}",
                error_chain(&*err)
            ))),
            Err(_) => Err(Attempt::Transient(format!(
                "GitHub's answer to {what} stalled for {seconds}s"
            ))),
        }
    }
}

/// The CAs the system trusts: SSL_CERT_FILE or SSL_CERT_DIR, else the operating system's store
/// (the image's /etc/ssl/certs). An https API with none to verify it by is bad input.
fn trusted_roots(api_url: &str) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) =
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if added == 0 && api_url.starts_with("https://") {
        return Err(Error::usage(
            "no CA certificates to verify GitHub with: install the system's CA bundle, or point SSL_CERT_FILE at one",
        ));
    }
    Ok(roots)
}

/// An error and its causes on one line: hyper's own says little ("client error (Connect)").
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text = format!("{text}: {line}");
        }
        source = cause.source();
    }
    crate::core::one_line(&text)
}
