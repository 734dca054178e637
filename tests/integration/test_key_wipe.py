"""Keys do not outlive their SA: once an SA is deleted, no copy of its keys is
left anywhere in dpsecd's memory.

The test gives an SA fresh random keys (AES-CBC-256 and HMAC-SHA2-256-128,
32 bytes each), lets it protect traffic, and reads the daemon's memory
through /proc/PID/maps and /proc/PID/mem: every readable mapping -- heap,
stacks, the binary's data, and DPDK's hugepage memory (in_memory: memfd
mappings) -- while the SA exists, where the keys must be found (the scanner
works: they are in the store, the dataplane SA and the crypto session), and
after the SA is deleted, where they must not. Two ways in and out: the YAML
file (SIGHUP reload without the SA) and PF_KEY (ADD, GET, DUMP, DELETE).

What is searched is the raw key. crypto_aesni_mb keeps expanded round keys
in its session, and the first round keys of AES are the key itself: the
session's copy is found while the SA lives, and must be gone after. The
native engine (crypto.engine: native, AES-GCM) keeps its own key schedule:
its last round key, which only a schedule holds, is searched for too.
"""
import os
import signal
import struct
import time

import pytest
from scapy.all import IP, UDP, Raw

import pfkey as K
from dpsec import Daemon
from test_esp_pcap import HOST4, WAN4, base_config, forget_runtime_dir, frame_from_host

PEER = "198.51.100.1"


def scan(pid, needles):
    """{needle: [mapping of each occurrence]} over every readable mapping of pid."""
    found = {n: [] for n in needles}
    longest = max(len(n) for n in needles)
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read().splitlines()
    with open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split(None, 5)
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            name = fields[5] if len(fields) > 5 else "[anon]"
            if not fields[1].startswith("r") or name in ("[vvar]", "[vsyscall]"):
                continue
            tail = b""
            for off in range(lo, hi, 1 << 24):
                try:
                    mem.seek(off)
                    chunk = mem.read(min(1 << 24, hi - off))
                except OSError:
                    tail = b""
                    continue
                data = tail + chunk
                for n in needles:
                    i = data.find(n)
                    while i >= 0:
                        found[n].append(f"{name} @ {off - len(tail) + i:#x}")
                        i = data.find(n, i + 1)
                tail = chunk[-(longest - 1):]
    return found


def daemon_pid(d):
    return d.proc.pid  # started without a namespace: the dpsecd process itself


def keys():
    """Fresh random keys; redrawn if one holds a run of equal bytes (not distinctive)."""
    while True:
        enc, auth = os.urandom(32), os.urandom(32)
        if len(set(enc)) > 20 and len(set(auth)) > 20:
            return enc, auth


def sa_cfg(spi, enc, auth):
    return {"spi": spi, "direction": "out", "src": WAN4, "dst": PEER, "reqid": spi,
            "encryption": {"algorithm": "aes-cbc-256", "key": "0x" + enc.hex()},
            "integrity": {"algorithm": "hmac-sha2-256-128", "key": "0x" + auth.hex()}}


def policy(spi, net):
    return {"direction": "out", "src": "192.168.10.0/24", "dst": net, "action": "protect",
            "ipsec": [{"proto": "esp", "mode": "tunnel", "level": "require", "reqid": spi,
                       "tunnel": {"src": WAN4, "dst": PEER}}]}


def traffic(nets):
    return [frame_from_host(IP(src=HOST4, dst=f"{net}.{k + 1}") / UDP(sport=1, dport=2) /
                            Raw(b"x" * (40 * k))) for net in nets for k in range(4)]


def run(workdir, cfg, frames):
    from scapy.all import Ether, wrpcap
    wrpcap(f"{workdir}/LAN_IN.pcap", [Ether(f) for f in frames])
    wrpcap(f"{workdir}/WAN_IN.pcap", [])
    d = Daemon(cfg, str(workdir)).start()
    d.wait_for(lambda: d.port_stats()["lan"]["rx_packets"] >= len(frames), what="the traffic")
    return d


def assert_found(pid, named):
    hits = scan(pid, list(named.values()))
    for what, k in named.items():
        assert hits[k], f"{what}: not found while its SA exists: the scan does not see it"
    return hits


def assert_gone(pid, named):
    hits = scan(pid, list(named.values()))
    left = {what: hits[k] for what, k in named.items() if hits[k]}
    assert not left, f"keys of a deleted SA are still in dpsecd's memory: {left}"


@pytest.fixture
def stop():
    made = []
    yield made.append
    for d in made:
        rc = d.stop()
        forget_runtime_dir(d)
        assert rc == 0, d.read_log()


@pytest.mark.parametrize("device", ["crypto_aesni_mb", "crypto_openssl"])
def test_reload_wipes_the_keys_of_a_deleted_sa(tmp_path, stop, device):
    enc, auth = keys()
    keep_enc, keep_auth = keys()
    cfg = base_config(str(tmp_path))
    cfg["crypto"]["devices"] = [device]
    cfg["sas"] = [sa_cfg(0x5001, keep_enc, keep_auth), sa_cfg(0x5002, enc, auth)]
    cfg["policies"] = [policy(0x5001, "10.1.0.0/24"), policy(0x5002, "10.2.0.0/24")]
    d = run(tmp_path, cfg, traffic(["10.1.0", "10.2.0"]))
    stop(d)
    sas = {int(s["spi"], 16): s for s in d.ctl_json("sa")["sas"].values()}
    assert sas[0x5002]["packets"] == 4  # the SA was used
    pid = daemon_pid(d)
    assert_found(pid, {"encryption key": enc, "integrity key": auth})
    # reload without the SA (and its policy)
    cfg["sas"], cfg["policies"] = cfg["sas"][:1], cfg["policies"][:1]
    import yaml
    with open(d.path, "w") as f:
        yaml.safe_dump(dict(cfg, eal=d.cfg["eal"], pfkey=d.cfg["pfkey"]), f, sort_keys=False)
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for(lambda: "reload: 1 SA(s)" in d.read_log(), timeout=10, what="the reload")
    assert [int(s["spi"], 16) for s in d.ctl_json("sa")["sas"].values()] == [0x5001]
    # nor the keys as the file writes them (libyaml's scalars and buffers)
    assert_gone(pid, {"encryption key": enc, "integrity key": auth,
                      "encryption key in hex": enc.hex().encode(),
                      "integrity key in hex": auth.hex().encode()})
    # the SA that stays keeps its keys (the wipe took only the deleted one's)
    assert_found(pid, {"kept encryption key": keep_enc})


def pfkey_add(spi, enc, auth, reqid):
    return K.msg(K.ADD, K.ESP, [K.sa(spi, auth=K.AALG_SHA256, enc=K.EALG_AESCBC, replay=0),
                                K.sa2(K.MODE_TUNNEL, reqid), K.address(K.SRC, WAN4),
                                K.address(K.DST, PEER), K.key(K.KEY_AUTH, auth),
                                K.key(K.KEY_ENC, enc)])


def sa_id(spi):
    return [K.sa(spi), K.address(K.SRC, WAN4), K.address(K.DST, PEER)]


def test_pfkey_delete_wipes_the_keys_of_the_sa(tmp_path, stop):
    enc, auth = keys()
    keep_enc, keep_auth = keys()
    cfg = base_config(str(tmp_path))
    d = run(tmp_path, cfg, [])
    stop(d)
    c = K.Client(d.cfg["pfkey"]["socket"])
    try:
        assert c.request(pfkey_add(0x6001, keep_enc, keep_auth, 61)).errno == 0
        assert c.request(pfkey_add(0x6002, enc, auth, 62)).errno == 0
        # GET and DUMP replies carry the keys (as Linux's do): their buffers too must go
        got = c.request(K.msg(K.GET, K.ESP, sa_id(0x6002)))
        assert got.errno == 0 and got.ext[K.KEY_ENC].key == enc
        c.send(K.msg(K.DUMP, K.ESP, seq=77, pid=c.pid))
        dumped = [c.recv() for _ in range(2)]
        assert {m.ext[K.SA].spi for m in dumped} == {0x6001, 0x6002}
        time.sleep(1.5)  # the state file is written (once a second) with the keys
        pid = daemon_pid(d)
        assert_found(pid, {"encryption key": enc, "integrity key": auth})
        assert c.request(K.msg(K.DELETE, K.ESP, sa_id(0x6002))).errno == 0
        time.sleep(1.5)  # ... and again without them
        assert c.request(K.msg(K.GET, K.ESP, sa_id(0x6002))).errno == K.ERRNO.ESRCH
        assert_gone(pid, {"encryption key": enc, "integrity key": auth})
        assert_found(pid, {"kept encryption key": keep_enc})
    finally:
        c.close()


# --- the native engine's key schedule (src/dataplane/imb.c) ---------------------------------

def _aes_sbox():
    """The AES S-box, generated (FIPS-197 §5.1.1: multiplicative inverse in GF(2^8), then the
    affine transformation), so that no table is transcribed."""
    box = [0] * 256
    p = q = 1
    while True:
        p ^= ((p << 1) & 0xFF) ^ (0x1B if p & 0x80 else 0)  # p * 3
        q ^= q << 1
        q ^= q << 2
        q ^= q << 4
        q &= 0xFF
        if q & 0x80:
            q ^= 0x09  # q / 3
        rot = [((q << k) | (q >> (8 - k))) & 0xFF for k in range(1, 5)]
        box[p] = q ^ rot[0] ^ rot[1] ^ rot[2] ^ rot[3] ^ 0x63
        if p == 1:
            break
    box[0] = 0x63
    return box


def aes_last_round_key(key):
    """The last round key of AES's key expansion (FIPS-197 §5.2): what a key schedule holds
    and the raw key does not."""
    sbox, nk = _aes_sbox(), len(key) // 4
    rounds = nk + 6
    w = [list(key[4 * i:4 * i + 4]) for i in range(nk)]
    rcon = 1
    for i in range(nk, 4 * (rounds + 1)):
        t = list(w[i - 1])
        if i % nk == 0:
            t = [sbox[b] for b in t[1:] + t[:1]]
            t[0] ^= rcon
            rcon = ((rcon << 1) ^ (0x1B if rcon & 0x80 else 0)) & 0xFF
        elif nk > 6 and i % nk == 4:
            t = [sbox[b] for b in t]
        w.append([a ^ b for a, b in zip(w[i - nk], t)])
    return bytes(sum(w[-4:], []))


def test_aes_key_expansion_reproduces_fips197_appendix_a():
    """FIPS-197 Appendix A.1 and A.3: the last round keys of the example keys."""
    assert aes_last_round_key(bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")) == \
        bytes.fromhex("d014f9a8c9ee2589e13f0cc8b6630ca6")
    k256 = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
    assert aes_last_round_key(k256) == bytes.fromhex("fe4890d1e6188d0b046df344706c631e")


def gcm_sa_cfg(spi, key):
    return {"spi": spi, "direction": "out", "src": WAN4, "dst": PEER, "reqid": spi,
            "encryption": {"algorithm": f"aes-gcm-{(len(key) - 4) * 8}", "key": "0x" + key.hex()}}


@pytest.mark.parametrize("bits", [128, 256])
def test_reload_wipes_the_native_key_schedule_of_a_deleted_sa(tmp_path, stop, bits):
    """engine: native: the SA's AES-GCM key schedule (intel-ipsec-mb's expanded keys, in
    hugepage memory) is found while the SA lives -- its last round key, which only a key
    schedule holds -- and is gone with the key itself once a reload deleted the SA."""
    def gcm_key():
        while True:
            k = os.urandom(bits // 8 + 4)  # key and salt (RFC 4106 §8.1)
            if len(set(k)) > 14:
                return k
    key, keep = gcm_key(), gcm_key()
    cfg = base_config(str(tmp_path), path="native")
    cfg["sas"] = [gcm_sa_cfg(0x5101, keep), gcm_sa_cfg(0x5102, key)]
    cfg["policies"] = [policy(0x5101, "10.1.0.0/24"), policy(0x5102, "10.2.0.0/24")]
    d = run(tmp_path, cfg, traffic(["10.1.0", "10.2.0"]))
    stop(d)
    sas = {int(s["spi"], 16): s for s in d.ctl_json("sa")["sas"].values()}
    assert sas[0x5102]["packets"] == 4
    assert (sas[0x5102]["device"], sas[0x5102]["crypto"]) == ("intel-ipsec-mb", "native")
    pid = daemon_pid(d)
    schedule = aes_last_round_key(key[:-4])
    assert_found(pid, {"key": key[:-4], "key schedule": schedule})
    cfg["sas"], cfg["policies"] = cfg["sas"][:1], cfg["policies"][:1]
    import yaml
    with open(d.path, "w") as f:
        yaml.safe_dump(dict(cfg, eal=d.cfg["eal"], pfkey=d.cfg["pfkey"]), f, sort_keys=False)
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for(lambda: "reload: 1 SA(s)" in d.read_log(), timeout=10, what="the reload")
    assert_gone(pid, {"key": key[:-4], "key schedule": schedule, "salt and key": key,
                      "key in hex": key.hex().encode()})
    assert_found(pid, {"kept key schedule": aes_last_round_key(keep[:-4])})


# --- AH's HMAC states on the native engine (src/dataplane/imb.c) --------------------------------

SHA256_K = [int(x, 16) for x in """
    428a2f98 71374491 b5c0fbcf e9b5dba5 3956c25b 59f111f1 923f82a4 ab1c5ed5 d807aa98 12835b01
    243185be 550c7dc3 72be5d74 80deb1fe 9bdc06a7 c19bf174 e49b69c1 efbe4786 0fc19dc6 240ca1cc
    2de92c6f 4a7484aa 5cb0a9dc 76f988da 983e5152 a831c66d b00327c8 bf597fc7 c6e00bf3 d5a79147
    06ca6351 14292967 27b70a85 2e1b2138 4d2c6dfc 53380d13 650a7354 766a0abb 81c2c92e 92722c85
    a2bfe8a1 a81a664b c24b8b70 c76c51a3 d192e819 d6990624 f40e3585 106aa070 19a4c116 1e376c08
    2748774c 34b0bcb5 391c0cb3 4ed8aa4a 5b9cca4f 682e6ff3 748f82ee 78a5636f 84c87814 8cc70208
    90befffa a4506ceb bef9a3f7 c67178f2""".split()]
SHA256_H0 = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
             0x5be0cd19]


def sha256_one_block(block):
    """SHA-256's state after one 64-byte block from the initial value (FIPS 180-4 §6.2.2, no
    padding): what an HMAC implementation keeps of key ^ ipad and key ^ opad (RFC 2104 §4)."""
    def rotr(x, n):
        return ((x >> n) | (x << (32 - n))) & 0xFFFFFFFF
    w = list(struct.unpack(">16L", block))
    for t in range(16, 64):
        s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
        s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
        w.append((w[t - 16] + s0 + w[t - 7] + s1) & 0xFFFFFFFF)
    a, b, c, d, e, f, g, h = SHA256_H0
    for t in range(64):
        t1 = (h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + SHA256_K[t]
              + w[t]) & 0xFFFFFFFF
        t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) & 0xFFFFFFFF
        a, b, c, d, e, f, g, h = (t1 + t2) & 0xFFFFFFFF, a, b, c, (d + t1) & 0xFFFFFFFF, e, f, g
    return [(x + y) & 0xFFFFFFFF for x, y in zip(SHA256_H0, (a, b, c, d, e, f, g, h))]


def test_sha256_one_block_continues_to_the_fips180_digest():
    """The one-block state is SHA-256's: padding "abc" (FIPS 180-4 §5.1.1) into one block,
    the state is the digest of FIPS 180-2 Appendix B.1."""
    block = b"abc" + b"\x80" + bytes(52) + struct.pack(">Q", 24)
    assert struct.pack(">8L", *sha256_one_block(block)) == bytes.fromhex(
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def hmac_states(key):
    """SHA-256's states after key ^ ipad and key ^ opad, as intel-ipsec-mb's one-block hash
    stores them for its jobs (and crypto_aesni_mb in its session): 32-bit words in the
    CPU's order."""
    pad = key.ljust(64, b"\0")
    return [struct.pack("<8L", *sha256_one_block(bytes(b ^ p for b in pad)))
            for p in (0x36, 0x5C)]


def ah_sa_cfg(spi, key):
    return {"spi": spi, "proto": "ah", "direction": "out", "mode": "tunnel", "src": WAN4,
            "dst": PEER, "reqid": spi,
            "integrity": {"algorithm": "hmac-sha2-256-128", "key": "0x" + key.hex()}}


def ah_policy(spi, net):
    p = policy(spi, net)
    p["ipsec"][0]["proto"] = "ah"
    return p


@pytest.mark.parametrize("path", ["native", "cpu"])
def test_reload_wipes_the_hmac_states_of_a_deleted_ah_sa(tmp_path, stop, path):
    """An AH SA (HMAC-SHA2-256-128): its key and the HMAC's precomputed inner and outer
    states (the native engine's, or crypto_aesni_mb's session's: either lets one forge
    ICVs) are found while the SA lives and are gone once a reload deleted it."""
    _, key = keys()
    _, keep = keys()
    cfg = base_config(str(tmp_path), path=path)
    cfg["sas"] = [ah_sa_cfg(0x5201, keep), ah_sa_cfg(0x5202, key)]
    cfg["policies"] = [ah_policy(0x5201, "10.1.0.0/24"), ah_policy(0x5202, "10.2.0.0/24")]
    d = run(tmp_path, cfg, traffic(["10.1.0", "10.2.0"]))
    stop(d)
    sas = {int(s["spi"], 16): s for s in d.ctl_json("sa")["sas"].values()}
    assert sas[0x5202]["packets"] == 4
    assert sas[0x5202]["crypto"] == path
    pid = daemon_pid(d)
    inner, outer = hmac_states(key)
    assert_found(pid, {"key": key, "inner state": inner, "outer state": outer})
    cfg["sas"], cfg["policies"] = cfg["sas"][:1], cfg["policies"][:1]
    import yaml
    with open(d.path, "w") as f:
        yaml.safe_dump(dict(cfg, eal=d.cfg["eal"], pfkey=d.cfg["pfkey"]), f, sort_keys=False)
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for(lambda: "reload: 1 SA(s)" in d.read_log(), timeout=10, what="the reload")
    assert_gone(pid, {"key": key, "inner state": inner, "outer state": outer,
                      "key in hex": key.hex().encode()})
    assert_found(pid, {"kept inner state": hmac_states(keep)[0]})
