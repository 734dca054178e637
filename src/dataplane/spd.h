/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Security policy database: the RFC 4301 SPD in the seeds' terms, compiled
 * into rte_acl contexts per address family and direction, with the changes
 * since the last compilation in front of them. Published in a snapshot.
 */
#ifndef DP_SPD_H
#define DP_SPD_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <netinet/in.h>

#include <rte_ip.h>
#include <rte_mbuf.h>

#include "control/ipsec.h"
#include "dataplane/verdict.h"

struct rte_acl_ctx;
struct dp_sa;

/* A policy's hit count of one worker, alone on its cache line: workers count
 * every packet, and must not bounce a shared line between cores. */
struct dp_hits {
	uint64_t n;
	uint64_t no_sa; /* out: packets dropped for want of an SA; the control thread ACQUIREs */
} __rte_cache_aligned;

enum dp_spd_ctx {
	DP_SPD_OUT, /* forwarded packets about to leave */
	DP_SPD_IN,  /* packets for the gateway itself */
	DP_SPD_FWD, /* packets arriving to be forwarded: fwd policies, then in */
	DP_SPD_NCTX,
};

/* The main classifiers of a family: the in context alone, and the fwd and out
 * contexts in one trie. A forwarded packet needs both answers, and one walk
 * of the trie gives them (dp_spd_lookup_fwd_out()): with rules of both, the
 * trie has two categories (fwd first); with rules of one, that one alone in
 * one category, which costs less to resolve (dp_acl_set.fo). */
enum dp_acl_ctx {
	DP_ACL_IN,
	DP_ACL_FWD_OUT,
	DP_ACL_NCTX,
};
#define DP_ACL_FO_FWD 1 /* dp_acl_set.fo: the trie has fwd context rules */
#define DP_ACL_FO_OUT 2 /* and out context rules */
#define DP_ACL_CATS   4 /* results per packet with both: rte_acl wants 1 or a multiple of 4 */

/* What a worker reads for every packet comes first, on one cache line. Never
 * changed once a worker may see it: a new binding or verdict is a new object
 * stored in the policy's slot (its old one freed after a grace period). */
struct dp_policy {
	uint8_t verdict; /* enum dp_verdict */
	uint8_t dir;
	uint32_t id;
	struct dp_sa *sa;	  /* out: the SA to apply */
	struct dp_hits *hits;	  /* [n_workers], owned by the store, survives rebuilds */
	struct dps_ipsec_req req; /* in/fwd: what an accepting SA must look like */
	/* A bundle (RFC 4301 §4.5): its requests as applied outbound, innermost
	 * first; 0 for a policy of one request. Out: @sa is the innermost SA,
	 * the next ones hang from it (dp_sa.outer). In/fwd: the SAs a packet
	 * came through must be these, in reverse (dp_policy_accepts_meta()).
	 * Last: a policy of one request is allocated without it
	 * (dp_policy_size()). */
	uint8_t n_bundle;
	struct dps_ipsec_req bundle[DPS_MAX_IPSEC_REQS];
};

/* A policy's selector and rank, as the linear classifier matches it. */
struct dp_rule {
	uint32_t slot; /* the policy's slot in the table the SPD points to */
	uint32_t prio; /* lower wins, then the older (seq) */
	uint64_t seq;
	uint8_t dir;
	uint8_t v6;
	uint8_t proto; /* 0: any */
	uint8_t src_len, dst_len;
	uint16_t sport_lo, sport_hi, dport_lo, dport_hi;
	uint8_t src[16], dst[16]; /* network order, masked */
};

/* The main classifiers, compiled from every policy of one moment: rule i is
 * slot i, rules in rank order. Shared by the SPDs until the next build. */
struct dp_acl_set {
	unsigned int refs; /* control thread only */
	struct rte_acl_ctx *acl[2][DP_ACL_NCTX];
	uint8_t fo[2]; /* [v6]: DP_ACL_FO_*, the contexts in acl[v6][DP_ACL_FWD_OUT] */
	unsigned int n;
	struct dp_rule *rules;
};

/*
 * The policies of one family added since the main classifiers' build, by
 * destination: for each destination prefix length among them, a hash of the
 * masked destination (a tuple space search on one field). A packet costs a
 * probe per distinct length (one or two for a key daemon's tunnels), not a
 * scan of every recent policy. Changed in place by the control thread, so
 * that a change costs itself alone: a rule is written, then its bucket's head
 * (release); a length, then the count; a policy's object is stored in its
 * entry (release), NULL once deleted. Workers see a complete rule or none.
 */
struct dp_recent {
	uint32_t cap, n; /* entries: room, used */
	uint32_t n_len;	 /* distinct destination prefix lengths in lens[] */
	uint8_t lens[129];
	uint32_t mask;		/* buckets - 1 */
	uint32_t *head;		/* [bucket]: first entry + 1, 0: none */
	uint32_t *next;		/* [entry]: next entry of its bucket + 1 */
	struct dp_rule *rules;	/* [entry] */
	struct dp_policy **pol; /* [entry]: the policy, NULL once deleted */
};

/** An empty index with room for @cap entries, or NULL. */
struct dp_recent *dp_recent_new(uint32_t cap);
/** A copy of @r with twice the room (entries keep their numbers), or NULL. */
struct dp_recent *dp_recent_grow(const struct dp_recent *r);
/** Add @rule for @p: its entry number, or -1 when full. */
int dp_recent_add(struct dp_recent *r, const struct dp_rule *rule, struct dp_policy *p);
/** Store @p (NULL: deleted) in entry @i. */
void dp_recent_set(struct dp_recent *r, uint32_t i, struct dp_policy *p);
void dp_recent_free(struct dp_recent *r);

/*
 * Two levels: the main classifiers (rte_acl, rebuilt in the background) and
 * the policies added since their build, indexed by destination (dp_recent). A slot emptied
 * (NULL) is a policy deleted since: a packet whose main match is dead is
 * classified again by a scan of the main rules, until the next build. The
 * best match of both levels wins (priority, then age).
 */
#define DP_CLEAR_ICMP 1 /* ipsec.icmp_accept_clear: ICMP, ICMPv6 */
#define DP_CLEAR_IGMP 2 /* igmp_accept_clear */
#define DP_CLEAR_PIM  4 /* pim_accept_clear */

struct dp_spd {
	struct rte_acl_ctx *acl[2][DP_ACL_NCTX]; /* [v6][ctx], NULL when empty; set's */
	uint8_t fo[2];				 /* set's: DP_ACL_FO_* */
	struct dp_acl_set *set;
	struct dp_policy *const *slot; /* [slot]: the policy, NULL once deleted; not owned */
	struct dp_recent *recent[2];   /* [v6], NULL when none; not owned */
	uint8_t def_verdict[2];	       /* when nothing matches: discard or bypass */
	uint8_t accept_clear;	       /* DP_CLEAR_*: pass an inbound require policy in clear */
	uint64_t gen;
};

/* Classification keys, in network byte order (ACL input). */
struct dp_acl4_key {
	uint8_t proto;
	uint8_t pad[3];
	uint32_t src;
	uint32_t dst;
	uint16_t sport; /* ICMP: type */
	uint16_t dport; /* ICMP: code */
};

struct dp_acl6_key {
	uint8_t proto;
	uint8_t pad[3];
	uint8_t src[16];
	uint8_t dst[16];
	uint16_t sport;
	uint16_t dport;
};

/** The rule of policy @p (insertion order @seq) in slot @slot. */
void dp_rule_make(struct dp_rule *r, const struct dps_policy *p, uint64_t seq, uint32_t slot);

/**
 * Compile @n rules (taken over: freed with the set) into main classifiers.
 * The rules are sorted by rank and each one's slot becomes its position;
 * @perm, if not NULL, receives for each rule's former slot its new one.
 * Thread-safe: runs in the background builder. NULL on failure.
 */
struct dp_acl_set *dp_acl_set_build(struct dp_rule *rules, unsigned int n, uint32_t *perm);

/** Drop a reference to compiled classifiers; the last one frees them. */
void dp_acl_set_put(struct dp_acl_set *set);

/** Bytes of the dp_policy of @p: without the bundle's requests unless it
 * is a bundle (a policy of one request, the common case, is a third). */
size_t dp_policy_size(const struct dps_policy *p);

/** What policy @p means to a worker, in dp_policy_size(@p) bytes at @dp,
 * with its SA @out_sa (a bundle's innermost, bound only when every SA of the
 * bundle is: NULL otherwise) and the defaults @d. */
void dp_policy_resolve(struct dp_policy *dp, const struct dps_policy *p, struct dp_sa *out_sa,
		       struct dp_hits *hits, const struct dps_ipsec_defaults *d);

/** Free an SPD (not its set's classifiers while other SPDs hold them, nor its slots). */
void dp_spd_free(struct dp_spd *spd);

/** True if rule @r applies in context @ctx. */
bool dp_rule_in_ctx(const struct dp_rule *r, enum dp_spd_ctx ctx);

/** True if rule @r matches key @key of its family. */
bool dp_rule_match(const struct dp_rule *r, const uint8_t *key);

static inline void dp_spd_l4_ports(uint8_t proto, const uint8_t *l4, uint32_t avail,
				   uint16_t *sport, uint16_t *dport)
{
	*sport = 0;
	*dport = 0;
	if ((proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP) && avail >= 4) {
		memcpy(sport, l4, 2);
		memcpy(dport, l4 + 2, 2);
	} else if ((proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) && avail >= 2) {
		/* PF_KEY convention: ICMP type in the source port, code in the destination. */
		*sport = rte_cpu_to_be_16(l4[0]);
		*dport = rte_cpu_to_be_16(l4[1]);
	}
}

/** Fill an IPv4 key from the IP header at @ip (L4 ports or ICMP type/code if
 * present). Inline: the input stage makes one per packet. */
static inline void dp_spd_key4(struct dp_acl4_key *k, const struct rte_ipv4_hdr *ip,
			       uint32_t l3_len)
{
	uint32_t hl = rte_ipv4_hdr_len(ip);
	bool first_frag = (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_OFFSET_MASK)) == 0;

	k->proto = ip->next_proto_id;
	k->src = ip->src_addr;
	k->dst = ip->dst_addr;
	dp_spd_l4_ports(k->proto, (const uint8_t *)ip + hl, first_frag ? l3_len - hl : 0, &k->sport,
			&k->dport);
}

/** Fill an IPv6 key. */
static inline void dp_spd_key6(struct dp_acl6_key *k, const struct rte_ipv6_hdr *ip6,
			       uint32_t l3_len)
{
	k->proto = ip6->proto;
	memcpy(k->src, ip6->src_addr, 16);
	memcpy(k->dst, ip6->dst_addr, 16);
	dp_spd_l4_ports(k->proto, (const uint8_t *)(ip6 + 1), l3_len - sizeof(*ip6), &k->sport,
			&k->dport);
}

/**
 * Classify @n keys of family @v6 against context @ctx: @res[i] is the
 * matching policy or NULL.
 */
void dp_spd_lookup(const struct dp_spd *spd, int v6, enum dp_spd_ctx ctx, const uint8_t **keys,
		   const struct dp_policy **res, uint16_t n);

/** True if one walk classifies keys of family @v6 against both the fwd and
 * the out contexts (dp_spd_lookup_fwd_out()); otherwise two lookups cost no
 * more, and the out one is only needed for what passes the fwd one. */
static inline bool dp_spd_one_walk(const struct dp_spd *spd, int v6)
{
	return spd->fo[v6] == (DP_ACL_FO_FWD | DP_ACL_FO_OUT);
}

/**
 * Classify @n keys of family @v6 against the fwd and the out contexts at
 * once: @fwd[i] and @out[i] are what dp_spd_lookup() gives for each.
 */
void dp_spd_lookup_fwd_out(const struct dp_spd *spd, int v6, const uint8_t **keys,
			   const struct dp_policy **fwd, const struct dp_policy **out, uint16_t n);

/** True if @sa is one the in/fwd policy @p accepts (RFC 4301 §5.2). */
int dp_policy_accepts(const struct dp_policy *p, const struct dp_sa *sa);

/**
 * True if the in/fwd policy @p accepts the @n SAs @via (outermost first, as
 * the packet came through them) that decrypted a packet: one SA its request
 * accepts, or for a bundle exactly its SAs, each layer in its place. An
 * IPComp layer may be missing (RFC 3173 §2.2: a payload that did not shrink
 * is sent without it); no other may, nor may one be added.
 */
int dp_policy_accepts_chain(const struct dp_policy *p, struct dp_sa *const *via, unsigned int n);

#endif
