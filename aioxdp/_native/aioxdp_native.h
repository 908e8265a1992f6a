/* aioxdp's C helpers, compiled into the cffi extension. */
#ifndef AIOXDP_NATIVE_H
#define AIOXDP_NATIVE_H

/* Defined by cffi (extern "Python+C"): receives one formatted libbpf line. */
void aioxdp_on_libbpf_log(int level, const char *line);

/* Route libbpf's log lines to aioxdp_on_libbpf_log instead of stderr. */
void aioxdp_capture_libbpf_log(void);

#endif
