"""cdef for aioxdp's own C helpers in ``aioxdp/_native``."""

from pathlib import Path

NATIVE_DIR = Path(__file__).resolve().parent.parent / "_native"
SOURCES = sorted(str(p) for p in NATIVE_DIR.glob("*.c"))

INCLUDES = """
#include "aioxdp_native.h"
"""

TYPES = """
struct aioxdp_fw_key {
    __u32 saddr;
    __u32 daddr;
    __u16 sport;
    __u16 dport;
    __u8 proto;
    __u8 flags;
    __u8 pad[2];
};

struct aioxdp_fw_rule {
    __u16 action;
    __u16 priority;
    __u32 tag;
    __u64 hits;
};

struct aioxdp_meta {
    __u32 tag;
    __u32 magic;
};

#define AIOXDP_FW_KEY_NO_L4 ...
#define AIOXDP_FW_KEY_ARP ...
#define AIOXDP_META_MAGIC ...
#define AIOXDP_FW_CNT_REDIRECT ...
#define AIOXDP_FW_CNT_PASS ...
#define AIOXDP_FW_CNT_DROP ...
#define AIOXDP_FW_CNT_UNMATCHED ...
#define AIOXDP_FW_CNT_NOT_IPV4 ...
#define AIOXDP_FW_CNT_MALFORMED ...
#define AIOXDP_FW_CNT_FRAGMENT ...
#define AIOXDP_FW_CNT_NO_XSK ...

struct aioxdp_xsk_config {
    uint32_t nframes;
    uint32_t frame_size;
    uint32_t fill_size;
    uint32_t comp_size;
    uint32_t rx_size;
    uint32_t tx_size;
    uint16_t bind_flags;
};

struct aioxdp_desc {
    uint64_t addr;
    uint32_t len;
    uint32_t tag;
    uint32_t flags;
    uint32_t _pad;
};

struct aioxdp_xsk_counts {
    uint32_t nframes, pool, fill, app, txq, tx;
    uint64_t rx_packets, rx_batches, rx_wakeups;
    uint64_t tx_packets, tx_completed, tx_wakeups, tx_ring_full, tx_no_frame;
};

struct xdp_statistics {
    __u64 rx_dropped;
    __u64 rx_invalid_descs;
    __u64 tx_invalid_descs;
    __u64 rx_ring_full;
    __u64 rx_fill_ring_empty_descs;
    __u64 tx_ring_empty_descs;
};

#define AIOXDP_DESC_KEEP ...
#define XDP_OPTIONS_ZEROCOPY ...

struct aioxdp_xsk;

#define AIOXDP_ECHO_STAMP_LEN ...
enum aioxdp_echo_status {
    AIOXDP_ECHO_OK, AIOXDP_ECHO_TRUNCATED, AIOXDP_ECHO_NOT_IPV4, AIOXDP_ECHO_BAD_IP,
    AIOXDP_ECHO_BAD_IP_CHECKSUM, AIOXDP_ECHO_NOT_ICMP, AIOXDP_ECHO_FRAGMENT,
    AIOXDP_ECHO_BAD_ICMP_CHECKSUM, AIOXDP_ECHO_NOT_REPLY, AIOXDP_ECHO_FOREIGN,
    AIOXDP_ECHO_NO_STAMP, AIOXDP_ECHO_STATUS_MAX
};

enum aioxdp_probe_state {
    AIOXDP_PROBE_SENT, AIOXDP_PROBE_ANSWERED, AIOXDP_PROBE_LATE, AIOXDP_PROBE_EXPIRED
};

struct aioxdp_echo_probes {
    uint8_t *state;
    int64_t *sent_ns;
    double *rtts;
    uint32_t *seqs;
    uint8_t *ttls;
    uint32_t *sizes;
    uint64_t nrec;
    uint64_t next_probe;
    uint64_t done;
    uint64_t sweep;
    int64_t timeout_ns;
};

enum aioxdp_udp_status {
    AIOXDP_UDP_OK, AIOXDP_UDP_TRUNCATED, AIOXDP_UDP_NOT_IPV4, AIOXDP_UDP_BAD_IP,
    AIOXDP_UDP_BAD_IP_CHECKSUM, AIOXDP_UDP_NOT_UDP, AIOXDP_UDP_FRAGMENT, AIOXDP_UDP_BAD_LENGTH,
    AIOXDP_UDP_BAD_CHECKSUM, AIOXDP_UDP_STATUS_MAX
};

struct aioxdp_udp_dgram {
    uint64_t off;
    uint32_t len;
    uint32_t saddr;
    uint32_t daddr;
    uint16_t sport;
    uint16_t dport;
    uint8_t status;
    ...;
};

struct aioxdp_echo_tally {
    uint64_t matched;
    uint64_t duplicates, late, foreign;
    uint64_t malformed[...];
    int count_malformed;
};

struct aioxdp_echo_reply {
    int64_t sent_ns;
    int64_t recv_ns;
    uint32_t saddr;
    uint32_t size;
    uint16_t seq;
    uint8_t ttl;
    uint8_t status;
    uint32_t _pad;
};

#define AIOXDP_FW_MAX_MASKS ...
#define AIOXDP_FW_MAX_RULES ...
#define AIOXDP_FW_MAX_QUEUES ...
#define AIOXDP_FW_REDIRECT ...
#define AIOXDP_FW_PASS ...
#define AIOXDP_FW_DROP ...
#define AIOXDP_FW_CNT_MAX ...
"""

FUNCTIONS = """
/* libbpf's log: formatted in C (it hands us a va_list), then passed up. */
extern "Python+C" void aioxdp_on_libbpf_log(int level, const char *line);
void aioxdp_capture_libbpf_log(void);

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
int aioxdp_xsk_error(const struct aioxdp_xsk *x);
uint32_t aioxdp_sort_by_tag(struct aioxdp_desc *descs, uint32_t n);

int64_t aioxdp_now_ns(void);
uint16_t aioxdp_ones_sum(const void *data, size_t len, uint32_t initial);
uint16_t aioxdp_checksum(const void *data, size_t len, uint32_t initial);
uint32_t aioxdp_echo_send(struct aioxdp_xsk *x, const uint8_t *tmpl, uint32_t len,
                          uint16_t seq0, uint32_t count, int64_t *sent_ns);
uint32_t aioxdp_echo_parse(struct aioxdp_xsk *x, const struct aioxdp_desc *descs, uint32_t n,
                           uint16_t ident, struct aioxdp_echo_reply *out);
uint32_t aioxdp_echo_account(const struct aioxdp_echo_reply *res, uint32_t n, uint32_t saddr,
                             struct aioxdp_echo_probes *p, struct aioxdp_echo_tally *t);
uint32_t aioxdp_echo_sweep(struct aioxdp_echo_probes *p, int64_t now_ns);

uint32_t aioxdp_udp_parse(struct aioxdp_xsk *x, const struct aioxdp_desc *descs, uint32_t n,
                          struct aioxdp_udp_dgram *out);
uint32_t aioxdp_udp_echo(struct aioxdp_xsk *x, struct aioxdp_desc *descs,
                         const struct aioxdp_udp_dgram *d, uint32_t n);
int aioxdp_udp_send(struct aioxdp_xsk *x, const uint8_t *hdr, uint16_t ip_id, const void *payload,
                    uint32_t len);
"""
