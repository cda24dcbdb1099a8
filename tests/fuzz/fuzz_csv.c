/*  =========================================================================
    fuzz_csv - libFuzzer target for the streaming CSV parser and the table
    reader with type inference (actors/ingestd/lh_csv.c)

    Every input is parsed whole and again in chunks of sizes derived from
    the input (tests/fuzz/fuzz_chunks.h), with a small record limit and a
    large one: the records delivered (fields, sizes, lines), the result and
    the error sentence must not depend on where the chunks were cut. Each
    field must be NUL-ended at its size and classify into LH_CSV_IS_* bits
    only. The table reader (header, widths, names, inference, fingerprint)
    runs the same two ways and must agree with itself.

    Built by `make fuzz` with clang -fsanitize=fuzzer and run under
    -rss_limit_mb / -malloc_limit_mb; built by `make` with replay_main.c as
    a corpus replayer that `make check` runs over tests/fuzz/corpus/csv.
    =========================================================================
*/

#include "lh_csv.h"
#include "fuzz_chunks.h"

//  What one parse delivered
typedef struct {
    uint64_t hash;                      //  FNV-1a over every record
    size_t records;                     //  records delivered
    size_t stop_at;                     //  stop at this record (SIZE_MAX: never)
} s_seen_t;

static void
s_mix (s_seen_t *seen, const void *data, size_t size)
{
    const uint8_t *bytes = (const uint8_t *) data;
    for (size_t index = 0; index < size; index++)
        seen->hash = (seen->hash ^ bytes [index]) * 1099511628211ULL;
}

static int
s_record (void *arg, char **fields, const size_t *sizes, size_t count, uint64_t line)
{
    s_seen_t *seen = (s_seen_t *) arg;
    s_mix (seen, &count, sizeof (count));
    s_mix (seen, &line, sizeof (line));
    for (size_t index = 0; index < count; index++) {
        assert (fields [index] [sizes [index]] == 0);
        assert (lh_csv_utf8_valid (fields [index], sizes [index]));
        if (sizes [index] > 0)
            assert ((lh_csv_classify (fields [index], sizes [index]) & ~LH_CSV_IS_ALL) == 0);
        s_mix (seen, &sizes [index], sizeof (sizes [index]));
        s_mix (seen, fields [index], sizes [index]);
    }
    return seen->records++ == seen->stop_at? -1: 0;
}

//  Parse with the record parser, whole (chunked false) or in chunks;
//  returns the result, *seen and the error copied into error
static int
s_parse (const uint8_t *data, size_t size, size_t record_max, bool chunked,
         s_seen_t *seen, char *error, size_t error_size)
{
    lh_csv_t *csv = lh_csv_new (record_max);
    fuzz_chunks_t chunks;
    fuzz_chunks_init (&chunks, data, size);
    int rc = 0;
    for (size_t at = 0; at < size && rc == 0; ) {
        size_t take = chunked? fuzz_chunks_next (&chunks, size - at): size;
        rc = lh_csv_feed (csv, data + at, take, s_record, seen);
        at += take;
    }
    if (rc == 0)
        rc = lh_csv_finish (csv, s_record, seen);
    assert (rc == 0 || rc == -1 || rc == -2);
    assert ((rc == -2) == (*lh_csv_error (csv) != 0));
    snprintf (error, error_size, "%s", lh_csv_error (csv));
    lh_csv_destroy (&csv);
    return rc;
}

//  The table reader, whole or chunked; returns the result and a hash of
//  what it found (columns, names, rows, types, fingerprint)
static int
s_table (const uint8_t *data, size_t size, size_t record_max, bool chunked,
         uint64_t *hash, char *error, size_t error_size)
{
    s_seen_t seen = { 14695981039346656037ULL, 0, SIZE_MAX };
    lh_csv_table_t *table = lh_csv_table_new (record_max, true, s_record, &seen);
    fuzz_chunks_t chunks;
    fuzz_chunks_init (&chunks, data, size);
    int rc = 0;
    for (size_t at = 0; at < size && rc == 0; ) {
        size_t take = chunked? fuzz_chunks_next (&chunks, size - at): size;
        rc = lh_csv_table_feed (table, data + at, take);
        at += take;
    }
    if (rc == 0)
        rc = lh_csv_table_finish (table);
    assert (rc == 0 || rc == -2);
    snprintf (error, error_size, "%s", lh_csv_table_error (table));
    if (rc == 0) {
        size_t columns = lh_csv_table_columns (table);
        assert (columns > 0);
        s_mix (&seen, &columns, sizeof (columns));
        uint64_t rows = lh_csv_table_rows (table);
        s_mix (&seen, &rows, sizeof (rows));
        for (size_t column = 0; column < columns; column++) {
            const char *name = lh_csv_table_name (table, column);
            assert (name && *name && strlen (name) <= 256);
            s_mix (&seen, name, strlen (name) + 1);
            lh_csv_type_t type = lh_csv_table_type (table, column);
            assert (type <= LH_CSV_VARCHAR);
            s_mix (&seen, &type, sizeof (type));
        }
        char fingerprint [65];
        lh_csv_table_fingerprint (table, fingerprint);
        assert (strlen (fingerprint) == 64);
        s_mix (&seen, fingerprint, 64);
    }
    *hash = seen.hash;
    lh_csv_table_destroy (&table);
    return rc;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    fuzz_chunks_t chunks;
    fuzz_chunks_init (&chunks, data, size);
    //  A small record limit from the input, and a large one
    size_t limits [2] = { 1 + (size_t) (chunks.state % 64), 1024 * 1024 };
    //  Now and then the callback stops the parse part-way
    size_t stop_at = (chunks.state >> 8) % 4 == 0? (size_t) ((chunks.state >> 16) % 8): SIZE_MAX;
    for (size_t pass = 0; pass < 2; pass++) {
        s_seen_t whole = { 14695981039346656037ULL, 0, stop_at };
        s_seen_t cut = whole;
        char whole_error [512], cut_error [512];
        int whole_rc = s_parse (data, size, limits [pass], false, &whole, whole_error, sizeof (whole_error));
        int cut_rc = s_parse (data, size, limits [pass], true, &cut, cut_error, sizeof (cut_error));
        assert (whole_rc == cut_rc);
        assert (whole.records == cut.records && whole.hash == cut.hash);
        assert (streq (whole_error, cut_error));

        uint64_t whole_hash, cut_hash;
        whole_rc = s_table (data, size, limits [pass], false, &whole_hash, whole_error, sizeof (whole_error));
        cut_rc = s_table (data, size, limits [pass], true, &cut_hash, cut_error, sizeof (cut_error));
        assert (whole_rc == cut_rc && whole_hash == cut_hash);
        assert (streq (whole_error, cut_error));
    }
    return 0;
}
