/* The AF_XDP core: one UMEM, its frame pool, and one XDP socket with its four
 * rings. Every ring loop runs here over a whole batch, so Python is entered
 * once per batch, never per descriptor.
 *
 * Frame ownership: every frame is at each moment in exactly one of
 *   pool   free, on the stack below
 *   fill   given to the kernel for RX (fill ring, or RX ring not yet drained)
 *   app    drained from RX, or allocated for TX, not yet released/submitted
 *   txq    queued here for TX, not yet on the TX ring
 *   tx     on the TX ring or in flight, until the completion ring returns it
 * and pool + fill + app + txq + tx == nframes at all times.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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
	uint32_t fill_target;   /* frames to keep in the fill ring */

	uint64_t *pool;         /* stack of free frame addresses */
	uint32_t npool;

	uint64_t *txq_addr;     /* FIFO of frames waiting for TX ring space */
	uint32_t *txq_len;
	uint32_t txq_head, txq_count;
	uint32_t kick_pending;  /* the last kick left descriptors on the TX ring */

	struct aioxdp_xsk_counts n;
};

static uint64_t frame_base(const struct aioxdp_xsk *x, uint64_t addr)
{
	/* descriptors point past the headroom; the pool holds frame starts */
	return addr - addr % x->cfg.frame_size;
}

int aioxdp_xsk_open(struct aioxdp_xsk **out, const char *ifname, uint32_t queue,
		    const struct aioxdp_xsk_config *cfg)
{
	struct aioxdp_xsk *x;
	struct xsk_umem_config ucfg;
	struct xsk_socket_config scfg;
	int err;

	*out = NULL;
	if (!cfg->nframes || !cfg->frame_size || (cfg->frame_size & (cfg->frame_size - 1)))
		return -EINVAL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->cfg = *cfg;
	x->fd = -1;
	x->area_size = (uint64_t)cfg->nframes * cfg->frame_size;
	x->area = mmap(NULL, x->area_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (x->area == MAP_FAILED) {
		x->area = NULL;
		err = -errno;
		goto fail;
	}
	x->pool = calloc(cfg->nframes, sizeof(*x->pool));
	x->txq_addr = calloc(cfg->nframes, sizeof(*x->txq_addr));
	x->txq_len = calloc(cfg->nframes, sizeof(*x->txq_len));
	if (!x->pool || !x->txq_addr || !x->txq_len) {
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

	/* leave room in the pool for TX: RX must not be able to starve it */
	x->fill_target = cfg->fill_size;
	if (x->fill_target > cfg->nframes / 2)
		x->fill_target = cfg->nframes / 2;
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
	if (x->area)
		munmap(x->area, x->area_size);
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
	for (uint32_t i = 0; i < n; i++)
		*xsk_ring_prod__fill_addr(&x->fill, idx + i) = x->pool[--x->npool];
	xsk_ring_prod__submit(&x->fill, n);
	x->n.fill += n;
	if (n && xsk_ring_prod__needs_wakeup(&x->fill)) {
		/* the driver asked to be told about new fill entries */
		recvfrom(x->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		x->n.rx_wakeups++;
	}
	return n;
}

uint32_t aioxdp_xsk_rx(struct aioxdp_xsk *x, struct aioxdp_desc *out, uint32_t max)
{
	uint32_t idx, n;

	n = xsk_ring_cons__peek(&x->rx, max, &idx);
	for (uint32_t i = 0; i < n; i++) {
		const struct xdp_desc *d = xsk_ring_cons__rx_desc(&x->rx, idx + i);
		const struct aioxdp_meta *meta;

		out[i].addr = d->addr;
		out[i].len = d->len;
		out[i].flags = 0;
		out[i].tag = 0;
		/* the forwarder puts the rule's tag in front of the frame */
		if (d->addr % x->cfg.frame_size >= sizeof(*meta)) {
			meta = (const void *)((char *)x->area + d->addr - sizeof(*meta));
			if (meta->magic == AIOXDP_META_MAGIC)
				out[i].tag = meta->tag;
		}
	}
	xsk_ring_cons__release(&x->rx, n);
	x->n.fill -= n;
	x->n.app += n;
	x->n.rx_packets += n;
	if (n)
		x->n.rx_batches++;
	return n;
}

uint32_t aioxdp_xsk_release(struct aioxdp_xsk *x, const struct aioxdp_desc *descs, uint32_t n)
{
	uint32_t done = 0;

	for (uint32_t i = 0; i < n; i++) {
		if (descs[i].flags & AIOXDP_DESC_KEEP)
			continue;
		x->pool[x->npool++] = frame_base(x, descs[i].addr);
		done++;
	}
	x->n.app -= done;
	return done;
}

void aioxdp_xsk_release_one(struct aioxdp_xsk *x, uint64_t addr)
{
	x->pool[x->npool++] = frame_base(x, addr);
	x->n.app--;
}

static void txq_push(struct aioxdp_xsk *x, uint64_t addr, uint32_t len)
{
	uint32_t slot = (x->txq_head + x->txq_count) % x->cfg.nframes;

	x->txq_addr[slot] = addr;
	x->txq_len[slot] = len;
	x->txq_count++;
	x->n.txq++;
}

int aioxdp_xsk_send_copy(struct aioxdp_xsk *x, const void *data, uint32_t len)
{
	uint64_t addr;

	if (len > x->cfg.frame_size)
		return -EMSGSIZE;
	if (!x->npool) {
		x->n.tx_no_frame++;
		return -ENOBUFS;
	}
	addr = x->pool[--x->npool];
	memcpy((char *)x->area + addr, data, len);
	txq_push(x, addr, len);
	return 0;
}

int aioxdp_xsk_send_frame(struct aioxdp_xsk *x, uint64_t addr, uint32_t len)
{
	/* a frame the application owns (received or allocated) goes out as is */
	if (len > x->cfg.frame_size - addr % x->cfg.frame_size)
		return -EMSGSIZE;
	x->n.app--;
	txq_push(x, addr, len);
	return 0;
}

uint32_t aioxdp_xsk_send_descs(struct aioxdp_xsk *x, struct aioxdp_desc *descs, uint32_t n)
{
	/* send received frames back out (after the caller rewrote them), marking
	 * them kept so a following release of the batch skips them */
	for (uint32_t i = 0; i < n; i++) {
		descs[i].flags |= AIOXDP_DESC_KEEP;
		x->n.app--;
		txq_push(x, descs[i].addr, descs[i].len);
	}
	return n;
}

int aioxdp_xsk_kick(struct aioxdp_xsk *x)
{
	return sendto(x->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0 ? 0 : -errno;
}

uint32_t aioxdp_xsk_complete(struct aioxdp_xsk *x)
{
	uint32_t idx, n;

	n = xsk_ring_cons__peek(&x->comp, x->cfg.comp_size, &idx);
	for (uint32_t i = 0; i < n; i++)
		x->pool[x->npool++] = frame_base(x, *xsk_ring_cons__comp_addr(&x->comp, idx + i));
	xsk_ring_cons__release(&x->comp, n);
	x->n.tx -= n;
	x->n.tx_completed += n;
	return n;
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
		x->txq_head = (x->txq_head + 1) % x->cfg.nframes;
	}
	xsk_ring_prod__submit(&x->tx, n);
	x->txq_count -= n;
	x->n.txq -= n;
	x->n.tx += n;
	x->n.tx_packets += n;
	return n;
}

int aioxdp_xsk_flush(struct aioxdp_xsk *x)
{
	/* In copy mode the kernel transmits only inside sendto(), a bounded
	 * batch per call, answering EAGAIN while descriptors remain; so submit
	 * and kick in rounds, reclaiming completions between them. */
	uint32_t rounds = 0;

	aioxdp_xsk_complete(x);
	x->kick_pending = 0;
	while ((x->txq_count || x->kick_pending) && rounds++ < AIOXDP_MAX_KICK_ROUNDS) {
		uint32_t submitted = x->txq_count ? submit_queued(x) : 0;
		int was_pending = x->kick_pending;

		if (x->txq_count && !submitted)
			x->n.tx_ring_full++;
		x->kick_pending = 0;
		if ((submitted || was_pending) && xsk_ring_prod__needs_wakeup(&x->tx)) {
			int err = aioxdp_xsk_kick(x);

			x->n.tx_wakeups++;
			if (err == -EAGAIN || err == -EBUSY || err == -ENOBUFS)
				x->kick_pending = 1;
			else if (err)
				return err;
		}
		if (!aioxdp_xsk_complete(x) && !submitted && !x->kick_pending)
			break; /* no progress possible now: wait for the socket */
	}
	/* non-zero: frames still wait, call again when the socket is writable */
	return (int)(x->txq_count + x->kick_pending);
}

uint32_t aioxdp_xsk_alloc(struct aioxdp_xsk *x, uint64_t *out, uint32_t n)
{
	if (n > x->npool)
		n = x->npool;
	for (uint32_t i = 0; i < n; i++)
		out[i] = x->pool[--x->npool];
	x->n.app += n;
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

uint32_t aioxdp_sort_by_tag(struct aioxdp_desc *descs, uint32_t n)
{
	/* insertion sort, stable; batches are small and usually one tag. Returns
	 * the number of distinct tags. */
	uint32_t distinct = n ? 1 : 0;

	for (uint32_t i = 1; i < n; i++) {
		struct aioxdp_desc d = descs[i];
		uint32_t j = i;

		while (j > 0 && descs[j - 1].tag > d.tag) {
			descs[j] = descs[j - 1];
			j--;
		}
		descs[j] = d;
	}
	for (uint32_t i = 1; i < n; i++)
		distinct += descs[i].tag != descs[i - 1].tag;
	return distinct;
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
