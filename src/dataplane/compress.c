/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_comp.h>
#include <rte_compressdev.h>
#include <rte_log.h>

#include "dataplane/compress.h"
#include "dataplane/dp.h"
#include "dataplane/port.h"

/* Each worker has one burst in flight at most. */
#define COMP_QP_DESC 128
#define COMP_OPS     4096

struct dp_compress dp_compress;

static bool deflate_ok(uint8_t id)
{
	const struct rte_compressdev_capabilities *cap =
		rte_compressdev_capability_get(id, RTE_COMP_ALGO_DEFLATE);

	return cap != NULL;
}

static int dev_setup(uint8_t id, unsigned int n_qp)
{
	struct rte_compressdev_config conf = {
		.socket_id = rte_compressdev_socket_id(id),
		.nb_queue_pairs = n_qp,
		.max_nb_priv_xforms = 2 * n_qp,
		.max_nb_streams = 0,
	};
	int rc = rte_compressdev_configure(id, &conf);

	for (unsigned int q = 0; rc == 0 && q < n_qp; q++)
		rc = rte_compressdev_queue_pair_setup(id, q, COMP_QP_DESC, conf.socket_id);
	return rc == 0 ? rte_compressdev_start(id) : rc;
}

static int xforms_create(uint8_t id, unsigned int n_workers)
{
	struct rte_comp_xform cx = {
		.type = RTE_COMP_COMPRESS,
		.compress = {.algo = RTE_COMP_ALGO_DEFLATE,
			     .deflate.huffman = RTE_COMP_HUFFMAN_DEFAULT,
			     .level = RTE_COMP_LEVEL_PMD_DEFAULT,
			     .window_size = 15,
			     .chksum = RTE_COMP_CHECKSUM_NONE,
			     .hash_algo = RTE_COMP_HASH_ALGO_NONE},
	};
	struct rte_comp_xform dx = {
		.type = RTE_COMP_DECOMPRESS,
		.decompress = {.algo = RTE_COMP_ALGO_DEFLATE,
			       .window_size = 15,
			       .chksum = RTE_COMP_CHECKSUM_NONE,
			       .hash_algo = RTE_COMP_HASH_ALGO_NONE},
	};

	for (unsigned int w = 0; w < n_workers; w++) {
		int rc = rte_compressdev_private_xform_create(id, &cx, &dp_compress.ws[w].comp);

		if (rc == 0)
			rc = rte_compressdev_private_xform_create(id, &dx,
								  &dp_compress.ws[w].decomp);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int dp_compress_init(const struct dps_compress_cfg *c, unsigned int n_workers)
{
	int id = -1;
	int rc;

	dp_compress.min_size = c->min_size;
	for (unsigned int i = 0; i < dp.n_ports; i++)
		dp_compress.max_mtu = RTE_MAX(dp_compress.max_mtu, dp.ports[i].mtu);
	/* dp.c sizes its mbufs for the largest MTU and more */
	dp_compress.room = rte_pktmbuf_data_room_size(dp.pool) - RTE_PKTMBUF_HEADROOM;
	dp_compress.max_mtu = RTE_MIN(dp_compress.max_mtu, dp_compress.room);
	for (unsigned int i = 0; i < c->n_devices && id < 0; i++) {
		struct rte_compressdev_info info;
		char name[64];

		dp_device_name(c->devices[i], name, sizeof(name));
		id = rte_compressdev_get_dev_id(name);
		if (id < 0) {
			DP_LOG(WARNING, "compress device '%s' not found (driver missing?)",
			       c->devices[i]);
			continue;
		}
		rte_compressdev_info_get(id, &info);
		if ((info.max_nb_queue_pairs && info.max_nb_queue_pairs < n_workers) ||
		    !deflate_ok(id)) {
			DP_LOG(WARNING, "compress device %s: no DEFLATE or too few queue pairs",
			       name);
			id = -1;
			continue;
		}
		snprintf(dp_compress.name, sizeof(dp_compress.name), "%s", name);
	}
	if (id < 0) {
		if (c->n_devices)
			DP_LOG(WARNING, "no compress device: IPComp SAs will be refused");
		return 0;
	}
	dp_compress.dev = id;
	dp_compress.op_pool = rte_comp_op_pool_create("dps_zop", COMP_OPS, 64, 0, SOCKET_ID_ANY);
	if (dp_compress.op_pool == NULL) {
		DP_LOG(ERR, "cannot create the compress op pool: %s", rte_strerror(rte_errno));
		return -1;
	}
	rc = dev_setup(id, n_workers);
	if (rc == 0)
		rc = xforms_create(id, n_workers);
	if (rc < 0) {
		DP_LOG(ERR, "compress device %s: cannot start: %s", dp_compress.name,
		       rte_strerror(-rc));
		return -1;
	}
	/* The software PMDs log every stream that fails to inflate: anyone may send
	 * those (counted as drop_decomp), and a worker must not log per packet. */
	rte_log_set_level_pattern("pmd.compress.*", RTE_LOG_CRIT);
	dp_compress.ready = true;
	DP_LOG(INFO, "compress device %s ready (IPComp DEFLATE)", dp_compress.name);
	return 0;
}

void dp_compress_fini(void)
{
	if (dp_compress.ready) {
		for (unsigned int w = 0; w < DPS_MAX_WORKERS; w++) {
			if (dp_compress.ws[w].comp)
				rte_compressdev_private_xform_free(dp_compress.dev,
								   dp_compress.ws[w].comp);
			if (dp_compress.ws[w].decomp)
				rte_compressdev_private_xform_free(dp_compress.dev,
								   dp_compress.ws[w].decomp);
		}
		/* rte_eal_cleanup() closes the vdev when it removes it */
		rte_compressdev_stop(dp_compress.dev);
	}
	rte_mempool_free(dp_compress.op_pool);
	memset(&dp_compress, 0, sizeof(dp_compress));
}

void dp_compress_run(unsigned int w, struct rte_comp_op **ops, uint16_t n)
{
	struct rte_comp_op *done[DP_COMP_BURST];
	uint16_t sent, got = 0;

	sent = rte_compressdev_enqueue_burst(dp_compress.dev, w, ops, n);
	for (uint16_t i = sent; i < n; i++)
		ops[i]->status = RTE_COMP_OP_STATUS_ERROR;
	/* The ops themselves carry their results: the order they come back in
	 * does not matter. */
	while (got < sent)
		got += rte_compressdev_dequeue_burst(dp_compress.dev, w, &done[got], sent - got);
}
