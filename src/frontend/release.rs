//! A frontend release: the build's files written under `releases/<id>/` (hashed assets to the
//! shared store when the distribution has one; unchanged files copied server-side; HTML last),
//! its manifest saved, CloudFront switched to it in one update, recorded, then invalidated.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::aws::cloudfront;
use crate::aws::s3::{transfer, Bucket};
use crate::config::FrontendConfig;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::frontend::manifest;
use crate::frontend::site::{self, SiteFile, Step};
use crate::output::Progress;
use crate::state::record::{now, SiteRelease};

/// Invalidate the unhashed paths one by one up to this many; past it, `/*`.
pub const MAX_INVALIDATION_PATHS: usize = 10;

#[derive(Debug, Serialize)]
pub struct SiteDeployed {
    pub app: String,
    /// "deploy" or "rollback".
    pub action: &'static str,
    pub release_id: String,
    pub previous: Option<String>,
    pub dry_run: bool,
    /// True when the tree equals the live release: nothing was written.
    pub unchanged: bool,
    pub files: usize,
    pub uploaded: usize,
    pub copied: usize,
    /// Hashed assets already in the shared store: not written at all.
    pub reused: usize,
    pub shared_assets: bool,
    pub bytes_uploaded: u64,
    pub bytes_skipped: u64,
    pub invalidation_paths: Vec<String>,
    pub invalidation_id: Option<String>,
    pub distribution_status: Option<String>,
}

impl fmt::Display for SiteDeployed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unchanged {
            return writeln!(
                f,
                "release {} is live and has the same content: nothing to do",
                self.release_id
            );
        }
        if self.action == "rollback" {
            let verb = match self.dry_run {
                true => "would roll back",
                false => "rolled back",
            };
            writeln!(f, "{verb} to release {}", self.release_id)?;
        } else {
            let verb = if self.dry_run {
                "would release"
            } else {
                "released"
            };
            writeln!(
                f,
                "{verb} {}: {} files, {} uploaded ({} bytes), {} unchanged copied server-side, {} shared assets reused ({} bytes not sent)",
                self.release_id, self.files, self.uploaded, self.bytes_uploaded, self.copied, self.reused, self.bytes_skipped
            )?;
        }
        if let Some(p) = &self.previous {
            writeln!(
                f,
                "previous release: {p} (back to it with `bgcloud frontend rollback`)"
            )?;
        }
        writeln!(f, "invalidate: {}", self.invalidation_paths.join(" "))?;
        match (&self.invalidation_id, &self.distribution_status) {
            (Some(id), Some(status)) if status == "Deployed" => {
                writeln!(f, "invalidation {id} completed; distribution Deployed")
            }
            (Some(id), Some(status)) => writeln!(
                f,
                "invalidation {id} completed; distribution {status}: CloudFront's edges switch \
                 to it as the change reaches them (minutes at most; `Deployed` once all have)"
            ),
            (Some(id), None) => writeln!(f, "invalidation {id} started (not waited for)"),
            _ if self.dry_run => writeln!(f, "{}", crate::output::DRY_RUN_DONE),
            _ => Ok(()),
        }
    }
}

impl SiteDeployed {
    /// A result that wrote nothing yet.
    pub fn new(
        ctx: &Context,
        action: &'static str,
        release_id: &str,
        previous: Option<String>,
    ) -> Self {
        SiteDeployed {
            app: ctx.config.app.clone(),
            action,
            release_id: release_id.to_string(),
            previous,
            dry_run: false,
            unchanged: false,
            files: 0,
            uploaded: 0,
            copied: 0,
            reused: 0,
            shared_assets: false,
            bytes_uploaded: 0,
            bytes_skipped: 0,
            invalidation_paths: Vec::new(),
            invalidation_id: None,
            distribution_status: None,
        }
    }
}

pub async fn release(
    ctx: &Context,
    fe: &FrontendConfig,
    files: &[SiteFile],
    id: &str,
    digest: &str,
    dry_run: bool,
    no_wait: bool,
) -> Result<SiteDeployed> {
    let dist = cloudfront::inspect(&ctx.clients.cloudfront, fe).await?;
    let live = dist.live;
    let live_manifest = match &live {
        Some(l) => manifest::load(ctx, l).await?,
        None => None,
    };
    let manifest = site::manifest(id, files, dist.shared_assets);
    let mut result = SiteDeployed::new(ctx, "deploy", id, live.clone());
    result.dry_run = dry_run;
    result.files = files.len();
    result.shared_assets = dist.shared_assets;
    result.invalidation_paths = site::invalidation_paths(&manifest.files, MAX_INVALIDATION_PATHS);
    if live_manifest.as_ref().is_some_and(|m| m.digest == digest) {
        result.release_id = live.unwrap_or_default();
        result.unchanged = true;
        return Ok(result);
    }

    let web = ctx.clients.buckets.get(&fe.bucket).await?;
    let reusable = match dist.shared_assets {
        true => Some(reusable_assets(&web, fe, files).await?),
        false => None,
    };
    let steps = site::plan(files, id, live_manifest.as_ref(), reusable.as_ref());
    let count = |want: fn(&Step) -> bool| {
        steps
            .iter()
            .filter(|p| want(&p.step))
            .fold((0, 0), |(n, b), p| (n + 1, b + p.file.size))
    };
    let (uploaded, bytes_uploaded) = count(|s| *s == Step::Upload);
    let (copied, bytes_copied) = count(|s| matches!(s, Step::Copy { .. }));
    let (reused, bytes_reused) = count(|s| *s == Step::Reuse);
    result.uploaded = uploaded;
    result.copied = copied;
    result.reused = reused;
    result.bytes_uploaded = bytes_uploaded;
    result.bytes_skipped = bytes_copied + bytes_reused;
    if dry_run {
        return Ok(result);
    }
    if web.has_any(&site::release_prefix(id)).await? {
        return Err(Error::refused(format!(
            "release {id} already exists in s3://{}/releases/: pick another --release-id",
            fe.bucket
        )));
    }

    tracing::info!(
        "release {id}: uploading {uploaded} files, copying {copied} unchanged, reusing {reused} shared assets (HTML last)"
    );
    write_release(&web, fe, &steps).await?;
    manifest::save(ctx, &manifest).await?;

    tracing::info!(
        "switching distribution {} to /releases/{id}",
        fe.distribution_id
    );
    cloudfront::switch(&ctx.clients.cloudfront, fe, id).await?;

    // Recorded as soon as it is live, before anything else can fail: rollback and prune go by it.
    let record = SiteRelease {
        id: id.to_string(),
        files: files.len(),
        uploaded,
        copied,
        bytes_uploaded,
        bytes_skipped: result.bytes_skipped,
        at: now(),
        by: ctx.who.clone(),
        previous: live,
    };
    let recorded = ctx
        .store()
        .update(None, |r| {
            r.push_site("frontend-deploy", record.clone(), &ctx.who)
        })
        .await;
    if let Err(e) = recorded {
        tracing::warn!("release {id} is live, but recording it failed: {e}");
    }
    let invalidation =
        cloudfront::invalidate(&ctx.clients.cloudfront, fe, &result.invalidation_paths, id).await?;
    result.invalidation_id = Some(invalidation.clone());
    if !no_wait {
        result.distribution_status =
            Some(cloudfront::wait(&ctx.clients.cloudfront, fe, &invalidation).await?);
    }
    Ok(result)
}

/// The keys of the shared asset store that already hold the content of this build's hashed
/// assets: those are not written again.
async fn reusable_assets(
    web: &Bucket,
    fe: &FrontendConfig,
    files: &[SiteFile],
) -> Result<BTreeSet<String>> {
    let wanted = files
        .iter()
        .filter(|f| f.hashed)
        .map(|f| (f.path.clone(), f.md5.clone()))
        .collect();
    web.holding(&fe.hashed_dir, wanted, fe.concurrency).await
}

/// Writes the release: everything but HTML first, so no visitor gets an index.html whose
/// bundles are not there yet, then HTML.
async fn write_release(
    web: &Bucket,
    fe: &FrontendConfig,
    steps: &[site::Placed<'_>],
) -> Result<()> {
    let writes: Vec<&site::Placed> = steps.iter().filter(|p| p.step != Step::Reuse).collect();
    let bytes = writes.iter().map(|p| p.file.size).sum();
    let progress = Arc::new(Progress::new(writes.len(), bytes));
    for html in [false, true] {
        let phase: Vec<&site::Placed> = writes
            .iter()
            .copied()
            .filter(|p| p.file.is_html() == html)
            .collect();
        write(web, &phase, fe.concurrency, &progress).await?;
    }
    progress.finish();
    Ok(())
}

/// Writes `files` as their steps say (upload or copy; reuse writes nothing), `concurrency`
/// at a time, each reported to `progress` when done.
async fn write(
    web: &Bucket,
    files: &[&site::Placed<'_>],
    concurrency: usize,
    progress: &Arc<Progress>,
) -> Result<()> {
    let jobs: Vec<(String, Step, SiteFile)> = files
        .iter()
        .map(|p| (p.key.clone(), p.step.clone(), p.file.clone()))
        .collect();
    let (bucket, progress) = (web.clone(), progress.clone());
    transfer::each(jobs, concurrency, move |(key, step, file)| {
        let (bucket, progress) = (bucket.clone(), progress.clone());
        async move {
            match step {
                Step::Upload => bucket.upload(&key, &file).await?,
                Step::Copy { source } => bucket.copy(&source, &key, &file).await?,
                Step::Reuse => {}
            }
            progress.advance(file.size);
            Ok(())
        }
    })
    .await?;
    Ok(())
}
