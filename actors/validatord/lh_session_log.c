/*  =========================================================================
    lh_session_log - the session log: one JSONL row per iterate call; see
    lh_session_log.h
    =========================================================================
*/

#include "lh_session_log.h"
#include "lh_log.h"
#include <pthread.h>
#include <stdatomic.h>

struct _lh_session_log_t {
    char *path;                         //  file, NULL when off
    atomic_uint_fast64_t failures;      //  appends that failed
};


//  --------------------------------------------------------------------------
//  Create a session log writing to path; NULL or "" is off

lh_session_log_t *
lh_session_log_new (const char *path)
{
    lh_session_log_t *self = (lh_session_log_t *) zmalloc (sizeof (lh_session_log_t));
    assert (self);
    self->path = path && *path? strdup (path): NULL;
    atomic_init (&self->failures, 0);
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy; nulls the caller's pointer

void
lh_session_log_destroy (lh_session_log_t **self_p)
{
    assert (self_p);
    lh_session_log_t *self = *self_p;
    if (self) {
        free (self->path);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Is the log on?

bool
lh_session_log_enabled (lh_session_log_t *self)
{
    assert (self);
    return self->path != NULL;
}


//  --------------------------------------------------------------------------
//  The file path, or "" when off

const char *
lh_session_log_path (lh_session_log_t *self)
{
    assert (self);
    return self->path? self->path: "";
}


//  --------------------------------------------------------------------------
//  Append a row as one line with one write(2). The file is opened for each
//  row, so a log rotated away (renamed) is recreated at once.

int
lh_session_log_append (lh_session_log_t *self, json_t *row, const char *trace)
{
    assert (self);
    if (!self->path)
        return 0;
    char *text = json_dumps (row, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text) {
        atomic_fetch_add (&self->failures, 1);
        lh_error ("validatord", trace, "session log: row could not be encoded");
        return -1;
    }
    size_t size = strlen (text);
    text = (char *) realloc (text, size + 2);
    assert (text);
    text [size++] = '\n';
    text [size] = 0;

    int rc = -1;
    int fd = open (self->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        lh_error ("validatord", trace, "session log %s: cannot open: %s",
                  self->path, strerror (errno));
    else {
        ssize_t written;
        do
            written = write (fd, text, size);
        while (written < 0 && errno == EINTR);
        if (written == (ssize_t) size)
            rc = 0;
        else
        if (written < 0)
            lh_error ("validatord", trace, "session log %s: write failed: %s",
                      self->path, strerror (errno));
        else
            lh_error ("validatord", trace, "session log %s: short write (%zd of %zu bytes)",
                      self->path, written, size);
        close (fd);
    }
    if (rc)
        atomic_fetch_add (&self->failures, 1);
    free (text);
    return rc;
}


//  --------------------------------------------------------------------------
//  Appends that failed since the log was created

uint64_t
lh_session_log_failures (lh_session_log_t *self)
{
    assert (self);
    return atomic_load (&self->failures);
}


//  --------------------------------------------------------------------------
//  Current time as RFC 3339 UTC with microseconds

void
lh_session_log_timestamp (char *buffer, size_t size)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    struct tm utc;
    gmtime_r (&now.tv_sec, &utc);
    char seconds [32];
    strftime (seconds, sizeof (seconds), "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf (buffer, size, "%s.%06ldZ", seconds, now.tv_nsec / 1000);
}


//  --------------------------------------------------------------------------
//  Self test of this class

#define S_THREADS   8
#define S_ROWS      100

typedef struct {
    lh_session_log_t *log;              //  shared log
    int thread;                         //  thread index
} s_writer_t;

//  A writer thread of the test: S_ROWS rows of about 6 KB

static void *
s_writer (void *args)
{
    s_writer_t *writer = (s_writer_t *) args;
    //  Rows of about 6 KB, more than PIPE_BUF, so interleaving would show
    char *padding = (char *) malloc (6000);
    assert (padding);
    memset (padding, 'a' + writer->thread, 5999);
    padding [5999] = 0;
    for (int index = 0; index < S_ROWS; index++) {
        json_t *row = json_pack ("{s:s,s:i,s:i,s:s}", "schema", LH_SESSION_SCHEMA,
                                 "thread", writer->thread, "row", index, "pad", padding);
        int rc = lh_session_log_append (writer->log, row, NULL);
        assert (rc == 0);
        json_decref (row);
    }
    free (padding);
    return NULL;
}

void
lh_session_log_test (bool verbose)
{
    printf (" * lh_session_log: ");
    char dir [] = "/tmp/lh-session-XXXXXX";
    assert (mkdtemp (dir));
    char *path = zsys_sprintf ("%s/sessions.jsonl", dir);

    //  Off: nothing written, never an error
    lh_session_log_t *log = lh_session_log_new ("");
    assert (!lh_session_log_enabled (log));
    assert (streq (lh_session_log_path (log), ""));
    json_t *row = json_pack ("{s:s}", "schema", LH_SESSION_SCHEMA);
    assert (lh_session_log_append (log, row, NULL) == 0);
    lh_session_log_destroy (&log);
    assert (log == NULL);

    //  A path that cannot be opened: -1, counted, logged, nothing else
    log = lh_session_log_new ("/nonexistent-dir/sessions.jsonl");
    assert (lh_session_log_enabled (log));
    assert (lh_session_log_append (log, row, "0123456789abcdef0123456789abcdef") == -1);
    assert (lh_session_log_failures (log) == 1);
    lh_session_log_destroy (&log);
    json_decref (row);

    //  Concurrent appends never interleave: every line parses, every row once
    log = lh_session_log_new (path);
    pthread_t threads [S_THREADS];
    s_writer_t writers [S_THREADS];
    for (int index = 0; index < S_THREADS; index++) {
        writers [index].log = log;
        writers [index].thread = index;
        pthread_create (&threads [index], NULL, s_writer, &writers [index]);
    }
    for (int index = 0; index < S_THREADS; index++)
        pthread_join (threads [index], NULL);
    assert (lh_session_log_failures (log) == 0);
    lh_session_log_destroy (&log);

    FILE *file = fopen (path, "r");
    assert (file);
    int seen [S_THREADS][S_ROWS] = { { 0 } };
    char *line = NULL;
    size_t capacity = 0;
    int lines = 0;
    while (getline (&line, &capacity, file) > 0) {
        json_error_t error;
        json_t *parsed = json_loads (line, 0, &error);
        assert (parsed);
        int thread = (int) json_integer_value (json_object_get (parsed, "thread"));
        int index = (int) json_integer_value (json_object_get (parsed, "row"));
        const char *pad = json_string_value (json_object_get (parsed, "pad"));
        assert (thread >= 0 && thread < S_THREADS && index >= 0 && index < S_ROWS);
        assert (pad && strlen (pad) == 5999 && pad [0] == 'a' + thread && pad [5998] == 'a' + thread);
        seen [thread][index]++;
        lines++;
        json_decref (parsed);
    }
    free (line);
    fclose (file);
    assert (lines == S_THREADS * S_ROWS);
    for (int thread = 0; thread < S_THREADS; thread++)
        for (int index = 0; index < S_ROWS; index++)
            assert (seen [thread][index] == 1);

    //  Timestamps: RFC 3339 UTC with microseconds
    char stamp [32];
    lh_session_log_timestamp (stamp, sizeof (stamp));
    assert (strlen (stamp) == 27 && stamp [10] == 'T' && stamp [19] == '.' && stamp [26] == 'Z');
    if (verbose)
        printf ("(%s) ", stamp);

    unlink (path);
    rmdir (dir);
    zstr_free (&path);
    printf ("OK\n");
}
