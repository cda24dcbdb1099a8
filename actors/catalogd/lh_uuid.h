/*  =========================================================================
    lh_uuid - name-based UUIDs (RFC 4122 version 5, SHA-1)

    libsodium has no SHA-1, so a small one lives here (FIPS 180-4). It is
    used only to derive ids, never for security.

        char id [LH_UUID_TEXT];
        lh_uuid5 (LH_CATALOG_NAMESPACE, "workers", 7, id);
        //  "4ee908eb-05e4-5c26-a4ad-4ca54bb01062"
    =========================================================================
*/

#ifndef LH_UUID_H_INCLUDED
#define LH_UUID_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LH_UUID_TEXT    37              //  36 chars + NUL

//  catalogd's namespace, a8f3c1d2-4e5b-5a6c-9d8e-7f0a1b2c3d4e
extern const uint8_t LH_CATALOG_NAMESPACE [16];

//  SHA-1 of size bytes into digest (20 bytes)
void
    lh_sha1 (const void *data, size_t size, uint8_t *digest);

//  UUIDv5 of name under namespace, as lowercase text with dashes
void
    lh_uuid5 (const uint8_t *namespace_id, const char *name, size_t size,
              char *text);

//  True if text is a UUID in lowercase (or uppercase) 8-4-4-4-12 form
bool
    lh_uuid_valid (const char *text, size_t size);

//  Self test of this class
void
    lh_uuid_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
