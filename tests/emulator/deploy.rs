//! `bgcloud deploy`, the lock and history against the emulator: real binary, real SDK, the
//! listener and record checked independently.

use crate::support::w;
use crate::support::Fixture;

#[tokio::test(flavor = "multi_thread")]
async fn full_deploy_moves_all_traffic_to_the_idle_colour_and_records_it() {
    let fx = Fixture::v1_v2().await;
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).json();
    assert_eq!(out["color"], "green");
    assert_eq!(out["digest"], fx.stack.images["v1"]);
    fx.assert_weights(0, 100).await;

    let s = fx.bgcloud(&["status"]).json();
    assert_eq!(s["stable"], "green");
    assert_eq!(s["colors"]["green"]["image"], "v1");
    assert_eq!(s["colors"]["green"]["digest"], fx.stack.images["v1"]);
    assert!(s["colors"]["blue"]["image"].is_null());

    let h = fx.bgcloud(&["history"]).json();
    assert_eq!(h["entries"][0]["kind"], "deploy");
    assert_eq!(h["entries"][0]["digest"], fx.stack.images["v1"]);

    // The launch went through SSM with the rendered script, by digest, on every instance.
    let commands = fx.aws.ssm.list_commands().send().await.unwrap();
    let ours: Vec<_> = commands
        .commands()
        .iter()
        .filter(|c| {
            c.comment()
                .unwrap_or_default()
                .starts_with(&format!("bgcloud deploy {} ", fx.stack.spec.name))
        })
        .collect();
    assert_eq!(ours.len(), 1);
    let script = ours[0].parameters().unwrap()["commands"].join("\n");
    assert!(
        script.contains(&format!(
            "{}@{}",
            fx.stack.repository_uri, fx.stack.images["v1"]
        )),
        "{script}"
    );
    assert!(script.contains("-p 8082:3000"), "{script}");
    let mut ids = ours[0].instance_ids().to_vec();
    ids.sort();
    let mut expected = fx.stack.instance_ids.clone();
    expected.sort();
    assert_eq!(ids, expected);
    assert_lock_free(&fx).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn more_than_fifty_instances_are_sent_in_batches() {
    let fx = Fixture::with(|s| s.instances = 51).await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    let commands = fx.aws.ssm.list_commands().send().await.unwrap();
    let mut sizes: Vec<usize> = commands
        .commands()
        .iter()
        .filter(|c| {
            c.comment()
                .unwrap_or_default()
                .starts_with(&format!("bgcloud deploy {} ", fx.stack.spec.name))
        })
        .map(|c| c.instance_ids().len())
        .collect();
    sizes.sort();
    assert_eq!(sizes, [1, 50], "SendCommand takes at most 50 instance ids");
    fx.assert_weights(0, 100).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_deploy_then_promote() {
    let fx = Fixture::v1_v2().await;
    let out = fx
        .bgcloud(&["deploy", "--image", "v1", "--canary", "10"])
        .ok();
    assert!(out.stdout.contains("bgcloud promote"), "{}", out.stdout);
    fx.assert_weights(90, 10).await;
    let s = fx.bgcloud(&["status"]).json();
    assert_eq!(
        (s["stable"].as_str(), s["canary"].as_str()),
        (Some("blue"), Some("green"))
    );
    fx.bgcloud(&["promote"]).ok();
    fx.assert_weights(0, 100).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deploys_alternate_colours_and_rollback_returns_to_the_old_digest() {
    let fx = Fixture::v1_v2().await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    let out = fx.bgcloud(&["deploy", "--image", "v2"]).json();
    assert_eq!(out["color"], "blue");
    assert_eq!(out["previous"]["digest"], fx.stack.images["v1"]);
    fx.assert_weights(100, 0).await;
    // The second launch went to blue's port with v2's digest, by the command SSM was given.
    let commands = fx.aws.ssm.list_commands().send().await.unwrap();
    let second = commands
        .commands()
        .iter()
        .find(|c| c.comment() == Some(&format!("bgcloud deploy {} v2 to blue", fx.stack.spec.name)))
        .expect("the second deploy's command");
    let script = second.parameters().unwrap()["commands"].join("\n");
    assert!(
        script.contains(&format!("--name {}-blue -p 8081:3000", fx.stack.spec.name))
            && script.contains(&format!(
                "{}@{}",
                fx.stack.repository_uri, fx.stack.images["v2"]
            )),
        "{script}"
    );

    fx.bgcloud(&["rollback"]).ok();
    fx.assert_weights(0, 100).await;
    let s = fx.bgcloud(&["status"]).json();
    assert_eq!(s["stable"], "green");
    assert_eq!(s["colors"]["green"]["digest"], fx.stack.images["v1"]);
    assert_eq!(s["colors"]["blue"]["digest"], fx.stack.images["v2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_by_digest() {
    let fx = Fixture::v1_v2().await;
    let digest = fx.stack.images["v2"].clone();
    let out = fx.bgcloud(&["deploy", "--image", &digest]).json();
    assert_eq!(out["digest"], digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_tag_is_refused_with_the_newest_tags() {
    let fx = Fixture::v1_v2().await;
    let out = fx.bgcloud(&["deploy", "--image", "v9"]).code(2);
    assert!(
        out.stderr.contains("v9") && out.stderr.contains(&fx.stack.repository),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("v1") && out.stderr.contains("v2"),
        "newest tags listed: {}",
        out.stderr
    );
    fx.assert_weights(100, 0).await;
    fx.assert_no_writes_but_lock();
    assert_lock_free(&fx).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_canary_and_image_are_refused_before_any_request() {
    let fx = Fixture::v1_v2().await;
    for bad in ["0", "100", "-5", "half"] {
        let out = fx
            .bgcloud(&["deploy", "--image", "v1", "--canary", bad])
            .code(2);
        assert!(
            out.stderr.contains("--canary") && out.stderr.contains("1 to 99"),
            "{bad}: {}",
            out.stderr
        );
    }
    let out = fx.bgcloud(&["deploy", "--image", "v1;reboot"]).code(2);
    out.assert_stderr_has("not an image tag");
    assert_eq!(fx.requests(), vec![]);
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_during_a_canary_is_refused() {
    let fx = Fixture::v1_v2().await;
    fx.bgcloud(&["deploy", "--image", "v1", "--canary", "20"])
        .ok();
    let record = fx.record().await;
    let mark = fx.mark();
    let out = fx.bgcloud(&["deploy", "--image", "v2"]).code(2);
    assert!(
        out.stderr.contains("promote") && out.stderr.contains("rollback"),
        "{}",
        out.stderr
    );
    fx.assert_weights(80, 20).await;
    // Refused before anything changed: no launch, no write but the lock, the record as it was.
    fx.assert_no_writes_but_lock_since(mark);
    assert_eq!(fx.record().await, record);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_instances_is_refused() {
    let fx = Fixture::v1_v2().await;
    let config = fx.stack.config_toml("").replace(
        &format!(
            "instance_tags = {{ \"bgcloud:app\" = \"{}\" }}",
            fx.stack.spec.name
        ),
        "instance_tags = { \"bgcloud:app\" = \"nobody-has-this\" }",
    );
    fx.write_config(&config);
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(2);
    assert!(
        out.stderr
            .contains("no running instances tagged bgcloud:app=nobody-has-this"),
        "{}",
        out.stderr
    );
    fx.assert_weights(100, 0).await;
    fx.assert_no_writes_but_lock();
    assert!(fx.record().await.is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_launch_shows_its_output_and_leaves_traffic_alone() {
    let fx = Fixture::v1_v2().await;
    let bad = &fx.stack.instance_ids[1];
    set_ssm(
        bad,
        "Failed",
        "pulling image\nError: manifest unknown",
        "docker: exit 125",
    );
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(1);
    assert!(
        out.stderr.contains(bad) && out.stderr.contains("manifest unknown"),
        "{}",
        out.stderr
    );
    out.assert_stderr_has("docker: exit 125");
    assert!(
        out.stderr.contains("traffic was not changed"),
        "{}",
        out.stderr
    );
    fx.assert_weights(100, 0).await;
    assert!(fx.record().await.is_null(), "nothing recorded");
    assert_lock_free(&fx).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_that_never_finishes_times_out() {
    let fx = Fixture::v1_v2().await;
    let stuck = fx.stack.instance_ids[0].clone();
    set_ssm(&stuck, "InProgress", "", "");
    let out = fx
        .bgcloud(&["deploy", "--image", "v1", "--health-timeout", "6s"])
        .code(1);
    assert!(
        out.stderr.contains("still running on") && out.stderr.contains(&stuck),
        "{}",
        out.stderr
    );
    fx.assert_weights(100, 0).await;
    // Given up on, the launch is cancelled: it cannot replace the container later.
    assert!(
        fx.requests().iter().any(|(_, a)| a == "CancelCommand"),
        "{:?}",
        fx.requests()
    );
    let command = our_command(&fx).await;
    let invocation = fx
        .aws
        .ssm
        .get_command_invocation()
        .command_id(command.command_id().unwrap())
        .instance_id(&stuck)
        .send()
        .await
        .unwrap();
    assert_eq!(invocation.status().map(|s| s.as_str()), Some("Cancelled"));
}

#[tokio::test(flavor = "multi_thread")]
async fn targets_that_never_become_healthy_time_out_with_the_reason() {
    let fx = Fixture::v1_v2().await;
    // The container answers on the instance (the launch's probe passes) but the ALB's checks
    // time out: a security group without the load balancer's ingress.
    fx.image_behaviour("v1", serde_json::json!({"firewalled": true}));
    let out = fx
        .bgcloud(&["deploy", "--image", "v1", "--health-timeout", "7s"])
        .code(1);
    // Unhealthy once the ALB has had its time to judge (5 s here): a verdict, before the timeout.
    out.assert_stderr_has("green reads unhealthy 5s after the launch");
    out.assert_stderr_has("Target.Timeout");
    assert!(
        out.stderr.contains("Traffic was not changed"),
        "{}",
        out.stderr
    );
    fx.assert_weights(100, 0).await;
    assert!(fx.record().await.is_null(), "nothing recorded");
}

#[tokio::test(flavor = "multi_thread")]
async fn targets_that_become_healthy_after_a_while_are_waited_for() {
    let fx = Fixture::v1_v2().await;
    fx.set_target_states(
        &fx.stack.green_target_group_arn,
        serde_json::json!([{"state": "initial", "reason": "Elb.RegistrationInProgress", "times": 3}, {"state": "healthy"}]),
    );
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    assert!(
        out.stderr.contains("Elb.RegistrationInProgress"),
        "progress names the wait: {}",
        out.stderr
    );
    fx.assert_weights(0, 100).await;

    // Never polls faster than poll_interval (100ms in the fixture's config).
    let polls: Vec<f64> = crate::support::request_log(&fx.access_key)
        .iter()
        .filter(|r| r["action"] == "DescribeTargetHealth")
        .map(|r| r["t"].as_f64().unwrap())
        .collect();
    assert!(
        polls.len() >= 4,
        "3 polls see `initial`, later ones `healthy`"
    );
    for gap in polls.windows(2).map(|p| p[1] - p[0]) {
        assert!(gap >= 0.099, "polled again after {gap:.3} s");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listener_changed_during_the_health_wait_is_not_overwritten() {
    let fx = Fixture::v1_v2().await;
    // Green stays `initial` until the test says otherwise: the deploy waits in the health gate.
    fx.set_target_states(
        &fx.stack.green_target_group_arn,
        serde_json::json!([{"state": "initial"}]),
    );
    let child = fx.bgcloud(&["deploy", "--image", "v1"]).spawn();
    fx.wait_for_request("the health wait", |a| a == "DescribeTargetHealth");
    fx.set_weights(50, 50).await; // someone else moves traffic meanwhile
    fx.set_target_states(&fx.stack.green_target_group_arn, serde_json::json!([]));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the listener changed while green was being prepared"),
        "{stderr}"
    );
    assert_eq!(fx.weights().await, w(50, 50), "the other change is kept");
    assert_eq!(fx.count("ModifyListener"), 0, "bgcloud wrote nothing");
    assert!(fx.record().await.is_null(), "nothing recorded");
    assert!(!fx.lock_exists().await, "the lock was released");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_target_is_registered_on_the_colour_port() {
    let fx = Fixture::v1_v2().await;
    let id = fx.stack.instance_ids[0].clone();
    fx.aws
        .elb
        .deregister_targets()
        .target_group_arn(&fx.stack.green_target_group_arn)
        .targets(
            aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                .id(&id)
                .port(8082)
                .build(),
        )
        .send()
        .await
        .unwrap();
    // Gone once its 1 s drain is over (while it drains, it is someone else's doing and stays
    // out: fleet.rs `a_target_someone_else_took_out_is_not_registered_again`).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while crate::sync::state_in(&fx, &fx.stack.green_target_group_arn, &id).await
        != "not registered"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never left green's group"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    let health = fx
        .aws
        .elb
        .describe_target_health()
        .target_group_arn(&fx.stack.green_target_group_arn)
        .send()
        .await
        .unwrap();
    let registered: Vec<_> = health
        .target_health_descriptions()
        .iter()
        .filter_map(|d| d.target())
        .map(|t| (t.id().unwrap_or_default().to_string(), t.port()))
        .collect();
    assert!(registered.contains(&(id, Some(8082))), "{registered:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_lock_exits_3_with_who_and_why() {
    let fx = Fixture::v1_v2().await;
    put_lock(&fx, "alice@laptop", "deploy v7", "2999-01-01T00:00:00Z").await;
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(3);
    assert!(
        out.stderr.contains("alice@laptop") && out.stderr.contains("deploy v7"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("lock release --force"),
        "{}",
        out.stderr
    );
    fx.assert_weights(100, 0).await;
    for cmd in [&["promote"][..], &["rollback"], &["shift", "--to", "green"]] {
        fx.bgcloud(cmd).code(3);
    }

    let status = fx.bgcloud(&["lock", "status"]).json();
    assert_eq!(status["lock"]["owner"], "alice@laptop");
    fx.bgcloud(&["lock", "release"]).code(2);
    fx.bgcloud(&["lock", "release", "--force"]).ok();
    fx.bgcloud(&["deploy", "--image", "v1"]).ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_wait_waits_for_the_holder() {
    let fx = Fixture::v1_v2().await;
    put_lock(&fx, "bob@ci", "deploy v3", "2999-01-01T00:00:00Z").await;
    let child = fx
        .bgcloud(&["deploy", "--image", "v1", "--lock-wait", "30s"])
        .spawn();
    // The run has found the lock held (its create failed and it read the lock): release it.
    fx.wait_for_request("reading the held lock", |a| {
        a.starts_with("GET ") && a.ends_with("/lock.json")
    });
    fx.delete_lock().await;
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("waiting for the deployment lock"),
        "{stderr}"
    );
    fx.assert_weights(0, 100).await;
    assert!(!fx.lock_exists().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_releases_the_lock_and_leaves_traffic_alone() {
    let fx = Fixture::v1_v2().await;
    set_ssm(&fx.stack.instance_ids[0], "InProgress", "", "");
    let child = fx
        .bgcloud(&["deploy", "--image", "v1", "--health-timeout", "5m"])
        .spawn();
    // Wait until the deploy holds the lock and is waiting on SSM.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !fx
        .requests()
        .iter()
        .any(|(_, a)| a == "GetCommandInvocation")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "deploy never reached the SSM wait"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    crate::support::signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        fx.requests().iter().any(|(_, a)| a == "CancelCommand"),
        "the running launch is cancelled: {stderr}"
    );
    assert_lock_free(&fx).await;
    fx.assert_weights(100, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_lock_is_taken_over() {
    let fx = Fixture::v1_v2().await;
    put_lock(&fx, "dead@runner", "deploy v0", "2020-01-01T00:00:00Z").await;
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    assert!(
        out.stderr.contains("took over the expired deployment lock")
            && out.stderr.contains("dead@runner"),
        "{}",
        out.stderr
    );
    fx.assert_weights(0, 100).await;
    assert_lock_free(&fx).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_deploy_while_one_runs_is_refused_with_its_owner() {
    let fx = Fixture::v1_v2().await;
    // The first deploy holds the lock, waiting in the health gate until the test lets it go.
    fx.set_target_states(
        &fx.stack.green_target_group_arn,
        serde_json::json!([{"state": "initial"}]),
    );
    let first = fx.bgcloud(&["deploy", "--image", "v1"]).spawn();
    fx.wait_for_request("the health wait", |a| a == "DescribeTargetHealth");
    let second = fx.bgcloud(&["deploy", "--image", "v2"]).code(3);
    assert!(
        second.stderr.contains("tester@") && second.stderr.contains("deploy v1"),
        "the holder and why: {}",
        second.stderr
    );
    fx.set_target_states(&fx.stack.green_target_group_arn, serde_json::json!([]));
    let out = first.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fx.assert_weights(0, 100).await;
    let history = fx.record().await["history"].as_array().unwrap().len();
    assert_eq!(history, 1, "only the first deploy is recorded");
    assert!(!fx.lock_exists().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_never_printed_nor_sent_in_the_command() {
    let fx = Fixture::v1_v2().await;
    let parameter = format!("/{}/prod/DATABASE_URL", fx.stack.spec.name);
    let secret = "postgres://app:hunter2-s3cr3t@db/prod";
    fx.put_secret(&parameter, secret).await;
    fx.write_config(
        &fx.stack
            .config_toml(&format!("secrets = {{ DATABASE_URL = \"{parameter}\" }}")),
    );
    let dry = fx.bgcloud(&["deploy", "--image", "v1", "--dry-run"]).ok();
    let real = fx.bgcloud(&["-v", "deploy", "--image", "v1"]).ok();
    for text in [&dry.stdout, &dry.stderr, &real.stdout, &real.stderr] {
        assert!(!text.contains("hunter2"), "secret leaked: {text}");
    }
    assert!(
        dry.stdout.contains(&parameter),
        "the plan names the parameter: {}",
        dry.stdout
    );
    let commands = fx.aws.ssm.list_commands().send().await.unwrap();
    for c in commands.commands() {
        let text = format!("{:?}", c.parameters());
        assert!(
            !text.contains("hunter2"),
            "secret in the SSM command: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_prints_the_plan_and_writes_nothing() {
    let fx = Fixture::v1_v2().await;
    let out = fx
        .bgcloud(&["deploy", "--image", "v2", "--canary", "10", "--dry-run"])
        .ok();
    assert!(out.stdout.contains("dry run"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&fx.stack.images["v2"]),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("colour    green"), "{}", out.stdout);
    assert!(
        out.stdout.contains("blue 90 % / green 10 %"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("docker run"), "{}", out.stdout);
    for id in &fx.stack.instance_ids {
        assert!(out.stdout.contains(id), "{}", out.stdout);
    }
    let requests = fx.requests();
    let writes: Vec<_> = requests
        .iter()
        .filter(|(_, a)| !crate::support::is_read(a))
        .collect();
    assert!(
        writes.is_empty(),
        "dry run wrote (not even the lock): {writes:?}"
    );
    assert!(!requests.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_read_back_after_the_shift_puts_traffic_back() {
    let fx = Fixture::v1_v2().await;
    // Every attempt of the shift's read-back (the DescribeListeners after the ModifyListener)
    // fails; bgcloud must not leave traffic on the unverified colour.
    let fault = serde_json::json!({
        "access_key": fx.access_key, "action": "DescribeListeners", "status": 500,
        "code": "InternalFailure", "times": 3, "after_action": "ModifyListener",
    });
    crate::support::control("faults", fault);
    let out = fx
        .bgcloud(&["deploy", "--image", "v1", "--max-attempts", "3"])
        .code(1);
    assert!(
        out.stderr
            .contains("traffic was put back to blue 100 % / green 0 %"),
        "{}",
        out.stderr
    );
    fx.assert_weights(100, 0).await;
    assert_eq!(fx.count("ModifyListener"), 2, "the shift, then the restore");
    assert!(fx.record().await.is_null(), "nothing recorded");
    assert!(!fx.lock_exists().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_deploy_leaves_the_record_and_lock_as_they_were() {
    let fx = Fixture::v1_v2().await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    let before = fx.record().await;
    set_ssm(
        &fx.stack.instance_ids[0],
        "Failed",
        "",
        "docker: pull failed",
    );
    fx.bgcloud(&["deploy", "--image", "v2"]).code(1);
    assert_eq!(fx.record().await, before, "the record is untouched");
    fx.assert_weights(0, 100).await;
    assert!(!fx.lock_exists().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn partly_healthy_colours_one_healthy_one_unhealthy_one_initial() {
    let fx = Fixture::with(|s| {
        s.instances = 3;
        s.image_tags = vec!["v1".into(), "v2".into()];
    })
    .await;
    let ids = fx.stack.instance_ids.clone();
    let partly = |arn: &str| {
        fx.set_target_state(arn, &ids[0], serde_json::json!([{"state": "healthy"}]));
        fx.set_target_state(
            arn,
            &ids[1],
            serde_json::json!([{"state": "unhealthy", "reason": "Target.Timeout"}]),
        );
        fx.set_target_state(
            arn,
            &ids[2],
            serde_json::json!([{"state": "initial", "reason": "Elb.InitialHealthChecking"}]),
        );
    };
    // The deploy gate wants every target: it gives up naming the two that are not healthy.
    partly(&fx.stack.green_target_group_arn);
    let out = fx
        .bgcloud(&["deploy", "--image", "v1", "--health-timeout", "7s"])
        .code(1);
    assert!(
        out.stderr.contains("1 of 3 healthy")
            && out
                .stderr
                .contains(&format!("{}:8082 unhealthy (Target.Timeout", ids[1]))
            && out.stderr.contains(&format!(
                "{}:8082 initial (Elb.InitialHealthChecking",
                ids[2]
            )),
        "{}",
        out.stderr
    );
    fx.assert_weights(100, 0).await;

    // shift refuses only a colour with no healthy target; one of three warns and proceeds.
    let out = fx.bgcloud(&["shift", "--to", "green"]).ok();
    assert!(
        out.stderr.contains("green: 1 of 3 targets healthy"),
        "{}",
        out.stderr
    );
    fx.assert_weights(0, 100).await;

    // rollback to a partly healthy blue: the same rule.
    partly(&fx.stack.blue_target_group_arn);
    let out = fx.bgcloud(&["rollback"]).ok();
    assert!(
        out.stderr.contains("blue: 1 of 3 targets healthy"),
        "{}",
        out.stderr
    );
    fx.assert_weights(100, 0).await;
}

// --- helpers ---------------------------------------------------------------------------------

/// The one SSM command this fixture's deploys sent.
async fn our_command(fx: &Fixture) -> aws_sdk_ssm::types::Command {
    let commands = fx.aws.ssm.list_commands().send().await.unwrap();
    let ours: Vec<_> = commands
        .commands()
        .iter()
        .filter(|c| {
            c.comment()
                .unwrap_or_default()
                .starts_with(&format!("bgcloud deploy {} ", fx.stack.spec.name))
        })
        .cloned()
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    ours[0].clone()
}

async fn assert_lock_free(fx: &Fixture) {
    let status = fx.bgcloud(&["lock", "status"]).json();
    assert_eq!(status["held"], false, "the lock was released: {status}");
    assert!(
        !fx.lock_exists().await,
        "no lock object in the state bucket"
    );
}

fn set_ssm(instance: &str, status: &str, stdout: &str, stderr: &str) {
    let body = serde_json::json!({"instance_id": instance, "status": status, "stdout": stdout, "stderr": stderr});
    crate::support::control("ssm-invocation", body);
}

async fn put_lock(fx: &Fixture, owner: &str, reason: &str, expires_at: &str) {
    let body = serde_json::json!({
        "owner": owner, "reason": reason, "started_at": "2026-01-01T00:00:00Z",
        "expires_at": expires_at, "token": "someone-else",
    });
    fx.aws
        .s3
        .put_object()
        .bucket(&fx.stack.state_bucket)
        .key(format!("bgcloud/{}/lock.json", fx.stack.spec.name))
        .body(body.to_string().into_bytes().into())
        .send()
        .await
        .unwrap();
}
