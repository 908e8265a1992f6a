"""The same ping and UDP tests on asyncio, uvloop and trio.

Each test body is written once with anyio and run on each backend. Ping
picks its driver by itself (asyncio's Pinger, or the anyio one under
trio); the UDP tests take the interface class of the backend's driver
(``Interface`` on asyncio/uvloop, ``AnyioInterface`` on trio) and use the
UDPSocket both give. Witnesses are the peer kernel's counters and kernel
sockets in the peer namespace, never our own counters alone.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import anyio
import pytest
from test_datapath import paced_udp, sleeps_of_this_thread
from test_udp_tcp import udp_client

import aioxdp
from aioxdp.forwarder import Rule
from aioxdp.testing import Lab
from aioxdp.xsk import RxBatch

BACKENDS = ["asyncio", "uvloop", "trio"]


def run(backend: str, main: Any) -> Any:
    """``main()`` on ``backend``."""
    if backend == "trio":
        return anyio.run(main, backend="trio")
    return anyio.run(main, backend="asyncio", backend_options={"use_uvloop": backend == "uvloop"})


def interface_class(backend: str) -> Any:
    return aioxdp.AnyioInterface if backend == "trio" else aioxdp.Interface


def icmp_in_echos(lab: Lab) -> int:
    """The peer kernel's count of echo requests received (its own witness)."""
    lines = [line.split() for line in lab.b.run("cat", "/proc/net/snmp").stdout.splitlines()]
    names, values = [row for row in lines if row[0] == "Icmp:"][:2]
    return int(values[names.index("InEchos")])


def no_program_left(lab: Lab) -> bool:
    return "prog/xdp" not in lab.a.run("ip", "-d", "link", "show", lab.a.ifname).stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_ping_answered_by_the_peer_kernel(lab_a: Lab, backend: str) -> None:
    before = icmp_in_echos(lab_a)

    async def main() -> tuple[str, aioxdp.PingResult]:
        async with aioxdp.Pinger(lab_a.b.ip, count=20, interval=0.002) as pinger:
            return pinger.driver, await pinger.result()

    driver, result = run(backend, main)
    assert driver == ("anyio" if backend == "trio" else "asyncio")
    assert (result.sent, result.received) == (20, 20)
    assert [r.seq for r in result.replies] == list(range(1, 21))
    assert icmp_in_echos(lab_a) - before == 20
    assert no_program_left(lab_a)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_one_probe_flood_goes_on_in_c_on_each_backend(lab_a: Lab, backend: str) -> None:
    """ping -f's flood (one probe in flight, no reply listener) on each
    driver: b's kernel answered every probe once, each reply is accounted
    once and in order, and what the forwarder redirected is what the
    interface says it drained, the replies taken in C included."""
    b = lab_a.b
    mac = b.run("cat", f"/sys/class/net/{b.ifname}/address").stdout.strip()
    lab_a.a.run("ip", "neigh", "replace", b.ip, "lladdr", mac, "dev", lab_a.a.ifname)  # no ARP
    before = icmp_out(lab_a, "OutEchoReps")

    async def main() -> tuple[aioxdp.PingResult, int, int]:
        async with interface_class(backend)(lab_a.a.ifname) as nic:  # the Pinger borrows it
            redirected, drained = nic.forwarder.counters.redirected, nic.received
            async with aioxdp.Pinger(b.ip, count=20000, interval=0, window=1) as pinger:
                result = await pinger.result()
            return (
                result,
                nic.forwarder.counters.redirected - redirected,
                nic.received - drained,
            )

    result, redirected, drained = run(backend, main)
    assert icmp_out(lab_a, "OutEchoReps") - before == 20000
    assert (result.sent, result.received) == (20000, 20000)
    assert [r.seq for r in result.replies] == [k % 65536 for k in range(1, 20001)]
    assert result.duplicates == result.late == result.foreign == 0
    assert (redirected, drained) == (20000, 20000)


def test_busy_poll_on_trio_reads_without_sleeping_under_load(lab_a: Lab) -> None:
    """AnyioInterface's busy_poll under trio: with datagrams 1 ms apart, the
    reader looks at the ring every scheduler pass and the thread never
    sleeps; with busy_poll 0 each datagram wakes it. None is lost either
    way, and a bad value is refused by name."""
    port = 7102
    with pytest.raises(ValueError, match="busy_poll"):
        aioxdp.AnyioInterface(lab_a.a.ifname, busy_poll=1.0)
    with pytest.raises(TypeError, match="busy_poll"):
        aioxdp.AnyioInterface(lab_a.a.ifname, busy_poll="fast")  # type: ignore[arg-type]
    got: list[int] = []

    async def main() -> tuple[int, int]:
        async with aioxdp.AnyioInterface(lab_a.a.ifname, busy_poll=0.005) as nic:
            claim = nic.claim(
                [Rule("udp", dst=lab_a.a.ip, dst_port=port)],
                lambda rx, start, stop: got.append(stop - start),
            )
            sender = paced_udp(lab_a, port, 400, 0.001)
            try:
                with anyio.fail_after(10):
                    while sum(got) < 20:  # the stream began
                        await anyio.sleep(0.005)
                before, seen = sleeps_of_this_thread(), sum(got)
                await anyio.sleep(0.1)
                polled = sleeps_of_this_thread() - before
                assert sum(got) - seen >= 40, "datagrams came meanwhile"
                nic.busy_poll = 0
                await anyio.sleep(0.01)
                before, seen = sleeps_of_this_thread(), sum(got)
                await anyio.sleep(0.1)
                waited = sleeps_of_this_thread() - before
                assert sum(got) - seen >= 40, "datagrams came meanwhile"
                assert await anyio.to_thread.run_sync(sender.wait, 30) == 0
                with anyio.fail_after(10):
                    while sum(got) < 400:
                        await anyio.sleep(0.005)
            finally:
                sender.kill()
                sender.wait()
            claim.close()
            return polled, waited

    polled, waited = run("trio", main)
    assert polled <= 5 < 30 <= waited, (polled, waited)
    assert sum(got) == 400


def icmp_out(lab: Lab, name: str) -> int:
    lines = [line.split() for line in lab.b.run("cat", "/proc/net/snmp").stdout.splitlines()]
    names, values = [row for row in lines if row[0] == "Icmp:"][:2]
    return int(values[names.index(name)])


NFT_REJECT = """
table inet aioxdp_test {
    chain forward {
        type filter hook forward priority 0;
        ip daddr 198.19.8.0/24 reject with icmp type admin-prohibited
    }
}
"""

# what b does with 198.19.8.7 (a routes 198.19.0.0/16 via b), what its kernel
# answers, the counter it counts that in, and the TTL of our requests
ERROR_CASES = {
    "no route onward": ([], "net_unreachable", "OutDestUnreachs", 64),
    "nft reject": (
        [["ip", "route", "add", "198.19.8.0/24", "via", "198.18.0.1"], ["nft", "-f", "-"]],
        "admin_prohibited",
        "OutDestUnreachs",
        64,
    ),
    "ttl 1 through b": (
        [["ip", "route", "add", "198.19.8.0/24", "via", "198.18.0.1"]],
        "ttl_exceeded",
        "OutTimeExcds",
        1,
    ),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_icmp_errors_from_the_peer_kernel(lab_a: Lab, backend: str, case: str) -> None:
    commands, kind, counter, ttl = ERROR_CASES[case]
    b = lab_a.b
    # no rate limit on b's errors: per peer, nor the global token bucket
    for key in ("icmp_ratelimit=0", "icmp_msgs_per_sec=100000", "icmp_msgs_burst=10000"):
        b.run("sysctl", "-qw", f"net.ipv4.{key}")
    b.run("sysctl", "-qw", "net.ipv4.conf.all.forwarding=1")
    for command in commands:
        b.run(*command, input=NFT_REJECT if command[0] == "nft" else None)
    lab_a.a.run("ip", "route", "add", "198.19.0.0/16", "via", b.ip)
    before = icmp_out(lab_a, counter)

    async def main() -> tuple[aioxdp.PingResult, list[Any], list[Any]]:
        told: list[Any] = []
        streamed: list[Any] = []
        async with aioxdp.Pinger(
            "198.19.8.7", count=3, interval=0.02, timeout=1.0, ttl=ttl, on_error=told.append
        ) as pinger:
            async for event in pinger:
                streamed.append(event)
            return await pinger.result(), told, streamed

    result, told, streamed = run(backend, main)
    # if b sent fewer than three: how many reached its routing, and its limits
    seen = b.run(
        "nstat", "-az", "IcmpOutRateLimitGlobal", "IcmpOutRateLimitHost", "IpExtInNoRoutes"
    ).stdout
    assert icmp_out(lab_a, counter) - before == 3, (seen, result, told)  # b's kernel sent three
    assert (result.sent, result.received) == (3, 0)
    assert result.errors == {kind: 3}
    assert told == streamed
    assert [(e.seq, e.kind, e.source, e.destination) for e in told] == [
        (seq, kind, b.ip, "198.19.8.7") for seq in (1, 2, 3)
    ]
    assert all(isinstance(e, aioxdp.PingError) for e in told)
    assert result.malformed == {}


@pytest.mark.parametrize("backend", BACKENDS)
def test_requests_over_the_mtu_go_as_fragments(lab_a: Lab, backend: str) -> None:
    """8000 data bytes: six fragments each way; the peer kernel reassembles
    ours (its IpReasmOKs is the witness) and we reassemble its replies."""

    def reassembled() -> int:
        return int(lab_a.b.run("nstat", "-az", "IpReasmOKs").stdout.split()[-2])

    before = reassembled()

    async def main() -> aioxdp.PingResult:
        return await aioxdp.ping(lab_a.b.ip, count=5, interval=0.01, size=8000)

    result = run(backend, main)
    assert (result.sent, result.received) == (5, 5)
    assert {r.size for r in result.replies} == {8008}
    assert reassembled() - before == 5
    assert result.malformed == {}
    assert no_program_left(lab_a)


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_concurrent_pings_share_one_interface(lab_a: Lab, backend: str) -> None:
    before = icmp_in_echos(lab_a)

    async def main() -> tuple[list[Any], list[Any], list[int]]:
        results: list[Any] = [None, None]
        nics: list[Any] = [None, None]
        rules_seen: list[int] = []

        async def one(i: int, ready: anyio.Event, both: anyio.Event) -> None:
            async with aioxdp.Pinger(lab_a.b.ip, count=200, interval=0.001) as pinger:
                nics[i] = pinger.nic
                ready.set()
                await both.wait()
                rules_seen.append(len(pinger.nic.forwarder.rules))
                results[i] = await pinger.result()

        events = [anyio.Event(), anyio.Event()]
        both = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(one, 0, events[0], both)
            tg.start_soon(one, 1, events[1], both)
            await events[0].wait()
            await events[1].wait()
            both.set()
        return results, nics, rules_seen

    results, nics, rules_seen = run(backend, main)
    assert nics[0] is nics[1], "the two pings opened two interfaces"
    assert rules_seen == [
        8,
        8,
    ]  # both pings' rules (a reply and three error rules each) in one forwarder
    assert [r.received for r in results] == [200, 200]
    assert [[x.seq for x in r.replies] for r in results] == [list(range(1, 201))] * 2
    assert icmp_in_echos(lab_a) - before == 400
    assert no_program_left(lab_a)


@pytest.mark.parametrize("backend", BACKENDS)
def test_udp_socket_echoes_for_kernel_clients_byte_for_byte(lab_a: Lab, backend: str) -> None:
    async def main() -> tuple[int, int, int]:
        async with interface_class(backend)(lab_a.a.ifname) as nic:
            sock: aioxdp.UDPSocket = await nic.create_udp_socket((lab_a.a.ip, 9300))

            async def serve() -> None:
                async for data, addr in sock:
                    await sock.send((data, addr))

            async with anyio.create_task_group() as tg:
                tg.start_soon(serve)
                # 2000 datagrams, 32 in flight, from a kernel socket in the peer
                good = await anyio.to_thread.run_sync(udp_client, lab_a.b, lab_a.a.ip, 9300, 2000)
                await sock.aclose()
            return good, sock.received, sock.sent

    good, received, sent = run(backend, main)
    assert good == 2000
    assert received == sent == 2000
    assert no_program_left(lab_a)


# A kernel UDP echo server in the peer, for COUNT datagrams, then it exits.
UDP_ECHO_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(20)
print("ready", flush=True)
for _ in range(int(sys.argv[3])):
    data, addr = s.recvfrom(65535)
    s.sendto(data[::-1], addr)
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_udp_socket_talks_to_a_kernel_server(lab_a: Lab, backend: str) -> None:
    count = 300
    server = lab_a.b.popen(
        sys.executable,
        "-c",
        UDP_ECHO_SERVER,
        lab_a.b.ip,
        "9301",
        str(count),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"

        async def main() -> list[tuple[bytes, tuple[str, int]]]:
            got = []
            async with (
                interface_class(backend)(lab_a.a.ifname) as nic,
                await nic.create_udp_socket((lab_a.a.ip, 9302)) as sock,
            ):
                with anyio.fail_after(20):
                    for i in range(count):  # one at a time: the server answers in turn
                        await sock.send((b"datagram %05d" % i, (lab_a.b.ip, 9301)))
                        got.append(await sock.receive())
            return got

        got = run(backend, main)
        assert server.wait(timeout=20) == 0
    finally:
        server.kill()
        server.wait()
    assert got == [((b"datagram %05d" % i)[::-1], (lab_a.b.ip, 9301)) for i in range(count)]
    assert no_program_left(lab_a)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_raising_handler_hurts_only_its_claim(lab_a: Lab, backend: str) -> None:
    """The anyio driver's isolation, like the asyncio one's: a claim whose
    handler raises keeps receiving, and a UDP socket beside it serves all."""
    calls: list[int] = []

    def broken(rx: RxBatch, start: int, stop: int) -> None:
        calls.append(stop - start)
        raise RuntimeError("user bug")

    async def main() -> tuple[int, int, int]:
        async with interface_class(backend)(lab_a.a.ifname) as nic:
            claim = nic.claim([Rule("udp", dst_port=9311)], broken)
            sock = await nic.create_udp_socket((lab_a.a.ip, 9310))

            async def serve() -> None:
                async for data, addr in sock:
                    await sock.send((data, addr))

            async with anyio.create_task_group() as tg:
                tg.start_soon(serve)
                for _ in range(3):
                    await anyio.to_thread.run_sync(udp_burst_one, lab_a, 9311)
                good = await anyio.to_thread.run_sync(udp_client, lab_a.b, lab_a.a.ip, 9310, 200)
                with anyio.fail_after(5):
                    while sum(calls) < 3:
                        await anyio.sleep(0.01)
                await sock.aclose()
            errors = claim.callback_errors
            claim.close()
            return good, errors, sum(calls)

    good, errors, frames = run(backend, main)
    assert good == 200
    assert frames == 3  # every packet to the broken handler still reached it
    assert errors >= 1  # counted, once per delivery that raised
    assert no_program_left(lab_a)


def udp_burst_one(lab: Lab, port: int) -> None:
    lab.b.run(
        sys.executable,
        "-c",
        "import socket,sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
        ".sendto(b'x', (sys.argv[1], int(sys.argv[2])))",
        lab.a.ip,
        str(port),
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_link_going_down_closes_the_interface_and_says_why(lab_a: Lab, backend: str) -> None:
    async def main() -> tuple[Any, Any]:
        async with interface_class(backend)(lab_a.a.ifname) as nic:
            sock = await nic.create_udp_socket((lab_a.a.ip, 9320))
            lab_a.a.run("ip", "link", "set", "dev", lab_a.a.ifname, "down")
            try:
                with anyio.fail_after(5):
                    with pytest.raises(anyio.BrokenResourceError, match="went down") as e:
                        await sock.receive()
            finally:
                lab_a.a.run("ip", "link", "set", "dev", lab_a.a.ifname, "up")
            return nic.error, e.value

    error, raised = run(backend, main)
    assert "went down" in str(error)
    assert "went down" in str(raised)
    assert no_program_left(lab_a)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tcp_ping_open_closed_and_nothing_half_open(lab_a: Lab, backend: str) -> None:
    """The sans-IO TCP probe core on each driver, against the peer kernel's
    listener; ``ss`` in the peer is the witness that every SYN-ACK got a RST."""
    server = lab_a.b.popen(
        sys.executable,
        "-c",
        "import socket, time\ns = socket.create_server(('0.0.0.0', 8090)); print('up', flush=True)\n"
        "time.sleep(30)\n",
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "up"

        async def main() -> tuple[aioxdp.PingResult, aioxdp.PingResult, list[bool]]:
            seen: list[bool] = []
            opened = await aioxdp.tcp_ping(
                lab_a.b.ip, 8090, count=3, interval=0.05, on_reply=lambda r: seen.append(r.open)
            )
            closed = await aioxdp.tcp_ping(lab_a.b.ip, 8091, count=2, interval=0.05)
            return opened, closed, seen

        opened, closed, seen = run(backend, main)
        ss = lab_a.b.run("ss", "-tan", "state", "syn-recv").stdout
    finally:
        server.kill()
        server.wait()
    assert (opened.open, opened.sent, opened.received) == (True, 3, 3)
    assert seen == [True, True, True]
    assert all(0 < r < 1 for r in opened.rtts)
    assert (closed.open, closed.received) == (False, 2)
    assert "8090" not in ss, f"half-open connections left: {ss}"
    assert no_program_left(lab_a)


@pytest.mark.parametrize("backend", BACKENDS)
def test_claims_and_udp_sockets_misused_say_what_is_wrong(lab_a: Lab, backend: str) -> None:
    """Every misuse raises a named error and leaves the interface working."""

    async def main() -> list[str]:
        raised: list[str] = []

        def expect(kind: type[BaseException], match: str, call: Any) -> None:
            with pytest.raises(kind, match=match):
                call()
            raised.append(match)

        async def expect_async(kind: type[BaseException], match: str, call: Any) -> None:
            with pytest.raises(kind, match=match or None):
                await call()
            raised.append(match)

        async with interface_class(backend)(lab_a.a.ifname) as nic:
            expect(ValueError, "at least one rule", lambda: nic.claim([], print))
            expect(
                TypeError,
                "handler: must be callable",
                lambda: nic.claim([Rule("udp", dst_port=9330)], 5),
            )
            for bad in [
                (lab_a.a.ip,),
                ("not-an-ip", 1),
                (lab_a.a.ip, 0),
                (lab_a.a.ip, True),
                ("0.0.0.0", 9),
            ]:
                await expect_async(
                    ValueError, "local_addr", lambda bad=bad: nic.create_udp_socket(bad)
                )
            sock = await nic.create_udp_socket((lab_a.a.ip, 9331))
            # the same address twice: the forwarder refuses the second rule
            await expect_async(
                ValueError, "already installed", lambda: nic.create_udp_socket((lab_a.a.ip, 9331))
            )
            await expect_async(
                TypeError, "data: expected bytes", lambda: sock.sendto("text", lab_a.b.ip, 9)
            )
            await expect_async(TypeError, "host: must be", lambda: sock.sendto(b"x", 5, 9))
            await expect_async(
                ValueError, "port: must be", lambda: sock.sendto(b"x", lab_a.b.ip, 70000)
            )
            await expect_async(TypeError, r"\(data, \(host, port\)\)", lambda: sock.send(b"x"))
            await expect_async(
                ValueError,
                "exceed what one unfragmented",
                lambda: sock.sendto(bytes(9000), lab_a.b.ip, 9),
            )
            await sock.aclose()
            await expect_async(
                anyio.ClosedResourceError, "", lambda: sock.sendto(b"x", lab_a.b.ip, 9)
            )
            await expect_async(anyio.ClosedResourceError, "", sock.receive)
            # and the interface still serves: a ping through it answers
            result = await aioxdp.ping(lab_a.b.ip, count=2, interval=0.01)
            assert result.received == 2
        return raised

    assert len(run(backend, main)) == 15  # every expectation above ran
    assert no_program_left(lab_a)


def test_multiping_arguments_misused_say_what_is_wrong(lab_a: Lab) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"spacing": -1}, "spacing"),
        ({"spacing": float("nan")}, "spacing"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_in_flight": True}, "max_in_flight"),
        ({"max_hosts": 0}, "max_hosts"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            aioxdp.Pinger([lab_a.b.ip], **kwargs)
    with pytest.raises(ValueError, match="3 targets exceed the limit of 2"):
        aioxdp.Pinger([lab_a.b.ip] * 3, max_hosts=2)
