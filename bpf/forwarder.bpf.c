// SPDX-License-Identifier: GPL-2.0
/* aioxdp forwarder: picks the packets an application asked for and redirects
 * them to the XDP socket of the RX queue they arrived on; everything else goes
 * to the kernel.
 *
 * This revision declares the maps the classifier works on and passes every
 * packet (counted as unmatched); the masked-rule lookup comes next.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "forwarder.h"

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

/* Verdict counters, per CPU so the hot path never contends. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AIOXDP_FW_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} aioxdp_fw_counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *slot = bpf_map_lookup_elem(&aioxdp_fw_counters, &which);

	if (slot)
		*slot += 1;
}

SEC("xdp")
int aioxdp_forwarder(struct xdp_md *ctx)
{
	count(AIOXDP_FW_CNT_UNMATCHED);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
