//! `bgcloud deploy`: the release of a backend image, as explicit steps. Validate → lock →
//! resolve the digest → pick the idle colour → find instances → launch through SSM → wait for
//! the command → wait for healthy targets → shift (all, or the canary share) and verify →
//! record → unlock. Any failure before the shift leaves traffic untouched.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::{parse_duration, DeployArgs};
use crate::cmd::shift::{self, Gate, Shifted};
use crate::cmd::status::short_digest;
use crate::color::Color;
use crate::config::BackendConfig;
use crate::context::Context;
use crate::ecr::{self, Image, ImageRef};
use crate::error::{Error, Result};
use crate::fleet;
use crate::health;
use crate::live::Live;
use crate::script::Launch;
use crate::state::{new_id, now, Release};
use crate::weights::{parse_percent, Weights};

/// What a deploy will do (`--dry-run`) or did.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub app: String,
    pub deployment_id: String,
    pub image: String,
    pub digest: String,
    pub repository_uri: String,
    pub color: Color,
    pub instances: Vec<String>,
    pub from: Weights,
    pub to: Weights,
    /// The script SSM runs on each instance; secrets appear as parameter names only.
    pub script: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Deployed {
    #[serde(flatten)]
    pub plan: Plan,
    /// What the new colour replaced as stable, for `rollback`.
    pub previous: Option<Release>,
    pub shift: Shifted,
    pub seconds: f64,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "plan for {} (dry run: nothing changed, no lock taken)",
            self.app
        )?;
        writeln!(f, "  image     {} = {}", self.image, self.digest)?;
        writeln!(f, "  colour    {} (idle)", self.color)?;
        writeln!(f, "  instances {}", self.instances.join(", "))?;
        writeln!(f, "  traffic   {} → {}", self.from, self.to)?;
        writeln!(f, "  script (SSM AWS-RunShellScript on each instance):")?;
        for line in self.script.iter().flat_map(|l| l.lines()) {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Deployed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.plan;
        writeln!(
            f,
            "deployed {} ({}) to {} on {} instance(s) in {:.1} s",
            p.image,
            short_digest(&p.digest),
            p.color,
            p.instances.len(),
            self.seconds
        )?;
        writeln!(
            f,
            "traffic: {} → {} (verified on the listener)",
            p.from, p.to
        )?;
        if p.to.get(p.color) < 100 {
            writeln!(
                f,
                "canary: finish with `bgcloud promote`, abort with `bgcloud rollback`"
            )?;
        } else {
            writeln!(
                f,
                "undo with `bgcloud rollback` ({} is still running)",
                p.color.other()
            )?;
        }
        if let Some(w) = &self.shift.warning {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

/// Deploy's validated inputs.
struct Inputs {
    image: ImageRef,
    canary: Option<u8>,
    timeout: Duration,
    lock_wait: Duration,
}

fn validate(args: &DeployArgs, backend: &BackendConfig) -> Result<Inputs> {
    let image = ImageRef::parse(&args.image)?;
    let canary = args
        .canary
        .as_deref()
        .map(|c| parse_percent(c, 1, 99).map_err(|e| Error::refused(format!("--canary: {e}"))))
        .transpose()?;
    let timeout = match &args.health_timeout {
        Some(t) => parse_duration("--health-timeout", t)?,
        None => backend.health_timeout,
    };
    let lock_wait = parse_duration("--lock-wait", &args.lock.lock_wait)?;
    Ok(Inputs {
        image,
        canary,
        timeout,
        lock_wait,
    })
}

pub enum Outcome {
    Planned(Plan),
    Deployed(Deployed),
}

pub async fn run(ctx: &Context, args: &DeployArgs) -> Result<Outcome> {
    let backend = ctx.config.backend()?;
    let inputs = validate(args, backend)?;
    if args.dry_run {
        return Ok(Outcome::Planned(plan(ctx, backend, &inputs).await?.0));
    }
    let reason = format!("deploy {}", args.image);
    ctx.locked_for(
        &reason,
        inputs.lock_wait,
        inputs.timeout,
        deploy(ctx, backend, &inputs),
    )
    .await
    .map(Outcome::Deployed)
}

/// The read-only part: live state, digest, colour, instances, script.
async fn plan(ctx: &Context, backend: &BackendConfig, inputs: &Inputs) -> Result<(Plan, Live)> {
    let live = Live::read(ctx).await?;
    if let Some(canary) = live.canary() {
        return Err(Error::refused(format!(
            "a canary is in progress ({}, canary {canary}): finish it with `bgcloud promote` or \
             undo it with `bgcloud rollback` before deploying again",
            live.weights()
        )));
    }
    let color = live.stable().other();
    let (image, instances) = tokio::try_join!(
        ecr::resolve(&ctx.clients.ecr, &backend.repository, &inputs.image),
        fleet::discover(&ctx.clients.ec2, &backend.instances),
    )?;
    let Image {
        reference,
        digest,
        repository_uri,
    } = image;
    let deployment_id = new_id();
    let region = ctx.clients.region.clone();
    let script = Launch {
        app: &ctx.config.app,
        color: color.as_str(),
        region: &region,
        repository_uri: &repository_uri,
        digest: &digest,
        deployment_id: &deployment_id,
        host_port: backend.port(color),
        container_port: backend.container_port,
        env: &backend.env,
        secrets: &backend.secrets,
        ready_seconds: inputs.timeout.as_secs().clamp(10, 120) as u32,
    }
    .render();
    let to = match inputs.canary {
        Some(n) => Weights::split(color, n),
        None => Weights::all(color),
    };
    let plan = Plan {
        app: ctx.config.app.clone(),
        deployment_id,
        image: reference,
        digest,
        repository_uri,
        color,
        instances,
        from: live.weights(),
        to,
        script,
    };
    Ok((plan, live))
}

async fn deploy(ctx: &Context, backend: &BackendConfig, inputs: &Inputs) -> Result<Deployed> {
    let started = Instant::now();
    let deadline = started + inputs.timeout;
    let (plan, _) = plan(ctx, backend, inputs).await?;
    let color = plan.color;
    tracing::info!(
        "deploying {} ({}) to {color} on {}",
        plan.image,
        short_digest(&plan.digest),
        plan.instances.join(", ")
    );

    let comment = format!(
        "bgcloud deploy {} {} to {color}",
        ctx.config.app, plan.image
    );
    let sent = fleet::send(
        &ctx.clients.ssm,
        &plan.instances,
        plan.script.clone(),
        &comment,
        inputs.timeout,
    )
    .await?;
    let ids: std::collections::BTreeSet<&str> =
        sent.iter().map(|s| s.command_id.as_str()).collect();
    let ids: Vec<&str> = ids.into_iter().collect();
    tracing::info!(
        "launch command {} sent; waiting for it on every instance",
        ids.join(", ")
    );
    fleet::wait(&ctx.clients.ssm, &sent, backend.poll_interval, deadline).await?;

    tracing::info!(
        "container running on every instance; waiting for {color}'s targets to be healthy"
    );
    health::wait_healthy(
        &ctx.clients.elb,
        backend.target_group_arn(color),
        color.as_str(),
        &plan.instances,
        backend.port(color),
        backend.poll_interval,
        deadline,
    )
    .await?;

    // The wait can be long: shift from the listener as it is now, not as it was read before.
    let live = Live::read(ctx).await?;
    if live.weights() != plan.from {
        return Err(Error::failed(format!(
            "the listener changed while {color} was being prepared ({} → {}); traffic was not \
             changed by this deploy. Check `bgcloud status`, then deploy again",
            plan.from,
            live.weights()
        )));
    }
    let previous = live
        .record()
        .and_then(|r| r.backend.release(color.other()))
        .cloned();
    let release = Release {
        image: plan.image.clone(),
        digest: plan.digest.clone(),
        deployment_id: plan.deployment_id.clone(),
        at: now(),
        by: ctx.who.clone(),
    };
    let shift = shift::apply(
        ctx,
        live,
        "deploy",
        plan.to,
        Gate::Checked,
        Some((color, release)),
    )
    .await?;
    Ok(Deployed {
        plan,
        previous,
        shift,
        seconds: started.elapsed().as_secs_f64(),
    })
}
