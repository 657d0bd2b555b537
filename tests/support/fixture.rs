//! One test's world: its own stack in the emulator (`Fixture`, or `Bare` for a config alone),
//! its own access key and config file, with the reads and controls tests assert through.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bgcloud::aws::Clients;
use bgcloud::model::weights::Weights;
use serde_json::Value;

use super::emulator::{clients, control, is_read, requests};
use super::run::{Outcome, Run};
use super::stack::{self, Stack, StackSpec};
use super::w;

fn unique_name() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One test's world: its own stack, its own access key, its own config file.
pub struct Fixture {
    pub stack: Stack,
    pub aws: Clients,
    pub access_key: String,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Fixture {
    pub async fn new() -> Fixture {
        Self::with(|_| {}).await
    }

    pub async fn with(customize: impl FnOnce(&mut StackSpec)) -> Fixture {
        let name = unique_name();
        let mut spec = StackSpec::new(&name);
        customize(&mut spec);
        // bgcloud signs with its own key, the test's own SDK calls with another: the emulator's
        // request log for `access_key` is then exactly what bgcloud did.
        let access_key = format!("AKID{}", name.to_uppercase());
        let aws = clients(&own_key(&name)).await;
        let stack = Stack::create(&aws, spec)
            .await
            .expect("create the test stack");
        // Both colours have been serving for a while: their targets have a verdict already.
        for arn in [&stack.blue_target_group_arn, &stack.green_target_group_arn] {
            control("settle", serde_json::json!({ "target_group_arn": arn }));
        }
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bgcloud.toml");
        std::fs::write(&config, stack.config_toml("")).unwrap();
        Fixture {
            stack,
            aws,
            access_key,
            dir,
            config,
        }
    }

    /// The access key the test's own SDK calls sign with (not bgcloud's).
    pub fn own_key(&self) -> String {
        own_key(&self.stack.spec.name)
    }

    /// Rewrites the config file.
    /// A stack whose repository holds these image tags (each its own digest).
    pub async fn with_tags(tags: &[&str]) -> Fixture {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        Fixture::with(|s| s.image_tags = tags).await
    }

    /// A stack with images `v1` and `v2` (distinct digests) and the default config.
    pub async fn v1_v2() -> Fixture {
        let fx = Fixture::with_tags(&["v1", "v2"]).await;
        assert_ne!(
            fx.stack.images["v1"], fx.stack.images["v2"],
            "tags need distinct digests"
        );
        fx
    }

    /// [`Fixture::v1_v2`] with `extra_backend` lines added to the config's `[backend]`.
    pub async fn v1_v2_with(extra_backend: &str) -> Fixture {
        let fx = Fixture::v1_v2().await;
        fx.write_config(&fx.stack.config_toml(extra_backend));
        fx
    }

    /// The listener's weights, read from the ALB, are `blue`/`green`.
    #[track_caller]
    pub fn assert_weights(
        &self,
        blue: u8,
        green: u8,
    ) -> impl std::future::Future<Output = ()> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            let now = self.weights().await;
            assert_eq!(
                now,
                w(blue, green),
                "the listener's weights (read from the ALB), checked at {caller}"
            );
        }
    }

    /// Nothing but the deployment lock was written (no record, no listener, no SSM command).
    #[track_caller]
    pub fn assert_no_writes_but_lock(&self) {
        self.assert_no_writes_but_lock_since(0);
    }

    /// [`Fixture::assert_no_writes_but_lock`] for the requests after the first `mark` (from
    /// [`Fixture::mark`]): what one command did, after others set the scene.
    #[track_caller]
    pub fn assert_no_writes_but_lock_since(&self, mark: usize) {
        let since: Vec<(String, String)> = self
            .requests()
            .into_iter()
            .skip(mark)
            .filter(is_write_but_lock)
            .collect();
        assert_eq!(since, Vec::<(String, String)>::new());
    }

    /// How many requests the test's access key has made so far.
    pub fn mark(&self) -> usize {
        self.requests().len()
    }

    /// Every object under `prefix` in `bucket` (all pages), with its size, read with the
    /// test's own client.
    pub async fn objects(&self, bucket: &str, prefix: &str) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        let mut pages = self
            .s3()
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for o in page.unwrap().contents() {
                out.push((o.key().unwrap().to_string(), o.size().unwrap_or(-1)));
            }
        }
        out
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config, text).unwrap();
    }

    /// The real binary, with this fixture's config and credentials.
    pub fn bgcloud(&self, args: &[&str]) -> Run {
        Run::new(&self.access_key, &self.config, args)
    }

    /// The requests bgcloud made in this test, as (service, action).
    pub fn requests(&self) -> Vec<(String, String)> {
        requests(&self.access_key)
    }

    /// Waits (up to 30 s) until bgcloud has made a request whose action `matches`: how a test
    /// knows a spawned run has reached a step, without racing it with sleeps.
    pub fn wait_for_request(&self, what: &str, matches: impl Fn(&str) -> bool) {
        self.wait_until(what, |log| log.iter().any(|(_, a)| matches(a)));
    }

    /// Waits (up to 30 s) until `done` holds for bgcloud's request log (read once per check).
    pub fn wait_until(&self, what: &str, done: impl Fn(&[(String, String)]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.requests();
            if done(&log) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "bgcloud never got to {what}; its requests: {log:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Makes the emulator answer DescribeTargetHealth for one target with `states` (as
    /// [`Fixture::set_target_states`] does for all of a group's targets).
    pub fn set_target_state(&self, target_group_arn: &str, target_id: &str, states: Value) {
        control(
            "target-health",
            serde_json::json!({"target_group_arn": target_group_arn, "target_id": target_id, "states": states}),
        );
    }

    /// Whether the lock object exists in the state bucket, read with the test's own client.
    pub async fn lock_exists(&self) -> bool {
        self.s3()
            .head_object()
            .bucket(&self.stack.state_bucket)
            .key(format!("bgcloud/{}/lock.json", self.stack.spec.name))
            .send()
            .await
            .is_ok()
    }

    /// Deletes the lock, as its holder letting go would.
    pub async fn delete_lock(&self) {
        self.s3()
            .delete_object()
            .bucket(&self.stack.state_bucket)
            .key(format!("bgcloud/{}/lock.json", self.stack.spec.name))
            .send()
            .await
            .unwrap();
    }

    /// Puts a lock as another run would hold it.
    pub async fn put_lock(&self, owner: &str, reason: &str, expires_at: &str) {
        let body = serde_json::json!({
            "owner": owner, "reason": reason, "started_at": "2026-01-01T00:00:00Z",
            "expires_at": expires_at, "token": "someone-else",
        });
        self.s3()
            .put_object()
            .bucket(&self.stack.state_bucket)
            .key(format!("bgcloud/{}/lock.json", self.stack.spec.name))
            .body(body.to_string().into_bytes().into())
            .send()
            .await
            .unwrap();
    }

    /// The listener's rules, its default rule included, as DescribeRules returns them.
    pub async fn listener_rules(&self) -> Vec<aws_sdk_elasticloadbalancingv2::types::Rule> {
        let out = self
            .aws
            .elb
            .describe_rules()
            .listener_arn(&self.stack.listener_arn)
            .send()
            .await
            .unwrap();
        out.rules().to_vec()
    }

    /// Replaces the listener's default actions, as someone outside bgcloud would.
    pub async fn set_actions(&self, actions: Vec<aws_sdk_elasticloadbalancingv2::types::Action>) {
        self.aws
            .elb
            .modify_listener()
            .listener_arn(&self.stack.listener_arn)
            .set_default_actions(Some(actions))
            .send()
            .await
            .unwrap();
    }

    /// Injects a fault for this fixture's bgcloud (see `faults` in localstack/emulator.py).
    pub fn fault(&self, fault: Value) {
        let mut fault = fault;
        fault["access_key"] = Value::String(self.access_key.clone());
        control("faults", fault);
    }

    /// Drops this fixture's faults (and only this fixture's).
    pub fn clear_faults(&self) {
        control(
            "faults",
            serde_json::json!({"access_key": self.access_key, "clear": true}),
        );
    }

    /// The S3 action the emulator logs for a write of the deployment record.
    pub fn record_put(&self) -> String {
        format!(
            "PUT /{}/bgcloud/{}/record.json",
            self.stack.state_bucket, self.stack.spec.name
        )
    }

    /// How many requests bgcloud made whose action starts with `prefix`.
    pub fn count_prefix(&self, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|(_, a)| a.starts_with(prefix))
            .count()
    }

    /// How many requests bgcloud made for `action`.
    pub fn count(&self, action: &str) -> usize {
        self.requests().iter().filter(|(_, a)| a == action).count()
    }

    /// Runs `args` with `--dry-run` (any exit code) and asserts that it made no write request,
    /// the lock's included.
    #[track_caller]
    pub fn dry_run(&self, args: &[&str]) -> Outcome {
        let mark = self.mark();
        let out = self.bgcloud(&[args, &["--dry-run"]].concat()).run();
        let writes: Vec<_> = self
            .requests()
            .into_iter()
            .skip(mark)
            .filter(|(_, a)| !is_read(a))
            .collect();
        assert!(writes.is_empty(), "{args:?} --dry-run wrote: {writes:?}");
        out
    }

    /// The write requests bgcloud made, other than taking and releasing the lock.
    pub fn writes_but_lock(&self) -> Vec<(String, String)> {
        self.requests()
            .into_iter()
            .filter(is_write_but_lock)
            .collect()
    }

    /// The listener's weights, read independently of bgcloud.
    pub async fn weights(&self) -> Weights {
        let out = self
            .aws
            .elb
            .describe_listeners()
            .listener_arns(&self.stack.listener_arn)
            .send()
            .await
            .unwrap();
        let actions = out.listeners()[0].default_actions();
        let mut blue = 0;
        let mut green = 0;
        for action in actions {
            let tuples = action
                .forward_config()
                .map(|f| f.target_groups())
                .unwrap_or_default();
            for t in tuples {
                let w = t.weight().unwrap_or(1) as u32;
                match t.target_group_arn() {
                    Some(a) if a == self.stack.blue_target_group_arn => blue += w,
                    Some(a) if a == self.stack.green_target_group_arn => green += w,
                    other => panic!("unexpected target group {other:?}"),
                }
            }
            if tuples.is_empty() {
                match action.target_group_arn() {
                    Some(a) if a == self.stack.blue_target_group_arn => blue += 1,
                    Some(a) if a == self.stack.green_target_group_arn => green += 1,
                    other => panic!("unexpected target group {other:?}"),
                }
            }
        }
        Weights::from_raw(blue, green).expect("some weight")
    }

    /// Sets the listener's weights directly, as someone outside bgcloud would.
    pub async fn set_weights(&self, blue: i32, green: i32) {
        self.aws
            .elb
            .modify_listener()
            .listener_arn(&self.stack.listener_arn)
            .default_actions(stack::forward(&[
                (&self.stack.blue_target_group_arn, blue),
                (&self.stack.green_target_group_arn, green),
            ]))
            .send()
            .await
            .unwrap();
    }

    /// Makes the emulator report `state` for every target of a target group.
    pub fn set_target_health(&self, target_group_arn: &str, state: &str, reason: &str) {
        let description = format!("test: {state}");
        self.set_target_states(
            target_group_arn,
            serde_json::json!([{"state": state, "reason": reason, "description": description}]),
        );
    }

    /// Makes the emulator answer DescribeTargetHealth for every target of a target group with
    /// `states` in turn (each `times` polls, default 1); the last one sticks.
    pub fn set_target_states(&self, target_group_arn: &str, states: Value) {
        for id in &self.stack.instance_ids {
            control(
                "target-health",
                serde_json::json!({"target_group_arn": target_group_arn, "target_id": id, "states": states}),
            );
        }
    }

    /// Containers started from image `tag` behave so on the emulator's instances (see
    /// localstack/model_alb.py: {"status": 500}, {"down": true}, {"then": {"after": s, …}}).
    pub fn image_behaviour(&self, tag: &str, behaviour: Value) {
        control(
            "image-behaviour",
            serde_json::json!({"digest": self.stack.images[tag], "behaviour": behaviour}),
        );
    }

    /// What answers on `port` of every instance from now on, as if its container changed.
    pub fn containers(&self, port: u16, behaviour: Value) {
        for id in &self.stack.instance_ids {
            control(
                "container",
                serde_json::json!({"instance_id": id, "port": port, "behaviour": behaviour}),
            );
        }
    }

    /// (instance id, port, state, reason) of a target group's targets, read with the test's
    /// own client.
    pub async fn target_states(
        &self,
        target_group_arn: &str,
    ) -> Vec<(String, i32, String, String)> {
        let out = self
            .aws
            .elb
            .describe_target_health()
            .target_group_arn(target_group_arn)
            .send()
            .await
            .unwrap();
        let mut states: Vec<_> = out
            .target_health_descriptions()
            .iter()
            .map(|d| {
                let t = d.target().unwrap();
                let h = d.target_health().unwrap();
                (
                    t.id().unwrap().to_string(),
                    t.port().unwrap_or_default(),
                    h.state()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    h.reason()
                        .map(|r| r.as_str().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect();
        states.sort();
        states
    }

    /// Waits (up to 30 s) until every target of the group reads `state`.
    /// The group's targets once the load balancer's nodes agree on them: the emulator answers
    /// DescribeTargetHealth from one node's view after another (localstack/timing.py
    /// `alb_nodes`), so right after a change two reads may differ for an interval or so.
    pub async fn settled_states(
        &self,
        target_group_arn: &str,
    ) -> Vec<(String, i32, String, String)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let first = self.target_states(target_group_arn).await;
            let second = self.target_states(target_group_arn).await;
            if first == second || Instant::now() >= deadline {
                return second;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_for_targets(&self, target_group_arn: &str, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let states = self.target_states(target_group_arn).await;
            if !states.is_empty() && states.iter().all(|s| s.2 == state) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "targets never read {state}: {states:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Writes version `version` of the sample site (see `stack::sample_site`); its folder.
    pub fn site(&self, version: &str) -> String {
        let dir = self.dir.path().join(format!("dist-{version}"));
        stack::sample_site(&dir, version);
        dir.to_string_lossy().into_owned()
    }

    /// Releases the sample site's `version` as `id`, not waiting for the invalidation; the
    /// JSON result.
    pub fn release(&self, version: &str, id: &str) -> Value {
        let site = self.site(version);
        self.bgcloud(&["frontend", "deploy", &site, "--release-id", id, "--no-wait"])
            .json()
    }

    /// Releases the sample site's version 1 as r1, then version 2 (a new app bundle and
    /// index.html) as r2: r2's JSON result, and where its requests begin in the request log.
    pub fn release_v1_then_v2(&self) -> (Value, usize) {
        self.bgcloud(&["frontend", "deploy", &self.site("1"), "--release-id", "r1"])
            .ok();
        let before = self.requests().len();
        let out = self
            .bgcloud(&["frontend", "deploy", &self.site("2"), "--release-id", "r2"])
            .json();
        (out, before)
    }

    /// An S3 client for the stack's buckets (signing for their region).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        stack::s3_in(&self.aws, &self.stack.spec.bucket_region)
    }

    /// The deployment record as stored, or Null.
    pub async fn record(&self) -> Value {
        match self.state_object("record.json").await {
            Some((body, _)) => serde_json::from_slice(&body).unwrap(),
            None => Value::Null,
        }
    }

    /// The launch command stays `InProgress` on the first instance: a deploy waits in the SSM
    /// wait until it is stopped.
    pub fn hold_launch(&self) {
        control(
            "ssm-invocation",
            serde_json::json!({"instance_id": self.stack.instance_ids[0], "status": "InProgress"}),
        );
    }

    /// A SecureString parameter `name` holding `value` (a secret for `[backend] secrets`).
    pub async fn put_secret(&self, name: &str, value: &str) {
        self.aws
            .ssm
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    }

    /// Sends `lines` to `instance` through SSM with the test's own client (as a person or
    /// another tool would, not bgcloud); the command's id.
    pub async fn send_script(&self, instance: &str, lines: Vec<String>) -> String {
        let sent = self
            .aws
            .ssm
            .send_command()
            .document_name("AWS-RunShellScript")
            .instance_ids(instance)
            .parameters("commands", lines)
            .send()
            .await
            .unwrap();
        sent.command().unwrap().command_id().unwrap().to_string()
    }

    /// A new running instance, tagged as the app's (`bgcloud:app`) or not; its id.
    pub async fn run_instance(&self, of_the_app: bool) -> String {
        let mut run = self
            .aws
            .ec2
            .run_instances()
            .image_id("ami-12c6146b")
            .min_count(1)
            .max_count(1);
        if of_the_app {
            run = run.tag_specifications(
                aws_sdk_ec2::types::TagSpecification::builder()
                    .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                    .tags(
                        aws_sdk_ec2::types::Tag::builder()
                            .key("bgcloud:app")
                            .value(&self.stack.spec.name)
                            .build(),
                    )
                    .build(),
            );
        }
        run.send().await.unwrap().instances()[0]
            .instance_id()
            .unwrap()
            .to_string()
    }

    /// Sets a target group's deregistration delay.
    pub async fn set_deregistration_delay(&self, target_group_arn: &str, seconds: u64) {
        self.aws
            .elb
            .modify_target_group_attributes()
            .target_group_arn(target_group_arn)
            .attributes(
                aws_sdk_elasticloadbalancingv2::types::TargetGroupAttribute::builder()
                    .key("deregistration_delay.timeout_seconds")
                    .value(seconds.to_string())
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    /// `bgcloud/<app>/<name>` in the state bucket: its body and ETag, or None.
    pub async fn state_object(&self, name: &str) -> Option<(Vec<u8>, String)> {
        let key = format!("bgcloud/{}/{name}", self.stack.spec.name);
        let out = self
            .s3()
            .get_object()
            .bucket(&self.stack.state_bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        let etag = out.e_tag().unwrap_or_default().to_string();
        Some((
            out.body.collect().await.unwrap().into_bytes().to_vec(),
            etag,
        ))
    }
}

/// A config file and an access key, no stack: for tests that must fail before any AWS call.
pub struct Bare {
    pub access_key: String,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Bare {
    pub fn new(config_text: &str) -> Bare {
        let name = unique_name();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bgcloud.toml");
        std::fs::write(&config, config_text).unwrap();
        Bare {
            access_key: format!("AKIDBARE{}", name.to_uppercase()),
            dir,
            config,
        }
    }

    pub fn bgcloud(&self, args: &[&str]) -> Run {
        Run::new(&self.access_key, &self.config, args)
    }

    pub fn requests(&self) -> Vec<(String, String)> {
        requests(&self.access_key)
    }
}

/// A request (access key, action) that writes something other than the deployment lock.
fn is_write_but_lock((_, action): &(String, String)) -> bool {
    !is_read(action) && !action.ends_with("/lock.json")
}

/// The key a test's own SDK calls sign with, for the stack named `name`.
fn own_key(name: &str) -> String {
    format!("AKIDSETUP{}", name.to_uppercase())
}
