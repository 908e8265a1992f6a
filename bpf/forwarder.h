/* Structures shared by forwarder.bpf.c and userspace (aioxdp/_cffi/native.py
 * declares the same layout for cffi; a test compares the sizes).
 *
 * A rule is a key with some fields masked out. The kernel side builds one
 * key per packet, ANDs it with each active mask in turn and looks the result
 * up in the rule hash; the first hit decides. Userspace derives the masks
 * from the rules, so a user never writes one.
 */
#ifndef AIOXDP_FORWARDER_H
#define AIOXDP_FORWARDER_H

#include <linux/types.h>

#define AIOXDP_FW_MAX_MASKS 16
#define AIOXDP_FW_MAX_RULES 4096
#define AIOXDP_FW_MAX_QUEUES 64

/* 48 bytes, so that masking is six 64-bit ANDs. All fields in network order. */
struct aioxdp_fw_key {
	__u32 saddr[4];   /* source: IPv4 in saddr[0] (the rest 0), or IPv6 */
	__u32 daddr[4];   /* destination, the same way */
	__u16 sport;      /* TCP/UDP source port, or ICMP/ICMPv6 type and code (wire order) */
	__u16 dport;      /* TCP/UDP destination port, or ICMP/ICMPv6 echo identifier */
	__u8 proto;       /* IP protocol number (IPv6: the upper layer's next header) */
	__u8 flags;       /* AIOXDP_FW_KEY_* */
	__u8 pad[2];      /* in the rule hash, pad[0] is the rule's mask slot */
	__u16 vlan;       /* VLAN id of a tagged frame (12 bits), 0 if untagged */
	__u8 pad2[6];
};

/* Set in a packet's key when it has no L4 header to match: an IPv4 or IPv6
 * fragment (the first one too: a rule on ports must not see part of a datagram).
 * Masks of rules that name L4 fields include this bit, so such packets can
 * only match rules on addresses and protocol. */
#define AIOXDP_FW_KEY_NO_L4 0x01
/* Set for ARP (Ethernet/IPv4) frames: proto is 0, saddr/daddr are the sender
 * and target protocol addresses, sport the operation (network order). */
#define AIOXDP_FW_KEY_ARP 0x02
/* Set for VLAN-tagged frames. Every mask includes this bit and the vlan
 * field, so a rule matches tagged frames only if it names their VLAN. */
#define AIOXDP_FW_KEY_VLAN 0x04
/* Set for IPv6 packets. Masks of rules that name an address family (by an
 * address, or by ICMP or ICMPv6) include it; a rule on ports alone takes
 * both families. */
#define AIOXDP_FW_KEY_IPV6 0x08
/* Set for ICMPv6 messages that keep the link working: neighbour and router
 * discovery, redirects and multicast listener messages (types 130-137 and
 * 143). Every mask includes it, so only a rule that names such a type takes
 * them; the rest go to the kernel whatever other rules say. */
#define AIOXDP_FW_KEY_LINK 0x10
/* How many IPv6 extension headers the forwarder walks before it gives up
 * on a packet as malformed. */
#define AIOXDP_FW_MAX_EXT_HEADERS 8

/* What the forwarder knows of its interface, written by userspace once. */
struct aioxdp_fw_config {
	__u8 mac[6];      /* the interface's own address */
	__u8 check_mac;   /* 1: only frames to mac, broadcast or multicast match */
	__u8 pad;
};

enum aioxdp_fw_action {
	AIOXDP_FW_REDIRECT = 0, /* to the XSK bound to the packet's RX queue */
	AIOXDP_FW_PASS = 1,     /* to the kernel's stack */
	AIOXDP_FW_DROP = 2,
};

/* Value of the rule hash. hits is bumped atomically by the program. When
 * rules of several masks match a packet, the highest priority wins. Userspace
 * makes it the number of bits of the rule's mask (the most specific rule) in
 * the top byte, and the rule's place in installation order below it (of two
 * equally specific rules, the one installed first), so no two are equal. */
struct aioxdp_fw_rule {
	__u16 action;     /* enum aioxdp_fw_action */
	__u16 pad;
	__u32 priority;
	__u32 tag;        /* userspace's handle, handed to the XSK in the metadata */
	__u32 pad2;
	__u64 hits;
};

/* Written in front of a redirected packet (XDP metadata), read by the XSK
 * core to dispatch the packet to the endpoint that asked for it, with the
 * time the driver ran the forwarder on it (CLOCK_MONOTONIC, as
 * bpf_ktime_get_ns): a reply is timed from there, not from when the event
 * loop got to it, as ping times one by the kernel's receive stamp. */
#define AIOXDP_META_MAGIC 0xa10c0de6u
struct aioxdp_meta {
	__u64 rx_ns;
	__u32 tag;
	__u32 magic;      /* last: right in front of the packet */
};

/* Indexes of the per-CPU verdict counter array. */
enum aioxdp_fw_counter {
	AIOXDP_FW_CNT_REDIRECT = 0,  /* matched a REDIRECT rule and an XSK took it */
	AIOXDP_FW_CNT_PASS,          /* matched a PASS rule */
	AIOXDP_FW_CNT_DROP,          /* matched a DROP rule */
	AIOXDP_FW_CNT_UNMATCHED,     /* parsed, no rule: passed to the kernel */
	AIOXDP_FW_CNT_NOT_IP,        /* neither IPv4, IPv6 nor ARP for IPv4: passed */
	AIOXDP_FW_CNT_MALFORMED,     /* truncated or inconsistent headers: passed */
	AIOXDP_FW_CNT_FRAGMENT,      /* IPv4 or IPv6 fragment no rule took: passed */
	AIOXDP_FW_CNT_NO_XSK,        /* REDIRECT rule but no XSK on this queue: passed */
	AIOXDP_FW_CNT_NOT_LOCAL,     /* to another host's MAC (bridge, promiscuous): passed */
	AIOXDP_FW_CNT_VLAN,          /* VLAN-tagged, no rule names the VLAN: passed */
	AIOXDP_FW_CNT_NO_META,       /* no room to tag it for userspace: passed */
	AIOXDP_FW_CNT_MAX,
};

#endif
