/* aioxdp's C helpers, compiled into the cffi extension. */
#ifndef AIOXDP_NATIVE_H
#define AIOXDP_NATIVE_H

#include <stdint.h>
#include <linux/if_xdp.h>

#include "forwarder.h"

/* Defined by cffi (extern "Python+C"): receives one formatted libbpf line. */
void aioxdp_on_libbpf_log(int level, const char *line);

/* Route libbpf's log lines to aioxdp_on_libbpf_log instead of stderr. */
void aioxdp_capture_libbpf_log(void);

/* ---- the AF_XDP core (xsk_core.c) ---- */

#define AIOXDP_DESC_KEEP 1u       /* the application keeps this frame */
#define AIOXDP_MAX_KICK_ROUNDS 256

struct aioxdp_xsk_config {
	uint32_t nframes;
	uint32_t frame_size;
	uint32_t fill_size;
	uint32_t comp_size;
	uint32_t rx_size;
	uint32_t tx_size;
	uint16_t bind_flags;
};

/* One received frame, as handed to Python in arrays. */
struct aioxdp_desc {
	uint64_t addr;   /* offset of the packet in the UMEM */
	uint32_t len;
	uint32_t tag;    /* the forwarder rule's tag, 0 if none */
	uint32_t flags;  /* AIOXDP_DESC_* */
	uint32_t _pad;
};

/* Who owns the frames, and what happened. */
struct aioxdp_xsk_counts {
	uint32_t nframes, pool, fill, app, txq, tx;
	uint64_t rx_packets, rx_batches, rx_wakeups;
	uint64_t tx_packets, tx_completed, tx_wakeups, tx_ring_full, tx_no_frame;
};

struct aioxdp_xsk;

int aioxdp_xsk_open(struct aioxdp_xsk **out, const char *ifname, uint32_t queue,
		    const struct aioxdp_xsk_config *cfg);
void aioxdp_xsk_close(struct aioxdp_xsk *x);
int aioxdp_xsk_fd(const struct aioxdp_xsk *x);
void *aioxdp_xsk_area(const struct aioxdp_xsk *x);
uint32_t aioxdp_xsk_refill(struct aioxdp_xsk *x);
uint32_t aioxdp_xsk_rx(struct aioxdp_xsk *x, struct aioxdp_desc *out, uint32_t max);
uint32_t aioxdp_xsk_release(struct aioxdp_xsk *x, const struct aioxdp_desc *descs, uint32_t n);
void aioxdp_xsk_release_one(struct aioxdp_xsk *x, uint64_t addr);
int aioxdp_xsk_send_copy(struct aioxdp_xsk *x, const void *data, uint32_t len);
int aioxdp_xsk_send_frame(struct aioxdp_xsk *x, uint64_t addr, uint32_t len);
uint32_t aioxdp_xsk_send_descs(struct aioxdp_xsk *x, struct aioxdp_desc *descs, uint32_t n);
int aioxdp_xsk_kick(struct aioxdp_xsk *x);
uint32_t aioxdp_xsk_complete(struct aioxdp_xsk *x);
int aioxdp_xsk_flush(struct aioxdp_xsk *x);
uint32_t aioxdp_xsk_alloc(struct aioxdp_xsk *x, uint64_t *out, uint32_t n);
void aioxdp_xsk_counts(const struct aioxdp_xsk *x, struct aioxdp_xsk_counts *out);
int aioxdp_xsk_statistics(const struct aioxdp_xsk *x, struct xdp_statistics *out);
int aioxdp_xsk_options(const struct aioxdp_xsk *x);
uint32_t aioxdp_sort_by_tag(struct aioxdp_desc *descs, uint32_t n);

#endif
