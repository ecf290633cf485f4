"""The binary synapse crossbar: `lanes` (P) neurons x `chunk` (C) synapses per clock.

Weights live in one memory, 1 bit per synapse (1 for +1): row `g * n_chunks + c` holds the
C-bit weight chunks of the P neurons of group `g` for input chunk `c` (lane p at bits
[p*C, p*C+C)), as `spikeloop.windows.pack_weights` lays them out. For each group the crossbar
visits only the input chunks that hold a spike and computes, per lane, with the popcount
identity of docs/numerics.md:

    sum_i w[j,i] s[i] = 2 * popcount(wbits[j] & s) - popcount(s)

Cycles per timestep: n_groups * max(1, nonzero chunks) + 3 (capture, read, output), with
no bubble between groups. A stalled output holds the pipeline; bus reads of the weights
window are served even then (the stalled row is read again afterwards).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spikeloop.config import LayerConfig
from spikeloop.network import check_int

from .common import (
    WINDOW,
    MemBus,
    Probed,
    group_sum_layout,
    index_shape,
    onehot_index,
    parameters,
    popcount,
    spike_layout,
)
from .window import WindowPort

__all__ = ["Crossbar"]


class Crossbar(wiring.Component, Probed):
    """Binary-weight crossbar of one layer.

    Parameters (keyword-only)
    ----------
    n_in, n_out : sizes of the layer.
    lanes : P, neurons per clock (1 <= P <= n_out).
    chunk : C, synapses per neuron per clock (1 <= C <= n_in).

    Members
    -------
    i_stream : In(stream of `spike_layout(n_in)`), one payload per timestep.
    o_stream : Out(stream of `group_sum_layout`), `n_groups` payloads per timestep, in group order.
    bus : In(MemBus), the weights window (`sel == WINDOW["weights"]`); reads wait for a free port.
    busy : Out(1), a timestep is in flight.
    """

    def __init__(self, *, n_in: int, n_out: int, lanes: int, chunk: int):
        with parameters(self):
            check_int("n_in", n_in, 1, 65536)
            check_int("n_out", n_out, 1, 65536)
            check_int("lanes", lanes, 1, n_out)
            check_int("chunk", chunk, 1, n_in)
        self._geometry = geometry = LayerConfig(n_in, n_out, lanes=lanes, chunk=chunk)
        # word address = row * row_stride + word; at least one row bit (no zero-width signals)
        self._addr_width = ceil_log2(geometry.row_stride) + max(1, ceil_log2(geometry.weight_rows))
        super().__init__({
            "i_stream": In(stream.Signature(spike_layout(n_in))),
            "o_stream": Out(stream.Signature(group_sum_layout(geometry))),
            "bus": In(MemBus(addr_width=self._addr_width)),
            "busy": Out(1),
        })

    @property
    def geometry(self) -> LayerConfig:
        """Sizes, lanes and chunk, with the derived memory geometry."""
        return self._geometry

    @property
    def addr_width(self) -> int:
        """Width of the weights window's word address."""
        return self._addr_width

    def elaborate(self, platform):
        m = Module()
        g = self._geometry
        P, C, NC, NG = g.lanes, g.chunk, g.n_chunks, g.n_groups
        row_words = g.row_words
        stride_bits = ceil_log2(g.row_stride)

        # depth >= 2: a one-row memory would have a zero-width address, which Verilog tools reject
        m.submodules.mem = mem = Memory(shape=unsigned(32 * row_words), depth=max(2, g.weight_rows), init=[])
        wp = mem.write_port(granularity=32)
        rp = mem.read_port()

        # ---- bus: writes go straight to the write port; reads share the read port (`WindowPort`).
        bus = self.bus
        is_weights = bus.sel == WINDOW["weights"]
        bus_row = bus.addr[stride_bits:]
        bus_word = bus.addr[:stride_bits] if stride_bits else Const(0, 1)
        in_range = (bus_row < g.weight_rows) & (bus_word < row_words)
        m.d.comb += [
            wp.addr.eq(bus_row),
            wp.data.eq(bus.w_data.replicate(row_words)),
            wp.en.eq(Mux(bus.w_stb & is_weights & in_range, 1 << bus_word, 0)),
        ]
        read_tag = data.StructLayout({"word": max(1, stride_bits), "valid": 1})
        m.submodules.window = port = WindowPort(addr_width=len(rp.addr), tag=read_tag)
        m.d.comb += [
            port.r_stb.eq(bus.r_stb & is_weights),
            port.r_addr.eq(bus_row),
            port.r_tag.word.eq(bus_word),
            port.r_tag.valid.eq(in_range),
        ]

        # ---- stage 0: capture a timestep, then issue (group, nonzero chunk) reads.
        spikes = Signal(NC * C)
        last = Signal()
        nz = Signal(NC)  # chunks holding at least one spike
        rem = Signal(NC)  # nonzero chunks of the current group not issued yet
        running = Signal()
        group = Signal(index_shape(NG))
        row_base = Signal(index_shape(g.weight_rows))
        first = Signal()

        m.d.comb += self.i_stream.ready.eq(~running)
        with m.If(self.i_stream.valid & ~running):
            incoming = Cat(self.i_stream.p.spikes, Const(0, NC * C - g.n_in))
            incoming_nz = Cat(*(incoming.word_select(c, C).any() for c in range(NC)))
            m.d.sync += [
                spikes.eq(incoming), last.eq(self.i_stream.p.last), nz.eq(incoming_nz), rem.eq(incoming_nz),
                running.eq(1), group.eq(0), row_base.eq(0), first.eq(1),
            ]

        # ---- stage 1 registers: the item whose weight row is on the read port.
        s1_valid = Signal()
        s1_first = Signal()
        s1_end = Signal()
        s1_bits = Signal(C)
        s1_group = Signal.like(group)
        s1_tend = Signal()
        s1_last = Signal()

        o_valid = Signal()
        free = ~o_valid | self.o_stream.ready
        # Bus reads take the read port even while stage 1 is stalled (`WindowPort`).
        stalled = s1_valid & s1_end & ~free
        s1_row = Signal.like(rp.addr)
        advance = ~stalled & ~port.replay
        issue = running & advance & ~port.grant

        lowest = rem & (~rem + 1)
        chunk_idx = onehot_index(lowest)[: max(1, ceil_log2(NC))]
        rest = rem & (rem - 1)
        end_of_group = rest == 0
        chunk_bits = Mux(rem.any(), spikes.word_select(chunk_idx, C), 0)

        m.d.comb += [
            port.stall.eq(stalled), port.addr.eq(row_base + chunk_idx), port.held.eq(s1_row),
            rp.addr.eq(port.rp_addr), rp.en.eq(port.rp_en),
        ]
        with m.If(advance):
            m.d.sync += s1_valid.eq(issue)
        with m.If(issue):
            m.d.sync += [
                s1_first.eq(first), s1_end.eq(end_of_group), s1_bits.eq(chunk_bits), s1_group.eq(group),
                s1_row.eq(row_base + chunk_idx),
                s1_tend.eq(group == NG - 1), s1_last.eq(last),
                rem.eq(rest), first.eq(0),
            ]
            with m.If(end_of_group):
                m.d.sync += [group.eq(group + 1), row_base.eq(row_base + NC), rem.eq(nz), first.eq(1)]
                with m.If(group == NG - 1):
                    m.d.sync += running.eq(0)

        # ---- bus read answer: the cycle after the grant.
        m.d.comb += [
            bus.r_ack.eq(port.ack),
            bus.r_data.eq(Mux(port.ack_tag.valid, rp.data.word_select(port.ack_tag.word, 32), 0)),
        ]

        # ---- stage 1: popcounts and accumulation.
        acc_bits = g.n_in.bit_length()
        accs = [Signal(acc_bits, name=f"acc{p}") for p in range(P)]
        pops = Signal(acc_bits)
        weights = rp.data
        new_accs = [Mux(s1_first, 0, accs[p]) + popcount(weights[p * C : (p + 1) * C] & s1_bits) for p in range(P)]
        new_pops = Mux(s1_first, 0, pops) + popcount(s1_bits)

        o = self.o_stream.p
        with m.If(self.o_stream.ready):
            m.d.sync += o_valid.eq(0)
        with m.If(s1_valid & advance):
            m.d.sync += [acc.eq(new) for acc, new in zip(accs, new_accs)]
            m.d.sync += pops.eq(new_pops)
            with m.If(s1_end):
                m.d.sync += [o.syn[p].eq(2 * new_accs[p] - new_pops) for p in range(P)]
                m.d.sync += [o.group.eq(s1_group), o.end.eq(s1_tend), o.last.eq(s1_last), o_valid.eq(1)]
        m.d.comb += [
            self.o_stream.valid.eq(o_valid),
            self.busy.eq(running | s1_valid | o_valid),
        ]
        # A timestep is inside from its capture until its last group leaves: it is `running` until
        # its last chunk issues, then that chunk is in stage 1, then the group sums in `o`.
        s1_token = s1_valid & s1_tend & s1_end
        o_token = o_valid & o.end
        self._probes = {
            "steps": running + s1_token + o_token,
            "lasts": (running & last) + (s1_token & s1_last) + (o_token & o.last),
        }
        return m
