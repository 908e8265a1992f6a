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

/* 16 bytes, so that masking is two 64-bit ANDs. All fields in network order. */
struct aioxdp_fw_key {
	__u32 saddr;      /* IPv4 source */
	__u32 daddr;      /* IPv4 destination */
	__u16 sport;      /* TCP/UDP source port, or ICMP type (high byte) and code */
	__u16 dport;      /* TCP/UDP destination port, or ICMP echo identifier */
	__u8 proto;       /* IP protocol number */
	__u8 pad[3];      /* always zero */
};

enum aioxdp_fw_action {
	AIOXDP_FW_REDIRECT = 0, /* to the XSK bound to the packet's RX queue */
	AIOXDP_FW_PASS = 1,     /* to the kernel's stack */
	AIOXDP_FW_DROP = 2,
};

/* Value of the rule hash. hits is bumped atomically by the program. */
struct aioxdp_fw_rule {
	__u32 action;     /* enum aioxdp_fw_action */
	__u32 rule_id;    /* userspace's handle, for counters and debugging */
	__u64 hits;
};

/* Indexes of the per-CPU verdict counter array. */
enum aioxdp_fw_counter {
	AIOXDP_FW_CNT_REDIRECT = 0,  /* matched a REDIRECT rule and an XSK took it */
	AIOXDP_FW_CNT_PASS,          /* matched a PASS rule */
	AIOXDP_FW_CNT_DROP,          /* matched a DROP rule */
	AIOXDP_FW_CNT_UNMATCHED,     /* parsed, no rule: passed to the kernel */
	AIOXDP_FW_CNT_NOT_IPV4,      /* not IPv4 (IPv6, ARP, ...): passed */
	AIOXDP_FW_CNT_MALFORMED,     /* truncated or inconsistent headers: passed */
	AIOXDP_FW_CNT_FRAGMENT,      /* non-first IPv4 fragment: L4 unknown, passed */
	AIOXDP_FW_CNT_NO_XSK,        /* REDIRECT rule but no XSK on this queue: passed */
	AIOXDP_FW_CNT_MAX,
};

#endif
