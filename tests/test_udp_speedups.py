"""aioxdp._udp_speedups, the C halves of a UDP endpoint's per-datagram path,
on its own: what SendQueue.sendto takes and what it hands to the Python
sendto, the arrays it fills for C, what deliver hands the protocol, and every
misuse refused by name, and Python that re-enters the queue from a
callback, a __hash__ or a finalizer. The witnesses are plain Python values
and the arrays read back with struct; references are counted with
sys.getrefcount, so a leaked or a stolen one shows. Run under
AddressSanitizer by make asan."""

from __future__ import annotations

import functools
import gc
import mmap
import struct
import sys
import weakref
from typing import Any

import pytest

from aioxdp._udp_speedups import SendQueue, collect, deliver

V6_BIT = 1 << 63
FLUSH_AT = 4


class Recorder:
    """The Python side of a queue: what reached the slow path, the schedules
    and the flushes (which take everything, as the transport's does)."""

    def __init__(self, flush_at: int = FLUSH_AT, max_payload: int = 100) -> None:
        self.cache: dict[tuple[Any, ...], int] = {}
        self.slow: list[tuple[Any, ...]] = []
        self.schedules = 0
        self.flushed: list[tuple[list[bytes], list[int], list[int], list[int]]] = []
        self.queue = SendQueue(
            cache=self.cache,
            slow=self.on_slow,
            schedule=self.on_schedule,
            flush=self.on_flush,
            max_payload=max_payload,
            max_payload6=max_payload - 20,
            flush_at=flush_at,
            v6_bit=V6_BIT,
        )

    def on_slow(self, *args: Any, **kwargs: Any) -> None:
        self.slow.append((args, kwargs))

    def on_schedule(self) -> None:
        self.schedules += 1

    def on_flush(self) -> None:
        self.flushed.append(unpacked(self.queue.take()))


def unpacked(taken: tuple[list[bytes], list[int], bytes, bytes]) -> Any:
    """take()'s arrays as lists of ints, read by struct (the witness)."""
    data, dests, words, lens = taken
    n = len(data)
    assert len(words) == 8 * n
    assert len(lens) == 4 * n
    return data, dests, list(struct.unpack(f"={n}Q", words)), list(struct.unpack(f"={n}I", lens))


def test_bytes_to_a_cached_address_are_queued_with_their_word_and_length() -> None:
    r = Recorder(flush_at=8)
    r.cache[("198.18.0.2", 53)] = 0x0001_C612_0002_0035
    r.cache[("2001:2::2", 53, 0, 0)] = V6_BIT | 5 << 16 | 53
    r.queue.sendto(b"one", ("198.18.0.2", 53))
    r.queue.sendto(b"", ("198.18.0.2", 53))
    r.queue.sendto(b"x" * 80, ("2001:2::2", 53, 0, 0))  # the IPv6 bound exactly
    assert r.slow == []
    assert r.schedules == 1  # once, until the flush it asked for clears it
    assert len(r.queue) == 3
    r.on_flush()
    data, dests, words, lens = r.flushed[0]
    assert data == [b"one", b"", b"x" * 80]
    assert dests == words == [0x0001_C612_0002_0035, 0x0001_C612_0002_0035, V6_BIT | 5 << 16 | 53]
    assert lens == [3, 0, 80]
    assert len(r.queue) == 0


def test_a_full_queue_is_flushed_as_the_last_datagram_goes_in() -> None:
    r = Recorder()
    r.cache[("198.18.0.2", 7)] = 7
    for i in range(2 * FLUSH_AT + 1):
        r.queue.sendto(b"%d" % i, ("198.18.0.2", 7))
    assert [f[0] for f in r.flushed] == [[b"0", b"1", b"2", b"3"], [b"4", b"5", b"6", b"7"]]
    assert [f[3] for f in r.flushed] == [[1, 1, 1, 1]] * 2
    assert unpacked(r.queue.take()) == ([b"8"], [7], [7], [1])


def test_while_scheduled_no_second_flush_is_scheduled() -> None:
    r = Recorder()
    r.cache[("198.18.0.2", 7)] = 7
    r.queue.scheduled = True  # a batch is being delivered
    r.queue.sendto(b"a", ("198.18.0.2", 7))
    assert r.schedules == 0
    assert r.queue.scheduled is True
    r.queue.scheduled = False
    r.queue.sendto(b"b", ("198.18.0.2", 7))
    assert r.schedules == 1
    assert r.queue.scheduled is True


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((bytearray(b"x"), ("198.18.0.2", 7)), {}),  # not bytes: the Python path copies
        ((memoryview(b"x"), ("198.18.0.2", 7)), {}),
        ((b"x", ("198.18.0.3", 7)), {}),  # not cached: routed in Python
        ((b"x", ("198.18.0.2", 7.0)), {}),  # 7.0 == 7 as a key, but not a port
        ((b"x", ("198.18.0.2", [7])), {}),  # unhashable
        ((b"x", ["198.18.0.2", 7]), {}),  # a list, not a tuple
        ((b"x", ("198.18.0.2",)), {}),
        ((b"x", None), {}),
        ((b"x",), {}),
        ((b"x", ("198.18.0.2", 7), "extra"), {}),
        ((b"x",), {"addr": ("198.18.0.2", 7)}),  # keywords: the Python signature
        ((b"x" * 101, ("198.18.0.2", 7)), {}),  # past max_payload
        ((b"x" * 81, ("2001:2::2", 7, 0, 0)), {}),  # past IPv6's, though within IPv4's
        ((b"x", ("2001:2::2", 7, 0.0, False)), {}),  # == (…, 0, 0) as a key: not ints
        ((b"x", ("2001:2::2", 7, 0)), {}),
    ],
)
def test_what_the_fast_path_does_not_take_goes_to_the_python_sendto_as_given(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    r = Recorder()
    r.cache[("198.18.0.2", 7)] = 7
    r.cache[("2001:2::2", 7, 0, 0)] = V6_BIT | 7
    r.queue.sendto(*args, **kwargs)
    assert r.slow == [(args, kwargs)]
    assert len(r.queue) == 0
    assert r.schedules == 0


def test_a_long_ipv4_datagram_within_ipv4s_bound_is_taken() -> None:
    r = Recorder()
    r.cache[("198.18.0.2", 7)] = 7
    r.queue.sendto(b"x" * 100, ("198.18.0.2", 7))
    assert r.slow == []
    assert len(r.queue) == 1


def test_when_closing_everything_goes_to_the_python_sendto() -> None:
    r = Recorder()
    r.cache[("198.18.0.2", 7)] = 7
    r.queue.closing = True
    r.queue.sendto(b"x", ("198.18.0.2", 7))
    assert len(r.slow) == 1
    assert len(r.queue) == 0


def test_a_hash_that_raises_other_than_typeerror_propagates() -> None:
    class Bad:
        def __hash__(self) -> int:
            raise ZeroDivisionError("hash")

    r = Recorder()
    with pytest.raises(ZeroDivisionError):
        r.queue.sendto(b"x", (Bad(), 7))
    assert r.slow == []
    assert len(r.queue) == 0


def test_an_exception_from_the_python_sendto_reaches_the_caller() -> None:
    def refuse(data: Any, addr: Any) -> None:
        raise ValueError(f"addr: bad {addr!r}")

    queue = SendQueue({}, refuse, lambda: None, lambda: None, 100, 80, FLUSH_AT, 0)
    with pytest.raises(ValueError, match="addr: bad"):
        queue.sendto(b"x", ("nowhere", 1))


def test_a_flush_that_raises_leaves_the_queue_bounded_and_whole() -> None:
    """The flush raises at FLUSH_AT: sendto says so, and the next datagram
    tries the flush again before it is written, never past the arrays."""
    r = Recorder()
    r.cache[("198.18.0.2", 7)] = 7
    failing = [True]

    def flush() -> None:
        if failing[0]:
            raise OSError("no frames")
        r.on_flush()

    r.queue = SendQueue(r.cache, r.on_slow, r.on_schedule, flush, 100, 80, FLUSH_AT, V6_BIT)
    for i in range(FLUSH_AT - 1):
        r.queue.sendto(b"%d" % i, ("198.18.0.2", 7))
    with pytest.raises(OSError, match="no frames"):
        r.queue.sendto(b"3", ("198.18.0.2", 7))
    assert len(r.queue) == FLUSH_AT
    with pytest.raises(OSError, match="no frames"):
        r.queue.sendto(b"4", ("198.18.0.2", 7))
    assert len(r.queue) == FLUSH_AT  # not written: the arrays hold FLUSH_AT
    failing[0] = False
    r.queue.sendto(b"4", ("198.18.0.2", 7))
    assert r.flushed[0][0] == [b"0", b"1", b"2", b"3"]
    assert r.flushed[0][3] == [1, 1, 1, 1]
    assert unpacked(r.queue.take()) == ([b"4"], [7], [7], [1])


def test_append_queues_a_word_found_elsewhere_and_checks_its_arguments() -> None:
    r = Recorder()
    r.queue.append(b"abc", 9)
    assert unpacked(r.queue.take()) == ([b"abc"], [9], [9], [3])
    bads: list[tuple[Any, ...]] = [
        (b"x",),
        (b"x", 1, 2),
        ("x", 1),
        (b"x", 1.0),
        (bytearray(b"x"), 1),
    ]
    for bad in bads:
        with pytest.raises(TypeError):
            r.queue.append(*bad)
    with pytest.raises(OverflowError):
        r.queue.append(b"x", -1)
    with pytest.raises(OverflowError):
        r.queue.append(b"x", 1 << 64)
    with pytest.raises(ValueError, match="more than a datagram holds"):
        r.queue.append(b"x" * 65536, 1)
    assert len(r.queue) == 0  # nothing refused was queued


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"cache": []}, TypeError),
        ({"slow": None}, TypeError),
        ({"schedule": 1}, TypeError),
        ({"flush": "x"}, TypeError),
        ({"max_payload": -1}, ValueError),
        ({"max_payload6": -1}, ValueError),
        ({"max_payload6": 101}, ValueError),  # IPv6's bound is the smaller
        ({"max_payload": 65536, "max_payload6": 80}, ValueError),
        ({"flush_at": 0}, ValueError),
        ({"flush_at": 65536}, ValueError),
        ({"flush_at": "4"}, TypeError),
        ({"v6_bit": -1}, OverflowError),
        ({"v6_bit": 1 << 64}, OverflowError),
        ({"v6_bit": 1.0}, TypeError),
    ],
)
def test_a_bad_argument_to_sendqueue_is_refused_by_name(
    change: dict[str, Any], error: type[Exception]
) -> None:
    kwargs: dict[str, Any] = {
        "cache": {},
        "slow": print,
        "schedule": print,
        "flush": print,
        "max_payload": 100,
        "max_payload6": 80,
        "flush_at": FLUSH_AT,
        "v6_bit": V6_BIT,
    }
    with pytest.raises(error):
        SendQueue(**{**kwargs, **change})


def test_an_uninitialised_queue_says_so() -> None:
    queue = SendQueue.__new__(SendQueue)
    with pytest.raises(RuntimeError, match="__init__"):
        queue.sendto(b"x", ("198.18.0.2", 7))
    with pytest.raises(RuntimeError, match="__init__"):
        queue.take()
    assert len(queue) == 0


def test_references_are_neither_leaked_nor_stolen() -> None:
    r = Recorder(flush_at=64)
    addr = ("198.18.0.2", 7)
    word = 1 << 40 | 7
    r.cache[addr] = word
    data = b"payload not interned"
    cache = r.cache  # a name: pytest keeps an attribute's value for its report
    cache_refs = sys.getrefcount(cache)
    base = sys.getrefcount(data), sys.getrefcount(addr), sys.getrefcount(word)
    for _ in range(10):
        r.queue.sendto(data, addr)
    assert sys.getrefcount(data) == base[0] + 10  # held by the queue's list
    r.queue.take()  # dropped at once: nobody keeps the lists
    assert (sys.getrefcount(data), sys.getrefcount(addr), sys.getrefcount(word)) == base
    for _ in range(3):
        r.queue.sendto(bytearray(data), addr)  # the slow path keeps its arguments
    r.slow.clear()
    assert (sys.getrefcount(data), sys.getrefcount(addr), sys.getrefcount(word)) == base
    assert sys.getrefcount(cache) == cache_refs


def test_a_queue_in_a_cycle_with_its_transport_is_collected() -> None:
    class Owner:
        def __init__(self) -> None:
            self.queue = SendQueue(
                {},
                self.slow,
                self.slow,
                self.slow,
                100,
                80,
                1,
                V6_BIT,
            )

        def slow(self, *args: Any) -> None:
            pass

    owner = Owner()
    gone = weakref.ref(owner)
    del owner
    gc.collect()
    assert gone() is None


# -- deliver ----------------------------------------------------------------


class Protocol:
    def __init__(self) -> None:
        self.got: list[tuple[bytes, Any]] = []
        self.failed: list[Exception] = []
        self.unknown: list[int] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append((data, addr))

    def on_unknown(self, key: int) -> tuple[str, int]:
        self.unknown.append(key)
        return (f"new-{key >> 16}", key & 0xFFFF)

    def on_failed(self, exc: Exception) -> None:
        self.failed.append(exc)


def meta_of(*triples: tuple[int, int, int]) -> memoryview:
    return memoryview(bytearray(b"".join(struct.pack("=3Q", *t) for t in triples)))


def plain_queue() -> SendQueue:
    return SendQueue({}, print, print, print, 100, 80, 1, V6_BIT)


def test_deliver_hands_each_payload_and_sender_to_the_protocol() -> None:
    umem = bytearray(b"....hello..world!!")
    known = {1 << 16 | 53: ("198.18.0.2", 53)}
    p = Protocol()
    meta = meta_of((4, 9, 1 << 16 | 53), (11, 16, 2 << 16 | 54), (16, 16, 1 << 16 | 53))
    n = deliver(plain_queue(), umem, meta, 3, known, p.on_unknown, p.datagram_received, p.on_failed)
    assert n == 3
    assert p.got == [
        (b"hello", ("198.18.0.2", 53)),
        (b"world", ("new-2", 54)),
        (b"", ("198.18.0.2", 53)),
    ]
    assert all(type(data) is bytes for data, _ in p.got)
    assert p.unknown == [2 << 16 | 54]
    assert p.got[0][1] is p.got[2][1] is known[1 << 16 | 53]  # the cached tuple itself


def test_deliver_reads_only_count_datagrams() -> None:
    p = Protocol()
    meta = meta_of((0, 1, 1), (1, 2, 1))
    known = {1: ("h", 1)}
    n = deliver(
        plain_queue(), b"ab", meta, 1, known, p.on_unknown, p.datagram_received, p.on_failed
    )
    assert n == 1
    assert p.got == [(b"a", ("h", 1))]


def test_an_exception_from_the_protocol_is_reported_and_the_batch_goes_on() -> None:
    p = Protocol()

    def receive(data: bytes, addr: Any) -> None:
        if data == b"b":
            raise ValueError("cannot handle b")
        p.got.append((data, addr))

    meta = meta_of((0, 1, 1), (1, 2, 1), (2, 3, 1))
    assert (
        deliver(plain_queue(), b"abc", meta, 3, {1: ("h", 1)}, p.on_unknown, receive, p.on_failed)
        == 3
    )
    assert [d for d, _ in p.got] == [b"a", b"c"]
    assert len(p.failed) == 1
    assert isinstance(p.failed[0], ValueError)
    # its traceback names the frame that raised
    tb = p.failed[0].__traceback__
    names = []
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert names[-1] == "receive"


def test_a_base_exception_from_the_protocol_ends_delivery() -> None:
    p = Protocol()

    def receive(data: bytes, addr: Any) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        deliver(
            plain_queue(),
            b"ab",
            meta_of((0, 1, 1), (1, 2, 1)),
            2,
            {1: ("h", 1)},
            p.on_unknown,
            receive,
            p.on_failed,
        )
    assert p.failed == []


def test_a_failing_report_ends_delivery_with_its_exception() -> None:
    def receive(data: bytes, addr: Any) -> None:
        raise ValueError("first")

    def failed(exc: Exception) -> None:
        raise RuntimeError("the handler broke")

    with pytest.raises(RuntimeError, match="the handler broke"):
        deliver(
            plain_queue(), b"a", meta_of((0, 1, 1)), 1, {}, Protocol().on_unknown, receive, failed
        )


def test_delivery_stops_once_the_queue_is_closing() -> None:
    queue = plain_queue()
    p = Protocol()

    def receive(data: bytes, addr: Any) -> None:
        p.got.append((data, addr))
        queue.closing = True  # the protocol closed its transport

    meta = meta_of((0, 1, 1), (1, 2, 1), (2, 3, 1))
    assert deliver(queue, b"abc", meta, 3, {1: ("h", 1)}, p.on_unknown, receive, p.on_failed) == 1
    assert p.got == [(b"a", ("h", 1))]


def test_the_umem_stays_mapped_while_delivery_reads_it() -> None:
    area = mmap.mmap(-1, 4096)
    area[:6] = b"abcdef"
    p = Protocol()
    refused = []

    def receive(data: bytes, addr: Any) -> None:
        p.got.append((data, addr))
        try:
            area.close()  # the interface closing under the protocol
        except BufferError:
            refused.append(True)

    meta = meta_of((0, 3, 1), (3, 6, 1))
    deliver(plain_queue(), area, meta, 2, {1: ("h", 1)}, p.on_unknown, receive, p.on_failed)
    assert [d for d, _ in p.got] == [b"abc", b"def"]
    assert refused == [True, True]
    area.close()


@pytest.mark.parametrize(
    ("meta", "count", "match"),
    [
        (meta_of((0, 5, 1)), 1, "outside the UMEM"),  # past its end
        (meta_of((3, 2, 1)), 1, "outside the UMEM"),  # end before start
        (meta_of((0, 1, 1)), 2, "meta holds 1"),
        (meta_of((0, 1, 1)), -1, "count -1"),
        (memoryview(bytearray(23)), 1, "meta holds 0"),
    ],
)
def test_deliver_checks_every_bound_before_it_reads(meta: Any, count: int, match: str) -> None:
    p = Protocol()
    with pytest.raises(ValueError, match=match):
        deliver(
            plain_queue(),
            b"abcd",
            meta,
            count,
            {1: ("h", 1)},
            p.on_unknown,
            p.datagram_received,
            p.on_failed,
        )
    assert p.got == []


@pytest.mark.parametrize(
    "change",
    [
        {0: object()},  # not a SendQueue
        {1: 5},  # no buffer
        {2: "meta"},
        {3: "1"},
        {4: []},  # known: not a dict
        {5: None},
        {6: None},
        {7: None},
    ],
)
def test_a_bad_argument_to_deliver_is_refused_by_name(change: dict[int, Any]) -> None:
    args: list[Any] = [
        plain_queue(),
        b"ab",
        meta_of((0, 1, 1)),
        1,
        {1: ("h", 1)},
        print,
        print,
        print,
    ]
    for at, value in change.items():
        args[at] = value
    with pytest.raises(TypeError):
        deliver(*args)
    with pytest.raises(TypeError, match="8 arguments"):
        deliver(*args[:7])


def test_deliver_neither_leaks_nor_steals_references() -> None:
    p = Protocol()
    known = {1: ("198.18.0.2", 53), 2: ("198.18.0.3", 53)}
    sender = known[1]
    base = sys.getrefcount(sender)
    # two bytes each: CPython shares the one-byte bytes objects
    meta = meta_of(*[(2 * i, 2 * i + 2, 1 + i % 2) for i in range(10)])
    deliver(
        plain_queue(),
        bytes(range(20)),
        meta,
        10,
        known,
        p.on_unknown,
        p.datagram_received,
        p.on_failed,
    )
    assert sys.getrefcount(sender) == base + 5  # held by p.got only
    payload = p.got[0][0]
    assert sys.getrefcount(payload) == 3  # p.got's tuple, this name, getrefcount's argument
    p.got.clear()
    assert sys.getrefcount(sender) == base
    assert sys.getrefcount(payload) == 2


# -- Python that re-enters the queue ------------------------------------------


def fresh_args(cache: dict[tuple[Any, ...], int] | None = None) -> tuple[Any, ...]:
    return (cache if cache is not None else {}, print, print, print, 100, 80, 4, V6_BIT)


def test_reinitialising_while_the_old_callables_finalize_is_safe() -> None:
    """__init__ again drops the old slow; its owner's __del__ uses the queue
    while the old values go: it finds the new ones, whole."""
    seen: list[Any] = []

    class Owner:
        def slow(self, *args: Any) -> None:
            pass

        def __del__(self) -> None:
            queue.sendto(b"x", ("198.18.0.2", 7))
            seen.append(len(queue))

    owner = Owner()
    queue = SendQueue({("198.18.0.2", 7): 7}, owner.slow, print, print, 100, 80, 4, V6_BIT)
    del owner
    queue.__init__(*fresh_args({("198.18.0.2", 7): 9}))  # type: ignore[misc]
    assert seen == [1]  # queued in the new queue
    assert unpacked(queue.take()) == ([b"x"], [9], [9], [1])


def test_a_hash_that_reinitialises_the_queue_does_not_free_the_cache_in_use() -> None:
    class Host(str):
        def __hash__(self) -> int:
            queue.__init__(*fresh_args())  # type: ignore[misc]  # drops the old cache
            return str.__hash__(self)

    queue = SendQueue(*fresh_args({("h", 7): 7}))
    queue.sendto(b"x", (Host("h"), 7))  # found in the old cache, queued in the new
    assert unpacked(queue.take()) == ([b"x"], [7], [7], [1])


def test_a_slow_path_that_reinitialises_the_queue_keeps_its_callable_alive() -> None:
    calls: list[Any] = []

    def slow(data: Any, addr: Any) -> None:
        queue.__init__(*fresh_args())  # type: ignore[misc]  # drops the last reference to slow
        calls.append(addr)

    queue = SendQueue({}, functools.lru_cache(maxsize=None)(slow), print, print, 100, 80, 4, 0)
    queue.sendto(b"x", ("not cached", 7))
    assert calls == [("not cached", 7)]


def test_what_take_hands_over_does_not_change_when_more_is_queued() -> None:
    """A datagram queued between take() and the C call (a finalizer, say)
    goes in the next flush; it cannot rewrite the taken words."""
    queue = SendQueue(*fresh_args({("alice", 7): 0xA, ("mallory", 7): 0xB}))
    queue.sendto(b"to alice", ("alice", 7))
    taken = queue.take()
    queue.sendto(b"to mallory, longer", ("mallory", 7))
    assert unpacked(taken) == ([b"to alice"], [0xA], [0xA], [8])
    assert unpacked(queue.take()) == ([b"to mallory, longer"], [0xB], [0xB], [18])


def test_a_finalizer_that_queues_during_take_is_in_this_take_or_the_next() -> None:
    queue = SendQueue(*fresh_args({("h", 7): 7}))

    class Finalised:
        def __del__(self) -> None:
            queue.sendto(b"late", ("h", 7))

    queue.sendto(b"first", ("h", 7))
    gc.disable()
    try:
        junk = Finalised()
        junk.cycle = junk  # type: ignore[attr-defined]
        del junk
        gc.set_threshold(1)  # the next tracked allocation (take's lists) collects
        taken = unpacked(queue.take())
    finally:
        gc.set_threshold(700)
        gc.enable()
    gc.collect()
    rest = unpacked(queue.take())
    together = (taken[0] + rest[0], taken[2] + rest[2], taken[3] + rest[3])
    assert together == ([b"first", b"late"], [7, 7], [5, 4])


def test_a_schedule_that_raises_leaves_no_flush_believed_due() -> None:
    def schedule() -> None:
        raise RuntimeError("Event loop is closed")

    queue = SendQueue({("h", 7): 7}, print, schedule, print, 100, 80, 4, 0)
    with pytest.raises(RuntimeError, match="closed"):
        queue.sendto(b"x", ("h", 7))
    assert queue.scheduled is False  # the next datagram asks again
    with pytest.raises(RuntimeError, match="closed"):
        queue.sendto(b"y", ("h", 7))


def test_deliver_knows_a_sendqueue_whatever_the_module_name_holds() -> None:
    import aioxdp._udp_speedups as speedups

    real = speedups.SendQueue
    try:
        speedups.SendQueue = object  # type: ignore[misc,assignment]
        with pytest.raises(TypeError, match="SendQueue"):
            deliver(object(), b"a", meta_of((0, 1, 1)), 1, {1: ("h", 1)}, print, print, print)  # type: ignore[arg-type]
    finally:
        speedups.SendQueue = real  # type: ignore[misc]


def test_deliver_reads_meta_at_any_alignment() -> None:
    p = Protocol()
    raw = bytearray(1) + bytearray(struct.pack("=3Q", 1, 3, 1))
    deliver(
        plain_queue(),
        b"abcd",
        memoryview(raw)[1:],
        1,
        {1: ("h", 1)},
        p.on_unknown,
        p.datagram_received,
        p.on_failed,
    )
    assert p.got == [(b"bc", ("h", 1))]


def test_a_failing_report_keeps_the_protocols_exception_as_its_context() -> None:
    def receive(data: bytes, addr: Any) -> None:
        raise ValueError("first")

    def failed(exc: Exception) -> None:
        raise RuntimeError("the handler broke")

    with pytest.raises(RuntimeError) as caught:
        deliver(
            plain_queue(), b"a", meta_of((0, 1, 1)), 1, {}, Protocol().on_unknown, receive, failed
        )
    assert isinstance(caught.value.__context__, ValueError)
    assert str(caught.value.__context__) == "first"


# -- collect ------------------------------------------------------------------


def test_collect_pairs_each_payload_with_its_sender_in_order() -> None:
    umem = bytearray(b"....hello..world!!")
    known = {1 << 16 | 53: ("198.18.0.2", 53)}
    p = Protocol()
    meta = meta_of((4, 9, 1 << 16 | 53), (11, 16, 2 << 16 | 54), (16, 16, 1 << 16 | 53))
    got = collect(umem, meta, 3, known, p.on_unknown)
    assert got == [
        (b"hello", ("198.18.0.2", 53)),
        (b"world", ("new-2", 54)),
        (b"", ("198.18.0.2", 53)),
    ]
    assert all(type(data) is bytes for data, _ in got)
    assert got[0][1] is known[1 << 16 | 53]
    assert p.unknown == [2 << 16 | 54]
    assert collect(umem, meta, 0, known, p.on_unknown) == []


@pytest.mark.parametrize(
    ("meta", "count", "match"),
    [
        (meta_of((0, 5, 1)), 1, "outside the UMEM"),
        (meta_of((3, 2, 1)), 1, "outside the UMEM"),
        (meta_of((0, 1, 1)), 2, "meta holds 1"),
        (meta_of((0, 1, 1)), -1, "count -1"),
    ],
)
def test_collect_checks_every_bound_before_it_reads(meta: Any, count: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        collect(b"abcd", meta, count, {1: ("h", 1)}, Protocol().on_unknown)


def test_a_bad_argument_to_collect_is_refused_by_name() -> None:
    good: list[Any] = [b"ab", meta_of((0, 1, 1)), 1, {1: ("h", 1)}, print]
    for at, value in [(0, 5), (1, "meta"), (2, "1"), (3, []), (4, None)]:
        args = list(good)
        args[at] = value
        with pytest.raises(TypeError):
            collect(*args)
    with pytest.raises(TypeError, match="5 arguments"):
        collect(*good[:4])


def test_collect_neither_leaks_nor_steals_references() -> None:
    known = {1: ("198.18.0.2", 53), 2: ("198.18.0.3", 53)}
    sender = known[1]
    base = sys.getrefcount(sender)
    meta = meta_of(*[(2 * i, 2 * i + 2, 1 + i % 2) for i in range(10)])
    got = collect(bytes(range(20)), meta, 10, known, Protocol().on_unknown)
    assert sys.getrefcount(sender) == base + 5
    payload = got[0][0]
    assert sys.getrefcount(payload) == 3  # got's tuple, this name, getrefcount's argument
    del got
    assert sys.getrefcount(sender) == base
    assert sys.getrefcount(payload) == 2


def test_an_exception_from_unknown_ends_collect() -> None:
    def unknown(key: int) -> tuple[str, int]:
        raise LookupError("no such sender")

    with pytest.raises(LookupError):
        collect(b"ab", meta_of((0, 1, 1), (1, 2, 2)), 2, {1: ("h", 1)}, unknown)
