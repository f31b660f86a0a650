"""The live shared pool in Redis: its schema, scripts, remote sessions, online and outage modes."""

from .pool import SharedPool
from .remote_session import RemoteSession

__all__ = ["RemoteSession", "SharedPool"]
