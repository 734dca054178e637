"""Inbound ESP edge cases on every crypto path, on net_pcap ports: what the
native engine's inbound ESP (esp_native_in.c, without lib/ipsec) must do
itself, checked against packets scapy built and against exact SA counters,
the same on CPU crypto, the cryptodev queue and the native engine.

* E1, AES-GCM-128 4in4 with ESN and a 64-packet window: the sequence number
  crosses 2^32 (RFC 4303 Appendix A2.1: 0xfffffff0, 0xffffffff, then 0 and
  1 of the high half 1); a replay inside one burst; a never-seen number of
  the old high half still inside the window (accepted); a replay of it; a
  packet whose ICV covers the wrong high half (drop_auth); one left of the
  window; and two packets sent as IPv4 fragments whose boundary falls in
  the ICV, then in the padding (dp_reasm linearizes what it reassembles, so
  the ESP stage gets them in one segment: esp_native_in.c's path for a packet
  in several segments is not reached by this test).
* E2, AES-GCM-256 4in4 with ESN and replay_window 0: lib/ipsec keeps a
  64-packet window for ESN anyway (its sa.c), and so must the native path:
  across 2^32, then a replay.
* E3, AES-GCM-128 4in4 without ESN: padding 1, 2, 4 (only the last pad byte
  wrong); 245 bytes of valid padding; next header 59, a dummy packet (RFC
  4303 2.6: discarded; lib/ipsec refuses any next header but the SA's inner
  protocol in tunnel mode: drop_pad).

The topology and the daemon run are test_esp_pcap.py's (PcapRun).
"""
import pytest
from scapy.all import IP, UDP, Ether, Raw, fragment, raw

from test_esp_pcap import (HOST, HOST_MAC, LAN_MAC, PATHS, REASM_TIMEOUT_MS, SA_DROPS, PcapRun,
                           Tunnel, base_config, forwarded, frame_to_gw, ip, remote_host)

HI = 1 << 32


def inner(t, tag, size=0):
    """An inner packet from the peer's network to the LAN host."""
    fam = t.inner
    return raw(ip(fam, src=remote_host(fam, t.i), dst=HOST[fam], ttl=64)
               / UDP(sport=3000 + t.i, dport=5000) / Raw(tag.encode() + b"x" * size))


def gcm_padding(p, extra=0):
    """RFC 4303 padding 1, 2, 3... to a 4-byte multiple (RFC 4106 3), plus extra."""
    n = -(len(p) + 2) % 4 + extra
    return bytes(range(1, n + 1))


class InboundRun(PcapRun):
    def __init__(self, workdir, path):
        self.path = path
        E1 = self.E1 = Tunnel(71, "aes-gcm-128", esn=True, n_out=0, n_in=0)
        E2 = self.E2 = Tunnel(72, "aes-gcm-256", esn=True, n_out=0, n_in=0)
        E3 = self.E3 = Tunnel(73, "aes-gcm-128", n_out=0, n_in=0)
        self.tunnels = [E1, E2, E3]
        cfg = base_config(workdir, path=path)
        cfg["dataplane"] = {"reassembly": {"max_flows": 64, "timeout_ms": REASM_TIMEOUT_MS}}
        for t in self.tunnels:
            cfg["sas"] += t.sas()
            cfg["policies"] += t.policies()
        next(s for s in cfg["sas"] if s["spi"] == E1.spi_in)["replay_window"] = 64
        next(s for s in cfg["sas"] if s["spi"] == E2.spi_in)["replay_window"] = 0
        self.good = {t.i: [] for t in self.tunnels}
        wan = []

        def send(t, seq, p, good, frag=None, **kw):
            """seq: the full number; the frame carries its low half."""
            frame = t.esp_frame(seq % HI, p, hi=seq // HI, **kw)
            if frag:
                wan.extend(frame_to_gw(f) for f in fragment(Ether(frame)[IP], fragsize=frag))
            else:
                wan.append(frame)
            if good:
                self.good[t.i].append(p)

        e3 = iter(range(1, 100))

        def sep():
            """A good E3 packet: it ends the run of packets of the SA before it (the
            packets of one family that follow one another go through their SA
            together, esp_in.c, their high halves reconstructed from the window
            as it was before the run)."""
            send(E3, next(e3), inner(E3, "sep"), True)

        # E1: across 2^32 with the window on
        send(E1, 0xfffffff0, inner(E1, "fffffff0"), True)
        send(E1, 0xffffffff, inner(E1, "ffffffff"), True)
        sep()
        send(E1, HI, inner(E1, "100000000"), True)
        send(E1, HI + 1, inner(E1, "100000001"), True)
        send(E1, HI + 1, inner(E1, "dup"), False)                  # the same run
        sep()
        send(E1, 0xfffffff8, inner(E1, "late"), True)              # high half 0, in the window
        sep()
        send(E1, 0xfffffff8, inner(E1, "late-again"), False)
        send(E1, 0xfffffff0, inner(E1, "old-again"), False)
        sep()
        send(E1, 2, inner(E1, "wrong-hi"), False)                  # its ICV over high half 0
        send(E1, HI + 2, inner(E1, "100000002"), True)
        sep()
        # below the window's bottom in the low half: taken for the next high half
        # (A2.1), so its ICV (over high half 0) fails
        send(E1, 0xffffff00, inner(E1, "below"), False)
        sep()
        # fragmented: the ESP (outer IPv4 payload) ends 8 bytes into the last
        # fragment (the ICV split 8 + 8), then 20 bytes in with 8 pad bytes (the
        # padding split 6 + 2, the pad length and next header in the last one)
        self.split = []
        for s, tail, extra in ((HI + 3, 8, 0), (HI + 4, 20, 4)):
            for size in range(800, 1400):
                p = inner(E1, f"frag{s:x}", size)
                pad = gcm_padding(p, extra)
                if (8 + 8 + len(p) + len(pad) + 2 + 16) % 512 == tail:
                    break
            else:
                raise AssertionError(f"no size puts {tail} bytes in the last fragment")
            self.split.append(p)
            send(E1, s, p, True, frag=512, padding=pad)
            sep()
        # E2: ESN with replay_window 0
        send(E2, 0xffffffff, inner(E2, "ffffffff"), True)
        sep()
        send(E2, HI, inner(E2, "100000000"), True)
        send(E2, HI + 1, inner(E2, "100000001"), True)
        sep()
        send(E2, HI + 1, inner(E2, "dup"), False)
        sep()
        # E3: the trailer
        p = next(q for q in (inner(E3, "badlast", k) for k in range(4)) if len(gcm_padding(q)) == 3)
        pad = bytearray(gcm_padding(p))                          # 1, 2, 4
        pad[-1] += 1
        send(E3, next(e3), p, False, padding=bytes(pad))
        p = inner(E3, "longpad")
        send(E3, next(e3), p, True, padding=gcm_padding(p, 244))
        p = inner(E3, "dummy")
        seq = next(e3)
        send(E3, seq, None, False, esp=E3.sa_in.encrypt(seq, p, 59))
        sep()
        super().__init__(workdir, cfg, [], wan, settle=2 * REASM_TIMEOUT_MS / 1000 + 0.3)

    def expected_lan(self, t):
        return [raw(Ether(src=LAN_MAC, dst=HOST_MAC, type=0x800 if t.inner == 4 else 0x86dd))
                + forwarded(p) for p in self.good[t.i]]

    def counts(self, t):
        s = self.sa(t.spi_in)
        return {k: s[k] for k in ("packets",) + SA_DROPS if s[k]}


@pytest.fixture(scope="module")
def inbound_runs(tmp_path_factory):
    cache = {}

    def get(path):
        if path not in cache:
            cache[path] = InboundRun(tmp_path_factory.mktemp(f"inbound-{path}"), path)
        return cache[path]
    return get


def started(inbound_runs, path):
    """The inbound run on crypto path @path, which must have gone through."""
    r = inbound_runs(path)
    assert r.error is None and r.rc == 0, r.log
    return r


@pytest.fixture(params=PATHS)
def run(request, inbound_runs):
    return started(inbound_runs, request.param)


def test_the_native_engine_runs_the_inbound_sas(run):
    for t in run.tunnels:
        sa = run.sa(t.spi_in)
        want = ("intel-ipsec-mb", "native") if run.path == "native" else \
            ("crypto_aesni_mb", run.path)
        assert (sa["device"], sa["crypto"]) == want, t.name


# The ESN cases run where the window moves as each run is verified: CPU crypto
# and the native engine. On the cryptodev queue the window moves when the
# crypto is dequeued, after the next run's high halves were reconstructed
# (lib/ipsec's prepare), so their per-run verdicts are another test's.
SYNC_PATHS = tuple(p for p in PATHS if p != "async")


@pytest.fixture(params=SYNC_PATHS)
def sync_run(request, inbound_runs):
    return started(inbound_runs, request.param)


def test_esn_high_half_crosses_2_32_with_the_window_on(sync_run):
    """E1: every accepted packet reaches the LAN host once, in order, byte for
    byte; the duplicate in one burst, the replays on either side of 2^32 and the
    number left of the window count drop_replay; the ICV over the wrong high
    half (the low half 2 right after 2^32, 0xffffff00 below the window) drop_auth."""
    t = sync_run.E1
    assert [f for f in sync_run.lan_out if f in sync_run.expected_lan(t)] == sync_run.expected_lan(t)
    assert sync_run.counts(t) == {"packets": 8, "drop_replay": 3, "drop_auth": 2}


def test_reassembled_esp_is_decrypted(sync_run):
    """E1's two fragmented packets: reassembled, decrypted, forwarded whole,
    byte for byte."""
    want = sync_run.expected_lan(sync_run.E1)[-2:]
    assert [len(p) for p in sync_run.split] == [len(f) - 14 for f in want]
    assert all(f in sync_run.lan_out for f in want)
    assert sync_run.stats["wan"]["reasm_done"] == 2


def test_esn_without_a_window_still_rejects_replays(sync_run):
    t = sync_run.E2
    assert [f for f in sync_run.lan_out if f in sync_run.expected_lan(t)] == sync_run.expected_lan(t)
    assert sync_run.counts(t) == {"packets": 3, "drop_replay": 1}


def test_trailer_checks_count_drop_pad(run):
    """E3: one wrong pad byte (the last) and a dummy packet (next header 59)
    count drop_pad; 245 bytes of valid padding are accepted."""
    t = run.E3
    assert [f for f in run.lan_out if f in run.expected_lan(t)] == run.expected_lan(t)
    assert run.counts(t) == {"packets": len(run.good[t.i]), "drop_pad": 2}


def test_nothing_else_leaves(sync_run):
    assert len(sync_run.lan_out) == sum(len(sync_run.expected_lan(t)) for t in sync_run.tunnels)
    assert sync_run.wan_out == []
