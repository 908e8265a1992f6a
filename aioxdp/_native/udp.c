/* UDP on the hot path: check and locate a batch of datagrams, echo a batch
 * back in place (zero copy), and build one datagram into a UMEM frame. */
#include <errno.h>
#include <string.h>

#include "aioxdp_native.h"
#include "frame.h"

uint32_t aioxdp_udp_parse(struct aioxdp_xsk *x, const struct aioxdp_desc *descs, uint32_t n,
			  struct aioxdp_udp_dgram *out)
{
	uint32_t ok = 0;

	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *f = (const uint8_t *)aioxdp_xsk_area(x) + descs[i].addr;
		struct aioxdp_udp_dgram *d = &out[i];
		struct aioxdp_l3 l3;
		uint32_t udp, ulen;
		int status;

		memset(d, 0, sizeof(*d));
		if (!aioxdp_xsk_holds(x, descs[i].addr, descs[i].len)) {
			d->status = AIOXDP_UDP_TRUNCATED; /* never read outside a frame */
			continue;
		}
		status = aioxdp_locate_ipv4(f, descs[i].len, &l3);
		if (status != AIOXDP_L3_OK) {
			d->status = (uint8_t)status;
			continue;
		}
		if (f[l3.ip + 9] != 17) {
			d->status = AIOXDP_UDP_NOT_UDP;
			continue;
		}
		if (aioxdp_get16(f + l3.ip + 6) & 0x3fff) {
			d->status = AIOXDP_UDP_FRAGMENT; /* we never deliver part of a datagram */
			continue;
		}
		udp = l3.ip + l3.hlen;
		if (l3.total - l3.hlen < 8) {
			d->status = AIOXDP_UDP_TRUNCATED;
			continue;
		}
		ulen = aioxdp_get16(f + udp + 4);
		if (ulen < 8 || ulen > l3.total - l3.hlen) {
			d->status = AIOXDP_UDP_BAD_LENGTH;
			continue;
		}
		if (aioxdp_get16(f + udp + 6)) {
			/* pseudo-header: addresses, protocol, UDP length */
			uint32_t sum = aioxdp_sum16(f + l3.ip + 12, 8, 17 + ulen);

			if (aioxdp_fold(aioxdp_sum16(f + udp, ulen, sum)) != 0xffff) {
				d->status = AIOXDP_UDP_BAD_CHECKSUM;
				continue;
			}
		}
		memcpy(&d->saddr, f + l3.ip + 12, 4);
		memcpy(&d->daddr, f + l3.ip + 16, 4);
		d->sport = aioxdp_get16(f + udp);
		d->dport = aioxdp_get16(f + udp + 2);
		d->off = descs[i].addr + udp + 8;
		d->len = ulen - 8;
		d->status = AIOXDP_UDP_OK;
		ok++;
	}
	return ok;
}

/* Where datagram i's UDP header and IP header are, after checking that the
 * descriptor and the parse result still describe one frame of ours. */
static int echo_layout(struct aioxdp_xsk *x, const struct aioxdp_desc *desc,
		       const struct aioxdp_udp_dgram *d, uint32_t *ip, uint32_t *udp)
{
	const uint8_t *f = (const uint8_t *)aioxdp_xsk_area(x) + desc->addr;
	uint32_t hlen;

	if (desc->flags & AIOXDP_DESC_KEEP || aioxdp_xsk_owner(x, desc->addr) != AIOXDP_OWN_RX ||
	    !aioxdp_xsk_holds(x, desc->addr, desc->len))
		return -EINVAL;
	if (d->off < desc->addr + 8 || d->off - desc->addr + d->len > desc->len)
		return -EINVAL;
	*udp = (uint32_t)(d->off - desc->addr) - 8;
	*ip = aioxdp_get16(f + 12) == 0x0800 ? 14 : 18;
	hlen = (uint32_t)(f[*ip] & 0xf) * 4;
	return *udp == *ip + hlen && hlen >= 20 ? 0 : -EINVAL;
}

int aioxdp_udp_echo(struct aioxdp_xsk *x, struct aioxdp_desc *descs,
		    const struct aioxdp_udp_dgram *d, uint32_t n)
{
	/* Every valid datagram is answered, as the per-datagram path would:
	 * IP options are dropped (the header moves forward over them), bytes
	 * after the UDP datagram are cut, a UDP checksum of 0 is computed.
	 * All frames are checked first: if any is no longer the batch's to send
	 * (echoed twice, kept, sent back), nothing is touched and -EINVAL comes
	 * back; otherwise the number echoed. */
	int echoed = 0;
	uint32_t ip, udp;

	for (uint32_t i = 0; i < n; i++)
		if (d[i].status == AIOXDP_UDP_OK && echo_layout(x, &descs[i], &d[i], &ip, &udp))
			return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *f = (uint8_t *)aioxdp_xsk_area(x) + descs[i].addr;
		uint32_t hlen, ulen, cut, sum;
		uint8_t tmp[6];

		if (d[i].status != AIOXDP_UDP_OK)
			continue;
		echo_layout(x, &descs[i], &d[i], &ip, &udp);
		hlen = udp - ip;
		ulen = d[i].len + 8;
		/* Swapping source and destination leaves the UDP checksum valid
		 * (one's complement sums do not care about order). */
		memcpy(tmp, f, 6);
		memcpy(f, f + 6, 6);
		memcpy(f + 6, tmp, 6);
		memcpy(tmp, f + ip + 12, 4);
		memcpy(f + ip + 12, f + ip + 16, 4);
		memcpy(f + ip + 16, tmp, 4);
		memcpy(tmp, f + udp, 2);
		memcpy(f + udp, f + udp + 2, 2);
		memcpy(f + udp + 2, tmp, 2);
		if (!aioxdp_get16(f + udp + 6)) {
			sum = aioxdp_sum16(f + ip + 12, 8, 17 + ulen);
			sum = (uint16_t)~aioxdp_fold(aioxdp_sum16(f + udp, ulen, sum));
			aioxdp_put16(f + udp + 6, sum ? (uint16_t)sum : 0xffff);
		}
		cut = hlen - 20;
		if (cut) {
			/* drop the options: the Ethernet and fixed IP headers move up */
			memmove(f + cut, f, ip + 20);
			f += cut;
			descs[i].addr += cut;
			f[ip] = 0x45;
		}
		descs[i].len = ip + 20 + ulen;
		aioxdp_put16(f + ip + 2, (uint16_t)(20 + ulen));
		f[ip + 8] = 64; /* TTL */
		aioxdp_put16(f + ip + 10, 0);
		aioxdp_put16(f + ip + 10, (uint16_t)~aioxdp_fold(aioxdp_sum16(f + ip, 20, 0)));
		if (aioxdp_xsk_send_descs(x, &descs[i], 1) == 1)
			echoed++;
	}
	return echoed;
}

int aioxdp_udp_send(struct aioxdp_xsk *x, const uint8_t *hdr, uint16_t ip_id, const void *payload,
		    uint32_t len)
{
	uint64_t addr;
	uint8_t *f;
	uint32_t sum;

	if (len > 0xffff - 28 || len > aioxdp_xsk_frame_size(x) - 42)
		return -EMSGSIZE; /* checked before anything is copied */
	if (!aioxdp_xsk_alloc(x, &addr, 1))
		return -ENOBUFS;
	f = (uint8_t *)aioxdp_xsk_area(x) + addr;
	memcpy(f, hdr, 42);
	memcpy(f + 42, payload, len);
	aioxdp_put16(f + 16, (uint16_t)(28 + len));
	aioxdp_put16(f + 18, ip_id);
	aioxdp_put16(f + 24, 0);
	aioxdp_put16(f + 24, (uint16_t)~aioxdp_fold(aioxdp_sum16(f + 14, 20, 0)));
	aioxdp_put16(f + 38, (uint16_t)(8 + len));
	aioxdp_put16(f + 40, 0);
	sum = aioxdp_sum16(f + 26, 8, 17 + 8 + len);
	sum = (uint16_t)~aioxdp_fold(aioxdp_sum16(f + 34, 8 + len, sum));
	aioxdp_put16(f + 40, sum ? (uint16_t)sum : 0xffff);
	if (aioxdp_xsk_send_frame(x, addr, 42 + len) < 0) {
		aioxdp_xsk_release_one(x, addr);
		return -EMSGSIZE;
	}
	return 0;
}
