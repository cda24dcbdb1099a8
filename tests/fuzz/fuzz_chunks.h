/*  =========================================================================
    fuzz_chunks - chunk sizes for feeding a streaming parser, derived from
    the input's own bytes (so a replay of the same file cuts it the same
    way, and the fuzzer reaches new cuts by changing the input)

        fuzz_chunks_t chunks;
        fuzz_chunks_init (&chunks, data, size);
        for (size_t at = 0; at < size; ) {
            size_t take = fuzz_chunks_next (&chunks, size - at);
            ...feed data + at, take...
            at += take;
        }
    =========================================================================
*/

#ifndef FUZZ_CHUNKS_H_INCLUDED
#define FUZZ_CHUNKS_H_INCLUDED

#include <stdint.h>
#include <stddef.h>

typedef struct {
    uint64_t state;                     //  xorshift64 state, never 0
} fuzz_chunks_t;

//  Seed from an FNV-1a hash of the input
static inline void
fuzz_chunks_init (fuzz_chunks_t *self, const uint8_t *data, size_t size)
{
    uint64_t hash = 14695981039346656037ULL;
    for (size_t index = 0; index < size; index++)
        hash = (hash ^ data [index]) * 1099511628211ULL;
    self->state = hash? hash: 1;
}

//  The next chunk size, 1..left (left > 0): mostly 1 to 16 bytes, now
//  and then up to 256, sometimes all that is left
static inline size_t
fuzz_chunks_next (fuzz_chunks_t *self, size_t left)
{
    uint64_t x = self->state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    self->state = x;
    size_t take;
    switch (x & 7) {
        case 0:  take = left; break;
        case 1:
        case 2:  take = 1 + (size_t) ((x >> 8) % 256); break;
        default: take = 1 + (size_t) ((x >> 8) % 16); break;
    }
    return take < left? take: left;
}

#endif
