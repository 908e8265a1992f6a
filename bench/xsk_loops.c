/* C reference loops over aioxdp's XSK core, for benchmarks only: the same
 * socket and the same ring helpers as the Python path, with no Python in
 * the loop. Built by bench/native.py into a shared object used via ctypes. */
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>

#include "../aioxdp/_native/xsk_core.c"
#include "../aioxdp/_native/echo.c"
#include "../aioxdp/_native/parse.c"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Send copies of one frame for `seconds`, `batch` frames per flush. */
uint64_t bench_blast(struct aioxdp_xsk *x, const void *frame, uint32_t len, uint32_t batch,
		     double seconds)
{
	double end = now() + seconds;
	uint64_t sent = 0;

	while (now() < end) {
		uint32_t queued = 0;

		while (queued < batch && aioxdp_xsk_send_copy(x, frame, len) == 0)
			queued++;
		sent += queued;
		if (aioxdp_xsk_flush(x) < 0)
			break;
		if (!queued) {
			struct pollfd p = { .fd = x->fd, .events = POLLOUT };

			poll(&p, 1, 1);
		}
	}
	while (aioxdp_xsk_flush(x) > 0)
		;
	return sent;
}

/* Receive for `seconds`, `batch` descriptors per drain, as the Python path does;
 * `spin` polls the ring without sleeping in poll(). */
uint64_t bench_drain(struct aioxdp_xsk *x, uint32_t batch, double seconds, int spin)
{
	struct aioxdp_desc descs[4096];
	double end = now() + seconds;
	uint64_t got = 0;

	if (batch > 4096)
		batch = 4096;
	while (now() < end) {
		struct pollfd p = { .fd = x->fd, .events = POLLIN };
		uint32_t n;

		if (!spin && poll(&p, 1, 10) <= 0)
			continue;
		do {
			n = aioxdp_xsk_rx(x, descs, batch);
			aioxdp_xsk_refill(x);
			aioxdp_xsk_release(x, descs, n);
			aioxdp_xsk_refill(x);
			got += n;
		} while (n == batch);
	}
	return got;
}

/* Echo round trips with `window` requests in flight, as aioxdp.ping floods,
 * over the same C helpers; returns the replies that came within the time. */
uint64_t bench_echo(struct aioxdp_xsk *x, const uint8_t *tmpl, uint32_t len, uint16_t ident,
		    uint32_t count, uint32_t window, double seconds)
{
	static struct aioxdp_echo_reply results[256];
	struct aioxdp_desc descs[256];
	double end = now() + seconds;
	uint64_t sent = 0, got = 0;

	while (got < count && now() < end) {
		uint64_t in_flight = sent - got;
		struct pollfd p = { .fd = x->fd, .events = POLLIN };
		uint32_t n;

		if (sent < count && in_flight < window) {
			uint32_t want = window - (uint32_t)in_flight;

			if (want > count - sent)
				want = (uint32_t)(count - sent);
			sent += aioxdp_echo_send(x, tmpl, len, (uint16_t)(sent + 1), want, NULL);
			aioxdp_xsk_flush(x);
		}
		if (poll(&p, 1, 10) <= 0)
			continue;
		do {
			n = aioxdp_xsk_rx(x, descs, 256);
			aioxdp_xsk_refill(x);
			aioxdp_echo_parse(x, descs, n, ident, results);
			for (uint32_t i = 0; i < n; i++)
				got += results[i].status == AIOXDP_ECHO_OK;
			aioxdp_xsk_release(x, descs, n);
		} while (n == 256);
	}
	return got;
}

/* A paced ping over the same socket: one probe every `interval_ns`, the
 * time between slept (as aioxdp does) or, with `spin`, spent reading the
 * clock (as iputils spends it at short intervals, in syscalls); each
 * awaited up to 1 s. Stores each round trip in microseconds, send stamp to
 * the forwarder's receive stamp, as aioxdp.ping measures it. Returns the
 * replies seen. */
uint32_t bench_paced_echo(struct aioxdp_xsk *x, const uint8_t *tmpl, uint32_t len, uint16_t ident,
			  uint32_t count, int64_t interval_ns, int spin, double *rtts_us)
{
	struct aioxdp_echo_reply results[16];
	struct aioxdp_desc descs[16];
	struct timespec due;
	uint32_t got = 0;

	clock_gettime(CLOCK_MONOTONIC, &due);
	for (uint32_t i = 0; i < count; i++) {
		int64_t sent_ns = 0;
		int answered = 0;

		due.tv_nsec += interval_ns;
		while (due.tv_nsec >= 1000000000L) {
			due.tv_nsec -= 1000000000L;
			due.tv_sec++;
		}
		if (spin) {
			int64_t due_ns = due.tv_sec * 1000000000LL + due.tv_nsec;

			while (aioxdp_now_ns() < due_ns)
				;
		} else {
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL);
		}
		if (aioxdp_echo_send(x, tmpl, len, (uint16_t)(i + 1), 1, &sent_ns) != 1)
			break;
		for (int tries = 0; tries < 100 && !answered; tries++) {
			struct pollfd p = { .fd = x->fd, .events = POLLIN };
			uint32_t n;

			aioxdp_xsk_complete(x);
			if (poll(&p, 1, 10) <= 0)
				continue;
			n = aioxdp_xsk_rx(x, descs, 16);
			aioxdp_xsk_refill(x);
			aioxdp_echo_parse(x, descs, n, ident, results);
			for (uint32_t j = 0; j < n; j++)
				if (results[j].status == AIOXDP_ECHO_OK && results[j].seq == (uint16_t)(i + 1)) {
					rtts_us[got++] = (results[j].recv_ns - sent_ns) / 1e3;
					answered = 1;
				}
			aioxdp_xsk_release(x, descs, n);
			aioxdp_xsk_refill(x);
		}
	}
	return got;
}

/* A UDP load client: keeps `window` copies of one request in flight and
 * counts whatever comes back; a quiet 10 ms forgives the ones lost. */
uint64_t bench_udp_pump(struct aioxdp_xsk *x, const uint8_t *frame, uint32_t len, uint32_t window,
			double seconds)
{
	struct aioxdp_desc descs[256];
	double end = now() + seconds;
	uint64_t sent = 0, got = 0;

	while (now() < end) {
		struct pollfd p = { .fd = x->fd, .events = POLLIN };
		uint32_t n;

		while (sent - got < window && aioxdp_xsk_send_copy(x, frame, len) == 0)
			sent++;
		aioxdp_xsk_flush(x);
		if (poll(&p, 1, 10) <= 0) {
			sent = got; /* nothing for 10 ms: those are lost */
			continue;
		}
		do {
			n = aioxdp_xsk_rx(x, descs, 256);
			aioxdp_xsk_refill(x);
			aioxdp_xsk_release(x, descs, n);
			aioxdp_xsk_refill(x);
			got += n;
		} while (n == 256);
		if (got > sent)
			sent = got;
	}
	return got;
}

/* The kernel's own traffic generator: BPF_PROG_RUN with
 * BPF_F_TEST_XDP_LIVE_FRAMES runs a two-instruction XDP program (XDP_TX) on
 * ``frame`` ``repeat`` times per call, and every frame goes out of
 * ``ifindex`` (the veth in this namespace), to its peer. No socket, no
 * copy to user space.
 *
 * Each call puts its program in the kernel's XDP dispatcher and takes it
 * out again (bpf_prog_test_run_xdp -> bpf_dispatcher_change_prog), and
 * each change waits for an RCU grace period: one caller sat in
 * synchronize_rcu more than half the time, and offered in bursts the
 * receivers could not use. ``threads`` callers share the work, so one
 * generates while the others wait. Returns frames offered in
 * ``seconds``, or 0 if the kernel refused (errno says). */
struct live_caller {
	pthread_t thread;
	int fd;
	struct xdp_md ctx;
	const void *frame;
	uint32_t len;
	double end;
	uint64_t offered;
	int err;
};

static void *live_caller_run(void *arg)
{
	struct live_caller *c = arg;
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = c->frame, .data_size_in = c->len,
		    .ctx_in = &c->ctx, .ctx_size_in = sizeof(c->ctx), .repeat = 1 << 16,
		    .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = 64);

	while (now() < c->end) {
		if (bpf_prog_test_run_opts(c->fd, &opts)) {
			c->err = errno;
			break;
		}
		c->offered += opts.repeat;
	}
	return NULL;
}

uint64_t bench_live_blast(int ifindex, const void *frame, uint32_t len, double seconds,
			  uint32_t threads)
{
	struct bpf_insn prog[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_TX },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	struct live_caller callers[16];
	uint64_t offered = 0;
	uint32_t started = 0;
	int err = 0, fd;

	if (threads < 1 || threads > 16) {
		errno = EINVAL;
		return 0;
	}
	fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "aioxdp_gen", "GPL", prog, 2, NULL);
	if (fd < 0)
		return 0;
	for (uint32_t i = 0; i < threads; i++) {
		struct live_caller *c = &callers[i];

		memset(c, 0, sizeof(*c));
		c->fd = fd;
		c->ctx.data_end = len;
		c->ctx.ingress_ifindex = (uint32_t)ifindex;
		c->frame = frame;
		c->len = len;
		c->end = now() + seconds;
		err = pthread_create(&c->thread, NULL, live_caller_run, c);
		if (err)
			break;
		started++;
	}
	for (uint32_t i = 0; i < started; i++) {
		pthread_join(callers[i].thread, NULL);
		offered += callers[i].offered;
		if (callers[i].err)
			err = callers[i].err;
	}
	close(fd);
	if (err) {
		errno = err;
		return 0;
	}
	return offered;
}
