//! `bgcloud init`: writes a commented `bgcloud.toml` from what the account already has, as steps:
//! the load balancer → its listener (the one given, else the one forwarding) → the two target
//! groups it forwards to (blue and green) with their ports and registered instances → how to find
//! those instances (their Auto Scaling group, a tag they share, else their ids) → the ECR
//! repository → the state bucket → the distribution's bucket, if given → render, check with the
//! config's own parser, write. It changes nothing in AWS; what it cannot find it names, with
//! the fix, and writes nothing. `--from-terraform` writes the module's own `bgcloud_toml` output.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::aws::discover::{self, Group, Listener};
use crate::aws::{self, AwsOptions, Clients};
use crate::cli::{Global, InitArgs};
use crate::config::Config;
use crate::error::{Error, Result};

/// What init found and wrote.
#[derive(Debug, Serialize)]
pub struct Initialized {
    pub path: PathBuf,
    pub app: String,
    /// Where it came from: "the account" or "terraform output".
    pub from: &'static str,
    pub listener_arn: Option<String>,
    pub blue_target_group_arn: Option<String>,
    pub green_target_group_arn: Option<String>,
    /// How bgcloud will find the instances (`instance_tags = …`, `auto_scaling_group = …`).
    pub instances: Option<String>,
    pub repository: Option<String>,
    /// Values bgcloud could not read from AWS and wrote as defaults: check them.
    pub check: Vec<String>,
    #[serde(skip)]
    text: String,
}

impl fmt::Display for Initialized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "wrote {} for {} (from {}); nothing was changed in AWS",
            self.path.display(),
            self.app,
            self.from
        )?;
        for (what, value) in [
            ("listener", &self.listener_arn),
            ("blue", &self.blue_target_group_arn),
            ("green", &self.green_target_group_arn),
            ("instances", &self.instances),
            ("repository", &self.repository),
        ] {
            if let Some(v) = value {
                writeln!(f, "  {what:<10} {v}")?;
            }
        }
        for c in &self.check {
            writeln!(f, "  check      {c}")?;
        }
        writeln!(
            f,
            "next: `bgcloud deploy --image TAG --dry-run` shows what a deploy would do"
        )
    }
}

pub async fn run(global: &Global, args: &InitArgs) -> Result<Initialized> {
    let path = global
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("bgcloud.toml"));
    if path.exists() && !args.force {
        return Err(Error::refused(format!(
            "{} exists already: bgcloud init does not overwrite it. Pass --force to replace it, \
             or --config PATH to write another file",
            path.display()
        )));
    }
    let found = match &args.from_terraform {
        Some(dir) => from_terraform(dir)?,
        None => from_account(global, args).await?,
    };
    // The config's own parser is the judge: a file it refuses is never written.
    Config::parse(&found.text, &path).map_err(|e| {
        Error::failed(format!(
            "the config bgcloud init made does not parse ({e}); nothing was written. Please \
             report this"
        ))
    })?;
    std::fs::write(&path, &found.text)
        .map_err(|e| Error::failed(format!("writing {}: {e}", path.display())))?;
    Ok(Initialized { path, ..found })
}

/// `terraform output -json` of the module in `dir`: its `bgcloud_toml` output.
fn from_terraform(dir: &Path) -> Result<Initialized> {
    let out = std::process::Command::new("terraform")
        .args(["output", "-json"])
        .current_dir(dir)
        .output()
        .map_err(|e| {
            Error::refused(format!(
                "could not run `terraform output -json` in {} ({e}): is terraform installed?",
                dir.display()
            ))
        })?;
    if !out.status.success() {
        return Err(Error::refused(format!(
            "`terraform output -json` in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let outputs: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::refused(format!("`terraform output -json` did not print JSON ({e})"))
    })?;
    let text = outputs["bgcloud_toml"]["value"].as_str().ok_or_else(|| {
        Error::refused(format!(
            "the Terraform state in {} has no `bgcloud_toml` output: point --from-terraform at \
             the configuration that uses bgcloud's module and output it (`output \
             \"bgcloud_toml\" {{ value = module.<name>.bgcloud_toml }}`)",
            dir.display()
        ))
    })?;
    let config = Config::parse(text, Path::new("terraform output bgcloud_toml"))?;
    let backend = config.backend.as_ref();
    Ok(Initialized {
        path: PathBuf::new(),
        app: config.app.clone(),
        from: "terraform output",
        listener_arn: backend.map(|b| b.listener_arn.clone()),
        blue_target_group_arn: backend.map(|b| b.blue_target_group_arn.clone()),
        green_target_group_arn: backend.map(|b| b.green_target_group_arn.clone()),
        instances: None,
        repository: backend.map(|b| b.repository.clone()),
        check: vec![
            "[backend] env and secrets: add your app's (SSM parameter names under /<app>/)".into(),
        ],
        text: format!("# Written by `bgcloud init --from-terraform` from the module's bgcloud_toml output.\n{text}"),
    })
}

async fn from_account(global: &Global, args: &InitArgs) -> Result<Initialized> {
    let Some(lb_name) = &args.load_balancer else {
        return Err(Error::refused(
            "bgcloud init needs --load-balancer NAME (or ARN) of the ALB in front of the app, or \
             --from-terraform DIR for a stack made with bgcloud's Terraform module",
        ));
    };
    let Some(state_bucket) = &args.state_bucket else {
        return Err(Error::refused(
            "bgcloud init needs --state-bucket NAME: an S3 bucket (versioning on) where bgcloud \
             keeps its record, lock and desired state (the Terraform module makes one)",
        ));
    };
    let opts = AwsOptions::from(global);
    let sdk = aws::sdk_config(&opts, None).await;
    let clients = Clients::new(&sdk, &opts);
    if clients.region.is_empty() {
        return Err(Error::refused(
            "no AWS region: pass --region (or set AWS_REGION, or a region in your profile)",
        ));
    }
    let lb = discover::load_balancer(&clients.elb, lb_name).await?;
    if lb.kind != "application" {
        return Err(Error::refused(format!(
            "{} is a {} load balancer; bgcloud drives an Application Load Balancer's weighted \
             forward",
            lb.name, lb.kind
        )));
    }
    let listeners = discover::listeners(&clients.elb, &lb.arn).await?;
    let listener = pick_listener(&lb.name, &listeners, args.listener_port)?;
    let groups = discover::groups(&clients.elb, &listener.forwards_to).await?;
    let (blue, green) = colours(listener, groups)?;
    let (blue_port, green_port) = (host_port(&blue)?, host_port(&green)?);
    if blue_port == green_port {
        return Err(Error::refused(format!(
            "{} and {} both send to port {blue_port}: blue and green need different host ports \
             on the instances (e.g. 8081 and 8082). Re-create one of the target groups on another \
             port",
            blue.name, green.name
        )));
    }
    let ids: Vec<String> = {
        let mut ids: Vec<String> = blue
            .targets
            .iter()
            .chain(&green.targets)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    if ids.is_empty() {
        return Err(Error::refused(format!(
            "no instance is registered in {} or {}: register the instances that will run the app \
             (or point an Auto Scaling group at the target groups), then run bgcloud init again",
            blue.name, green.name
        )));
    }
    let tags = discover::instance_tags(&clients.ec2, &ids).await?;
    let instances = instances_line(&ids, &tags);
    let repository = match &args.repository {
        Some(r) => r.clone(),
        None => one_repository(discover::repositories(&clients.ecr).await?)?,
    };
    let frontend = match &args.distribution {
        Some(id) => {
            let buckets = discover::distribution_buckets(&clients.cloudfront, id).await?;
            let bucket = match buckets.as_slice() {
                [b] => b.clone(),
                _ => {
                    return Err(Error::refused(format!(
                        "distribution {id} has {} S3 origins ({}): bgcloud needs the one bucket \
                         its releases go to; leave --distribution out and add [frontend] by hand",
                        buckets.len(),
                        buckets.join(", ")
                    )))
                }
            };
            Some((bucket, id.clone()))
        }
        None => None,
    };
    let app = args.app.clone().unwrap_or_else(|| app_name(&lb.name));
    let found = Found {
        app: &app,
        region: &clients.region,
        state_bucket,
        listener,
        blue: &blue,
        green: &green,
        ports: (blue_port, green_port),
        container_port: args.container_port,
        instances: &instances,
        repository: &repository,
        frontend: frontend.as_ref(),
    };
    Ok(Initialized {
        path: PathBuf::new(),
        app: app.clone(),
        from: "the account",
        listener_arn: Some(listener.arn.clone()),
        blue_target_group_arn: Some(blue.arn.clone()),
        green_target_group_arn: Some(green.arn.clone()),
        instances: Some(instances.clone()),
        repository: Some(repository.clone()),
        check: vec![format!(
            "[backend] container_port = {}: the port the app listens on inside its container \
             cannot be read from AWS{}",
            args.container_port,
            if args.container_port == 3000 {
                " (3000 is Express's usual one; --container-port N to set it)"
            } else {
                ""
            }
        )],
        text: render(&found),
    })
}

/// The listener bgcloud will drive: the one on `port`, else the only one that forwards (an
/// HTTPS one over HTTP when both forward).
fn pick_listener<'a>(
    lb: &str,
    listeners: &'a [Listener],
    port: Option<i32>,
) -> Result<&'a Listener> {
    let listing = || {
        listeners
            .iter()
            .map(|l| {
                format!(
                    "{} :{} → {} group(s)",
                    l.protocol,
                    l.port,
                    l.forwards_to.len()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(port) = port {
        return listeners.iter().find(|l| l.port == port).ok_or_else(|| {
            Error::refused(format!(
                "{lb} has no listener on port {port} (it has: {})",
                listing()
            ))
        });
    }
    let forwarding: Vec<&Listener> = listeners
        .iter()
        .filter(|l| !l.forwards_to.is_empty())
        .collect();
    let https: Vec<&Listener> = forwarding
        .iter()
        .copied()
        .filter(|l| l.protocol == "HTTPS")
        .collect();
    match (forwarding.as_slice(), https.as_slice()) {
        ([one], _) | (_, [one]) => Ok(one),
        ([], _) => Err(Error::refused(format!(
            "no listener of {lb} forwards to a target group ({}): bgcloud drives a listener \
             whose default action forwards to the app",
            if listeners.is_empty() {
                "it has none".to_string()
            } else {
                listing()
            }
        ))),
        _ => Err(Error::refused(format!(
            "{lb} has several listeners that forward ({}): say which one bgcloud drives with \
             --listener-port N",
            listing()
        ))),
    }
}

/// Blue and green: the two groups the listener forwards to, by their names when they say which
/// (`…blue…`, `…green…`), else in the forward's order.
fn colours(listener: &Listener, mut groups: Vec<Group>) -> Result<(Group, Group)> {
    match groups.len() {
        2 => {}
        1 => {
            return Err(Error::refused(format!(
                "the listener :{} forwards to one target group ({}); bgcloud needs a second, the \
                 other colour: create it like the first on another instance port (e.g. `aws elbv2 \
                 create-target-group --name {}-green --port 8082 …` with the same health check), \
                 register the same instances in it on that port, then run bgcloud init again. \
                 The listener itself can stay as it is: the first deploy adopts a plain forward \
                 as a weighted one",
                listener.port, groups[0].name, groups[0].name
            )))
        }
        n => {
            return Err(Error::refused(format!(
                "the listener :{} forwards to {n} target groups; bgcloud drives a forward to \
                 exactly two, blue and green",
                listener.port
            )))
        }
    }
    let named = |g: &Group, c: &str| g.name.to_lowercase().contains(c);
    if named(&groups[1], "blue") || named(&groups[0], "green") {
        groups.swap(0, 1);
    }
    let green = groups.pop().expect("two groups");
    let blue = groups.pop().expect("two groups");
    Ok((blue, green))
}

/// The host port a colour's containers listen on: its targets' port (all the same), else the
/// group's.
fn host_port(group: &Group) -> Result<u16> {
    let mut ports: Vec<i32> = group.targets.iter().filter_map(|(_, p)| *p).collect();
    ports.sort();
    ports.dedup();
    let port = match ports.as_slice() {
        [p] => *p,
        [] => group.port.unwrap_or_default(),
        many => {
            return Err(Error::refused(format!(
                "the targets of {} are registered on several ports ({many:?}): bgcloud runs a \
                 colour on one host port per instance",
                group.name
            )))
        }
    };
    u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::refused(format!("{} has no usable port ({port})", group.name)))
}

/// How the config names the instances: their Auto Scaling group when they share one, else the
/// tags they all share (bgcloud's `bgcloud:app` first; never `Name` or `aws:*`), else their ids.
fn instances_line(ids: &[String], tags: &BTreeMap<String, BTreeMap<String, String>>) -> String {
    let shared = |key: &str| -> Option<String> {
        let first = tags.get(ids.first()?)?.get(key)?;
        ids.iter()
            .all(|id| tags.get(id).and_then(|t| t.get(key)) == Some(first))
            .then(|| first.clone())
    };
    if let Some(group) = shared("aws:autoscaling:groupName") {
        return format!("auto_scaling_group = {}", toml_string(&group));
    }
    let candidates: Vec<String> = tags
        .get(&ids[0])
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default();
    let mut keys: Vec<&String> = candidates
        .iter()
        .filter(|k| *k != "Name" && !k.starts_with("aws:") && shared(k).is_some())
        .collect();
    keys.sort_by_key(|k| *k != "bgcloud:app");
    match keys.first() {
        Some(key) => format!(
            "instance_tags = {{ {} = {} }}",
            toml_string(key),
            toml_string(&shared(key).unwrap_or_default())
        ),
        None => format!(
            "instance_ids = [{}]",
            ids.iter()
                .map(|i| toml_string(i))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn one_repository(names: Vec<String>) -> Result<String> {
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::refused(
            "no ECR repository in this account and region: create one for the app's images \
             (`aws ecr create-repository --repository-name NAME`), or pass --repository NAME",
        )),
        many => Err(Error::refused(format!(
            "{} ECR repositories here ({}{}): say which one holds the app's images with \
             --repository NAME",
            many.len(),
            many.iter().take(10).cloned().collect::<Vec<_>>().join(", "),
            if many.len() > 10 { ", …" } else { "" }
        ))),
    }
}

/// The app's name from the load balancer's: lower case, without a trailing `-alb`/`-lb`.
fn app_name(lb: &str) -> String {
    let lower = lb.to_lowercase();
    let base = lower
        .strip_suffix("-alb")
        .or_else(|| lower.strip_suffix("-lb"))
        .unwrap_or(&lower);
    base.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// What the account said, for [`render`].
struct Found<'a> {
    app: &'a str,
    region: &'a str,
    state_bucket: &'a str,
    listener: &'a Listener,
    blue: &'a Group,
    green: &'a Group,
    ports: (u16, u16),
    container_port: u16,
    instances: &'a str,
    repository: &'a str,
    frontend: Option<&'a (String, String)>,
}

/// The commented config.
fn render(f: &Found) -> String {
    let q = toml_string;
    let mut text = format!(
        "# Written by `bgcloud init` from what the account has; nothing was changed in AWS.\n\
         # Every key: docs/reference/config.md. Check the line marked CHECK.\n\
         app = {app}\n\
         region = {region}\n\
         \n\
         [state]\n\
         # Where bgcloud keeps its record, lock and desired state (versioning on).\n\
         bucket = {bucket}\n\
         \n\
         [backend]\n\
         # The {protocol} listener on port {port}: bgcloud moves traffic by rewriting its forward,\n\
         # to {blue_name} (blue) and {green_name} (green).\n\
         listener_arn = {listener}\n\
         blue_target_group_arn = {blue}\n\
         green_target_group_arn = {green}\n\
         repository = {repository}\n\
         # CHECK: the port the app listens on inside its container (AWS cannot tell).\n\
         container_port = {container_port}\n\
         # The host ports the colours' targets are registered on.\n\
         blue_port = {blue_port}\n\
         green_port = {green_port}\n\
         # The instances registered in the two groups, as bgcloud will find them.\n\
         {instances}\n\
         health_timeout = \"5m\"\n\
         # env = {{ NODE_ENV = \"production\" }}\n\
         # secrets = {{ DATABASE_URL = \"/{app_plain}/prod/DATABASE_URL\" }}  # SSM parameter names\n",
        app = q(f.app),
        region = q(f.region),
        bucket = q(f.state_bucket),
        protocol = f.listener.protocol,
        port = f.listener.port,
        listener = q(&f.listener.arn),
        blue = q(&f.blue.arn),
        blue_name = f.blue.name,
        green = q(&f.green.arn),
        green_name = f.green.name,
        repository = q(f.repository),
        container_port = f.container_port,
        blue_port = f.ports.0,
        green_port = f.ports.1,
        instances = f.instances,
        app_plain = f.app,
    );
    if let Some((bucket, id)) = f.frontend {
        text.push_str(&format!(
            "\n[frontend]\n# The bucket distribution {id} serves the site from.\nbucket = {}\ndistribution_id = {}\n# dir = \"web/dist\"  # the build folder\n",
            q(bucket),
            q(id)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, port: i32, targets: &[(&str, i32)]) -> Group {
        Group {
            arn: format!("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/{name}/1"),
            name: name.into(),
            port: Some(port),
            targets: targets
                .iter()
                .map(|(id, p)| (id.to_string(), Some(*p)))
                .collect(),
        }
    }

    fn listener(port: i32, protocol: &str, groups: usize) -> Listener {
        Listener {
            arn: format!("arn:listener/{port}"),
            port,
            protocol: protocol.into(),
            forwards_to: (0..groups).map(|i| format!("tg{i}")).collect(),
        }
    }

    #[test]
    fn the_listener_is_the_one_given_else_the_only_forwarding_one_else_https() {
        let ls = vec![listener(80, "HTTP", 0), listener(443, "HTTPS", 2)];
        assert_eq!(pick_listener("alb", &ls, None).unwrap().port, 443);
        assert_eq!(pick_listener("alb", &ls, Some(80)).unwrap().port, 80);
        assert!(pick_listener("alb", &ls, Some(8080)).is_err());
        let both = vec![listener(80, "HTTP", 2), listener(443, "HTTPS", 2)];
        assert_eq!(pick_listener("alb", &both, None).unwrap().port, 443);
        let two_http = vec![listener(80, "HTTP", 2), listener(8080, "HTTP", 2)];
        let e = pick_listener("alb", &two_http, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--listener-port"), "{e}");
    }

    #[test]
    fn blue_and_green_go_by_name_else_by_order_and_one_group_says_what_is_missing() {
        let l = listener(80, "HTTP", 2);
        let (b, g) = colours(
            &l,
            vec![
                group("shop-green", 8082, &[]),
                group("shop-blue", 8081, &[]),
            ],
        )
        .unwrap();
        assert_eq!(
            (b.name.as_str(), g.name.as_str()),
            ("shop-blue", "shop-green")
        );
        let (b, _) = colours(&l, vec![group("a", 1, &[]), group("b", 2, &[])]).unwrap();
        assert_eq!(b.name, "a");
        let e = colours(&l, vec![group("web", 80, &[])])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("one target group (web)") && e.contains("web-green"),
            "{e}"
        );
    }

    #[test]
    fn the_host_port_is_the_targets_one_and_instances_go_by_group_then_shared_tag_then_id() {
        assert_eq!(
            host_port(&group("b", 80, &[("i-1", 8081), ("i-2", 8081)])).unwrap(),
            8081
        );
        assert_eq!(host_port(&group("b", 8085, &[])).unwrap(), 8085);
        assert!(host_port(&group("b", 80, &[("i-1", 8081), ("i-2", 8083)])).is_err());
        let ids = vec!["i-1".to_string(), "i-2".to_string()];
        let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut all = BTreeMap::new();
        all.insert(
            "i-1".to_string(),
            tags(&[("Name", "a"), ("team", "x"), ("bgcloud:app", "shop")]),
        );
        all.insert(
            "i-2".to_string(),
            tags(&[("Name", "b"), ("team", "x"), ("bgcloud:app", "shop")]),
        );
        assert_eq!(
            instances_line(&ids, &all),
            r#"instance_tags = { "bgcloud:app" = "shop" }"#
        );
        all.get_mut("i-2")
            .unwrap()
            .insert("aws:autoscaling:groupName".into(), "g".into());
        all.get_mut("i-1")
            .unwrap()
            .insert("aws:autoscaling:groupName".into(), "g".into());
        assert_eq!(instances_line(&ids, &all), r#"auto_scaling_group = "g""#);
        let mut bare = BTreeMap::new();
        bare.insert("i-1".to_string(), tags(&[("Name", "a")]));
        bare.insert("i-2".to_string(), tags(&[("Name", "b")]));
        assert_eq!(
            instances_line(&ids, &bare),
            r#"instance_ids = ["i-1", "i-2"]"#
        );
        assert_eq!(app_name("Shop-ALB"), "shop");
        assert_eq!(app_name("my_app"), "my-app");
    }
}
