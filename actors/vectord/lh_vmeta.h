/*  =========================================================================
    lh_vmeta - the ids and metadata of an index's vectors, in memory

    lh_vindex keeps every item in LMDB (the durable copy) and this table
    beside its graph, so that a search reads neither: a hit's label gives
    its id and metadata here, an excluded id its label, a filter its
    metadata. Reading them from LMDB's map made each search fault in the
    items' pages (the vector and the metadata share an overflow page, and
    the kernel maps the 64 KiB around each fault), so a busy index ended
    up holding its whole LMDB file in its RSS.

    One record per live label: {label, id, metadata (msgpack map bytes,
    possibly none)}, one allocation each, found by label or by id through
    two open-addressing tables (linear probing, at most half full). Not
    thread-safe by itself: lh_vindex changes it only under the write side
    of the lock its searches hold for reading, so a search sees the graph
    and the records of one moment.

        lh_vmeta_t *meta = lh_vmeta_new ();
        lh_vmeta_put (meta, 7, "w-17", 4, packed, packed_size);
        const lh_vrecord_t *record = lh_vmeta_by_label (meta, 7);
        ... record->id, record->id_size, lh_vrecord_metadata (record) ...
    =========================================================================
*/

#ifndef LH_VMETA_H_INCLUDED
#define LH_VMETA_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  One vector's record; the id and metadata bytes follow it
typedef struct {
    uint64_t label;                     //  its label in the graph
    uint32_t metadata_size;             //  0: no metadata
    uint16_t id_size;                   //  1..256
    char id [];                         //  id bytes, then metadata bytes
} lh_vrecord_t;

//  The metadata bytes of a record (metadata_size of them)
#define lh_vrecord_metadata(record) ((const char *) (record)->id + (record)->id_size)

typedef struct _lh_vmeta_t lh_vmeta_t;

//  An empty table
lh_vmeta_t *
    lh_vmeta_new (void);

//  Destroy it; nulls the caller's pointer
void
    lh_vmeta_destroy (lh_vmeta_t **self_p);

//  Set the record of label (id_size 1..65535; metadata NULL or size 0:
//  none). A record of the same label, or of the same id under another
//  label, is replaced: one record per id.
void
    lh_vmeta_put (lh_vmeta_t *self, uint64_t label, const char *id, size_t id_size,
                  const void *metadata, size_t metadata_size);

//  Remove the record of label, if any
void
    lh_vmeta_remove (lh_vmeta_t *self, uint64_t label);

//  The record of a label, or of an id; NULL if none. Valid until the next
//  put or remove.
const lh_vrecord_t *
    lh_vmeta_by_label (lh_vmeta_t *self, uint64_t label);
const lh_vrecord_t *
    lh_vmeta_by_id (lh_vmeta_t *self, const char *id, size_t id_size);

//  Records held
size_t
    lh_vmeta_size (lh_vmeta_t *self);

//  Bytes held (records and tables), estimated
size_t
    lh_vmeta_memory (lh_vmeta_t *self);

//  Self test of this class
void
    lh_vmeta_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
