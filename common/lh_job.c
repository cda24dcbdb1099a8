/*  =========================================================================
    lh_job - calls made outside any request; see lh_job.h
    =========================================================================
*/

#include "lh_job.h"

#define S_DEFAULT_MS    5000            //  a call's deadline when none is given


//  --------------------------------------------------------------------------
//  Start a job: its trace (copied or minted) and its overall deadline

void
lh_job_start (lh_job_t *self, lh_client_t *client, const char *trace, uint32_t budget_ms)
{
    assert (self);
    memset (self, 0, sizeof (*self));
    self->client = client;
    if (trace && strlen (trace) == LH_TRACE_SIZE
    &&  strspn (trace, "0123456789abcdef") == LH_TRACE_SIZE)
        memcpy (self->trace, trace, LH_TRACE_SIZE + 1);
    else
        lh_trace_mint (self->trace);
    self->deadline = budget_ms? zclock_mono () + budget_ms: 0;
    self->span [0] = 0;
}


//  --------------------------------------------------------------------------
//  The parent span of the job's calls

void
lh_job_set_span (lh_job_t *self, const char *span)
{
    assert (self);
    if (span && strlen (span) == sizeof (self->span) - 1)
        memcpy (self->span, span, sizeof (self->span));
    else
        self->span [0] = 0;
}


//  --------------------------------------------------------------------------
//  Milliseconds left before the job's deadline

uint64_t
lh_job_time_left (lh_job_t *self)
{
    assert (self);
    if (!self->deadline)
        return UINT32_MAX;
    int64_t left = self->deadline - zclock_mono ();
    return left > 0? (uint64_t) left: 0;
}


//  --------------------------------------------------------------------------
//  The options of one call of the job

void
lh_job_opts (lh_job_t *self, uint32_t timeout_ms, lh_call_opts_t *opts)
{
    assert (self);
    assert (opts);
    memset (opts, 0, sizeof (*opts));
    uint64_t left = lh_job_time_left (self);
    uint64_t timeout = timeout_ms? timeout_ms: S_DEFAULT_MS;
    if (left < timeout)
        timeout = left? left: 1;
    opts->timeout_ms = (uint32_t) timeout;
    opts->trace = self->trace;
    opts->span = self->span [0]? self->span: NULL;
    opts->queue = true;
}


//  --------------------------------------------------------------------------
//  Call svc.op; *reply_p is always set. Returns 0, or -1 (synthesized).

int
lh_job_call (lh_job_t *self, const char *svc, const char *op,
             const void *body, size_t size, uint32_t timeout_ms, lh_reply_t **reply_p)
{
    assert (self);
    assert (reply_p);
    if (!self->client) {
        *reply_p = lh_reply_new_error (LH_ST_UNAVAILABLE, "broker_unreachable",
                                       "this job has no connection to the bus");
        return -1;
    }
    lh_call_opts_t opts;
    lh_job_opts (self, timeout_ms, &opts);
    return lh_client_call (self->client, svc, op, body, size, &opts, reply_p);
}

int
lh_job_call_pack (lh_job_t *self, const char *svc, const char *op,
                  lh_pack_t **pack_p, uint32_t timeout_ms, lh_reply_t **reply_p)
{
    assert (pack_p && *pack_p);
    size_t size;
    const void *data = lh_pack_data (*pack_p, &size);
    int rc = lh_job_call (self, svc, op, data, size, timeout_ms, reply_p);
    lh_pack_destroy (pack_p);
    return rc;
}


//  --------------------------------------------------------------------------
//  Self test: the trace and the deadline reach the callee

#include "lh_testbus.h"
#include "echo.h"

void
lh_job_test (bool verbose)
{
    printf (" * lh_job: ");
    lh_job_t job;
    lh_job_start (&job, NULL, "not a trace", 0);
    assert (strlen (job.trace) == LH_TRACE_SIZE);
    assert (lh_job_time_left (&job) == UINT32_MAX);
    lh_call_opts_t opts;
    lh_job_opts (&job, 0, &opts);
    assert (opts.timeout_ms == S_DEFAULT_MS && opts.queue && opts.trace == job.trace);
    lh_reply_t *reply;
    assert (lh_job_call (&job, "echo", "echo", NULL, 0, 0, &reply) == -1);
    assert (lh_reply_status (reply) == 503);
    lh_reply_destroy (&reply);

    lh_testbus_t *bus = lh_testbus_new ("job");
    lh_testbus_start (bus, &lh_echo_service, 1);
    lh_client_t *client = lh_testbus_client_new (bus, "job-test");
    const char *trace = "0123456789abcdef0123456789abcdef";
    lh_job_start (&job, client, trace, 300);
    assert (streq (job.trace, trace));
    lh_job_opts (&job, 10000, &opts);
    assert (opts.timeout_ms <= 300);
    //  The trace rides along
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 0);
    assert (lh_job_call_pack (&job, "echo", "echo", &pack, 0, &reply) == 0);
    assert (!pack);
    assert (lh_reply_status (reply) == 200);
    assert (streq (lh_reply_header (reply)->tr, trace));
    lh_reply_destroy (&reply);
    //  A call that would outlast the job ends with it: 504 within its budget
    int64_t started = zclock_mono ();
    lh_job_call (&job, "echo", "sleep", "\x81\xa2ms\xcd\x03\xe8", 7, 5000, &reply);
    assert (lh_reply_status (reply) == 504);
    assert (zclock_mono () - started < 1000);
    lh_reply_destroy (&reply);
    assert (lh_job_time_left (&job) == 0);
    lh_client_destroy (&client);
    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
