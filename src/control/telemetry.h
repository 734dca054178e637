/* SPDX-License-Identifier: BSD-3-Clause */
/* dpsec's telemetry commands (/dpsec/...), read by dpsecctl and dpdk-telemetry.py. */
#ifndef DPS_TELEMETRY_H
#define DPS_TELEMETRY_H

/** Register the /dpsec/ commands. */
int dps_telemetry_init(void);

/** Commands answer with an error once the dataplane is gone. */
void dps_telemetry_stop(void);

#endif
