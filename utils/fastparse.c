/* Parse whitespace-separated decimal numbers at C speed for utils/motion_io.py.
 *
 * Built by `make install` (and so by `make test` / `make demo`) into
 * utils/_fastparse.so and loaded with ctypes; without it motion_io falls back
 * to numpy's parser, with the same results.
 *
 * Exactness: a token with at most 19 significant digits whose value is
 * m * 10^k with m < 2^53 and |k| <= 22 is computed as one IEEE multiplication
 * or division of two exactly representable numbers, so it is correctly
 * rounded (Clinger's fast path), exactly what strtod returns. Every other
 * token (more digits, larger exponents, nan, inf) goes through strtod itself.
 *
 * Speed: on x86-64 (SSE2, always present there) a token of at most 15 digits
 * and dots, such as the "%.10g" numbers write_mot writes, is classified with
 * two 16-byte compares: one mask gives its end and its '.', the dot is cut out
 * of the 16 bytes and the digits are summed eight at a time (SWAR), with no
 * loop over its characters. At most 15 digits and 14 decimals is always
 * inside Clinger's fast path. Every other token (exponents, signs of an
 * exponent, more digits, the last 16 bytes of the buffer, anything not a
 * number) takes the general per-character parser below, which is the only
 * parser elsewhere.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const double POW10[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Eight ASCII digits at once (little-endian), the SWAR technique of fast
 * float parsers: is every byte of v a digit, and their value. */
static inline int eight_digits(uint64_t v) {
    return (((v & 0xF0F0F0F0F0F0F0F0ull) | (((v + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull) >> 4))
            == 0x3333333333333333ull);
}

static inline uint64_t eight_digit_value(uint64_t v) {
    v -= 0x3030303030303030ull;
    v = (v * 10) + (v >> 8);
    v = (((v & 0x000000FF000000FFull) * (100 + (1000000ull << 32))) +
         (((v >> 16) & 0x000000FF000000FFull) * (1 + (10000ull << 32)))) >> 32;
    return v;
}

static inline uint64_t load8(const char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Number of decimal digits of v (0 for 0), v < 10^8. */
static inline int digit_count(uint64_t v) {
    int d = 0;
    static const uint64_t limits[8] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000};
    while (d < 8 && v >= limits[d]) d++;
    return d;
}

static const unsigned char SPACE[256] = {
    [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1, ['\v'] = 1, ['\f'] = 1};

static inline int is_space(char c) { return SPACE[(unsigned char)c]; }

static int slow_parse(const char *start, const char *end, double *value) {
    char small[512];
    size_t len = (size_t)(end - start);
    char *stop;
    if (len == 0 || len >= sizeof small) return 0;
    memcpy(small, start, len);
    small[len] = '\0';
    *value = strtod(small, &stop);
    return stop == small + len;
}

/* The general parser of one token at p (sign, digits, '.', exponent, or any
 * form strtod takes) in a buffer ending at buf_end ('\0'): its value in
 * *value and its end in *tok_end. Returns 0 when the token is not a number. */
__attribute__((noinline)) static int parse_token(const char *p, const char *buf_end, double *value,
                                                 const char **tok_end) {
    const char *tok = p;
    int negative = 0;
    if (*p == '+' || *p == '-') { negative = (*p == '-'); p++; }
    uint64_t mantissa = 0;
    int digits = 0, significant = 0, exp10 = 0, dropped = 0;
    while ((unsigned)(*p - '0') < 10u) {
        if (significant < 19) {
            mantissa = mantissa * 10 + (uint64_t)(*p - '0');
            significant += (mantissa != 0);
        } else {
            dropped = 1;
            exp10++;
        }
        digits++;
        p++;
    }
    if (*p == '.') {
        p++;
        /* eight fractional digits at a time while they fit in 19 significant digits */
        while (buf_end - p >= 8 && significant <= 11 && eight_digits(load8(p))) {
            uint64_t block = eight_digit_value(load8(p));
            significant = mantissa ? significant + 8 : digit_count(block);
            mantissa = mantissa * 100000000ull + block;
            exp10 -= 8;
            digits += 8;
            p += 8;
        }
        while ((unsigned)(*p - '0') < 10u) {
            if (significant < 19) {
                mantissa = mantissa * 10 + (uint64_t)(*p - '0');
                significant += (mantissa != 0);
                exp10--;
            } else {
                dropped = 1;
            }
            digits++;
            p++;
        }
    }
    int ok = digits > 0;
    if (ok && (*p == 'e' || *p == 'E')) {
        p++;
        int eneg = 0, edigits = 0, e = 0;
        if (*p == '+' || *p == '-') { eneg = (*p == '-'); p++; }
        while ((unsigned)(*p - '0') < 10u) {
            if (e < 100000) e = e * 10 + (*p - '0');
            edigits++;
            p++;
        }
        ok = edigits > 0;
        exp10 += eneg ? -e : e;
    }
    const char *end = p;
    while (*end && !is_space(*end)) end++;
    *tok_end = end;
    if (ok && end == p && !dropped && mantissa < ((uint64_t)1 << 53) && exp10 >= -22 && exp10 <= 22) {
        double v = (double)mantissa;
        v = exp10 < 0 ? v / POW10[-exp10] : v * POW10[exp10];
        *value = negative ? -v : v;
        return 1;
    }
    return slow_parse(tok, end, value);
}

/* x86-64 (where SSE2 is always present); -DBIGE_NO_SIMD builds the portable path alone (tested) */
#if defined(__SSE2__) && defined(__x86_64__) && !defined(BIGE_NO_SIMD)
#include <emmintrin.h>
#define BIGE_SIMD 1

/* Bytes that may end a token: whitespace and the buffer's final '\0'; 2 for
 * a separator the fast path skips itself (no line to count). */
static const unsigned char DELIM[256] = {
    [0] = 1, [' '] = 2, ['\t'] = 2, ['\n'] = 1, ['\r'] = 1, ['\v'] = 1, ['\f'] = 1};

static const double SIGN[2] = {1.0, -1.0};

/* BELOW[k]: the bytes 0..k-1 of a 16-byte vector set (k = 0..16). */
static const signed char BELOW[17][16] __attribute__((aligned(16))) = {
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {-1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {-1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {-1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {-1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {-1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {-1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {-1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0},
    {-1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0},
    {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0},
    {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0},
    {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0},
    {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0},
    {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0},
    {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0},
    {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}};

/* INV5[k]: the inverse of 5^k modulo 2^64, so that for W a multiple of 10^k,
 * W / 10^k == (W >> k) * INV5[k] exactly (mod 2^64). */
static const uint64_t INV5[16] = {0x1ull, 0xcccccccccccccccdull, 0x8f5c28f5c28f5c29ull, 0x1cac083126e978d5ull, 0xd288ce703afb7e91ull, 0x5d4e8fb00bcbe61dull, 0x790fb65668c26139ull, 0xe5032477ae8d46a5ull, 0xc767074b22e90e21ull, 0x8e47ce423a2e9c6dull, 0x4fa7f60d3ed61f49ull, 0xfee64690c913975ull, 0x3662e0e1cf503eb1ull, 0xa47a2cf9f6433fbdull, 0x54186f653140a659ull, 0x7738164770402145ull};

/* The decimal at q of an optional sign, at most 15 digits and one '.',
 * ended by whitespace or '\0' within 16 bytes (q[0..15] must be readable):
 * its value in *value and in *next where the next token may start (after a
 * single ' ' or '\t' that ends it), returning 1; 0 (nothing written) for any
 * other token, which then goes to parse_token. With 15 digits at most the
 * mantissa is below 10^15 < 2^53 and the decimals at most 14, so one IEEE
 * division of two exact numbers gives the correctly rounded value. */
static inline int parse_short(const char *q, double *value, const char **next) {
    __m128i v = _mm_loadu_si128((const __m128i *)q);
    /* digits: (byte - '0') < 10 unsigned, as a signed compare after a bias */
    __m128i vals = _mm_sub_epi8(v, _mm_set1_epi8('0'));
    __m128i is_digit = _mm_cmplt_epi8(_mm_xor_si128(vals, _mm_set1_epi8((char)0x80)),
                                      _mm_set1_epi8((char)(-128 + 10)));
    unsigned digit = (unsigned)_mm_movemask_epi8(is_digit);
    unsigned dots = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('.')));
    unsigned sign = (q[0] == '-') | (q[0] == '+');
    unsigned n = (unsigned)__builtin_ctz(~(digit | dots | sign));  /* bit 16 is always set */
    /* the byte ending it must be a delimiter; with n == 16 (no end within the
     * window) q[n & 15] is q[0], a byte of the token, so this fails too */
    unsigned delim = DELIM[(unsigned char)q[n & 15]];
    if (!delim) return 0;
    unsigned inside = (1u << n) - 1;
    dots &= inside;
    if ((dots & (dots - 1)) || !(digit & inside)) return 0;  /* two dots, or no digit */
    unsigned nd = n - (dots != 0);  /* digit places, a sign counting as a leading zero */
    unsigned d = (unsigned)__builtin_ctz(dots | 0x10000u);  /* the '.', 16 if none */
    /* digit values, 0 at the sign; the '.' cut out (the bytes above it move
     * down by one); zeros after the nd places: the 16-digit number
     * W = M * 10^(16 - nd), most significant digit first */
    vals = _mm_and_si128(vals, is_digit);
    __m128i below = _mm_load_si128((const __m128i *)BELOW[d]);
    vals = _mm_or_si128(_mm_and_si128(below, vals), _mm_andnot_si128(below, _mm_srli_si128(vals, 1)));
    vals = _mm_and_si128(vals, _mm_load_si128((const __m128i *)BELOW[nd]));
    /* pairs of digits (16-bit: a + 256 b times 256 * 10 + 1 is 10 a + b in
     * the high byte, mod 2^16), fours (32-bit), eights (32-bit) */
    __m128i times = _mm_set1_epi16(0x0A01);
    __asm__("" : "+x"(times));  /* one pmullw, not the four shifts and adds gcc would make of it */
    __m128i pairs = _mm_srli_epi16(_mm_mullo_epi16(vals, times), 8);
    __m128i fours = _mm_madd_epi16(pairs, _mm_set1_epi32(100 | (1 << 16)));
    fours = _mm_packs_epi32(fours, fours);
    __m128i eights = _mm_madd_epi16(fours, _mm_set1_epi32(10000 | (1 << 16)));
    /* W = first eight * 10^8 + second eight, in the low 64-bit lane */
    __m128i w128 = _mm_add_epi64(_mm_mul_epu32(eights, _mm_set_epi32(0, 0, 0, 100000000)),
                                 _mm_srli_epi64(eights, 32));
    uint64_t w = (uint64_t)_mm_cvtsi128_si64(w128);
    unsigned k = 16 - nd;
    uint64_t mantissa = (w >> k) * INV5[k];
    unsigned decimals = (n - 1 - d) & -(unsigned)(dots != 0);  /* 0 without a '.': / 1.0 is exact */
    /* the sign without a branch (signs are random in data): * -1.0 is exact */
    *value = (double)(int64_t)mantissa / POW10[decimals] * SIGN[q[0] == '-'];
    *next = q + n + (delim == 2);
    return 1;
}
#endif

/* Parse the numbers of buf[start:start+n], a table of whitespace-separated
 * numbers whose lines end in '\n'. buf[start+n] must be '\0' (Python's bytes
 * objects always end so), which stops every scan without a bounds check. Up
 * to cap values are written to out. *rows receives the number of lines
 * holding at least one number; *bad_line the index (0-based, counting every
 * line from start) of the first such line whose count of numbers is not ncols
 * (-1 when all have ncols, or ncols <= 0); *nonfinite the index of the first
 * value that is nan or infinite (-1: none; only strtod's tokens can be).
 * Returns the number of numbers found (which may exceed cap: the caller
 * checks it), or -(1 + offset) where offset (from buf) is the first byte of a
 * token that is not a number. */
long bige_parse_table(const char *buf, long start, long n, long ncols, double *out, long cap,
                      long *rows, long *bad_line, long *nonfinite) {
    const char *p = buf + start, *end = buf + start + n;
    long count = 0, line = 0, line_start = 0, n_rows = 0, bad = -1, first_nonfinite = -1;
#ifdef BIGE_SIMD
    const char *simd_last = n >= 15 ? end - 15 : NULL;  /* NULL: no token has a whole window */
#endif
    while (1) {
        while (is_space(*p)) {
            if (*p == '\n') {
                long in_line = count - line_start;  /* numbers on this line */
                if (in_line) {
                    n_rows++;
                    if (ncols > 0 && in_line != ncols && bad < 0) bad = line;
                }
                line_start = count;
                line++;
            }
            p++;
        }
        double value;
#ifdef BIGE_SIMD
        /* the 16-byte window must stay inside the buffer, its final '\0' included */
        if (p <= simd_last && parse_short(p, &value, &p)) {
        } else
#endif
        {
            if (p >= end) break;
            const char *tok_end;
            double slow;
            if (!parse_token(p, end, &slow, &tok_end)) return -(1 + (long)(p - buf));
            p = tok_end;
            value = slow;
            if (first_nonfinite < 0 && !isfinite(value)) first_nonfinite = count;
        }
        if (count < cap) out[count] = value;
        count++;
    }
    long in_line = count - line_start;
    if (in_line) {
        n_rows++;
        if (ncols > 0 && in_line != ncols && bad < 0) bad = line;
    }
    *rows = n_rows;
    *bad_line = bad;
    *nonfinite = first_nonfinite;
    return count;
}
