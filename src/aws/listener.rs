//! Reads, parses and writes the ALB's weighted forward to blue and green, and verifies every
//! write by reading it back.

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, TargetGroupStickinessConfig, TargetGroupTuple,
};
use aws_sdk_elasticloadbalancingv2::Client;

use crate::config::BackendConfig;
use crate::error::{aws, AwsFailure, Error, Result};
use crate::model::color::Color;
use crate::model::stickiness::{Stickiness, StickyWrite};
use crate::model::weights::Weights;

/// The forward action as it is now, with everything around it kept for the next write.
#[derive(Debug, Clone)]
pub struct Forward {
    /// "listener ARN" or "listener rule ARN", for messages.
    pub resource: String,
    actions: Vec<Action>,
    index: usize,
    pub weights: Weights,
    /// The forward names one target group only (a plain `TargetGroupArn`, as most listeners
    /// are created): the other colour's group is then `unused` and never health-checked.
    pub plain: bool,
}

impl Forward {
    /// Parses the actions of a listener or rule. Refuses anything that is not one forward
    /// action to (a subset of) exactly blue and green.
    pub fn parse(
        resource: String,
        actions: Vec<Action>,
        backend: &BackendConfig,
    ) -> Result<Forward> {
        let forwards: Vec<usize> = actions
            .iter()
            .enumerate()
            .filter(|(_, a)| a.r#type() == Some(&ActionTypeEnum::Forward))
            .map(|(i, _)| i)
            .collect();
        let index = match forwards.as_slice() {
            [i] => *i,
            [] => {
                return Err(Error::refused(format!(
                    "{resource} has no forward action: bgcloud needs it to forward to the blue and \
                     green target groups (weights 100/0); fix the listener, or set rule_arn to a \
                     rule that does"
                )))
            }
            _ => {
                return Err(Error::refused(format!(
                "{resource} has {} forward actions: bgcloud manages exactly one, to blue and green",
                forwards.len()
            )))
            }
        };
        let groups = target_groups(&actions[index]);
        let mut blue = 0;
        let mut green = 0;
        let mut strangers = Vec::new();
        for (arn, weight) in &groups {
            if arn == &backend.blue_target_group_arn {
                blue += weight;
            } else if arn == &backend.green_target_group_arn {
                green += weight;
            } else {
                strangers.push(arn.clone());
            }
        }
        if !strangers.is_empty() {
            return Err(Error::refused(format!(
                "{resource} forwards to {} target group(s), including {}; bgcloud manages exactly \
                 two: blue and green. Set rule_arn to a rule that forwards to blue and green only, \
                 or fix blue_target_group_arn/green_target_group_arn in the config",
                groups.len(),
                strangers.join(", ")
            )));
        }
        let weights = Weights::from_raw(blue, green).ok_or_else(|| {
            Error::refused(format!(
                "{resource} forwards with weight 0 to both blue and green: no traffic is served; \
                 run `bgcloud shift --to blue` (or green) to send it to one colour"
            ))
        })?;
        Ok(Forward {
            resource,
            actions,
            index,
            weights,
            plain: groups.len() == 1,
        })
    }

    /// The forward's target-group stickiness, when it is on.
    pub fn stickiness(&self) -> Option<Stickiness> {
        let config = self.actions[self.index]
            .forward_config()
            .and_then(|f| f.target_group_stickiness_config())?;
        (config.enabled() == Some(true)).then(|| Stickiness {
            duration_seconds: config.duration_seconds().unwrap_or(0).max(0) as u32,
        })
    }

    /// The actions to write for `to`: the same list, with the forward action's weights replaced.
    /// Both target groups stay in it (the idle one at weight 0) so the ALB keeps health-checking
    /// the idle colour; stickiness as `sticky` says.
    pub fn with_weights(
        &self,
        to: Weights,
        backend: &BackendConfig,
        sticky: StickyWrite,
    ) -> Vec<Action> {
        let old = &self.actions[self.index];
        let stickiness = match sticky {
            StickyWrite::Keep => old
                .forward_config()
                .and_then(|f| f.target_group_stickiness_config())
                .cloned(),
            StickyWrite::Off => Some(
                TargetGroupStickinessConfig::builder()
                    .enabled(false)
                    .build(),
            ),
            StickyWrite::Restore(s) => Some(
                TargetGroupStickinessConfig::builder()
                    .enabled(true)
                    .duration_seconds(s.duration_seconds as i32)
                    .build(),
            ),
        };
        let tuples = Color::BOTH
            .iter()
            .map(|&c| {
                TargetGroupTuple::builder()
                    .target_group_arn(backend.target_group_arn(c))
                    .weight(i32::from(to.get(c)))
                    .build()
            })
            .collect();
        let forward_config = ForwardActionConfig::builder()
            .set_target_groups(Some(tuples))
            .set_target_group_stickiness_config(stickiness)
            .build();
        let action = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .set_order(old.order())
            .forward_config(forward_config)
            .build();
        let mut actions = self.actions.clone();
        actions[self.index] = action;
        keep_client_secrets(&mut actions);
        actions
    }
}

/// Actions read back and written again: the API never returns an OIDC client secret and refuses
/// a write without one unless told to keep the one it has.
pub(crate) fn keep_client_secrets(actions: &mut [Action]) {
    for a in actions {
        if let Some(oidc) = a.authenticate_oidc_config.as_mut() {
            if oidc.client_secret.is_none() {
                oidc.use_existing_client_secret = Some(true);
            }
        }
    }
}

/// (target group ARN, weight) pairs of a forward action, in both forms the API returns: a
/// weighted `ForwardConfig`, or a plain `TargetGroupArn` (weight 1).
pub(crate) fn target_groups(action: &Action) -> Vec<(String, u32)> {
    let tuples = action
        .forward_config()
        .map(|f| f.target_groups())
        .unwrap_or_default();
    if !tuples.is_empty() {
        return tuples
            .iter()
            .filter_map(|t| {
                let weight = if tuples.len() == 1 {
                    1
                } else {
                    t.weight().unwrap_or(1).max(0) as u32
                };
                t.target_group_arn().map(|arn| (arn.to_string(), weight))
            })
            .collect();
    }
    action
        .target_group_arn()
        .map(|arn| vec![(arn.to_string(), 1)])
        .unwrap_or_default()
}

/// Reads the listener (or the rule, when `rule_arn` is set) and parses its forward action.
pub async fn read(elb: &Client, backend: &BackendConfig) -> Result<Forward> {
    if let Some(rule_arn) = &backend.rule_arn {
        let resource = format!("listener rule {rule_arn}");
        let out = elb
            .describe_rules()
            .rule_arns(rule_arn)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_rule_not_found_exception())
                {
                    Error::refused(format!(
                        "{resource} does not exist: check rule_arn in the config"
                    ))
                } else {
                    aws(format!("reading {resource}"))(e)
                }
            })?;
        let rule = out.rules().first().ok_or_else(|| {
            Error::refused(format!(
                "{resource} does not exist: check rule_arn in the config"
            ))
        })?;
        if rule.is_default() == Some(true) {
            return Err(Error::refused(format!(
                "{resource} is its listener's default rule, which ModifyRule cannot change: \
                 remove rule_arn from the config so bgcloud drives the listener's default action \
                 (listener_arn), or set it to a rule with conditions"
            )));
        }
        Forward::parse(resource, rule.actions().to_vec(), backend)
    } else {
        let resource = format!("listener {}", backend.listener_arn);
        let out = elb
            .describe_listeners()
            .listener_arns(&backend.listener_arn)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_listener_not_found_exception())
                {
                    Error::refused(format!(
                        "{resource} does not exist: check listener_arn in the config"
                    ))
                } else {
                    aws(format!("reading {resource}"))(e)
                }
            })?;
        let listener = out.listeners().first().ok_or_else(|| {
            Error::refused(format!(
                "{resource} does not exist: check listener_arn in the config"
            ))
        })?;
        Forward::parse(resource, listener.default_actions().to_vec(), backend)
    }
}

/// A failed [`write`]: what went wrong, and whether the listener may have changed anyway.
#[derive(Debug)]
pub struct WriteFailed {
    pub error: Error,
    /// The write call failed in a way that does not rule out its having been applied (a 5xx, a
    /// timeout), or it went through and the read-back could not be made: a read now may still
    /// show the state before it. False for a refused call (a throttle, any 4xx) and for a
    /// read-back that kept showing something else until `readback_timeout`.
    pub maybe_applied: bool,
}

impl From<WriteFailed> for Error {
    fn from(w: WriteFailed) -> Error {
        w.error
    }
}

impl From<Error> for WriteFailed {
    /// A failed read: nothing was written.
    fn from(error: Error) -> WriteFailed {
        WriteFailed {
            error,
            maybe_applied: false,
        }
    }
}

/// Sets the weights to `to` (and stickiness as `sticky` says), then reads the listener back and
/// fails unless it says exactly that.
pub async fn write(
    elb: &Client,
    backend: &BackendConfig,
    current: &Forward,
    to: Weights,
    sticky: StickyWrite,
) -> Result<Forward, WriteFailed> {
    let actions = current.with_weights(to, backend, sticky);
    let expected = match sticky {
        StickyWrite::Keep => current.stickiness(),
        StickyWrite::Off => None,
        StickyWrite::Restore(s) => Some(s),
    };
    let doing = format!("setting {to} on {}", current.resource);
    let failed = |failure: AwsFailure| WriteFailed {
        maybe_applied: failure.may_have_applied(),
        error: Error::Failed(failure.explain(&doing)),
    };
    if let Some(rule_arn) = &backend.rule_arn {
        elb.modify_rule()
            .rule_arn(rule_arn)
            .set_actions(Some(actions))
            .send()
            .await
            .map_err(|e| failed(AwsFailure::of(&e)))?;
    } else {
        elb.modify_listener()
            .listener_arn(&backend.listener_arn)
            .set_default_actions(Some(actions))
            .send()
            .await
            .map_err(|e| failed(AwsFailure::of(&e)))?;
    }
    // Describe* right after a write may still answer with the state before it: read again, with
    // a growing pause, until it shows the change or readback_timeout has passed. Only then is a
    // mismatch the write not having taken (and a stale read never undoes a good change).
    let after = super::read_until(
        backend.readback_timeout,
        || read(elb, backend),
        |after| after.weights == to && after.stickiness() == expected,
    )
    .await
    .map_err(|error| WriteFailed {
        error,
        maybe_applied: true,
    })?;
    if after.weights != to || after.stickiness() != expected {
        // Stickiness in the message only where it is part of what differs or was asked.
        let sticky = |s: Option<Stickiness>| match (after.stickiness(), expected) {
            (None, None) => String::new(),
            _ => format!(
                " (stickiness {})",
                s.map_or("off".into(), |s| s.to_string())
            ),
        };
        return Err(WriteFailed::from(Error::failed(format!(
            "{} still reads {}{} {} after bgcloud set {to}{}: the change did not take as \
             written; run `bgcloud status` and correct it with `bgcloud shift`",
            after.resource,
            after.weights,
            sticky(after.stickiness()),
            humantime::format_duration(backend.readback_timeout),
            sticky(expected),
        ))));
    }
    Ok(after)
}

/// Where a listener answers: its protocol and port, and its load balancer's DNS name.
pub struct Address {
    pub protocol: Option<String>,
    pub port: i32,
    pub dns_name: String,
}

/// Reads the listener and its load balancer (DescribeListeners + DescribeLoadBalancers).
pub async fn address(elb: &Client, listener: &str) -> Result<Address> {
    let out = elb
        .describe_listeners()
        .listener_arns(listener)
        .send()
        .await
        .map_err(aws(format!("reading listener {listener}")))?;
    let l = out.listeners().first().ok_or_else(|| {
        Error::refused(format!(
            "listener {listener} does not exist: check listener_arn"
        ))
    })?;
    let lb = l.load_balancer_arn().unwrap_or_default();
    let out = elb
        .describe_load_balancers()
        .load_balancer_arns(lb)
        .send()
        .await
        .map_err(aws(format!("reading load balancer {lb}")))?;
    let dns = out
        .load_balancers()
        .first()
        .and_then(|b| b.dns_name())
        .ok_or_else(|| {
            Error::failed(format!(
                "load balancer {lb} has no DNS name: set [backend.preview].url"
            ))
        })?;
    Ok(Address {
        protocol: l.protocol().map(|p| p.as_str().to_string()),
        port: l.port().unwrap_or(0),
        dns_name: dns.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn backend() -> BackendConfig {
        let text = r#"
app = "t"
[state]
bucket = "b"
[backend]
listener_arn = "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/a/1/2"
blue_target_group_arn = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/blue/1"
green_target_group_arn = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/green/2"
repository = "r"
container_port = 3000
blue_port = 8081
green_port = 8082
instance_ids = ["i-1"]
"#;
        Config::parse(text, "t.toml".as_ref())
            .unwrap()
            .backend
            .unwrap()
    }

    fn weighted(groups: &[(&str, i32)]) -> Action {
        let tuples = groups
            .iter()
            .map(|(arn, w)| {
                TargetGroupTuple::builder()
                    .target_group_arn(*arn)
                    .weight(*w)
                    .build()
            })
            .collect();
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(
                ForwardActionConfig::builder()
                    .set_target_groups(Some(tuples))
                    .build(),
            )
            .build()
    }

    #[test]
    fn weighted_and_plain_forwards_parse() {
        let b = backend();
        let f = Forward::parse(
            "l".into(),
            vec![weighted(&[
                (&b.blue_target_group_arn, 90),
                (&b.green_target_group_arn, 10),
            ])],
            &b,
        )
        .unwrap();
        assert_eq!(
            f.weights,
            Weights {
                blue: 90,
                green: 10
            }
        );

        let plain = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(&b.green_target_group_arn)
            .build();
        let f = Forward::parse("l".into(), vec![plain], &b).unwrap();
        assert_eq!(
            f.weights,
            Weights {
                blue: 0,
                green: 100
            }
        );
    }

    #[test]
    fn a_third_target_group_is_refused_by_name() {
        let b = backend();
        let other = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/other/3";
        let e = Forward::parse(
            "listener L".into(),
            vec![weighted(&[
                (&b.blue_target_group_arn, 1),
                (&b.green_target_group_arn, 0),
                (other, 0),
            ])],
            &b,
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(
            msg.contains("3 target group") && msg.contains(other) && msg.contains("rule_arn"),
            "{msg}"
        );
    }

    #[test]
    fn rewrite_keeps_other_actions_and_both_groups() {
        let b = backend();
        let oidc = aws_sdk_elasticloadbalancingv2::types::AuthenticateOidcActionConfig::builder()
            .issuer("https://idp.example.com")
            .authorization_endpoint("https://idp.example.com/auth")
            .token_endpoint("https://idp.example.com/token")
            .user_info_endpoint("https://idp.example.com/userinfo")
            .client_id("client")
            .build();
        let auth = Action::builder()
            .r#type(ActionTypeEnum::AuthenticateOidc)
            .order(1)
            .authenticate_oidc_config(oidc)
            .build();
        let fwd = weighted(&[
            (&b.blue_target_group_arn, 100),
            (&b.green_target_group_arn, 0),
        ]);
        let f = Forward::parse("l".into(), vec![auth.clone(), fwd], &b).unwrap();
        let actions = f.with_weights(Weights::all(Color::Green), &b, StickyWrite::Keep);
        // Kept, but told to keep its secret: the API never returns it and refuses the write
        // without it.
        let kept = actions[0].authenticate_oidc_config().unwrap();
        assert_eq!(kept.use_existing_client_secret(), Some(true));
        assert_eq!(kept.client_id(), Some("client"));
        assert_eq!(actions[0].order(), Some(1));
        let again = Forward::parse("l".into(), actions.clone(), &b).unwrap();
        assert_eq!(
            again.weights,
            Weights {
                blue: 0,
                green: 100
            }
        );
        assert_eq!(
            target_groups(&actions[1]).len(),
            2,
            "idle colour stays attached at weight 0"
        );
    }
}
