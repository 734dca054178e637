// SPDX-License-Identifier: BSD-3-Clause
/*
 * libFuzzer harness for the packet path: every input is one or more Ethernet
 * frames given to the worker's receive entry, dp_worker_rx, on the real
 * dataplane (EAL without hugepages or PCI, net_null ports, the
 * crypto_aesni_mb and compress_isal devices), followed by what the worker loop does after
 * receiving (dp_worker_inject, dp_worker_finish: ICMP errors, crypto completions, reassembly
 * timeouts, transmission, which net_null frees) and by one pass of the
 * control thread (ARP, neighbour discovery, resolution).
 *
 * The gateway is tests/fuzz/dataplane.yaml (written by gen_dataplane.py with
 * the seed corpus): SAs of every mode, policies of every action, reassembly.
 * Another file may be named with DPS_FUZZ_CONFIG; DPS_FUZZ_ASYNC=1 takes the
 * cryptodev queue path instead of CPU crypto. Input format, repeated:
 *     port (1 byte) | length (2 bytes, big endian, cut to what is left) | body
 * port below 0x80: body is a frame received on port (modulo the number of
 * ports). 0x80 + k: body is a sequence number and an ESP plaintext, sealed
 * into a frame from the peer of the k-th inbound AES-GCM SA (seal()).
 *
 * Besides ASan/UBSan/LeakSanitizer, an input fails when mbufs go missing from
 * the pool (check_mbufs) or when an SA accepts a sealed sequence number twice
 * (rx_sealed). At exit the dataplane is torn down as dpsecd does, so that
 * LeakSanitizer only sees what nothing freed.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <rte_eal.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "control/config.h"
#include "control/eal.h"
#include "control/store.h"
#include "dataplane/compress.h"
#include "dataplane/crypto.h"
#include "dataplane/dp.h"
#include "dataplane/icmp.h"
#include "dataplane/imb.h"
#include "dataplane/port.h"
#include "dataplane/sa.h"
#include "dataplane/worker.h"

#ifndef DPS_FUZZ_CONFIG
#define DPS_FUZZ_CONFIG "tests/fuzz/dataplane.yaml"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dps_config cfg;
static struct dp_worker *worker;

/* Inbound AES-GCM SAs (no ESN) that the harness seals frames for, their
 * dataplane SAs, and which sequence numbers below ORACLE_SEQS each accepted. */
#define MAX_SEAL    32
#define ORACLE_SEQS 65536
static const struct dps_sa *seal_sa[MAX_SEAL];
static struct dp_sa *seal_dp[MAX_SEAL];
static uint64_t *accepted[MAX_SEAL];
static unsigned int n_seal;
static uint16_t seal_port; /* the first unprotected port: where ESP arrives */
static EVP_CIPHER_CTX *gcm;

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_dataplane: %s\n", what);
	exit(1);
}

/* DPS_FUZZ_STATS=1: the port counters at exit, to see what the corpus reaches. */
static void print_counters(void)
{
	fprintf(stderr, "mbufs free %u of %u\n", rte_mempool_avail_count(dp.pool), dp.pool->size);
	for (unsigned int p = 0; p < dp.n_ports; p++) {
		struct dp_counters c;

		dp_port_counters(p, &c);
		for (unsigned int i = 0; i < DP_CNT_MAX; i++) {
			if (c.v[i])
				fprintf(stderr, "%s %s %" PRIu64 "\n", cfg.ports[p].name,
					dp_counter_names[i], c.v[i]);
		}
	}
}

static void teardown(void)
{
	if (getenv("DPS_FUZZ_STATS"))
		print_counters();
	EVP_CIPHER_CTX_free(gcm);
	for (unsigned int i = 0; i < n_seal; i++)
		free(accepted[i]);
	dps_store_fini();
	dp_compress_fini();
	dp_crypto_fini();
	dp_imb_fini();
	dp_stop();
	rte_eal_cleanup();
	dps_config_free(&cfg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static struct dps_eal_args eal;
	const char *path = getenv("DPS_FUZZ_CONFIG");
	char err[512];

	(void)argc;
	if (dps_config_load(path ? path : DPS_FUZZ_CONFIG, &cfg, err, sizeof(err)) < 0)
		fail(err);
	/* DPS_FUZZ_ASYNC=1: the cryptodev queue path instead of CPU crypto;
	 * DPS_FUZZ_CRYPTODEV=1: AES-GCM on the device, not the native engine. */
	if (getenv("DPS_FUZZ_ASYNC"))
		cfg.crypto.cpu_crypto = false;
	if (getenv("DPS_FUZZ_ASYNC") || getenv("DPS_FUZZ_CRYPTODEV"))
		cfg.crypto.engine = DPS_ENGINE_CRYPTODEV;
	dps_eal_args_build(&eal, &cfg, (*argv)[0]);
	if (rte_eal_init(eal.argc, eal.argv) < 0)
		fail("EAL initialisation failed");
	dp_logtype = rte_log_register_type_and_pick_level("dpsec", (uint32_t)cfg.log_level);
	if (dp_logtype < 0)
		dp_logtype = RTE_LOGTYPE_USER1;
	if (dp_init(&cfg) < 0 || dp_crypto_init(&cfg.crypto, cfg.n_workers) < 0 ||
	    dp_imb_init(cfg.n_workers) < 0 || dp_compress_init(&cfg.compress, cfg.n_workers) < 0)
		fail("dataplane initialisation failed");
	if (dps_store_init(&cfg, err, sizeof(err)) < 0)
		fail(err);
	for (uint16_t i = 0; i < dp.n_ports; i++) {
		if (dp_port_start(i) < 0)
			fail("cannot start a port");
	}
	for (unsigned int i = 0; i < cfg.n_sas && n_seal < MAX_SEAL; i++) {
		const struct dps_sa *sa = &cfg.sas[i];

		const struct dps_store_sa *st;

		if (sa->dir != DPS_DIR_IN || sa->enc_alg != DPS_ENC_AES_GCM || sa->esn)
			continue;
		st = dps_store_sa_find(sa->spi, &sa->dst, sa->proto);
		accepted[n_seal] = calloc(ORACLE_SEQS / 64, sizeof(uint64_t));
		if (st == NULL || st->dp == NULL || accepted[n_seal] == NULL)
			fail("a sealing SA is not in the store");
		seal_dp[n_seal] = st->dp;
		seal_sa[n_seal++] = sa;
	}
	for (uint16_t i = 0; i < cfg.n_ports; i++) {
		if (cfg.ports[i].role == DPS_ROLE_UNPROTECTED) {
			seal_port = i;
			break;
		}
	}
	gcm = EVP_CIPHER_CTX_new();
	if (gcm == NULL)
		fail("EVP_CIPHER_CTX_new");
	/* The worker runs here, on the main lcore: it is never launched. */
	worker = &dp.workers[0];
	dp_icmp_init(worker);
	atexit(teardown);
	return 0;
}

/*
 * mbufs live in a mempool, out of LeakSanitizer's sight: after each input,
 * those not back in the pool must be held by something that may hold them
 * (the reassembly table, the neighbour queues, the two rings). A lost mbuf
 * per input ends in an abort once the losses exceed that.
 */
static void check_mbufs(void)
{
	const struct dps_config *c = &cfg;
	unsigned int held = c->dataplane.reasm.max_flows * RTE_LIBRTE_IP_FRAG_MAX_FRAG +
			    RTE_IP_FRAG_DEATH_ROW_MBUF_LEN +
			    c->neigh.max_entries * c->neigh.queue_len + rte_ring_count(dp.ctrl) +
			    rte_ring_count(worker->inject);
	unsigned int in_use = dp.pool->size - rte_mempool_avail_count(dp.pool);

	if (in_use > held) {
		fprintf(stderr, "fuzz_dataplane: %u mbufs in use, at most %u may be held\n", in_use,
			held);
		abort();
	}
}

static void finish(const struct dp_snapshot *s)
{
	struct rte_mbuf *scratch[DP_MAX_BURST];

	dp_worker_finish(worker, s);
	dp_control_poll();
	/* What the control thread injected (ARP and NA replies, probes) */
	dp_worker_inject(worker, scratch, DP_MAX_BURST);
	dp_worker_finish(worker, s);
	check_mbufs();
}

/*
 * A frame from @sa's peer carrying ESP sealed with @sa's key (RFC 4106:
 * nonce = salt | IV, AAD = SPI | sequence number): @body is the 32-bit
 * sequence number and then the whole plaintext, trailer included, so that
 * what lies behind a valid ICV (inner packet, padding, next header) is the
 * fuzzer's. Encrypted with OpenSSL, independently of the dataplane.
 */
static bool seal(struct rte_mbuf *m, const struct dps_sa *sa, const uint8_t *body, size_t len)
{
	const size_t eth = sizeof(struct rte_ether_hdr), v4 = sa->dst.family == AF_INET;
	const size_t ip = v4 ? sizeof(struct rte_ipv4_hdr) : sizeof(struct rte_ipv6_hdr);
	const size_t udp = sa->udp_encap ? sizeof(struct rte_udp_hdr) : 0;
	const EVP_CIPHER *c = sa->enc_key_len == 20   ? EVP_aes_128_gcm()
			      : sa->enc_key_len == 28 ? EVP_aes_192_gcm()
						      : EVP_aes_256_gcm();
	uint8_t nonce[12], *esp, *p;
	size_t plain, total;
	uint32_t spi;
	int n;

	if (len < 4)
		return false;
	plain = len - 4;
	total = eth + ip + udp + 16 + plain + 16;
	if (total > rte_pktmbuf_tailroom(m))
		return false;
	p = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)total);
	struct rte_ether_hdr *e = (void *)p;

	e->dst_addr = dp.ports[seal_port].mac;
	memset(&e->src_addr, 0x02, sizeof(e->src_addr));
	e->ether_type = rte_cpu_to_be_16(v4 ? RTE_ETHER_TYPE_IPV4 : RTE_ETHER_TYPE_IPV6);
	if (v4) {
		struct rte_ipv4_hdr *h = (void *)(p + eth);

		memset(h, 0, sizeof(*h));
		h->version_ihl = 0x45;
		h->total_length = rte_cpu_to_be_16((uint16_t)(total - eth));
		h->time_to_live = 64;
		h->next_proto_id = udp ? IPPROTO_UDP : IPPROTO_ESP;
		h->src_addr = sa->src.v4.s_addr;
		h->dst_addr = sa->dst.v4.s_addr;
		h->hdr_checksum = rte_ipv4_cksum(h);
	} else {
		struct rte_ipv6_hdr *h = (void *)(p + eth);

		h->vtc_flow = rte_cpu_to_be_32(0x60000000);
		h->payload_len = rte_cpu_to_be_16((uint16_t)(total - eth - ip));
		h->proto = udp ? IPPROTO_UDP : IPPROTO_ESP;
		h->hop_limits = 64;
		memcpy(h->src_addr, &sa->src.v6, 16);
		memcpy(h->dst_addr, &sa->dst.v6, 16);
	}
	if (udp) {
		struct rte_udp_hdr *u = (void *)(p + eth + ip);

		u->src_port = rte_cpu_to_be_16(sa->encap_sport);
		u->dst_port = rte_cpu_to_be_16(sa->encap_dport);
		u->dgram_len = rte_cpu_to_be_16((uint16_t)(total - eth - ip));
		u->dgram_cksum = 0;
	}
	esp = p + eth + ip + udp;
	spi = rte_cpu_to_be_32(sa->spi);
	memcpy(esp, &spi, 4);
	memcpy(esp + 4, body, 4); /* sequence number */
	memset(esp + 8, 0, 4);	  /* IV: unique per sequence number */
	memcpy(esp + 12, body, 4);
	memcpy(nonce, sa->enc_key + sa->enc_key_len - 4, 4);
	memcpy(nonce + 4, esp + 8, 8);
	if (EVP_EncryptInit_ex(gcm, c, NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(gcm, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
	    EVP_EncryptInit_ex(gcm, NULL, NULL, sa->enc_key, nonce) != 1 ||
	    EVP_EncryptUpdate(gcm, NULL, &n, esp, 8) != 1 ||
	    (plain && EVP_EncryptUpdate(gcm, esp + 16, &n, body + 4, (int)plain) != 1) ||
	    EVP_EncryptFinal_ex(gcm, esp + 16 + plain, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(gcm, EVP_CTRL_GCM_GET_TAG, 16, esp + 16 + plain) != 1)
		fail("AES-GCM");
	return true;
}

static uint64_t sa_packets(unsigned int k)
{
	struct dp_sa_counters c;

	dp_sa_counters(seal_dp[k], &c);
	return c.v[DP_SA_CNT_packets];
}

/*
 * Anti-replay oracle (RFC 4303 3.4.3): a sealed record goes through the
 * worker alone, and if its SA's packet count grew, ESP processing accepted
 * its sequence number, which it must never do twice.
 */
static void rx_sealed(const struct dp_snapshot *s, unsigned int k, uint32_t seq, struct rte_mbuf *m)
{
	uint64_t before = sa_packets(k);

	dp_worker_rx(worker, s, seal_port, &m, 1);
	finish(s);
	if (sa_packets(k) == before || seq >= ORACLE_SEQS)
		return;
	if (accepted[k][seq / 64] & UINT64_C(1) << (seq % 64)) {
		fprintf(stderr, "fuzz_dataplane: SA 0x%x accepted sequence number %u twice\n",
			seal_sa[k]->spi, seq);
		abort();
	}
	accepted[k][seq / 64] |= UINT64_C(1) << (seq % 64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct dp_snapshot *s = dp.snap;
	uint16_t burst = (uint16_t)cfg.dataplane.burst;
	struct rte_mbuf *pkts[DP_MAX_BURST];
	uint16_t n = 0, port = 0;
	size_t off = 0;

	while (off + 3 <= size) {
		bool sealed = data[off] & 0x80 && n_seal;
		uint16_t p = sealed ? seal_port : (uint16_t)(data[off] % dp.n_ports);
		size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
		struct rte_mbuf *m;
		uint16_t clen;

		off += 3;
		if (len > size - off)
			len = size - off;
		if (n && (p != port || n == burst)) {
			dp_worker_rx(worker, s, port, pkts, n);
			n = 0;
		}
		port = p;
		m = rte_pktmbuf_alloc(dp.pool);
		if (m == NULL)
			break;
		m->port = dp.ports[p].eth_id;
		if (sealed) {
			unsigned int k = (data[off - 3] & 0x7f) % n_seal;

			if (n) {
				dp_worker_rx(worker, s, port, pkts, n);
				n = 0;
			}
			if (seal(m, seal_sa[k], data + off, len))
				rx_sealed(s, k,
					  (uint32_t)data[off] << 24 | data[off + 1] << 16 |
						  data[off + 2] << 8 | data[off + 3],
					  m);
			else
				rte_pktmbuf_free(m);
			off += len;
			continue;
		} else {
			/* One segment, as drivers deliver it: longer frames are cut. */
			clen = (uint16_t)RTE_MIN(len, (size_t)rte_pktmbuf_tailroom(m));
			memcpy(rte_pktmbuf_append(m, clen), data + off, clen);
		}
		pkts[n++] = m;
		off += len;
	}
	if (n)
		dp_worker_rx(worker, s, port, pkts, n);
	finish(s);
	return 0;
}
