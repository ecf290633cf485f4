// The simulated board: the Verilated core (`spikeloop_core`, class Vcore) behind a small C API
// that Python loads with ctypes (spikeloop/sim/board.py). One call is one transaction: an
// AXI-Lite read or write, words queued for the input stream, a receive armed on the output
// stream, or N clock cycles. Every loop is bounded by a cycle budget, so nothing here hangs.
//
// Per clock cycle (`cycle`): drive the inputs (stream words, AXI-Lite master), evaluate with
// aclk low so the combinational outputs (tready, arready, ...) settle, sample the handshakes,
// then evaluate the rising edge and advance the queues. The input stream is fed at full rate
// while words are queued; the output stream is accepted while a receive is armed (like an
// AXI DMA S2MM channel: backpressure otherwise), until TLAST or the armed room is full.
//
// One evaluation per clock (`stream_cycle`): Verilator evaluates the input-combinational logic
// on every `eval()`, so the evaluation with aclk low costs about a sixth of a clock. It is needed
// only to settle outputs that depend combinationally on inputs. When the build found none among
// the stream outputs (`SB_STREAM_REGISTERED`, from board.py's scan of the model) and no AXI-Lite
// transaction is in progress (its ready outputs do depend on its valid inputs), the outputs left
// by the previous rising edge are this cycle's: the harness samples them, drives the inputs and
// evaluates the rising edge alone, telling the model that aclk was low in between (the value
// Verilator's edge trigger compares with). When the inputs also equal those of the last
// evaluation (the input stream stalled or idle, the receive unchanged: most clocks of a timestep),
// the input-combinational region is skipped too (`eval_edge_only`): its values are still current.
// The same cycles, inputs and outputs as `cycle`; `sb_one_eval(b, 0)` and `sb_skip_ico(b, 0)`
// turn them off (the tests compare them).
//
// Faults, for testing the driver: `SB_FAULT_TRUNCATE` ends every receive after `value` words
// (as if the core sent TLAST early) and silently drops the rest of that output timestep;
// `SB_FAULT_MUTE` never accepts an output word (a core that never answers).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "Vcore.h"
#include "Vcore___024root.h"
#include "verilated.h"

#ifndef SB_STREAM_REGISTERED
#define SB_STREAM_REGISTERED 0
#endif

// The model's active and NBA phases (generated code of Verilator 5), weak: null where a model has
// none of that name, and then every evaluation is a full one.
bool Vcore___024root___eval_phase__act(Vcore___024root*) __attribute__((weak));
bool Vcore___024root___eval_phase__nba(Vcore___024root*) __attribute__((weak));

namespace {

// Whether the model keeps aclk's previous value where the harness can set it (Verilator 5's
// edge trigger); otherwise every cycle takes two evaluations.
template <typename T, typename = void>
struct HasClockPrev : std::false_type {};
template <typename T>
struct HasClockPrev<T, std::void_t<decltype(std::declval<T&>().__Vtrigprevexpr___TOP__aclk__0)>> : std::true_type {};

constexpr bool kOneEvalBuilt = SB_STREAM_REGISTERED && HasClockPrev<Vcore___024root>::value;

// Evaluate a clock edge without the input-combinational region: right only when no input changed
// since the last evaluation, which left every signal that depends on the inputs up to date (that
// region is evaluated again in the NBA phase wherever state it reads has changed). Returns false,
// having done nothing, where the model's phases are not known.
inline bool eval_edge_only(Vcore* t) {
    if (!Vcore___024root___eval_phase__act || !Vcore___024root___eval_phase__nba) return false;
    do {
        while (Vcore___024root___eval_phase__act(t->rootp)) {
        }
    } while (Vcore___024root___eval_phase__nba(t->rootp));
    return true;
}

// Tell the model that aclk was low since its last evaluation.
template <typename Root>
inline void clock_was_low(Root* root) {
    if constexpr (HasClockPrev<Root>::value) root->__Vtrigprevexpr___TOP__aclk__0 = 0;
}

enum { SB_FAULT_NONE = 0, SB_FAULT_TRUNCATE = 1, SB_FAULT_MUTE = 2 };
enum { SB_UNTIL_RECEIVED = 1, SB_UNTIL_SENT = 2 };
enum { SB_RX_ARMED = 1, SB_RX_LAST = 2, SB_RX_OVERFLOW = 4 };

struct Board {
    VerilatedContext* ctx = nullptr;
    Vcore* top = nullptr;
    uint64_t cycles = 0;

    // Input stream: queued words and their TLAST flags.
    std::vector<uint64_t> in_words;
    std::vector<uint8_t> in_last;
    size_t in_pos = 0;

    // Output stream: the armed receive.
    std::vector<uint64_t> rx;
    size_t room = 0;
    bool armed = false;
    bool rx_last = false;
    bool rx_overflow = false;
    bool dropping = false;   // discarding the rest of a truncated timestep
    bool draining = false;   // discarding everything (sb_drain)
    uint64_t drained = 0;
    uint64_t last_out_cycle = 0;

    // AXI-Lite master.
    bool ar = false, aw = false, w = false, wait_r = false, wait_b = false;
    uint32_t addr = 0, wdata = 0, rdata = 0;

    int fault = SB_FAULT_NONE;
    int64_t fault_value = 0;
    bool one_eval = kOneEvalBuilt;
    bool skip_ico = true;
    uint64_t edge_only = 0;  // clocks evaluated without the input-combinational region
};

inline void receive(Board* b, uint64_t data, bool last) {
    b->last_out_cycle = b->cycles;
    if (b->draining) {
        b->drained++;
        return;
    }
    if (b->dropping) {
        if (last) b->dropping = false;
        return;
    }
    b->rx.push_back(data);
    bool end = last;
    if (b->fault == SB_FAULT_TRUNCATE && (int64_t)b->rx.size() >= b->fault_value && !last) {
        b->dropping = true;
        end = true;
    }
    if (end) {
        b->rx_last = true;
        b->armed = false;
    } else if (b->rx.size() >= b->room) {
        b->rx_overflow = true;
        b->armed = false;
    }
}

// After a rising edge: the clock counted, the input word taken (the queue emptied after its last),
// the output word received.
inline void streamed(Board* b, bool in_fire, bool out_fire, uint64_t out_data, bool out_last) {
    b->cycles++;
    if (in_fire && ++b->in_pos == b->in_words.size()) {
        b->in_words.clear();
        b->in_last.clear();
        b->in_pos = 0;
    }
    if (out_fire) receive(b, out_data, out_last);
}

inline void cycle(Board* b) {
    Vcore* t = b->top;
    const bool in_valid = b->in_pos < b->in_words.size();
    t->s_axis_tvalid = in_valid;
    if (in_valid) {
        t->s_axis_tdata = b->in_words[b->in_pos];
        t->s_axis_tlast = b->in_last[b->in_pos];
    } else {
        t->s_axis_tlast = 0;
    }
    const bool rx_ready = b->draining || b->dropping || (b->armed && b->fault != SB_FAULT_MUTE);
    t->m_axis_tready = rx_ready;
    t->s_axi_arvalid = b->ar;
    t->s_axi_araddr = b->addr;
    t->s_axi_awvalid = b->aw;
    t->s_axi_awaddr = b->addr;
    t->s_axi_wvalid = b->w;
    t->s_axi_wdata = b->wdata;
    t->s_axi_wstrb = 0xF;
    t->s_axi_rready = b->wait_r;
    t->s_axi_bready = b->wait_b;

    t->aclk = 0;
    t->eval();
    const bool in_fire = in_valid && t->s_axis_tready;
    const bool out_fire = rx_ready && t->m_axis_tvalid;
    const uint64_t out_data = t->m_axis_tdata;
    const bool out_last = t->m_axis_tlast;
    const bool ar_fire = b->ar && t->s_axi_arready;
    const bool aw_fire = b->aw && t->s_axi_awready;
    const bool w_fire = b->w && t->s_axi_wready;
    const bool r_fire = b->wait_r && t->s_axi_rvalid;
    const uint32_t rdata = t->s_axi_rdata;
    const bool b_fire = b->wait_b && t->s_axi_bvalid;

    t->aclk = 1;
    t->eval();
    streamed(b, in_fire, out_fire, out_data, out_last);
    if (ar_fire) b->ar = false;
    if (aw_fire) b->aw = false;
    if (w_fire) b->w = false;
    if (r_fire) {
        b->wait_r = false;
        b->rdata = rdata;
    }
    if (b_fire) b->wait_b = false;
}

// A clock with one evaluation (see the top of the file): the stream outputs left by the last
// rising edge are sampled, then the inputs are driven and the rising edge evaluated. Only while
// no AXI-Lite transaction is in progress (its inputs are driven idle, as `cycle` does then).
inline void stream_cycle(Board* b) {
    Vcore* t = b->top;
    const bool in_valid = b->in_pos < b->in_words.size();
    const bool rx_ready = b->draining || b->dropping || (b->armed && b->fault != SB_FAULT_MUTE);
    const bool in_fire = in_valid && t->s_axis_tready;
    const bool out_fire = rx_ready && t->m_axis_tvalid;
    const uint64_t out_data = t->m_axis_tdata;
    const bool out_last = t->m_axis_tlast;
    const uint64_t data = in_valid ? b->in_words[b->in_pos] : t->s_axis_tdata;
    const bool last = in_valid && b->in_last[b->in_pos];
    const bool same = t->s_axis_tvalid == in_valid && t->s_axis_tdata == data && t->s_axis_tlast == last &&
                      t->m_axis_tready == rx_ready && !(t->s_axi_arvalid | t->s_axi_awvalid | t->s_axi_wvalid |
                                                        t->s_axi_rready | t->s_axi_bready);
    t->s_axis_tvalid = in_valid;
    t->s_axis_tdata = data;
    t->s_axis_tlast = last;
    t->m_axis_tready = rx_ready;
    t->s_axi_arvalid = t->s_axi_awvalid = t->s_axi_wvalid = t->s_axi_rready = t->s_axi_bready = 0;
    t->aclk = 1;
    clock_was_low(t->rootp);
    if (same && b->skip_ico && eval_edge_only(t))
        b->edge_only++;
    else
        t->eval();
    streamed(b, in_fire, out_fire, out_data, out_last);
}

// One clock of the run loops: one evaluation when allowed, else two.
inline void step(Board* b) {
    if (b->one_eval && !(b->ar || b->aw || b->w || b->wait_r || b->wait_b))
        stream_cycle(b);
    else
        cycle(b);
}

// Run cycles until the AXI-Lite transaction in progress is done; false on timeout (the
// transaction is then abandoned: call sb_reset before trusting the board again).
bool finish_axil(Board* b, uint32_t max_cycles) {
    for (uint32_t n = 0; n < max_cycles; n++) {
        cycle(b);
        if (!(b->ar || b->aw || b->w || b->wait_r || b->wait_b)) return true;
    }
    b->ar = b->aw = b->w = b->wait_r = b->wait_b = false;
    return false;
}

}  // namespace

extern "C" {

const char* sb_version(void) { return Verilated::productVersion(); }

Board* sb_new(void) {
    Board* b = new Board;
    b->ctx = new VerilatedContext;
    b->top = new Vcore{b->ctx, "core"};
    b->top->aclk = 0;
    b->top->aresetn = 0;
    b->top->eval();
    return b;
}

void sb_free(Board* b) {
    if (!b) return;
    b->top->final();
    delete b->top;
    delete b->ctx;
    delete b;
}

// Hold aresetn low for `cycles` clocks; forget queued words, the receive and any transaction.
// The core's memories keep their contents through a reset; its registers do not.
void sb_reset(Board* b, uint32_t cycles) {
    b->in_words.clear();
    b->in_last.clear();
    b->in_pos = 0;
    b->rx.clear();
    b->armed = b->rx_last = b->rx_overflow = b->dropping = b->draining = false;
    b->ar = b->aw = b->w = b->wait_r = b->wait_b = false;
    b->top->aresetn = 0;
    for (uint32_t n = 0; n < (cycles ? cycles : 1); n++) cycle(b);
    b->top->aresetn = 1;
    cycle(b);
}

uint64_t sb_cycles(const Board* b) { return b->cycles; }

// Stream clocks of one evaluation skip the input-combinational region when no input changed since
// the last evaluation: `on` 0 or 1 sets it, -1 leaves it; returns whether it is on.
int sb_skip_ico(Board* b, int on) {
    if (on >= 0) b->skip_ico = on;
    return b->skip_ico;
}

// Clocks evaluated without the input-combinational region since the board was created.
uint64_t sb_edge_only(const Board* b) { return b->edge_only; }

// One evaluation per stream clock: `on` 0 or 1 sets it (1 only where the build allows it), -1
// leaves it; returns whether it is in use.
int sb_one_eval(Board* b, int on) {
    if (on >= 0) b->one_eval = on && kOneEvalBuilt;
    return b->one_eval;
}

// Set the fault (SB_FAULT_NONE repairs the core: a truncated timestep is no longer being dropped).
void sb_fault(Board* b, int kind, int64_t value) {
    b->fault = kind;
    b->fault_value = value;
    b->dropping = false;
}

// AXI-Lite: 0 when the transaction completed, -1 when it did not within `max_cycles`.
int sb_axil_write(Board* b, uint32_t addr, uint32_t data, uint32_t max_cycles) {
    b->addr = addr;
    b->wdata = data;
    b->aw = b->w = b->wait_b = true;
    return finish_axil(b, max_cycles) ? 0 : -1;
}

int sb_axil_read(Board* b, uint32_t addr, uint32_t* data, uint32_t max_cycles) {
    b->addr = addr;
    b->ar = b->wait_r = true;
    if (!finish_axil(b, max_cycles)) return -1;
    *data = b->rdata;
    return 0;
}

// Many transactions in one call; returns how many completed (< n means a timeout).
size_t sb_axil_write_many(Board* b, const uint32_t* addr, const uint32_t* data, size_t n, uint32_t max_cycles) {
    for (size_t i = 0; i < n; i++)
        if (sb_axil_write(b, addr[i], data[i], max_cycles) != 0) return i;
    return n;
}

size_t sb_axil_read_many(Board* b, const uint32_t* addr, uint32_t* data, size_t n, uint32_t max_cycles) {
    for (size_t i = 0; i < n; i++)
        if (sb_axil_read(b, addr[i], &data[i], max_cycles) != 0) return i;
    return n;
}

// Queue `n` words for the input stream; TLAST on the last of them when `last`.
void sb_send(Board* b, const uint64_t* words, size_t n, int last) {
    b->in_words.insert(b->in_words.end(), words, words + n);
    b->in_last.insert(b->in_last.end(), n, 0);
    if (n && last) b->in_last.back() = 1;
}

size_t sb_pending(const Board* b) { return b->in_words.size() - b->in_pos; }

// Forget the words not yet taken by the core (an aborted send).
void sb_discard(Board* b) {
    b->in_words.clear();
    b->in_last.clear();
    b->in_pos = 0;
}

// Arm a receive of up to `room` words, forgetting the previous one.
void sb_arm(Board* b, size_t room) {
    b->rx.clear();
    b->room = room;
    b->armed = room > 0;
    b->rx_last = b->rx_overflow = false;
}

void sb_disarm(Board* b) { b->armed = false; }

int sb_rx_state(const Board* b) {
    return (b->armed ? SB_RX_ARMED : 0) | (b->rx_last ? SB_RX_LAST : 0) | (b->rx_overflow ? SB_RX_OVERFLOW : 0);
}

size_t sb_received(const Board* b) { return b->rx.size(); }

// Copy up to `cap` received words to `out`; returns how many.
size_t sb_take(const Board* b, uint64_t* out, size_t cap) {
    size_t n = b->rx.size() < cap ? b->rx.size() : cap;
    if (n) std::memcpy(out, b->rx.data(), n * sizeof(uint64_t));
    return n;
}

// Run up to `max_cycles` clocks, stopping early when the `until` conditions all hold
// (SB_UNTIL_RECEIVED: no receive armed; SB_UNTIL_SENT: every queued word taken). Returns
// the cycles run.
uint64_t sb_run(Board* b, uint64_t max_cycles, int until) {
    uint64_t n = 0;
    for (; n < max_cycles; n++) {
        if (until) {
            bool done = true;
            if (until & SB_UNTIL_RECEIVED) done = done && !b->armed;
            if (until & SB_UNTIL_SENT) done = done && b->in_pos >= b->in_words.size();
            if (done) break;
        }
        step(b);
    }
    return n;
}

// One stream transfer in one call: arm a receive of `room` words, queue `n` words of
// `word_bytes` (4 or 8) bytes with TLAST on the last, then run up to `max_cycles` clocks until
// the receive ends (as sb_arm + sb_send + sb_run(max_cycles, SB_UNTIL_RECEIVED)). Returns
// sb_rx_state; while it has SB_RX_ARMED, continue with sb_run. -1: input words of an earlier
// transfer are still queued (nothing was done).
int sb_transfer(Board* b, const void* words, size_t n, int word_bytes, size_t room, uint64_t max_cycles) {
    if (b->in_pos < b->in_words.size()) return -1;
    sb_arm(b, room);
    b->in_words.resize(n);
    if (word_bytes == 4) {
        const uint32_t* w = static_cast<const uint32_t*>(words);
        for (size_t i = 0; i < n; i++) b->in_words[i] = w[i];
    } else {
        std::memcpy(b->in_words.data(), words, n * sizeof(uint64_t));
    }
    b->in_last.assign(n, 0);
    if (n) b->in_last.back() = 1;
    b->in_pos = 0;
    for (uint64_t c = 0; c < max_cycles && b->armed; c++) step(b);
    return sb_rx_state(b);
}

// Accept and discard output words until `quiet` cycles pass without one (or `max_cycles`);
// returns the words discarded.
uint64_t sb_drain(Board* b, uint64_t quiet, uint64_t max_cycles) {
    b->draining = true;
    b->drained = 0;
    b->last_out_cycle = b->cycles;
    for (uint64_t n = 0; n < max_cycles && b->cycles - b->last_out_cycle < quiet; n++) step(b);
    b->draining = false;
    b->dropping = false;
    return b->drained;
}

}  // extern "C"
