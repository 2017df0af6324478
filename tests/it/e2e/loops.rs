//! Plays that go round, under Argo's controller through the real event path: Tess requests
//! changes, the play is sent back to Rex on the same pull request for another pass (the `pass`
//! template again, by recursion), and each pass's waits are released only by that pass's own
//! events.

use serde_json::Value;

use super::{Agent, Play, Plays, describe, nodes_named};

/// Each history entry as (from, to, pass), oldest first.
fn moves(record: &Value) -> Vec<(String, String, u64)> {
    record["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["from"].as_str().unwrap().to_string(),
                entry["to"].as_str().unwrap().to_string(),
                entry["pass"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The moves of one pass through the shipped play, from `pending` to the approval wait.
fn through(pass: u64) -> Vec<(String, String, u64)> {
    [
        ("pending", "waiting-pr-created"),
        ("waiting-pr-created", "waiting-ready-for-qa"),
        ("waiting-ready-for-qa", "waiting-pr-approved"),
    ]
    .into_iter()
    .map(|(from, to)| (from.to_string(), to.to_string(), pass))
    .collect()
}

fn sent_back(from: &str, pass: u64) -> (String, String, u64) {
    (from.to_string(), "pending".to_string(), pass)
}

/// The phases of the nodes of that name, in the order they started (one per pass).
fn phases(object: &Value, node: &str) -> Vec<String> {
    let mut nodes = nodes_named(object, node);
    nodes.sort_by_key(|n| n["startedAt"].as_str().unwrap_or("~").to_string());
    nodes
        .into_iter()
        .map(|n| n["phase"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Tess requests changes on time: `stagectl resume` ends her wait and sends the play back, in one
/// write; the pass's last step finds its pass over, and the second pass runs Rex (who pushes),
/// Cleo and Tess again, each wait released by that pass's event; Tess approves and the play
/// completes in pass 2.
#[tokio::test]
#[ignore = "needs the control plane and Argo's controller: make test"]
async fn a_change_request_sends_the_play_back_once_and_its_second_pass_is_approved() {
    let (plays, _, workflow) = submitted(
        "e2e-loop-once",
        "81",
        [Agent::on_time(), Agent::on_time().sending_back(1)],
    )
    .await;
    let (object, record) = ended(&plays, &workflow, "Succeeded", ("completed", 2)).await;
    let mut expected = through(1);
    expected.push(sent_back("waiting-pr-approved", 2));
    expected.extend(through(2));
    expected.push(("waiting-pr-approved".into(), "completed".into(), 2));
    assert_eq!(moves(&record), expected, "{record:#}");
    let back = &record["history"][3];
    assert_eq!(back["kind"], "sent-back", "{record:#}");
    assert_eq!(
        back["waitSatisfiedBy"]["verdict"], "sends-back",
        "{record:#}"
    );
    // Rex, Cleo and Tess twice; Tess's wait resumed in each pass, once by her change request.
    for agent in ["rex", "cleo", "tess"] {
        assert_eq!(
            phases(&object, agent),
            ["Succeeded"; 2],
            "{agent}: {}",
            describe(&object)
        );
    }
    assert_eq!(
        phases(&object, "wait-pr-approved"),
        ["Succeeded"; 2],
        "{}",
        describe(&object)
    );
    // Pass 1 started pass 2; pass 2 was not sent back.
    assert_eq!(
        phases(&object, "next-pass"),
        ["Succeeded", "Skipped"],
        "{}",
        describe(&object)
    );
}

/// Tess requests changes in every pass, early (latched while her step runs): the step entering
/// her wait sends the play back instead, twice, and in the third pass — the last the shipped
/// pipeline allows — fails the play there, saying so.
#[tokio::test]
#[ignore = "needs the control plane and Argo's controller: make test"]
async fn a_play_sent_back_in_its_last_pass_fails_at_the_limit() {
    let (plays, _, workflow) = submitted(
        "e2e-loop-limit",
        "82",
        [Agent::early(), Agent::early().sending_back(3)],
    )
    .await;
    let (object, record) = ended(&plays, &workflow, "Failed", ("failed", 3)).await;
    // It failed entering the wait (the change request was latched): from the stage before it,
    // where a rollback returns it.
    assert_eq!(record["failedAt"], "waiting-ready-for-qa", "{record:#}");
    // Each change request was latched and honoured by the step entering the wait: the play
    // went from the stage before it straight back.
    let mut expected = Vec::new();
    for pass in 1..=3 {
        let mut moves = through(pass);
        moves.pop();
        expected.extend(moves);
        expected.push(if pass < 3 {
            sent_back("waiting-ready-for-qa", pass + 1)
        } else {
            ("waiting-ready-for-qa".into(), "failed".into(), 3)
        });
    }
    assert_eq!(moves(&record), expected, "{record:#}");
    let last = record["history"].as_array().unwrap().last().unwrap();
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .contains("pass limit reached"),
        "{record:#}"
    );
    // The exit handler counted it by why it failed.
    let counted = super::metrics(&plays.argo).await;
    let limit = r#"argo_workflows_stagectl_plays_failed_total{why="pass-limit"}"#;
    assert!(
        counted.get(limit).is_some_and(|n| *n >= 1.0),
        "{counted:#?}"
    );
    assert_eq!(
        phases(&object, "rex"),
        ["Succeeded"; 3],
        "{}",
        describe(&object)
    );
    // No wait of Tess's was ever entered: each was decided before.
    assert!(
        phases(&object, "wait-pr-approved")
            .iter()
            .all(|phase| phase == "Skipped" || phase == "Omitted"),
        "{}",
        describe(&object)
    );
}

/// An approval that happened in pass 1 — submitted before Tess's change request, its webhook
/// redelivered by GitHub during pass 2 (same payload, the time it happened) — releases nothing
/// of pass 2: its stage-resume answers no-op and the play keeps waiting. Tess's own approval of
/// pass 2 then completes it.
#[tokio::test]
#[ignore = "needs the control plane and Argo's controller: make test"]
async fn an_approval_of_pass_one_redelivered_during_pass_two_releases_nothing() {
    let (plays, play, workflow) = submitted(
        "e2e-loop-stale",
        "83",
        [
            Agent::early(),
            Agent::on_time().sending_back(1).quiet_after(1),
        ],
    )
    .await;
    plays.wait_for_stage(&workflow, "waiting-pr-approved").await;
    // When pass 1 entered the approval wait: an approval then is pass 1's.
    let record = plays.record(&workflow).await;
    let pass_one = record["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["to"] == "waiting-pr-approved")
        .unwrap()["at"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_second();
    // GitHub's times are whole seconds; the second it began, not the nearest one (which can
    // be the second Tess's change request sent the play back in, and so pass 2's).
    let pass_one = jiff::Timestamp::from_second(pass_one).unwrap().to_string();
    // Pass 2 reaches the wait, and its wait node runs.
    wait_in_pass(&plays, &workflow, 2).await;

    let stale = plays
        .deliver_of("approved", &play, "approved-in-pass-1", Some(&pass_one))
        .await;
    let resume = plays.finished(&stale).await;
    assert_eq!(
        resume["status"]["phase"],
        "Succeeded",
        "{}",
        describe(&resume)
    );
    let said = plays.logs_of(&stale);
    assert!(said.contains("before pass 2 of the play began"), "{said}");
    let object = serde_json::to_value(plays.ns.workflows().get(&workflow).await.unwrap()).unwrap();
    assert_eq!(
        object["metadata"]["labels"]["current-stage"],
        "waiting-pr-approved"
    );
    assert_eq!(
        phases(&object, "wait-pr-approved"),
        ["Succeeded", "Running"],
        "{}",
        describe(&object)
    );

    // Tess approves in pass 2.
    plays.deliver("approved", &play, "approved-in-pass-2").await;
    let (_, record) = ended(&plays, &workflow, "Succeeded", ("completed", 2)).await;
    let last = record["history"].as_array().unwrap().last().unwrap();
    assert_eq!(last["pass"], 2, "{record:#}");
}

/// The play once the controller has finished it, in `phase`, and its record, at `stage` in
/// `pass`.
async fn ended(
    plays: &Plays,
    workflow: &str,
    phase: &str,
    (stage, pass): (&str, u64),
) -> (Value, Value) {
    let object = plays.finished(workflow).await;
    assert_eq!(object["status"]["phase"], phase, "{}", describe(&object));
    let record = plays.record(workflow).await;
    assert_eq!(
        (record["stage"].as_str(), record["pass"].as_u64()),
        (Some(stage), Some(pass)),
        "{record:#}"
    );
    (object, record)
}

/// A play of `task` submitted in a namespace of its own, Rex's event early, Cleo and Tess as
/// given.
async fn submitted(test: &str, task: &str, [cleo, tess]: [Agent; 2]) -> (Plays, Play, String) {
    let plays = Plays::new(test).await;
    let play = Play::new(task, "acme/widgets", [Agent::early(), cleo, tess]);
    let workflow = plays.submit(&play).await;
    (plays, play, workflow)
}

/// Waits until the play waits at its approval stage in `pass` with that pass's wait node running.
async fn wait_in_pass(plays: &Plays, workflow: &str, pass: u64) {
    let waiting = format!("{workflow} never waited for approval in pass {pass}");
    crate::harness::eventually(&waiting, std::time::Duration::from_secs(300), async || {
        let object = serde_json::to_value(plays.ns.workflows().get(workflow).await.ok()?).unwrap();
        let in_pass = object["metadata"]["annotations"]["stagectl.dev/pass"].as_str()
            == Some(pass.to_string().as_str());
        let running = nodes_named(&object, "wait-pr-approved")
            .iter()
            .filter(|node| node["phase"] == "Running")
            .count();
        (in_pass && running == 1).then_some(())
    })
    .await;
}
