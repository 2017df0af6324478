//! Faults on the real Argo Events data path (tests/events): what GitHub's webhooks meet at the
//! EventSource, and what survives its and the Sensors' restarts. Each test has a namespace with
//! Argo Events of its own, under Argo's controller as in `e2e`.

use crate::e2e::{Agent, Play, Plays, assert_completed_as_timed};
use crate::harness::Prometheus;
use std::time::Duration;

/// The Sensor of waiting-pr-created, as tests/events/start names its pod.
const PR_CREATED_SENSOR: &str = "sensor-play-pr-created";

#[tokio::test]
#[ignore = "needs the control plane and Argo's controller: make test"]
async fn webhooks_without_a_valid_sha256_signature_create_nothing() {
    let plays = Plays::new("events-signatures").await;
    let play = Play::new(
        "61",
        "acme/widgets",
        [Agent::sent_by_test(), Agent::early(), Agent::early()],
    );
    let workflow = plays.submit(&play).await;
    plays.wait_for_stage(&workflow, "waiting-pr-created").await;

    // The EventSource refuses a wrong or missing signature itself. It accepts a delivery signed
    // only with the legacy SHA-1 header (go-github's check falls back to it); the Sensors drop it.
    for (signature, answer) in [
        ("wrong", "400 payload signature check failed"),
        ("none", "400 missing signature"),
        ("sha1-only", "200 success"),
    ] {
        let run = plays
            .send_webhook(
                "pr-opened",
                &play,
                &format!("unsigned-{signature}"),
                signature,
            )
            .await;
        assert_eq!(run.stdout.trim(), answer, "{signature}: {run:?}");
    }
    // The Sensor takes the bus's events in order: once this one's stage-resume exists, the
    // SHA-1 one before it was judged. Of the pull request's: Cleo's own event, as the play goes
    // on, may have a stage-resume by the time they are listed (under load, one did).
    let resume = plays.deliver("pr-opened", &play, "signed").await;
    let resumes = plays.stage_resumes().await;
    let names: Vec<&str> = resumes
        .iter()
        .filter(|r| {
            r["spec"]["arguments"]["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == "stage" && p["value"] == "waiting-pr-created")
        })
        .map(|r| r["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [resume.as_str()], "{resumes:#?}");
    assert_completed_as_timed(&plays, &play, &workflow).await;
}

#[tokio::test]
#[ignore = "needs the control plane and Argo's controller: make test"]
async fn events_on_the_bus_while_the_sensor_is_down_are_each_handled_once_after_it_restarts() {
    let plays = Plays::new("events-sensor-restart").await;
    let tasks = ["71", "72", "73"];
    let all: Vec<Play> = tasks
        .iter()
        .map(|task| {
            Play::new(
                task,
                "acme/widgets",
                [Agent::sent_by_test(), Agent::early(), Agent::early()],
            )
        })
        .collect();
    let mut submitted = Vec::new();
    for play in &all {
        submitted.push(plays.submit(play).await);
    }
    for workflow in &submitted {
        plays.wait_for_stage(workflow, "waiting-pr-created").await;
    }

    plays.events().kill(PR_CREATED_SENSOR).await;
    // Accepted: the EventSource has put each on the bus, where the Sensor's durable consumer
    // keeps them.
    for play in &all {
        plays
            .send_webhook(
                "pr-opened",
                play,
                &format!("opened-{}", play.task),
                "sha256",
            )
            .await
            .assert_code(0);
    }
    plays.restart_events().await;

    for (play, workflow) in all.iter().zip(&submitted) {
        let object = assert_completed_as_timed(&plays, play, workflow).await;
        // Exactly once: the one wait resumed by the one stage-resume of its own delivery.
        let record = plays.record(workflow).await;
        let left: Vec<_> = record["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["from"] == "waiting-pr-created")
            .collect();
        assert_eq!(left.len(), 1, "{record:#}");
        assert_eq!(object["status"]["phase"], "Succeeded");
    }
    let opened: Vec<String> = plays
        .stage_resumes()
        .await
        .iter()
        .filter(|r| r["metadata"]["labels"]["stagectl.dev/stage-resume"] == "waiting-pr-created")
        .map(|r| {
            assert_eq!(r["status"]["phase"], "Succeeded", "{r:#}");
            r["metadata"]["name"].as_str().unwrap().to_string()
        })
        .collect();
    let mut expected: Vec<String> = tasks
        .iter()
        .map(|task| format!("stage-resume-opened-{task}"))
        .collect();
    let mut opened = opened;
    opened.sort();
    expected.sort();
    assert_eq!(opened, expected);
}

#[tokio::test]
#[ignore = "needs the control plane and Argo's controller: make test"]
async fn a_webhook_sent_while_the_eventsource_is_down_is_refused_and_its_redelivery_completes_the_wait()
 {
    let plays = Plays::new("events-eventsource-restart").await;
    let play = Play::new(
        "81",
        "acme/widgets",
        [Agent::sent_by_test(), Agent::early(), Agent::early()],
    );
    let workflow = plays.submit(&play).await;
    plays.wait_for_stage(&workflow, "waiting-pr-created").await;

    plays.events().kill("eventsource").await;
    // What GitHub meets: no connection (its delivery log says it could not connect), and it
    // does not try again by itself.
    let refused = plays
        .send_webhook("pr-opened", &play, "while-down", "sha256")
        .await;
    refused.assert_code(3);
    assert!(refused.stdout.contains("connection refused"), "{refused:?}");

    plays.restart_events().await;
    // "Redeliver" in GitHub's delivery log: the same delivery id, now accepted.
    plays.deliver("pr-opened", &play, "while-down").await;
    assert_completed_as_timed(&plays, &play, &workflow).await;
}

/// NATS, the EventBus, killed -9: in a cluster its Service keeps the address, and the
/// relaunched server comes back there with its file-backed stream. The EventSource and the
/// Sensors that kept running reconnect by themselves; a webhook sent while the bus is down is
/// refused (GitHub records a failed delivery), and its redelivery completes the wait.
#[tokio::test]
#[ignore = "needs the control plane and Argo's controller: make test"]
async fn the_event_bus_killed_comes_back_where_it_was_and_the_running_eventsource_and_sensors_reconnect()
 {
    let plays = Plays::new("events-nats-restart").await;
    let play = Play::new(
        "91",
        "acme/widgets",
        [Agent::sent_by_test(), Agent::early(), Agent::early()],
    );
    let workflow = plays.submit(&play).await;
    plays.wait_for_stage(&workflow, "waiting-pr-created").await;
    let pids = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .map(|name| {
                std::fs::read_to_string(plays.events().state.join(format!("{name}.pid"))).unwrap()
            })
            .collect()
    };
    let clients = ["eventsource", PR_CREATED_SENSOR];
    let before = pids(&clients);
    let logged = clients.map(|client| plays.events().log_end(client));

    plays.events().kill("nats").await;
    let refused = plays
        .send_webhook("pr-opened", &play, "while-bus-down", "sha256")
        .await;
    assert_ne!(refused.code, 0, "accepted with the bus down: {refused:?}");
    plays.restart_events().await;
    // The clients find the bus back on their own schedule (the EventSource tries every 5s);
    // until then the EventSource answers 500, and a redelivery sent sooner is refused again.
    let reconnected = [
        "reconnected to eventbus successfully",
        "started subscribing to events",
    ];
    for ((client, from), line) in clients.into_iter().zip(logged).zip(reconnected) {
        plays.events().wait_for_log_line(client, from, line).await;
    }
    assert_eq!(pids(&clients), before, "a client of the bus was restarted");

    // GitHub's "Redeliver": the same delivery, taken by the reconnected EventSource and Sensor.
    plays.deliver("pr-opened", &play, "while-bus-down").await;
    assert_completed_as_timed(&plays, &play, &workflow).await;
}

/// GitHub's "Redeliver" of a webhook whose stage-resume exists: the Sensor's create is refused
/// as AlreadyExists, tried again as its retryStrategy says (atLeastOnce: without it Argo Events
/// never retries), then counted in `argo_events_action_retries_failed_total`, which the Sensor
/// exports from its start at 0 — and PlaySensorTriggerFailed, read by a Prometheus scraping
/// the Sensor's own metrics port, fires for that Sensor.
#[tokio::test]
#[ignore = "needs the control plane and Argo's controller: make test"]
async fn a_redelivery_is_refused_after_the_triggers_retries_and_the_sensor_counts_it_for_the_alert()
{
    let plays = Plays::new("events-sensor-metrics").await;
    let play = Play::new(
        "95",
        "acme/widgets",
        [Agent::sent_by_test(), Agent::early(), Agent::early()],
    );
    let prometheus = Prometheus::start(&plays.events().metrics_url(PR_CREATED_SENSOR)).await;
    let failed = "argo_events_action_retries_failed_total{sensor_name=\"play-pr-created\",trigger_name=\"stage-resume\"}";
    let value = async |promql: &str| -> Option<String> {
        let series = prometheus.query(promql).await;
        series
            .first()
            .map(|s| s["value"][1].as_str().unwrap().to_string())
    };
    crate::harness::eventually(
        "the Sensor's retries-failed counter, at 0 from its start",
        Duration::from_secs(60),
        async || (value(failed).await.as_deref() == Some("0")).then_some(()),
    )
    .await;
    // Every Argo Events metric the alert rules read is one the Sensor exports.
    let exported: Vec<String> = prometheus
        .query("{__name__=~\"argo_events_.+\"}")
        .await
        .iter()
        .map(|series| series["metric"]["__name__"].as_str().unwrap().to_string())
        .collect();
    let rules = std::fs::read_to_string(crate::harness::repo_path(
        "examples/monitoring/prometheus-rule.yaml",
    ))
    .unwrap();
    let queried: Vec<&str> = rules
        .match_indices("argo_events_")
        .map(|(at, _)| {
            let name = &rules[at..];
            &name[..name
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(name.len())]
        })
        .filter(|name| *name != "argo_events_")
        .collect();
    assert!(!queried.is_empty());
    for name in queried {
        assert!(
            exported.iter().any(|e| e == name),
            "the rules read {name}; the Sensor exports {exported:?}"
        );
    }

    let workflow = plays.submit(&play).await;
    plays.wait_for_stage(&workflow, "waiting-pr-created").await;
    plays.deliver("pr-opened", &play, "opened").await;
    assert_completed_as_timed(&plays, &play, &workflow).await;
    let sensor = plays.events();
    let from = sensor.log_end(PR_CREATED_SENSOR);
    let creates = sensor.log_lines_with(PR_CREATED_SENSOR, "creating the object");
    plays
        .send_webhook("pr-opened", &play, "opened", "sha256")
        .await
        .assert_code(0);
    sensor
        .wait_for_log_line(PR_CREATED_SENSOR, from, "failed to trigger actions")
        .await;
    assert_eq!(
        sensor.log_lines_with(PR_CREATED_SENSOR, "creating the object") - creates,
        3,
        "the retryStrategy's 3 tries"
    );
    crate::harness::eventually(
        "PlaySensorTriggerFailed firing for play-pr-created",
        Duration::from_secs(60),
        async || {
            let firing = prometheus
                .query("ALERTS{alertname=\"PlaySensorTriggerFailed\",alertstate=\"firing\"}")
                .await;
            firing
                .iter()
                .any(|alert| alert["metric"]["sensor_name"] == "play-pr-created")
                .then_some(())
        },
    )
    .await;
    assert_eq!(value(failed).await.as_deref(), Some("1"));
    // One stage-resume of the wait, the first delivery's.
    let resumes: Vec<_> = plays
        .stage_resumes()
        .await
        .into_iter()
        .filter(|r| r["metadata"]["labels"]["stagectl.dev/stage-resume"] == "waiting-pr-created")
        .map(|r| r["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(resumes, ["stage-resume-opened"]);
}
