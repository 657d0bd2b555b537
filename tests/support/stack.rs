//! Creates the AWS shape bgcloud drives (VPC, instances, ALB, blue/green target groups, a
//! listener forwarding 100/0, an ECR repository with an image, the state bucket) through the
//! real SDK, against whatever endpoint the clients point at. Shared by the integration tests and
//! `examples/bootstrap.rs` (the demo), so both run on the same stack.

#![allow(dead_code)]

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, Matcher, ProtocolEnum, TargetDescription,
    TargetGroupAttribute, TargetGroupStickinessConfig, TargetGroupTuple, TargetTypeEnum,
};
use bgcloud::aws::Clients;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone)]
pub struct StackSpec {
    /// Names every resource; [a-z0-9-], at most 20 characters (ALB names are limited to 32).
    pub name: String,
    pub instances: usize,
    pub container_port: u16,
    pub blue_port: u16,
    pub green_port: u16,
    /// Image tags to put in the repository, oldest first.
    pub image_tags: Vec<String>,
    /// Give the distribution a `/assets/*` behavior on the bucket root (shared hashed assets),
    /// as infra/ does; false: one origin only.
    pub shared_assets: bool,
    /// The target groups' health check: interval (s), healthy and unhealthy thresholds. Tests
    /// use 1 s and 2/2 (below AWS's 5 s minimum, which the emulator allows), so the health
    /// gate's (max(2, 2) + 1) × 1 s costs 3 s per deploy.
    pub health_check: (i32, i32, i32),
    /// The path the ALB health-checks.
    pub health_check_path: String,
    /// Where the state and site buckets are created (the config's region stays us-east-1).
    pub bucket_region: String,
}

impl StackSpec {
    pub fn new(name: &str) -> StackSpec {
        StackSpec {
            name: name.to_string(),
            instances: 2,
            container_port: 3000,
            blue_port: 8081,
            green_port: 8082,
            image_tags: vec!["v1".to_string()],
            shared_assets: true,
            health_check: (1, 2, 2),
            health_check_path: "/healthz".to_string(),
            bucket_region: "us-east-1".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Stack {
    pub spec: StackSpec,
    pub vpc_id: String,
    pub instance_ids: Vec<String>,
    pub load_balancer_arn: String,
    pub listener_arn: String,
    pub blue_target_group_arn: String,
    pub green_target_group_arn: String,
    pub repository: String,
    pub repository_uri: String,
    /// Tag → digest of the images put in the repository.
    pub images: BTreeMap<String, String>,
    pub state_bucket: String,
    pub site_bucket: String,
    pub distribution_id: String,
}

impl Stack {
    pub async fn create(aws: &Clients, spec: StackSpec) -> Result<Stack, BoxError> {
        let name = spec.name.clone();
        let vpc = aws
            .ec2
            .create_vpc()
            .cidr_block("10.0.0.0/16")
            .send()
            .await?;
        let vpc_id = vpc
            .vpc()
            .and_then(|v| v.vpc_id())
            .ok_or("no vpc id")?
            .to_string();
        let mut subnets = Vec::new();
        for (i, az) in ["a", "b"].iter().enumerate() {
            let subnet = aws
                .ec2
                .create_subnet()
                .vpc_id(&vpc_id)
                .cidr_block(format!("10.0.{}.0/24", i + 1))
                .availability_zone(format!("us-east-1{az}"))
                .send()
                .await?;
            subnets.push(
                subnet
                    .subnet()
                    .and_then(|s| s.subnet_id())
                    .ok_or("no subnet id")?
                    .to_string(),
            );
        }
        let run = aws
            .ec2
            .run_instances()
            .image_id("ami-12c6146b")
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
            .min_count(spec.instances as i32)
            .max_count(spec.instances as i32)
            .subnet_id(&subnets[0])
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .tags(Tag::builder().key("bgcloud:app").value(&name).build())
                    .build(),
            )
            .send()
            .await?;
        let instance_ids: Vec<String> = run
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();

        let lb = aws
            .elb
            .create_load_balancer()
            .name(format!("{name}-alb"))
            .set_subnets(Some(subnets.clone()))
            .send()
            .await?;
        let load_balancer_arn = lb
            .load_balancers()
            .first()
            .and_then(|l| l.load_balancer_arn())
            .ok_or("no load balancer arn")?
            .to_string();

        let mut tgs = Vec::new();
        for (color, port) in [("blue", spec.blue_port), ("green", spec.green_port)] {
            let tg = aws
                .elb
                .create_target_group()
                .name(format!("{name}-{color}"))
                .protocol(ProtocolEnum::Http)
                .port(i32::from(port))
                .vpc_id(&vpc_id)
                .target_type(TargetTypeEnum::Instance)
                .health_check_path(&spec.health_check_path)
                .health_check_interval_seconds(spec.health_check.0)
                .health_check_timeout_seconds(spec.health_check.0.min(2))
                .healthy_threshold_count(spec.health_check.1)
                .unhealthy_threshold_count(spec.health_check.2)
                .matcher(Matcher::builder().http_code("200-399").build())
                .send()
                .await?;
            let arn = tg
                .target_groups()
                .first()
                .and_then(|t| t.target_group_arn())
                .ok_or("no target group arn")?
                .to_string();
            // What infra/ sets for the lane and tests: a deregistered target drains for 1 s.
            aws.elb
                .modify_target_group_attributes()
                .target_group_arn(&arn)
                .attributes(
                    TargetGroupAttribute::builder()
                        .key("deregistration_delay.timeout_seconds")
                        .value("1")
                        .build(),
                )
                .send()
                .await?;
            let targets = instance_ids
                .iter()
                .map(|id| {
                    TargetDescription::builder()
                        .id(id)
                        .port(i32::from(port))
                        .build()
                })
                .collect();
            aws.elb
                .register_targets()
                .target_group_arn(&arn)
                .set_targets(Some(targets))
                .send()
                .await?;
            tgs.push(arn);
        }
        let listener = aws
            .elb
            .create_listener()
            .load_balancer_arn(&load_balancer_arn)
            .protocol(ProtocolEnum::Http)
            .port(80)
            .default_actions(forward(&[(&tgs[0], 100), (&tgs[1], 0)]))
            .send()
            .await?;
        let listener_arn = listener
            .listeners()
            .first()
            .and_then(|l| l.listener_arn())
            .ok_or("no listener arn")?
            .to_string();

        let repository = format!("{name}-api");
        let repo = aws
            .ecr
            .create_repository()
            .repository_name(&repository)
            .send()
            .await?;
        let repository_uri = repo
            .repository()
            .and_then(|r| r.repository_uri())
            .ok_or("no repository uri")?
            .to_string();
        let mut images = BTreeMap::new();
        for tag in &spec.image_tags {
            let digest = put_image(aws, &repository, tag).await?;
            images.insert(tag.clone(), digest);
        }

        let state_bucket = format!("{name}-state");
        let site_bucket = format!("{name}-web");
        for bucket in [&state_bucket, &site_bucket] {
            create_bucket(aws, bucket, &spec.bucket_region).await?;
        }
        let distribution_id =
            create_distribution(aws, &site_bucket, &spec.bucket_region, spec.shared_assets).await?;

        Ok(Stack {
            spec,
            vpc_id,
            instance_ids,
            load_balancer_arn,
            listener_arn,
            blue_target_group_arn: tgs[0].clone(),
            green_target_group_arn: tgs[1].clone(),
            repository,
            repository_uri,
            images,
            state_bucket,
            site_bucket,
            distribution_id,
        })
    }

    /// [`Stack::config_toml`] with the instances named by `instances` (an `instance_ids = …` or
    /// `auto_scaling_group = …` line) instead of the stack's tag.
    pub fn config_naming_instances(&self, instances: &str) -> String {
        self.config_toml("").replace(
            &format!(
                "instance_tags = {{ \"bgcloud:app\" = \"{}\" }}",
                self.spec.name
            ),
            instances,
        )
    }

    /// A `bgcloud.toml` for this stack; `extra_backend` lines are appended to `[backend]`.
    pub fn config_toml(&self, extra_backend: &str) -> String {
        format!(
            r#"app = "{name}"
region = "us-east-1"

[state]
bucket = "{bucket}"

[backend]
listener_arn = "{listener}"
blue_target_group_arn = "{blue}"
green_target_group_arn = "{green}"
repository = "{repository}"
container_port = {container_port}
blue_port = {blue_port}
green_port = {green_port}
instance_tags = {{ "bgcloud:app" = "{name}" }}
health_timeout = "30s"
poll_interval = "100ms"
# The emulator's Describe* lag is 0.3 s in its scaled profile (localstack/timing.py).
readback_timeout = "3s"
# Listener changes reach the data plane 0.5 s after the write in that profile (elb_propagation).
listener_propagation = "1s"
env = {{ NODE_ENV = "production" }}
{extra_backend}

[frontend]
bucket = "{site_bucket}"
distribution_id = "{distribution_id}"
poll_interval = "100ms"
wait_timeout = "20s"
"#,
            name = self.spec.name,
            bucket = self.state_bucket,
            listener = self.listener_arn,
            blue = self.blue_target_group_arn,
            green = self.green_target_group_arn,
            repository = self.repository,
            container_port = self.spec.container_port,
            blue_port = self.spec.blue_port,
            green_port = self.spec.green_port,
            site_bucket = self.site_bucket,
            distribution_id = self.distribution_id,
        )
    }
}

/// An S3 client signing for `region` (S3 answers a request signed for another region than the
/// bucket's with a redirect, and so does the emulator).
pub fn s3_in(aws: &Clients, region: &str) -> aws_sdk_s3::Client {
    let config = aws
        .s3
        .config()
        .to_builder()
        .region(aws_sdk_s3::config::Region::new(region.to_string()))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

async fn create_bucket(aws: &Clients, bucket: &str, region: &str) -> Result<(), BoxError> {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    let create = s3_in(aws, region).create_bucket().bucket(bucket);
    // us-east-1 is the one region that takes no location constraint.
    let create = match region {
        "us-east-1" => create,
        other => create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(other))
                .build(),
        ),
    };
    create.send().await?;
    Ok(())
}

/// A CloudFront distribution serving `bucket` (origin path empty until the first release),
/// with SPA error routing to /index.html and, if `shared_assets`, `/assets/*` served from the
/// bucket root by a second origin.
async fn create_distribution(
    aws: &Clients,
    bucket: &str,
    region: &str,
    shared_assets: bool,
) -> Result<String, BoxError> {
    use aws_sdk_cloudfront::types::{
        CacheBehavior, CacheBehaviors, CustomErrorResponse, CustomErrorResponses,
        DefaultCacheBehavior, DistributionConfig, Origin, Origins, S3OriginConfig,
        ViewerProtocolPolicy,
    };
    const CACHING_OPTIMIZED: &str = "658327ea-f89d-4fab-a63d-7e88639e58f6";
    let origin_id = format!("{bucket}-origin");
    let origin = |id: &str| {
        Origin::builder()
            .id(id)
            .domain_name(format!("{bucket}.s3.{region}.amazonaws.com"))
            .origin_path("")
            .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build())
            .build()
    };
    let mut origins = vec![origin(&origin_id)?];
    let mut behaviors = Vec::new();
    if shared_assets {
        origins.push(origin("assets")?);
        behaviors.push(
            CacheBehavior::builder()
                .path_pattern("/assets/*")
                .target_origin_id("assets")
                .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
                .cache_policy_id(CACHING_OPTIMIZED)
                .build()?,
        );
    }
    let config = DistributionConfig::builder()
        .caller_reference(bucket)
        .comment(format!("bgcloud test site {bucket}"))
        .enabled(true)
        .default_root_object("index.html")
        .origins(
            Origins::builder()
                .quantity(origins.len() as i32)
                .set_items(Some(origins))
                .build()?,
        )
        .cache_behaviors(
            CacheBehaviors::builder()
                .quantity(behaviors.len() as i32)
                .set_items(Some(behaviors).filter(|b| !b.is_empty()))
                .build()?,
        )
        .default_cache_behavior(
            DefaultCacheBehavior::builder()
                .target_origin_id(&origin_id)
                .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
                .cache_policy_id(CACHING_OPTIMIZED)
                .build()?,
        )
        .custom_error_responses(
            CustomErrorResponses::builder()
                .quantity(1)
                .items(
                    CustomErrorResponse::builder()
                        .error_code(403)
                        .response_code("200")
                        .response_page_path("/index.html")
                        .build()?,
                )
                .build()?,
        )
        .build()?;
    let out = aws
        .cloudfront
        .create_distribution()
        .distribution_config(config)
        .send()
        .await?;
    Ok(out
        .distribution()
        .map(|d| d.id().to_string())
        .ok_or("no distribution id")?)
}

/// A weighted forward action.
pub fn forward(groups: &[(&str, i32)]) -> Action {
    forward_with(groups, None)
}

/// [`forward`] with target-group stickiness on for `seconds` (the AWSALBTG cookie).
pub fn sticky_forward(groups: &[(&str, i32)], seconds: i32) -> Action {
    forward_with(groups, Some(seconds))
}

fn forward_with(groups: &[(&str, i32)], sticky: Option<i32>) -> Action {
    let tuples = groups
        .iter()
        .map(|(arn, weight)| {
            TargetGroupTuple::builder()
                .target_group_arn(*arn)
                .weight(*weight)
                .build()
        })
        .collect();
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(
            ForwardActionConfig::builder()
                .set_target_groups(Some(tuples))
                .set_target_group_stickiness_config(sticky.map(|seconds| {
                    TargetGroupStickinessConfig::builder()
                        .enabled(true)
                        .duration_seconds(seconds)
                        .build()
                }))
                .build(),
        )
        .build()
}

/// Puts an image manifest under `tag` and returns the digest ECR gives it.
pub async fn put_image(aws: &Clients, repository: &str, tag: &str) -> Result<String, BoxError> {
    // A distinct, valid-looking Docker v2 manifest per tag; its digest is the sha256 of these
    // bytes, as in ECR.
    let hash = fnv(&format!("{repository}:{tag}"));
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":7023,"digest":"sha256:{hash:064x}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":32654,"digest":"sha256:{:064x}"}}]}}"#,
        hash.rotate_left(64)
    );
    let out = aws
        .ecr
        .put_image()
        .repository_name(repository)
        .image_tag(tag)
        .image_manifest(manifest)
        .send()
        .await?;
    let digest = out
        .image()
        .and_then(|i| i.image_id())
        .and_then(|id| id.image_digest())
        .ok_or("no image digest")?
        .to_string();
    Ok(digest)
}

fn fnv(s: &str) -> u128 {
    s.bytes()
        .fold(0x6c62272e07bb014262b821756295c58d_u128, |h, b| {
            (h ^ u128::from(b)).wrapping_mul(0x0000000001000000000000000000013B)
        })
}

/// Writes a Vite-like build: hashed bundles under assets/, HTML (with a nested route) and
/// unhashed public files. `version` changes the app bundle and index.html only.
pub fn sample_site(dir: &std::path::Path, version: &str) {
    let app = format!("console.log('app {version}');");
    let app_name = format!("index-{:08x}.js", fnv32(&app));
    let files: Vec<(String, Vec<u8>)> = vec![
        (
            "index.html".into(),
            format!("<!doctype html><script type=module src=/assets/{app_name}></script>")
                .into_bytes(),
        ),
        (
            "about/index.html".into(),
            b"<!doctype html><p>about</p>".to_vec(),
        ),
        (format!("assets/{app_name}"), app.into_bytes()),
        (
            "assets/vendor-3f9a1c2e.js".into(),
            b"/* react */".repeat(100),
        ),
        (
            "assets/index-8b2d4e6f.css".into(),
            b"body{margin:0}".to_vec(),
        ),
        ("assets/logo-1a2b3c4d.svg".into(), b"<svg/>".to_vec()),
        ("assets/inter-5e6f7a8b.woff2".into(), vec![1, 2, 3]),
        ("assets/module-9c8d7e6f.wasm".into(), vec![0, 97, 115, 109]),
        ("assets/index-4d3c2b1a.js.map".into(), b"{}".to_vec()),
        ("favicon.ico".into(), vec![0, 0, 1, 0]),
        ("robots.txt".into(), b"User-agent: *".to_vec()),
        ("manifest.webmanifest".into(), b"{}".to_vec()),
        ("data.json".into(), b"[]".to_vec()),
        ("hero.webp".into(), vec![82, 73, 70, 70]),
    ];
    for (path, body) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

pub fn fnv32(s: &str) -> u32 {
    s.bytes().fold(0x811c9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x01000193)
    })
}
