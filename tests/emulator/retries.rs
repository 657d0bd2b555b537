//! Throttling and transient faults on reads and on every write: either the operation completes
//! correctly after the SDK's retries (standard mode, `--max-attempts`, default 4), or it stops
//! with a clear error and traffic where it was. A retried conditional write that already
//! succeeded the first time is recognised, not applied twice.

use crate::support::w;
use crate::support::Fixture;
use serde_json::json;

fn history_len(record: &serde_json::Value) -> usize {
    record["history"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_reads_and_writes_complete_after_retries() {
    let fx = Fixture::v1_v2().await;
    for (action, code, status) in [
        ("DescribeListeners", "Throttling", 400),
        ("DescribeTargetHealth", "Throttling", 400),
        ("ModifyListener", "Throttling", 400),
        ("SendCommand", "ThrottlingException", 400),
        ("GetCommandInvocation", "ThrottlingException", 400),
    ] {
        fx.fault(json!({"action": action, "code": code, "status": status, "times": 2}));
    }
    fx.fault(json!({"action": fx.record_put(), "code": "SlowDown", "status": 503, "times": 2}));
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    assert_eq!(fx.weights().await, w(0, 100), "{}", out.stderr);
    assert_eq!(fx.count("SendCommand"), 3, "two throttled, then sent once");
    assert_eq!(history_len(&fx.record().await), 1, "recorded once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_throttled_past_every_attempt_stops_with_traffic_where_it_was() {
    let fx = Fixture::v1_v2().await;
    fx.fault(
        json!({"action": "ModifyListener", "code": "Throttling", "status": 400, "times": 100}),
    );
    let out = fx
        .bgcloud(&["deploy", "--image", "v1", "--max-attempts", "3"])
        .code(1);
    assert!(
        out.stderr.contains("Throttling")
            && out.stderr.contains("throttled the call even after retries"),
        "{}",
        out.stderr
    );
    assert_eq!(fx.count("ModifyListener"), 3, "--max-attempts 3");
    fx.assert_weights(100, 0).await;
    assert!(fx.record().await.is_null());

    let fx = Fixture::v1_v2().await;
    fx.fault(json!({"action": "SendCommand", "code": "ThrottlingException", "status": 400, "times": 100}));
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(1);
    out.assert_stderr_has("ThrottlingException");
    fx.assert_weights(100, 0).await;
    assert!(!fx.lock_exists().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_write_that_succeeded_but_lost_its_answer_is_not_applied_twice() {
    let fx = Fixture::v1_v2().await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    // The compare-and-swap goes through, the answer is lost; the SDK's retry gets 412.
    fx.fault(
        json!({"action": fx.record_put(), "apply_then_fail": true, "status": 500,
                    "code": "InternalError", "times": 1}),
    );
    fx.bgcloud(&["rollback"]).ok();
    let record = fx.record().await;
    assert_eq!(
        history_len(&record),
        2,
        "one deploy, one rollback: {record}"
    );
    fx.assert_weights(100, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_create_that_succeeded_but_lost_its_answer_is_ours() {
    let fx = Fixture::v1_v2().await;
    let lock_put = format!(
        "PUT /{}/bgcloud/{}/lock.json",
        fx.stack.state_bucket, fx.stack.spec.name
    );
    fx.fault(
        json!({"action": lock_put, "apply_then_fail": true, "status": 500,
                    "code": "InternalError", "times": 1}),
    );
    fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    fx.assert_weights(0, 100).await;
    assert!(!fx.lock_exists().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_distribution_update_retries_or_leaves_the_live_release() {
    let fx = Fixture::new().await;
    fx.bgcloud(&["frontend", "deploy", &fx.site("1"), "--release-id", "r1"])
        .ok();
    let update = format!(
        "PUT /2020-05-31/distribution/{}/config",
        fx.stack.distribution_id
    );
    fx.fault(json!({"action": update, "code": "Throttling", "status": 400, "times": 2}));
    fx.bgcloud(&["frontend", "deploy", &fx.site("2"), "--release-id", "r2"])
        .ok();
    assert_eq!(
        fx.bgcloud(&["frontend", "releases"]).json()["current"],
        "r2"
    );

    fx.fault(json!({"action": update, "code": "Throttling", "status": 400, "times": 100}));
    let out = fx
        .bgcloud(&["frontend", "deploy", &fx.site("3"), "--release-id", "r3"])
        .code(1);
    out.assert_stderr_has("Throttling");
    assert_eq!(
        fx.bgcloud(&["frontend", "releases"]).json()["current"],
        "r2"
    );
}

/// Whether the table entry `entry` covers the logged `action`: a REST entry ending in `/` is a
/// prefix (a bucket's keys, a distribution's invalidations), any other entry is exact.
fn covers(entry: &str, action: &str) -> bool {
    if entry.contains(' ') && entry.ends_with('/') {
        action.starts_with(entry)
    } else {
        action == entry
    }
}

/// Three throttles in a row on `action` (see [`covers`]), as each service throttles.
fn throttle(fx: &Fixture, action: &str) {
    let rest = action.contains(' ');
    let (code, status) = if action.contains(" /2020-05-31/") {
        ("Throttling", 400) // CloudFront
    } else if rest {
        ("SlowDown", 503) // S3
    } else if [
        "SendCommand",
        "GetCommandInvocation",
        "DescribeInstanceInformation",
        "CancelCommand",
    ]
    .contains(&action)
        || action.starts_with("DescribeRepositories")
        || action == "DescribeImages"
    {
        ("ThrottlingException", 400) // SSM, ECR
    } else if action == "DescribeInstances" {
        ("RequestLimitExceeded", 503) // EC2
    } else {
        ("Throttling", 400) // ELB, CloudWatch
    };
    let key = if rest && action.ends_with('/') {
        "action_prefix"
    } else {
        "action"
    };
    fx.fault(json!({key: action, "code": code, "status": status, "times": 3}));
}

/// Runs bgcloud with `args` while every call in `table` is throttled three times in a row (the
/// default policy makes 4 attempts): the command succeeds, each call was answered after exactly
/// three throttles, and no call it made is missing from the table (a new one fails the test
/// until it is added).
fn retried_past_throttling(fx: &Fixture, table: &[String], args: &[&str]) {
    for action in table {
        throttle(fx, action);
    }
    let mark = fx.mark();
    fx.bgcloud(args).ok();
    fx.clear_faults();
    let log = &crate::support::request_log(&fx.access_key)[mark..];
    let missing: std::collections::BTreeSet<&str> = log
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .filter(|a| !table.iter().any(|e| covers(e, a)))
        .collect();
    assert!(
        missing.is_empty(),
        "{args:?}: calls not in the table: {missing:#?}"
    );
    for action in table {
        let answers: Vec<bool> = log
            .iter()
            .filter(|r| covers(action, r["action"].as_str().unwrap()))
            .map(|r| r["fault"].is_string())
            .collect();
        assert!(
            answers.len() >= 4 && answers[..3] == [true; 3] && !answers[3],
            "{args:?}: {action}: three throttles, then answered: {answers:?}"
        );
    }
}

fn strings(actions: &[&str]) -> Vec<String> {
    actions.iter().map(|a| a.to_string()).collect()
}

/// The state bucket's calls: its region, the lock, the record, the rollout, the desired state.
fn state_calls(fx: &Fixture) -> Vec<String> {
    let state = format!("/{}/bgcloud/{}/", fx.stack.state_bucket, fx.stack.spec.name);
    vec![
        format!("HEAD /{}/", fx.stack.state_bucket),
        format!("GET {state}"),
        format!("PUT {state}"),
        format!("DELETE {state}"),
    ]
}

/// Every AWS call a release makes, throttled three times in a row.
///
/// Slow on purpose (over 60 s; libtest says so): each of the release's ~25 kinds of call waits
/// out three throttles with bgcloud's own retry policy (src/aws/mod.rs: standard mode, initial
/// backoff 0.5 s, so random waits up to 0.5, 1 and 2 s, ~1.75 s a call), the policy it has
/// against AWS; a shorter backoff here would test another one.
#[tokio::test(flavor = "multi_thread")]
async fn every_call_a_release_makes_is_retried_past_throttling() {
    let fx = Fixture::v1_v2_with(
        "[backend.preview]\nheader = \"X-Bgcloud-Preview\"\n\n[backend.gates]\nperiod = \"1s\"\nmax_5xx_rate = 0.5\ninconclusive = \"pass\"",
    )
    .await;
    let mut table = strings(&[
        // ELB
        "DescribeListeners",
        "DescribeLoadBalancers",
        "DescribeTargetGroups",
        "DescribeTargetHealth",
        "DescribeRules",
        "DescribeAccountLimits",
        "CreateRule",
        "ModifyListener",
        // EC2, SSM, ECR, CloudWatch
        "DescribeInstances",
        "DescribeAutoScalingInstances",
        "DescribeInstanceInformation",
        "SendCommand",
        "GetCommandInvocation",
        "DescribeRepositories",
        "DescribeImages",
        "GetMetricData",
    ]);
    table.extend(state_calls(&fx));
    // An alarm gate too: DescribeAlarms before anything changes and during the watch.
    crate::gates::with_alarm(&fx).await;
    table.push("DescribeAlarms".into());
    retried_past_throttling(&fx, &table, &["deploy", "--image", "v1", "--watch", "2s"]);
    fx.assert_weights(0, 100).await;
    // The next release finds the preview rule it made by its tags and points it at the other
    // colour, and replaces the old release's targets there (their drain time).
    table.retain(|a| a != "CreateRule");
    table.extend(strings(&[
        "DescribeTags",
        "ModifyRule",
        "DescribeTargetGroupAttributes",
    ]));
    retried_past_throttling(&fx, &table, &["deploy", "--image", "v2", "--watch", "2s"]);
    fx.assert_weights(100, 0).await;
}

/// Promote and rollback of a canary, and sync, each with every call throttled three times.
///
/// Slow on purpose (over 60 s), for the reason given above the release's table.
#[tokio::test(flavor = "multi_thread")]
async fn every_call_promote_rollback_and_sync_make_is_retried_past_throttling() {
    let fx = Fixture::v1_v2().await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green
    fx.bgcloud(&["deploy", "--image", "v2", "--canary", "10"])
        .ok(); // blue 10 %
    let mut traffic = strings(&[
        "DescribeListeners",
        "ModifyListener",
        "DescribeTargetHealth",
    ]);
    traffic.extend(state_calls(&fx));
    retried_past_throttling(&fx, &traffic, &["promote"]);
    fx.assert_weights(100, 0).await;

    let mut table = strings(&[
        "DescribeListeners",
        "DescribeTargetGroups",
        "DescribeTargetGroupAttributes",
        "DescribeTargetHealth",
        "DescribeInstances",
        "DescribeAutoScalingInstances",
        "DescribeInstanceInformation",
        "SendCommand",
        "GetCommandInvocation",
        "RegisterTargets",
        "DeregisterTargets",
    ]);
    table.extend(state_calls(&fx));
    // A new instance of the app, and a stale container of blue (live) on another: sync starts
    // both colours on the new one and registers it, takes the stale one out, drains it,
    // relaunches it and registers it again.
    fx.run_instance(true).await;
    crate::sync::restart_blue_with_v1(&fx, &fx.stack.instance_ids[0]).await;
    retried_past_throttling(&fx, &table, &["sync"]);
    fx.assert_weights(100, 0).await;

    retried_past_throttling(&fx, &traffic, &["rollback"]);
    fx.assert_weights(0, 100).await;
}

/// A frontend release and a rollback, with every call throttled three times.
#[tokio::test(flavor = "multi_thread")]
async fn every_call_a_frontend_release_and_rollback_make_is_retried_past_throttling() {
    let fx = Fixture::new().await;
    fx.bgcloud(&["frontend", "deploy", &fx.site("1"), "--release-id", "r1"])
        .ok();
    let distribution = format!("/2020-05-31/distribution/{}", fx.stack.distribution_id);
    let mut table = vec![
        format!("GET {distribution}"),
        format!("GET {distribution}/config"),
        format!("PUT {distribution}/config"),
        format!("POST {distribution}/invalidation"),
        format!("GET {distribution}/invalidation/"),
        format!("HEAD /{}/", fx.stack.site_bucket),
        format!("GET /{}/", fx.stack.site_bucket),
        format!("PUT /{}/", fx.stack.site_bucket),
        format!("COPY /{}/", fx.stack.site_bucket),
    ];
    table.extend(state_calls(&fx));
    let site = fx.site("2");
    retried_past_throttling(
        &fx,
        &table,
        &["frontend", "deploy", &site, "--release-id", "r2"],
    );
    // A rollback writes nothing to the web bucket.
    let web = format!("/{}/", fx.stack.site_bucket);
    table.retain(|a| a != &format!("PUT {web}") && a != &format!("COPY {web}"));
    retried_past_throttling(&fx, &table, &["frontend", "rollback"]);
    assert_eq!(
        fx.bgcloud(&["frontend", "releases"]).json()["current"],
        "r1"
    );
}
