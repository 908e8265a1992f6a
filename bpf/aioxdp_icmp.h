/* The ICMP echo header and the ICMP and ICMPv6 types the BPF programs test.
 *
 * Ours, not <linux/icmp.h>: that header pulls <linux/if.h> and through it
 * glibc's <sys/socket.h>, and clang -target bpf (no __x86_64__) then wants
 * the 32-bit glibc stubs of libc6-dev-i386. The BPF sources include only
 * UAPI headers that stay clear of glibc; tests/test_bpf_build.py checks it.
 */
#ifndef AIOXDP_ICMP_H
#define AIOXDP_ICMP_H

#include <linux/types.h>

#define AIOXDP_ICMP_ECHOREPLY 0
#define AIOXDP_ICMP_ECHO 8
#define AIOXDP_ICMP_DEST_UNREACH 3
#define AIOXDP_ICMP_TIME_EXCEEDED 11
#define AIOXDP_ICMP_PARAMETERPROB 12

/* ICMPv6 (RFC 4443, 4861, 2710, 3810) */
#define AIOXDP_ICMP6_DEST_UNREACH 1
#define AIOXDP_ICMP6_PARAMPROB 4   /* errors are 1..4: unreachable, too big, time, parameter */
#define AIOXDP_ICMP6_ECHO 128
#define AIOXDP_ICMP6_ECHOREPLY 129
#define AIOXDP_ICMP6_MLD_QUERY 130
#define AIOXDP_ICMP6_ND_REDIRECT 137  /* 130..137: MLD, router and neighbour discovery */
#define AIOXDP_ICMP6_MLD2_REPORT 143

/* RFC 792 echo / echo reply; other types share the first four bytes. */
struct aioxdp_icmp_echo {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 id;
	__be16 seq;
};

#endif
