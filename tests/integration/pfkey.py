"""A small PF_KEY v2 client written from RFC 2367 and linux/pfkeyv2.h with
Python's struct module: no code shared with dpsecd's codec, so the tests
check dpsecd's wire format against an independent reading of the RFC.

    c = Client("/run/dpsec/pfkey.sock")
    rep = c.request(msg(GETSPI, ESP, [address(SRC, "192.0.2.1"), address(DST, "192.0.2.2"),
                                       spirange(0xc0000000, 0xcfffffff)]))
    rep.errno, rep.ext[SA].spi
"""
import errno as E
import ipaddress
import os
import socket
import struct
import time

# message types (RFC 2367 §2.3, Linux/KAME extensions)
GETSPI, UPDATE, ADD, DELETE, GET, ACQUIRE, REGISTER, EXPIRE, FLUSH, DUMP, PROMISC = range(1, 12)
SPDUPDATE, SPDADD, SPDDELETE, SPDGET, SPDACQUIRE, SPDDUMP, SPDFLUSH = 13, 14, 15, 16, 17, 18, 19
SPDDELETE2 = 22
# SA types
UNSPEC, AH, ESP, IPCOMP = 0, 2, 3, 9
# extension types
(SA, LT_CURRENT, LT_HARD, LT_SOFT, SRC, DST, PROXY, KEY_AUTH, KEY_ENC, ID_SRC, ID_DST, SENS,
 PROPOSAL, SUP_AUTH, SUP_ENC, SPIRANGE, KMPRIVATE, POLICY, SA2, NATT_TYPE, NATT_SPORT,
 NATT_DPORT) = range(1, 23)
# SA states
LARVAL, MATURE, DYING, DEAD = range(4)
# algorithms (Linux numbering)
EALG_3DES, EALG_NULL, EALG_AESCBC, EALG_AESCTR, EALG_GCM16 = 3, 11, 12, 13, 20
AALG_NONE, AALG_SHA1, AALG_SHA256 = 0, 3, 5
# policy
DIR_IN, DIR_OUT, DIR_FWD = 1, 2, 3
POL_DISCARD, POL_NONE, POL_IPSEC = 0, 1, 2
MODE_ANY, MODE_TRANSPORT, MODE_TUNNEL = 0, 1, 2
LEVEL_DEFAULT, LEVEL_USE, LEVEL_REQUIRE, LEVEL_UNIQUE = range(4)
PROTO_ANY = 255


def pad8(b):
    return b + b"\0" * (-len(b) % 8)


def ext(etype, body):
    """An extension: body without the 4-byte (len, type) header, padded to 8 bytes."""
    data = pad8(struct.pack("=HH", 0, etype) + body)
    return struct.pack("=HH", len(data) // 8, etype) + data[4:]


def sockaddr(addr, port=0):
    ip = ipaddress.ip_address(addr)
    if ip.version == 4:
        return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + ip.packed + b"\0" * 8
    return (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, 0) + ip.packed +
            struct.pack("=I", 0))


def address(etype, addr, prefixlen=None, proto=PROTO_ANY, port=0):
    ip = ipaddress.ip_address(addr)
    if prefixlen is None:
        prefixlen = 32 if ip.version == 4 else 128
    return ext(etype, struct.pack("=BBH", proto, prefixlen, 0) + sockaddr(addr, port))


def sa(spi, state=MATURE, auth=AALG_NONE, enc=EALG_GCM16, replay=32, flags=0):
    return ext(SA, struct.pack("!I", spi) + struct.pack("=BBBBI", replay, state, auth, enc, flags))


def sa2(mode=MODE_TUNNEL, reqid=0):
    return ext(SA2, struct.pack("=BBHII", mode, 0, 0, 0, reqid))


def key(etype, keybytes, bits=None):
    bits = len(keybytes) * 8 if bits is None else bits
    return ext(etype, struct.pack("=HH", bits, 0) + keybytes)


def lifetime(etype, packets=0, nbytes=0, addtime=0, usetime=0):
    return ext(etype, struct.pack("=IQQQ", packets, nbytes, addtime, usetime))


def spirange(lo, hi):
    return ext(SPIRANGE, struct.pack("=III", lo, hi, 0))


def natt(sport, dport):
    return [ext(NATT_TYPE, struct.pack("=B3x", 2)), ext(NATT_SPORT, struct.pack("!H", sport) + b"\0\0"),
            ext(NATT_DPORT, struct.pack("!H", dport) + b"\0\0")]


def ipsecrequest(proto=50, mode=MODE_TUNNEL, level=LEVEL_UNIQUE, reqid=0, tun=None):
    addrs = b"" if tun is None else sockaddr(tun[0]) + sockaddr(tun[1])
    length = 16 + len(addrs)
    return struct.pack("=HHBBHII", length, proto, mode, level, 0, reqid, 0) + addrs


def policy(direction, ptype=POL_IPSEC, requests=(), pid=0, priority=0):
    body = struct.pack("=HBBII", ptype, direction, 0, pid, priority) + b"".join(requests)
    return ext(POLICY, body)


def msg(mtype, satype=UNSPEC, exts=(), seq=0, pid=None):
    body = b"".join(exts)
    length = (16 + len(body)) // 8
    return struct.pack("=BBBBHHII", 2, mtype, 0, satype, length, 0, seq,
                       os.getpid() if pid is None else pid) + body


class Ext:
    pass


class Message:
    """A parsed message: header fields and ext[type] -> Ext with decoded fields."""

    def __init__(self, data):
        self.raw = data
        (self.version, self.type, self.errno, self.satype, self.len, _, self.seq,
         self.pid) = struct.unpack_from("=BBBBHHII", data)
        assert self.len * 8 == len(data), f"sadb_msg_len {self.len} words for {len(data)} bytes"
        self.ext = {}
        self.order = []
        off = 16
        while off < len(data):
            elen, etype = struct.unpack_from("=HH", data, off)
            assert elen >= 1 and off + elen * 8 <= len(data), f"bad extension length at {off}"
            assert etype not in self.ext, f"duplicate extension {etype}"
            assert 1 <= etype <= 25, f"extension type {etype} charon would reject"
            self.ext[etype] = self._decode(etype, data[off:off + elen * 8])
            self.order.append(etype)
            off += elen * 8

    @staticmethod
    def _sockaddr(b):
        fam = struct.unpack_from("=H", b)[0]
        if fam == socket.AF_INET:
            port = struct.unpack_from("!H", b, 2)[0]
            return str(ipaddress.ip_address(b[4:8])), port
        if fam == socket.AF_INET6:
            port = struct.unpack_from("!H", b, 2)[0]
            return str(ipaddress.ip_address(b[8:24])), port
        raise AssertionError(f"address family {fam}")

    def _decode(self, t, b):
        e = Ext()
        e.type, e.raw = t, b
        if t == SA:
            e.spi = struct.unpack_from("!I", b, 4)[0]
            e.replay, e.state, e.auth, e.enc, e.flags = struct.unpack_from("=BBBBI", b, 8)
        elif t in (LT_CURRENT, LT_HARD, LT_SOFT):
            e.packets, e.bytes, e.addtime, e.usetime = struct.unpack_from("=IQQQ", b, 4)
        elif t in (SRC, DST, PROXY):
            e.proto, e.prefixlen = struct.unpack_from("=BB", b, 4)
            e.addr, e.port = self._sockaddr(b[8:])
        elif t in (KEY_AUTH, KEY_ENC):
            e.bits = struct.unpack_from("=H", b, 4)[0]
            e.key = b[8:8 + (e.bits + 7) // 8]
        elif t in (SUP_AUTH, SUP_ENC):
            e.algs = [struct.unpack_from("=BBHH", b, o) for o in range(8, len(b), 8)]
        elif t == SPIRANGE:
            e.min, e.max = struct.unpack_from("=II", b, 4)
        elif t == SA2:
            e.mode, _, _, e.seq, e.reqid = struct.unpack_from("=BBHII", b, 4)
        elif t == POLICY:
            e.ptype, e.dir, _, e.id, e.priority = struct.unpack_from("=HBBII", b, 4)
            e.requests = []
            o = 16
            while o < len(b):
                ln, proto, mode, level, _, reqid, _ = struct.unpack_from("=HHBBHII", b, o)
                assert ln >= 16 and o + ln <= len(b), "ipsecrequest length"
                r = {"proto": proto, "mode": mode, "level": level, "reqid": reqid}
                if ln > 16:
                    s, _ = self._sockaddr(b[o + 16:])
                    d, _ = self._sockaddr(b[o + 16 + (16 if ":" not in s else 28):])
                    r["tun"] = (s, d)
                e.requests.append(r)
                o += ln
        elif t == NATT_TYPE:
            e.natt = b[4]
        elif t in (NATT_SPORT, NATT_DPORT):
            e.port = struct.unpack_from("!H", b, 4)[0]
        elif t == PROPOSAL:
            e.combs = [struct.unpack_from("=BB", b, o) for o in range(8, len(b), 72)]
        return e


class Client:
    """One PF_KEY socket: dpsecd's AF_UNIX SOCK_SEQPACKET endpoint."""

    def __init__(self, path, timeout=5, pid=None):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.seq = 0
        # several clients of one test process stand for several key daemons: each its own
        # pid, or one would take another's broadcast reply (same pid and seq) for its own
        self.pid = os.getpid() if pid is None else pid

    def send(self, data):
        self.s.send(data)

    def recv(self, timeout=5):
        self.s.settimeout(timeout)
        data = self.s.recv(1 << 20)
        if not data:
            raise ConnectionError("PF_KEY server closed the connection")
        return Message(data)

    def request(self, data, timeout=5):
        """Send with a fresh seq and our pid; return the reply with the same seq and pid
        (broadcasts of other clients' requests are skipped, as charon does)."""
        self.seq += 1
        data = bytearray(data)
        struct.pack_into("=II", data, 8, self.seq, self.pid)
        self.send(bytes(data))
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self.recv(max(0.1, deadline - time.time()))
            if m.pid == self.pid and m.seq == self.seq:
                return m
        raise TimeoutError("no reply")

    def pipeline(self, msgs, window=1000, timeout=60):
        """Send msgs with up to window requests in flight (seq and pid set as request() does);
        return their replies in the order of msgs. Broadcasts of other clients are skipped."""
        base, n = self.seq, len(msgs)
        replies = [None] * n
        sent = done = 0
        deadline = time.time() + timeout
        while done < n:
            while sent < n and sent - done < window:
                data = bytearray(msgs[sent])
                struct.pack_into("=II", data, 8, base + sent + 1, self.pid)
                self.send(bytes(data))
                sent += 1
            if time.time() > deadline:
                raise TimeoutError(f"{n - done} of {n} replies missing")
            m = self.recv(max(0.1, deadline - time.time()))
            i = m.seq - base - 1
            if m.pid == self.pid and 0 <= i < sent and replies[i] is None:
                replies[i] = m
                done += 1
        self.seq = base + n
        return replies

    def dump(self, mtype, satype=UNSPEC, timeout=30):
        """Every message of a DUMP or SPDDUMP, up to the one with seq 0 (RFC 2367 §3.1.10)."""
        self.send(msg(mtype, satype, seq=1, pid=self.pid))
        out = []
        deadline = time.time() + timeout
        while True:
            m = self.recv(max(0.1, deadline - time.time()))
            if m.pid != self.pid or m.type != mtype:
                continue
            out.append(m)
            if m.seq == 0 or m.errno:
                return out

    def drain(self, timeout=0.2):
        out = []
        try:
            while True:
                out.append(self.recv(timeout))
        except (socket.timeout, TimeoutError, BlockingIOError):
            return out

    def wait_for(self, pred, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                m = self.recv(max(0.1, deadline - time.time()))
            except socket.timeout:
                break
            if pred(m):
                return m
        raise AssertionError("expected PF_KEY message did not arrive")

    def close(self):
        self.s.close()


def gcm_add(spi, src, dst, reqid, keybytes, mtype=ADD, replay=32, hard=(0, 0, 0), soft=(0, 0, 0),
            encap=None, mode=MODE_TUNNEL):
    """charon's ADD/UPDATE of an AES-GCM-128 SA (key includes the 4-byte salt)."""
    exts = [sa(spi, enc=EALG_GCM16, replay=replay), sa2(mode, reqid), address(SRC, src), address(DST, dst),
            lifetime(LT_SOFT, soft[0], soft[1], soft[2]), lifetime(LT_HARD, hard[0], hard[1], hard[2]),
            key(KEY_ENC, keybytes)]
    if encap:
        exts += natt(*encap)
    return msg(mtype, ESP, exts)


def spd(mtype, direction, src, dst, ptype=POL_IPSEC, requests=(), priority=0, proto=PROTO_ANY, pid=0):
    s, sl = src.split("/")
    d, dl = dst.split("/")
    return msg(mtype, UNSPEC, [policy(direction, ptype, requests, pid, priority),
                               address(SRC, s, int(sl), proto), address(DST, d, int(dl), proto)])


ERRNO = E
