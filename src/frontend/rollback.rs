//! A frontend rollback: CloudFront's origin back to the previous release (or a named one) in one
//! update, recorded, then the release's unhashed paths invalidated. Nothing is uploaded.

use crate::aws::cloudfront;
use crate::config::FrontendConfig;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::frontend::manifest;
use crate::frontend::release::{SiteDeployed, MAX_INVALIDATION_PATHS};
use crate::frontend::site;
use crate::state::record::{now, SiteRelease};

/// Switches to `to`, else the previous release on record; waits for the invalidation unless
/// `no_wait`. With `dry_run`, makes the same checks and says what it would switch and
/// invalidate.
pub async fn rollback(
    ctx: &Context,
    fe: &FrontendConfig,
    to: Option<&str>,
    no_wait: bool,
    dry_run: bool,
) -> Result<SiteDeployed> {
    let live = cloudfront::inspect(&ctx.clients.cloudfront, fe).await?.live;
    let record = ctx.store().read().await?.unwrap_or_default().frontend;
    let target = match to {
        Some(id) => id.to_string(),
        None => record.previous.clone().filter(|p| Some(p) != live.as_ref()).ok_or_else(|| {
            Error::refused("no previous frontend release on record: name one with --to ID (see `bgcloud frontend releases`)")
        })?,
    };
    if Some(&target) == live.as_ref() {
        return Err(Error::refused(format!(
            "release {target} is already live: nothing to roll back"
        )));
    }
    let web = ctx.clients.buckets.get(&fe.bucket).await?;
    if !web.has_any(&site::release_prefix(&target)).await? {
        return Err(Error::refused(format!(
            "release {target} does not exist in s3://{}/releases/: see `bgcloud frontend releases`",
            fe.bucket
        )));
    }
    let manifest = manifest::load(ctx, &target).await?;
    let paths = match &manifest {
        Some(m) => site::invalidation_paths(&m.files, MAX_INVALIDATION_PATHS),
        None => vec!["/*".to_string()],
    };
    if dry_run {
        let mut result = SiteDeployed::new(ctx, "rollback", &target, live);
        result.dry_run = true;
        result.files = manifest.as_ref().map_or(0, |m| m.files.len());
        result.invalidation_paths = paths;
        return Ok(result);
    }
    tracing::info!(
        "switching distribution {} back to /releases/{target}",
        fe.distribution_id
    );
    cloudfront::switch(&ctx.clients.cloudfront, fe, &target).await?;
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
