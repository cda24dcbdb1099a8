/*  =========================================================================
    lh_store_s3 - the S3 backend of lh_store; see lh_store_s3.h

    Each call is one or a few HTTP requests through libcurl (one easy
    handle per request; a share handle keeps connections, DNS and TLS
    sessions across requests and threads), signed with lh_sigv4.

    Mapping to the store's contract:

    put         PutObject, x-amz-meta-sha256 = our ETag (the content's
                SHA-256, which is also the signed payload hash)
    get         GetObject with Range; at or past the end (416): HEAD decides
                between an empty answer (offset == size) and 400
    head        HeadObject; ETag = x-amz-meta-sha256, else S3's ETag
    list        ListObjectsV2 (start-after, then continuation tokens) until
                `limit` keys or the end; then HEAD of each key (16 in
                flight) for its SHA-256, with pages cut to s3_list_heads
                keys (truncated says more follow) so one list call stays
                short; s3_list_heads = 0: S3's ETags, no HEADs
    remove      HEAD (404 if none: S3's DELETE does not say), DeleteObject
    uploads     kept in this process: parts are appended to a buffer that
                is sent as one S3 UploadPart once it holds s3_part_min
                bytes and the next part arrives (so the last part, always
                still buffered, can be resent). An upload that never filled
                a buffer commits as one PutObject. Otherwise commit sends
                the rest as the last part, CompleteMultipartUpload, then
                copies the object onto itself with its x-amz-meta-sha256
                (the SHA-256 is only known at the end).
    conditions  checked with HEAD under a process lock, and sent to S3 as
                If-None-Match: * / If-Match: S3-ETAG so a store that
                supports conditional writes makes them atomic.

    Errors: S3's Code and Message go into the reason, never credentials.
    =========================================================================
*/

#include "lh_store_s3.h"
#include "lh_s3_parse.h"
#include "lh_sigv4.h"
#include "lh_sha256.h"
#include "lh_log.h"
#include "lh_actor.h"
#include <curl/curl.h>
#include <sodium.h>

#define S_NAME          "storaged"
#define S_TEXT_MAX      (16 * 1024 * 1024)  //  largest XML / error body kept
#define S_CRED_MAX      (64 * 1024)     //  largest credentials file
#define S_PARTS_MAX     10000           //  S3's limit on parts per upload
#define S_COPY_MAX      (5ULL << 30)    //  largest single CopyObject
#define S_IDLE_MAX_S    4               //  reuse connections idle < this (s)
#define S_HEAD_PARALLEL 16              //  HEADs in flight while listing

//  A multipart upload in progress (in this process only)
typedef struct {
    char id [33];                       //  our upload id (hex)
    char *key;                          //  the object's key
    char *s3_id;                        //  S3's UploadId, NULL before part 1
    uint32_t next_part;                 //  part expected next (1-based)
    uint64_t size;                      //  content bytes so far
    uint64_t prev_size;                 //  content bytes before last part
    crypto_hash_sha256_state hash;      //  hash of size bytes
    crypto_hash_sha256_state prev_hash; //  hash of prev_size bytes
    uint8_t *pending;                   //  bytes not yet sent to S3
    size_t pending_size;                //  bytes in pending
    size_t pending_max;                 //  capacity of pending
    size_t last_size;                   //  last part's bytes (tail of pending)
    char **etags;                       //  S3 ETag of each part sent
    uint32_t s3_parts;                  //  parts sent to S3
    bool busy;                          //  a call is working on it
    int64_t used;                       //  zclock_mono of the last call
} s_upload_t;

typedef struct {
    char *base;                         //  scheme://host[:port] for URLs
    char *host;                         //  Host header (signed)
    char *prefix;                       //  "/BUCKET" (path style) or ""
    char *bucket;                       //  bucket name
    char *region;                       //  SigV4 region
    char *access_key;                   //  access key id
    char *secret_key;                   //  secret access key
    char *session_token;                //  session token, or NULL
    long timeout_ms;                    //  one request, whole
    long connect_timeout_ms;            //  one connect
    size_t part_min;                    //  buffered bytes per S3 part
    uint32_t list_heads;                //  keys per list page with HEADs, 0: none
    CURLSH *share;                      //  shared connections / DNS / TLS
    pthread_mutex_t share_locks [CURL_LOCK_DATA_LAST];
    pthread_mutex_t lock;               //  guards uploads
    pthread_mutex_t cond_lock;          //  conditional writes, in order
    zhashx_t *uploads;                  //  id -> s_upload_t
} s_s3_t;

//  One request to S3
typedef struct {
    const char *method;                 //  GET, HEAD, PUT, POST, DELETE
    const char *key;                    //  object key, or NULL: the bucket
    const char *const *query;           //  decoded name, value, ..., NULL
    const char *const *amz;             //  x-amz-* name, value, ... (signed)
    const char *const *plain;           //  other headers, "Name: value"
    const void *body;                   //  request body, or NULL
    size_t body_size;                   //  its size
    const char *body_hash;              //  its hex SHA-256, or NULL
    size_t sink_max;                    //  > 0: keep a 2xx body as data
    long timeout_ms;                    //  > 0: instead of s3_timeout_ms
} s_call_t;

//  What came back
typedef struct {
    long status;                        //  HTTP status, 0 if none
    char *text;                         //  non-data body, NUL-terminated
    size_t text_size;                   //  its bytes
    uint8_t *data;                      //  2xx body when sink_max > 0
    size_t data_size;                   //  its bytes
    size_t data_capacity;               //  allocated for data
    bool overflow;                      //  more came than we keep
    lh_s3_head_t head;                  //  what the headers said
    bool empty_range;                   //  206 for an empty object
} s_reply_t;

//  One request in flight: what libcurl's callbacks and the finish need
typedef struct {
    CURL *curl;                         //  the easy handle
    const s_call_t *call;               //  the request
    s_reply_t *reply;                   //  the response being read
    struct curl_slist *headers;         //  request headers
    char *url;                          //  request URL
    char curl_error [CURL_ERROR_SIZE];  //  libcurl's message
} s_exchange_t;

//  --------------------------------------------------------------------------
//  Copy a string into size bytes, cut if it is longer

static void
s_copy (char *dest, size_t size, const char *source)
{
    size_t length = strnlen (source, size - 1);
    memcpy (dest, source, length);
    dest [length] = 0;
}

static pthread_once_t s_curl_once = PTHREAD_ONCE_INIT;

static void
s_curl_init (void)
{
    curl_global_init (CURL_GLOBAL_DEFAULT);
}


//  --------------------------------------------------------------------------
//  curl's progress callback: heartbeat the worker during slow transfers

static int
s_transfer_progress (void *clientp, curl_off_t dltotal, curl_off_t dlnow,
                     curl_off_t ultotal, curl_off_t ulnow)
{
    lh_keepalive ();
    return 0;
}


//  --------------------------------------------------------------------------
//  Replace control characters and any credential in text (in place), so
//  a reason built from S3's words can be shown to anyone

static void
s_scrub (s_s3_t *self, char *text)
{
    const char *secrets [] = { self->secret_key, self->access_key, self->session_token };
    lh_s3_scrub (text, secrets, 3);
}


//  --------------------------------------------------------------------------
//  libcurl callbacks: response headers and body

static size_t
s_on_header (char *line, size_t size, size_t count, void *arg)
{
    s_exchange_t *exchange = (s_exchange_t *) arg;
    s_reply_t *reply = exchange->reply;
    size_t bytes = size * count;
    if (bytes >= 5 && memcmp (line, "HTTP/", 5) == 0) {
        //  A new response (after a 100 Continue): forget the last one's
        lh_s3_head_reset (&reply->head);
        reply->empty_range = false;
        return bytes;
    }
    if (bytes <= 2 && (bytes == 0 || line [0] == '\r' || line [0] == '\n')) {
        //  End of the headers. A range of an empty object answered 206
        //  "bytes 0-0/0" (s3rver) promises a byte that never comes: stop
        long status = 0;
        curl_easy_getinfo (exchange->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status == 206 && reply->head.total == 0) {
            reply->empty_range = true;
            return 0;
        }
        return bytes;
    }
    lh_s3_head_parse (&reply->head, line, bytes);
    return bytes;
}

static size_t
s_on_body (char *data, size_t size, size_t count, void *arg)
{
    s_exchange_t *exchange = (s_exchange_t *) arg;
    s_reply_t *reply = exchange->reply;
    size_t bytes = size * count;
    long status = 0;
    curl_easy_getinfo (exchange->curl, CURLINFO_RESPONSE_CODE, &status);
    if (exchange->call->sink_max > 0 && status >= 200 && status < 300) {
        size_t max = exchange->call->sink_max;
        size_t take = bytes;
        if (reply->data_size + take > max) {
            take = max - reply->data_size;
            reply->overflow = true;
        }
        if (reply->data_size + take > reply->data_capacity) {
            size_t capacity = reply->data_capacity? reply->data_capacity * 2: 65536;
            if (reply->head.length > 0 && (uint64_t) reply->head.length > capacity)
                capacity = (size_t) reply->head.length;
            if (capacity < reply->data_size + take)
                capacity = reply->data_size + take;
            if (capacity > max)
                capacity = max;
            uint8_t *grown = (uint8_t *) realloc (reply->data, capacity);
            if (!grown)
                return 0;
            reply->data = grown;
            reply->data_capacity = capacity;
        }
        memcpy (reply->data + reply->data_size, data, take);
        reply->data_size += take;
        return reply->overflow? 0: bytes;
    }
    if (reply->text_size + bytes > S_TEXT_MAX) {
        reply->overflow = true;
        return 0;
    }
    char *grown = (char *) realloc (reply->text, reply->text_size + bytes + 1);
    if (!grown)
        return 0;
    reply->text = grown;
    memcpy (reply->text + reply->text_size, data, bytes);
    reply->text_size += bytes;
    reply->text [reply->text_size] = 0;
    return bytes;
}

static void
s_reply_free (s_reply_t *reply)
{
    free (reply->text);
    free (reply->data);
    memset (reply, 0, sizeof (*reply));
}


//  --------------------------------------------------------------------------
//  Append a header line to a curl list

static struct curl_slist *
s_header_add (struct curl_slist *list, const char *name, const char *value)
{
    char *line = zsys_sprintf ("%s: %s", name, value);
    list = curl_slist_append (list, line);
    assert (list);
    free (line);
    return list;
}


//  --------------------------------------------------------------------------
//  Prepare one signed request in exchange (which must stay put until
//  s_exchange_close: libcurl's callbacks point at it). Returns 0, or -1
//  with a 500 error.

static int
s_exchange_open (s_s3_t *self, s_exchange_t *exchange, const s_call_t *call,
                 s_reply_t *reply, lh_store_error_t *error)
{
    memset (exchange, 0, sizeof (*exchange));
    memset (reply, 0, sizeof (*reply));
    lh_s3_head_reset (&reply->head);
    exchange->call = call;
    exchange->reply = reply;
    //  Path and query, as sent and as signed
    char *encoded = call->key? lh_sigv4_encode (call->key, strlen (call->key), true): NULL;
    char *path = encoded? zsys_sprintf ("%s/%s", self->prefix, encoded):
                 zsys_sprintf ("%s", *self->prefix? self->prefix: "/");
    free (encoded);
    char *query = lh_sigv4_query (call->query);
    exchange->url = zsys_sprintf ("%s%s%s%s", self->base, path, *query? "?": "", query);

    char hash [65];
    if (call->body_hash)
        snprintf (hash, sizeof (hash), "%s", call->body_hash);
    else
        lh_sigv4_sha256_hex (call->body? call->body: "", call->body_size, hash);
    char date [17];
    time_t now = time (NULL);
    struct tm tm;
    gmtime_r (&now, &tm);
    strftime (date, sizeof (date), "%Y%m%dT%H%M%SZ", &tm);

    //  Signed headers: host, x-amz-content-sha256, x-amz-date, token, extras
    const char *signed_headers [32];
    size_t count = 0;
    signed_headers [count++] = "host";
    signed_headers [count++] = self->host;
    signed_headers [count++] = "x-amz-content-sha256";
    signed_headers [count++] = hash;
    signed_headers [count++] = "x-amz-date";
    signed_headers [count++] = date;
    if (self->session_token) {
        signed_headers [count++] = "x-amz-security-token";
        signed_headers [count++] = self->session_token;
    }
    for (size_t index = 0; call->amz && call->amz [index] && count + 3 < 32; index += 2) {
        signed_headers [count++] = call->amz [index];
        signed_headers [count++] = call->amz [index + 1];
    }
    signed_headers [count] = NULL;
    lh_sigv4_t signing = {
        .method = call->method, .path = path, .query = query,
        .headers = signed_headers, .payload_hash = hash, .amz_date = date,
        .region = self->region, .service = "s3",
        .access_key = self->access_key, .secret_key = self->secret_key
    };
    char *authorization = lh_sigv4_sign (&signing);
    free (path);
    free (query);
    if (!authorization) {
        zstr_free (&exchange->url);
        return lh_store_error (error, 500, "internal", "s3: signing failed (libsodium)");
    }
    struct curl_slist *headers = NULL;
    for (size_t index = 0; signed_headers [index]; index += 2)
        headers = s_header_add (headers, signed_headers [index], signed_headers [index + 1]);
    headers = s_header_add (headers, "Authorization", authorization);
    sodium_memzero (authorization, strlen (authorization));
    free (authorization);
    headers = curl_slist_append (headers, "Expect:");
    for (size_t index = 0; call->plain && call->plain [index]; index++)
        headers = curl_slist_append (headers, call->plain [index]);
    exchange->headers = headers;

    CURL *curl = curl_easy_init ();
    if (!curl) {
        curl_slist_free_all (exchange->headers);
        zstr_free (&exchange->url);
        return lh_store_error (error, 500, "internal", "s3: curl_easy_init failed");
    }
    exchange->curl = curl;
    curl_easy_setopt (curl, CURLOPT_URL, exchange->url);
    curl_easy_setopt (curl, CURLOPT_SHARE, self->share);
    curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (curl, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, call->timeout_ms > 0? call->timeout_ms: self->timeout_ms);
    curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT_MS, self->connect_timeout_ms);
    curl_easy_setopt (curl, CURLOPT_MAXAGE_CONN, (long) S_IDLE_MAX_S);
    curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, exchange->curl_error);
    //  A slow transfer must not cost the worker its bus session: curl calls
    //  this about once a second even when no byte moves
    curl_easy_setopt (curl, CURLOPT_XFERINFOFUNCTION, s_transfer_progress);
    curl_easy_setopt (curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, exchange->headers);
    curl_easy_setopt (curl, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt (curl, CURLOPT_HEADERDATA, exchange);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, exchange);
    curl_easy_setopt (curl, CURLOPT_PRIVATE, exchange);
    if (streq (call->method, "HEAD"))
        curl_easy_setopt (curl, CURLOPT_NOBODY, 1L);
    else
    if (streq (call->method, "PUT") || streq (call->method, "POST")) {
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, call->body? call->body: "");
        curl_easy_setopt (curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) call->body_size);
        curl_easy_setopt (curl, CURLOPT_CUSTOMREQUEST, call->method);
    }
    else
    if (!streq (call->method, "GET"))
        curl_easy_setopt (curl, CURLOPT_CUSTOMREQUEST, call->method);
    return 0;
}


//  --------------------------------------------------------------------------
//  Finish an exchange whose transfer ended with code: free it, and
//  return 0 when an HTTP answer came (any status, in the reply), or -1
//  with a 502 error (the transport failed: curl's message; the reply
//  keeps the status and headers that came, not the bodies)

static int
s_exchange_close (s_s3_t *self, s_exchange_t *exchange, CURLcode code,
                  lh_store_error_t *error)
{
    s_reply_t *reply = exchange->reply;
    const s_call_t *call = exchange->call;
    curl_easy_getinfo (exchange->curl, CURLINFO_RESPONSE_CODE, &reply->status);
    curl_easy_cleanup (exchange->curl);
    exchange->curl = NULL;
    curl_slist_free_all (exchange->headers);
    exchange->headers = NULL;
    zstr_free (&exchange->url);
    //  A sink that filled up was stopped on purpose
    if (code == CURLE_WRITE_ERROR && reply->overflow && call->sink_max > 0
    &&  reply->data_size == call->sink_max)
        code = CURLE_OK;
    if (code != CURLE_OK) {
        char message [CURL_ERROR_SIZE + 64];
        snprintf (message, sizeof (message), "%s",
                  *exchange->curl_error? exchange->curl_error: curl_easy_strerror (code));
        s_scrub (self, message);
        free (reply->text);
        free (reply->data);
        reply->text = NULL;
        reply->data = NULL;
        reply->text_size = reply->data_size = reply->data_capacity = 0;
        return lh_store_error (error, 502, "s3_unreachable", "s3 %s %s: %s",
                               call->method, self->base, message);
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Send one signed request and read the answer. Returns 0 when an HTTP
//  answer came (any status, in reply), or -1 with a 502 error (the
//  transport failed: curl's message; reply keeps what headers came) or
//  500.

static int
s_request (s_s3_t *self, const s_call_t *call, s_reply_t *reply,
           lh_store_error_t *error)
{
    s_exchange_t exchange;
    if (s_exchange_open (self, &exchange, call, reply, error))
        return -1;
    CURLcode code = curl_easy_perform (exchange.curl);
    //  A kept-alive connection the server closed meanwhile fails at once:
    //  send again, once, on a fresh one (bodies are in memory; not for
    //  POST, which completes multipart uploads)
    if ((code == CURLE_SEND_ERROR || code == CURLE_RECV_ERROR || code == CURLE_GOT_NOTHING)
    &&  !streq (call->method, "POST") && !reply->text && !reply->data) {
        curl_easy_setopt (exchange.curl, CURLOPT_FRESH_CONNECT, 1L);
        code = curl_easy_perform (exchange.curl);
    }
    return s_exchange_close (self, &exchange, code, error);
}


//  --------------------------------------------------------------------------
//  Map a non-2xx answer to a store error (always returns -1). what names
//  the operation ("PUT 'a/b'"); S3's Code and Message go into the reason.

static int
s_reply_error (s_s3_t *self, const char *what, const s_reply_t *reply,
               lh_store_error_t *error)
{
    char code [64], message [256];
    lh_s3_error_parse (reply->text, reply->text_size, code, sizeof (code), message, sizeof (message));
    s_scrub (self, code);
    s_scrub (self, message);
    long status = reply->status;
    uint32_t mapped;
    const char *kind = lh_s3_error_map (status, code, &mapped);
    if (*code)
        return lh_store_error (error, mapped, kind, "s3 %s: %s: %s (HTTP %ld)",
                               what, code, *message? message: "no message", status);
    return lh_store_error (error, mapped, kind, "s3 %s: HTTP %ld without an error code",
                           what, status);
}


//  --------------------------------------------------------------------------
//  Fill info from a HEAD / GET answer: our ETag if the object has one,
//  else S3's

static void
s_reply_info (const s_reply_t *reply, lh_store_info_t *info)
{
    bool ours = strlen (reply->head.sha256) == LH_STORE_ETAG_SIZE;
    for (size_t index = 0; ours && index < LH_STORE_ETAG_SIZE; index++)
        if (!isxdigit ((unsigned char) reply->head.sha256 [index]))
            ours = false;
    s_copy (info->etag, sizeof (info->etag), ours? reply->head.sha256: reply->head.etag);
    for (char *scan = info->etag; *scan; scan++)
        *scan = (char) tolower ((unsigned char) *scan);
    info->mtime_ms = reply->head.mtime_ms;
}


//  --------------------------------------------------------------------------
//  HEAD an object. Returns 0 with info (and S3's ETag in s3_etag, 80
//  bytes, if not NULL), or -1 (404 if there is none).

static int
s_head_object (s_s3_t *self, const char *key, lh_store_info_t *info,
               char *s3_etag, lh_store_error_t *error)
{
    s_call_t call = { .method = "HEAD", .key = key };
    s_reply_t reply;
    if (s_request (self, &call, &reply, error))
        return -1;
    int rc = 0;
    if (reply.status == 200) {
        s_reply_info (&reply, info);
        info->size = reply.head.length >= 0? (uint64_t) reply.head.length: 0;
        if (s3_etag)
            snprintf (s3_etag, 80, "%s", reply.head.etag);
    }
    else
    if (reply.status == 404)
        rc = lh_store_error (error, 404, "no_such_key", "no object under key '%s'", key);
    else {
        //  A HEAD answer has no body: ask one byte to learn S3's Code
        s_reply_free (&reply);
        const char *plain [] = { "Range: bytes=0-0", NULL };
        s_call_t get = { .method = "GET", .key = key, .plain = plain, .sink_max = 1 };
        if (s_request (self, &get, &reply, error))
            return -1;
        char *what = zsys_sprintf ("HEAD '%s'", key);
        rc = s_reply_error (self, what, &reply, error);
        free (what);
    }
    s_reply_free (&reply);
    return rc;
}


//  --------------------------------------------------------------------------
//  Check a condition with HEAD. Returns 0 and, when the object exists,
//  S3's ETag in s3_etag (else ""); or -1 with a 412 or the HEAD's error.

static int
s_cond_head (s_s3_t *self, const char *key, const lh_store_cond_t *cond,
             char *s3_etag, lh_store_error_t *error)
{
    *s3_etag = 0;
    lh_store_info_t current;
    bool exists = s_head_object (self, key, &current, s3_etag, error) == 0;
    if (!exists && error->status != 404)
        return -1;
    return lh_store_cond_check (cond, exists, exists? current.etag: "", key, error);
}

//  The conditional headers for S3 (If-None-Match / If-Match) into plain
static void
s_cond_headers (const lh_store_cond_t *cond, const char *s3_etag,
                char *match, size_t match_size, const char **plain, size_t *count)
{
    if (cond && cond->if_none_match)
        plain [(*count)++] = "If-None-Match: *";
    else
    if (cond && cond->if_match && *s3_etag) {
        snprintf (match, match_size, "If-Match: \"%s\"", s3_etag);
        plain [(*count)++] = match;
    }
}


//  --------------------------------------------------------------------------
//  PutObject of size bytes whose SHA-256 is etag, with its metadata

static int
s_put_object (s_s3_t *self, const char *key, const void *data, size_t size,
              const char *etag, const lh_store_cond_t *cond, const char *s3_etag,
              lh_store_error_t *error)
{
    const char *amz [] = { "x-amz-meta-sha256", etag, NULL };
    const char *plain [4] = { "Content-Type: application/octet-stream" };
    size_t count = 1;
    char match [128];
    s_cond_headers (cond, s3_etag, match, sizeof (match), plain, &count);
    s_call_t call = {
        .method = "PUT", .key = key, .amz = amz, .plain = plain,
        .body = data, .body_size = size, .body_hash = etag
    };
    s_reply_t reply;
    if (s_request (self, &call, &reply, error))
        return -1;
    int rc = 0;
    if (reply.status < 200 || reply.status >= 300) {
        char *what = zsys_sprintf ("PUT '%s'", key);
        rc = s_reply_error (self, what, &reply, error);
        free (what);
    }
    s_reply_free (&reply);
    return rc;
}


//  --------------------------------------------------------------------------
//  Put

static int
s_s3_put (void *handle, const char *key, const void *data, size_t size,
          const lh_store_cond_t *cond, lh_store_info_t *info,
          lh_store_error_t *error)
{
    s_s3_t *self = (s_s3_t *) handle;
    lh_sigv4_sha256_hex (data, size, info->etag);
    bool conditional = cond && (cond->if_none_match || cond->if_match);
    char s3_etag [80] = "";
    int rc = 0;
    if (conditional) {
        pthread_mutex_lock (&self->cond_lock);
        rc = s_cond_head (self, key, cond, s3_etag, error);
    }
    if (rc == 0)
        rc = s_put_object (self, key, data, size, info->etag, conditional? cond: NULL,
                           s3_etag, error);
    if (conditional)
        pthread_mutex_unlock (&self->cond_lock);
    if (rc == 0) {
        info->size = size;
        info->mtime_ms = zclock_time ();
    }
    return rc;
}


//  --------------------------------------------------------------------------
//  Get a byte range

static int
s_s3_get (void *handle, const char *key, uint64_t offset, size_t length,
          void **data_p, size_t *got, lh_store_info_t *info,
          lh_store_error_t *error)
{
    s_s3_t *self = (s_s3_t *) handle;
    *data_p = NULL;
    *got = 0;
    s_reply_t reply;
    long status = 416;
    if (length > 0) {
        char range [80];
        snprintf (range, sizeof (range), "Range: bytes=%" PRIu64 "-%" PRIu64,
                  offset, offset + length - 1);
        const char *plain [] = { range, NULL };
        s_call_t call = { .method = "GET", .key = key, .plain = plain, .sink_max = length };
        if (s_request (self, &call, &reply, error)) {
            if (!reply.empty_range)
                return -1;
            reply.status = 416;         //  let HEAD decide, as for 416
        }
        status = reply.status;
        if (status == 206 || (status == 200 && offset == 0)) {
            s_reply_info (&reply, info);
            info->size = reply.head.total >= 0? (uint64_t) reply.head.total:
                         reply.head.length >= 0? (uint64_t) reply.head.length: reply.data_size;
            if (status == 200 && reply.overflow)
                info->size = reply.head.length >= 0? (uint64_t) reply.head.length: info->size;
            *got = reply.data_size;
            *data_p = reply.data;
            reply.data = NULL;
            s_reply_free (&reply);
            if (*got == 0) {
                free (*data_p);
                *data_p = NULL;
            }
            return 0;
        }
        if (status == 200) {
            s_reply_free (&reply);
            return lh_store_error (error, 502, "s3_error",
                                   "s3 GET '%s': the store ignored the Range header", key);
        }
        if (status != 416) {
            char *what = zsys_sprintf ("GET '%s'", key);
            s_reply_error (self, what, &reply, error);
            free (what);
            s_reply_free (&reply);
            return -1;
        }
        s_reply_free (&reply);
    }
    //  At or past the end, or nothing asked: HEAD says which
    if (s_head_object (self, key, info, NULL, error))
        return -1;
    if (offset > info->size)
        return lh_store_error (error, 400, "bad_range",
                               "offset %" PRIu64 " is past the end of '%s' (%" PRIu64 " bytes)",
                               offset, key, info->size);
    if (offset < info->size && length > 0)
        return lh_store_error (error, 502, "s3_error",
                               "s3 GET '%s': range %" PRIu64 "+%zu refused although the object has %"
                               PRIu64 " bytes", key, offset, length, info->size);
    return 0;
}


//  --------------------------------------------------------------------------
//  Head

static int
s_s3_head (void *handle, const char *key, lh_store_info_t *info,
           lh_store_error_t *error)
{
    return s_head_object ((s_s3_t *) handle, key, info, NULL, error);
}


//  --------------------------------------------------------------------------
//  HEAD many keys at once (at most S_HEAD_PARALLEL in flight), for list.
//  Each item's status ends 200 (info filled), 404, or 0 (failed: the
//  caller asks again alone, to get the error right).

typedef struct {
    char *key;                          //  object key
    lh_store_info_t info;               //  from the listing, then HEAD
    long status;                        //  HEAD's answer
} s_listed_t;

static void
s_head_many (s_s3_t *self, s_listed_t *items, size_t count)
{
    CURLM *multi = curl_multi_init ();
    s_exchange_t *exchanges = (s_exchange_t *) calloc (count + 1, sizeof (s_exchange_t));
    s_call_t *calls = (s_call_t *) calloc (count + 1, sizeof (s_call_t));
    s_reply_t *replies = (s_reply_t *) calloc (count + 1, sizeof (s_reply_t));
    assert (exchanges && calls && replies);
    if (!multi) {
        free (exchanges);
        free (calls);
        free (replies);
        return;                         //  all stay 0: asked alone
    }
    size_t next = 0, active = 0;
    lh_store_error_t error;
    while (next < count || active > 0) {
        while (active < S_HEAD_PARALLEL && next < count) {
            calls [next].method = "HEAD";
            calls [next].key = items [next].key;
            if (s_exchange_open (self, &exchanges [next], &calls [next], &replies [next], &error) == 0) {
                curl_multi_add_handle (multi, exchanges [next].curl);
                active++;
            }
            next++;
        }
        int running;
        if (curl_multi_perform (multi, &running) != CURLM_OK)
            break;
        CURLMsg *message;
        int left;
        while ((message = curl_multi_info_read (multi, &left))) {
            if (message->msg != CURLMSG_DONE)
                continue;
            s_exchange_t *exchange = NULL;
            curl_easy_getinfo (message->easy_handle, CURLINFO_PRIVATE, (char **) &exchange);
            CURLcode code = message->data.result;
            curl_multi_remove_handle (multi, message->easy_handle);
            size_t index = (size_t) (exchange - exchanges);
            s_reply_t *reply = &replies [index];
            if (s_exchange_close (self, exchange, code, &error) == 0) {
                if (reply->status == 200) {
                    s_reply_info (reply, &items [index].info);
                    items [index].info.size = reply->head.length >= 0?
                                              (uint64_t) reply->head.length: 0;
                    items [index].status = 200;
                }
                else
                if (reply->status == 404)
                    items [index].status = 404;
            }
            s_reply_free (reply);
            active--;
        }
        if (active > 0)
            curl_multi_poll (multi, NULL, 0, 100, NULL);
    }
    //  Anything left after a multi failure
    for (size_t index = 0; index < next; index++)
        if (exchanges [index].curl) {
            curl_multi_remove_handle (multi, exchanges [index].curl);
            s_exchange_close (self, &exchanges [index], CURLE_ABORTED_BY_CALLBACK, &error);
            s_reply_free (&replies [index]);
        }
    curl_multi_cleanup (multi);
    free (exchanges);
    free (calls);
    free (replies);
}


//  --------------------------------------------------------------------------
//  List: ListObjectsV2 pages until limit keys (list_heads keys when each
//  needs a HEAD for its SHA-256) or the end

typedef struct {
    s_listed_t *items;                  //  this S3 page's objects
    size_t count;                       //  items used
    size_t capacity;                    //  items allocated
} s_page_t;

static int
s_page_add (const char *key, uint64_t size, const char *etag, int64_t mtime_ms,
            void *arg)
{
    s_page_t *page = (s_page_t *) arg;
    if (page->count == page->capacity) {
        page->capacity = page->capacity? page->capacity * 2: 64;
        page->items = (s_listed_t *) realloc (page->items, page->capacity * sizeof (s_listed_t));
        assert (page->items);
    }
    s_listed_t *item = &page->items [page->count++];
    memset (item, 0, sizeof (*item));
    item->key = strdup (key);
    assert (item->key);
    s_copy (item->info.etag, sizeof (item->info.etag), etag);
    item->info.size = size;
    item->info.mtime_ms = mtime_ms;
    return 0;
}

static void
s_page_purge (s_page_t *page)
{
    for (size_t index = 0; index < page->count; index++)
        free (page->items [index].key);
    page->count = 0;
}

static int
s_s3_list (void *handle, const char *prefix, const char *start_after,
           uint32_t limit, lh_store_list_fn *fn, void *arg, bool *truncated,
           lh_store_error_t *error)
{
    s_s3_t *self = (s_s3_t *) handle;
    if (self->list_heads > 0 && limit > self->list_heads)
        limit = self->list_heads;       //  a short page: truncated says more
    s_page_t page = { NULL, 0, 0 };
    char *token = NULL;
    uint32_t reported = 0;
    bool stopped = false;
    int rc = 0;
    *truncated = false;
    while (rc == 0 && reported < limit && !stopped) {
        char max_keys [16];
        snprintf (max_keys, sizeof (max_keys), "%u", limit - reported);
        const char *query [12];
        size_t count = 0;
        query [count++] = "list-type";
        query [count++] = "2";
        query [count++] = "encoding-type";
        query [count++] = "url";
        query [count++] = "max-keys";
        query [count++] = max_keys;
        if (prefix && *prefix) {
            query [count++] = "prefix";
            query [count++] = prefix;
        }
        if (token) {
            query [count++] = "continuation-token";
            query [count++] = token;
        }
        else
        if (start_after && *start_after) {
            query [count++] = "start-after";
            query [count++] = start_after;
        }
        query [count] = NULL;
        s_call_t call = { .method = "GET", .query = query };
        s_reply_t reply;
        if (s_request (self, &call, &reply, error)) {
            rc = -1;
            break;
        }
        if (reply.status != 200) {
            rc = s_reply_error (self, "ListObjectsV2", &reply, error);
            s_reply_free (&reply);
            break;
        }
        bool more;
        char *next = NULL;
        s_page_purge (&page);
        if (lh_s3_list_parse (reply.text? reply.text: "", reply.text_size, s_page_add,
                          &page, &more, &next)) {
            rc = lh_store_error (error, 502, "s3_error",
                                 "s3 ListObjectsV2: the store's answer is not a valid listing");
            s_reply_free (&reply);
            break;
        }
        s_reply_free (&reply);
        if (page.count > limit - reported) {
            //  A store that sent more than asked: keep what was asked
            for (size_t index = limit - reported; index < page.count; index++)
                free (page.items [index].key);
            page.count = limit - reported;
            more = true;
        }
        if (self->list_heads > 0)
            s_head_many (self, page.items, page.count);
        for (size_t index = 0; index < page.count && rc == 0 && !stopped; index++) {
            s_listed_t *item = &page.items [index];
            if (self->list_heads > 0 && item->status == 0
            &&  s_head_object (self, item->key, &item->info, NULL, error) == 0)
                item->status = 200;
            else
            if (self->list_heads > 0 && item->status == 0) {
                if (error->status != 404) {
                    rc = -1;
                    break;
                }
                item->status = 404;
            }
            if (self->list_heads > 0 && item->status == 404)
                continue;               //  deleted since the listing
            reported++;
            if (fn (item->key, &item->info, arg))
                stopped = true;
        }
        zstr_free (&token);
        token = next;
        *truncated = more && token;
        if (!*truncated)
            break;
    }
    s_page_purge (&page);
    free (page.items);
    zstr_free (&token);
    return rc;
}


//  --------------------------------------------------------------------------
//  Remove: HEAD first, since S3's DELETE answers 204 for no object too

static int
s_s3_remove (void *handle, const char *key, lh_store_error_t *error)
{
    s_s3_t *self = (s_s3_t *) handle;
    lh_store_info_t info;
    if (s_head_object (self, key, &info, NULL, error))
        return -1;
    s_call_t call = { .method = "DELETE", .key = key };
    s_reply_t reply;
    if (s_request (self, &call, &reply, error))
        return -1;
    int rc = 0;
    if (reply.status < 200 || reply.status >= 300) {
        char *what = zsys_sprintf ("DELETE '%s'", key);
        rc = s_reply_error (self, what, &reply, error);
        free (what);
    }
    s_reply_free (&reply);
    return rc;
}


//  --------------------------------------------------------------------------
//  Uploads: the table

static void
s_upload_destroy (s_upload_t **self_p)
{
    if (*self_p) {
        s_upload_t *self = *self_p;
        free (self->key);
        free (self->s3_id);
        free (self->pending);
        for (uint32_t index = 0; index < self->s3_parts; index++)
            free (self->etags [index]);
        free (self->etags);
        free (self);
        *self_p = NULL;
    }
}

//  Take an upload for a call (busy until s_upload_release); 404 if none,
//  409 if another call is working on it
static s_upload_t *
s_upload_take (s_s3_t *self, const char *upload_id, lh_store_error_t *error)
{
    bool taken = false;
    pthread_mutex_lock (&self->lock);
    s_upload_t *upload = (s_upload_t *) zhashx_lookup (self->uploads, upload_id);
    if (upload && !upload->busy) {
        upload->busy = true;
        upload->used = zclock_mono ();
        taken = true;
    }
    pthread_mutex_unlock (&self->lock);
    if (!upload)
        lh_store_error (error, 404, "no_such_upload",
                        "no upload '%.64s' (finished, aborted or expired)", upload_id);
    else
    if (!taken)
        lh_store_error (error, 409, "conflict",
                        "upload '%s' is busy with another call: send parts one at a time",
                        upload_id);
    return taken? upload: NULL;
}

//  Give an upload back, or (gone) drop it from the table, which frees it
static void
s_upload_release (s_s3_t *self, s_upload_t *upload, bool gone)
{
    pthread_mutex_lock (&self->lock);
    upload->busy = false;
    upload->used = zclock_mono ();
    if (gone)
        zhashx_delete (self->uploads, upload->id);      //  frees it
    pthread_mutex_unlock (&self->lock);
}

//  AbortMultipartUpload, best effort (s3rver, for one, does not have it)
static void
s_upload_abort_s3 (s_s3_t *self, s_upload_t *upload)
{
    if (!upload->s3_id)
        return;
    const char *query [] = { "uploadId", upload->s3_id, NULL };
    s_call_t call = { .method = "DELETE", .key = upload->key, .query = query };
    s_reply_t reply;
    lh_store_error_t error;
    if (s_request (self, &call, &reply, &error) == 0) {
        if (reply.status < 200 || reply.status >= 300) {
            char *what = zsys_sprintf ("AbortMultipartUpload '%s'", upload->key);
            s_reply_error (self, what, &reply, &error);
            free (what);
        }
        else
            error.status = 0;
        s_reply_free (&reply);
    }
    if (error.status)
        lh_warn (S_NAME, NULL, "%s (parts stay until a bucket lifecycle rule removes them)",
                 error.reason);
}


//  --------------------------------------------------------------------------
//  Send the upload's pending bytes as the next S3 part (creating the S3
//  upload first if needed). On success pending is empty.

static int
s_upload_flush (s_s3_t *self, s_upload_t *upload, lh_store_error_t *error)
{
    s_reply_t reply;
    if (!upload->s3_id) {
        const char *query [] = { "uploads", "", NULL };
        const char *plain [] = { "Content-Type: application/octet-stream", NULL };
        s_call_t call = { .method = "POST", .key = upload->key, .query = query, .plain = plain };
        if (s_request (self, &call, &reply, error))
            return -1;
        if (reply.status != 200) {
            char *what = zsys_sprintf ("CreateMultipartUpload '%s'", upload->key);
            s_reply_error (self, what, &reply, error);
            free (what);
            s_reply_free (&reply);
            return -1;
        }
        char upload_id [1024];
        if (lh_s3_upload_id_parse (reply.text, reply.text_size, upload_id, sizeof (upload_id))) {
            s_reply_free (&reply);
            return lh_store_error (error, 502, "s3_error",
                                   "s3 CreateMultipartUpload '%s': no UploadId in the answer",
                                   upload->key);
        }
        s_reply_free (&reply);
        upload->s3_id = strdup (upload_id);
        assert (upload->s3_id);
    }
    if (upload->s3_parts == S_PARTS_MAX)
        return lh_store_error (error, 413, "too_large",
                               "upload '%s' needs more than %d S3 parts: raise storaged/s3_part_min",
                               upload->id, S_PARTS_MAX);
    char number [16];
    snprintf (number, sizeof (number), "%u", upload->s3_parts + 1);
    const char *query [] = { "partNumber", number, "uploadId", upload->s3_id, NULL };
    s_call_t call = {
        .method = "PUT", .key = upload->key, .query = query,
        .body = upload->pending, .body_size = upload->pending_size
    };
    if (s_request (self, &call, &reply, error))
        return -1;
    if (reply.status != 200 || !*reply.head.etag) {
        char *what = zsys_sprintf ("UploadPart %s of '%s'", number, upload->key);
        if (reply.status == 200)
            lh_store_error (error, 502, "s3_error", "s3 %s: no ETag in the answer", what);
        else
            s_reply_error (self, what, &reply, error);
        free (what);
        s_reply_free (&reply);
        return -1;
    }
    upload->etags = (char **) realloc (upload->etags, (upload->s3_parts + 1) * sizeof (char *));
    assert (upload->etags);
    upload->etags [upload->s3_parts++] = strdup (reply.head.etag);
    s_reply_free (&reply);
    upload->pending_size = 0;
    upload->last_size = 0;
    return 0;
}


//  --------------------------------------------------------------------------
//  Begin: an entry in the table; S3 hears of it with the first full part

static int
s_s3_upload_begin (void *handle, const char *key, char *upload_id,
                   lh_store_error_t *error)
{
    s_s3_t *self = (s_s3_t *) handle;
    s_upload_t *upload = (s_upload_t *) zmalloc (sizeof (s_upload_t));
    assert (upload);
    uint8_t random [16];
    randombytes_buf (random, sizeof (random));
    lh_store_hex (random, sizeof (random), upload->id);
    upload->key = strdup (key);
    assert (upload->key);
    upload->next_part = 1;
    crypto_hash_sha256_init (&upload->hash);
    upload->prev_hash = upload->hash;
    upload->used = zclock_mono ();
    pthread_mutex_lock (&self->lock);
    zhashx_insert (self->uploads, upload->id, upload);
    pthread_mutex_unlock (&self->lock);
    snprintf (upload_id, LH_STORE_UPLOAD_MAX + 1, "%s", upload->id);
    return 0;
}


//  --------------------------------------------------------------------------
//  Key, size and next part of an upload

static int
s_s3_upload_stat (void *handle, const char *upload_id, char **key_p,
                  uint64_t *size, uint32_t *next_part, lh_store_error_t *error)
{
    s_s3_t *self = (s_s3_t *) handle;
    pthread_mutex_lock (&self->lock);
    s_upload_t *upload = (s_upload_t *) zhashx_lookup (self->uploads, upload_id);
    if (upload) {
        *key_p = strdup (upload->key);
        assert (*key_p);
        *size = upload->size;
        *next_part = upload->next_part;
    }
    pthread_mutex_unlock (&self->lock);
    if (!upload)
        return lh_store_error (error, 404, "no_such_upload",
                               "no upload '%.64s' (finished, aborted or expired)", upload_id);
    return 0;
}


//  --------------------------------------------------------------------------
//  A part: the next one (the buffer goes to S3 first if it is full
//  enough) or the last one again (it is still buffered: replace it)

static int
s_s3_upload_part (void *handle, const char *upload_id, uint32_t part,
                  const void *data, size_t size, uint64_t *total,
                  lh_store_error_t *error)
{
    s_s3_t *self = (s_s3_t *) handle;
    s_upload_t *upload = s_upload_take (self, upload_id, error);
    if (!upload)
        return -1;
    int rc = 0;
    if (part == upload->next_part) {
        if (upload->pending_size >= self->part_min)
            rc = s_upload_flush (self, upload, error);
        if (rc == 0) {
            upload->prev_size = upload->size;
            upload->prev_hash = upload->hash;
        }
    }
    else
    if (part >= 1 && part + 1 == upload->next_part) {
        upload->size = upload->prev_size;
        upload->hash = upload->prev_hash;
        upload->pending_size -= upload->last_size;
    }
    else
        rc = lh_store_error (error, 400, "bad_part",
                             "parts must be sent in order: upload '%s' expects part %u, not %u",
                             upload_id, upload->next_part, part);
    if (rc == 0 && upload->pending_size + size > upload->pending_max) {
        size_t capacity = upload->pending_size + size;
        if (capacity < self->part_min)
            capacity = self->part_min;
        uint8_t *grown = (uint8_t *) realloc (upload->pending, capacity);
        if (!grown)
            rc = lh_store_error (error, 503, "no_memory", "no memory for a part of %zu bytes", size);
        else {
            upload->pending = grown;
            upload->pending_max = capacity;
        }
    }
    if (rc == 0) {
        if (size > 0)
            memcpy (upload->pending + upload->pending_size, data, size);
        upload->pending_size += size;
        upload->last_size = size;
        lh_sha256_update (&upload->hash, data, size);
        pthread_mutex_lock (&self->lock);
        upload->size += size;
        upload->next_part = part + 1;
        pthread_mutex_unlock (&self->lock);
        *total = upload->size;
    }
    s_upload_release (self, upload, false);
    return rc;
}


//  --------------------------------------------------------------------------
//  Complete the S3 upload: the XML list of parts

static int
s_upload_complete (s_s3_t *self, s_upload_t *upload, const lh_store_cond_t *cond,
                   const char *s3_etag, char *result_etag, lh_store_error_t *error)
{
    zchunk_t *xml = zchunk_new (NULL, 64 + upload->s3_parts * 96);
    zchunk_extend (xml, "<CompleteMultipartUpload>", 25);
    for (uint32_t index = 0; index < upload->s3_parts; index++) {
        char *item = zsys_sprintf ("<Part><PartNumber>%u</PartNumber><ETag>\"%s\"</ETag></Part>",
                                   index + 1, upload->etags [index]);
        zchunk_extend (xml, item, strlen (item));
        free (item);
    }
    zchunk_extend (xml, "</CompleteMultipartUpload>", 26);
    const char *query [] = { "uploadId", upload->s3_id, NULL };
    const char *plain [4] = { "Content-Type: application/xml" };
    size_t count = 1;
    char match [128];
    s_cond_headers (cond, s3_etag, match, sizeof (match), plain, &count);
    s_call_t call = {
        .method = "POST", .key = upload->key, .query = query, .plain = plain,
        .body = zchunk_data (xml), .body_size = zchunk_size (xml)
    };
    s_reply_t reply;
    int rc = s_request (self, &call, &reply, error);
    zchunk_destroy (&xml);
    if (rc)
        return -1;
    //  S3 may answer 200 and put an error in the body
    char *what = zsys_sprintf ("CompleteMultipartUpload '%s'", upload->key);
    if (reply.status != 200 || lh_s3_xml_error (reply.text, reply.text_size))
        rc = s_reply_error (self, what, &reply, error);
    else
        lh_s3_complete_etag (reply.text, reply.text_size, result_etag, LH_S3_ETAG_MAX);
    free (what);
    s_reply_free (&reply);
    return rc;
}


//  --------------------------------------------------------------------------
//  Copy the object from (of size bytes) to key, or onto itself, with
//  x-amz-meta-sha256 = etag, if from is still S3's s3_etag

static int
s_copy_object (s_s3_t *self, const char *from, const char *key, uint64_t size,
               const char *etag, const char *s3_etag, lh_store_error_t *error)
{
    char *encoded = lh_sigv4_encode (from, strlen (from), true);
    char *source = zsys_sprintf ("/%s/%s", self->bucket, encoded);
    free (encoded);
    char *quoted = zsys_sprintf ("\"%s\"", s3_etag);
    const char *amz [] = {
        "x-amz-copy-source", source,
        "x-amz-metadata-directive", "REPLACE",
        "x-amz-meta-sha256", etag,
        *s3_etag? "x-amz-copy-source-if-match": NULL, quoted,
        NULL
    };
    const char *plain [] = { "Content-Type: application/octet-stream", NULL };
    //  The store copies the bytes: allow for 20 MB/s on top of the timeout
    s_call_t call = {
        .method = "PUT", .key = key, .amz = amz, .plain = plain,
        .timeout_ms = self->timeout_ms + (long) (size / 20000)
    };
    s_reply_t reply;
    int rc = s_request (self, &call, &reply, error);
    free (source);
    free (quoted);
    if (rc)
        return -1;
    if (reply.status != 200 || lh_s3_xml_error (reply.text, reply.text_size)) {
        char *what = streq (from, key)? zsys_sprintf ("CopyObject '%s' (metadata)", key)
                                       : zsys_sprintf ("CopyObject '%s' to '%s'", from, key);
        rc = s_reply_error (self, what, &reply, error);
        free (what);
    }
    s_reply_free (&reply);
    return rc;
}


//  --------------------------------------------------------------------------
//  Commit: one PutObject if S3 never heard of the upload, else the last
//  part, CompleteMultipartUpload and the metadata copy. Under another key
//  than the begin's, the copy goes to that key and the begun object is
//  deleted (S3 names a multipart upload's object when it begins). The
//  upload ends on success and on a failed condition; other failures keep
//  it.

static int
s_s3_upload_commit (void *handle, const char *upload_id, const char *key,
                    const lh_store_cond_t *cond, char **key_p,
                    lh_store_info_t *info, lh_store_error_t *error)
{
    s_s3_t *self = (s_s3_t *) handle;
    *key_p = NULL;
    s_upload_t *upload = s_upload_take (self, upload_id, error);
    if (!upload)
        return -1;
    const char *target = key? key: upload->key;
    bool renamed = !streq (target, upload->key);
    *key_p = strdup (target);
    assert (*key_p);
    if (renamed && upload->s3_id && upload->size > S_COPY_MAX) {
        lh_store_error (error, LH_ST_TOO_LARGE, "too_large", "an upload of %" PRIu64 " bytes cannot be committed "
                 "under another key on S3 (CopyObject takes at most 5 GiB): commit it under "
                 "'%s'", upload->size, upload->key);
        s_upload_release (self, upload, false);
        return -1;
    }
    crypto_hash_sha256_state hash = upload->hash;
    uint8_t digest [crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final (&hash, digest);
    lh_store_hex (digest, sizeof (digest), info->etag);

    bool conditional = cond && (cond->if_none_match || cond->if_match);
    char s3_etag [80] = "";
    int rc = 0;
    bool gone = false;
    if (conditional) {
        pthread_mutex_lock (&self->cond_lock);
        rc = s_cond_head (self, target, cond, s3_etag, error);
        if (rc && error->status == 412) {
            s_upload_abort_s3 (self, upload);
            gone = true;
        }
    }
    if (rc == 0 && !upload->s3_id) {
        rc = s_put_object (self, target, upload->pending, upload->pending_size,
                           info->etag, conditional? cond: NULL, s3_etag, error);
        gone = rc == 0 || error->status == 412;
    }
    else
    if (rc == 0) {
        if (upload->pending_size > 0)
            rc = s_upload_flush (self, upload, error);
        char result [80] = "";
        //  The condition is the target's: on the begun key only if it is
        //  the target (else the lock above and its HEAD stand for it)
        if (rc == 0)
            rc = s_upload_complete (self, upload, conditional && !renamed? cond: NULL,
                                    s3_etag, result, error);
        gone = rc == 0 || error->status == 412 || error->status == 404;
        if (rc == 0 && renamed) {
            //  Once more on failure; the begun object goes either way
            rc = s_copy_object (self, upload->key, target, upload->size, info->etag, result,
                                error);
            if (rc)
                rc = s_copy_object (self, upload->key, target, upload->size, info->etag,
                                    result, error);
            lh_store_error_t ignored;
            if (s_s3_remove (self, upload->key, &ignored))
                lh_warn (S_NAME, NULL, "%s: '%s' stays behind (committed as '%s')",
                         ignored.reason, upload->key, target);
        }
        else
        if (rc == 0 && upload->size <= S_COPY_MAX) {
            //  Once more on failure: the object is visible already
            rc = s_copy_object (self, target, target, upload->size, info->etag, result, error);
            if (rc)
                rc = s_copy_object (self, target, target, upload->size, info->etag, result,
                                    error);
            if (rc)
                lh_warn (S_NAME, NULL, "%s: '%s' keeps S3's ETag", error->reason, target);
        }
        else
        if (rc == 0)
            lh_warn (S_NAME, NULL, "'%s' is over 5 GiB: it keeps S3's ETag, not its SHA-256",
                     target);
    }
    if (conditional)
        pthread_mutex_unlock (&self->cond_lock);
    if (rc == 0) {
        info->size = upload->size;
        info->mtime_ms = zclock_time ();
    }
    s_upload_release (self, upload, gone);
    return rc;
}


//  --------------------------------------------------------------------------
//  Abort: forget the upload, and tell S3 (best effort)

static int
s_s3_upload_abort (void *handle, const char *upload_id, lh_store_error_t *error)
{
    s_s3_t *self = (s_s3_t *) handle;
    s_upload_t *upload = s_upload_take (self, upload_id, error);
    if (!upload)
        return -1;
    s_upload_abort_s3 (self, upload);
    s_upload_release (self, upload, true);
    return 0;
}


//  --------------------------------------------------------------------------
//  Sweep: abort uploads idle for max_age_ms

static void
s_s3_sweep (void *handle, int64_t max_age_ms)
{
    s_s3_t *self = (s_s3_t *) handle;
    int64_t now = zclock_mono ();
    zlistx_t *idle = zlistx_new ();
    zlistx_set_destructor (idle, (zlistx_destructor_fn *) zstr_free);
    pthread_mutex_lock (&self->lock);
    for (s_upload_t *upload = (s_upload_t *) zhashx_first (self->uploads); upload;
         upload = (s_upload_t *) zhashx_next (self->uploads))
        if (!upload->busy && now - upload->used > max_age_ms)
            zlistx_add_end (idle, strdup (upload->id));
    pthread_mutex_unlock (&self->lock);
    lh_store_error_t error;
    for (char *id = (char *) zlistx_first (idle); id; id = (char *) zlistx_next (idle))
        s_s3_upload_abort (self, id, &error);
    zlistx_destroy (&idle);
}


//  --------------------------------------------------------------------------
//  Destroy the backend state; credentials are wiped

static void
s_free_secret (char **secret_p)
{
    if (*secret_p) {
        sodium_memzero (*secret_p, strlen (*secret_p));
        zstr_free (secret_p);
    }
}

static void
s_s3_destroy (void **handle_p)
{
    s_s3_t *self = (s_s3_t *) *handle_p;
    if (self) {
        if (self->uploads) {
            lh_store_error_t error;
            zlistx_t *ids = zhashx_keys (self->uploads);
            for (char *id = (char *) zlistx_first (ids); id; id = (char *) zlistx_next (ids))
                s_s3_upload_abort (self, id, &error);
            zlistx_destroy (&ids);
            zhashx_destroy (&self->uploads);
        }
        if (self->share) {
            curl_share_cleanup (self->share);
            for (size_t index = 0; index < CURL_LOCK_DATA_LAST; index++)
                pthread_mutex_destroy (&self->share_locks [index]);
        }
        pthread_mutex_destroy (&self->lock);
        pthread_mutex_destroy (&self->cond_lock);
        free (self->base);
        free (self->host);
        free (self->prefix);
        free (self->bucket);
        free (self->region);
        s_free_secret (&self->access_key);
        s_free_secret (&self->secret_key);
        s_free_secret (&self->session_token);
        free (self);
        *handle_p = NULL;
    }
}

static const lh_store_backend_t s_s3_backend = {
    .name = "s3",
    .destroy = s_s3_destroy,
    .put = s_s3_put,
    .get = s_s3_get,
    .head = s_s3_head,
    .list = s_s3_list,
    .remove = s_s3_remove,
    .upload_begin = s_s3_upload_begin,
    .upload_stat = s_s3_upload_stat,
    .upload_part = s_s3_upload_part,
    .upload_commit = s_s3_upload_commit,
    .upload_abort = s_s3_upload_abort,
    .sweep = s_s3_sweep
};


//  --------------------------------------------------------------------------
//  Shared-handle locks for libcurl

static void
s_share_lock (CURL *curl, curl_lock_data data, curl_lock_access access, void *arg)
{
    s_s3_t *self = (s_s3_t *) arg;
    pthread_mutex_lock (&self->share_locks [data]);
}

static void
s_share_unlock (CURL *curl, curl_lock_data data, void *arg)
{
    s_s3_t *self = (s_s3_t *) arg;
    pthread_mutex_unlock (&self->share_locks [data]);
}


//  --------------------------------------------------------------------------
//  Read credentials from a file that only its owner may read. Lines
//  access_key_id=, secret_access_key=, session_token= (an "aws_" prefix
//  is allowed); '#' starts a comment. Returns 0 or -1 with error set
//  (the reason never holds the file's content).

static int
s_credentials_file (s_s3_t *self, const char *path, lh_store_error_t *error)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lh_store_error (error, 500, "bad_config",
                               "storaged/s3_credentials_file '%s': %s", path, strerror (errno));
    struct stat st;
    if (fstat (fd, &st) || !S_ISREG (st.st_mode)) {
        close (fd);
        return lh_store_error (error, 500, "bad_config",
                               "storaged/s3_credentials_file '%s' is not a regular file", path);
    }
    if (st.st_mode & 077) {
        close (fd);
        return lh_store_error (error, 500, "bad_config",
                               "storaged/s3_credentials_file '%s' is open to group or others "
                               "(mode %04o): refusing it; run chmod 600 on it",
                               path, (unsigned) (st.st_mode & 07777));
    }
    if (st.st_size > S_CRED_MAX) {
        close (fd);
        return lh_store_error (error, 500, "bad_config",
                               "storaged/s3_credentials_file '%s' is larger than %d bytes",
                               path, S_CRED_MAX);
    }
    char *text = (char *) malloc ((size_t) st.st_size + 1);
    assert (text);
    ssize_t got = read (fd, text, (size_t) st.st_size);
    close (fd);
    if (got < 0)
        got = 0;
    text [got] = 0;
    int rc = 0;
    size_t line_number = 0;
    char *save = NULL;
    for (char *line = strtok_r (text, "\n", &save); line && rc == 0;
         line = strtok_r (NULL, "\n", &save)) {
        line_number++;
        while (isspace ((unsigned char) *line))
            line++;
        size_t size = strlen (line);
        while (size > 0 && isspace ((unsigned char) line [size - 1]))
            line [--size] = 0;
        if (*line == 0 || *line == '#' || *line == '[')
            continue;
        char *equals = strchr (line, '=');
        if (!equals) {
            rc = lh_store_error (error, 500, "bad_config",
                                 "storaged/s3_credentials_file '%s' line %zu: expected name=value",
                                 path, line_number);
            break;
        }
        char *name_end = equals;
        while (name_end > line && isspace ((unsigned char) name_end [-1]))
            name_end--;
        *name_end = 0;
        char *value = equals + 1;
        while (isspace ((unsigned char) *value))
            value++;
        const char *name = strncmp (line, "aws_", 4) == 0? line + 4: line;
        char **slot = streq (name, "access_key_id")? &self->access_key:
                      streq (name, "secret_access_key")? &self->secret_key:
                      streq (name, "session_token")? &self->session_token: NULL;
        if (!slot)
            rc = lh_store_error (error, 500, "bad_config",
                                 "storaged/s3_credentials_file '%s' line %zu: unknown name "
                                 "(expected access_key_id, secret_access_key, session_token)",
                                 path, line_number);
        else
        if (*value) {
            s_free_secret (slot);
            *slot = strdup (value);
            assert (*slot);
        }
    }
    sodium_memzero (text, (size_t) got);
    free (text);
    if (rc == 0 && (!self->access_key || !self->secret_key))
        rc = lh_store_error (error, 500, "bad_config",
                             "storaged/s3_credentials_file '%s' must set access_key_id and "
                             "secret_access_key", path);
    return rc;
}


//  --------------------------------------------------------------------------
//  Credentials from the environment: LAKEHOUSE_S3_* first, then AWS_*

static int
s_credentials_env (s_s3_t *self, lh_store_error_t *error)
{
    const char *families [] = { "LAKEHOUSE_S3_", "AWS_" };
    for (size_t index = 0; index < 2; index++) {
        char name [64];
        snprintf (name, sizeof (name), "%sACCESS_KEY_ID", families [index]);
        const char *id = getenv (name);
        snprintf (name, sizeof (name), "%sSECRET_ACCESS_KEY", families [index]);
        const char *secret = getenv (name);
        snprintf (name, sizeof (name), "%sSESSION_TOKEN", families [index]);
        const char *token = getenv (name);
        if ((id && *id) != (secret && *secret))
            return lh_store_error (error, 500, "bad_config",
                                   "s3 backend: %sACCESS_KEY_ID and %sSECRET_ACCESS_KEY must "
                                   "be set together", families [index], families [index]);
        if (id && *id) {
            self->access_key = strdup (id);
            self->secret_key = strdup (secret);
            self->session_token = token && *token? strdup (token): NULL;
            return 0;
        }
    }
    return lh_store_error (error, 500, "bad_config",
                           "s3 backend: no credentials: set storaged/s3_credentials_file (mode "
                           "0600), or env LAKEHOUSE_S3_ACCESS_KEY_ID + "
                           "LAKEHOUSE_S3_SECRET_ACCESS_KEY, or AWS_ACCESS_KEY_ID + "
                           "AWS_SECRET_ACCESS_KEY");
}


//  --------------------------------------------------------------------------
//  Parse the endpoint and addressing style into base, host and prefix

static int
s_endpoint (s_s3_t *self, const char *endpoint, const char *style,
            lh_store_error_t *error)
{
    char reason [sizeof (error->reason)];
    if (lh_s3_endpoint_parse (endpoint, style, self->bucket, &self->base, &self->host,
                              &self->prefix, reason, sizeof (reason)))
        return lh_store_error (error, 500, "bad_config", "%s", reason);
    return 0;
}


//  --------------------------------------------------------------------------
//  Create an S3 store

lh_store_t *
lh_store_new_s3 (lh_config_t *config, lh_store_error_t *error)
{
    assert (config);
    if (sodium_init () < 0) {
        lh_store_error (error, 500, "internal", "libsodium failed to initialise");
        return NULL;
    }
    pthread_once (&s_curl_once, s_curl_init);
    s_s3_t *self = (s_s3_t *) zmalloc (sizeof (s_s3_t));
    assert (self);
    pthread_mutex_init (&self->lock, NULL);
    pthread_mutex_init (&self->cond_lock, NULL);
    void *handle = self;
    const char *bucket = lh_config_str (config, "storaged/s3_bucket");
    const char *region = lh_config_str (config, "storaged/s3_region");
    const char *file = lh_config_str (config, "storaged/s3_credentials_file");
    int64_t timeout = lh_config_int (config, "storaged/s3_timeout_ms");
    int64_t connect_timeout = lh_config_int (config, "storaged/s3_connect_timeout_ms");
    int64_t part_min = lh_config_int (config, "storaged/s3_part_min");
    self->bucket = strdup (bucket);
    self->region = strdup (region);
    int64_t list_heads = lh_config_int (config, "storaged/s3_list_heads");
    int rc = 0;
    if (!*bucket || strlen (bucket) > 255 || strchr (bucket, '/'))
        rc = lh_store_error (error, 500, "bad_config",
                             "storaged/s3_bucket: a bucket name is required with storaged/backend = s3");
    else
    if (!*region)
        rc = lh_store_error (error, 500, "bad_config", "storaged/s3_region must not be empty");
    self->list_heads = (uint32_t) list_heads;
    if (rc == 0)
        rc = s_endpoint (self, lh_config_str (config, "storaged/s3_endpoint"),
                         lh_config_str (config, "storaged/s3_style"), error);
    if (rc == 0)
        rc = *file? s_credentials_file (self, file, error): s_credentials_env (self, error);
    if (rc) {
        s_s3_destroy (&handle);
        return NULL;
    }
    self->timeout_ms = (long) timeout;
    self->connect_timeout_ms = (long) connect_timeout;
    self->part_min = (size_t) part_min;
    self->uploads = zhashx_new ();
    zhashx_set_destructor (self->uploads, (zhashx_destructor_fn *) s_upload_destroy);
    for (size_t index = 0; index < CURL_LOCK_DATA_LAST; index++)
        pthread_mutex_init (&self->share_locks [index], NULL);
    self->share = curl_share_init ();
    assert (self->share);
    curl_share_setopt (self->share, CURLSHOPT_LOCKFUNC, s_share_lock);
    curl_share_setopt (self->share, CURLSHOPT_UNLOCKFUNC, s_share_unlock);
    curl_share_setopt (self->share, CURLSHOPT_USERDATA, self);
    curl_share_setopt (self->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt (self->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt (self->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    lh_info (S_NAME, NULL, "s3 backend: %s, bucket %s, region %s, %s-style",
             self->base, self->bucket, self->region,
             lh_config_str (config, "storaged/s3_style"));
    return lh_store_new (&s_s3_backend, self);
}


//  --------------------------------------------------------------------------
//  Self test: error mapping with credentials scrubbed, config and
//  credentials file rules, and a transport failure (the parsers have
//  their own test in lh_s3_parse.c)

void
lh_store_s3_test (bool verbose)
{
    printf (" * lh_store_s3: ");
    const char *denied = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidAccessKeyId</Code>"
        "<Message>The AWS Access Key Id you provided does not exist in our records.</Message>"
        "<AWSAccessKeyId>NOPE</AWSAccessKeyId><RequestId>4442587FB7D0A2F9</RequestId></Error>";

    //  Error mapping, and credentials never in a reason
    s_s3_t fake;
    memset (&fake, 0, sizeof (fake));
    fake.access_key = (char *) "AKIDSECRETID";
    fake.secret_key = (char *) "verysecretkey";
    struct {
        long status;
        const char *body;
        uint32_t expect;
    } cases [] = {
        { 404, "<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>", 404 },
        { 403, denied, 403 },
        { 403, "<Error><Code>SignatureDoesNotMatch</Code><Message>key AKIDSECRETID "
               "verysecretkey</Message></Error>", 403 },
        { 403, "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>", 403 },
        { 412, "<Error><Code>PreconditionFailed</Code><Message>At least one</Message></Error>", 412 },
        { 400, "<Error><Code>EntityTooLarge</Code><Message>big</Message></Error>", 413 },
        { 503, "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>", 503 },
        { 500, "<Error><Code>InternalError</Code><Message>oops</Message></Error>", 502 },
        { 400, "<Error><Code>InvalidArgument</Code><Message>no</Message></Error>", 502 },
        { 502, "<html>bad gateway</html>", 502 },
        { 404, "", 404 },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++) {
        s_reply_t reply;
        memset (&reply, 0, sizeof (reply));
        reply.status = cases [index].status;
        reply.text = (char *) cases [index].body;
        reply.text_size = strlen (cases [index].body);
        lh_store_error_t error;
        assert (s_reply_error (&fake, "GET 'k'", &reply, &error) == -1);
        if (verbose)
            printf ("\n   %u %s: %s", error.status, error.kind, error.reason);
        assert (error.status == cases [index].expect);
        assert (!strstr (error.reason, "AKIDSECRETID") && !strstr (error.reason, "verysecretkey"));
        assert (!strstr (error.reason, "NOPE"));
    }

    //  Config: bucket required, endpoint forms, the credentials file mode
    lh_config_t *config = lh_config_load (NULL, NULL);
    assert (config);
    lh_store_error_t error;
    assert (lh_store_new_s3 (config, &error) == NULL);
    assert (strstr (error.reason, "storaged/s3_bucket"));
    assert (lh_config_set (config, "storaged/s3_bucket", "bucket") == 0);
    char path [] = "/tmp/lh_store_s3_test.XXXXXX";
    int fd = mkstemp (path);
    assert (fd >= 0);
    const char *lines = "# test\naws_access_key_id = AKIDFILE\nsecret_access_key=filesecret\n";
    assert (write (fd, lines, strlen (lines)) == (ssize_t) strlen (lines));
    close (fd);
    assert (lh_config_set (config, "storaged/s3_credentials_file", path) == 0);
    assert (chmod (path, 0644) == 0);
    assert (lh_store_new_s3 (config, &error) == NULL);
    if (verbose)
        printf ("\n   %s", error.reason);
    assert (strstr (error.reason, "chmod 600") && strstr (error.reason, "0644"));
    assert (chmod (path, 0600) == 0);
    assert (lh_config_set (config, "storaged/s3_endpoint", "ftp://x") == 0);
    assert (lh_store_new_s3 (config, &error) == NULL && strstr (error.reason, "s3_endpoint"));
    assert (lh_config_set (config, "storaged/s3_endpoint", "http://h:1/path") == 0);
    assert (lh_store_new_s3 (config, &error) == NULL && strstr (error.reason, "no path"));
    assert (lh_config_set (config, "storaged/s3_endpoint", "http://127.0.0.1:1") == 0);
    assert (lh_config_set (config, "storaged/s3_style", "virtual") == 0);
    assert (lh_store_new_s3 (config, &error) == NULL && strstr (error.reason, "DNS name"));
    //  Another style is refused by the config's declared range
    assert (lh_config_set (config, "storaged/s3_style", "sideways") == -1);
    assert (lh_config_set (config, "storaged/s3_style", "path") == 0);
    assert (lh_config_set (config, "storaged/s3_connect_timeout_ms", "2000") == 0);
    lh_store_t *store = lh_store_new_s3 (config, &error);
    assert (store);
    assert (streq (lh_store_backend_name (store), "s3"));
    //  Nobody listens on port 1: 502 with curl's message, no credentials
    lh_store_info_t info;
    assert (lh_store_put (store, "k", "v", 1, NULL, &info, &error) == -1);
    if (verbose)
        printf ("\n   %u %s: %s", error.status, error.kind, error.reason);
    assert (error.status == 502 && streq (error.kind, "s3_unreachable"));
    assert (!strstr (error.reason, "AKIDFILE") && !strstr (error.reason, "filesecret"));
    //  Uploads live in the process: order rules without touching S3
    char upload [LH_STORE_UPLOAD_MAX + 1];
    uint64_t total;
    assert (lh_store_upload_begin (store, "big", upload, &error) == 0);
    assert (lh_store_upload_part (store, upload, 2, "x", 1, &total, &error) == -1);
    assert (error.status == 400);
    assert (lh_store_upload_part (store, upload, 1, "ab", 2, &total, &error) == 0 && total == 2);
    assert (lh_store_upload_part (store, upload, 1, "abc", 3, &total, &error) == 0 && total == 3);
    char *key;
    uint32_t next_part;
    assert (lh_store_upload_stat (store, upload, &key, &total, &next_part, &error) == 0);
    assert (streq (key, "big") && total == 3 && next_part == 2);
    free (key);
    assert (lh_store_upload_abort (store, upload, &error) == 0);
    assert (lh_store_upload_abort (store, upload, &error) == -1 && error.status == 404);
    assert (lh_store_upload_begin (store, "idle", upload, &error) == 0);
    lh_store_sweep (store, -1000);
    assert (lh_store_upload_stat (store, upload, &key, &total, &next_part, &error) == -1);
    lh_store_destroy (&store);
    unlink (path);
    lh_config_destroy (&config);
    printf ("OK\n");
}
