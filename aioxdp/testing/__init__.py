"""Test harness: a lab of network namespaces joined by veth, and a pytest plugin.

>>> with Lab() as lab:
...     lab.b.run("ping", "-c1", lab.a.ip)
"""

from aioxdp.testing.lab import Host, Lab, remove_stale_labs

__all__ = ["Host", "Lab", "remove_stale_labs"]
