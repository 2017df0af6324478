//! GitHub's client against answers of every shape, in-process: a scripted transport stands in
//! for GitHub, time is the runtime's paused clock, and each run ends with data or an error
//! with its exit code (never a panic). tests/it/reconcile.rs runs the real stack against
//! tests/github's stand-in.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::json;

use super::transport::{BoxError, Reply, Transport};
use super::*;
use crate::error::Kind;

/// One scripted answer of GitHub.
#[derive(Clone)]
enum Scripted {
    /// Status, headers and body.
    Answer(u16, Vec<(&'static str, String)>, String),
    /// The connection is reset before any answer.
    Reset,
    /// No answer, ever.
    Silence,
    /// The status and headers, then the body breaks off.
    BrokenBody(u16),
    /// A 200 whose body is `n` MiB of spaces.
    Huge(usize),
}

#[derive(Default)]
struct Script {
    answers: Mutex<VecDeque<Scripted>>,
    /// Each request: its URL and its If-None-Match.
    seen: Mutex<Vec<(String, Option<String>)>>,
}

struct ScriptedTransport(Arc<Script>);

impl Transport for ScriptedTransport {
    fn send(&self, request: Request<Full<Bytes>>) -> Reply {
        let script = self.0.clone();
        Box::pin(async move {
            let etag = request
                .headers()
                .get("if-none-match")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            script
                .seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((request.uri().to_string(), etag));
            let next = script
                .answers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front();
            let (status, headers, body): (u16, Vec<(&str, String)>, super::transport::Body) =
                match next {
                    Some(Scripted::Answer(status, headers, body)) => (
                        status,
                        headers,
                        Full::new(Bytes::from(body))
                            .map_err(|e| match e {})
                            .boxed_unsync(),
                    ),
                    Some(Scripted::Reset) => {
                        return Err(Box::new(std::io::Error::from(
                            std::io::ErrorKind::ConnectionReset,
                        )) as BoxError);
                    }
                    Some(Scripted::Silence) => std::future::pending().await,
                    Some(Scripted::BrokenBody(status)) => {
                        let chunks: Vec<Result<http_body::Frame<Bytes>, BoxError>> = vec![
                            Ok(http_body::Frame::data(Bytes::from_static(b"[{"))),
                            Err(Box::new(std::io::Error::from(
                                std::io::ErrorKind::ConnectionReset,
                            ))),
                        ];
                        let stream = futures::stream::iter(chunks);
                        (status, Vec::new(), StreamBody::new(stream).boxed_unsync())
                    }
                    Some(Scripted::Huge(mib)) => {
                        let chunk = Bytes::from(vec![b' '; 1 << 20]);
                        let chunks = (0..mib)
                            .map(move |_| Ok::<_, BoxError>(http_body::Frame::data(chunk.clone())));
                        let stream = futures::stream::iter(chunks);
                        (200, Vec::new(), StreamBody::new(stream).boxed_unsync())
                    }
                    None => panic!("the script has no answer left for {}", request.uri()),
                };
            let mut response = Response::new(body);
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            let map: &mut HeaderMap = response.headers_mut();
            for (name, value) in headers {
                map.insert(name, value.parse().unwrap());
            }
            Ok(response)
        })
    }
}

const API: &str = "https://api.test";

fn github(
    answers: Vec<Scripted>,
    cache: Cache,
    rate_limit_wait: Duration,
) -> (GitHub, Arc<Script>) {
    let script = Arc::new(Script {
        answers: Mutex::new(answers.into()),
        seen: Mutex::default(),
    });
    let options = Options {
        api_url: API.to_string(),
        credentials: Credentials::Token("t".to_string()),
        timeout: Duration::from_secs(30),
        rate_limit_wait,
    };
    let auth = Auth::new(&options.credentials).unwrap();
    let client = GitHub::over(
        Box::new(ScriptedTransport(script.clone())),
        API.to_string(),
        auth,
        &options,
        cache,
    );
    (client, script)
}

/// The URLs the client asked for, in order.
fn urls_seen(script: &Script) -> Vec<String> {
    script
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.0.clone())
        .collect()
}

fn repository() -> Repository {
    Repository::parse("acme/widgets").unwrap()
}

fn pull(number: u64) -> serde_json::Value {
    json!({"number": number, "head": {"ref": format!("task-{number}")}, "labels": [{"name": "ready-for-qa"}]})
}

fn page(status: u16, etag: &str, next: Option<&str>, items: &[serde_json::Value]) -> Scripted {
    let mut headers = vec![("etag", etag.to_string())];
    if let Some(next) = next {
        headers.push(("link", format!("<{API}{next}>; rel=\"next\"")));
    }
    Scripted::Answer(
        status,
        headers,
        serde_json::Value::from(items.to_vec()).to_string(),
    )
}

fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> Scripted {
    let headers = headers.iter().map(|(n, v)| (*n, v.to_string())).collect();
    Scripted::Answer(status, headers, body.to_string())
}

const FIRST: &str = "/repos/acme/widgets/pulls?state=open&per_page=100";

async fn open_pulls(answers: Vec<Scripted>) -> (Result<Vec<PullRequest>>, GitHub, Arc<Script>) {
    let (client, script) = github(answers, Cache::default(), Duration::ZERO);
    let pulls = client.open_pulls(&repository()).await;
    (pulls, client, script)
}

#[tokio::test(start_paused = true)]
async fn every_page_is_read_and_a_second_run_is_answered_from_the_cache() {
    let (pulls, client, script) = open_pulls(vec![
        page(
            200,
            "\"a\"",
            Some("/repositories/1/pulls?page=2"),
            &[pull(1)],
        ),
        page(200, "\"b\"", None, &[pull(2)]),
    ])
    .await;
    let numbers: Vec<u64> = pulls.unwrap().iter().map(|p| p.number).collect();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(client.cost().requests, 2);
    let seen = script.seen.lock().unwrap().clone();
    assert_eq!(seen[0], (format!("{API}{FIRST}"), None));
    assert_eq!(seen[1].0, format!("{API}/repositories/1/pulls?page=2"));

    // The next run asks with the ETags, and a 304 is answered from the cache, for free.
    let (again, script) = github(
        vec![answer(304, &[], ""), answer(304, &[], "")],
        client.cache_to_keep(),
        Duration::ZERO,
    );
    let numbers: Vec<u64> = again
        .open_pulls(&repository())
        .await
        .unwrap()
        .iter()
        .map(|p| p.number)
        .collect();
    assert_eq!(numbers, [1, 2]);
    let cost = again.cost();
    assert_eq!((cost.requests, cost.not_modified), (0, 2));
    let etags: Vec<Option<String>> = script
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.1.clone())
        .collect();
    assert_eq!(
        etags,
        [Some("\"a\"".to_string()), Some("\"b\"".to_string())]
    );
}

/// A 304 to a request that sent no ETag (a proxy's cache) has nothing to stand for.
#[tokio::test(start_paused = true)]
async fn a_not_modified_without_a_cached_copy_is_an_error() {
    let (pulls, _, _) = open_pulls(vec![answer(304, &[], "")]).await;
    let err = pulls.unwrap_err();
    assert_eq!(err.kind, Kind::Failed);
    assert!(err.message().contains("304"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn the_used_up_rate_limit_stops_the_run_unless_a_wait_is_allowed() {
    let reset = (jiff::Timestamp::now().as_second() + 1800).to_string();
    let limited = || {
        answer(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ],
            r#"{"message": "API rate limit exceeded"}"#,
        )
    };
    let (pulls, client, _) = open_pulls(vec![limited()]).await;
    let err = pulls.unwrap_err();
    assert_eq!(err.kind, Kind::GaveUp);
    assert!(err.message().contains("rate limit is used up"), "{err}");
    assert_eq!(client.cost().requests, 1);

    let (client, script) = github(
        vec![limited(), page(200, "\"a\"", None, &[pull(7)])],
        Cache::default(),
        Duration::from_secs(3600),
    );
    let started = tokio::time::Instant::now();
    let pulls = client.open_pulls(&repository()).await.unwrap();
    assert_eq!(pulls[0].number, 7);
    assert_eq!(script.seen.lock().unwrap().len(), 2);
    // It waited for the reset GitHub named, not for a backoff of its own.
    assert!(
        started.elapsed() >= Duration::from_secs(1790),
        "{:?}",
        started.elapsed()
    );
}

/// A 403 that names no limit is the credentials': final, exit 5.
#[tokio::test(start_paused = true)]
async fn a_refusal_that_is_no_rate_limit_is_final() {
    for (status, kind) in [
        (403, Kind::Forbidden),
        (404, Kind::Forbidden),
        (401, Kind::Forbidden),
        (418, Kind::GaveUp),
    ] {
        let (pulls, client, script) = open_pulls(vec![answer(
            status,
            &[("x-ratelimit-remaining", "4999")],
            r#"{"message": "Resource not accessible by integration"}"#,
        )])
        .await;
        assert_eq!(pulls.unwrap_err().kind, kind, "{status}");
        assert_eq!(script.seen.lock().unwrap().len(), 1, "{status}");
        assert_eq!(client.cost().requests, 1);
    }
}

/// A secondary limit (403 or 429 with Retry-After, or naming it) is waited out as asked, within
/// the request's budget; one that asks for longer ends the run.
#[tokio::test(start_paused = true)]
async fn a_secondary_limit_is_waited_out_as_retry_after_asks() {
    let (pulls, _, script) = open_pulls(vec![
        answer(429, &[("retry-after", "7")], "{}"),
        answer(
            403,
            &[],
            r#"{"message": "You have exceeded a secondary rate limit"}"#,
        ),
        page(200, "\"a\"", None, &[pull(3)]),
    ])
    .await;
    // The second limit names no time: a minute, which the 30 s budget does not allow.
    let err = pulls.unwrap_err();
    assert_eq!(err.kind, Kind::GaveUp);
    assert!(err.message().contains("secondary rate limit"), "{err}");
    assert_eq!(script.seen.lock().unwrap().len(), 2);

    let started = tokio::time::Instant::now();
    let (pulls, _, _) = open_pulls(vec![
        answer(429, &[("retry-after", "7")], "{}"),
        page(200, "\"a\"", None, &[pull(3)]),
    ])
    .await;
    assert_eq!(pulls.unwrap()[0].number, 3);
    assert!(started.elapsed() >= Duration::from_secs(7));

    // A Retry-After no budget could hold, however large, is the end of the run, not a panic.
    let (pulls, _, _) = open_pulls(vec![answer(
        429,
        &[("retry-after", &u64::MAX.to_string())],
        "{}",
    )])
    .await;
    assert_eq!(pulls.unwrap_err().kind, Kind::GaveUp);
}

/// GitHub's bad moments are tried again with backoff within --timeout: a 5xx, a reset
/// connection, a body that breaks off, no answer at all.
#[tokio::test(start_paused = true)]
async fn transient_failures_are_tried_again_within_the_budget() {
    let (pulls, client, script) = open_pulls(vec![
        answer(502, &[], "bad gateway"),
        Scripted::Reset,
        Scripted::BrokenBody(200),
        Scripted::Silence,
        page(200, "\"a\"", None, &[pull(9)]),
    ])
    .await;
    assert_eq!(pulls.unwrap()[0].number, 9);
    assert_eq!(script.seen.lock().unwrap().len(), 5);
    // The 502 and the page were whole answers, each counted against the limit.
    assert_eq!(client.cost().requests, 2);

    let started = tokio::time::Instant::now();
    let (pulls, _, _) = open_pulls(vec![answer(503, &[], ""); 100]).await;
    let err = pulls.unwrap_err();
    assert_eq!(err.kind, Kind::GaveUp);
    assert!(err.message().contains("--timeout"), "{err}");
    assert!(
        started.elapsed() <= Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

/// An answer that is not the list GitHub's API describes, or larger than any page of it.
#[tokio::test(start_paused = true)]
async fn an_answer_of_another_shape_is_an_error() {
    for body in [
        r#"{"message": "not a list"}"#,
        "<html>",
        r#"[{"number": "one"}]"#,
        "",
    ] {
        let (pulls, _, _) = open_pulls(vec![answer(200, &[("etag", "\"a\"")], body)]).await;
        let err = pulls.unwrap_err();
        assert_eq!(err.kind, Kind::Failed, "{body}");
        assert!(
            err.message().contains("not the list its API describes"),
            "{err}"
        );
    }
    let (pulls, _, _) = open_pulls(vec![Scripted::Huge(17)]).await;
    let err = pulls.unwrap_err();
    assert_eq!(err.kind, Kind::Failed);
    assert!(err.message().contains("larger than 16 MiB"), "{err}");
}

#[test]
fn the_next_page_is_read_from_githubs_link_header() {
    let link = r#"<https://api.github.com/repositories/1/pulls?state=open&per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/pulls?state=open&per_page=100&page=4>; rel="last""#;
    assert_eq!(
        next_page(link).as_deref(),
        Some("https://api.github.com/repositories/1/pulls?state=open&per_page=100&page=2")
    );
    let last = r#"<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=1>; rel="first""#;
    assert_eq!(next_page(last), None);
}

/// A merge gate reads closed pull requests newest first, and stops at the page that reaches
/// back before the play began: the rest cannot be its task's merge.
#[tokio::test(start_paused = true)]
async fn closed_pull_requests_are_read_back_to_the_plays_beginning_and_no_further() {
    let closed = |number: u64, merged: bool, updated: &str| {
        json!({"number": number, "head": {"ref": format!("task-{number}"), "sha": format!("sha{number}")},
               "labels": [], "merged_at": merged.then_some(updated), "updated_at": updated})
    };
    let (client, script) = github(
        vec![
            page(
                200,
                "\"1\"",
                Some("/repositories/1/pulls?state=closed&page=2"),
                &[
                    closed(9, true, "2026-12-07T10:00:00Z"),
                    closed(8, false, "2026-12-07T09:00:00Z"),
                ],
            ),
            page(
                200,
                "\"2\"",
                Some("/repositories/1/pulls?state=closed&page=3"),
                &[closed(7, true, "2026-12-06T10:00:00Z")],
            ),
            page(
                200,
                "\"3\"",
                None,
                &[closed(6, true, "2026-12-01T00:00:00Z")],
            ),
        ],
        Cache::default(),
        Duration::ZERO,
    );
    let since = "2026-12-07T08:00:00Z".parse().unwrap();
    let pulls = client
        .closed_pulls(&repository(), Some(since))
        .await
        .unwrap();
    let read: Vec<(u64, bool, String)> = pulls
        .iter()
        .map(|p| (p.number, p.merged, p.head_sha.clone()))
        .collect();
    assert_eq!(
        read,
        [
            (9, true, "sha9".to_string()),
            (8, false, "sha8".to_string()),
            (7, true, "sha7".to_string())
        ]
    );
    let seen = script.seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        2,
        "the second page reaches back before the play: {seen:?}"
    );
    assert_eq!(
        seen[0].0,
        format!(
            "{API}/repos/acme/widgets/pulls?state=closed&sort=updated&direction=desc&per_page=100"
        )
    );
}

/// GitHub wraps check suites and workflow runs in an object; only completed ones count.
#[tokio::test(start_paused = true)]
async fn check_suites_and_workflow_runs_on_a_head_are_read_as_completed_or_not_at_all() {
    let suites = json!({"total_count": 3, "check_suites": [
        {"status": "completed", "conclusion": "failure"},
        {"status": "in_progress", "conclusion": null},
        {"status": "completed", "conclusion": "success"},
    ]});
    let runs = json!({"total_count": 1, "workflow_runs": [
        {"name": "CI", "status": "completed", "conclusion": "success"},
        {"name": "Lint", "status": "queued", "conclusion": null},
    ]});
    let (client, script) = github(
        vec![
            answer(200, &[("etag", "\"s\"")], &suites.to_string()),
            answer(200, &[("etag", "\"r\"")], &runs.to_string()),
            answer(200, &[], "[]"),
        ],
        Cache::default(),
        Duration::ZERO,
    );
    let conclusions: Vec<String> = client
        .check_suites(&repository(), "abc")
        .await
        .unwrap()
        .into_iter()
        .map(|suite| suite.conclusion)
        .collect();
    assert_eq!(conclusions, ["failure", "success"]);
    let runs = client.workflow_runs(&repository(), "abc").await.unwrap();
    assert_eq!(
        runs.iter()
            .map(|run| (run.name.as_str(), run.conclusion.as_str()))
            .collect::<Vec<_>>(),
        [("CI", "success")]
    );
    let seen = urls_seen(&script);
    assert_eq!(
        seen,
        [
            format!("{API}/repos/acme/widgets/commits/abc/check-suites?per_page=100"),
            format!("{API}/repos/acme/widgets/actions/runs?head_sha=abc&per_page=100"),
        ]
    );
    // A list where GitHub sends an object is no answer of its API.
    let err = client.check_suites(&repository(), "def").await.unwrap_err();
    assert!(
        err.message().contains("not the list its API describes"),
        "{}",
        err.message()
    );
}

/// For a play in a later pass: a pull request's issue events are read as the labels added and
/// when (other events, and a label event without its label, say nothing), its commits as their
/// committers' dates (a commit without one is kept, with no time).
#[tokio::test(start_paused = true)]
async fn label_events_and_commits_are_read_with_their_times() {
    let events = json!([
        {"event": "labeled", "label": {"name": "ready-for-qa", "color": "0e8a16"}, "created_at": "2026-12-07T10:00:01Z"},
        {"event": "unlabeled", "label": {"name": "ready-for-qa", "color": "0e8a16"}, "created_at": "2026-12-07T10:00:02Z"},
        {"event": "closed", "created_at": "2026-12-07T10:00:03Z"},
        {"event": "labeled", "created_at": "2026-12-07T10:00:04Z"},
    ]);
    let commits = json!([
        {"sha": "a", "commit": {"committer": {"date": "2026-12-07T09:00:00Z"}}},
        {"sha": "b", "commit": {"committer": null}},
    ]);
    let (client, script) = github(
        vec![
            answer(200, &[("etag", "\"e\"")], &events.to_string()),
            answer(200, &[("etag", "\"c\"")], &commits.to_string()),
            answer(200, &[], "{}"),
        ],
        Cache::default(),
        Duration::ZERO,
    );
    let added = client.label_events(&repository(), 7).await.unwrap();
    assert_eq!(
        added,
        [crate::core::github::Labelled {
            label: "ready-for-qa".into(),
            at: Some("2026-12-07T10:00:01Z".parse().unwrap()),
        }]
    );
    let dates: Vec<_> = client
        .commits(&repository(), 7)
        .await
        .unwrap()
        .into_iter()
        .map(|commit| commit.at.map(|at| at.to_string()))
        .collect();
    assert_eq!(dates, [Some("2026-12-07T09:00:00Z".to_string()), None]);
    let seen = urls_seen(&script);
    assert_eq!(
        seen,
        [
            format!("{API}/repos/acme/widgets/issues/7/events?per_page=100"),
            format!("{API}/repos/acme/widgets/pulls/7/commits?per_page=100"),
        ]
    );
    // An object where GitHub sends a list is no answer of its API.
    let err = client.commits(&repository(), 8).await.unwrap_err();
    assert!(
        err.message().contains("not the list its API describes"),
        "{}",
        err.message()
    );
}
