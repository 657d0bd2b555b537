"""Runs bgcloud against a fresh emulator and reports wall time and AWS requests per command.

Each command runs with its own access key, so the emulator's request log for that key is
exactly the requests that command made.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def control(base, path):
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return json.loads(r.read())


def post(base, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def start_emulator(work, profile="scaled"):
    """Starts localstack/emulator.py on a free port with a timing profile (localstack/timing.py);
    returns (process, base URL)."""
    port_file = os.path.join(work, "port")
    emulator = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "localstack/emulator.py"), "--port-file", port_file,
         "--parent-pid", str(os.getpid()), "--profile", profile],
        stderr=open(os.path.join(work, "emulator.log"), "w"),
    )
    for _ in range(600):
        if os.path.exists(port_file):
            break
        time.sleep(0.05)
    else:
        sys.exit(f"the emulator did not start; see {work}/emulator.log")
    return emulator, "http://127.0.0.1:" + open(port_file).read().strip()


class Runner:
    def __init__(self, args, base, config):
        self.bin = args.bin
        self.base = base
        self.config = config
        self.n = 0

    def env(self, key):
        env = dict(os.environ)
        env.update(
            AWS_ENDPOINT_URL=self.base,
            AWS_ACCESS_KEY_ID=key,
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
            BGCLOUD_CONFIG=self.config,
        )
        env.pop("AWS_PROFILE", None)
        return env

    def run(self, *argv, key=None):
        self.n += 1
        key = key or f"AKIDBENCH{self.n}"
        env = dict(os.environ)
        env.update(
            AWS_ENDPOINT_URL=self.base,
            AWS_ACCESS_KEY_ID=key,
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
            BGCLOUD_CONFIG=self.config,
        )
        env.pop("AWS_PROFILE", None)
        start = time.perf_counter()
        out = subprocess.run([self.bin, *argv], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if out.returncode != 0:
            sys.exit(f"bgcloud {' '.join(argv)} failed ({out.returncode}):\n{out.stderr}")
        return wall, control(self.base, f"/_bgcloud/requests?access_key={key}"), out.stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="bgcloud-bench-")
    emulator, base = start_emulator(work)
    try:
        config = os.path.join(work, "bgcloud.toml")
        env = dict(os.environ, AWS_ACCESS_KEY_ID="setup", AWS_SECRET_ACCESS_KEY="x", AWS_REGION="us-east-1")
        subprocess.run(
            [args.bootstrap, "--endpoint-url", base, "--name", "bench", "--instances", "4",
             "--images", "v1,v2", "--out", config],
            env=env, check=True, capture_output=True,
        )
        r = Runner(args, base, config)
        rows = {"deploy (full)": [], "deploy --canary 10": [], "promote": [], "rollback": [], "status": []}
        counts = {}
        for i in range(args.rounds):
            for name, argv in [
                ("deploy (full)", ["deploy", "--image", "v1" if i % 2 == 0 else "v2"]),
                ("rollback", ["rollback"]),
                ("rollback", ["rollback"]),  # back to where the deploy left it
                ("deploy --canary 10", ["deploy", "--image", "v2" if i % 2 == 0 else "v1", "--canary", "10"]),
                ("status", ["status"]),
                ("promote", ["promote"]),
            ]:
                wall, requests, _ = r.run(*argv)
                rows[name].append(wall)
                elb = [q for q in requests if q["service"] == "elasticloadbalancing"]
                counts[name] = (len(requests), len(elb))

        # Poll spacing: targets stay `initial` for 5 polls; poll_interval in the config is 100ms.
        status = json.loads(r.run("status", "--output", "json")[2])
        idle = "green" if status["stable"] == "blue" else "blue"
        for t in status["colors"][idle]["targets"]:
            post(base, "/_bgcloud/target-health", {
                "target_group_arn": status["colors"][idle]["target_group_arn"], "target_id": t["id"],
                "states": [{"state": "initial", "reason": "Elb.RegistrationInProgress", "times": 5},
                           {"state": "healthy"}]})
        _, requests, _ = r.run("deploy", "--image", "v1", key="AKIDBENCHPOLL")
        polls = [q["t"] for q in requests if q["action"] == "DescribeTargetHealth"]
        gaps = [b - a for a, b in zip(polls, polls[1:])]

        print(f"bgcloud against the local emulator: 4 instances, targets healthy at once, {args.rounds} rounds")
        print(f"{'command':<22}{'median s':>10}{'max s':>8}{'requests':>10}{'ELB':>6}")
        for name, walls in rows.items():
            total, elb = counts[name]
            print(f"{name:<22}{statistics.median(walls):>10.3f}{max(walls):>8.3f}{total:>10}{elb:>6}")
        print(f"health wait: {len(polls)} DescribeTargetHealth calls, smallest gap between polls "
              f"{min(gaps[1:] or gaps):.3f} s (poll_interval 0.100 s)")
        breach_to_back(r, base, config)
        critical_path(r, base, config, args.rounds)
    finally:
        emulator.terminate()


def breach_to_back(r, base, config):
    """A watch whose alarm goes into ALARM: the time from the breach to the listener write that
    puts traffic back, and to its read-back (traffic verified back)."""
    import boto3

    cw = boto3.client("cloudwatch", endpoint_url=base, region_name="us-east-1",
                      aws_access_key_id="setup", aws_secret_access_key="x")
    cw.put_metric_alarm(AlarmName="bench-5xx", Namespace="AWS/ApplicationELB",
                        MetricName="HTTPCode_Target_5XX_Count", Statistic="Sum", Period=60,
                        EvaluationPeriods=1, Threshold=10, ComparisonOperator="GreaterThanThreshold")
    watch_config = config + ".watch"
    with open(config) as f, open(watch_config, "w") as out:
        out.write(f.read().replace("\n[frontend]", '\n[backend.gates]\nalarms = ["bench-5xx"]\n\n[frontend]'))
    r.config = watch_config
    to_write, to_verified = [], []
    for i in range(3):
        cw.set_alarm_state(AlarmName="bench-5xx", StateValue="OK", StateReason="bench")
        key = f"AKIDBENCHWATCH{i}"
        proc = subprocess.Popen([r.bin, "deploy", "--image", "v1" if i % 2 else "v2", "--watch", "60s"],
                                env=r.env(key), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not any(q["action"].endswith("/rollout.json") and q["method"] == "PUT"
                      for q in control(base, f"/_bgcloud/requests?access_key={key}")):
            time.sleep(0.02)
        time.sleep(0.5)
        breach = time.time()
        cw.set_alarm_state(AlarmName="bench-5xx", StateValue="ALARM", StateReason="bench")
        proc.wait()
        log = control(base, f"/_bgcloud/requests?access_key={key}")
        write = next(q["t"] for q in log if q["action"] == "ModifyListener" and q["t"] > breach)
        verified = next(q["t"] for q in log if q["action"] == "DescribeListeners" and q["t"] > write)
        to_write.append(write - breach)
        to_verified.append(verified - breach)
        r.config = config
        r.run("rollback", "--force")  # back where the next round expects it
        r.config = watch_config
    r.config = config
    print(f"gate breach to traffic back (poll_interval 0.100 s, 3 rounds): listener write after "
          f"{statistics.median(to_write):.3f} s median / {max(to_write):.3f} s max, verified after "
          f"{statistics.median(to_verified):.3f} s / {max(to_verified):.3f} s")


def round_trips(log, action, latency):
    """The round trips before the first `action`: a request that arrived before any request of
    the current round trip was answered was sent together with them; a later one starts the next
    (tests/support/emulator.rs round_trips_before does the same; `latency` stands in for an
    answer the log lacks)."""
    trips = []  # [the earliest answer of the round trip, its actions]
    for q in log:
        if q["action"] == action:
            break
        answered = q.get("answered", q["t"] + latency)
        if trips and q["t"] < trips[-1][0]:
            trips[-1][0] = min(trips[-1][0], answered)
            trips[-1][1].append(q["action"])
        else:
            trips.append([answered, [q["action"]]])
    return [t[1] for t in trips]


def critical_path(r, base, config, rounds, latency=0.05):
    """Rollback with `latency` on every request (as over a network): round trips before the
    listener write, time to the write and to its read-back, against one `aws elbv2
    modify-listener` of the same listener on the same emulator (its start-up included)."""
    import tomllib

    with open(config, "rb") as f:
        listener = tomllib.load(f)["backend"]["listener_arn"]
    trips, to_write, to_verified, walls, cli = [], [], [], [], []
    for i in range(rounds * 2):
        key = f"AKIDBENCHPATH{i}"
        post(base, "/_bgcloud/latency", {"access_key": key, "seconds": latency})
        start = time.time()
        wall, log, _ = r.run("rollback", "--force", key=key)
        write = next(q["t"] for q in log if q["action"] == "ModifyListener")
        back = next(q["t"] for q in log if q["action"] == "DescribeListeners" and q["t"] > write)
        trips.append(len(round_trips(log, "ModifyListener", latency)))
        to_write.append(write - start)
        to_verified.append(back + latency - start)
        walls.append(wall)
    actions = json.loads(subprocess.run(
        ["aws", "elbv2", "describe-listeners", "--listener-arns", listener, "--endpoint-url", base,
         "--region", "us-east-1",
         "--query", "Listeners[0].DefaultActions", "--output", "json"],
        env=r.env("AKIDBENCHCLIREAD"), capture_output=True, text=True, check=True).stdout)
    for i in range(rounds * 2):
        key = f"AKIDBENCHCLI{i}"
        post(base, "/_bgcloud/latency", {"access_key": key, "seconds": latency})
        start = time.perf_counter()
        subprocess.run(
            ["aws", "elbv2", "modify-listener", "--listener-arn", listener, "--endpoint-url", base,
             "--region", "us-east-1",
             "--default-actions", json.dumps(actions)],
            env=r.env(key), capture_output=True, check=True)
        cli.append(time.perf_counter() - start)
    med = statistics.median
    print(f"rollback with {latency * 1000:.0f} ms a request ({rounds * 2} runs): "
          f"{max(trips)} round trips before the ModifyListener; the write after "
          f"{med(to_write):.3f} s, verified after {med(to_verified):.3f} s, the command "
          f"{med(walls):.3f} s (medians)")
    print(f"aws elbv2 modify-listener of the same listener, same latency: {med(cli):.3f} s median; "
          f"ratio to it: write {med(to_write) / med(cli):.2f}, verified "
          f"{med(to_verified) / med(cli):.2f}, whole rollback {med(walls) / med(cli):.2f}")


if __name__ == "__main__":
    main()
