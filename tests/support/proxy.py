"""The forwarding proxy used by the tests: the demo's own (``example_project/demo/net.py``)."""

from demo.net import Forwarded, ForwardingProxy  # noqa: F401
