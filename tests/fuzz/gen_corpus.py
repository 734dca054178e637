#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Write the seed corpus of fuzz_pfkey: PF_KEY v2 messages as strongSwan's
kernel-pfkey plugin (5.9.8) sends them, laid out from RFC 2367 and
linux/pfkeyv2.h independently of the C codec. Host-order fields are
little-endian (x86-64, where the seeds are used).

    tests/fuzz/gen_corpus.py [DIR]    (default: tests/fuzz/corpus)
"""
import os
import socket
import struct
import sys

PF_KEY_V2 = 2
GETSPI, UPDATE, ADD, DELETE, GET, ACQUIRE, REGISTER, EXPIRE, FLUSH, DUMP = range(1, 11)
SPDUPDATE, SPDADD, SPDDELETE, SPDGET = 13, 14, 15, 16
SPDDUMP, SPDFLUSH, SPDDELETE2, MIGRATE = 18, 19, 22, 24
SATYPE_UNSPEC, SATYPE_AH, SATYPE_ESP, SATYPE_IPCOMP = 0, 2, 3, 9

EXT_SA, LT_CUR, LT_HARD, LT_SOFT, ADDR_SRC, ADDR_DST = 1, 2, 3, 4, 5, 6
KEY_AUTH, KEY_ENC, SPIRANGE, X_POLICY, X_SA2 = 8, 9, 16, 18, 19
NATT_TYPE, NATT_SPORT, NATT_DPORT, KMADDRESS = 20, 21, 22, 25
ADDR_PROXY, IDENT_SRC, SENS, PROPOSAL, SEC_CTX = 7, 10, 12, 13, 24
# dpsec's extensions (src/pfkey_emul/pfkeyv2_ext.h): FreeBSD's ids and flag.
X_SA_REPLAY, X_NEW_ADDR_SRC, X_NEW_ADDR_DST = 27, 28, 29
SAFLAGS_ESN = 0x400
EALG_CHACHA20POLY1305 = 28


def pad8(b):
    return b + bytes(-len(b) % 8)


def ext(etype, body):
    """An extension: sadb_ext header (length in 8-byte words) + body, padded."""
    data = pad8(struct.pack("<HH", 0, etype) + body)
    return struct.pack("<HH", len(data) // 8, etype) + data[4:]


def msg(mtype, satype, *exts, seq=1, pid=4242):
    body = b"".join(exts)
    length = (16 + len(body)) // 8
    return struct.pack("<BBBBHHII", PF_KEY_V2, mtype, 0, satype, length, 0, seq, pid) + body


def sockaddr(ip, port=0):
    if ":" in ip:
        return struct.pack("<H", socket.AF_INET6) + struct.pack(">HI", port, 0) + \
            socket.inet_pton(socket.AF_INET6, ip) + struct.pack("<I", 0)
    return struct.pack("<H", socket.AF_INET) + struct.pack(">H", port) + \
        socket.inet_pton(socket.AF_INET, ip) + bytes(8)


def address(etype, ip, prefixlen=0, proto=0, port=0):
    return ext(etype, struct.pack("<BBH", proto, prefixlen, 0) + sockaddr(ip, port))


def sa(spi, auth, enc, replay=32, state=1, flags=0):
    return ext(EXT_SA, struct.pack(">I", spi) +
               struct.pack("<BBBBI", replay, state, auth, enc, flags))


def sa_replay(window):
    return ext(X_SA_REPLAY, struct.pack("<I", window))


def sa2(mode, reqid):
    return ext(X_SA2, struct.pack("<BBHII", mode, 0, 0, 0, reqid))


def lifetime(etype, allocations=0, nbytes=0, add=0, use=0):
    return ext(etype, struct.pack("<IQQQ", allocations, nbytes, add, use))


def key(etype, nbytes, fill=0x11):
    return ext(etype, struct.pack("<HH", nbytes * 8, 0) + bytes([fill]) * nbytes)


def natt(sport, dport, ntype=2):
    return ext(NATT_TYPE, struct.pack("<B3x", ntype)) + \
        ext(NATT_SPORT, struct.pack(">H", sport) + bytes(2)) + \
        ext(NATT_DPORT, struct.pack(">H", dport) + bytes(2))


def request(proto, mode, level, reqid, src=None, dst=None):
    tail = sockaddr(src) + sockaddr(dst) if src else b""
    return struct.pack("<HHBBHII", 16 + len(tail), proto, mode, level, 0, reqid, 0) + tail


def policy(ptype, pdir, pid=0, prio=0, *reqs):
    return ext(X_POLICY, struct.pack("<HBBII", ptype, pdir, 0, pid, prio) + b"".join(reqs))


SEEDS = {
    "getspi_esp": msg(GETSPI, SATYPE_ESP, address(ADDR_SRC, "198.51.100.2"),
                      address(ADDR_DST, "192.0.2.1"),
                      ext(SPIRANGE, struct.pack("<III", 0xc0000000, 0xcfffffff, 0))),
    "add_gcm_natt": msg(ADD, SATYPE_ESP, sa(0xc1a2b3c4, 0, 20), sa2(2, 7),
                        address(ADDR_SRC, "198.51.100.2"), address(ADDR_DST, "192.0.2.1"),
                        lifetime(LT_SOFT, add=2700), lifetime(LT_HARD, add=3600),
                        key(KEY_ENC, 20), natt(4500, 4500)),
    "update_cbc_sha256_v6": msg(UPDATE, SATYPE_ESP, sa(0x01020304, 5, 12), sa2(1, 9),
                                address(ADDR_SRC, "2001:db8::1"),
                                address(ADDR_DST, "2001:db8::2"),
                                lifetime(LT_SOFT, 900, 10**6), lifetime(LT_HARD, 1000, 2 * 10**6),
                                key(KEY_AUTH, 32, 0xa0), key(KEY_ENC, 32, 0x40)),
    "add_ah_sha1": msg(ADD, SATYPE_AH, sa(0x1000, 3, 0), address(ADDR_SRC, "192.0.2.1"),
                       address(ADDR_DST, "192.0.2.2"), key(KEY_AUTH, 20)),
    "add_ipcomp": msg(ADD, SATYPE_IPCOMP, sa(0x4321, 0, 2), sa2(2, 3),
                      address(ADDR_SRC, "192.0.2.1"), address(ADDR_DST, "192.0.2.2")),
    "delete": msg(DELETE, SATYPE_ESP, sa(0xc0000001, 0, 0), address(ADDR_SRC, "198.51.100.2"),
                  address(ADDR_DST, "192.0.2.1")),
    "get": msg(GET, SATYPE_ESP, sa(0xc0000001, 0, 0), address(ADDR_SRC, "198.51.100.2"),
               address(ADDR_DST, "192.0.2.1")),
    "register_esp": msg(REGISTER, SATYPE_ESP),
    "flush": msg(FLUSH, SATYPE_UNSPEC),
    "dump": msg(DUMP, SATYPE_UNSPEC),
    "acquire_error": msg(ACQUIRE, SATYPE_ESP),
    "expire_hard": msg(EXPIRE, SATYPE_ESP, sa(0xc0000001, 0, 20, state=3),
                       lifetime(LT_HARD, add=3600), lifetime(LT_CUR, 10, 1000, 1700000000),
                       address(ADDR_SRC, "198.51.100.2"), address(ADDR_DST, "192.0.2.1"),
                       sa2(2, 7)),
    "spdadd_tunnel": msg(SPDADD, SATYPE_UNSPEC,
                         policy(2, 2, 0, 383615,
                                request(50, 2, 3, 7, "192.0.2.1", "198.51.100.2")),
                         address(ADDR_SRC, "10.1.0.0", 16, 255),
                         address(ADDR_DST, "10.2.0.0", 16, 255)),
    "spdupdate_ipcomp_esp_v6": msg(SPDUPDATE, SATYPE_UNSPEC,
                                   policy(2, 1, 0, 1000,
                                          request(108, 2, 1, 0, "2001:db8::a", "2001:db8::b"),
                                          request(50, 2, 3, 9, "2001:db8::a", "2001:db8::b")),
                                   address(ADDR_SRC, "2001:db8:1::", 48, 6, 0),
                                   address(ADDR_DST, "2001:db8:2::", 48, 6, 443)),
    "spdadd_icmp_bypass": msg(SPDADD, SATYPE_UNSPEC, policy(1, 3),
                              address(ADDR_SRC, "::", 0, 58, 135),
                              address(ADDR_DST, "::", 0, 58, 0)),
    "spddelete": msg(SPDDELETE, SATYPE_UNSPEC, policy(2, 2),
                     address(ADDR_SRC, "10.1.0.0", 16, 255),
                     address(ADDR_DST, "10.2.0.0", 16, 255)),
    "spdget": msg(SPDGET, SATYPE_UNSPEC, policy(0, 0, 8 * 3 + 1)),
    "spddelete2": msg(SPDDELETE2, SATYPE_UNSPEC, policy(0, 0, 8 * 3 + 1)),
    "spddump": msg(SPDDUMP, SATYPE_UNSPEC),
    "spdflush": msg(SPDFLUSH, SATYPE_UNSPEC),
    "migrate": msg(MIGRATE, SATYPE_UNSPEC, address(ADDR_SRC, "10.1.0.0", 16, 255),
                   address(ADDR_DST, "10.2.0.0", 16, 255),
                   policy(2, 2, 0, 0,
                          request(50, 2, 3, 7, "192.0.2.1", "198.51.100.2"),
                          request(50, 2, 3, 7, "192.0.2.1", "198.51.100.77")),
                   ext(KMADDRESS, bytes(4) + sockaddr("192.0.2.1") + sockaddr("198.51.100.77"))),
    # openiked: SA2 in SPDUPDATE/SPDDELETE (Linux ignores it, so does dpsecd).
    "iked_spdupdate_sa2": msg(SPDUPDATE, SATYPE_ESP, address(ADDR_SRC, "10.1.0.0", 16, 255),
                              address(ADDR_DST, "10.2.0.0", 16, 255), sa2(2, 0),
                              policy(2, 2, 0, 0,
                                     request(50, 2, 2, 0, "192.0.2.1", "198.51.100.2"))),
    "iked_spddelete_sa2": msg(SPDDELETE, SATYPE_ESP, address(ADDR_SRC, "10.1.0.0", 16, 255),
                              address(ADDR_DST, "10.2.0.0", 16, 255), sa2(2, 0),
                              policy(2, 2)),
    # Extensions a message does not use, and types above the last: accepted, ignored.
    "delete_ignored_exts": msg(DELETE, SATYPE_ESP, sa(0xc0000001, 0, 0),
                               address(ADDR_SRC, "198.51.100.2"), address(ADDR_DST, "192.0.2.1"),
                               address(ADDR_PROXY, "203.0.113.1", 32),
                               ext(IDENT_SRC, bytes(12)), ext(SENS, bytes(12)),
                               ext(PROPOSAL, bytes(4)), ext(SPIRANGE, struct.pack("<III", 2, 1, 0)),
                               policy(77, 99), ext(SEC_CTX, struct.pack("<BBH", 1, 1, 3) + b"abc"),
                               ext(30, bytes(4)), ext(200, bytes(12))),
    "flush_ignored_sa": msg(FLUSH, SATYPE_UNSPEC, sa(1, 0, 0), key(KEY_AUTH, 16)),
    # charon built with pfkeyv2_ext.h: window 1024, ESN, ChaCha20-Poly1305, MOBIKE update.
    "add_chacha_esn_replay": msg(ADD, SATYPE_ESP,
                                 sa(0xc1a2b3c5, 0, EALG_CHACHA20POLY1305, flags=SAFLAGS_ESN),
                                 sa_replay(1024), sa2(2, 7),
                                 address(ADDR_SRC, "198.51.100.2"), address(ADDR_DST, "192.0.2.1"),
                                 key(KEY_ENC, 36)),
    "add_cbc_esn_replay4096": msg(ADD, SATYPE_ESP, sa(0xc1a2b3c6, 5, 12, flags=SAFLAGS_ESN),
                                  sa_replay(4096), sa2(2, 7),
                                  address(ADDR_SRC, "198.51.100.2"),
                                  address(ADDR_DST, "192.0.2.1"),
                                  key(KEY_ENC, 16), key(KEY_AUTH, 32)),
    "update_new_addresses": msg(UPDATE, SATYPE_ESP, sa(0xc1a2b3c4, 0, 20), sa2(2, 7),
                                address(ADDR_SRC, "198.51.100.2"), address(ADDR_DST, "192.0.2.1"),
                                key(KEY_ENC, 20), natt(4500, 4500),
                                address(X_NEW_ADDR_SRC, "198.51.100.99"),
                                address(X_NEW_ADDR_DST, "192.0.2.1")),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
