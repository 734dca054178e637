/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The gateway's own network stack behind the exception TAPs: each TAP gets its
 * port's addresses, and the static routes are mirrored so that the kernel
 * (an IKE daemon, ping, ssh) reaches the same next hops as the dataplane.
 */
#ifndef DPS_HOSTSTACK_H
#define DPS_HOSTSTACK_H

#include "control/config.h"

/** Configure addresses and routes on the TAPs (after the ports started). 0 or -1. */
int dps_hoststack_setup(const struct dps_config *cfg);

#endif
