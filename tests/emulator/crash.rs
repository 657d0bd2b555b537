//! bgcloud killed with SIGKILL at every step of a deploy and of a frontend release: traffic stays
//! on a colour that was healthy, `status` tells the truth from the ALB, the next run refuses with
//! the stale lock's owner and age, and `lock release --force` followed by a new run recovers.

use crate::support::w;
use crate::support::Fixture;
use bgcloud::model::weights::Weights;
use serde_json::{json, Value};

/// Runs `args`, waits until it has made a request matching `reached`, and kills it (SIGKILL: no
/// cleanup of any kind).
pub(crate) fn crash(
    fx: &Fixture,
    args: &[&str],
    fault: Option<Value>,
    reached: impl Fn(&str) -> bool,
) {
    crash_once(fx, args, fault, |log| log.iter().any(|(_, a)| reached(a)));
}

/// Runs `args` and kills it (SIGKILL) as soon as `reached` holds for the requests it has made
/// (its own, in order: earlier commands' do not count).
pub(crate) fn crash_once(
    fx: &Fixture,
    args: &[&str],
    fault: Option<Value>,
    reached: impl Fn(&[(String, String)]) -> bool,
) {
    if let Some(f) = fault {
        fx.fault(f);
    }
    let from = fx.requests().len();
    let child = fx.bgcloud(args).spawn();
    fx.wait_until("the step to crash at", |log| {
        reached(&log[from.min(log.len())..])
    });
    crate::support::signal(&child, "KILL");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), None, "killed by a signal");
}

/// Whether `log` has a `then` after an `first` (a poll after the shift, say).
pub(crate) fn after(log: &[(String, String)], first: &str, then: &str) -> bool {
    log.iter()
        .position(|(_, a)| a == first)
        .is_some_and(|i| log[i + 1..].iter().any(|(_, a)| a == then))
}

/// Every target of the group reads healthy (read with the test's own client, once settled).
async fn assert_all_healthy(fx: &Fixture, target_group_arn: &str) {
    let states = fx.settled_states(target_group_arn).await;
    assert!(
        !states.is_empty() && states.iter().all(|s| s.2 == "healthy"),
        "{states:?}"
    );
}

/// After a crash that left traffic watched: the dead run still holds the lock (a `rollback`
/// now would ask it, and give up after a minute naming the way out); once released,
/// `rollback` puts all traffic back (`expect`).
async fn recover_by_rollback(fx: &Fixture, expect: Weights) {
    let out = fx.bgcloud(&["lock", "status"]).ok();
    assert!(out.stdout.contains("tester@"), "{}", out.stdout);
    fx.bgcloud(&["lock", "release", "--force"]).ok();
    fx.bgcloud(&["rollback"]).ok();
    assert_eq!(fx.weights().await, expect);
    assert!(!fx.lock_exists().await);
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
async fn killed_during_a_step_leaves_the_split_on_two_healthy_colours() {
    let fx = Fixture::v1_v2().await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green
                                                   // Killed while the first step (blue 10 %) is being watched, before the next one.
    crash_once(
        &fx,
        &[
            "deploy",
            "--image",
            "v2",
            "--steps",
            "10,50",
            "--interval",
            "30s",
        ],
        None,
        |log| after(log, "ModifyListener", "DescribeTargetHealth"),
    );
    crate::support::emulator::after_describe_lag();
    fx.assert_weights(10, 90).await;
    // Both colours that get traffic were trusted healthy, and still are.
    assert_all_healthy(&fx, &fx.stack.blue_target_group_arn).await;
    assert_all_healthy(&fx, &fx.stack.green_target_group_arn).await;
    // A new deploy is refused while the split stands; rollback ends it.
    fx.bgcloud(&["lock", "release", "--force"]).ok();
    fx.bgcloud(&["deploy", "--image", "v2"]).code(2);
    fx.bgcloud(&["rollback"]).ok();
    fx.assert_weights(0, 100).await;
    assert!(!fx.lock_exists().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_during_the_watch_leaves_traffic_on_the_trusted_colour() {
    let fx = Fixture::v1_v2().await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green
    crash_once(
        &fx,
        &["deploy", "--image", "v2", "--watch", "30s"],
        None,
        |log| after(log, "ModifyListener", "DescribeTargetHealth"),
    );
    crate::support::emulator::after_describe_lag();
    fx.assert_weights(100, 0).await;
    assert_all_healthy(&fx, &fx.stack.blue_target_group_arn).await;
    // The colour that lost traffic still runs v1, healthy: rollback is instant.
    assert_all_healthy(&fx, &fx.stack.green_target_group_arn).await;
    recover_by_rollback(&fx, w(0, 100)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_during_the_smoke_test_leaves_traffic_and_record_alone() {
    let fx = Fixture::v1_v2_with("[backend.preview]\nheader = \"X-Bgcloud-Preview\"").await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green
    let record = fx.record().await;
    let started = fx.dir.path().join("smoke-started");
    let smoke = format!("touch {}; sleep 20", started.display());
    let child = fx
        .bgcloud(&["deploy", "--image", "v2", "--smoke", &smoke])
        .spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the smoke test never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    crate::support::signal(&child, "KILL");
    child.wait_with_output().unwrap();
    fx.assert_weights(0, 100).await;
    assert_eq!(fx.record().await, record, "the record is as it was");
    assert_eq!(
        fx.count("ModifyListener"),
        1,
        "only the first deploy's shift"
    );
    // The next run, once the lock is released, goes through.
    fx.bgcloud(&["lock", "release", "--force"]).ok();
    fx.bgcloud(&["deploy", "--image", "v2"]).ok();
    fx.assert_weights(100, 0).await;
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
