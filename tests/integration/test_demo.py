"""scripts/demo.sh runs to the end and shows what it says it shows.

The demo (machine setup skipped: DPSEC_DEMO_NO_SETUP=1) under a namespace tag of
its own, its files in the test's directory. Checked in its output and in the
files it shows, read with scapy: the first ping, dropped by dpsecd for want of
an SA (drop point, reason no_sa) while charon is asked to key the tunnel; the
first ping through the tunnel in the clear (out-clear) beside its ESP on the
wire, sequence number 1 of dpsecd's outbound SA; `dpsecctl stats esp` with
the traffic the demo sent.
"""
import os
import re
import subprocess
import uuid

import pytest
from scapy.all import ICMP, IP, UDP, rdpcap, raw

from dpsec import BUILD, ROOT

pytestmark = pytest.mark.interop

A, B, GWA, GWB = "10.1.0.2", "10.2.0.2", "192.0.2.1", "192.0.2.2"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("ops13-demo") / "demo")
    env = dict(os.environ, DPSEC_DEMO_NO_SETUP="1", DPSEC_DEMO_TAG="d" + uuid.uuid4().hex[:6],
               DPSEC_DEMO_DIR=d, DPSEC_BUILD=BUILD)
    p = subprocess.run(["bash", os.path.join(ROOT, "scripts/demo.sh")], capture_output=True, text=True,
                       env=env, timeout=600)
    out = re.sub(r"\x1b\[[0-9;]*m", "", p.stdout)
    assert p.returncode == 0, out[-4000:] + p.stderr[-2000:]
    return out, d


def section(out, title):
    """The lines of the demo's step whose title starts with @title."""
    m = re.search(r"^== " + re.escape(title) + r".*?\n(.*?)(?=^== |\Z)", out, re.S | re.M)
    assert m, f"no step {title!r} in the demo's output"
    return m.group(1)


def out_spi(out):
    """The outbound SPI as charon A listed it right after keying the tunnel (the
    demo rekeys every 30 s: later listings may show the next one)."""
    s = section(out, "IKE keyed the tunnel")
    m = re.search(r"^\s+out ([0-9a-f]{8}),", s, re.M)
    assert m, s
    return int(m.group(1), 16)


def echo_a_to_b(pkt):
    return IP in pkt and pkt[IP].src == A and pkt[IP].dst == B and ICMP in pkt and pkt[ICMP].type == 8


def test_demo_runs_to_the_end(demo):
    out, _ = demo
    assert "demo done: dpsecd and both charons exited" in out


def test_first_ping_is_dropped_without_sa_and_captured(demo):
    out, d = demo
    pkts = rdpcap(os.path.join(d, "drop.pcapng"))
    assert len(pkts) == 1 and echo_a_to_b(pkts[0]), pkts
    assert pkts[0].comment.decode().strip().endswith("port lan reason no_sa")
    s = section(out, "the first ping from site A")
    assert re.search(r"dropped \(dpsecd drop point\): IP 10\.1\.0\.2 > 10\.2\.0\.2: ICMP echo request", s), s
    assert "reason no_sa" in s and "SADB_ACQUIRE" in s


def test_first_tunnel_ping_in_the_clear_beside_its_esp(demo):
    out, d = demo
    spi = out_spi(out)
    clear = rdpcap(os.path.join(d, "clear.pcapng"))
    assert len(clear) == 1 and echo_a_to_b(clear[0]), clear
    assert re.fullmatch(r"point out-clear sa \d+ policy \d+ port lan", clear[0].comment.decode().strip())
    wire = rdpcap(os.path.join(d, "wire.pcap"))
    assert len(wire) == 1
    w = wire[0]
    assert (w[IP].src, w[IP].dst, w[UDP].sport, w[UDP].dport) == (GWA, GWB, 4500, 4500)
    esp = raw(w[UDP].payload)
    # RFC 3948 2.2: ESP in UDP, SPI then sequence number; the SA's first packet
    assert int.from_bytes(esp[:4], "big") == spi and int.from_bytes(esp[4:8], "big") == 1
    # the same moment: dpsecd's timestamp beside the kernel's on gateway B
    assert abs(float(clear[0].time) - float(w.time)) < 1, (clear[0].time, w.time)
    # the ping's 84 bytes inside: the ESP is the clear packet plus at most header, IV, padding, ICV
    assert len(raw(clear[0][IP])) + 8 + 8 + 2 <= len(esp) <= len(raw(clear[0][IP])) + 8 + 8 + 2 + 3 + 16
    s = section(out, "enc(4): the first ping through the tunnel")
    line = f"IP {A} > {B}: ICMP echo request, id .* IP {GWA}.4500 > {GWB}.4500: UDP-encap: ESP\\(spi=0x{spi:08x},seq=0x1\\)"
    assert re.search(line, s), s
    assert re.search(r"pcapng comment: point out-clear sa \d+ policy \d+ port lan", s), s


def stats_esp(out, title):
    s = section(out, title)
    return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", s, re.M)}


def test_stats_esp_counts_the_demos_traffic(demo):
    out, _ = demo
    st = stats_esp(out, "dpsecctl stats esp: ESP totals over every SA")
    # 20 MB of TCP went out through the tunnel, its ACKs and the pings came back in
    assert st["out_bytes"] >= 20_000_000 and st["out_packets"] >= 20_000_000 // 1500
    assert st["in_packets"] > 0 and st["in_bytes"] > 0
    assert st["drop_auth"] == 0 and st["drop_replay"] == 0 and st["sas"] == 2
    after = stats_esp(out, "dpsecctl stats esp: the totals outlive the SAs")
    assert after["sas"] == 0 and after["out_bytes"] >= st["out_bytes"]
