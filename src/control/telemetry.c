/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <stdio.h>
#include <unistd.h>

#include <rte_ethdev.h>
#include <rte_telemetry.h>

#include "control/telemetry.h"
#include "dataplane/dp.h"
#include "dataplane/neigh.h"

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
	(void)cmd, (void)params;
	if (!live)
		return -1;
	rte_tel_data_start_dict(out);
	rte_tel_data_add_dict_string(out, "config", dp.cfg->path);
	rte_tel_data_add_dict_int(out, "ports", (int)dp.n_ports);
	rte_tel_data_add_dict_int(out, "workers", (int)dp.n_workers);
	rte_tel_data_add_dict_int(out, "pid", (int)getpid());
	return 0;
}

int dps_telemetry_init(void)
{
	live = true;
	if (rte_telemetry_register_cmd("/dpsec/ports", cmd_ports,
				       "Counters per port. Takes no parameters") ||
	    rte_telemetry_register_cmd("/dpsec/workers", cmd_workers,
				       "Counters per worker. Takes no parameters") ||
	    rte_telemetry_register_cmd("/dpsec/neighbours", cmd_neighbours,
				       "ARP/ND neighbour table. Takes no parameters") ||
	    rte_telemetry_register_cmd("/dpsec/info", cmd_info,
				       "Daemon information. Takes no parameters"))
		return -1;
	return 0;
}

void dps_telemetry_stop(void)
{
	live = false;
}
