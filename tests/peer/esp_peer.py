#!/usr/bin/python3
"""esp_peer: an independent IPsec (ESP and AH) security gateway built on scapy.

It is a test peer for dpsecd and shares no code with it: the ESP and AH
transforms are scapy's ``scapy.layers.ipsec.SecurityAssociation`` (python3-scapy
2.5, on top of python3-cryptography).  The peer adds what scapy leaves out:
its own layer 2 on the outside link, SA lookup by SPI, anti-replay windows,
ESN high-order bit inference and ESN-aware HMAC, RFC 3948 UDP encapsulation
rules, AES-GMAC (RFC 4543), outer fragmentation and reassembly, and statistics.

One process, run inside a network namespace (as root):

  outside  a (veth) interface driven with an AF_PACKET socket.  The peer does
           its own ARP / IPv6 neighbour discovery and builds Ethernet frames.
           The kernel is kept off the interface: no address on it, IPv6
           disabled, arp_ignore=8, rp_filter=1, forwarding=0 (see isolate).
  inside   a TUN device (IFF_TUN | IFF_NO_PI).  The namespace's kernel routes
           the protected prefixes into it; the peer encrypts what it reads and
           writes decrypted packets back, which the kernel then delivers or
           forwards (ip_forward=1) like any gateway.

Usage (see tests/peer/README.md for the configuration format):

  ip netns exec NS /usr/bin/python3 tests/peer/esp_peer.py -c peer.yaml \
      [--stats-file F] [--ready-file F] [--log-level debug]
  /usr/bin/python3 tests/peer/esp_peer.py --check -c peer.yaml
  /usr/bin/python3 tests/peer/esp_peer.py --algorithms

Signals: SIGUSR1 writes the statistics file, SIGTERM/SIGINT stop cleanly
(statistics are written once more on the way out).
"""
import argparse
import collections
import fcntl
import hmac as _hmac
import ipaddress
import json
import logging
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time

import yaml

from scapy.base_classes import Gen
from scapy.config import conf
from scapy.packet import Packet
from scapy.volatile import VolatileValue
from scapy.compat import raw
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import (AH, AUTH_ALGOS, CRYPT_ALGOS, ESP, AuthAlgo,
                                CryptAlgo, IPSecIntegrityError,
                                SecurityAssociation, _ESPPlain)
from scapy.layers.inet import UDP

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError:  # pragma: no cover - python3-cryptography is a scapy dependency here
    AESGCM = None

log = logging.getLogger("esp_peer")

M32 = 0xFFFFFFFF

# --------------------------------------------------------------------------
# scapy glue
# --------------------------------------------------------------------------


class IPRaw(IP):
    """IPv4 that never dissects its payload: the peer hands scapy inner packets
    as opaque bytes (dissecting TCP three times per packet costs more than the
    cryptography).  Everything ESP does with the packet is still scapy's."""
    name = "IP"

    def guess_payload_class(self, payload):
        return conf.raw_layer


class IP6Raw(IPv6):
    name = "IPv6"

    def guess_payload_class(self, payload):
        return conf.raw_layer


class GmacAlgo(CryptAlgo):
    """ENCR_NULL_AUTH_AES_GMAC (RFC 4543), which scapy 2.5 lacks.

    The payload stays in clear; the 16-byte ICV is the GCM tag over
    AAD = SPI || [seq_hi ||] seq || IV || payload || padding || pad length ||
    next header, with an empty plaintext; nonce = salt || IV."""

    def __init__(self):
        super().__init__("AES-GMAC", cipher=AESGCM, mode=None, block_size=1, iv_size=8,
                         key_size=(16, 24, 32), icv_size=16, salt_size=4)

    @staticmethod
    def _aad(esp, esn_en, esn):
        if esn_en:
            return struct.pack("!LLL", esp.spi, esn, esp.seq)
        return struct.pack("!LL", esp.spi, esp.seq)

    def encrypt(self, sa, esp, key, icv_size=None, esn_en=False, esn=0):
        data = esp.data_for_encryption()
        tag = AESGCM(key).encrypt(sa.crypt_salt + esp.iv, b"",
                                  self._aad(esp, esn_en, esn) + esp.iv + data)
        return ESP(spi=esp.spi, seq=esp.seq, data=esp.iv + data + tag)

    def decrypt(self, sa, esp, key, icv_size=None, esn_en=False, esn=0):
        icv_size = icv_size or 16
        iv = esp.data[:self.iv_size]
        data = esp.data[self.iv_size:len(esp.data) - icv_size]
        icv = esp.data[len(esp.data) - icv_size:]
        try:
            AESGCM(key).decrypt(sa.crypt_salt + iv, icv, self._aad(esp, esn_en, esn) + iv + data)
        except InvalidTag as err:
            raise IPSecIntegrityError(err)
        padlen, nh = data[-2], data[-1]
        return _ESPPlain(spi=esp.spi, seq=esp.seq, iv=iv, data=data[:len(data) - padlen - 2],
                         padding=data[len(data) - padlen - 2:len(data) - 2], padlen=padlen, nh=nh,
                         icv=icv)


if AESGCM is not None and "AES-GMAC" not in CRYPT_ALGOS:
    CRYPT_ALGOS["AES-GMAC"] = GmacAlgo()


class EsnHmac(AuthAlgo):
    """HMAC for an ESN SA.  scapy 2.5 ignores ESN in ESP integrity (it only adds
    seq_hi for AEAD AAD and for AH); RFC 4303 2.2.1 puts the high-order 32 bits
    after the trailer in the ICV input, without sending them.  Reads seq_hi
    from the scapy SA's ``esn`` attribute, which the peer sets per packet."""

    def __init__(self, base, owner):
        super().__init__(base.name + "+ESN", mac=base.mac, digestmod=base.digestmod,
                         icv_size=base.icv_size, key_size=base.key_size)
        self.owner = owner

    def _icv(self, key, esp_bytes):
        mac = self.new_mac(key)
        mac.update(esp_bytes + struct.pack("!L", self.owner.esn & M32))
        return mac.finalize()[:self.icv_size]

    def sign(self, pkt, key, esn_en=False, esn=0):
        pkt[ESP].data += self._icv(key, raw(pkt[ESP]))
        return pkt

    def verify(self, pkt, key, esn_en=False, esn=0):
        icv = pkt.data[len(pkt.data) - self.icv_size:]
        clone = pkt.copy()
        clone.data = clone.data[:len(clone.data) - self.icv_size]
        if not _hmac.compare_digest(icv, self._icv(key, raw(clone))):
            raise IPSecIntegrityError("ICV mismatch (ESN)")


class _RecordingCrypt:
    """Wraps a scapy CryptAlgo to keep the last decrypted _ESPPlain, so the peer
    can check the ESP trailer (pad length, next header) scapy throws away."""

    def __init__(self, algo):
        self._algo = algo
        self.last = None

    def __getattr__(self, name):
        return getattr(self._algo, name)

    def decrypt(self, *a, **kw):
        self.last = self._algo.decrypt(*a, **kw)
        return self.last


# --------------------------------------------------------------------------
# Faster scapy builds (same bytes)
# --------------------------------------------------------------------------

_ORIG_DO_BUILD = Packet.do_build


def _fast_do_build(self):
    """Packet.do_build without the detour through Packet.__iter__ (which clones
    the packet field by field to expand ranges and random values) when the
    packet has none: scapy does that for every packet it did not dissect, and it
    is a third of the cost of SecurityAssociation.encrypt.  The bytes are the
    same (test_fast_build_same_bytes checks)."""
    if not self.explicit:
        for d in (self.fields, self.default_fields, self.overloaded_fields):
            for v in d.values():
                if isinstance(v, (Gen, VolatileValue)):
                    return _ORIG_DO_BUILD(self)
    pkt = self.self_build()
    for t in self.post_transforms:
        pkt = t(pkt)
    pay = self.do_build_payload()
    if self.raw_packet_cache is None:
        return self.post_build(pkt, pay)
    return pkt + pay


def fast_build(enable=True):
    Packet.do_build = _fast_do_build if enable else _ORIG_DO_BUILD


# Algorithm names accepted in the configuration -> (scapy name, key sizes, salt bytes)
ENC_ALGS = {
    "null": ("NULL", (0,), 0),
    "aes-cbc": ("AES-CBC", (16, 24, 32), 0),
    "aes-ctr": ("AES-CTR", (16, 24, 32), 4),
    "aes-gcm": ("AES-GCM", (16, 24, 32), 4),
    "aes-gmac": ("AES-GMAC", (16, 24, 32), 4),
    "chacha20-poly1305": ("CHACHA20-POLY1305", (32,), 4),
}
ENC_ALIASES = {
    "aes-gcm-16": "aes-gcm", "aes-gcm16": "aes-gcm", "rfc4106": "aes-gcm", "aes_gcm": "aes-gcm",
    "aes_cbc": "aes-cbc", "aes_ctr": "aes-ctr", "rfc3686": "aes-ctr", "aes_gmac": "aes-gmac",
    "null-aes-gmac": "aes-gmac", "rfc4543": "aes-gmac", "chacha20": "chacha20-poly1305",
    "chacha20_poly1305": "chacha20-poly1305", "rfc7634": "chacha20-poly1305", "none": "null",
}
AEAD = {"aes-gcm", "aes-gmac", "chacha20-poly1305"}

# -> (scapy name, key bytes, ICV bytes)
AUTH_ALGS = {
    "none": (None, 0, 0),
    "hmac-sha1-96": ("HMAC-SHA1-96", 20, 12),
    "hmac-sha256-128": ("SHA2-256-128", 32, 16),
    "hmac-sha384-192": ("SHA2-384-192", 48, 24),
    "hmac-sha512-256": ("SHA2-512-256", 64, 32),
}
AUTH_ALIASES = {
    "null": "none", "hmac-sha1": "hmac-sha1-96", "sha1": "hmac-sha1-96",
    "hmac-sha2-256-128": "hmac-sha256-128", "hmac-sha256": "hmac-sha256-128",
    "sha256": "hmac-sha256-128", "sha2-256-128": "hmac-sha256-128",
    "hmac-sha2-384-192": "hmac-sha384-192", "hmac-sha384": "hmac-sha384-192",
    "sha384": "hmac-sha384-192", "sha2-384-192": "hmac-sha384-192",
    "hmac-sha2-512-256": "hmac-sha512-256", "hmac-sha512": "hmac-sha512-256",
    "sha512": "hmac-sha512-256", "sha2-512-256": "hmac-sha512-256",
}


def algorithms_report():
    """What this scapy can do, for --algorithms and the README."""
    out = {"enc": {}, "auth": {}}
    for name, (sname, sizes, salt) in ENC_ALGS.items():
        algo = CRYPT_ALGOS.get(sname)
        out["enc"][name] = {
            "scapy": sname, "available": algo is not None,
            "implemented_by": "esp_peer" if isinstance(algo, GmacAlgo) else "scapy",
            "key_bytes": list(sizes), "salt_bytes": salt,
            "iv_bytes": getattr(algo, "iv_size", None),
            "icv_bytes": getattr(algo, "icv_size", None) if name in AEAD else None,
        }
    for name, (sname, klen, icv) in AUTH_ALGS.items():
        out["auth"][name] = {"scapy": sname, "available": sname is None or sname in AUTH_ALGOS,
                             "key_bytes": klen, "icv_bytes": icv}
    return out


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


class ConfigError(Exception):
    pass


def _yaml_loader():
    """PyYAML reads 0x... as an integer, which would lose a key's leading
    zeros: only plain decimal digits are integers here."""
    class Loader(yaml.SafeLoader):
        pass
    Loader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:int"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"),
                                 list("-+0123456789"))
    return Loader


def load_config_file(path):
    with open(path) as f:
        text = f.read()
    return yaml.load(text, Loader=_yaml_loader())  # JSON is YAML too


def _keys(where, d, allowed, required=()):
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a mapping")
    for k in d:
        if k not in allowed:
            raise ConfigError(f"{where}.{k}: unknown key (expected one of: {', '.join(allowed)})")
    for k in required:
        if k not in d:
            raise ConfigError(f"{where}: missing required key {k!r}")


def _int(where, v, lo=0, hi=None):
    if isinstance(v, bool):
        raise ConfigError(f"{where}: expected an integer")
    if isinstance(v, str):
        try:
            v = int(v, 0)
        except ValueError:
            raise ConfigError(f"{where}: {v!r} is not an integer")
    if not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        raise ConfigError(f"{where}: {v!r} out of range {lo}..{hi}")
    return v


def _bool(where, v):
    if not isinstance(v, bool):
        raise ConfigError(f"{where}: expected true/false")
    return v


def _addr(where, v):
    try:
        return ipaddress.ip_address(str(v).split("/")[0])
    except ValueError:
        raise ConfigError(f"{where}: {v!r} is not an IP address")


def _prefix(where, v):
    try:
        return ipaddress.ip_network(str(v), strict=True)
    except ValueError as e:
        raise ConfigError(f"{where}: {v!r}: {e}")


def _mac(where, v):
    s = str(v)
    if not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", s):
        raise ConfigError(f"{where}: {v!r} is not a MAC address")
    return bytes.fromhex(s.replace(":", ""))


def parse_key(where, v):
    """"0x" + hex (dpsecd's format), salt appended for GCM/CTR/GMAC/ChaCha."""
    if v is None or v == "":
        return b""
    if isinstance(v, int) and not isinstance(v, bool):
        raise ConfigError(f"{where}: quote the key (\"0x...\") so its length is kept")
    s = str(v).strip()
    if s.lower().startswith("0x"):
        s = s[2:]
    s = s.replace(":", "").replace(" ", "")
    if len(s) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", s):
        raise ConfigError(f"{where}: {v!r} is not an even number of hex digits")
    return bytes.fromhex(s)


def enc_name(where, v):
    n = str(v or "null").lower()
    n = ENC_ALIASES.get(n, n)
    if n not in ENC_ALGS:
        raise ConfigError(f"{where}: unknown encryption algorithm {v!r} (one of {', '.join(ENC_ALGS)})")
    return n


def auth_name(where, v):
    n = str(v or "none").lower()
    n = AUTH_ALIASES.get(n, n)
    if n not in AUTH_ALGS:
        raise ConfigError(f"{where}: unknown integrity algorithm {v!r} (one of {', '.join(AUTH_ALGS)})")
    return n


TOP_KEYS = ("name", "log_level", "stats_file", "ready_file", "outside", "inside", "sas")
OUTSIDE_KEYS = ("iface", "mac", "addresses", "remote", "remote_mac", "neighbours", "mtu", "isolate")
INSIDE_KEYS = ("tun", "mtu", "addresses", "routes", "auto_routes", "forwarding", "txqueuelen")
SA_KEYS = ("spi", "dir", "proto", "mode", "src", "dst", "enc_alg", "enc_key", "auth_alg", "auth_key",
           "udp_encap", "replay_window", "esn", "seq", "ttl", "df", "selectors", "name")


class Selector:
    __slots__ = ("remote", "local", "rlen", "llen", "family", "rnet", "rmask", "lnet", "lmask")

    def __init__(self, remote, local):
        self.remote, self.local = remote, local
        self.family = remote.version
        self.rlen, self.llen = remote.prefixlen, local.prefixlen
        self.rnet, self.rmask = int(remote.network_address), int(remote.netmask)
        self.lnet, self.lmask = int(local.network_address), int(local.netmask)

    def match(self, remote_int, local_int):
        return (remote_int & self.rmask) == self.rnet and (local_int & self.lmask) == self.lnet

    def __repr__(self):
        return f"{self.local}->{self.remote}"


def parse_selectors(where, v, family_hint=None):
    out = []
    for i, s in enumerate(v or []):
        w = f"{where}[{i}]"
        if isinstance(s, dict):
            _keys(w, s, ("remote", "local"), ("remote",))
            remote = _prefix(w + ".remote", s["remote"])
            local = _prefix(w + ".local", s.get("local", "0.0.0.0/0" if remote.version == 4 else "::/0"))
            if local.version != remote.version:
                raise ConfigError(f"{w}: local and remote of different families")
        else:
            remote = _prefix(w, s)
            local = ipaddress.ip_network("0.0.0.0/0" if remote.version == 4 else "::/0")
        out.append(Selector(remote, local))
    return out


def validate_config(cfg):
    """Check and normalise a configuration dict; raises ConfigError."""
    _keys("config", cfg, TOP_KEYS, ("outside", "inside", "sas"))
    o = cfg["outside"]
    _keys("outside", o, OUTSIDE_KEYS, ("iface", "addresses"))
    out = {"name": str(cfg.get("name", "esp_peer")), "log_level": str(cfg.get("log_level", "info")),
           "stats_file": cfg.get("stats_file"), "ready_file": cfg.get("ready_file")}
    addrs = o["addresses"]
    if isinstance(addrs, str):
        addrs = [addrs]
    outside = {
        "iface": str(o["iface"]),
        "mac": _mac("outside.mac", o["mac"]) if o.get("mac") else None,
        "addresses": [_addr(f"outside.addresses[{i}]", a) for i, a in enumerate(addrs)],
        "remote": [_addr(f"outside.remote[{i}]", a) for i, a in
                   enumerate([o["remote"]] if isinstance(o.get("remote"), str) else o.get("remote", []))],
        "remote_mac": _mac("outside.remote_mac", o["remote_mac"]) if o.get("remote_mac") else None,
        "neighbours": {},
        "mtu": _int("outside.mtu", o["mtu"], 68, 65535) if o.get("mtu") is not None else None,
        "isolate": _bool("outside.isolate", o.get("isolate", True)),
    }
    if not outside["addresses"]:
        raise ConfigError("outside.addresses: at least one address is needed")
    for a, m in (o.get("neighbours") or {}).items():
        outside["neighbours"][_addr(f"outside.neighbours.{a}", a)] = _mac(f"outside.neighbours.{a}", m)
    if outside["remote_mac"]:
        for a in outside["remote"]:
            outside["neighbours"].setdefault(a, outside["remote_mac"])
    out["outside"] = outside

    i = cfg["inside"]
    _keys("inside", i, INSIDE_KEYS, ("tun",))
    tun = str(i["tun"])
    if not 0 < len(tun) < 16:
        raise ConfigError("inside.tun: 1..15 characters")
    mtu = i.get("mtu", "auto")
    inside = {
        "tun": tun,
        "mtu": "auto" if mtu == "auto" else _int("inside.mtu", mtu, 68, 65535),
        "addresses": [],
        "routes": [_prefix(f"inside.routes[{k}]", r) for k, r in enumerate(i.get("routes") or [])],
        "auto_routes": _bool("inside.auto_routes", i.get("auto_routes", True)),
        "forwarding": _bool("inside.forwarding", i.get("forwarding", True)),
        "txqueuelen": _int("inside.txqueuelen", i.get("txqueuelen", 1000), 1, 100000),
    }
    for k, a in enumerate(i.get("addresses") or []):
        try:
            inside["addresses"].append(ipaddress.ip_interface(str(a)))
        except ValueError:
            raise ConfigError(f"inside.addresses[{k}]: {a!r} is not address/length")
    out["inside"] = inside

    sas = []
    if not isinstance(cfg["sas"], list) or not cfg["sas"]:
        raise ConfigError("sas: a non-empty list of SAs is needed")
    seen = set()
    for k, s in enumerate(cfg["sas"]):
        w = f"sas[{k}]"
        _keys(w, s, SA_KEYS, ("spi", "dir", "src", "dst"))
        sa = {"name": s.get("name")}
        sa["spi"] = _int(w + ".spi", s["spi"], 1, M32)
        if sa["spi"] < 256:
            raise ConfigError(f"{w}.spi: SPIs 1..255 are reserved (RFC 4303)")
        sa["dir"] = str(s["dir"]).lower()
        if sa["dir"] not in ("in", "out"):
            raise ConfigError(f"{w}.dir: 'in' or 'out'")
        if (sa["dir"], sa["spi"]) in seen:
            raise ConfigError(f"{w}.spi: duplicate {sa['dir']} SPI 0x{sa['spi']:08x}")
        seen.add((sa["dir"], sa["spi"]))
        sa["proto"] = str(s.get("proto", "esp")).lower()
        if sa["proto"] not in ("esp", "ah"):
            raise ConfigError(f"{w}.proto: 'esp' or 'ah'")
        sa["mode"] = str(s.get("mode", "tunnel")).lower()
        if sa["mode"] not in ("tunnel", "transport"):
            raise ConfigError(f"{w}.mode: 'tunnel' or 'transport'")
        sa["src"], sa["dst"] = _addr(w + ".src", s["src"]), _addr(w + ".dst", s["dst"])
        if sa["src"].version != sa["dst"].version:
            raise ConfigError(f"{w}: src and dst of different families")
        local = sa["src"] if sa["dir"] == "out" else sa["dst"]
        if local not in outside["addresses"]:
            raise ConfigError(f"{w}: {local} is not one of outside.addresses")
        sa["enc_alg"] = enc_name(w + ".enc_alg", s.get("enc_alg"))
        sa["auth_alg"] = auth_name(w + ".auth_alg", s.get("auth_alg"))
        sa["enc_key"] = parse_key(w + ".enc_key", s.get("enc_key"))
        sa["auth_key"] = parse_key(w + ".auth_key", s.get("auth_key"))
        sname, sizes, salt = ENC_ALGS[sa["enc_alg"]]
        if sname not in CRYPT_ALGOS:
            raise ConfigError(f"{w}.enc_alg: {sa['enc_alg']} is not available in this scapy")
        if len(sa["enc_key"]) - salt not in sizes:
            raise ConfigError(f"{w}.enc_key: {sa['enc_alg']} takes {' or '.join(str(z + salt) for z in sizes)}"
                              f" bytes (key{' + 4-byte salt' if salt else ''}), got {len(sa['enc_key'])}")
        asname, klen, _ = AUTH_ALGS[sa["auth_alg"]]
        if sa["enc_alg"] in AEAD and sa["auth_alg"] != "none":
            raise ConfigError(f"{w}.auth_alg: {sa['enc_alg']} is combined mode, auth_alg must be none")
        if sa["auth_alg"] != "none" and len(sa["auth_key"]) != klen:
            raise ConfigError(f"{w}.auth_key: {sa['auth_alg']} takes {klen} bytes, got {len(sa['auth_key'])}")
        if sa["auth_alg"] == "none" and sa["auth_key"]:
            raise ConfigError(f"{w}.auth_key: given without auth_alg")
        if sa["proto"] == "ah":
            if sa["enc_alg"] != "null" or sa["enc_key"]:
                raise ConfigError(f"{w}.enc_alg: AH does not encrypt (RFC 4302)")
            if sa["auth_alg"] == "none":
                raise ConfigError(f"{w}.auth_alg: AH needs an integrity algorithm")
            if s.get("udp_encap") not in (None, False):
                raise ConfigError(f"{w}.udp_encap: AH cannot be carried in UDP (RFC 3948 is ESP only)")
        ue = s.get("udp_encap")
        if ue in (None, False):
            sa["udp_encap"] = None
        else:
            if ue is True:
                ue = {}
            _keys(w + ".udp_encap", ue, ("sport", "dport"))
            sa["udp_encap"] = (_int(w + ".udp_encap.sport", ue.get("sport", 4500), 1, 65535),
                               _int(w + ".udp_encap.dport", ue.get("dport", 4500), 1, 65535))
        sa["replay_window"] = _int(w + ".replay_window", s.get("replay_window", 64), 0, 1 << 20)
        sa["esn"] = _bool(w + ".esn", s.get("esn", False))
        sa["seq"] = _int(w + ".seq", s.get("seq", 1), 0, (1 << 64) - 1)
        if not sa["esn"] and sa["seq"] > M32:
            raise ConfigError(f"{w}.seq: above 2^32-1 without esn")
        sa["ttl"] = _int(w + ".ttl", s.get("ttl", 64), 1, 255)
        sa["df"] = str(s.get("df", "copy")).lower()
        if sa["df"] not in ("copy", "set", "clear"):
            raise ConfigError(f"{w}.df: copy, set or clear")
        sa["selectors"] = parse_selectors(w + ".selectors", s.get("selectors"))
        if sa["mode"] == "transport":
            fam = sa["src"].version
            if not sa["selectors"]:
                remote = sa["dst"] if sa["dir"] == "out" else sa["src"]
                sa["selectors"] = [Selector(ipaddress.ip_network(remote), ipaddress.ip_network(local))]
            for sel in sa["selectors"]:
                if sel.family != fam:
                    raise ConfigError(f"{w}.selectors: transport mode carries only its own family")
        if sa["dir"] == "out" and not sa["selectors"]:
            raise ConfigError(f"{w}.selectors: an outbound SA needs at least one selector")
        sas.append(sa)
    out["sas"] = sas
    return out


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def csum(data):
    if len(data) & 1:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def l4_csum(v, src, dst, proto, seg):
    if v == 4:
        ph = src + dst + struct.pack("!BBH", 0, proto, len(seg))
    else:
        ph = src + dst + struct.pack("!LxxxB", len(seg), proto)
    return csum(ph + seg)


def mac_str(m):
    return ":".join(f"{b:02x}" for b in m)


def sysctl(key, value):
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(path, "w") as f:
            f.write(str(value))
        return True
    except OSError as e:
        log.warning("sysctl %s=%s: %s", key, value, e)
        return False


def run(cmd, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip() or r.stdout.strip()}")
    return r


V6_EXT = (0, 43, 60)  # hop-by-hop, routing, destination options


# --------------------------------------------------------------------------
# Anti-replay window (RFC 4303 3.4.3 and Appendix A2 for ESN)
# --------------------------------------------------------------------------


class ReplayWindow:
    def __init__(self, size, esn):
        self.size = size
        self.esn = esn
        self.top = 0      # highest authenticated sequence number (64-bit with ESN)
        self.bitmap = 0   # bit i: top - i was received
        self.mask = (1 << size) - 1 if size else 0

    def full_seq(self, seql):
        """The 64-bit sequence number a received 32-bit one stands for."""
        if not self.esn:
            return seql
        w = self.size or 64     # without a window, still infer over 64 packets
        tl, th = self.top & M32, self.top >> 32
        if tl >= w - 1:            # case A: window within one subspace
            hi = th if seql >= tl - w + 1 else th + 1
        else:                      # case B: window spans two subspaces
            hi = th - 1 if seql >= ((tl - w + 1) & M32) and th > 0 else th
        return (hi << 32) | seql

    def check(self, seq):
        """None if acceptable, else the reason to drop."""
        if seq == 0:
            return "zero"          # the first packet of an SA has sequence number 1
        if not self.size or seq > self.top:
            return None
        diff = self.top - seq
        if diff >= self.size:
            return "old"
        if (self.bitmap >> diff) & 1:
            return "dup"
        return None

    def update(self, seq):
        if seq > self.top:
            shift = seq - self.top
            self.bitmap = ((self.bitmap << shift) | 1) & self.mask if shift < self.size else 1
            self.top = seq
        elif self.size:
            self.bitmap |= 1 << (self.top - seq)


# --------------------------------------------------------------------------
# Security associations
# --------------------------------------------------------------------------


class SeqOverflow(Exception):
    pass


class DropPacket(Exception):
    def __init__(self, counter):
        super().__init__(counter)
        self.counter = counter


class PeerSA:
    def __init__(self, c):
        self.c = c
        self.spi, self.dir, self.mode = c["spi"], c["dir"], c["mode"]
        self.proto = c.get("proto", "esp")
        self.src, self.dst = c["src"], c["dst"]
        self.family = self.src.version
        self.src_b, self.dst_b = self.src.packed, self.dst.packed
        self.udp_encap = c["udp_encap"]
        self.esn = c["esn"]
        self.seq = c["seq"]
        self.ttl = c["ttl"]
        self.df = c["df"]
        self.selectors = c["selectors"]
        self.key = f"{self.dir}:0x{self.spi:08x}"
        self.enc_alg, self.auth_alg = c["enc_alg"], c["auth_alg"]
        self.replay = ReplayWindow(c["replay_window"], self.esn) if self.dir == "in" else None
        self.ip_id = int.from_bytes(os.urandom(2), "big")
        self.stats = collections.OrderedDict(
            spi=f"0x{self.spi:08x}", dir=self.dir, proto=self.proto, mode=self.mode, src=str(self.src),
            dst=str(self.dst),
            enc_alg=self.enc_alg, auth_alg=self.auth_alg, esn=self.esn,
            udp_encap=list(self.udp_encap) if self.udp_encap else None,
            packets=0, bytes=0, esp_bytes=0, auth_failures=0, replays=0, errors=0, seq=0)

        sname = ENC_ALGS[self.enc_alg][0]
        asname = AUTH_ALGS[self.auth_alg][0]
        th = None
        if self.mode == "tunnel":
            th = IPRaw(src=str(self.src), dst=str(self.dst), ttl=self.ttl) if self.family == 4 else \
                IP6Raw(src=str(self.src), dst=str(self.dst), hlim=self.ttl)
        if self.proto == "ah":
            self.ssa = SecurityAssociation(AH, spi=self.spi, seq_num=self.seq & M32, auth_algo=asname,
                                           auth_key=c["auth_key"], tunnel_header=th, esn_en=self.esn,
                                           esn=self.seq >> 32)
            self.crypt = None
            self.icv_len = AUTH_ALGS[self.auth_alg][2]
            # RFC 4302 2.2 / 3.3.3.2.1: the header is padded to 32 bits over IPv4, 64 over IPv6
            align = 4 if self.family == 4 else 8
            self.ah_len = -(-(12 + self.icv_len) // align) * align
            return
        nat_t = UDP(sport=self.udp_encap[0], dport=self.udp_encap[1]) if self.udp_encap else None
        self.ssa = SecurityAssociation(
            ESP, spi=self.spi, seq_num=self.seq & M32,
            crypt_algo=sname, crypt_key=c["enc_key"] or None,
            auth_algo=asname, auth_key=c["auth_key"] or None,
            tunnel_header=th, nat_t_header=nat_t, esn_en=self.esn, esn=self.seq >> 32)
        if self.esn and asname is not None:
            self.ssa.auth_algo = EsnHmac(AUTH_ALGOS[asname], self.ssa)
        self.crypt = _RecordingCrypt(self.ssa.crypt_algo)
        self.ssa.crypt_algo = self.crypt
        algo = self.crypt._algo
        self.iv_len = algo.iv_size
        self.block = max(algo.block_size, 4)
        self.icv_len = (algo.icv_size if sname in ("AES-GCM", "AES-GMAC", "CHACHA20-POLY1305") else 0) or \
            AUTH_ALGS[self.auth_alg][2]

    def overhead(self):
        """Worst-case bytes this SA adds to a packet (for the TUN MTU)."""
        if self.proto == "ah":
            o = self.ah_len
        else:
            o = 8 + self.iv_len + (self.block - 1) + 2 + self.icv_len
        if self.mode == "tunnel":
            o += 20 if self.family == 4 else 40
        if self.udp_encap:
            o += 8
        return o

    # ---- outbound ----------------------------------------------------

    def encapsulate(self, p, v):
        if self.seq > M32 and not self.esn:
            raise DropPacket("seq_overflow")
        if self.seq > (1 << 64) - 1:
            raise DropPacket("seq_overflow")
        s = self.ssa
        s.seq_num = self.seq & M32
        s.esn = self.seq >> 32
        if self.mode == "tunnel":
            if v == 4:
                tos = p[1]
                inner_df = bool(p[6] & 0x40)
                pkt = IPRaw(p)
            else:
                tos = ((p[0] & 0x0F) << 4) | (p[1] >> 4)
                inner_df = True   # IPv6 is never fragmented on the way
                pkt = IP6Raw(p)
            th = s.tunnel_header
            if self.family == 4:
                self.ip_id = (self.ip_id + 1) & 0xFFFF
                th.id = self.ip_id
                th.tos = tos      # DSCP and ECN copied (RFC 6040 normal mode)
                th.flags = 2 if (self.df == "set" or (self.df == "copy" and inner_df and v == 4)) else 0
            else:
                th.tc = tos
        else:
            if v != self.family:
                raise DropPacket("no_sa_out")
            if v == 4:
                pkt = IPRaw(p)
            else:
                pkt = IPv6(p) if p[6] in V6_EXT else IP6Raw(p)
        out = bytearray(raw(s.encrypt(pkt)))
        if self.udp_encap and self.proto == "esp":
            if self.family == 4:
                # scapy 2.5 bug: with IPv4 it builds the NAT-T header before the ESP is
                # attached and freezes UDP length at 8.  Checksum 0 is fine (RFC 3948 2.1).
                off = (out[0] & 0xF) * 4
                out[off + 4:off + 6] = struct.pack("!H", len(out) - off)
            else:
                # scapy leaves the UDP checksum 0; IPv6 needs one (RFC 8200 8.1)
                ck = l4_csum(6, bytes(out[8:24]), bytes(out[24:40]), 17, bytes(out[40:])) or 0xFFFF
                out[46:48] = struct.pack("!H", ck)
        st = self.stats
        st["seq"] = self.seq
        self.seq += 1
        st["packets"] += 1
        st["bytes"] += len(p)
        st["esp_bytes"] += len(out)
        return bytes(out)

    # ---- inbound -----------------------------------------------------

    def decapsulate(self, v, hdr, esp):
        """hdr: outer IP header bytes (IPv4 with options, IPv6 base header);
        esp: the ESP header and everything after it.  Returns the packet to
        write to the TUN, or raises DropPacket."""
        st = self.stats
        if len(esp) < 8 + self.iv_len + self.icv_len + 2:
            st["errors"] += 1
            raise DropPacket("malformed_esp")
        seql = int.from_bytes(esp[4:8], "big")
        seq = self.replay.full_seq(seql)
        why = self.replay.check(seq)
        if why:
            st["replays"] += 1
            raise DropPacket("replays")
        s = self.ssa
        s.esn = seq >> 32
        if v == 4:
            h = bytearray(hdr)
            h[9] = 50
            h[2:4] = struct.pack("!H", len(hdr) + len(esp))
            h[10:12] = b"\0\0"
            pkt = IPRaw(bytes(h)) / ESP(esp)
        else:
            h = bytearray(hdr[:40])
            h[6] = 50
            h[4:6] = struct.pack("!H", len(esp))
            pkt = IP6Raw(bytes(h)) / ESP(esp)
        self.crypt.last = None
        try:
            res = s.decrypt(pkt)
        except IPSecIntegrityError:
            st["auth_failures"] += 1
            raise DropPacket("auth_failures")
        except Exception as e:  # bad block length, garbage padding...
            log.debug("SA %s: decrypt failed: %r", self.key, e)
            st["errors"] += 1
            raise DropPacket("decrypt_errors")
        plain = self.crypt.last
        if plain is not None:
            clen = len(esp) - 8 - self.iv_len - self.icv_len
            if plain.padlen + 2 > clen or len(plain.data) + plain.padlen + 2 != clen:
                st["errors"] += 1
                raise DropPacket("bad_padding")
            nh = plain.nh
        else:
            nh = None
        self.replay.update(seq)    # only once the ICV has been verified
        st["seq"] = max(st["seq"], seq)
        if self.mode == "tunnel":
            out = self.tunnel_inner(v, hdr, nh, bytearray(raw(res)))
        else:
            out = raw(res)
        st["packets"] += 1
        st["bytes"] += len(out)
        st["esp_bytes"] += len(esp)
        return out

    def tunnel_inner(self, v, hdr, nh, inner):
        """The inner packet of a tunnel-mode SA, checked (next header, version,
        length, selectors), TFC padding trimmed, ECN decapsulated (RFC 6040)."""
        st = self.stats
        if nh == 59:
            raise DropPacket("dummy_packets")        # RFC 4303 TFC dummy packet
        if nh not in (4, 41) or not inner:
            st["errors"] += 1
            raise DropPacket("bad_inner")
        iv_ = inner[0] >> 4
        if (nh == 4 and iv_ != 4) or (nh == 41 and iv_ != 6):
            st["errors"] += 1
            raise DropPacket("bad_inner")
        if iv_ == 4:
            if len(inner) < 20:
                raise DropPacket("bad_inner")
            ilen = int.from_bytes(inner[2:4], "big")
        else:
            if len(inner) < 40:
                raise DropPacket("bad_inner")
            ilen = 40 + int.from_bytes(inner[4:6], "big")
        if ilen > len(inner):
            st["errors"] += 1
            raise DropPacket("bad_inner")
        del inner[ilen:]                             # TFC padding, if any
        # RFC 6040 decapsulation: CE on the outer marks an ECN-capable inner
        outer_ecn = (hdr[1] & 3) if v == 4 else ((hdr[1] >> 4) & 3)
        if outer_ecn == 3:
            if iv_ == 4 and inner[1] & 3 in (1, 2):
                inner[1] |= 3
                inner[10:12] = b"\0\0"
                inner[10:12] = struct.pack("!H", csum(bytes(inner[:(inner[0] & 0xF) * 4])))
            elif iv_ == 6 and (inner[1] >> 4) & 3 in (1, 2):
                inner[1] |= 0x30
        if self.selectors:
            if iv_ == 4:
                src, dst = inner[12:16], inner[16:20]
            else:
                src, dst = inner[8:24], inner[24:40]
            r, l = int.from_bytes(src, "big"), int.from_bytes(dst, "big")
            fam = 4 if iv_ == 4 else 6
            if not any(sel.family == fam and sel.match(r, l) for sel in self.selectors):
                raise DropPacket("policy_mismatch")
        return bytes(inner)

    def decapsulate_ah(self, v, hdr, ah, full=None):
        """AH (RFC 4302) received: hdr is the outer IP header (IPv4 with options;
        IPv6's 40 bytes), ah the AH header and everything after it; full, the
        whole IPv6 packet when extension headers precede AH (they are in the
        ICV).  scapy verifies the ICV (its zero_mutable_fields, its HMAC) and
        strips AH.  Returns the packet for the TUN, or raises DropPacket."""
        st = self.stats
        ahlen = (ah[1] + 2) * 4 if len(ah) >= 12 else 0
        if len(ah) < 12 or ahlen != self.ah_len or ahlen > len(ah):
            st["errors"] += 1
            raise DropPacket("malformed_ah")
        seq = self.replay.full_seq(int.from_bytes(ah[8:12], "big"))
        if self.replay.check(seq):
            st["replays"] += 1
            raise DropPacket("replays")
        s = self.ssa
        s.esn = seq >> 32
        if full is not None:
            pkt = IPv6(full)
            if not pkt.haslayer(AH):
                st["errors"] += 1
                raise DropPacket("malformed_ah")
        else:
            # the payload stays bytes: dissecting it would only cost time
            pkt = (IPRaw(hdr) if v == 4 else IP6Raw(hdr)) / AH(ah[:ahlen]) / conf.raw_layer(ah[ahlen:])
        try:
            res = s.decrypt(pkt)
        except IPSecIntegrityError:
            st["auth_failures"] += 1
            raise DropPacket("auth_failures")
        self.replay.update(seq)    # only once the ICV has been verified
        st["seq"] = max(st["seq"], seq)
        if self.mode == "tunnel":
            out = self.tunnel_inner(v, hdr, ah[0], bytearray(raw(res)))
        else:
            out = raw(res)
        st["packets"] += 1
        st["bytes"] += len(out)
        st["esp_bytes"] += len(ah)
        return out


# --------------------------------------------------------------------------
# Outer fragmentation / reassembly
# --------------------------------------------------------------------------


class Reassembler:
    TIMEOUT = 10.0
    MAX = 256

    def __init__(self):
        self.q = collections.OrderedDict()

    def expire(self, now):
        while self.q:
            k, e = next(iter(self.q.items()))
            if now - e["t"] < self.TIMEOUT and len(self.q) <= self.MAX:
                break
            self.q.popitem(last=False)

    def add(self, key, off, data, more, first_hdr):
        """Returns (header, payload) when complete."""
        e = self.q.get(key)
        if e is None:
            e = self.q[key] = {"t": time.monotonic(), "frags": {}, "end": None, "hdr": None}
        e["frags"][off] = data
        if off == 0:
            e["hdr"] = first_hdr
        if not more:
            e["end"] = off + len(data)
        if e["end"] is None or e["hdr"] is None:
            return None
        buf = bytearray()
        for o in sorted(e["frags"]):
            if o > len(buf):
                return None
            buf[o:o + len(e["frags"][o])] = e["frags"][o]
        if len(buf) < e["end"]:
            return None
        del self.q[key]
        return e["hdr"], bytes(buf[:e["end"]])


def fragment4(pkt, mtu):
    ihl = (pkt[0] & 0xF) * 4
    hdr, payload = pkt[:ihl], pkt[ihl:]
    step = (mtu - ihl) & ~7
    out = []
    for off in range(0, len(payload), step):
        chunk = payload[off:off + step]
        more = off + len(chunk) < len(payload)
        h = bytearray(hdr)
        h[2:4] = struct.pack("!H", ihl + len(chunk))
        h[6:8] = struct.pack("!H", (off >> 3) | (0x2000 if more else 0))
        h[10:12] = b"\0\0"
        h[10:12] = struct.pack("!H", csum(bytes(h)))
        out.append(bytes(h) + chunk)
    return out


def fragment6(pkt, mtu, ident):
    nh = pkt[6]
    payload = pkt[40:]
    step = (mtu - 48) & ~7
    out = []
    for off in range(0, len(payload), step):
        chunk = payload[off:off + step]
        more = off + len(chunk) < len(payload)
        h = bytearray(pkt[:40])
        h[6] = 44
        h[4:6] = struct.pack("!H", 8 + len(chunk))
        fh = struct.pack("!BBHL", nh, 0, off | (1 if more else 0), ident)
        out.append(bytes(h) + fh + chunk)
    return out


# --------------------------------------------------------------------------
# The gateway
# --------------------------------------------------------------------------

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
BCAST = b"\xff" * 6

GLOBAL_COUNTERS = (
    "frames_rx", "frames_tx", "tun_rx", "tun_tx", "esp_rx", "esp_tx", "ah_rx", "ah_tx", "malformed_ah",
    "auth_failures", "replays", "unknown_spi", "sa_addr_mismatch", "encap_mismatch",
    "non_esp_udp", "keepalives", "malformed_esp", "decrypt_errors", "bad_padding",
    "bad_inner", "dummy_packets", "policy_mismatch", "no_sa_out", "seq_overflow",
    "ip_bad", "ip_not_for_us", "udp_bad_csum", "udp6_zero_csum", "rx_other",
    "fragments_rx", "reassembled", "fragments_tx", "too_big",
    "arp_rx", "arp_tx", "nd_rx", "nd_tx", "neigh_drops", "tx_errors", "tun_write_errors",
    "internal_errors")


class Peer:
    def __init__(self, cfg, stats_file=None, ready_file=None):
        self.cfg = cfg
        self.name = cfg["name"]
        self.stats_file = stats_file or cfg.get("stats_file")
        self.ready_file = ready_file or cfg.get("ready_file")
        self.c = collections.OrderedDict((k, 0) for k in GLOBAL_COUNTERS)
        self.sas = [PeerSA(s) for s in cfg["sas"]]
        # inbound SAs by (protocol number, SPI): an AH and an ESP SA may share an SPI
        self.in_sas = {(51 if sa.proto == "ah" else 50, sa.spi): sa for sa in self.sas if sa.dir == "in"}
        # outbound policy: longest remote prefix first, then longest local prefix
        self.policy = {4: [], 6: []}
        for sa in self.sas:
            if sa.dir == "out":
                for sel in sa.selectors:
                    self.policy[sel.family].append((sel, sa))
        for fam in self.policy:
            self.policy[fam].sort(key=lambda e: (-e[0].rlen, -e[0].llen))
        o = cfg["outside"]
        self.iface = o["iface"]
        self.addrs = {a.packed for a in o["addresses"]}
        self.addr4 = [a for a in o["addresses"] if a.version == 4]
        self.addr6 = [a for a in o["addresses"] if a.version == 6]
        self.neigh = {a.packed: m for a, m in o["neighbours"].items()}
        self.static_neigh = set(self.neigh)
        self.pending = {}   # next hop -> {"q": deque, "t": last probe, "n": probes}
        self.encap_ports = {4500} | {sa.udp_encap[1] for sa in self.sas if sa.dir == "in" and sa.udp_encap}
        self.reasm = Reassembler()
        self.frag_id = int.from_bytes(os.urandom(4), "big")
        self.generation = 0
        self.started = time.time()
        self.stop_flag = False
        self.dump_flag = False
        self.sock = None
        self.tun_fd = None

    # ---- setup ---------------------------------------------------------

    def setup(self):
        o, i = self.cfg["outside"], self.cfg["inside"]
        ifc = self.iface
        if not os.path.exists(f"/sys/class/net/{ifc}"):
            raise RuntimeError(f"outside interface {ifc} does not exist in this namespace")
        if i["forwarding"]:
            sysctl("net.ipv4.ip_forward", 1)   # resets every per-device forwarding to 1
            sysctl("net.ipv6.conf.all.forwarding", 1)
        if o["isolate"]:
            # No address on the interface, and the kernel told to ignore it: it must
            # neither answer ARP nor reply to ESP with ICMP protocol-unreachable.
            sysctl(f"net.ipv6.conf.{ifc}.disable_ipv6", 1)
            sysctl(f"net.ipv4.conf.{ifc}.arp_ignore", 8)
            sysctl(f"net.ipv4.conf.{ifc}.rp_filter", 1)
            sysctl(f"net.ipv4.conf.{ifc}.forwarding", 0)
            sysctl(f"net.ipv4.conf.{ifc}.accept_local", 0)
            r = run(["ip", "-o", "addr", "show", "dev", ifc], check=False)
            if " inet " in r.stdout:
                log.warning("%s carries an IPv4 address: the kernel will see ESP too", ifc)
        run(["ip", "link", "set", ifc, "up"])
        self.mac = o["mac"] or bytes.fromhex(open(f"/sys/class/net/{ifc}/address").read().strip().replace(":", ""))
        self.mtu = o["mtu"] or int(open(f"/sys/class/net/{ifc}/mtu").read())
        self.ifindex = socket.if_nametoindex(ifc)

        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((ifc, ETH_P_ALL))
        try:
            s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)   # SO_RCVBUFFORCE
            s.setsockopt(socket.SOL_SOCKET, 32, 8 << 20)   # SO_SNDBUFFORCE
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        mreq = struct.pack("iHH8s", self.ifindex, PACKET_MR_PROMISC, 0, b"")
        s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        s.setblocking(False)
        self.sock = s

        tun = i["tun"]
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", tun.encode(), IFF_TUN | IFF_NO_PI))
        self.tun_fd = fd
        if i["mtu"] == "auto":
            worst = max([sa.overhead() for sa in self.sas if sa.dir == "out"] or [0])
            self.tun_mtu = self.mtu - worst
            if self.tun_mtu < 1280:
                log.warning("tun mtu %d is below 1280: the kernel turns IPv6 off on it", self.tun_mtu)
        else:
            self.tun_mtu = i["mtu"]
        run(["ip", "link", "set", tun, "mtu", str(self.tun_mtu), "txqueuelen", str(i["txqueuelen"]), "up"])
        sysctl(f"net.ipv6.conf.{tun}.accept_ra", 0)
        sysctl(f"net.ipv4.conf.{tun}.rp_filter", 0)
        addrs = list(i["addresses"])
        routes = [(r, None) for r in i["routes"]]
        if i["auto_routes"]:
            for sa in self.sas:
                if sa.mode == "transport":
                    local = sa.src if sa.dir == "out" else sa.dst
                    ifa = ipaddress.ip_interface(f"{local}/{local.max_prefixlen}")
                    if ifa not in addrs:
                        addrs.append(ifa)
                if sa.dir == "out":
                    for sel in sa.selectors:
                        src = sa.src if sa.mode == "transport" else None
                        if (sel.remote, src) not in routes:
                            routes.append((sel.remote, src))
        for a in addrs:
            extra = ["nodad"] if a.version == 6 else []
            run(["ip", "addr", "replace", str(a), "dev", tun] + extra)
        for r, src in routes:
            cmd = ["ip", f"-{r.version}", "route", "replace", str(r), "dev", tun]
            if src is not None:
                cmd += ["src", str(src)]
            run(cmd)
        self.tun_name = tun
        log.info("%s: outside %s (%s, mtu %d) addresses %s; tun %s mtu %d routes %s",
                 self.name, ifc, mac_str(self.mac), self.mtu, ", ".join(str(a) for a in o["addresses"]),
                 tun, self.tun_mtu, ", ".join(str(r) for r, _ in routes) or "-")
        for sa in self.sas:
            log.info("SA %s %s %s %s->%s %s/%s%s%s%s", sa.key, sa.proto, sa.mode, sa.src, sa.dst, sa.enc_alg,
                     sa.auth_alg, f" udp {sa.udp_encap[0]}->{sa.udp_encap[1]}" if sa.udp_encap else "",
                     " esn" if sa.esn else "", f" selectors {sa.selectors}" if sa.selectors else "")
        # resolve the remote gateways up front
        for a in set(self.cfg["outside"]["remote"]) | {sa.dst for sa in self.sas if sa.dir == "out"}:
            if a.packed not in self.neigh:
                self.pending.setdefault(a.packed, {"q": collections.deque(), "t": 0.0, "n": 0})
        self.neigh_timer(time.monotonic())

    def cleanup(self):
        for fd in (self.tun_fd,):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if self.sock is not None:
            self.sock.close()

    # ---- L2 ------------------------------------------------------------

    def send_frame(self, dmac, etype, payload):
        f = dmac + self.mac + etype + payload
        if len(f) < 60:
            f += b"\0" * (60 - len(f))
        try:
            self.sock.send(f)
            self.c["frames_tx"] += 1
        except OSError as e:
            self.c["tx_errors"] += 1
            log.debug("send: %s", e)

    def src_for(self, fam):
        lst = self.addr4 if fam == 4 else self.addr6
        return lst[0].packed if lst else None

    def probe(self, target):
        if len(target) == 4:
            src = self.src_for(4)
            if src is None:
                return
            arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + self.mac + src + b"\0" * 6 + target
            self.send_frame(BCAST, b"\x08\x06", arp)
            self.c["arp_tx"] += 1
        else:
            src = self.src_for(6)
            if src is None:
                return
            dst = bytes.fromhex("ff02" + "00" * 9 + "01ff") + target[13:]
            dmac = b"\x33\x33" + dst[12:]
            body = struct.pack("!BBHL", 135, 0, 0, 0) + target + b"\x01\x01" + self.mac
            self.send_icmp6(dmac, src, dst, body)

    def send_icmp6(self, dmac, src, dst, body):
        ck = l4_csum(6, src, dst, 58, body)
        body = body[:2] + struct.pack("!H", ck) + body[4:]
        ip6 = struct.pack("!LHBB", 6 << 28, len(body), 58, 255) + src + dst
        self.send_frame(dmac, b"\x86\xdd", ip6 + body)
        self.c["nd_tx"] += 1

    def learn(self, ip, mac):
        if ip in self.static_neigh or mac[0] & 1:
            return
        old = self.neigh.get(ip)
        self.neigh[ip] = mac
        if old != mac:
            log.info("neighbour %s is %s", ipaddress.ip_address(ip), mac_str(mac))
        pend = self.pending.pop(ip, None)
        if pend:
            for _, etype, pkt in pend["q"]:
                self.send_frame(mac, etype, pkt)

    def neigh_timer(self, now):
        """Probe unresolved next hops once a second; packets wait at most 3 s."""
        for ip, pend in list(self.pending.items()):
            q = pend["q"]
            while q and now - q[0][0] > 3.0:
                q.popleft()
                self.c["neigh_drops"] += 1
            if now - pend["t"] >= 1.0:
                pend["t"], pend["n"] = now, pend["n"] + 1
                self.probe(ip)

    def send_ip(self, pkt, nexthop, fam):
        etype = b"\x08\x00" if fam == 4 else b"\x86\xdd"
        if len(pkt) > self.mtu:
            if fam == 4:
                if pkt[6] & 0x40:
                    self.c["too_big"] += 1
                    return
                frags = fragment4(pkt, self.mtu)
            else:
                self.frag_id = (self.frag_id + 1) & M32
                frags = fragment6(pkt, self.mtu, self.frag_id)
            self.c["fragments_tx"] += len(frags)
        else:
            frags = (pkt,)
        mac = self.neigh.get(nexthop)
        if mac is None:
            now = time.monotonic()
            pend = self.pending.setdefault(nexthop, {"q": collections.deque(), "t": 0.0, "n": 0})
            for f in frags:
                if len(pend["q"]) >= 256:
                    self.c["neigh_drops"] += 1
                else:
                    pend["q"].append((now, etype, f))
            if now - pend["t"] >= 1.0:
                pend["t"], pend["n"] = now, pend["n"] + 1
                self.probe(nexthop)
            return
        for f in frags:
            self.send_frame(mac, etype, f)

    # ---- outside receive -------------------------------------------------

    def on_frame(self, f):
        self.c["frames_rx"] += 1
        if len(f) < 14:
            return
        d = f[0:6]
        if d != self.mac and not d[0] & 1:
            return
        et = f[12:14]
        if et == b"\x08\x00":
            self.on_ipv4(f[14:])
        elif et == b"\x86\xdd":
            self.on_ipv6(f[14:])
        elif et == b"\x08\x06":
            self.on_arp(f[14:])

    def on_arp(self, a):
        if len(a) < 28 or a[0:6] != b"\x00\x01\x08\x00\x06\x04":
            return
        self.c["arp_rx"] += 1
        op = int.from_bytes(a[6:8], "big")
        sha, spa, tpa = a[8:14], a[14:18], a[24:28]
        if spa != b"\0\0\0\0" and (spa in self.neigh or spa in self.pending or tpa in self.addrs):
            self.learn(spa, sha)
        if op == 1 and tpa in self.addrs:
            rep = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + self.mac + tpa + sha + spa
            self.send_frame(sha, b"\x08\x06", rep)
            self.c["arp_tx"] += 1

    def on_ipv4(self, p):
        if len(p) < 20 or p[0] >> 4 != 4:
            self.c["ip_bad"] += 1
            return
        ihl = (p[0] & 0xF) * 4
        tot = int.from_bytes(p[2:4], "big")
        if ihl < 20 or tot < ihl or tot > len(p) or csum(p[:ihl]) != 0:
            self.c["ip_bad"] += 1
            return
        p = p[:tot]
        if p[16:20] not in self.addrs:
            self.c["ip_not_for_us"] += 1
            return
        fo = int.from_bytes(p[6:8], "big")
        if fo & 0x3FFF:
            self.c["fragments_rx"] += 1
            r = self.reasm.add((4, p[12:20], p[4:6], p[9]), (fo & 0x1FFF) * 8, p[ihl:],
                               bool(fo & 0x2000), p[:ihl])
            if r is None:
                return
            self.c["reassembled"] += 1
            h, payload = r
            h = bytearray(h)
            h[2:4] = struct.pack("!H", len(h) + len(payload))
            h[6:8] = b"\0\0"
            h[10:12] = b"\0\0"
            h[10:12] = struct.pack("!H", csum(bytes(h)))
            p = bytes(h) + payload
        proto = p[9]
        if proto == 50:
            self.esp_in(4, p[:ihl], p[ihl:], None)
        elif proto == 51:
            self.ah_in(4, p[:ihl], p[ihl:], None)
        elif proto == 17:
            self.udp_in(4, p[:ihl], p[ihl:])
        else:
            self.c["rx_other"] += 1

    def on_ipv6(self, p):
        if len(p) < 40 or p[0] >> 4 != 6:
            self.c["ip_bad"] += 1
            return
        plen = int.from_bytes(p[4:6], "big")
        if 40 + plen > len(p):
            self.c["ip_bad"] += 1
            return
        p = p[:40 + plen]
        dst = p[24:40]
        nh, off = p[6], 40
        frag = None
        while nh in V6_EXT or nh == 44:
            if off + 8 > len(p):
                self.c["ip_bad"] += 1
                return
            if nh == 44:
                frag = (off, p[off], int.from_bytes(p[off + 2:off + 4], "big"), p[off + 4:off + 8])
                nh, off = p[off], off + 8
                break
            nh, off = p[off], off + (p[off + 1] + 1) * 8
        if nh == 58 and off + 4 <= len(p) and p[off] in (135, 136):
            self.on_nd(p, off)
            return
        if dst not in self.addrs:
            self.c["ip_not_for_us"] += 1
            return
        if frag is not None:
            self.c["fragments_rx"] += 1
            foff, fnh, fo, ident = frag
            hdr = bytearray(p[:40])
            hdr[6] = fnh
            r = self.reasm.add((6, p[8:40], ident), fo & ~7, p[foff + 8:], bool(fo & 1), bytes(hdr))
            if r is None:
                return
            self.c["reassembled"] += 1
            h, payload = r
            p = h[:4] + struct.pack("!H", len(payload)) + h[6:40] + payload
            nh, off = p[6], 40
            while nh in V6_EXT:
                nh, off = p[off], off + (p[off + 1] + 1) * 8
        if nh == 51:
            # the extension headers before AH are in its ICV: kept
            self.ah_in(6, p[:40], p[off:], p if off > 40 else None)
            return
        hdr = bytearray(p[:40])
        hdr[6] = nh
        hdr = bytes(hdr)
        if nh == 50:
            self.esp_in(6, hdr, p[off:], None)
        elif nh == 17:
            self.udp_in(6, hdr, p[off:])
        else:
            self.c["rx_other"] += 1

    def on_nd(self, p, off):
        self.c["nd_rx"] += 1
        icmp = p[off:]
        if len(icmp) < 24 or p[7] != 255:
            return
        target = icmp[8:24]
        src = p[8:24]
        lladdr = None
        o = 24
        while o + 8 <= len(icmp):
            t, ln = icmp[o], icmp[o + 1] * 8
            if ln == 0:
                return
            if t in (1, 2) and ln >= 8:
                lladdr = icmp[o + 2:o + 8]
            o += ln
        if icmp[0] == 135:      # neighbour solicitation
            if target not in self.addrs:
                return
            if lladdr and src != b"\0" * 16:
                self.learn(src, lladdr)
            if src == b"\0" * 16:    # DAD probe: answer to all nodes
                dst, dmac, flags = bytes.fromhex("ff020000000000000000000000000001"), b"\x33\x33\0\0\0\1", 0x20000000
            else:
                dst, dmac, flags = src, lladdr or self.neigh.get(src), 0x60000000
                if dmac is None:
                    return
            body = struct.pack("!BBHL", 136, 0, 0, flags) + target + b"\x02\x01" + self.mac
            self.send_icmp6(dmac, target, dst, body)
        else:                   # neighbour advertisement
            if lladdr and (target in self.pending or target in self.neigh):
                self.learn(target, lladdr)

    def udp_in(self, v, hdr, u):
        if len(u) < 8:
            self.c["ip_bad"] += 1
            return
        sport, dport, ulen, ck = struct.unpack("!HHHH", u[:8])
        if ulen < 8 or ulen > len(u):
            self.c["ip_bad"] += 1
            return
        u = u[:ulen]
        if dport not in self.encap_ports:
            self.c["rx_other"] += 1
            return
        src, dst = (hdr[12:16], hdr[16:20]) if v == 4 else (hdr[8:24], hdr[24:40])
        if ck:
            if l4_csum(v, src, dst, 17, u) != 0:
                self.c["udp_bad_csum"] += 1
                return
        elif v == 6:
            self.c["udp6_zero_csum"] += 1
        payload = u[8:]
        if payload == b"\xff":
            self.c["keepalives"] += 1
            return
        if len(payload) < 4 or payload[:4] == b"\0\0\0\0":
            self.c["non_esp_udp"] += 1       # IKE (non-ESP marker) or runt
            return
        self.esp_in(v, hdr, payload, (sport, dport))

    def esp_in(self, v, hdr, esp, encap):
        self.c["esp_rx"] += 1
        if len(esp) < 8:
            self.c["malformed_esp"] += 1
            return
        spi = int.from_bytes(esp[:4], "big")
        sa = self.in_sas.get((50, spi))
        if sa is None:
            self.c["unknown_spi"] += 1
            log.debug("unknown SPI 0x%08x", spi)
            return
        dst = hdr[16:20] if v == 4 else hdr[24:40]
        if sa.family != v or dst != sa.dst_b:
            self.c["sa_addr_mismatch"] += 1
            return
        if (encap is None) != (sa.udp_encap is None):
            self.c["encap_mismatch"] += 1
            return
        try:
            inner = sa.decapsulate(v, hdr, esp)
        except DropPacket as d:
            self.c[d.counter] += 1
            log.debug("SA %s: drop (%s)", sa.key, d.counter)
            return
        try:
            os.write(self.tun_fd, inner)
            self.c["tun_tx"] += 1
        except OSError as e:
            self.c["tun_write_errors"] += 1
            log.debug("tun write: %s", e)

    def ah_in(self, v, hdr, ah, full):
        self.c["ah_rx"] += 1
        if len(ah) < 12:
            self.c["malformed_ah"] += 1
            return
        spi = int.from_bytes(ah[4:8], "big")
        sa = self.in_sas.get((51, spi))
        if sa is None:
            self.c["unknown_spi"] += 1
            log.debug("unknown AH SPI 0x%08x", spi)
            return
        dst = hdr[16:20] if v == 4 else hdr[24:40]
        if sa.family != v or dst != sa.dst_b:
            self.c["sa_addr_mismatch"] += 1
            return
        try:
            inner = sa.decapsulate_ah(v, hdr, ah, full)
        except DropPacket as d:
            self.c[d.counter] += 1
            log.debug("SA %s: drop (%s)", sa.key, d.counter)
            return
        try:
            os.write(self.tun_fd, inner)
            self.c["tun_tx"] += 1
        except OSError as e:
            self.c["tun_write_errors"] += 1
            log.debug("tun write: %s", e)

    # ---- inside ------------------------------------------------------------

    def lookup_out(self, v, src, dst):
        r, l = int.from_bytes(dst, "big"), int.from_bytes(src, "big")
        for sel, sa in self.policy.get(v, ()):
            if sel.match(r, l):
                return sa
        return None

    def on_tun(self, p):
        self.c["tun_rx"] += 1
        if not p:
            return
        v = p[0] >> 4
        if v == 4 and len(p) >= 20:
            src, dst = p[12:16], p[16:20]
        elif v == 6 and len(p) >= 40:
            src, dst = p[8:24], p[24:40]
        else:
            self.c["ip_bad"] += 1
            return
        sa = self.lookup_out(v, src, dst)
        if sa is None:
            self.c["no_sa_out"] += 1
            return
        try:
            out = sa.encapsulate(p, v)
        except DropPacket as d:
            self.c[d.counter] += 1
            return
        self.c["ah_tx" if sa.proto == "ah" else "esp_tx"] += 1
        self.send_ip(out, sa.dst_b, sa.family)

    # ---- statistics ------------------------------------------------------------

    def snapshot(self):
        self.generation += 1
        return {
            "name": self.name, "pid": os.getpid(), "generation": self.generation,
            "time": time.time(), "uptime": time.time() - self.started,
            "counters": dict(self.c),
            "sas": {sa.key: dict(sa.stats) for sa in self.sas},
            "neighbours": {str(ipaddress.ip_address(k)): mac_str(v) for k, v in self.neigh.items()},
            "tun": {"name": self.cfg["inside"]["tun"], "mtu": getattr(self, "tun_mtu", None)},
            "outside": {"iface": self.iface, "mac": mac_str(self.mac) if getattr(self, "mac", None) else None,
                        "mtu": getattr(self, "mtu", None)},
        }

    def write_stats(self):
        if not self.stats_file:
            return
        tmp = f"{self.stats_file}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.snapshot(), f, indent=1)
        os.replace(tmp, self.stats_file)

    # ---- main loop ------------------------------------------------------------

    def serve(self):
        wr, ww = os.pipe()
        os.set_blocking(wr, False)
        os.set_blocking(ww, False)
        signal.set_wakeup_fd(ww)

        def on_term(signum, frame):
            self.stop_flag = True

        def on_usr1(signum, frame):
            self.dump_flag = True
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        signal.signal(signal.SIGUSR1, on_usr1)

        self.write_stats()
        if self.ready_file:
            tmp = self.ready_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(f"{os.getpid()}\n")
            os.replace(tmp, self.ready_file)
        print("ready", flush=True)
        log.info("ready")

        sfd, tfd = self.sock.fileno(), self.tun_fd
        rlist = [sfd, tfd, wr]
        last_timer = 0.0
        err_logged = 0
        while not self.stop_flag:
            try:
                ready, _, _ = select.select(rlist, [], [], 0.25)
            except InterruptedError:
                ready = []
            if wr in ready:
                try:
                    while os.read(wr, 512):
                        pass
                except BlockingIOError:
                    pass
            for fd in ready:
                if fd == wr:
                    continue
                for _ in range(64):
                    try:
                        if fd == sfd:
                            data, addr = self.sock.recvfrom(65535)
                            if addr[2] == PACKET_OUTGOING:
                                continue
                            self.on_frame(data)
                        else:
                            self.on_tun(os.read(tfd, 65535))
                    except (BlockingIOError, InterruptedError):
                        break
                    except Exception:
                        self.c["internal_errors"] += 1
                        if err_logged < 20:
                            err_logged += 1
                            log.exception("packet processing failed")
            now = time.monotonic()
            if now - last_timer >= 0.2:
                last_timer = now
                self.neigh_timer(now)
                self.reasm.expire(now)
            if self.dump_flag:
                self.dump_flag = False
                self.write_stats()
        log.info("stopping")
        self.write_stats()


def main(argv=None):
    ap = argparse.ArgumentParser(description="IPsec ESP test peer (scapy)")
    ap.add_argument("-c", "--config", help="YAML or JSON configuration file")
    ap.add_argument("--stats-file", help="where SIGUSR1 and exit write statistics (JSON)")
    ap.add_argument("--ready-file", help="created (with the pid) once the peer forwards")
    ap.add_argument("--log-level", help="debug, info, warning, error")
    ap.add_argument("--check", action="store_true", help="validate the configuration and exit")
    ap.add_argument("--algorithms", action="store_true", help="print supported algorithms (JSON) and exit")
    ap.add_argument("--no-fast-build", action="store_true",
                    help="use scapy's Packet.do_build unchanged (slower, same bytes)")
    args = ap.parse_args(argv)
    fast_build(not args.no_fast_build)
    if args.algorithms:
        print(json.dumps(algorithms_report(), indent=1))
        return 0
    if not args.config:
        ap.error("-c CONFIG is required")
    try:
        cfg = validate_config(load_config_file(args.config))
    except (ConfigError, OSError, yaml.YAMLError) as e:
        print(f"{args.config}: {e}", file=sys.stderr)
        return 1
    logging.basicConfig(level=(args.log_level or cfg["log_level"]).upper(),
                        format=f"%(asctime)s {cfg['name']} %(levelname)s %(message)s")
    if args.check:
        # build the SA objects too: that exercises scapy's key checks
        for s in cfg["sas"]:
            PeerSA(s)
        print(f"{args.config}: ok")
        return 0
    peer = Peer(cfg, args.stats_file, args.ready_file)
    try:
        peer.setup()
        peer.serve()
    finally:
        peer.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
