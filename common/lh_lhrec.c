/*  =========================================================================
    lh_lhrec - the .lhrec recording format (bustap --record, busreplay)

    A recording is a sequence of msgpack objects: one header record (a map),
    then one array per tap message. See lh_lhrec.h and docs/protocol.md.

    The reader never trusts the file: it finds each record's end with the
    bounded reader (lh_reader_skip) before looking inside, refuses a record
    larger than its limit, and reads the file in chunks, so a recording
    much larger than memory replays in constant space.
    =========================================================================
*/

#include "lh_lhrec.h"
#include "lh_tap.h"
#include "lh_body.h"

#define S_DEFAULT_MAX_BODY  (16 * 1024 * 1024)
#define S_RECORD_OVERHEAD   (LH_HEADER_MAX + LH_LHREC_TOPIC_MAX + 64)
#define S_READ_CHUNK        65536
#define S_SKIP_DEPTH        8

struct _lh_lhrec_t {
    int fd;                             //  writer: the file, else -1
    FILE *file;                         //  reader: the file, or NULL (memory)
    uint8_t *buffer;                    //  reader: bytes read, not yet consumed
    size_t capacity;                    //  reader: buffer size
    size_t length;                      //  reader: valid bytes in buffer
    size_t offset;                      //  reader: start of the next record
    bool eof;                           //  reader: nothing more to read
    size_t max_body;                    //  reader: largest body accepted
    size_t max_record;                  //  reader: largest record accepted
    char error [256];                   //  reader: why the last next failed
    lh_lhrec_info_t info;               //  header record
};


//  --------------------------------------------------------------------------
//  Set *error_p to a formatted sentence (if error_p is not NULL)

static void
s_set_error (char **error_p, const char *format, ...) CHECK_PRINTF (2);

static void
s_set_error (char **error_p, const char *format, ...)
{
    if (!error_p)
        return;
    va_list args;
    va_start (args, format);
    if (vasprintf (error_p, format, args) == -1)
        *error_p = NULL;
    va_end (args);
}


//  --------------------------------------------------------------------------
//  Allocate an empty instance

static lh_lhrec_t *
s_new (void)
{
    lh_lhrec_t *self = (lh_lhrec_t *) zmalloc (sizeof (lh_lhrec_t));
    assert (self);
    self->fd = -1;
    return self;
}


//  --------------------------------------------------------------------------
//  Write all of a buffer to fd, retrying short writes and EINTR

static int
s_write_all (int fd, const void *data, size_t size)
{
    const uint8_t *ptr = (const uint8_t *) data;
    while (size > 0) {
        ssize_t done = write (fd, ptr, size);
        if (done < 0 && errno == EINTR)
            continue;
        if (done <= 0)
            return -1;
        ptr += done;
        size -= (size_t) done;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Pack a key and a string value, the string cut to its field

static void
s_pack_kv (lh_pack_t *pack, const char *key, const char *value)
{
    lh_pack_str (pack, key);
    lh_pack_str (pack, value);
}


//  --------------------------------------------------------------------------
//  Copy src into a fixed field of capacity bytes (NUL included)

static void
s_copy (char *field, size_t capacity, const char *src)
{
    snprintf (field, capacity, "%s", src? src: "");
}


//  --------------------------------------------------------------------------
//  Create a recording and write its header record

lh_lhrec_t *
lh_lhrec_create (const char *path, const lh_lhrec_info_t *info, char **error_p)
{
    assert (path);
    assert (info);
    lh_lhrec_t *self = s_new ();
    self->info = *info;
    self->info.version = LH_LHREC_VERSION;
    if (!self->info.tool [0])
        s_copy (self->info.tool, sizeof self->info.tool, "bustap");
    if (!self->info.start_us)
        self->info.start_us = (uint64_t) zclock_time () * 1000;
    self->fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (self->fd == -1) {
        s_set_error (error_p, "cannot create '%s': %s", path, strerror (errno));
        lh_lhrec_destroy (&self);
        return NULL;
    }
    lh_lhrec_info_t *head = &self->info;
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 7);
    s_pack_kv (pack, "format", LH_LHREC_FORMAT);
    lh_pack_kv_uint (pack, "version", head->version);
    s_pack_kv (pack, "broker", head->broker);
    lh_pack_kv_uint (pack, "start_us", head->start_us);
    s_pack_kv (pack, "tap", head->tap);
    s_pack_kv (pack, "tool", head->tool);
    lh_pack_str (pack, "filters");
    lh_pack_map (pack, 4);
    s_pack_kv (pack, "service", head->service);
    s_pack_kv (pack, "op", head->op);
    s_pack_kv (pack, "trace", head->trace);
    s_pack_kv (pack, "status", head->status);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    int rc = s_write_all (self->fd, data, size);
    lh_pack_destroy (&pack);
    if (rc) {
        s_set_error (error_p, "cannot write '%s': %s", path, strerror (errno));
        lh_lhrec_destroy (&self);
    }
    return self;
}


//  --------------------------------------------------------------------------
//  Append one tap record with one write

int
lh_lhrec_write (lh_lhrec_t *self, uint64_t rx_us, const char *topic,
                const void *header, size_t header_size,
                const void *body, size_t body_size)
{
    assert (self);
    assert (self->fd != -1);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_array (pack, 4);
    lh_pack_uint (pack, rx_us);
    lh_pack_str (pack, topic? topic: "");
    lh_pack_bin (pack, header, header_size);
    if (body)
        lh_pack_bin (pack, body, body_size);
    else
        lh_pack_nil (pack);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    int rc = s_write_all (self->fd, data, size);
    lh_pack_destroy (&pack);
    return rc;
}


//  --------------------------------------------------------------------------
//  Read a bin object (bin8/16/32) into a borrowed pointer and size

static int
s_reader_bin (lh_reader_t *reader, const uint8_t **data, size_t *size)
{
    size_t left = lh_reader_left (reader);
    if (left < 1)
        return -1;
    uint8_t tag = reader->ptr [0];
    size_t width = tag == 0xc4? 1: tag == 0xc5? 2: tag == 0xc6? 4: 0;
    if (!width)
        return -2;
    if (left < 1 + width)
        return -1;
    size_t length = 0;
    for (size_t index = 0; index < width; index++)
        length = (length << 8) | reader->ptr [1 + index];
    if (length > left - 1 - width)
        return -1;
    *data = reader->ptr + 1 + width;
    *size = length;
    reader->ptr += 1 + width + length;
    return 0;
}


//  --------------------------------------------------------------------------
//  Read a str object into a fixed field; longer than the field or holding
//  a NUL: malformed

static int
s_reader_field (lh_reader_t *reader, char *field, size_t capacity)
{
    const char *str;
    uint32_t size;
    int rc = lh_reader_str (reader, &str, &size);
    if (rc)
        return rc;
    if (size >= capacity || memchr (str, 0, size))
        return -2;
    memcpy (field, str, size);
    field [size] = 0;
    return 0;
}


//  --------------------------------------------------------------------------
//  Is the reader looking at a nil

static bool
s_reader_nil (lh_reader_t *reader)
{
    if (lh_reader_left (reader) >= 1 && reader->ptr [0] == 0xc0) {
        reader->ptr++;
        return true;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  Parse the filters map of the header record

static int
s_parse_filters (lh_lhrec_t *self, lh_reader_t *reader)
{
    uint32_t count;
    int rc = lh_reader_map (reader, &count);
    for (uint32_t index = 0; rc == 0 && index < count; index++) {
        char key [32];
        rc = s_reader_field (reader, key, sizeof key);
        if (rc)
            break;
        lh_lhrec_info_t *info = &self->info;
        if (streq (key, "service"))
            rc = s_reader_field (reader, info->service, sizeof info->service);
        else
        if (streq (key, "op"))
            rc = s_reader_field (reader, info->op, sizeof info->op);
        else
        if (streq (key, "trace"))
            rc = s_reader_field (reader, info->trace, sizeof info->trace);
        else
        if (streq (key, "status"))
            rc = s_reader_field (reader, info->status, sizeof info->status);
        else
            rc = lh_reader_skip (reader, S_SKIP_DEPTH);
    }
    return rc;
}


//  --------------------------------------------------------------------------
//  Parse the header record (one whole object in data/size). Returns 0 or
//  -2 with self->error set.

static int
s_parse_info (lh_lhrec_t *self, const uint8_t *data, size_t size)
{
    lh_reader_t reader;
    lh_reader_init (&reader, data, size);
    uint32_t count;
    if (lh_reader_map (&reader, &count)) {
        snprintf (self->error, sizeof self->error, "not a recording: the first record is not a map");
        return -2;
    }
    bool format = false;
    int rc = 0;
    lh_lhrec_info_t *info = &self->info;
    for (uint32_t index = 0; rc == 0 && index < count; index++) {
        char key [32];
        rc = s_reader_field (&reader, key, sizeof key);
        if (rc)
            break;
        if (streq (key, "format")) {
            char value [32];
            rc = s_reader_field (&reader, value, sizeof value);
            format = rc == 0 && streq (value, LH_LHREC_FORMAT);
        }
        else
        if (streq (key, "version")) {
            uint64_t version;
            rc = lh_reader_uint (&reader, &version);
            if (rc == 0 && (version == 0 || version > LH_LHREC_VERSION)) {
                snprintf (self->error, sizeof self->error,
                          "recording format version %" PRIu64 " is newer than this tool reads (%d)",
                          version, LH_LHREC_VERSION);
                return -2;
            }
            info->version = (uint32_t) version;
        }
        else
        if (streq (key, "broker"))
            rc = s_reader_field (&reader, info->broker, sizeof info->broker);
        else
        if (streq (key, "start_us"))
            rc = lh_reader_uint (&reader, &info->start_us);
        else
        if (streq (key, "tap"))
            rc = s_reader_field (&reader, info->tap, sizeof info->tap);
        else
        if (streq (key, "tool"))
            rc = s_reader_field (&reader, info->tool, sizeof info->tool);
        else
        if (streq (key, "filters"))
            rc = s_parse_filters (self, &reader);
        else
            rc = lh_reader_skip (&reader, S_SKIP_DEPTH);
    }
    if (rc || !format || info->version == 0) {
        snprintf (self->error, sizeof self->error,
                  "not a recording: the header record needs format \"lhrec\" and a version");
        return -2;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Read more of the file into the buffer, keeping unconsumed bytes. Sets
//  eof when nothing more comes.

static void
s_fill (lh_lhrec_t *self)
{
    if (!self->file) {
        self->eof = true;
        return;
    }
    if (self->offset > 0) {
        memmove (self->buffer, self->buffer + self->offset, self->length - self->offset);
        self->length -= self->offset;
        self->offset = 0;
    }
    if (self->length == self->capacity) {
        size_t capacity = self->capacity? self->capacity * 2: S_READ_CHUNK;
        if (capacity > self->max_record + S_READ_CHUNK)
            capacity = self->max_record + S_READ_CHUNK;
        if (capacity <= self->capacity) {
            self->eof = true;
            return;
        }
        uint8_t *buffer = (uint8_t *) realloc (self->buffer, capacity);
        assert (buffer);
        self->buffer = buffer;
        self->capacity = capacity;
    }
    size_t got = fread (self->buffer + self->length, 1, self->capacity - self->length, self->file);
    if (got == 0)
        self->eof = true;
    self->length += got;
}


//  --------------------------------------------------------------------------
//  Find the next whole object in the buffer, reading more as needed.
//  Returns 1 with *data/*size set, 0 at a clean end, -1 truncated, -2
//  malformed or too large (self->error says which).

static int
s_next_object (lh_lhrec_t *self, const uint8_t **data, size_t *size)
{
    while (true) {
        size_t left = self->length - self->offset;
        if (left == 0 && self->eof)
            return 0;
        lh_reader_t reader;
        lh_reader_init (&reader, self->buffer + self->offset, left);
        int rc = left? lh_reader_skip (&reader, S_SKIP_DEPTH): -1;
        if (rc == 0) {
            *data = self->buffer + self->offset;
            *size = (size_t) (reader.ptr - *data);
            if (*size > self->max_record) {
                snprintf (self->error, sizeof self->error,
                          "a record of %zu bytes is larger than the %zu allowed", *size, self->max_record);
                return -2;
            }
            self->offset += *size;
            return 1;
        }
        if (rc == -2) {
            snprintf (self->error, sizeof self->error, "malformed msgpack at byte offset %zu of the record stream",
                      self->offset);
            return -2;
        }
        if (left > self->max_record) {
            snprintf (self->error, sizeof self->error,
                      "a record larger than the %zu bytes allowed", self->max_record);
            return -2;
        }
        if (self->eof) {
            snprintf (self->error, sizeof self->error,
                      "the last record is truncated (%zu bytes): the recorder stopped while writing it", left);
            return -1;
        }
        s_fill (self);
    }
}


//  --------------------------------------------------------------------------
//  Finish opening: read the header record

static lh_lhrec_t *
s_open_finish (lh_lhrec_t *self, const char *name, char **error_p)
{
    const uint8_t *data;
    size_t size;
    int rc = s_next_object (self, &data, &size);
    if (rc == 1)
        rc = s_parse_info (self, data, size) == 0? 1: -2;
    if (rc != 1) {
        s_set_error (error_p, "%s: %s", name,
                     rc == 0? "empty file, not a recording": self->error);
        lh_lhrec_destroy (&self);
    }
    return self;
}


//  --------------------------------------------------------------------------
//  Set the record limits from max_body

static void
s_set_limits (lh_lhrec_t *self, size_t max_body)
{
    self->max_body = max_body? max_body: S_DEFAULT_MAX_BODY;
    self->max_record = self->max_body + S_RECORD_OVERHEAD;
}


//  --------------------------------------------------------------------------
//  Open a recording file for reading

lh_lhrec_t *
lh_lhrec_open (const char *path, size_t max_body, char **error_p)
{
    assert (path);
    lh_lhrec_t *self = s_new ();
    s_set_limits (self, max_body);
    self->file = fopen (path, "rbe");
    if (!self->file) {
        s_set_error (error_p, "cannot open '%s': %s", path, strerror (errno));
        lh_lhrec_destroy (&self);
        return NULL;
    }
    return s_open_finish (self, path, error_p);
}


//  --------------------------------------------------------------------------
//  Open a recording held in memory (copied)

lh_lhrec_t *
lh_lhrec_open_buffer (const void *data, size_t size, size_t max_body, char **error_p)
{
    lh_lhrec_t *self = s_new ();
    s_set_limits (self, max_body);
    self->buffer = (uint8_t *) malloc (size? size: 1);
    assert (self->buffer);
    if (size)
        memcpy (self->buffer, data, size);
    self->capacity = self->length = size;
    self->eof = true;
    return s_open_finish (self, "recording", error_p);
}


//  --------------------------------------------------------------------------
//  Close a recording

void
lh_lhrec_destroy (lh_lhrec_t **self_p)
{
    assert (self_p);
    lh_lhrec_t *self = *self_p;
    if (!self)
        return;
    if (self->fd != -1)
        close (self->fd);
    if (self->file)
        fclose (self->file);
    free (self->buffer);
    free (self);
    *self_p = NULL;
}


//  --------------------------------------------------------------------------
//  Header record

const lh_lhrec_info_t *
lh_lhrec_info (lh_lhrec_t *self)
{
    assert (self);
    return &self->info;
}


//  --------------------------------------------------------------------------
//  Read the next tap record

int
lh_lhrec_next (lh_lhrec_t *self, lh_lhrec_record_t *record)
{
    assert (self);
    assert (record);
    assert (self->fd == -1);
    const uint8_t *data;
    size_t size;
    int rc = s_next_object (self, &data, &size);
    if (rc != 1)
        return rc;
    memset (record, 0, sizeof *record);
    lh_reader_t reader;
    lh_reader_init (&reader, data, size);
    uint32_t count;
    rc = lh_reader_array (&reader, &count);
    if (rc || count < 4) {
        snprintf (self->error, sizeof self->error, "a record is not an array of 4 items");
        return -2;
    }
    rc = lh_reader_uint (&reader, &record->rx_us);
    if (rc == 0)
        rc = s_reader_field (&reader, record->topic, sizeof record->topic);
    if (rc == 0)
        rc = s_reader_bin (&reader, &record->header_data, &record->header_size);
    if (rc == 0 && !s_reader_nil (&reader))
        rc = s_reader_bin (&reader, &record->body, &record->body_size);
    for (uint32_t index = 4; rc == 0 && index < count; index++)
        rc = lh_reader_skip (&reader, S_SKIP_DEPTH);
    if (rc) {
        snprintf (self->error, sizeof self->error,
                  "a record is not [rx_us, topic, header (bin), body (bin or nil)]");
        return -2;
    }
    if (record->header_size > LH_HEADER_MAX
    ||  lh_header_decode (&record->header, record->header_data, record->header_size)) {
        snprintf (self->error, sizeof self->error, "a record's header frame is not an LHB/1 header");
        return -2;
    }
    record->rseq = lh_tap_rseq (record->header_data, record->header_size);
    if (record->body && record->body_size > self->max_body) {
        snprintf (self->error, sizeof self->error, "a record's body is larger than %zu bytes", self->max_body);
        return -2;
    }
    return 1;
}


//  --------------------------------------------------------------------------
//  Why the last lh_lhrec_next failed

const char *
lh_lhrec_error (lh_lhrec_t *self)
{
    assert (self);
    return self->error [0]? self->error: NULL;
}


//  --------------------------------------------------------------------------
//  Selftest

void
lh_lhrec_test (bool verbose)
{
    printf (" * lh_lhrec: ");
    char path [256];
    snprintf (path, sizeof path, "/tmp/lh_lhrec_test_%d.lhrec", (int) getpid ());

    //  Write a header and three records: REQ with body, REP, REP without body
    lh_lhrec_info_t info = { .broker = "testbroker", .tap = "tcp://127.0.0.1:5571" };
    s_copy (info.service, sizeof info.service, "echo");
    s_copy (info.status, sizeof info.status, "5xx");
    char *error = NULL;
    lh_lhrec_t *rec = lh_lhrec_create (path, &info, &error);
    assert (rec);
    assert (lh_lhrec_info (rec)->version == LH_LHREC_VERSION);
    assert (streq (lh_lhrec_info (rec)->tool, "bustap"));
    assert (lh_lhrec_info (rec)->start_us > 0);
    uint8_t hbuf [LH_HEADER_MAX];
    lh_header_t header;
    lh_header_init (&header, LH_T_REQ);
    header.has |= LH_H_T | LH_H_ID | LH_H_BSEQ;
    header.id = 7;
    header.bseq = 41;
    lh_header_set_str (&header, LH_H_SVC, "echo");
    lh_header_set_str (&header, LH_H_OP, "echo");
    int hsize = lh_header_encode (&header, hbuf, sizeof hbuf);
    assert (hsize > 0);
    uint8_t body [300];
    for (size_t index = 0; index < sizeof body; index++)
        body [index] = (uint8_t) index;
    body [0] = 0xc5;                    //  bin16 of 297 bytes: a valid object
    body [1] = 0x01;
    body [2] = 0x29;
    assert (lh_lhrec_write (rec, 1000, "echo.echo", hbuf, (size_t) hsize, body, sizeof body) == 0);
    lh_header_init (&header, LH_T_REP);
    header.has |= LH_H_T | LH_H_CID | LH_H_ST | LH_H_BSEQ;
    header.cid = 7;
    header.st = 200;
    header.bseq = 42;
    hsize = lh_header_encode (&header, hbuf, sizeof hbuf);
    assert (lh_lhrec_write (rec, 2000, "echo.echo", hbuf, (size_t) hsize, body, 3) == 0);
    assert (lh_lhrec_write (rec, 3000, "echo.echo", hbuf, (size_t) hsize, NULL, 0) == 0);
    lh_lhrec_destroy (&rec);
    assert (rec == NULL);

    //  Read it back
    rec = lh_lhrec_open (path, 0, &error);
    assert (rec);
    const lh_lhrec_info_t *got = lh_lhrec_info (rec);
    assert (streq (got->broker, "testbroker"));
    assert (streq (got->service, "echo"));
    assert (streq (got->status, "5xx"));
    assert (streq (got->tap, "tcp://127.0.0.1:5571"));
    lh_lhrec_record_t record;
    assert (lh_lhrec_next (rec, &record) == 1);
    assert (record.rx_us == 1000);
    assert (streq (record.topic, "echo.echo"));
    assert (record.header.t == LH_T_REQ && record.header.id == 7 && record.header.bseq == 41);
    assert (record.body_size == sizeof body && memcmp (record.body, body, sizeof body) == 0);
    assert (lh_lhrec_next (rec, &record) == 1);
    assert (record.header.t == LH_T_REP && record.header.cid == 7 && record.body_size == 3);
    assert (lh_lhrec_next (rec, &record) == 1);
    assert (record.rx_us == 3000 && record.body == NULL);
    assert (lh_lhrec_next (rec, &record) == 0);
    lh_lhrec_destroy (&rec);

    //  A crash mid-record: every cut of the file either reads as a shorter
    //  clean recording or reports the truncated last record, never crashes
    zfile_t *file = zfile_new (NULL, path);
    assert (file);
    assert (zfile_input (file) == 0);
    size_t size = (size_t) zfile_cursize (file);
    zchunk_t *chunk = zfile_read (file, size, 0);
    zfile_destroy (&file);
    assert (chunk && zchunk_size (chunk) == size);
    const uint8_t *bytes = zchunk_data (chunk);
    size_t truncated = 0;
    for (size_t cut = 0; cut <= size; cut++) {
        rec = lh_lhrec_open_buffer (bytes, cut, 0, &error);
        if (!rec) {
            assert (error);
            zstr_free (&error);
            continue;
        }
        int rc;
        size_t records = 0;
        while ((rc = lh_lhrec_next (rec, &record)) == 1)
            records++;
        assert (rc == 0 || rc == -1);
        if (rc == -1) {
            assert (lh_lhrec_error (rec));
            truncated++;
        }
        lh_lhrec_destroy (&rec);
    }
    assert (truncated > 0);

    //  Flipped bytes: always a clean answer
    uint8_t *copy = (uint8_t *) malloc (size);
    assert (copy);
    for (size_t at = 0; at < size; at += 3) {
        memcpy (copy, bytes, size);
        copy [at] ^= 0xff;
        rec = lh_lhrec_open_buffer (copy, size, 0, &error);
        if (!rec) {
            zstr_free (&error);
            continue;
        }
        int rc;
        while ((rc = lh_lhrec_next (rec, &record)) == 1)
            ;
        assert (rc == 0 || rc == -1 || rc == -2);
        lh_lhrec_destroy (&rec);
    }
    free (copy);
    zchunk_destroy (&chunk);

    //  Not a recording; a newer version; a body over the limit
    const uint8_t junk [] = { 0x81, 0xa1, 'a', 0x01 };
    rec = lh_lhrec_open_buffer (junk, sizeof junk, 0, &error);
    assert (rec == NULL && error && strstr (error, "not a recording"));
    zstr_free (&error);
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 2);
    lh_pack_kv_str (pack, "format", "lhrec");
    lh_pack_kv_uint (pack, "version", 99);
    size_t packed;
    const void *data = lh_pack_data (pack, &packed);
    rec = lh_lhrec_open_buffer (data, packed, 0, &error);
    assert (rec == NULL && error && strstr (error, "newer"));
    zstr_free (&error);
    lh_pack_destroy (&pack);
    rec = lh_lhrec_open (path, 100, &error);
    assert (rec);
    assert (lh_lhrec_next (rec, &record) == -2);
    assert (strstr (lh_lhrec_error (rec), "larger"));
    lh_lhrec_destroy (&rec);

    rec = lh_lhrec_open ("/nonexistent/dir/x.lhrec", 0, &error);
    assert (rec == NULL && error);
    zstr_free (&error);
    rec = lh_lhrec_create ("/nonexistent/dir/x.lhrec", &info, &error);
    assert (rec == NULL && error);
    zstr_free (&error);

    unlink (path);
    printf ("OK\n");
}
