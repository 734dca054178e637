// SPDX-License-Identifier: BSD-3-Clause
/*
 * dpsecctl: the operator CLI of dpsecd.
 *
 * It talks to the daemon through DPDK's telemetry v2 socket,
 * <runtime dir>/dpdk_telemetry.v2, an AF_UNIX SOCK_SEQPACKET socket: the
 * server greets every client with {"version": .., "pid": .., "max_output_len": ..};
 * then each request is one message holding "/cmd" or "/cmd,param" and each
 * reply is one message {"/cmd": value}. A command the server does not know,
 * and a handler that fails, both answer {"/cmd": null}.
 *
 * dpsecd answers its /dpsec/... queries with an object of objects (row owner ->
 * field -> value); a command here is a list of such queries and, for each, a
 * layout saying how to turn it into a table. No DPDK library is needed.
 */

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <linux/pfkeyv2.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "control/config.h"
#include "control/dpsecctl_capture.h"
#include "control/dpsecctl_metrics.h"
#include "control/dpsecctl_monitor.h"
#include "control/dpsecctl_view.h"

#define DEFAULT_CONFIG "/etc/dpsec/dpsec.yaml"
#define DEFAULT_PREFIX "dpsec"
#define DEFAULT_PFKEY  "/run/dpsec/pfkey.sock"
#define RUNTIME_DIR    "/var/run/dpdk"
#define TELEMETRY_SOCK "dpdk_telemetry.v2"

#define REPLY_MAX    (64 * 1024)
#define TEL_CMD_MAX  56	  /* DPDK's MAX_CMD_LEN: a known command is shorter */
#define TEL_REQ_MAX  1023 /* DPDK reads a request into a 1 KiB buffer */
#define IO_TIMEOUT_S 5

#define EXIT_USAGE 2

enum layout_kind {
	/* Owners (ports, workers) as columns, their counters as rows. */
	LAYOUT_COUNTERS,
	/* One row per object (neighbour, SA, policy), its fields as columns. */
	LAYOUT_ROWS,
};

struct layout {
	enum layout_kind kind;
	const char *corner;		/* header of the first column */
	const char *const *columns;	/* ROWS: these fields first, in this order */
	const char *const *hide_prefix; /* COUNTERS: hide these rows when zero everywhere */
	bool sort_rows;			/* ROWS: sort rows by key (strverscmp) */
	const char *empty;		/* printed instead of an empty table */
};

struct query {
	const char *name; /* key in the --json output */
	const char *cmd;  /* telemetry command */
	const struct layout *layout;
	bool paged; /* replies are pages: the parameter is the start index */
};

struct ctl;

struct command {
	const char *name;
	const char *alias;
	const char *args; /* usage of the arguments, NULL if none */
	const char *help;
	int (*run)(struct ctl *ctl, const struct command *c, int argc, char **argv);
	int max_args; /* show: 1 lets an argument become the telemetry parameter */
	struct query queries[4];
};

struct ctl {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char pfkey[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* dpsecd's PF_KEY socket */
	int fd;
	json_t *fake; /* --from-file: canned replies keyed by command */
	char *buf;
	bool json;
	bool all;
	bool verbose;
	FILE *out;
};

static void __attribute__((format(printf, 1, 2))) err_msg(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("dpsecctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void __attribute__((noreturn)) oom(void)
{
	err_msg("out of memory");
	exit(EXIT_FAILURE);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		oom();
	return p;
}

static void *xreallocarray(void *p, size_t n, size_t size)
{
	p = reallocarray(p, n ? n : 1, size ? size : 1);
	if (!p)
		oom();
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		oom();
	return p;
}

static char *__attribute__((format(printf, 1, 2))) xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int ret;

	va_start(ap, fmt);
	ret = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (ret < 0)
		oom();
	return s;
}

/* ---- tables ---------------------------------------------------------------------------- */

struct table {
	size_t ncols;
	size_t nrows; /* row 0 is the header */
	size_t cap;
	char **cells; /* nrows * ncols, NULL prints as "" */
	bool *right;  /* per column: right-aligned */
};

static void table_init(struct table *t, size_t ncols)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	t->right = xcalloc(ncols, sizeof(*t->right));
}

/* Append a row of empty cells and return it. */
static char **table_add_row(struct table *t)
{
	char **row;

	if (t->nrows == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		t->cells = xreallocarray(t->cells, t->cap * t->ncols, sizeof(*t->cells));
	}
	row = &t->cells[t->nrows++ * t->ncols];
	memset(row, 0, t->ncols * sizeof(*row));
	return row;
}

static void table_print(const struct table *t, FILE *out)
{
	size_t *width = xcalloc(t->ncols, sizeof(*width));
	size_t r, c, last;

	for (r = 0; r < t->nrows; r++) {
		for (c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			size_t len = s ? strlen(s) : 0;

			if (len > width[c])
				width[c] = len;
		}
	}
	for (r = 0; r < t->nrows; r++) {
		char **row = &t->cells[r * t->ncols];

		/* No padding after the last non-empty left-aligned cell. */
		for (last = t->ncols; last > 0; last--) {
			if (t->right[last - 1] || (row[last - 1] && row[last - 1][0]))
				break;
		}
		for (c = 0; c < last; c++) {
			const char *s = row[c] ? row[c] : "";
			int w = (int)width[c];

			if (c)
				fputs("  ", out);
			if (t->right[c])
				fprintf(out, "%*s", w, s);
			else if (c + 1 == last)
				fputs(s, out);
			else
				fprintf(out, "%-*s", w, s);
		}
		fputc('\n', out);
	}
	free(width);
}

static void table_free(struct table *t)
{
	size_t i;

	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->right);
	memset(t, 0, sizeof(*t));
}

/* ---- formatting telemetry values ----------------------------------------------------------- */

/* The text of one table cell. */
static char *cell_str(const json_t *v)
{
	char *s;

	switch (json_typeof(v)) {
	case JSON_INTEGER:
		return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	case JSON_REAL:
		return xasprintf("%g", json_real_value(v));
	case JSON_STRING:
		return xstrdup(json_string_value(v));
	case JSON_TRUE:
		return xstrdup("yes");
	case JSON_FALSE:
		return xstrdup("no");
	case JSON_NULL:
		return xstrdup("-");
	case JSON_OBJECT:
	case JSON_ARRAY:
		s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!s)
			oom();
		return s;
	}
	return xstrdup("?");
}

static bool is_zero(const json_t *v)
{
	return !v || json_is_null(v) || (json_is_integer(v) && json_integer_value(v) == 0) ||
	       (json_is_real(v) && json_real_value(v) == 0.0);
}

static bool has_prefix(const char *s, const char *const *prefixes)
{
	for (; prefixes && *prefixes; prefixes++) {
		if (!strncmp(s, *prefixes, strlen(*prefixes)))
			return true;
	}
	return false;
}

static char *upper(const char *s)
{
	char *u = xstrdup(s), *p;

	for (p = u; *p; p++) {
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	}
	return u;
}

/*
 * Check that @v is an object of objects. Says what is wrong and returns -1 if
 * not: a string instead is taken as a message from the daemon.
 */
static int check_shape(const char *cmd, const json_t *v)
{
	const char *key;
	json_t *row;

	if (json_is_string(v)) {
		err_msg("%s: dpsecd says: %s", cmd, json_string_value(v));
		return -1;
	}
	if (!json_is_object(v))
		goto bad;
	json_object_foreach((json_t *)v, key, row)
	{
		if (!json_is_object(row))
			goto bad;
	}
	return 0;
bad:
	err_msg("%s: unexpected reply (not an object of objects); 'dpsecctl raw %s' shows it", cmd,
		cmd);
	return -1;
}

/* Owners as columns, counters as rows. */
static void print_counters(FILE *out, const json_t *v, const struct layout *l, bool all)
{
	json_t *names = json_object(), *owner, *dummy;
	const char *okey, *name;
	size_t ncols = 1 + json_object_size(v), c, hidden = 0;
	struct table t;
	char **row;

	if (!names)
		oom();
	/* Every counter any owner has, in the order they first appear. */
	json_object_foreach((json_t *)v, okey, owner)
	{
		json_object_foreach(owner, name, dummy)
		{
			if (!json_object_get(names, name) &&
			    json_object_set(names, name, json_null()))
				oom();
		}
	}

	table_init(&t, ncols);
	row = table_add_row(&t);
	row[0] = xstrdup(l->corner);
	c = 1;
	json_object_foreach((json_t *)v, okey, owner)
	{
		t.right[c] = true;
		row[c++] = xstrdup(okey);
	}

	json_object_foreach(names, name, dummy)
	{
		bool zero = true;

		json_object_foreach((json_t *)v, okey, owner)
		{
			if (!is_zero(json_object_get(owner, name)))
				zero = false;
		}
		if (zero && !all && has_prefix(name, l->hide_prefix)) {
			hidden++;
			continue;
		}
		row = table_add_row(&t);
		row[0] = xstrdup(name);
		c = 1;
		json_object_foreach((json_t *)v, okey, owner)
		{
			json_t *cv = json_object_get(owner, name);

			row[c++] = cv ? cell_str(cv) : xstrdup("-");
		}
	}

	table_print(&t, out);
	if (hidden)
		fprintf(out, "(%zu all-zero counters hidden; --all shows them)\n", hidden);
	table_free(&t);
	json_decref(names);
}

static int cmp_verstr(const void *a, const void *b)
{
	return strverscmp(*(const char *const *)a, *(const char *const *)b);
}

/* One row per object, its fields as columns. */
static void print_rows(FILE *out, const json_t *v, const struct layout *l)
{
	size_t nrows = json_object_size(v), ncols, r, c;
	json_t *cols = json_object(), *obj, *dummy;
	const char **keys, **colv;
	const char *key, *field;
	const char *const *p;
	struct table t;
	char **row;

	if (!cols)
		oom();
	/* The preferred fields that occur, then any other field in order of appearance. */
	for (p = l->columns; p && *p; p++) {
		json_object_foreach((json_t *)v, key, obj)
		{
			if (json_object_get(obj, *p)) {
				if (json_object_set(cols, *p, json_null()))
					oom();
				break;
			}
		}
	}
	json_object_foreach((json_t *)v, key, obj)
	{
		json_object_foreach(obj, field, dummy)
		{
			if (!json_object_get(cols, field) &&
			    json_object_set(cols, field, json_null()))
				oom();
		}
	}

	keys = xcalloc(nrows, sizeof(*keys));
	r = 0;
	json_object_foreach((json_t *)v, key, obj) keys[r++] = key;
	if (l->sort_rows)
		qsort(keys, nrows, sizeof(*keys), cmp_verstr);

	ncols = 1 + json_object_size(cols);
	colv = xcalloc(ncols, sizeof(*colv));
	table_init(&t, ncols);
	row = table_add_row(&t);
	row[0] = xstrdup(l->corner);
	c = 1;
	json_object_foreach(cols, field, dummy)
	{
		bool numeric = true;

		json_object_foreach((json_t *)v, key, obj)
		{
			json_t *cv = json_object_get(obj, field);

			if (cv && !json_is_number(cv))
				numeric = false;
		}
		t.right[c] = numeric;
		colv[c] = field;
		row[c++] = upper(field);
	}

	for (r = 0; r < nrows; r++) {
		obj = json_object_get(v, keys[r]);
		row = table_add_row(&t);
		row[0] = xstrdup(keys[r]);
		for (c = 1; c < ncols; c++) {
			json_t *cv = json_object_get(obj, colv[c]);

			row[c] = cv ? cell_str(cv) : xstrdup("-");
		}
	}

	table_print(&t, out);
	table_free(&t);
	free(colv);
	free(keys);
	json_decref(cols);
}

/*
 * Print the reply @v to @cmd as a table laid out by @l. Returns 0, or -1 after
 * an error message if @v does not have the expected shape.
 */
static int print_table(FILE *out, const char *cmd, const json_t *v, const struct layout *l,
		       bool all)
{
	if (check_shape(cmd, v))
		return -1;
	if (json_object_size(v) == 0) {
		fprintf(out, "%s\n", l->empty);
		return 0;
	}
	switch (l->kind) {
	case LAYOUT_COUNTERS:
		print_counters(out, v, l, all);
		break;
	case LAYOUT_ROWS:
		print_rows(out, v, l);
		break;
	}
	return 0;
}

static int print_json(FILE *out, const json_t *v)
{
	if (json_dumpf(v, out, JSON_INDENT(2) | JSON_ENCODE_ANY))
		return -1;
	fputc('\n', out);
	return 0;
}

/* ---- telemetry client ----------------------------------------------------------------------- */

static void unreachable(const struct ctl *ctl, int e)
{
	const char *hint = "is dpsecd running? file prefix?";

	if (e == EACCES || e == EPERM)
		hint = "are you root?";
	err_msg("cannot reach dpsecd at %s: %s (%s)", ctl->path, strerror(e), hint);
}

/* Read one message into ctl->buf. @what names the request in messages. */
static ssize_t tel_recv(struct ctl *ctl, const char *what)
{
	struct iovec iov = {.iov_base = ctl->buf, .iov_len = REPLY_MAX};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	do {
		n = recvmsg(ctl->fd, &msg, 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		err_msg("%s: dpsecd at %s did not answer within %d s", what, ctl->path,
			IO_TIMEOUT_S);
		return -1;
	}
	if (n < 0) {
		err_msg("%s: reading from %s: %s", what, ctl->path, strerror(errno));
		return -1;
	}
	if (n == 0) {
		err_msg("%s: dpsecd at %s closed the connection%s", what, ctl->path,
			strcmp(what, "connect") ? "" : " (too many telemetry clients?)");
		return -1;
	}
	if (msg.msg_flags & MSG_TRUNC) {
		err_msg("%s: reply longer than %d bytes", what, REPLY_MAX);
		return -1;
	}
	ctl->buf[n] = '\0';
	return n;
}

/* Connect to the telemetry socket and check the server's greeting. */
static int tel_open(struct ctl *ctl)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
	size_t len = strlen(ctl->path);
	json_t *hello, *version;
	json_error_t jerr;
	ssize_t n;
	int fd;

	if (len >= sizeof(sun.sun_path)) {
		unreachable(ctl, ENAMETOOLONG);
		return -1;
	}
	memcpy(sun.sun_path, ctl->path, len + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err_msg("socket: %s", strerror(errno));
		return -1;
	}
	/* For AF_UNIX, the send timeout also bounds connect() on a full backlog. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv))) {
		err_msg("setsockopt: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		unreachable(ctl, errno == EAGAIN ? ETIMEDOUT : errno);
		close(fd);
		return -1;
	}
	ctl->fd = fd;

	n = tel_recv(ctl, "connect");
	if (n < 0)
		return -1;
	hello = json_loadb(ctl->buf, (size_t)n, 0, &jerr);
	version = json_object_get(hello, "version");
	if (!json_is_string(version) || strncmp(json_string_value(version), "DPDK", 4) ||
	    !json_is_integer(json_object_get(hello, "pid")) ||
	    !json_is_integer(json_object_get(hello, "max_output_len"))) {
		err_msg("%s: not a DPDK telemetry v2 socket (unexpected greeting %.80s)", ctl->path,
			ctl->buf);
		json_decref(hello);
		return -1;
	}
	json_decref(hello);
	return 0;
}

/* --from-file: answer from the canned replies as the server would. */
static json_t *fake_request(struct ctl *ctl, const char *cmd)
{
	size_t n = strcspn(cmd, ",");
	char *name = strndup(cmd, n);
	json_t *v, *reply;

	if (!name)
		oom();
	if (!strcmp(name, "/help") && cmd[n]) {
		/* Known commands are the keys of the file. */
		v = json_object_get(ctl->fake, cmd + n + 1);
		v = v ? json_pack("{s:s}", cmd + n + 1, "canned") : json_null();
	} else {
		v = json_object_get(ctl->fake, cmd);
		if (!v)
			v = json_object_get(ctl->fake, name);
		v = v ? json_incref(v) : json_null();
	}
	reply = json_object();
	if (!v || !reply || json_object_set_new(reply, name, v))
		oom();
	free(name);
	return reply;
}

/*
 * Send @cmd and return the reply, an object with a single member (new
 * reference), or NULL after an error message.
 */
static json_t *tel_request(struct ctl *ctl, const char *cmd)
{
	json_error_t jerr;
	json_t *reply;
	ssize_t n;

	if (ctl->fake)
		return fake_request(ctl, cmd);
	if (ctl->fd < 0 && tel_open(ctl))
		return NULL;

	do {
		n = send(ctl->fd, cmd, strlen(cmd), MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		err_msg("%s: sending to %s: %s", cmd, ctl->path, strerror(errno));
		return NULL;
	}
	n = tel_recv(ctl, cmd);
	if (n < 0)
		return NULL;
	reply = json_loadb(ctl->buf, (size_t)n, 0, &jerr);
	if (!reply) {
		err_msg("%s: malformed reply from dpsecd: %s", cmd, jerr.text);
		return NULL;
	}
	if (!json_is_object(reply) || json_object_size(reply) != 1) {
		err_msg("%s: unexpected reply from dpsecd: %.80s", cmd, ctl->buf);
		json_decref(reply);
		return NULL;
	}
	return reply;
}

static json_t *reply_value(const json_t *reply)
{
	return json_object_iter_value(json_object_iter((json_t *)reply));
}

/* @cmd got a null reply: find out whether the command exists and say so. */
static void explain_null(struct ctl *ctl, const char *cmd)
{
	int n = (int)strcspn(cmd, ",");
	bool known = false;

	if (n < TEL_CMD_MAX) {
		char *help = xasprintf("/help,%.*s", n, cmd);
		json_t *reply = tel_request(ctl, help);

		free(help);
		if (!reply) {
			err_msg("%s: dpsecd returned no data", cmd);
			return;
		}
		known = json_is_object(reply_value(reply));
		json_decref(reply);
	}
	if (!known)
		err_msg("%.*s: unknown telemetry command (is this dpsecd, and as new as dpsecctl? "
			"'dpsecctl raw /' lists the commands)",
			n, cmd);
	else if (cmd[n])
		err_msg("%s: dpsecd could not answer (bad parameter, or no such object)", cmd);
	else
		err_msg("%s: dpsecd could not answer (parameter missing, or internal error)", cmd);
}

/* Send @cmd and return its value (new reference), or NULL after an error message. */
static json_t *tel_query(struct ctl *ctl, const char *cmd)
{
	json_t *reply = tel_request(ctl, cmd), *v;

	if (!reply)
		return NULL;
	v = reply_value(reply);
	if (json_is_null(v)) {
		json_decref(reply);
		explain_null(ctl, cmd);
		return NULL;
	}
	json_incref(v);
	json_decref(reply);
	return v;
}

/* ---- commands ------------------------------------------------------------------------------ */

static const char *const hide_drops[] = {"drop_", NULL};

static const struct layout port_counters = {
	.kind = LAYOUT_COUNTERS,
	.corner = "PORTS",
	.hide_prefix = hide_drops,
	.empty = "no ports",
};

static const struct layout worker_counters = {
	.kind = LAYOUT_COUNTERS,
	.corner = "WORKERS",
	.hide_prefix = hide_drops,
	.empty = "no workers",
};

static const struct layout neigh_rows = {
	.kind = LAYOUT_ROWS,
	.corner = "PORT/ADDRESS",
	.columns =
		(const char *const[]){"port", "address", "mac", "state", "age_ms", "static", NULL},
	.sort_rows = true,
	.empty = "no neighbour entries",
};

static const struct layout sa_rows = {
	.kind = LAYOUT_ROWS,
	.corner = "SA",
	.columns = (const char *const[]){"spi", "dir", "mode", "src", "dst", "reqid", "enc", "auth",
					 "encap", "crypto", "origin", "packets", "bytes", NULL},
	.sort_rows = true,
	.empty = "no SAs",
};

static const struct layout policy_rows = {
	.kind = LAYOUT_ROWS,
	.corner = "POLICY",
	.columns = (const char *const[]){"dir", "priority", "src", "dst", "proto", "action",
					 "level", "reqid", "origin", "hits", NULL},
	.sort_rows = true,
	.empty = "no policies",
};

/* dpsecd answers SAs and policies in pages (telemetry replies are capped):
 * ask from index 0 until a page comes back empty. */
static json_t *paged_query(struct ctl *ctl, const char *cmd)
{
	json_t *all = json_object();
	size_t start = 0;

	if (!all)
		oom();
	for (;;) {
		char *c = xasprintf("%s,%zu", cmd, start);
		json_t *page = tel_query(ctl, c);

		free(c);
		if (!page) {
			json_decref(all);
			return NULL;
		}
		if (!json_is_object(page) || json_object_size(page) == 0) {
			json_decref(page);
			return all;
		}
		start += json_object_size(page);
		if (json_object_update(all, page))
			oom();
		json_decref(page);
	}
}

static int check_args(const struct command *c, int argc)
{
	if (argc > c->max_args) {
		err_msg("%s: too many arguments", c->name);
		return -1;
	}
	return 0;
}

/* Run the queries of @c and print them as tables, or as one JSON object. */
static int cmd_show(struct ctl *ctl, const struct command *c, int argc, char **argv)
{
	const struct query *q;
	json_t *all, *v;
	int ret = 0;

	if (check_args(c, argc))
		return EXIT_USAGE;
	all = json_object();
	if (!all)
		oom();
	for (q = c->queries; q->name; q++) {
		char *cmd = argc ? xasprintf("%s,%s", q->cmd, argv[0]) : xstrdup(q->cmd);

		v = q->paged ? paged_query(ctl, cmd) : tel_query(ctl, cmd);
		/* Fail before printing anything, and before asking more. */
		if (v && !ctl->json && check_shape(cmd, v)) {
			json_decref(v);
			v = NULL;
		}
		free(cmd);
		if (!v) {
			json_decref(all);
			return EXIT_FAILURE;
		}
		if (json_object_set_new(all, q->name, v))
			oom();
	}

	if (ctl->json) {
		print_json(ctl->out, all);
		json_decref(all);
		return EXIT_SUCCESS;
	}
	for (q = c->queries; q->name; q++) {
		if (q != c->queries)
			fputc('\n', ctl->out);
		if (print_table(ctl->out, q->cmd, json_object_get(all, q->name), q->layout,
				ctl->all))
			ret = EXIT_FAILURE;
	}
	json_decref(all);
	return ret;
}

/*
 * @arg names objects of a listing: "0xSPI" the SAs with that SPI, "ID" (or
 * "saID", "policyID") the one with that id. Returns the matching subset.
 */
static json_t *select_objects(const json_t *v, const char *arg, const char *prefix, bool by_spi)
{
	json_t *sel = json_object(), *obj;
	unsigned long want;
	const char *key;
	bool spi = false;
	char *end;

	if (!sel)
		oom();
	if (by_spi && (!strncmp(arg, "0x", 2) || !strncmp(arg, "0X", 2))) {
		spi = true;
		arg += 2;
	} else if (!strncmp(arg, prefix, strlen(prefix))) {
		arg += strlen(prefix);
	}
	errno = 0;
	want = strtoul(arg, &end, spi ? 16 : 10);
	if (!*arg || *end || errno || arg[0] == '-') {
		json_decref(sel);
		return NULL;
	}
	json_object_foreach((json_t *)v, key, obj)
	{
		bool hit;

		if (spi)
			hit = strtoul(json_string_value(json_object_get(obj, "spi")) ?: "", NULL,
				      16) == want;
		else
			hit = json_integer_value(json_object_get(obj, "id")) == (json_int_t)want;
		if (hit && json_object_set(sel, key, obj))
			oom();
	}
	return sel;
}

/* The readable view of a listing: every object in natural key order. */
static void print_views(struct ctl *ctl, const json_t *v, bool is_sa)
{
	size_t n = json_object_size(v), i = 0;
	const char **keys = xcalloc(n, sizeof(*keys));
	const char *key;
	json_t *obj;

	json_object_foreach((json_t *)v, key, obj) keys[i++] = key;
	qsort(keys, n, sizeof(*keys), cmp_verstr);
	for (i = 0; i < n; i++) {
		obj = json_object_get(v, keys[i]);
		if (is_sa)
			dps_view_sa(ctl->out, keys[i], obj, ctl->verbose);
		else
			dps_view_policy(ctl->out, keys[i], obj, ctl->verbose);
	}
	free(keys);
}

/* sa, policy: the readable view, -v the full table, or "show SPI|ID" one object. */
static int cmd_objects(struct ctl *ctl, const struct command *c, int argc, char **argv)
{
	const struct query *q = &c->queries[0];
	bool is_sa = !strcmp(c->name, "sa");
	json_t *v, *out;
	int ret = EXIT_SUCCESS;

	if (argc == 1 || argc > 2 || (argc == 2 && strcmp(argv[0], "show"))) {
		err_msg("%s: expected no argument or 'show %s'", c->name, is_sa ? "SPI|ID" : "ID");
		return EXIT_USAGE;
	}
	v = paged_query(ctl, q->cmd);
	if (!v)
		return EXIT_FAILURE;
	if (check_shape(q->cmd, v)) {
		json_decref(v);
		return EXIT_FAILURE;
	}
	if (argc == 2) {
		json_t *sel = select_objects(v, argv[1], is_sa ? "sa" : "policy", is_sa);

		json_decref(v);
		if (!sel) {
			err_msg("%s show: '%s' is not %s", c->name, argv[1],
				is_sa ? "an SPI (0x...) nor an SA id" : "a policy id");
			return EXIT_USAGE;
		}
		if (json_object_size(sel) == 0) {
			err_msg("%s show: no %s %s", c->name, is_sa ? "SA" : "policy", argv[1]);
			json_decref(sel);
			return EXIT_FAILURE;
		}
		v = sel;
	}
	if (ctl->json) {
		out = json_pack("{s:O}", q->name, v);
		if (!out)
			oom();
		print_json(ctl->out, out);
		json_decref(out);
	} else if (json_object_size(v) == 0) {
		fprintf(ctl->out, "%s\n", q->layout->empty);
	} else if (ctl->verbose && argc == 0) {
		ret = print_table(ctl->out, q->cmd, v, q->layout, ctl->all) ? EXIT_FAILURE : 0;
	} else {
		print_views(ctl, v, is_sa);
	}
	json_decref(v);
	return ret;
}

/* Connect to dpsecd's PF_KEY socket and make it promiscuous (RFC 2367 X_PROMISC). */
static int pfkey_open(const struct ctl *ctl)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct sadb_msg promisc = {
		.sadb_msg_version = PF_KEY_V2,
		.sadb_msg_type = SADB_X_PROMISC,
		.sadb_msg_satype = 1, /* on */
		.sadb_msg_len = sizeof(struct sadb_msg) / 8,
		.sadb_msg_pid = (uint32_t)getpid(),
	};
	int fd;

	memcpy(sun.sun_path, ctl->pfkey, sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err_msg("socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    send(fd, &promisc, sizeof(promisc), MSG_NOSIGNAL) != sizeof(promisc)) {
		err_msg("cannot reach dpsecd's PF_KEY socket %s: %s (%s)", ctl->pfkey,
			strerror(errno),
			errno == EACCES || errno == EPERM
				? "are you root?"
				: "is dpsecd running with pfkey enabled?");
		close(fd);
		return -1;
	}
	return fd;
}

/* Print SA and policy changes, EXPIREs and ACQUIREs as they happen, until killed. */
static int cmd_monitor(struct ctl *ctl, const struct command *c, int argc, char **argv)
{
	static uint8_t msg[65535 * 8];
	char line[512];
	int fd;

	(void)argv;
	if (check_args(c, argc))
		return EXIT_USAGE;
	fd = pfkey_open(ctl);
	if (fd < 0)
		return EXIT_FAILURE;
	for (;;) {
		ssize_t n = recv(fd, msg, sizeof(msg), 0);
		int len;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err_msg("monitor: %s",
				n == 0 ? "dpsecd closed the PF_KEY socket" : strerror(errno));
			close(fd);
			return EXIT_FAILURE;
		}
		len = dps_monitor_format(msg, (size_t)n, line, sizeof(line));
		if (len < 0)
			err_msg("monitor: a malformed message of %zd bytes", n);
		else if (len > 0 && fprintf(ctl->out, "%s\n", line) < 0)
			break;
		if (fflush(ctl->out))
			break; /* the reader went away */
	}
	close(fd);
	return EXIT_SUCCESS;
}

/* Every counter as Prometheus text (node_exporter's textfile collector), or --json. */
static int cmd_metrics(struct ctl *ctl, const struct command *c, int argc, char **argv)
{
	static const char *const cmds[] = {"/dpsec/ports", "/dpsec/workers", "/dpsec/sa",
					   "/dpsec/policy"};
	static const char *const protos[] = {"esp", "ah", "ipcomp"};
	json_t *v[4] = {NULL}, *proto;
	int ret = EXIT_FAILURE;

	(void)argv;
	if (check_args(c, argc))
		return EXIT_USAGE;
	proto = json_object();
	if (!proto)
		oom();
	for (unsigned int i = 0; i < 4; i++) {
		v[i] = i >= 2 ? paged_query(ctl, cmds[i]) : tel_query(ctl, cmds[i]);
		if (!v[i] || check_shape(cmds[i], v[i]))
			goto out;
	}
	for (unsigned int i = 0; i < 3; i++) {
		char *cmd = xasprintf("/dpsec/stats/%s", protos[i]);
		json_t *p = tel_query(ctl, cmd);

		free(cmd);
		if (!p || json_object_set_new(proto, protos[i], p))
			goto out;
	}
	if (ctl->json) {
		json_t *all = json_pack("{s:O,s:O,s:O,s:O,s:O}", "ports", v[0], "workers", v[1],
					"sas", v[2], "policies", v[3], "protocols", proto);

		if (!all)
			oom();
		print_json(ctl->out, all);
		json_decref(all);
	} else {
		dps_metrics_print(ctl->out, v[0], v[1], v[2], v[3], proto);
	}
	ret = EXIT_SUCCESS;
out:
	for (unsigned int i = 0; i < 4; i++)
		json_decref(v[i]);
	json_decref(proto);
	return ret;
}

static const struct layout proto_counters = {
	.kind = LAYOUT_COUNTERS,
	.corner = "PROTOCOL",
	.empty = "no statistics",
};

/* stats: ports and workers; stats esp|ah|ipcomp: that protocol's totals. */
static int cmd_stats(struct ctl *ctl, const struct command *c, int argc, char **argv)
{
	static const char *const protos[] = {"esp", "ah", "ipcomp"};
	json_t *v, *all;
	char *cmd;
	size_t i;
	int ret;

	if (argc == 0)
		return cmd_show(ctl, c, 0, argv);
	for (i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
		if (argc == 1 && !strcmp(argv[0], protos[i]))
			break;
	if (i == sizeof(protos) / sizeof(protos[0])) {
		err_msg("stats: expected no argument, or esp, ah or ipcomp");
		return EXIT_USAGE;
	}
	cmd = xasprintf("/dpsec/stats/%s", protos[i]);
	v = tel_query(ctl, cmd);
	if (!v) {
		free(cmd);
		return EXIT_FAILURE;
	}
	all = json_pack("{s:O}", protos[i], v);
	if (!all)
		oom();
	if (ctl->json)
		ret = print_json(ctl->out, all) ? EXIT_FAILURE : EXIT_SUCCESS;
	else
		ret = print_table(ctl->out, cmd, all, &proto_counters, true) ? EXIT_FAILURE
									     : EXIT_SUCCESS;
	json_decref(all);
	json_decref(v);
	free(cmd);
	return ret;
}

static json_t *capture_query(void *ctx, const char *cmd)
{
	return tel_query(ctx, cmd);
}

static int cmd_capture(struct ctl *ctl, const struct command *c, int argc, char **argv)
{
	(void)c;
	return dps_capture_run(argc + 1, argv - 1, capture_query, ctl);
}

/* log-level [SUBSYSTEM LEVEL]: the levels, after setting one. */
static int cmd_log_level(struct ctl *ctl, const struct command *c, int argc, char **argv)
{
	const char *names[] = {"dataplane", "pfkey", "store"};
	char *cmd;
	json_t *v;
	int ret = EXIT_SUCCESS;

	(void)c;
	if (argc != 0 && argc != 2) {
		err_msg("log-level: expected no argument, or SUBSYSTEM LEVEL");
		return EXIT_USAGE;
	}
	cmd = argc ? xasprintf("/dpsec/log_level,%s %s", argv[0], argv[1])
		   : xstrdup("/dpsec/log_level");
	v = tel_query(ctl, cmd);
	free(cmd);
	if (!v)
		return EXIT_FAILURE;
	if (json_is_string(json_object_get(v, "error"))) {
		err_msg("log-level: %s", json_string_value(json_object_get(v, "error")));
		ret = EXIT_FAILURE;
	} else if (ctl->json) {
		ret = print_json(ctl->out, v) ? EXIT_FAILURE : EXIT_SUCCESS;
	} else {
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			fprintf(ctl->out, "%-10s %s\n", names[i],
				json_string_value(json_object_get(v, names[i])) ?: "?");
	}
	json_decref(v);
	return ret;
}

static int cmd_raw(struct ctl *ctl, const struct command *c, int argc, char **argv)
{
	json_t *reply;
	char *cmd;

	if (argc < 1) {
		err_msg("raw: missing telemetry command, e.g. 'dpsecctl raw /'");
		return EXIT_USAGE;
	}
	if (check_args(c, argc))
		return EXIT_USAGE;
	if (argv[0][0] != '/') {
		err_msg("raw: '%s' is not a telemetry command (they look like /ethdev/stats)",
			argv[0]);
		return EXIT_USAGE;
	}
	if (argc > 1 && strchr(argv[0], ',')) {
		err_msg("raw: give the parameter after a comma or as an argument, not both");
		return EXIT_USAGE;
	}
	cmd = argc > 1 ? xasprintf("%s,%s", argv[0], argv[1]) : xstrdup(argv[0]);
	if (strlen(cmd) > TEL_REQ_MAX) {
		err_msg("raw: request longer than %d bytes", TEL_REQ_MAX);
		free(cmd);
		return EXIT_USAGE;
	}
	reply = tel_request(ctl, cmd);
	if (!reply) {
		free(cmd);
		return EXIT_FAILURE;
	}
	if (json_is_null(reply_value(reply))) {
		explain_null(ctl, cmd);
		json_decref(reply);
		free(cmd);
		return EXIT_FAILURE;
	}
	print_json(ctl->out, reply);
	json_decref(reply);
	free(cmd);
	return EXIT_SUCCESS;
}

/*
 * The commands. An object-of-objects query (sa, policy, ...) is one more
 * entry here plus, if its rows want a field order, one struct layout.
 */
static const struct command commands[] = {
	{
		.name = "stats",
		.args = "[esp|ah|ipcomp]",
		.help = "port and worker counters, or one IPsec protocol's totals",
		.run = cmd_stats,
		.queries = {{"ports", "/dpsec/ports", &port_counters, false},
			    {"workers", "/dpsec/workers", &worker_counters, false}},
	},
	{
		.name = "neigh",
		.alias = "neighbours",
		.help = "neighbour (ARP/NDP) cache",
		.run = cmd_show,
		.queries = {{"neighbours", "/dpsec/neighbours", &neigh_rows, false}},
	},
	{
		.name = "sa",
		.args = "[show SPI|ID]",
		.help = "security associations with their counters",
		.run = cmd_objects,
		.queries = {{"sas", "/dpsec/sa", &sa_rows, true}},
	},
	{
		.name = "policy",
		.alias = "policies",
		.args = "[show ID]",
		.help = "security policies with their hits",
		.run = cmd_objects,
		.queries = {{"policies", "/dpsec/policy", &policy_rows, true}},
	},
	{
		.name = "metrics",
		.help = "every counter in Prometheus text format (labels port, worker, SA, policy)",
		.run = cmd_metrics,
	},
	{
		.name = "monitor",
		.help = "stream SA and policy changes, EXPIREs and ACQUIREs (PF_KEY)",
		.run = cmd_monitor,
	},
	{
		.name = "capture",
		.args = "--point P [--sa ID] [--policy ID] [-c N] [-w FILE|-]",
		.help = "pcapng of the packets at an IPsec point (out-clear, in-clear, "
			"out-cipher, in-cipher, drop)",
		.run = cmd_capture,
	},
	{
		.name = "log-level",
		.args = "[SUBSYSTEM LEVEL]",
		.help = "log levels of dataplane, pfkey and store; set one at run time",
		.run = cmd_log_level,
		.max_args = 2,
	},
	{
		.name = "raw",
		.args = "CMD [PARAM]",
		.help = "send a telemetry command (\"/\" lists them), print the JSON reply",
		.run = cmd_raw,
		.max_args = 2,
	},
};

static const struct command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(name, commands[i].name) ||
		    (commands[i].alias && !strcmp(name, commands[i].alias)))
			return &commands[i];
	}
	return NULL;
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: dpsecctl [OPTIONS] COMMAND [ARGS]\n"
		   "\n"
		   "Query a running dpsecd through its DPDK telemetry socket.\n"
		   "\n"
		   "Commands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct command *c = &commands[i];
		char *s = xasprintf("%s %s", c->name, c->args ? c->args : "");

		fprintf(f, "  %-18s %s\n", s, c->help);
		free(s);
	}
	fprintf(f,
		"\n"
		"Options:\n"
		"  -c, --config FILE       read eal.file_prefix from FILE\n"
		"                          (default " DEFAULT_CONFIG ", or prefix \"" DEFAULT_PREFIX
		"\" without it)\n"
		"  -p, --file-prefix NAME  DPDK file prefix of dpsecd (overrides -c)\n"
		"  -s, --socket PATH       telemetry socket (overrides -c and -p)\n"
		"      --pfkey PATH        monitor: dpsecd's PF_KEY socket (default pfkey.socket\n"
		"                          of the configuration, or " DEFAULT_PFKEY ")\n"
		"  -j, --json              machine-readable output\n"
		"  -a, --all               stats: also show drop counters that are zero\n"
		"  -v, --verbose           sa, policy: every field (a wide table; with show,\n"
		"                          every field of the object)\n"
		"      --from-file FILE    answer from FILE instead of dpsecd (offline reading,\n"
		"                          tests): a JSON object of telemetry command -> reply\n"
		"                          value; \"/cmd,ARG\" falls back to \"/cmd\"; a command\n"
		"                          not in FILE is unknown\n"
		"  -h, --help              show this help\n"
		"\n"
		"Exit status: 0 ok, 1 error, 2 bad usage.\n");
}

/* Work out the telemetry socket path from -s, -p or the configuration. */
static int resolve_path(struct ctl *ctl, const char *sock, const char *prefix, const char *config)
{
	struct dps_config *cfg = NULL;
	char err[512] = "";
	int n;

	if (sock) {
		n = snprintf(ctl->path, sizeof(ctl->path), "%s", sock);
		goto check;
	}
	if (!prefix && !config && access(DEFAULT_CONFIG, F_OK) && errno == ENOENT)
		prefix = DEFAULT_PREFIX;
	if (!prefix) {
		if (!config)
			config = DEFAULT_CONFIG;
		cfg = xcalloc(1, sizeof(*cfg));
		if (dps_config_load(config, cfg, err, sizeof(err))) {
			err_msg("%s (-p PREFIX or -s PATH bypass the configuration)",
				err[0] ? err : config);
			free(cfg);
			return -1;
		}
		prefix = cfg->eal.file_prefix[0] ? cfg->eal.file_prefix : DEFAULT_PREFIX;
		if (!ctl->pfkey[0])
			memcpy(ctl->pfkey, cfg->pfkey.socket, sizeof(ctl->pfkey));
	}
	n = snprintf(ctl->path, sizeof(ctl->path), RUNTIME_DIR "/%s/" TELEMETRY_SOCK, prefix);
	if (cfg) {
		dps_config_free(cfg);
		free(cfg);
	}
check:
	if (n < 0 || (size_t)n >= sizeof(ctl->path)) {
		err_msg("telemetry socket path too long (at most %zu bytes)",
			sizeof(ctl->path) - 1);
		return -1;
	}
	return 0;
}

static int load_fake(struct ctl *ctl, const char *file)
{
	json_error_t jerr;

	ctl->fake = json_load_file(file, 0, &jerr);
	if (!json_is_object(ctl->fake)) {
		err_msg("%s:%d: %s", file, jerr.line,
			ctl->fake ? "expected an object of command -> reply value" : jerr.text);
		json_decref(ctl->fake);
		ctl->fake = NULL;
		return -1;
	}
	snprintf(ctl->path, sizeof(ctl->path), "%s", file);
	return 0;
}

enum {
	OPT_FROM_FILE = 256,
	OPT_PFKEY,
};

#ifndef DPSECCTL_NO_MAIN
int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"file-prefix", required_argument, NULL, 'p'},
		{"socket", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"all", no_argument, NULL, 'a'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		/* Debugging: answer from a file {"/cmd": value, ...} instead of dpsecd. */
		{"from-file", required_argument, NULL, OPT_FROM_FILE},
		{"pfkey", required_argument, NULL, OPT_PFKEY},
		{NULL, 0, NULL, 0},
	};
	const char *config = NULL, *prefix = NULL, *sock = NULL, *from_file = NULL;
	struct ctl ctl = {.fd = -1};
	const struct command *cmd;
	int opt, ret;
	bool capture = false;

	/* capture has options of its own (-c COUNT): the global ones go before it */
	for (int i = 1; i < argc; i++)
		capture |= strcmp(argv[i], "capture") == 0;
	while ((opt = getopt_long(argc, argv, capture ? "+c:p:s:javh" : "c:p:s:javh", longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 'p':
			prefix = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		case 'j':
			ctl.json = true;
			break;
		case 'a':
			ctl.all = true;
			break;
		case 'v':
			ctl.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		case OPT_FROM_FILE:
			from_file = optarg;
			break;
		case OPT_PFKEY:
			if (strlen(optarg) >= sizeof(ctl.pfkey)) {
				err_msg("--pfkey: path too long");
				return EXIT_USAGE;
			}
			strcpy(ctl.pfkey, optarg);
			break;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = find_command(argv[optind]);
	if (!cmd) {
		err_msg("unknown command '%s'", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}

	if (from_file ? load_fake(&ctl, from_file) : resolve_path(&ctl, sock, prefix, config))
		return EXIT_FAILURE;
	if (!ctl.pfkey[0])
		strcpy(ctl.pfkey, DEFAULT_PFKEY);
	ctl.buf = xcalloc(1, REPLY_MAX + 1);
	ctl.out = stdout;

	ret = cmd->run(&ctl, cmd, argc - optind - 1, argv + optind + 1);
	if (ret == EXIT_USAGE)
		usage(stderr);

	if (ctl.fd >= 0)
		close(ctl.fd);
	json_decref(ctl.fake);
	free(ctl.buf);
	if (fflush(stdout) || ferror(stdout)) {
		err_msg("writing output: %s", strerror(errno));
		ret = EXIT_FAILURE;
	}
	return ret;
}
#endif
