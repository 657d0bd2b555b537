//! bgcloud killed with SIGKILL at every step of a deploy and of a frontend release: traffic stays
//! on a colour that was healthy, `status` tells the truth from the ALB, the next run refuses with
//! the stale lock's owner and age, and `lock release --force` followed by a new run recovers.

use crate::support::w;
use crate::support::Fixture;
use bgcloud::model::weights::Weights;
use serde_json::{json, Value};

/// Runs `args`, waits until it has made a request matching `reached`, and kills it (SIGKILL: no
/// cleanup of any kind).
fn crash(fx: &Fixture, args: &[&str], fault: Option<Value>, reached: impl Fn(&str) -> bool) {
    if let Some(f) = fault {
        fx.fault(f);
    }
    // Requests of earlier commands do not count.
    let seen = |log: &[(String, String)]| log.iter().filter(|(_, a)| reached(a)).count();
    let before = seen(&fx.requests());
    let child = fx.bgcloud(args).spawn();
    fx.wait_until("the step to crash at", |log| seen(log) > before);
    crate::support::signal(&child, "KILL");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), None, "killed by a signal");
}

/// After a crash: the next run refuses with the dead run's lock (owner and age), and
/// `lock release --force` then a deploy recovers, ending on `expect`.
async fn recover(fx: &Fixture, image: &str, expect: Weights) {
    let out = fx.bgcloud(&["deploy", "--image", image]).code(3);
    assert!(
        out.stderr.contains("tester@") && out.stderr.contains("ago"),
        "the stale lock's owner and age: {}",
        out.stderr
    );
    fx.bgcloud(&["lock", "release", "--force"]).ok();
    fx.clear_faults();
    fx.bgcloud(&["deploy", "--image", image]).ok();
    assert_eq!(fx.weights().await, expect);
    assert!(!fx.lock_exists().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_taking_the_lock() {
    let fx = Fixture::v1_v2().await;
    let lock_put = format!(
        "PUT /{}/bgcloud/{}/lock.json",
        fx.stack.state_bucket, fx.stack.spec.name
    );
    crash(
        &fx,
        &["deploy", "--image", "v1"],
        Some(
            json!({"action": "DescribeListeners", "after_action": lock_put, "delay": 5, "status": 503}),
        ),
        |a| a == "DescribeListeners",
    );
    fx.assert_weights(100, 0).await;
    assert!(
        fx.lock_exists().await,
        "a killed run cannot release its lock"
    );
    recover(&fx, "v1", w(0, 100)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_sending_the_launch() {
    let fx = Fixture::v1_v2().await;
    fx.hold_launch();
    crash(&fx, &["deploy", "--image", "v1"], None, |a| {
        a == "GetCommandInvocation"
    });
    fx.assert_weights(100, 0).await;
    let status = fx.bgcloud(&["status"]).json();
    assert_eq!(status["stable"], "blue");
    crate::support::control(
        "ssm-invocation",
        json!({"instance_id": fx.stack.instance_ids[0], "status": null}),
    );
    recover(&fx, "v1", w(0, 100)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_during_the_health_wait() {
    let fx = Fixture::v1_v2().await;
    fx.set_target_states(
        &fx.stack.green_target_group_arn,
        json!([{"state": "initial"}]),
    );
    crash(&fx, &["deploy", "--image", "v1"], None, |a| {
        a == "DescribeTargetHealth"
    });
    fx.assert_weights(100, 0).await;
    fx.set_target_states(&fx.stack.green_target_group_arn, json!([]));
    recover(&fx, "v1", w(0, 100)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_between_the_listener_write_and_its_read_back() {
    let fx = Fixture::v1_v2().await;
    crash(
        &fx,
        &["deploy", "--image", "v1"],
        Some(
            json!({"action": "DescribeListeners", "after_action": "ModifyListener", "delay": 5, "status": 503}),
        ),
        |a| a == "ModifyListener",
    );
    // The write happened: green, whose new containers the health gate had trusted. It shows in
    // Describe* once the ELB API's lag has passed (bgcloud was killed before waiting for it).
    crate::support::emulator::after_describe_lag();
    fx.assert_weights(0, 100).await;
    let status = fx.bgcloud(&["status"]).json();
    assert_eq!(status["stable"], "green", "status reads the ALB: {status}");
    recover(&fx, "v2", w(100, 0)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_between_the_shift_and_the_record() {
    let fx = Fixture::v1_v2().await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green, recorded
    let put = fx.record_put();
    crash(
        &fx,
        &["deploy", "--image", "v2"],
        Some(json!({"action": put, "after_action": "ModifyListener", "delay": 5, "status": 503})),
        |a| a == put,
    );
    // Traffic is on blue (trusted healthy before the shift); the record still says green.
    fx.assert_weights(100, 0).await;
    let status = fx.bgcloud(&["status"]).json();
    assert_eq!(status["stable"], "blue");
    assert_eq!(
        status["record_matches"], false,
        "status says the record disagrees"
    );
    let text = fx.bgcloud(&["status"]).ok();
    assert!(
        text.stdout.contains("changed outside bgcloud"),
        "{}",
        text.stdout
    );
    recover(&fx, "v1", w(0, 100)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frontend_release_killed_between_assets_and_html_never_goes_live() {
    let fx = Fixture::new().await;
    fx.bgcloud(&["frontend", "deploy", &fx.site("1"), "--release-id", "r1"])
        .ok();
    let html = format!("PUT /{}/releases/r2/index.html", fx.stack.site_bucket);
    crash(
        &fx,
        &["frontend", "deploy", &fx.site("2"), "--release-id", "r2"],
        Some(json!({"action": html, "delay": 5, "status": 503})),
        |a| a == html,
    );
    let releases = fx.bgcloud(&["frontend", "releases"]).json();
    assert_eq!(
        releases["current"], "r1",
        "the half-written release never went live"
    );
    fx.bgcloud(&["lock", "release", "--force"]).ok();
    // The next release goes live; prune removes what the killed one left.
    fx.bgcloud(&["frontend", "deploy", &fx.site("3"), "--release-id", "r3"])
        .ok();
    let out = fx.bgcloud(&["frontend", "prune", "--keep", "1"]).json();
    assert!(
        out["deleted"].as_array().unwrap().iter().any(|d| d == "r2"),
        "{out}"
    );
    let left = fx
        .s3()
        .list_objects_v2()
        .bucket(&fx.stack.site_bucket)
        .prefix("releases/r2/")
        .send()
        .await
        .unwrap();
    assert_eq!(left.key_count(), Some(0), "nothing of r2 is left");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frontend_release_killed_between_the_switch_and_the_record() {
    let fx = Fixture::new().await;
    fx.bgcloud(&["frontend", "deploy", &fx.site("1"), "--release-id", "r1"])
        .ok();
    let put = fx.record_put();
    let switch = format!(
        "PUT /2020-05-31/distribution/{}/config",
        fx.stack.distribution_id
    );
    crash(
        &fx,
        &["frontend", "deploy", &fx.site("2"), "--release-id", "r2"],
        Some(json!({"action": put, "after_action": switch, "delay": 5, "status": 503})),
        |a| a == put,
    );
    // CloudFront is the truth: r2 is live although the record never heard of it.
    let releases = fx.bgcloud(&["frontend", "releases"]).json();
    assert_eq!(releases["current"], "r2", "{releases}");
    assert_eq!(fx.record().await["frontend"]["current"], "r1");
    fx.bgcloud(&["lock", "release", "--force"]).ok();
    fx.bgcloud(&["frontend", "deploy", &fx.site("3"), "--release-id", "r3"])
        .ok();
    assert_eq!(
        fx.bgcloud(&["frontend", "releases"]).json()["current"],
        "r3"
    );
}
