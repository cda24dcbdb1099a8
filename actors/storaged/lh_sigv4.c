/*  =========================================================================
    lh_sigv4 - AWS Signature Version 4; see lh_sigv4.h
    =========================================================================
*/

#include "lh_sigv4.h"
#include "lh_sha256.h"

//  A name/value pair while sorting
typedef struct {
    char *name;                         //  lowercased / encoded name
    char *value;                        //  trimmed / encoded value
} s_pair_t;

static int
s_pair_compare (const void *a, const void *b)
{
    const s_pair_t *left = (const s_pair_t *) a, *right = (const s_pair_t *) b;
    int rc = strcmp (left->name, right->name);
    return rc? rc: strcmp (left->value, right->value);
}


//  --------------------------------------------------------------------------
//  Hex SHA-256

void
lh_sigv4_sha256_hex (const void *data, size_t size, char *hex)
{
    crypto_hash_sha256_state state;
    crypto_hash_sha256_init (&state);
    lh_sha256_update (&state, data, size);      //  payloads of whole parts
    lh_sha256_final_hex (&state, hex);
}


//  --------------------------------------------------------------------------
//  HMAC-SHA-256 of text under key (any length)

static void
s_hmac (const uint8_t *key, size_t key_size, const char *text, uint8_t *out)
{
    crypto_auth_hmacsha256_state state;
    crypto_auth_hmacsha256_init (&state, key, key_size);
    crypto_auth_hmacsha256_update (&state, (const uint8_t *) text, strlen (text));
    crypto_auth_hmacsha256_final (&state, out);
}


//  --------------------------------------------------------------------------
//  Percent-encode

char *
lh_sigv4_encode (const char *text, size_t size, bool keep_slash)
{
    static const char hex [] = "0123456789ABCDEF";
    char *out = (char *) malloc (size * 3 + 1);
    assert (out);
    char *write = out;
    for (size_t index = 0; index < size; index++) {
        unsigned char c = (unsigned char) text [index];
        if (isalnum (c) || c == '-' || c == '_' || c == '.' || c == '~'
        ||  (keep_slash && c == '/'))
            *write++ = (char) c;
        else {
            *write++ = '%';
            *write++ = hex [c >> 4];
            *write++ = hex [c & 15];
        }
    }
    *write = 0;
    return out;
}


//  --------------------------------------------------------------------------
//  Canonical query from decoded pairs

char *
lh_sigv4_query (const char *const *pairs)
{
    size_t count = 0;
    while (pairs && pairs [2 * count])
        count++;
    s_pair_t *items = (s_pair_t *) calloc (count + 1, sizeof (s_pair_t));
    assert (items);
    size_t total = 1;
    for (size_t index = 0; index < count; index++) {
        const char *name = pairs [2 * index];
        const char *value = pairs [2 * index + 1]? pairs [2 * index + 1]: "";
        items [index].name = lh_sigv4_encode (name, strlen (name), false);
        items [index].value = lh_sigv4_encode (value, strlen (value), false);
        total += strlen (items [index].name) + strlen (items [index].value) + 2;
    }
    qsort (items, count, sizeof (s_pair_t), s_pair_compare);
    char *out = (char *) malloc (total);
    assert (out);
    char *write = out;
    *write = 0;
    for (size_t index = 0; index < count; index++) {
        write += sprintf (write, "%s%s=%s", index? "&": "", items [index].name, items [index].value);
        free (items [index].name);
        free (items [index].value);
    }
    free (items);
    return out;
}


//  --------------------------------------------------------------------------
//  Canonical headers ("name:value\n"...) and the signed header list

static void
s_headers (const char *const *headers, char **canonical_p, char **signed_p)
{
    size_t count = 0;
    while (headers [2 * count])
        count++;
    s_pair_t *items = (s_pair_t *) calloc (count + 1, sizeof (s_pair_t));
    assert (items);
    size_t total = 1;
    for (size_t index = 0; index < count; index++) {
        char *name = strdup (headers [2 * index]);
        for (char *scan = name; *scan; scan++)
            *scan = (char) tolower ((unsigned char) *scan);
        //  Trim, and fold runs of spaces into one
        const char *value = headers [2 * index + 1];
        char *trimmed = (char *) malloc (strlen (value) + 1);
        char *write = trimmed;
        for (const char *scan = value; *scan; scan++) {
            if (isspace ((unsigned char) *scan)) {
                if (write > trimmed && write [-1] != ' ')
                    *write++ = ' ';
            }
            else
                *write++ = *scan;
        }
        if (write > trimmed && write [-1] == ' ')
            write--;
        *write = 0;
        items [index].name = name;
        items [index].value = trimmed;
        total += strlen (name) + strlen (trimmed) + 3;
    }
    qsort (items, count, sizeof (s_pair_t), s_pair_compare);
    char *canonical = (char *) malloc (total);
    char *names = (char *) malloc (total);
    assert (canonical && names);
    char *write = canonical, *list = names;
    *names = 0;
    for (size_t index = 0; index < count; index++) {
        write += sprintf (write, "%s:%s\n", items [index].name, items [index].value);
        list += sprintf (list, "%s%s", index? ";": "", items [index].name);
        free (items [index].name);
        free (items [index].value);
    }
    *write = 0;
    free (items);
    *canonical_p = canonical;
    *signed_p = names;
}


//  --------------------------------------------------------------------------
//  The canonical request

char *
lh_sigv4_canonical (const lh_sigv4_t *request)
{
    char *headers, *names;
    s_headers (request->headers, &headers, &names);
    char *canonical = zsys_sprintf ("%s\n%s\n%s\n%s\n%s\n%s", request->method,
                                    request->path, request->query? request->query: "",
                                    headers, names, request->payload_hash);
    free (headers);
    free (names);
    return canonical;
}


//  --------------------------------------------------------------------------
//  Sign: string to sign, derived key, signature, Authorization value

char *
lh_sigv4_sign (const lh_sigv4_t *request)
{
    assert (request->amz_date && strlen (request->amz_date) >= 8);
    if (sodium_init () < 0)
        return NULL;
    char date [9];
    memcpy (date, request->amz_date, 8);
    date [8] = 0;
    char *canonical = lh_sigv4_canonical (request);
    char hash [65];
    lh_sigv4_sha256_hex (canonical, strlen (canonical), hash);
    free (canonical);
    char *scope = zsys_sprintf ("%s/%s/%s/aws4_request", date, request->region, request->service);
    char *to_sign = zsys_sprintf ("AWS4-HMAC-SHA256\n%s\n%s\n%s", request->amz_date, scope, hash);

    char *secret = zsys_sprintf ("AWS4%s", request->secret_key);
    uint8_t key [crypto_auth_hmacsha256_BYTES];
    s_hmac ((const uint8_t *) secret, strlen (secret), date, key);
    sodium_memzero (secret, strlen (secret));
    free (secret);
    s_hmac (key, sizeof (key), request->region, key);
    s_hmac (key, sizeof (key), request->service, key);
    s_hmac (key, sizeof (key), "aws4_request", key);
    uint8_t signature [crypto_auth_hmacsha256_BYTES];
    s_hmac (key, sizeof (key), to_sign, signature);
    sodium_memzero (key, sizeof (key));
    char signature_hex [65];
    sodium_bin2hex (signature_hex, sizeof (signature_hex), signature, sizeof (signature));

    char *headers, *names;
    s_headers (request->headers, &headers, &names);
    char *authorization = zsys_sprintf (
        "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
        request->access_key, scope, names, signature_hex);
    free (headers);
    free (names);
    free (scope);
    free (to_sign);
    return authorization;
}


//  --------------------------------------------------------------------------
//  Self test: vectors from AWS's published SigV4 test suite
//  (aws-sig-v4-test-suite: get-vanilla, get-vanilla-query-order-key-case,
//  post-vanilla, get-utf8), credentials AKIDEXAMPLE

void
lh_sigv4_test (bool verbose)
{
    printf (" * lh_sigv4: ");
    const char *empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    char hash [65];
    lh_sigv4_sha256_hex ("", 0, hash);
    assert (streq (hash, empty));
    const char *headers [] = { "Host", "example.amazonaws.com",
                               "X-Amz-Date", "20150830T123600Z", NULL };
    struct {
        const char *name;
        const char *method;
        const char *path;
        const char *const *query;
        const char *signature;
    } vectors [] = {
        { "get-vanilla", "GET", "/", NULL,
          "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" },
        { "get-vanilla-query-order-key-case", "GET", "/",
          (const char *[]) { "Param2", "value2", "Param1", "value1", NULL },
          "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500" },
        { "post-vanilla", "POST", "/", NULL,
          "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b" },
        { "get-utf8", "GET", "/%E1%88%B4", NULL,
          "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85" },
    };
    for (size_t index = 0; index < sizeof (vectors) / sizeof (vectors [0]); index++) {
        char *query = lh_sigv4_query (vectors [index].query);
        lh_sigv4_t request = {
            .method = vectors [index].method, .path = vectors [index].path,
            .query = query, .headers = headers, .payload_hash = empty,
            .amz_date = "20150830T123600Z", .region = "us-east-1", .service = "service",
            .access_key = "AKIDEXAMPLE",
            .secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
        };
        char *authorization = lh_sigv4_sign (&request);
        char *expect = zsys_sprintf (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=%s", vectors [index].signature);
        if (verbose)
            printf ("\n   %s: %s", vectors [index].name, authorization);
        assert (streq (authorization, expect));
        free (authorization);
        free (expect);
        free (query);
    }
    //  The canonical request of get-vanilla, as published
    lh_sigv4_t request = {
        .method = "GET", .path = "/", .query = "", .headers = headers, .payload_hash = empty,
        .amz_date = "20150830T123600Z", .region = "us-east-1", .service = "service",
        .access_key = "AKIDEXAMPLE", .secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    };
    char *canonical = lh_sigv4_canonical (&request);
    assert (streq (canonical, "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                              "host;x-amz-date\n"
                              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    free (canonical);
    //  Encoding: spaces, '+', unicode, slashes
    char *encoded = lh_sigv4_encode ("a b+c/\xc3\xa9~", 9, true);
    assert (streq (encoded, "a%20b%2Bc/%C3%A9~"));
    free (encoded);
    encoded = lh_sigv4_encode ("a/b", 3, false);
    assert (streq (encoded, "a%2Fb"));
    free (encoded);
    printf ("OK\n");
}
