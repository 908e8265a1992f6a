"""cdef for the parts of libbpf (>= 1.0 semantics) that aioxdp calls."""

INCLUDES = """
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <linux/if_link.h>
"""

TYPES = """
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;

struct bpf_object;
struct bpf_program;
struct bpf_map;

enum libbpf_print_level { LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG };

enum bpf_prog_type { BPF_PROG_TYPE_XDP, ... };
enum bpf_attach_type { BPF_XDP, ... };
enum bpf_map_type {
    BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_HASH,
    BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_XSKMAP, ...
};

#define XDP_FLAGS_UPDATE_IF_NOEXIST ...
#define XDP_FLAGS_SKB_MODE ...
#define XDP_FLAGS_DRV_MODE ...
#define XDP_FLAGS_HW_MODE ...
#define XDP_FLAGS_REPLACE ...
#define XDP_ATTACHED_NONE ...
#define XDP_ATTACHED_DRV ...
#define XDP_ATTACHED_SKB ...
#define XDP_ATTACHED_HW ...
#define XDP_ATTACHED_MULTI ...

#define XDP_ABORTED ...
#define XDP_DROP ...
#define XDP_PASS ...
#define XDP_TX ...
#define XDP_REDIRECT ...

struct bpf_object_open_opts {
    size_t sz;
    const char *object_name;
    char *kernel_log_buf;
    size_t kernel_log_size;
    __u32 kernel_log_level;
    ...;
};

struct bpf_link_create_opts {
    size_t sz;
    __u32 flags;
    ...;
};

struct bpf_xdp_query_opts {
    size_t sz;
    __u32 prog_id;
    __u32 drv_prog_id;
    __u32 hw_prog_id;
    __u32 skb_prog_id;
    __u8 attach_mode;
    ...;
};

struct bpf_xdp_attach_opts {
    size_t sz;
    int old_prog_fd;
    ...;
};

struct bpf_test_run_opts {
    size_t sz;
    const void *data_in;
    void *data_out;
    __u32 data_size_in;
    __u32 data_size_out;
    __u32 retval;
    int repeat;
    __u32 duration;
    ...;
};
"""

FUNCTIONS = """
int libbpf_strerror(int err, char *buf, size_t size);
int libbpf_num_possible_cpus(void);
__u32 libbpf_major_version(void);
__u32 libbpf_minor_version(void);

struct bpf_object *bpf_object__open_file(const char *path,
                                         const struct bpf_object_open_opts *opts);
int bpf_object__load(struct bpf_object *obj);
void bpf_object__close(struct bpf_object *obj);
const char *bpf_object__name(const struct bpf_object *obj);

struct bpf_program *bpf_object__next_program(const struct bpf_object *obj,
                                              struct bpf_program *prog);
struct bpf_program *bpf_object__find_program_by_name(const struct bpf_object *obj,
                                                     const char *name);
const char *bpf_program__name(const struct bpf_program *prog);
int bpf_program__fd(const struct bpf_program *prog);
int bpf_program__set_type(struct bpf_program *prog, enum bpf_prog_type type);
enum bpf_prog_type bpf_program__type(const struct bpf_program *prog);

struct bpf_map *bpf_object__next_map(const struct bpf_object *obj,
                                     const struct bpf_map *map);
struct bpf_map *bpf_object__find_map_by_name(const struct bpf_object *obj,
                                             const char *name);
const char *bpf_map__name(const struct bpf_map *map);
int bpf_map__fd(const struct bpf_map *map);
enum bpf_map_type bpf_map__type(const struct bpf_map *map);
__u32 bpf_map__key_size(const struct bpf_map *map);
__u32 bpf_map__value_size(const struct bpf_map *map);
__u32 bpf_map__max_entries(const struct bpf_map *map);
int bpf_map__lookup_elem(const struct bpf_map *map, const void *key, size_t key_sz,
                         void *value, size_t value_sz, __u64 flags);
int bpf_map__update_elem(const struct bpf_map *map, const void *key, size_t key_sz,
                         const void *value, size_t value_sz, __u64 flags);
int bpf_map__delete_elem(const struct bpf_map *map, const void *key, size_t key_sz,
                         __u64 flags);
int bpf_map__get_next_key(const struct bpf_map *map, const void *cur_key,
                          void *next_key, size_t key_sz);

int bpf_link_create(int prog_fd, int target_fd, enum bpf_attach_type attach_type,
                    const struct bpf_link_create_opts *opts);
int bpf_xdp_attach(int ifindex, int prog_fd, __u32 flags,
                   const struct bpf_xdp_attach_opts *opts);
int bpf_xdp_detach(int ifindex, __u32 flags, const struct bpf_xdp_attach_opts *opts);
int bpf_xdp_query(int ifindex, int flags, struct bpf_xdp_query_opts *opts);
int bpf_prog_test_run_opts(int prog_fd, struct bpf_test_run_opts *opts);
"""
