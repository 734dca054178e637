"""dpsecctl monitor: SA and policy changes, EXPIREs and ACQUIREs as they happen.

The gateway of test_pfkey_server (hosts in namespaces, af_packet ports) with a
key daemon played by pfkey.py; dpsecctl monitor runs beside it on the PF_KEY
socket. Every line expected here is written from what the test itself did
(the SPI it added, its pid, the addresses it chose), not from dpsecd's replies.
A configuration reload (SIGHUP) shows its changes too, marked (config).
"""
import queue
import signal
import subprocess
import threading
import time

import yaml

import pfkey as K
from dpsec import DPSECCTL
from test_pfkey_server import GW_WAN, HOST_B, KEY, gw, out_policy, send_udp  # noqa: F401


class Monitor:
    def __init__(self, sock):
        self.p = subprocess.Popen([DPSECCTL, "--pfkey", sock, "monitor"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, pred, timeout=10, what=""):
        """The first line pred accepts (earlier ones are kept in self.seen)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                line = self.lines.get(timeout=max(0.05, deadline - time.time()))
            except queue.Empty:
                break
            self.seen.append(line)
            if pred(line):
                return line
        raise AssertionError(f"monitor never printed {what}; it printed {self.seen}\n"
                             f"stderr: {self.p.stderr.read() if self.p.poll() is not None else ''}")

    def close(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=5)


def test_monitor_shows_key_daemon_changes_expires_and_acquires(gw):  # noqa: F811
    mon = Monitor(gw.sock)
    try:
        time.sleep(0.5)   # connected and promiscuous before anything happens
        ev = gw.client()
        assert ev.request(K.msg(K.REGISTER, K.ESP)).errno == 0
        q = gw.client()
        pol = q.request(out_policy(level=K.LEVEL_REQUIRE)).ext[K.POLICY].id
        assert mon.expect(lambda s: s.startswith("policy add"), what="policy add") == \
            f"policy add id {pol} out protect 10.1.0.0/24 -> 10.9.1.0/24 proto any (pid {q.pid})"

        # ACQUIRE: traffic for the policy, no SA
        sender = send_udp(gw, "10.9.1.5", 100, 0.01)
        assert mon.expect(lambda s: s.startswith("acquire"), what="acquire") == \
            f"acquire esp {GW_WAN} -> {HOST_B} policy {pol}"
        sender.wait(timeout=30)

        # the key daemon's SA, then its time lifetimes run out: EXPIRE soft and hard
        assert q.request(K.gcm_add(0x8501, GW_WAN, HOST_B, 5, KEY, replay=0, soft=(0, 0, 1),
                                   hard=(0, 0, 2))).errno == 0
        want = f"spi 0x00008501 esp tunnel {GW_WAN} -> {HOST_B} reqid 5"
        assert mon.expect(lambda s: s.startswith("sa add"), what="sa add") == f"sa add {want} (pid {q.pid})"
        assert mon.expect(lambda s: s.startswith("expire"), what="soft expire") == f"expire soft {want}"
        assert mon.expect(lambda s: s.startswith("expire"), what="hard expire") == f"expire hard {want}"

        # UPDATE and DELETE
        assert q.request(K.gcm_add(0x8502, GW_WAN, HOST_B, 5, KEY, replay=0)).errno == 0
        assert q.request(K.msg(K.DELETE, K.ESP, [K.sa(0x8502), K.address(K.SRC, GW_WAN),
                                                 K.address(K.DST, HOST_B)])).errno == 0
        assert mon.expect(lambda s: s.startswith("sa delete"), what="sa delete") == \
            f"sa delete spi 0x00008502 esp {GW_WAN} -> {HOST_B} (pid {q.pid})"
        assert q.request(out_policy(level=K.LEVEL_REQUIRE, mtype=K.SPDDELETE)).errno == 0
        assert mon.expect(lambda s: s.startswith("policy delete"), what="policy delete") \
            .startswith(f"policy delete id {pol} out protect 10.1.0.0/24 -> 10.9.1.0/24")

        # a failed request changes nothing and shows nothing
        assert q.request(K.msg(K.DELETE, K.ESP, [K.sa(0x8599), K.address(K.SRC, GW_WAN),
                                                 K.address(K.DST, HOST_B)])).errno != 0
        assert q.request(K.msg(K.FLUSH, K.ESP)).errno == 0
        assert mon.expect(lambda s: s.startswith("sa flush"), what="flush") == f"sa flush esp (pid {q.pid})"
        assert not [s for s in mon.seen if "0x00008599" in s]
        # replies to queries are not changes
        assert not [s for s in mon.seen if s.startswith(("sa get", "register"))]
    finally:
        mon.close()


def test_monitor_shows_configuration_reload(gw):  # noqa: F811
    """A SIGHUP that drops the configuration's SA and policy and adds others shows both."""
    mon = Monitor(gw.sock)
    try:
        time.sleep(0.5)
        with open(gw.path) as f:
            cfg = yaml.safe_load(f)
        cfg["sas"] = [{"spi": 0x778, "direction": "out", "src": GW_WAN, "dst": HOST_B, "reqid": 78,
                       "encryption": {"algorithm": "aes-gcm-128", "key": "0x" + "cd" * 20}}]
        cfg["policies"][0]["dst"] = "10.9.8.0/24"
        cfg["policies"][0]["ipsec"][0]["reqid"] = 78
        with open(gw.path, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        gw.proc.send_signal(signal.SIGHUP)
        mon.expect(lambda s: s == f"sa delete spi 0x00000777 esp {GW_WAN} -> {HOST_B} (config)",
                   what="the old SA deleted")
        mon.expect(lambda s: s == f"sa add spi 0x00000778 esp tunnel {GW_WAN} -> {HOST_B} reqid 78 (config)",
                   what="the new SA added")
        olds = [s for s in mon.seen if s.startswith("policy delete")]
        assert len(olds) == 1 and "10.1.0.0/24 -> 10.9.7.0/24" in olds[0] and olds[0].endswith("(config)")
        mon.expect(lambda s: s.startswith("policy add") and "10.1.0.0/24 -> 10.9.8.0/24" in s
                   and s.endswith("(config)"), what="the new policy added")
        new_ids = {p["id"] for p in gw.ctl_json("policy")["policies"].values() if p["dst"] == "10.9.8.0/24"}
        assert [s for s in mon.seen if s.startswith("policy add")][0].startswith(f"policy add id {new_ids.pop()} ")
    finally:
        mon.close()
