/*  =========================================================================
    lh_roster_dataset - keep a roster loaded from a catalogued dataset;
    see lh_roster_dataset.h
    =========================================================================
*/

#include "lh_roster_dataset.h"
#include "lh_actor.h"
#include "lh_job.h"
#include "lh_body.h"
#include "lh_log.h"

#define S_NAME          "validatord"
#define S_RETRY_MS      5000            //  retry a failed load after (at most)
#define S_SETTLE_MS     500             //  wait after catalog.changed before loading
#define S_DEPTH_MAX     32              //  deepest msgpack value we skip
#define S_INFLIGHT      2               //  page requests in flight
#define S_RANGES_MAX    4096            //  most rowid ranges of one load

//  Roster field names (the JSONL keys), in lh_roster_field_t order
static const char *s_fields [LH_ROSTER_FIELDS] = {
    "candidate_id", "name", "city", "state", "role", "status", "blacklisted_clients"
};
//  Second column name tried for a field, or NULL
static const char *s_alternates [LH_ROSTER_FIELDS] = {
    "worker_id", NULL, NULL, NULL, NULL, NULL, "blacklist"
};

struct _lh_roster_dataset_t {
    lh_roster_t *roster;                //  the roster we fill (borrowed)
    char *dataset;                      //  dataset name
    char *columns;                      //  column mapping override, or ""
    uint64_t page_rows;                 //  rows asked per page
    int64_t poll_ms;                    //  catalogd.get poll period
    uint32_t timeout_ms;                //  deadline of each call
    char *endpoint;                     //  broker endpoint (own copy)
    char *server_key;                   //  broker's CURVE key, or NULL
    lh_link_t link;                     //  link for the follower's client
    char *key;                          //  object key loaded (follower only)
    bool changed;                       //  catalog.changed came during a load
    zactor_t *follower;                 //  the follower thread
};

//  A msgpack reader over a borrowed buffer
typedef struct {
    const uint8_t *ptr;                 //  next byte
    const uint8_t *end;                 //  end of the buffer
} s_mp_t;

typedef enum {
    S_MP_NIL, S_MP_BOOL, S_MP_INT, S_MP_UINT, S_MP_FLOAT, S_MP_STR, S_MP_BIN,
    S_MP_ARRAY, S_MP_MAP, S_MP_EXT
} s_mp_type_t;

//  One range of rowids being fetched
typedef struct {
    int64_t from;                       //  rowids after this one
    int64_t to;                         //  up to and including this one
    uint64_t id;                        //  request in flight, 0 none
    int64_t sent;                       //  when it was sent
    lh_reply_t *reply;                  //  its reply, not parsed yet
} s_range_t;

//  One msgpack value header (containers: their count, not their items)
typedef struct {
    s_mp_type_t type;                   //  what it is
    const char *data;                   //  str / bin / ext bytes
    size_t size;                        //  their length
    int64_t integer;                    //  S_MP_INT
    uint64_t unsigned_;                 //  S_MP_UINT
    double real;                        //  S_MP_FLOAT
    bool boolean;                       //  S_MP_BOOL
    uint32_t count;                     //  S_MP_ARRAY items, S_MP_MAP pairs
} s_mp_value_t;


//  --------------------------------------------------------------------------
//  Read a big-endian unsigned integer of size bytes; -1 if truncated

static int
s_mp_be (s_mp_t *self, size_t size, uint64_t *value)
{
    if ((size_t) (self->end - self->ptr) < size)
        return -1;
    uint64_t result = 0;
    for (size_t index = 0; index < size; index++)
        result = (result << 8) | self->ptr [index];
    self->ptr += size;
    *value = result;
    return 0;
}


//  --------------------------------------------------------------------------
//  Take size bytes of payload; -1 if truncated

static int
s_mp_bytes (s_mp_t *self, uint64_t size, s_mp_value_t *value)
{
    if ((uint64_t) (self->end - self->ptr) < size)
        return -1;
    value->data = (const char *) self->ptr;
    value->size = (size_t) size;
    self->ptr += size;
    return 0;
}


//  --------------------------------------------------------------------------
//  Read one value header. Returns 0, or -1 if truncated or malformed.

static int
s_mp_next (s_mp_t *self, s_mp_value_t *value)
{
    if (self->ptr >= self->end)
        return -1;
    uint8_t byte = *self->ptr++;
    uint64_t number;
    if (byte <= 0x7f) {
        value->type = S_MP_UINT;
        value->unsigned_ = byte;
        return 0;
    }
    if (byte >= 0xe0) {
        value->type = S_MP_INT;
        value->integer = (int8_t) byte;
        return 0;
    }
    if ((byte & 0xe0) == 0xa0) {
        value->type = S_MP_STR;
        return s_mp_bytes (self, byte & 0x1f, value);
    }
    if ((byte & 0xf0) == 0x90 || (byte & 0xf0) == 0x80) {
        value->type = (byte & 0xf0) == 0x90? S_MP_ARRAY: S_MP_MAP;
        value->count = byte & 0x0f;
        return 0;
    }
    switch (byte) {
        case 0xc0: value->type = S_MP_NIL; return 0;
        case 0xc2: case 0xc3:
            value->type = S_MP_BOOL;
            value->boolean = byte == 0xc3;
            return 0;
        case 0xcc: case 0xcd: case 0xce: case 0xcf:
            value->type = S_MP_UINT;
            return s_mp_be (self, (size_t) 1 << (byte - 0xcc), &value->unsigned_);
        case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
            size_t size = (size_t) 1 << (byte - 0xd0);
            if (s_mp_be (self, size, &number))
                return -1;
            value->type = S_MP_INT;
            value->integer = size == 1? (int8_t) number: size == 2? (int16_t) number:
                             size == 4? (int32_t) number: (int64_t) number;
            return 0;
        }
        case 0xca: {
            if (s_mp_be (self, 4, &number))
                return -1;
            uint32_t bits = (uint32_t) number;
            float real;
            memcpy (&real, &bits, 4);
            value->type = S_MP_FLOAT;
            value->real = real;
            return 0;
        }
        case 0xcb:
            if (s_mp_be (self, 8, &number))
                return -1;
            memcpy (&value->real, &number, 8);
            value->type = S_MP_FLOAT;
            return 0;
        case 0xd9: case 0xda: case 0xdb:
        case 0xc4: case 0xc5: case 0xc6: {
            bool str = byte >= 0xd9;
            size_t size = (size_t) 1 << (byte - (str? 0xd9: 0xc4));
            if (s_mp_be (self, size, &number))
                return -1;
            value->type = str? S_MP_STR: S_MP_BIN;
            return s_mp_bytes (self, number, value);
        }
        case 0xdc: case 0xdd: case 0xde: case 0xdf:
            if (s_mp_be (self, byte == 0xdc || byte == 0xde? 2: 4, &number))
                return -1;
            value->type = byte <= 0xdd? S_MP_ARRAY: S_MP_MAP;
            value->count = (uint32_t) number;
            return 0;
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
            value->type = S_MP_EXT;
            return s_mp_bytes (self, 1 + ((uint64_t) 1 << (byte - 0xd4)), value);
        case 0xc7: case 0xc8: case 0xc9:
            if (s_mp_be (self, (size_t) 1 << (byte - 0xc7), &number))
                return -1;
            value->type = S_MP_EXT;
            return s_mp_bytes (self, number + 1, value);
        default:
            return -1;                  //  0xc1 is never used
    }
}


//  --------------------------------------------------------------------------
//  Skip one whole value. Returns 0 or -1.

static int
s_mp_skip (s_mp_t *self, int depth)
{
    s_mp_value_t value;
    if (depth > S_DEPTH_MAX || s_mp_next (self, &value))
        return -1;
    if (value.type == S_MP_ARRAY || value.type == S_MP_MAP) {
        uint64_t items = value.type == S_MP_MAP? (uint64_t) value.count * 2: value.count;
        for (uint64_t index = 0; index < items; index++)
            if (s_mp_skip (self, depth + 1))
                return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Parse one queryd.sql reply body: rows of [rowid, column...] where
//  fields [N] is the roster field of column N + 1. Adds every row to the
//  builder; sets *last_p to the last rowid, *rows_p and *truncated_p.
//  Returns NULL, or a static sentence.

static const char *
s_page_parse (lh_roster_builder_t *builder, const void *data, size_t size,
              const int *fields, uint32_t columns, int64_t *last_p,
              uint64_t *rows_p, bool *truncated_p)
{
    s_mp_t mp = { (const uint8_t *) data, (const uint8_t *) data + size };
    s_mp_value_t value;
    *rows_p = 0;
    *truncated_p = false;
    bool have_rows = false;
    if (s_mp_next (&mp, &value) || value.type != S_MP_MAP)
        return "the reply is not a map";
    uint32_t pairs = value.count;
    for (uint32_t pair = 0; pair < pairs; pair++) {
        if (s_mp_next (&mp, &value) || value.type != S_MP_STR)
            return "the reply has a key that is not a string";
        if (value.size == 9 && memcmp (value.data, "truncated", 9) == 0) {
            if (s_mp_next (&mp, &value) || value.type != S_MP_BOOL)
                return "truncated is not a boolean";
            *truncated_p = value.boolean;
            continue;
        }
        if (!(value.size == 4 && memcmp (value.data, "rows", 4) == 0)) {
            if (s_mp_skip (&mp, 1))
                return "the reply is malformed";
            continue;
        }
        if (s_mp_next (&mp, &value) || value.type != S_MP_ARRAY)
            return "rows is not an array";
        have_rows = true;
        uint32_t rows = value.count;
        for (uint32_t row = 0; row < rows; row++) {
            if (s_mp_next (&mp, &value) || value.type != S_MP_ARRAY
            ||  value.count != columns + 1)
                return "a row does not have the columns asked for";
            if (s_mp_next (&mp, &value))
                return "a row is malformed";
            if (value.type == S_MP_INT)
                *last_p = value.integer;
            else
            if (value.type == S_MP_UINT && value.unsigned_ <= INT64_MAX)
                *last_p = (int64_t) value.unsigned_;
            else
                return "a rowid is not an integer";
            const char *values [LH_ROSTER_FIELDS] = { NULL };
            size_t sizes [LH_ROSTER_FIELDS] = { 0 };
            char numbers [LH_ROSTER_FIELDS][32];
            for (uint32_t column = 0; column < columns; column++) {
                int field = fields [column];
                if (s_mp_next (&mp, &value))
                    return "a row is malformed";
                switch (value.type) {
                    case S_MP_STR: case S_MP_BIN:
                        values [field] = value.data;
                        sizes [field] = value.size;
                        break;
                    case S_MP_INT:
                        sizes [field] = (size_t) snprintf (numbers [field], 32, "%" PRId64,
                                                           value.integer);
                        values [field] = numbers [field];
                        break;
                    case S_MP_UINT:
                        sizes [field] = (size_t) snprintf (numbers [field], 32, "%" PRIu64,
                                                           value.unsigned_);
                        values [field] = numbers [field];
                        break;
                    case S_MP_FLOAT:
                        sizes [field] = (size_t) snprintf (numbers [field], 32, "%.17g",
                                                           value.real);
                        values [field] = numbers [field];
                        break;
                    case S_MP_BOOL:
                        values [field] = value.boolean? "true": "false";
                        sizes [field] = strlen (values [field]);
                        break;
                    case S_MP_NIL:
                        break;
                    default:
                        return "a value is an array, map or extension";
                }
            }
            const char *problem = lh_roster_builder_add (builder, values, sizes);
            if (problem)
                return problem;
            (*rows_p)++;
        }
    }
    return have_rows? NULL: "the reply has no rows";
}


//  --------------------------------------------------------------------------
//  Map a dataset's columns to roster fields (map [field] = column or -1).
//  Returns 0, or -1 with *error_p set.

int
lh_roster_dataset_map (const char *const *columns, size_t count, const char *override,
                       int *map, char **error_p)
{
    assert (columns || count == 0);
    assert (map && error_p);
    for (int field = 0; field < LH_ROSTER_FIELDS; field++) {
        map [field] = -1;
        for (size_t column = 0; column < count && map [field] < 0; column++)
            if (strcasecmp (columns [column], s_fields [field]) == 0)
                map [field] = (int) column;
        for (size_t column = 0; column < count && map [field] < 0 && s_alternates [field]; column++)
            if (strcasecmp (columns [column], s_alternates [field]) == 0)
                map [field] = (int) column;
    }
    char *list = strdup (override? override: "");
    char *save = NULL;
    int rc = 0;
    for (char *pair = strtok_r (list, ",", &save); pair && rc == 0;
         pair = strtok_r (NULL, ",", &save)) {
        char *equals = strchr (pair, '=');
        char *field_name = pair, *column_name = equals? equals + 1: NULL;
        if (equals)
            *equals = 0;
        while (*field_name == ' ')
            field_name++;
        size_t field_size = strlen (field_name);
        while (field_size > 0 && field_name [field_size - 1] == ' ')
            field_name [--field_size] = 0;
        int field = -1;
        for (int index = 0; index < LH_ROSTER_FIELDS && column_name; index++)
            if (strcasecmp (field_name, s_fields [index]) == 0)
                field = index;
        if (field < 0) {
            *error_p = zsys_sprintf ("validatord/roster_columns: '%s%s%s' is not field=column "
                                     "with a field of candidate_id, name, city, state, role, "
                                     "status, blacklisted_clients", field_name,
                                     column_name? "=": "", column_name? column_name: "");
            rc = -1;
            break;
        }
        while (*column_name == ' ')
            column_name++;
        size_t length = strlen (column_name);
        while (length > 0 && column_name [length - 1] == ' ')
            column_name [--length] = 0;
        map [field] = -1;
        for (size_t column = 0; column < count && map [field] < 0; column++)
            if (strcasecmp (columns [column], column_name) == 0)
                map [field] = (int) column;
        if (map [field] < 0) {
            *error_p = zsys_sprintf ("validatord/roster_columns: the dataset has no column '%s' "
                                     "(for %s)", column_name, s_fields [field]);
            rc = -1;
        }
    }
    free (list);
    if (rc == 0 && map [LH_ROSTER_ID] < 0) {
        *error_p = strdup ("the dataset has neither a candidate_id nor a worker_id column "
                           "(map one with validatord/roster_columns)");
        rc = -1;
    }
    return rc;
}


//  --------------------------------------------------------------------------
//  Append text to a heap string (NULL starts one); returns the new string

static char *
s_append (char *string, const char *text)
{
    size_t used = string? strlen (string): 0;
    size_t size = strlen (text);
    string = (char *) realloc (string, used + size + 1);
    assert (string);
    memcpy (string + used, text, size + 1);
    return string;
}


//  --------------------------------------------------------------------------
//  Append an SQL identifier, double-quoted with inner quotes doubled

static char *
s_append_ident (char *string, const char *name)
{
    char *quoted = (char *) malloc (strlen (name) * 2 + 3);
    assert (quoted);
    char *write = quoted;
    *write++ = '"';
    for (const char *scan = name; *scan; scan++) {
        if (*scan == '"')
            *write++ = '"';
        *write++ = *scan;
    }
    *write++ = '"';
    *write = 0;
    string = s_append (string, quoted);
    free (quoted);
    return string;
}


//  --------------------------------------------------------------------------
//  Send one page request of a range: rowids in (from, to]. Returns the
//  request id, 0 if it could not be sent.

static uint64_t
s_range_send (lh_roster_dataset_t *self, lh_job_t *job, const char *sql,
              s_range_t *range)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 3);
    lh_pack_kv_str (pack, "sql", sql);
    lh_pack_str (pack, "params");
    lh_pack_array (pack, 2);
    lh_pack_int (pack, range->from);
    lh_pack_int (pack, range->to);
    lh_pack_kv_uint (pack, "limit", self->page_rows);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    lh_call_opts_t opts;
    lh_job_opts (job, self->timeout_ms, &opts);
    range->id = lh_client_send (job->client, "queryd", "sql", data, size, &opts);
    range->sent = zclock_mono ();
    lh_pack_destroy (&pack);
    return range->id;
}


//  --------------------------------------------------------------------------
//  Read every row into the builder: ask min/max rowid, split that span in
//  ranges of about page_rows rowids, keep S_INFLIGHT ranges in flight
//  (queryd runs them on its workers while we parse) and parse the replies
//  in range order, so a later duplicate id still wins. A truncated reply
//  continues its range from its last rowid. Returns 0 or -1 with *error_p.

static int
s_fetch (lh_roster_dataset_t *self, lh_job_t *job, const char *sql, const char *bounds,
         lh_roster_builder_t *builder, const int *fields, uint32_t selected,
         uint64_t expected, uint64_t *total_p, size_t *pages_p, char **error_p)
{
    //  The span of rowids
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "sql", bounds);
    size_t size;
    lh_reply_t *reply = NULL;
    lh_job_call_pack (job, "queryd", "sql", &pack, self->timeout_ms, &reply);
    (*pages_p)++;
    const msgpack_object *rows = lh_obj_get (lh_reply_object (reply), "rows");
    const msgpack_object *row = rows && rows->type == MSGPACK_OBJECT_ARRAY
                             && rows->via.array.size == 1? &rows->via.array.ptr [0]: NULL;
    if (lh_reply_status (reply) != LH_ST_OK || !row || row->type != MSGPACK_OBJECT_ARRAY
    ||  row->via.array.size != 2) {
        const char *reason = lh_reply_reason (reply);
        *error_p = zsys_sprintf ("queryd.sql answered %u: %s", lh_reply_status (reply),
                                 reason? reason: "no min/max rowid");
        lh_reply_destroy (&reply);
        return -1;
    }
    const msgpack_object *low = &row->via.array.ptr [0], *high = &row->via.array.ptr [1];
    if (low->type == MSGPACK_OBJECT_NIL) {
        lh_reply_destroy (&reply);
        return 0;                       //  no rows: an empty roster
    }
    if ((low->type != MSGPACK_OBJECT_POSITIVE_INTEGER && low->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
    ||  (high->type != MSGPACK_OBJECT_POSITIVE_INTEGER && high->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)) {
        *error_p = strdup ("min/max rowid are not integers");
        lh_reply_destroy (&reply);
        return -1;
    }
    int64_t min = low->via.i64, max = high->via.i64;
    lh_reply_destroy (&reply);
    if (min > max || min == INT64_MIN) {
        *error_p = strdup ("min/max rowid are out of order");
        return -1;
    }
    //  Ranges of about page_rows rowids (at most S_RANGES_MAX)
    uint64_t span = (uint64_t) max - (uint64_t) min + 1;
    uint64_t count = (expected + self->page_rows - 1) / self->page_rows;
    if (count < 1)
        count = 1;
    if (count > S_RANGES_MAX)
        count = S_RANGES_MAX;
    if (span == 0 || count > span)
        count = span == 0? 1: span;     //  span 0: the whole int64 range
    uint64_t width = span == 0? UINT64_MAX / count: (span + count - 1) / count;
    s_range_t *ranges = (s_range_t *) calloc (count, sizeof (s_range_t));
    assert (ranges);
    for (uint64_t index = 0; index < count; index++) {
        ranges [index].from = (int64_t) ((uint64_t) min - 1 + index * width);
        ranges [index].to = index + 1 == count? max: (int64_t) ((uint64_t) min - 1 + (index + 1) * width);
    }
    int rc = 0;
    uint64_t head = 0, next = 0;
    size_t inflight = 0;
    while (rc == 0 && head < count) {
        lh_keepalive ();                //  no-op off a worker thread
        while (rc == 0 && inflight < S_INFLIGHT && next < count) {
            if (s_range_send (self, job, sql, &ranges [next]) == 0) {
                *error_p = strdup ("queryd.sql could not be sent");
                rc = -1;
            }
            next++;
            inflight++;
        }
        if (rc)
            break;
        s_range_t *range = &ranges [head];
        if (!range->reply) {
            //  Wait for any reply; keep it with its range
            if (zsys_interrupted) {
                *error_p = strdup ("interrupted");
                rc = -1;
                break;
            }
            if (zclock_mono () - range->sent > (int64_t) self->timeout_ms + 2000) {
                *error_p = strdup ("queryd.sql did not answer before the deadline");
                rc = -1;
                break;
            }
            lh_reply_t *answer = NULL;
            if (lh_client_recv (job->client, &answer, 200) != 0)
                continue;
            if (lh_reply_type (answer) == LH_T_PUB) {
                const char *name;
                size_t name_size;
                if (lh_obj_str (lh_reply_object (answer), "name", &name, &name_size)
                &&  name_size == strlen (self->dataset)
                &&  strncasecmp (name, self->dataset, name_size) == 0)
                    self->changed = true;
            }
            else
            if (lh_reply_type (answer) == LH_T_REP) {
                for (uint64_t index = head; index < next; index++)
                    if (ranges [index].id == lh_reply_cid (answer) && !ranges [index].reply) {
                        ranges [index].reply = answer;
                        answer = NULL;
                        inflight--;
                        break;
                    }
            }
            lh_reply_destroy (&answer);
            continue;
        }
        //  Parse the head range's reply
        (*pages_p)++;
        reply = range->reply;
        range->reply = NULL;
        range->id = 0;
        if (lh_reply_status (reply) != LH_ST_OK) {
            const char *reason = lh_reply_reason (reply);
            *error_p = zsys_sprintf ("queryd.sql answered %u: %s", lh_reply_status (reply),
                                     reason? reason: lh_status_text (lh_reply_status (reply)));
            rc = -1;
        }
        else {
            const void *body = lh_reply_body (reply, &size);
            uint64_t got = 0;
            bool truncated = false;
            int64_t last = range->from;
            const char *problem = body? s_page_parse (builder, body, size, fields, selected,
                                                      &last, &got, &truncated):
                                        "the reply has no body";
            *total_p += got;
            if (problem) {
                *error_p = zsys_sprintf ("page %zu: %s", *pages_p, problem);
                rc = -1;
            }
            else
            if (truncated && got == 0) {
                *error_p = strdup ("queryd returned an empty truncated page (a row larger "
                                   "than queryd/reply_max?)");
                rc = -1;
            }
            else
            if (truncated) {
                //  The rest of this range, before the ranges after it
                range->from = last;
                if (s_range_send (self, job, sql, range) == 0) {
                    *error_p = strdup ("queryd.sql could not be sent");
                    rc = -1;
                }
                inflight++;
            }
            else
                head++;
        }
        lh_reply_destroy (&reply);
    }
    for (uint64_t index = 0; index < count; index++)
        lh_reply_destroy (&ranges [index].reply);
    free (ranges);
    return rc;
}


//  --------------------------------------------------------------------------
//  Read the dataset's rows through queryd into a new roster and install
//  it. manifest is catalogd's. Returns 0; 1 when installed but the row
//  count differs from the manifest's (queryd may still serve the previous
//  version: check again soon); or -1 with *error_p set.

static int
s_load (lh_roster_dataset_t *self, lh_job_t *job, const msgpack_object *manifest,
        char **error_p)
{
    const msgpack_object *schema = lh_obj_get (manifest, "schema");
    if (!schema || schema->type != MSGPACK_OBJECT_ARRAY || schema->via.array.size == 0) {
        *error_p = strdup ("its manifest has no schema");
        return -1;
    }
    uint32_t count = schema->via.array.size;
    char **columns = (char **) calloc (count, sizeof (char *));
    assert (columns);
    int rc = 0;
    for (uint32_t index = 0; index < count && rc == 0; index++) {
        const char *name;
        size_t size;
        if (!lh_obj_str (&schema->via.array.ptr [index], "name", &name, &size)
        ||  !(columns [index] = lh_obj_strdup (lh_obj_get (&schema->via.array.ptr [index], "name")))) {
            *error_p = strdup ("its manifest has a column without a name");
            rc = -1;
        }
    }
    int map [LH_ROSTER_FIELDS];
    if (rc == 0)
        rc = lh_roster_dataset_map ((const char *const *) columns, count, self->columns,
                                    map, error_p);
    //  rowid, unless a column has that name
    const char *rowid = NULL;
    static const char *s_rowids [] = { "rowid", "_rowid_", "oid" };
    for (size_t choice = 0; rc == 0 && choice < 3 && !rowid; choice++) {
        rowid = s_rowids [choice];
        for (uint32_t index = 0; index < count; index++)
            if (strcasecmp (columns [index], rowid) == 0)
                rowid = NULL;
    }
    if (rc == 0 && !rowid) {
        *error_p = strdup ("its columns hide rowid, _rowid_ and oid");
        rc = -1;
    }
    //  SELECT rowid, "c1", ... FROM "name" WHERE rowid > ?1 AND rowid <= ?2
    //  ORDER BY rowid, over ranges of rowid from min(rowid) to max(rowid)
    char *sql = NULL, *bounds = NULL;
    int fields [LH_ROSTER_FIELDS];
    uint32_t selected = 0;
    if (rc == 0) {
        sql = s_append (NULL, "SELECT ");
        sql = s_append (sql, rowid);
        for (int field = 0; field < LH_ROSTER_FIELDS; field++)
            if (map [field] >= 0) {
                sql = s_append (sql, ", ");
                sql = s_append_ident (sql, columns [map [field]]);
                fields [selected++] = field;
            }
        sql = s_append (sql, " FROM ");
        sql = s_append_ident (sql, self->dataset);
        sql = s_append (sql, " WHERE ");
        sql = s_append (sql, rowid);
        sql = s_append (sql, " > ?1 AND ");
        sql = s_append (sql, rowid);
        sql = s_append (sql, " <= ?2 ORDER BY ");
        sql = s_append (sql, rowid);
        bounds = s_append (NULL, "SELECT min(");
        bounds = s_append (bounds, rowid);
        bounds = s_append (bounds, "), max(");
        bounds = s_append (bounds, rowid);
        bounds = s_append (bounds, ") FROM ");
        bounds = s_append_ident (bounds, self->dataset);
    }
    for (uint32_t index = 0; index < count; index++)
        free (columns [index]);
    free (columns);
    if (rc)
        return rc;

    uint64_t expected = 0;
    bool counted = lh_obj_uint (manifest, "row_count", &expected);
    uint64_t total = 0;
    lh_roster_builder_t *builder = lh_roster_builder_new (expected + 16);
    int64_t start = zclock_mono ();
    size_t pages = 0;
    rc = s_fetch (self, job, sql, bounds, builder, fields, selected, expected,
                  &total, &pages, error_p);
    free (sql);
    free (bounds);
    if (rc) {
        lh_roster_builder_destroy (&builder);
        return rc;
    }
    size_t workers = lh_roster_builder_size (builder);
    lh_roster_install (self->roster, &builder);
    lh_info (S_NAME, NULL, "roster: %zu workers from dataset '%s' in %" PRId64 " ms (%zu page%s)",
             workers, self->dataset, zclock_mono () - start, pages, pages == 1? "": "s");
    if (counted && total != expected) {
        lh_warn (S_NAME, NULL, "roster: queryd served %" PRIu64 " rows of '%s', the catalog says %"
                 PRIu64 ": loading it again soon", total, self->dataset, expected);
        return 1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Ask catalogd for the dataset; load it if its object key differs from
//  the one loaded. Returns 1 loaded, 0 unchanged, -1 failed (logged), -2
//  loaded but not confirmed (logged).

static int
s_check (lh_roster_dataset_t *self, lh_client_t *client)
{
    //  One job: the check and the load it leads to share a trace
    lh_job_t job;
    lh_job_start (&job, client, NULL, 0);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "name", self->dataset);
    lh_reply_t *reply = NULL;
    lh_job_call_pack (&job, "catalogd", "get", &pack, self->timeout_ms, &reply);
    char *error = NULL;
    char *key = NULL;
    int rc = -1;
    const msgpack_object *manifest = lh_reply_object (reply);
    const msgpack_object *objects = lh_obj_get (manifest, "objects");
    if (lh_reply_status (reply) == LH_ST_NOT_FOUND)
        error = strdup ("it is not in the catalog");
    else
    if (lh_reply_status (reply) != LH_ST_OK) {
        const char *reason = lh_reply_reason (reply);
        error = zsys_sprintf ("catalogd.get answered %u: %s", lh_reply_status (reply),
                              reason? reason: lh_status_text (lh_reply_status (reply)));
    }
    else
    if (!objects || objects->type != MSGPACK_OBJECT_ARRAY || objects->via.array.size == 0
    ||  !(key = lh_obj_strdup (&objects->via.array.ptr [0])))
        error = strdup ("its manifest names no table file");
    else
    if (self->key && streq (key, self->key))
        rc = 0;
    else {
        int loaded = s_load (self, &job, manifest, &error);
        if (loaded == 0) {
            free (self->key);
            self->key = key;
            key = NULL;
            rc = 1;
        }
        else
        if (loaded == 1)
            rc = -2;                    //  installed, not confirmed: retry soon
    }
    if (rc == -1) {
        if (lh_roster_loaded (self->roster))
            lh_error (S_NAME, NULL, "roster reload from dataset '%s' failed, keeping the "
                      "previous one: %s", self->dataset, error? error: "?");
        else
            lh_error (S_NAME, NULL, "roster from dataset '%s' not loaded: %s (roster checks "
                      "answer 503 until it loads)", self->dataset, error? error: "?");
    }
    free (error);
    free (key);
    lh_reply_destroy (&reply);
    return rc;
}


//  --------------------------------------------------------------------------
//  The follower: loads the dataset, then reloads it on catalog.changed and
//  when the poll sees a new version. Says "FIRST" on the pipe after the
//  first attempt. Runs until $TERM.

static void
s_follower (zsock_t *pipe, void *arg)
{
    lh_roster_dataset_t *self = (lh_roster_dataset_t *) arg;
    zsock_signal (pipe, 0);
    lh_client_t *client = NULL;
    int64_t next_check = 0;
    int64_t retry_ms = self->poll_ms < S_RETRY_MS? self->poll_ms: S_RETRY_MS;
    bool first = true;
    zpoller_t *poller = zpoller_new (pipe, NULL);
    while (!zsys_interrupted) {
        if (zpoller_wait (poller, client? 0: 500) == pipe) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            zstr_free (&command);
            if (term)
                break;
        }
        if (!client) {
            client = lh_client_new (&self->link, "validatord-roster");
            if (!client) {
                if (first) {
                    lh_error (S_NAME, NULL, "roster from dataset '%s' not loaded: the bus "
                              "cannot be reached (retrying)", self->dataset);
                    zstr_send (pipe, "FIRST");
                    first = false;
                }
                continue;
            }
            lh_client_subscribe (client, "catalog.changed");
            next_check = 0;
        }
        if (zclock_mono () >= next_check) {
            self->changed = false;
            int rc = s_check (self, client);
            next_check = zclock_mono () + (rc < 0? retry_ms: self->poll_ms);
            if (self->changed)          //  it changed while we loaded
                next_check = zclock_mono () + S_SETTLE_MS;
            if (first) {
                zstr_send (pipe, "FIRST");
                first = false;
            }
        }
        lh_reply_t *event = NULL;
        if (lh_client_recv (client, &event, 200) != 0)
            continue;
        if (lh_reply_type (event) == LH_T_PUB) {
            const char *name;
            size_t size;
            if (lh_obj_str (lh_reply_object (event), "name", &name, &size)
            &&  size == strlen (self->dataset) && strncasecmp (name, self->dataset, size) == 0) {
                lh_debug (S_NAME, NULL, "catalog.changed names '%s': checking the roster",
                          self->dataset);
                //  Give queryd's own follower time to see the change; a
                //  burst of events makes one load. A delete keeps the
                //  roster (the check fails).
                int64_t settle = zclock_mono () + S_SETTLE_MS;
                if (next_check > settle)
                    next_check = settle;
            }
        }
        lh_reply_destroy (&event);
    }
    zpoller_destroy (&poller);
    lh_client_destroy (&client);
}


//  --------------------------------------------------------------------------
//  Start following validatord/roster_dataset into roster

lh_roster_dataset_t *
lh_roster_dataset_new (lh_roster_t *roster, const lh_link_t *link, lh_config_t *config,
                       const char **error_p)
{
    assert (roster && link && config && error_p);
    const char *dataset = lh_config_str (config, "validatord/roster_dataset");
    int64_t page_rows = lh_config_int (config, "validatord/roster_page_rows");
    int64_t poll_ms = lh_config_int (config, "validatord/roster_poll_ms");
    int64_t timeout_ms = lh_config_int (config, "validatord/roster_timeout_ms");
    const char *columns = lh_config_str (config, "validatord/roster_columns");
    *error_p = !dataset || !*dataset? "validatord/roster_dataset is empty":
               NULL;
    if (!*error_p) {
        //  The mapping's syntax now; its columns when the schema is known
        const char *none [] = { "candidate_id" };
        int map [LH_ROSTER_FIELDS];
        char *problem = NULL;
        if (lh_roster_dataset_map (none, 1, columns, map, &problem)
        &&  strstr (problem, "is not field=column")) {
            lh_error (S_NAME, NULL, "%s", problem);
            *error_p = "validatord/roster_columns is not field=column,...";
        }
        free (problem);
    }
    if (*error_p)
        return NULL;
    lh_roster_dataset_t *self = (lh_roster_dataset_t *) zmalloc (sizeof (lh_roster_dataset_t));
    assert (self);
    self->roster = roster;
    self->dataset = strdup (dataset);
    self->columns = strdup (columns? columns: "");
    self->page_rows = (uint64_t) page_rows;
    self->poll_ms = poll_ms;
    self->timeout_ms = (uint32_t) timeout_ms;
    self->endpoint = strdup (link->endpoint? link->endpoint: "");
    self->server_key = link->server_key? strdup (link->server_key): NULL;
    self->link.endpoint = self->endpoint;
    self->link.server_key = self->server_key;
    self->link.cert = link->cert;
    self->follower = zactor_new (s_follower, self);
    assert (self->follower);
    //  Wait for the first attempt, so a ready validatord has its roster
    zpoller_t *poller = zpoller_new (self->follower, NULL);
    if (zpoller_wait (poller, (int) (timeout_ms > 600000? 600000: timeout_ms)) == self->follower) {
        char *first = zstr_recv (self->follower);
        zstr_free (&first);
    }
    else
        lh_warn (S_NAME, NULL, "roster from dataset '%s' still loading: roster checks "
                 "answer 503 until it loads", self->dataset);
    zpoller_destroy (&poller);
    return self;
}


//  --------------------------------------------------------------------------
//  Stop the follower; nulls the caller's pointer

void
lh_roster_dataset_destroy (lh_roster_dataset_t **self_p)
{
    assert (self_p);
    lh_roster_dataset_t *self = *self_p;
    if (self) {
        zactor_destroy (&self->follower);
        free (self->dataset);
        free (self->columns);
        free (self->endpoint);
        free (self->server_key);
        free (self->key);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Dataset name followed

const char *
lh_roster_dataset_name (lh_roster_dataset_t *self)
{
    assert (self);
    return self->dataset;
}


//  --------------------------------------------------------------------------
//  Self test of this class: the column mapping, the page parser (every
//  truncation of a page fails cleanly), and the parse speed of 500k rows

static void
s_test_page (lh_pack_t *pack, int64_t first, int rows, bool truncated)
{
    lh_pack_map (pack, 4);
    lh_pack_str (pack, "columns");
    lh_pack_array (pack, 0);
    lh_pack_str (pack, "rows");
    lh_pack_array (pack, (uint32_t) rows);
    for (int row = 0; row < rows; row++) {
        char name [32];
        snprintf (name, sizeof (name), "Worker Number %" PRId64, first + row);
        lh_pack_array (pack, 7);
        lh_pack_int (pack, first + row);
        lh_pack_int (pack, 100000 + first + row);
        lh_pack_str (pack, name);
        lh_pack_str (pack, "Forklift Operator");
        lh_pack_str (pack, "Toledo");
        lh_pack_str (pack, "OH");
        lh_pack_str (pack, (first + row) % 7? "active": "placed");
    }
    lh_pack_kv_uint (pack, "row_count", (uint64_t) rows);
    lh_pack_kv_bool (pack, "truncated", truncated);
}

void
lh_roster_dataset_test (bool verbose)
{
    printf (" * lh_roster_dataset: ");
    int map [LH_ROSTER_FIELDS];
    char *error = NULL;

    //  Mapping by name: worker_id stands in for candidate_id, case ignored
    const char *generated [] = { "worker_id", "Name", "role", "city", "state", "phone", "status" };
    assert (lh_roster_dataset_map (generated, 7, "", map, &error) == 0);
    assert (map [LH_ROSTER_ID] == 0 && map [LH_ROSTER_NAME] == 1 && map [LH_ROSTER_ROLE] == 2);
    assert (map [LH_ROSTER_CITY] == 3 && map [LH_ROSTER_STATE] == 4 && map [LH_ROSTER_STATUS] == 6);
    assert (map [LH_ROSTER_BLACKLIST] == -1);
    const char *both [] = { "worker_id", "blacklist", "CANDIDATE_ID", "blacklisted_clients" };
    assert (lh_roster_dataset_map (both, 4, NULL, map, &error) == 0);
    assert (map [LH_ROSTER_ID] == 2 && map [LH_ROSTER_BLACKLIST] == 3 && map [LH_ROSTER_NAME] == -1);
    const char *custom [] = { "emp_no", "full name", "town" };
    assert (lh_roster_dataset_map (custom, 3, "", map, &error) == -1);
    assert (strstr (error, "neither a candidate_id nor a worker_id"));
    zstr_free (&error);
    assert (lh_roster_dataset_map (custom, 3, "candidate_id=EMP_NO, name = full name,city=town",
                                   map, &error) == 0);
    assert (map [LH_ROSTER_ID] == 0 && map [LH_ROSTER_NAME] == 1 && map [LH_ROSTER_CITY] == 2);
    assert (lh_roster_dataset_map (custom, 3, "candidate_id=emp_no,zip=town", map, &error) == -1);
    assert (strstr (error, "'zip=town' is not field=column"));
    zstr_free (&error);
    assert (lh_roster_dataset_map (custom, 3, "candidate_id", map, &error) == -1);
    assert (strstr (error, "'candidate_id' is not field=column"));
    zstr_free (&error);
    assert (lh_roster_dataset_map (custom, 3, "candidate_id=nope", map, &error) == -1);
    assert (strstr (error, "no column 'nope' (for candidate_id)"));
    zstr_free (&error);

    //  A page: integer and string ids, NULLs, every blacklist form
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 3);
    lh_pack_kv_uint (pack, "row_count", 5);
    lh_pack_str (pack, "rows");
    lh_pack_array (pack, 5);
    lh_pack_array (pack, 4);
    lh_pack_int (pack, 1); lh_pack_int (pack, 100001); lh_pack_str (pack, "Ann Lee");
    lh_pack_str (pack, " C-1; c-2 | C-3 ,, ");
    lh_pack_array (pack, 4);
    lh_pack_int (pack, 2); lh_pack_str (pack, "W-2"); lh_pack_nil (pack);
    lh_pack_str (pack, "[\"C-7\", \"C 8\"]");
    lh_pack_array (pack, 4);
    lh_pack_int (pack, 5); lh_pack_str (pack, "w-2"); lh_pack_str (pack, "Bo Diaz"); lh_pack_nil (pack);
    lh_pack_array (pack, 4);
    lh_pack_uint (pack, 300); lh_pack_double (pack, 2.5); lh_pack_bool (pack, true); lh_pack_str (pack, "");
    lh_pack_array (pack, 4);
    lh_pack_int (pack, 70000); lh_pack_str (pack, "W-9"); lh_pack_str (pack, "Cy"); lh_pack_str (pack, "[]");
    lh_pack_kv_bool (pack, "truncated", true);
    size_t size;
    const uint8_t *data = (const uint8_t *) lh_pack_data (pack, &size);
    int fields [] = { LH_ROSTER_ID, LH_ROSTER_NAME, LH_ROSTER_BLACKLIST };
    lh_roster_builder_t *builder = lh_roster_builder_new (0);
    int64_t last = 0;
    uint64_t rows = 0;
    bool truncated = false;
    const char *problem = s_page_parse (builder, data, size, fields, 3, &last, &rows, &truncated);
    assert (problem == NULL);
    assert (rows == 5 && last == 70000 && truncated);
    assert (lh_roster_builder_size (builder) == 4);
    lh_roster_t *roster = lh_roster_new_external ();
    assert (!lh_roster_loaded (roster));
    lh_roster_install (roster, &builder);
    assert (builder == NULL);
    assert (lh_roster_loaded (roster));
    lh_roster_read_lock (roster);
    assert (lh_roster_size (roster) == 4);
    const lh_worker_t *worker = lh_roster_lookup (roster, "100001");
    assert (worker && streq (worker->name, "Ann Lee") && streq (worker->status, "active"));
    assert (streq (worker->city, ""));
    assert (lh_worker_blacklisted (worker, "c-1") && lh_worker_blacklisted (worker, "C-2"));
    assert (lh_worker_blacklisted (worker, "C-3") && !lh_worker_blacklisted (worker, "C-4"));
    worker = lh_roster_lookup (roster, "W-2");
    assert (worker && streq (worker->candidate_id, "w-2") && streq (worker->name, "Bo Diaz"));
    assert (streq (worker->blacklisted, ""));
    worker = lh_roster_lookup (roster, "2.5");
    assert (worker && streq (worker->name, "true"));
    worker = lh_roster_lookup (roster, "w-9");
    assert (worker && streq (worker->blacklisted, ""));
    lh_roster_read_unlock (roster);

    //  Every truncation of the page fails cleanly
    for (size_t cut = 0; cut < size; cut++) {
        builder = lh_roster_builder_new (0);
        problem = s_page_parse (builder, data, cut, fields, 3, &last, &rows, &truncated);
        assert (problem);
        lh_roster_builder_destroy (&builder);
    }
    lh_pack_destroy (&pack);

    //  Bad pages: wrong column count, a bad blacklist, a map as a value,
    //  an empty id, no rows at all
    static const char *s_bad [] = { "columns", "blacklist", "map", "id", "norows" };
    for (size_t index = 0; index < 5; index++) {
        pack = lh_pack_new ();
        if (streq (s_bad [index], "norows")) {
            lh_pack_map (pack, 1);
            lh_pack_kv_bool (pack, "truncated", false);
        }
        else {
            lh_pack_map (pack, 1);
            lh_pack_str (pack, "rows");
            lh_pack_array (pack, 1);
            lh_pack_array (pack, streq (s_bad [index], "columns")? 3: 4);
            lh_pack_int (pack, 1);
            lh_pack_str (pack, streq (s_bad [index], "id")? "": "W-1");
            if (streq (s_bad [index], "map"))
                lh_pack_map (pack, 0);
            else
                lh_pack_str (pack, "Name");
            if (!streq (s_bad [index], "columns"))
                lh_pack_str (pack, streq (s_bad [index], "blacklist")? "[\"C-1\", 2]": "C-1");
        }
        data = (const uint8_t *) lh_pack_data (pack, &size);
        builder = lh_roster_builder_new (0);
        problem = s_page_parse (builder, data, size, fields, 3, &last, &rows, &truncated);
        if (verbose)
            printf ("\n   bad page %s: %s", s_bad [index], problem? problem: "(none)");
        assert (problem);
        lh_roster_builder_destroy (&builder);
        lh_pack_destroy (&pack);
    }

    //  Parse speed: 500k rows in 5 pages (the CPU part of a dataset load;
    //  the bus and queryd's scan come on top, see docs/validatord.md)
    bool instrumented = getenv ("ASAN_OPTIONS")
                     || (getenv ("LD_PRELOAD") && strstr (getenv ("LD_PRELOAD"), "vgpreload"));
    int page_rows = instrumented? 4000: 100000;
    lh_pack_t *pages [5];
    for (int page = 0; page < 5; page++) {
        pages [page] = lh_pack_new ();
        s_test_page (pages [page], (int64_t) page * page_rows + 1, page_rows, page < 4);
    }
    int fields6 [] = { LH_ROSTER_ID, LH_ROSTER_NAME, LH_ROSTER_ROLE, LH_ROSTER_CITY,
                       LH_ROSTER_STATE, LH_ROSTER_STATUS };
    struct timespec cpu_start, cpu_end;
    clock_gettime (CLOCK_THREAD_CPUTIME_ID, &cpu_start);
    builder = lh_roster_builder_new ((size_t) page_rows * 5);
    for (int page = 0; page < 5; page++) {
        data = (const uint8_t *) lh_pack_data (pages [page], &size);
        problem = s_page_parse (builder, data, size, fields6, 6, &last, &rows, &truncated);
        assert (!problem && rows == (uint64_t) page_rows && truncated == (page < 4));
    }
    lh_roster_install (roster, &builder);
    clock_gettime (CLOCK_THREAD_CPUTIME_ID, &cpu_end);
    int64_t usecs = (cpu_end.tv_sec - cpu_start.tv_sec) * 1000000
                  + (cpu_end.tv_nsec - cpu_start.tv_nsec) / 1000;
    lh_roster_read_lock (roster);
    assert (lh_roster_size (roster) == (size_t) page_rows * 5);
    worker = lh_roster_lookup (roster, "100007");
    assert (worker && streq (worker->status, "placed") && streq (worker->role, "Forklift Operator"));
    assert (lh_roster_lookup (roster, "100001") && !lh_roster_lookup (roster, "100000"));
    lh_roster_read_unlock (roster);
    for (int page = 0; page < 5; page++)
        lh_pack_destroy (&pages [page]);
    if (verbose || !instrumented)
        fprintf (stderr, "lh_roster_dataset: %d rows parsed into a roster in %.2f s CPU\n",
                 page_rows * 5, usecs / 1e6);
    if (!instrumented)
        assert (usecs <= 1000000);
    lh_roster_destroy (&roster);
    printf ("OK\n");
}
