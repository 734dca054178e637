/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dpsecctl metrics: dpsecd's counters in the Prometheus text exposition
 * format (version 0.0.4), for node_exporter's textfile collector.
 */
#ifndef DPS_DPSECCTL_METRICS_H
#define DPS_DPSECCTL_METRICS_H

#include <jansson.h>
#include <stdio.h>

/**
 * Print the replies of /dpsec/ports, /dpsec/workers, /dpsec/sa and
 * /dpsec/policy (objects of objects; any may be NULL) as metric families
 * labelled by port, worker, SA and policy, and the per-protocol totals
 * @protos (protocol name -> the reply of /dpsec/stats/<protocol>; may be
 * NULL) labelled by proto.
 */
void dps_metrics_print(FILE *out, const json_t *ports, const json_t *workers, const json_t *sas,
		       const json_t *policies, const json_t *protos);

#endif
