//! A frontend rollback: CloudFront's origin back to the previous release (or a named one) in one
//! update, recorded, then the release's unhashed paths invalidated. Nothing is uploaded.

use crate::aws::cloudfront;
use crate::aws::s3::Bucket;
use crate::config::FrontendConfig;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::frontend::manifest;
use crate::frontend::release::{SiteDeployed, MAX_INVALIDATION_PATHS};
use crate::frontend::site::{self, Manifest};
use crate::state::record::{now, FrontendRecord, SiteRelease};

/// What a rollback reads first, all at once and while the lock is taken: the distribution (with
/// its ETag, so the switch needs no second read: anyone's change since fails its `If-Match` and
/// the switch reads again — and every release or rollback that changes the record switches the
/// distribution too), the record, and the site bucket's region.
pub struct Ahead {
    live: Option<String>,
    snapshot: cloudfront::Snapshot,
    record: FrontendRecord,
    web: Bucket,
}

pub async fn read_ahead(ctx: &Context, fe: &FrontendConfig) -> Result<Ahead> {
    let store = ctx.store();
    let ((site, snapshot), record, web) = tokio::try_join!(
        cloudfront::snapshot(&ctx.clients.cloudfront, fe),
        store.read(),
        ctx.clients.buckets.get(&fe.bucket),
    )?;
    Ok(Ahead {
        live: site.live,
        snapshot,
        record: record.unwrap_or_default().frontend,
        web,
    })
}

/// Which release a rollback goes to, checked, and what to invalidate for it.
struct Decision {
    target: String,
    manifest: Option<Manifest>,
    paths: Vec<String>,
}

/// `to`, else the previous release on record per `ahead`; refused when it is live already or
/// not in the bucket. Its manifest says what to invalidate (all of it without one).
async fn decide(
    ctx: &Context,
    fe: &FrontendConfig,
    to: Option<&str>,
    ahead: &Ahead,
) -> Result<Decision> {
    let live = ahead.live.as_ref();
    let target = match to {
        Some(id) => id.to_string(),
        None => ahead.record.previous.clone().filter(|p| Some(p) != live).ok_or_else(|| {
            Error::refused("no previous frontend release on record: name one with --to ID (see `bgcloud frontend releases`)")
        })?,
    };
    if Some(&target) == live {
        return Err(Error::refused(format!(
            "release {target} is already live: nothing to roll back"
        )));
    }
    // Together: the release is there, and what it holds (for the invalidation).
    let prefix = site::release_prefix(&target);
    let (exists, manifest) =
        tokio::try_join!(ahead.web.has_any(&prefix), manifest::load(ctx, &target))?;
    if !exists {
        return Err(Error::refused(format!(
            "release {target} does not exist in s3://{}/releases/: see `bgcloud frontend releases`",
            fe.bucket
        )));
    }
    let paths = match &manifest {
        Some(m) => site::invalidation_paths(&m.files, MAX_INVALIDATION_PATHS),
        None => vec!["/*".to_string()],
    };
    Ok(Decision {
        target,
        manifest,
        paths,
    })
}

/// Switches to `to`, else the previous release on record; waits for the invalidation unless
/// `no_wait`. With `dry_run`, makes the same checks and says what it would switch and
/// invalidate. When the distribution changed since `ahead` was read, reads again and decides
/// again (another release may have changed what "previous" is), at most 5 times.
pub async fn rollback(
    ctx: &Context,
    fe: &FrontendConfig,
    to: Option<&str>,
    no_wait: bool,
    dry_run: bool,
    mut ahead: Ahead,
) -> Result<SiteDeployed> {
    let mut attempt = 1;
    // The record read while the lock was taken may predate the record write of a release that
    // had already switched the distribution: read again, now that the lock is held.
    if !dry_run && ahead.record.current != ahead.live {
        attempt += 1;
        ahead = read_ahead(ctx, fe).await?;
    }
    let (
        Decision {
            target,
            manifest,
            paths,
        },
        live,
        record,
    ) = loop {
        let decision = decide(ctx, fe, to, &ahead).await?;
        let Ahead {
            live,
            snapshot,
            record,
            ..
        } = ahead;
        if dry_run {
            let mut result = SiteDeployed::new(ctx, "rollback", &decision.target, live);
            result.dry_run = true;
            result.files = decision.manifest.as_ref().map_or(0, |m| m.files.len());
            result.invalidation_paths = decision.paths;
            return Ok(result);
        }
        tracing::info!(
            "switching distribution {} back to /releases/{}",
            fe.distribution_id,
            decision.target
        );
        let cf = &ctx.clients.cloudfront;
        if cloudfront::switch_unchanged_since(cf, fe, &decision.target, snapshot).await? {
            break (decision, live, record);
        }
        if attempt == 5 {
            return Err(cloudfront::kept_changing(fe));
        }
        attempt += 1;
        tracing::info!(
            "distribution {} changed since it was read; reading it and the record again",
            fe.distribution_id
        );
        ahead = read_ahead(ctx, fe).await?;
    };
    let invalidation = cloudfront::invalidate(
        &ctx.clients.cloudfront,
        fe,
        &paths,
        &format!("rollback-{target}"),
    )
    .await?;
    let info = record
        .releases
        .iter()
        .find(|r| r.id == target)
        .cloned()
        .unwrap_or(SiteRelease {
            id: target.clone(),
            files: manifest.as_ref().map_or(0, |m| m.files.len()),
            uploaded: 0,
            copied: 0,
            bytes_uploaded: 0,
            bytes_skipped: 0,
            at: now(),
            by: ctx.who.clone(),
            previous: None,
        });
    let event = SiteRelease {
        at: now(),
        ..info.clone()
    };
    if let Err(e) = ctx
        .store()
        .update(None, |r| {
            r.push_site("frontend-rollback", event.clone(), &ctx.who)
        })
        .await
    {
        tracing::warn!("release {target} is live again, but recording it failed: {e}");
    }
    let status = if no_wait {
        None
    } else {
        Some(cloudfront::wait(&ctx.clients.cloudfront, fe, &invalidation).await?)
    };
    let mut result = SiteDeployed::new(ctx, "rollback", &target, live);
    result.files = info.files;
    result.invalidation_paths = paths;
    result.invalidation_id = Some(invalidation);
    result.distribution_status = status;
    Ok(result)
}
