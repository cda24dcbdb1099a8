/*  =========================================================================
    lh_multipart - a streaming multipart/form-data parser; see
    lh_multipart.h

    The delimiter is "\r\n--BOUNDARY"; the body's first one may come
    without its CRLF, so the parser starts as if a CRLF had just been
    read. A boundary holds no CR or LF, so the delimiter's only CR is its
    first byte: when a partial match fails, the bytes matched so far are
    the delimiter's own prefix (handed out as content from the delimiter
    itself: no look-behind buffer), and a new match can only begin at the
    byte that failed.
    =========================================================================
*/

#include "lh_multipart.h"

#define S_HEADER_MAX    8192            //  default limits
#define S_NAME_MAX      256
#define S_FILENAME_MAX  1024
#define S_PARTS_MAX     1000
#define S_LIMIT_MAX     (1024 * 1024)   //  largest limit a caller may set

typedef enum {
    S_PREAMBLE,                         //  before the first delimiter
    S_AFTER,                            //  just after a delimiter
    S_PADDING,                          //  spaces or tabs after a delimiter
    S_CLOSE,                            //  after "--BOUNDARY-"
    S_LF,                               //  after the delimiter line's CR
    S_HEADERS,                          //  a part's header block
    S_BODY,                             //  a part's content
    S_EPILOGUE,                         //  after the closing delimiter
    S_FAILED,                           //  malformed: nothing more is read
    S_STOPPED                           //  the callback stopped the parse
} s_state_t;

struct _lh_multipart_t {
    char delimiter [LH_MULTIPART_BOUNDARY_MAX + 5];  //  "\r\n--BOUNDARY"
    size_t delimiter_size;              //  its length
    size_t matched;                     //  delimiter bytes matched so far
    s_state_t state;                    //  where the parser is
    lh_multipart_limits_t limits;       //  limits in force
    char *header;                       //  the current part's header block
    size_t header_used;                 //  bytes in header
    char *name;                         //  current field name (name_max + 1)
    char *filename;                     //  current filename (filename_max + 1)
    lh_multipart_part_t part;           //  the part handed to callbacks
    bool in_part;                       //  a part was begun and not ended
    size_t parts;                       //  parts begun (BEGIN handed out)
    char error [256];                   //  why the body was refused
};


//  --------------------------------------------------------------------------
//  Is c a token character (RFC 9110 tchar)?

static bool
s_tchar (int c)
{
    return isalnum (c) || (c && strchr ("!#$%&'*+-.^_`|~", c));
}

//  Is c a character a boundary may hold (RFC 2046 bchars)?
static bool
s_bchar (int c)
{
    return isalnum (c) || (c && strchr ("'()+_,-./:=? ", c));
}


//  --------------------------------------------------------------------------
//  Find the boundary in a Content-Type value; 0, or -1 with *reason

int
lh_multipart_boundary (const char *content_type, char *boundary,
                       size_t boundary_size, const char **reason)
{
    assert (boundary && boundary_size > LH_MULTIPART_BOUNDARY_MAX && reason);
    *boundary = 0;
    const char *scan = content_type? content_type: "";
    while (*scan == ' ' || *scan == '\t')
        scan++;
    if (strncasecmp (scan, "multipart/form-data", 19) != 0
    ||  (scan [19] && scan [19] != ';' && scan [19] != ' ' && scan [19] != '\t')) {
        *reason = "the Content-Type is not multipart/form-data";
        return -1;
    }
    scan += 19;
    bool found = false;
    while (true) {
        while (*scan == ' ' || *scan == '\t')
            scan++;
        if (*scan == 0)
            break;
        if (*scan != ';') {
            *reason = "the Content-Type's parameters are malformed (expected '; name=value')";
            return -1;
        }
        scan++;
        while (*scan == ' ' || *scan == '\t')
            scan++;
        if (*scan == 0)
            break;
        const char *name = scan;
        while (s_tchar ((unsigned char) *scan))
            scan++;
        size_t name_size = (size_t) (scan - name);
        if (name_size == 0 || *scan != '=') {
            *reason = "the Content-Type's parameters are malformed (expected '; name=value')";
            return -1;
        }
        scan++;
        bool is_boundary = name_size == 8 && strncasecmp (name, "boundary", 8) == 0;
        if (is_boundary && found) {
            *reason = "the Content-Type has two boundary parameters";
            return -1;
        }
        char value [LH_MULTIPART_BOUNDARY_MAX + 1];
        size_t value_size = 0;
        bool too_long = false;
        if (*scan == '"') {
            scan++;
            while (*scan && *scan != '"') {
                if (*scan == '\\' && scan [1])
                    scan++;
                if (value_size < LH_MULTIPART_BOUNDARY_MAX)
                    value [value_size++] = *scan;
                else
                    too_long = true;
                scan++;
            }
            if (*scan != '"') {
                *reason = "the Content-Type has a quoted parameter that is not closed";
                return -1;
            }
            scan++;
        }
        else
            while (s_tchar ((unsigned char) *scan)) {
                if (value_size < LH_MULTIPART_BOUNDARY_MAX)
                    value [value_size++] = *scan;
                else
                    too_long = true;
                scan++;
            }
        if (!is_boundary)
            continue;
        found = true;
        if (too_long) {
            *reason = "the multipart boundary is longer than 70 characters";
            return -1;
        }
        if (value_size == 0) {
            *reason = "the multipart boundary is empty";
            return -1;
        }
        for (size_t index = 0; index < value_size; index++)
            if (!s_bchar ((unsigned char) value [index])) {
                *reason = "the multipart boundary holds a character RFC 2046 does not allow";
                return -1;
            }
        if (value [value_size - 1] == ' ') {
            *reason = "the multipart boundary ends with a space";
            return -1;
        }
        memcpy (boundary, value, value_size);
        boundary [value_size] = 0;
    }
    if (!found) {
        *reason = "the Content-Type has no boundary parameter";
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Create a parser

lh_multipart_t *
lh_multipart_new (const char *boundary, const lh_multipart_limits_t *limits)
{
    size_t boundary_size = boundary? strlen (boundary): 0;
    assert (boundary_size > 0 && boundary_size <= LH_MULTIPART_BOUNDARY_MAX);
    assert (!strchr (boundary, '\r') && !strchr (boundary, '\n'));
    lh_multipart_t *self = (lh_multipart_t *) zmalloc (sizeof (lh_multipart_t));
    assert (self);
    self->delimiter_size = (size_t) snprintf (self->delimiter, sizeof (self->delimiter),
                                              "\r\n--%s", boundary);
    self->matched = 2;                  //  as if the body began after a CRLF
    self->state = S_PREAMBLE;
    if (limits)
        self->limits = *limits;
    if (!self->limits.header_max)
        self->limits.header_max = S_HEADER_MAX;
    if (!self->limits.name_max)
        self->limits.name_max = S_NAME_MAX;
    if (!self->limits.filename_max)
        self->limits.filename_max = S_FILENAME_MAX;
    if (!self->limits.parts_max)
        self->limits.parts_max = S_PARTS_MAX;
    assert (self->limits.header_max <= S_LIMIT_MAX && self->limits.name_max <= S_LIMIT_MAX
         && self->limits.filename_max <= S_LIMIT_MAX);
    self->header = (char *) malloc (self->limits.header_max);
    self->name = (char *) malloc (self->limits.name_max + 1);
    self->filename = (char *) malloc (self->limits.filename_max + 1);
    assert (self->header && self->name && self->filename);
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy a parser

void
lh_multipart_destroy (lh_multipart_t **self_p)
{
    assert (self_p);
    lh_multipart_t *self = *self_p;
    if (self) {
        free (self->header);
        free (self->name);
        free (self->filename);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Refuse the body with a sentence; returns -2

static int
s_fail (lh_multipart_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof (self->error), format, args);
    va_end (args);
    self->state = S_FAILED;
    return -2;
}


//  --------------------------------------------------------------------------
//  Hand an event to the callback; returns 0, or -1 if it stopped the parse

static int
s_emit (lh_multipart_t *self, lh_multipart_event_t event, const char *data, size_t size,
        lh_multipart_fn *fn, void *arg)
{
    if (event == LH_MULTIPART_DATA && size == 0)
        return 0;
    if (fn (arg, event, &self->part, data, size)) {
        self->state = S_STOPPED;
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Copy a parameter value of size bytes into out (max bytes and a NUL);
//  returns 0, or -2 naming what if it is too long

static int
s_param_copy (lh_multipart_t *self, const char *what, const char *value, size_t size,
              char *out, size_t max)
{
    if (size > max)
        return s_fail (self, "a part's %s is longer than %zu bytes", what, max);
    memcpy (out, value, size);
    out [size] = 0;
    return 0;
}


//  --------------------------------------------------------------------------
//  Read a Content-Disposition value (NUL-ended, in place in the header
//  block): form-data, then parameters, of which name and filename are
//  kept. Returns 0 or -2.

static int
s_disposition (lh_multipart_t *self, char *value, bool *has_name)
{
    char *scan = value;
    const char *type = scan;
    while (s_tchar ((unsigned char) *scan))
        scan++;
    if (scan - type != 9 || strncasecmp (type, "form-data", 9) != 0)
        return s_fail (self, "a part's Content-Disposition is not form-data");
    while (true) {
        while (*scan == ' ' || *scan == '\t')
            scan++;
        if (*scan == 0)
            return 0;
        if (*scan != ';')
            return s_fail (self, "a part's Content-Disposition is malformed "
                                 "(expected '; name=\"value\"')");
        scan++;
        while (*scan == ' ' || *scan == '\t')
            scan++;
        if (*scan == 0)
            return 0;
        const char *name = scan;
        while (s_tchar ((unsigned char) *scan))
            scan++;
        size_t name_size = (size_t) (scan - name);
        while (*scan == ' ' || *scan == '\t')
            scan++;
        if (name_size == 0 || *scan != '=')
            return s_fail (self, "a part's Content-Disposition is malformed "
                                 "(expected '; name=\"value\"')");
        scan++;
        while (*scan == ' ' || *scan == '\t')
            scan++;
        //  The value, unescaped in place: it never grows
        char *start = scan;
        size_t size = 0;
        if (*scan == '"') {
            scan++;
            start = scan;
            char *write = scan;
            while (*scan && *scan != '"') {
                if (*scan == '\\' && scan [1])
                    scan++;
                *write++ = *scan++;
            }
            if (*scan != '"')
                return s_fail (self, "a part's Content-Disposition has a quoted value "
                                     "that is not closed");
            scan++;
            size = (size_t) (write - start);
        }
        else {
            while (s_tchar ((unsigned char) *scan))
                scan++;
            size = (size_t) (scan - start);
        }
        if (name_size == 4 && strncasecmp (name, "name", 4) == 0) {
            if (*has_name)
                return s_fail (self, "a part's Content-Disposition has two names");
            *has_name = true;
            if (s_param_copy (self, "field name", start, size, self->name,
                              self->limits.name_max))
                return -2;
        }
        else
        if (name_size == 8 && strncasecmp (name, "filename", 8) == 0) {
            if (self->part.filename)
                return s_fail (self, "a part's Content-Disposition has two filenames");
            if (s_param_copy (self, "filename", start, size, self->filename,
                              self->limits.filename_max))
                return -2;
            self->part.filename = self->filename;
        }
    }
}


//  --------------------------------------------------------------------------
//  The header block is complete (it ends with an empty line): read it.
//  Returns 0 with the part described, or -2.

static int
s_headers_parse (lh_multipart_t *self)
{
    self->part.name = NULL;
    self->part.filename = NULL;
    self->part.index = self->parts;
    bool has_disposition = false;
    bool has_name = false;
    char *line = self->header;
    char *end = self->header + self->header_used;
    while (line < end) {
        //  Each line ends with CRLF; the last one is empty
        char *eol = (char *) memchr (line, '\r', (size_t) (end - line));
        assert (eol && eol + 1 < end && eol [1] == '\n');
        *eol = 0;
        if (eol == line)
            break;
        for (char *scan = line; scan < eol; scan++) {
            unsigned char c = (unsigned char) *scan;
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return s_fail (self, "a part's header line holds a control character");
        }
        char *colon = strchr (line, ':');
        if (!colon)
            return s_fail (self, "a part's header line has no ':'");
        for (char *scan = line; scan < colon; scan++)
            if (!s_tchar ((unsigned char) *scan))
                return s_fail (self, "a part's header name is not a token");
        if (colon == line)
            return s_fail (self, "a part's header line has no name");
        char *value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        char *value_end = eol;
        while (value_end > value && (value_end [-1] == ' ' || value_end [-1] == '\t'))
            *--value_end = 0;
        if ((size_t) (colon - line) == 19 && strncasecmp (line, "Content-Disposition", 19) == 0) {
            if (has_disposition)
                return s_fail (self, "a part has two Content-Disposition headers");
            has_disposition = true;
            if (s_disposition (self, value, &has_name))
                return -2;
        }
        line = eol + 2;
    }
    if (!has_disposition)
        return s_fail (self, "a part has no Content-Disposition header");
    if (!has_name)
        return s_fail (self, "a part's Content-Disposition has no name");
    self->part.name = self->name;
    return 0;
}


//  --------------------------------------------------------------------------
//  Match the delimiter over data [*at, size), handing the content before
//  it to fn (in a part) or dropping it (in the preamble). Returns 1 when
//  the whole delimiter was read (*at past it), 0 when the data ran out,
//  -1 if fn stopped.

static int
s_scan (lh_multipart_t *self, const char *data, size_t size, size_t *at,
        bool content, lh_multipart_fn *fn, void *arg)
{
    size_t index = *at;
    while (index < size) {
        if (self->matched == 0) {
            //  Content up to the next CR is content for certain
            const char *cr = (const char *) memchr (data + index, '\r', size - index);
            size_t stop = cr? (size_t) (cr - data): size;
            if (content && s_emit (self, LH_MULTIPART_DATA, data + index, stop - index, fn, arg))
                return -1;
            index = stop;
            if (!cr)
                break;
            self->matched = 1;
            index++;
            continue;
        }
        if (data [index] == self->delimiter [self->matched]) {
            index++;
            if (++self->matched == self->delimiter_size) {
                self->matched = 0;
                *at = index;
                return 1;
            }
            continue;
        }
        //  No delimiter after all: what matched was content; the byte
        //  that failed is looked at again from the start
        if (content && s_emit (self, LH_MULTIPART_DATA, self->delimiter, self->matched, fn, arg))
            return -1;
        self->matched = 0;
    }
    *at = index;
    return 0;
}


//  --------------------------------------------------------------------------
//  Feed bytes of the body

int
lh_multipart_feed (lh_multipart_t *self, const void *data, size_t size,
                   lh_multipart_fn *fn, void *arg)
{
    assert (self && fn);
    const char *bytes = (const char *) data;
    size_t at = 0;
    while (at < size) {
        if (self->state == S_FAILED)
            return -2;
        if (self->state == S_STOPPED)
            return -1;
        if (self->state == S_EPILOGUE)
            return 0;                   //  ignored, whatever it holds
        if (self->state == S_PREAMBLE || self->state == S_BODY) {
            int rc = s_scan (self, bytes, size, &at, self->state == S_BODY, fn, arg);
            if (rc < 0)
                return -1;
            if (rc == 1)
                self->state = S_AFTER;
            continue;
        }
        char c = bytes [at++];
        if (self->state == S_AFTER) {
            if (c == '-')
                self->state = S_CLOSE;
            else
            if (c == ' ' || c == '\t')
                self->state = S_PADDING;
            else
            if (c == '\r')
                self->state = S_LF;
            else
                return s_fail (self, "the boundary '--%s' is followed by something other "
                               "than a line end or '--' (is it inside the content?)",
                               self->delimiter + 4);
        }
        else
        if (self->state == S_PADDING) {
            if (c == '\r')
                self->state = S_LF;
            else
            if (c != ' ' && c != '\t')
                return s_fail (self, "the boundary line '--%s' holds more than spaces after "
                               "the boundary", self->delimiter + 4);
        }
        else
        if (self->state == S_CLOSE) {
            if (c != '-')
                return s_fail (self, "the boundary '--%s' is followed by something other "
                               "than a line end or '--' (is it inside the content?)",
                               self->delimiter + 4);
            if (self->in_part) {
                self->in_part = false;
                if (s_emit (self, LH_MULTIPART_END, NULL, 0, fn, arg))
                    return -1;
            }
            self->state = S_EPILOGUE;
        }
        else
        if (self->state == S_LF) {
            if (c != '\n')
                return s_fail (self, "the boundary line '--%s' does not end with CRLF",
                               self->delimiter + 4);
            if (self->in_part) {
                self->in_part = false;
                if (s_emit (self, LH_MULTIPART_END, NULL, 0, fn, arg))
                    return -1;
            }
            if (self->parts == self->limits.parts_max)
                return s_fail (self, "the form has more than %zu parts", self->limits.parts_max);
            self->header_used = 0;
            self->state = S_HEADERS;
        }
        else
        if (self->state == S_HEADERS) {
            if (self->header_used == self->limits.header_max)
                return s_fail (self, "a part's headers are longer than %zu bytes",
                               self->limits.header_max);
            self->header [self->header_used++] = c;
            size_t used = self->header_used;
            bool done = (used == 2 && memcmp (self->header, "\r\n", 2) == 0)
                     || (used >= 4 && memcmp (self->header + used - 4, "\r\n\r\n", 4) == 0);
            if (!done)
                continue;
            //  A lone CR or LF inside the block is not a line end
            for (size_t index = 0; index < used; index++)
                if ((self->header [index] == '\r'
                     && (index + 1 == used || self->header [index + 1] != '\n'))
                ||  (self->header [index] == '\n'
                     && (index == 0 || self->header [index - 1] != '\r')))
                    return s_fail (self, "a part's header lines must end with CRLF");
            if (s_headers_parse (self))
                return -2;
            self->in_part = true;
            self->state = S_BODY;
            self->parts++;
            if (s_emit (self, LH_MULTIPART_BEGIN, NULL, 0, fn, arg))
                return -1;
        }
    }
    return self->state == S_FAILED? -2: self->state == S_STOPPED? -1: 0;
}


//  --------------------------------------------------------------------------
//  The body ended: 0 if its closing boundary was read, else -2 (or -1)

int
lh_multipart_finish (lh_multipart_t *self)
{
    assert (self);
    if (self->state == S_EPILOGUE)
        return 0;
    if (self->state == S_STOPPED)
        return -1;
    if (self->state == S_FAILED)
        return -2;
    if (self->state == S_PREAMBLE)
        return s_fail (self, "the body holds no boundary line '--%s'", self->delimiter + 4);
    return s_fail (self, "the body ends before its closing boundary '--%s--'",
                   self->delimiter + 4);
}


//  --------------------------------------------------------------------------
//  Why the body was refused, or ""

const char *
lh_multipart_error (lh_multipart_t *self)
{
    assert (self);
    return self->error;
}


//  --------------------------------------------------------------------------
//  Parts begun so far

size_t
lh_multipart_parts (lh_multipart_t *self)
{
    assert (self);
    return self->parts;
}


//  --------------------------------------------------------------------------
//  Self test

//  What the test callback saw: one line per event, data concatenated
typedef struct {
    char log [2048];                    //  "B name filename|D bytes|E|"
    size_t used;                        //  bytes in log
    int stop_at;                        //  stop at this event (-1: never)
    int events;                         //  events seen
    bool open;                          //  a part is open
} s_test_log_t;

static void
s_test_append (s_test_log_t *log, const char *text, size_t size)
{
    if (log->used + size >= sizeof (log->log))
        size = sizeof (log->log) - log->used - 1;
    memcpy (log->log + log->used, text, size);
    log->used += size;
    log->log [log->used] = 0;
}

static int
s_test_event (void *arg, lh_multipart_event_t event, const lh_multipart_part_t *part,
              const char *data, size_t size)
{
    s_test_log_t *log = (s_test_log_t *) arg;
    assert (part && part->name);
    if (event == LH_MULTIPART_BEGIN) {
        assert (!log->open);
        log->open = true;
        char line [1200];
        snprintf (line, sizeof (line), "[%s%s%s]", part->name,
                  part->filename? "|": "", part->filename? part->filename: "");
        s_test_append (log, line, strlen (line));
    }
    else
    if (event == LH_MULTIPART_DATA) {
        assert (log->open && data && size > 0);
        //  Adjacent data events are joined: only the bytes matter
        s_test_append (log, data, size);
    }
    else {
        assert (log->open);
        log->open = false;
        s_test_append (log, "[end]", 5);
    }
    return log->events++ == log->stop_at? -1: 0;
}

//  Parse body in chunks of step bytes (0: whole); returns the final rc
static int
s_test_parse (const char *boundary, const char *body, size_t size, size_t step,
              const lh_multipart_limits_t *limits, s_test_log_t *log, char *error)
{
    memset (log, 0, sizeof (*log));
    log->stop_at = -1;
    lh_multipart_t *form = lh_multipart_new (boundary, limits);
    int rc = 0;
    size_t at = 0;
    if (step == 0)
        step = size? size: 1;
    while (at < size && rc == 0) {
        size_t take = size - at < step? size - at: step;
        rc = lh_multipart_feed (form, body + at, take, s_test_event, log);
        at += take;
    }
    if (rc == 0)
        rc = lh_multipart_finish (form);
    strcpy (error, lh_multipart_error (form));
    lh_multipart_destroy (&form);
    return rc;
}

void
lh_multipart_test (bool verbose)
{
    printf (" * lh_multipart: ");
    //  Boundaries from Content-Type values
    struct {
        const char *content_type;
        const char *boundary;           //  NULL: refused
        const char *reason;             //  part of the refusal
    } types [] = {
        { "multipart/form-data; boundary=lhboundary7d1f", "lhboundary7d1f", NULL },
        { "Multipart/Form-Data;boundary=\"a b:c\"", "a b:c", NULL },
        { "multipart/form-data; charset=utf-8; BOUNDARY=x", "x", NULL },
        { "multipart/form-data; boundary=\"q\\\"\"", NULL, "RFC 2046" },
        { "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
          "----WebKitFormBoundary7MA4YWxkTrZu0gW", NULL },
        { "multipart/form-data; boundary=", NULL, "empty" },
        { "multipart/form-data", NULL, "no boundary" },
        { "multipart/form-data; charset=utf-8", NULL, "no boundary" },
        { "multipart/form-datax; boundary=x", NULL, "not multipart/form-data" },
        { "text/csv", NULL, "not multipart/form-data" },
        { NULL, NULL, "not multipart/form-data" },
        { "multipart/form-data; boundary=a; boundary=b", NULL, "two boundary" },
        { "multipart/form-data; boundary=\"a b \"", NULL, "ends with a space" },
        { "multipart/form-data; boundary=\"open", NULL, "not closed" },
        { "multipart/form-data; boundary", NULL, "malformed" },
        { "multipart/form-data, boundary=x", NULL, "not multipart/form-data" },
        { "multipart/form-data; boundary=x y", NULL, "malformed" },
        { "multipart/form-data; boundary=0123456789012345678901234567890123456789"
          "0123456789012345678901234567890", NULL, "longer than 70" },
        { "multipart/form-data; boundary=\"0123456789012345678901234567890123456789"
          "0123456789012345678901234567890\"", NULL, "longer than 70" },
        { "multipart/form-data; boundary=012345678901234567890123456789012345678901234567890123456789"
          "0123456789", "012345678901234567890123456789012345678901234567890123456789"
          "0123456789", NULL },
    };
    for (size_t index = 0; index < sizeof (types) / sizeof (types [0]); index++) {
        char boundary [LH_MULTIPART_BOUNDARY_MAX + 1];
        const char *reason = NULL;
        int rc = lh_multipart_boundary (types [index].content_type, boundary,
                                        sizeof (boundary), &reason);
        if (verbose)
            printf ("\n   '%s' -> %s", types [index].content_type? types [index].content_type: "(null)",
                    rc? reason: boundary);
        if (types [index].boundary)
            assert (rc == 0 && streq (boundary, types [index].boundary));
        else
            assert (rc == -1 && reason && strstr (reason, types [index].reason));
    }

    //  Bodies, each parsed whole and in every chunk size from 1 to 9
    lh_multipart_limits_t small = { .header_max = 200, .name_max = 16, .filename_max = 32,
                                    .parts_max = 4 };
    char long_name [64];
    memset (long_name, 'n', 17);
    long_name [17] = 0;
    char *over_name = zsys_sprintf ("--B\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n"
                                    "x\r\n--B--\r\n", long_name);
    long_name [16] = 0;
    char *at_name = zsys_sprintf ("--B\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n"
                                  "x\r\n--B--\r\n", long_name);
    struct {
        const char *what;               //  the case
        const char *body;               //  the body (boundary "B")
        int rc;                         //  expected final result
        const char *log;                //  expected events when rc == 0
        const char *error;              //  part of the error when rc == -2
    } bodies [] = {
        { "two fields, the ingest form",
          "--B\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\ncities\r\n"
          "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.csv\"\r\n"
          "Content-Type: text/csv\r\n\r\nid,city\n1,Toledo\n\r\n--B--\r\n",
          0, "[name]cities[end][file|c.csv]id,city\n1,Toledo\n[end]", NULL },
        { "preamble and epilogue are ignored",
          "This is a preamble.\r\nstill preamble --B\r\n--B\r\n"
          "Content-Disposition: form-data; name=a\r\n\r\nA\r\n--B--\r\nan epilogue\r\n--B\r\njunk",
          0, "[a]A[end]", NULL },
        { "a boundary line with more in the preamble",
          "preamble\r\n--B is not here\r\n--B\r\n"
          "Content-Disposition: form-data; name=a\r\n\r\nA\r\n--B--\r\n",
          -2, NULL, "more than spaces" },
        { "a preamble, then the parts, then an epilogue",
          "preamble line\r\n\r\n--B\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n"
          "--B--\r\nepilogue --B\r\n\r\n--B--",
          0, "[a]A[end]", NULL },
        { "content that looks like the boundary",
          "--B\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n\r\n-\r\n--\r\n-B\r\r\n--C--B\r\n--B--",
          0, "[f]\r\n-\r\n--\r\n-B\r\r\n--C--B[end]", NULL },
        { "empty content, and no closing CRLF",
          "--B\r\nContent-Disposition: form-data; name=\"e\"\r\n\r\n\r\n--B--",
          0, "[e][end]", NULL },
        { "padding after the boundary, leading CRLF",
          "\r\n--B \t\r\ncontent-disposition: FORM-DATA; NAME=x; filename=\"a\\\"b\"\r\n\r\n1\r\n--B--",
          0, "[x|a\"b]1[end]", NULL },
        { "no part at all", "--B--\r\n", 0, "", NULL },
        { "a missing closing boundary",
          "--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n",
          -2, NULL, "ends before its closing boundary '--B--'" },
        { "a closing boundary cut short",
          "--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n--B-",
          -2, NULL, "ends before its closing boundary" },
        { "an empty body", "", -2, NULL, "no boundary line '--B'" },
        { "no boundary at all", "just text\r\n", -2, NULL, "no boundary line" },
        { "the wrong boundary", "--C\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--C--",
          -2, NULL, "no boundary line" },
        { "a field name at the limit", at_name, 0, "[nnnnnnnnnnnnnnnn]x[end]", NULL },
        { "a field name over the limit", over_name, -2, NULL, "field name is longer than 16" },
        { "a filename over the limit",
          "--B\r\nContent-Disposition: form-data; name=f; filename=\"0123456789012345678901234567890123\""
          "\r\n\r\nx\r\n--B--", -2, NULL, "filename is longer than 32" },
        { "headers over the limit",
          "--B\r\nContent-Disposition: form-data; name=f\r\nX-Pad: "
          "0123456789012345678901234567890123456789012345678901234567890123456789"
          "0123456789012345678901234567890123456789012345678901234567890123456789"
          "0123456789012345678901234567890123456789012345678901234567890123456789\r\n\r\nx\r\n--B--",
          -2, NULL, "headers are longer than 200" },
        { "too many parts",
          "--B\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n"
          "--B\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n"
          "--B\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n"
          "--B\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n"
          "--B\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n--B--",
          -2, NULL, "more than 4 parts" },
        { "no Content-Disposition", "--B\r\nContent-Type: text/csv\r\n\r\nx\r\n--B--",
          -2, NULL, "no Content-Disposition" },
        { "no headers at all", "--B\r\n\r\nx\r\n--B--", -2, NULL, "no Content-Disposition" },
        { "no name", "--B\r\nContent-Disposition: form-data; filename=a\r\n\r\nx\r\n--B--",
          -2, NULL, "has no name" },
        { "not form-data", "--B\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--B--",
          -2, NULL, "not form-data" },
        { "two names", "--B\r\nContent-Disposition: form-data; name=a; name=b\r\n\r\nx\r\n--B--",
          -2, NULL, "two names" },
        { "two dispositions", "--B\r\nContent-Disposition: form-data; name=a\r\n"
          "Content-Disposition: form-data; name=b\r\n\r\nx\r\n--B--", -2, NULL, "two Content-Disposition" },
        { "an unclosed quote", "--B\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--B--",
          -2, NULL, "not closed" },
        { "a header line without a colon", "--B\r\nContent-Disposition form-data\r\n\r\nx\r\n--B--",
          -2, NULL, "no ':'" },
        { "a NUL in a header", "--B\r\nContent-Disposition: form-data; name=\"fi\0le\"\r\n\r\nx\r\n--B--",
          -2, NULL, "control character" },
        { "a bare LF in the headers", "--B\r\nContent-Disposition: form-data; name=a\nX: y\r\n\r\nx\r\n--B--",
          -2, NULL, "CRLF" },
        { "the boundary inside the content", "--B\r\nContent-Disposition: form-data; name=a\r\n\r\n"
          "x\r\n--Bx\r\n--B--", -2, NULL, "followed by something other" },
        { "junk after the padding", "--B  x\r\n", -2, NULL, "more than spaces" },
        { "a boundary line ending in a bare CR", "--B\rx", -2, NULL, "does not end with CRLF" },
        { "a closing boundary with one dash", "--B-x", -2, NULL, "followed by something other" },
    };
    //  The NUL case needs its real size: every body is measured by hand
    size_t sizes [sizeof (bodies) / sizeof (bodies [0])];
    for (size_t index = 0; index < sizeof (bodies) / sizeof (bodies [0]); index++) {
        sizes [index] = strlen (bodies [index].body);
        if (streq (bodies [index].what, "a NUL in a header"))
            sizes [index] += 1 + strlen (bodies [index].body + sizes [index] + 1);
    }
    for (size_t index = 0; index < sizeof (bodies) / sizeof (bodies [0]); index++) {
        for (size_t step = 0; step < 10; step++) {
            s_test_log_t log;
            char error [256];
            int rc = s_test_parse ("B", bodies [index].body, sizes [index], step, &small,
                                   &log, error);
            if (verbose && step == 0)
                printf ("\n   %s: %d %s", bodies [index].what, rc, rc? error: log.log);
            assert (rc == bodies [index].rc);
            if (rc == 0) {
                assert (streq (log.log, bodies [index].log));
                assert (*error == 0);
            }
            else
                assert (strstr (error, bodies [index].error));
        }
    }
    zstr_free (&over_name);
    zstr_free (&at_name);

    //  A boundary split across chunks at every position, with a long
    //  boundary and content full of near-misses
    const char *boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW";
    char *content = zsys_sprintf ("a\r\n------WebKitFormBoundary7MA4YWxkTrZu0g\r\n-x\r\r\n\r\n--");
    char *body = zsys_sprintf ("--%s\r\nContent-Disposition: form-data; name=\"file\"; "
                               "filename=\"w.csv\"\r\n\r\n%s\r\n--%s--\r\n",
                               boundary, content, boundary);
    char *expect = zsys_sprintf ("[file|w.csv]%s[end]", content);
    size_t size = strlen (body);
    for (size_t split = 0; split <= size; split++) {
        s_test_log_t log;
        memset (&log, 0, sizeof (log));
        log.stop_at = -1;
        lh_multipart_t *form = lh_multipart_new (boundary, NULL);
        assert (lh_multipart_feed (form, body, split, s_test_event, &log) == 0);
        assert (lh_multipart_feed (form, body + split, size - split, s_test_event, &log) == 0);
        assert (lh_multipart_finish (form) == 0);
        assert (streq (log.log, expect));
        assert (lh_multipart_parts (form) == 1);
        lh_multipart_destroy (&form);
    }
    //  The callback stops the parse: -1 from then on, also at finish
    s_test_log_t log;
    memset (&log, 0, sizeof (log));
    log.stop_at = 1;
    lh_multipart_t *form = lh_multipart_new (boundary, NULL);
    assert (lh_multipart_feed (form, body, size, s_test_event, &log) == -1);
    assert (log.events == 2);
    assert (lh_multipart_feed (form, body, size, s_test_event, &log) == -1);
    assert (lh_multipart_finish (form) == -1);
    lh_multipart_destroy (&form);
    lh_multipart_destroy (&form);
    //  Regression (fuzz_multipart): a part whose header block is refused
    //  was counted as begun although no BEGIN was handed out
    form = lh_multipart_new ("B", NULL);
    memset (&log, 0, sizeof (log));
    log.stop_at = -1;
    const char *refused = "--B\r\nX: y\r\n\r\n";
    assert (lh_multipart_feed (form, refused, strlen (refused), s_test_event, &log) == -2);
    assert (lh_multipart_parts (form) == 0 && log.events == 0);
    lh_multipart_destroy (&form);
    //  After a refusal every feed says so without reading
    form = lh_multipart_new ("B", NULL);
    memset (&log, 0, sizeof (log));
    log.stop_at = -1;
    assert (lh_multipart_feed (form, "--B!", 4, s_test_event, &log) == -2);
    assert (lh_multipart_feed (form, "--B--", 5, s_test_event, &log) == -2);
    assert (lh_multipart_finish (form) == -2);
    assert (strstr (lh_multipart_error (form), "followed by"));
    lh_multipart_destroy (&form);
    zstr_free (&content);
    zstr_free (&body);
    zstr_free (&expect);
    printf ("OK\n");
}
