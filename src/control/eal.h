/* SPDX-License-Identifier: BSD-3-Clause */
/* The EAL command line that the configuration implies. */
#ifndef DPS_EAL_H
#define DPS_EAL_H

#include "control/config.h"

#define DPS_EAL_MAX_ARGS (32 + 2 * DPS_MAX_PORTS + 2 * DPS_MAX_CRYPTODEVS + DPS_MAX_EAL_EXTRA)

struct dps_eal_args {
	int argc;
	char *argv[DPS_EAL_MAX_ARGS];
	char buf[DPS_EAL_MAX_ARGS][DPS_DEVICE_LEN + 16];
};

/** Build the EAL arguments for @cfg (program name @prog first). */
void dps_eal_args_build(struct dps_eal_args *a, const struct dps_config *cfg, const char *prog);

#endif
