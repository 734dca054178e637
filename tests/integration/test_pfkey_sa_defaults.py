"""SAs a key daemon installs over PF_KEY take the configuration's defaults, as
YAML SAs that do not set them do: `ipsec.dfbit` for the outer IPv4 header of
a tunnel, `ipsec.replay_window` when the client gives no window (RFC 2367
sadb_sa_replay 0), and the client's own window when it gives one.

    host A ---- [lan] dpsecd [wan] ---- host B
    10.1.0.2   10.1.0.1    10.2.0.1    10.2.0.2

The outer header is read on host B's side of the wire with tcpdump and
scapy; the inbound ESP is built by scapy on host B.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
from scapy.all import ESP, IP, rdpcap

import pfkey as K
from dpsec import Daemon
from test_pfkey_server import hosts_and_gateway

GW_LAN, GW_WAN, HOST_A, HOST_B = "10.1.0.1", "10.2.0.1", "10.1.0.2", "10.2.0.2"
KEY = bytes(range(1, 21))  # AES-GCM-128 key + 4-byte salt

# UDP from host A with DF set (argv[3] == "df") or not
SENDER = r"""
import socket, sys, time
dst, n, df = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "df"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 2 if df else 0)  # IP_MTU_DISCOVER: DO / DONT
for i in range(n):
    s.sendto(b"%s-%04d" % (sys.argv[3].encode(), i), (dst, 9000))
    time.sleep(0.02)
"""

# ESP from host B (the peer gateway) with the given sequence numbers, one by one
ESP_SENDER = r"""
import sys, time
from scapy.all import IP, UDP, Raw, send
from scapy.layers.ipsec import SecurityAssociation, ESP
spi, key = int(sys.argv[1], 0), bytes.fromhex(sys.argv[2])
sa = SecurityAssociation(ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=key,
                         tunnel_header=IP(src="10.2.0.2", dst="10.2.0.1"))
for seq in map(int, sys.argv[3].split(",")):
    inner = IP(src="10.9.1.5", dst="10.1.0.2", ttl=64) / UDP(sport=7, dport=9000) / Raw(b"seq%d" % seq)
    send(sa.encrypt(inner, seq_num=seq), verbose=False)
    time.sleep(0.2)
"""


def config(ga, gb, tag, sock, ipsec):
    return {
        "ports": [
            {"name": "lan", "device": f"net_af_packet0,iface={ga}", "role": "protected",
             "exception_iface": f"dl{tag}", "addresses": [GW_LAN + "/24"]},
            {"name": "wan", "device": f"net_af_packet1,iface={gb}", "role": "unprotected",
             "exception_iface": f"dw{tag}", "addresses": [GW_WAN + "/24"]},
        ],
        "routes": [{"prefix": "10.9.0.0/16", "via": HOST_B, "port": "wan"}],
        "ipsec": ipsec,
        "pfkey": {"socket": sock},
    }


@pytest.fixture
def start(topo, tmp_path):
    """start(ipsec_section) -> a gateway dpsecd with a PF_KEY client (d.client)."""
    made = []

    def go(ipsec):
        ha, g, hb, ga, gb, vb = hosts_and_gateway(topo, ("dha", "dgw", "dhb"), b_via_gw=True)
        sockdir = tempfile.mkdtemp(prefix="dpsec-defects-")
        sock = os.path.join(sockdir, "pfkey.sock")
        d = Daemon(config(ga, gb, topo.tag, sock, ipsec), str(tmp_path), ns=g).start()
        d.ha, d.hb, d.vb, d.tmp, d.sockdir = ha, hb, vb, tmp_path, sockdir
        d.client = K.Client(sock)
        made.append(d)
        return d

    yield go
    for d in made:
        d.client.close()
        rc = d.stop()
        shutil.rmtree(d.sockdir, ignore_errors=True)
        assert rc == 0, d.read_log()


def out_sa_and_policy(d, spi, reqid):
    c = d.client
    assert c.request(K.gcm_add(spi, GW_WAN, HOST_B, reqid, KEY, replay=0)).errno == 0
    req = K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_REQUIRE, reqid, (GW_WAN, HOST_B))
    assert c.request(K.spd(K.SPDADD, K.DIR_OUT, "10.1.0.0/24", "10.9.1.0/24",
                           requests=[req])).errno == 0


def outer_df_bits(d, spi):
    """Send UDP with and without DF from host A; the DF bit of each outer header of SA spi."""
    cap = d.tmp / f"wire-{spi:x}.pcap"
    dump = subprocess.Popen(["ip", "netns", "exec", d.hb, "tcpdump", "-i", d.vb, "-w", str(cap),
                             "--immediate-mode", "-U", "esp"], stderr=subprocess.DEVNULL)
    time.sleep(1)
    for df in ("df", "nodf"):
        subprocess.run(["ip", "netns", "exec", d.ha, "/usr/bin/python3", "-c", SENDER, "10.9.1.5",
                        "10", df], check=True, timeout=30)
    time.sleep(0.5)
    dump.send_signal(signal.SIGINT)
    dump.wait(timeout=10)
    esp = [p for p in rdpcap(str(cap)) if ESP in p and p[ESP].spi == spi]
    assert len(esp) == 20, f"{len(esp)} ESP packets of SA {spi:#x} on the wire"
    return [bool(p[IP].flags.DF) for p in esp]


@pytest.mark.parametrize("dfbit", ["set", "clear"])
def test_pfkey_sa_takes_the_configured_dfbit(start, dfbit):
    # inner packets with and without DF: under the old forced "copy" half of the
    # outer headers would carry the wrong bit whichever way dfbit is set
    d = start({"dfbit": dfbit})
    out_sa_and_policy(d, 0x9001, 5)
    bits = outer_df_bits(d, 0x9001)
    assert bits == [dfbit == "set"] * 20


def test_pfkey_sa_copies_df_when_configured(start):
    d = start({"dfbit": "copy"})
    out_sa_and_policy(d, 0x9002, 6)
    assert outer_df_bits(d, 0x9002) == [True] * 10 + [False] * 10


def inbound_sa(d, spi, replay):
    c = d.client
    assert c.request(K.gcm_add(spi, HOST_B, GW_WAN, 8, KEY, replay=replay)).errno == 0
    req = K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_REQUIRE, 8, (HOST_B, GW_WAN))
    assert c.request(K.spd(K.SPDADD, K.DIR_FWD, "10.9.1.0/24", "10.1.0.0/24",
                           requests=[req])).errno == 0


def send_esp(d, spi, seqs):
    subprocess.run(["ip", "netns", "exec", d.hb, "/usr/bin/python3", "-c", ESP_SENDER, hex(spi),
                    KEY.hex(), ",".join(map(str, seqs))], check=True, timeout=60)


def sa_counters(d, spi):
    return {int(s["spi"], 16): s for s in d.ctl_json("sa")["sas"].values()}[spi]


def wait_counted(d, spi, n):
    return d.wait_for(lambda: (lambda s: s if s["packets"] + s["drop_replay"] >= n else None)(
        sa_counters(d, spi)), timeout=10, what="every ESP packet counted")


def test_pfkey_sa_without_window_takes_the_configured_replay_window(start):
    # sadb_sa_replay 0: the configured 64 packets. 100 is 100 behind 200: left of
    # the window, dropped; 150 is inside it, accepted. (The old code ran the SA
    # without anti-replay: both accepted.)
    d = start({"replay_window": 64})
    inbound_sa(d, 0x9101, replay=0)
    assert sa_counters(d, 0x9101)["replay_window"] == 64
    send_esp(d, 0x9101, [200, 100, 150, 150])
    s = wait_counted(d, 0x9101, 4)
    assert s["packets"] == 2 and s["drop_replay"] == 2  # 100 (too old) and 150 again


def test_pfkey_sa_window_of_the_client_wins(start):
    # the client's 32 packets over the configured 64: 150 is 50 behind 200, dropped
    d = start({"replay_window": 64})
    inbound_sa(d, 0x9102, replay=32)
    assert sa_counters(d, 0x9102)["replay_window"] == 32
    send_esp(d, 0x9102, [200, 150, 190])
    s = wait_counted(d, 0x9102, 3)
    assert s["packets"] == 2 and s["drop_replay"] == 1
