//! How stagectl proves itself to GitHub: a token, or a GitHub App's installation token got
//! with a JWT the App's key signs (ring), asked for again before it expires.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{AUTHORIZATION, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

use super::GitHub;
use super::limits::{Attempt, failed_answer};
use crate::error::{Error, Result};

/// How stagectl proves itself to GitHub.
pub enum Credentials {
    /// A personal access token, or any token GitHub accepts as a bearer.
    Token(String),
    /// A GitHub App, acting as one installation of it: a JWT signed with the App's private key
    /// is exchanged for an installation token, again when that one expires.
    App {
        app_id: u64,
        private_key_pem: Vec<u8>,
        installation_id: u64,
    },
}

/// Where the credentials come from, as the command line and the environment give them.
pub struct Sources<'a> {
    /// A token as given (GITHUB_TOKEN).
    pub token: Option<&'a str>,
    /// A file holding the token (a mounted Secret).
    pub token_file: Option<&'a Path>,
    pub app_id: Option<u64>,
    pub app_key_file: Option<&'a Path>,
    pub installation_id: Option<u64>,
}

impl Credentials {
    /// A GitHub App's three, all or none; else a token, from its file before the environment.
    pub fn from_sources(sources: Sources<'_>) -> Result<Self> {
        let read = |path: &Path, what: &str| {
            std::fs::read(path)
                .map_err(|e| Error::usage(format!("cannot read {what} {}: {e}", path.display())))
        };
        match (
            sources.app_id,
            sources.app_key_file,
            sources.installation_id,
        ) {
            (Some(app_id), Some(key), Some(installation_id)) => Ok(Credentials::App {
                app_id,
                private_key_pem: read(key, "the GitHub App key file")?,
                installation_id,
            }),
            (None, None, None) => {
                let token = match sources.token_file {
                    Some(path) => String::from_utf8_lossy(&read(path, "the GitHub token file")?)
                        .trim()
                        .to_string(),
                    None => sources.token.unwrap_or_default().to_string(),
                };
                if token.is_empty() {
                    return Err(Error::usage(
                        "no GitHub credentials: set GITHUB_TOKEN, or pass --github-token-file, or a GitHub App's --github-app-id, --github-app-key-file and --github-installation-id",
                    ));
                }
                Ok(Credentials::Token(token))
            }
            _ => Err(Error::usage(
                "a GitHub App needs all three of --github-app-id, --github-app-key-file and --github-installation-id",
            )),
        }
    }
}

pub(super) enum Auth {
    Token(HeaderValue),
    App(Box<App>),
}

impl Auth {
    pub(super) fn new(credentials: &Credentials) -> Result<Self> {
        Ok(match credentials {
            Credentials::Token(token) => Auth::Token(bearer(token).ok_or_else(|| {
                Error::usage("the GitHub token holds characters no HTTP header may carry")
            })?),
            Credentials::App {
                app_id,
                private_key_pem,
                installation_id,
            } => Auth::App(Box::new(App {
                id: *app_id,
                key: rsa_key(private_key_pem).ok_or_else(|| {
                    Error::usage(
                        "the GitHub App's private key is not an RSA key in PEM (download it from the App's settings)",
                    )
                })?,
                installation_id: *installation_id,
                token: tokio::sync::Mutex::new(None),
            })),
        })
    }
}

pub(super) struct App {
    id: u64,
    key: RsaKeyPair,
    installation_id: u64,
    /// The installation token and when it expires.
    token: tokio::sync::Mutex<Option<(HeaderValue, jiff::Timestamp)>>,
}

#[derive(Deserialize)]
struct InstallationToken {
    token: String,
    expires_at: jiff::Timestamp,
}

fn bearer(token: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The App's private key, as GitHub gives it (PKCS#1 PEM) or converted to PKCS#8.
fn rsa_key(pem: &[u8]) -> Option<RsaKeyPair> {
    match PrivateKeyDer::from_pem_slice(pem).ok()? {
        PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()).ok(),
        PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).ok(),
        _ => None,
    }
}

/// The JWT that proves the App to GitHub: RS256, issued a minute back (for clocks that drift),
/// valid for the nine minutes after now (GitHub allows ten).
fn app_jwt(app_id: u64, key: &RsaKeyPair, now: jiff::Timestamp) -> Option<String> {
    let now = now.as_second();
    let claims = serde_json::json!({"iat": now - 60, "exp": now + 540, "iss": app_id.to_string()});
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .ok()?;
    Some(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

impl GitHub {
    /// The Authorization header: the token, or the App installation's token, asked for again
    /// a minute before it expires.
    pub(super) async fn authorization(
        &self,
        timeout: Duration,
    ) -> std::result::Result<HeaderValue, Attempt> {
        let app = match &self.auth {
            Auth::Token(value) => return Ok(value.clone()),
            Auth::App(app) => app,
        };
        let (app_id, key, installation_id, held) =
            (app.id, &app.key, app.installation_id, &app.token);
        let mut held = held.lock().await;
        let now = jiff::Timestamp::now();
        if let Some((value, expires)) = held.as_ref()
            && expires.as_second() > now.as_second() + 60
        {
            return Ok(value.clone());
        }
        let jwt = app_jwt(app_id, key, now)
            .ok_or_else(|| Attempt::Final(Error::failed("cannot sign the GitHub App's JWT")))?;
        let url = format!(
            "{}/app/installations/{installation_id}/access_tokens",
            self.api_url
        );
        let what = format!("POST {url}");
        let mut request = Request::new(Full::default());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = url
            .parse()
            .map_err(|_| Attempt::Final(Error::failed(format!("cannot request {url}"))))?;
        *request.headers_mut() = Self::headers();
        // A JWT is base64url and dots, which a header always carries.
        let jwt = bearer(&jwt).ok_or_else(|| {
            Attempt::Final(Error::failed(
                "the GitHub App's JWT is no valid header value",
            ))
        })?;
        request.headers_mut().insert(AUTHORIZATION, jwt);
        let (status, _, body) = self.send(request, timeout, &what).await?;
        match status {
            status if status.is_success() => {
                let answer: InstallationToken = serde_json::from_str(&body).map_err(|e| {
                    Attempt::Final(Error::failed(format!(
                        "GitHub's answer to {what} is not an installation token: {e}"
                    )))
                })?;
                let value = bearer(&answer.token).ok_or_else(|| {
                    Attempt::Final(Error::failed(format!(
                        "GitHub's answer to {what} is not a token a header can carry"
                    )))
                })?;
                *held = Some((value.clone(), answer.expires_at));
                Ok(value)
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                Err(Attempt::Final(Error::forbidden(format!(
                    "GitHub did not give the App an installation token ({} on {what}): check the App id, its private key and the installation id",
                    status.as_u16()
                ))))
            }
            status => Err(failed_answer(status, &what)),
        }
    }
}
