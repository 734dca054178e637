/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>
#include <string.h>

#include <rte_ipsec_sad.h>

#include "dataplane/dp.h"
#include "dataplane/sa.h"
#include "dataplane/sad.h"

#define SAD_MIN_CAP  1024
#define SAD_MIN_CAP3 256

/*
 * rte_hash gives a table of E entries E rounded up to a power of two bucket
 * slots: @cap and @cap3 are powers of two, passed as they are (one more
 * would double every table). A copy is built at most half full and rebuilt
 * before three quarters (dp_sad_pair_fits), where cuckoo insertion into
 * 8-slot buckets does not fail. No key is ever SPI-only: that table holds a
 * slot per SPI of the other two (rte_ipsec_sad adds the three sizes for it).
 */
static struct rte_ipsec_sad *sad_create(int t, unsigned int cap, unsigned int cap3)
{
	static unsigned int seq;
	char name[RTE_IPSEC_SAD_NAMESIZE];
	struct rte_ipsec_sad_conf conf = {
		.socket_id = SOCKET_ID_ANY,
		.max_sa = {0, cap, cap3},
		.flags = t & 1 ? RTE_IPSEC_SAD_FLAG_IPV6 : 0,
	};

	snprintf(name, sizeof(name), "dps_sad%d_%u", t, seq++);
	return rte_ipsec_sad_create(name, &conf);
}

static int sa_v6(const struct dp_sa *sa)
{
	return sa->cfg.dst.family == AF_INET6;
}

static int sa_table(const struct dp_sa *sa)
{
	return (sa->cfg.proto == DPS_PROTO_IPCOMP ? DP_SAD_IPCOMP : 0) + sa_v6(sa);
}

/* An IPComp tunnel SA is also found by its peer's uncompressed IP-in-IP;
 * of two SAs of one peer (a rekey), the one added last. */
static bool sa_ipip(const struct dp_sa *sa)
{
	return sa->cfg.proto == DPS_PROTO_IPCOMP && sa->cfg.mode == DPS_MODE_TUNNEL;
}

/*
 * AH and ESP share the SPI space but not their SAs (Linux keys its states by
 * destination, SPI and protocol): an AH SA is keyed with the unspecified
 * source address, so that the AH lookup (ah.c) finds it before an ESP SA of
 * the same SPI; both lookups check the protocol of what they find.
 */
static int sa_type(const struct dp_sa *sa)
{
	return sa->cfg.proto == DPS_PROTO_AH ? RTE_IPSEC_SAD_SPI_DIP_SIP : RTE_IPSEC_SAD_SPI_DIP;
}

/* The keys @sa takes in its table's <SPI, destination, source> hash. */
static unsigned int sa_keys3(const struct dp_sa *sa)
{
	return (sa_type(sa) == RTE_IPSEC_SAD_SPI_DIP_SIP) + sa_ipip(sa);
}

static unsigned int room(unsigned int min, unsigned int n)
{
	unsigned int cap = min;

	while (cap < 2 * n)
		cap *= 2;
	return cap;
}

static bool full(unsigned int n, unsigned int cap)
{
	return n > cap - cap / 4;
}

/* The key of @sa: by its SPI (CPI) and destination, or (@ipip) by
 * DP_SAD_IPIP, its destination and its source. */
static void sa_key(const struct dp_sa *sa, union rte_ipsec_sad_key *k, bool ipip)
{
	const struct dps_sa *c = &sa->cfg;
	uint32_t spi = rte_cpu_to_be_32(ipip ? DP_SAD_IPIP : c->spi);

	memset(k, 0, sizeof(*k));
	if (sa_v6(sa)) {
		k->v6.spi = spi;
		memcpy(k->v6.dip, &c->dst.v6, 16);
		if (ipip)
			memcpy(k->v6.sip, &c->src.v6, 16);
	} else {
		k->v4.spi = spi;
		k->v4.dip = c->dst.v4.s_addr;
		if (ipip)
			k->v4.sip = c->src.v4.s_addr;
	}
}

static int sa_add(struct rte_ipsec_sad *sad, struct dp_sa *sa)
{
	union rte_ipsec_sad_key k;
	int rc;

	sa_key(sa, &k, false);
	rc = rte_ipsec_sad_add(sad, &k, sa_type(sa), sa);
	if (rc == 0 && sa_ipip(sa)) {
		sa_key(sa, &k, true);
		rc = rte_ipsec_sad_add(sad, &k, RTE_IPSEC_SAD_SPI_DIP_SIP, sa);
	}
	return rc;
}

static int sa_del(struct rte_ipsec_sad *sad, struct dp_sa *sa)
{
	union rte_ipsec_sad_key k;
	int rc, rc2 = 0;

	sa_key(sa, &k, false);
	rc = rte_ipsec_sad_del(sad, &k, sa_type(sa));
	if (sa_ipip(sa)) {
		const union rte_ipsec_sad_key *kp = &k;
		void *owner = NULL;

		/* A rekey's new SA of the same peer took the IP-in-IP over when it
		 * was added (rte_ipsec_sad_add replaces): it keeps it. */
		sa_key(sa, &k, true);
		rte_ipsec_sad_lookup(sad, &kp, &owner, 1);
		if (owner == sa)
			rc2 = rte_ipsec_sad_del(sad, &k, RTE_IPSEC_SAD_SPI_DIP_SIP);
	}
	return rc != 0 && rc != -ENOENT ? rc : rc2 != -ENOENT ? rc2 : 0;
}

void dp_sad_pair_free(struct dp_sad_pair *p)
{
	for (int c = 0; c < 2; c++)
		for (int t = 0; t < DP_SAD_N; t++)
			rte_ipsec_sad_destroy(p->sad[c][t]);
	memset(p, 0, sizeof(*p));
}

int dp_sad_pair_build(struct dp_sad_pair *p, struct dp_sa *const *sas, unsigned int n)
{
	memset(p, 0, sizeof(*p));
	for (unsigned int i = 0; i < n; i++) {
		p->n[sa_table(sas[i])]++;
		p->n3[sa_table(sas[i])] += sa_keys3(sas[i]);
	}
	for (int t = 0; t < DP_SAD_N; t++) {
		p->cap[t] = room(SAD_MIN_CAP, p->n[t]);
		p->cap3[t] = room(SAD_MIN_CAP3, p->n3[t]);
		for (int c = 0; c < 2; c++)
			if ((p->sad[c][t] = sad_create(t, p->cap[t], p->cap3[t])) == NULL)
				goto fail;
	}
	for (int c = 0; c < 2; c++)
		for (unsigned int i = 0; i < n; i++)
			if (sa_add(p->sad[c][sa_table(sas[i])], sas[i]) != 0)
				goto fail;
	return 0;
fail:
	DP_LOG(ERR, "cannot build the inbound SA table: %s", rte_strerror(rte_errno));
	dp_sad_pair_free(p);
	return -1;
}

bool dp_sad_pair_fits(const struct dp_sad_pair *p, const struct dp_sad_op *ops, unsigned int n)
{
	unsigned int add[DP_SAD_N] = {0}, add3[DP_SAD_N] = {0};

	if (p->sad[0][0] == NULL)
		return false;
	for (unsigned int i = 0; i < n; i++)
		if (ops[i].add) {
			add[sa_table(ops[i].sa)]++;
			add3[sa_table(ops[i].sa)] += sa_keys3(ops[i].sa);
		}
	for (int t = 0; t < DP_SAD_N; t++)
		if (full(p->n[t] + add[t], p->cap[t]) || full(p->n3[t] + add3[t], p->cap3[t]))
			return false;
	return true;
}

int dp_sad_apply(struct dp_sad_pair *p, int copy, const struct dp_sad_op *ops, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		int t = sa_table(ops[i].sa), rc;

		if (ops[i].add)
			rc = sa_add(p->sad[copy][t], ops[i].sa);
		else
			rc = sa_del(p->sad[copy][t], ops[i].sa);
		if (rc != 0) {
			DP_LOG(ERR, "inbound SA table: cannot %s SA 0x%x: %s",
			       ops[i].add ? "add" : "remove", ops[i].sa->cfg.spi,
			       rte_strerror(-rc));
			return -1;
		}
		/* counts once per change, on the copy changed first */
		if (copy != p->read) {
			unsigned int k3 = sa_keys3(ops[i].sa);

			p->n[t] = ops[i].add ? p->n[t] + 1 : p->n[t] - (p->n[t] > 0);
			p->n3[t] = ops[i].add ? p->n3[t] + k3 : p->n3[t] - RTE_MIN(p->n3[t], k3);
		}
	}
	return 0;
}

void dp_sad_pair_view(const struct dp_sad_pair *p, int copy, struct rte_ipsec_sad **sad)
{
	for (int t = 0; t < DP_SAD_N; t++)
		sad[t] = t >= DP_SAD_IPCOMP && p->n[t] == 0 ? NULL : p->sad[copy][t];
}
