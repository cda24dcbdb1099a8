/*  =========================================================================
    lh_store - one interface over the storage backends; see lh_store.h
    =========================================================================
*/

#include "lh_store.h"

struct _lh_store_t {
    const lh_store_backend_t *backend;  //  the backend's functions
    void *handle;                       //  the backend's state
};


//  --------------------------------------------------------------------------
//  Create a store over a backend handle (taken)

lh_store_t *
lh_store_new (const lh_store_backend_t *backend, void *handle)
{
    assert (backend);
    assert (handle);
    lh_store_t *self = (lh_store_t *) zmalloc (sizeof (lh_store_t));
    assert (self);
    self->backend = backend;
    self->handle = handle;
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy a store and its backend

void
lh_store_destroy (lh_store_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        lh_store_t *self = *self_p;
        self->backend->destroy (&self->handle);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Name of the backend

const char *
lh_store_backend_name (lh_store_t *self)
{
    assert (self);
    return self->backend->name;
}


//  --------------------------------------------------------------------------
//  The calls, forwarded to the backend

int
lh_store_put (lh_store_t *self, const char *key, const void *data, size_t size,
              const lh_store_cond_t *cond, lh_store_info_t *info,
              lh_store_error_t *error)
{
    assert (self);
    return self->backend->put (self->handle, key, data, size, cond, info, error);
}

int
lh_store_get (lh_store_t *self, const char *key, uint64_t offset, size_t length,
              void **data_p, size_t *got, lh_store_info_t *info,
              lh_store_error_t *error)
{
    assert (self);
    return self->backend->get (self->handle, key, offset, length, data_p, got,
                               info, error);
}

int
lh_store_get_into (lh_store_t *self, const char *key, uint64_t offset,
                   size_t length, lh_store_alloc_fn *alloc_fn, void *arg,
                   size_t *got, lh_store_info_t *info, lh_store_error_t *error)
{
    assert (self);
    assert (alloc_fn);
    if (self->backend->get_into)
        return self->backend->get_into (self->handle, key, offset, length,
                                        alloc_fn, arg, got, info, error);
    void *data = NULL;
    if (self->backend->get (self->handle, key, offset, length, &data, got,
                            info, error))
        return -1;
    void *buffer = alloc_fn (arg, *got);
    if (!buffer) {
        free (data);
        return lh_store_error (error, 503, "no_memory", "no memory for %zu bytes", *got);
    }
    if (*got)
        memcpy (buffer, data, *got);
    free (data);
    return 0;
}

int
lh_store_head (lh_store_t *self, const char *key, lh_store_info_t *info,
               lh_store_error_t *error)
{
    assert (self);
    return self->backend->head (self->handle, key, info, error);
}

int
lh_store_list (lh_store_t *self, const char *prefix, const char *start_after,
               uint32_t limit, lh_store_list_fn *fn, void *arg, bool *truncated,
               lh_store_error_t *error)
{
    assert (self);
    *truncated = false;
    return self->backend->list (self->handle, prefix, start_after, limit, fn,
                                arg, truncated, error);
}

int
lh_store_remove (lh_store_t *self, const char *key, lh_store_error_t *error)
{
    assert (self);
    return self->backend->remove (self->handle, key, error);
}

int
lh_store_upload_begin (lh_store_t *self, const char *key, char *upload_id,
                       lh_store_error_t *error)
{
    assert (self);
    return self->backend->upload_begin (self->handle, key, upload_id, error);
}

int
lh_store_upload_stat (lh_store_t *self, const char *upload_id, char **key_p,
                      uint64_t *size, uint32_t *next_part,
                      lh_store_error_t *error)
{
    assert (self);
    return self->backend->upload_stat (self->handle, upload_id, key_p, size,
                                       next_part, error);
}

int
lh_store_upload_read (lh_store_t *self, const char *upload_id, uint64_t offset,
                      size_t length, void **data_p, size_t *got, char **key_p,
                      uint64_t *size, bool *readable, lh_store_error_t *error)
{
    assert (self);
    *data_p = NULL;
    *got = 0;
    *readable = self->backend->upload_read != NULL;
    if (*readable)
        return self->backend->upload_read (self->handle, upload_id, offset, length, data_p,
                                           got, key_p, size, error);
    uint32_t next_part;
    return self->backend->upload_stat (self->handle, upload_id, key_p, size, &next_part, error);
}

int
lh_store_upload_part (lh_store_t *self, const char *upload_id, uint32_t part,
                      const void *data, size_t size, uint64_t *total,
                      lh_store_error_t *error)
{
    assert (self);
    return self->backend->upload_part (self->handle, upload_id, part, data,
                                       size, total, error);
}

int
lh_store_upload_part_accept (lh_store_t *self, const char *upload_id, uint32_t part,
                             size_t size, void **ticket_p, uint64_t *total,
                             lh_store_error_t *error)
{
    assert (self);
    *ticket_p = NULL;
    if (!self->backend->upload_part_accept || !self->backend->upload_part_write)
        return 1;
    return self->backend->upload_part_accept (self->handle, upload_id, part, size,
                                              ticket_p, total, error);
}

int
lh_store_upload_part_write (lh_store_t *self, void **ticket_p, const void *data,
                            lh_store_error_t *error)
{
    assert (self);
    assert (ticket_p);
    return self->backend->upload_part_write (self->handle, ticket_p, data, error);
}

int
lh_store_upload_commit (lh_store_t *self, const char *upload_id, const char *key,
                        const lh_store_cond_t *cond, char **key_p,
                        lh_store_info_t *info, lh_store_error_t *error)
{
    assert (self);
    return self->backend->upload_commit (self->handle, upload_id, key, cond, key_p,
                                         info, error);
}

int
lh_store_upload_abort (lh_store_t *self, const char *upload_id,
                       lh_store_error_t *error)
{
    assert (self);
    return self->backend->upload_abort (self->handle, upload_id, error);
}

void
lh_store_sweep (lh_store_t *self, int64_t max_age_ms)
{
    assert (self);
    self->backend->sweep (self->handle, max_age_ms);
}


//  --------------------------------------------------------------------------
//  Fill an error; always returns -1

int
lh_store_error (lh_store_error_t *error, uint32_t status, const char *kind,
                const char *format, ...)
{
    assert (error);
    error->status = status;
    snprintf (error->kind, sizeof (error->kind), "%s", kind);
    va_list args;
    va_start (args, format);
    vsnprintf (error->reason, sizeof (error->reason), format, args);
    va_end (args);
    return -1;
}


//  --------------------------------------------------------------------------
//  Check a put condition against the current state of the key

int
lh_store_cond_check (const lh_store_cond_t *cond, bool exists,
                     const char *current_etag, const char *key,
                     lh_store_error_t *error)
{
    if (!cond)
        return 0;
    if (cond->if_none_match && exists)
        return lh_store_error (error, 412, "precondition_failed",
                               "if_none_match '*': key '%s' already holds an object", key);
    if (cond->if_match) {
        if (!exists)
            return lh_store_error (error, 412, "precondition_failed",
                                   "if_match: key '%s' holds no object", key);
        if (strcmp (cond->if_match, current_etag) != 0)
            return lh_store_error (error, 412, "precondition_failed",
                                   "if_match: key '%s' has ETag %s, not %.64s",
                                   key, current_etag, cond->if_match);
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Lowercase hex of size bytes

void
lh_store_hex (const uint8_t *data, size_t size, char *text)
{
    static const char digits [] = "0123456789abcdef";
    for (size_t index = 0; index < size; index++) {
        text [2 * index] = digits [data [index] >> 4];
        text [2 * index + 1] = digits [data [index] & 15];
    }
    text [2 * size] = 0;
}
