#!/usr/bin/python3
"""A small Linux XFRM client over netlink (NETLINK_XFRM), one request at a time, for the reply
latency reference of scripts/bench/reply_latency.py: what the kernel takes to answer the
requests a key daemon sends it, in the same run as dpsecd's PF_KEY replies.

Structures from <linux/xfrm.h>, laid out with ctypes (native alignment, as the kernel's). Each
request waits for its answer (an ACK, or the state the kernel sends back) before the next.
The socket is opened in the calling process's network namespace: run it under `ip netns exec`,
or call XfrmClient() after setns().

Only what this kernel can do is offered: it has XFRM but no ESP, AH or IPComp transform, so
XFRM_MSG_NEWSA/UPDSA of a real SA fail with "Requested type not found"; ALLOCSPI (a larval
state), GETSA and DELSA of those, and policies (NEWPOLICY, DELPOLICY) work.
"""
import ctypes
import errno
import ipaddress
import os
import socket
import struct
import time

NETLINK_XFRM = 6
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
XFRM_MSG_NEWSA, XFRM_MSG_DELSA, XFRM_MSG_GETSA = 0x10, 0x11, 0x12
XFRM_MSG_NEWPOLICY, XFRM_MSG_DELPOLICY, XFRM_MSG_ALLOCSPI = 0x13, 0x14, 0x16
XFRM_MSG_UPDPOLICY = 0x19
XFRMA_ALG_CRYPT, XFRMA_TMPL = 2, 5
XFRM_POLICY_IN, XFRM_POLICY_OUT, XFRM_POLICY_FWD = 0, 1, 2
XFRM_POLICY_ALLOW = 0
XFRM_MODE_TUNNEL = 1
IPPROTO_ESP = 50
INF = 0xFFFFFFFFFFFFFFFF


class Addr(ctypes.Structure):  # xfrm_address_t: a union of __be32[4] and in6_addr
    _fields_ = [("a", ctypes.c_uint32 * 4)]


class Selector(ctypes.Structure):
    _fields_ = [("daddr", Addr), ("saddr", Addr), ("dport", ctypes.c_uint16), ("dport_mask", ctypes.c_uint16),
                ("sport", ctypes.c_uint16), ("sport_mask", ctypes.c_uint16), ("family", ctypes.c_uint16),
                ("prefixlen_d", ctypes.c_uint8), ("prefixlen_s", ctypes.c_uint8), ("proto", ctypes.c_uint8),
                ("ifindex", ctypes.c_int), ("user", ctypes.c_uint32)]


class LifetimeCfg(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("soft_byte_limit", "hard_byte_limit", "soft_packet_limit",
                                                 "hard_packet_limit", "soft_add_expires_seconds",
                                                 "hard_add_expires_seconds", "soft_use_expires_seconds",
                                                 "hard_use_expires_seconds")]


class LifetimeCur(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("bytes", "packets", "add_time", "use_time")]


class Id(ctypes.Structure):
    _fields_ = [("daddr", Addr), ("spi", ctypes.c_uint32), ("proto", ctypes.c_uint8)]


class Stats(ctypes.Structure):
    _fields_ = [("replay_window", ctypes.c_uint32), ("replay", ctypes.c_uint32),
                ("integrity_failed", ctypes.c_uint32)]


class UserSaInfo(ctypes.Structure):
    _fields_ = [("sel", Selector), ("id", Id), ("saddr", Addr), ("lft", LifetimeCfg), ("curlft", LifetimeCur),
                ("stats", Stats), ("seq", ctypes.c_uint32), ("reqid", ctypes.c_uint32),
                ("family", ctypes.c_uint16), ("mode", ctypes.c_uint8), ("replay_window", ctypes.c_uint8),
                ("flags", ctypes.c_uint8)]


class UserSpiInfo(ctypes.Structure):
    _fields_ = [("info", UserSaInfo), ("min", ctypes.c_uint32), ("max", ctypes.c_uint32)]


class UserSaId(ctypes.Structure):
    _fields_ = [("daddr", Addr), ("spi", ctypes.c_uint32), ("family", ctypes.c_uint16),
                ("proto", ctypes.c_uint8)]


class UserPolicyInfo(ctypes.Structure):
    _fields_ = [("sel", Selector), ("lft", LifetimeCfg), ("curlft", LifetimeCur), ("priority", ctypes.c_uint32),
                ("index", ctypes.c_uint32), ("dir", ctypes.c_uint8), ("action", ctypes.c_uint8),
                ("flags", ctypes.c_uint8), ("share", ctypes.c_uint8)]


class UserPolicyId(ctypes.Structure):
    _fields_ = [("sel", Selector), ("index", ctypes.c_uint32), ("dir", ctypes.c_uint8)]


class UserTmpl(ctypes.Structure):
    _fields_ = [("id", Id), ("family", ctypes.c_uint16), ("saddr", Addr), ("reqid", ctypes.c_uint32),
                ("mode", ctypes.c_uint8), ("share", ctypes.c_uint8), ("optional", ctypes.c_uint8),
                ("aalgos", ctypes.c_uint32), ("ealgos", ctypes.c_uint32), ("calgos", ctypes.c_uint32)]


def addr4(a):
    x = Addr()
    x.a[0] = struct.unpack("=I", socket.inet_aton(a))[0]
    return x


def selector(src, dst):
    s, d = ipaddress.ip_network(src), ipaddress.ip_network(dst)
    sel = Selector()
    sel.saddr, sel.daddr = addr4(str(s.network_address)), addr4(str(d.network_address))
    sel.prefixlen_s, sel.prefixlen_d = s.prefixlen, d.prefixlen
    sel.family = socket.AF_INET
    return sel


def nl_attr(atype, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, atype) + payload + b"\0" * ((4 - n % 4) % 4)


class XfrmError(OSError):
    pass


class XfrmClient:
    def __init__(self):
        self.s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_XFRM)
        self.s.bind((0, 0))
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.seq = 0

    def close(self):
        self.s.close()

    def request(self, mtype, payload, flags=NLM_F_ACK):
        """Send one request, wait for its answer: the answer's payload (b"" for an ACK); an error
        answer raises XfrmError with the kernel's errno."""
        self.seq += 1
        self.s.send(struct.pack("=IHHII", 16 + len(payload), mtype, NLM_F_REQUEST | flags, self.seq, 0) + payload)
        while True:
            data = self.s.recv(65536)
            off = 0
            while off + 16 <= len(data):
                ln, t, _, seq, _ = struct.unpack_from("=IHHII", data, off)
                body = data[off + 16:off + ln]
                off += (ln + 3) & ~3
                if seq != self.seq:
                    continue
                if t == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", body)[0]
                    if err:
                        raise XfrmError(err, os.strerror(err))
                    return b""
                return body

    # ---- the requests

    def new_policy(self, src, dst, direction, tmpl_src, tmpl_dst, reqid, priority=0, update=False):
        """XFRM_MSG_NEWPOLICY: an IPsec policy with one ESP tunnel template (what charon's
        kernel-netlink and `ip xfrm policy add ... tmpl` install); update: XFRM_MSG_UPDPOLICY of
        the policy with that selector (PF_KEY's SPDUPDATE)."""
        p = UserPolicyInfo()
        p.sel = selector(src, dst)
        for f in ("soft_byte_limit", "hard_byte_limit", "soft_packet_limit", "hard_packet_limit"):
            setattr(p.lft, f, INF)
        p.priority, p.dir, p.action = priority, direction, XFRM_POLICY_ALLOW
        t = UserTmpl()
        t.id.daddr, t.id.proto = addr4(tmpl_dst), IPPROTO_ESP
        t.family, t.saddr, t.reqid, t.mode = socket.AF_INET, addr4(tmpl_src), reqid, XFRM_MODE_TUNNEL
        t.aalgos = t.ealgos = t.calgos = 0xFFFFFFFF
        if update:
            return self.request(XFRM_MSG_UPDPOLICY, bytes(p) + nl_attr(XFRMA_TMPL, bytes(t)))
        return self.request(XFRM_MSG_NEWPOLICY, bytes(p) + nl_attr(XFRMA_TMPL, bytes(t)),
                            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)

    def del_policy(self, src, dst, direction):
        p = UserPolicyId()
        p.sel, p.dir = selector(src, dst), direction
        return self.request(XFRM_MSG_DELPOLICY, bytes(p))

    def alloc_spi(self, src, dst, lo, hi, reqid=0):
        """XFRM_MSG_ALLOCSPI (PF_KEY's GETSPI): the larval state's SPI."""
        u = UserSpiInfo()
        u.info.id.daddr, u.info.id.proto = addr4(dst), IPPROTO_ESP
        u.info.saddr, u.info.family, u.info.reqid, u.info.mode = addr4(src), socket.AF_INET, reqid, XFRM_MODE_TUNNEL
        u.min, u.max = lo, hi
        body = self.request(XFRM_MSG_ALLOCSPI, bytes(u), 0)
        return socket.ntohl(UserSaInfo.from_buffer_copy(body[:ctypes.sizeof(UserSaInfo)]).id.spi)

    def _sa_id(self, dst, spi):
        i = UserSaId()
        i.daddr, i.spi, i.family, i.proto = addr4(dst), socket.htonl(spi), socket.AF_INET, IPPROTO_ESP
        return bytes(i)

    def get_sa(self, dst, spi):
        return self.request(XFRM_MSG_GETSA, self._sa_id(dst, spi), 0)

    def del_sa(self, dst, spi):
        return self.request(XFRM_MSG_DELSA, self._sa_id(dst, spi))

    def new_sa_esp_cbc(self, src, dst, spi):
        """XFRM_MSG_NEWSA of an ESP tunnel SA, AES-CBC-128 without integrity: tells whether the
        kernel has ESP at all (an error, EPROTONOSUPPORT, when it has not)."""
        u = UserSaInfo()
        u.sel.family = socket.AF_INET
        u.id.daddr, u.id.spi, u.id.proto = addr4(dst), socket.htonl(spi), IPPROTO_ESP
        u.saddr, u.family, u.mode = addr4(src), socket.AF_INET, XFRM_MODE_TUNNEL
        for f in ("soft_byte_limit", "hard_byte_limit", "soft_packet_limit", "hard_packet_limit"):
            setattr(u.lft, f, INF)
        alg = b"cbc(aes)".ljust(64, b"\0") + struct.pack("=I", 128) + bytes(range(16))
        return self.request(XFRM_MSG_NEWSA, bytes(u) + nl_attr(XFRMA_ALG_CRYPT, alg),
                            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)


def timed(fn, *args):
    """(microseconds, result) of one request."""
    t0 = time.perf_counter()
    r = fn(*args)
    return (time.perf_counter() - t0) * 1e6, r


def has_esp():
    c = XfrmClient()
    try:
        c.new_sa_esp_cbc("10.255.0.1", "10.255.0.2", 0x1234)
        c.del_sa("10.255.0.2", 0x1234)
        return True, 0
    except XfrmError as e:
        return False, e.errno
    finally:
        c.close()


if __name__ == "__main__":
    # self-check inside a namespace: `ip netns exec NS scripts/bench/xfrm_nl.py`
    c = XfrmClient()
    c.new_policy("10.1.0.0/24", "10.2.0.0/24", XFRM_POLICY_OUT, "192.0.2.1", "192.0.2.2", 7)
    spi = c.alloc_spi("192.0.2.2", "192.0.2.1", 0xc0000000, 0xcfffffff)
    assert 0xc0000000 <= spi <= 0xcfffffff
    c.get_sa("192.0.2.1", spi)
    c.del_sa("192.0.2.1", spi)
    try:
        c.get_sa("192.0.2.1", spi)
        raise SystemExit("GETSA found a deleted state")
    except XfrmError as e:
        assert e.errno == errno.ESRCH, e
    c.del_policy("10.1.0.0/24", "10.2.0.0/24", XFRM_POLICY_OUT)
    print("xfrm_nl: ok; ESP in this kernel:", has_esp())
