"""A gateway simulator speaking WSAPME's wire format over real HTTP, for the sandbox and tests."""

from core.simulator.faults import FaultKind
from core.simulator.plan import Proportions
from core.simulator.server import Simulator, start_simulator
from core.simulator.shapes import ACK_SHAPES, AnswerStyle
from core.simulator.state import Emitted, EmittedEvent, ReplyRecord, SentMessage

__all__ = [
    "ACK_SHAPES",
    "AnswerStyle",
    "Emitted",
    "EmittedEvent",
    "FaultKind",
    "Proportions",
    "ReplyRecord",
    "SentMessage",
    "Simulator",
    "start_simulator",
]
