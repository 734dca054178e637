/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_ethdev.h>
#include <rte_telemetry.h>

#include "control/config_schema.h"
#include "control/ipsec_stats.h"
#include "control/store.h"
#include "control/telemetry.h"
#include "dataplane/capture.h"
#include "dataplane/compress.h"
#include "dataplane/crypto.h"
#include "dataplane/dp.h"
#include "dataplane/neigh.h"
#include "dataplane/sa.h"
#include "dataplane/session.h"
#include "dataplane/spd.h"

static volatile bool live;

static struct rte_tel_data *counters_dict(const struct dp_counters *c)
{
	struct rte_tel_data *d = rte_tel_data_alloc();

	if (d == NULL)
		return NULL;
	rte_tel_data_start_dict(d);
	for (unsigned int i = 0; i < DP_CNT_MAX; i++)
		rte_tel_data_add_dict_u64(d, dp_counter_names[i], c->v[i]);
	return d;
}

/* Per port: the dataplane's counters plus what the device itself saw. */
static int cmd_ports(const char *cmd, const char *params, struct rte_tel_data *out)
{
	(void)cmd, (void)params;
	if (!live)
		return -1;
	rte_tel_data_start_dict(out);
	for (unsigned int p = 0; p < dp.n_ports; p++) {
		struct dp_counters c;
		struct rte_eth_stats st;
		struct rte_tel_data *d;

		dp_port_counters(p, &c);
		d = counters_dict(&c);
		if (d == NULL)
			return -1;
		if (rte_eth_stats_get(dp.ports[p].eth_id, &st) == 0) {
			rte_tel_data_add_dict_u64(d, "dev_rx_missed", st.imissed);
			rte_tel_data_add_dict_u64(d, "dev_rx_errors", st.ierrors);
			rte_tel_data_add_dict_u64(d, "dev_rx_nombuf", st.rx_nombuf);
			rte_tel_data_add_dict_u64(d, "dev_tx_errors", st.oerrors);
		}
		if (rte_tel_data_add_dict_container(out, dp.ports[p].cfg->name, d, 0) < 0)
			rte_tel_data_free(d);
	}
	return 0;
}

static int cmd_workers(const char *cmd, const char *params, struct rte_tel_data *out)
{
	char name[32];

	(void)cmd, (void)params;
	if (!live)
		return -1;
	rte_tel_data_start_dict(out);
	for (unsigned int w = 0; w < dp.n_workers; w++) {
		struct dp_counters c;
		struct rte_tel_data *d;

		dp_worker_counters(w, &c);
		d = counters_dict(&c);
		if (d == NULL)
			return -1;
		rte_tel_data_add_dict_u64(d, "lcore", dp.workers[w].lcore);
		rte_tel_data_add_dict_u64(d, "loops", dp.workers[w].loops);
		rte_tel_data_add_dict_u64(d, "idle_sleeps", dp.workers[w].idle_sleeps);
		snprintf(name, sizeof(name), "worker%u", w);
		if (rte_tel_data_add_dict_container(out, name, d, 0) < 0)
			rte_tel_data_free(d);
	}
	return 0;
}

static const char *const neigh_states[] = {
	[DP_NEIGH_INCOMPLETE] = "incomplete",
	[DP_NEIGH_REACHABLE] = "reachable",
	[DP_NEIGH_PROBE] = "probe",
	[DP_NEIGH_STATIC] = "static",
};

struct neigh_walk {
	struct rte_tel_data *out;
	unsigned int i;
};

/* Telemetry keys may only hold [A-Za-z0-9_/]: the address is a field, the key an index. */
static void neigh_one(const struct dp_neigh *n, uint64_t now, void *arg)
{
	struct neigh_walk *nw = arg;
	struct rte_tel_data *d = rte_tel_data_alloc();
	char addr[INET6_ADDRSTRLEN], key[32], mac[RTE_ETHER_ADDR_FMT_SIZE];

	if (d == NULL)
		return;
	inet_ntop(n->key.family, n->key.addr, addr, sizeof(addr));
	snprintf(key, sizeof(key), "n%u", nw->i++);
	rte_ether_format_addr(mac, sizeof(mac), &n->mac);
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_string(d, "port", dp.ports[n->key.port].cfg->name);
	rte_tel_data_add_dict_string(d, "address", addr);
	rte_tel_data_add_dict_string(d, "mac", mac);
	rte_tel_data_add_dict_string(d, "state", neigh_states[n->state & 3]);
	rte_tel_data_add_dict_u64(d, "age_ms",
				  n->state == DP_NEIGH_STATIC ? 0 : now - n->confirmed_ms);
	rte_tel_data_add_dict_int(d, "static", n->state == DP_NEIGH_STATIC);
	rte_tel_data_add_dict_u64(d, "held", n->n_held);
	if (rte_tel_data_add_dict_container(nw->out, key, d, 0) < 0)
		rte_tel_data_free(d);
}

static int cmd_neighbours(const char *cmd, const char *params, struct rte_tel_data *out)
{
	(void)cmd, (void)params;
	if (!live)
		return -1;
	struct neigh_walk nw = {.out = out};

	rte_tel_data_start_dict(out);
	dp_neigh_walk(dp.neigh, neigh_one, &nw);
	return 0;
}

static int cmd_info(const char *cmd, const char *params, struct rte_tel_data *out)
{
	unsigned int n_sas, n_pol, used, room, pools;

	(void)cmd, (void)params;
	if (!live)
		return -1;
	rte_tel_data_start_dict(out);
	rte_tel_data_add_dict_string(out, "config", dp.cfg->path);
	rte_tel_data_add_dict_int(out, "ports", (int)dp.n_ports);
	rte_tel_data_add_dict_int(out, "workers", (int)dp.n_workers);
	rte_tel_data_add_dict_int(out, "pid", (int)getpid());
	dps_store_counts(&n_sas, &n_pol);
	rte_tel_data_add_dict_u64(out, "sas", n_sas);
	rte_tel_data_add_dict_u64(out, "policies", n_pol);
	dp_session_count(&used, &room, &pools);
	rte_tel_data_add_dict_u64(out, "crypto_sessions", used);
	rte_tel_data_add_dict_u64(out, "crypto_session_room", room);
	rte_tel_data_add_dict_u64(out, "crypto_session_pools", pools);
	return 0;
}

/* Telemetry replies are capped at 16 KiB: SAs and policies come in pages;
 * the parameter is the index to start from, an empty page ends the walk. */
#define PAGE 8

struct page {
	struct rte_tel_data *out;
	unsigned int skip, n;
};

static const char *const enc_names[] = {"null",	   "aes-cbc",  "aes-ctr",
					"aes-gcm", "aes-gmac", "chacha20-poly1305"};
static const char *const auth_names[] = {
	"none",	   "hmac-sha1-96", "hmac-sha2-256-128", "hmac-sha2-384-192", "hmac-sha2-512-256",
	"aes-gmac"};
static const char *const dir_names[] = {"in", "out", "fwd"};

static const char *proto_name(uint8_t p)
{
	return p == DPS_PROTO_ESP ? "esp" : p == DPS_PROTO_AH ? "ah" : "ipcomp";
}

static void add_addr(struct rte_tel_data *d, const char *k, const struct dps_addr *a)
{
	char buf[INET6_ADDRSTRLEN];

	rte_tel_data_add_dict_string(d, k, dps_addr_str(a, buf, sizeof(buf)));
}

static void add_prefix(struct rte_tel_data *d, const char *k, const struct dps_prefix *p)
{
	char buf[INET6_ADDRSTRLEN], out[INET6_ADDRSTRLEN + 4];

	snprintf(out, sizeof(out), "%s/%u", dps_addr_str(&p->addr, buf, sizeof(buf)), p->len);
	rte_tel_data_add_dict_string(d, k, out);
}

/* Seconds since the SA was added and since its first use (-1: never used). */
static void add_ages(struct rte_tel_data *d, const struct dp_sa *sa)
{
	uint64_t now = dp_now_ms(), used = sa->first_use_ms;

	rte_tel_data_add_dict_u64(d, "age_s", (now - sa->add_ms) / 1000);
	rte_tel_data_add_dict_int(d, "use_s", used ? (int)((now - used) / 1000) : -1);
}

/* A lifetime as <which>_bytes, _packets, _add_s, _use_s (0: unlimited). */
static void add_lifetime(struct rte_tel_data *d, const char *which, const struct dps_lifetime *l)
{
	char k[32];

	snprintf(k, sizeof(k), "%s_bytes", which);
	rte_tel_data_add_dict_u64(d, k, l->bytes);
	snprintf(k, sizeof(k), "%s_packets", which);
	rte_tel_data_add_dict_u64(d, k, l->packets);
	snprintf(k, sizeof(k), "%s_add_s", which);
	rte_tel_data_add_dict_u64(d, k, l->add_s);
	snprintf(k, sizeof(k), "%s_use_s", which);
	rte_tel_data_add_dict_u64(d, k, l->use_s);
}

static int sa_one(const struct dps_store_sa *e, void *arg)
{
	struct page *pg = arg;
	const struct dps_sa *c = &e->cfg;
	struct dp_sa_counters cnt;
	struct rte_tel_data *d;
	char key[32], buf[64];

	if (pg->skip) {
		pg->skip--;
		return 0;
	}
	d = rte_tel_data_alloc();
	if (d == NULL)
		return 1;
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "id", e->id);
	rte_tel_data_add_dict_string(d, "origin",
				     e->origin == DPS_ORIGIN_PFKEY ? "pfkey" : "config");
	snprintf(buf, sizeof(buf), "0x%08x", c->spi);
	rte_tel_data_add_dict_string(d, "spi", buf);
	rte_tel_data_add_dict_string(d, "dir", dir_names[c->dir % 3]);
	rte_tel_data_add_dict_string(d, "proto", proto_name(c->proto));
	rte_tel_data_add_dict_string(d, "mode",
				     c->mode == DPS_MODE_TUNNEL ? "tunnel" : "transport");
	add_addr(d, "src", &c->src);
	add_addr(d, "dst", &c->dst);
	rte_tel_data_add_dict_u64(d, "reqid", c->reqid);
	/* IPComp's transform is its compression algorithm (DEFLATE only) */
	rte_tel_data_add_dict_string(d, "enc",
				     c->proto == DPS_PROTO_IPCOMP
					     ? "deflate"
					     : enc_names[c->enc_alg % RTE_DIM(enc_names)]);
	rte_tel_data_add_dict_string(d, "auth", auth_names[c->auth_alg % RTE_DIM(auth_names)]);
	snprintf(buf, sizeof(buf), "udp:%u:%u", c->encap_sport, c->encap_dport);
	rte_tel_data_add_dict_string(d, "encap", c->udp_encap ? buf : "none");
	rte_tel_data_add_dict_u64(d, "replay_window", c->replay_window);
	rte_tel_data_add_dict_int(d, "esn", c->esn);
	if (c->proto == DPS_PROTO_IPCOMP) { /* no crypto: the compress device (compress.c) */
		rte_tel_data_add_dict_string(d, "device", dp_compress.name);
		rte_tel_data_add_dict_string(d, "crypto", "none");
	} else if (e->dp->native) { /* intel-ipsec-mb without a device (imb.c) */
		rte_tel_data_add_dict_string(d, "device", "intel-ipsec-mb");
		rte_tel_data_add_dict_string(d, "crypto", "native");
	} else {
		rte_tel_data_add_dict_string(d, "device", dp_crypto.devs[e->dp->dev].name);
		rte_tel_data_add_dict_string(
			d, "crypto",
			e->dp->ss.type == RTE_SECURITY_ACTION_TYPE_CPU_CRYPTO ? "cpu" : "async");
	}
	add_ages(d, e->dp);
	add_lifetime(d, "soft", &c->soft);
	add_lifetime(d, "hard", &c->hard);
	dp_sa_counters(e->dp, &cnt);
	for (unsigned int i = 0; i < DP_SA_CNT_MAX; i++)
		rte_tel_data_add_dict_u64(d, dp_sa_counter_names[i], cnt.v[i]);
	snprintf(key, sizeof(key), "sa%u", e->id);
	if (rte_tel_data_add_dict_container(pg->out, key, d, 0) < 0)
		rte_tel_data_free(d);
	return ++pg->n == PAGE;
}

static const char *const action_names[] = {"discard", "bypass", "protect"};
static const char *const level_names[] = {"default", "use", "require", "unique"};

static void add_req(struct rte_tel_data *d, const struct dps_ipsec_req *r, unsigned int i)
{
	char k[16], sfx[4] = "";

	if (i)
		snprintf(sfx, sizeof(sfx), "%u", i + 1);
#define KEY(name) (snprintf(k, sizeof(k), "%s%s", name, sfx), k)
	rte_tel_data_add_dict_string(d, KEY("ipsec"), proto_name(r->proto));
	rte_tel_data_add_dict_string(d, KEY("mode"),
				     r->mode == DPS_MODE_TUNNEL ? "tunnel" : "transport");
	rte_tel_data_add_dict_string(d, KEY("level"), level_names[r->level % 4]);
	rte_tel_data_add_dict_u64(d, KEY("reqid"), r->reqid);
	if (r->mode == DPS_MODE_TUNNEL) {
		add_addr(d, KEY("tun_src"), &r->tun_src);
		add_addr(d, KEY("tun_dst"), &r->tun_dst);
	}
#undef KEY
}

static int policy_one(const struct dps_store_policy *e, void *arg)
{
	struct page *pg = arg;
	const struct dps_policy *p = &e->p;
	struct rte_tel_data *d;
	uint64_t hits = 0;
	char key[32], buf[32];

	if (pg->skip) {
		pg->skip--;
		return 0;
	}
	d = rte_tel_data_alloc();
	if (d == NULL)
		return 1;
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "id", p->id);
	rte_tel_data_add_dict_string(d, "origin",
				     e->origin == DPS_ORIGIN_PFKEY ? "pfkey" : "config");
	rte_tel_data_add_dict_string(d, "dir", dir_names[p->dir % 3]);
	rte_tel_data_add_dict_u64(d, "priority", p->priority);
	add_prefix(d, "src", &p->sel.src);
	add_prefix(d, "dst", &p->sel.dst);
	rte_tel_data_add_dict_int(d, "proto", p->sel.proto);
	snprintf(buf, sizeof(buf), "%u-%u", p->sel.sport_lo, p->sel.sport_hi);
	rte_tel_data_add_dict_string(d, "sport", buf);
	snprintf(buf, sizeof(buf), "%u-%u", p->sel.dport_lo, p->sel.dport_hi);
	rte_tel_data_add_dict_string(d, "dport", buf);
	rte_tel_data_add_dict_string(d, "action", action_names[p->action % 3]);
	/* The first transform under the historic keys, the others suffixed 2, 3. */
	rte_tel_data_add_dict_u64(d, "transforms", p->n_reqs);
	for (unsigned int i = 0; i < p->n_reqs && i < DPS_MAX_IPSEC_REQS; i++)
		add_req(d, &p->reqs[i], i);
	rte_tel_data_add_dict_u64(d, "age_s", (uint64_t)time(NULL) - e->add_time);
	for (unsigned int w = 0; w < dp.n_workers; w++)
		hits += __atomic_load_n(&e->hits[w].n, __ATOMIC_RELAXED);
	rte_tel_data_add_dict_u64(d, "hits", hits);
	/* which level of the SPD holds it: the main classifiers, or the recent
	 * policies in front of them until the background compilation merges them */
	rte_tel_data_add_dict_string(d, "classifier",
				     __atomic_load_n(&e->in_recent, __ATOMIC_RELAXED) ? "recent"
										      : "main");
	snprintf(key, sizeof(key), "policy%u", p->id);
	if (rte_tel_data_add_dict_container(pg->out, key, d, 0) < 0)
		rte_tel_data_free(d);
	return ++pg->n == PAGE;
}

static int page_start(const char *params, struct page *pg, struct rte_tel_data *out)
{
	char *end;

	pg->out = out;
	pg->n = 0;
	pg->skip = 0;
	if (params != NULL && *params) {
		unsigned long v = strtoul(params, &end, 10);

		if (*end)
			return -1;
		pg->skip = v;
	}
	rte_tel_data_start_dict(out);
	return 0;
}

static int cmd_sa(const char *cmd, const char *params, struct rte_tel_data *out)
{
	struct page pg;

	(void)cmd;
	if (!live || page_start(params, &pg, out) < 0)
		return -1;
	dps_store_walk_sas(sa_one, &pg);
	return 0;
}

static int cmd_policy(const char *cmd, const char *params, struct rte_tel_data *out)
{
	struct page pg;

	(void)cmd;
	if (!live || page_start(params, &pg, out) < 0)
		return -1;
	dps_store_walk_policies(policy_one, &pg);
	return 0;
}

/* /dpsec/stats/<proto>: the protocol's totals (ipsec_stats.c); cmd names the protocol. */
static int cmd_proto_stats(const char *cmd, const char *params, struct rte_tel_data *out)
{
	const char *name = strrchr(cmd, '/') + 1;
	struct dps_ipsec_stats st;
	int p;

	(void)params;
	if (!live)
		return -1;
	for (p = 0; p < DPS_STATS_NPROTO; p++)
		if (strcmp(name, dps_stats_proto_names[p]) == 0)
			break;
	if (p == DPS_STATS_NPROTO)
		return -1;
	dps_ipsec_stats_get((enum dps_stats_proto)p, &st);
	rte_tel_data_start_dict(out);
	rte_tel_data_add_dict_u64(out, "sas", st.sas);
	rte_tel_data_add_dict_u64(out, "in_packets", st.in_packets);
	rte_tel_data_add_dict_u64(out, "in_bytes", st.in_bytes);
	rte_tel_data_add_dict_u64(out, "out_packets", st.out_packets);
	rte_tel_data_add_dict_u64(out, "out_bytes", st.out_bytes);
	for (unsigned int i = 0; i < DP_SA_CNT_MAX; i++)
		if (i != DP_SA_CNT_packets && i != DP_SA_CNT_bytes)
			rte_tel_data_add_dict_u64(out, dp_sa_counter_names[i], st.drop[i]);
	if (p != DPS_STATS_AH) {
		rte_tel_data_add_dict_u64(
			out, p == DPS_STATS_ESP ? "drop_unknown_spi" : "drop_unknown_cpi",
			st.drop_unknown_spi);
		rte_tel_data_add_dict_u64(out, "drop_malformed", st.drop_malformed);
	}
	return 0;
}

/*
 * /dpsec/capture/start,POINT SA POLICY COUNT RATE PATH (dpsecctl capture):
 * arm a capture at an IPsec point (capture.h). Answers {"error": "..."} or
 * {"started": 1}.
 */
static int cmd_capture_start(const char *cmd, const char *params, struct rte_tel_data *out)
{
	char point[16], err[160] = "";
	unsigned int sa, pol, rate;
	unsigned long long count;
	int n = 0;
	uint8_t pt;

	(void)cmd;
	if (!live)
		return -1;
	rte_tel_data_start_dict(out);
	if (params == NULL ||
	    sscanf(params, "%15s %u %u %llu %u %n", point, &sa, &pol, &count, &rate, &n) != 5 ||
	    n == 0 || params[n] == '\0') {
		rte_tel_data_add_dict_string(out, "error",
					     "expected POINT SA POLICY COUNT RATE PATH");
		return 0;
	}
	for (pt = 0; pt < DP_CAP_MAX; pt++)
		if (!strcmp(point, dp_cap_point_names[pt]))
			break;
	if (pt == DP_CAP_MAX)
		snprintf(err, sizeof(err), "unknown point %s", point);
	else if (pol && (pt == DP_CAP_OUT_CIPHER || pt == DP_CAP_IN_CIPHER))
		snprintf(err, sizeof(err), "%s knows no policy: filter by SA", point);
	else
		dp_cap_start(pt, sa, pol, count, rate, params + n, err, sizeof(err));
	if (err[0])
		rte_tel_data_add_dict_string(out, "error", err);
	else
		rte_tel_data_add_dict_int(out, "started", 1);
	return 0;
}

static int cmd_capture_status(const char *cmd, const char *params, struct rte_tel_data *out)
{
	struct dp_cap_status st;

	(void)cmd, (void)params;
	if (!live)
		return -1;
	dp_cap_status(&st);
	rte_tel_data_start_dict(out);
	rte_tel_data_add_dict_string(out, "point", dp_cap_point_names[st.point % DP_CAP_MAX]);
	rte_tel_data_add_dict_int(out, "armed", st.armed);
	rte_tel_data_add_dict_int(out, "done", st.done);
	rte_tel_data_add_dict_u64(out, "written", st.written);
	rte_tel_data_add_dict_u64(out, "skipped", st.skipped);
	rte_tel_data_add_dict_u64(out, "count", st.count);
	return 0;
}

static int cmd_capture_stop(const char *cmd, const char *params, struct rte_tel_data *out)
{
	(void)cmd, (void)params;
	if (!live)
		return -1;
	dp_cap_stop();
	rte_tel_data_start_dict(out);
	rte_tel_data_add_dict_int(out, "stopping", 1);
	return 0;
}

static const struct {
	const char *name;
	int *type;
} log_subsys[] = {
	{"dataplane", &dp_logtype},
	{"pfkey", &dps_logtype_pfkey},
	{"store", &dps_logtype_store},
};

static const char *level_name(int level)
{
	for (const struct dps_enum *e = dps_log_levels; e->name; e++)
		if (e->value == level)
			return e->name;
	return "?";
}

/*
 * /dpsec/log_level[,SUBSYSTEM LEVEL] (dpsecctl log-level): set a subsystem's
 * log level; answer every subsystem's level, or {"error": ...}.
 */
static int cmd_log_level(const char *cmd, const char *params, struct rte_tel_data *out)
{
	char sub[16], lvl[16];
	size_t i;

	(void)cmd;
	rte_tel_data_start_dict(out);
	if (params != NULL && params[0] != '\0') {
		const struct dps_enum *e;

		if (sscanf(params, "%15s %15s", sub, lvl) != 2) {
			rte_tel_data_add_dict_string(out, "error", "expected SUBSYSTEM LEVEL");
			return 0;
		}
		for (i = 0; i < RTE_DIM(log_subsys); i++)
			if (!strcmp(sub, log_subsys[i].name))
				break;
		for (e = dps_log_levels; e->name && strcmp(e->name, lvl); e++)
			;
		if (i == RTE_DIM(log_subsys) || e->name == NULL) {
			rte_tel_data_add_dict_string(
				out, "error",
				i == RTE_DIM(log_subsys)
					? "unknown subsystem: dataplane, pfkey or store"
					: "unknown level: emerg, alert, crit, err, warning, "
					  "notice, "
					  "info or debug");
			return 0;
		}
		/* rte_log also wants the global level (EAL's --log-level) */
		if ((uint32_t)e->value > rte_log_get_global_level())
			rte_log_set_global_level((uint32_t)e->value);
		rte_log_set_level(*log_subsys[i].type, (uint32_t)e->value);
	}
	for (i = 0; i < RTE_DIM(log_subsys); i++)
		rte_tel_data_add_dict_string(out, log_subsys[i].name,
					     level_name(rte_log_get_level(*log_subsys[i].type)));
	return 0;
}

int dps_telemetry_init(void)
{
	if (rte_telemetry_register_cmd("/dpsec/sa", cmd_sa,
				       "Security associations with counters. Param: start index") ||
	    rte_telemetry_register_cmd("/dpsec/policy", cmd_policy,
				       "Security policies with hits. Param: start index"))
		return -1;
	live = true;
	if (rte_telemetry_register_cmd("/dpsec/ports", cmd_ports,
				       "Counters per port. Takes no parameters") ||
	    rte_telemetry_register_cmd("/dpsec/workers", cmd_workers,
				       "Counters per worker. Takes no parameters") ||
	    rte_telemetry_register_cmd("/dpsec/neighbours", cmd_neighbours,
				       "ARP/ND neighbour table. Takes no parameters") ||
	    rte_telemetry_register_cmd("/dpsec/info", cmd_info,
				       "Daemon information. Takes no parameters") ||
	    rte_telemetry_register_cmd("/dpsec/capture/start", cmd_capture_start,
				       "Arm a capture. Param: POINT SA POLICY COUNT RATE PATH") ||
	    rte_telemetry_register_cmd("/dpsec/capture/status", cmd_capture_status,
				       "The capture's state. Takes no parameters") ||
	    rte_telemetry_register_cmd(
		    "/dpsec/log_level", cmd_log_level,
		    "Log levels per subsystem. Param: SUBSYSTEM LEVEL to set one") ||
	    rte_telemetry_register_cmd("/dpsec/capture/stop", cmd_capture_stop,
				       "Stop the capture. Takes no parameters"))
		return -1;
	for (unsigned int p = 0; p < DPS_STATS_NPROTO; p++) {
		char name[32];

		snprintf(name, sizeof(name), "/dpsec/stats/%s", dps_stats_proto_names[p]);
		if (rte_telemetry_register_cmd(name, cmd_proto_stats,
					       "Totals of one IPsec protocol over every SA it "
					       "ever had. Takes no parameters"))
			return -1;
	}
	return 0;
}

void dps_telemetry_stop(void)
{
	live = false;
}
