// SPDX-License-Identifier: BSD-3-Clause
/*
 * Unit tests for the configuration loader (src/control/config.c).
 *
 * Every invalid document asserts the exact line of the error and the exact
 * key path, since those are what an operator uses to find the mistake.
 *
 * The shipped example is passed as argv[1] (or $DPS_EXAMPLE_CONFIG) and the
 * directory of IPsec examples as argv[2] (or $DPS_EXAMPLES_DIR), so that a
 * broken config/dpsec.yaml or any example in config/examples fails the tests.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "control/config.h"

static const char *example_path;
static const char *examples_dir;

/* Lines 1-4 of many documents below: one valid port. */
#define PORT_LAN                                                                                   \
	"ports:\n"                                                                                 \
	"  - name: lan\n"                                                                          \
	"    device: d0\n"                                                                         \
	"    role: protected\n"

/* Lines 1-8: two valid ports, lan with two rx queues. */
#define PORTS_LAN_WAN                                                                              \
	"ports:\n"                                                                                 \
	"  - name: lan\n"                                                                          \
	"    device: d0\n"                                                                         \
	"    role: protected\n"                                                                    \
	"    rx_queues: 2\n"                                                                       \
	"  - name: wan\n"                                                                          \
	"    device: d1\n"                                                                         \
	"    role: unprotected\n"

static int parse(const char *doc, struct dps_config *cfg, char *err, size_t errlen)
{
	return dps_config_parse(doc, strlen(doc), "t.yaml", cfg, err, errlen);
}

static void parse_ok_(const char *doc, struct dps_config *cfg, const char *file, int line)
{
	char err[512];

	if (parse(doc, cfg, err, sizeof(err))) {
		print_error("unexpected error: %s\n", err);
		_fail(file, line);
	}
}

#define parse_ok(doc, cfg) parse_ok_((doc), (cfg), __FILE__, __LINE__)

/*
 * Parse @doc expecting failure at @line (and @col if non-zero) about @key:
 * the message must read "t.yaml:LINE:COL: KEY: reason", be one line, and
 * leave the config at its defaults with nothing allocated.
 */
static void assert_parse_error_(const char *doc, unsigned int line, unsigned int col,
				const char *key, const char *file, int at)
{
	struct dps_config cfg, def;
	unsigned int l, c;
	char err[512];
	int n = 0;

	memset(&cfg, 0xa5, sizeof(cfg));
	if (parse(doc, &cfg, err, sizeof(err)) != -1) {
		print_error("document was accepted, expected an error at line %u about %s\n", line,
			    key);
		dps_config_free(&cfg);
		_fail(file, at);
	}
	if (getenv("DPS_TEST_VERBOSE"))
		fprintf(stderr, "%s\n", err);
	if (sscanf(err, "t.yaml:%u:%u: %n", &l, &c, &n) != 2 || !n || l != line ||
	    (col && c != col) || strncmp(err + n, key, strlen(key)) ||
	    strncmp(err + n + strlen(key), ": ", 2) || strchr(err, '\n')) {
		print_error("got      \"%s\"\nexpected \"t.yaml:%u:%s%u: %s: ...\"\n", err, line,
			    col ? "" : "(any)", col, key);
		_fail(file, at);
	}
	dps_config_defaults(&def);
	if (memcmp(&cfg, &def, sizeof(cfg))) {
		print_error("failed parse left partial state instead of the defaults\n");
		_fail(file, at);
	}
}

#define assert_parse_error(doc, line, key)                                                         \
	assert_parse_error_((doc), (line), 0, (key), __FILE__, __LINE__)
#define assert_parse_error_at(doc, line, col, key)                                                 \
	assert_parse_error_((doc), (line), (col), (key), __FILE__, __LINE__)

static const char *addr_str(const struct dps_addr *a)
{
	static char buf[INET6_ADDRSTRLEN];

	return dps_addr_str(a, buf, sizeof(buf));
}

static const char *prefix_str(const struct dps_prefix *p)
{
	static char buf[INET6_ADDRSTRLEN + 4];
	char a[INET6_ADDRSTRLEN];

	snprintf(buf, sizeof(buf), "%s/%u", dps_addr_str(&p->addr, a, sizeof(a)), p->len);
	return buf;
}

static void assert_rxq(const struct dps_worker_cfg *w, unsigned int i, unsigned int port,
		       unsigned int queue)
{
	assert_true(i < w->n_rxq);
	assert_int_equal(w->rxq[i].port, port);
	assert_int_equal(w->rxq[i].queue, queue);
}

/* ---- valid documents ----------------------------------------------------- */

static void test_minimal_config_gets_defaults(void **state)
{
	static const uint8_t zero_mac[6];
	struct dps_config cfg;

	(void)state;
	parse_ok(PORT_LAN, &cfg);
	assert_string_equal(cfg.path, "t.yaml");
	assert_string_equal(cfg.eal.lcores, "0-1");
	assert_int_equal(cfg.eal.main_lcore, 0);
	assert_true(cfg.eal.hugepages);
	assert_int_equal(cfg.eal.memory_mb, 0);
	assert_string_equal(cfg.eal.file_prefix, "dpsec");
	assert_false(cfg.eal.in_memory);
	assert_int_equal(cfg.eal.n_extra, 0);
	assert_int_equal(cfg.log_level, DPS_LOG_INFO);
	assert_int_equal(cfg.dataplane.mbufs, 16383);
	assert_int_equal(cfg.dataplane.burst, 32);
	assert_true(cfg.dataplane.idle_backoff);
	assert_int_equal(cfg.dataplane.idle_polls, 64);
	assert_int_equal(cfg.dataplane.idle_sleep_us, 100);
	assert_int_equal(cfg.dataplane.reasm.max_flows, 4096);
	assert_int_equal(cfg.dataplane.reasm.timeout_ms, 2000);
	assert_int_equal(cfg.neigh.reachable_ms, 30000);
	assert_int_equal(cfg.neigh.retrans_ms, 1000);
	assert_int_equal(cfg.neigh.probes, 3);
	assert_int_equal(cfg.neigh.queue_len, 16);
	assert_int_equal(cfg.neigh.max_entries, 4096);

	assert_int_equal(cfg.n_ports, 1);
	assert_string_equal(cfg.ports[0].name, "lan");
	assert_string_equal(cfg.ports[0].device, "d0");
	assert_int_equal(cfg.ports[0].role, DPS_ROLE_PROTECTED);
	assert_false(cfg.ports[0].has_mac);
	assert_memory_equal(cfg.ports[0].mac, zero_mac, 6);
	assert_int_equal(cfg.ports[0].mtu, 1500);
	assert_int_equal(cfg.ports[0].rx_queues, 1);
	assert_int_equal(cfg.ports[0].rx_desc, 1024);
	assert_int_equal(cfg.ports[0].tx_desc, 1024);
	assert_true(cfg.ports[0].exception);
	assert_string_equal(cfg.ports[0].exception_iface, "dps-lan");
	assert_int_equal(cfg.ports[0].n_addrs, 0);

	/* The default worker takes the first lcore that is not main_lcore. */
	assert_int_equal(cfg.n_workers, 1);
	assert_int_equal(cfg.workers[0].lcore, 1);
	assert_int_equal(cfg.workers[0].n_rxq, 1);
	assert_rxq(&cfg.workers[0], 0, 0, 0);

	assert_int_equal(cfg.n_routes, 0);
	assert_null(cfg.routes);
	assert_int_equal(cfg.n_neighs, 0);
	assert_null(cfg.neighs);
	dps_config_free(&cfg);
}

static const char full_doc[] = "eal:\n"
			       "  lcores: \"0,2-3\"\n"
			       "  main_lcore: 0\n"
			       "  hugepages: no\n"
			       "  memory_mb: 512\n"
			       "  file_prefix: gw_1\n"
			       "  in_memory: off\n"
			       "  extra_args: [\"--log-level=pmd.*:debug\", --no-telemetry]\n"
			       "log_level: debug\n"
			       "dataplane:\n"
			       "  mbufs: 32767\n"
			       "  burst: 64\n"
			       "  idle_backoff: off\n"
			       "  idle_polls: 1000\n"
			       "  idle_sleep_us: 50\n"
			       "  reassembly:\n"
			       "    max_flows: 100\n"
			       "    timeout_ms: 500\n"
			       "neighbour:\n"
			       "  reachable_ms: 60000\n"
			       "  retrans_ms: 500\n"
			       "  probes: 5\n"
			       "  queue_len: 0\n"
			       "  max_entries: 16\n"
			       "ports:\n"
			       "  - name: lan\n"
			       "    device: \"net_af_packet0,iface=veth0\"\n"
			       "    role: protected\n"
			       "    mac: \"02:00:00:00:00:01\"\n"
			       "    mtu: 9000\n"
			       "    rx_queues: 2\n"
			       "    rx_desc: 512\n"
			       "    tx_desc: 2048\n"
			       "    exception: true\n"
			       "    exception_iface: lan0.tap\n"
			       "    addresses: [\"192.0.2.1/24\", \"2001:db8:1::1/64\"]\n"
			       "  - name: wan\n"
			       "    device: \"0000:03:00.1\"\n"
			       "    role: unprotected\n"
			       "    mac: \"0A:bC:00:00:00:ff\"\n"
			       "    exception: False\n"
			       "    addresses:\n"
			       "      - 198.51.100.1/30\n"
			       "workers:\n"
			       "  - lcore: 2\n"
			       "    rx:\n"
			       "      - {port: lan, queue: 1}\n"
			       "      - {port: wan, queue: 0}\n"
			       "  - lcore: 3\n"
			       "    rx:\n"
			       "      - port: lan\n"
			       "        queue: 0\n"
			       "routes:\n"
			       "  - prefix: 0.0.0.0/0\n"
			       "    via: 198.51.100.2\n"
			       "    port: wan\n"
			       "  - prefix: 10.2.0.0/16\n"
			       "    port: lan\n"
			       "  - prefix: \"::/0\"\n"
			       "    via: \"fe80::1\"\n"
			       "    port: wan\n"
			       "neighbours:\n"
			       "  - address: 198.51.100.2\n"
			       "    mac: \"02:00:00:00:00:02\"\n"
			       "    port: wan\n"
			       "  - address: \"fe80::1\"\n"
			       "    mac: \"02:AB:cd:00:00:03\"\n"
			       "    port: wan\n";

static void test_full_config_sets_every_key(void **state)
{
	static const uint8_t lan_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
	static const uint8_t wan_mac[6] = {0x0a, 0xbc, 0, 0, 0, 0xff};
	static const uint8_t n1_mac[6] = {0x02, 0xab, 0xcd, 0, 0, 0x03};
	struct dps_config cfg;

	(void)state;
	parse_ok(full_doc, &cfg);
	assert_string_equal(cfg.eal.lcores, "0,2-3");
	assert_int_equal(cfg.eal.main_lcore, 0);
	assert_false(cfg.eal.hugepages);
	assert_int_equal(cfg.eal.memory_mb, 512);
	assert_string_equal(cfg.eal.file_prefix, "gw_1");
	assert_false(cfg.eal.in_memory); /* it needs hugepages: test_in_memory_needs_hugepages */
	assert_int_equal(cfg.eal.n_extra, 2);
	assert_string_equal(cfg.eal.extra[0], "--log-level=pmd.*:debug");
	assert_string_equal(cfg.eal.extra[1], "--no-telemetry");
	assert_int_equal(cfg.log_level, DPS_LOG_DEBUG);
	assert_int_equal(cfg.dataplane.mbufs, 32767);
	assert_int_equal(cfg.dataplane.burst, 64);
	assert_false(cfg.dataplane.idle_backoff);
	assert_int_equal(cfg.dataplane.idle_polls, 1000);
	assert_int_equal(cfg.dataplane.idle_sleep_us, 50);
	assert_int_equal(cfg.dataplane.reasm.max_flows, 100);
	assert_int_equal(cfg.dataplane.reasm.timeout_ms, 500);
	assert_int_equal(cfg.neigh.reachable_ms, 60000);
	assert_int_equal(cfg.neigh.retrans_ms, 500);
	assert_int_equal(cfg.neigh.probes, 5);
	assert_int_equal(cfg.neigh.queue_len, 0);
	assert_int_equal(cfg.neigh.max_entries, 16);

	assert_int_equal(cfg.n_ports, 2);
	assert_string_equal(cfg.ports[0].name, "lan");
	assert_string_equal(cfg.ports[0].device, "net_af_packet0,iface=veth0");
	assert_int_equal(cfg.ports[0].role, DPS_ROLE_PROTECTED);
	assert_true(cfg.ports[0].has_mac);
	assert_memory_equal(cfg.ports[0].mac, lan_mac, 6);
	assert_int_equal(cfg.ports[0].mtu, 9000);
	assert_int_equal(cfg.ports[0].rx_queues, 2);
	assert_int_equal(cfg.ports[0].rx_desc, 512);
	assert_int_equal(cfg.ports[0].tx_desc, 2048);
	assert_true(cfg.ports[0].exception);
	assert_string_equal(cfg.ports[0].exception_iface, "lan0.tap");
	assert_int_equal(cfg.ports[0].n_addrs, 2);
	assert_int_equal(cfg.ports[0].addrs[0].addr.family, AF_INET);
	assert_string_equal(prefix_str(&cfg.ports[0].addrs[0]), "192.0.2.1/24");
	assert_int_equal(cfg.ports[0].addrs[1].addr.family, AF_INET6);
	assert_string_equal(prefix_str(&cfg.ports[0].addrs[1]), "2001:db8:1::1/64");

	assert_string_equal(cfg.ports[1].name, "wan");
	assert_string_equal(cfg.ports[1].device, "0000:03:00.1");
	assert_int_equal(cfg.ports[1].role, DPS_ROLE_UNPROTECTED);
	assert_memory_equal(cfg.ports[1].mac, wan_mac, 6);
	assert_false(cfg.ports[1].exception);
	assert_string_equal(cfg.ports[1].exception_iface, "dps-wan");
	assert_int_equal(cfg.ports[1].n_addrs, 1);
	assert_string_equal(prefix_str(&cfg.ports[1].addrs[0]), "198.51.100.1/30");

	assert_int_equal(cfg.n_workers, 2);
	assert_int_equal(cfg.workers[0].lcore, 2);
	assert_int_equal(cfg.workers[0].n_rxq, 2);
	assert_rxq(&cfg.workers[0], 0, 0, 1);
	assert_rxq(&cfg.workers[0], 1, 1, 0);
	assert_int_equal(cfg.workers[1].lcore, 3);
	assert_int_equal(cfg.workers[1].n_rxq, 1);
	assert_rxq(&cfg.workers[1], 0, 0, 0);

	assert_int_equal(cfg.n_routes, 3);
	assert_string_equal(prefix_str(&cfg.routes[0].dst), "0.0.0.0/0");
	assert_true(cfg.routes[0].has_via);
	assert_string_equal(addr_str(&cfg.routes[0].via), "198.51.100.2");
	assert_int_equal(cfg.routes[0].port, 1);
	assert_string_equal(prefix_str(&cfg.routes[1].dst), "10.2.0.0/16");
	assert_false(cfg.routes[1].has_via);
	assert_int_equal(cfg.routes[1].port, 0);
	assert_string_equal(prefix_str(&cfg.routes[2].dst), "::/0");
	assert_string_equal(addr_str(&cfg.routes[2].via), "fe80::1");
	assert_int_equal(cfg.routes[2].via.family, AF_INET6);

	assert_int_equal(cfg.n_neighs, 2);
	assert_string_equal(addr_str(&cfg.neighs[0].addr), "198.51.100.2");
	assert_int_equal(cfg.neighs[0].port, 1);
	assert_string_equal(addr_str(&cfg.neighs[1].addr), "fe80::1");
	assert_memory_equal(cfg.neighs[1].mac, n1_mac, 6);
	dps_config_free(&cfg);
	assert_null(cfg.routes);
	assert_null(cfg.neighs);
	dps_config_free(&cfg); /* twice is harmless */
}

static void test_shipped_example_validates(void **state)
{
	struct dps_config cfg;
	unsigned int p, w, n = 0;
	char err[512];

	(void)state;
	if (!example_path)
		fail_msg("no path to config/dpsec.yaml (argv[1] or DPS_EXAMPLE_CONFIG)");
	if (dps_config_load(example_path, &cfg, err, sizeof(err)))
		fail_msg("%s", err);
	assert_string_equal(cfg.path, example_path);
	/* The example is the documented appliance: two ports, both families, two workers. */
	assert_int_equal(cfg.n_ports, 2);
	assert_int_equal(cfg.ports[0].role, DPS_ROLE_PROTECTED);
	assert_int_equal(cfg.ports[1].role, DPS_ROLE_UNPROTECTED);
	for (p = 0; p < cfg.n_ports; p++) {
		bool v4 = false, v6 = false;

		for (unsigned int i = 0; i < cfg.ports[p].n_addrs; i++) {
			v4 |= cfg.ports[p].addrs[i].addr.family == AF_INET;
			v6 |= cfg.ports[p].addrs[i].addr.family == AF_INET6;
		}
		assert_true(v4 && v6);
		n += cfg.ports[p].rx_queues;
	}
	assert_int_equal(cfg.n_workers, 2);
	for (w = 0; w < cfg.n_workers; w++)
		n -= cfg.workers[w].n_rxq;
	assert_int_equal(n, 0);
	assert_true(cfg.n_routes >= 1);
	assert_int_equal(cfg.routes[0].dst.len, 0);
	assert_true(cfg.n_neighs >= 1);
	/* Its crypto and ipsec sections spell out the defaults. */
	assert_int_equal(cfg.crypto.n_devices, 2);
	assert_int_equal(cfg.ipsec.replay_window, 64);
	dps_config_free(&cfg);
}

static void test_distributes_rx_queues_round_robin(void **state)
{
	struct dps_config cfg;

	(void)state;
	parse_ok("eal:\n"
		 "  lcores: 0-2\n" PORTS_LAN_WAN "workers:\n"
		 "  - lcore: 2\n"
		 "  - lcore: 1\n",
		 &cfg);
	/* Port-major order: lan q0, lan q1, wan q0 over workers 0, 1, 0. */
	assert_int_equal(cfg.n_workers, 2);
	assert_int_equal(cfg.workers[0].lcore, 2);
	assert_int_equal(cfg.workers[0].n_rxq, 2);
	assert_rxq(&cfg.workers[0], 0, 0, 0);
	assert_rxq(&cfg.workers[0], 1, 1, 0);
	assert_int_equal(cfg.workers[1].lcore, 1);
	assert_int_equal(cfg.workers[1].n_rxq, 1);
	assert_rxq(&cfg.workers[1], 0, 0, 1);
	dps_config_free(&cfg);
}

/* More lcores than CPUs: "N@C" items (DPDK --lcores) put lcores 1 and 2 on CPU 1. */
static void test_maps_lcores_onto_cpus(void **state)
{
	struct dps_config cfg;

	(void)state;
	parse_ok("eal:\n"
		 "  lcores: \"0@0,1@1,2@1\"\n" PORTS_LAN_WAN "workers:\n"
		 "  - lcore: 1\n"
		 "  - lcore: 2\n",
		 &cfg);
	assert_string_equal(cfg.eal.lcores, "0@0,1@1,2@1");
	assert_int_equal(cfg.n_workers, 2);
	assert_int_equal(cfg.workers[1].lcore, 2);
	dps_config_free(&cfg);
	/* The CPU is not an lcore: lcore 3 is still not in the list. */
	assert_parse_error_at("eal:\n"
			      "  lcores: \"0@0,1@3\"\n" PORTS_LAN_WAN "workers:\n"
			      "  - lcore: 3\n",
			      12, 12, "workers[0].lcore");
}

static void test_default_worker_polls_every_queue(void **state)
{
	struct dps_config cfg;

	(void)state;
	parse_ok("eal:\n"
		 "  lcores: 3,5-6\n"
		 "  main_lcore: 5\n" PORTS_LAN_WAN,
		 &cfg);
	assert_int_equal(cfg.n_workers, 1);
	assert_int_equal(cfg.workers[0].lcore, 3);
	assert_int_equal(cfg.workers[0].n_rxq, 3);
	assert_rxq(&cfg.workers[0], 0, 0, 0);
	assert_rxq(&cfg.workers[0], 1, 0, 1);
	assert_rxq(&cfg.workers[0], 2, 1, 0);
	dps_config_free(&cfg);
}

static void test_accepts_every_boolean_spelling(void **state)
{
	static const struct {
		const char *word;
		bool value;
	} cases[] = {
		{"true", true},	  {"yes", true}, {"on", true},	 {"True", true}, {"YES", true},
		{"false", false}, {"no", false}, {"off", false}, {"Off", false}, {"FALSE", false},
	};
	struct dps_config cfg;
	char doc[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(doc, sizeof(doc), "eal:\n  in_memory: %s\n" PORT_LAN, cases[i].word);
		parse_ok(doc, &cfg);
		assert_int_equal(cfg.eal.in_memory, cases[i].value);
		dps_config_free(&cfg);
	}
}

static void test_default_exception_iface_is_truncated_to_ifnamsiz(void **state)
{
	struct dps_config cfg;

	(void)state;
	parse_ok("ports:\n"
		 "  - name: a_very_long_port_name\n"
		 "    device: d0\n"
		 "    role: protected\n",
		 &cfg);
	assert_string_equal(cfg.ports[0].exception_iface, "dps-a_very_long");
	assert_int_equal(strlen(cfg.ports[0].exception_iface), 15);
	dps_config_free(&cfg);
}

static void test_accepts_anchors_and_aliases(void **state)
{
	struct dps_config cfg;

	(void)state;
	parse_ok("ports:\n"
		 "  - &base\n"
		 "    name: lan\n"
		 "    device: d0\n"
		 "    role: protected\n"
		 "routes:\n"
		 "  - prefix: 10.0.0.0/8\n"
		 "    port: &p lan\n"
		 "  - prefix: 10.1.0.0/16\n"
		 "    port: *p\n",
		 &cfg);
	assert_int_equal(cfg.n_routes, 2);
	assert_int_equal(cfg.routes[1].port, 0);
	dps_config_free(&cfg);
}

static void test_load_reads_a_file(void **state)
{
	char path[] = "/tmp/dps-test-config-XXXXXX", err[512];
	struct dps_config cfg;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, PORT_LAN "    mtu: 0\n", sizeof(PORT_LAN "    mtu: 0\n") - 1),
			 sizeof(PORT_LAN "    mtu: 0\n") - 1);
	close(fd);
	/* Errors name the file. */
	assert_int_equal(dps_config_load(path, &cfg, err, sizeof(err)), -1);
	assert_true(!strncmp(err, path, strlen(path)));
	assert_non_null(strstr(err + strlen(path), ":5:10: ports[0].mtu: "));
	unlink(path);
}

static void test_load_reports_unreadable_file(void **state)
{
	struct dps_config cfg;
	char err[512];

	(void)state;
	assert_int_equal(dps_config_load("/nonexistent/dpsec.yaml", &cfg, err, sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/dpsec.yaml: cannot read: No such file or directory");
	assert_int_equal(dps_config_load("/", &cfg, err, sizeof(err)), -1);
	assert_string_equal(err, "/: cannot read: Is a directory");
	assert_int_equal(cfg.n_ports, 0);
	assert_null(cfg.routes);
}

static void test_error_is_truncated_safely(void **state)
{
	struct dps_config cfg;
	char err[12];

	(void)state;
	assert_int_equal(parse("ports: 1\n", &cfg, err, sizeof(err)), -1);
	assert_string_equal(err, "t.yaml:1:8:");
	/* No buffer at all is allowed too. */
	assert_int_equal(parse("ports: 1\n", &cfg, NULL, 0), -1);
}

/* ---- documents and YAML --------------------------------------------------- */

static void test_rejects_empty_document(void **state)
{
	(void)state;
	assert_parse_error_at("", 1, 1, "document");
}

static void test_rejects_comment_only_document(void **state)
{
	(void)state;
	assert_parse_error("# just a comment\n\n", 1, "document");
}

static void test_rejects_document_that_is_not_a_mapping(void **state)
{
	(void)state;
	assert_parse_error("\n- ports\n", 2, "document");
}

static void test_rejects_yaml_syntax_error(void **state)
{
	(void)state;
	assert_parse_error_at("ports:\n"
			      "  - name: lan\n"
			      "    device: d0\n"
			      "   role: protected\n",
			      4, 4, "yaml");
}

static void test_rejects_undefined_alias(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "log_level: *nope\n", 5, "yaml");
}

static void test_rejects_invalid_utf8(void **state)
{
	(void)state;
	assert_parse_error("log_level: info\n"
			   "ports:\n"
			   "  - name: \xc3\x28\n",
			   3, "yaml");
}

static void test_rejects_second_document(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "---\n"
				    "log_level: info\n",
			   5, "yaml");
}

static void test_rejects_non_scalar_key(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "[a, b]: 1\n", 5, "document");
}

/* ---- keys ----------------------------------------------------------------- */

static void test_rejects_unknown_top_level_key(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "route:\n"
				       "  - prefix: 10.0.0.0/8\n",
			      5, 1, "route");
}

static void test_rejects_unknown_port_key(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "    speed: 10000\n", 5, 5, "ports[0].speed");
}

static void test_rejects_unknown_eal_key(void **state)
{
	(void)state;
	assert_parse_error("eal:\n"
			   "  lcores: 0-1\n"
			   "  lcore: 1\n" PORT_LAN,
			   3, "eal.lcore");
}

static void test_rejects_unknown_rx_key(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "workers:\n"
				    "  - lcore: 1\n"
				    "    rx:\n"
				    "      - {port: lan, queue: 0, prio: 1}\n",
			   8, "workers[0].rx[0].prio");
}

static void test_rejects_duplicate_key(void **state)
{
	(void)state;
	assert_parse_error_at("eal:\n"
			      "  hugepages: true\n"
			      "  in_memory: false\n"
			      "  hugepages: false\n" PORT_LAN,
			      4, 3, "eal.hugepages");
}

/* EAL refuses --in-memory with --no-huge (legacy memory mode): so does the file. */
static void test_in_memory_needs_hugepages(void **state)
{
	struct dps_config cfg;

	(void)state;
	parse_ok("eal:\n"
		 "  in_memory: on\n" PORT_LAN,
		 &cfg);
	assert_true(cfg.eal.in_memory);
	assert_true(cfg.eal.hugepages);
	dps_config_free(&cfg);
	assert_parse_error_at("eal:\n"
			      "  hugepages: false\n"
			      "  in_memory: true\n" PORT_LAN,
			      3, 14, "eal.in_memory");
	assert_parse_error_at("eal:\n"
			      "  in_memory: true\n"
			      "  hugepages: false\n" PORT_LAN,
			      2, 14, "eal.in_memory");
}

static void test_rejects_duplicate_top_level_key(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "log_level: info\n"
				    "log_level: debug\n",
			   6, "log_level");
}

static void test_rejects_missing_ports(void **state)
{
	(void)state;
	assert_parse_error_at("\nlog_level: info\n", 2, 1, "ports");
}

static void test_rejects_empty_port_list(void **state)
{
	(void)state;
	assert_parse_error_at("ports: []\n", 1, 8, "ports");
}

static void test_rejects_missing_port_name(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "  - device: d1\n"
				       "    role: unprotected\n",
			      5, 5, "ports[1].name");
}

static void test_rejects_missing_port_role(void **state)
{
	(void)state;
	assert_parse_error("ports:\n"
			   "  - name: lan\n"
			   "    device: d0\n",
			   2, "ports[0].role");
}

/* ---- types ---------------------------------------------------------------- */

static void test_rejects_scalar_where_mapping_expected(void **state)
{
	(void)state;
	assert_parse_error_at("eal: 5\n" PORT_LAN, 1, 6, "eal");
}

static void test_rejects_mapping_where_scalar_expected(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "    mtu: {value: 1500}\n", 5, "ports[0].mtu");
}

static void test_rejects_sequence_where_scalar_expected(void **state)
{
	(void)state;
	assert_parse_error("ports:\n"
			   "  - name: [lan]\n"
			   "    device: d0\n"
			   "    role: protected\n",
			   2, "ports[0].name");
}

static void test_rejects_mapping_where_sequence_expected(void **state)
{
	(void)state;
	assert_parse_error("ports:\n"
			   "  name: lan\n"
			   "  device: d0\n",
			   2, "ports");
}

static void test_rejects_scalar_port_entry(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "  - wan\n", 5, "ports[1]");
}

/* ---- integers and booleans -------------------------------------------------- */

static void test_rejects_port_mtu_out_of_range(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "    mtu: 9601\n", 5, 10, "ports[0].mtu");
	assert_parse_error_at(PORT_LAN "    mtu: 67\n", 5, 10, "ports[0].mtu");
}

static void test_rejects_negative_integer(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "    mtu: -1\n", 5, "ports[0].mtu");
}

static void test_rejects_integer_with_trailing_garbage(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "    mtu: 1x\n", 5, "ports[0].mtu");
	assert_parse_error(PORT_LAN "    mtu: 1500 bytes\n", 5, "ports[0].mtu");
	assert_parse_error(PORT_LAN "    mtu: 1500.0\n", 5, "ports[0].mtu");
}

static void test_rejects_empty_integer(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "    mtu:\n"
				    "    rx_queues: 1\n",
			   5, "ports[0].mtu");
	assert_parse_error(PORT_LAN "    mtu: ~\n", 5, "ports[0].mtu");
}

static void test_rejects_integer_overflow(void **state)
{
	(void)state;
	assert_parse_error("dataplane:\n"
			   "  mbufs: 18446744073709551617\n" PORT_LAN,
			   2, "dataplane.mbufs");
	assert_parse_error("eal:\n"
			   "  memory_mb: 4294967297\n" PORT_LAN,
			   2, "eal.memory_mb");
}

static void test_rejects_quoted_integer(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "    mtu: \"1500\"\n", 5, "ports[0].mtu");
}

static void test_rejects_non_decimal_integer(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "    mtu: 0x5dc\n", 5, "ports[0].mtu");
	assert_parse_error(PORT_LAN "    mtu: 01500\n", 5, "ports[0].mtu");
	assert_parse_error(PORT_LAN "    mtu: +1500\n", 5, "ports[0].mtu");
}

static void test_rejects_bad_boolean(void **state)
{
	(void)state;
	assert_parse_error_at("eal:\n"
			      "  hugepages: maybe\n" PORT_LAN,
			      2, 14, "eal.hugepages");
	assert_parse_error(PORT_LAN "    exception: 1\n", 5, "ports[0].exception");
	assert_parse_error(PORT_LAN "    exception: \"true\"\n", 5, "ports[0].exception");
}

static void test_rejects_out_of_range_dataplane_values(void **state)
{
	(void)state;
	assert_parse_error("dataplane:\n"
			   "  burst: 65\n" PORT_LAN,
			   2, "dataplane.burst");
	assert_parse_error("dataplane:\n"
			   "  burst: 32\n"
			   "  mbufs: 1023\n" PORT_LAN,
			   3, "dataplane.mbufs");
	assert_parse_error("dataplane:\n"
			   "  idle_sleep_us: 0\n" PORT_LAN,
			   2, "dataplane.idle_sleep_us");
}

static void test_rejects_out_of_range_reassembly_values(void **state)
{
	(void)state;
	assert_parse_error("dataplane:\n"
			   "  reassembly:\n"
			   "    max_flows: 0\n" PORT_LAN,
			   3, "dataplane.reassembly.max_flows");
	assert_parse_error("dataplane:\n"
			   "  reassembly:\n"
			   "    max_flows: 1048577\n" PORT_LAN,
			   3, "dataplane.reassembly.max_flows");
	assert_parse_error("dataplane:\n"
			   "  reassembly:\n"
			   "    timeout_ms: 9\n" PORT_LAN,
			   3, "dataplane.reassembly.timeout_ms");
	assert_parse_error("dataplane:\n"
			   "  reassembly:\n"
			   "    timeout_ms: 120001\n" PORT_LAN,
			   3, "dataplane.reassembly.timeout_ms");
	assert_parse_error("dataplane:\n"
			   "  reassembly:\n"
			   "    max_fragments: 8\n" PORT_LAN,
			   3, "dataplane.reassembly.max_fragments");
	assert_parse_error("dataplane:\n"
			   "  reassembly: 4096\n" PORT_LAN,
			   2, "dataplane.reassembly");
}

static void test_rejects_out_of_range_neighbour_params(void **state)
{
	(void)state;
	assert_parse_error("neighbour:\n"
			   "  probes: 11\n" PORT_LAN,
			   2, "neighbour.probes");
	assert_parse_error("neighbour:\n"
			   "  max_entries: 15\n" PORT_LAN,
			   2, "neighbour.max_entries");
	assert_parse_error("neighbour:\n"
			   "  queue_len: 1025\n" PORT_LAN,
			   2, "neighbour.queue_len");
}

/* ---- eal and log level ------------------------------------------------------- */

static void test_rejects_unknown_log_level(void **state)
{
	(void)state;
	assert_parse_error_at("log_level: verbose\n" PORT_LAN, 1, 12, "log_level");
}

static void test_rejects_malformed_lcore_list(void **state)
{
	static const char *const bad[] = {"0-", "-1",	"0,,1", "0,",	 "1-0",	  "0 1",
					  "a",	"01",	"1024", "1-2@0", "1@",	  "1@a",
					  "@1", "1@@1", "1@01", "1@1-2", "1@1024"};
	char doc[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(doc, sizeof(doc), "eal:\n  lcores: \"%s\"\n" PORT_LAN, bad[i]);
		assert_parse_error_at(doc, 2, 11, "eal.lcores");
	}
}

static void test_rejects_main_lcore_outside_lcores(void **state)
{
	(void)state;
	assert_parse_error_at("eal:\n"
			      "  lcores: 1-3\n"
			      "  main_lcore: 4\n" PORT_LAN,
			      3, 15, "eal.main_lcore");
	/* The default main_lcore 0: blame the list that leaves it out. */
	assert_parse_error_at("eal:\n"
			      "  lcores: 1-3\n" PORT_LAN,
			      2, 11, "eal.lcores");
}

static void test_rejects_bad_file_prefix(void **state)
{
	(void)state;
	assert_parse_error("eal:\n"
			   "  file_prefix: ../dpsec\n" PORT_LAN,
			   2, "eal.file_prefix");
	assert_parse_error("eal:\n"
			   "  file_prefix: \"\"\n" PORT_LAN,
			   2, "eal.file_prefix");
}

static void test_rejects_too_many_extra_args(void **state)
{
	(void)state;
	assert_parse_error_at("eal:\n"
			      "  extra_args:\n"
			      "    [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q]\n" PORT_LAN,
			      3, 54, "eal.extra_args[16]");
}

static void test_rejects_too_long_extra_arg(void **state)
{
	char doc[512], arg[129];

	(void)state;
	memset(arg, 'x', 128);
	arg[128] = '\0';
	snprintf(doc, sizeof(doc), "eal:\n  extra_args:\n    - ok\n    - %s\n" PORT_LAN, arg);
	assert_parse_error_at(doc, 4, 7, "eal.extra_args[1]");
}

/* ---- ports ------------------------------------------------------------------- */

static void test_rejects_bad_port_name(void **state)
{
	(void)state;
	assert_parse_error("ports:\n"
			   "  - name: \"la n\"\n"
			   "    device: d0\n"
			   "    role: protected\n",
			   2, "ports[0].name");
	assert_parse_error("ports:\n"
			   "  - name: abcdefghijklmnopqrstuvwxyz012345\n"
			   "    device: d0\n"
			   "    role: protected\n",
			   2, "ports[0].name");
}

static void test_rejects_duplicate_port_name(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "  - role: unprotected\n"
				       "    device: d1\n"
				       "    name: lan\n",
			      7, 11, "ports[1].name");
}

static void test_rejects_duplicate_port_device(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "  - name: wan\n"
				    "    device: d0\n"
				    "    role: unprotected\n",
			   6, "ports[1].device");
}

static void test_rejects_bad_port_device(void **state)
{
	char doc[512], dev[257];

	(void)state;
	assert_parse_error("ports:\n"
			   "  - name: lan\n"
			   "    device: \"net_tap0, iface=x\"\n"
			   "    role: protected\n",
			   3, "ports[0].device");
	memset(dev, 'd', 256);
	dev[256] = '\0';
	snprintf(doc, sizeof(doc), "ports:\n  - name: lan\n    device: %s\n    role: protected\n",
		 dev);
	assert_parse_error(doc, 3, "ports[0].device");
}

static void test_rejects_unknown_port_role(void **state)
{
	(void)state;
	assert_parse_error("ports:\n"
			   "  - name: lan\n"
			   "    device: d0\n"
			   "    role: inside\n",
			   4, "ports[0].role");
}

static void test_rejects_bad_port_mac(void **state)
{
	(void)state;
	/* multicast, all-zero, short, bad digit, wrong separator */
	assert_parse_error(PORT_LAN "    mac: \"01:00:5e:00:00:01\"\n", 5, "ports[0].mac");
	assert_parse_error(PORT_LAN "    mac: \"00:00:00:00:00:00\"\n", 5, "ports[0].mac");
	assert_parse_error(PORT_LAN "    mac: \"02:00:00:00:00\"\n", 5, "ports[0].mac");
	assert_parse_error(PORT_LAN "    mac: \"02:00:00:00:00:0g\"\n", 5, "ports[0].mac");
	assert_parse_error(PORT_LAN "    mac: \"02-00-00-00-00-01\"\n", 5, "ports[0].mac");
}

static void test_rejects_descriptors_not_power_of_two(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "    rx_desc: 1000\n", 5, "ports[0].rx_desc");
	assert_parse_error(PORT_LAN "    tx_desc: 8192\n", 5, "ports[0].tx_desc");
	assert_parse_error(PORT_LAN "    tx_desc: 32\n", 5, "ports[0].tx_desc");
}

static void test_rejects_too_many_rx_queues(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "    rx_queues: 17\n", 5, "ports[0].rx_queues");
	assert_parse_error(PORT_LAN "    rx_queues: 0\n", 5, "ports[0].rx_queues");
}

static void test_rejects_bad_exception_iface(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "    exception_iface: dps-0123456789ab\n", 5,
			   "ports[0].exception_iface");
	assert_parse_error(PORT_LAN "    exception_iface: \"dps/lan\"\n", 5,
			   "ports[0].exception_iface");
	assert_parse_error(PORT_LAN "    exception_iface: ..\n", 5, "ports[0].exception_iface");
}

static void test_rejects_clashing_default_exception_iface(void **state)
{
	(void)state;
	/* Both default to "dps-backbone_ea": blame the second port. */
	assert_parse_error_at("ports:\n"
			      "  - name: backbone_east1\n"
			      "    device: d0\n"
			      "    role: protected\n"
			      "  - name: backbone_east2\n"
			      "    device: d1\n"
			      "    role: unprotected\n",
			      5, 5, "ports[1].exception_iface");
	assert_parse_error(PORT_LAN "  - name: wan\n"
				    "    device: d1\n"
				    "    role: unprotected\n"
				    "    exception_iface: dps-lan\n",
			   8, "ports[1].exception_iface");
}

static void test_rejects_interface_address_without_length(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "    addresses: [192.0.2.1/24, 2001:db8::1]\n", 5,
			   "ports[0].addresses[1]");
}

static void test_rejects_malformed_interface_address(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "    addresses:\n"
				       "      - 192.0.2.300/24\n",
			      6, 9, "ports[0].addresses[0]");
	assert_parse_error(PORT_LAN "    addresses: [192.0.2.1/33]\n", 5, "ports[0].addresses[0]");
	assert_parse_error(PORT_LAN "    addresses: [224.0.0.1/24]\n", 5, "ports[0].addresses[0]");
	assert_parse_error(PORT_LAN "    addresses: [\"::/64\"]\n", 5, "ports[0].addresses[0]");
	assert_parse_error(PORT_LAN "    addresses: [192.0.2.1/0]\n", 5, "ports[0].addresses[0]");
}

static void test_rejects_address_on_two_ports(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "    addresses: [192.0.2.1/24]\n"
				       "  - name: wan\n"
				       "    device: d1\n"
				       "    role: unprotected\n"
				       "    addresses:\n"
				       "      - 198.51.100.1/24\n"
				       "      - 192.0.2.1/25\n",
			      11, 9, "ports[1].addresses[1]");
	assert_parse_error(PORT_LAN "    addresses: [\"2001:db8::1/64\", \"2001:db8:0::1/48\"]\n",
			   5, "ports[0].addresses[1]");
}

static void test_rejects_too_many_addresses(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "    addresses:\n"
				    "      - 10.0.0.1/24\n"
				    "      - 10.0.1.1/24\n"
				    "      - 10.0.2.1/24\n"
				    "      - 10.0.3.1/24\n"
				    "      - 10.0.4.1/24\n"
				    "      - 10.0.5.1/24\n"
				    "      - 10.0.6.1/24\n"
				    "      - 10.0.7.1/24\n"
				    "      - 10.0.8.1/24\n",
			   14, "ports[0].addresses[8]");
}

static void test_rejects_too_many_ports(void **state)
{
	char doc[4096];
	size_t n = 0;

	(void)state;
	n += snprintf(doc + n, sizeof(doc) - n, "ports:\n");
	for (int i = 0; i < 17; i++)
		n += snprintf(doc + n, sizeof(doc) - n,
			      "  - name: p%d\n    device: d%d\n    role: protected\n", i, i);
	/* Port 16 (the 17th) starts on line 2 + 16 * 3. */
	assert_parse_error(doc, 50, "ports[16]");
}

static void test_rejects_nul_in_string(void **state)
{
	(void)state;
	assert_parse_error("ports:\n"
			   "  - name: \"la\\0n\"\n"
			   "    device: d0\n"
			   "    role: protected\n",
			   2, "ports[0].name");
}

/* ---- workers ----------------------------------------------------------------- */

static void test_rejects_worker_lcore_outside_lcores(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "workers:\n"
				       "  - lcore: 2\n",
			      6, 12, "workers[0].lcore");
}

static void test_rejects_worker_on_main_lcore(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "workers:\n"
				    "  - lcore: 1\n"
				    "  - lcore: 0\n",
			   7, "workers[1].lcore");
}

static void test_rejects_duplicate_worker_lcore(void **state)
{
	(void)state;
	assert_parse_error("eal:\n"
			   "  lcores: 0-3\n" PORT_LAN "workers:\n"
			   "  - lcore: 1\n"
			   "  - lcore: 2\n"
			   "  - lcore: 1\n",
			   10, "workers[2].lcore");
}

static void test_rejects_missing_worker_lcore(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "workers:\n"
				    "  - rx: [{port: lan, queue: 0}]\n",
			   6, "workers[0].lcore");
}

static void test_rejects_rx_naming_unknown_port(void **state)
{
	(void)state;
	assert_parse_error_at(PORTS_LAN_WAN "workers:\n"
					    "  - lcore: 1\n"
					    "    rx:\n"
					    "      - {port: lan, queue: 0}\n"
					    "      - {port: lan, queue: 1}\n"
					    "      - {port: dmz, queue: 0}\n",
			      14, 16, "workers[0].rx[2].port");
}

static void test_rejects_rx_queue_beyond_port_queues(void **state)
{
	(void)state;
	assert_parse_error_at(PORTS_LAN_WAN "workers:\n"
					    "  - lcore: 1\n"
					    "    rx:\n"
					    "      - port: lan\n"
					    "        queue: 0\n"
					    "      - port: wan\n"
					    "        queue: 1\n",
			      15, 16, "workers[0].rx[1].queue");
}

static void test_rejects_doubly_polled_queue(void **state)
{
	(void)state;
	assert_parse_error_at("eal:\n"
			      "  lcores: 0-2\n" PORTS_LAN_WAN "workers:\n"
			      "  - lcore: 1\n"
			      "    rx: [{port: lan, queue: 0}, {port: wan, queue: 0}]\n"
			      "  - lcore: 2\n"
			      "    rx:\n"
			      "      - {port: lan, queue: 1}\n"
			      "      - {port: wan, queue: 0}\n",
			      17, 9, "workers[1].rx[1]");
}

static void test_rejects_unpolled_queue(void **state)
{
	char err[512];
	struct dps_config cfg;
	const char *doc = "eal:\n"
			  "  lcores: 0-2\n" PORTS_LAN_WAN "workers:\n"
			  "  - lcore: 1\n"
			  "    rx: [{port: lan, queue: 0}]\n"
			  "  - lcore: 2\n"
			  "    rx: [{port: wan, queue: 0}]\n";

	(void)state;
	assert_parse_error_at(doc, 12, 3, "workers");
	/* The message names the queue nobody polls. */
	assert_int_equal(parse(doc, &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "port lan queue 1 is not polled"));
}

static void test_rejects_rx_on_some_workers_only(void **state)
{
	(void)state;
	assert_parse_error_at("eal:\n"
			      "  lcores: 0-2\n" PORT_LAN "workers:\n"
			      "  - lcore: 1\n"
			      "    rx: [{port: lan, queue: 0}]\n"
			      "  - lcore: 2\n",
			      10, 5, "workers[1].rx");
}

static void test_rejects_empty_worker_rx(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "workers:\n"
				    "  - lcore: 1\n"
				    "    rx: []\n",
			   7, "workers[0].rx");
}

static void test_rejects_empty_worker_list(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "workers: []\n", 5, "workers");
}

static void test_rejects_default_worker_without_spare_lcore(void **state)
{
	(void)state;
	assert_parse_error_at("eal:\n"
			      "  lcores: \"2\"\n"
			      "  main_lcore: 2\n" PORT_LAN,
			      2, 11, "eal.lcores");
}

static void test_rejects_more_queues_than_workers_can_poll(void **state)
{
	char doc[2048];
	size_t n = 0;

	(void)state;
	/* 3 ports x 16 queues = 48 > 32 for the single default worker. */
	n += snprintf(doc + n, sizeof(doc) - n, "ports:\n");
	for (int i = 0; i < 3; i++)
		n += snprintf(doc + n, sizeof(doc) - n,
			      "  - name: p%d\n    device: d%d\n    role: protected\n"
			      "    rx_queues: 16\n",
			      i, i);
	assert_parse_error(doc, 1, "workers");
}

/* ---- routes and neighbours ----------------------------------------------------- */

static void test_rejects_route_with_host_bits(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "routes:\n"
				       "  - prefix: 10.2.0.1/16\n"
				       "    port: lan\n",
			      6, 13, "routes[0].prefix");
	assert_parse_error(PORT_LAN "routes:\n"
				    "  - prefix: \"2001:db8::1/64\"\n"
				    "    port: lan\n",
			   6, "routes[0].prefix");
}

static void test_rejects_malformed_route_prefix(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "routes:\n"
				    "  - prefix: 10.0.0.0/33\n"
				    "    port: lan\n",
			   6, "routes[0].prefix");
	assert_parse_error(PORT_LAN "routes:\n"
				    "  - prefix: default\n"
				    "    port: lan\n",
			   6, "routes[0].prefix");
}

static void test_rejects_route_via_of_other_family(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "routes:\n"
				       "  - prefix: 10.0.0.0/8\n"
				       "    port: lan\n"
				       "  - prefix: \"2001:db8::/32\"\n"
				       "    port: lan\n"
				       "    via: 192.0.2.2\n",
			      10, 10, "routes[1].via");
}

static void test_rejects_malformed_route_via(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "routes:\n"
				    "  - prefix: 10.0.0.0/8\n"
				    "    via: 192.0.2.2/32\n"
				    "    port: lan\n",
			   7, "routes[0].via");
}

static void test_rejects_route_to_unknown_port(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "routes:\n"
				       "  - prefix: 10.0.0.0/8\n"
				       "    port: wan\n",
			      7, 11, "routes[0].port");
}

static void test_rejects_route_without_port(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "routes:\n"
				       "  - prefix: 10.0.0.0/8\n",
			      6, 5, "routes[0].port");
}

static void test_rejects_duplicate_route(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "routes:\n"
				       "  - {prefix: 0.0.0.0/0, via: 192.0.2.2, port: lan}\n"
				       "  - {prefix: 10.0.0.0/8, port: lan}\n"
				       "  - {prefix: 0.0.0.0/0, via: 192.0.2.3, port: lan}\n",
			      8, 14, "routes[2].prefix");
}

static void test_rejects_neighbour_with_bad_mac(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "neighbours:\n"
				    "  - address: 192.0.2.2\n"
				    "    mac: \"ff:ff:ff:ff:ff:ff\"\n"
				    "    port: lan\n",
			   7, "neighbours[0].mac");
}

static void test_rejects_neighbour_without_mac(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "neighbours:\n"
				       "  - address: 192.0.2.2\n"
				       "    port: lan\n",
			      6, 5, "neighbours[0].mac");
}

static void test_rejects_neighbour_with_bad_address(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "neighbours:\n"
				    "  - address: 192.0.2\n"
				    "    mac: \"02:00:00:00:00:02\"\n"
				    "    port: lan\n",
			   6, "neighbours[0].address");
	assert_parse_error(PORT_LAN "neighbours:\n"
				    "  - address: \"ff02::1\"\n"
				    "    mac: \"02:00:00:00:00:02\"\n"
				    "    port: lan\n",
			   6, "neighbours[0].address");
}

static void test_rejects_duplicate_neighbour(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN
			   "neighbours:\n"
			   "  - {address: 192.0.2.2, mac: \"02:00:00:00:00:02\", port: lan}\n"
			   "  - {address: 192.0.2.2, mac: \"02:00:00:00:00:03\", port: lan}\n",
			   7, "neighbours[1].address");
}

static void test_rejects_neighbour_on_unknown_port(void **state)
{
	(void)state;
	assert_parse_error(PORT_LAN "neighbours:\n"
				    "  - address: 192.0.2.2\n"
				    "    mac: \"02:00:00:00:00:02\"\n"
				    "    port: 0\n",
			   8, "neighbours[0].port");
}

/* ---- IPsec: documents --------------------------------------------------------- */

/* Keys whose byte i is i, so that decoding can be checked. */
#define K16 "000102030405060708090a0b0c0d0e0f"
#define K20 K16 "10111213"
#define K24 K16 "1011121314151617"
#define K32 K16 "101112131415161718191a1b1c1d1e1f"
#define K36 K32 "20212223"
#define K48 K32 "202122232425262728292a2b2c2d2e2f"
#define K64 K48 "303132333435363738393a3b3c3d3e3f"

/* Lines 5-9, after PORT_LAN: an outbound SA without its transforms. */
#define SA_OUT                                                                                     \
	"sas:\n"                                                                                   \
	"  - spi: 0x1001\n"                                                                        \
	"    direction: out\n"                                                                     \
	"    src: 192.0.2.1\n"                                                                     \
	"    dst: 198.51.100.1\n"

/* Lines 11-14 after SA_OUT and one line of transforms: the same SA again. */
#define SA_OUT_2                                                                                   \
	"  - spi: 0x1001\n"                                                                        \
	"    direction: out\n"                                                                     \
	"    src: 192.0.2.1\n"                                                                     \
	"    dst: 198.51.100.1\n"

/* One line each. */
#define ENC_GCM	    "    encryption: {algorithm: aes-gcm-128, key: \"0x" K20 "\"}\n"
#define ENC_CBC	    "    encryption: {algorithm: aes-cbc-128, key: \"0x" K16 "\"}\n"
#define AUTH_SHA256 "    integrity: {algorithm: hmac-sha2-256-128, key: \"" K32 "\"}\n"

/* Lines 5-8, after PORT_LAN: an outbound policy without its action. */
#define POL_OUT                                                                                    \
	"policies:\n"                                                                              \
	"  - direction: out\n"                                                                     \
	"    src: 10.1.0.0/16\n"                                                                   \
	"    dst: 10.2.0.0/16\n"

/* One line: the transform of a protect policy. */
#define REQ_ESP "    ipsec: [{proto: esp, tunnel: {src: 192.0.2.1, dst: 198.51.100.1}}]\n"

static void assert_key(const uint8_t *key, unsigned int len, unsigned int want)
{
	assert_int_equal(len, want);
	for (unsigned int i = 0; i < len; i++)
		assert_int_equal(key[i], i);
}

/* Parse @doc expecting an error whose message contains @text. */
static void assert_error_says(const char *doc, const char *text)
{
	struct dps_config cfg;
	char err[512];

	assert_int_equal(parse(doc, &cfg, err, sizeof(err)), -1);
	if (!strstr(err, text))
		fail_msg("\"%s\" does not say \"%s\"", err, text);
}

static void test_minimal_config_gets_ipsec_defaults(void **state)
{
	struct dps_config cfg;

	(void)state;
	parse_ok(PORT_LAN, &cfg);
	assert_int_equal(cfg.crypto.n_devices, 2);
	assert_string_equal(cfg.crypto.devices[0], "crypto_aesni_mb");
	assert_string_equal(cfg.crypto.devices[1], "crypto_openssl");
	assert_true(cfg.crypto.cpu_crypto);
	assert_int_equal(cfg.crypto.engine, DPS_ENGINE_NATIVE);
	assert_int_equal(cfg.crypto.sessions, 262144);
	assert_int_equal(cfg.crypto.queue_latency_us, 0);
	assert_int_equal(cfg.ipsec.def_policy4, DPS_ACTION_BYPASS);
	assert_int_equal(cfg.ipsec.def_policy6, DPS_ACTION_BYPASS);
	assert_int_equal(cfg.ipsec.esp_trans_deflev, DPS_LEVEL_USE);
	assert_int_equal(cfg.ipsec.esp_net_deflev, DPS_LEVEL_USE);
	assert_int_equal(cfg.ipsec.ah_trans_deflev, DPS_LEVEL_USE);
	assert_int_equal(cfg.ipsec.ah_net_deflev, DPS_LEVEL_USE);
	assert_int_equal(cfg.ipsec.dfbit, DPS_DF_COPY);
	assert_true(cfg.ipsec.ecn);
	assert_true(cfg.ipsec.ah_cleartos);
	assert_int_equal(cfg.ipsec.replay_window, 64);
	assert_int_equal(cfg.n_sas, 0);
	assert_null(cfg.sas);
	assert_int_equal(cfg.n_policies, 0);
	assert_null(cfg.policies);
	dps_config_free(&cfg);
}

static void test_crypto_and_ipsec_set_every_key(void **state)
{
	static const char zero[DPS_DEVICE_LEN];
	struct dps_config cfg;

	(void)state;
	parse_ok(PORT_LAN "crypto:\n"
			  "  devices: [\"0000:3d:00.0\"]\n"
			  "  cpu_crypto: no\n"
			  "  engine: cryptodev\n"
			  "  sessions: 1048576\n"
			  "  queue_latency_us: 50\n"
			  "ipsec:\n"
			  "  def_policy: discard\n"
			  "  esp_trans_deflev: require\n"
			  "  esp_net_deflev: use\n"
			  "  ah_trans_deflev: require\n"
			  "  ah_net_deflev: require\n"
			  "  dfbit: clear\n"
			  "  ecn: false\n"
			  "  ah_cleartos: off\n"
			  "  replay_window: 0\n",
		 &cfg);
	assert_int_equal(cfg.crypto.n_devices, 1);
	assert_string_equal(cfg.crypto.devices[0], "0000:3d:00.0");
	/* The second default device is gone, not just uncounted. */
	assert_memory_equal(cfg.crypto.devices[1], zero, sizeof(zero));
	assert_false(cfg.crypto.cpu_crypto);
	assert_int_equal(cfg.crypto.engine, DPS_ENGINE_CRYPTODEV);
	assert_int_equal(cfg.crypto.sessions, 1048576);
	assert_int_equal(cfg.crypto.queue_latency_us, 50);
	assert_int_equal(cfg.ipsec.def_policy4, DPS_ACTION_DISCARD);
	assert_int_equal(cfg.ipsec.def_policy6, DPS_ACTION_DISCARD);
	assert_int_equal(cfg.ipsec.esp_trans_deflev, DPS_LEVEL_REQUIRE);
	assert_int_equal(cfg.ipsec.esp_net_deflev, DPS_LEVEL_USE);
	assert_int_equal(cfg.ipsec.ah_trans_deflev, DPS_LEVEL_REQUIRE);
	assert_int_equal(cfg.ipsec.ah_net_deflev, DPS_LEVEL_REQUIRE);
	assert_int_equal(cfg.ipsec.dfbit, DPS_DF_CLEAR);
	assert_false(cfg.ipsec.ecn);
	assert_false(cfg.ipsec.ah_cleartos);
	assert_int_equal(cfg.ipsec.replay_window, 0);
	dps_config_free(&cfg);

	parse_ok(PORT_LAN
		 "crypto:\n"
		 "  devices: [crypto_aesni_mb, \"crypto_qat,socket_id=1\", crypto_openssl]\n"
		 "  sessions: 64\n"
		 "ipsec:\n"
		 "  replay_window: 65536\n",
		 &cfg);
	assert_int_equal(cfg.crypto.n_devices, 3);
	assert_string_equal(cfg.crypto.devices[1], "crypto_qat,socket_id=1");
	assert_int_equal(cfg.crypto.sessions, 64);
	assert_int_equal(cfg.ipsec.replay_window, 65536);
	dps_config_free(&cfg);
}

/* PORT_LAN, crypto.sessions @sessions (line 6, value at column 13), then @n_sas SAs. */
static char *doc_with_sas(unsigned int sessions, unsigned int n_sas)
{
	size_t cap = 256 + n_sas * 192, len;
	char *doc = malloc(cap);

	assert_non_null(doc);
	len = (size_t)snprintf(doc, cap, PORT_LAN "crypto:\n  sessions: %u\nsas:\n", sessions);
	for (unsigned int i = 0; i < n_sas; i++)
		len += (size_t)snprintf(
			doc + len, cap - len,
			"  - {spi: %u, direction: out, src: 192.0.2.1, "
			"dst: 198.51.100.1,\n     encryption: {algorithm: aes-gcm-128, "
			"key: \"0x" K20 "\"}}\n",
			0x1000 + i);
	return doc;
}

static void test_more_sas_than_sessions_names_crypto_sessions(void **state)
{
	struct dps_config cfg;
	char *doc;

	(void)state;
	doc = doc_with_sas(64, 64);
	parse_ok(doc, &cfg);
	assert_int_equal(cfg.n_sas, 64);
	dps_config_free(&cfg);
	free(doc);
	doc = doc_with_sas(64, 65);
	assert_parse_error_at(doc, 6, 13, "crypto.sessions");
	assert_error_says(doc, "raise crypto.sessions");
	free(doc);
}

static void test_def_policy_per_family(void **state)
{
	struct dps_config cfg;

	(void)state;
	parse_ok(PORT_LAN "ipsec:\n  def_policy: {ipv4: discard, ipv6: bypass}\n", &cfg);
	assert_int_equal(cfg.ipsec.def_policy4, DPS_ACTION_DISCARD);
	assert_int_equal(cfg.ipsec.def_policy6, DPS_ACTION_BYPASS);
	dps_config_free(&cfg);
	/* A family left out keeps the default, bypass. */
	parse_ok(PORT_LAN "ipsec:\n  def_policy:\n    ipv6: discard\n", &cfg);
	assert_int_equal(cfg.ipsec.def_policy4, DPS_ACTION_BYPASS);
	assert_int_equal(cfg.ipsec.def_policy6, DPS_ACTION_DISCARD);
	dps_config_free(&cfg);
	parse_ok(PORT_LAN "ipsec:\n  def_policy: bypass\n", &cfg);
	assert_int_equal(cfg.ipsec.def_policy4, DPS_ACTION_BYPASS);
	assert_int_equal(cfg.ipsec.def_policy6, DPS_ACTION_BYPASS);
	dps_config_free(&cfg);
}

static void test_sa_sets_every_key(void **state)
{
	struct dps_config cfg;
	const struct dps_sa *sa;

	(void)state;
	parse_ok(PORT_LAN
		 "sas:\n"
		 "  - spi: 4294967295\n"
		 "    direction: in\n"
		 "    proto: esp\n"
		 "    mode: tunnel\n"
		 "    src: 198.51.100.1\n"
		 "    dst: 192.0.2.1\n"
		 "    reqid: 0xFFFFFFFF\n"
		 "    encryption:\n"
		 "      algorithm: aes-cbc-192\n"
		 "      key: "
		 "\"0X00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:1011121314151617\"\n"
		 "    integrity:\n"
		 "      algorithm: hmac-sha2-512-256\n"
		 "      key: " K64 "\n"
		 "    replay_window: 32\n"
		 "    esn: yes\n"
		 "    encap: {type: udp, sport: 4501, dport: 1024}\n"
		 "    ttl: 255\n"
		 "    dfbit: set\n"
		 "    lifetime:\n"
		 "      soft: {bytes: 1, packets: 2, add_s: 3, use_s: 4}\n"
		 "      hard: {bytes: 18446744073709551615, packets: 2, add_s: 0, use_s: 5}\n",
		 &cfg);
	assert_int_equal(cfg.n_sas, 1);
	sa = &cfg.sas[0];
	assert_int_equal(sa->spi, 0xffffffff);
	assert_int_equal(sa->dir, DPS_DIR_IN);
	assert_int_equal(sa->proto, DPS_PROTO_ESP);
	assert_int_equal(sa->mode, DPS_MODE_TUNNEL);
	assert_int_equal(sa->src.family, AF_INET);
	assert_string_equal(addr_str(&sa->src), "198.51.100.1");
	assert_string_equal(addr_str(&sa->dst), "192.0.2.1");
	assert_int_equal(sa->reqid, 0xffffffff);
	assert_int_equal(sa->enc_alg, DPS_ENC_AES_CBC);
	assert_key(sa->enc_key, sa->enc_key_len, 24);
	assert_int_equal(sa->auth_alg, DPS_AUTH_HMAC_SHA512_256);
	assert_key(sa->auth_key, sa->auth_key_len, 64);
	assert_int_equal(sa->replay_window, 32);
	assert_true(sa->esn);
	assert_true(sa->udp_encap);
	assert_int_equal(sa->encap_sport, 4501);
	assert_int_equal(sa->encap_dport, 1024);
	assert_int_equal(sa->ttl, 255);
	assert_int_equal(sa->dfbit, DPS_DF_SET);
	assert_int_equal(sa->soft.bytes, 1);
	assert_int_equal(sa->soft.packets, 2);
	assert_int_equal(sa->soft.add_s, 3);
	assert_int_equal(sa->soft.use_s, 4);
	assert_true(sa->hard.bytes == UINT64_MAX);
	assert_int_equal(sa->hard.packets, 2);
	assert_int_equal(sa->hard.add_s, 0);
	assert_int_equal(sa->hard.use_s, 5);
	dps_config_free(&cfg);
	assert_null(cfg.sas);
	assert_int_equal(cfg.n_sas, 0);
	dps_config_free(&cfg); /* twice is harmless */
}

static void test_sa_defaults(void **state)
{
	static const struct dps_lifetime unlimited;
	struct dps_config cfg;
	const struct dps_sa *sa;

	(void)state;
	parse_ok(PORT_LAN SA_OUT ENC_GCM, &cfg);
	sa = &cfg.sas[0];
	assert_int_equal(sa->spi, 0x1001);
	assert_int_equal(sa->dir, DPS_DIR_OUT);
	assert_int_equal(sa->proto, DPS_PROTO_ESP);
	assert_int_equal(sa->mode, DPS_MODE_TUNNEL);
	assert_int_equal(sa->reqid, 0);
	assert_int_equal(sa->enc_alg, DPS_ENC_AES_GCM);
	assert_key(sa->enc_key, sa->enc_key_len, 20);
	assert_int_equal(sa->auth_alg, DPS_AUTH_NONE);
	assert_int_equal(sa->auth_key_len, 0);
	assert_int_equal(sa->replay_window, 64);
	assert_false(sa->esn);
	assert_false(sa->udp_encap);
	assert_int_equal(sa->encap_sport, 0);
	assert_int_equal(sa->encap_dport, 0);
	assert_int_equal(sa->ttl, 64);
	assert_int_equal(sa->dfbit, DPS_DF_COPY);
	assert_memory_equal(&sa->soft, &unlimited, sizeof(unlimited));
	assert_memory_equal(&sa->hard, &unlimited, sizeof(unlimited));
	dps_config_free(&cfg);

	/* replay_window and dfbit default to the ipsec section's, wherever it is. */
	parse_ok(PORT_LAN SA_OUT ENC_GCM "    encap: {type: udp}\n"
					 "ipsec:\n"
					 "  replay_window: 0\n"
					 "  dfbit: set\n",
		 &cfg);
	assert_int_equal(cfg.sas[0].replay_window, 0);
	assert_int_equal(cfg.sas[0].dfbit, DPS_DF_SET);
	assert_true(cfg.sas[0].udp_encap);
	assert_int_equal(cfg.sas[0].encap_sport, 4500);
	assert_int_equal(cfg.sas[0].encap_dport, 4500);
	dps_config_free(&cfg);
}

static void test_sa_accepts_every_algorithm(void **state)
{
	static const struct {
		const char *name;
		const char *key;
		unsigned int alg, len;
		bool aead;
	} enc[] = {
		{"null", "\"\"", DPS_ENC_NULL, 0, false},
		{"aes-cbc-128", K16, DPS_ENC_AES_CBC, 16, false},
		{"aes-cbc-192", K24, DPS_ENC_AES_CBC, 24, false},
		{"aes-cbc-256", K32, DPS_ENC_AES_CBC, 32, false},
		{"aes-ctr-128", K20, DPS_ENC_AES_CTR, 20, false},
		{"aes-ctr-192", K24 "18191a1b", DPS_ENC_AES_CTR, 28, false},
		{"aes-ctr-256", K36, DPS_ENC_AES_CTR, 36, false},
		{"aes-gcm-128", K20, DPS_ENC_AES_GCM, 20, true},
		{"aes-gcm-192", K24 "18191a1b", DPS_ENC_AES_GCM, 28, true},
		{"aes-gcm-256", K36, DPS_ENC_AES_GCM, 36, true},
		{"aes-gmac-128", K20, DPS_ENC_AES_GMAC, 20, true},
		{"aes-gmac-192", K24 "18191a1b", DPS_ENC_AES_GMAC, 28, true},
		{"aes-gmac-256", K36, DPS_ENC_AES_GMAC, 36, true},
		{"chacha20-poly1305", K36, DPS_ENC_CHACHA20_POLY1305, 36, true},
	};
	static const struct {
		const char *name;
		const char *key;
		unsigned int alg, len;
	} auth[] = {
		{"hmac-sha1-96", K16 "10111213", DPS_AUTH_HMAC_SHA1_96, 20},
		{"hmac-sha2-256-128", K32, DPS_AUTH_HMAC_SHA256_128, 32},
		{"hmac-sha2-384-192", K48, DPS_AUTH_HMAC_SHA384_192, 48},
		{"hmac-sha2-512-256", K64, DPS_AUTH_HMAC_SHA512_256, 64},
	};
	struct dps_config cfg;
	char doc[1024];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(enc) / sizeof(enc[0]); i++) {
		snprintf(doc, sizeof(doc),
			 PORT_LAN SA_OUT "    encryption: {algorithm: %s, key: %s}\n%s",
			 enc[i].name, enc[i].key, enc[i].aead ? "" : AUTH_SHA256);
		parse_ok(doc, &cfg);
		assert_int_equal(cfg.sas[0].enc_alg, enc[i].alg);
		assert_key(cfg.sas[0].enc_key, cfg.sas[0].enc_key_len, enc[i].len);
		dps_config_free(&cfg);
	}
	for (i = 0; i < sizeof(auth) / sizeof(auth[0]); i++) {
		snprintf(doc, sizeof(doc),
			 PORT_LAN SA_OUT ENC_CBC "    integrity: {algorithm: %s, key: \"0x%s\"}\n",
			 auth[i].name, auth[i].key);
		parse_ok(doc, &cfg);
		assert_int_equal(cfg.sas[0].auth_alg, auth[i].alg);
		assert_key(cfg.sas[0].auth_key, cfg.sas[0].auth_key_len, auth[i].len);
		dps_config_free(&cfg);
		/* AH: the same, without encryption. */
		snprintf(doc, sizeof(doc),
			 PORT_LAN SA_OUT "    proto: ah\n    integrity: {algorithm: %s, key: %s}\n",
			 auth[i].name, auth[i].key);
		parse_ok(doc, &cfg);
		assert_int_equal(cfg.sas[0].proto, DPS_PROTO_AH);
		assert_int_equal(cfg.sas[0].enc_alg, DPS_ENC_NULL);
		assert_int_equal(cfg.sas[0].auth_alg, auth[i].alg);
		dps_config_free(&cfg);
	}
	/* AES-GMAC integrity (RFC 4543 in AH): key and salt; ESP takes it as a cipher */
	parse_ok(PORT_LAN SA_OUT "    proto: ah\n    integrity: {algorithm: aes-gmac-256, key: " K36
				 "}\n",
		 &cfg);
	assert_int_equal(cfg.sas[0].auth_alg, DPS_AUTH_AES_GMAC);
	assert_key(cfg.sas[0].auth_key, cfg.sas[0].auth_key_len, 36);
	dps_config_free(&cfg);
	assert_error_says(PORT_LAN SA_OUT ENC_CBC
			  "    integrity: {algorithm: aes-gmac-128, key: " K20 "}\n",
			  "AES-GMAC integrity is for AH");
}

static void test_sa_key_spellings(void **state)
{
	static const char *const k16[] = {
		K16,
		("0x" K16),
		"0X000102030405060708090A0B0C0D0E0F",
		"00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f",
		"0x0001:0203:04050607:08090a0b0c0d0e0f",
	};
	struct dps_config cfg;
	char doc[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(k16) / sizeof(k16[0]); i++) {
		snprintf(doc, sizeof(doc),
			 PORT_LAN SA_OUT "    encryption: {algorithm: aes-cbc-128, key: \"%s\"}\n"
					 "    integrity: {algorithm: hmac-sha1-96, key: " K20 "}\n",
			 k16[i]);
		parse_ok(doc, &cfg);
		assert_key(cfg.sas[0].enc_key, cfg.sas[0].enc_key_len, 16);
		dps_config_free(&cfg);
	}
	/* null encryption and integrity none take no key, or an empty one. */
	parse_ok(PORT_LAN SA_OUT "    encryption: {algorithm: null}\n" AUTH_SHA256, &cfg);
	assert_int_equal(cfg.sas[0].enc_key_len, 0);
	dps_config_free(&cfg);
	parse_ok(PORT_LAN SA_OUT "    encryption: {algorithm: null, key: \"0x\"}\n" AUTH_SHA256,
		 &cfg);
	dps_config_free(&cfg);
	parse_ok(PORT_LAN SA_OUT ENC_GCM "    integrity: {algorithm: none}\n", &cfg);
	assert_int_equal(cfg.sas[0].auth_alg, DPS_AUTH_NONE);
	dps_config_free(&cfg);
	parse_ok(PORT_LAN SA_OUT ENC_GCM "    integrity: {algorithm: none, key: \"\"}\n", &cfg);
	dps_config_free(&cfg);
}

/* Write @doc to a temporary file and load it; the file is removed. */
static int load_doc(const char *doc, struct dps_config *cfg, char *err, size_t errlen)
{
	char path[] = "/tmp/dps-test-config-XXXXXX";
	int fd = mkstemp(path), rc;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, doc, strlen(doc)), (ssize_t)strlen(doc));
	close(fd);
	rc = dps_config_load(path, cfg, err, errlen);
	if (rc == 0)
		assert_string_equal(cfg->path, path);
	else /* "PATH:LINE:COL: ..." -> "LINE:COL: ..." */
		memmove(err, err + strlen(path) + 1, strlen(err + strlen(path) + 1) + 1);
	unlink(path);
	return rc;
}

/* AH and IPComp SAs run on the dataplane: loading a file for dpsecd
 * (start-up, --check, reload) takes them as the schema does. */
static void test_load_takes_ah_and_ipcomp_sas(void **state)
{
	static const char ah[] =
		PORT_LAN "sas:\n"
			 "  - spi: 0x1001\n"
			 "    direction: out\n"
			 "    proto: ah\n"
			 "    src: 192.0.2.1\n"
			 "    dst: 198.51.100.1\n"
			 "    integrity: {algorithm: hmac-sha2-256-128, key: \"0x" K32 "\"}\n";
	static const char ipcomp[] =
		PORT_LAN "sas:\n"
			 "  - {spi: 0xffff, direction: in, proto: ipcomp,\n"
			 "     mode: transport, src: 192.0.2.2, dst: 192.0.2.1}\n";
	struct dps_config cfg;
	char err[512];

	(void)state;
	parse_ok(ah, &cfg);
	dps_config_free(&cfg);
	/* AH and IPComp run on the dataplane: dpsecd takes them */
	assert_int_equal(load_doc(ah, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.sas[0].proto, DPS_PROTO_AH);
	dps_config_free(&cfg);
	assert_int_equal(load_doc(ipcomp, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.sas[0].proto, DPS_PROTO_IPCOMP);
	dps_config_free(&cfg);
	assert_int_equal(load_doc(PORT_LAN SA_OUT ENC_GCM, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.sas[0].proto, DPS_PROTO_ESP);
	dps_config_free(&cfg);
}

static void test_sa_ipcomp_and_transport(void **state)
{
	struct dps_config cfg;

	(void)state;
	/* IPComp: no keys, no sequence numbers, a 16-bit CPI. */
	parse_ok(PORT_LAN "sas:\n"
			  "  - {spi: 0xffff, direction: in, proto: ipcomp, mode: transport,\n"
			  "     src: \"2001:db8::2\", dst: \"2001:db8::1\"}\n",
		 &cfg);
	assert_int_equal(cfg.sas[0].spi, 0xffff);
	assert_int_equal(cfg.sas[0].proto, DPS_PROTO_IPCOMP);
	assert_int_equal(cfg.sas[0].mode, DPS_MODE_TRANSPORT);
	assert_int_equal(cfg.sas[0].src.family, AF_INET6);
	assert_int_equal(cfg.sas[0].replay_window, 0);
	assert_int_equal(cfg.sas[0].enc_key_len + cfg.sas[0].auth_key_len, 0);
	dps_config_free(&cfg);
}

static void test_sa_spi_is_unique_per_destination_and_proto(void **state)
{
	struct dps_config cfg;

	(void)state;
	/* Same SPI: other destination, then other protocol. */
	parse_ok(PORT_LAN SA_OUT ENC_GCM "  - spi: 4097\n"
					 "    direction: out\n"
					 "    src: 192.0.2.1\n"
					 "    dst: 198.51.100.2\n" ENC_GCM "  - spi: 0x1001\n"
					 "    direction: out\n"
					 "    proto: ah\n"
					 "    src: 192.0.2.1\n"
					 "    dst: 198.51.100.1\n" AUTH_SHA256,
		 &cfg);
	assert_int_equal(cfg.n_sas, 3);
	assert_int_equal(cfg.sas[1].spi, 0x1001);
	dps_config_free(&cfg);
}

static void test_policy_sets_every_key(void **state)
{
	struct dps_config cfg;
	const struct dps_policy *p;

	(void)state;
	parse_ok(PORT_LAN "policies:\n"
			  "  - direction: fwd\n"
			  "    priority: 4294967295\n"
			  "    src: 10.1.0.0/16\n"
			  "    dst: 10.2.3.0/24\n"
			  "    family: ipv4\n"
			  "    proto: tcp\n"
			  "    sport: 1024-65535\n"
			  "    dport: 443\n"
			  "    action: protect\n"
			  "    ipsec:\n"
			  "      - proto: ipcomp\n"
			  "        mode: transport\n"
			  "        level: use\n"
			  "      - proto: esp\n"
			  "        mode: tunnel\n"
			  "        level: unique\n"
			  "        reqid: 0x10\n"
			  "        tunnel: {src: \"2001:db8::1\", dst: \"2001:db8::2\"}\n"
			  "      - {proto: ah, mode: transport, level: require, reqid: 7}\n",
		 &cfg);
	assert_int_equal(cfg.n_policies, 1);
	p = &cfg.policies[0];
	assert_int_equal(p->id, 0);
	assert_int_equal(p->dir, DPS_DIR_FWD);
	assert_int_equal(p->priority, 0xffffffff);
	assert_string_equal(prefix_str(&p->sel.src), "10.1.0.0/16");
	assert_string_equal(prefix_str(&p->sel.dst), "10.2.3.0/24");
	assert_int_equal(p->sel.proto, IPPROTO_TCP);
	assert_int_equal(p->sel.sport_lo, 1024);
	assert_int_equal(p->sel.sport_hi, 65535);
	assert_int_equal(p->sel.dport_lo, 443);
	assert_int_equal(p->sel.dport_hi, 443);
	assert_int_equal(p->action, DPS_ACTION_PROTECT);
	assert_int_equal(p->n_reqs, 3);
	assert_int_equal(p->reqs[0].proto, DPS_PROTO_IPCOMP);
	assert_int_equal(p->reqs[0].mode, DPS_MODE_TRANSPORT);
	assert_int_equal(p->reqs[0].level, DPS_LEVEL_USE);
	assert_int_equal(p->reqs[0].reqid, 0);
	assert_int_equal(p->reqs[0].tun_src.family, 0);
	/* An IPv4 selector in an IPv6 tunnel. */
	assert_int_equal(p->reqs[1].proto, DPS_PROTO_ESP);
	assert_int_equal(p->reqs[1].mode, DPS_MODE_TUNNEL);
	assert_int_equal(p->reqs[1].level, DPS_LEVEL_UNIQUE);
	assert_int_equal(p->reqs[1].reqid, 16);
	assert_string_equal(addr_str(&p->reqs[1].tun_src), "2001:db8::1");
	assert_string_equal(addr_str(&p->reqs[1].tun_dst), "2001:db8::2");
	assert_int_equal(p->reqs[2].proto, DPS_PROTO_AH);
	assert_int_equal(p->reqs[2].level, DPS_LEVEL_REQUIRE);
	assert_int_equal(p->reqs[2].reqid, 7);
	dps_config_free(&cfg);
	assert_null(cfg.policies);
	assert_int_equal(cfg.n_policies, 0);
}

static void test_policy_defaults(void **state)
{
	struct dps_config cfg;
	const struct dps_policy *p;

	(void)state;
	parse_ok(PORT_LAN
		 "policies:\n"
		 "  - {direction: out, dst: \"2001:db8::/32\", action: bypass}\n"
		 "  - {direction: in, family: ipv4, action: discard}\n"
		 "  - {direction: in, src: 10.0.0.1, proto: icmp, icmp_type: 8, action: bypass}\n"
		 "  - direction: out\n"
		 "    dst: 10.0.0.0/8\n"
		 "    proto: 50\n"
		 "    action: protect\n" REQ_ESP,
		 &cfg);
	assert_int_equal(cfg.n_policies, 4);
	p = &cfg.policies[0];
	assert_int_equal(p->priority, 0);
	assert_int_equal(p->sel.src.addr.family, AF_INET6);
	assert_string_equal(prefix_str(&p->sel.src), "::/0");
	assert_string_equal(prefix_str(&p->sel.dst), "2001:db8::/32");
	assert_int_equal(p->sel.proto, 255);
	assert_int_equal(p->sel.sport_lo, 0);
	assert_int_equal(p->sel.sport_hi, 65535);
	assert_int_equal(p->sel.dport_lo, 0);
	assert_int_equal(p->sel.dport_hi, 65535);
	assert_int_equal(p->n_reqs, 0);
	p = &cfg.policies[1];
	assert_string_equal(prefix_str(&p->sel.src), "0.0.0.0/0");
	assert_string_equal(prefix_str(&p->sel.dst), "0.0.0.0/0");
	/* ICMP: type 8 only, any code. */
	p = &cfg.policies[2];
	assert_string_equal(prefix_str(&p->sel.src), "10.0.0.1/32");
	assert_string_equal(prefix_str(&p->sel.dst), "0.0.0.0/0");
	assert_int_equal(p->sel.proto, IPPROTO_ICMP);
	assert_int_equal(p->sel.sport_lo, 8);
	assert_int_equal(p->sel.sport_hi, 8);
	assert_int_equal(p->sel.dport_lo, 0);
	assert_int_equal(p->sel.dport_hi, 255);
	p = &cfg.policies[3];
	assert_int_equal(p->sel.proto, 50);
	assert_int_equal(p->n_reqs, 1);
	assert_int_equal(p->reqs[0].mode, DPS_MODE_TUNNEL);
	assert_int_equal(p->reqs[0].level, DPS_LEVEL_DEFAULT);
	assert_int_equal(p->reqs[0].reqid, 0);
	dps_config_free(&cfg);

	parse_ok(PORT_LAN "policies:\n"
			  "  - {direction: out, family: ipv6, proto: icmpv6, icmp_code: 1-4,\n"
			  "     action: bypass}\n",
		 &cfg);
	p = &cfg.policies[0];
	assert_int_equal(p->sel.proto, IPPROTO_ICMPV6);
	assert_int_equal(p->sel.sport_lo, 0);
	assert_int_equal(p->sel.sport_hi, 255);
	assert_int_equal(p->sel.dport_lo, 1);
	assert_int_equal(p->sel.dport_hi, 4);
	dps_config_free(&cfg);
}

static void test_policies_differing_only_in_direction_or_selector(void **state)
{
	struct dps_config cfg;

	(void)state;
	parse_ok(PORT_LAN
		 "policies:\n"
		 "  - {direction: out, dst: 10.0.0.0/8, action: bypass}\n"
		 "  - {direction: in, dst: 10.0.0.0/8, action: discard}\n"
		 "  - {direction: fwd, dst: 10.0.0.0/8, action: discard}\n"
		 "  - {direction: out, dst: 10.0.0.0/8, proto: udp, action: discard}\n"
		 "  - {direction: out, dst: 10.0.0.0/8, proto: udp, dport: 53, action: bypass}\n",
		 &cfg);
	assert_int_equal(cfg.n_policies, 5);
	dps_config_free(&cfg);
}

/* One policy per direction and selector, as in Linux's SPD: the store and
 * PF_KEY find policies by them, so a priority cannot tell two apart. */
static void test_policy_priority_does_not_tell_policies_apart(void **state)
{
	(void)state;
	assert_parse_error_at(
		PORT_LAN "policies:\n"
			 "  - {direction: out, dst: 10.0.0.0/8, action: bypass}\n"
			 "  - {direction: out, dst: 10.0.0.0/8, action: discard, priority: 1}\n",
		7, 5, "policies[1]");
	assert_error_says(PORT_LAN
			  "policies:\n"
			  "  - {direction: out, dst: 10.0.0.0/8, action: bypass, priority: 7}\n"
			  "  - {direction: out, dst: 10.0.0.0/8, action: discard}\n",
			  "same direction and selector as policies[0]");
}

/* ---- IPsec: the examples --------------------------------------------------------- */

static bool addr_eq(const struct dps_addr *a, const struct dps_addr *b)
{
	return !strcmp(addr_str(a), addr_str(b)) && a->family == b->family;
}

/* Every SA has its mirror: the peer's SA the other way, with the same transforms. */
static void assert_sa_pairs(const struct dps_config *cfg, const char *name)
{
	for (unsigned int i = 0; i < cfg->n_sas; i++) {
		const struct dps_sa *a = &cfg->sas[i];
		bool found = false;

		for (unsigned int j = 0; j < cfg->n_sas && !found; j++) {
			const struct dps_sa *b = &cfg->sas[j];

			found = b->dir != a->dir && addr_eq(&a->src, &b->dst) &&
				addr_eq(&a->dst, &b->src) && b->proto == a->proto &&
				b->mode == a->mode && b->reqid == a->reqid &&
				b->enc_alg == a->enc_alg && b->enc_key_len == a->enc_key_len &&
				b->auth_alg == a->auth_alg && b->esn == a->esn &&
				b->udp_encap == a->udp_encap && b->spi != a->spi &&
				/* AH has only an integrity key, IPComp none */
				(a->proto == DPS_PROTO_IPCOMP ||
				 (a->enc_key_len
					  ? memcmp(b->enc_key, a->enc_key, a->enc_key_len)
					  : memcmp(b->auth_key, a->auth_key, a->auth_key_len)));
		}
		if (!found)
			fail_msg("%s: sas[%u] has no mirror SA with its own key", name, i);
	}
}

/* Every transform a protect policy requests has an SA in the examples. */
static void assert_policies_have_sas(const struct dps_config *cfg, const char *name)
{
	unsigned int in = 0, out = 0;

	for (unsigned int i = 0; i < cfg->n_policies; i++) {
		const struct dps_policy *p = &cfg->policies[i];

		in += p->dir == DPS_DIR_IN && p->action == DPS_ACTION_PROTECT;
		out += p->dir == DPS_DIR_OUT && p->action == DPS_ACTION_PROTECT;
		for (unsigned int r = 0; r < p->n_reqs; r++) {
			const struct dps_ipsec_req *q = &p->reqs[r];
			bool found = false;

			for (unsigned int j = 0; j < cfg->n_sas && !found; j++) {
				const struct dps_sa *sa = &cfg->sas[j];

				found = sa->dir == (p->dir == DPS_DIR_OUT ? DPS_DIR_OUT
									  : DPS_DIR_IN) &&
					sa->proto == q->proto && sa->mode == q->mode &&
					(!q->reqid || sa->reqid == q->reqid) &&
					(q->mode == DPS_MODE_TRANSPORT ||
					 (addr_eq(&sa->src, &q->tun_src) &&
					  addr_eq(&sa->dst, &q->tun_dst)));
			}
			if (!found)
				fail_msg("%s: policies[%u].ipsec[%u] has no SA", name, i, r);
		}
	}
	if (!in || in != out)
		fail_msg("%s: %u inbound and %u outbound protect policies", name, in, out);
}

static void test_examples_validate(void **state)
{
	static const char *const expected[] = {
		"esp-tunnel-gcm.yaml",	"esp-transport-cbc-sha256.yaml",
		"esp-tunnel-natt.yaml", "ipv6-in-ipv4-tunnel.yaml",
		"ipcomp-tunnel.yaml",
	};
	unsigned int seen = 0, n = 0;
	struct dps_config cfg;
	struct dirent *de;
	char path[4096], err[512];
	DIR *dir;

	(void)state;
	if (!examples_dir)
		fail_msg("no path to config/examples (argv[2])");
	assert_non_null(dir = opendir(examples_dir));
	while ((de = readdir(dir))) {
		size_t len = strlen(de->d_name);

		if (len < 5 || strcmp(de->d_name + len - 5, ".yaml"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", examples_dir, de->d_name);
		if (dps_config_load(path, &cfg, err, sizeof(err)))
			fail_msg("%s", err);
		assert_true(cfg.n_sas >= 2);
		assert_sa_pairs(&cfg, de->d_name);
		assert_policies_have_sas(&cfg, de->d_name);
		dps_config_free(&cfg);
		for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
			if (!strcmp(de->d_name, expected[i]))
				seen |= 1u << i;
		n++;
	}
	closedir(dir);
	assert_int_equal(seen, (1u << (sizeof(expected) / sizeof(expected[0]))) - 1);
	assert_true(n >= 4);
}

/* ---- IPsec: crypto and ipsec sections --------------------------------------------- */

static void test_rejects_duplicate_crypto_device(void **state)
{
	(void)state;
	assert_parse_error_at("crypto:\n"
			      "  devices: [a, b, a]\n" PORT_LAN,
			      2, 19, "crypto.devices[2]");
	/* A port's device cannot be a crypto device too. */
	assert_parse_error_at(PORT_LAN "crypto:\n"
				       "  devices:\n"
				       "    - crypto_openssl\n"
				       "    - d0\n",
			      8, 7, "crypto.devices[1]");
}

static void test_compress_section(void **state)
{
	struct dps_config cfg;

	(void)state;
	/* defaults: ISA-L, then zlib; 90 bytes, Linux's DEFLATE threshold */
	parse_ok(PORT_LAN, &cfg);
	assert_int_equal(cfg.compress.n_devices, 2);
	assert_string_equal(cfg.compress.devices[0], "compress_isal");
	assert_string_equal(cfg.compress.devices[1], "compress_zlib");
	assert_int_equal(cfg.compress.min_size, 90);
	dps_config_free(&cfg);
	parse_ok(PORT_LAN "compress: {devices: [\"0000:3d:00.0\"], min_size: 0}\n", &cfg);
	assert_int_equal(cfg.compress.n_devices, 1);
	assert_string_equal(cfg.compress.devices[0], "0000:3d:00.0");
	assert_int_equal(cfg.compress.min_size, 0);
	dps_config_free(&cfg);
	parse_ok(PORT_LAN "compress: {devices: []}\n", &cfg);
	assert_int_equal(cfg.compress.n_devices, 0);
	dps_config_free(&cfg);
	assert_parse_error(PORT_LAN "compress: {devices: [compress_zlib, compress_zlib]}\n", 5,
			   "compress.devices[1]");
	/* not a crypto device's nor a port's */
	assert_parse_error(PORT_LAN "compress: {devices: [crypto_openssl]}\n", 5,
			   "compress.devices[0]");
	assert_parse_error(PORT_LAN "compress: {devices: [d0]}\n", 5, "compress.devices[0]");
	assert_parse_error(PORT_LAN "compress: {min_size: 65536}\n", 5, "compress.min_size");
	assert_parse_error(PORT_LAN "compress: {level: 9}\n", 5, "compress.level");
}

static void test_rejects_bad_crypto_device(void **state)
{
	char doc[1024], dev[257];

	(void)state;
	assert_parse_error(PORT_LAN "crypto:\n"
				    "  devices: [\"crypto_aesni_mb, socket_id=0\"]\n",
			   6, "crypto.devices[0]");
	assert_parse_error(PORT_LAN "crypto:\n"
				    "  devices: [\"\"]\n",
			   6, "crypto.devices[0]");
	assert_parse_error(PORT_LAN "crypto:\n"
				    "  devices: crypto_openssl\n",
			   6, "crypto.devices");
	memset(dev, 'c', 256);
	dev[256] = '\0';
	snprintf(doc, sizeof(doc), PORT_LAN "crypto:\n  devices:\n    - %s\n", dev);
	assert_parse_error_at(doc, 7, 7, "crypto.devices[0]");
}

static void test_rejects_crypto_device_count(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "crypto:\n"
				       "  devices: []\n",
			      6, 12, "crypto.devices");
	assert_parse_error_at(PORT_LAN "crypto:\n"
				       "  devices: [c0, c1, c2, c3, c4, c5, c6, c7, c8]\n",
			      6, 45, "crypto.devices[8]");
}

static void test_rejects_bad_crypto_settings(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "crypto:\n"
				       "  sessions: 63\n",
			      6, 13, "crypto.sessions");
	assert_parse_error(PORT_LAN "crypto:\n"
				    "  sessions: 16777217\n",
			   6, "crypto.sessions");
	assert_parse_error(PORT_LAN "crypto:\n"
				    "  cpu_crypto: sometimes\n",
			   6, "crypto.cpu_crypto");
	assert_parse_error_at(PORT_LAN "crypto:\n"
				       "  engine: imb\n",
			      6, 11, "crypto.engine");
	assert_parse_error_at(PORT_LAN "crypto:\n"
				       "  sessions: 64\n"
				       "  session_pool: 64\n",
			      7, 3, "crypto.session_pool");
	assert_parse_error(PORT_LAN "crypto: [crypto_openssl]\n", 5, "crypto");
}

static void test_rejects_bad_def_policy(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "ipsec:\n"
				       "  def_policy: drop\n",
			      6, 15, "ipsec.def_policy");
	assert_parse_error(PORT_LAN "ipsec:\n"
				    "  def_policy: [discard]\n",
			   6, "ipsec.def_policy");
	assert_parse_error_at(PORT_LAN "ipsec:\n"
				       "  def_policy:\n"
				       "    ipv4: discard\n"
				       "    ipv6: protect\n",
			      8, 11, "ipsec.def_policy.ipv6");
	assert_parse_error_at(PORT_LAN "ipsec:\n"
				       "  def_policy: {inet: discard}\n",
			      6, 16, "ipsec.def_policy.inet");
	assert_parse_error(PORT_LAN "ipsec:\n"
				    "  def_policy: {ipv4: discard, ipv4: bypass}\n",
			   6, "ipsec.def_policy.ipv4");
}

static void test_rejects_bad_ipsec_defaults(void **state)
{
	(void)state;
	/* Levels are use or require: default and unique mean nothing system-wide. */
	assert_parse_error(PORT_LAN "ipsec:\n"
				    "  esp_trans_deflev: unique\n",
			   6, "ipsec.esp_trans_deflev");
	assert_parse_error(PORT_LAN "ipsec:\n"
				    "  ah_net_deflev: default\n",
			   6, "ipsec.ah_net_deflev");
	assert_parse_error(PORT_LAN "ipsec:\n"
				    "  esp_net_deflev: 2\n",
			   6, "ipsec.esp_net_deflev");
	assert_parse_error(PORT_LAN "ipsec:\n"
				    "  ah_trans_deflev: Require\n",
			   6, "ipsec.ah_trans_deflev");
	assert_parse_error(PORT_LAN "ipsec:\n"
				    "  dfbit: keep\n",
			   6, "ipsec.dfbit");
	assert_parse_error(PORT_LAN "ipsec:\n"
				    "  ecn: 1\n",
			   6, "ipsec.ecn");
	assert_parse_error(PORT_LAN "ipsec:\n"
				    "  ah_cleartos: \"yes\"\n",
			   6, "ipsec.ah_cleartos");
	assert_parse_error(PORT_LAN "ipsec:\n"
				    "  def_policy: discard\n"
				    "  replay: 64\n",
			   7, "ipsec.replay");
}

static void test_rejects_bad_default_replay_window(void **state)
{
	(void)state;
	/* 0 or 64..65536: anything else is too small, too big or not a number. */
	assert_parse_error_at(PORT_LAN "ipsec:\n"
				       "  replay_window: 63\n",
			      6, 18, "ipsec.replay_window");
	assert_parse_error(PORT_LAN "ipsec:\n"
				    "  replay_window: 32\n",
			   6, "ipsec.replay_window");
	assert_parse_error(PORT_LAN "ipsec:\n"
				    "  replay_window: 65537\n",
			   6, "ipsec.replay_window");
	assert_parse_error(PORT_LAN "ipsec:\n"
				    "  replay_window: off\n",
			   6, "ipsec.replay_window");
	assert_error_says(PORT_LAN "ipsec:\n  replay_window: 1\n", "0 (off) or 64..65536");
}

/* ---- IPsec: SAs ---------------------------------------------------------------------- */

static void test_rejects_sa_without_required_keys(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "sas:\n"
				       "  - direction: out\n"
				       "    src: 192.0.2.1\n"
				       "    dst: 198.51.100.1\n" ENC_GCM,
			      6, 5, "sas[0].spi");
	assert_parse_error_at(PORT_LAN "sas:\n"
				       "  - spi: 0x1001\n"
				       "    src: 192.0.2.1\n"
				       "    dst: 198.51.100.1\n" ENC_GCM,
			      6, 5, "sas[0].direction");
	assert_parse_error_at(PORT_LAN "sas:\n"
				       "  - spi: 0x1001\n"
				       "    direction: out\n"
				       "    dst: 198.51.100.1\n" ENC_GCM,
			      6, 5, "sas[0].src");
	assert_parse_error_at(PORT_LAN "sas:\n"
				       "  - spi: 0x1001\n"
				       "    direction: out\n"
				       "    src: 192.0.2.1\n" ENC_GCM,
			      6, 5, "sas[0].dst");
	/* The second SA: the index in the path is the one at fault. */
	assert_parse_error_at(PORT_LAN SA_OUT ENC_GCM "  - spi: 0x1002\n"
						      "    direction: in\n"
						      "    src: 198.51.100.1\n",
			      11, 5, "sas[1].dst");
}

static void test_rejects_reserved_or_out_of_range_spi(void **state)
{
	static const char *const bad[] = {"0",
					  "255",
					  "0xff",
					  "0x00FF",
					  "4294967296",
					  "0x100000000",
					  "0x00000000000000000000001000000000"};
	char doc[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(doc, sizeof(doc),
			 PORT_LAN "sas:\n"
				  "  - spi: %s\n"
				  "    direction: out\n"
				  "    src: 192.0.2.1\n"
				  "    dst: 198.51.100.1\n" ENC_GCM,
			 bad[i]);
		assert_parse_error_at(doc, 6, 10, "sas[0].spi");
	}
	assert_error_says(PORT_LAN "sas:\n  - spi: 0xff\n",
			  "0xff is out of range 0x100..0xffffffff");
	assert_error_says(PORT_LAN "sas:\n  - spi: 255\n", "255 is out of range 256..4294967295");
}

static void test_rejects_malformed_spi(void **state)
{
	static const char *const bad[] = {
		"0x",  "0xg1",	 "\"0x1001\"",	    "'4097'", "01001",	  "-4097", "0x-1",
		"1e4", "4097.0", "0b1000000000001", "0x 1",   "[0x1001]", "~"};
	char doc[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(doc, sizeof(doc),
			 PORT_LAN "sas:\n"
				  "  - spi: %s\n"
				  "    direction: out\n"
				  "    src: 192.0.2.1\n"
				  "    dst: 198.51.100.1\n" ENC_GCM,
			 bad[i]);
		assert_parse_error_at(doc, 6, 10, "sas[0].spi");
	}
}

static void test_rejects_bad_sa_enums(void **state)
{
	(void)state;
	/* An SA is one-way: fwd is for policies. */
	assert_parse_error_at(PORT_LAN "sas:\n"
				       "  - spi: 0x1001\n"
				       "    direction: fwd\n",
			      7, 16, "sas[0].direction");
	assert_parse_error(PORT_LAN SA_OUT "    proto: esp-udp\n" ENC_GCM, 10, "sas[0].proto");
	assert_parse_error(PORT_LAN SA_OUT "    proto: ESP\n" ENC_GCM, 10, "sas[0].proto");
	assert_parse_error(PORT_LAN SA_OUT "    mode: beet\n" ENC_GCM, 10, "sas[0].mode");
	assert_parse_error(PORT_LAN SA_OUT ENC_GCM "    dfbit: on\n", 11, "sas[0].dfbit");
	assert_parse_error(PORT_LAN SA_OUT ENC_GCM "    esn: maybe\n", 11, "sas[0].esn");
	assert_parse_error_at(PORT_LAN SA_OUT ENC_GCM "    salt: 0x1\n", 11, 5, "sas[0].salt");
}

static void test_rejects_bad_sa_endpoints(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "sas:\n"
				       "  - spi: 0x1001\n"
				       "    direction: out\n"
				       "    src: 192.0.2.1\n"
				       "    dst: \"2001:db8::1\"\n" ENC_GCM,
			      9, 10, "sas[0].dst");
	assert_parse_error_at(PORT_LAN "sas:\n"
				       "  - spi: 0x1001\n"
				       "    direction: out\n"
				       "    src: 192.0.2.1\n"
				       "    dst: 192.0.2.1\n" ENC_GCM,
			      9, 10, "sas[0].dst");
	assert_parse_error(PORT_LAN "sas:\n"
				    "  - spi: 0x1001\n"
				    "    direction: out\n"
				    "    src: 224.0.0.5\n"
				    "    dst: 198.51.100.1\n" ENC_GCM,
			   8, "sas[0].src");
	assert_parse_error(PORT_LAN "sas:\n"
				    "  - spi: 0x1001\n"
				    "    direction: out\n"
				    "    src: 192.0.2.0/24\n"
				    "    dst: 198.51.100.1\n" ENC_GCM,
			   8, "sas[0].src");
	assert_parse_error(PORT_LAN "sas:\n"
				    "  - spi: 0x1001\n"
				    "    direction: out\n"
				    "    src: 192.0.2.1\n"
				    "    dst: \"::\"\n" ENC_GCM,
			   9, "sas[0].dst");
}

static void test_rejects_bad_reqid(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN SA_OUT "    reqid: 0x100000000\n" ENC_GCM, 10, 12,
			      "sas[0].reqid");
	assert_parse_error(PORT_LAN SA_OUT "    reqid: -1\n" ENC_GCM, 10, "sas[0].reqid");
}

static void test_rejects_transforms_the_proto_does_not_have(void **state)
{
	(void)state;
	/* ESP must say how it encrypts: reported at the SA, which lacks the key. */
	assert_parse_error_at(PORT_LAN SA_OUT AUTH_SHA256, 6, 5, "sas[0].encryption");
	/* AH does not encrypt: reported at the key that should not be there. */
	assert_parse_error_at(PORT_LAN SA_OUT "    proto: ah\n"
					      "    integrity:\n"
					      "      algorithm: hmac-sha1-96\n"
					      "      key: " K20 "\n"
					      "    encryption:\n"
					      "      algorithm: null\n",
			      14, 5, "sas[0].encryption");
	assert_parse_error_at(PORT_LAN SA_OUT "    proto: ah\n", 6, 5, "sas[0].integrity");
	assert_parse_error_at(PORT_LAN SA_OUT "    proto: ah\n"
					      "    integrity: {algorithm: none}\n",
			      11, 28, "sas[0].integrity.algorithm");
	/* IPComp SAs have no keys. */
	assert_parse_error_at(PORT_LAN SA_OUT "    proto: ipcomp\n" ENC_CBC, 11, 5,
			      "sas[0].encryption");
	assert_parse_error_at(PORT_LAN SA_OUT "    proto: ipcomp\n" AUTH_SHA256, 11, 5,
			      "sas[0].integrity");
}

static void test_rejects_integrity_mismatching_encryption(void **state)
{
	(void)state;
	/* Combined-mode ciphers authenticate by themselves. */
	assert_parse_error_at(PORT_LAN SA_OUT ENC_GCM AUTH_SHA256, 11, 5, "sas[0].integrity");
	assert_parse_error(PORT_LAN SA_OUT
			   "    encryption: {algorithm: chacha20-poly1305, key: " K36
			   "}\n" AUTH_SHA256,
			   11, "sas[0].integrity");
	/* The others need it: CBC and CTR (RFC 8221), null (RFC 4303). */
	assert_parse_error_at(PORT_LAN SA_OUT ENC_CBC, 6, 5, "sas[0].integrity");
	assert_parse_error_at(PORT_LAN SA_OUT "    encryption: {algorithm: aes-ctr-128, key: " K20
					      "}\n",
			      6, 5, "sas[0].integrity");
	assert_parse_error_at(PORT_LAN SA_OUT "    encryption: {algorithm: null}\n", 6, 5,
			      "sas[0].integrity");
	assert_parse_error_at(PORT_LAN SA_OUT ENC_CBC "    integrity:\n"
						      "      algorithm: none\n",
			      12, 18, "sas[0].integrity.algorithm");
	assert_error_says(PORT_LAN SA_OUT ENC_CBC, "ESP with aes-cbc-128 needs one");
}

static void test_rejects_unknown_algorithm(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN SA_OUT "    encryption:\n"
					      "      algorithm: aes-gcm-64\n"
					      "      key: " K20 "\n",
			      11, 18, "sas[0].encryption.algorithm");
	assert_parse_error(PORT_LAN SA_OUT "    encryption: {algorithm: AES-GCM-128, key: " K20
					   "}\n",
			   10, "sas[0].encryption.algorithm");
	assert_parse_error(PORT_LAN SA_OUT "    encryption: {algorithm: 3des-cbc, key: " K24 "}\n",
			   10, "sas[0].encryption.algorithm");
	assert_parse_error(PORT_LAN SA_OUT ENC_CBC
			   "    integrity: {algorithm: hmac-md5-96, key: " K16 "}\n",
			   11, "sas[0].integrity.algorithm");
	assert_parse_error(PORT_LAN SA_OUT ENC_CBC
			   "    integrity: {algorithm: hmac-sha2-256, key: " K32 "}\n",
			   11, "sas[0].integrity.algorithm");
	assert_parse_error_at(PORT_LAN SA_OUT "    encryption:\n"
					      "      key: " K20 "\n",
			      11, 7, "sas[0].encryption.algorithm");
	assert_parse_error(PORT_LAN SA_OUT "    encryption: aes-gcm-128\n", 10,
			   "sas[0].encryption");
	assert_parse_error(PORT_LAN SA_OUT ENC_GCM "    encryption: {algorithm: aes-gcm-128}\n", 11,
			   "sas[0].encryption");
}

static void test_rejects_key_of_wrong_length(void **state)
{
	(void)state;
	/* aes-gcm-128 takes its salt too: 16 bytes are 4 short. */
	assert_parse_error_at(PORT_LAN SA_OUT "    encryption:\n"
					      "      algorithm: aes-gcm-128\n"
					      "      key: \"" K16 "\"\n",
			      12, 12, "sas[0].encryption.key");
	assert_error_says(
		PORT_LAN SA_OUT "    encryption: {algorithm: aes-gcm-128, key: " K16 "}\n",
		"aes-gcm-128 takes 20 bytes (a 16-byte key, then a 4-byte salt), found 16");
	assert_error_says(PORT_LAN SA_OUT "    encryption: {algorithm: chacha20-poly1305, key: " K32
					  "}\n",
			  "chacha20-poly1305 takes 36 bytes (a 32-byte key, then a 4-byte salt)");
	assert_error_says(PORT_LAN SA_OUT "    encryption: {algorithm: aes-cbc-256, key: " K36
					  "}\n",
			  "aes-cbc-256 takes a 32-byte key, found 36 bytes");
	assert_parse_error(PORT_LAN SA_OUT "    encryption: {algorithm: aes-ctr-256, key: " K32
					   "}\n",
			   10, "sas[0].encryption.key");
	assert_parse_error(PORT_LAN SA_OUT "    encryption: {algorithm: aes-gmac-192, key: " K24
					   "}\n",
			   10, "sas[0].encryption.key");
	assert_parse_error(PORT_LAN SA_OUT
			   "    encryption: {algorithm: null, key: \"00\"}\n" AUTH_SHA256,
			   10, "sas[0].encryption.key");
	assert_error_says(PORT_LAN SA_OUT "    encryption: {algorithm: null, key: \"00\"}\n",
			  "null takes no key, found 1 byte");
	assert_parse_error(PORT_LAN SA_OUT ENC_CBC
			   "    integrity: {algorithm: hmac-sha1-96, key: " K16 "}\n",
			   11, "sas[0].integrity.key");
	assert_parse_error(PORT_LAN SA_OUT ENC_CBC
			   "    integrity: {algorithm: hmac-sha2-384-192, key: " K64 "}\n",
			   11, "sas[0].integrity.key");
	assert_parse_error(PORT_LAN SA_OUT ENC_GCM "    integrity: {algorithm: none, key: " K16
						   "}\n",
			   11, "sas[0].integrity.key");
}

static void test_rejects_missing_key(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN SA_OUT "    encryption:\n"
					      "      algorithm: aes-cbc-256\n" AUTH_SHA256,
			      11, 7, "sas[0].encryption.key");
	assert_parse_error_at(PORT_LAN SA_OUT ENC_CBC "    integrity: {algorithm: hmac-sha1-96}\n",
			      11, 16, "sas[0].integrity.key");
	assert_error_says(PORT_LAN SA_OUT ENC_CBC "    integrity: {algorithm: hmac-sha1-96}\n",
			  "missing required key (hmac-sha1-96 takes 20 bytes)");
}

static void test_rejects_malformed_key(void **state)
{
	static const char *const bad[] = {
		"\"0x000102030405060708090a0b0c0d0e0g\"",  /* not hex */
		"\"0x000102030405060708090a0b0c0d0e0\"",   /* odd */
		"\":000102030405060708090a0b0c0d0e0f\"",   /* ':' first */
		"\"000102030405060708090a0b0c0d0e0f:\"",   /* ':' last */
		"\"0001::02030405060708090a0b0c0d0e0f\"",  /* '::' */
		"\"0:00102030405060708090a0b0c0d0e0f\"",   /* ':' within a byte */
		"\"0x:000102030405060708090a0b0c0d0e0f\"", /* ':' after 0x */
		"\"00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f\"",
		"\"x000102030405060708090a0b0c0d0e0f\"",
		"\"0x0x000102030405060708090a0b0c0d0e0f\"",
		"\"" K64 "00\"", /* longer than any key */
		"[" K16 "]",
		"{k: " K16 "}",
	};
	struct dps_config cfg;
	char doc[1024], err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(doc, sizeof(doc),
			 PORT_LAN SA_OUT "    encryption:\n"
					 "      algorithm: aes-cbc-128\n"
					 "      key: %s\n" AUTH_SHA256,
			 bad[i]);
		assert_parse_error_at(doc, 12, 12, "sas[0].encryption.key");
		/* Keys are secrets: no message quotes one. */
		assert_int_equal(parse(doc, &cfg, err, sizeof(err)), -1);
		if (strstr(err, "0102030405") || strstr(err, "0a0b0c"))
			fail_msg("the message quotes the key: %s", err);
	}
	assert_error_says(PORT_LAN SA_OUT "    encryption: {algorithm: aes-cbc-128, key: 00zz}\n",
			  "character 3 is not a hex digit");
}

static void test_rejects_bad_sa_replay_window(void **state)
{
	struct dps_config cfg;

	(void)state;
	assert_parse_error_at(PORT_LAN SA_OUT ENC_GCM "    replay_window: 31\n", 11, 20,
			      "sas[0].replay_window");
	assert_parse_error(PORT_LAN SA_OUT ENC_GCM "    replay_window: 65537\n", 11,
			   "sas[0].replay_window");
	assert_parse_error(PORT_LAN SA_OUT ENC_GCM "    replay_window: -64\n", 11,
			   "sas[0].replay_window");
	/* 0 turns anti-replay off, 32 is RFC 4303's minimum for the SA itself. */
	parse_ok(PORT_LAN SA_OUT ENC_GCM "    replay_window: 0\n", &cfg);
	assert_int_equal(cfg.sas[0].replay_window, 0);
	dps_config_free(&cfg);
	/* IPComp has no sequence numbers. */
	assert_parse_error_at(PORT_LAN SA_OUT "    proto: ipcomp\n"
					      "    replay_window: 0\n",
			      11, 5, "sas[0].replay_window");
	assert_parse_error_at(PORT_LAN SA_OUT "    proto: ipcomp\n"
					      "    esn: false\n",
			      11, 5, "sas[0].esn");
}

static void test_rejects_ipcomp_cpi_above_16_bits(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "sas:\n"
				       "  - spi: 0x10000\n"
				       "    direction: out\n"
				       "    proto: ipcomp\n"
				       "    src: 192.0.2.1\n"
				       "    dst: 198.51.100.1\n",
			      6, 10, "sas[0].spi");
}

static void test_rejects_bad_encap(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN SA_OUT "    proto: ah\n" AUTH_SHA256 "    encap:\n"
					      "      type: udp\n",
			      12, 5, "sas[0].encap");
	assert_parse_error_at(PORT_LAN SA_OUT "    proto: ipcomp\n"
					      "    encap: {type: udp}\n",
			      11, 5, "sas[0].encap");
	/* RFC 8229 (TCP) is not supported: udp is the only type, and must be said. */
	assert_parse_error_at(PORT_LAN SA_OUT ENC_GCM "    encap:\n"
						      "      type: tcp\n",
			      12, 13, "sas[0].encap.type");
	assert_parse_error_at(PORT_LAN SA_OUT ENC_GCM "    encap:\n"
						      "      sport: 4500\n",
			      12, 7, "sas[0].encap.type");
	assert_parse_error(PORT_LAN SA_OUT ENC_GCM "    encap: {type: udp, sport: 0}\n", 11,
			   "sas[0].encap.sport");
	assert_parse_error(PORT_LAN SA_OUT ENC_GCM "    encap: {type: udp, dport: 65536}\n", 11,
			   "sas[0].encap.dport");
	assert_parse_error(PORT_LAN SA_OUT ENC_GCM "    encap: udp\n", 11, "sas[0].encap");
}

static void test_rejects_bad_outer_header_settings(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN SA_OUT ENC_GCM "    ttl: 0\n", 11, 10, "sas[0].ttl");
	assert_parse_error(PORT_LAN SA_OUT ENC_GCM "    ttl: 256\n", 11, "sas[0].ttl");
	/* Transport mode adds no outer header to put them in. */
	assert_parse_error_at(PORT_LAN SA_OUT "    mode: transport\n" ENC_GCM "    ttl: 64\n", 12,
			      5, "sas[0].ttl");
	assert_parse_error_at(PORT_LAN SA_OUT "    mode: transport\n" ENC_GCM "    dfbit: copy\n",
			      12, 5, "sas[0].dfbit");
}

static void test_rejects_bad_lifetime(void **state)
{
	struct dps_config cfg;

	(void)state;
	assert_parse_error_at(PORT_LAN SA_OUT ENC_GCM "    lifetime:\n"
						      "      soft: {bytes: 2000, packets: 10}\n"
						      "      hard: {bytes: 1000, packets: 10}\n",
			      12, 21, "sas[0].lifetime.soft.bytes");
	assert_parse_error(PORT_LAN SA_OUT ENC_GCM "    lifetime:\n"
						   "      hard:\n"
						   "        use_s: 60\n"
						   "      soft:\n"
						   "        use_s: 61\n",
			   15, "sas[0].lifetime.soft.use_s");
	assert_error_says(PORT_LAN SA_OUT ENC_GCM
			  "    lifetime: {soft: {add_s: 61}, hard: {add_s: 60}}\n",
			  "61 is above the hard limit 60");
	/* A zero on either side is "no limit": nothing to compare. */
	parse_ok(PORT_LAN SA_OUT ENC_GCM "    lifetime: {soft: {packets: 5}, hard: {bytes: 1}}\n",
		 &cfg);
	assert_int_equal(cfg.sas[0].soft.packets, 5);
	assert_int_equal(cfg.sas[0].hard.bytes, 1);
	dps_config_free(&cfg);
	assert_parse_error(PORT_LAN SA_OUT ENC_GCM
			   "    lifetime: {soft: {bytes: 18446744073709551616}}\n",
			   11, "sas[0].lifetime.soft.bytes");
	assert_parse_error_at(PORT_LAN SA_OUT ENC_GCM "    lifetime:\n"
						      "      soft: {seconds: 10}\n",
			      12, 14, "sas[0].lifetime.soft.seconds");
	assert_parse_error_at(PORT_LAN SA_OUT ENC_GCM "    lifetime:\n"
						      "      medium: {bytes: 10}\n",
			      12, 7, "sas[0].lifetime.medium");
	assert_parse_error(PORT_LAN SA_OUT ENC_GCM "    lifetime: 3600\n", 11, "sas[0].lifetime");
}

static void test_rejects_duplicate_sa(void **state)
{
	(void)state;
	/* (SPI, destination, protocol) finds an SA: SPI 4097 is 0x1001 again. */
	assert_parse_error_at(PORT_LAN SA_OUT ENC_GCM "  - spi: 4097\n"
						      "    direction: in\n"
						      "    src: 203.0.113.1\n"
						      "    dst: 198.51.100.1\n" ENC_GCM,
			      11, 10, "sas[1].spi");
	assert_error_says(PORT_LAN SA_OUT ENC_GCM SA_OUT_2 ENC_GCM,
			  "0x1001 is already the SPI of sas[0] (esp to 198.51.100.1)");
}

static void test_rejects_bad_sas_section(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "sas: {spi: 1}\n", 5, 6, "sas");
	assert_parse_error_at(PORT_LAN "sas:\n  - 0x1001\n", 6, 5, "sas[0]");
}

/* ---- IPsec: policies --------------------------------------------------------------- */

static void test_rejects_policy_without_required_keys(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN POL_OUT, 6, 5, "policies[0].action");
	assert_parse_error_at(PORT_LAN "policies:\n"
				       "  - src: 10.1.0.0/16\n"
				       "    action: discard\n",
			      6, 5, "policies[0].direction");
	/* Nothing gives the family: neither src, nor dst, nor family. */
	assert_parse_error_at(PORT_LAN "policies:\n"
				       "  - direction: out\n"
				       "    proto: tcp\n"
				       "    action: discard\n",
			      6, 5, "policies[0].family");
}

static void test_rejects_bad_policy_enums(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "policies:\n"
				       "  - direction: both\n"
				       "    family: ipv4\n"
				       "    action: discard\n",
			      6, 16, "policies[0].direction");
	assert_parse_error(PORT_LAN POL_OUT "    action: drop\n", 9, "policies[0].action");
	assert_parse_error(PORT_LAN POL_OUT "    action: ipsec\n", 9, "policies[0].action");
	assert_parse_error(PORT_LAN "policies:\n"
				    "  - direction: out\n"
				    "    family: inet6\n"
				    "    action: discard\n",
			   7, "policies[0].family");
	assert_parse_error(PORT_LAN POL_OUT "    priority: 4294967296\n"
					    "    action: discard\n",
			   9, "policies[0].priority");
	assert_parse_error(PORT_LAN POL_OUT "    priority: 0x10\n"
					    "    action: discard\n",
			   9, "policies[0].priority");
	assert_parse_error_at(PORT_LAN POL_OUT "    action: discard\n"
					       "    id: 8\n",
			      10, 5, "policies[0].id");
}

static void test_rejects_unique_without_reqid(void **state)
{
	(void)state;
	/* unique binds the policy to the SA with its reqid: without one it binds nothing */
	assert_parse_error(PORT_LAN POL_OUT "    action: protect\n"
					    "    ipsec: [{proto: esp, level: unique, tunnel: "
					    "{src: 192.0.2.1, dst: 198.51.100.1}}]\n",
			   10, "policies[0].ipsec[0].level");
}

static void test_rejects_selector_of_two_families(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "policies:\n"
				       "  - direction: out\n"
				       "    src: 10.1.0.0/16\n"
				       "    dst: \"2001:db8::/32\"\n"
				       "    action: discard\n",
			      8, 10, "policies[0].dst");
	assert_parse_error_at(PORT_LAN POL_OUT "    family: ipv6\n"
					       "    action: discard\n",
			      9, 13, "policies[0].family");
	assert_parse_error(PORT_LAN "policies:\n"
				    "  - direction: out\n"
				    "    dst: \"2001:db8::/32\"\n"
				    "    family: ipv4\n"
				    "    action: discard\n",
			   8, "policies[0].family");
	assert_error_says(PORT_LAN POL_OUT "    family: ipv6\n    action: discard\n",
			  "\"ipv6\" does not match src, an IPv4 prefix");
}

static void test_rejects_bad_selector_prefix(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "policies:\n"
				       "  - direction: out\n"
				       "    src: 10.1.0.1/16\n"
				       "    action: discard\n",
			      7, 10, "policies[0].src");
	assert_parse_error(PORT_LAN "policies:\n"
				    "  - direction: out\n"
				    "    dst: any\n"
				    "    action: discard\n",
			   7, "policies[0].dst");
	assert_parse_error(PORT_LAN "policies:\n"
				    "  - direction: out\n"
				    "    dst: 10.0.0.0/33\n"
				    "    action: discard\n",
			   7, "policies[0].dst");
}

static void test_rejects_bad_selector_proto(void **state)
{
	static const char *const bad[] = {"gre",   "255", "256", "-1",
					  "\"6\"", "TCP", "6.0", "[tcp]"};
	char doc[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(doc, sizeof(doc), PORT_LAN POL_OUT "    proto: %s\n    action: discard\n",
			 bad[i]);
		assert_parse_error_at(doc, 9, 12, "policies[0].proto");
	}
	assert_error_says(PORT_LAN POL_OUT "    proto: gre\n    action: discard\n",
			  "is neither a protocol number 0..254 nor one of: any, tcp, udp");
}

static void test_rejects_icmp_of_the_other_family(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "policies:\n"
				       "  - direction: out\n"
				       "    family: ipv6\n"
				       "    proto: icmp\n"
				       "    action: bypass\n",
			      8, 12, "policies[0].proto");
	assert_parse_error(PORT_LAN "policies:\n"
				    "  - direction: out\n"
				    "    family: ipv6\n"
				    "    proto: 1\n"
				    "    action: bypass\n",
			   8, "policies[0].proto");
	assert_parse_error(PORT_LAN POL_OUT "    proto: icmpv6\n"
					    "    action: bypass\n",
			   9, "policies[0].proto");
}

static void test_rejects_fields_the_proto_does_not_have(void **state)
{
	(void)state;
	/* Ports need TCP, UDP or SCTP: reported at the key that should not be there. */
	assert_parse_error_at(PORT_LAN POL_OUT "    sport: 80\n"
					       "    action: discard\n",
			      9, 5, "policies[0].sport");
	assert_parse_error_at(PORT_LAN POL_OUT "    proto: icmp\n"
					       "    action: discard\n"
					       "    dport: 80\n",
			      11, 5, "policies[0].dport");
	assert_parse_error(PORT_LAN POL_OUT "    proto: 47\n"
					    "    dport: 80\n"
					    "    action: discard\n",
			   10, "policies[0].dport");
	/* Types and codes need ICMP. */
	assert_parse_error_at(PORT_LAN POL_OUT "    proto: udp\n"
					       "    icmp_type: 8\n"
					       "    action: discard\n",
			      10, 5, "policies[0].icmp_type");
	assert_parse_error(PORT_LAN POL_OUT "    icmp_code: 0\n"
					    "    action: discard\n",
			   9, "policies[0].icmp_code");
}

static void test_rejects_bad_port_range(void **state)
{
	static const char *const bad[] = {
		"0",	      "65536",	"2000-1000", "\"1000 - 2000\"", "80-",	   "-80",
		"0x50",	      "\"80\"", "1-2-3",     "0-1023",		"1-65536", "08-80",
		"1000--2000", "http",	"[80]",	     "80,443",
	};
	char doc[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(doc, sizeof(doc),
			 PORT_LAN POL_OUT "    proto: sctp\n    sport: %s\n    action: discard\n",
			 bad[i]);
		assert_parse_error_at(doc, 10, 12, "policies[0].sport");
	}
	assert_parse_error(PORT_LAN POL_OUT "    proto: icmp\n"
					    "    icmp_type: 256\n"
					    "    action: discard\n",
			   10, "policies[0].icmp_type");
	assert_parse_error(PORT_LAN POL_OUT "    proto: icmp\n"
					    "    icmp_code: 3-2\n"
					    "    action: discard\n",
			   10, "policies[0].icmp_code");
	assert_error_says(PORT_LAN POL_OUT
			  "    proto: tcp\n    dport: 2000-1000\n    action: discard\n",
			  "2000 is above 1000");
	assert_error_says(PORT_LAN POL_OUT "    proto: tcp\n    dport: http\n    action: discard\n",
			  "\"http\" is neither a number nor a range LO-HI");
}

static void test_rejects_ipsec_not_matching_action(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN POL_OUT "    action: protect\n", 6, 5, "policies[0].ipsec");
	assert_parse_error_at(PORT_LAN POL_OUT "    action: bypass\n" REQ_ESP, 10, 5,
			      "policies[0].ipsec");
	assert_parse_error_at(PORT_LAN POL_OUT "    action: discard\n" REQ_ESP, 10, 5,
			      "policies[0].ipsec");
}

static void test_rejects_bad_ipsec_list(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN POL_OUT "    action: protect\n"
					       "    ipsec: []\n",
			      10, 12, "policies[0].ipsec");
	assert_parse_error_at(PORT_LAN POL_OUT "    action: protect\n"
					       "    ipsec:\n"
					       "      - {proto: ipcomp, mode: transport}\n"
					       "      - {proto: esp, mode: transport}\n"
					       "      - {proto: ah, mode: transport}\n"
					       "      - {proto: esp, mode: transport}\n",
			      14, 9, "policies[0].ipsec[3]");
	/* One transform per protocol. */
	assert_parse_error_at(PORT_LAN POL_OUT
			      "    action: protect\n"
			      "    ipsec:\n"
			      "      - {proto: esp, mode: transport}\n"
			      "      - {proto: ah, mode: transport}\n"
			      "      - proto: esp\n"
			      "        tunnel: {src: 192.0.2.1, dst: 198.51.100.1}\n",
			      13, 16, "policies[0].ipsec[2].proto");
	assert_error_says(PORT_LAN POL_OUT "    action: protect\n"
					   "    ipsec:\n"
					   "      - {proto: ah, mode: transport}\n"
					   "      - {proto: ah, mode: transport}\n",
			  "ah is already requested by ipsec[0]");
	assert_parse_error(PORT_LAN POL_OUT "    action: protect\n"
					    "    ipsec: {proto: esp}\n",
			   10, "policies[0].ipsec");
}

static void test_rejects_bad_ipsec_request(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN POL_OUT "    action: protect\n"
					       "    ipsec:\n"
					       "      - mode: transport\n",
			      11, 9, "policies[0].ipsec[0].proto");
	assert_parse_error(PORT_LAN POL_OUT "    action: protect\n"
					    "    ipsec:\n"
					    "      - {proto: esp, mode: transport, level: must}\n",
			   11, "policies[0].ipsec[0].level");
	assert_parse_error(PORT_LAN POL_OUT
			   "    action: protect\n"
			   "    ipsec:\n"
			   "      - {proto: esp, mode: transport, reqid: 4294967296}\n",
			   11, "policies[0].ipsec[0].reqid");
	assert_parse_error(PORT_LAN POL_OUT "    action: protect\n"
					    "    ipsec:\n"
					    "      - {proto: esp, mode: transport, spi: 4096}\n",
			   11, "policies[0].ipsec[0].spi");
}

static void test_rejects_tunnel_not_matching_mode(void **state)
{
	(void)state;
	/* Tunnel mode (the default) needs endpoints: reported at the request. */
	assert_parse_error_at(PORT_LAN POL_OUT "    action: protect\n"
					       "    ipsec:\n"
					       "      - proto: esp\n"
					       "        level: require\n",
			      11, 9, "policies[0].ipsec[0].tunnel");
	/* Transport mode has none: reported at the key. */
	assert_parse_error_at(PORT_LAN POL_OUT
			      "    action: protect\n"
			      "    ipsec:\n"
			      "      - proto: esp\n"
			      "        mode: transport\n"
			      "        tunnel: {src: 192.0.2.1, dst: 198.51.100.1}\n",
			      13, 9, "policies[0].ipsec[0].tunnel");
}

static void test_rejects_bad_tunnel(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN POL_OUT "    action: protect\n"
					       "    ipsec:\n"
					       "      - proto: esp\n"
					       "        tunnel:\n"
					       "          src: 192.0.2.1\n"
					       "          dst: \"2001:db8::1\"\n",
			      14, 16, "policies[0].ipsec[0].tunnel.dst");
	assert_parse_error(PORT_LAN POL_OUT "    action: protect\n"
					    "    ipsec:\n"
					    "      - proto: esp\n"
					    "        tunnel:\n"
					    "          src: 192.0.2.1\n"
					    "          dst: 192.0.2.1\n",
			   14, "policies[0].ipsec[0].tunnel.dst");
	assert_parse_error_at(PORT_LAN POL_OUT "    action: protect\n"
					       "    ipsec:\n"
					       "      - proto: esp\n"
					       "        tunnel:\n"
					       "          src: 192.0.2.1\n",
			      13, 11, "policies[0].ipsec[0].tunnel.dst");
	assert_parse_error(PORT_LAN POL_OUT "    action: protect\n"
					    "    ipsec:\n"
					    "      - proto: esp\n"
					    "        tunnel: {src: 0.0.0.0, dst: 198.51.100.1}\n",
			   12, "policies[0].ipsec[0].tunnel.src");
	assert_parse_error(PORT_LAN POL_OUT "    action: protect\n"
					    "    ipsec:\n"
					    "      - proto: esp\n"
					    "        tunnel: 198.51.100.1\n",
			   12, "policies[0].ipsec[0].tunnel");
}

static void test_rejects_duplicate_policy(void **state)
{
	(void)state;
	assert_parse_error_at(PORT_LAN "policies:\n"
				       "  - {direction: out, dst: 10.0.0.0/8, action: bypass}\n"
				       "  - direction: in\n"
				       "    dst: 10.0.0.0/8\n"
				       "    action: discard\n"
				       "  - direction: out\n"
				       "    dst: 10.0.0.0/8\n"
				       "    action: discard\n",
			      10, 5, "policies[2]");
	/* Left out or written out, "any" is the same selector. */
	assert_parse_error(PORT_LAN
			   "policies:\n"
			   "  - {direction: out, dst: 10.0.0.0/8, proto: tcp, action: bypass}\n"
			   "  - {direction: out, src: 0.0.0.0/0, dst: 10.0.0.0/8, proto: 6,\n"
			   "     action: bypass, priority: 0}\n",
			   7, "policies[1]");
	assert_error_says(PORT_LAN "policies:\n"
				   "  - {direction: out, family: ipv6, action: bypass}\n"
				   "  - {direction: out, family: ipv6, action: discard}\n",
			  "same direction and selector as policies[0]");
}

/* ---- address helpers ---------------------------------------------------------- */

static void test_addr_parse_accepts_both_families(void **state)
{
	struct dps_addr a;

	(void)state;
	assert_int_equal(dps_addr_parse("192.0.2.1", &a), 0);
	assert_int_equal(a.family, AF_INET);
	assert_int_equal(a.v4.s_addr, htonl(0xc0000201));
	assert_int_equal(dps_addr_parse("0.0.0.0", &a), 0);
	assert_int_equal(dps_addr_parse("255.255.255.255", &a), 0);
	assert_int_equal(dps_addr_parse("2001:DB8::1", &a), 0);
	assert_int_equal(a.family, AF_INET6);
	assert_int_equal(a.v6.s6_addr[0], 0x20);
	assert_int_equal(a.v6.s6_addr[1], 0x01);
	assert_int_equal(a.v6.s6_addr[15], 0x01);
	assert_int_equal(dps_addr_parse("::", &a), 0);
	assert_int_equal(dps_addr_parse("::ffff:192.0.2.1", &a), 0);
	assert_int_equal(a.family, AF_INET6);
	assert_int_equal(a.v6.s6_addr[12], 192);
}

static void test_addr_parse_rejects_malformed(void **state)
{
	static const char *const bad[] = {
		"",	     "1.2.3",	 "1.2.3.4.5",	      "256.1.1.1",
		"01.2.3.4",  " 1.2.3.4", "1.2.3.4 ",	      "1.2.3.4/32",
		"0x1.2.3.4", "::g",	 "1::2::3",	      "fe80::1%eth0",
		"12345::",   ":",	 "1:2:3:4:5:6:7:8:9", "localhost",
	};
	struct dps_addr a;

	(void)state;
	memset(&a, 0x5a, sizeof(a));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (dps_addr_parse(bad[i], &a) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	assert_int_equal(dps_addr_parse(NULL, &a), -1);
	assert_int_equal(a.family, 0x5a); /* untouched on failure */
}

static void test_prefix_parse_lengths(void **state)
{
	struct dps_prefix p;

	(void)state;
	assert_int_equal(dps_prefix_parse("10.0.0.0/8", &p), 0);
	assert_int_equal(p.addr.family, AF_INET);
	assert_int_equal(p.len, 8);
	assert_int_equal(dps_prefix_parse("10.1.2.3", &p), 0);
	assert_int_equal(p.len, 32);
	assert_int_equal(dps_prefix_parse("0.0.0.0/0", &p), 0);
	assert_int_equal(p.len, 0);
	assert_int_equal(dps_prefix_parse("::/0", &p), 0);
	assert_int_equal(p.addr.family, AF_INET6);
	assert_int_equal(p.len, 0);
	assert_int_equal(dps_prefix_parse("2001:db8::1", &p), 0);
	assert_int_equal(p.len, 128);
	assert_int_equal(dps_prefix_parse("2001:db8::/128", &p), 0);
	assert_int_equal(p.len, 128);
	/* Host bits are the caller's business: interface addresses have them. */
	assert_int_equal(dps_prefix_parse("192.0.2.1/24", &p), 0);
	assert_string_equal(addr_str(&p.addr), "192.0.2.1");
}

static void test_prefix_parse_rejects_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"/8",
		"10.0.0.0/",
		"10.0.0.0/33",
		"::/129",
		"10.0.0.0/08",
		"10.0.0.0/-1",
		"10.0.0.0/+8",
		"10.0.0.0/8/8",
		"10.0.0.0/ 8",
		"10.0.0.0/8 ",
		"10.0.0/8",
		"::/1000",
		"10.0.0.0/4294967304",
	};
	struct dps_prefix p;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (dps_prefix_parse(bad[i], &p) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	assert_int_equal(dps_prefix_parse(NULL, &p), -1);
}

static void test_addr_str_formats_and_bounds(void **state)
{
	struct dps_addr a;
	char small[8], buf[INET6_ADDRSTRLEN];

	(void)state;
	assert_int_equal(dps_addr_parse("2001:0db8:0000:0000:0000:0000:0000:0001", &a), 0);
	assert_string_equal(dps_addr_str(&a, buf, sizeof(buf)), "2001:db8::1");
	assert_int_equal(dps_addr_parse("::ffff:10.0.0.1", &a), 0);
	assert_string_equal(dps_addr_str(&a, buf, sizeof(buf)), "::ffff:10.0.0.1");
	assert_int_equal(dps_addr_parse("255.255.255.255", &a), 0);
	assert_string_equal(dps_addr_str(&a, buf, INET_ADDRSTRLEN), "255.255.255.255");
	/* Too small a buffer or an unset address gives "?", never garbage. */
	assert_string_equal(dps_addr_str(&a, small, sizeof(small)), "?");
	memset(&a, 0, sizeof(a));
	assert_string_equal(dps_addr_str(&a, buf, sizeof(buf)), "?");
	assert_string_equal(dps_addr_str(NULL, buf, sizeof(buf)), "?");
	assert_string_equal(dps_addr_str(&a, buf, 0), "");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_config_gets_defaults),
		cmocka_unit_test(test_full_config_sets_every_key),
		cmocka_unit_test(test_shipped_example_validates),
		cmocka_unit_test(test_distributes_rx_queues_round_robin),
		cmocka_unit_test(test_default_worker_polls_every_queue),
		cmocka_unit_test(test_accepts_every_boolean_spelling),
		cmocka_unit_test(test_default_exception_iface_is_truncated_to_ifnamsiz),
		cmocka_unit_test(test_accepts_anchors_and_aliases),
		cmocka_unit_test(test_load_reads_a_file),
		cmocka_unit_test(test_load_reports_unreadable_file),
		cmocka_unit_test(test_load_takes_ah_and_ipcomp_sas),
		cmocka_unit_test(test_error_is_truncated_safely),

		cmocka_unit_test(test_rejects_empty_document),
		cmocka_unit_test(test_rejects_comment_only_document),
		cmocka_unit_test(test_rejects_document_that_is_not_a_mapping),
		cmocka_unit_test(test_rejects_yaml_syntax_error),
		cmocka_unit_test(test_rejects_undefined_alias),
		cmocka_unit_test(test_rejects_invalid_utf8),
		cmocka_unit_test(test_rejects_second_document),
		cmocka_unit_test(test_rejects_non_scalar_key),
		cmocka_unit_test(test_rejects_unknown_top_level_key),
		cmocka_unit_test(test_rejects_unknown_port_key),
		cmocka_unit_test(test_rejects_unknown_eal_key),
		cmocka_unit_test(test_rejects_unknown_rx_key),
		cmocka_unit_test(test_rejects_duplicate_key),
		cmocka_unit_test(test_rejects_duplicate_top_level_key),
		cmocka_unit_test(test_in_memory_needs_hugepages),
		cmocka_unit_test(test_rejects_missing_ports),
		cmocka_unit_test(test_rejects_empty_port_list),
		cmocka_unit_test(test_rejects_missing_port_name),
		cmocka_unit_test(test_rejects_missing_port_role),
		cmocka_unit_test(test_rejects_scalar_where_mapping_expected),
		cmocka_unit_test(test_rejects_mapping_where_scalar_expected),
		cmocka_unit_test(test_rejects_sequence_where_scalar_expected),
		cmocka_unit_test(test_rejects_mapping_where_sequence_expected),
		cmocka_unit_test(test_rejects_scalar_port_entry),
		cmocka_unit_test(test_rejects_port_mtu_out_of_range),
		cmocka_unit_test(test_rejects_negative_integer),
		cmocka_unit_test(test_rejects_integer_with_trailing_garbage),
		cmocka_unit_test(test_rejects_empty_integer),
		cmocka_unit_test(test_rejects_integer_overflow),
		cmocka_unit_test(test_rejects_quoted_integer),
		cmocka_unit_test(test_rejects_non_decimal_integer),
		cmocka_unit_test(test_rejects_bad_boolean),
		cmocka_unit_test(test_rejects_out_of_range_dataplane_values),
		cmocka_unit_test(test_rejects_out_of_range_reassembly_values),
		cmocka_unit_test(test_rejects_out_of_range_neighbour_params),
		cmocka_unit_test(test_rejects_unknown_log_level),
		cmocka_unit_test(test_rejects_malformed_lcore_list),
		cmocka_unit_test(test_maps_lcores_onto_cpus),
		cmocka_unit_test(test_rejects_main_lcore_outside_lcores),
		cmocka_unit_test(test_rejects_bad_file_prefix),
		cmocka_unit_test(test_rejects_too_many_extra_args),
		cmocka_unit_test(test_rejects_too_long_extra_arg),
		cmocka_unit_test(test_rejects_bad_port_name),
		cmocka_unit_test(test_rejects_duplicate_port_name),
		cmocka_unit_test(test_rejects_duplicate_port_device),
		cmocka_unit_test(test_rejects_bad_port_device),
		cmocka_unit_test(test_rejects_unknown_port_role),
		cmocka_unit_test(test_rejects_bad_port_mac),
		cmocka_unit_test(test_rejects_descriptors_not_power_of_two),
		cmocka_unit_test(test_rejects_too_many_rx_queues),
		cmocka_unit_test(test_rejects_bad_exception_iface),
		cmocka_unit_test(test_rejects_clashing_default_exception_iface),
		cmocka_unit_test(test_rejects_interface_address_without_length),
		cmocka_unit_test(test_rejects_malformed_interface_address),
		cmocka_unit_test(test_rejects_address_on_two_ports),
		cmocka_unit_test(test_rejects_too_many_addresses),
		cmocka_unit_test(test_rejects_too_many_ports),
		cmocka_unit_test(test_rejects_nul_in_string),
		cmocka_unit_test(test_rejects_worker_lcore_outside_lcores),
		cmocka_unit_test(test_rejects_worker_on_main_lcore),
		cmocka_unit_test(test_rejects_duplicate_worker_lcore),
		cmocka_unit_test(test_rejects_missing_worker_lcore),
		cmocka_unit_test(test_rejects_rx_naming_unknown_port),
		cmocka_unit_test(test_rejects_rx_queue_beyond_port_queues),
		cmocka_unit_test(test_rejects_doubly_polled_queue),
		cmocka_unit_test(test_rejects_unpolled_queue),
		cmocka_unit_test(test_rejects_rx_on_some_workers_only),
		cmocka_unit_test(test_rejects_empty_worker_rx),
		cmocka_unit_test(test_rejects_empty_worker_list),
		cmocka_unit_test(test_rejects_default_worker_without_spare_lcore),
		cmocka_unit_test(test_rejects_more_queues_than_workers_can_poll),
		cmocka_unit_test(test_rejects_route_with_host_bits),
		cmocka_unit_test(test_rejects_malformed_route_prefix),
		cmocka_unit_test(test_rejects_route_via_of_other_family),
		cmocka_unit_test(test_rejects_malformed_route_via),
		cmocka_unit_test(test_rejects_route_to_unknown_port),
		cmocka_unit_test(test_rejects_route_without_port),
		cmocka_unit_test(test_rejects_duplicate_route),
		cmocka_unit_test(test_rejects_neighbour_with_bad_mac),
		cmocka_unit_test(test_rejects_neighbour_without_mac),
		cmocka_unit_test(test_rejects_neighbour_with_bad_address),
		cmocka_unit_test(test_rejects_duplicate_neighbour),
		cmocka_unit_test(test_rejects_neighbour_on_unknown_port),

		cmocka_unit_test(test_minimal_config_gets_ipsec_defaults),
		cmocka_unit_test(test_crypto_and_ipsec_set_every_key),
		cmocka_unit_test(test_more_sas_than_sessions_names_crypto_sessions),
		cmocka_unit_test(test_def_policy_per_family),
		cmocka_unit_test(test_sa_sets_every_key),
		cmocka_unit_test(test_sa_defaults),
		cmocka_unit_test(test_sa_accepts_every_algorithm),
		cmocka_unit_test(test_sa_key_spellings),
		cmocka_unit_test(test_sa_ipcomp_and_transport),
		cmocka_unit_test(test_sa_spi_is_unique_per_destination_and_proto),
		cmocka_unit_test(test_policy_sets_every_key),
		cmocka_unit_test(test_policy_defaults),
		cmocka_unit_test(test_policies_differing_only_in_direction_or_selector),
		cmocka_unit_test(test_policy_priority_does_not_tell_policies_apart),
		cmocka_unit_test(test_examples_validate),
		cmocka_unit_test(test_rejects_duplicate_crypto_device),
		cmocka_unit_test(test_compress_section),
		cmocka_unit_test(test_rejects_bad_crypto_device),
		cmocka_unit_test(test_rejects_crypto_device_count),
		cmocka_unit_test(test_rejects_bad_crypto_settings),
		cmocka_unit_test(test_rejects_bad_def_policy),
		cmocka_unit_test(test_rejects_bad_ipsec_defaults),
		cmocka_unit_test(test_rejects_bad_default_replay_window),
		cmocka_unit_test(test_rejects_sa_without_required_keys),
		cmocka_unit_test(test_rejects_reserved_or_out_of_range_spi),
		cmocka_unit_test(test_rejects_malformed_spi),
		cmocka_unit_test(test_rejects_bad_sa_enums),
		cmocka_unit_test(test_rejects_bad_sa_endpoints),
		cmocka_unit_test(test_rejects_bad_reqid),
		cmocka_unit_test(test_rejects_transforms_the_proto_does_not_have),
		cmocka_unit_test(test_rejects_integrity_mismatching_encryption),
		cmocka_unit_test(test_rejects_unknown_algorithm),
		cmocka_unit_test(test_rejects_key_of_wrong_length),
		cmocka_unit_test(test_rejects_missing_key),
		cmocka_unit_test(test_rejects_malformed_key),
		cmocka_unit_test(test_rejects_bad_sa_replay_window),
		cmocka_unit_test(test_rejects_ipcomp_cpi_above_16_bits),
		cmocka_unit_test(test_rejects_bad_encap),
		cmocka_unit_test(test_rejects_bad_outer_header_settings),
		cmocka_unit_test(test_rejects_bad_lifetime),
		cmocka_unit_test(test_rejects_duplicate_sa),
		cmocka_unit_test(test_rejects_bad_sas_section),
		cmocka_unit_test(test_rejects_policy_without_required_keys),
		cmocka_unit_test(test_rejects_bad_policy_enums),
		cmocka_unit_test(test_rejects_unique_without_reqid),
		cmocka_unit_test(test_rejects_selector_of_two_families),
		cmocka_unit_test(test_rejects_bad_selector_prefix),
		cmocka_unit_test(test_rejects_bad_selector_proto),
		cmocka_unit_test(test_rejects_icmp_of_the_other_family),
		cmocka_unit_test(test_rejects_fields_the_proto_does_not_have),
		cmocka_unit_test(test_rejects_bad_port_range),
		cmocka_unit_test(test_rejects_ipsec_not_matching_action),
		cmocka_unit_test(test_rejects_bad_ipsec_list),
		cmocka_unit_test(test_rejects_bad_ipsec_request),
		cmocka_unit_test(test_rejects_tunnel_not_matching_mode),
		cmocka_unit_test(test_rejects_bad_tunnel),
		cmocka_unit_test(test_rejects_duplicate_policy),

		cmocka_unit_test(test_addr_parse_accepts_both_families),
		cmocka_unit_test(test_addr_parse_rejects_malformed),
		cmocka_unit_test(test_prefix_parse_lengths),
		cmocka_unit_test(test_prefix_parse_rejects_malformed),
		cmocka_unit_test(test_addr_str_formats_and_bounds),
	};

	example_path = argc > 1 ? argv[1] : getenv("DPS_EXAMPLE_CONFIG");
	examples_dir = argc > 2 ? argv[2] : getenv("DPS_EXAMPLES_DIR");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
