//! `bgcloud frontend deploy|releases|rollback|prune`: atomic static-site releases. Each release
//! is a complete tree under `releases/<id>/`; CloudFront's origin path is switched to it in one
//! update, so visitors see the old release or the new one, never a mix. The steps are in
//! [`crate::frontend`]; this module checks the flags and holds the lock.

use std::path::PathBuf;

use crate::cli::{parse_duration, FrontendDeployArgs, FrontendRollbackArgs, PruneArgs};
use crate::config::FrontendConfig;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::frontend::prune::{self, Pruned};
use crate::frontend::release::{self, SiteDeployed};
use crate::frontend::releases::{self, Releases};
use crate::frontend::{rollback, site};
use crate::state::record::now;

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
        return release::release(ctx, fe, &files, &id, &digest, true, args.no_wait).await;
    }
    ctx.locked(
        &format!("frontend deploy {id}"),
        wait,
        release::release(ctx, fe, &files, &id, &digest, false, args.no_wait),
    )
    .await
}

pub async fn releases(ctx: &Context) -> Result<Releases> {
    releases::list(ctx, ctx.config.frontend()?).await
}

pub async fn rollback(ctx: &Context, args: &FrontendRollbackArgs) -> Result<SiteDeployed> {
    let fe = ctx.config.frontend()?;
    let wait = parse_duration("--lock-wait", &args.lock.lock_wait)?;
    if let Some(id) = &args.to {
        check_release_id(id)?;
    }
    let to = args.to.as_deref();
    if args.dry_run.dry_run {
        let ahead = rollback::read_ahead(ctx, fe).await?;
        return rollback::rollback(ctx, fe, to, args.no_wait, true, ahead).await;
    }
    // As for a backend rollback: what needs no lock is read while it is taken.
    let ahead = rollback::read_ahead(ctx, fe);
    ctx.locked_ahead("frontend rollback", wait, None, ahead, |ahead| {
        rollback::rollback(ctx, fe, to, args.no_wait, false, ahead)
    })
    .await
}

pub async fn prune(ctx: &Context, args: &PruneArgs) -> Result<Pruned> {
    let fe = ctx.config.frontend()?;
    let wait = parse_duration("--lock-wait", &args.lock.lock_wait)?;
    if args.dry_run.dry_run {
        return prune::prune(ctx, fe, args.keep, true).await;
    }
    ctx.locked(
        "frontend prune",
        wait,
        prune::prune(ctx, fe, args.keep, false),
    )
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
