/*  =========================================================================
    lh_s3_parse - reading what an S3 store answers; see lh_s3_parse.h
    =========================================================================
*/

#include "lh_s3_parse.h"
#include "lh_sigv4.h"

#define S_HEADER_VALUE_MAX  128         //  longest header value read, with NUL


//  --------------------------------------------------------------------------
//  Find the next <name ...>inner</name> in text [*from, size); see the
//  header

bool
lh_s3_xml_find (const char *text, size_t size, size_t *from, const char *name,
                const char **inner, size_t *inner_size)
{
    size_t name_size = strlen (name);
    size_t at = *from;
    while (at < size) {
        const char *open = (const char *) memchr (text + at, '<', size - at);
        if (!open)
            return false;
        size_t start = (size_t) (open - text);
        size_t after = start + 1 + name_size;
        if (after < size && memcmp (open + 1, name, name_size) == 0
        &&  (text [after] == '>' || text [after] == '/' || isspace ((unsigned char) text [after]))) {
            const char *close = (const char *) memchr (text + after, '>', size - after);
            if (!close)
                return false;
            size_t body = (size_t) (close - text) + 1;
            if (close [-1] == '/') {
                //  <name/>: empty
                *inner = text + body;
                *inner_size = 0;
                *from = body;
                return true;
            }
            //  Find </name>
            for (size_t scan = body; scan + name_size + 3 <= size; scan++) {
                if (text [scan] == '<' && text [scan + 1] == '/'
                &&  memcmp (text + scan + 2, name, name_size) == 0
                &&  text [scan + 2 + name_size] == '>') {
                    *inner = text + body;
                    *inner_size = scan - body;
                    *from = scan + name_size + 3;
                    return true;
                }
            }
            return false;
        }
        at = start + 1;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  Append a code point as UTF-8; returns bytes written or 0 if it is not a
//  character XML may carry (or there is no room)

static size_t
s_utf8_put (uint32_t code, char *out, size_t room)
{
    if (code == 0 || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))
        return 0;
    if (code < 0x80 && room >= 1) {
        out [0] = (char) code;
        return 1;
    }
    if (code < 0x800 && room >= 2) {
        out [0] = (char) (0xC0 | (code >> 6));
        out [1] = (char) (0x80 | (code & 0x3F));
        return 2;
    }
    if (code < 0x10000 && room >= 3) {
        out [0] = (char) (0xE0 | (code >> 12));
        out [1] = (char) (0x80 | ((code >> 6) & 0x3F));
        out [2] = (char) (0x80 | (code & 0x3F));
        return 3;
    }
    if (code >= 0x10000 && room >= 4) {
        out [0] = (char) (0xF0 | (code >> 18));
        out [1] = (char) (0x80 | ((code >> 12) & 0x3F));
        out [2] = (char) (0x80 | ((code >> 6) & 0x3F));
        out [3] = (char) (0x80 | (code & 0x3F));
        return 4;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Decode XML character data into out; the decoded size, or -1

ssize_t
lh_s3_xml_text (const char *text, size_t size, char *out, size_t out_max)
{
    static const struct { const char *name; char c; } entities [] = {
        { "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "quot;", '"' }, { "apos;", '\'' }
    };
    if (out_max == 0)
        return -1;
    size_t written = 0;
    for (size_t index = 0; index < size; ) {
        if (written + 1 >= out_max)
            return -1;
        if (text [index] == 0)
            return -1;                  //  XML has no NUL, raw or escaped
        if (text [index] != '&') {
            out [written++] = text [index++];
            continue;
        }
        const char *semi = (const char *) memchr (text + index, ';', size - index);
        if (!semi || semi - (text + index) > 12)
            return -1;
        size_t length = (size_t) (semi - (text + index)) + 1;   //  "&...;"
        bool found = false;
        for (size_t entity = 0; entity < 5 && !found; entity++) {
            size_t name_size = strlen (entities [entity].name);
            if (length == name_size + 1
            &&  memcmp (text + index + 1, entities [entity].name, name_size) == 0) {
                out [written++] = entities [entity].c;
                found = true;
            }
        }
        if (!found) {
            if (length < 4 || text [index + 1] != '#')
                return -1;
            bool hex = text [index + 2] == 'x' || text [index + 2] == 'X';
            uint32_t code = 0;
            size_t digits = 0;
            for (size_t scan = index + (hex? 3: 2); scan < index + length - 1; scan++) {
                int c = (unsigned char) text [scan];
                int value = isdigit (c)? c - '0':
                            hex && isxdigit (c)? (tolower (c) - 'a' + 10): -1;
                if (value < 0 || code > 0x10FFFF)
                    return -1;
                code = code * (hex? 16: 10) + (uint32_t) value;
                digits++;
            }
            size_t put = digits? s_utf8_put (code, out + written, out_max - written - 1): 0;
            if (put == 0)
                return -1;
            written += put;
        }
        index += length;
    }
    out [written] = 0;
    return (ssize_t) written;
}


//  --------------------------------------------------------------------------
//  True if an S3 body holds an <Error> element

bool
lh_s3_xml_error (const char *text, size_t size)
{
    const char *inner;
    size_t inner_size, from = 0;
    return text && lh_s3_xml_find (text, size, &from, "Error", &inner, &inner_size);
}


//  --------------------------------------------------------------------------
//  Decode %XX and '+' in place; -1 if malformed

int
lh_s3_url_decode (char *text)
{
    char *write = text;
    for (const char *read = text; *read; read++) {
        if (*read == '+')
            *write++ = ' ';
        else
        if (*read == '%') {
            if (!isxdigit ((unsigned char) read [1]) || !isxdigit ((unsigned char) read [2]))
                return -1;
            char hex [3] = { read [1], read [2], 0 };
            *write++ = (char) strtol (hex, NULL, 16);
            read += 2;
        }
        else
            *write++ = *read;
    }
    *write = 0;
    return 0;
}


//  --------------------------------------------------------------------------
//  An ISO 8601 UTC time as ms since the epoch; 0 if it does not parse

int64_t
lh_s3_iso8601_ms (const char *text)
{
    struct tm tm;
    memset (&tm, 0, sizeof (tm));
    int millis = 0, used = 0;
    if (sscanf (text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &used) != 6)
        return 0;
    if (text [used] == '.') {
        int scale = 100;
        for (const char *scan = text + used + 1; isdigit ((unsigned char) *scan); scan++) {
            millis += (*scan - '0') * scale;
            scale /= 10;
        }
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t) timegm (&tm) * 1000 + millis;
}


//  --------------------------------------------------------------------------
//  HTTP dates: a cursor over the text, and its readers. Each reader
//  checks the bytes left and moves the cursor only on success.

typedef struct {
    const char *text;                   //  the date
    size_t size;                        //  its bytes
    size_t at;                          //  next byte to read
} s_cursor_t;

//  Exactly count digits into *value
static bool
s_read_digits (s_cursor_t *cursor, size_t count, int *value)
{
    if (cursor->size - cursor->at < count)
        return false;
    int number = 0;
    for (size_t index = 0; index < count; index++) {
        char c = cursor->text [cursor->at + index];
        if (c < '0' || c > '9')
            return false;
        number = number * 10 + (c - '0');
    }
    *value = number;
    cursor->at += count;
    return true;
}

//  Exactly the bytes of literal
static bool
s_read_literal (s_cursor_t *cursor, const char *literal)
{
    size_t size = strlen (literal);
    if (cursor->size - cursor->at < size
    ||  memcmp (cursor->text + cursor->at, literal, size) != 0)
        return false;
    cursor->at += size;
    return true;
}

//  One of names (count of them); its index into *value
static bool
s_read_name (s_cursor_t *cursor, const char *const *names, size_t count, int *value)
{
    for (size_t index = 0; index < count; index++)
        if (s_read_literal (cursor, names [index])) {
            *value = (int) index;
            return true;
        }
    return false;
}

//  HH:MM:SS
static bool
s_read_clock (s_cursor_t *cursor, int *hour, int *minute, int *second)
{
    return s_read_digits (cursor, 2, hour) && s_read_literal (cursor, ":")
        && s_read_digits (cursor, 2, minute) && s_read_literal (cursor, ":")
        && s_read_digits (cursor, 2, second);
}

//  Days from 1970-01-01 to a date of the proleptic Gregorian calendar
static int64_t
s_days_from_civil (int64_t year, int month, int day)
{
    year -= month <= 2;
    int64_t era = (year >= 0? year: year - 399) / 400;
    int64_t year_of_era = year - era * 400;
    int64_t day_of_year = (153 * (month > 2? month - 3: month + 9) + 2) / 5 + day - 1;
    int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

static const char *s_months [] = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};
static const char *s_days [] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
static const char *s_long_days [] = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"
};


//  --------------------------------------------------------------------------
//  An HTTP date as seconds since the epoch; -1 if it is not one. The day
//  name is checked for form, not against the date (as libcurl does); an
//  RFC 850 year of 00..70 is 20YY, 71..99 is 19YY (libcurl's reading).

int64_t
lh_s3_http_date (const char *text, size_t size)
{
    s_cursor_t cursor = { text, size, 0 };
    int weekday = 0, day = 0, month = 0, year = 0, hour = 0, minute = 0, second = 0;
    bool parsed = false;
    if (s_read_name (&cursor, s_long_days, 7, &weekday)) {
        //  Sunday, 06-Nov-94 08:49:37 GMT
        parsed = s_read_literal (&cursor, ", ") && s_read_digits (&cursor, 2, &day)
              && s_read_literal (&cursor, "-") && s_read_name (&cursor, s_months, 12, &month)
              && s_read_literal (&cursor, "-") && s_read_digits (&cursor, 2, &year)
              && s_read_literal (&cursor, " ") && s_read_clock (&cursor, &hour, &minute, &second)
              && s_read_literal (&cursor, " GMT");
        if (parsed)
            year += year > 70? 1900: 2000;
    }
    else
    if (s_read_name (&cursor, s_days, 7, &weekday)) {
        if (s_read_literal (&cursor, ", "))
            //  Sun, 06 Nov 1994 08:49:37 GMT
            parsed = s_read_digits (&cursor, 2, &day) && s_read_literal (&cursor, " ")
                  && s_read_name (&cursor, s_months, 12, &month) && s_read_literal (&cursor, " ")
                  && s_read_digits (&cursor, 4, &year) && s_read_literal (&cursor, " ")
                  && s_read_clock (&cursor, &hour, &minute, &second)
                  && s_read_literal (&cursor, " GMT");
        else {
            //  Sun Nov  6 08:49:37 1994
            parsed = s_read_literal (&cursor, " ") && s_read_name (&cursor, s_months, 12, &month)
                  && s_read_literal (&cursor, " ")
                  && (s_read_digits (&cursor, 2, &day)
                      || (s_read_literal (&cursor, " ") && s_read_digits (&cursor, 1, &day)))
                  && s_read_literal (&cursor, " ") && s_read_clock (&cursor, &hour, &minute, &second)
                  && s_read_literal (&cursor, " ") && s_read_digits (&cursor, 4, &year);
        }
    }
    if (!parsed || cursor.at != size)
        return -1;
    static const int month_days [] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (year < 1970 || day < 1 || day > month_days [month]
    ||  (month == 1 && day == 29 && !leap)
    ||  hour > 23 || minute > 59 || second > 60)
        return -1;
    return s_days_from_civil (year, month + 1, day) * 86400
         + hour * 3600 + minute * 60 + second;
}


//  --------------------------------------------------------------------------
//  Copy text without one pair of surrounding double quotes

void
lh_s3_unquote (const char *text, size_t size, char *out, size_t out_max)
{
    assert (out_max > 0);
    if (size >= 2 && text [0] == '"' && text [size - 1] == '"') {
        text++;
        size -= 2;
    }
    if (size >= out_max)
        size = out_max - 1;
    memcpy (out, text, size);
    out [size] = 0;
}


//  --------------------------------------------------------------------------
//  Code and Message of an S3 error body (each "" if absent)

void
lh_s3_error_parse (const char *text, size_t size, char *code, size_t code_max,
                   char *message, size_t message_max)
{
    *code = 0;
    *message = 0;
    size_t from = 0;
    const char *inner, *field;
    size_t inner_size, field_size;
    if (!text || !lh_s3_xml_find (text, size, &from, "Error", &inner, &inner_size))
        return;
    size_t at = 0;
    if (lh_s3_xml_find (inner, inner_size, &at, "Code", &field, &field_size)
    &&  lh_s3_xml_text (field, field_size, code, code_max) < 0)
        *code = 0;
    at = 0;
    if (lh_s3_xml_find (inner, inner_size, &at, "Message", &field, &field_size)
    &&  lh_s3_xml_text (field, field_size, message, message_max) < 0)
        snprintf (message, message_max, "(message too long)");
}


//  --------------------------------------------------------------------------
//  Parse a ListObjectsV2 page; see the header

int
lh_s3_list_parse (const char *text, size_t size, lh_s3_list_entry_fn *fn, void *arg,
                  bool *truncated, char **next_p)
{
    *truncated = false;
    *next_p = NULL;
    size_t from = 0;
    const char *result, *inner;
    size_t result_size, inner_size;
    if (!lh_s3_xml_find (text, size, &from, "ListBucketResult", &result, &result_size))
        return -1;
    char field [LH_S3_FIELD_MAX * 3 + 1];
    //  Top-level fields come before or after the Contents: each is looked
    //  for from the start of the result
    bool url_encoded = false;
    from = 0;
    if (lh_s3_xml_find (result, result_size, &from, "EncodingType", &inner, &inner_size)
    &&  lh_s3_xml_text (inner, inner_size, field, sizeof (field)) >= 0)
        url_encoded = streq (field, "url");
    from = 0;
    if (lh_s3_xml_find (result, result_size, &from, "IsTruncated", &inner, &inner_size)
    &&  lh_s3_xml_text (inner, inner_size, field, sizeof (field)) >= 0)
        *truncated = streq (field, "true");
    from = 0;
    if (lh_s3_xml_find (result, result_size, &from, "NextContinuationToken", &inner, &inner_size)) {
        if (lh_s3_xml_text (inner, inner_size, field, sizeof (field)) < 0)
            return -1;
        *next_p = strdup (field);
        assert (*next_p);
    }
    from = 0;
    while (lh_s3_xml_find (result, result_size, &from, "Contents", &inner, &inner_size)) {
        char key [LH_S3_FIELD_MAX * 3 + 1];
        char etag [LH_S3_ETAG_MAX] = "";
        uint64_t object_size = 0;
        int64_t mtime_ms = 0;
        const char *value;
        size_t value_size, at = 0;
        if (!lh_s3_xml_find (inner, inner_size, &at, "Key", &value, &value_size)
        ||  lh_s3_xml_text (value, value_size, key, sizeof (key)) < 0
        ||  (url_encoded && lh_s3_url_decode (key)))
            goto malformed;
        at = 0;
        if (lh_s3_xml_find (inner, inner_size, &at, "Size", &value, &value_size)) {
            if (lh_s3_xml_text (value, value_size, field, sizeof (field)) < 0
            ||  !isdigit ((unsigned char) *field))
                goto malformed;
            object_size = strtoull (field, NULL, 10);
        }
        at = 0;
        if (lh_s3_xml_find (inner, inner_size, &at, "LastModified", &value, &value_size)
        &&  lh_s3_xml_text (value, value_size, field, sizeof (field)) >= 0)
            mtime_ms = lh_s3_iso8601_ms (field);
        at = 0;
        if (lh_s3_xml_find (inner, inner_size, &at, "ETag", &value, &value_size)
        &&  lh_s3_xml_text (value, value_size, field, sizeof (field)) >= 0)
            lh_s3_unquote (field, strlen (field), etag, sizeof (etag));
        if (fn (key, object_size, etag, mtime_ms, arg))
            break;
    }
    return 0;
malformed:
    zstr_free (next_p);
    return -1;
}


//  --------------------------------------------------------------------------
//  The UploadId of an InitiateMultipartUpload answer; 0 or -1

int
lh_s3_upload_id_parse (const char *text, size_t size, char *upload_id,
                       size_t upload_id_max)
{
    const char *inner;
    size_t inner_size, from = 0;
    if (!text
    ||  !lh_s3_xml_find (text, size, &from, "UploadId", &inner, &inner_size)
    ||  lh_s3_xml_text (inner, inner_size, upload_id, upload_id_max) <= 0)
        return -1;
    return 0;
}


//  --------------------------------------------------------------------------
//  The ETag of a CompleteMultipartUpload answer, quotes removed; "" if none

void
lh_s3_complete_etag (const char *text, size_t size, char *etag, size_t etag_max)
{
    *etag = 0;
    const char *inner;
    size_t inner_size, from = 0;
    char field [96];
    if (text
    &&  lh_s3_xml_find (text, size, &from, "ETag", &inner, &inner_size)
    &&  lh_s3_xml_text (inner, inner_size, field, sizeof (field)) > 0)
        lh_s3_unquote (field, strlen (field), etag, etag_max);
}


//  --------------------------------------------------------------------------
//  Forget what an earlier response's headers said

void
lh_s3_head_reset (lh_s3_head_t *head)
{
    head->etag [0] = 0;
    head->sha256 [0] = 0;
    head->length = -1;
    head->total = -1;
    head->mtime_ms = 0;
}


//  --------------------------------------------------------------------------
//  Read one response header line into head

void
lh_s3_head_parse (lh_s3_head_t *head, const char *line, size_t size)
{
    const char *colon = (const char *) memchr (line, ':', size);
    if (!colon)
        return;
    size_t name_size = (size_t) (colon - line);
    const char *value = colon + 1;
    size_t value_size = size - name_size - 1;
    while (value_size > 0 && isspace ((unsigned char) *value)) {
        value++;
        value_size--;
    }
    while (value_size > 0 && isspace ((unsigned char) value [value_size - 1]))
        value_size--;
    char text [S_HEADER_VALUE_MAX];
    if (value_size >= sizeof (text))
        return;
    memcpy (text, value, value_size);
    text [value_size] = 0;
    if (name_size == 4 && strncasecmp (line, "ETag", 4) == 0) {
        size_t unquoted = value_size >= 2 && text [0] == '"' && text [value_size - 1] == '"'?
                          value_size - 2: value_size;
        if (unquoted < sizeof (head->etag))
            lh_s3_unquote (text, value_size, head->etag, sizeof (head->etag));
    }
    else
    if (name_size == 17 && strncasecmp (line, "x-amz-meta-sha256", 17) == 0) {
        if (value_size < sizeof (head->sha256))
            memcpy (head->sha256, text, value_size + 1);
    }
    else
    if (name_size == 14 && strncasecmp (line, "Content-Length", 14) == 0)
        head->length = strtoll (text, NULL, 10);
    else
    if (name_size == 13 && strncasecmp (line, "Content-Range", 13) == 0) {
        const char *slash = strrchr (text, '/');
        if (slash && isdigit ((unsigned char) slash [1]))
            head->total = strtoll (slash + 1, NULL, 10);
    }
    else
    if (name_size == 13 && strncasecmp (line, "Last-Modified", 13) == 0) {
        int64_t when = lh_s3_http_date (text, value_size);
        if (when > 0)
            head->mtime_ms = when * 1000;
    }
}


//  --------------------------------------------------------------------------
//  The store status and error kind for an S3 error

const char *
lh_s3_error_map (long http_status, const char *code, uint32_t *status)
{
    if (streq (code, "NoSuchKey") || (http_status == 404 && !*code)) {
        *status = 404;
        return "no_such_key";
    }
    if (streq (code, "NoSuchUpload")) {
        *status = 404;
        return "no_such_upload";
    }
    if (streq (code, "AccessDenied") || streq (code, "InvalidAccessKeyId")
    ||  streq (code, "SignatureDoesNotMatch") || streq (code, "ExpiredToken")
    ||  streq (code, "InvalidToken") || streq (code, "TokenRefreshRequired")
    ||  (http_status == 403 && !*code)) {
        *status = 403;
        return "s3_denied";
    }
    if (streq (code, "PreconditionFailed") || http_status == 412) {
        *status = 412;
        return "precondition_failed";
    }
    if (streq (code, "ConditionalRequestConflict")) {
        *status = 409;
        return "conflict";
    }
    if (streq (code, "EntityTooLarge")) {
        *status = 413;
        return "too_large";
    }
    if (streq (code, "SlowDown") || streq (code, "ServiceUnavailable") || http_status == 503) {
        *status = 503;
        return "busy";
    }
    *status = 502;
    return "s3_error";
}


//  --------------------------------------------------------------------------
//  Replace control characters and every secret in text, in place

void
lh_s3_scrub (char *text, const char *const *secrets, size_t secret_count)
{
    for (char *scan = text; *scan; scan++)
        if ((unsigned char) *scan < 0x20 || *scan == 0x7f)
            *scan = ' ';
    for (size_t index = 0; index < secret_count; index++) {
        const char *secret = secrets [index];
        if (!secret || strlen (secret) < 4)
            continue;
        char *found;
        while ((found = strstr (text, secret)))
            memset (found, '*', strlen (secret));
    }
}


//  --------------------------------------------------------------------------
//  Parse storaged/s3_endpoint and s3_style; see the header

int
lh_s3_endpoint_parse (const char *endpoint, const char *style, const char *bucket,
                      char **base_p, char **host_p, char **prefix_p,
                      char *reason, size_t reason_size)
{
    *base_p = *host_p = *prefix_p = NULL;
    const char *rest;
    const char *scheme;
    if (strncmp (endpoint, "http://", 7) == 0) {
        scheme = "http";
        rest = endpoint + 7;
    }
    else
    if (strncmp (endpoint, "https://", 8) == 0) {
        scheme = "https";
        rest = endpoint + 8;
    }
    else {
        snprintf (reason, reason_size, "storaged/s3_endpoint '%s': expected http://HOST[:PORT] "
                  "or https://HOST[:PORT]", endpoint);
        return -1;
    }
    size_t size = strcspn (rest, "/?#");
    if (size == 0 || (rest [size] && !(rest [size] == '/' && rest [size + 1] == 0))
    ||  memchr (rest, '@', size)) {
        snprintf (reason, reason_size, "storaged/s3_endpoint '%s': expected http://HOST[:PORT] "
                  "or https://HOST[:PORT] with no path", endpoint);
        return -1;
    }
    char *hostport = strndup (rest, size);
    assert (hostport);
    for (char *scan = hostport; *scan; scan++)
        if (!isalnum ((unsigned char) *scan) && !strchr (".-:[]_", *scan)) {
            free (hostport);
            snprintf (reason, reason_size, "storaged/s3_endpoint '%s': bad character in the host",
                      endpoint);
            return -1;
        }
    //  A default port is left out of Host, as libcurl and botocore do
    size_t length = strlen (hostport);
    if ((streq (scheme, "http") && length > 3 && streq (hostport + length - 3, ":80"))
    ||  (streq (scheme, "https") && length > 4 && streq (hostport + length - 4, ":443")))
        *strrchr (hostport, ':') = 0;
    if (streq (style, "path")) {
        *host_p = hostport;
        *base_p = zsys_sprintf ("%s://%s", scheme, hostport);
        char *encoded = lh_sigv4_encode (bucket, strlen (bucket), false);
        *prefix_p = zsys_sprintf ("/%s", encoded);
        free (encoded);
        return 0;
    }
    if (streq (style, "virtual")) {
        bool is_ip = hostport [0] == '[' || strspn (hostport, "0123456789.:") == strlen (hostport);
        if (is_ip) {
            free (hostport);
            snprintf (reason, reason_size, "storaged/s3_style virtual needs a DNS name in "
                      "storaged/s3_endpoint, not an IP address");
            return -1;
        }
        *host_p = zsys_sprintf ("%s.%s", bucket, hostport);
        *base_p = zsys_sprintf ("%s://%s", scheme, *host_p);
        *prefix_p = strdup ("");
        assert (*prefix_p);
        free (hostport);
        return 0;
    }
    free (hostport);
    snprintf (reason, reason_size, "storaged/s3_style '%s': expected path or virtual", style);
    return -1;
}


//  --------------------------------------------------------------------------
//  Self test

typedef struct {
    char keys [4][64];                  //  keys seen
    uint64_t sizes [4];                 //  their sizes
    char etags [4][LH_S3_ETAG_MAX];     //  their ETags
    int64_t mtimes [4];                 //  their mtimes
    int count;                          //  entries seen
} s_test_list_t;

static int
s_test_entry (const char *key, uint64_t size, const char *etag, int64_t mtime_ms, void *arg)
{
    s_test_list_t *list = (s_test_list_t *) arg;
    assert (list->count < 4);
    snprintf (list->keys [list->count], 64, "%s", key);
    list->sizes [list->count] = size;
    snprintf (list->etags [list->count], LH_S3_ETAG_MAX, "%s", etag);
    list->mtimes [list->count] = mtime_ms;
    list->count++;
    return 0;
}

void
lh_s3_parse_test (bool verbose)
{
    printf (" * lh_s3_parse: ");
    //  The scanner: nested elements, self-closing, attributes, limits
    const char *xml = "<?xml version=\"1.0\"?><A x=\"1\"><B>one</B><C/><B>two &amp; &lt;3&gt;</B></A>";
    size_t from = 0, size = strlen (xml);
    const char *inner;
    size_t inner_size;
    assert (lh_s3_xml_find (xml, size, &from, "A", &inner, &inner_size));
    size_t at = 0;
    char text [64];
    assert (lh_s3_xml_find (inner, inner_size, &at, "B", &inner, &inner_size));
    assert (lh_s3_xml_text (inner, inner_size, text, sizeof (text)) == 3 && streq (text, "one"));
    from = 0;
    assert (lh_s3_xml_find (xml, size, &from, "C", &inner, &inner_size) && inner_size == 0);
    assert (lh_s3_xml_find (xml, size, &from, "B", &inner, &inner_size));
    assert (lh_s3_xml_text (inner, inner_size, text, sizeof (text)) > 0 && streq (text, "two & <3>"));
    assert (!lh_s3_xml_find (xml, size, &from, "B", &inner, &inner_size));
    from = 0;
    assert (!lh_s3_xml_find (xml, size, &from, "Missing", &inner, &inner_size));
    struct {
        const char *xml;                //  text to scan for <A>
        bool found;                     //  expected outcome
        const char *inner;              //  expected inner text when found
    } finds [] = {
        { "<AB>x</AB>", false, NULL },           //  <AB> is not <A>
        { "<A>xyz", false, NULL },               //  not closed
        { "<A", false, NULL },                   //  cut in the tag
        { "<A/", false, NULL },
        { "<A/>", true, "" },
        { "<A >x</A>", true, "x" },
        { "<A\t>x</A >", false, NULL },          //  the closing tag is exact
        { "<<A>>x</A>", true, ">x" },
        { "<A></A>", true, "" },
        { "<", false, NULL },
        { "", false, NULL },
    };
    for (size_t index = 0; index < sizeof (finds) / sizeof (finds [0]); index++) {
        from = 0;
        bool found = lh_s3_xml_find (finds [index].xml, strlen (finds [index].xml), &from,
                                     "A", &inner, &inner_size);
        assert (found == finds [index].found);
        if (found) {
            assert (inner_size == strlen (finds [index].inner));
            assert (memcmp (inner, finds [index].inner, inner_size) == 0);
        }
    }
    //  Character data: entities, character references, and refusals
    struct {
        const char *text;               //  character data
        size_t out_max;                 //  room given
        ssize_t rc;                     //  expected result
        const char *out;                //  expected text when rc >= 0
    } texts [] = {
        { "caf&#233; &#x20AC;", 64, 9, "caf\xc3\xa9 \xe2\x82\xac" },
        { "&quot;&apos;&gt;", 64, 3, "\"'>" },
        { "&#x1F600;", 64, 4, "\xf0\x9f\x98\x80" },
        { "&#X41;&#65;", 64, 2, "AA" },
        { "", 64, 0, "" },
        { "&#0;", 64, -1, NULL },
        { "&bogus;", 64, -1, NULL },
        { "&amp", 64, -1, NULL },
        { "&#;", 64, -1, NULL },
        { "&#x;", 64, -1, NULL },
        { "&#xD800;", 64, -1, NULL },
        { "&#x110000;", 64, -1, NULL },
        { "&#99999999999;", 64, -1, NULL },
        { "&#12a;", 64, -1, NULL },
        { "&averyveryverylongname;", 64, -1, NULL },
        { "0123456789", 5, -1, NULL },
        { "0123", 5, 4, "0123" },
        { "&#x20AC;", 3, -1, NULL },             //  no room for 3 bytes + NUL
        { "x", 0, -1, NULL },
    };
    //  Regression (fuzz_s3_parse): a raw NUL decoded as it was cut a key
    //  or an UploadId short where the backend reads it as a C string
    assert (lh_s3_xml_text ("ab\0cd", 5, text, sizeof (text)) == -1);
    const char upload_nul [] = "<UploadId>\0\0VXBs</UploadId>";
    char nul_id [64];
    assert (lh_s3_upload_id_parse (upload_nul, sizeof (upload_nul) - 1, nul_id, sizeof (nul_id)) == -1);
    const char list_nul [] = "<ListBucketResult><Contents><Key>a\0b</Key></Contents></ListBucketResult>";
    s_test_list_t nul_list;
    memset (&nul_list, 0, sizeof (nul_list));
    bool nul_truncated;
    char *nul_next;
    assert (lh_s3_list_parse (list_nul, sizeof (list_nul) - 1, s_test_entry, &nul_list,
                              &nul_truncated, &nul_next) == -1 && nul_list.count == 0);
    for (size_t index = 0; index < sizeof (texts) / sizeof (texts [0]); index++) {
        ssize_t rc = lh_s3_xml_text (texts [index].text, strlen (texts [index].text), text,
                                     texts [index].out_max);
        if (verbose)
            printf ("\n   xml_text '%s' -> %zd", texts [index].text, rc);
        assert (rc == texts [index].rc);
        if (rc >= 0)
            assert (streq (text, texts [index].out));
    }
    //  URL decoding (S3's encoding-type=url)
    struct {
        const char *text;               //  encoded
        const char *decoded;            //  NULL: malformed
    } urls [] = {
        { "many/a+b%2Bc", "many/a b+c" },
        { "caf%C3%a9", "caf\xc3\xa9" },
        { "plain", "plain" },
        { "", "" },
        { "bad%zz", NULL },
        { "cut%4", NULL },
        { "cut%", NULL },
    };
    for (size_t index = 0; index < sizeof (urls) / sizeof (urls [0]); index++) {
        snprintf (text, sizeof (text), "%s", urls [index].text);
        int rc = lh_s3_url_decode (text);
        assert (rc == (urls [index].decoded? 0: -1));
        if (rc == 0)
            assert (streq (text, urls [index].decoded));
    }

    //  Dates: ISO 8601 (listings) and HTTP dates (Last-Modified)
    struct {
        const char *text;
        int64_t ms;
    } isos [] = {
        { "1970-01-01T00:00:01.5Z", 1500 },
        { "2009-10-12T17:50:30.250Z", 1255369830250LL },
        { "2024-01-01T00:00:00Z", 1704067200000LL },
        { "not a date", 0 },
        { "", 0 },
    };
    for (size_t index = 0; index < sizeof (isos) / sizeof (isos [0]); index++)
        assert (lh_s3_iso8601_ms (isos [index].text) == isos [index].ms);
    struct {
        const char *text;
        int64_t seconds;
    } dates [] = {
        { "Sun, 06 Nov 1994 08:49:37 GMT", 784111777 },
        { "Sunday, 06-Nov-94 08:49:37 GMT", 784111777 },
        { "Sun Nov  6 08:49:37 1994", 784111777 },
        { "Sun Nov 16 08:49:37 1994", 784975777 },
        { "Thu, 01 Jan 1970 00:00:00 GMT", 0 },
        { "Tue, 29 Feb 2000 12:00:00 GMT", 951825600 },
        { "Wed, 31 Dec 2098 23:59:60 GMT", 4070908800LL },
        { "Friday, 01-Jan-21 00:00:00 GMT", 1609459200 },
        { "Thu, 01 Jan 1970 00:00:00 UTC", -1 },
        { "Sun, 06 Nov 1994 08:49:37 GMT ", -1 },
        { "Sun, 6 Nov 1994 08:49:37 GMT", -1 },
        { "Sun, 06 nov 1994 08:49:37 GMT", -1 },
        { "Sun, 30 Feb 1994 08:49:37 GMT", -1 },
        { "Sun, 29 Feb 1900 08:49:37 GMT", -1 },
        { "Sun, 06 Nov 1994 24:00:00 GMT", -1 },
        { "Sun, 06 Nov 1969 08:49:37 GMT", -1 },
        { "Sun, 00 Nov 1994 08:49:37 GMT", -1 },
        { "Sun, 06 Nov 1994 08:49", -1 },
        { "Sun", -1 },
        { "", -1 },
    };
    for (size_t index = 0; index < sizeof (dates) / sizeof (dates [0]); index++) {
        int64_t seconds = lh_s3_http_date (dates [index].text, strlen (dates [index].text));
        if (verbose)
            printf ("\n   http_date '%s' -> %" PRId64, dates [index].text, seconds);
        assert (seconds == dates [index].seconds);
    }

    //  A ListObjectsV2 page, url-encoded keys ('+' is a space)
    const char *page =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>bucket</Name><Prefix>many%2F</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>"
        "<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
        "<Contents><Key>many/a+b%2Bc</Key><LastModified>2009-10-12T17:50:30.250Z</LastModified>"
        "<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"
        "<StorageClass>STANDARD</StorageClass></Contents>"
        "<Contents><Key>many/caf%C3%A9</Key><LastModified>2024-01-01T00:00:00Z</LastModified>"
        "<ETag>\"0cc175b9c0f1b6a831c399e269772661-2\"</ETag><Size>0</Size></Contents>"
        "<Contents><Key>many/%26lt</Key><Size>7</Size></Contents>"
        "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
        "</ListBucketResult>";
    s_test_list_t list;
    memset (&list, 0, sizeof (list));
    bool truncated;
    char *next;
    assert (lh_s3_list_parse (page, strlen (page), s_test_entry, &list, &truncated, &next) == 0);
    assert (truncated && next && streq (next, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="));
    zstr_free (&next);
    assert (list.count == 3);
    assert (streq (list.keys [0], "many/a b+c"));
    assert (list.sizes [0] == 434234);
    assert (streq (list.etags [0], "fba9dede5f27731c9771645a39863328"));
    assert (list.mtimes [0] == 1255369830250LL);
    assert (streq (list.keys [1], "many/caf\xc3\xa9"));
    assert (streq (list.etags [1], "0cc175b9c0f1b6a831c399e269772661-2"));
    assert (list.mtimes [1] == 1704067200000LL);
    assert (streq (list.keys [2], "many/&lt") && list.sizes [2] == 7);
    //  Without EncodingType keys are taken as they are; the last page
    const char *last = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                       "<Contents><Key>a%20b+c</Key><Size>1</Size></Contents></ListBucketResult>";
    memset (&list, 0, sizeof (list));
    assert (lh_s3_list_parse (last, strlen (last), s_test_entry, &list, &truncated, &next) == 0);
    assert (!truncated && !next && list.count == 1 && streq (list.keys [0], "a%20b+c"));
    //  Malformed pages, each refused with no token left behind
    const char *malformed [] = {
        "<Error/>",
        "<ListBucketResult><EncodingType>url</EncodingType>"
            "<Contents><Key>bad%zz</Key></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><NextContinuationToken>&bad;</NextContinuationToken></ListBucketResult>",
        "<ListBucketResult><NextContinuationToken>t</NextContinuationToken>"
            "<Contents><Key>&#0;</Key></Contents></ListBucketResult>",
        "<ListBucketResult>",
    };
    for (size_t index = 0; index < sizeof (malformed) / sizeof (malformed [0]); index++) {
        next = (char *) "not reset";
        assert (lh_s3_list_parse (malformed [index], strlen (malformed [index]), s_test_entry,
                                  &list, &truncated, &next) == -1);
        assert (next == NULL);
    }

    //  Error bodies
    const char *denied = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidAccessKeyId</Code>"
        "<Message>The AWS Access Key Id you provided does not exist in our records.</Message>"
        "<AWSAccessKeyId>NOPE</AWSAccessKeyId><RequestId>4442587FB7D0A2F9</RequestId></Error>";
    char code [64], message [32];
    lh_s3_error_parse (denied, strlen (denied), code, sizeof (code), message, sizeof (message));
    assert (streq (code, "InvalidAccessKeyId"));
    assert (streq (message, "(message too long)"));
    const char *slow = "<Error><Code>SlowDown</Code><Message>Reduce</Message></Error>";
    lh_s3_error_parse (slow, strlen (slow), code, sizeof (code), message, sizeof (message));
    assert (streq (code, "SlowDown") && streq (message, "Reduce"));
    lh_s3_error_parse ("junk", 4, code, sizeof (code), message, sizeof (message));
    assert (*code == 0 && *message == 0);
    lh_s3_error_parse (NULL, 0, code, sizeof (code), message, sizeof (message));
    assert (*code == 0);
    assert (lh_s3_xml_error (denied, strlen (denied)));
    assert (!lh_s3_xml_error ("<CompleteMultipartUploadResult/>", 32));
    assert (!lh_s3_xml_error (NULL, 0));

    //  InitiateMultipartUpload and CompleteMultipartUpload answers
    const char *initiated = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Bucket>example-bucket</Bucket><Key>example-object</Key>"
        "<UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>"
        "</InitiateMultipartUploadResult>";
    char upload_id [1024];
    assert (lh_s3_upload_id_parse (initiated, strlen (initiated), upload_id, sizeof (upload_id)) == 0);
    assert (streq (upload_id, "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"));
    assert (lh_s3_upload_id_parse (initiated, strlen (initiated), upload_id, 8) == -1);
    assert (lh_s3_upload_id_parse ("<UploadId></UploadId>", 21, upload_id, 64) == -1);
    assert (lh_s3_upload_id_parse ("<Error/>", 8, upload_id, 64) == -1);
    assert (lh_s3_upload_id_parse (NULL, 0, upload_id, 64) == -1);
    const char *completed = "<CompleteMultipartUploadResult><Location>http://x/b/k</Location>"
        "<Bucket>b</Bucket><Key>k</Key><ETag>&quot;3858f62230ac3c915f300c664312c11f-9&quot;</ETag>"
        "</CompleteMultipartUploadResult>";
    char etag [LH_S3_ETAG_MAX];
    lh_s3_complete_etag (completed, strlen (completed), etag, sizeof (etag));
    assert (streq (etag, "3858f62230ac3c915f300c664312c11f-9"));
    lh_s3_complete_etag ("<ETag>\"\"</ETag>", 15, etag, sizeof (etag));
    assert (streq (etag, ""));
    lh_s3_complete_etag ("<Result/>", 9, etag, sizeof (etag));
    assert (streq (etag, ""));

    //  Response header lines
    struct {
        const char *line;               //  as libcurl hands it over
        const char *etag;               //  expected afterwards
        const char *sha256;
        int64_t length, total, mtime_ms;
    } heads [] = {
        { "ETag: \"abc\"\r\n", "abc", "", -1, -1, 0 },
        { "etag:abc", "abc", "", -1, -1, 0 },
        { "ETag: \"\"", "", "", -1, -1, 0 },
        { "x-amz-meta-sha256: 00ff\r\n", "", "00ff", -1, -1, 0 },
        { "Content-Length: 1234\r\n", "", "", 1234, -1, 0 },
        { "Content-Range: bytes 0-0/0\r\n", "", "", -1, 0, 0 },
        { "Content-Range: bytes */77", "", "", -1, 77, 0 },
        { "Content-Range: bytes 0-1/*", "", "", -1, -1, 0 },
        { "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n", "", "", -1, -1, 784111777000LL },
        { "Last-Modified: yesterday", "", "", -1, -1, 0 },
        { "Server: AmazonS3", "", "", -1, -1, 0 },
        { "no colon at all", "", "", -1, -1, 0 },
        { "ETag: \"0123456789012345678901234567890123456789012345678901234567890123456789"
          "0123456789\"", "", "", -1, -1, 0 },
    };
    for (size_t index = 0; index < sizeof (heads) / sizeof (heads [0]); index++) {
        lh_s3_head_t head;
        lh_s3_head_reset (&head);
        lh_s3_head_parse (&head, heads [index].line, strlen (heads [index].line));
        assert (streq (head.etag, heads [index].etag));
        assert (streq (head.sha256, heads [index].sha256));
        assert (head.length == heads [index].length);
        assert (head.total == heads [index].total);
        assert (head.mtime_ms == heads [index].mtime_ms);
    }
    //  Unquoting cuts to the room
    lh_s3_unquote ("\"abcdef\"", 8, etag, 4);
    assert (streq (etag, "abc"));
    lh_s3_unquote ("\"", 1, etag, sizeof (etag));
    assert (streq (etag, "\""));

    //  Error mapping
    struct {
        long http_status;
        const char *code;
        uint32_t status;
        const char *kind;
    } maps [] = {
        { 404, "NoSuchKey", 404, "no_such_key" },
        { 404, "", 404, "no_such_key" },
        { 404, "NoSuchUpload", 404, "no_such_upload" },
        { 403, "", 403, "s3_denied" },
        { 403, "SignatureDoesNotMatch", 403, "s3_denied" },
        { 400, "ExpiredToken", 403, "s3_denied" },
        { 412, "", 412, "precondition_failed" },
        { 412, "ConditionalRequestConflict", 412, "precondition_failed" },
        { 409, "ConditionalRequestConflict", 409, "conflict" },
        { 400, "EntityTooLarge", 413, "too_large" },
        { 503, "", 503, "busy" },
        { 200, "SlowDown", 503, "busy" },
        { 500, "InternalError", 502, "s3_error" },
        { 502, "", 502, "s3_error" },
    };
    for (size_t index = 0; index < sizeof (maps) / sizeof (maps [0]); index++) {
        uint32_t status;
        const char *kind = lh_s3_error_map (maps [index].http_status, maps [index].code, &status);
        assert (status == maps [index].status && streq (kind, maps [index].kind));
    }
    //  Scrubbing: control characters, secrets, short secrets left alone
    char reason [] = "key AKIDSECRETID\r\nsecret verysecretkey abc AKIDSECRETID";
    const char *secrets [] = { "verysecretkey", NULL, "AKIDSECRETID", "abc" };
    lh_s3_scrub (reason, secrets, 4);
    assert (streq (reason, "key ************  secret ************* abc ************"));

    //  Endpoints
    struct {
        const char *endpoint, *style, *bucket;
        const char *base, *host, *prefix;   //  NULL base: refused
        const char *reason;                 //  part of the refusal
    } endpoints [] = {
        { "http://127.0.0.1:9000", "path", "b", "http://127.0.0.1:9000", "127.0.0.1:9000", "/b", NULL },
        { "https://s3.example.com:443/", "path", "my bucket", "https://s3.example.com",
          "s3.example.com", "/my%20bucket", NULL },
        { "http://s3.example.com:80", "virtual", "b", "http://b.s3.example.com",
          "b.s3.example.com", "", NULL },
        { "http://[::1]:9000", "path", "b", "http://[::1]:9000", "[::1]:9000", "/b", NULL },
        { "ftp://x", "path", "b", NULL, NULL, NULL, "expected http://" },
        { "http://h:1/path", "path", "b", NULL, NULL, NULL, "no path" },
        { "http://", "path", "b", NULL, NULL, NULL, "no path" },
        { "http://user@h", "path", "b", NULL, NULL, NULL, "no path" },
        { "http://h?x", "path", "b", NULL, NULL, NULL, "no path" },
        { "http://h o", "path", "b", NULL, NULL, NULL, "bad character" },
        { "http://127.0.0.1:1", "virtual", "b", NULL, NULL, NULL, "DNS name" },
        { "http://h", "sideways", "b", NULL, NULL, NULL, "s3_style" },
    };
    for (size_t index = 0; index < sizeof (endpoints) / sizeof (endpoints [0]); index++) {
        char *base, *host, *prefix;
        char why [256];
        int rc = lh_s3_endpoint_parse (endpoints [index].endpoint, endpoints [index].style,
                                       endpoints [index].bucket, &base, &host, &prefix,
                                       why, sizeof (why));
        if (verbose)
            printf ("\n   endpoint '%s' %s -> %d %s", endpoints [index].endpoint,
                    endpoints [index].style, rc, rc? why: base);
        if (endpoints [index].base) {
            assert (rc == 0);
            assert (streq (base, endpoints [index].base));
            assert (streq (host, endpoints [index].host));
            assert (streq (prefix, endpoints [index].prefix));
            free (base);
            free (host);
            free (prefix);
        }
        else {
            assert (rc == -1 && !base && !host && !prefix);
            assert (strstr (why, endpoints [index].reason));
        }
    }
    printf ("OK\n");
}
