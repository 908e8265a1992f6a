// SPDX-License-Identifier: GPL-2.0
/* Reads a packet byte without checking it against data_end: the verifier
 * must reject this program (a test provokes VerifierError with it). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int unchecked_read(struct xdp_md *ctx)
{
	unsigned char *data = (unsigned char *)(long)ctx->data;

	return data[12] == 0x08 ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
