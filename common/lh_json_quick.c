/*  =========================================================================
    lh_json_quick - the quick JSON <-> msgpack paths, for the common case

    JSON text straight to msgpack, and msgpack straight to JSON text,
    without jansson values (no allocation per value, no loop-check table
    per container). They handle the common subset and decline everything
    else: a \u escape, a key "$base64", a duplicate key, an integer of more
    than 18 digits, a real that does not parse exactly, a limit reached,
    malformed input. The caller then takes the general (jansson) path of
    lh_json.c, which gives the same result or the error with its line and
    column. Whatever a quick path accepts it renders exactly as the general
    path does; lh_json_quick_compare checks that, in the selftest below and
    in the fuzz_json target.
    =========================================================================
*/

#include "lh_json.h"
#include "lh_json_internal.h"

#define S_QUICK_COUNTS  64              //  containers counted without malloc
#define S_QUICK_KEYS    64              //  keys per object checked for twins

//  A JSON text being scanned (packer NULL) or packed (packer set)
typedef struct {
    const char *text;                   //  the JSON text
    size_t size;                        //  its size in bytes
    size_t offset;                      //  the next byte to read
    const lh_limits_t *limits;          //  bounds
    size_t max_depth;                   //  nesting allowed
    size_t elements;                    //  values and keys so far
    uint32_t *counts;                   //  members of each container, as opened
    size_t count_room;                  //  room in counts
    size_t containers;                  //  containers opened so far
    msgpack_packer *packer;             //  NULL while scanning
    uint32_t inline_counts [S_QUICK_COUNTS];
} s_quick_t;

static int
    s_quick_value (s_quick_t *quick, size_t depth);

//  Skip JSON whitespace
static void
s_quick_space (s_quick_t *quick)
{
    while (quick->offset < quick->size) {
        char c = quick->text [quick->offset];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        quick->offset++;
    }
}

//  Count one value or key against max_elements; 0 or -1
static int
s_quick_count (s_quick_t *quick)
{
    return ++quick->elements > quick->limits->max_elements? -1: 0;
}

//  Value of a short escape (\n and the like), or -1 for \u and others
static int
s_quick_escape (char c)
{
    switch (c) {
        case '"':  return '"';
        case '\\': return '\\';
        case '/':  return '/';
        case 'b':  return '\b';
        case 'f':  return '\f';
        case 'n':  return '\n';
        case 'r':  return '\r';
        case 't':  return '\t';
        default:   return -1;
    }
}

//  Read a string at the current '"'. Sets *raw_p and *raw_size_p to what
//  lies between the quotes, *size_p to its decoded size and *escaped_p if
//  it holds escapes. Packs it when packing. Returns 0 or -1.
static int
s_quick_string (s_quick_t *quick, const char **raw_p, size_t *raw_size_p,
                size_t *size_p, bool *escaped_p)
{
    const char *raw = quick->text + quick->offset + 1;
    const char *end = quick->text + quick->size;
    const char *scan = raw;
    size_t escapes = 0;
    while (scan < end && *scan != '"') {
        unsigned char c = (unsigned char) *scan;
        if (c < 0x20)
            return -1;                  //  control character: jansson's error
        if (c == '\\') {
            if (scan + 1 >= end || s_quick_escape (scan [1]) < 0)
                return -1;              //  \u, or a bad escape
            escapes++;
            scan += 2;
        }
        else
            scan++;
    }
    if (scan >= end)
        return -1;                      //  no closing quote
    size_t raw_size = (size_t) (scan - raw);
    size_t size = raw_size - escapes;
    if (size > quick->limits->max_string
    ||  lh_json_utf8_invalid_at ((const uint8_t *) raw, raw_size) < raw_size)
        return -1;
    if (quick->packer) {
        msgpack_pack_str (quick->packer, size);
        const char *run = raw;
        for (const char *at = raw; at < scan; at++) {
            if (*at != '\\')
                continue;
            if (at > run)
                msgpack_pack_str_body (quick->packer, run, (size_t) (at - run));
            char decoded = (char) s_quick_escape (at [1]);
            msgpack_pack_str_body (quick->packer, &decoded, 1);
            at++;
            run = at + 1;
        }
        if (scan > run)
            msgpack_pack_str_body (quick->packer, run, (size_t) (scan - run));
    }
    quick->offset = (size_t) (scan - quick->text) + 1;
    *raw_p = raw;
    *raw_size_p = raw_size;
    *size_p = size;
    *escaped_p = escapes > 0;
    return 0;
}

//  Read a number: an integer of up to 18 digits, or a real that strtod
//  reads whole and finite. Returns 0 or -1.
static int
s_quick_number (s_quick_t *quick)
{
    const char *start = quick->text + quick->offset;
    const char *end = quick->text + quick->size;
    const char *at = start;
    bool negative = *at == '-';
    if (negative)
        at++;
    const char *digits = at;
    if (at < end && *at == '0')
        at++;
    else
        while (at < end && *at >= '0' && *at <= '9')
            at++;
    size_t digit_count = (size_t) (at - digits);
    if (digit_count == 0)
        return -1;
    bool real = false;
    if (at < end && *at == '.') {
        real = true;
        const char *fraction = ++at;
        while (at < end && *at >= '0' && *at <= '9')
            at++;
        if (at == fraction)
            return -1;
    }
    if (at < end && (*at == 'e' || *at == 'E')) {
        real = true;
        at++;
        if (at < end && (*at == '+' || *at == '-'))
            at++;
        const char *exponent = at;
        while (at < end && *at >= '0' && *at <= '9')
            at++;
        if (at == exponent)
            return -1;
    }
    if (real) {
        char buffer [64];
        size_t length = (size_t) (at - start);
        if (length >= sizeof (buffer))
            return -1;
        memcpy (buffer, start, length);
        buffer [length] = 0;
        char *stop = NULL;
        double value = strtod (buffer, &stop);
        if (stop != buffer + length || !isfinite (value))
            return -1;                  //  another locale, or overflow
        if (quick->packer)
            msgpack_pack_double (quick->packer, value);
    }
    else {
        if (digit_count > 18)
            return -1;                  //  may not fit: jansson decides
        int64_t value = 0;
        for (const char *digit = digits; digit < at; digit++)
            value = value * 10 + (*digit - '0');
        if (quick->packer)
            msgpack_pack_int64 (quick->packer, negative? -value: value);
    }
    quick->offset = (size_t) (at - quick->text);
    return 0;
}

//  Read null, true or false. Returns 0 or -1.
static int
s_quick_literal (s_quick_t *quick, const char *word, size_t size)
{
    if (quick->size - quick->offset < size
    ||  memcmp (quick->text + quick->offset, word, size) != 0)
        return -1;
    quick->offset += size;
    //  jansson reads a whole identifier: "nullx" is one bad token
    if (quick->offset < quick->size && isalpha ((unsigned char) quick->text [quick->offset]))
        return -1;
    if (quick->packer) {
        if (*word == 'n')
            msgpack_pack_nil (quick->packer);
        else
        if (*word == 't')
            msgpack_pack_true (quick->packer);
        else
            msgpack_pack_false (quick->packer);
    }
    return 0;
}

//  Open a container: check its depth, give it a slot for its member count
//  and, when packing, return that count in *count_p. Returns the slot or -1.
static ssize_t
s_quick_open (s_quick_t *quick, size_t depth, uint32_t *count_p)
{
    if (depth >= quick->max_depth)
        return -1;
    if (quick->containers == quick->count_room) {
        size_t room = quick->count_room * 2;
        uint32_t *counts;
        if (quick->counts == quick->inline_counts) {
            counts = (uint32_t *) malloc (room * sizeof (uint32_t));
            if (counts)
                memcpy (counts, quick->counts, quick->count_room * sizeof (uint32_t));
        }
        else
            counts = (uint32_t *) realloc (quick->counts, room * sizeof (uint32_t));
        assert (counts);
        quick->counts = counts;
        quick->count_room = room;
    }
    size_t slot = quick->containers++;
    *count_p = quick->packer? quick->counts [slot]: 0;
    quick->offset++;                    //  past '[' or '{'
    s_quick_space (quick);
    return (ssize_t) slot;
}

//  Keys of the object being read, to find a repeated one
typedef struct {
    const char *key;
    size_t size;
} s_quick_key_t;

//  Read an object member's key and the ':' after it. Keys must be plain
//  (no escapes), not "$base64", and not repeated. Returns 0 or -1.
static int
s_quick_key (s_quick_t *quick, s_quick_key_t *keys, uint32_t count)
{
    if (quick->offset >= quick->size || quick->text [quick->offset] != '"'
    ||  s_quick_count (quick))
        return -1;
    const char *key;
    size_t raw_size, size;
    bool escaped;
    if (s_quick_string (quick, &key, &raw_size, &size, &escaped) || escaped)
        return -1;
    if (!quick->packer) {
        if (count == S_QUICK_KEYS
        ||  (size == 7 && memcmp (key, "$base64", 7) == 0))
            return -1;
        for (uint32_t index = 0; index < count; index++)
            if (keys [index].size == size && memcmp (keys [index].key, key, size) == 0)
                return -1;
        keys [count].key = key;
        keys [count].size = size;
    }
    s_quick_space (quick);
    if (quick->offset >= quick->size || quick->text [quick->offset] != ':')
        return -1;
    quick->offset++;
    s_quick_space (quick);
    return 0;
}

//  Read an array at the current '[' or an object at the current '{'.
//  Returns 0 or -1.
static int
s_quick_container (s_quick_t *quick, size_t depth)
{
    bool object = quick->text [quick->offset] == '{';
    char close = object? '}': ']';
    uint32_t count;
    ssize_t slot = s_quick_open (quick, depth, &count);
    if (slot < 0)
        return -1;
    if (quick->packer) {
        if (object)
            msgpack_pack_map (quick->packer, count);
        else
            msgpack_pack_array (quick->packer, count);
    }
    s_quick_key_t keys [S_QUICK_KEYS];
    count = 0;
    if (quick->offset < quick->size && quick->text [quick->offset] == close)
        quick->offset++;
    else
        while (true) {
            if (object && s_quick_key (quick, keys, count))
                return -1;
            if (s_quick_value (quick, depth + 1))
                return -1;
            count++;
            s_quick_space (quick);
            if (quick->offset >= quick->size)
                return -1;
            char c = quick->text [quick->offset++];
            if (c == close)
                break;
            if (c != ',')
                return -1;
            s_quick_space (quick);
        }
    quick->counts [slot] = count;
    return 0;
}

//  Read one value at the current offset (whitespace skipped). 0 or -1.
static int
s_quick_value (s_quick_t *quick, size_t depth)
{
    if (quick->offset >= quick->size || s_quick_count (quick))
        return -1;
    const char *raw;
    size_t raw_size, size;
    bool escaped;
    switch (quick->text [quick->offset]) {
        case '{':
        case '[': return s_quick_container (quick, depth);
        case '"': return s_quick_string (quick, &raw, &raw_size, &size, &escaped);
        case 'n': return s_quick_literal (quick, "null", 4);
        case 't': return s_quick_literal (quick, "true", 4);
        case 'f': return s_quick_literal (quick, "false", 5);
        default:  return s_quick_number (quick);
    }
}

//  One pass over the whole text: a value, then only whitespace
static int
s_quick_pass (s_quick_t *quick)
{
    quick->offset = 0;
    quick->elements = 0;
    quick->containers = 0;
    s_quick_space (quick);
    if (s_quick_value (quick, 0))
        return -1;
    s_quick_space (quick);
    return quick->offset == quick->size? 0: -1;
}


//  --------------------------------------------------------------------------
//  Pack JSON text into a pack buffer by the quick path. Returns 0, or -1
//  if the text is outside the quick subset (the pack is then untouched:
//  take lh_json_to_pack after jansson, which packs it or names the error).

int
lh_json_quick_pack (const char *text, size_t size, lh_pack_t *pack,
                    const lh_limits_t *limits)
{
    assert (text || size == 0);
    assert (pack);
    s_quick_t quick;
    quick.text = text;
    quick.size = size;
    quick.limits = limits? limits: &lh_limits_default;
    quick.max_depth = lh_json_max_depth (quick.limits);
    quick.counts = quick.inline_counts;
    quick.count_room = S_QUICK_COUNTS;
    quick.packer = NULL;
    //  First pass: check everything and count each container's members;
    //  second pass: pack, with every header's count known
    int rc = size > 0? s_quick_pass (&quick): -1;
    if (rc == 0) {
        quick.packer = lh_pack_packer (pack);
        rc = s_quick_pass (&quick);
        assert (rc == 0);
    }
    if (quick.counts != quick.inline_counts)
        free (quick.counts);
    return rc;
}


//  JSON text being written by the quick path
typedef struct {
    char *data;                         //  the text, NUL-terminated at the end
    size_t used;                        //  bytes written
    size_t room;                        //  bytes allocated
    const lh_limits_t *limits;          //  bounds
    size_t max_depth;                   //  nesting allowed
    size_t elements;                    //  values and keys so far
} s_writer_t;

//  Make room for size more bytes and return where they go
static char *
s_writer_room (s_writer_t *writer, size_t size)
{
    if (writer->room - writer->used <= size) {
        size_t room = writer->room * 2;
        while (room - writer->used <= size)
            room *= 2;
        writer->data = (char *) realloc (writer->data, room);
        assert (writer->data);
        writer->room = room;
    }
    return writer->data + writer->used;
}

static void
s_writer_put (s_writer_t *writer, const char *data, size_t size)
{
    memcpy (s_writer_room (writer, size), data, size);
    writer->used += size;
}

//  Write an integer in decimal
static void
s_writer_uint (s_writer_t *writer, uint64_t value, bool negative)
{
    char digits [24];
    char *at = digits + sizeof (digits);
    do {
        *--at = (char) ('0' + value % 10);
        value /= 10;
    } while (value);
    if (negative)
        *--at = '-';
    s_writer_put (writer, at, (size_t) (digits + sizeof (digits) - at));
}

//  Write a real as jansson does: %.17g, ".0" when it would read back as an
//  integer, no '+' or leading zeros in the exponent. Returns 0, or -1 if
//  printf wrote anything else (another locale's decimal point).
static int
s_writer_real (s_writer_t *writer, double value)
{
    char buffer [40];
    int length = snprintf (buffer, sizeof (buffer), "%.17g", value);
    if (length <= 0 || (size_t) length >= sizeof (buffer) - 2)
        return -1;
    if (strspn (buffer, "0123456789-+.e") != (size_t) length)
        return -1;
    char *exponent = strchr (buffer, 'e');
    if (!exponent && !strchr (buffer, '.')) {
        memcpy (buffer + length, ".0", 3);
        length += 2;
    }
    if (exponent) {
        char *keep = exponent + 1 + (exponent [1] == '-');
        char *digits = keep + (*keep == '+');
        while (*digits == '0' && digits [1])
            digits++;
        memmove (keep, digits, strlen (digits) + 1);
        length = (int) strlen (buffer);
    }
    s_writer_put (writer, buffer, (size_t) length);
    return 0;
}

//  Write valid UTF-8 as a JSON string, escaped as jansson escapes it
static void
s_writer_string (s_writer_t *writer, const char *text, size_t size)
{
    //  Room for exactly what it becomes (not 6 bytes per byte: a string
    //  may be megabytes)
    size_t room = size + 2;
    for (size_t offset = 0; offset < size; offset++) {
        unsigned char c = (unsigned char) text [offset];
        if (c < 0x20 || c == '"' || c == '\\')
            room += c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t'
                 || c == '"' || c == '\\'? 1: 5;
    }
    char *out = s_writer_room (writer, room);
    char *start = out;
    *out++ = '"';
    for (size_t offset = 0; offset < size; offset++) {
        unsigned char c = (unsigned char) text [offset];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = (char) c;
            continue;
        }
        *out++ = '\\';
        switch (c) {
            case '"':  *out++ = '"'; break;
            case '\\': *out++ = '\\'; break;
            case '\b': *out++ = 'b'; break;
            case '\f': *out++ = 'f'; break;
            case '\n': *out++ = 'n'; break;
            case '\r': *out++ = 'r'; break;
            case '\t': *out++ = 't'; break;
            default:
                memcpy (out, "u00", 3);
                out [3] = "0123456789ABCDEF" [c >> 4];
                out [4] = "0123456789ABCDEF" [c & 15];
                out += 5;
        }
    }
    *out++ = '"';
    writer->used += (size_t) (out - start);
}

//  Write bin or ext as {"$base64": ...} (with "$ext" first for ext)
static void
s_writer_binary (s_writer_t *writer, const char *data, size_t size, bool ext, int8_t type)
{
    if (ext) {
        s_writer_put (writer, "{\"$ext\":", 8);
        s_writer_uint (writer, (uint64_t) (type < 0? -(int) type: type), type < 0);
        s_writer_put (writer, ",\"$base64\":\"", 12);
    }
    else
        s_writer_put (writer, "{\"$base64\":\"", 12);
    char *out = s_writer_room (writer, (size + 2) / 3 * 4 + 2);
    size_t length = lh_json_base64_encode_to ((const uint8_t *) data, size, out);
    memcpy (out + length, "\"}", 2);
    writer->used += length + 2;
}

//  Write one msgpack object and everything under it. Returns 0, or -1 for
//  what the jansson path renders otherwise or refuses: NaN, infinity, a key
//  that is not a valid UTF-8 string, a repeated key, invalid UTF-8, a map of
//  more than S_QUICK_KEYS keys, a limit reached.
static int
s_writer_object (s_writer_t *writer, const msgpack_object *object, size_t depth)
{
    if (++writer->elements > writer->limits->max_elements)
        return -1;
    switch (object->type) {
        case MSGPACK_OBJECT_NIL:
            s_writer_put (writer, "null", 4);
            return 0;
        case MSGPACK_OBJECT_BOOLEAN:
            if (object->via.boolean)
                s_writer_put (writer, "true", 4);
            else
                s_writer_put (writer, "false", 5);
            return 0;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            if (object->via.u64 > INT64_MAX)
                s_writer_put (writer, "\"", 1);
            s_writer_uint (writer, object->via.u64, false);
            if (object->via.u64 > INT64_MAX)
                s_writer_put (writer, "\"", 1);
            return 0;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            s_writer_uint (writer, (uint64_t) 0 - (uint64_t) object->via.i64, true);
            return 0;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            if (!isfinite (object->via.f64))
                return -1;
            return s_writer_real (writer, object->via.f64);
        case MSGPACK_OBJECT_STR:
            if (lh_json_utf8_invalid_at ((const uint8_t *) object->via.str.ptr, object->via.str.size)
                < object->via.str.size)
                return -1;
            s_writer_string (writer, object->via.str.ptr, object->via.str.size);
            return 0;
        case MSGPACK_OBJECT_BIN:
            s_writer_binary (writer, object->via.bin.ptr, object->via.bin.size, false, 0);
            return 0;
        case MSGPACK_OBJECT_EXT:
            s_writer_binary (writer, object->via.ext.ptr, object->via.ext.size,
                             true, object->via.ext.type);
            return 0;
        case MSGPACK_OBJECT_ARRAY:
            if (depth >= writer->max_depth)
                return -1;
            s_writer_put (writer, "[", 1);
            for (uint32_t index = 0; index < object->via.array.size; index++) {
                if (index)
                    s_writer_put (writer, ",", 1);
                if (s_writer_object (writer, &object->via.array.ptr [index], depth + 1))
                    return -1;
            }
            s_writer_put (writer, "]", 1);
            return 0;
        case MSGPACK_OBJECT_MAP: {
            const msgpack_object_kv *pairs = object->via.map.ptr;
            uint32_t count = object->via.map.size;
            if (depth >= writer->max_depth || count > S_QUICK_KEYS)
                return -1;
            s_writer_put (writer, "{", 1);
            for (uint32_t index = 0; index < count; index++) {
                const msgpack_object *key = &pairs [index].key;
                if (++writer->elements > writer->limits->max_elements
                ||  key->type != MSGPACK_OBJECT_STR
                ||  lh_json_utf8_invalid_at ((const uint8_t *) key->via.str.ptr, key->via.str.size)
                    < key->via.str.size)
                    return -1;
                //  jansson keeps one of twins: leave that to it
                for (uint32_t before = 0; before < index; before++) {
                    const msgpack_object *other = &pairs [before].key;
                    if (other->via.str.size == key->via.str.size
                    &&  (key->via.str.size == 0
                         || memcmp (other->via.str.ptr, key->via.str.ptr, key->via.str.size) == 0))
                        return -1;
                }
                if (index)
                    s_writer_put (writer, ",", 1);
                s_writer_string (writer, key->via.str.ptr, key->via.str.size);
                s_writer_put (writer, ":", 1);
                if (s_writer_object (writer, &pairs [index].val, depth + 1))
                    return -1;
            }
            s_writer_put (writer, "}", 1);
            return 0;
        }
        default:
            return -1;
    }
}


//  --------------------------------------------------------------------------
//  Render a msgpack buffer as compact JSON text by the quick path. Returns
//  the text (caller frees), or NULL if the body is outside the quick subset
//  (take lh_json_from_msgpack and json_dumps, which render it or name the
//  error).

char *
lh_json_quick_text (const void *data, size_t size, const lh_limits_t *limits)
{
    lh_limits_t capped = limits? *limits: lh_limits_default;
    capped.max_depth = lh_json_max_depth (&capped);
    //  A small first chunk for a small body: under malloc's large size
    msgpack_zone zone;
    msgpack_zone_init (&zone, size < 256? 768: 4096);
    msgpack_object object;
    char *text = NULL;
    if (lh_msgpack_unpack (data, size, &capped, &zone, &object) == 0) {
        s_writer_t writer = {
            .room = size * 2 + 64,
            .limits = &capped,
            .max_depth = capped.max_depth
        };
        writer.data = (char *) malloc (writer.room);
        assert (writer.data);
        if (s_writer_object (&writer, &object, 0) == 0) {
            *s_writer_room (&writer, 1) = 0;
            text = writer.data;
        }
        else
            free (writer.data);
    }
    msgpack_zone_destroy (&zone);
    return text;
}


//  --------------------------------------------------------------------------
//  Check the quick paths against the general ones on the same bytes, read
//  both as JSON text and as msgpack. Aborts with both results on stderr if
//  a quick path accepts something and renders it differently, or accepts
//  what the general path refuses. Returns how many of the two quick paths
//  accepted (0 to 2). For lh_json_test and the fuzz_json target.

int
lh_json_quick_compare (const void *data, size_t size, const lh_limits_t *limits)
{
    int accepted = 0;
    if (!limits)
        limits = &lh_limits_default;

    //  JSON text to msgpack; the general path as lh_json_text_to_frame takes it
    lh_pack_t *quick = lh_pack_new ();
    if (lh_json_quick_pack ((const char *) data, size, quick, limits) == 0) {
        accepted++;
        char *error = NULL;
        json_t *json = lh_json_parse ((const char *) data, size, limits, &error);
        lh_pack_t *general = lh_pack_new ();
        int rc = json? lh_json_to_pack (json, general, limits, &error): -1;
        size_t quick_size, general_size;
        const void *quick_data = lh_pack_data (quick, &quick_size);
        const void *general_data = lh_pack_data (general, &general_size);
        if (rc || quick_size != general_size
        ||  memcmp (quick_data, general_data, quick_size) != 0) {
            fprintf (stderr, "lh_json_quick_pack differs on %.*s: %s\n", (int) size,
                     (const char *) data, error? error: "other bytes");
            abort ();
        }
        free (error);
        json_decref (json);
        lh_pack_destroy (&general);
    }
    lh_pack_destroy (&quick);

    //  msgpack to JSON text
    char *text = lh_json_quick_text (data, size, limits);
    if (text) {
        accepted++;
        char *error = NULL;
        json_t *json = lh_json_from_msgpack (data, size, limits, &error);
        char *general = json? json_dumps (json, JSON_COMPACT | JSON_ENCODE_ANY): NULL;
        if (!general || strneq (text, general)) {
            fprintf (stderr, "lh_json_quick_text differs: %s against %s\n",
                     text, general? general: error);
            abort ();
        }
        free (general);
        free (error);
        json_decref (json);
        free (text);
    }
    return accepted;
}


//  --------------------------------------------------------------------------
//  Self test of this class

//  A small deterministic generator for the differential tests
static uint32_t
s_random (uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (uint32_t) ((x * 0x2545F4914F6CDD1DULL) >> 32);
}

//  Random JSON text, mostly well formed, with the corners of the grammar
typedef struct {
    char data [4096];
    size_t size;
    uint64_t seed;
} s_gen_t;

static void
s_gen_put (s_gen_t *gen, const char *text)
{
    size_t size = strlen (text);
    if (gen->size + size < sizeof (gen->data)) {
        memcpy (gen->data + gen->size, text, size);
        gen->size += size;
    }
}

static const char *
s_gen_pick (s_gen_t *gen, const char **pool, size_t count)
{
    return pool [s_random (&gen->seed) % count];
}
#define S_PICK(gen,pool) s_gen_pick ((gen), (pool), sizeof (pool) / sizeof (pool [0]))

static void
s_gen_string (s_gen_t *gen, bool key)
{
    static const char *pieces [] = {
        "a", "b", "name", "x y", "\\n", "\\\"", "\\\\", "\\/", "\\t", "\\b\\f\\r",
        "\xc3\xa9", "\xe2\x98\x83", "\xf0\x9f\x98\x80", "[", "{", ",", ":", "$base64",
        "\\u00e9", "\x7f", "\x01", "\xff", "\\x", "\xed\xa0\x80"
    };
    s_gen_put (gen, "\"");
    size_t count = s_random (&gen->seed) % (key? 2: 5);
    for (size_t index = 0; index < count; index++) {
        //  the last six pieces are rare: escapes and bytes jansson refuses
        size_t pick = s_random (&gen->seed) % (sizeof (pieces) / sizeof (pieces [0]));
        if (pick >= sizeof (pieces) / sizeof (pieces [0]) - 6 && s_random (&gen->seed) % 4)
            pick = 0;
        s_gen_put (gen, pieces [pick]);
    }
    s_gen_put (gen, "\"");
}

static void
s_gen_number (s_gen_t *gen)
{
    static const char *specials [] = {
        "-0", "0", "01", "1e999", "-1e999", "1e-400", "5e-324", "0.1", "1.", "-", ".5",
        "9223372036854775807", "-9223372036854775808", "999999999999999999",
        "-999999999999999999", "1000000000000000000", "1E+2", "2.5e-3", "123.456e7"
    };
    if (s_random (&gen->seed) % 3 == 0) {
        s_gen_put (gen, S_PICK (gen, specials));
        return;
    }
    char number [64];
    size_t size = 0;
    if (s_random (&gen->seed) % 2)
        number [size++] = '-';
    size_t digits = 1 + s_random (&gen->seed) % 20;
    for (size_t index = 0; index < digits; index++)
        number [size++] = (char) ('0' + (index == 0? 1 + s_random (&gen->seed) % 9
                                                   : s_random (&gen->seed) % 10));
    if (s_random (&gen->seed) % 3 == 0) {
        number [size++] = '.';
        size_t fraction = 1 + s_random (&gen->seed) % 17;
        for (size_t index = 0; index < fraction; index++)
            number [size++] = (char) ('0' + s_random (&gen->seed) % 10);
    }
    if (s_random (&gen->seed) % 4 == 0)
        size += (size_t) snprintf (number + size, 8, "e%s%u",
                                   s_random (&gen->seed) % 2? "-": "",
                                   s_random (&gen->seed) % 330);
    number [size] = 0;
    s_gen_put (gen, number);
}

static void
s_gen_json (s_gen_t *gen, int depth)
{
    static const char *spaces [] = { "", "", "", " ", "\n", "\t", "\r\n  " };
    static const char *literals [] = { "null", "true", "false", "nul", "truex" };
    s_gen_put (gen, S_PICK (gen, spaces));
    switch (s_random (&gen->seed) % (depth > 5? 5: 7)) {
        case 0:
            s_gen_put (gen, S_PICK (gen, literals));
            break;
        case 1:
        case 2:
            s_gen_number (gen);
            break;
        case 3:
        case 4:
            s_gen_string (gen, false);
            break;
        case 5:
        case 6: {
            bool object = s_random (&gen->seed) % 2;
            s_gen_put (gen, object? "{": "[");
            size_t count = s_random (&gen->seed) % 5;
            for (size_t index = 0; index < count; index++) {
                if (index)
                    s_gen_put (gen, ",");
                if (object) {
                    s_gen_put (gen, S_PICK (gen, spaces));
                    s_gen_string (gen, true);
                    s_gen_put (gen, S_PICK (gen, spaces));
                    s_gen_put (gen, ":");
                }
                s_gen_json (gen, depth + 1);
            }
            if (s_random (&gen->seed) % 50 == 0)
                s_gen_put (gen, ",");
            s_gen_put (gen, S_PICK (gen, spaces));
            s_gen_put (gen, object? "}": "]");
            break;
        }
    }
    s_gen_put (gen, S_PICK (gen, spaces));
}

//  Random msgpack, with the corners of the mapping
static void
s_gen_msgpack (msgpack_packer *packer, uint64_t *seed, int depth)
{
    static const char *pieces [] = {
        "a", "name", "\"", "\\", "/", "\n", "\x01", "\x1f", "\x7f", "\xc3\xa9",
        "\xf0\x9f\x98\x80", "$base64", "\xff", "\xed\xa0\x80"
    };
    static const double reals [] = {
        0.0, -0.0, 0.1, 1.5, 100.0, 1e300, -1e-300, 5e-324, 1e21, 1e22, 1e16,
        123456789012345680000.0, 0.5, NAN, INFINITY, -INFINITY
    };
    static const int64_t integers [] = {
        0, 1, -1, 127, 128, -32, -33, 255, 256, 65535, 65536, -129,
        INT32_MIN, INT64_MAX, INT64_MIN
    };
    char text [64];
    size_t size = 0;
    switch (s_random (seed) % (depth > 4? 8: 10)) {
        case 0:
            msgpack_pack_nil (packer);
            break;
        case 1:
            if (s_random (seed) % 2)
                msgpack_pack_true (packer);
            else
                msgpack_pack_false (packer);
            break;
        case 2:
            if (s_random (seed) % 2)
                msgpack_pack_int64 (packer, integers [s_random (seed) % 15]);
            else
                msgpack_pack_int64 (packer, (int64_t) ((uint64_t) s_random (seed) << 32
                                                       | s_random (seed)) >> (s_random (seed) % 64));
            break;
        case 3:
            msgpack_pack_uint64 (packer, s_random (seed) % 2? UINT64_MAX
                                 : (uint64_t) INT64_MAX + 1 + s_random (seed));
            break;
        case 4: {
            double value = reals [s_random (seed) % 16];
            if (s_random (seed) % 2) {
                uint64_t bits = (uint64_t) s_random (seed) << 32 | s_random (seed);
                memcpy (&value, &bits, sizeof (value));
            }
            if (s_random (seed) % 4 == 0)
                msgpack_pack_float (packer, (float) value);
            else
                msgpack_pack_double (packer, value);
            break;
        }
        case 5: {
            size_t count = s_random (seed) % 4;
            for (size_t index = 0; index < count; index++) {
                size_t pick = s_random (seed) % 14;
                if (pick >= 12 && s_random (seed) % 4)
                    pick = 0;
                size_t piece = strlen (pieces [pick]);
                memcpy (text + size, pieces [pick], piece);
                size += piece;
            }
            msgpack_pack_str_with_body (packer, text, size);
            break;
        }
        case 6:
        case 7:
            size = s_random (seed) % 8;
            for (size_t index = 0; index < size; index++)
                text [index] = (char) s_random (seed);
            if (s_random (seed) % 2)
                msgpack_pack_bin_with_body (packer, text, size);
            else {
                msgpack_pack_ext (packer, size, (int8_t) s_random (seed));
                msgpack_pack_ext_body (packer, text, size);
            }
            break;
        case 8: {
            uint32_t count = s_random (seed) % 5;
            msgpack_pack_array (packer, count);
            for (uint32_t index = 0; index < count; index++)
                s_gen_msgpack (packer, seed, depth + 1);
            break;
        }
        case 9: {
            static const char *keys [] = { "a", "b", "c", "$ext", "$base64", "", "\n" };
            uint32_t count = s_random (seed) % 5;
            msgpack_pack_map (packer, count);
            for (uint32_t index = 0; index < count; index++) {
                if (s_random (seed) % 30 == 0)
                    msgpack_pack_int (packer, 1);
                else {
                    const char *key = keys [s_random (seed) % 7];
                    msgpack_pack_str_with_body (packer, key, strlen (key));
                }
                s_gen_msgpack (packer, seed, depth + 1);
            }
            break;
        }
    }
}

void
lh_json_quick_test (bool verbose)
{
    printf (" * lh_json_quick: ");

    //  @selftest
    lh_pack_t *pack;
    char *text;
    lh_limits_t small;
    msgpack_sbuffer buffer;
    msgpack_packer packer;
    //  The quick paths take the common case, and render it exactly as the
    //  general path does
    const char *bench_body =
        "{\"name\":\"worker-000123\",\"role\":\"forklift operator\",\"site\":\"warehouse-7\","
        "\"skills\":[\"forklift\",\"inventory\"],\"rating\":4.5,\"active\":true,\"id\":123456}";
    const char *quick_takes [] = {
        bench_body, "null", " true ", "[false]", "0", "-0", "-12", "999999999999999999",
        "-999999999999999999", "1.5", "-0.0", "1e300", "1E-5", "2.5e+3", "0.1", "5e-324",
        "1e-400", "\"a\\n\\t\\\"\\\\\\/b\\b\\f\\r\"", "\"h\xc3\xa9 \xf0\x9f\x98\x80\"", "{}", "[]",
        "{\"a\":[1,{\"b\":null}],\"c\":\"d\"}", " [ 1 ,\n2 ]\r\n", "{\"\":\"\"}", "\"\x7f\""
    };
    for (size_t index = 0; index < sizeof (quick_takes) / sizeof (quick_takes [0]); index++) {
        const char *take = quick_takes [index];
        if (lh_json_quick_compare (take, strlen (take), NULL) < 1) {
            fprintf (stderr, "the quick path declined %s\n", take);
            assert (false);
        }
    }
    //  ... and declines the rest, leaving the pack untouched
    const char *quick_declines [] = {
        "", " ", "\"\\u00e9\"", "{\"$base64\":\"AAH/\"}", "{\"a\":1,\"a\":2}",
        "1234567890123456789", "1e999", "01", "[1,]", "{\"a\" 1}", "nul", "nullx",
        "\"\x01\"", "\"\xc3\x28\"", "[1] x", "{\"a\\n\":1}", "\"abc", "-", "1.", "1e",
        ".5", "+1", "[1 2]", "{\"a\":1,}", "[", "{", "\xc3\xa9", "NaN", "[1]]"
    };
    for (size_t index = 0; index < sizeof (quick_declines) / sizeof (quick_declines [0]); index++) {
        const char *decline = quick_declines [index];
        pack = lh_pack_new ();
        if (lh_json_quick_pack (decline, strlen (decline), pack, NULL) != -1) {
            fprintf (stderr, "the quick path took %s\n", decline);
            assert (false);
        }
        size_t packed;
        lh_pack_data (pack, &packed);
        assert (packed == 0);
        lh_pack_destroy (&pack);
        lh_json_quick_compare (decline, strlen (decline), NULL);
    }
    //  Its limits are the general path's: 32 levels, elements, string size
    text = (char *) malloc (68);
    assert (text);
    for (size_t index = 0; index < 33; index++) {
        text [index] = '[';
        text [65 - index] = ']';
    }
    pack = lh_pack_new ();
    assert (lh_json_quick_pack (text + 1, 64, pack, NULL) == 0);
    lh_pack_destroy (&pack);
    pack = lh_pack_new ();
    assert (lh_json_quick_pack (text, 66, pack, NULL) == -1);
    lh_pack_destroy (&pack);
    free (text);
    small = lh_limits_default;
    small.max_elements = 4;
    small.max_string = 3;
    const char *limited [] = { "[1,2,3]", "[\"abc\"]", "{\"abc\":1}" };
    for (size_t index = 0; index < 3; index++)
        assert (lh_json_quick_compare (limited [index], strlen (limited [index]), &small) == 1);
    const char *over [] = { "[1,2,3,4]", "[\"abcd\"]", "{\"abcd\":1}", "{\"a\":1,\"b\":2}" };
    for (size_t index = 0; index < 4; index++) {
        pack = lh_pack_new ();
        assert (lh_json_quick_pack (over [index], strlen (over [index]), pack, &small) == -1);
        lh_pack_destroy (&pack);
    }
    //  Differential: random JSON text and random msgpack through both
    //  paths, with default and with small limits. lh_json_quick_compare
    //  aborts on any difference; the counts show both paths were taken.
    lh_limits_t tiny = { .max_depth = 3, .max_elements = 12, .max_string = 6 };
    size_t taken = 0, declined = 0;
    s_gen_t *gen = (s_gen_t *) zmalloc (sizeof (s_gen_t));
    assert (gen);
    gen->seed = 0x9e3779b97f4a7c15ULL;
    for (size_t round = 0; round < 3000; round++) {
        gen->size = 0;
        s_gen_json (gen, 0);
        if (s_random (&gen->seed) % 10 == 0 && gen->size > 0) {
            //  and now and then one byte changed or the end cut off
            size_t at = s_random (&gen->seed) % gen->size;
            if (s_random (&gen->seed) % 2)
                gen->data [at] = "\"\\[]{},:0e.-\x80 "[s_random (&gen->seed) % 14];
            else
                gen->size = at;
        }
        int took = lh_json_quick_compare (gen->data, gen->size, round % 4? NULL: &tiny);
        if (took)
            taken++;
        else
            declined++;

        msgpack_sbuffer_init (&buffer);
        msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
        s_gen_msgpack (&packer, &gen->seed, 0);
        took = lh_json_quick_compare (buffer.data, buffer.size, round % 4? NULL: &tiny);
        if (took)
            taken++;
        else
            declined++;
        msgpack_sbuffer_destroy (&buffer);
    }
    if (verbose)
        printf ("\n    differential: %zu taken, %zu declined", taken, declined);
    assert (taken > 2000 && declined > 500);
    free (gen);
    //  @end

    printf ("OK\n");
}
