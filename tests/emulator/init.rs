//! `bgcloud init`: a config written from what the account has — the load balancer's listener,
//! its two target groups, the instances registered in them, the repository, the distribution's
//! bucket — that `deploy --dry-run` accepts as it is; what is missing (a second target group) is
//! named and nothing is written. It changes nothing in AWS.

use crate::support::stack::forward;
use crate::support::Fixture;

fn init_args<'a>(fx: &'a Fixture, lb: &'a str) -> Vec<&'a str> {
    vec![
        "init",
        "--load-balancer",
        lb,
        "--state-bucket",
        &fx.stack.state_bucket,
        "--repository",
        &fx.stack.repository,
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn init_writes_a_config_from_the_account_that_a_deploy_accepts() {
    let fx = Fixture::v1_v2().await;
    let lb = format!("{}-alb", fx.stack.spec.name);
    let mark = fx.mark();
    // An existing file is not overwritten without --force.
    let kept = fx.bgcloud(&init_args(&fx, &lb)).code(2);
    kept.assert_stderr_has("exists already");
    let mut args = init_args(&fx, &lb);
    args.extend(["--distribution", &fx.stack.distribution_id, "--force"]);
    let out = fx.bgcloud(&args).ok();
    assert!(
        out.stdout.contains("nothing was changed in AWS"),
        "{}",
        out.stdout
    );
    fx.assert_no_writes_but_lock_since(mark);
    let text = std::fs::read_to_string(&fx.config).unwrap();
    let config: toml::Value = toml::from_str(&text).unwrap();
    let b = &config["backend"];
    assert_eq!(
        config["app"].as_str(),
        Some(fx.stack.spec.name.as_str()),
        "{text}"
    );
    assert_eq!(
        b["listener_arn"].as_str(),
        Some(fx.stack.listener_arn.as_str())
    );
    assert_eq!(
        b["blue_target_group_arn"].as_str(),
        Some(fx.stack.blue_target_group_arn.as_str())
    );
    assert_eq!(
        b["green_target_group_arn"].as_str(),
        Some(fx.stack.green_target_group_arn.as_str())
    );
    assert_eq!(
        (b["blue_port"].as_integer(), b["green_port"].as_integer()),
        (Some(8081), Some(8082))
    );
    assert_eq!(
        b["instance_tags"]["bgcloud:app"].as_str(),
        Some(fx.stack.spec.name.as_str()),
        "{text}"
    );
    assert_eq!(
        config["frontend"]["bucket"].as_str(),
        Some(fx.stack.site_bucket.as_str())
    );
    assert!(text.contains("CHECK"), "{text}");

    // As written, the config drives a deploy (plan) and a frontend one.
    let plan = fx.bgcloud(&["deploy", "--image", "v1", "--dry-run"]).ok();
    assert!(plan.stdout.contains("green"), "{}", plan.stdout);
    let site = fx.site("1");
    fx.bgcloud(&["frontend", "deploy", &site, "--dry-run"]).ok();
    fx.assert_no_writes_but_lock_since(mark);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listener_with_one_target_group_is_named_and_nothing_is_written() {
    let fx = Fixture::new().await;
    fx.set_actions(vec![forward(&[(&fx.stack.blue_target_group_arn, 1)])])
        .await;
    let before = std::fs::read_to_string(&fx.config).unwrap();
    let lb = format!("{}-alb", fx.stack.spec.name);
    let mut args = init_args(&fx, &lb);
    args.push("--force");
    let refused = fx.bgcloud(&args).code(2);
    refused.assert_stderr_has("forwards to one target group");
    refused.assert_stderr_has("bgcloud needs a second");
    assert_eq!(std::fs::read_to_string(&fx.config).unwrap(), before);
    // Unknown load balancer: named, with how to list them.
    let refused = fx
        .bgcloud(&[
            "init",
            "--load-balancer",
            "no-such-alb",
            "--state-bucket",
            "b",
            "--force",
        ])
        .code(2);
    refused.assert_stderr_has("\"no-such-alb\" does not exist");
}
