"""The forwarder on one link and an XDP socket per RX queue, with no event loop.

Both drivers own one :class:`Attachment`: the asyncio
:class:`aioxdp.Interface` and the anyio (trio) ``AnyioInterface``. It loads
and attaches the forwarder, opens the sockets and puts them in the
forwarder's socket map, keeps the table of which rule tag goes to whom,
sorts a received batch into its owners' runs, looks at the link and the
sockets for trouble, and tears it all down in the one safe order: the
program off first (nothing is redirected to a closing socket), then the
sockets, then the BPF object.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from aioxdp import privileges
from aioxdp.bpf import BPFObject, Mode, XDPLink
from aioxdp.errors import XDPError
from aioxdp.forwarder import Forwarder
from aioxdp.link import LinkInfo, link_info, link_trouble
from aioxdp.umem import FrameCounts, UmemConfig
from aioxdp.xsk import XSK, RxBatch

__all__ = ["Attachment", "AttachmentOwner", "check_mode"]

log = logging.getLogger(__name__)

H = TypeVar("H")  # whoever receives a tag's packets: an endpoint, a handler


def check_mode(mode: object) -> None:
    if mode not in ("auto", "native", "generic"):
        raise ValueError(f"mode: must be 'auto', 'native' or 'generic', got {mode!r}")


class Attachment(Generic[H]):
    """One link's forwarder and sockets; see the module docstring.

    Open with ``await Attachment.open(ifname, ...)`` (the only await is the
    netlink query for the link's queues, MTU and MAC); everything after is
    synchronous.
    """

    def __init__(
        self,
        ifname: str,
        info: LinkInfo,
        *,
        mode: Mode = "auto",
        queues: Iterable[int] | None = None,
        config: UmemConfig | None = None,
        batch_size: int | None = None,
    ) -> None:
        check_mode(mode)
        self.ifname = ifname
        self.mtu = info.mtu
        self.mac = info.mac
        self.config = UmemConfig.chosen(config)
        self.frame_size = self.config.frame_size  # bytes of one UMEM frame: the largest frame
        self.tx_size = self.config.tx_size
        # most frames one receive hands over
        self.batch_size = self.config.receive_batch(batch_size)
        chosen = list(range(info.queues)) if queues is None else sorted(set(queues))
        bad = [q for q in chosen if not 0 <= q < info.queues]
        if bad:
            raise ValueError(f"queues: {ifname} has RX queues 0..{info.queues - 1}, not {bad}")
        self.sockets: dict[int, XSK] = {}
        self.final_counts: dict[int, FrameCounts] = {}
        self.received = 0  # frames drained from the sockets
        self.unclaimed = 0  # of those, frames no owner claimed (untagged, or released)
        self._owners: dict[int, H] = {}
        self._obj: BPFObject | None = BPFObject.packaged("forwarder")
        self._link: XDPLink | None = None
        try:
            self._obj.load()
            self.forwarder = Forwarder(self._obj)
            self.forwarder.set_local_mac(self.mac)  # rules see only traffic for this host
            self._link = self._obj.program("aioxdp_forwarder").attach(ifname, mode=mode)
            self.mode: str = self._link.mode
            xskmap = self._obj.map("aioxdp_fw_xsks")
            for q in chosen:
                xsk = XSK(ifname, q, config=self.config, batch_size=batch_size)
                self.sockets[q] = xsk
                xskmap.update(q, xsk.fd.to_bytes(4, "little"))
        except BaseException:
            self.close()
            raise
        log.info("%s: forwarder in %s mode, XSKs on queues %s", ifname, self.mode, chosen)

    @classmethod
    async def open(
        cls,
        ifname: str,
        *,
        mode: Mode = "auto",
        queues: Iterable[int] | None = None,
        config: UmemConfig | None = None,
        batch_size: int | None = None,
    ) -> Attachment[Any]:
        """Check privileges and the link, then attach (see the class)."""
        check_mode(mode)
        doing = f"opening {ifname} for AF_XDP"
        privileges.require(doing, need_raw=True)
        info = await link_info(ifname)
        if link_trouble(ifname) is not None:
            # down from the start: refuse now rather than let a watchdog close it
            raise XDPError(errno.ENETDOWN, doing, f"{ifname} is down (ip link set dev {ifname} up)")
        return cls(ifname, info, mode=mode, queues=queues, config=config, batch_size=batch_size)

    @property
    def closed(self) -> bool:
        return self._link is None

    @property
    def queues(self) -> list[int]:
        return sorted(self.sockets)

    # -- who gets a tag's packets ---------------------------------------------

    def claim_tag(self, tag: int, owner: H) -> None:
        """Packets carrying ``tag`` go to ``owner`` from now on."""
        self._owners[tag] = owner

    def release_tag(self, tag: int) -> None:
        self._owners.pop(tag, None)

    def runs(self, rx: RxBatch) -> list[tuple[H, int, int]]:
        """The batch as (owner, start, stop) runs of one tag each, sorted in C;
        frames of tags nobody owns are counted in ``unclaimed``."""
        if rx.count == 0:
            return []
        self.received += rx.count
        owners = self._owners
        out = []
        for tag, start, stop in rx.tag_runs():
            owner = owners.get(tag)
            if owner is None:
                self.unclaimed += stop - start
            else:
                out.append((owner, start, stop))
        return out

    def count_taken(self, n: int) -> None:
        """``n`` frames an owner's C took off a ring itself (a flood's
        replies): drained, as if they had come through :meth:`runs`."""
        self.received += n

    # -- health -----------------------------------------------------------------

    def trouble(self) -> XDPError | None:
        """Why this attachment cannot go on (the link went down or away, a
        socket reports an error), or None. An XSK reports neither through
        poll(); its SO_ERROR and the link's flags do."""
        cause = link_trouble(self.ifname)
        if cause is None:
            for xsk in self.sockets.values():
                err = 0 if xsk.closed else xsk.socket_error()
                if err:
                    cause = (err, f"the AF_XDP socket reports: {os.strerror(err)}")
                    break
        if cause is None:
            return None
        err, why = cause
        return XDPError(err, f"using {self.ifname}", why)

    def explain(self, exc: Exception) -> Exception:
        """A send or receive error that the link's state explains, explained."""
        if isinstance(exc, OSError) and exc.errno in (errno.ENETDOWN, errno.ENXIO, errno.ENODEV):
            trouble = link_trouble(self.ifname)
            if trouble is not None:
                err, why = trouble
                explained = XDPError(err, f"using {self.ifname}", why)
                explained.__cause__ = exc
                return explained
        return exc

    def frame_counts(self) -> dict[int, FrameCounts]:
        """Per queue: who owns the frames (open sockets only)."""
        return {q: xsk.counts() for q, xsk in self.sockets.items() if not xsk.closed}

    def stats(self) -> dict[str, Any]:
        """The kernel's XDP_STATISTICS per queue, frame counts, and forwarder verdicts."""
        return {
            "ifname": self.ifname,
            "mode": self.mode,
            "queues": {
                q: {"xdp": xsk.statistics(), "frames": xsk.counts()}
                for q, xsk in self.sockets.items()
                if not xsk.closed
            },
            "verdicts": self.forwarder.counters,
            "unclaimed": self.unclaimed,
        }

    # -- teardown ---------------------------------------------------------------

    def close(self) -> None:
        """Program off, sockets closed (their frame counts kept), object closed.
        Idempotent."""
        if self._link is not None:
            self._link.detach()
            self._link = None
        for q, xsk in self.sockets.items():
            if not xsk.closed:
                self.final_counts[q] = xsk.close()
        self.sockets.clear()
        self._owners.clear()
        if self._obj is not None:
            self._obj.close()
            self._obj = None

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.mode} on queues {self.queues}"
        return f"<Attachment {self.ifname} {state}>"


class AttachmentOwner(Generic[H]):
    """What both drivers' interfaces share: the arguments of their
    Attachment, and what it knows (counts and final frame states stay
    readable after close). Subclasses read the sockets on their loop."""

    def __init__(
        self,
        ifname: str,
        *,
        mode: Mode = "auto",
        queues: Iterable[int] | None = None,
        config: UmemConfig | None = None,
        batch_size: int | None = None,
    ) -> None:
        check_mode(mode)
        self.ifname = ifname
        self.requested_mode = mode
        self._queues = None if queues is None else sorted(set(queues))
        self._config = UmemConfig.chosen(config)
        # most frames one receive hands over
        self.batch_size = self._config.receive_batch(batch_size)
        self._attachment: Attachment[H] | None = None
        self._lost_exc: Exception | None = None

    def __repr__(self) -> str:
        state = "open" if self._is_open else "closed"
        if self._lost_exc is not None:
            state = f"closed by {self._lost_exc!r}"
        return f"<{type(self).__name__} {self.ifname} {self.mode or self.requested_mode} {state}>"

    async def _attach(self) -> Attachment[H]:
        """Open the attachment (refused if one is open; a closed owner opens again)."""
        if self._is_open:
            raise XDPError(errno.EISCONN, f"opening {self.ifname}", "it is open already")
        self._lost_exc = None
        attachment: Attachment[H] = await Attachment.open(
            self.ifname,
            mode=self.requested_mode,
            queues=self._queues,
            config=self._config,
            batch_size=self.batch_size,
        )
        self._attachment = attachment
        return attachment

    @property
    def _is_open(self) -> bool:
        return self._attachment is not None and not self._attachment.closed

    def _not_open(self, doing: str) -> XDPError:
        if self._lost_exc is not None:
            return XDPError(
                errno.EBADF, doing, f"{self.ifname} was closed by an error: {self._lost_exc}"
            )
        return XDPError(errno.EBADF, doing, f"{self.ifname} is not open")

    @property
    def mode(self) -> str | None:
        """'native' or 'generic' once open."""
        return None if self._attachment is None else self._attachment.mode

    @property
    def mtu(self) -> int:
        return 1500 if self._attachment is None else self._attachment.mtu

    @property
    def mac(self) -> str | None:
        return None if self._attachment is None else self._attachment.mac

    @property
    def config(self) -> UmemConfig:
        """The UMEM and ring sizes of every socket."""
        return self._config

    @property
    def frame_size(self) -> int:
        """Bytes of one UMEM frame: the largest frame."""
        return self._config.frame_size

    @property
    def tx_size(self) -> int:
        return self._config.tx_size

    @property
    def queues(self) -> list[int]:
        return [] if self._attachment is None else self._attachment.queues

    @property
    def error(self) -> Exception | None:
        """The socket or link error that closed this interface, if one did."""
        return self._lost_exc

    @property
    def forwarder(self) -> Forwarder:
        if self._attachment is None:
            raise self._not_open("using the forwarder")
        return self._attachment.forwarder

    @property
    def received(self) -> int:
        """Frames drained from the sockets."""
        return 0 if self._attachment is None else self._attachment.received

    def count_taken(self, n: int) -> None:
        """Count ``n`` frames an endpoint's C took off a ring itself."""
        if self._attachment is not None:
            self._attachment.count_taken(n)

    @property
    def unclaimed(self) -> int:
        """Of those, frames nobody claimed (untagged, or their owner closed)."""
        return 0 if self._attachment is None else self._attachment.unclaimed

    @property
    def final_counts(self) -> dict[int, FrameCounts]:
        """Per queue, who owned the frames when its socket closed."""
        return {} if self._attachment is None else self._attachment.final_counts

    def frame_counts(self) -> dict[int, FrameCounts]:
        """Per queue: who owns the frames (open sockets only)."""
        return {} if self._attachment is None else self._attachment.frame_counts()

    def stats(self) -> dict[str, Any]:
        """The kernel's XDP_STATISTICS per queue, frame counts, and forwarder verdicts."""
        if self._attachment is None or self._attachment.closed:
            raise self._not_open("reading statistics")
        return self._attachment.stats()
