"""Test harness: network namespaces, veth links and a running dpsecd.

Everything here drives real programs: the dpsecd binary on real DPDK devices,
the kernel's network stack in namespaces, and dpsecctl over DPDK telemetry.
"""
import json
import os
import signal
import subprocess
import time
import uuid

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("DPSEC_BUILD", os.path.join(ROOT, "build"))
DPSECD = os.path.join(BUILD, "src/control/dpsecd")
DPSECCTL = os.path.join(BUILD, "src/control/dpsecctl")
FAULTS = os.path.join(BUILD, "tests/libdpsec_faults.so")  # tests/integration/faults.c


def sh(cmd, check=True, ns=None, timeout=60, **kw):
    """Run a command (list or string) optionally inside namespace ns."""
    if isinstance(cmd, str):
        cmd = ["sh", "-c", cmd]
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} failed ({r.returncode}): {r.stdout}{r.stderr}")
    return r


def wait_listening(ns, port, timeout=10):
    """Wait until a TCP socket listens on port in namespace ns (a fixed sleep races
    with a busy machine: a refused connection makes nc exit 1 silently)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = sh(["ss", "-Hltn", f"sport = :{port}"], ns=ns, check=False)
        if r.stdout.strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} in {ns}")


class Topology:
    """Namespaces and veth pairs with unique names, torn down on close()."""

    def __init__(self):
        self.tag = uuid.uuid4().hex[:5]
        self.namespaces = []

    def ns(self, name):
        full = f"{name}-{self.tag}"
        sh(["ip", "netns", "add", full])
        sh(["ip", "link", "set", "lo", "up"], ns=full)
        self.namespaces.append(full)
        return full

    def link(self, ns_a, ns_b):
        """A veth pair between two namespaces; returns the two interface names."""
        a = f"v{len(self.namespaces)}{uuid.uuid4().hex[:6]}"
        b = f"w{a[1:]}"
        sh(["ip", "link", "add", a, "type", "veth", "peer", "name", b])
        sh(["ip", "link", "set", a, "netns", ns_a])
        sh(["ip", "link", "set", b, "netns", ns_b])
        for ns, ifc in ((ns_a, a), (ns_b, b)):
            sh(["ip", "link", "set", ifc, "up"], ns=ns)
            # veth leaves checksums to the receiver; af_packet would see them unfilled.
            sh(["ethtool", "-K", ifc, "tx", "off", "rx", "off"], ns=ns, check=False)
        return a, b

    def host(self, ns, ifc, addrs, gateways=()):
        for a in addrs:
            extra = ["nodad"] if ":" in a else []
            sh(["ip", "addr", "add", a, "dev", ifc] + extra, ns=ns)
        for gw in gateways:
            sh(["ip", "-6" if ":" in gw else "-4", "route", "add", "default", "via", gw], ns=ns)

    @staticmethod
    def dataplane_owned(ns, ifc):
        """An interface dpsecd reads with af_packet: keep the namespace's kernel off it,
        or it would answer ARP and deliver local packets a second time."""
        sh(["sysctl", "-qw", f"net.ipv4.conf.{ifc}.arp_ignore=8",
            f"net.ipv4.conf.{ifc}.rp_filter=1", f"net.ipv6.conf.{ifc}.disable_ipv6=1"], ns=ns)

    def close(self):
        for ns in self.namespaces:
            sh(["ip", "netns", "pids", ns], check=False)
            pids = sh(["ip", "netns", "pids", ns], check=False).stdout.split()
            for p in pids:
                try:
                    os.kill(int(p), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            sh(["ip", "netns", "del", ns], check=False)


class Daemon:
    """dpsecd started from a configuration dict, optionally inside a namespace."""

    def __init__(self, cfg, workdir, ns=None, name="dpsecd", env=None):
        self.env = dict(os.environ, **env) if env else None
        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        cfg = dict(cfg)
        eal = dict(cfg.get("eal", {}))
        eal.setdefault("lcores", "0-1")
        eal.setdefault("main_lcore", 0)
        eal.setdefault("in_memory", True)
        eal["file_prefix"] = self.prefix
        cfg["eal"] = eal
        # each daemon its own PF_KEY socket and state file: never another test's
        pfkey = dict(cfg.get("pfkey", {}))
        pfkey.setdefault("socket", os.path.join(workdir, f"{name}.pfkey.sock"))
        pfkey.setdefault("state", os.path.join(workdir, f"{name}.pfkey.state"))
        cfg["pfkey"] = pfkey
        self.cfg = cfg
        self.ns = ns
        self.path = os.path.join(workdir, f"{name}.yaml")
        self.log = os.path.join(workdir, f"{name}.log")
        with open(self.path, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        self.proc = None

    def start(self, timeout=30):
        cmd = [DPSECD, "-c", self.path]
        if self.ns:
            cmd = ["ip", "netns", "exec", self.ns] + cmd
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT,
                                     env=self.env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dpsecd exited {self.proc.returncode}:\n{self.read_log()}")
            r = self.ctl("raw", "/dpsec/info", check=False)
            if r.returncode == 0:
                return self
            time.sleep(0.2)
        raise AssertionError(f"dpsecd not ready in {timeout}s:\n{self.read_log()}")

    def read_log(self):
        with open(self.log) as f:
            return f.read()

    def ctl(self, *args, check=True):
        return sh([DPSECCTL, "-p", self.prefix] + list(args), check=check)

    def ctl_json(self, *args):
        return json.loads(self.ctl(*args, "--json").stdout)

    def port_stats(self):
        return self.ctl_json("stats")["ports"]

    def neighbours(self):
        return list(self.ctl_json("neigh")["neighbours"].values())

    def wait_for(self, pred, timeout=20, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def stop(self):
        """SIGTERM and expect a clean exit (ports stopped, memory released)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("dpsecd did not stop on SIGTERM")
        self.logf.close()
        return rc
