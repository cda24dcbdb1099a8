/*  =========================================================================
    lh_body - building and reading msgpack bodies
    =========================================================================
*/

#include "lh_body.h"

#define S_PACK_START    512             //  bytes a pack buffer starts with
#define S_DEPTH_MAX     32              //  containers open at once, counted

//  A container being written inside an open (self-counting) one
typedef struct {
    size_t offset;                      //  where its map32/array32 header is
    uint32_t items;                     //  open: values written so far
    uint32_t remaining;                 //  fixed: values still to come
    bool open;                          //  counted (true) or fixed-size
    bool map;                           //  a map (items are keys + values)
} s_frame_t;

struct _lh_pack_t {
    msgpack_sbuffer buffer;             //  encoded bytes
    msgpack_packer packer;              //  writes into buffer
    s_frame_t stack [S_DEPTH_MAX];      //  containers being written
    int depth;                          //  0 when none is open
};


//  --------------------------------------------------------------------------
//  One whole value was written at the current level: count it in the open
//  container it belongs to. A fixed container whose last value this was is
//  whole too, and counts in its own parent.

static inline void
s_item (lh_pack_t *self)
{
    while (self->depth > 0) {
        s_frame_t *top = &self->stack [self->depth - 1];
        if (top->open) {
            top->items++;
            return;
        }
        assert (top->remaining > 0);
        if (--top->remaining > 0)
            return;
        self->depth--;
    }
}


//  --------------------------------------------------------------------------
//  A fixed-size container starts: inside an open one, follow it so that it
//  counts once, when its last value is written

static void
s_fixed (lh_pack_t *self, uint32_t values)
{
    if (self->depth == 0)
        return;
    if (values == 0) {
        s_item (self);
        return;
    }
    assert (self->depth < S_DEPTH_MAX);
    s_frame_t *frame = &self->stack [self->depth++];
    memset (frame, 0, sizeof (*frame));
    frame->remaining = values;
}


//  --------------------------------------------------------------------------
//  Create a new, empty pack buffer

lh_pack_t *
lh_pack_new (void)
{
    lh_pack_t *self = (lh_pack_t *) zmalloc (sizeof (lh_pack_t));
    assert (self);
    msgpack_sbuffer_init (&self->buffer);
    //  Most bodies are small: start at S_PACK_START bytes (doubling as
    //  needed) rather than msgpack-c's 8 KiB, which is a large allocation
    //  for malloc (it consolidates its free lists for each one)
    self->buffer.data = (char *) malloc (S_PACK_START);
    assert (self->buffer.data);
    self->buffer.alloc = S_PACK_START;
    msgpack_packer_init (&self->packer, &self->buffer, msgpack_sbuffer_write);
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy a pack buffer; nulls the caller's pointer

void
lh_pack_destroy (lh_pack_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        lh_pack_t *self = *self_p;
        msgpack_sbuffer_destroy (&self->buffer);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  The packer, for anything the helpers do not cover

msgpack_packer *
lh_pack_packer (lh_pack_t *self)
{
    assert (self);
    return &self->packer;
}

void
lh_pack_map (lh_pack_t *self, uint32_t count)
{
    msgpack_pack_map (&self->packer, count);
    s_fixed (self, count * 2);
}

void
lh_pack_array (lh_pack_t *self, uint32_t count)
{
    msgpack_pack_array (&self->packer, count);
    s_fixed (self, count);
}


//  --------------------------------------------------------------------------
//  Open a map or array whose size is counted as it is written, and close
//  it (the count is written then). Inside an open container every value
//  must go through the lh_pack_* calls (not the raw packer) to be counted.

static void
s_open (lh_pack_t *self, bool map)
{
    assert (self->depth < S_DEPTH_MAX);
    s_frame_t *frame = &self->stack [self->depth++];
    memset (frame, 0, sizeof (*frame));
    frame->open = true;
    frame->map = map;
    frame->offset = self->buffer.size;
    const char header [5] = { map? (char) 0xdf: (char) 0xdd, 0, 0, 0, 0 };
    msgpack_sbuffer_write (&self->buffer, header, sizeof (header));
}

void
lh_pack_open_map (lh_pack_t *self)
{
    assert (self);
    s_open (self, true);
}

void
lh_pack_open_array (lh_pack_t *self)
{
    assert (self);
    s_open (self, false);
}

void
lh_pack_close (lh_pack_t *self)
{
    assert (self);
    assert (self->depth > 0);
    s_frame_t *frame = &self->stack [self->depth - 1];
    assert (frame->open);
    assert (!frame->map || frame->items % 2 == 0);
    uint32_t count = frame->map? frame->items / 2: frame->items;
    uint8_t *header = (uint8_t *) self->buffer.data + frame->offset;
    header [1] = (uint8_t) (count >> 24);
    header [2] = (uint8_t) (count >> 16);
    header [3] = (uint8_t) (count >> 8);
    header [4] = (uint8_t) count;
    self->depth--;
    s_item (self);
}

void
lh_pack_str (lh_pack_t *self, const char *value)
{
    s_item (self);
    if (value)
        msgpack_pack_str_with_body (&self->packer, value, strlen (value));
    else
        msgpack_pack_nil (&self->packer);
}

void
lh_pack_strn (lh_pack_t *self, const char *value, size_t size)
{
    s_item (self);
    msgpack_pack_str_with_body (&self->packer, value, size);
}

void
lh_pack_bin (lh_pack_t *self, const void *data, size_t size)
{
    s_item (self);
    msgpack_pack_bin_with_body (&self->packer, data, size);
}

void
lh_pack_uint (lh_pack_t *self, uint64_t value)
{
    s_item (self);
    msgpack_pack_uint64 (&self->packer, value);
}

void
lh_pack_int (lh_pack_t *self, int64_t value)
{
    s_item (self);
    msgpack_pack_int64 (&self->packer, value);
}

void
lh_pack_double (lh_pack_t *self, double value)
{
    s_item (self);
    msgpack_pack_double (&self->packer, value);
}

void
lh_pack_bool (lh_pack_t *self, bool value)
{
    s_item (self);
    if (value)
        msgpack_pack_true (&self->packer);
    else
        msgpack_pack_false (&self->packer);
}

void
lh_pack_nil (lh_pack_t *self)
{
    s_item (self);
    msgpack_pack_nil (&self->packer);
}

void
lh_pack_raw (lh_pack_t *self, const void *data, size_t size)
{
    s_item (self);
    msgpack_sbuffer_write (&self->buffer, (const char *) data, size);
}

void
lh_pack_object (lh_pack_t *self, const msgpack_object *object)
{
    s_item (self);
    msgpack_pack_object (&self->packer, *object);
}

void
lh_pack_kv_str (lh_pack_t *self, const char *key, const char *value)
{
    lh_pack_str (self, key);
    lh_pack_str (self, value);
}

void
lh_pack_kv_uint (lh_pack_t *self, const char *key, uint64_t value)
{
    lh_pack_str (self, key);
    lh_pack_uint (self, value);
}

void
lh_pack_kv_int (lh_pack_t *self, const char *key, int64_t value)
{
    lh_pack_str (self, key);
    lh_pack_int (self, value);
}

void
lh_pack_kv_double (lh_pack_t *self, const char *key, double value)
{
    lh_pack_str (self, key);
    lh_pack_double (self, value);
}

void
lh_pack_kv_bool (lh_pack_t *self, const char *key, bool value)
{
    lh_pack_str (self, key);
    lh_pack_bool (self, value);
}


//  --------------------------------------------------------------------------
//  Encoded bytes so far (borrowed) and their size

const void *
lh_pack_data (lh_pack_t *self, size_t *size)
{
    assert (self);
    if (size)
        *size = self->buffer.size;
    return self->buffer.data;
}


//  --------------------------------------------------------------------------
//  Turn the pack into a frame; destroys the pack

zframe_t *
lh_pack_frame (lh_pack_t **self_p)
{
    assert (self_p && *self_p);
    lh_pack_t *self = *self_p;
    assert (self->depth == 0);          //  every open container closed
    zframe_t *frame = zframe_new (self->buffer.data, self->buffer.size);
    lh_pack_destroy (self_p);
    return frame;
}


//  --------------------------------------------------------------------------
//  Look a key up in a map object

const msgpack_object *
lh_obj_get (const msgpack_object *obj, const char *key)
{
    if (!obj || obj->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t size = strlen (key);
    for (uint32_t index = 0; index < obj->via.map.size; index++) {
        const msgpack_object *name = &obj->via.map.ptr [index].key;
        if (name->type == MSGPACK_OBJECT_STR
        &&  name->via.str.size == size
        &&  memcmp (name->via.str.ptr, key, size) == 0)
            return &obj->via.map.ptr [index].val;
    }
    return NULL;
}

bool
lh_obj_str (const msgpack_object *obj, const char *key, const char **value, size_t *size)
{
    const msgpack_object *item = lh_obj_get (obj, key);
    if (!item || item->type != MSGPACK_OBJECT_STR)
        return false;
    *value = item->via.str.ptr;
    if (size)
        *size = item->via.str.size;
    return true;
}

bool
lh_obj_uint (const msgpack_object *obj, const char *key, uint64_t *value)
{
    const msgpack_object *item = lh_obj_get (obj, key);
    if (!item || item->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *value = item->via.u64;
    return true;
}

bool
lh_obj_int (const msgpack_object *obj, const char *key, int64_t *value)
{
    const msgpack_object *item = lh_obj_get (obj, key);
    if (!item)
        return false;
    if (item->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *value = item->via.i64;
    else
    if (item->type == MSGPACK_OBJECT_POSITIVE_INTEGER && item->via.u64 <= INT64_MAX)
        *value = (int64_t) item->via.u64;
    else
        return false;
    return true;
}

bool
lh_obj_double (const msgpack_object *obj, const char *key, double *value)
{
    const msgpack_object *item = lh_obj_get (obj, key);
    if (!item)
        return false;
    if (item->type == MSGPACK_OBJECT_FLOAT64 || item->type == MSGPACK_OBJECT_FLOAT32)
        *value = item->via.f64;
    else
    if (item->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        *value = (double) item->via.u64;
    else
    if (item->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *value = (double) item->via.i64;
    else
        return false;
    return true;
}

bool
lh_obj_bool (const msgpack_object *obj, const char *key, bool *value)
{
    const msgpack_object *item = lh_obj_get (obj, key);
    if (!item || item->type != MSGPACK_OBJECT_BOOLEAN)
        return false;
    *value = item->via.boolean;
    return true;
}


//  --------------------------------------------------------------------------
//  Return a fresh NUL-terminated copy of a str object, or NULL

char *
lh_obj_strdup (const msgpack_object *obj)
{
    if (!obj || obj->type != MSGPACK_OBJECT_STR
    ||  memchr (obj->via.str.ptr, 0, obj->via.str.size))
        return NULL;
    char *copy = (char *) malloc (obj->via.str.size + 1);
    assert (copy);
    memcpy (copy, obj->via.str.ptr, obj->via.str.size);
    copy [obj->via.str.size] = 0;
    return copy;
}


//  --------------------------------------------------------------------------
//  Self test

void
lh_body_test (bool verbose)
{
    printf (" * lh_body: ");
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 7);
    lh_pack_kv_str (pack, "name", "workers");
    lh_pack_kv_uint (pack, "rows", 500000);
    lh_pack_kv_int (pack, "delta", -7);
    lh_pack_kv_double (pack, "score", 0.5);
    lh_pack_kv_bool (pack, "ok", true);
    lh_pack_str (pack, "blob");
    lh_pack_bin (pack, "\0\1\2", 3);
    lh_pack_str (pack, "nul");
    lh_pack_strn (pack, "a\0b", 3);
    zframe_t *frame = lh_pack_frame (&pack);
    assert (pack == NULL);

    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object object;
    assert (lh_msgpack_unpack (zframe_data (frame), zframe_size (frame), NULL, &zone, &object) == 0);
    const char *str;
    size_t size;
    uint64_t rows;
    int64_t delta;
    double score;
    bool ok;
    assert (lh_obj_str (&object, "name", &str, &size) && size == 7 && memcmp (str, "workers", 7) == 0);
    assert (lh_obj_uint (&object, "rows", &rows) && rows == 500000);
    assert (lh_obj_int (&object, "delta", &delta) && delta == -7);
    assert (lh_obj_int (&object, "rows", &delta) && delta == 500000);
    assert (lh_obj_double (&object, "score", &score) && score == 0.5);
    assert (lh_obj_double (&object, "rows", &score) && score == 500000.0);
    assert (lh_obj_bool (&object, "ok", &ok) && ok);
    //  Wrong types and missing keys are refused, not coerced
    assert (!lh_obj_uint (&object, "name", &rows));
    assert (!lh_obj_uint (&object, "delta", &rows));
    assert (!lh_obj_str (&object, "rows", &str, &size));
    assert (!lh_obj_bool (&object, "missing", &ok));
    assert (lh_obj_get (&object, "blob")->type == MSGPACK_OBJECT_BIN);
    char *copy = lh_obj_strdup (lh_obj_get (&object, "name"));
    assert (streq (copy, "workers"));
    free (copy);
    assert (lh_obj_strdup (lh_obj_get (&object, "nul")) == NULL);
    assert (lh_obj_strdup (lh_obj_get (&object, "rows")) == NULL);
    assert (lh_obj_get (lh_obj_get (&object, "rows"), "x") == NULL);
    msgpack_zone_destroy (&zone);
    zframe_destroy (&frame);

    //  Counted containers: the count is what was written, whatever the
    //  branches taken, with fixed and counted containers nested both ways
    pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "a", "x");
    lh_pack_str (pack, "list");
    lh_pack_open_array (pack);
    for (int index = 0; index < 300; index++)
        lh_pack_uint (pack, (uint64_t) index);
    lh_pack_close (pack);
    lh_pack_str (pack, "fixed");
    lh_pack_map (pack, 2);
    lh_pack_kv_uint (pack, "one", 1);
    lh_pack_str (pack, "inner");
    lh_pack_open_map (pack);
    lh_pack_close (pack);
    lh_pack_str (pack, "empty");
    lh_pack_array (pack, 0);
    lh_pack_str (pack, "raw");
    lh_pack_raw (pack, "\x92\x01\x02", 3);
    lh_pack_close (pack);
    frame = lh_pack_frame (&pack);
    msgpack_zone_init (&zone, 1024);
    assert (lh_msgpack_unpack (zframe_data (frame), zframe_size (frame), NULL, &zone, &object) == 0);
    assert (object.type == MSGPACK_OBJECT_MAP && object.via.map.size == 5);
    const msgpack_object *list = lh_obj_get (&object, "list");
    assert (list && list->type == MSGPACK_OBJECT_ARRAY && list->via.array.size == 300);
    assert (list->via.array.ptr [299].via.u64 == 299);
    const msgpack_object *fixed = lh_obj_get (&object, "fixed");
    assert (fixed && fixed->via.map.size == 2);
    assert (lh_obj_get (fixed, "inner")->type == MSGPACK_OBJECT_MAP);
    assert (lh_obj_get (fixed, "inner")->via.map.size == 0);
    assert (lh_obj_get (&object, "empty")->via.array.size == 0);
    assert (lh_obj_get (&object, "raw")->via.array.size == 2);
    msgpack_zone_destroy (&zone);
    zframe_destroy (&frame);
    if (verbose)
        printf ("(7 keys, counted containers) ");
    printf ("OK\n");
}
