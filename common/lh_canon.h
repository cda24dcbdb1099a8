/*  =========================================================================
    lh_canon - canonical JSON text: the same value gives the same bytes

    One writer for every place that hashes or stores JSON byte for byte
    (distilld's evidence, receipts and exports; docs/distilld.md
    "Canonical JSON" is the reference):

    - no whitespace anywhere;
    - object members sorted by key, comparing the keys' UTF-8 bytes as
      unsigned bytes (a key that is a prefix of another sorts first);
    - strings: `"` and `\` escaped, the controls \b \f \n \r \t by their
      short escape, other bytes below 0x20 as \u00xx (lowercase hex);
      everything else, DEL and non-ASCII UTF-8 included, written as is
      (never \u escaped); `/` is not escaped;
    - integers (jansson's int64) as exact decimal with `-` when negative;
    - reals as RFC 8785 / ECMAScript Number.prototype.toString: the
      shortest digits that read back to the same double, fixed notation
      for decimal exponents -6..20 (1.0 is `1`, 0.5 is `0.5`, 1e-7 is
      `1e-7`, 1e21 is `1e+21`), -0 is `0`; except that an integral real
      of 19 digits or more is in exponent form (1e20 is `1e+20`), so
      that a parser reading digits-only numbers as int64 reads it back;
    - true, false, null as literals.

    This is RFC 8785 (JCS) except that keys are ordered by UTF-8 bytes
    rather than UTF-16 code units (they differ only between U+E000..U+FFFF
    and characters beyond U+FFFF), that integers beyond 2^53 stay exact,
    and the exponent form of integral reals of 19 digits or more.

        char *text = lh_canon_text (value, &size);
        char hash [65];
        lh_canon_sha256_hex (value, hash);
        free (text);
    =========================================================================
*/

#ifndef LH_CANON_H_INCLUDED
#define LH_CANON_H_INCLUDED

#include <czmq.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LH_CANON_DEPTH_MAX  128         //  deepest nesting written

//  The canonical text of value, NUL-terminated (caller frees), its length
//  in *size_p when size_p is not NULL. NULL when the value nests deeper
//  than LH_CANON_DEPTH_MAX or holds a real with no JSON form.
char *
    lh_canon_text (const json_t *value, size_t *size_p);

//  The SHA-256 of the canonical text, as 64 lowercase hex characters and
//  a NUL in hex. Returns 0, or -1 when lh_canon_text would give NULL.
int
    lh_canon_sha256_hex (const json_t *value, char *hex);

//  The SHA-256 of size bytes as 64 lowercase hex characters and a NUL
void
    lh_canon_sha256_bytes (const void *data, size_t size, char *hex);

//  Write a real as the canonical writer does into buffer (at least 32
//  bytes). Returns its length, or -1 for NaN and the infinities.
int
    lh_canon_real (double value, char *buffer, size_t size);

//  Self test of this class
void
    lh_canon_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
