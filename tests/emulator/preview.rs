//! The preview route and smoke tests: after the health gate a listener rule of bgcloud's own
//! sends requests with the preview header to the new colour, the smoke tests run against it
//! while users still see the old one, and only then does traffic move. A failing smoke test
//! leaves traffic where it was; someone else's rules are never touched.

use crate::support::Fixture;
use aws_sdk_elasticloadbalancingv2::types::{
    HttpHeaderConditionConfig, Rule, RuleCondition, RulePriorityPair,
};
use bgcloud::model::weights::Weights;
use serde_json::{json, Value};

const PREVIEW: &str = "[backend.preview]\nheader = \"X-Bgcloud-Preview\"";

/// The listener's rules other than the default, by priority.
async fn rules(fx: &Fixture) -> Vec<Rule> {
    let mut rules: Vec<Rule> = fx
        .listener_rules()
        .await
        .into_iter()
        .filter(|r| r.is_default() != Some(true))
        .collect();
    rules.sort_by_key(|r| r.priority().unwrap().parse::<u32>().unwrap());
    rules
}

fn header_condition(name: &str, value: &str) -> RuleCondition {
    RuleCondition::builder()
        .field("http-header")
        .http_header_config(
            HttpHeaderConditionConfig::builder()
                .http_header_name(name)
                .values(value)
                .build(),
        )
        .build()
}

/// Where a rule forwards (one target group), and the header value it matches.
fn summary(rule: &Rule) -> (String, Option<String>, Option<String>) {
    let action = &rule.actions()[0];
    let to = action.target_group_arn().map(str::to_string).or_else(|| {
        action
            .forward_config()
            .and_then(|f| f.target_groups().first())
            .and_then(|t| t.target_group_arn())
            .map(str::to_string)
    });
    let value = rule
        .conditions()
        .first()
        .and_then(|c| c.http_header_config())
        .and_then(|h| h.values().first().cloned());
    (rule.priority().unwrap().to_string(), to, value)
}

async fn add_rule(
    fx: &Fixture,
    priority: i32,
    condition: RuleCondition,
    to: &[(&str, i32)],
) -> String {
    let out = fx
        .aws
        .elb
        .create_rule()
        .listener_arn(&fx.stack.listener_arn)
        .priority(priority)
        .conditions(condition)
        .actions(crate::support::stack::forward(to))
        .send()
        .await
        .unwrap();
    out.rules()[0].rule_arn().unwrap().to_string()
}

/// Whether any process on this machine has `marker` in its command line.
fn running(marker: &str) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .any(|c| String::from_utf8_lossy(&c).contains(marker))
}

/// Tags a rule as `app`'s preview rule.
async fn tag(fx: &Fixture, rule_arn: &str, app: &str) {
    fx.aws
        .elb
        .add_tags()
        .resource_arns(rule_arn)
        .tags(
            aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                .key("bgcloud:preview")
                .value(app)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn smoke_tests_reach_the_new_colour_by_header_while_users_still_see_the_old_one() {
    let fx = Fixture::v1_v2_with(PREVIEW).await;
    let dir = fx.dir.path().display().to_string();
    // The smoke test records what it was told and what `bgcloud status` says while it runs.
    let smoke = format!(
        "env | grep ^BGCLOUD_ | sort > {dir}/env.txt; \"$BIN_UNDER_TEST\" status --output json > \
         {dir}/during.json; echo smoke says hello; echo to stderr >&2"
    );
    let out = fx
        .bgcloud(&["deploy", "--image", "v2", "--smoke", &smoke])
        .env("BIN_UNDER_TEST", env!("CARGO_BIN_EXE_bgcloud"))
        .ok();
    assert!(
        out.stderr.contains("smoke | smoke says hello"),
        "{}",
        out.stderr
    );
    out.assert_stderr_has("smoke | to stderr");
    assert!(
        out.stdout
            .contains("smoke tests: 1 passed through X-Bgcloud-Preview: green at http://"),
        "{}",
        out.stdout
    );

    let env = std::fs::read_to_string(fx.dir.path().join("env.txt")).unwrap();
    let digest = fx.record().await["backend"]["green"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    for line in [
        "BGCLOUD_COLOR=green".to_string(),
        format!("BGCLOUD_DIGEST={digest}"),
        // As given to --image, as `status` shows it.
        "BGCLOUD_IMAGE=v2".to_string(),
        "BGCLOUD_PREVIEW_HEADER=X-Bgcloud-Preview: green".to_string(),
        "BGCLOUD_PREVIEW_HEADER_NAME=X-Bgcloud-Preview".to_string(),
        "BGCLOUD_PREVIEW_HEADER_VALUE=green".to_string(),
    ] {
        assert!(env.lines().any(|l| l == line), "{line} in\n{env}");
    }
    // The ALB's DNS name, port 80 left out.
    let url = env
        .lines()
        .find_map(|l| l.strip_prefix("BGCLOUD_PREVIEW_URL="))
        .unwrap();
    assert!(
        url.starts_with("http://") && url.ends_with(".elb.amazonaws.com"),
        "{url}"
    );

    // While the smoke test ran: users on blue, the preview rule on green.
    let during: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.dir.path().join("during.json")).unwrap())
            .unwrap();
    assert_eq!(during["weights"]["blue"], 100, "{during}");
    assert_eq!(during["weights"]["green"], 0, "{during}");
    assert_eq!(during["preview"]["color"], "green", "{during}");

    // The rule: bgcloud's (tagged), to green only, and its guard right behind it, last before
    // the default action: any other value of the header gets a 503, never a user colour.
    let rules = rules(&fx).await;
    assert_eq!(rules.len(), 2, "{rules:?}");
    let green = fx.stack.green_target_group_arn.clone();
    assert_eq!(
        summary(&rules[0]),
        ("49999".into(), Some(green), Some("green".into()))
    );
    assert_eq!(summary(&rules[1]), ("50000".into(), None, Some("*".into())));
    let fixed = rules[1].actions()[0].fixed_response_config().unwrap();
    assert_eq!(fixed.status_code(), Some("503"));
    assert_eq!(
        fixed.message_body(),
        Some(bgcloud::backend::preview::GUARD_BODY)
    );
    let arn = rules[0].rule_arn().unwrap().to_string();
    let tags = fx
        .aws
        .elb
        .describe_tags()
        .resource_arns(&arn)
        .send()
        .await
        .unwrap();
    let tags = tags.tag_descriptions()[0].tags();
    assert!(
        tags.iter()
            .any(|t| t.key() == Some("bgcloud:preview") && t.value() == Some(&fx.stack.spec.name)),
        "{tags:?}"
    );
    let status = fx.bgcloud(&["status"]).ok();
    assert!(
        status.stdout.contains(&format!(
            "preview   X-Bgcloud-Preview: green at {url} → green (rule {arn}, priority 49999)"
        )),
        "{}",
        status.stdout
    );

    // Someone restricts the route to the office network; ModifyRule replaces a rule's
    // conditions whole, so bgcloud must carry that condition over.
    let office = RuleCondition::builder()
        .field("source-ip")
        .source_ip_config(
            aws_sdk_elasticloadbalancingv2::types::SourceIpConditionConfig::builder()
                .values("10.0.0.0/8")
                .build(),
        )
        .build();
    fx.aws
        .elb
        .modify_rule()
        .rule_arn(&arn)
        .conditions(header_condition("X-Bgcloud-Preview", "green"))
        .conditions(office.clone())
        .send()
        .await
        .unwrap();

    // The next deploy moves the same rule to blue (no second rule).
    fx.bgcloud(&["deploy", "--image", "v1", "--smoke", "true"])
        .ok();
    let rules = self::rules(&fx).await;
    assert_eq!(rules.len(), 2, "the rule and its guard, made once");
    assert_eq!(rules[0].rule_arn(), Some(arn.as_str()));
    assert!(
        rules[0].conditions().contains(&office),
        "the source-ip condition was kept: {:?}",
        rules[0].conditions()
    );
    let blue = fx.stack.blue_target_group_arn.clone();
    assert_eq!(
        summary(&rules[0]),
        ("49999".into(), Some(blue), Some("blue".into()))
    );
    assert_eq!(fx.count("CreateRule"), 2, "{:?}", fx.requests());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_or_hanging_smoke_test_leaves_traffic_untouched() {
    let fx = Fixture::v1_v2_with(&format!("smoke = [\"echo checking; exit 3\"]\n{PREVIEW}")).await;
    let before = fx.record().await;
    let out = fx.bgcloud(&["deploy", "--image", "v2"]).code(1);
    out.assert_stderr_has("smoke | checking");
    assert!(
        out.stderr
            .contains("smoke `echo checking; exit 3` failed (exit 3)")
            && out.stderr.contains("Traffic untouched: blue keeps 100 %")
            && out.stderr.contains("curl -H 'X-Bgcloud-Preview: green'"),
        "{}",
        out.stderr
    );
    assert_eq!(fx.weights().await, Weights::from_raw(100, 0).unwrap());
    assert_eq!(fx.count("ModifyListener"), 0, "{:?}", fx.requests());
    assert_eq!(fx.record().await, before, "nothing recorded");
    assert!(
        fx.state_object("desired/green.sh").await.is_none(),
        "a release that failed its smoke test is not what new instances start"
    );
    // The preview route still reaches the release that failed, for a look at what went wrong.
    let routes: Vec<_> = rules(&fx).await.iter().map(summary).collect();
    assert!(
        routes.iter().any(|(_, to, value)| to.as_deref()
            == Some(fx.stack.green_target_group_arn.as_str())
            && value.as_deref() == Some("green")),
        "{routes:?}"
    );

    // A smoke test past --smoke-timeout is stopped, with what it started in the background.
    let marker = format!("31.{}", std::process::id());
    let started = std::time::Instant::now();
    let out = fx
        .bgcloud(&[
            "deploy",
            "--image",
            "v2",
            "--smoke-timeout",
            "1s",
            "--smoke",
            // In the background, one that ignores SIGTERM: SIGKILL ends it.
            &format!("sh -c \"trap '' TERM; sleep {marker}\" & sleep {marker}"),
        ])
        .code(1);
    assert!(
        out.stderr
            .contains("did not finish within 1s (--smoke-timeout) and was stopped"),
        "{}",
        out.stderr
    );
    // Stopped at its timeout, not waited out: the sleep it ran would have taken 31 s.
    let took = started.elapsed().as_secs_f64();
    assert!((1.0..31.0).contains(&took), "{took:.1} s");
    // What it started is gone too (SIGKILL is asynchronous: give the kernel a moment).
    let gone_by = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while running(&marker) && std::time::Instant::now() < gone_by {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !running(&marker),
        "the smoke test's processes were left running"
    );
    assert_eq!(fx.weights().await, Weights::from_raw(100, 0).unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rule_goes_before_rule_arns_rule_and_never_touches_someone_elses() {
    let fx = Fixture::v1_v2_with("").await;
    let (blue, green) = (
        fx.stack.blue_target_group_arn.clone(),
        fx.stack.green_target_group_arn.clone(),
    );
    let app = add_rule(
        &fx,
        10,
        RuleCondition::builder()
            .field("path-pattern")
            .values("/*")
            .build(),
        &[(&blue, 100), (&green, 0)],
    )
    .await;
    // Someone else's rule on the same header, just before the app's, and another further up.
    let foreign = add_rule(
        &fx,
        9,
        header_condition("X-Bgcloud-Preview", "green"),
        &[(&blue, 1)],
    )
    .await;
    add_rule(&fx, 5, header_condition("X-Other", "x"), &[(&blue, 1)]).await;
    let config = |extra: &str| {
        fx.stack
            .config_toml(&format!("rule_arn = \"{app}\"\n{PREVIEW}\n{extra}"))
    };

    // A priority that is someone else's, or after the app's rule: refused before any change.
    for (extra, says) in [
        (
            "priority = 8",
            "priority = 8 (or 9, which bgcloud's guard rule takes right after it) is taken",
        ),
        (
            "priority = 12",
            "leaves no room before rule_arn's rule (priority 10)",
        ),
    ] {
        fx.write_config(&config(extra));
        let out = fx.bgcloud(&["deploy", "--image", "v2"]).code(2);
        assert!(out.stderr.contains(says), "{extra}: {}", out.stderr);
    }
    assert!(
        fx.writes_but_lock().is_empty(),
        "{:?}",
        fx.writes_but_lock()
    );

    fx.write_config(&config(""));
    let plan = fx.bgcloud(&["deploy", "--image", "v2", "--dry-run"]).ok();
    assert!(
        plan.stdout.contains(
            "preview   X-Bgcloud-Preview: green → green once healthy (a new rule at priority 7"
        ),
        "{}",
        plan.stdout
    );
    fx.bgcloud(&["deploy", "--image", "v2", "--smoke", "true"])
        .ok();
    let after = rules(&fx).await;
    let by_priority: Vec<_> = after.iter().map(summary).collect();
    assert_eq!(
        by_priority,
        vec![
            ("5".into(), Some(blue.clone()), Some("x".into())),
            ("7".into(), Some(green.clone()), Some("green".into())),
            ("8".into(), None, Some("*".into())),
            ("9".into(), Some(blue.clone()), Some("green".into())),
            ("10".into(), Some(blue.clone()), None),
        ],
        "ours at 7 and its guard at 8, just before the foreign 9; the others as they were"
    );
    let ours = after[1].rule_arn().unwrap().to_string();
    assert_ne!(ours, foreign);

    // The app's rule is moved in front of ours: the next deploy moves ours (and its guard)
    // before it again.
    fx.aws
        .elb
        .set_rule_priorities()
        .rule_priorities(
            RulePriorityPair::builder()
                .rule_arn(&app)
                .priority(6)
                .build(),
        )
        .send()
        .await
        .unwrap();
    fx.bgcloud(&["deploy", "--image", "v1", "--smoke", "true"])
        .ok();
    let after: Vec<_> = rules(&fx).await.iter().map(summary).collect();
    assert_eq!(
        after[..4],
        [
            ("3".into(), Some(blue.clone()), Some("blue".into())),
            ("4".into(), None, Some("*".into())),
            ("5".into(), Some(blue.clone()), Some("x".into())),
            ("6".into(), Some(blue.clone()), None),
        ],
        "{after:?}"
    );

    // Another app's preview rule on the same header: a request could reach the wrong app.
    let other = add_rule(
        &fx,
        30,
        header_condition("X-Bgcloud-Preview", "blue"),
        &[(&blue, 1)],
    )
    .await;
    tag(&fx, &other, "another-app").await;
    let out = fx
        .bgcloud(&["deploy", "--image", "v2", "--dry-run"])
        .code(2);
    assert!(
        out.stderr.contains("app another-app's preview rule"),
        "{}",
        out.stderr
    );
    fx.aws
        .elb
        .delete_rule()
        .rule_arn(&other)
        .send()
        .await
        .unwrap();

    // A second rule tagged for the app: which one is bgcloud's is unclear, so nothing is done.
    let copy = add_rule(
        &fx,
        20,
        header_condition("X-Bgcloud-Preview", "blue"),
        &[(&blue, 1)],
    )
    .await;
    tag(&fx, &copy, &fx.stack.spec.name).await;
    let out = fx
        .bgcloud(&["deploy", "--image", "v2", "--dry-run"])
        .code(2);
    assert!(
        out.stderr.contains("has 2 rules tagged bgcloud:preview=") && out.stderr.contains(&copy),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_smoke_or_preview_settings_are_refused_before_any_request() {
    let fx = Fixture::v1_v2_with("").await;
    let out = fx
        .bgcloud(&["deploy", "--image", "v2", "--smoke", "  "])
        .code(2);
    assert!(
        out.stderr
            .contains("--smoke: a smoke test command is empty"),
        "{}",
        out.stderr
    );
    let out = fx
        .bgcloud(&[
            "deploy",
            "--image",
            "v2",
            "--smoke",
            "true",
            "--smoke-timeout",
            "soon",
        ])
        .code(2);
    out.assert_stderr_has("--smoke-timeout");
    fx.write_config(&fx.stack.config_toml("[backend.preview]\nheader = \"Host\""));
    let out = fx.bgcloud(&["deploy", "--image", "v2"]).code(2);
    assert!(
        out.stderr.contains("[backend.preview].header"),
        "{}",
        out.stderr
    );
    assert!(fx.requests().is_empty(), "{:?}", fx.requests());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_priority_taken_between_the_read_and_the_write_is_planned_again() {
    let fx = Fixture::v1_v2_with(PREVIEW).await;
    // Another rule takes the planned priority just before bgcloud's CreateRule: the ALB
    // answers PriorityInUse, and bgcloud reads the listener again instead of failing.
    fx.fault(serde_json::json!({
        "action": "CreateRule", "status": 400, "code": "PriorityInUse", "times": 1,
    }));
    let out = fx
        .bgcloud(&["deploy", "--image", "v2", "--smoke", "true"])
        .ok();
    assert!(
        out.stdout.contains("smoke tests: 1 passed"),
        "{}",
        out.stdout
    );
    // The guard's CreateRule met PriorityInUse; planned again: the guard, then the rule.
    assert_eq!(fx.count("CreateRule"), 3, "{:?}", fx.requests());
    assert_eq!(rules(&fx).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_a_smoke_test_stops_it_and_everything_it_started() {
    let fx = Fixture::v1_v2_with("").await;
    let started = fx.dir.path().join("started");
    let marker = format!("32.{}", std::process::id());
    let child = fx
        .bgcloud(&[
            "deploy",
            "--image",
            "v2",
            "--smoke",
            &format!(
                "sh -c \"trap '' TERM; sleep {marker}\" & touch {}; sleep {marker}",
                started.display()
            ),
        ])
        .spawn();
    let t = std::time::Instant::now();
    while !started.exists() {
        assert!(t.elapsed().as_secs() < 30, "the smoke test never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    crate::support::signal(&child, "INT");
    let (code, _, stderr) = crate::support::finish(child);
    assert_eq!(code, 130, "{stderr}");
    assert!(
        !running(&marker),
        "the smoke test's processes outlived bgcloud"
    );
    assert_eq!(fx.weights().await, Weights::from_raw(100, 0).unwrap());
    assert!(!fx.lock_exists().await, "lock released");
}

/// A path-pattern condition.
fn path_condition(path: &str) -> RuleCondition {
    RuleCondition::builder()
        .field("path-pattern")
        .path_pattern_config(
            aws_sdk_elasticloadbalancingv2::types::PathPatternConditionConfig::builder()
                .values(path)
                .build(),
        )
        .build()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_load_balancer_at_its_rule_quota_is_refused_before_the_launch() {
    let fx = Fixture::v1_v2_with(PREVIEW).await;
    let blue = fx.stack.blue_target_group_arn.clone();
    for p in 1..=100 {
        // Not add_rule: under a loaded emulator the SDK may retry a CreateRule whose first
        // attempt landed, and the retry then meets its own rule (PriorityInUse).
        let made = fx
            .aws
            .elb
            .create_rule()
            .listener_arn(&fx.stack.listener_arn)
            .priority(p)
            .conditions(path_condition(&format!("/r{p}/*")))
            .actions(crate::support::stack::forward(&[(&blue, 1)]))
            .send()
            .await;
        if let Err(e) = made {
            let code = e.as_service_error().and_then(|s| s.meta().code());
            assert_eq!(code, Some("PriorityInUse"), "{e:?}");
        }
    }
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(2);
    out.assert_stderr_has("has 100 rules, its quota (rules-per-application-load-balancer: 100)");
    assert_eq!(fx.count("SendCommand"), 0, "refused before the launch");
    assert_eq!(fx.count("DescribeAccountLimits"), 1);
    fx.assert_no_writes_but_lock();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preview_rule_that_would_hold_too_many_condition_values_is_refused_before_the_launch() {
    let fx = Fixture::v1_v2_with(PREVIEW).await;
    fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    // The preview rule, not its guard: the one that forwards.
    let rule = fx
        .listener_rules()
        .await
        .into_iter()
        .find(|r| r.is_default() != Some(true) && r.actions()[0].target_group_arn().is_some())
        .unwrap();
    // Someone replaced its header condition with host and path conditions: five values.
    fx.aws
        .elb
        .modify_rule()
        .rule_arn(rule.rule_arn().unwrap())
        .conditions(
            RuleCondition::builder()
                .field("host-header")
                .host_header_config(
                    aws_sdk_elasticloadbalancingv2::types::HostHeaderConditionConfig::builder()
                        .values("a.example.com")
                        .values("b.example.com")
                        .build(),
                )
                .build(),
        )
        .conditions(
            RuleCondition::builder()
                .field("path-pattern")
                .path_pattern_config(
                    aws_sdk_elasticloadbalancingv2::types::PathPatternConditionConfig::builder()
                        .values("/a/*")
                        .values("/b/*")
                        .values("/c/*")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let launched = fx.count("SendCommand");
    let out = fx.bgcloud(&["deploy", "--image", "v2"]).code(2);
    out.assert_stderr_has(
        "would hold 6 condition values (the 5 added to it and bgcloud's header value)",
    );
    assert_eq!(
        fx.count("SendCommand"),
        launched,
        "refused before the launch"
    );
    fx.assert_weights(0, 100).await;
}

/// The preview rule reads back as written before the load balancer's nodes route by it: the
/// smoke tests start only once the preview URL, asked with the header on the health check's
/// path, answers past bgcloud's guard rule three times in a row; a guard that never gives way
/// stops the deploy with traffic untouched and the smoke test not run.
#[tokio::test(flavor = "multi_thread")]
async fn smoke_tests_wait_until_the_preview_url_answers_past_the_guard() {
    use crate::support::receiver::Receiver;
    use bgcloud::backend::preview::GUARD_BODY;
    let guard = (503, "", GUARD_BODY);
    let alb = Receiver::scripted(vec![guard, guard, (200, "", "ok"), guard, (200, "", "ok")]);
    let fx = Fixture::v1_v2().await;
    let config = |url: &str| {
        fx.stack
            .config_toml(&format!("{PREVIEW}\nurl = \"{url}\""))
            .replace("readback_timeout = \"3s\"", "readback_timeout = \"1s\"")
    };
    fx.write_config(&config(&alb.base));
    let dir = fx.dir.path().display().to_string();
    let out = fx
        .bgcloud(&[
            "deploy",
            "--image",
            "v2",
            "--smoke",
            &format!("touch {dir}/smoked"),
        ])
        .ok();
    // guard, guard, past, guard, then past three times: seven requests before the smoke test.
    let asked = alb.received();
    assert_eq!(asked.len(), 7, "{asked:?}");
    assert!(
        asked.iter().all(|(path, _)| path == "/healthz"),
        "{asked:?}"
    );
    assert!(
        out.stderr.contains("the preview route reaches green (3 answers in a row past the guard, the last 200; 3 earlier requests met the guard)"),
        "{}",
        out.stderr
    );
    assert!(fx.dir.path().join("smoked").exists());
    fx.assert_weights(0, 100).await;

    // The rule never reaches the nodes: 4 × readback_timeout, then exit 1, nothing moved.
    std::fs::remove_file(fx.dir.path().join("smoked")).unwrap();
    let stuck = Receiver::start_with_body(503, GUARD_BODY);
    fx.write_config(&config(&stuck.base));
    let out = fx
        .bgcloud(&[
            "deploy",
            "--image",
            "v1",
            "--smoke",
            &format!("touch {dir}/smoked"),
        ])
        .code(1);
    assert!(
        out.stderr.contains("the preview route did not reach blue within 4s: requests with X-Bgcloud-Preview: blue still met bgcloud's guard rule (503)")
            && out.stderr.contains("Traffic untouched: green keeps 100 %"),
        "{}",
        out.stderr
    );
    assert!(!fx.dir.path().join("smoked").exists(), "the smoke test ran");
    assert!(stuck.received().len() >= 3, "{:?}", stuck.received());
    fx.assert_weights(0, 100).await;
}

const SWALLOWED_MODIFY_RULE: &str = "<ModifyRuleResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><ModifyRuleResult><Rules/></ModifyRuleResult><ResponseMetadata><RequestId>swallowed</RequestId></ResponseMetadata></ModifyRuleResponse>";

/// The preview rule cannot be created, or a change to it does not take: the deploy stops before
/// any traffic moves, with the record as it was and no desired state for the colour.
#[tokio::test(flavor = "multi_thread")]
async fn a_preview_rule_that_cannot_be_pointed_or_read_back_stops_the_deploy() {
    let fx = Fixture::v1_v2_with(PREVIEW).await;
    // CreateRule fails past every retry.
    fx.fault(
        json!({"action": "CreateRule", "status": 500, "code": "InternalFailure", "times": 20}),
    );
    let out = fx
        .bgcloud(&["deploy", "--image", "v2", "--max-attempts", "2"])
        .code(1);
    out.assert_stderr_has("InternalFailure");
    assert_eq!(fx.count("ModifyListener"), 0, "{:?}", fx.requests());
    fx.assert_weights(100, 0).await;
    assert!(fx.record().await.is_null());
    assert!(fx.state_object("desired/green.sh").await.is_none());
    fx.clear_faults();

    // The rule exists (pointed at green by a good deploy); the next deploy's ModifyRule is
    // acknowledged but not applied: the read-back shows the rule as it was.
    fx.bgcloud(&["deploy", "--image", "v2"]).ok();
    let record = fx.record().await;
    let mark = fx.mark();
    fx.fault(
        json!({"action": "ModifyRule", "swallow": true, "body": SWALLOWED_MODIFY_RULE,
                    "times": 1}),
    );
    let out = fx.bgcloud(&["deploy", "--image", "v1"]).code(1);
    assert!(
        out.stderr
            .contains("still reads X-Bgcloud-Preview: green → green at priority")
            && out
                .stderr
                .contains("after bgcloud set X-Bgcloud-Preview: blue → blue")
            && out.stderr.contains("no user traffic was moved"),
        "{}",
        out.stderr
    );
    let writes: Vec<String> = fx.requests()[mark..]
        .iter()
        .map(|(_, a)| a.clone())
        .filter(|a| a == "ModifyListener" || a.ends_with("/record.json") && a.starts_with("PUT"))
        .collect();
    assert_eq!(
        writes,
        Vec::<String>::new(),
        "no traffic change, no record write"
    );
    fx.assert_weights(0, 100).await;
    assert_eq!(fx.record().await, record);
}

/// A configured header value is made per colour (`<value>-<colour>`): a rule still propagating
/// the previous colour's value can never match a request meant for the other colour.
#[tokio::test(flavor = "multi_thread")]
async fn a_configured_preview_value_is_made_per_colour() {
    let fx = Fixture::v1_v2_with(&format!("{PREVIEW}\nvalue = \"qa-7f3\"")).await;
    let value_of_rule = |routes: &[(String, Option<String>, Option<String>)], arn: &str| {
        routes
            .iter()
            .find(|(_, to, _)| to.as_deref() == Some(arn))
            .and_then(|(_, _, value)| value.clone())
    };
    let dir = fx.dir.path().display().to_string();
    for (image, color, arn) in [
        ("v2", "green", fx.stack.green_target_group_arn.clone()),
        ("v1", "blue", fx.stack.blue_target_group_arn.clone()),
    ] {
        fx.bgcloud(&[
            "deploy",
            "--image",
            image,
            "--smoke",
            &format!("echo \"$BGCLOUD_PREVIEW_HEADER\" > {dir}/header.txt"),
        ])
        .ok();
        let routes: Vec<_> = rules(&fx).await.iter().map(summary).collect();
        assert_eq!(
            value_of_rule(&routes, &arn).as_deref(),
            Some(format!("qa-7f3-{color}").as_str()),
            "{routes:?}"
        );
        let told = std::fs::read_to_string(fx.dir.path().join("header.txt")).unwrap();
        assert_eq!(told.trim(), format!("X-Bgcloud-Preview: qa-7f3-{color}"));
    }
}
