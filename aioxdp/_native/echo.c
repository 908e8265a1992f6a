/* ICMP echo on the hot path: the Internet checksum, stamping a batch of echo
 * requests into UMEM frames, and validating a batch of replies. The Python
 * codecs in protocols/ are the readable reference these are tested against. */
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include "aioxdp_native.h"
#include "frame.h"

/* Offsets inside our own frames, which are untagged Ethernet + 20-byte IPv4. */
#define ETH_LEN 14
#define IP_LEN 20
#define ICMP_OFF (ETH_LEN + IP_LEN)

int64_t aioxdp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint16_t aioxdp_ones_sum(const void *data, size_t len, uint32_t initial)
{
	return aioxdp_fold(aioxdp_sum16(data, len, initial));
}

uint16_t aioxdp_checksum(const void *data, size_t len, uint32_t initial)
{
	return (uint16_t)~aioxdp_fold(aioxdp_sum16(data, len, initial));
}

uint32_t aioxdp_echo_send(struct aioxdp_xsk *x, const uint8_t *tmpl, uint32_t len,
			  uint16_t seq0, uint32_t count, int64_t *sent_ns)
{
	uint64_t addrs[256];
	uint32_t done = 0;

	/* the template must hold the stamp and fit one frame: checked before
	 * any frame is taken or anything copied */
	if (len < ICMP_OFF + 8 + AIOXDP_ECHO_STAMP_LEN || len > aioxdp_xsk_frame_size(x))
		return 0;
	while (done < count) {
		uint32_t want = count - done, got;

		if (want > 256)
			want = 256;
		got = aioxdp_xsk_alloc(x, addrs, want);
		for (uint32_t i = 0; i < got; i++) {
			uint8_t *f = (uint8_t *)aioxdp_xsk_area(x) + addrs[i];
			uint16_t seq = (uint16_t)(seq0 + done + i);
			int64_t now;

			memcpy(f, tmpl, len);
			/* IP id follows the sequence: a distinct datagram each time */
			aioxdp_put16(f + ETH_LEN + 4, seq);
			aioxdp_put16(f + ETH_LEN + 10, 0);
			aioxdp_put16(f + ETH_LEN + 10, aioxdp_checksum(f + ETH_LEN, IP_LEN, 0));
			aioxdp_put16(f + ICMP_OFF + 6, seq);
			now = aioxdp_now_ns();
			memcpy(f + ICMP_OFF + 8, &now, sizeof(now));
			aioxdp_put16(f + ICMP_OFF + 2, 0);
			aioxdp_put16(f + ICMP_OFF + 2, aioxdp_checksum(f + ICMP_OFF, len - ICMP_OFF, 0));
			if (sent_ns)
				sent_ns[done + i] = now;
			if (aioxdp_xsk_send_frame(x, addrs[i], len) < 0) {
				/* cannot happen after the checks above; never leak or count it */
				for (uint32_t j = i; j < got; j++)
					aioxdp_xsk_release_one(x, addrs[j]);
				return done + i;
			}
		}
		done += got;
		if (got < want)
			break; /* out of frames: the caller retries after completions */
	}
	return done;
}

uint32_t aioxdp_echo_parse(struct aioxdp_xsk *x, const struct aioxdp_desc *descs, uint32_t n,
			   uint16_t ident, struct aioxdp_echo_reply *out)
{
	int64_t now = aioxdp_now_ns(); /* one receive stamp for the whole batch */
	uint32_t ok = 0;

	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *f = (const uint8_t *)aioxdp_xsk_area(x) + descs[i].addr;

		memset(&out[i], 0, sizeof(out[i]));
		out[i].recv_ns = now;
		if (!aioxdp_xsk_holds(x, descs[i].addr, descs[i].len)) {
			out[i].status = AIOXDP_ECHO_TRUNCATED; /* never read outside a frame */
			continue;
		}
		out[i].status = aioxdp_echo_check(f, descs[i].len, ident, &out[i]);
		ok += out[i].status == AIOXDP_ECHO_OK;
	}
	return ok;
}

/* Account a batch of checked replies against one target's probes (see the
 * state table in aioxdp/ping.py). Answered replies are appended to the
 * record arrays at *nrec. Returns how many probes left flight. */
uint32_t aioxdp_echo_account(const struct aioxdp_echo_reply *res, uint32_t n, uint32_t saddr,
			     struct aioxdp_echo_probes *p, struct aioxdp_echo_tally *t)
{
	uint32_t freed = 0;

	for (uint32_t i = 0; i < n; i++) {
		const struct aioxdp_echo_reply *r = &res[i];
		uint64_t last, probe;
		int64_t rtt;
		uint8_t state;

		if (r->status != AIOXDP_ECHO_OK) {
			if (t->count_malformed && r->status < AIOXDP_ECHO_STATUS_MAX)
				t->malformed[r->status]++;
			continue;
		}
		if (r->saddr != saddr)
			continue; /* another target's (or nobody's: the caller counts those) */
		t->matched++;
		if (!p->next_probe) {
			t->foreign++;
			continue;
		}
		last = p->next_probe - 1;
		/* the latest probe sent with this sequence number (seq = probe + 1) */
		probe = (uint16_t)(last - (uint16_t)(r->seq - 1));
		if (probe > last) {
			t->foreign++;
			continue;
		}
		probe = last - probe;
		state = p->state[probe];
		if (state == AIOXDP_PROBE_ANSWERED || state == AIOXDP_PROBE_LATE) {
			t->duplicates++;
			continue;
		}
		rtt = r->recv_ns - r->sent_ns;
		if (r->sent_ns != p->sent_ns[probe] || rtt < 0) {
			t->foreign++; /* not the stamp we sent with that sequence */
			continue;
		}
		if (rtt > p->timeout_ns) {
			t->late++;
			p->state[probe] = AIOXDP_PROBE_LATE;
			if (!state) {
				p->done++;
				freed++;
			}
			continue;
		}
		p->state[probe] = AIOXDP_PROBE_ANSWERED;
		if (!state) { /* an expired probe already left flight */
			p->done++;
			freed++;
		}
		p->rtts[p->nrec] = rtt / 1e9;
		p->seqs[p->nrec] = r->seq;
		p->ttls[p->nrec] = r->ttl;
		p->sizes[p->nrec] = r->size;
		p->nrec++;
	}
	return freed;
}

/* Expire probes whose timeout passed; returns how many. */
uint32_t aioxdp_echo_sweep(struct aioxdp_echo_probes *p, int64_t now_ns)
{
	int64_t limit = now_ns - p->timeout_ns;
	uint32_t expired = 0;
	uint64_t i = p->sweep;

	while (i < p->next_probe && (p->state[i] || p->sent_ns[i] <= limit)) {
		if (!p->state[i]) {
			p->state[i] = AIOXDP_PROBE_EXPIRED;
			p->done++;
			expired++;
		}
		i++;
	}
	p->sweep = i;
	return expired;
}
