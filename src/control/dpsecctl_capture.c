/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dpsecctl capture --point P [--sa ID] [--policy ID] [-c COUNT] [-w FILE|-]
 * [--rate N] [--timeout S]: dpsecd's control thread writes the file (it owns
 * the copies the workers make); to write to stdout, dpsecctl has it written
 * into a private temporary directory and copies it out when the capture ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control/dpsecctl_capture.h"

#define EXIT_USAGE   2
#define POLL_US	     50000
#define DEFAULT_RATE 1000

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void usage_capture(void)
{
	fprintf(stderr,
		"usage: dpsecctl capture --point {out-clear,in-clear,out-cipher,in-cipher,drop}\n"
		"                        [--sa ID] [--policy ID] [-c COUNT] [-w FILE|-]\n"
		"                        [--rate N] [--timeout SECONDS]\n");
}

static bool parse_u(const char *s, unsigned long long max, unsigned long long *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 10);
	return s[0] != '\0' && s[0] != '-' && *end == '\0' && errno == 0 && *v <= max;
}

/* The file's absolute path: dpsecd has another working directory. */
static char *absolute(const char *file)
{
	char dir[PATH_MAX], *slash, *copy = strdup(file), *out = NULL;

	if (copy == NULL)
		return NULL;
	slash = strrchr(copy, '/');
	if (slash == copy) {
		out = strdup(file);
	} else {
		if (slash)
			*slash = '\0';
		if (realpath(slash ? copy : ".", dir) != NULL &&
		    asprintf(&out, "%s/%s", dir, slash ? slash + 1 : file) < 0)
			out = NULL;
	}
	free(copy);
	return out;
}

static int copy_out(const char *path)
{
	char buf[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			ret = -1;
	close(fd);
	return n < 0 ? -1 : ret;
}

static long long status_int(const json_t *st, const char *key)
{
	return json_integer_value(json_object_get(st, key));
}

int dps_capture_run(int argc, char **argv, dps_tel_query_fn query, void *ctx)
{
	enum { OPT_POINT = 256, OPT_SA, OPT_POLICY, OPT_RATE, OPT_TIMEOUT };
	static const struct option opts[] = {
		{"point", required_argument, NULL, OPT_POINT},
		{"sa", required_argument, NULL, OPT_SA},
		{"policy", required_argument, NULL, OPT_POLICY},
		{"count", required_argument, NULL, 'c'},
		{"write", required_argument, NULL, 'w'},
		{"rate", required_argument, NULL, OPT_RATE},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{NULL, 0, NULL, 0},
	};
	unsigned long long sa = 0, pol = 0, count = 0, rate = DEFAULT_RATE, timeout = 0;
	const char *point = NULL, *file = "-";
	char tmpdir[] = "/tmp/dpsecctl-capture-XXXXXX", *path = NULL, *cmd = NULL;
	struct sigaction sa_int = {.sa_handler = on_signal};
	json_t *v, *st = NULL;
	struct timespec t0, now;
	bool to_stdout, stopped = false;
	int opt, ret = EXIT_FAILURE;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "+c:w:", opts, NULL)) != -1) {
		bool ok = true;

		switch (opt) {
		case OPT_POINT:
			point = optarg;
			break;
		case OPT_SA:
			ok = parse_u(optarg, UINT32_MAX, &sa) && sa;
			break;
		case OPT_POLICY:
			ok = parse_u(optarg, UINT32_MAX, &pol) && pol;
			break;
		case 'c':
			ok = parse_u(optarg, ULLONG_MAX, &count);
			break;
		case 'w':
			file = optarg;
			break;
		case OPT_RATE:
			ok = parse_u(optarg, UINT32_MAX, &rate) && rate;
			break;
		case OPT_TIMEOUT:
			ok = parse_u(optarg, 86400, &timeout);
			break;
		default:
			ok = false;
		}
		if (!ok) {
			if (opt != '?')
				fprintf(stderr, "dpsecctl: capture: bad value '%s'\n", optarg);
			usage_capture();
			return EXIT_USAGE;
		}
	}
	if (point == NULL || optind != argc) {
		usage_capture();
		return EXIT_USAGE;
	}
	to_stdout = strcmp(file, "-") == 0;
	if (to_stdout) {
		if (mkdtemp(tmpdir) == NULL || asprintf(&path, "%s/capture.pcapng", tmpdir) < 0) {
			fprintf(stderr, "dpsecctl: capture: temporary file: %s\n", strerror(errno));
			return EXIT_FAILURE;
		}
	} else if ((path = absolute(file)) == NULL) {
		fprintf(stderr, "dpsecctl: capture: %s: %s\n", file, strerror(errno));
		return EXIT_FAILURE;
	}
	if (asprintf(&cmd, "/dpsec/capture/start,%s %llu %llu %llu %llu %s", point, sa, pol, count,
		     rate, path) < 0)
		goto out;
	v = query(ctx, cmd);
	if (v == NULL)
		goto out;
	if (json_is_string(json_object_get(v, "error"))) {
		fprintf(stderr, "dpsecctl: capture: %s\n",
			json_string_value(json_object_get(v, "error")));
		json_decref(v);
		goto out;
	}
	json_decref(v);
	sigaction(SIGINT, &sa_int, NULL);
	sigaction(SIGTERM, &sa_int, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		json_decref(st);
		st = query(ctx, "/dpsec/capture/status");
		if (st == NULL)
			goto out;
		if (status_int(st, "done"))
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!stopped &&
		    (interrupted || (timeout && now.tv_sec - t0.tv_sec >= (time_t)timeout))) {
			json_decref(query(ctx, "/dpsec/capture/stop"));
			stopped = true;
		}
		usleep(POLL_US);
	}
	fprintf(stderr, "%lld packets captured at %s, %lld skipped (over the rate or no room)\n",
		status_int(st, "written"), point, status_int(st, "skipped"));
	if (to_stdout && copy_out(path) < 0) {
		fprintf(stderr, "dpsecctl: capture: copying %s: %s\n", path, strerror(errno));
		goto out;
	}
	ret = EXIT_SUCCESS;
out:
	json_decref(st);
	if (to_stdout && path) {
		unlink(path);
		rmdir(tmpdir);
	}
	free(path);
	free(cmd);
	return ret;
}
