/* Locating the IPv4 header of a received frame, shared by the echo and UDP
 * batch parsers. The first five status values are the same in every parser's
 * status enum, so a parser returns these directly. */
#ifndef AIOXDP_FRAME_H
#define AIOXDP_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum aioxdp_l3_status {
	AIOXDP_L3_OK = 0,
	AIOXDP_L3_TRUNCATED,
	AIOXDP_L3_NOT_IPV4,
	AIOXDP_L3_BAD_IP,
	AIOXDP_L3_BAD_IP_CHECKSUM,
};

struct aioxdp_l3 {
	uint32_t ip;     /* offset of the IPv4 header */
	uint32_t hlen;   /* its length */
	uint32_t total;  /* IP total length */
};

static inline uint16_t aioxdp_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void aioxdp_put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

/* One's complement sum of 16-bit big-endian words, added to sum. The result
 * is folded to 16 bits, so callers can keep adding to it and any
 * length (and any number of calls) is safe. RFC 1071's way: the data is
 * added 32 bits at a time in the host's byte order and the folded sum
 * swapped once, which gives the big-endian sum (end-around carry does not
 * care where a byte boundary is); twice as fast on 1500 bytes. */
static inline uint32_t aioxdp_sum16(const uint8_t *p, size_t len, uint32_t sum)
{
	uint64_t acc = 0;
	uint32_t word;
	uint16_t half;
	uint8_t last[2] = {0, 0};

	for (; len >= 4; p += 4, len -= 4) {
		memcpy(&word, p, 4); /* any alignment */
		acc += word;
	}
	if (len >= 2) {
		memcpy(&half, p, 2);
		acc += half;
		p += 2;
		len -= 2;
	}
	if (len) { /* an odd byte is the high half of a word padded with zero */
		last[0] = p[0];
		memcpy(&half, last, 2);
		acc += half;
	}
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	acc = (acc >> 8 | acc << 8) & 0xffff;
#endif
	acc += sum;
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint32_t)acc;
}

static inline uint16_t aioxdp_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* Ethernet (one VLAN tag at most), then a well-formed IPv4 header whose
 * checksum verifies and whose total length fits the frame. */
static inline int aioxdp_locate_ipv4(const uint8_t *f, uint32_t len, struct aioxdp_l3 *l3)
{
	uint32_t off = 14;
	uint16_t ethertype;

	if (len < 14)
		return AIOXDP_L3_TRUNCATED;
	ethertype = aioxdp_get16(f + 12);
	if (ethertype == 0x8100 || ethertype == 0x88a8) {
		if (len < 18)
			return AIOXDP_L3_TRUNCATED;
		ethertype = aioxdp_get16(f + 16);
		off += 4;
	}
	if (ethertype != 0x0800)
		return AIOXDP_L3_NOT_IPV4;
	if (len < off + 20)
		return AIOXDP_L3_TRUNCATED;
	if (f[off] >> 4 != 4)
		return AIOXDP_L3_BAD_IP;
	l3->ip = off;
	l3->hlen = (uint32_t)(f[off] & 0xf) * 4;
	l3->total = aioxdp_get16(f + off + 2);
	if (l3->hlen < 20 || l3->total < l3->hlen)
		return AIOXDP_L3_BAD_IP;
	if (off + l3->total > len)
		return AIOXDP_L3_TRUNCATED;
	if (aioxdp_fold(aioxdp_sum16(f + off, l3->hlen, 0)) != 0xffff)
		return AIOXDP_L3_BAD_IP_CHECKSUM;
	return AIOXDP_L3_OK;
}

#endif
