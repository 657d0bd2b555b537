"""The real-instance lane inside the emulator (emulator.py --lane D/lane.json; lane/lane.py
builds the lane): EC2 instances that are network namespaces running real containers.

For an instance attached to the lane (control `lane/attach`):
- its private IP is its namespace's address;
- SendCommand runs the script for real, as root, in the instance's namespace (`nsenter --net`),
  with `docker` meaning that instance's podman and a real AWS CLI (PyPI's awscli, in the
  emulator's venv) that reaches this emulator; status, exit code, stdout and stderr come back
  through GetCommandInvocation as the script produced them (truncated as SSM truncates);
- its targets are health-checked with real HTTP requests (path, port, matcher, timeout,
  interval, thresholds of the target group) by the ALB model's state machine.
ECR repositories point at the lane's registry (control `lane/publish` copies the lane's images
into a repository, with their real manifest digests).
"""

import hashlib
import http.client
import json
import os
import subprocess
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from moto.ec2 import models as ec2_models
from moto.ecr import models as ecr_models

import model_alb

LANE = None  # lane.json
PORT = None  # the emulator's port, reachable from the instances on the lane's host address
LOCK = threading.Lock()
ATTACHED = {}  # instance_id -> lane instance (dict from lane.json)
RUNS = {}  # (command_id, instance_id) -> Run
STDOUT_LIMIT = 24000
STDERR_LIMIT = 8000
VENV_BIN = os.path.dirname(os.path.realpath(os.sys.executable))


def enabled():
    return LANE is not None


def instance(instance_id):
    with LOCK:
        return ATTACHED.get(instance_id)


# --- SSM: scripts that really run ---------------------------------------------------------------


class Run:
    def __init__(self, command_id, instance_id):
        self.command_id = command_id
        self.instance_id = instance_id
        self.status = "InProgress"
        self.code = -1
        self.stdout = ""
        self.stderr = ""
        self.proc = None
        self.cancelled = False

    def invocation(self):
        return {
            "Status": self.status,
            "StatusDetails": "ExecutionTimedOut" if self.status == "TimedOut" else self.status,
            "ResponseCode": self.code,
            "StandardOutputContent": self.stdout[:STDOUT_LIMIT],
            "StandardErrorContent": self.stderr[:STDERR_LIMIT],
        }


def _instance_env(lane_instance):
    env = {
        "PATH": ":".join([lane_instance["path_dir"], VENV_BIN, "/usr/local/sbin", "/usr/local/bin",
                          "/usr/sbin", "/usr/bin", "/sbin", "/bin"]),
        "AWS_ENDPOINT_URL": f"http://{LANE['host_ip']}:{PORT}",
        # The instance role, as far as the emulator cares.
        "AWS_ACCESS_KEY_ID": "AKIDLANEINSTANCE",
        "AWS_SECRET_ACCESS_KEY": "lane",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "LANG": "C.UTF-8",
    }
    env.update(lane_instance["env"])
    return env


def run(command_id, instance_id, script, timeout):
    """Runs `script` on the lane instance in the background, as AWS-RunShellScript does."""
    lane_instance = instance(instance_id)
    r = Run(command_id, instance_id)
    with LOCK:
        RUNS[(command_id, instance_id)] = r

    def go():
        try:
            proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{lane_instance['netns']}", "sh", "-c", script],
                env=_instance_env(lane_instance), cwd=lane_instance["env"]["HOME"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True,
            )
            r.proc = proc
            try:
                out, err = proc.communicate(timeout=timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                out, err = proc.communicate()
                timed_out = True
            r.stdout = out.decode("utf-8", "replace")
            r.stderr = err.decode("utf-8", "replace")
            r.code = proc.returncode
            if r.cancelled:
                r.status = "Cancelled"
            elif timed_out:
                r.status = "TimedOut"
            else:
                r.status = "Success" if proc.returncode == 0 else "Failed"
        except Exception as e:  # the emulator must say what went wrong, not hang
            r.stderr = f"lane: could not run the script: {e}"
            r.code = 1
            r.status = "Failed"

    threading.Thread(target=go, daemon=True).start()
    return r


def result(command_id, instance_id):
    with LOCK:
        r = RUNS.get((command_id, instance_id))
    return r.invocation() if r else None


def cancel(command_id, instance_id):
    with LOCK:
        r = RUNS.get((command_id, instance_id))
    if r and r.status == "InProgress":
        r.cancelled = True
        if r.proc:
            try:
                os.killpg(r.proc.pid, 9)
            except ProcessLookupError:
                pass


# --- ALB: real health checks ----------------------------------------------------------------------


def _check(tg, target):
    ip = instance(target.id)["ip"]
    port = target.port if tg.health_check_port in (None, "traffic-port") else int(tg.health_check_port)
    path = tg.health_check_path or "/"
    timeout = float(tg.health_check_timeout_seconds or 5)
    matcher = (getattr(tg, "matcher", None) or {}).get("HttpCode", "200")
    try:
        conn = http.client.HTTPConnection(ip, port, timeout=timeout)
        conn.request("GET", path, headers={"User-Agent": "ELB-HealthChecker/2.0"})
        status = conn.getresponse().status
        conn.close()
    except TimeoutError:
        return False, "Target.Timeout", "Request timed out"
    except OSError:
        return False, "Target.FailedHealthChecks", "Health checks failed"
    if model_alb.matches(matcher, status):
        return True, None, None
    return False, "Target.ResponseCodeMismatch", f"Health checks failed with these codes: [{status}]"


def _checker():
    pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health-check")

    def one(tg, target, node):
        model_alb.record_real_check(tg, node, *_check(tg, target))

    while True:
        for tg, target, node in model_alb.due_real_checks(time.time()):
            pool.submit(one, tg, target, node)
        time.sleep(0.05)


# --- ECR: repositories in the lane's registry ---------------------------------------------------

_stock_repository_init = ecr_models.Repository.__init__


def _repository_init(self, *args, **kwargs):
    _stock_repository_init(self, *args, **kwargs)
    self.uri = f"{LANE['registry']}/{self.name}"


def publish(repository, tags, account_id="123456789012", region="us-east-1"):
    """Copies the lane's images `tags` into `repository` in the registry and puts their manifests
    in ECR (same bytes, so the same digests). Returns tag -> digest."""
    backend = ecr_models.ecr_backends[account_id][region]
    out = {}
    for tag in tags:
        src = f"docker://{LANE['registry']}/{LANE['base_repository']}:{tag}"
        dst = f"docker://{LANE['registry']}/{repository}:{tag}"
        subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
                        "--preserve-digests", src, dst], check=True, capture_output=True)
        req = urllib.request.Request(
            f"http://{LANE['registry']}/v2/{repository}/manifests/{tag}",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            manifest = r.read()
            media_type = r.headers.get("Content-Type")
        backend.put_image(repository, manifest.decode(), tag,
                          image_manifest_mediatype=media_type)
        out[tag] = "sha256:" + hashlib.sha256(manifest).hexdigest()
    return out


# --- controls -----------------------------------------------------------------------------------


def attach(instance_ids):
    """The instances become the lane's: in order, one namespace each; their private IP is the
    namespace's."""
    lane_instances = LANE["instances"]
    if len(instance_ids) > len(lane_instances):
        raise ValueError(f"the lane has {len(lane_instances)} instances, {len(instance_ids)} asked")
    for account in ec2_models.ec2_backends.values():
        for backend in account.values():
            for reservation in backend.all_reservations():
                for i in reservation.instances:
                    if i.id in instance_ids:
                        lane_instance = lane_instances[instance_ids.index(i.id)]
                        i.nics[0].private_ip_address = lane_instance["ip"]
                        with LOCK:
                            ATTACHED[i.id] = lane_instance
    return {id_: ATTACHED[id_]["ip"] for id_ in instance_ids if id_ in ATTACHED}


def setup(lane_path, port):
    global LANE, PORT
    with open(lane_path) as f:
        LANE = json.load(f)
    PORT = port
    ecr_models.Repository.__init__ = _repository_init
    model_alb.is_real = lambda target_id: instance(target_id) is not None
    threading.Thread(target=_checker, daemon=True, name="lane-health-checks").start()
