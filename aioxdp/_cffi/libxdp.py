"""cdef for libxdp's AF_XDP socket API (``<xdp/xsk.h>``).

Ring traversal itself is done in ``aioxdp/_native`` over whole batches;
Python only creates and deletes the objects and reads their fds.
"""

INCLUDES = """
#include <xdp/xsk.h>
#include <xdp/libxdp.h>
"""

TYPES = """
struct xsk_umem;
struct xsk_socket;

struct xsk_ring_prod { ...; };
struct xsk_ring_cons { ...; };

struct xsk_umem_config {
    __u32 fill_size;
    __u32 comp_size;
    __u32 frame_size;
    __u32 frame_headroom;
    __u32 flags;
};

struct xsk_socket_config {
    __u32 rx_size;
    __u32 tx_size;
    __u32 libxdp_flags;
    __u32 xdp_flags;
    __u16 bind_flags;
};

#define XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD ...
#define XDP_USE_NEED_WAKEUP ...
#define XDP_COPY ...
#define XDP_ZEROCOPY ...
"""

FUNCTIONS = """
int xsk_umem__create(struct xsk_umem **umem, void *umem_area, __u64 size,
                     struct xsk_ring_prod *fill, struct xsk_ring_cons *comp,
                     const struct xsk_umem_config *config);
int xsk_umem__delete(struct xsk_umem *umem);
int xsk_umem__fd(const struct xsk_umem *umem);
int xsk_socket__create_shared(struct xsk_socket **xsk, const char *ifname,
                              __u32 queue_id, struct xsk_umem *umem,
                              struct xsk_ring_cons *rx, struct xsk_ring_prod *tx,
                              struct xsk_ring_prod *fill, struct xsk_ring_cons *comp,
                              const struct xsk_socket_config *config);
void xsk_socket__delete(struct xsk_socket *xsk);
int xsk_socket__fd(const struct xsk_socket *xsk);
int xsk_socket__update_xskmap(struct xsk_socket *xsk, int xsks_map_fd);
int libxdp_strerror(int err, char *buf, size_t size);
"""
