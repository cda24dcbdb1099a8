/*  =========================================================================
    lh_lhrec - the .lhrec recording format: a header record, then the tap
    records, each one msgpack object (docs/protocol.md "Recording format")

        header record   map {"format": "lhrec", "version": 1, "broker": NAME,
                             "start_us": T, "tap": ENDPOINT, "tool": "bustap",
                             "filters": {"service", "op", "trace", "status"}}
        tap record      array [rx_us, topic (str), header (bin), body (bin|nil)]

    The header and body are the tap's frames verbatim. A PART/REP header
    from a current broker also holds "rseq", the bseq of its request
    (lh_lhrec_record_t.rseq); older recordings have none.

    Records are written with one write() each, so a crash loses at most
    the record being written; a reader reports a truncated last record
    and stops there.

    Writing:
        lh_lhrec_info_t info = { .broker = "lakehouse" };
        lh_lhrec_t *rec = lh_lhrec_create ("x.lhrec", &info, &error);
        lh_lhrec_write (rec, rx_us, "echo.echo", header, hsize, body, bsize);
        lh_lhrec_destroy (&rec);

    Reading (every byte is untrusted: bounded, never asserts):
        lh_lhrec_t *rec = lh_lhrec_open ("x.lhrec", &error);
        lh_lhrec_record_t record;
        while ((rc = lh_lhrec_next (rec, &record)) == 1) ...
        //  rc 0: clean end; -1: truncated last record; -2: malformed
    =========================================================================
*/

#ifndef LH_LHREC_H_INCLUDED
#define LH_LHREC_H_INCLUDED

#include "lh_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_LHREC_FORMAT     "lhrec"
#define LH_LHREC_VERSION    1
#define LH_LHREC_TOPIC_MAX  (LH_TOPIC_MAX + LH_NAME_MAX + 8)
#define LH_LHREC_TEXT_MAX   255         //  tap endpoint, filter strings

//  The header record
typedef struct {
    uint32_t version;                   //  format version (1)
    uint64_t start_us;                  //  recording start, us since the epoch
    char broker [LH_NAME_MAX + 1];      //  broker name
    char tap [LH_LHREC_TEXT_MAX + 1];   //  tap endpoint recorded
    char tool [LH_NAME_MAX + 1];        //  who wrote it ("bustap")
    char service [LH_NAME_MAX + 1];     //  filter --service, or ""
    char op [LH_NAME_MAX + 1];          //  filter --op, or ""
    char trace [LH_TRACE_SIZE + 1];     //  filter --trace, or ""
    char status [LH_LHREC_TEXT_MAX + 1];//  filter --status, or ""
} lh_lhrec_info_t;

//  One tap record as read; pointers borrow the reader's buffer until the
//  next lh_lhrec_next or lh_lhrec_destroy
typedef struct {
    uint64_t rx_us;                     //  when the recorder received it
    char topic [LH_LHREC_TOPIC_MAX + 1];//  tap topic (svc.op, evt.TOPIC)
    const uint8_t *header_data;         //  header frame, verbatim
    size_t header_size;                 //  its size
    lh_header_t header;                 //  header, decoded
    uint64_t rseq;                      //  PART/REP: its request's bseq
                                        //  (tap key "rseq"), 0 if absent
    const uint8_t *body;                //  body frame, or NULL
    size_t body_size;                   //  its size
} lh_lhrec_record_t;

typedef struct _lh_lhrec_t lh_lhrec_t;

//  Create (truncate) a recording and write its header record; info->version
//  and info->tool are filled in if zero/empty, start_us too. Returns NULL
//  and *error_p (caller frees) on failure.
lh_lhrec_t *
    lh_lhrec_create (const char *path, const lh_lhrec_info_t *info, char **error_p);

//  Open a recording for reading and read its header record. Returns NULL
//  and *error_p (caller frees) if the file cannot be read or does not start
//  with a valid header record. max_body bounds one record's body (0 means
//  16 MiB).
lh_lhrec_t *
    lh_lhrec_open (const char *path, size_t max_body, char **error_p);

//  Same, over a buffer in memory (copied): for the fuzzer and tests
lh_lhrec_t *
    lh_lhrec_open_buffer (const void *data, size_t size, size_t max_body,
                          char **error_p);

//  Close a recording; nulls the caller's pointer
void
    lh_lhrec_destroy (lh_lhrec_t **self_p);

//  Header record of an opened or created recording
const lh_lhrec_info_t *
    lh_lhrec_info (lh_lhrec_t *self);

//  Append one tap record (one write). Returns 0, or -1 with errno set.
int
    lh_lhrec_write (lh_lhrec_t *self, uint64_t rx_us, const char *topic,
                    const void *header, size_t header_size,
                    const void *body, size_t body_size);

//  Read the next tap record. Returns 1 and fills record, 0 at a clean end,
//  -1 if the file ends inside a record (a crash while recording), -2 if a
//  record is malformed; after -1/-2, lh_lhrec_error says why.
int
    lh_lhrec_next (lh_lhrec_t *self, lh_lhrec_record_t *record);

//  Why the last lh_lhrec_next failed, or NULL (borrowed)
const char *
    lh_lhrec_error (lh_lhrec_t *self);

//  Self test of this class
void
    lh_lhrec_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
