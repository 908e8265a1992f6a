/* ICMP echo on the hot path: the Internet checksum, stamping a batch of echo
 * requests into UMEM frames, and validating a batch of replies. The Python
 * codecs in protocols/ are the readable reference these are tested against. */
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include "aioxdp_native.h"
#include "frame.h"

/* Offsets inside our own frames: untagged Ethernet, then a 20-byte IPv4
 * header or a 40-byte IPv6 one without extension headers. */
#define ETH_LEN 14
#define IP_LEN 20
#define ICMP_OFF (ETH_LEN + IP_LEN)
#define IP6_LEN 40
#define ICMP6_OFF (ETH_LEN + IP6_LEN)

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

/* How long a request built from ``tmpl`` is (Ethernet plus its IP
 * header's own length), and where its ICMP header starts; 0 if the
 * template is neither our IPv4 nor our IPv6 form or does not fit ``room``. */
static uint32_t request_len(const uint8_t *tmpl, uint32_t room, uint32_t *icmp)
{
	uint32_t len;

	if (room < ICMP_OFF + 8)
		return 0;
	if (aioxdp_get16(tmpl + 12) == 0x86dd) {
		if (room < ICMP6_OFF + 8 || tmpl[ETH_LEN + 6] != 58)
			return 0;
		len = ICMP6_OFF + aioxdp_get16(tmpl + ETH_LEN + 4);
		*icmp = ICMP6_OFF;
	} else {
		if (aioxdp_get16(tmpl + 12) != 0x0800 || tmpl[ETH_LEN] != 0x45)
			return 0;
		len = ETH_LEN + aioxdp_get16(tmpl + ETH_LEN + 2);
		*icmp = ICMP_OFF;
	}
	return len >= *icmp + 8 && len <= room ? len : 0;
}

/* Fill one request from its template (``len`` bytes, at ``icmp`` its ICMP
 * header, as request_len found): the destination (unless NULL: 4 bytes
 * for IPv4, 16 for IPv6), the sequence number (an IPv4 id follows it: a
 * distinct datagram each time), the send time (when the data has room for
 * it) and the checksums (ICMPv6's over the pseudo-header). */
static int64_t stamp_request(uint8_t *f, const uint8_t *tmpl, uint32_t len, uint32_t icmp,
			     const void *daddr, uint16_t seq)
{
	int64_t now;
	uint32_t sum = 0;

	memcpy(f, tmpl, len);
	if (icmp == ICMP6_OFF) {
		if (daddr)
			memcpy(f + ETH_LEN + 24, daddr, 16);
		/* addresses, upper-layer length and next header (RFC 8200 8.1) */
		sum = aioxdp_sum16(f + ETH_LEN + 8, 32, (len - icmp) + 58);
	} else {
		if (daddr)
			memcpy(f + ETH_LEN + 16, daddr, 4);
		aioxdp_put16(f + ETH_LEN + 4, seq);
		aioxdp_put16(f + ETH_LEN + 10, 0);
		aioxdp_put16(f + ETH_LEN + 10, aioxdp_checksum(f + ETH_LEN, IP_LEN, 0));
	}
	aioxdp_put16(f + icmp + 6, seq);
	now = aioxdp_now_ns();
	if (len >= icmp + 8 + AIOXDP_ECHO_STAMP_LEN) /* else no room: none carried */
		memcpy(f + icmp + 8, &now, sizeof(now));
	aioxdp_put16(f + icmp + 2, 0);
	aioxdp_put16(f + icmp + 2, aioxdp_checksum(f + icmp, len - icmp, sum));
	return now;
}

/* The probe arrays are anonymous memory that the kernel backs only when a
 * page is first written, 512 stamps to a page: write the slot before the
 * clock is read, so that a page fault (microseconds, more in a VM) never
 * lands inside a round trip. Volatile: the store must not be folded into
 * the stamp's. */
static void fault_in(int64_t *slot)
{
	*(volatile int64_t *)slot = 0;
}

/* Does a stride of ``len`` bytes fit one frame? */
static int request_fits(struct aioxdp_xsk *x, uint32_t len)
{
	return len >= ICMP_OFF + 8 && len <= aioxdp_xsk_frame_size(x);
}

uint32_t aioxdp_echo_send(struct aioxdp_xsk *x, const uint8_t *tmpl, uint32_t len,
			  uint16_t seq0, uint32_t count, int64_t *sent_ns)
{
	uint64_t addrs[256];
	uint32_t done = 0, icmp = 0;

	/* checked before any frame is taken or anything copied */
	if (!request_fits(x, len) || request_len(tmpl, len, &icmp) != len)
		return 0;
	while (done < count) {
		uint32_t want = count - done, got;

		if (want > 256)
			want = 256;
		got = aioxdp_xsk_alloc(x, addrs, want);
		for (uint32_t i = 0; i < got; i++) {
			uint8_t *f = (uint8_t *)aioxdp_xsk_area(x) + addrs[i];
			int64_t now;

			if (sent_ns)
				fault_in(&sent_ns[done + i]);
			now = stamp_request(f, tmpl, len, icmp, NULL, (uint16_t)(seq0 + done + i));
			if (sent_ns)
				sent_ns[done + i] = now;
			if (aioxdp_xsk_send_frame(x, addrs[i], len) < 0) {
				/* cannot happen after the checks above; never leak or count it */
				for (uint32_t j = i; j < got; j++)
					aioxdp_xsk_release_one(x, addrs[j]);
				return done + i;
			}
			aioxdp_xsk_send_now(x); /* as stamped: see aioxdp_xsk_send_now */
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
	int64_t now = aioxdp_now_ns(); /* the batch's, for frames the forwarder did not stamp */
	uint32_t ok = 0;

	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *f = (const uint8_t *)aioxdp_xsk_area(x) + descs[i].addr;

		memset(&out[i], 0, sizeof(out[i]));
		/* the driver's time when the forwarder stamped it, else now */
		out[i].recv_ns = descs[i].rx_ns > 0 && descs[i].rx_ns <= now ? descs[i].rx_ns : now;
		if (!aioxdp_xsk_holds(x, descs[i].addr, descs[i].len)) {
			out[i].status = AIOXDP_ECHO_TRUNCATED; /* never read outside a frame */
			continue;
		}
		out[i].status = aioxdp_echo_check(f, descs[i].len, ident, &out[i]);
		ok += out[i].status == AIOXDP_ECHO_OK;
	}
	return ok;
}

static uint32_t lookup_slot(uint32_t saddr, uint32_t mask)
{
	return (uint32_t)((saddr * 2654435761u) >> 7) & mask; /* Knuth's multiplicative hash */
}

static const uint8_t V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static uint32_t address_key(const uint8_t *a)
{
	uint32_t w[4];

	memcpy(w, a, 16);
	if (!memcmp(a, V4_MAPPED, 12))
		return w[3]; /* an IPv4 address keys itself, as its frames hold it */
	return w[0] ^ w[1] ^ w[2] ^ w[3];
}

void aioxdp_echo_keys(const uint8_t *addrs, uint32_t n, uint32_t *out)
{
	for (uint32_t i = 0; i < n; i++)
		out[i] = address_key(addrs + (size_t)i * 16);
}

/* Is target j the address a reply came from (or a quoted request went to)?
 * Without ``addrs`` every target is IPv4, keyed by its whole address. */
static int same_address(const struct aioxdp_echo_probes *p, int32_t j,
			const struct aioxdp_echo_reply *r)
{
	if (!p->addrs)
		return !r->v6;
	return !memcmp(p->addrs + (size_t)j * 16, r->saddr6, 16);
}

/* May target i be sent the request of a template whose ICMP header is at
 * ``icmp``: an IPv4 one to an IPv4 target (mapped, if addresses are given),
 * an IPv6 one to an IPv6 target? */
static int family_fits(const struct aioxdp_echo_probes *p, uint32_t i, uint32_t icmp)
{
	int v4_target = !p->addrs || !memcmp(p->addrs + (size_t)i * 16, V4_MAPPED, 12);

	return icmp == ICMP_OFF ? v4_target : !v4_target;
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

/* Can target i send its next probe now? */
static int may_send(const struct aioxdp_echo_probes *p, uint32_t i, uint32_t window)
{
	const struct aioxdp_echo_target *t = &p->targets[i];

	return t->next_probe < p->count && !(window && t->next_probe - t->done >= window);
}

uint32_t aioxdp_echo_send_each(struct aioxdp_xsk *x, const uint8_t *bases, uint32_t n_bases,
			       uint32_t len, const uint32_t *base_of, const uint32_t *daddrs,
			       struct aioxdp_echo_probes *p, uint32_t first, uint32_t n,
			       uint32_t window)
{
	uint64_t addrs[256];
	uint32_t lens[256], icmps[256]; /* each request's, as the checks found them */
	uint32_t sent = 0;

	if (!request_fits(x, len) || first > p->n_targets || n > p->n_targets - first)
		return 0;
	while (sent < n) {
		uint32_t want = 0, got;

		/* the run of targets that can send, checked before any frame is taken:
		 * its template is one of ours, of the target's family */
		while (want < 256 && sent + want < n) {
			uint32_t i = first + sent + want;

			if (!may_send(p, i, window) || base_of[i] >= n_bases)
				break;
			lens[want] = request_len(bases + (size_t)base_of[i] * len, len, &icmps[want]);
			if (!lens[want] || !family_fits(p, i, icmps[want]))
				break;
			want++;
		}
		if (!want)
			break;
		got = aioxdp_xsk_alloc(x, addrs, want);
		for (uint32_t k = 0; k < got; k++) {
			uint32_t i = first + sent + k;
			struct aioxdp_echo_target *t = &p->targets[i];
			uint8_t *f = (uint8_t *)aioxdp_xsk_area(x) + addrs[k];
			const uint8_t *tmpl = bases + (size_t)base_of[i] * len;
			uint32_t flen = lens[k], icmp = icmps[k];
			const void *daddr = icmp == ICMP6_OFF ? (const void *)(p->addrs + (size_t)i * 16)
							      : (const void *)&daddrs[i];
			int64_t *slot = &p->sent_ns[(size_t)i * p->count + t->next_probe];
			int64_t now;

			fault_in(slot);
			now = stamp_request(f, tmpl, flen, icmp, daddr, (uint16_t)(t->next_probe + 1));

			if (aioxdp_xsk_send_frame(x, addrs[k], flen) < 0) {
				/* cannot happen after the checks above; never leak or count it */
				for (uint32_t j = k; j < got; j++)
					aioxdp_xsk_release_one(x, addrs[j]);
				return sent + k;
			}
			*slot = now;
			t->next_probe++;
			aioxdp_xsk_send_now(x); /* as stamped: see aioxdp_xsk_send_now */
		}
		sent += got;
		if (got < want)
			break; /* out of frames: the caller retries after completions */
	}
	return sent;
}

enum fate { ANSWERED, TAKEN, NOT_OURS }; /* TAKEN: a duplicate, late, or an error */

/* Add one to a counter that stops at its largest value rather than wrap. */
static void bump(uint32_t *counter)
{
	if (*counter != UINT32_MAX)
		(*counter)++;
}

/* Which probe of target i a sequence number and stamp name, as an index
 * into the session arrays: the latest sent with that number (seq = probe
 * + 1); -1 if none. A stamp of 0 (the request had no room for one) is not
 * compared. */
static int64_t probe_of(const struct aioxdp_echo_probes *p, uint32_t i, uint16_t seq,
			int64_t sent_ns)
{
	const struct aioxdp_echo_target *t = &p->targets[i];
	uint32_t last, back;
	size_t at;

	if (!t->next_probe)
		return -1;
	last = t->next_probe - 1;
	back = (uint16_t)(last - (uint16_t)(seq - 1));
	if (back > last)
		return -1;
	at = (size_t)i * p->count + (last - back);
	if (sent_ns && sent_ns != p->sent_ns[at])
		return -1; /* not the stamp we sent with that sequence */
	return (int64_t)at;
}

/* iputils' "pipe": how many probes were out when this one was answered. */
static void note_pipe(const struct aioxdp_echo_probes *p, uint32_t i, size_t at)
{
	struct aioxdp_echo_target *t = &p->targets[i];
	uint32_t out = t->next_probe - (uint32_t)(at - (size_t)i * p->count);

	if (out > t->pipe)
		t->pipe = out;
}

/* Has the probe at ``at`` been answered already (by a reply or an error)? */
static int taken(const struct aioxdp_echo_probes *p, size_t at)
{
	uint8_t state = p->state[at];

	return state == AIOXDP_PROBE_ANSWERED || state == AIOXDP_PROBE_LATE ||
	       state == AIOXDP_PROBE_ERROR;
}

/* The probe at ``at`` leaves flight now, unless it expired before. */
static void leave_flight(const struct aioxdp_echo_probes *p, uint32_t i, size_t at,
			 uint32_t *freed)
{
	if (!p->state[at]) { /* an expired probe already left flight */
		p->targets[i].done++;
		(*freed)++;
	}
}

/* One valid reply against target i's probes (see the state table in
 * aioxdp/echo.py): ANSWERED in time, TAKEN (a duplicate, or late), or
 * NOT_OURS if no probe of this target was sent with its sequence and stamp. */
static enum fate account_one(struct aioxdp_echo_reply *r, struct aioxdp_echo_probes *p,
			     uint32_t i, uint32_t *freed)
{
	struct aioxdp_echo_target *t = &p->targets[i];
	int64_t found = probe_of(p, i, r->seq, r->sent_ns), rtt;
	size_t at, rec;

	if (found < 0)
		return NOT_OURS;
	at = (size_t)found;
	rtt = r->recv_ns - p->sent_ns[at];
	if (rtt < 0)
		return NOT_OURS;
	bump(&t->matched);
	note_pipe(p, i, at);
	if (taken(p, at)) {
		bump(&t->duplicates);
		return TAKEN;
	}
	leave_flight(p, i, at, freed);
	if (rtt > p->timeout_ns) {
		bump(&t->late);
		p->state[at] = AIOXDP_PROBE_LATE;
		return TAKEN;
	}
	p->state[at] = AIOXDP_PROBE_ANSWERED;
	r->sent_ns = p->sent_ns[at]; /* the reply's own stamp, or the one it had no room for */
	if (t->nrec >= p->count)
		return TAKEN; /* cannot happen (one record per probe, answered once); never overrun */
	rec = (size_t)i * p->count + t->nrec;
	p->rtts[rec] = rtt / 1e9;
	p->seqs[rec] = r->seq;
	p->ttls[rec] = r->ttl;
	p->sizes[rec] = r->size;
	t->nrec++;
	return ANSWERED;
}

/* An ICMP error about one of target i's probes: the probe leaves flight
 * (unless it already did) and counts as an error, once. */
static enum fate account_error(struct aioxdp_echo_reply *r, struct aioxdp_echo_probes *p,
			       uint32_t i, uint32_t *freed)
{
	int64_t found = probe_of(p, i, r->seq, r->sent_ns);

	if (found < 0)
		return NOT_OURS;
	note_pipe(p, i, (size_t)found);
	if (taken(p, (size_t)found))
		return TAKEN; /* answered already, or a second error: nothing new */
	leave_flight(p, i, (size_t)found, freed);
	p->state[found] = AIOXDP_PROBE_ERROR;
	return ANSWERED;
}

uint32_t aioxdp_echo_account(struct aioxdp_echo_reply *res, uint32_t n,
			     const struct aioxdp_echo_lookup *l, struct aioxdp_echo_probes *p,
			     struct aioxdp_echo_counts *c)
{
	uint32_t freed = 0;

	if (l->n_targets != p->n_targets)
		return 0; /* a lookup built for another session: match nothing */
	for (uint32_t k = 0; k < n; k++) {
		struct aioxdp_echo_reply *r = &res[k];
		int error = r->status == AIOXDP_ECHO_ERROR;
		int32_t first, j;

		r->target = -1;
		if (r->status != AIOXDP_ECHO_OK && !error) {
			if (r->status < AIOXDP_ECHO_STATUS_MAX)
				c->faults[r->status]++;
			continue;
		}
		/* the first target with this address (keys can be shared: IPv6
		 * addresses are folded to 32 bits, and a host can be named twice) */
		for (first = lookup_find(l, r->saddr); first >= 0; first = l->next_same[first])
			if (same_address(p, first, r))
				break;
		if (first < 0) {
			c->unknown++;
			continue;
		}
		/* targets sharing an address (a host named twice): the one whose
		 * probe this answers, else a foreign reply to the first */
		for (j = first; j >= 0; j = l->next_same[j]) {
			enum fate fate;

			if (!same_address(p, j, r))
				continue;
			fate = error ? account_error(r, p, (uint32_t)j, &freed)
				     : account_one(r, p, (uint32_t)j, &freed);
			if (fate == ANSWERED)
				r->target = j;
			if (fate != NOT_OURS)
				break;
		}
		if (j < 0) {
			bump(&p->targets[first].matched);
			bump(&p->targets[first].foreign);
		} else if (error && r->target >= 0) {
			c->errors++;
		}
	}
	return freed;
}

uint32_t aioxdp_echo_sweep(struct aioxdp_echo_probes *p, uint32_t i, int64_t now_ns)
{
	struct aioxdp_echo_target *t;
	int64_t limit = now_ns - p->timeout_ns;
	uint32_t expired = 0, k;
	size_t base;

	if (i >= p->n_targets)
		return 0;
	t = &p->targets[i];
	base = (size_t)i * p->count;
	for (k = t->sweep; k < t->next_probe; k++) {
		size_t at = base + k;

		if (!p->state[at] && p->sent_ns[at] > limit)
			break; /* still in flight, and so is every later probe */
		if (!p->state[at]) {
			p->state[at] = AIOXDP_PROBE_EXPIRED;
			t->done++;
			expired++;
		}
	}
	t->sweep = k;
	return expired;
}

uint32_t aioxdp_echo_sweep_each(struct aioxdp_echo_probes *p, uint64_t first, uint64_t stop,
				int64_t now_ns)
{
	uint32_t expired = 0;

	if (!p->n_targets)
		return 0;
	if (stop - first >= p->n_targets) /* a whole round or more: every target once */
		first = 0, stop = p->n_targets;
	for (uint64_t g = first; g < stop; g++)
		expired += aioxdp_echo_sweep(p, (uint32_t)(g % p->n_targets), now_ns);
	return expired;
}

#define FLOOD_BATCH 64 /* replies a flood takes off the ring at once */

/* Target 0's next ``n`` probes of a flood, each kicked at once (copy mode) */
static uint32_t flood_send(struct aioxdp_xsk *tx, struct aioxdp_echo_flood *f,
			   struct aioxdp_echo_probes *p, uint32_t n)
{
	struct aioxdp_echo_target *t = &p->targets[0];
	uint32_t sent;

	if (!n)
		return 0;
	/* the caller keeps next_probe + n <= count: the stamps stay inside target 0's */
	sent = aioxdp_echo_send(tx, f->tmpl, f->len, (uint16_t)(t->next_probe + 1), n,
				p->sent_ns + t->next_probe);
	if (sent) {
		f->last_sent_ns = p->sent_ns[t->next_probe + sent - 1];
		t->next_probe += sent;
		f->sent += sent;
	}
	return sent;
}

uint32_t aioxdp_echo_flood(struct aioxdp_xsk *rx, struct aioxdp_xsk *tx,
			   const struct aioxdp_echo_lookup *l, struct aioxdp_echo_probes *p,
			   struct aioxdp_echo_counts *c, struct aioxdp_echo_flood *f)
{
	struct aioxdp_echo_target *t = &p->targets[0];
	struct aioxdp_desc descs[FLOOD_BATCH];
	struct aioxdp_echo_reply replies[FLOOD_BATCH];

	f->taken = f->sent = f->freed = 0;
	if (p->n_targets != 1 || l->n_targets != 1 || !f->window)
		return 0; /* one target's flood only */
	while (f->taken < f->max_taken) {
		uint32_t want = f->max_taken - f->taken, seen, ours, ok, got, in_flight, due, sent;

		if (want > FLOOD_BATCH)
			want = FLOOD_BATCH;
		seen = aioxdp_xsk_rx_look(rx, descs, want);
		for (ours = 0; ours < seen && descs[ours].tag == f->tag; ours++)
			;
		if (!ours)
			break; /* nothing, or another rule's frame: the receive path's */
		/* checked where they lie, before any is taken: an error about a
		 * probe, a fragment or a fault is told and counted by that path */
		aioxdp_echo_parse(rx, descs, ours, f->ident, replies);
		for (ok = 0; ok < ours && replies[ok].status == AIOXDP_ECHO_OK; ok++)
			;
		if (!ok)
			break;
		/* the same descriptors again, now taken off the ring */
		got = aioxdp_xsk_rx(rx, descs, ok);
		f->freed += aioxdp_echo_account(replies, got, l, p, c);
		aioxdp_xsk_release(rx, descs, got);
		aioxdp_xsk_refill(rx);
		f->taken += got;
		if (t->next_probe < p->count && replies[got ? got - 1 : 0].recv_ns < f->deadline_ns) {
			in_flight = t->next_probe - t->done;
			due = in_flight < f->window ? f->window - in_flight : 0;
			if (due > p->count - t->next_probe)
				due = p->count - t->next_probe;
			sent = flood_send(tx, f, p, due);
			if (sent < due) {
				/* out of frames: those the kernel has sent come back */
				aioxdp_xsk_complete(tx);
				sent += flood_send(tx, f, p, due - sent);
			}
			if (sent < due)
				break; /* still none: the transport's flush waits for them */
		}
		if (got < ok || ok < seen)
			break; /* something else is next: the receive path goes first */
	}
	return f->taken;
}
