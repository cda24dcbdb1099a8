/*  =========================================================================
    lh_pathstore - pathwayd's traces in LMDB, written by group commit;
    see lh_pathstore.h for the layout
    =========================================================================
*/

#include "lh_pathstore.h"
#include "lh_log.h"
#include "lh_lmdb.h"
#include <locale.h>
#include <wctype.h>
#include <sodium.h>

#define S_NAME          "pathwayd"
#define S_FORMAT        "pathwayd 1"
#define S_HEADER_FIXED  35              //  traces record without predecessor
#define S_VERSION_FIXED 12              //  versions record before the tags
#define S_COUNTS_SIZE   32              //  meta "counts"
#define S_MAX_READERS   1024            //  read transactions at once
#define S_ULID_SIZE     26              //  characters of a ULID

struct _lh_pathstore_t {
    MDB_env *env;                       //  the environment
    MDB_dbi traces;                     //  uid -> header
    MDB_dbi versions;                   //  uid | 0 | version -> content
    MDB_dbi search;                     //  seq -> what search reads
    MDB_dbi tags;                       //  folded tag -> seq (dupsort)
    MDB_dbi meta;                       //  counts, format
    size_t batch_max;                   //  most writes per commit
    pthread_mutex_t lock;               //  guards the queue and counters
    pthread_cond_t done;                //  a commit finished
    lh_pathwrite_t *head;               //  queued writes, oldest first
    lh_pathwrite_t *tail;               //  newest queued write
    bool committing;                    //  a leader is committing a batch
    uint64_t commits;                   //  commits made
    uint64_t writes;                    //  writes they carried
    int64_t ulid_ms;                    //  time of the last ULID (leader only)
    uint8_t ulid_random [10];           //  its random part
};

//  A trace's header (traces record), decoded
typedef struct {
    uint64_t seq;                       //  creation order
    uint64_t version;                   //  current version
    uint64_t replay_count;              //  add_idempotent replays
    int64_t created_ms;                 //  creation time
    bool retired;                       //  hidden from search
    char predecessor [LH_PATH_UID_MAX + 1];
    size_t predecessor_size;            //  0: none
} s_header_t;

//  A version record, decoded (pointers into the record)
typedef struct {
    int64_t updated_ms;                 //  when this version was written
    const uint8_t *tags;                //  msgpack array
    size_t tags_size;                   //  its size
    const uint8_t *content;             //  msgpack
    size_t content_size;                //  its size
} s_version_t;

//  A search record, decoded (pointers into the record)
typedef struct {
    bool retired;                       //  hidden from search
    const char *uid;                    //  the trace
    size_t uid_size;                    //  its size
    size_t tag_count;                   //  folded tags
    const uint8_t *tags;                //  (u16 size | tag) x count
    size_t tags_size;                   //  their bytes
    const uint8_t *text;                //  folded text
    size_t text_size;                   //  its size
} s_entry_t;


//  --------------------------------------------------------------------------
//  Big-endian integers

//  Write a u64 big-endian
static void
s_put64 (uint8_t *at, uint64_t value)
{
    for (int index = 7; index >= 0; index--) {
        at [index] = (uint8_t) value;
        value >>= 8;
    }
}

//  Read a u64 big-endian
static uint64_t
s_get64 (const uint8_t *at)
{
    uint64_t value = 0;
    for (int index = 0; index < 8; index++)
        value = (value << 8) | at [index];
    return value;
}


//  --------------------------------------------------------------------------
//  Case folding: the C.UTF-8 locale's towlower, or ASCII only when that
//  locale is missing

static pthread_once_t s_fold_once = PTHREAD_ONCE_INIT;
static locale_t s_fold_locale;

static void
s_fold_init (void)
{
    s_fold_locale = newlocale (LC_CTYPE_MASK, "C.UTF-8", (locale_t) 0);
}

//  Decode the UTF-8 character at text [*at]; the code point, or -1 when
//  the bytes are not valid UTF-8 (overlong, surrogate, past U+10FFFF)
static int32_t
s_utf8_next (const uint8_t *text, size_t size, size_t *at)
{
    uint8_t first = text [*at];
    size_t need;
    int32_t point, least;
    if (first < 0x80) {
        (*at)++;
        return first;
    }
    if ((first & 0xE0) == 0xC0) {
        need = 1;
        point = first & 0x1F;
        least = 0x80;
    }
    else
    if ((first & 0xF0) == 0xE0) {
        need = 2;
        point = first & 0x0F;
        least = 0x800;
    }
    else
    if ((first & 0xF8) == 0xF0) {
        need = 3;
        point = first & 0x07;
        least = 0x10000;
    }
    else
        return -1;
    if (size - *at - 1 < need)
        return -1;
    for (size_t index = 1; index <= need; index++) {
        uint8_t next = text [*at + index];
        if ((next & 0xC0) != 0x80)
            return -1;
        point = (point << 6) | (next & 0x3F);
    }
    if (point < least || point > 0x10FFFF || (point >= 0xD800 && point <= 0xDFFF))
        return -1;
    *at += need + 1;
    return point;
}

//  Encode a code point as UTF-8 into out (4 bytes room); its size
static size_t
s_utf8_put (uint8_t *out, int32_t point)
{
    if (point < 0x80) {
        out [0] = (uint8_t) point;
        return 1;
    }
    if (point < 0x800) {
        out [0] = (uint8_t) (0xC0 | (point >> 6));
        out [1] = (uint8_t) (0x80 | (point & 0x3F));
        return 2;
    }
    if (point < 0x10000) {
        out [0] = (uint8_t) (0xE0 | (point >> 12));
        out [1] = (uint8_t) (0x80 | ((point >> 6) & 0x3F));
        out [2] = (uint8_t) (0x80 | (point & 0x3F));
        return 3;
    }
    out [0] = (uint8_t) (0xF0 | (point >> 18));
    out [1] = (uint8_t) (0x80 | ((point >> 12) & 0x3F));
    out [2] = (uint8_t) (0x80 | ((point >> 6) & 0x3F));
    out [3] = (uint8_t) (0x80 | (point & 0x3F));
    return 4;
}


//  --------------------------------------------------------------------------
//  Append text folded to out; returns 0, or -1 if it is not valid UTF-8

int
lh_pathstore_fold (const void *text, size_t size, zchunk_t *out)
{
    assert (out);
    pthread_once (&s_fold_once, s_fold_init);
    const uint8_t *bytes = (const uint8_t *) text;
    uint8_t buffer [512];
    size_t used = 0;
    size_t at = 0;
    while (at < size) {
        uint8_t byte = bytes [at];
        if (byte < 0x80) {
            buffer [used++] = byte >= 'A' && byte <= 'Z'? (uint8_t) (byte + 32): byte;
            at++;
        }
        else {
            int32_t point = s_utf8_next (bytes, size, &at);
            if (point < 0)
                return -1;
            if (s_fold_locale) {
                wint_t lower = towlower_l ((wint_t) point, s_fold_locale);
                if (lower <= 0x10FFFF && !(lower >= 0xD800 && lower <= 0xDFFF))
                    point = (int32_t) lower;
            }
            used += s_utf8_put (buffer + used, point);
        }
        if (used > sizeof (buffer) - 4) {
            zchunk_extend (out, buffer, used);
            used = 0;
        }
    }
    if (used)
        zchunk_extend (out, buffer, used);
    return 0;
}


//  --------------------------------------------------------------------------
//  Validating a content and collecting its folded text

typedef struct {
    zchunk_t *folded;                   //  where the text goes
    char path [200];                    //  where we are ("content.a[2]")
    char *reason;                       //  the error sentence
    size_t reason_size;                 //  its room
} s_walk_t;

//  Fail at the current path
static int
s_walk_fail (s_walk_t *walk, const char *what)
{
    snprintf (walk->reason, walk->reason_size,
              "%s %s; content must be a JSON value", walk->path, what);
    return -1;
}

//  The shortest text of a number that reads back as the same value
static void
s_number_text (double value, bool single, char *text, size_t size)
{
    for (int precision = 1; precision <= 17; precision++) {
        snprintf (text, size, "%.*g", precision, value);
        if (single? strtof (text, NULL) == (float) value: strtod (text, NULL) == value)
            return;
    }
}

//  Append ".key" to the path, printable ASCII only, at most 40 bytes
static void
s_walk_key (s_walk_t *walk, size_t path_size, const msgpack_object *key)
{
    char *at = walk->path + path_size;
    char *end = walk->path + sizeof (walk->path) - 1;
    if (at < end)
        *at++ = '.';
    for (uint32_t index = 0; index < key->via.str.size && index < 40 && at < end; index++) {
        char c = key->via.str.ptr [index];
        *at++ = c >= 0x20 && c < 0x7f? c: '?';
    }
    *at = 0;
}

//  Check one value and append its text, recursively; 0 or -1 (reason set)
static int
s_walk (s_walk_t *walk, const msgpack_object *object)
{
    char number [40];
    size_t path_size = strlen (walk->path);
    switch (object->type) {
        case MSGPACK_OBJECT_NIL:
        case MSGPACK_OBJECT_BOOLEAN:
        case MSGPACK_OBJECT_BIN:
        case MSGPACK_OBJECT_EXT:
            return 0;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            snprintf (number, sizeof (number), "%" PRIu64, object->via.u64);
            zchunk_extend (walk->folded, number, strlen (number) + 1);
            return 0;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            snprintf (number, sizeof (number), "%" PRId64, object->via.i64);
            zchunk_extend (walk->folded, number, strlen (number) + 1);
            return 0;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            if (!isfinite (object->via.f64))
                return s_walk_fail (walk, "is NaN or an infinite number, which JSON cannot carry");
            s_number_text (object->via.f64, object->type == MSGPACK_OBJECT_FLOAT32,
                           number, sizeof (number));
            zchunk_extend (walk->folded, number, strlen (number) + 1);
            return 0;
        case MSGPACK_OBJECT_STR:
            if (lh_pathstore_fold (object->via.str.ptr, object->via.str.size, walk->folded))
                return s_walk_fail (walk, "is a string that is not valid UTF-8");
            zchunk_extend (walk->folded, "", 1);
            return 0;
        case MSGPACK_OBJECT_ARRAY:
            for (uint32_t index = 0; index < object->via.array.size; index++) {
                snprintf (walk->path + path_size, sizeof (walk->path) - path_size, "[%u]", index);
                if (s_walk (walk, &object->via.array.ptr [index]))
                    return -1;
            }
            walk->path [path_size] = 0;
            return 0;
        case MSGPACK_OBJECT_MAP:
            for (uint32_t index = 0; index < object->via.map.size; index++) {
                const msgpack_object_kv *pair = &object->via.map.ptr [index];
                if (pair->key.type != MSGPACK_OBJECT_STR) {
                    snprintf (walk->path + path_size, sizeof (walk->path) - path_size,
                              " (pair %u)", index);
                    return s_walk_fail (walk, "has a key that is not a string");
                }
                s_walk_key (walk, path_size, &pair->key);
                if (lh_pathstore_fold (pair->key.via.str.ptr, pair->key.via.str.size, walk->folded))
                    return s_walk_fail (walk, "is a key that is not valid UTF-8");
                zchunk_extend (walk->folded, "", 1);
                if (s_walk (walk, &pair->val))
                    return -1;
            }
            walk->path [path_size] = 0;
            return 0;
    }
    return s_walk_fail (walk, "is of a type JSON has no equivalent for");
}


//  --------------------------------------------------------------------------
//  Validate a content and append its folded text

int
lh_pathstore_content (const msgpack_object *content, zchunk_t *folded,
                      char *reason, size_t reason_size)
{
    assert (content && folded && reason && reason_size);
    s_walk_t walk = { .folded = folded, .path = "content", .reason = reason,
                      .reason_size = reason_size };
    return s_walk (&walk, content);
}


//  --------------------------------------------------------------------------
//  Is this a valid uid: 1..LH_PATH_UID_MAX bytes of A-Z a-z 0-9 . _ : -

bool
lh_pathstore_uid_valid (const char *uid, size_t size)
{
    if (!uid || size == 0 || size > LH_PATH_UID_MAX)
        return false;
    for (size_t index = 0; index < size; index++) {
        char c = uid [index];
        if (!(isalnum ((unsigned char) c) || c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}


//  --------------------------------------------------------------------------
//  A new ULID into out (27 bytes): 48 bits of milliseconds and 80 random
//  bits in Crockford base32, monotonic within this store (a second one in
//  the same millisecond is the first plus one). Leader only.

static void
s_ulid (lh_pathstore_t *self, int64_t now, char *out)
{
    static const char alphabet [] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    if (now <= self->ulid_ms) {
        int index = 9;
        while (index >= 0 && ++self->ulid_random [index] == 0)
            index--;
        if (index < 0)
            self->ulid_ms++;
    }
    else {
        self->ulid_ms = now;
        randombytes_buf (self->ulid_random, sizeof (self->ulid_random));
    }
    uint64_t ms = (uint64_t) self->ulid_ms;
    for (int index = 9; index >= 0; index--) {
        out [index] = alphabet [ms & 31];
        ms >>= 5;
    }
    for (int index = 0; index < 16; index++) {
        unsigned value = 0;
        for (int bit = index * 5; bit < index * 5 + 5; bit++)
            value = (value << 1) | ((self->ulid_random [bit / 8] >> (7 - bit % 8)) & 1);
        out [10 + index] = alphabet [value];
    }
    out [S_ULID_SIZE] = 0;
}


//  --------------------------------------------------------------------------
//  RFC 3339 UTC with milliseconds into text (64 bytes)

static void
s_time_text (int64_t ms, char *text)
{
    if (ms < 0)
        ms = 0;
    time_t seconds = (time_t) (ms / 1000);
    struct tm tm;
    gmtime_r (&seconds, &tm);
    snprintf (text, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
              tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
              tm.tm_hour, tm.tm_min, tm.tm_sec, (int) (ms % 1000));
}


//  --------------------------------------------------------------------------
//  Records: encode and decode

//  A header as its traces record into out; the record's size
static size_t
s_header_encode (const s_header_t *header, uint8_t *out)
{
    out [0] = 1;
    s_put64 (out + 1, header->seq);
    s_put64 (out + 9, header->version);
    s_put64 (out + 17, header->replay_count);
    s_put64 (out + 25, (uint64_t) header->created_ms);
    out [33] = header->retired? 1: 0;
    out [34] = (uint8_t) header->predecessor_size;
    memcpy (out + S_HEADER_FIXED, header->predecessor, header->predecessor_size);
    return S_HEADER_FIXED + header->predecessor_size;
}

//  A traces record as a header; 0, or -1 if it does not decode
static int
s_header_decode (const MDB_val *value, s_header_t *header)
{
    const uint8_t *bytes = (const uint8_t *) value->mv_data;
    if (value->mv_size < S_HEADER_FIXED || bytes [0] != 1
    ||  value->mv_size != S_HEADER_FIXED + (size_t) bytes [34]
    ||  bytes [34] > LH_PATH_UID_MAX)
        return -1;
    header->seq = s_get64 (bytes + 1);
    header->version = s_get64 (bytes + 9);
    header->replay_count = s_get64 (bytes + 17);
    header->created_ms = (int64_t) s_get64 (bytes + 25);
    header->retired = bytes [33] != 0;
    header->predecessor_size = bytes [34];
    memcpy (header->predecessor, bytes + S_HEADER_FIXED, header->predecessor_size);
    header->predecessor [header->predecessor_size] = 0;
    return 0;
}

//  A versions record; 0, or -1 if it does not decode
static int
s_version_decode (const MDB_val *value, s_version_t *version)
{
    const uint8_t *bytes = (const uint8_t *) value->mv_data;
    if (value->mv_size < S_VERSION_FIXED)
        return -1;
    version->updated_ms = (int64_t) s_get64 (bytes);
    version->tags_size = ((size_t) bytes [8] << 24) | ((size_t) bytes [9] << 16)
                       | ((size_t) bytes [10] << 8) | bytes [11];
    if (version->tags_size == 0 || version->tags_size > value->mv_size - S_VERSION_FIXED)
        return -1;
    version->tags = bytes + S_VERSION_FIXED;
    version->content = version->tags + version->tags_size;
    version->content_size = value->mv_size - S_VERSION_FIXED - version->tags_size;
    return version->content_size > 0? 0: -1;
}

//  A search record; 0, or -1 if it does not decode
static int
s_entry_decode (const MDB_val *value, s_entry_t *entry)
{
    const uint8_t *bytes = (const uint8_t *) value->mv_data;
    size_t size = value->mv_size;
    if (size < 3 || (size_t) bytes [1] + 3 > size)
        return -1;
    entry->retired = bytes [0] != 0;
    entry->uid_size = bytes [1];
    entry->uid = (const char *) bytes + 2;
    size_t at = 2 + entry->uid_size;
    entry->tag_count = bytes [at++];
    entry->tags = bytes + at;
    for (size_t index = 0; index < entry->tag_count; index++) {
        if (at + 2 > size)
            return -1;
        size_t tag_size = ((size_t) bytes [at] << 8) | bytes [at + 1];
        if (at + 2 + tag_size > size)
            return -1;
        at += 2 + tag_size;
    }
    entry->tags_size = (size_t) (bytes + at - entry->tags);
    entry->text = bytes + at;
    entry->text_size = size - at;
    return 0;
}

//  A versions key: uid | 0 | version
static size_t
s_version_key (const char *uid, size_t uid_size, uint64_t version, uint8_t *key)
{
    memcpy (key, uid, uid_size);
    key [uid_size] = 0;
    s_put64 (key + uid_size + 1, version);
    return uid_size + 9;
}

//  Does a list of folded tags hold this one?
static bool
s_tags_hold (const uint8_t *tags, size_t size, const uint8_t *tag, size_t tag_size)
{
    size_t at = 0;
    while (at + 2 <= size) {
        size_t one = ((size_t) tags [at] << 8) | tags [at + 1];
        if (one == tag_size && memcmp (tags + at + 2, tag, tag_size) == 0)
            return true;
        at += 2 + one;
    }
    return false;
}

//  Does the entry hold every tag of a query?
static bool
s_tags_match (const s_entry_t *entry, const uint8_t *query, size_t size)
{
    size_t at = 0;
    while (at + 2 <= size) {
        size_t one = ((size_t) query [at] << 8) | query [at + 1];
        if (!s_tags_hold (entry->tags, entry->tags_size, query + at + 2, one))
            return false;
        at += 2 + one;
    }
    return true;
}


//  --------------------------------------------------------------------------
//  Counts in meta

//  Read the counts (a new store: zeros, next seq 1); 0 or an LMDB error
static int
s_counts_read (lh_pathstore_t *self, MDB_txn *txn, lh_pathcounts_t *counts)
{
    MDB_val key = { 6, "counts" }, value;
    int rc = mdb_get (txn, self->meta, &key, &value);
    memset (counts, 0, sizeof (*counts));
    counts->next_seq = 1;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (value.mv_size != S_COUNTS_SIZE)
        return MDB_CORRUPTED;
    const uint8_t *bytes = (const uint8_t *) value.mv_data;
    counts->total = s_get64 (bytes);
    counts->retired = s_get64 (bytes + 8);
    counts->versions = s_get64 (bytes + 16);
    counts->next_seq = s_get64 (bytes + 24);
    return 0;
}

//  Write the counts back
static int
s_counts_write (lh_pathstore_t *self, MDB_txn *txn, const lh_pathcounts_t *counts)
{
    uint8_t bytes [S_COUNTS_SIZE];
    s_put64 (bytes, counts->total);
    s_put64 (bytes + 8, counts->retired);
    s_put64 (bytes + 16, counts->versions);
    s_put64 (bytes + 24, counts->next_seq);
    MDB_val key = { 6, "counts" }, value = { S_COUNTS_SIZE, bytes };
    return mdb_put (txn, self->meta, &key, &value, 0);
}


//  --------------------------------------------------------------------------
//  Open (creating if needed) the store in dir

lh_pathstore_t *
lh_pathstore_open (const char *dir, size_t map_bytes, size_t batch_max,
                   const char **error)
{
    assert (dir && error);
    if (sodium_init () < 0) {
        *error = "libsodium cannot start";
        return NULL;
    }
    if (zsys_dir_create ("%s", dir) != 0) {
        *error = "cannot create the store's directory (pathwayd/dir)";
        return NULL;
    }
    lh_pathstore_t *self = (lh_pathstore_t *) zmalloc (sizeof (lh_pathstore_t));
    assert (self);
    self->batch_max = batch_max? batch_max: 1;
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->done, NULL);
    MDB_txn *txn = NULL;
    if (lh_lmdb_env_open (&self->env, dir, 5, S_MAX_READERS, map_bytes)) {
        *error = "cannot open the LMDB environment in pathwayd/dir";
        goto failed;
    }
    if (mdb_txn_begin (self->env, NULL, 0, &txn)) {
        *error = "cannot begin an LMDB transaction";
        goto failed;
    }
    if (mdb_dbi_open (txn, "traces", MDB_CREATE, &self->traces)
    ||  mdb_dbi_open (txn, "versions", MDB_CREATE, &self->versions)
    ||  mdb_dbi_open (txn, "search", MDB_CREATE, &self->search)
    ||  mdb_dbi_open (txn, "tags", MDB_CREATE | MDB_DUPSORT | MDB_DUPFIXED, &self->tags)
    ||  mdb_dbi_open (txn, "meta", MDB_CREATE, &self->meta)) {
        *error = "cannot open the store's databases";
        goto failed;
    }
    int rc = lh_lmdb_stamp (txn, self->meta, S_FORMAT);
    if (rc) {
        *error = rc > 0? "pathwayd/dir holds a store of another format"
                       : "cannot read the store's format";
        goto failed;
    }
    rc = mdb_txn_commit (txn);
    txn = NULL;
    if (rc) {
        *error = "cannot write to pathwayd/dir";
        goto failed;
    }
    return self;

failed:
    if (txn)
        mdb_txn_abort (txn);
    lh_pathstore_destroy (&self);
    return NULL;
}


//  --------------------------------------------------------------------------
//  Close the store

void
lh_pathstore_destroy (lh_pathstore_t **self_p)
{
    assert (self_p);
    lh_pathstore_t *self = *self_p;
    if (self) {
        if (self->env)
            mdb_env_close (self->env);
        pthread_cond_destroy (&self->done);
        pthread_mutex_destroy (&self->lock);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Pack a trace from its parts

static void
s_pack_trace (lh_pack_t *pack, const char *uid, size_t uid_size, const s_header_t *header,
              uint64_t version, const s_version_t *record, bool current)
{
    char created [64], updated [64];
    s_time_text (header->created_ms, created);
    s_time_text (record->updated_ms, updated);
    lh_pack_open_map (pack);
    lh_pack_str (pack, "uid");
    lh_pack_strn (pack, uid, uid_size);
    lh_pack_kv_uint (pack, "version", version);
    lh_pack_kv_str (pack, "created_at", created);
    lh_pack_kv_str (pack, "updated_at", updated);
    lh_pack_str (pack, "content");
    lh_pack_raw (pack, record->content, record->content_size);
    lh_pack_str (pack, "tags");
    lh_pack_raw (pack, record->tags, record->tags_size);
    if (header->predecessor_size) {
        lh_pack_str (pack, "predecessor");
        lh_pack_strn (pack, header->predecessor, header->predecessor_size);
    }
    lh_pack_kv_bool (pack, "retired", header->retired);
    lh_pack_kv_uint (pack, "replay_count", header->replay_count);
    if (current)
        lh_pack_kv_uint (pack, "current_version", header->version);
    lh_pack_close (pack);
}


//  --------------------------------------------------------------------------
//  Pack a trace read in txn: its header and a version record. Returns 0,
//  MDB_NOTFOUND (no such trace), or another LMDB error (MDB_CORRUPTED for
//  a record that does not decode).

static int
s_read_trace (lh_pathstore_t *self, MDB_txn *txn, const char *uid, size_t uid_size,
              uint64_t version, s_header_t *header, lh_pack_t *pack)
{
    MDB_val key = { uid_size, (void *) uid }, value;
    int rc = mdb_get (txn, self->traces, &key, &value);
    if (rc)
        return rc;
    if (s_header_decode (&value, header))
        return MDB_CORRUPTED;
    if (!pack)
        return 0;
    uint8_t version_key [LH_PATH_UID_MAX + 9];
    key.mv_size = s_version_key (uid, uid_size, version? version: header->version, version_key);
    key.mv_data = version_key;
    rc = mdb_get (txn, self->versions, &key, &value);
    s_version_t record;
    if (rc == MDB_NOTFOUND || (rc == 0 && s_version_decode (&value, &record)))
        return MDB_CORRUPTED;
    if (rc)
        return rc;
    s_pack_trace (pack, uid, uid_size, header, version? version: header->version, &record,
                  version != 0);
    return 0;
}


//  --------------------------------------------------------------------------
//  Set an error

static void
s_error (lh_patherror_t *error, const char *kind, const char *field, const char *format, ...)
{
    error->kind = kind;
    error->field = field;
    va_list args;
    va_start (args, format);
    vsnprintf (error->reason, sizeof (error->reason), format, args);
    va_end (args);
}

//  The error of a failed LMDB call: 500
static uint32_t
s_storage_error (lh_patherror_t *error, int rc, const char *what)
{
    if (rc == MDB_MAP_FULL)
        s_error (error, "storage_full", NULL, "the trace store is full while %s: "
                 "raise pathwayd/map_bytes", what);
    else
    if (rc == MDB_CORRUPTED)
        s_error (error, "corrupt_store", NULL, "a record of the trace store does not decode "
                 "while %s", what);
    else
        s_error (error, "storage_failed", NULL, "the trace store failed while %s: %s",
                 what, mdb_strerror (rc));
    return 500;
}


//  --------------------------------------------------------------------------
//  Writes, inside the leader's transaction. Each returns 0 with the
//  write's status set (an error status leaves nothing written), or an
//  LMDB error code that fails the whole transaction.

//  Write the version record, the search entry and the postings of a
//  trace whose header is written already
static int
s_put_body (lh_pathstore_t *self, MDB_txn *txn, const char *uid, size_t uid_size,
            const s_header_t *header, int64_t now, const void *tags, size_t tags_size,
            const void *folded_tags, size_t folded_tags_size, size_t tag_count,
            const lh_pathwrite_t *write)
{
    uint8_t version_key [LH_PATH_UID_MAX + 9];
    MDB_val key = { s_version_key (uid, uid_size, header->version, version_key), version_key };
    MDB_val value = { S_VERSION_FIXED + tags_size + write->content_size, NULL };
    int rc = mdb_put (txn, self->versions, &key, &value, MDB_RESERVE | MDB_NOOVERWRITE);
    if (rc)
        return rc == MDB_KEYEXIST? MDB_CORRUPTED: rc;
    uint8_t *bytes = (uint8_t *) value.mv_data;
    s_put64 (bytes, (uint64_t) now);
    bytes [8] = (uint8_t) (tags_size >> 24);
    bytes [9] = (uint8_t) (tags_size >> 16);
    bytes [10] = (uint8_t) (tags_size >> 8);
    bytes [11] = (uint8_t) tags_size;
    memcpy (bytes + S_VERSION_FIXED, tags, tags_size);
    memcpy (bytes + S_VERSION_FIXED + tags_size, write->content, write->content_size);

    uint8_t seq [8];
    s_put64 (seq, header->seq);
    key = (MDB_val) { 8, seq };
    value = (MDB_val) { 3 + uid_size + folded_tags_size + write->folded_size, NULL };
    rc = mdb_put (txn, self->search, &key, &value, MDB_RESERVE);
    if (rc)
        return rc;
    bytes = (uint8_t *) value.mv_data;
    bytes [0] = header->retired? 1: 0;
    bytes [1] = (uint8_t) uid_size;
    memcpy (bytes + 2, uid, uid_size);
    bytes [2 + uid_size] = (uint8_t) tag_count;
    if (folded_tags_size)
        memcpy (bytes + 3 + uid_size, folded_tags, folded_tags_size);
    if (write->folded_size)
        memcpy (bytes + 3 + uid_size + folded_tags_size, write->folded, write->folded_size);

    const uint8_t *list = (const uint8_t *) folded_tags;
    for (size_t at = 0; at + 2 <= folded_tags_size; ) {
        size_t one = ((size_t) list [at] << 8) | list [at + 1];
        MDB_val tag = { one, (void *) (list + at + 2) }, posting = { 8, seq };
        rc = mdb_put (txn, self->tags, &tag, &posting, MDB_NODUPDATA);
        if (rc && rc != MDB_KEYEXIST)
            return rc;
        at += 2 + one;
    }
    return 0;
}

//  Create a trace (add, add_idempotent's first call, revise)
static int
s_create (lh_pathstore_t *self, MDB_txn *txn, lh_pathcounts_t *counts, int64_t now,
          lh_pathwrite_t *write, const char *uid, size_t uid_size,
          const char *predecessor, size_t predecessor_size,
          const void *tags, size_t tags_size, const void *folded_tags,
          size_t folded_tags_size, size_t tag_count)
{
    s_header_t header = { .seq = counts->next_seq, .version = 1, .created_ms = now,
                          .predecessor_size = predecessor_size };
    if (predecessor_size)
        memcpy (header.predecessor, predecessor, predecessor_size);
    uint8_t bytes [S_HEADER_FIXED + LH_PATH_UID_MAX];
    MDB_val key = { uid_size, (void *) uid }, value = { s_header_encode (&header, bytes), bytes };
    int rc = mdb_put (txn, self->traces, &key, &value, MDB_NOOVERWRITE);
    if (rc)
        return rc;
    rc = s_put_body (self, txn, uid, uid_size, &header, now, tags, tags_size,
                     folded_tags, folded_tags_size, tag_count, write);
    if (rc)
        return rc;
    counts->next_seq++;
    counts->total++;
    counts->versions++;
    s_version_t record = { .updated_ms = now, .tags = (const uint8_t *) tags,
                           .tags_size = tags_size, .content = (const uint8_t *) write->content,
                           .content_size = write->content_size };
    write->trace = lh_pack_new ();
    s_pack_trace (write->trace, uid, uid_size, &header, 1, &record, false);
    write->status = 201;
    return 0;
}

//  A new uid (ULID) not in use yet; 0 or an LMDB error
static int
s_new_uid (lh_pathstore_t *self, MDB_txn *txn, int64_t now, char *uid)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        s_ulid (self, now, uid);
        MDB_val key = { S_ULID_SIZE, uid }, value;
        int rc = mdb_get (txn, self->traces, &key, &value);
        if (rc == MDB_NOTFOUND)
            return 0;
        if (rc)
            return rc;
    }
    return MDB_KEYEXIST;
}

//  The trace a write names: 0 with its header, or the write answered 404
static int
s_target (lh_pathstore_t *self, MDB_txn *txn, lh_pathwrite_t *write, s_header_t *header,
          bool *found)
{
    MDB_val key = { write->uid_size, (void *) write->uid }, value;
    int rc = mdb_get (txn, self->traces, &key, &value);
    *found = rc == 0;
    if (rc == MDB_NOTFOUND) {
        write->status = 404;
        s_error (&write->error, "no_such_trace", "uid", "no trace with uid '%.*s'",
                 (int) write->uid_size, write->uid);
        return 0;
    }
    if (rc == 0 && s_header_decode (&value, header))
        rc = MDB_CORRUPTED;
    return rc;
}

//  The current tags of a trace (raw and folded), copied: the pages they
//  live on may move once the transaction writes
static int
s_current_tags (lh_pathstore_t *self, MDB_txn *txn, const char *uid, size_t uid_size,
                const s_header_t *header, zchunk_t **tags_p, zchunk_t **folded_p,
                size_t *count)
{
    uint8_t version_key [LH_PATH_UID_MAX + 9];
    MDB_val key = { s_version_key (uid, uid_size, header->version, version_key), version_key };
    MDB_val value;
    s_version_t record;
    int rc = mdb_get (txn, self->versions, &key, &value);
    if (rc == 0 && s_version_decode (&value, &record))
        rc = MDB_CORRUPTED;
    if (rc)
        return rc == MDB_NOTFOUND? MDB_CORRUPTED: rc;
    *tags_p = zchunk_new (record.tags, record.tags_size);
    uint8_t seq [8];
    s_put64 (seq, header->seq);
    key = (MDB_val) { 8, seq };
    s_entry_t entry;
    rc = mdb_get (txn, self->search, &key, &value);
    if (rc == 0 && s_entry_decode (&value, &entry))
        rc = MDB_CORRUPTED;
    if (rc) {
        zchunk_destroy (tags_p);
        return rc == MDB_NOTFOUND? MDB_CORRUPTED: rc;
    }
    *folded_p = zchunk_new (entry.tags, entry.tags_size);
    *count = entry.tag_count;
    return 0;
}

//  update: version + 1 of an existing trace, its tags kept or replaced
static int
s_apply_update (lh_pathstore_t *self, MDB_txn *txn, lh_pathcounts_t *counts, int64_t now,
                lh_pathwrite_t *write)
{
    s_header_t header;
    bool found;
    int rc = s_target (self, txn, write, &header, &found);
    if (rc || !found)
        return rc;
    zchunk_t *old_tags = NULL, *old_folded = NULL;
    size_t old_count = 0;
    rc = s_current_tags (self, txn, write->uid, write->uid_size, &header,
                         &old_tags, &old_folded, &old_count);
    if (rc)
        return rc;
    const void *tags = write->tags? write->tags: zchunk_data (old_tags);
    size_t tags_size = write->tags? write->tags_size: zchunk_size (old_tags);
    const void *folded = write->tags? write->folded_tags: zchunk_data (old_folded);
    size_t folded_size = write->tags? write->folded_tags_size: zchunk_size (old_folded);
    size_t count = write->tags? write->tag_count: old_count;
    //  Postings of tags the new version no longer has
    uint8_t seq [8];
    s_put64 (seq, header.seq);
    const uint8_t *list = zchunk_data (old_folded);
    for (size_t at = 0; rc == 0 && at + 2 <= zchunk_size (old_folded); ) {
        size_t one = ((size_t) list [at] << 8) | list [at + 1];
        if (!s_tags_hold ((const uint8_t *) folded, folded_size, list + at + 2, one)) {
            MDB_val tag = { one, (void *) (list + at + 2) }, posting = { 8, seq };
            rc = mdb_del (txn, self->tags, &tag, &posting);
            if (rc == MDB_NOTFOUND)
                rc = 0;
        }
        at += 2 + one;
    }
    if (rc == 0) {
        header.version++;
        uint8_t bytes [S_HEADER_FIXED + LH_PATH_UID_MAX];
        MDB_val key = { write->uid_size, (void *) write->uid };
        MDB_val value = { s_header_encode (&header, bytes), bytes };
        rc = mdb_put (txn, self->traces, &key, &value, 0);
    }
    if (rc == 0)
        rc = s_put_body (self, txn, write->uid, write->uid_size, &header, now, tags, tags_size,
                         folded, folded_size, count, write);
    if (rc == 0) {
        counts->versions++;
        s_version_t record = { .updated_ms = now, .tags = (const uint8_t *) tags,
                               .tags_size = tags_size,
                               .content = (const uint8_t *) write->content,
                               .content_size = write->content_size };
        write->trace = lh_pack_new ();
        s_pack_trace (write->trace, write->uid, write->uid_size, &header, header.version,
                      &record, false);
        write->status = 200;
    }
    zchunk_destroy (&old_tags);
    zchunk_destroy (&old_folded);
    return rc;
}

//  revise: a new trace whose predecessor is the write's uid
static int
s_apply_revise (lh_pathstore_t *self, MDB_txn *txn, lh_pathcounts_t *counts, int64_t now,
                lh_pathwrite_t *write)
{
    s_header_t header;
    bool found;
    int rc = s_target (self, txn, write, &header, &found);
    if (rc || !found)
        return rc;
    zchunk_t *old_tags = NULL, *old_folded = NULL;
    size_t old_count = 0;
    if (!write->tags) {
        rc = s_current_tags (self, txn, write->uid, write->uid_size, &header,
                             &old_tags, &old_folded, &old_count);
        if (rc)
            return rc;
    }
    char uid [S_ULID_SIZE + 1];
    rc = s_new_uid (self, txn, now, uid);
    if (rc == 0)
        rc = s_create (self, txn, counts, now, write, uid, S_ULID_SIZE,
                       write->uid, write->uid_size,
                       write->tags? write->tags: zchunk_data (old_tags),
                       write->tags? write->tags_size: zchunk_size (old_tags),
                       write->tags? write->folded_tags: zchunk_data (old_folded),
                       write->tags? write->folded_tags_size: zchunk_size (old_folded),
                       write->tags? write->tag_count: old_count);
    zchunk_destroy (&old_tags);
    zchunk_destroy (&old_folded);
    return rc;
}

//  Rewrite a trace's header (retire, replay)
static int
s_rewrite_header (lh_pathstore_t *self, MDB_txn *txn, lh_pathwrite_t *write,
                  const s_header_t *header)
{
    uint8_t bytes [S_HEADER_FIXED + LH_PATH_UID_MAX];
    MDB_val key = { write->uid_size, (void *) write->uid };
    MDB_val value = { s_header_encode (header, bytes), bytes };
    return mdb_put (txn, self->traces, &key, &value, 0);
}

//  retire: flag the trace (header and search entry) once
static int
s_apply_retire (lh_pathstore_t *self, MDB_txn *txn, lh_pathcounts_t *counts, lh_pathwrite_t *write)
{
    s_header_t header;
    bool found;
    int rc = s_target (self, txn, write, &header, &found);
    if (rc || !found)
        return rc;
    if (!header.retired) {
        header.retired = true;
        rc = s_rewrite_header (self, txn, write, &header);
        uint8_t seq [8];
        s_put64 (seq, header.seq);
        MDB_val key = { 8, seq }, value;
        if (rc == 0)
            rc = mdb_get (txn, self->search, &key, &value);
        if (rc == 0) {
            //  Copy, flag, put back
            uint8_t *copy = (uint8_t *) malloc (value.mv_size);
            assert (copy);
            memcpy (copy, value.mv_data, value.mv_size);
            copy [0] = 1;
            value.mv_data = copy;
            rc = mdb_put (txn, self->search, &key, &value, 0);
            free (copy);
        }
        if (rc)
            return rc == MDB_NOTFOUND? MDB_CORRUPTED: rc;
        counts->retired++;
    }
    write->trace = lh_pack_new ();
    rc = s_read_trace (self, txn, write->uid, write->uid_size, 0, &header, write->trace);
    if (rc)
        return rc == MDB_NOTFOUND? MDB_CORRUPTED: rc;
    write->status = 200;
    return 0;
}

//  add_idempotent: create with the caller's uid, or count a replay
static int
s_apply_add_idempotent (lh_pathstore_t *self, MDB_txn *txn, lh_pathcounts_t *counts,
                        int64_t now, lh_pathwrite_t *write)
{
    s_header_t header;
    MDB_val key = { write->uid_size, (void *) write->uid }, value;
    int rc = mdb_get (txn, self->traces, &key, &value);
    if (rc == MDB_NOTFOUND)
        return s_create (self, txn, counts, now, write, write->uid, write->uid_size, NULL, 0,
                         write->tags, write->tags_size, write->folded_tags,
                         write->folded_tags_size, write->tag_count);
    if (rc == 0 && s_header_decode (&value, &header))
        rc = MDB_CORRUPTED;
    if (rc)
        return rc;
    header.replay_count++;
    rc = s_rewrite_header (self, txn, write, &header);
    if (rc)
        return rc;
    write->trace = lh_pack_new ();
    rc = s_read_trace (self, txn, write->uid, write->uid_size, 0, &header, write->trace);
    if (rc)
        return rc == MDB_NOTFOUND? MDB_CORRUPTED: rc;
    write->status = 200;
    return 0;
}

//  Apply one write of a batch
static int
s_apply (lh_pathstore_t *self, MDB_txn *txn, lh_pathcounts_t *counts, int64_t now,
         lh_pathwrite_t *write)
{
    if (write->op == LH_PATH_ADD) {
        char uid [S_ULID_SIZE + 1];
        int rc = s_new_uid (self, txn, now, uid);
        if (rc)
            return rc;
        return s_create (self, txn, counts, now, write, uid, S_ULID_SIZE, NULL, 0,
                         write->tags, write->tags_size, write->folded_tags,
                         write->folded_tags_size, write->tag_count);
    }
    if (write->op == LH_PATH_ADD_IDEMPOTENT)
        return s_apply_add_idempotent (self, txn, counts, now, write);
    if (write->op == LH_PATH_UPDATE)
        return s_apply_update (self, txn, counts, now, write);
    if (write->op == LH_PATH_REVISE)
        return s_apply_revise (self, txn, counts, now, write);
    assert (write->op == LH_PATH_RETIRE);
    return s_apply_retire (self, txn, counts, write);
}


//  --------------------------------------------------------------------------
//  Apply a batch of writes in one transaction and commit it. A write that
//  fails on its own (404) leaves nothing; a failed transaction fails
//  every write of the batch, none of which is then written.

static void
s_commit (lh_pathstore_t *self, lh_pathwrite_t *batch)
{
    MDB_txn *txn = NULL;
    lh_pathcounts_t counts;
    int rc = mdb_txn_begin (self->env, NULL, 0, &txn);
    if (rc)
        txn = NULL;
    if (rc == 0)
        rc = s_counts_read (self, txn, &counts);
    int64_t now = zclock_time ();
    bool changed = false;
    for (lh_pathwrite_t *write = batch; rc == 0 && write; write = write->next) {
        rc = s_apply (self, txn, &counts, now, write);
        if (write->status < 400)
            changed = true;
    }
    if (rc == 0 && changed)
        rc = s_counts_write (self, txn, &counts);
    if (rc == 0 && changed) {
        rc = mdb_txn_commit (txn);
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort (txn);
    if (rc) {
        lh_error (S_NAME, NULL, "a commit of writes failed: %s", mdb_strerror (rc));
        for (lh_pathwrite_t *write = batch; write; write = write->next) {
            lh_pack_destroy (&write->trace);
            write->status = s_storage_error (&write->error, rc, "writing");
        }
    }
}


//  --------------------------------------------------------------------------
//  Apply a write: queue it; the first waiting thread while no commit runs
//  takes the queue (up to batch_max) and commits it for everyone

void
lh_pathstore_write (lh_pathstore_t *self, lh_pathwrite_t *write)
{
    assert (self && write);
    write->next = NULL;
    write->done = false;
    write->status = 0;
    write->trace = NULL;
    memset (&write->error, 0, sizeof (write->error));
    pthread_mutex_lock (&self->lock);
    if (self->tail)
        self->tail->next = write;
    else
        self->head = write;
    self->tail = write;
    while (!write->done) {
        if (self->committing) {
            pthread_cond_wait (&self->done, &self->lock);
            continue;
        }
        //  Lead: take the oldest writes, commit them unlocked
        self->committing = true;
        lh_pathwrite_t *batch = self->head, *last = batch;
        size_t count = 1;
        while (last->next && count < self->batch_max) {
            last = last->next;
            count++;
        }
        self->head = last->next;
        if (!self->head)
            self->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock (&self->lock);
        s_commit (self, batch);
        pthread_mutex_lock (&self->lock);
        for (lh_pathwrite_t *done = batch; done; ) {
            lh_pathwrite_t *next = done->next;
            done->next = NULL;
            done->done = true;
            done = next;
        }
        self->commits++;
        self->writes += count;
        self->committing = false;
        pthread_cond_broadcast (&self->done);
    }
    pthread_mutex_unlock (&self->lock);
}


//  --------------------------------------------------------------------------
//  Commits made and writes they carried

void
lh_pathstore_commits (lh_pathstore_t *self, uint64_t *commits, uint64_t *writes)
{
    assert (self);
    pthread_mutex_lock (&self->lock);
    if (commits)
        *commits = self->commits;
    if (writes)
        *writes = self->writes;
    pthread_mutex_unlock (&self->lock);
}


//  --------------------------------------------------------------------------
//  A read transaction; 0 or an LMDB error

static int
s_read_begin (lh_pathstore_t *self, MDB_txn **txn)
{
    return mdb_txn_begin (self->env, NULL, MDB_RDONLY, txn);
}


//  --------------------------------------------------------------------------
//  Pack a trace (a version, or the current one)

uint32_t
lh_pathstore_get (lh_pathstore_t *self, const char *uid, size_t uid_size,
                  uint64_t version, lh_pack_t *pack, lh_patherror_t *error)
{
    assert (self && uid && pack && error);
    MDB_txn *txn;
    int rc = s_read_begin (self, &txn);
    if (rc)
        return s_storage_error (error, rc, "reading");
    s_header_t header;
    uint32_t status = 200;
    rc = s_read_trace (self, txn, uid, uid_size, 0, &header, NULL);
    if (rc == MDB_NOTFOUND) {
        status = 404;
        s_error (error, "no_such_trace", "uid", "no trace with uid '%.*s'", (int) uid_size, uid);
    }
    else
    if (rc == 0 && version > header.version) {
        status = 404;
        s_error (error, "no_such_version", "version",
                 "trace '%.*s' has versions 1 to %" PRIu64 "; there is no version %" PRIu64,
                 (int) uid_size, uid, header.version, version);
    }
    else
    if (rc == 0)
        rc = s_read_trace (self, txn, uid, uid_size, version, &header, pack);
    if (rc && status == 200)
        status = s_storage_error (error, rc, "reading a trace");
    mdb_txn_abort (txn);
    return status;
}


//  --------------------------------------------------------------------------
//  Pack the chain from uid backwards through predecessors

uint32_t
lh_pathstore_history (lh_pathstore_t *self, const char *uid, size_t uid_size,
                      size_t limit, size_t reply_max, lh_pack_t *pack,
                      lh_patherror_t *error)
{
    assert (self && uid && pack && error);
    MDB_txn *txn;
    int rc = s_read_begin (self, &txn);
    if (rc)
        return s_storage_error (error, rc, "reading");
    s_header_t header;
    rc = s_read_trace (self, txn, uid, uid_size, 0, &header, NULL);
    if (rc) {
        mdb_txn_abort (txn);
        if (rc == MDB_NOTFOUND) {
            s_error (error, "no_such_trace", "uid", "no trace with uid '%.*s'",
                     (int) uid_size, uid);
            return 404;
        }
        return s_storage_error (error, rc, "reading a trace");
    }
    //  Walk; visited uids catch a cycle, whatever its length
    zhashx_t *seen = zhashx_new ();
    char current [LH_PATH_UID_MAX + 1];
    memcpy (current, uid, uid_size);
    current [uid_size] = 0;
    const char *missing = NULL, *cycle = NULL, *next = NULL;
    char stop [LH_PATH_UID_MAX + 1] = "";
    size_t count = 0;
    lh_pack_open_map (pack);
    lh_pack_str (pack, "uid");
    lh_pack_strn (pack, uid, uid_size);
    lh_pack_str (pack, "chain");
    lh_pack_open_array (pack);
    while (true) {
        if (zhashx_lookup (seen, current)) {
            snprintf (stop, sizeof (stop), "%s", current);
            cycle = stop;
            lh_error (S_NAME, NULL, "history of '%.*s': trace '%s' is its own ancestor "
                      "(a cycle in the stored predecessors)", (int) uid_size, uid, current);
            break;
        }
        size_t before;
        lh_pack_data (pack, &before);
        if (count >= limit || (count > 0 && before >= reply_max)) {
            snprintf (stop, sizeof (stop), "%s", current);
            next = stop;
            break;
        }
        rc = s_read_trace (self, txn, current, strlen (current), 0, &header, pack);
        if (rc == MDB_NOTFOUND) {
            snprintf (stop, sizeof (stop), "%s", current);
            missing = stop;
            rc = 0;
            break;
        }
        if (rc)
            break;
        zhashx_insert (seen, current, (void *) 1);
        count++;
        if (!header.predecessor_size)
            break;
        memcpy (current, header.predecessor, header.predecessor_size + 1);
    }
    lh_pack_close (pack);
    lh_pack_kv_uint (pack, "count", count);
    lh_pack_kv_bool (pack, "truncated", missing || cycle || next);
    if (missing)
        lh_pack_kv_str (pack, "missing", missing);
    if (cycle)
        lh_pack_kv_str (pack, "cycle", cycle);
    if (next)
        lh_pack_kv_str (pack, "next", next);
    lh_pack_close (pack);
    zhashx_destroy (&seen);
    mdb_txn_abort (txn);
    if (rc)
        return s_storage_error (error, rc, "reading a history");
    return 200;
}


//  --------------------------------------------------------------------------
//  Does a search entry match the query?

static bool
s_matches (const lh_pathquery_t *query, const s_entry_t *entry)
{
    if (entry->retired && !query->include_retired)
        return false;
    if (query->tag_count
    &&  !s_tags_match (entry, (const uint8_t *) query->folded_tags, query->folded_tags_size))
        return false;
    if (query->text
    &&  !memmem (entry->text, entry->text_size, query->text, query->text_size))
        return false;
    return true;
}


//  --------------------------------------------------------------------------
//  Search, newest first: through the postings of the query's rarest tag,
//  or through every trace

uint32_t
lh_pathstore_search (lh_pathstore_t *self, const lh_pathquery_t *query,
                     lh_pack_t *pack, lh_patherror_t *error)
{
    assert (self && query && pack && error);
    MDB_txn *txn;
    int rc = s_read_begin (self, &txn);
    if (rc)
        return s_storage_error (error, rc, "reading");
    MDB_cursor *cursor = NULL;
    bool by_tag = query->tag_count > 0;
    bool empty = false;
    MDB_val key, value;
    if (by_tag) {
        //  The tag with the fewest postings leads
        rc = mdb_cursor_open (txn, self->tags, &cursor);
        const uint8_t *list = (const uint8_t *) query->folded_tags;
        size_t best = SIZE_MAX, best_at = 0;
        for (size_t at = 0; rc == 0 && at + 2 <= query->folded_tags_size; ) {
            size_t one = ((size_t) list [at] << 8) | list [at + 1];
            key = (MDB_val) { one, (void *) (list + at + 2) };
            size_t postings = 0;
            int found = mdb_cursor_get (cursor, &key, &value, MDB_SET);
            if (found == 0)
                mdb_cursor_count (cursor, &postings);
            else
            if (found != MDB_NOTFOUND)
                rc = found;
            if (postings < best) {
                best = postings;
                best_at = at;
            }
            at += 2 + one;
        }
        empty = best == 0;
        if (rc == 0 && !empty) {
            size_t one = ((size_t) list [best_at] << 8) | list [best_at + 1];
            key = (MDB_val) { one, (void *) (list + best_at + 2) };
            rc = mdb_cursor_get (cursor, &key, &value, MDB_SET);
            if (rc == 0)
                rc = mdb_cursor_get (cursor, &key, &value, MDB_LAST_DUP);
        }
    }
    else {
        rc = mdb_cursor_open (txn, self->search, &cursor);
        if (rc == 0) {
            rc = mdb_cursor_get (cursor, &key, &value, MDB_LAST);
            if (rc == MDB_NOTFOUND) {
                empty = true;
                rc = 0;
            }
        }
    }
    size_t count = 0;
    bool truncated = false;
    lh_pack_open_map (pack);
    lh_pack_str (pack, "results");
    lh_pack_open_array (pack);
    while (rc == 0 && !empty) {
        MDB_val entry_value = value;
        if (by_tag) {
            if (value.mv_size != 8) {
                rc = MDB_CORRUPTED;
                break;
            }
            MDB_val seq = value;
            rc = mdb_get (txn, self->search, &seq, &entry_value);
            if (rc == MDB_NOTFOUND)
                rc = MDB_CORRUPTED;
            if (rc)
                break;
        }
        s_entry_t entry;
        if (s_entry_decode (&entry_value, &entry)) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (s_matches (query, &entry)) {
            size_t used;
            lh_pack_data (pack, &used);
            if (count >= query->limit || (count > 0 && used >= query->reply_max)) {
                truncated = true;
                break;
            }
            s_header_t header;
            rc = s_read_trace (self, txn, entry.uid, entry.uid_size, 0, &header, pack);
            if (rc)
                break;
            count++;
        }
        rc = mdb_cursor_get (cursor, &key, &value, by_tag? MDB_PREV_DUP: MDB_PREV);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            break;
        }
    }
    lh_pack_close (pack);
    lh_pack_kv_uint (pack, "count", count);
    lh_pack_kv_bool (pack, "truncated", truncated);
    lh_pack_close (pack);
    if (cursor)
        mdb_cursor_close (cursor);
    mdb_txn_abort (txn);
    if (rc)
        return s_storage_error (error, rc == MDB_NOTFOUND? MDB_CORRUPTED: rc, "searching");
    return 200;
}


//  --------------------------------------------------------------------------
//  The counts

int
lh_pathstore_counts (lh_pathstore_t *self, lh_pathcounts_t *counts)
{
    assert (self && counts);
    MDB_txn *txn;
    if (s_read_begin (self, &txn))
        return -1;
    int rc = s_counts_read (self, txn, counts);
    mdb_txn_abort (txn);
    MDB_envinfo info;
    if (rc == 0 && mdb_env_info (self->env, &info) == 0)
        counts->transactions = (uint64_t) info.me_last_txnid;
    return rc? -1: 0;
}


//  --------------------------------------------------------------------------
//  For tests: set or clear a trace's predecessor directly

int
lh_pathstore_set_predecessor (lh_pathstore_t *self, const char *uid, const char *predecessor)
{
    assert (self && uid);
    size_t size = predecessor? strlen (predecessor): 0;
    if (size > LH_PATH_UID_MAX)
        return -1;
    MDB_txn *txn;
    if (mdb_txn_begin (self->env, NULL, 0, &txn))
        return -1;
    s_header_t header;
    MDB_val key = { strlen (uid), (void *) uid }, value;
    int rc = mdb_get (txn, self->traces, &key, &value);
    if (rc == 0 && s_header_decode (&value, &header))
        rc = -1;
    if (rc == 0) {
        memcpy (header.predecessor, predecessor? predecessor: "", size);
        header.predecessor_size = size;
        uint8_t bytes [S_HEADER_FIXED + LH_PATH_UID_MAX];
        value = (MDB_val) { s_header_encode (&header, bytes), bytes };
        rc = mdb_put (txn, self->traces, &key, &value, 0);
    }
    if (rc == 0)
        return mdb_txn_commit (txn)? -1: 0;
    mdb_txn_abort (txn);
    return -1;
}


//  --------------------------------------------------------------------------
//  Self test: records, folding, group commit under threads, every write,
//  history (long, cut, missing, cyclic), search, reopen

#define S_TEST_THREADS  8
#define S_TEST_WRITES   60              //  per thread

//  A write of a content given as JSON-ish msgpack built by the caller
typedef struct {
    lh_pathwrite_t write;               //  the write
    lh_pack_t *content;                 //  its content
    zchunk_t *folded;                   //  its folded text
    zchunk_t *folded_tags;              //  its folded tags
    lh_pack_t *tags;                    //  its tags
} s_test_write_t;

//  Prepare a write of a string content with tags (NULL-ended, or NULL)
static void
s_test_prepare (s_test_write_t *self, lh_path_op_t op, const char *uid, const char *text,
                const char **tags)
{
    memset (self, 0, sizeof (*self));
    self->write.op = op;
    self->write.uid = uid;
    self->write.uid_size = uid? strlen (uid): 0;
    self->content = lh_pack_new ();
    lh_pack_str (self->content, text);
    self->write.content = lh_pack_data (self->content, &self->write.content_size);
    self->folded = zchunk_new (NULL, 64);
    assert (lh_pathstore_fold (text, strlen (text), self->folded) == 0);
    zchunk_extend (self->folded, "", 1);
    self->write.folded = zchunk_data (self->folded);
    self->write.folded_size = zchunk_size (self->folded);
    if (tags) {
        self->tags = lh_pack_new ();
        self->folded_tags = zchunk_new (NULL, 64);
        lh_pack_open_array (self->tags);
        for (const char **tag = tags; *tag; tag++) {
            zchunk_t *one = zchunk_new (NULL, 64);
            assert (lh_pathstore_fold (*tag, strlen (*tag), one) == 0);
            uint8_t size [2] = { 0, (uint8_t) zchunk_size (one) };
            zchunk_extend (self->folded_tags, size, 2);
            zchunk_extend (self->folded_tags, zchunk_data (one), zchunk_size (one));
            zchunk_destroy (&one);
            lh_pack_str (self->tags, *tag);
            self->write.tag_count++;
        }
        lh_pack_close (self->tags);
        self->write.tags = lh_pack_data (self->tags, &self->write.tags_size);
        self->write.folded_tags = zchunk_data (self->folded_tags);
        self->write.folded_tags_size = zchunk_size (self->folded_tags);
    }
    else
    if (op == LH_PATH_ADD || op == LH_PATH_ADD_IDEMPOTENT) {
        self->write.tags = "\x90";
        self->write.tags_size = 1;
    }
}

//  Free what s_test_prepare made
static void
s_test_release (s_test_write_t *self)
{
    lh_pack_destroy (&self->content);
    lh_pack_destroy (&self->tags);
    lh_pack_destroy (&self->write.trace);
    zchunk_destroy (&self->folded);
    zchunk_destroy (&self->folded_tags);
}

//  Apply one write; returns its status and, when asked, its uid (fresh)
static uint32_t
s_test_write (lh_pathstore_t *store, lh_path_op_t op, const char *uid, const char *text,
              const char **tags, char **uid_p)
{
    s_test_write_t write;
    s_test_prepare (&write, op, uid, text, tags);
    lh_pathstore_write (store, &write.write);
    uint32_t status = write.write.status;
    if (uid_p && write.write.trace) {
        size_t size;
        const void *data = lh_pack_data (write.write.trace, &size);
        msgpack_zone zone;
        msgpack_zone_init (&zone, 1024);
        msgpack_object object;
        assert (msgpack_unpack (data, size, NULL, &zone, &object) == MSGPACK_UNPACK_SUCCESS);
        *uid_p = lh_obj_strdup (lh_obj_get (&object, "uid"));
        msgpack_zone_destroy (&zone);
    }
    s_test_release (&write);
    return status;
}

//  Decode a pack into a zone; the object
static msgpack_object
s_test_decode (lh_pack_t *pack, msgpack_zone *zone)
{
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    msgpack_zone_init (zone, 4096);
    msgpack_object object;
    assert (msgpack_unpack (data, size, NULL, zone, &object) == MSGPACK_UNPACK_SUCCESS);
    return object;
}

//  A search: how many results, and whether truncated
static size_t
s_test_search (lh_pathstore_t *store, const char **tags, const char *text,
               bool include_retired, size_t limit, bool *truncated)
{
    zchunk_t *folded_tags = zchunk_new (NULL, 64);
    size_t count = 0;
    for (const char **tag = tags; tag && *tag; tag++) {
        zchunk_t *one = zchunk_new (NULL, 64);
        assert (lh_pathstore_fold (*tag, strlen (*tag), one) == 0);
        uint8_t size [2] = { 0, (uint8_t) zchunk_size (one) };
        zchunk_extend (folded_tags, size, 2);
        zchunk_extend (folded_tags, zchunk_data (one), zchunk_size (one));
        zchunk_destroy (&one);
        count++;
    }
    zchunk_t *folded_text = zchunk_new (NULL, 64);
    if (text)
        assert (lh_pathstore_fold (text, strlen (text), folded_text) == 0);
    lh_pathquery_t query = {
        .folded_tags = zchunk_data (folded_tags), .folded_tags_size = zchunk_size (folded_tags),
        .tag_count = count,
        .text = text? (const char *) zchunk_data (folded_text): NULL,
        .text_size = zchunk_size (folded_text),
        .include_retired = include_retired, .limit = limit, .reply_max = 1 << 20
    };
    lh_pack_t *pack = lh_pack_new ();
    lh_patherror_t error;
    assert (lh_pathstore_search (store, &query, pack, &error) == 200);
    msgpack_zone zone;
    msgpack_object object = s_test_decode (pack, &zone);
    uint64_t results = 0;
    assert (lh_obj_uint (&object, "count", &results));
    assert (lh_obj_bool (&object, "truncated", truncated));
    const msgpack_object *list = lh_obj_get (&object, "results");
    assert (list && list->type == MSGPACK_OBJECT_ARRAY && list->via.array.size == results);
    msgpack_zone_destroy (&zone);
    lh_pack_destroy (&pack);
    zchunk_destroy (&folded_tags);
    zchunk_destroy (&folded_text);
    return (size_t) results;
}

//  History of uid: the count, and the values of truncated / missing /
//  cycle / next into out as "truncated missing cycle next"
static size_t
s_test_history (lh_pathstore_t *store, const char *uid, size_t limit, char *out, size_t size)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_patherror_t error;
    assert (lh_pathstore_history (store, uid, strlen (uid), limit, 1 << 20, pack, &error) == 200);
    msgpack_zone zone;
    msgpack_object object = s_test_decode (pack, &zone);
    uint64_t count = 0;
    bool truncated = false;
    assert (lh_obj_uint (&object, "count", &count));
    assert (lh_obj_bool (&object, "truncated", &truncated));
    char *missing = lh_obj_strdup (lh_obj_get (&object, "missing"));
    char *cycle = lh_obj_strdup (lh_obj_get (&object, "cycle"));
    char *next = lh_obj_strdup (lh_obj_get (&object, "next"));
    snprintf (out, size, "%s %s %s %s", truncated? "true": "false", missing? missing: "-",
              cycle? cycle: "-", next? next: "-");
    free (missing);
    free (cycle);
    free (next);
    msgpack_zone_destroy (&zone);
    lh_pack_destroy (&pack);
    return (size_t) count;
}

//  Writer thread: adds of its own and updates of the shared trace
static void *
s_test_writer (void *args)
{
    lh_pathstore_t *store = (lh_pathstore_t *) args;
    for (int index = 0; index < S_TEST_WRITES; index++) {
        if (index % 2)
            assert (s_test_write (store, LH_PATH_UPDATE, "shared", "again", NULL, NULL) == 200);
        else
            assert (s_test_write (store, LH_PATH_ADD, NULL, "mine", NULL, NULL) == 201);
    }
    return NULL;
}

void
lh_pathstore_test (bool verbose)
{
    printf (" * lh_pathstore: ");
    char dir [] = "/tmp/lh_pathstore_test.XXXXXX";
    assert (mkdtemp (dir));
    const char *error = NULL;
    //  Small maps: valgrind cannot map large ones
    lh_pathstore_t *store = lh_pathstore_open (dir, 64 << 20, 256, &error);
    assert (store);

    //  Folding: ASCII and, with the C.UTF-8 locale, the rest
    zchunk_t *folded = zchunk_new (NULL, 16);
    assert (lh_pathstore_fold ("AbC \xc3\x89t\xc3\xa9 \xce\xa3", 12, folded) == 0);
    if (s_fold_locale)
        assert (zchunk_size (folded) == 12 && memcmp (zchunk_data (folded), "abc \xc3\xa9t\xc3\xa9 \xcf\x83", 12) == 0);
    else
        assert (memcmp (zchunk_data (folded), "abc ", 4) == 0);
    const char *invalid [] = { "\xc3", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff", "a\x80" };
    for (size_t index = 0; index < sizeof (invalid) / sizeof (invalid [0]); index++)
        assert (lh_pathstore_fold (invalid [index], strlen (invalid [index]), folded) == -1);
    zchunk_destroy (&folded);

    //  Contents JSON cannot carry are refused, naming where
    char reason [300];
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object object;
    const char bad_key [] = "\x81\xa1" "a\x91\x81\x01\x02";     //  {"a": [{1: 2}]}
    assert (msgpack_unpack (bad_key, sizeof (bad_key) - 1, NULL, &zone, &object) == MSGPACK_UNPACK_SUCCESS);
    folded = zchunk_new (NULL, 16);
    assert (lh_pathstore_content (&object, folded, reason, sizeof (reason)) == -1);
    assert (strstr (reason, "content.a[0]") && strstr (reason, "not a string"));
    const char nan [] = "\x92\x01\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00";
    assert (msgpack_unpack (nan, sizeof (nan) - 1, NULL, &zone, &object) == MSGPACK_UNPACK_SUCCESS);
    assert (lh_pathstore_content (&object, folded, reason, sizeof (reason)) == -1);
    assert (strstr (reason, "content[1]") && strstr (reason, "NaN"));
    const char good [] = "\x83\xa4Name\xa4T\xc3\x89O\xa1n\x2a\xa1r\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a";
    assert (msgpack_unpack (good, sizeof (good) - 1, NULL, &zone, &object) == MSGPACK_UNPACK_SUCCESS);
    zchunk_destroy (&folded);
    folded = zchunk_new (NULL, 16);
    assert (lh_pathstore_content (&object, folded, reason, sizeof (reason)) == 0);
    assert (zchunk_size (folded) == 21);
    assert (memcmp (zchunk_data (folded), "name\0t\xc3\xa9o\0n\0" "42\0r\0" "0.1\0", 21) == 0);
    zchunk_destroy (&folded);
    msgpack_zone_destroy (&zone);
    assert (lh_pathstore_uid_valid ("01ARZ3NDEKTSV4RRFFQ69G5FAV", 26));
    assert (!lh_pathstore_uid_valid ("a b", 3) && !lh_pathstore_uid_valid ("", 0));
    assert (!lh_pathstore_uid_valid ("a/b", 3));

    //  ULIDs: 26 characters, increasing within one millisecond
    char first [S_ULID_SIZE + 1], second [S_ULID_SIZE + 1];
    s_ulid (store, 1000, first);
    s_ulid (store, 1000, second);
    assert (strlen (first) == 26 && strcmp (first, second) < 0);
    assert (memcmp (first, "00000000Z8", 10) == 0);     //  1000 ms = 31 x 32 + 8
    store->ulid_ms = 0;

    //  Many writers at once: every version kept, none lost or doubled
    assert (s_test_write (store, LH_PATH_ADD_IDEMPOTENT, "shared", "v1", NULL, NULL) == 201);
    pthread_t threads [S_TEST_THREADS];
    for (int index = 0; index < S_TEST_THREADS; index++)
        assert (pthread_create (&threads [index], NULL, s_test_writer, store) == 0);
    for (int index = 0; index < S_TEST_THREADS; index++)
        pthread_join (threads [index], NULL);
    uint64_t updates = S_TEST_THREADS * (S_TEST_WRITES / 2);
    uint64_t adds = S_TEST_THREADS * S_TEST_WRITES - updates;
    lh_pathcounts_t counts;
    assert (lh_pathstore_counts (store, &counts) == 0);
    assert (counts.total == adds + 1 && counts.versions == adds + 1 + updates);
    assert (counts.retired == 0 && counts.next_seq == adds + 2);
    lh_patherror_t failure;
    for (uint64_t version = 1; version <= updates + 1; version++) {
        lh_pack_t *pack = lh_pack_new ();
        assert (lh_pathstore_get (store, "shared", 6, version, pack, &failure) == 200);
        lh_pack_destroy (&pack);
    }
    lh_pack_t *pack = lh_pack_new ();
    assert (lh_pathstore_get (store, "shared", 6, updates + 2, pack, &failure) == 404);
    assert (streq (failure.kind, "no_such_version") && streq (failure.field, "version"));
    assert (lh_pathstore_get (store, "nope", 4, 0, pack, &failure) == 404);
    assert (streq (failure.kind, "no_such_trace"));
    lh_pack_destroy (&pack);
    uint64_t commits, writes;
    lh_pathstore_commits (store, &commits, &writes);
    assert (writes == adds + updates + 1 && commits <= writes);
    if (verbose)
        printf ("\n    %" PRIu64 " writes in %" PRIu64 " commits", writes, commits);

    //  Each write, and a batch mixing good and failing writes
    const char *staff [] = { "Staffing", "Forklift", NULL };
    char *a = NULL, *b = NULL, *c = NULL;
    assert (s_test_write (store, LH_PATH_ADD, NULL, "Toledo night shift", staff, &a) == 201);
    assert (a && strlen (a) == 26);
    assert (s_test_write (store, LH_PATH_REVISE, a, "Toledo day shift", NULL, &b) == 201);
    assert (s_test_write (store, LH_PATH_REVISE, b, "Dayton day shift", NULL, &c) == 201);
    assert (s_test_write (store, LH_PATH_UPDATE, "missing", "x", NULL, NULL) == 404);
    assert (s_test_write (store, LH_PATH_RETIRE, "missing", "x", NULL, NULL) == 404);
    assert (s_test_write (store, LH_PATH_REVISE, "missing", "x", NULL, NULL) == 404);
    assert (s_test_write (store, LH_PATH_ADD_IDEMPOTENT, a, "other", NULL, NULL) == 200);
    pack = lh_pack_new ();
    assert (lh_pathstore_get (store, a, strlen (a), 0, pack, &failure) == 200);
    object = s_test_decode (pack, &zone);
    const char *text;
    size_t size;
    uint64_t replays = 0;
    assert (lh_obj_str (&object, "content", &text, &size) && size == 18);   //  kept
    assert (lh_obj_uint (&object, "replay_count", &replays) && replays == 1);
    assert (lh_obj_get (&object, "predecessor") == NULL);
    assert (lh_obj_get (&object, "current_version") == NULL);
    msgpack_zone_destroy (&zone);
    lh_pack_destroy (&pack);

    //  Search: tags all-match and case-insensitive, text, retired, limit
    bool truncated;
    const char *both [] = { "staffing", "FORKLIFT", NULL };
    const char *other [] = { "staffing", "nurse", NULL };
    const char *none [] = { "nosuchtag", NULL };
    assert (s_test_search (store, both, NULL, false, 10, &truncated) == 3 && !truncated);
    assert (s_test_search (store, other, NULL, false, 10, &truncated) == 0);
    assert (s_test_search (store, none, NULL, false, 10, &truncated) == 0);
    assert (s_test_search (store, both, "TOLEDO", false, 10, &truncated) == 2);
    assert (s_test_search (store, NULL, "day shift", false, 10, &truncated) == 2);
    assert (s_test_search (store, NULL, "mine", false, 10, &truncated) == 10 && truncated);
    assert (s_test_search (store, NULL, "mine", false, 1000, &truncated) == adds && !truncated);
    assert (s_test_search (store, NULL, "shift toledo", false, 10, &truncated) == 0);
    assert (s_test_write (store, LH_PATH_RETIRE, b, "x", NULL, NULL) == 200);
    assert (s_test_write (store, LH_PATH_RETIRE, b, "x", NULL, NULL) == 200);
    assert (s_test_search (store, both, "day shift", false, 10, &truncated) == 1);
    assert (s_test_search (store, both, "day shift", true, 10, &truncated) == 2);
    //  An update changes what search finds: new tags, new text
    const char *nurse [] = { "Nurse", NULL };
    assert (s_test_write (store, LH_PATH_UPDATE, c, "Louisville ICU", nurse, NULL) == 200);
    assert (s_test_search (store, both, NULL, true, 10, &truncated) == 2);
    assert (s_test_search (store, nurse, "icu", false, 10, &truncated) == 1);
    assert (s_test_search (store, NULL, "dayton", true, 10, &truncated) == 0);
    assert (lh_pathstore_counts (store, &counts) == 0 && counts.retired == 1);

    //  History: the chain back, cut by limit, a missing predecessor, a cycle
    char state [200];
    assert (s_test_history (store, c, 10, state, sizeof (state)) == 3);
    assert (streq (state, "false - - -"));
    assert (s_test_history (store, c, 2, state, sizeof (state)) == 2);
    char expect [200];
    snprintf (expect, sizeof (expect), "true - - %s", a);
    assert (streq (state, expect));
    assert (lh_pathstore_set_predecessor (store, a, "gone") == 0);
    assert (s_test_history (store, c, 10, state, sizeof (state)) == 3);
    assert (streq (state, "true gone - -"));
    assert (lh_pathstore_set_predecessor (store, a, c) == 0);
    assert (s_test_history (store, c, 10, state, sizeof (state)) == 3);
    snprintf (expect, sizeof (expect), "true - %s -", c);
    assert (streq (state, expect));
    assert (lh_pathstore_set_predecessor (store, a, a) == 0);
    assert (s_test_history (store, a, 10, state, sizeof (state)) == 1);
    snprintf (expect, sizeof (expect), "true - %s -", a);
    assert (streq (state, expect));
    pack = lh_pack_new ();
    assert (lh_pathstore_history (store, "nope", 4, 10, 1 << 20, pack, &failure) == 404);
    lh_pack_destroy (&pack);

    //  Reopened, everything is there
    lh_pathcounts_t before;
    assert (lh_pathstore_counts (store, &before) == 0);
    lh_pathstore_destroy (&store);
    store = lh_pathstore_open (dir, 64 << 20, 256, &error);
    assert (store);
    assert (lh_pathstore_counts (store, &counts) == 0);
    assert (memcmp (&counts, &before, sizeof (counts)) == 0);
    assert (s_test_search (store, nurse, "icu", false, 10, &truncated) == 1);
    assert (s_test_write (store, LH_PATH_ADD, NULL, "after", NULL, NULL) == 201);

    free (a);
    free (b);
    free (c);
    lh_pathstore_destroy (&store);
    char *command = zsys_sprintf ("rm -rf '%s'", dir);
    assert (system (command) == 0);
    zstr_free (&command);
    printf ("OK\n");
}
