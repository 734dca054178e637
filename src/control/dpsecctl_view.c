// SPDX-License-Identifier: BSD-3-Clause
/*
 * dpsecctl's readable views of SAs and policies. The words are set down in
 * fields ("reqid 1", "10.0.0.1 -> 10.0.0.2"); a field that would cross
 * DPS_VIEW_WIDTH starts a continuation line instead, so no line is wider
 * whatever the addresses and counters (an IPv6 tunnel's endpoints alone take
 * 82 columns).
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/dpsecctl_view.h"

#define INDENT 4 /* body lines; continuations twice that */

struct line {
	FILE *out;
	int col; /* 0: nothing printed on this line yet */
};

static void __attribute__((format(printf, 2, 3))) field(struct line *l, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (len < 0)
		return;
	if (len > DPS_VIEW_WIDTH - 2 * INDENT)
		len = DPS_VIEW_WIDTH -
		      2 * INDENT; /* only a corrupt reply: cut rather than overflow */
	if (l->col > 0 && l->col + 1 + len > DPS_VIEW_WIDTH) {
		/* A continuation: indented deeper than the line it continues. */
		fprintf(l->out, "\n%*s%.*s", 2 * INDENT, "", len, buf);
		l->col = 2 * INDENT + len;
		return;
	}
	if (l->col == -1) { /* an object's header starts at column 0 */
		l->col = 0;
	} else if (l->col == 0) {
		fprintf(l->out, "%*s", INDENT, "");
		l->col = INDENT;
	} else {
		fputc(' ', l->out);
		l->col++;
	}
	fprintf(l->out, "%.*s", len, buf);
	l->col += len;
}

/* End the current line; the next field starts an indented one. */
static void endl(struct line *l)
{
	if (l->col > 0)
		fputc('\n', l->out);
	l->col = 0;
}

/* The next field starts a line at column 0 (an object's header). */
static void header(struct line *l)
{
	endl(l);
	l->col = -1;
}

static const char *str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "-";
}

static long long num(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static bool has(const json_t *o, const char *k)
{
	return json_object_get(o, k) != NULL;
}

static const struct {
	int proto;
	const char *name;
} protos[] = {
	{1, "icmp"},  {2, "igmp"},     {4, "ipip"},   {6, "tcp"},	{17, "udp"},
	{41, "ipv6"}, {47, "gre"},     {50, "esp"},   {51, "ah"},	{58, "ipv6-icmp"},
	{103, "pim"}, {108, "ipcomp"}, {132, "sctp"}, {136, "udplite"}, {255, "any"},
};

const char *dps_view_proto_name(long long proto, char *buf, size_t len)
{
	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
		if (protos[i].proto == proto)
			return protos[i].name;
	}
	snprintf(buf, len, "%lld", proto);
	return buf;
}

/* Print every field of @o not named in @shown, nor starting with one ending in '*'. */
static void rest(struct line *l, const json_t *o, const char *const *shown)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)o, k, v)
	{
		const char *const *p;
		char *s;

		for (p = shown; *p; p++) {
			size_t n = strlen(*p);

			if ((*p)[n - 1] == '*' ? !strncmp(k, *p, n - 1) : !strcmp(k, *p))
				break;
		}
		if (*p)
			continue;
		s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (json_is_string(v))
			field(l, "%s %s", k, json_string_value(v));
		else
			field(l, "%s %s", k, s ? s : "?");
		free(s);
	}
}

/* What is left of the hard lifetime: time, bytes, packets. */
static void life_left(struct line *l, const json_t *sa)
{
	long long add = num(sa, "hard_add_s"), use = num(sa, "hard_use_s");
	long long age = num(sa, "age_s"), used = has(sa, "use_s") ? num(sa, "use_s") : -1;
	long long t = -1, left;
	char buf[160];
	int n = 0;

	if (add)
		t = add > age ? add - age : 0;
	if (use && used >= 0) {
		left = use > used ? use - used : 0;
		if (t < 0 || left < t)
			t = left;
	}
	if (t >= 0)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ", %llds", t);
	else if (use)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ", %llds after first use", use);
	if (num(sa, "hard_bytes")) {
		left = num(sa, "hard_bytes") - num(sa, "bytes");
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ", %lld bytes",
			      left > 0 ? left : 0);
	}
	if (num(sa, "hard_packets")) {
		left = num(sa, "hard_packets") - num(sa, "packets");
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ", %lld packets",
			      left > 0 ? left : 0);
	}
	field(l, "life left %s", n ? buf + 2 : "unlimited");
}

static long long drops(const json_t *o)
{
	long long sum = 0;
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)o, k, v)
	{
		if (!strncmp(k, "drop_", 5) && json_is_integer(v))
			sum += json_integer_value(v);
	}
	return sum;
}

void dps_view_sa(FILE *out, const char *key, const json_t *sa, bool full)
{
	struct line l = {.out = out};

	header(&l);
	field(&l, "%s: spi %s", key, str(sa, "spi"));
	field(&l, "%s %s %s", str(sa, "dir"), str(sa, "proto"), str(sa, "mode"));
	field(&l, "reqid %lld", num(sa, "reqid"));
	field(&l, "(%s)", str(sa, "origin"));
	endl(&l);
	field(&l, "%s -> %s", str(sa, "src"), str(sa, "dst"));
	field(&l, "encap %s", str(sa, "encap"));
	endl(&l);
	field(&l, "enc %s", str(sa, "enc"));
	field(&l, "auth %s", str(sa, "auth"));
	endl(&l);
	field(&l, "%lld packets", num(sa, "packets"));
	field(&l, "%lld bytes", num(sa, "bytes"));
	field(&l, "%lld dropped", drops(sa));
	field(&l, "age %llds", num(sa, "age_s"));
	life_left(&l, sa);
	endl(&l);
	if (full) {
		static const char *const shown[] = {
			"id",	 "origin", "spi",  "dir",   "proto",   "mode",	"src",	 "dst",
			"reqid", "enc",	   "auth", "encap", "packets", "bytes", "age_s", NULL};

		rest(&l, sa, shown);
		endl(&l);
	}
}

/* "lo-hi" as telemetry gives it: "" for the full range (or none), "N" for one value. */
static const char *range(const char *s, long long proto, char *buf, size_t len)
{
	unsigned int lo, hi;

	if (!strcmp(s, "-"))
		return "";
	if (sscanf(s, "%u-%u", &lo, &hi) != 2)
		return s;
	if (lo == 0 && (hi == 65535 || ((proto == 1 || proto == 58) && hi == 255)))
		return "";
	if (lo == hi)
		snprintf(buf, len, "%u", lo);
	else
		snprintf(buf, len, "%u-%u", lo, hi);
	return buf;
}

/* Transform @i (0-based) of a policy: its keys carry the suffix i + 1 after the first. */
static void transform(struct line *l, const json_t *pol, unsigned int i)
{
	char k[16], sfx[4] = "";

	if (i)
		snprintf(sfx, sizeof(sfx), "%u", i + 1);
#define KEY(name) (snprintf(k, sizeof(k), "%s%s", name, sfx), k)
	field(l, "%s", str(pol, KEY("ipsec")));
	field(l, "%s", str(pol, KEY("mode")));
	if (has(pol, KEY("tun_src")))
		field(l, "%s -> %s", str(pol, KEY("tun_src")), str(pol, KEY("tun_dst")));
	field(l, "%s", str(pol, KEY("level")));
	field(l, "reqid %lld", num(pol, KEY("reqid")));
#undef KEY
	endl(l);
}

void dps_view_policy(FILE *out, const char *key, const json_t *pol, bool full)
{
	long long proto = num(pol, "proto");
	bool icmp = proto == 1 || proto == 58;
	struct line l = {.out = out};
	unsigned int n;
	char pbuf[8], sbuf[16], dbuf[16];
	const char *sport, *dport;

	header(&l);
	field(&l, "%s: %s %s", key, str(pol, "dir"), str(pol, "action"));
	field(&l, "priority %lld", num(pol, "priority"));
	field(&l, "hits %lld", num(pol, "hits"));
	field(&l, "(%s)", str(pol, "origin"));
	endl(&l);
	field(&l, "src %s", str(pol, "src"));
	field(&l, "dst %s", str(pol, "dst"));
	field(&l, "proto %s", dps_view_proto_name(proto, pbuf, sizeof(pbuf)));
	sport = range(str(pol, "sport"), proto, sbuf, sizeof(sbuf));
	dport = range(str(pol, "dport"), proto, dbuf, sizeof(dbuf));
	if (*sport)
		field(&l, "%s %s", icmp ? "type" : "sport", sport);
	if (*dport)
		field(&l, "%s %s", icmp ? "code" : "dport", dport);
	endl(&l);
	n = has(pol, "transforms") ? (unsigned int)num(pol, "transforms") : has(pol, "ipsec");
	for (unsigned int i = 0; i < n && i < 9; i++)
		transform(&l, pol, i);
	if (full) {
		static const char *const shown[] = {
			"id",	  "origin", "dir",	"action",   "priority",	  "hits",   "src",
			"dst",	  "proto",  "sport",	"dport",    "transforms", "ipsec*", "mode*",
			"level*", "reqid*", "tun_src*", "tun_dst*", NULL,
		};

		rest(&l, pol, shown);
		endl(&l);
	}
}
