/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * IPsec objects as the control plane describes them: security associations,
 * security policies and the system-wide defaults of the seeds' ipsec(4)
 * (def_policy, *_deflev, dfbit, ecn, ah_cleartos). YAML provisioning and
 * PF_KEY both produce these and hand them to the store. No DPDK here.
 */
#ifndef DPS_IPSEC_H
#define DPS_IPSEC_H

#include <stdbool.h>
#include <stdint.h>

#include "control/addr.h"

#define DPS_MAX_KEY_LEN	   64 /* bytes, salt/nonce included */
#define DPS_MAX_IPSEC_REQS 3  /* e.g. IPComp + ESP + AH */

enum dps_ipsec_proto {
	DPS_PROTO_ESP = 50,
	DPS_PROTO_AH = 51,
	DPS_PROTO_IPCOMP = 108,
};

enum dps_ipsec_mode {
	DPS_MODE_TRANSPORT,
	DPS_MODE_TUNNEL,
};

enum dps_dir {
	DPS_DIR_IN,
	DPS_DIR_OUT,
	DPS_DIR_FWD,
};

/* RFC 2367 / KAME levels (ipsec(4): default, use, require, unique). */
enum dps_level {
	DPS_LEVEL_DEFAULT, /* take the system default for the protocol and mode (*_deflev) */
	DPS_LEVEL_USE,	   /* protect if an SA exists, else send in clear */
	DPS_LEVEL_REQUIRE, /* protect or drop (and ACQUIRE) */
	DPS_LEVEL_UNIQUE,  /* require, with an SA bound to this policy by reqid */
};

enum dps_policy_action {
	DPS_ACTION_DISCARD,
	DPS_ACTION_BYPASS,  /* "none" in setkey/PF_KEY terms */
	DPS_ACTION_PROTECT, /* "ipsec" */
};

/* Encryption transforms. Keys of salted modes (GCM, CTR, GMAC, ChaCha20-Poly1305)
 * carry the 4-byte salt after the key, as RFC 4106/3686/4543/7634 and PF_KEY do. */
enum dps_enc_alg {
	DPS_ENC_NULL,		   /* RFC 2410 */
	DPS_ENC_AES_CBC,	   /* RFC 3602; 128/192/256-bit keys */
	DPS_ENC_AES_CTR,	   /* RFC 3686 */
	DPS_ENC_AES_GCM,	   /* RFC 4106, ICV 16 */
	DPS_ENC_AES_GMAC,	   /* RFC 4543: authentication only */
	DPS_ENC_CHACHA20_POLY1305, /* RFC 7634 */
};

enum dps_auth_alg {
	DPS_AUTH_NONE, /* AEAD, or (ESP) no integrity */
	DPS_AUTH_HMAC_SHA1_96,
	DPS_AUTH_HMAC_SHA256_128,
	DPS_AUTH_HMAC_SHA384_192,
	DPS_AUTH_HMAC_SHA512_256,
	DPS_AUTH_AES_GMAC, /* RFC 4543 in AH: key and 4-byte salt, 8-byte IV, ICV 16 */
};

enum dps_dfbit {
	DPS_DF_CLEAR,
	DPS_DF_SET,
	DPS_DF_COPY,
};

struct dps_lifetime {
	uint64_t bytes; /* 0 = unlimited */
	uint64_t packets;
	uint64_t add_s; /* seconds after the SA was added */
	uint64_t use_s; /* seconds after its first use */
};

struct dps_sa {
	uint32_t spi;		  /* host order */
	uint8_t proto;		  /* enum dps_ipsec_proto */
	uint8_t mode;		  /* enum dps_ipsec_mode */
	uint8_t dir;		  /* DPS_DIR_IN or DPS_DIR_OUT */
	struct dps_addr src, dst; /* SA endpoints: the outer header in tunnel mode */
	uint32_t reqid;
	uint8_t enc_alg; /* enum dps_enc_alg */
	uint8_t enc_key_len;
	uint8_t enc_key[DPS_MAX_KEY_LEN];
	uint8_t auth_alg; /* enum dps_auth_alg */
	uint8_t auth_key_len;
	uint8_t auth_key[DPS_MAX_KEY_LEN];
	uint32_t replay_window; /* packets, 0 = no replay protection */
	bool esn;
	bool udp_encap; /* RFC 3948 */
	uint16_t encap_sport, encap_dport;
	uint8_t ttl;   /* outer TTL/hop limit in tunnel mode */
	uint8_t dfbit; /* enum dps_dfbit */
	struct dps_lifetime soft, hard;
	/* Sequence number the SA starts from: out, the last one already used;
	 * in, the replay window's right edge. 0 for a new SA; set when a
	 * restarted dpsecd restores a key daemon's SAs (pfkey_emul/state.c). */
	uint64_t seq_start;
};

struct dps_selector {
	struct dps_prefix src, dst;
	uint8_t proto;		     /* IPPROTO_*, 255 = any */
	uint16_t sport_lo, sport_hi; /* ICMP: type range */
	uint16_t dport_lo, dport_hi; /* ICMP: code range */
};

struct dps_ipsec_req {
	uint8_t proto; /* enum dps_ipsec_proto */
	uint8_t mode;
	uint8_t level;			  /* enum dps_level */
	uint32_t reqid;			  /* 0 = any SA with matching endpoints */
	struct dps_addr tun_src, tun_dst; /* tunnel mode only */
};

struct dps_policy {
	uint32_t id;	   /* assigned by the store (PF_KEY: index | dir, steps of 8) */
	uint8_t dir;	   /* enum dps_dir */
	uint32_t priority; /* lower wins, as in Linux/KAME */
	struct dps_selector sel;
	uint8_t action; /* enum dps_policy_action */
	unsigned int n_reqs;
	struct dps_ipsec_req reqs[DPS_MAX_IPSEC_REQS];
};

/* System-wide knobs of the seeds' ipsec(4) sysctls. */
struct dps_ipsec_defaults {
	uint8_t def_policy4; /* DPS_ACTION_DISCARD or DPS_ACTION_BYPASS, when no policy matches */
	uint8_t def_policy6;
	uint8_t esp_trans_deflev; /* DPS_LEVEL_USE or DPS_LEVEL_REQUIRE */
	uint8_t esp_net_deflev;
	uint8_t ah_trans_deflev;
	uint8_t ah_net_deflev;
	uint8_t dfbit;		/* default for SAs that do not say */
	bool ecn;		/* RFC 6040 normal mode on tunnel encap/decap */
	bool ah_cleartos;	/* AH ignores (zeroes) TOS in the ICV */
	uint16_t ah_offsetmask; /* AH: IPv4 flags+fragment offset ANDed with it in the ICV (FreeBSD)
				 */
	uint32_t replay_window; /* default for SAs that do not say */
	uint32_t
		policy_log_interval_ms; /* policy-failure log records at most this often; 0: none */
	/* The seeds' protocol switches: a disabled protocol's SAs are refused and
	 * its packets for the gateway dropped (drop_proto_off). */
	bool esp_enable, ah_enable, ipcomp_enable;
	/* Solaris: these pass an inbound require policy in clear when set. */
	bool icmp_accept_clear, igmp_accept_clear, pim_accept_clear;
};

/** "esp", "ah" or "ipcomp". */
static inline const char *dps_ipsec_proto_name(uint8_t proto)
{
	return proto == DPS_PROTO_ESP ? "esp" : proto == DPS_PROTO_AH ? "ah" : "ipcomp";
}

/** Whether @proto (enum dps_ipsec_proto) is enabled by @d's *_enable. */
static inline bool dps_proto_enabled(const struct dps_ipsec_defaults *d, uint8_t proto)
{
	return proto == DPS_PROTO_ESP  ? d->esp_enable
	       : proto == DPS_PROTO_AH ? d->ah_enable
				       : d->ipcomp_enable;
}

#endif
