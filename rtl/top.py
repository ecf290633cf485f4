"""The core: a `Network` behind AXI-Stream in/out and an AXI-Lite register file.

AXI names appear only here. `Core` runs in the `sync` domain (for Amaranth's simulator);
`CoreTop` wraps it with `aclk` and the active-low `aresetn` for Verilog and Vivado.

Stream framing (`spikeloop.stream.pack_spikes`): an input timestep is `WORDS_IN` bus words of
spike bits, LSB-first. A TLAST before the last word of a timestep ends that timestep early:
the missing bits are zero, it is processed, and `STATUS.err_truncated` is set. Every input
timestep gives exactly one output timestep of `WORDS_OUT` words, in order; the output TLAST
is on the last word of the timestep that carried the input TLAST. So T timesteps in always
give T timesteps out with TLAST, and a DMA never hangs.

Register file (`spikeloop.regmap`): every access answers OKAY (an error response would be a
bus fault on the Zynq, killing the process), errors are reported by sticky STATUS bits. Writes
are whole words (`wstrb` is ignored).
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, Const, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikeloop import regmap
from spikeloop.config import CoreConfig
from spikeloop.network import Reset
from spikeloop.stream import output_words_per_timestep, words_per_timestep

from .common import DECAY_BITS, WINDOW, Probed, check_type, parameters, popcount
from .network import Network

__all__ = ["Core", "CoreTop", "axi_members"]


def axi_members(config: CoreConfig) -> dict:
    """The flat AXI ports of the core, named as cocotbext-axi and Vivado expect them."""
    W, A = config.bus_width, regmap.address_bits(config)
    return {
        "s_axis_tdata": In(W), "s_axis_tvalid": In(1), "s_axis_tready": Out(1), "s_axis_tlast": In(1),
        "m_axis_tdata": Out(W), "m_axis_tvalid": Out(1), "m_axis_tready": In(1), "m_axis_tlast": Out(1),
        "s_axi_awaddr": In(A), "s_axi_awprot": In(3), "s_axi_awvalid": In(1), "s_axi_awready": Out(1),
        "s_axi_wdata": In(32), "s_axi_wstrb": In(4), "s_axi_wvalid": In(1), "s_axi_wready": Out(1),
        "s_axi_bresp": Out(2), "s_axi_bvalid": Out(1), "s_axi_bready": In(1),
        "s_axi_araddr": In(A), "s_axi_arprot": In(3), "s_axi_arvalid": In(1), "s_axi_arready": Out(1),
        "s_axi_rdata": Out(32), "s_axi_rresp": Out(2), "s_axi_rvalid": Out(1), "s_axi_rready": In(1),
    }


class Core(wiring.Component, Probed):
    """The whole core in the `sync` domain.

    Parameters (keyword-only)
    ----------
    config : CoreConfig.

    Members
    -------
    The AXI ports of `axi_members(config)`.
    """

    def __init__(self, *, config: CoreConfig):
        with parameters(self):
            check_type("config", config, CoreConfig)
        self._config = config
        self._network = Network(config=config)
        super().__init__(axi_members(config))

    @property
    def config(self) -> CoreConfig:
        """The build configuration."""
        return self._config

    @property
    def network(self) -> Network:
        """The datapath behind the AXI ports."""
        return self._network

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        W = cfg.bus_width
        n_layers = len(cfg.layers)
        m.submodules.network = net = self._network

        status = regmap.register("STATUS")
        err_truncated, err_param, err_address, err_busy_write = (Signal(name=name) for name in regmap.ERRORS)

        counters = {name: Signal(64, name=name.lower()) for name in regmap.COUNTERS}
        shadows = {name: Signal(32, name=name.lower() + "_hi") for name in counters}
        clear_counters = Signal()

        # ---------------- input: bus words -> one spike vector per timestep
        words_in = words_per_timestep(cfg.n_in, W)
        widx = Signal(range(max(2, words_in)))
        vec = Signal(words_in * W)
        pending = Signal()
        pending_last = Signal()
        pending_words = Signal.like(widx)  # index of the last word received of the pending timestep
        clear_req = Signal()
        clear_run = Signal()
        hold = (clear_req | clear_run) & (widx == 0)
        m.d.comb += self.s_axis_tready.eq(~pending & ~hold)
        take = self.s_axis_tvalid & self.s_axis_tready
        last_valid_bits = cfg.n_in - (words_in - 1) * W
        in_mask = Mux(widx == words_in - 1, (1 << last_valid_bits) - 1, (1 << W) - 1)
        spikes_in_word = popcount(self.s_axis_tdata & in_mask)
        with m.If(take):
            with m.Switch(widx):
                for w in range(words_in):
                    with m.Case(w):
                        m.d.sync += vec[w * W : (w + 1) * W].eq(self.s_axis_tdata)
            m.d.sync += counters["SPIKES_IN"].eq(counters["SPIKES_IN"] + spikes_in_word)
            with m.If((widx == words_in - 1) | self.s_axis_tlast):
                m.d.sync += [pending.eq(1), pending_last.eq(self.s_axis_tlast), pending_words.eq(widx), widx.eq(0)]
                with m.If(widx != words_in - 1):
                    m.d.sync += err_truncated.eq(1)
            with m.Else():
                m.d.sync += widx.eq(widx + 1)
        masked = Cat(vec[:W], *(Mux(pending_words >= w, vec[w * W : (w + 1) * W], 0) for w in range(1, words_in)))
        m.d.comb += [
            net.i_stream.valid.eq(pending),
            net.i_stream.p.spikes.eq(masked[: cfg.n_in]),
            net.i_stream.p.last.eq(pending_last),
        ]
        with m.If(net.i_stream.valid & net.i_stream.ready):
            m.d.sync += pending.eq(0)

        # ---------------- output: one payload per timestep -> bus words
        words_out = output_words_per_timestep(cfg)
        out_words = self._output_words(net.o_stream.p)
        held = Signal(len(Cat(*out_words)))
        held_last = Signal()
        active = Signal()
        oidx = Signal(range(max(2, words_out)))
        m.d.comb += net.o_stream.ready.eq(~active)
        with m.If(net.o_stream.valid & ~active):
            m.d.sync += [held.eq(Cat(*out_words)), held_last.eq(net.o_stream.p.last), active.eq(1), oidx.eq(0)]
            m.d.sync += [
                counters["TIMESTEPS"].eq(counters["TIMESTEPS"] + 1),
                counters["SPIKES_OUT"].eq(counters["SPIKES_OUT"] + popcount(net.o_stream.p.spikes)),
            ]
        m.d.comb += [
            self.m_axis_tvalid.eq(active),
            self.m_axis_tdata.eq(held.word_select(oidx, W)),
            self.m_axis_tlast.eq(held_last & (oidx == words_out - 1)),
        ]
        with m.If(self.m_axis_tvalid & self.m_axis_tready):
            with m.If(oidx == words_out - 1):
                m.d.sync += active.eq(0)
            with m.Else():
                m.d.sync += oidx.eq(oidx + 1)

        busy = Signal()
        m.d.comb += busy.eq(pending | (widx != 0) | net.busy | active)
        with m.If(busy):
            m.d.sync += counters["BUSY_CYCLES"].eq(counters["BUSY_CYCLES"] + 1)
        with m.If(clear_counters):
            m.d.sync += [c.eq(0) for c in counters.values()]

        # ---------------- state clear: at a timestep boundary, once nothing is in flight
        # The layers raise `clearing` from the cycle after the pulse until their state is zero.
        any_clearing = Cat(*(net.ctrl[k].clearing for k in range(n_layers))).any()
        clear_pulse = Signal()
        with m.If(clear_req & (widx == 0) & ~pending & ~net.busy):
            m.d.comb += clear_pulse.eq(1)
            m.d.sync += [clear_req.eq(0), clear_run.eq(1)]
        with m.Elif(clear_run & ~any_clearing):
            m.d.sync += clear_run.eq(0)
        for k in range(n_layers):
            m.d.comb += net.ctrl[k].clear.eq(clear_pulse)

        # ---------------- run-time layer registers
        mode_reg = regmap.layer_register("MODE")
        neuron_field, reset_field = mode_reg.field("neuron"), mode_reg.field("reset")
        modes = [Signal(_width(mode_reg), name=f"mode{k}") for k in range(n_layers)]
        lams = [Signal(DECAY_BITS, name=f"lam{k}") for k in range(n_layers)]
        alphas = [Signal(DECAY_BITS, name=f"alpha{k}") for k in range(n_layers)]
        for k in range(n_layers):
            m.d.comb += [
                net.ctrl[k].neuron.eq(modes[k].bit_select(neuron_field.lsb, neuron_field.width)),
                net.ctrl[k].reset.eq(modes[k].bit_select(reset_field.lsb, reset_field.width)),
                net.ctrl[k].lam.eq(lams[k]),
                net.ctrl[k].alpha.eq(alphas[k]),
            ]

        # ---------------- AXI-Lite
        A = regmap.address_bits(cfg)
        addr = Signal(A)
        wdata = Signal(32)
        rdata = Signal(32)
        bus = net.bus
        m.d.comb += [self.s_axi_bresp.eq(0), self.s_axi_rresp.eq(0), self.s_axi_rdata.eq(rdata)]

        # Address decode (combinational on the latched address).
        windows = regmap.windows(cfg)
        win_hit = Signal()
        win_layer = Signal.like(bus.layer)
        win_sel = Signal.like(bus.sel)
        win_word = Signal(len(bus.addr))
        win_ro = Signal()
        for w in windows:
            span_bits = (w.span - 1).bit_length()
            with m.If((addr[span_bits:] == (w.base >> span_bits)) & (addr[2:span_bits] < w.words)):
                m.d.comb += [win_hit.eq(1), win_layer.eq(w.layer), win_sel.eq(WINDOW[w.kind]),
                             win_word.eq(addr[2:span_bits]), win_ro.eq(int(not w.writable))]
        m.d.comb += [bus.layer.eq(win_layer), bus.sel.eq(win_sel), bus.addr.eq(win_word), bus.w_data.eq(wdata)]

        ro_values = cfg.readback()
        word_addr = addr[2:]

        with m.FSM(name="axil") as axil:
            with m.State("IDLE"):
                with m.If(self.s_axi_arvalid):
                    m.d.comb += self.s_axi_arready.eq(1)
                    m.d.sync += addr.eq(self.s_axi_araddr)
                    m.next = "READ"
                with m.Elif(self.s_axi_awvalid & self.s_axi_wvalid):
                    m.d.comb += [self.s_axi_awready.eq(1), self.s_axi_wready.eq(1)]
                    m.d.sync += [addr.eq(self.s_axi_awaddr), wdata.eq(self.s_axi_wdata)]
                    m.next = "WRITE"

            with m.State("READ"):
                with m.If(win_hit & (addr[:2] == 0)):
                    m.d.comb += bus.r_stb.eq(1)
                    m.next = "READ_WINDOW"
                with m.Else():
                    m.next = "READ_RESP"
                    m.d.sync += rdata.eq(0)
                    with m.If(addr[:2] != 0):
                        m.d.sync += err_address.eq(1)
                    with m.Else():
                        self._read_registers(m, word_addr, rdata, ro_values, counters, shadows, modes, lams, alphas,
                                             status, busy, clear_req | clear_run | any_clearing,
                                             (err_truncated, err_param, err_address, err_busy_write))

            with m.State("READ_WINDOW"):
                with m.If(bus.r_ack):
                    m.d.sync += rdata.eq(bus.r_data)
                    m.next = "READ_RESP"

            with m.State("READ_RESP"):
                m.d.comb += self.s_axi_rvalid.eq(1)
                with m.If(self.s_axi_rready):
                    m.next = "IDLE"

            with m.State("WRITE"):
                m.next = "WRITE_RESP"
                with m.If(addr[:2] != 0):
                    m.d.sync += err_address.eq(1)
                with m.Elif(win_hit):
                    with m.If(win_ro):
                        m.d.sync += err_address.eq(1)
                    with m.Else():
                        m.d.comb += bus.w_stb.eq(1)
                        with m.If(bus.w_err):
                            m.d.sync += err_param.eq(1)
                        with m.If(busy):
                            m.d.sync += err_busy_write.eq(1)
                with m.Else():
                    self._write_registers(m, word_addr, wdata, modes, lams, alphas, status,
                                          (err_truncated, err_param, err_address, err_busy_write),
                                          clear_req, clear_counters)

            with m.State("WRITE_RESP"):
                m.d.comb += self.s_axi_bvalid.eq(1)
                with m.If(self.s_axi_bready):
                    m.next = "IDLE"

        self._probes = {
            "steps": pending + active, "lasts": (pending & pending_last) + (active & held_last),
            "widx": widx, "oidx": oidx,
            "writing": axil.ongoing("WRITE") | axil.ongoing("WRITE_RESP"),
            "reading": axil.ongoing("READ") | axil.ongoing("READ_WINDOW") | axil.ongoing("READ_RESP"),
        }
        return m

    def _output_words(self, payload) -> list:
        """The words of one output timestep: spikes, then the membranes as 32-bit fields."""
        cfg = self._config
        W = cfg.bus_width
        spikes = Cat(payload.spikes, Const(0, words_per_timestep(cfg.n_out, W) * W - cfg.n_out))
        words = [spikes[w * W : (w + 1) * W] for w in range(len(spikes) // W)]
        if cfg.membranes:
            fields = [_sext(payload.v[j], 32) for j in range(cfg.n_out)]
            per = W // 32
            fields += [Const(0, 32)] * (-len(fields) % per)
            for i in range(0, len(fields), per):
                words.append(Cat(*fields[i : i + per]))
        return words

    def _read_registers(self, m, word_addr, rdata, ro_values, counters, shadows, modes, lams, alphas,
                        status, busy, clearing, errors):
        cfg = self._config
        with m.Switch(word_addr):
            for offset, value in sorted(ro_values.items()):
                with m.Case(offset // 4):
                    m.d.sync += rdata.eq(value)
            with m.Case(regmap.register("STATUS").offset // 4):
                m.d.sync += rdata.eq(self._status_word(status, busy, clearing, errors))
            for name, counter in counters.items():
                with m.Case(regmap.register(f"{name}_LO").offset // 4):
                    m.d.sync += [rdata.eq(counter[:32]), shadows[name].eq(counter[32:])]
                with m.Case(regmap.register(f"{name}_HI").offset // 4):
                    m.d.sync += rdata.eq(shadows[name])
            for k in range(len(cfg.layers)):
                for name, reg in (("MODE", modes[k]), ("LAM", lams[k]), ("ALPHA", alphas[k])):
                    with m.Case(regmap.layer_offset(k, name) // 4):
                        m.d.sync += rdata.eq(reg)
            with m.Case(regmap.register("CONTROL").offset // 4):
                m.d.sync += rdata.eq(0)
            with m.Default():
                m.d.sync += errors[2].eq(1)

    @staticmethod
    def _status_word(status, busy, clearing, errors):
        bits = {"busy": busy, "clearing": clearing, **dict(zip(regmap.ERRORS, errors))}
        word = Const(0, 32)
        for name, bit in bits.items():
            word = word | (bit << status.field(name).lsb)
        return word

    def _write_registers(self, m, word_addr, wdata, modes, lams, alphas, status, errors, clear_req, clear_counters):
        cfg = self._config
        control = regmap.register("CONTROL")
        mode_reg = regmap.layer_register("MODE")
        with m.Switch(word_addr):
            with m.Case(control.offset // 4):
                with m.If(wdata[control.field("clear_state").lsb]):
                    m.d.sync += clear_req.eq(1)
                with m.If(wdata[control.field("clear_counters").lsb]):
                    m.d.comb += clear_counters.eq(1)
            with m.Case(status.offset // 4):
                for err, name in zip(errors, regmap.ERRORS):
                    with m.If(wdata[status.field(name).lsb]):
                        m.d.sync += err.eq(0)
            for k, layer in enumerate(cfg.layers):
                with m.Case(regmap.layer_offset(k, "MODE") // 4):
                    reset_field = mode_reg.field("reset")
                    reset_code = wdata.bit_select(reset_field.lsb, reset_field.width)
                    ok = (wdata[_width(mode_reg):] == 0) & (reset_code <= max(Reset))
                    with m.If(ok):
                        m.d.sync += modes[k].eq(wdata)
                    with m.Else():
                        m.d.sync += errors[1].eq(1)
                for name, reg in (("LAM", lams[k]), ("ALPHA", alphas[k])):
                    with m.Case(regmap.layer_offset(k, name) // 4):
                        ok = wdata <= (1 << layer.frac_bits)
                        if layer.decay == "shift":
                            ok = ok & ((wdata & (wdata - 1)) == 0)
                        with m.If(ok):
                            m.d.sync += reg.eq(wdata)
                        with m.Else():
                            m.d.sync += errors[1].eq(1)
            with m.Default():
                m.d.sync += errors[2].eq(1)  # read-only or unmapped


def _width(register) -> int:
    """Bits up to the register's highest field."""
    return max(f.lsb + f.width for f in register.fields)


def _sext(value, width):
    """A signed value sign-extended to `width` bits (as an unsigned bit pattern)."""
    value = Value.cast(value)
    return Cat(value, value[-1].replicate(width - len(value)))


class CoreTop(wiring.Component):
    """`Core` with its clock `aclk` and active-low synchronous reset `aresetn`: what Vivado instantiates."""

    def __init__(self, *, config: CoreConfig):
        with parameters(self):
            check_type("config", config, CoreConfig)
        self._config = config
        super().__init__({"aclk": In(1), "aresetn": In(1), **axi_members(config)})

    @property
    def config(self) -> CoreConfig:
        """The build configuration."""
        return self._config

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain(local=True)
        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(~self.aresetn)]
        m.submodules.core = core = Core(config=self._config)
        for name, member in axi_members(self._config).items():
            if member.flow == In:
                m.d.comb += getattr(core, name).eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(getattr(core, name))
        return m
