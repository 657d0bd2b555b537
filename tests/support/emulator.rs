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
use bgcloud::aws::{AwsOptions, Clients};
use serde_json::Value;

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
