"""Request Tracker's REST 1.0: the wire format (`wire`) and the HTTP client (`client`)."""

from rt_displayr.rt.client import RTClient
from rt_displayr.rt.wire import RTObjectNotFound, RTResponse

__all__ = ["RTClient", "RTObjectNotFound", "RTResponse"]
