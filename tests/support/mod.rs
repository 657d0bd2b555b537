//! Test support: the local emulator (started once per test binary, gone when the binary exits),
//! a per-test stack with its own access key, and a small fluent helper that runs the real
//! `bgcloud` binary.

#![allow(dead_code)]

pub mod lane;
pub mod stack;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::Credentials;
use bgcloud::aws::{AwsOptions, Clients};
use bgcloud::model::weights::Weights;
use serde_json::Value;

pub use stack::{Stack, StackSpec};

/// The emulator's base URL. `BGCLOUD_TEST_ENDPOINT` points at one that is already running;
/// otherwise this starts `localstack/emulator.py` from the project venv on a free port.
pub fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        if let Ok(url) = std::env::var("BGCLOUD_TEST_ENDPOINT") {
            return url;
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let python = root.join("localstack/.venv/bin/python");
        assert!(
            python.exists(),
            "the local emulator is not installed: run `localstack/setup.sh` (or `scripts/test`, which does it)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port_file = dir.path().join("port");
        let log = std::fs::File::create(std::env::temp_dir().join(format!(
            "bgcloud-emulator-{}.log",
            std::process::id()
        )))
        .expect("emulator log");
        // Not waited on: the emulator watches this process (--parent-pid) and exits with it.
        let child = Command::new(python)
            .arg(root.join("localstack/emulator.py"))
            .args(["--port", "0", "--parent-pid", &std::process::id().to_string()])
            .arg("--port-file")
            .arg(&port_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the emulator");
        std::mem::forget(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p;
            }
            assert!(Instant::now() < deadline, "the emulator did not start within 60 s");
            std::thread::sleep(Duration::from_millis(50));
        };
        let url = format!("http://127.0.0.1:{}", port.trim());
        let (status, _) = http(&url, "GET", "/_bgcloud/health", "");
        assert_eq!(status, 200, "emulator health check");
        url
    })
}

/// A minimal HTTP/1.1 client for the emulator's control endpoints (std only).
pub fn http(base: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect to the emulator");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn unique_name() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A traffic split, blue first: `w(100, 0)`.
pub fn w(blue: u8, green: u8) -> Weights {
    Weights { blue, green }
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
        let aws = clients(&format!("AKIDSETUP{}", name.to_uppercase())).await;
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

    /// Rewrites the config file.
    /// A stack with images `v1` and `v2` (distinct digests) and the default config.
    pub async fn v1_v2() -> Fixture {
        let fx = Fixture::with(|s| s.image_tags = vec!["v1".into(), "v2".into()]).await;
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
    pub fn assert_weights(&self, blue: u8, green: u8) -> impl std::future::Future<Output = ()> + '_ {
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
        assert_eq!(self.writes_but_lock(), Vec::<(String, String)>::new());
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

    /// The write requests bgcloud made, other than taking and releasing the lock.
    pub fn writes_but_lock(&self) -> Vec<(String, String)> {
        self.requests()
            .into_iter()
            .filter(|(_, a)| !is_read(a) && !a.ends_with("/lock.json"))
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

/// Sends `signal` (INT, TERM, KILL) to a spawned bgcloud.
pub fn signal(child: &std::process::Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal}");
}

/// Waits for a spawned bgcloud: (exit code, -1 when killed by a signal; stdout; stderr).
pub fn finish(child: std::process::Child) -> (i32, String, String) {
    let out = child.wait_with_output().expect("wait for bgcloud");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Posts a test control to the emulator (`/_bgcloud/<path>`, see localstack/emulator.py).
pub fn control(path: &str, body: Value) {
    let (status, answer) = http(
        endpoint(),
        "POST",
        &format!("/_bgcloud/{path}"),
        &body.to_string(),
    );
    assert_eq!(status, 200, "control {path}: {answer}");
}

/// Posts a test control and returns its JSON answer (asserting 200).
pub fn control_answer(path: &str, body: Value) -> Value {
    let (status, answer) = http(
        endpoint(),
        "POST",
        &format!("/_bgcloud/{path}"),
        &body.to_string(),
    );
    assert_eq!(status, 200, "control {path}: {answer}");
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("control {path}: {e}: {answer}"))
}

/// Whether an emulator-logged action only reads.
pub fn is_read(action: &str) -> bool {
    ["Describe", "Get", "List", "GET ", "HEAD "]
        .iter()
        .any(|p| action.starts_with(p))
}

/// The requests the emulator logged for `access_key`, as (service, action).
pub fn requests(access_key: &str) -> Vec<(String, String)> {
    let (_, body) = http(
        endpoint(),
        "GET",
        &format!("/_bgcloud/requests?access_key={access_key}"),
        "",
    );
    let list: Vec<Value> = serde_json::from_str(&body).expect("request log");
    list.iter()
        .map(|r| {
            (
                r["service"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The emulator's request log for `access_key`: service, action, method, path, t (seconds).
pub fn request_log(access_key: &str) -> Vec<Value> {
    let (_, body) = http(
        endpoint(),
        "GET",
        &format!("/_bgcloud/requests?access_key={access_key}"),
        "",
    );
    serde_json::from_str(&body).expect("request log")
}

/// A local HTTP endpoint standing in for a webhook: records each request's path and body and
/// answers `status`. Its thread lives as long as the test binary.
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl Receiver {
    pub fn start(status: u16) -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Some(request) = read_request(&stream) {
                    log.lock().unwrap().push(request);
                }
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Receiver { base, received }
    }

    /// (path, body) of every request so far, in the order they came.
    pub fn received(&self) -> Vec<(String, String)> {
        self.received.lock().unwrap().clone()
    }

    /// The JSON bodies of the requests to `path`.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| serde_json::from_str(&b).unwrap_or_else(|e| panic!("{e}: {b}")))
            .collect()
    }
}

/// One HTTP/1.1 request's path and body (Content-Length framed).
fn read_request(stream: &TcpStream) -> Option<(String, String)> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, String::from_utf8_lossy(&body).into_owned()))
}

/// A local port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// SDK clients for the emulator, signed with `access_key`.
pub async fn clients(access_key: &str) -> Clients {
    let opts = AwsOptions {
        endpoint_url: Some(endpoint().to_string()),
        ..Default::default()
    };
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(Credentials::new(access_key, "test", None, None, "tests"))
        .load()
        .await;
    Clients::new(&sdk, &opts)
}

/// A command about to run; `.ok()`, `.code(n)` and `.json()` run it and check the outcome.
pub struct Run {
    cmd: Command,
}

#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// stderr says `text` (shown whole when it does not).
    #[track_caller]
    pub fn assert_stderr_has(&self, text: &str) {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}:\n{}",
            self.stderr
        );
    }
}

impl Run {
    /// The real binary, signed with `access_key`, reading `config`, isolated from the user's
    /// AWS profile and CI variables.
    pub fn new(access_key: &str, config: &Path, args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bgcloud"));
        cmd.args(args)
            .current_dir(config.parent().unwrap())
            .env("BGCLOUD_CONFIG", config)
            .env("AWS_ENDPOINT_URL", endpoint())
            .env("AWS_ACCESS_KEY_ID", access_key)
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("USER", "tester")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env_remove("RUST_LOG");
        Run { cmd }
    }

    /// The same run started through `program args…` (e.g. a pseudo-terminal wrapper), which
    /// gets bgcloud's path and command line after its own arguments, and the same environment.
    pub fn wrapped(self, program: &Path, args: &[&str]) -> Run {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .arg(self.cmd.get_program())
            .args(self.cmd.get_args());
        if let Some(dir) = self.cmd.get_current_dir() {
            cmd.current_dir(dir);
        }
        for (key, value) in self.cmd.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        Run { cmd }
    }

    pub fn env(mut self, key: &str, value: &str) -> Run {
        self.cmd.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Run {
        self.cmd.env_remove(key);
        self
    }

    pub fn run(mut self) -> Outcome {
        let out = self.cmd.stdin(Stdio::null()).output().expect("run bgcloud");
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts it without waiting, output captured.
    pub fn spawn(mut self) -> std::process::Child {
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bgcloud")
    }

    /// Runs and asserts exit code 0.
    pub fn ok(self) -> Outcome {
        self.code(0)
    }

    /// Runs and asserts the exit code.
    pub fn code(self, expected: i32) -> Outcome {
        let out = self.run();
        assert_eq!(
            out.code, expected,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            out.stdout, out.stderr
        );
        out
    }

    /// Runs with `--output json`, asserts success, parses stdout.
    pub fn json(mut self) -> Value {
        self.cmd.args(["--output", "json"]);
        let out = self.ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", out.stdout))
    }
}
