//! Bake time, steps and gates against the emulator's CloudWatch: alarms set through
//! SetAlarmState and metrics put with PutMetricData drive every gate; a failure puts traffic back
//! at once; other runs' promote and rollback are honoured by the running command.

use crate::support::w;
use crate::support::Fixture;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, MetricDatum, StateValue, Statistic,
};
use serde_json::{json, Value};

/// A fixture whose config has `gates` as its `[backend.gates]` section, judged in one-second
/// periods: the emulator's scaled profile publishes metrics per second (localstack/timing.py).
async fn fixture(gates: &str) -> Fixture {
    let fx = Fixture::v1_v2().await;
    let config = fx.stack.config_toml("").replace(
        "\n[frontend]",
        &format!("\n[backend.gates]\nperiod = \"1s\"\n{gates}\n\n[frontend]"),
    );
    fx.write_config(&config);
    fx
}

fn alarm_name(fx: &Fixture) -> String {
    format!("{}-5xx", fx.stack.spec.name)
}

/// Adds an alarm of the fixture's own to `[backend.gates].alarms` and creates it, in OK.
pub(crate) async fn with_alarm(fx: &Fixture) {
    let config = std::fs::read_to_string(&fx.config).unwrap().replace(
        "[backend.gates]\n",
        &format!("[backend.gates]\nalarms = [\"{}\"]\n", alarm_name(fx)),
    );
    fx.write_config(&config);
    create_alarm(fx).await;
    set_alarm(fx, StateValue::Ok).await;
}

async fn create_alarm(fx: &Fixture) {
    fx.aws
        .cloudwatch
        .put_metric_alarm()
        .alarm_name(alarm_name(fx))
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_Target_5XX_Count")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(10.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
}

async fn set_alarm(fx: &Fixture, state: StateValue) {
    fx.aws
        .cloudwatch
        .set_alarm_state()
        .alarm_name(alarm_name(fx))
        .state_value(state)
        .state_reason("test")
        .send()
        .await
        .unwrap();
}

/// Puts ALB datapoints for a colour's target group, as the ALB publishes them, in the next
/// one-second period: one that surely starts after the move the watch judges from.
async fn put_metrics(
    fx: &Fixture,
    target_group_arn: &str,
    requests: f64,
    errors: f64,
    times: &[(f64, f64)],
) {
    let next = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
    put_metrics_at(fx, target_group_arn, (requests, errors), times, next).await
}

/// The dimensions the ALB publishes a target group's metrics under.
fn alb_dimensions(fx: &Fixture, target_group_arn: &str) -> [Dimension; 2] {
    [
        Dimension::builder()
            .name("TargetGroup")
            .value(format!(
                "targetgroup/{}",
                target_group_arn.split(":targetgroup/").nth(1).unwrap()
            ))
            .build(),
        Dimension::builder()
            .name("LoadBalancer")
            .value(
                fx.stack
                    .load_balancer_arn
                    .split(":loadbalancer/")
                    .nth(1)
                    .unwrap(),
            )
            .build(),
    ]
}

/// [`put_metrics`] at `at`.
async fn put_metrics_at(
    fx: &Fixture,
    target_group_arn: &str,
    (requests, errors): (f64, f64),
    times: &[(f64, f64)],
    at: std::time::SystemTime,
) {
    let at = aws_sdk_cloudwatch::primitives::DateTime::from(at);
    let dims = alb_dimensions(fx, target_group_arn);
    let datum = |name: &str, value: f64| {
        MetricDatum::builder()
            .metric_name(name)
            .value(value)
            .timestamp(at)
            .set_dimensions(Some(dims.to_vec()))
            .build()
    };
    // As the ALB counts them: every request routed to the group, and what its targets answered
    // (here all of them: 2xx or 5xx).
    let mut request = fx
        .aws
        .cloudwatch
        .put_metric_data()
        .namespace("AWS/ApplicationELB")
        .metric_data(datum("RequestCount", requests))
        .metric_data(datum("HTTPCode_Target_2XX_Count", requests - errors))
        .metric_data(datum("HTTPCode_Target_5XX_Count", errors));
    if !times.is_empty() {
        request = request.metric_data(
            MetricDatum::builder()
                .metric_name("TargetResponseTime")
                .set_values(Some(times.iter().map(|t| t.0).collect()))
                .set_counts(Some(times.iter().map(|t| t.1).collect()))
                .timestamp(at)
                .set_dimensions(Some(dims.to_vec()))
                .build(),
        );
    }
    request.send().await.unwrap();
}

fn writes_of_rollout(log: &[(String, String)]) -> usize {
    log.iter()
        .filter(|(_, a)| a.starts_with("PUT ") && a.ends_with("/rollout.json"))
        .count()
}

fn rollout_writes(fx: &Fixture) -> usize {
    writes_of_rollout(&fx.requests())
}

/// Waits until the running command is watching: it wrote the rollout state (once more than
/// the `before` writes of earlier commands).
fn wait_for_watch_after(fx: &Fixture, before: usize) {
    fx.wait_until("the watch", |log| writes_of_rollout(log) > before);
}

fn wait_for_watch(fx: &Fixture) {
    wait_for_watch_after(fx, 0);
}

async fn last_event(fx: &Fixture) -> Value {
    fx.record().await["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone()
}

/// The new containers pass the health gate, then start failing the ALB's checks while the watch
/// runs (through the emulator's ALB model, not a forced state): traffic goes back, verified, and
/// the record says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_target_that_turns_unhealthy_during_the_watch_puts_traffic_back() {
    let fx = fixture("").await;
    let child = fx
        .bgcloud(&["deploy", "--image", "v1", "--watch", "60s"])
        .spawn();
    wait_for_watch(&fx);
    fx.assert_weights(0, 100).await;
    // green's containers now answer 500 to the ALB's health checks.
    fx.containers(fx.stack.spec.green_port, json!({"status": 500}));
    let (code, _, stderr) = crate::support::finish(child);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("green failed its watch")
            && stderr.contains("Target.ResponseCodeMismatch")
            && stderr.contains("Rolled back automatically"),
        "{stderr}"
    );
    fx.assert_weights(100, 0).await;
    let event = last_event(&fx).await;
    assert_eq!(event["kind"], "auto-rollback", "{event}");
    assert!(
        event["reason"].as_str().unwrap().contains("unhealthy"),
        "{event}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_in_alarm_during_the_watch_puts_traffic_back_at_once() {
    let fx = fixture("").await;
    with_alarm(&fx).await;
    // INSUFFICIENT_DATA is not ALARM: the watch goes on.
    set_alarm(&fx, StateValue::InsufficientData).await;
    let child = fx
        .bgcloud(&["deploy", "--image", "v1", "--watch", "60s"])
        .spawn();
    wait_for_watch(&fx);
    assert_eq!(
        fx.weights().await,
        w(0, 100),
        "the shift happened before the watch"
    );
    set_alarm(&fx, StateValue::Alarm).await;
    let (code, _, stderr) = crate::support::finish(child);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("green failed its watch")
            && stderr.contains(&format!("alarm {}", alarm_name(&fx)))
            && stderr.contains("Rolled back automatically"),
        "{stderr}"
    );
    fx.assert_weights(100, 0).await;
    let event = last_event(&fx).await;
    assert_eq!(event["kind"], "auto-rollback");
    assert!(
        event["reason"].as_str().unwrap().contains("in ALARM"),
        "{event}"
    );

    // Sending traffic back to what failed needs --force.
    let out = fx.bgcloud(&["rollback"]).code(2);
    assert!(
        out.stderr.contains("rolled back automatically") && out.stderr.contains("--force"),
        "{}",
        out.stderr
    );
    fx.assert_weights(100, 0).await;
    fx.bgcloud(&["rollback", "--force"]).ok();
    fx.assert_weights(0, 100).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_5xx_gate_waits_for_min_requests_then_rolls_back() {
    let fx = fixture("max_5xx_rate = 0.01\nmin_requests = 50").await;
    let child = fx
        .bgcloud(&["deploy", "--image", "v1", "--watch", "60s"])
        .spawn();
    wait_for_watch(&fx);
    // 40 requests, all failing: not judged yet.
    put_metrics(&fx, &fx.stack.green_target_group_arn, 40.0, 40.0, &[]).await;
    fx.wait_for_request("a metrics read", |a| a == "GetMetricData");
    let reads = |log: &[(String, String)]| log.iter().filter(|(_, a)| a == "GetMetricData").count();
    let before = reads(&fx.requests());
    fx.wait_until("another read", |log| reads(log) > before + 1);
    let status = fx.bgcloud(&["status"]).json();
    let gates = status["rollout"]["gates"].as_array().unwrap();
    assert_eq!(gates[0]["state"], "not_judged", "{status}");
    assert!(status["rollout"]["running"].as_bool().unwrap());
    // 100 requests, 45 failing.
    put_metrics(&fx, &fx.stack.green_target_group_arn, 60.0, 5.0, &[]).await;
    let (code, _, stderr) = crate::support::finish(child);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("5xx_rate 0.4500 (limit 0.0100): BREACHED"),
        "{stderr}"
    );
    fx.assert_weights(100, 0).await;
}

/// The ALB's datapoints for requests routed to a colour that no target answered (a crashed,
/// refusing or hanging target: the load balancer's own 502/504): RequestCount counts them, the
/// HTTPCode_Target_* counts do not.
async fn put_unanswered(fx: &Fixture, target_group_arn: &str, requests: f64, answered: f64) {
    let dims = alb_dimensions(fx, target_group_arn);
    let at = aws_sdk_cloudwatch::primitives::DateTime::from(
        std::time::SystemTime::now() + std::time::Duration::from_secs(1),
    );
    let datum = |name: &str, value: f64| {
        MetricDatum::builder()
            .metric_name(name)
            .value(value)
            .timestamp(at)
            .set_dimensions(Some(dims.to_vec()))
            .build()
    };
    fx.aws
        .cloudwatch
        .put_metric_data()
        .namespace("AWS/ApplicationELB")
        .metric_data(datum("RequestCount", requests))
        .metric_data(datum("HTTPCode_Target_2XX_Count", answered))
        .metric_data(datum("HTTPCode_Target_5XX_Count", 0.0))
        .metric_data(datum(
            "TargetConnectionErrorCount",
            (requests - answered) / 2.0,
        ))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_the_load_balancer_makes_itself_breach_the_5xx_gate() {
    let fx = fixture("max_5xx_rate = 0.05\nmin_requests = 50").await;
    let child = fx
        .bgcloud(&["deploy", "--image", "v1", "--watch", "60s"])
        .spawn();
    wait_for_watch(&fx);
    // A canary that crashes or hangs: 100 requests routed to it, 70 answered 200 by its
    // targets, 30 got the load balancer's own 502/504 — not one target 5xx.
    put_unanswered(&fx, &fx.stack.green_target_group_arn, 100.0, 70.0).await;
    let (code, _, stderr) = crate::support::finish(child);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("5xx_rate 0.3000 (limit 0.0500): BREACHED (30 failed: 0 5xx from targets, 30 without a target's answer)"),
        "{stderr}"
    );
    fx.assert_weights(100, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_p99_and_ratio_gates_judge_against_the_stable_colour() {
    let fx =
        fixture("max_p99_latency = \"800ms\"\nmax_5xx_ratio_to_stable = 2.0\nmin_requests = 50")
            .await;
    let child = fx
        .bgcloud(&["deploy", "--image", "v1", "--watch", "60s"])
        .spawn();
    wait_for_watch(&fx);
    // Blue serves 1,000 requests with 2 errors: 0.2 %. Put inside the watch's window (put
    // before the deploy, they fell outside it when the deploy crossed a minute boundary, and
    // the ratio went unjudged), and before green's, so green is never judged without them.
    put_metrics(
        &fx,
        &fx.stack.blue_target_group_arn,
        1000.0,
        2.0,
        &[(0.1, 1000.0)],
    )
    .await;
    // Green: 1,000 requests, 6 errors (0.6 %, 3x blue's), p99 2 s.
    put_metrics(
        &fx,
        &fx.stack.green_target_group_arn,
        1000.0,
        6.0,
        &[(0.1, 980.0), (2.0, 20.0)],
    )
    .await;
    let (code, _, stderr) = crate::support::finish(child);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("p99_latency_s 2 (limit 0.8000): BREACHED"),
        "{stderr}"
    );
    assert!(
        stderr.contains("5xx_ratio_to_stable 3 (limit 2): BREACHED"),
        "{stderr}"
    );
    fx.assert_weights(100, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_whose_metrics_never_appear_is_inconclusive_pauses_and_exits_4() {
    let fx = fixture("max_5xx_rate = 0.01\nmax_p99_latency = \"1s\"").await;
    let out = fx
        .bgcloud(&[
            "deploy", "--image", "v1", "--watch", "3s", "--output", "json",
        ])
        .code(4);
    out.assert_stderr_has("green's watch was inconclusive");
    // Where the paused rollout left traffic, in the JSON error too.
    let error: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(error["error"]["kind"], "inconclusive");
    assert_eq!(
        error["error"]["traffic"]["last_verified"],
        json!({"blue": 0, "green": 100}),
        "{error}"
    );
    out.assert_stderr_has("5xx_rate: INCONCLUSIVE (0 of 50 requests seen)");
    out.assert_stderr_has("`bgcloud promote` accepts it, `bgcloud rollback` undoes it");
    assert!(fx.count("GetMetricData") >= 2, "read every poll");
    // Nothing judged it good or bad: traffic stays where the deploy put it, paused.
    fx.assert_weights(0, 100).await;
    let status = fx.bgcloud(&["status"]).json();
    let r = &status["rollout"];
    assert_eq!(
        (r["paused"].as_bool(), r["running"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(
        r["inconclusive"].as_str().unwrap().contains("5xx_rate"),
        "{status}"
    );
    let text = fx.bgcloud(&["status"]).ok().stdout;
    assert!(text.contains("its watch was inconclusive"), "{text}");
    // A decision first: no new deploy over an unjudged release.
    let refused = fx.bgcloud(&["deploy", "--image", "v2"]).code(2);
    refused.assert_stderr_has("the last rollout is paused: its watch was inconclusive");
    assert_eq!(fx.count("SendCommand"), 1, "only the first deploy launched");
    // promote accepts it as it is.
    fx.bgcloud(&["promote"]).ok();
    fx.assert_weights(0, 100).await;
    assert!(fx.bgcloud(&["status"]).json()["rollout"].is_null());
    fx.bgcloud(&["deploy", "--image", "v2"]).ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inconclusive_canary_stays_at_its_weight_until_rollback() {
    let fx = fixture("max_5xx_rate = 0.01").await;
    let out = fx
        .bgcloud(&["deploy", "--image", "v1", "--canary", "10", "--watch", "3s"])
        .code(4);
    out.assert_stderr_has("green's watch was inconclusive");
    fx.assert_weights(90, 10).await;
    fx.bgcloud(&["rollback"]).ok();
    fx.assert_weights(100, 0).await;
    assert!(fx.bgcloud(&["status"]).json()["rollout"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn inconclusive_can_mean_rollback_or_pass() {
    let fx = fixture("max_5xx_rate = 0.01\ninconclusive = \"rollback\"").await;
    let out = fx
        .bgcloud(&["deploy", "--image", "v1", "--watch", "2s"])
        .code(1);
    out.assert_stderr_has("Rolled back automatically");
    fx.assert_weights(100, 0).await;
    let event = last_event(&fx).await;
    assert_eq!(event["kind"], "auto-rollback");
    assert!(
        event["reason"]
            .as_str()
            .unwrap()
            .starts_with("inconclusive: 5xx_rate"),
        "{event}"
    );

    let fx = fixture("max_5xx_rate = 0.01\ninconclusive = \"pass\"").await;
    let out = fx
        .bgcloud(&["deploy", "--image", "v1", "--watch", "2s"])
        .ok();
    out.assert_stderr_has("going on as if it passed");
    fx.assert_weights(0, 100).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_period_of_a_watch_is_waited_for_and_judged() {
    let fx = fixture("max_5xx_rate = 0.01\nmin_requests = 10").await;
    let child = fx
        .bgcloud(&["deploy", "--image", "v1", "--watch", "6s"])
        .spawn();
    wait_for_watch(&fx);
    // When the watch began: the rollout state's write (the move was just before it).
    let began = crate::support::request_log(&fx.access_key)
        .iter()
        .find(|r| r["method"] == "PUT" && r["path"].as_str().unwrap().ends_with("/rollout.json"))
        .map(|r| r["t"].as_f64().unwrap())
        .unwrap();
    // Past the watch's end, a datapoint of one of its periods arrives (CloudWatch publishes
    // late): the run must still be waiting for its window's data, and judge it.
    let over = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(began + 6.5);
    if let Ok(wait) = over.duration_since(std::time::SystemTime::now()) {
        std::thread::sleep(wait);
    }
    let inside = std::time::UNIX_EPOCH + std::time::Duration::from_secs(began as u64 + 2);
    put_metrics_at(
        &fx,
        &fx.stack.green_target_group_arn,
        (100.0, 40.0),
        &[],
        inside,
    )
    .await;
    let (code, _, stderr) = crate::support::finish(child);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("5xx_rate 0.4000 (limit 0.0100): BREACHED")
            && stderr.contains("waiting for CloudWatch to publish"),
        "{stderr}"
    );
    fx.assert_weights(100, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_joins_during_the_watch_is_not_judged() {
    let fx = fixture("").await;
    let child = fx
        .bgcloud(&["deploy", "--image", "v1", "--watch", "4s"])
        .spawn();
    wait_for_watch(&fx);
    // A scale-out: a new instance registers in green's group and reads unhealthy while it
    // boots. It says nothing of the release.
    let joiner = fx.run_instance(true).await;
    fx.aws
        .elb
        .register_targets()
        .target_group_arn(&fx.stack.green_target_group_arn)
        .targets(
            aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                .id(&joiner)
                .port(8082)
                .build(),
        )
        .send()
        .await
        .unwrap();
    fx.set_target_state(
        &fx.stack.green_target_group_arn,
        &joiner,
        serde_json::json!([{"state": "unhealthy", "reason": "Target.FailedHealthChecks"}]),
    );
    let (code, _, stderr) = crate::support::finish(child);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("target health only"), "{stderr}");
    fx.assert_weights(0, 100).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_that_does_not_exist_is_refused_before_anything_changes() {
    let fx = fixture("alarms = [\"no-such-alarm\"]").await;
    let out = fx
        .bgcloud(&["deploy", "--image", "v1", "--watch", "5s"])
        .code(2);
    out.assert_stderr_has("[backend.gates].alarms names no-such-alarm, which this account");
    assert_eq!(fx.count("SendCommand"), 0, "nothing launched");
    fx.assert_no_writes_but_lock();
    fx.assert_weights(100, 0).await;
    let out = fx
        .bgcloud(&[
            "deploy",
            "--image",
            "v2",
            "--watch",
            "1s",
            "--ignore-missing-metrics",
        ])
        .ok();
    out.assert_stderr_has("--ignore-missing-metrics: going on");
    fx.assert_weights(0, 100).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_composite_alarm_is_read_as_aws_returns_it() {
    let fx = fixture("").await;
    create_alarm(&fx).await;
    let composite = format!("{}-composite", fx.stack.spec.name);
    fx.aws
        .cloudwatch
        .put_composite_alarm()
        .alarm_name(&composite)
        .alarm_rule(format!("ALARM(\"{}\")", alarm_name(&fx)))
        .send()
        .await
        .unwrap();
    let config = std::fs::read_to_string(&fx.config).unwrap().replace(
        "[backend.gates]\n",
        &format!("[backend.gates]\nalarms = [\"{composite}\"]\n"),
    );
    fx.write_config(&config);
    let set = |state: StateValue| {
        let (fx, composite) = (&fx, composite.clone());
        async move {
            fx.aws
                .cloudwatch
                .set_alarm_state()
                .alarm_name(composite)
                .state_value(state)
                .state_reason("test")
                .send()
                .await
                .unwrap();
        }
    };
    set(StateValue::Ok).await;
    let child = fx
        .bgcloud(&["deploy", "--image", "v1", "--watch", "60s"])
        .spawn();
    wait_for_watch(&fx);
    set(StateValue::Alarm).await;
    let (code, _, stderr) = crate::support::finish(child);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("alarm {composite}: BREACHED (in ALARM)")),
        "{stderr}"
    );
    fx.assert_weights(100, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn steps_move_traffic_in_turn_and_history_shows_each() {
    let fx = fixture("").await;
    let out = fx
        .bgcloud(&[
            "deploy",
            "--image",
            "v1",
            "--steps",
            "10,50",
            "--interval",
            "1s",
        ])
        .json();
    assert_eq!(out["ended"], "promoted to green 100 % after 2 step(s)");
    fx.assert_weights(0, 100).await;
    let history = fx.record().await["history"].clone();
    let steps: Vec<(String, u64)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["to"]["green"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("deploy".into(), 10),
            ("step".into(), 50),
            ("promote".into(), 100)
        ]
    );
    // The result lists every move and where traffic ended, not only the first shift.
    let w = |blue: u8, green: u8| serde_json::json!({"blue": blue, "green": green});
    assert_eq!(
        out["moves"],
        serde_json::json!([w(90, 10), w(50, 50), w(0, 100)]),
        "{out}"
    );
    assert_eq!(out["traffic"], w(0, 100));

    // And so do the text and the CI step summary.
    let summary = fx.dir.path().join("summary.md");
    let text = fx
        .bgcloud(&[
            "deploy",
            "--image",
            "v2",
            "--steps",
            "10",
            "--interval",
            "1s",
        ])
        .env("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())
        .ok()
        .stdout;
    assert!(
        text.contains(
            "traffic: blue 0 % / green 100 % → blue 10 % / green 90 % → blue 100 % / green 0 % \
             (each verified on the listener)"
        ) && text.contains("traffic ended at: blue 100 % / green 0 %"),
        "{text}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("| before | 0 % | 100 % |\n| after | 100 % | 0 % |"),
        "the table says where traffic ended: {md}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_rollout_shows_in_status_and_promote_continues_it() {
    let fx = fixture("").await;
    fx.bgcloud(&[
        "deploy",
        "--image",
        "v1",
        "--steps",
        "10,50",
        "--interval",
        "1s",
        "--pause",
    ])
    .ok();
    fx.assert_weights(50, 50).await;
    let status = fx.bgcloud(&["status"]).json();
    let r = &status["rollout"];
    assert_eq!(
        (r["steps"].clone(), r["step"].clone()),
        (serde_json::json!([10, 50]), serde_json::json!(2))
    );
    assert_eq!(
        (r["weight"].as_u64(), r["paused"].as_bool()),
        (Some(50), Some(true))
    );
    assert_eq!(r["running"], false);
    fx.bgcloud(&["promote"]).ok();
    fx.assert_weights(0, 100).await;
    assert!(fx.bgcloud(&["status"]).json()["rollout"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_in_a_step_rolls_back_from_that_step() {
    let fx = fixture("").await;
    with_alarm(&fx).await;
    let child = fx
        .bgcloud(&[
            "deploy",
            "--image",
            "v1",
            "--steps",
            "10,50",
            "--interval",
            "3s",
            "--output",
            "json",
        ])
        .spawn();
    wait_for_watch(&fx);
    let status = fx.bgcloud(&["status"]).json();
    assert_eq!(status["rollout"]["step"], 1, "{status}");
    assert!(status["rollout"]["next_at"].is_string(), "{status}");
    // The second step: half the traffic on green, then its alarm fires.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while fx.weights().await != w(50, 50) {
        assert!(std::time::Instant::now() < deadline, "no second step");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    set_alarm(&fx, StateValue::Alarm).await;
    let (code, stdout, stderr) = crate::support::finish(child);
    assert_eq!(code, 1, "{stderr}");
    fx.assert_weights(100, 0).await;
    assert_eq!(last_event(&fx).await["kind"], "auto-rollback");
    // The failure says every move the run made and where traffic ended, in text and JSON.
    assert!(
        stderr.contains(
            "traffic moved in this run: blue 100 % / green 0 % → blue 90 % / green 10 % (deploy) \
             → blue 50 % / green 50 % (step) → blue 100 % / green 0 % (auto-rollback), each \
             verified on the listener"
        ),
        "{stderr}"
    );
    let error: Value = serde_json::from_str(&stdout).unwrap();
    let traffic = &error["error"]["traffic"];
    let actions: Vec<&str> = traffic["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["deploy", "step", "auto-rollback"], "{error}");
    assert_eq!(
        traffic["last_verified"],
        json!({"blue": 100, "green": 0}),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_while_promote_watches_rolls_back_to_the_stable_colour() {
    let fx = fixture("").await;
    with_alarm(&fx).await;
    fx.bgcloud(&["deploy", "--image", "v1", "--canary", "10"])
        .ok();
    let before = rollout_writes(&fx); // the paused canary's state
    let child = fx.bgcloud(&["promote", "--watch", "60s"]).spawn();
    wait_for_watch_after(&fx, before);
    fx.assert_weights(0, 100).await;
    set_alarm(&fx, StateValue::Alarm).await;
    let (code, _, stderr) = crate::support::finish(child);
    assert_eq!(code, 1, "{stderr}");
    fx.assert_weights(100, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn promote_from_another_shell_is_honoured_by_the_running_rollout() {
    let fx = fixture("").await;
    let child = fx
        .bgcloud(&[
            "deploy",
            "--image",
            "v1",
            "--steps",
            "10,50",
            "--interval",
            "5m",
        ])
        .spawn();
    wait_for_watch(&fx);
    let out = fx.bgcloud(&["promote"]).ok();
    assert!(
        out.stdout.contains("blue 0 % / green 100 %"),
        "{}",
        out.stdout
    );
    let (code, stdout, stderr) = crate::support::finish(child);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("promoted at step 1 at the request of tester@"),
        "{stdout}"
    );
    fx.assert_weights(0, 100).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_from_another_shell_ends_the_watch_with_exit_1() {
    let fx = fixture("").await;
    let child = fx
        .bgcloud(&["deploy", "--image", "v1", "--watch", "5m"])
        .spawn();
    wait_for_watch(&fx);
    fx.bgcloud(&["rollback"]).ok();
    let (code, _, stderr) = crate::support::finish(child);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("rolled back at the request of tester@"),
        "{stderr}"
    );
    fx.assert_weights(100, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_the_watch_keeps_the_traffic_and_says_so() {
    let fx = fixture("").await;
    let child = fx
        .bgcloud(&["deploy", "--image", "v1", "--watch", "5m"])
        .spawn();
    wait_for_watch(&fx);
    crate::support::signal(&child, "INT");
    let (code, _, stderr) = crate::support::finish(child);
    assert_eq!(code, 130, "{stderr}");
    assert!(stderr.contains("nothing was rolled back"), "{stderr}");
    fx.assert_weights(0, 100).await;
    assert!(!fx.lock_exists().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn conflicting_rollout_flags_are_refused_before_any_request() {
    let fx = fixture("").await;
    for (args, says) in [
        (
            &["--canary", "10", "--steps", "10,50"][..],
            "give one of the two",
        ),
        (&["--pause"], "--pause and --interval go with steps"),
        (&["--steps", "50,10"], "steps must grow"),
        (&["--steps", "10,100"], "from 1 to 99"),
        (&["--watch", "soon"], "--watch"),
    ] {
        let mut argv = vec!["deploy", "--image", "v1"];
        argv.extend_from_slice(args);
        let out = fx.bgcloud(&argv).code(2);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
    assert_eq!(fx.requests(), vec![]);
}

#[tokio::test(flavor = "multi_thread")]
async fn shift_watches_the_colour_that_gained_traffic() {
    let fx = fixture("").await;
    with_alarm(&fx).await;
    let out = fx
        .bgcloud(&["shift", "--to", "green", "--weight", "30", "--watch", "1s"])
        .ok();
    assert!(
        out.stderr.contains("green passed its watch"),
        "{}",
        out.stderr
    );
    fx.assert_weights(70, 30).await;
    set_alarm(&fx, StateValue::Alarm).await;
    let out = fx
        .bgcloud(&["shift", "--to", "green", "--watch", "30s"])
        .code(1);
    assert!(
        out.stderr.contains("green failed its watch"),
        "{}",
        out.stderr
    );
    // All of it back on blue, the colour that lost traffic in that shift.
    fx.assert_weights(100, 0).await;
}

/// Off a terminal (CI), a watch says what it reads when the reading changes, not every poll:
/// one line when it begins, one when a target stops being healthy, and nothing in between.
#[tokio::test(flavor = "multi_thread")]
async fn a_watch_writes_a_line_when_its_readings_change_not_every_poll() {
    let fx = fixture("").await;
    let child = fx
        .bgcloud(&["deploy", "--image", "v1", "--watch", "5s"])
        .spawn();
    wait_for_watch(&fx);
    let polls_before = fx.count("DescribeTargetHealth");
    std::thread::sleep(std::time::Duration::from_secs(2));
    fx.set_target_state(
        &fx.stack.green_target_group_arn,
        &fx.stack.instance_ids[0],
        json!([{"state": "draining", "reason": "Target.DeregistrationInProgress"}]),
    );
    let (code, _, stderr) = crate::support::finish(child);
    assert_eq!(code, 0, "{stderr}");
    let polls = fx.count("DescribeTargetHealth") - polls_before;
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("watching green: "))
        .collect();
    assert_eq!(lines.len(), 2, "{polls} polls: {stderr}");
    assert!(
        lines[0].contains(" in, ") && lines[0].ends_with("s left · 2 of 2 targets healthy"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].ends_with("· 1 of 2 targets healthy"),
        "{}",
        lines[1]
    );
    assert!(polls >= 5, "the watch polled {polls} times");
}
