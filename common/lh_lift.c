/*  =========================================================================
    lh_lift - the playbook-lift test; see lh_lift.h

    A worker's text names its role, city, shift and certification the way
    a roster does ("Forklift Operator in Dayton, OH. Night shift.
    Certified: OSHA 30."); a query asks for them the way a recruiter
    might ("lift truck driver around Dayton for overnight hours; must have
    a 30-hour safety card"). Each term has two query wordings: the first
    is used by the training and unrelated queries, the second by the
    paraphrases. Only the city and the language are shared words, so a
    cold search narrows to the right city and language and then guesses.
    =========================================================================
*/

#include "lh_lift.h"
#include "lh_client.h"
#include "lh_body.h"
#include "lh_tool.h"
#include "lh_json.h"

#define S_EXIT_FAILURE      1
#define S_EXIT_USAGE        2
#define S_WORKERS           2000        //  roster size by default
#define S_QUERIES           100         //  base queries by default (half training)
#define S_QUERIES_MIN       50          //  fewest base queries
#define S_K                 10          //  hits asked per search by default
#define S_TIMEOUT_MS        60000       //  deadline of each call
#define S_SETS              4           //  training, reframed, paraphrases, unrelated

//  A term: how the roster writes it, and two ways a query asks for it
typedef struct {
    const char *name;                   //  as a worker's text has it
    const char *asked [2];              //  query wordings (base, paraphrase)
} s_term_t;

static const s_term_t s_roles [] = {
    { "Welder", { "metal fabricator who can join steel", "structural steel joiner" } },
    { "Forklift Operator", { "lift truck driver", "sit-down pallet truck handler" } },
    { "CNC Machinist", { "machine shop setup person", "mill and lathe programmer" } },
    { "Electrician", { "licensed wireman", "industrial power and lighting installer" } },
    { "Line Cook", { "short-order grill hand", "hot line kitchen worker" } },
    { "Registered Nurse", { "RN for ward duty", "bedside caregiver with a state license" } },
    { "Truck Driver", { "over-the-road trucker", "long-haul rig operator" } },
    { "Warehouse Associate", { "stockroom helper", "distribution center hand" } },
    { "Maintenance Technician", { "plant mechanic", "equipment repair specialist" } },
    { "Security Guard", { "site protection officer", "premises watchman" } },
    { "Assembler", { "production line builder", "bench fitter for small parts" } },
    { "Quality Inspector", { "QC checker", "parts auditor" } },
};
static const s_term_t s_shifts [] = {
    { "Day", { "daytime hours", "a 9-to-5 schedule" } },
    { "Night", { "overnight hours", "the graveyard slot" } },
    { "Swing", { "evening hours", "the late afternoon rotation" } },
    { "Weekend", { "Saturday and Sunday work", "the Sat/Sun roster" } },
};
static const s_term_t s_certs [] = {
    { "OSHA 30", { "30-hour safety card", "thirty-hour construction safety course" } },
    { "AWS D1.1", { "structural welding code cert", "steel welding qualification" } },
    { "CDL Class A", { "commercial license for tractor-trailers", "A-class commercial driving permit" } },
    { "ServSafe", { "food handler certificate", "kitchen sanitation card" } },
    { "BLS", { "basic life support card", "CPR credential for healthcare providers" } },
    { "Forklift Certified", { "powered industrial truck license", "PIT operator card" } },
    { "HAZMAT", { "hazardous materials endorsement", "dangerous goods training" } },
    { "NCCER", { "craft training credential", "construction skills credential" } },
};
static const struct {
    const char *city;
    const char *state;
} s_places [] = {
    { "Columbus", "OH" }, { "Cleveland", "OH" }, { "Cincinnati", "OH" }, { "Dayton", "OH" },
    { "Toledo", "OH" }, { "Pittsburgh", "PA" }, { "Philadelphia", "PA" }, { "Detroit", "MI" },
    { "Chicago", "IL" }, { "Indianapolis", "IN" }, { "Louisville", "KY" }, { "Houston", "TX" },
    { "Dallas", "TX" }, { "Atlanta", "GA" }, { "Phoenix", "AZ" }, { "Newark", "NJ" },
    { "Buffalo", "NY" }, { "Nashville", "TN" }, { "Charlotte", "NC" }, { "Milwaukee", "WI" }
};
static const char *s_languages [] = {
    "English", "Spanish", "Portuguese", "Vietnamese", "Polish", "Somali", "French", "Arabic"
};
static const char *s_first [] = {
    "James", "Maria", "Robert", "Linda", "Michael", "Patricia", "David", "Jennifer", "Jose",
    "Aisha", "Wei", "Fatima", "Carlos", "Olga", "Kwame", "Priya", "Dmitri", "Sofia", "Hiroshi",
    "Amara", "Liam", "Chloe", "Mateo", "Zoe", "Andre", "Nadia", "Tomas", "Ingrid"
};
static const char *s_last [] = {
    "Smith", "Johnson", "Garcia", "Brown", "Miller", "Davis", "Rodriguez", "Nguyen", "Kim",
    "Patel", "Okafor", "Kowalski", "Haddad", "Rossi", "Schmidt", "Yamamoto", "Dubois", "Silva"
};
static const char *s_skills [] = {
    "inventory counts", "RF scanner", "blueprint reading", "first aid", "Excel",
    "preventive maintenance", "customer service", "torque tools", "pallet wrapping",
    "cycle counting", "patient charting", "knife skills", "route planning", "lockout/tagout"
};
static const char *s_set_names [S_SETS] = { "training", "reframed", "paraphrases", "unrelated" };

#define S_COUNT(table) (sizeof (table) / sizeof (table [0]))

//  One generated worker
typedef struct {
    size_t first, last, role, place, shift, cert, language, skill [2];
    int years;                          //  years of experience
} s_worker_t;

//  One query with its right worker
typedef struct {
    size_t worker;                      //  the right worker
    int set;                            //  0 training, 1 reframed, 2 paraphrase, 3 unrelated
    char *text;                         //  the query
    int rank [2];                       //  1-based rank cold / warm, 0 = not in the top k
    bool boosted;                       //  warm: the right worker was boosted
    bool injected;                      //  warm: the right worker was injected
    bool wrong_injected;                //  warm: another worker injected above it
    double playbook_distance;           //  to the nearest training query
} s_query_t;

//  A run
typedef struct {
    uint64_t state;                     //  splitmix64 state
    size_t workers;                     //  roster size
    size_t bases;                       //  base queries (training + unrelated)
    size_t k;                           //  hits per search
    s_worker_t *roster;                 //  the workers
    s_query_t *queries;                 //  training, reframed, paraphrases, unrelated
    size_t count;                       //  queries
    char corpus [64];                   //  lift_roster_S<seed>
    char playbook [64];                 //  lift_playbook_S<seed>
    double max_distance;                //  playbook_max_distance, < 0 = matrixd's default
    double max_inject;                  //  playbook_max_inject_distance, < 0 = default
    lh_client_t *client;                //  the bus client
} s_lift_t;


//  --------------------------------------------------------------------------
//  splitmix64: the next pseudo-random value, and one below a bound

static uint64_t
s_next (s_lift_t *self)
{
    uint64_t z = (self->state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static size_t
s_below (s_lift_t *self, size_t bound)
{
    return (size_t) (s_next (self) % bound);
}


//  --------------------------------------------------------------------------
//  A worker's text, as the roster would hold it (caller frees)

static char *
s_worker_text (const s_worker_t *worker)
{
    char languages [64];
    if (worker->language)
        snprintf (languages, sizeof (languages), "English, %s", s_languages [worker->language]);
    else
        snprintf (languages, sizeof (languages), "English");
    return zsys_sprintf ("%s %s. %s in %s, %s. %s shift. Certified: %s. Skills: %s, %s. "
                         "Speaks %s. %d years of experience.",
                         s_first [worker->first], s_last [worker->last], s_roles [worker->role].name,
                         s_places [worker->place].city, s_places [worker->place].state,
                         s_shifts [worker->shift].name, s_certs [worker->cert].name,
                         s_skills [worker->skill [0]], s_skills [worker->skill [1]], languages,
                         worker->years);
}


//  --------------------------------------------------------------------------
//  A query for a worker: sentence frame 0 or 1, term wordings 0 or 1
//  (caller frees)

static char *
s_query_text (const s_worker_t *worker, int frame, int terms)
{
    const char *language = s_languages [worker->language];
    const char *role = s_roles [worker->role].asked [terms];
    const char *city = s_places [worker->place].city;
    const char *shift = s_shifts [worker->shift].asked [terms];
    const char *cert = s_certs [worker->cert].asked [terms];
    if (frame == 0)
        return zsys_sprintf ("Need a %s around %s for %s; must have a %s and speak %s.",
                             role, city, shift, cert, language);
    return zsys_sprintf ("Looking for a %s near %s, %s, holding a %s, %s speaker wanted.",
                         role, city, shift, cert, language);
}


//  --------------------------------------------------------------------------
//  Generate the roster and the queries: targets are workers whose (role,
//  city, shift, certification, language) no other worker shares

static void
s_generate (s_lift_t *self, uint64_t seed)
{
    self->state = seed;
    self->roster = (s_worker_t *) calloc (self->workers, sizeof (s_worker_t));
    assert (self->roster);
    for (size_t index = 0; index < self->workers; index++) {
        s_worker_t *worker = &self->roster [index];
        worker->first = s_below (self, S_COUNT (s_first));
        worker->last = s_below (self, S_COUNT (s_last));
        worker->role = s_below (self, S_COUNT (s_roles));
        worker->place = s_below (self, S_COUNT (s_places));
        worker->shift = s_below (self, S_COUNT (s_shifts));
        worker->cert = s_below (self, S_COUNT (s_certs));
        worker->language = s_below (self, 2)? 0: 1 + s_below (self, S_COUNT (s_languages) - 1);
        worker->skill [0] = s_below (self, S_COUNT (s_skills));
        worker->skill [1] = (worker->skill [0] + 1 + s_below (self, S_COUNT (s_skills) - 1))
                          % S_COUNT (s_skills);
        worker->years = 1 + (int) s_below (self, 25);
    }
    //  Targets in a seeded order, unique keys only
    size_t *order = (size_t *) calloc (self->workers, sizeof (size_t));
    assert (order);
    for (size_t index = 0; index < self->workers; index++)
        order [index] = index;
    for (size_t index = self->workers - 1; index > 0; index--) {
        size_t other = s_below (self, index + 1);
        size_t swap = order [index];
        order [index] = order [other];
        order [other] = swap;
    }
    size_t *targets = (size_t *) calloc (self->bases, sizeof (size_t));
    assert (targets);
    size_t found = 0;
    for (size_t at = 0; at < self->workers && found < self->bases; at++) {
        const s_worker_t *worker = &self->roster [order [at]];
        bool unique = true;
        for (size_t other = 0; other < self->workers && unique; other++) {
            const s_worker_t *peer = &self->roster [other];
            unique = other == order [at]
                  || peer->role != worker->role || peer->place != worker->place
                  || peer->shift != worker->shift || peer->cert != worker->cert
                  || peer->language != worker->language;
        }
        if (unique)
            targets [found++] = order [at];
    }
    free (order);
    self->bases = found - found % 2;    //  an even number: half training
    size_t half = self->bases / 2;
    self->count = 4 * half;
    self->queries = (s_query_t *) calloc (self->count, sizeof (s_query_t));
    assert (self->queries);
    //  training: frame 0, terms 0; reframed: frame 1, terms 0; paraphrases:
    //  frame 1, terms 1; unrelated (other workers): frame 0, terms 0
    for (size_t index = 0; index < half; index++) {
        const s_worker_t *worker = &self->roster [targets [index]];
        self->queries [index] = (s_query_t) { .worker = targets [index], .set = 0,
                                              .text = s_query_text (worker, 0, 0) };
        self->queries [half + index] = (s_query_t) { .worker = targets [index], .set = 1,
                                                     .text = s_query_text (worker, 1, 0) };
        self->queries [2 * half + index] = (s_query_t) { .worker = targets [index], .set = 2,
                                                         .text = s_query_text (worker, 1, 1) };
        worker = &self->roster [targets [half + index]];
        self->queries [3 * half + index] = (s_query_t) { .worker = targets [half + index], .set = 3,
                                                         .text = s_query_text (worker, 0, 0) };
    }
    free (targets);
}


//  --------------------------------------------------------------------------
//  Destroy a run's generated data

static void
s_lift_reset (s_lift_t *self)
{
    for (size_t index = 0; index < self->count; index++)
        free (self->queries [index].text);
    free (self->queries);
    free (self->roster);
    self->queries = NULL;
    self->roster = NULL;
    self->count = 0;
}


//  --------------------------------------------------------------------------
//  One call; the reply when its status is expected (or 0 for any 2xx),
//  else NULL after printing why

static lh_reply_t *
s_call (s_lift_t *self, const char *svc, const char *op, lh_pack_t **pack_p, uint32_t expected)
{
    size_t size = 0;
    const void *data = *pack_p? lh_pack_data (*pack_p, &size): NULL;
    lh_call_opts_t opts = { .timeout_ms = S_TIMEOUT_MS, .queue = true };
    lh_reply_t *reply = NULL;
    lh_client_call (self->client, svc, op, data, size, &opts, &reply);
    lh_pack_destroy (pack_p);
    uint32_t status = lh_reply_status (reply);
    if (expected? status == expected: status >= 200 && status < 300)
        return reply;
    const char *reason = lh_reply_reason (reply);
    fprintf (stderr, "lakehouse playbook-lift: %s.%s answered %u: %s\n", svc, op, status,
             reason? reason: "no reason given");
    lh_reply_destroy (&reply);
    return NULL;
}


//  --------------------------------------------------------------------------
//  Embed texts[first..first+count) (at most 256); returns the reply holding
//  the vectors, or NULL

static lh_reply_t *
s_embed (s_lift_t *self, char **texts, size_t count)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_str (pack, "texts");
    lh_pack_open_array (pack);
    for (size_t index = 0; index < count; index++)
        lh_pack_str (pack, texts [index]);
    lh_pack_close (pack);
    lh_pack_close (pack);
    return s_call (self, "embedd", "embed", &pack, 200);
}


//  --------------------------------------------------------------------------
//  Drop an index if it is there; 0 or -1

static int
s_drop (s_lift_t *self, const char *name)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "name", name);
    lh_pack_close (pack);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    lh_call_opts_t opts = { .timeout_ms = S_TIMEOUT_MS, .queue = true };
    lh_reply_t *reply = NULL;
    lh_client_call (self->client, "vectord", "drop", data, size, &opts, &reply);
    lh_pack_destroy (&pack);
    uint32_t status = lh_reply_status (reply);
    lh_reply_destroy (&reply);
    if (status != 200 && status != 404) {
        fprintf (stderr, "lakehouse playbook-lift: vectord.drop of '%s' answered %u\n", name, status);
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Build the roster corpus: a fresh index, the workers' texts embedded and
//  added 256 at a time. 0 or -1.

static int
s_corpus (s_lift_t *self)
{
    if (s_drop (self, self->corpus) || s_drop (self, self->playbook))
        return -1;
    char *texts [256];
    bool created = false;
    for (size_t first = 0; first < self->workers; first += 256) {
        size_t count = self->workers - first < 256? self->workers - first: 256;
        for (size_t index = 0; index < count; index++)
            texts [index] = s_worker_text (&self->roster [first + index]);
        lh_reply_t *embedded = s_embed (self, texts, count);
        for (size_t index = 0; index < count; index++)
            free (texts [index]);
        const msgpack_object *vectors = lh_obj_get (lh_reply_object (embedded), "vectors");
        uint64_t dim = 0;
        if (!vectors || !lh_obj_uint (lh_reply_object (embedded), "dim", &dim)) {
            lh_reply_destroy (&embedded);
            return -1;
        }
        if (!created) {
            lh_pack_t *pack = lh_pack_new ();
            lh_pack_open_map (pack);
            lh_pack_kv_str (pack, "name", self->corpus);
            lh_pack_kv_uint (pack, "dim", dim);
            lh_pack_kv_str (pack, "metric", "cosine");
            lh_pack_close (pack);
            lh_reply_t *reply = s_call (self, "vectord", "create", &pack, 201);
            created = reply != NULL;
            lh_reply_destroy (&reply);
            if (!created) {
                lh_reply_destroy (&embedded);
                return -1;
            }
        }
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_open_map (pack);
        lh_pack_kv_str (pack, "name", self->corpus);
        lh_pack_str (pack, "items");
        lh_pack_open_array (pack);
        for (size_t index = 0; index < count; index++) {
            char id [32];
            snprintf (id, sizeof (id), "w%zu", first + index);
            lh_pack_open_map (pack);
            lh_pack_kv_str (pack, "id", id);
            lh_pack_str (pack, "vector");
            lh_pack_object (pack, &vectors->via.array.ptr [index]);
            lh_pack_close (pack);
        }
        lh_pack_close (pack);
        lh_pack_close (pack);
        lh_reply_t *reply = s_call (self, "vectord", "add", &pack, 200);
        lh_reply_destroy (&embedded);
        if (!reply)
            return -1;
        lh_reply_destroy (&reply);
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Cosine distance of two embedded vectors (msgpack arrays, unit norm)

static double
s_distance (const msgpack_object *a, const msgpack_object *b)
{
    double dot = 0;
    for (uint32_t index = 0; index < a->via.array.size && index < b->via.array.size; index++)
        dot += a->via.array.ptr [index].via.f64 * b->via.array.ptr [index].via.f64;
    return 1 - dot;
}


//  --------------------------------------------------------------------------
//  Each query's distance to the nearest training query (what the playbook
//  search sees). 0 or -1.

static int
s_distances (s_lift_t *self)
{
    char **texts = (char **) calloc (self->count, sizeof (char *));
    lh_reply_t **replies = (lh_reply_t **) calloc ((self->count + 255) / 256, sizeof (void *));
    const msgpack_object **vectors = (const msgpack_object **) calloc (self->count, sizeof (void *));
    assert (texts && replies && vectors);
    int rc = 0;
    for (size_t first = 0, batch = 0; rc == 0 && first < self->count; first += 256, batch++) {
        size_t count = self->count - first < 256? self->count - first: 256;
        for (size_t index = 0; index < count; index++)
            texts [index] = self->queries [first + index].text;
        replies [batch] = s_embed (self, texts, count);
        const msgpack_object *list = lh_obj_get (lh_reply_object (replies [batch]), "vectors");
        if (!list)
            rc = -1;
        for (size_t index = 0; list && index < count; index++)
            vectors [first + index] = &list->via.array.ptr [index];
    }
    size_t half = self->bases / 2;
    for (size_t index = 0; rc == 0 && index < self->count; index++) {
        double nearest = 2;
        for (size_t training = 0; training < half; training++) {
            double distance = s_distance (vectors [index], vectors [training]);
            if (distance < nearest)
                nearest = distance;
        }
        self->queries [index].playbook_distance = nearest > 0? nearest: 0;
    }
    for (size_t batch = 0; batch < (self->count + 255) / 256; batch++)
        lh_reply_destroy (&replies [batch]);
    free (texts);
    free (replies);
    free (vectors);
    return rc;
}


//  --------------------------------------------------------------------------
//  Search every query, cold (pass 0) or warm (pass 1). 0 or -1.

static int
s_search_all (s_lift_t *self, int pass)
{
    for (size_t index = 0; index < self->count; index++) {
        s_query_t *query = &self->queries [index];
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_open_map (pack);
        lh_pack_kv_str (pack, "query_text", query->text);
        lh_pack_str (pack, "corpora");
        lh_pack_open_array (pack);
        lh_pack_str (pack, self->corpus);
        lh_pack_close (pack);
        lh_pack_kv_uint (pack, "k", self->k);
        if (pass) {
            lh_pack_kv_bool (pack, "use_playbook", true);
            lh_pack_kv_str (pack, "playbook_corpus", self->playbook);
            if (self->max_distance >= 0)
                lh_pack_kv_double (pack, "playbook_max_distance", self->max_distance);
            if (self->max_inject >= 0)
                lh_pack_kv_double (pack, "playbook_max_inject_distance", self->max_inject);
        }
        lh_pack_close (pack);
        lh_reply_t *reply = s_call (self, "matrixd", "search", &pack, 200);
        const msgpack_object *hits = lh_obj_get (lh_reply_object (reply), "hits");
        if (!hits || hits->type != MSGPACK_OBJECT_ARRAY) {
            lh_reply_destroy (&reply);
            return -1;
        }
        char right [32];
        snprintf (right, sizeof (right), "w%zu", query->worker);
        query->rank [pass] = 0;
        for (uint32_t rank = 0; rank < hits->via.array.size && !query->rank [pass]; rank++) {
            const msgpack_object *hit = &hits->via.array.ptr [rank];
            const char *id;
            size_t size;
            bool flag = false;
            bool mine = lh_obj_str (hit, "id", &id, &size) && size == strlen (right)
                     && memcmp (id, right, size) == 0;
            if (mine) {
                query->rank [pass] = (int) rank + 1;
                query->boosted = lh_obj_bool (hit, "boosted", &flag) && flag;
                query->injected = lh_obj_bool (hit, "injected", &flag) && flag;
            }
            else
            if (pass && lh_obj_bool (hit, "injected", &flag) && flag)
                query->wrong_injected = true;
        }
        lh_reply_destroy (&reply);
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Record every training query's right worker, score 1.0. 0 or -1.

static int
s_record (s_lift_t *self)
{
    size_t half = self->bases / 2;
    for (size_t first = 0; first < half; first += 1000) {
        size_t last = first + 1000 < half? first + 1000: half;
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_open_map (pack);
        lh_pack_str (pack, "entries");
        lh_pack_open_array (pack);
        for (size_t index = first; index < last; index++) {
            char id [32];
            snprintf (id, sizeof (id), "w%zu", self->queries [index].worker);
            lh_pack_open_map (pack);
            lh_pack_kv_str (pack, "query_text", self->queries [index].text);
            lh_pack_kv_str (pack, "answer_id", id);
            lh_pack_kv_str (pack, "answer_corpus", self->corpus);
            lh_pack_kv_double (pack, "score", 1.0);
            lh_pack_close (pack);
        }
        lh_pack_close (pack);
        lh_pack_kv_str (pack, "playbook_corpus", self->playbook);
        lh_pack_close (pack);
        lh_reply_t *reply = s_call (self, "matrixd", "playbook_bulk", &pack, 200);
        if (!reply)
            return -1;
        lh_reply_destroy (&reply);
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  recall@1, recall@5 and MRR of one set and pass

typedef struct {
    size_t count;                       //  queries in the set
    double recall1, recall5, mrr;       //  the measures
} s_measure_t;

static s_measure_t
s_measure (s_lift_t *self, int set, int pass)
{
    s_measure_t measure = { 0 };
    for (size_t index = 0; index < self->count; index++) {
        const s_query_t *query = &self->queries [index];
        if (query->set != set)
            continue;
        measure.count++;
        int rank = query->rank [pass];
        measure.recall1 += rank == 1;
        measure.recall5 += rank >= 1 && rank <= 5;
        measure.mrr += rank? 1.0 / rank: 0;
    }
    if (measure.count) {
        measure.recall1 /= measure.count;
        measure.recall5 /= measure.count;
        measure.mrr /= measure.count;
    }
    return measure;
}


//  --------------------------------------------------------------------------
//  Compare doubles for qsort

static int
s_compare (const void *a, const void *b)
{
    double left = *(const double *) a, right = *(const double *) b;
    return left < right? -1: left > right;
}


//  --------------------------------------------------------------------------
//  Print the report; returns the exit code (the gate)

static int
s_report (s_lift_t *self, uint64_t seed)
{
    size_t half = self->bases / 2;
    char distance [32] = "0.5 (default)", inject [32] = "0.20 (default)";
    if (self->max_distance >= 0)
        snprintf (distance, sizeof (distance), "%g", self->max_distance);
    if (self->max_inject >= 0)
        snprintf (inject, sizeof (inject), "%g", self->max_inject);
    printf ("## playbook-lift: seed %" PRIu64 ", %zu workers, %zu queries in each set, k %zu, "
            "playbook_max_distance %s, playbook_max_inject_distance %s\n\n", seed,
            self->workers, half, self->k, distance, inject);
    printf ("| set | queries | recall@1 cold | recall@1 warm | recall@5 cold | recall@5 warm "
            "| MRR cold | MRR warm |\n|---|---|---|---|---|---|---|---|\n");
    s_measure_t measures [S_SETS][2];
    for (int set = 0; set < S_SETS; set++) {
        measures [set][0] = s_measure (self, set, 0);
        measures [set][1] = s_measure (self, set, 1);
        printf ("| %s | %zu | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |\n", s_set_names [set],
                measures [set][0].count, measures [set][0].recall1, measures [set][1].recall1,
                measures [set][0].recall5, measures [set][1].recall5, measures [set][0].mrr,
                measures [set][1].mrr);
    }
    printf ("\n| set | right worker boosted | right worker injected | a wrong worker injected "
            "| rank better / same / worse | distance to nearest training query (min / median / max) |\n"
            "|---|---|---|---|---|---|\n");
    for (int set = 0; set < S_SETS; set++) {
        size_t boosted = 0, injected = 0, wrong = 0, better = 0, same = 0, worse = 0, count = 0;
        double *distances = (double *) calloc (self->count, sizeof (double));
        assert (distances);
        for (size_t index = 0; index < self->count; index++) {
            const s_query_t *query = &self->queries [index];
            if (query->set != set)
                continue;
            distances [count++] = query->playbook_distance;
            boosted += query->boosted;
            injected += query->injected;
            wrong += query->wrong_injected;
            int cold = query->rank [0]? query->rank [0]: INT_MAX;
            int warm = query->rank [1]? query->rank [1]: INT_MAX;
            better += warm < cold;
            same += warm == cold;
            worse += warm > cold;
        }
        qsort (distances, count, sizeof (double), s_compare);
        printf ("| %s | %zu | %zu | %zu | %zu / %zu / %zu | %.3f / %.3f / %.3f |\n",
                s_set_names [set], boosted, injected, wrong, better, same, worse,
                count? distances [0]: 0, count? distances [count / 2]: 0,
                count? distances [count - 1]: 0);
        free (distances);
    }
    bool lifts = measures [0][1].recall1 > measures [0][0].recall1;
    bool harmless = measures [3][1].mrr >= measures [3][0].mrr;
    printf ("\n- training queries lift (recall@1 warm > cold): %s\n", lifts? "yes": "NO");
    printf ("- unrelated queries not worse (MRR warm >= cold): %s\n", harmless? "yes": "NO");
    for (int set = 1; set <= 2; set++)
        printf ("- %s: recall@1 %+.3f, MRR %+.3f warm against cold\n", s_set_names [set],
                measures [set][1].recall1 - measures [set][0].recall1,
                measures [set][1].mrr - measures [set][0].mrr);
    fflush (stdout);
    return lifts && harmless? 0: S_EXIT_FAILURE;
}


//  --------------------------------------------------------------------------
//  Complain about the command line; returns the usage exit code

static int
s_bad_usage (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "lakehouse playbook-lift: ");
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n(lakehouse --help for usage)\n");
    va_end (args);
    return S_EXIT_USAGE;
}


//  --------------------------------------------------------------------------
//  lakehouse playbook-lift [--seed S] [--workers N] [--queries Q] [--k K]

int
lh_lift_command (lh_config_t *config, zlist_t *words)
{
    int argc = (int) zlist_size (words);
    char **argv = (char **) calloc ((size_t) argc + 1, sizeof (char *));
    assert (argv);
    int argn = 0;
    for (char *word = (char *) zlist_first (words); word; word = (char *) zlist_next (words))
        argv [argn++] = word;
    uint64_t seed = 1, workers = S_WORKERS, queries = S_QUERIES, k = S_K;
    double reals [2] = { -1, -1 };      //  --max-distance, --max-inject
    int rc = 0;
    for (argn = 0; rc == 0 && argn < argc; argn++) {
        const char *real_names [] = { "--max-distance", "--max-inject" };
        int real = 0;
        for (size_t option = 0; option < 2 && real == 0; option++) {
            const char *value = NULL;
            real = lh_tool_option (argc, argv, &argn, real_names [option], &value);
            char *end = NULL;
            if (real == 1) {
                reals [option] = strtod (value, &end);
                if (end == value || *end || !(reals [option] >= 0 && reals [option] <= 2))
                    rc = s_bad_usage ("%s '%s': give a distance from 0 to 2", real_names [option],
                                      value);
            }
        }
        if (real < 0)
            rc = s_bad_usage ("%s needs a value", argv [argn]);
        if (real)
            continue;
        const char *names [] = { "--seed", "--workers", "--queries", "--k" };
        uint64_t *numbers [] = { &seed, &workers, &queries, &k };
        uint64_t lows [] = { 0, 100, S_QUERIES_MIN, 5 };
        uint64_t highs [] = { UINT64_MAX, 1000000, 10000, 1000 };
        int taken = 0;
        for (size_t option = 0; option < 4 && taken == 0; option++) {
            const char *value = NULL;
            taken = lh_tool_option (argc, argv, &argn, names [option], &value);
            if (taken == 1 && lh_tool_number (value, lows [option], highs [option], numbers [option]))
                rc = s_bad_usage ("%s '%s': give %" PRIu64 " to %" PRIu64, names [option], value,
                                  lows [option], highs [option]);
        }
        if (taken < 0)
            rc = s_bad_usage ("%s needs a value", argv [argn]);
        else
        if (taken == 0)
            rc = s_bad_usage ("unexpected argument '%s'", argv [argn]);
    }
    free (argv);
    if (rc)
        return rc;
    s_lift_t self = { .workers = (size_t) workers, .bases = (size_t) queries, .k = (size_t) k,
                      .max_distance = reals [0], .max_inject = reals [1] };
    snprintf (self.corpus, sizeof (self.corpus), "lift_roster_S%" PRIu64, seed);
    snprintf (self.playbook, sizeof (self.playbook), "lift_playbook_S%" PRIu64, seed);
    s_generate (&self, seed);
    if (self.bases < S_QUERIES_MIN) {
        fprintf (stderr, "lakehouse playbook-lift: only %zu workers have a unique (role, city, "
                 "shift, certification, language); give more --workers\n", self.bases);
        s_lift_reset (&self);
        return S_EXIT_FAILURE;
    }
    zcert_t *cert = NULL;
    char *server_key = NULL;
    self.client = lh_tool_connect (config, "lakehouse playbook-lift", &cert, &server_key);
    int64_t started = zclock_mono ();
    if (!self.client)
        rc = S_EXIT_FAILURE;
    else {
        fprintf (stderr, "lakehouse playbook-lift: corpus %s (%zu workers), %zu queries\n",
                 self.corpus, self.workers, self.count);
        if (s_corpus (&self) || s_distances (&self) || s_search_all (&self, 0)
        ||  s_record (&self) || s_search_all (&self, 1))
            rc = S_EXIT_FAILURE;
        else
            rc = s_report (&self, seed);
        fprintf (stderr, "lakehouse playbook-lift: done in %.1f s\n",
                 (zclock_mono () - started) / 1000.0);
    }
    lh_client_destroy (&self.client);
    zcert_destroy (&cert);
    free (server_key);
    s_lift_reset (&self);
    return rc;
}


//  --------------------------------------------------------------------------
//  Self test: the generator is deterministic, targets are unique, and no
//  query repeats its worker's role, shift or certification words

void
lh_lift_test (bool verbose)
{
    printf (" * lh_lift: ");
    s_lift_t one = { .workers = 2000, .bases = 100 };
    s_lift_t two = { .workers = 2000, .bases = 100 };
    s_generate (&one, 7);
    s_generate (&two, 7);
    assert (one.bases == 100 && one.count == 200);
    for (size_t index = 0; index < one.count; index++)
        assert (streq (one.queries [index].text, two.queries [index].text));
    char *a = s_worker_text (&one.roster [0]), *b = s_worker_text (&two.roster [0]);
    assert (streq (a, b));
    if (verbose)
        printf ("\n    worker: %s\n    query: %s\n    reframed: %s\n    paraphrase: %s", a,
                one.queries [0].text, one.queries [50].text, one.queries [100].text);
    zstr_free (&a);
    zstr_free (&b);
    for (size_t index = 0; index < one.count; index++) {
        const s_query_t *query = &one.queries [index];
        const s_worker_t *worker = &one.roster [query->worker];
        assert (!strstr (query->text, s_roles [worker->role].name));
        assert (!strstr (query->text, s_certs [worker->cert].name));
        assert (strstr (query->text, s_places [worker->place].city));
        for (size_t other = 0; other < one.workers; other++) {
            const s_worker_t *peer = &one.roster [other];
            assert (other == query->worker || peer->role != worker->role
                    || peer->place != worker->place || peer->shift != worker->shift
                    || peer->cert != worker->cert || peer->language != worker->language);
        }
        if (index < 50)
            assert (one.queries [index + 50].worker == query->worker
                    && one.queries [index + 100].worker == query->worker
                    && one.queries [index + 150].worker != query->worker);
    }
    s_lift_reset (&one);
    s_lift_reset (&two);
    //  Another seed, another roster
    s_generate (&one, 8);
    s_generate (&two, 7);
    assert (!streq (one.queries [0].text, two.queries [0].text));
    s_lift_reset (&one);
    s_lift_reset (&two);
    printf ("OK\n");
}
