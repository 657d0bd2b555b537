"""The real-instance lane: N local "EC2 instances" that run real containers, and a registry.

Each instance is a network namespace (`bgl-i<N>`, 10.200.0.<N>) on a bridge (`bgl0`,
10.200.0.254) with its own podman storage, run root and tmp dir; `docker` inside means that
podman (a shim on the instance's PATH). Debian's docker-registry on 10.200.0.254:5000 holds
real busybox images built without any download: v1, v2, bad500, badexit, badlate, badpath,
badcrash, badhang.
What was measured about podman here (runc, ulimits, nsenter, stop timeout, insecure registry,
digests) is in docs/contributing/real-lane.md.

    lane.py check                 can the lane run here? one line, exit 0 or 1
    lane.py up --dir D [--instances N]   build it; writes D/lane.json for the emulator
    lane.py down [--dir D]        tear it all down: by PID and by name, also after a crash

Everything it creates is named bgl*/bgcloud-lane so `down` finds leftovers of a killed run.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

BRIDGE = "bgl0"
HOST_IP = "10.200.0.254"
SUBNET = "10.200.0"
REGISTRY_PORT = 5000
NETNS_PREFIX = "bgl-i"
VETH_PREFIX = "bgl-v"
RUN_ROOT = "/run/bgcloud-lane"
BASE_REPOSITORY = "lane/app"
CONTAINER_PORT = 3000
HEALTH_PATH = "/cgi-bin/healthz"
APP_PATH = "/cgi-bin/app"
SLOW_PATH = "/cgi-bin/slow"
SLOW_SECONDS = 8
PACKAGES = {
    "podman": "podman",
    "runc": "runc",
    "docker-registry": "docker-registry",
    "busybox": "busybox-static",
    "nsenter": "util-linux",
    "ip": "iproute2",
    "curl": "curl",
    "skopeo": "skopeo",
}


def log(msg):
    print(f"lane: {msg}", file=sys.stderr, flush=True)


def sh(*argv, check=True, **kw):
    return subprocess.run(argv, check=check, text=True, capture_output=True, **kw)


# --- check and packages -------------------------------------------------------------------------


def cannot_run():
    """Why the lane cannot run here, or None."""
    if os.geteuid() != 0:
        return "the real-instance lane needs root (network namespaces, podman as root)"
    if shutil.which("ip") is None:
        return None  # iproute2 gets installed
    probe = "bgl-probe"
    result = sh("ip", "netns", "add", probe, check=False)
    if result.returncode != 0:
        return f"network namespaces are not available here ({result.stderr.strip()})"
    sh("ip", "netns", "del", probe, check=False)
    return None


def install_packages():
    missing = [pkg for cmd, pkg in PACKAGES.items() if shutil.which(cmd) is None]
    if not missing:
        return
    log(f"installing {' '.join(missing)} (apt)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env,
                   stdout=subprocess.DEVNULL)


# --- network ------------------------------------------------------------------------------------


def make_network(n):
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "addr", "add", f"{HOST_IP}/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    for i in range(1, n + 1):
        ns, veth = f"{NETNS_PREFIX}{i}", f"{VETH_PREFIX}{i}"
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", veth, "master", BRIDGE, "up")
        sh("ip", "-n", ns, "addr", "add", f"{SUBNET}.{i}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", HOST_IP)


# --- podman -------------------------------------------------------------------------------------


def write_podman_config(d):
    # crun cannot start containers in this sandbox; runc can, with explicit ulimits. busybox as
    # PID 1 ignores SIGTERM: without stop_timeout 0 every `docker rm -f` took 10 s (the lane's
    # images now stop on SIGTERM; the launch script's `docker stop -t` sets its own grace).
    with open(f"{d}/containers.conf", "w") as f:
        f.write(
            '[containers]\ndefault_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]\n'
            '[engine]\nruntime = "runc"\nstop_timeout = 0\nevents_logger = "file"\n'
            'cgroup_manager = "cgroupfs"\n'
        )
    with open(f"{d}/registries.conf", "w") as f:
        f.write(
            "unqualified-search-registries = []\n"
            f'[[registry]]\nlocation = "{HOST_IP}:{REGISTRY_PORT}"\ninsecure = true\n'
        )


def podman_argv(root):
    return [
        "podman", "--root", f"{root}/storage", "--runroot", f"{RUN_ROOT}/{os.path.basename(root)}",
        "--tmpdir", f"{root}/tmp", "--storage-driver", "vfs",
    ]


def podman_env(d, root):
    return dict(
        os.environ,
        CONTAINERS_CONF=f"{d}/containers.conf",
        CONTAINERS_REGISTRIES_CONF=f"{d}/registries.conf",
        REGISTRY_AUTH_FILE=f"{root}/auth.json",
    )


def make_instance_dirs(d, i):
    root = f"{d}/instances/i{i}"
    for sub in ("storage", "tmp", "home", "bin"):
        os.makedirs(f"{root}/{sub}", exist_ok=True)
    os.makedirs(f"{RUN_ROOT}/i{i}", exist_ok=True)
    with open(f"{root}/auth.json", "w") as f:
        f.write("{}")
    shim = f"{root}/bin/docker"
    with open(shim, "w") as f:
        f.write("#!/bin/sh\n# docker on this lane instance is podman with the instance's own storage\n")
        f.write("exec " + " ".join(podman_argv(root)) + ' "$@"\n')
    os.chmod(shim, 0o755)
    return root


# --- registry -----------------------------------------------------------------------------------


def start_registry(d):
    os.makedirs(f"{d}/registry/data", exist_ok=True)
    with open(f"{d}/registry/config.yml", "w") as f:
        f.write(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {d}/registry/data\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {HOST_IP}:{REGISTRY_PORT}\n"
        )
    # The registry reads REGISTRY_* variables as config overrides: podman's REGISTRY_AUTH_FILE
    # must not reach it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    proc = subprocess.Popen(
        ["docker-registry", "serve", f"{d}/registry/config.yml"],
        stdout=open(f"{d}/registry/log", "w"), stderr=subprocess.STDOUT, env=env,
        start_new_session=True,
    )
    with open(f"{d}/registry/pid", "w") as f:
        f.write(str(proc.pid))
    url = f"http://{HOST_IP}:{REGISTRY_PORT}/v2/"
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return proc.pid
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"lane: the registry did not start; see {d}/registry/log")


# --- images -------------------------------------------------------------------------------------

CGI_HEAD = "#!/bin/sh\n"


def _cgi(status_expr, body, version):
    return (
        CGI_HEAD
        + f"code={status_expr}\n"
        + "printf 'Status: %s\\r\\nContent-Type: text/plain\\r\\n"
        + f"X-App-Version: {version}\\r\\n\\r\\n' \"$code\"\n"
        + f"echo {body}\n"
    )


# What each image does: health path, app answer, /api, how it starts.
IMAGES = {
    "v1": {"health": "200", "version": "v1", "api": "200"},
    "v2": {"health": "200", "version": "v2", "api": "200"},
    # The health path answers 500: the on-instance probe catches it.
    "bad500": {"health": "500", "version": "bad500", "api": "200"},
    # Exits at start, as an app with missing config does.
    "badexit": {"health": "200", "version": "badexit", "api": "200", "exit": 3},
    # 200 for its first 3 s, then 500: the probe passes, only the ALB's checks can catch it.
    "badlate": {"health": "late", "version": "badlate", "api": "200"},
    # Healthy, but /api answers 500: for metric gates.
    "badpath": {"health": "200", "version": "badpath", "api": "500"},
    # Healthy until asked /api: then its server dies (the container restarts, as
    # `--restart unless-stopped` has it): the load balancer answers 502 itself, no target 5xx.
    "badcrash": {"health": "200", "version": "badcrash", "api": "crash"},
    # Healthy, but /api never answers: the load balancer answers 504 itself.
    "badhang": {"health": "200", "version": "badhang", "api": "hang"},
}


def build_context(ctx, tag, spec):
    rootfs = f"{ctx}/rootfs"
    os.makedirs(f"{rootfs}/bin", exist_ok=True)
    os.makedirs(f"{rootfs}/www/cgi-bin", exist_ok=True)
    os.makedirs(f"{rootfs}/tmp", exist_ok=True)
    shutil.copy("/bin/busybox", f"{rootfs}/bin/busybox")
    applets = sh("busybox", "--list").stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", f"{rootfs}/bin/{applet}")
    version = spec["version"]
    with open(f"{rootfs}/www/index.html", "w") as f:
        f.write(f"<!doctype html><title>{version}</title><p>{version}</p>\n")
    health = spec["health"]
    if health == "late":
        expr = '$( [ $(( $(date +%s) - $(cat /tmp/started) )) -lt 3 ] && echo 200 || echo 500 )'
    else:
        expr = health
    scripts = {
        "healthz": _cgi(expr, "$code", version),
        "app": _cgi("200", version, version),
        "api": {
            # Every server process dies at once, the connection handling this request too.
            "crash": CGI_HEAD + "killall -9 httpd\n",
            "hang": CGI_HEAD + "sleep 3600\n",
        }.get(spec["api"]) or _cgi(spec["api"], "$code", version),
        # A request that takes SLOW_SECONDS: in flight long enough to be cut off by a container
        # replaced without draining, or killed without a grace. While it runs it holds a marker
        # in /tmp/inflight/, which the image's SIGTERM handler waits for.
        "slow": CGI_HEAD + "mkdir -p /tmp/inflight; touch /tmp/inflight/$$\n"
        + _cgi(f"$(sleep {SLOW_SECONDS}; echo 200)", version, version)[len(CGI_HEAD):]
        + "rm -f /tmp/inflight/$$\n",
    }
    for name, text in scripts.items():
        path = f"{rootfs}/www/cgi-bin/{name}"
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
    if "exit" in spec:
        cmd = f"echo 'fatal: DATABASE_URL is not set; refusing to start' >&2; exit {spec['exit']}"
    else:
        # An app that stops gracefully, as `docker stop` expects: on SIGTERM it stops accepting
        # (the listening httpd goes; the processes answering requests stay), waits for the
        # requests in flight to finish, then exits. (busybox httpd as PID 1 would ignore SIGTERM,
        # and be killed when the grace runs out.) The shell is PID 1 and exits when httpd dies
        # (a namespace's PID 1 cannot be killed from inside it), so a crashed server stops the
        # container and it is restarted.
        cmd = (
            "trap 'kill $server; while [ -n \"$(ls /tmp/inflight 2>/dev/null)\" ]; do sleep 0.1; "
            "done; sleep 0.2; exit 0' TERM; rm -rf /tmp/inflight; date +%s > /tmp/started; "
            f"httpd -f -p {CONTAINER_PORT} -h /www & server=$!; wait $server"
        )
    with open(f"{ctx}/Containerfile", "w") as f:
        f.write(
            "FROM scratch\nCOPY rootfs/ /\n"
            f'LABEL org.opencontainers.image.version="{version}"\n'
            f"EXPOSE {CONTAINER_PORT}\n"
            f'CMD ["/bin/sh", "-c", {json.dumps(cmd)}]\n'
        )


def build_images(d):
    root = f"{d}/build"
    os.makedirs(f"{root}/tmp", exist_ok=True)
    os.makedirs(f"{RUN_ROOT}/build", exist_ok=True)
    env = podman_env(d, root)
    with open(f"{root}/auth.json", "w") as f:
        f.write("{}")
    digests = {}
    for tag, spec in IMAGES.items():
        ctx = f"{root}/ctx-{tag}"
        build_context(ctx, tag, spec)
        ref = f"{HOST_IP}:{REGISTRY_PORT}/{BASE_REPOSITORY}:{tag}"
        subprocess.run([*podman_argv(root), "build", "-q", "-t", ref, ctx], check=True,
                       env=env, stdout=subprocess.DEVNULL)
        digest_file = f"{ctx}/digest"
        subprocess.run([*podman_argv(root), "push", "-q", "--format", "v2s2",
                        "--digestfile", digest_file, ref], check=True, env=env)
        digests[tag] = open(digest_file).read().strip()
    return digests


# --- up / down ----------------------------------------------------------------------------------


def up(d, n):
    started = time.time()
    install_packages()
    down(d, quiet=True)  # leftovers of a run that was killed
    os.makedirs(d, exist_ok=True)
    cni_conf = "/etc/cni/net.d/87-podman-bridge.conflist"
    state = {"dir": d, "cni_conf_existed": os.path.exists(cni_conf), "started": started}
    with open(f"{d}/state.json", "w") as f:
        json.dump(state, f)
    make_network(n)
    write_podman_config(d)
    instances = []
    for i in range(1, n + 1):
        root = make_instance_dirs(d, i)
        instances.append(
            {
                "netns": f"{NETNS_PREFIX}{i}",
                "ip": f"{SUBNET}.{i}",
                "docker": f"{root}/bin/docker",
                "path_dir": f"{root}/bin",
                "env": {
                    "HOME": f"{root}/home",
                    "TMPDIR": f"{root}/tmp",
                    "CONTAINERS_CONF": f"{d}/containers.conf",
                    "CONTAINERS_REGISTRIES_CONF": f"{d}/registries.conf",
                    "REGISTRY_AUTH_FILE": f"{root}/auth.json",
                },
            }
        )
    start_registry(d)
    images = build_images(d)
    lane = {
        "dir": d,
        "host_ip": HOST_IP,
        "registry": f"{HOST_IP}:{REGISTRY_PORT}",
        "base_repository": BASE_REPOSITORY,
        "images": images,
        "container_port": CONTAINER_PORT,
        "health_path": HEALTH_PATH,
        "app_path": APP_PATH,
        "slow_path": SLOW_PATH,
        "slow_seconds": SLOW_SECONDS,
        "instances": instances,
    }
    with open(f"{d}/lane.json", "w") as f:
        json.dump(lane, f, indent=2)
    log(f"{n} instances, registry {HOST_IP}:{REGISTRY_PORT}, images "
        f"{', '.join(images)} in {time.time() - started:.1f} s")


def _kill(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def down(d, quiet=False):
    """Removes everything the lane may have made, whether or not `up` finished."""
    state = {}
    if d and os.path.exists(f"{d}/state.json"):
        state = json.load(open(f"{d}/state.json"))
    # Containers first, removed from inside their instance's namespace (podman tears their
    # network down there); then whatever still runs in a namespace the lane or podman made;
    # then the namespaces, the bridge, the registry and the files.
    namespaces = [n for n in sh("ip", "netns", "list", check=False).stdout.split()
                  if n.startswith(NETNS_PREFIX)]
    if d and os.path.isdir(f"{d}/instances"):
        for name in sorted(os.listdir(f"{d}/instances")):
            root = f"{d}/instances/{name}"
            ns = f"{NETNS_PREFIX}{name[1:]}"
            enter = ["nsenter", f"--net=/run/netns/{ns}"] if ns in namespaces else []
            subprocess.run([*enter, *podman_argv(root), "rm", "-af", "-t", "0"],
                           env=podman_env(d, root), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
    # conmon restarts a crash-looping container (`--restart`): stop them all before looking for
    # the network namespaces podman made, or a restart can make one behind our back.
    for line in sh("ps", "-eo", "pid=,args=", check=False).stdout.splitlines():
        pid, _, args = line.strip().partition(" ")
        if ("conmon" in args or "docker-registry serve" in args) and "bgcloud-lane" in args:
            _kill(int(pid))
    started = state.get("started", time.time())
    podman_made = []
    if os.path.isdir("/run/netns"):
        podman_made = [
            n for n in os.listdir("/run/netns")
            if n.startswith(("netns-", "cni-")) and os.stat(f"/run/netns/{n}").st_mtime >= started - 1
        ]
    for ns in podman_made + namespaces:
        for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
            _kill(int(pid))
    for ns in podman_made:
        sh("umount", f"/run/netns/{ns}", check=False)
        try:
            os.remove(f"/run/netns/{ns}")
        except OSError:
            pass
    for ns in namespaces:
        sh("ip", "netns", "del", ns, check=False)
    sh("ip", "link", "del", BRIDGE, check=False)
    if d and os.path.exists(f"{d}/registry/pid"):
        _kill(int(open(f"{d}/registry/pid").read()))
    if state and not state.get("cni_conf_existed", True):
        try:
            os.remove("/etc/cni/net.d/87-podman-bridge.conflist")
        except OSError:
            pass
    shutil.rmtree(RUN_ROOT, ignore_errors=True)
    if d:
        shutil.rmtree(d, ignore_errors=True)
    if not quiet:
        log("torn down: namespaces, bridge, registry, containers and files")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check")
    p = sub.add_parser("up")
    p.add_argument("--dir", required=True)
    p.add_argument("--instances", type=int, default=2)
    p = sub.add_parser("down")
    p.add_argument("--dir")
    args = parser.parse_args()
    if args.cmd == "check":
        why = cannot_run()
        if why:
            print(f"lane: cannot run here: {why}", file=sys.stderr)
            sys.exit(1)
        return
    if args.cmd == "up":
        why = cannot_run()
        if why:
            print(f"lane: cannot run here: {why}", file=sys.stderr)
            sys.exit(1)
        up(os.path.abspath(args.dir), args.instances)
    else:
        down(os.path.abspath(args.dir) if args.dir else None)


if __name__ == "__main__":
    main()
