//! The idle colour asleep (`bgcloud idle stop|start`, `[backend] idle = "stop"`): its targets out
//! of its group, its containers stopped (the inspect script reads them `exited`), its desired
//! state marked so that `sync` and a booting instance leave it stopped; a rollback to it starts
//! it, gates it, then moves traffic; a deploy onto it works as onto any idle colour.

use std::time::{Duration, Instant};

use crate::support::Fixture;
use serde_json::Value;

use super::sync::scripts_sent_to;

/// Green (v1) then blue (v2) deployed: blue is live, green idle.
async fn deployed(extra_backend: &str) -> Fixture {
    let fx = Fixture::with_tags(&["v1", "v2", "v3"]).await;
    fx.write_config(&fx.stack.config_toml(extra_backend));
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green
    fx.bgcloud(&["deploy", "--image", "v2"]).ok(); // blue
    fx
}

/// What bgcloud's own inspect script prints on `instance` (sent by the test through SSM).
async fn inspect(fx: &Fixture, instance: &str) -> String {
    let script = bgcloud::backend::script::inspect(&fx.stack.spec.name);
    let id = fx.send_script(instance, script).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = fx
            .aws
            .ssm
            .get_command_invocation()
            .command_id(&id)
            .instance_id(instance)
            .send()
            .await;
        if let Ok(out) = got {
            if out.status().map(|s| s.as_str()) == Some("Success") {
                return out
                    .standard_output_content()
                    .unwrap_or_default()
                    .to_string();
            }
        }
        assert!(Instant::now() < deadline, "the inspect command never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn desired_green(fx: &Fixture) -> String {
    String::from_utf8(fx.state_object("desired/green.sh").await.unwrap().0).unwrap()
}

fn green(fx: &Fixture) -> &str {
    &fx.stack.green_target_group_arn
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_stop_takes_the_idle_colour_out_stops_it_and_sync_leaves_it_stopped() {
    let fx = deployed("").await;
    let app = fx.stack.spec.name.clone();
    let launch = desired_green(&fx).await;
    let instance = fx.stack.instance_ids[0].clone();

    let mark = fx.mark();
    let plan = fx.bgcloud(&["idle", "stop", "--dry-run"]).ok();
    assert!(
        plan.stdout.contains("idle stop plan") && plan.stdout.contains("blue keeps all traffic"),
        "{}",
        plan.stdout
    );
    fx.assert_no_writes_but_lock_since(mark);

    let stopped = fx.bgcloud(&["idle", "stop"]).json();
    assert_eq!(stopped["color"], "green");
    assert_eq!(stopped["already"], false);
    assert_eq!(stopped["targets"].as_array().unwrap().len(), 2);
    // What the user notices: green is out of its group, blue still has everything.
    assert!(fx.settled_states(green(&fx)).await.is_empty());
    fx.assert_weights(100, 0).await;
    // Each instance got the stop script, and its container reads stopped, not removed.
    for id in &fx.stack.instance_ids {
        let last = scripts_sent_to(&fx, id).await.pop().unwrap();
        assert!(
            last.contains(&format!("# bgcloud: stop {app}-green on this instance")),
            "{last}"
        );
        let found = inspect(&fx, id).await;
        let v1 = &fx.stack.images["v1"];
        assert!(
            found.contains(&format!("{app}-green exited {v1}")),
            "{found}"
        );
        assert!(found.contains(&format!("{app}-blue running")), "{found}");
    }
    // Marked for the instances (the launch script kept below) and in the record.
    let asleep = desired_green(&fx).await;
    assert!(
        asleep.starts_with("#!/bin/sh\n# bgcloud.stopped=") && asleep.ends_with(&launch),
        "{asleep}"
    );
    let record = fx.record().await;
    assert_eq!(record["backend"]["stopped"]["color"], "green");
    assert_eq!(
        record["history"].as_array().unwrap().last().unwrap()["kind"],
        "idle-stop"
    );
    let status = fx.bgcloud(&["status"]).ok();
    assert!(
        status.stdout.contains("green: stopped since")
            && status.stdout.contains("rollback takes about"),
        "{}",
        status.stdout
    );
    // Again: marked and out already; only the stop command goes out again (for a container an
    // interrupted stop left running), and the record keeps when it went to sleep.
    let before = scripts_sent_to(&fx, &instance).await.len();
    let again = fx.bgcloud(&["idle", "stop"]).json();
    assert_eq!(again["already"], true);
    assert_eq!(again["since"], stopped["since"]);
    let sent = scripts_sent_to(&fx, &instance).await;
    assert_eq!(sent.len(), before + 1);
    assert!(
        sent[before].contains("-green on this instance (kept"),
        "{}",
        sent[before]
    );
    assert_eq!(fx.record().await["history"], record["history"]);

    // Sync leaves it stopped: no launch sent, nothing registered.
    let before = scripts_sent_to(&fx, &instance).await.len();
    let plan = fx.bgcloud(&["sync", "--dry-run"]).ok();
    assert!(
        plan.stdout.contains("stopped since") && plan.stdout.contains("left stopped"),
        "{}",
        plan.stdout
    );
    fx.bgcloud(&["sync"]).ok();
    let sent = scripts_sent_to(&fx, &instance).await;
    assert!(
        sent[before..].iter().all(|s| !s.contains("docker run")),
        "sync launched something: {:?}",
        &sent[before..]
    );
    assert!(fx.settled_states(green(&fx)).await.is_empty());
    assert!(inspect(&fx, &instance).await.contains("-green exited"));

    // No traffic to a sleeping colour, --force or not.
    for args in [
        &["shift", "--to", "green"][..],
        &["shift", "--to", "green", "--force"][..],
    ] {
        let refused = fx.bgcloud(args).code(2);
        refused.assert_stderr_has("green is stopped");
        refused.assert_stderr_has("bgcloud idle start");
    }

    // Woken without moving traffic.
    let woke = fx.bgcloud(&["idle", "start"]).json();
    assert_eq!(woke["action"], "start");
    fx.assert_weights(100, 0).await;
    let states = fx.settled_states(green(&fx)).await;
    assert_eq!(states.len(), 2);
    assert!(states.iter().all(|s| s.2 == "healthy"), "{states:?}");
    assert_eq!(desired_green(&fx).await, launch);
    assert!(fx.record().await["backend"]["stopped"].is_null());
    assert!(inspect(&fx, &instance).await.contains("-green running"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_to_a_stopped_colour_starts_it_gates_it_then_moves_traffic() {
    let fx = deployed("").await;
    let launch = desired_green(&fx).await;
    fx.bgcloud(&["idle", "stop"]).ok();

    let mark = fx.mark();
    let plan = fx.bgcloud(&["rollback", "--dry-run"]).ok();
    assert!(
        plan.stdout.contains("first, green is started"),
        "{}",
        plan.stdout
    );
    fx.assert_no_writes_but_lock_since(mark);

    let mark = fx.mark();
    let done = fx.bgcloud(&["rollback"]).ok();
    done.assert_stderr_has("green is stopped (since");
    done.assert_stderr_has("starting it first, about");
    // Traffic is where the user asked, on targets the ALB judged healthy.
    fx.assert_weights(0, 100).await;
    let states = fx.settled_states(green(&fx)).await;
    assert_eq!(states.len(), 2);
    assert!(states.iter().all(|s| s.2 == "healthy"), "{states:?}");
    // Started and registered before the listener moved.
    let requests = fx.requests()[mark..].to_vec();
    let at = |action: &str| requests.iter().position(|(_, a)| a == action);
    let (send, register, modify) = (
        at("SendCommand").expect("a launch was sent"),
        at("RegisterTargets").expect("green registered"),
        at("ModifyListener").expect("the listener written"),
    );
    assert!(send < register && register < modify, "{requests:?}");
    assert_eq!(desired_green(&fx).await, launch);
    let record = fx.record().await;
    assert!(record["backend"]["stopped"].is_null());
    let kinds: Vec<&str> = record["history"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .take(2)
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["rollback", "idle-start"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_stop_config_sleeps_the_idle_colour_once_idle_after_has_passed() {
    let fx = deployed("idle = \"stop\"\nidle_after = \"8s\"").await;
    // Deploy v2 moved traffic off green just now: not yet.
    let record = fx.record().await;
    assert!(record["backend"]["stopped"].is_null(), "{record}");
    // Read-only commands change nothing, due or not. The record keeps times to the second and
    // bgcloud counts from the end of that second: due 8–9 s after the shift.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let mark = fx.mark();
    fx.bgcloud(&["status"]).ok();
    fx.bgcloud(&["history"]).ok();
    fx.assert_no_writes_but_lock_since(mark);
    // (A sync's dry run asks the instances what runs: a command, and still no stop.)
    let plan = fx.bgcloud(&["sync", "--dry-run"]).ok();
    assert!(
        plan.stdout
            .contains("green has had no traffic for idle_after: a sync puts it to sleep first"),
        "{}",
        plan.stdout
    );
    assert!(fx.record().await["backend"]["stopped"].is_null());
    assert_eq!(fx.settled_states(green(&fx)).await.len(), 2);

    let synced = fx.bgcloud(&["sync"]).json();
    assert_eq!(
        (&synced["idle"]["action"], &synced["idle"]["color"]),
        (&Value::from("stop"), &Value::from("green")),
        "{synced}"
    );
    assert_eq!(fx.record().await["backend"]["stopped"]["color"], "green");
    assert!(fx.settled_states(green(&fx)).await.is_empty());

    // A deploy onto the sleeping colour works as onto any idle colour, and wakes it.
    let deployed = fx.bgcloud(&["deploy", "--image", "v3"]).json();
    assert_eq!(deployed["color"], "green");
    fx.assert_weights(0, 100).await;
    let record = fx.record().await;
    assert!(record["backend"]["stopped"].is_null(), "{record}");
    let script = desired_green(&fx).await;
    assert!(
        !script.contains("bgcloud.stopped") && script.contains(&fx.stack.images["v3"]),
        "{script}"
    );
    // Blue lost its traffic just now: it keeps running.
    let states = fx.settled_states(&fx.stack.blue_target_group_arn).await;
    assert!(
        states.iter().all(|s| s.2 == "healthy") && states.len() == 2,
        "{states:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_stop_is_refused_during_a_canary_and_before_the_idle_colour_was_deployed() {
    let fx = Fixture::v1_v2().await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green; blue never deployed
    let mark = fx.mark();
    let never = fx.bgcloud(&["idle", "stop"]).code(2);
    never.assert_stderr_has("blue was never deployed");
    fx.assert_no_writes_but_lock_since(mark);
    fx.bgcloud(&["deploy", "--image", "v2", "--canary", "10"])
        .ok();
    let mark_canary = fx.mark();
    let canary = fx.bgcloud(&["idle", "stop"]).code(2);
    canary.assert_stderr_has("a canary is in progress");
    fx.assert_no_writes_but_lock_since(mark_canary);
    let start = fx.bgcloud(&["idle", "start"]).code(2);
    start.assert_stderr_has("a canary is in progress");
    fx.assert_weights(10, 90).await;
    let status: Value = fx.bgcloud(&["status"]).json();
    assert!(status["colors"]["blue"].get("stopped").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn with_idle_after_zero_a_promote_puts_the_old_colour_to_sleep_and_says_so() {
    let fx = Fixture::with_tags(&["v1", "v2"]).await;
    fx.write_config(&fx.stack.config_toml("idle = \"stop\"\nidle_after = \"0s\""));
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green; blue never deployed
    fx.bgcloud(&["deploy", "--image", "v2", "--canary", "10"])
        .ok();
    // A canary: both colours serve, nothing sleeps.
    assert!(fx.record().await["backend"]["stopped"].is_null());
    let promoted = fx.bgcloud(&["promote"]).ok();
    assert!(
        promoted
            .stdout
            .contains("idle: green stopped on 2 instance(s)"),
        "{}",
        promoted.stdout
    );
    fx.assert_weights(100, 0).await;
    assert_eq!(fx.record().await["backend"]["stopped"]["color"], "green");
    assert!(fx.settled_states(green(&fx)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_whose_start_fails_leaves_traffic_and_the_sleep_as_they_were() {
    let fx = deployed("").await;
    fx.bgcloud(&["idle", "stop"]).ok();
    let asleep = desired_green(&fx).await;
    // Green's release (v1) no longer comes up (a dependency it needs is gone, say).
    fx.image_behaviour("v1", serde_json::json!({"status": 500}));
    let mark = fx.mark();
    let failed = fx.bgcloud(&["rollback"]).code(1);
    failed.assert_stderr_has("green is stopped and could not be started");
    failed.assert_stderr_has("Traffic was not changed (blue 100 % / green 0 %)");
    fx.assert_weights(100, 0).await;
    let writes = fx.requests()[mark..]
        .iter()
        .filter(|(_, a)| a == "ModifyListener")
        .count();
    assert_eq!(writes, 0, "the listener was not written");
    assert_eq!(fx.record().await["backend"]["stopped"]["color"], "green");
    assert_eq!(desired_green(&fx).await, asleep);
    assert!(!fx.lock_exists().await);
}
