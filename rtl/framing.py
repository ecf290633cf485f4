"""Stream framing: bus words to one spike vector per timestep, and one output payload per timestep
back to bus words, as `spikeloop.regmap.pack_spikes` and `pack_output` lay them out.

Input: a timestep is `words_per_timestep(n, W)` words of spike bits, LSB-first. A `last` before
the last word of a timestep ends that timestep early: the missing bits are zero, it is passed on,
and `truncated` pulses. Output: every payload becomes `output_words_per_timestep(config)` words,
spikes first, then (with membranes) the membranes as 32-bit two's complement fields; `last` is
on the last word of a payload that carries `last`. A core built with probes appends, per layer,
the sections its `PROBE` value selects (`stream.pack_output(..., probe=)`), read straight from the
layers' capture registers; the value is taken with each payload.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikeloop import regmap
from spikeloop.config import CoreConfig
from spikeloop.network import check_int
from spikeloop.stream import BUS_WIDTHS, FIELD_BITS, PROBE_KINDS, output_words_per_timestep, words_per_timestep

from .common import Probed, check_choice, check_type, parameters, popcount, spike_layout, word_layout
from .network import probe_layouts
from .registers import field_layout

__all__ = ["Deframer", "Framer"]

#: Bits of a membrane field in the output stream.


class Deframer(wiring.Component, Probed):
    """Bus words -> one spike vector per timestep.

    Parameters (keyword-only)
    ----------
    n : spikes per timestep.
    bus_width : W, bits per word (`BUS_WIDTHS`).

    Members
    -------
    i_stream : In(stream of `word_layout(W)`).
    o_stream : Out(stream of `spike_layout(n)`), one payload per timestep, `last` from the word stream.
    hold : In(1), take no word that would start a new timestep.
    busy : Out(1), a timestep is partly received or not yet passed on.
    truncated : Out(1), a `last` ended a timestep early (one cycle).
    spikes : Out(range(W + 1)), spikes in the word taken `COUNT_LATENCY` cycles ago (padding bits excluded).
    """

    #: Cycles from a word taken to its `spikes`.
    COUNT_LATENCY = 2

    def __init__(self, *, n: int, bus_width: int):
        with parameters(self):
            check_int("n", n, 1, 65536)
            check_choice("bus_width", bus_width, BUS_WIDTHS)
        self._n = n
        self._bus_width = bus_width
        super().__init__({
            "i_stream": In(stream.Signature(word_layout(bus_width))),
            "o_stream": Out(stream.Signature(spike_layout(n))),
            "hold": In(1),
            "busy": Out(1),
            "truncated": Out(1),
            "spikes": Out(range(bus_width + 1)),
        })

    @property
    def n(self) -> int:
        """Spikes per timestep."""
        return self._n

    @property
    def bus_width(self) -> int:
        """Bits per bus word."""
        return self._bus_width

    def elaborate(self, platform):
        m = Module()
        n, W = self._n, self._bus_width
        words = words_per_timestep(n, W)
        widx = Signal(range(max(2, words)))
        at = Signal(words, init=1)  # one-hot: the word `widx` (its slot's write enable needs no decoder)
        vec = Signal(words * W)
        pending = Signal()
        pending_last = Signal()
        word, last = self.i_stream.p.data, self.i_stream.p.last
        m.d.comb += self.i_stream.ready.eq(~pending & ~(self.hold & at[0]))
        take = self.i_stream.valid & self.i_stream.ready
        last_valid_bits = n - (words - 1) * W
        in_mask = Mux(at[words - 1], (1 << last_valid_bits) - 1, (1 << W) - 1)
        counted = Signal(W)  # the spikes of the word taken
        m.d.sync += counted.eq(Mux(take, word & in_mask, 0))
        m.d.comb += self.spikes.eq(_count(m, counted))
        with m.If(take):
            with m.If(at[0]):  # a new timestep: the words a TLAST may leave out are zero
                m.d.sync += vec.eq(0)
            for w in range(words):
                with m.If(at[w]):
                    m.d.sync += vec[w * W : (w + 1) * W].eq(word)
            with m.If(at[words - 1] | last):
                m.d.sync += [pending.eq(1), pending_last.eq(last), widx.eq(0), at.eq(1)]
                with m.If(~at[words - 1]):
                    m.d.comb += self.truncated.eq(1)
            with m.Else():
                m.d.sync += [widx.eq(widx + 1), at.eq(at << 1)]
        m.d.comb += [
            self.o_stream.valid.eq(pending),
            self.o_stream.p.spikes.eq(vec[:n]),
            self.o_stream.p.last.eq(pending_last),
            self.busy.eq(pending | ~at[0]),
        ]
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += pending.eq(0)
        self._probes = {"steps": pending, "lasts": pending & pending_last, "widx": widx,
                        "deframer_ok": (at == (Const(1, words) << widx)[:words]) & (widx < words)}
        return m


class Framer(wiring.Component, Probed):
    """One output payload per timestep -> bus words, `last` on the last word of a `last` payload.

    Parameters (keyword-only)
    ----------
    config : CoreConfig; its `n_out`, `bus_width`, `membranes` and last layer's `v_bits` matter.

    Members
    -------
    i_stream : In(stream of `spike_layout(n_out[, membranes=v_bits])`), the network's output.
    o_stream : Out(stream of `word_layout(bus_width)`).
    busy : Out(1), words of a timestep are still to be sent.
    timestep : Out(1), a payload was taken (`COUNT_LATENCY` cycles ago); spikes : Out(range(n_out + 1)), its spikes.
    probe : In(`field_layout(PROBE)`), with `config.probes`: the sections to append (taken with each payload).
    layers : In(`network.probe_layouts(config)`), with `config.probes`: the layers' captures.
    """

    def __init__(self, *, config: CoreConfig):
        with parameters(self):
            check_type("config", config, CoreConfig)
        self._config = config
        v_bits = config.layers[-1].v_bits if config.membranes else None
        members = {
            "i_stream": In(stream.Signature(spike_layout(config.n_out, membranes=v_bits))),
            "o_stream": Out(stream.Signature(word_layout(config.bus_width))),
            "busy": Out(1),
            "timestep": Out(1),
            "spikes": Out(range(config.n_out + 1)),
        }
        if config.probes:
            members["probe"] = In(field_layout(regmap.register("PROBE")))
            members["layers"] = In(probe_layouts(config))
        super().__init__(members)

    #: Cycles from a payload taken to its `timestep` and `spikes`.
    COUNT_LATENCY = 2

    @property
    def config(self) -> CoreConfig:
        """The build configuration."""
        return self._config

    def elaborate(self, platform):
        if self._config.probes:
            return self._elaborate_probes()
        m = Module()
        cfg = self._config
        W = cfg.bus_width
        words_out = output_words_per_timestep(cfg)
        payload = self.i_stream.p
        out_words = self._words(payload)
        held = Signal(len(Cat(*out_words)))
        held_last = Signal()
        active = Signal()
        oidx = Signal(range(max(2, words_out)))
        m.d.comb += self.i_stream.ready.eq(~active)
        with m.If(self.i_stream.valid & ~active):
            m.d.sync += [held.eq(Cat(*out_words)), held_last.eq(payload.last), active.eq(1), oidx.eq(0)]
        self._count_payloads(m, held)
        m.d.comb += [
            self.o_stream.valid.eq(active),
            self.o_stream.p.data.eq(held.word_select(oidx, W)),
            self.o_stream.p.last.eq(held_last & (oidx == words_out - 1)),
            self.busy.eq(active),
        ]
        with m.If(self.o_stream.valid & self.o_stream.ready):
            with m.If(oidx == words_out - 1):
                m.d.sync += active.eq(0)
            with m.Else():
                m.d.sync += oidx.eq(oidx + 1)
        self._probes = {"steps": active, "lasts": active & held_last, "oidx": oidx}
        return m

    def _elaborate_probes(self):
        """The framer of a core built with probes: the output words, then the selected sections of
        every layer. `oidx` walks the words of all sections; past the last word of a section it
        jumps to the first word of the next selected one (`ns`, kept a section ahead in a register,
        as is whether the word is its section's last), or ends the timestep. The words go out of a
        register loaded from the word multiplexer (`o_stream` one cycle later; a payload
        is taken while the last word of the one before still waits there)."""
        m = Module()
        cfg = self._config
        W = cfg.bus_width
        payload = self.i_stream.p
        base = self._words(payload)
        held = Signal(len(Cat(*base)))
        held_last = Signal()
        active = Signal()
        sel = Signal(len(PROBE_KINDS))  # the PROBE value taken with the payload
        probe_bits = Cat(*(self.probe[kind] for kind in PROBE_KINDS))
        # sections: (PROBE bit or None for the output words, first word index, words)
        sections, words = [(None, 0, len(base))], []
        for k, layer in enumerate(cfg.layers):
            captured = self.layers[f"layer{k}"]
            for bit, kind in enumerate(PROBE_KINDS):
                if kind == "spikes":
                    section = _spike_words(captured.z, layer.n_out, W)
                else:
                    section = _field_words([captured[kind][j] for j in range(layer.n_out)], W)
                sections.append((bit, len(base) + len(words), len(section)))
                words += section
        end = len(base) + len(words)
        oidx = Signal(range(end + 1))
        none = len(sections)  # `ns` when no selected section follows
        ns = Signal(range(none + 1))  # the next selected section after the current one
        left = Signal(range(max(count for _, _, count in sections)))  # words of the section after oidx
        last_word = Signal()  # left == 0

        def following(s, bits):
            """The first section after `s` whose PROBE bit is set in `bits` (kinds repeat every
            len(PROBE_KINDS) sections, so the next len(PROBE_KINDS) decide), or `none`."""
            target = Const(none, len(ns))
            for t in reversed(range(s + 1, min(s + 1 + len(PROBE_KINDS), none))):
                target = Mux(bits[sections[t][0]], t, target)
            return target

        m.d.comb += self.i_stream.ready.eq(~active)
        with m.If(self.i_stream.valid & ~active):
            m.d.sync += [held.eq(Cat(*base)), held_last.eq(payload.last), active.eq(1), oidx.eq(0),
                         sel.eq(probe_bits), left.eq(len(base) - 1), last_word.eq(len(base) == 1),
                         ns.eq(following(0, probe_bits))]
        self._count_payloads(m, held)
        done = last_word & (ns == none)
        # the output word register: loaded from the word multiplexer while the walk goes on
        o_valid, o_last, o_final = Signal(), Signal(), Signal()  # o_final: the timestep's last word
        o_idx = Signal.like(oidx)
        every = Cat(held, *words)
        load = active & (~o_valid | self.o_stream.ready)
        with m.If(load):
            m.d.sync += [o_last.eq(held_last & done), o_final.eq(done), o_idx.eq(oidx), o_valid.eq(1)]
            m.d.sync += self.o_stream.p.data.eq(every.word_select(oidx, W))
        with m.Elif(self.o_stream.ready):
            m.d.sync += o_valid.eq(0)
        m.d.comb += [
            self.o_stream.valid.eq(o_valid),
            self.o_stream.p.last.eq(o_last),
            self.busy.eq(active | o_valid),
        ]
        with m.If(load):
            with m.If(done):
                m.d.sync += active.eq(0)
            with m.Elif(last_word):  # jump to section `ns`
                with m.Switch(ns):
                    for t in range(1, none):
                        _, first, count = sections[t]
                        with m.Case(t):
                            m.d.sync += [oidx.eq(first), left.eq(count - 1), last_word.eq(count == 1),
                                         ns.eq(following(t, sel))]
            with m.Else():
                m.d.sync += [oidx.eq(oidx + 1), left.eq(left - 1), last_word.eq(left == 1)]
        self._probes = {"steps": active + (o_valid & o_final), "lasts": (active & held_last) + (o_valid & o_last),
                        "oidx": o_idx, "framer_ok": ~o_valid | o_final | active}
        return m

    def _count_payloads(self, m, held):
        """`timestep` and `spikes` of each payload taken, from `held` (a cycle later, then counted by
        6-bit groups into registers, their sum a cycle later)."""
        took, counted = Signal(), Signal()
        m.d.sync += [took.eq(self.i_stream.valid & self.i_stream.ready), counted.eq(took)]
        spikes = Signal(self._config.n_out)
        m.d.comb += spikes.eq(Mux(took, held[: self._config.n_out], 0))
        m.d.comb += [self.timestep.eq(counted), self.spikes.eq(_count(m, spikes))]

    def _words(self, payload) -> list:
        """The words of one output timestep: spikes, then the membranes as 32-bit fields."""
        cfg = self._config
        W = cfg.bus_width
        words = _spike_words(payload.spikes, cfg.n_out, W)
        if cfg.membranes:
            words += _field_words([payload.v[j] for j in range(cfg.n_out)], W)
        return words


def _count(m, bits) -> Value:
    """The set bits of `bits` a cycle later: each 6-bit group's count registered (one LUT level), then
    their sum (a small adder tree)."""
    groups = []
    for i in range(0, len(bits), 6):
        group = Signal(range(len(bits[i : i + 6]) + 1), name=f"count{i // 6}")
        m.d.sync += group.eq(popcount(bits[i : i + 6]))
        groups.append(group)
    while len(groups) > 1:
        groups = [groups[i] + groups[i + 1] for i in range(0, len(groups) - 1, 2)] + groups[len(groups) & ~1 :]
    return groups[0]


def _spike_words(spikes, n: int, W: int) -> list:
    """`n` spike bits as bus words, LSB-first, the last word zero-padded."""
    padded = Cat(spikes, Const(0, words_per_timestep(n, W) * W - n))
    return [padded[w * W : (w + 1) * W] for w in range(len(padded) // W)]


def _field_words(values, W: int) -> list:
    """Signed values as 32-bit two's complement fields, W/32 per bus word, the last word zero-padded."""
    fields = [_sext(value, FIELD_BITS) for value in values]
    per = W // FIELD_BITS
    fields += [Const(0, FIELD_BITS)] * (-len(fields) % per)
    return [Cat(*fields[i : i + per]) for i in range(0, len(fields), per)]


def _sext(value, width):
    """A signed value sign-extended to `width` bits (as an unsigned bit pattern)."""
    value = Value.cast(value)
    return Cat(value, value[-1].replicate(width - len(value)))
