//! The local emulator: started once per test binary (gone when the binary exits), its control
//! endpoints (faults, target states, request logs), and SDK clients signed for one test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::Credentials;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use bgcloud::aws::{AwsOptions, Clients};
use serde_json::Value;

/// S3 somewhere else (`BGCLOUD_TEST_S3_ENDPOINT`: LocalStack, in scripts/test-localstack):
/// the tests' own S3 client and bgcloud's (`AWS_ENDPOINT_URL_S3`) go there, the rest to the
/// emulator.
pub fn s3_endpoint() -> Option<&'static str> {
    static S3: OnceLock<Option<String>> = OnceLock::new();
    S3.get_or_init(|| {
        std::env::var("BGCLOUD_TEST_S3_ENDPOINT")
            .ok()
            .filter(|v| !v.is_empty())
    })
    .as_deref()
}

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
            // The modelled delays in seconds (localstack/timing.py), not AWS's minutes.
            .args(["--profile", "scaled"])
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

/// The round trips of `log` before its first request for `action`, each as its actions. A
/// request that arrived before any request of the current round trip was answered cannot have
/// waited for one of them: it was sent together with them. One that arrived later starts the
/// next round trip. By cause, not by a time window: on a loaded machine requests sent together
/// can arrive tens of milliseconds apart. (`latency`, the emulator's delay per request, stands
/// in for an answer the log lacks.)
pub fn round_trips_before(log: &[Value], action: &str, latency: f64) -> Vec<Vec<String>> {
    // (the earliest answer of the round trip, its actions)
    let mut trips: Vec<(f64, Vec<String>)> = Vec::new();
    for r in log.iter().take_while(|r| r["action"] != action) {
        let t = r["t"].as_f64().unwrap();
        let answered = r["answered"].as_f64().unwrap_or(t + latency);
        let what = r["action"].as_str().unwrap().to_string();
        match trips.last_mut() {
            Some((first_answer, actions)) if t < *first_answer => {
                *first_answer = first_answer.min(answered);
                actions.push(what)
            }
            _ => trips.push((answered, vec![what])),
        }
    }
    trips.into_iter().map(|(_, a)| a).collect()
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
    let mut clients = Clients::new(&sdk, &opts);
    clients.elb = aws_sdk_elasticloadbalancingv2::Client::from_conf(
        aws_sdk_elasticloadbalancingv2::config::Builder::from(&sdk)
            .interceptor(ElbWritesSettle(timing("elb_describe_lag")))
            .build(),
    );
    if let Some(url) = s3_endpoint() {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .endpoint_url(url)
                .force_path_style(true)
                .build(),
        );
        clients.buckets = bgcloud::aws::s3::Buckets::new(s3.clone());
        clients.s3 = s3;
    }
    clients
}

/// One of the emulator's delays now (localstack/timing.py), in seconds.
pub fn timing(name: &str) -> Duration {
    let (status, body) = http(endpoint(), "GET", "/_bgcloud/timing", "");
    assert_eq!(status, 200, "emulator timing: {body}");
    let timing: Value = serde_json::from_str(&body).expect("timing json");
    Duration::from_secs_f64(timing[name].as_f64().unwrap_or(0.0))
}

/// Some of the emulator's delays at other sizes (localstack/timing.py) until dropped, when the
/// previous sizes come back. For a test that has the emulator to itself (the lanes run one test
/// at a time), e.g. to hold bgcloud to AWS's figures rather than the scaled ones.
pub struct Timing {
    previous: Value,
}

impl Timing {
    pub fn set(values: Value) -> Timing {
        let (status, body) = http(endpoint(), "GET", "/_bgcloud/timing", "");
        assert_eq!(status, 200, "emulator timing: {body}");
        let mut previous: Value = serde_json::from_str(&body).expect("timing json");
        previous
            .as_object_mut()
            .unwrap()
            .retain(|k, _| values.get(k).is_some());
        let (status, body) = http(endpoint(), "POST", "/_bgcloud/timing", &values.to_string());
        assert_eq!(status, 200, "emulator timing {values}: {body}");
        Timing { previous }
    }
}

impl Drop for Timing {
    fn drop(&mut self) {
        let _ = http(
            endpoint(),
            "POST",
            "/_bgcloud/timing",
            &self.previous.to_string(),
        );
    }
}

/// Waits out the emulator's ELB propagation: the lane's data plane now routes by every listener
/// or rule change made before the call.
pub fn after_propagation() {
    std::thread::sleep(timing("elb_propagation") + Duration::from_millis(100));
}

/// Waits out the emulator's Describe* lag: a read now shows every write made before the call.
pub fn after_describe_lag() {
    std::thread::sleep(timing("elb_describe_lag") + Duration::from_millis(50));
}

/// A test that changes a listener or its rules stands for someone doing it by hand, which takes
/// longer than the ELB API's eventual consistency: after each such write of the test's own
/// client, wait out the emulator's Describe* lag, so that bgcloud run next reads the change.
#[derive(Debug)]
struct ElbWritesSettle(Duration);

impl Intercept for ElbWritesSettle {
    fn name(&self) -> &'static str {
        "ElbWritesSettle"
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let write = cfg.load::<Metadata>().is_some_and(|m| {
            matches!(
                m.name(),
                "ModifyListener" | "ModifyRule" | "CreateRule" | "SetRulePriorities" | "DeleteRule"
            )
        });
        if write && context.output_or_error().is_some_and(|r| r.is_ok()) {
            std::thread::sleep(self.0 + Duration::from_millis(50));
        }
        Ok(())
    }
}
