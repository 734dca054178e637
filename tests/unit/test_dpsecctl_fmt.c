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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
