/*  =========================================================================
    lh_sha256 - SHA-256 of bulk bytes, with the CPU's SHA extensions when
    it has them; see lh_sha256.h
    =========================================================================
*/

#include "lh_sha256.h"
#if defined (__x86_64__) || defined (__i386__)
#   include <immintrin.h>
#   include <cpuid.h>
#   define S_SHA_NI 1
#endif


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
lh_sha256_accelerated (void)
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
lh_sha256_update (crypto_hash_sha256_state *state, const void *data, size_t size)
{
#ifdef S_SHA_NI
    if (lh_sha256_accelerated ()) {
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
lh_sha256_test (bool verbose)
{
    printf (" * lh_sha256 (%s): ", lh_sha256_accelerated ()? "SHA-NI": "libsodium");
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
                lh_sha256_update (&state, data + done, piece);
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
        lh_sha256_update (&state, data + half, size - half);
        crypto_hash_sha256_final (&state, got);
        assert (memcmp (expect, got, sizeof (got)) == 0);
    }
    free (data);
    printf ("OK\n");
}


//  --------------------------------------------------------------------------
//  The digest as lowercase hex; the state is finished

void
lh_sha256_final_hex (crypto_hash_sha256_state *state, char *hex)
{
    static const char digits [] = "0123456789abcdef";
    uint8_t digest [crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final (state, digest);
    for (size_t index = 0; index < sizeof (digest); index++) {
        hex [2 * index] = digits [digest [index] >> 4];
        hex [2 * index + 1] = digits [digest [index] & 15];
    }
    hex [2 * sizeof (digest)] = 0;
}
