/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_fib.h>
#include <rte_fib6.h>

#include "dataplane/dp.h"
#include "dataplane/route.h"

#define ROUTE_TBL8 (1 << 12)

struct nh_table {
	unsigned int n, cap;
	struct dp_nexthop *nh;
};

static int nh_add(struct nh_table *t, uint8_t type, uint16_t port, const struct dps_addr *gw)
{
	if (t->n == t->cap) {
		unsigned int cap = t->cap ? t->cap * 2 : 64;
		struct dp_nexthop *nh = realloc(t->nh, cap * sizeof(*nh));

		if (nh == NULL)
			return -1;
		t->nh = nh;
		t->cap = cap;
	}
	memset(&t->nh[t->n], 0, sizeof(t->nh[t->n]));
	t->nh[t->n].type = type;
	t->nh[t->n].port = port;
	if (gw != NULL)
		t->nh[t->n].gw = *gw;
	return t->n++;
}

static int fib_add(struct dp_routes *s, const struct dps_prefix *p, int nh)
{
	if (nh < 0)
		return -1;
	if (p->addr.family == AF_INET)
		return rte_fib_add(s->fib4, rte_be_to_cpu_32(p->addr.v4.s_addr), p->len, nh);
	return rte_fib6_add(s->fib6, p->addr.v6.s6_addr, p->len, nh);
}

static void prefix_mask(struct dps_prefix *p)
{
	unsigned int bits = p->addr.family == AF_INET ? 32 : 128;
	uint8_t *b = p->addr.family == AF_INET ? (uint8_t *)&p->addr.v4 : p->addr.v6.s6_addr;

	for (unsigned int i = p->len; i < bits; i++)
		b[i / 8] &= ~(0x80 >> (i % 8));
}

/* Every interface address is a local /32 (/128) and its prefix is on-link. */
static int add_port_routes(struct dp_routes *s, struct nh_table *t, uint16_t port)
{
	const struct dps_port_cfg *pc = &dp.cfg->ports[port];

	for (unsigned int i = 0; i < pc->n_addrs; i++) {
		struct dps_prefix host = pc->addrs[i], net = pc->addrs[i];

		host.len = host.addr.family == AF_INET ? 32 : 128;
		prefix_mask(&net);
		if (net.len < host.len && fib_add(s, &net, nh_add(t, DP_NH_ONLINK, port, NULL)) < 0)
			return -1;
		if (fib_add(s, &host, nh_add(t, DP_NH_LOCAL, port, NULL)) < 0)
			return -1;
	}
	struct dps_prefix ll = {.addr = {.family = AF_INET6, .v6 = dp.ports[port].ll6}, .len = 128};

	return fib_add(s, &ll, nh_add(t, DP_NH_LOCAL, port, NULL));
}

static int create_fibs(struct dp_routes *s, const struct dps_config *cfg, uint64_t gen)
{
	char name[64];
	int max_routes = (int)(cfg->n_routes + DPS_MAX_PORTS * (2 * DPS_MAX_PORT_ADDRS + 1) + 16);
	struct rte_fib_conf c4 = {
		.type = RTE_FIB_DIR24_8,
		.default_nh = DP_NH_NONE,
		.max_routes = max_routes,
		.dir24_8 = {.nh_sz = RTE_FIB_DIR24_8_2B, .num_tbl8 = ROUTE_TBL8},
	};
	struct rte_fib6_conf c6 = {
		.type = RTE_FIB6_TRIE,
		.default_nh = DP_NH_NONE,
		.max_routes = max_routes,
		.trie = {.nh_sz = RTE_FIB6_TRIE_2B, .num_tbl8 = ROUTE_TBL8},
	};

	snprintf(name, sizeof(name), "dps_fib4_%" PRIu64, gen);
	s->fib4 = rte_fib_create(name, SOCKET_ID_ANY, &c4);
	snprintf(name, sizeof(name), "dps_fib6_%" PRIu64, gen);
	s->fib6 = rte_fib6_create(name, SOCKET_ID_ANY, &c6);
	if (s->fib4 == NULL || s->fib6 == NULL) {
		DP_LOG(ERR, "cannot create routing tables: %s", rte_strerror(rte_errno));
		return -1;
	}
	return 0;
}

struct dp_routes *dp_routes_build(const struct dps_config *cfg, uint64_t gen)
{
	struct dp_routes *s = calloc(1, sizeof(*s));
	struct nh_table t = {0};

	if (s == NULL)
		return NULL;
	if (create_fibs(s, cfg, gen) < 0)
		goto fail;
	nh_add(&t, DP_NH_NONE, DP_NO_PORT, NULL); /* index 0: no route */
	for (uint16_t p = 0; p < cfg->n_ports; p++) {
		if (add_port_routes(s, &t, p) < 0)
			goto fail;
	}
	for (unsigned int i = 0; i < cfg->n_routes; i++) {
		const struct dps_route_cfg *r = &cfg->routes[i];
		int nh = r->has_via ? nh_add(&t, DP_NH_GATEWAY, r->port, &r->via)
				    : nh_add(&t, DP_NH_ONLINK, r->port, NULL);

		if (fib_add(s, &r->dst, nh) < 0)
			goto fail;
	}
	if (t.n > UINT16_MAX / 2) {
		DP_LOG(ERR, "too many next hops (%u)", t.n);
		goto fail;
	}
	s->nh = t.nh;
	s->n_nh = t.n;
	return s;
fail:
	DP_LOG(ERR, "cannot build the routing tables: %s", rte_strerror(rte_errno));
	free(t.nh);
	dp_routes_free(s);
	return NULL;
}

void dp_routes_free(struct dp_routes *s)
{
	if (s == NULL)
		return;
	rte_fib_free(s->fib4);
	rte_fib6_free(s->fib6);
	free(s->nh);
	free(s);
}
