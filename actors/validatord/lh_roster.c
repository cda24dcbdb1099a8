/*  =========================================================================
    lh_roster - the worker roster that validators check artifacts against;
    see lh_roster.h
    =========================================================================
*/

#include "lh_roster.h"
#include "lh_log.h"
#include <jansson.h>
#include <pthread.h>
#include <sys/stat.h>

#define S_BLOCK_SIZE    (1024 * 1024)   //  arena block for strings
#define S_LINE_MAX      (1024 * 1024)   //  longest roster line accepted

//  One loaded table: workers, their strings, and the id index
typedef struct {
    lh_worker_t *workers;               //  array of count workers
    size_t count;                       //  workers in use
    size_t capacity;                    //  workers allocated
    uint32_t *slots;                    //  open addressing: worker index + 1, 0 empty
    size_t slot_mask;                   //  slots - 1 (a power of two minus one)
    char **blocks;                      //  arena blocks holding every string
    size_t block_count;                 //  blocks in use
    char *free_ptr;                     //  next free byte of the last block
    size_t free_size;                   //  bytes left in the last block
} s_table_t;

//  The file identity we loaded, to notice a change
typedef struct {
    bool valid;                         //  we have loaded the file once
    dev_t dev;                          //  device
    ino_t ino;                          //  inode
    off_t size;                         //  size in bytes
    struct timespec mtime;              //  modification time
} s_stamp_t;

struct _lh_roster_t {
    char *path;                         //  JSONL file, NULL for none
    s_table_t *table;                   //  current table (read lock to use)
    pthread_rwlock_t lock;              //  guards table
    pthread_mutex_t reload_lock;        //  one reload at a time
    s_stamp_t stamp;                    //  identity of the loaded file
    bool loaded;                        //  a table is in place (false until
                                        //  the first install of an external one)
};

struct _lh_roster_builder_t {
    s_table_t *table;                   //  the table being filled
};


//  --------------------------------------------------------------------------
//  Hash of an id, folding ASCII case (FNV-1a)

static uint64_t
s_hash (const char *id)
{
    uint64_t hash = 14695981039346656037ULL;
    for (const unsigned char *scan = (const unsigned char *) id; *scan; scan++) {
        hash ^= (uint64_t) tolower (*scan);
        hash *= 1099511628211ULL;
    }
    return hash;
}


//  --------------------------------------------------------------------------
//  Destroy a table

static void
s_table_destroy (s_table_t **self_p)
{
    s_table_t *self = *self_p;
    if (self) {
        for (size_t index = 0; index < self->block_count; index++)
            free (self->blocks [index]);
        free (self->blocks);
        free (self->workers);
        free (self->slots);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Create an empty table

static s_table_t *
s_table_new (void)
{
    s_table_t *self = (s_table_t *) zmalloc (sizeof (s_table_t));
    assert (self);
    self->slot_mask = 15;
    self->slots = (uint32_t *) calloc (16, sizeof (uint32_t));
    assert (self->slots);
    return self;
}


//  --------------------------------------------------------------------------
//  Reserve size + 1 bytes in the table's arena; returns them, the last one
//  zero

static char *
s_table_alloc (s_table_t *self, size_t size)
{
    if (size + 1 > self->free_size) {
        size_t block_size = size + 1 > S_BLOCK_SIZE? size + 1: S_BLOCK_SIZE;
        self->blocks = (char **) realloc (self->blocks, (self->block_count + 1) * sizeof (char *));
        assert (self->blocks);
        char *block = (char *) malloc (block_size);
        assert (block);
        self->blocks [self->block_count++] = block;
        self->free_ptr = block;
        self->free_size = block_size;
    }
    char *space = self->free_ptr;
    space [size] = 0;
    self->free_ptr += size + 1;
    self->free_size -= size + 1;
    return space;
}


//  --------------------------------------------------------------------------
//  Copy size bytes into the table's arena, NUL-terminated; returns the copy

static char *
s_table_strndup (s_table_t *self, const char *data, size_t size)
{
    char *copy = s_table_alloc (self, size);
    memcpy (copy, data, size);
    return copy;
}


//  --------------------------------------------------------------------------
//  Find the slot of an id: the slot holding it, or the empty slot where it
//  would go

static size_t
s_table_slot (s_table_t *self, const char *id)
{
    size_t slot = (size_t) s_hash (id) & self->slot_mask;
    while (self->slots [slot]
       &&  strcasecmp (self->workers [self->slots [slot] - 1].candidate_id, id) != 0)
        slot = (slot + 1) & self->slot_mask;
    return slot;
}


//  --------------------------------------------------------------------------
//  Grow the index to keep it at most half full

static void
s_table_grow_index (s_table_t *self)
{
    size_t slots = (self->slot_mask + 1) * 2;
    free (self->slots);
    self->slots = (uint32_t *) calloc (slots, sizeof (uint32_t));
    assert (self->slots);
    self->slot_mask = slots - 1;
    for (size_t index = 0; index < self->count; index++) {
        size_t slot = s_table_slot (self, self->workers [index].candidate_id);
        self->slots [slot] = (uint32_t) index + 1;
    }
}


//  --------------------------------------------------------------------------
//  Size an empty table for about rows workers, so loading never rehashes

static void
s_table_reserve (s_table_t *self, size_t rows)
{
    assert (self->count == 0);
    if (rows < 16)
        rows = 16;
    free (self->workers);
    self->capacity = rows;
    self->workers = (lh_worker_t *) malloc (rows * sizeof (lh_worker_t));
    assert (self->workers);
    size_t slots = 16;
    while (slots < rows * 2 + 2)
        slots *= 2;
    free (self->slots);
    self->slots = (uint32_t *) calloc (slots, sizeof (uint32_t));
    assert (self->slots);
    self->slot_mask = slots - 1;
}


//  --------------------------------------------------------------------------
//  Add a worker (strings already in the arena); a later id replaces the
//  earlier worker in place

static void
s_table_add (s_table_t *self, const lh_worker_t *worker)
{
    size_t slot = s_table_slot (self, worker->candidate_id);
    if (self->slots [slot]) {
        self->workers [self->slots [slot] - 1] = *worker;
        return;
    }
    if (self->count == self->capacity) {
        self->capacity = self->capacity? self->capacity * 2: 1024;
        self->workers = (lh_worker_t *) realloc (self->workers,
                                                 self->capacity * sizeof (lh_worker_t));
        assert (self->workers);
    }
    self->workers [self->count] = *worker;
    self->slots [slot] = (uint32_t) ++self->count;
    if (self->count * 2 > self->slot_mask + 1)
        s_table_grow_index (self);
}


//  --------------------------------------------------------------------------
//  Copy an optional string field into the arena; "" when absent or null.
//  Returns NULL (error) if present with another type.

static const char *
s_field (s_table_t *table, json_t *line, const char *key, const char *fallback)
{
    json_t *value = json_object_get (line, key);
    if (!value || json_is_null (value))
        return fallback;
    if (!json_is_string (value))
        return NULL;
    return s_table_strndup (table, json_string_value (value), json_string_length (value));
}


//  --------------------------------------------------------------------------
//  Parse one JSONL line into the table. Returns NULL, or a static sentence
//  naming what is wrong.

static const char *
s_table_parse_line (s_table_t *self, const char *data, size_t size)
{
    json_error_t error;
    json_t *line = json_loadb (data, size, 0, &error);
    if (!line)
        return "not valid JSON";
    const char *problem = NULL;
    lh_worker_t worker;
    json_t *id = json_object_get (line, "candidate_id");
    char number [32];
    if (!json_is_object (line))
        problem = "not a JSON object";
    else
    if (json_is_string (id) && json_string_length (id) > 0
    &&  !memchr (json_string_value (id), 0, json_string_length (id)))
        worker.candidate_id = s_table_strndup (self, json_string_value (id),
                                               json_string_length (id));
    else
    if (json_is_integer (id)) {
        snprintf (number, sizeof (number), "%" JSON_INTEGER_FORMAT, json_integer_value (id));
        worker.candidate_id = s_table_strndup (self, number, strlen (number));
    }
    else
        problem = "candidate_id missing (a non-empty string or an integer)";

    if (!problem) {
        worker.name = s_field (self, line, "name", "");
        worker.city = s_field (self, line, "city", "");
        worker.state = s_field (self, line, "state", "");
        worker.role = s_field (self, line, "role", "");
        worker.status = s_field (self, line, "status", "active");
        if (!worker.name || !worker.city || !worker.state || !worker.role || !worker.status)
            problem = "name, city, state, role and status must be strings";
    }
    if (!problem) {
        //  Blacklist: array of strings, stored as "a\0b\0\0"
        json_t *list = json_object_get (line, "blacklisted_clients");
        worker.blacklisted = "";
        if (list && !json_is_null (list)) {
            if (!json_is_array (list))
                problem = "blacklisted_clients must be an array of strings";
            else {
                size_t total = 1, index;
                json_t *client;
                json_array_foreach (list, index, client) {
                    if (!json_is_string (client)) {
                        problem = "blacklisted_clients must be an array of strings";
                        break;
                    }
                    total += strlen (json_string_value (client)) + 1;
                }
                if (!problem && json_array_size (list) > 0) {
                    char *copy = s_table_alloc (self, total - 1);
                    char *write = copy;
                    json_array_foreach (list, index, client) {
                        size_t length = strlen (json_string_value (client));
                        memcpy (write, json_string_value (client), length + 1);
                        write += length + 1;
                    }
                    *write = 0;
                    worker.blacklisted = copy;
                }
            }
        }
    }
    if (!problem)
        s_table_add (self, &worker);
    json_decref (line);
    return problem;
}


//  --------------------------------------------------------------------------
//  The fast path for the common roster line: a flat object whose values
//  are strings without \u escapes, integers, null, or arrays of such
//  strings. Anything else returns -1 and the line goes to jansson, so the
//  fast path never decides that a line is bad.

typedef struct {
    const char *ptr;                    //  next byte
    const char *end;                    //  end of the line
} s_cursor_t;


//  --------------------------------------------------------------------------
//  Skip blanks (not newlines: the line has none)

static void
s_skip_space (s_cursor_t *cursor)
{
    while (cursor->ptr < cursor->end
       && (*cursor->ptr == ' ' || *cursor->ptr == '\t' || *cursor->ptr == '\r'))
        cursor->ptr++;
}

//  --------------------------------------------------------------------------
//  Scan a string at the cursor (which is on the opening quote); sets its
//  raw span and whether it holds escapes. Returns 0, or -1 for the slow path.

static int
s_scan_string (s_cursor_t *cursor, const char **start_p, size_t *size_p, bool *escaped_p)
{
    if (cursor->ptr >= cursor->end || *cursor->ptr != '"')
        return -1;
    const char *start = ++cursor->ptr;
    bool escaped = false;
    while (cursor->ptr < cursor->end && *cursor->ptr != '"') {
        unsigned char c = (unsigned char) *cursor->ptr;
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            if (cursor->ptr + 1 >= cursor->end || cursor->ptr [1] == 'u')
                return -1;
            escaped = true;
            cursor->ptr++;
        }
        cursor->ptr++;
    }
    if (cursor->ptr >= cursor->end)
        return -1;
    *start_p = start;
    *size_p = cursor->ptr - start;
    *escaped_p = escaped;
    cursor->ptr++;                      //  closing quote
    return 0;
}

//  --------------------------------------------------------------------------
//  Copy a scanned string into the arena, decoding simple escapes; NULL if
//  an escape is unknown (slow path)

static char *
s_copy_string (s_table_t *table, const char *start, size_t size, bool escaped)
{
    char *copy = s_table_strndup (table, start, size);
    if (!escaped)
        return memchr (copy, 0, size)? NULL: copy;
    char *write = copy;
    for (const char *read = copy; *read; read++) {
        if (*read != '\\') {
            *write++ = *read;
            continue;
        }
        read++;
        switch (*read) {
            case '"':  *write++ = '"'; break;
            case '\\': *write++ = '\\'; break;
            case '/':  *write++ = '/'; break;
            case 'b':  *write++ = '\b'; break;
            case 'f':  *write++ = '\f'; break;
            case 'n':  *write++ = '\n'; break;
            case 'r':  *write++ = '\r'; break;
            case 't':  *write++ = '\t'; break;
            default:   return NULL;
        }
    }
    *write = 0;
    return copy;
}

//  --------------------------------------------------------------------------
//  Parse one plain roster line into the table: 0, or -1 for the slow path

static int
s_fast_line (s_table_t *self, const char *data, size_t size)
{
    s_cursor_t cursor = { data, data + size };
    lh_worker_t worker = { NULL, "", "", "", "", "active", "" };
    s_skip_space (&cursor);
    if (cursor.ptr >= cursor.end || *cursor.ptr++ != '{')
        return -1;
    s_skip_space (&cursor);
    if (cursor.ptr < cursor.end && *cursor.ptr == '}')
        return -1;                      //  {} has no id: let jansson's path say so
    while (true) {
        const char *key, *start;
        size_t key_size, value_size;
        bool escaped;
        s_skip_space (&cursor);
        if (s_scan_string (&cursor, &key, &key_size, &escaped) || escaped)
            return -1;
        s_skip_space (&cursor);
        if (cursor.ptr >= cursor.end || *cursor.ptr++ != ':')
            return -1;
        s_skip_space (&cursor);
        if (cursor.ptr >= cursor.end)
            return -1;
        const char **field = NULL;
        #define S_KEY(name) (key_size == strlen (name) && memcmp (key, name, key_size) == 0)
        if (S_KEY ("candidate_id")) field = &worker.candidate_id;
        else if (S_KEY ("name"))    field = &worker.name;
        else if (S_KEY ("city"))    field = &worker.city;
        else if (S_KEY ("state"))   field = &worker.state;
        else if (S_KEY ("role"))    field = &worker.role;
        else if (S_KEY ("status"))  field = &worker.status;
        bool blacklist = S_KEY ("blacklisted_clients");
        #undef S_KEY

        char c = *cursor.ptr;
        if (c == '"') {
            if (blacklist
            ||  s_scan_string (&cursor, &start, &value_size, &escaped))
                return -1;
            if (field && !(*field = s_copy_string (self, start, value_size, escaped)))
                return -1;
        }
        else
        if (c == 'n' && cursor.end - cursor.ptr >= 4 && memcmp (cursor.ptr, "null", 4) == 0) {
            cursor.ptr += 4;
            if (field == &worker.candidate_id)
                return -1;
        }
        else
        if (c >= '0' && c <= '9' && !blacklist) {
            start = cursor.ptr;
            while (cursor.ptr < cursor.end && *cursor.ptr >= '0' && *cursor.ptr <= '9')
                cursor.ptr++;
            if (field != &worker.candidate_id || cursor.ptr - start > 18
            ||  (*start == '0' && cursor.ptr - start > 1))
                return -1;
            worker.candidate_id = s_table_strndup (self, start, cursor.ptr - start);
        }
        else
        if (c == '[' && blacklist) {
            //  Array of strings, stored as "a\0b\0\0"
            cursor.ptr++;
            s_skip_space (&cursor);
            const char *list_start = cursor.ptr;
            size_t total = 1;
            if (cursor.ptr < cursor.end && *cursor.ptr == ']')
                cursor.ptr++;
            else
            while (true) {
                if (s_scan_string (&cursor, &start, &value_size, &escaped) || escaped
                ||  memchr (start, 0, value_size))
                    return -1;
                total += value_size + 1;
                s_skip_space (&cursor);
                if (cursor.ptr < cursor.end && *cursor.ptr == ',') {
                    cursor.ptr++;
                    s_skip_space (&cursor);
                    continue;
                }
                if (cursor.ptr < cursor.end && *cursor.ptr == ']') {
                    cursor.ptr++;
                    break;
                }
                return -1;
            }
            if (total > 1) {
                char *write = s_table_alloc (self, total - 1);
                worker.blacklisted = write;
                s_cursor_t list = { list_start, cursor.end };
                for (size_t left = total - 1; left > 0; ) {
                    s_skip_space (&list);
                    if (*list.ptr == ',') {
                        list.ptr++;
                        s_skip_space (&list);
                    }
                    s_scan_string (&list, &start, &value_size, &escaped);
                    memcpy (write, start, value_size);
                    write [value_size] = 0;
                    write += value_size + 1;
                    left -= value_size + 1;
                }
                *write = 0;
            }
        }
        else
            return -1;
        s_skip_space (&cursor);
        if (cursor.ptr < cursor.end && *cursor.ptr == ',') {
            cursor.ptr++;
            continue;
        }
        if (cursor.ptr < cursor.end && *cursor.ptr == '}') {
            cursor.ptr++;
            break;
        }
        return -1;
    }
    s_skip_space (&cursor);
    if (cursor.ptr != cursor.end || !worker.candidate_id || !*worker.candidate_id)
        return -1;
    s_table_add (self, &worker);
    return 0;
}

//  --------------------------------------------------------------------------
//  Load a JSONL file into a new table. Returns NULL with *error_p set.

static s_table_t *
s_table_load (const char *path, s_stamp_t *stamp, char **error_p)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    struct stat info;
    if (fd < 0 || fstat (fd, &info) != 0) {
        int error = errno;
        if (fd >= 0)
            close (fd);
        *error_p = zsys_sprintf ("%s: cannot open roster: %s", path, strerror (error));
        return NULL;
    }
    size_t size = (size_t) info.st_size;
    char *data = (char *) malloc (size + 1);
    assert (data);
    size_t done = 0;
    while (done < size) {
        ssize_t rc = read (fd, data + done, size - done);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;
        done += (size_t) rc;
    }
    close (fd);
    if (done < size) {
        free (data);
        *error_p = zsys_sprintf ("%s: short read of roster (%zu of %zu bytes)", path, done, size);
        return NULL;
    }
    stamp->valid = true;
    stamp->dev = info.st_dev;
    stamp->ino = info.st_ino;
    stamp->size = info.st_size;
    stamp->mtime = info.st_mtim;

    //  Size the table for the line count, so loading never rehashes
    s_table_t *table = s_table_new ();
    size_t lines = 1;
    for (const char *scan = data; (scan = (const char *) memchr (scan, '\n', data + size - scan)); scan++)
        lines++;
    s_table_reserve (table, lines);

    size_t line_number = 0;
    const char *scan = data, *end = data + size;
    while (scan < end) {
        line_number++;
        const char *eol = (const char *) memchr (scan, '\n', end - scan);
        const char *line_end = eol? eol: end;
        const char *start = scan;
        scan = eol? eol + 1: end;
        while (start < line_end && isspace ((unsigned char) *start))
            start++;
        if (start == line_end)
            continue;
        const char *problem = (size_t) (line_end - start) > S_LINE_MAX?
            "line too long": s_fast_line (table, start, line_end - start) == 0? NULL:
            s_table_parse_line (table, start, line_end - start);
        if (problem) {
            *error_p = zsys_sprintf ("%s:%zu: %s", path, line_number, problem);
            s_table_destroy (&table);
            break;
        }
    }
    free (data);
    return table;
}


//  --------------------------------------------------------------------------
//  Load the roster from a JSONL file; NULL with *error_p set on error

lh_roster_t *
lh_roster_new (const char *path, char **error_p)
{
    assert (error_p);
    lh_roster_t *self = (lh_roster_t *) zmalloc (sizeof (lh_roster_t));
    assert (self);
    pthread_rwlock_init (&self->lock, NULL);
    pthread_mutex_init (&self->reload_lock, NULL);
    if (path && *path) {
        self->path = strdup (path);
        self->table = s_table_load (path, &self->stamp, error_p);
        if (!self->table) {
            lh_roster_destroy (&self);
            return NULL;
        }
    }
    else
        self->table = s_table_new ();
    self->loaded = true;
    return self;
}


//  --------------------------------------------------------------------------
//  An empty roster that is filled from elsewhere with lh_roster_install;
//  lh_roster_loaded is false until the first install

lh_roster_t *
lh_roster_new_external (void)
{
    lh_roster_t *self = (lh_roster_t *) zmalloc (sizeof (lh_roster_t));
    assert (self);
    pthread_rwlock_init (&self->lock, NULL);
    pthread_mutex_init (&self->reload_lock, NULL);
    self->table = s_table_new ();
    return self;
}


//  --------------------------------------------------------------------------
//  Has a roster been loaded? (always for a file roster)

bool
lh_roster_loaded (lh_roster_t *self)
{
    assert (self);
    pthread_rwlock_rdlock (&self->lock);
    bool loaded = self->loaded;
    pthread_rwlock_unlock (&self->lock);
    return loaded;
}


//  --------------------------------------------------------------------------
//  Swap the builder's workers in as the roster (builder destroyed)

void
lh_roster_install (lh_roster_t *self, lh_roster_builder_t **builder_p)
{
    assert (self);
    assert (builder_p && *builder_p);
    lh_roster_builder_t *builder = *builder_p;
    pthread_rwlock_wrlock (&self->lock);
    s_table_t *old = self->table;
    self->table = builder->table;
    self->loaded = true;
    pthread_rwlock_unlock (&self->lock);
    builder->table = NULL;
    s_table_destroy (&old);
    lh_roster_builder_destroy (builder_p);
}


//  --------------------------------------------------------------------------
//  Start a new set of workers, sized for about expected of them

lh_roster_builder_t *
lh_roster_builder_new (size_t expected)
{
    lh_roster_builder_t *self = (lh_roster_builder_t *) zmalloc (sizeof (lh_roster_builder_t));
    assert (self);
    self->table = s_table_new ();
    s_table_reserve (self->table, expected);
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy a builder (and the workers it holds); nulls the caller's pointer

void
lh_roster_builder_destroy (lh_roster_builder_t **self_p)
{
    assert (self_p);
    lh_roster_builder_t *self = *self_p;
    if (self) {
        s_table_destroy (&self->table);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Workers added so far (a later duplicate id counts once)

size_t
lh_roster_builder_size (lh_roster_builder_t *self)
{
    assert (self);
    return self->table->count;
}


//  --------------------------------------------------------------------------
//  Is this byte a blacklist separator?

static bool
s_separator (char c)
{
    return c == ',' || c == ';' || c == '|';
}


//  --------------------------------------------------------------------------
//  Parse a blacklist cell into the arena as "a\0b\0\0". Returns the copy,
//  "" for none, or NULL if a JSON array is malformed.

static const char *
s_blacklist_parse (s_table_t *table, const char *data, size_t size)
{
    while (size > 0 && isspace ((unsigned char) *data)) {
        data++;
        size--;
    }
    while (size > 0 && isspace ((unsigned char) data [size - 1]))
        size--;
    if (size == 0)
        return "";
    if (*data == '[') {
        //  A JSON array of strings
        json_error_t error;
        json_t *list = json_loadb (data, size, 0, &error);
        const char *result = NULL;
        if (json_is_array (list)) {
            size_t total = 1, index;
            json_t *client;
            json_array_foreach (list, index, client) {
                if (!json_is_string (client)
                ||  memchr (json_string_value (client), 0, json_string_length (client))) {
                    total = 0;
                    break;
                }
                total += json_string_length (client) + 1;
            }
            if (total == 1)
                result = "";
            else
            if (total > 1) {
                char *write = s_table_alloc (table, total - 1);
                result = write;
                json_array_foreach (list, index, client) {
                    memcpy (write, json_string_value (client), json_string_length (client) + 1);
                    write += json_string_length (client) + 1;
                }
                *write = 0;
            }
        }
        json_decref (list);
        return result;
    }
    //  Separated by , ; or |, blanks around each id ignored
    char *copy = s_table_alloc (table, size + 1);
    char *write = copy;
    const char *scan = data, *end = data + size;
    while (scan < end) {
        while (scan < end && (isspace ((unsigned char) *scan) || s_separator (*scan)))
            scan++;
        const char *start = scan;
        while (scan < end && !s_separator (*scan))
            scan++;
        const char *stop = scan;
        while (stop > start && isspace ((unsigned char) stop [-1]))
            stop--;
        if (stop > start) {
            memcpy (write, start, stop - start);
            write += stop - start;
            *write++ = 0;
        }
    }
    *write = 0;
    return write == copy? "": copy;
}


//  --------------------------------------------------------------------------
//  Add one worker from column values (values [field] NULL = absent; sizes
//  in bytes, no NUL needed). A later id replaces an earlier one. Returns
//  NULL, or a static sentence naming what is wrong.

const char *
lh_roster_builder_add (lh_roster_builder_t *self, const char *const *values, const size_t *sizes)
{
    assert (self);
    assert (values && sizes);
    s_table_t *table = self->table;
    const char *id = values [LH_ROSTER_ID];
    size_t id_size = sizes [LH_ROSTER_ID];
    if (!id || id_size == 0 || memchr (id, 0, id_size))
        return "candidate_id missing (a non-empty string or an integer)";
    for (int field = LH_ROSTER_NAME; field < LH_ROSTER_BLACKLIST; field++)
        if (values [field] && memchr (values [field], 0, sizes [field]))
            return "name, city, state, role and status must not hold a NUL byte";
    const char *blacklisted = "";
    if (values [LH_ROSTER_BLACKLIST]) {
        blacklisted = s_blacklist_parse (table, values [LH_ROSTER_BLACKLIST],
                                         sizes [LH_ROSTER_BLACKLIST]);
        if (!blacklisted)
            return "blacklisted_clients is neither a list (a,b;c|d) nor a JSON array of strings";
    }
    lh_worker_t worker;
    worker.candidate_id = s_table_strndup (table, id, id_size);
    const char **targets [] = { NULL, &worker.name, &worker.city, &worker.state,
                                &worker.role, &worker.status };
    for (int field = LH_ROSTER_NAME; field < LH_ROSTER_BLACKLIST; field++)
        *targets [field] = values [field]?
            s_table_strndup (table, values [field], sizes [field]):
            field == LH_ROSTER_STATUS? "active": "";
    worker.blacklisted = blacklisted;
    s_table_add (table, &worker);
    return NULL;
}


//  --------------------------------------------------------------------------
//  Destroy the roster; nulls the caller's pointer

void
lh_roster_destroy (lh_roster_t **self_p)
{
    assert (self_p);
    lh_roster_t *self = *self_p;
    if (self) {
        s_table_destroy (&self->table);
        pthread_rwlock_destroy (&self->lock);
        pthread_mutex_destroy (&self->reload_lock);
        free (self->path);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Reload the file if it changed. Returns 1 reloaded, 0 unchanged, -1 the
//  new file failed to load (logged; the previous roster stays).

int
lh_roster_refresh (lh_roster_t *self)
{
    assert (self);
    if (!self->path)
        return 0;
    struct stat info;
    if (stat (self->path, &info) != 0)
        return 0;                       //  Gone for now: keep what we have
    pthread_mutex_lock (&self->reload_lock);
    int rc = 0;
    if (!self->stamp.valid
    ||  info.st_dev != self->stamp.dev || info.st_ino != self->stamp.ino
    ||  info.st_size != self->stamp.size
    ||  info.st_mtim.tv_sec != self->stamp.mtime.tv_sec
    ||  info.st_mtim.tv_nsec != self->stamp.mtime.tv_nsec) {
        char *error = NULL;
        s_stamp_t stamp = { false };
        s_table_t *table = s_table_load (self->path, &stamp, &error);
        //  Remember the failed file too, so we do not retry it on every call
        self->stamp = stamp;
        if (table) {
            pthread_rwlock_wrlock (&self->lock);
            s_table_t *old = self->table;
            self->table = table;
            pthread_rwlock_unlock (&self->lock);
            s_table_destroy (&old);
            lh_info ("validatord", NULL, "roster %s reloaded: %zu workers",
                     self->path, table->count);
            rc = 1;
        }
        else {
            lh_error ("validatord", NULL, "roster reload failed, keeping the previous one: %s",
                      error);
            free (error);
            rc = -1;
        }
    }
    pthread_mutex_unlock (&self->reload_lock);
    return rc;
}


//  --------------------------------------------------------------------------
//  Take / release the read lock around lookups

void
lh_roster_read_lock (lh_roster_t *self)
{
    assert (self);
    pthread_rwlock_rdlock (&self->lock);
}

void
lh_roster_read_unlock (lh_roster_t *self)
{
    assert (self);
    pthread_rwlock_unlock (&self->lock);
}


//  --------------------------------------------------------------------------
//  Find a worker by id, ignoring ASCII case; NULL if absent

const lh_worker_t *
lh_roster_lookup (lh_roster_t *self, const char *candidate_id)
{
    assert (self);
    if (!candidate_id || !*candidate_id)
        return NULL;
    s_table_t *table = self->table;
    size_t slot = s_table_slot (table, candidate_id);
    return table->slots [slot]? &table->workers [table->slots [slot] - 1]: NULL;
}


//  --------------------------------------------------------------------------
//  Number of workers

size_t
lh_roster_size (lh_roster_t *self)
{
    assert (self);
    return self->table->count;
}


//  --------------------------------------------------------------------------
//  Does this worker's blacklist name client_id (ignoring ASCII case)?

bool
lh_worker_blacklisted (const lh_worker_t *worker, const char *client_id)
{
    assert (worker);
    if (!client_id || !*client_id)
        return false;
    for (const char *scan = worker->blacklisted; *scan; scan += strlen (scan) + 1)
        if (strcasecmp (scan, client_id) == 0)
            return true;
    return false;
}


//  --------------------------------------------------------------------------
//  Self test of this class

static void
s_write_file (const char *path, const char *text)
{
    FILE *file = fopen (path, "w");
    assert (file);
    fputs (text, file);
    fclose (file);
}

void
lh_roster_test (bool verbose)
{
    printf (" * lh_roster: ");
    char dir [] = "/tmp/lh-roster-XXXXXX";
    assert (mkdtemp (dir));
    char *path = zsys_sprintf ("%s/roster.jsonl", dir);

    //  A small roster: case-insensitive ids, defaults, blacklists, blank lines
    s_write_file (path,
        "{\"candidate_id\": \"W-1\", \"name\": \"Ann Lee\", \"city\": \"Toledo\", \"state\": \"OH\","
        " \"role\": \"forklift\", \"status\": \"active\", \"blacklisted_clients\": [\"C-7\", \"c-9\"]}\n"
        "\n"
        "  {\"candidate_id\": 42, \"name\": \"Bo Diaz\"}\n"
        "{\"candidate_id\": \"w-3\", \"name\": \"Cy Old\", \"status\": \"inactive\"}\n"
        "{\"candidate_id\": \"W-3\", \"name\": \"Cy New\", \"status\": \"inactive\"}\n"
        "{\"candidate_id\":\"W-5\",\"name\":\"Al \\\"Big\\\" Fox\",\"role\":\"a\\\\b\",\"blacklisted_clients\":[]}\n"
        "{\"candidate_id\": \"W-6\", \"city\": \"Montr\\u00e9al\", \"extra\": {\"nested\": [1]}}\r\n");
    char *error = NULL;
    lh_roster_t *roster = lh_roster_new (path, &error);
    assert (roster);
    assert (lh_roster_refresh (roster) == 0);
    lh_roster_read_lock (roster);
    assert (lh_roster_size (roster) == 5);
    const lh_worker_t *worker = lh_roster_lookup (roster, "W-5");
    assert (worker && streq (worker->name, "Al \"Big\" Fox") && streq (worker->role, "a\\b"));
    assert (streq (worker->blacklisted, ""));
    worker = lh_roster_lookup (roster, "W-6");
    assert (worker && streq (worker->city, "Montr\xc3\xa9" "al") && streq (worker->name, ""));
    worker = lh_roster_lookup (roster, "w-1");
    assert (worker && streq (worker->candidate_id, "W-1") && streq (worker->name, "Ann Lee"));
    assert (streq (worker->city, "Toledo") && streq (worker->role, "forklift"));
    assert (lh_worker_blacklisted (worker, "c-7"));
    assert (lh_worker_blacklisted (worker, "C-9"));
    assert (!lh_worker_blacklisted (worker, "C-8"));
    assert (!lh_worker_blacklisted (worker, ""));
    worker = lh_roster_lookup (roster, "42");
    assert (worker && streq (worker->status, "active") && streq (worker->city, ""));
    assert (!lh_worker_blacklisted (worker, "C-7"));
    worker = lh_roster_lookup (roster, "W-3");
    assert (worker && streq (worker->name, "Cy New"));
    assert (lh_roster_lookup (roster, "W-4") == NULL);
    assert (lh_roster_lookup (roster, "") == NULL);
    assert (lh_roster_lookup (roster, NULL) == NULL);
    lh_roster_read_unlock (roster);

    //  Reload on change (size differs, so the mtime granularity is moot)
    s_write_file (path, "{\"candidate_id\": \"W-9\", \"name\": \"Di Ng\"}\n");
    assert (lh_roster_refresh (roster) == 1);
    lh_roster_read_lock (roster);
    assert (lh_roster_size (roster) == 1);
    assert (lh_roster_lookup (roster, "W-1") == NULL);
    assert (lh_roster_lookup (roster, "w-9"));
    lh_roster_read_unlock (roster);
    assert (lh_roster_refresh (roster) == 0);

    //  A bad file fails the reload and keeps the previous roster
    s_write_file (path, "{\"candidate_id\": \"W-10\"}\n{\"name\": \"no id\"}\n");
    assert (lh_roster_refresh (roster) == -1);
    assert (lh_roster_refresh (roster) == 0);       //  not retried until it changes
    lh_roster_read_lock (roster);
    assert (lh_roster_lookup (roster, "W-9"));
    assert (lh_roster_lookup (roster, "W-10") == NULL);
    lh_roster_read_unlock (roster);
    lh_roster_destroy (&roster);
    assert (roster == NULL);

    //  Load errors name the line
    static const struct { const char *text; const char *error; } bad [] = {
        { "{\"candidate_id\": \"A\"}\nnot json\n", ":2: not valid JSON" },
        { "[1, 2]\n", ":1: not a JSON object" },
        { "{\"candidate_id\": \"\"}\n", ":1: candidate_id missing" },
        { "{\"candidate_id\": \"A\", \"city\": 3}\n", ":1: name, city" },
        { "{\"candidate_id\": \"A\", \"blacklisted_clients\": \"C-1\"}\n", ":1: blacklisted_clients" },
        { "{\"candidate_id\": \"A\", \"blacklisted_clients\": [1]}\n", ":1: blacklisted_clients" },
    };
    for (size_t index = 0; index < sizeof (bad) / sizeof (bad [0]); index++) {
        s_write_file (path, bad [index].text);
        error = NULL;
        roster = lh_roster_new (path, &error);
        assert (roster == NULL);
        assert (error && strstr (error, bad [index].error));
        free (error);
    }
    error = NULL;
    roster = lh_roster_new ("/nonexistent/roster.jsonl", &error);
    assert (!roster && error && strstr (error, "cannot open roster"));
    free (error);

    //  No path: an empty roster
    roster = lh_roster_new ("", &error);
    assert (roster);
    assert (lh_roster_refresh (roster) == 0);
    lh_roster_read_lock (roster);
    assert (lh_roster_size (roster) == 0);
    assert (lh_roster_lookup (roster, "W-1") == NULL);
    lh_roster_read_unlock (roster);
    lh_roster_destroy (&roster);

    //  500k workers load in <= 2 s (measured; under valgrind or ASan we
    //  load 20k and check the count only, the timing is meaningless there)
    bool instrumented = getenv ("ASAN_OPTIONS")
                     || (getenv ("LD_PRELOAD") && strstr (getenv ("LD_PRELOAD"), "vgpreload"));
    int rows = instrumented? 20000: 500000;
    FILE *file = fopen (path, "w");
    assert (file);
    for (int index = 0; index < rows; index++)
        fprintf (file, "{\"candidate_id\": \"W-%06d\", \"name\": \"Worker Number %d\", \"city\": \"Toledo\","
                 " \"state\": \"OH\", \"role\": \"forklift\", \"status\": \"active\","
                 " \"blacklisted_clients\": [\"C-%d\"]}\n", index, index, index % 50);
    fclose (file);
    //  CPU time of this thread, not wall time: the machine may be busy
    struct timespec cpu_start, cpu_end;
    clock_gettime (CLOCK_THREAD_CPUTIME_ID, &cpu_start);
    int64_t start = zclock_usecs ();
    roster = lh_roster_new (path, &error);
    int64_t wall = zclock_usecs () - start;
    clock_gettime (CLOCK_THREAD_CPUTIME_ID, &cpu_end);
    int64_t usecs = (cpu_end.tv_sec - cpu_start.tv_sec) * 1000000
                  + (cpu_end.tv_nsec - cpu_start.tv_nsec) / 1000;
    assert (roster);
    lh_roster_read_lock (roster);
    assert (lh_roster_size (roster) == (size_t) rows);
    assert (lh_roster_lookup (roster, instrumented? "w-019999": "w-499999"));
    assert (lh_roster_lookup (roster, "W-000000"));
    assert (lh_roster_lookup (roster, "W-500000") == NULL);
    const lh_worker_t *last = lh_roster_lookup (roster, "W-000049");
    assert (last && lh_worker_blacklisted (last, "C-49") && streq (last->name, "Worker Number 49"));
    lh_roster_read_unlock (roster);
    lh_roster_destroy (&roster);
    if (verbose || !instrumented)
        fprintf (stderr, "lh_roster: 500k workers loaded in %.2f s CPU (%.2f s wall)\n",
                 usecs / 1e6, wall / 1e6);
    if (!instrumented)
        assert (usecs <= 2000000);

    unlink (path);
    rmdir (dir);
    zstr_free (&path);
    printf ("OK\n");
}
