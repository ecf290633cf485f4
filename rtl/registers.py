"""The AXI-Lite register file, its address decode generated from the register table of `spikeloop.regmap`.

Every register of `GLOBAL_REGISTERS`, of `LAYER_REGISTERS` (per layer of the build) and every
window of `regmap.windows` is decoded from the table; no offset is written here. By access:
`ro` registers read the configuration readback (`CoreConfig.readback`) or a counter (`X_LO`
latches the upper half that `X_HI` returns); `rw` per-layer registers hold run-time values,
checked on write; `wo` (CONTROL) reads 0 and its fields pulse on a write of 1; `rw1c` (STATUS)
reads the state and the sticky error bits, which a write of 1 clears.

Every access answers OKAY (an error response would be a bus fault on the Zynq, killing the
process); refusals set sticky STATUS bits: a read-only, unmapped or unaligned address sets
`err_address`, a refused value `err_param`, a window write while busy `err_busy_write`.
Writes are whole words (`wstrb` is ignored). Window accesses go to the `MemBus`.

Pipeline: every access (AXI-Lite or a stream write) passes two register stages (a window's three), stream writes
back to back one per clock; an AXI-Lite access is taken only in IDLE, so accesses stay in order:

    IDLE: take -> A (addr, data, kind) -> B (decode: one-hot `b_hit`, values accepted, window hit)
                                           -> effects; C (MemBus sel/layer/addr/w_data/w_stb/r_stb)
    write: WRITE (A) -> WRITE_B (B) -> WRITE_RESP (C)
    read:  READ (A) -> READ_B (B; counters' upper halves latched) -> READ_VALUE (the registered
           read multiplexer) -> READ_RESP, or READ_WINDOW (C, then registered r_ack, r_data) -> READ_RESP

The status inputs (`status_q`), the AXI-Lite request the round robin sees and the MemBus read
answer are registered too.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikeloop import regmap
from spikeloop.config import CoreConfig, LayerConfig
from spikeloop.network import check_int
from spikeloop.regmap import COUNTERS, GLOBAL_REGISTERS, LAYER_REGISTERS

from .common import DECAY_BITS, WINDOW, MemBus, Probed, check_type, decoder, parameters
from .counters import counter_layout
from .loader import write_layout

__all__ = ["AxiLite", "RegisterFile", "field_layout", "runtime_layout"]

#: Bits of an AXI-Lite data word (every register and window word).
DATA_BITS = 32


class AxiLite(wiring.Signature):
    """An AXI-Lite port with 32-bit data, from the manager's side; names without a prefix.

    `awprot`, `arprot` and `wstrb` are carried for the bus's sake and ignored by the register file.
    """

    def __init__(self, *, addr_width: int):
        self._addr_width = check_int("addr_width", addr_width, 1, 32)
        A, D = addr_width, DATA_BITS
        super().__init__({
            "awaddr": Out(A), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(D), "wstrb": Out(D // 8), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(A), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(D), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })

    @property
    def addr_width(self) -> int:
        """Width of the byte address."""
        return self._addr_width

    def __eq__(self, other):
        return isinstance(other, AxiLite) and self._addr_width == other._addr_width

    def __repr__(self):
        return f"AxiLite(addr_width={self._addr_width})"


def field_layout(register: regmap.Register) -> data.StructLayout:
    """One member per field of `register`, of the field's width."""
    return data.StructLayout({f.name: f.width for f in register.fields})


def _bits(register: regmap.Register) -> int:
    """Bits a run-time register stores: up to its highest field, or a decay (0..2^F, F <= 16)."""
    return max(f.lsb + f.width for f in register.fields) if register.fields else DECAY_BITS


def _runtime_registers() -> tuple[regmap.Register, ...]:
    return tuple(r for r in LAYER_REGISTERS if r.access == "rw")


def runtime_layout() -> data.StructLayout:
    """A layer's run-time values, named as `LayerControl` names them: the fields of the `rw`
    per-layer registers (MODE: neuron, reset and the numerics options) and the field-less ones in lower case
    (lam, alpha)."""
    members = {}
    for r in _runtime_registers():
        members.update({f.name: f.width for f in r.fields} if r.fields else {r.name.lower(): _bits(r)})
    return data.StructLayout(members)


class RegisterFile(wiring.Component, Probed):
    """The register file of `spikeloop.regmap` for one build.

    Parameters (keyword-only)
    ----------
    config : CoreConfig.
    window_addr_width : width of the word address of the network's `MemBus`.

    Members
    -------
    bus : In(AxiLite(addr_width=regmap.address_bits(config))).
    windows : Out(MemBus with a `layer` select), to the network's windows.
    layers : Out(`runtime_layout()`).array(n_layers), each layer's run-time values.
    control : Out(`field_layout(CONTROL)`), one-cycle pulses of a CONTROL write.
    probe : Out(`field_layout(PROBE)`), the PROBE register (what the output stream carries).
    status : In(`field_layout(STATUS)`): the state fields (busy, clearing) as they are, and
        error fields whose 1 sets the sticky bit (e.g. err_truncated from the framing).
    counters : In(`counters.counter_layout()`), the counter values.
    writes : In(stream of `loader.write_layout()`), register writes of a load frame: decoded and
        judged as AXI-Lite writes, without a response; one per clock, taking turns with AXI-Lite
        accesses (round robin) when both wait.
    """

    def __init__(self, *, config: CoreConfig, window_addr_width: int):
        with parameters(self):
            check_type("config", config, CoreConfig)
            check_int("window_addr_width", window_addr_width, 1, 32)
            self._plan = _plan(config)
        self._config = config
        self._window_addr_width = window_addr_width
        n = len(config.layers)
        super().__init__({
            "bus": In(AxiLite(addr_width=regmap.address_bits(config))),
            "windows": Out(MemBus(addr_width=window_addr_width, n_layers=n)),
            "layers": Out(runtime_layout()).array(n),
            "control": Out(field_layout(regmap.register("CONTROL"))),
            "probe": Out(field_layout(regmap.register("PROBE"))),
            "status": In(field_layout(regmap.register("STATUS"))),
            "counters": In(counter_layout()),
            "writes": In(stream.Signature(write_layout())),
        })

    @property
    def config(self) -> CoreConfig:
        """The build configuration."""
        return self._config

    @property
    def window_addr_width(self) -> int:
        """Width of the windows' word address."""
        return self._window_addr_width

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        bus, win = self.bus, self.windows
        status_reg = regmap.register("STATUS")
        status_q = Signal.like(self.status)  # the status inputs, registered
        m.d.sync += status_q.eq(self.status)
        sticky = {f.name: Signal(name=f.name) for f in status_reg.fields if f.name.startswith("err_")}
        for name, bit in sticky.items():  # set from outside; a STATUS write below clears (it wins)
            with m.If(status_q[name]):
                m.d.sync += bit.eq(1)
        w_err = Signal()  # a window refused the write of the cycle before (`MemBus.w_err`, registered)
        status_word = Const(0, DATA_BITS)
        for f in status_reg.fields:  # an error seen reads at once, before its sticky bit is set
            bit = sticky[f.name] | status_q[f.name] if f.name in sticky else status_q[f.name]
            status_word = status_word | ((bit | w_err if f.name == "err_param" else bit) << f.lsb)
        shadows = {name: Signal(DATA_BITS, name=f"{name.lower()}_hi") for name in COUNTERS}
        probe = Signal(_bits(regmap.register("PROBE")), name="probe")
        m.d.comb += self.probe.eq(probe)
        stores = [{r.name: Signal(_bits(r), name=f"{r.name.lower()}{k}") for r in _runtime_registers()}
                  for k in range(len(cfg.layers))]
        for k, regs in enumerate(stores):
            for r in _runtime_registers():
                if r.fields:
                    m.d.comb += [self.layers[k][f.name].eq(regs[r.name].bit_select(f.lsb, f.width)) for f in r.fields]
                else:
                    m.d.comb += self.layers[k][r.name.lower()].eq(regs[r.name])
        m.d.comb += [bus.bresp.eq(0), bus.rresp.eq(0)]

        # Stage A: the access taken (from AXI-Lite or the stream writes).
        a_valid, a_read = Signal(), Signal()
        addr = Signal(len(bus.awaddr))
        outside = Signal()  # a stream write's address beyond the address space
        wdata = Signal(DATA_BITS)
        m.d.sync += a_valid.eq(0)
        # Stage B: the access decoded (registers), acted on in this cycle.
        b_data = Signal(DATA_BITS)
        m.d.sync += b_data.eq(wdata)
        b_hit, b_write, b_bad, b_refused, b_win = self._decode(m, a_valid, a_read, addr, outside, wdata, b_data,
                                                               probe)
        rdata = Signal(DATA_BITS)
        m.d.comb += bus.rdata.eq(rdata)

        r_ack, r_data = Signal(), Signal(DATA_BITS)  # the MemBus read answer, registered
        m.d.sync += [r_ack.eq(win.r_ack), r_data.eq(win.r_data)]
        lite_waits = Signal()  # an AXI-Lite request waits (registered: a valid stays up until taken)
        m.d.sync += lite_waits.eq(bus.arvalid | (bus.awvalid & bus.wvalid))
        rvalue = Signal(DATA_BITS)  # the register `b_hit` selects, every cycle
        m.d.sync += rvalue.eq(self._read_mux(m, b_hit, status_word, shadows, stores, probe))
        stream_in = self.writes
        lite_turn = Signal()  # an AXI-Lite access went last: a waiting stream write goes first (round robin)
        with m.FSM(name="axil") as axil:
            with m.State("IDLE"):  # stream writes back to back, one per clock, while no AXI-Lite access waits
                m.d.comb += stream_in.ready.eq(lite_turn | ~lite_waits)  # from registers, whatever `valid` is
                with m.If(stream_in.valid & stream_in.ready):
                    m.d.sync += [a_valid.eq(1), a_read.eq(0), addr.eq(stream_in.p.addr),
                                 outside.eq(stream_in.p.addr[len(addr):] != 0), wdata.eq(stream_in.p.data),
                                 lite_turn.eq(0)]
                with m.Elif(bus.arvalid):
                    m.d.comb += bus.arready.eq(1)
                    m.d.sync += [a_valid.eq(1), a_read.eq(1), addr.eq(bus.araddr), outside.eq(0), lite_turn.eq(1)]
                    m.next = "READ"
                with m.Elif(bus.awvalid & bus.wvalid):
                    m.d.comb += [bus.awready.eq(1), bus.wready.eq(1)]
                    m.d.sync += [a_valid.eq(1), a_read.eq(0), addr.eq(bus.awaddr), outside.eq(0),
                                 wdata.eq(bus.wdata), lite_turn.eq(1)]
                    m.next = "WRITE"

            with m.State("READ"):  # decoding
                m.next = "READ_B"

            with m.State("READ_B"):  # a window read strobes the MemBus a clock later (win.r_stb)
                self._latch_counters(m, b_hit, shadows)
                with m.If(b_win):
                    m.next = "READ_WINDOW"
                with m.Else():
                    m.next = "READ_VALUE"

            with m.State("READ_VALUE"):
                m.d.sync += rdata.eq(rvalue)
                m.next = "READ_RESP"

            with m.State("READ_WINDOW"):  # the answer is registered as it comes (r_ack), taken a cycle later
                with m.If(r_ack):
                    m.d.sync += rdata.eq(r_data)
                    m.next = "READ_RESP"

            with m.State("READ_RESP"):
                m.d.comb += bus.rvalid.eq(1)
                with m.If(bus.rready):
                    m.next = "IDLE"

            with m.State("WRITE"):  # decoding
                m.next = "WRITE_B"

            with m.State("WRITE_B"):  # written now (as a stream write in whichever state)
                m.next = "WRITE_RESP"

            with m.State("WRITE_RESP"):
                m.d.comb += bus.bvalid.eq(1)
                with m.If(bus.bready):
                    m.next = "IDLE"

        # Stage B's effects (b_hit, b_write and b_bad are zero unless an access is there).
        with m.If(b_bad):
            m.d.sync += sticky["err_address"].eq(1)
        with m.If(b_refused):
            m.d.sync += sticky["err_param"].eq(1)
        m.d.sync += w_err.eq(win.w_stb & win.w_err)
        with m.If(w_err):
            m.d.sync += sticky["err_param"].eq(1)
        with m.If(win.w_stb):
            with m.If(status_q.busy):
                m.d.sync += sticky["err_busy_write"].eq(1)
        for i, (_, kind, register, arg) in enumerate(self._plan):
            if kind == "control":
                m.d.comb += [self.control[f.name].eq(b_write[i] & b_data[f.lsb]) for f in register.fields]
            elif kind == "status":
                for f in register.fields:
                    if f.name in sticky:
                        with m.If(b_write[i] & b_data[f.lsb]):
                            m.d.sync += sticky[f.name].eq(0)
            elif kind in ("probe", "runtime"):
                target = probe if kind == "probe" else stores[arg][register.name]
                with m.If(b_write[i]):
                    m.d.sync += target.eq(b_data)

        self._probes = {
            "writing": axil.ongoing("WRITE") | axil.ongoing("WRITE_B") | axil.ongoing("WRITE_RESP"),
            "reading": (axil.ongoing("READ") | axil.ongoing("READ_B") | axil.ongoing("READ_VALUE")
                        | axil.ongoing("READ_WINDOW") | axil.ongoing("READ_RESP")),
        }
        return m

    def _decode(self, m, a_valid, a_read, addr, outside, wdata, b_data, probe):
        """Stage A -> B: the access's address decoded into registers; B -> C: the MemBus driven from
        registers (strobes, sel, layer, addr, w_data).

        Returns `b_hit` (one bit per plan entry: the aligned address is that register's), `b_write`
        (the entry takes the written value), `b_bad` (err_address, in stage C), `b_refused` (err_param: a
        value the register refuses); all zero without an access; and `b_win` (the address is a window's).
        """
        cfg, win = self._config, self.windows
        n = len(self._plan)
        aligned = (addr[:2] == 0) & ~outside
        word_addr = addr[2:]
        write = a_valid & ~a_read
        equals = decoder(m, word_addr)
        hits = [aligned & equals(offset // regmap.WORD_BYTES) for offset, _, _, _ in self._plan]
        writable = [kind in ("control", "status", "probe", "runtime") for _, kind, _, _ in self._plan]
        oks = []
        for _, kind, register, arg in self._plan:
            if kind == "probe":
                ok = wdata[len(probe):] == 0
                oks.append(ok & (wdata == 0) if not cfg.probes else ok)
            elif kind == "runtime":
                oks.append(_accepts(register, cfg.layers[arg], wdata))
            else:
                oks.append(Const(1))
        windows = regmap.windows(cfg)
        spans = [(w.span - 1).bit_length() - 2 for w in windows]  # a window's word offset bits
        win_hits = []
        for w, lo in zip(windows, spans):  # the base matches from bit `lo` up
            hit = aligned & equals(w.base // regmap.WORD_BYTES, lo)
            win_hits.append(hit & (word_addr[:lo] < w.words) if w.words < 1 << lo else hit)

        # registered decode
        b_read, b_write_access, b_aligned = Signal(name="b_read"), Signal(name="b_write_access"), Signal()
        b_hit, b_ok = Signal(n, name="b_hit"), Signal(n, name="b_ok")
        b_whit = Signal(len(windows), name="b_whit")  # the window hit (one-hot or zero)
        b_offset = Signal(max(1, *spans), name="b_offset")  # the word offset in it
        m.d.sync += [
            b_read.eq(a_valid & a_read),
            b_write_access.eq(write),
            b_aligned.eq(aligned),
            b_hit.eq(Mux(a_valid, Cat(*hits), 0)),
            b_ok.eq(Cat(*oks)),
            b_whit.eq(Cat(*win_hits)),
            b_offset.eq(word_addr[: len(b_offset)]),
        ]

        # the MemBus, a clock later (stage C), from the registered window hit
        b_win = b_whit.any()
        b_ro = Cat(*(b_whit[i] for i, w in enumerate(windows) if not w.writable)).any()
        sel, layer, waddr, by_span = 0, 0, 0, {}
        for i, (w, lo) in enumerate(zip(windows, spans)):
            sel = sel | Mux(b_whit[i], WINDOW[w.kind], 0)
            layer = layer | Mux(b_whit[i], w.layer, 0)
            by_span[lo] = by_span.get(lo, Const(0)) | b_whit[i]
        for lo, hit in by_span.items():
            waddr = waddr | Mux(hit, b_offset[:lo], 0)
        m.d.sync += [
            win.w_stb.eq(b_write_access & b_win & ~b_ro),
            win.r_stb.eq(b_read & b_win),
            win.w_data.eq(b_data),
        ]
        with m.If(b_read | b_write_access):  # sampled with the strobes
            m.d.sync += [win.sel.eq(sel), win.layer.eq(layer), win.addr.eq(waddr)]

        # its verdicts, from registers
        writable_hit, refused = Const(0), Const(0)
        for i, w in enumerate(writable):
            if w:
                writable_hit = writable_hit | b_hit[i]
                refused = refused | (b_hit[i] & ~b_ok[i])
        b_write = Signal(n, name="b_write")
        b_bad, b_refused = Signal(name="b_bad"), Signal(name="b_refused")
        m.d.comb += [
            b_write.eq(Mux(b_write_access, b_hit & b_ok & Cat(*(Const(int(w)) for w in writable)), 0)),
            b_refused.eq(b_write_access & refused),
        ]
        # err_address a clock later, from registered terms (the wide ORs of the hits each end at a register)
        c = {name: Signal(name=f"c_{name}") for name in ("read", "write", "unaligned", "win", "ro", "none",
                                                          "unwritable")}
        m.d.sync += [c["read"].eq(b_read), c["write"].eq(b_write_access), c["unaligned"].eq(~b_aligned),
                     c["win"].eq(b_win), c["ro"].eq(b_ro), c["none"].eq(~b_hit.any()),
                     c["unwritable"].eq(~writable_hit)]
        m.d.comb += b_bad.eq(c["read"] & (c["unaligned"] | ~c["win"] & c["none"])
                             | c["write"] & (c["unaligned"] | Mux(c["win"], c["ro"], c["unwritable"])))
        return b_hit, b_write, b_bad, b_refused, b_win

    def _latch_counters(self, m, b_hit, shadows):
        """Reading a `_LO` counter latches its upper half for `_HI` (as `rvalue` takes the lower half)."""
        for i, (_, kind, _, arg) in enumerate(self._plan):
            if kind == "counter_lo":
                with m.If(b_hit[i]):
                    m.d.sync += shadows[arg].eq(self.counters[arg][DATA_BITS:])

    def _read_mux(self, m, b_hit, status_word, shadows, stores, probe):
        """The value of the register `b_hit` selects (one-hot; 0 for none)."""
        value = Const(0, DATA_BITS)
        for i, (_, kind, register, arg) in enumerate(self._plan):
            if kind == "const":
                source = Const(arg, DATA_BITS)
            elif kind == "counter_lo":
                source = self.counters[arg][:DATA_BITS]
            elif kind == "counter_hi":
                source = shadows[arg]
            elif kind == "runtime":
                source = stores[arg][register.name]
            elif kind == "probe":
                source = probe
            elif kind == "status":
                source = status_word
            else:  # "control": write-only, reads 0
                continue
            value = value | Mux(b_hit[i], source, 0)
        return value


def _accepts(register: regmap.Register, layer: LayerConfig, value):
    """Whether a write of `value` to a run-time register of `layer` is taken.

    MODE: no bit outside its fields, none above its `regmap.mode_top` for the layer's build (a code,
    input_shift's bound, or an option's v1 value on a build without options). Without fields (a decay):
    0..2^F, and 0 or a power of two when the layer's decay is "shift".
    """
    if register.fields:
        ok = value[_bits(register):] == 0
        for f in register.fields:
            top = regmap.mode_top(f.name, layer.options)
            if top is not None and top < (1 << f.width) - 1:  # a field whose every value is legal needs no check
                ok = ok & (value.bit_select(f.lsb, f.width) <= top)
        return ok
    F = layer.frac_bits  # value <= 2^F, tested on bit F and the bits around it (no 32-bit comparator)
    low = value[: F + 1]
    ok = (value[F + 1 :] == 0) & (~value[F] | (value[:F] == 0))
    if layer.decay == "shift":
        ok = ok & ((low & (low - 1))[: F + 1] == 0)
    return ok


def _plan(config: CoreConfig) -> list[tuple[int, str, regmap.Register, object]]:
    """(byte offset, kind, register, argument) of every register of the build, from the table.

    Kinds: `const` (argument: the value), `counter_lo`, `counter_hi` (the counter's name),
    `runtime` (the layer), `status`, `control`, `probe`. Raises ValueError for a register the file
    cannot serve.
    """
    readback = config.readback()
    counters = COUNTERS
    placed = [(r.offset, r, None) for r in GLOBAL_REGISTERS]
    placed += [(regmap.layer_offset(k, r.name), r, k) for k in range(len(config.layers)) for r in LAYER_REGISTERS]
    plan = []
    for offset, r, k in placed:
        if r.access == "ro" and offset in readback:
            plan.append((offset, "const", r, readback[offset]))
        elif r.access == "ro" and r.name.endswith("_LO") and r.name[:-3] in counters:
            plan.append((offset, "counter_lo", r, r.name[:-3]))
        elif r.access == "ro" and r.name.endswith("_HI") and r.name[:-3] in counters:
            plan.append((offset, "counter_hi", r, r.name[:-3]))
        elif r.access == "rw" and k is not None:
            plan.append((offset, "runtime", r, k))
        elif r == regmap.register("STATUS"):
            plan.append((offset, "status", r, None))
        elif r == regmap.register("CONTROL"):
            plan.append((offset, "control", r, None))
        elif r == regmap.register("PROBE"):
            plan.append((offset, "probe", r, None))
        else:
            raise ValueError(f"register {r.name} ({r.access}) has no source in the register file")
    return plan
