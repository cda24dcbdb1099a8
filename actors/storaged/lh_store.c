/*  =========================================================================
    lh_store - one interface over the storage backends; see lh_store.h
    =========================================================================
*/

#include "lh_store.h"
#if defined (__x86_64__) || defined (__i386__)
#   include <immintrin.h>
#   include <cpuid.h>
#   define S_SHA_NI 1
#endif

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
lh_store_upload_commit (lh_store_t *self, const char *upload_id,
                        const lh_store_cond_t *cond, char **key_p,
                        lh_store_info_t *info, lh_store_error_t *error)
{
    assert (self);
    return self->backend->upload_commit (self->handle, upload_id, cond, key_p,
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
//  SHA-256 with the x86 SHA extensions: whole 64-byte blocks into the eight
//  state words (Intel's SHA-NI scheme: four rounds per step, the message
//  schedule in four rotating registers)

#ifdef S_SHA_NI
static const uint32_t s_sha_k [64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};

__attribute__ ((target ("sha,sse4.1,ssse3")))
static void
s_sha256_blocks_ni (uint32_t *words, const uint8_t *data, size_t blocks)
{
    const __m128i mask = _mm_set_epi64x (0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_loadu_si128 ((const __m128i *) &words [0]);
    __m128i state1 = _mm_loadu_si128 ((const __m128i *) &words [4]);
    tmp = _mm_shuffle_epi32 (tmp, 0xB1);                //  CDAB
    state1 = _mm_shuffle_epi32 (state1, 0x1B);          //  EFGH
    __m128i state0 = _mm_alignr_epi8 (tmp, state1, 8);  //  ABEF
    state1 = _mm_blend_epi16 (state1, tmp, 0xF0);       //  CDGH
    while (blocks--) {
        __m128i abef = state0, cdgh = state1;
        __m128i msgs [4];
#pragma GCC unroll 16
        for (int step = 0; step < 16; step++) {
            if (step < 4)
                msgs [step] = _mm_shuffle_epi8 (
                    _mm_loadu_si128 ((const __m128i *) (data + 16 * step)), mask);
            __m128i msg = _mm_add_epi32 (msgs [step & 3],
                _mm_loadu_si128 ((const __m128i *) &s_sha_k [4 * step]));
            state1 = _mm_sha256rnds2_epu32 (state1, state0, msg);
            if (step >= 3 && step <= 14) {
                __m128i *next = &msgs [(step + 1) & 3];
                *next = _mm_add_epi32 (*next, _mm_alignr_epi8 (msgs [step & 3],
                                                               msgs [(step + 3) & 3], 4));
                *next = _mm_sha256msg2_epu32 (*next, msgs [step & 3]);
            }
            msg = _mm_shuffle_epi32 (msg, 0x0E);
            state0 = _mm_sha256rnds2_epu32 (state0, state1, msg);
            if (step >= 1 && step <= 12)
                msgs [(step + 3) & 3] = _mm_sha256msg1_epu32 (msgs [(step + 3) & 3],
                                                              msgs [step & 3]);
        }
        state0 = _mm_add_epi32 (state0, abef);
        state1 = _mm_add_epi32 (state1, cdgh);
        data += 64;
    }
    tmp = _mm_shuffle_epi32 (state0, 0x1B);             //  FEBA
    state1 = _mm_shuffle_epi32 (state1, 0xB1);          //  DCHG
    state0 = _mm_blend_epi16 (tmp, state1, 0xF0);       //  DCBA
    state1 = _mm_alignr_epi8 (state1, tmp, 8);          //  HGFE
    _mm_storeu_si128 ((__m128i *) &words [0], state0);
    _mm_storeu_si128 ((__m128i *) &words [4], state1);
}
#endif


//  --------------------------------------------------------------------------
//  True if the CPU has the SHA extensions (checked once)

bool
lh_store_sha256_accelerated (void)
{
#ifdef S_SHA_NI
    static int s_has = -1;
    if (s_has < 0) {
        //  CPUID directly: clang 14 does not know __builtin_cpu_supports ("sha")
        unsigned eax, ebx, ecx, edx;
        bool sse41 = __get_cpuid (1, &eax, &ebx, &ecx, &edx) && (ecx & bit_SSE4_1);
        bool sha = __get_cpuid_count (7, 0, &eax, &ebx, &ecx, &edx) && (ebx & bit_SHA);
        s_has = sse41 && sha;
    }
    return s_has == 1;
#else
    return false;
#endif
}


//  --------------------------------------------------------------------------
//  SHA-256 update on libsodium's state: count (bits), partial block in buf

void
lh_store_sha256_update (crypto_hash_sha256_state *state, const void *data, size_t size)
{
#ifdef S_SHA_NI
    if (lh_store_sha256_accelerated ()) {
        const uint8_t *bytes = (const uint8_t *) data;
        size_t have = (size_t) ((state->count >> 3) & 63);
        state->count += (uint64_t) size << 3;
        if (have) {
            size_t take = 64 - have < size? 64 - have: size;
            memcpy (state->buf + have, bytes, take);
            bytes += take;
            size -= take;
            if (have + take < 64)
                return;
            s_sha256_blocks_ni (state->state, state->buf, 1);
        }
        if (size >= 64) {
            s_sha256_blocks_ni (state->state, bytes, size / 64);
            bytes += size & ~(size_t) 63;
            size &= 63;
        }
        if (size)
            memcpy (state->buf, bytes, size);
        return;
    }
#endif
    crypto_hash_sha256_update (state, (const unsigned char *) data, size);
}


//  --------------------------------------------------------------------------
//  Self test: our update equals libsodium's for many sizes and splits

void
lh_store_sha256_test (bool verbose)
{
    printf (" * lh_store_sha256 (%s): ", lh_store_sha256_accelerated ()? "SHA-NI": "libsodium");
    size_t total = 70000;
    uint8_t *data = (uint8_t *) malloc (total);
    assert (data);
    randombytes_buf (data, total);
    size_t sizes [] = { 0, 1, 3, 55, 56, 63, 64, 65, 127, 128, 129, 1000, 4096, 65536, 70000 };
    for (size_t index = 0; index < sizeof (sizes) / sizeof (sizes [0]); index++) {
        size_t size = sizes [index];
        uint8_t expect [crypto_hash_sha256_BYTES], got [crypto_hash_sha256_BYTES];
        crypto_hash_sha256 (expect, data, size);
        //  Whole, then in uneven pieces
        size_t steps [] = { size? size: 1, 1, 7, 63, 64, 100, 4097 };
        for (size_t step = 0; step < sizeof (steps) / sizeof (steps [0]); step++) {
            crypto_hash_sha256_state state;
            crypto_hash_sha256_init (&state);
            for (size_t done = 0; done < size; ) {
                size_t piece = size - done < steps [step]? size - done: steps [step];
                lh_store_sha256_update (&state, data + done, piece);
                done += piece;
            }
            crypto_hash_sha256_final (&state, got);
            assert (memcmp (expect, got, sizeof (got)) == 0);
        }
        //  Mixed with libsodium's own update on the same state
        crypto_hash_sha256_state state;
        crypto_hash_sha256_init (&state);
        size_t half = size / 3;
        crypto_hash_sha256_update (&state, data, half);
        lh_store_sha256_update (&state, data + half, size - half);
        crypto_hash_sha256_final (&state, got);
        assert (memcmp (expect, got, sizeof (got)) == 0);
    }
    free (data);
    printf ("OK\n");
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
