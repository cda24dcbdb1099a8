/*  =========================================================================
    lh_csv - streaming RFC 4180 parser, whole-file type inference and the
    schema fingerprint (SPEC 5.3)

    The parser is pushed bytes in chunks of any size and calls back once per
    record, so memory stays at one record whatever the file size:

        lh_csv_t *csv = lh_csv_new (16 * 1024 * 1024);
        while ((size = read (fd, buffer, sizeof (buffer))) > 0)
            if (lh_csv_feed (csv, buffer, size, s_record, arg))
                break;                  //  lh_csv_error (csv) says why
        lh_csv_finish (csv, s_record, arg);
        lh_csv_destroy (&csv);

    Records: quoted fields may hold commas, doubled quotes and newlines;
    lines end with LF, CRLF or a lone CR; a UTF-8 BOM at the start is
    skipped; every field must be valid UTF-8. A line with no bytes at all
    is reported as a record of zero fields (the caller decides: skip it, or
    a NULL row when the header has one column). A quote inside an unquoted
    field is kept as a literal character; anything but a comma or a line
    end after a closing quote is an error, as is a quote left open at EOF.

    Types: each value is classified on its own (lh_csv_classify); a column's
    type is the most specific type all its non-empty values share, so it
    does not depend on the order of the rows:
        BOOLEAN    true / false, any case
        BIGINT     -?(0|[1-9][0-9]*) within int64 (no leading zeros: 007
                   stays text, so does +5)
        DOUBLE     BIGINT or decimal/exponent numbers, when every value is
                   exactly representable (an integer past 2^53 mixed with
                   decimals makes the column VARCHAR instead)
        TIMESTAMP  ISO 8601: YYYY-MM-DD, optionally [T ]HH:MM[:SS[.f]] and
                   Z or +-HH[:MM]; stored as the text given
        VARCHAR    anything else, and a column with no value at all
    Empty fields are NULL and do not vote.
    =========================================================================
*/

#ifndef LH_CSV_H_INCLUDED
#define LH_CSV_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LH_CSV_BOOLEAN = 0,
    LH_CSV_BIGINT,
    LH_CSV_DOUBLE,
    LH_CSV_TIMESTAMP,
    LH_CSV_VARCHAR
} lh_csv_type_t;

//  Classification bits of one value (lh_csv_classify)
#define LH_CSV_IS_BOOL      0x01        //  true / false
#define LH_CSV_IS_INT       0x02        //  BIGINT-shaped, in range
#define LH_CSV_IS_NUM       0x04        //  number exactly held by a double
#define LH_CSV_IS_TS        0x08        //  ISO 8601 timestamp / date
#define LH_CSV_IS_ALL       0x0f

typedef struct _lh_csv_t lh_csv_t;
typedef struct _lh_csv_infer_t lh_csv_infer_t;

//  Called once per record. fields [i] is NUL-terminated (sizes [i] bytes,
//  which may hold NULs only if the input did), valid until the callback
//  returns. count 0 = an empty line. line = the line the record starts on
//  (1-based). Return 0 to continue, -1 to stop the parse.
typedef int (lh_csv_record_fn) (void *arg, char **fields, const size_t *sizes,
                                size_t count, uint64_t line);

//  Create a parser; a record longer than record_max bytes is an error
lh_csv_t *
    lh_csv_new (size_t record_max);

//  Destroy a parser; nulls the caller's pointer
void
    lh_csv_destroy (lh_csv_t **self_p);

//  Feed bytes; calls fn for each complete record. Returns 0, -1 if fn
//  stopped the parse, -2 if the input is malformed (lh_csv_error).
int
    lh_csv_feed (lh_csv_t *self, const void *data, size_t size,
                 lh_csv_record_fn *fn, void *arg);

//  End of input: delivers the last record if it had no line end. Returns
//  0, -1 or -2 as lh_csv_feed.
int
    lh_csv_finish (lh_csv_t *self, lh_csv_record_fn *fn, void *arg);

//  Why the parse failed ("line 12: a quoted field is not closed"), or ""
const char *
    lh_csv_error (lh_csv_t *self);

//  Lines seen so far (line breaks + 1)
uint64_t
    lh_csv_lines (lh_csv_t *self);

//  Classify one non-empty value: LH_CSV_IS_* bits
int
    lh_csv_classify (const char *value, size_t size);

//  The double a decimal value stands for, as strtod reads it: value must
//  classify as LH_CSV_IS_NUM (a number, maybe with a fraction or an
//  exponent) and be NUL-terminated at size. Plain decimals of at most 15
//  digits are converted without strtod (the common case, ~4x faster).
double
    lh_csv_decimal (const char *value, size_t size);

//  Create an inference over columns columns
lh_csv_infer_t *
    lh_csv_infer_new (size_t columns);

//  Destroy an inference; nulls the caller's pointer
void
    lh_csv_infer_destroy (lh_csv_infer_t **self_p);

//  Add one data record (count must equal the column count)
void
    lh_csv_infer_add (lh_csv_infer_t *self, char **fields, const size_t *sizes,
                      size_t count);

//  Count and classify one non-empty value of a column; returns its
//  LH_CSV_IS_* bits, or 0 without classifying once the column is known to
//  be VARCHAR (then no value can change its type)
int
    lh_csv_infer_value (lh_csv_infer_t *self, size_t column, const char *value,
                        size_t size);

//  The type of a column after every record was added
lh_csv_type_t
    lh_csv_infer_type (lh_csv_infer_t *self, size_t column);

//  Non-empty values seen in a column
uint64_t
    lh_csv_infer_values (lh_csv_infer_t *self, size_t column);

//  Name of a type ("BIGINT"), and back (-1 if unknown)
const char *
    lh_csv_type_name (lh_csv_type_t type);
int
    lh_csv_type_lookup (const char *name);

//  Schema fingerprint: SHA-256 over name 0x1f type pairs joined by 0x1e,
//  as 64 lowercase hex chars + NUL into hex
void
    lh_csv_fingerprint (const char **names, const lh_csv_type_t *types,
                        size_t count, char *hex);

//  ---------------------------------------------------------------------
//  A table: a header row, then data rows of the same width. Used twice by
//  ingestd: a first pass infers the types, a second one (with row_fn)
//  loads the rows. Enforces: a header row is required; column names are
//  non-empty, at most 256 bytes, distinct ignoring ASCII case (as SQL
//  sees them); a row with another field count is an error naming its
//  line; an empty line is skipped, except in a one-column file where it
//  is a row holding NULL.

typedef struct _lh_csv_table_t lh_csv_table_t;

//  Create a table reader; row_fn (may be NULL) is called for each data
//  row; infer: classify every value (the types are then known at finish)
lh_csv_table_t *
    lh_csv_table_new (size_t record_max, bool infer, lh_csv_record_fn *row_fn,
                      void *arg);

//  Destroy a table reader; nulls the caller's pointer
void
    lh_csv_table_destroy (lh_csv_table_t **self_p);

//  Feed bytes. Returns 0, -1 if row_fn stopped, -2 on bad input
int
    lh_csv_table_feed (lh_csv_table_t *self, const void *data, size_t size);

//  End of input. Returns 0, -1 or -2 (e.g. no header row)
int
    lh_csv_table_finish (lh_csv_table_t *self);

//  Why the input was refused, a sentence naming the line, or ""
const char *
    lh_csv_table_error (lh_csv_table_t *self);

//  Columns (0 until the header was read), a column's name, data rows
size_t
    lh_csv_table_columns (lh_csv_table_t *self);
const char *
    lh_csv_table_name (lh_csv_table_t *self, size_t column);
uint64_t
    lh_csv_table_rows (lh_csv_table_t *self);

//  Inferred type of a column (after finish, when inferring)
lh_csv_type_t
    lh_csv_table_type (lh_csv_table_t *self, size_t column);

//  Fingerprint of the inferred schema (after finish), 65 bytes into hex
void
    lh_csv_table_fingerprint (lh_csv_table_t *self, char *hex);

//  True if size bytes are valid UTF-8 (no overlongs, no surrogates)
bool
    lh_csv_utf8_valid (const void *data, size_t size);

//  Self test of this class (reads the fixtures in tests/csv/)
void
    lh_csv_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
