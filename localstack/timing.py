"""Every delay the emulator models, in one place. The shape of each is always on; its size
comes from a profile:

  aws     the figures AWS documents or shows (the default): what a run against the emulator
          would see on a real account, minutes included;
  scaled  the same shapes in seconds (scripts/test, the demo and the lanes start the emulator
          with --profile scaled), so a suite that waits on them runs in minutes.

  metric_period   s  ALB metrics are one datapoint per period per metric (the ALB: 60 s);
                     a datapoint put at time t covers the period t falls in
  metric_delay    s  a period's datapoints are published this long after the period ends
                     (the ALB's are typically visible one to two minutes late); until then
                     GetMetricData does not return them. A period with no requests has no
                     datapoint at all (absent, not zero)
  elb_propagation s  a listener or rule change takes this long to reach the load balancer's
                     nodes: until then requests are routed by the previous rules (the ELB guide:
                     "requests may be routed by the previous configuration for a short time";
                     the delay is not published)
  elb_describe_lag s DescribeListeners / DescribeRules answer with the state before a write for
                     this long after it (eventual consistency of the ELB API)
  alb_nodes          how many load-balancer nodes health-check each target, each at its own
                     phase of the interval with its own verdict (an ALB has one or more per
                     enabled Availability Zone); DescribeTargetHealth answers from one node's
                     view after another
  ssm_invisible   s  GetCommandInvocation answers InvocationDoesNotExist for this long after
                     SendCommand (the invocation is created asynchronously; the SDKs'
                     CommandExecuted waiter retries on exactly that error)
  ssm_pending     s  then the invocation reads Pending this long (the agent has not picked it up)
  ssm_running     s  then InProgress at least this long: the script starts (and its container
                     with it) when InProgress begins, and its result shows when this ends
  cf_invalidation s  a CloudFront invalidation reads InProgress this long, then Completed (it
                     reaches every edge over time; the figure is not published)
  cf_propagation  s  a distribution update reaches the lane CDN's edge this long after it (until
                     then it serves by the previous configuration; AWS: "a few minutes")

A test reads the profile in force from GET /_bgcloud/timing; POST /_bgcloud/timing {"name":
value, ...} changes one setting for the whole emulator (tests that share one must not).
"""

PROFILES = {
    "aws": {
        "metric_period": 60.0,
        "metric_delay": 90.0,
        "elb_propagation": 5.0,
        "elb_describe_lag": 2.0,
        "alb_nodes": 2,
        "ssm_invisible": 1.0,
        "ssm_pending": 1.0,
        "ssm_running": 3.0,
        "cf_invalidation": 30.0,
        "cf_propagation": 60.0,
    },
    "scaled": {
        "metric_period": 1.0,
        "metric_delay": 1.0,
        "elb_propagation": 0.5,
        "elb_describe_lag": 0.3,
        "alb_nodes": 2,
        "ssm_invisible": 0.1,
        "ssm_pending": 0.1,
        "ssm_running": 0.2,
        "cf_invalidation": 0.3,
        "cf_propagation": 0.5,
    },
}

PROFILE = "aws"
SETTINGS = dict(PROFILES[PROFILE])


def use(profile):
    """Switches to a named profile (the emulator's --profile)."""
    global PROFILE
    if profile not in PROFILES:
        raise ValueError(f"unknown timing profile {profile!r}: one of {sorted(PROFILES)}")
    PROFILE = profile
    SETTINGS.clear()
    SETTINGS.update(PROFILES[profile])


def update(values):
    """Changes named settings; unknown names are refused (a typo must not pass silently)."""
    unknown = sorted(set(values) - set(SETTINGS))
    if unknown:
        raise ValueError(f"unknown timing settings {unknown}: known are {sorted(SETTINGS)}")
    SETTINGS.update({k: float(v) for k, v in values.items()})
    return describe()


def describe():
    return {"profile": PROFILE, **SETTINGS}


def get(name):
    return SETTINGS[name]
