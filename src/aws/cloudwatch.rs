//! Reads for the gates: the ALB's per-target-group metrics over a window (one GetMetricData for
//! both colours) and the alarms' states (one DescribeAlarms). Failures become unreadable gates
//! rather than errors: a watch reports them and fails safe.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{AlarmType, Dimension, Metric, MetricDataQuery, MetricStat};
use aws_sdk_cloudwatch::Client;

use crate::error::AwsFailure;

/// One colour's ALB metrics over a window; `None` where CloudWatch has no datapoint.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ColorMetrics {
    /// RequestCount: requests a target of the group was chosen for, whether or not it answered.
    pub requests: Option<f64>,
    /// HTTPCode_Target_5XX_Count: 5xx answers the targets gave (never the load balancer's own).
    pub errors_5xx: Option<f64>,
    /// HTTPCode_Target_{2,3,4,5}XX_Count together: requests a target answered at all.
    pub answered: Option<f64>,
    /// TargetConnectionErrorCount: connections to a target that could not be made.
    pub connection_errors: Option<f64>,
    /// UnHealthyHostCount, the highest of the window.
    pub unhealthy_hosts: Option<f64>,
    /// TargetResponseTime p99, seconds.
    pub p99: Option<f64>,
    /// The start of the latest period any of these metrics has a datapoint for: how far the
    /// published data reaches (the ALB publishes late, and nothing for a quiet period).
    pub latest: Option<SystemTime>,
}

/// The ALB's dimension values: `app/<name>/<id>` and `targetgroup/<name>/<id>`.
#[derive(Debug, Clone)]
pub struct Dimensions {
    pub load_balancer: String,
    pub new_group: String,
    pub stable_group: String,
}

impl Dimensions {
    /// From the listener ARN (`…:listener/app/<name>/<id>/<listener id>`) and the two target
    /// group ARNs (`…:targetgroup/<name>/<id>`).
    pub fn new(listener_arn: &str, new_group_arn: &str, stable_group_arn: &str) -> Dimensions {
        let after = |arn: &str, marker: &str| {
            arn.split_once(marker)
                .map(|(_, rest)| rest.to_string())
                .unwrap_or_default()
        };
        let listener = after(listener_arn, ":listener/");
        let load_balancer = listener
            .rsplit_once('/')
            .map(|(lb, _)| lb.to_string())
            .unwrap_or(listener);
        Dimensions {
            load_balancer,
            new_group: format!("targetgroup/{}", after(new_group_arn, ":targetgroup/")),
            stable_group: format!("targetgroup/{}", after(stable_group_arn, ":targetgroup/")),
        }
    }
}

fn query(
    id: &str,
    group: &str,
    load_balancer: &str,
    (name, stat): (&str, &str),
    period: Duration,
) -> MetricDataQuery {
    let dimension = |n: &str, v: &str| Dimension::builder().name(n).value(v).build();
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace("AWS/ApplicationELB")
                        .metric_name(name)
                        .dimensions(dimension("TargetGroup", group))
                        .dimensions(dimension("LoadBalancer", load_balancer))
                        .build(),
                )
                .period(period.as_secs().max(1) as i32)
                .stat(stat)
                .build(),
        )
        .return_data(true)
        .build()
}

/// Both colours' figures over the periods from `from` up to `to` (whole periods, as the ALB
/// publishes them): sums of RequestCount, of what the targets answered by class and of
/// TargetConnectionErrorCount; the highest per-period p99 of TargetResponseTime and the highest
/// UnHealthyHostCount.
pub async fn colors(
    cw: &Client,
    dims: &Dimensions,
    (from, to): (SystemTime, SystemTime),
    period: Duration,
) -> Result<(ColorMetrics, ColorMetrics), AwsFailure> {
    let mut request = cw
        .get_metric_data()
        .start_time(DateTime::from(from))
        .end_time(DateTime::from(to.max(from + period)));
    for (prefix, group) in [("new", &dims.new_group), ("stable", &dims.stable_group)] {
        for (id, metric) in [
            ("requests", ("RequestCount", "Sum")),
            ("t2xx", ("HTTPCode_Target_2XX_Count", "Sum")),
            ("t3xx", ("HTTPCode_Target_3XX_Count", "Sum")),
            ("t4xx", ("HTTPCode_Target_4XX_Count", "Sum")),
            ("errors", ("HTTPCode_Target_5XX_Count", "Sum")),
            ("connerrors", ("TargetConnectionErrorCount", "Sum")),
            ("p99", ("TargetResponseTime", "p99")),
            ("unhealthy", ("UnHealthyHostCount", "Maximum")),
        ] {
            request = request.metric_data_queries(query(
                &format!("{prefix}_{id}"),
                group,
                &dims.load_balancer,
                metric,
                period,
            ));
        }
    }
    let out = request.send().await.map_err(|e| AwsFailure::of(&e))?;
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut latest: BTreeMap<String, SystemTime> = BTreeMap::new();
    for result in out.metric_data_results() {
        let Some(id) = result.id() else { continue };
        values
            .entry(id.to_string())
            .or_default()
            .extend(result.values().iter().copied().filter(|v| v.is_finite()));
        let prefix = id.split('_').next().unwrap_or_default().to_string();
        for t in result.timestamps() {
            let t = SystemTime::try_from(*t).unwrap_or(SystemTime::UNIX_EPOCH);
            let entry = latest.entry(prefix.clone()).or_insert(t);
            *entry = (*entry).max(t);
        }
    }
    let sum = |id: &str| {
        values
            .get(id)
            .filter(|v| !v.is_empty())
            .map(|v| v.iter().sum::<f64>())
    };
    let max = |id: &str| {
        values
            .get(id)
            .filter(|v| !v.is_empty())
            .map(|v| v.iter().copied().fold(f64::MIN, f64::max))
    };
    let color = |prefix: &str| {
        let classes: Vec<f64> = ["t2xx", "t3xx", "t4xx", "errors"]
            .iter()
            .filter_map(|c| sum(&format!("{prefix}_{c}")))
            .collect();
        ColorMetrics {
            requests: sum(&format!("{prefix}_requests")),
            errors_5xx: sum(&format!("{prefix}_errors")),
            answered: (!classes.is_empty()).then(|| classes.iter().sum()),
            connection_errors: sum(&format!("{prefix}_connerrors")),
            unhealthy_hosts: max(&format!("{prefix}_unhealthy")),
            p99: max(&format!("{prefix}_p99")),
            latest: latest.get(prefix).copied(),
        }
    };
    Ok((color("new"), color("stable")))
}

/// The state (OK, ALARM, INSUFFICIENT_DATA) of each alarm of `names` that exists.
pub async fn alarms(cw: &Client, names: &[String]) -> Result<BTreeMap<String, String>, AwsFailure> {
    // Without AlarmTypes, DescribeAlarms answers metric alarms only: a composite alarm would
    // read as missing.
    let out = cw
        .describe_alarms()
        .set_alarm_names(Some(names.to_vec()))
        .alarm_types(AlarmType::MetricAlarm)
        .alarm_types(AlarmType::CompositeAlarm)
        .send()
        .await
        .map_err(|e| AwsFailure::of(&e))?;
    let mut states = BTreeMap::new();
    for a in out.metric_alarms() {
        if let (Some(name), Some(state)) = (a.alarm_name(), a.state_value()) {
            states.insert(name.to_string(), state.as_str().to_string());
        }
    }
    for a in out.composite_alarms() {
        if let (Some(name), Some(state)) = (a.alarm_name(), a.state_value()) {
            states.insert(name.to_string(), state.as_str().to_string());
        }
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_come_from_the_arns() {
        let d = Dimensions::new(
            "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2",
            "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/shop-green/83e2d6bc24d8a067",
            "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/shop-blue/73e2d6bc24d8a067",
        );
        assert_eq!(d.load_balancer, "app/shop/50dc6c495c0c9188");
        assert_eq!(d.new_group, "targetgroup/shop-green/83e2d6bc24d8a067");
        assert_eq!(d.stable_group, "targetgroup/shop-blue/73e2d6bc24d8a067");
    }
}
