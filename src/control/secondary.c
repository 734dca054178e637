/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A secondary process learns the primary's virtual devices by asking the vdev
 * bus ("bus_vdev_mp") and then probes every one of them itself. The ethdev
 * PMDs attach to the primary's ports, but compressdev has no multi-process
 * support: probing compress_isal in a secondary resets the primary's
 * dev_started in the shared device data, and the secondary's exit closes the
 * device and frees the primary's private-xform pool (dpdk-dumpcap then dies
 * with SIGSEGV and dpsecd's IPComp loses its device). A secondary needs the
 * ports only (capture, statistics), so dpsecd answers that request itself
 * with the ports' virtual devices and leaves crypto and compress devices out.
 *
 * The messages are the vdev bus's own (drivers/bus/vdev/vdev.c of DPDK 22.11):
 * one VDEV_SCAN_ONE message per device, then the reply VDEV_SCAN_REP with
 * their number.
 */
#include <string.h>

#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_string_fns.h>

#include "control/secondary.h"
#include "dataplane/dp.h"
#include "dataplane/port.h"

#define VDEV_MP_KEY   "bus_vdev_mp"
#define VDEV_SCAN_REQ 1
#define VDEV_SCAN_ONE 2
#define VDEV_SCAN_REP 3

struct vdev_param {
	int type;
	int num;
	char name[RTE_DEV_NAME_MAX_LEN];
};

static char port_vdev[DPS_MAX_PORTS][RTE_DEV_NAME_MAX_LEN];
static unsigned int n_port_vdevs;

static int vdev_scan_action(const struct rte_mp_msg *msg, const void *peer)
{
	const struct vdev_param *in = (const struct vdev_param *)msg->param;
	struct rte_mp_msg resp;
	struct vdev_param *out = (struct vdev_param *)resp.param;

	if (msg->len_param < (int)sizeof(*in) || in->type != VDEV_SCAN_REQ)
		return 0; /* a primary receives nothing else */
	memset(&resp, 0, sizeof(resp));
	rte_strlcpy(resp.name, VDEV_MP_KEY, sizeof(resp.name));
	resp.len_param = sizeof(*out);
	out->type = VDEV_SCAN_ONE;
	out->num = 1;
	for (unsigned int i = 0; i < n_port_vdevs; i++) {
		rte_strlcpy(out->name, port_vdev[i], sizeof(out->name));
		if (rte_mp_sendmsg(&resp) < 0)
			DP_LOG(WARNING, "secondary process: cannot send vdev %s", port_vdev[i]);
	}
	out->type = VDEV_SCAN_REP;
	out->num = (int)n_port_vdevs;
	out->name[0] = '\0';
	if (rte_mp_reply(&resp, peer) < 0)
		DP_LOG(WARNING, "secondary process: cannot answer its vdev scan");
	return 0;
}

int dps_secondary_limit_vdevs(const struct dps_config *cfg)
{
	n_port_vdevs = 0;
	for (unsigned int i = 0; i < cfg->n_ports; i++) {
		if (dp_device_is_pci(cfg->ports[i].device))
			continue;
		dp_device_name(cfg->ports[i].device, port_vdev[n_port_vdevs],
			       sizeof(port_vdev[n_port_vdevs]));
		n_port_vdevs++;
	}
	rte_mp_action_unregister(VDEV_MP_KEY);
	return rte_mp_action_register(VDEV_MP_KEY, vdev_scan_action);
}
