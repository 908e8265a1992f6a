"""cdef for aioxdp's own C helpers in ``aioxdp/_native``."""

from pathlib import Path

NATIVE_DIR = Path(__file__).resolve().parent.parent / "_native"
SOURCES = sorted(str(p) for p in NATIVE_DIR.glob("*.c"))

INCLUDES = """
#include "aioxdp_native.h"
#include "forwarder.h"
"""

TYPES = """
struct aioxdp_fw_key {
    __u32 saddr;
    __u32 daddr;
    __u16 sport;
    __u16 dport;
    __u8 proto;
    __u8 pad[3];
};

struct aioxdp_fw_rule {
    __u32 action;
    __u32 rule_id;
    __u64 hits;
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
"""
