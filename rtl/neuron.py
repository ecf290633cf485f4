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

A pipeline of one group per clock; every stage register loads on one enable, `adv` (the output's
skid register is empty, and no bus read is being replayed; both registers), so all stages hold
together; a result the blocked output cannot take goes to the skid register:

    accept   group on the read ports' address (i_stream.ready)
    ports    the row on the read ports (WindowPort lends them to bus reads; `replay` reads it again)
    read     theta, bias, v, u in registers (read latency 2)
    product  x * lam, x * alpha (decay "multiply" only: the multiplier's own stage)
    loss     lam_loss, alpha_loss (`Decay.of`)
    update1  a_u, u - alpha_loss, v - lam_loss, b_v - r        (`neuron_update`, step 1)
    update2  (u - alpha_loss) + a_u, (v - lam_loss) + (b_v - r)  (step 2)
    update3  u_cuba = fit_U(...), u = u_cuba | a_u             (step 3)
    update4  ... + u                                           (step 4)
    update5  v' = sat'_V(...)                                  (step 5)
             z, the reset (step 6) -> v, u written back, z/v'/u into the output register

A group's v and u are read when it is accepted and written `state_cycles - 1` clocks later; the read
ports are not transparent, so a group comes in again only after its write has landed: groups come in
order, which leaves a layer of at least `state_cycles` groups nothing to wait for; a smaller layer
keeps a bit per group in flight and holds the group back (`spikeloop.config.layer_cycles`).
MODE, lam and alpha, and what `Decay` decodes from them, are run-time constants in registers: a
register write reaches the lanes a clock later (the register file writes them between runs).
Bus writes of theta and bias land a clock after the strobe (from registers; the pipeline reads no
row while one lands); bus reads answer two clocks later than the window port alone. A state clear
starts once no stage holds a group; the probes count a timestep in every stage it occupies.
"""

from __future__ import annotations

from typing import NamedTuple

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spikeloop.config import LayerConfig, state_cycles
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
    SkidOutput,
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


def _same(value, name):
    """The `stage` of a combinational build: the value itself, no register."""
    return value


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
    `hold` (default: none) keeps the decoded constants, e.g. in registers: `hold(value, name)` returns
    the value to use; `factor` and `rounding` are run-time constants, so a register only delays them.
    """

    def __init__(self, m: Module, factor, *, rounding, frac_bits: int, mode: str, name: str, hold=_same):
        self._F = F = frac_bits
        self._mode = mode
        self._f = hold(factor[: F + 1], f"{name}_factor")
        h = (1 << F) >> 1
        if mode == "shift":
            shift = Signal(range(F + 1), name=f"{name}_shift_of")
            for b in range(F + 1):  # the last assignment wins: the highest set bit
                with m.If(factor[b]):
                    m.d.comb += shift.eq(F - b)
            mask = ((Const(1, F + 2) << shift) - 1)[: F + 1]  # 2^s - 1
            pos, neg = (mask, mask >> 1), (0, (mask + 1) >> 1)  # x >= 0, x < 0: toward zero, to nearest
            self._shift = hold(shift, f"{name}_shift")
            self._any = hold(factor[: F + 1].any(), f"{name}_any")
        else:
            pos, neg = ((1 << F) - 1, (1 << F) - 1 - h), (0, h)
        c_pos, c_neg = (Mux(rounding == Rounding.ZERO, c[0], Mux(rounding == Rounding.NEAREST, c[1], 0))
                        for c in (pos, neg))
        self._c_pos = hold(Value.cast(c_pos)[: F + 1], f"{name}_c_pos")  # the rounding's constant for x >= 0
        self._c_neg = hold(Value.cast(c_neg)[: F + 1], f"{name}_c_neg")  # and for x < 0

    @property
    def stages(self) -> int:
        """Pipeline stages `of` puts between x and the loss (the product's own, with "multiply")."""
        return 1 if self._mode == "multiply" else 0

    def of(self, x, stage=_same):
        """The amount `x` loses in one step; with `stage` (see `neuron_update`), `stages` stages later."""
        x = Value.cast(x)
        c = Mux(x[-1], self._c_neg, self._c_pos)
        if self._mode == "multiply":  # x signed: the shift is arithmetic, i.e. floor
            return (stage(x * self._f, "product") + stage(c, "product_c")) >> self._F
        return Mux(self._any, (x + c) >> self._shift, 0)


class _Mode(NamedTuple):
    """MODE's fields as `neuron_update` reads them; a build without options sees the options at their v1 codes."""

    neuron: Value
    reset: Value
    decay_round: Value | int = Rounding.of(OPTION_DEFAULTS["decay_round"])
    input_shift: Value | int = OPTION_DEFAULTS["input_shift"]
    bias_to: Value | int = BiasTo.of(OPTION_DEFAULTS["bias_to"])
    u_overflow: Value | int = Overflow.of(OPTION_DEFAULTS["u_overflow"])
    v_range: Value | int = VRange.of(OPTION_DEFAULTS["v_range"])


class LaneUpdate(NamedTuple):
    """The results of `neuron_update` for one neuron."""

    u_cuba: Value  #: fit_U(keep(u_prev, alpha) + a_u): the current a cuba neuron stores
    v_pre: Value  #: v', the pre-reset membrane
    z: Value  #: the spike, v' >= theta
    v_next: Value  #: the membrane stored for the next step
    u: Value  #: the current of the timestep: `u_cuba` (cuba) or a_u (lif)


#: Pipeline stages `neuron_update` puts between its inputs and its results.
UPDATE_STAGES = 5


def neuron_update(m: Module, *, syn, bias, theta, v, u, lam_loss, alpha_loss, mode, v_bits: int, u_bits: int,
                  options: bool = True, name: str = "", stage=_same) -> LaneUpdate:
    """The equations of docs/numerics.md for one neuron, as logic added to `m`.

    `syn` is sum_i w[j,i] s[i]; `v`, `u` the stored state; `lam_loss`, `alpha_loss` the amounts
    the decays take (`Decay.of`, which applies MODE.decay_round); `mode` has MODE's other fields
    as attributes (a `LayerControl`, or a view of MODE's field layout): `neuron`, `reset` (a `Reset`
    code), `input_shift` (k <= 16), `bias_to`, `u_overflow`, `v_range`. Without `options` only `neuron`
    and `reset` are read: the options are their v1 values, constants, and reset is never subtract_next
    (the register file refuses it), so none of their logic is built.
    The logic is cut in six steps; `stage(value, name)` returns what passes from one step to the next
    (default: the value itself, all combinational; `NeuronArray` gives a register, so the results come
    `UPDATE_STAGES` clocks after the inputs, while `mode` is a run-time constant, read undelayed):

        1: a_u = (syn << k) + bias_u;  u - alpha_loss;  v - lam_loss;  b_v - r
        2: (u - alpha_loss) + a_u;  (v - lam_loss) + (b_v - r)
        3: u_cuba = fit_U(...);  u = u_cuba | a_u
        4: (v - lam_loss + b_v - r) + u
        5: v' = sat'_V(...)
        6: z = v' >= theta;  the reset

    Every lane of `NeuronArray` is one call; the formal proof of `tests/formal/formal_jobs.py` checks
    this function, combinational, against the contract, computed on unbounded integers, for all inputs
    and options.
    """
    V, U = v_bits, u_bits
    if not options:
        mode = _Mode(mode.neuron, mode.reset)
    k_max = INPUT_SHIFT_RANGE[1] if options else 0
    cuba = mode.neuron == Neuron.CUBA
    to_membrane = mode.bias_to == BiasTo.MEMBRANE

    def wire(what, expr, shape=None):
        sig = Signal(shape if shape is not None else Value.cast(expr).shape(), name=f"{what}{name}")
        m.d.comb += sig.eq(expr)
        return sig

    # step 1
    shifted = wire("syn_k", syn << mode.input_shift, signed(len(syn) + k_max))  # syn << k
    a = wire("a", shifted + Mux(to_membrane, 0, bias), signed(max(len(shifted), V) + 1))  # a_u
    kept_u = wire("kept_u", u - alpha_loss)
    kept_v = wire("kept_v", v - lam_loss)
    r = (Mux((mode.reset == Reset.SUBTRACT_NEXT) & (v >= theta), theta, 0) if options
         else Const(0, signed(V)))  # theta taken off now for the spike of the step before (subtract_next)
    v_add = wire("v_add", Mux(to_membrane, bias, 0) - r)  # b_v - r
    def cut(step, **values):
        return [stage(x, f"{what}{name}_{step}") for what, x in values.items()]

    a, kept_u, kept_v, v_add, theta = cut(1, a=a, kept_u=kept_u, kept_v=kept_v, v_add=v_add, theta=theta)
    # step 2
    u_sum = wire("u_sum", kept_u + a)
    v_base = wire("v_base", kept_v + v_add)
    a, u_sum, v_base, theta = cut(2, a=a, u_sum=u_sum, v_base=v_base, theta=theta)
    # step 3
    u_cuba = wire("u_cuba", Mux(mode.u_overflow == Overflow.WRAP, u_sum[:U].as_signed(), saturate(u_sum, U)),
                  signed(U))
    u_new = wire("u", Mux(cuba, u_cuba, a), signed(max(U, len(a))))
    u_cuba, u_new, v_base, theta = cut(3, u_cuba=u_cuba, u=u_new, v_base=v_base, theta=theta)
    # step 4
    v_sum = wire("v_sum", v_base + u_new)
    u_cuba, u_new, v_sum, theta = cut(4, u_cuba=u_cuba, u=u_new, v_sum=v_sum, theta=theta)
    # step 5
    vp = wire("vp", saturate(v_sum, V, symmetric=(mode.v_range == VRange.SYMMETRIC) if options else None), signed(V))
    u_cuba, u_new, vp, theta = cut(5, u_cuba=u_cuba, u=u_new, vp=vp, theta=theta)
    # step 6
    z = wire("z", vp >= theta, 1)
    vn = Signal(signed(V), name=f"vn{name}")
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
        read_ports = tuple(mem.read_port() for mem in (theta_mem, bias_mem, v_mem, u_mem))
        theta_rp, bias_rp, v_rp, u_rp = read_ports

        # ---- the bus: a write is checked at once (w_err); writes and reads go on from registers a clock
        # later, and a read's answer two clocks after the window port's `ack`.
        bus = self.bus
        value = bus.w_data.as_signed()
        v_lo, v_hi = -(1 << (V - 1)), (1 << (V - 1)) - 1
        w_theta = bus.w_stb & (bus.sel == WINDOW["theta"])
        w_bias = bus.w_stb & (bus.sel == WINDOW["bias"])
        w_state = bus.w_stb & ((bus.sel == WINDOW["v"]) | (bus.sel == WINDOW["u"]))
        theta_ok = (value >= 1) & (value <= v_hi)
        bias_ok = (value >= v_lo) & (value <= v_hi)
        m.d.comb += bus.w_err.eq((w_theta & ~theta_ok) | (w_bias & ~bias_ok) | w_state)
        q_sel = Signal.like(bus.sel, name="q_sel")  # the request, registered as it comes
        q_addr = Signal.like(bus.addr, name="q_addr")
        q_word = Signal(V, name="q_word")
        q_w_stb, q_r_stb, q_theta_ok, q_bias_ok = (Signal(name=f"q_{n}") for n in ("w_stb", "r_stb", "theta_ok",
                                                                                  "bias_ok"))
        m.d.sync += [
            q_sel.eq(bus.sel), q_addr.eq(bus.addr), q_word.eq(bus.w_data[:V]), q_w_stb.eq(bus.w_stb),
            q_r_stb.eq(bus.r_stb), q_theta_ok.eq(theta_ok), q_bias_ok.eq(bias_ok),
        ]
        q_theta = q_w_stb & (q_sel == WINDOW["theta"]) & q_theta_ok
        q_bias = q_w_stb & (q_sel == WINDOW["bias"]) & q_bias_ok
        q_group = q_addr[lane_bits:]
        q_lane = q_addr[:lane_bits] if lane_bits else Const(0, 1)
        in_range = (q_group < NG) & (q_lane < P)
        lane_en = Mux(in_range, Const(1, P) << q_lane, 0)
        for wp, strobe in ((theta_wp, q_theta), (bias_wp, q_bias)):
            m.d.comb += [wp.addr.eq(q_group), wp.data.eq(Cat(*(q_word for _ in range(P)))),
                         wp.en.eq(Mux(strobe, lane_en, 0))]
        w_pending = q_w_stb  # a write may land this clock: the pipeline reads no row yet

        read_tag = data.StructLayout({"lane": max(1, lane_bits), "sel": len(bus.sel), "valid": 1})
        m.submodules.window = port = WindowPort(addr_width=len(theta_rp.addr), tag=read_tag)
        m.d.comb += [
            port.r_stb.eq(q_r_stb & ((q_sel == WINDOW["theta"]) | (q_sel == WINDOW["bias"]) | (q_sel == WINDOW["v"])
                                    | (q_sel == WINDOW["u"]))),
            port.r_addr.eq(q_group),
            port.r_tag.lane.eq(q_lane),
            port.r_tag.sel.eq(q_sel),
            port.r_tag.valid.eq(in_range),
        ]
        # the answer in two register stages: the lane of every memory, then the memory
        kinds = ("theta", "bias", "v", "u")
        r_lanes = [Signal(signed(bits), name=f"r_{kind}") for kind, bits in zip(kinds, (V, V, V, U))]
        r_ack, r_sel, r_valid = Signal(name="r_ack"), Signal.like(bus.sel, name="r_sel"), Signal(name="r_valid")
        m.d.sync += [lane.eq(rp.data[port.ack_tag.lane]) for lane, rp in zip(r_lanes, read_ports)]
        m.d.sync += [r_ack.eq(port.ack), r_sel.eq(port.ack_tag.sel), r_valid.eq(port.ack & port.ack_tag.valid)]
        r_value = Signal(signed(32))
        with m.Switch(r_sel):
            for kind, lane in zip(kinds, r_lanes):
                with m.Case(WINDOW[kind]):
                    m.d.comb += r_value.eq(lane)
        m.d.sync += [bus.r_ack.eq(r_ack), bus.r_data.eq(Mux(r_valid, r_value, 0))]

        # ---- run-time constants (MODE, the decays' shifts and rounding constants) in registers: they
        # change by register writes between runs and reach the lanes a clock after the write.
        def hold(value, name):
            reg = Signal(Value.cast(value).shape(), name=name)
            m.d.sync += reg.eq(value)
            return reg

        ctrl = self.ctrl
        fields = _Mode._fields if c.options else ("neuron", "reset")
        mode = _Mode(**{f: hold(getattr(ctrl, f), f"mode_{f}") for f in fields})
        rounding = ctrl.decay_round if c.options else _Mode(ctrl.neuron, ctrl.reset).decay_round
        lam = Decay(m, ctrl.lam, rounding=rounding, frac_bits=F, mode=c.decay, name="lam", hold=hold)
        alpha = Decay(m, ctrl.alpha, rounding=rounding, frac_bits=F, mode=c.decay, name="alpha", hold=hold)
        cuba = mode.neuron == Neuron.CUBA

        # ---- the pipeline: every stage register loads on `adv`, all at once
        adv = Signal()

        def stage(value, name):
            value = value if isinstance(value, data.View) else Value.cast(value)
            reg = Signal(value.shape(), name=name)
            with m.If(adv):
                m.d.sync += reg.eq(value)
            return reg

        items = []  # per stage: (valid, group, end, last), the item whose data that stage holds

        def step(item, name):
            items.append(tuple(stage(x, f"{name}_{what}") for x, what in zip(item, ("valid", "group", "end", "last"))))
            return items[-1]

        def delay(value, n, name):
            for i in range(n):
                value = stage(value, f"{name}_d{i}")
            return value

        out = SkidOutput(self.o_stream)  # a blocked output stops `adv` from the next clock
        hazard = Signal()  # the offered group's state is still in flight
        may_take = Signal()  # the array takes a group whose state is not in flight
        clear_pend = Signal(init=1)  # a reset clears the state too (memories keep their contents)
        clearing = Signal()
        i = self.i_stream
        m.d.comb += [
            adv.eq(~out.held & ~port.replay),
            may_take.eq(adv & ~port.pending & ~w_pending & ~clear_pend & ~clearing),
            i.ready.eq(may_take & ~hazard),
        ]
        accept = i.valid & i.ready
        # stage "ports": the group's row is on the read ports
        item = step((accept, i.p.group, i.p.end, i.p.last), "ports")
        syn = stage(i.p.syn, "ports_syn")
        m.d.comb += [port.stall.eq(out.held & item[0]), port.addr.eq(i.p.group), port.held.eq(item[1])]
        for rp in read_ports:
            m.d.comb += [rp.addr.eq(port.rp_addr), rp.en.eq(port.rp_en)]
        # stage "read": the row in registers
        item = step(item, "read")
        syn = stage(syn, "read_syn")
        theta, bias, v, u = ([stage(rp.data[p], f"read_{kind}{p}") for p in range(P)]
                             for kind, rp in zip(("theta", "bias", "v", "u"), read_ports))
        # stages of the decays: the product (multiply), the loss
        for n in range(lam.stages):
            item = step(item, f"product{n}")
        lam_loss = [stage(lam.of(v[p], stage), f"lam_loss{p}") for p in range(P)]
        alpha_loss = [stage(alpha.of(u[p], stage), f"alpha_loss{p}") for p in range(P)]
        item = step(item, "loss")
        syn, theta, bias, v, u = (
            [delay(x[p], lam.stages + 1, f"{what}{p}") for p in range(P)]
            for x, what in ((syn, "syn"), (theta, "theta"), (bias, "bias"), (v, "v"), (u, "u")))
        # stages of `neuron_update`; its results are for the item of the last stage
        lanes = [
            neuron_update(m, syn=syn[p], bias=bias[p], theta=theta[p], v=v[p], u=u[p], lam_loss=lam_loss[p],
                          alpha_loss=alpha_loss[p], mode=mode, v_bits=V, u_bits=U, options=c.options,
                          name=str(p), stage=stage)
            for p in range(P)
        ]
        for n in range(UPDATE_STAGES):
            item = step(item, f"update{n + 1}")
        last_valid, last_group, last_end, last_last = item
        write = adv & last_valid

        # ---- read-modify-write: a group's v and u are written `len(items)` clocks after its read (the
        # read ports are not transparent: a read sees the write a clock later); a group is offered again
        # at least `NG` clocks after (groups come in order), so only a layer of fewer groups than
        # `state_cycles` holds a group back until its write has landed.
        assert len(items) + 1 == state_cycles(c)
        if NG < state_cycles(c):
            inflight = Signal(NG)
            # (a group held back is in flight already: its bit needs no `hazard`)
            m.d.sync += inflight.eq((inflight | Mux(i.valid & may_take, Const(1, NG) << i.p.group, 0))
                                    & ~Mux(write, Const(1, NG) << last_group, 0))
            m.d.comb += hazard.eq(inflight.bit_select(i.p.group, 1))

        m.d.comb += [
            v_wp.addr.eq(last_group), v_wp.data.eq(Cat(*(lane.v_next for lane in lanes))), v_wp.en.eq(write),
            u_wp.addr.eq(last_group), u_wp.data.eq(Cat(*(lane.u_cuba for lane in lanes))), u_wp.en.eq(write & cuba),
        ]

        # ---- clear: walk the groups writing zeros, once the pipeline is empty
        clear_addr = Signal(index_shape(NG))
        with m.If(ctrl.clear):
            m.d.sync += clear_pend.eq(1)
        in_flight = Signal()  # a stage holds a group
        m.d.comb += in_flight.eq(Cat(*(it[0] for it in items)).any())
        with m.If(clearing):
            m.d.comb += [
                v_wp.addr.eq(clear_addr), v_wp.data.eq(0), v_wp.en.eq(1),
                u_wp.addr.eq(clear_addr), u_wp.data.eq(0), u_wp.en.eq(1),
            ]
            m.d.sync += clear_addr.eq(clear_addr + 1)
            with m.If(clear_addr == NG - 1):
                m.d.sync += clearing.eq(0)
        with m.Elif(clear_pend & ~in_flight):
            m.d.sync += [clearing.eq(1), clear_pend.eq(0), clear_addr.eq(0)]

        # ---- output register (and its skid register)
        result = Signal.like(self.o_stream.p)
        lane_valid = [(last_group != NG - 1) | Const(p < c.n_out - (NG - 1) * P, 1) for p in range(P)]
        m.d.comb += [
            result.z.eq(Cat(*(lane.z & ok for lane, ok in zip(lanes, lane_valid)))),
            result.v.eq(Cat(*(lane.v_pre for lane in lanes))),
            result.group.eq(last_group), result.end.eq(last_end), result.last.eq(last_last),
        ]
        if self._probes_built:  # modulo 2^32, sign-extended without the options (whose a_u is narrower)
            m.d.comb += [result.u[p].eq(lane.u) for p, lane in enumerate(lanes)]
        out.offer(m, result, write)
        m.d.comb += [
            ctrl.clearing.eq(clear_pend | clearing),
            ctrl.busy.eq(in_flight | out.valid | out.held),
        ]
        # a timestep is inside until its last group leaves
        tokens = [(valid & end, last) for valid, _, end, last in items]
        tokens += [(full & held.end, held.last) for full, held in out.full()]
        self._probes = {"steps": sum(t for t, _ in tokens), "lasts": sum(t & last for t, last in tokens)}
        return m
