/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The optional Prometheus /metrics HTTP endpoint of dpsecd (libmicrohttpd),
 * serving what `dpsecctl metrics` prints: it asks dpsecd's own telemetry
 * socket the same questions and formats the answers with the same code
 * (dpsecctl_metrics.c), so both always agree.
 */
#ifndef DPS_METRICS_HTTP_H
#define DPS_METRICS_HTTP_H

#include "control/config.h"

/** Listen on @cfg's address and port when enabled. 0, or -1 (logged). */
int dps_metrics_http_start(const struct dps_metrics_cfg *cfg);

/** Stop listening (idempotent). */
void dps_metrics_http_stop(void);

#endif
