/*  =========================================================================
    loadmix - the original system's workload: six weighted scenarios over
    a generated roster, driven over HTTP through the gateway (SPEC 5.9
    "Load mix")

    loadmix [options] prepare [--workers N] [--seed S]
    loadmix [options] run [--concurrency C] [--duration S] [--seed S]
                          [--warmup S] [--pid PID] [--out FILE] [--json FILE]

    Options (anywhere on the line):
    --url URL           the gateway (else http:// + config gateway/listen,
                        by default http://127.0.0.1:3110); a bearer token
                        is taken from $LAKEHOUSE_TOKEN
    --dataset NAME      the roster's dataset (default workers)
    --index NAME        the worker corpus, a vectord index (default workers)
    --playbook NAME     the playbook corpus the mix records into (default
                        loadmix_playbook)
    --config FILE       config file (else $LAKEHOUSE_CONFIG, else
                        ./conf/lakehouse.cfg if present, else defaults)
    --set KEY=VALUE     override one key (repeatable)
    -h, --help          this text

    prepare: generates N workers (default 100000) with the gen_workers
    generator (common/lh_workers.c, seed S, default 1), drops the corpus
    and the playbook corpus, ingests the roster as the dataset
    (POST /v1/ingest), builds the corpus from it as `lakehouse corpus
    build` does (text: role, city, state, skills, certifications,
    resume_text; metadata: name, role, city, state, phone, status; over
    the bus, connected as buscall is: bus/endpoint, bus/cert else
    CERTS/admin.cert), and waits until validatord's roster holds the new
    workers. validatord reads its roster from the dataset when `lakehouse
    up` runs with validatord/roster_dataset = the dataset's name
    (docs/validatord.md); prepare says so and exits 1 if it does not.

    run: C sessions (default 50), each one HTTP connection kept alive,
    run scenarios back to back for S seconds (default 60), each scenario
    drawn at random (seeded) by weight:

    35 % cold_search_email   a search for a random (role, city, skill,
                             shift), an email to the top worker from a
                             template, validated (kind email, the worker
                             as _context.candidate_id)
    15 % fill_playbook       a search for active workers of a contract
                             (role, city, state), a fill of the matching
                             ones validated (kind fill), the playbook
                             entry validated (kind playbook), the first
                             worker recorded as the contract's answer
    15 % profile_swap        a search, the same with exclude_ids = its
                             hits: no hit may come back
    15 % repeat_cache        the same search five times: five identical
                             answers
    10 % sms_phone           an SMS to the top worker carrying their phone
                             number, validated (kind sms): the SSN guard
                             must stay silent
    10 % playbook_warm       a search, its last hit recorded as the answer,
                             the search again with use_playbook: the
                             recorded answer must rank higher

    Every draft is filled in from the worker the search found, so every
    validation checks real data; any answer other than the expected one
    fails its scenario, with the reason. A progress line runs on stderr
    (rewritten in place on a terminal, every 10 s otherwise). The report
    (markdown on stdout, and in FILE with --out; the same figures as JSON
    with --json): scenarios/s, p50/p99 per class, failures per class with
    the first reason of each, the checks, per-request latencies, the RSS
    of the `lakehouse up` process sampled every second (--pid, else the
    pid file DATA_DIR/up.pid) and the broker's queue depths (broker.stats
    every 5 s). The playbook queries come from bounded sets (320 contracts,
    1,600 warm queries), so the playbook corpus stops growing however long
    the run.

    Exit codes: 0 done (run: no failure and every class ran), 1 failures
    or an error, 64 a bad command line.
    =========================================================================
*/

#include "lh_config.h"
#include "lh_log.h"
#include "lh_tool.h"
#include "lh_corpus.h"
#include "lh_workers.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>

#define S_EXIT_FAILURE      1
#define s_bad_usage(...)    lh_tool_bad_usage ("loadmix", __VA_ARGS__)

#define S_SEARCH_K          10          //  hits of the searches
#define S_HITS_MAX          16          //  hits kept per search
#define S_REPEATS           5           //  repeat_cache's searches
#define S_FILL_MAX          2           //  workers proposed per fill
#define S_REQUEST_MS        30000       //  each request's deadline
#define S_DRAIN_MS          30000       //  scenarios in flight at the end
#define S_STATS_MS          5000        //  broker.stats period
#define S_PROGRESS_MS       10000       //  progress line period off a terminal
#define S_TIMELINE_ROWS     12          //  rows of the over-time table
#define S_HIST_SIZE         (58 * 128)  //  log-linear latency buckets (µs)
#define S_TEXT_COLUMNS      "role,city,state,skills,certifications,resume_text"
#define S_META_COLUMNS      "name,role,city,state,phone,status"
//  playbook_warm's warm search injects only entries this near its query:
//  at matrixd's default (0.20) the answers recorded for its templated
//  neighbours ("Janitor for the night shift in Houston, TX" is 0.16 from
//  "... swing shift ...") are injected ahead of the boosted answer
#define S_INJECT_DISTANCE   "0.05"

//  --------------------------------------------------------------------------
//  The scenario classes, in the order of the report

typedef enum {
    S_COLD_SEARCH_EMAIL,
    S_FILL_PLAYBOOK,
    S_PROFILE_SWAP,
    S_REPEAT_CACHE,
    S_SMS_PHONE,
    S_PLAYBOOK_WARM,
    S_CLASSES
} s_class_t;

static const struct {
    const char *name;                   //  in the report
    unsigned weight;                    //  percent of the mix
    const char *what;                   //  one line for the report
} s_classes [S_CLASSES] = {
    { "cold_search_email", 35, "search, email draft, validate email" },
    { "fill_playbook", 15, "search, fill proposal, validate fill and playbook, record" },
    { "profile_swap", 15, "search, search again with exclude_ids, no overlap" },
    { "repeat_cache", 15, "the same search five times, identical answers" },
    { "sms_phone", 10, "search, SMS with a phone number, validate sms" },
    { "playbook_warm", 10, "search, record the last hit, search with use_playbook" }
};

//  The requests, for the per-request table
typedef enum {
    S_REQ_SEARCH,
    S_REQ_SEARCH_FILTER,
    S_REQ_SEARCH_EXCLUDE,
    S_REQ_SEARCH_PLAYBOOK,
    S_REQ_VALIDATE,
    S_REQ_RECORD,
    S_REQS
} s_req_t;

static const char *s_req_names [S_REQS] = {
    "search", "search (filter status=active)", "search (exclude_ids)",
    "search (use_playbook)", "validate", "playbook record"
};

//  --------------------------------------------------------------------------
//  A growing text buffer

typedef struct {
    char *data;                         //  NUL-terminated
    size_t size;                        //  bytes used
    size_t max;                         //  bytes allocated
} s_buf_t;

static void
s_buf_reserve (s_buf_t *self, size_t more)
{
    if (self->size + more + 1 <= self->max)
        return;
    size_t max = self->max? self->max: 1024;
    while (max < self->size + more + 1)
        max *= 2;
    self->data = (char *) realloc (self->data, max);
    assert (self->data);
    self->max = max;
}

static void
s_buf_add (s_buf_t *self, const void *data, size_t size)
{
    s_buf_reserve (self, size);
    memcpy (self->data + self->size, data, size);
    self->size += size;
    self->data [self->size] = 0;
}

static void
s_buf_str (s_buf_t *self, const char *text)
{
    s_buf_add (self, text, strlen (text));
}

static void CHECK_PRINTF (2)
s_buf_printf (s_buf_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    int size = vsnprintf (NULL, 0, format, args);
    va_end (args);
    assert (size >= 0);
    s_buf_reserve (self, (size_t) size);
    va_start (args, format);
    vsnprintf (self->data + self->size, (size_t) size + 1, format, args);
    va_end (args);
    self->size += (size_t) size;
}

//  Append text as a JSON string, quotes included
static void
s_buf_json (s_buf_t *self, const char *text)
{
    s_buf_str (self, "\"");
    for (const char *at = text; *at; at++) {
        unsigned char byte = (unsigned char) *at;
        if (byte == '"' || byte == '\\') {
            char escaped [2] = { '\\', (char) byte };
            s_buf_add (self, escaped, 2);
        }
        else
        if (byte == '\n')
            s_buf_str (self, "\\n");
        else
        if (byte < 0x20)
            s_buf_printf (self, "\\u%04x", byte);
        else
            s_buf_add (self, at, 1);
    }
    s_buf_str (self, "\"");
}

static void
s_buf_reset (s_buf_t *self)
{
    self->size = 0;
    if (self->data)
        self->data [0] = 0;
}

//  --------------------------------------------------------------------------
//  Latency histogram: exact below 128 µs, then 128 steps per power of two
//  (under 1 % apart), so a long soak needs no more memory than a short run

typedef struct {
    uint64_t counts [S_HIST_SIZE];      //  per bucket
    uint64_t total;                     //  samples
} s_hist_t;

static size_t
s_hist_bucket (uint64_t us)
{
    if (us < 128)
        return (size_t) us;
    int exponent = 63 - __builtin_clzll (us);   //  7..63
    size_t bucket = (size_t) (exponent - 6) * 128 + ((us >> (exponent - 7)) & 127);
    return bucket < S_HIST_SIZE? bucket: S_HIST_SIZE - 1;
}

static void
s_hist_add (s_hist_t *self, uint64_t us)
{
    self->counts [s_hist_bucket (us)]++;
    self->total++;
}

//  The value at quantile q (0..1), in ms (the middle of its bucket)
static double
s_hist_ms (const s_hist_t *self, double q)
{
    if (self->total == 0)
        return 0;
    uint64_t rank = (uint64_t) ceil (q * (double) self->total);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (size_t bucket = 0; bucket < S_HIST_SIZE; bucket++) {
        seen += self->counts [bucket];
        if (seen >= rank) {
            if (bucket < 128)
                return bucket / 1000.0;
            int exponent = (int) (bucket / 128) + 6;
            double low = (double) ((128 + bucket % 128) << (exponent - 7));
            double width = (double) (1ULL << (exponent - 7));
            return (low + width / 2) / 1000.0;
        }
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  splitmix64, one stream per session

static uint64_t
s_rand (uint64_t *seed)
{
    uint64_t z = (*seed += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static size_t
s_below (uint64_t *seed, size_t bound)
{
    return (size_t) (s_rand (seed) % bound);
}

static int64_t
s_now_us (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

//  --------------------------------------------------------------------------
//  The command line and what every part of the program shares

typedef struct {
    const char *command;                //  prepare | run
    const char *url;                    //  gateway base URL, no trailing /
    const char *dataset;                //  --dataset
    const char *index;                  //  --index
    const char *playbook;               //  --playbook
    const char *config_path;            //  --config
    zlist_t *sets;                      //  --set KEY=VALUE (borrowed strings)
    uint64_t workers;                   //  prepare --workers
    uint64_t seed;                      //  --seed
    uint64_t concurrency;               //  run --concurrency
    uint64_t duration;                  //  run --duration, s
    int64_t warmup;                     //  run --warmup, s (-1: duration / 6)
    int64_t pid;                        //  run --pid (0: the pid file)
    const char *out;                    //  run --out
    const char *json;                   //  run --json
} s_args_t;

//  Vocabularies of the generated roster
typedef struct {
    const char *const *roles;
    size_t roles_count;
    const char *const *cities;
    const char *const *states;
    size_t places_count;
    const char *const *skills;
    size_t skills_count;
    const char *const *shifts;
    size_t shifts_count;
} s_vocab_t;

//  One hit of a search, the fields the drafts need
typedef struct {
    char id [64];
    char name [96];
    char role [48];
    char city [48];
    char state [8];
    char phone [24];
    char status [16];
} s_hit_t;

//  One scenario's latency and outcome accounting per class
typedef struct {
    uint64_t started;                   //  scenarios begun
    uint64_t done;                      //  finished (passed or failed)
    uint64_t in_time;                   //  finished before the deadline
    uint64_t failed;                    //  of done
    char *first_failure;                //  reason of the first one
    s_hist_t hist;                      //  latency of the passed ones
} s_class_stats_t;

typedef struct {
    uint64_t count;
    uint64_t errors;                    //  curl errors and unexpected statuses
    s_hist_t hist;
} s_req_stats_t;

//  What the scenario checks counted
typedef struct {
    uint64_t swap_total, swap_clean;            //  profile_swap: no overlap
    uint64_t warm_total, warm_moved;            //  playbook_warm: moved up
    uint64_t warm_cold_ranks, warm_warm_ranks;  //  sums of 1-based ranks
    uint64_t warm_boosted, warm_injected;       //  how it came up
    uint64_t sms_total, sms_silent;             //  sms_phone: SSN guard silent
    uint64_t repeat_total, repeat_same;         //  repeat_cache: identical
    uint64_t valid [4];                         //  email, sms, fill, playbook passed
} s_checks_t;

//  An RSS sample of the system under load
typedef struct {
    int64_t at_ms;                      //  since the start of the run
    uint64_t rss_kib, anon_kib, file_kib;
} s_rss_t;

//  A broker.stats sample
typedef struct {
    int64_t at_ms;
    uint64_t queued;                    //  requests queued, all services
    uint64_t max_queued;                //  in the deepest service
    char max_service [32];              //  which
} s_queue_t;

typedef struct s_run_t s_run_t;

//  One client session: an HTTP connection running scenarios back to back
typedef struct {
    s_run_t *run;                       //  the run it belongs to
    size_t index;                       //  0..concurrency-1
    CURL *easy;                         //  its handle (keeps its connection)
    uint64_t rng;                       //  its random stream
    bool busy;                          //  a request in flight
    bool monitor;                       //  the broker.stats sampler, not a session
    s_buf_t request;                    //  the body being sent
    s_buf_t reply;                      //  the body being received
    s_req_t req;                        //  what the request is
    int64_t req_started;                //  µs
    //  The scenario
    s_class_t klass;
    int step;
    int64_t started;                    //  µs
    char query [256];
    s_hit_t hits [S_HITS_MAX];          //  the first search's hits
    size_t hit_count;
    char role [48], city [48], state [8];   //  a contract (fill_playbook)
    size_t fill_count;                  //  workers proposed
    size_t answer;                      //  playbook_warm: index in hits of the answer
    size_t repeats;                     //  repeat_cache: searches done
} s_session_t;

struct s_run_t {
    s_args_t *args;
    s_vocab_t vocab;
    CURLM *multi;
    struct curl_slist *headers;         //  content type, no Expect, token
    char *search_url, *validate_url, *record_url, *stats_url;
    s_session_t *sessions;
    s_session_t monitor;
    int64_t start, deadline;            //  µs
    bool stopping;                      //  no new scenarios
    s_class_stats_t classes [S_CLASSES];
    s_req_stats_t reqs [S_REQS];
    s_checks_t checks;
    //  Samples
    int64_t pid;                        //  the system's process, or 0
    s_rss_t *rss;
    size_t rss_count, rss_max;
    s_queue_t *queues;
    size_t queue_count, queue_max;
    int64_t next_rss, next_stats, next_progress;
    uint64_t last_done;                 //  scenarios done at the last progress line
    int64_t last_progress;
    bool tty;
    //  Over-time rows
    int64_t timeline_ms;                //  width of a row
    uint64_t timeline_done [S_TIMELINE_ROWS + 1];
    uint64_t timeline_failed [S_TIMELINE_ROWS + 1];
    char load_before [64], load_after [64];
    uint64_t corpus_count;              //  vectors in the corpus at the start
    int64_t playbook_before, playbook_after;    //  entries (-1: no index)
};


//  --------------------------------------------------------------------------
//  Print the usage text

static void
s_usage (FILE *file)
{
    fprintf (file,
        "usage: loadmix [options] prepare [--workers N] [--seed S]\n"
        "       loadmix [options] run [--concurrency C] [--duration S] [--seed S]\n"
        "                             [--warmup S] [--pid PID] [--out FILE] [--json FILE]\n"
        "\n"
        "  prepare              generate N workers (100000), ingest them, build the corpus,\n"
        "                       wait for validatord's roster (validatord/roster_dataset)\n"
        "  run                  the six-scenario mix at C sessions (50) for S seconds (60);\n"
        "                       report on stdout (markdown)\n"
        "  --url URL            the gateway (else http:// + config gateway/listen)\n"
        "  --dataset NAME       the roster dataset (workers)\n"
        "  --index NAME         the worker corpus (workers)\n"
        "  --playbook NAME      the playbook corpus (loadmix_playbook)\n"
        "  --warmup S           RSS is judged after S seconds (duration / 6)\n"
        "  --pid PID            the process whose RSS is sampled (else DATA_DIR/up.pid)\n"
        "  --out FILE           the report also to FILE\n"
        "  --json FILE          the figures as JSON to FILE\n"
        "  --config FILE        config file (else $LAKEHOUSE_CONFIG, else\n"
        "                       ./conf/lakehouse.cfg if present, else defaults)\n"
        "  --set KEY=VALUE      override a config key (repeatable)\n"
        "  -h, --help           this text\n"
        "\n"
        "A bearer token for the gateway is taken from $LAKEHOUSE_TOKEN.\n");
}


//  --------------------------------------------------------------------------
//  Parse the command line. Returns 0, or the exit code to leave with.

static int
s_parse_args (int argc, char *argv [], s_args_t *args)
{
    args->workers = 100000;
    args->seed = 1;
    args->concurrency = 50;
    args->duration = 60;
    args->warmup = -1;
    args->dataset = "workers";
    args->index = "workers";
    args->playbook = "loadmix_playbook";
    args->sets = zlist_new ();
    for (int argn = 1; argn < argc; argn++) {
        const char *arg = argv [argn], *value = NULL;
        if (streq (arg, "-h") || streq (arg, "--help")) {
            s_usage (stdout);
            return -1;
        }
        const char *names [] = { "--url", "--dataset", "--index", "--playbook", "--config",
                                 "--out", "--json" };
        const char **targets [] = { &args->url, &args->dataset, &args->index, &args->playbook,
                                    &args->config_path, &args->out, &args->json };
        int taken = 0;
        for (size_t option = 0; option < sizeof (names) / sizeof (names [0]) && !taken; option++)
            taken = lh_tool_option (argc, argv, &argn, names [option], targets [option]);
        if (taken < 0)
            return s_bad_usage ("%s needs a value", arg);
        if (taken)
            continue;
        const char *numbers [] = { "--workers", "--seed", "--concurrency", "--duration",
                                   "--warmup", "--pid" };
        uint64_t lows [] = { 1, 0, 1, 1, 0, 1 };
        uint64_t highs [] = { 10000000, UINT64_MAX, 10000, 86400, 86400, 4194304 };
        for (size_t option = 0; option < 6 && !taken; option++) {
            taken = lh_tool_option (argc, argv, &argn, numbers [option], &value);
            if (taken < 0)
                return s_bad_usage ("%s needs a value", arg);
            uint64_t number;
            if (taken && lh_tool_number (value, lows [option], highs [option], &number))
                return s_bad_usage ("%s '%s': give a number from %" PRIu64 " to %" PRIu64,
                                    numbers [option], value, lows [option], highs [option]);
            if (taken) {
                uint64_t *slots [] = { &args->workers, &args->seed, &args->concurrency,
                                       &args->duration, NULL, NULL };
                if (slots [option])
                    *slots [option] = number;
                else
                if (option == 4)
                    args->warmup = (int64_t) number;
                else
                    args->pid = (int64_t) number;
            }
        }
        if (taken)
            continue;
        taken = lh_tool_option (argc, argv, &argn, "--set", &value);
        if (taken < 0)
            return s_bad_usage ("--set needs KEY=VALUE");
        if (taken) {
            if (!strchr (value, '='))
                return s_bad_usage ("--set '%s': give KEY=VALUE", value);
            zlist_append (args->sets, (void *) value);
            continue;
        }
        if (*arg == '-')
            return s_bad_usage ("unknown option '%s'", arg);
        if (args->command)
            return s_bad_usage ("unexpected argument '%s'", arg);
        if (!streq (arg, "prepare") && !streq (arg, "run"))
            return s_bad_usage ("unknown command '%s': give prepare or run", arg);
        args->command = arg;
    }
    if (!args->command)
        return s_bad_usage ("give a command: prepare or run");
    if (args->warmup >= (int64_t) args->duration)
        return s_bad_usage ("--warmup %" PRId64 " is not shorter than --duration %" PRIu64,
                            args->warmup, args->duration);
    return 0;
}


//  --------------------------------------------------------------------------
//  Load the config as the other tools do, with the --set overrides

static lh_config_t *
s_config_load (s_args_t *args)
{
    const char *path = args->config_path;
    if (!path) {
        const char *env = getenv ("LAKEHOUSE_CONFIG");
        if (env && *env)
            path = env;
        else
        if (zsys_file_exists ("conf/lakehouse.cfg"))
            path = "conf/lakehouse.cfg";
    }
    char *error = NULL;
    lh_config_t *config = lh_config_load (path, &error);
    if (!config) {
        fprintf (stderr, "loadmix: %s\n", error? error: "cannot load the config");
        free (error);
        return NULL;
    }
    for (const char *set = (const char *) zlist_first (args->sets); set;
         set = (const char *) zlist_next (args->sets)) {
        const char *equals = strchr (set, '=');
        char *key = strndup (set, (size_t) (equals - set));
        if (lh_config_set (config, key, equals + 1) != 0) {
            char *why = lh_config_explain (key, equals + 1);
            fprintf (stderr, "loadmix: --set %s: %s\n", set, why? why: "refused");
            free (why);
            free (key);
            lh_config_destroy (&config);
            return NULL;
        }
        free (key);
    }
    return config;
}


//  --------------------------------------------------------------------------
//  The gateway's base URL: --url, else http:// + gateway/listen. Caller
//  frees.

static char *
s_base_url (s_args_t *args, lh_config_t *config)
{
    const char *url = args->url;
    char *base = NULL;
    if (url)
        base = strdup (url);
    else {
        const char *listen = lh_config_str (config, "gateway/listen");
        if (!*listen)
            listen = "127.0.0.1:3110";
        base = strstr (listen, "://")? strdup (listen): zsys_sprintf ("http://%s", listen);
    }
    size_t length = strlen (base);
    while (length > 0 && base [length - 1] == '/')
        base [--length] = 0;
    return base;
}

//  The Authorization header from $LAKEHOUSE_TOKEN, or NULL
static struct curl_slist *
s_headers (bool json)
{
    struct curl_slist *headers = NULL;
    headers = curl_slist_append (headers, json? "Content-Type: application/json":
                                               "Content-Type: text/csv");
    headers = curl_slist_append (headers, "Expect:");
    const char *token = getenv ("LAKEHOUSE_TOKEN");
    if (token && *token) {
        char *line = zsys_sprintf ("Authorization: Bearer %s", token);
        headers = curl_slist_append (headers, line);
        zstr_free (&line);
    }
    return headers;
}

static size_t
s_on_write (char *data, size_t size, size_t count, void *arg)
{
    s_buf_add ((s_buf_t *) arg, data, size * count);
    return size * count;
}


//  --------------------------------------------------------------------------
//  One blocking HTTP request (prepare, and the run's before / after
//  figures). method NULL is POST when there is a body, else GET. Returns
//  the HTTP status, or 0 when no answer came (reply holds curl's reason).

static long
s_http (const char *url, const char *method, const char *body, size_t size, bool json,
        long timeout_ms, s_buf_t *reply)
{
    CURL *easy = curl_easy_init ();
    assert (easy);
    struct curl_slist *headers = s_headers (json);
    s_buf_reserve (reply, 0);           //  never NULL, even for an empty body
    s_buf_reset (reply);
    curl_easy_setopt (easy, CURLOPT_URL, url);
    curl_easy_setopt (easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt (easy, CURLOPT_WRITEFUNCTION, s_on_write);
    curl_easy_setopt (easy, CURLOPT_WRITEDATA, reply);
    curl_easy_setopt (easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt (easy, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt (easy, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt (easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) size);
    }
    if (method)
        curl_easy_setopt (easy, CURLOPT_CUSTOMREQUEST, method);
    long status = 0;
    CURLcode rc = curl_easy_perform (easy);
    if (rc == CURLE_OK)
        curl_easy_getinfo (easy, CURLINFO_RESPONSE_CODE, &status);
    else {
        s_buf_reset (reply);
        s_buf_printf (reply, "%s", curl_easy_strerror (rc));
    }
    curl_slist_free_all (headers);
    curl_easy_cleanup (easy);
    return status;
}

//  The count of a vectord index (GET /v1/vectors/index/NAME), or -1
static int64_t
s_index_count (const char *base, const char *name)
{
    char *url = zsys_sprintf ("%s/v1/vectors/index/%s", base, name);
    s_buf_t reply = { 0 };
    long status = s_http (url, NULL, NULL, 0, true, 10000, &reply);
    int64_t count = -1;
    if (status == 200) {
        json_t *root = json_loadb (reply.data, reply.size, 0, NULL);
        json_t *value = json_object_get (root, "count");
        if (json_is_integer (value))
            count = json_integer_value (value);
        json_decref (root);
    }
    free (reply.data);
    zstr_free (&url);
    return count;
}

//  The text of a reply for a reason: its first 300 bytes, on one line
static char *
s_excerpt (const char *data, size_t size)
{
    size_t length = size > 300? 300: size;
    char *text = (char *) malloc (length + 4);
    assert (text);
    for (size_t index = 0; index < length; index++)
        text [index] = data [index] == '\n' || data [index] == '\r'? ' ': data [index];
    strcpy (text + length, size > length? "...": "");
    return text;
}


//  --------------------------------------------------------------------------
//  prepare: the roster, the dataset, the corpus, validatord's roster

//  Does validatord's roster hold this worker? 1 yes, 0 no, -1 not loaded
//  yet (503), -2 an answer that says neither (*why: a sentence)
static int
s_roster_has (const char *base, uint64_t worker, char **why)
{
    char *url = zsys_sprintf ("%s/v1/validate", base);
    char *body = zsys_sprintf ("{\"kind\": \"fill\", \"artifact\": {\"fills\": "
                               "[{\"candidate_id\": \"%" PRIu64 "\", \"name\": \"x\"}]}}",
                               worker);
    s_buf_t reply = { 0 };
    long status = s_http (url, NULL, body, strlen (body), true, 10000, &reply);
    int rc = -2;
    if (status == 200 || (status == 422 && strstr (reply.data, "is not active")))
        rc = 1;
    else
    if (status == 422 && strstr (reply.data, "does not exist"))
        rc = 0;
    else
    if (status == 503)
        rc = -1;
    if (rc == -2) {
        char *text = s_excerpt (reply.data, reply.size);
        *why = zsys_sprintf ("validate answered %ld: %s", status, text);
        free (text);
    }
    free (reply.data);
    zstr_free (&body);
    zstr_free (&url);
    return rc;
}

static int
s_prepare (s_args_t *args, lh_config_t *config)
{
    char *base = s_base_url (args, config);
    int64_t started = zclock_mono ();
    //  1. The roster, in memory
    char *csv = NULL;
    size_t csv_size = 0;
    FILE *out = open_memstream (&csv, &csv_size);
    if (!out || lh_workers_write (out, args->workers, args->seed) || fclose (out)) {
        fprintf (stderr, "loadmix: cannot generate the roster: %s\n", strerror (errno));
        free (csv);
        zstr_free (&base);
        return S_EXIT_FAILURE;
    }
    fprintf (stderr, "loadmix: %" PRIu64 " workers generated (seed %" PRIu64 ", %.1f MB)\n",
             args->workers, args->seed, csv_size / 1e6);
    //  2. A fresh corpus and playbook
    s_buf_t reply = { 0 };
    int rc = 0;
    const char *drops [] = { args->index, args->playbook };
    for (size_t index = 0; index < 2 && rc == 0; index++) {
        char *url = zsys_sprintf ("%s/v1/vectors/index/%s", base, drops [index]);
        long status = s_http (url, "DELETE", NULL, 0, true, 60000, &reply);
        if (status != 200 && status != 404) {
            fprintf (stderr, "loadmix: DELETE %s answered %ld: %s\n", url, status, reply.data);
            rc = S_EXIT_FAILURE;
        }
        zstr_free (&url);
    }
    //  3. The dataset
    int64_t ingest_ms = zclock_mono ();
    if (rc == 0) {
        char *url = zsys_sprintf ("%s/v1/ingest?name=%s", base, args->dataset);
        long status = s_http (url, NULL, csv, csv_size, false, 600000, &reply);
        if (status != 200) {
            fprintf (stderr, "loadmix: POST %s answered %ld: %s\n", url, status, reply.data);
            rc = S_EXIT_FAILURE;
        }
        zstr_free (&url);
    }
    free (csv);
    ingest_ms = zclock_mono () - ingest_ms;
    if (rc == 0)
        fprintf (stderr, "loadmix: dataset '%s' ingested in %.1f s\n", args->dataset,
                 ingest_ms / 1000.0);
    //  4. The corpus, as `lakehouse corpus build` builds it
    int64_t build_ms = zclock_mono ();
    if (rc == 0) {
        zlist_t *words = zlist_new ();
        const char *list [] = { "build", "--dataset", args->dataset, "--id-column", "worker_id",
                                "--text-columns", S_TEXT_COLUMNS, "--index", args->index,
                                "--metadata-columns", S_META_COLUMNS };
        for (size_t index = 0; index < sizeof (list) / sizeof (list [0]); index++)
            zlist_append (words, (void *) list [index]);
        if (lh_corpus_command (config, words) != 0) {
            fprintf (stderr, "loadmix: the corpus build failed (above)\n");
            rc = S_EXIT_FAILURE;
        }
        zlist_destroy (&words);
    }
    build_ms = zclock_mono () - build_ms;
    //  5. validatord's roster: the last worker in, the one after it not
    int64_t roster_ms = zclock_mono ();
    uint64_t last = LH_WORKERS_FIRST_ID + args->workers - 1;
    while (rc == 0) {
        char *why = NULL;
        int has_last = s_roster_has (base, last, &why);
        int has_next = has_last == 1? s_roster_has (base, last + 1, &why): 0;
        if (has_last == 1 && has_next == 0)
            break;
        if (has_last == -2 || has_next == -2) {
            fprintf (stderr, "loadmix: validatord's roster cannot be checked: %s\n", why);
            rc = S_EXIT_FAILURE;
        }
        else
        if (zclock_mono () - roster_ms > 60000) {
            fprintf (stderr, "loadmix: validatord's roster does not hold the %" PRIu64
                     " workers of dataset '%s' after 60 s (worker %" PRIu64 " %s): start "
                     "`lakehouse up` with --set validatord/roster_dataset=%s (or set it in "
                     "the config) so that validatord reads its roster from the dataset\n",
                     args->workers, args->dataset, has_last == 1? last + 1: last,
                     has_last == 1? "is still there": has_last == 0? "is missing":
                     "has not loaded", args->dataset);
            rc = S_EXIT_FAILURE;
        }
        else
            zclock_sleep (250);
        zstr_free (&why);
    }
    roster_ms = zclock_mono () - roster_ms;
    if (rc == 0) {
        int64_t count = s_index_count (base, args->index);
        printf ("loadmix prepare: %" PRIu64 " workers (seed %" PRIu64 "): dataset '%s' ingested "
                "in %.1f s, corpus '%s' built in %.1f s (%" PRId64 " vectors, %.0f rows/s), "
                "validatord's roster ready %.1f s later; %.1f s in all\n",
                args->workers, args->seed, args->dataset, ingest_ms / 1000.0, args->index,
                build_ms / 1000.0, count, args->workers * 1000.0 / (build_ms? build_ms: 1),
                roster_ms / 1000.0, (zclock_mono () - started) / 1000.0);
        fflush (stdout);
    }
    free (reply.data);
    zstr_free (&base);
    return rc;
}


//  --------------------------------------------------------------------------
//  run: samples of the system (RSS from /proc, queue depths from the broker)

static void
s_sample_rss (s_run_t *self, int64_t now)
{
    if (self->pid <= 0)
        return;
    char path [64];
    snprintf (path, sizeof (path), "/proc/%" PRId64 "/status", self->pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return;
    s_rss_t sample = { .at_ms = (now - self->start) / 1000 };
    char line [256];
    while (fgets (line, sizeof (line), file)) {
        unsigned long long kib;
        if (sscanf (line, "VmRSS: %llu", &kib) == 1)
            sample.rss_kib = kib;
        else
        if (sscanf (line, "RssAnon: %llu", &kib) == 1)
            sample.anon_kib = kib;
        else
        if (sscanf (line, "RssFile: %llu", &kib) == 1)
            sample.file_kib = kib;
    }
    fclose (file);
    if (self->rss_count == self->rss_max) {
        self->rss_max = self->rss_max? self->rss_max * 2: 256;
        self->rss = (s_rss_t *) realloc (self->rss, self->rss_max * sizeof (s_rss_t));
        assert (self->rss);
    }
    self->rss [self->rss_count++] = sample;
}

//  A broker.stats reply: the queue depths
static void
s_on_stats (s_run_t *self, const char *data, size_t size, int64_t now)
{
    json_t *root = json_loadb (data, size, 0, NULL);
    json_t *services = json_object_get (root, "services");
    if (!json_is_object (services)) {
        json_decref (root);
        return;
    }
    s_queue_t sample = { .at_ms = (now - self->start) / 1000 };
    const char *name;
    json_t *service;
    json_object_foreach (services, name, service) {
        json_t *queued = json_object_get (service, "queued");
        uint64_t depth = json_is_integer (queued)? (uint64_t) json_integer_value (queued): 0;
        sample.queued += depth;
        if (depth > sample.max_queued || !sample.max_service [0]) {
            sample.max_queued = depth;
            snprintf (sample.max_service, sizeof (sample.max_service), "%s", name);
        }
    }
    json_decref (root);
    if (self->queue_count == self->queue_max) {
        self->queue_max = self->queue_max? self->queue_max * 2: 64;
        self->queues = (s_queue_t *) realloc (self->queues, self->queue_max * sizeof (s_queue_t));
        assert (self->queues);
    }
    self->queues [self->queue_count++] = sample;
}


//  --------------------------------------------------------------------------
//  run: sending a request of a session

static void
s_send (s_session_t *self, s_req_t req, const char *url)
{
    s_run_t *run = self->run;
    s_buf_reset (&self->reply);
    curl_easy_setopt (self->easy, CURLOPT_URL, url);
    curl_easy_setopt (self->easy, CURLOPT_POSTFIELDS, self->request.data);
    curl_easy_setopt (self->easy, CURLOPT_POSTFIELDSIZE, (long) self->request.size);
    self->req = req;
    self->req_started = s_now_us ();
    self->busy = true;
    CURLMcode rc = curl_multi_add_handle (run->multi, self->easy);
    assert (rc == CURLM_OK);
}

//  A search body for the session's query into request
static void
s_search_body (s_session_t *self, size_t k)
{
    s_run_t *run = self->run;
    s_buf_reset (&self->request);
    s_buf_str (&self->request, "{\"query_text\": ");
    s_buf_json (&self->request, self->query);
    s_buf_printf (&self->request, ", \"corpora\": [");
    s_buf_json (&self->request, run->args->index);
    s_buf_printf (&self->request, "], \"k\": %zu", k);
}

static void
s_search (s_session_t *self, size_t k)
{
    s_search_body (self, k);
    s_buf_str (&self->request, "}");
    s_send (self, S_REQ_SEARCH, self->run->search_url);
}


//  --------------------------------------------------------------------------
//  run: a scenario ends

static void
s_finish (s_session_t *self, const char *failure)
{
    s_run_t *run = self->run;
    s_class_stats_t *stats = &run->classes [self->klass];
    int64_t now = s_now_us ();
    stats->done++;
    if (now <= run->deadline)
        stats->in_time++;
    int64_t row = run->timeline_ms > 0? (now - run->start) / 1000 / run->timeline_ms: 0;
    if (row > S_TIMELINE_ROWS)
        row = S_TIMELINE_ROWS;
    if (failure) {
        stats->failed++;
        run->timeline_failed [row]++;
        if (!stats->first_failure)
            stats->first_failure = strdup (failure);
    }
    else
        s_hist_add (&stats->hist, (uint64_t) (now - self->started));
    run->timeline_done [row]++;
    self->step = -1;
}

//  Fail the scenario with a reason built like printf
static void CHECK_PRINTF (2)
s_fail (s_session_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *reason = zsys_vprintf (format, args);
    va_end (args);
    s_finish (self, reason);
    zstr_free (&reason);
}

//  Fail on an unexpected status, quoting the reply
static void
s_fail_status (s_session_t *self, const char *what, long status)
{
    char *text = s_excerpt (self->reply.data, self->reply.size);
    s_fail (self, "step %d, %s answered %ld: %s", self->step + 1, what, status, text);
    free (text);
}


//  --------------------------------------------------------------------------
//  run: reading a search's hits

static void
s_copy (char *target, size_t size, json_t *object, const char *key)
{
    json_t *value = json_object_get (object, key);
    snprintf (target, size, "%s", json_is_string (value)? json_string_value (value): "");
}

//  Parse hits of a search reply into hits (at most max). Returns the count,
//  or -1 if the reply is not a search answer.
static int
s_parse_hits (const s_buf_t *reply, s_hit_t *hits, size_t max, json_t **root_p)
{
    json_t *root = json_loadb (reply->data, reply->size, 0, NULL);
    json_t *array = json_object_get (root, "hits");
    if (!json_is_array (array)) {
        json_decref (root);
        return -1;
    }
    size_t count = 0;
    for (size_t index = 0; index < json_array_size (array) && count < max; index++) {
        json_t *hit = json_array_get (array, index);
        json_t *metadata = json_object_get (hit, "metadata");
        s_hit_t *target = &hits [count++];
        s_copy (target->id, sizeof (target->id), hit, "id");
        s_copy (target->name, sizeof (target->name), metadata, "name");
        s_copy (target->role, sizeof (target->role), metadata, "role");
        s_copy (target->city, sizeof (target->city), metadata, "city");
        s_copy (target->state, sizeof (target->state), metadata, "state");
        s_copy (target->phone, sizeof (target->phone), metadata, "phone");
        s_copy (target->status, sizeof (target->status), metadata, "status");
    }
    if (root_p)
        *root_p = root;
    else
        json_decref (root);
    return (int) count;
}

//  The first name of a full name, into first
static void
s_first_name (const char *name, char *first, size_t size)
{
    size_t length = strcspn (name, " ");
    snprintf (first, size, "%.*s", (int) length, name);
}

//  A validate request: kind, the artifact (JSON text) and the context
static void
s_validate (s_session_t *self, const char *kind, const char *artifact, const char *context)
{
    s_buf_reset (&self->request);
    s_buf_printf (&self->request, "{\"kind\": \"%s\", \"artifact\": %s, \"context\": %s}",
                  kind, artifact, context);
    s_send (self, S_REQ_VALIDATE, self->run->validate_url);
}

//  A validate reply: true if it passed (200, valid), else the scenario
//  failed
static bool
s_validated (s_session_t *self, long status, const char *kind, int counter)
{
    if (status != 200 || !strstr (self->reply.data, "\"valid\":true")) {
        char what [64];
        snprintf (what, sizeof (what), "validate %s", kind);
        s_fail_status (self, what, status);
        return false;
    }
    self->run->checks.valid [counter]++;
    return true;
}


//  --------------------------------------------------------------------------
//  run: the scenarios, one step per reply. Each begins with s_begin_CLASS
//  (the first request) and goes on in s_on_CLASS (the reply of step N).

//  A random query: role, city and state, a skill, a shift
static void
s_random_query (s_session_t *self)
{
    s_vocab_t *vocab = &self->run->vocab;
    size_t place = s_below (&self->rng, vocab->places_count);
    snprintf (self->query, sizeof (self->query), "%s in %s, %s with %s, %s shift",
              vocab->roles [s_below (&self->rng, vocab->roles_count)], vocab->cities [place],
              vocab->states [place], vocab->skills [s_below (&self->rng, vocab->skills_count)],
              vocab->shifts [s_below (&self->rng, vocab->shifts_count)]);
}

static void
s_on_email (s_session_t *self, long status)
{
    if (self->step == 0) {
        if (status != 200) {
            s_fail_status (self, "search", status);
            return;
        }
        self->hit_count = 0;
        int count = s_parse_hits (&self->reply, self->hits, 1, NULL);
        if (count < 1) {
            s_fail (self, "the search found no worker for '%s'", self->query);
            return;
        }
        s_hit_t *hit = &self->hits [0];
        char first [64];
        s_first_name (hit->name, first, sizeof (first));
        s_buf_t artifact = { 0 };
        s_buf_str (&artifact, "{\"subject\": ");
        char *subject = zsys_sprintf ("%s opening in %s, %s", hit->role, hit->city, hit->state);
        s_buf_json (&artifact, subject);
        char *body = zsys_sprintf ("Hi %s,\n\nA %s position in %s, %s matches your profile. "
                                   "The shift starts next week; reply to this email if you "
                                   "would like to hear more.\n\nThe staffing team",
                                   first, hit->role, hit->city, hit->state);
        s_buf_str (&artifact, ", \"body\": ");
        s_buf_json (&artifact, body);
        s_buf_str (&artifact, ", \"name\": ");
        s_buf_json (&artifact, hit->name);
        s_buf_str (&artifact, "}");
        char context [128];
        snprintf (context, sizeof (context), "{\"candidate_id\": \"%.63s\"}", hit->id);
        self->step = 1;
        s_validate (self, "email", artifact.data, context);
        zstr_free (&subject);
        zstr_free (&body);
        free (artifact.data);
    }
    else
    if (s_validated (self, status, "email", 0))
        s_finish (self, NULL);
}

static void
s_begin_fill (s_session_t *self)
{
    s_vocab_t *vocab = &self->run->vocab;
    size_t place = s_below (&self->rng, vocab->places_count);
    snprintf (self->role, sizeof (self->role), "%s",
              vocab->roles [s_below (&self->rng, vocab->roles_count)]);
    snprintf (self->city, sizeof (self->city), "%s", vocab->cities [place]);
    snprintf (self->state, sizeof (self->state), "%s", vocab->states [place]);
    snprintf (self->query, sizeof (self->query), "%s needed in %s, %s", self->role, self->city,
              self->state);
    s_search_body (self, S_SEARCH_K);
    s_buf_printf (&self->request, ", \"filter\": {\"status\": \"active\"}}");
    s_send (self, S_REQ_SEARCH_FILTER, self->run->search_url);
}

static void
s_on_fill (s_session_t *self, long status)
{
    s_run_t *run = self->run;
    if (self->step == 0) {
        if (status != 200) {
            s_fail_status (self, "search", status);
            return;
        }
        s_hit_t hits [S_HITS_MAX];
        int count = s_parse_hits (&self->reply, hits, S_HITS_MAX, NULL);
        //  The proposal: the active workers among the hits who match the
        //  contract, at most S_FILL_MAX
        self->hit_count = 0;
        for (int index = 0; index < count && self->hit_count < S_FILL_MAX; index++)
            if (streq (hits [index].role, self->role) && streq (hits [index].city, self->city)
            &&  streq (hits [index].state, self->state) && streq (hits [index].status, "active"))
                self->hits [self->hit_count++] = hits [index];
        if (self->hit_count == 0) {
            s_fail (self, "no active %s in %s, %s among the %d hits of '%s'", self->role,
                    self->city, self->state, count, self->query);
            return;
        }
        s_buf_t artifact = { 0 };
        s_buf_str (&artifact, "{\"fills\": [");
        for (size_t index = 0; index < self->hit_count; index++) {
            s_buf_printf (&artifact, "%s{\"candidate_id\": ", index? ", ": "");
            s_buf_json (&artifact, self->hits [index].id);
            s_buf_str (&artifact, ", \"name\": ");
            s_buf_json (&artifact, self->hits [index].name);
            s_buf_str (&artifact, "}");
        }
        s_buf_str (&artifact, "]}");
        s_buf_t context = { 0 };
        s_buf_printf (&context, "{\"target_count\": %zu, \"city\": ", self->hit_count);
        s_buf_json (&context, self->city);
        s_buf_str (&context, ", \"state\": ");
        s_buf_json (&context, self->state);
        s_buf_str (&context, ", \"role\": ");
        s_buf_json (&context, self->role);
        s_buf_printf (&context, ", \"client_id\": \"C-%zu\"}", s_below (&self->rng, 100));
        self->step = 1;
        s_validate (self, "fill", artifact.data, context.data);
        free (artifact.data);
        free (context.data);
    }
    else
    if (self->step == 1) {
        if (!s_validated (self, status, "fill", 2))
            return;
        //  The playbook entry this fill makes, validated before it is recorded
        s_buf_t artifact = { 0 };
        uint64_t fingerprint = 0xcbf29ce484222325ULL;       //  FNV-1a of the query
        for (const char *at = self->query; *at; at++)
            fingerprint = (fingerprint ^ (unsigned char) *at) * 0x100000001b3ULL;
        s_buf_printf (&artifact, "{\"fingerprint\": \"loadmix-%016" PRIx64 "\", "
                      "\"operation\": ", fingerprint);
        char *operation = zsys_sprintf ("fill: %s x%zu in %s, %s", self->role, self->hit_count,
                                        self->city, self->state);
        s_buf_json (&artifact, operation);
        s_buf_str (&artifact, ", \"endorsed_names\": [");
        for (size_t index = 0; index < self->hit_count; index++) {
            if (index)
                s_buf_str (&artifact, ", ");
            s_buf_json (&artifact, self->hits [index].name);
        }
        s_buf_printf (&artifact, "], \"target_count\": %zu}", self->hit_count);
        self->step = 2;
        s_validate (self, "playbook", artifact.data, "{}");
        zstr_free (&operation);
        free (artifact.data);
    }
    else
    if (self->step == 2) {
        if (!s_validated (self, status, "playbook", 3))
            return;
        s_buf_reset (&self->request);
        s_buf_str (&self->request, "{\"query_text\": ");
        s_buf_json (&self->request, self->query);
        s_buf_str (&self->request, ", \"answer_id\": ");
        s_buf_json (&self->request, self->hits [0].id);
        s_buf_str (&self->request, ", \"answer_corpus\": ");
        s_buf_json (&self->request, run->args->index);
        s_buf_str (&self->request, ", \"score\": 1.0, \"tags\": [\"fill\"], \"playbook_corpus\": ");
        s_buf_json (&self->request, run->args->playbook);
        s_buf_str (&self->request, "}");
        self->step = 3;
        s_send (self, S_REQ_RECORD, run->record_url);
    }
    else {
        if (status != 200 || !strstr (self->reply.data, "playbook_id"))
            s_fail_status (self, "playbook record", status);
        else
            s_finish (self, NULL);
    }
}

static void
s_on_swap (s_session_t *self, long status)
{
    if (status != 200) {
        s_fail_status (self, self->step? "search with exclude_ids": "search", status);
        return;
    }
    if (self->step == 0) {
        int count = s_parse_hits (&self->reply, self->hits, S_HITS_MAX, NULL);
        if (count < 1) {
            s_fail (self, "the search found no worker for '%s'", self->query);
            return;
        }
        self->hit_count = (size_t) count;
        s_search_body (self, S_SEARCH_K);
        s_buf_str (&self->request, ", \"exclude_ids\": [");
        for (size_t index = 0; index < self->hit_count; index++) {
            if (index)
                s_buf_str (&self->request, ", ");
            s_buf_json (&self->request, self->hits [index].id);
        }
        s_buf_str (&self->request, "]}");
        self->step = 1;
        s_send (self, S_REQ_SEARCH_EXCLUDE, self->run->search_url);
        return;
    }
    s_hit_t hits [S_HITS_MAX];
    int count = s_parse_hits (&self->reply, hits, S_HITS_MAX, NULL);
    self->run->checks.swap_total++;
    if (count < 1) {
        s_fail (self, "the search with exclude_ids found no worker for '%s'", self->query);
        return;
    }
    for (int index = 0; index < count; index++)
        for (size_t other = 0; other < self->hit_count; other++)
            if (streq (hits [index].id, self->hits [other].id)) {
                s_fail (self, "worker %s came back at rank %d though it was in exclude_ids "
                        "('%s')", hits [index].id, index + 1, self->query);
                return;
            }
    self->run->checks.swap_clean++;
    s_finish (self, NULL);
}

static void
s_on_repeat (s_session_t *self, long status)
{
    if (status != 200) {
        s_fail_status (self, "search", status);
        return;
    }
    s_hit_t hits [S_HITS_MAX];
    int count = s_parse_hits (&self->reply, hits, S_HITS_MAX, NULL);
    if (count < 1) {
        s_fail (self, "search %zu of %d found no worker for '%s'", self->repeats + 1, S_REPEATS,
                self->query);
        return;
    }
    if (self->repeats == 0) {
        memcpy (self->hits, hits, sizeof (s_hit_t) * (size_t) count);
        self->hit_count = (size_t) count;
    }
    else {
        bool same = (size_t) count == self->hit_count;
        for (size_t index = 0; same && index < self->hit_count; index++)
            same = streq (hits [index].id, self->hits [index].id);
        if (!same) {
            self->run->checks.repeat_total++;
            s_fail (self, "search %zu of %d answered other hits than the first ('%s')",
                    self->repeats + 1, S_REPEATS, self->query);
            return;
        }
    }
    if (++self->repeats < S_REPEATS) {
        self->step++;
        s_search (self, S_SEARCH_K);
        return;
    }
    self->run->checks.repeat_total++;
    self->run->checks.repeat_same++;
    s_finish (self, NULL);
}

static void
s_on_sms (s_session_t *self, long status)
{
    if (self->step == 0) {
        if (status != 200) {
            s_fail_status (self, "search", status);
            return;
        }
        int count = s_parse_hits (&self->reply, self->hits, 1, NULL);
        if (count < 1 || !self->hits [0].phone [0]) {
            s_fail (self, "the search found no worker with a phone for '%s'", self->query);
            return;
        }
        s_hit_t *hit = &self->hits [0];
        char first [64];
        s_first_name (hit->name, first, sizeof (first));
        char *body = zsys_sprintf ("Hi %s, a %s shift in %s is open tomorrow. Call %s to "
                                   "confirm or reply STOP.", first, hit->role, hit->city,
                                   hit->phone);
        s_buf_t artifact = { 0 };
        s_buf_str (&artifact, "{\"body\": ");
        s_buf_json (&artifact, body);
        s_buf_str (&artifact, ", \"name\": ");
        s_buf_json (&artifact, hit->name);
        s_buf_str (&artifact, "}");
        char context [128];
        snprintf (context, sizeof (context), "{\"candidate_id\": \"%.63s\"}", hit->id);
        self->step = 1;
        s_validate (self, "sms", artifact.data, context);
        zstr_free (&body);
        free (artifact.data);
        return;
    }
    self->run->checks.sms_total++;
    if (status == 422 && strstr (self->reply.data, "SSN")) {
        s_fail (self, "the SSN guard fired on the phone number %s: %s", self->hits [0].phone,
                self->reply.data);
        return;
    }
    if (s_validated (self, status, "sms", 1)) {
        self->run->checks.sms_silent++;
        s_finish (self, NULL);
    }
}

static void
s_begin_warm (s_session_t *self)
{
    s_vocab_t *vocab = &self->run->vocab;
    size_t place = s_below (&self->rng, vocab->places_count);
    snprintf (self->query, sizeof (self->query), "%s for the %s shift in %s, %s",
              vocab->roles [s_below (&self->rng, vocab->roles_count)],
              vocab->shifts [s_below (&self->rng, vocab->shifts_count)],
              vocab->cities [place], vocab->states [place]);
    s_search (self, S_SEARCH_K);
}

static void
s_on_warm (s_session_t *self, long status)
{
    s_run_t *run = self->run;
    if (self->step == 0) {
        if (status != 200) {
            s_fail_status (self, "cold search", status);
            return;
        }
        int count = s_parse_hits (&self->reply, self->hits, S_HITS_MAX, NULL);
        if (count < 2) {
            s_fail (self, "the cold search found %d worker(s) for '%s', too few to move one up",
                    count < 0? 0: count, self->query);
            return;
        }
        self->hit_count = (size_t) count;
        self->answer = self->hit_count - 1;
        s_buf_reset (&self->request);
        s_buf_str (&self->request, "{\"query_text\": ");
        s_buf_json (&self->request, self->query);
        s_buf_str (&self->request, ", \"answer_id\": ");
        s_buf_json (&self->request, self->hits [self->answer].id);
        s_buf_str (&self->request, ", \"answer_corpus\": ");
        s_buf_json (&self->request, run->args->index);
        s_buf_str (&self->request, ", \"score\": 1.0, \"tags\": [\"warm\"], \"playbook_corpus\": ");
        s_buf_json (&self->request, run->args->playbook);
        s_buf_str (&self->request, "}");
        self->step = 1;
        s_send (self, S_REQ_RECORD, run->record_url);
    }
    else
    if (self->step == 1) {
        if (status != 200) {
            s_fail_status (self, "playbook record", status);
            return;
        }
        s_search_body (self, S_SEARCH_K);
        s_buf_str (&self->request, ", \"use_playbook\": true, \"playbook_max_inject_distance\": "
                   S_INJECT_DISTANCE ", \"playbook_corpus\": ");
        s_buf_json (&self->request, run->args->playbook);
        s_buf_str (&self->request, "}");
        self->step = 2;
        s_send (self, S_REQ_SEARCH_PLAYBOOK, run->search_url);
    }
    else {
        if (status != 200) {
            s_fail_status (self, "warm search", status);
            return;
        }
        run->checks.warm_total++;
        json_t *root = NULL;
        s_hit_t hits [S_HITS_MAX];
        int count = s_parse_hits (&self->reply, hits, S_HITS_MAX, &root);
        const char *answer = self->hits [self->answer].id;
        int rank = -1;
        for (int index = 0; index < count && rank < 0; index++)
            if (streq (hits [index].id, answer))
                rank = index;
        if (rank < 0 || (size_t) rank >= self->answer) {
            json_decref (root);
            if (rank < 0)
                s_fail (self, "the recorded answer %s (cold rank %zu) is gone from the warm "
                        "search of '%s'", answer, self->answer + 1, self->query);
            else
                s_fail (self, "the recorded answer %s stayed at rank %d (cold rank %zu) for '%s'",
                        answer, rank + 1, self->answer + 1, self->query);
            return;
        }
        json_t *hit = json_array_get (json_object_get (root, "hits"), (size_t) rank);
        if (json_is_true (json_object_get (hit, "injected")))
            run->checks.warm_injected++;
        else
        if (json_is_true (json_object_get (hit, "boosted")))
            run->checks.warm_boosted++;
        json_decref (root);
        run->checks.warm_moved++;
        run->checks.warm_cold_ranks += self->answer + 1;
        run->checks.warm_warm_ranks += (uint64_t) rank + 1;
        s_finish (self, NULL);
    }
}

//  Start the session's next scenario, drawn by weight
static void
s_begin (s_session_t *self)
{
    s_run_t *run = self->run;
    size_t draw = s_below (&self->rng, 100), sum = 0;
    self->klass = S_CLASSES - 1;
    for (int klass = 0; klass < S_CLASSES; klass++) {
        sum += s_classes [klass].weight;
        if (draw < sum) {
            self->klass = (s_class_t) klass;
            break;
        }
    }
    run->classes [self->klass].started++;
    self->step = 0;
    self->repeats = 0;
    self->hit_count = 0;
    self->started = s_now_us ();
    switch (self->klass) {
        case S_FILL_PLAYBOOK:
            s_begin_fill (self);
            break;
        case S_PLAYBOOK_WARM:
            s_begin_warm (self);
            break;
        case S_COLD_SEARCH_EMAIL:
            s_random_query (self);
            s_search (self, 5);
            break;
        case S_SMS_PHONE:
            s_random_query (self);
            s_search (self, 3);
            break;
        default:
            s_random_query (self);
            s_search (self, S_SEARCH_K);
            break;
    }
}

//  A request of the session ended (result: curl's code)
static void
s_on_done (s_session_t *self, CURLcode result)
{
    s_run_t *run = self->run;
    int64_t now = s_now_us ();
    self->busy = false;
    if (self->monitor) {
        long status = 0;
        curl_easy_getinfo (self->easy, CURLINFO_RESPONSE_CODE, &status);
        if (result == CURLE_OK && status == 200)
            s_on_stats (run, self->reply.data, self->reply.size, now);
        return;
    }
    s_req_stats_t *req = &run->reqs [self->req];
    req->count++;
    if (result != CURLE_OK) {
        req->errors++;
        s_fail (self, "step %d: no answer: %s", self->step + 1, curl_easy_strerror (result));
        return;
    }
    long status = 0;
    curl_easy_getinfo (self->easy, CURLINFO_RESPONSE_CODE, &status);
    bool expected = status == 200 || (self->req == S_REQ_VALIDATE && status == 422);
    if (!expected)
        req->errors++;
    else
        s_hist_add (&req->hist, (uint64_t) (now - self->req_started));
    switch (self->klass) {
        case S_COLD_SEARCH_EMAIL: s_on_email (self, status); break;
        case S_FILL_PLAYBOOK:     s_on_fill (self, status); break;
        case S_PROFILE_SWAP:      s_on_swap (self, status); break;
        case S_REPEAT_CACHE:      s_on_repeat (self, status); break;
        case S_SMS_PHONE:         s_on_sms (self, status); break;
        default:                  s_on_warm (self, status); break;
    }
}


//  --------------------------------------------------------------------------
//  run: the progress line

static uint64_t
s_done_total (s_run_t *self, uint64_t *failed)
{
    uint64_t done = 0;
    *failed = 0;
    for (int klass = 0; klass < S_CLASSES; klass++) {
        done += self->classes [klass].done;
        *failed += self->classes [klass].failed;
    }
    return done;
}

static void
s_progress (s_run_t *self, int64_t now, bool last)
{
    uint64_t failed, done = s_done_total (self, &failed);
    double seconds = (now - self->start) / 1e6;
    double window = (now - self->last_progress) / 1e6;
    double rate = window > 0? (done - self->last_done) / window: 0;
    char rss [48] = "";
    if (self->rss_count > 0)
        snprintf (rss, sizeof (rss), ", RSS %.0f MiB",
                  self->rss [self->rss_count - 1].rss_kib / 1024.0);
    fprintf (stderr, "%sloadmix: %.0f/%" PRIu64 " s, %" PRIu64 " scenarios, %.0f/s now, "
             "%" PRIu64 " failed%s%s", self->tty? "\r": "", seconds, self->args->duration, done,
             rate, failed, rss, self->tty && !last? "   ": "\n");
    fflush (stderr);
    self->last_done = done;
    self->last_progress = now;
}


//  --------------------------------------------------------------------------
//  run: the report

static void
s_report_write (s_run_t *self, s_buf_t *out, double seconds)
{
    s_args_t *args = self->args;
    uint64_t failed, done = s_done_total (self, &failed);
    uint64_t in_time = 0;
    for (int klass = 0; klass < S_CLASSES; klass++)
        in_time += self->classes [klass].in_time;
    double rate = in_time / (double) args->duration;
    s_buf_printf (out, "## loadmix: %" PRIu64 " s at concurrency %" PRIu64 ", seed %" PRIu64
                  "\n\n", args->duration, args->concurrency, args->seed);
    s_buf_printf (out, "- gateway %s; corpus `%s` (%" PRIu64 " vectors), playbook corpus `%s` "
                  "(%" PRId64 " entries before, %" PRId64 " after)\n", args->url, args->index,
                  self->corpus_count, args->playbook, self->playbook_before, self->playbook_after);
    s_buf_printf (out, "- load average before / after: %s / %s (%ld cores)\n",
                  self->load_before, self->load_after, sysconf (_SC_NPROCESSORS_ONLN));
    s_buf_printf (out, "- **%.1f scenarios/s** (%" PRIu64 " finished in the %" PRIu64 " s; %"
                  PRIu64 " in all, the last %.1f s after it), %" PRIu64 " failed (%.3f %%)\n\n",
                  rate, in_time, args->duration, done, seconds - (double) args->duration,
                  failed, done? 100.0 * failed / done: 0.0);
    s_buf_printf (out, "| class | weight | what | scenarios | per s | p50 ms | p99 ms | failed "
                  "| first failure |\n|---|---|---|---|---|---|---|---|---|\n");
    for (int klass = 0; klass < S_CLASSES; klass++) {
        s_class_stats_t *stats = &self->classes [klass];
        s_buf_printf (out, "| %s | %u %% | %s | %" PRIu64 " | %.1f | %.2f | %.2f | %" PRIu64
                      " | %s |\n", s_classes [klass].name, s_classes [klass].weight,
                      s_classes [klass].what, stats->done, stats->in_time / (double) args->duration,
                      s_hist_ms (&stats->hist, 0.50), s_hist_ms (&stats->hist, 0.99),
                      stats->failed, stats->first_failure? stats->first_failure: "");
    }
    s_checks_t *checks = &self->checks;
    s_buf_printf (out, "\n| check | passed |\n|---|---|\n");
    s_buf_printf (out, "| profile_swap: no hit of the first search after exclude_ids | %" PRIu64
                  " of %" PRIu64 " |\n", checks->swap_clean, checks->swap_total);
    s_buf_printf (out, "| playbook_warm: the recorded answer ranks higher with use_playbook | %"
                  PRIu64 " of %" PRIu64 " (mean rank %.2f cold, %.2f warm; %" PRIu64 " boosted, %"
                  PRIu64 " injected) |\n", checks->warm_moved, checks->warm_total,
                  checks->warm_moved? checks->warm_cold_ranks / (double) checks->warm_moved: 0.0,
                  checks->warm_moved? checks->warm_warm_ranks / (double) checks->warm_moved: 0.0,
                  checks->warm_boosted, checks->warm_injected);
    s_buf_printf (out, "| sms_phone: SSN guard silent on a phone number | %" PRIu64 " of %"
                  PRIu64 " |\n", checks->sms_silent, checks->sms_total);
    s_buf_printf (out, "| repeat_cache: five identical answers | %" PRIu64 " of %" PRIu64 " |\n",
                  checks->repeat_same, checks->repeat_total);
    s_buf_printf (out, "| validations passed (email, sms, fill, playbook) | %" PRIu64 ", %" PRIu64
                  ", %" PRIu64 ", %" PRIu64 " |\n", checks->valid [0], checks->valid [1],
                  checks->valid [2], checks->valid [3]);
    s_buf_printf (out, "\n| request | count | p50 ms | p99 ms | errors |\n|---|---|---|---|---|\n");
    for (int req = 0; req < S_REQS; req++)
        s_buf_printf (out, "| %s | %" PRIu64 " | %.2f | %.2f | %" PRIu64 " |\n", s_req_names [req],
                      self->reqs [req].count, s_hist_ms (&self->reqs [req].hist, 0.50),
                      s_hist_ms (&self->reqs [req].hist, 0.99), self->reqs [req].errors);
    //  RSS
    int64_t warmup_ms = (args->warmup >= 0? args->warmup: (int64_t) args->duration / 6) * 1000;
    if (self->rss_count > 0) {
        uint64_t peak = 0, low = UINT64_MAX, high = 0, anon = 0, file = 0;
        const s_rss_t *first_after = NULL, *last = &self->rss [self->rss_count - 1];
        for (size_t index = 0; index < self->rss_count; index++) {
            const s_rss_t *sample = &self->rss [index];
            if (sample->rss_kib > peak) {
                peak = sample->rss_kib;
                anon = sample->anon_kib;
                file = sample->file_kib;
            }
            if (sample->at_ms >= warmup_ms && sample->at_ms <= (int64_t) args->duration * 1000) {
                if (!first_after)
                    first_after = sample;
                low = sample->rss_kib < low? sample->rss_kib: low;
                high = sample->rss_kib > high? sample->rss_kib: high;
            }
        }
        s_buf_printf (out, "\nRSS of the system (pid %" PRId64 ", `/proc/PID/status` every 1 s, %zu "
                      "samples): start %.1f MiB, **peak %.1f MiB** (anon %.1f, file %.1f), end "
                      "%.1f MiB", self->pid, self->rss_count, self->rss [0].rss_kib / 1024.0,
                      peak / 1024.0, anon / 1024.0, file / 1024.0, last->rss_kib / 1024.0);
        if (first_after)
            s_buf_printf (out, "; after the %" PRId64 " s warm-up from %.1f to %.1f MiB (%.1f %% "
                          "of the lowest)", warmup_ms / 1000, low / 1024.0, high / 1024.0,
                          low? 100.0 * (high - low) / low: 0.0);
        s_buf_printf (out, ".\n");
    }
    else
        s_buf_printf (out, "\nRSS not sampled: no --pid, and no readable pid file.\n");
    //  Queues
    if (self->queue_count > 0) {
        uint64_t deepest = 0, total = 0;
        const char *service = "";
        for (size_t index = 0; index < self->queue_count; index++) {
            if (self->queues [index].max_queued >= deepest) {
                deepest = self->queues [index].max_queued;
                service = self->queues [index].max_service;
            }
            total = self->queues [index].queued > total? self->queues [index].queued: total;
        }
        s_buf_printf (out, "\nBroker queues (`broker.stats` every %d s, %zu samples): deepest "
                      "service queue %" PRIu64 " (%s), most queued at once %" PRIu64 ", at the "
                      "first / last sample %" PRIu64 " / %" PRIu64 ".\n", S_STATS_MS / 1000,
                      self->queue_count, deepest, service, total, self->queues [0].queued,
                      self->queues [self->queue_count - 1].queued);
    }
    //  Over time
    if (self->timeline_ms > 0) {
        s_buf_printf (out, "\n| from s | to s | scenarios/s | failed | RSS MiB (last sample) | "
                      "queued (last sample) |\n|---|---|---|---|---|---|\n");
        for (int row = 0; row < S_TIMELINE_ROWS; row++) {
            int64_t from = row * self->timeline_ms, to = from + self->timeline_ms;
            if (from >= (int64_t) args->duration * 1000)
                break;
            if (to > (int64_t) args->duration * 1000)
                to = (int64_t) args->duration * 1000;
            double rss = 0;
            for (size_t index = 0; index < self->rss_count; index++)
                if (self->rss [index].at_ms < to)
                    rss = self->rss [index].rss_kib / 1024.0;
            uint64_t queued = 0;
            for (size_t index = 0; index < self->queue_count; index++)
                if (self->queues [index].at_ms < to)
                    queued = self->queues [index].queued;
            s_buf_printf (out, "| %.0f | %.0f | %.1f | %" PRIu64 " | %.1f | %" PRIu64 " |\n",
                          from / 1000.0, to / 1000.0,
                          self->timeline_done [row] * 1000.0 / (double) (to - from),
                          self->timeline_failed [row], rss, queued);
        }
    }
}

//  The figures as JSON (for tests and scripts)
static int
s_report_json (s_run_t *self, const char *path, double seconds)
{
    s_args_t *args = self->args;
    json_t *root = json_object ();
    uint64_t failed, done = s_done_total (self, &failed);
    uint64_t in_time = 0;
    json_t *classes = json_object ();
    for (int klass = 0; klass < S_CLASSES; klass++) {
        s_class_stats_t *stats = &self->classes [klass];
        in_time += stats->in_time;
        json_object_set_new (classes, s_classes [klass].name, json_pack (
            "{s:I, s:I, s:f, s:f, s:s?}", "scenarios", (json_int_t) stats->done,
            "failed", (json_int_t) stats->failed, "p50_ms", s_hist_ms (&stats->hist, 0.5),
            "p99_ms", s_hist_ms (&stats->hist, 0.99), "first_failure", stats->first_failure));
    }
    s_checks_t *checks = &self->checks;
    json_object_set_new (root, "duration_s", json_integer ((json_int_t) args->duration));
    json_object_set_new (root, "seconds", json_real (seconds));
    json_object_set_new (root, "concurrency", json_integer ((json_int_t) args->concurrency));
    json_object_set_new (root, "scenarios", json_integer ((json_int_t) done));
    json_object_set_new (root, "scenarios_per_s", json_real (in_time / (double) args->duration));
    json_object_set_new (root, "failed", json_integer ((json_int_t) failed));
    json_object_set_new (root, "classes", classes);
    json_object_set_new (root, "checks", json_pack (
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:[I, I, I, I]}",
        "swap_total", (json_int_t) checks->swap_total, "swap_clean", (json_int_t) checks->swap_clean,
        "warm_total", (json_int_t) checks->warm_total, "warm_moved", (json_int_t) checks->warm_moved,
        "sms_total", (json_int_t) checks->sms_total, "sms_silent", (json_int_t) checks->sms_silent,
        "repeat_total", (json_int_t) checks->repeat_total,
        "repeat_same", (json_int_t) checks->repeat_same,
        "warm_boosted", (json_int_t) checks->warm_boosted,
        "warm_injected", (json_int_t) checks->warm_injected,
        "valid_email_sms_fill_playbook", (json_int_t) checks->valid [0],
        (json_int_t) checks->valid [1], (json_int_t) checks->valid [2],
        (json_int_t) checks->valid [3]));
    uint64_t peak = 0;
    for (size_t index = 0; index < self->rss_count; index++)
        peak = self->rss [index].rss_kib > peak? self->rss [index].rss_kib: peak;
    json_object_set_new (root, "rss_samples", json_integer ((json_int_t) self->rss_count));
    json_object_set_new (root, "rss_peak_kib", json_integer ((json_int_t) peak));
    json_object_set_new (root, "playbook_entries", json_integer (self->playbook_after));
    int rc = json_dump_file (root, path, JSON_INDENT (2));
    json_decref (root);
    if (rc)
        fprintf (stderr, "loadmix: cannot write %s\n", path);
    return rc;
}


//  --------------------------------------------------------------------------
//  run: the mix

static void
s_loadavg (char *text, size_t size)
{
    FILE *file = fopen ("/proc/loadavg", "r");
    double one = 0, five = 0, fifteen = 0;
    if (file && fscanf (file, "%lf %lf %lf", &one, &five, &fifteen) == 3)
        snprintf (text, size, "%.2f %.2f %.2f", one, five, fifteen);
    else
        snprintf (text, size, "unknown");
    if (file)
        fclose (file);
}

//  The pid of the system: --pid, else DATA_DIR/up.pid
static int64_t
s_system_pid (s_args_t *args, lh_config_t *config)
{
    if (args->pid > 0)
        return args->pid;
    char *path = zsys_sprintf ("%s/up.pid", lh_config_str (config, "data/dir"));
    FILE *file = fopen (path, "r");
    long long pid = 0;
    if (file) {
        if (fscanf (file, "%lld", &pid) != 1)
            pid = 0;
        fclose (file);
    }
    zstr_free (&path);
    return pid > 0 && kill ((pid_t) pid, 0) == 0? pid: 0;
}

static void
s_session_init (s_session_t *self, s_run_t *run, size_t index)
{
    self->run = run;
    self->index = index;
    self->rng = run->args->seed * 1000003 + index;
    self->step = -1;
    self->easy = curl_easy_init ();
    assert (self->easy);
    s_buf_reserve (&self->reply, 0);    //  never NULL, even for an empty body
    s_buf_reset (&self->reply);
    curl_easy_setopt (self->easy, CURLOPT_HTTPHEADER, run->headers);
    curl_easy_setopt (self->easy, CURLOPT_WRITEFUNCTION, s_on_write);
    curl_easy_setopt (self->easy, CURLOPT_WRITEDATA, &self->reply);
    curl_easy_setopt (self->easy, CURLOPT_PRIVATE, self);
    curl_easy_setopt (self->easy, CURLOPT_TIMEOUT_MS, (long) S_REQUEST_MS);
    curl_easy_setopt (self->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (self->easy, CURLOPT_TCP_NODELAY, 1L);
}

static void
s_session_reset (s_session_t *self)
{
    if (self->easy && self->busy)
        curl_multi_remove_handle (self->run->multi, self->easy);
    if (self->easy)
        curl_easy_cleanup (self->easy);
    free (self->request.data);
    free (self->reply.data);
}

static int
s_run (s_args_t *args, lh_config_t *config)
{
    s_run_t *self = (s_run_t *) zmalloc (sizeof (s_run_t));
    self->args = args;
    char *base = s_base_url (args, config);
    args->url = base;
    s_vocab_t *vocab = &self->vocab;
    vocab->roles = lh_workers_table ("roles", &vocab->roles_count);
    vocab->cities = lh_workers_table ("cities", &vocab->places_count);
    size_t count;
    vocab->states = lh_workers_table ("states", &count);
    vocab->skills = lh_workers_table ("skills", &vocab->skills_count);
    vocab->shifts = lh_workers_table ("shifts", &vocab->shifts_count);
    assert (vocab->roles && vocab->cities && vocab->states && count == vocab->places_count
            && vocab->skills && vocab->shifts);
    int64_t corpus = s_index_count (base, args->index);
    if (corpus <= 0) {
        fprintf (stderr, "loadmix: the gateway at %s has no corpus '%s' with vectors in it: "
                 "run `loadmix prepare` first (and check --url)\n", base, args->index);
        zstr_free (&base);
        free (self);
        return S_EXIT_FAILURE;
    }
    self->corpus_count = (uint64_t) corpus;
    self->playbook_before = s_index_count (base, args->playbook);
    self->search_url = zsys_sprintf ("%s/v1/matrix/search", base);
    self->validate_url = zsys_sprintf ("%s/v1/validate", base);
    self->record_url = zsys_sprintf ("%s/v1/matrix/playbooks/record", base);
    self->stats_url = zsys_sprintf ("%s/v1/bus/broker/stats", base);
    self->headers = s_headers (true);
    self->multi = curl_multi_init ();
    curl_multi_setopt (self->multi, CURLMOPT_MAXCONNECTS, (long) args->concurrency + 4);
    self->pid = s_system_pid (args, config);
    self->tty = isatty (STDERR_FILENO);
    self->timeline_ms = args->duration * 1000 / S_TIMELINE_ROWS;
    if (self->timeline_ms < 5000)
        self->timeline_ms = args->duration >= 10? 5000: 0;
    s_loadavg (self->load_before, sizeof (self->load_before));
    self->sessions = (s_session_t *) zmalloc (args->concurrency * sizeof (s_session_t));
    for (size_t index = 0; index < args->concurrency; index++)
        s_session_init (&self->sessions [index], self, index);
    s_session_init (&self->monitor, self, args->concurrency);
    self->monitor.monitor = true;

    self->start = s_now_us ();
    self->deadline = self->start + (int64_t) args->duration * 1000000;
    self->last_progress = self->start;
    int64_t drain_deadline = self->deadline + S_DRAIN_MS * 1000LL;
    s_sample_rss (self, self->start);
    self->next_rss = self->start + 1000000;
    self->next_stats = self->start;
    self->next_progress = self->start + (self->tty? 1000000: S_PROGRESS_MS * 1000LL);
    bool aborted = false;
    while (true) {
        int64_t now = s_now_us ();
        if (!self->stopping && now >= self->deadline)
            self->stopping = true;
        size_t busy = 0;
        for (size_t index = 0; index < args->concurrency; index++) {
            s_session_t *session = &self->sessions [index];
            if (!session->busy && !self->stopping)
                s_begin (session);
            busy += session->busy;
        }
        if (self->stopping && busy == 0)
            break;
        if (self->stopping && now > drain_deadline) {
            aborted = true;
            break;
        }
        if (now >= self->next_stats && !self->monitor.busy && !self->stopping) {
            s_buf_reset (&self->monitor.request);
            s_buf_str (&self->monitor.request, "{}");
            s_send (&self->monitor, S_REQ_SEARCH, self->stats_url);
            self->next_stats = now + S_STATS_MS * 1000LL;
        }
        int running = 0;
        curl_multi_perform (self->multi, &running);
        CURLMsg *message;
        int left;
        while ((message = curl_multi_info_read (self->multi, &left))) {
            if (message->msg != CURLMSG_DONE)
                continue;
            CURL *easy = message->easy_handle;
            CURLcode result = message->data.result;
            s_session_t *session = NULL;
            curl_easy_getinfo (easy, CURLINFO_PRIVATE, (char **) &session);
            curl_multi_remove_handle (self->multi, easy);
            s_on_done (session, result);
            if (!session->monitor && session->step == -1 && !self->stopping)
                s_begin (session);
        }
        now = s_now_us ();
        if (now >= self->next_rss) {
            s_sample_rss (self, now);
            self->next_rss += 1000000;
        }
        if (now >= self->next_progress && !self->stopping) {
            s_progress (self, now, false);
            self->next_progress += self->tty? 1000000: S_PROGRESS_MS * 1000LL;
        }
        curl_multi_poll (self->multi, NULL, 0, 20, NULL);
    }
    int64_t end = s_now_us ();
    s_sample_rss (self, end);
    s_progress (self, end, true);
    if (aborted)
        fprintf (stderr, "loadmix: scenarios still unanswered %d s after the end; not counted\n",
                 S_DRAIN_MS / 1000);
    s_loadavg (self->load_after, sizeof (self->load_after));
    self->playbook_after = s_index_count (base, args->playbook);

    double seconds = (end - self->start) / 1e6;
    s_buf_t report = { 0 };
    s_report_write (self, &report, seconds);
    fputs (report.data, stdout);
    fflush (stdout);
    int rc = 0;
    if (args->out) {
        FILE *file = fopen (args->out, "w");
        if (!file || fputs (report.data, file) < 0 || fclose (file)) {
            fprintf (stderr, "loadmix: cannot write %s: %s\n", args->out, strerror (errno));
            rc = S_EXIT_FAILURE;
        }
    }
    if (args->json && s_report_json (self, args->json, seconds))
        rc = S_EXIT_FAILURE;
    uint64_t failed;
    s_done_total (self, &failed);
    for (int klass = 0; klass < S_CLASSES; klass++)
        if (self->classes [klass].done == 0) {
            fprintf (stderr, "loadmix: no %s scenario ran\n", s_classes [klass].name);
            rc = S_EXIT_FAILURE;
        }
    if (failed > 0 || aborted)
        rc = S_EXIT_FAILURE;

    free (report.data);
    for (size_t index = 0; index < args->concurrency; index++)
        s_session_reset (&self->sessions [index]);
    s_session_reset (&self->monitor);
    curl_multi_cleanup (self->multi);
    curl_slist_free_all (self->headers);
    for (int klass = 0; klass < S_CLASSES; klass++)
        free (self->classes [klass].first_failure);
    free (self->sessions);
    free (self->rss);
    free (self->queues);
    zstr_free (&self->search_url);
    zstr_free (&self->validate_url);
    zstr_free (&self->record_url);
    zstr_free (&self->stats_url);
    zstr_free (&base);
    args->url = NULL;
    free (self);
    return rc;
}


int
main (int argc, char *argv [])
{
    s_args_t args = { 0 };
    int rc = s_parse_args (argc, argv, &args);
    if (rc) {
        zlist_destroy (&args.sets);
        return rc < 0? 0: rc;
    }
    lh_config_t *config = s_config_load (&args);
    if (!config) {
        zlist_destroy (&args.sets);
        return LH_TOOL_EXIT_USAGE;
    }
    lh_log_set_level (LH_LOG_WARN);
    curl_global_init (CURL_GLOBAL_DEFAULT);
    rc = streq (args.command, "prepare")? s_prepare (&args, config): s_run (&args, config);
    curl_global_cleanup ();
    lh_config_destroy (&config);
    zlist_destroy (&args.sets);
    return rc;
}
