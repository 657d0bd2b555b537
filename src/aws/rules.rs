//! A listener's rules (ELBv2): listing them with their tags, creating, modifying, moving and
//! reading back one rule. Used for bgcloud's own preview rule; the decisions (which rule, which
//! priority, what it matches) are the caller's.

use aws_sdk_elasticloadbalancingv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_elasticloadbalancingv2::types::{Action, Rule, RuleCondition, RulePriorityPair, Tag};
use aws_sdk_elasticloadbalancingv2::Client;

use crate::error::{aws, AwsFailure, Error, Result};

/// DescribeTags takes at most 20 ARNs a call.
const TAGS_PER_CALL: usize = 20;

/// The quotas a listener rule must fit (Service Quotas for Elastic Load Balancing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `rules-per-application-load-balancer`: rules on all its listeners, default rules not
    /// counted.
    pub rules_per_load_balancer: usize,
    /// `condition-values-per-alb-rule`: the values of all of a rule's conditions together.
    pub condition_values_per_rule: usize,
}

impl Limits {
    /// The defaults AWS documents, for where DescribeAccountLimits cannot be asked.
    pub const DEFAULT: Limits = Limits {
        rules_per_load_balancer: 100,
        condition_values_per_rule: 5,
    };
}

/// The account's rule quotas (DescribeAccountLimits): a raised quota is honoured. Where the call
/// is unavailable (not allowed, not implemented), the documented defaults, with a note.
pub async fn limits(elb: &Client) -> Limits {
    let mut limits = Limits::DEFAULT;
    let mut pages = elb.describe_account_limits().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                tracing::debug!(
                    "{}; using the default rule quotas (100 rules a load balancer, 5 condition \
                     values a rule)",
                    AwsFailure::of(&e).explain("reading the account's ELB quotas")
                );
                return Limits::DEFAULT;
            }
        };
        for l in page.limits() {
            let max = l
                .max()
                .and_then(|m| m.parse::<f64>().ok())
                .map(|m| m as usize);
            match (l.name(), max) {
                (Some("rules-per-application-load-balancer"), Some(m)) => {
                    limits.rules_per_load_balancer = m
                }
                (Some("condition-values-per-alb-rule"), Some(m)) => {
                    limits.condition_values_per_rule = m
                }
                _ => {}
            }
        }
    }
    limits
}

/// The rules on every listener of `load_balancer` (default rules not counted): what its
/// `rules-per-application-load-balancer` quota counts.
pub async fn count_on_load_balancer(elb: &Client, load_balancer: &str) -> Result<usize> {
    let mut count = 0;
    let mut pages = elb
        .describe_listeners()
        .load_balancer_arn(load_balancer)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(aws(format!("listing the listeners of {load_balancer}")))?;
        for l in page.listeners() {
            if let Some(arn) = l.listener_arn() {
                count += list(elb, arn).await?.len();
            }
        }
    }
    Ok(count)
}

/// How many values a condition holds, as the `condition-values-per-alb-rule` quota counts them
/// (a query-string condition: one per key/value pair).
pub fn condition_values(c: &RuleCondition) -> usize {
    let n = [
        c.http_header_config().map(|h| h.values().len()),
        c.path_pattern_config().map(|p| p.values().len()),
        c.host_header_config().map(|h| h.values().len()),
        c.source_ip_config().map(|s| s.values().len()),
        c.http_request_method_config().map(|m| m.values().len()),
        c.query_string_config().map(|q| q.values().len()),
    ]
    .into_iter()
    .flatten()
    .sum::<usize>();
    // The legacy form: a field with `values` directly on the condition.
    n.max(c.values().len())
}

/// The listener's rules but its default rule, every page.
pub async fn list(elb: &Client, listener: &str) -> Result<Vec<Rule>> {
    let mut all = Vec::new();
    let mut marker = None;
    loop {
        let out = elb
            .describe_rules()
            .listener_arn(listener)
            .set_marker(marker)
            .send()
            .await
            .map_err(aws(format!("reading the rules of listener {listener}")))?;
        all.extend(
            out.rules()
                .iter()
                .filter(|r| r.is_default() != Some(true))
                .cloned(),
        );
        match out.next_marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    Ok(all)
}

/// `(rule ARN, value)` of every rule in `rules` tagged `key`.
pub async fn tagged(
    elb: &Client,
    listener: &str,
    rules: &[Rule],
    key: &str,
) -> Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    for chunk in rules.chunks(TAGS_PER_CALL) {
        let arns: Vec<String> = chunk.iter().filter_map(|r| r.rule_arn.clone()).collect();
        let out = elb
            .describe_tags()
            .set_resource_arns(Some(arns))
            .send()
            .await
            .map_err(aws(format!(
                "reading the tags of listener {listener}'s rules (to find bgcloud's preview rule)"
            )))?;
        for d in out.tag_descriptions() {
            let tagged = d.tags().iter().find(|t| t.key() == Some(key));
            if let (Some(v), Some(arn)) = (tagged.and_then(|t| t.value()), d.resource_arn()) {
                found.push((arn.to_string(), v.to_string()));
            }
        }
    }
    Ok(found)
}

/// Creates a rule with one condition and one action at `priority`, tagged `tag` on creation.
/// None: another rule took the priority (PriorityInUse).
pub async fn create(
    elb: &Client,
    listener: &str,
    priority: u16,
    condition: RuleCondition,
    action: Action,
    tag: (&str, &str),
) -> Result<Option<String>> {
    let (key, value) = tag;
    let created = elb
        .create_rule()
        .listener_arn(listener)
        .priority(i32::from(priority))
        .conditions(condition)
        .actions(action)
        .tags(Tag::builder().key(key).value(value).build())
        .send()
        .await;
    if priority_in_use(&created) {
        return Ok(None);
    }
    let out = created.map_err(aws(format!(
        "creating the preview rule on listener {listener} at priority {priority} (tagged {key}, \
         which needs elasticloadbalancing:AddTags as well)"
    )))?;
    let arn = out
        .rules()
        .first()
        .and_then(|r| r.rule_arn())
        .ok_or_else(|| {
            Error::failed(format!(
                "CreateRule on listener {listener} answered without the new rule's ARN; look for \
                 a rule tagged {key}={value} on the listener, then deploy again"
            ))
        })?;
    Ok(Some(arn.to_string()))
}

/// Replaces the rule's conditions and actions (ModifyRule replaces both lists whole); `doing`
/// says what for, in the error.
pub async fn modify(
    elb: &Client,
    arn: &str,
    conditions: Vec<RuleCondition>,
    actions: Vec<Action>,
    doing: &str,
) -> Result<()> {
    elb.modify_rule()
        .rule_arn(arn)
        .set_conditions(Some(conditions))
        .set_actions(Some(actions))
        .send()
        .await
        .map_err(aws(doing))?;
    Ok(())
}

/// Moves the rule to `priority`; false: another rule has it (PriorityInUse).
pub async fn set_priority(elb: &Client, arn: &str, priority: u16) -> Result<bool> {
    let moved = elb
        .set_rule_priorities()
        .rule_priorities(
            RulePriorityPair::builder()
                .rule_arn(arn)
                .priority(i32::from(priority))
                .build(),
        )
        .send()
        .await;
    if priority_in_use(&moved) {
        return Ok(false);
    }
    moved.map_err(aws(format!(
        "moving the preview rule {arn} to priority {priority}"
    )))?;
    Ok(true)
}

/// The rule as it reads now (after a write: its read-back); None where DescribeRules does not
/// know it (yet: a rule just created may not be listed for a moment).
pub async fn read(elb: &Client, arn: &str) -> Result<Option<Rule>> {
    let out = elb.describe_rules().rule_arns(arn).send().await;
    match out {
        Ok(out) => Ok(out.rules().first().cloned()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_rule_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(aws(format!("reading back the preview rule {arn}"))(e)),
    }
}

/// Another rule took the priority between bgcloud's read and its write (CreateRule and
/// SetRulePriorities both answer PriorityInUse).
fn priority_in_use<T, E: ProvideErrorMetadata, R>(
    result: &std::result::Result<T, SdkError<E, R>>,
) -> bool {
    result
        .as_ref()
        .is_err_and(|e| e.as_service_error().and_then(|s| s.code()) == Some("PriorityInUse"))
}
