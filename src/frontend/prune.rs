//! Pruning old frontend releases: all but the newest `keep`, never the live or the previous one,
//! with their manifests; then the shared assets no kept release uses.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::aws::s3::Bucket;
use crate::config::FrontendConfig;
use crate::context::Context;
use crate::error::Result;
use crate::frontend::manifest;
use crate::frontend::releases::snapshot;
use crate::frontend::site;

#[derive(Debug, Serialize)]
pub struct Pruned {
    /// `--dry-run`: what would be deleted; nothing was.
    pub dry_run: bool,
    pub kept: Vec<String>,
    pub deleted: Vec<String>,
    pub objects_deleted: usize,
    /// Shared hashed assets that no kept release uses any more.
    pub assets_deleted: usize,
}

impl fmt::Display for Pruned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "kept {} release(s): {}",
            self.kept.len(),
            self.kept.join(", ")
        )?;
        let verb = if self.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        if self.deleted.is_empty() {
            writeln!(f, "nothing to delete")?;
        } else {
            writeln!(
                f,
                "{verb} {} release(s) ({} objects): {}",
                self.deleted.len(),
                self.objects_deleted,
                self.deleted.join(", ")
            )?;
        }
        if self.assets_deleted > 0 {
            writeln!(
                f,
                "{verb} {} shared asset(s) no kept release uses",
                self.assets_deleted
            )?;
        }
        if self.dry_run {
            writeln!(f, "{}", crate::output::DRY_RUN_DONE)?;
        }
        Ok(())
    }
}

/// Deletes every release but the newest `keep`, the live and the previous one; with `dry_run`
/// lists and counts what it would delete.
pub async fn prune(
    ctx: &Context,
    fe: &FrontendConfig,
    keep: usize,
    dry_run: bool,
) -> Result<Pruned> {
    let (ids, dist, record) = snapshot(ctx, fe).await?;
    let live = dist.live;
    let previous = record.previous;
    let newest: Vec<&String> = ids.iter().rev().take(keep).collect();
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
        if dry_run {
            objects_deleted += keys.len();
            continue;
        }
        objects_deleted += web.delete(&keys).await?;
        manifest::object(ctx, id).delete().await?;
    }
    let assets_deleted = match dist.shared_assets {
        true => prune_shared_assets(ctx, &web, fe, &kept, dry_run).await?,
        false => 0,
    };
    Ok(Pruned {
        dry_run,
        kept,
        deleted,
        objects_deleted,
        assets_deleted,
    })
}

/// Deletes (or with `dry_run` counts) shared assets that no kept release references. Skipped
/// (with a warning) when a kept release has no manifest: what it uses is then unknown.
async fn prune_shared_assets(
    ctx: &Context,
    web: &Bucket,
    fe: &FrontendConfig,
    kept: &[String],
    dry_run: bool,
) -> Result<usize> {
    let mut used = BTreeSet::new();
    for id in kept {
        match manifest::load(ctx, id).await? {
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
    if dry_run {
        return Ok(unused.len());
    }
    web.delete(&unused).await
}
