/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * GET /metrics in libmicrohttpd's own thread: a telemetry client of dpsecd
 * itself (the DPDK telemetry socket answers from its own thread, so the
 * control thread and the workers never see the scrape), then
 * dps_metrics_print().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <rte_eal.h>

#include "common/log.h"
#include "control/dpsecctl_metrics.h"
#include "control/metrics_http.h"

#define REPLY_MAX (64 * 1024)

static struct MHD_Daemon *httpd;

struct tel {
	int fd;
	char buf[REPLY_MAX + 1];
};

static int tel_recv(struct tel *t)
{
	ssize_t n;

	do {
		n = recv(t->fd, t->buf, REPLY_MAX, 0);
	} while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	t->buf[n] = '\0';
	return 0;
}

static int tel_open(struct tel *t)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 5};

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/dpdk_telemetry.v2",
		 rte_eal_get_runtime_dir());
	t->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (t->fd < 0)
		return -1;
	if (setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    connect(t->fd, (struct sockaddr *)&sun, sizeof(sun)) || tel_recv(t)) {
		close(t->fd);
		return -1;
	}
	return 0;
}

/* The value of @cmd's reply (new reference), NULL on any failure. */
static json_t *tel_query(struct tel *t, const char *cmd)
{
	json_t *reply, *v;

	if (send(t->fd, cmd, strlen(cmd), MSG_NOSIGNAL) < 0 || tel_recv(t))
		return NULL;
	reply = json_loads(t->buf, 0, NULL);
	/* {"/cmd": value}: the key is the command without its parameter */
	v = json_is_object(reply) && json_object_size(reply) == 1
		    ? json_incref(json_object_iter_value(json_object_iter(reply)))
		    : NULL;
	json_decref(reply);
	if (json_is_null(v)) {
		json_decref(v);
		return NULL;
	}
	return v;
}

/* Replies in pages (/dpsec/sa, /dpsec/policy): from 0 until a page is empty. */
static json_t *tel_paged(struct tel *t, const char *cmd)
{
	json_t *all = json_object();
	size_t start = 0;

	while (all != NULL) {
		char c[64];
		json_t *page;

		snprintf(c, sizeof(c), "%s,%zu", cmd, start);
		page = tel_query(t, c);
		if (page == NULL || !json_is_object(page) || json_object_size(page) == 0) {
			if (page == NULL) {
				json_decref(all);
				all = NULL;
			}
			json_decref(page);
			break;
		}
		start += json_object_size(page);
		json_object_update(all, page);
		json_decref(page);
	}
	return all;
}

/* The exposition text (malloc'd) or NULL. */
static char *metrics_text(size_t *len)
{
	static const char *const protos[] = {"esp", "ah", "ipcomp"};
	struct tel *t = malloc(sizeof(*t));
	json_t *ports = NULL, *workers = NULL, *sas = NULL, *pols = NULL, *proto = json_object();
	char *text = NULL;
	FILE *f;

	if (t == NULL || proto == NULL || tel_open(t)) {
		free(t);
		json_decref(proto);
		return NULL;
	}
	ports = tel_query(t, "/dpsec/ports");
	workers = tel_query(t, "/dpsec/workers");
	sas = tel_paged(t, "/dpsec/sa");
	pols = tel_paged(t, "/dpsec/policy");
	for (unsigned int i = 0; i < 3; i++) {
		char c[32];

		snprintf(c, sizeof(c), "/dpsec/stats/%s", protos[i]);
		json_object_set_new(proto, protos[i], tel_query(t, c));
	}
	close(t->fd);
	free(t);
	if (ports && workers && sas && pols && (f = open_memstream(&text, len)) != NULL) {
		dps_metrics_print(f, ports, workers, sas, pols, proto);
		if (fclose(f)) {
			free(text);
			text = NULL;
		}
	}
	json_decref(ports);
	json_decref(workers);
	json_decref(sas);
	json_decref(pols);
	json_decref(proto);
	return text;
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned int status, char *body, size_t len,
			      const char *type)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_len, void **state)
{
	char *text;
	size_t len = 0;

	(void)cls, (void)version, (void)upload, (void)upload_len, (void)state;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return answer(c, MHD_HTTP_METHOD_NOT_ALLOWED, strdup("GET /metrics\n"), 13,
			      "text/plain");
	if (strcmp(url, "/metrics"))
		return answer(c, MHD_HTTP_NOT_FOUND, strdup("GET /metrics\n"), 13, "text/plain");
	text = metrics_text(&len);
	if (text == NULL)
		return answer(c, MHD_HTTP_SERVICE_UNAVAILABLE, strdup("telemetry unavailable\n"),
			      22, "text/plain");
	return answer(c, MHD_HTTP_OK, text, len, "text/plain; version=0.0.4; charset=utf-8");
}

int dps_metrics_http_start(const struct dps_metrics_cfg *cfg)
{
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(cfg->port)};
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(cfg->port)};
	const struct sockaddr *sa;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

	if (!cfg->enabled)
		return 0;
	if (inet_pton(AF_INET, cfg->address, &a4.sin_addr) == 1) {
		sa = (const struct sockaddr *)&a4;
	} else if (inet_pton(AF_INET6, cfg->address, &a6.sin6_addr) == 1) {
		sa = (const struct sockaddr *)&a6;
		flags |= MHD_USE_IPv6;
	} else {
		DP_LOG(ERR, "metrics: bad address %s", cfg->address);
		return -1;
	}
	httpd = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, NULL,
				 MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_CONNECTION_LIMIT, 8u,
				 MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	if (httpd == NULL) {
		DP_LOG(ERR, "metrics: cannot listen on %s port %u", cfg->address, cfg->port);
		return -1;
	}
	DP_LOG(NOTICE, "metrics: http://%s%s%s:%u/metrics", sa->sa_family == AF_INET6 ? "[" : "",
	       cfg->address, sa->sa_family == AF_INET6 ? "]" : "", cfg->port);
	return 0;
}

void dps_metrics_http_stop(void)
{
	if (httpd != NULL)
		MHD_stop_daemon(httpd);
	httpd = NULL;
}
