//! One SdkConfig factory for every command, the service clients built from it, and the
//! read-back that waits out the ELB API's eventual consistency ([`read_until`]).

pub mod autoscaling;
pub mod cloudfront;
pub mod cloudwatch;
pub mod discover;
pub mod ec2;
pub mod ecr;
pub mod listener;
pub mod rules;
pub mod s3;
pub mod ssm;
pub mod target_group;
pub mod targets;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Reads again, with a growing pause (100 ms doubling to 2 s), until `shows` accepts a reading
/// or `within` has passed, and returns the last reading. Describe* right after a write may still
/// answer with the state before it (the ELB API is eventually consistent), so a mismatch means
/// "the write did not take" only once `within` is over; the last read is made at the deadline.
pub async fn read_until<T, F, Fut>(
    within: Duration,
    mut read: F,
    shows: impl Fn(&T) -> bool,
) -> crate::error::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::error::Result<T>>,
{
    let deadline = std::time::Instant::now() + within;
    let mut pause = Duration::from_millis(100);
    loop {
        let reading = read().await?;
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if shows(&reading) || left.is_zero() {
            return Ok(reading);
        }
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// The global flags that shape how bgcloud talks to AWS.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub region: Option<String>,
    pub profile: Option<String>,
    /// Overrides every service's endpoint (LocalStack, the emulator). Without it the SDK's own
    /// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` handling applies.
    pub endpoint_url: Option<String>,
    /// Attempts per call (retries on throttling, 5xx and timeouts); 0: the SDK's default.
    pub max_attempts: u32,
}

impl From<&crate::cli::Global> for AwsOptions {
    fn from(global: &crate::cli::Global) -> AwsOptions {
        AwsOptions {
            region: global.region.clone(),
            profile: global.profile.clone(),
            endpoint_url: global.endpoint_url.clone(),
            max_attempts: global.max_attempts,
        }
    }
}

/// Loads the SDK config: flags first, then the config file's region, then the usual AWS chain
/// (environment, profile, instance metadata).
pub async fn sdk_config(opts: &AwsOptions, config_region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = opts.region.as_deref().or(config_region) {
        loader = loader.region(Region::new(region.to_string()));
    }
    if let Some(profile) = &opts.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &opts.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if opts.max_attempts > 0 {
        // Standard mode retries throttling (Throttling, SlowDown, 503) and transient errors with
        // exponential backoff and jitter; every write bgcloud makes is conditional or
        // idempotent, or its outcome is read back, so a retried write cannot do harm.
        loader = loader.retry_config(
            RetryConfig::standard()
                .with_max_attempts(opts.max_attempts)
                .with_initial_backoff(Duration::from_millis(500)),
        );
    }
    // A dead endpoint fails in seconds, not minutes; large uploads still have a minute between
    // bytes.
    loader = loader.timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(60))
            .build(),
    );
    loader.load().await
}

/// Whether an endpoint override is in effect for S3, in which case bucket names go in the path:
/// emulators do not resolve `bucket.localhost` hostnames.
fn s3_endpoint_overridden(opts: &AwsOptions) -> bool {
    let env_set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty());
    let ignored = std::env::var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_ok_and(|v| v == "true");
    opts.endpoint_url.is_some()
        || (!ignored && (env_set("AWS_ENDPOINT_URL") || env_set("AWS_ENDPOINT_URL_S3")))
}

/// The service clients bgcloud uses, all from one SdkConfig.
#[derive(Clone, Debug)]
pub struct Clients {
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub ssm: aws_sdk_ssm::Client,
    /// Signs for the config's region: reach a bucket through `buckets`, which knows its region.
    pub s3: aws_sdk_s3::Client,
    pub buckets: crate::aws::s3::Buckets,
    pub cloudfront: aws_sdk_cloudfront::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// The region the clients use ("" when none was found).
    pub region: String,
}

impl Clients {
    pub fn new(sdk: &SdkConfig, opts: &AwsOptions) -> Clients {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                .force_path_style(s3_endpoint_overridden(opts))
                .build(),
        );
        Clients {
            elb: aws_sdk_elasticloadbalancingv2::Client::new(sdk),
            ec2: aws_sdk_ec2::Client::new(sdk),
            autoscaling: aws_sdk_autoscaling::Client::new(sdk),
            ecr: aws_sdk_ecr::Client::new(sdk),
            ssm: aws_sdk_ssm::Client::new(sdk),
            buckets: crate::aws::s3::Buckets::new(s3.clone()),
            s3,
            cloudfront: aws_sdk_cloudfront::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            region: sdk.region().map(ToString::to_string).unwrap_or_default(),
        }
    }
}
