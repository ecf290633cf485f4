"""spikeloop.rtl: the gateware, in Amaranth 0.5 (lib.wiring, lib.stream, lib.memory).

`Crossbar` and `NeuronArray` are the two halves of a `Layer`; a `Network` chains layers as a
`spikeloop.config.CoreConfig` describes them. `Core` connects a `Network` to the `Deframer`,
`Framer`, `RegisterFile`, `Counters` and `StateClear`; a `WindowPort` serves the bus reads of
each crossbar and neuron array. The configuration (`spikeloop.config`), register map
(`spikeloop.regmap`) and bit packing (`spikeloop.stream`, `spikeloop.windows`) are the contract,
shared with the host driver. See docs/gateware.md.
"""

from spikeloop.config import CoreConfig, LayerConfig

from .clear import StateClear
from .common import LayerControl, MemBus
from .counters import Counters
from .crossbar import Crossbar
from .framing import Deframer, Framer
from .layer import Layer
from .network import Network
from .neuron import NeuronArray
from .registers import AxiLite, RegisterFile
from .top import Core, CoreTop
from .window import WindowPort

__all__ = [
    "CoreConfig", "LayerConfig", "Crossbar", "NeuronArray", "Layer", "Network", "Core", "CoreTop",
    "LayerControl", "MemBus", "WindowPort", "Deframer", "Framer", "RegisterFile", "AxiLite", "Counters", "StateClear",
]
