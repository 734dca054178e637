/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * PF_KEY v2 codec (RFC 2367 plus the Linux/KAME extensions of
 * linux/pfkeyv2.h): validation of incoming messages as data (which
 * extensions each message type allows and requires), translation between
 * PF_KEY extensions and the store's SA/policy objects, and the builders of
 * every message the "kernel" sends. No DPDK, no sockets: unit-tested and
 * fuzzed on its own.
 */
#ifndef PFK_CODEC_H
#define PFK_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pfkey_emul/pfkeyv2_ext.h"

#include "control/ipsec.h"

/* Largest message we accept or build (sadb_msg_len is 16 bits of 8-byte words). */
#define PFK_MSG_MAX (65535 * 8)
/* charon reads into 4096-byte buffers: every reply we build for one object fits. */
#define PFK_REPLY_MAX 4096
/* Largest replay window SADB_X_EXT_SA_REPLAY may set (as ipsec.replay_window in YAML). */
#define PFK_REPLAY_MAX 65536
/* Extension types charon understands; we never send a higher one. */
#define PFK_EXT_SEND_MAX 25

/**
 * A validated message: pointers into the caller's buffer, by extension
 * type. Only the extensions its message type uses are set: the others
 * were validated as Linux does and are ignored (NULL), as is any type
 * above PFK_EXT_MAX.
 */
struct pfk_msg {
	const struct sadb_msg *hdr;
	const struct sadb_ext *ext[PFK_EXT_MAX + 1]; /* NULL when absent or ignored */
};

/**
 * Validate @len bytes at @buf as one PF_KEY message: version, length in
 * words equal to @len, reserved fields, every extension's length and type,
 * no duplicates, the extensions the message type requires. As Linux's
 * af_key.c parse_exthdrs, every extension type gets the generic checks
 * (minimum size, address length of its family and prefix length, key bits
 * within the extension, SEC_CTX length) in every message type; types above
 * PFK_EXT_MAX are skipped. The extensions a message type uses are also
 * checked in content (SPIRANGE order, SA2 mode, X_POLICY with its
 * ipsecrequests...); the others are ignored. Returns 0, or the
 * positive errno to reply with (EINVAL, EMSGSIZE, EOPNOTSUPP for unknown
 * types). On error @m is unspecified.
 * As Linux: EMSGSIZE for a short message or a length mismatch, EINVAL for
 * message types 0 and > SADB_MAX; EOPNOTSUPP for X_PCHANGE, the one type in
 * range without a handler.
 */
int pfk_parse(const void *buf, size_t len, struct pfk_msg *m);

/** The SA type (SADB_SATYPE_ESP/AH/X_SATYPE_IPCOMP) as an IP protocol, or 0. */
uint8_t pfk_satype_proto(uint8_t satype);
/** The SA type of an IP protocol (50, 51, 108), or SADB_SATYPE_UNSPEC. */
uint8_t pfk_proto_satype(uint8_t proto);

/** An address extension (SRC, DST, PROXY) as a dps_addr; port and prefix length too. */
int pfk_address(const struct sadb_ext *e, struct dps_addr *a, uint8_t *prefixlen, uint8_t *proto,
		uint16_t *port);

/**
 * The SA an ADD or UPDATE describes: SPI, protocol from the SA type, mode
 * and reqid (X_SA2), endpoints, algorithms and keys (salt included for
 * GCM/CTR/GMAC/ChaCha20-Poly1305, RFC 4106 §8.1), replay window
 * (sadb_sa_replay, or SADB_X_EXT_SA_REPLAY up to PFK_REPLAY_MAX), ESN
 * (SADB_X_SAFLAGS_ESN), lifetimes (allocations = packets), NAT-T.
 * NEW_ADDRESS_SRC/DST are the caller's (pfk_new_addresses). The direction
 * is not part of PF_KEY: the caller sets it.
 * Returns 0, EINVAL for inconsistent input, ENOSYS for an algorithm or key
 * size dpsec does not implement.
 */
int pfk_sa_from_msg(const struct pfk_msg *m, struct dps_sa *sa);

/**
 * The endpoints an UPDATE moves an SA to (SADB_X_EXT_NEW_ADDRESS_SRC/DST,
 * each optional): @src/@dst are replaced by them. Returns 0, or EINVAL
 * when the resulting endpoints are of two families.
 */
int pfk_new_addresses(const struct pfk_msg *m, struct dps_addr *src, struct dps_addr *dst);

/**
 * The policy an X_SPDADD/X_SPDUPDATE/X_SPDDELETE describes: direction,
 * action, priority, selector (SRC/DST prefixes, upper-layer protocol, ports;
 * ICMP type/code carried in the ports), IPsec requests with tunnel
 * endpoints, levels and reqids. X_POLICY's id is copied to @p->id (0 if
 * none). Returns 0 or EINVAL.
 */
int pfk_policy_from_msg(const struct pfk_msg *m, struct dps_policy *p);

/** Direction and selector alone (SPDDELETE: type and requests do not matter). 0 or EINVAL. */
int pfk_policy_key(const struct pfk_msg *m, uint8_t *dir, struct dps_selector *sel);

/** Algorithm ids <-> dpsec transforms (Linux numbering). ENOSYS when unknown. */
int pfk_enc_alg(uint8_t sadb_ealg, unsigned int key_bits, uint8_t *alg, uint8_t *key_len);
int pfk_auth_alg(uint8_t sadb_aalg, unsigned int key_bits, uint8_t *alg, uint8_t *key_len);
uint8_t pfk_sadb_ealg(uint8_t dps_enc_alg);
uint8_t pfk_sadb_aalg(uint8_t dps_auth_alg);

/* ---- building messages ---- */

/** A message being built; writers fail with EMSGSIZE once @cap is reached. */
struct pfk_out {
	uint8_t *buf;
	size_t len, cap;
	int err; /* first error: later writers do nothing */
};

/** Start a message into @buf with header @hdr (its length is set by pfk_out_end). */
void pfk_out_begin(struct pfk_out *o, void *buf, size_t cap, const struct sadb_msg *hdr);
/** Finish: writes sadb_msg_len. Returns the length in bytes, or -errno. */
long pfk_out_end(struct pfk_out *o);

/** What the "kernel" knows of an SA besides its configuration. */
struct pfk_sa_state {
	uint8_t state;		 /* SADB_SASTATE_* */
	uint64_t packets, bytes; /* LIFETIME_CURRENT allocations and bytes */
	uint64_t add_time;	 /* seconds since the epoch */
	uint64_t use_time;	 /* 0 = never used */
};

/** SA + X_SA2 + SRC + DST (+ NAT-T) of @sa. */
void pfk_out_sa_ids(struct pfk_out *o, const struct dps_sa *sa, uint8_t state);
/** LIFETIME_CURRENT, and HARD/SOFT when @limits (both omitted when unlimited: Linux sends them). */
void pfk_out_lifetimes(struct pfk_out *o, const struct dps_sa *sa, const struct pfk_sa_state *st,
		       bool limits);
/** KEY_AUTH / KEY_ENCRYPT of @sa. */
void pfk_out_keys(struct pfk_out *o, const struct dps_sa *sa);
/** One lifetime extension of type @type. */
void pfk_out_lifetime(struct pfk_out *o, uint16_t type, const struct dps_lifetime *l);
/** An address extension. */
void pfk_out_address(struct pfk_out *o, uint16_t type, const struct dps_addr *a, uint8_t prefixlen,
		     uint8_t proto, uint16_t port);
/** SRC, DST (selector) and X_POLICY of @p; @use_time in seconds (0 = never), for LIFETIME_CURRENT.
 */
void pfk_out_policy(struct pfk_out *o, const struct dps_policy *p, uint64_t add_time,
		    uint64_t use_time);
/** SA extension alone, larval (GETSPI reply). */
void pfk_out_larval(struct pfk_out *o, uint32_t spi);

/** Algorithms the devices run, for SUPPORTED and ACQUIRE's PROPOSAL. */
struct pfk_algs {
	unsigned int n_auth, n_enc;
	struct sadb_alg auth[16], enc[16];
};

/** SUPPORTED_AUTH and SUPPORTED_ENCRYPT (REGISTER reply). */
void pfk_out_supported(struct pfk_out *o, const struct pfk_algs *a);
/** PROPOSAL with one combination per enc x auth pair (ACQUIRE). */
void pfk_out_proposal(struct pfk_out *o, const struct pfk_algs *a);

/** A whole reply for one SA (GET, DUMP, ADD/UPDATE broadcast) into @buf. */
long pfk_build_sa(void *buf, size_t cap, const struct sadb_msg *hdr, const struct dps_sa *sa,
		  const struct pfk_sa_state *st, bool keys);
/** A whole reply for one policy (SPDADD/SPDGET/SPDDUMP...). */
long pfk_build_policy(void *buf, size_t cap, const struct sadb_msg *hdr, const struct dps_policy *p,
		      uint64_t add_time, uint64_t use_time);
/** EXPIRE for @sa: @hard selects LIFETIME_HARD, else LIFETIME_SOFT; CURRENT always. */
long pfk_build_expire(void *buf, size_t cap, uint32_t seq, const struct dps_sa *sa,
		      const struct pfk_sa_state *st, bool hard);
/**
 * ACQUIRE for outbound policy @p with no SA: SRC/DST of the SA to negotiate
 * (@src/@dst: tunnel endpoints, or the packet's hosts in transport mode),
 * X_POLICY (dir out, id), PROPOSAL from @a.
 */
long pfk_build_acquire(void *buf, size_t cap, uint32_t seq, uint8_t satype,
		       const struct dps_addr *src, const struct dps_addr *dst,
		       const struct dps_policy *p, const struct pfk_algs *a);
/**
 * X_NAT_T_NEW_MAPPING for inbound UDP-encapsulated @sa whose peer now sends
 * from @new_src port @new_sport, as Linux's af_key.c lays it out: SA,
 * ADDRESS_SRC + NAT_T_SPORT (the SA's peer and port), ADDRESS_DST +
 * NAT_T_DPORT (the new ones); plus X_SA2 (mode, reqid), which charon needs.
 */
long pfk_build_new_mapping(void *buf, size_t cap, uint32_t seq, const struct dps_sa *sa,
			   const struct dps_addr *new_src, uint16_t new_sport);
/** An error reply: the request's header with @err in sadb_msg_errno, no extensions. */
long pfk_build_error(void *buf, size_t cap, const struct sadb_msg *req, int err);

#endif
