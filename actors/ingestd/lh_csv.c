/*  =========================================================================
    lh_csv - streaming RFC 4180 parser, type inference, fingerprint; see
    lh_csv.h
    =========================================================================
*/

#include "lh_csv.h"
#include <sodium.h>
#include <math.h>

#define S_NAME_MAX      256             //  longest column name, bytes

typedef enum {
    S_START,                            //  at the start of a field
    S_UNQUOTED,                         //  inside an unquoted field
    S_QUOTED,                           //  inside a quoted field
    S_QUOTE,                            //  a quote inside a quoted field
    S_CR                                //  after a CR that ended a record
} s_state_t;

struct _lh_csv_t {
    size_t record_max;                  //  longest record, bytes
    char *buffer;                       //  current record, fields NUL-ended
    size_t used;                        //  bytes in buffer
    size_t capacity;                    //  buffer size
    size_t *starts;                     //  field start offsets
    char **fields;                      //  field pointers, at delivery
    size_t *sizes;                      //  field sizes, at delivery
    size_t count;                       //  fields ended in this record
    size_t slots;                       //  room in starts/fields/sizes
    s_state_t state;                    //  parser state
    uint64_t line;                      //  current line, 1-based
    uint64_t record_line;               //  line the record started on
    uint64_t quote_line;                //  line the open quote is on
    uint8_t head [3];                   //  first bytes, to find a BOM
    size_t head_used;                   //  bytes in head
    bool head_done;                     //  BOM check done
    char error [256];                   //  why the parse failed
};

struct _lh_csv_infer_t {
    size_t columns;                     //  column count
    uint8_t *masks;                     //  LH_CSV_IS_* all values share
    uint64_t *values;                   //  non-empty values per column
};

struct _lh_csv_table_t {
    lh_csv_t *parser;                   //  the record parser
    lh_csv_infer_t *infer;              //  inference, after the header
    bool infer_on;                      //  classify the values
    lh_csv_record_fn *row_fn;           //  caller's row callback, or NULL
    void *arg;                          //  its argument
    char **names;                       //  column names
    size_t columns;                     //  column count (0: no header yet)
    uint64_t rows;                      //  data rows
    lh_csv_type_t *types;               //  inferred types, after finish
    char error [512];                   //  why the input was refused
};

static const char *s_type_names [] = {
    "BOOLEAN", "BIGINT", "DOUBLE", "TIMESTAMP", "VARCHAR"
};


//  --------------------------------------------------------------------------
//  Create a parser

lh_csv_t *
lh_csv_new (size_t record_max)
{
    lh_csv_t *self = (lh_csv_t *) zmalloc (sizeof (lh_csv_t));
    assert (self);
    self->record_max = record_max? record_max: 1;
    self->capacity = 4096;
    self->buffer = (char *) malloc (self->capacity);
    self->slots = 64;
    self->starts = (size_t *) malloc ((self->slots + 1) * sizeof (size_t));
    self->fields = (char **) malloc (self->slots * sizeof (char *));
    self->sizes = (size_t *) malloc (self->slots * sizeof (size_t));
    assert (self->buffer && self->starts && self->fields && self->sizes);
    self->starts [0] = 0;
    self->line = 1;
    self->record_line = 1;
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy a parser

void
lh_csv_destroy (lh_csv_t **self_p)
{
    assert (self_p);
    lh_csv_t *self = *self_p;
    if (self) {
        free (self->buffer);
        free (self->starts);
        free (self->fields);
        free (self->sizes);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Append bytes to the current field. Returns 0, or -2 past record_max.

static int
s_append (lh_csv_t *self, const void *data, size_t size)
{
    if (self->used + size + 1 > self->record_max) {
        snprintf (self->error, sizeof (self->error),
                  "line %" PRIu64 ": the record is longer than %zu bytes",
                  self->record_line, self->record_max);
        return -2;
    }
    if (self->used + size + 1 > self->capacity) {
        size_t capacity = self->capacity;
        while (self->used + size + 1 > capacity)
            capacity *= 2;
        if (capacity > self->record_max + 1)
            capacity = self->record_max + 1;
        char *buffer = (char *) realloc (self->buffer, capacity);
        assert (buffer);
        self->buffer = buffer;
        self->capacity = capacity;
    }
    memcpy (self->buffer + self->used, data, size);
    self->used += size;
    return 0;
}


//  --------------------------------------------------------------------------
//  End the current field. Returns 0 or -2.

static int
s_end_field (lh_csv_t *self)
{
    if (s_append (self, "", 1))
        return -2;
    if (self->count + 1 >= self->slots) {
        self->slots *= 2;
        self->starts = (size_t *) realloc (self->starts, (self->slots + 1) * sizeof (size_t));
        self->fields = (char **) realloc (self->fields, self->slots * sizeof (char *));
        self->sizes = (size_t *) realloc (self->sizes, self->slots * sizeof (size_t));
        assert (self->starts && self->fields && self->sizes);
    }
    self->count++;
    self->starts [self->count] = self->used;
    return 0;
}


//  --------------------------------------------------------------------------
//  Deliver the current record (fields already ended) and start the next.
//  Returns 0, -1 (stopped) or -2 (bad UTF-8).

static int
s_deliver (lh_csv_t *self, lh_csv_record_fn *fn, void *arg)
{
    for (size_t index = 0; index < self->count; index++) {
        self->fields [index] = self->buffer + self->starts [index];
        self->sizes [index] = self->starts [index + 1] - self->starts [index] - 1;
    }
    if (!lh_csv_utf8_valid (self->buffer, self->used)) {
        size_t bad = 0;
        while (bad < self->count
            && lh_csv_utf8_valid (self->fields [bad], self->sizes [bad]))
            bad++;
        snprintf (self->error, sizeof (self->error),
                  "line %" PRIu64 ": field %zu is not valid UTF-8", self->record_line, bad + 1);
        return -2;
    }
    int rc = fn? fn (arg, self->fields, self->sizes, self->count, self->record_line): 0;
    self->used = 0;
    self->count = 0;
    self->record_line = self->line;
    return rc? -1: 0;
}


//  --------------------------------------------------------------------------
//  A line break ended a record (c is CR or LF). Returns 0, -1 or -2.

static int
s_end_record (lh_csv_t *self, uint8_t c, bool blank, lh_csv_record_fn *fn, void *arg)
{
    if (!blank && s_end_field (self))
        return -2;
    self->line++;
    self->state = c == '\r'? S_CR: S_START;
    return s_deliver (self, fn, arg);
}


//  Bytes that end an unquoted run: comma, CR, LF
static const bool s_special [256] = { [','] = true, ['\r'] = true, ['\n'] = true };

//  --------------------------------------------------------------------------
//  The state machine over bytes after the BOM check

static int
s_parse (lh_csv_t *self, const uint8_t *data, size_t size, lh_csv_record_fn *fn, void *arg)
{
    size_t index = 0;
    int rc;
    while (index < size) {
        uint8_t c = data [index];
        switch (self->state) {
            case S_CR:
                self->state = S_START;
                if (c == '\n')
                    index++;
                break;
            case S_START:
                if (c == '"') {
                    self->state = S_QUOTED;
                    self->quote_line = self->line;
                    index++;
                }
                else
                if (c == ',') {
                    if (s_end_field (self))
                        return -2;
                    index++;
                }
                else
                if (c == '\n' || c == '\r') {
                    index++;
                    if ((rc = s_end_record (self, c, self->count == 0, fn, arg)))
                        return rc;
                }
                else
                    self->state = S_UNQUOTED;
                break;
            case S_UNQUOTED: {
                size_t run = index;
                while (run < size && !s_special [data [run]])
                    run++;
                if (run > index && s_append (self, data + index, run - index))
                    return -2;
                index = run;
                if (index < size) {
                    c = data [index++];
                    if (c == ',') {
                        if (s_end_field (self))
                            return -2;
                        self->state = S_START;
                    }
                    else
                    if ((rc = s_end_record (self, c, false, fn, arg)))
                        return rc;
                }
                break;
            }
            case S_QUOTED: {
                const uint8_t *quote = (const uint8_t *) memchr (data + index, '"', size - index);
                size_t run = quote? (size_t) (quote - data): size;
                for (const uint8_t *at = data + index;
                     (at = (const uint8_t *) memchr (at, '\n', (size_t) (data + run - at)));
                     at++)
                    self->line++;
                if (run > index && s_append (self, data + index, run - index))
                    return -2;
                index = run;
                if (index < size) {
                    self->state = S_QUOTE;
                    index++;
                }
                break;
            }
            case S_QUOTE:
                index++;
                if (c == '"') {
                    if (s_append (self, "\"", 1))
                        return -2;
                    self->state = S_QUOTED;
                }
                else
                if (c == ',') {
                    if (s_end_field (self))
                        return -2;
                    self->state = S_START;
                }
                else
                if (c == '\n' || c == '\r') {
                    if ((rc = s_end_record (self, c, false, fn, arg)))
                        return rc;
                }
                else {
                    snprintf (self->error, sizeof (self->error),
                              "line %" PRIu64 ": unexpected character after the closing "
                              "quote of field %zu", self->line, self->count + 1);
                    return -2;
                }
                break;
        }
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Feed bytes: strip a BOM at the very start, then parse

int
lh_csv_feed (lh_csv_t *self, const void *data, size_t size, lh_csv_record_fn *fn, void *arg)
{
    assert (self);
    if (*self->error)
        return -2;
    const uint8_t *bytes = (const uint8_t *) data;
    if (!self->head_done) {
        while (size > 0 && self->head_used < 3) {
            self->head [self->head_used++] = *bytes++;
            size--;
        }
        if (self->head_used < 3)
            return 0;
        self->head_done = true;
        if (memcmp (self->head, "\xEF\xBB\xBF", 3)) {
            int rc = s_parse (self, self->head, 3, fn, arg);
            if (rc)
                return rc;
        }
    }
    return s_parse (self, bytes, size, fn, arg);
}


//  --------------------------------------------------------------------------
//  End of input

int
lh_csv_finish (lh_csv_t *self, lh_csv_record_fn *fn, void *arg)
{
    assert (self);
    if (*self->error)
        return -2;
    if (!self->head_done) {
        self->head_done = true;
        int rc = s_parse (self, self->head, self->head_used, fn, arg);
        if (rc)
            return rc;
    }
    if (self->state == S_QUOTED) {
        snprintf (self->error, sizeof (self->error),
                  "line %" PRIu64 ": a quoted field is not closed before the end of the file",
                  self->quote_line);
        return -2;
    }
    if (self->state == S_UNQUOTED || self->state == S_QUOTE
    || (self->state == S_START && self->count > 0)) {
        if (s_end_field (self))
            return -2;
        self->state = S_START;
        return s_deliver (self, fn, arg);
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Why the parse failed, or ""

const char *
lh_csv_error (lh_csv_t *self)
{
    assert (self);
    return self->error;
}


//  --------------------------------------------------------------------------
//  Lines seen so far

uint64_t
lh_csv_lines (lh_csv_t *self)
{
    assert (self);
    return self->line;
}


//  --------------------------------------------------------------------------
//  Valid UTF-8? (RFC 3629: no overlongs, no surrogates, at most U+10FFFF)

bool
lh_csv_utf8_valid (const void *data, size_t size)
{
    const uint8_t *byte = (const uint8_t *) data;
    const uint8_t *end = byte + size;
    while (byte < end) {
        //  ASCII fast path, 8 bytes at a time
        while (end - byte >= 8) {
            uint64_t word;
            memcpy (&word, byte, 8);
            if (word & 0x8080808080808080ULL)
                break;
            byte += 8;
        }
        if (byte >= end)
            break;
        uint8_t c = *byte;
        if (c < 0x80) {
            byte++;
            continue;
        }
        size_t need;
        uint32_t min, point;
        if (c >= 0xC2 && c <= 0xDF) { need = 1; min = 0x80; point = c & 0x1F; }
        else
        if (c >= 0xE0 && c <= 0xEF) { need = 2; min = 0x800; point = c & 0x0F; }
        else
        if (c >= 0xF0 && c <= 0xF4) { need = 3; min = 0x10000; point = c & 0x07; }
        else
            return false;
        if ((size_t) (end - byte) < need + 1)
            return false;
        for (size_t index = 1; index <= need; index++) {
            if ((byte [index] & 0xC0) != 0x80)
                return false;
            point = (point << 6) | (byte [index] & 0x3F);
        }
        if (point < min || point > 0x10FFFF || (point >= 0xD800 && point <= 0xDFFF))
            return false;
        byte += need + 1;
    }
    return true;
}


//  --------------------------------------------------------------------------
//  Read exactly count digits at text; returns the value or -1

static int
s_digits (const char *text, size_t count)
{
    int value = 0;
    for (size_t index = 0; index < count; index++) {
        if (text [index] < '0' || text [index] > '9')
            return -1;
        value = value * 10 + (text [index] - '0');
    }
    return value;
}


//  --------------------------------------------------------------------------
//  Is this an ISO 8601 date or date-time?

static bool
s_is_timestamp (const char *text, size_t size)
{
    static const int days [] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (size < 10 || text [4] != '-' || text [7] != '-')
        return false;
    int year = s_digits (text, 4), month = s_digits (text + 5, 2), day = s_digits (text + 8, 2);
    if (year < 0 || month < 1 || month > 12 || day < 1)
        return false;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > days [month - 1] + (month == 2 && leap))
        return false;
    if (size == 10)
        return true;
    if ((text [10] != 'T' && text [10] != ' ') || size < 16 || text [13] != ':')
        return false;
    int hour = s_digits (text + 11, 2), minute = s_digits (text + 14, 2);
    if (hour < 0 || hour > 23 || minute < 0 || minute > 59)
        return false;
    size_t at = 16;
    if (at < size && text [at] == ':') {
        if (size < at + 3)
            return false;
        int second = s_digits (text + at + 1, 2);
        if (second < 0 || second > 60)
            return false;
        at += 3;
        if (at < size && text [at] == '.') {
            size_t start = ++at;
            while (at < size && text [at] >= '0' && text [at] <= '9')
                at++;
            if (at == start)
                return false;
        }
    }
    if (at == size)
        return true;
    if (text [at] == 'Z')
        return at + 1 == size;
    if (text [at] != '+' && text [at] != '-')
        return false;
    at++;
    size_t left = size - at;
    int zone_hour, zone_minute = 0;
    if (left == 2)
        zone_hour = s_digits (text + at, 2);
    else
    if (left == 4) {
        zone_hour = s_digits (text + at, 2);
        zone_minute = s_digits (text + at + 2, 2);
    }
    else
    if (left == 5 && text [at + 2] == ':') {
        zone_hour = s_digits (text + at, 2);
        zone_minute = s_digits (text + at + 3, 2);
    }
    else
        return false;
    return zone_hour >= 0 && zone_hour <= 23 && zone_minute >= 0 && zone_minute <= 59;
}


//  --------------------------------------------------------------------------
//  Classify one non-empty value

int
lh_csv_classify (const char *text, size_t size)
{
    if (size == 0)
        return LH_CSV_IS_ALL;
    if ((size == 4 && strncasecmp (text, "true", 4) == 0)
    ||  (size == 5 && strncasecmp (text, "false", 5) == 0))
        return LH_CSV_IS_BOOL;
    //  Numbers: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    size_t at = 0;
    bool negative = text [0] == '-';
    if (negative)
        at++;
    size_t first = at;
    while (at < size && text [at] >= '0' && text [at] <= '9')
        at++;
    size_t digits = at - first;
    bool number = digits > 0 && !(digits > 1 && text [first] == '0');
    bool decimal = false;
    if (number && at < size && text [at] == '.') {
        size_t start = ++at;
        while (at < size && text [at] >= '0' && text [at] <= '9')
            at++;
        number = at > start;
        decimal = true;
    }
    if (number && at < size && (text [at] == 'e' || text [at] == 'E')) {
        at++;
        if (at < size && (text [at] == '+' || text [at] == '-'))
            at++;
        size_t start = at;
        while (at < size && text [at] >= '0' && text [at] <= '9')
            at++;
        number = at > start;
        decimal = true;
    }
    if (number && at == size) {
        if (!decimal) {
            //  -0 is not an integer we could give back as written
            if (negative && digits == 1 && text [first] == '0')
                return 0;
            errno = 0;
            long long value = strtoll (text, NULL, 10);
            if (errno == ERANGE)
                return 0;
            int bits = LH_CSV_IS_INT;
            if (value >= -(1LL << 53) && value <= (1LL << 53))
                bits |= LH_CSV_IS_NUM;
            return bits;
        }
        //  Out of a double's range: not a number we can keep
        errno = 0;
        double value = lh_csv_decimal (text, size);
        if (errno == ERANGE || !isfinite (value))
            return 0;
        return LH_CSV_IS_NUM;
    }
    if (s_is_timestamp (text, size))
        return LH_CSV_IS_TS;
    return 0;
}


//  --------------------------------------------------------------------------
//  A decimal's double. [-]DIGITS[.DIGITS] with at most 15 digits: the
//  digits as an integer (under 10^15, so exact in a double) divided by a
//  power of ten (exact up to 10^22): one correctly rounded operation on
//  exact operands, so the result is the correctly rounded value strtod
//  gives (Clinger's fast path). Anything else goes to strtod.

double
lh_csv_decimal (const char *text, size_t size)
{
    static const double s_pow10 [16] = {
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15
    };
    size_t at = text [0] == '-'? 1: 0;
    uint64_t mantissa = 0;
    int digits = 0, scale = -1;
    for (; at < size; at++) {
        char c = text [at];
        if (c >= '0' && c <= '9') {
            mantissa = mantissa * 10 + (uint64_t) (c - '0');
            digits++;
        }
        else
        if (c == '.' && scale < 0)
            scale = digits;
        else
            break;
    }
    if (at < size || digits == 0 || digits > 15)
        return strtod (text, NULL);
    double value = (double) mantissa;
    if (scale >= 0)
        value /= s_pow10 [digits - scale];
    return text [0] == '-'? -value: value;
}


//  --------------------------------------------------------------------------
//  Create an inference

lh_csv_infer_t *
lh_csv_infer_new (size_t columns)
{
    lh_csv_infer_t *self = (lh_csv_infer_t *) zmalloc (sizeof (lh_csv_infer_t));
    assert (self);
    self->columns = columns;
    self->masks = (uint8_t *) malloc (columns + 1);
    self->values = (uint64_t *) calloc (columns + 1, sizeof (uint64_t));
    assert (self->masks && self->values);
    memset (self->masks, LH_CSV_IS_ALL, columns + 1);
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy an inference

void
lh_csv_infer_destroy (lh_csv_infer_t **self_p)
{
    assert (self_p);
    lh_csv_infer_t *self = *self_p;
    if (self) {
        free (self->masks);
        free (self->values);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Add one record's values. A column already known to be text skips the
//  classification, which keeps the first pass cheap for text columns.

void
lh_csv_infer_add (lh_csv_infer_t *self, char **fields, const size_t *sizes, size_t count)
{
    assert (self);
    assert (count == self->columns);
    for (size_t column = 0; column < count; column++) {
        if (sizes [column] == 0)
            continue;
        self->values [column]++;
        if (self->masks [column])
            self->masks [column] &= lh_csv_classify (fields [column], sizes [column]);
    }
}


//  --------------------------------------------------------------------------
//  Count and classify one non-empty value

int
lh_csv_infer_value (lh_csv_infer_t *self, size_t column, const char *value, size_t size)
{
    assert (self);
    assert (column < self->columns);
    self->values [column]++;
    if (!self->masks [column])
        return 0;
    int bits = lh_csv_classify (value, size);
    self->masks [column] &= bits;
    return bits;
}


//  --------------------------------------------------------------------------
//  The most specific type every value of the column has

lh_csv_type_t
lh_csv_infer_type (lh_csv_infer_t *self, size_t column)
{
    assert (self);
    assert (column < self->columns);
    uint8_t mask = self->masks [column];
    if (self->values [column] == 0)
        return LH_CSV_VARCHAR;
    if (mask & LH_CSV_IS_BOOL)
        return LH_CSV_BOOLEAN;
    if (mask & LH_CSV_IS_INT)
        return LH_CSV_BIGINT;
    if (mask & LH_CSV_IS_NUM)
        return LH_CSV_DOUBLE;
    if (mask & LH_CSV_IS_TS)
        return LH_CSV_TIMESTAMP;
    return LH_CSV_VARCHAR;
}


//  --------------------------------------------------------------------------
//  Non-empty values of a column

uint64_t
lh_csv_infer_values (lh_csv_infer_t *self, size_t column)
{
    assert (self);
    assert (column < self->columns);
    return self->values [column];
}


//  --------------------------------------------------------------------------
//  Name of a type

const char *
lh_csv_type_name (lh_csv_type_t type)
{
    return (unsigned) type <= LH_CSV_VARCHAR? s_type_names [type]: "VARCHAR";
}

//  --------------------------------------------------------------------------
//  Type of a name, or -1

int
lh_csv_type_lookup (const char *name)
{
    for (int type = 0; type <= LH_CSV_VARCHAR; type++)
        if (streq (name, s_type_names [type]))
            return type;
    return -1;
}


//  --------------------------------------------------------------------------
//  Schema fingerprint

void
lh_csv_fingerprint (const char **names, const lh_csv_type_t *types, size_t count, char *hex)
{
    crypto_hash_sha256_state state;
    crypto_hash_sha256_init (&state);
    for (size_t index = 0; index < count; index++) {
        if (index > 0)
            crypto_hash_sha256_update (&state, (const uint8_t *) "\x1e", 1);
        crypto_hash_sha256_update (&state, (const uint8_t *) names [index], strlen (names [index]));
        crypto_hash_sha256_update (&state, (const uint8_t *) "\x1f", 1);
        const char *type = lh_csv_type_name (types [index]);
        crypto_hash_sha256_update (&state, (const uint8_t *) type, strlen (type));
    }
    uint8_t digest [crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final (&state, digest);
    for (size_t index = 0; index < sizeof (digest); index++)
        sprintf (hex + 2 * index, "%02x", digest [index]);
}


//  --------------------------------------------------------------------------
//  Table: take the header row

static int
s_table_header (lh_csv_table_t *self, char **fields, const size_t *sizes, size_t count,
                uint64_t line)
{
    if (count == 0) {
        snprintf (self->error, sizeof (self->error),
                  "line %" PRIu64 ": the header row is empty", line);
        return -1;
    }
    for (size_t column = 0; column < count; column++) {
        if (sizes [column] == 0 || sizes [column] > S_NAME_MAX
        ||  memchr (fields [column], 0, sizes [column])) {
            snprintf (self->error, sizeof (self->error),
                      "line %" PRIu64 ": column %zu's name is %s", line, column + 1,
                      sizes [column] == 0? "empty": sizes [column] > S_NAME_MAX?
                      "longer than 256 bytes": "holding a NUL byte");
            return -1;
        }
        for (size_t other = 0; other < column; other++)
            if (sizes [other] == sizes [column]
            &&  strcasecmp (fields [other], fields [column]) == 0) {
                snprintf (self->error, sizeof (self->error),
                          "line %" PRIu64 ": duplicate column name '%.100s' "
                          "(columns %zu and %zu; names are compared ignoring case)",
                          line, fields [column], other + 1, column + 1);
                return -1;
            }
    }
    self->names = (char **) malloc (count * sizeof (char *));
    assert (self->names);
    for (size_t column = 0; column < count; column++) {
        self->names [column] = strdup (fields [column]);
        assert (self->names [column]);
    }
    self->columns = count;
    self->infer = lh_csv_infer_new (count);
    return 0;
}


//  --------------------------------------------------------------------------
//  Table: one record from the parser

static int
s_table_record (void *arg, char **fields, const size_t *sizes, size_t count, uint64_t line)
{
    lh_csv_table_t *self = (lh_csv_table_t *) arg;
    if (!self->columns)
        return s_table_header (self, fields, sizes, count, line);
    //  An empty line: skipped, or one NULL in a one-column table
    static char s_empty [1] = "";
    static char *s_null_field [1] = { s_empty };
    static const size_t s_null_size [1] = { 0 };
    if (count == 0) {
        if (self->columns > 1)
            return 0;
        fields = s_null_field;
        sizes = s_null_size;
        count = 1;
    }
    if (count != self->columns) {
        snprintf (self->error, sizeof (self->error),
                  "line %" PRIu64 ": the row has %zu field%s, the header has %zu",
                  line, count, count == 1? "": "s", self->columns);
        return -1;
    }
    self->rows++;
    if (self->infer_on)
        lh_csv_infer_add (self->infer, fields, sizes, count);
    if (self->row_fn)
        return self->row_fn (self->arg, fields, sizes, count, line);
    return 0;
}


//  --------------------------------------------------------------------------
//  Create a table reader

lh_csv_table_t *
lh_csv_table_new (size_t record_max, bool infer, lh_csv_record_fn *row_fn, void *arg)
{
    lh_csv_table_t *self = (lh_csv_table_t *) zmalloc (sizeof (lh_csv_table_t));
    assert (self);
    self->parser = lh_csv_new (record_max);
    self->infer_on = infer;
    self->row_fn = row_fn;
    self->arg = arg;
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy a table reader

void
lh_csv_table_destroy (lh_csv_table_t **self_p)
{
    assert (self_p);
    lh_csv_table_t *self = *self_p;
    if (self) {
        lh_csv_destroy (&self->parser);
        lh_csv_infer_destroy (&self->infer);
        for (size_t column = 0; column < self->columns; column++)
            free (self->names [column]);
        free (self->names);
        free (self->types);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Feed bytes. A -1 from our own checks (header, ragged row) is bad input:
//  -2; a -1 from the caller's row_fn stays -1.

int
lh_csv_table_feed (lh_csv_table_t *self, const void *data, size_t size)
{
    assert (self);
    if (*self->error)
        return -2;
    int rc = lh_csv_feed (self->parser, data, size, s_table_record, self);
    if (rc == -2)
        snprintf (self->error, sizeof (self->error), "%s", lh_csv_error (self->parser));
    return rc == -1 && *self->error? -2: rc;
}


//  --------------------------------------------------------------------------
//  End of input: settle the types

int
lh_csv_table_finish (lh_csv_table_t *self)
{
    assert (self);
    if (*self->error)
        return -2;
    int rc = lh_csv_finish (self->parser, s_table_record, self);
    if (rc == -2)
        snprintf (self->error, sizeof (self->error), "%s", lh_csv_error (self->parser));
    if (rc)
        return rc == -1 && *self->error? -2: rc;
    if (!self->columns) {
        snprintf (self->error, sizeof (self->error),
                  "the file is empty: a header row is required");
        return -2;
    }
    if (!self->infer_on)
        return 0;
    self->types = (lh_csv_type_t *) malloc (self->columns * sizeof (lh_csv_type_t));
    assert (self->types);
    for (size_t column = 0; column < self->columns; column++)
        self->types [column] = lh_csv_infer_type (self->infer, column);
    return 0;
}


//  --------------------------------------------------------------------------
//  Why the input was refused, or ""

const char *
lh_csv_table_error (lh_csv_table_t *self)
{
    assert (self);
    return self->error;
}

//  --------------------------------------------------------------------------
//  Column count (0 until the header was read)

size_t
lh_csv_table_columns (lh_csv_table_t *self)
{
    assert (self);
    return self->columns;
}

//  --------------------------------------------------------------------------
//  A column's name

const char *
lh_csv_table_name (lh_csv_table_t *self, size_t column)
{
    assert (self);
    assert (column < self->columns);
    return self->names [column];
}

//  --------------------------------------------------------------------------
//  Data rows so far

uint64_t
lh_csv_table_rows (lh_csv_table_t *self)
{
    assert (self);
    return self->rows;
}

//  --------------------------------------------------------------------------
//  A column's inferred type (after finish)

lh_csv_type_t
lh_csv_table_type (lh_csv_table_t *self, size_t column)
{
    assert (self);
    assert (self->types && column < self->columns);
    return self->types [column];
}

//  --------------------------------------------------------------------------
//  Fingerprint of the inferred schema

void
lh_csv_table_fingerprint (lh_csv_table_t *self, char *hex)
{
    assert (self);
    assert (self->types);
    lh_csv_fingerprint ((const char **) self->names, self->types, self->columns, hex);
}


//  --------------------------------------------------------------------------
//  Self test

#include <jansson.h>

typedef struct {
    json_t *rows;                       //  rows collected, raw or null
} s_test_rows_t;

//  --------------------------------------------------------------------------
//  Self test: collect a row as JSON, raw text or null

static int
s_test_row (void *arg, char **fields, const size_t *sizes, size_t count, uint64_t line)
{
    s_test_rows_t *self = (s_test_rows_t *) arg;
    json_t *row = json_array ();
    for (size_t column = 0; column < count; column++)
        json_array_append_new (row, sizes [column]? json_stringn (fields [column], sizes [column])
                                                  : json_null ());
    json_array_append_new (self->rows, row);
    return 0;
}


//  --------------------------------------------------------------------------
//  Self test: run a table over bytes fed in chunks of chunk; returns the rc
//  and fills rows, columns (JSON) and the fingerprint

static int
s_test_table (const char *data, size_t size, size_t chunk, json_t **rows_p,
              json_t **columns_p, char *fingerprint, char *error, size_t error_size)
{
    int rc = 0;
    //  Pass 1 infers, pass 2 collects rows, as ingestd does
    lh_csv_table_t *infer = lh_csv_table_new (4 * 1024 * 1024, true, NULL, NULL);
    for (size_t at = 0; at < size && rc == 0; at += chunk)
        rc = lh_csv_table_feed (infer, data + at, size - at < chunk? size - at: chunk);
    if (rc == 0)
        rc = lh_csv_table_finish (infer);
    snprintf (error, error_size, "%s", lh_csv_table_error (infer));
    *columns_p = json_array ();
    *rows_p = json_array ();
    if (rc == 0) {
        for (size_t column = 0; column < lh_csv_table_columns (infer); column++)
            json_array_append_new (*columns_p, json_pack ("[ss]", lh_csv_table_name (infer, column),
                                   lh_csv_type_name (lh_csv_table_type (infer, column))));
        lh_csv_table_fingerprint (infer, fingerprint);
        s_test_rows_t collect = { *rows_p };
        lh_csv_table_t *load = lh_csv_table_new (4 * 1024 * 1024, false, s_test_row, &collect);
        for (size_t at = 0; at < size && rc == 0; at += chunk)
            rc = lh_csv_table_feed (load, data + at, size - at < chunk? size - at: chunk);
        if (rc == 0)
            rc = lh_csv_table_finish (load);
        assert (rc == 0);
        assert (lh_csv_table_rows (load) == lh_csv_table_rows (infer));
        lh_csv_table_destroy (&load);
    }
    lh_csv_table_destroy (&infer);
    return rc;
}

//  --------------------------------------------------------------------------
//  Self test

void
lh_csv_test (bool verbose)
{
    printf (" * lh_csv: ");

    //  Decimals: the same double as strtod, bit for bit, fast path or not
    const char *decimals [] = {
        "0", "-0", "0.0", "-0.0", "38.12", "0.940", "-12.5", "123456789012345",
        "1234567890123456", "0.000000000000001", "99999999999999.9", "9007199254740993",
        "1e5", "-2.5E-3", "1.7976931348623157e308", "0.1", "0.3", "2.675", "1.005"
    };
    for (size_t index = 0; index < sizeof (decimals) / sizeof (decimals [0]); index++) {
        double fast = lh_csv_decimal (decimals [index], strlen (decimals [index]));
        double slow = strtod (decimals [index], NULL);
        assert (memcmp (&fast, &slow, sizeof (double)) == 0);
    }
    for (int round = 0; round < 100000; round++) {
        char text [40];
        uint32_t digits = 1 + randombytes_uniform (17);
        size_t at = 0;
        if (randombytes_uniform (4) == 0)
            text [at++] = '-';
        uint32_t dot = randombytes_uniform (digits + 1);
        for (uint32_t digit = 0; digit < digits; digit++) {
            if (digit == dot && digit > 0)
                text [at++] = '.';
            text [at++] = (char) ('0' + randombytes_uniform (10));
        }
        text [at] = 0;
        double fast = lh_csv_decimal (text, at);
        double slow = strtod (text, NULL);
        if (memcmp (&fast, &slow, sizeof (double)) != 0) {
            printf ("lh_csv_decimal (\"%s\") = %.17g, strtod %.17g\n", text, fast, slow);
            assert (false);
        }
    }

    //  Classification, value by value
    struct {
        const char *value;
        int bits;
    } values [] = {
        { "true", LH_CSV_IS_BOOL }, { "FALSE", LH_CSV_IS_BOOL }, { "tru", 0 },
        { "0", LH_CSV_IS_INT | LH_CSV_IS_NUM }, { "-12", LH_CSV_IS_INT | LH_CSV_IS_NUM },
        { "007", 0 }, { "-0", 0 }, { "+5", 0 }, { " 5", 0 }, { "5 ", 0 },
        { "9223372036854775807", LH_CSV_IS_INT }, { "9223372036854775808", 0 },
        { "-9223372036854775808", LH_CSV_IS_INT },
        { "9007199254740992", LH_CSV_IS_INT | LH_CSV_IS_NUM },
        { "9007199254740993", LH_CSV_IS_INT },
        { "1.5", LH_CSV_IS_NUM }, { "-0.25", LH_CSV_IS_NUM }, { "1e3", LH_CSV_IS_NUM },
        { "1.5E-7", LH_CSV_IS_NUM }, { ".5", 0 }, { "1.", 0 }, { "00.5", 0 },
        { "1e999", 0 }, { "nan", 0 }, { "inf", 0 }, { "1,5", 0 },
        { "2024-01-31", LH_CSV_IS_TS }, { "2024-02-30", 0 }, { "2023-02-29", 0 },
        { "2024-02-29", LH_CSV_IS_TS }, { "2024-13-01", 0 },
        { "2024-01-31T23:59:59Z", LH_CSV_IS_TS }, { "2024-01-31 23:59", LH_CSV_IS_TS },
        { "2024-01-31T23:59:59.123456+05:30", LH_CSV_IS_TS },
        { "2024-01-31T24:00:00", 0 }, { "2024-01-31T10:00:00+0530", LH_CSV_IS_TS },
        { "2024-01-31T10:00:00+05", LH_CSV_IS_TS }, { "2024-01-31T10:00:00 ", 0 },
        { "2024-01-31X10:00", 0 }, { "2024-1-31", 0 }, { "hello", 0 },
    };
    for (size_t index = 0; index < sizeof (values) / sizeof (values [0]); index++) {
        int bits = lh_csv_classify (values [index].value, strlen (values [index].value));
        if (bits != values [index].bits)
            printf ("\nclassify '%s': %d, expected %d\n", values [index].value, bits,
                    values [index].bits);
        assert (bits == values [index].bits);
    }
    assert (lh_csv_utf8_valid ("caf\xc3\xa9", 5));
    assert (!lh_csv_utf8_valid ("caf\xe9", 4));
    assert (!lh_csv_utf8_valid ("\xc0\x80", 2));           //  overlong NUL
    assert (!lh_csv_utf8_valid ("\xed\xa0\x80", 3));       //  surrogate
    assert (!lh_csv_utf8_valid ("\xf4\x90\x80\x80", 4));   //  past U+10FFFF
    assert (lh_csv_utf8_valid ("\xf0\x9f\x98\x80 ok", 7));

    //  Fingerprint: SHA-256 of "id" 1f "BIGINT" 1e "name" 1f "VARCHAR"
    const char *names [] = { "id", "name" };
    lh_csv_type_t types [] = { LH_CSV_BIGINT, LH_CSV_VARCHAR };
    char hex [65], expected [65];
    lh_csv_fingerprint (names, types, 2, hex);
    uint8_t digest [32];
    crypto_hash_sha256 (digest, (const uint8_t *) "id\x1f" "BIGINT\x1ename\x1fVARCHAR", 22);
    for (size_t index = 0; index < 32; index++)
        sprintf (expected + 2 * index, "%02x", digest [index]);
    assert (streq (hex, expected));

    //  The corpus in tests/csv/
    const char *root = getenv ("LH_ROOT");
    char *dir = zsys_sprintf ("%s/tests/csv", root? root: ".");
    zdir_t *corpus = zdir_new (dir, NULL);
    size_t cases = 0;
    if (corpus) {
        zfile_t **files = zdir_flatten (corpus);
        zhash_t *fingerprints = zhash_new ();
        zhash_autofree (fingerprints);
        zlist_t *pending = zlist_new ();
        for (size_t index = 0; files [index]; index++) {
            const char *path = zfile_filename (files [index], NULL);
            if (strlen (path) < 7 || !streq (path + strlen (path) - 7, ".expect"))
                continue;
            json_error_t json_error;
            json_t *expect = json_load_file (path, 0, &json_error);
            assert (expect);
            char *csv_path = strdup (path);
            strcpy (csv_path + strlen (csv_path) - 7, ".csv");
            zchunk_t *chunk = zchunk_slurp (csv_path, 0);
            assert (chunk);
            const char *base = strrchr (csv_path, '/') + 1;
            char name [128];
            snprintf (name, sizeof (name), "%.*s", (int) (strlen (base) - 4), base);
            if (verbose)
                printf ("\n   %s", name);
            size_t chunks [] = { 1, 7, zchunk_size (chunk) + 1 };
            for (size_t pass = 0; pass < 3; pass++) {
                json_t *rows, *columns;
                char fingerprint [65] = "", error [512];
                int rc = s_test_table ((const char *) zchunk_data (chunk), zchunk_size (chunk),
                                       chunks [pass], &rows, &columns, fingerprint,
                                       error, sizeof (error));
                json_t *want_error = json_object_get (expect, "error");
                if (want_error) {
                    if (rc != -2 || !strstr (error, json_string_value (want_error)))
                        printf ("\n%s: rc %d error '%s', expected '%s'\n", name, rc, error,
                                json_string_value (want_error));
                    assert (rc == -2 && strstr (error, json_string_value (want_error)));
                }
                else {
                    if (rc != 0 || !json_equal (columns, json_object_get (expect, "columns"))
                    ||  !json_equal (rows, json_object_get (expect, "rows"))) {
                        char *got = json_dumps (columns, 0), *got_rows = json_dumps (rows, 0);
                        printf ("\n%s (chunk %zu): rc %d '%s' columns %s rows %.300s\n", name,
                                chunks [pass], rc, error, got, got_rows);
                        free (got);
                        free (got_rows);
                    }
                    assert (rc == 0);
                    assert (json_equal (columns, json_object_get (expect, "columns")));
                    assert (json_equal (rows, json_object_get (expect, "rows")));
                    zhash_update (fingerprints, name, fingerprint);
                    json_t *same = json_object_get (expect, "same_fingerprint_as");
                    if (same && pass == 0) {
                        zlist_append (pending, strdup (name));
                        zlist_append (pending, strdup (json_string_value (same)));
                    }
                }
                json_decref (rows);
                json_decref (columns);
            }
            cases++;
            zchunk_destroy (&chunk);
            free (csv_path);
            json_decref (expect);
        }
        //  Shuffled rows give the same fingerprint
        char *first;
        while ((first = (char *) zlist_pop (pending))) {
            char *second = (char *) zlist_pop (pending);
            const char *one = (const char *) zhash_lookup (fingerprints, first);
            const char *two = (const char *) zhash_lookup (fingerprints, second);
            assert (one && two && streq (one, two));
            free (first);
            free (second);
        }
        zlist_destroy (&pending);
        zhash_destroy (&fingerprints);
        zdir_flatten_free (&files);
        zdir_destroy (&corpus);
    }
    free (dir);
    assert (cases >= 20);

    //  A 1 MB single field, quoted, with commas, quotes and newlines
    size_t big = 1024 * 1024;
    char *data = (char *) malloc (big + 64);
    size_t size = (size_t) sprintf (data, "id,blob\n1,\"");
    for (size_t index = 0; index < big; index++)
        data [size++] = "ab,\n\"\"cd" [index % 8];
    size += (size_t) sprintf (data + size, "\"\n2,x\n");
    json_t *rows, *columns;
    char fingerprint [65], error [512];
    int rc = s_test_table (data, size, 65536, &rows, &columns, fingerprint, error, sizeof (error));
    assert (rc == 0);
    assert (json_array_size (rows) == 2);
    const char *blob = json_string_value (json_array_get (json_array_get (rows, 0), 1));
    assert (blob && strlen (blob) == big - big / 8);
    json_decref (rows);
    json_decref (columns);
    //  ... and the same field past record_max is refused, naming the line
    lh_csv_table_t *table = lh_csv_table_new (512 * 1024, true, NULL, NULL);
    rc = lh_csv_table_feed (table, data, size);
    assert (rc == -2);
    assert (strstr (lh_csv_table_error (table), "line 2: the record is longer than"));
    lh_csv_table_destroy (&table);
    free (data);

    printf ("OK (%zu corpus cases)\n", cases);
}
