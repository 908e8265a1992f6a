/* aioxdp's C helpers, compiled into the cffi extension. */
#ifndef AIOXDP_NATIVE_H
#define AIOXDP_NATIVE_H

#include <stddef.h>
#include <stdint.h>
#include <linux/if_xdp.h>

#include "forwarder.h"

/* Defined by cffi (extern "Python+C"): receives one formatted libbpf line. */
void aioxdp_on_libbpf_log(int level, const char *line);

/* Route libbpf's log lines to aioxdp_on_libbpf_log instead of stderr. */
void aioxdp_capture_libbpf_log(void);

/* ---- the AF_XDP core (xsk_core.c) ---- */

#define AIOXDP_DESC_KEEP 1u       /* the frame left the batch (kept, or sent back) */
#define AIOXDP_MAX_KICK_ROUNDS 256
#define AIOXDP_MIN_FRAME 14       /* an Ethernet header: nothing shorter is sent */

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
	int64_t rx_ns;   /* when the forwarder redirected it (CLOCK_MONOTONIC), 0 if unknown */
};

/* Who owns a frame. Each frame has exactly one owner; every call that moves
 * a frame checks the owner it expects and refuses (-EINVAL) otherwise. */
enum aioxdp_frame_owner {
	AIOXDP_OWN_POOL = 0,  /* free */
	AIOXDP_OWN_FILL,      /* lent to the kernel for RX (fill ring, or RX ring) */
	AIOXDP_OWN_RX,        /* drained from RX, in the batch being delivered */
	AIOXDP_OWN_APP,       /* kept by the application, or allocated for TX */
	AIOXDP_OWN_TXQ,       /* queued here for TX */
	AIOXDP_OWN_TX,        /* on the TX ring or being sent, until completed */
	AIOXDP_OWN_MAX,
};

/* Who owns the frames, and what happened. */
struct aioxdp_xsk_counts {
	uint32_t nframes, pool, fill, rx, app, txq, tx;
	uint64_t rx_packets, rx_batches, rx_wakeups;
	uint64_t tx_packets, tx_completed, tx_wakeups, tx_ring_full, tx_no_frame;
	uint64_t refused;        /* calls refused: a frame not owned as the call expects */
	uint64_t kernel_invalid; /* RX or completion descriptors naming no frame we lent */
};

struct aioxdp_xsk;

int aioxdp_xsk_open(struct aioxdp_xsk **out, const char *ifname, uint32_t queue,
		    const struct aioxdp_xsk_config *cfg, void *area, uint64_t area_size);
void aioxdp_xsk_close(struct aioxdp_xsk *x);
int aioxdp_xsk_fd(const struct aioxdp_xsk *x);
void *aioxdp_xsk_area(const struct aioxdp_xsk *x);
uint32_t aioxdp_xsk_frame_size(const struct aioxdp_xsk *x);
int aioxdp_xsk_owner(const struct aioxdp_xsk *x, uint64_t addr);
/* 1 if [addr, addr + len) lies inside one frame of the UMEM */
int aioxdp_xsk_holds(const struct aioxdp_xsk *x, uint64_t addr, uint32_t len);
uint32_t aioxdp_xsk_refill(struct aioxdp_xsk *x);
uint32_t aioxdp_xsk_rx(struct aioxdp_xsk *x, struct aioxdp_desc *out, uint32_t max);
/* The RX ring's next descriptors, up to ``max``, described into ``out`` and
 * left on the ring: how many, up to the first that is not a frame we lent. */
uint32_t aioxdp_xsk_rx_look(struct aioxdp_xsk *x, struct aioxdp_desc *out, uint32_t max);
int aioxdp_xsk_release(struct aioxdp_xsk *x, const struct aioxdp_desc *descs, uint32_t n);
int aioxdp_xsk_keep(struct aioxdp_xsk *x, struct aioxdp_desc *desc);
int aioxdp_xsk_release_one(struct aioxdp_xsk *x, uint64_t addr);
int aioxdp_xsk_send_copy(struct aioxdp_xsk *x, const void *data, uint32_t len);
int aioxdp_xsk_send_frame(struct aioxdp_xsk *x, uint64_t addr, uint32_t len);
int aioxdp_xsk_send_descs(struct aioxdp_xsk *x, struct aioxdp_desc *descs, uint32_t n);
int aioxdp_xsk_kick(struct aioxdp_xsk *x);
uint32_t aioxdp_xsk_complete(struct aioxdp_xsk *x);
int aioxdp_xsk_flush(struct aioxdp_xsk *x);
/* In copy mode, transmit what is queued now (a frame just stamped with its
 * send time); in zero-copy mode nothing: the driver transmits on its own. */
void aioxdp_xsk_send_now(struct aioxdp_xsk *x);
uint32_t aioxdp_xsk_tx_pending(struct aioxdp_xsk *x); /* queued + on the TX ring unconsumed */
uint32_t aioxdp_xsk_rx_ready(struct aioxdp_xsk *x);   /* descriptors waiting on the RX ring */
uint32_t aioxdp_xsk_alloc(struct aioxdp_xsk *x, uint64_t *out, uint32_t n);
void aioxdp_xsk_counts(const struct aioxdp_xsk *x, struct aioxdp_xsk_counts *out);
int aioxdp_xsk_statistics(const struct aioxdp_xsk *x, struct xdp_statistics *out);
int aioxdp_xsk_options(const struct aioxdp_xsk *x);
int aioxdp_xsk_error(const struct aioxdp_xsk *x);
/* Group a batch by tag (stable) and write where each run of one tag ends
 * into run_ends; returns the number of runs. scratch holds n descriptors. */
uint32_t aioxdp_sort_by_tag(struct aioxdp_desc *descs, uint32_t n, struct aioxdp_desc *scratch,
			    uint32_t *run_ends);

/* ---- ICMP echo and checksums (echo.c) ---- */

#define AIOXDP_ECHO_STAMP_LEN 8   /* send time, CLOCK_MONOTONIC ns, first in the payload */

enum aioxdp_echo_status {
	AIOXDP_ECHO_OK = 0,
	AIOXDP_ECHO_TRUNCATED,
	AIOXDP_ECHO_NOT_IP,       /* neither IPv4 nor IPv6 */
	AIOXDP_ECHO_BAD_IP,
	AIOXDP_ECHO_BAD_IP_CHECKSUM,
	AIOXDP_ECHO_NOT_ICMP,
	AIOXDP_ECHO_FRAGMENT,
	AIOXDP_ECHO_BAD_ICMP_CHECKSUM,
	AIOXDP_ECHO_NOT_REPLY,
	AIOXDP_ECHO_FOREIGN,
	AIOXDP_ECHO_ERROR,    /* not a fault: an ICMP error that quotes one of our requests */
	AIOXDP_ECHO_STATUS_MAX,
};

enum aioxdp_probe_state {
	AIOXDP_PROBE_SENT = 0,
	AIOXDP_PROBE_ANSWERED,
	AIOXDP_PROBE_LATE,
	AIOXDP_PROBE_EXPIRED,
	AIOXDP_PROBE_ERROR,   /* answered by an ICMP error */
};

/* One target's progress through its probes. Counters saturate. */
struct aioxdp_echo_target {
	uint32_t next_probe;  /* probes sent */
	uint32_t done;        /* probes that left flight */
	uint32_t sweep;       /* probes before this index have left flight */
	uint32_t nrec;        /* answered replies recorded */
	uint32_t matched;     /* valid replies from this target */
	uint32_t duplicates, late, foreign;
	uint32_t pipe;        /* the most probes sent when one was answered, counting it (ping's) */
};

/* Every target's probes: session-wide arrays owned by Python, ``count``
 * slots per target (target i's are ``i * count`` onwards), and the targets'
 * progress. 36 bytes per target and 26 per probe, no pointer per target. */
struct aioxdp_echo_probes {
	uint8_t *state;       /* enum aioxdp_probe_state per probe */
	int64_t *sent_ns;     /* per probe */
	double *rtts;         /* per answered reply, in arrival order */
	uint32_t *seqs;
	uint8_t *ttls;
	uint32_t *sizes;
	struct aioxdp_echo_target *targets;
	/* NULL when every target is IPv4 (the lookup keys are the addresses);
	 * else 16 bytes per target, IPv4 ones mapped (::ffff:a.b.c.d): what a
	 * reply's source must equal, and what an IPv6 request is sent to */
	const uint8_t *addrs;
	uint32_t n_targets;
	uint32_t count;       /* slots per target: no index reaches it */
	int64_t timeout_ns;
};

/* Which target a source address is: open addressing over ``mask + 1``
 * slots (a power of two, at least twice the targets); targets that share
 * an address are chained through ``next_same`` (-1 ends a chain). */
struct aioxdp_echo_lookup {
	uint32_t *keys;       /* aioxdp_echo_key of the source address */
	int32_t *index;       /* first target with it, -1 for an empty slot */
	int32_t *next_same;   /* per target */
	uint32_t mask;
	uint32_t n_targets;
};

/* One received frame, checked. For AIOXDP_ECHO_ERROR, ``saddr``, ``seq``
 * and ``sent_ns`` are those of the quoted request (its destination, its
 * sequence, its stamp or 0 if the quote is too short to hold it), and
 * ``sender`` is who sent the error. Requests shorter than the stamp carry
 * none: their replies have ``sent_ns`` 0 and are timed by the probe's. */
struct aioxdp_echo_reply {
	int64_t sent_ns;
	int64_t recv_ns;
	uint32_t saddr;   /* network order */
	uint32_t size;    /* ICMP bytes, header included */
	uint16_t seq;
	uint8_t ttl;
	uint8_t status;   /* enum aioxdp_echo_status */
	int32_t target;   /* set by accounting: the target it answered (or errored) in time, else -1 */
	uint32_t sender;  /* network order: who sent an ICMP error (IPv4) */
	uint8_t icmp_type, icmp_code;
	uint16_t info;    /* an error's next-hop MTU (3/4, ICMPv6 2) or pointer (12, ICMPv6 4), else 0 */
	uint8_t v6;       /* 1: an ICMPv6 message */
	uint8_t saddr6[16];   /* the source (or a quoted request's destination), IPv4 mapped */
	uint8_t sender6[16];  /* who sent an ICMPv6 error */
};

/* What a batch's accounting found besides the targets' own tallies. */
struct aioxdp_echo_counts {
	uint64_t faults[AIOXDP_ECHO_STATUS_MAX]; /* by status; the OK and ERROR slots stay 0 */
	uint64_t unknown;  /* valid replies (or errors) about no target's address */
	uint64_t errors;   /* ICMP errors matched to a probe of ours */
};

int64_t aioxdp_now_ns(void);
uint16_t aioxdp_ones_sum(const void *data, size_t len, uint32_t initial);
uint16_t aioxdp_checksum(const void *data, size_t len, uint32_t initial);
uint32_t aioxdp_echo_send(struct aioxdp_xsk *x, const uint8_t *tmpl, uint32_t len,
			  uint16_t seq0, uint32_t count, int64_t *sent_ns);
uint32_t aioxdp_echo_parse(struct aioxdp_xsk *x, const struct aioxdp_desc *descs, uint32_t n,
			   uint16_t ident, struct aioxdp_echo_reply *out);
/* Fill the lookup from each target's key (aioxdp_echo_keys); -1 if it is too small. */
int aioxdp_echo_lookup_build(struct aioxdp_echo_lookup *l, const uint32_t *saddrs);
/* The lookup key of each of n 16-byte addresses (IPv4 mapped, or IPv6):
 * an IPv4 address itself, network order as a frame holds it; an IPv6
 * address folded to 32 bits (the lookup then compares all 16 bytes). */
void aioxdp_echo_keys(const uint8_t *addrs, uint32_t n, uint32_t *out);
/* Send the next probe of targets first..first+n-1: target i's request is
 * its path's template (``bases + base_of[i] * len``, one of ``n_bases``,
 * IPv4 or IPv6, each as long as its IP header says and at most ``len``)
 * with ``daddrs[i]`` (IPv4, network order) or ``p->addrs`` (IPv6) as its
 * destination. Returns how many
 * went: it stops at the first target without a free frame, without probes
 * left, with a template index out of range, or (``window`` > 0) with
 * ``window`` probes in flight. */
uint32_t aioxdp_echo_send_each(struct aioxdp_xsk *x, const uint8_t *bases, uint32_t n_bases,
			       uint32_t len, const uint32_t *base_of, const uint32_t *daddrs,
			       struct aioxdp_echo_probes *p, uint32_t first, uint32_t n,
			       uint32_t window);
/* Account a batch of checked replies and errors against every target
 * (faults, strangers and errors counted in ``c``). Returns how many probes
 * left flight. */
uint32_t aioxdp_echo_account(struct aioxdp_echo_reply *res, uint32_t n,
			     const struct aioxdp_echo_lookup *l, struct aioxdp_echo_probes *p,
			     struct aioxdp_echo_counts *c);
/* A one-target flood driven from the ring (aioxdp_echo_flood): what it is
 * given, and what it did. */
struct aioxdp_echo_flood {
	const uint8_t *tmpl;  /* the request template and its length (as aioxdp_echo_send) */
	uint32_t len;
	uint32_t tag;         /* the forwarder's tag of this run's replies */
	uint32_t window;      /* probes in flight at most */
	uint32_t max_taken;   /* replies to take at most in one call */
	int64_t deadline_ns;  /* the run's end: no probe after it */
	uint16_t ident;
	uint16_t _pad[3];
	/* out: set by each call */
	uint32_t taken;       /* replies taken off the ring */
	uint32_t sent;        /* probes sent */
	uint32_t freed;       /* probes that left flight */
	uint32_t _pad2;
	int64_t last_sent_ns; /* the last probe's stamp, if any was sent */
};
/* While the next frames on ``rx``'s ring are valid echo replies with the
 * flood's tag, take them, account them against target 0 and send that
 * target's next probes through ``tx`` (each kicked at once in copy mode,
 * where its answer comes back inside the kick), up to ``max_taken``
 * replies. Leaves anything else at the head of the ring (another rule's
 * frame, an ICMP error, a fault) for the receive path, and what follows it.
 * Returns the replies taken. */
uint32_t aioxdp_echo_flood(struct aioxdp_xsk *rx, struct aioxdp_xsk *tx,
			   const struct aioxdp_echo_lookup *l, struct aioxdp_echo_probes *p,
			   struct aioxdp_echo_counts *c, struct aioxdp_echo_flood *f);
/* Expire target i's probes whose timeout passed; returns how many. */
uint32_t aioxdp_echo_sweep(struct aioxdp_echo_probes *p, uint32_t i, int64_t now_ns);
/* Sweep the targets of probes first..stop-1 (numbered round * n_targets + target). */
uint32_t aioxdp_echo_sweep_each(struct aioxdp_echo_probes *p, uint64_t first, uint64_t stop,
				int64_t now_ns);
/* One frame's bytes (parse.c), IPv4 or IPv6: the status, and the fields
 * when it is OK. */
uint8_t aioxdp_echo_check(const uint8_t *f, uint32_t len, uint16_t ident,
			  struct aioxdp_echo_reply *r);

/* ---- UDP (udp.c) ---- */

enum aioxdp_udp_status {
	AIOXDP_UDP_OK = 0,
	AIOXDP_UDP_TRUNCATED,
	AIOXDP_UDP_NOT_IP,        /* neither IPv4 nor IPv6 */
	AIOXDP_UDP_BAD_IP,
	AIOXDP_UDP_BAD_IP_CHECKSUM,
	AIOXDP_UDP_NOT_UDP,
	AIOXDP_UDP_FRAGMENT,
	AIOXDP_UDP_BAD_LENGTH,
	AIOXDP_UDP_BAD_CHECKSUM,
	AIOXDP_UDP_STATUS_MAX,
};

struct aioxdp_udp_dgram {
	uint64_t off;       /* payload offset in the UMEM */
	uint32_t len;       /* payload length */
	uint32_t saddr;     /* network order (IPv6: the 16 bytes folded, a key only) */
	uint32_t daddr;
	uint16_t sport;     /* host order */
	uint16_t dport;
	uint8_t status;     /* enum aioxdp_udp_status */
	uint8_t v6;         /* 1: over IPv6, its source in saddr6 */
	uint8_t _pad[6];
	uint8_t saddr6[16];
};

uint32_t aioxdp_udp_parse(struct aioxdp_xsk *x, const struct aioxdp_desc *descs, uint32_t n,
			  struct aioxdp_udp_dgram *out);
int aioxdp_udp_echo(struct aioxdp_xsk *x, struct aioxdp_desc *descs,
		    const struct aioxdp_udp_dgram *d, uint32_t n);
int aioxdp_udp_send(struct aioxdp_xsk *x, const uint8_t *hdr, uint16_t ip_id, const void *payload,
		    uint32_t len);

/* Where a UDP endpoint's datagrams go, one per next hop and source: the
 * Ethernet and IPv4 (or IPv6) headers but for the destination, lengths, id
 * and checksum, and the source port. A datagram names its path and its
 * destination in one word: path << 48 | daddr (network order, as read from
 * a frame) << 16 | dport (host order); on an IPv6 path, daddr is the
 * index of the destination's 16 bytes in the endpoint's address table, and
 * bit 63 is set (so Python tells the families apart without a lookup). */
struct aioxdp_udp_path {
	uint8_t head[54];
	uint16_t sport;     /* network order */
	uint8_t v6;         /* 1: head is Ethernet and IPv6 */
	uint8_t _pad;
};
#define AIOXDP_UDP_V6_WORD 0x8000000000000000ull
#define AIOXDP_UDP_PATH_MASK 0x7fff  /* of word >> 48: the path */

/* Send n datagrams, the k-th ``lens[k]`` bytes of ``data`` (after the ones
 * before it) to ``dests[k]``, IP ids from ``ip_id``. Every entry is checked
 * before any frame is taken: -EINVAL (a path past n_paths, a port 0, more
 * bytes than ``data_len``) or -EMSGSIZE (a datagram that does not fit one
 * frame) and nothing sent; else how many went (fewer when frames ran out). */
int64_t aioxdp_udp_send_many(struct aioxdp_xsk *x, const struct aioxdp_udp_path *paths,
			     uint32_t n_paths, const uint8_t *addrs6, uint32_t n_addrs6,
			     const uint64_t *dests, const uint8_t *data, uint64_t data_len,
			     const uint32_t *lens, uint32_t n, uint16_t ip_id);
/* One such datagram built whole into ``out`` (``room`` bytes), for a
 * datagram that waits for a free frame: its length, -EMSGSIZE, or -EINVAL
 * (an IPv6 destination index past n_addrs6). */
int64_t aioxdp_udp_build(const struct aioxdp_udp_path *path, const uint8_t *addrs6,
			 uint32_t n_addrs6, uint64_t dest, uint16_t ip_id, const uint8_t *payload,
			 uint32_t len, uint8_t *out, uint32_t room);
/* The valid datagrams of a parsed batch, for Python to read without a cffi
 * struct per datagram: three words each (payload start and stop in the
 * UMEM, saddr << 16 | sport; for IPv6, AIOXDP_UDP_V6_WORD | an index in
 * the batch << 16 | sport, the index naming whose saddr6 says who sent
 * it: the first of a run of datagrams from one sender, so a run shares a
 * word); returns how many. */
uint32_t aioxdp_udp_flatten(const struct aioxdp_udp_dgram *d, uint32_t n, uint64_t *out);
/* One frame's bytes (parse.c). aioxdp_udp_check sets off to the payload's
 * offset in the frame. aioxdp_udp_echo_layout checks that a parse result
 * (payload offset and length, possibly stale or forged) lies inside the
 * frame right behind an IPv4 header (or an IPv6 one and its extension
 * headers) and a UDP header's room, and gives the IP and UDP header
 * offsets: 0, or -1. It does not re-check the headers'
 * fields: a forged length yields a wrong answer inside the frame, never a
 * write outside it. aioxdp_udp_echo_frame, only for what the layout check
 * accepted (udp >= ip + 20, or ip + 40, udp + ulen within the frame), turns
 * it into its answer in place (addresses and ports swapped, IP options or
 * IPv6 extension headers dropped, TTL or hop limit 64, checksums valid) and
 * returns how far the frame's start moved: the answer is ip + 20 + ulen
 * (IPv6: ip + 40 + ulen) bytes from f + that. */
uint8_t aioxdp_udp_check(const uint8_t *f, uint32_t len, struct aioxdp_udp_dgram *d);
int aioxdp_udp_echo_layout(const uint8_t *f, uint32_t len, uint64_t payload, uint32_t plen,
			   uint32_t *ip, uint32_t *udp);
uint32_t aioxdp_udp_echo_frame(uint8_t *f, uint32_t ip, uint32_t udp, uint32_t ulen);

#endif
