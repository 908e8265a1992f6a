// SPDX-License-Identifier: GPL-2.0
/* aioxdp forwarder: picks the packets an application asked for and redirects
 * them to the XDP socket of the RX queue they arrived on; everything else goes
 * to the kernel.
 *
 * Theory of operation. Each packet yields one key (struct aioxdp_fw_key:
 * protocol, addresses, ports or ICMP type/code and echo id), from IPv4, from
 * IPv6 after a bounded walk over its extension headers, or from ARP. For
 * every mask in aioxdp_fw_masks, key & mask is looked up in aioxdp_fw_rules;
 * of the rules that match, the one with the highest priority decides
 * (userspace makes that the most specific one). Anything unmatched,
 * unparsable, or neither IP nor ARP is passed to the kernel untouched.
 * Redirected packets carry the rule's tag in front of them (XDP metadata) so
 * userspace can dispatch them.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "aioxdp_icmp.h"
#include "forwarder.h"

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

/* Masks in priority order; an all-zero entry is an unused slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AIOXDP_FW_MAX_MASKS);
	__type(key, __u32);
	__type(value, struct aioxdp_fw_key);
} aioxdp_fw_masks SEC(".maps");

/* Masked keys -> what to do with a packet that matches. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AIOXDP_FW_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct aioxdp_fw_key);
	__type(value, struct aioxdp_fw_rule);
} aioxdp_fw_rules SEC(".maps");

/* RX queue index -> XSK. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, AIOXDP_FW_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} aioxdp_fw_xsks SEC(".maps");

/* The interface's own MAC (struct aioxdp_fw_config), set by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aioxdp_fw_config);
} aioxdp_fw_config SEC(".maps");

/* Verdict counters, per CPU so the hot path never contends. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AIOXDP_FW_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} aioxdp_fw_counters SEC(".maps");

enum parse_result {
	PARSE_OK,
	PARSE_NOT_IP,
	PARSE_MALFORMED,
	PARSE_FRAGMENT,    /* key has addresses and protocol only */
	PARSE_NOT_LOCAL,   /* unicast to another host's MAC */
};

static __always_inline void count(__u32 which)
{
	__u64 *slot = bpf_map_lookup_elem(&aioxdp_fw_counters, &which);

	if (slot)
		*slot += 1;
}

/* A unicast frame to another MAC was not sent to this host: it reached us
 * through a bridge, a router's promiscuous port or a capture. */
static __always_inline int for_this_host(const struct ethhdr *eth)
{
	__u32 zero = 0;
	struct aioxdp_fw_config *cfg = bpf_map_lookup_elem(&aioxdp_fw_config, &zero);

	if (!cfg || !cfg->check_mac)
		return 1;
	if (eth->h_dest[0] & 1)
		return 1; /* broadcast or multicast */
	for (int i = 0; i < 6; i++)
		if (eth->h_dest[i] != cfg->mac[i])
			return 0;
	return 1;
}

/* Ethernet with at most one VLAN tag; returns the L3 header or NULL. */
static __always_inline void *parse_ethernet(void *data, void *data_end, __u16 *proto,
					    struct aioxdp_fw_key *key)
{
	struct ethhdr *eth = data;
	struct vlan {
		__be16 tci;
		__be16 proto;
	} *vlan;

	if ((void *)(eth + 1) > data_end)
		return NULL;
	*proto = eth->h_proto;
	data = eth + 1;
	if (*proto == bpf_htons(ETH_P_8021Q) || *proto == bpf_htons(ETH_P_8021AD)) {
		vlan = data;
		if ((void *)(vlan + 1) > data_end)
			return NULL;
		*proto = vlan->proto;
		key->flags |= AIOXDP_FW_KEY_VLAN;
		key->vlan = vlan->tci & bpf_htons(0x0fff);
		data = vlan + 1;
	}
	return data;
}

/* An ICMP error quotes the datagram it answers: if that was an echo
 * request, its id, so an error finds the pinger whose request caused it
 * through the same rule field as its replies; else 0. */
static __always_inline __be16 quoted_echo_id(void *quote, void *l3_end, void *data_end)
{
	struct iphdr *ip = quote;
	struct aioxdp_icmp_echo *echo;
	__u32 hlen;

	if ((void *)(ip + 1) > data_end || (void *)(ip + 1) > l3_end)
		return 0;
	hlen = ip->ihl * 4;
	if (ip->version != 4 || hlen < sizeof(*ip) || ip->protocol != IPPROTO_ICMP)
		return 0;
	if (ip->frag_off & bpf_htons(0x1fff))
		return 0; /* a later fragment quotes no ICMP header */
	echo = quote + hlen;
	if ((void *)(echo + 1) > data_end || (void *)(echo + 1) > l3_end)
		return 0;
	return echo->type == AIOXDP_ICMP_ECHO ? echo->id : 0;
}

/* The same for ICMPv6 errors (RFC 4443): the quoted packet's IPv6 header,
 * then an echo request right behind it. A request aioxdp sends carries no
 * extension headers, so a quote that has some names no echo id. */
static __always_inline __be16 quoted_echo6_id(void *quote, void *l3_end, void *data_end)
{
	struct ipv6hdr *ip6 = quote;
	struct aioxdp_icmp_echo *echo = (void *)(ip6 + 1);

	if ((void *)(echo + 1) > data_end || (void *)(echo + 1) > l3_end)
		return 0;
	if (ip6->version != 6 || ip6->nexthdr != IPPROTO_ICMPV6)
		return 0;
	return echo->type == AIOXDP_ICMP6_ECHO ? echo->id : 0;
}

/* ICMPv6 messages that run the link (RFC 4861 neighbour and router
 * discovery and redirect, RFC 2710/3810 multicast listeners). */
static __always_inline int icmp6_runs_the_link(__u8 type)
{
	return (type >= AIOXDP_ICMP6_MLD_QUERY && type <= AIOXDP_ICMP6_ND_REDIRECT) ||
	       type == AIOXDP_ICMP6_MLD2_REPORT;
}

/* The transport header must lie within the IP datagram (l3_end), not just
 * within the frame: padding after the datagram is no header. ICMP is read
 * in IPv4 only and ICMPv6 in IPv6 only; in the other family either is a
 * protocol number with no fields. */
/* Transport headers lie within the first 32 KiB of a frame (IPv6's walk
 * stops within 16 KiB); a mask of all ones. */
#define AIOXDP_FW_MAX_L4_OFFSET 0x7fff

/* A global function, verified once for any frame (see aioxdp_fw_decide):
 * callers pass offsets in the frame, as a global function takes no packet
 * pointers, and it finds the headers again from the context. */
__attribute__((noinline)) int aioxdp_fw_parse_l4(struct xdp_md *ctx, struct aioxdp_fw_key *key,
						 __u32 l4_offset, __u32 l3_end_offset, __u8 proto)
{
	void *data, *data_end, *l4, *l3_end;
	int v6;

	if (!ctx || !key || l4_offset > AIOXDP_FW_MAX_L4_OFFSET ||
	    l3_end_offset > AIOXDP_FW_MAX_L4_OFFSET)
		return PARSE_MALFORMED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	/* The masks change nothing after the check above, but tell the verifier
	 * (which checks this function for any offsets) that pointer + offset +
	 * header stays within the 64 KiB it tracks. The empty asm keeps clang
	 * from dropping them as redundant. */
	asm volatile("" : "+r"(l4_offset), "+r"(l3_end_offset));
	l4 = data + (l4_offset & AIOXDP_FW_MAX_L4_OFFSET);
	l3_end = data + (l3_end_offset & AIOXDP_FW_MAX_L4_OFFSET);
	v6 = key->flags & AIOXDP_FW_KEY_IPV6;

	if (proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;

		if ((void *)(udp + 1) > data_end || (void *)(udp + 1) > l3_end)
			return PARSE_MALFORMED;
		key->sport = udp->source;
		key->dport = udp->dest;
	} else if (proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > data_end || (void *)(tcp + 1) > l3_end)
			return PARSE_MALFORMED;
		if (tcp->doff < 5 || l4 + tcp->doff * 4 > l3_end)
			return PARSE_MALFORMED;
		key->sport = tcp->source;
		key->dport = tcp->dest;
	} else if (proto == IPPROTO_ICMP && !v6) {
		struct aioxdp_icmp_echo *icmp = l4;

		if ((void *)(icmp + 1) > data_end || (void *)(icmp + 1) > l3_end)
			return PARSE_MALFORMED;
		/* type and code in wire order, as userspace writes them */
		key->sport = *(__u16 *)icmp;
		if (icmp->type == AIOXDP_ICMP_ECHO || icmp->type == AIOXDP_ICMP_ECHOREPLY)
			key->dport = icmp->id;
		else if (icmp->type == AIOXDP_ICMP_DEST_UNREACH ||
			 icmp->type == AIOXDP_ICMP_TIME_EXCEEDED ||
			 icmp->type == AIOXDP_ICMP_PARAMETERPROB)
			key->dport = quoted_echo_id(icmp + 1, l3_end, data_end);
	} else if (proto == IPPROTO_ICMPV6 && v6) {
		struct aioxdp_icmp_echo *icmp = l4;

		if ((void *)(icmp + 1) > data_end || (void *)(icmp + 1) > l3_end)
			return PARSE_MALFORMED;
		key->sport = *(__u16 *)icmp;
		if (icmp->type == AIOXDP_ICMP6_ECHO || icmp->type == AIOXDP_ICMP6_ECHOREPLY)
			key->dport = icmp->id;
		else if (icmp->type >= AIOXDP_ICMP6_DEST_UNREACH &&
			 icmp->type <= AIOXDP_ICMP6_PARAMPROB)
			key->dport = quoted_echo6_id(icmp + 1, l3_end, data_end);
		else if (icmp6_runs_the_link(icmp->type))
			key->flags |= AIOXDP_FW_KEY_LINK;
	}
	return PARSE_OK;
}

struct arp_ipv4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[6];
	__u8 spa[4];
	__u8 tha[6];
	__u8 tpa[4];
};

static __always_inline int parse_arp(struct arp_ipv4 *arp, void *data_end, struct aioxdp_fw_key *key)
{
	if ((void *)(arp + 1) > data_end)
		return PARSE_MALFORMED;
	if (arp->htype != bpf_htons(1) || arp->ptype != bpf_htons(ETH_P_IP) || arp->hlen != 6 ||
	    arp->plen != 4)
		return PARSE_NOT_IP;
	__builtin_memcpy(&key->saddr[0], arp->spa, 4);
	__builtin_memcpy(&key->daddr[0], arp->tpa, 4);
	key->sport = arp->op;
	key->flags |= AIOXDP_FW_KEY_ARP;
	return PARSE_OK;
}

/* Extension headers the walk steps over (RFC 8200 4.1); anything else is
 * the upper layer, or a header no rule can see past (ESP, No Next Header). */
static __always_inline int is_extension(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_FRAGMENT;
}

struct ipv6_fragment {
	__u8 nexthdr;
	__u8 reserved;
	__be16 offset_flags;  /* offset in 8-byte units << 3, M flag in bit 0 */
	__be32 id;
};

/* One extension header of an IPv6 walk: the header at ``ext_offset`` in the
 * frame, which must lie within the frame and the payload (``l3_end_offset``).
 * Returns the next header's offset (past this one) << 8 | its protocol, or
 * minus a PARSE_ code: MALFORMED, or FRAGMENT for a fragment that is not
 * atomic. A global function: verified once, not once per step of the walk
 * and per way of reaching it. */
__attribute__((noinline)) int aioxdp_fw_ipv6_extension(struct xdp_md *ctx,
						       struct aioxdp_fw_key *key,
						       __u32 ext_offset, __u32 l3_end_offset,
						       __u8 nexthdr)
{
	void *data, *data_end;
	__u8 *ext;

	if (!ctx || !key || ext_offset > AIOXDP_FW_MAX_L4_OFFSET ||
	    l3_end_offset > AIOXDP_FW_MAX_L4_OFFSET)
		return -PARSE_MALFORMED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	asm volatile("" : "+r"(ext_offset), "+r"(l3_end_offset)); /* see aioxdp_fw_parse_l4 */
	ext = data + (ext_offset & AIOXDP_FW_MAX_L4_OFFSET);
	if ((void *)(ext + 8) > data_end ||
	    (void *)(ext + 8) > data + (l3_end_offset & AIOXDP_FW_MAX_L4_OFFSET))
		return -PARSE_MALFORMED;
	if (nexthdr == IPPROTO_FRAGMENT) {
		struct ipv6_fragment *frag = (void *)ext;

		key->proto = frag->nexthdr;
		if (frag->offset_flags & bpf_htons(0xfff9)) {
			key->flags |= AIOXDP_FW_KEY_NO_L4;
			return -PARSE_FRAGMENT;
		}
		/* an atomic fragment (offset 0, no M flag) is a whole datagram */
		return (int)((ext_offset + sizeof(*frag)) << 8 | frag->nexthdr);
	}
	return (int)((ext_offset + ((__u32)ext[1] + 1) * 8) << 8 | ext[0]);
}

/* IPv6 (RFC 8200) at ``l3_offset`` in the frame: the fixed header and its
 * payload within the frame, then at most AIOXDP_FW_MAX_EXT_HEADERS extension
 * headers, each within the payload, before the upper-layer header. Any
 * fragment, the first one too, has no whole upper-layer datagram: it gets
 * no ports, as IPv4's. */
__attribute__((noinline)) int aioxdp_fw_parse_ipv6(struct xdp_md *ctx, struct aioxdp_fw_key *key,
						   __u32 l3_offset)
{
	__u32 off, l3_end_offset;
	void *data_end;
	struct ipv6hdr *ip6;
	__u8 nexthdr;

	/* a global function, verified once for any frame (see aioxdp_fw_decide):
	 * it finds the header again from the context */
	if (!ctx || !key || l3_offset > 18)
		return PARSE_MALFORMED;
	ip6 = (void *)(long)ctx->data + l3_offset;
	data_end = (void *)(long)ctx->data_end;
	if ((void *)(ip6 + 1) > data_end)
		return PARSE_MALFORMED;
	if (ip6->version != 6)
		return PARSE_MALFORMED;
	if ((void *)(ip6 + 1) + bpf_ntohs(ip6->payload_len) > data_end)
		return PARSE_MALFORMED;
	l3_end_offset = l3_offset + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	__builtin_memcpy(key->saddr, &ip6->saddr, 16);
	__builtin_memcpy(key->daddr, &ip6->daddr, 16);
	key->flags |= AIOXDP_FW_KEY_IPV6;
	nexthdr = ip6->nexthdr;
	off = l3_offset + sizeof(*ip6); /* from here on, in the frame */

	for (int i = 0; i < AIOXDP_FW_MAX_EXT_HEADERS; i++) {
		int next;

		if (!is_extension(nexthdr))
			break;
		/* 8 headers of at most 2 KiB each: any packet's walk stays
		 * within one 16 KiB window */
		if (off > 8 * 2048 + 64)
			return PARSE_MALFORMED;
		next = aioxdp_fw_ipv6_extension(ctx, key, off, l3_end_offset, nexthdr);
		if (next < 0)
			return -next;
		off = (__u32)next >> 8;
		nexthdr = next & 0xff;
	}
	if (is_extension(nexthdr))
		return PARSE_MALFORMED; /* a chain longer than the bound */
	key->proto = nexthdr;
	if (off > l3_end_offset)
		return PARSE_MALFORMED;
	return aioxdp_fw_parse_l4(ctx, key, off, l3_end_offset, nexthdr);
}

static __always_inline int parse(struct xdp_md *ctx, struct aioxdp_fw_key *key)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip;
	__u16 proto;
	__u32 hlen;

	if (data + sizeof(struct ethhdr) > data_end)
		return PARSE_MALFORMED;
	if (!for_this_host(data))
		return PARSE_NOT_LOCAL;
	ip = parse_ethernet(data, data_end, &proto, key);
	if (!ip)
		return PARSE_MALFORMED;
	if (proto == bpf_htons(ETH_P_ARP))
		return parse_arp((void *)ip, data_end, key);
	if (proto == bpf_htons(ETH_P_IPV6))
		return aioxdp_fw_parse_ipv6(ctx, key, (__u32)((void *)ip - data));
	if (proto != bpf_htons(ETH_P_IP))
		return PARSE_NOT_IP;
	if ((void *)(ip + 1) > data_end)
		return PARSE_MALFORMED;
	hlen = ip->ihl * 4;
	if (ip->version != 4 || hlen < sizeof(*ip))
		return PARSE_MALFORMED;
	if ((void *)ip + hlen > data_end || bpf_ntohs(ip->tot_len) < hlen)
		return PARSE_MALFORMED;
	if ((void *)ip + bpf_ntohs(ip->tot_len) > data_end)
		return PARSE_MALFORMED;

	key->saddr[0] = ip->saddr;
	key->daddr[0] = ip->daddr;
	key->proto = ip->protocol;
	if (ip->frag_off & bpf_htons(0x3fff)) {
		/* a fragment, the first one too (MF set): no whole L4 datagram */
		key->flags |= AIOXDP_FW_KEY_NO_L4;
		return PARSE_FRAGMENT;
	}
	return aioxdp_fw_parse_l4(ctx, key, (__u32)((void *)ip - data) + hlen,
				  (__u32)((void *)ip - data) + bpf_ntohs(ip->tot_len), ip->protocol);
}

static __always_inline void mask_key(struct aioxdp_fw_key *out, const struct aioxdp_fw_key *key,
				     const struct aioxdp_fw_key *mask)
{
	const __u64 *k = (const __u64 *)key, *m = (const __u64 *)mask;
	__u64 *o = (__u64 *)out;

	for (int i = 0; i < 6; i++)
		o[i] = k[i] & m[i];
}

/* The matching rule of highest priority, or NULL. */
static __always_inline struct aioxdp_fw_rule *classify(const struct aioxdp_fw_key *key)
{
	struct aioxdp_fw_rule *best = NULL;

	for (__u32 i = 0; i < AIOXDP_FW_MAX_MASKS; i++) {
		__u32 slot = i;
		struct aioxdp_fw_key *mask = bpf_map_lookup_elem(&aioxdp_fw_masks, &slot);
		struct aioxdp_fw_key masked;
		struct aioxdp_fw_rule *rule;

		if (!mask)
			break;
		if (!mask->proto)
			continue; /* unused slot: every real mask names the protocol */
		mask_key(&masked, key, mask);
		/* two masks can yield the same masked bytes: the slot tells them apart */
		masked.pad[0] = i;
		rule = bpf_map_lookup_elem(&aioxdp_fw_rules, &masked);
		if (rule && (!best || rule->priority > best->priority))
			best = rule;
	}
	return best;
}

static __always_inline int redirect(struct xdp_md *ctx, __u32 tag)
{
	__u32 queue = ctx->rx_queue_index;
	struct aioxdp_meta *meta;
	void *data;

	/* no socket on this queue: the kernel gets the packet, untouched */
	if (!bpf_map_lookup_elem(&aioxdp_fw_xsks, &queue)) {
		count(AIOXDP_FW_CNT_NO_XSK);
		return XDP_PASS;
	}
	/* Tag the packet for userspace; a packet that cannot be tagged could not
	 * be told apart from another endpoint's, so the kernel gets it. */
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*meta))) {
		count(AIOXDP_FW_CNT_NO_META);
		return XDP_PASS;
	}
	meta = (void *)(long)ctx->data_meta;
	data = (void *)(long)ctx->data;
	if ((void *)(meta + 1) > data) {
		count(AIOXDP_FW_CNT_NO_META);
		return XDP_PASS;
	}
	meta->rx_ns = bpf_ktime_get_ns();
	meta->tag = tag;
	meta->magic = AIOXDP_META_MAGIC;
	count(AIOXDP_FW_CNT_REDIRECT);
	return bpf_redirect_map(&aioxdp_fw_xsks, queue, XDP_PASS);
}

/* What to do with a parsed packet: the best rule's action. A global
 * function, so the verifier checks it once for any key rather than once
 * for every way parse() can end (which multiplied its work by the IPv6
 * walk's paths). */
__attribute__((noinline)) int aioxdp_fw_decide(struct xdp_md *ctx, struct aioxdp_fw_key *key,
					       int parsed)
{
	struct aioxdp_fw_rule *rule;

	if (!ctx || !key)
		return XDP_PASS;
	rule = classify(key);
	if (!rule) {
		if (key->flags & AIOXDP_FW_KEY_VLAN)
			count(AIOXDP_FW_CNT_VLAN);
		else
			count(parsed == PARSE_FRAGMENT ? AIOXDP_FW_CNT_FRAGMENT : AIOXDP_FW_CNT_UNMATCHED);
		return XDP_PASS;
	}
	__sync_fetch_and_add(&rule->hits, 1);
	switch (rule->action) {
	case AIOXDP_FW_REDIRECT:
		return redirect(ctx, rule->tag);
	case AIOXDP_FW_DROP:
		count(AIOXDP_FW_CNT_DROP);
		return XDP_DROP;
	default:
		count(AIOXDP_FW_CNT_PASS);
		return XDP_PASS;
	}
}

SEC("xdp")
int aioxdp_forwarder(struct xdp_md *ctx)
{
	struct aioxdp_fw_key key = {};
	int parsed = parse(ctx, &key);

	if (parsed == PARSE_NOT_IP) {
		count(AIOXDP_FW_CNT_NOT_IP);
		return XDP_PASS;
	}
	if (parsed == PARSE_MALFORMED) {
		count(AIOXDP_FW_CNT_MALFORMED);
		return XDP_PASS;
	}
	if (parsed == PARSE_NOT_LOCAL) {
		count(AIOXDP_FW_CNT_NOT_LOCAL);
		return XDP_PASS;
	}
	return aioxdp_fw_decide(ctx, &key, parsed);
}

char _license[] SEC("license") = "GPL";
