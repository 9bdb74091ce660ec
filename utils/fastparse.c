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
 */
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

/* Parse the numbers of buf[start:start+n], a table of whitespace-separated
 * numbers whose lines end in '\n'. buf[start+n] must be '\0' (Python's bytes
 * objects always end so), which stops every scan without a bounds check. Up to cap values are written to out.
 * *rows receives the number of lines holding at least one number; *bad_line
 * the index (0-based, counting every line from start) of the first such line
 * whose count of numbers is not ncols (-1 when all have ncols, or ncols <= 0).
 * Returns the number of numbers found (which may exceed cap: the caller
 * checks it), or -(1 + offset) where offset (from buf) is the first byte of a
 * token that is not a number. */
long bige_parse_table(const char *buf, long start, long n, long ncols, double *out, long cap,
                      long *rows, long *bad_line) {
    const char *p = buf + start, *end = buf + start + n;
    long count = 0, line = 0, in_line = 0;
    *rows = 0;
    *bad_line = -1;
    while (1) {
        while (p < end && is_space(*p)) {
            if (*p == '\n') {
                if (in_line) {
                    (*rows)++;
                    if (ncols > 0 && in_line != ncols && *bad_line < 0) *bad_line = line;
                }
                in_line = 0;
                line++;
            }
            p++;
        }
        if (p >= end) break;
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
            while (end - p >= 8 && significant <= 11 && eight_digits(load8(p))) {
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
        const char *tok_end = p;
        while (*tok_end && !is_space(*tok_end)) tok_end++;
        double value;
        if (ok && tok_end == p && !dropped && mantissa < ((uint64_t)1 << 53) && exp10 >= -22 && exp10 <= 22) {
            value = (double)mantissa;
            value = exp10 < 0 ? value / POW10[-exp10] : value * POW10[exp10];
            if (negative) value = -value;
        } else if (!slow_parse(tok, tok_end, &value)) {
            return -(1 + (long)(tok - buf));
        }
        if (count < cap) out[count] = value;
        count++;
        in_line++;
        p = tok_end;
    }
    if (in_line) {
        (*rows)++;
        if (ncols > 0 && in_line != ncols && *bad_line < 0) *bad_line = line;
    }
    return count;
}
