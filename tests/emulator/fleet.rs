//! The instance side of a deploy as SSM really behaves: agents that are not there, calls the
//! role may not make or the endpoint does not know, and what SSM says when a launch fails.

use crate::support::Fixture;
use serde_json::json;

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
    crate::support::control(
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
    fx.assert_no_writes_but_lock();

    crate::support::control(
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
    fx.assert_weights(100, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_permission_to_check_the_agents_is_refused_naming_it() {
    let fx = Fixture::new().await;
    crate::support::control(
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
    crate::support::control(
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
    fx.assert_weights(0, 100).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ssm_status_details_are_shown() {
    let fx = Fixture::new().await;
    let id = fx.stack.instance_ids[0].clone();
    crate::support::control(
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
    fx.assert_weights(100, 0).await;
}

/// Creates an Auto Scaling group of `size` instances in the stack's VPC through boto3 (the
/// emulator's venv has it; bgcloud itself needs no Auto Scaling client) and returns the ids of
/// the instances the group launched.
fn auto_scaling_group(fx: &Fixture, name: &str, size: u32) -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = r#"
import json, sys, boto3
endpoint, vpc, name, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="AKIDASGSETUP", aws_secret_access_key="x")
ec2, asg = boto3.client("ec2", **kw), boto3.client("autoscaling", **kw)
subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"][0]["SubnetId"]
ec2.create_launch_template(LaunchTemplateName=name,
    LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"})
asg.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=size, MaxSize=size,
    DesiredCapacity=size, VPCZoneIdentifier=subnet,
    LaunchTemplate={"LaunchTemplateName": name, "Version": "$Latest"})
group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
print(json.dumps(sorted(i["InstanceId"] for i in group["Instances"])))
"#;
    let out = std::process::Command::new(root.join("localstack/.venv/bin/python"))
        .args([
            "-c",
            script,
            crate::support::endpoint(),
            &fx.stack.vpc_id,
            name,
        ])
        .arg(size.to_string())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "creating the group: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("instance ids")
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_scaling_group_names_the_groups_running_instances() {
    let fx = Fixture::new().await;
    let group = format!("{}-asg", fx.stack.spec.name);
    let members = auto_scaling_group(&fx, &group, 3);
    assert_eq!(members.len(), 3);
    let config = fx
        .stack
        .config_naming_instances(&format!("auto_scaling_group = \"{group}\""));
    fx.write_config(&config);
    let plan = fx.bgcloud(&["deploy", "--image", "v1", "--dry-run"]).json();
    let instances: Vec<String> = serde_json::from_value(plan["instances"].clone()).unwrap();
    // The group's instances, not the stack's tagged ones.
    assert_eq!(instances, members);
    assert!(fx.stack.instance_ids.iter().all(|i| !instances.contains(i)));

    // Both ways of naming instances at once is refused before any request.
    fx.write_config(&config.replace(
        "[backend]\n",
        &format!("[backend]\ninstance_ids = [\"{}\"]\n", members[0]),
    ));
    let out = fx
        .bgcloud(&["deploy", "--image", "v1", "--dry-run"])
        .code(2);
    out.assert_stderr_has("keep one of them");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_leaves_ssm_between_the_check_and_the_send_is_named() {
    let fx = Fixture::new().await;
    let gone = fx.stack.instance_ids[1].clone();
    // SendCommand is held for a moment; meanwhile the instance's agent deregisters (the
    // instance was terminated): SSM answers InvalidInstanceId.
    fx.fault(json!({"action": "SendCommand", "delay": 1.5, "pass": true, "times": 1}));
    let child = fx.bgcloud(&["deploy", "--image", "v1"]).spawn();
    fx.wait_for_request("the SendCommand", |a| a == "SendCommand");
    crate::support::control(
        "ssm-agent",
        json!({"instance_id": gone, "status": "unregistered"}),
    );
    let (code, _, stderr) = crate::support::finish(child);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("{gone} (not managed by SSM)"))
            && stderr.contains("InvalidInstanceId")
            && stderr.contains("traffic was not changed"),
        "{stderr}"
    );
    fx.assert_weights(100, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_result_read_cancels_the_command_before_returning() {
    let fx = Fixture::new().await;
    fx.hold_launch();
    // Every GetCommandInvocation fails (past the SDK's retries).
    fx.fault(json!({"action": "GetCommandInvocation", "status": 500,
                    "code": "InternalServerError", "times": 100}));
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(1);
    out.assert_stderr_has("The command was cancelled on the instances it was still running on");
    assert_eq!(fx.count("CancelCommand"), 1, "{:?}", fx.requests());
    fx.assert_weights(100, 0).await;
}

/// What GetCommandInvocation answered for one command, in order, read until the result shows.
async fn invocation_phases(fx: &Fixture, command_id: &str, instance_id: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = fx
            .aws
            .ssm
            .get_command_invocation()
            .command_id(command_id)
            .instance_id(instance_id)
            .send()
            .await;
        let phase = match got {
            Ok(out) => out
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            Err(e) => e
                .as_service_error()
                .and_then(|e| e.meta().code())
                .unwrap_or("no answer")
                .to_string(),
        };
        if seen.last() != Some(&phase) {
            seen.push(phase.clone());
        }
        if phase == "Success" || std::time::Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invocation_not_there_yet_right_after_the_send_is_asked_for_again() {
    // SSM as modelled: the invocation does not exist for a moment after SendCommand, then is
    // Pending, then InProgress, then shows its result (the SDKs' CommandExecuted waiter retries
    // on InvocationDoesNotExist for this reason).
    let fx = Fixture::new().await;
    let instance = &fx.stack.instance_ids[0];
    let sent = fx
        .aws
        .ssm
        .send_command()
        .document_name("AWS-RunShellScript")
        .instance_ids(instance)
        .parameters("commands", vec!["true".to_string()])
        .send()
        .await
        .unwrap();
    let command_id = sent.command().and_then(|c| c.command_id()).unwrap();
    assert_eq!(
        invocation_phases(&fx, command_id, instance).await,
        ["InvocationDoesNotExist", "Pending", "InProgress", "Success"]
    );

    // bgcloud asks right after its send, is told the invocation does not exist, and asks again
    // until the launch succeeded on every instance.
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    fx.assert_weights(0, 100).await;
    let log = crate::support::request_log(&fx.access_key);
    let launch = log
        .iter()
        .position(|r| r["action"] == "SendCommand")
        .expect("a launch");
    let reads: Vec<u64> = log[launch..]
        .iter()
        .filter(|r| r["action"] == "GetCommandInvocation")
        .map(|r| r["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(
        reads.first(),
        Some(&400),
        "asked at once and told it does not exist yet: {reads:?}\n{}",
        out.stderr
    );
    assert!(reads.contains(&200), "{reads:?}");
}
