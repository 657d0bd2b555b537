//! `bgcloud sync`: instances that joined after a deploy, or whose containers went missing or
//! stale, are brought in line with the desired state, with the health gate and without moving
//! traffic; `status` shows the stored result without asking any instance.

use crate::support::Fixture;
use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use bgcloud::model::weights::Weights;
use serde_json::{json, Value};

/// Green then blue deployed: both colours have a desired state; blue is live.
async fn deployed() -> Fixture {
    let fx = Fixture::v1_v2().await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green
    fx.bgcloud(&["deploy", "--image", "v2"]).ok(); // blue
    fx
}

/// A new instance of the app, registered in both target groups as an Auto Scaling group
/// registers one, with nothing listening on either colour's port yet.
async fn join(fx: &Fixture) -> String {
    let id = fx.run_instance(true).await;
    for (arn, port) in [
        (&fx.stack.blue_target_group_arn, 8081),
        (&fx.stack.green_target_group_arn, 8082),
    ] {
        crate::support::control(
            "container",
            json!({"instance_id": id, "port": port, "behaviour": {"down": true}}),
        );
        fx.aws
            .elb
            .register_targets()
            .target_group_arn(arn)
            .targets(TargetDescription::builder().id(&id).port(port).build())
            .send()
            .await
            .unwrap();
    }
    id
}

/// The scripts bgcloud sent through SSM to `instance`, oldest first.
pub(crate) async fn scripts_sent_to(fx: &Fixture, instance: &str) -> Vec<String> {
    let out = fx
        .aws
        .ssm
        .list_commands()
        .instance_id(instance)
        .send()
        .await
        .unwrap();
    let mut commands: Vec<_> = out.commands().to_vec();
    commands.sort_by_key(|c| c.requested_date_time().map(|t| t.as_nanos()));
    commands
        .iter()
        .map(|c| c.parameters().unwrap()["commands"].join("\n"))
        .collect()
}

/// Someone restarts blue on `instance` with the old image by hand: blue's recorded script
/// with v1's digest, sent through SSM by the test.
pub(crate) async fn restart_blue_with_v1(fx: &Fixture, instance: &str) {
    let (blue, _) = fx.state_object("desired/blue.sh").await.unwrap();
    let stale = String::from_utf8(blue)
        .unwrap()
        .replace(&fx.stack.images["v2"], &fx.stack.images["v1"]);
    fx.send_script(instance, vec![stale]).await;
}

/// The state of `id`'s target in the group, read with the test's own client.
pub(crate) async fn state_in(fx: &Fixture, target_group_arn: &str, id: &str) -> String {
    fx.settled_states(target_group_arn)
        .await
        .into_iter()
        .find(|s| s.0 == id)
        .map(|s| s.2)
        .unwrap_or_else(|| "not registered".into())
}

/// When (the emulator's clock) targets were deregistered and commands sent, oldest first.
fn taken_out_and_launched(fx: &Fixture) -> (Vec<f64>, Vec<f64>) {
    let log = crate::support::request_log(&fx.access_key);
    let t = |action: &str| {
        log.iter()
            .filter(|r| r["action"] == action)
            .map(|r| r["t"].as_f64().unwrap())
            .collect::<Vec<_>>()
    };
    (t("DeregisterTargets"), t("SendCommand"))
}

/// Where `deployed()` leaves the traffic.
const BLUE_LIVE: Weights = Weights {
    blue: 100,
    green: 0,
};

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_joined_after_the_deploys_is_brought_in_line() {
    let fx = deployed().await;
    let new = join(&fx).await;
    let listener_writes = fx.count("ModifyListener");

    let plan = fx.bgcloud(&["sync", "--dry-run"]).ok();
    let name = &fx.stack.spec.name;
    for color in ["blue", "green"] {
        assert!(
            plan.stdout.contains(&format!(
                "relaunch  {new} {color}: no {name}-{color} container"
            )),
            "{}",
            plan.stdout
        );
    }
    for old in &fx.stack.instance_ids {
        let relaunch = format!("relaunch  {old}");
        assert!(!plan.stdout.contains(&relaunch), "{}", plan.stdout);
    }
    assert!(!fx.lock_exists().await);
    assert_eq!(
        scripts_sent_to(&fx, &new).await.len(),
        1,
        "only the inspect"
    );

    let synced = fx.bgcloud(&["sync"]).json();
    let relaunched: Vec<&Value> = synced["relaunch"].as_array().unwrap().iter().collect();
    assert_eq!(relaunched.len(), 2, "{synced}");
    assert!(relaunched.iter().all(|r| r["instance_id"] == new.as_str()));

    // Both colours run there now with the recorded scripts, healthy; traffic never moved.
    let sent = scripts_sent_to(&fx, &new).await;
    for color in ["blue", "green"] {
        let (desired, _) = fx
            .state_object(&format!("desired/{color}.sh"))
            .await
            .unwrap();
        let desired = String::from_utf8(desired).unwrap();
        // As sent: the wait for the instance's boot, then the stored script as it is.
        let as_sent = format!("{}\n{desired}", bgcloud::backend::script::boot_wait());
        assert!(sent.iter().any(|s| s == &as_sent), "{color}.sh was not run");
    }
    for arn in [
        &fx.stack.blue_target_group_arn,
        &fx.stack.green_target_group_arn,
    ] {
        assert_eq!(state_in(&fx, arn, &new).await, "healthy");
    }
    assert_eq!(fx.count("ModifyListener"), listener_writes);
    assert_eq!(fx.weights().await, BLUE_LIVE);
    assert!(!fx.lock_exists().await);

    let status = fx.bgcloud(&["status"]).ok();
    assert!(
        status
            .stdout
            .contains("brought in line (2 relaunched, 0 registered)"),
        "{}",
        status.stdout
    );
    let commands_before_status = fx.count("SendCommand");
    let json = fx.bgcloud(&["status"]).json();
    assert_eq!(json["last_sync"]["relaunched"].as_array().unwrap().len(), 2);
    assert_eq!(
        fx.count("SendCommand"),
        commands_before_status,
        "status asks no instance"
    );

    // Nothing left to do: one inspect, no launch.
    let again = fx.bgcloud(&["sync"]).ok();
    assert!(
        again.stdout.contains("the fleet is in line"),
        "{}",
        again.stdout
    );
    assert_eq!(fx.count("SendCommand"), commands_before_status + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_container_that_serves_traffic_leaves_its_group_and_drains_first() {
    let fx = deployed().await;
    // Someone restarted blue (live) on one instance with the old image, by hand.
    let victim = fx.stack.instance_ids[0].clone();
    restart_blue_with_v1(&fx, &victim).await;

    let plan = fx.bgcloud(&["sync", "--dry-run"]).ok();
    assert!(
        plan.stdout
            .contains(&format!("relaunch  {victim} blue: runs sha256:"))
            && plan
                .stdout
                .contains("(serves traffic: out of the target group and drained first)"),
        "{}",
        plan.stdout
    );
    let out = fx.bgcloud(&["sync"]).ok();
    out.assert_stderr_has("draining");

    // Out of the group before the relaunch was sent, back in and healthy after.
    let (out_at, launches) = taken_out_and_launched(&fx);
    assert_eq!(out_at.len(), 1, "exactly one instance taken out");
    let relaunch_at = *launches.last().unwrap();
    assert!(
        relaunch_at - out_at[0] >= 1.0,
        "drained for the 1 s delay first"
    );
    assert_eq!(
        state_in(&fx, &fx.stack.blue_target_group_arn, &victim).await,
        "healthy"
    );
    assert_eq!(fx.weights().await, BLUE_LIVE);
    let again = fx.bgcloud(&["sync", "--dry-run"]).ok();
    assert!(again.stdout.contains("in line"), "{}", again.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_killed_after_taking_a_serving_target_out_leaves_none_out_after_the_next() {
    let fx = deployed().await;
    let victim = fx.stack.instance_ids[0].clone();
    restart_blue_with_v1(&fx, &victim).await;
    // Killed once the stale target is out of the live group, before its relaunch.
    crate::crash::crash(&fx, &["sync"], None, |a| a == "DeregisterTargets");
    assert_ne!(
        state_in(&fx, &fx.stack.blue_target_group_arn, &victim).await,
        "healthy",
        "taken out by the killed run"
    );
    assert_eq!(fx.weights().await, BLUE_LIVE);
    fx.bgcloud(&["lock", "release", "--force"]).ok();
    fx.bgcloud(&["sync"]).ok();
    // Every instance serves blue again, the victim with blue's recorded image.
    for id in &fx.stack.instance_ids {
        assert_eq!(
            state_in(&fx, &fx.stack.blue_target_group_arn, id).await,
            "healthy",
            "{id}"
        );
    }
    let last = scripts_sent_to(&fx, &victim).await.pop().unwrap();
    assert!(last.contains(&fx.stack.images["v2"]), "{last}");
    assert_eq!(fx.weights().await, BLUE_LIVE);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_after_a_killed_one_waits_only_for_what_is_left_of_the_drain() {
    let fx = deployed().await;
    let delay = 6.0;
    fx.set_deregistration_delay(&fx.stack.blue_target_group_arn, delay as u64)
        .await;
    let victim = fx.stack.instance_ids[0].clone();
    restart_blue_with_v1(&fx, &victim).await;
    crate::crash::crash(&fx, &["sync"], None, |a| a == "DeregisterTargets");
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    fx.bgcloud(&["lock", "release", "--force"]).ok();
    let out = fx.bgcloud(&["sync"]).ok();
    out.assert_stderr_has("drained after");

    // Relaunched once the killed run's deregistration had drained (the group showed it
    // draining until its delay was over), not after a whole delay counted again from now.
    let (out_at, launches) = taken_out_and_launched(&fx);
    assert_eq!(out_at.len(), 1, "taken out once, by the killed run");
    let relaunched = *launches.last().unwrap() - out_at[0];
    assert!(
        relaunched >= delay - 0.5 && relaunched < delay + 2.5,
        "relaunched {relaunched:.1} s after the deregistration (delay {delay} s)"
    );
    assert_eq!(
        state_in(&fx, &fx.stack.blue_target_group_arn, &victim).await,
        "healthy"
    );
    assert_eq!(fx.weights().await, BLUE_LIVE);
}

#[tokio::test(flavor = "multi_thread")]
async fn what_cannot_be_brought_in_line_is_named_exit_1_and_kept_for_status() {
    let fx = deployed().await;
    let new = join(&fx).await;
    // Green's recorded image now fails its health check on any new container.
    fx.image_behaviour("v1", json!({"status": 500}));
    let out = fx.bgcloud(&["sync", "--health-timeout", "7s"]).code(1);
    // Its relaunch's readiness probe was still waiting when the deadline passed.
    out.assert_stderr_has(&format!(
        "error: sync could not bring the fleet in line: green on {new}: the launch command was still running on {new} when the deadline passed"
    ));
    // Blue was still repaired; traffic untouched; the result is stored.
    assert_eq!(
        state_in(&fx, &fx.stack.blue_target_group_arn, &new).await,
        "healthy"
    );
    assert_eq!(fx.weights().await, BLUE_LIVE);
    let status = fx.bgcloud(&["status"]).ok();
    assert!(
        status.stdout.contains(&format!(
            "not in line: green on {new}: the launch command was still running"
        )),
        "{}",
        status.stdout
    );
    assert!(!fx.lock_exists().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_deployed_yet_is_refused() {
    let fx = Fixture::new().await;
    let out = fx.bgcloud(&["sync"]).code(2);
    out.assert_stderr_has("nothing to sync");
    assert_eq!(fx.count("SendCommand"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_only_healthy_target_of_a_serving_colour_is_never_taken_out() {
    let fx = Fixture::with(|s| {
        s.instances = 1;
        s.image_tags = vec!["v1".into(), "v2".into()];
    })
    .await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green
    fx.bgcloud(&["deploy", "--image", "v2"]).ok(); // blue live, on one instance
    let only = fx.stack.instance_ids[0].clone();
    restart_blue_with_v1(&fx, &only).await;
    let out = fx.bgcloud(&["sync"]).code(1);
    assert!(
        out.stderr.contains("the only healthy target blue has"),
        "{}",
        out.stderr
    );
    assert_eq!(fx.count("DeregisterTargets"), 0, "never taken out");
    assert_eq!(
        state_in(&fx, &fx.stack.blue_target_group_arn, &only).await,
        "healthy"
    );
    let status = fx.bgcloud(&["status"]).json();
    assert_eq!(status["last_sync"]["relaunched"], json!([]), "{status}");
}
