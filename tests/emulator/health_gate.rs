//! The health gate against the emulator's model of the ALB's health checks: a stale `healthy`
//! never lets a broken image get traffic, the wait is the ALB's physics and no longer, plain
//! listeners are adopted, a changed port leaves no target behind.

use std::time::Duration;

use crate::support::Fixture;
use serde_json::json;

async fn fixture() -> Fixture {
    Fixture::with_tags(&["v1", "v2", "bad"]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_image_fails_its_launch_on_the_instance_with_the_probes_reason() {
    let fx = fixture().await;
    // The image answers 500 on the health check path: the launch script's readiness probe,
    // which asks what the ALB will ask, fails the launch on the instance itself.
    fx.image_behaviour("bad", json!({"status": 500}));
    let out = fx.bgcloud(&["deploy", "--image", "bad"]).code(1);
    out.assert_stderr_has(
        "error: the launch command failed on 2 of 2 instances; traffic was not changed.",
    );
    out.assert_stderr_has(&format!(
        "bgcloud: {}-green is not ready: http://127.0.0.1:8082/healthz answered 500, the target group expects 200-399 (waited",
        fx.stack.spec.name
    ));
    fx.assert_weights(100, 0).await;
    assert!(fx.record().await.is_null(), "nothing recorded");
    assert_eq!(fx.count("ModifyListener"), 0, "no listener write at all");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_image_on_a_colour_that_was_healthy_never_gets_traffic() {
    let fx = fixture().await;
    // Green has been healthy all along; the new image passes the probe on the instance, then
    // answers 500 on the health check path.
    fx.image_behaviour("bad", crate::support::ready_then_500());
    let started = std::time::Instant::now();
    let out = fx.bgcloud(&["deploy", "--image", "bad"]).code(1);
    assert!(
        out.stderr
            .contains("green reads unhealthy 5s after the launch")
            && out.stderr.contains("Target.ResponseCodeMismatch")
            && out.stderr.contains("[500]"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Traffic was not changed"),
        "{}",
        out.stderr
    );
    // It failed as soon as the ALB noticed, not at --health-timeout (30 s).
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    fx.assert_weights(100, 0).await;
    assert!(fx.record().await.is_null(), "nothing recorded");
    assert!(
        !fx.requests().iter().any(|(_, a)| a == "ModifyListener"),
        "no listener write at all"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_verdict_is_trusted_only_after_the_alb_had_time_to_judge() {
    // interval 5 s, thresholds 2/2, timeout 2 s: (max(2, 2) + 1) × 5 s + 5 s + 2 s = 22 s after
    // the launch.
    let fx = Fixture::with(|s| s.health_check = (5, 2, 2)).await;
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    assert!(
        out.stderr.contains("green: 2 of 2 healthy, trusting in"),
        "the progress line says what it waits for: {}",
        out.stderr
    );
    let log = crate::support::request_log(&fx.access_key);
    let t = |action: &str| -> Vec<f64> {
        log.iter()
            .filter(|r| r["action"] == action)
            .map(|r| r["t"].as_f64().unwrap())
            .collect()
    };
    let launched = *t("GetCommandInvocation").last().unwrap();
    let shifted = t("ModifyListener")[0];
    let waited = shifted - launched;
    // poll_interval is 100 ms in the fixture's config.
    // Never less than the ALB's physics; the upper bound only says it does not wait on.
    assert!(
        (22.0..=22.0 + 5.0).contains(&waited),
        "waited {waited:.2} s between the launch and the shift"
    );
    fx.assert_weights(0, 100).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_colour_that_is_down_is_waited_for_until_its_new_container_is_healthy() {
    let fx = fixture().await;
    fx.containers(8082, json!({"down": true}));
    fx.wait_for_targets(&fx.stack.green_target_group_arn, "unhealthy")
        .await;
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    assert!(
        out.stderr.contains("unhealthy (Target.FailedHealthChecks"),
        "the wait names what it waits for: {}",
        out.stderr
    );
    fx.assert_weights(0, 100).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn targets_not_trusted_by_the_deadline_cancel_the_launch_and_change_nothing() {
    let fx = fixture().await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green
    fx.bgcloud(&["deploy", "--image", "v2"]).ok(); // blue
    let record = fx.record().await;
    // An image that accepts connections and never answers: the launch's readiness probe is
    // still waiting for it on every instance when --health-timeout runs out.
    fx.image_behaviour("bad", json!({"timeout": true}));
    let out = fx
        .bgcloud(&["deploy", "--image", "bad", "--health-timeout", "8s"])
        .code(1);
    let mut ids = fx.stack.instance_ids.clone();
    ids.sort();
    let ids = ids.join(", ");
    out.assert_stderr_has(&format!(
        "error: the launch command was still running on {ids} when the deadline passed, and was cancelled there; traffic was not changed."
    ));
    assert_eq!(fx.count("CancelCommand"), 1, "{:?}", fx.requests());
    fx.assert_weights(100, 0).await;
    assert_eq!(fx.record().await, record, "the record is as it was");
    assert!(!fx.lock_exists().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_health_timeout_shorter_than_the_albs_judgement_is_refused_before_any_change() {
    let fx = Fixture::with(|s| s.health_check = (5, 3, 2)).await;
    let out = fx
        .bgcloud(&["deploy", "--image", "v1", "--health-timeout", "10s"])
        .code(2);
    assert!(
        out.stderr.contains("(max(3, 2) + 1) × 5s + 5s + 2s = 27s")
            && out.stderr.contains("--health-timeout"),
        "{}",
        out.stderr
    );
    fx.assert_no_writes_but_lock();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_colour_port_takes_the_old_registration_out() {
    let fx = fixture().await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green on 8082
    fx.bgcloud(&["deploy", "--image", "v2"]).ok(); // blue
    fx.write_config(
        &fx.stack
            .config_toml("")
            .replace("green_port = 8082", "green_port = 8092"),
    );
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    assert!(
        out.stderr.contains("deregistering") && out.stderr.contains(":8082"),
        "{}",
        out.stderr
    );
    let states = fx.settled_states(&fx.stack.green_target_group_arn).await;
    for id in &fx.stack.instance_ids {
        assert!(
            states
                .iter()
                .any(|s| &s.0 == id && s.1 == 8092 && s.2 == "healthy"),
            "{states:?}"
        );
        assert!(
            !states
                .iter()
                .any(|s| &s.0 == id && s.1 == 8082 && s.2 != "draining"),
            "the old port's target is draining or gone: {states:?}"
        );
    }
    fx.assert_weights(0, 100).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_forward_is_adopted_before_the_health_wait() {
    let fx = fixture().await;
    plain_forward(&fx, &fx.stack.blue_target_group_arn).await;
    fx.wait_for_targets(&fx.stack.green_target_group_arn, "unused")
        .await;

    let dry = fx.bgcloud(&["deploy", "--image", "v1", "--dry-run"]).ok();
    assert!(
        dry.stdout.contains("adopt") && dry.stdout.contains("blue 100 % / green 0 %"),
        "{}",
        dry.stdout
    );
    assert_eq!(fx.writes_but_lock(), vec![], "a dry run adopts nothing");

    let out = fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    assert!(
        out.stderr.contains("forwarded to blue only") && out.stderr.contains("no traffic moved"),
        "{}",
        out.stderr
    );
    fx.assert_weights(0, 100).await;
    let writes: Vec<_> = fx
        .requests()
        .into_iter()
        .filter(|(_, a)| a == "ModifyListener")
        .collect();
    assert_eq!(writes.len(), 2, "adoption, then the shift: {writes:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_forward_to_another_group_is_still_refused() {
    let fx = fixture().await;
    let other = fx
        .aws
        .elb
        .create_target_group()
        .name(format!("{}-other", fx.stack.spec.name))
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(9000)
        .vpc_id(&fx.stack.vpc_id)
        .send()
        .await
        .unwrap();
    let other = other.target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    plain_forward(&fx, &other).await;
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(2);
    assert!(out.stderr.contains(&other), "{}", out.stderr);
    fx.assert_no_writes_but_lock();
}

#[tokio::test(flavor = "multi_thread")]
async fn rule_arn_naming_the_default_rule_is_refused_at_the_start() {
    let fx = fixture().await;
    let rules = fx.listener_rules().await;
    let default = rules
        .iter()
        .find(|r| r.is_default() == Some(true))
        .and_then(|r| r.rule_arn())
        .unwrap()
        .to_string();
    fx.write_config(&fx.stack.config_toml(&format!("rule_arn = \"{default}\"")));
    for cmd in [
        &["deploy", "--image", "v1"][..],
        &["status"],
        &["shift", "--to", "green"],
    ] {
        let out = fx.bgcloud(cmd).code(2);
        assert!(
            out.stderr.contains("default rule") && out.stderr.contains("remove rule_arn"),
            "{cmd:?}: {}",
            out.stderr
        );
    }
    fx.assert_no_writes_but_lock();
    fx.assert_weights(100, 0).await;
}

/// Replaces the listener's action with a plain forward (`TargetGroupArn`), the way most
/// listeners are created.
async fn plain_forward(fx: &Fixture, target_group_arn: &str) {
    use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum};
    fx.aws
        .elb
        .modify_listener()
        .listener_arn(&fx.stack.listener_arn)
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(target_group_arn)
                .build(),
        )
        .send()
        .await
        .unwrap();
}
