/*  =========================================================================
    lh_job - calls made outside any request, under a request's discipline

    A handler's calls carry its request's trace id and end by its deadline
    (lh_request_call). Work that runs on a thread of its own - a vectord
    snapshot, a roster reload, a catalog refresh - serves no request, but
    its calls deserve the same: one trace id for every call of one piece
    of work, so bustap and the logs show them together, and one deadline
    for the whole that caps each call. An lh_job_t is that context over a
    plain client:

        lh_job_t job;
        lh_job_start (&job, client, NULL, 60000);  //  fresh trace, 60 s in all
        lh_reply_t *reply;
        lh_job_call (&job, "catalogd", "get", body, size, 5000, &reply);
        ...                                         //  any status, or 503/504
        lh_reply_destroy (&reply);

    The job is a plain value (no allocation); the client is borrowed and
    must outlive it. Calls queue ("q") until their deadline when the service
    has no live worker, as calls from handlers do.
    =========================================================================
*/

#ifndef LH_JOB_H_INCLUDED
#define LH_JOB_H_INCLUDED

#include "lh_client.h"
#include "lh_body.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    lh_client_t *client;                //  the client calls go through (borrowed)
    char trace [LH_TRACE_SIZE + 1];     //  trace id of every call
    char span [17];                     //  parent span of every call ("ps"), "" = none
    int64_t deadline;                   //  zclock_mono () ms to end by; 0 = none
} lh_job_t;

//  Start a job on client: trace is copied (NULL or not 32 hex: a fresh
//  one is minted), and budget_ms (0 = no overall deadline) bounds the
//  whole job
void
    lh_job_start (lh_job_t *self, lh_client_t *client, const char *trace,
                  uint32_t budget_ms);

//  Make the job's calls children of span (16 hex, as lh_call_opts_t's
//  span; NULL, "" or another shape: none)
void
    lh_job_set_span (lh_job_t *self, const char *span);

//  Milliseconds left before the job's deadline (0 if passed; UINT32_MAX
//  when it has none)
uint64_t
    lh_job_time_left (lh_job_t *self);

//  The options of one call: the job's trace, timeout_ms (0 = 5000) capped
//  by the time left, queued. For code that keeps several calls in flight
//  with lh_client_send and lh_client_wait.
void
    lh_job_opts (lh_job_t *self, uint32_t timeout_ms, lh_call_opts_t *opts);

//  Call svc.op with a msgpack body (may be NULL/0). Returns 0 with the
//  reply (any status), or -1 with a synthesized 503/504 one; *reply_p is
//  always set, for the caller to destroy.
int
    lh_job_call (lh_job_t *self, const char *svc, const char *op,
                 const void *body, size_t size, uint32_t timeout_ms,
                 lh_reply_t **reply_p);

//  The same with the body in a pack (destroyed)
int
    lh_job_call_pack (lh_job_t *self, const char *svc, const char *op,
                      lh_pack_t **pack_p, uint32_t timeout_ms,
                      lh_reply_t **reply_p);

//  Self test of this class
void
    lh_job_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
