/*  =========================================================================
    lh_json - msgpack <-> JSON (jansson), for the gateway and the tools

    The mapping (docs/json.md):

        msgpack                     JSON
        nil, true, false            null, true, false
        int / uint <= INT64_MAX     integer
        uint > INT64_MAX            "18446744073709551615" (string of digits)
        float32 / float64           real (NaN and infinities: error)
        str (valid UTF-8)           string
        bin                         {"$base64": "AAEC"}
        ext                         {"$ext": 5, "$base64": "AAEC"}
        array                       array
        map with str keys           object (other key types: error)

    Every error names where it happened as a path from the root ($, $.a,
    $.a[2]) so that a user can find the bad value.

    Msgpack is read only through lh_msgpack_unpack (checked against the
    limits first, then decoded by msgpack-c); JSON text only through
    jansson, after a scan that refuses nesting past the limit before
    jansson recurses into it.
    =========================================================================
*/

#include "lh_json.h"

//  msgpack-c's unpacker holds at most MSGPACK_EMBED_STACK_SIZE (32) open
//  containers and fails past that, whatever lh_limits_t says: we never
//  produce, or try to read, anything nested deeper than it can
#define S_DEPTH_MSGPACK     32

//  A conversion in progress
typedef struct {
    const lh_limits_t *limits;          //  bounds
    size_t max_depth;                   //  nesting allowed: limits, capped
    size_t elements;                    //  values seen so far
    char path [256];                    //  where we are, "$.a[2]"
    size_t path_size;                   //  bytes used in path
    char *error;                        //  first error, or NULL
} s_ctx_t;


//  --------------------------------------------------------------------------
//  Nesting allowed by limits, capped at what msgpack-c can unpack

static size_t
s_max_depth (const lh_limits_t *limits)
{
    return limits->max_depth < S_DEPTH_MSGPACK? limits->max_depth: S_DEPTH_MSGPACK;
}


//  --------------------------------------------------------------------------
//  Start a conversion

static void
s_ctx_init (s_ctx_t *ctx, const lh_limits_t *limits)
{
    memset (ctx, 0, sizeof (*ctx));
    ctx->limits = limits? limits: &lh_limits_default;
    ctx->max_depth = s_max_depth (ctx->limits);
    ctx->path [0] = '$';
    ctx->path_size = 1;
}


//  --------------------------------------------------------------------------
//  Record an error at the current path (the first error wins)

static int
s_fail (s_ctx_t *ctx, const char *format, ...) CHECK_PRINTF (2);

static int
s_fail (s_ctx_t *ctx, const char *format, ...)
{
    if (ctx->error)
        return -1;
    char reason [256];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof (reason), format, args);
    va_end (args);
    ctx->error = zsys_sprintf ("at %.*s: %s", (int) ctx->path_size, ctx->path, reason);
    return -1;
}


//  --------------------------------------------------------------------------
//  Step into a key or an index of the current path; returns the old size
//  to restore with s_path_leave. A path too long for the buffer ends "...".

static size_t
s_path_enter (s_ctx_t *ctx, const char *key, size_t key_size, size_t index)
{
    size_t saved = ctx->path_size;
    size_t room = sizeof (ctx->path) - ctx->path_size;
    int added;
    if (key)
        added = snprintf (ctx->path + ctx->path_size, room, ".%.*s",
                          (int) (key_size > 64? 64: key_size), key);
    else
        added = snprintf (ctx->path + ctx->path_size, room, "[%zu]", index);
    if (added < 0 || (size_t) added >= room) {
        ctx->path_size = sizeof (ctx->path) - 4;
        memcpy (ctx->path + ctx->path_size, "...", 3);
        ctx->path_size += 3;
    }
    else
        ctx->path_size += (size_t) added;
    return saved;
}

static void
s_path_leave (s_ctx_t *ctx, size_t saved)
{
    ctx->path_size = saved;
}


//  --------------------------------------------------------------------------
//  Count one more value against max_elements; returns 0 or -1

static int
s_count (s_ctx_t *ctx)
{
    if (++ctx->elements > ctx->limits->max_elements)
        return s_fail (ctx, "more than %zu values", ctx->limits->max_elements);
    return 0;
}


//  --------------------------------------------------------------------------
//  Return the offset of the first byte that is not part of valid UTF-8
//  (no overlong forms, no surrogates, nothing past U+10FFFF), or size if
//  all of it is valid.

static size_t
s_utf8_invalid_at (const uint8_t *data, size_t size)
{
    size_t offset = 0;
    while (offset < size) {
        uint8_t c = data [offset];
        size_t extra;
        uint32_t min, code;
        if (c < 0x80) {
            offset++;
            continue;
        }
        else
        if ((c & 0xe0) == 0xc0) { extra = 1; min = 0x80; code = c & 0x1f; }
        else
        if ((c & 0xf0) == 0xe0) { extra = 2; min = 0x800; code = c & 0x0f; }
        else
        if ((c & 0xf8) == 0xf0) { extra = 3; min = 0x10000; code = c & 0x07; }
        else
            return offset;
        if (size - offset <= extra)
            return offset;
        for (size_t index = 1; index <= extra; index++) {
            uint8_t next = data [offset + index];
            if ((next & 0xc0) != 0x80)
                return offset;
            code = (code << 6) | (next & 0x3f);
        }
        if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
            return offset;
        offset += extra + 1;
    }
    return size;
}


//  --------------------------------------------------------------------------
//  Standard base64 (RFC 4648 section 4), with padding

static const char s_b64_alphabet [] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

//  Encode size bytes into out, which has room for (size + 2) / 3 * 4
//  characters; returns the characters written (no terminator)
static size_t
s_base64_encode_to (const uint8_t *data, size_t size, char *out)
{
    char *start = out;
    size_t offset = 0;
    for (; offset + 3 <= size; offset += 3) {
        uint32_t group = (uint32_t) data [offset] << 16
                       | (uint32_t) data [offset + 1] << 8 | data [offset + 2];
        *out++ = s_b64_alphabet [group >> 18];
        *out++ = s_b64_alphabet [(group >> 12) & 63];
        *out++ = s_b64_alphabet [(group >> 6) & 63];
        *out++ = s_b64_alphabet [group & 63];
    }
    if (offset < size) {
        uint32_t group = (uint32_t) data [offset] << 16;
        if (offset + 1 < size)
            group |= (uint32_t) data [offset + 1] << 8;
        *out++ = s_b64_alphabet [group >> 18];
        *out++ = s_b64_alphabet [(group >> 12) & 63];
        *out++ = offset + 1 < size? s_b64_alphabet [(group >> 6) & 63]: '=';
        *out++ = '=';
    }
    return (size_t) (out - start);
}

//  Encode size bytes; returns a new string (caller frees)
static char *
s_base64_encode (const uint8_t *data, size_t size)
{
    char *text = (char *) malloc ((size + 2) / 3 * 4 + 1);
    assert (text);
    text [s_base64_encode_to (data, size, text)] = 0;
    return text;
}

//  Value of one base64 character, or -1
static int
s_base64_value (char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

//  Decode text into a new buffer (caller frees) and *size_p. Padding may
//  be left off. Returns NULL and the offset of the bad character in
//  *bad_p if the text is not base64.
static uint8_t *
s_base64_decode (const char *text, size_t length, size_t *size_p, size_t *bad_p)
{
    //  Strip up to two '=' of padding, which must complete a 4-group
    size_t data_length = length;
    while (data_length > 0 && length - data_length < 2 && text [data_length - 1] == '=')
        data_length--;
    if (data_length < length && length % 4) {
        *bad_p = data_length;
        return NULL;
    }
    if (data_length % 4 == 1) {
        *bad_p = data_length - 1;
        return NULL;
    }
    uint8_t *data = (uint8_t *) malloc (data_length / 4 * 3 + 3);
    assert (data);
    size_t size = 0;
    uint32_t group = 0;
    for (size_t offset = 0; offset < data_length; offset++) {
        int value = s_base64_value (text [offset]);
        if (value < 0) {
            free (data);
            *bad_p = offset;
            return NULL;
        }
        group = (group << 6) | (uint32_t) value;
        if (offset % 4 == 3) {
            data [size++] = (uint8_t) (group >> 16);
            data [size++] = (uint8_t) (group >> 8);
            data [size++] = (uint8_t) group;
            group = 0;
        }
    }
    if (data_length % 4 == 2)
        data [size++] = (uint8_t) (group >> 4);
    else
    if (data_length % 4 == 3) {
        data [size++] = (uint8_t) (group >> 10);
        data [size++] = (uint8_t) (group >> 2);
    }
    *size_p = size;
    return data;
}


//  --------------------------------------------------------------------------
//  msgpack -> JSON: a bin or ext body as {"$base64": ...}, with "$ext"

static json_t *
s_binary_to_json (const char *data, size_t size, bool ext, int8_t type)
{
    char *text = s_base64_encode ((const uint8_t *) data, size);
    json_t *json = json_object ();
    assert (json);
    if (ext)
        json_object_set_new (json, "$ext", json_integer (type));
    json_object_set_new (json, "$base64", json_string (text));
    free (text);
    return json;
}


//  --------------------------------------------------------------------------
//  msgpack -> JSON, one object and everything under it. Returns a new JSON
//  value, or NULL with ctx->error set.

static json_t *
s_from_object (s_ctx_t *ctx, const msgpack_object *object, size_t depth)
{
    if (s_count (ctx))
        return NULL;
    json_t *json = NULL;
    switch (object->type) {
        case MSGPACK_OBJECT_NIL:
            return json_null ();
        case MSGPACK_OBJECT_BOOLEAN:
            return json_boolean (object->via.boolean);
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            if (object->via.u64 <= INT64_MAX)
                return json_integer ((json_int_t) object->via.u64);
            else {
                char digits [24];
                snprintf (digits, sizeof (digits), "%" PRIu64, object->via.u64);
                return json_string (digits);
            }
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            return json_integer ((json_int_t) object->via.i64);
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            json = json_real (object->via.f64);
            if (!json)
                s_fail (ctx, "%s has no JSON form",
                        isnan (object->via.f64)? "NaN": "infinity");
            return json;
        case MSGPACK_OBJECT_STR: {
            //  msgpack-c gives an empty string a NULL pointer
            const char *text = object->via.str.ptr? object->via.str.ptr: "";
            size_t size = object->via.str.size;
            size_t bad = s_utf8_invalid_at ((const uint8_t *) text, size);
            if (bad < size) {
                s_fail (ctx, "string is not valid UTF-8 (byte %zu)", bad);
                return NULL;
            }
            json = json_stringn (text, size);
            if (!json)
                s_fail (ctx, "string is not valid UTF-8");
            return json;
        }
        case MSGPACK_OBJECT_BIN:
            return s_binary_to_json (object->via.bin.ptr, object->via.bin.size, false, 0);
        case MSGPACK_OBJECT_EXT:
            return s_binary_to_json (object->via.ext.ptr, object->via.ext.size,
                                     true, object->via.ext.type);
        case MSGPACK_OBJECT_ARRAY:
            if (depth >= ctx->max_depth) {
                s_fail (ctx, "nested deeper than %zu levels", ctx->max_depth);
                return NULL;
            }
            json = json_array ();
            assert (json);
            for (uint32_t index = 0; index < object->via.array.size; index++) {
                size_t saved = s_path_enter (ctx, NULL, 0, index);
                json_t *item = s_from_object (ctx, &object->via.array.ptr [index], depth + 1);
                s_path_leave (ctx, saved);
                if (!item) {
                    json_decref (json);
                    return NULL;
                }
                json_array_append_new (json, item);
            }
            return json;
        case MSGPACK_OBJECT_MAP:
            if (depth >= ctx->max_depth) {
                s_fail (ctx, "nested deeper than %zu levels", ctx->max_depth);
                return NULL;
            }
            json = json_object ();
            assert (json);
            for (uint32_t index = 0; index < object->via.map.size; index++) {
                const msgpack_object *key = &object->via.map.ptr [index].key;
                if (s_count (ctx)) {
                    json_decref (json);
                    return NULL;
                }
                if (key->type != MSGPACK_OBJECT_STR) {
                    s_fail (ctx, "map key %u is not a string", index);
                    json_decref (json);
                    return NULL;
                }
                size_t key_size = key->via.str.size;
                const char *key_text = key->via.str.ptr? key->via.str.ptr: "";
                if (s_utf8_invalid_at ((const uint8_t *) key_text, key_size) < key_size) {
                    s_fail (ctx, "map key %u is not valid UTF-8", index);
                    json_decref (json);
                    return NULL;
                }
                size_t saved = s_path_enter (ctx, key_text, key_size, 0);
                json_t *value = s_from_object (ctx, &object->via.map.ptr [index].val, depth + 1);
                s_path_leave (ctx, saved);
                if (!value) {
                    json_decref (json);
                    return NULL;
                }
                json_object_setn_new (json, key_text, key_size, value);
            }
            return json;
        default:
            s_fail (ctx, "unknown msgpack type %d", (int) object->type);
            return NULL;
    }
}


//  --------------------------------------------------------------------------
//  Hand the context's error to the caller (or drop it)

static void
s_give_error (s_ctx_t *ctx, char **error_p)
{
    if (error_p) {
        free (*error_p);
        *error_p = ctx->error;
    }
    else
        free (ctx->error);
    ctx->error = NULL;
}


//  --------------------------------------------------------------------------
//  Set *error_p to a plain sentence

static void
s_set_error (char **error_p, const char *format, ...) CHECK_PRINTF (2);

static void
s_set_error (char **error_p, const char *format, ...)
{
    if (!error_p)
        return;
    va_list args;
    va_start (args, format);
    char *error = zsys_vprintf (format, args);
    va_end (args);
    free (*error_p);
    *error_p = error;
}


//  --------------------------------------------------------------------------
//  Decode a msgpack buffer (checked with lh_msgpack_check first) into a new
//  JSON value. Returns NULL on error and sets *error_p (caller frees).

json_t *
lh_json_from_msgpack (const void *data, size_t size,
                      const lh_limits_t *limits, char **error_p)
{
    lh_limits_t capped = limits? *limits: lh_limits_default;
    capped.max_depth = s_max_depth (&capped);
    limits = &capped;
    msgpack_zone zone;
    msgpack_zone_init (&zone, 2048);
    msgpack_object object;
    int rc = lh_msgpack_unpack (data, size, limits, &zone, &object);
    json_t *json = NULL;
    if (rc == -1)
        s_set_error (error_p, "msgpack body is truncated (%zu bytes)", size);
    else
    if (rc)
        s_set_error (error_p, "msgpack body is malformed or over the limits "
                     "(depth %zu, %zu values, %zu bytes per string)",
                     limits->max_depth, limits->max_elements, limits->max_string);
    else {
        s_ctx_t ctx;
        s_ctx_init (&ctx, limits);
        json = s_from_object (&ctx, &object, 0);
        if (!json)
            s_give_error (&ctx, error_p);
    }
    msgpack_zone_destroy (&zone);
    return json;
}


//  --------------------------------------------------------------------------
//  Same, from an already decoded object

json_t *
lh_json_from_object (const msgpack_object *object, char **error_p)
{
    assert (object);
    //  The object was bounded when it was unpacked; only depth is capped
    lh_limits_t limits = lh_limits_default;
    limits.max_elements = SIZE_MAX;
    limits.max_string = SIZE_MAX;
    s_ctx_t ctx;
    s_ctx_init (&ctx, &limits);
    json_t *json = s_from_object (&ctx, object, 0);
    if (!json)
        s_give_error (&ctx, error_p);
    return json;
}


//  --------------------------------------------------------------------------
//  JSON -> msgpack: a {"$base64"} or {"$ext", "$base64"} object. Returns 1
//  if the object is not one of those (pack it as a map), 0 when packed, -1
//  on error.

static int
s_pack_binary (s_ctx_t *ctx, const json_t *json, lh_pack_t *pack)
{
    size_t keys = json_object_size (json);
    json_t *base64 = json_object_get (json, "$base64");
    json_t *ext = json_object_get (json, "$ext");
    if (!base64 || !(keys == 1 || (keys == 2 && ext)))
        return 1;
    if (!json_is_string (base64))
        return s_fail (ctx, "\"$base64\" must be a string of base64");
    if (ext && (!json_is_integer (ext)
                || json_integer_value (ext) < -128 || json_integer_value (ext) > 127))
        return s_fail (ctx, "\"$ext\" must be an integer from -128 to 127");
    size_t length = json_string_length (base64);
    if (length / 4 * 3 > ctx->limits->max_string)
        return s_fail (ctx, "binary value longer than %zu bytes", ctx->limits->max_string);
    size_t size = 0, bad = 0;
    uint8_t *data = s_base64_decode (json_string_value (base64), length, &size, &bad);
    if (!data)
        return s_fail (ctx, "\"$base64\" is not base64 (at character %zu)", bad);
    if (size > ctx->limits->max_string) {
        free (data);
        return s_fail (ctx, "binary value longer than %zu bytes", ctx->limits->max_string);
    }
    msgpack_packer *packer = lh_pack_packer (pack);
    if (ext) {
        msgpack_pack_ext (packer, size, (int8_t) json_integer_value (ext));
        msgpack_pack_ext_body (packer, data, size);
    }
    else
        lh_pack_bin (pack, data, size);
    free (data);
    return 0;
}


//  --------------------------------------------------------------------------
//  JSON -> msgpack, one value and everything under it. Returns 0 or -1.

static int
s_to_pack (s_ctx_t *ctx, const json_t *json, lh_pack_t *pack, size_t depth)
{
    if (s_count (ctx))
        return -1;
    switch (json_typeof (json)) {
        case JSON_NULL:
            lh_pack_nil (pack);
            return 0;
        case JSON_TRUE:
            lh_pack_bool (pack, true);
            return 0;
        case JSON_FALSE:
            lh_pack_bool (pack, false);
            return 0;
        case JSON_INTEGER:
            lh_pack_int (pack, json_integer_value (json));
            return 0;
        case JSON_REAL:
            lh_pack_double (pack, json_real_value (json));
            return 0;
        case JSON_STRING: {
            size_t size = json_string_length (json);
            const char *value = json_string_value (json);
            if (size > ctx->limits->max_string)
                return s_fail (ctx, "string longer than %zu bytes", ctx->limits->max_string);
            size_t bad = s_utf8_invalid_at ((const uint8_t *) value, size);
            if (bad < size)
                return s_fail (ctx, "string is not valid UTF-8 (byte %zu)", bad);
            lh_pack_strn (pack, value, size);
            return 0;
        }
        case JSON_ARRAY: {
            if (depth >= ctx->max_depth)
                return s_fail (ctx, "nested deeper than %zu levels", ctx->max_depth);
            size_t count = json_array_size (json);
            if (count > ctx->limits->max_elements)
                return s_fail (ctx, "more than %zu values", ctx->limits->max_elements);
            lh_pack_array (pack, (uint32_t) count);
            for (size_t index = 0; index < count; index++) {
                size_t saved = s_path_enter (ctx, NULL, 0, index);
                int rc = s_to_pack (ctx, json_array_get (json, index), pack, depth + 1);
                s_path_leave (ctx, saved);
                if (rc)
                    return -1;
            }
            return 0;
        }
        case JSON_OBJECT: {
            int rc = s_pack_binary (ctx, json, pack);
            if (rc <= 0)
                return rc;
            if (depth >= ctx->max_depth)
                return s_fail (ctx, "nested deeper than %zu levels", ctx->max_depth);
            size_t count = json_object_size (json);
            if (count > ctx->limits->max_elements)
                return s_fail (ctx, "more than %zu values", ctx->limits->max_elements);
            lh_pack_map (pack, (uint32_t) count);
            for (void *iter = json_object_iter ((json_t *) json); iter;
                 iter = json_object_iter_next ((json_t *) json, iter)) {
                const char *key = json_object_iter_key (iter);
                size_t key_size = json_object_iter_key_len (iter);
                if (s_count (ctx))
                    return -1;
                if (key_size > ctx->limits->max_string)
                    return s_fail (ctx, "key longer than %zu bytes", ctx->limits->max_string);
                if (s_utf8_invalid_at ((const uint8_t *) key, key_size) < key_size)
                    return s_fail (ctx, "key is not valid UTF-8");
                lh_pack_strn (pack, key, key_size);
                size_t saved = s_path_enter (ctx, key, key_size, 0);
                rc = s_to_pack (ctx, json_object_iter_value (iter), pack, depth + 1);
                s_path_leave (ctx, saved);
                if (rc)
                    return -1;
            }
            return 0;
        }
        default:
            return s_fail (ctx, "unknown JSON type");
    }
}


//  --------------------------------------------------------------------------
//  Pack a JSON value into a pack buffer, honouring the $base64 convention.
//  Returns 0, or -1 with *error_p set. On -1 the pack holds a partial value
//  and should be destroyed.

int
lh_json_to_pack (const json_t *json, lh_pack_t *pack,
                 const lh_limits_t *limits, char **error_p)
{
    assert (json);
    assert (pack);
    s_ctx_t ctx;
    s_ctx_init (&ctx, limits);
    int rc = s_to_pack (&ctx, json, pack, 0);
    if (rc)
        s_give_error (&ctx, error_p);
    return rc;
}


//  --------------------------------------------------------------------------
//  The quick paths: JSON text straight to msgpack, and msgpack straight to
//  JSON text, without jansson values (no allocation per value, no loop
//  check table per container). They handle the common subset and decline
//  everything else: a \u escape, a key "$base64", a duplicate key, an
//  integer of more than 18 digits, a real that does not parse exactly, a
//  limit reached, malformed input. The caller then takes the jansson path,
//  which gives the same result or the error with its line and column.
//  Whatever a quick path accepts it renders exactly as the jansson path
//  does; lh_json_test and the fuzz_json target compare the two.

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
    ||  s_utf8_invalid_at ((const uint8_t *) raw, raw_size) < raw_size)
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
    quick.max_depth = s_max_depth (quick.limits);
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
    size_t length = s_base64_encode_to ((const uint8_t *) data, size, out);
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
            if (s_utf8_invalid_at ((const uint8_t *) object->via.str.ptr, object->via.str.size)
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
                ||  s_utf8_invalid_at ((const uint8_t *) key->via.str.ptr, key->via.str.size)
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
    capped.max_depth = s_max_depth (&capped);
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
        json_error_t parse_error;
        json_t *json = json_loadb ((const char *) data, size,
                                   JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                                   &parse_error);
        lh_pack_t *general = lh_pack_new ();
        int rc = json? lh_json_to_pack (json, general, limits, &error): -1;
        size_t quick_size, general_size;
        const void *quick_data = lh_pack_data (quick, &quick_size);
        const void *general_data = lh_pack_data (general, &general_size);
        if (rc || quick_size != general_size
        ||  memcmp (quick_data, general_data, quick_size) != 0) {
            fprintf (stderr, "lh_json_quick_pack differs on %.*s: %s\n", (int) size,
                     (const char *) data, json? (error? error: "other bytes"): parse_error.text);
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
//  Scan JSON text for nesting deeper than max_depth before jansson parses
//  it (jansson recurses, up to its own compiled limit). Returns 0, or -1
//  with *error_p set to "line L, column C: ...". Lines and columns count
//  as jansson's do: from 1, columns in characters.

static int
s_check_depth (const char *text, size_t size, size_t max_depth, char **error_p)
{
    size_t depth = 0;
    int line = 1, column = 0;
    bool in_string = false, escaped = false;
    for (size_t offset = 0; offset < size; offset++) {
        unsigned char c = (unsigned char) text [offset];
        if (c == '\n') {
            line++;
            column = 0;
        }
        else
        if ((c & 0xc0) != 0x80)
            column++;
        if (in_string) {
            if (escaped)
                escaped = false;
            else
            if (c == '\\')
                escaped = true;
            else
            if (c == '"')
                in_string = false;
        }
        else
        if (c == '"')
            in_string = true;
        else
        if (c == '[' || c == '{') {
            if (++depth > max_depth) {
                s_set_error (error_p, "line %d, column %d: nested deeper than %zu levels",
                             line, column, max_depth);
                return -1;
            }
        }
        else
        if ((c == ']' || c == '}') && depth > 0)
            depth--;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Parse JSON text into a new msgpack frame. On a parse error returns NULL
//  and sets *error_p to "line L, column C: <jansson's text>".

zframe_t *
lh_json_text_to_frame (const char *text, size_t size,
                       const lh_limits_t *limits, char **error_p)
{
    assert (text || size == 0);
    if (!limits)
        limits = &lh_limits_default;
    lh_pack_t *pack = lh_pack_new ();
    if (lh_json_quick_pack (text, size, pack, limits) == 0)
        return lh_pack_frame (&pack);
    lh_pack_destroy (&pack);
    if (s_check_depth (text, size, s_max_depth (limits), error_p))
        return NULL;
    json_error_t error;
    json_t *json = json_loadb (text? text: "", size,
                               JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                               &error);
    if (!json) {
        s_set_error (error_p, "line %d, column %d: %s", error.line, error.column, error.text);
        return NULL;
    }
    pack = lh_pack_new ();
    zframe_t *frame = NULL;
    if (lh_json_to_pack (json, pack, limits, error_p) == 0)
        frame = lh_pack_frame (&pack);
    lh_pack_destroy (&pack);
    json_decref (json);
    return frame;
}


//  --------------------------------------------------------------------------
//  Render a msgpack buffer as compact JSON text (caller frees), or NULL
//  with *error_p set.

char *
lh_json_text_from_msgpack (const void *data, size_t size,
                           const lh_limits_t *limits, char **error_p)
{
    char *text = lh_json_quick_text (data, size, limits);
    if (text)
        return text;
    json_t *json = lh_json_from_msgpack (data, size, limits, error_p);
    if (!json)
        return NULL;
    text = json_dumps (json, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref (json);
    if (!text)
        s_set_error (error_p, "cannot render the body as JSON");
    return text;
}


//  --------------------------------------------------------------------------
//  Self test of this class

//  Test inputs, each written with msgpack-c directly so that the cases do
//  not depend on our own packer
typedef void (s_build_fn) (msgpack_packer *packer);

static void s_uint_max (msgpack_packer *p)    { msgpack_pack_uint64 (p, UINT64_MAX); }
static void s_int64_max (msgpack_packer *p)   { msgpack_pack_uint64 (p, INT64_MAX); }
static void s_int64_big (msgpack_packer *p)   { msgpack_pack_uint64 (p, (uint64_t) INT64_MAX + 1); }
static void s_int64_min (msgpack_packer *p)   { msgpack_pack_int64 (p, INT64_MIN); }
static void s_float32 (msgpack_packer *p)     { msgpack_pack_float (p, 0.5f); }
static void s_nan (msgpack_packer *p)         { msgpack_pack_double (p, NAN); }
static void s_bin (msgpack_packer *p)         { msgpack_pack_bin_with_body (p, "\x00\x01\xff", 3); }
static void s_ext (msgpack_packer *p)         { msgpack_pack_ext (p, 1, 7); msgpack_pack_ext_body (p, "Z", 1); }
static void s_bad_utf8 (msgpack_packer *p)    { msgpack_pack_str_with_body (p, "a\xc3\x28", 3); }
static void s_surrogate (msgpack_packer *p)   { msgpack_pack_str_with_body (p, "\xed\xa0\x80", 3); }
static void s_overlong (msgpack_packer *p)    { msgpack_pack_str_with_body (p, "\xc0\xaf", 2); }
static void s_nul_str (msgpack_packer *p)     { msgpack_pack_str_with_body (p, "a\0b", 3); }
static void s_empty_str (msgpack_packer *p)
{
    msgpack_pack_map (p, 1);
    msgpack_pack_str_with_body (p, "", 0);
    msgpack_pack_str_with_body (p, "", 0);
}
static void s_int_key (msgpack_packer *p)
{
    msgpack_pack_map (p, 1);
    msgpack_pack_int (p, 1);
    msgpack_pack_nil (p);
}
static void s_bad_key (msgpack_packer *p)
{
    msgpack_pack_map (p, 1);
    msgpack_pack_str_with_body (p, "k\xff", 2);
    msgpack_pack_nil (p);
}
static void s_nested_bad (msgpack_packer *p)
{
    msgpack_pack_map (p, 1);
    msgpack_pack_str_with_body (p, "rows", 4);
    msgpack_pack_array (p, 2);
    msgpack_pack_nil (p);
    msgpack_pack_str_with_body (p, "\xff", 1);
}

typedef struct {
    s_build_fn *build;                  //  writes the msgpack input
    const char *json;                   //  expected compact JSON, or NULL
    const char *error;                  //  expected error text, or NULL
} s_mp_case_t;

//  JSON text -> msgpack -> JSON text: expected output (NULL: same as input)
typedef struct {
    const char *text;                   //  JSON input
    const char *back;                   //  JSON after the round trip, or NULL
    const char *error;                  //  expected error (substring), or NULL
} s_text_case_t;

//  Parse a NUL-terminated JSON text into a frame
static zframe_t *
s_frame (const char *text, const lh_limits_t *limits, char **error_p)
{
    return lh_json_text_to_frame (text, strlen (text), limits, error_p);
}

//  Render msgpack built by a function to JSON text (or an error)
static char *
s_render (s_build_fn *build, char **error_p)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    build (&packer);
    char *text = lh_json_text_from_msgpack (buffer.data, buffer.size, NULL, error_p);
    msgpack_sbuffer_destroy (&buffer);
    return text;
}

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
lh_json_test (bool verbose)
{
    printf (" * lh_json: ");

    //  @selftest
    //  msgpack -> JSON
    s_mp_case_t mp_cases [] = {
        { s_uint_max,   "\"18446744073709551615\"", NULL },
        { s_int64_max,  "9223372036854775807", NULL },
        { s_int64_big,  "\"9223372036854775808\"", NULL },
        { s_int64_min,  "-9223372036854775808", NULL },
        { s_float32,    "0.5", NULL },
        { s_nan,        NULL, "at $: NaN has no JSON form" },
        { s_bin,        "{\"$base64\":\"AAH/\"}", NULL },
        { s_ext,        "{\"$ext\":7,\"$base64\":\"Wg==\"}", NULL },
        { s_nul_str,    "\"a\\u0000b\"", NULL },
        { s_empty_str,  "{\"\":\"\"}", NULL },
        { s_bad_utf8,   NULL, "at $: string is not valid UTF-8 (byte 1)" },
        { s_surrogate,  NULL, "at $: string is not valid UTF-8 (byte 0)" },
        { s_overlong,   NULL, "at $: string is not valid UTF-8 (byte 0)" },
        { s_int_key,    NULL, "at $: map key 0 is not a string" },
        { s_bad_key,    NULL, "at $: map key 0 is not valid UTF-8" },
        { s_nested_bad, NULL, "at $.rows[1]: string is not valid UTF-8 (byte 0)" },
    };
    for (size_t index = 0; index < sizeof (mp_cases) / sizeof (mp_cases [0]); index++) {
        char *error = NULL;
        char *text = s_render (mp_cases [index].build, &error);
        const char *expect = mp_cases [index].json? mp_cases [index].json: mp_cases [index].error;
        const char *got = text? text: error;
        if (verbose)
            printf ("\n    msgpack case %zu: %s", index, got);
        if (!got || !streq (got, expect) || (!text == !mp_cases [index].error)) {
            fprintf (stderr, "msgpack case %zu: expected %s, got %s\n", index, expect, got);
            assert (false);
        }
        free (text);
        free (error);
    }

    //  JSON text -> msgpack -> JSON text
    s_text_case_t text_cases [] = {
        { "null", NULL, NULL },
        { "true", NULL, NULL },
        { "[false,true]", NULL, NULL },
        { "0", NULL, NULL },
        { "-1", NULL, NULL },
        { "9223372036854775807", NULL, NULL },
        { "-9223372036854775808", NULL, NULL },
        { "\"18446744073709551615\"", NULL, NULL },
        { "1.5", NULL, NULL },
        { "-0.25", NULL, NULL },
        { "1e300", "1.0000000000000001e300", NULL },
        { "0.1", "0.10000000000000001", NULL },
        { "\"h\\u00e9llo \\u2603 \\ud83d\\ude00\"", "\"h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80\"", NULL },
        { "\"a\\u0000b\"", NULL, NULL },
        { "{\"a\":{\"b\":[1,{\"c\":null}],\"d\":\"e\"},\"f\":[]}", NULL, NULL },
        { "{\"$base64\":\"AAH/\"}", NULL, NULL },
        { "{\"$base64\":\"\"}", NULL, NULL },
        { "{\"$base64\":\"AQ\"}", "{\"$base64\":\"AQ==\"}", NULL },
        { "{\"$base64\":\"AQI=\"}", NULL, NULL },
        { "{\"$ext\":-3,\"$base64\":\"AQID\"}", NULL, NULL },
        { "{\"$base64\":\"AAH/\",\"x\":1}", NULL, NULL },
        { "{\"$base64\":\"A?==\"}", NULL, "at $: \"$base64\" is not base64 (at character 1)" },
        { "{\"x\":[{\"$base64\":5}]}", NULL, "at $.x[0]: \"$base64\" must be a string of base64" },
        { "{\"$ext\":300,\"$base64\":\"\"}", NULL, "at $: \"$ext\" must be an integer from -128 to 127" },
        //  Parse errors carry jansson's line and column
        { "{\"a\": 1,\n \"b\": }", NULL, "line 2, column 7: " },
        { "[1, 2", NULL, "line 1, column 5: " },
        { "", NULL, "line 1, column 0: " },
        { "{\"a\":1,\"a\":2}", NULL, "duplicate object key" },
        { "18446744073709551615", NULL, "too big integer" },
        //  Invalid UTF-8 in JSON text
        { "\"a\xc3\x28\"", NULL, "line 1, column " },
        { "\"\xed\xa0\x80\"", NULL, "line 1, column " },
        { "\"\\ud800\"", NULL, "line 1, column " },
    };
    for (size_t index = 0; index < sizeof (text_cases) / sizeof (text_cases [0]); index++) {
        s_text_case_t *test = &text_cases [index];
        char *error = NULL;
        char *back = NULL;
        zframe_t *frame = s_frame (test->text, NULL, &error);
        if (frame)
            back = lh_json_text_from_msgpack (zframe_data (frame), zframe_size (frame), NULL, &error);
        const char *expect = test->error? test->error: test->back? test->back: test->text;
        const char *got = back? back: error;
        if (verbose)
            printf ("\n    text case %zu: %s", index, got);
        bool good;
        if (test->error && strncmp (test->error, "line ", 5) == 0)
            good = !back && error && strncmp (error, test->error, strlen (test->error)) == 0;
        else
        if (test->error)
            good = !back && error && strstr (error, test->error);
        else
            good = back && streq (back, expect);
        if (!good) {
            fprintf (stderr, "text case %zu (%s): expected %s, got %s\n", index, test->text, expect, got? got: "nothing");
            assert (false);
        }
        zframe_destroy (&frame);
        free (back);
        free (error);
    }

    //  Binary bytes survive exactly, and come out as msgpack bin
    zframe_t *frame = s_frame ("{\"$base64\":\"AAH/\"}", NULL, NULL);
    assert (frame);
    assert (zframe_size (frame) == 5);
    assert (memcmp (zframe_data (frame), "\xc4\x03\x00\x01\xff", 5) == 0);
    zframe_destroy (&frame);
    //  Every byte value and length through base64
    uint8_t bytes [256];
    for (int index = 0; index < 256; index++)
        bytes [index] = (uint8_t) (255 - index);
    for (size_t size = 0; size <= 256; size += (size < 8? 1: 37)) {
        char *text = s_base64_encode (bytes, size);
        size_t back_size = 0, bad = 0;
        uint8_t *back = s_base64_decode (text, strlen (text), &back_size, &bad);
        assert (back);
        assert (back_size == size);
        assert (memcmp (back, bytes, size) == 0);
        free (back);
        free (text);
    }

    //  Integers stay integers, in the smallest msgpack form
    frame = s_frame ("[1,-1,9223372036854775807,-9223372036854775808]", NULL, NULL);
    assert (frame);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object object;
    int rc = lh_msgpack_unpack (zframe_data (frame), zframe_size (frame), NULL, &zone, &object);
    assert (rc == 0);
    assert (object.type == MSGPACK_OBJECT_ARRAY);
    assert (object.via.array.ptr [0].type == MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert (object.via.array.ptr [0].via.u64 == 1);
    assert (object.via.array.ptr [1].type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert (object.via.array.ptr [2].via.u64 == INT64_MAX);
    assert (object.via.array.ptr [3].via.i64 == INT64_MIN);
    json_t *json = lh_json_from_object (&object, NULL);
    assert (json_is_array (json));
    assert (json_integer_value (json_array_get (json, 3)) == INT64_MIN);
    json_decref (json);
    msgpack_zone_destroy (&zone);
    zframe_destroy (&frame);

    //  Depth: 10,000-deep JSON is refused cleanly, before jansson parses it
    size_t deep = 10000;
    char *text = (char *) malloc (deep * 2 + 1);
    assert (text);
    for (size_t index = 0; index < deep; index++) {
        text [index] = '[';
        text [deep * 2 - 1 - index] = ']';
    }
    text [deep * 2] = 0;
    char *error = NULL;
    frame = lh_json_text_to_frame (text, deep * 2, NULL, &error);
    assert (!frame);
    assert (streq (error, "line 1, column 33: nested deeper than 32 levels"));
    zstr_free (&error);
    //  32 levels (all msgpack-c can unpack) round trip; 33 do not
    frame = lh_json_text_to_frame (text + deep - 32, 64, NULL, &error);
    assert (frame);
    char *back = lh_json_text_from_msgpack (zframe_data (frame), zframe_size (frame), NULL, &error);
    assert (back);
    assert (strlen (back) == 64);
    zstr_free (&back);
    zframe_destroy (&frame);
    frame = lh_json_text_to_frame (text + deep - 33, 66, NULL, &error);
    assert (!frame);
    assert (streq (error, "line 1, column 33: nested deeper than 32 levels"));
    zstr_free (&error);
    //  Brackets inside strings do not count
    const char *quoted = "[\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"\"]";
    frame = s_frame (quoted, NULL, &error);
    assert (frame);
    zframe_destroy (&frame);
    //  A depth limit of 3: three levels pass, four do not, both ways
    lh_limits_t small = lh_limits_default;
    small.max_depth = 3;
    frame = s_frame ("[[[1]]]", &small, &error);
    assert (frame);
    zframe_destroy (&frame);
    frame = s_frame ("[[[[1]]]]", &small, &error);
    assert (!frame);
    assert (streq (error, "line 1, column 4: nested deeper than 3 levels"));
    zstr_free (&error);
    json = json_loads ("{\"a\":[[[1]]]}", 0, NULL);
    lh_pack_t *pack = lh_pack_new ();
    rc = lh_json_to_pack (json, pack, &small, &error);
    assert (rc == -1);
    assert (streq (error, "at $.a[0][0]: nested deeper than 3 levels"));
    zstr_free (&error);
    lh_pack_destroy (&pack);
    json_decref (json);
    json = json_loads ("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", 0, NULL);
    assert (json);
    pack = lh_pack_new ();
    rc = lh_json_to_pack (json, pack, NULL, &error);
    assert (rc == -1);
    assert (streq (error, "at $[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]"
                          "[0][0][0][0][0][0][0][0][0][0]: nested deeper than 32 levels"));
    zstr_free (&error);
    lh_pack_destroy (&pack);
    json_decref (json);
    //  Deep msgpack is refused by the bounded checker, never unpacked
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    for (size_t index = 0; index < deep; index++)
        msgpack_pack_array (&packer, 1);
    msgpack_pack_nil (&packer);
    json = lh_json_from_msgpack (buffer.data, buffer.size, NULL, &error);
    assert (!json);
    assert (strstr (error, "malformed or over the limits"));
    zstr_free (&error);
    //  Truncated msgpack
    json = lh_json_from_msgpack (buffer.data, 3, NULL, &error);
    assert (!json);
    assert (strstr (error, "truncated"));
    zstr_free (&error);
    msgpack_sbuffer_destroy (&buffer);
    free (text);

    //  Element and string limits
    small = lh_limits_default;
    small.max_elements = 4;
    small.max_string = 3;
    frame = s_frame ("[1,2,3]", &small, &error);
    assert (frame);
    zframe_destroy (&frame);
    frame = s_frame ("[1,2,3,4]", &small, &error);
    assert (!frame);
    assert (streq (error, "at $[3]: more than 4 values"));
    zstr_free (&error);
    frame = s_frame ("[\"abcd\"]", &small, &error);
    assert (!frame);
    assert (streq (error, "at $[0]: string longer than 3 bytes"));
    zstr_free (&error);
    frame = s_frame ("{\"$base64\":\"AAAAAA==\"}", &small, &error);
    assert (!frame);
    assert (streq (error, "at $: binary value longer than 3 bytes"));
    zstr_free (&error);

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
    //  msgpack: every case above either taken, or declined for the general
    //  path to name the error
    for (size_t index = 0; index < sizeof (mp_cases) / sizeof (mp_cases [0]); index++) {
        msgpack_sbuffer_init (&buffer);
        msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
        mp_cases [index].build (&packer);
        char *quick = lh_json_quick_text (buffer.data, buffer.size, NULL);
        if (mp_cases [index].json)
            assert (quick && streq (quick, mp_cases [index].json));
        else
            assert (!quick);
        free (quick);
        msgpack_sbuffer_destroy (&buffer);
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
