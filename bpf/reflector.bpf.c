// SPDX-License-Identifier: GPL-2.0
/* aioxdp reflector: a lab peer faster than the kernel. Answers ICMP echo
 * requests and UDP datagrams to the ports in aioxdp_reflector_ports from
 * inside the driver (XDP_TX), and passes everything else.
 *
 * veth only delivers an XDP_TX'd frame to a peer that runs XDP itself, so
 * aioxdp_pass is here too: attach it to the other end when nothing else is.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "aioxdp_icmp.h"

enum reflector_counter {
	REFLECTED_ICMP = 0,
	REFLECTED_UDP,
	PASSED,
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

/* Turn the frame around: MACs and IP addresses swapped, TTL reset. Swapping
 * leaves every checksum valid; the TTL change is folded into the IP one. */
static __always_inline void turn_around(struct ethhdr *eth, struct iphdr *ip)
{
	__u8 mac[ETH_ALEN];
	__be32 addr;
	__u32 sum;

	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
	addr = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = addr;
	/* RFC 1624: HC' = ~(~HC + ~m + m') over the 16-bit word holding the TTL */
	sum = (__u16)~ip->check + (__u16)~*(__u16 *)&ip->ttl;
	ip->ttl = 64;
	sum += *(__u16 *)&ip->ttl;
	ip->check = ~csum_fold(sum);
}

SEC("xdp")
int aioxdp_reflector(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	void *l4;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return count(PASSED, XDP_PASS);
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5)
		return count(PASSED, XDP_PASS);
	if (ip->frag_off & bpf_htons(0x3fff))
		return count(PASSED, XDP_PASS);
	l4 = (void *)ip + ip->ihl * 4;

	if (ip->protocol == IPPROTO_ICMP) {
		struct aioxdp_icmp_echo *icmp = l4;
		__u32 sum;

		if ((void *)(icmp + 1) > data_end || icmp->type != AIOXDP_ICMP_ECHO || icmp->code != 0)
			return count(PASSED, XDP_PASS);
		turn_around(eth, ip);
		/* type 8 -> 0 in the first word of the ICMP header */
		sum = (__u16)~icmp->checksum + (__u16)~bpf_htons(AIOXDP_ICMP_ECHO << 8);
		icmp->type = AIOXDP_ICMP_ECHOREPLY;
		sum += bpf_htons(AIOXDP_ICMP_ECHOREPLY << 8);
		icmp->checksum = ~csum_fold(sum);
		return count(REFLECTED_ICMP, XDP_TX);
	}
	if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = l4;
		__u16 port;
		__be16 tmp;

		if ((void *)(udp + 1) > data_end)
			return count(PASSED, XDP_PASS);
		port = bpf_ntohs(udp->dest);
		if (!bpf_map_lookup_elem(&aioxdp_reflector_ports, &port))
			return count(PASSED, XDP_PASS);
		turn_around(eth, ip);
		tmp = udp->source;
		udp->source = udp->dest;
		udp->dest = tmp;
		return count(REFLECTED_UDP, XDP_TX);
	}
	return count(PASSED, XDP_PASS);
}

SEC("xdp")
int aioxdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
