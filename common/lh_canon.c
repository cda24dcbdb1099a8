/*  =========================================================================
    lh_canon - canonical JSON text; see lh_canon.h for the rules
    =========================================================================
*/

#include "lh_canon.h"
#include <sodium.h>

//  A growing output buffer
typedef struct {
    char *data;                         //  bytes written so far
    size_t size;                        //  how many
    size_t max;                         //  allocated
} s_out_t;

//  One member of an object, for sorting
typedef struct {
    const char *key;                    //  key bytes (borrowed)
    size_t key_size;                    //  their length
    json_t *value;                      //  member value (borrowed)
} s_member_t;


//  --------------------------------------------------------------------------
//  Append bytes to the buffer

static void
s_out_put (s_out_t *self, const char *data, size_t size)
{
    if (self->size + size + 1 > self->max) {
        size_t max = self->max? self->max * 2: 256;
        while (max < self->size + size + 1)
            max *= 2;
        self->data = (char *) realloc (self->data, max);
        assert (self->data);
        self->max = max;
    }
    memcpy (self->data + self->size, data, size);
    self->size += size;
    self->data [self->size] = 0;
}


//  --------------------------------------------------------------------------
//  Append a string with the canonical escapes

static void
s_out_string (s_out_t *self, const char *text, size_t size)
{
    s_out_put (self, "\"", 1);
    size_t start = 0;
    for (size_t index = 0; index < size; index++) {
        unsigned char c = (unsigned char) text [index];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        s_out_put (self, text + start, index - start);
        char escape [8];
        switch (c) {
            case '"':  s_out_put (self, "\\\"", 2); break;
            case '\\': s_out_put (self, "\\\\", 2); break;
            case '\b': s_out_put (self, "\\b", 2); break;
            case '\f': s_out_put (self, "\\f", 2); break;
            case '\n': s_out_put (self, "\\n", 2); break;
            case '\r': s_out_put (self, "\\r", 2); break;
            case '\t': s_out_put (self, "\\t", 2); break;
            default:
                snprintf (escape, sizeof (escape), "\\u%04x", c);
                s_out_put (self, escape, 6);
        }
        start = index + 1;
    }
    s_out_put (self, text + start, size - start);
    s_out_put (self, "\"", 1);
}


//  --------------------------------------------------------------------------
//  Order members by key bytes

static int
s_member_compare (const void *one, const void *two)
{
    const s_member_t *a = (const s_member_t *) one;
    const s_member_t *b = (const s_member_t *) two;
    size_t common = a->key_size < b->key_size? a->key_size: b->key_size;
    int rc = memcmp (a->key, b->key, common);
    if (rc)
        return rc;
    return a->key_size < b->key_size? -1: a->key_size > b->key_size? 1: 0;
}


//  --------------------------------------------------------------------------
//  Write a real as RFC 8785 does; returns its length or -1

int
lh_canon_real (double value, char *buffer, size_t size)
{
    assert (buffer && size >= 32);
    if (isnan (value) || isinf (value))
        return -1;
    if (value == 0)
        return snprintf (buffer, size, "0");
    //  The shortest digits that read back to the same double
    char text [40];
    int precision;
    for (precision = 1; precision <= 17; precision++) {
        snprintf (text, sizeof (text), "%.*e", precision - 1, value);
        if (strtod (text, NULL) == value)
            break;
    }
    if (precision > 17)
        precision = 17;
    //  text is [-]D[.DDD]e[+-]XX: collect the digits and the exponent
    const char *scan = text;
    bool negative = *scan == '-';
    if (negative)
        scan++;
    char digits [24];
    int count = 0;
    while (*scan && *scan != 'e') {
        if (isdigit ((unsigned char) *scan))
            digits [count++] = *scan;
        scan++;
    }
    while (count > 1 && digits [count - 1] == '0')
        count--;
    digits [count] = 0;
    int exponent = atoi (scan + 1);
    int point = exponent + 1;           //  n in ECMAScript's algorithm
    char *out = buffer;
    char *end = buffer + size;
    if (negative)
        *out++ = '-';
    if (count <= point && point <= 18) {
        //  Integral: at most 18 digits, which any int64 parser reads back
        out += snprintf (out, end - out, "%s", digits);
        for (int index = count; index < point; index++)
            *out++ = '0';
    }
    else
    if (0 < point && point < count && point <= 21)
        out += snprintf (out, end - out, "%.*s.%s", point, digits, digits + point);
    else
    if (-6 < point && point <= 0) {
        out += snprintf (out, end - out, "0.");
        for (int index = 0; index < -point; index++)
            *out++ = '0';
        out += snprintf (out, end - out, "%s", digits);
    }
    else {
        *out++ = digits [0];
        if (count > 1)
            out += snprintf (out, end - out, ".%s", digits + 1);
        out += snprintf (out, end - out, "e%c%d", point - 1 < 0? '-': '+', abs (point - 1));
    }
    *out = 0;
    return (int) (out - buffer);
}


//  --------------------------------------------------------------------------
//  Append one value; returns 0, or -1 (too deep, no JSON form)

static int
s_out_value (s_out_t *self, const json_t *value, int depth)
{
    if (depth > LH_CANON_DEPTH_MAX)
        return -1;
    char number [40];
    switch (json_typeof (value)) {
        case JSON_NULL:
            s_out_put (self, "null", 4);
            return 0;
        case JSON_TRUE:
            s_out_put (self, "true", 4);
            return 0;
        case JSON_FALSE:
            s_out_put (self, "false", 5);
            return 0;
        case JSON_INTEGER:
            s_out_put (self, number, snprintf (number, sizeof (number), "%" JSON_INTEGER_FORMAT,
                                               json_integer_value (value)));
            return 0;
        case JSON_REAL: {
            int size = lh_canon_real (json_real_value (value), number, sizeof (number));
            if (size < 0)
                return -1;
            s_out_put (self, number, size);
            return 0;
        }
        case JSON_STRING:
            s_out_string (self, json_string_value (value), json_string_length (value));
            return 0;
        case JSON_ARRAY: {
            s_out_put (self, "[", 1);
            for (size_t index = 0; index < json_array_size (value); index++) {
                if (index)
                    s_out_put (self, ",", 1);
                if (s_out_value (self, json_array_get (value, index), depth + 1))
                    return -1;
            }
            s_out_put (self, "]", 1);
            return 0;
        }
        case JSON_OBJECT: {
            size_t count = json_object_size (value);
            s_member_t *members = count? (s_member_t *) malloc (count * sizeof (s_member_t)): NULL;
            assert (members || !count);
            size_t used = 0;
            for (void *iter = json_object_iter ((json_t *) value); iter && used < count;
                 iter = json_object_iter_next ((json_t *) value, iter)) {
                members [used].key = json_object_iter_key (iter);
                members [used].key_size = json_object_iter_key_len (iter);
                members [used].value = json_object_iter_value (iter);
                used++;
            }
            if (used)
                qsort (members, used, sizeof (s_member_t), s_member_compare);
            s_out_put (self, "{", 1);
            int rc = 0;
            for (size_t index = 0; index < used && rc == 0; index++) {
                if (index)
                    s_out_put (self, ",", 1);
                s_out_string (self, members [index].key, members [index].key_size);
                s_out_put (self, ":", 1);
                rc = s_out_value (self, members [index].value, depth + 1);
            }
            free (members);
            s_out_put (self, "}", 1);
            return rc;
        }
    }
    return -1;
}


//  --------------------------------------------------------------------------
//  The canonical text of a value (caller frees), or NULL

char *
lh_canon_text (const json_t *value, size_t *size_p)
{
    assert (value);
    s_out_t out = { NULL, 0, 0 };
    if (s_out_value (&out, value, 1)) {
        free (out.data);
        return NULL;
    }
    if (size_p)
        *size_p = out.size;
    return out.data;
}


//  --------------------------------------------------------------------------
//  SHA-256 of bytes, as lowercase hex

void
lh_canon_sha256_bytes (const void *data, size_t size, char *hex)
{
    uint8_t digest [crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (digest, (const uint8_t *) data, size);
    for (size_t index = 0; index < sizeof (digest); index++)
        snprintf (hex + index * 2, 3, "%02x", digest [index]);
}


//  --------------------------------------------------------------------------
//  SHA-256 of the canonical text of a value

int
lh_canon_sha256_hex (const json_t *value, char *hex)
{
    size_t size;
    char *text = lh_canon_text (value, &size);
    if (!text)
        return -1;
    lh_canon_sha256_bytes (text, size, hex);
    free (text);
    return 0;
}


//  --------------------------------------------------------------------------
//  Self test of this class

void
lh_canon_test (bool verbose)
{
    printf (" * lh_canon: ");

    //  Input text -> canonical text
    struct {
        const char *in;
        const char *out;
    } cases [] = {
        { "{\"b\": 1, \"a\": [true, false, null], \"A\": {}}", "{\"A\":{},\"a\":[true,false,null],\"b\":1}" },
        { "{\"ab\": 1, \"a\": 2, \"\": 3}", "{\"\":3,\"a\":2,\"ab\":1}" },
        { "{\"z\": {\"y\": 1, \"x\": [ {\"d\": 4, \"c\": 3} ]}}", "{\"z\":{\"x\":[{\"c\":3,\"d\":4}],\"y\":1}}" },
        { "[1, -1, 0, 9223372036854775807, -9223372036854775808]",
          "[1,-1,0,9223372036854775807,-9223372036854775808]" },
        { "[1.0, -0.0, 0.5, 0.1, 100.0, 1e21, 1e20, 1e-6, 1e-7, 123.456, -2.5e-10, 1.7976931348623157e308]",
          "[1,0,0.5,0.1,100,1e+21,1e+20,0.000001,1e-7,123.456,-2.5e-10,1.7976931348623157e+308]" },
        { "[0.30000000000000004, 5e-324, 4.35, 0.000123, 123456789012345678.0, 1234567890123456789.0, 12.5e17]",
          "[0.30000000000000004,5e-324,4.35,0.000123,123456789012345680,1.2345678901234568e+18,1.25e+18]" },
        { "\"q\\\" b\\\\ s/ \\b\\f\\n\\r\\t \\u0001\\u001f \\u007f\"",
          "\"q\\\" b\\\\ s/ \\b\\f\\n\\r\\t \\u0001\\u001f \x7f\"" },
        { "\"caf\\u00e9 \\u20ac \\ud83d\\ude00\"", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"" },
        { "{\"\\u00e9\": 1, \"z\": 2, \"\\ud83d\\ude00\": 3, \"\\uffff\": 4}",
          "{\"z\":2,\"\xc3\xa9\":1,\"\xef\xbf\xbf\":4,\"\xf0\x9f\x98\x80\":3}" },
        { "\"a\\u0000b\"", "\"a\\u0000b\"" },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++) {
        json_error_t error;
        json_t *value = json_loads (cases [index].in, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
        assert (value);
        size_t size;
        char *text = lh_canon_text (value, &size);
        if (verbose)
            printf ("\n    %s -> %s", cases [index].in, text);
        if (!text || !streq (text, cases [index].out)) {
            fprintf (stderr, "case %zu: %s\n  got  %s\n  want %s\n", index, cases [index].in,
                     text? text: "(null)", cases [index].out);
            assert (false);
        }
        assert (size == strlen (cases [index].out));
        //  Canonical text is a fixed point
        json_t *again = json_loadb (text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
        if (!again)
            fprintf (stderr, "case %zu: %s: %s\n", index, text, error.text);
        assert (again);
        char *twice = lh_canon_text (again, NULL);
        assert (twice && memcmp (twice, text, size) == 0);
        free (twice);
        json_decref (again);
        free (text);
        json_decref (value);
    }
    //  Key order in the input does not change the bytes or the hash
    json_t *one = json_loads ("{\"x\": 1, \"y\": {\"b\": 2, \"a\": 1}}", 0, NULL);
    json_t *two = json_loads ("{\"y\": {\"a\": 1, \"b\": 2}, \"x\": 1}", 0, NULL);
    char hash_one [65], hash_two [65];
    assert (lh_canon_sha256_hex (one, hash_one) == 0);
    assert (lh_canon_sha256_hex (two, hash_two) == 0);
    assert (streq (hash_one, hash_two) && strlen (hash_one) == 64);
    json_decref (one);
    json_decref (two);
    //  Known vector: SHA-256 of "{}"
    json_t *empty = json_object ();
    assert (lh_canon_sha256_hex (empty, hash_one) == 0);
    assert (streq (hash_one, "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"));
    json_decref (empty);
    //  Too deep: refused, not crashed
    json_t *deep = json_array ();
    json_t *inner = deep;
    for (int level = 0; level < LH_CANON_DEPTH_MAX + 5; level++) {
        json_t *next = json_array ();
        json_array_append_new (inner, next);
        inner = next;
    }
    assert (lh_canon_text (deep, NULL) == NULL);
    assert (lh_canon_sha256_hex (deep, hash_one) == -1);
    json_decref (deep);
    char number [32];
    assert (lh_canon_real (NAN, number, sizeof (number)) == -1);
    assert (lh_canon_real (INFINITY, number, sizeof (number)) == -1);
    assert (lh_canon_real (-1.5, number, sizeof (number)) == 4 && streq (number, "-1.5"));
    printf ("OK\n");
}
