//! `bgcloud frontend deploy|releases|rollback|prune`: atomic static-site releases. Each release
//! is a complete tree under `releases/<id>/`; CloudFront's origin path is switched to it in one
//! update, so visitors see the old release or the new one, never a mix. The S3 mechanics
//! (regions, transfers, listings) are in [`crate::aws::s3`], the plan in [`crate::frontend::site`].

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::aws::cloudfront;
use crate::aws::s3::object::{Condition, Object};
use crate::aws::s3::{transfer, Bucket};
use crate::cli::{parse_duration, FrontendDeployArgs, FrontendRollbackArgs, PruneArgs};
use crate::config::FrontendConfig;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::frontend::site::{self, Manifest, SiteFile, Step};
use crate::output::Progress;
use crate::state::record::{now, FrontendRecord, SiteRelease};

/// Invalidate the unhashed paths one by one up to this many; past it, `/*`.
const MAX_INVALIDATION_PATHS: usize = 10;

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
            writeln!(f, "rolled back to release {}", self.release_id)?;
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
            (Some(id), Some(status)) => {
                writeln!(f, "invalidation {id} completed; distribution {status}")
            }
            (Some(id), None) => writeln!(f, "invalidation {id} started (not waited for)"),
            _ => Ok(()),
        }
    }
}

fn resolve_dir(ctx: &Context, fe: &FrontendConfig, dir: Option<&PathBuf>) -> Result<PathBuf> {
    match (dir, &fe.dir) {
        (Some(d), _) => Ok(d.clone()),
        (None, Some(d)) if d.is_relative() => {
            let base = ctx
                .config
                .path
                .parent()
                .unwrap_or_else(|| std::path::Path::new("."));
            Ok(base.join(d))
        }
        (None, Some(d)) => Ok(d.clone()),
        (None, None) => Err(Error::refused(
            "no build folder: pass it (`bgcloud frontend deploy web/dist`) or set [frontend].dir",
        )),
    }
}

fn check_release_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::refused(format!(
            "--release-id {id:?} is not usable: 1-64 letters, digits, '.', '_' or '-'"
        )))
    }
}

/// Where a release's manifest is kept: beside the record in the state bucket.
fn manifest_object(ctx: &Context, id: &str) -> Object {
    let key = format!(
        "{}{}/frontend/{id}.json",
        ctx.config.state.prefix, ctx.config.app
    );
    Object::new(ctx.clients.buckets.clone(), &ctx.config.state.bucket, key)
}

async fn load_manifest(ctx: &Context, id: &str) -> Result<Option<Manifest>> {
    let found = manifest_object(ctx, id).get().await?;
    Ok(found.and_then(|(bytes, _)| serde_json::from_slice(&bytes).ok()))
}

async fn save_manifest(ctx: &Context, manifest: &Manifest) -> Result<()> {
    let body = serde_json::to_vec(manifest).expect("manifest serializes");
    manifest_object(ctx, &manifest.id)
        .put(body, Condition::None)
        .await?;
    Ok(())
}

impl SiteDeployed {
    /// A result that wrote nothing yet.
    fn new(
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

pub async fn deploy(ctx: &Context, args: &FrontendDeployArgs) -> Result<SiteDeployed> {
    let fe = ctx.config.frontend()?;
    let wait = parse_duration("--lock-wait", &args.lock.lock_wait)?;
    if let Some(id) = &args.release_id {
        check_release_id(id)?;
    }
    let dir = resolve_dir(ctx, fe, args.dir.as_ref())?;
    let files = site::scan(&dir, fe)?;
    let digest = site::tree_digest(&files);
    let id = args.release_id.clone().unwrap_or_else(|| {
        let stamp: String = now().chars().filter(char::is_ascii_alphanumeric).collect();
        format!("{stamp}-{}", &digest[..8])
    });
    if args.dry_run {
        return release(ctx, fe, &files, &id, &digest, true, args.no_wait).await;
    }
    ctx.locked(
        &format!("frontend deploy {id}"),
        wait,
        release(ctx, fe, &files, &id, &digest, false, args.no_wait),
    )
    .await
}

async fn release(
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
        Some(l) => load_manifest(ctx, l).await?,
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
    save_manifest(ctx, &manifest).await?;

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

// --- releases ---------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
pub struct Releases {
    pub app: String,
    pub current: Option<String>,
    pub previous: Option<String>,
    pub releases: Vec<ReleaseRow>,
}

#[derive(Debug, Serialize)]
pub struct ReleaseRow {
    pub id: String,
    pub current: bool,
    pub previous: bool,
    #[serde(flatten)]
    pub recorded: Option<SiteRelease>,
}

impl fmt::Display for Releases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.releases.is_empty() {
            return writeln!(f, "{}: no frontend releases yet", self.app);
        }
        for r in &self.releases {
            let mark = if r.current {
                "*"
            } else if r.previous {
                "-"
            } else {
                " "
            };
            write!(f, "{mark} {}", r.id)?;
            if let Some(rec) = &r.recorded {
                write!(
                    f,
                    "  {} files, {} uploaded, by {} at {}",
                    rec.files, rec.uploaded, rec.by, rec.at
                )?;
            }
            writeln!(
                f,
                "{}",
                if r.current {
                    "  (live)"
                } else if r.previous {
                    "  (previous)"
                } else {
                    ""
                }
            )?;
        }
        Ok(())
    }
}

/// Release ids in the bucket, the live one (from CloudFront) and the frontend record, together.
async fn snapshot(
    ctx: &Context,
    fe: &FrontendConfig,
) -> Result<(Vec<String>, cloudfront::Site, FrontendRecord)> {
    let store = ctx.store();
    let bucket_releases = async {
        let web = ctx.clients.buckets.get(&fe.bucket).await?;
        web.folders(site::RELEASES_PREFIX).await
    };
    let (ids, dist, record) = tokio::try_join!(
        bucket_releases,
        cloudfront::inspect(&ctx.clients.cloudfront, fe),
        store.read(),
    )?;
    let record = record.unwrap_or_default().frontend;
    // Oldest first by when each release was made (a custom --release-id says nothing about
    // time), then by id; releases bgcloud has no record of count as oldest.
    let mut ids = ids;
    let made = |id: &String| {
        record
            .releases
            .iter()
            .find(|r| &r.id == id)
            .map(|r| r.at.clone())
    };
    ids.sort_by_cached_key(|id| (made(id).unwrap_or_default(), id.clone()));
    Ok((ids, dist, record))
}

pub async fn releases(ctx: &Context) -> Result<Releases> {
    let fe = ctx.config.frontend()?;
    let (ids, dist, record) = snapshot(ctx, fe).await?;
    let live = dist.live;
    let previous = record.previous.clone().filter(|p| Some(p) != live.as_ref());
    let releases = ids
        .into_iter()
        .rev()
        .map(|id| ReleaseRow {
            current: Some(&id) == live.as_ref(),
            previous: Some(&id) == previous.as_ref(),
            recorded: record.releases.iter().find(|r| r.id == id).cloned(),
            id,
        })
        .collect();
    Ok(Releases {
        app: ctx.config.app.clone(),
        current: live,
        previous,
        releases,
    })
}

// --- rollback ---------------------------------------------------------------------------------

pub async fn rollback(ctx: &Context, args: &FrontendRollbackArgs) -> Result<SiteDeployed> {
    let fe = ctx.config.frontend()?;
    let wait = parse_duration("--lock-wait", &args.lock.lock_wait)?;
    if let Some(id) = &args.to {
        check_release_id(id)?;
    }
    ctx.locked("frontend rollback", wait, async {
        let live = cloudfront::inspect(&ctx.clients.cloudfront, fe).await?.live;
        let record = ctx.store().read().await?.unwrap_or_default().frontend;
        let target = match &args.to {
            Some(id) => id.clone(),
            None => record.previous.clone().filter(|p| Some(p) != live.as_ref()).ok_or_else(|| {
                Error::refused("no previous frontend release on record: name one with --to ID (see `bgcloud frontend releases`)")
            })?,
        };
        if Some(&target) == live.as_ref() {
            return Err(Error::refused(format!("release {target} is already live: nothing to roll back")));
        }
        let web = ctx.clients.buckets.get(&fe.bucket).await?;
        if !web.has_any(&site::release_prefix(&target)).await? {
            return Err(Error::refused(format!(
                "release {target} does not exist in s3://{}/releases/: see `bgcloud frontend releases`",
                fe.bucket
            )));
        }
        let manifest = load_manifest(ctx, &target).await?;
        let paths = match &manifest {
            Some(m) => site::invalidation_paths(&m.files, MAX_INVALIDATION_PATHS),
            None => vec!["/*".to_string()],
        };
        tracing::info!("switching distribution {} back to /releases/{target}", fe.distribution_id);
        cloudfront::switch(&ctx.clients.cloudfront, fe, &target).await?;
        let invalidation = cloudfront::invalidate(&ctx.clients.cloudfront, fe, &paths, &format!("rollback-{target}")).await?;
        let info = record.releases.iter().find(|r| r.id == target).cloned().unwrap_or(SiteRelease {
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
        let event = SiteRelease { at: now(), ..info.clone() };
        if let Err(e) = ctx.store().update(None, |r| r.push_site("frontend-rollback", event.clone(), &ctx.who)).await {
            tracing::warn!("release {target} is live again, but recording it failed: {e}");
        }
        let status = if args.no_wait { None } else { Some(cloudfront::wait(&ctx.clients.cloudfront, fe, &invalidation).await?) };
        let mut result = SiteDeployed::new(ctx, "rollback", &target, live);
        result.files = info.files;
        result.invalidation_paths = paths;
        result.invalidation_id = Some(invalidation);
        result.distribution_status = status;
        Ok(result)
    })
    .await
}

// --- prune ------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
pub struct Pruned {
    pub kept: Vec<String>,
    pub deleted: Vec<String>,
    pub objects_deleted: usize,
    /// Shared hashed assets that no kept release uses any more.
    pub assets_deleted: usize,
}

/// Deletes shared assets that no kept release references. Skipped (with a warning) when a kept
/// release has no manifest: what it uses is then unknown.
async fn prune_shared_assets(
    ctx: &Context,
    web: &Bucket,
    fe: &FrontendConfig,
    kept: &[String],
) -> Result<usize> {
    let mut used = BTreeSet::new();
    for id in kept {
        match load_manifest(ctx, id).await? {
            Some(m) => used.extend(
                m.files
                    .into_iter()
                    .filter(|(_, e)| e.hashed)
                    .map(|(p, _)| p),
            ),
            None => {
                tracing::warn!("release {id} has no manifest: not deleting any shared asset");
                return Ok(0);
            }
        }
    }
    let unused: Vec<String> = web
        .list(&fe.hashed_dir)
        .await?
        .into_keys()
        .filter(|k| !used.contains(k))
        .collect();
    web.delete(&unused).await
}

impl fmt::Display for Pruned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "kept {} release(s): {}",
            self.kept.len(),
            self.kept.join(", ")
        )?;
        if self.deleted.is_empty() {
            writeln!(f, "nothing to delete")
        } else {
            writeln!(
                f,
                "deleted {} release(s) ({} objects): {}",
                self.deleted.len(),
                self.objects_deleted,
                self.deleted.join(", ")
            )
        }
    }
}

pub async fn prune(ctx: &Context, args: &PruneArgs) -> Result<Pruned> {
    let fe = ctx.config.frontend()?;
    let wait = parse_duration("--lock-wait", &args.lock.lock_wait)?;
    ctx.locked("frontend prune", wait, async {
        let (ids, dist, record) = snapshot(ctx, fe).await?;
        let live = dist.live;
        let previous = record.previous;
        let newest: Vec<&String> = ids.iter().rev().take(args.keep).collect();
        let (kept, deleted): (Vec<String>, Vec<String>) = ids.iter().cloned().partition(|id| {
            newest.contains(&id) || Some(id) == live.as_ref() || Some(id) == previous.as_ref()
        });
        let web = ctx.clients.buckets.get(&fe.bucket).await?;
        let mut objects_deleted = 0;
        for id in &deleted {
            let keys: Vec<String> = web
                .list(&site::release_prefix(id))
                .await?
                .into_keys()
                .collect();
            objects_deleted += web.delete(&keys).await?;
            manifest_object(ctx, id).delete().await?;
        }
        let assets_deleted = match dist.shared_assets {
            true => prune_shared_assets(ctx, &web, fe, &kept).await?,
            false => 0,
        };
        Ok(Pruned {
            kept,
            deleted,
            objects_deleted,
            assets_deleted,
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_ids_are_checked() {
        assert!(check_release_id("20261127T0300Z-abcd1234").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert_eq!(check_release_id(bad).unwrap_err().exit_code(), 2, "{bad}");
        }
    }
}
