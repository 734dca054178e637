// SPDX-License-Identifier: BSD-3-Clause
/*
 * The gateway sections of dpsec.yaml: eal, log_level, dataplane, neighbour,
 * ports, workers, routes and neighbours. Their tables are rows of the
 * top-level table in config.c; the engine they run on is yaml.c.
 */
#include "control/config_schema.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static int dps_mac_parse(const char *s, uint8_t mac[6])
{
	int i, hi, lo;

	if (strlen(s) != 17)
		return -1;
	for (i = 0; i < 6; i++) {
		hi = dps_hexval(s[i * 3]);
		lo = dps_hexval(s[i * 3 + 1]);
		if (hi < 0 || lo < 0 || (i < 5 && s[i * 3 + 2] != ':'))
			return -1;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* ---- string validators --------------------------------------------------- */

/* True if @s holds only ASCII letters, digits and characters from @extra. */
static bool dps_charset_ok(const char *s, const char *extra)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr(extra, *s)))
			return false;
	return true;
}

/* A file prefix names a directory: keep it plain. */
static const char *dps_valid_prefix(const char *s)
{
	return dps_charset_ok(s, "_-") ? NULL : "may only contain A-Z a-z 0-9 _ -";
}

/* Port names are telemetry dictionary keys, which DPDK limits to [A-Za-z0-9_/]. */
static const char *dps_valid_name(const char *s)
{
	return dps_charset_ok(s, "_") ? NULL : "may only contain A-Z a-z 0-9 _";
}

static const char *dps_valid_ifname(const char *s)
{
	/* What the kernel's dev_valid_name() accepts, minus the odd characters. */
	if (!strcmp(s, ".") || !strcmp(s, ".."))
		return "is not a valid interface name";
	return dps_charset_ok(s, "_.-") ? NULL : "may only contain A-Z a-z 0-9 _ . -";
}

const char *dps_valid_device(const char *s)
{
	/* Passed to DPDK as -a/--vdev argument: whitespace would split it. */
	for (; *s; s++)
		if (*s <= ' ' || *s == 0x7f)
			return "must not contain spaces or control characters";
	return NULL;
}

/* ---- eal ----------------------------------------------------------------- */

static int dps_lcore_num(const char **s, unsigned int *out)
{
	const char *p = *s;
	unsigned int v = 0;

	if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned int)(*p - '0');
		if (v >= DPS_MAX_LCORE)
			return -1;
	}
	*s = p;
	*out = v;
	return 0;
}

/* Parse DPDK's "-l" syntax restricted to "N" and "N-M" items, comma separated,
 * and "N@C" items of DPDK's "--lcores" (lcore N runs on CPU C: more lcores than
 * CPUs). */
int dps_lcores_set(const char *s, uint64_t *set)
{
	unsigned int a, b, cpu;

	memset(set, 0, DPS_MAX_LCORE / 8);
	for (;;) {
		if (dps_lcore_num(&s, &a))
			return -1;
		b = a;
		if (*s == '-' && (s++, dps_lcore_num(&s, &b) || b < a))
			return -1;
		if (*s == '@' && (b != a || (s++, dps_lcore_num(&s, &cpu))))
			return -1;
		for (; a <= b; a++)
			set[a / 64] |= 1ull << (a % 64);
		if (!*s)
			return 0;
		if (*s++ != ',')
			return -1;
	}
}

static bool dps_lcore_in(const struct dps_ctx *ctx, unsigned int lcore)
{
	return lcore < DPS_MAX_LCORE && (ctx->lcores[lcore / 64] >> (lcore % 64)) & 1;
}

static int dps_parse_lcores(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node,
			    void *obj)
{
	if (dps_parse_str(ctx, f, node, obj))
		return -1;
	if (dps_lcores_set(dps_str(node), ctx->lcores))
		return dps_err(
			ctx, node,
			"%s is not an lcore list (N, N-M or N@CPU items below %u, comma separated)",
			DPS_Q(node), DPS_MAX_LCORE);
	ctx->lcores_node = node;
	return 0;
}

static int dps_eal_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	struct dps_eal_cfg *eal = obj;

	/* Without hugepages EAL runs in legacy memory mode, which it refuses to
	 * combine with --in-memory. */
	if (eal->in_memory && !eal->hugepages)
		return dps_err_key(
			ctx, map, dps_map_get(ctx, map, "in_memory") ? "in_memory" : "hugepages",
			"in_memory needs hugepages (DPDK runs without them only in legacy "
			"memory mode, which --in-memory excludes)");
	if (dps_lcore_in(ctx, eal->main_lcore))
		return 0;
	/* Blame main_lcore if it was given, else the list that leaves out the default. */
	if (dps_map_get(ctx, map, "main_lcore"))
		return dps_err_key(ctx, map, "main_lcore", "lcore %u is not in eal.lcores \"%s\"",
				   eal->main_lcore, eal->lcores);
	return dps_err_key(ctx, map, "lcores", "\"%s\" does not include main_lcore %u", eal->lcores,
			   eal->main_lcore);
}

static const struct dps_seq dps_eal_extra_seq = {
	.count_off = offsetof(struct dps_eal_cfg, n_extra),
	.array_off = offsetof(struct dps_eal_cfg, extra),
	.max = DPS_MAX_EAL_EXTRA,
	.elem = {.parse = dps_parse_str,
		 .size = DPS_SIZEOF(struct dps_eal_cfg, extra[0]),
		 .min = 1},
};

static const struct dps_field dps_eal_fields[] = {
	{.key = "lcores", .parse = dps_parse_lcores, DPS_AT(struct dps_eal_cfg, lcores), .min = 1},
	{.key = "main_lcore",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_eal_cfg, main_lcore),
	 .max = DPS_MAX_LCORE - 1},
	{.key = "hugepages", .parse = dps_parse_bool, DPS_AT(struct dps_eal_cfg, hugepages)},
	{.key = "memory_mb",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_eal_cfg, memory_mb),
	 .max = 65536},
	{.key = "file_prefix",
	 .parse = dps_parse_str,
	 DPS_AT(struct dps_eal_cfg, file_prefix),
	 .min = 1,
	 .valid = dps_valid_prefix},
	{.key = "in_memory", .parse = dps_parse_bool, DPS_AT(struct dps_eal_cfg, in_memory)},
	{.key = "extra_args", .parse = dps_parse_seq, .seq = &dps_eal_extra_seq},
	{0},
};

DPS_SCHEMA_SHARED(dps_eal_schema, dps_eal_fields, dps_eal_check);

/* ---- log level, dataplane, neighbour --------------------------------------- */

const struct dps_enum dps_log_levels[] = {
	{"emerg", DPS_LOG_EMERG}, {"alert", DPS_LOG_ALERT},	{"crit", DPS_LOG_CRIT},
	{"err", DPS_LOG_ERR},	  {"warning", DPS_LOG_WARNING}, {"notice", DPS_LOG_NOTICE},
	{"info", DPS_LOG_INFO},	  {"debug", DPS_LOG_DEBUG},	{NULL, 0},
};

/* RFC 791 §3.2 leaves the reassembly timer to the implementation (Linux:
 * ipfrag_time, 30 s). What rides in ESP retransmits on its own; a short
 * default frees a lost datagram's entry and mbufs sooner. */
static const struct dps_field dps_reasm_fields[] = {
	{.key = "max_flows",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_reasm_cfg, max_flows),
	 .min = 1,
	 .max = 1048576},
	{.key = "timeout_ms",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_reasm_cfg, timeout_ms),
	 .min = 10,
	 .max = 120000},
	{0},
};

DPS_SCHEMA(dps_reasm_schema, dps_reasm_fields, NULL);

static const struct dps_field dps_dataplane_fields[] = {
	{.key = "mbufs",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_dataplane_cfg, mbufs),
	 .min = 1024,
	 .max = 1048575},
	{.key = "burst",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_dataplane_cfg, burst),
	 .min = 1,
	 .max = 64},
	{.key = "idle_backoff",
	 .parse = dps_parse_bool,
	 DPS_AT(struct dps_dataplane_cfg, idle_backoff)},
	{.key = "idle_polls",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_dataplane_cfg, idle_polls),
	 .min = 1,
	 .max = 1000000},
	{.key = "idle_sleep_us",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_dataplane_cfg, idle_sleep_us),
	 .min = 1,
	 .max = 100000},
	{.key = "icmp_rate",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_dataplane_cfg, icmp_rate),
	 .min = 0,
	 .max = 1000000},
	{.key = "icmp_burst",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_dataplane_cfg, icmp_burst),
	 .min = 1,
	 .max = 1000000},
	{.key = "reassembly",
	 .parse = dps_parse_map,
	 .off = offsetof(struct dps_dataplane_cfg, reasm),
	 .map = &dps_reasm_schema},
	{0},
};

DPS_SCHEMA_SHARED(dps_dataplane_schema, dps_dataplane_fields, NULL);

static const struct dps_field dps_neigh_fields[] = {
	{.key = "reachable_ms",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_neigh_params, reachable_ms),
	 .min = 1000,
	 .max = 3600000},
	{.key = "retrans_ms",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_neigh_params, retrans_ms),
	 .min = 100,
	 .max = 60000},
	{.key = "probes",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_neigh_params, probes),
	 .min = 1,
	 .max = 10},
	{.key = "queue_len",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_neigh_params, queue_len),
	 .max = 1024},
	{.key = "max_entries",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_neigh_params, max_entries),
	 .min = 16,
	 .max = 1048576},
	{0},
};

DPS_SCHEMA_SHARED(dps_neigh_schema, dps_neigh_fields, NULL);

/* ---- values shared by ports, routes and neighbours ------------------------ */

static int dps_parse_mac(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node,
			 void *obj)
{
	static const uint8_t zero[6];
	uint8_t *mac = (uint8_t *)obj + f->off;
	const char *s;

	if (!(s = dps_want_str(ctx, node)))
		return -1;
	if (dps_mac_parse(s, mac))
		return dps_err(ctx, node, "%s is not a MAC address (xx:xx:xx:xx:xx:xx)",
			       DPS_Q(node));
	if (mac[0] & 1)
		return dps_err(ctx, node, "%s is a multicast MAC address", DPS_Q(node));
	if (!memcmp(mac, zero, sizeof(zero)))
		return dps_err(ctx, node, "%s is the all-zero MAC address", DPS_Q(node));
	return 0;
}

/* A host address: next hop or neighbour. */
int dps_parse_addr(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj)
{
	struct dps_addr *a = (struct dps_addr *)((char *)obj + f->off);
	const char *s, *why;

	if (!(s = dps_want_str(ctx, node)))
		return -1;
	if (dps_addr_parse(s, a))
		return dps_err(ctx, node, "%s is not an IPv4 or IPv6 address", DPS_Q(node));
	if ((why = dps_addr_unusable(a)))
		return dps_err(ctx, node, "%s %s", DPS_Q(node), why);
	return 0;
}

/* An interface address: "addr/len", host bits expected. */
static int dps_parse_ifaddr(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node,
			    void *obj)
{
	struct dps_prefix *p = (struct dps_prefix *)((char *)obj + f->off);
	const char *s, *why;

	if (!(s = dps_want_str(ctx, node)))
		return -1;
	if (dps_prefix_parse(s, p) || !strchr(s, '/'))
		return dps_err(ctx, node, "%s is not an address/prefix-length (192.0.2.1/24)",
			       DPS_Q(node));
	if ((why = dps_addr_unusable(&p->addr)))
		return dps_err(ctx, node, "%s %s", DPS_Q(node), why);
	if (!p->len)
		return dps_err(ctx, node, "%s: an interface prefix cannot be /0", DPS_Q(node));
	return 0;
}

/* A route destination: a network prefix, host bits clear. */
int dps_parse_net(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj)
{
	struct dps_prefix *p = (struct dps_prefix *)((char *)obj + f->off);
	const char *s;

	if (!(s = dps_want_str(ctx, node)))
		return -1;
	if (dps_prefix_parse(s, p))
		return dps_err(ctx, node, "%s is not a prefix (10.0.0.0/8, 2001:db8::/32)",
			       DPS_Q(node));
	if (dps_prefix_has_host_bits(p))
		return dps_err(ctx, node, "%s has host bits set beyond /%u", DPS_Q(node), p->len);
	return 0;
}

/* A port name, stored as its index: ports are parsed before any reference. */
static int dps_parse_port_ref(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node,
			      void *obj)
{
	const struct dps_config *cfg = ctx->cfg;
	const char *s;
	unsigned int i;

	if (!(s = dps_want_str(ctx, node)))
		return -1;
	for (i = 0; i < cfg->n_ports; i++) {
		if (!strcmp(cfg->ports[i].name, s)) {
			dps_store_uint((char *)obj + f->off, f->size, i);
			return 0;
		}
	}
	return dps_err(ctx, node, "no port named %s", DPS_Q(node));
}

/* ---- ports --------------------------------------------------------------- */

static const struct dps_enum dps_roles[] = {
	{"protected", DPS_ROLE_PROTECTED},
	{"unprotected", DPS_ROLE_UNPROTECTED},
	{NULL, 0},
};

static void dps_port_init(void *elem)
{
	struct dps_port_cfg *p = elem;

	p->mtu = 1500;
	p->rx_queues = 1;
	p->rx_desc = 1024;
	p->tx_desc = 1024;
	p->exception = true;
}

static int dps_port_check_addrs(struct dps_ctx *ctx, yaml_node_t *map, struct dps_port_cfg *p)
{
	const struct dps_config *cfg = ctx->cfg;
	unsigned int i, j, k;
	char buf[INET6_ADDRSTRLEN];

	/* An address on two ports would make local delivery ambiguous. */
	for (i = 0; i < p->n_addrs; i++) {
		const struct dps_addr *a = &p->addrs[i].addr;

		for (j = 0; j < i; j++)
			if (dps_addr_eq(a, &p->addrs[j].addr))
				return dps_err_item(ctx, map, "addresses", i,
						    "%s is listed twice on this port",
						    dps_addr_str(a, buf, sizeof(buf)));
		for (k = 0; k < cfg->n_ports; k++)
			for (j = 0; j < cfg->ports[k].n_addrs; j++)
				if (dps_addr_eq(a, &cfg->ports[k].addrs[j].addr))
					return dps_err_item(ctx, map, "addresses", i,
							    "%s is already on port %s",
							    dps_addr_str(a, buf, sizeof(buf)),
							    cfg->ports[k].name);
	}
	return 0;
}

static int dps_port_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	const struct dps_config *cfg = ctx->cfg;
	struct dps_port_cfg *p = obj;
	unsigned int k;

	p->has_mac = dps_map_get(ctx, map, "mac") != NULL;
	if (!p->exception_iface[0]) {
		/* "dps-" + name, cut to what the kernel allows. */
		memcpy(p->exception_iface, "dps-", 4);
		dps_strlcpy(p->exception_iface + 4, p->name, sizeof(p->exception_iface) - 4);
	}
	for (k = 0; k < cfg->n_ports; k++) {
		const struct dps_port_cfg *q = &cfg->ports[k];

		if (!strcmp(p->name, q->name))
			return dps_err_key(ctx, map, "name",
					   "port name \"%s\" is already used by ports[%u]", p->name,
					   k);
		if (!strcmp(p->device, q->device))
			return dps_err_key(ctx, map, "device",
					   "device \"%s\" is already used by port %s", p->device,
					   q->name);
		if (p->exception && q->exception && !strcmp(p->exception_iface, q->exception_iface))
			return dps_err_key(ctx, map, "exception_iface",
					   "interface \"%s\" is already used by port %s%s",
					   p->exception_iface, q->name,
					   dps_map_get(ctx, map, "exception_iface")
						   ? ""
						   : " (the default, set exception_iface)");
	}
	return dps_port_check_addrs(ctx, map, p);
}

static const struct dps_seq dps_port_addrs_seq = {
	.count_off = offsetof(struct dps_port_cfg, n_addrs),
	.array_off = offsetof(struct dps_port_cfg, addrs),
	.max = DPS_MAX_PORT_ADDRS,
	.elem = {.parse = dps_parse_ifaddr, .size = sizeof(struct dps_prefix)},
};

static const struct dps_field dps_port_fields[] = {
	{.key = "name",
	 .parse = dps_parse_str,
	 DPS_AT(struct dps_port_cfg, name),
	 .min = 1,
	 .required = true,
	 .valid = dps_valid_name},
	{.key = "device",
	 .parse = dps_parse_str,
	 DPS_AT(struct dps_port_cfg, device),
	 .min = 1,
	 .required = true,
	 .valid = dps_valid_device},
	{.key = "role",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_port_cfg, role),
	 .required = true,
	 .names = dps_roles},
	{.key = "mac", .parse = dps_parse_mac, DPS_AT(struct dps_port_cfg, mac)},
	{.key = "mtu",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_port_cfg, mtu),
	 .min = 68,
	 .max = 9600},
	{.key = "rx_queues",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_port_cfg, rx_queues),
	 .min = 1,
	 .max = DPS_MAX_QUEUES},
	{.key = "rx_desc",
	 .parse = dps_parse_pow2,
	 DPS_AT(struct dps_port_cfg, rx_desc),
	 .min = 64,
	 .max = 4096},
	{.key = "tx_desc",
	 .parse = dps_parse_pow2,
	 DPS_AT(struct dps_port_cfg, tx_desc),
	 .min = 64,
	 .max = 4096},
	{.key = "exception", .parse = dps_parse_bool, DPS_AT(struct dps_port_cfg, exception)},
	{.key = "exception_iface",
	 .parse = dps_parse_str,
	 DPS_AT(struct dps_port_cfg, exception_iface),
	 .min = 1,
	 .valid = dps_valid_ifname},
	{.key = "addresses", .parse = dps_parse_seq, .seq = &dps_port_addrs_seq},
	{0},
};

DPS_SCHEMA(dps_port_schema, dps_port_fields, dps_port_check);

const struct dps_seq dps_ports_seq = {
	.count_off = offsetof(struct dps_config, n_ports),
	.array_off = offsetof(struct dps_config, ports),
	.min = 1,
	.max = DPS_MAX_PORTS,
	.init = dps_port_init,
	.elem = {.parse = dps_parse_map,
		 .size = sizeof(struct dps_port_cfg),
		 .map = &dps_port_schema},
};

/* ---- workers ------------------------------------------------------------- */

static int dps_rxq_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	const struct dps_rxq_cfg *q = obj;
	const struct dps_port_cfg *p = &ctx->cfg->ports[q->port];

	if (q->queue >= p->rx_queues)
		return dps_err_key(ctx, map, "queue", "port %s has %u rx queue%s (0..%u)", p->name,
				   p->rx_queues, p->rx_queues == 1 ? "" : "s", p->rx_queues - 1u);
	return 0;
}

static const struct dps_field dps_rxq_fields[] = {
	{.key = "port",
	 .parse = dps_parse_port_ref,
	 DPS_AT(struct dps_rxq_cfg, port),
	 .required = true},
	{.key = "queue",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_rxq_cfg, queue),
	 .max = DPS_MAX_QUEUES - 1,
	 .required = true},
	{0},
};

DPS_SCHEMA(dps_rxq_schema, dps_rxq_fields, dps_rxq_check);

static const struct dps_seq dps_rxq_seq = {
	.count_off = offsetof(struct dps_worker_cfg, n_rxq),
	.array_off = offsetof(struct dps_worker_cfg, rxq),
	.min = 1,
	.max = DPS_MAX_WORKER_RXQ,
	.elem = {.parse = dps_parse_map,
		 .size = sizeof(struct dps_rxq_cfg),
		 .map = &dps_rxq_schema},
};

/* Which worker, if any, already polls @q: [0, n_workers) plus @self's first @n. */
static int dps_rxq_owner(const struct dps_config *cfg, const struct dps_worker_cfg *self,
			 unsigned int n, const struct dps_rxq_cfg *q)
{
	unsigned int w, i;

	for (w = 0; w <= cfg->n_workers; w++) {
		const struct dps_worker_cfg *wk = w < cfg->n_workers ? &cfg->workers[w] : self;
		unsigned int lim = w < cfg->n_workers ? wk->n_rxq : n;

		for (i = 0; i < lim; i++)
			if (wk->rxq[i].port == q->port && wk->rxq[i].queue == q->queue)
				return (int)w;
	}
	return -1;
}

static int dps_worker_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	const struct dps_config *cfg = ctx->cfg;
	struct dps_worker_cfg *wk = obj;
	unsigned int i;
	int owner;

	if (!dps_lcore_in(ctx, wk->lcore))
		return dps_err_key(ctx, map, "lcore", "lcore %u is not in eal.lcores \"%s\"",
				   wk->lcore, cfg->eal.lcores);
	if (wk->lcore == cfg->eal.main_lcore)
		return dps_err_key(ctx, map, "lcore", "lcore %u is eal.main_lcore", wk->lcore);
	for (i = 0; i < cfg->n_workers; i++)
		if (cfg->workers[i].lcore == wk->lcore)
			return dps_err_key(ctx, map, "lcore",
					   "lcore %u is already used by workers[%u]", wk->lcore, i);
	for (i = 0; i < wk->n_rxq; i++) {
		owner = dps_rxq_owner(cfg, wk, i, &wk->rxq[i]);
		if (owner >= 0)
			return dps_err_item(ctx, map, "rx", i,
					    "port %s queue %u is already polled by workers[%d]",
					    cfg->ports[wk->rxq[i].port].name, wk->rxq[i].queue,
					    owner);
	}
	return 0;
}

/* Spread every queue of every port over the workers, round-robin. */
static int dps_distribute_rxq(struct dps_ctx *ctx, yaml_node_t *where)
{
	struct dps_config *cfg = ctx->cfg;
	unsigned int p, q, n = 0;

	for (p = 0; p < cfg->n_ports; p++) {
		for (q = 0; q < cfg->ports[p].rx_queues; q++, n++) {
			struct dps_worker_cfg *wk = &cfg->workers[n % cfg->n_workers];

			if (wk->n_rxq == DPS_MAX_WORKER_RXQ)
				return dps_err(
					ctx, where,
					"too many rx queues for %u worker%s (at most %u each)",
					cfg->n_workers, cfg->n_workers == 1 ? "" : "s",
					DPS_MAX_WORKER_RXQ);
			wk->rxq[wk->n_rxq].port = (uint16_t)p;
			wk->rxq[wk->n_rxq].queue = (uint16_t)q;
			wk->n_rxq++;
		}
	}
	return 0;
}

static int dps_workers_check(struct dps_ctx *ctx, yaml_node_t *seq, void *obj)
{
	struct dps_config *cfg = obj;
	struct dps_rxq_cfg rq;
	unsigned int w, with_rx = 0;

	for (w = 0; w < cfg->n_workers; w++)
		with_rx += cfg->workers[w].n_rxq > 0;
	if (!with_rx)
		return dps_distribute_rxq(ctx, seq);
	/* Half-explicit is refused: the implicit rest would be a guess. */
	for (w = 0; w < cfg->n_workers; w++) {
		if (!cfg->workers[w].n_rxq) {
			size_t old = dps_push_index(ctx, w);

			dps_err_key(ctx, dps_seq_item(ctx, seq, w), "rx",
				    "missing: other workers list rx, so every worker must");
			dps_pop(ctx, old);
			return -1;
		}
	}
	for (rq.port = 0; rq.port < cfg->n_ports; rq.port++) {
		for (rq.queue = 0; rq.queue < cfg->ports[rq.port].rx_queues; rq.queue++)
			if (dps_rxq_owner(cfg, NULL, 0, &rq) < 0)
				return dps_err(ctx, seq,
					       "port %s queue %u is not polled by any worker",
					       cfg->ports[rq.port].name, rq.queue);
	}
	return 0;
}

static const struct dps_field dps_worker_fields[] = {
	{.key = "lcore",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_worker_cfg, lcore),
	 .max = DPS_MAX_LCORE - 1,
	 .required = true},
	{.key = "rx", .parse = dps_parse_seq, .seq = &dps_rxq_seq},
	{0},
};

DPS_SCHEMA(dps_worker_schema, dps_worker_fields, dps_worker_check);

const struct dps_seq dps_workers_seq = {
	.count_off = offsetof(struct dps_config, n_workers),
	.array_off = offsetof(struct dps_config, workers),
	.min = 1,
	.max = DPS_MAX_WORKERS,
	.elem = {.parse = dps_parse_map,
		 .size = sizeof(struct dps_worker_cfg),
		 .map = &dps_worker_schema},
	.check = dps_workers_check,
};

/* No workers key: one worker on the first spare lcore, polling everything. */
int dps_default_worker(struct dps_ctx *ctx)
{
	struct dps_config *cfg = ctx->cfg;
	unsigned int l;
	size_t old;
	int rc;

	for (l = 0; l < DPS_MAX_LCORE; l++)
		if (dps_lcore_in(ctx, l) && l != cfg->eal.main_lcore)
			break;
	if (l == DPS_MAX_LCORE) {
		/* Only reachable with an explicit lcores: the default has two. */
		old = dps_push_key(ctx, "eal.lcores", 10);
		dps_err(ctx, ctx->lcores_node ? ctx->lcores_node : ctx->root,
			"\"%s\" has no lcore besides main_lcore %u for the default worker; add one "
			"or list workers",
			cfg->eal.lcores, cfg->eal.main_lcore);
		dps_pop(ctx, old);
		return -1;
	}
	cfg->n_workers = 1;
	cfg->workers[0].lcore = l;
	old = dps_push_key(ctx, "workers", 7);
	rc = dps_distribute_rxq(ctx, ctx->root);
	dps_pop(ctx, old);
	return rc;
}

/* ---- routes and neighbours ------------------------------------------------ */

static int dps_route_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	const struct dps_config *cfg = ctx->cfg;
	struct dps_route_cfg *r = obj;
	char buf[INET6_ADDRSTRLEN];
	unsigned int i;

	r->has_via = dps_map_get(ctx, map, "via") != NULL;
	if (r->has_via && r->via.family != r->dst.addr.family)
		return dps_err_key(ctx, map, "via", "next hop %s is not of the prefix's family",
				   dps_addr_str(&r->via, buf, sizeof(buf)));
	for (i = 0; i < cfg->n_routes; i++)
		if (cfg->routes[i].dst.len == r->dst.len &&
		    dps_addr_eq(&cfg->routes[i].dst.addr, &r->dst.addr))
			return dps_err_key(
				ctx, map, "prefix", "%s/%u is already routed by routes[%u]",
				dps_addr_str(&r->dst.addr, buf, sizeof(buf)), r->dst.len, i);
	return 0;
}

static const struct dps_field dps_route_fields[] = {
	{.key = "prefix",
	 .parse = dps_parse_net,
	 DPS_AT(struct dps_route_cfg, dst),
	 .required = true},
	{.key = "via", .parse = dps_parse_addr, DPS_AT(struct dps_route_cfg, via)},
	{.key = "port",
	 .parse = dps_parse_port_ref,
	 DPS_AT(struct dps_route_cfg, port),
	 .required = true},
	{0},
};

DPS_SCHEMA(dps_route_schema, dps_route_fields, dps_route_check);

const struct dps_seq dps_routes_seq = {
	.count_off = offsetof(struct dps_config, n_routes),
	.array_off = offsetof(struct dps_config, routes),
	.alloc = true,
	.elem = {.parse = dps_parse_map,
		 .size = sizeof(struct dps_route_cfg),
		 .map = &dps_route_schema},
};

static int dps_neigh_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	const struct dps_config *cfg = ctx->cfg;
	struct dps_neigh_cfg *n = obj;
	char buf[INET6_ADDRSTRLEN];
	unsigned int i;

	for (i = 0; i < cfg->n_neighs; i++)
		if (cfg->neighs[i].port == n->port && dps_addr_eq(&cfg->neighs[i].addr, &n->addr))
			return dps_err_key(ctx, map, "address",
					   "%s on port %s is already given by neighbours[%u]",
					   dps_addr_str(&n->addr, buf, sizeof(buf)),
					   cfg->ports[n->port].name, i);
	return 0;
}

static const struct dps_field dps_neighbour_fields[] = {
	{.key = "address",
	 .parse = dps_parse_addr,
	 DPS_AT(struct dps_neigh_cfg, addr),
	 .required = true},
	{.key = "mac", .parse = dps_parse_mac, DPS_AT(struct dps_neigh_cfg, mac), .required = true},
	{.key = "port",
	 .parse = dps_parse_port_ref,
	 DPS_AT(struct dps_neigh_cfg, port),
	 .required = true},
	{0},
};

DPS_SCHEMA(dps_neighbour_schema, dps_neighbour_fields, dps_neigh_check);

const struct dps_seq dps_neighbours_seq = {
	.count_off = offsetof(struct dps_config, n_neighs),
	.array_off = offsetof(struct dps_config, neighs),
	.alloc = true,
	.elem = {.parse = dps_parse_map,
		 .size = sizeof(struct dps_neigh_cfg),
		 .map = &dps_neighbour_schema},
};
