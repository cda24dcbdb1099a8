/*  =========================================================================
    lh_proto - LHB/1, the Lakehouse bus protocol

    The header codec writes msgpack by hand (no allocation, a few dozen
    instructions per key) and reads it with lh_reader_t, the one bounded
    reader. Nothing here trusts a count that came over the wire: a count is
    compared with the bytes left (every element takes at least one byte)
    and with the configured maxima before anything is done with it.
    =========================================================================
*/

#include "lh_proto.h"

const lh_limits_t lh_limits_default = {
    .max_depth = 32,               //  msgpack-c cannot unpack deeper than 32
    .max_elements = 1024 * 1024,
    .max_string = 16 * 1024 * 1024
};

static const char *s_type_names [LH_T_COUNT] = {
    NULL, "HELLO", "WELCOME", "READY", "REQ", "PART", "REP",
    "PUB", "SUB", "HB", "BYE", "CREDIT"
};

typedef struct {
    uint32_t status;                    //  status code
    const char *text;                   //  reason phrase
    const char *kind;                   //  default error kind
} s_status_t;

static const s_status_t s_statuses [] = {
    { 200, "OK", "ok" },
    { 201, "Created", "created" },
    { 400, "Bad Request", "bad_request" },
    { 401, "Unauthorized", "unauthorized" },
    { 403, "Forbidden", "forbidden" },
    { 404, "Not Found", "not_found" },
    { 409, "Conflict", "conflict" },
    { 412, "Precondition Failed", "precondition_failed" },
    { 413, "Payload Too Large", "too_large" },
    { 422, "Unprocessable Entity", "validation_failed" },
    { 429, "Too Many Requests", "too_many_requests" },
    { 500, "Internal Server Error", "internal" },
    { 502, "Bad Gateway", "bad_gateway" },
    { 503, "Service Unavailable", "unavailable" },
    { 504, "Gateway Timeout", "deadline" },
    { 0, NULL, NULL }
};


//  --------------------------------------------------------------------------
//  Return the wire name of a message type, or NULL

const char *
lh_type_name (lh_type_t type)
{
    return (type > LH_T_NONE && type < LH_T_COUNT)? s_type_names [type]: NULL;
}


//  --------------------------------------------------------------------------
//  Return the message type for a wire name, or LH_T_NONE

lh_type_t
lh_type_lookup (const char *name, size_t size)
{
    for (int type = LH_T_NONE + 1; type < LH_T_COUNT; type++)
        if (strlen (s_type_names [type]) == size
        &&  memcmp (s_type_names [type], name, size) == 0)
            return (lh_type_t) type;
    return LH_T_NONE;
}


//  --------------------------------------------------------------------------
//  Return a short reason phrase for a status

const char *
lh_status_text (uint32_t status)
{
    for (const s_status_t *entry = s_statuses; entry->status; entry++)
        if (entry->status == status)
            return entry->text;
    return status < 300? "OK": status < 500? "Client Error": "Server Error";
}


//  --------------------------------------------------------------------------
//  Return the default error kind for a status

const char *
lh_status_kind (uint32_t status)
{
    for (const s_status_t *entry = s_statuses; entry->status; entry++)
        if (entry->status == status)
            return entry->kind;
    return status < 500? "client_error": "server_error";
}


//  --------------------------------------------------------------------------
//  Reset a header to "nothing present", type t

void
lh_header_init (lh_header_t *self, lh_type_t t)
{
    assert (self);
    //  Only the scalar part is cleared: string fields are valid only when
    //  their bit is set, and clearing 2 KB per message would cost more than
    //  the rest of the codec.
    self->has = LH_H_T;
    self->t = t;
    self->id = self->cid = self->dl = self->bseq = self->brx = self->max_msg = 0;
    self->st = self->credit = self->att = self->hb_ivl = self->hb_live = 0;
    self->q = false;
}


//  --------------------------------------------------------------------------
//  Return the string field for a bit, and its capacity

static char *
s_header_field (lh_header_t *self, uint32_t bit, size_t *capacity)
{
    switch (bit) {
        case LH_H_SVC:   *capacity = sizeof (self->svc);   return self->svc;
        case LH_H_OP:    *capacity = sizeof (self->op);    return self->op;
        case LH_H_NAME:  *capacity = sizeof (self->name);  return self->name;
        case LH_H_SRC:   *capacity = sizeof (self->src);   return self->src;
        case LH_H_UID:   *capacity = sizeof (self->uid);   return self->uid;
        case LH_H_TR:    *capacity = sizeof (self->tr);    return self->tr;
        case LH_H_PS:    *capacity = sizeof (self->ps);    return self->ps;
        case LH_H_IDEM:  *capacity = sizeof (self->idem);  return self->idem;
        case LH_H_TOPIC: *capacity = sizeof (self->topic); return self->topic;
        case LH_H_OPS:   *capacity = sizeof (self->ops);   return self->ops;
        case LH_H_SOLO:  *capacity = sizeof (self->solo);  return self->solo;
        default:         *capacity = 0;                    return NULL;
    }
}


//  --------------------------------------------------------------------------
//  Take the settings a WELCOME carries: each present and non-zero one
//  replaces the caller's value

void
lh_header_welcome (const lh_header_t *self, uint32_t *hb_ivl,
                   uint32_t *hb_live, uint64_t *max_msg)
{
    assert (self && hb_ivl && hb_live && max_msg);
    if ((self->has & LH_H_HB_IVL) && self->hb_ivl > 0)
        *hb_ivl = self->hb_ivl;
    if ((self->has & LH_H_HB_LIVE) && self->hb_live > 0)
        *hb_live = self->hb_live;
    if ((self->has & LH_H_MAX_MSG) && self->max_msg > 0)
        *max_msg = self->max_msg;
}


//  --------------------------------------------------------------------------
//  Copy a string into a fixed header field and set its bit

void
lh_header_set_str (lh_header_t *self, uint32_t bit, const char *value)
{
    assert (self);
    assert (value);
    size_t capacity;
    char *field = s_header_field (self, bit, &capacity);
    assert (field);
    size_t size = strlen (value);
    if (size >= capacity)
        size = capacity - 1;
    memcpy (field, value, size);
    field [size] = 0;
    self->has |= bit;
}


//  --------------------------------------------------------------------------
//  msgpack writer over a fixed buffer; every put checks the room left

typedef struct {
    uint8_t *ptr;                       //  next byte to write
    uint8_t *end;                       //  one past the buffer
} s_writer_t;

static bool
s_put_raw (s_writer_t *writer, const void *data, size_t size)
{
    if ((size_t) (writer->end - writer->ptr) < size)
        return false;
    memcpy (writer->ptr, data, size);
    writer->ptr += size;
    return true;
}

static bool
s_put_head (s_writer_t *writer, uint8_t code, uint64_t value, int width)
{
    uint8_t bytes [9];
    bytes [0] = code;
    for (int index = 0; index < width; index++)
        bytes [1 + index] = (uint8_t) (value >> (8 * (width - 1 - index)));
    return s_put_raw (writer, bytes, 1 + width);
}

static bool
s_put_uint (s_writer_t *writer, uint64_t value)
{
    if (value < 128)
        return s_put_head (writer, (uint8_t) value, 0, 0);
    if (value <= UINT8_MAX)
        return s_put_head (writer, 0xcc, value, 1);
    if (value <= UINT16_MAX)
        return s_put_head (writer, 0xcd, value, 2);
    if (value <= UINT32_MAX)
        return s_put_head (writer, 0xce, value, 4);
    return s_put_head (writer, 0xcf, value, 8);
}

static bool
s_put_str (s_writer_t *writer, const char *value)
{
    size_t size = strlen (value);
    bool ok;
    if (size < 32)
        ok = s_put_head (writer, (uint8_t) (0xa0 | size), 0, 0);
    else
    if (size <= UINT8_MAX)
        ok = s_put_head (writer, 0xd9, size, 1);
    else
        ok = s_put_head (writer, 0xda, size, 2);
    return ok && s_put_raw (writer, value, size);
}

static bool
s_put_kv_uint (s_writer_t *writer, const char *key, uint64_t value)
{
    return s_put_str (writer, key) && s_put_uint (writer, value);
}

static bool
s_put_kv_str (s_writer_t *writer, const char *key, const char *value)
{
    return s_put_str (writer, key) && s_put_str (writer, value);
}


//  --------------------------------------------------------------------------
//  Encode header as a msgpack map into buffer. Returns encoded size, or -1
//  if it does not fit in capacity.

int
lh_header_encode (const lh_header_t *self, uint8_t *buffer, size_t capacity)
{
    assert (self);
    assert (self->t > LH_T_NONE && self->t < LH_T_COUNT);
    s_writer_t writer = { buffer, buffer + capacity };
    uint32_t has = self->has | LH_H_T;
    uint32_t count = __builtin_popcount (has);
    bool ok = count < 16? s_put_head (&writer, (uint8_t) (0x80 | count), 0, 0)
                        : s_put_head (&writer, 0xde, count, 2);
    ok = ok && s_put_kv_str (&writer, "t", s_type_names [self->t]);
    if (has & LH_H_ID)      ok = ok && s_put_kv_uint (&writer, "id", self->id);
    if (has & LH_H_CID)     ok = ok && s_put_kv_uint (&writer, "cid", self->cid);
    if (has & LH_H_SVC)     ok = ok && s_put_kv_str (&writer, "svc", self->svc);
    if (has & LH_H_OP)      ok = ok && s_put_kv_str (&writer, "op", self->op);
    if (has & LH_H_TOPIC)   ok = ok && s_put_kv_str (&writer, "topic", self->topic);
    if (has & LH_H_DL)      ok = ok && s_put_kv_uint (&writer, "dl", self->dl);
    if (has & LH_H_IDEM)    ok = ok && s_put_kv_str (&writer, "idem", self->idem);
    if (has & LH_H_Q)       ok = ok && s_put_str (&writer, "q")
                                    && s_put_head (&writer, self->q? 0xc3: 0xc2, 0, 0);
    if (has & LH_H_TR)      ok = ok && s_put_kv_str (&writer, "tr", self->tr);
    if (has & LH_H_PS)      ok = ok && s_put_kv_str (&writer, "ps", self->ps);
    if (has & LH_H_ST)      ok = ok && s_put_kv_uint (&writer, "st", self->st);
    if (has & LH_H_CREDIT)  ok = ok && s_put_kv_uint (&writer, "credit", self->credit);
    if (has & LH_H_SRC)     ok = ok && s_put_kv_str (&writer, "src", self->src);
    if (has & LH_H_UID)     ok = ok && s_put_kv_str (&writer, "uid", self->uid);
    if (has & LH_H_BSEQ)    ok = ok && s_put_kv_uint (&writer, "bseq", self->bseq);
    if (has & LH_H_BRX)     ok = ok && s_put_kv_uint (&writer, "brx", self->brx);
    if (has & LH_H_ATT)     ok = ok && s_put_kv_uint (&writer, "att", self->att);
    if (has & LH_H_NAME)    ok = ok && s_put_kv_str (&writer, "name", self->name);
    if (has & LH_H_HB_IVL)  ok = ok && s_put_kv_uint (&writer, "hb_ivl", self->hb_ivl);
    if (has & LH_H_HB_LIVE) ok = ok && s_put_kv_uint (&writer, "hb_live", self->hb_live);
    if (has & LH_H_MAX_MSG) ok = ok && s_put_kv_uint (&writer, "max_msg", self->max_msg);
    if (has & LH_H_OPS)     ok = ok && s_put_kv_str (&writer, "ops", self->ops);
    if (has & LH_H_SOLO)    ok = ok && s_put_kv_str (&writer, "solo", self->solo);
    return ok? (int) (writer.ptr - buffer): -1;
}


//  --------------------------------------------------------------------------
//  Bounded reader

void
lh_reader_init (lh_reader_t *self, const void *data, size_t size)
{
    self->ptr = (const uint8_t *) data;
    self->end = self->ptr + size;
}

size_t
lh_reader_left (lh_reader_t *self)
{
    return (size_t) (self->end - self->ptr);
}

//  Read a big-endian integer of width bytes; -1 if there are not enough
static int
s_read_be (lh_reader_t *self, int width, uint64_t *value)
{
    if (lh_reader_left (self) < (size_t) width)
        return -1;
    uint64_t result = 0;
    for (int index = 0; index < width; index++)
        result = (result << 8) | self->ptr [index];
    self->ptr += width;
    *value = result;
    return 0;
}

//  Read a container count (map or array) after its first byte. Every
//  element takes at least one byte (two per map pair), so a count that
//  the bytes left cannot hold is refused before anyone allocates for it.
static int
s_read_count (lh_reader_t *self, uint8_t code, uint8_t fix_base, uint8_t code16,
              uint32_t per_element, uint32_t *count)
{
    uint64_t value;
    if ((code & 0xf0) == fix_base)
        value = code & 0x0f;
    else
    if (code == code16) {
        if (s_read_be (self, 2, &value))
            return -1;
    }
    else
    if (code == code16 + 1) {
        if (s_read_be (self, 4, &value))
            return -1;
    }
    else
        return -2;
    if (value > lh_reader_left (self) / per_element)
        return -1;
    *count = (uint32_t) value;
    return 0;
}

int
lh_reader_map (lh_reader_t *self, uint32_t *count)
{
    if (lh_reader_left (self) < 1)
        return -1;
    uint8_t code = *self->ptr;
    if ((code & 0xf0) != 0x80 && code != 0xde && code != 0xdf)
        return -2;
    self->ptr++;
    return s_read_count (self, code, 0x80, 0xde, 2, count);
}

int
lh_reader_array (lh_reader_t *self, uint32_t *count)
{
    if (lh_reader_left (self) < 1)
        return -1;
    uint8_t code = *self->ptr;
    if ((code & 0xf0) != 0x90 && code != 0xdc && code != 0xdd)
        return -2;
    self->ptr++;
    return s_read_count (self, code, 0x90, 0xdc, 1, count);
}

int
lh_reader_str (lh_reader_t *self, const char **str, uint32_t *size)
{
    if (lh_reader_left (self) < 1)
        return -1;
    uint8_t code = *self->ptr;
    uint64_t length;
    if ((code & 0xe0) == 0xa0) {
        self->ptr++;
        length = code & 0x1f;
    }
    else
    if (code >= 0xd9 && code <= 0xdb) {
        self->ptr++;
        if (s_read_be (self, 1 << (code - 0xd9), &length))
            return -1;
    }
    else
        return -2;
    if (length > lh_reader_left (self))
        return -1;
    *str = (const char *) self->ptr;
    *size = (uint32_t) length;
    self->ptr += length;
    return 0;
}

int
lh_reader_uint (lh_reader_t *self, uint64_t *value)
{
    if (lh_reader_left (self) < 1)
        return -1;
    uint8_t code = *self->ptr;
    if (code < 0x80) {
        self->ptr++;
        *value = code;
        return 0;
    }
    if (code >= 0xcc && code <= 0xcf) {
        self->ptr++;
        return s_read_be (self, 1 << (code - 0xcc), value);
    }
    if (code >= 0xd0 && code <= 0xd3) {
        //  Signed encodings are accepted when the value is not negative
        int width = 1 << (code - 0xd0);
        if (lh_reader_left (self) < (size_t) width + 1)
            return -1;
        if (self->ptr [1] & 0x80)
            return -2;
        self->ptr++;
        return s_read_be (self, width, value);
    }
    return -2;
}

int
lh_reader_bool (lh_reader_t *self, bool *value)
{
    if (lh_reader_left (self) < 1)
        return -1;
    uint8_t code = *self->ptr;
    if (code != 0xc2 && code != 0xc3)
        return -2;
    self->ptr++;
    *value = code == 0xc3;
    return 0;
}

//  Walk one object. Counts every element into *elements; refuses depth,
//  element totals and string sizes over the limits.
static int
s_walk (lh_reader_t *self, size_t depth, const lh_limits_t *limits, size_t *elements)
{
    if (lh_reader_left (self) < 1)
        return -1;
    if (++*elements > limits->max_elements)
        return -2;
    uint8_t code = *self->ptr;
    uint64_t length = 0;
    uint32_t count;
    int rc;

    if (code < 0x80 || code >= 0xe0 || code == 0xc0 || code == 0xc2 || code == 0xc3) {
        self->ptr++;                    //  fixint, nil, bool
        return 0;
    }
    if ((code & 0xf0) == 0x80 || code == 0xde || code == 0xdf
    ||  (code & 0xf0) == 0x90 || code == 0xdc || code == 0xdd) {
        bool is_map = (code & 0xf0) == 0x80 || code == 0xde || code == 0xdf;
        if (depth >= limits->max_depth)
            return -2;
        rc = is_map? lh_reader_map (self, &count): lh_reader_array (self, &count);
        if (rc)
            return rc;
        uint64_t items = is_map? 2 * (uint64_t) count: count;
        for (uint64_t item = 0; item < items; item++)
            if ((rc = s_walk (self, depth + 1, limits, elements)))
                return rc;
        return 0;
    }
    self->ptr++;
    switch (code) {
        case 0xcc: case 0xd0: length = 1; break;
        case 0xcd: case 0xd1: length = 2; break;
        case 0xce: case 0xd2: case 0xca: length = 4; break;
        case 0xcf: case 0xd3: case 0xcb: length = 8; break;
        case 0xd4: length = 2; break;   //  fixext: type + data
        case 0xd5: length = 3; break;
        case 0xd6: length = 5; break;
        case 0xd7: length = 9; break;
        case 0xd8: length = 17; break;
        case 0xd9: case 0xc4: rc = s_read_be (self, 1, &length); goto sized;
        case 0xda: case 0xc5: rc = s_read_be (self, 2, &length); goto sized;
        case 0xdb: case 0xc6: rc = s_read_be (self, 4, &length); goto sized;
        case 0xc7: rc = s_read_be (self, 1, &length); length++; goto sized;
        case 0xc8: rc = s_read_be (self, 2, &length); length++; goto sized;
        case 0xc9: rc = s_read_be (self, 4, &length); length++; goto sized;
        default:
            if ((code & 0xe0) == 0xa0) {
                length = code & 0x1f;
                break;
            }
            return -2;                  //  0xc1: never used
    }
    if (length > lh_reader_left (self))
        return -1;
    self->ptr += length;
    return 0;

sized:
    if (rc)
        return rc;
    if (length > limits->max_string + 1)
        return -2;
    if (length > lh_reader_left (self))
        return -1;
    self->ptr += length;
    return 0;
}

int
lh_reader_skip (lh_reader_t *self, size_t max_depth)
{
    lh_limits_t limits = lh_limits_default;
    limits.max_depth = max_depth;
    limits.max_elements = SIZE_MAX;
    size_t elements = 0;
    return s_walk (self, 0, &limits, &elements);
}


//  --------------------------------------------------------------------------
//  Walk a whole msgpack object and check it against the limits

int
lh_msgpack_check (const void *data, size_t size, const lh_limits_t *limits)
{
    if (!limits)
        limits = &lh_limits_default;
    lh_reader_t reader;
    lh_reader_init (&reader, data, size);
    size_t elements = 0;
    int rc = s_walk (&reader, 0, limits, &elements);
    if (rc == 0 && lh_reader_left (&reader))
        rc = -2;                        //  trailing bytes
    return rc;
}


//  --------------------------------------------------------------------------
//  Check, then unpack into a zone owned by the caller

int
lh_msgpack_unpack (const void *data, size_t size, const lh_limits_t *limits,
                   msgpack_zone *zone, msgpack_object *object)
{
    //  msgpack-c's unpacker holds at most 32 open containers
    lh_limits_t bounded = limits? *limits: lh_limits_default;
    if (bounded.max_depth > LH_UNPACK_DEPTH_MAX)
        bounded.max_depth = LH_UNPACK_DEPTH_MAX;
    int rc = lh_msgpack_check (data, size, &bounded);
    if (rc)
        return rc;
    size_t offset = 0;
    msgpack_unpack_return result = msgpack_unpack ((const char *) data, size,
                                                   &offset, zone, object);
    return result == MSGPACK_UNPACK_SUCCESS? 0: -2;
}


//  --------------------------------------------------------------------------
//  Read a string value into a fixed header field

static int
s_decode_str (lh_reader_t *reader, lh_header_t *self, uint32_t bit)
{
    const char *str;
    uint32_t size;
    int rc = lh_reader_str (reader, &str, &size);
    if (rc)
        return rc;
    size_t capacity;
    char *field = s_header_field (self, bit, &capacity);
    if (size >= capacity || memchr (str, 0, size))
        return -2;
    memcpy (field, str, size);
    field [size] = 0;
    self->has |= bit;
    return 0;
}

//  Read an unsigned value that must fit in 32 bits
static int
s_decode_u32 (lh_reader_t *reader, uint32_t *value)
{
    uint64_t wide;
    int rc = lh_reader_uint (reader, &wide);
    if (rc)
        return rc;
    if (wide > UINT32_MAX)
        return -2;
    *value = (uint32_t) wide;
    return 0;
}


//  --------------------------------------------------------------------------
//  Decode a header frame. Returns 0, -1 (truncated) or -2 (malformed).

int
lh_header_decode (lh_header_t *self, const uint8_t *data, size_t size)
{
    assert (self);
    self->has = 0;
    self->t = LH_T_NONE;
    self->id = self->cid = self->dl = self->bseq = self->brx = self->max_msg = 0;
    self->st = self->credit = self->att = self->hb_ivl = self->hb_live = 0;
    self->q = false;

    lh_reader_t reader;
    lh_reader_init (&reader, data, size);
    uint32_t count;
    int rc = lh_reader_map (&reader, &count);
    if (rc)
        return rc;
    if (count > LH_HEADER_KEYS_MAX)
        return -2;

    while (count--) {
        const char *key;
        uint32_t key_size;
        if ((rc = lh_reader_str (&reader, &key, &key_size)))
            return rc;
        uint32_t bit = 0;
        //  Keys by size, then bytes: a handful of compares per key
        switch (key_size) {
            case 1:
                if (*key == 't') {
                    const char *name;
                    uint32_t name_size;
                    if ((rc = lh_reader_str (&reader, &name, &name_size)))
                        return rc;
                    self->t = lh_type_lookup (name, name_size);
                    if (self->t == LH_T_NONE)
                        return -2;
                    self->has |= LH_H_T;
                    continue;
                }
                if (*key == 'q') {
                    if ((rc = lh_reader_bool (&reader, &self->q)))
                        return rc;
                    self->has |= LH_H_Q;
                    continue;
                }
                break;
            case 2:
                if (memcmp (key, "id", 2) == 0) {
                    if ((rc = lh_reader_uint (&reader, &self->id)))
                        return rc;
                    self->has |= LH_H_ID;
                    continue;
                }
                if (memcmp (key, "dl", 2) == 0) {
                    if ((rc = lh_reader_uint (&reader, &self->dl)))
                        return rc;
                    self->has |= LH_H_DL;
                    continue;
                }
                if (memcmp (key, "st", 2) == 0) {
                    if ((rc = s_decode_u32 (&reader, &self->st)))
                        return rc;
                    self->has |= LH_H_ST;
                    continue;
                }
                if (memcmp (key, "tr", 2) == 0)
                    bit = LH_H_TR;
                else
                if (memcmp (key, "ps", 2) == 0)
                    bit = LH_H_PS;
                else
                if (memcmp (key, "op", 2) == 0)
                    bit = LH_H_OP;
                break;
            case 3:
                if (memcmp (key, "cid", 3) == 0) {
                    if ((rc = lh_reader_uint (&reader, &self->cid)))
                        return rc;
                    self->has |= LH_H_CID;
                    continue;
                }
                if (memcmp (key, "brx", 3) == 0) {
                    if ((rc = lh_reader_uint (&reader, &self->brx)))
                        return rc;
                    self->has |= LH_H_BRX;
                    continue;
                }
                if (memcmp (key, "att", 3) == 0) {
                    if ((rc = s_decode_u32 (&reader, &self->att)))
                        return rc;
                    self->has |= LH_H_ATT;
                    continue;
                }
                if (memcmp (key, "svc", 3) == 0)
                    bit = LH_H_SVC;
                else
                if (memcmp (key, "src", 3) == 0)
                    bit = LH_H_SRC;
                else
                if (memcmp (key, "uid", 3) == 0)
                    bit = LH_H_UID;
                else
                if (memcmp (key, "ops", 3) == 0)
                    bit = LH_H_OPS;
                break;
            case 4:
                if (memcmp (key, "bseq", 4) == 0) {
                    if ((rc = lh_reader_uint (&reader, &self->bseq)))
                        return rc;
                    self->has |= LH_H_BSEQ;
                    continue;
                }
                if (memcmp (key, "idem", 4) == 0)
                    bit = LH_H_IDEM;
                else
                if (memcmp (key, "name", 4) == 0)
                    bit = LH_H_NAME;
                else
                if (memcmp (key, "solo", 4) == 0)
                    bit = LH_H_SOLO;
                break;
            case 5:
                if (memcmp (key, "topic", 5) == 0)
                    bit = LH_H_TOPIC;
                break;
            case 6:
                if (memcmp (key, "credit", 6) == 0) {
                    if ((rc = s_decode_u32 (&reader, &self->credit)))
                        return rc;
                    self->has |= LH_H_CREDIT;
                    continue;
                }
                if (memcmp (key, "hb_ivl", 6) == 0) {
                    if ((rc = s_decode_u32 (&reader, &self->hb_ivl)))
                        return rc;
                    self->has |= LH_H_HB_IVL;
                    continue;
                }
                break;
            case 7:
                if (memcmp (key, "hb_live", 7) == 0) {
                    if ((rc = s_decode_u32 (&reader, &self->hb_live)))
                        return rc;
                    self->has |= LH_H_HB_LIVE;
                    continue;
                }
                if (memcmp (key, "max_msg", 7) == 0) {
                    if ((rc = lh_reader_uint (&reader, &self->max_msg)))
                        return rc;
                    self->has |= LH_H_MAX_MSG;
                    continue;
                }
                break;
            default:
                break;
        }
        if (bit) {
            if ((rc = s_decode_str (&reader, self, bit)))
                return rc;
        }
        else
        if ((rc = lh_reader_skip (&reader, 8)))
            return rc;                  //  unknown key: skipped, bounded
    }
    if (lh_reader_left (&reader))
        return -2;                      //  trailing bytes after the map
    if (!(self->has & LH_H_T))
        return -2;                      //  every header names its type
    return 0;
}


//  --------------------------------------------------------------------------
//  Discard the rest of a multipart message

static void
s_drain (void *handle)
{
    int more = 1;
    size_t more_size = sizeof (more);
    while (zmq_getsockopt (handle, ZMQ_RCVMORE, &more, &more_size) == 0 && more) {
        zmq_msg_t part;
        zmq_msg_init (&part);
        if (zmq_msg_recv (&part, handle, 0) == -1) {
            zmq_msg_close (&part);
            break;
        }
        zmq_msg_close (&part);
        more_size = sizeof (more);
    }
}


//  --------------------------------------------------------------------------
//  Hash a uint64_t request id (mix the bits of a counter)

size_t
lh_id_hash (const void *key)
{
    uint64_t id = *(const uint64_t *) key;
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t) id;
}


//  --------------------------------------------------------------------------
//  Compare two uint64_t request ids

int
lh_id_compare (const void *key1, const void *key2)
{
    uint64_t a = *(const uint64_t *) key1, b = *(const uint64_t *) key2;
    return (a > b) - (a < b);
}


//  --------------------------------------------------------------------------
//  Free the frames a received message holds; safe to call twice.

void
lh_msg_reset (lh_msg_t *self)
{
    assert (self);
    zframe_destroy (&self->routing);
    zframe_destroy (&self->header_frame);
    zframe_destroy (&self->body);
}


//  --------------------------------------------------------------------------
//  Receive one whole message. Returns 0, -1 (nothing read), -2 (malformed,
//  discarded).

static int
s_msg_recv (lh_msg_t *self, void *socket, bool router, size_t max_body, int flags)
{
    assert (self);
    void *handle = zsock_resolve (socket);
    self->routing = self->header_frame = self->body = NULL;

    if (router) {
        self->routing = flags? zframe_recv_nowait (handle): zframe_recv (handle);
        if (!self->routing)
            return flags && zmq_errno () == EAGAIN? 1: -1;
        if (!zframe_more (self->routing)) {
            lh_msg_reset (self);
            return -2;
        }
        flags = 0;                      //  the rest of a message is there
    }
    //  Signature frame, read in place: it is not kept
    zmq_msg_t signature;
    zmq_msg_init (&signature);
    if (zmq_msg_recv (&signature, handle, flags) == -1) {
        bool again = flags && zmq_errno () == EAGAIN;
        zmq_msg_close (&signature);
        lh_msg_reset (self);
        return again? 1: router? -2: -1;
    }
    bool valid = zmq_msg_size (&signature) == LH_SIGNATURE_SIZE
              && memcmp (zmq_msg_data (&signature), LH_SIGNATURE, LH_SIGNATURE_SIZE) == 0
              && zmq_msg_more (&signature);
    zmq_msg_close (&signature);
    if (!valid) {
        s_drain (handle);
        lh_msg_reset (self);
        return -2;
    }
    self->header_frame = zframe_recv (handle);
    if (!self->header_frame
    ||  zframe_size (self->header_frame) > LH_HEADER_MAX
    ||  lh_header_decode (&self->header, zframe_data (self->header_frame),
                          zframe_size (self->header_frame)) != 0) {
        s_drain (handle);
        lh_msg_reset (self);
        return -2;
    }
    if (zframe_more (self->header_frame)) {
        self->body = zframe_recv (handle);
        if (!self->body
        ||  zframe_more (self->body)
        ||  zframe_size (self->body) > max_body) {
            s_drain (handle);
            lh_msg_reset (self);
            return -2;
        }
    }
    return 0;
}

int
lh_msg_recv (lh_msg_t *self, void *socket, bool router, size_t max_body)
{
    return s_msg_recv (self, socket, router, max_body, 0);
}


//  --------------------------------------------------------------------------
//  Receive one whole message if one is waiting, without blocking. Returns
//  as lh_msg_recv, or 1 when nothing is waiting.

int
lh_msg_try_recv (lh_msg_t *self, void *socket, bool router, size_t max_body)
{
    return s_msg_recv (self, socket, router, max_body, ZMQ_DONTWAIT);
}


//  --------------------------------------------------------------------------
//  Send a message; routing frame borrowed, body taken on success.

int
lh_msg_send (void *socket, zframe_t *routing, const lh_header_t *header,
             zframe_t **body_p)
{
    assert (header);
    void *handle = zsock_resolve (socket);
    uint8_t buffer [LH_HEADER_MAX];
    int size = lh_header_encode (header, buffer, sizeof (buffer));
    assert (size > 0);                  //  fixed fields always fit
    bool body = body_p && *body_p;

    //  Only the first part of a message can fail: once it is queued, libzmq
    //  takes the rest of the message whole.
    if (routing) {
        if (zmq_send (handle, zframe_data (routing), zframe_size (routing),
                      ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1)
            return -1;
        zmq_send (handle, LH_SIGNATURE, LH_SIGNATURE_SIZE, ZMQ_SNDMORE);
    }
    else
    if (zmq_send (handle, LH_SIGNATURE, LH_SIGNATURE_SIZE, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1)
        return -1;

    zmq_send (handle, buffer, size, body? ZMQ_SNDMORE: 0);
    if (body)
        zframe_send (body_p, handle, 0);
    return 0;
}


//  --------------------------------------------------------------------------
//  Build the SPEC error body

zframe_t *
lh_error_body (uint32_t status, const char *kind, const char *reason,
               uint64_t retry_after_ms)
{
    return lh_error_body_field (status, kind, reason, NULL, retry_after_ms);
}


//  --------------------------------------------------------------------------
//  The SPEC error body naming the field at fault ("field"), when not NULL

zframe_t *
lh_error_body_field (uint32_t status, const char *kind, const char *reason,
                     const char *field, uint64_t retry_after_ms)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    if (!kind)
        kind = lh_status_kind (status);
    if (!reason)
        reason = lh_status_text (status);
    msgpack_pack_map (&packer, 1);
    msgpack_pack_str_with_body (&packer, "error", 5);
    msgpack_pack_map (&packer, 2 + (retry_after_ms? 1: 0) + (field? 1: 0));
    msgpack_pack_str_with_body (&packer, "kind", 4);
    msgpack_pack_str_with_body (&packer, kind, strlen (kind));
    msgpack_pack_str_with_body (&packer, "reason", 6);
    msgpack_pack_str_with_body (&packer, reason, strlen (reason));
    if (field) {
        msgpack_pack_str_with_body (&packer, "field", 5);
        msgpack_pack_str_with_body (&packer, field, strlen (field));
    }
    if (retry_after_ms) {
        msgpack_pack_str_with_body (&packer, "retry_after_ms", 14);
        msgpack_pack_uint64 (&packer, retry_after_ms);
    }
    zframe_t *frame = zframe_new (buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    return frame;
}


//  --------------------------------------------------------------------------
//  Self test

typedef struct {
    const char *name;                   //  what the case shows
    const char *bytes;                  //  header bytes, hex
    int expect;                         //  lh_header_decode result
} s_decode_case_t;

static size_t
s_unhex (const char *hex, uint8_t *bytes, size_t capacity)
{
    size_t size = 0;
    while (hex [0] && hex [1] && size < capacity) {
        unsigned int value;
        if (sscanf (hex, "%2x", &value) != 1)
            break;
        bytes [size++] = (uint8_t) value;
        hex += 2;
    }
    return size;
}

void
lh_proto_test (bool verbose)
{
    printf (" * lh_proto: ");

    //  Request id keys: equal ids hash alike, order is numeric (not bytes)
    uint64_t ids [3] = { 1, 256, 256 };
    assert (lh_id_hash (&ids [1]) == lh_id_hash (&ids [2]));
    assert (lh_id_hash (&ids [0]) != lh_id_hash (&ids [1]));
    assert (lh_id_compare (&ids [0], &ids [1]) < 0 && lh_id_compare (&ids [1], &ids [0]) > 0);
    assert (lh_id_compare (&ids [1], &ids [2]) == 0);

    //  Round trip of every key
    lh_header_t header, decoded;
    lh_header_init (&header, LH_T_REQ);
    header.id = 42;                         header.has |= LH_H_ID;
    header.cid = UINT64_MAX;                header.has |= LH_H_CID;
    header.dl = 5000;                       header.has |= LH_H_DL;
    header.st = 503;                        header.has |= LH_H_ST;
    header.q = true;                        header.has |= LH_H_Q;
    header.credit = 16;                     header.has |= LH_H_CREDIT;
    header.bseq = 1ULL << 40;               header.has |= LH_H_BSEQ;
    header.brx = 1763700000000000ULL;       header.has |= LH_H_BRX;
    header.att = 2;                         header.has |= LH_H_ATT;
    header.hb_ivl = 1000;                   header.has |= LH_H_HB_IVL;
    header.hb_live = 3;                     header.has |= LH_H_HB_LIVE;
    header.max_msg = 16 << 20;              header.has |= LH_H_MAX_MSG;
    lh_header_set_str (&header, LH_H_SVC, "storaged");
    lh_header_set_str (&header, LH_H_OP, "put");
    lh_header_set_str (&header, LH_H_TOPIC, "catalog.changed");
    lh_header_set_str (&header, LH_H_IDEM, "k-1");
    lh_header_set_str (&header, LH_H_TR, "4bf92f3577b34da6a3ce929d0e0e4736");
    lh_header_set_str (&header, LH_H_PS, "00f067aa0ba902b7");
    lh_header_set_str (&header, LH_H_SRC, "gateway");
    lh_header_set_str (&header, LH_H_UID, "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7");
    lh_header_set_str (&header, LH_H_NAME, "node-b");
    lh_header_set_str (&header, LH_H_OPS, "put,get,head");
    lh_header_set_str (&header, LH_H_SOLO, "host-b:4242:0123abcd");
    uint8_t buffer [LH_HEADER_MAX];
    int size = lh_header_encode (&header, buffer, sizeof (buffer));
    assert (size > 0);
    assert (lh_header_decode (&decoded, buffer, size) == 0);
    assert (decoded.has == header.has);
    assert (decoded.t == LH_T_REQ);
    assert (decoded.id == 42 && decoded.cid == UINT64_MAX && decoded.dl == 5000);
    assert (decoded.st == 503 && decoded.q && decoded.credit == 16);
    assert (decoded.bseq == 1ULL << 40 && decoded.brx == header.brx && decoded.att == 2);
    assert (decoded.hb_ivl == 1000 && decoded.hb_live == 3 && decoded.max_msg == 16 << 20);
    assert (streq (decoded.svc, "storaged") && streq (decoded.op, "put"));
    assert (streq (decoded.topic, "catalog.changed") && streq (decoded.idem, "k-1"));
    assert (streq (decoded.tr, header.tr) && streq (decoded.src, "gateway"));
    assert (streq (decoded.ps, "00f067aa0ba902b7"));
    assert (streq (decoded.uid, header.uid) && streq (decoded.name, "node-b"));
    assert (streq (decoded.ops, "put,get,head"));
    assert (streq (decoded.solo, "host-b:4242:0123abcd"));
    //  Too small a buffer is refused, never overrun
    for (int capacity = 0; capacity < size; capacity++)
        assert (lh_header_encode (&header, buffer, capacity) == -1);
    //  Every prefix of a valid header is truncated or malformed, never ok
    size = lh_header_encode (&header, buffer, sizeof (buffer));
    for (int prefix = 0; prefix < size; prefix++)
        assert (lh_header_decode (&decoded, buffer, prefix) != 0);

    //  Table of hostile headers
    s_decode_case_t cases [] = {
        { "minimal HB", "81a174a24842", 0 },
        { "unknown key skipped", "82a174a24842a178c0", 0 },
        { "no type", "81a26964 01", -2 },
        { "unknown type", "81a174a3464f4f", -2 },
        { "not a map", "93010203", -2 },
        { "empty", "", -1 },
        { "map16 claiming 2^16-1 pairs", "deffff", -1 },
        { "map32 claiming 2^24 pairs in 5 bytes", "df01000000", -1 },
        { "array32 claiming 2^32-1 as a value", "81a174dd ffffffff", -2 },
        { "t as int", "81a17401", -2 },
        { "id as str", "82a174a24842a26964a131", -2 },
        { "id negative", "82a174a24842a26964ff", -2 },
        { "q as str", "82a174a24842a171a131", -2 },
        { "st over 32 bits", "82a174a24842a27374cf0000000100000000", -2 },
        { "svc too long (65)", "82a174a24842a3737663d941"
          "4141414141414141414141414141414141414141414141414141414141414141"
          "414141414141414141414141414141414141414141414141414141414141414141", -2 },
        { "svc with NUL", "82a174a24842a3737663a2610062", -2 },
        { "ps of 16", "82a174a3524551a27073b0"
          "30306630363761613062613930326237", 0 },
        { "ps too long (17)", "82a174a3524551a27073b1"
          "3030663036376161306261393032623737", -2 },
        { "ps as int", "82a174a3524551a2707301", -2 },
        { "str8 claiming 255 bytes in 1", "82a174a24842a3737663d9ff61", -1 },
        { "trailing byte", "81a174a2484200", -2 },
        { "unknown key holding a deep nest", "82a174a24842a178919191919191919191919101", -2 },
        { "reserved byte 0xc1", "82a174a24842a178c1", -2 },
        { NULL, NULL, 0 }
    };
    for (s_decode_case_t *test = cases; test->name; test++) {
        char hex [512];
        size_t out = 0;
        for (const char *c = test->bytes; *c && out < sizeof (hex) - 1; c++)
            if (*c != ' ')
                hex [out++] = *c;
        hex [out] = 0;
        size_t bytes = s_unhex (hex, buffer, sizeof (buffer));
        int rc = lh_header_decode (&decoded, buffer, bytes);
        if (verbose || rc != test->expect)
            printf ("\n   %s: %d (expect %d)", test->name, rc, test->expect);
        assert (rc == test->expect);
    }

    //  More keys than any header may hold, each well formed
    size_t length = 0;
    buffer [length++] = 0xde;
    buffer [length++] = 0;
    buffer [length++] = LH_HEADER_KEYS_MAX + 1;
    for (int key = 0; key <= LH_HEADER_KEYS_MAX; key++) {
        buffer [length++] = 0xa1;
        buffer [length++] = 'x';
        buffer [length++] = 0xc0;
    }
    assert (lh_header_decode (&decoded, buffer, length) == -2);

    //  Body checker: limits apply before msgpack-c sees the bytes
    uint8_t bomb [] = { 0xdd, 0xff, 0xff, 0xff, 0xff };
    assert (lh_msgpack_check (bomb, sizeof (bomb), NULL) == -1);
    uint8_t map_bomb [] = { 0xdf, 0x01, 0x00, 0x00, 0x00 };
    assert (lh_msgpack_check (map_bomb, sizeof (map_bomb), NULL) == -1);
    uint8_t bin_bomb [] = { 0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00 };
    assert (lh_msgpack_check (bin_bomb, sizeof (bin_bomb), NULL) != 0);
    uint8_t deep [200];
    for (size_t index = 0; index < sizeof (deep) - 1; index++)
        deep [index] = 0x91;            //  [[[[...]]]]
    deep [sizeof (deep) - 1] = 0x01;
    assert (lh_msgpack_check (deep, sizeof (deep), NULL) == -2);
    lh_limits_t roomy = lh_limits_default;
    roomy.max_depth = 256;
    assert (lh_msgpack_check (deep, sizeof (deep), &roomy) == 0);
    lh_limits_t few = lh_limits_default;
    few.max_elements = 10;
    assert (lh_msgpack_check (deep, sizeof (deep), &few) == -2);
    uint8_t trailing [] = { 0x01, 0x02 };
    assert (lh_msgpack_check (trailing, sizeof (trailing), NULL) == -2);

    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object object;
    uint8_t simple [] = { 0x82, 0xa1, 0x61, 0x01, 0xa1, 0x62, 0x92, 0xc3, 0xc0 };
    assert (lh_msgpack_unpack (simple, sizeof (simple), NULL, &zone, &object) == 0);
    assert (object.type == MSGPACK_OBJECT_MAP && object.via.map.size == 2);
    assert (lh_msgpack_unpack (bomb, sizeof (bomb), NULL, &zone, &object) == -1);
    //  Nesting at msgpack-c's limit unpacks; one more is refused by the check
    uint8_t nest [LH_UNPACK_DEPTH_MAX + 2];
    for (size_t index = 0; index < sizeof (nest); index++)
        nest [index] = 0x91;
    nest [LH_UNPACK_DEPTH_MAX] = 0x01;
    assert (lh_msgpack_unpack (nest, LH_UNPACK_DEPTH_MAX + 1, &roomy, &zone, &object) == 0);
    nest [LH_UNPACK_DEPTH_MAX + 1] = 0x01;
    assert (lh_msgpack_unpack (nest, LH_UNPACK_DEPTH_MAX + 2, &roomy, &zone, &object) == -2);
    msgpack_zone_destroy (&zone);

    //  Error body
    zframe_t *error = lh_error_body (429, "queue_full", "echo queue is full", 100);
    msgpack_zone_init (&zone, 1024);
    assert (lh_msgpack_unpack (zframe_data (error), zframe_size (error), NULL, &zone, &object) == 0);
    assert (object.type == MSGPACK_OBJECT_MAP);
    msgpack_object inner = object.via.map.ptr [0].val;
    assert (inner.type == MSGPACK_OBJECT_MAP && inner.via.map.size == 3);
    msgpack_zone_destroy (&zone);
    zframe_destroy (&error);

    //  Names
    assert (lh_type_lookup ("REQ", 3) == LH_T_REQ);
    assert (lh_type_lookup ("REQX", 4) == LH_T_NONE);
    assert (streq (lh_type_name (LH_T_CREDIT), "CREDIT"));
    assert (streq (lh_status_kind (504), "deadline"));
    assert (streq (lh_status_text (404), "Not Found"));

    //  Messages over a socket pair: good, bad signature, extra frames
    zsock_t *router = zsock_new_router ("inproc://lh-proto-test");
    zsock_t *dealer = zsock_new_dealer ("inproc://lh-proto-test");
    assert (router && dealer);
    lh_header_init (&header, LH_T_HELLO);
    lh_header_set_str (&header, LH_H_NAME, "tester");
    zframe_t *body = zframe_new ("\x81\xa1x\x01", 4);
    assert (lh_msg_send (dealer, NULL, &header, &body) == 0);
    assert (body == NULL);
    lh_msg_t msg;
    assert (lh_msg_recv (&msg, router, true, 1024) == 0);
    assert (msg.header.t == LH_T_HELLO && streq (msg.header.name, "tester"));
    assert (msg.body && zframe_size (msg.body) == 4);
    //  Reply through the routing id
    lh_header_init (&header, LH_T_WELCOME);
    header.hb_ivl = 1000; header.has |= LH_H_HB_IVL;
    assert (lh_msg_send (router, msg.routing, &header, NULL) == 0);
    lh_msg_reset (&msg);
    lh_msg_reset (&msg);
    lh_msg_t reply;
    assert (lh_msg_recv (&reply, dealer, false, 1024) == 0);
    assert (reply.header.t == LH_T_WELCOME && reply.header.hb_ivl == 1000 && !reply.body);
    lh_msg_reset (&reply);

    zstr_sendx (dealer, "LHB2", "x", NULL);
    assert (lh_msg_recv (&msg, router, true, 1024) == -2);
    zstr_sendx (dealer, "LHB1", "\x81\xa1t\xa2HB", "\x01", "extra", NULL);
    assert (lh_msg_recv (&msg, router, true, 1024) == -2);
    zstr_sendx (dealer, "LHB1", NULL);
    assert (lh_msg_recv (&msg, router, true, 1024) == -2);
    //  Body over the limit
    lh_header_init (&header, LH_T_HB);
    body = zframe_new (NULL, 2048);
    assert (lh_msg_send (dealer, NULL, &header, &body) == 0);
    assert (lh_msg_recv (&msg, router, true, 1024) == -2);
    //  And the socket still works after all that
    assert (lh_msg_send (dealer, NULL, &header, NULL) == 0);
    assert (lh_msg_recv (&msg, router, true, 1024) == 0);
    assert (msg.header.t == LH_T_HB);
    lh_msg_reset (&msg);
    //  Unknown routing id with ROUTER_MANDATORY: EHOSTUNREACH, counted by caller
    int mandatory = 1;
    zmq_setsockopt (zsock_resolve (router), ZMQ_ROUTER_MANDATORY, &mandatory, sizeof (mandatory));
    zframe_t *nobody = zframe_new ("nobody", 6);
    body = zframe_new ("\xc0", 1);
    assert (lh_msg_send (router, nobody, &header, &body) == -1);
    assert (errno == EHOSTUNREACH && body);
    zframe_destroy (&body);
    zframe_destroy (&nobody);

    zsock_destroy (&dealer);
    zsock_destroy (&router);
    printf ("OK\n");
}
