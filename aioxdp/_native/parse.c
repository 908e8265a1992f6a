/* Per-frame checks of received frames, and the in-place rewrite of a UDP
 * datagram into its echo: pure functions over one frame's bytes, with no
 * socket behind them. The batch calls in echo.c and udp.c use them on UMEM
 * frames; tests/fuzz/native_parsers.c feeds them arbitrary bytes under
 * AddressSanitizer. Every read is bounded by len. */
#include <string.h>

#include "aioxdp_native.h"
#include "frame.h"

/* An ICMP error at ``off`` (``size`` bytes, checksum checked): our echo
 * request if it quotes one (RFC 792: the IP header and at least 8 bytes). */
static uint8_t echo_error(const uint8_t *f, uint32_t off, uint32_t size, uint16_t ident,
			  struct aioxdp_echo_reply *r)
{
	uint32_t q = off + 8, qlen = size - 8, qhlen, echo;

	if (qlen < 20 || f[q] >> 4 != 4 || (f[q] & 0xf) < 5)
		return AIOXDP_ECHO_NOT_REPLY;
	qhlen = (f[q] & 0xf) * 4u;
	if (f[q + 9] != 1 || (aioxdp_get16(f + q + 6) & 0x1fff) || qlen < qhlen + 8)
		return AIOXDP_ECHO_NOT_REPLY; /* not ICMP, a later fragment, or cut short */
	echo = q + qhlen;
	if (f[echo] != 8 || f[echo + 1] != 0)
		return AIOXDP_ECHO_NOT_REPLY; /* it answers no echo request */
	if (aioxdp_get16(f + echo + 4) != ident)
		return AIOXDP_ECHO_FOREIGN;
	r->sender = r->saddr;
	memcpy(&r->saddr, f + q + 16, 4); /* the request's destination: which target */
	r->seq = aioxdp_get16(f + echo + 6);
	r->icmp_type = f[off];
	r->icmp_code = f[off + 1];
	r->info = f[off] == 12 ? f[off + 4] : (f[off] == 3 && f[off + 1] == 4) ? aioxdp_get16(f + off + 6) : 0;
	r->sent_ns = 0;
	if (qlen >= qhlen + 8 + AIOXDP_ECHO_STAMP_LEN)
		memcpy(&r->sent_ns, f + echo + 8, sizeof(r->sent_ns));
	return AIOXDP_ECHO_ERROR;
}

/* Where the IPv6 header of an Ethernet frame starts, untagged or behind one
 * 802.1Q/802.1ad tag (as aioxdp_locate_ipv4 steps over): 14, 18, or 0 if
 * the frame does not carry IPv6. */
static uint32_t ipv6_at(const uint8_t *f, uint32_t len)
{
	uint16_t ethertype;

	if (len < 14)
		return 0;
	ethertype = aioxdp_get16(f + 12);
	if (ethertype == 0x86dd)
		return 14;
	if ((ethertype == 0x8100 || ethertype == 0x88a8) && len >= 18 &&
	    aioxdp_get16(f + 16) == 0x86dd)
		return 18;
	return 0;
}

/* Past IPv6's fixed header at ``ip``: the upper-layer header's offset
 * after at most 8 hop-by-hop, routing, destination options and atomic
 * fragment headers (RFC 6946: offset 0, no M flag), each within the payload
 * (``end``); *next its protocol. A fragment header of a real fragment stops
 * the walk: *next is 44 and the offset is that header's (its first byte
 * names the protocol fragmented). 0 if a header runs past the payload, the
 * chain is longer, or a routing header still has segments left (the packet
 * is not at its final destination, which the checksum would cover). */
static uint32_t ipv6_upper(const uint8_t *f, uint32_t ip, uint32_t end, uint8_t *next)
{
	uint32_t at = ip + 40;
	uint8_t nh = f[ip + 6];

	for (int i = 0; i < 8; i++) {
		if (nh != 0 && nh != 43 && nh != 60 && nh != 44)
			break;
		if (end - at < 8)
			return 0;
		if (nh == 44) {
			if (aioxdp_get16(f + at + 2) & 0xfff9) {
				*next = 44;
				return at;
			}
			nh = f[at];
			at += 8;
			continue;
		}
		if (nh == 43 && f[at + 3])
			return 0;
		nh = f[at];
		at += ((uint32_t)f[at + 1] + 1) * 8;
		if (at > end)
			return 0;
	}
	if (nh == 0 || nh == 43 || nh == 60 || nh == 44)
		return 0;
	*next = nh;
	return at;
}

static void map_ipv4(uint8_t *out, const uint8_t *v4)
{
	memset(out, 0, 10);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, v4, 4);
}

/* An ICMPv6 error at ``off`` (``size`` bytes, checksum checked): our echo
 * request if it quotes one (RFC 4443: as much of the packet as fits; we
 * need its IPv6 header and the echo header right behind it). */
static uint8_t echo6_error(const uint8_t *f, uint32_t off, uint32_t size, uint16_t ident,
			   struct aioxdp_echo_reply *r)
{
	uint32_t q = off + 8, qlen = size - 8, echo = q + 40, info;

	if (qlen < 48 || f[q] >> 4 != 6 || f[q + 6] != 58)
		return AIOXDP_ECHO_NOT_REPLY; /* not ICMPv6 right behind the header, or cut short */
	if (f[echo] != 128 || f[echo + 1] != 0)
		return AIOXDP_ECHO_NOT_REPLY; /* it answers no echo request */
	if (aioxdp_get16(f + echo + 4) != ident)
		return AIOXDP_ECHO_FOREIGN;
	memcpy(r->sender6, r->saddr6, 16);
	memcpy(r->saddr6, f + q + 24, 16); /* the request's destination: which target */
	r->seq = aioxdp_get16(f + echo + 6);
	r->icmp_type = f[off];
	r->icmp_code = f[off + 1];
	info = (uint32_t)aioxdp_get16(f + off + 4) << 16 | aioxdp_get16(f + off + 6);
	/* packet too big: the MTU; parameter problem: the pointer (both 32 bits) */
	r->info = f[off] == 2 || f[off] == 4 ? (info > 0xffff ? 0xffff : (uint16_t)info) : 0;
	r->sent_ns = 0;
	if (qlen >= 48 + AIOXDP_ECHO_STAMP_LEN)
		memcpy(&r->sent_ns, f + echo + 8, sizeof(r->sent_ns));
	return AIOXDP_ECHO_ERROR;
}

/* An echo reply over IPv6 (RFC 8200, 4443): the fixed header with its
 * payload inside the frame, extension headers walked, ICMPv6 behind them
 * (a fragment of it is a fragment), its checksum over the pseudo-header. */
static uint8_t echo6_check(const uint8_t *f, uint32_t len, uint32_t ip, uint16_t ident,
			   struct aioxdp_echo_reply *r)
{
	uint32_t end, off, sum;
	uint8_t next;

	r->v6 = 1;
	if (len < ip + 40)
		return AIOXDP_ECHO_TRUNCATED;
	if (f[ip] >> 4 != 6)
		return AIOXDP_ECHO_BAD_IP;
	end = ip + 40 + aioxdp_get16(f + ip + 4);
	if (end > len)
		return AIOXDP_ECHO_TRUNCATED;
	off = ipv6_upper(f, ip, end, &next);
	if (!off)
		return AIOXDP_ECHO_BAD_IP;
	if (next == 44)
		return f[off] == 58 ? AIOXDP_ECHO_FRAGMENT : AIOXDP_ECHO_NOT_ICMP;
	if (next != 58)
		return AIOXDP_ECHO_NOT_ICMP;
	memcpy(r->saddr6, f + ip + 8, 16);
	r->ttl = f[ip + 7];
	r->size = end - off;
	if (r->size < 8)
		return AIOXDP_ECHO_TRUNCATED;
	sum = aioxdp_sum16(f + ip + 8, 32, r->size + 58);
	if (aioxdp_fold(aioxdp_sum16(f + off, r->size, sum)) != 0xffff)
		return AIOXDP_ECHO_BAD_ICMP_CHECKSUM;
	if (f[off] >= 1 && f[off] <= 4)
		return echo6_error(f, off, r->size, ident, r);
	if (f[off] != 129 || f[off + 1] != 0)
		return AIOXDP_ECHO_NOT_REPLY;
	r->seq = aioxdp_get16(f + off + 6);
	if (aioxdp_get16(f + off + 4) != ident)
		return AIOXDP_ECHO_FOREIGN;
	r->sent_ns = 0;
	if (r->size >= 8 + AIOXDP_ECHO_STAMP_LEN)
		memcpy(&r->sent_ns, f + off + 8, sizeof(r->sent_ns));
	return AIOXDP_ECHO_OK;
}

/* The lookup key of a checked message's address (see aioxdp_echo_keys). */
static uint8_t keyed(struct aioxdp_echo_reply *r, uint8_t status)
{
	uint32_t w[4];

	if (status != AIOXDP_ECHO_OK && status != AIOXDP_ECHO_ERROR)
		return status;
	if (r->v6) {
		memcpy(w, r->saddr6, 16);
		r->saddr = w[0] ^ w[1] ^ w[2] ^ w[3];
	} else {
		map_ipv4(r->saddr6, (const uint8_t *)&r->saddr);
	}
	return status;
}

uint8_t aioxdp_echo_check(const uint8_t *f, uint32_t len, uint16_t ident,
			  struct aioxdp_echo_reply *r)
{
	struct aioxdp_l3 l3;
	uint32_t off;
	int status = aioxdp_locate_ipv4(f, len, &l3);

	r->v6 = 0; /* a reused struct says nothing of this frame */
	if (status == AIOXDP_L3_NOT_IPV4) {
		uint32_t ip = ipv6_at(f, len);

		if (!ip)
			return AIOXDP_ECHO_NOT_IP;
		return keyed(r, echo6_check(f, len, ip, ident, r));
	}
	if (status != AIOXDP_L3_OK)
		return (uint8_t)status; /* the first statuses mean the same in both enums */
	if (f[l3.ip + 9] != 1)
		return AIOXDP_ECHO_NOT_ICMP;
	if (aioxdp_get16(f + l3.ip + 6) & 0x3fff)
		return AIOXDP_ECHO_FRAGMENT;
	memcpy(&r->saddr, f + l3.ip + 12, 4);
	r->ttl = f[l3.ip + 8];
	r->size = l3.total - l3.hlen;
	off = l3.ip + l3.hlen;
	if (r->size < 8)
		return AIOXDP_ECHO_TRUNCATED;
	if (aioxdp_fold(aioxdp_sum16(f + off, r->size, 0)) != 0xffff)
		return AIOXDP_ECHO_BAD_ICMP_CHECKSUM;
	if (f[off] == 3 || f[off] == 11 || f[off] == 12)
		return keyed(r, echo_error(f, off, r->size, ident, r));
	if (f[off] != 0 || f[off + 1] != 0)
		return AIOXDP_ECHO_NOT_REPLY;
	r->seq = aioxdp_get16(f + off + 6);
	if (aioxdp_get16(f + off + 4) != ident)
		return AIOXDP_ECHO_FOREIGN;
	r->sent_ns = 0; /* a request shorter than the stamp carried none */
	if (r->size >= 8 + AIOXDP_ECHO_STAMP_LEN)
		memcpy(&r->sent_ns, f + off + 8, sizeof(r->sent_ns));
	return keyed(r, AIOXDP_ECHO_OK);
}

static uint32_t fold_words(const uint8_t *a)
{
	uint32_t w[4];

	memcpy(w, a, 16);
	return w[0] ^ w[1] ^ w[2] ^ w[3];
}

/* UDP over IPv6 (RFC 8200 8.1: a zero checksum is not allowed). */
static uint8_t udp6_check(const uint8_t *f, uint32_t len, uint32_t ip, struct aioxdp_udp_dgram *d)
{
	uint32_t end, udp, ulen, sum;
	uint8_t next;

	d->v6 = 1;
	if (len < ip + 40)
		return AIOXDP_UDP_TRUNCATED;
	if (f[ip] >> 4 != 6)
		return AIOXDP_UDP_BAD_IP;
	end = ip + 40 + aioxdp_get16(f + ip + 4);
	if (end > len)
		return AIOXDP_UDP_TRUNCATED;
	udp = ipv6_upper(f, ip, end, &next);
	if (!udp)
		return AIOXDP_UDP_BAD_IP;
	if (next == 44) /* we never deliver part of a datagram */
		return f[udp] == 17 ? AIOXDP_UDP_FRAGMENT : AIOXDP_UDP_NOT_UDP;
	if (next != 17)
		return AIOXDP_UDP_NOT_UDP;
	if (end - udp < 8)
		return AIOXDP_UDP_TRUNCATED;
	ulen = aioxdp_get16(f + udp + 4);
	if (ulen < 8 || ulen > end - udp)
		return AIOXDP_UDP_BAD_LENGTH;
	sum = aioxdp_sum16(f + ip + 8, 32, 17 + ulen);
	if (!aioxdp_get16(f + udp + 6) || aioxdp_fold(aioxdp_sum16(f + udp, ulen, sum)) != 0xffff)
		return AIOXDP_UDP_BAD_CHECKSUM;
	memcpy(d->saddr6, f + ip + 8, 16);
	d->saddr = fold_words(f + ip + 8);
	d->daddr = fold_words(f + ip + 24);
	d->sport = aioxdp_get16(f + udp);
	d->dport = aioxdp_get16(f + udp + 2);
	d->off = udp + 8;
	d->len = ulen - 8;
	return AIOXDP_UDP_OK;
}

uint8_t aioxdp_udp_check(const uint8_t *f, uint32_t len, struct aioxdp_udp_dgram *d)
{
	struct aioxdp_l3 l3;
	uint32_t udp, ulen;
	int status = aioxdp_locate_ipv4(f, len, &l3);

	d->v6 = 0; /* a reused struct says nothing of this frame */
	if (status == AIOXDP_L3_NOT_IPV4) {
		uint32_t ip = ipv6_at(f, len);

		if (!ip)
			return AIOXDP_UDP_NOT_IP;
		return udp6_check(f, len, ip, d);
	}
	if (status != AIOXDP_L3_OK)
		return (uint8_t)status;
	if (f[l3.ip + 9] != 17)
		return AIOXDP_UDP_NOT_UDP;
	if (aioxdp_get16(f + l3.ip + 6) & 0x3fff)
		return AIOXDP_UDP_FRAGMENT; /* we never deliver part of a datagram */
	udp = l3.ip + l3.hlen;
	if (l3.total - l3.hlen < 8)
		return AIOXDP_UDP_TRUNCATED;
	ulen = aioxdp_get16(f + udp + 4);
	if (ulen < 8 || ulen > l3.total - l3.hlen)
		return AIOXDP_UDP_BAD_LENGTH;
	if (aioxdp_get16(f + udp + 6)) {
		/* pseudo-header: addresses, protocol, UDP length */
		uint32_t sum = aioxdp_sum16(f + l3.ip + 12, 8, 17 + ulen);

		if (aioxdp_fold(aioxdp_sum16(f + udp, ulen, sum)) != 0xffff)
			return AIOXDP_UDP_BAD_CHECKSUM;
	}
	memcpy(&d->saddr, f + l3.ip + 12, 4);
	memcpy(&d->daddr, f + l3.ip + 16, 4);
	d->sport = aioxdp_get16(f + udp);
	d->dport = aioxdp_get16(f + udp + 2);
	d->off = udp + 8;
	d->len = ulen - 8;
	return AIOXDP_UDP_OK;
}

int aioxdp_udp_echo_layout(const uint8_t *f, uint32_t len, uint64_t payload, uint32_t plen,
			   uint32_t *ip, uint32_t *udp)
{
	uint32_t hlen, ethertype;
	uint8_t next;

	/* payload + plen could wrap: compare each against what is left */
	if (len < 14 || payload < 8 || payload > len || plen > len - payload)
		return -1;
	*udp = (uint32_t)payload - 8;
	ethertype = aioxdp_get16(f + 12);
	*ip = 14;
	if (ethertype == 0x8100 || ethertype == 0x88a8) {
		if (len < 18)
			return -1;
		*ip = 18;
		ethertype = aioxdp_get16(f + 16);
	}
	if (ethertype == 0x86dd) {
		/* the headers as they are now: the UDP header where the walk ends */
		if (*udp < *ip + 40)
			return -1;
		return ipv6_upper(f, *ip, *udp + 8, &next) == *udp && next == 17 ? 0 : -1;
	}
	if (ethertype != 0x0800 || *udp < *ip + 20)
		return -1;
	hlen = (uint32_t)(f[*ip] & 0xf) * 4;
	return *udp == *ip + hlen && hlen >= 20 ? 0 : -1;
}

/* Swap the n bytes at a with those at b (n <= 16). */
static void swap_bytes(uint8_t *a, uint8_t *b, uint32_t n)
{
	uint8_t tmp[16];

	memcpy(tmp, a, n);
	memcpy(a, b, n);
	memcpy(b, tmp, n);
}

/* A datagram's answer: MACs, addresses (``width`` bytes each, the source's
 * at ``addrs``, the destination's right after) and ports swapped. The UDP
 * checksum stays valid: one's complement sums do not care about order. */
static void turn_around(uint8_t *f, uint32_t addrs, uint32_t width, uint32_t udp)
{
	swap_bytes(f, f + 6, 6);
	swap_bytes(f + addrs, f + addrs + width, width);
	swap_bytes(f + udp, f + udp + 2, 2);
}

/* The IPv6 form of aioxdp_udp_echo_frame: the UDP checksum holds as it is
 * (the pseudo-header sums the same addresses, and the UDP length), but a
 * zero one, which IPv6 does not allow, is computed. */
static uint32_t udp6_echo_frame(uint8_t *f, uint32_t ip, uint32_t udp, uint32_t ulen)
{
	uint32_t cut = udp - ip - 40, sum;

	turn_around(f, ip + 8, 16, udp);
	if (!aioxdp_get16(f + udp + 6)) {
		sum = aioxdp_sum16(f + ip + 8, 32, 17 + ulen);
		sum = (uint16_t)~aioxdp_fold(aioxdp_sum16(f + udp, ulen, sum));
		aioxdp_put16(f + udp + 6, sum ? (uint16_t)sum : 0xffff);
	}
	if (cut) {
		/* drop the extension headers: the Ethernet and fixed IPv6 headers move up */
		memmove(f + cut, f, ip + 40);
		f += cut;
	}
	f[ip + 6] = 17;
	f[ip + 7] = 64; /* hop limit */
	aioxdp_put16(f + ip + 4, (uint16_t)ulen);
	return cut;
}

uint32_t aioxdp_udp_echo_frame(uint8_t *f, uint32_t ip, uint32_t udp, uint32_t ulen)
{
	uint32_t hlen = udp - ip, cut = hlen - 20, sum;

	if (aioxdp_get16(f + ip - 2) == 0x86dd) /* as the layout check read it */
		return udp6_echo_frame(f, ip, udp, ulen);
	turn_around(f, ip + 12, 4, udp);
	if (!aioxdp_get16(f + udp + 6)) {
		sum = aioxdp_sum16(f + ip + 12, 8, 17 + ulen);
		sum = (uint16_t)~aioxdp_fold(aioxdp_sum16(f + udp, ulen, sum));
		aioxdp_put16(f + udp + 6, sum ? (uint16_t)sum : 0xffff);
	}
	if (cut) {
		/* drop the options: the Ethernet and fixed IP headers move up */
		memmove(f + cut, f, ip + 20);
		f += cut;
		f[ip] = 0x45;
	}
	aioxdp_put16(f + ip + 2, (uint16_t)(20 + ulen));
	f[ip + 8] = 64; /* TTL */
	aioxdp_put16(f + ip + 10, 0);
	aioxdp_put16(f + ip + 10, (uint16_t)~aioxdp_fold(aioxdp_sum16(f + ip, 20, 0)));
	return cut;
}
