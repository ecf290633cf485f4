"""One layer: crossbar -> neuron array -> collector, joined by streams.

The crossbar is the dense `Crossbar` or, when the layer's `events` is set, the event-driven
`EventCrossbar`: same ports, same output, so nothing else in the layer depends on the kind.

The collector gathers the per-group spikes (and, with `membranes`, pre-reset membranes) of a
timestep into one payload for the next layer; it holds that payload until the next layer
takes it, while this layer already computes the following timestep, so consecutive layers
work on consecutive timesteps at once (the same-timestep semantics are kept: layer k+1 sees
exactly layer k's spikes of the same timestep).

A recurrent layer (`config.recurrent`) feeds its crossbar `crossbar_inputs` = n_in + n_out inputs: the
timestep's spikes, then its own spikes of the previous timestep, which the collector already holds (its `z`
register; a state clear zeroes it). The dense crossbar takes them late (`Crossbar(late=n_out)`): it walks a
timestep's chunks of inputs while the previous timestep finishes, and waits at its late chunks until the layer's
counts say that timestep has landed in the collector. Before the event-driven crossbar, which chooses at its
capture, the next timestep is offered only once the current one has landed: its crossbar and neuron array work on
one timestep at a time (docs/gateware.md, "Recurrent layers").

With `probes`, the collector also holds every neuron's pre-reset membrane and current of the
timestep, beside its spikes, for the framer to stream (`probe`); they stay put until the layer's
next timestep, which the core holds back while a probe is selected (rtl/top.py).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikeloop.config import LayerConfig

from .common import WINDOW, LayerControl, MemBus, Probed, check_type, parameters, probe_layout, spike_layout
from .crossbar import Crossbar
from .events import EventCrossbar
from .neuron import NeuronArray

__all__ = ["Layer"]


class Layer(wiring.Component, Probed):
    """A layer of `config.n_out` neurons fed by a binary crossbar of `config.n_in` inputs.

    Parameters (keyword-only)
    ----------
    config : LayerConfig (sizes, lanes, chunk or events, widths, decay, recurrent).
    membranes : bool, whether the output payload carries the pre-reset membranes `v`.
    probes : bool, whether the layer captures its timestep's z, v' and u for the probes (`probe`).

    Members
    -------
    i_stream : In(stream of `spike_layout(n_in)`), one payload per timestep.
    o_stream : Out(stream of `spike_layout(n_out[, membranes=v_bits])`), one payload per timestep.
    ctrl : In(LayerControl).
    bus : In(MemBus), the layer's windows (weights, theta, bias, v, u).
    probe : Out(`probe_layout(config)`), with `probes`: the last timestep's spikes, membranes v' and
        currents u of every neuron, held in registers.
    """

    def __init__(self, *, config: LayerConfig, membranes: bool = False, probes: bool = False):
        with parameters(self):
            check_type("config", config, LayerConfig)
            check_type("membranes", membranes, bool)
            check_type("probes", probes, bool)
        self._config = config
        self._membranes = membranes
        self._probes_built = probes
        width = config.crossbar_inputs  # with `recurrent`, the previous spikes after the inputs
        if config.events is None:
            self._crossbar = Crossbar(n_in=width, n_out=config.n_out, lanes=config.lanes, chunk=config.chunk,
                                      late=config.n_out if config.recurrent else 0)
        else:
            self._crossbar = EventCrossbar(n_in=width, n_out=config.n_out, lanes=config.lanes, events=config.events)
        self._neurons = NeuronArray(
            n_in=width, n_out=config.n_out, lanes=config.lanes, v_bits=config.v_bits, u_bits=config.u_bits,
            frac_bits=config.frac_bits, decay=config.decay, probes=probes, options=config.options,
        )
        self._addr_width = max(self._crossbar.addr_width, self._neurons.addr_width)
        members = {
            "i_stream": In(stream.Signature(spike_layout(config.n_in))),
            "o_stream": Out(stream.Signature(
                spike_layout(config.n_out, membranes=config.v_bits if membranes else None))),
            "ctrl": In(LayerControl()),
            "bus": In(MemBus(addr_width=self._addr_width)),
        }
        if probes:
            members["probe"] = Out(probe_layout(config))
        super().__init__(members)

    @property
    def config(self) -> LayerConfig:
        """The layer's build configuration."""
        return self._config

    @property
    def crossbar(self) -> Crossbar | EventCrossbar:
        """The layer's crossbar: `EventCrossbar` when `config.events` is set, else `Crossbar`."""
        return self._crossbar

    @property
    def neurons(self) -> NeuronArray:
        """The layer's neuron array."""
        return self._neurons

    @property
    def membranes(self) -> bool:
        """Whether the output payload carries the membranes."""
        return self._membranes

    @property
    def addr_width(self) -> int:
        """Width of the windows' word address."""
        return self._addr_width

    def elaborate(self, platform):
        m = Module()
        c = self._config
        P, NG = c.lanes, c.n_groups
        m.submodules.crossbar = xbar = self._crossbar
        m.submodules.neurons = neurons = self._neurons

        wiring.connect(m, producer=xbar.o_stream, consumer=neurons.i_stream)
        for name, member in self.ctrl.signature.members.items():  # run-time values in, clearing out
            if name != "busy":
                inner, outer = getattr(neurons.ctrl, name), getattr(self.ctrl, name)
                m.d.comb += inner.eq(outer) if member.flow == In else outer.eq(inner)

        # ---- bus: each window goes to the child that owns it; addresses past a child's window
        # are refused (writes) or read as 0.
        bus = self.bus
        is_weights = bus.sel == WINDOW["weights"]
        fits_xbar = bus.addr[xbar.addr_width:] == 0 if self._addr_width > xbar.addr_width else 1
        fits_neur = bus.addr[neurons.addr_width:] == 0 if self._addr_width > neurons.addr_width else 1
        fits = Mux(is_weights, fits_xbar, fits_neur)
        miss_ack = Signal()
        m.d.sync += miss_ack.eq(bus.r_stb & ~fits)
        for child, mine in ((xbar.bus, is_weights), (neurons.bus, ~is_weights)):
            m.d.comb += [
                child.sel.eq(bus.sel),
                child.addr.eq(bus.addr),
                child.w_data.eq(bus.w_data),
                child.w_stb.eq(bus.w_stb & mine & fits),
                child.r_stb.eq(bus.r_stb & mine & fits),
            ]
        m.d.comb += [
            bus.w_err.eq((bus.w_stb & ~fits) | xbar.bus.w_err | neurons.bus.w_err),
            bus.r_ack.eq(xbar.bus.r_ack | neurons.bus.r_ack | miss_ack),
            bus.r_data.eq(Mux(xbar.bus.r_ack, xbar.bus.r_data, 0) | Mux(neurons.bus.r_ack, neurons.bus.r_data, 0)),
        ]

        # ---- collector
        beat = neurons.o_stream
        o_valid = Signal()
        z = Signal(NG * P)
        m.d.comb += beat.ready.eq(~o_valid | self.o_stream.ready)
        with m.If(self.o_stream.ready):
            m.d.sync += o_valid.eq(0)
        with m.If(beat.valid & beat.ready):
            with m.Switch(beat.p.group):
                for g in range(NG):
                    with m.Case(g):
                        m.d.sync += z[g * P : (g + 1) * P].eq(beat.p.z)
            with m.If(beat.p.end):
                m.d.sync += [o_valid.eq(1), self.o_stream.p.last.eq(beat.p.last)]
        m.d.comb += [
            self.o_stream.valid.eq(o_valid),
            self.o_stream.p.spikes.eq(z[: c.n_out]),
        ]
        captured = {"v": self._membranes or self._probes_built, "u": self._probes_built}
        held = {}
        for kind, wanted in captured.items():
            if not wanted:
                continue
            held[kind] = regs = [Signal.like(beat.p[kind][0], name=f"{kind}{j}") for j in range(NG * P)]
            with m.If(beat.valid & beat.ready):
                with m.Switch(beat.p.group):
                    for g in range(NG):
                        with m.Case(g):
                            m.d.sync += [regs[g * P + p].eq(beat.p[kind][p]) for p in range(P)]
        if self._membranes:
            m.d.comb += self.o_stream.p.v.eq(Cat(*held["v"][: c.n_out]))
        if self._probes_built:
            m.d.comb += [
                self.probe.z.eq(z[: c.n_out]),
                self.probe.v.eq(Cat(*held["v"][: c.n_out])),
                self.probe.u.eq(Cat(*held["u"][: c.n_out])),
            ]

        # ---- the crossbar's input: the timestep's spikes (and, recurrent, the previous timestep's own)
        if c.recurrent and c.events is None:
            # the dense crossbar takes the previous spikes late: it walks a group's chunks of inputs, then waits at
            # its late chunks until the timestep before the one it took has left the neuron array
            taken, landed = Signal(2), Signal(2)  # timesteps taken by the crossbar, and whose spikes are all in z
            m.d.comb += [
                xbar.i_stream.valid.eq(self.i_stream.valid),
                xbar.i_stream.p.spikes.eq(Cat(self.i_stream.p.spikes, Const(0, c.n_out))),
                xbar.i_stream.p.last.eq(self.i_stream.p.last),
                self.i_stream.ready.eq(xbar.i_stream.ready),
                xbar.late_bits.eq(z[: c.n_out]),
                xbar.late_valid.eq((taken - landed)[:2] == 1),
            ]
            with m.If(xbar.i_stream.valid & xbar.i_stream.ready):
                m.d.sync += taken.eq(taken + 1)
            with m.If(beat.valid & beat.ready & beat.p.end):
                m.d.sync += landed.eq(landed + 1)
            with m.If(self.ctrl.clear):  # z[-1] = 0 again (the core clears only while no timestep is in flight)
                m.d.sync += z.eq(0)
            pending = (taken != landed)
        elif c.recurrent:
            pending = Signal()  # a timestep is in the crossbar or the neuron array: `z` is not complete yet
            m.d.comb += [
                xbar.i_stream.valid.eq(self.i_stream.valid & ~pending),
                xbar.i_stream.p.spikes.eq(Cat(self.i_stream.p.spikes, z[: c.n_out])),
                xbar.i_stream.p.last.eq(self.i_stream.p.last),
                self.i_stream.ready.eq(xbar.i_stream.ready & ~pending),
            ]
            with m.If(xbar.i_stream.valid & xbar.i_stream.ready):
                m.d.sync += pending.eq(1)
            with m.If(beat.valid & beat.ready & beat.p.end):
                m.d.sync += pending.eq(0)
            with m.If(self.ctrl.clear):  # z[-1] = 0 again (the core clears only while no timestep is in flight)
                m.d.sync += z.eq(0)
        else:
            wiring.connect(m, wiring.flipped(self.i_stream), xbar.i_stream)

        m.d.comb += self.ctrl.busy.eq(xbar.busy | neurons.ctrl.busy | o_valid)
        # the collector's own timestep (the crossbar and the neuron array name theirs); recurrent, `pending`
        self._probes = {"steps": o_valid, "lasts": o_valid & self.o_stream.p.last}
        if c.recurrent:
            self._probes["pending"] = pending
        return m
