// SPDX-License-Identifier: BSD-3-Clause
/*
 * Prometheus text exposition of dpsecd's telemetry. One family per field,
 * its samples together under one HELP and TYPE line; counters end in
 * _total, seconds in _seconds (the Prometheus naming conventions). Which
 * fields become metrics, and which become labels, is a table per object
 * kind: the fields themselves come from the daemon, so a counter added to
 * the dataplane appears here without a change.
 */

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include "control/dpsecctl_metrics.h"

enum kind { SKIP, COUNTER, GAUGE };

struct object_kind {
	const char *prefix;		 /* metric name prefix */
	const char *what;		 /* for HELP: "port", "SA", ... */
	const char *key_label;		 /* label holding the object's key or id */
	bool key_is_id;			 /* the key label is the "id" field, not the key */
	const char *const *labels;	 /* string fields that are labels */
	enum kind (*kind)(const char *); /* what a numeric field is */
};

static bool starts(const char *s, const char *p)
{
	return !strncmp(s, p, strlen(p));
}

static enum kind all_counters(const char *f)
{
	return !strcmp(f, "lcore") ? SKIP : COUNTER;
}

static enum kind sa_kind(const char *f)
{
	if (!strcmp(f, "packets") || !strcmp(f, "bytes") || starts(f, "drop_"))
		return COUNTER;
	if (!strcmp(f, "age_s") || !strcmp(f, "replay_window") || starts(f, "soft_") ||
	    starts(f, "hard_"))
		return GAUGE;
	return SKIP; /* id and reqid are labels; use_s is -1 until first use */
}

static enum kind policy_kind(const char *f)
{
	if (!strcmp(f, "hits"))
		return COUNTER;
	if (!strcmp(f, "age_s"))
		return GAUGE;
	return SKIP;
}

static enum kind proto_kind(const char *f)
{
	return !strcmp(f, "sas") ? GAUGE : COUNTER;
}

static const struct object_kind kinds[] = {
	{"dpsec_port", "port", "port", false, NULL, all_counters},
	{"dpsec_worker", "worker", "worker", false, (const char *const[]){"lcore", NULL},
	 all_counters},
	{"dpsec_sa", "SA", "sa", true,
	 (const char *const[]){"spi", "dir", "proto", "mode", "src", "dst", "reqid", NULL},
	 sa_kind},
	{"dpsec_policy", "policy", "policy", true,
	 (const char *const[]){"dir", "src", "dst", "action", NULL}, policy_kind},
	{"dpsec_ipsec", "IPsec protocol", "proto", false, NULL, proto_kind},
};

/* A field name as part of a metric name: [a-z0-9_], "_s" spelt "_seconds". */
static void metric_name(char *buf, size_t len, const char *prefix, const char *field, enum kind k)
{
	size_t n = (size_t)snprintf(buf, len, "%s_", prefix), flen = strlen(field);
	bool seconds = flen > 2 && !strcmp(field + flen - 2, "_s");

	for (size_t i = 0; i < (seconds ? flen - 2 : flen) && n + 1 < len; i++)
		buf[n++] = isalnum((unsigned char)field[i]) ? (char)tolower(field[i]) : '_';
	buf[n] = '\0';
	if (seconds)
		strncat(buf, "_seconds", len - strlen(buf) - 1);
	if (k == COUNTER)
		strncat(buf, "_total", len - strlen(buf) - 1);
}

/* A label value, escaped as the text format wants: backslash, quote, newline. */
static void label_value(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(out, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", out);
		else
			fputc(*s, out);
	}
}

static void label_str(FILE *out, bool *first, const char *name, const char *s)
{
	fprintf(out, "%s%s=\"", *first ? "" : ",", name);
	label_value(out, s);
	fputc('"', out);
	*first = false;
}

static void label(FILE *out, bool *first, const char *name, const json_t *v)
{
	char num[32];

	if (json_is_integer(v)) {
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		label_str(out, first, name, num);
	} else if (json_is_string(v)) {
		label_str(out, first, name, json_string_value(v));
	}
}

static void labels(FILE *out, const struct object_kind *k, const char *key, const json_t *obj)
{
	bool first = true;

	fputc('{', out);
	if (k->key_is_id && json_is_integer(json_object_get(obj, "id")))
		label(out, &first, k->key_label, json_object_get(obj, "id"));
	else
		label_str(out, &first, k->key_label, key);
	for (const char *const *l = k->labels; l && *l; l++)
		label(out, &first, *l, json_object_get(obj, *l));
	fputc('}', out);
}

static void family(FILE *out, const struct object_kind *k, const json_t *objs, const char *field,
		   enum kind kind)
{
	char name[128];
	const char *key;
	json_t *obj;

	metric_name(name, sizeof(name), k->prefix, field, kind);
	fprintf(out, "# HELP %s dpsecd %s field %s.\n", name, k->what, field);
	fprintf(out, "# TYPE %s %s\n", name, kind == COUNTER ? "counter" : "gauge");
	json_object_foreach((json_t *)objs, key, obj)
	{
		json_t *v = json_object_get(obj, field);

		if (!json_is_integer(v))
			continue;
		fputs(name, out);
		labels(out, k, key, obj);
		fprintf(out, " %" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
	}
}

static void objects(FILE *out, const struct object_kind *k, const json_t *objs)
{
	json_t *seen = json_object(), *obj, *v;
	const char *key, *field;

	if (!json_is_object(objs) || !seen) {
		json_decref(seen);
		return;
	}
	/* Every numeric field any object has, in the order they first appear. */
	json_object_foreach((json_t *)objs, key, obj)
	{
		json_object_foreach(obj, field, v)
		{
			if (json_is_integer(v) && k->kind(field) != SKIP &&
			    !json_object_get(seen, field))
				json_object_set_new(seen, field, json_true());
		}
	}
	json_object_foreach(seen, field, v) family(out, k, objs, field, k->kind(field));
	json_decref(seen);
}

void dps_metrics_print(FILE *out, const json_t *ports, const json_t *workers, const json_t *sas,
		       const json_t *policies, const json_t *protos)
{
	objects(out, &kinds[0], ports);
	objects(out, &kinds[1], workers);
	objects(out, &kinds[2], sas);
	objects(out, &kinds[3], policies);
	objects(out, &kinds[4], protos);
}
