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
