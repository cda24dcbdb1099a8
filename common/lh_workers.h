/*  =========================================================================
    lh_workers - the generated staffing roster (gen_workers, loadmix, the
    benchmarks and tests of ingestd, queryd, matrixd and validatord)

    A deterministic CSV roster: a header and N rows of 18 columns —
    worker_id, name, role, city, state, phone, email, skills,
    certifications, years_experience, hourly_rate, reliability_score,
    availability, shift_preference, languages, last_placed, status,
    resume_text. The same N and seed always give the same bytes (a
    splitmix64 generator, no libc randomness), and the first M rows of N
    are the M rows of M. Worker ids run from 100001. Text fields carry
    what real CSV carries: phone numbers as text, lists with commas
    (quoted), resume_text with commas, doubled quotes and embedded
    newlines, and some empty (NULL) certifications and last_placed.
    500,000 rows are about 340 MiB.

        lh_workers_write (stdout, 1000, 42);
        size_t count;
        const char *const *roles = lh_workers_table ("roles", &count);
    =========================================================================
*/

#ifndef LH_WORKERS_H_INCLUDED
#define LH_WORKERS_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LH_WORKERS_FIRST_ID 100001      //  worker_id of the first row

//  Write the header and rows rows generated from seed to out. Returns 0,
//  or -1 if a write failed (errno says why).
int
    lh_workers_write (FILE *out, uint64_t rows, uint64_t seed);

//  One of the generator's vocabularies, by name: "roles", "cities",
//  "states" (the state of each city, same order), "area_codes", "skills",
//  "certifications", "shifts", "languages", "statuses" (one entry per
//  weight). Sets *count; returns NULL (and 0) for an unknown name.
const char *const *
    lh_workers_table (const char *name, size_t *count);

//  Self test of this class
void
    lh_workers_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
