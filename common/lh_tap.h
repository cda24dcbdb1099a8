/*  =========================================================================
    lh_tap - a reader of the broker's tap: shows each message as a JSON
    line or a table row, filters, pairs replies with their requests (for
    svc.op and latency), reports bseq gaps, and records (.lhrec)

    One reader, two hosts: bustap feeds it from its own SUB socket (tcp,
    CURVE with a tap certificate); `lakehouse up --tap/--record` runs it as
    an actor on the broker's in-process tap (inproc, no ZAP: the same
    process is the same trust). A tap message is [topic] [header] [body?]
    (docs/protocol.md "The tap"); PART/REP copies carry "rseq", the bseq
    of the request they answer.

    Reading from a socket of your own:
        lh_tap_t *tap = lh_tap_new ("bustap");
        int argn = 1;
        lh_tap_option (tap, argc, argv, &argn, &error);   //  --service S, ...
        lh_tap_record (tap, "run.lhrec", "lakehouse", endpoint, &error);
        while ((msg = zmsg_recv (sub)))
            if (lh_tap_handle (tap, msg) == -1) ...     //  recording failed
        lh_tap_destroy (&tap);

    As an actor (the tap is borrowed until the actor ends):
        zactor_t *reader = zactor_new (lh_tap_actor, tap);
        zsock_send (reader, "ss", "CONNECT", "inproc://lh-bus-tap");
        char *status, *detail;
        zsock_recv (reader, "ss", &status, &detail);    //  "0" and the
                                                        //  endpoint, or "-1"
                                                        //  and why
        ...
        zactor_destroy (&reader);   //  handles what has arrived, then ends

    Actor pipe commands:
    CONNECT endpoint    subscribe to every topic of the tap at endpoint
                        (plain: inproc, or tcp on loopback); answers "ss".
    SYNC                handle the messages already received; answers
                        "ss": "0" and how many were received in all.
    $TERM               handle the messages already received, then end.
    =========================================================================
*/

#ifndef LH_TAP_H_INCLUDED
#define LH_TAP_H_INCLUDED

#include "lh_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_TAP_RSEQ         "rseq"      //  header key of tap reply copies
#define LH_TAP_HWM          1000        //  default receive high-water mark

typedef struct _lh_tap_t lh_tap_t;

//  Create a reader printing to stdout; tool names it in messages and in
//  the recordings it writes ("bustap", "lakehouse")
lh_tap_t *
    lh_tap_new (const char *tool);

//  Destroy a reader, closing its recording; nulls the caller's pointer
void
    lh_tap_destroy (lh_tap_t **self_p);

//  Take one reader option from argv [*argn]: --service S, --op O,
//  --trace T, --status LIST (200,404,5xx), --bodies, --pretty, --all
//  (the gateway's own health probes too: hidden by default) (a value
//  as the next argument or after '='). Returns 1 and advances *argn past
//  the option's value, 0 if argv [*argn] is not a reader option, -1 and a
//  sentence in *error_p (caller frees) if its value is bad or missing.
int
    lh_tap_option (lh_tap_t *self, int argc, char *argv [], int *argn,
                   char **error_p);

//  Print no message lines (gap warnings still)
void
    lh_tap_set_quiet (lh_tap_t *self, bool quiet);

//  Print to file instead of stdout (borrowed)
void
    lh_tap_set_output (lh_tap_t *self, FILE *file);

//  One message shown (or one gap warning), as a line handler sees it
typedef struct {
    const char *svc;                    //  service; "evt" for an event
    const char *op;                     //  op; the topic for an event
    const char *tr;                     //  trace id, or ""
    uint32_t st;                        //  status of a reply, 0 = none
    uint64_t bseq;                      //  broker sequence number, 0 = none
    bool warning;                       //  a gap warning, not a message
    const char *json;                   //  bustap's JSON line, no newline
    size_t size;                        //  its length
} lh_tap_line_t;

//  Called for each line instead of printing it; line is valid for the
//  call only
typedef void (lh_tap_line_fn) (void *arg, const lh_tap_line_t *line);

//  Hand every line (messages that pass the filters, gap warnings) to fn
//  instead of the output, as JSON whatever --pretty says; NULL prints again
void
    lh_tap_set_handler (lh_tap_t *self, lh_tap_line_fn *fn, void *arg);

//  Record every shown message to path (.lhrec), with the broker's name,
//  the tap endpoint and the filters in its header record. Returns 0, or
//  -1 and *error_p (caller frees).
int
    lh_tap_record (lh_tap_t *self, const char *path, const char *broker,
                   const char *endpoint, char **error_p);

//  Handle one tap message [topic] [header] [body?]: check bseq, pair,
//  filter, record, print. A message of another shape is skipped and
//  counted. Returns 0, or -1 when the recording cannot be written (said
//  on stderr; every later call returns -1 too).
int
    lh_tap_handle (lh_tap_t *self, zmsg_t *msg);

//  Messages shown (passed the filters)
uint64_t
    lh_tap_shown (lh_tap_t *self);

//  Did the recording fail
bool
    lh_tap_failed (lh_tap_t *self);

//  "N received, N shown, N gap(s), N missed" (caller frees)
char *
    lh_tap_summary (lh_tap_t *self);

//  The "rseq" of an encoded header (a tap copy of a PART/REP): the bseq
//  of the request it answers, or 0 when absent or unreadable. Bounded:
//  header may be any bytes.
uint64_t
    lh_tap_rseq (const void *header, size_t size);

//  The reader as an actor; args is the lh_tap_t (borrowed)
void
    lh_tap_actor (zsock_t *pipe, void *args);

//  Self test of this class
void
    lh_tap_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
