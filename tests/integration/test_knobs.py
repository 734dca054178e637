"""The seeds' knobs, each with a drop and an accept case.

* ipsec.esp_enable / ah_enable / ipcomp_enable: a disabled protocol's SAs are
  refused (dpsecd --check on YAML, and PF_KEY SADB_ADD with an error), its
  packets for the gateway dropped and counted (drop_proto_off); enabled, the
  same packets take their usual way (unknown SPI, the gateway's kernel).
* ipsec.icmp_accept_clear / igmp_accept_clear / pim_accept_clear (Solaris):
  ICMP, IGMP and PIM in clear pass a fwd require policy when set and are
  drop_plaintext when not; UDP in clear is dropped either way.
* crypto.queue_latency_us (a test and bench knob, the simulated latency of
  a crypto device): dpsecd --check takes 0..10000 and refuses the rest; the
  queue path under it is tests/integration/test_queue_inflight.py.
"""
import os
import subprocess

import pytest
import yaml
from scapy.all import ICMP, IP, UDP, Ether, Raw, wrpcap

from dpsec import DPSECD, Daemon
from pfkey import ADD, Client, gcm_add
from test_esp_pcap import (HOST, HOST_MAC, LAN_MAC, WAN4, PcapRun, Tunnel, base_config, forget_runtime_dir,
                           forwarded, frame_to_gw, remote_host)

IPPROTO_IGMP, IPPROTO_PIM, IPPROTO_AH, IPPROTO_COMP = 2, 103, 51, 108


def check(workdir, cfg):
    path = os.path.join(workdir, "check.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return subprocess.run([DPSECD, "--check", "-c", path], capture_output=True, text=True)


@pytest.mark.parametrize("proto", ["esp", "ah", "ipcomp"])
def test_disabled_protocol_sa_refused_from_yaml(tmp_path, proto):
    t = Tunnel(1, "aes-gcm-128")
    cfg = base_config(str(tmp_path), ipsec={f"{proto}_enable": False})
    sa = t.sas()[0]
    if proto == "ah":
        sa = {"spi": 0x5151, "direction": "in", "proto": "ah", "mode": "tunnel", "src": t.peer, "dst": WAN4,
              "integrity": {"algorithm": "hmac-sha2-256-128", "key": "0x" + "11" * 32}}
    if proto == "ipcomp":
        sa = {"spi": 0x5152, "direction": "in", "proto": "ipcomp", "mode": "tunnel", "src": t.peer, "dst": WAN4}
    cfg["sas"] = [sa]
    r = check(str(tmp_path), cfg)
    assert r.returncode != 0 and f"{proto} is disabled (ipsec.{proto}_enable: false)" in r.stderr, r.stderr
    cfg["ipsec"] = {}
    r = check(str(tmp_path), cfg)
    assert f"{proto} is disabled" not in r.stderr


@pytest.mark.parametrize("value,error", [
    (0, None), (10000, None),
    (10001, "crypto.queue_latency_us: 10001 is out of range 0..10000"),
    (-1, 'crypto.queue_latency_us: expected an unsigned decimal integer, found "-1"'),
])
def test_queue_latency_is_checked(tmp_path, value, error):
    cfg = base_config(str(tmp_path), path="async")
    cfg["crypto"]["queue_latency_us"] = value
    r = check(str(tmp_path), cfg)
    if error is None:
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode != 0 and error in r.stderr, r.stderr


def esp_ah_ipcomp_frames(t):
    esp = t.in_frames[0]
    ah = frame_to_gw(IP(src=t.peer, dst=WAN4, proto=IPPROTO_AH) / Raw(bytes([4, 4, 0, 0]) + b"\0\0\x51\x51"
                                                                     + b"\0\0\0\1" + b"\0" * 16))
    # IPComp (next header IPv4, CPI 0x5152) with a stored DEFLATE block
    ipcomp = frame_to_gw(IP(src=t.peer, dst=WAN4, proto=IPPROTO_COMP) / Raw(b"\x04\0\x51\x52" + b"\x01\x04\0\xfb\xffabcd"))
    return [esp, ah, ipcomp]


@pytest.mark.parametrize("enabled", [False, True])
def test_disabled_protocol_packets_dropped_and_counted(tmp_path, enabled):
    t = Tunnel(1, "aes-gcm-128")
    cfg = base_config(str(tmp_path), ipsec={"esp_enable": enabled, "ah_enable": enabled,
                                            "ipcomp_enable": enabled})
    cfg["ports"][1]["exception"] = False
    # no SA: ESP has no SA either way; the knob decides what it is counted as
    # (IPComp without any IPComp SA is the gateway's own: no exception TAP here)
    r = PcapRun(tmp_path, cfg, [], esp_ah_ipcomp_frames(t))
    assert r.error is None, r.error
    wan = r.stats["wan"]
    if enabled:
        assert wan["drop_proto_off"] == 0
        assert wan["drop_unknown_spi"] + wan["drop_no_exception"] + wan["punt_kernel"] == 3, wan
    else:
        assert wan["drop_proto_off"] == 3, wan
        assert wan["drop_unknown_spi"] == 0 and wan["drop_no_exception"] == 0


@pytest.mark.parametrize("enabled", [False, True])
def test_disabled_protocol_sa_refused_by_pfkey(tmp_path, enabled):
    t = Tunnel(1, "aes-gcm-128")
    cfg = base_config(str(tmp_path), ipsec={"esp_enable": enabled})
    wrpcap(f"{tmp_path}/LAN_IN.pcap", [])
    wrpcap(f"{tmp_path}/WAN_IN.pcap", [])
    d = Daemon(cfg, str(tmp_path))
    d.start()
    try:
        c = Client(d.cfg["pfkey"]["socket"])
        rep = c.request(gcm_add(0x4242, t.peer, WAN4, 7, b"\x22" * 20, mtype=ADD))
        c.close()
        spis = [int(str(s["spi"]), 0) for s in d.ctl_json("sa")["sas"].values()]
    finally:
        d.stop()
        forget_runtime_dir(d)
    if enabled:
        assert rep.errno == 0 and 0x4242 in spis
    else:
        assert rep.errno != 0 and 0x4242 not in spis
        assert "esp is disabled (ipsec.esp_enable: false)" in d.read_log()


def clear_frames():
    src, dst = remote_host(4, 1), HOST[4]
    return {
        "icmp": frame_to_gw(IP(src=src, dst=dst, ttl=64) / ICMP(type=8, id=1, seq=1) / Raw(b"ping")),
        "igmp": frame_to_gw(IP(src=src, dst=dst, ttl=64, proto=IPPROTO_IGMP) / Raw(bytes([0x16, 0, 0, 0]) + b"\xe0\0\0\x01")),
        "pim": frame_to_gw(IP(src=src, dst=dst, ttl=64, proto=IPPROTO_PIM) / Raw(b"\x20\0\0\0pim!")),
        "udp": frame_to_gw(IP(src=src, dst=dst, ttl=64) / UDP(sport=9, dport=9) / Raw(b"udp")),
    }


@pytest.mark.parametrize("accept", [False, True])
def test_accept_clear_through_a_require_policy(tmp_path, accept):
    t = Tunnel(1, "aes-gcm-128")
    knobs = {"icmp_accept_clear": accept, "igmp_accept_clear": accept, "pim_accept_clear": accept}
    cfg = base_config(str(tmp_path), ipsec=knobs)
    cfg["sas"] += t.sas()
    cfg["policies"] += t.policies()     # fwd remote -> LAN: require ESP
    frames = clear_frames()
    r = PcapRun(tmp_path, cfg, [], list(frames.values()))
    assert r.error is None, r.error
    out = {f[14:] for f in r.lan_out if Ether(f).type == 0x800}
    passed = {k for k, f in frames.items() if forwarded(f[14:]) in out}
    assert passed == ({"icmp", "igmp", "pim"} if accept else set()), passed
    assert r.stats["wan"]["drop_plaintext"] == (1 if accept else 4)
    for f in r.lan_out:
        if Ether(f).type == 0x800:
            assert Ether(f).dst == HOST_MAC and Ether(f).src == LAN_MAC
