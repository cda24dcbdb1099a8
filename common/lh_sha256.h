/*  =========================================================================
    lh_sha256 - SHA-256 of bulk bytes (objects, uploads, table files)

    Runs on libsodium's streaming state, so it mixes with libsodium's own
    calls: start with crypto_hash_sha256_init, feed with lh_sha256_update,
    end with crypto_hash_sha256_final or lh_sha256_final_hex. Where the CPU
    has the x86 SHA extensions (SHA-NI) the blocks are hashed with them,
    several times faster than libsodium's portable code (~1.25 GB/s
    against ~370 MB/s here, docs/storaged.md); elsewhere libsodium does
    the work. Use it
    wherever hundreds of MB are hashed: storaged's ETags, ingestd's table
    names, lh_storage's download check.

        crypto_hash_sha256_state state;
        crypto_hash_sha256_init (&state);
        lh_sha256_update (&state, data, size);     //  as often as needed
        char hex [65];
        lh_sha256_final_hex (&state, hex);
    =========================================================================
*/

#ifndef LH_SHA256_H_INCLUDED
#define LH_SHA256_H_INCLUDED

#include <czmq.h>
#include <sodium.h>

#ifdef __cplusplus
extern "C" {
#endif

//  SHA-256 update over libsodium's streaming state: the same state and
//  digest as crypto_hash_sha256_update, computed with the x86 SHA
//  extensions when the CPU has them
void
    lh_sha256_update (crypto_hash_sha256_state *state, const void *data, size_t size);

//  Finish the state and write its digest as 64 lowercase hex digits and a
//  NUL into hex (65 bytes)
void
    lh_sha256_final_hex (crypto_hash_sha256_state *state, char *hex);

//  True if lh_sha256_update uses the CPU's SHA extensions
bool
    lh_sha256_accelerated (void);

//  Self test: lh_sha256_update equals libsodium's for many sizes and splits
void
    lh_sha256_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
