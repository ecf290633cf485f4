"""spikeloop.host: one driver for the golden model, the simulated board, a PYNQ board and a board on a serial port.

`open_core("golden" | "sim" | "pynq" | "serial", network=...)` returns a `Core` (spikeloop.host.driver);
transports live in spikeloop.host.transport (interface), sim_transport (over the golden and the
simulated boards of spikeloop.sim), pynq_transport and serial_transport. numpy only: pynq, pyserial,
Verilator and torch are imported only by what needs them.
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
