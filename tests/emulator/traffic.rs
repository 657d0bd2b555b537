//! status, shift, promote and rollback against the emulator, with the listener read back
//! independently through the SDK.

use crate::support::w;
use crate::support::Fixture;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn status_json_has_the_contract_fields() {
    let fx = Fixture::new().await;
    let s = fx.bgcloud(&["status"]).json();
    assert_eq!(s["app"], fx.stack.spec.name);
    assert_eq!(s["weights"]["blue"], 100);
    assert_eq!(s["weights"]["green"], 0);
    assert_eq!(s["stable"], "blue");
    assert!(s["canary"].is_null());
    for (color, port) in [("blue", 8081), ("green", 8082)] {
        let c = &s["colors"][color];
        let targets = c["targets"].as_array().unwrap();
        assert_eq!(targets.len(), 2, "{color}: {c}");
        for t in targets {
            assert!(fx
                .stack
                .instance_ids
                .contains(&t["id"].as_str().unwrap().to_string()));
            assert_eq!(t["port"], port);
            assert_eq!(t["state"], "healthy");
        }
        assert!(c["image"].is_null(), "no deploy recorded yet");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn status_text_shows_weights_roles_and_targets() {
    let fx = Fixture::new().await;
    fx.set_weights(90, 10).await;
    let out = fx.bgcloud(&["status"]).ok();
    assert!(
        out.stdout.contains("blue is live, canary green at 10 %"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("blue    90 %  stable"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("green   10 %  canary"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("{}:8082 healthy", fx.stack.instance_ids[0])),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.is_empty(),
        "status logs nothing on stderr: {}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shift_canary_then_promote_then_rollback() {
    let fx = Fixture::new().await;
    let out = fx
        .bgcloud(&["shift", "--to", "green", "--weight", "10"])
        .json();
    assert_eq!(out["to"]["green"], 10);
    fx.assert_weights(90, 10).await;
    let s = fx.bgcloud(&["status"]).json();
    assert_eq!(
        (s["stable"].as_str(), s["canary"].as_str()),
        (Some("blue"), Some("green"))
    );

    fx.bgcloud(&["promote"]).ok();
    fx.assert_weights(0, 100).await;
    assert_eq!(fx.bgcloud(&["status"]).json()["stable"], "green");

    let out = fx.bgcloud(&["rollback"]).ok();
    assert!(
        out.stdout
            .contains("rollback: blue 0 % / green 100 % → blue 100 % / green 0 %"),
        "{}",
        out.stdout
    );
    fx.assert_weights(100, 0).await;

    let record = fx.record().await;
    let kinds: Vec<&str> = record["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["shift", "promote", "rollback"]);
    assert_eq!(
        record["history"][2]["by"]
            .as_str()
            .unwrap()
            .split('@')
            .next(),
        Some("tester")
    );
}

/// `--dry-run` on shift, promote and rollback: the exact change on stdout (and in JSON), the
/// same refusals as the real command, and not one write (the lock included).
#[tokio::test(flavor = "multi_thread")]
async fn dry_runs_of_shift_promote_and_rollback_show_the_change_and_write_nothing() {
    let fx = Fixture::new().await;
    let dry = |args: &[&str]| fx.dry_run(args);
    let out = dry(&["shift", "--to", "green", "--weight", "10"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "shift would move: blue 100 % / green 0 % → blue 90 % / green 10 %\n\
         dry run: nothing was changed; run it without --dry-run to apply\n"
    );
    fx.assert_weights(100, 0).await;
    // No canary: refused as the real promote refuses. No record: rollback goes by the listener.
    let out = dry(&["promote"]);
    assert!(
        out.code == 2 && out.stderr.contains("no canary in progress"),
        "{}",
        out.stderr
    );
    let out = dry(&["rollback"]);
    assert!(
        out.stdout
            .starts_with("rollback would move: blue 100 % / green 0 % → blue 0 % / green 100 %\n"),
        "{}",
        out.stdout
    );

    fx.bgcloud(&["shift", "--to", "green", "--weight", "10"])
        .ok();
    let out = dry(&["promote", "--output", "json"]);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (&json["dry_run"], &json["changed"], &json["verified"]),
        (&true.into(), &true.into(), &false.into())
    );
    assert_eq!(
        (&json["from"]["green"], &json["to"]["green"]),
        (&10.into(), &100.into())
    );
    let out = dry(&["rollback"]);
    assert!(
        out.stdout
            .starts_with("rollback would move: blue 90 % / green 10 % → blue 100 % / green 0 %\n"),
        "{}",
        out.stdout
    );
    fx.assert_weights(90, 10).await;

    // A colour without a healthy target: the dry run refuses as the shift would.
    fx.set_target_health(
        &fx.stack.green_target_group_arn,
        "unhealthy",
        "Target.ResponseCodeMismatch",
    );
    let out = dry(&["shift", "--to", "green"]);
    assert!(
        out.code == 2 && out.stderr.contains("green has no healthy targets"),
        "{}",
        out.stderr
    );
    let out = dry(&["shift", "--to", "green", "--force"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.assert_stderr_has("green: 0 of ");
    fx.assert_weights(90, 10).await;
    let history = fx.record().await["history"].as_array().unwrap().len();
    assert_eq!(history, 1, "only the real shift is recorded");
}

/// The critical path of a traffic change, with 50 ms a request: the lock is taken while both
/// colours' health is read, then the listener and the record are read together, then the
/// listener is written: three round trips before the ModifyListener (five before), the lock
/// held before the listener is read, the health read before the write. For rollback, shift and
/// promote.
#[tokio::test(flavor = "multi_thread")]
async fn a_traffic_change_writes_the_listener_after_three_round_trips_with_the_lock_held() {
    let fx = Fixture::new().await;
    fx.bgcloud(&["shift", "--to", "green"]).ok();
    const LATENCY: f64 = 0.05;
    let latency = |seconds: f64| {
        crate::support::control(
            "latency",
            serde_json::json!({"access_key": fx.access_key, "seconds": seconds}),
        )
    };
    latency(LATENCY);
    for (args, weights) in [
        (&["rollback"][..], w(100, 0)),
        (&["shift", "--to", "green", "--weight", "10"][..], w(90, 10)),
        (&["promote"][..], w(0, 100)),
    ] {
        let mark = fx.mark();
        fx.bgcloud(args).ok();
        assert_eq!(fx.weights().await, weights, "{args:?}");
        let log: Vec<serde_json::Value> = crate::support::request_log(&fx.access_key)
            .into_iter()
            .skip(mark)
            .collect();
        let trips = crate::support::round_trips_before(&log, "ModifyListener", LATENCY);
        println!("{args:?}: round trips before the ModifyListener: {trips:?}");
        assert!(
            trips.len() <= 3,
            "{args:?}: round trips before the write: {trips:?}"
        );
        let at = |matches: &dyn Fn(&serde_json::Value) -> bool| {
            let r = log
                .iter()
                .find(|r| matches(r))
                .unwrap_or_else(|| panic!("{log:?}"));
            r["t"].as_f64().unwrap()
        };
        let lock =
            at(&|r| r["method"] == "PUT" && r["path"].as_str().unwrap().ends_with("/lock.json"));
        let listener = at(&|r| r["action"] == "DescribeListeners");
        assert!(
            listener - lock >= LATENCY,
            "{args:?}: the listener is read once the lock is held: {trips:?}"
        );
        assert!(
            trips[0].iter().any(|a| a == "DescribeTargetHealth"),
            "{args:?}: health is read with the lock, before the write: {trips:?}"
        );
    }
    latency(0.0);
}

/// A rollback that waits for the lock (`--lock-wait`) judges the colour it moves to as it is once
/// the lock is held, not as it was when the wait began: the holder (a deploy replacing that
/// colour) may have left it without a healthy target.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_that_waited_for_the_lock_reads_health_after_it() {
    let fx = Fixture::new().await;
    fx.bgcloud(&["shift", "--to", "green"]).ok();
    fx.put_lock("bob@ci", "deploy v3", "2999-01-01T00:00:00Z")
        .await;
    let child = fx.bgcloud(&["rollback", "--lock-wait", "30s"]).spawn();
    // It is waiting for the lock: blue goes bad meanwhile, then the holder lets go.
    fx.wait_for_request("the lock read", |a| a.ends_with("/lock.json"));
    std::thread::sleep(Duration::from_millis(500));
    fx.set_target_health(
        &fx.stack.blue_target_group_arn,
        "unhealthy",
        "Target.ResponseCodeMismatch",
    );
    fx.delete_lock().await;
    let (code, _, stderr) = crate::support::finish(child);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("blue has no healthy targets"), "{stderr}");
    assert_eq!(fx.weights().await, w(0, 100), "traffic stays on green");
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_during_a_canary_returns_everything_to_stable() {
    let fx = Fixture::new().await;
    fx.bgcloud(&["shift", "--to", "green", "--weight", "25"])
        .ok();
    fx.bgcloud(&["rollback"]).ok();
    fx.assert_weights(100, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_without_a_record_goes_to_the_healthy_other_colour() {
    let fx = Fixture::new().await;
    fx.set_weights(0, 1).await; // someone switched to green by hand; no record exists
    fx.bgcloud(&["rollback"]).ok();
    fx.assert_weights(100, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_refuses_an_unhealthy_colour_unless_forced() {
    let fx = Fixture::new().await;
    fx.bgcloud(&["shift", "--to", "green"]).ok();
    fx.set_target_health(
        &fx.stack.blue_target_group_arn,
        "unhealthy",
        "Target.ResponseCodeMismatch",
    );
    let out = fx.bgcloud(&["rollback"]).code(2);
    assert!(
        out.stderr.contains("blue has no healthy targets"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Target.ResponseCodeMismatch"),
        "the ALB's reason is shown: {}",
        out.stderr
    );
    out.assert_stderr_has("--force");
    assert_eq!(fx.weights().await, w(0, 100), "nothing changed");

    fx.bgcloud(&["rollback", "--force"]).ok();
    fx.assert_weights(100, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shift_refuses_to_send_traffic_to_a_colour_with_no_healthy_targets() {
    let fx = Fixture::new().await;
    fx.set_target_health(
        &fx.stack.green_target_group_arn,
        "initial",
        "Elb.RegistrationInProgress",
    );
    let out = fx
        .bgcloud(&["shift", "--to", "green", "--weight", "10"])
        .code(2);
    assert!(
        out.stderr.contains("green has no healthy targets"),
        "{}",
        out.stderr
    );
    fx.assert_weights(100, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn promote_with_no_canary_exits_2_and_changes_nothing() {
    let fx = Fixture::new().await;
    let out = fx.bgcloud(&["promote"]).code(2);
    assert!(
        out.stderr.contains("no canary in progress"),
        "{}",
        out.stderr
    );
    fx.assert_weights(100, 0).await;
    let writes = fx.writes_but_lock();
    assert!(writes.is_empty(), "promote wrote: {writes:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_twice_undoes_the_first_and_no_op_shifts_are_not_recorded() {
    let fx = Fixture::new().await;
    fx.bgcloud(&["shift", "--to", "green"]).ok();
    fx.bgcloud(&["rollback"]).ok();
    // The previous stable colour on record is now green: a second rollback undoes the first.
    fx.bgcloud(&["rollback"]).ok();
    fx.assert_weights(0, 100).await;
    let out = fx.bgcloud(&["shift", "--to", "green"]).ok();
    assert!(out.stdout.contains("nothing changed"), "{}", out.stdout);
    let record = fx.record().await;
    assert_eq!(
        record["history"].as_array().unwrap().len(),
        3,
        "a no-op shift is not recorded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_after_an_aborted_canary_has_nothing_to_do() {
    let fx = Fixture::new().await;
    fx.bgcloud(&["shift", "--to", "green", "--weight", "10"])
        .ok();
    fx.bgcloud(&["shift", "--to", "blue"]).ok(); // canary aborted by hand: blue was stable before
    let out = fx.bgcloud(&["rollback"]).code(2);
    assert!(
        out.stderr.contains("nothing to roll back"),
        "{}",
        out.stderr
    );
    fx.assert_weights(100, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shift_weight_out_of_range_is_refused_before_any_request() {
    let fx = Fixture::new().await;
    for bad in ["101", "-1", "ten"] {
        let out = fx
            .bgcloud(&["shift", "--to", "green", "--weight", bad])
            .code(2);
        assert!(out.stderr.contains("0 to 100"), "{bad}: {}", out.stderr);
    }
    assert!(fx.requests().is_empty(), "{:?}", fx.requests());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_third_target_group_on_the_listener_is_refused() {
    let fx = Fixture::new().await;
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
    let other_arn = other.target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    fx.aws
        .elb
        .modify_listener()
        .listener_arn(&fx.stack.listener_arn)
        .default_actions(crate::support::stack::forward(&[
            (&fx.stack.blue_target_group_arn, 90),
            (&fx.stack.green_target_group_arn, 0),
            (&other_arn, 10),
        ]))
        .send()
        .await
        .unwrap();
    for args in [
        &["status"][..],
        &["shift", "--to", "green"],
        &["promote"],
        &["rollback"],
    ] {
        let out = fx.bgcloud(args).code(2);
        assert!(
            out.stderr.contains("3 target group(s)") && out.stderr.contains(&other_arn),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listener_rule_is_driven_when_rule_arn_is_set() {
    let fx = Fixture::new().await;
    let rule = fx
        .aws
        .elb
        .create_rule()
        .listener_arn(&fx.stack.listener_arn)
        .priority(10)
        .conditions(
            aws_sdk_elasticloadbalancingv2::types::RuleCondition::builder()
                .field("path-pattern")
                .values("/api/*")
                .build(),
        )
        .actions(crate::support::stack::forward(&[
            (&fx.stack.blue_target_group_arn, 100),
            (&fx.stack.green_target_group_arn, 0),
        ]))
        .send()
        .await
        .unwrap();
    let rule_arn = rule.rules()[0].rule_arn().unwrap().to_string();
    fx.write_config(&fx.stack.config_toml(&format!("rule_arn = \"{rule_arn}\"")));
    fx.bgcloud(&["shift", "--to", "green", "--weight", "30"])
        .ok();

    let rules = fx
        .aws
        .elb
        .describe_rules()
        .rule_arns(&rule_arn)
        .send()
        .await
        .unwrap();
    let tuples = rules.rules()[0].actions()[0]
        .forward_config()
        .unwrap()
        .target_groups()
        .to_vec();
    let green = tuples
        .iter()
        .find(|t| t.target_group_arn() == Some(fx.stack.green_target_group_arn.as_str()))
        .unwrap();
    assert_eq!(green.weight(), Some(30));
    assert_eq!(
        fx.weights().await,
        w(100, 0),
        "the listener's default action is untouched"
    );
    assert_eq!(fx.bgcloud(&["status"]).json()["rule_arn"], rule_arn);
}

/// The listener's forward stickiness as read with the test's own client: Some(duration) when on.
async fn stickiness(fx: &Fixture) -> Option<i32> {
    let out = fx
        .aws
        .elb
        .describe_listeners()
        .listener_arns(&fx.stack.listener_arn)
        .send()
        .await
        .unwrap();
    let config = out.listeners()[0].default_actions()[0]
        .forward_config()?
        .target_group_stickiness_config()?
        .clone();
    (config.enabled() == Some(true)).then(|| config.duration_seconds().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_turns_stickiness_off_and_the_next_deploy_turns_it_back_on() {
    let fx = Fixture::v1_v2().await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green
                                                   // The user turns stickiness on (an hour) on the weighted forward.
    fx.set_actions(vec![crate::support::stack::sticky_forward(
        &[
            (&fx.stack.blue_target_group_arn, 0),
            (&fx.stack.green_target_group_arn, 100),
        ],
        3600,
    )])
    .await;

    let canary = fx
        .bgcloud(&["deploy", "--image", "v2", "--canary", "10"])
        .ok();
    canary.assert_stderr_has("target-group stickiness is on (1h)");
    assert_eq!(stickiness(&fx).await, Some(3600), "a deploy keeps it");
    let status = fx.bgcloud(&["status"]).ok().stdout;
    assert!(status.contains("sticky    on (1h)"), "{status}");

    // A dry run says what the write would do to stickiness, and leaves it on.
    let out = fx.bgcloud(&["rollback", "--dry-run"]).ok();
    assert!(
        out.stdout.contains(
            "in the same write: target-group stickiness (1h) turned off, so clients bound to \
             the colour losing traffic leave it at once"
        ),
        "{}",
        out.stdout
    );
    assert_eq!(stickiness(&fx).await, Some(3600));

    // Rolling back from the canary: sticky clients must leave it, in the same write.
    let out = fx.bgcloud(&["rollback"]).ok();
    out.assert_stderr_has("target-group stickiness (1h) turned off in this same write");
    fx.assert_weights(0, 100).await;
    assert_eq!(stickiness(&fx).await, None);
    let rollback_writes = fx.count("ModifyListener");
    let status = fx.bgcloud(&["status"]).ok().stdout;
    assert!(
        status.contains("sticky    off: bgcloud turned it off in a rollback (it was 1h)"),
        "{status}"
    );
    assert_eq!(
        fx.record().await["backend"]["stickiness"]["duration_seconds"],
        3600
    );

    // The next deploy restores the user's setting with its shift; promote keeps it.
    fx.bgcloud(&["deploy", "--image", "v2", "--canary", "10"])
        .ok();
    assert_eq!(stickiness(&fx).await, Some(3600));
    fx.bgcloud(&["promote"]).ok();
    assert_eq!(stickiness(&fx).await, Some(3600));
    fx.assert_weights(100, 0).await;
    assert!(fx.count("ModifyListener") >= rollback_writes + 2);
}
