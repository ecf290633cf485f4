"""Formal proofs of the gateware: Amaranth harnesses, their SymbiYosys jobs, and a runner.

Each `Job` builds a harness (the design under proof plus `Assert`/`Assume`/`Cover` statements,
Amaranth 0.5), exports it with `amaranth.back.rtlil.convert`, writes an .sby file and runs
`yowasp-sby` with the `smtbmc z3` engine (TOOLCHAIN.md, "Formal proofs from PyPI"; the core's
jobs with `smtbmc yices`):

    python tests/formal/formal_jobs.py                 # every job, one line each: result and time
    python tests/formal/formal_jobs.py core-prove      # one job; its files under build/formal/core-prove

The harnesses (docs/gateware.md, "Formal proofs"):

- `NeuronHarness`: `rtl.neuron.neuron_update`, the per-lane datapath of every `NeuronArray`,
  against docs/numerics.md computed on wide integers, for every input of a small width: the
  current and the membrane saturate exactly at their rails, the spike is `v' >= theta`, and the
  membrane after each reset mode is the contract's value and lies inside its range (no wrap).
  Covers: a spike, `v' == theta` firing, both rails of `v'` and of `u`.
- `CoreHarness`: the whole core (AXI ports, framing, a two-layer network with membranes) of a
  small configuration, by k-induction, with no assumption on the environment (any inputs,
  any resets, any handshakes):
  every stream (the AXI-Stream output and each internal `lib.stream` between framing, crossbar,
  neuron array and collector) holds valid and payload while stalled; counting timesteps at
  every boundary (the AXI-Stream ports and each internal stream), each component (deframer,
  each crossbar, neuron array and collector, framer) holds exactly the timesteps that crossed its
  input and not its output (its `probes`), and so the core holds the timesteps taken minus those
  given out (none dropped or duplicated), and likewise for those carrying TLAST; the
  framing's word positions match independent counts, output TLAST is only on the last word of a
  timestep; AXI-Lite: AW and W are taken together, a response answers exactly one open request
  and no request is taken while one is open (the open requests equal the FSM's state),
  BVALID/RVALID (and RDATA) are held until accepted, and every response is OKAY.
  Covers (from reset, on the smaller `COVER_CORE`, the AXI-Lite master free to load parameters):
  a whole transfer out with TLAST, an output spike, the last layer's `v'` at both rails in the
  output stream, a truncated transfer still closed by TLAST.
  The components' counts are inductive at depth 1; their sum, the core's count, is proven apart
  (`whole`: the components' counts assumed), since a solver relates a sum of nine counts to the
  core's slowly when the whole core is in the same query.
- `EventCrossbarHarness`: `rtl.events.EventCrossbar` of 5 inputs, 3 neurons, 2 lanes, 2 banks on its own,
  by k-induction (any handshakes, bus requests and resets; the input stream's producer keeps the
  stream rule): the output stream holds while stalled, the crossbar holds the timesteps (and TLAST
  timesteps) in minus out, and W's walk equals a reference walk: per bank, the chooser's registers
  are the function of the inputs left in the group, the record of the first group's items holds the
  capture's items (read through the harness's own ports), the later groups replay it, and each item
  reads the rows of the lowest inputs left. With `sums`, a bounded check from reset (memories mapped
  to registers: the solver takes them far quicker than as arrays) that the first timestep's sums equal
  sum_i w[j,i] s[i] of the weights written. Covers: multi-item groups (and replayed ones), a bus read
  answered while the output is held, back-to-back timesteps, a timestep out with TLAST, the sums of a
  three-item group after a weight write. The proof runs on a second layer too (10 inputs, 5 neurons,
  2 lanes, 3 banks: 3 groups, bank rows with padding slots, a popcount tree stage).

- `RecurrentLayerHarness`: a recurrent `rtl.layer.Layer` (3 inputs, 2 neurons; dense, and event-driven with 2
  banks) on its own, bounded from reset: the crossbar takes a timestep only once the previous one has left the
  neuron array, so the previous spikes it takes as inputs are complete; they are the collector's, and zero after a
  state clear; counting in every component. Covers: a previous spike taken as an input, a sum of the previous
  spikes alone (a spike fed back).

Every job must end PASS: in prove mode a failed base case or induction step (a counterexample
trace is then under `<workdir>/<job>/run/engine_0/`), in cover mode an unreached cover, fails it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import (
    Assert,
    Assume,
    Cat,
    Const,
    Cover,
    Elaboratable,
    Fragment,
    Module,
    Mux,
    ResetSignal,
    Signal,
    Value,
    signed,
)

from spikeloop import toolchain
from spikeloop.config import CoreConfig, LayerConfig
from spikeloop.network import INPUT_SHIFT_RANGE, BiasTo, Neuron, Overflow, Reset, Rounding, VRange
from spikeloop.regmap import layer_register
from spikeloop.stream import output_words_per_timestep, words_per_timestep

__all__ = [
    "Harness", "NeuronHarness", "CoreHarness", "Job", "JOBS", "Result", "available", "sby_text", "write_job",
    "run_job", "main",
]

#: Where `main` and the tests put each job's files (RTLIL, .sby, the solver's logs and traces).
DEFAULT_WORKDIR = Path("build") / "formal"


# ------------------------------------------------------------------------------------------------ harnesses

class Harness(Elaboratable):
    """A design under proof and its properties.

    `free(shape, name)` makes a signal the solver may set to any value in every cycle (a
    top-level input of the exported design); `ports()` lists them for `rtlil.convert`.
    """

    def __init__(self):
        self._inputs: list[Signal] = []

    def free(self, shape, name: str) -> Signal:
        """A signal with any value in every cycle (a view, for a layout)."""
        sig = Signal(shape, name=name)
        self._inputs.append(Value.cast(sig))
        return sig

    def ports(self) -> list[Signal]:
        """The free signals (call after elaboration: harnesses create some while elaborating)."""
        return list(self._inputs)

    @staticmethod
    def inputs_of(component) -> list[Value]:
        """Every input port of `component` (a `wiring.Component` under proof): free signals too."""
        from amaranth.lib import wiring

        return [Value.cast(value) for path, member, value in component.signature.flatten(component)
                if member.flow == wiring.In]

    def rtlil(self) -> str:
        """The harness as RTLIL text, module `top`."""
        fragment = Fragment.get(self, None)
        return rtlil.convert(fragment, name="top", ports=self.ports())


class _History:
    """Values of the previous cycle (registers that no reset touches), for properties over two cycles."""

    def __init__(self, m: Module):
        self._m = m
        self.started = Signal(reset_less=True, name="started")  # a previous cycle exists
        m.d.sync += self.started.eq(1)
        self.rst = ResetSignal("sync")
        self.past_rst = self.past(self.rst, "rst")

    def past(self, value, name: str) -> Signal:
        value = Value.cast(value)
        sig = Signal(value.shape(), reset_less=True, name=f"past_{name}")
        self._m.d.sync += sig.eq(value)
        return sig

    def stalled_then(self, valid, ready, payload, name: str):
        """Conditions for 'a stall in the previous cycle (no reset) holds valid and payload now'."""
        stalled = self.past(Value.cast(valid) & ~Value.cast(ready), f"{name}_stalled")
        before = self.past(payload, f"{name}_payload")
        return self.started & stalled & ~self.past_rst, before


def _stable_while_stalled(m: Module, h: _History, name: str, valid, ready, payload, *, check=Assert) -> None:
    """Assert the stream rule: valid & ~ready -> next cycle valid, with the same payload (with `check=Assume`,
    assume it: a producer outside the design under proof keeps it)."""
    when, before = h.stalled_then(valid, ready, payload, name)
    with m.If(when):
        m.d.comb += [
            check(valid, f"{name}: valid dropped while stalled"),
            check(Value.cast(payload) == before, f"{name}: payload changed while stalled"),
        ]


def _clamp(value, lo, hi):
    return Mux(value > hi, hi, Mux(value < lo, lo, value))


def _keeps(m: Module, x, d, frac_bits: int, name: str) -> tuple[Signal, Signal, Signal]:
    """The contract's keep(x, d) for each rounding (floor, zero, nearest), straight from docs/numerics.md:
    p = x * (2^F - d); floor: x - ((x*d) >> F); zero: sign(p) * (|p| >> F); nearest: sign(p) * ((|p| + h) >> F).
    On integers of len(x) + F + 3 bits, wide enough for every d in [0, 2^F]."""
    F = frac_bits
    narrow = signed(len(Value.cast(x)) + F + 3)

    def sig(suffix, expr):
        s = Signal(narrow, name=f"ref_{name}_{suffix}")
        m.d.comb += s.eq(expr)
        return s

    d = d[: F + 2].as_signed()  # 0..2^F
    p = sig("p", x * ((1 << F) - d))
    mag = sig("abs", Mux(p < 0, -p, p))
    near = sig("near", (mag + ((1 << F) >> 1)) >> F)
    return (sig("floor", x - ((x * d) >> F)), sig("zero", Mux(p < 0, -(mag >> F), mag >> F)),
            sig("nearest", Mux(p < 0, -near, near)))


def _rounded(rounding, keeps):
    """The one of `keeps` (floor, zero, nearest) that the `Rounding` code `rounding` picks."""
    return Mux(rounding == Rounding.ZERO, keeps[1], Mux(rounding == Rounding.NEAREST, keeps[2], keeps[0]))


def _between_zero_and(x, value):
    """`value` lies between 0 and `x` (both included): what a decay may take from x."""
    return Mux(x < 0, (value >= x) & (value <= 0), (value >= 0) & (value <= x))


class DecayHarness(Harness):
    """`rtl.neuron.Decay` against the contract's keep(x, d), for every x of `bits` bits, every d in
    [0, 2^F] (0 or a power of two with mode "shift") and every rounding: `x - of(x)` is keep(x, d), and
    the loss lies between 0 and x (the range `NeuronHarness` gives its free losses). Covers: each rounding
    keeping a value the others do not."""

    def __init__(self, *, decay: str = "shift", bits: int = 6, frac_bits: int = 2):
        super().__init__()
        self.decay, self.bits, self.frac_bits = decay, bits, frac_bits

    def elaborate(self, platform):
        from spikeloop.rtl.common import DECAY_BITS
        from spikeloop.rtl.neuron import Decay

        m = Module()
        F = self.frac_bits
        x, d = self.free(signed(self.bits), "x"), self.free(DECAY_BITS, "d")
        rounding = self.free(layer_register("MODE").field("decay_round").width, "rounding")
        m.d.comb += [Assume(d <= (1 << F)), Assume(rounding <= max(Rounding))]
        if self.decay == "shift":
            m.d.comb += Assume((d & (d - 1)) == 0)
        loss = Signal(signed(self.bits + 1), name="loss")
        m.d.comb += loss.eq(Decay(m, d, rounding=rounding, frac_bits=F, mode=self.decay, name="d").of(x))
        keeps = _keeps(m, x, d, F, "keep")
        m.d.comb += [
            Assert(x - loss == _rounded(rounding, keeps), "x - Decay.of(x) differs from the contract's keep(x, d)"),
            Assert(_between_zero_and(x, loss), "the loss is not between 0 and x"),
            Cover((rounding == Rounding.ZERO) & (x > 0) & (keeps[1] < keeps[0]),
                  "toward zero leaks a positive x that floor keeps"),
            Cover((rounding == Rounding.NEAREST) & (x < 0) & (keeps[2] != keeps[0]) & (keeps[2] != keeps[1]),
                  "nearest differs from floor and from zero"),
        ]
        return m


class NeuronHarness(Harness):
    """`neuron_update` against the contract on wide integers, for every input and every combination
    of the run-time options (combinational).

    Inputs are free within the contract's ranges: syn in [-n_in, n_in] (the crossbar's sums),
    any bias, v and u of their widths, theta in [0, 2^(V-1)-1] (0 is the memories' state
    before a network is loaded), and any MODE the register file takes: every neuron kind, reset
    code, decay rounding, bias target, overflow and v range, input_shift in [0, 16]. The decays:
    with `decays` the lanes' `Decay`s, lam and alpha free in [0, 2^F] (0 or powers of two with decay
    "shift"), against the contract's keep; without, what they take from v and u is free between 0 and
    the value, and keep(x) = x - loss: with `DecayHarness`, which proves every `Decay` gives exactly
    x - keep(x, d) inside that range, this proves the whole contract, and is several times quicker.
    """

    def __init__(self, *, decay: str = "shift", n_in: int = 9, v_bits: int = 5, u_bits: int = 4,
                 frac_bits: int = 2, decays: bool = False):
        super().__init__()
        self.config = LayerConfig(n_in, 1, v_bits=v_bits, u_bits=u_bits, frac_bits=frac_bits, decay=decay)
        self.decays = decays

    def elaborate(self, platform):
        from spikeloop.rtl.common import DECAY_BITS
        from spikeloop.rtl.neuron import Decay, neuron_update
        from spikeloop.rtl.registers import field_layout

        m = Module()
        c = self.config
        V, U, F = c.v_bits, c.u_bits, c.frac_bits
        syn = self.free(signed(c.syn_bits), "syn")
        bias, theta, v = (self.free(signed(V), name) for name in ("bias", "theta", "v"))
        u = self.free(signed(U), "u")
        mode_reg = layer_register("MODE")
        mode = self.free(field_layout(mode_reg), "mode")
        m.d.comb += [
            Assume((syn >= -c.n_in) & (syn <= c.n_in)),
            Assume((theta >= 0) & (theta <= (1 << (V - 1)) - 1)),
            *(Assume(mode[f.name] <= f.top) for f in mode_reg.fields if f.top is not None),  # what MODE takes
        ]
        if self.decays:
            lam, alpha = self.free(DECAY_BITS, "lam"), self.free(DECAY_BITS, "alpha")
            m.d.comb += [Assume(lam <= (1 << F)), Assume(alpha <= (1 << F))]
            if c.decay == "shift":
                m.d.comb += [Assume((lam & (lam - 1)) == 0), Assume((alpha & (alpha - 1)) == 0)]
            lam_loss = Decay(m, lam, rounding=mode.decay_round, frac_bits=F, mode=c.decay, name="lam").of(v)
            alpha_loss = Decay(m, alpha, rounding=mode.decay_round, frac_bits=F, mode=c.decay, name="alpha").of(u)
            keep_u, keep_v = _keeps(m, u, alpha, F, "keep_u"), _keeps(m, v, lam, F, "keep_v")
            kept_u, kept_v = _rounded(mode.decay_round, keep_u), _rounded(mode.decay_round, keep_v)
        else:
            lam_loss, alpha_loss = self.free(signed(V + 1), "lam_loss"), self.free(signed(U + 1), "alpha_loss")
            m.d.comb += [Assume(_between_zero_and(v, lam_loss)), Assume(_between_zero_and(u, alpha_loss))]
            kept_u, kept_v = u - alpha_loss, v - lam_loss
        lane = neuron_update(m, syn=syn, bias=bias, theta=theta, v=v, u=u, lam_loss=lam_loss,
                             alpha_loss=alpha_loss, mode=mode, v_bits=V, u_bits=U)

        # ---- the contract (docs/numerics.md) on integers wide enough that nothing below can overflow
        # (|a_u| <= n_in * 2^16 + 2^(V-1); the rest adds a few bits)
        wide = signed(c.syn_bits + INPUT_SHIFT_RANGE[1] + max(U, V) + 4)

        def ref(name, expr):
            sig = Signal(wide, name=f"ref_{name}")
            m.d.comb += sig.eq(expr)
            return sig

        cuba = mode.neuron == Neuron.CUBA
        to_membrane = mode.bias_to == BiasTo.MEMBRANE
        wrap = mode.u_overflow == Overflow.WRAP
        lo_u, hi_u, hi_v = -(1 << (U - 1)), (1 << (U - 1)) - 1, (1 << (V - 1)) - 1
        lo_v = ref("lo_v", Mux(mode.v_range == VRange.SYMMETRIC, -hi_v, -hi_v - 1))
        a_u = ref("a_u", (ref("syn", syn) << mode.input_shift) + Mux(to_membrane, 0, bias))
        u_raw = ref("u_raw", kept_u + a_u)
        u_wrapped = ref("u_wrapped", ((u_raw - lo_u) & ((1 << U) - 1)) + lo_u)
        u_ref = ref("u", Mux(wrap, u_wrapped, _clamp(u_raw, lo_u, hi_u)))
        u_in = ref("u_in", Mux(cuba, u_ref, a_u))
        r = ref("r", Mux((mode.reset == Reset.SUBTRACT_NEXT) & (v >= theta), theta, 0))
        v_raw = ref("v_raw", kept_v + u_in + Mux(to_membrane, bias, 0) - r)
        vp_ref = ref("vp", _clamp(v_raw, lo_v, hi_v))
        z_ref = vp_ref >= theta
        vn_ref = ref("vn", Mux(mode.reset == Reset.SUBTRACT, vp_ref - Mux(z_ref, theta, 0),
                               Mux((mode.reset == Reset.ZERO) & z_ref, 0, vp_ref)))
        fires = lane.z & (theta >= 1)
        m.d.comb += [
            Assert(lane.u_cuba == u_ref, "current differs from fit_U(keep(u, alpha) + a_u)"),
            Assert(lane.u == u_in, "current of the timestep differs from u (cuba) or a_u (lif)"),
            Assert(lane.v_pre == vp_ref, "membrane differs from sat'_V(keep(v, lam) + u + b_v - r)"),
            Assert(lane.z == z_ref, "spike differs from v' >= theta"),
            Assert((vn_ref >= lo_v) & (vn_ref <= hi_v), "the contract's reset leaves the membrane range"),
            Assert(lane.v_next == vn_ref, "membrane after reset differs from the contract (or wrapped)"),
            Assert((u_ref >= lo_u) & (u_ref <= hi_u), "current outside its range"),
            Cover(fires, "spike"),
            Cover(fires & (lane.v_pre == theta) & (mode.reset == Reset.SUBTRACT) & (lane.v_next == 0),
                  "v' == theta fires, subtract leaves 0"),
            Cover((v_raw > hi_v) & (lane.v_pre == hi_v), "membrane saturates at the upper rail"),
            Cover((v_raw < lo_v) & (lane.v_pre == -hi_v - 1), "membrane saturates at the lower rail"),
            Cover((v_raw < lo_v) & (lane.v_pre == -hi_v), "membrane saturates at the symmetric lower rail"),
            Cover(cuba & (u_raw > hi_u) & (lane.u_cuba == hi_u), "current saturates at the upper rail"),
            Cover(cuba & (u_raw < lo_u) & (lane.u_cuba == lo_u), "current saturates at the lower rail"),
            Cover(cuba & (u_raw > hi_u) & (lane.u_cuba < 0), "current wraps from above to negative"),
            Cover(cuba & (u_raw < lo_u) & (lane.u_cuba >= 0), "current wraps from below to non-negative"),
            Cover(fires & (mode.reset == Reset.SUBTRACT) & (lane.v_next == hi_v - 1),
                  "subtract from the upper rail with theta 1"),
            Cover(fires & (mode.reset == Reset.SUBTRACT_NEXT) & (r != 0) & (lane.v_next == lane.v_pre),
                  "subtract_next takes theta off the step after a spike, fires again and keeps v'"),
            Cover((mode.input_shift == INPUT_SHIFT_RANGE[1]) & (syn != 0) & ~cuba & (lane.u == a_u),
                  "the largest input shift"),
            Cover(fires & to_membrane & (bias > 0) & cuba & (u_in == 0) & (v == 0) & (r == 0),
                  "a bias into the membrane fires a neuron with no current"),
        ]
        if self.decays:
            m.d.comb += [
                Cover((mode.decay_round == Rounding.ZERO) & (v > 0) & (keep_v[0] == v) & (keep_v[1] < v)
                      & (lane.v_pre < v) & (syn == 0) & (bias == 0) & ~cuba,
                      "a small membrane that floor keeps leaks with rounding toward zero"),
                Cover((mode.decay_round == Rounding.NEAREST) & (keep_v[2] != keep_v[0]) & (keep_v[2] != keep_v[1]),
                      "nearest differs from floor and from zero (membrane)"),
                Cover(cuba & (mode.decay_round == Rounding.NEAREST) & (u < 0) & (keep_u[2] != keep_u[0])
                      & (keep_u[2] != keep_u[1]), "nearest differs from floor and from zero (negative current)"),
            ]
        return m


#: The core the sequential proofs run on: 34 inputs (two bus words per timestep, so framing and
#: truncation are exercised), a layer of 3 neurons in 2 groups of 2 lanes (one padding lane) and
#: 2 chunks of 17, a layer of 2 neurons in 2 groups of 1 lane and 2 chunks of 2, 4-bit membranes,
#: membranes on the output (3 words per timestep), built with contract v2's options (the larger datapath;
#: `neuron_update` without them is the same with constants, checked by tests/rtl/test_rtl_neuron.py).
SMALL_CORE = CoreConfig.build((34, 3, 2), lanes=[2, 1], chunk=[17, 2], v_bits=4, u_bits=4, frac_bits=2,
                              membranes=True, options=True)


#: The core the covers run on (a cover is a search from reset, and its cost grows quickly with
#: depth): one layer of 2 neurons, 1 lane, 2 chunks of 17 over two input words, membranes on.
COVER_CORE = CoreConfig.build((34, 2), lanes=1, chunk=17, v_bits=4, u_bits=4, frac_bits=2, membranes=True,
                             options=True)


class CoreHarness(Harness):
    """The whole `Core` of `config`: stream, counting and AXI-Lite properties (see the module docstring).

    With `whole`, only the core's count: each component's count is assumed (what the harness without
    `whole` proves in every reachable state) and the core's, their sum, asserted.
    """

    def __init__(self, config: CoreConfig = SMALL_CORE, *, whole: bool = False):
        super().__init__()
        from spikeloop.rtl.top import Core

        self.config = config
        self.core = Core(config=config)
        self.whole = whole

    def ports(self) -> list[Signal]:
        from amaranth.lib import wiring

        inputs = [getattr(self.core, name) for name, member in self.core.signature.members.items()
                  if member.flow == wiring.In]
        return super().ports() + inputs

    def elaborate(self, platform):
        m = Module()
        cfg, core = self.config, self.core
        m.submodules.core = Fragment.get(core, platform)  # elaborated now, so its probes exist
        h = _History(m)
        net = core.network
        self._counting(m, net)
        if not self.whole:
            self._streams(m, h)
            self._axi_lite(m, h)
            self._covers(m, cfg)
        return m

    def _streams(self, m, h):
        core, net = self.core, self.core.network
        _stable_while_stalled(m, h, "m_axis", core.m_axis_tvalid, core.m_axis_tready,
                              Cat(core.m_axis_tdata, core.m_axis_tlast))
        _stable_while_stalled(m, h, "framing", net.i_stream.valid, net.i_stream.ready, net.i_stream.payload)
        for k, layer in enumerate(net.layers):
            for name, stream in (("crossbar", layer.crossbar.o_stream), ("neurons", layer.neurons.o_stream),
                                 ("collector", layer.o_stream)):
                _stable_while_stalled(m, h, f"layer{k}.{name}", stream.valid, stream.ready, stream.payload)

    def _counting(self, m, net):
        cfg, core = self.config, self.core
        words_in = words_per_timestep(cfg.n_in, cfg.bus_width)
        words_out = output_words_per_timestep(cfg)
        in_word = Signal(range(max(2, words_in)), name="in_word")  # position of the next input word
        out_word = Signal(range(max(2, words_out)), name="out_word")
        self._in_word, self._out_word = in_word, out_word
        take = core.s_axis_tvalid & core.s_axis_tready & ~core.probes["to_loader"]  # load frames are no timesteps
        ends_in = take & ((in_word == words_in - 1) | core.s_axis_tlast)
        give = core.m_axis_tvalid & core.m_axis_tready
        ends_out = give & (out_word == words_out - 1)
        with m.If(take):
            m.d.sync += in_word.eq(Mux(ends_in, 0, in_word + 1))
        with m.If(give):
            m.d.sync += out_word.eq(Mux(ends_out, 0, out_word + 1))

        # Timesteps (and those carrying TLAST) that crossed each boundary, from the AXI-Stream input
        # through every internal stream to the AXI-Stream output (counts modulo 2^8). Each component's
        # count is inductive on its own; their sum is a sum of 9 of them (hard for a solver to
        # relate to the core's count in one query: `whole` proves it apart).
        def crossing(stream, end):
            moved = stream.valid & stream.ready & end
            return moved, moved & stream.payload.last

        boundaries = [("s_axis", (ends_in, ends_in & core.s_axis_tlast))]
        parts = [core.deframer]
        boundaries.append(("framing", crossing(net.i_stream, 1)))
        for k, layer in enumerate(net.layers):
            xbar, neurons = layer.crossbar, layer.neurons
            boundaries += [(f"layer{k}.crossbar", crossing(xbar.o_stream, xbar.o_stream.payload.end)),
                           (f"layer{k}.neurons", crossing(neurons.o_stream, neurons.o_stream.payload.end)),
                           (f"layer{k}.collector", crossing(layer.o_stream, 1))]
            parts += [xbar, neurons, layer]
        boundaries.append(("m_axis", (ends_out, give & core.m_axis_tlast)))
        parts.append(core.framer)
        crossed = []
        for name, (step, last) in boundaries:
            count = Signal(8, name=f"crossed_{name}")
            count_last = Signal(8, name=f"crossed_last_{name}")
            m.d.sync += [count.eq(count + step), count_last.eq(count_last + last)]
            crossed.append((count, count_last))
        # each component holds the timesteps that crossed its input and not yet its output ...
        check = Assume if self.whole else Assert
        for part, (into, into_last), (out, out_last), (name, _) in zip(parts, crossed, crossed[1:], boundaries[1:]):
            held, held_last = Signal(8, name=f"held_{name}"), Signal(8, name=f"held_last_{name}")
            m.d.comb += [held.eq(part.probes["steps"]), held_last.eq(part.probes["lasts"])]
            m.d.comb += [
                check((into - out)[:8] == held, f"{name}: timesteps in - out != those it holds"),
                check((into_last - out_last)[:8] == held_last, f"{name}: TLAST timesteps in - out != those it holds"),
            ]
        # ... so the core holds those taken and not given
        taken = Signal(8, name="taken_minus_given")  # timesteps
        taken_last = Signal(8, name="taken_minus_given_last")  # timesteps carrying TLAST
        steps = Signal(8, name="steps_inside")
        lasts = Signal(8, name="lasts_inside")
        m.d.comb += [
            taken.eq(crossed[0][0] - crossed[-1][0]), taken_last.eq(crossed[0][1] - crossed[-1][1]),
            steps.eq(sum(part.probes["steps"] for part in parts)),
            lasts.eq(sum(part.probes["lasts"] for part in parts)),
        ]
        if self.whole:
            m.d.comb += [
                Assert(taken == steps, "timesteps taken - given != timesteps inside: one was dropped or duplicated"),
                Assert(taken_last == lasts,
                       "TLAST timesteps taken - given != those inside: a TLAST was lost or added"),
            ]
            return
        m.d.comb += [Assert(value, f"{name}: a component's own state is inconsistent")
                     for name, value in core.probes.items() if name.endswith("_ok")]
        m.d.comb += [
            Assert(in_word == core.probes["widx"], "input framing out of step with the words taken"),
            Assert(Mux(core.m_axis_tvalid, out_word == core.probes["oidx"], out_word == 0),
                   "output framing out of step with the words given"),
            Assert(~(core.m_axis_tvalid & core.m_axis_tlast) | (out_word == words_out - 1),
                   "TLAST on a word that does not end a timestep"),
        ]

    def _axi_lite(self, m, h):
        core = self.core
        _stable_while_stalled(m, h, "s_axi_b", core.s_axi_bvalid, core.s_axi_bready, core.s_axi_bresp)
        _stable_while_stalled(m, h, "s_axi_r", core.s_axi_rvalid, core.s_axi_rready,
                              Cat(core.s_axi_rdata, core.s_axi_rresp))
        aw = core.s_axi_awvalid & core.s_axi_awready
        w = core.s_axi_wvalid & core.s_axi_wready
        b = core.s_axi_bvalid & core.s_axi_bready
        ar = core.s_axi_arvalid & core.s_axi_arready
        r = core.s_axi_rvalid & core.s_axi_rready
        writes = Signal(2, name="writes_open")  # requests taken and not yet answered
        reads = Signal(2, name="reads_open")
        m.d.sync += [writes.eq(writes + aw - b), reads.eq(reads + ar - r)]
        m.d.comb += [
            Assert(aw == w, "AW and W must be taken together"),
            Assert(writes == core.probes["writing"], "write requests and responses out of step"),
            Assert(reads == core.probes["reading"], "read requests and responses out of step"),
            Assert(~core.s_axi_bvalid | (writes == 1), "BVALID without an open write"),
            Assert(~core.s_axi_rvalid | (reads == 1), "RVALID without an open read"),
            Assert(~(core.s_axi_awready | core.s_axi_arready) | ((writes == 0) & (reads == 0)),
                   "a request taken while another is open"),
            Assert(core.s_axi_bresp == 0, "BRESP is not OKAY"),
            Assert(core.s_axi_rresp == 0, "RRESP is not OKAY"),
        ]

    def _covers(self, m, cfg):
        core = self.core
        give = core.m_axis_tvalid & core.m_axis_tready
        spike_words = words_per_timestep(cfg.n_out, cfg.bus_width)
        v_bits = cfg.layers[-1].v_bits
        hi, lo = (1 << (v_bits - 1)) - 1, (-(1 << (v_bits - 1))) & 0xFFFFFFFF
        first_membrane = self._out_word == spike_words  # neuron 0's v' (32-bit field 0)
        truncated = Signal(name="saw_truncated")
        take = core.s_axis_tvalid & core.s_axis_tready
        with m.If(take & core.s_axis_tlast & (self._in_word != words_per_timestep(cfg.n_in, cfg.bus_width) - 1)):
            m.d.sync += truncated.eq(1)
        m.d.comb += [
            Cover(give & core.m_axis_tlast, "a transfer out, closed by TLAST"),
            Cover(give & (self._out_word == 0) & (core.m_axis_tdata != 0), "an output spike"),
            Cover(give & first_membrane & (core.m_axis_tdata[:32] == hi), "output v' at the upper rail"),
            Cover(give & first_membrane & (core.m_axis_tdata[:32] == lo), "output v' at the lower rail"),
            Cover(give & core.m_axis_tlast & truncated, "a truncated transfer closed by TLAST"),
        ]


def _lowest_one(bits) -> Value:
    """The lowest set bit of `bits`, one-hot (0 if none), as a priority chain: the harness's own, not the
    gateware's carry-chain `_lowest`."""
    bits = Value.cast(bits)
    return Cat(*(bits[k] & ~bits[:k].any() if k else bits[0] for k in range(len(bits))))


def _index_of(onehot) -> Value:
    """The position of the set bit of a one-hot value (0 if none)."""
    onehot = Value.cast(onehot)
    return sum(Mux(onehot[k], k, 0) for k in range(len(onehot)))


def _two_or_more(bits) -> Value:
    """Whether two or more bits of `bits` are set."""
    bits = Value.cast(bits)
    return (bits & (bits - 1))[: len(bits)].any()


#: The event-driven crossbar the sequential proofs run on: 5 inputs in 2 banks (bank rows K = 3: bank 0
#: holds inputs 0, 2, 4, bank 1 inputs 1, 3 and a padding slot), 3 neurons in 2 groups of 2 lanes (one
#: padding lane), no popcount tree stage (E = 2).
EVENT_LAYER = {"n_in": 5, "n_out": 3, "lanes": 2, "events": 2}


class EventCrossbarHarness(Harness):
    """`rtl.events.EventCrossbar` on its own, with any handshakes, bus requests and resets; the input
    stream's producer keeps the stream rule (an assumption: every producer in the core is proven to).

    Proven (k-induction): the output stream holds valid and payload while stalled; the crossbar holds
    exactly the timesteps (and those carrying TLAST) that crossed its input and not yet its output (its
    `probes`); W's walk equals a reference walk kept beside it, for every captured timestep (free
    inputs): `running`, `group`, `first` (and `row_base`, group * K) are the reference's, `replaying` is
    "a group after the first", and per bank `has` (one or more inputs left) and `index` (the lowest) are
    the function of what is left of the group, in the first group also `has2` (two or more) and `rem`
    (the rest); the record holds at each position n below the items issued (first group) or Z (later
    groups), per bank, the n-th lowest input captured; `count`, `replay_at` and `at_end` are the next
    item's position (first group) or Z - 1, the position after the next item's and whether it ends its
    group; before a capture `rem` holds the payload offered; the item in I reads, per bank with an input
    left, the row of the lowest one (group * K + its bank row), with the reference's group, first and end.
    The reference takes each bank's lowest input left at every issue and ends a group at an item after
    which no bank has an input left (then starts again from the capture).

    With `sums` (bounded, from reset, writes only before the first timestep is offered): every group
    sum of the first timestep equals sum_i w[j,i] s[i] of the weights written (a copy kept from the bus
    writes, at the documented window addresses) and the captured spikes.
    Covers (from reset): a bank with two or more inputs in one group, a group of three items, a replayed
    group of two or more items, a bus read answered while the output is held, back-to-back timesteps, a
    timestep out with TLAST.
    """

    def __init__(self, *, sums: bool = False, **layer):
        super().__init__()
        from spikeloop.rtl.events import EventCrossbar

        self.xbar = EventCrossbar(**{**EVENT_LAYER, **layer})
        self.sums = sums

    def ports(self) -> list[Signal]:
        return super().ports() + self.inputs_of(self.xbar)

    def elaborate(self, platform):
        m = Module()
        xbar = self.xbar
        # elaborated now, so its probes exist; the record gets the harness's own read ports before it is built
        m.submodules.xbar = inner = xbar.elaborate(platform)
        xbar._MustUse__used = True
        record = xbar.probes["chooser"]["record"]
        self._record = [record.read_port(domain="comb") for _ in range(xbar.events.bank_rows)]
        for n, port in enumerate(self._record):
            inner.d.comb += port.addr.eq(n)
        h = _History(m)
        i, o = xbar.i_stream, xbar.o_stream
        _stable_while_stalled(m, h, "i_stream", i.valid, i.ready, i.payload, check=Assume)
        _stable_while_stalled(m, h, "o_stream", o.valid, o.ready, o.payload)
        self._counting(m)
        walk = self._walk(m, h)
        if self.sums:
            self._sums(m)
        self._covers(m, h, walk)
        return m

    def _counting(self, m):
        xbar, probes = self.xbar, self.xbar.probes
        i, o = xbar.i_stream, xbar.o_stream
        taken, given = i.valid & i.ready, o.valid & o.ready & o.p.end
        counts = [Signal(4, name=name) for name in ("steps_in", "lasts_in", "steps_out", "lasts_out")]
        m.d.sync += [count.eq(count + step) for count, step in
                     zip(counts, (taken, taken & i.p.last, given, given & o.p.last))]
        held, held_last = Signal(4, name="held_steps"), Signal(4, name="held_lasts")
        m.d.comb += [held.eq(probes["steps"]), held_last.eq(probes["lasts"])]
        self._counts = counts
        m.d.comb += [
            Assert((counts[0] - counts[2])[:4] == held, "timesteps in - out != those the crossbar holds"),
            Assert((counts[1] - counts[3])[:4] == held_last, "TLAST timesteps in - out != those it holds"),
        ]

    def _walk(self, m, h):
        xbar, probes = self.xbar, self.xbar.probes
        geo, chooser = xbar.events, probes["chooser"]
        E, K, NG = geo.events, geo.bank_rows, geo.n_groups
        i = xbar.i_stream

        def banks_of(spikes):
            spikes = Cat(spikes, Const(0, K * E - geo.n_in))
            return [Cat(*(spikes[k * E + b] for k in range(K))) for b in range(E)]

        # the reference walk: the captured timestep per bank, the inputs left in the group, the group, the
        # position in the group of the next item
        captured = [Signal(K, name=f"ref_captured{b}") for b in range(E)]
        left = [Signal(K, name=f"ref_left{b}") for b in range(E)]
        running, group = Signal(name="ref_running"), Signal(range(NG), name="ref_group")
        position = Signal(range(K), name="ref_position")
        lowest = [_lowest_one(bits) for bits in left]
        ends = ~Cat(*(_two_or_more(bits) for bits in left)).any()
        taken = i.valid & i.ready
        with m.If(taken):
            m.d.sync += [*(reg.eq(bits) for reg, bits in zip(captured, banks_of(i.p.spikes))),
                         *(reg.eq(bits) for reg, bits in zip(left, banks_of(i.p.spikes))),
                         running.eq(1), group.eq(0), position.eq(0)]
        with m.If(probes["issue"]):
            m.d.sync += [*(reg.eq(bits & ~low) for reg, bits, low in zip(left, left, lowest)),
                         position.eq(position + 1)]
            with m.If(ends):
                m.d.sync += [*(reg.eq(bits) for reg, bits in zip(left, captured)), group.eq(group + 1), position.eq(0)]
                with m.If(group == NG - 1):
                    m.d.sync += [running.eq(0), group.eq(0)]

        # the items of the capture: item n takes, per bank, the n-th lowest input captured (if any)
        items, bits = [], captured
        for _ in range(K):
            lows = [_lowest_one(b) for b in bits]
            items.append([(b.any(), _index_of(low)) for b, low in zip(bits, lows)])
            bits = [b & ~low for b, low in zip(bits, lows)]
        z_last = Signal(range(K), name="ref_z_last")  # the position of a group's last item (Z - 1)
        m.d.comb += z_last.eq(sum(Cat(*(has for has, _ in items[n])).any() for n in range(1, K)))

        # the item issued: per bank the row of its lowest input left (group * K + bank row), if any
        item_valid = Signal(E, name="ref_item_valid")
        item_rows = [Signal(range(geo.rows), name=f"ref_item_row{b}") for b in range(E)]
        item_first, item_end = Signal(name="ref_item_first"), Signal(name="ref_item_end")
        item_group = Signal.like(group, name="ref_item_group")
        first = Cat(*(bits == whole for bits, whole in zip(left, captured))).all()  # the next item is a group's first
        with m.If(probes["issue"]):
            m.d.sync += [
                item_valid.eq(Cat(*(bits.any() for bits in left))),
                *(row.eq(group * K + _index_of(low)) for row, low in zip(item_rows, lowest)),
                item_first.eq(first), item_end.eq(ends), item_group.eq(group),
            ]
        i_tag = probes["i_tag"]
        with m.If(i_tag.valid):
            m.d.comb += [
                Assert(probes["i_valid"] == item_valid, "the item's banks differ from the banks with an input left"),
                Assert((i_tag.first == item_first) & (i_tag.end == item_end) & (i_tag.group == item_group),
                       "the item's group, first or end differs from the reference walk"),
                *(Assert(~item_valid[b] | (probes["i_rows"][b] == item_rows[b]),
                         f"bank {b}: the row read is not the lowest input left's") for b in range(E)),
            ]

        m.d.comb += Assert(probes["running"] == running, "running differs from the reference walk")
        replaying = chooser["replaying"]
        with m.If(running):
            m.d.comb += [
                Assert(probes["group"] == group, "group differs from the reference walk"),
                Assert(probes["first"] == first, "first differs from the reference walk (no input of the group taken)"),
                Assert(probes["row_base"] == group * K, "row_base is not group * K"),
                Assert(replaying == (group != 0), "replaying is not 'a group after the first'"),
                Assert(position <= z_last, "reference: a group has more than Z items"),
                Assert(group < NG, "reference: a group past the last"),
            ]
            for b in range(E):
                taken_bits = captured[b] & ~left[b]  # the reference's own state: the inputs taken are the lowest
                has, low = left[b].any(), lowest[b]
                index = (Const(1, K) << chooser["index"][b])[:K]
                m.d.comb += [
                    Assert((left[b] & ~captured[b]) == 0, f"bank {b}: reference: an input left not captured"),
                    Assert((left[b] == 0) | ((taken_bits & ~(lowest[b] - 1))[:K] == 0),
                           f"bank {b}: reference: an input taken above one left"),
                    Assert(chooser["has"][b] == has, f"bank {b}: has differs from inputs left"),
                    Assert(~has | (index == low), f"bank {b}: index is not the lowest input left"),
                    # the reference's inputs left are the capture less its first `position` items
                    *(Assert((position != n) | (left[b] == Cat(*(
                        captured[b][k] & ~Cat(*(items[j][b][0] & (items[j][b][1] == k) for j in range(n))).any()
                        for k in range(K)))), f"bank {b}: reference: inputs left are not the capture less its items")
                      for n in range(K)),
                ]
                with m.If(~replaying):
                    m.d.comb += [
                        Assert(chooser["has2"][b] == _two_or_more(left[b]),
                               f"bank {b}: has2 differs from two or more left"),
                        Assert(chooser["rem"][b] == left[b] & ~low, f"bank {b}: rem is not the inputs after the next"),
                    ]
            # the record: in the first group the items issued, then all Z of them
            recorded = Mux(replaying, z_last + 1, position)
            for n, port in enumerate(self._record):
                with m.If(n < recorded):
                    m.d.comb += [Assert((port.data[b].has == items[n][b][0]) &
                                        (~items[n][b][0] | (port.data[b].index == items[n][b][1])),
                                        f"record item {n} bank {b}: not the item of the capture") for b in range(E)]
            with m.If(~replaying):
                m.d.comb += [Assert(chooser["count"] == position, "count is not the next item's position"),
                             Assert(chooser["replay_at"] == 0, "replay_at is not 0 in the first group")]
            with m.Else():
                m.d.comb += [
                    Assert(chooser["count"] == z_last, "count is not the group's last position while replaying"),
                    Assert(chooser["at_end"] == (position == z_last), "at_end is not 'the group's last item'"),
                    Assert(chooser["replay_at"] == Mux(position == z_last, 0, position + 1),
                           "replay_at is not the position after the next item's"),
                ]

        # before a capture: `offered` means the payload was offered a clock ago (and so is the same now)
        offered = probes["offered"]
        m.d.comb += Assert(~offered | (h.started & ~h.past_rst & h.past(i.valid & ~i.ready, "i_waited")),
                           "offered without a payload waiting a clock ago")
        with m.If(offered & ~running):  # the walk's inputs hold the payload before its capture
            m.d.comb += [Assert(chooser["rem"][b] == bits, f"bank {b}: rem is not the payload offered")
                         for b, bits in enumerate(banks_of(i.p.spikes))]
        return {"left": left, "group": group, "ends": ends, "replaying": replaying}

    def _sums(self, m):
        """The first timestep's group sums against sum_i w[j,i] s[i] of a copy of the written weights."""
        xbar = self.xbar
        geo, bus, i, o = xbar.events, xbar.bus, xbar.i_stream, xbar.o_stream
        E, K, P = geo.events, geo.bank_rows, geo.lanes
        if geo.row_words != 1:
            raise ValueError(f"the sums' check keeps one word per bank row, not {geo.row_words} (lanes = {P})")
        from spikeloop.rtl.common import WINDOW

        # writes only before the first payload is offered, no reset: a bounded check of the datapath
        offered = Signal(reset_less=True, name="ever_offered")
        with m.If(i.valid):
            m.d.sync += offered.eq(1)
        m.d.comb += [Assume(~bus.w_stb | ~(offered | i.valid)), Assume(~ResetSignal("sync"))]
        # the weights window as written: word ((row * bank_stride) + bank) * row_stride holds a bank row's P bits
        shadow = [[Signal(P, reset_less=True, name=f"ref_w_r{row}_b{b}") for b in range(E)] for row in range(geo.rows)]
        with m.If(bus.w_stb & (bus.sel == WINDOW["weights"])):
            for row in range(geo.rows):
                for b in range(E):
                    with m.If(bus.addr == (row * geo.bank_stride + b) * geo.row_stride):
                        m.d.sync += shadow[row][b].eq(bus.w_data[:P])
        spikes = Signal(geo.n_in, name="ref_spikes")  # the first timestep taken
        with m.If(i.valid & i.ready & (self._counts[0] == 0)):
            m.d.sync += spikes.eq(i.p.spikes)
        one, minus = Const(1, signed(2)), Const(-1, signed(2))
        expected = []
        for g in range(geo.n_groups):
            row = [sum(Mux(spikes[n], Mux(shadow[g * K + n // E][n % E][p], one, minus), 0) for n in range(geo.n_in))
                   for p in range(P)]
            expected.append(row)
        first = (self._counts[2] == 0) & (self._counts[0] != 0)
        for g, row in enumerate(expected):
            with m.If(o.valid & first & (o.p.group == g)):
                m.d.comb += [Assert(o.p.syn[p] == row[p], f"group {g} lane {p}: sum differs from sum_i w[j,i] s[i]")
                             for p in range(P)]
        bank0 = Cat(*(spikes[n] for n in range(0, geo.n_in, E)))  # the inputs of bank 0
        active = sum(spikes[n] for n in range(geo.n_in))
        m.d.comb += Cover(o.valid & first & o.p.end & bank0.all() & (o.p.syn[0] != -active),
                          "the first timestep's last group out, of three items, after a weight write")

    def _covers(self, m, h, walk):
        xbar, probes = self.xbar, self.xbar.probes
        i, o, issue = xbar.i_stream, xbar.o_stream, probes["issue"]
        left, NG = walk["left"], xbar.events.n_groups
        last_issue = issue & walk["ends"] & (walk["group"] == NG - 1)
        held = o.valid & ~o.ready
        m.d.comb += [
            Cover(issue & Cat(*(_two_or_more(bits) for bits in left)).any(), "a bank with two inputs in a group"),
            Cover(issue & left[0].all(), "a group of K items (every input of bank 0)"),
            Cover(issue & walk["replaying"] & Cat(*(_two_or_more(bits) for bits in left)).any(),
                  "a replayed group of two or more items"),
            Cover(xbar.bus.r_ack & held & h.past(held, "o_held"), "a bus read answered while the output is held"),
            Cover(i.valid & i.ready & h.past(last_issue, "last_issue"), "back-to-back timesteps"),
            Cover(o.valid & o.ready & o.p.end & o.p.last, "a timestep out with TLAST"),
        ]


#: The recurrent layer of `RecurrentLayerHarness`: 3 inputs and 2 neurons in one group (every item the neuron array
#: holds ends a timestep, so the counts bound them all), a crossbar of 5 inputs in chunks of 2 (the second chunk
#: holds an input and a previous spike, the third a previous spike).
RECURRENT_LAYER = LayerConfig(3, 2, lanes=2, chunk=2, v_bits=4, u_bits=4, frac_bits=2, recurrent=True)


class RecurrentLayerHarness(Harness):
    """`rtl.layer.Layer` of a recurrent `config` on its own, with any handshakes, run-time registers, bus requests
    and resets; the input stream's producer keeps the stream rule and a state clear comes only while the layer is
    idle and offered nothing (as the core's `StateClear` sends it).

    Checked from reset for 40 clocks, three timesteps (bounded: a k-induction would need invariants on every stage
    of the neuron array's pipeline): the output stream holds while stalled; the crossbar, the neuron array and the
    collector each hold exactly the timesteps that crossed their input and not their output; the layer's `pending`
    is "a timestep is in the crossbar or the neuron array", and at most one is; so the crossbar takes a timestep
    only when the previous one has left the neuron array (its spikes, the recurrent inputs, are complete); the
    recurrent inputs it takes are the collector's spikes, and zero after a state clear.
    Covers (from reset): a timestep taken with a previous spike among its inputs, and a group's sum made of the
    previous spikes alone (no input spike): a spike fed back.
    """

    def __init__(self, config: LayerConfig = RECURRENT_LAYER):
        super().__init__()
        from spikeloop.rtl.layer import Layer

        if not config.recurrent:
            raise ValueError(f"config {config!r} is not recurrent")
        self.config = config
        self.layer = Layer(config=config)

    def ports(self) -> list[Signal]:
        return super().ports() + self.inputs_of(self.layer)

    def elaborate(self, platform):
        m = Module()
        layer, c = self.layer, self.config
        m.submodules.layer = Fragment.get(layer, platform)  # elaborated now, so its probes exist
        h = _History(m)
        xbar, neurons = layer.crossbar, layer.neurons
        i, o, x = layer.i_stream, layer.o_stream, xbar.i_stream
        _stable_while_stalled(m, h, "i_stream", i.valid, i.ready, i.payload, check=Assume)
        _stable_while_stalled(m, h, "o_stream", o.valid, o.ready, o.payload)
        _stable_while_stalled(m, h, "crossbar.i_stream", x.valid, x.ready, x.payload)
        m.d.comb += Assume(~layer.ctrl.clear | (~layer.ctrl.busy & ~i.valid))

        def crossing(stream, end):
            return stream.valid & stream.ready & end

        boundaries = [crossing(x, 1), crossing(xbar.o_stream, xbar.o_stream.p.end),
                      crossing(neurons.o_stream, neurons.o_stream.p.end), crossing(o, 1)]
        counts = []
        for k, moved in enumerate(boundaries):
            count = Signal(4, name=f"crossed_{k}")
            m.d.sync += count.eq(count + moved)
            counts.append(count)
        held = []
        for name, part, into, out in zip(("crossbar", "neurons", "collector"), (xbar, neurons, layer),
                                         counts, counts[1:]):
            steps = Signal(4, name=f"held_{name}")
            m.d.comb += [steps.eq(part.probes["steps"]),
                         Assert((into - out)[:4] == steps, f"{name}: timesteps in - out != those it holds")]
            held.append(steps)
        inside = held[0] + held[1]
        take = x.valid & x.ready
        # the previous spikes the crossbar takes, and when: the dense one at its walk's late chunks (`apply`), the
        # event-driven one with its timestep
        dense = c.events is None
        recurrent = xbar.late_bits if dense else x.p.spikes[c.n_in :]
        moment = xbar.probes["apply"] if dense else take
        m.d.comb += [
            Assert(layer.probes["pending"] == (inside != 0), "pending is not 'a timestep in the crossbar or neurons'"),
            Assert(inside <= (2 if dense else 1), "too many timesteps in the crossbar and the neuron array"),
            Assert(~moment | ((held[1] == 0) & (held[0] == int(dense))),
                   "previous spikes taken before the previous timestep left the neuron array"),
            Assert(recurrent == o.p.spikes, "the recurrent inputs are not the collector's spikes"),
        ]
        with m.If(h.started & ~h.past_rst & h.past(layer.ctrl.clear, "clear")):
            m.d.comb += Assert(recurrent == 0, "previous spikes left after a state clear")

        # covers: previous spikes taken; a group's sum from the previous spikes alone; with the dense crossbar, a
        # timestep taken while the previous one is in the neuron array
        quiet_input = Signal(name="quiet_input")  # the last timestep taken had no input spike
        with m.If(take):
            m.d.sync += quiet_input.eq(x.p.spikes[: c.n_in] == 0)
        sums = xbar.o_stream
        alone = held[0] == 1  # the crossbar holds the last timestep taken only: the sums are its
        m.d.comb += [
            Cover(moment & (recurrent != 0), "previous spikes taken as inputs"),
            Cover(sums.valid & alone & quiet_input & (Cat(*sums.p.syn) != 0), "a sum of the previous spikes alone"),
        ]
        if dense:
            m.d.comb += Cover(take & (held[1] != 0), "a timestep taken while the previous one is in the neurons")
        return m


# ------------------------------------------------------------------------------------------------ jobs

@dataclass(frozen=True)
class Job:
    """One SymbiYosys run: a harness, a mode ("prove": k-induction; "cover"), a depth and the SMT solver."""

    name: str
    harness: Callable[[], Harness]
    mode: str
    depth: int
    doc: str = ""
    options: tuple[str, ...] = field(default=())
    solver: str = "z3"
    script: tuple[str, ...] = field(default=())  # Yosys commands after `prep`


JOBS = {job.name: job for job in (
    # combinational harnesses: a one-step check ("bmc", depth 1) covers every input, so it is a proof
    Job("decay-shift-prove", lambda: DecayHarness(decay="shift"), "bmc", 1, "Decay = keep(x, d), decay shift, F = 2"),
    Job("decay-multiply-prove", lambda: DecayHarness(decay="multiply"), "bmc", 1,
        "Decay = keep(x, d), decay multiply, F = 2"),
    Job("decay-f0-prove", lambda: DecayHarness(decay="shift", frac_bits=0), "bmc", 1,
        "Decay = keep(x, d), F = 0 (h = 0)"),
    Job("decay-f0-multiply-prove", lambda: DecayHarness(decay="multiply", frac_bits=0), "bmc", 1,
        "Decay = keep(x, d), F = 0, decay multiply"),
    Job("decay-f4-prove", lambda: DecayHarness(decay="shift", bits=8, frac_bits=4), "bmc", 1,
        "Decay = keep(x, d), F = 4, decay shift"),
    Job("decay-f4-multiply-prove", lambda: DecayHarness(decay="multiply", bits=8, frac_bits=4), "bmc", 1,
        "Decay = keep(x, d), F = 4, decay multiply"),
    Job("neuron-prove", NeuronHarness, "bmc", 1, "neuron datapath = contract, every option, given the decays"),
    Job("neuron-wide-u-prove", lambda: NeuronHarness(v_bits=4, u_bits=6, frac_bits=3), "bmc", 1,
        "neuron datapath = contract, current wider than the membrane"),
    Job("neuron-cover", lambda: NeuronHarness(decay="multiply", decays=True), "cover", 1,
        "spikes, rails, wraps, roundings, shifts and reset orders reachable, decay multiply"),
    Job("neuron-shift-cover", lambda: NeuronHarness(decay="shift", decays=True), "cover", 1,
        "the same reachable with decay shift"),
    # yices: z3 takes minutes over a sum of a few 8-bit counts that yices relates in a second
    Job("core-prove", CoreHarness, "prove", 2, "streams, each component's counting, AXI-Lite on the small core",
        solver="yices"),
    Job("core-count-prove", lambda: CoreHarness(whole=True), "prove", 2,
        "the core's counting from its components' (as core-prove proves them)", solver="yices"),
    Job("core-cover", lambda: CoreHarness(COVER_CORE), "cover", 24,
        "transfers, spikes and rails reachable on the cover core"),
    Job("events-prove", EventCrossbarHarness, "prove", 2,
        "event crossbar 5-3, P 2, E 2: output stream, counting, W's walk against a reference", solver="yices"),
    Job("events-e3-prove", lambda: EventCrossbarHarness(n_in=10, n_out=5, lanes=2, events=3), "prove", 2,
        "event crossbar 10-5, P 2, E 3 (K 4 with padding, 3 groups, a popcount tree stage): as events-prove",
        solver="yices"),
    Job("events-sums-bmc", lambda: EventCrossbarHarness(sums=True), "bmc", 14,
        "event crossbar: the first timestep's sums = sum_i w[j,i] s[i] of the written weights, 14 clocks",
        solver="yices", script=("memory_map", "opt -fast")),
    Job("events-cover", lambda: EventCrossbarHarness(sums=True), "cover", 20,
        "event crossbar: multi-item groups, a bus read while held, back-to-back timesteps", solver="yices"),
    Job("recurrent-bmc", RecurrentLayerHarness, "bmc", 40,
        "recurrent layer 3-2: counting, one timestep in crossbar and neurons, previous spikes complete when taken, "
        "40 clocks from reset (three timesteps)", solver="yices"),
    Job("recurrent-events-bmc", lambda: RecurrentLayerHarness(replace(RECURRENT_LAYER, chunk=None, events=2)),
        "bmc", 40, "recurrent layer 3-2 on the event crossbar (E 2): as recurrent-bmc", solver="yices"),
    Job("recurrent-cover", RecurrentLayerHarness, "cover", 30,
        "recurrent layer: a previous spike taken as an input and summed alone", solver="yices"),
)}


@dataclass
class Result:
    """What a job gave: `status` is sby's (PASS, FAIL, ERROR, TIMEOUT, ...)."""

    job: str
    status: str
    seconds: float
    workdir: Path
    log: str

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    def summary(self) -> str:
        return f"{self.job}: {self.status} in {self.seconds:.1f} s ({self.workdir})"


#: The tools a proof runs (spikeloop.toolchain names) and the variables through which sby finds them
#: (smtbmc runs the solvers, `z3` and `yices-smt2`, from PATH).
TOOLS = {"YOSYS": "yosys", "SMTBMC": "yosys-smtbmc", "WITNESS": "yosys-witness", "Z3": "z3", "YICES": "yices",
         "SBY": "sby"}


def available() -> str | None:
    """None if SymbiYosys, Yosys, its SMT tools, z3 and yices are installed, else what is missing."""
    return toolchain.missing(*TOOLS.values())


def sby_text(job: Job, il_name: str = "top.il") -> str:
    """The .sby file of `job`."""
    options = "\n".join((f"mode {job.mode}", f"depth {job.depth}", "multiclock off", *job.options))
    script = "\n".join(("prep -top top", *job.script))
    return f"""[options]
{options}

[engines]
smtbmc {job.solver}

[script]
read_rtlil {il_name}
{script}

[files]
{il_name}
"""


def write_job(job: Job, workdir) -> Path:
    """Write `<workdir>/<job>.il` and `<workdir>/<job>.sby`; returns the .sby path."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    il = workdir / f"{job.name}.il"
    il.write_text(job.harness().rtlil())
    sby = workdir / f"{job.name}.sby"
    sby.write_text(sby_text(job, il.name))
    return sby


def run_job(job: Job, workdir=DEFAULT_WORKDIR, *, timeout: float = 600) -> Result:
    """Write and run `job` under `<workdir>/<job.name>/`; sby's own directory is `<job.name>/run`."""
    workdir = Path(workdir) / job.name
    sby = write_job(job, workdir)
    tools = {var: toolchain.find(name) for var, name in TOOLS.items()}
    env = {**os.environ, **{var: tool.argv[0] for var, tool in tools.items()}}
    solvers = [str(Path(tools[var].argv[0]).parent) for var in ("Z3", "YICES")]
    env["PATH"] = os.pathsep.join([*solvers, env.get("PATH", "")])
    start = time.monotonic()
    try:
        proc = subprocess.run([*tools["SBY"].argv, "-f", "-d", "run", sby.name], cwd=workdir,
                              env=env, capture_output=True, text=True, timeout=timeout)
        log = proc.stdout + proc.stderr
        found = re.findall(r"DONE \((\w+), rc=\d+\)", log)
        status = found[-1] if found else f"ERROR (rc {proc.returncode})"
    except subprocess.TimeoutExpired as exc:
        log = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        status = "TIMEOUT"
    return Result(job.name, status, time.monotonic() - start, workdir, log)


def failure_report(result: Result, lines: int = 40) -> str:
    """The failed properties (with their messages) and the tail of sby's log."""
    interesting = [ln for ln in result.log.splitlines()
                   if any(key in ln for key in ("Assert failed", "failed assertion", "Unreached cover", "ERROR",
                                                "counterexample", "trace", "Reached cover"))]
    tail = result.log.splitlines()[-lines:]
    return "\n".join([result.summary(), *interesting[:20], "...", *tail])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/formal/formal_jobs.py", description=__doc__.splitlines()[0])
    parser.add_argument("jobs", nargs="*", help=f"job names (default: all): {', '.join(JOBS)}")
    parser.add_argument("--workdir", default=str(DEFAULT_WORKDIR))
    parser.add_argument("--list", action="store_true", help="list the jobs and exit")
    parser.add_argument("--timeout", type=float, default=600, help="seconds each job may take (default 600)")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if args.list:
        for job in JOBS.values():
            print(f"{job.name:24} {job.mode:6} depth {job.depth:3}  {job.doc}")
        return 0
    missing = available()
    if missing:
        print(f"formal proofs skipped: {missing}")
        return 2
    unknown = [name for name in args.jobs if name not in JOBS]
    if unknown:
        parser.error(f"unknown job(s) {', '.join(unknown)}; known: {', '.join(JOBS)}")
    failed = 0
    for name in args.jobs or JOBS:
        result = run_job(JOBS[name], args.workdir, timeout=args.timeout)
        print(result.summary() if result.passed else failure_report(result), flush=True)
        failed += not result.passed
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
