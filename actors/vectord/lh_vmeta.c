/*  =========================================================================
    lh_vmeta - the ids and metadata of an index's vectors, in memory; see
    lh_vmeta.h
    =========================================================================
*/

#include "lh_vmeta.h"
#include <czmq.h>

#define S_CAPACITY_MIN  64              //  slots of a new table

struct _lh_vmeta_t {
    lh_vrecord_t **by_label;            //  slots, keyed by label
    lh_vrecord_t **by_id;               //  slots, keyed by id
    size_t capacity;                    //  slots per table, a power of two
    size_t count;                       //  records
    size_t bytes;                       //  their allocations
};


//  --------------------------------------------------------------------------
//  Hashes: a label through splitmix64's finaliser, an id through FNV-1a
//  then the same finaliser

static uint64_t
s_mix (uint64_t value)
{
    value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9ULL;
    value = (value ^ (value >> 27)) * 0x94D049BB133111EBULL;
    return value ^ (value >> 31);
}

static uint64_t
s_id_hash (const char *id, size_t size)
{
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (size_t index = 0; index < size; index++)
        hash = (hash ^ (unsigned char) id [index]) * 0x100000001b3ULL;
    return s_mix (hash);
}

//  The home slot of a record in one of the tables
static size_t
s_home (const lh_vmeta_t *self, const lh_vrecord_t *record, bool by_id)
{
    uint64_t hash = by_id? s_id_hash (record->id, record->id_size): s_mix (record->label);
    return (size_t) hash & (self->capacity - 1);
}


//  --------------------------------------------------------------------------
//  Insert a record in one table (a free slot exists: the table is at
//  most half full)

static void
s_insert (lh_vmeta_t *self, lh_vrecord_t **slots, lh_vrecord_t *record, bool by_id)
{
    size_t mask = self->capacity - 1;
    size_t slot = s_home (self, record, by_id);
    while (slots [slot])
        slot = (slot + 1) & mask;
    slots [slot] = record;
}

//  Remove the record in slot from one table, shifting back the records
//  after it that the hole would cut off from their home
static void
s_vacate (lh_vmeta_t *self, lh_vrecord_t **slots, size_t slot, bool by_id)
{
    size_t mask = self->capacity - 1;
    slots [slot] = NULL;
    size_t next = slot;
    while (true) {
        next = (next + 1) & mask;
        if (!slots [next])
            break;
        size_t home = s_home (self, slots [next], by_id);
        //  Leave it if its home lies cyclically in (slot, next]
        bool stays = slot <= next? (home > slot && home <= next): (home > slot || home <= next);
        if (!stays) {
            slots [slot] = slots [next];
            slots [next] = NULL;
            slot = next;
        }
    }
}

//  The slot of a label's record, or -1
static ssize_t
s_find_label (const lh_vmeta_t *self, uint64_t label)
{
    size_t mask = self->capacity - 1;
    size_t slot = (size_t) s_mix (label) & mask;
    while (self->by_label [slot]) {
        if (self->by_label [slot]->label == label)
            return (ssize_t) slot;
        slot = (slot + 1) & mask;
    }
    return -1;
}

//  The slot of an id's record, or -1
static ssize_t
s_find_id (const lh_vmeta_t *self, const char *id, size_t id_size)
{
    size_t mask = self->capacity - 1;
    size_t slot = (size_t) s_id_hash (id, id_size) & mask;
    while (self->by_id [slot]) {
        const lh_vrecord_t *record = self->by_id [slot];
        if (record->id_size == id_size && memcmp (record->id, id, id_size) == 0)
            return (ssize_t) slot;
        slot = (slot + 1) & mask;
    }
    return -1;
}

//  Double both tables
static void
s_grow (lh_vmeta_t *self)
{
    lh_vrecord_t **old = self->by_label;
    size_t old_capacity = self->capacity;
    self->capacity *= 2;
    free (self->by_id);
    self->by_label = (lh_vrecord_t **) calloc (self->capacity, sizeof (lh_vrecord_t *));
    self->by_id = (lh_vrecord_t **) calloc (self->capacity, sizeof (lh_vrecord_t *));
    assert (self->by_label && self->by_id);
    for (size_t slot = 0; slot < old_capacity; slot++)
        if (old [slot]) {
            s_insert (self, self->by_label, old [slot], false);
            s_insert (self, self->by_id, old [slot], true);
        }
    free (old);
}

//  Take a record out of both tables and free it
static void
s_drop (lh_vmeta_t *self, size_t label_slot)
{
    lh_vrecord_t *record = self->by_label [label_slot];
    s_vacate (self, self->by_label, label_slot, false);
    ssize_t id_slot = s_find_id (self, record->id, record->id_size);
    assert (id_slot >= 0 && self->by_id [id_slot] == record);
    s_vacate (self, self->by_id, (size_t) id_slot, true);
    self->bytes -= sizeof (lh_vrecord_t) + record->id_size + record->metadata_size;
    self->count--;
    free (record);
}


//  --------------------------------------------------------------------------
//  An empty table

lh_vmeta_t *
lh_vmeta_new (void)
{
    lh_vmeta_t *self = (lh_vmeta_t *) zmalloc (sizeof (lh_vmeta_t));
    assert (self);
    self->capacity = S_CAPACITY_MIN;
    self->by_label = (lh_vrecord_t **) calloc (self->capacity, sizeof (lh_vrecord_t *));
    self->by_id = (lh_vrecord_t **) calloc (self->capacity, sizeof (lh_vrecord_t *));
    assert (self->by_label && self->by_id);
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy the table and its records

void
lh_vmeta_destroy (lh_vmeta_t **self_p)
{
    assert (self_p);
    lh_vmeta_t *self = *self_p;
    if (self) {
        for (size_t slot = 0; slot < self->capacity; slot++)
            free (self->by_label [slot]);
        free (self->by_label);
        free (self->by_id);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Set the record of label, replacing the label's and the id's old ones

void
lh_vmeta_put (lh_vmeta_t *self, uint64_t label, const char *id, size_t id_size,
              const void *metadata, size_t metadata_size)
{
    assert (self && id && id_size > 0 && id_size <= UINT16_MAX);
    if (!metadata)
        metadata_size = 0;
    ssize_t slot = s_find_label (self, label);
    if (slot >= 0)
        s_drop (self, (size_t) slot);
    slot = s_find_id (self, id, id_size);
    if (slot >= 0)
        s_drop (self, (size_t) s_find_label (self, self->by_id [slot]->label));
    if (2 * (self->count + 1) > self->capacity)
        s_grow (self);
    size_t bytes = sizeof (lh_vrecord_t) + id_size + metadata_size;
    lh_vrecord_t *record = (lh_vrecord_t *) malloc (bytes);
    assert (record);
    record->label = label;
    record->id_size = (uint16_t) id_size;
    record->metadata_size = (uint32_t) metadata_size;
    memcpy (record->id, id, id_size);
    if (metadata_size)
        memcpy (record->id + id_size, metadata, metadata_size);
    s_insert (self, self->by_label, record, false);
    s_insert (self, self->by_id, record, true);
    self->count++;
    self->bytes += bytes;
}


//  --------------------------------------------------------------------------
//  Remove the record of label, if any

void
lh_vmeta_remove (lh_vmeta_t *self, uint64_t label)
{
    assert (self);
    ssize_t slot = s_find_label (self, label);
    if (slot >= 0)
        s_drop (self, (size_t) slot);
}


//  --------------------------------------------------------------------------
//  Lookups

const lh_vrecord_t *
lh_vmeta_by_label (lh_vmeta_t *self, uint64_t label)
{
    assert (self);
    ssize_t slot = s_find_label (self, label);
    return slot >= 0? self->by_label [slot]: NULL;
}

const lh_vrecord_t *
lh_vmeta_by_id (lh_vmeta_t *self, const char *id, size_t id_size)
{
    assert (self);
    ssize_t slot = s_find_id (self, id, id_size);
    return slot >= 0? self->by_id [slot]: NULL;
}

size_t
lh_vmeta_size (lh_vmeta_t *self)
{
    assert (self);
    return self->count;
}

size_t
lh_vmeta_memory (lh_vmeta_t *self)
{
    assert (self);
    //  malloc rounds each record up and adds a header word
    return self->bytes + self->count * 16 + 2 * self->capacity * sizeof (lh_vrecord_t *);
}


//  --------------------------------------------------------------------------
//  Self test: puts, replacements by label and by id, removes that shift
//  colliding records back, growth, against a plain array model

void
lh_vmeta_test (bool verbose)
{
    printf (" * lh_vmeta: ");
    lh_vmeta_t *meta = lh_vmeta_new ();
    assert (lh_vmeta_size (meta) == 0 && !lh_vmeta_by_label (meta, 1) && !lh_vmeta_by_id (meta, "a", 1));
    lh_vmeta_put (meta, 1, "a", 1, "\x81\xa1k\x01", 4);
    lh_vmeta_put (meta, 2, "bb", 2, NULL, 0);
    const lh_vrecord_t *record = lh_vmeta_by_id (meta, "a", 1);
    assert (record && record->label == 1 && record->metadata_size == 4
            && memcmp (lh_vrecord_metadata (record), "\x81\xa1k\x01", 4) == 0);
    record = lh_vmeta_by_label (meta, 2);
    assert (record && record->id_size == 2 && memcmp (record->id, "bb", 2) == 0
            && record->metadata_size == 0);
    //  The same id under a new label replaces the old record
    lh_vmeta_put (meta, 3, "a", 1, "\x80", 1);
    assert (lh_vmeta_size (meta) == 2 && !lh_vmeta_by_label (meta, 1));
    assert (lh_vmeta_by_id (meta, "a", 1)->label == 3);
    //  The same label with another id too
    lh_vmeta_put (meta, 3, "c", 1, NULL, 0);
    assert (lh_vmeta_size (meta) == 2 && !lh_vmeta_by_id (meta, "a", 1));
    lh_vmeta_remove (meta, 3);
    lh_vmeta_remove (meta, 99);
    assert (lh_vmeta_size (meta) == 1 && !lh_vmeta_by_id (meta, "c", 1));
    lh_vmeta_destroy (&meta);
    assert (meta == NULL);

    //  A model: ids "w<n>" under labels that move, random puts and removes
    meta = lh_vmeta_new ();
    enum { IDS = 3000, STEPS = 40000 };
    uint64_t *labels = (uint64_t *) calloc (IDS, sizeof (uint64_t));  //  0: absent
    uint64_t seed = 7, next_label = 1;
    for (size_t step = 0; step < STEPS; step++) {
        seed = s_mix (seed + step);
        size_t which = (size_t) (seed % IDS);
        char id [16];
        int id_size = snprintf (id, sizeof (id), "w%zu", which);
        if ((seed >> 32) % 4 == 0) {
            if (labels [which])
                lh_vmeta_remove (meta, labels [which]);
            labels [which] = 0;
        }
        else {
            labels [which] = next_label++;
            lh_vmeta_put (meta, labels [which], id, (size_t) id_size, id, (size_t) id_size);
        }
    }
    size_t live = 0;
    for (size_t which = 0; which < IDS; which++) {
        char id [16];
        int id_size = snprintf (id, sizeof (id), "w%zu", which);
        record = lh_vmeta_by_id (meta, id, (size_t) id_size);
        if (labels [which]) {
            live++;
            assert (record && record->label == labels [which]);
            assert (lh_vmeta_by_label (meta, labels [which]) == record);
            assert (record->metadata_size == (uint32_t) id_size
                    && memcmp (lh_vrecord_metadata (record), id, (size_t) id_size) == 0);
        }
        else
            assert (!record);
    }
    assert (lh_vmeta_size (meta) == live && live > 1000);
    assert (lh_vmeta_memory (meta) > live * sizeof (lh_vrecord_t));
    if (verbose)
        printf ("\n    %zu live records, %zu bytes", live, lh_vmeta_memory (meta));
    free (labels);
    lh_vmeta_destroy (&meta);
    printf ("OK\n");
}
