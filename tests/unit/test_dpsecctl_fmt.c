// SPDX-License-Identifier: BSD-3-Clause
/*
 * Unit tests of dpsecctl's table printer and reply handling, without a daemon:
 * dpsecctl.c is included whole, without its main().
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define DPSECCTL_NO_MAIN
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "control/dpsecctl.c"
#pragma GCC diagnostic pop
#include "pfkey_emul/codec.h"

struct capture {
	FILE *f;
	char *buf;
	size_t len;
};

static void capture_start(struct capture *c)
{
	c->buf = NULL;
	c->len = 0;
	c->f = open_memstream(&c->buf, &c->len);
	assert_non_null(c->f);
}

static const char *capture_end(struct capture *c)
{
	assert_int_equal(fclose(c->f), 0);
	return c->buf;
}

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);

	if (!v)
		fail_msg("bad test JSON: %s", jerr.text);
	return v;
}

/* Print @text with @l and compare with @expect; returns print_table()'s result. */
static int check_table(const char *text, const struct layout *l, bool all, const char *expect)
{
	struct capture c;
	json_t *v = parse(text);
	int ret;

	capture_start(&c);
	ret = print_table(c.f, "/dpsec/test", v, l, all);
	assert_string_equal(capture_end(&c), expect);
	free(c.buf);
	json_decref(v);
	return ret;
}

static const char ports_json[] =
	"{\"lan\": {\"rx_packets\": 1843220, \"tx_packets\": 17, \"rx_missed\": 0,"
	"          \"drop_no_route\": 12, \"drop_no_sa\": 0, \"drop_ttl\": 0},"
	" \"wan\": {\"rx_packets\": 5, \"tx_packets\": 1843180, \"rx_missed\": 0,"
	"          \"drop_no_route\": 0, \"drop_no_sa\": 0, \"drop_ttl\": 0}}";

static void test_counters_hide_zero_drops(void **state)
{
	(void)state;
	assert_int_equal(check_table(ports_json, &port_counters, false,
				     "PORTS              lan      wan\n"
				     "rx_packets     1843220        5\n"
				     "tx_packets          17  1843180\n"
				     "rx_missed            0        0\n"
				     "drop_no_route       12        0\n"
				     "(2 all-zero counters hidden; --all shows them)\n"),
			 0);
}

static void test_counters_all(void **state)
{
	(void)state;
	assert_int_equal(check_table(ports_json, &port_counters, true,
				     "PORTS              lan      wan\n"
				     "rx_packets     1843220        5\n"
				     "tx_packets          17  1843180\n"
				     "rx_missed            0        0\n"
				     "drop_no_route       12        0\n"
				     "drop_no_sa           0        0\n"
				     "drop_ttl             0        0\n"),
			 0);
}

static void test_counters_ragged(void **state)
{
	(void)state;
	/* A counter only one owner has: "-" for the others, first-seen order. */
	assert_int_equal(check_table("{\"worker1\": {\"polls\": 10, \"drop_replay\": 0},"
				     " \"worker2\": {\"polls\": 20, \"busy\": 3}}",
				     &worker_counters, false,
				     "WORKERS  worker1  worker2\n"
				     "polls         10       20\n"
				     "busy           -        3\n"
				     "(1 all-zero counters hidden; --all shows them)\n"),
			 0);
}

static void test_rows(void **state)
{
	(void)state;
	/* Sorted naturally, preferred columns first, extra field last, numbers right. */
	assert_int_equal(
		check_table(
			"{\"lan/10_0_0_10\": {\"state\": \"reachable\", \"mac\": "
			"\"02:00:00:00:00:0a\","
			"                    \"age_ms\": 1200, \"static\": false},"
			" \"lan/10_0_0_9\": {\"mac\": \"02:00:00:00:00:09\", \"state\": \"stale\","
			"                   \"age_ms\": 45012, \"static\": false, \"probes\": 2},"
			" \"wan/192_0_2_7\": {\"state\": \"incomplete\", \"age_ms\": 310,"
			"                    \"static\": true}}",
			&neigh_rows, false,
			"PORT/ADDRESS   MAC                STATE       AGE_MS  STATIC  PROBES\n"
			"lan/10_0_0_9   02:00:00:00:00:09  stale        45012  no           2\n"
			"lan/10_0_0_10  02:00:00:00:00:0a  reachable     1200  no           -\n"
			"wan/192_0_2_7  -                  incomplete     310  yes          -\n"),
		0);
}

static void test_empty(void **state)
{
	(void)state;
	assert_int_equal(check_table("{}", &neigh_rows, false, "no neighbour entries\n"), 0);
	assert_int_equal(check_table("{}", &port_counters, false, "no ports\n"), 0);
}

static void test_bad_shape(void **state)
{
	(void)state;
	assert_int_equal(check_table("{\"lan\": 5}", &port_counters, false, ""), -1);
	assert_int_equal(check_table("[1, 2]", &neigh_rows, false, ""), -1);
	assert_int_equal(check_table("\"not ready\"", &neigh_rows, false, ""), -1);
}

static void test_cells(void **state)
{
	static const struct {
		const char *json, *cell;
	} cases[] = {
		{"12345678901234", "12345678901234"},
		{"-3", "-3"},
		{"0.5", "0.5"},
		{"\"up\"", "up"},
		{"true", "yes"},
		{"false", "no"},
		{"null", "-"},
		{"[1,2]", "[1,2]"},
		{"{\"a\":1}", "{\"a\":1}"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
		char *s;

		assert_non_null(v);
		s = cell_str(v);
		assert_string_equal(s, cases[i].cell);
		free(s);
		json_decref(v);
	}
}

static void test_fake_replies(void **state)
{
	struct ctl ctl = {.fd = -1};
	json_t *v;

	(void)state;
	ctl.fake = parse("{\"/dpsec/ports\": {\"lan\": {\"rx_packets\": 1}},"
			 " \"/dpsec/sa,5\": {\"5\": {\"bytes\": 0}},"
			 " \"/dpsec/sa\": null}");
	v = tel_query(&ctl, "/dpsec/ports");
	assert_true(json_is_object(json_object_get(v, "lan")));
	json_decref(v);
	/* A parameter selects the reply stored under "cmd,param". */
	v = tel_query(&ctl, "/dpsec/sa,5");
	assert_true(json_is_object(json_object_get(v, "5")));
	json_decref(v);
	/* Null replies are errors: a known command that failed, or an unknown one. */
	assert_null(tel_query(&ctl, "/dpsec/sa,6"));
	assert_null(tel_query(&ctl, "/dpsec/nope"));
	json_decref(ctl.fake);
}

static void test_commands(void **state)
{
	(void)state;
	assert_ptr_equal(find_command("stats"), &commands[0]);
	assert_ptr_equal(find_command("neighbours"), find_command("neigh"));
	assert_null(find_command("stat"));
}

/* Print one object with @view, return the text (caller frees). */
static char *view(void (*fn)(FILE *, const char *, const json_t *, bool), const char *key,
		  const char *text, bool full)
{
	struct capture c;
	json_t *v = parse(text);

	capture_start(&c);
	fn(c.f, key, v, full);
	capture_end(&c);
	json_decref(v);
	return c.buf;
}

static void assert_narrow(const char *text)
{
	const char *p = text, *nl;

	for (; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		assert_non_null(nl);
		if (nl - p > DPS_VIEW_WIDTH)
			fail_msg("line wider than %d: %.*s", DPS_VIEW_WIDTH, (int)(nl - p), p);
	}
}

static void test_view_sa_short(void **state)
{
	char *s;

	(void)state;
	/* Life left: the nearer of the add and use limits, bytes left under the byte limit. */
	s = view(dps_view_sa, "sa3",
		 "{\"id\": 3, \"origin\": \"config\", \"spi\": \"0x00001001\", \"dir\": \"out\","
		 " \"proto\": \"esp\", \"mode\": \"tunnel\", \"src\": \"192.0.2.1\","
		 " \"dst\": \"198.51.100.2\", \"reqid\": 7, \"enc\": \"aes-cbc\","
		 " \"auth\": \"hmac-sha2-256-128\", \"encap\": \"none\", \"age_s\": 100,"
		 " \"use_s\": 90, \"hard_add_s\": 3600, \"hard_use_s\": 1000, \"hard_bytes\": 5000,"
		 " \"hard_packets\": 0, \"packets\": 12, \"bytes\": 1200, \"drop_auth\": 2,"
		 " \"drop_replay\": 1, \"crypto\": \"cpu\"}",
		 false);
	assert_string_equal(
		s, "sa3: spi 0x00001001 out esp tunnel reqid 7 (config)\n"
		   "    192.0.2.1 -> 198.51.100.2 encap none\n"
		   "    enc aes-cbc auth hmac-sha2-256-128\n"
		   "    12 packets 1200 bytes 3 dropped age 100s life left 910s, 3800 bytes\n");
	free(s);
	/* No hard limit: unlimited; a use limit not yet started says so. */
	s = view(dps_view_sa, "sa4",
		 "{\"spi\": \"0x00000004\", \"age_s\": 5, \"use_s\": -1, \"hard_add_s\": 0,"
		 " \"hard_use_s\": 60, \"packets\": 0, \"bytes\": 0}",
		 false);
	assert_non_null(strstr(s, "life left 60s after first use\n"));
	free(s);
	s = view(dps_view_sa, "sa5", "{\"spi\": \"0x00000005\", \"age_s\": 5}", false);
	assert_non_null(strstr(s, "life left unlimited\n"));
	free(s);
}

static void test_view_sa_verbose_has_every_field(void **state)
{
	char *s;

	(void)state;
	s = view(dps_view_sa, "sa1",
		 "{\"spi\": \"0x1\", \"replay_window\": 64, \"device\": \"crypto_aesni_mb\","
		 " \"drop_pad\": 0, \"soft_add_s\": 30}",
		 true);
	assert_non_null(strstr(s, "replay_window 64"));
	assert_non_null(strstr(s, "device crypto_aesni_mb"));
	assert_non_null(strstr(s, "drop_pad 0"));
	assert_non_null(strstr(s, "soft_add_s 30"));
	free(s);
}

static void test_view_policy_every_transform(void **state)
{
	char *s;

	(void)state;
	s = view(dps_view_policy, "policy8",
		 "{\"id\": 8, \"origin\": \"pfkey\", \"dir\": \"out\", \"priority\": 100,"
		 " \"src\": \"10.0.1.0/24\", \"dst\": \"10.0.2.0/24\", \"proto\": 6,"
		 " \"sport\": \"0-65535\", \"dport\": \"22-22\", \"action\": \"protect\","
		 " \"transforms\": 3, \"ipsec\": \"ipcomp\", \"mode\": \"tunnel\","
		 " \"level\": \"require\", \"reqid\": 1, \"tun_src\": \"192.0.2.1\","
		 " \"tun_dst\": \"192.0.2.2\", \"ipsec2\": \"esp\", \"mode2\": \"tunnel\","
		 " \"level2\": \"require\", \"reqid2\": 1, \"tun_src2\": \"192.0.2.1\","
		 " \"tun_dst2\": \"192.0.2.2\", \"ipsec3\": \"ah\", \"mode3\": \"transport\","
		 " \"level3\": \"use\", \"reqid3\": 0, \"hits\": 42}",
		 false);
	assert_string_equal(s, "policy8: out protect priority 100 hits 42 (pfkey)\n"
			       "    src 10.0.1.0/24 dst 10.0.2.0/24 proto tcp dport 22\n"
			       "    ipcomp tunnel 192.0.2.1 -> 192.0.2.2 require reqid 1\n"
			       "    esp tunnel 192.0.2.1 -> 192.0.2.2 require reqid 1\n"
			       "    ah transport use reqid 0\n");
	free(s);
	/* 255 is "any"; ICMP's ranges are type and code. */
	s = view(dps_view_policy, "policy9",
		 "{\"dir\": \"in\", \"action\": \"bypass\", \"src\": \"::/0\", \"dst\": \"::/0\","
		 " \"proto\": 58, \"sport\": \"135-136\", \"dport\": \"0-255\", \"transforms\": 0}",
		 false);
	assert_non_null(strstr(s, "    src ::/0 dst ::/0 proto ipv6-icmp type 135-136\n"));
	free(s);
	s = view(dps_view_policy, "policy10", "{\"proto\": 255, \"sport\": \"0-65535\"}", false);
	assert_non_null(strstr(s, " proto any\n"));
	free(s);
}

/* The widest values an SA and a policy can have still fit DPS_VIEW_WIDTH columns. */
static void test_view_width(void **state)
{
	static const char v6[] = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
	static const char u64[] = "9223372036854775807"; /* jansson: int64 */
	char sa[2048], pol[2048];
	char *s;

	(void)state;
	snprintf(sa, sizeof(sa),
		 "{\"id\": 4294967295, \"origin\": \"restored\", \"spi\": \"0xffffffff\","
		 " \"dir\": \"out\", \"proto\": \"ipcomp\", \"mode\": \"transport\", \"src\": "
		 "\"%s\","
		 " \"dst\": \"%s\", \"reqid\": 4294967295, \"enc\": \"chacha20-poly1305\","
		 " \"auth\": \"hmac-sha2-512-256\", \"encap\": \"udp:65535:65535\", \"age_s\": %s,"
		 " \"use_s\": 1, \"hard_add_s\": %s, \"hard_use_s\": %s, \"hard_bytes\": %s,"
		 " \"hard_packets\": %s, \"packets\": %s, \"bytes\": %s, \"drop_auth\": %s,"
		 " \"device\": \"0000:00:01.0_qat_sym_with_a_long_name\"}",
		 v6, v6, u64, u64, u64, u64, u64, u64, u64, u64);
	s = view(dps_view_sa, "sa4294967295", sa, false);
	assert_narrow(s);
	free(s);
	s = view(dps_view_sa, "sa4294967295", sa, true);
	assert_narrow(s);
	free(s);
	snprintf(pol, sizeof(pol),
		 "{\"id\": 4294967295, \"origin\": \"config\", \"dir\": \"fwd\","
		 " \"priority\": 4294967295, \"src\": \"%s/128\", \"dst\": \"%s/128\","
		 " \"proto\": 136, \"sport\": \"1-65534\", \"dport\": \"2-65533\","
		 " \"action\": \"protect\", \"transforms\": 3, \"hits\": %s,"
		 " \"ipsec\": \"ipcomp\", \"mode\": \"tunnel\", \"level\": \"unique\","
		 " \"reqid\": 4294967295, \"tun_src\": \"%s\", \"tun_dst\": \"%s\","
		 " \"ipsec2\": \"esp\", \"mode2\": \"tunnel\", \"level2\": \"unique\","
		 " \"reqid2\": 4294967295, \"tun_src2\": \"%s\", \"tun_dst2\": \"%s\"}",
		 v6, v6, u64, v6, v6, v6, v6);
	s = view(dps_view_policy, "policy4294967295", pol, true);
	assert_narrow(s);
	/* Nothing was lost to the wrapping. */
	assert_non_null(strstr(s, u64));
	assert_non_null(strstr(s, "proto udplite sport 1-65534 dport 2-65533"));
	free(s);
}

static void test_select_objects(void **state)
{
	json_t *v = parse("{\"sa1\": {\"id\": 1, \"spi\": \"0x00001001\"},"
			  " \"sa2\": {\"id\": 2, \"spi\": \"0x00001001\"},"
			  " \"sa3\": {\"id\": 3, \"spi\": \"0x00000002\"}}");
	json_t *sel;

	(void)state;
	sel = select_objects(v, "0x1001", "sa", true); /* an SPI may be on two SAs */
	assert_int_equal(json_object_size(sel), 2);
	json_decref(sel);
	sel = select_objects(v, "2", "sa", true); /* a number is an id */
	assert_non_null(json_object_get(sel, "sa2"));
	assert_int_equal(json_object_size(sel), 1);
	json_decref(sel);
	sel = select_objects(v, "sa3", "sa", true);
	assert_non_null(json_object_get(sel, "sa3"));
	json_decref(sel);
	assert_null(select_objects(v, "0xzz", "sa", true));
	assert_null(select_objects(v, "0x1001", "policy", false)); /* policies have no SPI */
	json_decref(v);
}

/* The monitor's lines, for messages built by dpsecd's own PF_KEY builders. */
static void test_monitor_lines(void **state)
{
	struct dps_sa sa = {
		.spi = 0x1234, .proto = DPS_PROTO_ESP, .mode = DPS_MODE_TUNNEL, .reqid = 9};
	struct sadb_msg h = {.sadb_msg_version = PF_KEY_V2,
			     .sadb_msg_type = SADB_ADD,
			     .sadb_msg_satype = SADB_SATYPE_ESP,
			     .sadb_msg_pid = 77};
	struct pfk_sa_state st = {.state = SADB_SASTATE_MATURE};
	static uint8_t buf[4096];
	char line[256];
	long n;

	(void)state;
	assert_int_equal(dps_addr_parse("192.0.2.1", &sa.src), 0);
	assert_int_equal(dps_addr_parse("2001:db8::2", &sa.dst), 0);
	n = pfk_build_sa(buf, sizeof(buf), &h, &sa, &st, false);
	assert_true(n > 0);
	assert_true(dps_monitor_format(buf, (size_t)n, line, sizeof(line)) > 0);
	assert_string_equal(
		line, "sa add spi 0x00001234 esp tunnel 192.0.2.1 -> 2001:db8::2 reqid 9 (pid 77)");
	n = pfk_build_expire(buf, sizeof(buf), 5, &sa, &st, true);
	assert_true(dps_monitor_format(buf, (size_t)n, line, sizeof(line)) > 0);
	assert_string_equal(
		line, "expire hard spi 0x00001234 esp tunnel 192.0.2.1 -> 2001:db8::2 reqid 9");
	/* a failed request, a GET reply: nothing */
	h.sadb_msg_errno = ESRCH;
	n = pfk_build_error(buf, sizeof(buf), &h, ESRCH);
	assert_int_equal(dps_monitor_format(buf, (size_t)n, line, sizeof(line)), 0);
	h.sadb_msg_errno = 0;
	h.sadb_msg_type = SADB_GET;
	n = pfk_build_sa(buf, sizeof(buf), &h, &sa, &st, false);
	assert_int_equal(dps_monitor_format(buf, (size_t)n, line, sizeof(line)), 0);
	/* a length that disagrees with sadb_msg_len, an extension running past the end */
	assert_int_equal(dps_monitor_format(buf, (size_t)n - 8, line, sizeof(line)), -1);
	((struct sadb_ext *)(buf + sizeof(struct sadb_msg)))->sadb_ext_len = 0xffff;
	assert_int_equal(dps_monitor_format(buf, (size_t)n, line, sizeof(line)), -1);
}

/* Metric names follow the conventions; label values are escaped (text format 0.0.4). */
static void test_metrics_text(void **state)
{
	json_t *ports = parse("{\"l\\\"a\\\\n\\n\": {\"rx_packets\": 3}}");
	json_t *sas = parse("{\"sa4\": {\"id\": 4, \"spi\": \"0x00000004\", \"age_s\": 9,"
			    " \"packets\": 2, \"use_s\": -1, \"enc\": \"null\"}}");
	struct capture c;

	(void)state;
	capture_start(&c);
	dps_metrics_print(c.f, ports, NULL, sas, NULL, NULL);
	assert_string_equal(capture_end(&c),
			    "# HELP dpsec_port_rx_packets_total dpsecd port field rx_packets.\n"
			    "# TYPE dpsec_port_rx_packets_total counter\n"
			    "dpsec_port_rx_packets_total{port=\"l\\\"a\\\\n\\n\"} 3\n"
			    "# HELP dpsec_sa_age_seconds dpsecd SA field age_s.\n"
			    "# TYPE dpsec_sa_age_seconds gauge\n"
			    "dpsec_sa_age_seconds{sa=\"4\",spi=\"0x00000004\"} 9\n"
			    "# HELP dpsec_sa_packets_total dpsecd SA field packets.\n"
			    "# TYPE dpsec_sa_packets_total counter\n"
			    "dpsec_sa_packets_total{sa=\"4\",spi=\"0x00000004\"} 2\n");
	free(c.buf);
	json_decref(ports);
	json_decref(sas);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counters_hide_zero_drops),
		cmocka_unit_test(test_counters_all),
		cmocka_unit_test(test_counters_ragged),
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_bad_shape),
		cmocka_unit_test(test_cells),
		cmocka_unit_test(test_fake_replies),
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_view_sa_short),
		cmocka_unit_test(test_view_sa_verbose_has_every_field),
		cmocka_unit_test(test_view_policy_every_transform),
		cmocka_unit_test(test_view_width),
		cmocka_unit_test(test_select_objects),
		cmocka_unit_test(test_monitor_lines),
		cmocka_unit_test(test_metrics_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
