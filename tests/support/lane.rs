//! The real-instance lane from the tests' side (scripts/test-real sets it up): a fixture whose
//! instances are network namespaces running real containers, the local ALB and CloudFront data
//! planes, a steady load generator, and a look inside the instances.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::emulator::control_answer;
use super::Fixture;

/// lane.json, as lane/lane.py wrote it.
pub fn info() -> Value {
    let path = std::env::var("BGCLOUD_LANE")
        .expect("BGCLOUD_LANE is not set: run the real-instance lane with scripts/test-real");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read lane.json"))
        .expect("lane.json")
}

/// The lane's images, built from busybox by lane/lane.py.
pub const IMAGES: [&str; 8] = [
    "v1", "v2", "bad500", "badexit", "badlate", "badpath", "badcrash", "badhang",
];

/// Health checks on the lane: the Terraform module's settings scaled down to AWS's minimum
/// interval (5 s, thresholds 2/2): the health gate waits (2 + 1) × 5 s = 15 s.
pub const HEALTH_CHECK: (i32, i32, i32) = (5, 2, 2);

impl Fixture {
    /// A stack on the lane: its instances are the lane's namespaces, its ECR repository holds
    /// the lane's real images, and its listener has a data plane on 127.0.0.1.
    pub async fn lane() -> (Fixture, LaneStack) {
        Self::lane_on((8081, 8082)).await
    }

    /// [`Fixture::lane`] with its own blue and green host ports: the lane's instances are shared
    /// by the lane's tests, and a test's containers stay until the lane is torn down.
    pub async fn lane_on(ports: (u16, u16)) -> (Fixture, LaneStack) {
        // Two tests on the same ports: the second one's containers cannot bind them (seen when a
        // new test copied a neighbour's pair). Say so before anything starts.
        static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
        {
            let mut taken = TAKEN.lock().unwrap();
            for port in [ports.0, ports.1] {
                assert!(
                    !taken.contains(&port),
                    "host port {port} is already used by another lane test in this run (its \
                     containers stay until the lane is torn down): give this test its own ports"
                );
                taken.push(port);
            }
        }
        let lane = info();
        let n = lane["instances"].as_array().unwrap().len();
        let fx = Fixture::with(|s| {
            s.instances = n;
            s.image_tags = vec![];
            s.health_check = HEALTH_CHECK;
            s.health_check_path = lane["health_path"].as_str().unwrap().to_string();
            s.container_port = lane["container_port"].as_u64().unwrap() as u16;
            (s.blue_port, s.green_port) = ports;
        })
        .await;
        let attached = control_answer(
            "lane/attach",
            json!({"instance_ids": fx.stack.instance_ids}),
        );
        let published = control_answer(
            "lane/publish",
            json!({"repository": fx.stack.repository, "tags": IMAGES}),
        );
        let alb = control_answer(
            "lane/alb",
            json!({"listener_arn": fx.stack.listener_arn, "metrics_period": 5}),
        );
        let cdn = control_answer(
            "lane/cdn",
            json!({"distribution_id": fx.stack.distribution_id}),
        );
        let images = published["digests"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let mut fx = fx;
        fx.stack.images = images;
        fx.write_config(&fx.stack.config_toml("").replace(
            "health_timeout = \"30s\"\npoll_interval = \"100ms\"",
            "health_timeout = \"40s\"\npoll_interval = \"250ms\"",
        ));
        let stack = LaneStack {
            alb_port: alb["port"].as_u64().unwrap() as u16,
            cdn_port: cdn["port"].as_u64().unwrap() as u16,
            ips: attached["ips"].clone(),
            lane,
        };
        (fx, stack)
    }
}

pub struct LaneStack {
    pub alb_port: u16,
    pub cdn_port: u16,
    /// instance id -> the namespace's address.
    pub ips: Value,
    pub lane: Value,
}

impl LaneStack {
    /// The image digest bgcloud's label says `container` on instance `index` runs (empty when
    /// there is no such container).
    pub fn digest_label(&self, index: usize, container: &str) -> String {
        let (_, label) = self.on_instance(
            index,
            &format!(
                "docker inspect -f '{{{{index .Config.Labels \"bgcloud.digest\"}}}}' {container}"
            ),
        );
        label.trim().to_string()
    }

    /// Runs `script` with `sh` in the namespace of the lane's instance `index`, with its
    /// `docker`: (exit code, stdout; stderr after it when the exit code is not 0).
    pub fn on_instance(&self, index: usize, script: &str) -> (i32, String) {
        let inst = &self.lane["instances"][index];
        let mut cmd = std::process::Command::new("nsenter");
        cmd.arg(format!(
            "--net=/run/netns/{}",
            inst["netns"].as_str().unwrap()
        ))
        .args(["sh", "-c", script]);
        let path = format!(
            "{}:/usr/sbin:/usr/bin:/sbin:/bin",
            inst["path_dir"].as_str().unwrap()
        );
        cmd.env("PATH", path);
        for (k, v) in inst["env"].as_object().unwrap() {
            cmd.env(k, v.as_str().unwrap());
        }
        let out = cmd.output().expect("nsenter");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            text.push_str(&String::from_utf8_lossy(&out.stderr));
        }
        (out.status.code().unwrap_or(-1), text)
    }

    /// The ALB data plane's log since `since` (seconds since the epoch).
    pub fn alb_log(&self, fx: &Fixture, since: f64) -> Vec<Value> {
        let log = control_answer(
            "lane/alb-log",
            json!({"listener_arn": fx.stack.listener_arn, "since": since}),
        );
        log.as_array().cloned().unwrap_or_default()
    }

    /// One GET through the ALB data plane: (status, X-App-Version).
    pub fn get(&self, path: &str) -> (u16, Option<String>) {
        let mut conn = Conn::open(self.alb_port).expect("connect to the ALB data plane");
        let r = conn.get(path).expect("GET through the ALB");
        (r.status, r.header("x-app-version"))
    }

    /// Waits (up to 15 s) until five GETs in a row through the ALB data plane are answered 200
    /// by `version`: a listener change reaches the load balancer's nodes a moment after the API
    /// shows it (`elb_propagation`), and until then requests go by the previous weights.
    pub fn wait_serving(&self, path: &str, version: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut in_a_row = 0;
        let mut last = (0, None);
        while in_a_row < 5 {
            assert!(
                Instant::now() < deadline,
                "the ALB data plane never settled on {version}: last answer {last:?}"
            );
            last = self.get(path);
            if last == (200, Some(version.to_string())) {
                in_a_row += 1;
            } else {
                in_a_row = 0;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// One GET through the CloudFront data plane: (status, body).
    pub fn cdn_get(&self, path: &str) -> (u16, Vec<u8>) {
        let mut conn = Conn::open(self.cdn_port).expect("connect to the CDN data plane");
        let r = conn.get(path).expect("GET through the CDN");
        (r.status, r.body)
    }
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

// --- a small keep-alive HTTP/1.1 client ----------------------------------------------------------

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

/// One client on one keep-alive connection; like a browser it keeps the load balancer's
/// stickiness cookie (`AWSALBTG`) and sends it back.
pub struct Conn {
    reader: BufReader<TcpStream>,
    port: u16,
    cookie: Option<String>,
    /// A header line sent with every request (`Name: value\r\n`), or empty.
    header: String,
}

impl Conn {
    pub fn open(port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(stream),
            port,
            cookie: None,
            header: String::new(),
        })
    }

    /// Sends `name: value` with every request, as a tester with a preview header would.
    pub fn with_header(mut self, header: Option<&str>) -> Conn {
        self.header = header.map(|h| format!("{h}\r\n")).unwrap_or_default();
        self
    }

    pub fn get(&mut self, path: &str) -> std::io::Result<Response> {
        let cookie = match &self.cookie {
            Some(c) => format!("Cookie: {c}\r\n"),
            None => String::new(),
        };
        write!(
            self.reader.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: bgcloud-lane-load\r\n{cookie}{}\r\n",
            self.port, self.header
        )?;
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        let set = headers
            .iter()
            .find(|(k, v)| k.eq_ignore_ascii_case("set-cookie") && v.starts_with("AWSALBTG="));
        if let Some((_, v)) = set {
            self.cookie = v.split(';').next().map(str::to_string);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

// --- load -------------------------------------------------------------------------------------

/// One request of the load: when it was sent (s since the epoch), its status (0: connection
/// error), the version that answered, and which of the load's clients (connections) sent it.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the request was sent, and when its answer (or failure) came.
    pub t: f64,
    pub end: f64,
    pub status: u16,
    pub version: Option<String>,
    pub client: usize,
}

/// A steady stream of GETs through the ALB data plane, on keep-alive connections, until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// `rate` requests per second over `connections` connections, to `path` on `port`.
    pub fn start(port: u16, path: &str, rate: f64, connections: usize) -> Load {
        Load::start_with(port, path, rate, connections, None)
    }

    /// [`Load::start`], every request carrying `header` (`Name: value`).
    pub fn start_with(
        port: u16,
        path: &str,
        rate: f64,
        connections: usize,
        header: Option<&str>,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let gap = Duration::from_secs_f64(connections as f64 / rate);
        let workers = (0..connections)
            .map(|i| {
                let (stop, samples, path) = (stop.clone(), samples.clone(), path.to_string());
                let header = header.map(str::to_string);
                std::thread::spawn(move || {
                    // Spread the connections' sends over the gap.
                    std::thread::sleep(gap.mul_f64(i as f64 / connections as f64));
                    let mut conn: Option<Conn> = None;
                    let mut next = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        let t = now();
                        let result = match conn.as_mut() {
                            Some(c) => c.get(&path),
                            None => Conn::open(port).and_then(|c| {
                                let mut c = c.with_header(header.as_deref());
                                let r = c.get(&path);
                                conn = Some(c);
                                r
                            }),
                        };
                        let sample = match result {
                            Ok(r) => Sample {
                                t,
                                end: now(),
                                status: r.status,
                                version: r.header("x-app-version"),
                                client: i,
                            },
                            Err(_) => {
                                conn = None;
                                Sample {
                                    t,
                                    end: now(),
                                    status: 0,
                                    version: None,
                                    client: i,
                                }
                            }
                        };
                        samples.lock().unwrap().push(sample);
                        next += gap;
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        } else {
                            next = now; // behind: do not burst to catch up
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            samples,
            workers,
        }
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    pub fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.join().unwrap();
        }
        let samples = self.samples.lock().unwrap().clone();
        samples
    }
}

/// A target group's name as the lane ALB's log and metrics name it (`<name>/<id>` of its ARN).
pub fn group_name(arn: &str) -> String {
    arn.rsplit('/').nth(1).unwrap_or(arn).to_string()
}

/// The requests the ALB's log shows routed to `group` and answered 300 or more, by a target or
/// by the load balancer itself (an ELB-made 502/503/504 carries no app version, so a client
/// cannot tell whose it was).
pub fn failed_on(log: &[Value], group: &str) -> usize {
    log.iter()
        .filter(|e| e["target_group"].as_str() == Some(group))
        .filter(|e| e["status"].as_u64().unwrap_or(0) >= 300)
        .count()
}
