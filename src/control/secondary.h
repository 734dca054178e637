/* SPDX-License-Identifier: BSD-3-Clause */
/* What a DPDK secondary process (dpdk-dumpcap, dpdk-proc-info) is shown. */
#ifndef DPS_SECONDARY_H
#define DPS_SECONDARY_H

#include "control/config.h"

/**
 * Show secondary processes only the ports' virtual devices. Called once after
 * rte_eal_init() in a daemon with a shared configuration (eal.in_memory false).
 * Returns 0, or -1 with rte_errno set if the bus's handler cannot be replaced.
 */
int dps_secondary_limit_vdevs(const struct dps_config *cfg);

#endif
