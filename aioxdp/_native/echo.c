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

	/* the template must hold the echo header and fit one frame: checked
	 * before any frame is taken or anything copied */
	if (len < ICMP_OFF + 8 || len > aioxdp_xsk_frame_size(x))
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
			if (len >= ICMP_OFF + 8 + AIOXDP_ECHO_STAMP_LEN) /* else no room: none carried */
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

void aioxdp_echo_probes_init(struct aioxdp_echo_probes *p, uint32_t n_targets, uint32_t count,
			     uint8_t *state, int64_t *sent_ns, double *rtts, uint32_t *seqs,
			     uint8_t *ttls, uint32_t *sizes, int64_t timeout_ns)
{
	for (uint32_t i = 0; i < n_targets; i++) {
		size_t at = (size_t)i * count;

		memset(&p[i], 0, sizeof(p[i]));
		p[i].state = state + at;
		p[i].sent_ns = sent_ns + at;
		p[i].rtts = rtts + at;
		p[i].seqs = seqs + at;
		p[i].ttls = ttls + at;
		p[i].sizes = sizes + at;
		p[i].count = count;
		p[i].timeout_ns = timeout_ns;
	}
}

static uint32_t lookup_slot(uint32_t saddr, uint32_t mask)
{
	return (uint32_t)((saddr * 2654435761u) >> 7) & mask; /* Knuth's multiplicative hash */
}

int aioxdp_echo_lookup_build(struct aioxdp_echo_lookup *l, const uint32_t *saddrs)
{
	if (l->mask + 1 < 2 * (uint64_t)l->n_targets || (l->mask & (l->mask + 1)))
		return -1; /* too small to stay sparse, or not a power of two */
	for (uint32_t h = 0; h <= l->mask; h++)
		l->index[h] = -1;
	/* in reverse, so each chain runs in target order */
	for (uint32_t i = l->n_targets; i-- > 0;) {
		uint32_t h = lookup_slot(saddrs[i], l->mask);

		while (l->index[h] >= 0 && l->keys[h] != saddrs[i])
			h = (h + 1) & l->mask;
		l->next_same[i] = l->index[h]; /* -1, or the next target with it */
		l->keys[h] = saddrs[i];
		l->index[h] = (int32_t)i;
	}
	return 0;
}

static int32_t lookup_find(const struct aioxdp_echo_lookup *l, uint32_t saddr)
{
	uint32_t h = lookup_slot(saddr, l->mask);

	while (l->index[h] >= 0) {
		if (l->keys[h] == saddr)
			return l->index[h];
		h = (h + 1) & l->mask;
	}
	return -1;
}

uint32_t aioxdp_echo_send_each(struct aioxdp_xsk *x, const uint8_t *frames, uint32_t len,
			       struct aioxdp_echo_probes *p, uint32_t n_targets, uint32_t first,
			       uint32_t n, uint32_t window)
{
	uint32_t sent = 0;

	if (first > n_targets || n > n_targets - first)
		return 0;
	for (uint32_t i = first; i < first + n; i++) {
		struct aioxdp_echo_probes *t = &p[i];

		if (t->next_probe >= t->count || (window && t->next_probe - t->done >= window))
			break;
		if (!aioxdp_echo_send(x, frames + (size_t)i * len, len,
				      (uint16_t)(t->next_probe + 1), 1, &t->sent_ns[t->next_probe]))
			break;
		t->next_probe++;
		sent++;
	}
	return sent;
}

enum fate { ANSWERED, TAKEN, NOT_OURS }; /* TAKEN: a duplicate, late, or an error */

/* Which probe of this target a sequence number and stamp name: the latest
 * sent with that number (seq = probe + 1); -1 if none. A stamp of 0 (the
 * request had no room for one) is not compared. */
static int64_t probe_of(const struct aioxdp_echo_probes *p, uint16_t seq, int64_t sent_ns)
{
	uint64_t last, back;

	if (!p->next_probe)
		return -1;
	last = p->next_probe - 1;
	back = (uint16_t)(last - (uint16_t)(seq - 1));
	if (back > last)
		return -1;
	if (sent_ns && sent_ns != p->sent_ns[last - back])
		return -1; /* not the stamp we sent with that sequence */
	return (int64_t)(last - back);
}

/* iputils' "pipe": how many probes were out when this one was answered. */
static void note_pipe(const struct aioxdp_echo_probes *p, struct aioxdp_echo_tally *t,
		      uint64_t probe)
{
	uint64_t out = p->next_probe - probe;

	if (out > t->pipe)
		t->pipe = out;
}

/* One valid reply against one target's probes (see the state table in
 * aioxdp/echo.py): ANSWERED in time, TAKEN (a duplicate, or late), or
 * NOT_OURS if no probe of this target was sent with its sequence and stamp. */
static enum fate account_one(struct aioxdp_echo_reply *r, struct aioxdp_echo_probes *p,
			     struct aioxdp_echo_tally *t, uint32_t *freed)
{
	int64_t found = probe_of(p, r->seq, r->sent_ns), rtt;
	uint64_t probe;
	uint8_t state;

	if (found < 0)
		return NOT_OURS;
	probe = (uint64_t)found;
	rtt = r->recv_ns - p->sent_ns[probe];
	if (rtt < 0)
		return NOT_OURS;
	t->matched++;
	note_pipe(p, t, probe);
	state = p->state[probe];
	if (state == AIOXDP_PROBE_ANSWERED || state == AIOXDP_PROBE_LATE ||
	    state == AIOXDP_PROBE_ERROR) {
		t->duplicates++;
		return TAKEN;
	}
	if (!state) { /* an expired probe already left flight */
		p->done++;
		(*freed)++;
	}
	if (rtt > p->timeout_ns) {
		t->late++;
		p->state[probe] = AIOXDP_PROBE_LATE;
		return TAKEN;
	}
	p->state[probe] = AIOXDP_PROBE_ANSWERED;
	r->sent_ns = p->sent_ns[probe]; /* the reply's own stamp, or the one it had no room for */
	if (p->nrec >= p->count)
		return TAKEN; /* cannot happen (one record per probe, answered once); never overrun */
	p->rtts[p->nrec] = rtt / 1e9;
	p->seqs[p->nrec] = r->seq;
	p->ttls[p->nrec] = r->ttl;
	p->sizes[p->nrec] = r->size;
	p->nrec++;
	return ANSWERED;
}

/* An ICMP error about one of this target's probes: the probe leaves flight
 * (unless it already did) and counts as an error, once. */
static enum fate account_error(struct aioxdp_echo_reply *r, struct aioxdp_echo_probes *p,
			       struct aioxdp_echo_tally *t, uint32_t *freed)
{
	int64_t found = probe_of(p, r->seq, r->sent_ns);
	uint8_t state;

	if (found < 0)
		return NOT_OURS;
	note_pipe(p, t, (uint64_t)found);
	state = p->state[found];
	if (state == AIOXDP_PROBE_ANSWERED || state == AIOXDP_PROBE_LATE ||
	    state == AIOXDP_PROBE_ERROR)
		return TAKEN; /* answered already, or a second error: nothing new */
	if (!state) {
		p->done++;
		(*freed)++;
	}
	p->state[found] = AIOXDP_PROBE_ERROR;
	return ANSWERED;
}

uint32_t aioxdp_echo_account(struct aioxdp_echo_reply *res, uint32_t n,
			     const struct aioxdp_echo_lookup *l, struct aioxdp_echo_probes *p,
			     struct aioxdp_echo_tally *t, struct aioxdp_echo_counts *c)
{
	uint32_t freed = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct aioxdp_echo_reply *r = &res[i];
		int error = r->status == AIOXDP_ECHO_ERROR;
		int32_t first, j;

		r->target = -1;
		if (r->status != AIOXDP_ECHO_OK && !error) {
			if (r->status < AIOXDP_ECHO_STATUS_MAX)
				c->faults[r->status]++;
			continue;
		}
		first = lookup_find(l, r->saddr);
		if (first < 0) {
			c->unknown++;
			continue;
		}
		/* targets sharing an address (a host named twice): the one whose
		 * probe this answers, else a foreign reply to the first */
		for (j = first; j >= 0; j = l->next_same[j]) {
			enum fate fate = error ? account_error(r, &p[j], &t[j], &freed)
					       : account_one(r, &p[j], &t[j], &freed);

			if (fate == ANSWERED)
				r->target = j;
			if (fate != NOT_OURS)
				break;
		}
		if (j < 0) {
			t[first].matched++;
			t[first].foreign++;
		} else if (error && r->target >= 0) {
			c->errors++;
		}
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

uint32_t aioxdp_echo_sweep_each(struct aioxdp_echo_probes *p, uint32_t n_targets, uint64_t first,
				uint64_t stop, int64_t now_ns)
{
	uint32_t expired = 0;

	if (!n_targets)
		return 0;
	if (stop - first >= n_targets) /* a whole round or more: every target once */
		first = 0, stop = n_targets;
	for (uint64_t g = first; g < stop; g++)
		expired += aioxdp_echo_sweep(&p[g % n_targets], now_ns);
	return expired;
}
