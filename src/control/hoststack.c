/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <rte_log.h>

#include "common/log.h"
#include "control/hoststack.h"

struct nl_req {
	struct nlmsghdr nh;
	union {
		struct ifaddrmsg ifa;
		struct rtmsg rt;
	};
	char attrs[256];
};

static void nl_attr(struct nl_req *r, unsigned short type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->nh.nlmsg_len));

	a->rta_type = type;
	a->rta_len = RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	r->nh.nlmsg_len = NLMSG_ALIGN(r->nh.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* Send one request and wait for its acknowledgement; EEXIST counts as done. */
static int nl_talk(int fd, struct nl_req *r)
{
	static uint32_t seq;
	char buf[4096];
	ssize_t n;

	r->nh.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	r->nh.nlmsg_seq = ++seq;
	if (send(fd, r, r->nh.nlmsg_len, 0) < 0)
		return -errno;
	n = recv(fd, buf, sizeof(buf), 0);
	if (n < 0)
		return -errno;
	struct nlmsghdr *h = (struct nlmsghdr *)buf;

	if (!NLMSG_OK(h, (size_t)n) || h->nlmsg_type != NLMSG_ERROR)
		return -EPROTO;
	int err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;

	return err == -EEXIST ? 0 : err;
}

static size_t alen(int family)
{
	return family == AF_INET ? 4 : 16;
}

static const void *abytes(const struct dps_addr *a)
{
	return a->family == AF_INET ? (const void *)&a->v4 : (const void *)&a->v6;
}

static int addr_add(int fd, int ifindex, const struct dps_prefix *p)
{
	struct nl_req r = {0};
	uint32_t flags = IFA_F_NODAD; /* the dataplane owns the address already */

	r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(r.ifa));
	r.nh.nlmsg_type = RTM_NEWADDR;
	r.nh.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	r.ifa.ifa_family = p->addr.family;
	r.ifa.ifa_prefixlen = p->len;
	r.ifa.ifa_index = ifindex;
	nl_attr(&r, IFA_LOCAL, abytes(&p->addr), alen(p->addr.family));
	nl_attr(&r, IFA_ADDRESS, abytes(&p->addr), alen(p->addr.family));
	nl_attr(&r, IFA_FLAGS, &flags, sizeof(flags));
	return nl_talk(fd, &r);
}

static int route_add(int fd, int ifindex, const struct dps_route_cfg *rc)
{
	struct nl_req r = {0};
	uint32_t oif = ifindex;

	r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(r.rt));
	r.nh.nlmsg_type = RTM_NEWROUTE;
	r.nh.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	r.rt.rtm_family = rc->dst.addr.family;
	r.rt.rtm_dst_len = rc->dst.len;
	r.rt.rtm_table = RT_TABLE_MAIN;
	r.rt.rtm_protocol = RTPROT_STATIC;
	r.rt.rtm_scope = rc->has_via ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
	r.rt.rtm_type = RTN_UNICAST;
	if (rc->dst.len)
		nl_attr(&r, RTA_DST, abytes(&rc->dst.addr), alen(rc->dst.addr.family));
	if (rc->has_via)
		nl_attr(&r, RTA_GATEWAY, abytes(&rc->via), alen(rc->via.family));
	nl_attr(&r, RTA_OIF, &oif, sizeof(oif));
	return nl_talk(fd, &r);
}

/* A TAP's carrier comes up once the dataplane holds its queues; addresses
 * given before that can be flushed by the kernel when the carrier settles. */
static void wait_running(const char *ifname)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	for (int i = 0; i < 200; i++) {
		if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_RUNNING))
			break;
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
	}
	close(fd);
}

/*
 * The dataplane tells the kernel the path MTU of what it sends into an SA
 * with an ICMP error from the port's own address (icmp.c), which the kernel
 * holds too: without accept_local it would drop it as a martian source.
 */
static void accept_local(const char *ifname)
{
	char path[96];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/accept_local", ifname);
	f = fopen(path, "we");
	if (f != NULL) {
		int bad = fputs("1", f) < 0;

		if (fclose(f) == 0 && !bad)
			return;
	}
	DP_LOG(WARNING, "%s: cannot set accept_local: %s", ifname, strerror(errno));
}

int dps_hoststack_setup(const struct dps_config *cfg)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	int ifindex[DPS_MAX_PORTS] = {0};
	char buf[INET6_ADDRSTRLEN];
	int rc = 0;

	if (fd < 0) {
		DP_LOG(ERR, "netlink: %s", strerror(errno));
		return -1;
	}
	for (unsigned int i = 0; i < cfg->n_ports && rc == 0; i++) {
		const struct dps_port_cfg *pc = &cfg->ports[i];

		if (!pc->exception)
			continue;
		ifindex[i] = (int)if_nametoindex(pc->exception_iface);
		if (ifindex[i] == 0) {
			DP_LOG(ERR, "exception interface %s vanished", pc->exception_iface);
			rc = -1;
			break;
		}
		wait_running(pc->exception_iface);
		accept_local(pc->exception_iface);
		for (unsigned int a = 0; a < pc->n_addrs && rc == 0; a++) {
			rc = addr_add(fd, ifindex[i], &pc->addrs[a]);
			if (rc < 0)
				DP_LOG(ERR, "%s: cannot add address %s/%u: %s", pc->exception_iface,
				       dps_addr_str(&pc->addrs[a].addr, buf, sizeof(buf)),
				       pc->addrs[a].len, strerror(-rc));
		}
	}
	for (unsigned int i = 0; i < cfg->n_routes && rc == 0; i++) {
		const struct dps_route_cfg *r = &cfg->routes[i];

		if (ifindex[r->port] == 0)
			continue;
		rc = route_add(fd, ifindex[r->port], r);
		if (rc < 0)
			DP_LOG(ERR, "%s: cannot add route to %s/%u: %s",
			       cfg->ports[r->port].exception_iface,
			       dps_addr_str(&r->dst.addr, buf, sizeof(buf)), r->dst.len,
			       strerror(-rc));
	}
	close(fd);
	return rc < 0 ? -1 : 0;
}
