"""The daemon's life cycle as an operator and systemd see it.

- `dpsecd --check` accepts a good file and pinpoints the first error of a bad
  one (PATH:LINE:COL: KEY: reason) without starting DPDK;
- systemd readiness: READY=1 once telemetry answers, STOPPING=1 and exit 0 on
  SIGTERM and SIGINT;
- telemetry readable by DPDK's own client, dpdk-telemetry.py;
- dpsecctl finds the daemon by file prefix or through its configuration;
- a daemon that cannot start says why, exits non-zero, never says READY=1 and
  leaves no exception TAP behind.

The running daemons use net_null devices with no-rx=1 (silent ports that need
neither a namespace nor a kernel interface) unless a test needs a namespace.
"""
import glob
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest
import yaml

from dpsec import DPSECCTL, DPSECD, ROOT, Daemon, sh

RUNTIME = "/var/run/dpdk"
TELEMETRY_CLIENT = shutil.which("dpdk-telemetry.py") or "/usr/bin/dpdk-telemetry.py"
PYTHON = "/usr/bin/python3"


def counter_names():
    """The dataplane counters as src/dataplane/counters.h declares them."""
    with open(os.path.join(ROOT, "src/dataplane/counters.h")) as f:
        text = f.read()
    names = re.findall(r"^\s*X\((\w+),", text, re.M)
    assert len(names) >= 10, names
    return names


def assert_counters(owner, reported, names):
    """reported (a dict from telemetry) holds the counters of counters.h, in that order,
    as non-negative integers, next to other fields."""
    got = [k for k in reported if k in names]
    assert got == names, (owner, "missing:", set(names) - set(got), list(reported))
    for n in got:
        assert type(reported[n]) is int and reported[n] >= 0, (owner, n, reported[n])


def null_ports(n=2, **extra):
    """Ports on net_null devices that never receive anything."""
    roles = ["protected", "unprotected"]
    return [dict({"name": f"p{i}", "device": f"net_null{i},no-rx=1", "role": roles[i % 2],
                  "exception": False}, **extra) for i in range(n)]


def runtime_dir(prefix):
    return os.path.join(RUNTIME, prefix)


def forget_runtime_dir(prefix):
    """DPDK leaves an empty /var/run/dpdk/<prefix> behind even with --in-memory."""
    try:
        os.rmdir(runtime_dir(prefix))
    except OSError:
        pass


def links(ns):
    """Interface names in namespace ns."""
    out = sh(["ip", "-o", "link", "show"], ns=ns).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


class Notify:
    """A NOTIFY_SOCKET as systemd makes one: AF_UNIX datagrams at a path."""

    def __init__(self):
        # sun_path holds 108 bytes: keep it out of pytest's long tmp_path.
        self.dir = tempfile.mkdtemp(prefix="dpsn")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.got = []

    def wait_for(self, msg, timeout, proc=None):
        """Wait for a datagram holding the line msg; fail early if proc exits without it."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(msg in d.split("\n") for d in self.got):
                return
            self.sock.settimeout(0.2)
            try:
                self.got.append(self.sock.recv(4096).decode())
                continue
            except socket.timeout:
                pass
            if proc is not None and proc.poll() is not None:
                self.drain()
                if any(msg in d.split("\n") for d in self.got):
                    return
                raise AssertionError(f"dpsecd exited {proc.returncode} before {msg}; "
                                     f"notifications {self.got}")
        raise AssertionError(f"no {msg} within {timeout}s; notifications {self.got}")

    def drain(self):
        self.sock.setblocking(False)
        try:
            while True:
                self.got.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        return self.got

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify():
    n = Notify()
    yield n
    n.close()


class Proc:
    """dpsecd run from a Daemon's configuration file, with our environment and options."""

    def __init__(self, d, env=None, ns=None, unset=()):
        self.d = d
        cmd = [DPSECD, "-c", d.path]
        if ns:
            cmd = ["ip", "netns", "exec", ns] + cmd
        env = {k: v for k, v in dict(os.environ, **(env or {})).items() if k not in unset}
        self.logf = open(d.log, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, env=env)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.logf.flush()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()
        forget_runtime_dir(self.d.prefix)


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        p.kill()


# ---- 1. --check ---------------------------------------------------------------------------

GOOD = """\
eal:
  lcores: "0-1"
  file_prefix: {prefix}
log_level: info
ports:
  - name: lan
    device: "net_null0,no-rx=1"
    role: protected
    mtu: 1500
    addresses:
      - 10.1.0.1/24
  - name: wan
    device: "net_null1,no-rx=1"
    role: unprotected
    addresses:
      - 10.2.0.1/24
routes:
  - prefix: 10.9.0.0/16
    via: 10.2.0.2
    port: wan
"""

# name -> (old text, new text, key path, text the error points at, words of the reason)
BAD = {
    "unknown_key": ("    mtu: 1500\n", "    mtu: 1500\n    speed: 1000\n",
                    "ports[0].speed", "speed: 1000", "unknown key"),
    "bad_address": ("      - 10.2.0.1/24", "      - 10.2.0.300/24",
                    "ports[1].addresses[0]", "10.2.0.300/24", ""),
    "mtu_too_large": ("mtu: 1500", "mtu: 9601", "ports[0].mtu", "9601", "out of range"),
    "mtu_too_small": ("mtu: 1500", "mtu: 67", "ports[0].mtu", "67", "out of range"),
    "route_to_missing_port": ("    port: wan", "    port: dmz", "routes[0].port", "dmz", "dmz"),
    "yaml_syntax_error": ("    role: unprotected", "   role: unprotected", "yaml",
                          "role: unprotected", ""),
    "duplicate_key": ("    mtu: 1500\n", "    mtu: 1500\n    mtu: 1400\n",
                      "ports[0].mtu", "mtu: 1400", "duplicate"),
    "quoted_integer": ("mtu: 1500", 'mtu: "1500"', "ports[0].mtu", '"1500"', ""),
    "missing_required_key": ('    device: "net_null1,no-rx=1"\n', "",
                             "ports[1].device", "name: wan", "missing"),
    "no_lcore_for_default_worker": ('lcores: "0-1"', 'lcores: "0"', "eal.lcores", '"0"', ""),
}

# Files that parsed but that start-up refused (issue 9, defect 6): --check
# must refuse them, with the words start-up uses.
TWO_POLICIES = """\
policies:
  - {direction: out, dst: 10.9.0.0/16, action: bypass}
  - {direction: out, dst: 10.9.0.0/16, action: discard, priority: 5}
"""
REFUSED_AT_START = {
    "in_memory_without_hugepages": ('lcores: "0-1"\n', 'lcores: "0-1"\n  hugepages: false\n'
                                    '  in_memory: true\n', "eal.in_memory", "true",
                                    "in_memory needs hugepages"),
    "policy_same_selector_other_priority": ("routes:\n", TWO_POLICIES + "routes:\n",
                                            "policies[1]", "{direction: out, dst: 10.9.0.0/16,"
                                            " action: discard", "same direction and selector"),
}
BAD.update(REFUSED_AT_START)


def position(text, needle):
    """1-based (line, column) of the first occurrence of needle in text."""
    i = text.index(needle)
    line = text.count("\n", 0, i) + 1
    return line, i - (text.rfind("\n", 0, i) + 1) + 1


def check(path):
    return subprocess.run([DPSECD, "--check", "-c", str(path)], capture_output=True, text=True,
                          timeout=10)


def test_check_accepts_good_config_and_starts_nothing(tmp_path):
    prefix = f"t{uuid.uuid4().hex[:10]}"
    path = tmp_path / "good.yaml"
    path.write_text(GOOD.format(prefix=prefix))
    r = check(path)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"{path}: ok\n", "")
    assert not os.path.exists(runtime_dir(prefix)), "--check started DPDK"


@pytest.mark.parametrize("case", sorted(BAD))
def test_check_reports_first_error_with_position_and_key(tmp_path, case):
    old, new, key, at, reason = BAD[case]
    # Letters no needle contains: a hex prefix once held "67" before the bad mtu did.
    prefix = "t" + "".join(random.choice("qrsuvxy") for _ in range(10))
    good = GOOD.format(prefix=prefix)
    assert old in good
    text = good.replace(old, new, 1)
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    line, col = position(text, at)
    r = check(path)
    assert r.returncode == 1, r
    assert r.stdout == ""
    assert r.stderr.endswith("\n") and r.stderr.count("\n") == 1, repr(r.stderr)
    assert r.stderr.startswith(f"{path}:{line}:{col}: {key}: "), \
        f"expected {path}:{line}:{col}: {key}: ..., got {r.stderr!r}"
    assert reason in r.stderr
    assert not os.path.exists(runtime_dir(prefix)), "--check started DPDK"


@pytest.mark.parametrize("case", sorted(REFUSED_AT_START))
def test_start_refuses_what_check_refuses_in_the_same_words(tmp_path, case):
    old, new, key, at, reason = REFUSED_AT_START[case]
    prefix = f"t{uuid.uuid4().hex[:10]}"
    path = tmp_path / f"{case}.yaml"
    path.write_text(GOOD.format(prefix=prefix).replace(old, new, 1))
    checked = check(path)
    started = subprocess.run([DPSECD, "-c", str(path)], capture_output=True, text=True,
                             timeout=30)
    assert checked.returncode == 1 and started.returncode == 1, (checked, started)
    assert reason in checked.stderr
    assert started.stderr == checked.stderr
    assert not os.path.exists(runtime_dir(prefix))


SHIPPED = sorted(glob.glob(os.path.join(ROOT, "config", "*.yaml")) +
                 glob.glob(os.path.join(ROOT, "config", "examples", "*.yaml")))


@pytest.mark.parametrize("path", SHIPPED, ids=[os.path.relpath(p, ROOT) for p in SHIPPED])
def test_check_accepts_every_shipped_config(path):
    r = check(path)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"{path}: ok\n", "")


def test_check_missing_file_cannot_read(tmp_path):
    path = tmp_path / "absent.yaml"
    r = check(path)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == f"{path}: cannot read: No such file or directory\n"


def test_bad_config_without_check_exits_1_before_dpdk(tmp_path):
    prefix = f"t{uuid.uuid4().hex[:10]}"
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.format(prefix=prefix).replace("mtu: 1500", "mtu: 9601"))
    r = subprocess.run([DPSECD, "-c", str(path)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert r.stderr.startswith(f"{path}:") and "ports[0].mtu" in r.stderr
    assert "EAL" not in r.stdout + r.stderr
    assert not os.path.exists(runtime_dir(prefix))


@pytest.mark.parametrize("args", [["--bogus"], ["-x"], ["extra-argument"],
                                  ["--log-level", "loud"], ["--config"]],
                         ids=["unknown_long", "unknown_short", "operand", "bad_log_level",
                              "missing_value"])
def test_usage_errors_exit_2(tmp_path, args):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD.format(prefix=f"t{uuid.uuid4().hex[:10]}"))
    # The option under test comes last so that --config takes no file.
    r = subprocess.run([DPSECD, "--check", "-c", str(path)] + args, capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2, r
    assert r.stdout == ""
    assert r.stderr.strip(), "a usage error must say something"


def test_help_exits_0():
    r = subprocess.run([DPSECD, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--check" in r.stdout and r.stderr == ""


# ---- 2. systemd notification --------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sd_notify_ready_then_stopping_and_clean_exit(tmp_path, notify, procs, sig):
    d = Daemon({"log_level": "info", "ports": null_ports()}, str(tmp_path))
    t0 = time.monotonic()
    p = Proc(d, env={"NOTIFY_SOCKET": notify.path})
    procs.append(p)
    notify.wait_for("READY=1", timeout=20, proc=p.proc)
    elapsed_ms = (time.monotonic() - t0) * 1000
    # the running line, logged just before READY=1, says where start-up went
    # (scripts/bench/restart.py reads it): every phase, in order, adding up
    m = re.search(r"running: \d+ port\(s\), \d+ worker\(s\); started in (\d+) ms \((.*)\)", d.read_log())
    assert m, d.read_log()
    phases = [part.rsplit(" ", 1) for part in m.group(2).split(", ")]
    assert [k for k, _ in phases] == ["EAL", "dataplane", "store", "state", "ports", "host stack", "sockets"]
    parts = sum(int(v) for _, v in phases)
    assert parts <= int(m.group(1)) <= parts + len(phases) and int(m.group(1)) <= elapsed_ms
    # READY=1 promises a working control interface: no retry here.
    info = json.loads(sh([DPSECCTL, "-p", d.prefix, "raw", "/dpsec/info"]).stdout)
    assert info["/dpsec/info"]["pid"] == p.proc.pid
    assert not any("STOPPING=1" in m for m in notify.got)

    p.proc.send_signal(sig)
    notify.wait_for("STOPPING=1", timeout=5, proc=p.proc)
    assert p.wait(timeout=5) == 0, d.read_log()
    assert sum("READY=1" in m.split("\n") for m in notify.drain()) == 1, notify.got
    log = d.read_log()
    assert f"signal {int(sig)}: shutting down" in log, log
    # rte_eal_cleanup() removed the telemetry socket.
    assert not os.path.exists(os.path.join(runtime_dir(d.prefix), "dpdk_telemetry.v2"))


def test_runs_without_notify_socket(tmp_path, procs):
    """Started by hand (no NOTIFY_SOCKET): sd_notify is a no-op and the daemon runs."""
    d = Daemon({"ports": null_ports()}, str(tmp_path))
    p = Proc(d, unset=("NOTIFY_SOCKET",))
    procs.append(p)
    d.wait_for(lambda: p.proc.poll() is not None or
               d.ctl("raw", "/dpsec/info", check=False).returncode == 0,
               timeout=20, what="telemetry")
    assert p.proc.poll() is None, d.read_log()
    p.proc.send_signal(signal.SIGTERM)
    assert p.wait(timeout=5) == 0, d.read_log()


# ---- 3. DPDK's own telemetry client -------------------------------------------------------


@pytest.fixture
def running(tmp_path):
    d = Daemon({"log_level": "info", "ports": null_ports(3)}, str(tmp_path)).start()
    yield d
    try:
        assert d.stop() == 0, d.read_log()
    finally:
        forget_runtime_dir(d.prefix)


def telemetry_client(prefix, *commands):
    """Run dpdk-telemetry.py non-interactively: one JSON reply per line, per command."""
    r = subprocess.run([PYTHON, TELEMETRY_CLIENT, "-f", prefix], input="\n".join(commands) + "\n",
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    replies = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert len(replies) == len(commands), r.stdout
    return replies


def test_dpdk_telemetry_client_reads_ports_and_info(running):
    d = running
    names = counter_names()
    ports, info, workers = telemetry_client(d.prefix, "/dpsec/ports", "/dpsec/info",
                                            "/dpsec/workers")
    ports = ports["/dpsec/ports"]
    assert list(ports) == ["p0", "p1", "p2"]
    for name, c in ports.items():
        assert_counters(name, c, names)
        for n in ("dev_rx_missed", "dev_rx_errors", "dev_rx_nombuf", "dev_tx_errors"):
            assert isinstance(c[n], int), (name, n)
        assert c["rx_packets"] == 0, "net_null no-rx=1 delivered packets"
    info = info["/dpsec/info"]
    assert info["pid"] == d.proc.pid
    assert info["ports"] == 3 and info["workers"] == 1
    assert info["config"] == d.path
    w = workers["/dpsec/workers"]
    assert list(w) == ["worker0"] and w["worker0"]["lcore"] == 1


def test_dpdk_telemetry_client_lists_dpsec_commands(running):
    (cmds,) = telemetry_client(running.prefix, "/")
    for c in ("/dpsec/ports", "/dpsec/workers", "/dpsec/neighbours", "/dpsec/info"):
        assert c in cmds["/"], cmds


# ---- 4. dpsecctl --------------------------------------------------------------------------


def test_dpsecctl_unreachable_daemon_exits_1():
    prefix = f"none{uuid.uuid4().hex[:8]}"
    r = subprocess.run([DPSECCTL, "-p", prefix, "stats"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1
    assert r.stdout == ""
    assert "cannot reach dpsecd" in r.stderr and prefix in r.stderr, r.stderr


def test_dpsecctl_stats_json_has_every_counter(running):
    d = running
    names = counter_names()
    r = sh([DPSECCTL, "-p", d.prefix, "stats", "--json"])
    st = json.loads(r.stdout)
    assert set(st) == {"ports", "workers"}
    assert list(st["ports"]) == ["p0", "p1", "p2"]
    for port, c in st["ports"].items():
        assert_counters(port, c, names)
    assert list(st["workers"]) == ["worker0"]
    w = st["workers"]["worker0"]
    assert_counters("worker0", w, names)
    assert w["lcore"] == 1 and isinstance(w["loops"], int) and w["loops"] > 0
    assert isinstance(w["idle_sleeps"], int)


def test_dpsecctl_finds_daemon_through_config_file_prefix(running):
    d = running
    with open(d.path) as f:
        assert yaml.safe_load(f)["eal"]["file_prefix"] == d.prefix
    r = sh([DPSECCTL, "-c", d.path, "stats"])
    header = r.stdout.splitlines()[0].split()
    assert header == ["PORTS", "p0", "p1", "p2"], r.stdout
    info = json.loads(sh([DPSECCTL, "-c", d.path, "raw", "/dpsec/info"]).stdout)
    assert info["/dpsec/info"]["pid"] == d.proc.pid


def test_dpsecctl_bad_config_is_reported(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.format(prefix="x").replace("mtu: 1500", "mtu: 9601"))
    r = subprocess.run([DPSECCTL, "-c", str(path), "stats"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1
    assert f"{path}:" in r.stderr and "ports[0].mtu" in r.stderr, r.stderr


def test_dpsecctl_after_stop_cannot_reach(tmp_path):
    d = Daemon({"ports": null_ports()}, str(tmp_path)).start()
    try:
        assert d.stop() == 0, d.read_log()
    finally:
        forget_runtime_dir(d.prefix)
    r = subprocess.run([DPSECCTL, "-c", d.path, "stats"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1 and "cannot reach dpsecd" in r.stderr, r.stderr


# ---- 5. failing to start ------------------------------------------------------------------


def absent_lcore():
    """An lcore number (< 128, DPDK's RTE_MAX_LCORE) with no CPU behind it."""
    for n in range(2, 128):
        if not os.path.exists(f"/sys/devices/system/cpu/cpu{n}"):
            return n
    pytest.skip("every lcore below 128 has a CPU")


def start_must_fail(cfg, tmp_path, topo, notify, procs, prepare=None):
    """Run dpsecd in a fresh namespace, expect it to exit non-zero within 20 s.
    Returns (daemon, namespace, log)."""
    ns = topo.ns("gw")
    if prepare:
        prepare(ns)
    before = links(ns)
    d = Daemon(cfg, str(tmp_path))
    p = Proc(d, env={"NOTIFY_SOCKET": notify.path}, ns=ns)
    procs.append(p)
    try:
        rc = p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"dpsecd did not give up:\n{d.read_log()}")
    log = d.read_log()
    assert rc != 0, log
    assert "READY=1" not in "\n".join(notify.drain()), notify.got
    assert links(ns) == before, f"left behind: {links(ns) - before}\n{log}"
    assert not os.path.exists(os.path.join(runtime_dir(d.prefix), "dpdk_telemetry.v2"))
    return d, ns, log


def tap_port(name, device, role, tag, **extra):
    return dict({"name": name, "device": device, "role": role,
                 "exception_iface": f"x{tag}{name}"}, **extra)


def test_unknown_vdev_driver_fails_start(tmp_path, topo, notify, procs):
    cfg = {"ports": [
        tap_port("lan", "net_null0,no-rx=1", "protected", topo.tag, addresses=["10.1.0.1/24"]),
        tap_port("wan", "net_nosuchdriver0", "unprotected", topo.tag),
    ]}
    d, ns, log = start_must_fail(cfg, tmp_path, topo, notify, procs)
    assert "DPDK initialisation failed" in log, log
    assert "net_nosuchdriver0" in log, log


def test_worker_on_lcore_without_cpu_fails_start(tmp_path, topo, notify, procs):
    """Validation cannot know the host's CPUs: --check passes, starting fails."""
    n = absent_lcore()
    cfg = {"eal": {"lcores": f"0-1,{n}"},
           "ports": [tap_port("lan", "net_null0,no-rx=1", "protected", topo.tag)],
           "workers": [{"lcore": n}]}
    d = Daemon(cfg, str(tmp_path), name="check")
    assert check(d.path).returncode == 0
    d, ns, log = start_must_fail(cfg, tmp_path, topo, notify, procs)
    assert f"lcore {n} unavailable" in log, log
    assert "DPDK initialisation failed" in log, log


def test_exception_tap_name_taken_fails_start_and_removes_taps(tmp_path, topo, notify, procs):
    """The second port's TAP name belongs to a veth: the first port's TAP, already
    created, must go away with the daemon, and the veth must stay."""
    taken = f"y{topo.tag}"

    def prepare(ns):
        sh(["ip", "link", "add", taken, "type", "veth", "peer", "name", f"z{topo.tag}"], ns=ns)

    cfg = {"ports": [
        tap_port("lan", "net_null0,no-rx=1", "protected", topo.tag, addresses=["10.1.0.1/24"]),
        tap_port("wan", "net_null1,no-rx=1", "unprotected", topo.tag, exception_iface=taken),
    ]}
    d, ns, log = start_must_fail(cfg, tmp_path, topo, notify, procs, prepare)
    assert re.search(rf"port wan: cannot create exception TAP {taken}\b", log), log
    assert taken in links(ns)


def test_missing_af_packet_interface_fails_start_and_removes_taps(tmp_path, topo, notify, procs):
    cfg = {"ports": [
        tap_port("lan", "net_null0,no-rx=1", "protected", topo.tag, addresses=["10.1.0.1/24"]),
        tap_port("wan", f"net_af_packet0,iface=nx{topo.tag}", "unprotected", topo.tag),
    ]}
    d, ns, log = start_must_fail(cfg, tmp_path, topo, notify, procs)
    assert "port wan: no ethdev for device" in log, log
    # Started far enough to tell systemd it is going away.
    assert "STOPPING=1" in notify.got


def test_unreachable_route_next_hop_fails_start_and_removes_taps(tmp_path, topo, notify, procs):
    """A next hop outside every connected prefix: the kernel refuses the route on the TAP.
    Workers are already running when that happens; the teardown must still be clean."""
    cfg = {"ports": [
        tap_port("lan", "net_null0,no-rx=1", "protected", topo.tag, addresses=["10.1.0.1/24"]),
        tap_port("wan", "net_null1,no-rx=1", "unprotected", topo.tag, addresses=["10.2.0.1/24"]),
    ], "routes": [{"prefix": "10.9.0.0/16", "via": "10.3.0.2", "port": "wan"}]}
    d, ns, log = start_must_fail(cfg, tmp_path, topo, notify, procs)
    # Either the loader rejects the next hop, or the host stack does (after the
    # workers were launched).
    assert "routes[0].via" in log or "cannot add route to 10.9.0.0/16" in log, log
    if "cannot add route" in log:
        assert "worker 0 on lcore 1 polls" in log, log


def test_failed_start_closes_only_ports_it_opened(tmp_path, topo, notify, procs):
    cfg = {"ports": [
        tap_port("lan", "net_null0,no-rx=1", "protected", topo.tag),
        tap_port("wan", f"net_af_packet0,iface=nx{topo.tag}", "unprotected", topo.tag),
    ]}
    d, ns, log = start_must_fail(cfg, tmp_path, topo, notify, procs)
    assert "Invalid port_id" not in log, log


def test_restart_after_sigkill_with_same_prefix(tmp_path, topo):
    """A crash (SIGKILL) leaves a stale telemetry socket, hugepage files and runtime
    files under the same prefix: dpsecctl must say so promptly, the kernel removes the
    TAP, and the next start with the same file takes over cleanly."""
    gw = topo.ns("gw")
    tap = f"x{topo.tag}lan"
    cfg = {"eal": {"in_memory": False},
           "ports": [tap_port("lan", "net_null0,no-rx=1", "protected", topo.tag,
                              addresses=["10.1.0.1/24"])]}
    d = Daemon(cfg, str(tmp_path), ns=gw)
    try:
        d.start()
        assert tap in links(gw)
        d.proc.kill()
        d.proc.wait(timeout=10)
        d.logf.close()
        assert tap not in links(gw)
        assert os.path.exists(os.path.join(runtime_dir(d.prefix), "dpdk_telemetry.v2"))
        t = time.time()
        r = d.ctl("stats", check=False)
        assert r.returncode == 1 and "cannot reach dpsecd" in r.stderr, r.stderr
        assert time.time() - t < 3

        d.start()
        info = json.loads(d.ctl("raw", "/dpsec/info").stdout)["/dpsec/info"]
        assert info["pid"] == d.proc.pid
        assert "10.1.0.1/24" in sh(["ip", "-o", "addr", "show", "dev", tap], ns=gw).stdout
        assert d.stop() == 0, d.read_log()
        assert tap not in links(gw)
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        # Without --in-memory DPDK keeps its runtime and hugepage files after exit.
        shutil.rmtree(runtime_dir(d.prefix), ignore_errors=True)
        for f in os.listdir("/dev/hugepages"):
            if f.startswith(d.prefix + "map_"):
                os.unlink(os.path.join("/dev/hugepages", f))
