"""The metric gates at AWS scale: CloudWatch's one-minute periods, published 90 s late (the
emulator's `aws` timing profile), against the same watches at the scaled profile the tests use,
in the same run. Three watches, each on a stack of its own, run side by side:

  breach   a canary answering 20 % 5xx from the shift on: rolled back (exit 1) once the first
           whole period after the move is published, never before
  healthy  a good canary, --watch 2m: passes (exit 0) only once the watch's last period is
           published, past the watch's end
  quiet    no requests at all (no datapoints): inconclusive (exit 4) after the watch and the
           bounded wait for late data, never passed

For each: the exit code, the time from the listener write (the shift) to bgcloud's verdict, and
what the model says it must be: a verdict before the data is published would be a gate judging
what AWS has not said yet. Exits 1 if any watch ends otherwise.
"""

import argparse
import math
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import control, post, start_emulator  # noqa: E402

GATES = '\n[backend.gates]\nperiod = "{period}"\nmax_5xx_rate = 0.05\nmin_requests = 20\n\n[frontend]'


def env_for(base, key, config):
    env = dict(os.environ)
    env.update(AWS_ENDPOINT_URL=base, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY="bench",
               AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
               BGCLOUD_CONFIG=config)
    env.pop("AWS_PROFILE", None)
    return env


def read_config(path):
    import tomllib
    with open(path, "rb") as f:
        return tomllib.load(f)


def publisher(cw, lb, groups, stop, traffic, tick):
    """Puts ALB datapoints every `tick` seconds for each (colour, requests/s, errors/s) in
    `traffic`, timestamped now, as the ALB counts them; the emulator publishes them a period +
    delay late. A tick well under the period, so that every period gets its share."""
    def dims(tg):
        return [{"Name": "TargetGroup", "Value": "targetgroup/" + tg.split(":targetgroup/")[1]},
                {"Name": "LoadBalancer", "Value": lb.split(":loadbalancer/")[1]}]
    while not stop.is_set():
        for colour, rate, error_rate in traffic():
            if rate == 0:
                continue
            requests, errors = rate * tick, error_rate * tick
            d = dims(groups[colour])
            cw.put_metric_data(Namespace="AWS/ApplicationELB", MetricData=[
                {"MetricName": "RequestCount", "Dimensions": d, "Value": requests},
                {"MetricName": "HTTPCode_Target_2XX_Count", "Dimensions": d, "Value": requests - errors},
                {"MetricName": "HTTPCode_Target_5XX_Count", "Dimensions": d, "Value": errors},
            ])
        stop.wait(tick)


def scenario(args, base, profile, name, watch, canary_errors, quiet, results):
    import boto3

    work = tempfile.mkdtemp(prefix=f"bgcloud-bench-gates-{name}-")
    config = os.path.join(work, "bgcloud.toml")
    stack = f"g{profile[0]}{name}"
    setup = dict(os.environ, AWS_ACCESS_KEY_ID="setup", AWS_SECRET_ACCESS_KEY="x", AWS_REGION="us-east-1")
    subprocess.run([args.bootstrap, "--endpoint-url", base, "--name", stack, "--instances", "2",
                    "--images", "v1,v2", "--out", config], env=setup, check=True, capture_output=True)
    period = "60s" if profile == "aws" else "1s"
    with open(config) as f:
        text = f.read()
    # The AWS profile's Describe* lag is 2 s: bgcloud's default read-back patience.
    text = text.replace('readback_timeout = "3s"', 'readback_timeout = "15s"')
    with open(config, "w") as f:
        f.write(text.replace("\n[frontend]", GATES.format(period=period), 1))
    cfg = read_config(config)["backend"]
    cw = boto3.client("cloudwatch", endpoint_url=base, region_name="us-east-1",
                      aws_access_key_id="setup", aws_secret_access_key="x")
    elb = boto3.client("elbv2", endpoint_url=base, region_name="us-east-1",
                       aws_access_key_id="setup", aws_secret_access_key="x")
    lb = elb.describe_target_groups(TargetGroupArns=[cfg["blue_target_group_arn"]])[
        "TargetGroups"][0]["LoadBalancerArns"][0]
    groups = {"blue": cfg["blue_target_group_arn"], "green": cfg["green_target_group_arn"]}
    # v1 everywhere first (no watch), so the canary is green at 10 %.
    first = subprocess.run([args.bin, "deploy", "--image", "v1"], env=env_for(base, f"AKID{stack}0", config),
                           capture_output=True, text=True)
    if first.returncode != 0:
        sys.exit(f"{stack}: the first deploy failed:\n{first.stderr}")
    stable = "green" if "to green" in first.stderr else "blue"
    canary = "blue" if stable == "green" else "green"
    shifted = threading.Event()

    def traffic():
        if quiet:
            return []
        # 1,000 requests/s, 10 % to the canary once shifted; 20 % of the canary's fail if asked.
        return [(stable, 900 if shifted.is_set() else 1000, 0),
                (canary, 100 if shifted.is_set() else 0, 20 if shifted.is_set() and canary_errors else 0)]

    stop = threading.Event()
    tick = 0.2 if profile == "scaled" else 1.0
    feeder = threading.Thread(target=publisher, args=(cw, lb, groups, stop, traffic, tick), daemon=True)
    feeder.start()
    key = f"AKID{stack}1"
    started = time.time()
    proc = subprocess.Popen([args.bin, "deploy", "--image", "v2", "--canary", "10", "--watch", watch],
                            env=env_for(base, key, config), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    shift_at = None
    while proc.poll() is None and shift_at is None:
        writes = [q["t"] for q in control(base, f"/_bgcloud/requests?access_key={key}")
                  if q["action"] == "ModifyListener"]
        if writes:
            shift_at = writes[0]
            shifted.set()
        time.sleep(0.05)
    stderr = proc.communicate()[1]
    ended = time.time()
    stop.set()
    feeder.join()
    if shift_at is None:
        sys.exit(f"{stack}: no shift seen:\n{stderr}")
    timing = control(base, "/_bgcloud/timing")
    p, delay = timing["metric_period"], timing["metric_delay"]
    first_period_start = math.ceil(shift_at / p) * p
    seconds = float(watch[:-1]) * (60 if watch.endswith("m") else 1)
    results.append({
        "profile": profile, "name": name, "watch": watch, "code": proc.returncode,
        "verdict_after": ended - shift_at, "deploy": ended - started,
        # The first datapoints bgcloud may judge: the first whole period after the move,
        # published `delay` after it ends.
        "first_data_after": first_period_start + p + delay - shift_at,
        # The watch's last whole period, published: a pass may come no earlier.
        "last_data_after": math.floor((shift_at + seconds) / p) * p + delay - shift_at,
        "watch_s": seconds,
        "stderr": stderr,
    })


def run_profile(args, profile):
    work = tempfile.mkdtemp(prefix="bgcloud-bench-gates-")
    emulator, base = start_emulator(work, profile=profile)
    results = []
    try:
        watches = [("breach", "4m" if profile == "aws" else "8s", True, False),
                   ("healthy", "2m" if profile == "aws" else "3s", False, False),
                   ("quiet", "2m" if profile == "aws" else "3s", False, True)]
        threads = [threading.Thread(target=scenario, args=(args, base, profile, n, w, e, q, results))
                   for n, w, e, q in watches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        emulator.terminate()
    return sorted(results, key=lambda r: ["breach", "healthy", "quiet"].index(r["name"]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--bootstrap", required=True)
    args = parser.parse_args()
    wanted = {"breach": 1, "healthy": 0, "quiet": 4}
    rows = run_profile(args, "scaled") + run_profile(args, "aws")
    print("metric gates: one canary watch per row, timing profile as in localstack/timing.py")
    print(f"{'profile':<8}{'watch':<9}{'--watch':>8}{'exit':>6}{'verdict after shift s':>23}"
          f"{'first period published s':>26}{'last period published s':>25}")
    bad = []
    for r in rows:
        print(f"{r['profile']:<8}{r['name']:<9}{r['watch']:>8}{r['code']:>6}{r['verdict_after']:>23.1f}"
              f"{r['first_data_after']:>26.1f}{r['last_data_after']:>25.1f}")
        if r["code"] != wanted[r["name"]]:
            bad.append(f"{r['profile']} {r['name']}: exit {r['code']}, wanted {wanted[r['name']]}")
        # A verdict from the metrics before any were published would be judging nothing.
        if r["name"] != "quiet" and r["verdict_after"] < r["first_data_after"]:
            bad.append(f"{r['profile']} {r['name']}: a verdict {r['verdict_after']:.1f} s after the "
                       f"shift, before the first datapoints ({r['first_data_after']:.1f} s)")
        # A pass before the watch's last period is published would leave that period unjudged.
        if r["name"] == "healthy" and r["verdict_after"] < r["last_data_after"]:
            bad.append(f"{r['profile']} healthy: passed {r['verdict_after']:.1f} s after the shift, "
                       f"before its last period was published ({r['last_data_after']:.1f} s)")
        if r["name"] == "quiet" and r["verdict_after"] < r["watch_s"]:
            bad.append(f"{r['profile']} quiet: ended {r['verdict_after']:.1f} s after the shift, "
                       f"before its {r['watch']} watch")
    for b in bad:
        print("FAILED: " + b, file=sys.stderr)
    for r in rows:
        if r["code"] != wanted[r["name"]]:
            print(f"--- {r['profile']} {r['name']} stderr:\n{r['stderr']}", file=sys.stderr)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
