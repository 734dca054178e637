/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The compression devices IPComp runs on (rte_compressdev, stateless
 * DEFLATE): compress_isal, compress_zlib or a PCI device (QAT), from the
 * configuration's compress section. Each worker has its own queue pair on
 * the device and its own private transforms; operations come from one pool.
 */
#ifndef DP_COMPRESS_H
#define DP_COMPRESS_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_comp.h>
#include <rte_compressdev.h>

#include "control/config.h"

/* Operations one worker has in flight at most: one burst. */
#define DP_COMP_BURST 64

struct dp_compress_ws {
	void *comp;   /* the worker's compress private transform */
	void *decomp; /* and its decompress one */
};

struct dp_compress {
	bool ready;  /* a device started: IPComp SAs may be made */
	uint8_t dev; /* the device IPComp uses */
	char name[64];
	uint16_t min_size; /* payloads below this are not compressed */
	uint16_t max_mtu;  /* the largest port MTU: what a payload may inflate to */
	uint16_t room;	   /* what an mbuf of the dataplane pool holds after its headroom */
	struct rte_mempool *op_pool;
	struct dp_compress_ws ws[DPS_MAX_WORKERS];
};

extern struct dp_compress dp_compress;

/**
 * Start the first of the configured devices that is present, one queue pair
 * per worker. A device missing is no error (IPComp SAs are then refused);
 * one present that cannot start is.
 */
int dp_compress_init(const struct dps_compress_cfg *c, unsigned int n_workers);

/** Stop and close the device, free the pool. */
void dp_compress_fini(void);

/**
 * Run @n operations on worker @w's queue pair to completion (software PMDs
 * complete them on enqueue; a hardware device is polled). Operations the
 * device would not take are marked failed. The ops come back in @ops in
 * their original order.
 */
void dp_compress_run(unsigned int w, struct rte_comp_op **ops, uint16_t n);

#endif
