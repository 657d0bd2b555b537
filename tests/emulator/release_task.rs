//! The release task (migrations): run once, on one instance, with the new image by digest and
//! the same env and secrets, before the new colour's containers start; a failure launches
//! nothing and leaves traffic as it was.

use crate::support::Fixture;
use bgcloud::model::weights::Weights;
use serde_json::json;

/// The scripts bgcloud sent through SSM, oldest first, with the instances each went to.
async fn sent(fx: &Fixture) -> Vec<(String, Vec<String>)> {
    let out = fx.aws.ssm.list_commands().send().await.unwrap();
    let mut commands: Vec<_> = out
        .commands()
        .iter()
        .filter(|c| {
            c.comment()
                .is_some_and(|t| t.split([' ', ':']).any(|word| word == fx.stack.spec.name))
        })
        .cloned()
        .collect();
    commands.sort_by_key(|c| c.requested_date_time().map(|t| t.as_nanos()));
    commands
        .iter()
        .map(|c| {
            (
                c.parameters().unwrap()["commands"].join("\n"),
                c.instance_ids().to_vec(),
            )
        })
        .collect()
}

/// v1 deployed (green live): the weights and record before the deploy under test, and the
/// instance a release task runs on (the first by id).
async fn green_live(fx: &Fixture) -> (Weights, serde_json::Value, String) {
    fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    let first = fx.stack.instance_ids.iter().min().unwrap().clone();
    (fx.weights().await, fx.record().await, first)
}

/// After a release task that did not succeed: SSM got the first deploy's launch and the task
/// (`task` in its script), nothing more; traffic, record and lock as they were.
async fn nothing_launched(fx: &Fixture, task: &str, before: &Weights, record: &serde_json::Value) {
    let commands = sent(fx).await;
    assert_eq!(
        commands.len(),
        2,
        "the first deploy's launch and the task, nothing more"
    );
    assert!(commands[1].0.contains(task), "{}", commands[1].0);
    assert_eq!(&fx.weights().await, before);
    assert_eq!(&fx.record().await, record, "record untouched");
    assert!(!fx.lock_exists().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_task_runs_once_with_the_new_digest_before_any_container_starts() {
    let parameter = "/release/prod/DATABASE_URL";
    let fx = Fixture::v1_v2_with(&format!(
        "secrets = {{ DATABASE_URL = \"{parameter}\" }}\nrelease_task = [\"npm\", \"run\", \"migrate\", \"--to=latest; rm -rf /\"]"
    ))
    .await;
    fx.put_secret(parameter, "postgres://app:hunter2-s3cr3t@db/prod")
        .await;
    let first = fx.stack.instance_ids.iter().min().unwrap().clone(); // sorted first
    crate::support::control(
        "ssm-invocation",
        json!({"instance_id": first, "status": "Success", "stdout": "migrated 3 tables\n"}),
    );

    let plan = fx.bgcloud(&["deploy", "--image", "v2", "--dry-run"]).ok();
    assert!(
        plan.stdout.contains(&format!(
            "release   `npm run migrate '--to=latest; rm -rf /'` once on {first}, before green's containers start (at most 15m):"
        )),
        "{}",
        plan.stdout
    );
    assert!(sent(&fx).await.is_empty(), "a dry run sends nothing");

    let out = fx.bgcloud(&["deploy", "--image", "v2"]);
    let out = out.ok();
    assert!(
        out.stderr.contains("release task | migrated 3 tables"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("release task: `npm run migrate"),
        "{}",
        out.stdout
    );
    let commands = sent(&fx).await;
    assert_eq!(commands.len(), 2, "the task, then the launch");
    let (task, to) = &commands[0];
    assert_eq!(to, &vec![first.clone()], "once, on one instance");
    let digest = &fx.stack.images["v2"];
    assert!(task.contains("docker run --rm"), "{task}");
    assert!(task.contains(&format!("@{digest}")), "by digest: {task}");
    assert!(
        task.contains("npm run migrate '--to=latest; rm -rf /'"),
        "each argument one quoted word: {task}"
    );
    assert!(task.contains("-e NODE_ENV=production") && task.contains("-e DATABASE_URL"));
    assert!(
        !task.contains("hunter2"),
        "a secret value in the command: {task}"
    );
    assert!(commands[1].0.contains("docker run -d"), "then the launch");
    assert_eq!(commands[1].1.len(), 2, "on every instance");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_task_launches_nothing_and_leaves_traffic_alone() {
    let fx = Fixture::v1_v2_with("").await;
    let (before, record, first) = green_live(&fx).await;
    crate::support::control(
        "ssm-invocation",
        json!({"instance_id": first, "status": "Failed", "response_code": 3,
               "stdout": "Error: relation \"users\" already exists\n",
               "stderr": "bgcloud: the release task ./migrate exited 3\n"}),
    );
    let out = fx
        .bgcloud(&[
            "deploy",
            "--image",
            "v2",
            "--release-task",
            "./migrate --step 'add users'",
        ])
        .code(1);
    assert!(
        out.stderr
            .contains("the release task failed on 1 of 1 instances")
            && out.stderr.contains("relation \"users\" already exists")
            && out.stderr.contains("Nothing was launched"),
        "{}",
        out.stderr
    );
    nothing_launched(&fx, "./migrate --step 'add users'", &before, &record).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_task_past_its_timeout_is_cancelled_and_launches_nothing() {
    let fx = Fixture::v1_v2_with("").await;
    let (before, record, first) = green_live(&fx).await;
    let cancels = fx.count("CancelCommand");
    // The task never finishes on the instance it runs on.
    crate::support::control(
        "ssm-invocation",
        json!({"instance_id": first, "status": "InProgress"}),
    );
    let out = fx
        .bgcloud(&[
            "deploy",
            "--image",
            "v2",
            "--release-task",
            "./migrate",
            "--release-task-timeout",
            "30s", // SSM's shortest execution timeout
        ])
        .code(1);
    assert!(
        out.stderr
            .contains("raise --release-task-timeout if it needs longer")
            && out.stderr.contains("Nothing was launched"),
        "{}",
        out.stderr
    );
    assert_eq!(
        fx.count("CancelCommand"),
        cancels + 1,
        "the task is cancelled"
    );
    nothing_launched(&fx, "./migrate", &before, &record).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_task_that_is_not_shell_words_is_refused_before_any_request() {
    let fx = Fixture::v1_v2_with("").await;
    let out = fx
        .bgcloud(&[
            "deploy",
            "--image",
            "v1",
            "--release-task",
            "migrate 'unclosed",
        ])
        .code(2);
    assert!(
        out.stderr.contains("not valid shell words"),
        "{}",
        out.stderr
    );
    assert!(fx.requests().is_empty());
    fx.write_config(&fx.stack.config_toml("release_task = []"));
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(2);
    assert!(
        out.stderr.contains("[backend].release_task is empty"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_during_the_release_task_launches_nothing() {
    let fx = Fixture::v1_v2_with("").await;
    let (before, record, first) = green_live(&fx).await;
    // The task is still running on its instance when bgcloud is killed.
    crate::support::control(
        "ssm-invocation",
        json!({"instance_id": first, "status": "InProgress"}),
    );
    let from = fx.requests().len();
    crate::crash::crash_once(
        &fx,
        &["deploy", "--image", "v2", "--release-task", "./migrate"],
        None,
        |log| crate::crash::after(log, "SendCommand", "GetCommandInvocation"),
    );
    let commands = sent(&fx).await;
    assert_eq!(
        commands.len(),
        2,
        "the first deploy's launch and the task, nothing more"
    );
    assert!(commands[1].0.contains("./migrate"), "{}", commands[1].0);
    assert_eq!(fx.weights().await, before);
    assert_eq!(fx.record().await, record, "record untouched");
    assert!(
        fx.lock_exists().await,
        "a killed run cannot release its lock"
    );
    assert!(fx.requests()[from..]
        .iter()
        .all(|(_, a)| a != "RegisterTargets"));
    // Once the task is over and the lock released, the deploy goes through.
    crate::support::control(
        "ssm-invocation",
        json!({"instance_id": first, "status": null}),
    );
    fx.bgcloud(&["lock", "release", "--force"]).ok();
    fx.bgcloud(&["deploy", "--image", "v2", "--release-task", "./migrate"])
        .ok();
    assert_ne!(fx.weights().await, before);
}
