/*  =========================================================================
    lh_uuid - name-based UUIDs (version 5) and the SHA-1 they need
    =========================================================================
*/

#include "lh_uuid.h"

const uint8_t LH_CATALOG_NAMESPACE [16] = {
    0xa8, 0xf3, 0xc1, 0xd2, 0x4e, 0x5b, 0x5a, 0x6c,
    0x9d, 0x8e, 0x7f, 0x0a, 0x1b, 0x2c, 0x3d, 0x4e
};

//  SHA-1 running state
typedef struct {
    uint32_t h [5];                     //  chaining value
    uint64_t length;                    //  bytes hashed so far
    uint8_t block [64];                 //  partial block
    size_t used;                        //  bytes in block
} s_sha1_t;

#define S_ROL(value, bits) (((value) << (bits)) | ((value) >> (32 - (bits))))


//  --------------------------------------------------------------------------
//  Process one 64-byte block

static void
s_sha1_block (s_sha1_t *self, const uint8_t *block)
{
    uint32_t w [80];
    for (int index = 0; index < 16; index++)
        w [index] = (uint32_t) block [4 * index] << 24 | (uint32_t) block [4 * index + 1] << 16
                  | (uint32_t) block [4 * index + 2] << 8 | block [4 * index + 3];
    for (int index = 16; index < 80; index++)
        w [index] = S_ROL (w [index - 3] ^ w [index - 8] ^ w [index - 14] ^ w [index - 16], 1);
    uint32_t a = self->h [0], b = self->h [1], c = self->h [2], d = self->h [3], e = self->h [4];
    for (int index = 0; index < 80; index++) {
        uint32_t f, k;
        if (index < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        }
        else
        if (index < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        }
        else
        if (index < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        }
        else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t temp = S_ROL (a, 5) + f + e + k + w [index];
        e = d;
        d = c;
        c = S_ROL (b, 30);
        b = a;
        a = temp;
    }
    self->h [0] += a;
    self->h [1] += b;
    self->h [2] += c;
    self->h [3] += d;
    self->h [4] += e;
}


//  --------------------------------------------------------------------------
//  Feed bytes

static void
s_sha1_update (s_sha1_t *self, const uint8_t *data, size_t size)
{
    self->length += size;
    while (size > 0) {
        size_t take = 64 - self->used < size? 64 - self->used: size;
        memcpy (self->block + self->used, data, take);
        self->used += take;
        data += take;
        size -= take;
        if (self->used == 64) {
            s_sha1_block (self, self->block);
            self->used = 0;
        }
    }
}


//  --------------------------------------------------------------------------
//  SHA-1 of a buffer

void
lh_sha1 (const void *data, size_t size, uint8_t *digest)
{
    s_sha1_t self = { { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0 }, 0, { 0 }, 0 };
    s_sha1_update (&self, (const uint8_t *) data, size);
    uint64_t bits = self.length * 8;
    uint8_t pad = 0x80;
    s_sha1_update (&self, &pad, 1);
    pad = 0;
    while (self.used != 56)
        s_sha1_update (&self, &pad, 1);
    uint8_t length [8];
    for (int index = 0; index < 8; index++)
        length [index] = (uint8_t) (bits >> (56 - 8 * index));
    s_sha1_update (&self, length, 8);
    for (int index = 0; index < 5; index++) {
        digest [4 * index] = (uint8_t) (self.h [index] >> 24);
        digest [4 * index + 1] = (uint8_t) (self.h [index] >> 16);
        digest [4 * index + 2] = (uint8_t) (self.h [index] >> 8);
        digest [4 * index + 3] = (uint8_t) self.h [index];
    }
}


//  --------------------------------------------------------------------------
//  UUIDv5: SHA-1 of namespace + name, version and variant bits set

void
lh_uuid5 (const uint8_t *namespace_id, const char *name, size_t size, char *text)
{
    uint8_t *input = (uint8_t *) malloc (16 + size);
    assert (input);
    memcpy (input, namespace_id, 16);
    memcpy (input + 16, name, size);
    uint8_t digest [20];
    lh_sha1 (input, 16 + size, digest);
    free (input);
    digest [6] = (digest [6] & 0x0F) | 0x50;
    digest [8] = (digest [8] & 0x3F) | 0x80;
    static const char hex [] = "0123456789abcdef";
    char *out = text;
    for (int index = 0; index < 16; index++) {
        if (index == 4 || index == 6 || index == 8 || index == 10)
            *out++ = '-';
        *out++ = hex [digest [index] >> 4];
        *out++ = hex [digest [index] & 15];
    }
    *out = 0;
}


//  --------------------------------------------------------------------------
//  Is text a UUID in 8-4-4-4-12 form?

bool
lh_uuid_valid (const char *text, size_t size)
{
    if (size != 36)
        return false;
    for (size_t index = 0; index < 36; index++) {
        if (index == 8 || index == 13 || index == 18 || index == 23) {
            if (text [index] != '-')
                return false;
        }
        else
        if (!isxdigit ((unsigned char) text [index]))
            return false;
    }
    return true;
}


//  --------------------------------------------------------------------------
//  Self test: FIPS vectors for SHA-1, Python's uuid.uuid5 for the ids

void
lh_uuid_test (bool verbose)
{
    printf (" * lh_uuid: ");
    struct {
        const char *input;
        size_t repeat;
        const char *digest;
    } vectors [] = {
        { "abc", 1, "a9993e364706816aba3e25717850c26c9cd0d89d" },
        { "", 1, "da39a3ee5e6b4b0d3255bfef95601890afd80709" },
        { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
          "84983e441c3bd26ebaae4aa1f95129e5e54670f1" },
        { "a", 1000, "291e9a6c66994949b57ba5e650361e98fc36b1ba" },
    };
    for (size_t index = 0; index < sizeof (vectors) / sizeof (vectors [0]); index++) {
        size_t size = strlen (vectors [index].input) * vectors [index].repeat;
        char *input = (char *) malloc (size + 1);
        assert (input);
        for (size_t copy = 0; copy < vectors [index].repeat; copy++)
            memcpy (input + copy * strlen (vectors [index].input), vectors [index].input,
                    strlen (vectors [index].input));
        uint8_t digest [20];
        lh_sha1 (input, size, digest);
        free (input);
        char text [41];
        for (int byte = 0; byte < 20; byte++)
            sprintf (text + 2 * byte, "%02x", digest [byte]);
        if (verbose)
            printf ("\n   sha1 %zu: %s", index, text);
        assert (streq (text, vectors [index].digest));
    }
    //  Computed with /usr/bin/python3: uuid.uuid5 (uuid.UUID (NS), name)
    struct {
        const char *name;
        const char *id;
    } ids [] = {
        { "workers", "4ee908eb-05e4-5c26-a4ad-4ca54bb01062" },
        { "contracts", "9cd67536-735a-5095-954b-9bc22719f4a9" },
        { "", "99da120f-3d14-5223-b594-7bff477e2974" },
        { "caf\xc3\xa9 roster", "60942dd4-e490-55d8-9106-dc963ac71a71" },
    };
    for (size_t index = 0; index < sizeof (ids) / sizeof (ids [0]); index++) {
        char text [LH_UUID_TEXT];
        lh_uuid5 (LH_CATALOG_NAMESPACE, ids [index].name, strlen (ids [index].name), text);
        if (verbose)
            printf ("\n   uuid5 '%s': %s", ids [index].name, text);
        assert (streq (text, ids [index].id));
        assert (lh_uuid_valid (text, strlen (text)));
    }
    assert (!lh_uuid_valid ("4ee908eb-05e4-5c26-a4ad-4ca54bb0106", 35));
    assert (!lh_uuid_valid ("4ee908eb_05e4-5c26-a4ad-4ca54bb01062", 36));
    printf ("OK\n");
}
