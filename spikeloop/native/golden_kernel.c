/*
 * spikeloop golden-model kernel: the numerics contract (docs/numerics.md) in C.
 *
 * Built on first use by spikeloop.native.load_library() and driven through ctypes by
 * spikeloop.native.golden_kernel (used by spikeloop.golden.Stepper and spikeloop.golden.run).
 * It must stay bit-exact with the numpy reference (spikeloop.golden.neuron_step); the tests in
 * tests/test_golden_fast.py hold it to that.
 *
 * What binary weights and binary spikes allow:
 *   - only active inputs contribute: the indices of the 1s of an input vector are gathered
 *     from a 64-bit mask per 64 inputs (each word of eight 0/1 bytes becomes 8 mask bits with
 *     one multiply), so an all-zero chunk of 64 inputs costs one compare;
 *   - sum_i w[j,i] s[i] is then a sum of +/-1 rows of the transposed weight matrix: groups of
 *     8 rows are summed in int8 lanes (|sum| <= 8), then widened into int16 accumulators
 *     (n_in <= 32767, so |sum| <= n_in fits) or int32 ones (larger n_in);
 *   - the neuron update runs on int64 lanes (v_prev*lam and v_prev*(2^F - lam) fit v_bits+F+1
 *     <= 49 bits, the shifted sum (x << k) + bias fits 34), with a shift instead of a multiply when
 *     lam (alpha) is 0 or a power of two under the floor rounding; the saturations are vector
 *     min/max, as cheap as any proof that they could be skipped.
 * Contract v2's options each cost a pass or a loop variant only where a layer uses them: the
 * input shift (a multiply by 2^k), the roundings toward zero and to the nearest (sign and
 * magnitude), the wrap of u (a pass after the unsaturated update), the bias into the membrane and
 * the subtract_next reset (one pass folding bias_v - theta*(v_prev >= theta) into the membrane's
 * input); the symmetric v range is only another v_lo. A contract v1 layer runs the v1 loops.
 * Batch rows are independent; one call runs batch x steps x layers, each (row, step) through
 * all layers before the next, so a row's state stays in cache.
 *
 * Arithmetic right shifts of negative int64 are used for floor(x / 2^F): GCC and Clang define
 * `>>` on negative signed integers as arithmetic; spikeloop_golden_selftest() checks it. Nothing
 * else depends on implementation-defined behaviour: the sign-magnitude roundings shift only
 * magnitudes, the input shift is a multiply (`<<` of a negative is undefined), and the wrap works
 * on uint64 and converts back only values in [0, 2^U).
 *
 * On x86-64 with GCC the hot entry point is compiled for several instruction sets
 * (target_clones, chosen at load time by the dynamic linker); define SPIKELOOP_NO_CLONES to
 * build a single portable version.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SPIKELOOP_GOLDEN_ABI 3

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    (__GNUC__ >= 11) && !defined(SPIKELOOP_NO_CLONES)
#define SL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SL_CLONES
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SL_INLINE static inline __attribute__((always_inline))
#define SL_RESTRICT __restrict__
/* a function of its own (per instruction set, like the entry point), never inlined */
#define SL_OUTLINE static __attribute__((noinline)) SL_CLONES
#else
#define SL_INLINE static inline
#define SL_RESTRICT
#define SL_OUTLINE static
#endif

/* One layer, as laid out by spikeloop/native/golden_kernel.py (ctypes.Structure sl_layer). */
typedef struct sl_layer {
    int64_t n_in, n_out, stride;        /* stride: length of a row of wt, >= n_out */
    int64_t neuron;                     /* 0 lif, 1 cuba */
    int64_t reset;                      /* 0 subtract, 1 zero, 2 none, 3 subtract_next */
    int64_t frac_bits, lam, alpha;
    int64_t v_lo, v_hi, u_lo, u_hi;     /* v_lo: -2^(V-1), or -(2^(V-1) - 1) for the symmetric range */
    int64_t decay_round;                /* 0 floor, 1 zero, 2 nearest */
    int64_t input_shift;                /* k: the synaptic sum is multiplied by 2^k */
    int64_t u_wrap;                     /* 0: u saturates to [u_lo, u_hi]; 1: u wraps to that range */
    int64_t recurrent;                  /* 1: the layer's spikes of the previous step (zp) are inputs too */
    const int8_t *wt;                   /* [n_in (+ n_out)][stride], wt[i][j] = w[j][i] (+/-1), then the
                                           recurrent rows wt[n_in + k][j] = r[j][k]; padding 0 */
    const int64_t *theta, *bias;        /* [n_out]; bias: the bias into the current (0 if membrane) */
    const int64_t *vbias;               /* [n_out] the bias into the membrane, or NULL (none) */
    int64_t *v, *u;                     /* state [batch][n_out], updated in place */
    void *acc;                          /* scratch, SCRATCH_PER_COLUMN*stride bytes (see below) */
    uint8_t *z;                         /* scratch [n_out]: this layer's spikes of the current step */
    uint8_t *zp;                        /* state [batch][n_out]: the spikes of the last step run */
    uint8_t *z_rec;                     /* [batch][steps][n_out] or NULL: spikes z */
    int64_t *v_rec, *u_rec;             /* [batch][steps][n_out] or NULL: pre-reset v', current u */
} sl_layer;

int64_t spikeloop_golden_abi(void) { return SPIKELOOP_GOLDEN_ABI; }

int64_t spikeloop_golden_sizeof_layer(void) { return (int64_t)sizeof(sl_layer); }

/* 1 when >> on negative int64 is an arithmetic (flooring) shift, as the kernel assumes. */
int64_t spikeloop_golden_selftest(void) {
    volatile int64_t x = -3;
    volatile int64_t k = 1;
    return ((x >> k) == -2) && ((x * 5 >> 2) == -4);
}

/* Bit k of the result is byte k of the 8 bytes at x (each 0 or 1). The little-endian word holds
 * byte k at bit 8k; the multiply moves it to bit 56+k with no carry into the top byte. */
SL_INLINE uint64_t mask8(const uint8_t *x) {
    uint64_t w;
    memcpy(&w, x, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return (w * 0x0102040810204080ULL) >> 56;
}

/* Indices of the nonzero bytes of x[0..n) into idx; returns their count. Bytes must be 0 or 1.
 * 64 inputs become one bit mask, so an all-zero chunk costs a compare. */
SL_INLINE int64_t gather(const uint8_t *SL_RESTRICT x, int64_t n, int32_t *SL_RESTRICT idx) {
    int64_t cnt = 0, i = 0;
    for (; i + 64 <= n; i += 64) {
        uint64_t m = 0;
        for (int k = 0; k < 8; k++) m |= mask8(x + i + 8 * k) << (8 * k);
        while (m) {
            idx[cnt++] = (int32_t)(i + __builtin_ctzll(m));
            m &= m - 1;
        }
    }
    for (; i < n; i++) {
        idx[cnt] = (int32_t)i;
        cnt += x[i];
    }
    return cnt;
}

#define SL_TILE 2048
#define SL_GROUP 8

/* a[j] += sum of the rows r[0..SL_GROUP) at column j for j < len: the +/-1 entries are summed in
 * int8 lanes (|sum| <= SL_GROUP), then widened once into the accumulators. */
#define SL_ADD_ROWS(NAME, T)                                                                    \
    SL_INLINE void NAME##_group(T *SL_RESTRICT a, const int8_t *SL_RESTRICT r0,                 \
                                const int8_t *SL_RESTRICT r1, const int8_t *SL_RESTRICT r2,     \
                                const int8_t *SL_RESTRICT r3, const int8_t *SL_RESTRICT r4,     \
                                const int8_t *SL_RESTRICT r5, const int8_t *SL_RESTRICT r6,     \
                                const int8_t *SL_RESTRICT r7, int64_t len) {                    \
        for (int64_t j = 0; j < len; j++) {                                                     \
            int8_t s = (int8_t)(r0[j] + r1[j] + r2[j] + r3[j] + r4[j] + r5[j] + r6[j] + r7[j]); \
            a[j] += (T)s;                                                                       \
        }                                                                                       \
    }                                                                                           \
    SL_INLINE void NAME##_one(T *SL_RESTRICT a, const int8_t *SL_RESTRICT r0, int64_t len) {    \
        for (int64_t j = 0; j < len; j++) a[j] += (T)r0[j];                                     \
    }

/* acc[j] = sum over the active rows idx[0..cnt) of wt[row][j], for j < n (n a multiple of 64,
 * at most the stride; the padding columns of wt are 0), in accumulator type T. */
#define SL_ACCUMULATE(NAME, T)                                                                  \
    SL_ADD_ROWS(NAME, T)                                                                        \
    SL_INLINE void NAME(T *SL_RESTRICT acc, const int8_t *SL_RESTRICT wt, int64_t stride,      \
                        const int32_t *SL_RESTRICT idx, int64_t cnt, int64_t n) {               \
        for (int64_t j0 = 0; j0 < n; j0 += SL_TILE) {                                           \
            int64_t len = n - j0 < SL_TILE ? n - j0 : SL_TILE;                                  \
            T *a = acc + j0;                                                                    \
            const int8_t *w = wt + j0;                                                          \
            memset(a, 0, (size_t)len * sizeof(T));                                              \
            int64_t p = 0;                                                                      \
            for (; p + SL_GROUP <= cnt; p += SL_GROUP) {                                        \
                const int32_t *q = idx + p;                                                     \
                NAME##_group(a, w + q[0] * stride, w + q[1] * stride, w + q[2] * stride,        \
                             w + q[3] * stride, w + q[4] * stride, w + q[5] * stride,           \
                             w + q[6] * stride, w + q[7] * stride, len);                        \
            }                                                                                   \
            for (; p < cnt; p++) NAME##_one(a, w + idx[p] * stride, len);                       \
        }                                                                                       \
    }

SL_ACCUMULATE(accumulate16, int16_t)
SL_ACCUMULATE(accumulate32, int32_t)

/* log2(x) when x is a power of two, else -1 */
SL_INLINE int pow2_log(int64_t x) {
    if (x <= 0 || (x & (x - 1))) return -1;
    return __builtin_ctzll((uint64_t)x);
}

SL_INLINE int64_t clamp(int64_t x, int64_t lo, int64_t hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* How x - ((x * factor) >> F) (keep under the floor rounding) is computed: DECAY_NONE (factor 0:
 * x), DECAY_SHIFT (factor 2^k: x - (x >> (F-k)), exact because x * 2^k never overflows for in-range
 * x), DECAY_MUL. */
enum { DECAY_NONE, DECAY_SHIFT, DECAY_MUL };

SL_INLINE int decay_kind(int64_t factor, int64_t fb, int64_t *shift) {
    int k = pow2_log(factor);
    if (factor == 0) return DECAY_NONE;
    if (k >= 0 && k <= fb) {
        *shift = fb - k;
        return DECAY_SHIFT;
    }
    return DECAY_MUL;
}

/* y[j] = sat(keep(x[j]) + in[j]) under the roundings toward zero (1) and to the nearest (2): with
 * p = x[j] * (2^F - factor), keep = sign(p) * ((|p| + h) >> F), h = 0 or 2^(F-1) (|p| < 2^48; only
 * a magnitude is shifted). y may be x. */
SL_OUTLINE void signmag_add_sat(int64_t *y, const int64_t *x, const int64_t *SL_RESTRICT in, int64_t n,
                                int64_t factor, int64_t fb, int64_t rounding, int64_t lo, int64_t hi) {
    const int64_t m = ((int64_t)1 << fb) - factor, h = rounding == 2 ? ((int64_t)1 << fb) >> 1 : 0;
    for (int64_t j = 0; j < n; j++) {
        int64_t p = x[j] * m;
        int64_t q = ((p < 0 ? -p : p) + h) >> fb;
        y[j] = clamp((p < 0 ? -q : q) + in[j], lo, hi);
    }
}

/* in[j] = acc[j] * 2^k + bias[j] (the current's input a; for k > 0 a multiply, as << of a negative
 * is undefined in C; |acc * 2^k| <= 2^32) */
#define SL_INPUT(NAME, T)                                                                       \
    SL_OUTLINE void NAME##_shifted(int64_t *SL_RESTRICT in, const T *SL_RESTRICT acc,           \
                                   const int64_t *SL_RESTRICT bias, int64_t n, int64_t k) {     \
        const int64_t scale = (int64_t)1 << k;                                                  \
        for (int64_t j = 0; j < n; j++) in[j] = (int64_t)acc[j] * scale + bias[j];              \
    }                                                                                           \
    SL_INLINE void NAME(int64_t *SL_RESTRICT in, const T *SL_RESTRICT acc,                      \
                        const int64_t *SL_RESTRICT bias, int64_t n, int64_t k) {                \
        if (k == 0) {                                                                           \
            for (int64_t j = 0; j < n; j++) in[j] = (int64_t)acc[j] + bias[j];                  \
        } else {                                                                                \
            NAME##_shifted(in, acc, bias, n, k);                                                \
        }                                                                                       \
    }
SL_INPUT(input16, int16_t)
SL_INPUT(input32, int32_t)

/* y[j] = sat(x[j] - ((x[j] * factor) >> F) + in[j]) for the three decay kinds; y may be x
 * only through the in-place variant below (u of cuba), so two functions keep restrict honest. */
#define SL_DECAY_LOOP(X, Y)                                                                     \
    switch (kind) {                                                                             \
    case DECAY_NONE:                                                                            \
        for (int64_t j = 0; j < n; j++) Y = clamp(X + in[j], lo, hi);                           \
        break;                                                                                  \
    case DECAY_SHIFT:                                                                           \
        for (int64_t j = 0; j < n; j++) Y = clamp(X - (X >> shift) + in[j], lo, hi);            \
        break;                                                                                  \
    default:                                                                                    \
        for (int64_t j = 0; j < n; j++) Y = clamp(X - ((X * factor) >> fb) + in[j], lo, hi);    \
        break;                                                                                  \
    }

SL_INLINE void decay_add_sat(int64_t *SL_RESTRICT y, const int64_t *SL_RESTRICT x,
                             const int64_t *SL_RESTRICT in, int64_t n, int kind, int64_t factor,
                             int64_t fb, int64_t shift, int64_t lo, int64_t hi) {
    SL_DECAY_LOOP(x[j], y[j])
}

SL_INLINE void decay_add_sat_inplace(int64_t *SL_RESTRICT x, const int64_t *SL_RESTRICT in, int64_t n,
                                     int kind, int64_t factor, int64_t fb, int64_t shift, int64_t lo,
                                     int64_t hi) {
    SL_DECAY_LOOP(x[j], x[j])
}

/* x[j] wrapped into [lo, hi] = [-2^(U-1), 2^(U-1) - 1] (two's complement of U bits), on uint64:
 * (x - lo) mod 2^U lies in [0, 2^U), so converting it back to int64 is exact. */
SL_OUTLINE void wrap_into(int64_t *SL_RESTRICT x, int64_t n, int64_t lo, int64_t hi) {
    const uint64_t mask = (uint64_t)hi - (uint64_t)lo, ulo = (uint64_t)lo;
    for (int64_t j = 0; j < n; j++) x[j] = (int64_t)(((uint64_t)x[j] - ulo) & mask) + lo;
}

/* e[j] = in[j] + vbias[j] - theta[j] * (v[j] >= theta[j]): the membrane's input beyond the current,
 * vbias (NULL: none) and, for the subtract_next reset (`next`), theta off after a spike of v_prev. */
SL_OUTLINE void membrane_input(int64_t *SL_RESTRICT e, const int64_t *SL_RESTRICT in,
                               const int64_t *SL_RESTRICT vbias, const int64_t *SL_RESTRICT v,
                               const int64_t *SL_RESTRICT theta, int64_t n, int next) {
    if (vbias) {
        for (int64_t j = 0; j < n; j++) e[j] = in[j] + vbias[j];
    } else {
        memcpy(e, in, (size_t)n * sizeof(int64_t));
    }
    if (next)
        for (int64_t j = 0; j < n; j++) e[j] -= v[j] >= theta[j] ? theta[j] : 0;
}

/* z = v' >= theta; v = v' - theta*z (subtract) | v'*(1-z) (zero) | v' (none, subtract_next) */
SL_INLINE void fire_reset(int64_t *SL_RESTRICT v, uint8_t *SL_RESTRICT z, const int64_t *SL_RESTRICT vp,
                          const int64_t *SL_RESTRICT theta, int64_t n, int64_t reset) {
    if (reset == 0) {
        for (int64_t j = 0; j < n; j++) {
            int64_t s = vp[j] >= theta[j];
            z[j] = (uint8_t)s;
            v[j] = vp[j] - (s ? theta[j] : 0);
        }
    } else if (reset == 1) {
        for (int64_t j = 0; j < n; j++) {
            int64_t s = vp[j] >= theta[j];
            z[j] = (uint8_t)s;
            v[j] = s ? 0 : vp[j];
        }
    } else {
        for (int64_t j = 0; j < n; j++) {
            z[j] = (uint8_t)(vp[j] >= theta[j]);
            v[j] = vp[j];
        }
    }
}

/* Scratch of a layer (sl_layer.acc, SCRATCH_PER_COLUMN * stride bytes): accumulators (4 bytes per
 * column), then the current input and the pre-reset membranes when not recorded (8 + 8), then the
 * membrane's input when it differs from the current (8). */
#define SCRATCH_PER_COLUMN 28

/*
 * Neuron update of one layer for one batch row at one timestep, from accumulated sums `acc`.
 * v, u: this row's state. Writes the spikes into L->z and, when recording, z / v' / u at `rec`.
 * A function of its own (one call per layer and step): inlined into the run loop, its floor loops
 * lost a register to the v2 branches (one more instruction per 4 neurons in GCC 12).
 */
#define SL_NEURONS(NAME, T, INPUT)                                                              \
    SL_OUTLINE void NAME(const sl_layer *L, const T *acc, int64_t *v, int64_t *u,               \
                         int64_t rec) {                                                         \
        const int64_t n = L->n_out, fb = L->frac_bits;                                          \
        int8_t *scratch = (int8_t *)L->acc + 4 * L->stride;                                     \
        int64_t *in = L->u_rec ? L->u_rec + rec : (int64_t *)scratch;                           \
        int64_t *vp = L->v_rec ? L->v_rec + rec : (int64_t *)scratch + L->stride;               \
        int64_t shift = 0;                                                                      \
        if (L->neuron == 1) {                                                                   \
            int64_t *a = (int64_t *)scratch; /* consumed before vp is written */                \
            INPUT(a, acc, L->bias, n, L->input_shift);                                          \
            /* a wrapping u is updated unsaturated (|keep(u) + a| < 2^35), then wrapped */      \
            int64_t lo = L->u_wrap ? INT64_MIN : L->u_lo, hi = L->u_wrap ? INT64_MAX : L->u_hi; \
            if (L->decay_round) {                                                               \
                signmag_add_sat(u, u, a, n, L->alpha, fb, L->decay_round, lo, hi);              \
            } else {                                                                            \
                int kind = decay_kind(L->alpha, fb, &shift);                                    \
                decay_add_sat_inplace(u, a, n, kind, L->alpha, fb, shift, lo, hi);              \
            }                                                                                   \
            if (L->u_wrap) wrap_into(u, n, L->u_lo, L->u_hi);                                   \
            if (L->u_rec) memcpy(in, u, (size_t)n * sizeof(int64_t));                           \
            in = u;                                                                             \
        } else {                                                                                \
            INPUT(in, acc, L->bias, n, L->input_shift);                                         \
        }                                                                                       \
        if (L->vbias || L->reset == 3) {                                                        \
            int64_t *e = (int64_t *)scratch + 2 * L->stride;                                    \
            membrane_input(e, in, L->vbias, v, L->theta, n, L->reset == 3);                     \
            in = e;                                                                             \
        }                                                                                       \
        if (L->decay_round) {                                                                   \
            signmag_add_sat(vp, v, in, n, L->lam, fb, L->decay_round, L->v_lo, L->v_hi);        \
        } else {                                                                                \
            int kind = decay_kind(L->lam, fb, &shift);                                          \
            decay_add_sat(vp, v, in, n, kind, L->lam, fb, shift, L->v_lo, L->v_hi);             \
        }                                                                                       \
        fire_reset(v, L->z, vp, L->theta, n, L->reset);                                         \
        if (L->z_rec) memcpy(L->z_rec + rec, L->z, (size_t)n);                                  \
    }

SL_NEURONS(neurons16, int16_t, input16)
SL_NEURONS(neurons32, int32_t, input32)

/* First offset of a byte other than 0 and 1 among batch x steps rows of n bytes, or -1. */
static int64_t check01(const uint8_t *in, int64_t batch, int64_t steps, int64_t n, int64_t sb, int64_t st) {
    for (int64_t b = 0; b < batch; b++)
        for (int64_t t = 0; t < steps; t++) {
            const uint8_t *x = in + b * sb + t * st;
            uint8_t bad = 0;
            for (int64_t i = 0; i < n; i++) bad |= x[i] & 0xFE;
            if (bad)
                for (int64_t i = 0; i < n; i++)
                    if (x[i] > 1) return (b * steps + t) * n + i;
        }
    return -1;
}

/*
 * One call: run `steps` timesteps of a network of `n_layers` layers for `batch` rows.
 * Input spikes: byte (b, t, i) at in[b*in_sb + t*in_st + i], each 0 or 1.
 * States layers[k].v / .u are advanced in place; outputs are recorded where a layer's
 * z_rec / v_rec / u_rec are not NULL, at offset ((b*steps + t) * n_out).
 * `idx` is scratch for max(n_in + n_out) int32. A layer's zp row is its spikes of the last step
 * (a recurrent layer's extra inputs at the next). With `check`, the input is validated first and the
 * flat index (b*steps + t)*n_in + i of the first value other than 0/1 is returned (nothing
 * is advanced then); otherwise -1.
 * One pointer argument, because ctypes converts every argument of every call.
 */
typedef struct sl_call {
    sl_layer *layers;
    int64_t n_layers, batch, steps;
    const uint8_t *in;
    int64_t in_sb, in_st;
    int32_t *idx;
    int64_t check;
} sl_call;

int64_t spikeloop_golden_sizeof_call(void) { return (int64_t)sizeof(sl_call); }

SL_CLONES
int64_t spikeloop_golden_run(const sl_call *c) {
    sl_layer *L = c->layers;
    const int64_t steps = c->steps;
    if (c->check) {
        int64_t bad = check01(c->in, c->batch, steps, L[0].n_in, c->in_sb, c->in_st);
        if (bad >= 0) return bad;
    }
    for (int64_t b = 0; b < c->batch; b++) {
        for (int64_t t = 0; t < steps; t++) {
            const uint8_t *x = c->in + b * c->in_sb + t * c->in_st;
            for (int64_t k = 0; k < c->n_layers; k++) {
                sl_layer *l = &L[k];
                int64_t *v = l->v + b * l->n_out, *u = l->u + b * l->n_out;
                int64_t rec = (b * steps + t) * l->n_out;
                uint8_t *zp = l->zp + b * l->n_out;
                int64_t cnt = gather(x, l->n_in, c->idx), rows = l->n_in;
                if (l->recurrent) { /* the previous spikes are inputs n_in .. n_in + n_out - 1 */
                    int64_t more = gather(zp, l->n_out, c->idx + cnt);
                    for (int64_t p = cnt; p < cnt + more; p++) c->idx[p] += (int32_t)l->n_in;
                    cnt += more;
                    rows += l->n_out;
                }
                if (rows <= 32767) {
                    accumulate16((int16_t *)l->acc, l->wt, l->stride, c->idx, cnt, l->stride);
                    neurons16(l, (const int16_t *)l->acc, v, u, rec);
                } else {
                    accumulate32((int32_t *)l->acc, l->wt, l->stride, c->idx, cnt, l->stride);
                    neurons32(l, (const int32_t *)l->acc, v, u, rec);
                }
                memcpy(zp, l->z, (size_t)l->n_out);
                x = l->z;
            }
        }
    }
    return -1;
}
