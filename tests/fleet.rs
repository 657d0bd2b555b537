//! The instance side of a deploy as SSM really behaves: agents that are not there, calls the
//! role may not make or the endpoint does not know, and what SSM says when a launch fails.

mod support;

use bgcloud::weights::Weights;
use serde_json::json;
use support::Fixture;

fn w(blue: u8, green: u8) -> Weights {
    Weights { blue, green }
}

fn sent_commands(fx: &Fixture) -> usize {
    fx.requests()
        .iter()
        .filter(|(_, a)| a == "SendCommand")
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_without_a_registered_agent_is_refused_before_anything_is_sent() {
    let fx = Fixture::new().await;
    let lost = &fx.stack.instance_ids[1];
    support::control(
        "ssm-agent",
        json!({"instance_id": lost, "status": "unregistered"}),
    );
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(2);
    assert!(
        out.stderr.contains(lost.as_str()) && out.stderr.contains("not managed by SSM"),
        "{}",
        out.stderr
    );
    assert_eq!(sent_commands(&fx), 0);
    assert_eq!(fx.writes_but_lock(), vec![]);

    support::control(
        "ssm-agent",
        json!({"instance_id": lost, "status": "ConnectionLost"}),
    );
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(2);
    assert!(
        out.stderr.contains(lost.as_str()) && out.stderr.contains("ConnectionLost"),
        "{}",
        out.stderr
    );
    // The dry run checks too: it is read-only.
    fx.bgcloud(&["deploy", "--image", "v1", "--dry-run"])
        .code(2);
    assert_eq!(sent_commands(&fx), 0);
    assert_eq!(fx.weights().await, w(100, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_permission_to_check_the_agents_is_refused_naming_it() {
    let fx = Fixture::new().await;
    support::control(
        "faults",
        json!({"access_key": fx.access_key, "action": "DescribeInstanceInformation",
               "status": 400, "code": "AccessDeniedException", "times": 10}),
    );
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(2);
    assert!(
        out.stderr.contains("ssm:DescribeInstanceInformation"),
        "{}",
        out.stderr
    );
    assert_eq!(sent_commands(&fx), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_without_the_agent_call_gets_one_warning_and_the_deploy_goes_on() {
    let fx = Fixture::new().await;
    support::control(
        "faults",
        json!({"access_key": fx.access_key, "action": "DescribeInstanceInformation",
               "unimplemented": true, "times": 10}),
    );
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    let warnings = out
        .stderr
        .matches("does not implement ssm:DescribeInstanceInformation")
        .count();
    assert_eq!(warnings, 1, "{}", out.stderr);
    assert_eq!(fx.weights().await, w(0, 100));
}

#[tokio::test(flavor = "multi_thread")]
async fn ssm_status_details_are_shown() {
    let fx = Fixture::new().await;
    let id = fx.stack.instance_ids[0].clone();
    support::control(
        "ssm-invocation",
        json!({"instance_id": id, "status": "TimedOut", "status_details": "DeliveryTimedOut"}),
    );
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(1);
    assert!(
        out.stderr
            .contains(&format!("{id} TimedOut (DeliveryTimedOut)")),
        "{}",
        out.stderr
    );
    assert_eq!(fx.weights().await, w(100, 0));
}
