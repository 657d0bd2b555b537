//! The state and site buckets as S3 really serves them: in another region than the config's,
//! behind a role that cannot list the bucket, and under a lock another run took over.

use crate::support::Fixture;

/// How many requests of `action` bgcloud made since `from` (index into the request log).
fn count(fx: &Fixture, from: usize, action: &str) -> usize {
    fx.requests()[from..]
        .iter()
        .filter(|(_, a)| a == action)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn buckets_in_another_region_than_the_config_are_reached_in_their_own() {
    // The config says us-east-1; both buckets are in eu-west-1, where S3 redirects (301) any
    // request signed for another region.
    let fx = Fixture::with(|s| s.bucket_region = "eu-west-1".to_string()).await;
    let (state, web) = (&fx.stack.state_bucket, &fx.stack.site_bucket);
    let (out, before) = fx.release_v1_then_v2();
    assert_eq!(
        (out["uploaded"].as_u64(), out["copied"].as_u64()),
        (Some(2), Some(6))
    );
    // Each bucket's region is found once per run, not per request.
    assert_eq!(count(&fx, before, &format!("HEAD /{state}/")), 1);
    assert_eq!(count(&fx, before, &format!("HEAD /{web}/")), 1);

    let head = fx
        .s3()
        .head_object()
        .bucket(web)
        .key("releases/r2/index.html")
        .send()
        .await
        .expect("r2's index.html in the eu-west-1 bucket");
    assert_eq!(head.content_type(), Some("text/html; charset=utf-8"));
    assert_eq!(fx.record().await["frontend"]["current"], "r2");
    let releases = fx.bgcloud(&["frontend", "releases"]).json();
    assert_eq!(releases["current"], "r2");
    let history = fx.bgcloud(&["history"]).json();
    assert_eq!(history["entries"][0]["release"], "r2");
    let lock = fx.bgcloud(&["lock", "status"]).json();
    assert_eq!(lock["held"], false, "the lock was released: {lock}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_that_does_not_exist_is_named() {
    let fx = Fixture::new().await;
    let config = std::fs::read_to_string(&fx.config).unwrap().replace(
        &format!("bucket = \"{}\"", fx.stack.state_bucket),
        "bucket = \"no-such-state-bucket\"",
    );
    fx.write_config(&config);
    let out = fx.bgcloud(&["history"]).code(2);
    assert!(
        out.stderr
            .contains("S3 bucket no-such-state-bucket does not exist"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_key_read_without_list_bucket_names_the_permission() {
    // Without s3:ListBucket, S3 answers a GetObject of a key that does not exist with 403
    // AccessDenied, not 404 NoSuchKey: a first run's missing record looks like this.
    let fx = Fixture::new().await;
    let key = format!("bgcloud/{}/record.json", fx.stack.spec.name);
    crate::support::control(
        "faults",
        serde_json::json!({
            "access_key": fx.access_key,
            "action": format!("GET /{}/{key}", fx.stack.state_bucket),
            "status": 403,
            "code": "AccessDenied",
        }),
    );
    let out = fx.bgcloud(&["history"]).code(1);
    let location = format!("s3://{}/{key}", fx.stack.state_bucket);
    for needed in [
        location.as_str(),
        "no access, or the object does not exist",
        &format!("s3:ListBucket on arn:aws:s3:::{}", fx.stack.state_bucket),
        "s3:GetObject",
    ] {
        assert!(out.stderr.contains(needed), "{needed:?} in {}", out.stderr);
    }
    assert!(
        !out.stderr.contains("does the bucket exist"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_taken_over_meanwhile_is_left_to_its_new_holder() {
    let fx = Fixture::new().await;
    let key = format!("bgcloud/{}/lock.json", fx.stack.spec.name);
    // Another run takes the lock over just before this run gives it back (as one would once
    // the lock had expired under a run that was still working).
    let theirs = serde_json::json!({
        "owner": "other-run",
        "reason": "frontend deploy r9",
        "started_at": "2026-01-01T00:00:00Z",
        "expires_at": "2099-01-01T00:00:00Z",
        "token": "theirs",
    });
    crate::support::control(
        "s3-put-before",
        serde_json::json!({
            "access_key": fx.access_key,
            "action": format!("DELETE /{}/{key}", fx.stack.state_bucket),
            "bucket": fx.stack.state_bucket,
            "key": key,
            "body": theirs.to_string(),
        }),
    );
    let out = fx
        .bgcloud(&[
            "frontend",
            "deploy",
            &fx.site("1"),
            "--release-id",
            "r1",
            "--no-wait",
        ])
        .ok();
    out.assert_stderr_has("no longer ours");
    let lock = fx.bgcloud(&["lock", "status"]).json();
    assert_eq!(lock["lock"]["owner"], "other-run", "{lock}");
}
