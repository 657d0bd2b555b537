//! Draining before a container is replaced: a deploy to a colour that lost its traffic moments
//! ago waits out the rest of the target group's deregistration delay, and only then launches.

use crate::support::Fixture;

async fn set_delay(fx: &Fixture, target_group_arn: &str, seconds: u64) {
    fx.set_deregistration_delay(target_group_arn, seconds).await;
}

/// A deploy's JSON result and its stderr.
fn deploy(fx: &Fixture, image: &str) -> (serde_json::Value, String) {
    let out = fx
        .bgcloud(&["deploy", "--image", image, "--output", "json"])
        .ok();
    let json = serde_json::from_str(&out.stdout).expect("JSON on stdout");
    (json, out.stderr)
}

/// Emulator times (seconds) of `action` in this test's requests, in order.
fn times(fx: &Fixture, action: &str) -> Vec<f64> {
    crate::support::request_log(&fx.access_key)
        .iter()
        .filter(|r| r["action"] == action)
        .map(|r| r["t"].as_f64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_right_after_green_lost_its_traffic_waits_for_it_to_drain() {
    let fx = Fixture::v1_v2_with("").await;
    set_delay(&fx, &fx.stack.green_target_group_arn, 3).await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green live
    fx.bgcloud(&["deploy", "--image", "v2"]).ok(); // blue live: green just lost its traffic

    let plan = fx.bgcloud(&["deploy", "--image", "v1", "--dry-run"]).ok();
    assert!(
        plan.stdout.contains("drain     green lost its traffic at"),
        "the dry run shows the wait: {}",
        plan.stdout
    );

    let (out, stderr) = deploy(&fx, "v1");
    assert_eq!(out["color"], "green");
    let drain = &out["drain"];
    assert!(
        drain["wait_seconds"].as_f64().unwrap() > 0.0
            && drain["delay_seconds"] == 3.0
            && drain["propagation_seconds"] == 1.0,
        "{drain}"
    );
    assert!(
        stderr.contains("draining: green lost its traffic"),
        "{stderr}"
    );

    // The third launch went out no sooner than 4 s after the listener took green's traffic:
    // the listener's propagation (1 s in the stack's config, the emulator's 0.5 s) and then the
    // 3 s delay.
    let shifts = times(&fx, "ModifyListener");
    let launches = times(&fx, "SendCommand");
    let (lost, relaunch) = (shifts[1], launches[2]);
    assert!(
        relaunch - lost >= 4.0,
        "green's container was replaced {:.2} s after it lost its traffic (propagation 1 s, delay 3 s)",
        relaunch - lost
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_wait_for_a_colour_that_never_had_traffic_or_drained_long_ago() {
    let fx = Fixture::v1_v2_with("").await;
    set_delay(&fx, &fx.stack.blue_target_group_arn, 1).await;
    // Green never had traffic in the record: the first deploy launches at once.
    let (first, stderr) = deploy(&fx, "v1");
    assert!(first["drain"].is_null(), "{first}");
    assert!(!stderr.contains("draining"), "{stderr}");

    // Blue lost its traffic with that deploy; after the listener's propagation (1 s), its 1 s
    // delay and the second the record's time resolution adds, there is nothing left to wait for.
    std::thread::sleep(std::time::Duration::from_millis(3100));
    let (second, stderr) = deploy(&fx, "v2");
    assert_eq!(second["color"], "blue");
    assert!(second["drain"].is_null(), "{second}");
    assert!(!stderr.contains("draining"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_wait_max_caps_the_wait_and_zero_turns_it_off() {
    let fx = Fixture::v1_v2_with("drain_wait_max = \"0s\"").await;
    set_delay(&fx, &fx.stack.green_target_group_arn, 300).await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    fx.bgcloud(&["deploy", "--image", "v2"]).ok();
    let off = fx.bgcloud(&["deploy", "--image", "v1"]).json();
    assert!(off["drain"].is_null(), "{off}");
    assert!(
        times(&fx, "DescribeTargetGroupAttributes").is_empty(),
        "with the wait off the delay is not even read"
    );

    fx.write_config(&fx.stack.config_toml("drain_wait_max = \"2s\""));
    set_delay(&fx, &fx.stack.blue_target_group_arn, 300).await;
    // Blue lost its traffic just now (the last deploy went to green).
    let capped = fx.bgcloud(&["deploy", "--image", "v2"]).json();
    let drain = &capped["drain"];
    assert_eq!(drain["cap_seconds"], 2.0, "{drain}");
    assert!(drain["wait_seconds"].as_f64().unwrap() <= 2.0, "{drain}");
    // From the emulator's log, not bgcloud's own account: the launch came well before the 300 s
    // delay (a loose bound: the cap is what is proven, not this machine's speed).
    let shifted = times(&fx, "ModifyListener");
    let launched = times(&fx, "SendCommand");
    let waited = launched.last().unwrap() - shifted[shifted.len() - 2];
    assert!(
        waited < 60.0,
        "launched {waited:.1} s after blue lost its traffic (delay 300 s, cap 2 s)"
    );
}
