// SPDX-License-Identifier: BSD-3-Clause
/*
 * Unit tests for the configuration loader (src/control/config.c).
 *
 * Every invalid document asserts the exact line of the error and the exact
 * key path, since those are what an operator uses to find the mistake.
 *
 * The shipped example is passed as argv[1] (or $DPS_EXAMPLE_CONFIG) so that
 * a broken config/dpsec.yaml fails the build's tests.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "control/config.h"

static const char *example_path;

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
			       "  in_memory: on\n"
			       "  extra_args: [\"--log-level=pmd.*:debug\", --no-telemetry]\n"
			       "log_level: debug\n"
			       "dataplane:\n"
			       "  mbufs: 32767\n"
			       "  burst: 64\n"
			       "  idle_backoff: off\n"
			       "  idle_polls: 1000\n"
			       "  idle_sleep_us: 50\n"
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
	assert_true(cfg.eal.in_memory);
	assert_int_equal(cfg.eal.n_extra, 2);
	assert_string_equal(cfg.eal.extra[0], "--log-level=pmd.*:debug");
	assert_string_equal(cfg.eal.extra[1], "--no-telemetry");
	assert_int_equal(cfg.log_level, DPS_LOG_DEBUG);
	assert_int_equal(cfg.dataplane.mbufs, 32767);
	assert_int_equal(cfg.dataplane.burst, 64);
	assert_false(cfg.dataplane.idle_backoff);
	assert_int_equal(cfg.dataplane.idle_polls, 1000);
	assert_int_equal(cfg.dataplane.idle_sleep_us, 50);
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
		skip();
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
	static const char *const bad[] = {"0-",	 "-1", "0,,1", "0,",  "1-0",
					  "0 1", "a",  "01",   "1024"};
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
		cmocka_unit_test(test_rejects_out_of_range_neighbour_params),
		cmocka_unit_test(test_rejects_unknown_log_level),
		cmocka_unit_test(test_rejects_malformed_lcore_list),
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

		cmocka_unit_test(test_addr_parse_accepts_both_families),
		cmocka_unit_test(test_addr_parse_rejects_malformed),
		cmocka_unit_test(test_prefix_parse_lengths),
		cmocka_unit_test(test_prefix_parse_rejects_malformed),
		cmocka_unit_test(test_addr_str_formats_and_bounds),
	};

	example_path = argc > 1 ? argv[1] : getenv("DPS_EXAMPLE_CONFIG");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
