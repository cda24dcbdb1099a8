/*  =========================================================================
    lh_keys - the storage key rules (SPEC 5.1)

    A key is refused if it is empty, longer than 1024 bytes, holds a NUL,
    is not valid UTF-8, starts with '/', has a '..' path component, or
    holds CR, LF or TAB. Each refusal names its rule.
    =========================================================================
*/

#include "lh_store.h"

//  --------------------------------------------------------------------------
//  Length of the valid UTF-8 sequence at text (left bytes available), or 0
//  if it is not one: overlong forms, surrogates and code points past
//  U+10FFFF are invalid.

static size_t
s_utf8_sequence (const uint8_t *text, size_t left)
{
    uint8_t c = text [0];
    if (c < 0x80)
        return 1;
    size_t size;
    uint32_t point;
    if (c >= 0xC2 && c <= 0xDF) {
        size = 2;
        point = c & 0x1F;
    }
    else
    if (c >= 0xE0 && c <= 0xEF) {
        size = 3;
        point = c & 0x0F;
    }
    else
    if (c >= 0xF0 && c <= 0xF4) {
        size = 4;
        point = c & 0x07;
    }
    else
        return 0;
    if (left < size)
        return 0;
    for (size_t index = 1; index < size; index++) {
        if ((text [index] & 0xC0) != 0x80)
            return 0;
        point = (point << 6) | (text [index] & 0x3F);
    }
    if ((size == 3 && point < 0x800)
    ||  (size == 4 && point < 0x10000)
    ||  (point >= 0xD800 && point <= 0xDFFF)
    ||  point > 0x10FFFF)
        return 0;
    return size;
}


//  --------------------------------------------------------------------------
//  Check a key against the rules; see lh_store.h

int
lh_store_key_check (const char *key, size_t size, const char **reason)
{
    assert (reason);
    if (!key || size == 0) {
        *reason = "key is empty";
        return -1;
    }
    if (size > LH_STORE_KEY_MAX) {
        *reason = "key is longer than 1024 bytes";
        return -1;
    }
    const uint8_t *text = (const uint8_t *) key;
    if (memchr (text, 0, size)) {
        *reason = "key contains a NUL byte";
        return -1;
    }
    for (size_t index = 0; index < size; ) {
        size_t step = s_utf8_sequence (text + index, size - index);
        if (step == 0) {
            *reason = "key is not valid UTF-8";
            return -1;
        }
        index += step;
    }
    if (text [0] == '/') {
        *reason = "key starts with '/'";
        return -1;
    }
    for (size_t index = 0; index < size; index++) {
        if (text [index] == '\r' || text [index] == '\n' || text [index] == '\t') {
            *reason = "key contains CR, LF or TAB";
            return -1;
        }
    }
    //  Components are separated by '/'; '..' alone is refused
    size_t start = 0;
    for (size_t index = 0; index <= size; index++) {
        if (index == size || text [index] == '/') {
            if (index - start == 2 && text [start] == '.' && text [start + 1] == '.') {
                *reason = "key contains a '..' path component";
                return -1;
            }
            start = index + 1;
        }
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Self test: one example key per rule, and keys that pass

void
lh_store_keys_test (bool verbose)
{
    printf (" * lh_store_keys: ");
    char long_key [LH_STORE_KEY_MAX + 2];
    memset (long_key, 'a', sizeof (long_key));
    long_key [LH_STORE_KEY_MAX + 1] = 0;

    struct {
        const char *key;
        size_t size;
        const char *rule;               //  substring of the reason, NULL = ok
    } cases [] = {
        { "", 0, "empty" },
        { long_key, LH_STORE_KEY_MAX + 1, "longer than 1024" },
        { long_key, LH_STORE_KEY_MAX, NULL },
        { "a\0b", 3, "NUL" },
        { "bad\xff", 4, "UTF-8" },
        { "over\xc0\xaflong", 10, "UTF-8" },
        { "surrogate\xed\xa0\x80", 12, "UTF-8" },
        { "cut\xe2\x82", 5, "UTF-8" },
        { "/abs", 4, "starts with '/'" },
        { "..", 2, "'..'" },
        { "a/../b", 6, "'..'" },
        { "a/..", 4, "'..'" },
        { "../a", 4, "'..'" },
        { "a\rb", 3, "CR, LF or TAB" },
        { "a\nb", 3, "CR, LF or TAB" },
        { "a\tb", 3, "CR, LF or TAB" },
        { "a/b/c.csv", 9, NULL },
        { "a/..b/c", 7, NULL },
        { "a/b../c", 7, NULL },
        { "with space+plus", 15, NULL },
        { "caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x98\x80", 14, NULL },
        { "_vectors/x", 10, NULL },
        { "a//b/", 5, NULL },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++) {
        const char *reason = NULL;
        int rc = lh_store_key_check (cases [index].key, cases [index].size, &reason);
        if (verbose)
            printf ("\n   case %zu: rc=%d %s", index, rc, reason? reason: "ok");
        if (cases [index].rule) {
            assert (rc == -1);
            assert (strstr (reason, cases [index].rule));
        }
        else
            assert (rc == 0);
    }
    printf ("OK\n");
}
