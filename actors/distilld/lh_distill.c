/*  =========================================================================
    lh_distill - distilld's stages over a knowledge-base root; see
    lh_distill.h and docs/distilld.md

    A worker running a stage heartbeats the broker from the line reader
    every 256 lines (lh_keepalive), so no batch size makes it look dead.

    Memory stays bounded whatever the input: sources are read one line at
    a time (at most line_max bytes), one row is decoded at a time, the
    dedupe index and the working sets of score and export live in SQLite
    files under ROOT/state with a small page cache, and at most
    S_FILES_OPEN evidence files are open at once.
    =========================================================================
*/

#include "lh_distill.h"
#include "lh_canon.h"
#include "lh_actor.h"
#include <sqlite3.h>
#include <sodium.h>
#include <sys/file.h>

#define S_FILES_OPEN        16          //  evidence files held open at once
#define S_ANSWER_KEEP       1500        //  characters of an exemplar in a prompt
#define S_STEP_KEEP         300         //  characters of a validation step
#define S_CACHE_KIB         "-2048"     //  SQLite page cache, KiB (negative: KiB)
#define S_JSON_FLAGS        (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)

struct _lh_distill_t {
    char *root;                         //  knowledge-base root
    char *eval_set;                     //  evaluation set, relative to root
    int64_t schema_version;             //  expected schema_version
    size_t line_max;                    //  longest line read
    int64_t batch_rows;                 //  rows per commit / progress
    int64_t warn_pct;                   //  drift warn threshold
    int64_t alert_pct;                  //  drift alert threshold
};

//  A bounded line reader
typedef struct {
    FILE *file;                         //  the file read
    char *buffer;                       //  one line, NUL-terminated
    size_t max;                         //  longest line kept
    uint64_t lines;                     //  lines read so far
} s_reader_t;

//  An evidence file held open
typedef struct {
    char key [64];                      //  "YYYY-MM-DD/SOURCE", "" = free
    FILE *file;                         //  open for append
    uint64_t used;                      //  last use, for eviction
} s_open_t;

//  Counters of one source (or the total) in a materialize receipt
typedef struct {
    bool present;                       //  the source file exists
    uint64_t read;                      //  rows read (non-blank lines)
    uint64_t written;                   //  evidence records written
    uint64_t deduped;                   //  rows seen before (same sig_hash)
    uint64_t no_timestamp;              //  skipped: no timestamp field
    uint64_t bad_timestamp;             //  skipped: timestamp does not parse
    uint64_t malformed;                 //  skipped: not a JSON object
    uint64_t too_long;                  //  skipped: over line_max
} s_counts_t;


//  --------------------------------------------------------------------------
//  Fill an error; returns -1

static int
s_fail (lh_distill_error_t *error, uint32_t status, const char *kind,
        const char *format, ...) CHECK_PRINTF (4);

static int
s_fail (lh_distill_error_t *error, uint32_t status, const char *kind, const char *format, ...)
{
    error->status = status;
    snprintf (error->kind, sizeof (error->kind), "%s", kind);
    error->field [0] = 0;
    va_list argptr;
    va_start (argptr, format);
    vsnprintf (error->reason, sizeof (error->reason), format, argptr);
    va_end (argptr);
    return -1;
}

//  The same, naming the argument at fault
static int
s_fail_field (lh_distill_error_t *error, const char *field, const char *reason)
{
    s_fail (error, 400, "bad_field", "%s", reason);
    snprintf (error->field, sizeof (error->field), "%s", field);
    return -1;
}


//  --------------------------------------------------------------------------
//  A path under the root (caller frees)

static char *
s_path (lh_distill_t *self, const char *format, ...) CHECK_PRINTF (2);

static char *
s_path (lh_distill_t *self, const char *format, ...)
{
    va_list argptr;
    va_start (argptr, format);
    char *relative = zsys_vprintf (format, argptr);
    va_end (argptr);
    char *path = zsys_sprintf ("%s/%s", self->root, relative);
    zstr_free (&relative);
    return path;
}


//  --------------------------------------------------------------------------
//  Now as RFC 3339 UTC, seconds (receipts only; never in evidence)

static void
s_now (char *buffer, size_t size)
{
    time_t now = time (NULL);
    struct tm tm;
    gmtime_r (&now, &tm);
    strftime (buffer, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}


//  --------------------------------------------------------------------------
//  Create the stages

lh_distill_t *
lh_distill_new (const lh_distill_opts_t *opts)
{
    assert (opts && opts->root && *opts->root);
    lh_distill_t *self = (lh_distill_t *) zmalloc (sizeof (lh_distill_t));
    assert (self);
    self->root = strdup (opts->root);
    size_t size = strlen (self->root);
    while (size > 1 && self->root [size - 1] == '/')
        self->root [--size] = 0;
    self->eval_set = strdup (opts->eval_set? opts->eval_set: "eval/tasks.jsonl");
    self->schema_version = opts->schema_version? opts->schema_version: 1;
    self->line_max = opts->line_max > 0? (size_t) opts->line_max: 1 << 20;
    self->batch_rows = opts->batch_rows > 0? opts->batch_rows: 10000;
    self->warn_pct = opts->warn_pct;
    self->alert_pct = opts->alert_pct;
    zsys_dir_create ("%s/state", self->root);
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy

void
lh_distill_destroy (lh_distill_t **self_p)
{
    assert (self_p);
    lh_distill_t *self = *self_p;
    if (self) {
        free (self->root);
        free (self->eval_set);
        free (self);
        *self_p = NULL;
    }
}

//  The root directory
const char *
lh_distill_root (lh_distill_t *self)
{
    assert (self);
    return self->root;
}


//  --------------------------------------------------------------------------
//  Take ROOT/state/lock for a writing stage. Returns the lock's file
//  descriptor, or -1 (busy, or no root). flock locks belong to the open
//  file, so two workers of this process exclude each other too.

static int
s_lock (lh_distill_t *self, lh_distill_error_t *error)
{
    if (zsys_dir_create ("%s/state", self->root))
        return s_fail (error, 500, "root_unwritable", "cannot create %s/state: %s "
                       "(check distilld/root)", self->root, strerror (errno));
    char *path = s_path (self, "state/lock");
    int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        s_fail (error, 500, "root_unwritable", "cannot open %s: %s", path, strerror (errno));
    else
    if (flock (fd, LOCK_EX | LOCK_NB)) {
        close (fd);
        fd = s_fail (error, 503, "busy", "another distilld stage is writing under %s; "
                     "try again when it is done", self->root);
    }
    zstr_free (&path);
    return fd;
}

//  Release the lock
static void
s_unlock (int fd)
{
    if (fd >= 0) {
        flock (fd, LOCK_UN);
        close (fd);
    }
}


//  --------------------------------------------------------------------------
//  Open a bounded line reader on path; NULL (errno set) if it cannot

static s_reader_t *
s_reader_new (const char *path, size_t max)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return NULL;
    s_reader_t *self = (s_reader_t *) zmalloc (sizeof (s_reader_t));
    assert (self);
    self->file = file;
    self->max = max < INT_MAX - 16? max: INT_MAX - 16;     //  fgets takes an int
    self->buffer = (char *) malloc (max + 2);
    assert (self->buffer);
    return self;
}

//  Close a reader; nulls the caller's pointer
static void
s_reader_destroy (s_reader_t **self_p)
{
    s_reader_t *self = *self_p;
    if (self) {
        fclose (self->file);
        free (self->buffer);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  The next line without its end (LF or CRLF). Returns 1 with *size, or 0
//  at the end. A line longer than max is passed over and reported with
//  *too_long (its bytes are not kept).

static int
s_reader_next (s_reader_t *self, size_t *size, bool *too_long)
{
    *too_long = false;
    if (!fgets (self->buffer, (int) self->max + 2, self->file))
        return 0;
    //  Every stage reads through here: keep a worker's session alive
    //  whatever the batch size (cheap when no heartbeat is due)
    if ((++self->lines & 255) == 0)
        lh_keepalive ();
    size_t used = strlen (self->buffer);
    if (used > 0 && self->buffer [used - 1] == '\n')
        used--;
    else
    if (!feof (self->file)) {
        //  No end of line within max + 1 bytes: pass over the rest
        *too_long = true;
        int c;
        while ((c = getc (self->file)) != EOF && c != '\n')
            ;
        self->buffer [0] = 0;
        *size = 0;
        return 1;
    }
    if (used > 0 && self->buffer [used - 1] == '\r')
        used--;
    if (used > self->max) {
        *too_long = true;
        used = 0;
    }
    self->buffer [used] = 0;
    *size = used;
    return 1;
}


//  --------------------------------------------------------------------------
//  Is a line blank?

static bool
s_blank (const char *text, size_t size)
{
    for (size_t index = 0; index < size; index++)
        if (!isspace ((unsigned char) text [index]))
            return false;
    return true;
}


//  --------------------------------------------------------------------------
//  Write bytes to ROOT/relative whole: temp file, fsync, rename

static int
s_write_file (lh_distill_t *self, const char *relative, const char *data, size_t size,
              lh_distill_error_t *error)
{
    char *path = s_path (self, "%s", relative);
    char *tmp = zsys_sprintf ("%s.tmp", path);
    char *slash = strrchr (path, '/');
    *slash = 0;
    zsys_dir_create ("%s", path);
    *slash = '/';
    int rc = 0;
    FILE *file = fopen (tmp, "w");
    if (!file
    ||  fwrite (data, 1, size, file) != size
    ||  fflush (file) || fsync (fileno (file))) {
        rc = s_fail (error, 500, "write_failed", "cannot write %s: %s", tmp, strerror (errno));
        if (file)
            fclose (file);
        unlink (tmp);
    }
    else {
        fclose (file);
        if (rename (tmp, path))
            rc = s_fail (error, 500, "write_failed", "cannot rename %s: %s", tmp, strerror (errno));
    }
    zstr_free (&tmp);
    zstr_free (&path);
    return rc;
}

//  Write a JSON value as one canonical line
static int
s_write_json (lh_distill_t *self, const char *relative, const json_t *value,
              lh_distill_error_t *error)
{
    size_t size;
    char *text = lh_canon_text (value, &size);
    assert (text);
    text = (char *) realloc (text, size + 2);
    text [size++] = '\n';
    text [size] = 0;
    int rc = s_write_file (self, relative, text, size, error);
    free (text);
    return rc;
}


//  --------------------------------------------------------------------------
//  Read a JSON object from ROOT/relative; NULL if absent or not an object

static json_t *
s_read_json (lh_distill_t *self, const char *relative)
{
    char *path = s_path (self, "%s", relative);
    json_t *value = json_load_file (path, S_JSON_FLAGS, NULL);
    zstr_free (&path);
    if (value && !json_is_object (value)) {
        json_decref (value);
        value = NULL;
    }
    return value;
}


//  --------------------------------------------------------------------------
//  Is text a valid run id?

bool
lh_distill_run_id_valid (const char *text)
{
    size_t size = text? strlen (text): 0;
    if (size == 0 || size > LH_DISTILL_RUN_ID_MAX || text [0] == '.')
        return false;
    for (size_t index = 0; index < size; index++)
        if (!isalnum ((unsigned char) text [index]) && !strchr ("._-", text [index]))
            return false;
    return true;
}


//  --------------------------------------------------------------------------
//  Call fn for each run in runs.jsonl, oldest first, until it returns
//  true. Returns the run id it stopped at (caller frees), or NULL.

typedef bool (s_run_fn) (lh_distill_t *self, const char *run_id, void *arg);

static char *
s_runs_each (lh_distill_t *self, s_run_fn *fn, void *arg)
{
    char *path = s_path (self, "reports/distillation/runs.jsonl");
    s_reader_t *reader = s_reader_new (path, 4096);
    zstr_free (&path);
    char *found = NULL;
    size_t size;
    bool too_long;
    while (reader && !found && s_reader_next (reader, &size, &too_long)) {
        json_t *line = too_long? NULL: json_loadb (reader->buffer, size, S_JSON_FLAGS, NULL);
        const char *run_id = json_string_value (json_object_get (line, "run_id"));
        if (lh_distill_run_id_valid (run_id) && fn (self, run_id, arg))
            found = strdup (run_id);
        json_decref (line);
    }
    s_reader_destroy (&reader);
    return found;
}

//  Is this the run we look for?
static bool
s_run_is (lh_distill_t *self, const char *run_id, void *arg)
{
    return streq (run_id, (const char *) arg);
}

//  Does the run have a score receipt?
static bool
s_run_scored (lh_distill_t *self, const char *run_id)
{
    char *path = s_path (self, "reports/distillation/%s/score.json", run_id);
    bool scored = zsys_file_exists (path);
    zstr_free (&path);
    return scored;
}

//  Remember the latest scored run seen (arg: char ** holding it)
static bool
s_run_track_scored (lh_distill_t *self, const char *run_id, void *arg)
{
    char **latest = (char **) arg;
    if (s_run_scored (self, run_id)) {
        free (*latest);
        *latest = strdup (run_id);
    }
    return false;
}

//  The scored run before a given one (arg: {before, latest})
typedef struct {
    const char *before;                 //  stop at this run
    char *latest;                       //  latest scored before it
} s_previous_t;

static bool
s_run_track_previous (lh_distill_t *self, const char *run_id, void *arg)
{
    s_previous_t *previous = (s_previous_t *) arg;
    if (streq (run_id, previous->before))
        return true;
    if (s_run_scored (self, run_id)) {
        free (previous->latest);
        previous->latest = strdup (run_id);
    }
    return false;
}


//  --------------------------------------------------------------------------
//  The run to write under: the given one (created if new) or a new one.
//  Fills run_id (LH_DISTILL_RUN_ID_MAX + 1 bytes). Returns 0 or -1.

static int
s_run_open (lh_distill_t *self, const char *wanted, char *run_id, lh_distill_error_t *error)
{
    if (wanted && !lh_distill_run_id_valid (wanted))
        return s_fail_field (error, "run_id", "'run_id' must be 1 to 64 characters of "
                             "A-Z a-z 0-9 . _ - and not start with '.'");
    if (wanted) {
        snprintf (run_id, LH_DISTILL_RUN_ID_MAX + 1, "%s", wanted);
        char *known = s_runs_each (self, s_run_is, (void *) wanted);
        bool exists = known != NULL;
        free (known);
        if (exists)
            return 0;
    }
    else {
        char stamp [32];
        time_t now = time (NULL);
        struct tm tm;
        gmtime_r (&now, &tm);
        strftime (stamp, sizeof (stamp), "%Y%m%dT%H%M%SZ", &tm);
        snprintf (run_id, LH_DISTILL_RUN_ID_MAX + 1, "%s-%06x", stamp,
                  (unsigned) randombytes_uniform (0x1000000));
    }
    if (zsys_dir_create ("%s/reports/distillation/%s", self->root, run_id))
        return s_fail (error, 500, "write_failed", "cannot create %s/reports/distillation/%s: %s",
                       self->root, run_id, strerror (errno));
    char created [32];
    s_now (created, sizeof (created));
    json_t *line = json_pack ("{s:s,s:s}", "run_id", run_id, "created_at", created);
    char *text = lh_canon_text (line, NULL);
    json_decref (line);
    char *path = s_path (self, "reports/distillation/runs.jsonl");
    int fd = open (path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    char *row = zsys_sprintf ("%s\n", text);
    int rc = 0;
    if (fd < 0 || write (fd, row, strlen (row)) != (ssize_t) strlen (row) || fsync (fd))
        rc = s_fail (error, 500, "write_failed", "cannot append to %s: %s", path, strerror (errno));
    if (fd >= 0)
        close (fd);
    zstr_free (&row);
    zstr_free (&path);
    free (text);
    return rc;
}


//  --------------------------------------------------------------------------
//  Store a stage's receipt under its run and in the run's summary

static int
s_receipt_store (lh_distill_t *self, const char *run_id, const char *stage, json_t *receipt,
                 lh_distill_error_t *error)
{
    char *relative = zsys_sprintf ("reports/distillation/%s/%s.json", run_id, stage);
    int rc = s_write_json (self, relative, receipt, error);
    zstr_free (&relative);
    if (rc)
        return rc;
    relative = zsys_sprintf ("reports/distillation/%s/summary.json", run_id);
    json_t *summary = s_read_json (self, relative);
    if (!summary)
        summary = json_pack ("{s:s,s:s,s:{}}", "schema", "distill_summary.v1",
                             "run_id", run_id, "stages");
    json_t *stages = json_object_get (summary, "stages");
    if (!json_is_object (stages)) {
        stages = json_object ();
        json_object_set_new (summary, "stages", stages);
    }
    json_object_set (stages, stage, receipt);
    char updated [32];
    s_now (updated, sizeof (updated));
    json_object_set_new (summary, "updated_at", json_string (updated));
    rc = s_write_json (self, relative, summary, error);
    json_decref (summary);
    zstr_free (&relative);
    return rc;
}


//  --------------------------------------------------------------------------
//  Open a SQLite working file under ROOT/state (fresh: removed first);
//  NULL with error

static sqlite3 *
s_db_open (lh_distill_t *self, const char *name, bool fresh, const char *schema,
           lh_distill_error_t *error)
{
    char *path = s_path (self, "state/%s", name);
    if (fresh) {
        unlink (path);
        char *journal = zsys_sprintf ("%s-journal", path);
        unlink (journal);
        zstr_free (&journal);
    }
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                                       | SQLITE_OPEN_NOMUTEX, NULL);
    char *problem = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_exec (db, "PRAGMA cache_size = " S_CACHE_KIB "; "
                               "PRAGMA synchronous = NORMAL;", NULL, NULL, &problem);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec (db, schema, NULL, NULL, &problem);
    if (rc != SQLITE_OK) {
        s_fail (error, 500, "index_failed", "%s: %s", path,
                problem? problem: db? sqlite3_errmsg (db): sqlite3_errstr (rc));
        sqlite3_free (problem);
        sqlite3_close (db);
        db = NULL;
    }
    zstr_free (&path);
    return db;
}

//  Run one statement without results; 0 or -1 with error
static int
s_db_exec (sqlite3 *db, const char *sql, lh_distill_error_t *error)
{
    char *problem = NULL;
    if (sqlite3_exec (db, sql, NULL, NULL, &problem) == SQLITE_OK)
        return 0;
    s_fail (error, 500, "index_failed", "%s: %s", sql, problem? problem: sqlite3_errmsg (db));
    sqlite3_free (problem);
    return -1;
}


//  ==========================================================================
//  materialize
//  ==========================================================================

//  One materialize run in progress
typedef struct {
    lh_distill_t *kb;                   //  the stages
    const lh_distill_args_t *args;      //  the caller's arguments
    lh_distill_error_t *error;          //  where a failure goes
    sqlite3 *db;                        //  the dedupe index
    sqlite3_stmt *insert;               //  INSERT OR IGNORE (source, sig)
    s_open_t open [S_FILES_OPEN];       //  evidence files open
    uint64_t uses;                      //  use counter for eviction
    zhashx_t *unsynced;                 //  paths closed since the last commit,
                                        //  to fsync at the commit
    s_counts_t counts [LH_DISTILL_SOURCES];
    s_counts_t total;                   //  read and written, for progress
    int64_t batch;                      //  rows since the last commit
} s_materialize_t;


//  --------------------------------------------------------------------------
//  The path of an evidence file from its key "YYYY-MM-DD/SOURCE" (caller
//  frees)

static char *
s_evidence_path (lh_distill_t *kb, const char *key)
{
    return s_path (kb, "evidence/%.4s/%.2s/%.2s/%s.jsonl", key, key + 5, key + 8, key + 11);
}


//  --------------------------------------------------------------------------
//  Make data durable: fsync an open evidence file

static int
s_open_sync (s_materialize_t *self, s_open_t *entry)
{
    if (fflush (entry->file) || fdatasync (fileno (entry->file)))
        return s_fail (self->error, 500, "write_failed", "cannot write evidence %s: %s",
                       entry->key, strerror (errno));
    return 0;
}

//  Close an open evidence file; it is fsynced at the next commit, so rows
//  that move between many days cost one fsync per file per batch, not
//  one per row
static int
s_open_close (s_materialize_t *self, s_open_t *entry)
{
    int rc = 0;
    if (entry->file) {
        if (fflush (entry->file))
            rc = s_fail (self->error, 500, "write_failed", "cannot write evidence %s: %s",
                         entry->key, strerror (errno));
        fclose (entry->file);
        zhashx_update (self->unsynced, entry->key, (void *) "");
    }
    entry->file = NULL;
    entry->key [0] = 0;
    return rc;
}

//  fsync every evidence file written since the last commit
static int
s_sync_all (s_materialize_t *self)
{
    for (size_t index = 0; index < S_FILES_OPEN; index++)
        if (self->open [index].file && s_open_sync (self, &self->open [index]))
            return -1;
    int rc = 0;
    for (void *item = zhashx_first (self->unsynced); item && rc == 0;
         item = zhashx_next (self->unsynced)) {
        const char *key = (const char *) zhashx_cursor (self->unsynced);
        char *path = s_evidence_path (self->kb, key);
        lh_keepalive ();
        int fd = open (path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fdatasync (fd))
            rc = s_fail (self->error, 500, "write_failed", "cannot sync %s: %s", path,
                         strerror (errno));
        if (fd >= 0)
            close (fd);
        zstr_free (&path);
    }
    zhashx_purge (self->unsynced);
    return rc;
}


//  --------------------------------------------------------------------------
//  Append one record line to evidence/YYYY/MM/DD/SOURCE.jsonl

static int
s_evidence_append (s_materialize_t *self, const char *day, const char *source,
                   const char *text, size_t size)
{
    char key [64];
    snprintf (key, sizeof (key), "%s/%s", day, source);
    s_open_t *entry = NULL, *oldest = &self->open [0];
    for (size_t index = 0; index < S_FILES_OPEN && !entry; index++) {
        if (self->open [index].file && streq (self->open [index].key, key))
            entry = &self->open [index];
        else
        if (!self->open [index].file || self->open [index].used < oldest->used)
            oldest = &self->open [index];
    }
    if (!entry) {
        entry = oldest;
        if (s_open_close (self, entry))
            return -1;
        //  day is YYYY-MM-DD: the directory is YYYY/MM/DD
        char *dir = s_path (self->kb, "evidence/%.4s/%.2s/%.2s", day, day + 5, day + 8);
        char *path = s_evidence_path (self->kb, key);
        if (zsys_dir_create ("%s", dir) == 0)
            entry->file = fopen (path, "a");
        int rc = entry->file? 0: s_fail (self->error, 500, "write_failed", "cannot open %s: %s",
                                          path, strerror (errno));
        zstr_free (&path);
        zstr_free (&dir);
        if (rc)
            return rc;
        snprintf (entry->key, sizeof (entry->key), "%s", key);
    }
    entry->used = ++self->uses;
    if (fwrite (text, 1, size, entry->file) != size || fputc ('\n', entry->file) == EOF)
        return s_fail (self->error, 500, "write_failed", "cannot write evidence %s: %s",
                       key, strerror (errno));
    return 0;
}


//  --------------------------------------------------------------------------
//  A progress report; returns what the callback says (0 go on, -1 stop)

static int
s_progress (const lh_distill_args_t *args, const char *stage, const char *phase,
            const char *source, uint64_t read, uint64_t written)
{
    if (!args->progress)
        return 0;
    json_t *progress = json_pack ("{s:s,s:s,s:I,s:I}", "stage", stage, "phase", phase,
                                  "read", (json_int_t) read, "written", (json_int_t) written);
    if (source)
        json_object_set_new (progress, "source", json_string (source));
    int rc = args->progress (args->progress_arg, progress);
    json_decref (progress);
    return rc;
}

//  The refusal when the progress callback says the deadline passed
static int
s_stopped (lh_distill_error_t *error, const char *stage, uint64_t rows)
{
    return s_fail (error, 504, "deadline", "%s stopped at the deadline after %" PRIu64 " rows; "
                   "run it again with a longer deadline%s", stage, rows,
                   streq (stage, "materialize")? " (rows already written are deduped)": "");
}


//  --------------------------------------------------------------------------
//  Commit a batch: evidence synced first, then the index that names it

static int
s_batch_commit (s_materialize_t *self, const char *source)
{
    if (s_sync_all (self))
        return -1;
    if (s_db_exec (self->db, "COMMIT; BEGIN", self->error))
        return -1;
    self->batch = 0;
    if (s_progress (self->args, "materialize", "write", source, self->total.read,
                    self->total.written))
        return s_stopped (self->error, "materialize", self->total.read);
    return 0;
}


//  --------------------------------------------------------------------------
//  Pass 1: every row's schema_version is ours. Returns 0, or -1 with the
//  refusal (nothing has been written yet).

static int
s_check_source (s_materialize_t *self, int source, uint64_t *checked)
{
    lh_distill_t *kb = self->kb;
    const char *name = lh_distill_sources [source];
    char *path = s_path (kb, "data/_kb/%s.jsonl", name);
    s_reader_t *reader = s_reader_new (path, kb->line_max);
    if (!reader && errno != ENOENT) {
        int rc = s_fail (self->error, 500, "read_failed", "cannot read %s: %s", path, strerror (errno));
        zstr_free (&path);
        return rc;
    }
    zstr_free (&path);
    int rc = 0;
    size_t size;
    bool too_long;
    while (reader && rc == 0 && s_reader_next (reader, &size, &too_long)) {
        if (too_long || s_blank (reader->buffer, size))
            continue;
        json_t *row = json_loadb (reader->buffer, size, S_JSON_FLAGS, NULL);
        json_t *version = json_object_get (row, "schema_version");
        if (version && !json_is_null (version)
        &&  !(json_is_integer (version) && json_integer_value (version) == kb->schema_version)) {
            char *found = json_dumps (version, JSON_ENCODE_ANY | JSON_COMPACT);
            rc = s_fail (self->error, 409, "schema_version_mismatch",
                         "data/_kb/%s.jsonl line %" PRIu64 " (line_offset %" PRIu64 ") has "
                         "schema_version %.40s; distilld reads schema_version %" PRId64
                         " (distilld/schema_version): nothing was written",
                         name, reader->lines, reader->lines - 1, found? found: "?",
                         kb->schema_version);
            free (found);
        }
        json_decref (row);
        if (rc == 0 && ++*checked % kb->batch_rows == 0
        &&  s_progress (self->args, "materialize", "check", name, *checked, 0))
            rc = s_stopped (self->error, "materialize", *checked);
    }
    s_reader_destroy (&reader);
    return rc;
}


//  --------------------------------------------------------------------------
//  Pass 2: one source's rows into evidence

static int
s_materialize_source (s_materialize_t *self, int source)
{
    lh_distill_t *kb = self->kb;
    const char *name = lh_distill_sources [source];
    s_counts_t *counts = &self->counts [source];
    char *path = s_path (kb, "data/_kb/%s.jsonl", name);
    s_reader_t *reader = s_reader_new (path, kb->line_max);
    if (!reader) {
        int rc = errno == ENOENT? 0: s_fail (self->error, 500, "read_failed", "cannot read %s: %s",
                                             path, strerror (errno));
        zstr_free (&path);
        return rc;
    }
    zstr_free (&path);
    counts->present = true;
    int rc = 0;
    size_t size;
    bool too_long;
    while (rc == 0 && s_reader_next (reader, &size, &too_long)) {
        uint64_t offset = reader->lines - 1;
        if (!too_long && s_blank (reader->buffer, size))
            continue;
        counts->read++;
        self->total.read++;
        json_t *row = too_long? NULL: json_loadb (reader->buffer, size, S_JSON_FLAGS, NULL);
        lh_distill_skip_t skip = LH_DISTILL_BAD_ROW;
        json_t *record = row? lh_distill_transform (row, name, offset, self->args->recorded_at, &skip): NULL;
        json_decref (row);
        if (!record) {
            uint64_t *reason = too_long? &counts->too_long:
                               skip == LH_DISTILL_NO_TIME? &counts->no_timestamp:
                               skip == LH_DISTILL_BAD_TIME? &counts->bad_timestamp: &counts->malformed;
            (*reason)++;
        }
        else {
            const char *sig = json_string_value (json_object_get (
                json_object_get (record, "provenance"), "sig_hash"));
            sqlite3_reset (self->insert);
            sqlite3_bind_text (self->insert, 1, name, -1, SQLITE_STATIC);
            sqlite3_bind_text (self->insert, 2, sig, -1, SQLITE_TRANSIENT);
            if (sqlite3_step (self->insert) != SQLITE_DONE)
                rc = s_fail (self->error, 500, "index_failed", "evidence index: %s",
                             sqlite3_errmsg (self->db));
            else
            if (sqlite3_changes (self->db) == 0)
                counts->deduped++;
            else {
                size_t text_size;
                char *text = lh_canon_text (record, &text_size);
                assert (text);          //  the row had a canonical form
                rc = s_evidence_append (self, json_string_value (json_object_get (record, "day")),
                                        name, text, text_size);
                free (text);
                counts->written++;
                self->total.written++;
            }
            json_decref (record);
        }
        if (rc == 0 && ++self->batch >= kb->batch_rows)
            rc = s_batch_commit (self, name);
    }
    s_reader_destroy (&reader);
    return rc;
}


//  --------------------------------------------------------------------------
//  Counters as a receipt object

static json_t *
s_counts_json (const s_counts_t *counts)
{
    uint64_t skipped = counts->no_timestamp + counts->bad_timestamp + counts->malformed
                     + counts->too_long;
    return json_pack ("{s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:I}}",
        "read", (json_int_t) counts->read,
        "written", (json_int_t) counts->written,
        "skipped", (json_int_t) skipped,
        "deduped", (json_int_t) counts->deduped,
        "skipped_reasons",
            "no_timestamp", (json_int_t) counts->no_timestamp,
            "bad_timestamp", (json_int_t) counts->bad_timestamp,
            "malformed", (json_int_t) counts->malformed,
            "too_long", (json_int_t) counts->too_long);
}


//  --------------------------------------------------------------------------
//  materialize: the twelve sources into dated evidence records

json_t *
lh_distill_materialize (lh_distill_t *self, const lh_distill_args_t *args,
                        lh_distill_error_t *error)
{
    assert (self && args && error);
    int lock = s_lock (self, error);
    if (lock < 0)
        return NULL;
    s_materialize_t run;
    memset (&run, 0, sizeof (run));
    run.kb = self;
    run.args = args;
    run.error = error;
    run.unsynced = zhashx_new ();
    json_t *receipt = NULL;
    char started [32];
    s_now (started, sizeof (started));
    int64_t start = zclock_mono ();
    char run_id [LH_DISTILL_RUN_ID_MAX + 1];

    //  Pass 1 refuses a wrong schema_version before anything is written
    uint64_t checked = 0;
    int rc = 0;
    for (int source = 0; source < LH_DISTILL_SOURCES && rc == 0; source++)
        rc = s_check_source (&run, source, &checked);
    if (rc == 0)
        rc = s_run_open (self, args->run_id, run_id, error);
    if (rc == 0) {
        run.db = s_db_open (self, "evidence_index.sqlite", false,
                            "CREATE TABLE IF NOT EXISTS seen (source TEXT NOT NULL, sig TEXT NOT NULL, "
                            "PRIMARY KEY (source, sig)) WITHOUT ROWID; BEGIN", error);
        if (!run.db
        ||  sqlite3_prepare_v2 (run.db, "INSERT OR IGNORE INTO seen (source, sig) VALUES (?, ?)",
                                -1, &run.insert, NULL) != SQLITE_OK)
            rc = run.db? s_fail (error, 500, "index_failed", "evidence index: %s",
                                 sqlite3_errmsg (run.db)): -1;
    }
    for (int source = 0; source < LH_DISTILL_SOURCES && rc == 0; source++)
        rc = s_materialize_source (&run, source);
    //  Evidence durable first, then the index that says it was written
    if (rc == 0)
        rc = s_sync_all (&run);
    for (size_t index = 0; index < S_FILES_OPEN; index++)
        if (s_open_close (&run, &run.open [index]) && rc == 0)
            rc = -1;
    if (run.db) {
        sqlite3_finalize (run.insert);
        if (rc == 0)
            rc = s_db_exec (run.db, "COMMIT", error);
        else
            sqlite3_exec (run.db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close (run.db);
    }
    if (rc == 0) {
        char finished [32];
        s_now (finished, sizeof (finished));
        s_counts_t total = { .present = true };
        for (int source = 0; source < LH_DISTILL_SOURCES; source++) {
            const s_counts_t *counts = &run.counts [source];
            total.read += counts->read;
            total.written += counts->written;
            total.deduped += counts->deduped;
            total.no_timestamp += counts->no_timestamp;
            total.bad_timestamp += counts->bad_timestamp;
            total.malformed += counts->malformed;
            total.too_long += counts->too_long;
        }
        receipt = s_counts_json (&total);
        json_object_set_new (receipt, "stage", json_string ("materialize"));
        json_object_set_new (receipt, "run_id", json_string (run_id));
        json_object_set_new (receipt, "recorded_at", args->recorded_at?
                             json_string (args->recorded_at): json_null ());
        json_t *sources = json_object ();
        for (int source = 0; source < LH_DISTILL_SOURCES; source++) {
            json_t *counts = s_counts_json (&run.counts [source]);
            char *file = zsys_sprintf ("data/_kb/%s.jsonl", lh_distill_sources [source]);
            json_object_set_new (counts, "file", json_string (file));
            json_object_set_new (counts, "present", json_boolean (run.counts [source].present));
            zstr_free (&file);
            json_object_set_new (sources, lh_distill_sources [source], counts);
        }
        json_object_set_new (receipt, "sources", sources);
        json_object_set_new (receipt, "started_at", json_string (started));
        json_object_set_new (receipt, "finished_at", json_string (finished));
        json_object_set_new (receipt, "duration_ms", json_integer (zclock_mono () - start));
        if (s_receipt_store (self, run_id, "materialize", receipt, error)) {
            json_decref (receipt);
            receipt = NULL;
        }
    }
    zhashx_destroy (&run.unsynced);
    s_unlock (lock);
    return receipt;
}


//  ==========================================================================
//  Walking the evidence tree
//  ==========================================================================

//  --------------------------------------------------------------------------
//  Sorted names of the subdirectories of path made of `digits` digits

static zlistx_t *
s_dir_names (const char *path, size_t digits)
{
    zlistx_t *names = zlistx_new ();
    zlistx_set_destructor (names, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_comparator (names, (zlistx_comparator_fn *) strcmp);
    DIR *dir = opendir (path);
    struct dirent *entry;
    while (dir && (entry = readdir (dir))) {
        bool match = strlen (entry->d_name) == digits;
        for (size_t index = 0; match && index < digits; index++)
            match = isdigit ((unsigned char) entry->d_name [index]);
        if (match)
            zlistx_add_end (names, strdup (entry->d_name));
    }
    if (dir)
        closedir (dir);
    zlistx_sort (names);
    return names;
}


//  --------------------------------------------------------------------------
//  Evidence days ("YYYY-MM-DD") between since and until (NULL: open),
//  oldest first

static zlistx_t *
s_evidence_days (lh_distill_t *self, const char *since, const char *until)
{
    zlistx_t *days = zlistx_new ();
    zlistx_set_destructor (days, (zlistx_destructor_fn *) zstr_free);
    char *base = s_path (self, "evidence");
    zlistx_t *years = s_dir_names (base, 4);
    for (char *year = (char *) zlistx_first (years); year; year = (char *) zlistx_next (years)) {
        char *year_path = zsys_sprintf ("%s/%s", base, year);
        zlistx_t *months = s_dir_names (year_path, 2);
        for (char *month = (char *) zlistx_first (months); month;
             month = (char *) zlistx_next (months)) {
            char *month_path = zsys_sprintf ("%s/%s", year_path, month);
            zlistx_t *list = s_dir_names (month_path, 2);
            for (char *day = (char *) zlistx_first (list); day; day = (char *) zlistx_next (list)) {
                char *name = zsys_sprintf ("%s-%s-%s", year, month, day);
                if ((since && strcmp (name, since) < 0) || (until && strcmp (name, until) > 0))
                    zstr_free (&name);
                else
                    zlistx_add_end (days, name);
            }
            zlistx_destroy (&list);
            zstr_free (&month_path);
        }
        zlistx_destroy (&months);
        zstr_free (&year_path);
    }
    zlistx_destroy (&years);
    zstr_free (&base);
    return days;
}


//  --------------------------------------------------------------------------
//  Call fn for each evidence record of the sources in [first, last) over
//  the days, in order (day, then source). fn returns 0 to go on, -1 to
//  stop. Returns 0, or -1 when fn stopped. *malformed counts lines that
//  are not records.

typedef int (s_record_fn) (void *arg, const json_t *record, const char *file, uint64_t offset);

static int
s_evidence_each (lh_distill_t *self, zlistx_t *days, int first, int last,
                 s_record_fn *fn, void *arg, uint64_t *malformed)
{
    int rc = 0;
    for (const char *day = (const char *) zlistx_first (days); day && rc == 0;
         day = (const char *) zlistx_next (days)) {
        for (int source = first; source < last && rc == 0; source++) {
            char *relative = zsys_sprintf ("evidence/%.4s/%.2s/%.2s/%s.jsonl", day, day + 5,
                                           day + 8, lh_distill_sources [source]);
            char *path = s_path (self, "%s", relative);
            s_reader_t *reader = s_reader_new (path, self->line_max * 2 + 4096);
            size_t size;
            bool too_long;
            while (reader && rc == 0 && s_reader_next (reader, &size, &too_long)) {
                if (!too_long && s_blank (reader->buffer, size))
                    continue;
                json_t *record = too_long? NULL:
                                 json_loadb (reader->buffer, size, S_JSON_FLAGS, NULL);
                if (json_is_object (json_object_get (record, "row")))
                    rc = fn (arg, record, relative, reader->lines - 1);
                else
                    (*malformed)++;
                json_decref (record);
            }
            s_reader_destroy (&reader);
            zstr_free (&path);
            zstr_free (&relative);
        }
    }
    return rc;
}


//  ==========================================================================
//  score
//  ==========================================================================

//  One score run in progress
typedef struct {
    lh_distill_t *kb;                   //  the stages
    const lh_distill_args_t *args;      //  the caller's arguments
    lh_distill_error_t *error;          //  where a failure goes
    sqlite3 *db;                        //  known anchors
    sqlite3_stmt *insert;               //  add an anchor
    sqlite3_stmt *lookup;               //  look one up
    FILE *out;                          //  scored.jsonl being written
    uint64_t records;                   //  records read
    uint64_t unscored;                  //  not scorable
    uint64_t anchors;                   //  known anchors collected
    uint64_t counts [LH_DISTILL_CATEGORIES];
    double grounding_sum;               //  over scored records
    int rc;                             //  first failure
} s_score_t;


//  --------------------------------------------------------------------------
//  Add a known anchor

static void
s_anchor_add (void *arg, const char *anchor)
{
    s_score_t *self = (s_score_t *) arg;
    sqlite3_reset (self->insert);
    sqlite3_bind_text (self->insert, 1, anchor, -1, SQLITE_TRANSIENT);
    if (sqlite3_step (self->insert) == SQLITE_DONE && sqlite3_changes (self->db))
        self->anchors++;
}

//  Collect the anchors of a knowledge record
static int
s_anchor_collect (void *arg, const json_t *record, const char *file, uint64_t offset)
{
    s_score_t *self = (s_score_t *) arg;
    lh_distill_row_anchors (json_object_get (record, "row"), s_anchor_add, self);
    if (++self->records % self->kb->batch_rows == 0
    &&  s_progress (self->args, "score", "anchors", NULL, self->records, self->anchors))
        return s_stopped (self->error, "score", self->records);
    return 0;
}

//  Is an anchor known?
static bool
s_anchor_known (void *arg, const char *anchor)
{
    s_score_t *self = (s_score_t *) arg;
    sqlite3_reset (self->lookup);
    sqlite3_bind_text (self->lookup, 1, anchor, -1, SQLITE_TRANSIENT);
    return sqlite3_step (self->lookup) == SQLITE_ROW;
}


//  --------------------------------------------------------------------------
//  The run a row belongs to: run_id, session_id, trace_id, else sig_hash

static const char *
s_row_run (const json_t *record)
{
    json_t *row = json_object_get (record, "row");
    const char *fields [] = { "run_id", "session_id", "trace_id", NULL };
    for (const char **field = fields; *field; field++) {
        const char *text = json_string_value (json_object_get (row, *field));
        if (text && *text)
            return text;
    }
    return json_string_value (json_object_get (json_object_get (record, "provenance"), "sig_hash"));
}


//  --------------------------------------------------------------------------
//  Score one evidence record into scored.jsonl

static int
s_score_record (void *arg, const json_t *record, const char *file, uint64_t offset)
{
    s_score_t *self = (s_score_t *) arg;
    self->records++;
    const json_t *row = json_object_get (record, "row");
    lh_distill_score_t score;
    if (lh_distill_score_row (row, s_anchor_known, self, &score))
        self->unscored++;
    else {
        self->counts [score.category]++;
        self->grounding_sum += score.grounding;
        const char *answer = lh_distill_row_answer (row);
        json_t *provenance = json_object_get (record, "provenance");
        json_t *line = json_pack ("{s:s,s:O?,s:O?,s:O?,s:O?,s:O?,s:s?,s:s,s:f,s:I,s:I,s:s,s:{s:s,s:I}}",
            "schema", "scored.v1",
            "sig_hash", json_object_get (provenance, "sig_hash"),
            "source", json_object_get (record, "source"),
            "day", json_object_get (record, "day"),
            "task", json_object_get (record, "task"),
            "task_hash", json_object_get (record, "task_hash"),
            "run", s_row_run (record),
            "category", lh_distill_category_names [score.category],
            "anchor_grounding", score.grounding,
            "anchors", (json_int_t) score.anchors,
            "grounded", (json_int_t) score.grounded,
            "basis", score.basis,
            "evidence", "file", file, "line_offset", (json_int_t) offset);
        assert (line);
        json_object_set_new (line, "answer", answer? json_string (answer): json_null ());
        char *text = lh_canon_text (line, NULL);
        json_decref (line);
        if (!text || fprintf (self->out, "%s\n", text) < 0) {
            free (text);
            return s_fail (self->error, 500, "write_failed", "cannot write scored.jsonl: %s",
                           strerror (errno));
        }
        free (text);
    }
    if (self->records % self->kb->batch_rows == 0
    &&  s_progress (self->args, "score", "score", NULL, self->records,
                    self->records - self->unscored))
        return s_stopped (self->error, "score", self->records);
    return 0;
}


//  --------------------------------------------------------------------------
//  score: every evidence record of the days asked for, into categories

json_t *
lh_distill_score (lh_distill_t *self, const lh_distill_args_t *args, lh_distill_error_t *error)
{
    assert (self && args && error);
    if (args->since && !lh_distill_day_valid (args->since)) {
        s_fail_field (error, "since", "'since' must be a day, YYYY-MM-DD");
        return NULL;
    }
    if (args->until && !lh_distill_day_valid (args->until)) {
        s_fail_field (error, "until", "'until' must be a day, YYYY-MM-DD");
        return NULL;
    }
    if (args->run_id && !lh_distill_run_id_valid (args->run_id)) {
        s_fail_field (error, "run_id", "'run_id' must be 1 to 64 characters of "
                      "A-Z a-z 0-9 . _ - and not start with '.'");
        return NULL;
    }
    int lock = s_lock (self, error);
    if (lock < 0)
        return NULL;
    char started [32];
    s_now (started, sizeof (started));
    int64_t start = zclock_mono ();
    s_score_t run;
    memset (&run, 0, sizeof (run));
    run.kb = self;
    run.args = args;
    run.error = error;
    json_t *receipt = NULL;
    char run_id [LH_DISTILL_RUN_ID_MAX + 1];
    char *scored_path = NULL, *scored_tmp = NULL;
    zlistx_t *all_days = NULL, *days = NULL;
    uint64_t malformed = 0;

    if (s_run_open (self, args->run_id, run_id, error))
        goto done;
    run.db = s_db_open (self, "score.sqlite", true,
                        "CREATE TABLE anchors (anchor TEXT PRIMARY KEY) WITHOUT ROWID", error);
    if (!run.db)
        goto done;
    if (sqlite3_prepare_v2 (run.db, "INSERT OR IGNORE INTO anchors VALUES (?)", -1,
                            &run.insert, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (run.db, "SELECT 1 FROM anchors WHERE anchor = ?", -1,
                            &run.lookup, NULL) != SQLITE_OK) {
        s_fail (error, 500, "index_failed", "score anchors: %s", sqlite3_errmsg (run.db));
        goto done;
    }
    //  Known anchors come from every knowledge record, whatever its day
    all_days = s_evidence_days (self, NULL, NULL);
    if (s_db_exec (run.db, "BEGIN", error)
    ||  s_evidence_each (self, all_days, 0, LH_DISTILL_KNOWLEDGE, s_anchor_collect, &run,
                         &malformed)
    ||  s_db_exec (run.db, "COMMIT", error))
        goto done;
    run.records = 0;
    malformed = 0;
    scored_path = s_path (self, "reports/distillation/%s/scored.jsonl", run_id);
    scored_tmp = zsys_sprintf ("%s.tmp", scored_path);
    run.out = fopen (scored_tmp, "w");
    if (!run.out) {
        s_fail (error, 500, "write_failed", "cannot write %s: %s", scored_tmp, strerror (errno));
        goto done;
    }
    days = s_evidence_days (self, args->since, args->until);
    if (s_evidence_each (self, days, 0, LH_DISTILL_SOURCES, s_score_record, &run, &malformed))
        goto done;
    if (fflush (run.out) || fsync (fileno (run.out)) || rename (scored_tmp, scored_path)) {
        s_fail (error, 500, "write_failed", "cannot write %s: %s", scored_path, strerror (errno));
        goto done;
    }
    uint64_t scored = run.records - run.unscored;
    json_t *categories = json_object ();
    for (int index = 0; index < LH_DISTILL_CATEGORIES; index++)
        json_object_set_new (categories, lh_distill_category_names [index], json_pack ("{s:I,s:f}",
            "count", (json_int_t) run.counts [index],
            "share", scored? (double) run.counts [index] / scored: 0.0));
    char finished [32];
    s_now (finished, sizeof (finished));
    receipt = json_pack ("{s:s,s:s,s:s?,s:s?,s:I,s:I,s:I,s:I,s:I,s:o,s:{s:f},s:s,s:s,s:s,s:I}",
        "stage", "score",
        "run_id", run_id,
        "since", args->since,
        "until", args->until,
        "days", (json_int_t) zlistx_size (days),
        "records", (json_int_t) run.records,
        "scored", (json_int_t) scored,
        "unscored", (json_int_t) run.unscored,
        "malformed", (json_int_t) malformed,
        "categories", categories,
        "anchor_grounding", "mean", scored? run.grounding_sum / scored: 0.0,
        "scored_file", strstr (scored_path, "reports/distillation/"),
        "started_at", started,
        "finished_at", finished,
        "duration_ms", (json_int_t) (zclock_mono () - start));
    assert (receipt);
    json_object_set_new (receipt, "known_anchors", json_integer ((json_int_t) run.anchors));
    if (s_receipt_store (self, run_id, "score", receipt, error)) {
        json_decref (receipt);
        receipt = NULL;
    }
done:
    if (run.out)
        fclose (run.out);
    if (scored_tmp)
        unlink (scored_tmp);
    zstr_free (&scored_tmp);
    zstr_free (&scored_path);
    zlistx_destroy (&all_days);
    zlistx_destroy (&days);
    sqlite3_finalize (run.insert);
    sqlite3_finalize (run.lookup);
    if (run.db) {
        sqlite3_close (run.db);
        char *path = s_path (self, "state/score.sqlite");
        unlink (path);
        zstr_free (&path);
    }
    s_unlock (lock);
    return receipt;
}


//  ==========================================================================
//  Finding runs
//  ==========================================================================

//  --------------------------------------------------------------------------
//  The run a stage reads: the given one (it must exist and be scored) or
//  the latest scored one. Fills run_id. Returns 0 or -1.

static int
s_run_scored_pick (lh_distill_t *self, const char *wanted, char *run_id,
                   lh_distill_error_t *error)
{
    if (wanted) {
        if (!lh_distill_run_id_valid (wanted))
            return s_fail_field (error, "run_id", "'run_id' must be 1 to 64 characters of "
                                 "A-Z a-z 0-9 . _ - and not start with '.'");
        char *known = s_runs_each (self, s_run_is, (void *) wanted);
        bool exists = known != NULL;
        free (known);
        if (!exists)
            return s_fail (error, 404, "no_such_run", "there is no run '%s' under %s/reports/distillation",
                           wanted, self->root);
        if (!s_run_scored (self, wanted))
            return s_fail (error, 409, "not_scored", "run '%s' has not been scored: "
                           "run `score` with run_id '%s' first", wanted, wanted);
        snprintf (run_id, LH_DISTILL_RUN_ID_MAX + 1, "%s", wanted);
        return 0;
    }
    char *latest = NULL;
    s_runs_each (self, s_run_track_scored, &latest);
    if (!latest)
        return s_fail (error, 409, "not_scored", "no run has been scored under %s: "
                       "run `score` first", self->root);
    snprintf (run_id, LH_DISTILL_RUN_ID_MAX + 1, "%s", latest);
    free (latest);
    return 0;
}


//  ==========================================================================
//  export
//  ==========================================================================

//  One export's counters
typedef struct {
    const char *file;                   //  relative path
    FILE *out;                          //  temp file being written
    uint64_t written;                   //  lines written
    uint64_t held_back;                 //  stopped by the firewall
    uint64_t skipped;                   //  not eligible (no task or no text)
} s_export_t;


//  --------------------------------------------------------------------------
//  Load the evaluation set's task hashes. Returns 0 (*present false when
//  there is no file), or -1: a line that is not a task fails the export,
//  since a firewall that cannot read its list must not let anything by.

static int
s_eval_load (lh_distill_t *self, zhashx_t *hashes, bool *present, char **path_p,
             lh_distill_error_t *error)
{
    char *path = self->eval_set [0] == '/'? strdup (self->eval_set):
                 s_path (self, "%s", self->eval_set);
    *path_p = path;
    s_reader_t *reader = s_reader_new (path, self->line_max);
    *present = reader != NULL;
    if (!reader)
        return errno == ENOENT? 0: s_fail (error, 500, "read_failed",
                                           "cannot read the evaluation set %s: %s", path,
                                           strerror (errno));
    int rc = 0;
    size_t size;
    bool too_long;
    while (rc == 0 && s_reader_next (reader, &size, &too_long)) {
        if (!too_long && s_blank (reader->buffer, size))
            continue;
        json_t *line = too_long? NULL: json_loadb (reader->buffer, size,
                                                   S_JSON_FLAGS | JSON_DECODE_ANY, NULL);
        const char *task = json_is_string (line)? json_string_value (line):
                           json_string_value (json_object_get (line, "task"));
        const char *hash = json_string_value (json_object_get (line, "task_hash"));
        char hex [65];
        bool hex_ok = hash && strlen (hash) == 64;
        for (size_t index = 0; hex_ok && index < 64; index++)
            hex_ok = isxdigit ((unsigned char) hash [index]) && !isupper ((unsigned char) hash [index]);
        if (task && *task) {
            lh_distill_task_hash (task, hex);
            zhashx_update (hashes, hex, (void *) "task");
        }
        else
        if (hex_ok)
            zhashx_update (hashes, hash, (void *) "hash");
        else
            rc = s_fail (error, 422, "bad_eval_set", "the evaluation set %s line %" PRIu64 " is "
                         "neither a task string, {\"task\": TEXT} nor {\"task_hash\": 64 lowercase "
                         "hex}: no export was written", path, reader->lines);
        json_decref (line);
    }
    s_reader_destroy (&reader);
    return rc;
}


//  --------------------------------------------------------------------------
//  Write one canonical line to an export

static int
s_export_line (s_export_t *export, json_t *line, lh_distill_error_t *error)
{
    char *text = lh_canon_text (line, NULL);
    json_decref (line);
    int rc = 0;
    if (!text || fprintf (export->out, "%s\n", text) < 0)
        rc = s_fail (error, 500, "write_failed", "cannot write %s: %s", export->file, strerror (errno));
    else
        export->written++;
    free (text);
    return rc;
}


//  --------------------------------------------------------------------------
//  Pair chosen (accepted) and rejected answers of each task: for each
//  accepted answer in order (anchor_grounding, then scored order), the
//  first unused rejected one from another run with other text

#define S_PAIR_SIDE_MAX 1000            //  answers per side per task considered

typedef struct {
    char *sig;                          //  record id
    char *run;                          //  its run
    char *answer;                       //  its text
    bool used;                          //  paired already
} s_side_t;

//  Free one side's answers
static void
s_sides_free (s_side_t *sides, size_t count)
{
    for (size_t index = 0; index < count; index++) {
        free (sides [index].sig);
        free (sides [index].run);
        free (sides [index].answer);
    }
    free (sides);
}

//  One side's answers of a task, in the statement's order (at most
//  S_PAIR_SIDE_MAX)
static s_side_t *
s_sides_load (sqlite3_stmt *stmt, const char *task_hash, size_t *count)
{
    s_side_t *sides = (s_side_t *) calloc (S_PAIR_SIDE_MAX, sizeof (s_side_t));
    assert (sides);
    *count = 0;
    sqlite3_reset (stmt);
    sqlite3_bind_text (stmt, 1, task_hash, -1, SQLITE_TRANSIENT);
    while (*count < S_PAIR_SIDE_MAX && sqlite3_step (stmt) == SQLITE_ROW) {
        sides [*count].sig = strdup ((const char *) sqlite3_column_text (stmt, 0));
        sides [*count].run = strdup ((const char *) sqlite3_column_text (stmt, 1));
        sides [*count].answer = strdup ((const char *) sqlite3_column_text (stmt, 2));
        (*count)++;
    }
    return sides;
}

//  Write the pairs of every task that has both sides
static int
s_export_pairs (sqlite3 *db, s_export_t *export, lh_distill_error_t *error)
{
    sqlite3_stmt *tasks = NULL, *chosen = NULL, *rejected = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2 (db, "SELECT task_hash, min(task) FROM c GROUP BY task_hash "
                                "HAVING sum(category = 0) > 0 AND sum(category = 2) > 0 "
                                "ORDER BY task_hash", -1, &tasks, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (db, "SELECT sig, run, answer FROM c WHERE task_hash = ? AND category = 0 "
                                "ORDER BY grounding DESC, ord", -1, &chosen, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (db, "SELECT sig, run, answer FROM c WHERE task_hash = ? AND category = 2 "
                                "ORDER BY ord", -1, &rejected, NULL) != SQLITE_OK)
        rc = s_fail (error, 500, "index_failed", "preference pairs: %s", sqlite3_errmsg (db));
    while (rc == 0 && sqlite3_step (tasks) == SQLITE_ROW) {
        const char *task_hash = (const char *) sqlite3_column_text (tasks, 0);
        const char *task = (const char *) sqlite3_column_text (tasks, 1);
        lh_keepalive ();
        size_t chosen_count, rejected_count;
        s_side_t *good = s_sides_load (chosen, task_hash, &chosen_count);
        s_side_t *bad = s_sides_load (rejected, task_hash, &rejected_count);
        for (size_t one = 0; one < chosen_count && rc == 0; one++)
            for (size_t two = 0; two < rejected_count; two++) {
                if (bad [two].used || streq (good [one].run, bad [two].run)
                ||  streq (good [one].answer, bad [two].answer))
                    continue;
                bad [two].used = true;
                rc = s_export_line (export, json_pack ("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}",
                    "schema", "preference.v1",
                    "task_hash", task_hash,
                    "prompt", task,
                    "chosen", good [one].answer,
                    "rejected", bad [two].answer,
                    "chosen_id", good [one].sig,
                    "rejected_id", bad [two].sig,
                    "chosen_run", good [one].run,
                    "rejected_run", bad [two].run), error);
                break;
            }
        s_sides_free (good, chosen_count);
        s_sides_free (bad, rejected_count);
    }
    sqlite3_finalize (tasks);
    sqlite3_finalize (chosen);
    sqlite3_finalize (rejected);
    return rc;
}


//  --------------------------------------------------------------------------
//  An export's receipt part

static json_t *
s_export_json (const s_export_t *export)
{
    return json_pack ("{s:s,s:I,s:I,s:I}", "file", export->file,
                      "written", (json_int_t) export->written,
                      "held_back", (json_int_t) export->held_back,
                      "skipped", (json_int_t) export->skipped);
}


//  --------------------------------------------------------------------------
//  export: RAG, SFT and preference sets from a scored run, behind the
//  contamination firewall

json_t *
lh_distill_export (lh_distill_t *self, const lh_distill_args_t *args, lh_distill_error_t *error)
{
    assert (self && args && error);
    char run_id [LH_DISTILL_RUN_ID_MAX + 1];
    if (s_run_scored_pick (self, args->run_id, run_id, error))
        return NULL;
    int lock = s_lock (self, error);
    if (lock < 0)
        return NULL;
    char started [32];
    s_now (started, sizeof (started));
    int64_t start = zclock_mono ();
    json_t *receipt = NULL;
    zhashx_t *eval = zhashx_new ();
    bool eval_present = false;
    char *eval_path = NULL;
    s_reader_t *reader = NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *insert = NULL;
    s_export_t exports [3] = {
        { .file = "exports/rag/playbooks.jsonl" },
        { .file = "exports/sft/accepted.jsonl" },
        { .file = "exports/preference/pairs.jsonl" }
    };
    s_export_t *rag = &exports [0], *sft = &exports [1], *pref = &exports [2];
    uint64_t records = 0, candidates = 0;
    int rc = s_eval_load (self, eval, &eval_present, &eval_path, error);
    if (rc == 0) {
        char *path = s_path (self, "reports/distillation/%s/scored.jsonl", run_id);
        reader = s_reader_new (path, self->line_max * 2 + 4096);
        if (!reader)
            rc = s_fail (error, 409, "not_scored", "run '%s' has no scored.jsonl (%s): "
                         "score it again", run_id, strerror (errno));
        zstr_free (&path);
    }
    for (size_t index = 0; index < 3 && rc == 0; index++) {
        char *path = s_path (self, "%s.tmp", exports [index].file);
        char *slash = strrchr (path, '/');
        *slash = 0;
        zsys_dir_create ("%s", path);
        *slash = '/';
        exports [index].out = fopen (path, "w");
        if (!exports [index].out)
            rc = s_fail (error, 500, "write_failed", "cannot write %s: %s", path, strerror (errno));
        zstr_free (&path);
    }
    if (rc == 0) {
        db = s_db_open (self, "export.sqlite", true,
                        "CREATE TABLE c (ord INTEGER PRIMARY KEY, task_hash TEXT NOT NULL, "
                        "task TEXT NOT NULL, category INTEGER NOT NULL, run TEXT NOT NULL, "
                        "answer TEXT NOT NULL, grounding REAL NOT NULL, sig TEXT NOT NULL); "
                        "CREATE INDEX c_task ON c (task_hash, category); BEGIN", error);
        if (!db)
            rc = -1;
        else
        if (sqlite3_prepare_v2 (db, "INSERT INTO c (task_hash, task, category, run, answer, "
                                    "grounding, sig) VALUES (?, ?, ?, ?, ?, ?, ?)", -1,
                                &insert, NULL) != SQLITE_OK)
            rc = s_fail (error, 500, "index_failed", "export: %s", sqlite3_errmsg (db));
    }
    size_t size;
    bool too_long;
    while (rc == 0 && s_reader_next (reader, &size, &too_long)) {
        json_t *line = too_long? NULL: json_loadb (reader->buffer, size, S_JSON_FLAGS, NULL);
        if (!line)
            continue;
        records++;
        const char *task = json_string_value (json_object_get (line, "task"));
        const char *task_hash = json_string_value (json_object_get (line, "task_hash"));
        const char *answer = json_string_value (json_object_get (line, "answer"));
        const char *sig = json_string_value (json_object_get (line, "sig_hash"));
        const char *run = json_string_value (json_object_get (line, "run"));
        int category = -1;
        const char *name = json_string_value (json_object_get (line, "category"));
        for (int index = 0; name && index < LH_DISTILL_CATEGORIES; index++)
            if (streq (name, lh_distill_category_names [index]))
                category = index;
        bool usable = task && task_hash && answer && sig && run && category >= 0;
        //  The firewall: a task of the evaluation set reaches no export
        bool held = usable && zhashx_lookup (eval, task_hash) != NULL;
        if (!usable)
            rag->skipped++;
        else
        if (held)
            rag->held_back++;
        else
            rc = s_export_line (rag, json_pack ("{s:s,s:s,s:s,s:s,s:O,s:s,s:O,s:s,s:O,s:O}",
                "schema", "rag_playbook.v1",
                "id", sig,
                "task", task,
                "task_hash", task_hash,
                "category", json_object_get (line, "category"),
                "text", answer,
                "anchor_grounding", json_object_get (line, "anchor_grounding"),
                "run", run,
                "source", json_object_get (line, "source"),
                "day", json_object_get (line, "day")), error);
        if (rc == 0 && category == LH_DISTILL_ACCEPTED) {
            if (!usable)
                sft->skipped++;
            else
            if (held)
                sft->held_back++;
            else
                rc = s_export_line (sft, json_pack ("{s:s,s:s,s:s,s:[{s:s,s:s},{s:s,s:s}],s:s,s:O}",
                    "schema", "sft.v1",
                    "id", sig,
                    "task_hash", task_hash,
                    "messages", "role", "user", "content", task,
                                "role", "assistant", "content", answer,
                    "run", run,
                    "source", json_object_get (line, "source")), error);
        }
        if (rc == 0 && (category == LH_DISTILL_ACCEPTED || category == LH_DISTILL_REJECTED)) {
            if (!usable)
                pref->skipped++;
            else
            if (held)
                pref->held_back++;
            else {
                sqlite3_reset (insert);
                sqlite3_bind_text (insert, 1, task_hash, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text (insert, 2, task, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int (insert, 3, category);
                sqlite3_bind_text (insert, 4, run, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text (insert, 5, answer, -1, SQLITE_TRANSIENT);
                sqlite3_bind_double (insert, 6, json_number_value (json_object_get (line, "anchor_grounding")));
                sqlite3_bind_text (insert, 7, sig, -1, SQLITE_TRANSIENT);
                if (sqlite3_step (insert) != SQLITE_DONE)
                    rc = s_fail (error, 500, "index_failed", "export: %s", sqlite3_errmsg (db));
                candidates++;
            }
        }
        json_decref (line);
        if (rc == 0 && records % self->batch_rows == 0
        &&  s_progress (args, "export", "export", NULL, records, rag->written))
            rc = s_stopped (error, "export", records);
    }
    if (rc == 0)
        rc = s_db_exec (db, "COMMIT", error);
    if (rc == 0)
        rc = s_export_pairs (db, pref, error);
    //  Every export complete before any replaces the one before it
    for (size_t index = 0; index < 3; index++) {
        if (!exports [index].out)
            continue;
        if (rc == 0 && (fflush (exports [index].out) || fsync (fileno (exports [index].out))))
            rc = s_fail (error, 500, "write_failed", "cannot write %s: %s", exports [index].file,
                         strerror (errno));
        fclose (exports [index].out);
    }
    for (size_t index = 0; index < 3; index++) {
        char *path = s_path (self, "%s", exports [index].file);
        char *tmp = zsys_sprintf ("%s.tmp", path);
        if (rc == 0 && exports [index].out && rename (tmp, path))
            rc = s_fail (error, 500, "write_failed", "cannot rename %s: %s", tmp, strerror (errno));
        unlink (tmp);
        zstr_free (&tmp);
        zstr_free (&path);
    }
    if (rc == 0) {
        char finished [32];
        s_now (finished, sizeof (finished));
        json_t *preference = s_export_json (pref);
        json_object_set_new (preference, "candidates", json_integer ((json_int_t) candidates));
        receipt = json_pack ("{s:s,s:s,s:I,s:{s:s,s:b,s:I},s:o,s:o,s:o,s:s,s:s,s:I}",
            "stage", "export",
            "run_id", run_id,
            "records", (json_int_t) records,
            "eval_set", "file", eval_path, "present", eval_present,
                        "tasks", (json_int_t) zhashx_size (eval),
            "rag", s_export_json (rag),
            "sft", s_export_json (sft),
            "preference", preference,
            "started_at", started,
            "finished_at", finished,
            "duration_ms", (json_int_t) (zclock_mono () - start));
        assert (receipt);
        json_object_set_new (receipt, "held_back", json_integer (
            (json_int_t) (rag->held_back + sft->held_back + pref->held_back)));
        if (s_receipt_store (self, run_id, "export", receipt, error)) {
            json_decref (receipt);
            receipt = NULL;
        }
    }
    sqlite3_finalize (insert);
    if (db) {
        sqlite3_close (db);
        char *path = s_path (self, "state/export.sqlite");
        unlink (path);
        zstr_free (&path);
    }
    s_reader_destroy (&reader);
    zstr_free (&eval_path);
    zhashx_destroy (&eval);
    s_unlock (lock);
    return receipt;
}


//  ==========================================================================
//  drift
//  ==========================================================================

//  --------------------------------------------------------------------------
//  The category counts of a scored run; false if its receipt is unreadable

static bool
s_run_counts (lh_distill_t *self, const char *run_id, uint64_t *counts)
{
    char *relative = zsys_sprintf ("reports/distillation/%s/score.json", run_id);
    json_t *receipt = s_read_json (self, relative);
    zstr_free (&relative);
    json_t *categories = json_object_get (receipt, "categories");
    bool ok = json_is_object (categories);
    for (int index = 0; ok && index < LH_DISTILL_CATEGORIES; index++) {
        json_t *count = json_object_get (json_object_get (categories, lh_distill_category_names [index]),
                                         "count");
        ok = json_is_integer (count) && json_integer_value (count) >= 0;
        counts [index] = ok? (uint64_t) json_integer_value (count): 0;
    }
    json_decref (receipt);
    return ok;
}


//  --------------------------------------------------------------------------
//  drift: a run's category distribution against the previous scored run's

json_t *
lh_distill_drift (lh_distill_t *self, const lh_distill_args_t *args, lh_distill_error_t *error)
{
    assert (self && args && error);
    char run_id [LH_DISTILL_RUN_ID_MAX + 1];
    if (s_run_scored_pick (self, args->run_id, run_id, error))
        return NULL;
    int lock = s_lock (self, error);
    if (lock < 0)
        return NULL;
    json_t *receipt = NULL;
    uint64_t current [LH_DISTILL_CATEGORIES], previous [LH_DISTILL_CATEGORIES];
    s_previous_t before = { run_id, NULL };
    free (s_runs_each (self, s_run_track_previous, &before));
    if (!s_run_counts (self, run_id, current))
        s_fail (error, 500, "corrupt_receipt", "reports/distillation/%s/score.json has no category "
                "counts: score the run again", run_id);
    else
    if (before.latest && !s_run_counts (self, before.latest, previous))
        s_fail (error, 500, "corrupt_receipt", "reports/distillation/%s/score.json has no category "
                "counts: score that run again", before.latest);
    else {
        double swing [LH_DISTILL_CATEGORIES];
        lh_drift_status_t status [LH_DISTILL_CATEGORIES];
        lh_drift_status_t worst = LH_DRIFT_OK;
        if (before.latest)
            worst = lh_distill_drift_compare (previous, current, (double) self->warn_pct,
                                      (double) self->alert_pct, swing, status);
        uint64_t previous_total = 0, current_total = 0;
        for (int index = 0; index < LH_DISTILL_CATEGORIES; index++) {
            previous_total += before.latest? previous [index]: 0;
            current_total += current [index];
        }
        json_t *categories = json_object ();
        for (int index = 0; index < LH_DISTILL_CATEGORIES; index++) {
            json_t *category = json_pack ("{s:I,s:f}",
                "count", (json_int_t) current [index],
                "share_pct", current_total? 100.0 * current [index] / current_total: 0.0);
            if (before.latest) {
                json_object_set_new (category, "previous_count", json_integer ((json_int_t) previous [index]));
                json_object_set_new (category, "previous_share_pct", json_real (
                    previous_total? 100.0 * previous [index] / previous_total: 0.0));
                json_object_set_new (category, "swing_pct", json_real (swing [index]));
                json_object_set_new (category, "status", json_string (lh_drift_status_names [status [index]]));
            }
            json_object_set_new (categories, lh_distill_category_names [index], category);
        }
        char finished [32];
        s_now (finished, sizeof (finished));
        receipt = json_pack ("{s:s,s:s,s:s?,s:s,s:{s:I,s:I},s:o,s:s}",
            "stage", "drift",
            "run_id", run_id,
            "previous_run_id", before.latest,
            "status", before.latest? lh_drift_status_names [worst]: "baseline",
            "thresholds", "warn_pct", (json_int_t) self->warn_pct,
                          "alert_pct", (json_int_t) self->alert_pct,
            "categories", categories,
            "finished_at", finished);
        assert (receipt);
        if (!before.latest)
            json_object_set_new (receipt, "previous_run_id", json_null ());
        if (s_receipt_store (self, run_id, "drift", receipt, error)) {
            json_decref (receipt);
            receipt = NULL;
        }
    }
    free (before.latest);
    s_unlock (lock);
    return receipt;
}


//  ==========================================================================
//  runs and summaries
//  ==========================================================================

//  --------------------------------------------------------------------------
//  The runs, oldest first

json_t *
lh_distill_runs (lh_distill_t *self, lh_distill_error_t *error)
{
    assert (self);
    static const char *stages [] = { "materialize", "score", "export", "drift", NULL };
    json_t *runs = json_array ();
    char *path = s_path (self, "reports/distillation/runs.jsonl");
    s_reader_t *reader = s_reader_new (path, 4096);
    zstr_free (&path);
    size_t size;
    bool too_long;
    while (reader && s_reader_next (reader, &size, &too_long)) {
        json_t *line = too_long? NULL: json_loadb (reader->buffer, size, S_JSON_FLAGS, NULL);
        const char *run_id = json_string_value (json_object_get (line, "run_id"));
        if (lh_distill_run_id_valid (run_id)) {
            json_t *done = json_array ();
            for (const char **stage = stages; *stage; stage++) {
                char *receipt = s_path (self, "reports/distillation/%s/%s.json", run_id, *stage);
                if (zsys_file_exists (receipt))
                    json_array_append_new (done, json_string (*stage));
                zstr_free (&receipt);
            }
            json_array_append_new (runs, json_pack ("{s:s,s:O,s:o}", "run_id", run_id,
                "created_at", json_object_get (line, "created_at")? json_object_get (line, "created_at"):
                              json_null (),
                "stages", done));
        }
        json_decref (line);
    }
    s_reader_destroy (&reader);
    return json_pack ("{s:I,s:o}", "count", (json_int_t) json_array_size (runs), "runs", runs);
}


//  --------------------------------------------------------------------------
//  A run's summary

json_t *
lh_distill_summary (lh_distill_t *self, const char *run_id, lh_distill_error_t *error)
{
    assert (self && error);
    if (!lh_distill_run_id_valid (run_id)) {
        s_fail_field (error, "run_id", "'run_id' must be 1 to 64 characters of "
                      "A-Z a-z 0-9 . _ - and not start with '.'");
        return NULL;
    }
    char *relative = zsys_sprintf ("reports/distillation/%s/summary.json", run_id);
    json_t *summary = s_read_json (self, relative);
    zstr_free (&relative);
    if (!summary)
        s_fail (error, 404, "no_such_run", "there is no summary of run '%s' under "
                "%s/reports/distillation", run_id, self->root);
    return summary;
}


//  ==========================================================================
//  replay: retrieval and the prompt
//  ==========================================================================

//  One retrieved RAG record
typedef struct {
    double similarity;                  //  token Jaccard with the task
    json_t *record;                     //  the RAG line
} s_hit_t;


//  --------------------------------------------------------------------------
//  A copy of text cut to at most chars UTF-8 characters (caller frees)

static char *
s_cut (const char *text, size_t chars)
{
    const unsigned char *scan = (const unsigned char *) text;
    size_t count = 0;
    while (*scan) {
        if ((*scan & 0xC0) != 0x80) {
            if (count == chars)
                break;
            count++;
        }
        scan++;
    }
    return strndup (text, (const char *) scan - text);
}


//  --------------------------------------------------------------------------
//  Add a hit's validation steps to the list (unique, at most STEPS_MAX)

static void
s_steps_add (json_t *steps, const char *text)
{
    const char *line = text;
    while (line && *line && json_array_size (steps) < LH_DISTILL_STEPS_MAX) {
        const char *end = strchr (line, '\n');
        size_t size = end? (size_t) (end - line): strlen (line);
        size_t start;
        if (lh_distill_step_line (line, size, &start)) {
            size_t used = size;
            while (used > start && isspace ((unsigned char) line [used - 1]))
                used--;
            char *whole = strndup (line + start, used - start);
            char *step = s_cut (whole, S_STEP_KEEP);
            bool seen = false;
            for (size_t index = 0; index < json_array_size (steps) && !seen; index++)
                seen = streq (json_string_value (json_array_get (steps, index)), step);
            json_t *value = seen? NULL: json_string (step);
            if (value)
                json_array_append_new (steps, value);
            free (step);
            free (whole);
        }
        line = end? end + 1: NULL;
    }
}


//  --------------------------------------------------------------------------
//  Retrieval over the RAG export by token Jaccard of the tasks

json_t *
lh_distill_retrieve (lh_distill_t *self, const char *task)
{
    assert (self && task);
    lh_distill_tokens_t query = { NULL, 0 };
    lh_distill_tokens_add (&query, task);
    s_hit_t top [LH_DISTILL_TOP_K];
    size_t count = 0;
    char *path = s_path (self, "exports/rag/playbooks.jsonl");
    s_reader_t *reader = s_reader_new (path, self->line_max * 2 + 4096);
    zstr_free (&path);
    size_t size;
    bool too_long;
    while (reader && query.count && s_reader_next (reader, &size, &too_long)) {
        json_t *record = too_long? NULL: json_loadb (reader->buffer, size, S_JSON_FLAGS, NULL);
        const char *text = json_string_value (json_object_get (record, "task"));
        lh_distill_tokens_t tokens = { NULL, 0 };
        lh_distill_tokens_add (&tokens, text);
        double similarity = text? lh_distill_jaccard (&query, &tokens): 0;
        lh_distill_tokens_reset (&tokens);
        //  Best first; equal similarity keeps the export's order
        if (similarity > 0 && json_is_string (json_object_get (record, "text"))
        &&  (count < LH_DISTILL_TOP_K || similarity > top [count - 1].similarity)) {
            if (count == LH_DISTILL_TOP_K)
                json_decref (top [--count].record);
            size_t at = count;
            while (at > 0 && top [at - 1].similarity < similarity) {
                top [at] = top [at - 1];
                at--;
            }
            top [at].similarity = similarity;
            top [at].record = record;
            count++;
        }
        else
            json_decref (record);
    }
    s_reader_destroy (&reader);
    lh_distill_tokens_reset (&query);

    json_t *hits = json_array (), *exemplars = json_array (), *warnings = json_array ();
    json_t *steps = json_array ();
    for (size_t index = 0; index < count; index++) {
        json_t *record = top [index].record;
        const char *category = json_string_value (json_object_get (record, "category"));
        json_array_append_new (hits, json_pack ("{s:O,s:O,s:O,s:f}",
            "id", json_object_get (record, "id"), "task", json_object_get (record, "task"),
            "category", json_object_get (record, "category"), "similarity", top [index].similarity));
        json_t *use = json_pack ("{s:O,s:O,s:f}", "task", json_object_get (record, "task"),
                                 "answer", json_object_get (record, "text"),
                                 "similarity", top [index].similarity);
        if (category && streq (category, "accepted") && json_array_size (exemplars) < LH_DISTILL_EXEMPLARS)
            json_array_append (exemplars, use);
        else
        if (category && streq (category, "partially_accepted")
        &&  json_array_size (warnings) < LH_DISTILL_WARNINGS)
            json_array_append (warnings, use);
        json_decref (use);
        s_steps_add (steps, json_string_value (json_object_get (record, "text")));
        json_decref (record);
    }
    return json_pack ("{s:o,s:o,s:o,s:o}", "hits", hits, "exemplars", exemplars,
                      "warnings", warnings, "steps", steps);
}


//  --------------------------------------------------------------------------
//  Append the numbered task/answer pairs of a retrieval list

static void
s_prompt_list (zchunk_t *out, const json_t *list)
{
    for (size_t index = 0; index < json_array_size (list); index++) {
        json_t *item = json_array_get (list, index);
        char *answer = s_cut (json_string_value (json_object_get (item, "answer")), S_ANSWER_KEEP);
        char *text = zsys_sprintf ("%zu. Task: %s\n   Answer: %s\n", index + 1,
                                   json_string_value (json_object_get (item, "task")), answer);
        zchunk_extend (out, text, strlen (text));
        zstr_free (&text);
        free (answer);
    }
}


//  --------------------------------------------------------------------------
//  The replay prompt (caller frees)

char *
lh_distill_prompt (const char *task, const json_t *retrieval)
{
    zchunk_t *out = zchunk_new (NULL, 1024);
    const char *head = "Solve the task below from the lakehouse's history. Answer directly "
                       "and concretely: what to change, where, and how to confirm it worked.\n\n";
    zchunk_extend (out, head, strlen (head));
    char *text = zsys_sprintf ("Task: %s\n", task);
    zchunk_extend (out, text, strlen (text));
    zstr_free (&text);
    json_t *exemplars = json_object_get (retrieval, "exemplars");
    json_t *warnings = json_object_get (retrieval, "warnings");
    json_t *steps = json_object_get (retrieval, "steps");
    if (json_array_size (exemplars)) {
        const char *title = "\nAccepted answers to similar tasks (follow their approach):\n";
        zchunk_extend (out, title, strlen (title));
        s_prompt_list (out, exemplars);
    }
    if (json_array_size (warnings)) {
        const char *title = "\nPartially accepted answers to similar tasks (avoid their gaps):\n";
        zchunk_extend (out, title, strlen (title));
        s_prompt_list (out, warnings);
    }
    if (json_array_size (steps)) {
        const char *title = "\nYour answer must satisfy these validation steps:\n";
        zchunk_extend (out, title, strlen (title));
        for (size_t index = 0; index < json_array_size (steps); index++) {
            text = zsys_sprintf ("- %s\n", json_string_value (json_array_get (steps, index)));
            zchunk_extend (out, text, strlen (text));
            zstr_free (&text);
        }
    }
    const char *tail = "\nAnswer:\n";
    zchunk_extend (out, tail, strlen (tail) + 1);
    char *prompt = strdup ((const char *) zchunk_data (out));
    zchunk_destroy (&out);
    return prompt;
}


//  ==========================================================================
//  Self test
//  ==========================================================================

//  Write text to ROOT/relative
static void
s_test_write (const char *root, const char *relative, const char *text)
{
    char *path = zsys_sprintf ("%s/%s", root, relative);
    char *slash = strrchr (path, '/');
    *slash = 0;
    zsys_dir_create ("%s", path);
    *slash = '/';
    FILE *file = fopen (path, "w");
    assert (file);
    fputs (text, file);
    fclose (file);
    zstr_free (&path);
}

//  The whole of ROOT/relative (caller frees), or NULL
static char *
s_test_read (const char *root, const char *relative)
{
    char *path = zsys_sprintf ("%s/%s", root, relative);
    zfile_t *file = zfile_new (NULL, path);
    zstr_free (&path);
    char *text = NULL;
    if (file && zfile_input (file) == 0) {
        zchunk_t *chunk = zfile_read (file, zfile_cursize (file), 0);
        text = (char *) calloc (1, zchunk_size (chunk) + 1);
        memcpy (text, zchunk_data (chunk), zchunk_size (chunk));
        zchunk_destroy (&chunk);
    }
    zfile_destroy (&file);
    return text;
}

//  The digest of every evidence file's name and bytes, in order (caller
//  frees)
static char *
s_test_evidence (lh_distill_t *self)
{
    zlistx_t *days = s_evidence_days (self, NULL, NULL);
    zchunk_t *all = zchunk_new (NULL, 0);
    for (const char *day = (const char *) zlistx_first (days); day;
         day = (const char *) zlistx_next (days))
        for (int source = 0; source < LH_DISTILL_SOURCES; source++) {
            char *relative = zsys_sprintf ("evidence/%.4s/%.2s/%.2s/%s.jsonl", day, day + 5,
                                           day + 8, lh_distill_sources [source]);
            char *text = s_test_read (self->root, relative);
            if (text) {
                zchunk_extend (all, relative, strlen (relative) + 1);
                zchunk_extend (all, text, strlen (text));
            }
            free (text);
            zstr_free (&relative);
        }
    char hex [65];
    lh_canon_sha256_bytes (zchunk_data (all), zchunk_size (all), hex);
    zchunk_destroy (&all);
    zlistx_destroy (&days);
    return strdup (hex);
}

//  An integer of a receipt at a dotted path
static int64_t
s_test_int (const json_t *receipt, const char *path)
{
    char *copy = strdup (path);
    const json_t *value = receipt;
    for (char *part = strtok (copy, "."); part; part = strtok (NULL, "."))
        value = json_object_get (value, part);
    free (copy);
    assert (json_is_integer (value));
    return json_integer_value (value);
}

//  A progress callback that stops at once
static int
s_test_stop (void *arg, const json_t *progress)
{
    (*(int *) arg)++;
    return -1;
}

//  A progress callback that counts
static int
s_test_count (void *arg, const json_t *progress)
{
    (*(int *) arg)++;
    return 0;
}

//  Does any export hold text (case-insensitive)?
static bool
s_test_exported (const char *root, const char *text)
{
    const char *files [] = { "exports/rag/playbooks.jsonl", "exports/sft/accepted.jsonl",
                             "exports/preference/pairs.jsonl", NULL };
    bool found = false;
    for (const char **file = files; *file && !found; file++) {
        char *data = s_test_read (root, *file);
        assert (data);
        found = strcasestr (data, text) != NULL;
        free (data);
    }
    return found;
}

#define S_TEST_OUTCOMES \
    "{\"ts\": \"2026-01-02T10:00:00Z\", \"task\": \"Fix the flaky build on CI\", \"verdict\": \"accepted\", " \
        "\"run_id\": \"r1\", \"anchors\": [\"F-1\"], \"answer\": \"Pin the CI cache key to the lockfile hash.\\n" \
        "Verify the build passes twice in a row\"}\n" \
    "{\"task\": \"Fix the flaky build on CI\", \"verdict\": \"rejected\", \"run_id\": \"r2\", " \
        "\"answer\": \"Retry until green\", \"ts\": 1767326645000}\n" \
    "{\"task\": \"No time here\", \"verdict\": \"accepted\", \"answer\": \"x\"}\n" \
    "{\"created_at\": \"2026-01-03T08:00:00+01:00\", \"task\": \"Rotate the API keys\", \"outcome\": \"partial\", " \
        "\"run_id\": \"r3\", \"answer\": \"Rotate them in the vault.\\n- check the old key is revoked\"}\n" \
    "   \n" \
    "{\"ts\": \"2026-01-02T10:00:00Z\", \"task\": \"Fix the flaky build on CI\", \"verdict\": \"accepted\", " \
        "\"run_id\": \"r1\", \"anchors\": [\"F-1\"], \"answer\": \"Pin the CI cache key to the lockfile hash.\\n" \
        "Verify the build passes twice in a row\"}\n" \
    "not json\n" \
    "{\"ts\": \"2026-01-04T00:00:00Z\", \"task\": \"What is the capital of Atlantis\", \"verdict\": \"accepted\", " \
        "\"run_id\": \"r9\", \"answer\": \"Poseidonia, says the evaluation key\"}\n" \
    "{\"ts\": \"2026-01-04T00:00:01Z\", \"task\": \"What is the capital of Atlantis\", \"verdict\": \"rejected\", " \
        "\"run_id\": \"r8\", \"answer\": \"Atlantis has no capital\"}\n"

void
lh_distill_test (bool verbose)
{
    printf (" * lh_distill: ");
    char *tmp = zsys_sprintf ("/tmp/lh_distill_test.%d", (int) getpid ());
    zsys_dir_create ("%s", tmp);
    char *root = zsys_sprintf ("%s/kb", tmp);
    char *twin = zsys_sprintf ("%s/kb2", tmp);
    lh_distill_opts_t opts = { .root = root, .schema_version = 1, .line_max = 4096,
                               .batch_rows = 2, .warn_pct = 20, .alert_pct = 40 };
    lh_distill_t *kb = lh_distill_new (&opts);
    opts.root = twin;
    lh_distill_t *kb_twin = lh_distill_new (&opts);
    const char *facts = "{\"id\": \"F-1\", \"fact\": \"The CI cache key holds the lockfile hash\", "
                        "\"recorded_at\": \"2026-01-01T00:00:00Z\"}\n";
    const char *reviews = "{\"timestamp\": \"2026-01-02T12:00:00Z\", \"task\": \"Fix the flaky build on CI\", "
                          "\"status\": \"failed\", \"session_id\": \"s5\", \"response\": \"Disable the test\", "
                          "\"schema_version\": 1}\n";
    const char *roots [] = { root, twin };
    for (size_t index = 0; index < 2; index++) {
        s_test_write (roots [index], "data/_kb/outcomes.jsonl", S_TEST_OUTCOMES);
        s_test_write (roots [index], "data/_kb/distilled_facts.jsonl", facts);
        s_test_write (roots [index], "data/_kb/scrum_reviews.jsonl", reviews);
        s_test_write (roots [index], "eval/tasks.jsonl", "{\"task\": \"what is the capital of  ATLANTIS\"}\n");
    }
    lh_distill_error_t error;
    int progress = 0;
    lh_distill_args_t args = { .recorded_at = "2026-02-01T00:00:00Z", .progress = s_test_count,
                               .progress_arg = &progress };

    //  materialize: counts, provenance, dedupe, byte-stable output
    json_t *receipt = lh_distill_materialize (kb, &args, &error);
    assert (receipt);
    if (verbose) {
        char *text = lh_canon_text (receipt, NULL);
        printf ("\n    %s", text);
        free (text);
    }
    assert (s_test_int (receipt, "read") == 10);
    assert (s_test_int (receipt, "written") == 7);
    assert (s_test_int (receipt, "skipped") == 2);
    assert (s_test_int (receipt, "deduped") == 1);
    assert (s_test_int (receipt, "sources.outcomes.read") == 8);
    assert (s_test_int (receipt, "sources.outcomes.skipped_reasons.no_timestamp") == 1);
    assert (s_test_int (receipt, "sources.outcomes.skipped_reasons.malformed") == 1);
    assert (json_is_false (json_object_get (json_object_get (json_object_get (receipt, "sources"),
                                                             "audits"), "present")));
    assert (progress > 0);
    char run_one [LH_DISTILL_RUN_ID_MAX + 1];
    snprintf (run_one, sizeof (run_one), "%s", json_string_value (json_object_get (receipt, "run_id")));
    json_decref (receipt);
    char *first = s_test_evidence (kb);
    char *day = s_test_read (root, "evidence/2026/01/02/outcomes.jsonl");
    assert (day && strstr (day, "\"line_offset\":0,") && strstr (day, "\"line_offset\":1,"));
    assert (strstr (day, "\"recorded_at\":\"2026-02-01T00:00:00Z\""));
    assert (strstr (day, "\"source_file\":\"data/_kb/outcomes.jsonl\""));
    free (day);
    day = s_test_read (root, "evidence/2026/01/03/outcomes.jsonl");
    assert (day && strstr (day, "\"line_offset\":3,") && strstr (day, "\"event_time\":\"2026-01-03T07:00:00Z\""));
    free (day);
    day = s_test_read (root, "evidence/2026/01/01/distilled_facts.jsonl");
    assert (day && strstr (day, "\"line_offset\":0,"));
    free (day);
    //  Again over the same root: all deduped, the same bytes
    receipt = lh_distill_materialize (kb, &args, &error);
    assert (receipt);
    assert (s_test_int (receipt, "written") == 0 && s_test_int (receipt, "deduped") == 8
            && s_test_int (receipt, "skipped") == 2 && s_test_int (receipt, "read") == 10);
    json_decref (receipt);
    char *second = s_test_evidence (kb);
    assert (streq (first, second));
    free (second);
    //  A fresh root over the same input: the same bytes
    receipt = lh_distill_materialize (kb_twin, &args, &error);
    assert (receipt);
    json_decref (receipt);
    second = s_test_evidence (kb_twin);
    assert (streq (first, second));
    free (second);
    free (first);

    //  A wrong schema_version: refused, nothing written
    char *bad = zsys_sprintf ("%s/bad", tmp);
    opts.root = bad;
    lh_distill_t *kb_bad = lh_distill_new (&opts);
    s_test_write (bad, "data/_kb/distilled_facts.jsonl", facts);
    s_test_write (bad, "data/_kb/audits.jsonl",
                  "{\"ts\": 0, \"schema_version\": 1}\n{\"ts\": 0, \"schema_version\": 2}\n");
    assert (lh_distill_materialize (kb_bad, &args, &error) == NULL);
    assert (error.status == 409 && streq (error.kind, "schema_version_mismatch"));
    assert (strstr (error.reason, "audits.jsonl line 2") && strstr (error.reason, "schema_version 2"));
    char *path = zsys_sprintf ("%s/evidence", bad);
    assert (!zsys_file_exists (path));
    zstr_free (&path);
    path = zsys_sprintf ("%s/reports", bad);
    assert (!zsys_file_exists (path));
    zstr_free (&path);
    lh_distill_destroy (&kb_bad);
    zstr_free (&bad);

    //  A stop at the deadline between batches answers 504
    int stops = 0;
    lh_distill_args_t stop = { .progress = s_test_stop, .progress_arg = &stops };
    char *late = zsys_sprintf ("%s/late", tmp);
    opts.root = late;
    lh_distill_t *kb_late = lh_distill_new (&opts);
    s_test_write (late, "data/_kb/outcomes.jsonl", S_TEST_OUTCOMES);
    assert (lh_distill_materialize (kb_late, &stop, &error) == NULL);
    assert (error.status == 504 && streq (error.kind, "deadline") && stops == 1);
    //  One writer at a time
    int lock = s_lock (kb_late, &error);
    assert (lock >= 0);
    assert (lh_distill_materialize (kb_late, &args, &error) == NULL && error.status == 503);
    s_unlock (lock);
    lh_distill_destroy (&kb_late);
    zstr_free (&late);

    //  score: categories and anchor_grounding
    lh_distill_args_t plain = { NULL };
    receipt = lh_distill_score (kb, &plain, &error);
    assert (receipt);
    if (verbose) {
        char *text = lh_canon_text (receipt, NULL);
        printf ("\n    %s", text);
        free (text);
    }
    assert (s_test_int (receipt, "records") == 7 && s_test_int (receipt, "scored") == 6);
    assert (s_test_int (receipt, "unscored") == 1);
    assert (s_test_int (receipt, "categories.accepted.count") == 2);
    assert (s_test_int (receipt, "categories.partially_accepted.count") == 1);
    assert (s_test_int (receipt, "categories.rejected.count") == 3);
    assert (s_test_int (receipt, "known_anchors") == 1);
    char run_two [LH_DISTILL_RUN_ID_MAX + 1];
    snprintf (run_two, sizeof (run_two), "%s", json_string_value (json_object_get (receipt, "run_id")));
    assert (!streq (run_one, run_two));
    json_decref (receipt);
    char *relative = zsys_sprintf ("reports/distillation/%s/scored.jsonl", run_two);
    char *scored = s_test_read (root, relative);
    assert (scored && strstr (scored, "\"anchor_grounding\":1,") && strstr (scored, "\"run\":\"s5\""));
    free (scored);
    zstr_free (&relative);

    //  export: the firewall holds the evaluation task back from all three
    receipt = lh_distill_export (kb, &plain, &error);
    assert (receipt);
    if (verbose) {
        char *text = lh_canon_text (receipt, NULL);
        printf ("\n    %s", text);
        free (text);
    }
    assert (streq (json_string_value (json_object_get (receipt, "run_id")), run_two));
    assert (s_test_int (receipt, "eval_set.tasks") == 1);
    assert (s_test_int (receipt, "rag.written") == 4 && s_test_int (receipt, "rag.held_back") == 2);
    assert (s_test_int (receipt, "sft.written") == 1 && s_test_int (receipt, "sft.held_back") == 1);
    assert (s_test_int (receipt, "preference.written") == 1
            && s_test_int (receipt, "preference.held_back") == 2);
    assert (s_test_int (receipt, "held_back") == 5);
    json_decref (receipt);
    assert (!s_test_exported (root, "atlantis") && !s_test_exported (root, "poseidonia"));
    assert (s_test_exported (root, "flaky build"));
    char *pairs = s_test_read (root, "exports/preference/pairs.jsonl");
    assert (strstr (pairs, "\"chosen_run\":\"r1\"") && strstr (pairs, "\"rejected_run\":\"s5\""));
    free (pairs);
    char *sft = s_test_read (root, "exports/sft/accepted.jsonl");
    assert (strstr (sft, "Pin the CI cache key") && !strstr (sft, "Retry until green"));
    free (sft);
    //  Without the evaluation set the task goes through (the test can fail)
    path = zsys_sprintf ("%s/eval/tasks.jsonl", twin);
    unlink (path);
    zstr_free (&path);
    receipt = lh_distill_score (kb_twin, &plain, &error);
    json_decref (receipt);
    receipt = lh_distill_export (kb_twin, &plain, &error);
    assert (receipt && s_test_int (receipt, "held_back") == 0);
    json_decref (receipt);
    assert (s_test_exported (twin, "atlantis"));
    //  A broken evaluation set fails closed
    s_test_write (twin, "eval/tasks.jsonl", "{\"task_hash\": \"nope\"}\n");
    assert (lh_distill_export (kb_twin, &plain, &error) == NULL && error.status == 422
            && streq (error.kind, "bad_eval_set"));

    //  drift: a baseline, then the previous scored run's distribution
    receipt = lh_distill_drift (kb, &plain, &error);
    assert (receipt);
    assert (streq (json_string_value (json_object_get (receipt, "status")), "baseline"));
    json_decref (receipt);

    //  retrieval and the prompt
    json_t *retrieval = lh_distill_retrieve (kb, "fix flaky CI build");
    if (verbose) {
        char *text = lh_canon_text (retrieval, NULL);
        printf ("\n    %s", text);
        free (text);
    }
    assert (json_array_size (json_object_get (retrieval, "hits")) == 3);
    assert (json_array_size (json_object_get (retrieval, "exemplars")) == 1);
    assert (json_array_size (json_object_get (retrieval, "warnings")) == 0);
    json_t *steps = json_object_get (retrieval, "steps");
    assert (json_array_size (steps) == 1
            && streq (json_string_value (json_array_get (steps, 0)), "Verify the build passes twice in a row"));
    char *prompt = lh_distill_prompt ("fix flaky CI build", retrieval);
    assert (strstr (prompt, "Task: fix flaky CI build") && strstr (prompt, "Pin the CI cache key")
            && strstr (prompt, "- Verify the build passes twice in a row"));
    free (prompt);
    json_decref (retrieval);
    prompt = lh_distill_prompt ("fix flaky CI build", NULL);
    assert (strstr (prompt, "Task: fix flaky CI build") && !strstr (prompt, "Pin the CI")
            && !strstr (prompt, "Accepted answers"));
    free (prompt);
    retrieval = lh_distill_retrieve (kb, "rotate keys");
    assert (json_array_size (json_object_get (retrieval, "warnings")) == 1);
    assert (streq (json_string_value (json_array_get (json_object_get (retrieval, "steps"), 0)),
                   "check the old key is revoked"));
    json_decref (retrieval);
    retrieval = lh_distill_retrieve (kb, "the a of");
    assert (json_array_size (json_object_get (retrieval, "hits")) == 0);
    json_decref (retrieval);

    //  runs and summaries
    json_t *runs = lh_distill_runs (kb, &error);
    assert (s_test_int (runs, "count") == 3);
    json_decref (runs);
    json_t *summary = lh_distill_summary (kb, run_two, &error);
    assert (summary && json_object_get (json_object_get (summary, "stages"), "export"));
    json_decref (summary);
    assert (lh_distill_summary (kb, "nosuch", &error) == NULL && error.status == 404);
    assert (lh_distill_summary (kb, "../x", &error) == NULL && error.status == 400);
    plain.run_id = "nosuch";
    assert (lh_distill_export (kb, &plain, &error) == NULL && error.status == 404);
    plain.run_id = run_one;
    assert (lh_distill_drift (kb, &plain, &error) == NULL && error.status == 409);
    plain.run_id = NULL;

    //  drift over four crafted runs, one day each
    char *drift = zsys_sprintf ("%s/drift", tmp);
    opts.root = drift;
    lh_distill_t *kb_drift = lh_distill_new (&opts);
    struct {
        const char *day;
        int accepted, rejected;
        const char *status;
    } runs_made [] = {
        { "2026-03-01", 5, 5, "baseline" },
        { "2026-03-02", 8, 2, "warn" },             //  +30 points
        { "2026-03-03", 3, 7, "alert" },            //  -50 points
        { "2026-03-04", 7, 13, "ok" },              //  +5 points
    };
    zchunk_t *rows = zchunk_new (NULL, 0);
    for (size_t index = 0; index < 4; index++)
        for (int row = 0; row < runs_made [index].accepted + runs_made [index].rejected; row++) {
            char *line = zsys_sprintf ("{\"ts\": \"%sT00:00:%02dZ\", \"task\": \"t%d\", \"verdict\": \"%s\"}\n",
                                       runs_made [index].day, row, row,
                                       row < runs_made [index].accepted? "accepted": "rejected");
            zchunk_extend (rows, line, strlen (line));
            zstr_free (&line);
        }
    zchunk_extend (rows, "", 1);
    s_test_write (drift, "data/_kb/outcomes.jsonl", (const char *) zchunk_data (rows));
    zchunk_destroy (&rows);
    receipt = lh_distill_materialize (kb_drift, &plain, &error);
    assert (receipt && s_test_int (receipt, "written") == 50);
    json_decref (receipt);
    for (size_t index = 0; index < 4; index++) {
        lh_distill_args_t one = { .since = runs_made [index].day, .until = runs_made [index].day };
        receipt = lh_distill_score (kb_drift, &one, &error);
        assert (receipt);
        json_decref (receipt);
        receipt = lh_distill_drift (kb_drift, &plain, &error);
        assert (receipt);
        if (verbose) {
            char *text = lh_canon_text (receipt, NULL);
            printf ("\n    %s", text);
            free (text);
        }
        assert (streq (json_string_value (json_object_get (receipt, "status")), runs_made [index].status));
        json_decref (receipt);
    }
    lh_distill_args_t wrong = { .since = "2026-02-30" };
    assert (lh_distill_score (kb_drift, &wrong, &error) == NULL && error.status == 400
            && streq (error.field, "since"));
    lh_distill_destroy (&kb_drift);
    zstr_free (&drift);

    lh_distill_destroy (&kb);
    lh_distill_destroy (&kb_twin);
    zsys_dir_delete ("%s", tmp);
    char *command = zsys_sprintf ("rm -rf '%s'", tmp);
    assert (system (command) == 0);
    zstr_free (&command);
    zstr_free (&root);
    zstr_free (&twin);
    zstr_free (&tmp);
    printf ("OK\n");
}
