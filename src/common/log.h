/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Logging and the control thread's clock, shared by the dataplane, the
 * control plane and the PF_KEY server: what code outside src/dataplane needs
 * of it without the dataplane's types. Defined in dataplane/dp.c.
 */
#ifndef DPS_COMMON_LOG_H
#define DPS_COMMON_LOG_H

#include <stdint.h>

#include <rte_log.h>

/** dpsec's DPDK log types (registered by main.c with the configured levels):
 * "dpsec" (the dataplane's control and the rest of the daemon),
 * "dpsec.pfkey" (the PF_KEY server) and "dpsec.store" (the SA/policy store). */
extern int dp_logtype;
extern int dps_logtype_pfkey;
extern int dps_logtype_store;

/* A file of a subsystem defines DP_LOG_TYPE before including this header. */
#ifndef DP_LOG_TYPE
#define DP_LOG_TYPE dp_logtype
#endif

/** Log one line at RTE_LOG_@level, prefixed "dpsec: ". */
#define DP_LOG(level, fmt, ...)                                                                    \
	rte_log(RTE_LOG_##level, DP_LOG_TYPE, "dpsec: " fmt "\n", ##__VA_ARGS__)

/** Monotonic milliseconds, for the control thread's timers. */
uint64_t dp_now_ms(void);

#endif
