//! The instance side of a deploy as SSM really behaves: agents that are not there, calls the
//! role may not make or the endpoint does not know, and what SSM says when a launch fails.

use crate::support::Fixture;
use serde_json::{json, Value};

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

/// Runs `body` (Python, with `ec2`, `asg` and `elb` boto3 clients on the emulator and `args`,
/// the JSON `args` given) in the emulator's venv, which has boto3 (bgcloud's own Auto Scaling
/// client only reads); what it prints is the answer.
fn boto3(body: &str, args: serde_json::Value) -> serde_json::Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = format!(
        r#"
import json, sys, boto3
endpoint, args = sys.argv[1], json.loads(sys.argv[2])
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="AKIDASGSETUP", aws_secret_access_key="x")
ec2, asg, elb = (boto3.client(s, **kw) for s in ("ec2", "autoscaling", "elbv2"))
{body}
"#
    );
    let out = std::process::Command::new(root.join("localstack/.venv/bin/python"))
        .args(["-c", &script, crate::support::endpoint(), &args.to_string()])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON answer")
}

/// Creates an Auto Scaling group of `size` instances in the stack's VPC, attached to
/// `target_groups` as the Terraform module attaches both colours', and returns the ids of the
/// instances the group launched.
fn auto_scaling_group(fx: &Fixture, name: &str, size: u32, target_groups: &[&str]) -> Vec<String> {
    let ids = boto3(
        r#"
subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [args["vpc"]]}])["Subnets"][0]["SubnetId"]
ec2.create_launch_template(LaunchTemplateName=args["name"],
    LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"})
asg.create_auto_scaling_group(AutoScalingGroupName=args["name"], MinSize=0, MaxSize=args["size"],
    DesiredCapacity=args["size"], VPCZoneIdentifier=subnet, TargetGroupARNs=args["target_groups"],
    LaunchTemplate={"LaunchTemplateName": args["name"], "Version": "$Latest"})
group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[args["name"]])["AutoScalingGroups"][0]
print(json.dumps(sorted(i["InstanceId"] for i in group["Instances"])))
"#,
        json!({"vpc": fx.stack.vpc_id, "name": name, "size": size, "target_groups": target_groups}),
    );
    serde_json::from_value(ids).unwrap()
}

/// Takes `instance` out of service as its group would: `standby` (EnterStandby) or `terminate`
/// (TerminateInstanceInAutoScalingGroup); either way the group deregisters it (draining) and it
/// stays EC2 `running` (localstack/model_autoscaling.py).
fn take_out(group: &str, instance: &str, how: &str) {
    boto3(
        r#"
if args["how"] == "standby":
    asg.enter_standby(AutoScalingGroupName=args["group"], InstanceIds=[args["instance"]],
                      ShouldDecrementDesiredCapacity=True)
else:
    asg.terminate_instance_in_auto_scaling_group(InstanceId=args["instance"],
                                                 ShouldDecrementDesiredCapacity=True)
print("null")
"#,
        json!({"group": group, "instance": instance, "how": how}),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_scaling_group_names_the_groups_running_instances() {
    let fx = Fixture::new().await;
    let group = format!("{}-asg", fx.stack.spec.name);
    let members = auto_scaling_group(&fx, &group, 3, &[]);
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

/// A group of four attached to both colours' target groups, which drain for 300 s (so an
/// instance the group terminates stays `Terminating` and EC2 `running` through the test). The
/// stack's own tagged instances leave the target groups: the group's are the app's now.
async fn group_of_four(fx: &Fixture) -> (String, Vec<String>) {
    let group = format!("{}-asg", fx.stack.spec.name);
    for arn in [
        &fx.stack.blue_target_group_arn,
        &fx.stack.green_target_group_arn,
    ] {
        let mut out = fx.aws.elb.deregister_targets().target_group_arn(arn);
        for id in &fx.stack.instance_ids {
            out = out.targets(
                aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                    .id(id)
                    .build(),
            );
        }
        out.send().await.unwrap();
        fx.set_deregistration_delay(arn, 300).await;
    }
    let members = auto_scaling_group(
        fx,
        &group,
        4,
        &[
            &fx.stack.blue_target_group_arn,
            &fx.stack.green_target_group_arn,
        ],
    );
    let config = fx
        .stack
        .config_naming_instances(&format!("auto_scaling_group = \"{group}\""));
    fx.write_config(&config);
    (group, members)
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_their_group_holds_out_of_service_are_not_deployed_to_nor_registered() {
    let fx = Fixture::new().await;
    let (group, members) = group_of_four(&fx).await;
    take_out(&group, &members[1], "standby");
    take_out(&group, &members[2], "terminate");
    let (on_standby, terminating) = (&members[1], &members[2]);
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    fx.assert_weights(0, 100).await;
    // The launch went only to the instances in service (SSM's own list of commands per
    // instance), and the two taken out were never registered again: they drain, no traffic.
    for id in [on_standby, terminating] {
        assert_eq!(crate::sync::scripts_sent_to(&fx, id).await.len(), 0, "{id}");
    }
    for id in [&members[0], &members[3]] {
        assert_eq!(crate::sync::scripts_sent_to(&fx, id).await.len(), 1, "{id}");
    }
    for id in [&members[0], &members[3]] {
        assert_eq!(
            crate::sync::state_in(&fx, &fx.stack.green_target_group_arn, id).await,
            "healthy",
            "{id}"
        );
    }
    for id in [on_standby, terminating] {
        assert_eq!(
            crate::sync::state_in(&fx, &fx.stack.green_target_group_arn, id).await,
            "draining",
            "{id}"
        );
    }
    // EC2 still calls both running: only the Auto Scaling lifecycle tells them apart.
    let running = fx
        .aws
        .ec2
        .describe_instances()
        .instance_ids(on_standby)
        .instance_ids(terminating)
        .send()
        .await
        .unwrap();
    let states: Vec<String> = running
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| i.state().unwrap().name().unwrap().as_str().to_string())
        .collect();
    assert_eq!(states, ["running", "running"]);
    // And the user is told which and why.
    out.assert_stderr_has(&format!(
        "leaving out {on_standby} (Standby), {terminating} (Terminating): their Auto Scaling group holds them out of service"
    ));

    // With every instance out of service there is nothing to deploy to: refused, nothing sent.
    take_out(&group, &members[0], "standby");
    take_out(&group, &members[3], "standby");
    let mark = fx.mark();
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(2);
    out.assert_stderr_has("no instance in service to deploy to");
    fx.assert_no_writes_but_lock_since(mark);
    fx.assert_weights(0, 100).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_its_group_takes_out_during_the_gate_is_dropped_from_it() {
    let fx = Fixture::new().await;
    let (group, members) = group_of_four(&fx).await;
    let leaving = members[3].clone();
    let child = fx.bgcloud(&["deploy", "--image", "v1"]).spawn();
    // In the gate: the launch has finished (its last GetCommandInvocation) and bgcloud reads
    // the target group.
    fx.wait_until("the health gate", |log| {
        let last_launch_read = log.iter().rposition(|(_, a)| a == "GetCommandInvocation");
        last_launch_read.is_some_and(|i| {
            log[i..].iter().any(|(_, a)| a == "DescribeTargetHealth")
                && log.iter().any(|(_, a)| a == "SendCommand")
        })
    });
    take_out(&group, &leaving, "standby");
    let (code, _, stderr) = crate::support::finish(child);
    assert_eq!(code, 0, "{stderr}");
    let note = format!(
        "{leaving}:{} left green's target group during the gate (draining: its Auto Scaling group or a person took it out); dropped from the gate, it gets no traffic",
        fx.stack.spec.green_port
    );
    assert!(stderr.contains(&note), "{stderr}");
    fx.assert_weights(0, 100).await;
    assert_eq!(
        crate::sync::state_in(&fx, &fx.stack.green_target_group_arn, &leaving).await,
        "draining"
    );
    for id in &members[..3] {
        assert_eq!(
            crate::sync::state_in(&fx, &fx.stack.green_target_group_arn, id).await,
            "healthy",
            "{id}"
        );
    }
}

/// A target someone took out of the idle colour's group by hand (or a group did, between the
/// discovery and the registration) is not put back: it drains, and the deploy goes on without it.
#[tokio::test(flavor = "multi_thread")]
async fn a_target_someone_else_took_out_is_not_registered_again() {
    let fx = Fixture::new().await;
    let green = &fx.stack.green_target_group_arn;
    let out_by_hand = fx.stack.instance_ids[1].clone();
    fx.set_deregistration_delay(green, 300).await;
    fx.aws
        .elb
        .deregister_targets()
        .target_group_arn(green)
        .targets(
            aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                .id(&out_by_hand)
                .port(i32::from(fx.stack.spec.green_port))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    fx.assert_weights(0, 100).await;
    assert_eq!(
        crate::sync::state_in(&fx, green, &out_by_hand).await,
        "draining"
    );
    out.assert_stderr_has(&format!(
        "not registering {out_by_hand} in green's target group again: draining, taken out by its Auto Scaling group or a person"
    ));
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

/// In `log` (one key's requests): whether the first GetCommandInvocation after the first
/// SendCommand arrived within `ssm_invisible` of the send's arrival — then the model must have
/// answered it InvocationDoesNotExist (the invocation is registered while the send is handled,
/// so no earlier than its arrival) — and what it answered. On a loaded machine the first ask
/// can come later, when only the order of what follows can be held.
fn first_ask(log: &[Value]) -> (bool, u64) {
    let send = log
        .iter()
        .position(|r| r["action"] == "SendCommand")
        .expect("a SendCommand");
    let ask = log[send..]
        .iter()
        .find(|r| r["action"] == "GetCommandInvocation")
        .expect("a GetCommandInvocation after it");
    let (t_send, t_ask) = (log[send]["t"].as_f64().unwrap(), ask["t"].as_f64().unwrap());
    let invisible = crate::support::emulator::timing("ssm_invisible").as_secs_f64();
    (
        t_ask - t_send < invisible,
        ask["status"].as_u64().unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invocation_not_there_yet_right_after_the_send_is_asked_for_again() {
    // SSM as modelled: the invocation does not exist for a moment after SendCommand, then is
    // Pending, then InProgress, then shows its result (the SDKs' CommandExecuted waiter retries
    // on InvocationDoesNotExist for this reason).
    let fx = Fixture::new().await;
    let instance = &fx.stack.instance_ids[0];
    let command_id = &fx.send_script(instance, vec!["true".to_string()]).await;
    let phases = invocation_phases(&fx, command_id, instance).await;
    let order = ["InvocationDoesNotExist", "Pending", "InProgress", "Success"];
    let mut rest = order.iter();
    assert!(
        phases.iter().all(|p| rest.any(|o| o == p)) && phases.last().unwrap() == "Success",
        "the phases in the model's order, ending in Success: {phases:?}"
    );
    let ours = crate::support::request_log(&fx.own_key());
    let (in_time, status) = first_ask(&ours);
    if in_time {
        assert_eq!(
            (phases[0].as_str(), status),
            ("InvocationDoesNotExist", 400),
            "asked within the window: {phases:?}"
        );
    }

    // bgcloud asks right after its send, is told the invocation does not exist, and asks again
    // until the launch succeeded on every instance.
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    fx.assert_weights(0, 100).await;
    let log = crate::support::request_log(&fx.access_key);
    let (in_time, status) = first_ask(&log);
    if in_time {
        assert_eq!(
            status, 400,
            "asked at once and told it does not exist yet\n{}",
            out.stderr
        );
    }
    let launch = log
        .iter()
        .position(|r| r["action"] == "SendCommand")
        .expect("a launch");
    let reads: Vec<u64> = log[launch..]
        .iter()
        .filter(|r| r["action"] == "GetCommandInvocation")
        .map(|r| r["status"].as_u64().unwrap_or(0))
        .collect();
    assert!(reads.contains(&200), "{reads:?}");
}
