"""The binary synapse crossbar: `lanes` (P) neurons x `chunk` (C) synapses per clock.

Weights live in one memory, 1 bit per synapse (1 for +1): row `g * n_chunks + c` holds the
C-bit weight chunks of the P neurons of group `g` for input chunk `c` (lane p at bits
[p*C, p*C+C)), as `spikeloop.windows.pack_weights` lays them out. For each group the crossbar
visits only the input chunks that hold a spike and computes, per lane, with the popcount
identity of docs/numerics.md:

    sum_i w[j,i] s[i] = 2 * popcount(wbits[j] & s) - popcount(s)

Pipeline (one item = one (group, nonzero chunk) weight row; every stage after W moves on one
enable, `advance`):

    i_stream -> W -> I -> M -> A -> T1 .. Tk -> S -> O (+ skid) -> o_stream
    W  capture a timestep (its nonzero chunks registered a clock before); walk its groups and,
       per group, its nonzero chunks, lowest first (the next chunk in a register)
    I  the row to read and the chunk's C spike bits
    M  the row on the memory's read port
    A  each lane's weights AND the chunk, and the chunk itself (lane P: popcount(s))
    T  popcount trees: counters of up to 6 bits (one LUT level each), registered every
       `LEVELS_PER_STAGE` levels, until two rows are left: k = `tree_stages(C)`, 0 for C <= 2
    S  acc = (0 at the group's first chunk, else acc) + the two rows, per lane and for popcount(s)
    O  2*acc - pops at the group's last chunk

Cycles per timestep: n_groups * max(1, nonzero chunks) + 1 (capture), with no bubble between
groups and the next timestep captured the cycle after its last item issued, if it is offered by
then (a payload offered to an idle crossbar is captured a clock later). Latency: a group's
sums are in the output register `Crossbar.latency` = 5 + k cycles after its last item issued,
so Z + 5 + k after the capture for the first group (Z = max(1, nonzero chunks)). The output has a
skid register: a blocked output stops `advance` from the next cycle, so the enable of the whole
pipeline comes from registers. Bus requests are registered before their decode. Bus reads of the
weights window are served even while stalled (`WindowPort`): the grant and the replay of M's row
hold the pipeline for two cycles; read answers are registered.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spikeloop.config import LEVELS_PER_STAGE, LayerConfig, _compress, _stage_levels, tree_stages
from spikeloop.network import check_int

from .common import (
    WINDOW,
    MemBus,
    Probed,
    SkidOutput,
    group_sum_layout,
    index_shape,
    onehot_index,
    parameters,
    spike_layout,
)
from .window import WindowPort

__all__ = ["Crossbar", "LEVELS_PER_STAGE", "count_and_sum", "tree_stages"]

def _count(m, bits: list) -> list:
    """The number of set bits among up to 6 bits: a 2^n-entry ROM read by the bits (an asynchronous read
    port), into a kept signal. Synthesis maps each output bit, a function of at most 6 inputs, to one LUT and
    does not merge it with the next counters; Verilator reads it as one table lookup. (Boolean full and half
    adders are the same LUTs but a dozen operations each in Verilator, and the simulated board spent a third of
    its time in them; a table indexed by an `Array` became a tree of branches; `+` failed Yosys's ECP5 flow.)"""
    n, width = len(bits), len(bits).bit_length()
    rom = Memory(shape=unsigned(width), depth=1 << n, init=[bin(i).count("1") for i in range(1 << n)])
    m.submodules += rom
    read = rom.read_port(domain="comb")
    count = Signal(width, attrs={"keep": 1})
    m.d.comb += [read.addr.eq(Cat(*bits)), count.eq(read.data)]
    return [count[k] for k in range(width)]


def _lowest(bits: Value) -> Value:
    """The lowest set bit of `bits`, one-hot (0 if none): `bits & -bits`, a carry chain (a prefix OR
    left to synthesis becomes a chain of LUTs)."""
    return (bits & (~bits + 1))[: len(bits)]


def _register(m, enable, heap: list[list], name: str) -> list[list]:
    """The heap's bits in registers that load on `enable`."""
    regs = [Signal(len(column), name=f"{name}_c{i}") for i, column in enumerate(heap)]
    with m.If(enable):
        m.d.sync += [reg.eq(Cat(*column)) for reg, column in zip(regs, heap)]
    return [[reg[b] for b in range(len(reg))] for reg in regs]


def _rows(heap: list[list]) -> list[Value]:
    """The two numbers of a heap of at most two bits per column."""
    return [Cat(*(column[r] if len(column) > r else Const(0, 1) for column in heap)) for r in range(2)]


def count_and_sum(m, o_stream, busy, out: SkidOutput, *, advance, tags: list, a_bits: list, acc_bits: int,
                  running, last) -> dict:
    """The stages after A of a crossbar, on one enable `advance`: T1..Tk, the popcount trees of each lane's
    bits in `a_bits` (the last: the input bits themselves), a register stage every `LEVELS_PER_STAGE`
    counter levels; S, each lane's count accumulated over a group's items (its first clears); O, at a
    group's last item, 2*acc - pops per lane into the output register, or into the skid register if the
    output is blocked (which stops `advance` from the next cycle). `tags` holds the item registers of
    the stages up to A. Drives `busy`; returns the probes: a timestep is inside from its capture until
    its last group leaves (it is `running` until its last item issues, then that item is in one of the
    stages, then its last group's sums are in the skid or the output register)."""
    heaps = [[[*bits]] for bits in a_bits]  # one heap per lane: bits of weight 1
    tags, item = list(tags), tags[0].shape()
    for k, levels in enumerate(_stage_levels(len(a_bits[0])), start=1):
        for _ in range(levels):
            heaps = [_compress(heap, lambda bits: _count(m, bits)) for heap in heaps]
        heaps = [_register(m, advance, heap, f"t{k}_lane{p}") for p, heap in enumerate(heaps)]
        tags.append(Signal(item, name=f"t{k}_tag"))
        with m.If(advance):
            m.d.sync += tags[-1].eq(tags[-2])

    P = len(a_bits) - 1
    accs = [Signal(acc_bits, name=f"acc{p}") for p in range(P + 1)]
    s_tag = Signal(item, name="s_tag")
    with m.If(advance):
        m.d.sync += s_tag.eq(tags[-1])
        with m.If(tags[-1].valid):
            for acc, heap in zip(accs, heaps):
                m.d.sync += acc.eq(Mux(tags[-1].first, 0, acc) + sum(_rows(heap)))
    tags.append(s_tag)

    sums = Signal.like(o_stream.p)
    m.d.comb += [sums.syn[p].eq(2 * accs[p] - accs[P]) for p in range(P)]
    m.d.comb += [sums.group.eq(s_tag.group), sums.end.eq(s_tag.step_end), sums.last.eq(s_tag.last)]
    out.offer(m, sums, advance & s_tag.valid & s_tag.end)
    m.d.comb += busy.eq(running | Cat(*(tag.valid for tag in tags)).any() | out.valid | out.held)
    ends = [(tag.valid & tag.end & tag.step_end, tag.last) for tag in tags]
    ends += [(full & held.end, held.last) for full, held in out.full()]
    return {
        "steps": running + sum(end for end, _ in ends),
        "lasts": (running & last) + sum(end & is_last for end, is_last in ends),
    }


class Crossbar(wiring.Component, Probed):
    """Binary-weight crossbar of one layer.

    Parameters (keyword-only)
    ----------
    n_in, n_out : sizes of the layer.
    lanes : P, neurons per clock (1 <= P <= n_out).
    chunk : C, synapses per neuron per clock (1 <= C <= n_in).
    late : the last `late` inputs come after the capture, on `late_bits` once `late_valid` (a recurrent layer's
        previous spikes; 0: none). The chunks holding one (`late_chunks`) are walked last in each group; the first
        group's walk waits at them for `late_valid`, then a clock takes the bits in (docs/gateware.md).

    Members
    -------
    i_stream : In(stream of `spike_layout(n_in)`), one payload per timestep.
    o_stream : Out(stream of `group_sum_layout`), `n_groups` payloads per timestep, in group order.
    bus : In(MemBus), the weights window (`sel == WINDOW["weights"]`); reads wait for a free port.
    busy : Out(1), a timestep is in flight.
    late_bits : In(late), late_valid : In(1), with `late`: the late inputs of the timestep taken, and whether
        they are there (held until the next timestep is taken).
    """

    def __init__(self, *, n_in: int, n_out: int, lanes: int, chunk: int, late: int = 0):
        with parameters(self):
            check_int("n_in", n_in, 1, 65536)
            check_int("n_out", n_out, 1, 65536)
            check_int("lanes", lanes, 1, n_out)
            check_int("chunk", chunk, 1, n_in)
            check_int("late", late, 0, n_in - 1)
        self._geometry = geometry = LayerConfig(n_in, n_out, lanes=lanes, chunk=chunk)
        self._late = late
        # word address = row * row_stride + word; at least one row bit (no zero-width signals)
        self._addr_width = ceil_log2(geometry.row_stride) + max(1, ceil_log2(geometry.weight_rows))
        members = {
            "i_stream": In(stream.Signature(spike_layout(n_in))),
            "o_stream": Out(stream.Signature(group_sum_layout(geometry))),
            "bus": In(MemBus(addr_width=self._addr_width)),
            "busy": Out(1),
        }
        if late:
            members.update({"late_bits": In(late), "late_valid": In(1)})
        super().__init__(members)

    @property
    def geometry(self) -> LayerConfig:
        """Sizes, lanes and chunk, with the derived memory geometry."""
        return self._geometry

    @property
    def addr_width(self) -> int:
        """Width of the weights window's word address."""
        return self._addr_width

    @property
    def late(self) -> int:
        """Inputs (the last of `n_in`) that come after the capture, on `late_bits` (0: none)."""
        return self._late

    @property
    def late_chunks(self) -> int:
        """Chunks holding a late input: the last ones of each group's walk (0 without `late`)."""
        g = self._geometry
        return g.n_chunks - (g.n_in - self._late) // g.chunk if self._late else 0


    @property
    def latency(self) -> int:
        """Cycles from an item's issue in W to its group's sums in the output register, unstalled."""
        return 5 + tree_stages(self._geometry.chunk)

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

        # ---- bus: strobes, select, address and data are registered first (the decode before them
        # ends there); then writes go to the write port, reads to the read port (`WindowPort`), and
        # read answers are registered.
        bus = self.bus
        sel, addr, w_data, w_stb, r_stb = (
            Signal.like(value, name=f"bus_{name}")
            for name, value in (("sel", bus.sel), ("addr", bus.addr), ("w_data", bus.w_data),
                                ("w_stb", bus.w_stb), ("r_stb", bus.r_stb)))
        m.d.sync += [sel.eq(bus.sel), addr.eq(bus.addr), w_data.eq(bus.w_data), w_stb.eq(bus.w_stb),
                     r_stb.eq(bus.r_stb)]
        is_weights = sel == WINDOW["weights"]
        bus_row = addr[stride_bits:]
        bus_word = addr[:stride_bits] if stride_bits else Const(0, 1)
        in_range = (bus_row < g.weight_rows) & (bus_word < row_words)
        w_row = Signal.like(bus_row, name="w_row")  # a write goes to the port a clock later, its enables
        w_word = Signal.like(w_data, name="w_word")  # (one-hot in the row's words) from a register
        w_en = Signal(row_words, name="w_en")
        m.d.sync += [w_row.eq(bus_row), w_word.eq(w_data),
                     w_en.eq(Mux(w_stb & is_weights & in_range, Const(1, row_words) << bus_word, 0))]
        m.d.comb += [wp.addr.eq(w_row), wp.data.eq(w_word.replicate(row_words)), wp.en.eq(w_en)]
        read_tag = data.StructLayout({"word": max(1, stride_bits), "valid": 1})
        m.submodules.window = port = WindowPort(addr_width=len(rp.addr), tag=read_tag)
        m.d.comb += [
            port.r_stb.eq(r_stb & is_weights),
            port.r_addr.eq(bus_row),
            port.r_tag.word.eq(bus_word),
            port.r_tag.valid.eq(in_range),
        ]
        m.d.sync += [
            bus.r_ack.eq(port.ack),
            bus.r_data.eq(Mux(port.ack_tag.valid, rp.data.word_select(port.ack_tag.word, 32), 0)),
        ]

        # One enable for the stages I..S: the skid register is empty and the read port serves
        # neither a bus read (grant) nor the held row again (replay). All its terms are registers.
        out = SkidOutput(self.o_stream)
        advance = ~out.held & ~port.grant & ~port.replay
        item = data.StructLayout({"valid": 1, "first": 1, "end": 1, "group": index_shape(NG), "step_end": 1,
                                  "last": 1})

        # ---- W: capture a timestep, then issue its (group, nonzero chunk) items. Every choice of the
        # walk comes from registers: the next chunk to issue (`low`, one-hot) is computed a clock
        # ahead (a group ends when no other chunk remains), and the offered payload's nonzero chunks
        # are registered before the capture (a payload holds until taken: it is taken a clock after
        # it is first offered, or at once if it already waited).
        spikes = Signal(NC * C)
        last = Signal()
        nz, nz_low = Signal(NC), Signal(NC)  # the timestep's nonzero chunks, the lowest of them (one-hot)
        rem, low = Signal(NC), Signal(NC)  # the group's chunks not issued yet, the lowest of them
        running = Signal()
        group = Signal(index_shape(NG))
        row_base = Signal(index_shape(g.weight_rows))
        first = Signal()

        incoming = Cat(self.i_stream.p.spikes, Const(0, NC * C - g.n_in))
        offered_nz = Signal(NC)  # the offered payload's nonzero chunks, a clock later
        offered = Signal()  # the payload was offered a clock ago and not taken: it is the same one
        # late chunks (the last `late_chunks`) are taken as nonzero at the capture, until their bits come
        late_mask = Const(((1 << NC) - 1) ^ ((1 << (NC - self.late_chunks)) - 1), NC)
        captured_nz = offered_nz | late_mask if self._late else offered_nz
        m.d.sync += [
            offered_nz.eq(Cat(*(incoming.word_select(c, C).any() for c in range(NC)))),
            offered.eq(self.i_stream.valid & ~self.i_stream.ready),
        ]
        m.d.comb += self.i_stream.ready.eq(offered & ~running)
        with m.If(self.i_stream.valid & self.i_stream.ready):
            m.d.sync += [
                spikes.eq(incoming), last.eq(self.i_stream.p.last),
                nz.eq(captured_nz), nz_low.eq(_lowest(captured_nz)), rem.eq(captured_nz), low.eq(_lowest(captured_nz)),
                running.eq(1), group.eq(0), row_base.eq(0), first.eq(1),
            ]

        rest = rem & ~low
        end_of_group = ~rest.any()
        chunk_bits = Const(0, C)
        for c in range(NC):
            chunk_bits = chunk_bits | Mux(low[c], spikes.word_select(c, C), 0)
        issue = running & advance
        late_probes = {}
        if self._late:
            # The walk stops at the group's first late chunk until the late bits are in `spikes` (once per
            # timestep, in its first group): then a clock puts them in and makes the late chunks' choices real.
            known = Signal()  # the captured timestep's late bits are in `spikes`
            at_late = (low & late_mask).any()
            apply = running & ~known & at_late & self.late_valid
            issue = running & advance & (known | ~at_late)
            lo = g.n_in - self._late
            filled = Cat(spikes[:lo], self.late_bits, spikes[g.n_in :])
            late_nz = Cat(*(filled.word_select(c, C).any() for c in range(NC))) & late_mask
            with m.If(self.i_stream.valid & self.i_stream.ready):
                m.d.sync += known.eq(0)
            with m.If(apply):
                new_nz = (nz & ~late_mask) | late_nz
                new_rem = (rem & ~late_mask) | late_nz
                m.d.sync += [spikes.eq(filled), known.eq(1), nz.eq(new_nz), nz_low.eq(_lowest(new_nz)),
                             rem.eq(new_rem), low.eq(_lowest(new_rem))]
            late_probes = {"apply": apply, "known": known, "at_late": at_late, "issue": issue}

        # ---- I: the item whose row the read port reads next.
        i_tag, i_row, i_bits = Signal(item), Signal.like(rp.addr), Signal(C)
        with m.If(advance):
            m.d.sync += i_tag.valid.eq(issue)
        with m.If(issue):
            m.d.sync += [
                i_tag.first.eq(first), i_tag.end.eq(end_of_group), i_tag.group.eq(group),
                i_tag.step_end.eq(group == NG - 1), i_tag.last.eq(last),
                i_row.eq(row_base + onehot_index(low)[: max(1, ceil_log2(NC))]), i_bits.eq(chunk_bits),
                rem.eq(rest), low.eq(_lowest(rest)), first.eq(0),
            ]
            with m.If(end_of_group):
                m.d.sync += [group.eq(group + 1), row_base.eq(row_base + NC), rem.eq(nz), low.eq(nz_low),
                             first.eq(1)]
                with m.If(group == NG - 1):
                    m.d.sync += running.eq(0)

        # ---- M: the item whose weight row is on the read port (read again after a bus read).
        m_tag, m_row, m_bits = Signal(item), Signal.like(rp.addr), Signal(C)
        m.d.comb += [
            port.stall.eq(~advance), port.addr.eq(i_row), port.held.eq(m_row),
            rp.addr.eq(port.rp_addr), rp.en.eq(port.rp_en),
        ]
        with m.If(advance):
            m.d.sync += [m_tag.eq(i_tag), m_row.eq(i_row), m_bits.eq(i_bits)]

        # ---- A: each lane's weights AND the chunk; lane P, the chunk itself (for popcount(s)).
        a_tag = Signal(item)
        a_bits = [Signal(C, name=f"a_bits{p}") for p in range(P + 1)]
        with m.If(advance):
            m.d.sync += a_tag.eq(m_tag)
            m.d.sync += [a_bits[p].eq(rp.data[p * C : (p + 1) * C] & m_bits) for p in range(P)]
            m.d.sync += a_bits[P].eq(m_bits)
        self._probes = count_and_sum(m, self.o_stream, self.busy, out, advance=advance, tags=[i_tag, m_tag, a_tag],
                                     a_bits=a_bits, acc_bits=g.n_in.bit_length(), running=running, last=last)
        self._probes.update(late_probes)
        return m
