//! The LocalStack lane (`scripts/test-localstack`): bgcloud with S3 on LocalStack Community
//! (localstack-core, host mode) and every other service on the emulator, as a user pointing
//! `AWS_ENDPOINT_URL_S3` at LocalStack would run it. LocalStack answers a conditional
//! DeleteObject (`If-Match`, how the lock is released) with 501 NotImplemented: these runs go
//! through bgcloud's fallback every time. State is read back from LocalStack's S3 with the
//! test's own client; the emulator's log shows that bgcloud sent it no S3 request at all.

use crate::support::{w, Fixture};

/// The test only means something with S3 elsewhere.
fn localstack() -> &'static str {
    crate::support::emulator::s3_endpoint()
        .expect("BGCLOUD_TEST_S3_ENDPOINT is not set: run scripts/test-localstack")
}

/// What bgcloud sent the emulator's S3 (nothing, when S3 is on LocalStack).
fn s3_on_the_emulator(fx: &Fixture) -> Vec<String> {
    fx.requests()
        .into_iter()
        .filter(|(service, _)| service == "s3")
        .map(|(_, action)| action)
        .collect()
}

/// The lock is back: no object, and `lock status` says so.
async fn assert_lock_free(fx: &Fixture, after: &str) {
    assert!(
        !fx.lock_exists().await,
        "the lock object is left after {after}"
    );
    let status = fx.bgcloud(&["lock", "status"]).json();
    assert_eq!(status["held"], false, "after {after}: {status}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs LocalStack: run scripts/test-localstack"]
async fn deploy_canary_promote_and_rollback_with_the_state_on_localstack() {
    localstack();
    let fx = Fixture::v1_v2().await;

    fx.bgcloud(&["deploy", "--image", "v1"]).ok();
    fx.assert_weights(0, 100).await;
    assert_lock_free(&fx, "the first deploy").await;

    let canary = fx
        .bgcloud(&["deploy", "--image", "v2", "--canary", "20"])
        .json();
    assert_eq!(canary["color"], "blue", "{canary}");
    fx.assert_weights(20, 80).await;
    assert_lock_free(&fx, "the canary").await;
    // A second deploy is refused while the canary is in progress (the record, read from
    // LocalStack, says so), and leaves the lock free too.
    fx.bgcloud(&["deploy", "--image", "v1"]).code(2);
    assert_lock_free(&fx, "a refused deploy").await;

    fx.bgcloud(&["promote"]).ok();
    fx.assert_weights(100, 0).await;
    assert_lock_free(&fx, "promote").await;

    fx.bgcloud(&["rollback"]).ok();
    fx.assert_weights(0, 100).await;
    assert_lock_free(&fx, "rollback").await;

    // The record in LocalStack's bucket: every step, in order, traffic back on green.
    let record = fx.record().await;
    let history = record["history"].as_array().expect("a history");
    assert_eq!(history.len(), 4, "{record}");
    assert_eq!(fx.weights().await, w(0, 100));
    for color in ["blue", "green"] {
        let (script, _) = fx
            .state_object(&format!("desired/{color}.sh"))
            .await
            .unwrap_or_else(|| panic!("{color}'s desired state is not in LocalStack"));
        let tag = if color == "blue" { "v2" } else { "v1" };
        assert!(
            String::from_utf8_lossy(&script).contains(&fx.stack.images[tag]),
            "{color} runs {tag}"
        );
    }
    assert_eq!(s3_on_the_emulator(&fx), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs LocalStack: run scripts/test-localstack"]
async fn of_deploys_started_together_exactly_one_wins_the_lock() {
    localstack();
    let fx = Fixture::v1_v2().await;
    // The winner waits in its health gate until the test lets it go, so every other deploy
    // meets its lock.
    fx.set_target_states(
        &fx.stack.green_target_group_arn,
        serde_json::json!([{"state": "initial"}]),
    );
    let mut runs: Vec<_> = (0..4)
        .map(|_| Some(fx.bgcloud(&["deploy", "--image", "v1"]).spawn()))
        .collect();
    fx.wait_for_request("a health wait", |a| a == "DescribeTargetHealth");
    // The gate is let go only once the three others have ended: none can find the lock free
    // after the winner's release.
    let mut outcomes: Vec<(i32, String)> = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while outcomes.len() < 3 {
        for run in runs.iter_mut() {
            if run
                .as_mut()
                .is_some_and(|c| c.try_wait().unwrap().is_some())
            {
                let (code, _, stderr) = crate::support::run::finish(run.take().unwrap());
                outcomes.push((code, stderr));
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "three deploys still running beside the one in its gate: {outcomes:#?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    fx.set_target_states(&fx.stack.green_target_group_arn, serde_json::json!([]));
    for run in runs.into_iter().flatten() {
        let (code, _, stderr) = crate::support::run::finish(run);
        outcomes.push((code, stderr));
    }
    let codes: Vec<i32> = outcomes.iter().map(|(c, _)| *c).collect();
    println!("localstack: four deploys at once exited {codes:?}");
    assert_eq!(
        codes.iter().filter(|c| **c == 0).count(),
        1,
        "exactly one deploy wins: {outcomes:#?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == 3).count(),
        3,
        "the others meet its lock (exit 3): {outcomes:#?}"
    );
    fx.assert_weights(0, 100).await;
    let history = fx.record().await["history"].as_array().unwrap().len();
    assert_eq!(history, 1, "only the winner is recorded");
    assert_lock_free(&fx, "the winner").await;
    assert_eq!(s3_on_the_emulator(&fx), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs LocalStack: run scripts/test-localstack"]
async fn frontend_releases_rollback_and_prune_with_the_buckets_on_localstack() {
    localstack();
    let fx = Fixture::new().await;
    for (version, id) in [("1", "r1"), ("2", "r2"), ("3", "r3")] {
        let out = fx.release(version, id);
        assert_eq!(out["release_id"], id, "{out}");
    }
    let releases = fx.bgcloud(&["frontend", "releases"]).json();
    assert_eq!(releases["current"], "r3", "{releases}");
    fx.bgcloud(&["frontend", "rollback", "--to", "r1"]).ok();
    assert_eq!(
        fx.bgcloud(&["frontend", "releases"]).json()["current"],
        "r1"
    );
    // The distribution (on the emulator) serves r1 from the bucket (on LocalStack).
    assert_eq!(crate::frontend::origin_path(&fx).await, "/releases/r1");

    // Live r1, previous r3, newest r3: prune --keep 1 deletes r2 only.
    let pruned = fx.bgcloud(&["frontend", "prune", "--keep", "1"]).json();
    assert_eq!(pruned["deleted"], serde_json::json!(["r2"]), "{pruned}");
    let site: Vec<String> = fx
        .objects(&fx.stack.site_bucket, "releases/")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        !site.iter().any(|k| k.starts_with("releases/r2/")),
        "{site:?}"
    );
    for kept in ["releases/r1/index.html", "releases/r3/index.html"] {
        assert!(site.contains(&kept.to_string()), "{kept} missing: {site:?}");
    }
    assert_eq!(fx.record().await["frontend"]["current"], "r1");
    assert_lock_free(&fx, "the frontend commands").await;
    assert_eq!(s3_on_the_emulator(&fx), Vec::<String>::new());
}
