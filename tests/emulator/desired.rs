//! The desired state an instance boots from: each colour's launch script next to the record,
//! written by a deploy (after its health gate, before traffic moves), never by a traffic-only
//! change, and never holding a secret's value. And the shift's guard: a target the deploy did
//! not launch (an instance that joined meanwhile) stops it before any traffic moves.

use crate::support::Fixture;
use aws_sdk_elasticloadbalancingv2::types::TargetDescription;

async fn fixture(extra_backend: &str) -> Fixture {
    let fx = Fixture::with_tags(&["v1", "v2", "bad"]).await;
    fx.write_config(&fx.stack.config_toml(extra_backend));
    fx
}

/// A colour's desired-state script and its ETag, as stored; None when absent.
async fn desired(fx: &Fixture, color: &str) -> Option<(String, String)> {
    let (body, etag) = fx.state_object(&format!("desired/{color}.sh")).await?;
    Some((String::from_utf8(body).unwrap(), etag))
}

#[tokio::test(flavor = "multi_thread")]
async fn each_deploy_leaves_the_colours_script_and_traffic_changes_leave_it_alone() {
    let parameter = "/desired/prod/DATABASE_URL";
    let fx = fixture(&format!("secrets = {{ DATABASE_URL = \"{parameter}\" }}")).await;
    fx.put_secret(parameter, "postgres://app:hunter2-s3cr3t@db/prod")
        .await;
    assert!(desired(&fx, "green").await.is_none());
    let plan = fx.bgcloud(&["deploy", "--image", "v1", "--dry-run"]).ok();
    let location = format!(
        "desired   s3://{}/bgcloud/{}/desired/green.sh",
        fx.stack.state_bucket, fx.stack.spec.name
    );
    assert!(plan.stdout.contains(&location), "{}", plan.stdout);
    assert!(
        desired(&fx, "green").await.is_none(),
        "a dry run stores nothing"
    );

    let first = fx.bgcloud(&["deploy", "--image", "v1"]);
    let first = first.json();
    assert_eq!(first["color"], "green");
    let (green, etag) = desired(&fx, "green").await.expect("green.sh written");
    // Exactly the script SSM ran, as a file: digest, port, labels, the secret by name only.
    let script: Vec<String> = serde_json::from_value(first["script"].clone()).unwrap();
    assert_eq!(green, script.join("\n") + "\n");
    assert!(green.starts_with("#!/bin/sh\n"), "{green}");
    assert!(green.contains(&fx.stack.images["v1"]), "{green}");
    assert!(green.contains("-p 8082:3000"), "{green}");
    assert!(green.contains(parameter), "{green}");
    assert!(
        !green.contains("hunter2"),
        "a secret value was stored: {green}"
    );
    assert!(
        desired(&fx, "blue").await.is_none(),
        "blue was not deployed"
    );

    // Traffic-only changes write nothing: no request at all, same version.
    let puts = format!(
        "PUT /{}/bgcloud/{}/desired/",
        fx.stack.state_bucket, fx.stack.spec.name
    );
    assert_eq!(fx.count_prefix(&puts), 1);
    fx.bgcloud(&["rollback"]).ok();
    fx.bgcloud(&["shift", "--to", "green"]).ok();
    assert_eq!(
        fx.count_prefix(&puts),
        1,
        "rollback and shift wrote desired state"
    );
    assert_eq!(desired(&fx, "green").await.unwrap().1, etag);

    // The next deploy goes to blue: blue.sh appears, green.sh stays as it was.
    fx.bgcloud(&["deploy", "--image", "v2"]).ok();
    let (blue, _) = desired(&fx, "blue").await.expect("blue.sh written");
    assert!(blue.contains(&fx.stack.images["v2"]) && blue.contains("-p 8081:3000"));
    assert_eq!(desired(&fx, "green").await.unwrap().1, etag);
    assert_eq!(fx.count_prefix(&puts), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_health_gate_leaves_the_desired_state_as_it_was() {
    let fx = fixture("").await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green
    fx.bgcloud(&["deploy", "--image", "v2"]).ok(); // blue
    let (before, etag) = desired(&fx, "green").await.unwrap();
    fx.image_behaviour("bad", crate::support::ready_then_500());
    let failed = fx.bgcloud(&["deploy", "--image", "bad"]).code(1);
    failed.assert_stderr_has("green reads unhealthy");
    failed.assert_stderr_has("Traffic was not changed");
    let (after, etag_after) = desired(&fx, "green").await.unwrap();
    assert_eq!(
        (after, etag_after),
        (before, etag),
        "green.sh still the gated v1"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_the_deploy_did_not_launch_stops_the_shift() {
    let fx = fixture("").await;
    // An instance outside the app's tags, registered in green's group (as an Auto Scaling
    // group registers one that joins during a deploy): it would get traffic with whatever it
    // runs.
    let stranger = fx.run_instance(false).await;
    fx.aws
        .elb
        .register_targets()
        .target_group_arn(&fx.stack.green_target_group_arn)
        .targets(
            TargetDescription::builder()
                .id(&stranger)
                .port(8082)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let before = fx.weights().await;
    let failed = fx.bgcloud(&["deploy", "--image", "v2"]).code(1);
    assert!(
        failed.stderr.contains(&stranger) && failed.stderr.contains("did not launch"),
        "{}",
        failed.stderr
    );
    assert_eq!(fx.weights().await, before, "traffic untouched");
    assert_eq!(fx.count("ModifyListener"), 0);
    assert!(
        desired(&fx, "green").await.is_none(),
        "nothing recorded as desired"
    );
    assert!(!fx.lock_exists().await);
}
