/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dpsecd configuration: the parsed, validated form of dpsec.yaml.
 *
 * This unit does not depend on DPDK so it can be unit-tested and fuzzed with
 * sanitizers. Addresses are kept in network byte order.
 */
#ifndef DPS_CONFIG_H
#define DPS_CONFIG_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/addr.h"
#include "control/ipsec.h"

#define DPS_MAX_PORTS	   16
#define DPS_MAX_WORKERS	   16
#define DPS_MAX_PORT_ADDRS 8
#define DPS_MAX_WORKER_RXQ 32
#define DPS_MAX_QUEUES	   16
#define DPS_MAX_EAL_EXTRA  16
#define DPS_NAME_LEN	   32
#define DPS_IFNAME_LEN	   16 /* IFNAMSIZ */
#define DPS_DEVICE_LEN	   256

/* Log levels, numerically equal to DPDK's RTE_LOG_* levels. */
enum dps_log_level {
	DPS_LOG_EMERG = 1,
	DPS_LOG_ALERT,
	DPS_LOG_CRIT,
	DPS_LOG_ERR,
	DPS_LOG_WARNING,
	DPS_LOG_NOTICE,
	DPS_LOG_INFO,
	DPS_LOG_DEBUG,
};

enum dps_port_role {
	DPS_ROLE_PROTECTED,   /* inside: the sites the gateway protects */
	DPS_ROLE_UNPROTECTED, /* outside: where ESP travels */
};

struct dps_eal_cfg {
	char lcores[64];	 /* DPDK -l list, e.g. "0-1"; --lcores with "N@C" */
	unsigned int main_lcore; /* control thread */
	bool hugepages;		 /* false: --no-huge */
	unsigned int memory_mb;	 /* -m; 0 = DPDK default */
	char file_prefix[64];	 /* --file-prefix; also names the telemetry dir */
	bool in_memory;		 /* --in-memory */
	unsigned int n_extra;
	char extra[DPS_MAX_EAL_EXTRA][128]; /* passed verbatim, after ours */
};

/* Reassembly of fragments for the gateway (dataplane/frag.c). */
struct dps_reasm_cfg {
	unsigned int max_flows;	 /* datagrams being reassembled at once, per worker */
	unsigned int timeout_ms; /* an incomplete datagram is discarded after this */
};

struct dps_dataplane_cfg {
	unsigned int mbufs;	 /* mbufs in the packet pool */
	unsigned int burst;	 /* rx/tx burst size, 1..64 */
	bool idle_backoff;	 /* sleep after a run of empty polls */
	unsigned int idle_polls; /* empty polls before sleeping */
	unsigned int idle_sleep_us;
	unsigned int icmp_rate;	 /* ICMP errors per second per worker; 0 = none */
	unsigned int icmp_burst; /* token bucket depth */
	struct dps_reasm_cfg reasm;
};

struct dps_neigh_params {
	unsigned int reachable_ms; /* a learned entry is trusted this long */
	unsigned int retrans_ms;   /* between two probes */
	unsigned int probes;	   /* unanswered probes before giving up */
	unsigned int queue_len;	   /* packets held per unresolved neighbour */
	unsigned int max_entries;
};

struct dps_port_cfg {
	char name[DPS_NAME_LEN];
	char device[DPS_DEVICE_LEN]; /* PCI address or vdev string */
	enum dps_port_role role;
	bool has_mac;
	uint8_t mac[6];
	uint16_t mtu;
	uint16_t rx_queues;
	uint16_t rx_desc;
	uint16_t tx_desc;
	bool exception; /* kernel TAP for traffic to the gateway */
	char exception_iface[DPS_IFNAME_LEN];
	unsigned int n_addrs;
	struct dps_prefix addrs[DPS_MAX_PORT_ADDRS];
};

struct dps_rxq_cfg {
	uint16_t port; /* index into dps_config.ports */
	uint16_t queue;
};

struct dps_worker_cfg {
	unsigned int lcore;
	unsigned int n_rxq;
	struct dps_rxq_cfg rxq[DPS_MAX_WORKER_RXQ];
};

struct dps_route_cfg {
	struct dps_prefix dst;
	bool has_via; /* false: destination is on-link on port */
	struct dps_addr via;
	uint16_t port; /* index into dps_config.ports */
};

struct dps_neigh_cfg {
	struct dps_addr addr;
	uint8_t mac[6];
	uint16_t port;
};

#define DPS_MAX_CRYPTODEVS 8

/* Crypto devices: vdev strings ("crypto_aesni_mb", "crypto_openssl") or PCI
 * addresses (QAT). Each SA's session goes to the first device able to run it. */
/* Who runs an SA's crypto: dpsec's own AES-GCM over intel-ipsec-mb
 * (src/dataplane/imb.c) where the CPU and algorithm allow, else a device. */
enum dps_crypto_engine {
	DPS_ENGINE_NATIVE,
	DPS_ENGINE_CRYPTODEV,
};

struct dps_crypto_cfg {
	unsigned int n_devices;
	char devices[DPS_MAX_CRYPTODEVS][DPS_DEVICE_LEN];
	bool cpu_crypto;       /* synchronous CPU crypto where the device offers it */
	unsigned int sessions; /* crypto sessions at most (one per SA), pools made on demand */
	uint8_t engine;	       /* enum dps_crypto_engine */
	/* test/bench: the queue path's operations complete no sooner than this
	 * after their enqueue, as on a hardware device (crypto.c) */
	unsigned int queue_latency_us;
};

#define DPS_MAX_COMPRESSDEVS 4

/* Compression devices for IPComp (RFC 3173, DEFLATE): vdev strings
 * ("compress_isal", "compress_zlib") or PCI addresses (QAT). IPComp SAs use
 * the first of them that started. */
struct dps_compress_cfg {
	unsigned int n_devices;
	char devices[DPS_MAX_COMPRESSDEVS][DPS_DEVICE_LEN];
	unsigned int min_size; /* payloads shorter than this are sent uncompressed */
};

/* The PF_KEY v2 server that key daemons (charon) talk to. */
struct dps_pfkey_cfg {
	bool enabled;
	char socket[108];	  /* sun_path */
	char state[256];	  /* SAs/policies kept across restarts; "" = none */
	char group[DPS_NAME_LEN]; /* besides root, members of this group may use it; "" = root only
				   */
	unsigned int acquire_retry_s; /* a policy's ACQUIRE is repeated after this if no SA came */
	unsigned int acquire_rate;    /* ACQUIREs per second at most, all policies together */
	unsigned int larval_s;	      /* a GETSPI reservation without UPDATE expires after this */
};

/* debug: log levels per subsystem (0: log_level's); dpsecctl log-level
 * changes them at run time. */
struct dps_debug_cfg {
	enum dps_log_level pfkey, store, dataplane;
};

/* metrics: the Prometheus /metrics HTTP endpoint of dpsecd (metrics_http.c). */
struct dps_metrics_cfg {
	bool enabled;	   /* off by default */
	char address[64];  /* numeric IPv4 or IPv6 address; default 127.0.0.1 */
	unsigned int port; /* default 9469 */
};

struct dps_config {
	char path[256];
	struct dps_eal_cfg eal;
	enum dps_log_level log_level;
	struct dps_debug_cfg debug;
	struct dps_dataplane_cfg dataplane;
	struct dps_neigh_params neigh;
	unsigned int n_ports;
	struct dps_port_cfg ports[DPS_MAX_PORTS];
	unsigned int n_workers;
	struct dps_worker_cfg workers[DPS_MAX_WORKERS];
	unsigned int n_routes;
	struct dps_route_cfg *routes;
	unsigned int n_neighs;
	struct dps_neigh_cfg *neighs;
	struct dps_crypto_cfg crypto;
	struct dps_compress_cfg compress;
	struct dps_ipsec_defaults ipsec;
	unsigned int n_sas;
	struct dps_sa *sas;
	unsigned int n_policies;
	struct dps_policy *policies;
	struct dps_pfkey_cfg pfkey;
	struct dps_metrics_cfg metrics;
};

/** Fill @cfg with defaults (no ports, no workers, no routes). */
void dps_config_defaults(struct dps_config *cfg);

/**
 * Parse and validate a YAML document. On failure returns -1, leaves @cfg
 * freed and writes "NAME:LINE:COL: KEY: reason" into @err.
 */
int dps_config_parse(const char *text, size_t len, const char *name, struct dps_config *cfg,
		     char *err, size_t errlen);

/**
 * Read @path and parse it as dps_config_parse() does; also refuse what
 * dpsecd would refuse to run although the file describes it well (AH and
 * IPComp SAs, until the dataplane runs them), as start-up, --check and a
 * reload must agree.
 */
int dps_config_load(const char *path, struct dps_config *cfg, char *err, size_t errlen);

/** Release what dps_config_parse() allocated. */
void dps_config_free(struct dps_config *cfg);

/** Wipe and free the SAs of @cfg (their keys), leaving the rest. */
void dps_config_drop_sas(struct dps_config *cfg);

#endif
