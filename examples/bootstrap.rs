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
    /// A real-instance lane's lane.json (lane/lane.py): the instances become the lane's
    /// namespaces, the repository gets its real images, the listener a local data plane whose
    /// port is written to `<out>.alb-port`.
    #[arg(long)]
    lane: Option<PathBuf>,
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
    let lane: Option<serde_json::Value> = match &args.lane {
        Some(path) => Some(serde_json::from_str(&std::fs::read_to_string(path)?)?),
        None => None,
    };
    if let Some(lane) = &lane {
        // What the lane's images answer, checked as the Terraform module's settings scaled down
        // to AWS's minimum interval: the health gate waits (2 + 1) x 5 s.
        spec.instances = lane["instances"].as_array().map_or(1, Vec::len);
        spec.image_tags = vec![];
        spec.health_check = (5, 2, 2);
        spec.health_check_path = lane["health_path"].as_str().unwrap_or("/").to_string();
        spec.container_port = lane["container_port"].as_u64().unwrap_or(3000) as u16;
    }
    let mut stack = stack::Stack::create(&aws, spec).await?;
    if lane.is_some() {
        let ids = serde_json::json!({"instance_ids": stack.instance_ids});
        post(&args.endpoint_url, "lane/attach", &ids)?;
        let tags = serde_json::json!({"repository": stack.repository, "tags": args.images});
        let published = post(&args.endpoint_url, "lane/publish", &tags)?;
        for (tag, digest) in published["digests"].as_object().into_iter().flatten() {
            stack
                .images
                .insert(tag.clone(), digest.as_str().unwrap_or("").to_string());
        }
        let alb = post(
            &args.endpoint_url,
            "lane/alb",
            &serde_json::json!({"listener_arn": stack.listener_arn}),
        )?;
        std::fs::write(args.out.with_extension("alb-port"), alb["port"].to_string())?;
    }
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

/// POSTs a control to the emulator (`/_bgcloud/<path>`) and returns its JSON answer.
fn post(
    endpoint: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, stack::BoxError> {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(addr)?;
    let body = body.to_string();
    write!(
        stream,
        "POST /_bgcloud/{path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, answer) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!("emulator control {path}: {head} {answer}").into());
    }
    Ok(serde_json::from_str(answer)?)
}
