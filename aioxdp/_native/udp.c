/* UDP on the hot path: check and locate a batch of datagrams, echo a batch
 * back in place (zero copy), and build one datagram into a UMEM frame. */
#include <errno.h>
#include <string.h>

#include "aioxdp_native.h"
#include "frame.h"

/* How far ahead the batch loops prefetch frames. A received frame was
 * written by the kernel on whichever CPU ran the driver, and a TX frame's
 * header lines were last touched many frames ago: each loop otherwise
 * stalls on the first touch of every frame, one at a time. A prefetch
 * never faults, so it may name any address; nothing is read or written
 * before the checks below. */
#define PREFETCH_AHEAD 4

uint32_t aioxdp_udp_parse(struct aioxdp_xsk *x, const struct aioxdp_desc *descs, uint32_t n,
			  struct aioxdp_udp_dgram *out)
{
	const uint8_t *area = aioxdp_xsk_area(x);
	uint32_t ok = 0;

	for (uint32_t i = 0; i < n && i < PREFETCH_AHEAD; i++)
		__builtin_prefetch(area + descs[i].addr);
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *f = area + descs[i].addr;
		struct aioxdp_udp_dgram *d = &out[i];

		if (i + PREFETCH_AHEAD < n)
			__builtin_prefetch(area + descs[i + PREFETCH_AHEAD].addr);
		memset(d, 0, sizeof(*d));
		if (!aioxdp_xsk_holds(x, descs[i].addr, descs[i].len)) {
			d->status = AIOXDP_UDP_TRUNCATED; /* never read outside a frame */
			continue;
		}
		d->status = aioxdp_udp_check(f, descs[i].len, d);
		if (d->status != AIOXDP_UDP_OK)
			continue;
		d->off += descs[i].addr; /* from an offset in the frame to one in the UMEM */
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

	if (desc->flags & AIOXDP_DESC_KEEP || aioxdp_xsk_owner(x, desc->addr) != AIOXDP_OWN_RX ||
	    !aioxdp_xsk_holds(x, desc->addr, desc->len) || d->off < desc->addr)
		return -EINVAL;
	if (aioxdp_udp_echo_layout(f, desc->len, d->off - desc->addr, d->len, ip, udp))
		return -EINVAL;
	return 0;
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
		uint32_t iplen;

		if (d[i].status != AIOXDP_UDP_OK)
			continue;
		if (echo_layout(x, &descs[i], &d[i], &ip, &udp))
			continue; /* two descriptors of one frame: only the first is answered */
		/* read before the rewrite moves the headers */
		iplen = aioxdp_get16(f + ip - 2) == 0x86dd ? 40 : 20;
		descs[i].addr += aioxdp_udp_echo_frame(f, ip, udp, d[i].len + 8);
		descs[i].len = ip + iplen + d[i].len + 8;
		if (aioxdp_xsk_send_descs(x, &descs[i], 1) == 1)
			echoed++;
	}
	return echoed;
}

#define UDP4_HEAD 42 /* Ethernet, IPv4 and UDP headers */
#define PATH_OF(word) ((uint32_t)((word) >> 48) & AIOXDP_UDP_PATH_MASK)
#define UDP6_HEAD 62 /* Ethernet, IPv6 and UDP headers */

/* Lengths, id and checksums of the IPv4/UDP datagram at f + 14 whose
 * payload (``len`` bytes) is in place. */
static void finish_udp(uint8_t *f, uint16_t ip_id, uint32_t len)
{
	uint32_t sum;

	aioxdp_put16(f + 16, (uint16_t)(28 + len));
	aioxdp_put16(f + 18, ip_id);
	aioxdp_put16(f + 24, 0);
	aioxdp_put16(f + 24, (uint16_t)~aioxdp_fold(aioxdp_sum16(f + 14, 20, 0)));
	aioxdp_put16(f + 38, (uint16_t)(8 + len));
	aioxdp_put16(f + 40, 0);
	sum = aioxdp_sum16(f + 26, 8, 17 + 8 + len);
	sum = (uint16_t)~aioxdp_fold(aioxdp_sum16(f + 34, 8 + len, sum));
	aioxdp_put16(f + 40, sum ? (uint16_t)sum : 0xffff);
}

/* The same for IPv6/UDP: payload length, UDP length, the checksum over the
 * pseudo-header (never 0 over IPv6). */
static void finish_udp6(uint8_t *f, uint32_t len)
{
	uint32_t sum;

	aioxdp_put16(f + 18, (uint16_t)(8 + len));
	aioxdp_put16(f + 58, (uint16_t)(8 + len));
	aioxdp_put16(f + 60, 0);
	sum = aioxdp_sum16(f + 22, 32, 17 + 8 + len);
	sum = (uint16_t)~aioxdp_fold(aioxdp_sum16(f + 54, 8 + len, sum));
	aioxdp_put16(f + 60, sum ? (uint16_t)sum : 0xffff);
}

int aioxdp_udp_send(struct aioxdp_xsk *x, const uint8_t *hdr, uint16_t ip_id, const void *payload,
		    uint32_t len)
{
	uint64_t addr;
	uint8_t *f;

	if (len > 0xffff - 28 || len > aioxdp_xsk_frame_size(x) - 42)
		return -EMSGSIZE; /* checked before anything is copied */
	if (!aioxdp_xsk_alloc(x, &addr, 1))
		return -ENOBUFS;
	f = (uint8_t *)aioxdp_xsk_area(x) + addr;
	memcpy(f, hdr, 42);
	memcpy(f + 42, payload, len);
	finish_udp(f, ip_id, len);
	if (aioxdp_xsk_send_frame(x, addr, 42 + len) < 0) {
		aioxdp_xsk_release_one(x, addr);
		return -EMSGSIZE;
	}
	return 0;
}

/* How many header bytes a datagram on ``path`` has, or 0 if ``dest`` is
 * not of the path's family (its IPv6 bit) or names an IPv6 destination
 * past the table. */
static uint32_t head_len(const struct aioxdp_udp_path *path, uint64_t dest, uint32_t n_addrs6)
{
	if (!(dest & AIOXDP_UDP_V6_WORD) != !path->v6)
		return 0;
	if (!path->v6)
		return UDP4_HEAD;
	return (uint32_t)(dest >> 16) < n_addrs6 ? UDP6_HEAD : 0;
}

/* The header bytes of a datagram to ``dest`` on ``path`` (lengths, id and
 * checksums left to finish_udp or finish_udp6); head_len checked it. */
static void put_header(uint8_t *f, const struct aioxdp_udp_path *path, const uint8_t *addrs6,
		       uint64_t dest)
{
	uint32_t daddr = (uint32_t)(dest >> 16);

	if (path->v6) {
		memcpy(f, path->head, 54);
		memcpy(f + 38, addrs6 + (size_t)daddr * 16, 16);
		memcpy(f + 54, &path->sport, 2);
		aioxdp_put16(f + 56, (uint16_t)dest);
		return;
	}
	memcpy(f, path->head, 34);
	memcpy(f + 30, &daddr, 4);
	memcpy(f + 34, &path->sport, 2);
	aioxdp_put16(f + 36, (uint16_t)dest);
}

static void finish(uint8_t *f, const struct aioxdp_udp_path *path, uint16_t ip_id, uint32_t len)
{
	if (path->v6)
		finish_udp6(f, len);
	else
		finish_udp(f, ip_id, len);
}

int64_t aioxdp_udp_send_many(struct aioxdp_xsk *x, const struct aioxdp_udp_path *paths,
			     uint32_t n_paths, const uint8_t *addrs6, uint32_t n_addrs6,
			     const uint64_t *dests, const uint8_t *data, uint64_t data_len,
			     const uint32_t *lens, uint32_t n, uint16_t ip_id)
{
	uint64_t addrs[64], total = 0, at = 0;
	uint32_t frame = aioxdp_xsk_frame_size(x), sent = 0;
	uint8_t *area = aioxdp_xsk_area(x);

	if (!addrs6)
		n_addrs6 = 0;
	for (uint32_t k = 0; k < n; k++) {
		uint32_t path = PATH_OF(dests[k]), head;

		if (path >= n_paths || !(uint16_t)dests[k])
			return -EINVAL;
		head = head_len(&paths[path], dests[k], n_addrs6);
		if (!head)
			return -EINVAL;
		if (lens[k] > 0xffff - 28 || head > frame || lens[k] > frame - head)
			return -EMSGSIZE;
		total += lens[k];
	}
	if (total > data_len)
		return -EINVAL;
	while (sent < n) {
		uint32_t want = n - sent < 64 ? n - sent : 64, got;

		got = aioxdp_xsk_alloc(x, addrs, want);
		for (uint32_t k = 0; k < got && k < PREFETCH_AHEAD; k++)
			__builtin_prefetch(area + addrs[k], 1);
		for (uint32_t k = 0; k < got; k++) {
			uint32_t i = sent + k, len = lens[i];
			const struct aioxdp_udp_path *path = &paths[PATH_OF(dests[i])];
			uint32_t head = head_len(path, dests[i], n_addrs6);
			uint8_t *f = area + addrs[k];

			if (k + PREFETCH_AHEAD < got)
				__builtin_prefetch(area + addrs[k + PREFETCH_AHEAD], 1);

			put_header(f, path, addrs6, dests[i]);
			memcpy(f + head, data + at, len);
			finish(f, path, (uint16_t)(ip_id + i), len);
			at += len;
			if (aioxdp_xsk_send_frame(x, addrs[k], head + len) < 0) {
				/* cannot happen after the checks above; never leak or count it */
				for (uint32_t j = k; j < got; j++)
					aioxdp_xsk_release_one(x, addrs[j]);
				return sent + k;
			}
		}
		sent += got;
		if (got < want)
			break; /* out of frames: the rest wait for completions */
	}
	return sent;
}

int64_t aioxdp_udp_build(const struct aioxdp_udp_path *path, const uint8_t *addrs6,
			 uint32_t n_addrs6, uint64_t dest, uint16_t ip_id, const uint8_t *payload,
			 uint32_t len, uint8_t *out, uint32_t room)
{
	uint32_t head = head_len(path, dest, addrs6 ? n_addrs6 : 0);

	if (!head)
		return -EINVAL;
	if (len > 0xffff - 28 || room < head || len > room - head)
		return -EMSGSIZE;
	put_header(out, path, addrs6, dest);
	memcpy(out + head, payload, len);
	finish(out, path, ip_id, len);
	return head + len;
}

uint32_t aioxdp_udp_flatten(const struct aioxdp_udp_dgram *d, uint32_t n, uint64_t *out)
{
	uint32_t valid = 0, run = n; /* run: the IPv6 datagram whose sender names this run */

	for (uint32_t i = 0; i < n; i++) {
		if (d[i].status != AIOXDP_UDP_OK)
			continue;
		out[3 * valid] = d[i].off;
		out[3 * valid + 1] = d[i].off + d[i].len;
		if (d[i].v6) {
			/* a sender's datagrams, back to back, get one word (the
			 * port is in it): the reader looks the sender up once */
			if (run == n || memcmp(d[run].saddr6, d[i].saddr6, 16))
				run = i;
			out[3 * valid + 2] = AIOXDP_UDP_V6_WORD | (uint64_t)run << 16 | d[i].sport;
		} else {
			out[3 * valid + 2] = (uint64_t)d[i].saddr << 16 | d[i].sport;
		}
		valid++;
	}
	return valid;
}
