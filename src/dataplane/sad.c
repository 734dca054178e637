/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>
#include <string.h>

#include <rte_ipsec_sad.h>

#include "dataplane/dp.h"
#include "dataplane/sa.h"
#include "dataplane/sad.h"

#define SAD_MIN_CAP 1024

static struct rte_ipsec_sad *sad_create(int v6, unsigned int n)
{
	static unsigned int seq;
	char name[RTE_IPSEC_SAD_NAMESIZE];
	struct rte_ipsec_sad_conf conf = {
		.socket_id = SOCKET_ID_ANY,
		/* more specific keys also take a slot in the SPI-only table;
		 * AH SAs go to the SPI+DIP+SIP table (dp_sad_build) */
		.max_sa = {n + 1, n + 1, n + 1},
		.flags = v6 ? RTE_IPSEC_SAD_FLAG_IPV6 : 0,
	};

	snprintf(name, sizeof(name), "dps_sad%d_%u", v6, seq++);
	return rte_ipsec_sad_create(name, &conf);
}

static int sa_v6(const struct dp_sa *sa)
{
	return sa->cfg.dst.family == AF_INET6;
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

static void sa_key(const struct dp_sa *sa, union rte_ipsec_sad_key *k)
{
	const struct dps_sa *c = &sa->cfg;

	memset(k, 0, sizeof(*k));
	if (sa_v6(sa)) {
		k->v6.spi = rte_cpu_to_be_32(c->spi);
		memcpy(k->v6.dip, &c->dst.v6, 16);
	} else {
		k->v4.spi = rte_cpu_to_be_32(c->spi);
		k->v4.dip = c->dst.v4.s_addr;
	}
}

void dp_sad_pair_free(struct dp_sad_pair *p)
{
	for (int c = 0; c < 2; c++)
		for (int v6 = 0; v6 < 2; v6++)
			rte_ipsec_sad_destroy(p->sad[c][v6]);
	memset(p, 0, sizeof(*p));
}

int dp_sad_pair_build(struct dp_sad_pair *p, struct dp_sa *const *sas, unsigned int n)
{
	memset(p, 0, sizeof(*p));
	for (unsigned int i = 0; i < n; i++)
		p->n[sa_v6(sas[i])]++;
	for (int v6 = 0; v6 < 2; v6++) {
		p->cap[v6] = SAD_MIN_CAP;
		while (p->cap[v6] < 2 * p->n[v6])
			p->cap[v6] *= 2;
		for (int c = 0; c < 2; c++)
			if ((p->sad[c][v6] = sad_create(v6, p->cap[v6])) == NULL)
				goto fail;
	}
	for (int c = 0; c < 2; c++) {
		for (unsigned int i = 0; i < n; i++) {
			union rte_ipsec_sad_key k;

			sa_key(sas[i], &k);
			if (rte_ipsec_sad_add(p->sad[c][sa_v6(sas[i])], &k, sa_type(sas[i]),
					      sas[i]) != 0)
				goto fail;
		}
	}
	return 0;
fail:
	DP_LOG(ERR, "cannot build the inbound SA table: %s", rte_strerror(rte_errno));
	dp_sad_pair_free(p);
	return -1;
}

bool dp_sad_pair_fits(const struct dp_sad_pair *p, const struct dp_sad_op *ops, unsigned int n)
{
	unsigned int add[2] = {0, 0};

	if (p->sad[0][0] == NULL)
		return false;
	for (unsigned int i = 0; i < n; i++)
		add[sa_v6(ops[i].sa)] += ops[i].add;
	return p->n[0] + add[0] <= p->cap[0] && p->n[1] + add[1] <= p->cap[1];
}

int dp_sad_apply(struct dp_sad_pair *p, int copy, const struct dp_sad_op *ops, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		union rte_ipsec_sad_key k;
		int v6 = sa_v6(ops[i].sa), rc;

		sa_key(ops[i].sa, &k);
		if (ops[i].add)
			rc = rte_ipsec_sad_add(p->sad[copy][v6], &k, sa_type(ops[i].sa), ops[i].sa);
		else
			rc = rte_ipsec_sad_del(p->sad[copy][v6], &k, sa_type(ops[i].sa));
		if (rc != 0 && !(rc == -ENOENT && !ops[i].add)) {
			DP_LOG(ERR, "inbound SA table: cannot %s SA 0x%x: %s",
			       ops[i].add ? "add" : "remove", ops[i].sa->cfg.spi,
			       rte_strerror(-rc));
			return -1;
		}
		/* counts once per change, on the copy changed first */
		if (copy != p->read)
			p->n[v6] = ops[i].add ? p->n[v6] + 1 : p->n[v6] - (p->n[v6] > 0);
	}
	return 0;
}
