/* The AF_XDP core: one UMEM, its frame pool, and one XDP socket with its four
 * rings. Every ring loop runs here over a whole batch, so Python is entered
 * once per batch, never per descriptor.
 *
 * Frame ownership: every frame has one owner byte (enum aioxdp_frame_owner)
 *   pool   free, on the stack below
 *   fill   lent to the kernel for RX (fill ring, or RX ring not yet drained)
 *   rx     drained from RX, in the batch being delivered to the application
 *   app    kept by the application, or allocated for TX
 *   txq    queued here for TX, not yet on the TX ring
 *   tx     on the TX ring or in flight, until the completion ring returns it
 * and pool + fill + rx + app + txq + tx == nframes at all times. Every call
 * that moves a frame checks its address and its owner first: a frame the
 * caller does not own is refused (-EINVAL, counted in "refused"), an address
 * that is not a frame of this UMEM likewise (-EFAULT), and a descriptor from
 * the kernel that names a frame we did not lend it is dropped and counted.
 * The pool and the TX queue can therefore never hold a frame twice, which
 * bounds both by nframes.
 *
 * The UMEM itself belongs to the caller (Python maps it, so that it stays
 * mapped while any view into it lives); this file never unmaps it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/if_xdp.h>
#include <xdp/xsk.h>

#include "aioxdp_native.h"

struct aioxdp_xsk {
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp;
	struct xsk_ring_cons rx;
	struct xsk_ring_prod tx;
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	void *area;
	uint64_t area_size;
	struct aioxdp_xsk_config cfg;
	int fd;
	int copy_mode;          /* the kernel copies: it transmits only inside sendto() */
	uint32_t fill_target;   /* frames to keep in the fill ring */

	uint8_t *owner;         /* enum aioxdp_frame_owner, per frame */
	uint64_t *pool;         /* stack of free frame addresses */
	uint32_t npool;
	uint32_t rx_reserve;    /* pool frames TX may not take while fill is short */

	uint64_t *txq_addr;     /* FIFO of frames waiting for TX ring space */
	uint32_t *txq_len;
	uint32_t txq_head, txq_count;

	struct aioxdp_xsk_counts n;
};

/* The frame index of UMEM offset addr, or -1 when addr is outside the UMEM
 * or [addr, addr + len) crosses the end of its frame. */
static int64_t frame_of(const struct aioxdp_xsk *x, uint64_t addr, uint32_t len)
{
	uint64_t index = addr / x->cfg.frame_size;

	if (addr >= x->area_size || addr % x->cfg.frame_size + len > x->cfg.frame_size)
		return -1;
	return (int64_t)index;
}

static uint64_t frame_base(const struct aioxdp_xsk *x, uint64_t addr)
{
	/* descriptors point past the headroom; the pool holds frame starts */
	return addr - addr % x->cfg.frame_size;
}

static uint32_t *owner_count(struct aioxdp_xsk *x, int owner)
{
	switch (owner) {
	case AIOXDP_OWN_FILL: return &x->n.fill;
	case AIOXDP_OWN_RX: return &x->n.rx;
	case AIOXDP_OWN_APP: return &x->n.app;
	case AIOXDP_OWN_TXQ: return &x->n.txq;
	case AIOXDP_OWN_TX: return &x->n.tx;
	default: return &x->n.pool; /* the pool's count is npool itself */
	}
}

/* Move frame index i from owner "from" to "to"; 0, or -EINVAL if it is not
 * owned by "from" (nothing changes then). */
static int transfer(struct aioxdp_xsk *x, int64_t i, int from, int to)
{
	if (i < 0) {
		x->n.refused++;
		return -EFAULT;
	}
	if (x->owner[i] != from) {
		x->n.refused++;
		return -EINVAL;
	}
	x->owner[i] = (uint8_t)to;
	if (from != AIOXDP_OWN_POOL)
		(*owner_count(x, from))--;
	if (to != AIOXDP_OWN_POOL)
		(*owner_count(x, to))++;
	return 0;
}

static void pool_push(struct aioxdp_xsk *x, uint64_t addr)
{
	/* only reached through transfer(..., AIOXDP_OWN_POOL): never a duplicate */
	x->pool[x->npool++] = frame_base(x, addr);
}

static uint32_t tx_available(const struct aioxdp_xsk *x)
{
	/* TX may take pool frames, but not those RX needs to top up its fill ring */
	uint32_t short_by = x->n.fill < x->fill_target ? x->fill_target - x->n.fill : 0;
	uint32_t keep = short_by < x->rx_reserve ? short_by : x->rx_reserve;

	return x->npool > keep ? x->npool - keep : 0;
}

int aioxdp_xsk_open(struct aioxdp_xsk **out, const char *ifname, uint32_t queue,
		    const struct aioxdp_xsk_config *cfg, void *area, uint64_t area_size)
{
	struct aioxdp_xsk *x;
	struct xsk_umem_config ucfg;
	struct xsk_socket_config scfg;
	int err;

	*out = NULL;
	if (!cfg->nframes || !cfg->frame_size || (cfg->frame_size & (cfg->frame_size - 1)) ||
	    !area || area_size != (uint64_t)cfg->nframes * cfg->frame_size ||
	    (uintptr_t)area % (uintptr_t)sysconf(_SC_PAGESIZE))
		return -EINVAL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->cfg = *cfg;
	x->fd = -1;
	x->area_size = area_size;
	x->area = area;
	x->owner = calloc(cfg->nframes, sizeof(*x->owner)); /* all AIOXDP_OWN_POOL */
	x->pool = calloc(cfg->nframes, sizeof(*x->pool));
	x->txq_addr = calloc(cfg->nframes, sizeof(*x->txq_addr));
	x->txq_len = calloc(cfg->nframes, sizeof(*x->txq_len));
	if (!x->owner || !x->pool || !x->txq_addr || !x->txq_len) {
		err = -ENOMEM;
		goto fail;
	}
	/* pop order = ascending addresses, which keeps tests readable */
	for (uint32_t i = 0; i < cfg->nframes; i++)
		x->pool[i] = (uint64_t)(cfg->nframes - 1 - i) * cfg->frame_size;
	x->npool = cfg->nframes;
	x->n.nframes = cfg->nframes;

	memset(&ucfg, 0, sizeof(ucfg));
	ucfg.fill_size = cfg->fill_size;
	ucfg.comp_size = cfg->comp_size;
	ucfg.frame_size = cfg->frame_size;
	ucfg.frame_headroom = 0;
	err = xsk_umem__create(&x->umem, x->area, x->area_size, &x->fill, &x->comp, &ucfg);
	if (err) {
		x->umem = NULL;
		goto fail;
	}

	memset(&scfg, 0, sizeof(scfg));
	scfg.rx_size = cfg->rx_size;
	scfg.tx_size = cfg->tx_size;
	scfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD; /* the forwarder is ours */
	scfg.bind_flags = cfg->bind_flags;
	err = xsk_socket__create(&x->xsk, ifname, queue, x->umem, &x->rx, &x->tx, &scfg);
	if (err) {
		x->xsk = NULL;
		goto fail;
	}
	x->fd = xsk_socket__fd(x->xsk);
	{
		int options = aioxdp_xsk_options(x);

		x->copy_mode = options < 0 || !(options & XDP_OPTIONS_ZEROCOPY);
	}

	/* leave room in the pool for TX: RX must not be able to starve it */
	x->fill_target = cfg->fill_size;
	if (x->fill_target > cfg->nframes / 2)
		x->fill_target = cfg->nframes / 2;
	x->rx_reserve = x->fill_target / 4;
	aioxdp_xsk_refill(x);
	*out = x;
	return 0;
fail:
	aioxdp_xsk_close(x);
	return err < 0 ? err : -err;
}

void aioxdp_xsk_close(struct aioxdp_xsk *x)
{
	if (!x)
		return;
	if (x->xsk)
		xsk_socket__delete(x->xsk);
	if (x->umem)
		xsk_umem__delete(x->umem);
	free(x->owner);
	free(x->pool);
	free(x->txq_addr);
	free(x->txq_len);
	free(x);
}

int aioxdp_xsk_fd(const struct aioxdp_xsk *x)
{
	return x->fd;
}

void *aioxdp_xsk_area(const struct aioxdp_xsk *x)
{
	return x->area;
}

uint32_t aioxdp_xsk_frame_size(const struct aioxdp_xsk *x)
{
	return x->cfg.frame_size;
}

int aioxdp_xsk_holds(const struct aioxdp_xsk *x, uint64_t addr, uint32_t len)
{
	return frame_of(x, addr, len) >= 0;
}

int aioxdp_xsk_owner(const struct aioxdp_xsk *x, uint64_t addr)
{
	int64_t i = frame_of(x, addr, 0);

	return i < 0 ? -EFAULT : x->owner[i];
}

uint32_t aioxdp_xsk_refill(struct aioxdp_xsk *x)
{
	uint32_t want, idx, n;

	if (x->n.fill >= x->fill_target || !x->npool)
		return 0;
	want = x->fill_target - x->n.fill;
	if (want > x->npool)
		want = x->npool;
	n = xsk_prod_nb_free(&x->fill, want);
	if (n < want)
		want = n;
	if (!want)
		return 0;
	n = xsk_ring_prod__reserve(&x->fill, want, &idx);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t addr = x->pool[--x->npool];

		transfer(x, frame_of(x, addr, 0), AIOXDP_OWN_POOL, AIOXDP_OWN_FILL);
		*xsk_ring_prod__fill_addr(&x->fill, idx + i) = addr;
	}
	xsk_ring_prod__submit(&x->fill, n);
	if (n && xsk_ring_prod__needs_wakeup(&x->fill)) {
		/* the driver asked to be told about new fill entries */
		recvfrom(x->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		x->n.rx_wakeups++;
	}
	return n;
}

/* ``o`` for a frame of ours at ``d``: its address, length, and the rule's tag
 * and time the forwarder put in front of it (0 if it did not); returns where
 * those words are, NULL if the frame has no room for them. */
static struct aioxdp_meta *describe(struct aioxdp_xsk *x, const struct xdp_desc *d,
				    struct aioxdp_desc *o)
{
	struct aioxdp_meta *meta;

	o->addr = d->addr;
	o->len = d->len;
	o->flags = 0;
	o->tag = 0;
	o->_pad = 0;
	o->rx_ns = 0;
	if (d->addr % x->cfg.frame_size < sizeof(*meta))
		return NULL;
	meta = (void *)((char *)x->area + d->addr - sizeof(*meta));
	if (meta->magic == AIOXDP_META_MAGIC) {
		o->tag = meta->tag;
		o->rx_ns = (int64_t)meta->rx_ns;
	}
	return meta;
}

uint32_t aioxdp_xsk_rx_look(struct aioxdp_xsk *x, struct aioxdp_desc *out, uint32_t max)
{
	uint32_t idx, n, i;

	n = xsk_ring_cons__peek(&x->rx, max, &idx);
	for (i = 0; i < n; i++) {
		const struct xdp_desc *d = xsk_ring_cons__rx_desc(&x->rx, idx + i);
		int64_t frame = frame_of(x, d->addr, d->len);

		/* only frames we lent, whole inside them: aioxdp_xsk_rx counts the rest */
		if (frame < 0 || x->owner[frame] != AIOXDP_OWN_FILL)
			break;
		describe(x, d, &out[i]);
	}
	xsk_ring_cons__cancel(&x->rx, n); /* all left on the ring */
	return i;
}

uint32_t aioxdp_xsk_rx(struct aioxdp_xsk *x, struct aioxdp_desc *out, uint32_t max)
{
	uint32_t idx, n, got = 0;

	n = xsk_ring_cons__peek(&x->rx, max, &idx);
	for (uint32_t i = 0; i < n; i++) {
		const struct xdp_desc *d = xsk_ring_cons__rx_desc(&x->rx, idx + i);
		int64_t frame = frame_of(x, d->addr, d->len);
		struct aioxdp_meta *meta;
		struct aioxdp_desc *o = &out[got];

		if (frame < 0) {
			int64_t lent = frame_of(x, d->addr, 0);

			x->n.kernel_invalid++;
			/* a frame we lent, with a length past its end: take it back
			 * unread; an address we never lent: never touch it */
			if (lent >= 0 && x->owner[lent] == AIOXDP_OWN_FILL) {
				transfer(x, lent, AIOXDP_OWN_FILL, AIOXDP_OWN_POOL);
				pool_push(x, d->addr);
			}
			continue;
		}
		if (x->owner[frame] != AIOXDP_OWN_FILL) {
			x->n.kernel_invalid++; /* not a frame we lent: never touch it */
			continue;
		}
		transfer(x, frame, AIOXDP_OWN_FILL, AIOXDP_OWN_RX);
		meta = describe(x, d, o);
		/* clear the forwarder's words so that bytes left by an earlier use
		 * of the frame never dispatch */
		if (meta)
			meta->magic = 0;
		got++;
	}
	xsk_ring_cons__release(&x->rx, n);
	x->n.rx_packets += got;
	if (got)
		x->n.rx_batches++;
	return got;
}

int aioxdp_xsk_release(struct aioxdp_xsk *x, const struct aioxdp_desc *descs, uint32_t n)
{
	/* frames that left the batch (kept, sent back) carry AIOXDP_DESC_KEEP;
	 * returns how many went to the pool, or the error of a refused one */
	int bad = 0, released = 0;

	for (uint32_t i = 0; i < n; i++) {
		int err;

		if (descs[i].flags & AIOXDP_DESC_KEEP)
			continue;
		err = transfer(x, frame_of(x, descs[i].addr, 0), AIOXDP_OWN_RX, AIOXDP_OWN_POOL);
		if (err) {
			bad = err;
		} else {
			pool_push(x, descs[i].addr);
			released++;
		}
	}
	return bad ? bad : released;
}

int aioxdp_xsk_keep(struct aioxdp_xsk *x, struct aioxdp_desc *desc)
{
	int err;

	if (desc->flags & AIOXDP_DESC_KEEP) {
		x->n.refused++;
		return -EINVAL;
	}
	err = transfer(x, frame_of(x, desc->addr, 0), AIOXDP_OWN_RX, AIOXDP_OWN_APP);
	if (!err)
		desc->flags |= AIOXDP_DESC_KEEP;
	return err;
}

int aioxdp_xsk_release_one(struct aioxdp_xsk *x, uint64_t addr)
{
	int err = transfer(x, frame_of(x, addr, 0), AIOXDP_OWN_APP, AIOXDP_OWN_POOL);

	if (!err)
		pool_push(x, addr);
	return err;
}

static void txq_push(struct aioxdp_xsk *x, uint64_t addr, uint32_t len)
{
	/* only reached through transfer(..., AIOXDP_OWN_TXQ): at most nframes */
	uint32_t slot = (x->txq_head + x->txq_count) % x->cfg.nframes;

	x->txq_addr[slot] = addr;
	x->txq_len[slot] = len;
	x->txq_count++;
}

int aioxdp_xsk_send_copy(struct aioxdp_xsk *x, const void *data, uint32_t len)
{
	uint64_t addr;

	if (len < AIOXDP_MIN_FRAME || len > x->cfg.frame_size)
		return -EMSGSIZE; /* the kernel drops an empty descriptor without completing it */
	if (!tx_available(x)) {
		x->n.tx_no_frame++;
		return -ENOBUFS;
	}
	addr = x->pool[--x->npool];
	transfer(x, frame_of(x, addr, 0), AIOXDP_OWN_POOL, AIOXDP_OWN_TXQ);
	memcpy((char *)x->area + addr, data, len);
	txq_push(x, addr, len);
	return 0;
}

int aioxdp_xsk_send_frame(struct aioxdp_xsk *x, uint64_t addr, uint32_t len)
{
	/* a frame the application owns (kept or allocated) goes out as is */
	int64_t frame = frame_of(x, addr, 0);
	int err;

	if (frame >= 0 && (len < AIOXDP_MIN_FRAME || frame_of(x, addr, len) < 0))
		return -EMSGSIZE;
	err = transfer(x, frame, AIOXDP_OWN_APP, AIOXDP_OWN_TXQ);
	if (!err)
		txq_push(x, addr, len);
	return err;
}

int aioxdp_xsk_send_descs(struct aioxdp_xsk *x, struct aioxdp_desc *descs, uint32_t n)
{
	/* send frames of the batch being delivered back out (after the caller
	 * rewrote them), marking them so the batch's release skips them */
	int sent = 0, bad = 0;

	for (uint32_t i = 0; i < n; i++) {
		int64_t frame = frame_of(x, descs[i].addr, descs[i].len);
		int err;

		if (descs[i].flags & AIOXDP_DESC_KEEP) {
			x->n.refused++;
			bad = -EINVAL;
			continue;
		}
		if (descs[i].len < AIOXDP_MIN_FRAME) {
			x->n.refused++;
			bad = -EMSGSIZE;
			continue;
		}
		err = transfer(x, frame, AIOXDP_OWN_RX, AIOXDP_OWN_TXQ);
		if (err) {
			bad = err;
			continue;
		}
		descs[i].flags |= AIOXDP_DESC_KEEP;
		txq_push(x, descs[i].addr, descs[i].len);
		sent++;
	}
	return bad ? bad : sent;
}

int aioxdp_xsk_kick(struct aioxdp_xsk *x)
{
	return sendto(x->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0 ? 0 : -errno;
}

uint32_t aioxdp_xsk_complete(struct aioxdp_xsk *x)
{
	uint32_t idx, n;

	uint32_t done = 0;

	n = xsk_ring_cons__peek(&x->comp, x->cfg.comp_size, &idx);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t addr = *xsk_ring_cons__comp_addr(&x->comp, idx + i);
		int64_t frame = frame_of(x, addr, 0);

		if (frame < 0 || x->owner[frame] != AIOXDP_OWN_TX) {
			x->n.kernel_invalid++;
			continue;
		}
		transfer(x, frame, AIOXDP_OWN_TX, AIOXDP_OWN_POOL);
		pool_push(x, addr);
		done++;
	}
	xsk_ring_cons__release(&x->comp, n);
	x->n.tx_completed += done;
	/* frames back from TX may be what RX was waiting for */
	if (done)
		aioxdp_xsk_refill(x);
	return done;
}

static uint32_t submit_queued(struct aioxdp_xsk *x)
{
	uint32_t idx, n;

	/* reserve is all-or-nothing: ask for what is free */
	n = xsk_prod_nb_free(&x->tx, x->txq_count);
	if (n > x->txq_count)
		n = x->txq_count;
	if (!n)
		return 0;
	n = xsk_ring_prod__reserve(&x->tx, n, &idx);
	for (uint32_t i = 0; i < n; i++) {
		struct xdp_desc *d = xsk_ring_prod__tx_desc(&x->tx, idx + i);

		d->addr = x->txq_addr[x->txq_head];
		d->len = x->txq_len[x->txq_head];
		transfer(x, frame_of(x, d->addr, 0), AIOXDP_OWN_TXQ, AIOXDP_OWN_TX);
		x->txq_head = (x->txq_head + 1) % x->cfg.nframes;
	}
	xsk_ring_prod__submit(&x->tx, n);
	x->txq_count -= n;
	x->n.tx_packets += n;
	return n;
}

static uint32_t tx_ring_unconsumed(struct aioxdp_xsk *x)
{
	/* descriptors on the TX ring that the kernel has not taken yet, read
	 * from the ring itself (a kick that ended in EAGAIN leaves some) */
	return x->cfg.tx_size - xsk_prod_nb_free(&x->tx, x->cfg.tx_size);
}

uint32_t aioxdp_xsk_tx_pending(struct aioxdp_xsk *x)
{
	return x->txq_count + tx_ring_unconsumed(x);
}

uint32_t aioxdp_xsk_rx_ready(struct aioxdp_xsk *x)
{
	/* a look at the producer only: nothing is taken off the ring */
	return xsk_cons_nb_avail(&x->rx, x->cfg.rx_size);
}

void aioxdp_xsk_send_now(struct aioxdp_xsk *x)
{
	/* A copy-mode kernel takes TX descriptors only inside sendto(), in
	 * order, and on veth the peer's answer comes back inside that same call:
	 * a frame stamped now and kicked later with others would carry their
	 * round trips in its own. So in copy mode it goes at once, one kick
	 * and no more: completions wait for the caller's flush, and an error
	 * (EAGAIN: the ring or the completion ring full) leaves the frame on the
	 * ring for that flush to send or report. */
	if (!x->copy_mode || !x->txq_count || !submit_queued(x))
		return;
	if (!(x->cfg.bind_flags & XDP_USE_NEED_WAKEUP) || xsk_ring_prod__needs_wakeup(&x->tx)) {
		aioxdp_xsk_kick(x);
		x->n.tx_wakeups++;
	}
}

int aioxdp_xsk_flush(struct aioxdp_xsk *x)
{
	/* In copy mode the kernel transmits only inside sendto(), a bounded
	 * batch per call, answering EAGAIN while descriptors remain; so submit
	 * and kick in rounds, reclaiming completions between them. */
	uint32_t rounds = 0;

	aioxdp_xsk_complete(x);
	while ((x->txq_count || tx_ring_unconsumed(x)) && rounds++ < AIOXDP_MAX_KICK_ROUNDS) {
		uint32_t submitted = x->txq_count ? submit_queued(x) : 0;
		uint32_t completed;

		if (x->txq_count && !submitted)
			x->n.tx_ring_full++;
		if (tx_ring_unconsumed(x) && (!(x->cfg.bind_flags & XDP_USE_NEED_WAKEUP) ||
					      xsk_ring_prod__needs_wakeup(&x->tx))) {
			int err = aioxdp_xsk_kick(x);

			x->n.tx_wakeups++;
			if (err && err != -EAGAIN && err != -EBUSY && err != -ENOBUFS)
				return err;
		}
		completed = aioxdp_xsk_complete(x);
		if (!completed && !submitted)
			break; /* no progress possible now: wait for the socket */
	}
	/* non-zero: frames still wait, call again when the socket is writable */
	return (int)(x->txq_count + tx_ring_unconsumed(x));
}

uint32_t aioxdp_xsk_alloc(struct aioxdp_xsk *x, uint64_t *out, uint32_t n)
{
	uint32_t avail = tx_available(x);

	if (n > avail) {
		n = avail;
		x->n.tx_no_frame++;
	}
	for (uint32_t i = 0; i < n; i++) {
		out[i] = x->pool[--x->npool];
		transfer(x, frame_of(x, out[i], 0), AIOXDP_OWN_POOL, AIOXDP_OWN_APP);
	}
	return n;
}

void aioxdp_xsk_counts(const struct aioxdp_xsk *x, struct aioxdp_xsk_counts *out)
{
	*out = x->n;
	out->pool = x->npool;
}

int aioxdp_xsk_statistics(const struct aioxdp_xsk *x, struct xdp_statistics *out)
{
	socklen_t len = sizeof(*out);

	memset(out, 0, sizeof(*out));
	if (getsockopt(x->fd, SOL_XDP, XDP_STATISTICS, out, &len))
		return -errno;
	return 0;
}

int aioxdp_xsk_options(const struct aioxdp_xsk *x)
{
	struct xdp_options opts;
	socklen_t len = sizeof(opts);

	if (getsockopt(x->fd, SOL_XDP, XDP_OPTIONS, &opts, &len))
		return -errno;
	return (int)opts.flags;
}

uint32_t aioxdp_sort_by_tag(struct aioxdp_desc *descs, uint32_t n, struct aioxdp_desc *scratch,
			    uint32_t *run_ends)
{
	/* bottom-up merge sort by tag: stable, O(n log n); one pass when the
	 * batch is already one tag, the usual case */
	uint32_t runs = 0;
	int sorted = 1;

	for (uint32_t i = 1; i < n && sorted; i++)
		sorted = descs[i - 1].tag <= descs[i].tag;
	for (uint32_t width = 1; !sorted && width < n; width *= 2) {
		for (uint32_t lo = 0; lo < n; lo += 2 * width) {
			uint32_t mid = lo + width < n ? lo + width : n;
			uint32_t hi = lo + 2 * width < n ? lo + 2 * width : n;
			uint32_t a = lo, b = mid, k = lo;

			while (a < mid && b < hi)
				scratch[k++] = descs[b].tag < descs[a].tag ? descs[b++] : descs[a++];
			while (a < mid)
				scratch[k++] = descs[a++];
			while (b < hi)
				scratch[k++] = descs[b++];
		}
		memcpy(descs, scratch, (size_t)n * sizeof(*descs));
	}
	for (uint32_t i = 1; i <= n; i++)
		if (i == n || descs[i].tag != descs[i - 1].tag)
			run_ends[runs++] = i;
	return runs;
}

int aioxdp_xsk_error(const struct aioxdp_xsk *x)
{
	int err = 0;
	socklen_t len = sizeof(err);

	/* pending socket error, e.g. ENETDOWN once the device is gone */
	if (getsockopt(x->fd, SOL_SOCKET, SO_ERROR, &err, &len))
		return errno;
	return err;
}
