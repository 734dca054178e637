"""Published ESP known-answer vectors, for test_esp_pcap.py.

Sources
-------

* draft-mcgrew-gcm-test-01, "Test Cases for the use of Galois/Counter Mode
  (GCM) and Galois Message Authentication Code (GMAC) in IPsec ESP", D. McGrew,
  March 2009, section 4 (https://datatracker.ietf.org/doc/html/draft-mcgrew-gcm-test-01).
  Each case gives the key, the nonce (4-byte salt || 8-byte explicit IV), the
  ESP associated data (SPI || sequence number, or SPI || ESN high || ESN low
  for extended sequence numbers), the ESP plaintext (payload || padding ||
  pad length || next header), the ciphertext and the 16-byte ICV.  The values
  below were transcribed from the draft as reproduced, with the draft's page
  numbers, in OpenBSD's regress/sys/crypto/gmac test and, in the draft's order,
  in a Go GCM package's test table; the two agree.  The case numbers are the
  draft's order (the 192-bit case is the draft's "#7").

* RFC 3602 (AES-CBC in IPsec), section 4, cases 5 to 8: ESP packets with
  AES-CBC-128 and *no integrity* (cases 5 and 6 transport mode, 7 and 8 tunnel
  mode), with key, SPI, sequence number, IV, the original packet and the
  encrypted ESP payload.

Every vector carries the whole ESP packet as published (SPI, sequence number,
IV, ciphertext, ICV where there is one), so a test can hand it to the
dataplane unchanged; check_vectors() re-derives each one with the
`cryptography` package so that a transcription error cannot pass as a
dataplane bug.
"""
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def h(s):
    return bytes.fromhex("".join(s.split()))


class GcmVector:
    """One AES-GCM (or AES-GMAC) ESP packet of draft-mcgrew-gcm-test-01."""

    def __init__(self, case, key, nonce, aad, plaintext, ciphertext, icv, gmac=False):
        self.case = case
        self.key = h(key)
        self.salt, self.iv = h(nonce)[:4], h(nonce)[4:]
        self.aad = h(aad)
        self.plaintext = h(plaintext)
        self.ciphertext = h(ciphertext)
        self.icv = h(icv)
        self.gmac = gmac
        self.esn = len(self.aad) == 12 if not gmac else False
        self.spi = struct.unpack("!L", self.aad[:4])[0]
        if self.esn:
            self.seq_hi, self.seq = struct.unpack("!LL", self.aad[4:12])
        else:
            self.seq_hi, self.seq = 0, struct.unpack("!L", self.aad[4:8])[0]

    @property
    def keymat(self):
        """What dpsecd's `key` takes for aes-gcm-*/aes-gmac-*: key || salt."""
        return self.key + self.salt

    @property
    def esp(self):
        """The ESP packet on the wire (the ESN high half is never sent)."""
        return struct.pack("!LL", self.spi, self.seq) + self.iv + self.ciphertext + self.icv

    @property
    def padlen(self):
        return self.plaintext[-2]

    @property
    def next_header(self):
        return self.plaintext[-1]

    @property
    def payload(self):
        """The ESP payload data: the plaintext without padding, pad length, next header."""
        return self.plaintext[:len(self.plaintext) - self.padlen - 2]

    @property
    def bits(self):
        return len(self.key) * 8


GCM_VECTORS = [
    # 1: AES-128, ESN (SPI 0x4321, ESN high 0x87654321, low 0)
    GcmVector(1, "4c80cdefbb5d10da906ac73c3613a634", "2e443b684956ed7e3b244cfe",
              "000043218765432100000000",
              "45000048699a000080114db7c0a80102c0a801010a9bf15638d3010000010000"
              "00000000045f736970045f756470037369700963796265726369747902646b00"
              "0021000101020201",
              "fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34"
              "cfa2436f14a3f3cf65925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce"
              "61bc17d768fd9732",
              "459018148f6cbe722fd04796562dfdb4"),
    # 2: AES-128, SPI 0xa5f8, seq 10
    GcmVector(2, "feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
              "0000a5f80000000a",
              "4500003e698f000080114dccc0a80102c0a801010a980035002a2343b2d00100"
              "0001000000000000037369700963796265726369747902646b00000100010001",
              "deb22cd9b07c72c16e3a65beeb8df304a5a5897d33ae530f1ba76d5d114d2a5c"
              "3de81827c10e9a4f51330d0eec416642cfbb85a5b47e48a4ec3b9ba95d918bd1",
              "83b70d3aa8bc6ee4c309e9d85a41ad4a"),
    # 3: AES-256, SPI 0x4a2cbfe3, seq 2
    GcmVector(3, "abbccddef00112233445566778899aababbccddef00112233445566778899aab",
              "112233440102030405060708", "4a2cbfe300000002",
              "4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee000000000"
              "7002400020bf0000020405b40101040201020201",
              "ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763"
              "748a637985771d347f0545659f14e99def842d8e",
              "b335f4eecfdbf831824b4c4915956c96"),
    # 4: AES-128, all-zero key, SPI 0 (reserved by RFC 4303), seq 1
    GcmVector(4, "00000000000000000000000000000000", "000000000000000000000000",
              "0000000000000001",
              "4500003c99c500008001cb7a40679318010101010800075c0200440061626364"
              "65666768696a6b6c6d6e6f707172737475767761626364656667686901020201",
              "4688daf2f973a392732909c331d56d60f694abaa414b5e7ff5fdcdfff5e9a284"
              "456476492719ffb64de7d9dca1e1d894bc3bd57873ed4d181d19d4d5c8c18af3",
              "f821d496eeb096e98ad2b69e4799c71d"),
    # 5: AES-128, ESN (high 0x10101010)
    GcmVector(5, "3de09874b388e6491988d0c3607eae1f", "57690e434e280000a2fca1a3",
              "42f67e3f1010101010101010",
              "4500003c99c300008001cb7c40679318010101010800085c0200430061626364"
              "65666768696a6b6c6d6e6f707172737475767761626364656667686901020201",
              "fba2caa4853cf9f0f22cb10d86dd83b0fec75691cf1a04b00d1138ec9c357917"
              "65acbd8701ad79845bf9fe3fba487bc91755e6662b4c8d0d1f5e22739530320a",
              "e0d731cc978ecafaeae88f00e80d6e48"),
    # 6: AES-128, ESN (high 0x10101010), short packet
    GcmVector(6, "3de09874b388e6491988d0c3607eae1f", "57690e434e280000a2fca1a3",
              "42f67e3f1010101010101010",
              "4500001c42a200008001441f406793b6e00000020a00f5ff01020201",
              "fba2ca845e5df9f0f22c3e6e86dd831e1fc65792cd1af9130e1379ed",
              "369f071f35e034be95f112e4e7d05d35"),
    # 7: AES-192, SPI 0xa5f8, seq 10
    GcmVector(7, "feffe9928665731c6d6a8f9467308308feffe9928665731c",
              "cafebabefacedbaddecaf888", "0000a5f80000000a",
              "45000028a4ad4000400678800a01038f0a010612802306b8cb712602dd6bb03e"
              "501016d075680001",
              "a5b1f8066029aea40e598b8122de02420938b3ab33f828e687b8858b5bfbdbd0"
              "315b27452144cc77",
              "95457b9652037f5318027b5b4cd7a636"),
    # 8: AES-128, ESN (SPI 0x100, high 0, low 1)
    GcmVector(8, "abbccddef00112233445566778899aab", "decaf888cafedebaceface74",
              "000001000000000000000001",
              "4500004933ba00007f119106c3fb1d10c2b1d326c02831ce0035dd7b800302d5"
              "00004e20001e8c18d75b81dc91baa0476b91b924b280389d92c963bac046ec95"
              "9b6266c04722b14923010101",
              "18a6fd42f72cbf4ab2a2ea901f73d814e3e7f243d95412e1c349c1d2fbec168f"
              "9190feebaf2cb01984e65863965d7472b79da345e0e780191f0d2f0e0f496c22"
              "6f2127b27db35724e7845d68",
              "651f57e65f354f75ff17015769623436"),
    # 9: AES-256, ESN (high 0x156f3126)
    GcmVector(9, "abbccddef00112233445566778899aababbccddef00112233445566778899aab",
              "73616c74616e640169766563", "17405e67156f3126dd0db99b",
              "45080028732c00004006e9f90a0106120a01038f06b88023dd6bafbecb712602"
              "50101f646d540001",
              "f2d69ecdbd5a0d5b8d5ef38bad4da58d1f278fde98ef67549d524a3018d9a57f"
              "f4d3a31ce673119e",
              "451626c2415771e3b7eebca614c89b35"),
    # 10: AES-128, ESN (high 0x10101010)
    GcmVector(10, "3de09874b388e6491988d0c3607eae1f", "57690e434e280000a2fca1a3",
              "42f67e3f1010101010101010",
              "45000049333e00007f119182c3fb1d10c2b1d326c02831ce0035cb458003025b"
              "000001e0001e8c18d65759d52284a0352c71475c8880391c764d6e5ee0496b32"
              "5ae270c03899493915010101",
              "fba2cad12fc1f9f00d3cebf305410db83d7784b607323d220f24b0a97d541828"
              "00cadb0f68d99ef0e0c0c89ae9bea8884e52d65bc1afd0740f742444747b5b39"
              "ab533163aad4550ee5160975",
              "cdb608c5769189609763b8e18caa81e2"),
    # 11: AES-256, ESN (high 0x156f3126), non-IP payload
    GcmVector(11, "abbccddef00112233445566778899aababbccddef00112233445566778899aab",
              "73616c74616e640169766563", "17405e67156f3126dd0db99b",
              "636973636f0172756c657301746865016e6574776501646566696e6501746865"
              "746563686e6f6c6f67696573017468617477696c6c01646566696e65746f6d6f"
              "72726f7701020201",
              "d4b7ed86a1777f2ea13d6973d324c69e7b43f826fb56831226508bebd2dceb18"
              "d0a6df10e5487df074113e14c641024e3e6773d91a62ee429b043a10e3efe6b0"
              "12a49363412364f8",
              "c0cac587f249e56b11e24f30e44ccc76"),
    # 12: AES-128, SPI 0x335467ae, seq 0xffffffff, empty payload (a dummy-like packet)
    GcmVector(12, "7d773d00c144c525ac619d18c84a3f47", "d966426743457e9182443bc6",
              "335467aeffffffff", "01020201", "437f866b",
              "cb3f699fe9b0822bac961c4504bef270"),
    # 13: AES-128, ESN (SPI 0x100, high 0, low 1), payload "to be or not to be"
    GcmVector(13, "abbccddef00112233445566778899aab", "decaf888cafedebaceface74",
              "000001000000000000000001",
              "746f016265016f72016e6f7401746f0162650001",
              "29c9fc69a197d038ccdd14e2ddfcaa0543332164",
              "412503524303ed3c6c5f283843af8c3e"),
    # 14: AES-256, ESN (SPI 0x796b6963, high and low 0xffffffff)
    GcmVector(14, "6c6567616c697a656d6172696a75616e61616e64646f69746265666f72656961",
              "7475726e333021696765746d", "796b6963ffffffffffffffff",
              "45000030da3a00008001df3bc0a80005c0a800010800c6cd0200070061626364"
              "65666768696a6b6c6d6e6f707172737401020201",
              "f97ab2aa356d8edce17644ac8c78e25dd24dedbb29ebf1b64a274b39b49c3a86"
              "4cd3d78ca4ae68a32b42458fb57dbe821dcc63b9",
              "d0937ba2945f669368661a329fb4c053"),
    # 15 (the draft's page 18): AES-GMAC-128 (RFC 4543), SPI 0x4321, seq 7, IV 0:
    # the payload travels in clear and the ICV covers SPI, seq, IV and the
    # plaintext as AAD.
    GcmVector(15, "4c80cdefbb5d10da906ac73c3613a634", "22433c640000000000000000",
              "0000432100000007",
              "45000030da3a00008001df3bc0a80005c0a800010800c6cd0200070061626364"
              "65666768696a6b6c6d6e6f707172737401020201",
              "45000030da3a00008001df3bc0a80005c0a800010800c6cd0200070061626364"
              "65666768696a6b6c6d6e6f707172737401020201",
              "f2a9a836e155106aa8dcd618e4099aaa", gmac=True),
]


def gcm_vector(case):
    return next(v for v in GCM_VECTORS if v.case == case)


class CbcVector:
    """One AES-CBC ESP packet of RFC 3602 section 4 (no integrity)."""

    def __init__(self, case, mode, key, spi, seq, iv, ip_header, payload, next_header,
                 ciphertext, original_header=None):
        self.case = case
        self.mode = mode
        self.key = h(key)
        self.spi, self.seq = spi, seq
        self.iv = h(iv)
        # the header of the ESP packet as published (cases 5 and 7; not needed for the check)
        self.ip_header = h(ip_header) if ip_header else None
        self.original_header = h(original_header) if original_header else None
        self.payload = h(payload)              # ESP payload data: for tunnel mode the inner packet
        self.next_header = next_header
        self.ciphertext = h(ciphertext)

    @property
    def esp(self):
        """SPI || seq || IV || ciphertext, exactly as published (no ICV)."""
        return struct.pack("!LL", self.spi, self.seq) + self.iv + self.ciphertext

    @property
    def original_packet(self):
        """Transport mode: the packet before ESP, as the RFC prints it."""
        return self.original_header + self.payload


_RFC3602_ICMP = ("08000ebda70a00008e9c083db95b070008090a0b0c0d0e0f101112131415161718191a1b"
                 "1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637")

CBC_VECTORS = [
    # Case #5: transport mode, 192.168.123.3 -> 192.168.123.100, ICMP echo request, 64 bytes
    CbcVector(5, "transport", "90d382b410eeba7ad938c46cec1a82bf", 0x4321, 1,
              "e96e8c08ab465763fd098d45dd3ff893",
              "4500007c08f200004032f9a5c0a87b03c0a87b64", _RFC3602_ICMP, 1,
              "f663c25d325c18c6a9453e194e120849a4870b66cc6b9965330013b4898dc856"
              "a4699e523a55db080b59ec3a8e4b7e52775b07d1db34ed9c538ab50c551b874a"
              "a269add047ad2d5913ac19b7cfbad4a6",
              original_header="4500005408f200004001f9fec0a87b03c0a87b64"),
    # Case #6: transport mode, SPI 0x4321 seq 8, a 28-byte ICMP echo request
    CbcVector(6, "transport", "90d382b410eeba7ad938c46cec1a82bf", 0x4321, 8,
              "69d08df7d203329db093fc4924e5bd80", None,
              "0800b5e8a80a0500a69c083d0b660e00777777777777777777777777", 1,
              "f51995881ec4e0c4488987ce742e8109689bb379d2d750c0d915dca346a89f75"),
    # Case #7: tunnel mode, outer and inner 192.168.123.3 -> 192.168.123.200, seq 2
    CbcVector(7, "tunnel", "0123456789abcdef0123456789abcdef", 0x8765, 2,
              "f4e765244f6407adf13dc1380f673f37",
              "4500008c090500004032f91ec0a87b03c0a87bc8",
              "45000054090400004001f988c0a87b03c0a87bc808009f76a90a0100b49c083d"
              "02a2040008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223"
              "2425262728292a2b2c2d2e2f3031323334353637", 4,
              "773b5241a4c449225e4f3ce5ed611b0c237ca96cf74a93013c1b0ea1a0cf70f8"
              "e4ecaec78ac53aad7a0f022b859243c647752e94a859352b8a4d4d2decd136e5"
              "c177f132ad3fbfb2201ac9904c74ee0a109e0ca1e4dfe9d5a100b842f1c22f0d"),
    # Case #8: tunnel mode, same SA as case 7, seq 5, inner 192.168.123.3 -> 192.168.123.200
    CbcVector(8, "tunnel", "0123456789abcdef0123456789abcdef", 0x8765, 5,
              "85d47224b5f3dd5d2101d4ea8dffab22", None,
              "45000044090c00004001f990c0a87b03c0a87bc80800d63caa0a0200c69c083d"
              "a3de0300ffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
              "ffffffff", 4,
              "15b92683819596a8047232cc00f7048fe45318e11f8a0f62ede3c3fc61203bb5"
              "0f980a08c9843fd3a1b06d5c07ff9639b7eb7dfb3512e5de435e7207ed971ef3"
              "d2726d9b5ef6affc6d17a0decbb13892"),
]


def cbc_vector(case):
    return next(v for v in CBC_VECTORS if v.case == case)


def _cbc_decrypt(key, iv, ct):
    d = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return d.update(ct) + d.finalize()


def check_vectors():
    """Re-derive every vector; returns a list of complaints (empty when all agree)."""
    bad = []
    for v in GCM_VECTORS:
        aead = AESGCM(v.key)
        if v.gmac:
            aad = v.aad + v.iv + v.plaintext
            if aead.encrypt(v.salt + v.iv, b"", aad) != v.icv or v.ciphertext != v.plaintext:
                bad.append(f"gcm #{v.case} (GMAC)")
        elif aead.encrypt(v.salt + v.iv, v.plaintext, v.aad) != v.ciphertext + v.icv:
            bad.append(f"gcm #{v.case}")
    for v in CBC_VECTORS:
        pt = _cbc_decrypt(v.key, v.iv, v.ciphertext)
        padlen, nh = pt[-2], pt[-1]
        if (pt[:len(pt) - padlen - 2] != v.payload or nh != v.next_header
                or pt[len(pt) - padlen - 2:-2] != bytes(range(1, padlen + 1))):
            bad.append(f"rfc3602 #{v.case}")
        if v.original_header is not None and (
                struct.unpack("!H", v.original_header[2:4])[0] != len(v.original_packet)):
            bad.append(f"rfc3602 #{v.case} original length")
    return bad
