"""The event-driven binary synapse crossbar: `lanes` (P) neurons x `events` (E) active inputs per clock.

Where the dense crossbar (rtl/crossbar.py) reads every input chunk that holds a spike, this one reads
only the inputs that spike: a timestep costs about ceil(active / E) x ceil(n_out / P) clocks.

Inputs are split into E banks: input i lies in bank `i % E`, at bank row `i // E` (K = ceil(n_in / E)
bank rows). Each bank has its own weight memory of P-bit rows: row `g * K + k` holds the weights of
input `k * E + b` for the P neurons of group g (lane p at bit p, 1 for +1). Every synapse is stored
once: n_groups * P * K * E bits (P rounded up to whole 32-bit words above 32).

The weights window (`spikeloop.windows.EventGeometry`, packed by `pack_event_weights`): the P bits of
(group g, bank row k, bank b) are `row_words` = ceil(P / 32) words at word

    ((g * K + k) * bank_stride + b) * row_stride + word

with `bank_stride` = next_pow2(E) and `row_stride` = next_pow2(row_words), so the address is three bit
fields: row, bank, word. A bus write goes to that bank's memory; words past a row's `row_words`, banks
past E and rows past the last are ignored on write and read as 0.

For each group, every clock, each bank takes its lowest active input not taken yet and reads its row;
per lane, with the popcount identity of docs/numerics.md over the E chosen inputs (`valid`: the banks
that took one),

    sum = 2 * popcount(weights & valid) - popcount(valid)

accumulated over the group's clocks. A group takes Z = max(1, max over banks of the bank's active
inputs) clocks. Every group takes the same inputs (each with its own weight rows): the first group walks
the captured timestep and records its items, the later ones replay that record.

Pipeline (one item = the E rows read in one clock; every stage after W moves on one enable,
`advance`), as in the dense crossbar with a chunk of E bits:

    i_stream -> W -> I -> M -> A -> T1 .. Tk -> S -> O (+ skid) -> o_stream
    W  capture a timestep and issue its items. Per bank, `rem` holds the inputs not taken yet (one
       register per input): while the walk does not use it, it follows the payload offered, so it holds
       the payload when that is captured (a payload is taken a clock after it is first offered). At the
       capture and at each item of the first group, a step of the walk takes the lowest input of `rem`
       (a carry chain) as the next item: its bank row `index` and `has` (a register per bank), and
       `has2`, whether `rem` keeps another (a group ends at an item after which no bank does). Each item
       of the first group is written to `record`, a LUT RAM of K entries of E x (ceil(log2 K) + 1) bits
       (per bank, `index` and `has`), at its position `count`, which then holds Z - 1; the later groups
       load their items from it (`replay_at`, the position of the item after the next; `at_end`,
       whether the next is the group's last). Every choice of a next item is a multiplexer selected by
       registers (and the capture), enabled on `advance`.
    I  each bank's row to read (group base + bank row) and whether it has an input
    M  the rows on the banks' read ports
    A  each lane's E weights AND valid; and valid itself (lane P: popcount(valid))
    T  popcount trees of E bits (`rtl.crossbar.tree_stages(E)` register stages)
    S  acc = (0 at the group's first item, else acc) + the two rows, per lane and for popcount(valid)
    O  2*acc - pops at the group's last item

Cycles per timestep (`cycles`, `event_cycles`): n_groups * Z + 1 (capture), no bubble between groups,
the next timestep captured the cycle after its last item issued if offered by then (a payload offered
to an idle crossbar is captured a clock later). Latency: a group's sums are in the output register
`EventCrossbar.latency` = 5 + tree_stages(E) clocks after its last item issued. The output has a skid
register, bus requests are registered before their decode, and bus reads are served even while
stalled (`WindowPort`, one per bank, all granted together), as in the dense crossbar.

Probes (`Probed`, for the formal proofs): besides the counts `steps` and `lasts`, `issue` (an item
issues), `running`, `group`, `row_base`, `first`, `offered`, the item in I (`i_tag`, `i_valid`,
`i_rows`), and in `chooser` W's registers (`index`, `rem`, `has`, `has2` per bank; `replaying`, `count`,
`replay_at`, `at_end`) and its `record` (a `Memory`).

Cost and depth: W holds one register per input (`rem`) and the record, whatever n_out. Yosys
`synth_xilinx -flatten` of the crossbar alone, 784 inputs (logic LUTs less the dense model's with a chunk of
E, boards/estimate.py; then the record's LUT RAM): E = 16 (K = 49), 32 neurons, P = 16: 3.0 LUTs per input
(6 LUT levels, counted as boards/timing.py does); E = 64 (K = 13): 3.5 (5 levels); E = 53, 24 neurons,
P = 24 (K = 15): 4.0 (5 levels); a walk that re-walked every group with its choices two ahead took 8.4,
10.3 and 11.3, with six registers per input. The deepest paths are the carry chain over a bank's K rows
into the next index's encoder; keep K at about 64 or less.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spikeloop.config import LayerConfig
from spikeloop.windows import MAX_EVENTS, EventGeometry

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
from .crossbar import _lowest, count_and_sum, tree_stages
from .window import WindowPort

__all__ = ["EventCrossbar", "event_cycles", "MAX_EVENTS"]


def event_cycles(spikes, *, n_out: int, lanes: int, events: int):
    """Clocks the event-driven crossbar spends on each timestep of `spikes` ([n_in] or [T, n_in] of 0/1):
    n_groups * max(1, max over banks of the bank's active inputs) + 1 (an int, or an array of T)."""
    s = np.asarray(spikes)
    geo = EventGeometry(n_in=s.shape[-1], n_out=n_out, lanes=lanes, events=events)
    cycles = geo.n_groups * np.maximum(1, geo.items(s)) + 1
    return cycles if np.ndim(cycles) else int(cycles)


def _several(m, bits: Value, name: str) -> tuple[Value, Value]:
    """(any, several): whether `bits` has a set bit, and two or more. A tree of (any, several) pairs in kept
    signals, leaves over 6 bits and nodes over 3 pairs (6 inputs each, a LUT6): no carry chain, unlike
    `x & (x - 1)`. (Synthesis may still restructure the tree; the depth is measured, see above.)"""
    bits = Value.cast(bits)
    nodes = [[bits[i] for i in range(start, min(start + 6, len(bits)))] for start in range(0, len(bits), 6)]
    nodes = [(Cat(*group).any(), _two_of(group)) for group in nodes]
    level = 0
    while True:
        pairs = []
        for k, (any_, several) in enumerate(nodes):
            pair = Signal(2, name=f"{name}_t{level}_{k}", attrs={"keep": 1})
            m.d.comb += pair.eq(Cat(any_, several))
            pairs.append((pair[0], pair[1]))
        if len(pairs) == 1:
            return pairs[0]
        nodes = [(Cat(*(a for a, _ in group)).any(), Cat(*(s for _, s in group)).any() | _two_of([a for a, _ in group]))
                 for group in (pairs[i : i + 3] for i in range(0, len(pairs), 3))]
        level += 1


def _two_of(bits: list) -> Value:
    """Whether two or more of a few 1-bit values are set."""
    pairs = [a & b for i, a in enumerate(bits) for b in bits[i + 1 :]]
    return Cat(*pairs).any() if pairs else Const(0, 1)


class EventCrossbar(wiring.Component, Probed):
    """Event-driven binary-weight crossbar of one layer, bit-exact with `rtl.crossbar.Crossbar`.

    Parameters (keyword-only)
    ----------
    n_in, n_out : sizes of the layer.
    lanes : P, neurons per clock (1 <= P <= n_out).
    events : E, active inputs per clock (1 <= E <= min(MAX_EVENTS, n_in), MAX_EVENTS = 64): the number of banks.

    Members
    -------
    i_stream : In(stream of `spike_layout(n_in)`), one payload per timestep.
    o_stream : Out(stream of `group_sum_layout`), `n_groups` payloads per timestep, in group order.
    bus : In(MemBus), the weights window (`sel == WINDOW["weights"]`); reads wait for a free port.
    busy : Out(1), a timestep is in flight.
    """

    def __init__(self, *, n_in: int, n_out: int, lanes: int, events: int):
        with parameters(self):
            self._events = EventGeometry(n_in=n_in, n_out=n_out, lanes=lanes, events=events)
        geo = self._events
        self._geometry = LayerConfig(n_in, n_out, lanes=lanes)
        # word address = ((row << bank bits) | bank) << stride bits | word; at least one row bit
        self._addr_width = (ceil_log2(geo.row_stride) + ceil_log2(geo.bank_stride)
                            + max(1, ceil_log2(geo.rows)))
        super().__init__({
            "i_stream": In(stream.Signature(spike_layout(n_in))),
            "o_stream": Out(stream.Signature(group_sum_layout(self._geometry))),
            "bus": In(MemBus(addr_width=self._addr_width)),
            "busy": Out(1),
        })

    @property
    def geometry(self) -> LayerConfig:
        """Sizes and lanes (for the output layout: `syn_bits`, `n_groups`)."""
        return self._geometry

    @property
    def events(self) -> EventGeometry:
        """The banks and the weights window's layout."""
        return self._events

    @property
    def addr_width(self) -> int:
        """Width of the weights window's word address."""
        return self._addr_width

    @property
    def latency(self) -> int:
        """Cycles from an item's issue in W to its group's sums in the output register, unstalled."""
        return 5 + tree_stages(self._events.events)

    def cycles(self, spikes):
        """Clocks per timestep for `spikes` ([n_in] or [T, n_in]): `event_cycles`."""
        geo = self._events
        if np.shape(spikes)[-1:] != (geo.n_in,):
            raise ValueError(f"spikes have shape {np.shape(spikes)}, the crossbar has {geo.n_in} inputs")
        return event_cycles(spikes, n_out=geo.n_out, lanes=geo.lanes, events=geo.events)

    def elaborate(self, platform):
        m = Module()
        geo = self._events
        P, E, K, NG = geo.lanes, geo.events, geo.bank_rows, geo.n_groups
        row_words = geo.row_words
        stride_bits, bank_bits = ceil_log2(geo.row_stride), ceil_log2(geo.bank_stride)
        width = P if row_words == 1 else 32 * row_words

        # one memory per bank; depth >= 2: a one-row memory would have a zero-width address
        banks = []
        for b in range(E):
            mem = Memory(shape=unsigned(width), depth=max(2, geo.rows), init=[])
            m.submodules[f"bank{b}"] = mem
            wp = mem.write_port(granularity=None if row_words == 1 else 32)
            banks.append((wp, mem.read_port()))

        # ---- bus: strobes, select, address and data are registered first (the decode before them
        # ends there); then writes go to one bank's write port, reads to every bank's read port
        # (`WindowPort`s, which all grant together), and read answers are registered.
        bus = self.bus
        sel, addr, w_data, w_stb, r_stb = (
            Signal.like(value, name=f"bus_{name}")
            for name, value in (("sel", bus.sel), ("addr", bus.addr), ("w_data", bus.w_data),
                                ("w_stb", bus.w_stb), ("r_stb", bus.r_stb)))
        m.d.sync += [sel.eq(bus.sel), addr.eq(bus.addr), w_data.eq(bus.w_data), w_stb.eq(bus.w_stb),
                     r_stb.eq(bus.r_stb)]
        is_weights = sel == WINDOW["weights"]
        bus_word = addr[:stride_bits] if stride_bits else Const(0, 1)
        bus_bank = addr[stride_bits : stride_bits + bank_bits] if bank_bits else Const(0, 1)
        bus_row = addr[stride_bits + bank_bits :]
        in_range = (bus_row < geo.rows) & (bus_bank < E) & (bus_word < row_words)
        write = w_stb & is_weights & in_range
        for b, (wp, _) in enumerate(banks):
            m.d.comb += [wp.addr.eq(bus_row), wp.data.eq(w_data.replicate(row_words)[:width])]
            if row_words == 1:
                m.d.comb += wp.en.eq(write & (bus_bank == b))
            else:
                m.d.comb += wp.en.eq(Mux(write & (bus_bank == b), 1 << bus_word, 0))
        read_tag = data.StructLayout({"word": max(1, stride_bits), "bank": max(1, bank_bits), "valid": 1})
        ports = []
        for b, (_, rp) in enumerate(banks):
            m.submodules[f"window{b}"] = port = WindowPort(addr_width=len(rp.addr), tag=read_tag)
            m.d.comb += [
                port.r_stb.eq(r_stb & is_weights),
                port.r_addr.eq(bus_row),
                port.r_tag.word.eq(bus_word),
                port.r_tag.bank.eq(bus_bank),
                port.r_tag.valid.eq(in_range),
            ]
            ports.append(port)
        port = ports[0]  # every port grants, replays and answers in the same cycles
        answers = Array(Cat(rp.data, Const(0, 32 * row_words - width)) for _, rp in banks)
        answer = answers[port.ack_tag.bank].word_select(port.ack_tag.word, 32)
        m.d.sync += [bus.r_ack.eq(port.ack), bus.r_data.eq(Mux(port.ack_tag.valid, answer, 0))]

        # One enable for the stages I..S: the skid register is empty and the read ports serve
        # neither a bus read (grant) nor the held rows again (replay). All its terms are registers.
        out = SkidOutput(self.o_stream)
        advance = ~out.held & ~port.grant & ~port.replay
        item = data.StructLayout({"valid": 1, "first": 1, "end": 1, "group": index_shape(NG), "step_end": 1,
                                  "last": 1})

        # ---- W: capture a timestep, then issue its items, a clock each. The first group walks the capture:
        # per bank b, over its K spike bits, `index` is the bank row of the input the next item takes and
        # `has` whether there is one, `rem` the inputs after it and `has2` whether `rem` holds any; a group
        # ends at an item after which no bank has one. A step of the walk takes the lowest of `rem` as the
        # next item, at the capture as at each item of the first group. While the walk does not use it
        # (idle, in the later groups; at the first group's end if it is the only one), `rem` follows the
        # offered payload, so at the capture it holds the payload (a payload is taken a clock after it is
        # first offered, or at once if it already waited: it was there a clock before). Each item of the
        # first group is recorded (per bank, `index` and `has`) in `record` at its position `count`, which
        # then holds the last position (Z - 1); the later groups replay the record from `replay_at`, the
        # position of the item after the next one, `at_end` telling whether the next item is the group's last.
        def bank_bits_of(value):
            return [Cat(*(value[k * E + b] for k in range(K))) for b in range(E)]

        def bank_signals(name, shape):
            return [Signal(shape, name=f"{name}{b}") for b in range(E)]

        k_bits = max(1, ceil_log2(K))
        last = Signal()
        rem = bank_signals("rem", K)
        index = bank_signals("index", k_bits)
        has, has2 = Signal(E, name="has"), Signal(E, name="has2")
        running = Signal()
        replaying = Signal()  # a group after the first: its items come from the record
        count = Signal(k_bits)
        replay_at = Signal(k_bits)
        at_end = Signal()
        group = Signal(index_shape(NG))
        row_base = Signal(index_shape(geo.rows))
        first = Signal()

        entry = data.ArrayLayout(data.StructLayout({"index": k_bits, "has": 1}), E)
        m.submodules.record = record = Memory(shape=entry, depth=max(2, K), init=[])
        record_w, record_r = record.write_port(), record.read_port(domain="comb")

        incoming = bank_bits_of(Cat(self.i_stream.p.spikes, Const(0, K * E - geo.n_in)))
        offered = Signal()  # the payload was offered a clock ago and not taken: it is the same one
        m.d.sync += offered.eq(self.i_stream.valid & ~self.i_stream.ready)
        m.d.comb += self.i_stream.ready.eq(offered & ~running)
        take = self.i_stream.valid & self.i_stream.ready
        issue = running & advance
        walking = running & ~replaying
        end_of_group = Mux(replaying, at_end, ~has2.any())
        # the multiplexers of the next item and of `rem` select on registers (and `take`: a port and two
        # registers), their enables also on the pipeline's `advance`
        from_rem = Signal()  # the next item is a step's, else the record's
        step = Signal()  # a step of the walk
        m.d.comb += [
            from_rem.eq(~running | (walking & ~end_of_group)),
            step.eq(take | (issue & walking & ~end_of_group)),
        ]
        trees = [_several(m, bits, f"rem{b}") for b, bits in enumerate(rem)]
        # on an enable of `rem`, a step, else it follows the payload; after the first group's last item it
        # need not follow when later groups replay (it follows then), only when none does (NG = 1)
        rem_step = take | (walking & ~end_of_group) if NG == 1 else take | walking
        with m.If(~walking | issue):
            m.d.sync += [rem[b].eq(Mux(rem_step, rem[b] & ~_lowest(rem[b]), incoming[b])) for b in range(E)]
        with m.If(step):
            m.d.sync += has2.eq(Cat(*(several for _, several in trees)))
        with m.If(take | (issue & ~(end_of_group & first))):  # the next item changes
            m.d.sync += [
                [index[b].eq(Mux(from_rem, onehot_index(_lowest(rem[b]))[:k_bits], record_r.data[b].index))
                 for b in range(E)],
                has.eq(Mux(from_rem, Cat(*(any_ for any_, _ in trees)),
                           Cat(*(record_r.data[b].has for b in range(E))))),
            ]
        m.d.comb += [
            record_w.addr.eq(count), record_w.en.eq(issue & walking),
            record_w.data.eq(Cat(*(Cat(index[b], has[b]) for b in range(E)))),
            record_r.addr.eq(replay_at),
        ]
        with m.If(take):
            m.d.sync += [
                last.eq(self.i_stream.p.last),
                running.eq(1), replaying.eq(0), count.eq(0), replay_at.eq(0),
                group.eq(0), row_base.eq(0), first.eq(1),
            ]

        # ---- I: the item whose rows the read ports read next.
        i_tag, i_valid = Signal(item), Signal(E)
        i_rows = [Signal(index_shape(geo.rows), name=f"i_row{b}") for b in range(E)]
        with m.If(advance):
            m.d.sync += i_tag.valid.eq(issue)
        with m.If(issue):
            m.d.sync += [
                i_tag.first.eq(first), i_tag.end.eq(end_of_group), i_tag.group.eq(group),
                i_tag.step_end.eq(group == NG - 1), i_tag.last.eq(last),
                i_valid.eq(has),
                [i_rows[b].eq(row_base + index[b]) for b in range(E)],
                first.eq(0),
            ]
            with m.If(end_of_group):
                # the next item is the record's first: the one issuing now if the group has one item
                m.d.sync += [
                    group.eq(group + 1), row_base.eq(row_base + K),
                    replaying.eq(1), first.eq(1), at_end.eq(first), replay_at.eq(~first),
                ]
                with m.If(group == NG - 1):
                    m.d.sync += running.eq(0)
            with m.Elif(replaying):
                m.d.sync += [at_end.eq(replay_at == count), replay_at.eq(Mux(replay_at == count, 0, replay_at + 1))]
            with m.Else():
                m.d.sync += count.eq(count + 1)

        # ---- M: the item whose weight rows are on the read ports (read again after a bus read).
        m_tag, m_valid = Signal(item), Signal(E)
        m_rows = [Signal(index_shape(geo.rows), name=f"m_row{b}") for b in range(E)]
        for b, ((_, rp), port_b) in enumerate(zip(banks, ports)):
            m.d.comb += [
                port_b.stall.eq(~advance), port_b.addr.eq(i_rows[b]), port_b.held.eq(m_rows[b]),
                rp.addr.eq(port_b.rp_addr), rp.en.eq(port_b.rp_en),
            ]
        with m.If(advance):
            m.d.sync += [m_tag.eq(i_tag), m_valid.eq(i_valid), [m_rows[b].eq(i_rows[b]) for b in range(E)]]

        # ---- A: each lane's E weights AND valid; lane P, valid itself (for popcount(valid)).
        a_tag = Signal(item)
        a_bits = [Signal(E, name=f"a_bits{p}") for p in range(P + 1)]
        with m.If(advance):
            m.d.sync += a_tag.eq(m_tag)
            m.d.sync += [a_bits[p].eq(Cat(*(rp.data[p] for _, rp in banks)) & m_valid) for p in range(P)]
            m.d.sync += a_bits[P].eq(m_valid)
        self._probes = count_and_sum(m, self.o_stream, self.busy, out, advance=advance, tags=[i_tag, m_tag, a_tag],
                                     a_bits=a_bits, acc_bits=geo.n_in.bit_length(), running=running, last=last)
        self._probes.update({
            "issue": issue, "running": running, "group": group, "row_base": row_base, "first": first,
            "offered": offered, "i_tag": i_tag, "i_valid": i_valid, "i_rows": i_rows,
            "chooser": {"index": index, "rem": rem, "has": has, "has2": has2, "replaying": replaying,
                        "count": count, "replay_at": replay_at, "at_end": at_end, "record": record},
        })
        return m
