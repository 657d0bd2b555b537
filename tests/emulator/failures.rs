//! Every row of the failure table (docs/guide/failures.md) and every exit code, each proven against the real
//! state (listener, record, lock, buckets, distribution) read with the test's own clients.

use crate::support::{stack, Fixture};
use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, FixedResponseActionConfig};
use serde_json::{json, Value};

/// A weighted forward blue 100 / green 0 with an explicit order.
fn ordered(blue: &str, green: &str, order: i32) -> Action {
    let mut action = stack::forward(&[(blue, 100), (green, 0)]);
    action.order = Some(order);
    action
}

const SWALLOWED_MODIFY_LISTENER: &str = "<ModifyListenerResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><ModifyListenerResult><Listeners/></ModifyListenerResult><ResponseMetadata><RequestId>swallowed</RequestId></ResponseMetadata></ModifyListenerResponse>";

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_record_write_after_a_verified_shift_is_exit_0_with_a_warning() {
    let fx = Fixture::v1_v2().await;
    fx.fault(
        json!({"action": fx.record_put(), "status": 500, "code": "InternalError",
                    "times": 20, "after_action": "ModifyListener"}),
    );
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    assert!(
        out.stdout.contains(
            "warning: traffic is at blue 0 % / green 100 % (verified), but recording it failed"
        ),
        "{}",
        out.stdout
    );
    fx.assert_weights(0, 100).await;
    assert!(
        fx.record().await.is_null(),
        "the record could not be written"
    );
    let status = fx.bgcloud(&["status"]).json();
    assert_eq!(
        status["stable"], "green",
        "status tells the truth from the ALB"
    );
    assert!(!fx.lock_exists().await);

    // With an older record in place, status says it disagrees.
    fx.clear_faults();
    fx.bgcloud(&["rollback"]).ok();
    fx.fault(
        json!({"action": fx.record_put(), "status": 500, "code": "InternalError",
                    "times": 20, "after_action": "ModifyListener"}),
    );
    fx.bgcloud(&["shift", "--to", "green"]).ok();
    let status = fx.bgcloud(&["status"]).json();
    assert_eq!(status["record_matches"], false, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listener_write_that_does_not_take_is_caught_by_the_read_back() {
    let fx = Fixture::v1_v2().await;
    // AWS acknowledges the write but the listener stays as it was.
    fx.fault(json!({"action": "ModifyListener", "swallow": true,
                    "body": SWALLOWED_MODIFY_LISTENER, "times": 1}));
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(1);
    assert!(
        out.stderr.contains(
            "still reads blue 100 % / green 0 % 3s after bgcloud set blue 0 % / green 100 %"
        ) && out
            .stderr
            .contains("the listener is still at blue 100 % / green 0 %"),
        "{}",
        out.stderr
    );
    fx.assert_weights(100, 0).await;
    assert!(fx.record().await.is_null());
    assert!(!fx.lock_exists().await);
}

/// The dangerous failure: AWS makes the change and answers 500 (with no retry left), so bgcloud
/// sees a failed write while the listener has moved, and a read right after it still shows the
/// old weights (the emulator's Describe* lag). bgcloud writes the old weights back and reads
/// them back.
#[tokio::test(flavor = "multi_thread")]
async fn a_listener_write_applied_but_answered_with_a_5xx_is_put_back() {
    let fx = Fixture::v1_v2().await;
    fx.fault(
        json!({"action": "ModifyListener", "apply_then_fail": true, "status": 500,
                    "code": "InternalFailure", "times": 1}),
    );
    let out = fx
        .bgcloud(&["deploy", "--image", "v1", "--max-attempts", "1"])
        .code(1);
    assert!(
        out.stderr.contains("setting blue 0 % / green 100 %")
            && out
                .stderr
                .contains("traffic was put back to blue 100 % / green 0 % (verified)"),
        "{}",
        out.stderr
    );
    // The attempt, applied; then bgcloud's own put-back.
    assert_eq!(fx.count("ModifyListener"), 2);
    crate::support::emulator::after_describe_lag();
    fx.assert_weights(100, 0).await;
    assert!(fx.record().await.is_null());
    assert!(!fx.lock_exists().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listener_write_that_fails_leaves_traffic_where_it_was() {
    let fx = Fixture::v1_v2().await;
    fx.fault(
        json!({"action": "ModifyListener", "status": 500, "code": "InternalFailure",
                    "times": 20}),
    );
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(1);
    // A 5xx does not say whether the change was made: bgcloud tries to write the old weights
    // back, which fails too, and says what the listener reads.
    assert!(
        out.stderr.contains("setting blue 0 % / green 100 %")
            && out
                .stderr
                .contains("putting traffic back to blue 100 % / green 0 % failed too")
            && out
                .stderr
                .contains("the listener reads blue 100 % / green 0 % now"),
        "{}",
        out.stderr
    );
    fx.assert_weights(100, 0).await;
    assert!(fx.record().await.is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_is_exit_130_with_the_lock_free_and_the_launch_cancelled() {
    let fx = Fixture::v1_v2().await;
    fx.hold_launch();
    let child = fx
        .bgcloud(&["deploy", "--image", "v1", "--health-timeout", "5m"])
        .spawn();
    fx.wait_for_request("the SSM wait", |a| a == "GetCommandInvocation");
    crate::support::signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(!fx.lock_exists().await);
    assert_eq!(fx.count("CancelCommand"), 1);
    fx.assert_weights(100, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupt_during_the_shift_leaves_status_telling_the_truth() {
    let fx = Fixture::v1_v2().await;
    // The read-back after the write is slow: the run is interrupted between the two.
    fx.fault(
        json!({"action": "DescribeListeners", "after_action": "ModifyListener",
                    "delay": 3, "status": 503, "times": 1}),
    );
    let child = fx.bgcloud(&["deploy", "--image", "v1"]).spawn();
    fx.wait_for_request("the listener write", |a| a == "ModifyListener");
    crate::support::signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(!fx.lock_exists().await);
    // The write went through; the record does not know it. status says both, once Describe*
    // shows the write (bgcloud was interrupted before its read-back waited for that).
    crate::support::emulator::after_describe_lag();
    fx.assert_weights(0, 100).await;
    let status = fx.bgcloud(&["status"]).json();
    assert_eq!(status["stable"], "green");
    assert!(fx.record().await.is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_after_an_outside_change_goes_by_the_listener() {
    let fx = Fixture::v1_v2().await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green, recorded
    fx.set_weights(70, 30).await; // someone else makes blue the majority
    let out = fx.bgcloud(&["rollback"]).ok();
    assert!(
        out.stderr.contains("changed outside bgcloud"),
        "{}",
        out.stderr
    );
    // A canary as the listener says: blue stable at 70, green the canary: abort the canary.
    fx.assert_weights(100, 0).await;

    // No record at all, a canary on the listener: all traffic to the majority colour.
    let fx = Fixture::v1_v2().await;
    fx.set_weights(20, 80).await;
    fx.bgcloud(&["rollback"]).ok();
    fx.assert_weights(0, 100).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listeners_bgcloud_does_not_manage_are_refused_without_a_write() {
    let fx = Fixture::v1_v2().await;
    let fixed = Action::builder()
        .r#type(ActionTypeEnum::FixedResponse)
        .fixed_response_config(
            FixedResponseActionConfig::builder()
                .status_code("503")
                .build(),
        )
        .build();
    let (blue, green) = (
        &fx.stack.blue_target_group_arn,
        &fx.stack.green_target_group_arn,
    );
    let cases: Vec<(Vec<Action>, &str)> = vec![
        (vec![fixed.clone()], "has no forward action"),
        (
            vec![ordered(blue, green, 1), ordered(blue, green, 2)],
            "2 forward actions",
        ),
        (
            vec![stack::forward(&[(blue, 0), (green, 0)])],
            "weight 0 to both",
        ),
    ];
    for (actions, says) in cases {
        fx.set_actions(actions).await;
        for cmd in [
            &["deploy", "--image", "v1"][..],
            &["shift", "--to", "green"],
            &["rollback"],
        ] {
            let out = fx.bgcloud(cmd).code(2);
            assert!(out.stderr.contains(says), "{cmd:?} {says}: {}", out.stderr);
        }
    }
    fx.assert_no_writes_but_lock();

    for (key, value, says) in [
        (
            "listener_arn",
            fx.stack.listener_arn.replace("/app/", "/app/x"),
            "does not exist: check listener_arn in the config",
        ),
        (
            "green_target_group_arn",
            fx.stack
                .green_target_group_arn
                .replace("targetgroup/", "targetgroup/x"),
            "or fix blue_target_group_arn/green_target_group_arn in the config",
        ),
    ] {
        let config = fx.stack.config_toml("").replace(
            &format!("{key} = \""),
            &format!("{key} = \"{value}\"\n# was: \""),
        );
        fx.write_config(&config);
        let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(2);
        // A listener that does not exist; a listener forwarding to a group the config does not
        // name (its own green group is not the configured one).
        assert!(out.stderr.contains(says), "{key}: {}", out.stderr);
    }
    fx.assert_no_writes_but_lock();
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_wait_running_out_is_exit_3_after_the_wait() {
    let fx = Fixture::v1_v2().await;
    fx.put_lock("carol@ci", "deploy v9", "2999-01-01T00:00:00Z")
        .await;
    let started = std::time::Instant::now();
    let out = fx
        .bgcloud(&["deploy", "--image", "v1", "--lock-wait", "2s"])
        .code(3);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "it waited"
    );
    assert!(
        out.stderr.contains("carol@ci") && out.stderr.contains("ago"),
        "the holder and the lock's age: {}",
        out.stderr
    );
    fx.assert_weights(100, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn of_two_runs_taking_over_one_expired_lock_only_one_wins() {
    let fx = Fixture::v1_v2().await;
    fx.put_lock("dead@runner", "deploy v0", "2020-01-01T00:00:00Z")
        .await;
    // bgcloud's create is refused (the expired lock is there), it reads the lock, and just
    // before its conditional takeover (If-Match: the expired lock's ETag) another run takes the
    // lock over first.
    let other = json!({"owner": "quick@other", "reason": "deploy v5", "started_at": "2026-11-27T00:00:00Z",
                       "expires_at": "2999-01-01T00:00:00Z", "token": "other"});
    let lock_key = format!("bgcloud/{}/lock.json", fx.stack.spec.name);
    let lock_put = format!("PUT /{}/{}", fx.stack.state_bucket, lock_key);
    crate::support::control(
        "s3-put-before",
        json!({"access_key": fx.access_key, "action": lock_put, "skip": 1,
               "bucket": fx.stack.state_bucket, "key": lock_key, "body": other.to_string(), "times": 1}),
    );
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(3);
    out.assert_stderr_has("quick@other");
    let puts: Vec<Value> = crate::support::request_log(&fx.access_key)
        .into_iter()
        .filter(|r| r["action"] == lock_put.as_str())
        .collect();
    // create (refused), takeover with If-Match (refused: the rival's write changed the ETag),
    // create again (refused), then "held by quick@other".
    assert!(
        puts[0]["if_none_match"] == "*" && puts[1]["if_match"].is_string(),
        "a create, then a conditional takeover: {puts:?}"
    );
    assert_eq!(puts.len(), 3, "{puts:?}");
    let (body, _) = fx.state_object("lock.json").await.expect("the lock");
    let lock: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(lock["owner"], "quick@other", "the rival keeps it: {lock}");
    assert!(!out.stderr.contains("took over"), "{}", out.stderr);
    assert_eq!(fx.count("SendCommand"), 0);
    fx.assert_weights(100, 0).await;
}

/// An endpoint without conditional deletes (LocalStack Community answers DeleteObject with
/// If-Match 501 NotImplemented) still gets its lock back: read, still this run's version,
/// deleted without the condition.
#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_without_conditional_deletes_still_gets_the_lock_back() {
    let fx = Fixture::v1_v2().await;
    let lock_key = format!("bgcloud/{}/lock.json", fx.stack.spec.name);
    let lock_delete = format!("DELETE /{}/{}", fx.stack.state_bucket, lock_key);
    let lock_get = format!("GET /{}/{}", fx.stack.state_bucket, lock_key);
    fx.fault(json!({"action": lock_delete, "code": "NotImplemented", "status": 501, "times": 1}));
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    out.assert_stderr_has("this endpoint does not implement conditional deletes");
    assert!(!fx.lock_exists().await, "the lock was given back");
    let log = crate::support::request_log(&fx.access_key);
    let deletes: Vec<&Value> = log
        .iter()
        .filter(|r| r["action"] == lock_delete.as_str())
        .collect();
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    assert!(deletes[0]["if_match"].is_string() && deletes[0]["fault"] == "NotImplemented");
    assert!(
        deletes[1]["if_match"].is_null(),
        "the second without the condition"
    );
    assert_eq!(
        log.iter()
            .filter(|r| r["action"] == lock_get.as_str())
            .count(),
        1,
        "one read between them"
    );
    // The next run is not held up by a lock left behind.
    fx.bgcloud(&["deploy", "--image", "v2"]).ok();
}

/// Without conditional deletes, a lock someone else took over in the meantime is left to them.
#[tokio::test(flavor = "multi_thread")]
async fn without_conditional_deletes_a_lock_that_is_no_longer_ours_is_left_alone() {
    let fx = Fixture::v1_v2().await;
    let lock_key = format!("bgcloud/{}/lock.json", fx.stack.spec.name);
    let lock_delete = format!("DELETE /{}/{}", fx.stack.state_bucket, lock_key);
    let lock_get = format!("GET /{}/{}", fx.stack.state_bucket, lock_key);
    fx.fault(json!({"action": lock_delete, "code": "NotImplemented", "status": 501, "times": 1}));
    // Another run's lock lands just before bgcloud reads it back to check it is still its own.
    let other = json!({"owner": "quick@other", "reason": "deploy v5", "started_at": "2026-11-27T00:00:00Z",
                       "expires_at": "2999-01-01T00:00:00Z", "token": "other"});
    crate::support::control(
        "s3-put-before",
        json!({"access_key": fx.access_key, "action": lock_get, "bucket": fx.stack.state_bucket,
               "key": lock_key, "body": other.to_string(), "times": 1}),
    );
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    out.assert_stderr_has("the deployment lock is no longer ours (held by quick@other");
    let (body, _) = fx.state_object("lock.json").await.expect("the lock");
    let lock: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(lock["owner"], "quick@other", "the rival keeps it: {lock}");
    let deletes = crate::support::request_log(&fx.access_key)
        .into_iter()
        .filter(|r| r["action"] == lock_delete.as_str())
        .count();
    assert_eq!(deletes, 1, "only the conditional one, refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lock_names_the_github_actions_run() {
    let fx = Fixture::v1_v2().await;
    fx.hold_launch();
    let child = fx
        .bgcloud(&["deploy", "--image", "v1", "--health-timeout", "5m"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_ACTOR", "octocat")
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_REPOSITORY", "acme/shop")
        .env("GITHUB_RUN_ID", "4242")
        .spawn();
    fx.wait_for_request("the SSM wait", |a| a == "GetCommandInvocation");
    let status = fx.bgcloud(&["lock", "status"]).json();
    assert_eq!(
        status["lock"]["owner"],
        "octocat (https://github.com/acme/shop/actions/runs/4242)"
    );
    crate::support::signal(&child, "INT");
    child.wait_with_output().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_ids_with_a_stopped_instance_is_refused() {
    let fx = Fixture::v1_v2().await;
    fx.aws
        .ec2
        .stop_instances()
        .instance_ids(&fx.stack.instance_ids[1])
        .send()
        .await
        .unwrap();
    let ids = fx
        .stack
        .instance_ids
        .iter()
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let config = fx
        .stack
        .config_naming_instances(&format!("instance_ids = [{ids}]"));
    fx.write_config(&config);
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(2);
    assert!(
        out.stderr
            .contains(&format!("{} (stopped)", fx.stack.instance_ids[1])),
        "{}",
        out.stderr
    );
    fx.assert_no_writes_but_lock();
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_images_are_refused_naming_the_five_newest_tags() {
    let fx = Fixture::with(|s| {
        s.image_tags = ["v1", "v2", "v3", "v4", "v5", "v6", "v7"]
            .map(String::from)
            .to_vec()
    })
    .await;
    let out = fx.bgcloud(&["deploy", "--image", "v9"]).code(2);
    let listed: Vec<&str> = ["v1", "v2", "v3", "v4", "v5", "v6", "v7"]
        .into_iter()
        .filter(|t| {
            out.stderr.contains(&format!("{t},"))
                || out.stderr.contains(&format!("{t})"))
                || out.stderr.contains(&format!("{t} "))
        })
        .collect();
    assert_eq!(listed.len(), 5, "five tags named: {}", out.stderr);
    let unknown = format!("sha256:{}", "0".repeat(64));
    let out = fx.bgcloud(&["deploy", "--image", &unknown]).code(2);
    assert!(out.stderr.contains(&unknown), "{}", out.stderr);
    fx.assert_no_writes_but_lock();
}

#[tokio::test(flavor = "multi_thread")]
async fn frontend_refusals_and_failures() {
    let fx = Fixture::new().await;
    // Rollback with nothing to go back to.
    let out = fx.bgcloud(&["frontend", "rollback"]).code(2);
    assert!(
        out.stderr.contains("no previous frontend release"),
        "{}",
        out.stderr
    );
    fx.bgcloud(&["frontend", "deploy", &fx.site("1"), "--release-id", "r1"])
        .ok();
    // An existing release id.
    let out = fx
        .bgcloud(&["frontend", "deploy", &fx.site("2"), "--release-id", "r1"])
        .code(2);
    assert!(
        out.stderr.contains("release r1 already exists"),
        "{}",
        out.stderr
    );
    // Rollback to the live one.
    let out = fx.bgcloud(&["frontend", "rollback", "--to", "r1"]).code(2);
    out.assert_stderr_has("already live");

    // 412 on every try: another writer changes the distribution after each of bgcloud's reads
    // (the release's look at the distribution, then one read per switch attempt).
    let update = format!(
        "PUT /2020-05-31/distribution/{}/config",
        fx.stack.distribution_id
    );
    let before = fx.count_prefix(&update);
    crate::support::control(
        "cloudfront-etag",
        json!({"distribution_id": fx.stack.distribution_id, "after_reads": 10}),
    );
    let out = fx
        .bgcloud(&["frontend", "deploy", &fx.site("2"), "--release-id", "r2"])
        .code(1);
    assert!(
        out.stderr.contains(&format!(
            "distribution {} kept changing while bgcloud switched it (5 tries)",
            fx.stack.distribution_id
        )),
        "{}",
        out.stderr
    );
    assert_eq!(fx.count_prefix(&update) - before, 5, "five attempts");
    let live = fx.bgcloud(&["frontend", "releases"]).json();
    assert_eq!(live["current"], "r1", "{live}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalidation_that_never_completes_times_out_with_the_release_live() {
    let fx = Fixture::new().await;
    let config = std::fs::read_to_string(&fx.config)
        .unwrap()
        .replace("wait_timeout = \"20s\"", "wait_timeout = \"2s\"");
    fx.write_config(&config);
    let in_progress = "<?xml version=\"1.0\"?><Invalidation xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\"><Id>I1</Id><Status>InProgress</Status><CreateTime>2026-01-01T00:00:00Z</CreateTime><InvalidationBatch><Paths><Quantity>1</Quantity><Items><Path>/index.html</Path></Items></Paths><CallerReference>x</CallerReference></InvalidationBatch></Invalidation>";
    fx.fault(json!({"action_prefix": format!("GET /2020-05-31/distribution/{}/invalidation/", fx.stack.distribution_id),
                    "swallow": true, "body": in_progress, "times": 1000}));
    let out = fx
        .bgcloud(&["frontend", "deploy", &fx.site("1"), "--release-id", "r1"])
        .code(1);
    assert!(
        out.stderr.to_lowercase().contains("invalidation"),
        "{}",
        out.stderr
    );
    let releases = fx.bgcloud(&["frontend", "releases"]).json();
    assert_eq!(releases["current"], "r1", "the switch happened: {releases}");
    assert_eq!(
        fx.record().await["frontend"]["current"],
        "r1",
        "and was recorded before the wait"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_file_goes_up_in_parts_and_is_reused_by_its_content_hash() {
    let fx = Fixture::new().await;
    let site = fx.site("1");
    let big = std::path::Path::new(&site).join("assets/video-0a1b2c3d.webm");
    std::fs::write(&big, vec![7u8; 17 * 1024 * 1024]).unwrap();
    fx.bgcloud(&["frontend", "deploy", &site, "--release-id", "r1"])
        .ok();
    assert!(
        fx.count_prefix("POST ") >= 2,
        "multipart: create and complete"
    );
    let before = fx.requests().len();
    // A new release with the same big asset and a changed index.html: the asset is reused.
    std::fs::write(
        std::path::Path::new(&site).join("index.html"),
        "<!doctype html><script type=module src=/assets/index-x.js></script>",
    )
    .unwrap();
    fx.bgcloud(&["frontend", "deploy", &site, "--release-id", "r2"])
        .ok();
    let uploads: Vec<_> = fx.requests()[before..]
        .iter()
        .filter(|(_, a)| {
            a.contains("video-0a1b2c3d.webm") && !a.starts_with("HEAD ") && !a.starts_with("GET ")
        })
        .cloned()
        .collect();
    assert_eq!(uploads, vec![], "the big asset was not uploaded again");
}
