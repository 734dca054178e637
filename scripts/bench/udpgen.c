/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * udpgen: a paced UDP traffic generator for scripts/bench/reconf.py.
 *
 *   udpgen IFACE DST_MAC SRC_IP NETS RATE SECONDS [SIZE]
 *
 * Sends RATE frames a second for SECONDS on IFACE (AF_PACKET, sendmmsg in
 * batches of 32), round robin over NETS destinations: frame j goes to
 * 172.(16 + (i >> 12)).((i >> 4) & 255).((i & 15) << 4 | 1), i = j % NETS, the
 * first host of tunnel i's /28 in scripts/bench/pfkey_rate.py. SIZE is the IP
 * packet's size (default 64). Prints the number of frames the kernel took.
 * Busy-waits between batches: it takes one CPU while it runs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32

static uint16_t cksum(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)b[i] << 8 | b[i + 1];
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return htons((uint16_t)~s);
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	unsigned int mac[6], nets, size = 64;
	struct sockaddr_ll sll = {.sll_family = AF_PACKET};
	uint8_t src_mac[6];
	struct ifreq ifr;
	double rate, secs;
	struct in_addr src;
	uint8_t *frames;
	size_t flen;
	int s;

	if (argc < 7 ||
	    sscanf(argv[2], "%x:%x:%x:%x:%x:%x", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4],
		   &mac[5]) != 6 ||
	    inet_pton(AF_INET, argv[3], &src) != 1) {
		fprintf(stderr, "usage: udpgen IFACE DST_MAC SRC_IP NETS RATE SECONDS [SIZE]\n");
		return 2;
	}
	nets = (unsigned int)strtoul(argv[4], NULL, 0);
	rate = strtod(argv[5], NULL);
	secs = strtod(argv[6], NULL);
	if (argc > 7)
		size = (unsigned int)strtoul(argv[7], NULL, 0);
	if (nets == 0 || nets > 65536 || rate <= 0 || size < 28 || size > 1500) {
		fprintf(stderr, "udpgen: bad NETS, RATE or SIZE\n");
		return 2;
	}
	s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	if (s < 0) {
		perror("socket");
		return 1;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", argv[1]);
	if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0) {
		perror(argv[1]);
		return 1;
	}
	memcpy(src_mac, ifr.ifr_hwaddr.sa_data, 6);
	sll.sll_ifindex = (int)if_nametoindex(argv[1]);
	sll.sll_halen = 6;
	for (int i = 0; i < 6; i++)
		sll.sll_addr[i] = (uint8_t)mac[i];

	flen = ETH_HLEN + size;
	frames = calloc(nets, flen);
	if (frames == NULL)
		return 1;
	for (unsigned int i = 0; i < nets; i++) {
		uint8_t *f = frames + (size_t)i * flen;
		struct iphdr *ip = (struct iphdr *)(f + ETH_HLEN);
		struct udphdr *udp = (struct udphdr *)(ip + 1);
		uint8_t d[4] = {172, (uint8_t)(16 + (i >> 12)), (uint8_t)((i >> 4) & 255),
				(uint8_t)(((i & 15) << 4) | 1)};

		for (int k = 0; k < 6; k++)
			f[k] = (uint8_t)mac[k];
		memcpy(f + 6, src_mac, 6);
		f[12] = 0x08;
		f[13] = 0x00;
		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = htons((uint16_t)size);
		ip->ttl = 64;
		ip->protocol = IPPROTO_UDP;
		ip->saddr = src.s_addr;
		memcpy(&ip->daddr, d, 4);
		ip->check = cksum(ip, sizeof(*ip));
		udp->source = htons(9000);
		udp->dest = htons(9);
		udp->len = htons((uint16_t)(size - sizeof(*ip)));
	}

	struct mmsghdr msg[BATCH];
	struct iovec iov[BATCH];
	unsigned long long sent = 0, j = 0;
	double t0 = now(), t;

	memset(msg, 0, sizeof(msg));
	while ((t = now() - t0) < secs) {
		unsigned long long due = (unsigned long long)(t * rate);
		int n, r;

		if (sent >= due)
			continue;
		n = due - sent < BATCH ? (int)(due - sent) : BATCH;
		for (int k = 0; k < n; k++) {
			iov[k].iov_base = frames + (size_t)((j + (unsigned int)k) % nets) * flen;
			iov[k].iov_len = flen;
			msg[k].msg_hdr.msg_name = &sll;
			msg[k].msg_hdr.msg_namelen = sizeof(sll);
			msg[k].msg_hdr.msg_iov = &iov[k];
			msg[k].msg_hdr.msg_iovlen = 1;
		}
		r = sendmmsg(s, msg, (unsigned int)n, 0);
		if (r > 0) {
			sent += (unsigned long long)r;
			j += (unsigned long long)r;
		}
	}
	printf("%llu\n", sent);
	close(s);
	free(frames);
	return 0;
}
