/*
 * aioxdp._udp_speedups: the per-datagram halves of a UDP endpoint, in C.
 *
 * A UDP endpoint whose protocol takes datagram_received runs two things once
 * per datagram: the loop that hands each payload and sender to the protocol,
 * and sendto. In Python, their frames and attribute loads cost more than the
 * work (a bytes object, a dictionary lookup, two list appends). Here:
 *
 *   SendQueue.sendto   a builtin method that the transport installs as its
 *                      instance's sendto: bytes to an address whose word is
 *                      cached are queued; anything else (not bytes, a new
 *                      address, too long, closing, keywords) goes to the
 *                      transport's Python sendto, which says what is wrong
 *                      or routes it. The queue keeps each datagram's word
 *                      and length in arrays of its own, which take() hands
 *                      over as bytes for the cffi call to read.
 *   deliver            the receive loop: a bytes object from the UMEM per
 *                      datagram, its sender's tuple from a dictionary, one
 *                      call of the protocol's datagram_received; an
 *                      Exception there is reported and the loop goes on.
 *   collect            the same datagrams as a list of (bytes, sender), for
 *                      a protocol that iterates a DatagramBatch.
 *
 * Any call out (a callback, a __hash__, an allocation that runs the garbage
 * collector and so a finalizer) may run Python that uses the queue again:
 * references are held across such calls, fields are emptied before what
 * they held is released, and the arrays are only written with no call out
 * between reading the length and writing.
 *
 * Stable ABI (3.11): one binary for every later CPython, as the cffi module.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
	PyObject_HEAD
	PyObject *cache;    /* dict: address tuple -> destination word (int) */
	PyObject *slow;     /* callable(data, addr): the Python sendto */
	PyObject *schedule; /* callable(): a flush at the end of this loop turn */
	PyObject *flush;    /* callable(): hand every queued datagram to C now */
	PyObject *data;     /* list of bytes; NULL: not initialised (or cleared) */
	PyObject *dests;    /* list of int: data[k] goes to dests[k] */
	uint64_t *words;    /* dests[k] as C reads it, for k < len(data) */
	uint32_t *lens;     /* len(data[k]) */
	Py_ssize_t capacity; /* entries words and lens hold; 0 when cleared */
	Py_ssize_t max_payload;
	Py_ssize_t max_payload6;
	Py_ssize_t flush_at;
	unsigned long long v6_bit;
	int closing;
	int scheduled;
} SendQueue;

static void queue_dealloc(SendQueue *q);

static int queue_traverse(SendQueue *q, visitproc visit, void *arg)
{
	Py_VISIT(q->cache);
	Py_VISIT(q->slow);
	Py_VISIT(q->schedule);
	Py_VISIT(q->flush);
	Py_VISIT(q->data);
	Py_VISIT(q->dests);
	/* a heap type: its instances keep it alive */
	Py_VISIT(Py_TYPE((PyObject *)q));
	return 0;
}

/* Empty every field first, then let go of what they held: a finalizer run
 * by a release finds a queue that refuses work, never a half-cleared one.
 * The arrays stay until dealloc (capacity 0 keeps them unwritten). */
static int queue_clear(SendQueue *q)
{
	PyObject *held[6] = { q->cache, q->slow, q->schedule, q->flush, q->data, q->dests };

	q->cache = q->slow = q->schedule = q->flush = q->data = q->dests = NULL;
	q->capacity = 0;
	for (int i = 0; i < 6; i++)
		Py_XDECREF(held[i]);
	return 0;
}

static void queue_dealloc(SendQueue *q)
{
	PyTypeObject *type = Py_TYPE((PyObject *)q);
	freefunc tp_free = (freefunc)PyType_GetSlot(type, Py_tp_free);

	PyObject_GC_UnTrack(q);
	queue_clear(q);
	PyMem_Free(q->words);
	PyMem_Free(q->lens);
	tp_free(q);
	Py_DECREF(type);
}

static int queue_init(SendQueue *q, PyObject *args, PyObject *kwargs)
{
	static char *names[] = { "cache",    "slow",	"schedule", "flush", "max_payload",
				 "max_payload6", "flush_at", "v6_bit",	 NULL };
	PyObject *cache, *slow, *schedule, *flush, *v6_obj, *data, *dests;
	PyObject *old[6];
	Py_ssize_t max_payload, max_payload6, flush_at;
	unsigned long long v6_bit;
	uint64_t *words, *old_words;
	uint32_t *lens, *old_lens;

	if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OOOnnnO!:SendQueue", names, &PyDict_Type,
					 &cache, &slow, &schedule, &flush, &max_payload,
					 &max_payload6, &flush_at, &PyLong_Type, &v6_obj))
		return -1;
	if (!PyCallable_Check(slow) || !PyCallable_Check(schedule) || !PyCallable_Check(flush)) {
		PyErr_SetString(PyExc_TypeError, "SendQueue: slow, schedule and flush must be callable");
		return -1;
	}
	/* the fast path's one comparison for most datagrams needs max_payload6 the smaller */
	if (max_payload6 < 0 || max_payload < max_payload6 || max_payload > 0xffff) {
		PyErr_SetString(PyExc_ValueError,
				"SendQueue: needs 0 <= max_payload6 <= max_payload <= 65535");
		return -1;
	}
	if (flush_at < 1 || flush_at > 0xffff) {
		PyErr_SetString(PyExc_ValueError, "SendQueue: flush_at must be 1..65535");
		return -1;
	}
	v6_bit = PyLong_AsUnsignedLongLong(v6_obj); /* OverflowError: negative or past 64 bits */
	if (v6_bit == (unsigned long long)-1 && PyErr_Occurred())
		return -1;
	words = PyMem_Calloc((size_t)flush_at, sizeof(*words));
	lens = PyMem_Calloc((size_t)flush_at, sizeof(*lens));
	data = PyList_New(0);
	dests = data ? PyList_New(0) : NULL;
	if (!words || !lens || !dests) {
		PyMem_Free(words);
		PyMem_Free(lens);
		Py_XDECREF(data);
		if (!PyErr_Occurred())
			PyErr_NoMemory();
		return -1;
	}
	/* __init__ again: the new values go in first, the old ones after */
	old[0] = q->cache;
	old[1] = q->slow;
	old[2] = q->schedule;
	old[3] = q->flush;
	old[4] = q->data;
	old[5] = q->dests;
	old_words = q->words;
	old_lens = q->lens;
	Py_INCREF(cache);
	Py_INCREF(slow);
	Py_INCREF(schedule);
	Py_INCREF(flush);
	q->cache = cache;
	q->slow = slow;
	q->schedule = schedule;
	q->flush = flush;
	q->data = data;
	q->dests = dests;
	q->words = words;
	q->lens = lens;
	q->capacity = flush_at;
	q->max_payload = max_payload;
	q->max_payload6 = max_payload6;
	q->flush_at = flush_at;
	q->v6_bit = v6_bit;
	q->closing = 0;
	q->scheduled = 0;
	PyMem_Free(old_words);
	PyMem_Free(old_lens);
	for (int i = 0; i < 6; i++)
		Py_XDECREF(old[i]);
	return 0;
}

static int queue_ready(SendQueue *q)
{
	if (!q->data) {
		PyErr_SetString(PyExc_RuntimeError, "SendQueue: __init__ has not run");
		return 0;
	}
	return 1;
}

/* callable(), the callable held while it runs (it may drop the queue's reference) */
static PyObject *call_noargs(PyObject *callable)
{
	PyObject *result;

	Py_INCREF(callable);
	result = PyObject_CallNoArgs(callable);
	Py_DECREF(callable);
	return result;
}

/* Queue data for word; flush or schedule as the queue asks. New reference to
 * None, or NULL with an exception set. */
static PyObject *queue_push(SendQueue *q, PyObject *data, PyObject *word)
{
	PyObject *result;
	Py_ssize_t n, len = PyBytes_Size(data);
	unsigned long long w = PyLong_AsUnsignedLongLong(word);

	if (w == (unsigned long long)-1 && PyErr_Occurred())
		return NULL;
	if (len < 0)
		return NULL;
	if (len > 0xffff) {
		PyErr_Format(PyExc_ValueError, "data: %zd bytes, more than a datagram holds", len);
		return NULL;
	}
	if (!queue_ready(q))
		return NULL;
	n = PyList_Size(q->data);
	if (n >= q->capacity) {
		/* only after a flush that raised: try once more, never write past */
		result = call_noargs(q->flush);
		if (!result)
			return NULL;
		Py_DECREF(result);
		if (!queue_ready(q))
			return NULL;
		n = PyList_Size(q->data);
		if (n >= q->capacity) {
			PyErr_SetString(PyExc_BufferError, "SendQueue: full, and a flush did not empty it");
			return NULL;
		}
	}
	/* from here to the array writes nothing runs Python: a list append
	 * only reallocates, and allocates no object the collector tracks */
	if (PyList_Append(q->data, data) < 0)
		return NULL;
	if (PyList_Append(q->dests, word) < 0) {
		/* keep the two lists the same length */
		PyObject *err_type, *err_value, *err_tb;

		PyErr_Fetch(&err_type, &err_value, &err_tb);
		PyList_SetSlice(q->data, n, n + 1, NULL);
		PyErr_Restore(err_type, err_value, err_tb);
		return NULL;
	}
	q->words[n] = w;
	q->lens[n] = (uint32_t)len;
	if (n + 1 >= q->flush_at) {
		result = call_noargs(q->flush);
	} else if (!q->scheduled) {
		q->scheduled = 1;
		result = call_noargs(q->schedule);
		if (!result)
			q->scheduled = 0; /* none is due: the next datagram asks again */
	} else {
		Py_RETURN_NONE;
	}
	if (!result)
		return NULL;
	Py_DECREF(result);
	Py_RETURN_NONE;
}

static PyObject *call_slow(SendQueue *q, PyObject *const *args, Py_ssize_t nargs,
			   PyObject *kwnames)
{
	PyObject *tuple, *kwargs = NULL, *slow, *result;
	Py_ssize_t i, nkw = kwnames ? PyTuple_Size(kwnames) : 0;

	tuple = PyTuple_New(nargs);
	if (!tuple)
		return NULL;
	for (i = 0; i < nargs; i++) {
		Py_INCREF(args[i]);
		PyTuple_SetItem(tuple, i, args[i]); /* steals */
	}
	if (nkw) {
		kwargs = PyDict_New();
		if (!kwargs) {
			Py_DECREF(tuple);
			return NULL;
		}
		for (i = 0; i < nkw; i++) {
			if (PyDict_SetItem(kwargs, PyTuple_GetItem(kwnames, i), args[nargs + i]) < 0) {
				Py_DECREF(tuple);
				Py_DECREF(kwargs);
				return NULL;
			}
		}
	}
	slow = q->slow; /* read after the allocations above, which may run Python */
	if (!slow) {
		Py_DECREF(tuple);
		Py_XDECREF(kwargs);
		return queue_ready(q) ? PyErr_Format(PyExc_RuntimeError, "SendQueue: cleared") : NULL;
	}
	Py_INCREF(slow); /* it may re-initialise the queue while it runs */
	result = PyObject_Call(slow, tuple, kwargs);
	Py_DECREF(slow);
	Py_DECREF(tuple);
	Py_XDECREF(kwargs);
	return result;
}

/* Is addr shaped as the Python sendto takes it: (host, port) or (host, port,
 * flowinfo, scope_id), the numbers exact ints? A dict finds 7.0 or False
 * under 7 and 0, so the cache alone does not say. */
static int plain_address(PyObject *addr)
{
	Py_ssize_t size;

	if (!PyTuple_CheckExact(addr))
		return 0;
	size = PyTuple_Size(addr);
	if (size != 2 && size != 4)
		return 0;
	for (Py_ssize_t i = 1; i < size; i++) {
		if (!PyLong_CheckExact(PyTuple_GetItem(addr, i)))
			return 0;
	}
	return 1;
}

/* sendto(data, addr): the fast path of DatagramTransport.sendto. It takes
 * bytes to an address whose word is cached (so it was checked when cached),
 * within the payload bound of the word's family; everything else goes to
 * the Python sendto. */
static PyObject *queue_sendto(SendQueue *q, PyObject *const *args, Py_ssize_t nargs,
			      PyObject *kwnames)
{
	PyObject *data, *addr, *cache, *word, *result;
	Py_ssize_t len;

	if (!queue_ready(q))
		return NULL;
	if (kwnames || nargs != 2 || q->closing)
		return call_slow(q, args, nargs, kwnames);
	data = args[0];
	addr = args[1];
	if (!PyBytes_CheckExact(data) || !plain_address(addr))
		return call_slow(q, args, nargs, kwnames);
	cache = q->cache;
	Py_INCREF(cache); /* the host's __hash__ or __eq__ may re-initialise the queue */
	word = PyDict_GetItemWithError(cache, addr); /* borrowed */
	Py_XINCREF(word);
	Py_DECREF(cache);
	if (!word) {
		if (PyErr_Occurred()) {
			if (!PyErr_ExceptionMatches(PyExc_TypeError))
				return NULL;
			PyErr_Clear(); /* unhashable: the Python sendto says what is wrong */
		}
		return call_slow(q, args, nargs, kwnames);
	}
	len = PyBytes_Size(data);
	if (len > q->max_payload6) {
		/* what fits IPv6 fits IPv4: only a longer one needs the word's family */
		unsigned long long w = PyLong_AsUnsignedLongLong(word);

		if (w == (unsigned long long)-1 && PyErr_Occurred()) {
			Py_DECREF(word);
			return NULL;
		}
		if (len > q->max_payload || (w & q->v6_bit)) {
			Py_DECREF(word);
			return call_slow(q, args, nargs, kwnames);
		}
	}
	result = queue_push(q, data, word);
	Py_DECREF(word);
	return result;
}

static PyObject *queue_append(SendQueue *q, PyObject *const *args, Py_ssize_t nargs)
{
	if (!queue_ready(q))
		return NULL;
	if (nargs != 2) {
		PyErr_Format(PyExc_TypeError, "append: expected 2 arguments (data, word), got %zd",
			     nargs);
		return NULL;
	}
	if (!PyBytes_CheckExact(args[0]) || !PyLong_CheckExact(args[1])) {
		PyErr_SetString(PyExc_TypeError, "append: expected (bytes, int)");
		return NULL;
	}
	return queue_push(q, args[0], args[1]);
}

/* take() -> (data, words, word_array, len_array): the queued datagrams, the
 * queue left empty. The arrays are copies (bytes: uint64_t and uint32_t per
 * datagram, native order), so a datagram queued meanwhile cannot change
 * what C reads for these. */
static PyObject *queue_take(SendQueue *q, PyObject *unused)
{
	PyObject *data, *dests, *words, *lens, *old_data, *old_dests, *result;
	Py_ssize_t n;

	(void)unused;
	if (!queue_ready(q))
		return NULL;
	/* these may run the collector, and so a finalizer that queues more:
	 * the length is read after them */
	data = PyList_New(0);
	dests = data ? PyList_New(0) : NULL;
	if (!dests) {
		Py_XDECREF(data);
		return NULL;
	}
	if (!queue_ready(q)) {
		Py_DECREF(data);
		Py_DECREF(dests);
		return NULL;
	}
	n = PyList_Size(q->data);
	if (n > q->capacity)
		n = q->capacity; /* cannot happen: push never writes past */
	words = PyBytes_FromStringAndSize((const char *)q->words, n * (Py_ssize_t)sizeof(uint64_t));
	lens = words ? PyBytes_FromStringAndSize((const char *)q->lens,
						 n * (Py_ssize_t)sizeof(uint32_t))
		     : NULL;
	if (!lens) {
		Py_XDECREF(words);
		Py_DECREF(data);
		Py_DECREF(dests);
		return NULL;
	}
	/* bytes are not tracked by the collector: nothing ran since n was read */
	old_data = q->data;
	old_dests = q->dests;
	q->data = data;
	q->dests = dests;
	result = PyTuple_Pack(4, old_data, old_dests, words, lens);
	Py_DECREF(old_data);
	Py_DECREF(old_dests);
	Py_DECREF(words);
	Py_DECREF(lens);
	return result;
}

static Py_ssize_t queue_len(SendQueue *q)
{
	return q->data ? PyList_Size(q->data) : 0;
}

static PyObject *get_flag(SendQueue *q, void *which)
{
	return PyBool_FromLong(which ? q->scheduled : q->closing);
}

static int set_flag(SendQueue *q, PyObject *value, void *which)
{
	int on;

	if (!value) {
		PyErr_SetString(PyExc_AttributeError, "cannot delete this flag");
		return -1;
	}
	on = PyObject_IsTrue(value);
	if (on < 0)
		return -1;
	if (which)
		q->scheduled = on;
	else
		q->closing = on;
	return 0;
}

static PyMethodDef queue_methods[] = {
	{ "sendto", (PyCFunction)(void (*)(void))queue_sendto, METH_FASTCALL | METH_KEYWORDS,
	  "sendto(data, addr): queue data for a cached address, else the Python sendto" },
	{ "append", (PyCFunction)(void (*)(void))queue_append, METH_FASTCALL,
	  "append(data, word): queue data for a destination word already found" },
	{ "take", (PyCFunction)queue_take, METH_NOARGS,
	  "take() -> (data, words, word_array, len_array): every queued datagram, the queue "
	  "left empty; the arrays are bytes of uint64_t and uint32_t, native order" },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef queue_getset[] = {
	{ "closing", (getter)get_flag, (setter)set_flag,
	  "sendto hands everything to the Python sendto (which drops and counts)", NULL },
	{ "scheduled", (getter)get_flag, (setter)set_flag,
	  "a flush is due (or a batch is being delivered): no new one is scheduled", (void *)1 },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyType_Slot queue_slots[] = {
	{ Py_tp_doc, "SendQueue(cache, slow, schedule, flush, max_payload, max_payload6, flush_at, "
		     "v6_bit): datagrams queued by sendto, for one call into C" },
	{ Py_tp_new, PyType_GenericNew },
	{ Py_tp_init, queue_init },
	{ Py_tp_dealloc, queue_dealloc },
	{ Py_tp_traverse, queue_traverse },
	{ Py_tp_clear, queue_clear },
	{ Py_tp_methods, queue_methods },
	{ Py_tp_getset, queue_getset },
	{ Py_sq_length, queue_len },
	{ 0, NULL },
};

static PyType_Spec queue_spec = {
	.name = "aioxdp._udp_speedups.SendQueue",
	.basicsize = sizeof(SendQueue),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
	.slots = queue_slots,
};

/* The (host, port) tuple of a sender, by C's word for it: the last one
 * again (a flow's datagrams come together), else known[word], else
 * unknown(word). New reference, or NULL with an exception set. */
static PyObject *sender_of(uint64_t key, PyObject *known, PyObject *unknown, uint64_t *last_key,
			   PyObject **last_addr)
{
	PyObject *key_obj, *addr;

	if (*last_addr && key == *last_key) {
		Py_INCREF(*last_addr);
		return *last_addr;
	}
	key_obj = PyLong_FromUnsignedLongLong(key);
	if (!key_obj)
		return NULL;
	addr = PyDict_GetItemWithError(known, key_obj); /* borrowed */
	if (addr) {
		Py_INCREF(addr);
	} else if (!PyErr_Occurred()) {
		addr = PyObject_CallFunctionObjArgs(unknown, key_obj, NULL);
	}
	Py_DECREF(key_obj);
	if (addr) {
		Py_INCREF(addr);
		Py_XDECREF(*last_addr);
		*last_addr = addr;
		*last_key = key;
	}
	return addr;
}

/* An Exception from the protocol goes to failed(exc), and delivery goes on;
 * anything else (KeyboardInterrupt, SystemExit) ends it. 0, or -1 with the
 * exception set. */
static int report(PyObject *failed)
{
	PyObject *type, *value, *tb, *result;

	if (!PyErr_ExceptionMatches(PyExc_Exception))
		return -1;
	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	if (tb && value)
		PyException_SetTraceback(value, tb);
	if (!value) { /* cannot happen once normalised */
		Py_XDECREF(type);
		Py_XDECREF(tb);
		PyErr_SetString(PyExc_SystemError, "deliver: an exception without a value");
		return -1;
	}
	result = PyObject_CallFunctionObjArgs(failed, value, NULL);
	if (!result) {
		/* failed() raised: its exception goes on, the protocol's as its context */
		PyObject *type2, *value2, *tb2;

		PyErr_Fetch(&type2, &value2, &tb2);
		PyErr_NormalizeException(&type2, &value2, &tb2);
		if (value2 && value2 != value) {
			Py_INCREF(value);
			PyException_SetContext(value2, value); /* steals */
		}
		PyErr_Restore(type2, value2, tb2);
	}
	Py_XDECREF(type);
	Py_DECREF(value);
	Py_XDECREF(tb);
	if (!result)
		return -1;
	Py_DECREF(result);
	return 0;
}

/* A batch's valid datagrams as C's flatten wrote them: three words each in
 * meta (payload start and end in the UMEM, sender key). The UMEM's buffer is
 * held while they are read: it stays mapped even if the protocol closes the
 * interface meanwhile (mmap.close refuses, and unmaps with the last view). */
struct datagrams {
	Py_buffer umem, meta;
	Py_ssize_t count;
	PyObject *known, *unknown; /* borrowed: the caller's arguments */
	uint64_t last_key;
	PyObject *last_addr;
};

/* args: umem, meta, count, known, unknown. 0, or -1 with an exception set
 * and nothing held. */
static int datagrams_open(struct datagrams *d, PyObject *const *args, const char *who)
{
	memset(d, 0, sizeof(*d));
	d->known = args[3];
	d->unknown = args[4];
	if (!PyDict_Check(d->known) || !PyCallable_Check(d->unknown)) {
		PyErr_Format(PyExc_TypeError, "%s: known must be a dict, unknown a callable", who);
		return -1;
	}
	d->count = PyLong_AsSsize_t(args[2]);
	if (d->count == -1 && PyErr_Occurred())
		return -1;
	if (PyObject_GetBuffer(args[0], &d->umem, PyBUF_SIMPLE) < 0)
		return -1;
	if (PyObject_GetBuffer(args[1], &d->meta, PyBUF_SIMPLE) < 0) {
		PyBuffer_Release(&d->umem);
		return -1;
	}
	if (d->count < 0 || d->count > d->meta.len / 24) {
		PyErr_Format(PyExc_ValueError, "%s: count %zd, but meta holds %zd datagrams", who,
			     d->count, d->meta.len / 24);
		PyBuffer_Release(&d->umem);
		PyBuffer_Release(&d->meta);
		return -1;
	}
	return 0;
}

static void datagrams_close(struct datagrams *d)
{
	Py_CLEAR(d->last_addr);
	PyBuffer_Release(&d->umem);
	PyBuffer_Release(&d->meta);
}

/* The i-th datagram (i < count): new references to its payload as bytes and
 * to its sender. 0, or -1 with an exception set and nothing returned. */
static int datagrams_read(struct datagrams *d, Py_ssize_t i, PyObject **data, PyObject **addr)
{
	const unsigned char *at = (const unsigned char *)d->meta.buf + 24 * i;
	uint64_t start, end, key;

	/* with memcpy: meta may be at any alignment */
	memcpy(&start, at, 8);
	memcpy(&end, at + 8, 8);
	memcpy(&key, at + 16, 8);
	if (start > end || end > (uint64_t)d->umem.len) {
		PyErr_Format(PyExc_ValueError, "datagram %zd spans %llu..%llu, outside the UMEM", i,
			     (unsigned long long)start, (unsigned long long)end);
		return -1;
	}
	*addr = sender_of(key, d->known, d->unknown, &d->last_key, &d->last_addr);
	if (!*addr)
		return -1;
	*data = PyBytes_FromStringAndSize((const char *)d->umem.buf + start,
					  (Py_ssize_t)(end - start));
	if (!*data) {
		Py_CLEAR(*addr);
		return -1;
	}
	return 0;
}

/* deliver(queue, umem, meta, count, known, unknown, receive, failed) -> int */
static PyObject *deliver(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
	PyObject *queue, *receive, *failed;
	struct datagrams d;
	Py_ssize_t i, delivered = 0;

	(void)module;
	if (nargs != 8) {
		PyErr_Format(PyExc_TypeError,
			     "deliver(queue, umem, meta, count, known, unknown, receive, failed): "
			     "8 arguments, got %zd",
			     nargs);
		return NULL;
	}
	queue = args[0];
	receive = args[6];
	failed = args[7];
	/* by its dealloc: the module's name SendQueue can be rebound, this cannot */
	if (PyType_GetSlot(Py_TYPE(queue), Py_tp_dealloc) != (void *)queue_dealloc) {
		PyErr_SetString(PyExc_TypeError, "deliver: queue must be a SendQueue");
		return NULL;
	}
	if (!PyCallable_Check(receive) || !PyCallable_Check(failed)) {
		PyErr_SetString(PyExc_TypeError, "deliver: receive and failed must be callables");
		return NULL;
	}
	if (datagrams_open(&d, args + 1, "deliver") < 0)
		return NULL;
	for (i = 0; i < d.count; i++) {
		PyObject *data, *addr, *result;

		if (((SendQueue *)queue)->closing)
			break; /* closed by the protocol: no more, as asyncio's transports */
		if (datagrams_read(&d, i, &data, &addr) < 0) {
			datagrams_close(&d);
			return NULL;
		}
		result = PyObject_CallFunctionObjArgs(receive, data, addr, NULL);
		Py_DECREF(data);
		Py_DECREF(addr);
		if (result) {
			Py_DECREF(result);
		} else if (report(failed) < 0) {
			datagrams_close(&d);
			return NULL;
		}
		delivered++;
	}
	datagrams_close(&d);
	return PyLong_FromSsize_t(delivered);
}

/* collect(umem, meta, count, known, unknown) -> list of (payload, sender) */
static PyObject *collect(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
	struct datagrams d;
	PyObject *out;

	(void)module;
	if (nargs != 5) {
		PyErr_Format(PyExc_TypeError,
			     "collect(umem, meta, count, known, unknown): 5 arguments, got %zd", nargs);
		return NULL;
	}
	if (datagrams_open(&d, args, "collect") < 0)
		return NULL;
	out = PyList_New(0);
	for (Py_ssize_t i = 0; out && i < d.count; i++) {
		PyObject *data, *addr, *pair;

		if (datagrams_read(&d, i, &data, &addr) < 0) {
			Py_CLEAR(out);
			break;
		}
		pair = PyTuple_Pack(2, data, addr);
		Py_DECREF(data);
		Py_DECREF(addr);
		if (!pair || PyList_Append(out, pair) < 0)
			Py_CLEAR(out);
		Py_XDECREF(pair);
	}
	datagrams_close(&d);
	return out;
}

static PyMethodDef module_methods[] = {
	{ "deliver", (PyCFunction)(void (*)(void))deliver, METH_FASTCALL,
	  "deliver(queue, umem, meta, count, known, unknown, receive, failed) -> int\n\n"
	  "For each of count datagrams (three words each in meta: payload start and end in\n"
	  "umem, sender key), receive(payload bytes, sender); the sender is known[key] or\n"
	  "unknown(key). An Exception from receive goes to failed(exc). Stops when queue is\n"
	  "closing; returns how many were delivered." },
	{ "collect", (PyCFunction)(void (*)(void))collect, METH_FASTCALL,
	  "collect(umem, meta, count, known, unknown) -> list\n\n"
	  "The same datagrams as (payload bytes, sender) pairs, in order." },
	{ NULL, NULL, 0, NULL },
};

static int module_exec(PyObject *module)
{
	PyObject *type = PyType_FromSpec(&queue_spec);

	if (!type)
		return -1;
	if (PyModule_AddObject(module, "SendQueue", type) < 0) {
		Py_DECREF(type);
		return -1;
	}
	return 0;
}

static PyModuleDef_Slot module_slots[] = {
	{ Py_mod_exec, module_exec },
	{ 0, NULL },
};

static struct PyModuleDef module_def = {
	PyModuleDef_HEAD_INIT,
	.m_name = "aioxdp._udp_speedups",
	.m_doc = "A UDP endpoint's per-datagram receive loop and sendto, in C.",
	.m_size = 0,
	.m_methods = module_methods,
	.m_slots = module_slots,
};

PyMODINIT_FUNC PyInit__udp_speedups(void)
{
	return PyModuleDef_Init(&module_def);
}
