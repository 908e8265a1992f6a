// SPDX-License-Identifier: GPL-2.0
/* aioxdp reflector: a lab peer faster than the kernel. Answers ICMP and
 * ICMPv6 echo requests and UDP datagrams (over IPv4, or IPv6 without
 * extension headers) to the ports in aioxdp_reflector_ports from inside the
 * driver (XDP_TX), and passes everything else (neighbour discovery too).
 *
 * veth only delivers an XDP_TX'd frame to a peer that runs XDP itself, so
 * aioxdp_pass is here too: attach it to the other end when nothing else is.
 *
 * aioxdp_sink counts and drops UDP datagrams *from* those ports instead: the
 * echoes of a server under test, when a generator (not a client) offers the
 * requests, so counting them costs the server's side next to nothing.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "aioxdp_icmp.h"

enum reflector_counter {
	REFLECTED_ICMP = 0,
	REFLECTED_UDP,
	PASSED,
	SUNK,
	REFLECTOR_COUNTERS,
};

/* UDP ports (host order) whose datagrams are echoed. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);
	__type(value, __u8);
} aioxdp_reflector_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, REFLECTOR_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} aioxdp_reflector_counters SEC(".maps");

static __always_inline int count(__u32 which, int verdict)
{
	__u64 *slot = bpf_map_lookup_elem(&aioxdp_reflector_counters, &which);

	if (slot)
		*slot += 1;
	return verdict;
}

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

static __always_inline void swap_macs(struct ethhdr *eth)
{
	__u8 mac[ETH_ALEN];

	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
}

/* Turn the frame around: MACs and IP addresses swapped, TTL reset. Swapping
 * leaves every checksum valid; the TTL change is folded into the IP one. */
static __always_inline void turn_around(struct ethhdr *eth, struct iphdr *ip)
{
	__be32 addr;
	__u32 sum;

	swap_macs(eth);
	addr = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = addr;
	/* RFC 1624: HC' = ~(~HC + ~m + m') over the 16-bit word holding the TTL */
	sum = (__u16)~ip->check + (__u16)~*(__u16 *)&ip->ttl;
	ip->ttl = 64;
	sum += *(__u16 *)&ip->ttl;
	ip->check = ~csum_fold(sum);
}

/* IPv6: addresses swapped (the pseudo-header sums the same), hop limit
 * reset (in no checksum). */
static __always_inline void turn_around6(struct ethhdr *eth, struct ipv6hdr *ip6)
{
	struct in6_addr addr = ip6->saddr;

	swap_macs(eth);
	ip6->saddr = ip6->daddr;
	ip6->daddr = addr;
	ip6->hop_limit = 64;
}

/* An echo request's type made a reply's, the checksum adjusted (RFC 1624). */
static __always_inline void echo_to_reply(struct aioxdp_icmp_echo *icmp, __u8 request, __u8 reply)
{
	__u32 sum = (__u16)~icmp->checksum + (__u16)~bpf_htons(request << 8);

	icmp->type = reply;
	sum += bpf_htons(reply << 8);
	icmp->checksum = ~csum_fold(sum);
}

/* A whole UDP header to one of the ports we echo? */
static __always_inline int echoes_udp(struct udphdr *udp, void *data_end)
{
	__u16 port;

	if ((void *)(udp + 1) > data_end)
		return 0;
	port = bpf_ntohs(udp->dest);
	return bpf_map_lookup_elem(&aioxdp_reflector_ports, &port) != NULL;
}

/* The answer's ports: the UDP checksum holds (the same words, swapped). */
static __always_inline void swap_ports(struct udphdr *udp)
{
	__be16 port = udp->source;

	udp->source = udp->dest;
	udp->dest = port;
}

static __always_inline int reflect6(struct ethhdr *eth, void *data_end)
{
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	void *l4 = ip6 + 1;

	if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
		return count(PASSED, XDP_PASS);
	if (ip6->nexthdr == IPPROTO_ICMPV6) {
		struct aioxdp_icmp_echo *icmp = l4;

		if ((void *)(icmp + 1) > data_end || icmp->type != AIOXDP_ICMP6_ECHO || icmp->code)
			return count(PASSED, XDP_PASS);
		turn_around6(eth, ip6);
		echo_to_reply(icmp, AIOXDP_ICMP6_ECHO, AIOXDP_ICMP6_ECHOREPLY);
		return count(REFLECTED_ICMP, XDP_TX);
	}
	if (ip6->nexthdr == IPPROTO_UDP && echoes_udp(l4, data_end)) {
		turn_around6(eth, ip6);
		swap_ports(l4);
		return count(REFLECTED_UDP, XDP_TX);
	}
	return count(PASSED, XDP_PASS);
}

SEC("xdp")
int aioxdp_reflector(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	void *l4;

	if ((void *)(eth + 1) > data_end)
		return count(PASSED, XDP_PASS);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return reflect6(eth, data_end);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return count(PASSED, XDP_PASS);
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5)
		return count(PASSED, XDP_PASS);
	if (ip->frag_off & bpf_htons(0x3fff))
		return count(PASSED, XDP_PASS);
	l4 = (void *)ip + ip->ihl * 4;

	if (ip->protocol == IPPROTO_ICMP) {
		struct aioxdp_icmp_echo *icmp = l4;

		if ((void *)(icmp + 1) > data_end || icmp->type != AIOXDP_ICMP_ECHO || icmp->code != 0)
			return count(PASSED, XDP_PASS);
		turn_around(eth, ip);
		echo_to_reply(icmp, AIOXDP_ICMP_ECHO, AIOXDP_ICMP_ECHOREPLY);
		return count(REFLECTED_ICMP, XDP_TX);
	}
	if (ip->protocol == IPPROTO_UDP && echoes_udp(l4, data_end)) {
		turn_around(eth, ip);
		swap_ports(l4);
		return count(REFLECTED_UDP, XDP_TX);
	}
	return count(PASSED, XDP_PASS);
}

SEC("xdp")
int aioxdp_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct udphdr *udp;
	__u16 port;

	if ((void *)(eth + 1) > data_end)
		return count(PASSED, XDP_PASS);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5 ||
		    ip->protocol != IPPROTO_UDP || (ip->frag_off & bpf_htons(0x3fff)))
			return count(PASSED, XDP_PASS);
		udp = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_UDP)
			return count(PASSED, XDP_PASS);
		udp = (void *)(ip6 + 1);
	} else {
		return count(PASSED, XDP_PASS);
	}
	if ((void *)(udp + 1) > data_end)
		return count(PASSED, XDP_PASS);
	port = bpf_ntohs(udp->source);
	if (!bpf_map_lookup_elem(&aioxdp_reflector_ports, &port))
		return count(PASSED, XDP_PASS);
	return count(SUNK, XDP_DROP);
}

SEC("xdp")
int aioxdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
