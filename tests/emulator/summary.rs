//! The GitHub Actions step summary: a changing command appends what it did (with the traffic
//! before and after) or why it failed; read-only commands and dry runs append nothing; a
//! summary that cannot be written is a warning, never a failed release.

use crate::support::Fixture;

#[tokio::test(flavor = "multi_thread")]
async fn releases_and_failures_are_summarised_read_only_commands_are_not() {
    let fx = Fixture::v1_v2().await;
    let summary = fx.dir.path().join("step-summary.md");
    let path = summary.to_str().unwrap();
    let run = |args: &[&str]| fx.bgcloud(args).env("GITHUB_STEP_SUMMARY", path);

    run(&["status"]).run();
    run(&["deploy", "--image", "v1", "--dry-run"]).run();
    run(&["shift", "--to", "green", "--dry-run"]).ok();
    run(&["rollback", "--dry-run"]).ok();
    assert!(
        !summary.exists(),
        "read-only commands and dry runs write nothing"
    );

    run(&["deploy", "--image", "v1"]).ok();
    run(&["deploy", "--image", "nope"]).code(2);
    run(&["rollback"]).ok();
    let md = std::fs::read_to_string(&summary).unwrap();
    let deploy = md.find("### bgcloud deploy: done").expect("the deploy");
    let failed = md
        .find("### bgcloud deploy: failed (exit 2)")
        .expect("the failure");
    let rollback = md.find("### bgcloud rollback: done").expect("the rollback");
    assert!(deploy < failed && failed < rollback, "in order: {md}");
    assert!(
        md[deploy..failed].contains("| before | 100 % | 0 % |")
            && md[deploy..failed].contains("| after | 0 % | 100 % |"),
        "{md}"
    );
    assert!(
        md[deploy..failed].contains(&fx.stack.images["v1"][..19]),
        "{md}"
    );
    assert!(md[failed..rollback].contains("nope"), "the reason: {md}");
    assert!(md[rollback..].contains("| after | 100 % | 0 % |"), "{md}");

    // A summary that cannot be written: a warning, and the release still succeeds.
    let out = fx
        .bgcloud(&["shift", "--to", "green"])
        .env("GITHUB_STEP_SUMMARY", "/nonexistent-dir/summary.md")
        .ok();
    assert!(
        out.stderr.contains("could not append to the step summary"),
        "{}",
        out.stderr
    );
    assert_eq!(
        fx.weights().await,
        bgcloud::model::weights::Weights {
            blue: 0,
            green: 100
        }
    );
}
