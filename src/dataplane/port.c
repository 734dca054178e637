/* SPDX-License-Identifier: BSD-3-Clause */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_ethdev.h>

#include "dataplane/dp.h"
#include "dataplane/port.h"

bool dp_device_is_pci(const char *dev)
{
	/* [dddd:]bb:dd.f */
	const char *p = dev;
	size_t n = strcspn(dev, ",");

	if (n == 12 && dev[4] == ':')
		p += 5, n -= 5;
	if (n != 7 || p[2] != ':' || p[5] != '.')
		return false;
	return isxdigit((unsigned char)p[0]) && isxdigit((unsigned char)p[1]) &&
	       isxdigit((unsigned char)p[3]) && isxdigit((unsigned char)p[4]) && p[6] >= '0' &&
	       p[6] <= '7';
}

void dp_device_name(const char *dev, char *name, size_t len)
{
	size_t n = strcspn(dev, ",");

	snprintf(name, len, "%.*s", (int)n, dev);
}

static int find_ethdev(const char *dev, uint16_t *id)
{
	char name[RTE_ETH_NAME_MAX_LEN], full[RTE_ETH_NAME_MAX_LEN + 8];

	dp_device_name(dev, name, sizeof(name));
	if (rte_eth_dev_get_port_by_name(name, id) == 0)
		return 0;
	/* PCI devices are named with their domain. */
	snprintf(full, sizeof(full), "0000:%s", name);
	return rte_eth_dev_get_port_by_name(full, id);
}

/* Fragments are chained mbufs (frag.c): sent as such where the device can. */
static uint64_t tx_offloads(uint16_t id)
{
	struct rte_eth_dev_info info;

	if (rte_eth_dev_info_get(id, &info) != 0)
		return 0;
	return info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
}

static int queues_setup(uint16_t id, const char *what, uint16_t nb_rxq, uint16_t nb_txq,
			uint16_t rx_desc, uint16_t tx_desc, uint64_t rss)
{
	struct rte_eth_conf conf = {0};
	int rc;

	conf.txmode.offloads = tx_offloads(id);
	if (nb_rxq > 1 && rss) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = rss;
	}
	rc = rte_eth_dev_configure(id, nb_rxq, nb_txq, &conf);
	if (rc == 0)
		rc = rte_eth_dev_adjust_nb_rx_tx_desc(id, &rx_desc, &tx_desc);
	for (uint16_t q = 0; rc == 0 && q < nb_rxq; q++)
		rc = rte_eth_rx_queue_setup(id, q, rx_desc, rte_eth_dev_socket_id(id), NULL,
					    dp.pool);
	for (uint16_t q = 0; rc == 0 && q < nb_txq; q++)
		rc = rte_eth_tx_queue_setup(id, q, tx_desc, rte_eth_dev_socket_id(id), NULL);
	if (rc < 0)
		DP_LOG(ERR, "%s: cannot set up %u rx / %u tx queues: %s", what, nb_rxq, nb_txq,
		       rte_strerror(-rc));
	return rc;
}

static int set_mtu(uint16_t id, const char *what, uint16_t mtu)
{
	int rc = rte_eth_dev_set_mtu(id, mtu);

	if (rc == -ENOTSUP) {
		DP_LOG(NOTICE, "%s: device cannot set its MTU; the dataplane enforces %u", what,
		       mtu);
		return 0;
	}
	if (rc < 0)
		DP_LOG(ERR, "%s: cannot set MTU %u: %s", what, mtu, rte_strerror(-rc));
	return rc;
}

/* fe80::/64 with the modified EUI-64 of @mac (RFC 4291 §2.5.1), as the kernel derives it. */
static void ll6_from_mac(struct in6_addr *a, const struct rte_ether_addr *mac)
{
	const uint8_t *m = mac->addr_bytes;

	memset(a, 0, sizeof(*a));
	a->s6_addr[0] = 0xfe;
	a->s6_addr[1] = 0x80;
	a->s6_addr[8] = m[0] ^ 0x02;
	a->s6_addr[9] = m[1];
	a->s6_addr[10] = m[2];
	a->s6_addr[11] = 0xff;
	a->s6_addr[12] = 0xfe;
	a->s6_addr[13] = m[3];
	a->s6_addr[14] = m[4];
	a->s6_addr[15] = m[5];
}

/* The dataplane answers ND for the port's addresses, and the kernel's DAD would
 * leave the TAP's link-local address tentative (unusable) for a while, or for
 * good if the TAP's carrier comes up late: the kernel must not do DAD there. */
static void tap_sysctl(const char *iface, const char *knob, const char *val)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/%s", iface, knob);
	f = fopen(path, "w");
	if (f == NULL) {
		DP_LOG(WARNING, "%s: cannot set %s: %s", iface, knob, strerror(errno));
		return;
	}
	fputs(val, f);
	fclose(f);
}

static void tap_no_dad(const char *iface)
{
	tap_sysctl(iface, "accept_dad", "0");
	/* The TAP's carrier follows its queues: a flap must not flush its addresses. */
	tap_sysctl(iface, "keep_addr_on_down", "1");
}

/* The TAP carries the port's MAC so that what the kernel sends can leave as is. */
static int tap_setup(uint16_t idx)
{
	struct dp_port *p = &dp.ports[idx];
	char name[32], args[128], mac[RTE_ETHER_ADDR_FMT_SIZE];
	uint16_t id;
	int rc;

	rte_ether_format_addr(mac, sizeof(mac), &p->mac);
	snprintf(name, sizeof(name), "net_tap_dps%u", idx);
	snprintf(args, sizeof(args), "%s,iface=%s,mac=%s", name, p->cfg->exception_iface, mac);
	rc = rte_dev_probe(args);
	if (rc < 0 || rte_eth_dev_get_port_by_name(name, &id) != 0) {
		DP_LOG(ERR, "port %s: cannot create exception TAP %s: %s", p->cfg->name,
		       p->cfg->exception_iface, rte_strerror(rc < 0 ? -rc : ENODEV));
		return -1;
	}
	p->tap_id = id;
	dp.port_of_eth[id] = idx;
	dp.eth_is_tap[id] = true;
	tap_no_dad(p->cfg->exception_iface);
	rc = queues_setup(id, p->cfg->exception_iface, dp.n_workers, dp.n_workers, 512, 512, 0);
	if (rc == 0)
		rc = set_mtu(id, p->cfg->exception_iface, p->mtu);
	return rc;
}

int dp_port_setup(uint16_t idx)
{
	const struct dps_port_cfg *pc = &dp.cfg->ports[idx];
	struct dp_port *p = &dp.ports[idx];
	struct rte_eth_dev_info info;
	uint16_t id;
	int rc;

	p->mtu = pc->mtu;
	p->nb_rxq = pc->rx_queues;
	p->tap_id = DP_NO_PORT;
	if (find_ethdev(pc->device, &id) != 0) {
		DP_LOG(ERR, "port %s: no ethdev for device '%s' (wrong name, or not probed)",
		       pc->name, pc->device);
		return -1;
	}
	p->cfg = pc; /* from here on dp_port_close() owns the device */
	p->eth_id = id;
	dp.port_of_eth[id] = idx;
	rc = rte_eth_dev_info_get(id, &info);
	if (rc < 0)
		return rc;
	if (info.max_rx_queues < pc->rx_queues || info.max_tx_queues < dp.n_workers) {
		DP_LOG(ERR,
		       "port %s: device %s offers %u rx / %u tx queues; the configuration needs %u "
		       "rx "
		       "and one tx per worker (%u)",
		       pc->name, info.driver_name, info.max_rx_queues, info.max_tx_queues,
		       pc->rx_queues, dp.n_workers);
		return -1;
	}
	rc = queues_setup(id, pc->name, pc->rx_queues, dp.n_workers, pc->rx_desc, pc->tx_desc,
			  (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) &
				  info.flow_type_rss_offloads);
	if (rc < 0)
		return rc;
	if (pc->has_mac) {
		rc = rte_eth_dev_default_mac_addr_set(id, (struct rte_ether_addr *)pc->mac);
		if (rc < 0) {
			DP_LOG(ERR, "port %s: cannot set MAC: %s", pc->name, rte_strerror(-rc));
			return rc;
		}
	}
	p->tx_multiseg = (tx_offloads(id) & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) != 0;
	if (!p->tx_multiseg)
		DP_LOG(NOTICE, "port %s: device cannot send chained mbufs; fragments are copied",
		       pc->name);
	rte_eth_macaddr_get(id, &p->mac);
	ll6_from_mac(&p->ll6, &p->mac);
	if (set_mtu(id, pc->name, pc->mtu) < 0)
		return -1;
	return pc->exception ? tap_setup(idx) : 0;
}

int dp_port_start(uint16_t idx)
{
	struct dp_port *p = &dp.ports[idx];
	int rc = rte_eth_dev_start(p->eth_id);

	if (rc == 0 && p->tap_id != DP_NO_PORT)
		rc = rte_eth_dev_start(p->tap_id);
	if (rc < 0) {
		DP_LOG(ERR, "port %s: cannot start: %s", p->cfg->name, rte_strerror(-rc));
		return rc;
	}
	/* ND uses solicited-node multicast; accept it even without promiscuous mode. */
	rte_eth_allmulticast_enable(p->eth_id);
	return 0;
}

void dp_port_close(uint16_t idx)
{
	struct dp_port *p = &dp.ports[idx];

	if (p->cfg == NULL)
		return;
	rte_eth_dev_stop(p->eth_id);
	rte_eth_dev_close(p->eth_id);
	if (p->tap_id != DP_NO_PORT) {
		rte_eth_dev_stop(p->tap_id);
		rte_eth_dev_close(p->tap_id);
	}
}
