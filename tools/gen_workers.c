/*  =========================================================================
    gen_workers - a deterministic staffing roster CSV (the benchmark and
    test data of ingestd and queryd)

    gen_workers [--rows N] [--seed S] [--out FILE]

    Writes a header and N rows (default 1000) of 18 columns to FILE (default
    stdout): worker_id, name, role, city, state, phone, email, skills,
    certifications, years_experience, hourly_rate, reliability_score,
    availability, shift_preference, languages, last_placed, status,
    resume_text. The same N and S always give the same bytes (a splitmix64
    generator, no libc randomness). Text fields carry what real CSV carries:
    phone numbers as text, lists with commas (quoted), resume_text with
    commas, doubled quotes and embedded newlines, and some empty (NULL)
    certifications and last_placed. 500,000 rows are about 340 MiB. The
    generator is common/lh_workers.c (loadmix generates the same roster).
    =========================================================================
*/

#include "lh_workers.h"


int
main (int argc, char *argv [])
{
    uint64_t rows = 1000;
    uint64_t seed = 42;
    const char *path = NULL;
    for (int index = 1; index < argc; index++) {
        if (streq (argv [index], "--rows") && index + 1 < argc)
            rows = strtoull (argv [++index], NULL, 10);
        else
        if (streq (argv [index], "--seed") && index + 1 < argc)
            seed = strtoull (argv [++index], NULL, 10);
        else
        if (streq (argv [index], "--out") && index + 1 < argc)
            path = argv [++index];
        else {
            fprintf (stderr, "usage: gen_workers [--rows N] [--seed S] [--out FILE]\n");
            return 2;
        }
    }
    FILE *out = path? fopen (path, "w"): stdout;
    if (!out) {
        fprintf (stderr, "gen_workers: cannot write %s: %s\n", path, strerror (errno));
        return 1;
    }
    static char buffer [1 << 20];
    setvbuf (out, buffer, _IOFBF, sizeof (buffer));
    if (lh_workers_write (out, rows, seed) || (path && fclose (out))) {
        fprintf (stderr, "gen_workers: write failed: %s\n", strerror (errno));
        return 1;
    }
    return 0;
}
