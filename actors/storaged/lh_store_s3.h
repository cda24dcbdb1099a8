/*  =========================================================================
    lh_store_s3 - the S3 backend of lh_store

    Speaks the S3 REST API with libcurl, every request signed with AWS
    Signature V4 (lh_sigv4: libsodium SHA-256 and HMAC-SHA-256), to AWS or
    any S3-compatible store (MinIO, Ceph, s3rver):

        put     PutObject, with x-amz-meta-sha256 = the content's SHA-256
        get     GetObject with Range
        head    HeadObject
        list    ListObjectsV2, start-after then continuation tokens
        remove  HeadObject (404 if none) + DeleteObject
        upload  parts buffered to storaged/s3_part_min, then UploadPart;
                CompleteMultipartUpload; CopyObject onto itself to set
                x-amz-meta-sha256. An upload that stays under one S3 part
                commits as a single PutObject.

    The ETag it reports is x-amz-meta-sha256 (S3's own ETag is MD5-based),
    or S3's ETag for an object written by something else. Path-style
    (ENDPOINT/BUCKET/KEY) or virtual-host (BUCKET.HOST/KEY) addressing.

    Config: storaged/s3_endpoint, s3_region, s3_bucket, s3_style,
    s3_credentials_file, s3_timeout_ms, s3_connect_timeout_ms, s3_part_min,
    s3_list_heads. Credentials: the file (mode 0600 or stricter; lines
    access_key_id=, secret_access_key=, optional session_token=), else env
    LAKEHOUSE_S3_ACCESS_KEY_ID / LAKEHOUSE_S3_SECRET_ACCESS_KEY /
    LAKEHOUSE_S3_SESSION_TOKEN, else AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN. They never appear in logs
    or error replies.

    Multipart uploads live in this process's memory (an upload cannot be
    continued by another storaged process).
    =========================================================================
*/

#ifndef LH_STORE_S3_H_INCLUDED
#define LH_STORE_S3_H_INCLUDED

#include "lh_store.h"
#include "lh_config.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Create an S3 store from the storaged/s3_* config keys. Returns NULL
//  with *error set if the config or the credentials are unusable.
lh_store_t *
    lh_store_new_s3 (lh_config_t *config, lh_store_error_t *error);

//  Self test: XML scanning, listing and error bodies, error mapping,
//  config and credentials rules (no server needed)
void
    lh_store_s3_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
