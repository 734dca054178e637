"""The native engine's own outbound ESP framing (esp_native_out.c) against lib/ipsec's.

For an AES-GCM SA with a 128 or 256-bit key, crypto.engine: native frames
outbound ESP itself (ESP header, IV, padding, trailer, outer header, sequence
numbers) and encrypts with intel-ipsec-mb; crypto.engine: cryptodev leaves it
all to lib/ipsec and crypto_aesni_mb (CPU crypto). The same frames go through
a dpsecd of each kind on net_pcap ports (test_esp_pcap's topology), with the
same SAs, keys and sequence numbers, and every ESP frame each sends must be the
same bytes, every SA and port counter the same number.

The matrix: tunnel 4in4, 6in6, 4in6 and 6in4; transport over IPv4 and IPv6;
ESP in UDP (RFC 3948) in tunnel and transport mode over IPv4 and IPv6; ESN;
AES-256; dfbit copy; inner packets of four consecutive lengths (every pad
length 0..3) with DF and TOS (DSCP and each ECN codepoint) varied; all of it
with the ecn knob off and on (RFC 6040 copies ECN outward only then). And SAs
whose sequence numbers start near 2^32: without ESN the last packets are
refused (lib/ipsec never sends 2^32 - 1) and counted, with ESN they go on into
the high half. A sequence start is not configuration: those SAs are a key
daemon's (PF_KEY), put back from a state file whose sent-packet count is set
here (pfkey_emul/state.c resumes 2^24 past it).

Correctness against an independent ESP lives in test_esp_pcap.py (its native
path); this file proves the two framings the same.
"""
import os
import shutil
import struct

import pytest
from scapy.all import UDP, Raw, wrpcap
from scapy.compat import raw

import pfkey as K
from dpsec import Daemon
from test_esp_pcap import (HOST, PcapRun, Tunnel, base_config, forget_runtime_dir, ip, remote_host)

PATHS = ("native", "cpu")  # the native engine, lib/ipsec on crypto_aesni_mb's CPU crypto
# payload bytes after the UDP header: four consecutive lengths give every pad length
# (RFC 4303 2.4: to 4 bytes), then one larger packet
SIZES = (20, 21, 22, 23, 1200)
TOS = (0x00, 0xb8, 0x01, 0x02, 0x03, 0xbb)   # DSCP 46, ECT(1), ECT(0), CE, both
SEQ_MARGIN = 1 << 24                         # pfkey_emul/state.c
ESN_FLAG = 0x400                             # SADB_X_SAFLAGS_ESN (pfkeyv2_ext.h)


class IdTunnel(Tunnel):
    """A Tunnel whose LAN packets cover the pad lengths, TOS values and DF, with
    the SA knobs this test varies (dfbit, a sequence start) and no inbound traffic."""

    def __init__(self, i, enc="aes-gcm-128", dfbit=None, seq_start=None, n_out=None, **kw):
        self.dfbit, self.seq_start = dfbit, seq_start
        self.n_wanted = n_out or len(SIZES)
        super().__init__(i, enc, n_out=self.n_wanted, n_in=0, **kw)
        if seq_start is not None:
            self.name += f"-seq{seq_start:x}"
        if dfbit:
            self.name += f"-df{dfbit}"

    def _sa_cfg(self, spi, direction, src, dst, key, akey):
        c = super()._sa_cfg(spi, direction, src, dst, key, akey)
        if self.dfbit:
            c["dfbit"] = self.dfbit
        return c

    def _build(self):
        fam = self.inner
        dst = self.peer if self.mode == "transport" else remote_host(fam, self.i)
        self.out_inner = []
        for k in range(self.n_wanted):
            tos = TOS[k % len(TOS)]
            kw = {"tos": tos, "flags": "DF" if k % 2 else 0, "id": 100 * self.i + k} if fam == 4 \
                else {"tc": tos, "fl": 0x12345 if k % 2 else 0}
            pkt = ip(fam, src=HOST[fam], dst=dst, ttl=64, **kw) / UDP(sport=1000 + self.i, dport=2000 + k) \
                / Raw(bytes((self.i + j) & 0xff for j in range(SIZES[k % len(SIZES)])))
            self.out_inner.append(raw(pkt))
        self.in_inner, self.in_frames = [], []

    def sas(self):
        return [s for s in super().sas() if s["direction"] == "out"]


def matrix():
    return [
        IdTunnel(1, inner=4), IdTunnel(2, inner=6), IdTunnel(3, inner=4, outer=6), IdTunnel(4, inner=6, outer=4),
        IdTunnel(5, inner=4, mode="transport"), IdTunnel(6, inner=6, mode="transport"),
        IdTunnel(7, inner=4, encap=True), IdTunnel(8, inner=6, encap=True),
        IdTunnel(9, inner=4, mode="transport", encap=True), IdTunnel(10, inner=6, mode="transport", encap=True),
        IdTunnel(11, inner=4, esn=True), IdTunnel(12, "aes-gcm-256", inner=6, outer=4, esn=True),
        IdTunnel(13, "aes-gcm-256", inner=4, outer=6), IdTunnel(14, inner=4, dfbit="copy"),
        IdTunnel(15, "aes-gcm-256", inner=6, encap=True, esn=True),
        IdTunnel(16, "aes-gcm-256", inner=4, mode="transport", encap=True, esn=True),
    ]


def seq_tunnels():
    """SAs put back from a key daemon's state, their numbers near 2^32."""
    return [IdTunnel(30, seq_start=2**32 - 4, n_out=7), IdTunnel(31, seq_start=2**32 - 3, n_out=7, esn=True),
            IdTunnel(32, "aes-gcm-256", inner=6, outer=6, mode="transport", seq_start=2**32 - 2, n_out=3)]


def sent(t):
    """How many of t's packets lib/ipsec numbers and sends: its first number is the
    sequence start itself; without ESN none at or past 2^32 - 1."""
    if t.seq_start is None or t.esn:
        return t.n_out
    return max(0, min(t.n_out, 2**32 - 1 - t.seq_start))


def pfkey_add(t):
    """t's outbound SA as a key daemon adds it."""
    src = HOST[t.inner] if t.mode == "transport" else t.gw
    exts = [K.sa(t.spi_out, enc=K.EALG_GCM16, flags=ESN_FLAG if t.esn else 0),
            K.sa2(K.MODE_TUNNEL if t.mode == "tunnel" else K.MODE_TRANSPORT, t.reqid),
            K.address(K.SRC, src), K.address(K.DST, t.peer), K.key(K.KEY_ENC, t.keys["out"][0])]
    if t.encap:
        exts += K.natt(4500, 4500)
    return K.msg(K.ADD, K.ESP, exts)


def seeded_state(workdir, tunnels):
    """A PF_KEY state file with the outbound SAs of tunnels, each resuming at its seq_start:
    a dpsecd takes them from a key daemon and saves them; its counts are then set."""
    wd = os.path.join(workdir, "seed")
    os.makedirs(wd)
    wrpcap(f"{wd}/LAN_IN.pcap", [])
    wrpcap(f"{wd}/WAN_IN.pcap", [])
    d = Daemon(base_config(wd), wd)
    d.start()
    state = d.cfg["pfkey"]["state"]
    try:
        c = K.Client(d.cfg["pfkey"]["socket"])
        for t in tunnels:
            rep = c.request(pfkey_add(t))
            assert rep.errno == 0, f"ADD of SA {t.spi_out:#x}: errno {rep.errno}"
        c.close()
        d.wait_for(lambda: os.path.exists(state) and struct.unpack_from("=6I", open(state, "rb").read())[2]
                   == len(tunnels), timeout=10, what="the state file with every SA")
    finally:
        d.stop()
        forget_runtime_dir(d)
    data = bytearray(open(state, "rb").read())
    magic, _, n_sas, _, rec, _ = struct.unpack_from("=6I", data)
    # struct saved_sa: the SA's configuration (its SPI at offset 0), then the packets sent
    for k in range(n_sas):
        off = 24 + k * rec
        spi = struct.unpack_from("=I", data, off)[0]
        t = next(t for t in tunnels if t.spi_out == spi)
        struct.pack_into("=Q", data, off + rec - 32, t.seq_start - SEQ_MARGIN)
    out = os.path.join(workdir, "seeded.state")
    with open(out, "wb") as f:
        f.write(data)
    return out


class IdentityRun(PcapRun):
    def __init__(self, workdir, path, ecn, state=None):
        self.tunnels = matrix() + (seq_tunnels() if state else [])
        cfg = base_config(workdir, path=path, ipsec={"ecn": ecn})
        if state:
            mine = os.path.join(str(workdir), "dpsecd.pfkey.state")
            shutil.copy(state, mine)
            cfg["pfkey"] = {"state": mine}
        for t in self.tunnels:
            if t.seq_start is None:
                cfg["sas"] += t.sas()
            cfg["policies"] += t.policies()
        super().__init__(workdir, cfg, [f for t in self.tunnels for f in t.lan_frames()], [])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{(path, ecn): run}: both paths with the ecn knob off (with the PF_KEY SAs) and on."""
    state = seeded_state(str(tmp_path_factory.mktemp("state")), seq_tunnels())
    out = {}
    for ecn in (False, True):
        for path in PATHS:
            out[(path, ecn)] = IdentityRun(tmp_path_factory.mktemp(f"{path}-ecn{int(ecn)}"), path, ecn,
                                           state if not ecn else None)
    return out


# (SA, ecn knob): the PF_KEY SAs ride in the ecn-off runs
CASES = [pytest.param(t.name, ecn, id=f"{t.name}-ecn-{'on' if ecn else 'off'}")
         for ecn in (False, True) for t in matrix() + ([] if ecn else seq_tunnels())]


def pair(runs, name, ecn):
    got = {p: runs[(p, ecn)] for p in PATHS}
    for p, r in got.items():
        assert r.error is None and r.rc == 0, f"{p}: {r.error or r.log[-2000:]}"
    t = next(t for t in got["native"].tunnels if t.name == name)
    return t, got


@pytest.mark.parametrize("name,ecn", CASES)
def test_native_esp_frames_are_lib_ipsecs_byte_for_byte(runs, name, ecn):
    """Every frame of the SA, in order: the same bytes from both framings, as many as
    lib/ipsec sends (its sequence numbers, never 2^32 - 1 without ESN)."""
    t, got = pair(runs, name, ecn)
    frames = {p: [f for f, *_ in r.esp_out(t.spi_out)] for p, r in got.items()}
    assert len(frames["cpu"]) == sent(t)
    for k, (a, b) in enumerate(zip(frames["native"], frames["cpu"])):
        assert a.hex() == b.hex(), f"frame {k} of {len(frames['cpu'])}"
    assert len(frames["native"]) == len(frames["cpu"])


@pytest.mark.parametrize("name,ecn", CASES)
def test_native_sa_counts_as_lib_ipsec_and_runs_native(runs, name, ecn):
    """The SA's counters (packets, bytes, drops: the refused sequence numbers under
    drop_other) are the same; the native run's SA is the engine's."""
    t, got = pair(runs, name, ecn)
    sa = {p: r.sa(t.spi_out) for p, r in got.items()}
    assert (sa["native"]["device"], sa["native"]["crypto"]) == ("intel-ipsec-mb", "native")
    assert (sa["cpu"]["device"], sa["cpu"]["crypto"]) == ("crypto_aesni_mb", "cpu")
    counts = {p: {k: v for k, v in s.items() if isinstance(v, int) and k not in ("id", "age_s", "use_s")}
              for p, s in sa.items()}
    assert counts["native"] == counts["cpu"]
    assert sa["native"]["packets"] == sent(t)
    assert sa["native"]["drop_other"] == t.n_out - sent(t)


@pytest.mark.parametrize("ecn", [False, True], ids=["ecn-off", "ecn-on"])
def test_port_counters_are_the_same(runs, ecn):
    got = {p: runs[(p, ecn)].stats for p in PATHS}
    assert got["native"] == got["cpu"]
