//! The preview route: one listener rule of bgcloud's own (tagged `bgcloud:preview` = the app)
//! that forwards requests carrying a header to the colour a deploy prepares, so smoke tests
//! reach the new containers through the real ALB before any user does.

use std::collections::BTreeSet;
use std::fmt;

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, HttpHeaderConditionConfig, Rule,
    RuleCondition,
};
use aws_sdk_elasticloadbalancingv2::Client;
use serde::Serialize;

use crate::aws::{self, listener, rules};
use crate::config::{BackendConfig, PreviewConfig};
use crate::error::{Error, Result};
use crate::model::color::Color;

/// The tag that marks the rule as bgcloud's; its value is the app, so two apps on one listener
/// each keep their own.
pub const TAG: &str = "bgcloud:preview";

/// The preview rule as it is (status) or as a deploy will make it.
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    pub header: String,
    pub value: String,
    /// Where smoke tests send requests (with the header).
    pub url: String,
    /// None: there is no rule yet; the deploy creates it.
    pub rule_arn: Option<String>,
    pub priority: u16,
    /// The priority the rule has now, when the deploy moves it to `priority`.
    pub moved_from: Option<u16>,
    /// The colour the rule forwards to now (in a plan: before the deploy points it); None: no
    /// rule yet.
    pub color: Option<Color>,
    /// bgcloud's guard rule right behind it (priority + 1): a request with the header that the
    /// preview rule does not match (yet) gets its 503, never a user colour. None: not made yet.
    pub guard_rule_arn: Option<String>,
    /// The guard's priority now, when the deploy moves it to `priority + 1` (or makes it).
    #[serde(skip)]
    guard_at: Option<u16>,
    /// The rule's conditions and actions as read: what someone added beside bgcloud's header
    /// condition and forward (a source-ip condition, an authenticate action) is kept, since
    /// ModifyRule replaces both lists whole.
    #[serde(skip)]
    existing: Option<(Vec<RuleCondition>, Vec<Action>)>,
}

impl Route {
    /// `Name: value`, as curl's -H takes it.
    pub fn header_line(&self) -> String {
        format!("{}: {}", self.header, self.value)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.header_line(), self.url)?;
        match (&self.rule_arn, self.color) {
            (Some(arn), Some(c)) => write!(f, " → {c} (rule {arn}, priority {})", self.priority),
            (Some(arn), None) => write!(
                f,
                " → not blue or green (rule {arn}, priority {})",
                self.priority
            ),
            _ => return write!(f, " (no rule yet: the next deploy creates it)"),
        }?;
        match &self.guard_rule_arn {
            Some(_) => write!(f, "; other values: the guard's 503"),
            None => write!(f, "; no guard rule yet (the next deploy makes it)"),
        }
    }
}

/// A listener's rules as bgcloud sees them: which priorities are taken, which rule is ours.
struct Rules {
    taken: BTreeSet<u16>,
    ours: Option<Rule>,
    /// bgcloud's guard rule for the app (tagged `<app>/guard`), right behind the preview rule.
    guard: Option<Rule>,
    /// Other apps' preview rules on the listener: (app, rule).
    others: Vec<(String, Rule)>,
    /// The priority of the rule `rule_arn` names: the preview rule must be evaluated first.
    before: Option<u16>,
}

/// Reads the listener's rules and finds bgcloud's preview rule among them. Refuses two rules
/// tagged for the app, and a rule_arn that is not on the listener.
async fn read_rules(elb: &Client, backend: &BackendConfig, app: &str) -> Result<Rules> {
    let listener = &backend.listener_arn;
    let all = rules::list(elb, listener).await?;
    let mut ours = Vec::new();
    let mut guard = None;
    let mut others = Vec::new();
    let guard_tag = format!("{app}{GUARD_SUFFIX}");
    for (arn, value) in rules::tagged(elb, listener, &all, TAG).await? {
        if value == app {
            ours.push(arn);
        } else if value == guard_tag {
            guard = Some(arn);
        } else if !value.ends_with(GUARD_SUFFIX) {
            others.push((value, arn));
        }
    }
    if ours.len() > 1 {
        return Err(Error::refused(format!(
            "listener {listener} has {} rules tagged {TAG}={app} ({}); bgcloud keeps one: delete \
             all but one (`aws elbv2 delete-rule --rule-arn …`)",
            ours.len(),
            ours.join(", ")
        )));
    }
    let before = match &backend.rule_arn {
        None => None,
        Some(arn) => Some(
            all.iter()
                .find(|r| r.rule_arn() == Some(arn))
                .and_then(priority)
                .ok_or_else(|| {
                    Error::refused(format!(
                        "rule_arn {arn} is not a rule of listener_arn {listener}: the preview \
                         rule goes on the listener whose rule serves the app; fix one of the two"
                    ))
                })?,
        ),
    };
    let by_arn = |arn: &str| all.iter().find(|r| r.rule_arn() == Some(arn)).cloned();
    Ok(Rules {
        taken: all.iter().filter_map(priority).collect(),
        ours: ours.first().and_then(|arn| by_arn(arn)),
        guard: guard.and_then(|arn| by_arn(&arn)),
        others: others
            .into_iter()
            .filter_map(|(other, arn)| by_arn(&arn).map(|r| (other, r)))
            .collect(),
        before,
    })
}

fn priority(rule: &Rule) -> Option<u16> {
    rule.priority().and_then(|p| p.parse().ok())
}

/// The preview rule's priority: the configured one, else the one it has (while it still comes
/// before rule_arn's rule), else the highest free one before rule_arn's rule (or overall): the
/// preview then yields to every other rule the listener evaluates before the app's. The guard
/// rule takes the number right after it (`p + 1`), so that number must be free too (or the
/// guard's own), and before rule_arn's rule.
pub fn pick_priority(
    taken: &BTreeSet<u16>,
    (ours, guard): (Option<u16>, Option<u16>),
    before: Option<u16>,
    wanted: Option<u16>,
) -> std::result::Result<u16, String> {
    let limit = before.unwrap_or(50001);
    let free = |p: u16| !taken.contains(&p) || Some(p) == ours || Some(p) == guard;
    if let Some(p) = wanted {
        if p + 1 >= limit {
            return Err(format!(
                "[backend.preview].priority = {p} leaves no room before rule_arn's rule \
                 (priority {limit}) for the preview rule and its guard right after it ({p} and \
                 {}): use a number below {}",
                p + 1,
                limit - 1
            ));
        }
        if !free(p) || !free(p + 1) {
            return Err(format!(
                "[backend.preview].priority = {p} (or {}, which bgcloud's guard rule takes right \
                 after it) is taken by another rule on the listener: choose two free numbers in \
                 a row, or leave priority out and bgcloud picks them",
                p + 1
            ));
        }
        return Ok(p);
    }
    if let Some(p) = ours.filter(|p| p + 1 < limit && free(p + 1)) {
        return Ok(p);
    }
    (1..limit.saturating_sub(1))
        .rev()
        .find(|&p| free(p) && free(p + 1))
        .ok_or_else(|| {
            format!(
                "no two free priorities in a row below rule_arn's rule (priority {limit}) for the \
                 preview rule and its guard: move that rule to a higher number, or set \
                 [backend.preview].priority to one you free (with the next)"
            )
        })
}

/// Where a preview request goes: the configured url, else the ALB's DNS name with the
/// listener's protocol and port.
async fn url(elb: &Client, backend: &BackendConfig, cfg: &PreviewConfig) -> Result<String> {
    if let Some(url) = &cfg.url {
        return Ok(url.clone());
    }
    let address = listener::address(elb, &backend.listener_arn).await?;
    let scheme = match address.protocol.as_deref() {
        Some("HTTPS") => "https",
        _ => "http",
    };
    let (dns, port) = (address.dns_name, address.port);
    Ok(match (scheme, port) {
        ("http", 80) | ("https", 443) | (_, 0) => format!("{scheme}://{dns}"),
        _ => format!("{scheme}://{dns}:{port}"),
    })
}

/// What the rule forwards to, as a colour.
fn forwards_to(rule: &Rule, backend: &BackendConfig) -> Option<Color> {
    let groups = rule
        .actions()
        .iter()
        .find(|a| a.r#type() == Some(&ActionTypeEnum::Forward))
        .map(listener::target_groups)?;
    match groups.as_slice() {
        [(arn, _)] => Color::BOTH
            .into_iter()
            .find(|c| backend.target_group_arn(*c) == arn),
        _ => None,
    }
}

/// The header and values of the rule's http-header condition on `header`, as it reads.
fn condition(rule: &Rule, header: &str) -> Option<(String, Vec<String>)> {
    rule.conditions()
        .iter()
        .filter_map(|c| c.http_header_config())
        .map(|h| (h.http_header_name().unwrap_or_default(), h.values()))
        .find(|(name, _)| name.eq_ignore_ascii_case(header))
        .map(|(name, values)| (name.to_string(), values.to_vec()))
}

/// Where the preview rule is and where it points, for `status` (None: no preview configured).
/// Without a rule yet, what the next deploy, to `next`, would match.
/// `known_url`: the URL an earlier read found (it comes from the listener and the load
/// balancer, which a watch need not read again every poll).
pub async fn read(
    elb: &Client,
    backend: &BackendConfig,
    app: &str,
    next: Color,
    known_url: Option<&str>,
) -> Result<Option<Route>> {
    let Some(cfg) = &backend.preview else {
        return Ok(None);
    };
    let url = async {
        match known_url {
            Some(u) => Ok(u.to_string()),
            None => url(elb, backend, cfg).await,
        }
    };
    let (rules, url) = tokio::try_join!(read_rules(elb, backend, app), url)?;
    let route = match rules.ours {
        Some(rule) => {
            let (header, values) = condition(&rule, &cfg.header).unwrap_or_default();
            Route {
                header,
                value: values.join(","),
                url,
                priority: priority(&rule).unwrap_or(0),
                moved_from: None,
                color: forwards_to(&rule, backend),
                rule_arn: rule.rule_arn,
                guard_rule_arn: rules.guard.as_ref().and_then(|g| g.rule_arn.clone()),
                guard_at: None,
                existing: None,
            }
        }
        None => Route {
            header: cfg.header.clone(),
            value: value_for(cfg, next),
            url,
            priority: 0,
            moved_from: None,
            color: None,
            rule_arn: None,
            guard_rule_arn: None,
            guard_at: None,
            existing: None,
        },
    };
    Ok(Some(route))
}

/// The header value that reaches `color`: its name, or a configured value made per colour
/// (`<value>-<colour>`): a rule not yet updated everywhere (listener changes propagate) can then
/// never match a request meant for the other colour.
fn value_for(cfg: &PreviewConfig, color: Color) -> String {
    match &cfg.value {
        Some(v) => format!("{v}-{color}"),
        None => color.as_str().to_string(),
    }
}

/// Refuses (before anything changes) a preview rule that would not fit the account's quotas:
/// one more rule on a load balancer that has its quota's worth, or more condition values than a
/// rule may hold (bgcloud's header value with the conditions someone added to the rule).
async fn fits(
    elb: &Client,
    backend: &BackendConfig,
    found: &Rules,
    cfg: &PreviewConfig,
    limits: rules::Limits,
) -> Result<()> {
    let listener = &backend.listener_arn;
    // The preview rule and its guard, each made once.
    let needed = usize::from(found.ours.is_none()) + usize::from(found.guard.is_none());
    if needed > 0 {
        let lb = load_balancer_of(listener);
        let used = rules::count_on_load_balancer(elb, &lb).await?;
        if used + needed > limits.rules_per_load_balancer {
            return Err(Error::refused(format!(
                "load balancer {lb} has {used} rules, its quota \
                 (rules-per-application-load-balancer: {}) leaves room for {}, and the preview \
                 route needs {needed} more (its rule and a guard rule). Nothing was changed: \
                 delete a rule, raise the quota (Service Quotas), or remove [backend.preview]",
                limits.rules_per_load_balancer,
                limits.rules_per_load_balancer.saturating_sub(used)
            )));
        }
    }
    match &found.ours {
        None => {}
        Some(rule) => {
            let kept: usize = rule
                .conditions()
                .iter()
                .filter(|c| {
                    !c.http_header_config()
                        .and_then(|h| h.http_header_name())
                        .is_some_and(|n| n.eq_ignore_ascii_case(&cfg.header))
                })
                .map(rules::condition_values)
                .sum();
            if kept + 1 > limits.condition_values_per_rule {
                return Err(Error::refused(format!(
                    "the preview rule {} would hold {} condition values (the {} added to it and \
                     bgcloud's header value), over its quota (condition-values-per-alb-rule: {}). \
                     Nothing was changed: take values out of its other conditions, or raise the \
                     quota",
                    rule.rule_arn().unwrap_or_default(),
                    kept + 1,
                    kept,
                    limits.condition_values_per_rule
                )));
            }
        }
    }
    Ok(())
}

/// `…:loadbalancer/app/<name>/<id>` from `…:listener/app/<name>/<id>/<listener id>`.
fn load_balancer_of(listener_arn: &str) -> String {
    let lb = listener_arn.replacen(":listener/", ":loadbalancer/", 1);
    match lb.rsplit_once('/') {
        Some((head, _)) => head.to_string(),
        None => lb,
    }
}

/// What a deploy to `color` will make of the rule: read-only, so a dry run shows it and a
/// conflict is refused before anything changes.
pub async fn plan(
    elb: &Client,
    backend: &BackendConfig,
    cfg: &PreviewConfig,
    app: &str,
    color: Color,
) -> Result<Route> {
    let (rules, url, limits) = tokio::try_join!(
        read_rules(elb, backend, app),
        url(elb, backend, cfg),
        async { Ok(rules::limits(elb).await) },
    )?;
    fits(elb, backend, &rules, cfg, limits).await?;
    let current = rules.ours.as_ref().and_then(priority);
    let guard_at = rules.guard.as_ref().and_then(priority);
    let chosen = pick_priority(
        &rules.taken,
        (current, guard_at),
        rules.before,
        cfg.priority,
    )
    .map_err(|e| Error::refused(format!("listener {}: {e}", backend.listener_arn)))?;
    let value = value_for(cfg, color);
    // Two apps' rules on one header: a request meant for one could be answered by the other's
    // colour, and a smoke test would pass against the wrong app.
    let collides = |v: &String| {
        v.eq_ignore_ascii_case(&value)
            || (cfg.value.is_none()
                && Color::BOTH
                    .iter()
                    .any(|c| v.eq_ignore_ascii_case(c.as_str())))
    };
    for (other, rule) in &rules.others {
        let Some((name, values)) = condition(rule, &cfg.header) else {
            continue;
        };
        if values.iter().any(collides) {
            return Err(Error::refused(format!(
                "app {other}'s preview rule {} on listener {} matches {name}: {} too, so a \
                 preview request could reach the other app: give each app its own \
                 [backend.preview].header (e.g. \"X-Preview-{app}\") or value",
                rule.rule_arn().unwrap_or_default(),
                backend.listener_arn,
                values.join(",")
            )));
        }
    }
    // Said once a run: a deploy plans the rule twice (at the start, and just before writing it).
    static WARNED: std::sync::Once = std::sync::Once::new();
    if cfg.url.is_none() && url.starts_with("https://") {
        WARNED.call_once(|| {
            tracing::warn!(
                "the preview URL {url} is the ALB's own DNS name, which its certificate does not \
             name: a smoke test must skip certificate checks (curl -k), or set \
             [backend.preview].url to a name on the certificate"
            )
        });
    }
    Ok(Route {
        header: cfg.header.clone(),
        value,
        url,
        priority: chosen,
        moved_from: current.filter(|p| *p != chosen),
        color: rules.ours.as_ref().and_then(|r| forwards_to(r, backend)),
        existing: rules
            .ours
            .as_ref()
            .map(|r| (r.conditions().to_vec(), r.actions().to_vec())),
        rule_arn: rules.ours.and_then(|r| r.rule_arn),
        guard_rule_arn: rules.guard.as_ref().and_then(|g| g.rule_arn.clone()),
        guard_at,
    })
}

/// Plans the rule again from the listener as it is now (the deploy's plan is minutes old: a
/// rule may have taken the priority, or rule_arn's rule moved) and points it at `color`. A
/// priority taken between the read and the write is planned once more.
pub async fn prepare(
    elb: &Client,
    backend: &BackendConfig,
    cfg: &PreviewConfig,
    app: &str,
    color: Color,
) -> Result<Route> {
    for _ in 0..2 {
        let route = plan(elb, backend, cfg, app, color).await?;
        if let Some(done) = point(elb, backend, app, route, color).await? {
            return Ok(done);
        }
    }
    Err(Error::failed(format!(
        "the preview rule's priority on listener {} was taken twice by another rule while \
         bgcloud wrote it; set [backend.preview].priority to a number kept free for it, then \
         deploy again",
        backend.listener_arn
    )))
}

/// Points the rule at `color` (creating it the first time), then reads it back and fails
/// unless it matches the header and value, forwards to `color` only, at the planned priority.
/// None: another rule took the planned priority meanwhile (PriorityInUse).
async fn point(
    elb: &Client,
    backend: &BackendConfig,
    app: &str,
    mut route: Route,
    color: Color,
) -> Result<Option<Route>> {
    let matches = RuleCondition::builder()
        .field("http-header")
        .http_header_config(
            HttpHeaderConditionConfig::builder()
                .http_header_name(&route.header)
                .values(&route.value)
                .build(),
        )
        .build();
    let forward = Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(backend.target_group_arn(color))
        .build();
    let listener = &backend.listener_arn;
    // The guard first: from the moment the preview rule changes its value, a request it does
    // not match yet (the change still propagating) must meet the guard, not the app's rules.
    let guard_priority = route.priority + 1;
    let guard = match &route.guard_rule_arn {
        Some(arn) => arn.clone(),
        None => {
            let made = rules::create(
                elb,
                listener,
                guard_priority,
                guard_condition(&route.header),
                guard_action(),
                (TAG, &format!("{app}{GUARD_SUFFIX}")),
            )
            .await?;
            let Some(arn) = made else {
                return Ok(None);
            };
            tracing::info!(
                "preview guard rule created: {}: * → 503 ({arn}, priority {guard_priority})",
                route.header
            );
            arn
        }
    };
    if route.guard_rule_arn.is_some()
        && route.guard_at != Some(guard_priority)
        && !rules::set_priority(elb, &guard, guard_priority).await?
    {
        return Ok(None);
    }
    let arn = match &route.rule_arn {
        None => {
            let created = rules::create(
                elb,
                listener,
                route.priority,
                matches.clone(),
                forward,
                (TAG, app),
            )
            .await?;
            let Some(arn) = created else {
                return Ok(None);
            };
            tracing::info!(
                "preview rule created: {} → {color} ({arn}, priority {})",
                route.header_line(),
                route.priority
            );
            arn
        }
        Some(arn) => {
            let (conditions, actions) = route.existing.clone().unwrap_or_default();
            let header = &route.header;
            let conditions = replace_or_add(conditions, matches, |c| {
                c.http_header_config()
                    .and_then(|h| h.http_header_name())
                    .is_some_and(|n| n.eq_ignore_ascii_case(header))
            });
            let is_forward = |a: &Action| a.r#type() == Some(&ActionTypeEnum::Forward);
            // In the old forward's place in the order of actions.
            let mut forward = forward;
            forward.order = actions.iter().find(|a| is_forward(a)).and_then(|a| a.order);
            let mut actions = replace_or_add(actions, forward, is_forward);
            listener::keep_client_secrets(&mut actions);
            let doing = format!("pointing the preview rule {arn} at {color}");
            rules::modify(elb, arn, conditions, actions, &doing).await?;
            if route.moved_from.is_some() && !rules::set_priority(elb, arn, route.priority).await? {
                return Ok(None);
            }
            arn.clone()
        }
    };
    let wanted = (
        Some((route.header.clone(), vec![route.value.clone()])),
        Some(color),
        Some(route.priority),
    );
    // Describe* right after a write may still answer with the state before it (or not list a
    // rule just created): read again, with a growing pause, until readback_timeout.
    let reads_of = |rule: &Option<Rule>| {
        rule.as_ref().map(|r| {
            (
                condition(r, &route.header),
                forwards_to(r, backend),
                priority(r),
            )
        })
    };
    let rule = aws::read_until(
        backend.readback_timeout,
        || rules::read(elb, &arn),
        |rule| reads_of(rule).as_ref() == Some(&wanted),
    )
    .await?;
    let reads = reads_of(&rule);
    let rule = rule.as_ref();
    if reads.as_ref() != Some(&wanted) {
        // What DescribeRules showed, in the words of what bgcloud set.
        let shown = match &reads {
            None => "is still not listed by DescribeRules".to_string(),
            Some((condition, to, priority)) => format!(
                "still reads {} → {} at priority {}",
                condition
                    .as_ref()
                    .map_or("no header condition".into(), |(h, v)| format!(
                        "{h}: {}",
                        v.join(", ")
                    )),
                to.map_or("another target group".into(), |c| c.to_string()),
                priority.map_or("none".into(), |p| p.to_string()),
            ),
        };
        return Err(Error::failed(format!(
            "the preview rule {arn} {shown} {} after bgcloud set {} → {color} at priority {}; no \
             user traffic was moved. Check the listener's rules, then deploy again",
            humantime::format_duration(backend.readback_timeout),
            route.header_line(),
            route.priority
        )));
    }
    route.rule_arn = Some(arn);
    route.guard_rule_arn = Some(guard);
    route.guard_at = Some(guard_priority);
    route.color = Some(color);
    route.moved_from = None;
    route.existing = rule.map(|r| (r.conditions().to_vec(), r.actions().to_vec()));
    Ok(Some(route))
}

/// What the guard rule answers: a request with the preview header that the preview rule does
/// not match (its change still propagating, or a stale value) never reaches a user colour.
pub const GUARD_BODY: &str = "bgcloud: the preview route does not reach this request's colour \
                              (yet): a listener rule change is still propagating";

/// The guard's tag value is the app's followed by this.
const GUARD_SUFFIX: &str = "/guard";

/// Any value of the preview header.
fn guard_condition(header: &str) -> RuleCondition {
    RuleCondition::builder()
        .field("http-header")
        .http_header_config(
            HttpHeaderConditionConfig::builder()
                .http_header_name(header)
                .values("*")
                .build(),
        )
        .build()
}

/// 503 with [`GUARD_BODY`].
fn guard_action() -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::FixedResponse)
        .fixed_response_config(
            FixedResponseActionConfig::builder()
                .status_code("503")
                .content_type("text/plain")
                .message_body(GUARD_BODY)
                .build(),
        )
        .build()
}

/// `items` with the first that `is_it` replaced by `new` (in its place), or `new` added.
fn replace_or_add<T>(mut items: Vec<T>, new: T, is_it: impl Fn(&T) -> bool) -> Vec<T> {
    match items.iter().position(is_it) {
        Some(i) => items[i] = new,
        None => items.push(new),
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ps: &[u16]) -> BTreeSet<u16> {
        ps.iter().copied().collect()
    }

    #[test]
    fn the_load_balancer_comes_from_the_listener_arn() {
        assert_eq!(
            load_balancer_of(
                "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2"
            ),
            "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/shop/50dc6c495c0c9188"
        );
    }

    #[test]
    fn picks_the_highest_free_pair_before_the_apps_rule() {
        let none = (None, None);
        assert_eq!(pick_priority(&set(&[]), none, None, None), Ok(49999));
        assert_eq!(
            pick_priority(&set(&[50000, 49998]), none, None, None),
            Ok(49996)
        );
        assert_eq!(
            pick_priority(&set(&[10, 9, 3]), none, Some(10), None),
            Ok(7)
        );
        // Its own place (and its guard's) is kept while it still comes first.
        assert_eq!(
            pick_priority(&set(&[10, 2, 3]), (Some(2), Some(3)), Some(10), None),
            Ok(2)
        );
        // The app's rule moved in front of it: it moves before that, guard included.
        assert_eq!(
            pick_priority(&set(&[10, 12, 13]), (Some(12), Some(13)), Some(10), None),
            Ok(8)
        );
    }

    #[test]
    fn a_taken_or_late_priority_is_refused_by_number() {
        let none = (None, None);
        let e = pick_priority(&set(&[5]), none, None, Some(5)).unwrap_err();
        assert!(e.contains("= 5 (or 6") && e.contains("is taken"), "{e}");
        let e = pick_priority(&set(&[6]), none, None, Some(5)).unwrap_err();
        assert!(e.contains("is taken"), "{e}");
        assert_eq!(
            pick_priority(&set(&[5, 6]), (Some(5), Some(6)), None, Some(5)),
            Ok(5)
        );
        let e = pick_priority(&set(&[8]), none, Some(8), Some(7)).unwrap_err();
        assert!(e.contains("below 7"), "{e}");
        let e = pick_priority(&set(&[1, 3]), none, Some(3), None).unwrap_err();
        assert!(e.contains("no two free priorities in a row"), "{e}");
    }
}
