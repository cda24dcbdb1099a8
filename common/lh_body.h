/*  =========================================================================
    lh_body - building and reading msgpack bodies

    Building: an lh_pack_t wraps msgpack-c's sbuffer and packer, with short
    helpers for the common shapes (key/value pairs in a map).

        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, 2);
        lh_pack_kv_str (pack, "name", "workers");
        lh_pack_kv_uint (pack, "rows", 500000);
        zframe_t *body = lh_pack_frame (&pack);     //  pack destroyed

    Reading: a decoded msgpack_object (from lh_msgpack_unpack) is walked
    with lh_obj_* lookups that return NULL / false on a wrong type, never
    assert: bodies arrive from the wire.
    =========================================================================
*/

#ifndef LH_BODY_H_INCLUDED
#define LH_BODY_H_INCLUDED

#include "lh_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _lh_pack_t lh_pack_t;

//  Create a new, empty pack buffer
lh_pack_t *
    lh_pack_new (void);

//  Destroy a pack buffer; nulls the caller's pointer
void
    lh_pack_destroy (lh_pack_t **self_p);

//  The packer, for anything the helpers below do not cover
msgpack_packer *
    lh_pack_packer (lh_pack_t *self);

void lh_pack_map (lh_pack_t *self, uint32_t count);
void lh_pack_array (lh_pack_t *self, uint32_t count);
//  A map or array whose size is counted as it is written: open it, write
//  its values (for a map, key then value) with the calls here, close it.
//  The count can never disagree with what was written. Inside an open
//  container, write only through lh_pack_* (the raw packer is not
//  counted). lh_pack_frame asserts that every open container was closed.
//
//      lh_pack_open_map (pack);
//      lh_pack_kv_str (pack, "name", name);
//      if (rows_known)
//          lh_pack_kv_uint (pack, "rows", rows);
//      lh_pack_close (pack);
void lh_pack_open_map (lh_pack_t *self);
void lh_pack_open_array (lh_pack_t *self);
void lh_pack_close (lh_pack_t *self);
void lh_pack_str (lh_pack_t *self, const char *value);        //  NULL packs nil
void lh_pack_strn (lh_pack_t *self, const char *value, size_t size);
void lh_pack_bin (lh_pack_t *self, const void *data, size_t size);
void lh_pack_uint (lh_pack_t *self, uint64_t value);
void lh_pack_int (lh_pack_t *self, int64_t value);
void lh_pack_double (lh_pack_t *self, double value);
void lh_pack_bool (lh_pack_t *self, bool value);
void lh_pack_nil (lh_pack_t *self);
//  Append an already-encoded msgpack object verbatim
void lh_pack_raw (lh_pack_t *self, const void *data, size_t size);
//  Pack a decoded object
void lh_pack_object (lh_pack_t *self, const msgpack_object *object);

//  Key/value pairs: the key, then the value
void lh_pack_kv_str (lh_pack_t *self, const char *key, const char *value);
void lh_pack_kv_uint (lh_pack_t *self, const char *key, uint64_t value);
void lh_pack_kv_int (lh_pack_t *self, const char *key, int64_t value);
void lh_pack_kv_double (lh_pack_t *self, const char *key, double value);
void lh_pack_kv_bool (lh_pack_t *self, const char *key, bool value);

//  Encoded bytes so far (borrowed) and their size
const void *
    lh_pack_data (lh_pack_t *self, size_t *size);

//  Turn the pack into a frame; destroys the pack, nulls the pointer
zframe_t *
    lh_pack_frame (lh_pack_t **self_p);

//  Look a key up in a map object; NULL if obj is not a map or has no key
const msgpack_object *
    lh_obj_get (const msgpack_object *obj, const char *key);

//  Typed lookups of a map's key: return false (and leave *value alone) if
//  the key is missing or of another type. Strings are borrowed, not NUL-
//  terminated: use the size.
bool lh_obj_str (const msgpack_object *obj, const char *key,
                 const char **value, size_t *size);
bool lh_obj_uint (const msgpack_object *obj, const char *key, uint64_t *value);
bool lh_obj_int (const msgpack_object *obj, const char *key, int64_t *value);
bool lh_obj_double (const msgpack_object *obj, const char *key, double *value);
bool lh_obj_bool (const msgpack_object *obj, const char *key, bool *value);

//  Return a fresh NUL-terminated copy of a str object's bytes, or NULL if
//  obj is not a str (or holds a NUL byte). Caller frees.
char *
    lh_obj_strdup (const msgpack_object *obj);

//  Self test of this class
void
    lh_body_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
