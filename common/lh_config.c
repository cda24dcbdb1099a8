/*  =========================================================================
    lh_config - the one ZPL configuration file, with every key known

    The key table is common/lh_config_keys.h (an X-macro list). A file is
    read with czmq's zconfig, then every item in it is checked against the
    table: a key the table does not declare, a value of the wrong type, a
    section used as a key (or a key as a section), or a key set twice fails
    the load with "FILE:LINE: sentence naming the key".

    zconfig keeps no line numbers and reports its own syntax errors with
    zclock_log on stdout (where a tool's output goes). So before zconfig
    sees the text, s_scan walks it once with zconfig's own rules: it
    reports syntax errors itself, with the line, and records the line of
    every item. zconfig creates items in file order, so a pre-order walk of
    its tree meets them in that same order and item N is on lines [N].
    =========================================================================
*/

#include "lh_config.h"

//  Key types, as spelled in lh_config_keys.h
typedef enum {
    S_TYPE_STR,
    S_TYPE_INT,
    S_TYPE_BOOL
} s_type_t;

//  One declared key
typedef struct {
    const char *path;                   //  "section/key"
    s_type_t type;                      //  what values it takes
    const char *value;                  //  default value
    const char *range;                  //  allowed values ("" = any)
    const char *comment;                //  one line, for the generated file
} s_key_t;

#define LH_KEY(path, type, value, range, comment) { path, S_TYPE_##type, value, range, comment },
static const s_key_t s_keys [] = {
#include "lh_config_keys.h"
};
#undef LH_KEY

//  A key no longer read, and the key that replaced it
typedef struct {
    const char *path;                   //  "gateway/ingest_max"
    const char *replaced_by;            //  "ingest/max_bytes"
} s_retired_t;

#define LH_KEY(path, type, value, range, comment)
#define LH_RETIRED(path, replaced_by) { path, replaced_by },
static const s_retired_t s_retired [] = {
#include "lh_config_keys.h"
    { NULL, NULL }
};
#undef LH_RETIRED
#undef LH_KEY

#define S_KEY_COUNT     (sizeof (s_keys) / sizeof (s_keys [0]))

//  Largest config file we read; a bigger one is a mistake, not a config
#define S_FILE_MAX      (1024 * 1024)

//  Structure of our class

struct _lh_config_t {
    char *values [S_KEY_COUNT];         //  value set by file or set (); NULL = default
    int lines [S_KEY_COUNT];            //  line the file set it on; 0 = not from file
};


//  --------------------------------------------------------------------------
//  Why path is no longer read, as a sentence the caller frees, or NULL if
//  it was never a key

static char *
s_retired_problem (const char *path)
{
    for (const s_retired_t *retired = s_retired; retired->path; retired++)
        if (streq (retired->path, path))
            return zsys_sprintf ("key '%s' is no longer read: set '%s' instead "
                                 "(docs/configuration.md)", path, retired->replaced_by);
    return NULL;
}


//  --------------------------------------------------------------------------
//  Return the index of a declared key, or -1

static int
s_key_find (const char *path)
{
    for (size_t index = 0; index < S_KEY_COUNT; index++)
        if (streq (s_keys [index].path, path))
            return (int) index;
    return -1;
}


//  --------------------------------------------------------------------------
//  Is path a section: the leading part of at least one declared key?

static bool
s_is_section (const char *path)
{
    size_t length = strlen (path);
    for (size_t index = 0; index < S_KEY_COUNT; index++)
        if (strncmp (s_keys [index].path, path, length) == 0
        &&  s_keys [index].path [length] == '/')
            return true;
    return false;
}


//  --------------------------------------------------------------------------
//  Return the name of a type, as used in error messages

static const char *
s_type_name (s_type_t type)
{
    return type == S_TYPE_INT? "an integer":
           type == S_TYPE_BOOL? "a boolean (true or false)": "a string";
}


//  --------------------------------------------------------------------------
//  Does value parse as type? Integers are decimal, optionally negative, and
//  must fit in 64 bits; booleans are "true" or "false".

static bool
s_value_valid (s_type_t type, const char *value)
{
    if (type == S_TYPE_BOOL)
        return streq (value, "true") || streq (value, "false");
    if (type == S_TYPE_INT) {
        const char *digits = value [0] == '-'? value + 1: value;
        if (!isdigit ((unsigned char) *digits))
            return false;
        for (const char *scan = digits; *scan; scan++)
            if (!isdigit ((unsigned char) *scan))
                return false;
        errno = 0;
        (void) strtoll (value, NULL, 10);
        return errno == 0;
    }
    return true;
}


//  --------------------------------------------------------------------------
//  Is value (already of the key's type) inside the key's declared range?
//  Ranges are "" (anything), "MIN..MAX", "MIN..", "..MAX" (integers), or
//  "a|b|c" (exactly one of those values).

static bool
s_value_in_range (const s_key_t *key, const char *value)
{
    const char *range = key->range;
    if (!*range)
        return true;
    const char *dots = strstr (range, "..");
    if (dots && key->type == S_TYPE_INT) {
        long long number = strtoll (value, NULL, 10);
        if (dots > range && number < strtoll (range, NULL, 10))
            return false;
        if (dots [2] && number > strtoll (dots + 2, NULL, 10))
            return false;
        return true;
    }
    size_t length = strlen (value);
    for (const char *item = range; item; ) {
        const char *bar = strchr (item, '|');
        size_t size = bar? (size_t) (bar - item): strlen (item);
        if (size == length && memcmp (item, value, size) == 0)
            return true;
        item = bar? bar + 1: NULL;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  Describe a key's range for a message: "1..256", "at least 10", "one of
//  fs, s3". Returns a fresh string the caller frees.

static char *
s_range_text (const s_key_t *key)
{
    const char *range = key->range;
    const char *dots = strstr (range, "..");
    if (dots && key->type == S_TYPE_INT) {
        if (dots == range)
            return zsys_sprintf ("at most %s", dots + 2);
        if (!dots [2])
            return zsys_sprintf ("at least %.*s", (int) (dots - range), range);
        return strdup (range);
    }
    char *text = zsys_sprintf ("one of %s", range);
    for (char *scan = text; *scan; scan++)
        if (*scan == '|')
            *scan = ',';
    //  "a,b" -> "a, b"
    char *spaced = (char *) malloc (strlen (text) * 2 + 1);
    assert (spaced);
    char *out = spaced;
    for (const char *scan = text; *scan; scan++) {
        *out++ = *scan;
        if (*scan == ',')
            *out++ = ' ';
    }
    *out = 0;
    free (text);
    return spaced;
}


//  --------------------------------------------------------------------------
//  Why value is not acceptable for key, as a sentence the caller frees, or
//  NULL when it is

static char *
s_value_problem (const s_key_t *key, const char *value)
{
    if (!s_value_valid (key->type, value))
        return zsys_sprintf ("key '%s' must be %s, not '%s'", key->path,
                             s_type_name (key->type), value);
    if (!s_value_in_range (key, value)) {
        char *range = s_range_text (key);
        char *problem = zsys_sprintf ("key '%s' is '%s': it must be %s", key->path, value, range);
        free (range);
        return problem;
    }
    return NULL;
}


//  --------------------------------------------------------------------------
//  Set *error_p (if error_p is not NULL) to a formatted sentence

static void
s_error (char **error_p, const char *format, ...) CHECK_PRINTF (2);

static void
s_error (char **error_p, const char *format, ...)
{
    if (!error_p)
        return;
    va_list args;
    va_start (args, format);
    char *error = NULL;
    if (vasprintf (&error, format, args) < 0)
        error = NULL;
    va_end (args);
    free (*error_p);
    *error_p = error;
}


//  --------------------------------------------------------------------------
//  zconfig's syntax, one line at a time, as czmq 4.2 src/zconfig.c has it.
//  Is c allowed in a name?

static bool
s_is_namechar (char c)
{
    return isalnum ((unsigned char) c) || c == '$' || c == '-' || c == '_'
        || c == '@' || c == '.' || c == '&' || c == '+' || c == '/';
}

//  Only spaces or a comment may follow a value: NULL, or the reason
static const char *
s_check_eoln (const char *scan)
{
    while (*scan && isspace ((unsigned char) *scan))
        scan++;
    if (*scan && *scan != '#')
        return "invalid syntax (text after the value; quote values that hold spaces)";
    return NULL;
}

//  Check one trimmed line. Sets *level and *named (the line names an item).
//  Returns NULL if the line is valid, else a reason.
static const char *
s_check_line (const char *line, int *level, bool *named)
{
    const char *scan = line;
    while (*scan == ' ')
        scan++;
    if ((scan - line) % 4)
        return "indentation must be a multiple of 4 spaces";
    *level = (int) ((scan - line) / 4);
    const char *name = scan;
    while (s_is_namechar (*scan))
        scan++;
    *named = scan > name;
    if (!*named)
        return s_check_eoln (scan);
    if (name [0] == '/' || scan [-1] == '/')
        return "'/' is not valid at the start or end of a name";
    while (isspace ((unsigned char) *scan))
        scan++;
    if (*scan != '=')
        return s_check_eoln (scan);
    scan++;
    while (isspace ((unsigned char) *scan))
        scan++;
    if (*scan == '"' || *scan == '\'') {
        const char *endquote = strchr (scan + 1, *scan);
        if (!endquote)
            return *scan == '"'? "missing closing \"": "missing closing '";
        return s_check_eoln (endquote + 1);
    }
    return NULL;
}


//  --------------------------------------------------------------------------
//  Check the whole text with zconfig's rules, and record the line number of
//  every item, in order, into *lines_p (caller frees) and *count_p. Returns
//  0, or -1 with *error_p set.

static int
s_scan (const char *filename, const char *data, size_t size,
        int **lines_p, size_t *count_p, char **error_p)
{
    if (memchr (data, 0, size)) {
        s_error (error_p, "%s: not a text file (it holds a NUL byte)", filename);
        return -1;
    }
    int *lines = NULL;
    size_t count = 0;
    int last_level = -1;                //  level of the last item seen
    int lineno = 0;
    const char *next = data;
    const char *end = data + size;
    while (next < end) {
        const char *eoln = (const char *) memchr (next, '\n', (size_t) (end - next));
        size_t length = eoln? (size_t) (eoln - next): (size_t) (end - next);
        char *line = strndup (next, length);
        assert (line);
        next += length + 1;
        lineno++;
        while (length && isspace ((unsigned char) line [length - 1]))
            line [--length] = 0;

        int level = 0;
        bool named = false;
        const char *reason = s_check_line (line, &level, &named);
        if (!reason && named) {
            if (level > last_level + 1)
                reason = "indented deeper than the section above it";
            else {
                int *grown = (int *) realloc (lines, (count + 1) * sizeof (int));
                assert (grown);
                lines = grown;
                lines [count++] = lineno;
                last_level = level;
            }
        }
        free (line);
        if (reason) {
            s_error (error_p, "%s:%d: %s", filename, lineno, reason);
            free (lines);
            return -1;
        }
    }
    *lines_p = lines;
    *count_p = count;
    return 0;
}


//  --------------------------------------------------------------------------
//  Walk one level of a zconfig tree in file order, checking every item
//  against the key table and storing values. Returns 0 or -1.

typedef struct {
    lh_config_t *config;                //  config being loaded
    const char *filename;               //  for messages
    const int *lines;                   //  line of each item, in order
    size_t count;                       //  number of lines
    size_t next;                        //  index of the next item's line
    char **error_p;                     //  where to put the error
} s_walk_t;

static int
s_walk (s_walk_t *walk, zconfig_t *parent, const char *prefix)
{
    for (zconfig_t *item = zconfig_child (parent); item; item = zconfig_next (item)) {
        int line = walk->next < walk->count? walk->lines [walk->next]: 0;
        walk->next++;
        const char *name = zconfig_name (item);
        const char *value = zconfig_value (item);
        if (!value)
            value = "";
        char *path = *prefix? zsys_sprintf ("%s/%s", prefix, name): strdup (name);
        assert (path);
        int rc = 0;
        int index = s_key_find (path);
        if (index >= 0) {
            const s_key_t *key = &s_keys [index];
            if (zconfig_child (item)) {
                s_error (walk->error_p, "%s:%d: '%s' is a key, not a section", walk->filename, line, path);
                rc = -1;
            }
            else
            if (walk->config->lines [index]) {
                s_error (walk->error_p, "%s:%d: key '%s' is set twice (first on line %d)",
                         walk->filename, line, path, walk->config->lines [index]);
                rc = -1;
            }
            else
            if (!s_value_valid (key->type, value) || !s_value_in_range (key, value)) {
                char *problem = s_value_problem (key, value);
                s_error (walk->error_p, "%s:%d: %s", walk->filename, line, problem);
                free (problem);
                rc = -1;
            }
            else {
                walk->config->values [index] = strdup (value);
                walk->config->lines [index] = line? line: -1;
            }
        }
        else
        if (s_is_section (path)) {
            if (*value) {
                s_error (walk->error_p, "%s:%d: '%s' is a section, not a key (it takes no value)",
                         walk->filename, line, path);
                rc = -1;
            }
            else
                rc = s_walk (walk, item, path);
        }
        else {
            char *retired = zconfig_child (item)? NULL: s_retired_problem (path);
            if (retired)
                s_error (walk->error_p, "%s:%d: %s", walk->filename, line, retired);
            else
                s_error (walk->error_p, "%s:%d: unknown %s '%s'", walk->filename, line,
                         zconfig_child (item)? "section": "key", path);
            free (retired);
            rc = -1;
        }
        free (path);
        if (rc)
            return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Read a whole file, up to S_FILE_MAX bytes. Returns a chunk, or NULL with
//  *error_p set.

static zchunk_t *
s_read_file (const char *path, char **error_p)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        s_error (error_p, "%s: cannot open: %s", path, strerror (errno));
        return NULL;
    }
    zchunk_t *chunk = zchunk_new (NULL, S_FILE_MAX + 1);
    assert (chunk);
    size_t size = fread (zchunk_data (chunk), 1, S_FILE_MAX + 1, file);
    bool failed = ferror (file);
    fclose (file);
    if (failed) {
        s_error (error_p, "%s: cannot read: %s", path, strerror (errno));
        zchunk_destroy (&chunk);
    }
    else
    if (size > S_FILE_MAX) {
        s_error (error_p, "%s: larger than %d bytes: not a config file", path, S_FILE_MAX);
        zchunk_destroy (&chunk);
    }
    else
        zchunk_set (chunk, zchunk_data (chunk), size);
    return chunk;
}


//  --------------------------------------------------------------------------
//  Load a config file; path NULL loads only the defaults. Returns NULL on
//  error and sets *error_p to a sentence the caller frees.

lh_config_t *
lh_config_load (const char *path, char **error_p)
{
    lh_config_t *self = (lh_config_t *) zmalloc (sizeof (lh_config_t));
    assert (self);
    if (!path)
        return self;

    zchunk_t *chunk = s_read_file (path, error_p);
    if (!chunk) {
        lh_config_destroy (&self);
        return NULL;
    }
    int *lines = NULL;
    size_t count = 0;
    int rc = s_scan (path, (const char *) zchunk_data (chunk), zchunk_size (chunk),
                     &lines, &count, error_p);
    if (rc == 0) {
        zconfig_t *root = zconfig_chunk_load (chunk);
        if (root) {
            s_walk_t walk = { self, path, lines, count, 0, error_p };
            rc = s_walk (&walk, root, "");
            zconfig_destroy (&root);
        }
        else {
            s_error (error_p, "%s: not valid ZPL", path);
            rc = -1;
        }
    }
    free (lines);
    zchunk_destroy (&chunk);
    if (rc)
        lh_config_destroy (&self);
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy; nulls the caller's pointer

void
lh_config_destroy (lh_config_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        lh_config_t *self = *self_p;
        for (size_t index = 0; index < S_KEY_COUNT; index++)
            free (self->values [index]);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Set a key's value in memory (command-line overrides, tests). Returns 0,
//  or -1 if the key is unknown or the value is not of the key's type or
//  outside its range (lh_config_explain says which).

int
lh_config_set (lh_config_t *self, const char *path, const char *value)
{
    assert (self);
    assert (path);
    assert (value);
    int index = s_key_find (path);
    if (index < 0 || !s_value_valid (s_keys [index].type, value)
    ||  !s_value_in_range (&s_keys [index], value))
        return -1;
    free (self->values [index]);
    self->values [index] = strdup (value);
    assert (self->values [index]);
    return 0;
}


//  --------------------------------------------------------------------------
//  Value of a declared key (the file's, else the default). Looking up an
//  undeclared key, or one of another type, is a programming error.

static const char *
s_value (lh_config_t *self, const char *path, s_type_t type)
{
    assert (self);
    int index = s_key_find (path);
    if (index < 0) {
        zsys_error ("lh_config: '%s' is not declared in lh_config_keys.h", path);
        assert (index >= 0);
    }
    assert (s_keys [index].type == type);
    return self->values [index]? self->values [index]: s_keys [index].value;
}

const char *
lh_config_str (lh_config_t *self, const char *path)
{
    return s_value (self, path, S_TYPE_STR);
}

//  --------------------------------------------------------------------------
//  Why value cannot be set for path, as a sentence the caller frees
//  ("unknown key ...", "key 'x' must be an integer, not 'y'", "key 'x' is
//  '0': it must be 1..256"), or NULL when it can

char *
lh_config_explain (const char *path, const char *value)
{
    assert (path);
    assert (value);
    int index = s_key_find (path);
    if (index < 0) {
        char *retired = s_retired_problem (path);
        return retired? retired: zsys_sprintf ("unknown key '%s' (see `lakehouse config`)", path);
    }
    return s_value_problem (&s_keys [index], value);
}


int64_t
lh_config_int (lh_config_t *self, const char *path)
{
    return strtoll (s_value (self, path, S_TYPE_INT), NULL, 10);
}

bool
lh_config_bool (lh_config_t *self, const char *path)
{
    return streq (s_value (self, path, S_TYPE_BOOL), "true");
}


//  --------------------------------------------------------------------------
//  Print the keys and sections under prefix (length plen, "" for the top),
//  in the order the table first names them, indented by level.

static void
s_print_section (FILE *file, const char *prefix, size_t plen, int level)
{
    for (size_t index = 0; index < S_KEY_COUNT; index++) {
        const s_key_t *key = &s_keys [index];
        if (strncmp (key->path, prefix, plen) != 0)
            continue;
        const char *rest = key->path + plen;
        const char *slash = strchr (rest, '/');
        int indent = level * 4;
        if (!slash) {
            //  A key at this level: its comment, then name = default
            fprintf (file, "%*s#   %s\n", indent, "", key->comment);
            if (*key->range) {
                char *range = s_range_text (key);
                fprintf (file, "%*s#   (%s)\n", indent, "", range);
                free (range);
            }
            if (key->type == S_TYPE_STR) {
                char quote = strchr (key->value, '"')? '\'': '"';
                assert (!strchr (key->value, quote));
                fprintf (file, "%*s%s = %c%s%c\n", indent, "", rest, quote, key->value, quote);
            }
            else
                fprintf (file, "%*s%s = %s\n", indent, "", rest, key->value);
            continue;
        }
        //  A section: print it where the table first names it
        size_t nlen = (size_t) (slash - rest);
        bool seen = false;
        for (size_t before = 0; before < index && !seen; before++)
            if (strncmp (s_keys [before].path, key->path, plen + nlen + 1) == 0)
                seen = true;
        if (seen)
            continue;
        if (level == 0)
            fprintf (file, "\n");
        fprintf (file, "%*s%.*s\n", indent, "", (int) nlen, rest);
        char *section = strndup (key->path, plen + nlen + 1);
        assert (section);
        s_print_section (file, section, plen + nlen + 1, level + 1);
        free (section);
    }
}


//  --------------------------------------------------------------------------
//  Print every declared key with its comment and default, as ZPL

void
lh_config_print_defaults (FILE *file)
{
    fprintf (file,
        "#   Lakehouse configuration (ZPL, read with czmq zconfig)\n"
        "#\n"
        "#   Generated from common/lh_config_keys.h by `lakehouse config`: every\n"
        "#   key there is here, set to its default. Sections nest by indenting 4\n"
        "#   spaces; `name = \"value\"`; `#` starts a comment. A key this program\n"
        "#   does not know, or a value of the wrong type or outside its range,\n"
        "#   stops it at start with the file, line and key. Remove any key to\n"
        "#   use its default. Secrets never go here: they come from environment\n"
        "#   variables or 0600 files.\n"
        "#   Use another file with --config FILE or LAKEHOUSE_CONFIG=FILE.\n");
    s_print_section (file, "", 0, 0);
}


//  --------------------------------------------------------------------------
//  Self test of this class

//  Write text to a temporary file; returns its path (caller frees, unlinks)
static char *
s_temp_file (const char *text)
{
    char *path = strdup ("/tmp/lh_config_test_XXXXXX");
    assert (path);
    int fd = mkstemp (path);
    assert (fd >= 0);
    size_t size = strlen (text);
    ssize_t rc = write (fd, text, size);
    assert (rc == (ssize_t) size);
    close (fd);
    return path;
}

//  Load text as a config file; returns the error, or NULL if it loaded
static char *
s_try (const char *text, lh_config_t **config_p)
{
    char *path = s_temp_file (text);
    char *error = NULL;
    lh_config_t *config = lh_config_load (path, &error);
    unlink (path);
    assert ((config == NULL) == (error != NULL));
    if (error) {
        //  Every message names the file
        assert (strncmp (error, path, strlen (path)) == 0);
        char *short_error = strdup (error + strlen (path));
        free (error);
        error = short_error;
    }
    free (path);
    if (config_p)
        *config_p = config;
    else
        lh_config_destroy (&config);
    return error;
}

//  Find conf/lakehouse.cfg: under $LH_ROOT (set by tests/run), else in the
//  working directory (the top of the tree)
static char *
s_committed_config (void)
{
    const char *srcdir = getenv ("LH_ROOT");
    char *path = zsys_sprintf ("%s%sconf/lakehouse.cfg", srcdir? srcdir: "", srcdir? "/": "");
    assert (path);
    return path;
}

typedef struct {
    const char *text;                   //  file contents
    const char *error;                  //  expected error after "FILE", or NULL
} s_case_t;

void
lh_config_test (bool verbose)
{
    printf (" * lh_config: ");

    //  @selftest
    //  The table itself: defaults of the right type, no key that is also
    //  a section, no key declared twice, no value zconfig cannot quote
    for (size_t index = 0; index < S_KEY_COUNT; index++) {
        const s_key_t *key = &s_keys [index];
        if (!s_value_valid (key->type, key->value)
        ||  !s_value_in_range (key, key->value)
        ||  (key->type == S_TYPE_BOOL && *key->range)
        ||  (key->type == S_TYPE_INT && *key->range && !strstr (key->range, "..")
             && strchr (key->range, '.'))
        ||  s_is_section (key->path)
        ||  s_key_find (key->path) != (int) index
        ||  (strchr (key->value, '"') && strchr (key->value, '\''))
        ||  strchr (key->comment, '\n')) {
            fprintf (stderr, "bad declaration of '%s' in lh_config_keys.h\n", key->path);
            assert (false);
        }
    }

    //  Defaults only
    char *error = NULL;
    lh_config_t *config = lh_config_load (NULL, &error);
    assert (config && !error);
    assert (streq (lh_config_str (config, "bus/endpoint"), "tcp://127.0.0.1:5570"));
    assert (lh_config_int (config, "broker/hb_ivl") == 1000);
    assert (lh_config_bool (config, "bus/plain"));
    assert (lh_config_set (config, "broker/hb_ivl", "250") == 0);
    assert (lh_config_int (config, "broker/hb_ivl") == 250);
    assert (lh_config_set (config, "broker/hb_ivl", "soon") == -1);
    assert (lh_config_set (config, "broker/hb_ival", "250") == -1);
    assert (lh_config_set (config, "bus/plain", "false") == 0);
    assert (!lh_config_bool (config, "bus/plain"));
    //  Ranges: a value outside one is refused, and explained
    assert (lh_config_set (config, "broker/hb_ivl", "9") == -1);
    assert (lh_config_set (config, "broker/hb_ivl", "3600001") == -1);
    assert (lh_config_set (config, "broker/hb_ivl", "10") == 0);
    assert (lh_config_set (config, "storaged/backend", "s4") == -1);
    assert (lh_config_set (config, "storaged/backend", "s3") == 0);
    assert (lh_config_set (config, "ingestd/page_size", "1000") == -1);
    assert (lh_config_set (config, "ingestd/page_size", "4096") == 0);
    assert (lh_config_set (config, "vectord/map_bytes", "1048575") == -1);
    assert (lh_config_set (config, "vectord/map_bytes", "999999999999") == 0);
    char *why = lh_config_explain ("broker/hb_ivl", "9");
    assert (why && streq (why, "key 'broker/hb_ivl' is '9': it must be 10..3600000"));
    zstr_free (&why);
    why = lh_config_explain ("storaged/backend", "s4");
    assert (why && streq (why, "key 'storaged/backend' is 's4': it must be one of fs, s3"));
    zstr_free (&why);
    why = lh_config_explain ("vectord/map_bytes", "5");
    assert (why && streq (why, "key 'vectord/map_bytes' is '5': it must be at least 1048576"));
    zstr_free (&why);
    why = lh_config_explain ("broker/hb_ivl", "soon");
    assert (why && streq (why, "key 'broker/hb_ivl' must be an integer, not 'soon'"));
    zstr_free (&why);
    why = lh_config_explain ("broker/nosuch", "1");
    assert (why && streq (why, "unknown key 'broker/nosuch' (see `lakehouse config`)"));
    zstr_free (&why);
    //  A retired key names the key that replaced it
    assert (lh_config_set (config, "gateway/ingest_max", "1000") == -1);
    why = lh_config_explain ("gateway/ingest_max", "1000");
    assert (why && streq (why, "key 'gateway/ingest_max' is no longer read: set "
                               "'ingest/max_bytes' instead (docs/configuration.md)"));
    zstr_free (&why);
    for (const s_retired_t *retired = s_retired; retired->path; retired++) {
        assert (s_key_find (retired->path) < 0);
        assert (s_key_find (retired->replaced_by) >= 0);
    }
    assert (lh_config_explain ("broker/hb_ivl", "250") == NULL);
    lh_config_destroy (&config);
    lh_config_destroy (&config);

    //  A missing file is an error naming it
    config = lh_config_load ("/nonexistent/lakehouse.cfg", &error);
    assert (!config);
    assert (strstr (error, "/nonexistent/lakehouse.cfg: cannot open"));
    zstr_free (&error);

    //  Good files, nested and flat spellings
    error = s_try (
        "#   a comment\n"
        "broker\n"
        "    hb_ivl = 250      # trailing comment\n"
        "    name = \"my # broker\"\n"
        "\n"
        "bus/plain = false\n"
        "actors\n"
        "    echo\n"
        "        workers = 3\n"
        "        #   indented comment\n"
        "    run = 'echo,storaged'\n"
        "data\n", &config);
    assert (!error);
    assert (lh_config_int (config, "broker/hb_ivl") == 250);
    assert (streq (lh_config_str (config, "broker/name"), "my # broker"));
    assert (!lh_config_bool (config, "bus/plain"));
    assert (lh_config_int (config, "actors/echo/workers") == 3);
    assert (streq (lh_config_str (config, "actors/run"), "echo,storaged"));
    assert (streq (lh_config_str (config, "data/dir"), "./var"));
    lh_config_destroy (&config);

    //  Bad files: each error names the line and the key
    s_case_t cases [] = {
        { "broker\n    hb_ival = 5\n",          ":2: unknown key 'broker/hb_ival'" },
        { "#\n\nbrokr\n    hb_ivl = 5\n",       ":3: unknown section 'brokr'" },
        { "nosuch = 1\n",                       ":1: unknown key 'nosuch'" },
        { "ingestd\n    max_ingest_bytes = 5\n", ":2: key 'ingestd/max_ingest_bytes' is no longer read: set 'ingest/max_bytes' instead (docs/configuration.md)" },
        { "broker\n    hb_ivl = soon\n",        ":2: key 'broker/hb_ivl' must be an integer, not 'soon'" },
        { "broker/hb_ivl = 99999999999999999999\n", ":1: key 'broker/hb_ivl' must be an integer, not '99999999999999999999'" },
        { "broker/hb_ivl = \"\"\n",             ":1: key 'broker/hb_ivl' must be an integer, not ''" },
        { "bus\n    plain = yes\n",             ":2: key 'bus/plain' must be a boolean (true or false), not 'yes'" },
        { "#\nbroker\n    hb_live = 0\n",      ":3: key 'broker/hb_live' is '0': it must be 1..1000" },
        { "log/level = loud\n",                 ":1: key 'log/level' is 'loud': it must be one of debug, info, warn, error" },
        { "storaged\n    put_slots = 0\n",      ":2: key 'storaged/put_slots' is '0': it must be 1..100000" },
        { "broker = 5\n",                       ":1: 'broker' is a section, not a key (it takes no value)" },
        { "broker\n    hb_ivl = 10\n        x = 1\n", ":2: 'broker/hb_ivl' is a key, not a section" },
        { "broker\n    hb_ivl = 10\nbroker/hb_ivl = 20\n", ":3: key 'broker/hb_ivl' is set twice (first on line 2)" },
        { "broker\n  hb_ivl = 10\n",            ":2: indentation must be a multiple of 4 spaces" },
        { "broker\n        hb_ivl = 10\n",      ":2: indented deeper than the section above it" },
        { "broker\n    name = \"open\n",        ":2: missing closing \"" },
        { "broker\n    name = \"a\" b\n",       ":2: invalid syntax (text after the value; quote values that hold spaces)" },
        { "broker/\n",                          ":1: '/' is not valid at the start or end of a name" },
        { "hello world\n",                      ":1: invalid syntax (text after the value; quote values that hold spaces)" },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++) {
        error = s_try (cases [index].text, NULL);
        if (verbose)
            printf ("\n    %s", error? error: "(loaded)");
        if (!error || !streq (error, cases [index].error)) {
            fprintf (stderr, "case %zu: expected '%s', got '%s'\n", index, cases [index].error,
                    error? error: "(loaded)");
            assert (false);
        }
        free (error);
    }

    //  The printed defaults load, and give every default back
    char *text = NULL;
    size_t size = 0;
    FILE *memory = open_memstream (&text, &size);
    assert (memory);
    lh_config_print_defaults (memory);
    fclose (memory);
    error = s_try (text, &config);
    if (error)
        fprintf (stderr, "printed defaults do not load: %s\n", error);
    assert (!error);
    for (size_t index = 0; index < S_KEY_COUNT; index++) {
        assert (config->values [index]);
        assert (streq (config->values [index], s_keys [index].value));
    }
    lh_config_destroy (&config);

    //  The committed conf/lakehouse.cfg loads, and is exactly the printed
    //  defaults (so it cannot drift from lh_config_keys.h)
    char *path = s_committed_config ();
    config = lh_config_load (path, &error);
    if (!config)
        fprintf (stderr, "%s\n", error);
    assert (config);
    lh_config_destroy (&config);
    zchunk_t *chunk = s_read_file (path, &error);
    assert (chunk);
    if (zchunk_size (chunk) != size || memcmp (zchunk_data (chunk), text, size) != 0) {
        fprintf (stderr, "%s differs from lh_config_print_defaults: regenerate it with "
                "`build/lakehouse config > conf/lakehouse.cfg`\n", path);
        assert (false);
    }
    zchunk_destroy (&chunk);
    free (path);
    free (text);
    //  @end

    printf ("OK\n");
}
