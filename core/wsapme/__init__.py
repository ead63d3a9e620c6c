"""The WSAPME gateway: the client and the shapes of its answers."""

from core.wsapme.answers import DeviceStatus, SendResult, StatusResult, status_from_value
from core.wsapme.client import WsapmeClient

__all__ = ["DeviceStatus", "SendResult", "StatusResult", "WsapmeClient", "status_from_value"]
