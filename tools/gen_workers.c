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
    certifications and last_placed. 500,000 rows are about 340 MiB.
    =========================================================================
*/

#include <czmq.h>

static uint64_t s_seed;

//  --------------------------------------------------------------------------
//  splitmix64: the next pseudo-random 64-bit value

static uint64_t
s_next (void)
{
    uint64_t z = (s_seed += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

//  --------------------------------------------------------------------------
//  A value in [0, bound)

static uint32_t
s_below (uint32_t bound)
{
    return (uint32_t) (s_next () % bound);
}

#define S_PICK(array) (array [s_below (sizeof (array) / sizeof (array [0]))])

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
static const struct {
    const char *city;
    const char *state;
    const char *area;
} s_places [] = {
    { "Columbus", "OH", "614" }, { "Cleveland", "OH", "216" }, { "Cincinnati", "OH", "513" },
    { "Dayton", "OH", "937" }, { "Toledo", "OH", "419" }, { "Pittsburgh", "PA", "412" },
    { "Philadelphia", "PA", "215" }, { "Detroit", "MI", "313" }, { "Chicago", "IL", "312" },
    { "Indianapolis", "IN", "317" }, { "Louisville", "KY", "502" }, { "Houston", "TX", "713" },
    { "Dallas", "TX", "214" }, { "Atlanta", "GA", "404" }, { "Phoenix", "AZ", "602" },
    { "Newark", "NJ", "973" }, { "Buffalo", "NY", "716" }, { "Nashville", "TN", "615" },
    { "Charlotte", "NC", "704" }, { "Milwaukee", "WI", "414" }
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
s_list (char *buffer, size_t size, const char **table, size_t table_size,
        size_t count, const char *separator)
{
    buffer [0] = 0;
    uint64_t used = 0;
    size_t length = 0;
    for (size_t index = 0; index < count; index++) {
        size_t pick = s_below ((uint32_t) table_size);
        if (used & (1ULL << pick))
            continue;
        used |= 1ULL << pick;
        length += (size_t) snprintf (buffer + length, size - length, "%s%s",
                                     length? separator: "", table [pick]);
        if (length >= size)
            break;
    }
}


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
    s_seed = seed;
    FILE *out = path? fopen (path, "w"): stdout;
    if (!out) {
        fprintf (stderr, "gen_workers: cannot write %s: %s\n", path, strerror (errno));
        return 1;
    }
    static char buffer [1 << 20];
    setvbuf (out, buffer, _IOFBF, sizeof (buffer));
    fputs ("worker_id,name,role,city,state,phone,email,skills,certifications,"
           "years_experience,hourly_rate,reliability_score,availability,shift_preference,"
           "languages,last_placed,status,resume_text\n", out);
    char text [2048], list [512];
    for (uint64_t row = 1; row <= rows; row++) {
        const char *first = S_PICK (s_first), *last = S_PICK (s_last);
        const char *role = S_PICK (s_roles);
        size_t place = s_below (sizeof (s_places) / sizeof (s_places [0]));
        int years = (int) s_below (31);
        fprintf (out, "%" PRIu64 ",", row + 100000);
        snprintf (text, sizeof (text), "%s %s", first, last);
        s_field (out, text);
        putc (',', out);
        s_field (out, role);
        fprintf (out, ",%s,%s,%s-555-%04u,", s_places [place].city, s_places [place].state,
                 s_places [place].area, s_below (10000));
        char user [64];
        snprintf (user, sizeof (user), "%c%s%" PRIu64, first [0] | 0x20, last, row);
        for (char *at = user; *at; at++)
            if (*at == '\'')
                *at = '_';
        fprintf (out, "%s@example.com,", user);
        s_list (list, sizeof (list), s_skills, sizeof (s_skills) / sizeof (s_skills [0]),
                1 + s_below (4), "; ");
        s_field (out, list);
        putc (',', out);
        if (s_below (5))
            s_list (list, sizeof (list), s_certs, sizeof (s_certs) / sizeof (s_certs [0]),
                    1 + s_below (3), ", ");
        else
            list [0] = 0;
        s_field (out, list);
        double rate = 15.0 + s_below (3500) / 100.0 + years * 0.25;
        double reliability = s_below (1001) / 1000.0;
        fprintf (out, ",%d,%.2f,%.3f,%s,%s,", years, rate, reliability,
                 s_below (3)? "true": "false", S_PICK (s_shifts));
        s_list (list, sizeof (list), s_languages, sizeof (s_languages) / sizeof (s_languages [0]),
                1 + s_below (2), ", ");
        s_field (out, list);
        if (s_below (10))
            fprintf (out, ",%04u-%02u-%02uT%02u:%02u:%02uZ,", 2019 + s_below (7), 1 + s_below (12),
                     1 + s_below (28), s_below (24), s_below (60), s_below (60));
        else
            fputs (",,", out);
        fputs (S_PICK (s_status), out);
        putc (',', out);
        //  resume_text: 7-12 sentences, commas, quotes, and line breaks
        size_t length = 0;
        int sentences = 7 + (int) s_below (6);
        for (int sentence = 0; sentence < sentences && length < sizeof (text) - 256; sentence++) {
            char phrase [256];
            const char *format = S_PICK (s_phrases);
            if (strstr (format, "%d"))
                snprintf (phrase, sizeof (phrase), format, 2 + (int) s_below (20));
            else
            if (strstr (format, "%s"))
                snprintf (phrase, sizeof (phrase), format, s_places [place].city);
            else
                snprintf (phrase, sizeof (phrase), "%s", format);
            length += (size_t) snprintf (text + length, sizeof (text) - length, "%s%s.",
                                         sentence == 0? "": s_below (3)? " ": "\n", phrase);
        }
        length += (size_t) snprintf (text + length, sizeof (text) - length,
                                     "\nSkills summary: %s, %d yrs as %s in %s, %s.",
                                     role, years, role, s_places [place].city,
                                     s_places [place].state);
        s_field (out, text);
        putc ('\n', out);
    }
    if (fflush (out) || (path && fclose (out))) {
        fprintf (stderr, "gen_workers: write failed: %s\n", strerror (errno));
        return 1;
    }
    return 0;
}
