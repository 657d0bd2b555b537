//! Creates a demo stack (VPC, instances, ALB, blue/green target groups, listener 100/0, ECR
//! repository with images, state bucket) against a local endpoint and writes a bgcloud.toml for
//! it. The same code builds the integration tests' stacks.
//!
//!     cargo run --example bootstrap -- --endpoint-url http://127.0.0.1:5000 --name demo --out demo/bgcloud.toml

#[path = "../tests/support/stack.rs"]
mod stack;

use std::path::PathBuf;

use aws_config::{BehaviorVersion, Region};
use bgcloud::aws::{AwsOptions, Clients};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// The local AWS endpoint (the emulator or LocalStack).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint_url: String,
    /// Names every resource ([a-z0-9-], at most 20 characters).
    #[arg(long, default_value = "demo")]
    name: String,
    /// How many instances to run.
    #[arg(long, default_value_t = 2)]
    instances: usize,
    /// Image tags to put in the ECR repository.
    #[arg(long, value_delimiter = ',', default_value = "v1,v2")]
    images: Vec<String>,
    /// Where to write the config.
    #[arg(long, default_value = "bgcloud.toml")]
    out: PathBuf,
    /// Extra lines for the [backend] section (e.g. `poll_interval = "1s"`).
    #[arg(long, default_value = "")]
    backend_extra: String,
    /// Also write a small generated frontend build (Vite-like) into this folder.
    #[arg(long)]
    site_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), stack::BoxError> {
    let args = Args::parse();
    let opts = AwsOptions {
        endpoint_url: Some(args.endpoint_url.clone()),
        ..Default::default()
    };
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&args.endpoint_url)
        .load()
        .await;
    let aws = Clients::new(&sdk, &opts);
    let mut spec = stack::StackSpec::new(&args.name);
    spec.instances = args.instances;
    spec.image_tags = args.images.clone();
    let stack = stack::Stack::create(&aws, spec).await?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, stack.config_toml(&args.backend_extra))?;
    if let Some(dir) = &args.site_dir {
        stack::sample_site(dir, "1");
    }
    eprintln!(
        "bootstrap: {} instances, ALB {}, images {:?}; config written to {}",
        stack.instance_ids.len(),
        stack.load_balancer_arn,
        stack.images.keys().collect::<Vec<_>>(),
        args.out.display()
    );
    Ok(())
}
