//! The preview route: one listener rule of bgcloud's own (tagged `bgcloud:preview` = the app)
//! that forwards requests carrying a header to the colour a deploy prepares, so smoke tests
//! reach the new containers through the real ALB before any user does.

use std::collections::BTreeSet;
use std::fmt;

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, HttpHeaderConditionConfig, Rule, RuleCondition,
};
use aws_sdk_elasticloadbalancingv2::Client;
use serde::Serialize;

use crate::aws::{listener, rules};
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
            _ => write!(f, " (no rule yet: the next deploy creates it)"),
        }
    }
}

/// A listener's rules as bgcloud sees them: which priorities are taken, which rule is ours.
struct Rules {
    taken: BTreeSet<u16>,
    ours: Option<Rule>,
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
    let mut others = Vec::new();
    for (arn, value) in rules::tagged(elb, listener, &all, TAG).await? {
        if value == app {
            ours.push(arn);
        } else {
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
/// preview then yields to every other rule the listener evaluates before the app's.
pub fn pick_priority(
    taken: &BTreeSet<u16>,
    ours: Option<u16>,
    before: Option<u16>,
    wanted: Option<u16>,
) -> std::result::Result<u16, String> {
    let limit = before.unwrap_or(50001);
    if let Some(p) = wanted {
        if p >= limit {
            return Err(format!(
                "[backend.preview].priority = {p} would be evaluated after rule_arn's rule \
                 (priority {limit}), which would answer every preview request first: use a \
                 number below {limit}"
            ));
        }
        if taken.contains(&p) && ours != Some(p) {
            return Err(format!(
                "[backend.preview].priority = {p} is taken by another rule on the listener: \
                 choose a free one, or leave priority out and bgcloud picks one"
            ));
        }
        return Ok(p);
    }
    if let Some(p) = ours.filter(|p| *p < limit) {
        return Ok(p);
    }
    (1..limit)
        .rev()
        .find(|p| !taken.contains(p))
        .ok_or_else(|| {
            format!(
                "no free priority below rule_arn's rule (priority {limit}): move that rule to a \
             higher number, or set [backend.preview].priority to one you free"
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
                existing: None,
            }
        }
        None => Route {
            header: cfg.header.clone(),
            value: cfg
                .value
                .clone()
                .unwrap_or_else(|| next.as_str().to_string()),
            url,
            priority: 0,
            moved_from: None,
            color: None,
            rule_arn: None,
            existing: None,
        },
    };
    Ok(Some(route))
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
    match &found.ours {
        None => {
            let lb = load_balancer_of(listener);
            let used = rules::count_on_load_balancer(elb, &lb).await?;
            if used >= limits.rules_per_load_balancer {
                return Err(Error::refused(format!(
                    "load balancer {lb} has {used} rules, its quota \
                     (rules-per-application-load-balancer: {}), and the preview route needs one \
                     more. Nothing was changed: delete a rule, raise the quota (Service Quotas), \
                     or remove [backend.preview]",
                    limits.rules_per_load_balancer
                )));
            }
        }
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
    let chosen = pick_priority(&rules.taken, current, rules.before, cfg.priority)
        .map_err(|e| Error::refused(format!("listener {}: {e}", backend.listener_arn)))?;
    let value = cfg
        .value
        .clone()
        .unwrap_or_else(|| color.as_str().to_string());
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
    let rule = rules::read(elb, &arn).await?;
    let rule = rule.as_ref();
    let reads = rule.map(|r| {
        (
            condition(r, &route.header),
            forwards_to(r, backend),
            priority(r),
        )
    });
    let wanted = (
        Some((route.header.clone(), vec![route.value.clone()])),
        Some(color),
        Some(route.priority),
    );
    if reads.as_ref() != Some(&wanted) {
        return Err(Error::failed(format!(
            "the preview rule {arn} reads back as {reads:?} after bgcloud set {} → {color} at \
             priority {}; no user traffic was moved. Check the listener's rules, then deploy again",
            route.header_line(),
            route.priority
        )));
    }
    route.rule_arn = Some(arn);
    route.color = Some(color);
    route.moved_from = None;
    route.existing = rule.map(|r| (r.conditions().to_vec(), r.actions().to_vec()));
    Ok(Some(route))
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
    fn picks_the_highest_free_priority_before_the_apps_rule() {
        assert_eq!(pick_priority(&set(&[]), None, None, None), Ok(50000));
        assert_eq!(
            pick_priority(&set(&[50000, 49999]), None, None, None),
            Ok(49998)
        );
        assert_eq!(
            pick_priority(&set(&[10, 9, 3]), None, Some(10), None),
            Ok(8)
        );
        // Its own place is kept while it still comes first.
        assert_eq!(
            pick_priority(&set(&[10, 2]), Some(2), Some(10), None),
            Ok(2)
        );
        // The app's rule moved in front of it: it moves before that.
        assert_eq!(
            pick_priority(&set(&[10, 12]), Some(12), Some(10), None),
            Ok(9)
        );
    }

    #[test]
    fn a_taken_or_late_priority_is_refused_by_number() {
        let e = pick_priority(&set(&[5]), None, None, Some(5)).unwrap_err();
        assert!(e.contains("= 5 is taken"), "{e}");
        assert_eq!(pick_priority(&set(&[5]), Some(5), None, Some(5)), Ok(5));
        let e = pick_priority(&set(&[7]), None, Some(7), Some(8)).unwrap_err();
        assert!(e.contains("below 7"), "{e}");
        let e = pick_priority(&set(&[1, 2]), None, Some(2), None).unwrap_err();
        assert!(e.contains("no free priority below"), "{e}");
    }
}
