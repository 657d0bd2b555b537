//! The real-instance lane (scripts/test-real): the same bgcloud binary drives real containers in
//! network namespaces through the emulator, and a steady load through the local ALB data plane
//! proves that no request fails through deploy, canary, promote and rollback, and that broken
//! images never get a user request. Ignored by `cargo test`: the lane needs root and is set up
//! by scripts/test-real.

#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use crate::support::lane::{failed_on, group_name, now, Load, Sample};
use crate::support::w;
use crate::support::Fixture;

const LANE: &str = "needs the real-instance lane: run scripts/test-real";

fn sha256_hex(text: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("printf %s \"$V\" | sha256sum")
        .env("V", text)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real-instance lane: run scripts/test-real"]
async fn zero_downtime_through_a_release_and_three_broken_images() {
    let _ = LANE;
    let (fx, lane) = Fixture::lane().await;
    let app_path = lane.lane["app_path"].as_str().unwrap().to_string();

    // A secret in Parameter Store, fetched on the instance by the launch script.
    let parameter = format!("/{}/prod/DATABASE_URL", fx.stack.spec.name);
    let secret = format!("postgres://app:{}@db/prod", fx.stack.spec.name);
    fx.put_secret(&parameter, &secret).await;
    let config = std::fs::read_to_string(&fx.config).unwrap().replace(
        "env = { NODE_ENV = \"production\" }",
        &format!(
            "env = {{ NODE_ENV = \"production\" }}\nsecrets = {{ DATABASE_URL = \"{parameter}\" }}\n\
             release_task = [\"sh\", \"-c\", \"test -n \\\"$DATABASE_URL\\\" && echo schema migrated for $NODE_ENV\"]"
        ),
    );
    fx.write_config(&config);

    // v1 on green, for real, then 100 % of the traffic to it.
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    assert!(!out.stderr.contains(&secret) && !out.stdout.contains(&secret));
    // The release task ran in the new image with the env and the secret, before the launch.
    assert!(
        out.stderr
            .contains("release task | schema migrated for production"),
        "{}",
        out.stderr
    );
    fx.assert_weights(0, 100).await;
    lane.wait_serving(&app_path, "v1");

    // The container really got its env and its secret (compared by hash, never printed).
    let container = format!("{}-green", fx.stack.spec.name);
    for index in 0..fx.stack.instance_ids.len() {
        let (code, env) = lane.on_instance(
            index,
            &format!("docker exec {container} sh -c 'echo \"$NODE_ENV\"'"),
        );
        assert_eq!((code, env.trim()), (0, "production"), "instance {index}");
        let (code, hash) = lane.on_instance(
            index,
            &format!("docker exec {container} sh -c 'printf %s \"$DATABASE_URL\" | sha256sum'"),
        );
        assert_eq!(code, 0);
        assert_eq!(
            &hash[..64],
            sha256_hex(&secret),
            "instance {index}: the secret's value"
        );
    }

    let load = Load::start(lane.alb_port, &app_path, 130.0, 8);
    std::thread::sleep(Duration::from_secs(2));

    // Canary: v2 on blue gets 10 %, held until at least 15 s and 1,500 requests have passed.
    fx.bgcloud(&["deploy", "--image", "v2", "--canary", "10"])
        .ok();
    fx.assert_weights(10, 90).await;
    let canary_from = now();
    std::thread::sleep(Duration::from_secs(15));
    while load.samples().iter().filter(|s| s.t >= canary_from).count() < 1_500 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let canary_to = now();
    fx.bgcloud(&["promote"]).ok();
    fx.assert_weights(100, 0).await;
    std::thread::sleep(Duration::from_secs(2));
    fx.bgcloud(&["rollback"]).ok();
    fx.assert_weights(0, 100).await;
    std::thread::sleep(Duration::from_secs(2));

    // Three broken images: each deploy fails with its reason, traffic untouched. badlate goes
    // first, while blue still runs v2 and reads healthy: it answers 200 for 3 s (the on-instance
    // probe passes), then 500 — only the ALB's checks can catch it, against a stale verdict.
    let badlate = fx.bgcloud(&["deploy", "--image", "badlate"]).code(1);
    assert!(
        badlate.stderr.contains("blue reads unhealthy")
            && badlate
                .stderr
                .contains("when the ALB has judged the new container")
            && badlate.stderr.contains("Target.ResponseCodeMismatch")
            && badlate.stderr.contains("[500]"),
        "the health gate catches what the probe could not: {}",
        badlate.stderr
    );
    fx.assert_weights(0, 100).await;
    let bad500 = fx.bgcloud(&["deploy", "--image", "bad500"]).code(1);
    assert!(
        bad500
            .stderr
            .contains("answered 500, the target group expects 200-399"),
        "{}",
        bad500.stderr
    );
    fx.assert_weights(0, 100).await;
    let badexit = fx.bgcloud(&["deploy", "--image", "badexit"]).code(1);
    assert!(
        badexit.stderr.contains("is not running")
            && badexit.stderr.contains("fatal: DATABASE_URL is not set"),
        "the reason and the container's last log lines: {}",
        badexit.stderr
    );
    fx.assert_weights(0, 100).await;

    // A release task that fails: the deploy stops before any container is replaced.
    let blue = format!("{}-blue", fx.stack.spec.name);
    let failed = fx
        .bgcloud(&[
            "deploy",
            "--image",
            "v2",
            "--release-task",
            "sh -c 'echo cannot migrate: lock timeout >&2; exit 3'",
        ])
        .code(1);
    assert!(
        failed.stderr.contains("cannot migrate: lock timeout")
            && failed.stderr.contains("Nothing was launched"),
        "{}",
        failed.stderr
    );
    assert_eq!(
        lane.digest_label(0, &blue),
        fx.stack.images["badexit"],
        "blue untouched"
    );
    fx.assert_weights(0, 100).await;

    // The failed deploys left blue running badexit everywhere; sync asks the instances what
    // runs (podman's labels), puts the recorded, gated v2 back and waits for the ALB, under load
    // and without touching green's traffic.
    let synced = fx.bgcloud(&["sync"]).json();
    let relaunched = synced["relaunch"].as_array().unwrap();
    assert_eq!(relaunched.len(), fx.stack.instance_ids.len(), "{synced}");
    assert!(relaunched.iter().all(|r| r["color"] == "blue"), "{synced}");
    fx.assert_weights(0, 100).await;
    assert_eq!(lane.digest_label(0, &blue), fx.stack.images["v2"]);
    let again = fx.bgcloud(&["sync", "--dry-run"]).ok();
    assert!(again.stdout.contains("in line"), "{}", again.stdout);
    std::thread::sleep(Duration::from_secs(2));
    let samples = load.stop();

    let failed: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.status == 0 || s.status >= 500)
        .collect();
    let canary: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t >= canary_from && s.t < canary_to)
        .collect();
    let on_v2 = canary
        .iter()
        .filter(|s| s.version.as_deref() == Some("v2"))
        .count();
    let share = 100.0 * on_v2 as f64 / canary.len() as f64;
    let elapsed = samples.last().unwrap().t - samples[0].t;
    println!(
        "zero-downtime: {} requests ({:.0}/s), {} failed, canary share {share:.1} % (10 % set)",
        samples.len(),
        samples.len() as f64 / elapsed,
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "failed requests: {:?}",
        &failed[..failed.len().min(10)]
    );
    assert!(
        canary.len() >= 1_500,
        "{} requests during the canary",
        canary.len()
    );
    assert!((share - 10.0).abs() <= 3.0, "canary share {share:.1} %");

    // The ALB's metrics reach CloudWatch (what metric gates read), published late: green served
    // most of it. Read until they show it (at most 30 s), not after a guessed sleep.
    let until = std::time::Instant::now() + Duration::from_secs(30);
    let green_requests = loop {
        let n = request_count(&fx, &fx.stack.green_target_group_arn);
        if n > 1_000.0 || std::time::Instant::now() > until {
            break n;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(
        green_requests > 1_000.0,
        "RequestCount of green: {green_requests}"
    );

    // The broken images never answered a user request, by the client's count and the ALB's log.
    let answered_by = |v: &str| samples.iter().any(|s| s.version.as_deref() == Some(v));
    let logged = lane.alb_log(&fx, 0.0);
    for bad in ["bad500", "badexit", "badlate"] {
        assert!(!answered_by(bad), "{bad} answered a request");
        assert!(
            !logged.iter().any(|e| e["version"] == bad),
            "{bad} in the ALB's log"
        );
    }
}

/// The sum of the ALB's RequestCount for a target group over the last 10 minutes, read from the
/// emulator's CloudWatch with the AWS CLI (the lane installs it).
fn request_count(fx: &Fixture, target_group_arn: &str) -> f64 {
    let dimension = |arn: &str, marker: &str| arn.split(marker).nth(1).unwrap().to_string();
    let tg = format!(
        "targetgroup/{}",
        dimension(target_group_arn, ":targetgroup/")
    );
    let lb = dimension(&fx.stack.load_balancer_arn, ":loadbalancer/");
    let end = now() as u64 + 60;
    let aws = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("localstack/.venv/bin/aws");
    let out = std::process::Command::new(aws)
        .args([
            "cloudwatch",
            "get-metric-statistics",
            "--namespace",
            "AWS/ApplicationELB",
        ])
        .args([
            "--metric-name",
            "RequestCount",
            "--statistics",
            "Sum",
            "--period",
            "3600",
        ])
        .args([
            "--start-time",
            &(end - 660).to_string(),
            "--end-time",
            &end.to_string(),
        ])
        .arg("--dimensions")
        .arg(format!("Name=TargetGroup,Value={tg}"))
        .arg(format!("Name=LoadBalancer,Value={lb}"))
        .args(["--output", "json"])
        .env("AWS_ENDPOINT_URL", crate::support::endpoint())
        .env("AWS_ACCESS_KEY_ID", "AKIDLANECHECK")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    answer["Datapoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["Sum"].as_f64().unwrap())
        .sum()
}

/// What a browser does: `/`, then every asset the page references.
fn read_page(conn: &mut crate::support::lane::Conn) -> Result<String, String> {
    let page = conn.get("/").map_err(|e| format!("/: {e}"))?;
    if page.status != 200 {
        return Err(format!("/ answered {}", page.status));
    }
    let html = String::from_utf8_lossy(&page.body).into_owned();
    let assets: Vec<&str> = html
        .split(['"', '\'', ' ', '>', '='])
        .filter(|w| w.starts_with("/assets/"))
        .collect();
    if assets.is_empty() {
        return Err(format!("no asset in {html}"));
    }
    for asset in assets {
        let r = conn.get(asset).map_err(|e| format!("{asset}: {e}"))?;
        if r.status != 200 || r.body.is_empty() {
            return Err(format!("{asset} answered {} for {html}", r.status));
        }
    }
    Ok(html)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real-instance lane: run scripts/test-real"]
async fn a_reader_never_sees_a_broken_page_through_five_releases_and_a_rollback() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let (fx, lane) = Fixture::lane_on((8071, 8072)).await;
    // Awkward names go up under their own keys and CloudFront serves them URL-encoded.
    let awkward = ["docs/a file #1?.txt", "docs/100% café ☕.txt"];
    let first = std::path::PathBuf::from(fx.site("1"));
    for name in awkward {
        std::fs::create_dir_all(first.join("docs")).unwrap();
        std::fs::write(first.join(name), name).unwrap();
    }
    fx.bgcloud(&[
        "frontend",
        "deploy",
        first.to_str().unwrap(),
        "--release-id",
        "r1",
    ])
    .ok();
    // When CloudFront says the change has reached every edge (Deployed): the release returns
    // once its invalidation has completed, and says the distribution is still InProgress when
    // the edges have not all switched yet (they serve by the previous configuration until then).
    let deployed = || async {
        let until = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let status = fx
                .aws
                .cloudfront
                .get_distribution()
                .id(&fx.stack.distribution_id)
                .send()
                .await
                .unwrap()
                .distribution()
                .unwrap()
                .status()
                .to_string();
            if status == "Deployed" {
                return now();
            }
            assert!(std::time::Instant::now() < until, "never Deployed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // The first release's origin path reaches the CDN once the distribution is Deployed.
    deployed().await;
    for name in awkward {
        let encoded: String = name
            .split('/')
            .map(|part| {
                part.bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                            (b as char).to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("/");
        let (status, body) = lane.cdn_get(&format!("/{encoded}"));
        assert_eq!(
            (status, String::from_utf8_lossy(&body).into_owned()),
            (200, name.to_string())
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    // (when a page load started, the page or what was broken)
    type Loads = Vec<(f64, Result<String, String>)>;
    let seen: Arc<Mutex<Loads>> = Arc::default();
    let reader = {
        let (stop, seen, port) = (stop.clone(), seen.clone(), lane.cdn_port);
        std::thread::spawn(move || {
            let mut conn = crate::support::lane::Conn::open(port).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let started = now();
                let page = read_page(&mut conn);
                if page.is_err() {
                    conn = crate::support::lane::Conn::open(port).unwrap();
                }
                seen.lock().unwrap().push((started, page));
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // The page of release `v` references its own app bundle.
    let bundle = |v: &str| {
        let html =
            std::fs::read_to_string(std::path::Path::new(&fx.site(v)).join("index.html")).unwrap();
        html.split("/assets/")
            .nth(1)
            .unwrap()
            .split('>')
            .next()
            .unwrap()
            .to_string()
    };
    let mut switched = Vec::new();
    for v in ["2", "3", "4", "5", "6"] {
        let site = fx.site(v);
        let out = fx
            .bgcloud(&[
                "frontend",
                "deploy",
                &site,
                "--release-id",
                &format!("r{v}"),
            ])
            .ok();
        assert!(
            out.stdout.contains(" completed; distribution "),
            "{}",
            out.stdout
        );
        switched.push((deployed().await, bundle(v)));
        std::thread::sleep(Duration::from_secs(1));
    }
    fx.bgcloud(&["frontend", "rollback"]).ok();
    switched.push((deployed().await, bundle("5")));
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();

    let seen = seen.lock().unwrap().clone();
    let broken: Vec<_> = seen.iter().filter(|(_, p)| p.is_err()).collect();
    println!(
        "frontend: {} page loads through 5 releases and a rollback, {} broken",
        seen.len(),
        broken.len()
    );
    assert!(broken.is_empty(), "{:?}", &broken[..broken.len().min(5)]);
    assert!(seen.len() >= 30, "{} page loads", seen.len());
    // Once the change has reached the edges (Deployed), the next page load is the new release.
    for (at, bundle) in switched {
        let next = seen
            .iter()
            .find(|(t, _)| *t > at)
            .map(|(_, p)| p.clone().unwrap())
            .expect("a page load after the switch");
        assert!(next.contains(&bundle), "after the switch at {at}: {next}");
    }
}

/// Requests that failed on (blue, green) by the ALB data plane's log since `since`: every
/// failure, whoever made it (an ELB-made 502/503/504 carries no app version).
fn failed_per_colour(
    fx: &Fixture,
    lane: &crate::support::lane::LaneStack,
    since: f64,
) -> (usize, usize) {
    let log = lane.alb_log(fx, since);
    let on = |arn: &str| failed_on(&log, &group_name(arn));
    (
        on(&fx.stack.blue_target_group_arn),
        on(&fx.stack.green_target_group_arn),
    )
}

/// A lane stack whose error gate judges 5-second periods (the lane ALB publishes every 5 s,
/// support::lane), with v1 deployed to green and served by the data plane.
async fn gated_with_v1_live(ports: (u16, u16)) -> (Fixture, crate::support::lane::LaneStack) {
    let (fx, lane) = Fixture::lane_on(ports).await;
    let config = std::fs::read_to_string(&fx.config).unwrap().replace(
        "\n[frontend]",
        "\n[backend.gates]\nperiod = \"5s\"\nmax_5xx_rate = 0.05\nmin_requests = 20\n\n[frontend]",
    );
    fx.write_config(&config);
    fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    fx.assert_weights(0, 100).await;
    lane.wait_serving("/cgi-bin/api", "v1");
    (fx, lane)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real-instance lane: run scripts/test-real"]
async fn a_canary_failing_its_business_path_is_rolled_back_by_the_5xx_gate() {
    let (fx, lane) = gated_with_v1_live((8091, 8092)).await;

    // `badpath` passes its health check but answers 500 on /cgi-bin/api, which the load asks.
    let load = Load::start(lane.alb_port, "/cgi-bin/api", 100.0, 6);
    std::thread::sleep(Duration::from_secs(2));
    let started = now();
    let out = fx
        .bgcloud(&[
            "deploy", "--image", "badpath", "--canary", "20", "--watch", "90s",
        ])
        .code(1);
    let returned = now();
    let rolled_back_after = returned - started;
    std::thread::sleep(Duration::from_secs(2));
    let samples = load.stop();
    assert!(
        out.stderr.contains("5xx_rate")
            && out.stderr.contains("BREACHED")
            && out.stderr.contains("Rolled back automatically"),
        "{}",
        out.stderr
    );
    assert_eq!(fx.weights().await, w(0, 100), "all traffic back on v1");

    let on = |v: &'static str| {
        samples
            .iter()
            .filter(move |s| s.version.as_deref() == Some(v))
    };
    // Every failure counts, whoever made it: per colour from the load balancer's log (an
    // ELB-made 502/503/504 carries no app version), and as the client saw it.
    let (canary_failed, stable_failed) = failed_per_colour(&fx, &lane, started - 4.0);
    let lost = samples.iter().filter(|s| s.status == 0).count();
    let canary = on("badpath").count();
    let not_badpaths = samples
        .iter()
        .filter(|s| s.status != 200 && s.version.as_deref() != Some("badpath"))
        .count();
    println!(
        "5xx gate: {} requests, {canary} to the badpath canary (all 500), {canary_failed} failed \
         on the canary and {stable_failed} on the stable colour by the ALB's log, {not_badpaths} \
         other failures as the client saw them, {lost} lost connections; rolled back \
         {rolled_back_after:.0} s after the deploy began",
        samples.len()
    );
    assert_eq!(stable_failed, 0, "the stable colour never failed a request");
    assert_eq!(lost, 0, "no request lost its connection");
    assert_eq!(
        not_badpaths, 0,
        "every failure the client saw was the canary's own 500"
    );
    assert!(canary >= 20, "the canary got traffic: {canary}");
    // After the rollback, nothing reaches badpath any more once the listener change has reached
    // the ALB's nodes: until then they route by the previous weights, as on AWS.
    let last_canary = on("badpath").map(|s| s.t).fold(0.0, f64::max);
    let propagation = crate::support::emulator::timing("elb_propagation").as_secs_f64();
    println!(
        "5xx gate: the last badpath answer {:+.2} s after bgcloud returned (propagation {propagation} s)",
        last_canary - returned
    );
    assert!(
        last_canary <= returned + propagation + 0.5,
        "badpath answered {:.2} s after bgcloud said traffic was back",
        last_canary - returned
    );
}

/// Sets both colours' deregistration delay.
async fn deregistration_delay(fx: &Fixture, seconds: u64) {
    for arn in [
        &fx.stack.blue_target_group_arn,
        &fx.stack.green_target_group_arn,
    ] {
        fx.set_deregistration_delay(arn, seconds).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real-instance lane: run scripts/test-real"]
async fn requests_in_flight_finish_before_a_colour_that_just_lost_traffic_is_replaced() {
    let (fx, lane) = Fixture::lane_on((8061, 8062)).await;
    let slow_path = lane.lane["slow_path"].as_str().unwrap().to_string();
    let slow = lane.lane["slow_seconds"].as_f64().unwrap();
    // Longer than a slow request: everything sent before a colour lost its traffic can finish.
    deregistration_delay(&fx, slow as u64 + 2).await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green
    fx.bgcloud(&["deploy", "--image", "v2"]).ok(); // blue live
                                                   // Staggered: one connection starts a request every slow/8 seconds, so whenever a colour
                                                   // loses its traffic it has requests of every age in flight. (Back to back on 8 connections
                                                   // started together, the 8 ran in lockstep: about one run in four the batch in flight at the
                                                   // control's launch had started after the shift, on the other colour, and the control cut
                                                   // nothing.)
    let load = Load::start(lane.alb_port, &slow_path, 8.0 / slow, 8);
    std::thread::sleep(Duration::from_secs_f64(slow / 2.0));

    // Rollback, then at once a deploy to the colour that just lost its traffic: it drains.
    let mark = crate::support::request_log(&fx.access_key).len();
    fx.bgcloud(&["rollback"]).ok();
    let drained = fx.bgcloud(&["deploy", "--image", "v1"]).json();
    assert_eq!(drained["color"], "blue");
    // From the emulator's log: the launch came at least a slow request's time after blue lost
    // its traffic (the rollback's ModifyListener).
    let log = crate::support::request_log(&fx.access_key);
    let first = |action: &str| {
        log[mark..]
            .iter()
            .find(|r| r["action"] == action)
            .and_then(|r| r["t"].as_f64())
            .unwrap()
    };
    let waited = first("SendCommand") - first("ModifyListener");
    assert!(
        waited >= slow - 1.0,
        "launched {waited:.1} s after blue lost its traffic"
    );

    // The drain cut short (drain_wait_max 0s), but a graceful stop: green lost its traffic to
    // that deploy a moment ago and still answers slow requests when its container is replaced;
    // `docker stop -t` (stop_grace, default 10 s) lets them finish.
    let green_out = crate::support::request_log(&fx.access_key)
        .iter()
        .rev()
        .find(|r| r["action"] == "ModifyListener")
        .and_then(|r| r["t"].as_f64())
        .unwrap();
    let config = std::fs::read_to_string(&fx.config).unwrap();
    fx.write_config(&config.replace("[backend]\n", "[backend]\ndrain_wait_max = \"0s\"\n"));
    let mark = crate::support::request_log(&fx.access_key).len();
    let graceful = fx.bgcloud(&["deploy", "--image", "v2"]).json();
    assert_eq!(graceful["color"], "green");
    assert!(graceful["drain"].is_null(), "{}", graceful["drain"]);
    let replaced_at = crate::support::request_log(&fx.access_key)[mark..]
        .iter()
        .find(|r| r["action"] == "SendCommand")
        .and_then(|r| r["t"].as_f64())
        .unwrap();
    let control_from = now();

    // The control: a drain cut short and no grace. Blue lost its traffic to that deploy a
    // moment ago; killing its container now cuts off what it is still answering.
    fx.write_config(&config.replace(
        "[backend]\n",
        "[backend]\ndrain_wait_max = \"0s\"\nstop_grace = \"0s\"\n",
    ));
    let cut = fx.bgcloud(&["deploy", "--image", "v2"]).json();
    assert_eq!(cut["color"], "blue");
    assert!(cut["drain"].is_null(), "{}", cut["drain"]);
    std::thread::sleep(Duration::from_secs_f64(slow + 1.0));
    let samples = load.stop();
    // Sent to green before it lost its traffic and still unanswered when its replacement was
    // sent: in flight on the container that `docker stop` was about to stop.
    let in_flight: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t < green_out && s.end > replaced_at)
        .collect();
    println!(
        "graceful stop: {} requests in flight on green's container when it was replaced, \
         statuses {:?}",
        in_flight.len(),
        in_flight.iter().map(|s| s.status).collect::<Vec<_>>()
    );
    assert!(
        !in_flight.is_empty(),
        "no request was in flight on green's container when it was replaced: the test cannot tell"
    );
    assert!(
        in_flight.iter().all(|s| s.status == 200),
        "a request in flight on a container stopped with a grace was cut off"
    );

    let failed = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|s| s.t >= from && s.t < to && (s.status == 0 || s.status >= 500))
            .count()
    };
    // The control cuts off what blue had in flight, sent up to `slow` before it began; the
    // graceful deploy ran longer than that (it waited for green's slow requests), so the
    // windows do not overlap.
    let (with_wait, without) = (
        failed(0.0, control_from - slow),
        failed(control_from - slow, f64::MAX),
    );
    println!(
        "draining: {} slow requests; {with_wait} failed with the drain wait or a graceful \
         stop, {without} with neither",
        samples.len()
    );
    assert_eq!(
        with_wait, 0,
        "requests cut off although the deploy drained or stopped gracefully"
    );
    assert!(
        without > 0,
        "the control lost no request: the test cannot tell"
    );
}

/// The module's boot loop (infra/modules/bgcloud/compute.tf, `boot_desired_state`), rendered
/// as Terraform would for this stack, with its scratch files under `scratch` instead of /run.
fn module_boot_loop(fx: &Fixture, scratch: &std::path::Path) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let tf = std::fs::read_to_string(root.join("infra/modules/bgcloud/compute.tf")).unwrap();
    let start = tf
        .find("boot_desired_state = <<-EOT\n")
        .expect("the boot loop")
        + 28;
    let body = &tf[start..start + tf[start..].find("\n  EOT").unwrap()];
    let text: Vec<&str> = body
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect();
    text.join("\n")
        .replace("${local.region}", "us-east-1")
        .replace("${local.state_bucket_name}", &fx.stack.state_bucket)
        .replace(
            "${local.desired_state_prefix}",
            &format!("bgcloud/{}/desired/", fx.stack.spec.name),
        )
        .replace("/run/bgcloud-", &format!("{}/bgcloud-", scratch.display()))
}

/// What the boot loop runs with on a lane instance: the lane's AWS CLI reaching the emulator as
/// the instance role would reach AWS, under its own key (AKIDLANEBOOT) so its requests can be
/// told apart; `path` first on PATH.
fn boot_env(lane: &crate::support::lane::LaneStack, path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let port = crate::support::endpoint().rsplit(':').next().unwrap();
    format!(
        "export PATH={path}{}:$PATH AWS_ENDPOINT_URL=http://{}:{port} AWS_ACCESS_KEY_ID=AKIDLANEBOOT \
         AWS_SECRET_ACCESS_KEY=lane AWS_EC2_METADATA_DISABLED=true\n",
        root.join("localstack/.venv/bin").display(),
        lane.lane["host_ip"].as_str().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real-instance lane: run scripts/test-real"]
async fn a_replaced_instance_serves_both_colours_from_the_boot_loop_alone() {
    let (fx, lane) = Fixture::lane_on((8051, 8052)).await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green
    fx.bgcloud(&["deploy", "--image", "v2"]).ok(); // blue live
    let requests_before = fx.requests().len();

    // Instance 1 comes back empty, as a replacement would: no container of either colour.
    let app = &fx.stack.spec.name;
    let (code, _) = lane.on_instance(1, &format!("docker rm -f {app}-blue {app}-green"));
    assert_eq!(code, 0);
    let id = &fx.stack.instance_ids[1];
    for arn in [
        &fx.stack.blue_target_group_arn,
        &fx.stack.green_target_group_arn,
    ] {
        wait_for_state(&fx, arn, id, "unhealthy").await;
    }

    // Its user data's loop, with the lane's AWS CLI (reaching the emulator as the instance
    // role would reach AWS), and no bgcloud command at all.
    let scratch = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let boot = boot_env(&lane, "") + &module_boot_loop(&fx, scratch.path());
    let (code, out) = lane.on_instance(1, &boot);
    assert_eq!(code, 0, "{out}");
    for (color, tag, arn) in [
        ("blue", "v2", &fx.stack.blue_target_group_arn),
        ("green", "v1", &fx.stack.green_target_group_arn),
    ] {
        assert_eq!(
            lane.digest_label(1, &format!("{app}-{color}")),
            fx.stack.images[tag],
            "{color} runs the recorded digest"
        );
        wait_for_state(&fx, arn, id, "healthy").await;
    }
    println!(
        "boot: both colours served by the replaced instance {:.1} s after its boot loop began",
        started.elapsed().as_secs_f64()
    );
    // What brought it back is the boot loop, by what it asked AWS (with the instance's own
    // key): it read each colour's desired state from the state bucket and wrote nothing.
    let boot_requests: Vec<String> = crate::support::emulator::requests("AKIDLANEBOOT")
        .into_iter()
        .map(|(_, action)| action)
        .collect();
    for color in ["blue", "green"] {
        let read = format!(
            "GET /{}/bgcloud/{app}/desired/{color}.sh",
            fx.stack.state_bucket
        );
        assert!(
            boot_requests.contains(&read),
            "the boot loop read {color}'s desired state: {boot_requests:?}"
        );
    }
    assert!(
        boot_requests.iter().all(|a| crate::support::is_read(a)),
        "the boot loop only reads: {boot_requests:?}"
    );
    assert_eq!(
        fx.requests().len(),
        requests_before,
        "and no bgcloud command ran"
    );
    assert_eq!(lane.get(lane.lane["app_path"].as_str().unwrap()).0, 200);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real-instance lane: run scripts/test-real"]
async fn a_deploy_during_a_slow_boot_is_not_undone_by_the_boot_loop() {
    let (fx, lane) = Fixture::lane_on((8141, 8142)).await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green
    fx.bgcloud(&["deploy", "--image", "v2"]).ok(); // blue live
    let app = fx.stack.spec.name.clone();
    // The launch on instance 1 may wait for its whole boot loop (two slow pulls).
    let config = std::fs::read_to_string(&fx.config).unwrap();
    fx.write_config(&config.replace("health_timeout = \"30s\"", "health_timeout = \"90s\""));

    // Instance 1 boots slowly: its boot loop's pulls take 8 s each (a big image, a slow
    // registry), so it has read green's desired state (v1) long before it starts it.
    let slow = tempfile::tempdir().unwrap();
    let docker = lane.lane["instances"][1]["docker"].as_str().unwrap();
    let shim = slow.path().join("docker");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh
[ \"$1\" = pull ] && sleep 8
exec {docker} \"$@\"
"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let boot = boot_env(&lane, &format!("{}:", slow.path().display()))
        + &module_boot_loop(&fx, scratch.path());
    let green_read = format!(
        "GET /{}/bgcloud/{app}/desired/green.sh",
        fx.stack.state_bucket
    );

    std::thread::scope(|scope| {
        let booting = scope.spawn(|| {
            let started = now();
            let (code, out) = lane.on_instance(1, &boot);
            (code, out, started, now())
        });
        // Once the boot loop has read green's desired state (still v1), a deploy of v2 to
        // green, which lands on instance 1 while the boot loop is still pulling v1.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !crate::support::emulator::requests("AKIDLANEBOOT")
            .iter()
            .any(|(_, a)| *a == green_read)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the boot loop never read green"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let read_at = now();
        let deployed = fx.bgcloud(&["deploy", "--image", "v2"]).json();
        let deployed_at = now();
        let (code, out, boot_from, boot_to) = booting.join().unwrap();
        assert_eq!(code, 0, "{out}");
        assert_eq!(deployed["color"], "green");
        println!(
            "boot race: the boot loop ran {:.1} s; the deploy began {:.1} s in, after it had read \
             green's desired state, and ended {:.1} s in",
            boot_to - boot_from,
            read_at - boot_from,
            deployed_at - boot_from
        );
    });
    // Green (live now) runs the release just deployed on every instance: the boot loop did not
    // start its older desired state over it.
    for index in [0, 1] {
        assert_eq!(
            lane.digest_label(index, &format!("{app}-green")),
            fx.stack.images["v2"],
            "instance {index}'s green"
        );
    }
    assert_eq!(lane.get(lane.lane["app_path"].as_str().unwrap()).0, 200);
}

/// Waits (up to 60 s) until the instance's target in the group reads `state`.
async fn wait_for_state(fx: &Fixture, arn: &str, id: &str, state: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let states = fx.target_states(arn).await;
        if states.iter().any(|s| s.0 == id && s.2 == state) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never read {state} in {arn}: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The smoke test the lane runs: `n` requests with the preview header must reach the release
/// being deployed ($BGCLOUD_IMAGE is the lane image's X-App-Version), and requests without it
/// the version users have ($USERS_SEE).
const LANE_SMOKE: &str = r#"for i in 1 2 3 4 5 6 7 8 9 10; do
  new=$(curl -sS -o /dev/null -w '%{http_code} %header{x-app-version}' -H "$BGCLOUD_PREVIEW_HEADER" "$BGCLOUD_PREVIEW_URL/cgi-bin/api")
  old=$(curl -sS -o /dev/null -w '%{http_code} %header{x-app-version}' "$BGCLOUD_PREVIEW_URL/cgi-bin/api")
  echo "preview: $new; users: $old"
  [ "$new" = "200 $BGCLOUD_IMAGE" ] && [ "$old" = "200 $USERS_SEE" ] || exit 1
done"#;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real-instance lane: run scripts/test-real"]
async fn smoke_tests_reach_the_new_colour_through_the_alb_by_header_and_stop_a_bad_release() {
    let (fx, lane) = Fixture::lane_on((8041, 8042)).await;
    // The ELB's eventual consistency at the AWS profile's size (localstack/timing.py), not the
    // scaled one: rule and weight changes reach the data plane 5 s after the write, Describe*
    // shows the state before it for 2 s.
    let _aws = crate::support::emulator::Timing::set(
        serde_json::json!({"elb_propagation": 5.0, "elb_describe_lag": 2.0}),
    );
    // A colour that lost its traffic gets new requests until the change has propagated: the
    // drain before replacing it counts from then.
    let config = std::fs::read_to_string(&fx.config)
        .unwrap()
        .replace("listener_propagation = \"1s\"", "listener_propagation = \"5s\"")
        .replace(
            "\n[frontend]",
            &format!(
                "\n[backend.preview]\nheader = \"X-Bgcloud-Preview\"\nurl = \"http://127.0.0.1:{}\"\n\n[frontend]",
                lane.alb_port
            ),
        );
    assert!(config.contains("listener_propagation = \"5s\""));
    fx.write_config(&config);
    fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    fx.assert_weights(0, 100).await;
    lane.wait_serving("/cgi-bin/api", "v1");

    let load = Load::start(lane.alb_port, "/cgi-bin/api", 50.0, 4);
    // A tester asking for the colour being prepared (blue) all through the deploy: before the
    // preview rule reaches blue (and while the change propagates) the guard rule answers 503;
    // never the live colour's v1.
    let tester = Load::start_with(
        lane.alb_port,
        "/cgi-bin/api",
        20.0,
        2,
        Some("X-Bgcloud-Preview: blue"),
    );
    let started = now();
    let out = fx
        .bgcloud(&["deploy", "--image", "v2", "--smoke", LANE_SMOKE])
        .env("USERS_SEE", "v1")
        .ok();
    let tested = tester.stop();
    let guarded = tested.iter().filter(|s| s.status == 503).count();
    let on_v2 = tested
        .iter()
        .filter(|s| s.status == 200 && s.version.as_deref() == Some("v2"))
        .count();
    println!(
        "preview header during the deploy: {} requests, {guarded} answered by the guard, {on_v2} \
         by v2, {} by anything else",
        tested.len(),
        tested.len() - guarded - on_v2
    );
    assert_eq!(
        guarded + on_v2,
        tested.len(),
        "a request for the colour being prepared reached another: {:?}",
        tested
            .iter()
            .filter(|s| s.status != 503 && s.version.as_deref() != Some("v2"))
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(guarded > 0 && on_v2 > 0, "{guarded} guarded, {on_v2} on v2");
    assert!(
        out.stderr
            .contains("smoke | preview: 200 v2; users: 200 v1"),
        "{}",
        out.stderr
    );
    fx.assert_weights(100, 0).await;

    // `badpath` passes its health check but answers 500 on /cgi-bin/api: the health gate lets
    // it through, the smoke test through the preview route stops it before any user sees it.
    let out = fx
        .bgcloud(&["deploy", "--image", "badpath", "--smoke", LANE_SMOKE])
        .env("USERS_SEE", "v2")
        .code(1);
    assert!(
        out.stderr
            .contains("smoke | preview: 500 badpath; users: 200 v2")
            && out.stderr.contains("Traffic untouched: blue keeps 100 %"),
        "{}",
        out.stderr
    );
    fx.assert_weights(100, 0).await;
    std::thread::sleep(Duration::from_secs(1));
    let samples = load.stop();
    let log = lane.alb_log(&fx, started);
    let by_header = log.iter().filter(|e| e["rule"] != "default").count();
    let failed = samples.iter().filter(|s| s.status != 200).count();
    let on_badpath = samples
        .iter()
        .filter(|s| s.version.as_deref() == Some("badpath"))
        .count();
    println!(
        "preview: {by_header} smoke requests by header reached the colour being deployed; users: \
         {} requests, {failed} failed, {on_badpath} answered by badpath",
        samples.len()
    );
    if failed > 0 {
        for e in log
            .iter()
            .filter(|e| e["rule"] == "default" && e["status"] != 200)
        {
            eprintln!("ALB answered a user request with {e}");
        }
    }
    assert_eq!(
        failed,
        0,
        "no user request failed: {:?}",
        samples
            .iter()
            .filter(|s| s.status != 200)
            .map(|s| (s.t - started, s.status, &s.version))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        on_badpath, 0,
        "no user saw the release its smoke test stopped"
    );
    assert!(
        by_header >= 11,
        "the smoke tests went through the preview rule: {by_header}"
    );
}

/// A canary that fails the way most bad releases do, without a 5xx of its own: `badcrash`
/// (its server dies on the first /api request, and again after every restart) and `badhang`
/// (/api never answers). Each is rolled back by the error gate, which counts the load
/// balancer's own 502/504 (RequestCount minus what the targets answered), under load, and no
/// request routed to the stable colour fails.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real-instance lane: run scripts/test-real"]
async fn canaries_that_crash_or_hang_are_rolled_back_by_the_errors_the_alb_makes() {
    let (fx, lane) = gated_with_v1_live((8111, 8112)).await;
    // `badcrash` is down between restarts, so its health checks fail too, and the watch also
    // rolls back on an unhealthy target: with the lane's 2 × 5 s that won the race about one run
    // in four, and this test would not learn whether the 5xx gate counts the load balancer's
    // 502s. Six failed checks (30 s) is still faster than AWS's default 2 × 30 s, and the 5xx
    // gate answers within about 10 s of the first bad answer.
    for arn in [
        &fx.stack.blue_target_group_arn,
        &fx.stack.green_target_group_arn,
    ] {
        fx.aws
            .elb
            .modify_target_group()
            .target_group_arn(arn)
            .unhealthy_threshold_count(6)
            .send()
            .await
            .unwrap();
    }
    let (blue_group, green_group) = (
        group_name(&fx.stack.blue_target_group_arn),
        group_name(&fx.stack.green_target_group_arn),
    );
    for bad in ["badcrash", "badhang"] {
        let load = Load::start(lane.alb_port, "/cgi-bin/api", 100.0, 8);
        std::thread::sleep(Duration::from_secs(2));
        let started = now();
        let out = fx
            .bgcloud(&[
                "deploy",
                "--image",
                bad,
                "--canary",
                "20",
                "--watch",
                "120s",
                // Six failed checks take the ALB 42 s to judge a new container.
                "--health-timeout",
                "90s",
            ])
            .code(1);
        let ended = now();
        // Requests still hanging on the canary end (504) within the lane ALB's 10 s.
        std::thread::sleep(Duration::from_secs(11));
        let samples = load.stop();
        assert!(
            out.stderr.contains("5xx_rate")
                && out.stderr.contains("without a target's answer")
                && out.stderr.contains("Rolled back automatically"),
            "{bad}: {}",
            out.stderr
        );
        fx.assert_weights(0, 100).await;
        // Who answered what, from the load balancer's own log: per colour, every non-2xx.
        let log = lane.alb_log(&fx, started - 2.0);
        let failed_on = |group: &str| failed_on(&log, group);
        let canary_group = if out.stderr.contains("to blue") {
            &blue_group
        } else {
            &green_group
        };
        let stable_group = if canary_group == &blue_group {
            &green_group
        } else {
            &blue_group
        };
        let first_bad = log
            .iter()
            .filter(|e| e["target_group"].as_str() == Some(canary_group.as_str()))
            .filter(|e| e["by"] == "elb")
            .map(|e| e["t"].as_f64().unwrap())
            .fold(f64::MAX, f64::min);
        let back = crate::support::request_log(&fx.access_key)
            .iter()
            .filter(|r| r["action"] == "ModifyListener" && r["t"].as_f64().unwrap() > first_bad)
            .map(|r| r["t"].as_f64().unwrap())
            .fold(f64::MAX, f64::min);
        let lost = samples.iter().filter(|s| s.status == 0).count();
        let client_failed = samples.iter().filter(|s| s.status != 200).count();
        println!(
            "{bad}: {} requests, {} failed on the canary (the ALB's own 502/504), {} failed on \
             the stable colour, {client_failed} failed in all as the client saw it, {lost} lost \
             connections; traffic back {:.1} s after the first bad answer ({:.0} s after the \
             deploy began)",
            samples.len(),
            failed_on(canary_group),
            failed_on(stable_group),
            back - first_bad,
            ended - started
        );
        assert_eq!(
            failed_on(stable_group),
            0,
            "{bad}: the stable colour failed nothing"
        );
        assert!(failed_on(canary_group) > 0, "{bad}: the canary was asked");
        assert_eq!(lost, 0, "{bad}: the load balancer answered every request");
        assert!(
            back < f64::MAX,
            "{bad}: traffic went back after the first bad answer"
        );
    }
}

/// Target-group stickiness on the weighted forward binds a client to the colour it was sent to,
/// whatever the weights: the lane's ALB honours it (the AWSALBTG cookie). Moving the weights
/// alone leaves the bound clients on the canary (the control); bgcloud's rollback turns
/// stickiness off in the same write, so they leave it at once, and the next deploy turns it
/// back on.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real-instance lane: run scripts/test-real"]
async fn sticky_clients_leave_the_canary_on_a_rollback() {
    let (fx, lane) = Fixture::lane_on((8101, 8102)).await;
    let app_path = lane.lane["app_path"].as_str().unwrap().to_string();
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green
    let sticky_forward = |blue: i32, green: i32| {
        crate::support::stack::sticky_forward(
            &[
                (&fx.stack.blue_target_group_arn, blue),
                (&fx.stack.green_target_group_arn, green),
            ],
            3600,
        )
    };
    fx.set_actions(vec![sticky_forward(0, 100)]).await;
    // A canary on v2 (blue), then 30 clients, each on its own connection with its cookie.
    fx.bgcloud(&["deploy", "--image", "v2", "--canary", "20"])
        .ok();
    let bound_to = |samples: &[Sample], version: &str, from: f64| {
        let mut clients: Vec<usize> = samples
            .iter()
            .filter(|s| s.t >= from && s.version.as_deref() == Some(version))
            .map(|s| s.client)
            .collect();
        clients.sort();
        clients.dedup();
        clients.len()
    };

    // The control: the weights moved back by hand, stickiness kept. The clients arrive once
    // the canary's weights route requests (a client's first answer binds it: one routed by the
    // weights before the change propagated would bind every client to green).
    crate::support::emulator::after_propagation();
    let load = Load::start(lane.alb_port, &app_path, 60.0, 30);
    std::thread::sleep(Duration::from_secs(3));
    let on_canary = bound_to(&load.samples(), "v2", 0.0);
    fx.set_actions(vec![sticky_forward(0, 100)]).await;
    let moved = now() + 1.0;
    std::thread::sleep(Duration::from_secs(4));
    let control = load.stop();
    let stayed = bound_to(&control, "v2", moved);

    // bgcloud's rollback, from the same canary.
    fx.set_actions(vec![sticky_forward(20, 80)]).await;
    crate::support::emulator::after_propagation();
    let load = Load::start(lane.alb_port, &app_path, 60.0, 30);
    std::thread::sleep(Duration::from_secs(3));
    let before = bound_to(&load.samples(), "v2", 0.0);
    let out = fx.bgcloud(&["rollback"]).ok();
    let rolled_back = now() + 1.0;
    std::thread::sleep(Duration::from_secs(4));
    let samples = load.stop();
    let after = bound_to(&samples, "v2", rolled_back);
    let failed = samples.iter().filter(|s| s.status != 200).count();
    println!(
        "sticky: {on_canary} of 30 clients bound to the canary; weights moved by hand \
         (stickiness kept): {stayed} still on it; bgcloud rollback ({before} bound before): \
         {after} on it after, {failed} failed requests"
    );
    assert!(
        on_canary > 0 && before > 0,
        "some clients were bound to the canary"
    );
    assert!(
        stayed > 0,
        "the control: stickiness beats the weights on the lane's ALB"
    );
    assert!(
        out.stderr.contains("turned off in this same write"),
        "{}",
        out.stderr
    );
    assert_eq!(after, 0, "no client stays on the colour rolled back from");
    assert_eq!(failed, 0);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real-instance lane: run scripts/test-real"]
async fn the_first_deploy_adopts_a_plain_listener_under_load_without_a_failed_request() {
    let (fx, lane) = Fixture::lane_on((8121, 8122)).await;
    let app_path = lane.lane["app_path"].as_str().unwrap().to_string();
    let app = fx.stack.spec.name.clone();

    // Before bgcloud: the team's own script runs v1 on every instance (on the port blue's target
    // group checks) and the listener forwards plainly to that group.
    let repository = fx
        .aws
        .ecr
        .describe_repositories()
        .repository_names(&fx.stack.repository)
        .send()
        .await
        .unwrap()
        .repositories()[0]
        .repository_uri()
        .unwrap()
        .to_string();
    let registry = repository.split('/').next().unwrap().to_string();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let port = crate::support::endpoint().rsplit(':').next().unwrap();
    let by_hand = format!(
        "export PATH={}:$PATH AWS_ENDPOINT_URL=http://{}:{port} AWS_ACCESS_KEY_ID=AKIDLANEHAND \
         AWS_SECRET_ACCESS_KEY=lane AWS_EC2_METADATA_DISABLED=true\n\
         aws ecr get-login-password --region us-east-1 | docker login --username AWS --password-stdin {registry} >/dev/null\n\
         docker run -d --restart unless-stopped --name {app}-legacy -p 8121:{} {repository}@{} >/dev/null",
        root.join("localstack/.venv/bin").display(),
        lane.lane["host_ip"].as_str().unwrap(),
        fx.stack.spec.container_port,
        fx.stack.images["v1"],
    );
    for index in 0..fx.stack.instance_ids.len() {
        let (code, out) = lane.on_instance(index, &by_hand);
        assert_eq!(code, 0, "instance {index}: {out}");
    }
    use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum};
    fx.set_actions(vec![Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(&fx.stack.blue_target_group_arn)
        .build()])
        .await;
    lane.wait_serving(&app_path, "v1");

    // Users are on v1 from the first request on; bgcloud's first deploy adopts the listener,
    // launches v2 on green and moves everyone to it.
    let load = Load::start(lane.alb_port, &app_path, 100.0, 6);
    std::thread::sleep(Duration::from_secs(2));
    let started = now();
    let out = fx.bgcloud(&["deploy", "--image", "v2"]).ok();
    out.assert_stderr_has("forwarded to blue only; rewrote it as a weighted forward");
    fx.assert_weights(0, 100).await;
    lane.wait_serving(&app_path, "v2");
    // And back to the team's own v1 at once: it was never touched.
    fx.bgcloud(&["rollback"]).ok();
    fx.assert_weights(100, 0).await;
    lane.wait_serving(&app_path, "v1");
    std::thread::sleep(Duration::from_secs(1));
    let samples = load.stop();

    let (failed_blue, failed_green) = failed_per_colour(&fx, &lane, started - 4.0);
    let not_ok: Vec<&Sample> = samples.iter().filter(|s| s.status != 200).collect();
    let versions: std::collections::BTreeSet<Option<&str>> =
        samples.iter().map(|s| s.version.as_deref()).collect();
    println!(
        "adoption: {} requests from before the first deploy to after the rollback, {} not 200 \
         as the client saw them, {failed_blue} failed on blue and {failed_green} on green by the \
         ALB's log; versions {versions:?}",
        samples.len(),
        not_ok.len()
    );
    assert!(samples.len() >= 100, "{} requests", samples.len());
    assert!(not_ok.is_empty(), "{:?}", &not_ok[..not_ok.len().min(10)]);
    assert_eq!((failed_blue, failed_green), (0, 0));
    assert_eq!(versions, [Some("v1"), Some("v2")].into_iter().collect());
    assert_eq!(samples[0].version.as_deref(), Some("v1"));
    assert_eq!(samples.last().unwrap().version.as_deref(), Some("v1"));
    // The team's container is still what blue serves: bgcloud launched only on green.
    let (code, _) = lane.on_instance(0, &format!("docker inspect {app}-legacy >/dev/null"));
    assert_eq!(code, 0);
    let (code, out) = lane.on_instance(0, &format!("docker inspect {app}-blue"));
    assert_ne!(code, 0, "bgcloud started no blue container: {out}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real-instance lane: run scripts/test-real"]
async fn a_rollback_to_a_stopped_idle_colour_starts_it_first_under_load_without_a_failed_request() {
    let (fx, lane) = Fixture::lane_on((8151, 8152)).await;
    let app_path = lane.lane["app_path"].as_str().unwrap().to_string();
    let app = fx.stack.spec.name.clone();
    fx.bgcloud(&["deploy", "--image", "v1"]).ok(); // green
    fx.bgcloud(&["deploy", "--image", "v2"]).ok(); // blue live
    lane.wait_serving(&app_path, "v2");

    // Green sleeps: its real containers stopped, not removed.
    fx.bgcloud(&["idle", "stop"]).ok();
    let status = |index: usize| {
        lane.on_instance(
            index,
            &format!("docker inspect -f '{{{{.State.Status}}}}' {app}-green"),
        )
    };
    for index in 0..fx.stack.instance_ids.len() {
        let (code, out) = status(index);
        assert_eq!((code, out.trim()), (0, "exited"), "instance {index}");
    }
    // A replaced instance (no green container) runs the module's boot loop for green: the stored
    // desired state leaves it stopped.
    lane.on_instance(1, &format!("docker rm -f {app}-green"));
    let scratch = tempfile::tempdir().unwrap();
    let only_green = module_boot_loop(&fx, scratch.path())
        .replace("for color in blue green; do", "for color in green; do");
    assert!(
        only_green.contains("for color in green; do"),
        "{only_green}"
    );
    let boot = format!("({}{only_green}) 2>&1", boot_env(&lane, ""));
    let (code, out) = lane.on_instance(1, &boot);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("bgcloud: {app}-green is stopped since")),
        "the boot loop ran green's stored state: {out}"
    );
    let (code, out) = status(1);
    assert_ne!(code, 0, "the boot loop started the sleeping colour: {out}");

    // The rollback starts green, gates it, then moves the users, who never see a failure.
    let load = Load::start(lane.alb_port, &app_path, 100.0, 6);
    std::thread::sleep(Duration::from_secs(2));
    let started = now();
    let out = fx.bgcloud(&["rollback"]).ok();
    let took = now() - started;
    out.assert_stderr_has("green is stopped (since");
    out.assert_stderr_has("starting it first, about");
    fx.assert_weights(0, 100).await;
    lane.wait_serving(&app_path, "v1");
    std::thread::sleep(Duration::from_secs(1));
    let samples = load.stop();

    let (failed_blue, failed_green) = failed_per_colour(&fx, &lane, started - 4.0);
    let not_ok: Vec<&Sample> = samples.iter().filter(|s| s.status != 200).collect();
    println!(
        "idle: rollback from a stopped colour in {took:.1} s, {} requests, {} failed \
         ({failed_blue} on blue and {failed_green} on green by the ALB's log)",
        samples.len(),
        not_ok.len()
    );
    assert!(samples.len() >= 100, "{} requests", samples.len());
    assert!(not_ok.is_empty(), "{:?}", &not_ok[..not_ok.len().min(10)]);
    assert_eq!((failed_blue, failed_green), (0, 0));
    assert_eq!(samples[0].version.as_deref(), Some("v2"));
    assert_eq!(samples.last().unwrap().version.as_deref(), Some("v1"));
    for index in 0..fx.stack.instance_ids.len() {
        assert_eq!(status(index).1.trim(), "running", "instance {index}");
    }
}
