"""dpsecctl's readable views of SAs and policies, checked against the daemon's --json.

One daemon on net_pcap ports (the esp pcap fixture's gateway) with tunnels in
every address family, ESP in UDP, lifetimes, and policies carrying one, two
and three transforms; a few LAN packets go through one tunnel so that its
counters are not zero. Every line of every default view fits 100 columns, and
each object's block says what --json says about it.
"""
import os
import re
import subprocess
import socket

import pytest
from scapy.all import wrpcap, Ether

from dpsec import DPSECCTL, Daemon
from test_esp_pcap import Tunnel, base_config, forget_runtime_dir

WIDTH = 100
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def proto_name(n):
    return {255: "any", 1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp"}[n]


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("operator-views"))
    tunnels = [Tunnel(1, "aes-gcm-128", n_out=3, n_in=0), Tunnel(2, "aes-cbc-256", "hmac-sha2-256-128", inner=6),
               Tunnel(3, "aes-gcm-128", inner=4, outer=6, encap=True)]
    cfg = base_config(workdir)
    for t in tunnels:
        cfg["sas"] += t.sas()
        cfg["policies"] += t.policies()
    cfg["sas"][0]["lifetime"] = {"soft": {"add_s": 3000}, "hard": {"add_s": 3600, "bytes": 10 ** 9}}
    # a policy with three transforms: IPComp, ESP, AH
    reqs = [{"proto": "ipcomp", "mode": "transport", "level": "use"}, dict(cfg["policies"][0]["ipsec"][0]),
            {"proto": "ah", "mode": "transport", "level": "require", "reqid": 5}]
    cfg["policies"].append({"direction": "out", "src": "10.99.0.0/16", "dst": "10.98.0.0/16", "proto": "tcp",
                            "dport": 22, "action": "protect", "ipsec": reqs})
    cfg["policies"].append({"direction": "in", "src": "0.0.0.0/0", "dst": "0.0.0.0/0", "proto": "icmp",
                            "action": "bypass"})
    # dpsecd's /metrics endpoint (test_metrics.py), on a port free right now
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        cfg["metrics"] = {"enabled": True, "port": s.getsockname()[1]}
    wrpcap(f"{workdir}/LAN_IN.pcap", [Ether(f) for f in tunnels[0].lan_frames()])
    wrpcap(f"{workdir}/WAN_IN.pcap", [])
    d = Daemon(cfg, workdir)
    d.start()
    try:
        d.wait_for(lambda: d.port_stats()["lan"]["rx_packets"] >= 3, what="LAN frames received")
        d.wait_for(lambda: any(s["packets"] for s in d.ctl_json("sa")["sas"].values()), what="SA counters")
        yield d
    finally:
        d.stop()
        forget_runtime_dir(d)


def blocks(text):
    """key -> the lines of its block (a block starts at column 0)."""
    out, key = {}, None
    for line in text.splitlines():
        if not line.startswith(" "):
            key = line.split(":")[0]
            out[key] = []
        out[key].append(line)
    return out


def assert_narrow(text):
    wide = [line for line in text.splitlines() if len(line) > WIDTH]
    assert not wide, f"lines wider than {WIDTH}: {wide}"


def check_sa_block(key, s, lines, before, after):
    """Block of SA key against its JSON s; before/after: the same SA read around the text."""
    text = " ".join(" ".join(lines).split())   # continuation lines joined
    assert lines[0].startswith(f"{key}: spi {s['spi']} {s['dir']} {s['proto']} {s['mode']} reqid {s['reqid']} "
                               f"({s['origin']})")
    assert f"{s['src']} -> {s['dst']}" in text
    assert f"encap {s['encap']}" in text
    assert f"enc {s['enc']} auth {s['auth']}" in text
    assert f"{s['packets']} packets {s['bytes']} bytes" in text
    drops = sum(v for k, v in s.items() if k.startswith("drop_"))
    assert f"{drops} dropped" in text
    age = int(re.search(r"age (\d+)s", text).group(1))
    assert before["age_s"] <= age <= after["age_s"]
    left = re.search(r"life left (.*)$", text).group(1)
    if not s["hard_add_s"] and not s["hard_bytes"] and not s["hard_packets"] and not s["hard_use_s"]:
        assert left == "unlimited"
    if s["hard_add_s"]:
        t = int(re.match(r"(\d+)s", left).group(1))
        assert s["hard_add_s"] - after["age_s"] <= t <= s["hard_add_s"] - before["age_s"]
    if s["hard_bytes"]:
        assert f"{s['hard_bytes'] - s['bytes']} bytes" in left


def test_sa_view_fits_and_matches_json(gw):
    before = gw.ctl_json("sa")["sas"]
    text = gw.ctl("sa").stdout
    after = gw.ctl_json("sa")["sas"]
    assert_narrow(text)
    got = blocks(text)
    assert set(got) == set(after)
    assert any(s["packets"] for s in after.values()), "no traffic went through: weak test"
    for key, s in after.items():
        check_sa_block(key, s, got[key], before[key], after[key])


def test_policy_view_shows_names_and_every_transform(gw):
    pols = gw.ctl_json("policy")["policies"]
    text = gw.ctl("policy").stdout
    assert_narrow(text)
    got = blocks(text)
    assert set(got) == set(pols)
    assert max(p["transforms"] for p in pols.values()) == 3
    assert " 255" not in text
    for key, p in pols.items():
        lines = got[key]
        assert lines[0].startswith(f"{key}: {p['dir']} {p['action']} priority {p['priority']}")
        assert f"hits {p['hits']}" in lines[0]
        body = " ".join(" ".join(lines[1:]).split())
        assert f"src {p['src']} dst {p['dst']} proto {proto_name(p['proto'])}" in body
        for i in range(p["transforms"]):
            sfx = "" if i == 0 else str(i + 1)
            want = f"{p['ipsec' + sfx]} {p['mode' + sfx]}"
            if p["mode" + sfx] == "tunnel":
                want += f" {p['tun_src' + sfx]} -> {p['tun_dst' + sfx]}"
            want += f" {p['level' + sfx]} reqid {p['reqid' + sfx]}"
            assert body.count(want) >= 1, f"{key}: transform {i + 1} missing: {want}"
        # one line (and its continuation) per transform
        assert len([ln for ln in lines[1:] if ln.startswith("    ") and not ln.startswith("     ")]) \
            == 1 + p["transforms"]
    assert any(p["dport"] == "22-22" and "dport 22" in " ".join(got[k]) for k, p in pols.items())


def test_sa_show_by_spi_and_id(gw):
    sas = gw.ctl_json("sa")["sas"]
    key, s = sorted(sas.items())[0]
    for arg in (s["spi"], str(s["id"]), key):
        text = gw.ctl("sa", "show", arg).stdout
        assert_narrow(text)
        want = [k for k, v in sas.items() if v["spi"] == s["spi"]] if arg == s["spi"] else [key]
        assert list(blocks(text)) == want
    assert gw.ctl_json("sa", "show", s["spi"])["sas"][key]["id"] == s["id"]
    r = gw.ctl("sa", "show", "0xdeadbeef", check=False)
    assert r.returncode == 1 and "no SA" in r.stderr


def test_policy_show_verbose_has_every_field(gw):
    pols = gw.ctl_json("policy")["policies"]
    key, p = max(pols.items(), key=lambda kv: kv[1]["transforms"])
    text = gw.ctl("-v", "policy", "show", str(p["id"])).stdout
    assert list(blocks(text)) == [key]
    assert "age_s" in text
    r = gw.ctl("policy", "show", "999999", check=False)
    assert r.returncode == 1


def test_verbose_table_has_every_column(gw):
    sas = gw.ctl_json("sa")["sas"]
    header = gw.ctl("-v", "sa").stdout.splitlines()[0].split()
    for field in next(iter(sas.values())):
        assert field.upper() in header


def complete(line):
    """What bash completion offers for the command line `line` (the last word is completed)."""
    script = ("source config/completion/dpsecctl; "
              f"COMP_LINE='{line}'; read -ra COMP_WORDS <<< \"$COMP_LINE\"; "
              "[[ $COMP_LINE == *' ' ]] && COMP_WORDS+=(''); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
              "_dpsecctl; printf '%s\\n' \"${COMPREPLY[@]}\"")
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=30)
    return set(r.stdout.split())


def test_bash_completion(gw):
    assert {"stats", "sa", "policy"} <= complete(f"{DPSECCTL} ")
    assert complete(f"{DPSECCTL} --verb") == {"--verbose"}
    sas = gw.ctl_json("sa")["sas"].values()
    want = {s["spi"] for s in sas} | {str(s["id"]) for s in sas}
    assert complete(f"{DPSECCTL} -p {gw.prefix} sa show ") == want
    pols = gw.ctl_json("policy")["policies"].values()
    assert complete(f"{DPSECCTL} -p {gw.prefix} policy show ") == {str(p["id"]) for p in pols}


def test_bash_completion_capture_and_log_level(gw):
    assert {"capture", "log-level"} <= complete(f"{DPSECCTL} ")
    assert complete(f"{DPSECCTL} capture --point ") == {"out-clear", "in-clear", "out-cipher", "in-cipher", "drop"}
    assert complete(f"{DPSECCTL} capture --point drop --p") == {"--point", "--policy"}
    sas = gw.ctl_json("sa")["sas"].values()
    assert complete(f"{DPSECCTL} -p {gw.prefix} capture --sa ") == {str(s["id"]) for s in sas}
    assert complete(f"{DPSECCTL} log-level ") == {"dataplane", "pfkey", "store"}
    assert "debug" in complete(f"{DPSECCTL} log-level pfkey ")
