/* libFuzzer harness over the C frame checks of aioxdp/_native/parse.c, built
 * with AddressSanitizer by tests/test_fuzz_native.py (the runtime is the one
 * atheris ships). Each input is one received frame, copied into a buffer of
 * exactly its length so that any read past it is reported.
 *
 * The first input byte is not part of the frame: its low bits ask the
 * harness to make the IPv4 header checksum (bit 0) and the ICMP, ICMPv6 or
 * UDP checksum (bit 1) right after mutation, so that the fuzzer gets past
 * the checksum checks to the length checks behind them.
 *
 * Besides not crashing, a datagram the UDP check accepts must be one the
 * echo can answer, and the answer must pass the same check with the ports
 * swapped and the payload unchanged. At exit it prints how often each status
 * came back, so the test can tell the fuzzer reached every branch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aioxdp_native.h"

#define IDENT 0x5151

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*cb)(const uint8_t *, size_t));

/* by status, and by family: [0] IPv4 (and not IP), [1] IPv6 */
static unsigned long echo_seen[2][AIOXDP_ECHO_STATUS_MAX];
static unsigned long udp_seen[2][AIOXDP_UDP_STATUS_MAX];
static unsigned long echoed[2];

static void check_udp_echo(const uint8_t *data, uint32_t len, const struct aioxdp_udp_dgram *d)
{
	struct aioxdp_udp_dgram again;
	uint32_t ip, udp, cut, iplen = d->v6 ? 40 : 20;
	uint8_t *f;

	if (d->off + d->len > len || d->off < 14 + iplen + 8)
		abort(); /* the payload must lie inside the frame, after the headers */
	if (aioxdp_udp_echo_layout(data, len, d->off, d->len, &ip, &udp))
		abort(); /* what the check accepted, the echo must be able to answer */
	f = malloc(len);
	memcpy(f, data, len);
	cut = aioxdp_udp_echo_frame(f, ip, udp, d->len + 8);
	memset(&again, 0, sizeof(again));
	if (aioxdp_udp_check(f + cut, ip + iplen + d->len + 8, &again) != AIOXDP_UDP_OK)
		abort();
	if (again.v6 != d->v6 || (d->v6 && again.off != ip + 40 + 8))
		abort(); /* the answer is of the same family, its extension headers gone */
	if (again.sport != d->dport || again.dport != d->sport || again.len != d->len ||
	    again.saddr != d->daddr || again.daddr != d->saddr)
		abort();
	if (memcmp(f + cut + again.off, data + d->off, d->len))
		abort();
	free(f);
	echoed[d->v6]++;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint16_t internet_checksum(const uint8_t *p, uint32_t len, uint32_t sum)
{
	for (uint32_t i = 0; i + 1 < len; i += 2)
		sum += get16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void put_checksum(uint8_t *at, uint16_t sum)
{
	at[0] = sum >> 8;
	at[1] = sum & 0xff;
}

/* IPv6: the ICMPv6 or UDP checksum right behind the fixed header, over
 * the pseudo-header, where the payload length says and it fits. */
static void fix_checksums6(uint8_t *f, uint32_t len, uint32_t ip)
{
	uint32_t plen, pseudo, ulen;
	uint8_t *l4 = f + ip + 40;

	if (len < ip + 40)
		return;
	plen = get16(f + ip + 4);
	if (plen < 8 || ip + 40 + plen > len)
		return;
	ulen = f[ip + 6] == 17 ? get16(l4 + 4) : plen;
	if (f[ip + 6] == 17 && (ulen < 8 || ulen > plen))
		return;
	if (f[ip + 6] != 17 && f[ip + 6] != 58)
		return;
	pseudo = f[ip + 6] + ulen;
	for (int i = 0; i < 32; i += 2)
		pseudo += get16(f + ip + 8 + i);
	put_checksum(l4 + (f[ip + 6] == 17 ? 6 : 2), 0);
	put_checksum(l4 + (f[ip + 6] == 17 ? 6 : 2), internet_checksum(l4, ulen, pseudo));
}

/* Checksums made right where the headers say they are and they fit. */
static void fix_checksums(uint8_t *f, uint32_t len, uint8_t how)
{
	uint32_t ip = 14, hlen, total, l4len;

	if (len >= 18 && (get16(f + 12) == 0x8100 || get16(f + 12) == 0x88a8))
		ip = 18;
	if (len >= ip && get16(f + ip - 2) == 0x86dd && how & 2) {
		fix_checksums6(f, len, ip);
		return;
	}
	if (len < ip + 20 || get16(f + ip - 2) != 0x0800)
		return;
	hlen = (f[ip] & 0xfu) * 4;
	total = get16(f + ip + 2);
	if (hlen < 20 || ip + hlen > len)
		return;
	if (how & 2 && total > hlen && ip + total <= len) {
		uint8_t *l4 = f + ip + hlen;

		l4len = total - hlen;
		if (f[ip + 9] == 1 && l4len >= 8) {
			put_checksum(l4 + 2, 0);
			put_checksum(l4 + 2, internet_checksum(l4, l4len, 0));
		} else if (f[ip + 9] == 17 && l4len >= 8 && get16(l4 + 4) >= 8 &&
			   get16(l4 + 4) <= l4len) {
			uint32_t pseudo = 17 + get16(l4 + 4);

			for (int i = 0; i < 8; i += 2)
				pseudo += get16(f + ip + 12 + i);
			put_checksum(l4 + 6, 0);
			put_checksum(l4 + 6, internet_checksum(l4, get16(l4 + 4), pseudo));
		}
	}
	if (how & 1) {
		put_checksum(f + ip + 10, 0);
		put_checksum(f + ip + 10, internet_checksum(f + ip, hlen, 0));
	}
}

/* A stale or forged parse result, small or near the integer limits: the
 * layout check must refuse it or place it inside the frame, never read or
 * point outside it. */
static void check_forged_layout(const uint8_t *f, uint32_t len)
{
	uint64_t small = (uint64_t)f[len - 1] | (uint64_t)f[len - 2] << 8;
	uint32_t plen = f[len - 3] | (uint32_t)f[len - 4] << 24;
	uint64_t payloads[3] = {small, UINT64_MAX - small, small | (uint64_t)f[len - 5] << 32};
	uint32_t ip, udp;

	for (int i = 0; i < 3; i++) {
		uint32_t lens[2] = {plen, (uint32_t)(0u - (uint32_t)payloads[i])};

		for (int j = 0; j < 2; j++)
			if (!aioxdp_udp_echo_layout(f, len, payloads[i], lens[j], &ip, &udp) &&
			    (payloads[i] > len || lens[j] > len - payloads[i] || udp + 8 > len))
				abort(); /* accepted a datagram outside the frame */
	}
}

static int one_input(const uint8_t *input, size_t size)
{
	struct aioxdp_echo_reply r;
	struct aioxdp_udp_dgram d;
	uint32_t len;
	uint8_t *f, status;

	if (!size)
		return 0;
	len = size - 1 > 0xffff ? 0xffff : (uint32_t)size - 1;
	f = malloc(len ? len : 1);
	memcpy(f, input + 1, len);
	fix_checksums(f, len, input[0]);
	memset(&r, 0, sizeof(r));
	status = aioxdp_echo_check(f, len, IDENT, &r);
	if (status >= AIOXDP_ECHO_STATUS_MAX)
		abort();
	echo_seen[r.v6][status]++;
	memset(&d, 0, sizeof(d));
	status = aioxdp_udp_check(f, len, &d);
	if (status >= AIOXDP_UDP_STATUS_MAX)
		abort();
	udp_seen[d.v6][status]++;
	if (status == AIOXDP_UDP_OK)
		check_udp_echo(f, len, &d);
	else if (len >= 16)
		check_forged_layout(f, len);
	free(f);
	return 0;
}

static void report(void)
{
	for (int v6 = 0; v6 < 2; v6++) {
		const char *family = v6 ? "6" : "";

		fprintf(stderr, "echo%s statuses:", family);
		for (int i = 0; i < AIOXDP_ECHO_STATUS_MAX; i++)
			fprintf(stderr, " %lu", echo_seen[v6][i]);
		fprintf(stderr, "\nudp%s statuses:", family);
		for (int i = 0; i < AIOXDP_UDP_STATUS_MAX; i++)
			fprintf(stderr, " %lu", udp_seen[v6][i]);
		fprintf(stderr, "\nudp%s echoes checked: %lu\n", family, echoed[v6]);
	}
}

int main(int argc, char **argv)
{
	atexit(report);
	return LLVMFuzzerRunDriver(&argc, &argv, one_input);
}
