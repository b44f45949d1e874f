"""A faithful local fake of Braze's REST export API (the "Braze sandbox").

>>> from tap_braze_series.sandbox import Sandbox, SandboxConfig, Workspace
>>> with Sandbox(SandboxConfig(seed=7)) as sb:   # doctest: +SKIP
...     sb.url

The sandbox is an independent implementation: it imports nothing from the tap.
See the section "The Braze sandbox" of the README.
"""

from .api import Api
from .channels import UNDOCUMENTED_METRICS
from .config import DEFAULT_RATE_LIMITS, FAULT_KINDS, STALL_KINDS, SandboxConfig
from .entities import Campaign, Canvas, Segment, Step, Variant, Variation
from .request_log import RequestLog, RequestRecord
from .server import Sandbox
from .workspace import Workspace

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "FAULT_KINDS",
    "STALL_KINDS",
    "UNDOCUMENTED_METRICS",
    "Api",
    "Campaign",
    "Canvas",
    "RequestLog",
    "RequestRecord",
    "Sandbox",
    "SandboxConfig",
    "Segment",
    "Step",
    "Variant",
    "Variation",
    "Workspace",
]
