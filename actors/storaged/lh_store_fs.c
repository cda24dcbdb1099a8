/*  =========================================================================
    lh_store_fs - the filesystem backend of lh_store

    Layout under the store's directory:

        objects/    one file per object; a key's components before the
                    last are directories named COMPONENT.d, the last is a
                    file named COMPONENT.o (so "a" and "a/b" can both be
                    objects). Each file is a 128-byte header ("LHO1 ",
                    the ETag, padding) followed by the content.
        tmp/        whole puts being written: temp file, fsync, rename
                    into objects/, fsync of the directory. A crash leaves
                    at worst a temp file here, never a torn object.
        uploads/ID/ a multipart upload: "data" (header + parts so far)
                    and "state" (key, next part, size, SHA-256 state),
                    two checked slots rewritten in place by turns after
                    each part. Commit links "data" aside and renames
                    that into objects/ like a put.

    Temp files and uploads untouched for the sweep age are removed by
    lh_store_sweep. Renames and conditions are serialized by one mutex
    per store, so a conditional put is atomic within a process.
    =========================================================================
*/

#include "lh_store.h"
#include "lh_sha256.h"
#include "lh_actor.h"
#include <sodium.h>
#include <dirent.h>
#include <sys/file.h>

#define S_HEADER_SIZE   128             //  object file header
#define S_MAGIC         "LHO1 "
#define S_NAME_MAX      253             //  component bytes (NAME_MAX - 2)
#define S_PARALLEL_MIN  (512 * 1024)    //  hash beside the write from here

typedef struct {
    char *root;                         //  the store's directory
    char *objects;                      //  root/objects
    char *tmp;                          //  root/tmp
    char *uploads;                      //  root/uploads
    pthread_mutex_t lock;               //  conditions + renames + removes
} s_fs_t;

//  State of one multipart upload, as stored in its "state" file
typedef struct {
    char magic [8];                     //  "LHUP0001"
    uint32_t next_part;                 //  part expected next (1-based)
    uint32_t key_size;                  //  bytes in key
    uint64_t size;                      //  content bytes so far
    uint64_t prev_size;                 //  content bytes before last part
    crypto_hash_sha256_state hash;      //  hash of size bytes
    crypto_hash_sha256_state prev_hash; //  hash of prev_size bytes
    char key [LH_STORE_KEY_MAX + 1];    //  the object's key
    uint64_t seq_read;                  //  the slot's seq it was read from
} s_upload_t;

#define S_UPLOAD_MAGIC  "LHUP0001"

//  The state file holds two slots, S_SLOT_SIZE bytes apart, written in
//  place by turns (slot = seq % 2): the valid one with the higher seq is
//  the state. A slot torn by a crash, or read while it is written (an
//  upload_read follower), fails its check and the other one, the state
//  before, stands. Writing a new file and renaming it over the old one,
//  as this did before, cost 2-4 ms per part on ext4 (a rename over a file
//  flushes it): 0.15 s of a 390 MB upload in 8 MiB parts. A state file
//  of the old layout (one s_upload_t, no check) is read as seq 0.
typedef struct {
    s_upload_t state;
    uint64_t seq;                       //  1, 2, 3 ... per write
    uint8_t check [crypto_generichash_BYTES];   //  BLAKE2b of the above
} s_slot_t;

#define S_SLOT_SIZE     4096
_Static_assert (sizeof (s_slot_t) <= S_SLOT_SIZE, "a state slot fits its room");


//  --------------------------------------------------------------------------
//  Write all of data at offset; returns 0 or -1 (errno set). Large data
//  goes in pieces of S_WRITE_PIECE bytes: the kernel sizes its page-cache
//  folios by the write, and under a hypervisor that takes back free
//  memory (a balloon's free page reporting) the large free blocks that
//  multi-megabyte folios come from are the ones handed back, so every
//  such write faults its memory in again: 4 MiB writes of a fresh 384 MiB
//  file took 1.0 s with fsync where 256 KiB writes took 0.21 s (bench
//  notes in docs/operations.md). On other machines the extra syscalls
//  cost nothing measurable.

#define S_WRITE_PIECE   (256 * 1024)

static int
s_pwrite_all (int fd, const void *data, size_t size, off_t offset)
{
    const uint8_t *bytes = (const uint8_t *) data;
    while (size > 0) {
        ssize_t rc = pwrite (fd, bytes, size < S_WRITE_PIECE? size: S_WRITE_PIECE, offset);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        bytes += rc;
        size -= (size_t) rc;
        offset += rc;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Read exactly size bytes at offset; returns 0, or -1 (errno set; EIO on
//  a short file)

static int
s_pread_all (int fd, void *data, size_t size, off_t offset)
{
    uint8_t *bytes = (uint8_t *) data;
    while (size > 0) {
        ssize_t rc = pread (fd, bytes, size, offset);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (rc == 0) {
            errno = EIO;
            return -1;
        }
        bytes += rc;
        size -= (size_t) rc;
        offset += rc;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Hash data into state and write it at offset, the two side by side on
//  two threads when there is enough of it to pay for a thread (the copy
//  into the page cache and the SHA-256 take about as long each). Returns
//  0 or -1 (errno set).

typedef struct {
    crypto_hash_sha256_state *state;    //  hash to update
    const void *data;                   //  bytes
    size_t size;                        //  how many
} s_hash_job_t;

//  The hashing half (a thread body)
static void *
s_hash_run (void *arg)
{
    s_hash_job_t *job = (s_hash_job_t *) arg;
    lh_sha256_update (job->state, job->data, job->size);
    return NULL;
}


//  --------------------------------------------------------------------------
//  Hash and write side by side (see above); returns 0 or -1 (errno set)

static int
s_hash_write (int fd, crypto_hash_sha256_state *state, const void *data, size_t size,
              off_t offset)
{
    s_hash_job_t job = { state, data, size };
    pthread_t thread;
    bool helper = size >= S_PARALLEL_MIN
               && pthread_create (&thread, NULL, s_hash_run, &job) == 0;
    if (!helper)
        s_hash_run (&job);
    int rc = s_pwrite_all (fd, data, size, offset);
    int code = errno;
    if (helper)
        pthread_join (thread, NULL);
    errno = code;
    return rc;
}


//  --------------------------------------------------------------------------
//  fsync a file that may hold hundreds of megabytes not yet on the device
//  (an upload's commit): on a busy disk that takes seconds, so it runs on
//  a helper thread while this one keeps its worker's bus session alive
//  (lh_keepalive every S_FSYNC_BEAT_MS). Returns 0 or -1 (errno set).

#define S_FSYNC_BEAT_MS 100             //  keepalive interval during an fsync

typedef struct {
    int fd;                             //  file to sync
    int rc;                             //  fsync's result
    int code;                           //  its errno
} s_fsync_job_t;

static void *
s_fsync_run (void *arg)
{
    s_fsync_job_t *job = (s_fsync_job_t *) arg;
    job->rc = fsync (job->fd);
    job->code = errno;
    return NULL;
}

static int
s_fsync_alive (int fd)
{
    s_fsync_job_t job = { fd, 0, 0 };
    pthread_t thread;
    if (pthread_create (&thread, NULL, s_fsync_run, &job))
        return fsync (fd);
    while (true) {
        struct timespec until;
        clock_gettime (CLOCK_REALTIME, &until);
        until.tv_nsec += S_FSYNC_BEAT_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (pthread_timedjoin_np (thread, NULL, &until) == 0)
            break;
        lh_keepalive ();
    }
    errno = job.code;
    return job.rc;
}


//  --------------------------------------------------------------------------
//  fsync a directory so a rename or unlink in it is durable

static int
s_fsync_dir (const char *path)
{
    int fd = open (path, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int rc = fsync (fd);
    close (fd);
    return rc;
}


//  --------------------------------------------------------------------------
//  Create a directory and its parents; returns 0 or -1

static int
s_mkdir_p (const char *path)
{
    char *copy = strdup (path);
    assert (copy);
    int rc = 0;
    for (char *slash = strchr (copy + 1, '/'); ; slash = strchr (slash + 1, '/')) {
        if (slash)
            *slash = 0;
        if (mkdir (copy, 0755) && errno != EEXIST) {
            rc = -1;
            break;
        }
        if (!slash)
            break;
        *slash = '/';
    }
    free (copy);
    return rc;
}


//  --------------------------------------------------------------------------
//  Map an errno from the filesystem to a store error

static int
s_io_error (lh_store_error_t *error, const char *what, const char *key)
{
    int code = errno;
    if (code == ENOSPC || code == EDQUOT)
        return lh_store_error (error, 503, "no_space",
                               "%s '%s': no space left on the storage device", what, key);
    if (code == ENAMETOOLONG)
        return lh_store_error (error, 400, "bad_key",
                               "%s '%s': a key component is too long for the fs backend", what, key);
    return lh_store_error (error, 500, "io_error", "%s '%s': %s", what, key, strerror (code));
}


//  --------------------------------------------------------------------------
//  Build the directory and file paths of a key (both fresh strings), or
//  fail with 400 when a component is too long for a file name.

static int
s_object_path (s_fs_t *self, const char *key, char **dir_p, char **path_p,
               lh_store_error_t *error)
{
    size_t key_size = strlen (key);
    //  Each component gains 2 bytes (".d/" vs "/", ".o")
    size_t capacity = strlen (self->objects) + 1 + key_size * 3 + 8;
    char *path = (char *) malloc (capacity);
    assert (path);
    char *out = path + sprintf (path, "%s/", self->objects);
    const char *start = key;
    char *dir_end = out - 1;
    while (true) {
        const char *slash = strchr (start, '/');
        size_t size = slash? (size_t) (slash - start): strlen (start);
        if (size > S_NAME_MAX) {
            free (path);
            return lh_store_error (error, 400, "bad_key",
                                   "key has a component longer than %d bytes (fs backend limit)",
                                   S_NAME_MAX);
        }
        memcpy (out, start, size);
        out += size;
        if (!slash) {
            memcpy (out, ".o", 3);
            break;
        }
        memcpy (out, ".d/", 3);
        out += 3;
        dir_end = out - 1;
        start = slash + 1;
    }
    *dir_p = strndup (path, (size_t) (dir_end - path));
    assert (*dir_p);
    *path_p = path;
    return 0;
}


//  --------------------------------------------------------------------------
//  The object file header for an ETag

static void
s_header_fill (uint8_t *header, const char *etag)
{
    memset (header, ' ', S_HEADER_SIZE);
    memcpy (header, S_MAGIC, 5);
    memcpy (header + 5, etag, LH_STORE_ETAG_SIZE);
    header [S_HEADER_SIZE - 1] = '\n';
}


//  --------------------------------------------------------------------------
//  Describe an open object file; returns 0, or -1 with a 500 error if the
//  file is not an object.

static int
s_info_fd (int fd, const char *key, lh_store_info_t *info, lh_store_error_t *error)
{
    struct stat st;
    uint8_t header [S_HEADER_SIZE];
    if (fstat (fd, &st))
        return s_io_error (error, "stat", key);
    if (st.st_size < S_HEADER_SIZE
    ||  s_pread_all (fd, header, S_HEADER_SIZE, 0)
    ||  memcmp (header, S_MAGIC, 5) != 0)
        return lh_store_error (error, 500, "corrupt_object",
                               "object '%s' has no valid header", key);
    memcpy (info->etag, header + 5, LH_STORE_ETAG_SIZE);
    info->etag [LH_STORE_ETAG_SIZE] = 0;
    info->size = (uint64_t) st.st_size - S_HEADER_SIZE;
    info->mtime_ms = (int64_t) st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    return 0;
}


//  --------------------------------------------------------------------------
//  Open an object file for reading; -1 with 404 if there is none

static int
s_open_object (s_fs_t *self, const char *key, lh_store_error_t *error)
{
    char *dir, *path;
    if (s_object_path (self, key, &dir, &path, error))
        return -1;
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    int code = errno;
    free (dir);
    free (path);
    if (fd < 0) {
        errno = code;
        if (code == ENOENT || code == ENOTDIR)
            return lh_store_error (error, 404, "no_such_key", "no object under key '%s'", key);
        return s_io_error (error, "open", key);
    }
    return fd;
}


//  --------------------------------------------------------------------------
//  Open a fresh temp file in dir; its path goes into path (PATH_MAX)

static int
s_temp_open (const char *dir, char *path, const char *key, lh_store_error_t *error)
{
    uint8_t random [12];
    char hex [25];
    randombytes_buf (random, sizeof (random));
    lh_store_hex (random, sizeof (random), hex);
    snprintf (path, PATH_MAX, "%s/.tmp-%s.t", dir, hex);
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return s_io_error (error, "create temp file for", key);
    return fd;
}


//  --------------------------------------------------------------------------
//  Install a finished, fsynced file as the object under key: under the
//  lock, check the condition, make the directories, rename, fsync the
//  directory. On failure the file at from is removed.

static int
s_install (s_fs_t *self, const char *from, const char *key,
           const lh_store_cond_t *cond, lh_store_error_t *error)
{
    char *dir, *path;
    if (s_object_path (self, key, &dir, &path, error)) {
        unlink (from);
        return -1;
    }
    int rc = 0;
    pthread_mutex_lock (&self->lock);
    if (cond && (cond->if_none_match || cond->if_match)) {
        lh_store_info_t current;
        bool exists = false;
        int fd = open (path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            exists = s_info_fd (fd, key, &current, error) == 0;
            close (fd);
        }
        rc = lh_store_cond_check (cond, exists, exists? current.etag: "", key, error);
    }
    if (rc == 0 && s_mkdir_p (dir))
        rc = s_io_error (error, "create directory for", key);
    if (rc == 0 && rename (from, path))
        rc = s_io_error (error, "rename into place", key);
    if (rc == 0 && s_fsync_dir (dir))
        rc = s_io_error (error, "fsync directory of", key);
    pthread_mutex_unlock (&self->lock);
    if (rc)
        unlink (from);
    free (dir);
    free (path);
    return rc;
}


//  --------------------------------------------------------------------------
//  Put: stream into a temp file while hashing, fsync, install

static int
s_fs_put (void *handle, const char *key, const void *data, size_t size,
          const lh_store_cond_t *cond, lh_store_info_t *info,
          lh_store_error_t *error)
{
    s_fs_t *self = (s_fs_t *) handle;
    char *dir, *path;
    if (s_object_path (self, key, &dir, &path, error))
        return -1;
    free (dir);
    free (path);

    char tmp [PATH_MAX];
    int fd = s_temp_open (self->tmp, tmp, key, error);
    if (fd < 0)
        return -1;
    crypto_hash_sha256_state hash;
    crypto_hash_sha256_init (&hash);
    uint8_t header [S_HEADER_SIZE];
    memset (header, ' ', sizeof (header));
    const uint8_t *bytes = (const uint8_t *) data;
    int rc = s_pwrite_all (fd, header, S_HEADER_SIZE, 0);
    if (rc == 0)
        rc = s_hash_write (fd, &hash, bytes, size, S_HEADER_SIZE);
    uint8_t digest [crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final (&hash, digest);
    lh_store_hex (digest, sizeof (digest), info->etag);
    s_header_fill (header, info->etag);
    if (rc == 0)
        rc = s_pwrite_all (fd, header, S_HEADER_SIZE, 0);
    if (rc == 0)
        rc = fsync (fd);
    if (rc) {
        s_io_error (error, "write", key);
        close (fd);
        unlink (tmp);
        return -1;
    }
    close (fd);
    if (s_install (self, tmp, key, cond, error))
        return -1;
    info->size = size;
    info->mtime_ms = zclock_time ();
    return 0;
}


//  --------------------------------------------------------------------------
//  Get a byte range of an object

static int
s_fs_get (void *handle, const char *key, uint64_t offset, size_t length,
          void **data_p, size_t *got, lh_store_info_t *info,
          lh_store_error_t *error)
{
    s_fs_t *self = (s_fs_t *) handle;
    *data_p = NULL;
    *got = 0;
    int fd = s_open_object (self, key, error);
    if (fd < 0)
        return -1;
    if (s_info_fd (fd, key, info, error)) {
        close (fd);
        return -1;
    }
    if (offset > info->size) {
        close (fd);
        return lh_store_error (error, 400, "bad_range",
                               "offset %" PRIu64 " is past the end of '%s' (%" PRIu64 " bytes)",
                               offset, key, info->size);
    }
    size_t size = info->size - offset < length? (size_t) (info->size - offset): length;
    if (size > 0) {
        void *data = malloc (size);
        if (!data) {
            close (fd);
            return lh_store_error (error, 503, "no_memory", "no memory for %zu bytes", size);
        }
        if (s_pread_all (fd, data, size, (off_t) (S_HEADER_SIZE + offset))) {
            free (data);
            s_io_error (error, "read", key);
            close (fd);
            return -1;
        }
        *data_p = data;
        *got = size;
    }
    close (fd);
    return 0;
}


//  --------------------------------------------------------------------------
//  Get a byte range straight into the caller's buffer (no copy)

static int
s_fs_get_into (void *handle, const char *key, uint64_t offset, size_t length,
               lh_store_alloc_fn *alloc_fn, void *arg, size_t *got,
               lh_store_info_t *info, lh_store_error_t *error)
{
    s_fs_t *self = (s_fs_t *) handle;
    *got = 0;
    int fd = s_open_object (self, key, error);
    if (fd < 0)
        return -1;
    if (s_info_fd (fd, key, info, error)) {
        close (fd);
        return -1;
    }
    if (offset > info->size) {
        close (fd);
        return lh_store_error (error, 400, "bad_range",
                               "offset %" PRIu64 " is past the end of '%s' (%" PRIu64 " bytes)",
                               offset, key, info->size);
    }
    size_t size = info->size - offset < length? (size_t) (info->size - offset): length;
    void *data = alloc_fn (arg, size);
    if (!data) {
        close (fd);
        return lh_store_error (error, 503, "no_memory", "no memory for %zu bytes", size);
    }
    if (size > 0 && s_pread_all (fd, data, size, (off_t) (S_HEADER_SIZE + offset))) {
        s_io_error (error, "read", key);
        close (fd);
        return -1;
    }
    *got = size;
    close (fd);
    return 0;
}


//  --------------------------------------------------------------------------
//  Describe an object

static int
s_fs_head (void *handle, const char *key, lh_store_info_t *info,
           lh_store_error_t *error)
{
    s_fs_t *self = (s_fs_t *) handle;
    int fd = s_open_object (self, key, error);
    if (fd < 0)
        return -1;
    int rc = s_info_fd (fd, key, info, error);
    close (fd);
    return rc;
}


//  --------------------------------------------------------------------------
//  Delete an object; empty directories above it go too

static int
s_fs_remove (void *handle, const char *key, lh_store_error_t *error)
{
    s_fs_t *self = (s_fs_t *) handle;
    char *dir, *path;
    if (s_object_path (self, key, &dir, &path, error))
        return -1;
    int rc = 0;
    pthread_mutex_lock (&self->lock);
    if (unlink (path)) {
        if (errno == ENOENT || errno == ENOTDIR)
            rc = lh_store_error (error, 404, "no_such_key", "no object under key '%s'", key);
        else
            rc = s_io_error (error, "delete", key);
    }
    else {
        s_fsync_dir (dir);
        //  Remove directories left empty, up to objects/
        size_t floor = strlen (self->objects);
        while (strlen (dir) > floor && rmdir (dir) == 0) {
            char *slash = strrchr (dir, '/');
            *slash = 0;
        }
    }
    pthread_mutex_unlock (&self->lock);
    free (dir);
    free (path);
    return rc;
}


//  --------------------------------------------------------------------------
//  Listing: a walk of objects/ in key order

typedef struct {
    char *sort;                         //  key (object) or key prefix + '/' (dir)
    char *name;                         //  file name in the directory
    bool is_dir;                        //  a COMPONENT.d directory
} s_entry_t;

typedef struct {
    const char *prefix;                 //  keys must start with this
    const char *start_after;            //  keys must sort after this, or NULL
    uint32_t limit;                     //  most keys to report
    uint32_t count;                     //  keys reported so far
    lh_store_list_fn *fn;               //  callback
    void *arg;                          //  its argument
    bool *truncated;                    //  set when a key past limit exists
    bool done;                          //  stop walking
} s_walk_t;

static int
s_entry_compare (const void *a, const void *b)
{
    return strcmp (((const s_entry_t *) a)->sort, ((const s_entry_t *) b)->sort);
}

static bool
s_starts_with (const char *text, const char *prefix)
{
    return strncmp (text, prefix, strlen (prefix)) == 0;
}

//  --------------------------------------------------------------------------
//  Walk one directory whose keys start with key_prefix

static int
s_walk_dir (s_walk_t *walk, const char *path, const char *key_prefix,
            lh_store_error_t *error)
{
    DIR *handle = opendir (path);
    if (!handle)
        return errno == ENOENT? 0: s_io_error (error, "list", key_prefix);
    size_t count = 0, capacity = 16;
    s_entry_t *entries = (s_entry_t *) malloc (capacity * sizeof (s_entry_t));
    assert (entries);
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        size_t size = strlen (entry->d_name);
        if (size < 2 || entry->d_name [size - 2] != '.')
            continue;
        char type = entry->d_name [size - 1];
        if (type != 'o' && type != 'd')
            continue;
        if (count == capacity) {
            capacity *= 2;
            entries = (s_entry_t *) realloc (entries, capacity * sizeof (s_entry_t));
            assert (entries);
        }
        s_entry_t *item = &entries [count++];
        item->is_dir = type == 'd';
        item->name = strdup (entry->d_name);
        item->sort = zsys_sprintf ("%s%.*s%s", key_prefix, (int) size - 2,
                                   entry->d_name, item->is_dir? "/": "");
        assert (item->name && item->sort);
    }
    closedir (handle);
    qsort (entries, count, sizeof (s_entry_t), s_entry_compare);

    int rc = 0;
    for (size_t index = 0; index < count && rc == 0 && !walk->done; index++) {
        s_entry_t *item = &entries [index];
        char *child = zsys_sprintf ("%s/%s", path, item->name);
        assert (child);
        if (item->is_dir) {
            //  Descend only where keys can match prefix and follow start_after
            bool wanted = s_starts_with (item->sort, walk->prefix)
                       || s_starts_with (walk->prefix, item->sort);
            if (wanted && walk->start_after
            &&  strcmp (item->sort, walk->start_after) < 0
            &&  !s_starts_with (walk->start_after, item->sort))
                wanted = false;
            if (wanted)
                rc = s_walk_dir (walk, child, item->sort, error);
        }
        else
        if (s_starts_with (item->sort, walk->prefix)
        &&  (!walk->start_after || strcmp (item->sort, walk->start_after) > 0)) {
            int fd = open (child, O_RDONLY | O_CLOEXEC);
            lh_store_info_t info;
            lh_store_error_t ignored;
            if (fd >= 0 && s_info_fd (fd, item->sort, &info, &ignored) == 0) {
                if (walk->count == walk->limit) {
                    *walk->truncated = true;
                    walk->done = true;
                }
                else {
                    walk->count++;
                    if (walk->fn (item->sort, &info, walk->arg))
                        walk->done = true;
                }
            }
            if (fd >= 0)
                close (fd);
        }
        free (child);
    }
    for (size_t index = 0; index < count; index++) {
        free (entries [index].name);
        free (entries [index].sort);
    }
    free (entries);
    return rc;
}

static int
s_fs_list (void *handle, const char *prefix, const char *start_after,
           uint32_t limit, lh_store_list_fn *fn, void *arg, bool *truncated,
           lh_store_error_t *error)
{
    s_fs_t *self = (s_fs_t *) handle;
    s_walk_t walk = {
        .prefix = prefix? prefix: "",
        .start_after = start_after && *start_after? start_after: NULL,
        .limit = limit, .fn = fn, .arg = arg, .truncated = truncated
    };
    return s_walk_dir (&walk, self->objects, "", error);
}


//  --------------------------------------------------------------------------
//  Uploads: paths, and the state file

static bool
s_upload_id_valid (const char *upload_id)
{
    if (strlen (upload_id) != 32)
        return false;
    for (const char *scan = upload_id; *scan; scan++)
        if (!isdigit ((unsigned char) *scan) && !(*scan >= 'a' && *scan <= 'f'))
            return false;
    return true;
}

static int
s_upload_read (s_fs_t *self, const char *upload_id, s_upload_t *state,
               lh_store_error_t *error)
{
    if (!s_upload_id_valid (upload_id))
        return lh_store_error (error, 404, "no_such_upload", "no upload '%.64s'", upload_id);
    char path [PATH_MAX];
    snprintf (path, sizeof (path), "%s/%s/state", self->uploads, upload_id);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lh_store_error (error, 404, "no_such_upload",
                               "no upload '%s' (finished, aborted or expired)", upload_id);
    uint8_t *file = (uint8_t *) zmalloc (2 * S_SLOT_SIZE);
    assert (file);
    ssize_t got = pread (fd, file, 2 * S_SLOT_SIZE, 0);
    close (fd);
    const s_upload_t *found = NULL;
    uint64_t best = 0;
    for (int slot = 0; slot < 2 && got > 0; slot++) {
        const s_slot_t *item = (const s_slot_t *) (file + slot * S_SLOT_SIZE);
        if ((size_t) got < (size_t) slot * S_SLOT_SIZE + sizeof (s_slot_t))
            break;
        uint8_t check [crypto_generichash_BYTES];
        crypto_generichash (check, sizeof (check), (const uint8_t *) item,
                            offsetof (s_slot_t, check), NULL, 0);
        if (sodium_memcmp (check, item->check, sizeof (check)) == 0
        &&  (!found || item->seq > best)) {
            found = &item->state;
            best = item->seq;
        }
    }
    //  The old layout: one state without seq_read, no check
    size_t legacy = offsetof (s_upload_t, seq_read);
    if (!found && (size_t) got == legacy) {
        memset (state, 0, sizeof (*state));
        memcpy (state, file, legacy);
        found = state;
    }
    else
    if (found) {
        *state = *found;
        state->seq_read = best;
    }
    free (file);
    if (!found || memcmp (state->magic, S_UPLOAD_MAGIC, 8) != 0
    ||  state->key_size == 0 || state->key_size > LH_STORE_KEY_MAX
    ||  state->key [state->key_size] != 0 || state->next_part == 0)
        return lh_store_error (error, 500, "corrupt_upload",
                               "upload '%s' has an unreadable state file", upload_id);
    return 0;
}

static int
s_upload_write (s_fs_t *self, const char *upload_id, s_upload_t *state,
                lh_store_error_t *error)
{
    char path [PATH_MAX];
    snprintf (path, sizeof (path), "%s/%s/state", self->uploads, upload_id);
    int fd = open (path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return s_io_error (error, "write upload state of", state->key);
    s_slot_t slot;
    memset (&slot, 0, sizeof (slot));
    state->seq_read++;
    slot.state = *state;
    slot.seq = state->seq_read;
    crypto_generichash (slot.check, sizeof (slot.check), (const uint8_t *) &slot,
                        offsetof (s_slot_t, check), NULL, 0);
    int rc = s_pwrite_all (fd, &slot, sizeof (slot), (off_t) (slot.seq % 2) * S_SLOT_SIZE);
    close (fd);
    if (rc)
        return s_io_error (error, "write upload state of", state->key);
    return 0;
}

//  Open an upload's data file, locked against other writers (flock, so
//  this holds across processes sharing the directory)
static int
s_upload_lock (s_fs_t *self, const char *upload_id, lh_store_error_t *error)
{
    if (!s_upload_id_valid (upload_id))
        return lh_store_error (error, 404, "no_such_upload", "no upload '%.64s'", upload_id);
    char path [PATH_MAX];
    snprintf (path, sizeof (path), "%s/%s/data", self->uploads, upload_id);
    int fd = open (path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return lh_store_error (error, 404, "no_such_upload",
                               "no upload '%s' (finished, aborted or expired)", upload_id);
    if (flock (fd, LOCK_EX)) {
        close (fd);
        return lh_store_error (error, 500, "io_error", "cannot lock upload '%s'", upload_id);
    }
    return fd;
}

static void
s_upload_remove (s_fs_t *self, const char *upload_id)
{
    char path [PATH_MAX];
    const char *files [] = { "data", "data.commit", "state", "state.new" };
    for (size_t index = 0; index < 4; index++) {
        snprintf (path, sizeof (path), "%s/%s/%s", self->uploads, upload_id, files [index]);
        unlink (path);
    }
    snprintf (path, sizeof (path), "%s/%s", self->uploads, upload_id);
    rmdir (path);
}


//  --------------------------------------------------------------------------
//  Begin an upload: a directory with an empty data file and a state

static int
s_fs_upload_begin (void *handle, const char *key, char *upload_id,
                   lh_store_error_t *error)
{
    s_fs_t *self = (s_fs_t *) handle;
    char *dir, *path;
    if (s_object_path (self, key, &dir, &path, error))
        return -1;
    free (dir);
    free (path);

    uint8_t random [16];
    randombytes_buf (random, sizeof (random));
    lh_store_hex (random, sizeof (random), upload_id);
    char folder [PATH_MAX];
    snprintf (folder, sizeof (folder), "%s/%s", self->uploads, upload_id);
    if (mkdir (folder, 0755))
        return s_io_error (error, "begin upload of", key);
    char data [PATH_MAX];
    snprintf (data, sizeof (data), "%s/%s/data", self->uploads, upload_id);
    int fd = open (data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        s_io_error (error, "begin upload of", key);
        rmdir (folder);
        return -1;
    }
    close (fd);
    s_upload_t state;
    memset (&state, 0, sizeof (state));
    memcpy (state.magic, S_UPLOAD_MAGIC, 8);
    state.next_part = 1;
    state.key_size = (uint32_t) strlen (key);
    memcpy (state.key, key, state.key_size);
    crypto_hash_sha256_init (&state.hash);
    state.prev_hash = state.hash;
    if (s_upload_write (self, upload_id, &state, error)) {
        s_upload_remove (self, upload_id);
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Key, size and next part of an upload

static int
s_fs_upload_stat (void *handle, const char *upload_id, char **key_p,
                  uint64_t *size, uint32_t *next_part, lh_store_error_t *error)
{
    s_fs_t *self = (s_fs_t *) handle;
    s_upload_t state;
    if (s_upload_read (self, upload_id, &state, error))
        return -1;
    *key_p = strdup (state.key);
    assert (*key_p);
    *size = state.size;
    *next_part = state.next_part;
    return 0;
}


//  --------------------------------------------------------------------------
//  Bytes of an upload in progress, as written so far: up to length at
//  offset. No lock: the state file names only bytes already in the data
//  file, and a data file renamed by a commit meanwhile still reads.

static int
s_fs_upload_read (void *handle, const char *upload_id, uint64_t offset, size_t length,
                  void **data_p, size_t *got, char **key_p, uint64_t *size,
                  lh_store_error_t *error)
{
    s_fs_t *self = (s_fs_t *) handle;
    s_upload_t state;
    if (s_upload_read (self, upload_id, &state, error))
        return -1;
    //  The last part may still be sent again (and replaced): only the
    //  bytes before it are final
    uint64_t final = state.prev_size;
    if (offset > final)
        return lh_store_error (error, 400, "bad_range", "offset %" PRIu64 " is past the %"
                               PRIu64 " final bytes upload '%s' has so far", offset, final,
                               upload_id);
    size_t take = final - offset < length? (size_t) (final - offset): length;
    char path [PATH_MAX];
    snprintf (path, sizeof (path), "%s/%s/data", self->uploads, upload_id);
    int fd = take? open (path, O_RDONLY | O_CLOEXEC): -1;
    if (take && fd < 0)
        return lh_store_error (error, 404, "no_such_upload",
                               "no upload '%s' (finished, aborted or expired)", upload_id);
    uint8_t *data = take? (uint8_t *) malloc (take): NULL;
    assert (data || !take);
    if (take && s_pread_all (fd, data, take, (off_t) (S_HEADER_SIZE + offset))) {
        close (fd);
        free (data);
        return s_io_error (error, "read upload of", state.key);
    }
    if (fd >= 0)
        close (fd);
    *key_p = strdup (state.key);
    assert (*key_p);
    *data_p = data;
    *got = take;
    *size = final;
    return 0;
}


//  --------------------------------------------------------------------------
//  A part accepted and not yet written: the upload stays locked meanwhile

typedef struct {
    int fd;                             //  the upload's data file, locked
    char upload_id [LH_STORE_UPLOAD_MAX + 1];
    uint32_t part;                      //  the part's number
    size_t size;                        //  its bytes
    s_upload_t state;                   //  state before the part
} s_ticket_t;


//  --------------------------------------------------------------------------
//  Accept a part (the next one, or the last one again): lock the upload,
//  check the number; the upload stays locked until the ticket is written

static int
s_fs_upload_part_accept (void *handle, const char *upload_id, uint32_t part, size_t size,
                         void **ticket_p, uint64_t *total, lh_store_error_t *error)
{
    s_fs_t *self = (s_fs_t *) handle;
    int fd = s_upload_lock (self, upload_id, error);
    if (fd < 0)
        return -1;
    s_ticket_t *ticket = (s_ticket_t *) zmalloc (sizeof (s_ticket_t));
    assert (ticket);
    int rc = s_upload_read (self, upload_id, &ticket->state, error);
    s_upload_t *state = &ticket->state;
    if (rc == 0) {
        if (part == state->next_part) {
            state->prev_size = state->size;
            state->prev_hash = state->hash;
        }
        else
        if (part + 1 == state->next_part && part >= 1) {
            state->size = state->prev_size;
            state->hash = state->prev_hash;
        }
        else
            rc = lh_store_error (error, 400, "bad_part",
                                 "parts must be sent in order: upload '%s' expects part %u, not %u",
                                 upload_id, state->next_part, part);
    }
    if (rc) {
        close (fd);
        free (ticket);
        return -1;
    }
    ticket->fd = fd;
    snprintf (ticket->upload_id, sizeof (ticket->upload_id), "%s", upload_id);
    ticket->part = part;
    ticket->size = size;
    *total = state->size + size;
    *ticket_p = ticket;
    return 0;
}


//  --------------------------------------------------------------------------
//  Write an accepted part, hashing as it goes; unlock. On failure the
//  upload is removed (its next part or commit then fails).

static int
s_ticket_write (s_fs_t *self, void **ticket_p, const void *data, bool forget,
                lh_store_error_t *error);

static int
s_fs_upload_part_write (void *handle, void **ticket_p, const void *data,
                        lh_store_error_t *error)
{
    return s_ticket_write ((s_fs_t *) handle, ticket_p, data, true, error);
}


//  --------------------------------------------------------------------------
//  Write the part; with forget, a failure removes the upload (the part
//  was already answered), else the upload stays as it was before the part

static int
s_ticket_write (s_fs_t *self, void **ticket_p, const void *data, bool forget,
                lh_store_error_t *error)
{
    s_ticket_t *ticket = (s_ticket_t *) *ticket_p;
    assert (ticket);
    if (!data) {
        //  Released unwritten: the state file still holds the state before
        close (ticket->fd);
        free (ticket);
        *ticket_p = NULL;
        return 0;
    }
    s_upload_t *state = &ticket->state;
    int rc = 0;
    if (s_hash_write (ticket->fd, &state->hash, data, ticket->size,
                      (off_t) (S_HEADER_SIZE + state->size)))
        rc = s_io_error (error, "write part of", state->key);
    else
        //  Start writing the part to the device now, in the background,
        //  so the commit's fsync has little left to wait for
        sync_file_range (ticket->fd, (off_t) (S_HEADER_SIZE + state->size),
                         (off_t) ticket->size, SYNC_FILE_RANGE_WRITE);
    if (rc == 0) {
        state->size += ticket->size;
        state->next_part = ticket->part + 1;
        rc = s_upload_write (self, ticket->upload_id, state, error);
    }
    if (rc && forget)
        s_upload_remove (self, ticket->upload_id);
    close (ticket->fd);
    free (ticket);
    *ticket_p = NULL;
    return rc;
}


//  --------------------------------------------------------------------------
//  Append a part (or replace the last one), hashing as it goes

static int
s_fs_upload_part (void *handle, const char *upload_id, uint32_t part,
                  const void *data, size_t size, uint64_t *total,
                  lh_store_error_t *error)
{
    void *ticket = NULL;
    if (s_fs_upload_part_accept (handle, upload_id, part, size, &ticket, total, error))
        return -1;
    return s_ticket_write ((s_fs_t *) handle, &ticket, data, false, error);
}


//  --------------------------------------------------------------------------
//  Commit: finish the hash, write the header, fsync, install under key
//  (or the begin's)

static int
s_fs_upload_commit (void *handle, const char *upload_id, const char *key,
                    const lh_store_cond_t *cond, char **key_p,
                    lh_store_info_t *info, lh_store_error_t *error)
{
    s_fs_t *self = (s_fs_t *) handle;
    int fd = s_upload_lock (self, upload_id, error);
    if (fd < 0)
        return -1;
    s_upload_t state;
    if (s_upload_read (self, upload_id, &state, error)) {
        close (fd);
        return -1;
    }
    *key_p = strdup (key? key: state.key);
    assert (*key_p);
    uint8_t digest [crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final (&state.hash, digest);
    lh_store_hex (digest, sizeof (digest), info->etag);
    uint8_t header [S_HEADER_SIZE];
    s_header_fill (header, info->etag);
    int rc = 0;
    bool consumed = false;              //  data moved out of the upload
    if (ftruncate (fd, (off_t) (S_HEADER_SIZE + state.size))
    ||  s_pwrite_all (fd, header, S_HEADER_SIZE, 0)
    ||  s_fsync_alive (fd))
        rc = s_io_error (error, "finish upload of", *key_p);
    if (rc == 0) {
        //  A second name for the data first, so a failed condition keeps it
        //  out of objects/ and the upload is simply gone. A link, not a
        //  rename: the upload stays readable (upload_read) until the
        //  object is installed, so a follower never finds neither
        char data [PATH_MAX], tmp [PATH_MAX];
        snprintf (data, sizeof (data), "%s/%s/data", self->uploads, upload_id);
        snprintf (tmp, sizeof (tmp), "%s/%s/data.commit", self->uploads, upload_id);
        unlink (tmp);                   //  a crashed commit's
        if (link (data, tmp) && rename (data, tmp))
            rc = s_io_error (error, "finish upload of", *key_p);
        else {
            consumed = true;
            rc = s_install (self, tmp, *key_p, cond, error);
        }
    }
    close (fd);
    if (rc == 0) {
        info->size = state.size;
        info->mtime_ms = zclock_time ();
    }
    if (consumed)
        s_upload_remove (self, upload_id);
    return rc;
}


//  --------------------------------------------------------------------------
//  Abort: forget the upload

static int
s_fs_upload_abort (void *handle, const char *upload_id, lh_store_error_t *error)
{
    s_fs_t *self = (s_fs_t *) handle;
    int fd = s_upload_lock (self, upload_id, error);
    if (fd < 0)
        return -1;
    s_upload_remove (self, upload_id);
    close (fd);
    return 0;
}


//  --------------------------------------------------------------------------
//  Remove temp files and uploads untouched for max_age_ms

static void
s_fs_sweep (void *handle, int64_t max_age_ms)
{
    s_fs_t *self = (s_fs_t *) handle;
    int64_t cutoff = zclock_time () - max_age_ms;
    char path [PATH_MAX];
    struct stat st;
    DIR *dir = opendir (self->tmp);
    struct dirent *entry;
    while (dir && (entry = readdir (dir))) {
        if (entry->d_name [0] != '.' || strncmp (entry->d_name, ".tmp-", 5) != 0)
            continue;
        snprintf (path, sizeof (path), "%s/%s", self->tmp, entry->d_name);
        if (stat (path, &st) == 0 && (int64_t) st.st_mtime * 1000 < cutoff)
            unlink (path);
    }
    if (dir)
        closedir (dir);
    dir = opendir (self->uploads);
    while (dir && (entry = readdir (dir))) {
        if (!s_upload_id_valid (entry->d_name))
            continue;
        snprintf (path, sizeof (path), "%s/%s/state", self->uploads, entry->d_name);
        bool stale = stat (path, &st) != 0
                  || (int64_t) st.st_mtime * 1000 < cutoff;
        if (stale) {
            //  A missing state file: check the folder's age instead
            snprintf (path, sizeof (path), "%s/%s", self->uploads, entry->d_name);
            if (stat (path, &st) == 0 && (int64_t) st.st_mtime * 1000 < cutoff)
                s_upload_remove (self, entry->d_name);
        }
    }
    if (dir)
        closedir (dir);
}


//  --------------------------------------------------------------------------
//  Destroy the backend state

static void
s_fs_destroy (void **handle_p)
{
    s_fs_t *self = (s_fs_t *) *handle_p;
    if (self) {
        pthread_mutex_destroy (&self->lock);
        free (self->root);
        free (self->objects);
        free (self->tmp);
        free (self->uploads);
        free (self);
        *handle_p = NULL;
    }
}

static const lh_store_backend_t s_fs_backend = {
    .name = "fs",
    .destroy = s_fs_destroy,
    .put = s_fs_put,
    .get = s_fs_get,
    .head = s_fs_head,
    .list = s_fs_list,
    .remove = s_fs_remove,
    .upload_begin = s_fs_upload_begin,
    .upload_stat = s_fs_upload_stat,
    .upload_read = s_fs_upload_read,
    .upload_part = s_fs_upload_part,
    .upload_commit = s_fs_upload_commit,
    .upload_abort = s_fs_upload_abort,
    .sweep = s_fs_sweep,
    .get_into = s_fs_get_into,
    .upload_part_accept = s_fs_upload_part_accept,
    .upload_part_write = s_fs_upload_part_write
};


//  --------------------------------------------------------------------------
//  Create a filesystem store under dir

lh_store_t *
lh_store_new_fs (const char *dir, lh_store_error_t *error)
{
    assert (dir);
    if (sodium_init () < 0) {
        lh_store_error (error, 500, "internal", "libsodium failed to initialise");
        return NULL;
    }
    s_fs_t *self = (s_fs_t *) zmalloc (sizeof (s_fs_t));
    assert (self);
    //  Absolute paths, so a later chdir cannot move the store
    char *real = NULL;
    if (s_mkdir_p (dir) == 0)
        real = realpath (dir, NULL);
    if (!real) {
        lh_store_error (error, 500, "bad_config", "storage directory '%s': %s",
                        dir, strerror (errno));
        free (self);
        return NULL;
    }
    self->root = real;
    self->objects = zsys_sprintf ("%s/objects", real);
    self->tmp = zsys_sprintf ("%s/tmp", real);
    self->uploads = zsys_sprintf ("%s/uploads", real);
    if (s_mkdir_p (self->objects) || s_mkdir_p (self->tmp) || s_mkdir_p (self->uploads)) {
        lh_store_error (error, 500, "bad_config", "storage directory '%s': %s",
                        dir, strerror (errno));
        void *handle = self;
        s_fs_destroy (&handle);
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    return lh_store_new (&s_fs_backend, self);
}


//  --------------------------------------------------------------------------
//  Self test

static int
s_collect (const char *key, const lh_store_info_t *info, void *arg)
{
    zlistx_add_end ((zlistx_t *) arg, (void *) key);
    return 0;
}

//  A follower of uploads being committed (the self test's thread): an
//  upload that is gone must have its object visible, never neither
typedef struct {
    lh_store_t *store;
    pthread_mutex_t lock;               //  over upload_id and key
    char upload_id [LH_STORE_UPLOAD_MAX + 1];
    char key [64];
    int stop;                           //  atomic
    int neither;                        //  times neither was found
    int looks;                          //  follows made
} s_test_follow_t;

static void *
s_test_follow (void *arg)
{
    s_test_follow_t *self = (s_test_follow_t *) arg;
    while (!__atomic_load_n (&self->stop, __ATOMIC_ACQUIRE)) {
        char upload_id [LH_STORE_UPLOAD_MAX + 1], key [64];
        pthread_mutex_lock (&self->lock);
        memcpy (upload_id, self->upload_id, sizeof (upload_id));
        memcpy (key, self->key, sizeof (key));
        pthread_mutex_unlock (&self->lock);
        if (!*upload_id)
            continue;
        void *data;
        size_t got;
        char *upload_key;
        uint64_t size;
        bool readable;
        lh_store_error_t error;
        if (lh_store_upload_read (self->store, upload_id, 0, 1, &data, &got, &upload_key,
                                  &size, &readable, &error) == 0) {
            free (data);
            free (upload_key);
            continue;
        }
        lh_store_info_t info;
        if (error.status == 404 && lh_store_head (self->store, key, &info, &error) == -1
        &&  !__atomic_load_n (&self->stop, __ATOMIC_ACQUIRE))
            self->neither++;
        self->looks++;
    }
    return NULL;
}

void
lh_store_fs_test (bool verbose)
{
    printf (" * lh_store_fs: ");
    char dir [] = "/tmp/lh_store_fs_test.XXXXXX";
    assert (mkdtemp (dir));
    lh_store_error_t error;
    lh_store_t *store = lh_store_new_fs (dir, &error);
    assert (store);
    assert (streq (lh_store_backend_name (store), "fs"));

    //  Put / get / head; ETag is the SHA-256 of the content
    lh_store_info_t info;
    assert (lh_store_put (store, "a/b/c.txt", "hello", 5, NULL, &info, &error) == 0);
    assert (streq (info.etag, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"));
    assert (info.size == 5);
    void *data;
    size_t got;
    assert (lh_store_get (store, "a/b/c.txt", 1, 3, &data, &got, &info, &error) == 0);
    assert (got == 3 && memcmp (data, "ell", 3) == 0);
    free (data);
    assert (lh_store_get (store, "a/b/c.txt", 5, 10, &data, &got, &info, &error) == 0);
    assert (got == 0 && data == NULL);
    assert (lh_store_get (store, "a/b/c.txt", 6, 10, &data, &got, &info, &error) == -1);
    assert (error.status == 400);
    assert (lh_store_head (store, "a/b/nope", &info, &error) == -1);
    assert (error.status == 404);
    //  "a" and "a/b" can both be objects
    assert (lh_store_put (store, "a", "x", 1, NULL, &info, &error) == 0);
    assert (lh_store_put (store, "a/b", "", 0, NULL, &info, &error) == 0);
    assert (streq (info.etag, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    assert (lh_store_head (store, "a/b", &info, &error) == 0 && info.size == 0);

    //  Conditional puts
    lh_store_cond_t none = { .if_none_match = true };
    assert (lh_store_put (store, "a", "y", 1, &none, &info, &error) == -1);
    assert (error.status == 412);
    assert (lh_store_put (store, "new", "y", 1, &none, &info, &error) == 0);
    char etag [LH_STORE_ETAG_SIZE + 1];
    strcpy (etag, info.etag);
    lh_store_cond_t match = { .if_match = etag };
    assert (lh_store_put (store, "new", "z", 1, &match, &info, &error) == 0);
    assert (lh_store_put (store, "new", "w", 1, &match, &info, &error) == -1);
    assert (error.status == 412);
    assert (lh_store_put (store, "absent", "w", 1, &match, &info, &error) == -1);
    assert (error.status == 412);

    //  Listing in byte order, with prefix, start_after, paging
    const char *keys [] = { "p/1", "p/10", "p/2", "p/2/x", "p-", "q", "p/" };
    for (size_t index = 0; index < sizeof (keys) / sizeof (keys [0]); index++)
        assert (lh_store_put (store, keys [index], "k", 1, NULL, &info, &error) == 0);
    zlistx_t *seen = zlistx_new ();
    zlistx_set_destructor (seen, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_duplicator (seen, (zlistx_duplicator_fn *) strdup);
    bool truncated;
    assert (lh_store_list (store, "p", NULL, 100, s_collect, seen, &truncated, &error) == 0);
    assert (!truncated);
    const char *expect [] = { "p-", "p/", "p/1", "p/10", "p/2", "p/2/x" };
    assert (zlistx_size (seen) == 6);
    size_t index = 0;
    for (char *key = (char *) zlistx_first (seen); key; key = (char *) zlistx_next (seen))
        assert (streq (key, expect [index++]));
    zlistx_purge (seen);
    assert (lh_store_list (store, "p/", "p/10", 1, s_collect, seen, &truncated, &error) == 0);
    assert (truncated && zlistx_size (seen) == 1);
    assert (streq ((char *) zlistx_first (seen), "p/2"));
    zlistx_purge (seen);
    assert (lh_store_list (store, NULL, "p/2", 100, s_collect, seen, &truncated, &error) == 0);
    assert (zlistx_size (seen) == 2 && !truncated);
    assert (streq ((char *) zlistx_first (seen), "p/2/x"));
    zlistx_purge (seen);

    //  Paging over many keys returns each exactly once
    for (int key = 0; key < 300; key++) {
        char name [32];
        snprintf (name, sizeof (name), "many/%d/k%d", key % 7, key);
        assert (lh_store_put (store, name, name, strlen (name), NULL, &info, &error) == 0);
    }
    char after [LH_STORE_KEY_MAX + 1] = "";
    size_t total = 0, pages = 0;
    do {
        assert (lh_store_list (store, "many/", after, 64, s_collect, seen, &truncated, &error) == 0);
        pages++;
        total += zlistx_size (seen);
        strcpy (after, (char *) zlistx_last (seen));
        zlistx_purge (seen);
    } while (truncated);
    assert (total == 300 && pages == 5);

    //  Delete; empty directories go
    assert (lh_store_remove (store, "p/2/x", &error) == 0);
    assert (lh_store_remove (store, "p/2/x", &error) == -1 && error.status == 404);
    char path [PATH_MAX];
    snprintf (path, sizeof (path), "%s/objects/p.d/2.d", dir);
    struct stat st;
    assert (stat (path, &st) == -1);

    //  Multipart: in order, retry of the last part, commit
    char upload [LH_STORE_UPLOAD_MAX + 1];
    assert (lh_store_upload_begin (store, "big/one", upload, &error) == 0);
    uint64_t size;
    assert (lh_store_upload_part (store, upload, 1, "hel", 3, &size, &error) == 0 && size == 3);
    assert (lh_store_upload_part (store, upload, 3, "xx", 2, &size, &error) == -1);
    assert (error.status == 400);
    assert (lh_store_upload_part (store, upload, 2, "LO", 2, &size, &error) == 0 && size == 5);
    assert (lh_store_upload_part (store, upload, 2, "lo", 2, &size, &error) == 0 && size == 5);
    char *key;
    uint32_t next;
    assert (lh_store_upload_stat (store, upload, &key, &size, &next, &error) == 0);
    assert (streq (key, "big/one") && size == 5 && next == 3);
    free (key);
    assert (lh_store_head (store, "big/one", &info, &error) == -1);
    assert (lh_store_upload_commit (store, upload, NULL, NULL, &key, &info, &error) == 0);
    free (key);
    assert (streq (info.etag, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"));
    assert (lh_store_get (store, "big/one", 0, 100, &data, &got, &info, &error) == 0);
    assert (got == 5 && memcmp (data, "hello", 5) == 0);
    free (data);
    assert (lh_store_upload_part (store, upload, 3, "x", 1, &size, &error) == -1);
    assert (error.status == 404);
    assert (lh_store_upload_part (store, "../../etc", 1, "x", 1, &size, &error) == -1);
    assert (error.status == 404);

    //  A commit under another key: that key is written, the begin's is not
    assert (lh_store_upload_begin (store, "big/staged", upload, &error) == 0);
    assert (lh_store_upload_part (store, upload, 1, "named", 5, &size, &error) == 0);
    assert (lh_store_upload_commit (store, upload, "big/named", &none, &key, &info, &error) == 0);
    assert (streq (key, "big/named"));
    free (key);
    assert (lh_store_get (store, "big/named", 0, 100, &data, &got, &info, &error) == 0);
    assert (got == 5 && memcmp (data, "named", 5) == 0);
    free (data);
    assert (lh_store_head (store, "big/staged", &info, &error) == -1 && error.status == 404);

    //  The state file's slots: a torn newer slot leaves the state before
    //  it (the last part is sent again), and the layout of before (one
    //  state, no check) still reads
    {
        char id [LH_STORE_UPLOAD_MAX + 1], path [PATH_MAX];
        assert (lh_store_upload_begin (store, "slots/one", id, &error) == 0);
        assert (lh_store_upload_part (store, id, 1, "abc", 3, &size, &error) == 0);
        assert (lh_store_upload_part (store, id, 2, "de", 2, &size, &error) == 0);
        snprintf (path, sizeof (path), "%s/uploads/%s/state", dir, id);
        int fd = open (path, O_RDWR);
        assert (fd >= 0);
        //  begin, part 1, part 2: seq 3 is the newer, in slot 1
        assert (pwrite (fd, "torn", 4, S_SLOT_SIZE + 40) == 4);
        close (fd);
        char *slot_key;
        uint32_t next;
        assert (lh_store_upload_stat (store, id, &slot_key, &size, &next, &error) == 0);
        assert (streq (slot_key, "slots/one") && size == 3 && next == 2);
        free (slot_key);
        assert (lh_store_upload_part (store, id, 2, "DE", 2, &size, &error) == 0 && size == 5);
        //  The old layout, from the valid state
        s_slot_t newest;            //  seq 3 again, in slot 1
        fd = open (path, O_RDWR);
        assert (fd >= 0 && pread (fd, &newest, sizeof (newest), S_SLOT_SIZE)
                           == (ssize_t) sizeof (newest));
        assert (newest.seq == 3 && ftruncate (fd, 0) == 0);
        assert (pwrite (fd, &newest.state, offsetof (s_upload_t, seq_read), 0)
                == (ssize_t) offsetof (s_upload_t, seq_read));
        close (fd);
        assert (lh_store_upload_stat (store, id, &slot_key, &size, &next, &error) == 0);
        assert (size == 5 && next == 3);
        free (slot_key);
        assert (lh_store_upload_part (store, id, 3, "f", 1, &size, &error) == 0 && size == 6);
        assert (lh_store_upload_commit (store, id, NULL, NULL, &slot_key, &info, &error) == 0);
        free (slot_key);
        assert (lh_store_get (store, "slots/one", 0, 100, &data, &got, &info, &error) == 0);
        assert (got == 6 && memcmp (data, "abcDEf", 6) == 0);
        free (data);
        //  Both slots torn: the upload is unreadable, said so
        assert (lh_store_upload_begin (store, "slots/two", id, &error) == 0);
        assert (lh_store_upload_part (store, id, 1, "abc", 3, &size, &error) == 0);
        snprintf (path, sizeof (path), "%s/uploads/%s/state", dir, id);
        fd = open (path, O_RDWR);
        assert (fd >= 0);
        assert (pwrite (fd, "torn", 4, 40) == 4 && pwrite (fd, "torn", 4, S_SLOT_SIZE + 40) == 4);
        close (fd);
        assert (lh_store_upload_stat (store, id, &slot_key, &size, &next, &error) == -1);
        assert (error.status == 500 && streq (error.kind, "corrupt_upload"));
        assert (lh_store_upload_abort (store, id, &error) == 0);
    }

    //  An upload followed while it is committed is readable until its
    //  object is: never neither (a follower would take it as aborted)
    s_test_follow_t follow = { .store = store };
    pthread_mutex_init (&follow.lock, NULL);
    char *key_p_unused;
    pthread_t follower;
    assert (pthread_create (&follower, NULL, s_test_follow, &follow) == 0);
    for (int round = 0; round < 200; round++) {
        char key [64], id [LH_STORE_UPLOAD_MAX + 1];
        snprintf (key, sizeof (key), "follow/%d", round);
        assert (lh_store_upload_begin (store, key, id, &error) == 0);
        assert (lh_store_upload_part (store, id, 1, "abc", 3, &size, &error) == 0);
        assert (lh_store_upload_part (store, id, 2, "de", 2, &size, &error) == 0);
        pthread_mutex_lock (&follow.lock);
        memcpy (follow.key, key, sizeof (key));
        memcpy (follow.upload_id, id, sizeof (id));
        pthread_mutex_unlock (&follow.lock);
        zclock_sleep (1);
        assert (lh_store_upload_commit (store, id, NULL, NULL, &key_p_unused, &info, &error) == 0);
        free (key_p_unused);
        zclock_sleep (1);
    }
    __atomic_store_n (&follow.stop, 1, __ATOMIC_RELEASE);
    pthread_join (follower, NULL);
    pthread_mutex_destroy (&follow.lock);
    if (verbose)
        printf ("\n   follower: %d looks, %d saw neither", follow.looks, follow.neither);
    assert (follow.looks > 0 && follow.neither == 0);

    //  A commit whose condition fails changes nothing
    assert (lh_store_upload_begin (store, "big/one", upload, &error) == 0);
    assert (lh_store_upload_part (store, upload, 1, "other", 5, &size, &error) == 0);
    assert (lh_store_upload_commit (store, upload, NULL, &none, &key, &info, &error) == -1);
    free (key);
    assert (error.status == 412);
    assert (lh_store_get (store, "big/one", 0, 100, &data, &got, &info, &error) == 0);
    assert (got == 5 && memcmp (data, "hello", 5) == 0);
    free (data);

    //  Abort, and the sweep of abandoned uploads
    assert (lh_store_upload_begin (store, "big/two", upload, &error) == 0);
    assert (lh_store_upload_abort (store, upload, &error) == 0);
    assert (lh_store_upload_abort (store, upload, &error) == -1 && error.status == 404);
    assert (lh_store_upload_begin (store, "big/three", upload, &error) == 0);
    lh_store_sweep (store, 60000);
    assert (lh_store_upload_stat (store, upload, &key, &size, &next, &error) == 0);
    free (key);
    lh_store_sweep (store, -1000);
    assert (lh_store_upload_stat (store, upload, &key, &size, &next, &error) == -1);
    snprintf (path, sizeof (path), "%s/uploads/%s", dir, upload);
    assert (stat (path, &st) == -1);

    //  A component too long for a file name is a 400
    char long_key [300];
    memset (long_key, 'k', 299);
    long_key [299] = 0;
    assert (lh_store_put (store, long_key, "x", 1, NULL, &info, &error) == -1);
    assert (error.status == 400);
    if (verbose)
        printf ("(%s) ", error.reason);

    zlistx_destroy (&seen);
    lh_store_destroy (&store);
    char *command = zsys_sprintf ("rm -rf '%s'", dir);
    assert (system (command) == 0);
    zstr_free (&command);
    printf ("OK\n");
}
