/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dpsecctl capture: arm a capture at an IPsec point of dpsecd (enc(4)), wait
 * for it, and hand over the pcapng file dpsecd wrote.
 */
#ifndef DPS_DPSECCTL_CAPTURE_H
#define DPS_DPSECCTL_CAPTURE_H

#include <jansson.h>

/* Send a telemetry command, return its value (new reference) or NULL after
 * an error message. */
typedef json_t *(*dps_tel_query_fn)(void *ctx, const char *cmd);

/**
 * Run `dpsecctl capture` with its own arguments (@argv[0] is "capture").
 * Returns an exit status (0 ok, 1 error, 2 usage).
 */
int dps_capture_run(int argc, char **argv, dps_tel_query_fn query, void *ctx);

#endif
