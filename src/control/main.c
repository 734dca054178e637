/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dpsecd: read the configuration, start DPDK and the workers, then run the
 * control thread on the main lcore until SIGTERM/SIGINT.
 */
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include <rte_eal.h>
#include <rte_log.h>
#include <rte_pdump.h>

#include "control/config.h"
#include "control/eal.h"
#include "control/hoststack.h"
#include "control/lifetime.h"
#include "control/metrics_http.h"
#include "control/secondary.h"
#include "control/store.h"
#include "control/telemetry.h"
#include "dataplane/compress.h"
#include "dataplane/crypto.h"
#include "dataplane/dp.h"
#include "dataplane/imb.h"
#include "pfkey_emul/server.h"
#include "pfkey_emul/state.h"

#define DEFAULT_CONFIG	 "/etc/dpsec/dpsec.yaml"
#define CONTROL_SLEEP_US 1000

static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t reload_signal;

/* Where start-up time goes (a restart's outage is mostly start-up: the
 * running line reports it, scripts/bench.sh --restart measures the rest). */
enum startup_phase {
	PH_EAL,
	PH_DATAPLANE,
	PH_STORE,
	PH_STATE,
	PH_PORTS,
	PH_HOSTSTACK,
	PH_SOCKETS,
	PH_N
};
/* workers forward from the end of "ports" on */
static const char *const phase_name[PH_N] = {"EAL",   "dataplane",  "store",  "state",
					     "ports", "host stack", "sockets"};
static uint64_t phase_us[PH_N + 1];

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void log_running(void)
{
	char buf[256];
	int n = 0;

	for (int i = 0; i < PH_N; i++)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s%s %" PRIu64, i ? ", " : "",
			      phase_name[i], (phase_us[i + 1] - phase_us[i]) / 1000u);
	DP_LOG(NOTICE, "running: %u port(s), %u worker(s); started in %" PRIu64 " ms (%s)",
	       dp.n_ports, dp.n_workers, (phase_us[PH_N] - phase_us[0]) / 1000u, buf);
}

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void on_hup(int sig)
{
	reload_signal = sig;
}

/*
 * SIGHUP (systemctl reload): apply the configuration's SAs, policies and
 * IPsec defaults again; what did not change keeps running untouched. Ports,
 * workers and routes need a restart.
 */
static void reload(const char *path)
{
	static struct dps_config next;
	char err[512];

	reload_signal = 0;
	sd_notify(0, "RELOADING=1");
	if (dps_config_load(path, &next, err, sizeof(err)) < 0) {
		DP_LOG(ERR, "reload: %s (nothing changed)", err);
	} else {
		if (dps_store_reload(&next, err, sizeof(err)) < 0)
			DP_LOG(ERR, "reload: %s (nothing changed)", err);
		else
			DP_LOG(NOTICE, "reload: %u SA(s), %u policies from %s", next.n_sas,
			       next.n_policies, path);
		dps_config_free(&next);
	}
	sd_notify(0, "READY=1");
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [-c FILE] [--check] [--log-level LEVEL]\n"
		"  -c, --config FILE   configuration (default " DEFAULT_CONFIG ")\n"
		"      --check         validate the configuration and exit\n"
		"  -l, --log-level L   override log_level (emerg..debug)\n"
		"  -h, --help          this text\n",
		prog);
}

static int log_level_parse(const char *s)
{
	static const char *const names[] = {"emerg",   "alert",	 "crit", "err",
					    "warning", "notice", "info", "debug"};

	for (unsigned int i = 0; i < 8; i++) {
		if (strcmp(s, names[i]) == 0)
			return (int)i + 1;
	}
	return -1;
}

struct options {
	const char *config;
	bool check;
	int log_level;
};

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check", no_argument, NULL, 'C'},
		{"log-level", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;

	o->config = DEFAULT_CONFIG;
	o->log_level = -1;
	while ((c = getopt_long(argc, argv, "c:l:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'C':
			o->check = true;
			break;
		case 'l':
			o->log_level = log_level_parse(optarg);
			if (o->log_level < 0) {
				fprintf(stderr, "%s: unknown log level '%s'\n", argv[0], optarg);
				return -1;
			}
			break;
		case 'h':
			usage(stdout, argv[0]);
			exit(0);
		default:
			usage(stderr, argv[0]);
			return -1;
		}
	}
	if (optind != argc) {
		usage(stderr, argv[0]);
		return -1;
	}
	return 0;
}

static int eal_start(struct dps_config *cfg, const char *prog)
{
	static struct dps_eal_args eal;

	dps_eal_args_build(&eal, cfg, prog);
	if (rte_eal_init(eal.argc, eal.argv) < 0) {
		fprintf(stderr, "%s: DPDK initialisation failed: %s\n", prog,
			rte_strerror(rte_errno));
		return -1;
	}
	return 0;
}

/* A subsystem's log type at its debug level, or log_level's. */
static int dps_log_register(const char *name, enum dps_log_level level, enum dps_log_level dflt)
{
	int t = rte_log_register_type_and_pick_level(name, (uint32_t)(level ? level : dflt));

	return t < 0 ? RTE_LOGTYPE_USER1 : t;
}

static int start(struct dps_config *cfg)
{
	dp_logtype = dps_log_register("dpsec", cfg->debug.dataplane, cfg->log_level);
	dps_logtype_pfkey = dps_log_register("dpsec.pfkey", cfg->debug.pfkey, cfg->log_level);
	dps_logtype_store = dps_log_register("dpsec.store", cfg->debug.store, cfg->log_level);
	/* rte_log also wants the global level (EAL's --log-level=log_level) */
	rte_log_set_global_level(RTE_MAX(
		(uint32_t)cfg->log_level,
		RTE_MAX((uint32_t)cfg->debug.pfkey,
			RTE_MAX((uint32_t)cfg->debug.store, (uint32_t)cfg->debug.dataplane))));
	char err[512];

	if (dp_init(cfg) < 0 || dp_crypto_init(&cfg->crypto, cfg->n_workers) < 0 ||
	    dp_imb_init(cfg->n_workers) < 0 || dp_compress_init(&cfg->compress, cfg->n_workers) < 0)
		return -1;
	phase_us[PH_STORE] = mono_us();
	if (dps_store_init(cfg, err, sizeof(err)) < 0) {
		DP_LOG(ERR, "%s", err);
		return -1;
	}
	/* The store has the SAs: no second copy of their keys for the daemon's
	 * life (a reload that deletes one must leave none behind). */
	dps_config_drop_sas(cfg);
	/* A previous dpsecd's PF_KEY SAs and policies are back before the first
	 * packet is forwarded: a restart never lets a protected flow out in clear. */
	phase_us[PH_STATE] = mono_us();
	if (cfg->pfkey.enabled && pfk_state_init(cfg->pfkey.state) < 0) {
		DP_LOG(ERR, "pfkey: cannot restore %s", cfg->pfkey.state);
		return -1;
	}
	phase_us[PH_PORTS] = mono_us();
	if (dp_start() < 0)
		return -1;
	phase_us[PH_HOSTSTACK] = mono_us();
	if (dps_hoststack_setup(cfg) < 0)
		return -1;
	phase_us[PH_SOCKETS] = mono_us();
	if (dps_telemetry_init() < 0 || pfk_server_init(cfg) < 0)
		return -1;
	/* dpdk-dumpcap (a DPDK secondary process) captures the ports on the wire
	 * side; without a shared configuration (in-memory EAL) it cannot attach. */
	if (dps_metrics_http_start(&cfg->metrics) < 0)
		return -1;
	if (!cfg->eal.in_memory && dps_secondary_limit_vdevs(cfg) < 0)
		DP_LOG(WARNING, "secondary processes will probe every device: %s",
		       rte_strerror(rte_errno));
	if (rte_pdump_init() < 0)
		DP_LOG(WARNING, "rte_pdump_init: %s: dpdk-dumpcap cannot attach",
		       rte_strerror(rte_errno));
	phase_us[PH_N] = mono_us();
	return 0;
}

static void run(const char *path)
{
	while (!stop_signal) {
		if (reload_signal)
			reload(path);
		dp_control_poll();
		pfk_server_poll(dp_now_ms());
		dps_store_poll();
		dps_lifetime_poll(dp_now_ms());
		pfk_server_wait(CONTROL_SLEEP_US); /* wakes early for a PF_KEY message */
	}
	DP_LOG(NOTICE, "signal %d: shutting down", (int)stop_signal);
}

int main(int argc, char **argv)
{
	static struct dps_config cfg;
	struct options o = {0};
	char err[512];
	int rc = 1;

	if (parse_args(argc, argv, &o) < 0)
		return 2;
	/* Fixed thresholds instead of glibc's adaptive ones, which rise to the
	 * largest block freed (32 MB: a store array or slot table grown at
	 * 100 000 tunnels) and then keep every smaller freed block in the heap:
	 * large tables are mapped and unmapped, freed heap goes back above 1 MB.
	 * About 0.25 KiB of resident memory per tunnel at 50 000 tunnels. */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
	if (dps_config_load(o.config, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (o.log_level > 0)
		cfg.log_level = o.log_level;
	if (o.check) {
		printf("%s: ok\n", o.config);
		dps_config_free(&cfg);
		return 0;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGHUP, on_hup);
	signal(SIGPIPE, SIG_IGN);
	snprintf(cfg.path, sizeof(cfg.path), "%s", o.config);
	phase_us[PH_EAL] = mono_us();
	if (eal_start(&cfg, argv[0]) < 0) {
		dps_config_free(&cfg);
		return 1;
	}
	phase_us[PH_DATAPLANE] = mono_us();
	if (start(&cfg) == 0) {
		log_running();
		sd_notify(0, "READY=1");
		run(o.config);
		rc = 0;
	}
	sd_notify(0, "STOPPING=1");
	pfk_server_fini();
	dps_metrics_http_stop();
	dps_telemetry_stop();
	dp_halt();
	dps_store_fini();
	dp_compress_fini();
	dp_crypto_fini();
	dp_imb_fini();
	rte_pdump_uninit();
	dp_stop();
	rte_eal_cleanup();
	dps_config_free(&cfg);
	return rc;
}
