"""Capacity without tuning: dpsecd on its default configuration (no crypto,
ipsec or memory setting; two net_pcap ports, no namespaces) takes tens of
thousands of SAs and policies over PF_KEY, every one accepted and every one
back in a DUMP; and when a limit is set small and reached, the refusal is
ENOBUFS and the log names the setting to raise (docs/config.md).

The PF_KEY client is tests/integration/pfkey.py (written from RFC 2367, no
code shared with dpsecd); requests are pipelined, as many key daemons' are.
"""
import errno
import json
import re
import subprocess

import pytest

import pcaps as P
import pfkey as K
from dpsec import DPSECD, Daemon

GW_WAN = "10.2.0.1"
KEY = bytes(range(20))  # AES-128-GCM key + 4-byte salt
N = 10000


def config(workdir, extra=None):
    P.write_pcap(workdir / "EMPTY.pcap", [])
    cfg = {
        "ports": [
            {"name": "lan", "role": "protected", "exception": False,
             "device": f"net_pcap0,rx_pcap={workdir}/EMPTY.pcap,tx_pcap={workdir}/LAN_OUT.pcap",
             "addresses": ["10.1.0.1/24"]},
            {"name": "wan", "role": "unprotected", "exception": False,
             "device": f"net_pcap1,rx_pcap={workdir}/EMPTY.pcap,tx_pcap={workdir}/WAN_OUT.pcap",
             "addresses": [GW_WAN + "/24"]},
        ],
    }
    cfg.update(extra or {})
    return cfg


@pytest.fixture
def daemon(tmp_path):
    started = []

    def start(extra=None):
        d = Daemon(config(tmp_path, extra), str(tmp_path)).start()
        d.client = K.Client(d.cfg["pfkey"]["socket"])
        started.append(d)
        return d

    yield start
    for d in started:
        d.client.close()
        rc = d.stop()
        assert rc == 0, d.read_log()[-3000:]


def peer(i):
    return f"100.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"


def tunnel_sas(i):
    """Tunnel i's outbound SA (to its peer) and inbound SA (to the gateway)."""
    return [K.gcm_add(0x10000000 + 2 * i, GW_WAN, peer(i), 1000 + i, KEY, replay=0),
            K.gcm_add(0x10000001 + 2 * i, peer(i), GW_WAN, 1000 + i, KEY)]


def info(d):
    return json.loads(d.ctl("raw", "/dpsec/info").stdout)["/dpsec/info"]


@pytest.mark.parametrize("engine", ["default", "cryptodev"])
def test_default_configuration_takes_10000_sas_over_pfkey(daemon, engine):
    """On the default configuration (AES-GCM then runs on the native engine, which
    takes no cryptodev session), and with every SA on a cryptodev session."""
    d = daemon() if engine == "default" else daemon({"crypto": {"engine": "cryptodev"}})
    assert "sessions" not in d.cfg.get("crypto", {})  # the default: no crypto.sessions
    msgs = [m for i in range(N // 2) for m in tunnel_sas(i)]
    replies = d.client.pipeline(msgs, window=1000, timeout=80)
    refused = [(i, r.errno) for i, r in enumerate(replies) if r.errno]
    assert not refused, f"{len(refused)} refused, the first: {refused[:3]}"
    want = {0x10000000 + k for k in range(N)}
    dumped = d.client.dump(K.DUMP, K.ESP)
    assert all(m.errno == 0 for m in dumped)
    assert {m.ext[K.SA].spi for m in dumped} == want and len(dumped) == N
    st = info(d)
    assert st["sas"] == N and st["crypto_sessions"] == (0 if engine == "default" else N)


def test_full_session_pool_is_enobufs_naming_crypto_sessions(daemon):
    # the session pool is cryptodev's: the native engine's AES-GCM SAs take none
    d = daemon({"crypto": {"sessions": 64, "engine": "cryptodev"}})
    msgs = [m for i in range(40) for m in tunnel_sas(i)]  # 80 SAs for 64 sessions
    replies = d.client.pipeline(msgs, window=100)
    errs = [r.errno for r in replies]
    assert errs[:64] == [0] * 64
    assert errs[64:] == [errno.ENOBUFS] * 16
    log = d.read_log()
    refusals = [ln for ln in log.splitlines() if "refused" in ln and "crypto.sessions" in ln]
    assert len(refusals) == 16, log[-2000:]
    # a deleted SA's session is back in the pool once the DELETE is answered
    gone = K.msg(K.DELETE, K.ESP, [K.sa(0x10000000), K.address(K.SRC, GW_WAN), K.address(K.DST, peer(0))])
    assert d.client.request(gone).errno == 0
    assert d.client.request(msgs[64]).errno == 0
    assert d.client.request(msgs[65]).errno == errno.ENOBUFS


def test_more_yaml_sas_than_sessions_fails_the_check_naming_crypto_sessions(tmp_path):
    sas = [{"spi": 0x1000 + i, "direction": "out", "src": GW_WAN, "dst": peer(i),
            "encryption": {"algorithm": "aes-gcm-128", "key": "0x" + "ab" * 20}} for i in range(65)]
    d = Daemon(config(tmp_path, {"crypto": {"sessions": 64}, "sas": sas}), str(tmp_path))
    r = subprocess.run([DPSECD, "--check", "-c", d.path], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert re.search(r"crypto\.sessions.*65 SAs.*raise crypto\.sessions", r.stdout + r.stderr), r.stderr
    d = Daemon(config(tmp_path, {"crypto": {"sessions": 64}, "sas": sas[:64]}), str(tmp_path), name="fits")
    r = subprocess.run([DPSECD, "--check", "-c", d.path], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_default_configuration_takes_10000_policies_over_pfkey(daemon):
    d = daemon()
    msgs = []
    for i in range(N // 2):
        net = f"172.{16 + (i >> 12)}.{(i >> 4) & 255}.{(i & 15) << 4}/28"
        req = K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_UNIQUE, 1000 + i, (GW_WAN, peer(i)))
        back = K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_UNIQUE, 1000 + i, (peer(i), GW_WAN))
        msgs.append(K.spd(K.SPDADD, K.DIR_OUT, "10.1.0.0/24", net, requests=[req]))
        msgs.append(K.spd(K.SPDADD, K.DIR_FWD, net, "10.1.0.0/24", requests=[back]))
    replies = d.client.pipeline(msgs, window=1000, timeout=80)
    refused = [(i, r.errno) for i, r in enumerate(replies) if r.errno]
    assert not refused, f"{len(refused)} refused, the first: {refused[:3]}"
    ids = {r.ext[K.POLICY].id for r in replies}
    assert len(ids) == N
    dumped = d.client.dump(K.SPDDUMP)
    assert all(m.errno == 0 for m in dumped)
    assert {m.ext[K.POLICY].id for m in dumped} == ids and len(dumped) == N
    assert info(d)["policies"] == N


def test_default_configuration_takes_10000_getspi_reservations(daemon):
    """A key daemon starting thousands of tunnels at once reserves an SPI for each
    (GETSPI) before any UPDATE: every reservation is kept, and UPDATE finds it."""
    d = daemon()
    getspi = [K.msg(K.GETSPI, K.ESP, [K.address(K.SRC, peer(i)), K.address(K.DST, GW_WAN),
                                      K.spirange(0xc0000000, 0xcfffffff)]) for i in range(N)]
    replies = d.client.pipeline(getspi, window=1000, timeout=60)
    assert [r.errno for r in replies] == [0] * N
    spis = [r.ext[K.SA].spi for r in replies]
    assert len(set(spis)) == N and all(0xc0000000 <= s <= 0xcfffffff for s in spis)
    dumped = d.client.dump(K.DUMP, K.ESP)
    assert sorted((m.ext[K.SA].spi, m.ext[K.SRC].addr) for m in dumped if m.ext[K.SA].state == K.LARVAL) == \
        sorted(zip(spis, map(peer, range(N))))
    # UPDATE makes reservations SAs (the first, one in the middle, the last), DELETE drops one
    for i in (0, N // 2, N - 1):
        rep = d.client.request(K.gcm_add(spis[i], peer(i), GW_WAN, 7, KEY, mtype=K.UPDATE))
        assert rep.errno == 0 and rep.ext[K.SA].state == K.MATURE
    gone = K.msg(K.DELETE, K.ESP, [K.sa(spis[1]), K.address(K.SRC, peer(1)), K.address(K.DST, GW_WAN)])
    assert d.client.request(gone).errno == 0
    get = K.msg(K.GET, K.ESP, [K.sa(spis[2]), K.address(K.SRC, peer(2)), K.address(K.DST, GW_WAN)])
    assert d.client.request(get).ext[K.SA].state == K.LARVAL
    assert d.client.request(gone).errno == errno.ESRCH
    assert info(d)["sas"] == 3
