"""The neuron array: `lif` and `cuba` neurons of one layer, time-multiplexed over `lanes` (P) lanes.

Each input payload carries the synaptic sums of one group of P neurons; the array reads the
group's threshold, bias, membrane and current from memory, applies docs/numerics.md (contract v2,
every option a run-time field of MODE, when the layer is built with `options`)

    a_u   = (syn << k) + bias*(bias_to current);   b_v = bias*(bias_to membrane)
    u     = a_u                                       (lif)
    u     = fit_U(keep(u_prev, alpha) + a_u)          (cuba; fit_U saturates or wraps)
    r     = theta * (v_prev >= theta)                 (subtract_next; else 0)
    v'    = sat'_V(keep(v_prev, lam) + u + b_v - r)   (sat'_V: full or symmetric range)
    z     = v' >= theta
    v     = v' - theta*z | v'*(1-z) | v' | v'         (subtract | zero | none | subtract_next)

writes v (and u for cuba) back and emits z and v'. `keep` is `x - Decay.of(x)`, rounded floor, toward
zero or to nearest. With decay "shift" the products are shifts by `F - log2(lam)` (lam a power of
two, or 0 for no decay): a barrel shifter, no multiplier; with decay "multiply" any lam in [0, 2^F]
goes through a multiplier.

Two pipeline stages (read, compute + write back); one group per clock when the output is free.
"""

from __future__ import annotations

from typing import NamedTuple

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spikeloop.config import LayerConfig
from spikeloop.network import (
    DECAYS,
    INPUT_SHIFT_RANGE,
    OPTION_DEFAULTS,
    BiasTo,
    Neuron,
    Overflow,
    Reset,
    Rounding,
    VRange,
    check_int,
)

from .common import (
    WINDOW,
    LayerControl,
    MemBus,
    Probed,
    check_choice,
    check_type,
    group_sum_layout,
    index_shape,
    neuron_out_layout,
    parameters,
    saturate,
)
from .window import WindowPort

__all__ = ["NeuronArray", "Decay", "LaneUpdate", "neuron_update"]


class Decay:
    """What one step of decay by `factor`/2^F takes from a signed `x`, rounded as `rounding` says
    (a `Rounding` code), as a shift (mode "shift") or a product ("multiply").

    What is left, `x - of(x)`, is the contract's `keep(x, factor)`. With `c` the rounding's constant
    (0 for floor; for x >= 0: 2^F - 1 toward zero, 2^F - 1 - h to nearest; for x < 0: 0 toward zero,
    h to nearest; h = 2^(F-1), or 0 when F = 0) the loss is `(x*factor + c) >> F`, an arithmetic shift:
    floor's loss is the floor of the decrement, toward zero rounds the loss away from zero, so the
    kept value goes toward zero, and to nearest rounds the kept value half away from zero.
    In shift mode `factor` must be 0 or a power of two 2^m (the register file refuses other values);
    with s = F - m the loss is `(x + (c >> m)) >> s`, and `c >> m` is `2^s - 1`, `2^(s-1) - 1` or
    `2^(s-1)`, masks decoded once from s and shared by every lane, as are the constants of multiply mode.
    """

    def __init__(self, m: Module, factor, *, rounding, frac_bits: int, mode: str, name: str):
        self._F = F = frac_bits
        self._mode = mode
        self._f = f = factor[: F + 1]
        h = (1 << F) >> 1
        if mode == "shift":
            self._shift = shift = Signal(range(F + 1), name=f"{name}_shift")
            for b in range(F + 1):  # the last assignment wins: the highest set bit
                with m.If(f[b]):
                    m.d.comb += shift.eq(F - b)
            mask = Signal(F + 1, name=f"{name}_mask")  # 2^s - 1
            m.d.comb += mask.eq((Const(1, F + 2) << shift) - 1)
            pos, neg = (mask, mask >> 1), (0, (mask + 1) >> 1)
        else:
            pos, neg = ((1 << F) - 1, (1 << F) - 1 - h), (0, h)
        self._c_pos = Signal(F + 1, name=f"{name}_c_pos")  # the rounding's constant for x >= 0
        self._c_neg = Signal(F + 1, name=f"{name}_c_neg")  # and for x < 0
        m.d.comb += [
            self._c_pos.eq(Mux(rounding == Rounding.ZERO, pos[0], Mux(rounding == Rounding.NEAREST, pos[1], 0))),
            self._c_neg.eq(Mux(rounding == Rounding.ZERO, neg[0], Mux(rounding == Rounding.NEAREST, neg[1], 0))),
        ]

    def of(self, x):
        """The amount `x` loses in one step."""
        x = Value.cast(x)
        c = Mux(x[-1], self._c_neg, self._c_pos)
        if self._mode == "multiply":
            return (x * self._f + c) >> self._F  # x signed: the shift is arithmetic, i.e. floor
        return Mux(self._f.any(), (x + c) >> self._shift, 0)


class _V1Mode(NamedTuple):
    """MODE as a build without options sees it: the run-time neuron and reset, the options at their v1 codes."""

    neuron: Value
    reset: Value
    decay_round: int = Rounding.of(OPTION_DEFAULTS["decay_round"])
    input_shift: int = OPTION_DEFAULTS["input_shift"]
    bias_to: int = BiasTo.of(OPTION_DEFAULTS["bias_to"])
    u_overflow: int = Overflow.of(OPTION_DEFAULTS["u_overflow"])
    v_range: int = VRange.of(OPTION_DEFAULTS["v_range"])


class LaneUpdate(NamedTuple):
    """The results of `neuron_update` for one neuron."""

    u_cuba: Value  #: fit_U(keep(u_prev, alpha) + a_u): the current a cuba neuron stores
    v_pre: Value  #: v', the pre-reset membrane
    z: Value  #: the spike, v' >= theta
    v_next: Value  #: the membrane stored for the next step
    u: Value  #: the current of the timestep: `u_cuba` (cuba) or a_u (lif)


def neuron_update(m: Module, *, syn, bias, theta, v, u, lam_loss, alpha_loss, mode, v_bits: int, u_bits: int,
                  options: bool = True, name: str = "") -> LaneUpdate:
    """The equations of docs/numerics.md for one neuron, as combinational logic added to `m`.

    `syn` is sum_i w[j,i] s[i]; `v`, `u` the stored state; `lam_loss`, `alpha_loss` the amounts
    the decays take (`Decay.of`, which applies MODE.decay_round); `mode` has MODE's other fields
    as attributes (a `LayerControl`, or a view of MODE's field layout): `neuron`, `reset` (a `Reset`
    code), `input_shift` (k <= 16), `bias_to`, `u_overflow`, `v_range`. Without `options` only `neuron`
    and `reset` are read: the options are their v1 values, constants, and reset is never subtract_next
    (the register file refuses it), so none of their logic is built.
    Every lane of `NeuronArray` is one call; the formal proof of `tests/formal/formal_jobs.py` checks
    this function against the contract, computed on unbounded integers, for all inputs and options.
    """
    V, U = v_bits, u_bits
    if not options:
        mode = _V1Mode(mode.neuron, mode.reset)
    k_max = INPUT_SHIFT_RANGE[1] if options else 0
    cuba = mode.neuron == Neuron.CUBA
    to_membrane = mode.bias_to == BiasTo.MEMBRANE
    shifted = Signal(signed(len(syn) + k_max), name=f"syn_k{name}")  # syn << k
    a = Signal(signed(max(len(shifted), V) + 1), name=f"a{name}")  # a_u
    u_sum = Signal(signed(max(U, len(a)) + 2), name=f"u_sum{name}")
    u_cuba = Signal(signed(U), name=f"u_cuba{name}")
    u_new = Signal(signed(max(U, len(a))), name=f"u{name}")
    r = Signal(signed(V), name=f"r{name}")  # theta taken off now for the spike of the step before (subtract_next)
    vp = Signal(signed(V), name=f"vp{name}")
    z = Signal(name=f"z{name}")
    vn = Signal(signed(V), name=f"vn{name}")
    m.d.comb += [
        shifted.eq(syn << mode.input_shift),
        a.eq(shifted + Mux(to_membrane, 0, bias)),
        u_sum.eq(u - alpha_loss + a),
        u_cuba.eq(Mux(mode.u_overflow == Overflow.WRAP, u_sum[:U].as_signed(), saturate(u_sum, U))),
        u_new.eq(Mux(cuba, u_cuba, a)),
        r.eq(Mux((mode.reset == Reset.SUBTRACT_NEXT) & (v >= theta), theta, 0) if options else 0),
        vp.eq(saturate(v - lam_loss + u_new + Mux(to_membrane, bias, 0) - r, V,
                       symmetric=(mode.v_range == VRange.SYMMETRIC) if options else None)),
        z.eq(vp >= theta),
    ]
    with m.Switch(mode.reset):
        with m.Case(Reset.SUBTRACT):
            m.d.comb += vn.eq(Mux(z, vp - theta, vp))
        with m.Case(Reset.ZERO):
            m.d.comb += vn.eq(Mux(z, 0, vp))
        with m.Default():  # none, subtract_next (v' is kept; the next step takes theta off)
            m.d.comb += vn.eq(vp)
    return LaneUpdate(u_cuba, vp, z, vn, u_new)


class NeuronArray(wiring.Component, Probed):
    """`n_out` neurons updated `lanes` at a time.

    Parameters (keyword-only)
    ----------
    n_in : inputs of the layer (sets the width of the synaptic sums).
    n_out : neurons.
    lanes : P, neurons per clock.
    v_bits, u_bits, frac_bits : widths of the numerics contract.
    decay : "shift" or "multiply".
    probes : bool, the output also carries each lane's current of the timestep (for the probes).
    options : bool, the lanes carry contract v2's options logic; without it MODE's option fields are
        their v1 values (`neuron_update`).

    Members
    -------
    i_stream : In(stream of `group_sum_layout`).
    o_stream : Out(stream of `neuron_out_layout`): z and v' (and with `probes` u) per group, spikes of
        padding lanes are 0.
    ctrl : In(LayerControl): the MODE fields (neuron kind, reset mode, options), lam, alpha, state clear.
    bus : In(MemBus): windows theta, bias (read/write), v, u (read-only).
    """

    def __init__(self, *, n_in: int, n_out: int, lanes: int, v_bits: int = 16, u_bits: int = 16,
                 frac_bits: int = 8, decay: str = "shift", probes: bool = False, options: bool = False):
        with parameters(self):
            check_int("n_in", n_in, 1, 65536)
            check_int("n_out", n_out, 1, 65536)
            check_int("lanes", lanes, 1, n_out)
            check_int("v_bits", v_bits, 2, 32)
            check_int("u_bits", u_bits, 2, 32)
            check_int("frac_bits", frac_bits, 0, 16)
            check_choice("decay", decay, DECAYS)
            check_type("probes", probes, bool)
            check_type("options", options, bool)
        self._probes_built = probes
        self._config = config = LayerConfig(
            n_in, n_out, lanes=lanes, chunk=1, v_bits=v_bits, u_bits=u_bits, frac_bits=frac_bits, decay=decay,
            options=options,
        )
        self._syn_bits = config.syn_bits
        # word address = group * lane_stride + lane; at least one group bit (no zero-width signals)
        self._addr_width = ceil_log2(config.lane_stride) + max(1, ceil_log2(config.n_groups))
        super().__init__({
            "i_stream": In(stream.Signature(group_sum_layout(config))),
            "o_stream": Out(stream.Signature(neuron_out_layout(config, probes=probes))),
            "ctrl": In(LayerControl()),
            "bus": In(MemBus(addr_width=self._addr_width)),
        })

    @property
    def config(self) -> LayerConfig:
        """Sizes and widths (chunk is unused)."""
        return self._config

    @property
    def addr_width(self) -> int:
        """Width of the word address of the theta/bias/v/u windows."""
        return self._addr_width

    def elaborate(self, platform):
        m = Module()
        c = self._config
        P, NG, V, U, F = c.lanes, c.n_groups, c.v_bits, c.u_bits, c.frac_bits
        lane_bits = ceil_log2(c.lane_stride)

        def lane_memory(name, bits):
            mem = Memory(shape=data.ArrayLayout(signed(bits), P), depth=max(2, NG), init=[])  # no 0-bit address
            m.submodules[name] = mem
            return mem

        theta_mem, bias_mem = lane_memory("theta", V), lane_memory("bias", V)
        v_mem, u_mem = lane_memory("v", V), lane_memory("u", U)
        theta_wp, bias_wp = theta_mem.write_port(granularity=1), bias_mem.write_port(granularity=1)
        v_wp, u_wp = v_mem.write_port(), u_mem.write_port()
        theta_rp, bias_rp = theta_mem.read_port(), bias_mem.read_port()
        v_rp = v_mem.read_port(transparent_for=[v_wp])
        u_rp = u_mem.read_port(transparent_for=[u_wp])
        read_ports = (theta_rp, bias_rp, v_rp, u_rp)

        # ---- bus
        bus = self.bus
        bus_group = bus.addr[lane_bits:]
        bus_lane = bus.addr[:lane_bits] if lane_bits else Const(0, 1)
        in_range = (bus_group < NG) & (bus_lane < P)
        value = bus.w_data.as_signed()
        v_lo, v_hi = -(1 << (V - 1)), (1 << (V - 1)) - 1
        w_theta = bus.w_stb & (bus.sel == WINDOW["theta"])
        w_bias = bus.w_stb & (bus.sel == WINDOW["bias"])
        w_state = bus.w_stb & ((bus.sel == WINDOW["v"]) | (bus.sel == WINDOW["u"]))
        theta_ok = (value >= 1) & (value <= v_hi)
        bias_ok = (value >= v_lo) & (value <= v_hi)
        lane_en = Mux(in_range, Const(1, P) << bus_lane, 0)
        for wp, strobe, ok in ((theta_wp, w_theta, theta_ok), (bias_wp, w_bias, bias_ok)):
            m.d.comb += [
                wp.addr.eq(bus_group),
                wp.data.eq(Cat(*(bus.w_data[:V] for _ in range(P)))),
                wp.en.eq(Mux(strobe & ok, lane_en, 0)),
            ]
        m.d.comb += bus.w_err.eq((w_theta & ~theta_ok) | (w_bias & ~bias_ok) | w_state)

        is_mine = (bus.sel == WINDOW["theta"]) | (bus.sel == WINDOW["bias"]) | (bus.sel == WINDOW["v"]) | (
            bus.sel == WINDOW["u"])
        read_tag = data.StructLayout({"lane": max(1, lane_bits), "sel": len(bus.sel), "valid": 1})
        m.submodules.window = port = WindowPort(addr_width=len(theta_rp.addr), tag=read_tag)
        m.d.comb += [
            port.r_stb.eq(bus.r_stb & is_mine),
            port.r_addr.eq(bus_group),
            port.r_tag.lane.eq(bus_lane),
            port.r_tag.sel.eq(bus.sel),
            port.r_tag.valid.eq(in_range),
        ]

        # ---- clear: walk the groups writing zeros, once stage B is empty. Memories keep their
        # contents through a reset, so a reset starts a clear too (state starts at 0).
        clear_pend = Signal(init=1)
        clearing = Signal()
        clear_addr = Signal(index_shape(NG))
        with m.If(self.ctrl.clear):
            m.d.sync += clear_pend.eq(1)

        # ---- stage A: accept a group, read its parameters and state.
        b_valid = Signal()
        b_syn = Signal(data.ArrayLayout(signed(self._syn_bits), P))
        b_group = Signal(index_shape(NG))
        b_end = Signal()
        b_last = Signal()
        o_valid = Signal()
        # Bus reads take the read ports even while stage B waits for the output (`WindowPort`).
        b_go = b_valid & ~port.replay & (~o_valid | self.o_stream.ready)
        hold = b_valid & ~b_go  # read ports must keep (or regain) stage B's data
        m.d.comb += self.i_stream.ready.eq(~hold & ~port.pending & ~clear_pend & ~clearing)
        accept = self.i_stream.valid & self.i_stream.ready
        m.d.comb += [
            port.stall.eq(b_valid & o_valid & ~self.o_stream.ready),
            port.addr.eq(self.i_stream.p.group),
            port.held.eq(b_group),
        ]
        for rp in read_ports:
            m.d.comb += [rp.addr.eq(port.rp_addr), rp.en.eq(port.rp_en)]
        with m.If(~hold):
            m.d.sync += b_valid.eq(accept)
        with m.If(accept):
            m.d.sync += [b_syn.eq(self.i_stream.p.syn), b_group.eq(self.i_stream.p.group),
                         b_end.eq(self.i_stream.p.end), b_last.eq(self.i_stream.p.last)]

        # ---- bus read answer.
        r_value = Signal(signed(32))
        with m.Switch(port.ack_tag.sel):
            for kind, rp in zip(("theta", "bias", "v", "u"), read_ports):
                with m.Case(WINDOW[kind]):
                    m.d.comb += r_value.eq(rp.data[port.ack_tag.lane])
        m.d.comb += [bus.r_ack.eq(port.ack), bus.r_data.eq(Mux(port.ack_tag.valid, r_value, 0))]

        # ---- stage B: the neuron equations, one lane per neuron of the group.
        ctrl = self.ctrl
        cuba = ctrl.neuron == Neuron.CUBA
        rounding = ctrl.decay_round if c.options else _V1Mode(ctrl.neuron, ctrl.reset).decay_round
        lam = Decay(m, ctrl.lam, rounding=rounding, frac_bits=F, mode=c.decay, name="lam")
        alpha = Decay(m, ctrl.alpha, rounding=rounding, frac_bits=F, mode=c.decay, name="alpha")
        lam_d = [lam.of(v_rp.data[p]) for p in range(P)]
        alpha_d = [alpha.of(u_rp.data[p]) for p in range(P)]
        lane_valid = [(b_group != NG - 1) | Const(p < c.n_out - (NG - 1) * P, 1) for p in range(P)]
        v_next, u_next, z_bits, v_pre, u_now = [], [], [], [], []
        for p in range(P):
            lane = neuron_update(
                m, syn=b_syn[p], bias=bias_rp.data[p], theta=theta_rp.data[p], v=v_rp.data[p], u=u_rp.data[p],
                lam_loss=lam_d[p], alpha_loss=alpha_d[p], mode=ctrl, v_bits=V, u_bits=U, options=c.options,
                name=str(p),
            )
            v_next.append(lane.v_next)
            u_next.append(lane.u_cuba)
            z_bits.append(lane.z & lane_valid[p])
            v_pre.append(lane.v_pre)
            current = Signal(signed(c.current_bits), name=f"current{p}")  # modulo 2^32, sign-extended without
            m.d.comb += current.eq(lane.u)  # the options (whose a_u is narrower)
            u_now.append(current)

        m.d.comb += [
            v_wp.addr.eq(b_group), v_wp.data.eq(Cat(*v_next)), v_wp.en.eq(b_go),
            u_wp.addr.eq(b_group), u_wp.data.eq(Cat(*u_next)), u_wp.en.eq(b_go & cuba),
        ]
        with m.If(clearing):
            m.d.comb += [
                v_wp.addr.eq(clear_addr), v_wp.data.eq(0), v_wp.en.eq(1),
                u_wp.addr.eq(clear_addr), u_wp.data.eq(0), u_wp.en.eq(1),
            ]
            m.d.sync += clear_addr.eq(clear_addr + 1)
            with m.If(clear_addr == NG - 1):
                m.d.sync += clearing.eq(0)
        with m.Elif(clear_pend & ~b_valid):
            m.d.sync += [clearing.eq(1), clear_pend.eq(0), clear_addr.eq(0)]

        o = self.o_stream.p
        with m.If(self.o_stream.ready):
            m.d.sync += o_valid.eq(0)
        with m.If(b_go):
            m.d.sync += [
                o.z.eq(Cat(*z_bits)), o.v.eq(Cat(*v_pre)), o.group.eq(b_group), o.end.eq(b_end), o.last.eq(b_last),
                o_valid.eq(1),
            ]
            if self._probes_built:
                m.d.sync += o.u.eq(Cat(*u_now))
        m.d.comb += [
            self.o_stream.valid.eq(o_valid),
            self.ctrl.clearing.eq(clear_pend | clearing),
            self.ctrl.busy.eq(b_valid | o_valid),
        ]
        b_token, o_token = b_valid & b_end, o_valid & o.end  # a timestep is inside until its last group leaves
        self._probes = {"steps": b_token + o_token, "lasts": (b_token & b_last) + (o_token & o.last)}
        return m
