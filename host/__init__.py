"""spikeloop.host: one driver for the golden model, the simulated board and the PYNQ board.

`open_core("golden" | "sim" | "pynq", network=...)` returns a `Core` (spikeloop.host.driver);
transports live in spikeloop.host.transport (interface), golden_transport, sim_transport and
pynq_transport. numpy only: pynq, Verilator and torch are imported only by what needs them.
"""

from .driver import (
    ConfigError,
    Core,
    CoreError,
    LoadError,
    Output,
    SpikeError,
    Status,
    TransferError,
    TransportError,
    describe_config,
    open_core,
)
from .transport import TRANSPORTS, Received, TransferTimeout, Transport, open_transport

__all__ = [
    "Core", "Output", "Status", "open_core", "describe_config", "open_transport", "Transport", "Received",
    "TRANSPORTS", "ConfigError", "CoreError", "LoadError", "SpikeError", "TransferError", "TransferTimeout",
    "TransportError",
]
