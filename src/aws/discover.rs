//! Reads a stack that already exists, for `bgcloud init`: a load balancer and its listeners with
//! the target groups they forward to, each group's registered targets, the instances' tags, the
//! ECR repositories, a distribution's S3 origins. Read-only; what to make of it is `cmd::init`'s.

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum};
use aws_sdk_elasticloadbalancingv2::Client;

use crate::error::{aws, Error, Result};

/// One load balancer.
#[derive(Debug, Clone)]
pub struct LoadBalancer {
    pub arn: String,
    pub name: String,
    pub kind: String,
}

/// One listener and the target groups its default action forwards to (in the action's order).
#[derive(Debug, Clone)]
pub struct Listener {
    pub arn: String,
    pub port: i32,
    pub protocol: String,
    pub forwards_to: Vec<String>,
}

/// One target group: its name, port, and the `(instance, port)` targets registered in it.
#[derive(Debug, Clone)]
pub struct Group {
    pub arn: String,
    pub name: String,
    pub port: Option<i32>,
    pub targets: Vec<(String, Option<i32>)>,
}

/// The load balancer named `name_or_arn` (a name, or an ARN).
pub async fn load_balancer(elb: &Client, name_or_arn: &str) -> Result<LoadBalancer> {
    let request = elb.describe_load_balancers();
    let request = if name_or_arn.starts_with("arn:") {
        request.load_balancer_arns(name_or_arn)
    } else {
        request.names(name_or_arn)
    };
    let out = request.send().await.map_err(|e| {
        if e.as_service_error()
            .is_some_and(|s| s.is_load_balancer_not_found_exception())
        {
            Error::refused(format!(
                "load balancer {name_or_arn:?} does not exist in this account and region: check \
                 the name (`aws elbv2 describe-load-balancers --query \
                 'LoadBalancers[].LoadBalancerName'`) and --region"
            ))
        } else {
            aws(format!("reading load balancer {name_or_arn}"))(e)
        }
    })?;
    let lb = out.load_balancers().first().ok_or_else(|| {
        Error::refused(format!(
            "load balancer {name_or_arn:?} does not exist in this account and region"
        ))
    })?;
    Ok(LoadBalancer {
        arn: lb.load_balancer_arn().unwrap_or_default().to_string(),
        name: lb.load_balancer_name().unwrap_or_default().to_string(),
        kind: lb
            .r#type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
    })
}

/// The load balancer's listeners, by port.
pub async fn listeners(elb: &Client, load_balancer_arn: &str) -> Result<Vec<Listener>> {
    let out = elb
        .describe_listeners()
        .load_balancer_arn(load_balancer_arn)
        .send()
        .await
        .map_err(aws(format!("reading the listeners of {load_balancer_arn}")))?;
    let mut listeners: Vec<Listener> = out
        .listeners()
        .iter()
        .map(|l| Listener {
            arn: l.listener_arn().unwrap_or_default().to_string(),
            port: l.port().unwrap_or_default(),
            protocol: l
                .protocol()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            forwards_to: forwards_to(l.default_actions()),
        })
        .collect();
    listeners.sort_by_key(|l| l.port);
    Ok(listeners)
}

/// The target groups a forward action among `actions` names, in its order.
fn forwards_to(actions: &[Action]) -> Vec<String> {
    let Some(forward) = actions
        .iter()
        .find(|a| a.r#type() == Some(&ActionTypeEnum::Forward))
    else {
        return Vec::new();
    };
    let weighted: Vec<String> = forward
        .forward_config()
        .map(|c| {
            c.target_groups()
                .iter()
                .filter_map(|t| t.target_group_arn().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if weighted.is_empty() {
        forward
            .target_group_arn()
            .map(|a| vec![a.to_string()])
            .unwrap_or_default()
    } else {
        weighted
    }
}

/// The target groups `arns`, in that order, each with its registered targets.
pub async fn groups(elb: &Client, arns: &[String]) -> Result<Vec<Group>> {
    let out = elb
        .describe_target_groups()
        .set_target_group_arns(Some(arns.to_vec()))
        .send()
        .await
        .map_err(aws("reading the listener's target groups"))?;
    let mut groups = Vec::new();
    for arn in arns {
        let tg = out
            .target_groups()
            .iter()
            .find(|t| t.target_group_arn() == Some(arn))
            .ok_or_else(|| Error::failed(format!("target group {arn} was not returned")))?;
        let health = elb
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(aws(format!("reading the targets of {arn}")))?;
        groups.push(Group {
            arn: arn.clone(),
            name: tg.target_group_name().unwrap_or_default().to_string(),
            port: tg.port(),
            targets: health
                .target_health_descriptions()
                .iter()
                .filter_map(|d| d.target())
                .filter_map(|t| t.id().map(|id| (id.to_string(), t.port())))
                .collect(),
        });
    }
    Ok(groups)
}

/// Each instance's tags.
pub async fn instance_tags(
    ec2: &aws_sdk_ec2::Client,
    ids: &[String],
) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let out = ec2
        .describe_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .map_err(aws(format!("reading instances {}", ids.join(", "))))?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            let tags = i
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                .collect();
            (i.instance_id().unwrap_or_default().to_string(), tags)
        })
        .collect())
}

/// The names of the account's ECR repositories in this region (at most the first 1,000).
pub async fn repositories(ecr: &aws_sdk_ecr::Client) -> Result<Vec<String>> {
    let out = ecr
        .describe_repositories()
        .max_results(1000)
        .send()
        .await
        .map_err(aws("listing the ECR repositories"))?;
    Ok(out
        .repositories()
        .iter()
        .filter_map(|r| r.repository_name().map(str::to_string))
        .collect())
}

/// The S3 buckets a distribution's origins name (`<bucket>.s3….amazonaws.com`), each once (a
/// shared-assets layout has two origins on one bucket).
pub async fn distribution_buckets(
    cf: &aws_sdk_cloudfront::Client,
    id: &str,
) -> Result<Vec<String>> {
    let out = cf.get_distribution().id(id).send().await.map_err(|e| {
        if e.as_service_error()
            .is_some_and(|s| s.is_no_such_distribution())
        {
            Error::refused(format!(
                "distribution {id} does not exist: check the id (`aws cloudfront \
                 list-distributions --query 'DistributionList.Items[].Id'`)"
            ))
        } else {
            aws(format!("reading distribution {id}"))(e)
        }
    })?;
    let origins = out
        .distribution()
        .and_then(|d| d.distribution_config())
        .and_then(|c| c.origins())
        .map(|o| o.items().to_vec())
        .unwrap_or_default();
    let mut buckets: Vec<String> = origins
        .iter()
        .filter_map(|o| {
            o.domain_name()
                .split_once(".s3")
                .map(|(b, _)| b.to_string())
        })
        .collect();
    buckets.sort();
    buckets.dedup();
    Ok(buckets)
}
