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
    jansson recurses into it. The quick paths that skip jansson for the
    common case, and their differential test, are lh_json_quick.c.
    =========================================================================
*/

#include "lh_json.h"
#include "lh_json_internal.h"

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

size_t
lh_json_max_depth (const lh_limits_t *limits)
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
    ctx->max_depth = lh_json_max_depth (ctx->limits);
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

size_t
lh_json_utf8_invalid_at (const uint8_t *data, size_t size)
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
size_t
lh_json_base64_encode_to (const uint8_t *data, size_t size, char *out)
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
    text [lh_json_base64_encode_to (data, size, text)] = 0;
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
            size_t bad = lh_json_utf8_invalid_at ((const uint8_t *) text, size);
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
                if (lh_json_utf8_invalid_at ((const uint8_t *) key_text, key_size) < key_size) {
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
    capped.max_depth = lh_json_max_depth (&capped);
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
            size_t bad = lh_json_utf8_invalid_at ((const uint8_t *) value, size);
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
                if (lh_json_utf8_invalid_at ((const uint8_t *) key, key_size) < key_size)
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
//  Scan JSON text before jansson parses it, for what jansson would get
//  wrong: nesting deeper than max_depth (jansson recurses, up to its own
//  compiled limit) and a raw NUL byte (jansson skips it without a word, so
//  "123" and a NUL would pass as 123). Returns 0, or -1 with *error_p set
//  to "line L, column C: ...". Lines and columns count as jansson's do:
//  from 1, columns in characters.

static int
s_check_text (const char *text, size_t size, size_t max_depth, char **error_p)
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
        if (c == 0) {
            s_set_error (error_p, "line %d, column %d: a NUL byte, which JSON text cannot "
                         "hold (inside a string write it as \\u0000)", line, column);
            return -1;
        }
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
//  jansson's parse errors in our words. Each row: the start of jansson's
//  message, and the sentence we say instead (jansson 2.14, src/load.c).

typedef struct {
    const char *theirs;                 //  how jansson's message starts
    const char *ours;                   //  what we say
} s_parse_error_t;

static const s_parse_error_t s_parse_errors [] = {
    { "unable to decode byte",        "the text is not valid UTF-8" },
    { "premature end of input",       "the text ends inside a value" },
    { "unexpected newline",           "a string holds a raw line break (write it as \\n)" },
    { "control character",            "a string holds a raw control character (write it as \\u00XX)" },
    { "invalid escape",               "an invalid escape in a string (allowed: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)" },
    { "invalid Unicode escape",       "a \\u escape needs four hex digits" },
    { "invalid Unicode",              "a \\u escape is not a character (a surrogate without its pair)" },
    { "too big negative integer",     "an integer below -9223372036854775808 (send it as a string of digits)" },
    { "too big integer",              "an integer above 9223372036854775807 (send it as a string of digits)" },
    { "real number overflow",         "a number too large for a 64-bit float" },
    { "string or '}' expected",       "expected a key (a string) or '}'" },
    { "NUL byte in object key",       "an object key holds \\u0000" },
    { "duplicate object key",         "an object holds the same key twice" },
    { "':' expected",                 "expected ':' after an object key" },
    { "'}' expected",                 "expected ',' or '}'" },
    { "']' expected",                 "expected ',' or ']'" },
    { "maximum parsing depth",        "nested too deeply" },
    { "\\u0000 is not allowed",       "a string holds \\u0000" },
    { "invalid token",                "not a JSON value" },
    { "unexpected token",             "expected a value" },
    { "'[' or '{' expected",          "expected '[' or '{'" },
    { "end of file expected",         "more text after the value" },
    { NULL, NULL }
};

//  Set *error_p to "line L, column C: SENTENCE" for a jansson parse error,
//  keeping the piece of input jansson quotes (" near 'x'"), made safe to
//  print, or saying " at the end of the text" when it reached the end.
//  hex, if not NULL, is the \u escape that stood for \u0000 in the text
//  jansson read (see below): the quote shows \u0000 again.

static void
s_parse_error_set (const char *text, size_t size, const json_error_t *error,
                   const char *hex, char **error_p)
{
    char theirs [sizeof (error->text)];
    snprintf (theirs, sizeof (theirs), "%s", error->text);
    if (hex) {
        char escape [7] = "\\u";
        memcpy (escape + 2, hex, 4);
        escape [6] = 0;
        for (char *at = strstr (theirs, escape); at; at = strstr (at + 6, escape))
            memcpy (at + 2, "0000", 4);
    }
    const char *ours = "not valid JSON";
    size_t blank = 0;
    while (blank < size && strchr (" \t\r\n", text [blank]))
        blank++;
    if (blank == size)
        ours = "no JSON value (the text is empty)";
    else
        for (const s_parse_error_t *row = s_parse_errors; row->theirs; row++)
            if (strncmp (theirs, row->theirs, strlen (row->theirs)) == 0) {
                ours = row->ours;
                break;
            }
    char where [64] = "";
    const char *near = strstr (theirs, " near ");
    if (blank == size)
        ;
    else
    if (near && streq (near, " near end of file"))
        snprintf (where, sizeof (where), " at the end of the text");
    else
    if (near && near [6] == '\'') {
        //  jansson quotes at most 20 bytes of input; keep printable ASCII
        //  and whole UTF-8 characters, '?' for anything else
        const char *quoted = near + 7;
        size_t length = strlen (quoted);
        if (length > 0 && quoted [length - 1] == '\'')
            length--;
        size_t used = (size_t) snprintf (where, sizeof (where), " near '");
        for (size_t offset = 0; offset < length && used + 6 < sizeof (where); ) {
            unsigned char c = (unsigned char) quoted [offset];
            size_t valid = lh_json_utf8_invalid_at ((const uint8_t *) quoted + offset, length - offset);
            size_t step = c < 0x80? 1: c >= 0xf0? 4: c >= 0xe0? 3: 2;
            if (c < 0x20 || c == 0x7f || (c >= 0x80 && valid < step)) {
                where [used++] = '?';
                offset++;
            }
            else {
                memcpy (where + used, quoted + offset, step);
                used += step;
                offset += step;
            }
        }
        snprintf (where + used, sizeof (where) - used, "'");
    }
    s_set_error (error_p, "line %d, column %d: %s%s", error->line, error->column, ours, where);
}


//  --------------------------------------------------------------------------
//  Keys holding NUL. jansson's values hold them (json_object_setn) but its
//  parser refuses "\u0000" in a key. So such a text is parsed again with
//  every \u0000 escape turned into the escape of a private-use character
//  (U+E000..U+F8FF) that the text holds nowhere, raw or escaped: the same
//  length, so lines and columns stay true, and one to one, so repeated
//  keys are still found. The parsed value then has that character turned
//  back into NUL.

//  A private-use character the text does not hold, as UTF-8 (3 bytes) in
//  mark and as its 4 hex digits in hex; -1 if the text holds all 6,400
static int
s_nul_mark_choose (const char *text, size_t size, char *mark, char *hex)
{
    uint8_t *seen = (uint8_t *) zmalloc (0x1900 / 8);
    assert (seen);
    for (size_t offset = 0; offset < size; offset++) {
        unsigned char c = (unsigned char) text [offset];
        uint32_t code = 0;
        if ((c == 0xee || c == 0xef) && size - offset >= 3)
            code = (uint32_t) (c & 0x0f) << 12 | (uint32_t) (text [offset + 1] & 0x3f) << 6
                 | (uint32_t) (text [offset + 2] & 0x3f);
        else
        if (c == '\\' && size - offset >= 6 && text [offset + 1] == 'u'
        &&  isxdigit ((unsigned char) text [offset + 2]) && isxdigit ((unsigned char) text [offset + 3])
        &&  isxdigit ((unsigned char) text [offset + 4]) && isxdigit ((unsigned char) text [offset + 5])) {
            char digits [5] = { text [offset + 2], text [offset + 3],
                                text [offset + 4], text [offset + 5], 0 };
            code = (uint32_t) strtoul (digits, NULL, 16);
        }
        if (code >= 0xe000 && code <= 0xf8ff)
            seen [(code - 0xe000) / 8] |= (uint8_t) (1 << ((code - 0xe000) % 8));
    }
    int rc = -1;
    for (uint32_t code = 0xe000; code <= 0xf8ff; code++)
        if (!(seen [(code - 0xe000) / 8] & (1 << ((code - 0xe000) % 8)))) {
            mark [0] = (char) (0xe0 | code >> 12);
            mark [1] = (char) (0x80 | ((code >> 6) & 0x3f));
            mark [2] = (char) (0x80 | (code & 0x3f));
            snprintf (hex, 5, "%04X", code);
            rc = 0;
            break;
        }
    free (seen);
    return rc;
}

//  A copy of the JSON text with each \u0000 escape inside a string turned
//  into \uHHHH (caller frees)
static char *
s_nul_mark_text (const char *text, size_t size, const char *hex)
{
    char *copy = (char *) malloc (size + 1);
    assert (copy);
    memcpy (copy, text, size);
    copy [size] = 0;
    bool in_string = false;
    for (size_t offset = 0; offset < size; offset++) {
        char c = copy [offset];
        if (!in_string)
            in_string = c == '"';
        else
        if (c == '"')
            in_string = false;
        else
        if (c == '\\' && offset + 1 < size) {
            if (size - offset >= 6 && memcmp (copy + offset + 1, "u0000", 5) == 0)
                memcpy (copy + offset + 2, hex, 4);
            offset++;                   //  the escaped character is not a quote
        }
    }
    return copy;
}

//  A string's bytes with mark (3 bytes) turned back into NUL, in a new
//  buffer of *size_p bytes (caller frees), or NULL if it holds no mark
static char *
s_nul_unmark (const char *data, size_t size, const char *mark, size_t *size_p)
{
    if (!memmem (data, size, mark, 3))
        return NULL;
    char *copy = (char *) malloc (size + 1);
    assert (copy);
    size_t used = 0;
    for (size_t offset = 0; offset < size; ) {
        if (size - offset >= 3 && memcmp (data + offset, mark, 3) == 0) {
            copy [used++] = 0;
            offset += 3;
        }
        else
            copy [used++] = data [offset++];
    }
    *size_p = used;
    return copy;
}

//  A new value like json with mark turned back into NUL in every string
//  and key, in the same order (the depth was checked before parsing)
static json_t *
s_nul_restore (json_t *json, const char *mark)
{
    size_t size;
    char *plain;
    json_t *copy;
    switch (json_typeof (json)) {
        case JSON_STRING:
            plain = s_nul_unmark (json_string_value (json), json_string_length (json), mark, &size);
            if (!plain)
                return json_incref (json);
            copy = json_stringn (plain, size);
            free (plain);
            return copy;
        case JSON_ARRAY:
            copy = json_array ();
            for (size_t index = 0; index < json_array_size (json); index++)
                json_array_append_new (copy, s_nul_restore (json_array_get (json, index), mark));
            return copy;
        case JSON_OBJECT:
            copy = json_object ();
            for (void *iter = json_object_iter (json); iter;
                 iter = json_object_iter_next (json, iter)) {
                const char *key = json_object_iter_key (iter);
                size_t key_size = json_object_iter_key_len (iter);
                json_t *value = s_nul_restore (json_object_iter_value (iter), mark);
                plain = s_nul_unmark (key, key_size, mark, &size);
                if (plain)
                    json_object_setn_new (copy, plain, size, value);
                else
                    json_object_setn_new (copy, key, key_size, value);
                free (plain);
            }
            return copy;
        default:
            return json_incref (json);
    }
}


//  --------------------------------------------------------------------------
//  Parse JSON text into a new jansson value (any value at the top; a
//  repeated key refused; NUL allowed in strings and keys). Returns NULL on
//  error and sets *error_p to "line L, column C: <sentence>".

json_t *
lh_json_parse (const char *text, size_t size, const lh_limits_t *limits, char **error_p)
{
    assert (text || size == 0);
    if (!limits)
        limits = &lh_limits_default;
    if (!text)
        text = "";
    if (s_check_text (text, size, lh_json_max_depth (limits), error_p))
        return NULL;
    const size_t flags = JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL;
    json_error_t error;
    json_t *json = json_loadb (text, size, flags, &error);
    char mark [3], hex [5];
    bool marked = false;
    if (!json && json_error_code (&error) == json_error_null_byte_in_key
    &&  s_nul_mark_choose (text, size, mark, hex) == 0) {
        marked = true;
        char *copy = s_nul_mark_text (text, size, hex);
        json_t *parsed = json_loadb (copy, size, flags, &error);
        free (copy);
        if (parsed) {
            json = s_nul_restore (parsed, mark);
            json_decref (parsed);
        }
    }
    if (!json)
        s_parse_error_set (text, size, &error, marked? hex: NULL, error_p);
    return json;
}


//  --------------------------------------------------------------------------
//  Parse JSON text into a new msgpack frame. On a parse error returns NULL
//  and sets *error_p to "line L, column C: <sentence>".

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
    json_t *json = lh_json_parse (text, size, limits, error_p);
    if (!json)
        return NULL;
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
        //  NUL in strings and in keys (which jansson's parser refuses)
        { "[\"\\u0000\"]", NULL, NULL },
        { "{\"foo\\u0000bar\":42}", NULL, NULL },
        { "{\"a\\u0000\":1,\"b\":[\"\\u0000\"],\"\\u0000\":{\"c\\u0000\":2}}", NULL, NULL },
        { "{\"\\ue000\\uf8ff\":1,\"x\\u0000\":2}", "{\"\xee\x80\x80\xef\xa3\xbf\":1,\"x\\u0000\":2}", NULL },
        { "{\"\\\\u0000\":1,\"k\\u0000\":2}", NULL, NULL },
        { "{\"a\\u0000\":1,\"a\\u0000\":2}", NULL,
          "line 1, column 22: an object holds the same key twice near '\"a\\u0000\"'" },
        { "{\"a\\u0000\":1,}", NULL, "line 1, column 14: expected a key (a string) or '}' near '}'" },
        //  Parse errors carry line and column, in our words
        { "{\"a\": 1,\n \"b\": }", NULL, "line 2, column 7: expected a value near '}'" },
        { "[1, 2", NULL, "line 1, column 5: expected ',' or ']' at the end of the text" },
        { "", NULL, "line 1, column 0: no JSON value (the text is empty)" },
        { "{} x", NULL, "line 1, column 4: more text after the value near 'x'" },
        { "{\"a\":1,\"a\":2}", NULL, "line 1, column 10: an object holds the same key twice near '\"a\"'" },
        { "18446744073709551615", NULL, "line 1, column 20: an integer above 9223372036854775807" },
        { "1e999", NULL, "line 1, column 5: a number too large for a 64-bit float near '1e999'" },
        { "\"a\nb\"", NULL, "line 1, column 2: a string holds a raw line break" },
        { "nul", NULL, "line 1, column 3: not a JSON value near 'nul'" },
        { "\"\\x\"", NULL, "line 1, column 3: an invalid escape in a string" },
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

    //  A raw NUL byte anywhere is refused (jansson would skip it, so that
    //  "123" and a NUL passed as 123), and so is any text after the value
    struct {
        const char *text;
        size_t size;
        const char *error;
    } raw_cases [] = {
        { "123\0", 4, "line 1, column 4: a NUL byte, which JSON text cannot hold" },
        { "[1\0]", 4, "line 1, column 3: a NUL byte" },
        { "\"a\0b\"", 5, "line 1, column 3: a NUL byte" },
        { "{}\0\0", 4, "line 1, column 3: a NUL byte" },
        { "123 4", 5, "line 1, column 5: more text after the value near '4'" },
    };
    for (size_t index = 0; index < sizeof (raw_cases) / sizeof (raw_cases [0]); index++) {
        char *error = NULL;
        zframe_t *frame = lh_json_text_to_frame (raw_cases [index].text, raw_cases [index].size,
                                                 NULL, &error);
        if (verbose)
            printf ("\n    raw case %zu: %s", index, error);
        assert (!frame);
        assert (error && strncmp (error, raw_cases [index].error,
                                  strlen (raw_cases [index].error)) == 0);
        zstr_free (&error);
    }
    //  No error names the parser's internals, whatever the input
    const char *bad [] = {
        "[\"\\ud800\"]", "\"\\u12\"", "{\"a\" 1}", "{1:2}", "]", "[1,]", "\"\x01\"",
        "\"\xc3\x28\"", "{\"a\":1", "[", "-18446744073709551615", "\"abc", "tru", "{\"a\\u0000\"",
        "{\"a\":1 \"b\"}", "[1 2]", "   "
    };
    for (size_t index = 0; index < sizeof (bad) / sizeof (bad [0]); index++) {
        char *error = NULL;
        zframe_t *frame = s_frame (bad [index], NULL, &error);
        if (verbose)
            printf ("\n    bad %zu: %s", index, error);
        assert (!frame && error && strncmp (error, "line ", 5) == 0);
        assert (!strstr (error, "JSON_") && !strstr (error, "jansson")
                && !strstr (error, "near end of file") && !strstr (error, "not supported"));
        zstr_free (&error);
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

    //  @end

    printf ("OK\n");
}
