"""spikeloop.rtl: the gateware, in Amaranth 0.5 (lib.wiring, lib.stream, lib.memory).

`Crossbar` and `NeuronArray` are the two halves of a `Layer`; a `Network` chains layers as a
`spikeloop.config.CoreConfig` describes them. The configuration (`spikeloop.config`), register map
(`spikeloop.regmap`) and bit packing (`spikeloop.stream`, `spikeloop.windows`) are the contract,
shared with the host driver. See docs/gateware.md.
"""

from spikeloop.config import CoreConfig, LayerConfig

from .common import LayerControl, MemBus
from .crossbar import Crossbar
from .layer import Layer
from .network import Network
from .neuron import NeuronArray
from .top import Core, CoreTop

__all__ = [
    "CoreConfig", "LayerConfig", "Crossbar", "NeuronArray", "Layer", "Network", "Core", "CoreTop",
    "LayerControl", "MemBus",
]
