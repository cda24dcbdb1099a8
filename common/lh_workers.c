/*  =========================================================================
    lh_workers - the generated staffing roster

    One splitmix64 stream per call of lh_workers_write, drawn in a fixed
    order per row, so the bytes depend on the seed and the row number
    only. tools/gen_workers.c is its command line.
    =========================================================================
*/

#include "lh_workers.h"

//  --------------------------------------------------------------------------
//  splitmix64: the next pseudo-random 64-bit value of a stream

static uint64_t
s_next (uint64_t *seed)
{
    uint64_t z = (*seed += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

//  --------------------------------------------------------------------------
//  A value in [0, bound)

static uint32_t
s_below (uint64_t *seed, uint32_t bound)
{
    return (uint32_t) (s_next (seed) % bound);
}

#define S_COUNT(array) (sizeof (array) / sizeof (array [0]))
#define S_PICK(seed, array) (array [s_below (seed, S_COUNT (array))])

static const char *s_first [] = {
    "James", "Maria", "Robert", "Linda", "Michael", "Patricia", "David", "Jennifer",
    "William", "Elizabeth", "Jose", "Aisha", "Wei", "Fatima", "Carlos", "Olga",
    "Kwame", "Priya", "Dmitri", "Sofia", "Hiroshi", "Amara", "Liam", "Chloe",
    "Mateo", "Zoe", "Andre", "Nadia", "Tomas", "Ingrid"
};
static const char *s_last [] = {
    "Smith", "Johnson", "Garcia", "Brown", "Miller", "Davis", "Rodriguez", "Martinez",
    "Nguyen", "Kim", "Patel", "O'Brien", "Okafor", "Kowalski", "Haddad", "Rossi",
    "Schmidt", "Yamamoto", "Ivanova", "Dubois", "Silva", "Novak", "Jensen", "Khan"
};
static const char *s_roles [] = {
    "Forklift Operator", "Warehouse Associate", "Welder", "CNC Machinist",
    "Electrician", "Line Cook", "Registered Nurse", "CNA", "Truck Driver",
    "Picker/Packer", "Assembler", "Maintenance Tech", "Security Guard",
    "Janitor", "Customer Service Rep", "Quality Inspector"
};
//  The places: city, its state and its area code, index by index
static const char *s_cities [] = {
    "Columbus", "Cleveland", "Cincinnati", "Dayton", "Toledo", "Pittsburgh",
    "Philadelphia", "Detroit", "Chicago", "Indianapolis", "Louisville", "Houston",
    "Dallas", "Atlanta", "Phoenix", "Newark", "Buffalo", "Nashville", "Charlotte",
    "Milwaukee"
};
static const char *s_states [] = {
    "OH", "OH", "OH", "OH", "OH", "PA", "PA", "MI", "IL", "IN", "KY", "TX", "TX", "GA",
    "AZ", "NJ", "NY", "TN", "NC", "WI"
};
static const char *s_areas [] = {
    "614", "216", "513", "937", "419", "412", "215", "313", "312", "317", "502", "713",
    "214", "404", "602", "973", "716", "615", "704", "414"
};
static const char *s_skills [] = {
    "forklift", "reach truck", "pallet jack", "MIG welding", "TIG welding", "blueprints",
    "CNC", "lathe", "wiring", "PLC", "food safety", "IV therapy", "CDL-A", "inventory",
    "RF scanner", "OSHA-10", "first aid", "customer service", "Excel", "quality control"
};
static const char *s_certs [] = {
    "OSHA 10", "OSHA 30", "Forklift Certified", "AWS D1.1", "ServSafe", "BLS", "ACLS",
    "CDL Class A", "HAZMAT", "NCCER", "CPR"
};
static const char *s_shifts [] = { "day", "night", "swing", "weekend", "any" };
static const char *s_languages [] = {
    "English", "Spanish", "Portuguese", "Vietnamese", "Mandarin", "Arabic", "Polish",
    "Somali", "French", "Russian"
};
static const char *s_status [] = { "active", "active", "active", "placed", "inactive", "onboarding" };
static const char *s_phrases [] = {
    "Reliable, punctual and safety-minded",
    "Worked %d years on \"high-volume\" lines",
    "Supervisor said: \"always first in, last out\"",
    "Trained new hires on equipment, procedures, and safety",
    "Comfortable with 12-hour shifts, overtime, weekends",
    "Prefers roles close to %s",
    "Led a team of %d, cut scrap by 15%%",
    "Certified; references on request",
    "Open to temp-to-hire, contract, or \"permanent\" roles"
};


//  --------------------------------------------------------------------------
//  Write text as one CSV field, quoted when it needs to be

static void
s_field (FILE *out, const char *text)
{
    if (strpbrk (text, ",\"\r\n")) {
        putc ('"', out);
        for (const char *at = text; *at; at++) {
            if (*at == '"')
                putc ('"', out);
            putc (*at, out);
        }
        putc ('"', out);
    }
    else
        fputs (text, out);
}

//  --------------------------------------------------------------------------
//  A list of count distinct picks from a table, joined by separator

static void
s_list (uint64_t *seed, char *buffer, size_t size, const char **table, size_t table_size,
        size_t count, const char *separator)
{
    buffer [0] = 0;
    uint64_t used = 0;
    size_t length = 0;
    for (size_t index = 0; index < count; index++) {
        size_t pick = s_below (seed, (uint32_t) table_size);
        if (used & (1ULL << pick))
            continue;
        used |= 1ULL << pick;
        length += (size_t) snprintf (buffer + length, size - length, "%s%s",
                                     length? separator: "", table [pick]);
        if (length >= size)
            break;
    }
}

//  --------------------------------------------------------------------------
//  One row (the number row, from 1) from the stream at seed

static void
s_row (FILE *out, uint64_t *seed, uint64_t row)
{
    char text [2048], list [512];
    const char *first = S_PICK (seed, s_first), *last = S_PICK (seed, s_last);
    const char *role = S_PICK (seed, s_roles);
    size_t place = s_below (seed, S_COUNT (s_cities));
    int years = (int) s_below (seed, 31);
    fprintf (out, "%" PRIu64 ",", row + LH_WORKERS_FIRST_ID - 1);
    snprintf (text, sizeof (text), "%s %s", first, last);
    s_field (out, text);
    putc (',', out);
    s_field (out, role);
    fprintf (out, ",%s,%s,%s-555-%04u,", s_cities [place], s_states [place],
             s_areas [place], s_below (seed, 10000));
    char user [64];
    snprintf (user, sizeof (user), "%c%s%" PRIu64, first [0] | 0x20, last, row);
    for (char *at = user; *at; at++)
        if (*at == '\'')
            *at = '_';
    fprintf (out, "%s@example.com,", user);
    s_list (seed, list, sizeof (list), s_skills, S_COUNT (s_skills), 1 + s_below (seed, 4), "; ");
    s_field (out, list);
    putc (',', out);
    if (s_below (seed, 5))
        s_list (seed, list, sizeof (list), s_certs, S_COUNT (s_certs), 1 + s_below (seed, 3), ", ");
    else
        list [0] = 0;
    s_field (out, list);
    double rate = 15.0 + s_below (seed, 3500) / 100.0 + years * 0.25;
    double reliability = s_below (seed, 1001) / 1000.0;
    //  The draws below come in the order gen_workers always made them
    //  (its compiler evaluated these arguments right to left): the bytes
    //  of every roster generated so far depend on it
    const char *shift = S_PICK (seed, s_shifts);
    const char *available = s_below (seed, 3)? "true": "false";
    fprintf (out, ",%d,%.2f,%.3f,%s,%s,", years, rate, reliability, available, shift);
    s_list (seed, list, sizeof (list), s_languages, S_COUNT (s_languages),
            1 + s_below (seed, 2), ", ");
    s_field (out, list);
    if (s_below (seed, 10)) {
        unsigned second = s_below (seed, 60), minute = s_below (seed, 60);
        unsigned hour = s_below (seed, 24), day = 1 + s_below (seed, 28);
        unsigned month = 1 + s_below (seed, 12), year = 2019 + s_below (seed, 7);
        fprintf (out, ",%04u-%02u-%02uT%02u:%02u:%02uZ,", year, month, day, hour, minute, second);
    }
    else
        fputs (",,", out);
    fputs (S_PICK (seed, s_status), out);
    putc (',', out);
    //  resume_text: 7-12 sentences, commas, quotes, and line breaks
    size_t length = 0;
    int sentences = 7 + (int) s_below (seed, 6);
    for (int sentence = 0; sentence < sentences && length < sizeof (text) - 256; sentence++) {
        char phrase [256];
        const char *format = S_PICK (seed, s_phrases);
        if (strstr (format, "%d"))
            snprintf (phrase, sizeof (phrase), format, 2 + (int) s_below (seed, 20));
        else
        if (strstr (format, "%s"))
            snprintf (phrase, sizeof (phrase), format, s_cities [place]);
        else
            snprintf (phrase, sizeof (phrase), "%s", format);
        const char *gap = sentence == 0? "": s_below (seed, 3)? " ": "\n";
        length += (size_t) snprintf (text + length, sizeof (text) - length, "%s%s.", gap, phrase);
    }
    length += (size_t) snprintf (text + length, sizeof (text) - length,
                                 "\nSkills summary: %s, %d yrs as %s in %s, %s.",
                                 role, years, role, s_cities [place], s_states [place]);
    s_field (out, text);
    putc ('\n', out);
}


//  --------------------------------------------------------------------------
//  Write the header and rows rows generated from seed

int
lh_workers_write (FILE *out, uint64_t rows, uint64_t seed)
{
    assert (out);
    fputs ("worker_id,name,role,city,state,phone,email,skills,certifications,"
           "years_experience,hourly_rate,reliability_score,availability,shift_preference,"
           "languages,last_placed,status,resume_text\n", out);
    for (uint64_t row = 1; row <= rows && !ferror (out); row++)
        s_row (out, &seed, row);
    return ferror (out) || fflush (out)? -1: 0;
}


//  --------------------------------------------------------------------------
//  One of the generator's vocabularies, by name

const char *const *
lh_workers_table (const char *name, size_t *count)
{
    assert (name && count);
    static const struct {
        const char *name;
        const char *const *table;
        size_t count;
    } tables [] = {
        { "roles", s_roles, S_COUNT (s_roles) },
        { "cities", s_cities, S_COUNT (s_cities) },
        { "states", s_states, S_COUNT (s_states) },
        { "area_codes", s_areas, S_COUNT (s_areas) },
        { "skills", s_skills, S_COUNT (s_skills) },
        { "certifications", s_certs, S_COUNT (s_certs) },
        { "shifts", s_shifts, S_COUNT (s_shifts) },
        { "languages", s_languages, S_COUNT (s_languages) },
        { "statuses", s_status, S_COUNT (s_status) }
    };
    for (size_t index = 0; index < S_COUNT (tables); index++)
        if (streq (tables [index].name, name)) {
            *count = tables [index].count;
            return tables [index].table;
        }
    *count = 0;
    return NULL;
}


//  --------------------------------------------------------------------------
//  Self test: the bytes are those gen_workers always wrote (digests of two
//  known rosters), a longer roster starts with a shorter one, the tables

#include <sodium.h>

static void
s_test_digest (uint64_t rows, uint64_t seed, char *hex, size_t *size_p)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    assert (out);
    assert (lh_workers_write (out, rows, seed) == 0);
    fclose (out);
    unsigned char digest [crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (digest, (const unsigned char *) text, size);
    sodium_bin2hex (hex, 2 * crypto_hash_sha256_BYTES + 1, digest, sizeof (digest));
    if (size_p)
        *size_p = size;
    free (text);
}

void
lh_workers_test (bool verbose)
{
    printf (" * lh_workers: ");
    assert (sodium_init () >= 0);
    char hex [2 * crypto_hash_sha256_BYTES + 1];
    size_t size;
    //  The digests of `gen_workers --rows 1000 --seed 42` and `--rows 20000
    //  --seed 11` before the generator became this class
    s_test_digest (1000, 42, hex, &size);
    if (verbose)
        printf ("\n    1000 rows, seed 42: %zu bytes, sha256 %s", size, hex);
    assert (streq (hex, "93359cb021bbc8fa8d9b03de2dd53cdba96c2e598dcf2c263d8ebf8d6f75a7c2"));
    s_test_digest (20000, 11, hex, NULL);
    assert (streq (hex, "27a847846855c7cf04796a558c7ac61cbf5348b414f2c6f536cc3a80321639a5"));
    //  The first rows of a longer roster are the shorter one
    char *shorter = NULL, *longer = NULL;
    size_t shorter_size = 0, longer_size = 0;
    FILE *out = open_memstream (&shorter, &shorter_size);
    assert (lh_workers_write (out, 10, 7) == 0);
    fclose (out);
    out = open_memstream (&longer, &longer_size);
    assert (lh_workers_write (out, 11, 7) == 0);
    fclose (out);
    assert (longer_size > shorter_size && memcmp (shorter, longer, shorter_size) == 0);
    assert (strncmp (longer + shorter_size, "100011,", 7) == 0);
    free (shorter);
    free (longer);
    size_t count;
    const char *const *cities = lh_workers_table ("cities", &count);
    assert (cities && count == 20 && streq (cities [4], "Toledo"));
    const char *const *states = lh_workers_table ("states", &count);
    assert (states && count == 20 && streq (states [4], "OH"));
    assert (lh_workers_table ("roles", &count) && count == 16);
    assert (lh_workers_table ("nope", &count) == NULL && count == 0);
    printf ("OK\n");
}
