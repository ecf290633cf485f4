"""The core: a `Network` behind AXI-Stream in/out and an AXI-Lite register file.

AXI names appear only here. `Core` runs in the `sync` domain (for Amaranth's simulator);
`CoreTop` wraps it with `aclk` and the active-low `aresetn` for Verilog and Vivado.

`Core` only connects its components, each with one job:

    s_axis -> Deframer -> Network -> Framer -> m_axis        (rtl/framing.py, rtl/network.py)
    s_axi  -> RegisterFile -> MemBus windows, run-time values  (rtl/registers.py)
              Counters (rtl/counters.py), StateClear (rtl/clear.py)
    s_axis -> Loader -> RegisterFile writes, after CONTROL.load_params (rtl/loader.py)

Stream framing (`spikeloop.regmap.pack_spikes`, `pack_output`): every input timestep gives
exactly one output timestep, in order; the output TLAST is on the last word of the timestep
that carried the input TLAST, also when TLAST truncated it (`STATUS.err_truncated`). So T
timesteps in always give T timesteps out with TLAST, and a DMA never hangs.

Probes (a core built with `probes`): the framer appends the layers' captures `PROBE` selects; while
`PROBE` is not 0 the deframer is held (`hold`) from a timestep's first word until its last output
word is sent, so that layers do not overlap timesteps and every capture holds that timestep.
While a load is armed the deframer is held as well (the loader takes the stream once it is quiet).
`busy` (BUSY_CYCLES, STATUS.busy, the probe hold) takes the network's busy a cycle late, with the
cycle a timestep goes from the deframer to the network covered by a register of that hand-over.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikeloop import regmap
from spikeloop.config import CoreConfig

from .clear import StateClear
from .common import Probed, check_type, parameters
from .counters import Counters
from .framing import Deframer, Framer
from .loader import Loader
from .network import Network
from .registers import AxiLite, RegisterFile

__all__ = ["Core", "CoreTop", "axi_members"]

#: Prefix of the AXI-Lite ports (`AxiLite` names them without it).
AXI_LITE_PREFIX = "s_axi_"


def axi_members(config: CoreConfig) -> dict:
    """The flat AXI ports of the core, named as cocotbext-axi and Vivado expect them."""
    W = config.bus_width
    members = {
        "s_axis_tdata": In(W), "s_axis_tvalid": In(1), "s_axis_tready": Out(1), "s_axis_tlast": In(1),
        "m_axis_tdata": Out(W), "m_axis_tvalid": Out(1), "m_axis_tready": In(1), "m_axis_tlast": Out(1),
    }
    lite = AxiLite(addr_width=regmap.address_bits(config))
    members.update({AXI_LITE_PREFIX + name: member.flip() for name, member in lite.members.items()})
    return members


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
        self._deframer = Deframer(n=config.n_in, bus_width=config.bus_width)
        self._framer = Framer(config=config)
        self._registers = RegisterFile(config=config, window_addr_width=self._network.addr_width)
        self._state_clear = StateClear()
        self._loader = Loader(config=config)
        events = {"TIMESTEPS": self._framer.timestep, "SPIKES_IN": self._deframer.spikes,
                  "SPIKES_OUT": self._framer.spikes, "BUSY_CYCLES": Signal(name="busy")}
        self._events = events
        self._counters = Counters(widths={name: len(value) for name, value in events.items()})
        super().__init__(axi_members(config))

    @property
    def config(self) -> CoreConfig:
        """The build configuration."""
        return self._config

    @property
    def network(self) -> Network:
        """The datapath behind the AXI ports."""
        return self._network

    @property
    def deframer(self) -> Deframer:
        """AXI-Stream words in -> spike vectors."""
        return self._deframer

    @property
    def framer(self) -> Framer:
        """Output payloads -> AXI-Stream words out."""
        return self._framer

    @property
    def registers(self) -> RegisterFile:
        """The AXI-Lite register file."""
        return self._registers

    @property
    def probes(self) -> dict:
        """The framing's, the register file's and the loader's probes (`to_loader`: the input stream goes
        to the loader); `steps` and `lasts` summed over both framings."""
        parts = [self._deframer.probes, self._framer.probes, self._registers.probes, self._loader.probes]
        if not all(parts):
            return {}
        merged = {}
        for part in parts:
            for name, value in part.items():
                merged[name] = merged[name] + value if name in merged else value
        return merged

    def elaborate(self, platform):
        m = Module()
        net, deframer, framer = self._network, self._deframer, self._framer
        regs, clear, counters = self._registers, self._state_clear, self._counters
        m.submodules.network = net
        m.submodules.deframer = deframer
        m.submodules.framer = framer
        m.submodules.registers = regs
        m.submodules.state_clear = clear
        m.submodules.counters = counters
        m.submodules.loader = loader = self._loader

        # AXI-Stream <-> word streams
        m.d.comb += [
            deframer.i_stream.p.data.eq(self.s_axis_tdata),
            deframer.i_stream.p.last.eq(self.s_axis_tlast),
            deframer.i_stream.valid.eq(self.s_axis_tvalid & ~loader.select),
            self.s_axis_tready.eq(Mux(loader.select, loader.i_stream.ready, deframer.i_stream.ready)),
            self.m_axis_tdata.eq(framer.o_stream.p.data),
            self.m_axis_tlast.eq(framer.o_stream.p.last),
            self.m_axis_tvalid.eq(framer.o_stream.valid),
            framer.o_stream.ready.eq(self.m_axis_tready),
        ]
        wiring.connect(m, producer=deframer.o_stream, consumer=net.i_stream)
        wiring.connect(m, producer=net.o_stream, consumer=framer.i_stream)

        # AXI-Lite <-> register file
        for name, member in regs.bus.signature.members.items():
            port, inner = getattr(self, AXI_LITE_PREFIX + name), getattr(regs.bus, name)
            m.d.comb += inner.eq(port) if member.flow == In else port.eq(inner)
        wiring.connect(m, regs.windows, net.bus)
        # parameter loads by stream: the input stream goes to the loader while it selects it
        m.d.comb += [
            loader.i_stream.p.data.eq(self.s_axis_tdata),
            loader.i_stream.p.last.eq(self.s_axis_tlast),
            loader.i_stream.valid.eq(self.s_axis_tvalid & loader.select),
            loader.arm.eq(regs.control.load_params),
            loader.quiet.eq(~deframer.busy),
            regs.status.loading.eq(loader.loading),
            regs.status.err_load.eq(loader.error),
        ]
        wiring.connect(m, producer=loader.o_writes, consumer=regs.writes)
        for k, ctrl in enumerate(net.ctrl):
            m.d.comb += [getattr(ctrl, name).eq(regs.layers[k][name]) for name in regs.layers[k].shape().members]
            m.d.comb += ctrl.clear.eq(clear.clear)

        # state clear, status, counters
        busy = self._events["BUSY_CYCLES"]
        layers_clearing = Cat(*(ctrl.clearing for ctrl in net.ctrl)).any()
        # a timestep in flight; the network's busy comes a cycle late (it comes from deep in the
        # layers), the cycle a timestep goes from the deframer to the network is covered by `handed`
        net_busy, handed = Signal(), Signal()
        m.d.sync += [net_busy.eq(net.busy), handed.eq(deframer.o_stream.valid & deframer.o_stream.ready)]
        m.d.comb += [
            busy.eq(deframer.busy | handed | net_busy | framer.busy),
            clear.start.eq(regs.control.clear_state),
            clear.quiet.eq(~deframer.busy & ~net.busy),
            clear.layers_clearing.eq(layers_clearing),
            deframer.hold.eq(self._hold(m, clear.hold | loader.loading, busy)),
            regs.status.busy.eq(busy),
            regs.status.clearing.eq(clear.clearing),
            regs.status.err_truncated.eq(deframer.truncated),
            counters.clear.eq(regs.control.clear_counters),
            regs.counters.eq(counters.count),
        ]
        m.d.comb += [counters.inc[name].eq(value) for name, value in self._events.items()]
        return m

    def _hold(self, m, clear_hold, busy):
        """The deframer's hold: the state clear's and the loader's; with probes built, also while PROBE
        is not 0 and a timestep is in flight (`busy`; and the framer is connected to PROBE and the
        layers' captures)."""
        if not self._config.probes:
            return clear_hold
        regs, net, framer = self._registers, self._network, self._framer
        m.d.comb += [framer.probe.eq(regs.probe), framer.layers.eq(net.probe)]
        probing = regs.probe.as_value().any()
        return clear_hold | (probing & busy)


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
