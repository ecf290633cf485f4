"""A network: layers of any sizes chained by streams, layer k+1 fed layer k's spikes of the same timestep."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikeloop.config import CoreConfig

from .common import LayerControl, MemBus, check_type, parameters, probe_layout, spike_layout
from .layer import Layer

__all__ = ["Network", "probe_layouts"]


class Network(wiring.Component):
    """The datapath of a core: `len(config.layers)` layers in a chain.

    Parameters (keyword-only)
    ----------
    config : CoreConfig; with `config.membranes` the output payload carries the last layer's
        pre-reset membranes.

    Members
    -------
    i_stream : In(stream of `spike_layout(n_in)`), one payload per timestep.
    o_stream : Out(stream of `spike_layout(n_out[, membranes])`), one payload per input timestep,
        in order, with the input's `last` flag.
    ctrl : In(LayerControl).array(n_layers).
    bus : In(MemBus with a `layer` select).
    busy : Out(1), a timestep is in flight somewhere.
    probe : Out(`probe_layouts(config)`), with `config.probes`: every layer's capture (`Layer.probe`).
    """

    def __init__(self, *, config: CoreConfig):
        with parameters(self):
            check_type("config", config, CoreConfig)
        self._config = config
        n = len(config.layers)
        self._layers = [
            Layer(config=layer, membranes=bool(config.membranes) and k == n - 1, probes=bool(config.probes))
            for k, layer in enumerate(config.layers)
        ]
        self._addr_width = max(layer.addr_width for layer in self._layers)
        last = config.layers[-1]
        members = {
            "i_stream": In(stream.Signature(spike_layout(config.n_in))),
            "o_stream": Out(stream.Signature(spike_layout(config.n_out,
                                                          membranes=last.v_bits if config.membranes else None))),
            "ctrl": In(LayerControl()).array(n),
            "bus": In(MemBus(addr_width=self._addr_width, n_layers=n)),
            "busy": Out(1),
        }
        if config.probes:
            members["probe"] = Out(probe_layouts(config))
        super().__init__(members)

    @property
    def config(self) -> CoreConfig:
        """The build configuration."""
        return self._config

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers, in order."""
        return tuple(self._layers)

    @property
    def addr_width(self) -> int:
        """Width of the windows' word address (the widest layer's)."""
        return self._addr_width

    def elaborate(self, platform):
        m = Module()
        layers = self._layers
        for k, layer in enumerate(layers):
            m.submodules[f"layer{k}"] = layer
            wiring.connect(m, wiring.flipped(self.ctrl[k]), layer.ctrl)
        wiring.connect(m, wiring.flipped(self.i_stream), layers[0].i_stream)
        for k in range(len(layers) - 1):
            wiring.connect(m, producer=layers[k].o_stream, consumer=layers[k + 1].i_stream)
        wiring.connect(m, layers[-1].o_stream, wiring.flipped(self.o_stream))

        bus = self.bus
        w_err, r_ack, r_data, hit = 0, 0, 0, 0
        for k, layer in enumerate(layers):
            mine = bus.layer == k
            if self._addr_width > layer.addr_width:  # addresses past this layer's windows: nobody's
                mine = mine & (bus.addr[layer.addr_width:] == 0)
            hit = hit | mine
            m.d.comb += [
                layer.bus.sel.eq(bus.sel),
                layer.bus.addr.eq(bus.addr),
                layer.bus.w_data.eq(bus.w_data),
                layer.bus.w_stb.eq(bus.w_stb & mine),
                layer.bus.r_stb.eq(bus.r_stb & mine),
            ]
            w_err = w_err | layer.bus.w_err
            r_ack = r_ack | layer.bus.r_ack
            r_data = r_data | Mux(layer.bus.r_ack, layer.bus.r_data, 0)
        # A layer index past the last layer, or an address past its windows: writes refused,
        # reads answered with 0.
        miss = ~hit
        miss_ack = Signal()
        m.d.sync += miss_ack.eq(bus.r_stb & miss)
        m.d.comb += [
            bus.w_err.eq(w_err | (bus.w_stb & miss)),
            bus.r_ack.eq(r_ack | miss_ack),
            bus.r_data.eq(r_data),
        ]
        busy = 0
        for layer in layers:
            busy = busy | layer.ctrl.busy
        m.d.comb += self.busy.eq(busy)
        if self._config.probes:
            m.d.comb += [self.probe[f"layer{k}"].eq(layer.probe) for k, layer in enumerate(layers)]
        return m


def probe_layouts(config: CoreConfig) -> data.StructLayout:
    """Every layer's probe capture, `layer0` ... (`common.probe_layout` each)."""
    return data.StructLayout({f"layer{k}": probe_layout(layer) for k, layer in enumerate(config.layers)})
