/*  =========================================================================
    lh_validate - the four validators: fill, email, sms, playbook (SPEC 5.8)

    Each validator checks an artifact (a JSON object whose "_context"
    holds the caller's context) in a documented order and stops at the
    first failure. It answers

        200  a report {"kind": K, "valid": true, "warnings": [...]}
        422  a ValidationError in the original tagged shape, one of
             {"Schema": {"field": F, "reason": R}}
             {"Completeness": {"reason": R}}
             {"Consistency": {"reason": R}}
             {"Policy": {"reason": R}}
        400  {"error": {"kind": "bad_request", "reason": R, "field": "kind"}}
             for an unknown kind

        json_t *body;
        uint32_t status = lh_validate ("fill", artifact, roster, &body);

    docs/validatord.md lists every check and its exact reason.
    =========================================================================
*/

#ifndef LH_VALIDATE_H_INCLUDED
#define LH_VALIDATE_H_INCLUDED

#include <czmq.h>
#include <jansson.h>
#include "lh_roster.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Longest SMS body, characters (UTF-8 code points)
#define LH_SMS_MAX          160
//  Longest email subject and body, characters
#define LH_EMAIL_SUBJECT_MAX 200
#define LH_EMAIL_BODY_MAX   20000
//  A salary keyword this close to a $ amount is a disclosure, characters
#define LH_SALARY_WINDOW    40

//  Validate an artifact of a kind against the roster (may be NULL: an empty
//  roster). Returns 200, 422 or 400 and sets *body_p to a new JSON body as
//  described above. The artifact is not modified.
uint32_t
    lh_validate (const char *kind, json_t *artifact, lh_roster_t *roster,
                 json_t **body_p);

//  Is kind one of fill, email, sms, playbook?
bool
    lh_validate_kind_known (const char *kind);

//  Merge context (an object, may be NULL) into artifact._context (created
//  when absent); context keys win. Returns 0, or -1 if artifact is not an
//  object or context is neither NULL nor an object.
int
    lh_validate_merge_context (json_t *artifact, json_t *context);

//  The lower-case tag of a 422 body ("schema", "completeness",
//  "consistency", "policy"), or "unknown"
const char *
    lh_validate_error_kind (json_t *body);

//  Does SSN-shaped text (NNN-NN-NNNN, not flanked by digits) occur in text?
bool
    lh_validate_has_ssn (const char *text);

//  For a fill artifact: true iff fills is an array and every candidate_id
//  in it is in the roster (no fills: true, nobody is named)
bool
    lh_validate_grounded (json_t *artifact, lh_roster_t *roster);

//  Self test of this class
void
    lh_validate_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
