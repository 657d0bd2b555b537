//! Config validation through the real binary: each class of error exits 2, names the key, says
//! what to do, and makes no AWS request.

use crate::support::Bare;

const VALID: &str = r#"app = "shop"
region = "us-east-1"

[state]
bucket = "shop-deploy-state"

[backend]
listener_arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2"
blue_target_group_arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-blue/73e2d6bc24d8a067"
green_target_group_arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-green/83e2d6bc24d8a067"
repository = "shop-api"
container_port = 3000
blue_port = 8081
green_port = 8082
instance_tags = { "bgcloud:app" = "shop" }
health_timeout = "5m"
poll_interval = "5s"
"#;

/// Runs `status` on `config`; asserts exit 2, that stderr contains every one of `expected`,
/// and that no AWS request was made.
fn refused(config: &str, expected: &[&str]) {
    let bare = Bare::new(config);
    let out = bare.bgcloud(&["status"]).code(2);
    for e in expected {
        assert!(out.stderr.contains(e), "expected {e:?} in:\n{}", out.stderr);
    }
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", out.stdout);
    assert_eq!(
        bare.requests(),
        vec![],
        "no AWS request before validation passes"
    );
}

fn without(key: &str) -> String {
    VALID
        .lines()
        .filter(|l| !l.starts_with(key))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn each_missing_required_key_is_named() {
    for (line, name) in [
        ("app =", "app is missing"),
        ("bucket =", "[state].bucket is missing"),
        ("listener_arn =", "[backend].listener_arn is missing"),
        (
            "blue_target_group_arn =",
            "[backend].blue_target_group_arn is missing",
        ),
        (
            "green_target_group_arn =",
            "[backend].green_target_group_arn is missing",
        ),
        ("repository =", "[backend].repository is missing"),
        ("container_port =", "[backend].container_port is missing"),
        ("blue_port =", "[backend].blue_port is missing"),
        ("green_port =", "[backend].green_port is missing"),
        ("instance_tags =", "[backend].instance_tags is missing"),
    ] {
        refused(&without(line), &[name]);
    }
}

#[test]
fn unknown_key() {
    refused(
        &VALID.replace("poll_interval", "poll_intervall"),
        &["poll_intervall", "poll_interval"],
    );
}

#[test]
fn blue_equal_to_green() {
    let green = VALID
        .lines()
        .find(|l| l.starts_with("green_target_group_arn"))
        .unwrap();
    let blue_arn = VALID
        .lines()
        .find(|l| l.starts_with("blue_target"))
        .unwrap()
        .split('"')
        .nth(1)
        .unwrap();
    let config = VALID.replace(green, &format!("green_target_group_arn = \"{blue_arn}\""));
    refused(
        &config,
        &["green_target_group_arn", "same as blue_target_group_arn"],
    );
}

#[test]
fn equal_ports() {
    refused(
        &VALID.replace("green_port = 8082", "green_port = 8081"),
        &["[backend].green_port", "equals blue_port"],
    );
}

#[test]
fn port_out_of_range() {
    refused(
        &VALID.replace("container_port = 3000", "container_port = 65536"),
        &["[backend].container_port", "1-65535"],
    );
}

#[test]
fn malformed_arn() {
    refused(
        &VALID.replace(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/",
            "arn:aws:elb:us-east-1:1:listener/",
        ),
        &["[backend].listener_arn", "not an ELBv2 listener ARN"],
    );
}

#[test]
fn bad_duration() {
    refused(
        &VALID.replace("\"5m\"", "\"5 mins please\""),
        &["[backend].health_timeout", "not a duration"],
    );
}

#[test]
fn malformed_toml() {
    refused(
        &VALID.replace("container_port = 3000", "container_port = "),
        &["bgcloud.toml", "line"],
    );
}

#[test]
fn missing_config_file_says_where_to_put_it() {
    let bare = Bare::new(VALID);
    std::fs::remove_file(&bare.config).unwrap();
    let out = bare.bgcloud(&["status"]).code(2);
    assert!(
        out.stderr.contains("cannot read config") && out.stderr.contains("--config"),
        "{}",
        out.stderr
    );
    assert_eq!(bare.requests(), vec![]);
}

#[test]
fn history_limit_0_is_refused_with_the_rule_and_lock_releases_force_says_why() {
    let bare = Bare::new(VALID);
    let out = bare.bgcloud(&["history", "--limit", "0"]).code(2);
    assert!(
        out.stderr.contains("--limit") && out.stderr.contains("0 is not in 1.."),
        "{}",
        out.stderr
    );
    assert_eq!(bare.requests(), vec![]);
    let help = bare.bgcloud(&["lock", "release", "--help"]).ok();
    // Its help, on the flag's line or the next (clap's layout depends on the width).
    let lines: Vec<&str> = help.stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with("--force"))
        .unwrap_or_else(|| panic!("{}", help.stdout));
    let force = lines[at..(at + 2).min(lines.len())].join(" ");
    assert!(force.contains("Required"), "{force:?}");
}

#[test]
fn bad_flag_value_exits_2() {
    let bare = Bare::new(VALID);
    let out = bare.bgcloud(&["shift", "--to", "purple"]).code(2);
    assert!(
        out.stderr.contains("blue") && out.stderr.contains("green"),
        "{}",
        out.stderr
    );
    assert_eq!(bare.requests(), vec![]);
}

/// No --config and no BGCLOUD_CONFIG: run from a folder below it, bgcloud finds the
/// repository's bgcloud.toml; with none up to the repository's root, it says where it looked.
#[tokio::test(flavor = "multi_thread")]
async fn a_command_run_below_the_config_finds_it() {
    let fx = crate::support::Fixture::v1_v2().await;
    let deep = fx.dir.path().join("web/dist");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::create_dir(fx.dir.path().join(".git")).unwrap();
    let status = fx
        .bgcloud(&["status", "--output", "json"])
        .env_remove("BGCLOUD_CONFIG")
        .in_dir(&deep)
        .ok();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["app"], fx.stack.spec.name.as_str(), "{status}");
    // Smoke commands run in the config's folder, wherever bgcloud was started.
    fx.bgcloud(&["deploy", "--image", "v1", "--smoke", "test -f bgcloud.toml"])
        .env_remove("BGCLOUD_CONFIG")
        .in_dir(&deep)
        .ok();

    std::fs::rename(&fx.config, fx.dir.path().join("other.toml")).unwrap();
    let out = fx
        .bgcloud(&["status"])
        .env_remove("BGCLOUD_CONFIG")
        .in_dir(&deep)
        .code(2);
    assert!(
        out.stderr.contains(&format!(
            "no bgcloud.toml in {} or any parent up to {}",
            deep.display(),
            fx.dir.path().display()
        )),
        "{}",
        out.stderr
    );
}

/// `BGCLOUD_<SECTION>_<KEY>` overrides a key of the file, a flag overrides the variable, a
/// changing command says what it took from the environment, and a bad value or an unknown
/// `BGCLOUD_*` name is exit 2 naming the variable, before any AWS request.
#[tokio::test(flavor = "multi_thread")]
async fn environment_variables_override_the_file_and_flags_override_them() {
    let fx = crate::support::Fixture::v1_v2().await;
    const VAR: &str = "BGCLOUD_BACKEND_HEALTH_TIMEOUT";
    // 1 s is less than the emulator's target group needs to judge a container.
    let out = fx
        .bgcloud(&["deploy", "--image", "v1"])
        .env(VAR, "1s")
        .code(2);
    out.assert_stderr_has(&format!(
        "config: backend.health_timeout = \"1s\" from {VAR}"
    ));
    out.assert_stderr_has("--health-timeout 1s is too short");
    assert!(
        fx.writes_but_lock().is_empty(),
        "{:?}",
        fx.writes_but_lock()
    );
    // The flag wins over the variable; a read-only command does not list what it took.
    let out = fx
        .bgcloud(&[
            "deploy",
            "--image",
            "v1",
            "--dry-run",
            "--health-timeout",
            "5m",
        ])
        .env(VAR, "1s")
        .ok();
    assert!(!out.stderr.contains("from BGCLOUD_"), "{}", out.stderr);
    let status = fx
        .bgcloud(&["status"])
        .env("BGCLOUD_APP", "other-app")
        .json();
    assert_eq!(status["app"], "other-app");

    let mark = fx.mark();
    let out = fx.bgcloud(&["status"]).env(VAR, "soon").code(2);
    out.assert_stderr_has("[backend].health_timeout = \"soon\" is not a duration");
    out.assert_stderr_has(&format!("(backend.health_timeout was taken from {VAR})"));
    let out = fx
        .bgcloud(&["status"])
        .env("BGCLOUD_BACKEND_GATES_MIN_REQUESTS", "many")
        .code(2);
    out.assert_stderr_has(
        "BGCLOUD_BACKEND_GATES_MIN_REQUESTS = \"many\" is not a whole number, as \
         backend.gates.min_requests takes",
    );
    let out = fx
        .bgcloud(&["status", "--output", "json"])
        .env("BGCLOUD_BAKEND_HEALTH_TIMEOUT", "5m")
        .code(2);
    assert!(
        out.stderr.contains(
            "BGCLOUD_BAKEND_HEALTH_TIMEOUT is set, but it is not a setting bgcloud knows. Did \
             you mean BGCLOUD_BACKEND_HEALTH_TIMEOUT?"
        ),
        "{}",
        out.stderr
    );
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["error"]["exit_code"], 2);
    assert_eq!(
        fx.requests().len(),
        mark,
        "no AWS request: {:?}",
        &fx.requests()[mark..]
    );
}
