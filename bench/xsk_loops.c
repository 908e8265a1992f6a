/* C reference loops over aioxdp's XSK core, for benchmarks only: the same
 * socket and the same ring helpers as the Python path, with no Python in
 * the loop. Built by bench/native.py into a shared object used via ctypes. */
#include <poll.h>
#include <time.h>

#include "../aioxdp/_native/xsk_core.c"

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
