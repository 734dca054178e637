/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>
#include <string.h>

#include <rte_ipsec_sad.h>

#include "dataplane/dp.h"
#include "dataplane/sa.h"
#include "dataplane/sad.h"

static struct rte_ipsec_sad *sad_create(int v6, unsigned int n, uint64_t gen)
{
	char name[RTE_IPSEC_SAD_NAMESIZE];
	struct rte_ipsec_sad_conf conf = {
		.socket_id = SOCKET_ID_ANY,
		/* more specific keys also take a slot in the SPI-only table;
		 * AH SAs go to the SPI+DIP+SIP table (dp_sad_build) */
		.max_sa = {n + 1, n + 1, n + 1},
		.flags = v6 ? RTE_IPSEC_SAD_FLAG_IPV6 : 0,
	};

	snprintf(name, sizeof(name), "dps_sad%d_%" PRIu64, v6, gen);
	return rte_ipsec_sad_create(name, &conf);
}

int dp_sad_build(struct dp_sa *const *sas, unsigned int n, uint64_t gen,
		 struct rte_ipsec_sad *sad[2])
{
	unsigned int count[2] = {0, 0};

	for (unsigned int i = 0; i < n; i++)
		count[sas[i]->cfg.dst.family == AF_INET6]++;
	sad[0] = sad[1] = NULL;
	for (int v6 = 0; v6 < 2; v6++) {
		if (count[v6] && (sad[v6] = sad_create(v6, count[v6], gen)) == NULL)
			goto fail;
	}
	for (unsigned int i = 0; i < n; i++) {
		const struct dps_sa *c = &sas[i]->cfg;
		union rte_ipsec_sad_key k;
		int v6 = c->dst.family == AF_INET6;

		/* AH and ESP share the SPI space but not their SAs (Linux keys its
		 * states by destination, SPI and protocol): an AH SA is keyed with
		 * the unspecified source address, so that the AH lookup (ah.c)
		 * finds it before an ESP SA of the same SPI; both lookups check
		 * the protocol of what they find (an ESP packet from the
		 * unspecified address). */
		int type = c->proto == DPS_PROTO_AH ? RTE_IPSEC_SAD_SPI_DIP_SIP
						    : RTE_IPSEC_SAD_SPI_DIP;

		memset(&k, 0, sizeof(k));
		if (v6) {
			k.v6.spi = rte_cpu_to_be_32(c->spi);
			memcpy(k.v6.dip, &c->dst.v6, 16);
		} else {
			k.v4.spi = rte_cpu_to_be_32(c->spi);
			k.v4.dip = c->dst.v4.s_addr;
		}
		if (rte_ipsec_sad_add(sad[v6], &k, type, sas[i]) != 0)
			goto fail;
	}
	return 0;
fail:
	DP_LOG(ERR, "cannot build the inbound SA table: %s", rte_strerror(rte_errno));
	rte_ipsec_sad_destroy(sad[0]);
	rte_ipsec_sad_destroy(sad[1]);
	sad[0] = sad[1] = NULL;
	return -1;
}
